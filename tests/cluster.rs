//! Cluster mode across processes: a head in the test process, workers as child processes (the
//! test executable itself, see `serve_test_support::cluster`), and a real `nats-server`.
//!
//! Each test starts its own `nats-server`, its head and its workers, under a cluster name of its
//! own. Placement puts every deployment but the ingress on the workers, and the ingress on the
//! head, so each call from an ingress to its children crosses a process boundary. What a replica
//! on a worker records lives in that worker's process (the statics below); a test reads it back
//! through methods that wait for it (long polls), never by sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Instant;

use serde_json::json;
use serve_core::prelude::*;
use serve_test_support::cluster::{
    WorkerProcess, WorkerSpec, run_http_worker_reporting, run_worker, test_cluster, worker_env,
};
use serve_test_support::http::post_json;
use serve_test_support::{NatsServer, PATIENCE, deployment_status};
use tokio::sync::watch;

// --- the seed programs, as the examples define them -----------------------------------------------

#[path = "../examples/hello.rs"]
#[allow(dead_code)]
mod hello;

#[path = "../examples/chain.rs"]
#[allow(dead_code)]
mod chain;

#[path = "../examples/stream.rs"]
#[allow(dead_code)]
mod stream_example;

#[path = "../examples/object_ref.rs"]
#[allow(dead_code)]
mod object_ref;

fn hello_app() -> Application<hello::LanguageClassifier> {
    hello::LanguageClassifier::bind(
        hello::SpanishResponder::bind(),
        hello::FrenchResponder::bind(),
    )
}

fn stream_app() -> Application<stream_example::Caller> {
    stream_example::Caller::bind(stream_example::Streamer::bind())
}

fn object_ref_app() -> Application<object_ref::Ingress> {
    object_ref::Ingress::bind(object_ref::SayHi::bind())
}

fn chain_app() -> Application<chain::Ingress> {
    chain::Ingress::bind(chain::Adder::bind(1), chain::Multiplier::bind(2))
}

// --- where replicas run -------------------------------------------------------------------------

/// The node the calling replica runs on.
fn here() -> String {
    serve_core::replica_context()
        .and_then(|ctx| ctx.node_name().map(str::to_owned))
        .unwrap_or_else(|| "nowhere".into())
}

#[deployment(num_replicas = 4, max_ongoing_requests = 1)]
#[derive(Default)]
pub struct Who;

#[deployment]
impl Who {
    /// The node and id of the replica that answers.
    pub fn call(&self) -> (String, usize) {
        let ctx = serve_core::replica_context().expect("inside a request");
        (here(), ctx.replica_id())
    }
}

#[deployment(max_ongoing_requests = 100)]
pub struct WhoIngress {
    who: DeploymentHandle<Who>,
}

#[deployment]
impl WhoIngress {
    pub fn new(who: DeploymentHandle<Who>) -> Self {
        Self { who }
    }

    pub async fn call(&self) -> Result<(String, usize), ServeError> {
        self.who.remote().await
    }
}

fn spread_app() -> Application<WhoIngress> {
    WhoIngress::bind(Who::bind())
}

// --- counts kept in a worker's process ------------------------------------------------------------

/// A count in this process that a method can wait on.
type Count = LazyLock<watch::Sender<usize>>;

fn zero() -> watch::Sender<usize> {
    watch::Sender::new(0)
}

fn bump(count: &Count) {
    count.send_modify(|n| *n += 1);
}

/// Waits until `count` reaches `n` (up to [`PATIENCE`]); returns its value then.
async fn reach(count: &Count, n: usize) -> usize {
    let mut seen = count.subscribe();
    let _ = tokio::time::timeout(PATIENCE, seen.wait_for(|c| *c >= n)).await;
    *count.borrow()
}

// --- cancellation ---------------------------------------------------------------------------------

/// Slow calls that started, and slow calls whose future was dropped (cancelled).
static SLOW_STARTED: Count = LazyLock::new(zero);
static SLOW_DROPPED: Count = LazyLock::new(zero);

/// Counts a drop of the future that holds it.
struct CountOnDrop(&'static Count);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        bump(self.0);
    }
}

#[deployment]
#[derive(Default)]
pub struct Slow;

#[deployment]
impl Slow {
    /// Never finishes by itself: only a cancellation ends it, dropping the future, which counts.
    pub async fn call(&self) -> u32 {
        let _dropped = CountOnDrop(&SLOW_DROPPED);
        bump(&SLOW_STARTED);
        std::future::pending::<u32>().await
    }

