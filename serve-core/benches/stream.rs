//! Stream throughput: items per second through a streaming handle call, next to a bare tokio mpsc
//! between two tasks, measured in the same run so the ratios mean something on a noisy machine.
//!
//! A plain `fn main` (not criterion). Each configuration moves `N` `u32` items (1,000,000 by
//! default) and is run three times; the best run counts.
//! * **bare**: a `tokio::sync::mpsc` channel of capacity 16 between two tasks spawned on a
//!   multi-threaded runtime (one worker per core): the producer sends `0..N`, the consumer
//!   receives and sums them.
//! * **composed**: the seed's `stream.py` (`examples/stream.rs`): `Caller` re-streams
//!   `Streamer`'s `0..N` (`while let Some(i) = items.next().await { yield i? }`), default
//!   deployment options, on a serve instance in this process (`Serve::start`). The bench thread
//!   consumes the caller's generator on a current-thread runtime.
//! * **single**: a handle call straight to `Streamer`, consumed the same way.
//!
//! Every run checks that the items arrive complete and in order (their sum).
//!
//! `cargo bench -p serve-core --bench stream [-- --quick]`: `--quick` moves 100,000 items per
//! run. Run without `--bench` (as `cargo test --benches` does) it moves a few items through each
//! path and checks them.

use std::time::{Duration, Instant};

use serve_core::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The capacity of the bare channel.
const BARE_CAPACITY: usize = 16;
/// Runs per configuration; the best counts.
const RUNS: usize = 3;

mod common;
use common::{Caller, Streamer};

// --- the measurements -------------------------------------------------------------------------

/// The sum of `0..n`, what every run must see.
fn expected_sum(n: u32) -> u64 {
    let n = u64::from(n);
    n * n.saturating_sub(1) / 2
}

/// Bare: a producer task sends `0..n` through a bounded mpsc to a consumer task.
fn bare(rt: &Runtime, n: u32) -> Duration {
    rt.block_on(async move {
        let started = Instant::now();
        let (tx, mut rx) = mpsc::channel::<u32>(BARE_CAPACITY);
        let producer = tokio::spawn(async move {
            for i in 0..n {
                if tx.send(i).await.is_err() {
                    break;
                }
            }
        });
        let consumer = tokio::spawn(async move {
            let (mut sum, mut count) = (0u64, 0u32);
            while let Some(i) = rx.recv().await {
                sum += u64::from(i);
                count += 1;
            }
            (sum, count)
        });
        producer.await.expect("producer");
        let (sum, count) = consumer.await.expect("consumer");
        let elapsed = started.elapsed();
        assert_eq!((sum, count), (expected_sum(n), n), "bare: items lost");
        elapsed
    })
}

/// Consumes a generator on the bench thread; checks the items.
fn consume(
    caller: &Runtime,
    what: &str,
    n: u32,
    items: DeploymentResponseGenerator<u32>,
) -> Duration {
    caller.block_on(async move {
        let started = Instant::now();
        let mut items = items;
        let (mut sum, mut count) = (0u64, 0u32);
        while let Some(i) = items.next().await {
            let i = i.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(i, count, "{what}: out of order");
            sum += u64::from(i);
            count += 1;
        }
        let elapsed = started.elapsed();
        assert_eq!((sum, count), (expected_sum(n), n), "{what}: items lost");
        elapsed
    })
}

/// The best of [`RUNS`] runs of `run`, in items per second.
fn best(n: u32, mut run: impl FnMut() -> Duration) -> f64 {
    (0..RUNS)
        .map(|_| f64::from(n) / run().as_secs_f64().max(1e-9))
        .fold(0.0, f64::max)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let n: u32 = match (bench, quick) {
        (false, _) => 1_000,
        (true, true) => 100_000,
        (true, false) => 1_000_000,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let serve = Serve::start().expect("serve instance");
    let composed = serve
        .run(Caller::bind(Streamer::bind()))
        .expect("the stream app");
    let single = serve.run(Streamer::bind()).expect("a lone streamer");
    let bare_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("bare")
        .build()
        .expect("bare runtime");
    let caller = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("caller runtime");

    if !bench {
        bare(&bare_rt, n);
        consume(&caller, "composed", n, composed.remote(n));
        consume(&caller, "single", n, single.remote(n));
        println!("stream bench: every path delivers its items (run with `cargo bench` to measure)");
        serve.shutdown();
        return;
    }

    println!(
        "Stream throughput: {n} u32 items per run, best of {RUNS} runs, {cores} cores. bare: a \
         tokio mpsc (capacity {BARE_CAPACITY}) between two tasks on a {cores}-worker runtime; \
         serve: the serve instance's runtime produces, the bench thread consumes on a \
         current-thread runtime.\n"
    );
    let bare_rate = best(n, || bare(&bare_rt, n));
    let composed_rate = best(n, || consume(&caller, "composed", n, composed.remote(n)));
    let single_rate = best(n, || consume(&caller, "single", n, single.remote(n)));

    println!("| path | items/s | ratio to bare |");
    println!("|---|---|---|");
    for (name, rate) in [
        ("bare: tokio mpsc (16) between two tasks", bare_rate),
        ("composed: Caller -> Streamer", composed_rate),
        ("single: handle -> Streamer", single_rate),
    ] {
        println!("| {name} | {:.2}M | {:.2}× |", rate / 1e6, rate / bare_rate);
    }
    serve.shutdown();
}
