//! The HTTP proxy, spoken to over real HTTP on an ephemeral loopback port.

use std::time::Duration;

use serde_json::json;
use serve_core::BoxError;
use serve_core::http::{HttpError, HttpResponse, Json, Request, StatusCode};
use serve_core::prelude::*;
use serve_test_support::http::{next_chunk, open, post_json, send};
use serve_test_support::{Gate, OpenOnDrop, Overloaded, PATIENCE, named};

// --- the seed's hello program, served over HTTP ---------------------------------------------------

/// The example itself (its `main` is the `serve` command line, unused here).
#[path = "../examples/hello.rs"]
#[allow(dead_code)]
mod hello;

use hello::{FrenchResponder, LanguageClassifier, SpanishResponder};

fn hello_app() -> Application<LanguageClassifier> {
    LanguageClassifier::bind(SpanishResponder::bind(), FrenchResponder::bind())
}

#[tokio::test]
async fn seed_hello_over_http() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http(hello_app(), "/").unwrap();

    let reply = post_json(addr, "/", &json!({"language": "spanish", "name": "Dora"})).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hola Dora"));
    assert_eq!(
        reply.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let reply = post_json(addr, "/", &json!({"language": "french", "name": "Dora"})).await;
    assert_eq!(reply.body, "Bonjour Dora");
    let reply = post_json(addr, "/", &json!({"language": "klingon", "name": "Dora"})).await;
    assert_eq!(reply.body, "Please try again.");
    serve.shutdown();
}

#[tokio::test]
async fn bad_bodies_are_4xx_with_the_reason() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http(hello_app(), "/").unwrap();

    let reply = send(addr, "POST", "/", &[], "{not json").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("malformed JSON"), "{}", reply.body);

    let reply = post_json(addr, "/", &json!({"language": "spanish"})).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(
        reply.body.contains("missing field `name`"),
        "{}",
        reply.body
    );
    serve.shutdown();
}

// --- responses, errors, routing --------------------------------------------------------------------

#[deployment]
#[derive(Default)]
pub struct Api;

#[deployment]
impl Api {
    pub fn call(&self, req: Request) -> Result<HttpResponse, Overloaded> {
        match req.route_path() {
            "/json" => Ok(HttpResponse::json(
                StatusCode::OK,
                &json!({"path": req.path(), "root": req.root_path(), "q": req.query("q")}),
            )),
            "/created" => Ok(HttpResponse::text(StatusCode::CREATED, "made")),
            "/fail" => Err(Overloaded),
            "/panic" => panic!("the model crashed"),
            _ => Ok(HttpResponse::text(StatusCode::NOT_FOUND, "no such route")),
        }
    }
}

#[deployment]
#[derive(Default)]
pub struct Echo;

#[deployment]
impl Echo {
    pub fn call(&self, req: Request) -> Json<serde_json::Value> {
        Json(json!({
            "method": req.method(),
            "path": req.path(),
            "body": req.text().unwrap_or_default(),
            "agent": req.header("X-Agent"),
        }))
    }
}

#[tokio::test]
async fn statuses_errors_and_several_applications_under_prefixes() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .run_http(Api::bind(), named("api").route_prefix("/api"))
        .unwrap();
    serve
        .run_http(Echo::bind(), named("echo").route_prefix("/"))
        .unwrap();

    let reply = send(addr, "GET", "/api/json?q=hola%20dora", &[], "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let value: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        value,
        json!({"path": "/api/json", "root": "/api", "q": "hola dora"})
    );

    assert_eq!(send(addr, "GET", "/api/created", &[], "").await.status, 201);

    let reply = send(addr, "GET", "/api/fail", &[], "").await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("model overloaded"), "{}", reply.body);

    let reply = send(addr, "GET", "/api/panic", &[], "").await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("the model crashed"), "{}", reply.body);
    assert_eq!(
        send(addr, "GET", "/api/json", &[], "").await.status,
        200,
        "the replica still serves after the panic"
    );

    // Everything else goes to the application at `/`.
    let reply = send(addr, "PUT", "/apix/other", &[("x-agent", "test")], "hi").await;
    assert_eq!(reply.status, 200);
    let value: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        value,
        json!({"method": "PUT", "path": "/apix/other", "body": "hi", "agent": "test"})
    );
    serve.shutdown();
}