    /// Waits until `n` slow calls started in this process; returns how many did.
    pub async fn started(&self, n: usize) -> usize {
        reach(&SLOW_STARTED, n).await
    }

    /// Waits until `n` slow calls were dropped in this process; returns how many were.
    pub async fn dropped(&self, n: usize) -> usize {
        reach(&SLOW_DROPPED, n).await
    }
}

#[deployment]
pub struct CancelIngress {
    slow: DeploymentHandle<Slow>,
}

#[deployment]
impl CancelIngress {
    pub fn new(slow: DeploymentHandle<Slow>) -> Self {
        Self { slow }
    }

    pub async fn call(&self) -> Result<u32, ServeError> {
        self.slow.remote().await
    }

    /// Starts a slow call, waits until it is the `n`th to run on its worker, cancels it from
    /// here (the head), and says what its response then gave.
    pub async fn start_and_cancel(&self, n: usize) -> Result<String, ServeError> {
        let slow = self.slow.remote();
        let started = self.slow.started.remote(n).await?;
        slow.cancel();
        let outcome = slow.await.map_err(|e| e.kind());
        Ok(format!("{started} started, then {outcome:?}"))
    }

    pub async fn started(&self, n: usize) -> Result<usize, ServeError> {
        self.slow.started.remote(n).await
    }

    pub async fn dropped(&self, n: usize) -> Result<usize, ServeError> {
        self.slow.dropped.remote(n).await
    }
}

fn cancel_app() -> Application<CancelIngress> {
    CancelIngress::bind(Slow::bind())
}

// --- back pressure ---------------------------------------------------------------------------------

/// `Held`'s `max_queued_requests` (its `max_ongoing_requests` is 1).
const HELD_QUEUE: usize = 2;

/// Held calls that entered (took the replica's one slot), and whether the valve is open.
static HELD_ENTERED: Count = LazyLock::new(zero);
static VALVE: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::Sender::new(false));

#[deployment(max_ongoing_requests = 1, max_queued_requests = 2)]
#[derive(Default)]
pub struct Held;

#[deployment]
impl Held {
    /// Holds its slot until the valve opens.
    pub async fn call(&self, i: u32) -> u32 {
        bump(&HELD_ENTERED);
        let mut open = VALVE.subscribe();
        let _ = open.wait_for(|open| *open).await;
        i
    }
}

#[deployment]
#[derive(Default)]
pub struct Valve;

#[deployment]
impl Valve {
    pub fn open(&self) {
        VALVE.send_replace(true);
    }

    /// Waits until `n` held calls entered in this process; returns how many did.
    pub async fn entered(&self, n: usize) -> usize {
        reach(&HELD_ENTERED, n).await
    }
}

#[deployment(max_ongoing_requests = 100)]
pub struct PressureIngress {
    held: DeploymentHandle<Held>,
    valve: DeploymentHandle<Valve>,
}

#[deployment]
impl PressureIngress {
    pub fn new(held: DeploymentHandle<Held>, valve: DeploymentHandle<Valve>) -> Self {
        Self { held, valve }
    }

    pub async fn call(&self, i: u32) -> Result<u32, ServeError> {
        self.held.remote(i).await
    }

    pub async fn open(&self) -> Result<(), ServeError> {
        self.valve.open.remote().await
    }

    pub async fn entered(&self, n: usize) -> Result<usize, ServeError> {
        self.valve.entered.remote(n).await
    }
}

fn pressure_app() -> Application<PressureIngress> {
    PressureIngress::bind(Held::bind(), Valve::bind())
}

// --- errors ---------------------------------------------------------------------------------------

#[deployment]
#[derive(Default)]
pub struct Faulty;

#[deployment]
impl Faulty {
    pub fn refuse(&self) -> Result<String, String> {
        Err(format!("the disk is full on {}", here()))
    }

    pub async fn crash(&self) -> String {
        panic!("crashed on {}", here())
    }
}

#[deployment]
pub struct FaultyIngress {
    faulty: DeploymentHandle<Faulty>,
}

#[deployment]
impl FaultyIngress {
    pub fn new(faulty: DeploymentHandle<Faulty>) -> Self {
        Self { faulty }
    }

    pub async fn refuse(&self) -> Result<String, ServeError> {
        self.faulty.refuse.remote().await
    }

    pub async fn crash(&self) -> Result<String, ServeError> {
        self.faulty.crash.remote().await
    }
}

fn errors_app() -> Application<FaultyIngress> {
    FaultyIngress::bind(Faulty::bind())
}

