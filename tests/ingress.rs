//! `#[ingress]`: typed routes spoken to over real HTTP on an ephemeral loopback port.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use serve_core::http::{HttpError, Json, Request, StatusCode};
use serve_core::prelude::*;
use serve_test_support::http::{Reply, open, post_json, send};
use serve_test_support::{Gate, Overloaded, PATIENCE};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    id: u64,
    name: String,
    age: u32,
}

#[derive(Debug, Deserialize)]
pub struct NewUser {
    name: String,
    age: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

/// A downstream deployment the routes call through a handle.
#[deployment]
#[derive(Default)]
pub struct Greeter;

#[deployment]
impl Greeter {
    pub fn say_hello(&self, name: String) -> String {
        format!("Hola {name}")
    }
}

#[deployment]
pub struct Users {
    users: Mutex<Vec<User>>,
    greeter: DeploymentHandle<Greeter>,
}

/// The users API.
#[ingress]
impl Users {
    pub fn new(greeter: DeploymentHandle<Greeter>) -> Self {
        let dora = User {
            id: 1,
            name: "Dora".into(),
            age: 7,
        };
        Self {
            users: Mutex::new(vec![dora]),
            greeter,
        }
    }

    /// Reads a user.
    ///
    /// Looks the user up by id; `verbose` adds how many users there are.
    #[get("/users/{id}")]
    pub async fn get_user(&self, id: u64, verbose: Option<bool>) -> Result<Json<Value>, HttpError> {
        let users = self.users.lock().unwrap();
        let user = users
            .iter()
            .find(|u| u.id == id)
            .ok_or_else(|| HttpError::not_found(format!("no user {id}")))?;
        let mut value = serde_json::to_value(user).unwrap();
        if verbose == Some(true) {
            value["of"] = json!(users.len());
        }
        Ok(Json(value))
    }

    /// Forgets a user.
    #[delete("/users/{id}")]
    pub fn delete_user(&self, id: u64) -> StatusCode {
        self.users.lock().unwrap().retain(|u| u.id != id);
        StatusCode::NO_CONTENT
    }

    /// A literal segment beats `{id}`.
    #[get("/users/me")]
    pub fn me(&self) -> &'static str {
        "it's me"
    }

    #[post("/users", tags = ["users"])]
    pub fn create(&self, body: Json<NewUser>) -> (StatusCode, Json<User>) {
        let Json(new) = body;
        let mut users = self.users.lock().unwrap();
        let user = User {
            id: users.len() as u64 + 1,
            name: new.name,
            age: new.age,
        };
        users.push(user.clone());
        (StatusCode::CREATED, Json(user))
    }

    #[get("/users")]
    pub fn list(&self, limit: usize, order: Option<Order>) -> Json<Vec<String>> {
        let mut names: Vec<String> = self
            .users
            .lock()
            .unwrap()
            .iter()
            .map(|u| u.name.clone())
            .collect();
        names.sort();
        if matches!(order, Some(Order::Desc)) {
            names.reverse();
        }
        names.truncate(limit);
        Json(names)
    }

    /// Path parameters in any argument order, percent-decoded, next to the whole request.
    #[put("/echo/{a}/{b}")]
    pub async fn echo(&self, b: String, req: Request, a: i32) -> Json<Value> {
        Json(json!({
            "a": a,
            "b": b,
            "path": req.path(),
            "route_path": req.route_path(),
            "agent": req.header("x-agent"),
            "body": req.text().unwrap_or_default(),
        }))
    }

    /// Calls the greeter through its handle, awaiting it.
    #[get("/greet/{name}")]
    pub async fn greet(&self, name: String) -> Result<String, ServeError> {
        self.greeter.say_hello.remote(name).await
    }

    /// The same from a sync handler, which may block on the call.
    #[get("/greet-sync/{name}")]
    pub fn greet_sync(&self, name: String) -> Result<String, ServeError> {
        self.greeter.say_hello.remote(name).result()
    }

