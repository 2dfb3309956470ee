//! Cluster mode across processes: a head in the test process, workers as child processes (the
//! test executable itself, see `serve_test_support::cluster`), and a real `nats-server`.

use serve_core::prelude::*;
use serve_test_support::NatsServer;
use serve_test_support::cluster::{
    WorkerProcess, WorkerSpec, run_worker, test_cluster, worker_env,
};

#[deployment]
pub struct Adder {
    increment: i32,
}

#[deployment]
impl Adder {
    pub fn new(increment: i32) -> Self {
        Self { increment }
    }

    pub fn call(&self, val: i32) -> i32 {
        val + self.increment
    }
}

#[deployment]
pub struct Multiplier {
    multiple: i32,
}

#[deployment]
impl Multiplier {
    pub fn new(multiple: i32) -> Self {
        Self { multiple }
    }

    pub fn call(&self, val: i32) -> i32 {
        val * self.multiple
    }
}

#[deployment]
pub struct Ingress {
    adder: DeploymentHandle<Adder>,
    multiplier: DeploymentHandle<Multiplier>,
}

#[deployment]
impl Ingress {
    pub fn new(adder: DeploymentHandle<Adder>, multiplier: DeploymentHandle<Multiplier>) -> Self {
        Self { adder, multiplier }
    }

    pub async fn call(&self, input: i32) -> Result<i32, ServeError> {
        let adder_response = self.adder.remote(input);
        self.multiplier.remote(adder_response).await
    }
}

fn chain_app() -> Application<Ingress> {
    Ingress::bind(Adder::bind(1), Multiplier::bind(2))
}

#[test]
#[ignore = "the worker processes of the cluster tests"]
fn worker_process() {
    let Some(env) = worker_env() else { return };
    match env.app.as_str() {
        "chain" => run_worker(chain_app(), &env),
        other => panic!("no application `{other}`"),
    }
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
