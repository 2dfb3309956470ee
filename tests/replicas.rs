//! Replicas: concurrency limits, routing, isolation of failures, sync methods off the async
//! workers, blocking calls refused on async threads, cancellation (issue points 4, 8, 9).

use std::time::Duration;

use serve_core::prelude::*;
use serve_test_support::{Concurrency, Counter, Gate, OpenOnDrop, PATIENCE, named};

#[deployment(max_ongoing_requests = 1)]
pub struct OneAtATime {
    seen: Concurrency,
}

#[deployment]
impl OneAtATime {
    pub fn new(seen: Concurrency) -> Self {
        Self { seen }
    }
    pub async fn call(&self, _i: u32) {
        let _running = self.seen.enter();
        // Give other requests every chance to overlap with this one.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn max_ongoing_requests_1_runs_ten_concurrent_calls_one_at_a_time() {
    let serve = Serve::start().unwrap();
    let seen = Concurrency::new();
    let handle = serve
        .run_async(OneAtATime::bind(seen.clone()))
        .await
        .unwrap();
    let calls: Vec<_> = (0..10).map(|i| handle.remote(i)).collect();
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(seen.max(), 1);
}

#[deployment(max_ongoing_requests = 10)]
pub struct Rendezvous {
    seen: Concurrency,
    barrier: std::sync::Arc<tokio::sync::Barrier>,
}

#[deployment]
impl Rendezvous {
    pub fn new(seen: Concurrency, barrier: std::sync::Arc<tokio::sync::Barrier>) -> Self {
        Self { seen, barrier }
    }
    pub async fn call(&self) {
        let _running = self.seen.enter();
        self.barrier.wait().await;
    }
}

#[tokio::test]
async fn async_methods_interleave_up_to_the_limit() {
    // The control for the test above: the same kind of call does overlap when allowed. Ten calls
    // meet at a barrier of ten, which only works if all ten run at once on the one replica.
    let serve = Serve::start().unwrap();
    let seen = Concurrency::new();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let handle = serve
        .run_async(Rendezvous::bind(seen.clone(), barrier))
        .await
        .unwrap();
    let calls: Vec<_> = (0..10).map(|_| handle.remote()).collect();
    for call in calls {
        tokio::time::timeout(PATIENCE, call).await.unwrap().unwrap();
    }
    assert_eq!(seen.max(), 10);
}

#[deployment(num_replicas = 3)]
pub struct Numbered {
    id: usize,
}

#[deployment]
impl Numbered {
    pub fn new(ids: Counter) -> Self {
        Self { id: ids.incr() }
    }
    pub fn call(&self) -> usize {
        self.id
    }
    pub fn crash(&self, really: bool) -> usize {
        if really {
            panic!("replica {} hit a bad input", self.id);
        }
        self.id
    }
}

#[test]
fn three_replicas_all_receive_work() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Numbered::bind(Counter::new())).unwrap();
    let mut per_replica = [0usize; 3];
    for _ in 0..300 {
        per_replica[handle.remote().result().unwrap()] += 1;
    }
    assert!(per_replica.iter().all(|&n| n > 0), "{per_replica:?}");
}

#[deployment]
pub struct Single {
    id: usize,
}

#[deployment]
impl Single {
    pub fn new(ids: Counter) -> Self {
        Self { id: ids.incr() }
    }
    pub fn crash(&self, really: bool) -> usize {
        if really {
            panic!("replica {} hit a bad input", self.id);
        }
        self.id
    }
    pub async fn crash_async(&self, really: bool) -> usize {
        if really {
            panic!("async replica {} hit a bad input", self.id);
        }
        self.id
    }
}