    #[get("/fail")]
    pub fn fail(&self) -> Result<String, Overloaded> {
        Err(Overloaded)
    }

    #[get("/panic")]
    pub fn panic(&self) -> String {
        panic!("the model crashed")
    }

    #[get("/health")]
    pub fn health(&self) -> String {
        "ok".into()
    }

    /// Compiled out: neither routed nor documented.
    #[cfg(any())]
    #[get("/hidden")]
    pub fn hidden(&self) -> String {
        "hidden".into()
    }

    /// Not a route: an ordinary endpoint on the handle.
    pub fn count(&self) -> usize {
        self.users.lock().unwrap().len()
    }
}

fn app() -> Application<Users> {
    Users::bind(Greeter::bind())
}

fn start(prefix: &str) -> (Serve, SocketAddr, DeploymentHandle<Users>) {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let handle = serve.run_http(app(), prefix).unwrap();
    (serve, addr, handle)
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], "").await
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

#[tokio::test]
async fn path_query_and_body_parameters() {
    let (serve, addr, handle) = start("/");

    let reply = get(addr, "/users/1").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(json_of(&reply), json!({"id": 1, "name": "Dora", "age": 7}));
    let reply = get(addr, "/users/1?verbose=true").await;
    assert_eq!(json_of(&reply)["of"], 1);
    assert_eq!(get(addr, "/users/1/").await.status, 200, "a trailing slash");
    assert_eq!(get(addr, "/users/me").await.body, "it's me");

    let reply = post_json(addr, "/users", &json!({"name": "Boots", "age": 5})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(json_of(&reply), json!({"id": 2, "name": "Boots", "age": 5}));
    assert_eq!(
        handle.count.remote().await.unwrap(),
        2,
        "`count` is a handle endpoint"
    );

    let reply = get(addr, "/users?limit=5&order=desc").await;
    assert_eq!(json_of(&reply), json!(["Dora", "Boots"]));
    let reply = get(addr, "/users?limit=1").await;
    assert_eq!(json_of(&reply), json!(["Boots"]));

    let reply = send(
        addr,
        "PUT",
        "/echo/-3/hola%20dora%2Fexplorer?x=1",
        &[("x-agent", "test")],
        "hi",
    )
    .await;
    assert_eq!(
        json_of(&reply),
        json!({"a": -3, "b": "hola dora/explorer", "path": "/echo/-3/hola%20dora%2Fexplorer",
               "route_path": "/echo/-3/hola%20dora%2Fexplorer", "agent": "test", "body": "hi"})
    );

    let reply = send(addr, "DELETE", "/users/2", &[], "").await;
    assert_eq!(reply.status, 204);
    assert_eq!(get(addr, "/users/2").await.status, 404);
    serve.shutdown();
}

#[tokio::test]
async fn bad_requests_are_400_or_422_with_the_reason() {
    let (serve, addr, _) = start("/");

    let reply = send(addr, "POST", "/users", &[], "{not json").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("malformed JSON"), "{}", reply.body);

    let reply = post_json(addr, "/users", &json!({"name": "Boots", "age": "five"})).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(
        reply
            .body
            .starts_with("invalid request body: at `age`: invalid type"),
        "{}",
        reply.body
    );
    let reply = post_json(addr, "/users", &json!({"age": 5})).await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.body.contains("missing field `name`"),
        "{}",
        reply.body
    );

    let reply = get(addr, "/users/abc").await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.body,
        "invalid path parameter `id`: invalid digit found in string"
    );

    let reply = get(addr, "/users").await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body, "missing query parameter `limit`");

    // Every failing argument is reported at once.
    let reply = get(addr, "/users?limit=-1&order=sideways").await;
    assert_eq!(reply.status, 422);
    assert!(
        reply.body.starts_with("invalid query parameter `limit`: "),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("; invalid query parameter `order`: unknown variant `sideways`"),
        "{}",
        reply.body
    );

    let reply = get(addr, "/users/1?verbose=maybe").await;
    assert_eq!(reply.status, 422);
    assert!(reply.body.contains("`verbose`"), "{}", reply.body);
    serve.shutdown();
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405_with_allow() {
    let (serve, addr, _) = start("/");

    let reply = get(addr, "/nope").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, "Not Found: no route matches `/nope`");
    assert_eq!(
        get(addr, "/hidden").await.status,
        404,
        "a `#[cfg]`'d-out route"
    );
    assert_eq!(get(addr, "/users/1/2").await.status, 404);

    let response = open(addr, "PATCH", "/users/1", &[], "").await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "DELETE, GET");
    let reply = send(addr, "PATCH", "/users/1", &[], "").await;
    assert!(
        reply
            .body
            .contains("`/users/1` accepts DELETE, GET, not PATCH"),
        "{}",
        reply.body
    );

    let response = open(addr, "DELETE", "/users", &[], "").await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST");
    serve.shutdown();
}

