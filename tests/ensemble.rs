//! Handles nested in constructor arguments: `Vec`, `HashMap`, `BTreeMap`, `Option`, arrays and
//! tuples of `DeploymentHandle`s, bound with the same shapes of `Application`s (ensembles).

use std::collections::{BTreeMap, HashMap};

use serde_json::json;
use serve_core::BoxError;
use serve_core::config::ServeConfig;
use serve_core::http::{Json, Request};
use serve_core::prelude::*;
use serve_test_support::Counter;
use serve_test_support::http::post_json;

/// A tiny "model": scores an input with its own weight.
#[deployment]
pub struct Model {
    weight: i64,
}

#[deployment]
impl Model {
    pub fn new(weight: i64, built: Counter) -> Self {
        built.incr();
        Self { weight }
    }
    pub fn call(&self, x: i64) -> i64 {
        x * self.weight
    }
    pub fn name(&self) -> String {
        serve_core::replica_context()
            .map(|c| c.deployment().to_owned())
            .unwrap_or_default()
    }
}

/// Asks every model and sums their answers.
#[deployment]
pub struct Sum {
    models: Vec<DeploymentHandle<Model>>,
}

#[deployment]
impl Sum {
    pub fn new(models: Vec<DeploymentHandle<Model>>) -> Self {
        Self { models }
    }
    pub async fn call(&self, x: i64) -> Result<i64, ServeError> {
        // Every call is sent before any is awaited: the models run at once.
        let calls: Vec<_> = self.models.iter().map(|m| m.remote(x)).collect();
        let mut sum = 0;
        for call in calls {
            sum += call.await?;
        }
        Ok(sum)
    }
    pub async fn names(&self) -> Result<Vec<String>, ServeError> {
        let mut names = Vec::new();
        for m in &self.models {
            names.push(m.name.remote().await?);
        }
        Ok(names)
    }
}

fn models(weights: &[i64], built: &Counter) -> Vec<Application<Model>> {
    weights
        .iter()
        .map(|&w| Model::bind(w, built.clone()))
        .collect()
}

fn deployment_names(serve: &Serve) -> Vec<String> {
    let status = serve.status();
    assert_eq!(status.len(), 1, "one application");
    status[0]
        .deployments
        .iter()
        .map(|d| d.name.clone())
        .collect()
}

#[test]
fn a_vec_of_handles_deploys_each_model_under_its_own_name() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let sum = serve.run(Sum::bind(models(&[1, 2, 3], &built))).unwrap();

    assert_eq!(sum.remote(10).result().unwrap(), 60, "10 + 20 + 30");
    assert_eq!(built.get(), 3, "three models, one replica each");
    assert_eq!(
        sum.names.remote().result().unwrap(),
        ["Model", "Model_1", "Model_2"],
        "each handle reaches its own model, in the vec's order"
    );
    assert_eq!(
        deployment_names(&serve),
        ["Model", "Model_1", "Model_2", "Sum"],
        "status names each deployment, children first"
    );
    serve.shutdown();
}

#[test]
fn an_empty_vec_deploys_no_model() {
    let serve = Serve::start().unwrap();
    let sum = serve.run(Sum::bind(Vec::new())).unwrap();
    assert_eq!(sum.remote(10).result().unwrap(), 0);
    assert_eq!(deployment_names(&serve), ["Sum"]);
    serve.shutdown();
}

#[test]
fn one_application_bound_twice_in_a_vec_is_one_deployment() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let shared = Model::bind(5, built.clone());
    let other = Model::bind(7, built.clone());
    let sum = serve
        .run(Sum::bind(vec![shared.clone(), other, shared]))
        .unwrap();

    assert_eq!(sum.remote(1).result().unwrap(), 5 + 7 + 5);
    assert_eq!(built.get(), 2, "the shared application is built once");
    assert_eq!(
        sum.names.remote().result().unwrap(),
        ["Model", "Model_1", "Model"],
        "both of its handles reach the one deployment"
    );
    assert_eq!(deployment_names(&serve), ["Model", "Model_1", "Sum"]);
    serve.shutdown();
}