#[test]
fn a_panic_fails_only_its_request_and_the_replica_keeps_serving() {
    let serve = Serve::start().unwrap();
    let ids = Counter::new();
    let handle = serve.run(Single::bind(ids.clone())).unwrap();

    let err = handle.crash.remote(true).result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert_eq!(err.deployment(), Some("Single"));
    assert_eq!(err.method(), Some("crash"));
    assert!(
        err.to_string().contains("replica 0 hit a bad input"),
        "{err}"
    );
    assert_eq!(handle.crash.remote(false).result().unwrap(), 0);

    let err = handle.crash_async.remote(true).result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert!(err.to_string().contains("async replica 0"), "{err}");
    assert_eq!(handle.crash_async.remote(false).result().unwrap(), 0);
    assert_eq!(ids.get(), 1, "the same replica served throughout");
}

#[deployment]
pub struct Blocker {
    release: Gate,
    entered: Counter,
    all_in: Gate,
}

#[deployment]
impl Blocker {
    pub fn new(release: Gate, entered: Counter, all_in: Gate) -> Self {
        Self {
            release,
            entered,
            all_in,
        }
    }
    /// A synchronous method that blocks its thread until released.
    pub fn call(&self) -> bool {
        if self.entered.incr() + 1 == 4 {
            self.all_in.open();
        }
        self.release.wait_blocking()
    }
}

#[deployment]
#[derive(Default)]
pub struct Quick;

#[deployment]
impl Quick {
    pub async fn call(&self, x: u64) -> u64 {
        tokio::task::yield_now().await;
        x + 1
    }
}

#[test]
fn sync_methods_do_not_block_the_async_workers() {
    let serve = Serve::start().unwrap();
    let (release, entered, all_in) = (Gate::new(), Counter::new(), Gate::new());
    let blocker = serve
        .run(Blocker::bind(release.clone(), entered, all_in.clone()))
        .unwrap();
    let quick = serve.run_with(Quick::bind(), named("quick")).unwrap();

    // Four blocked synchronous calls: more than this machine's async workers (one per core, and CI
    // has two). Had they run on the async workers, nothing async could run now.
    let blocked: Vec<_> = (0..4).map(|_| blocker.remote()).collect();
    assert!(all_in.wait_blocking(), "all four sync calls are running");
    for i in 0..20 {
        assert_eq!(quick.remote(i).result_timeout(PATIENCE).unwrap(), i + 1);
    }
    release.open();
    for b in blocked {
        assert!(b.result_timeout(PATIENCE).unwrap());
    }
}

#[deployment(max_ongoing_requests = 1)]
pub struct Fifo {
    log: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
    gate: Gate,
}

#[deployment]
impl Fifo {
    pub fn new(log: std::sync::Arc<std::sync::Mutex<Vec<u32>>>, gate: Gate) -> Self {
        Self { log, gate }
    }
    pub async fn hold(&self) {
        self.gate.wait().await;
    }
    pub fn call(&self, i: u32) {
        self.log.lock().unwrap().push(i);
    }
}

#[test]
fn requests_wait_fifo_when_every_replica_is_full() {
    let serve = Serve::start().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let gate = Gate::new();
    let handle = serve.run(Fifo::bind(log.clone(), gate.clone())).unwrap();
    let hold = handle.hold.remote();
    let queued: Vec<_> = (0..20).map(|i| handle.remote(i)).collect();
    assert!(log.lock().unwrap().is_empty(), "the only slot is held");
    gate.open();
    hold.result_timeout(PATIENCE).unwrap();
    for q in queued {
        q.result_timeout(PATIENCE).unwrap();
    }
    assert_eq!(*log.lock().unwrap(), (0..20).collect::<Vec<_>>());
}

// --- blocking calls on async threads ------------------------------------------------------------

#[deployment]
pub struct Impatient {
    quick: DeploymentHandle<Quick>,
}

#[deployment]
impl Impatient {
    pub fn new(quick: DeploymentHandle<Quick>) -> Self {
        Self { quick }
    }
    /// Wrong: blocks inside an async method.
    pub async fn call(&self) -> Result<u64, ServeError> {
        self.quick.remote(1).result()
    }
    /// Fine: a sync method runs on the blocking pool, where waiting is allowed.
    pub fn sync_call(&self) -> Result<u64, ServeError> {
        self.quick.remote(1).result()
    }
}