// --- a batched method on a worker ----------------------------------------------------------------

/// The batches the worker's `BatchModel` replica was called with (in the worker's process).
static BATCHES: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

#[derive(serde::Deserialize)]
pub struct BatchTuning {
    max_batch_size: usize,
}

#[deployment(max_ongoing_requests = 64)]
#[derive(Default)]
pub struct BatchModel;

#[deployment]
impl BatchModel {
    #[batch(max_batch_size = 4, batch_wait_timeout_s = 30)]
    pub fn double(&self, xs: Vec<u32>) -> Vec<u32> {
        BATCHES.lock().unwrap().push(xs.len());
        xs.into_iter().map(|x| 2 * x).collect()
    }

    pub fn batches(&self) -> Vec<usize> {
        std::mem::take(&mut *BATCHES.lock().unwrap())
    }

    pub fn reconfigure(&self, tuning: BatchTuning) -> Result<(), ServeError> {
        serve_core::batching(Self::double)?.set_max_batch_size(tuning.max_batch_size)
    }
}

#[deployment]
pub struct BatchIngress {
    model: DeploymentHandle<BatchModel>,
}

#[deployment]
impl BatchIngress {
    pub fn new(model: DeploymentHandle<BatchModel>) -> Self {
        Self { model }
    }

    /// Calls the model with 0..n at once; returns the answers and the batches the model saw.
    pub async fn fan(&self, n: u32) -> Result<(Vec<u32>, Vec<usize>), ServeError> {
        let calls: Vec<_> = (0..n).map(|x| self.model.double.remote(x)).collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await?);
        }
        Ok((answers, self.model.batches.remote().await?))
    }
}

fn batch_app() -> Application<BatchIngress> {
    BatchIngress::bind(BatchModel::bind())
}

// --- the worker processes -------------------------------------------------------------------------

#[test]
#[ignore = "the worker processes of the cluster tests"]
fn worker_process() {
    let Some(env) = worker_env() else { return };
    match env.app.as_str() {
        "chain" => run_worker(chain_app(), &env),
        "hello" => run_worker(hello_app(), &env),
        "hello_http" => run_http_worker_reporting(hello_app(), &env),
        "stream" => run_worker(stream_app(), &env),
        "object_ref" => run_worker(object_ref_app(), &env),
        "spread" => run_worker(spread_app(), &env),
        "cancel" => run_worker(cancel_app(), &env),
        "pressure" => run_worker(pressure_app(), &env),
        "errors" => run_worker(errors_app(), &env),
        "batch" => run_worker(batch_app(), &env),
        other => panic!("no application `{other}`"),
    }
}

// --- helpers --------------------------------------------------------------------------------------

/// The head of cluster `cluster` on `nats`.
fn head(nats: &NatsServer, cluster: &str) -> Serve {
    Serve::builder()
        .cluster(test_cluster(&nats.url(), cluster))
        .start()
        .unwrap()
}

/// The spec of worker `node` of `app` in `cluster`. It offers 8 CPUs, so the machine's core count
/// does not decide where replicas fit.
fn spec(app: &str, nats: &NatsServer, cluster: &str, node: &str) -> WorkerSpec {
    WorkerSpec::new(app, &nats.url(), cluster, node).num_cpus(8.0)
}

/// Starts worker `node` of `app` in `cluster` and waits until it joined.
fn worker(app: &str, nats: &NatsServer, cluster: &str, node: &str) -> WorkerProcess {
    WorkerProcess::start(spec(app, nats, cluster, node))
}

/// A head of `cluster` and its worker `w1` serving `app`, joined. Dropped in reverse order: the
/// worker, the head, then the NATS server.
fn head_and_worker(app: &str, cluster: &str) -> (NatsServer, Serve, WorkerProcess) {
    let nats = NatsServer::start();
    let serve = head(&nats, cluster);
    let worker = worker(app, &nats, cluster, "w1");
    serve.wait_for_workers(1, PATIENCE).unwrap();
    (nats, serve, worker)
}

/// Where the replicas of deployment `name` run: replica id -> node.
fn placement(serve: &Serve, name: &str) -> BTreeMap<usize, String> {
    deployment_status(serve, name)
        .replicas
        .into_iter()
        .map(|r| {
            let node = r.node.expect("cluster mode names each replica's node");
            (r.replica_id, node)
        })
        .collect()
}

/// The nodes the replicas of deployment `name` run on.
fn nodes_of(serve: &Serve, name: &str) -> BTreeSet<String> {
    placement(serve, name).into_values().collect()
}

