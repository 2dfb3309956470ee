//! Model multiplexing: `#[multiplexed]` loaders, `handle.options().multiplexed_model_id(..)`, the
//! HTTP header, routing to the replica that holds a model, LRU eviction, and the same across
//! processes (a real `nats-server`).
//!
//! Tests share the statics below (they run in one process), so each test uses model ids of its
//! own (`"<test>-<model>"`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use serde::{Deserialize, Serialize};
use serve_core::http::{Json, Request};
use serve_core::prelude::*;
use serve_test_support::cluster::{
    WorkerProcess, WorkerSpec, run_worker, test_cluster, worker_env,
};
use serve_test_support::http::send;
use serve_test_support::{NatsServer, PATIENCE, deployment_status};

// --- the deployment: tiny per-model linear functions -------------------------------------------

/// Loads and drops per model id (in this process).
static LOADS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);
static DROPS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);
/// Ids whose loader fails while they are in here.
static FAILING: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);
/// Ids whose load waits until the test lets it finish (`release`).
static HELD: LazyLock<tokio::sync::watch::Sender<Vec<String>>> =
    LazyLock::new(|| tokio::sync::watch::channel(Vec::new()).0);

fn count(map: &Mutex<HashMap<String, usize>>, id: &str) -> usize {
    map.lock().unwrap().get(id).copied().unwrap_or(0)
}

fn loads(id: &str) -> usize {
    count(&LOADS, id)
}

fn drops(id: &str) -> usize {
    count(&DROPS, id)
}

/// A model: `y = w * x + b`, its weights made from its id.
pub struct Linear {
    id: String,
    w: f64,
    b: f64,
}

impl Linear {
    fn new(id: String) -> Self {
        let (w, b) = weights(&id);
        Self { id, w, b }
    }

    fn predict(&self, x: f64) -> f64 {
        self.w * x + self.b
    }
}

/// Model `id`'s weights.
fn weights(id: &str) -> (f64, f64) {
    (
        id.bytes().map(f64::from).sum::<f64>() / 100.0,
        id.len() as f64,
    )
}

/// What model `id` predicts for `x`, computed here (no model is made, or dropped).
fn expected(id: &str, x: f64) -> f64 {
    let (w, b) = weights(id);
    w * x + b
}

/// Whether `y` is model `id`'s prediction for `x` (within what a JSON round trip keeps).
fn predicts(y: f64, id: &str, x: f64) -> bool {
    (y - expected(id, x)).abs() < 1e-9
}

impl Drop for Linear {
    fn drop(&mut self) {
        *DROPS.lock().unwrap().entry(self.id.clone()).or_default() += 1;
    }
}

#[derive(Debug)]
pub struct LoadError(String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no weights for {}", self.0)
    }
}

impl std::error::Error for LoadError {}

/// What a call answers: which replica served it, for which model, and the prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    pub replica: usize,
    pub node: Option<String>,
    pub model_id: String,
    pub y: f64,
}

#[deployment(num_replicas = 2, max_ongoing_requests = 16)]
#[derive(Default)]
pub struct Zoo;

#[deployment]
impl Zoo {
    /// Loads model `model_id`: counted; fails while the id is in `FAILING`; waits while it is in
    /// `HELD`.
    #[multiplexed(max_num_models_per_replica = 2)]
    pub async fn get_model(&self, model_id: String) -> Result<Linear, LoadError> {
        *LOADS.lock().unwrap().entry(model_id.clone()).or_default() += 1;
        HELD.subscribe()
            .wait_for(|held| !held.contains(&model_id))
            .await
            .ok();
        if FAILING.lock().unwrap().contains(&model_id) {
            return Err(LoadError(model_id));
        }
        Ok(Linear::new(model_id))
    }

    /// Predicts with the model the request was sent for.
    pub async fn predict(&self, x: f64) -> Result<Served, ServeError> {
        let id = serve_core::get_multiplexed_model_id().unwrap_or_default();
        let model = self.get_model(&id).await?;
        let ctx = serve_core::replica_context().expect("inside a request");
        assert_eq!(ctx.multiplexed_model_id(), Some(id.as_str()));
        Ok(Served {
            replica: ctx.replica_id(),
            node: ctx.node_name().map(str::to_owned),
            model_id: id,
            y: model.predict(x),
        })
    }

    /// Over HTTP: the model comes from the `serve_multiplexed_model_id` header, `x` from the body.
    pub async fn call(&self, req: Request) -> Result<Json<Served>, serve_core::BoxError> {
        let x: f64 = req.json()?;
        Ok(Json(self.predict(x).await?))
    }

    /// How many times this process loaded model `id`.
    pub fn load_count(&self, id: String) -> usize {
        loads(&id)
    }
}

