//! Cluster-mode benchmark: a handle call to a replica in another process, next to a bare
//! async-nats request/reply between the same two processes, measured in the same run.
//!
//! `cargo bench --bench cluster [-- --seconds N]` starts a real `nats-server` on loopback and a
//! second process (this executable again, as a cluster worker or as a bare NATS responder), and
//! measures, each after a warm-up:
//!
//! * **bare NATS**: `client.request("bench.echo", 8 bytes)` answered by a plain async-nats
//!   subscriber in the other process (the floor: two NATS hops, no framework);
//! * **remote hop**: `handle.remote(x).await` on `Echo::call(x: u64) -> u64`, an `async fn` whose
//!   only replica runs on the worker (the head offers no CPU, so it goes there);
//! * **chain**: the seed's `Ingress -> Adder -> Multiplier` with the ingress on the head and both
//!   leaves on the worker (two remote hops per call, the second chained on the first).
//!
//! and streams, as items per second over one stream of many items (the median of three runs):
//!
//! * **bare NATS stream**: one request to a plain async-nats subscriber in the other process,
//!   which publishes that many 8-byte messages to the reply subject, then an empty one (the
//!   floor: one NATS message per item, no flow control, no framework);
//! * **streaming reply**: `handle.count.remote(n)`, a streaming method on the worker, consumed on
//!   the head (credit-based flow control, a window of 64);
//! * **stream argument**: `handle.sum.remote(stream)`, an `async fn` on the worker summing a
//!   stream of the head (the same flow control, the other way: the worker pulls);
//! * **stream through**: `handle.relay.remote(stream)`, a streaming method on the worker that
//!   passes a stream of the head back (both directions at once).
//!
//! Every deployment takes up to 100 requests at once (`max_ongoing_requests`; the default of 5
//! would measure the limit, not the transport). For each: the median latency of calls made one after another, and the throughput with 64
//! calls in flight; then each as a ratio to bare NATS. Run without `--bench` (as `cargo test
//! --benches` does) it makes a few calls of each kind and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serve_core::config::ClusterOptions;
use serve_core::prelude::*;
use serve_test_support::NatsServer;
use serve_test_support::cluster::{
    WorkerProcess, WorkerSpec, run_worker, test_cluster, worker_env,
};

/// Calls in flight in the throughput runs.
const IN_FLIGHT: usize = 64;
/// The cluster's name.
const CLUSTER: &str = "bench";
/// The bare responder's subject.
const ECHO: &str = "bench.echo";
/// The bare streamer's subject.
const STREAM: &str = "bench.stream";

#[deployment(max_ongoing_requests = 100)]
#[derive(Default)]
pub struct Echo;

#[deployment]
impl Echo {
    pub async fn call(&self, x: u64) -> u64 {
        x
    }
}

#[deployment(max_ongoing_requests = 100)]
#[derive(Default)]
pub struct Adder;

#[deployment]
impl Adder {
    pub async fn call(&self, x: u64) -> u64 {
        x + 1
    }
}

#[deployment(max_ongoing_requests = 100)]
#[derive(Default)]
pub struct Multiplier;

#[deployment]
impl Multiplier {
    pub async fn call(&self, x: u64) -> u64 {
        x * 2
    }
}

#[deployment(max_ongoing_requests = 100)]
pub struct Ingress {
    adder: DeploymentHandle<Adder>,
    multiplier: DeploymentHandle<Multiplier>,
}

#[deployment]
impl Ingress {
    pub fn new(adder: DeploymentHandle<Adder>, multiplier: DeploymentHandle<Multiplier>) -> Self {
        Self { adder, multiplier }
    }

    pub async fn call(&self, x: u64) -> Result<u64, ServeError> {
        self.multiplier.remote(self.adder.remote(x)).await
    }
}

#[deployment(max_ongoing_requests = 100)]
#[derive(Default)]
pub struct Streams;

#[deployment]
impl Streams {
    /// `0..n`, streamed back.
    pub fn count(&self, n: u64) -> impl Stream<Item = u64> + Send + use<> {
        futures::stream::iter(0..n)
    }

    /// The sum of a stream of the caller.
    pub async fn sum(&self, mut xs: ArgStream<u64>) -> Result<u64, ServeError> {
        let mut total = 0;
        while let Some(x) = xs.next().await {
            total += x?;
        }
        Ok(total)
    }

    /// A stream of the caller, passed back.
    pub fn relay(
        &self,
        mut xs: ArgStream<u64>,
    ) -> impl Stream<Item = Result<u64, ServeError>> + Send + use<> {
        try_stream! {
            while let Some(x) = xs.next().await {
                yield x?;
            }
        }
    }
}

fn echo_app() -> Application<Echo> {
    Echo::bind()
}

fn chain_app() -> Application<Ingress> {
    Ingress::bind(Adder::bind(), Multiplier::bind())
}

/// What one measurement gave.
struct Measured {
    p50: Duration,
    per_second: f64,
}