/// Routes by name to one of a map's models; the `Option` is a fallback for unknown names.
#[deployment]
pub struct Router {
    models: HashMap<String, DeploymentHandle<Model>>,
    fallback: Option<DeploymentHandle<Model>>,
}

#[deployment]
impl Router {
    pub fn new(
        models: HashMap<String, DeploymentHandle<Model>>,
        fallback: Option<DeploymentHandle<Model>>,
    ) -> Self {
        Self { models, fallback }
    }
    pub async fn call(&self, name: String, x: i64) -> Result<Option<i64>, ServeError> {
        match self.models.get(&name).or(self.fallback.as_ref()) {
            Some(model) => model.remote(x).await.map(Some),
            None => Ok(None),
        }
    }
    pub async fn names(&self) -> Result<BTreeMap<String, String>, ServeError> {
        let mut names = BTreeMap::new();
        for (key, model) in &self.models {
            names.insert(key.clone(), model.name.remote().await?);
        }
        if let Some(model) = &self.fallback {
            names.insert("<fallback>".into(), model.name.remote().await?);
        }
        Ok(names)
    }
}

#[test]
fn a_hash_map_of_handles_is_wired_by_key_and_named_in_key_order() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let map = HashMap::from([
        ("small".to_owned(), Model::bind(2, built.clone())),
        ("big".to_owned(), Model::bind(100, built.clone())),
        ("mid".to_owned(), Model::bind(10, built.clone())),
    ]);
    let router = serve.run(Router::bind(map, None)).unwrap();

    assert_eq!(router.remote("small", 3).result().unwrap(), Some(6));
    assert_eq!(router.remote("mid", 3).result().unwrap(), Some(30));
    assert_eq!(router.remote("big", 3).result().unwrap(), Some(300));
    assert_eq!(
        router.remote("huge", 3).result().unwrap(),
        None,
        "`None` bound: no fallback"
    );
    assert_eq!(built.get(), 3);
    // Deployed in key order, whatever the map's iteration order: names are stable from run to
    // run and from process to process.
    let names = router.names.remote().result().unwrap();
    assert_eq!(
        names,
        BTreeMap::from([
            ("big".to_owned(), "Model".to_owned()),
            ("mid".to_owned(), "Model_1".to_owned()),
            ("small".to_owned(), "Model_2".to_owned()),
        ])
    );
    assert_eq!(
        deployment_names(&serve),
        ["Model", "Model_1", "Model_2", "Router"]
    );
    serve.shutdown();
}

#[test]
fn an_option_of_a_handle_is_wired_when_some() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let map = HashMap::from([("one".to_owned(), Model::bind(1, built.clone()))]);
    let router = serve
        .run(Router::bind(map, Some(Model::bind(-1, built.clone()))))
        .unwrap();

    assert_eq!(router.remote("one", 4).result().unwrap(), Some(4));
    assert_eq!(
        router.remote("other", 4).result().unwrap(),
        Some(-4),
        "the fallback answers"
    );
    assert_eq!(
        router.names.remote().result().unwrap()["<fallback>"],
        "Model_1"
    );
    assert_eq!(deployment_names(&serve), ["Model", "Model_1", "Router"]);
    serve.shutdown();
}

/// Arrays, tuples, `BTreeMap` and nesting: every shape `Bindable` implements.
#[deployment]
pub struct Shapes {
    pair: [DeploymentHandle<Model>; 2],
    tuple: (
        DeploymentHandle<Model>,
        Vec<Option<DeploymentHandle<Model>>>,
    ),
    tree: BTreeMap<u8, Vec<DeploymentHandle<Model>>>,
}