#[tokio::test]
async fn a_path_no_application_serves_is_404_and_prefixes_are_unique() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .run_http(Api::bind(), named("api").route_prefix("/api"))
        .unwrap();
    let reply = send(addr, "GET", "/elsewhere", &[], "").await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.body.contains("no application serves"),
        "{}",
        reply.body
    );

    let err = serve
        .run_http(Echo::bind(), named("echo").route_prefix("/api/"))
        .unwrap_err();
    assert!(err.to_string().contains("already served"), "{err}");
    let err = serve
        .run_http(Echo::bind(), named("echo").route_prefix("nope"))
        .unwrap_err();
    assert!(err.to_string().contains("must start with `/`"), "{err}");
    serve.shutdown();
}

// --- streaming -------------------------------------------------------------------------------------

#[deployment]
pub struct Tokens {
    step: Gate,
}

#[deployment]
impl Tokens {
    pub fn new(step: Gate) -> Self {
        Self { step }
    }

    /// Streams the words of the `text` query parameter; waits for the gate after the first.
    pub fn call(&self, req: Request) -> impl Stream<Item = Result<String, HttpError>> + Send + '_ {
        try_stream! {
            let text = req.query("text").ok_or_else(|| HttpError::bad_request("no text"))?;
            for (i, word) in text.split(' ').enumerate() {
                if i == 1 {
                    self.step.wait().await;
                }
                if word == "boom" {
                    Err(HttpError::bad_request("boom"))?;
                }
                yield format!("{word}\n");
            }
        }
    }
}

#[tokio::test]
async fn a_streamed_response_arrives_chunk_by_chunk() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let step = Gate::new();
    serve
        .run_http_streaming(Tokens::bind(step.clone()), "/")
        .unwrap();

    let response = open(addr, "GET", "/?text=hola%20dora%20adios", &[], "").await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = tokio::time::timeout(PATIENCE, next_chunk(&mut body))
        .await
        .unwrap();
    assert_eq!(&first.unwrap().unwrap()[..], b"hola\n");
    assert!(
        !step.is_open(),
        "the first chunk came before the rest was produced"
    );
    step.open();
    let mut rest = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"dora\nadios\n");
    serve.shutdown();
}

#[tokio::test]
async fn server_sent_events_when_the_client_asks_for_them() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let step = Gate::new();
    step.open();
    serve.run_http_streaming(Tokens::bind(step), "/").unwrap();
    let reply = send(
        addr,
        "GET",
        "/?text=a%20b",
        &[("accept", "text/event-stream")],
        "",
    )
    .await;
    assert_eq!(reply.content_type.as_deref(), Some("text/event-stream"));
    assert_eq!(reply.body, "data: a\n\ndata: b\n\n");

    // An error becomes a final `error` event.
    let reply = send(
        addr,
        "GET",
        "/?text=a%20boom%20c",
        &[("accept", "text/event-stream")],
        "",
    )
    .await;
    assert_eq!(reply.body, "data: a\n\nevent: error\ndata: boom\n\n");
    serve.shutdown();
}

#[tokio::test]
async fn an_error_mid_stream_breaks_the_response_instead_of_hanging() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let step = Gate::new();
    step.open();
    serve.run_http_streaming(Tokens::bind(step), "/").unwrap();
    let response = open(addr, "GET", "/?text=one%20boom%20three", &[], "").await;
    let mut body = response.into_body();
    let mut received = Vec::new();
    let end = loop {
        match tokio::time::timeout(PATIENCE, next_chunk(&mut body))
            .await
            .expect("the stream ends instead of hanging")
        {
            Some(Ok(chunk)) => received.extend_from_slice(&chunk),
            other => break other,
        }
    };
    assert!(
        matches!(end, Some(Err(_))),
        "a broken stream, not a clean end: {end:?}"
    );
    // What arrived before the break (hyper may not flush it) is a prefix of the good items.
    assert!(b"one\n".starts_with(&received), "{received:?}");
    serve.shutdown();
}

#[tokio::test]
async fn an_error_before_the_first_item_gets_its_own_status() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .run_http_streaming(Tokens::bind(Gate::new()), "/")
        .unwrap();
    // No `text`: the stream fails before it yields anything, so the head can still say so.
    let reply = send(addr, "GET", "/", &[], "").await;
    assert_eq!((reply.status, reply.body.as_str()), (400, "no text"));
    let reply = send(addr, "GET", "/", &[("accept", "text/event-stream")], "").await;
    assert_eq!((reply.status, reply.body.as_str()), (400, "no text"));
    serve.shutdown();
}

// --- client disconnect -------------------------------------------------------------------------------

#[deployment]
pub struct SlowModel {
    entered: Gate,
    dropped: Gate,
}

#[deployment]
impl SlowModel {
    pub fn new(entered: Gate, dropped: Gate) -> Self {
        Self { entered, dropped }
    }
    /// Would run for a minute unless cancelled.
    pub async fn predict(&self, _input: String) -> String {
        let _guard = OpenOnDrop(self.dropped.clone());
        self.entered.open();
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        "done".into()
    }
}

