//! Applications by name (issue 12): `RunOptions`, a new version under a running name (rolling,
//! under load, without a failed request), `Serve::delete`, and typed lookups by name.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serve_core::http::Request;
use serve_core::prelude::*;
use serve_core::{DEFAULT_APP_NAME, RunOptions};
use serve_test_support::http::send;
use serve_test_support::{Counter, Gate, PATIENCE, wait_until};

/// Answers with the version it was bound with; fails to construct as version `broken`.
#[deployment(num_replicas = 2)]
pub struct Versioned {
    version: String,
    built: Counter,
}

#[deployment]
impl Versioned {
    pub fn new(version: String, built: Counter) -> Result<Self, String> {
        built.incr();
        // A model takes a moment to load: a rollout spans many requests.
        std::thread::sleep(Duration::from_millis(30));
        if version == "broken" {
            return Err("the broken version cannot load its model".into());
        }
        Ok(Self { version, built })
    }
    pub async fn call(&self, _req: Request) -> String {
        // Long enough that requests overlap a switch of versions.
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.version.clone()
    }
    pub fn version(&self) -> String {
        let _ = &self.built;
        self.version.clone()
    }
}

/// Another ingress type, for a new version that is not the same deployment.
#[deployment]
#[derive(Default)]
pub struct Other;

#[deployment]
impl Other {
    pub async fn call(&self, _req: Request) -> String {
        tokio::time::sleep(Duration::from_millis(2)).await;
        "other".into()
    }
}

fn app_names(serve: &Serve) -> Vec<String> {
    serve.status().into_iter().map(|a| a.name).collect()
}

// --- names ------------------------------------------------------------------------------------

#[tokio::test]
async fn named_applications_run_side_by_side_and_status_shows_their_names() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let built = Counter::new();
    let hello = RunOptions::named("hello").route_prefix("/hello");
    let hola = RunOptions::named("hola").route_prefix("/hola");
    serve
        .run_http(Versioned::bind("hello".into(), built.clone()), hello)
        .unwrap();
    serve
        .run_http(Versioned::bind("hola".into(), built.clone()), hola)
        .unwrap();
    assert_eq!(app_names(&serve), ["hello", "hola"]);
    assert_eq!(send(addr, "GET", "/hello", &[], "").await.body, "hello");
    assert_eq!(send(addr, "GET", "/hola", &[], "").await.body, "hola");

    let routes: serde_json::Value =
        serde_json::from_str(&send(addr, "GET", "/-/routes", &[], "").await.body).unwrap();
    assert_eq!(
        routes,
        serde_json::json!({"/hello": "hello", "/hola": "hola"})
    );
    let status: serde_json::Value =
        serde_json::from_str(&send(addr, "GET", "/-/status", &[], "").await.body).unwrap();
    let apps: Vec<(&str, &str)> = status["applications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap(),
                a["route_prefix"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(apps, [("hello", "/hello"), ("hola", "/hola")]);
    // Each application's deployment runs its own replicas, and knows its application.
    for app in serve.status() {
        assert_eq!(app.deployments.len(), 1);
        assert_eq!(app.deployments[0].num_replicas, 2, "{app:?}");
    }
    serve.shutdown();
}

#[test]
fn run_without_a_name_runs_the_default_application_and_a_second_run_replaces_it() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let first = serve
        .run(Versioned::bind("v1".into(), built.clone()))
        .unwrap();
    assert_eq!(app_names(&serve), [DEFAULT_APP_NAME]);
    assert_eq!(DEFAULT_APP_NAME, "default");
    assert_eq!(first.version.remote().result().unwrap(), "v1");

    // A different application under the same (default) name: it replaces the first.
    let other = serve.run(Other::bind()).unwrap();
    assert_eq!(app_names(&serve), [DEFAULT_APP_NAME]);
    let status = serve.status();
    let names: Vec<&str> = status[0]
        .deployments
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["Other"], "no second copy next to the first");
    assert!(other.remote(Request::new("GET", "/")).result().is_ok());
    // The first application's deployment retires: calls through its handle then fail, saying so.
    let refused = loop {
        match first.version.remote().result_timeout(PATIENCE) {
            Ok(_) => std::thread::sleep(Duration::from_millis(5)), // polling an outside effect
            Err(e) => break e,
        }
    };
    assert_eq!(refused.kind(), ErrorKind::NotFound, "{refused}");
    assert!(refused.to_string().contains("deleted"), "{refused}");
}