#[test]
fn result_inside_an_async_method_is_an_error_not_a_deadlock() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Impatient::bind(Quick::bind())).unwrap();
    let err = handle.remote().result_timeout(PATIENCE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    let inner = err
        .downcast_ref::<ServeError>()
        .expect("the blocking error");
    assert_eq!(inner.kind(), ErrorKind::BlockingInAsync);
    assert!(err.to_string().contains("use `.await` instead"), "{err}");

    assert_eq!(
        handle.sync_call.remote().result_timeout(PATIENCE).unwrap(),
        2
    );
}

#[tokio::test]
async fn result_on_a_callers_runtime_thread_is_an_error() {
    let serve = Serve::start().unwrap();
    let handle = serve.run_async(Quick::bind()).await.unwrap();
    let err = handle.remote(1).result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BlockingInAsync);
    assert_eq!(handle.remote(1).await.unwrap(), 2, "awaiting works");
}

#[test]
fn result_timeout_gives_up_and_can_be_called_again() {
    let serve = Serve::start().unwrap();
    let gate = Gate::new();
    let handle = serve
        .run(Fifo::bind(Default::default(), gate.clone()))
        .unwrap();
    let held = handle.hold.remote();
    let err = held.result_timeout(Duration::from_millis(20)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    gate.open();
    held.result_timeout(PATIENCE).unwrap();
}

// --- cancellation -------------------------------------------------------------------------------

#[deployment(max_ongoing_requests = 1)]
pub struct Slow {
    started: Counter,
    entered: Gate,
    dropped: Gate,
    release: Gate,
}

#[deployment]
impl Slow {
    pub fn new(started: Counter, entered: Gate, dropped: Gate, release: Gate) -> Self {
        Self {
            started,
            entered,
            dropped,
            release,
        }
    }
    pub async fn call(&self, _i: u32) -> u32 {
        self.started.incr();
        self.entered.open();
        let _guard = OpenOnDrop(self.dropped.clone());
        self.release.wait().await;
        7
    }
}

#[tokio::test]
async fn cancel_stops_a_running_request_and_a_queued_one_never_runs() {
    let serve = Serve::start().unwrap();
    let (started, entered, dropped, release) =
        (Counter::new(), Gate::new(), Gate::new(), Gate::new());
    let handle = serve
        .run_async(Slow::bind(
            started.clone(),
            entered.clone(),
            dropped.clone(),
            release.clone(),
        ))
        .await
        .unwrap();

    let running = handle.remote(1);
    entered.expect_open("the first request is running").await;
    let queued = handle.remote(2);
    let later = handle.remote(3);

    // Cancel the queued one first, then the running one (its future is dropped).
    queued.cancel();
    assert_eq!(queued.await.unwrap_err().kind(), ErrorKind::Cancelled);
    running.cancel();
    dropped
        .expect_open("the running request's future was dropped")
        .await;
    assert_eq!(running.await.unwrap_err().kind(), ErrorKind::Cancelled);

    release.open();
    assert_eq!(
        tokio::time::timeout(PATIENCE, later)
            .await
            .unwrap()
            .unwrap(),
        7
    );
    assert_eq!(
        started.get(),
        2,
        "the cancelled queued request never started"
    );
}

// --- recursive cancellation ---------------------------------------------------------------------

#[deployment(max_ongoing_requests = 10)]
pub struct Downstream {
    entered: Counter,
    both_in: Gate,
    first_dropped: Gate,
    release: Gate,
}

#[deployment]
impl Downstream {
    pub fn new(entered: Counter, both_in: Gate, first_dropped: Gate, release: Gate) -> Self {
        Self {
            entered,
            both_in,
            first_dropped,
            release,
        }
    }
    pub async fn call(&self, x: u32) -> u32 {
        let _guard = (x == 1).then(|| OpenOnDrop(self.first_dropped.clone()));
        if self.entered.incr() + 1 == 2 {
            self.both_in.open();
        }
        self.release.wait().await;
        x
    }
}

#[deployment]
pub struct Upstream {
    downstream: DeploymentHandle<Downstream>,
}

#[deployment]
impl Upstream {
    pub fn new(downstream: DeploymentHandle<Downstream>) -> Self {
        Self { downstream }
    }
    pub async fn call(&self, x: u32) -> Result<u32, ServeError> {
        self.downstream.remote(x).await
    }
    /// The same from a sync method: its downstream call is still cancelled with it.
    pub fn sync_call(&self, x: u32) -> Result<u32, ServeError> {
        self.downstream.remote(x).result()
    }
}

fn cancellation_app() -> (Gate, Gate, Gate, Application<Upstream>) {
    let (both_in, first_dropped, release) = (Gate::new(), Gate::new(), Gate::new());
    let downstream = Downstream::bind(
        Counter::new(),
        both_in.clone(),
        first_dropped.clone(),
        release.clone(),
    );
    (both_in, first_dropped, release, Upstream::bind(downstream))
}

#[tokio::test]
async fn cancelling_a_request_cancels_the_calls_it_started_and_no_other_request() {
    let serve = Serve::start().unwrap();
    let (both_in, first_dropped, release, app) = cancellation_app();
    let upstream = serve.run_async(app).await.unwrap();

    let first = upstream.remote(1);
    let second = upstream.remote(2);
    both_in
        .expect_open("both downstream calls are running")
        .await;
    first.cancel();
    first_dropped
        .expect_open("the downstream call of the cancelled request was dropped")
        .await;
    release.open();
    assert_eq!(
        tokio::time::timeout(PATIENCE, second)
            .await
            .unwrap()
            .unwrap(),
        2
    );
    assert_eq!(first.await.unwrap_err().kind(), ErrorKind::Cancelled);
}

#[tokio::test]
async fn a_cancelled_sync_method_gets_its_downstream_call_cancelled() {
    let serve = Serve::start().unwrap();
    let (both_in, first_dropped, release, app) = cancellation_app();
    let upstream = serve.run_async(app).await.unwrap();

    let first = upstream.sync_call.remote(1);
    let second = upstream.sync_call.remote(2);
    both_in
        .expect_open("both downstream calls are running")
        .await;
    first.cancel();
    first_dropped
        .expect_open("the downstream call of the cancelled sync request was dropped")
        .await;
    release.open();
    assert_eq!(
        tokio::time::timeout(PATIENCE, second)
            .await
            .unwrap()
            .unwrap(),
        2
    );
}

#[deployment]
pub struct Warmup {
    /// A call started by the constructor: it belongs to no request.
    warmup: DeploymentResponse<u32>,
}

#[deployment]
impl Warmup {
    pub fn new(downstream: DeploymentHandle<Downstream>) -> Self {
        Self {
            warmup: downstream.remote(1),
        }
    }
    pub async fn call(&self) -> u32 {
        std::future::pending::<()>().await;
        0
    }
    pub async fn warmup(&self) -> Result<u32, ServeError> {
        self.warmup.clone().await
    }
}

#[tokio::test]
async fn calls_started_by_a_constructor_are_not_cancelled_with_a_request() {
    let serve = Serve::start().unwrap();
    let (both_in, first_dropped, release) = (Gate::new(), Gate::new(), Gate::new());
    let downstream = Downstream::bind(Counter::new(), both_in, first_dropped, release.clone());
    let warmup = serve.run_async(Warmup::bind(downstream)).await.unwrap();
    let request = warmup.remote();
    request.cancel();
    assert_eq!(request.await.unwrap_err().kind(), ErrorKind::Cancelled);
    release.open();
    let value = tokio::time::timeout(PATIENCE, warmup.warmup.remote())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        value, 1,
        "the constructor's call ran to the end, not cancelled"
    );
}
