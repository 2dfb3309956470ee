//! Cost of a handle call, next to a bare tokio round trip, measured in one run so the ratios are
//! meaningful on a noisy machine.
//!
//! Setup, the same for every benchmark:
//! * the *caller* is a current-thread tokio runtime driven by the benchmark thread;
//! * the *server* side runs on another, multi-threaded runtime: the serve instance's own runtime
//!   (`Serve::start`) for handle calls, a separate multi-threaded runtime for the baselines.
//!
//! Every benchmark uses `b.iter_custom` with one `caller.block_on` per sample that awaits the
//! routine `iters` times (which is what criterion's `to_async` does; the `async_tokio` feature is
//! not enabled). So each measurement is "caller awaits a reply that was produced on another
//! runtime's thread", for the baselines and for the handles alike.
//!
//! Groups:
//! * `baseline`: `mpsc` request to a long-lived server task that replies through a `oneshot` (the
//!   reference for everything else), plus a task spawned per request (`spawn`, the shape of an
//!   `async fn` handle call) and a `spawn_blocking` per request (the shape of a sync `fn` call).
//! * `hop`: one handle call to a one-replica deployment, `async fn` and sync `fn`.
//! * `chain`: the seed's Ingress (async) -> Adder, Multiplier, with sync and with async leaves,
//!   next to an mpsc baseline of the same shape (ingress task does two round trips in sequence).
//! * `concurrent64`: 64 calls in flight at once, awaited with `join_all`; time per iteration is for
//!   all 64 calls.

use std::future::IntoFuture;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serve_core::RunOptions;
use serve_core::futures::future::join_all;
use serve_core::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

// --- deployments ----------------------------------------------------------------------------

mod common;
use common::{
    Adder, AsyncAdder, AsyncEcho, AsyncIngress, AsyncMultiplier, Ingress, Multiplier, SyncEcho,
};

/// Like [`AsyncEcho`], with room for all 64 concurrent requests (no queueing in the router).
#[deployment(max_ongoing_requests = 64)]
#[derive(Default)]
pub struct WideAsyncEcho;

#[deployment]
impl WideAsyncEcho {
    pub async fn call(&self, x: u64) -> u64 {
        x + 1
    }
}

// --- baselines --------------------------------------------------------------------------------

type Request<I, O> = (I, oneshot::Sender<O>);

/// A long-lived server task on `rt` that answers each request with `f(request)`.
fn serve_mpsc<I, O>(rt: &Runtime, f: fn(I) -> O) -> mpsc::Sender<Request<I, O>>
where
    I: Send + 'static,
    O: Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Request<I, O>>(1024);
    rt.spawn(async move {
        while let Some((x, reply)) = rx.recv().await {
            let _ = reply.send(f(x));
        }
    });
    tx
}

/// One round trip: request over `mpsc`, reply over `oneshot`.
async fn round_trip<I, O>(tx: &mpsc::Sender<Request<I, O>>, x: I) -> O {
    let (reply, rx) = oneshot::channel();
    tx.send((x, reply)).await.expect("server alive");
    rx.await.expect("server replied")
}

/// The chain's baseline: an ingress server task that handles each request in its own task, doing
/// one round trip to an adder task and then one to a multiplier task (all on `rt`).
fn serve_mpsc_chain(rt: &Runtime) -> mpsc::Sender<Request<i32, i32>> {
    let adder = serve_mpsc(rt, |x: i32| x + 1);
    let multiplier = serve_mpsc(rt, |x: i32| x * 2);
    let (tx, mut rx) = mpsc::channel::<Request<i32, i32>>(1024);
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

// --- harness ----------------------------------------------------------------------------------

/// Measures `iters` sequential awaits of `routine` inside one `block_on` of the caller runtime.
fn on_caller<F, Fut, T>(caller: &Runtime, iters: u64, mut routine: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: IntoFuture<Output = T>,
{
    caller.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(routine().await);
        }
        start.elapsed()
    })
}

const CONCURRENCY: u64 = 64;

