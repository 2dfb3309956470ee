//! Helpers shared by the integration tests: signals that tests and deployments use to wait for
//! each other (instead of sleeping), counters to observe what ran, a real `nats-server` for
//! the cluster-mode tests ([`NatsServer`]), and example programs run as processes ([`example`]).

pub mod cluster;
pub mod example;
pub mod nats;
pub use nats::{NatsOptions, NatsServer};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a test waits for something that should happen promptly before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A one-way signal: closed until [`open`](Gate::open)ed, then open for good. Waitable from async
/// and from blocking code. Clones share the gate.
#[derive(Clone, Default)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Default)]
struct GateInner {
    open: Mutex<bool>,
    cond: Condvar,
    notify: tokio::sync::Notify,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the gate, waking every waiter.
    pub fn open(&self) {
        *self.inner.open.lock().unwrap() = true;
        self.inner.cond.notify_all();
        self.inner.notify.notify_waiters();
    }

    /// Whether the gate has been opened.
    pub fn is_open(&self) -> bool {
        *self.inner.open.lock().unwrap()
    }

    /// Waits (async) until the gate is open.
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_open() {
                return;
            }
            notified.await;
        }
    }

    /// Waits (async) up to [`PATIENCE`]; panics (fails the test) if the gate stays closed.
    pub async fn expect_open(&self, what: &str) {
        if tokio::time::timeout(PATIENCE, self.wait()).await.is_err() {
            panic!("timed out waiting for: {what}");
        }
    }

    /// Blocks until the gate is open, up to [`PATIENCE`]; returns whether it opened.
    pub fn wait_blocking(&self) -> bool {
        let guard = self.inner.open.lock().unwrap();
        let (guard, _) = self
            .inner
            .cond
            .wait_timeout_while(guard, PATIENCE, |open| !*open)
            .unwrap();
        *guard
    }
}

/// A shared counter.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one and returns the value before.
    pub fn incr(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    /// Subtracts one.
    pub fn decr(&self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }

    /// The current value.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Tracks how many things run at once, and the most that ever did.
#[derive(Clone, Default)]
pub struct Concurrency {
    current: Counter,
    max: Arc<AtomicUsize>,
}

impl Concurrency {
    /// Starts tracking.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks one more running until the guard drops.
    pub fn enter(&self) -> ConcurrencyGuard {
        let now = self.current.incr() + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        ConcurrencyGuard(self.current.clone())
    }

    /// The most that ever ran at once.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// Returned by [`Concurrency::enter`].
pub struct ConcurrencyGuard(Counter);

impl Drop for ConcurrencyGuard {
    fn drop(&mut self) {
        self.0.decr();
    }
}

/// Opens a gate when dropped: lets a test observe that a future or stream was dropped.
pub struct OpenOnDrop(pub Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Options that name an application `name` (so that several run side by side on one instance).
pub fn named(name: &str) -> serve_core::RunOptions {
    serve_core::RunOptions::named(name)
}

/// Runs `app` on `serve` with its root deployment's config changed by `change` (as a config file
/// would change it), as the application named after its root deployment (so that applications
/// run this way run side by side).
pub fn run_with<D: serve_core::Deployment>(
    serve: &serve_core::Serve,
    app: serve_core::Application<D>,
    change: impl FnOnce(serve_core::DeploymentConfig) -> serve_core::DeploymentConfig,
) -> serve_core::DeploymentHandle<D> {
    let mut configs = app.deployment_configs();
    let root = configs.pop().expect("an application has a root deployment");
    let options = serve_core::RunOptions::named(root.name.clone());
    configs.push(change(root));
    serve
        .run_with(app, options.deployment_configs(configs))
        .expect("the application deploys")
}

/// Autoscaling that reacts within a test's patience: `min..=max` replicas, one ongoing request
/// per replica, measured every 20 ms over the last 100 ms, up after 100 ms, down after 300 ms.
pub fn quick_autoscaling(min: usize, max: usize) -> serve_core::AutoscalingConfig {
    serve_core::AutoscalingConfig::default()
        .min_replicas(min)
        .max_replicas(max)
        .target_ongoing_requests(1.0)
        .metrics_interval_s(0.02)
        .look_back_period_s(0.1)
        .upscale_delay_s(0.1)
        .downscale_delay_s(0.3)
}

/// The sorted ids of the replicas of the first application's first deployment.
pub fn replica_ids(serve: &serve_core::Serve) -> Vec<usize> {
    let mut ids: Vec<usize> = serve.status()[0].deployments[0]
        .replicas
        .iter()
        .map(|r| r.replica_id)
        .collect();
    ids.sort();
    ids
}

/// A user error for ingresses to return: its message is `model overloaded`.
#[derive(Debug)]
pub struct Overloaded;

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("model overloaded")
    }
}

impl std::error::Error for Overloaded {}

/// The status of the deployment called `name` (in any application); panics if there is none.
pub fn deployment_status(serve: &serve_core::Serve, name: &str) -> serve_core::DeploymentStatus {
    serve
        .status()
        .into_iter()
        .flat_map(|a| a.deployments)
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no deployment {name}"))
}

/// Polls the status of deployment `name` (an outside observation, not synchronisation) until it
/// satisfies `pred`; fails the test, showing the last status, after [`PATIENCE`].
pub fn wait_for_deployment(
    serve: &serve_core::Serve,
    name: &str,
    what: &str,
    pred: impl Fn(&serve_core::DeploymentStatus) -> bool,
) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let status = deployment_status(serve, name);
        if pred(&status) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Spins (yielding the thread) until `pred` holds; fails the test after [`PATIENCE`].
pub fn wait_until(what: &str, pred: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !pred() {
        assert!(std::time::Instant::now() < deadline, "never {what}");
        std::thread::yield_now();
    }
}

/// A minimal HTTP/1.1 client over one connection each, for tests that speak real HTTP to the
/// proxy (hyper's client connection API: every request is its own TCP connection, so dropping a
/// response drops the connection, which is how a test plays a client that goes away).
pub mod http {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;

    /// A whole response.
    #[derive(Debug)]
    pub struct Reply {
        /// The status code.
        pub status: u16,
        /// The `content-type` header, if any.
        pub content_type: Option<String>,
        /// The body as text.
        pub body: String,
    }

    /// Sends one request and returns the response head with its body still streaming.
    pub async fn open(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> hyper::Response<Incoming> {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        sender
            .send_request(request.body(Full::new(body.into())).unwrap())
            .await
            .unwrap()
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let response = open(addr, method, path, headers, body).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `POST`s a JSON body.
    pub async fn post_json(addr: SocketAddr, path: &str, json: &serde_json::Value) -> Reply {
        let body = serde_json::to_vec(json).unwrap();
        send(
            addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    /// Reads the next data chunk of a streaming body (`None` at its end; `Err` if it broke).
    pub async fn next_chunk(body: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
        loop {
            match body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data)),
                    Err(_) => continue, // trailers
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
