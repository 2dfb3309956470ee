//! Sync (`fn`) methods run in place while they are short (issue 10), and what the blocking pool
//! protected still holds: a method that blocks does not delay other deployments, a panic fails
//! only its call, blocking waits inside a method work, and a method that turns long goes back to
//! the blocking pool.
//!
//! A deployment's sync calls start on the blocking pool and run in place once they have been
//! short for a while (see `serve_core`'s data plane, `sync_policy`). The tests make calls until
//! one runs in place (its method runs on the thread of the `async fn` that called it), so each
//! test checks the in-place path it names, not the blocking pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serve_core::prelude::*;
use serve_test_support::named;

/// Calls made, at most, to see a deployment's calls run in place (it takes 64 short ones in a row
/// on an idle machine).
const MAX_WARM_UP: usize = 20_000;

fn thread_tag() -> String {
    format!("{:?}", std::thread::current().id())
}

/// A short sync method: says where it ran and which deployment's context it saw.
#[deployment]
#[derive(Default)]
pub struct Quick;

#[deployment]
impl Quick {
    /// Sleeps `sleep_ms` (0: returns at once); returns its thread and its replica context's
    /// deployment.
    pub fn call(&self, sleep_ms: u64) -> (String, String) {
        if sleep_ms > 0 {
            std::thread::sleep(Duration::from_millis(sleep_ms));
        }
        let ctx = serve_core::replica_context().expect("a method runs in a replica context");
        (thread_tag(), ctx.deployment().to_owned())
    }

    /// Panics when asked to.
    pub fn maybe_panic(&self, panic: bool) -> u32 {
        assert!(!panic, "asked to panic");
        7
    }
}

/// An async caller that reports whether `Quick` ran in place (on its own thread).
#[deployment]
pub struct Front {
    quick: DeploymentHandle<Quick>,
}

#[deployment]
impl Front {
    pub fn new(quick: DeploymentHandle<Quick>) -> Self {
        Self { quick }
    }

    /// Whether `Quick::call` ran on this method's thread, and the deployment it saw.
    pub async fn call(&self, sleep_ms: u64) -> Result<(bool, String), ServeError> {
        let here = thread_tag();
        let (there, deployment) = self.quick.call.remote(sleep_ms).await?;
        Ok((here == there, deployment))
    }

    /// `Quick::maybe_panic`.
    pub async fn maybe_panic(&self, panic: bool) -> Result<u32, ServeError> {
        self.quick.maybe_panic.remote(panic).await
    }
}

/// Calls `Front::call(0)` until `Quick` runs in place; fails the test if it never does.
fn warm_up(front: &DeploymentHandle<Front>) {
    for _ in 0..MAX_WARM_UP {
        let (in_place, deployment) = front.remote(0).result().expect("Front::call");
        assert_eq!(
            deployment, "Quick",
            "the method sees its own replica context"
        );
        if in_place {
            return;
        }
    }
    panic!("Quick's short calls never ran in place in {MAX_WARM_UP} calls");
}

#[test]
fn a_short_sync_method_runs_in_place_in_its_callers_task_with_its_own_context() {
    let serve = Serve::start().unwrap();
    let front = serve.run(Front::bind(Quick::bind())).unwrap();
    warm_up(&front);
    serve.shutdown();
}

#[test]
fn a_panic_in_a_sync_method_running_in_place_fails_only_its_call() {
    let serve = Serve::start().unwrap();
    let front = serve.run(Front::bind(Quick::bind())).unwrap();
    warm_up(&front);
    // The panic is caught in place: the caller's task goes on and gets the error.
    let err = front.maybe_panic.remote(true).result().unwrap_err();
    assert!(
        err.to_string()
            .contains("Quick.maybe_panic panicked: asked to panic"),
        "{err}"
    );
    assert_eq!(front.maybe_panic.remote(false).result().unwrap(), 7);
    assert!(
        front.remote(0).result().is_ok(),
        "the replica goes on serving"
    );
    serve.shutdown();
}

#[test]
fn a_sync_method_that_turns_long_goes_back_to_the_blocking_pool() {
    let serve = Serve::start().unwrap();
    let front = serve.run(Front::bind(Quick::bind())).unwrap();
    warm_up(&front);
    // This one runs in place (nobody can tell in advance) and takes 50 ms: too long.
    let (_, deployment) = front.remote(50).result().unwrap();
    assert_eq!(deployment, "Quick");
    // So the next ones run on the blocking pool, not on the caller's worker.
    for _ in 0..3 {
        let (in_place, _) = front.remote(20).result().unwrap();
        assert!(!in_place, "a long call ran in place after a long call");
    }
    serve.shutdown();
}