#[deployment]
impl Shapes {
    pub fn new(
        pair: [DeploymentHandle<Model>; 2],
        tuple: (
            DeploymentHandle<Model>,
            Vec<Option<DeploymentHandle<Model>>>,
        ),
        tree: BTreeMap<u8, Vec<DeploymentHandle<Model>>>,
    ) -> Self {
        Self { pair, tuple, tree }
    }
    pub async fn call(&self, x: i64) -> Result<Vec<i64>, ServeError> {
        let mut out = Vec::new();
        for m in &self.pair {
            out.push(m.remote(x).await?);
        }
        out.push(self.tuple.0.remote(x).await?);
        for m in self.tuple.1.iter().flatten() {
            out.push(m.remote(x).await?);
        }
        for models in self.tree.values() {
            for m in models {
                out.push(m.remote(x).await?);
            }
        }
        Ok(out)
    }
}

#[test]
fn arrays_tuples_btree_maps_and_nesting_are_wired() {
    let serve = Serve::start().unwrap();
    let c = Counter::new();
    let m = |w| Model::bind(w, c.clone());
    let app = Shapes::bind(
        [m(1), m(2)],
        (m(3), vec![Some(m(4)), None, Some(m(5))]),
        BTreeMap::from([(2, vec![m(7)]), (1, vec![m(6)])]),
    );
    let names: Vec<String> = app
        .deployment_configs()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        [
            "Model", "Model_1", "Model_2", "Model_3", "Model_4", "Model_5", "Model_6", "Shapes"
        ]
    );
    let shapes = serve.run(app).unwrap();
    assert_eq!(shapes.remote(1).result().unwrap(), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(c.get(), 7);
    serve.shutdown();
}

#[test]
fn a_config_file_addresses_nested_deployments_by_name() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let app = Sum::bind(models(&[1, 2], &built));
    let config = ServeConfig::from_yaml(
        "applications:\n\
         - name: app\n\
         \x20 deployments:\n\
         \x20 - name: Model_1\n\
         \x20   num_replicas: 3\n",
    )
    .unwrap();
    let mut configs = app.deployment_configs();
    config.applications[0].apply(&mut configs).unwrap();
    let sum = serve.run_configured(app, configs).unwrap();

    assert_eq!(sum.remote(1).result().unwrap(), 3);
    assert_eq!(
        built.get(),
        1 + 3,
        "`Model` has one replica, `Model_1` three"
    );
    let status = &serve.status()[0];
    let replicas: Vec<(String, usize)> = status
        .deployments
        .iter()
        .map(|d| (d.name.clone(), d.num_replicas))
        .collect();
    assert_eq!(
        replicas,
        [
            ("Model".to_owned(), 1),
            ("Model_1".to_owned(), 3),
            ("Sum".to_owned(), 1)
        ]
    );
    serve.shutdown();
}

/// An HTTP ingress over a `Vec` ensemble: the models vote.
#[deployment]
pub struct Vote {
    models: Vec<DeploymentHandle<Model>>,
}

#[deployment]
impl Vote {
    pub fn new(models: Vec<DeploymentHandle<Model>>) -> Self {
        Self { models }
    }
    pub async fn call(&self, req: Request) -> Result<Json<serde_json::Value>, BoxError> {
        let x: i64 = req.json()?;
        let calls: Vec<_> = self.models.iter().map(|m| m.remote(x)).collect();
        let mut positive = 0;
        for call in calls {
            positive += usize::from(call.await? > 0);
        }
        Ok(Json(
            json!({ "positive": positive, "of": self.models.len() }),
        ))
    }
}

#[tokio::test]
async fn an_ensemble_is_served_over_http() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let built = Counter::new();
    serve
        .run_http(Vote::bind(models(&[1, -1, 2], &built)), "/vote")
        .unwrap();

    let reply = post_json(addr, "/vote", &json!(5)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body, json!({ "positive": 2, "of": 3 }));
    assert_eq!(
        deployment_names(&serve),
        ["Model", "Model_1", "Model_2", "Vote"]
    );
    serve.shutdown();
}