fn main() {
    // The second process: a cluster worker, or the bare responder.
    if let Some(env) = worker_env() {
        match env.app.as_str() {
            "echo" => run_worker(echo_app(), &env),
            "chain" => run_worker(chain_app(), &env),
            "streams" => run_worker(Streams::bind(), &env),
            "bare" => bare_responder(&env.url),
            other => panic!("no application `{other}`"),
        }
    }
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let (sequential, window, items) = if full {
        (5_000, Duration::from_secs_f64(seconds), 200_000)
    } else {
        (20, Duration::from_millis(100), 1_000)
    };
    let nats = NatsServer::start();
    let caller = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let (bare, bare_stream) = {
        let _responder =
            WorkerProcess::start(WorkerSpec::new("bare", &nats.url(), CLUSTER, "bare"));
        let client = caller
            .block_on(async_nats::connect(nats.url()))
            .expect("the client connects");
        let streamed = {
            let client = client.clone();
            move |n: u64| {
                let client = client.clone();
                async move { bare_stream(&client, n).await }
            }
        };
        let bare_stream = items_per_second(&caller, items, streamed);
        let call = move |x: u64| {
            let client = client.clone();
            async move {
                let reply = client
                    .request(ECHO, x.to_le_bytes().to_vec().into())
                    .await
                    .expect("the responder answers");
                u64::from_le_bytes(reply.payload[..8].try_into().expect("8 bytes"))
            }
        };
        (
            measure(&caller, sequential, window, call, |x| x),
            bare_stream,
        )
    };

    let options = test_cluster(&nats.url(), CLUSTER);
    let streams = {
        // No CPU on the head: the replica goes to the worker.
        let (serve, _worker) = head_and_worker(&nats, &options, "streams", 0.0);
        let handle = serve.run(Streams::bind()).expect("the app deploys");
        let reply = {
            let handle = handle.clone();
            move |n: u64| count(handle.count.remote(n))
        };
        let argument = {
            let handle = handle.clone();
            move |n: u64| {
                let total = handle.sum.remote(futures::stream::iter(0..n));
                async move {
                    assert_eq!(total.await.expect("the sum"), n * (n - 1) / 2);
                    n
                }
            }
        };
        let through = move |n: u64| count(handle.relay.remote(futures::stream::iter(0..n)));
        let m = [
            items_per_second(&caller, items, reply),
            items_per_second(&caller, items, argument),
            items_per_second(&caller, items, through),
        ];
        serve.shutdown();
        m
    };
    let remote = {
        // No CPU on the head: the only replica goes to the worker.
        let (serve, _worker) = head_and_worker(&nats, &options, "echo", 0.0);
        let handle = serve.run(echo_app()).expect("the app deploys");
        let call = move |x: u64| {
            let handle = handle.clone();
            async move { handle.remote(x).await.expect("the call succeeds") }
        };
        let m = measure(&caller, sequential, window, call, |x| x);
        serve.shutdown();
        m
    };

    let chain = {
        let (serve, _worker) = head_and_worker(&nats, &options, "chain", 1.0);
        let handle = serve.run(chain_app()).expect("the app deploys");
        let call = move |x: u64| {
            let handle = handle.clone();
            async move { handle.remote(x).await.expect("the call succeeds") }
        };
        let m = measure(&caller, sequential, window, call, |x| (x + 1) * 2);
        serve.shutdown();
        m
    };

    if !full {
        println!("cluster bench: every kind of call answered (run with --bench to measure)");
        return;
    }
    println!(
        "{:<34} {:>12} {:>16} {:>10} {:>10}",
        "", "p50", "per s @64", "p50 ×", "thr ×"
    );
    for (name, m) in [
        ("bare NATS request/reply", &bare),
        ("remote hop (handle -> worker)", &remote),
        ("chain, leaves on the worker", &chain),
    ] {
        println!(
            "{name:<34} {:>9.1} µs {:>16.0} {:>10.2} {:>10.2}",
            m.p50.as_secs_f64() * 1e6,
            m.per_second,
            m.p50.as_secs_f64() / bare.p50.as_secs_f64(),
            m.per_second / bare.per_second,
        );
    }
    println!();
    let title = format!("one stream of {items} items");
    println!("{title:<34} {:>16} {:>10}", "items/s", "× bare");
    for (name, per_second) in [
        ("bare NATS stream (no flow control)", bare_stream),
        ("streaming reply (worker -> head)", streams[0]),
        ("stream argument (head -> worker)", streams[1]),
        ("stream through (head -> w -> head)", streams[2]),
    ] {
        println!(
            "{name:<34} {per_second:>16.0} {:>10.2}",
            per_second / bare_stream
        );
    }
}

