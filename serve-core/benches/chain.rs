//! Throughput and latency of the seed's chain (`Ingress` -> `Adder`, then `Multiplier`) as
//! written (sync `fn` leaves) and with `async fn` leaves, next to bare tokio tasks and channels of
//! the same shape, measured in one run.
//!
//! A plain `fn main` load generator (not criterion):
//! * **bare**: three long-lived tasks on a multi-threaded runtime (one worker per core, like a
//!   serve instance's): an ingress that spawns a task per request, which does one mpsc + oneshot
//!   round trip to an adder task and then one to a multiplier task.
//! * **async leaves** / **sync leaves**: the chain served by `Serve::start()`, every deployment
//!   with the seed's options (one replica, the default `max_ongoing_requests` of 5).
//! * **load**: a current-thread runtime on the benchmark thread keeps 64 calls in flight for
//!   the measured time and counts the calls completed per second; then it makes calls one after
//!   another and reports the median and 99th percentile latency. Every answer must be 12 for 5.
//!
//! `cargo bench -p serve-core --bench chain [-- --seconds N | --quick]`: 3 s per row after a
//! 0.5 s warm-up by default; `--quick` is 1 s after 0.2 s. Each row is run three times, best kept.
//! Run without `--bench` (as `cargo test --benches` does) it only checks the answers.

use std::time::{Duration, Instant};

use serve_core::futures::StreamExt;
use serve_core::futures::stream::FuturesUnordered;
use serve_core::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

mod common;
use common::{Adder, AsyncAdder, AsyncMultiplier, Multiplier};

/// Calls in flight in the throughput rows.
const IN_FLIGHT: usize = 64;
/// Upper bound on `--seconds`.
const MAX_SECONDS: u64 = 60;
/// Upper bound on the calls of one measurement, whatever the duration.
const MAX_CALLS: u64 = 20_000_000;

// --- the seed's chain, with both kinds of leaves ---------------------------------------------

/// The seed's `Ingress` (one replica, default options), holding both chains' leaves: `call` is the
/// seed as written (sync `Adder` and `Multiplier`), `call_async_leaves` the same with `async fn`
/// leaves.
#[deployment]
pub struct SeedIngress {
    adder: DeploymentHandle<Adder>,
    multiplier: DeploymentHandle<Multiplier>,
    async_adder: DeploymentHandle<AsyncAdder>,
    async_multiplier: DeploymentHandle<AsyncMultiplier>,
}

#[deployment]
impl SeedIngress {
    pub fn new(
        adder: DeploymentHandle<Adder>,
        multiplier: DeploymentHandle<Multiplier>,
        async_adder: DeploymentHandle<AsyncAdder>,
        async_multiplier: DeploymentHandle<AsyncMultiplier>,
    ) -> Self {
        Self {
            adder,
            multiplier,
            async_adder,
            async_multiplier,
        }
    }
    pub async fn call(&self, input: i32) -> Result<i32, ServeError> {
        let added: DeploymentResponse<i32> = self.adder.remote(input);
        self.multiplier.remote(added).await
    }
    pub async fn call_async_leaves(&self, input: i32) -> Result<i32, ServeError> {
        let added: DeploymentResponse<i32> = self.async_adder.remote(input);
        self.async_multiplier.remote(added).await
    }
}

// --- the bare chain -------------------------------------------------------------------------

type Request = (i32, oneshot::Sender<i32>);

fn leaf(rt: &Runtime, f: fn(i32) -> i32) -> mpsc::Sender<Request> {
    let (tx, mut rx) = mpsc::channel::<Request>(1024);
    rt.spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(f(x));
        }
    });
    tx
}

async fn round_trip(tx: &mpsc::Sender<Request>, x: i32) -> i32 {
    let (reply, rx) = oneshot::channel();
    tx.send((x, reply)).await.expect("task alive");
    rx.await.expect("task replied")
}

fn bare_chain(rt: &Runtime) -> mpsc::Sender<Request> {
    let adder = leaf(rt, |x| x + 1);
    let multiplier = leaf(rt, |x| x * 2);
    let (tx, mut rx) = mpsc::channel::<Request>(1024);
    rt.spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let (adder, multiplier) = (adder.clone(), multiplier.clone());
            tokio::spawn(async move {
                let added = round_trip(&adder, x).await;
                let _ = reply.send(round_trip(&multiplier, added).await);
            });
        }
    });
    tx
}

// --- load -----------------------------------------------------------------------------------