#[test]
fn run_with_a_route_prefix_but_no_http_is_refused_before_anything_is_deployed() {
    let serve = Serve::start().unwrap();
    let err = serve
        .run_with(
            Versioned::bind("v1".into(), Counter::new()),
            RunOptions::named("hello").route_prefix("/hello"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("run_http"), "{err}");
    let err = serve
        .run_with(
            Versioned::bind("v1".into(), Counter::new()),
            RunOptions::named(""),
        )
        .unwrap_err();
    assert!(err.to_string().contains("must not be empty"), "{err}");
    assert!(serve.status().is_empty());
}

#[tokio::test]
async fn a_route_prefix_another_application_serves_is_refused_before_anything_is_deployed() {
    let serve = Serve::start().unwrap();
    serve.start_http("127.0.0.1:0").unwrap();
    let built = Counter::new();
    serve
        .run_http(
            Versioned::bind("a".into(), built.clone()),
            RunOptions::named("a").route_prefix("/x"),
        )
        .unwrap();
    let before = built.get();
    let err = serve
        .run_http(
            Versioned::bind("b".into(), built.clone()),
            RunOptions::named("b").route_prefix("/x/"),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("route prefix `/x` is already served by application `a`"),
        "{err}"
    );
    assert_eq!(built.get(), before, "nothing of `b` was constructed");
    assert_eq!(app_names(&serve), ["a"]);
    serve.shutdown();
}

// --- new versions -----------------------------------------------------------------------------

/// One client's replies so far, in order: status and body.
type Replies = Arc<Mutex<Vec<(u16, String)>>>;

/// Requests sent in a loop by several clients until told to stop; keeps what came back.
struct Load {
    stop: Arc<AtomicBool>,
    replies: Vec<Replies>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, path: &'static str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let replies: Vec<_> = (0..clients).map(|_| Arc::default()).collect();
        let tasks = replies
            .iter()
            .map(|replies: &Replies| {
                let (stop, replies) = (stop.clone(), replies.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let reply = send(addr, "GET", path, &[], "").await;
                        replies.lock().unwrap().push((reply.status, reply.body));
                    }
                })
            })
            .collect();
        Self {
            stop,
            replies,
            tasks,
        }
    }

    /// Waits until every client got `n` replies saying `body` (polling what the clients keep).
    async fn wait_for(&self, n: usize, body: &str) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while !self.replies.iter().all(|r| {
            let r = r.lock().unwrap();
            r.iter().filter(|(_, b)| b == body).count() >= n
        }) {
            assert!(std::time::Instant::now() < deadline, "never {n} x {body}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients; every reply, in order per client.
    async fn finish(self) -> Vec<Vec<(u16, String)>> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a client failed");
        }
        self.replies
            .into_iter()
            .map(|r| std::mem::take(&mut *r.lock().unwrap()))
            .collect()
    }
}

/// Calls `version` through `handle` until it fails; returns the error.
async fn until_refused(handle: &DeploymentHandle<Versioned>) -> ServeError {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match handle.version.remote().await {
            Ok(_) => {
                assert!(std::time::Instant::now() < deadline, "never refused");
                tokio::time::sleep(Duration::from_millis(5)).await; // polling an outside effect
            }
            Err(e) => return e,
        }
    }
}

