//! HTTP load benchmark: the seed's hello app behind serve-core's HTTP proxy, next to a bare axum
//! handler doing the same work, measured in the same run.
//!
//! A plain `fn main` load generator (not criterion), on loopback only:
//! * **serve**: `Serve::start()` + `start_http("127.0.0.1:0")` + `run_http(hello, "/")`. Each
//!   `POST /` with `{"language": "spanish", "name": "Dora"}` goes proxy -> `LanguageClassifier`
//!   (the ingress, `async fn call`) -> a handle call to `SpanishResponder::say_hello` (a sync `fn`,
//!   which runs in place once its calls prove short) -> `"Hola Dora"`. Default deployment options, as the seed
//!   has them.
//! * **bare**: an axum `POST /` handler on its own multi-threaded runtime that parses the same JSON
//!   and formats the greeting directly.
//! * **load**: its own multi-threaded runtime (one worker per core), so client and servers share
//!   the machine's cores. `C` workers, each with one keep-alive HTTP/1.1 connection (hyper), send
//!   requests back to back for `warm-up + duration`; only requests started after the warm-up and
//!   finished before the end are timed. Every response must be `200 "Hola Dora"`; anything else
//!   is an error. A hard cap on the requests per configuration bounds the run whatever the
//!   duration.
//!
//! `cargo bench -p serve-core --bench http [-- --seconds N | --quick]`: 3 s per configuration
//! after a 0.5 s warm-up by default (about 25 s in all); `--quick` is 1 s after 0.2 s. Run without
//! `--bench` (as `cargo test --benches` does) it only checks that both servers answer.
//!
//! `-- --access-log` installs a `tracing` subscriber at `info`, as the command line does: every
//! request then writes its access lines (the proxy's and both replicas'), formatted as text on
//! the request's thread and handed to a non-blocking writer (`tracing-appender`) whose
//! background thread writes them to `io::sink()`. Without it no subscriber is installed and the
//! access log costs a relaxed load per line it could write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serve_core::prelude::*;
use tokio::runtime::Runtime;

mod hello;
use hello::{
    EXPECTED, FrenchResponder, LanguageClassifier, Sender, SpanishResponder, connect, hello,
    start_bare,
};

/// Concurrent connections measured.
const CONNECTIONS: [usize; 3] = [1, 16, 64];
/// Upper bound on the requests sent in one configuration (warm-up included).
const MAX_REQUESTS: u64 = 2_000_000;
/// Upper bound on `--seconds`.
const MAX_SECONDS: u64 = 60;

/// What one worker saw.
#[derive(Default)]
struct WorkerReport {
    /// Latencies of the requests timed (started after the warm-up, finished before the end).
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    /// When the last timed request finished.
    last_done: Option<Instant>,
}