#[tokio::test]
async fn handler_errors_are_500_and_a_panic_leaves_the_replica_serving() {
    let (serve, addr, _) = start("/");

    let reply = get(addr, "/fail").await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, "Internal Server Error: model overloaded");

    let reply = get(addr, "/panic").await;
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("the model crashed"), "{}", reply.body);
    assert_eq!(get(addr, "/health").await.body, "ok", "still serving");

    let reply = get(addr, "/users/9").await;
    assert_eq!((reply.status, reply.body.as_str()), (404, "no user 9"));
    serve.shutdown();
}

#[tokio::test]
async fn route_handlers_call_other_deployments_through_handles() {
    let (serve, addr, _) = start("/");
    let reply = get(addr, "/greet/Dora").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hola Dora"));
    let reply = get(addr, "/greet-sync/Boots").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "Hola Boots"),
        "a sync handler may block on a handle call"
    );
    serve.shutdown();
}

#[tokio::test]
async fn an_ingress_under_a_prefix_matches_below_it() {
    let (serve, addr, _) = start("/api/v1");
    assert_eq!(get(addr, "/api/v1/users/1").await.status, 200);
    assert_eq!(get(addr, "/api/v1/health").await.body, "ok");
    let reply = get(addr, "/api/v1/nope").await;
    assert_eq!(reply.body, "Not Found: no route matches `/nope`");
    let reply = get(addr, "/users/1").await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.body.contains("no application serves"),
        "{}",
        reply.body
    );

    let doc = json_of(&get(addr, "/api/v1/openapi.json").await);
    assert_eq!(doc["servers"], json!([{"url": "/api/v1"}]));
    assert!(doc["paths"]["/users/{id}"].is_object());
    serve.shutdown();
}

#[tokio::test]
async fn openapi_json_describes_the_routes() {
    let (serve, addr, _) = start("/");
    let reply = get(addr, "/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let doc = json_of(&reply);

    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(
        doc["info"],
        json!({"title": "Users", "version": env!("CARGO_PKG_VERSION"), "description": "The users API."})
    );
    assert!(
        doc.get("servers").is_none(),
        "at `/` the paths are absolute"
    );
    // (serde_json's map sorts the keys; the document lists them in source order.)
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/echo/{a}/{b}",
            "/fail",
            "/greet-sync/{name}",
            "/greet/{name}",
            "/health",
            "/panic",
            "/users",
            "/users/me",
            "/users/{id}",
        ]
    );
    assert!(reply.body.find("\"/users/{id}\"") < reply.body.find("\"/health\""));
    assert!(!reply.body.contains("hidden"));
    assert_eq!(
        doc["paths"]["/users/{id}"]["get"],
        json!({
            "operationId": "get_user",
            "summary": "Reads a user.",
            "description": "Looks the user up by id; `verbose` adds how many users there are.",
            "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}},
                {"name": "verbose", "in": "query", "required": false, "schema": {"type": "boolean"}}
            ],
            "responses": {
                "200": {"description": "Successful Response"},
                "422": {"description": "Validation Error"}
            }
        })
    );
    assert_eq!(
        doc["paths"]["/users/{id}"]["delete"]["operationId"],
        "delete_user"
    );
    let create = &doc["paths"]["/users"]["post"];
    assert_eq!(create["tags"], json!(["users"]));
    assert_eq!(
        create["requestBody"],
        json!({"required": true, "content": {"application/json": {"schema": {"title": "NewUser"}}}})
    );
    let list = &doc["paths"]["/users"]["get"]["parameters"];
    assert_eq!(
        list,
        &json!([
            {"name": "limit", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}},
            {"name": "order", "in": "query", "required": false, "schema": {"title": "Order"}}
        ])
    );
    let echo = &doc["paths"]["/echo/{a}/{b}"]["put"]["parameters"];
    let kinds: Vec<_> = echo
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["schema"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("b", "string"), ("a", "integer")],
        "the `Request` is no parameter"
    );
    serve.shutdown();
}