/// Runs `f` (a blocking call on the instance) off the test's async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_rolls_out_under_load_without_a_failed_request() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let built = Counter::new();
    let options = RunOptions::named("hello").route_prefix("/hello");
    let v1 = {
        let (serve, built, options) = (serve.clone(), built.clone(), options.clone());
        blocking(move || serve.run_http(Versioned::bind("v1".into(), built), options)).await
    }
    .unwrap();
    assert_eq!(built.get(), 2);
    let load = Load::start(addr, "/hello", 4);
    load.wait_for(5, "v1").await;

    let v2 = {
        let (serve, built, options) = (serve.clone(), built.clone(), options.clone());
        blocking(move || serve.run_http(Versioned::bind("v2".into(), built), options)).await
    }
    .unwrap();
    // Returned once no replica of v1 is left in routing: two new ones were built.
    assert_eq!(built.get(), 4);
    let status = &serve.status()[0];
    assert_eq!(status.name, "hello");
    assert_eq!(status.deployments.len(), 1, "in place, not a second copy");
    let ids: Vec<usize> = status.deployments[0]
        .replicas
        .iter()
        .map(|r| r.replica_id)
        .collect();
    assert!(ids.iter().all(|&id| id >= 2), "only new replicas: {ids:?}");
    // The handle of the first version is the same deployment's: it reaches the new one.
    assert_eq!(v1.version.remote().await.unwrap(), "v2");
    assert_eq!(v2.version.remote().await.unwrap(), "v2");

    // Keep the load on until every client has seen the new version for a while.
    load.wait_for(5, "v2").await;
    let replies = load.finish().await;
    let total: usize = replies.iter().map(Vec::len).sum();
    let failed: Vec<_> = replies
        .iter()
        .flatten()
        .filter(|(s, _)| *s != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {total} failed: {failed:?}",
        failed.len()
    );
    for client in &replies {
        let bodies: Vec<&str> = client.iter().map(|(_, b)| b.as_str()).collect();
        assert!(
            bodies.iter().all(|b| *b == "v1" || *b == "v2"),
            "{bodies:?}"
        );
        // Once a client saw v2, v1 may still answer requests sent before the switch, but every
        // client ends on v2.
        assert_eq!(bodies.last(), Some(&"v2"), "{bodies:?}");
    }
    eprintln!("{total} requests across the rollout, none failed");
    serve.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_of_another_type_takes_the_route_over_without_a_failed_request() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let built = Counter::new();
    let old = {
        let (serve, built) = (serve.clone(), built.clone());
        blocking(move || {
            serve.run_http(
                Versioned::bind("v1".into(), built),
                RunOptions::named("hello").route_prefix("/hello"),
            )
        })
        .await
        .unwrap()
    };
    let load = Load::start(addr, "/hello", 4);
    load.wait_for(5, "v1").await;
    {
        let serve = serve.clone();
        blocking(move || {
            serve
                .run_http(
                    Other::bind(),
                    RunOptions::named("hello").route_prefix("/hello"),
                )
                .unwrap();
        })
        .await;
    }
    let names: Vec<String> = serve.status()[0]
        .deployments
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(names, ["Other"]);
    load.wait_for(5, "other").await;
    // The old version's deployment finishes what it was sent, then retires.
    let refused = until_refused(&old).await;
    assert_eq!(refused.kind(), ErrorKind::NotFound, "{refused}");
    let replies = load.finish().await;
    let failed: Vec<_> = replies
        .iter()
        .flatten()
        .filter(|(s, _)| *s != 200)
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    for client in &replies {
        assert_eq!(client.last().map(|(_, b)| b.as_str()), Some("other"));
    }
    serve.shutdown();
}

#[test]
fn a_new_version_that_cannot_be_built_leaves_the_running_one_as_it_was() {
    let serve = Serve::start().unwrap();
    let built = Counter::new();
    let handle = serve
        .run_with(
            Versioned::bind("v1".into(), built.clone()),
            RunOptions::named("hello"),
        )
        .unwrap();
    let before: Vec<usize> = serve.status()[0].deployments[0]
        .replicas
        .iter()
        .map(|r| r.replica_id)
        .collect();
    let err = serve
        .run_with(
            Versioned::bind("broken".into(), built.clone()),
            RunOptions::named("hello"),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Constructor, "{err}");
    assert!(
        err.to_string()
            .contains("the broken version cannot load its model"),
        "{err}"
    );
    // 2 replicas: up to min(3 * 2, 20) = 6 failures, then the rollback.
    assert_eq!(built.get(), 2 + 6);
    let status = &serve.status()[0];
    let after: Vec<usize> = status.deployments[0]
        .replicas
        .iter()
        .map(|r| r.replica_id)
        .collect();
    assert_eq!(after, before, "the old replicas serve on");
    assert_eq!(status.deployments[0].status, "HEALTHY");
    for _ in 0..5 {
        assert_eq!(handle.version.remote().result().unwrap(), "v1");
    }
}

// --- delete -----------------------------------------------------------------------------------

/// Holds each request until `release` opens; counts its instances dropped.
#[deployment]
pub struct Held {
    entered: Counter,
    release: Gate,
    dropped: Counter,
}