/// Blocks for a second per call; counts the calls that started.
#[deployment(max_ongoing_requests = 8)]
pub struct Sleeper {
    started: Arc<AtomicUsize>,
}

#[deployment]
impl Sleeper {
    pub fn new(started: Arc<AtomicUsize>) -> Self {
        Self { started }
    }

    pub fn call(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[deployment]
#[derive(Default)]
pub struct AsyncEcho;

#[deployment]
impl AsyncEcho {
    pub async fn call(&self, x: u64) -> u64 {
        x
    }
}

/// The 99th percentile of `latencies`.
fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort_unstable();
    latencies[(latencies.len() - 1) * 99 / 100]
}

#[test]
fn a_sync_method_blocking_for_a_second_does_not_delay_other_deployments() {
    let serve = Serve::start().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let sleeper = serve
        .run_with(Sleeper::bind(started.clone()), named("sleeper"))
        .unwrap();
    let front = serve
        .run_with(Front::bind(Quick::bind()), named("front"))
        .unwrap();
    let echo = serve.run_with(AsyncEcho::bind(), named("echo")).unwrap();
    warm_up(&front);

    // As many blocking calls as the machine has cores, and more.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let blocking = 2 * cores;
    let sleeping: Vec<_> = (0..blocking).map(|_| sleeper.remote()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while started.load(Ordering::SeqCst) < blocking {
        assert!(
            Instant::now() < deadline,
            "the blocking calls did not start"
        );
        std::thread::yield_now();
    }
    let blocked_until = Instant::now() + Duration::from_millis(900);

    // While they block: short sync calls (in place) and async calls go on at their usual pace.
    let (mut sync_latencies, mut async_latencies) = (Vec::new(), Vec::new());
    while Instant::now() + Duration::from_millis(50) < blocked_until {
        let t = Instant::now();
        front.remote(0).result().unwrap();
        sync_latencies.push(t.elapsed());
        let t = Instant::now();
        echo.remote(1).result().unwrap();
        async_latencies.push(t.elapsed());
    }
    assert_eq!(
        started.load(Ordering::SeqCst),
        blocking,
        "the blocking calls were still running while the others were measured"
    );
    let (calls, sync_p99, async_p99) = (
        sync_latencies.len(),
        p99(sync_latencies),
        p99(async_latencies),
    );
    assert!(calls >= 100, "only {calls} calls in 0.85 s");
    for (what, p99) in [("sync", sync_p99), ("async", async_p99)] {
        assert!(
            p99 < Duration::from_millis(10),
            "{what} calls next to blocking ones: p99 {p99:?} over {calls} calls"
        );
    }
    for response in sleeping {
        response.result().unwrap();
    }
    serve.shutdown();
}

/// A sync method that waits for another deployment's call with `.result()`.
#[deployment]
pub struct Waiter {
    echo: DeploymentHandle<AsyncEcho>,
}

#[deployment]
impl Waiter {
    pub fn new(echo: DeploymentHandle<AsyncEcho>) -> Self {
        Self { echo }
    }

    /// `x` at once, or (`wait`) through a blocking wait for `AsyncEcho`; and its thread.
    pub fn call(&self, x: u64, wait: bool) -> Result<(u64, String), ServeError> {
        let value = if wait {
            self.echo.remote(x).result()?
        } else {
            x
        };
        Ok((value, thread_tag()))
    }
}

#[deployment]
pub struct WaiterFront {
    waiter: DeploymentHandle<Waiter>,
}

#[deployment]
impl WaiterFront {
    pub fn new(waiter: DeploymentHandle<Waiter>) -> Self {
        Self { waiter }
    }

    /// `Waiter::call`, and whether it ran on this method's thread.
    pub async fn call(&self, x: u64, wait: bool) -> Result<(u64, bool), ServeError> {
        let here = thread_tag();
        let (value, there) = self.waiter.remote(x, wait).await?;
        Ok((value, here == there))
    }
}

#[test]
fn a_blocking_wait_inside_a_sync_method_running_in_place_works() {
    let serve = Serve::start().unwrap();
    let front = serve
        .run(WaiterFront::bind(Waiter::bind(AsyncEcho::bind())))
        .unwrap();
    let mut in_place = false;
    for i in 0..MAX_WARM_UP as u64 {
        let (value, here) = front.remote(i, false).result().unwrap();
        assert_eq!(value, i);
        if here {
            in_place = true;
            break;
        }
    }
    assert!(in_place, "Waiter's short calls never ran in place");
    // Running in place, it blocks on a call that needs the async workers: the worker's other
    // tasks move to another thread first, so this neither fails nor deadlocks.
    let (value, _) = front
        .remote(42, true)
        .result_timeout(Duration::from_secs(10))
        .unwrap();
    assert_eq!(value, 42);
    // Waiting made the call long: the next ones run on the blocking pool for a while.
    let (value, here) = front.remote(43, true).result().unwrap();
    assert_eq!(value, 43);
    assert!(!here, "a call that blocked ran in place again at once");
    serve.shutdown();
}

/// One slot; counts the calls that ran; each call holds the slot for `ms`.
#[deployment(max_ongoing_requests = 1)]
pub struct Holder {
    ran: Arc<AtomicUsize>,
}

#[deployment]
impl Holder {
    pub fn new(ran: Arc<AtomicUsize>) -> Self {
        Self { ran }
    }

    /// Holds the slot for `ms`; returns `ms` and its thread.
    pub fn call(&self, ms: u64) -> (u64, String) {
        self.ran.fetch_add(1, Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
        (ms, thread_tag())
    }
}

#[deployment]
pub struct HolderFront {
    holder: DeploymentHandle<Holder>,
}

#[deployment]
impl HolderFront {
    pub fn new(holder: DeploymentHandle<Holder>) -> Self {
        Self { holder }
    }

    /// Whether `Holder::call(0)` ran on this method's thread.
    pub async fn call(&self) -> Result<bool, ServeError> {
        let here = thread_tag();
        let (_, there) = self.holder.remote(0).await?;
        Ok(here == there)
    }

    /// `Holder::call(ms)`.
    pub async fn hold(&self, ms: u64) -> Result<u64, ServeError> {
        Ok(self.holder.remote(ms).await?.0)
    }
}

/// Starts `Holder` behind `HolderFront` and calls it until its calls run in place.
fn holder_in_place(serve: &Serve) -> (DeploymentHandle<HolderFront>, Arc<AtomicUsize>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let front = serve
        .run(HolderFront::bind(Holder::bind(ran.clone())))
        .unwrap();
    let in_place = (0..MAX_WARM_UP).any(|_| front.remote().result().unwrap());
    assert!(in_place, "Holder's short calls never ran in place");
    (front, ran)
}

/// Waits (bounded) until `ran` reaches `n`.
fn wait_for_calls(ran: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ran.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "the call never started");
        std::thread::yield_now();
    }
}

#[test]
fn a_cancelled_call_waiting_behind_a_sync_call_running_in_place_never_runs() {
    let serve = Serve::start().unwrap();
    let (front, ran) = holder_in_place(&serve);
    let before = ran.load(Ordering::SeqCst);
    // Runs in place in a `HolderFront` task, holding `Holder`'s only slot.
    let holding = front.hold.remote(200);
    wait_for_calls(&ran, before + 1);
    // Another `HolderFront` request: its `Holder` call waits for the slot, and cancelling the
    // outer request cancels it.
    let queued = front.hold.remote(0);
    queued.cancel();
    assert_eq!(holding.result().unwrap(), 200);
    // FIFO: had the cancelled call run, it would have run before this one.
    assert_eq!(front.hold.remote(0).result().unwrap(), 0);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        before + 2,
        "the cancelled call ran"
    );
    assert_eq!(
        queued.result().unwrap_err().kind(),
        ErrorKind::Cancelled,
        "the cancelled call's caller sees it cancelled"
    );
    serve.shutdown();
}

#[test]
fn a_graceful_shutdown_lets_a_sync_call_running_in_place_finish() {
    let serve = Serve::start().unwrap();
    let (front, ran) = holder_in_place(&serve);
    let before = ran.load(Ordering::SeqCst);
    let running = front.hold.remote(200);
    wait_for_calls(&ran, before + 1);
    assert!(
        serve.shutdown_graceful(Duration::from_secs(10)),
        "everything in flight finished in time"
    );
    assert_eq!(running.result().unwrap(), 200);
}