#[test]
fn the_routing_call_is_a_handle_endpoint_too() {
    let serve = Serve::start().unwrap();
    let handle = serve.run(app()).unwrap();
    let response = handle
        .remote(Request::new("GET", "/users/1"))
        .result()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = handle
        .call
        .remote(Request::new("POST", "/health"))
        .result()
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    serve.shutdown();
}

// --- downstream failures ------------------------------------------------------------------------------

/// A model with one slot and room for one waiting call; `entered` opens when a call runs, which
/// then waits for `release`.
#[deployment(max_ongoing_requests = 1, max_queued_requests = 1)]
pub struct Busy {
    entered: Gate,
    release: Gate,
}

#[deployment]
impl Busy {
    pub fn new(entered: Gate, release: Gate) -> Self {
        Self { entered, release }
    }

    pub async fn work(&self) -> String {
        self.entered.open();
        self.release.wait().await;
        "worked".into()
    }
}

#[deployment]
pub struct Gateway {
    model: DeploymentHandle<Busy>,
    queued: Gate,
}

/// Routes that return the model's `ServeError` as it is.
#[ingress]
impl Gateway {
    pub fn new(model: DeploymentHandle<Busy>, queued: Gate) -> Self {
        Self { model, queued }
    }

    #[get("/work")]
    pub async fn work(&self) -> Result<String, ServeError> {
        self.model.work.remote().await
    }

    /// Opens `queued` once the call was handed to the model (running or waiting).
    #[get("/queue")]
    pub async fn queue(&self) -> Result<String, ServeError> {
        let work = self.model.work.remote();
        self.queued.open();
        work.await
    }

    #[get("/slow")]
    pub async fn slow(&self) -> Result<String, ServeError> {
        self.model
            .work
            .remote()
            .timeout(Duration::from_millis(50))
            .await
    }
}

#[tokio::test]
async fn a_route_passing_on_downstream_back_pressure_answers_503() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, release, queued) = (Gate::new(), Gate::new(), Gate::new());
    let model = Busy::bind(entered.clone(), release.clone());
    serve
        .run_http(Gateway::bind(model, queued.clone()), "/")
        .unwrap();

    let running = tokio::spawn(get(addr, "/work"));
    entered
        .expect_open("the first call holds the model's only slot")
        .await;
    let waiting = tokio::spawn(get(addr, "/queue"));
    queued
        .expect_open("the second call waits in the model's queue")
        .await;
    let reply = get(addr, "/work").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "Request dropped due to backpressure")
    );

    release.open();
    for request in [running, waiting] {
        let reply = tokio::time::timeout(PATIENCE, request)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "worked"));
    }
    serve.shutdown();
}

#[tokio::test]
async fn a_route_passing_on_a_downstream_timeout_answers_504() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let model = Busy::bind(Gate::new(), Gate::new());
    serve
        .run_http(Gateway::bind(model, Gate::new()), "/")
        .unwrap();
    let reply = get(addr, "/slow").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (
            504,
            "Gateway Timeout: timed out: no result within 50ms; the request was cancelled"
        ),
        "not the proxy's own 408"
    );
    serve.shutdown();
}