#[deployment]
impl Held {
    pub fn new(entered: Counter, release: Gate, dropped: Counter) -> Self {
        Self {
            entered,
            release,
            dropped,
        }
    }
    pub async fn call(&self, _req: Request) -> String {
        self.entered.incr();
        self.release.wait().await;
        "finished".into()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.dropped.incr();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_lets_requests_in_flight_finish_then_stops_the_replicas_and_the_route_answers_404() {
    let serve = Serve::start().unwrap();
    let addr = serve.start_http("127.0.0.1:0").unwrap();
    let (entered, release, dropped) = (Counter::new(), Gate::new(), Counter::new());
    let handle = {
        let serve = serve.clone();
        let app = Held::bind(entered.clone(), release.clone(), dropped.clone());
        blocking(move || serve.run_http(app, RunOptions::named("held").route_prefix("/held")))
            .await
            .unwrap()
    };
    let other = {
        let (serve, built) = (serve.clone(), Counter::new());
        blocking(move || {
            serve.run_http(
                Versioned::bind("kept".into(), built),
                RunOptions::named("kept").route_prefix("/kept"),
            )
        })
        .await
        .unwrap()
    };
    let in_flight = tokio::spawn(send(addr, "GET", "/held", &[], ""));
    {
        let entered = entered.clone();
        blocking(move || wait_until("the request running", || entered.get() == 1)).await;
    }
    let deleting = {
        let serve = serve.clone();
        tokio::task::spawn_blocking(move || serve.delete("held"))
    };
    // The route goes at once (a request sent before it went would be held like the first)...
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let routes = send(addr, "GET", "/-/routes", &[], "").await.body;
        if !routes.contains("/held") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still routed: {routes}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await; // polling an outside effect
    }
    let reply = send(addr, "GET", "/held/x", &[], "").await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(
        !deleting.is_finished(),
        "delete waits for the request in flight"
    );
    assert_eq!(
        dropped.get(),
        0,
        "no replica stopped while it runs a request"
    );
    // ...while the request in flight finishes.
    release.open();
    let reply = in_flight.await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "finished"));
    deleting.await.unwrap().unwrap();
    assert_eq!(app_names(&serve), ["kept"]);
    // Its replica stopped (once its last request let go of it).
    {
        let dropped = dropped.clone();
        blocking(move || wait_until("the replica dropped", || dropped.get() == 1)).await;
    }
    let err = handle.remote(Request::new("GET", "/")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // The other application is untouched.
    assert_eq!(send(addr, "GET", "/kept", &[], "").await.body, "kept");
    assert_eq!(other.version.remote().await.unwrap(), "kept");
    serve.shutdown();
}

#[test]
fn delete_of_an_unknown_application_changes_nothing_and_lists_the_names() {
    let serve = Serve::start().unwrap();
    serve
        .run_with(
            Versioned::bind("v1".into(), Counter::new()),
            RunOptions::named("hello"),
        )
        .unwrap();
    let err = serve.delete("hullo").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "not found: no application `hullo` runs on this instance; the applications are `hello`"
    );
    assert_eq!(app_names(&serve), ["hello"]);
    serve.delete("hello").unwrap();
    assert!(serve.status().is_empty());
    let err = serve.delete("hello").unwrap_err();
    assert!(err.to_string().ends_with("there are none"), "{err}");
}

// --- typed lookups ----------------------------------------------------------------------------

#[deployment]
#[derive(Default)]
pub struct Doubler;

#[deployment]
impl Doubler {
    pub fn call(&self, x: u32) -> u32 {
        x * 2
    }
}

#[deployment]
pub struct Front {
    doubler: DeploymentHandle<Doubler>,
}

#[deployment]
impl Front {
    pub fn new(doubler: DeploymentHandle<Doubler>) -> Self {
        Self { doubler }
    }
    pub async fn call(&self, x: u32) -> Result<u32, ServeError> {
        Ok(self.doubler.remote(x).await? + 1)
    }
}

#[test]
fn typed_lookups_find_handles_by_name_and_say_what_is_wrong() {
    let serve = Serve::start().unwrap();
    serve
        .run_with(Front::bind(Doubler::bind()), RunOptions::named("math"))
        .unwrap();

    let front = serve.get_app_handle::<Front>("math").unwrap();
    assert_eq!(front.remote(20).result().unwrap(), 41);
    let doubler = serve
        .get_deployment_handle::<Doubler>("Doubler", "math")
        .unwrap();
    assert_eq!(doubler.remote(21).result().unwrap(), 42);
    let front = serve
        .get_deployment_handle::<Front>("Front", "math")
        .unwrap();
    assert_eq!(front.remote(1).result().unwrap(), 3);

    // An unknown application.
    let err = serve.get_app_handle::<Front>("maths").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "not found: no application `maths` runs on this instance; the applications are `math`"
    );
    let err = serve
        .get_deployment_handle::<Doubler>("Doubler", "maths")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // An unknown deployment.
    let err = serve
        .get_deployment_handle::<Doubler>("Tripler", "math")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "not found: application `math` has no deployment `Tripler`; its deployments are \
         `Doubler`, `Front`"
    );
    // The wrong type.
    let err = serve.get_app_handle::<Doubler>("math").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Runtime);
    assert_eq!(
        err.to_string(),
        "runtime error: deployment `Front` of application `math` is a `applications::Front`, \
         not a `applications::Doubler`"
    );
    let err = serve
        .get_deployment_handle::<Front>("Doubler", "math")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is a `applications::Doubler`, not a `applications::Front`"),
        "{err}"
    );
}
