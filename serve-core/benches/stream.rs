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
//! * **pipeline** (streams into streams): three stages, each a deployment, each stage's generator
//!   the next one's `ArgStream` argument: `Shift(-1)(Shift(1)(Streamer(N)))` (one `Shift`
//!   deployment adds 1 to each item, a second application of it takes 1 off again), consumed the
//!   same way. Against:
//! * **bare pipeline**: three tokio tasks (a producer and two stages doing the same arithmetic)
//!   and a consumer task, joined by `tokio::sync::mpsc` channels of capacity 16, one item per
//!   message;
//! * **bare pipeline, batched**: the same with messages of up to 64 items (`Vec<u32>`), as a
//!   stream's channel carries them, capacity 4 (as `STREAM_BUFFER`).
//!
//! Every run checks that the items arrive complete and in order (their sum).
//!
//! `cargo bench -p serve-core --bench stream [-- --quick]`: `--quick` moves 100,000 items per
//! run. Run without `--bench` (as `cargo test --benches` does) it moves a few items through each
//! path and checks them.

use std::time::{Duration, Instant};

use serve_core::RunOptions;
use serve_core::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The capacity of the bare channel.
const BARE_CAPACITY: usize = 16;
/// Runs per configuration; the best counts.
const RUNS: usize = 3;

/// The batch size and capacity of the batched bare pipeline (a stream's, see `generator.rs`).
const BARE_BATCH: usize = 64;
const BARE_BATCHED_CAPACITY: usize = 4;

mod common;
use common::{Caller, Shift, Streamer};

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

/// Bare pipeline: a producer task, two stage tasks (`+ 1`, then `- 1`) and a consumer task,
/// joined by bounded mpsc channels, one item per message.
fn bare_pipeline(rt: &Runtime, n: u32) -> Duration {
    rt.block_on(async move {
        let started = Instant::now();
        let (tx1, mut rx1) = mpsc::channel::<u32>(BARE_CAPACITY);
        let (tx2, mut rx2) = mpsc::channel::<u32>(BARE_CAPACITY);
        let (tx3, mut rx3) = mpsc::channel::<u32>(BARE_CAPACITY);
        let producer = tokio::spawn(async move {
            for i in 0..n {
                if tx1.send(i).await.is_err() {
                    break;
                }
            }
        });
        let shift = tokio::spawn(async move {
            while let Some(i) = rx1.recv().await {
                if tx2.send(i + 1).await.is_err() {
                    break;
                }
            }
        });
        let unshift = tokio::spawn(async move {
            while let Some(i) = rx2.recv().await {
                if tx3.send(i - 1).await.is_err() {
                    break;
                }
            }
        });
        let consumer = tokio::spawn(async move {
            let (mut sum, mut count) = (0u64, 0u32);
            while let Some(i) = rx3.recv().await {
                assert_eq!(i, count, "bare pipeline: out of order");
                sum += u64::from(i);
                count += 1;
            }
            (sum, count)
        });
        let (_, _, _, consumed) = tokio::join!(producer, shift, unshift, consumer);
        let (sum, count) = consumed.expect("consumer");
        let elapsed = started.elapsed();
        assert_eq!(
            (sum, count),
            (expected_sum(n), n),
            "bare pipeline: items lost"
        );
        elapsed
    })
}