/// Calls `predict(x)` for model `id`.
async fn predict(handle: &DeploymentHandle<Zoo>, id: &str, x: f64) -> Served {
    handle
        .options()
        .multiplexed_model_id(id)
        .predict
        .remote(x)
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// The model ids each replica of `Zoo` reports in status.
fn held(serve: &Serve) -> BTreeMap<usize, Vec<String>> {
    deployment_status(serve, "Zoo")
        .replicas
        .into_iter()
        .map(|r| (r.replica_id, r.multiplexed_model_ids))
        .collect()
}

// --- one process ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_model_loads_once_and_its_calls_go_to_the_replica_that_holds_it() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Zoo::bind()).unwrap();
    let ids = ["route-a", "route-b", "route-c"];
    let mut home = HashMap::new();
    for id in ids {
        let served = predict(&handle, id, 2.0).await;
        assert_eq!(served.model_id, id);
        assert!(predicts(served.y, id, 2.0), "{served:?}");
        home.insert(id, served.replica);
    }
    // Two replicas hold up to 2 models each: the 3 models fit, and a new model went to the
    // replica holding fewer, so both replicas got one.
    let replicas: std::collections::HashSet<_> = home.values().collect();
    assert_eq!(replicas.len(), 2, "{home:?}");
    for round in 0..5 {
        for id in ids {
            let served = predict(&handle, id, round as f64).await;
            assert_eq!(served.replica, home[id], "{id} goes where it is loaded");
        }
    }
    for id in ids {
        assert_eq!(loads(id), 1, "{id} loaded once");
        assert_eq!(drops(id), 0);
    }
    let status = held(&serve);
    for id in ids {
        assert!(status[&home[id]].contains(&id.to_string()), "{status:?}");
    }
    assert_eq!(
        status.values().map(Vec::len).sum::<usize>(),
        3,
        "{status:?}"
    );
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_model_is_evicted_and_dropped_when_a_new_one_does_not_fit() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Zoo::bind()).unwrap();
    // Four models fill both replicas (2 each); the use order per replica is recorded.
    let mut used: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    fn record(used: &mut BTreeMap<usize, Vec<String>>, served: &Served) {
        let order = used.entry(served.replica).or_default();
        order.retain(|id| *id != served.model_id);
        order.push(served.model_id.clone());
    }
    for id in ["evict-a", "evict-b", "evict-c", "evict-d"] {
        record(&mut used, &predict(&handle, id, 1.0).await);
    }
    assert!(used.values().all(|ids| ids.len() == 2), "{used:?}");
    // Touch the older model of each replica: the other one becomes its least recently used.
    let older: Vec<String> = used.values().map(|ids| ids[0].clone()).collect();
    for id in &older {
        record(&mut used, &predict(&handle, id, 1.0).await);
    }
    let served = predict(&handle, "evict-e", 1.0).await;
    let evicted = used[&served.replica][0].clone();
    assert!(!older.contains(&evicted));
    assert_eq!(drops(&evicted), 1, "{evicted} was evicted and dropped");
    for id in ["evict-a", "evict-b", "evict-c", "evict-d", "evict-e"] {
        if id != evicted {
            assert_eq!(drops(id), 0, "{id} is still loaded");
        }
    }
    let status = held(&serve);
    assert!(
        !status[&served.replica].contains(&evicted)
            && status[&served.replica].contains(&"evict-e".to_string()),
        "{status:?}"
    );
    // Asked for again, the evicted model loads again.
    assert_eq!(loads(&evicted), 1);
    predict(&handle, &evicted, 1.0).await;
    assert_eq!(loads(&evicted), 2);
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_for_one_model_load_it_once() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Zoo::bind()).unwrap();
    let id = "together-a";
    HELD.send_modify(|held| held.push(id.into()));
    let with = handle.options().multiplexed_model_id(id);
    let mut calls = vec![tokio::spawn(with.predict.remote(0.0))];
    // The first call loads the model (held there); the others come while it loads.
    serve_test_support::wait_until("the load started", || loads(id) == 1);
    calls.extend((1..8).map(|i| tokio::spawn(with.predict.remote(i as f64))));
    // Every call is on a replica (the loading one, which routing counts as holding the model).
    serve_test_support::wait_until("all 8 calls run", || {
        deployment_status(&serve, "Zoo")
            .replicas
            .iter()
            .map(|r| r.ongoing_requests)
            .sum::<usize>()
            == 8
    });
    HELD.send_modify(|held| held.retain(|h| h != id));
    let mut replicas = std::collections::HashSet::new();
    for call in calls {
        replicas.insert(call.await.unwrap().unwrap().replica);
    }
    assert_eq!(loads(id), 1, "one load for 8 concurrent calls");
    assert_eq!(replicas.len(), 1, "all served where it loaded");
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_fails_that_call_with_the_loaders_error_and_caches_nothing() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Zoo::bind()).unwrap();
    let id = "fail-a";
    FAILING.lock().unwrap().push(id.into());
    let err = handle
        .options()
        .multiplexed_model_id(id)
        .predict
        .remote(1.0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    let cause = err
        .downcast_ref::<LoadError>()
        .expect("the loader's own error");
    assert_eq!(cause.to_string(), "no weights for fail-a");
    assert!(
        err.to_string()
            .contains("Zoo.get_model failed: could not load model `fail-a`: no weights for fail-a"),
        "{err}"
    );
    assert!(held(&serve).values().all(Vec::is_empty), "nothing cached");
    FAILING.lock().unwrap().clear();
    let served = predict(&handle, id, 1.0).await;
    assert_eq!(served.model_id, id);
    assert_eq!(loads(id), 2, "the retry loaded it");
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_id_is_read_inside_the_request_and_absent_without_one() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(Zoo::bind()).unwrap();
    let with = handle.options().multiplexed_model_id("id-a");
    assert!(format!("{with:?}").contains("Some(\"id-a\")"), "{with:?}");
    let kept: DeploymentHandle<Zoo> = with.handle();
    assert_eq!(kept.predict.remote(1.0).await.unwrap().model_id, "id-a");
    // A call without a model id has none; the loader refuses an empty id.
    let err = handle.predict.remote(1.0).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("`get_model` was given an empty model id"),
        "{err}"
    );
    assert!(
        serve_core::get_multiplexed_model_id().is_none(),
        "outside a request"
    );
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_header_picks_the_model_and_routes_to_its_replica() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http(Zoo::bind(), "/").unwrap();
    let mut replicas = HashMap::new();
    for round in 0..4 {
        for id in ["http-a", "http-b"] {
            let reply = send(
                addr,
                "POST",
                "/",
                &[("serve_multiplexed_model_id", id)],
                format!("{round}.5"),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let served: Served = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(served.model_id, id);
            assert!(predicts(served.y, id, round as f64 + 0.5), "{served:?}");
            assert_eq!(
                *replicas.entry(id).or_insert(served.replica),
                served.replica
            );
        }
    }
    assert_eq!((loads("http-a"), loads("http-b")), (1, 1));
    assert_ne!(
        replicas["http-a"], replicas["http-b"],
        "spread over both replicas"
    );
    let reply = send(addr, "POST", "/", &[], "1").await;
    assert_eq!(reply.status, 500, "no model id: {}", reply.body);
    serve.shutdown();
}

