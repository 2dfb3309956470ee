//! Dynamic batching (`#[batch]`, issue 11): concurrent calls grouped per replica, each caller
//! getting its own result; the wait for a lone call; errors, wrong lengths and panics failing
//! their batch only; a cancelled call left out of a batch not yet started; `reconfigure`
//! changing the batch size. Sync and async methods.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serve_core::prelude::*;

/// Where a batched method reports each batch it is called with.
#[derive(Clone)]
pub struct Probe(Arc<Mutex<mpsc::Sender<Vec<i64>>>>);

impl Probe {
    fn new() -> (Probe, mpsc::Receiver<Vec<i64>>) {
        let (tx, rx) = mpsc::channel();
        (Probe(Arc::new(Mutex::new(tx))), rx)
    }

    fn report(&self, batch: &[i64]) {
        let _ = self.0.lock().unwrap().send(batch.to_vec());
    }
}

/// Every batch received so far.
fn drain(rx: &mpsc::Receiver<Vec<i64>>) -> Vec<Vec<i64>> {
    rx.try_iter().collect()
}

const WAIT: Duration = Duration::from_secs(20);

// ---- 64 concurrent calls, async and sync; reconfigure ----

#[derive(serde::Deserialize)]
pub struct Tuning {
    max_batch_size: usize,
}

#[deployment(max_ongoing_requests = 100)]
pub struct AsyncDoubler {
    probe: Probe,
}

#[deployment]
impl AsyncDoubler {
    pub fn new(probe: Probe) -> Self {
        Self { probe }
    }

    #[batch(max_batch_size = 8, batch_wait_timeout_s = 0.2)]
    pub async fn double(&self, xs: Vec<i64>) -> Vec<i64> {
        self.probe.report(&xs);
        xs.into_iter().map(|x| 2 * x).collect()
    }

    pub fn reconfigure(&self, tuning: Tuning) -> Result<(), ServeError> {
        serve_core::batching(Self::double)?.set_max_batch_size(tuning.max_batch_size)
    }

    pub fn max_batch_size(&self) -> Result<usize, ServeError> {
        Ok(serve_core::batching(Self::double)?.max_batch_size())
    }
}

#[deployment(max_ongoing_requests = 100)]
pub struct SyncDoubler {
    probe: Probe,
}

#[deployment]
impl SyncDoubler {
    pub fn new(probe: Probe) -> Self {
        Self { probe }
    }

    #[batch(max_batch_size = 8, batch_wait_timeout_s = 0.2)]
    pub fn double(&self, xs: Vec<i64>) -> Result<Vec<i64>, String> {
        self.probe.report(&xs);
        Ok(xs.into_iter().map(|x| 2 * x).collect())
    }
}

/// Sends 64 calls at once, checks each caller's own result, and returns the batches the method
/// received.
fn sixty_four(
    call: impl Fn(i64) -> DeploymentResponse<i64>,
    rx: &mpsc::Receiver<Vec<i64>>,
    max: usize,
) -> Vec<Vec<i64>> {
    let responses: Vec<_> = (0..64).map(&call).collect();
    for (i, response) in responses.into_iter().enumerate() {
        assert_eq!(response.result().unwrap(), 2 * i as i64, "call {i}");
    }
    let batches = drain(rx);
    let mut items: Vec<i64> = batches.iter().flatten().copied().collect();
    items.sort_unstable();
    assert_eq!(
        items,
        (0..64).collect::<Vec<_>>(),
        "each item once: {batches:?}"
    );
    assert!(
        batches.iter().all(|b| !b.is_empty() && b.len() <= max),
        "batches of at most {max}: {batches:?}"
    );
    let full = batches.iter().filter(|b| b.len() == max).count();
    assert!(
        full * max >= 48,
        "most items are served in full batches under load: {batches:?}"
    );
    batches
}

#[test]
fn sixty_four_concurrent_calls_are_served_in_batches_of_at_most_eight_async() {
    let serve = Serve::start().unwrap();
    let (probe, rx) = Probe::new();
    let handle = serve.run(AsyncDoubler::bind(probe)).unwrap();
    sixty_four(|x| handle.double.remote(x), &rx, 8);

    // `reconfigure` changes the size of the next batches.
    serve
        .update_deployment(
            "AsyncDoubler",
            serve_core::DeploymentUpdate::new()
                .user_config(serde_json::json!({"max_batch_size": 4})),
        )
        .unwrap();
    assert_eq!(handle.max_batch_size.remote().result().unwrap(), 4);
    sixty_four(|x| handle.double.remote(x), &rx, 4);
    serve.shutdown();
}