fn benches(c: &mut Criterion) {
    let caller = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("caller runtime");
    // Same shape as the serve instance's runtime: multi-threaded, one worker per core.
    let server = tokio::runtime::Builder::new_multi_thread()
        .thread_name("baseline-server")
        .build()
        .expect("baseline runtime");
    let serve = Serve::start().expect("serve instance");

    let echo_tx = serve_mpsc(&server, |x: u64| x + 1);
    let chain_tx = serve_mpsc_chain(&server);
    let server_handle = server.handle().clone();

    // Side by side, so each is an application of its own name (a second unnamed run would
    // replace the first).
    let named = RunOptions::named;
    let async_echo = serve
        .run_with(AsyncEcho::bind(), named("async_echo"))
        .expect("AsyncEcho");
    let sync_echo = serve
        .run_with(SyncEcho::bind(), named("sync_echo"))
        .expect("SyncEcho");
    let wide_echo = serve
        .run_with(WideAsyncEcho::bind(), named("wide_echo"))
        .expect("WideAsyncEcho");
    let chain_sync = serve
        .run_with(
            Ingress::bind(Adder::bind(1), Multiplier::bind(2)),
            named("chain_sync"),
        )
        .expect("Ingress");
    let chain_async = serve
        .run_with(
            AsyncIngress::bind(AsyncAdder::bind(1), AsyncMultiplier::bind(2)),
            named("chain_async"),
        )
        .expect("AsyncIngress");

    // Everything answers correctly before it is timed.
    caller.block_on(async {
        assert_eq!(round_trip(&echo_tx, 1).await, 2);
        assert_eq!(round_trip(&chain_tx, 5).await, 12);
        assert_eq!(async_echo.remote(1u64).await.unwrap(), 2);
        assert_eq!(sync_echo.remote(1u64).await.unwrap(), 2);
        assert_eq!(wide_echo.remote(1u64).await.unwrap(), 2);
        assert_eq!(chain_sync.remote(5).await.unwrap(), 12);
        assert_eq!(chain_async.remote(5).await.unwrap(), 12);
    });

    let configure = |g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>| {
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(50);
    };

    {
        let mut g = c.benchmark_group("baseline");
        configure(&mut g);
        g.bench_function("mpsc_oneshot", |b| {
            b.iter_custom(|iters| on_caller(&caller, iters, || round_trip(&echo_tx, black_box(7))))
        });
        g.bench_function("spawn", |b| {
            b.iter_custom(|iters| {
                on_caller(&caller, iters, || {
                    let x = black_box(7u64);
                    server_handle.spawn(async move { x + 1 })
                })
            })
        });
        g.bench_function("spawn_blocking", |b| {
            b.iter_custom(|iters| {
                on_caller(&caller, iters, || {
                    let x = black_box(7u64);
                    server_handle.spawn_blocking(move || x + 1)
                })
            })
        });
        g.finish();
    }

    {
        let mut g = c.benchmark_group("hop");
        configure(&mut g);
        g.bench_function("async_fn", |b| {
            b.iter_custom(|iters| on_caller(&caller, iters, || async_echo.remote(black_box(7u64))))
        });
        g.bench_function("sync_fn", |b| {
            b.iter_custom(|iters| on_caller(&caller, iters, || sync_echo.remote(black_box(7u64))))
        });
        g.finish();
    }

    {
        let mut g = c.benchmark_group("chain");
        configure(&mut g);
        g.bench_function("baseline_mpsc", |b| {
            b.iter_custom(|iters| on_caller(&caller, iters, || round_trip(&chain_tx, black_box(5))))
        });
        g.bench_function("sync_leaves", |b| {
            b.iter_custom(|iters| on_caller(&caller, iters, || chain_sync.remote(black_box(5))))
        });
        g.bench_function("async_leaves", |b| {
            b.iter_custom(|iters| on_caller(&caller, iters, || chain_async.remote(black_box(5))))
        });
        g.finish();
    }

    {
        let mut g = c.benchmark_group("concurrent64");
        configure(&mut g);
        g.throughput(Throughput::Elements(CONCURRENCY));
        g.bench_function("baseline_mpsc_oneshot", |b| {
            b.iter_custom(|iters| {
                on_caller(&caller, iters, || {
                    join_all((0..CONCURRENCY).map(|x| round_trip(&echo_tx, x)))
                })
            })
        });
        g.bench_function("baseline_spawn", |b| {
            b.iter_custom(|iters| {
                on_caller(&caller, iters, || {
                    join_all((0..CONCURRENCY).map(|x| server_handle.spawn(async move { x + 1 })))
                })
            })
        });
        g.bench_function("async_fn_max5", |b| {
            b.iter_custom(|iters| {
                on_caller(&caller, iters, || {
                    join_all((0..CONCURRENCY).map(|x| async_echo.remote(x).into_future()))
                })
            })
        });
        g.bench_function("async_fn_max64", |b| {
            b.iter_custom(|iters| {
                on_caller(&caller, iters, || {
                    join_all((0..CONCURRENCY).map(|x| wide_echo.remote(x).into_future()))
                })
            })
        });
        g.bench_function("sync_fn_max5", |b| {
            b.iter_custom(|iters| {
                on_caller(&caller, iters, || {
                    join_all((0..CONCURRENCY).map(|x| sync_echo.remote(x).into_future()))
                })
            })
        });
        g.finish();
    }

    serve.shutdown();
}

criterion_group!(handle, benches);
criterion_main!(handle);