/// A head offering `head_cpus` CPUs in the cluster `bench-<app>`, and a worker of `app` that
/// joined it.
fn head_and_worker(
    nats: &NatsServer,
    options: &ClusterOptions,
    app: &str,
    head_cpus: f64,
) -> (Serve, WorkerProcess) {
    let name = format!("bench-{app}");
    let serve = Serve::builder()
        .num_cpus(head_cpus)
        .cluster(options.clone().name(&name))
        .start()
        .expect("the head starts");
    let worker = WorkerProcess::start(WorkerSpec::new(app, &nats.url(), &name, "worker"));
    serve
        .wait_for_workers(1, Duration::from_secs(20))
        .expect("the worker joins");
    (serve, worker)
}

/// How many items `items` yields (each must be a value).
async fn count(items: DeploymentResponseGenerator<u64>) -> u64 {
    items
        .fold(0, |seen, item| async move {
            item.map(|_| seen + 1).expect("an item")
        })
        .await
}

/// Items per second of one stream of `items` items (`stream(n)` returns how many it saw), the
/// median of three runs after a warm-up run of a tenth.
fn items_per_second<F, Fut>(rt: &tokio::runtime::Runtime, items: u64, stream: F) -> f64
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    rt.block_on(async {
        assert_eq!(stream(items / 10).await, items / 10);
        let mut rates: Vec<f64> = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            assert_eq!(stream(items).await, items);
            rates.push(items as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        rates[1]
    })
}

/// One bare stream of `n` items from the bare responder: how many arrived before its end.
async fn bare_stream(client: &async_nats::Client, n: u64) -> u64 {
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .expect("it subscribes");
    client
        .publish_with_reply(STREAM, inbox, n.to_le_bytes().to_vec().into())
        .await
        .expect("the request goes out");
    let mut seen = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .unwrap_or_else(|_| panic!("the bare stream stalled after {seen} of {n} items"))
            .expect("the subscription lives");
        if message.payload.is_empty() {
            return seen;
        }
        seen += 1;
    }
}

/// Median latency of `sequential` calls one after another, then calls completed per second
/// with [`IN_FLIGHT`] in flight for `window` (after a warm-up of a fifth of it). Every answer
/// must be `expect(x)`.
fn measure<F, Fut>(
    rt: &tokio::runtime::Runtime,
    sequential: usize,
    window: Duration,
    call: F,
    expect: fn(u64) -> u64,
) -> Measured
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    rt.block_on(async {
        for x in 0..(sequential as u64 / 5).max(5) {
            assert_eq!(call(x).await, expect(x));
        }
        let mut latencies = Vec::with_capacity(sequential);
        for x in 0..sequential as u64 {
            let start = Instant::now();
            assert_eq!(call(x).await, expect(x));
            latencies.push(start.elapsed());
        }
        latencies.sort_unstable();
        let p50 = latencies[latencies.len() / 2];

        let done = Arc::new(AtomicU64::new(0));
        let counting = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|w| {
                let (call, done, counting, stop) =
                    (call.clone(), done.clone(), counting.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut x = w as u64;
                    while !stop.load(Ordering::Relaxed) {
                        assert_eq!(call(x).await, expect(x));
                        if counting.load(Ordering::Relaxed) {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        x += IN_FLIGHT as u64;
                    }
                })
            })
            .collect();
        tokio::time::sleep(window / 5).await;
        counting.store(true, Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(window).await;
        let counted = done.load(Ordering::Relaxed);
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.expect("a load worker finishes");
        }
        Measured {
            p50,
            per_second: counted as f64 / elapsed.as_secs_f64(),
        }
    })
}

/// The bare baseline's other side: answers every request on [`ECHO`] with its payload.
fn bare_responder(url: &str) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let client = async_nats::connect(url)
            .await
            .expect("the responder connects");
        let mut requests = client.subscribe(ECHO).await.expect("it subscribes");
        let mut streams = client.subscribe(STREAM).await.expect("it subscribes");
        let streaming = {
            let client = client.clone();
            async move {
                while let Some(request) = streams.next().await {
                    let (Some(reply), Ok(n)) = (request.reply, request.payload[..].try_into())
                    else {
                        continue;
                    };
                    for i in 0..u64::from_le_bytes(n) {
                        let item = i.to_le_bytes().to_vec();
                        let _ = client.publish(reply.clone(), item.into()).await;
                    }
                    let _ = client.publish(reply, Vec::new().into()).await;
                }
            }
        };
        tokio::spawn(streaming);
        let answer = {
            let client = client.clone();
            async move {
                while let Some(request) = requests.next().await {
                    if let Some(reply) = request.reply {
                        let _ = client.publish(reply, request.payload).await;
                    }
                }
            }
        };
        let answering = tokio::spawn(answer);
        // One request of its own proves the subscription is on the server (the server handles
        // one connection's messages in order); then the harness may send.
        client
            .request(ECHO, vec![0u8; 8].into())
            .await
            .expect("the responder answers itself");
        println!("worker ready: bare");
        let _ = answering.await;
    });
    std::process::exit(0)
}