#[test]
fn sixty_four_concurrent_calls_are_served_in_batches_of_at_most_eight_sync() {
    let serve = Serve::start().unwrap();
    let (probe, rx) = Probe::new();
    let handle = serve.run(SyncDoubler::bind(probe)).unwrap();
    sixty_four(|x| handle.double.remote(x), &rx, 8);
    serve.shutdown();
}

#[test]
fn a_batch_size_set_in_the_user_config_applies_from_the_first_call() {
    let serve = Serve::start().unwrap();
    let (probe, rx) = Probe::new();
    let app = AsyncDoubler::bind(probe);
    let configs = app
        .deployment_configs()
        .into_iter()
        .map(|c| c.user_config(serde_json::json!({"max_batch_size": 2})))
        .collect();
    let handle = serve.run_configured(app, configs).unwrap();
    sixty_four(|x| handle.double.remote(x), &rx, 2);
    serve.shutdown();
}

// ---- a lone call ----

#[deployment]
#[derive(Default)]
pub struct Lone;

#[deployment]
impl Lone {
    #[batch(max_batch_size = 8, batch_wait_timeout_s = 0.1)]
    pub fn len(&self, words: Vec<String>) -> Vec<usize> {
        words.iter().map(String::len).collect()
    }
}

#[test]
fn a_lone_call_is_served_after_the_batch_wait_and_not_much_later() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Lone::bind()).unwrap();
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(handle.len.remote("four".to_string()).result().unwrap(), 4);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(99),
            "it waited for more: {took:?}"
        );
        assert!(
            took < Duration::from_millis(600),
            "then went alone: {took:?}"
        );
    }
    serve.shutdown();
}

// ---- errors, wrong lengths, panics, cancellation ----

#[derive(Debug)]
pub struct Negative(i64);

impl std::fmt::Display for Negative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "negative input {}", self.0)
    }
}

impl std::error::Error for Negative {}

/// Batches of exactly two (the wait is long): what goes together is known.
#[deployment(max_ongoing_requests = 100)]
pub struct Pairs {
    probe: Probe,
    gate: Arc<tokio::sync::Semaphore>,
}

#[deployment]
impl Pairs {
    pub fn new(probe: Probe, gate: Arc<tokio::sync::Semaphore>) -> Self {
        Self { probe, gate }
    }

    /// A negative item fails the batch; 99 makes the result one short; 7 panics; 1000 waits for
    /// the gate.
    #[batch(max_batch_size = 2, batch_wait_timeout_s = 30)]
    pub async fn check(&self, xs: Vec<i64>) -> Result<Vec<i64>, Negative> {
        self.probe.report(&xs);
        if xs.contains(&1000) {
            let _ = self.gate.acquire().await.unwrap();
        }
        if let Some(&x) = xs.iter().find(|&&x| x < 0) {
            return Err(Negative(x));
        }
        if xs.contains(&7) {
            panic!("seven is not allowed");
        }
        let mut out = xs.clone();
        if xs.contains(&99) {
            out.pop();
        }
        Ok(out)
    }

    /// The calls of `check` waiting for a batch on this replica.
    pub fn queued(&self) -> Result<usize, ServeError> {
        Ok(serve_core::batching(Self::check)?.queued())
    }
}

fn pairs() -> (
    Serve,
    DeploymentHandle<Pairs>,
    mpsc::Receiver<Vec<i64>>,
    Arc<tokio::sync::Semaphore>,
) {
    let serve = Serve::start().unwrap();
    let (probe, rx) = Probe::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handle = serve.run(Pairs::bind(probe, gate.clone())).unwrap();
    (serve, handle, rx, gate)
}

#[test]
fn an_error_fails_every_call_of_its_batch_with_the_methods_error() {
    let (serve, handle, rx, _gate) = pairs();
    let (a, b) = (handle.check.remote(5), handle.check.remote(-3));
    for response in [a, b] {
        let e = response.result().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::User);
        assert_eq!(e.to_string(), "Pairs.check failed: negative input -3");
        assert_eq!(e.downcast_ref::<Negative>().unwrap().0, -3);
    }
    let mut batch = rx.recv_timeout(WAIT).unwrap();
    batch.sort_unstable();
    assert_eq!(batch, [-3, 5]);
    // The next batch is served.
    let (c, d) = (handle.check.remote(1), handle.check.remote(2));
    assert_eq!((c.result().unwrap(), d.result().unwrap()), (1, 2));
    serve.shutdown();
}