fn nodes(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The error an ingress got from a deployment on another node and returned as its own.
fn downstream(err: &ServeError) -> &ServeError {
    assert_eq!(
        err.kind(),
        ErrorKind::User,
        "the ingress returned it: {err}"
    );
    err.downcast_ref::<ServeError>()
        .unwrap_or_else(|| panic!("no downstream error in {err:?}"))
}

// --- 1. the seed programs across processes --------------------------------------------------------

#[tokio::test]
async fn seed_hello_over_http_on_the_head_with_its_responders_on_two_workers() {
    let nats = NatsServer::start();
    let serve = head(&nats, "hello");
    let _workers = [
        worker("hello", &nats, "hello", "w1"),
        worker("hello", &nats, "hello", "w2"),
    ];
    serve.wait_for_workers(2, PATIENCE).unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http(hello_app(), "/").unwrap();

    assert_eq!(nodes_of(&serve, "LanguageClassifier"), nodes(&["head"]));
    let spanish = placement(&serve, "SpanishResponder");
    assert_eq!(spanish.len(), 3, "{spanish:?}");
    assert_eq!(nodes_of(&serve, "SpanishResponder"), nodes(&["w1", "w2"]));
    let french = placement(&serve, "FrenchResponder");
    assert!(
        french.len() == 1 && french.values().all(|n| n == "w1" || n == "w2"),
        "{french:?}"
    );

    for (language, answer) in [
        ("spanish", "Hola Dora"),
        ("french", "Bonjour Dora"),
        ("klingon", "Please try again."),
    ] {
        let reply = post_json(addr, "/", &json!({"language": language, "name": "Dora"})).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, answer));
    }
    // More Spanish greetings, over the replicas on both workers.
    for _ in 0..12 {
        let reply = post_json(addr, "/", &json!({"language": "spanish", "name": "Dora"})).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "Hola Dora"));
    }
    serve.shutdown();
}

#[test]
fn the_chain_runs_with_its_leaves_on_a_worker() {
    let nats = NatsServer::start();
    let serve = Serve::builder()
        .cluster(test_cluster(&nats.url(), "chain1"))
        .start()
        .unwrap();
    let _worker = WorkerProcess::start(WorkerSpec::new("chain", &nats.url(), "chain1", "w1"));
    serve
        .wait_for_workers(1, serve_test_support::PATIENCE)
        .unwrap();
    let handle = serve.run(chain_app()).unwrap();
    assert_eq!(handle.remote(5).result().unwrap(), 12);
    let status = serve.status();
    let nodes: Vec<(String, Option<String>)> = status[0]
        .deployments
        .iter()
        .flat_map(|d| d.replicas.iter().map(|r| (d.name.clone(), r.node.clone())))
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("Adder".into(), Some("w1".into())),
            ("Multiplier".into(), Some("w1".into())),
            ("Ingress".into(), Some("head".into())),
        ]
    );
}

#[test]
fn seed_stream_re_streams_a_generator_on_a_worker() {
    let (_nats, serve, _worker) = head_and_worker("stream", "stream");
    let handle = serve.run(stream_app()).unwrap();
    assert_eq!(nodes_of(&serve, "Streamer"), nodes(&["w1"]));
    assert_eq!(nodes_of(&serve, "Caller"), nodes(&["head"]));

    let items: Vec<u32> = handle
        .remote(10)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(items, (0..10).collect::<Vec<_>>());
}

#[test]
fn seed_object_ref_passes_a_response_from_a_worker_to_a_task() {
    let (_nats, serve, _worker) = head_and_worker("object_ref", "object-ref");
    let handle = serve.run(object_ref_app()).unwrap();
    assert_eq!(nodes_of(&serve, "SayHi"), nodes(&["w1"]));
    assert_eq!(nodes_of(&serve, "Ingress"), nodes(&["head"]));

    assert_eq!(
        handle.remote().result().unwrap(),
        "Ray task got message: 'Hi from Serve deployment'"
    );
}

// --- 2. replicas over two workers all take work ---------------------------------------------------