#[deployment]
pub struct Front {
    model: DeploymentHandle<SlowModel>,
}

#[deployment]
impl Front {
    pub fn new(model: DeploymentHandle<SlowModel>) -> Self {
        Self { model }
    }
    pub async fn call(&self, req: Request) -> Result<String, HttpError> {
        let input = req.text()?.to_owned();
        self.model
            .predict
            .remote(input)
            .await
            .map_err(|e| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_request_and_its_downstream_calls() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, dropped) = (Gate::new(), Gate::new());
    serve
        .run_http(
            Front::bind(SlowModel::bind(entered.clone(), dropped.clone())),
            "/",
        )
        .unwrap();

    let request = tokio::spawn(open(addr, "POST", "/", &[], "input"));
    entered
        .expect_open("the downstream model call started")
        .await;
    request.abort(); // the client goes away: its connection is dropped
    dropped
        .expect_open("the downstream call was cancelled after the client left")
        .await;
    serve.shutdown();
}

// --- graceful shutdown ---------------------------------------------------------------------------------

#[deployment]
pub struct Finisher {
    entered: Gate,
    release: Gate,
}

#[deployment]
impl Finisher {
    pub fn new(entered: Gate, release: Gate) -> Self {
        Self { entered, release }
    }
    pub async fn call(&self, _req: Request) -> String {
        self.entered.open();
        self.release.wait().await;
        "finished".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_stops_accepting_and_lets_the_request_in_flight_finish() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, release) = (Gate::new(), Gate::new());
    serve
        .run_http(Finisher::bind(entered.clone(), release.clone()), "/")
        .unwrap();

    let in_flight = tokio::spawn(send(addr, "POST", "/", &[], ""));
    entered.expect_open("the request is running").await;
    let stopping = serve.clone();
    let shutdown = tokio::task::spawn_blocking(move || stopping.shutdown_graceful(PATIENCE));

    // New connections are refused once the proxy stopped listening (no signal to wait on from
    // outside the process, so poll, bounded).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy kept accepting"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the request in flight"
    );

    release.open();
    let reply = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "finished"));
    assert!(
        shutdown.await.unwrap(),
        "everything in flight finished in time"
    );
}

#[tokio::test]
async fn the_proxy_reports_health_routes_and_status() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve.run_http(hello_app(), "/hello").unwrap();
    assert_eq!(
        send(addr, "GET", "/-/healthz", &[], "").await.body,
        "success"
    );
    let routes: serde_json::Value =
        serde_json::from_str(&send(addr, "GET", "/-/routes", &[], "").await.body).unwrap();
    assert_eq!(routes, json!({"/hello": "default"}));
    let status: serde_json::Value =
        serde_json::from_str(&send(addr, "GET", "/-/status", &[], "").await.body).unwrap();
    let app = &status["applications"][0];
    assert_eq!(
        app["name"], "default",
        "`run_http` without a name runs `default`"
    );
    assert_eq!(app["route_prefix"], "/hello");
    let names: Vec<&str> = app["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["SpanishResponder", "FrenchResponder", "LanguageClassifier"]
    );
    assert_eq!(
        serve.status()[0].deployments[0].replicas.len(),
        3,
        "SpanishResponder runs 3 replicas"
    );
    serve.shutdown();
}

#[tokio::test]
async fn a_full_queue_answers_503_and_the_waiting_requests_still_run() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, release) = (Gate::new(), Gate::new());
    let app = Finisher::bind(entered.clone(), release.clone());
    let mut configs = app.deployment_configs();
    let root = configs
        .pop()
        .unwrap()
        .max_ongoing_requests(1)
        .max_queued_requests(1);
    configs.push(root);
    serve.run_http_configured(app, "/", configs).unwrap();

    let running = tokio::spawn(send(addr, "POST", "/", &[], ""));
    entered
        .expect_open("the first request holds the only slot")
        .await;
    let waiting = tokio::spawn(send(addr, "POST", "/", &[], ""));
    // The second request is queued once the deployment reports it (no signal from outside).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while serve.status()[0].deployments[0].queued_requests == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second request never queued"
        );
        tokio::task::yield_now().await;
    }
    let dropped = send(addr, "POST", "/", &[], "").await;
    assert_eq!(dropped.status, 503);
    assert_eq!(dropped.body, "Request dropped due to backpressure");

    release.open();
    for request in [running, waiting] {
        let reply = tokio::time::timeout(PATIENCE, request)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "finished"));
    }
    serve.shutdown();
}

// --- downstream failures passed on with `?` ------------------------------------------------------