/// Bare pipeline with messages of up to [`BARE_BATCH`] items, as a stream's channel carries them.
fn bare_pipeline_batched(rt: &Runtime, n: u32) -> Duration {
    async fn stage(
        mut rx: mpsc::Receiver<Vec<u32>>,
        tx: mpsc::Sender<Vec<u32>>,
        f: fn(u32) -> u32,
    ) {
        while let Some(mut batch) = rx.recv().await {
            batch.iter_mut().for_each(|i| *i = f(*i));
            if tx.send(batch).await.is_err() {
                break;
            }
        }
    }
    rt.block_on(async move {
        let started = Instant::now();
        let (tx1, rx1) = mpsc::channel::<Vec<u32>>(BARE_BATCHED_CAPACITY);
        let (tx2, rx2) = mpsc::channel::<Vec<u32>>(BARE_BATCHED_CAPACITY);
        let (tx3, mut rx3) = mpsc::channel::<Vec<u32>>(BARE_BATCHED_CAPACITY);
        let producer = tokio::spawn(async move {
            let mut next = 0;
            while next < n {
                let end = n.min(next + BARE_BATCH as u32);
                if tx1.send((next..end).collect()).await.is_err() {
                    break;
                }
                next = end;
            }
        });
        let shift = tokio::spawn(stage(rx1, tx2, |i| i + 1));
        let unshift = tokio::spawn(stage(rx2, tx3, |i| i - 1));
        let consumer = tokio::spawn(async move {
            let (mut sum, mut count) = (0u64, 0u32);
            while let Some(batch) = rx3.recv().await {
                for i in batch {
                    assert_eq!(i, count, "bare batched pipeline: out of order");
                    sum += u64::from(i);
                    count += 1;
                }
            }
            (sum, count)
        });
        let (_, _, _, consumed) = tokio::join!(producer, shift, unshift, consumer);
        let (sum, count) = consumed.expect("consumer");
        let elapsed = started.elapsed();
        assert_eq!(
            (sum, count),
            (expected_sum(n), n),
            "bare batched pipeline: items lost"
        );
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
    // Side by side, so each is an application of its own name (a second unnamed run would
    // replace the first).
    let named = RunOptions::named;
    let composed = serve
        .run_with(Caller::bind(Streamer::bind()), named("stream"))
        .expect("the stream app");
    let single = serve
        .run_with(Streamer::bind(), named("streamer"))
        .expect("a lone streamer");
    let (source, shift, unshift) = (
        single.clone(),
        serve
            .run_with(Shift::bind(1), named("shift"))
            .expect("the pipeline's middle stage"),
        serve
            .run_with(Shift::bind(-1), named("unshift"))
            .expect("the pipeline's last stage"),
    );
    let pipeline = |n: u32| unshift.remote(shift.remote(source.remote(n)));
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
        bare_pipeline(&bare_rt, n);
        bare_pipeline_batched(&bare_rt, n);
        consume(&caller, "pipeline", n, pipeline(n));
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
    let bare_pipeline_rate = best(n, || bare_pipeline(&bare_rt, n));
    let bare_batched_rate = best(n, || bare_pipeline_batched(&bare_rt, n));
    let pipeline_rate = best(n, || consume(&caller, "pipeline", n, pipeline(n)));

    println!("| path | items/s | ratio to bare |");
    println!("|---|---|---|");
    for (name, rate) in [
        ("bare: tokio mpsc (16) between two tasks", bare_rate),
        ("composed: Caller -> Streamer", composed_rate),
        ("single: handle -> Streamer", single_rate),
    ] {
        println!("| {name} | {:.2}M | {:.2}× |", rate / 1e6, rate / bare_rate);
    }
    println!("\nStreams into streams: three stages.\n");
    println!("| path | items/s | ratio to the bare pipeline | ratio to the batched one |");
    println!("|---|---|---|---|");
    for (name, rate) in [
        (
            "bare pipeline: 3 tasks + consumer, mpsc (16), one item a message",
            bare_pipeline_rate,
        ),
        (
            "bare pipeline, batched: messages of 64, mpsc (4)",
            bare_batched_rate,
        ),
        (
            "pipeline: Shift(-1)(Shift(1)(Streamer)), ArgStream arguments",
            pipeline_rate,
        ),
    ] {
        println!(
            "| {name} | {:.2}M | {:.2}× | {:.2}× |",
            rate / 1e6,
            rate / bare_pipeline_rate,
            rate / bare_batched_rate
        );
    }
    serve.shutdown();
}