#[test]
fn a_result_of_the_wrong_length_fails_the_batch_naming_both_lengths() {
    let (serve, handle, _rx, _gate) = pairs();
    let (a, b) = (handle.check.remote(99), handle.check.remote(1));
    for response in [a, b] {
        let e = response.result().unwrap_err();
        assert_eq!(
            e.to_string(),
            "Pairs.check failed: the batched method `Pairs.check` returned 1 result(s) for a batch of 2 item(s): it must return one result per item, in order"
        );
    }
    serve.shutdown();
}

#[test]
fn a_panic_fails_its_batch_only_and_the_replica_keeps_serving() {
    let (serve, handle, _rx, _gate) = pairs();
    let (a, b) = (handle.check.remote(7), handle.check.remote(1));
    for response in [a, b] {
        let e = response.result().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panic);
        assert_eq!(e.to_string(), "Pairs.check panicked: seven is not allowed");
    }
    let (c, d) = (handle.check.remote(3), handle.check.remote(4));
    assert_eq!((c.result().unwrap(), d.result().unwrap()), (3, 4));
    serve.shutdown();
}

/// Polls `queued` until it is `n` (a condition, not a timed guess; fails after `WAIT`).
fn until_queued(handle: &DeploymentHandle<Pairs>, n: usize) {
    let start = Instant::now();
    while handle.queued.remote().result().unwrap() != n {
        assert!(start.elapsed() < WAIT, "never {n} queued");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_cancelled_call_is_left_out_of_a_batch_not_yet_started() {
    let (serve, handle, rx, gate) = pairs();
    // A first batch holds the one permit (max_concurrent_batches = 1) until the gate opens.
    let first = (handle.check.remote(1000), handle.check.remote(1));
    let mut running = rx.recv_timeout(WAIT).unwrap();
    running.sort_unstable();
    assert_eq!(running, [1, 1000]);
    // Three calls wait for the next batch; one of them is cancelled.
    let cancelled = handle.check.remote(3);
    until_queued(&handle, 1);
    let (d, e) = (handle.check.remote(4), handle.check.remote(5));
    until_queued(&handle, 3);
    cancelled.cancel();
    until_queued(&handle, 2);
    assert_eq!(cancelled.result().unwrap_err().kind(), ErrorKind::Cancelled);
    gate.add_permits(1);
    assert_eq!(
        (first.0.result().unwrap(), first.1.result().unwrap()),
        (1000, 1)
    );
    assert_eq!((d.result().unwrap(), e.result().unwrap()), (4, 5));
    let mut next = rx.recv_timeout(WAIT).unwrap();
    next.sort_unstable();
    assert_eq!(
        next,
        [4, 5],
        "the cancelled call's item is not in the batch"
    );
    assert!(drain(&rx).is_empty());
    serve.shutdown();
}

#[test]
fn batching_outside_a_replica_or_of_an_unbatched_method_is_an_error() {
    let e = serve_core::batching(Pairs::check).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Runtime);
    assert!(e.to_string().contains("outside a replica"), "{e}");
}

// ---- under #[ingress]: a method without a route may be batched ----

#[deployment(max_ongoing_requests = 16)]
#[derive(Default)]
pub struct Api;

#[ingress]
impl Api {
    #[get("/")]
    pub fn root(&self) -> String {
        "ok".to_owned()
    }

    #[batch(max_batch_size = 4, batch_wait_timeout_s = 0)]
    pub fn lengths(&self, words: Vec<String>) -> Vec<usize> {
        words.iter().map(String::len).collect()
    }
}

#[test]
fn a_method_of_an_ingress_can_be_batched() {
    let serve = Serve::start().unwrap();
    let api = serve.run(Api::bind()).unwrap();
    let responses: Vec<_> = ["a", "bb", "ccc"]
        .into_iter()
        .map(|w| api.lengths.remote(w.to_owned()))
        .collect();
    let lengths: Vec<usize> = responses.into_iter().map(|r| r.result().unwrap()).collect();
    assert_eq!(lengths, [1, 2, 3]);
    serve.shutdown();
}
