//! Ensembles and `StreamingResponse` across processes: a head in the test process, a worker as a
//! child process (see `serve_test_support::cluster`), and a real `nats-server`. Placement puts
//! every deployment but the ingress on the worker, so each call from the ingress crosses.

use std::collections::HashMap;

use serve_core::http::{Request, StatusCode, StreamPart, StreamingResponse};
use serve_core::prelude::*;
use serve_test_support::cluster::{
    WorkerProcess, WorkerSpec, run_worker, test_cluster, worker_env,
};
use serve_test_support::http::{next_chunk, open};
use serve_test_support::{NatsServer, PATIENCE, deployment_status};

// --- an ensemble: a map of models on the worker ----------------------------------------------------

#[deployment]
pub struct Model {
    weight: i64,
}

#[deployment]
impl Model {
    pub fn new(weight: i64) -> Self {
        Self { weight }
    }
    /// Its answer, and the deployment that gave it.
    pub fn call(&self, x: i64) -> (i64, String) {
        let name = serve_core::replica_context().map(|c| c.deployment().to_owned());
        (x * self.weight, name.unwrap_or_default())
    }
}

#[deployment]
pub struct Ensemble {
    models: HashMap<String, DeploymentHandle<Model>>,
}

#[deployment]
impl Ensemble {
    pub fn new(models: HashMap<String, DeploymentHandle<Model>>) -> Self {
        Self { models }
    }
    /// Each model's answer and deployment, by key.
    pub async fn call(&self, x: i64) -> Result<Vec<(String, i64, String)>, ServeError> {
        let mut keys: Vec<&String> = self.models.keys().collect();
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            let (value, name) = self.models[key].remote(x).await?;
            out.push((key.clone(), value, name));
        }
        Ok(out)
    }
}

fn ensemble_app() -> Application<Ensemble> {
    // Many keys: a map's iteration order differs between the two processes, the names must not.
    let models = (0..8)
        .map(|i| (format!("m{i}"), Model::bind(i)))
        .collect::<HashMap<_, _>>();
    Ensemble::bind(models)
}

// --- a StreamingResponse on the worker, re-streamed by the ingress on the head ------------------------

#[deployment]
#[derive(Default)]
pub struct Report;

#[deployment]
impl Report {
    pub fn call(
        &self,
        req: Request,
    ) -> StreamingResponse<impl Stream<Item = String> + Send + use<>> {
        let rows: u32 = req.query("rows").and_then(|n| n.parse().ok()).unwrap_or(0);
        StreamingResponse::new(futures::stream::iter((0..rows).map(|i| format!("{i}\n"))))
            .status(StatusCode::CREATED)
            .media_type("text/csv")
            .header("x-node", "worker")
    }
}

#[deployment]
pub struct Front {
    report: DeploymentHandle<Report>,
}

#[deployment]
impl Front {
    pub fn new(report: DeploymentHandle<Report>) -> Self {
        Self { report }
    }
    /// Passes the report's parts on as they come, its head first.
    pub fn call(
        &self,
        req: Request,
    ) -> impl Stream<Item = Result<StreamPart<String>, ServeError>> + Send + use<> {
        self.report.remote(req)
    }
}

fn report_app() -> Application<Front> {
    Front::bind(Report::bind())
}

// --- the worker process -----------------------------------------------------------------------------

#[test]
#[ignore = "the worker processes of the cluster tests"]
fn worker_process() {
    let Some(env) = worker_env() else { return };
    match env.app.as_str() {
        "ensemble" => run_worker(ensemble_app(), &env),
        "report" => run_worker(report_app(), &env),
        other => panic!("no application `{other}`"),
    }
}

fn head(nats: &NatsServer, cluster: &str) -> Serve {
    Serve::builder()
        .cluster(test_cluster(&nats.url(), cluster))
        .start()
        .unwrap()
}

fn worker(app: &str, nats: &NatsServer, cluster: &str) -> WorkerProcess {
    WorkerProcess::start(WorkerSpec::new(app, &nats.url(), cluster, "w1").num_cpus(16.0))
}

#[test]
fn a_map_of_handles_names_its_models_alike_in_every_process() {
    let nats = NatsServer::start();
    let serve = head(&nats, "ensemble");
    let _worker = worker("ensemble", &nats, "ensemble");
    serve.wait_for_workers(1, PATIENCE).unwrap();
    let ensemble = serve.run(ensemble_app()).unwrap();

    let answers = ensemble.remote(10).result().unwrap();
    let expected: Vec<(String, i64, String)> = (0..8)
        .map(|i| {
            let name = if i == 0 {
                "Model".to_owned()
            } else {
                format!("Model_{i}")
            };
            (format!("m{i}"), 10 * i, name)
        })
        .collect();
    assert_eq!(
        answers, expected,
        "each key reaches its own model, on the worker"
    );
    for (_, _, name) in &expected {
        let node = deployment_status(&serve, name).replicas[0].node.clone();
        assert_eq!(node.as_deref(), Some("w1"), "{name} runs on the worker");
    }
    serve.shutdown();
}

#[tokio::test]
async fn a_streaming_responses_head_crosses_from_a_worker_to_the_proxy() {
    let nats = NatsServer::start();
    let serve = head(&nats, "report");
    let _worker = worker("report", &nats, "report");
    serve.wait_for_workers(1, PATIENCE).unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http_streaming(report_app(), "/").unwrap();
    let node = deployment_status(&serve, "Report").replicas[0].node.clone();
    assert_eq!(node.as_deref(), Some("w1"));

    let response = tokio::time::timeout(PATIENCE, open(addr, "GET", "/?rows=3", &[], ""))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-type").as_deref(), Some("text/csv"));
    assert_eq!(header("x-node").as_deref(), Some("worker"));
    let mut body = response.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(received, b"0\n1\n2\n");
    serve.shutdown();
}