/// One connection sending requests back to back until `end` (or until the shared cap is used up).
async fn worker(
    addr: SocketAddr,
    measure_from: Instant,
    end: Instant,
    issued: Arc<AtomicU64>,
) -> WorkerReport {
    let mut report = WorkerReport::default();
    let mut sender: Option<Sender> = None;
    while Instant::now() < end {
        if issued.fetch_add(1, Ordering::Relaxed) >= MAX_REQUESTS {
            break;
        }
        let conn = match &mut sender {
            Some(conn) => conn,
            None => match connect(addr).await {
                Ok(conn) => sender.insert(conn),
                Err(e) => {
                    report.errors += 1;
                    report.first_error.get_or_insert(e.to_string());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let result = hello(conn, addr).await;
        let done = Instant::now();
        match result {
            Ok(()) if started >= measure_from && done <= end => {
                report.latencies.push(done - started);
                report.last_done = Some(done);
            }
            Ok(()) => {}
            Err(e) => {
                report.errors += 1;
                report.first_error.get_or_insert(e);
                sender = None; // start over on a fresh connection
            }
        }
    }
    report
}

/// The result of one configuration (server, C).
struct Measurement {
    requests_per_s: f64,
    p50: Duration,
    p99: Duration,
    timed: usize,
    errors: u64,
    first_error: Option<String>,
    capped: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn measure(
    load: &Runtime,
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Measurement {
    load.block_on(async {
        let measure_from = Instant::now() + warmup;
        let end = measure_from + duration;
        let issued = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(worker(addr, measure_from, end, issued.clone())))
            .collect();
        let mut latencies = Vec::new();
        let (mut errors, mut first_error, mut last_done) = (0, None, None::<Instant>);
        for w in workers {
            let report = w.await.expect("load worker");
            latencies.extend(report.latencies);
            errors += report.errors;
            first_error = first_error.or(report.first_error);
            last_done = last_done.max(report.last_done);
        }
        latencies.sort_unstable();
        let capped = issued.load(Ordering::Relaxed) >= MAX_REQUESTS;
        // Stopped early by the cap: the window is what was actually used.
        let window = match (capped, last_done) {
            (true, Some(last)) => last.saturating_duration_since(measure_from),
            _ => duration,
        };
        Measurement {
            requests_per_s: latencies.len() as f64 / window.as_secs_f64().max(1e-9),
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            timed: latencies.len(),
            errors,
            first_error,
            capped,
        }
    })
}

// --- main -------------------------------------------------------------------------------------

struct Options {
    /// Install a subscriber that writes the access log (see the module docs).
    access_log: bool,
    bench: bool,
    warmup: Duration,
    duration: Duration,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = Options {
        bench: args.iter().any(|a| a == "--bench"),
        access_log: args.iter().any(|a| a == "--access-log"),
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(3),
    };
    let mut i = 0;
    while i < args.len() {
        let seconds = match args[i].as_str() {
            "--quick" => {
                options.warmup = Duration::from_millis(200);
                options.duration = Duration::from_secs(1);
                None
            }
            "--seconds" => {
                i += 1;
                args.get(i).cloned()
            }
            other => other.strip_prefix("--seconds=").map(str::to_owned),
        };
        if let Some(seconds) = seconds {
            let n: u64 = seconds
                .parse()
                .unwrap_or_else(|_| panic!("--seconds wants a whole number, got `{seconds}`"));
            options.duration = Duration::from_secs(n.clamp(1, MAX_SECONDS));
        }
        i += 1;
    }
    options
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let options = options();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Kept until the end: dropping it stops the log's writer thread.
    let _log = options.access_log.then(|| {
        let (writer, guard) = tracing_appender::non_blocking(std::io::sink());
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(writer)
            .init();
        guard
    });

    let serve = Serve::start().expect("serve instance");
    let serve_addr = serve.start_http("127.0.0.1:0").expect("HTTP proxy");
    serve
        .run_http(
            LanguageClassifier::bind(SpanishResponder::bind(), FrenchResponder::bind()),
            "/",
        )
        .expect("hello app");
    let (bare_rt, bare_addr) = start_bare();

    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("load")
        .enable_all()
        .build()
        .expect("load runtime");

    // Both answer correctly before anything is timed.
    load.block_on(async {
        for addr in [serve_addr, bare_addr] {
            let mut conn = connect(addr).await.expect("connect");
            hello(&mut conn, addr).await.expect("a correct answer");
        }
    });
    if !options.bench {
        println!(
            "http bench: both servers answer `{EXPECTED}` (run with `cargo bench` to measure)"
        );
        serve.shutdown();
        return;
    }

    println!(
        "HTTP load on loopback: {cores} cores; the load generator runs on its own {cores}-worker \
         tokio runtime in this process, the serve instance and the bare axum server on theirs, so \
         client and server compete for the same cores. Each configuration: {:.1} s warm-up, then \
         {:.1} s measured; C keep-alive HTTP/1.1 connections sending POST / back to back; every \
         response checked to be 200 \"{EXPECTED}\"; at most {MAX_REQUESTS} requests.",
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64(),
    );
    println!("serve: http://{serve_addr}/   bare axum: http://{bare_addr}/");
    println!(
        "access log: {}\n",
        if options.access_log {
            "on (a text subscriber at info, non-blocking writer to io::sink())"
        } else {
            "no subscriber"
        }
    );

    let mut rows = Vec::new();
    for &c in &CONNECTIONS {
        let served = measure(&load, serve_addr, c, options.warmup, options.duration);
        let bare = measure(&load, bare_addr, c, options.warmup, options.duration);
        for (name, m) in [("serve", &served), ("bare", &bare)] {
            eprintln!(
                "C={c:>2} {name:<5}: {:>8.0} req/s  p50 {}  p99 {}  ({} timed, {} errors{}{})",
                m.requests_per_s,
                ms(m.p50),
                ms(m.p99),
                m.timed,
                m.errors,
                m.first_error
                    .as_deref()
                    .map(|e| format!(", first: {e}"))
                    .unwrap_or_default(),
                if m.capped {
                    ", request cap reached"
                } else {
                    ""
                },
            );
        }
        rows.push((c, served, bare));
    }

    println!(
        "| connections | serve req/s | serve p50 | serve p99 | bare axum req/s | bare p50 | bare p99 \
         | req/s serve/bare | p50 serve/bare | errors (serve, bare) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (c, s, b) in &rows {
        println!(
            "| {c} | {:.0} | {} | {} | {:.0} | {} | {} | {:.2}× | {:.2}× | {}, {} |",
            s.requests_per_s,
            ms(s.p50),
            ms(s.p99),
            b.requests_per_s,
            ms(b.p50),
            ms(b.p99),
            s.requests_per_s / b.requests_per_s.max(1e-9),
            s.p50.as_secs_f64() / b.p50.as_secs_f64().max(1e-12),
            s.errors,
            b.errors,
        );
    }

    serve.shutdown();
    drop(load);
    bare_rt.shutdown_background();
}