#[test]
fn replicas_spread_over_two_workers_and_every_one_answers() {
    let nats = NatsServer::start();
    let serve = head(&nats, "spread");
    let _workers = [
        worker("spread", &nats, "spread", "w1"),
        worker("spread", &nats, "spread", "w2"),
    ];
    serve.wait_for_workers(2, PATIENCE).unwrap();
    let handle = serve.run(spread_app()).unwrap();

    let placed = placement(&serve, "Who");
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for node in placed.values() {
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([("w1", 2), ("w2", 2)]),
        "{placed:?}"
    );

    // Bursts of concurrent calls (a replica takes one at a time) until every replica answered.
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + PATIENCE;
    while seen.len() < placed.len() {
        assert!(
            Instant::now() < deadline,
            "only {seen:?} of {placed:?} answered"
        );
        let calls: Vec<_> = (0..40).map(|_| handle.remote()).collect();
        for call in calls {
            let (node, id) = call.result_timeout(PATIENCE).unwrap();
            seen.insert(id, node);
        }
    }
    assert_eq!(seen, placed, "each replica answers from its own node");
}

// --- 3. a long stream across a hop ----------------------------------------------------------------

#[test]
fn ten_thousand_items_stream_across_a_hop_in_order() {
    const ITEMS: u32 = 10_000;
    let (_nats, serve, _worker) = head_and_worker("stream", "long-stream");
    let handle = serve.run(stream_app()).unwrap();
    assert_eq!(nodes_of(&serve, "Streamer"), nodes(&["w1"]));

    let mut next = 0;
    for item in handle.remote(ITEMS) {
        assert_eq!(item.unwrap(), next, "items arrive in order");
        next += 1;
    }
    assert_eq!(next, ITEMS, "every item arrived");
}

// --- 4. cancellation reaches a replica on a worker ------------------------------------------------

#[test]
fn cancelling_on_the_head_drops_the_request_on_the_worker() {
    let (_nats, serve, _worker) = head_and_worker("cancel", "cancel");
    let handle = serve.run(cancel_app()).unwrap();
    assert_eq!(nodes_of(&serve, "Slow"), nodes(&["w1"]));
    assert_eq!(nodes_of(&serve, "CancelIngress"), nodes(&["head"]));

    // The driver cancels the ingress's request; the cancellation follows the call the ingress
    // made to the worker.
    let slow = handle.remote();
    assert_eq!(
        handle.started.remote(1).result().unwrap(),
        1,
        "the slow call runs on the worker"
    );
    assert_eq!(
        handle.dropped.remote(0).result().unwrap(),
        0,
        "nothing was dropped yet"
    );
    slow.cancel();
    assert_eq!(slow.result().unwrap_err().kind(), ErrorKind::Cancelled);
    assert_eq!(
        handle.dropped.remote(1).result().unwrap(),
        1,
        "the worker dropped the cancelled request's future"
    );

    // The ingress (on the head) cancels its own call to the worker.
    assert_eq!(
        handle.start_and_cancel.remote(2).result().unwrap(),
        "2 started, then Err(Cancelled)"
    );
    assert_eq!(
        handle.dropped.remote(2).result().unwrap(),
        2,
        "the worker dropped the second cancelled request's future"
    );
}

// --- 5. back pressure across processes ------------------------------------------------------------