// --- across processes ----------------------------------------------------------------------------

/// The ingress, on the head: forwards to `Zoo` (on a worker) for the model asked.
#[deployment]
pub struct Front {
    zoo: DeploymentHandle<Zoo>,
}

#[deployment]
impl Front {
    pub fn new(zoo: DeploymentHandle<Zoo>) -> Self {
        Self { zoo }
    }

    pub async fn call(&self, id: String, x: f64) -> Result<Served, ServeError> {
        self.zoo
            .options()
            .multiplexed_model_id(id)
            .predict
            .remote(x)
            .await
    }

    /// How many times this process loaded `id` (the worker's count, asked on the worker).
    pub async fn loads_on_worker(&self, id: String) -> Result<usize, ServeError> {
        self.zoo.load_count.remote(id).await
    }
}

fn front_app() -> Application<Front> {
    Front::bind(Zoo::bind())
}

#[test]
#[ignore = "the worker processes of the multiplexing cluster test"]
fn worker_process() {
    let Some(env) = worker_env() else { return };
    match env.app.as_str() {
        "front" => run_worker(front_app(), &env),
        other => panic!("no application `{other}`"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_calls_cross_processes_and_route_by_the_ids_the_replicas_report() {
    let nats = NatsServer::start();
    let serve = Serve::builder()
        .cluster(test_cluster(&nats.url(), "multiplex"))
        .start()
        .unwrap();
    let _worker = WorkerProcess::start(
        WorkerSpec::new("front", &nats.url(), "multiplex", "w1").num_cpus(8.0),
    );
    serve.wait_for_workers(1, PATIENCE).unwrap();
    let front = serve.run(front_app()).unwrap();
    let mut home = HashMap::new();
    for round in 0..4 {
        for id in ["far-a", "far-b", "far-c"] {
            let served = front.remote(id, round as f64).await.unwrap();
            assert_eq!(
                served.node.as_deref(),
                Some("w1"),
                "the model ran on the worker"
            );
            assert_eq!(served.model_id, id);
            assert!(predicts(served.y, id, round as f64), "{served:?}");
            assert_eq!(
                *home.entry(id).or_insert(served.replica),
                served.replica,
                "{id}"
            );
        }
    }
    for id in ["far-a", "far-b", "far-c"] {
        assert_eq!(front.loads_on_worker.remote(id).await.unwrap(), 1, "{id}");
    }
    // The head's status shows what the worker's replicas reported.
    let status = held(&serve);
    for (id, replica) in &home {
        assert!(status[replica].contains(&id.to_string()), "{status:?}");
    }
    serve.shutdown();
}