/// What one row measured.
struct Row {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Keeps `IN_FLIGHT` calls going for `warm_up + measure`, counting those that finish after the
/// warm-up; then times calls one after another for `measure`.
async fn drive<F, Fut>(call: F, warm_up: Duration, measure: Duration) -> Row
where
    F: Fn(i32) -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    let mut in_flight = FuturesUnordered::new();
    let start = Instant::now();
    let (measure_from, end) = (start + warm_up, start + warm_up + measure);
    let (mut done, mut sent) = (0u64, 0u64);
    while in_flight.len() < IN_FLIGHT {
        in_flight.push(call(5));
        sent += 1;
    }
    let mut measured_at = None;
    while let Some(answer) = in_flight.next().await {
        assert_eq!(answer, 12, "the chain answers 12 for 5");
        let now = Instant::now();
        if now >= measure_from {
            measured_at.get_or_insert(now);
            done += 1;
        }
        if now < end && sent < MAX_CALLS {
            in_flight.push(call(5));
            sent += 1;
        }
    }
    let elapsed = measured_at.map_or(Duration::ZERO, |from| from.elapsed());
    let per_second = done as f64 / elapsed.as_secs_f64().max(1e-9);

    let mut latencies = Vec::new();
    let until = Instant::now() + measure;
    while Instant::now() < until && (latencies.len() as u64) < MAX_CALLS {
        let t = Instant::now();
        assert_eq!(call(5).await, 12);
        latencies.push(t.elapsed());
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Row {
        per_second,
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn best(rows: Vec<Row>) -> Row {
    let per_second = rows.iter().map(|r| r.per_second).fold(0.0, f64::max);
    let p50 = rows.iter().map(|r| r.p50).min().unwrap_or_default();
    let p99 = rows.iter().map(|r| r.p99).min().unwrap_or_default();
    Row {
        per_second,
        p50,
        p99,
    }
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() -> Result<(), ServeError> {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| s.clamp(1, MAX_SECONDS));
    let (warm_up, measure) = match (quick, seconds) {
        (_, Some(s)) => (Duration::from_millis(500), Duration::from_secs(s)),
        (true, None) => (Duration::from_millis(200), Duration::from_secs(1)),
        (false, None) => (Duration::from_millis(500), Duration::from_secs(3)),
    };

    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("caller runtime");
    let server = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bare-chain")
        .build()
        .expect("bare runtime");
    let serve = Serve::start()?;
    let bare = bare_chain(&server);
    let ingress = serve.run(SeedIngress::bind(
        Adder::bind(1),
        Multiplier::bind(2),
        AsyncAdder::bind(1),
        AsyncMultiplier::bind(2),
    ))?;
    let sync_chain = |x| {
        let r = ingress.remote(x);
        async move { r.await.expect("sync leaves") }
    };
    let async_chain = |x| {
        let r = ingress.call_async_leaves.remote(x);
        async move { r.await.expect("async leaves") }
    };

    caller.block_on(async {
        assert_eq!(round_trip(&bare, 5).await, 12);
        assert_eq!(sync_chain(5).await, 12);
        assert_eq!(async_chain(5).await, 12);
    });
    if !benching {
        println!("chain: the bare chain and both served chains answer 12 for 5");
        serve.shutdown();
        return Ok(());
    }

    let mut rows: [Vec<Row>; 3] = Default::default();
    for _ in 0..3 {
        caller.block_on(async {
            rows[0].push(drive(|x| round_trip(&bare, x), warm_up, measure).await);
            rows[1].push(drive(async_chain, warm_up, measure).await);
            rows[2].push(drive(sync_chain, warm_up, measure).await);
        });
    }
    let [bare_rows, async_rows, sync_rows] = rows;
    let (bare, async_leaves, sync_leaves) = (best(bare_rows), best(async_rows), best(sync_rows));

    println!(
        "| chain | calls/s, {IN_FLIGHT} in flight | vs bare | sequential p50 | p99 | p50 vs async leaves |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, row) in [
        ("bare tokio tasks and channels", &bare),
        ("seed chain, async leaves", &async_leaves),
        ("seed chain as written, sync leaves", &sync_leaves),
    ] {
        println!(
            "| {name} | {:.0} | {:.2}× | {} | {} | {:.2}× |",
            row.per_second,
            row.per_second / bare.per_second,
            micros(row.p50),
            micros(row.p99),
            row.p50.as_secs_f64() / async_leaves.p50.as_secs_f64(),
        );
    }
    serve.shutdown();
    Ok(())
}