#[tokio::test]
async fn back_pressure_refuses_past_the_queue_of_a_replica_on_a_worker() {
    const CALLS: u32 = 8;
    let refused = CALLS as usize - (1 + HELD_QUEUE);
    let (_nats, serve, _worker) = head_and_worker("pressure", "pressure");
    let handle = serve.run(pressure_app()).unwrap();
    assert_eq!(nodes_of(&serve, "Held"), nodes(&["w1"]));

    let (tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let send = |i: u32| {
        let (call, tx) = (handle.remote(i), tx.clone());
        tokio::spawn(async move { tx.send((i, call.await)) });
    };
    // The first call takes the replica's one slot ...
    send(0);
    assert_eq!(handle.entered.remote(1).await.unwrap(), 1);
    // ... `HELD_QUEUE` more wait for it, and the rest are refused at once.
    for i in 1..CALLS {
        send(i);
    }
    drop(tx);
    for _ in 0..refused {
        let (i, result): (u32, Result<u32, ServeError>) = next_done(&mut done).await.unwrap();
        let err = result.expect_err("only refused calls finish before the valve opens");
        let err = downstream(&err);
        assert_eq!(err.kind(), ErrorKind::BackPressure, "call {i}: {err}");
        assert_eq!(err.deployment(), Some("Held"), "{err}");
    }
    handle.open.remote().await.unwrap();
    let mut ran = BTreeSet::new();
    while let Some((i, result)) = next_done(&mut done).await {
        assert_eq!(
            result.unwrap(),
            i,
            "an accepted call runs once the valve opens"
        );
        ran.insert(i);
    }
    assert_eq!(ran.len(), 1 + HELD_QUEUE, "{ran:?}");
    assert!(ran.contains(&0), "the first call held the slot: {ran:?}");
    assert_eq!(
        handle.entered.remote(0).await.unwrap(),
        1 + HELD_QUEUE,
        "refused calls never reached the worker"
    );
    serve.shutdown();
}

/// The next call to finish (`None` when all did); fails the test after [`PATIENCE`].
async fn next_done<T>(done: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> Option<T> {
    tokio::time::timeout(PATIENCE, done.recv())
        .await
        .expect("a call finishes in time")
}

// --- 6. errors across a hop -----------------------------------------------------------------------

#[test]
fn a_user_error_and_a_panic_on_a_worker_reach_the_head_with_their_messages() {
    let (_nats, serve, _worker) = head_and_worker("errors", "errors");
    let handle = serve.run(errors_app()).unwrap();
    assert_eq!(nodes_of(&serve, "Faulty"), nodes(&["w1"]));

    let err = handle.refuse.remote().result().unwrap_err();
    let seen = downstream(&err);
    assert_eq!(seen.kind(), ErrorKind::User, "{seen}");
    assert_eq!(
        (seen.deployment(), seen.method()),
        (Some("Faulty"), Some("refuse"))
    );
    assert_eq!(
        seen.root_cause().map(|e| e.to_string()).as_deref(),
        Some("the disk is full on w1")
    );
    assert_eq!(
        seen.to_string(),
        "Faulty.refuse failed: the disk is full on w1"
    );

    let err = handle.crash.remote().result().unwrap_err();
    let seen = downstream(&err);
    assert_eq!(seen.kind(), ErrorKind::Panic, "{seen}");
    assert_eq!(
        (seen.deployment(), seen.method()),
        (Some("Faulty"), Some("crash"))
    );
    assert_eq!(seen.message(), Some("crashed on w1"));

    // The replica survives both.
    let err = handle.refuse.remote().result().unwrap_err();
    assert_eq!(downstream(&err).kind(), ErrorKind::User);
}

// --- 7. HTTP on every node ------------------------------------------------------------------------

#[tokio::test]
async fn a_worker_serves_http_through_the_ingress_on_the_head() {
    let nats = NatsServer::start();
    let serve = head(&nats, "every-node");
    let proxy =
        WorkerProcess::start(spec("hello_http", &nats, "every-node", "w1").http("127.0.0.1:0"));
    let _other = worker("hello", &nats, "every-node", "w2");
    serve.wait_for_workers(2, PATIENCE).unwrap();
    serve.run(hello_app()).unwrap();
    assert_eq!(nodes_of(&serve, "LanguageClassifier"), nodes(&["head"]));
    assert_eq!(nodes_of(&serve, "SpanishResponder"), nodes(&["w1", "w2"]));
    assert!(serve.http_addr().is_none(), "the head serves no HTTP here");

    // Worker w1's proxy -> the ingress on the head -> a responder on w1 or w2.
    let addr = proxy.http_addr();
    for (language, answer) in [
        ("spanish", "Hola Dora"),
        ("french", "Bonjour Dora"),
        ("klingon", "Please try again."),
    ] {
        let reply = post_json(addr, "/", &json!({"language": language, "name": "Dora"})).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, answer));
    }
    serve.shutdown();
}

#[test]
fn a_batched_method_on_a_worker_groups_the_calls_from_the_head_and_takes_its_user_config() {
    let (_nats, serve, _worker) = head_and_worker("batch", "batch");
    let handle = serve.run(batch_app()).unwrap();
    assert_eq!(nodes_of(&serve, "BatchModel"), nodes(&["w1"]));
    // The wait is long: batches go when full.
    let (answers, batches) = handle.fan.remote(8).result().unwrap();
    assert_eq!(answers, (0..8).map(|x| 2 * x).collect::<Vec<_>>());
    assert_eq!(batches, [4, 4]);
    // `reconfigure` runs on the worker, on behalf of its replica.
    serve
        .update_deployment(
            "BatchModel",
            serve_core::DeploymentUpdate::new().user_config(json!({"max_batch_size": 2})),
        )
        .unwrap();
    let (answers, batches) = handle.fan.remote(8).result().unwrap();
    assert_eq!(answers, (0..8).map(|x| 2 * x).collect::<Vec<_>>());
    assert_eq!(batches, [2, 2, 2, 2]);
    serve.shutdown();
}