/// A model with one slot and room for one waiting call; `entered` opens when a call runs, which
/// then waits for `release`. `dropped` opens when a call stops, finished or cancelled.
#[deployment(max_ongoing_requests = 1, max_queued_requests = 1)]
pub struct Held {
    entered: Gate,
    release: Gate,
    dropped: Gate,
}

#[deployment]
impl Held {
    pub fn new(entered: Gate, release: Gate, dropped: Gate) -> Self {
        Self {
            entered,
            release,
            dropped,
        }
    }

    pub async fn predict(&self, input: String) -> String {
        let _guard = OpenOnDrop(self.dropped.clone());
        self.entered.open();
        self.release.wait().await;
        input
    }
}

/// An ingress that passes the model's failures on with `?`: `/timeout` gives the model call
/// 50 ms; `/queue` opens `queued` once its call was handed to the model (running or waiting).
#[deployment]
pub struct Relay {
    model: DeploymentHandle<Held>,
    queued: Gate,
}

#[deployment]
impl Relay {
    pub fn new(model: DeploymentHandle<Held>, queued: Gate) -> Self {
        Self { model, queued }
    }

    pub async fn call(&self, req: Request) -> Result<String, ServeError> {
        let input = req.query("input").unwrap_or_default();
        let mut prediction = self.model.predict.remote(input);
        match req.route_path() {
            "/timeout" => prediction = prediction.timeout(Duration::from_millis(50)),
            "/queue" => self.queued.open(),
            _ => {}
        }
        Ok(format!("predicted {}", prediction.await?))
    }
}

#[tokio::test]
async fn a_downstream_back_pressure_error_passed_on_is_503() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, release, queued) = (Gate::new(), Gate::new(), Gate::new());
    let model = Held::bind(entered.clone(), release.clone(), Gate::new());
    serve
        .run_http(Relay::bind(model, queued.clone()), "/")
        .unwrap();

    let running = tokio::spawn(send(addr, "GET", "/?input=a", &[], ""));
    entered
        .expect_open("the first call holds the model's only slot")
        .await;
    let waiting = tokio::spawn(send(addr, "GET", "/queue?input=b", &[], ""));
    queued
        .expect_open("the second call waits in the model's queue")
        .await;
    let reply = send(addr, "GET", "/?input=c", &[], "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "Request dropped due to backpressure"),
        "as if the ingress's own queue were full"
    );

    release.open();
    for (request, expected) in [(running, "predicted a"), (waiting, "predicted b")] {
        let reply = tokio::time::timeout(PATIENCE, request)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, expected));
    }
    serve.shutdown();
}

#[tokio::test]
async fn a_downstream_per_call_timeout_is_504_and_the_proxys_own_timeout_stays_408() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    serve
        .set_http_request_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let dropped = Gate::new();
    let model = Held::bind(Gate::new(), Gate::new(), dropped.clone());
    serve
        .run_http(Relay::bind(model, Gate::new()), "/")
        .unwrap();

    let reply = send(addr, "GET", "/timeout", &[], "").await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert_eq!(
        reply.body,
        "Gateway Timeout: Relay.call failed: timed out: no result within 50ms; the request was \
         cancelled"
    );
    dropped
        .expect_open("the model call was cancelled when its timeout ran out")
        .await;

    let reply = send(addr, "GET", "/", &[], "").await;
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert!(
        reply.body.starts_with("Request Timeout: "),
        "{}",
        reply.body
    );
    serve.shutdown();
}

/// A user error that keeps the model's failure as its source.
#[derive(Debug)]
pub struct ModelFailed(ServeError);
impl std::fmt::Display for ModelFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the model failed")
    }
}
impl std::error::Error for ModelFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[deployment]
pub struct WrappingRelay {
    model: DeploymentHandle<Held>,
}

#[deployment]
impl WrappingRelay {
    pub fn new(model: DeploymentHandle<Held>) -> Self {
        Self { model }
    }

    pub async fn call(&self, _req: Request) -> Result<String, BoxError> {
        let prediction = self.model.predict.remote(String::new());
        let prediction = prediction.timeout(Duration::from_millis(50)).await;
        Ok(prediction.map_err(ModelFailed)?)
    }
}

#[tokio::test]
async fn a_downstream_failure_in_a_user_errors_source_chain_answers_by_its_kind() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let model = Held::bind(Gate::new(), Gate::new(), Gate::new());
    serve.run_http(WrappingRelay::bind(model), "/").unwrap();
    let reply = send(addr, "GET", "/", &[], "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            504,
            "Gateway Timeout: WrappingRelay.call failed: the model failed"
        )
    );
    serve.shutdown();
}
