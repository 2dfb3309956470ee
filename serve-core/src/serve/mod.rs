//! A serve instance: the runtime that replicas, requests and tasks run on.
//!
//! [`Serve::start`] creates an instance with its own multi-threaded tokio runtime, so applications
//! run the same whether the caller is a plain `fn main`, a test, or code inside another tokio
//! runtime: blocking calls such as [`Serve::run`] wait on the instance's runtime, never on the
//! caller's. Several instances can run side by side (tests do). The free functions [`run`] and
//! [`shutdown`] use one process-wide default instance, started on first use.
//!
//! [`Serve::builder`] sets the instance's resources (CPUs, GPUs, custom resources) before it
//! starts; see [`resources`](crate::resources).

use std::sync::{Arc, Mutex};

use std::net::SocketAddr;

use crate::api::deployment::Deployment;
use crate::api::handle::{CallOne, CallStream, DeploymentHandle};
use crate::config::DeploymentConfig;
use crate::control::application::Application;
use crate::control::nodes::NodeSet;
use crate::control::registry::Registry;
use crate::control::resources::{InstanceResources, ResourcePool};
use crate::control::status::ApplicationStatus;
use crate::control::update::DeploymentUpdate;
use crate::error::{ErrorKind, ServeError};
use crate::http::{
    Ingress, IntoHttpResponse, IntoStreamPart, Proxy, Request, StreamingIngress, UnaryIngress,
};
use crate::metrics::registry::Metrics;
use crate::metrics::snapshot::{self, MetricsSnapshot};
use crate::util::blocking;
use crate::util::sync::{self, Lock};

mod apps;
mod builder;
#[cfg(feature = "cluster")]
pub(crate) mod cluster;
mod options;
pub(crate) mod task;

pub use builder::ServeBuilder;
pub use options::{DEFAULT_APP_NAME, RunOptions};

struct Inner {
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// Run when the instance shuts down (cluster mode: stop the head's or worker's tasks).
    on_shutdown: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    handle: tokio::runtime::Handle,
    http: Mutex<Option<Arc<Proxy>>>,
    registry: Arc<Registry>,
    /// The nodes replicas are placed on: this process, and the workers of its cluster.
    nodes: Arc<NodeSet>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for hook in sync::into_value(&mut self.on_shutdown).drain(..) {
            hook();
        }
        let runtime = sync::into_value(&mut self.runtime).take();
        if let Some(runtime) = runtime {
            // `shutdown_background` never blocks, so it is safe from any thread, async ones included.
            runtime.shutdown_background();
        }
    }
}

/// A running serve instance. Cheap to clone; the instance shuts down when [`shutdown`](Self::shutdown)
/// is called or the last clone is dropped.
///
/// ```
/// use serve_core::prelude::*;
///
/// #[deployment]
/// #[derive(Default)]
/// pub struct Echo;
///
/// #[deployment]
/// impl Echo {
///     pub fn call(&self, text: String) -> String { text }
/// }
///
/// let serve = Serve::start()?;
/// let handle = serve.run(Echo::bind())?;
/// assert_eq!(handle.remote("hi").result()?, "hi");
/// serve.shutdown();
/// # Ok::<(), ServeError>(())
/// ```
#[derive(Clone)]
pub struct Serve {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serve")
            .field("running", &self.is_running())
            .finish()
    }
}

impl Serve {
    /// Starts an instance: a multi-threaded runtime with one async worker per core and a blocking
    /// pool for synchronous methods. Its resources are [`ServeBuilder`]'s defaults: the detected
    /// GPUs, no custom resources, CPUs not limited.
    pub fn start() -> Result<Serve, ServeError> {
        Self::builder().start()
    }

    /// Sets up an instance with given resources, Ray's `ray.init(num_cpus=.., num_gpus=..,
    /// resources=..)`: `Serve::builder().num_cpus(8.0).num_gpus(2.0).resource("a100", 4.0).start()`.
    pub fn builder() -> ServeBuilder {
        ServeBuilder::default()
    }

    fn start_with(resources: ResourcePool, metrics: Metrics) -> Result<Serve, ServeError> {
        let runtime = Self::new_runtime()?;
        let nodes = Arc::new(NodeSet::new(resources, metrics));
        Ok(Self::from_parts(runtime, nodes, Arc::default()))
    }

    /// The runtime of a new instance.
    fn new_runtime() -> Result<tokio::runtime::Runtime, ServeError> {
        let token = blocking::new_runtime_token();
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("serve-worker")
            .on_thread_start(move || blocking::mark_serve_thread(token))
            .enable_all()
            .build()
            .map_err(|e| {
                ServeError::new(ErrorKind::Runtime)
                    .with_message("could not start the serve runtime")
                    .with_source(Box::new(e))
            })
    }

    fn from_parts(
        runtime: tokio::runtime::Runtime,
        nodes: Arc<NodeSet>,
        registry: Arc<Registry>,
    ) -> Serve {
        let handle = runtime.handle().clone();
        Serve {
            inner: Arc::new(Inner {
                runtime: Mutex::new(Some(runtime)),
                on_shutdown: Mutex::default(),
                handle,
                http: Mutex::new(None),
                registry,
                nodes,
            }),
        }
    }

    /// Runs `hook` when the instance shuts down.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn on_shutdown(&self, hook: impl FnOnce() + Send + 'static) {
        self.inner.on_shutdown.locked().push(Box::new(hook));
    }

    /// Everything the instance has to give its replicas (Ray's `ray.cluster_resources()`).
    pub fn total_resources(&self) -> InstanceResources {
        self.inner.nodes.local().pool.total()
    }

    /// What no replica holds now (Ray's `ray.available_resources()`).
    pub fn available_resources(&self) -> InstanceResources {
        self.inner.nodes.local().pool.available()
    }

    /// Whether [`shutdown`](Self::shutdown) has not been called yet.
    pub fn is_running(&self) -> bool {
        self.inner.runtime.locked().is_some()
    }

    fn live_handle(&self) -> Result<tokio::runtime::Handle, ServeError> {
        if self.is_running() {
            Ok(self.inner.handle.clone())
        } else {
            Err(ServeError::shut_down())
        }
    }

    /// Deploys `app` (every deployment it was bound with, children first) as the application
    /// named [`DEFAULT_APP_NAME`] (`"default"`, as in Ray Serve) and returns the handle of its
    /// root deployment, once every replica is constructed. Fails with the constructor's error if
    /// one keeps failing (a constructor that fails is tried again, up to `min(3 * replicas, 20)`
    /// failures in all, as in Ray).
    ///
    /// As in Ray, running an application under a name that runs already deploys a new version
    /// of it: a second `run` replaces the first application (rolling, without dropping a
    /// request) rather than adding another. To run several applications side by side, name them:
    /// [`run_with`](Self::run_with) and [`RunOptions`].
    ///
    /// Each replica first reserves its resources (`num_cpus`, `num_gpus`, custom resources; see
    /// [`resources`](crate::resources)). As in Ray, replicas that do not fit in what the instance
    /// has free stay **pending**: `run` returns once the replicas that fit are constructed, the
    /// status shows the others as `pending_replicas` (with what is missing, also logged as a
    /// warning), and each starts as soon as a reservation is given back (a replica of another
    /// deployment stops, or scales down). Calls meanwhile go to the replicas that run, or wait in
    /// the queue if none does. A deployment whose replica could *never* fit (it asks for more
    /// than the instance has in all, e.g. a GPU on a machine without one) fails `run` at once,
    /// before anything is deployed, with what it needs and what the instance has.
    ///
    /// Blocks the calling thread. From async code prefer [`run_async`](Self::run_async); calling this
    /// on one of the instance's own async threads returns an error instead of blocking.
    pub fn run<D: Deployment>(
        &self,
        app: Application<D>,
    ) -> Result<DeploymentHandle<D>, ServeError> {
        self.run_with(app, RunOptions::new())
    }

    /// Like [`run`](Self::run), with each deployment's configuration given: `configs` is
    /// [`Application::deployment_configs`] with values changed (e.g. from a config file); the names
    /// must stay as they are. (`run_with` with [`RunOptions::deployment_configs`] names the
    /// application too.)
    pub fn run_configured<D: Deployment>(
        &self,
        app: Application<D>,
        configs: Vec<DeploymentConfig>,
    ) -> Result<DeploymentHandle<D>, ServeError> {
        self.run_with(app, RunOptions::new().deployment_configs(configs))
    }

    /// Like [`run`](Self::run), for async code.
    pub async fn run_async<D: Deployment>(
        &self,
        app: Application<D>,
    ) -> Result<DeploymentHandle<D>, ServeError> {
        self.run_with_async(app, RunOptions::new()).await
    }

    /// Changes a running deployment without dropping requests: a new `num_replicas` starts new
    /// replicas before removing any (removed ones finish what they run, for up to their
    /// `graceful_shutdown_timeout_s`); a new `user_config` reaches every replica's `reconfigure`
    /// without restarting it (and replicas started later get it too); a new
    /// `max_ongoing_requests` applies to the running replicas in place, and so do a new
    /// autoscaling config (from the current replica count, within its bounds; a deployment with
    /// a fixed count may start autoscaling), `graceful_shutdown_timeout_s` and the health check
    /// periods (Ray's "lightweight" updates); new `resources` or
    /// [`DeploymentUpdate::restart`] replace the replicas rolling (a new one is constructed
    /// before an old one leaves routing). The whole new configuration is checked first: nothing
    /// changes if it is refused. Returns once every replica was reconfigured; replica counts and
    /// rollouts converge in the background (watch [`status`](Self::status): `UPDATING` until no
    /// old replica is left).
    pub fn update_deployment(
        &self,
        name: &str,
        update: DeploymentUpdate,
    ) -> Result<(), ServeError> {
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("Serve::update_deployment"));
        }
        let Some(deployment) = self.inner.registry.find(name) else {
            return Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
                "no deployment `{name}`; the deployments are: {}",
                self.inner.registry.names().join(", ")
            )));
        };
        let rt = self.live_handle()?;
        futures::executor::block_on(rt.spawn(deployment.update(update)))
            .unwrap_or_else(|_| Err(ServeError::shut_down()))
    }

    /// The applications this instance runs, their deployments and replicas.
    pub fn status(&self) -> Vec<ApplicationStatus> {
        self.inner.registry.snapshot()
    }

    /// The instance's metrics in Prometheus's text format: what its HTTP proxy serves at
    /// `/metrics`. Call it to expose them another way, or from an instance without a proxy
    /// (every metric but the proxy's is there without one). In cluster mode each node has its own
    /// (its replicas, its callers, its proxy; the autoscaler's on the head). The guide's chapter
    /// "Operating it" lists the metrics.
    ///
    /// ```
    /// use serve_core::prelude::*;
    ///
    /// #[deployment]
    /// #[derive(Default)]
    /// pub struct Echo;
    ///
    /// #[deployment]
    /// impl Echo {
    ///     pub fn call(&self, text: String) -> String { text }
    /// }
    ///
    /// let serve = Serve::start()?;
    /// let handle = serve.run(Echo::bind())?;
    /// handle.remote("hi").result()?;
    /// let text = serve.metrics_text();
    /// assert!(text.contains(r#"serve_deployment_request_counter_total{application="default",deployment="Echo",replica="Echo#0",route=""} 1"#), "{text}");
    /// # Ok::<(), ServeError>(())
    /// ```
    pub fn metrics_text(&self) -> String {
        self.inner.nodes.metrics().render()
    }

    /// The instance's metrics as numbers: per deployment its requests, errors, processing
    /// latency and load; per HTTP route its requests, errors and latency. Take two, some time
    /// apart, for rates and latency percentiles over that window (see [`MetricsSnapshot`]).
    ///
    /// ```
    /// use serve_core::prelude::*;
    ///
    /// #[deployment]
    /// #[derive(Default)]
    /// pub struct Echo;
    ///
    /// #[deployment]
    /// impl Echo {
    ///     pub fn call(&self, text: String) -> String { text }
    /// }
    ///
    /// let serve = Serve::start()?;
    /// let handle = serve.run(Echo::bind())?;
    /// let before = serve.metrics();
    /// for _ in 0..10 {
    ///     handle.remote("hi").result()?;
    /// }
    /// let after = serve.metrics();
    /// let echo = after.deployment("default", "Echo").unwrap();
    /// let window = echo.since(before.deployment("default", "Echo").unwrap());
    /// assert_eq!((window.requests, window.errors), (10, 0));
    /// let per_second = window.requests as f64 / (after.taken - before.taken).as_secs_f64();
    /// let p99_ms = window.latency_ms.quantile(0.99).unwrap();
    /// # let _ = (per_second, p99_ms);
    /// # Ok::<(), ServeError>(())
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        snapshot::take(self.inner.nodes.metrics())
    }

    /// Starts the instance's HTTP proxy on `addr` (`"127.0.0.1:8000"`; port 0 picks a free port) and
    /// returns the address it listens on. Applications are then mounted with
    /// [`run_http`](Self::run_http). One proxy per instance.
    pub fn start_http(&self, addr: &str) -> Result<SocketAddr, ServeError> {
        let addr: SocketAddr = addr.parse().map_err(|e| {
            ServeError::new(ErrorKind::Runtime)
                .with_message(format!("`{addr}` is not a socket address (host:port)"))
                .with_source(Box::new(e))
        })?;
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("Serve::start_http"));
        }
        let mut http = self.inner.http.locked();
        if let Some(proxy) = &*http {
            return Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
                "the HTTP proxy already listens on {}",
                proxy.addr()
            )));
        }
        let rt = self.live_handle()?;
        let proxy = futures::executor::block_on(rt.spawn(Proxy::start(
            addr,
            self.inner.registry.clone(),
            self.inner.nodes.metrics().clone(),
        )))
        .unwrap_or_else(|_| Err(ServeError::shut_down()))?;
        let bound = proxy.addr();
        *http = Some(proxy);
        Ok(bound)
    }

    /// Sets the HTTP proxy's request timeout (Ray's `request_timeout_s`): a request still running
    /// after `timeout` is cancelled, with every call it started, and answered `408 Request
    /// Timeout`. `None` (the default) waits as long as it takes.
    ///
    /// The timeout covers the whole request, streaming responses included: a streaming ingress
    /// that has not yielded its first item by then is answered `408` like a unary one, and one
    /// that has is stopped (its stream is dropped, which stops the producer) and its body ends
    /// with an error: a chunked body is cut off, and Server-Sent Events end with an `error` event
    /// saying the request timed out. A downstream call's own `.timeout(..)` that an ingress passes
    /// on with `?` answers `504 Gateway Timeout` instead.
    pub fn set_http_request_timeout(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), ServeError> {
        self.proxy()?.set_request_timeout(timeout);
        Ok(())
    }

    /// Turns the HTTP proxy's access log on or off (Ray's top-level
    /// `logging_config.enable_access_log`; on by default): one line per request, `POST / 200
    /// 1.2ms` with its route, application and request id, through `tracing` with the target
    /// `serve::access`. Each deployment's replicas have their own switch
    /// ([`LoggingConfig`](crate::LoggingConfig) in their configuration).
    pub fn set_http_access_log(&self, on: bool) -> Result<(), ServeError> {
        self.proxy()?.set_access_log(on);
        Ok(())
    }

    /// The address the HTTP proxy listens on, once [`start_http`](Self::start_http) ran.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        let http = self.inner.http.locked();
        http.as_ref().map(|proxy| proxy.addr())
    }

    fn proxy(&self) -> Result<Arc<Proxy>, ServeError> {
        let http = self.inner.http.locked();
        http.clone().ok_or_else(|| {
            ServeError::new(ErrorKind::Runtime)
                .with_message("the HTTP proxy is not started: call `start_http` first")
        })
    }

    /// Deploys `app` like [`run`](Self::run) and serves it over HTTP (after
    /// [`start_http`](Self::start_http)). `options` is a route prefix (`"/"` for everything;
    /// several applications can share the proxy under different prefixes) or [`RunOptions`],
    /// which also name the application (`RunOptions::named("hello").route_prefix("/hello")`;
    /// the prefix defaults to `"/"`). Every request under the prefix goes to the ingress
    /// deployment's `call(&self, req: Request)`. A prefix served by another application is an
    /// error (before anything is deployed); a new version of the same application takes its
    /// route over (from then on, requests go to the new version; those already on their way
    /// to the old one finish there), under its new prefix if that changed.
    pub fn run_http<D, R>(
        &self,
        app: Application<D>,
        options: impl Into<RunOptions>,
    ) -> Result<DeploymentHandle<D>, ServeError>
    where
        D: Deployment,
        D::Handle: CallOne<Request, Output = R>,
        R: IntoHttpResponse + Send + 'static,
    {
        self.serve_http(app, options.into(), |handle| Arc::new(UnaryIngress(handle)))
    }

    /// [`run_http`](Self::run_http) with each deployment's configuration given, as in
    /// [`run_configured`](Self::run_configured).
    pub fn run_http_configured<D, R>(
        &self,
        app: Application<D>,
        options: impl Into<RunOptions>,
        configs: Vec<DeploymentConfig>,
    ) -> Result<DeploymentHandle<D>, ServeError>
    where
        D: Deployment,
        D::Handle: CallOne<Request, Output = R>,
        R: IntoHttpResponse + Send + 'static,
    {
        let options = options.into().deployment_configs(configs);
        self.serve_http(app, options, |handle| Arc::new(UnaryIngress(handle)))
    }

    /// Like [`run_http`](Self::run_http) for an ingress whose `call` streams
    /// (`impl Stream<Item = T>`): the response is chunked, each item flushed as it is produced, or
    /// Server-Sent Events when the client accepts `text/event-stream`. A `call` that returns a
    /// [`StreamingResponse`](crate::http::StreamingResponse) sets the status, headers and media
    /// type.
    pub fn run_http_streaming<D, T>(
        &self,
        app: Application<D>,
        options: impl Into<RunOptions>,
    ) -> Result<DeploymentHandle<D>, ServeError>
    where
        D: Deployment,
        D::Handle: CallStream<Request, Item = T>,
        T: IntoStreamPart,
    {
        self.serve_http(app, options.into(), |handle| {
            Arc::new(StreamingIngress(handle))
        })
    }

    /// Deploys `app` as `options` say and serves it over HTTP through the ingress `ingress`
    /// makes from the root's handle.
    fn serve_http<D: Deployment>(
        &self,
        app: Application<D>,
        options: RunOptions,
        ingress: impl FnOnce(DeploymentHandle<D>) -> Arc<dyn Ingress> + Send + 'static,
    ) -> Result<DeploymentHandle<D>, ServeError> {
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("Serve::run_http"));
        }
        futures::executor::block_on(self.deploy(app, options, Some(Box::new(ingress)))?)
    }

    /// Stops the instance gracefully: deployments stop admitting new requests (handle calls from
    /// outside fail with [`ErrorKind::ShutDown`]; 503 over HTTP) and the HTTP proxy stops
    /// accepting connections; requests in flight, and the calls they make, finish; then the
    /// instance shuts down. Blocks the caller. Returns whether everything in flight finished in
    /// time.
    ///
    /// Each deployment gives its requests its own `graceful_shutdown_timeout_s` (default 20 s):
    /// past it, what still runs or waits there fails with [`ErrorKind::ShutDown`] (saying the
    /// timeout passed). `timeout` bounds the whole shutdown; `None` waits for the longest of the
    /// deployments' timeouts: `serve.shutdown_graceful(None)` or
    /// `serve.shutdown_graceful(Duration::from_secs(5))`.
    pub fn shutdown_graceful(&self, timeout: impl Into<Option<std::time::Duration>>) -> bool {
        let timeout = timeout
            .into()
            .unwrap_or_else(|| self.inner.registry.graceful_timeout());
        let deadline = std::time::Instant::now() + timeout;
        let stopped_before = self.inner.registry.stopped_requests();
        // Stop admitting: no new outside calls, no new HTTP connections. Calls made on behalf of
        // requests in flight are still served, so those requests can finish.
        self.inner.registry.close_all();
        let proxy = self.inner.http.locked().take();
        let drained = match (proxy, self.live_handle()) {
            (Some(proxy), Ok(rt)) if !blocking::on_serve_async_thread() => {
                futures::executor::block_on(rt.spawn(async move { proxy.drain(timeout).await }))
                    .unwrap_or(false)
            }
            (Some(proxy), _) => {
                proxy.stop();
                false
            }
            (None, _) => true,
        };
        // Then wait for what handle calls still run (checked every few milliseconds: shutdown is
        // rare and a wake-up per finished request would tax every request).
        let mut idle = self.inner.registry.in_progress() == 0;
        while !idle && std::time::Instant::now() < deadline && !blocking::on_serve_async_thread() {
            std::thread::sleep(std::time::Duration::from_millis(5));
            idle = self.inner.registry.in_progress() == 0;
        }
        if !idle {
            // Fail what is left with the deployments' own message before the runtime goes.
            self.inner.registry.stop_all();
        }
        let forced = self.inner.registry.stopped_requests() > stopped_before;
        self.shutdown();
        drained && idle && !forced
    }

    /// Stops the instance: running requests are dropped (their callers get an
    /// [`ErrorKind::ShutDown`] error) and later calls through its handles fail the same way.
    /// Returns at once; safe to call from any thread, more than once.
    pub fn shutdown(&self) {
        let hooks: Vec<_> = self.inner.on_shutdown.locked().drain(..).collect();
        for hook in hooks {
            hook();
        }
        if let Some(proxy) = self.inner.http.locked().take() {
            proxy.stop();
        }
        let runtime = self.inner.runtime.locked().take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.inner.handle
    }
}

impl ServeBuilder {
    /// Starts the instance. Fails on a negative or non-finite amount, an empty resource name, or a
    /// custom resource named `CPU` or `GPU`.
    pub fn start(self) -> Result<Serve, ServeError> {
        #[cfg(feature = "cluster")]
        if let Some(options) = self.cluster.clone() {
            return Serve::start_head(self, options);
        }
        let metrics = self.metrics("local");
        Serve::start_with(self.pool()?, metrics)
    }
}

#[cfg(feature = "cluster")]
impl Serve {
    /// Starts the head of a cluster: an instance like any other, whose replicas may also run on
    /// the workers that join (see `ServeBuilder::cluster`).
    fn start_head(
        builder: ServeBuilder,
        options: crate::config::ClusterOptions,
    ) -> Result<Serve, ServeError> {
        use crate::cluster::{connect, head::Head, new_node_id, prefix, prepare_build_id};
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("ServeBuilder::start"));
        }
        let pool = builder.pool()?;
        prepare_build_id();
        let id = new_node_id();
        let name = builder.node_name.clone().unwrap_or_else(|| "head".into());
        let nodes = Arc::new(NodeSet::clustered(pool, &id, &name, builder.metrics(&id)));
        let registry = Arc::new(Registry::default());
        let serve = Serve::from_parts(Serve::new_runtime()?, nodes.clone(), registry.clone());
        let rt = serve.live_handle()?;
        // Named after the application by the command line; "serve" when the code names none.
        let prefix = prefix(options.name.as_deref().unwrap_or("serve"));
        let head = futures::executor::block_on(rt.spawn({
            let nodes = nodes.clone();
            async move {
                let (client, events) = connect(&options, &name, &prefix).await?;
                Head::start(client, events, prefix, &id, options, &nodes, &registry).await
            }
        }))
        .unwrap_or_else(|_| Err(ServeError::shut_down()))?;
        nodes.set_cluster(head.clone());
        serve.on_shutdown(move || head.shutdown());
        Ok(serve)
    }
}

static DEFAULT: Mutex<Option<Serve>> = Mutex::new(None);

/// The process-wide default instance, started on first use.
pub(crate) fn default_instance() -> Result<Serve, ServeError> {
    let mut default = DEFAULT.locked();
    match &*default {
        Some(serve) if serve.is_running() => Ok(serve.clone()),
        _ => {
            let serve = Serve::start()?;
            *default = Some(serve.clone());
            Ok(serve)
        }
    }
}

/// Deploys `app` on the process-wide default instance and returns its root deployment's handle.
/// See [`Serve::run`].
///
/// ```
/// use serve_core::prelude::*;
///
/// #[deployment]
/// pub struct Adder { increment: i32 }
///
/// #[deployment]
/// impl Adder {
///     pub fn new(increment: i32) -> Self { Self { increment } }
///     pub fn call(&self, val: i32) -> i32 { val + self.increment }
/// }
///
/// let handle = serve_core::run(Adder::bind(1))?;
/// assert_eq!(handle.remote(41).result()?, 42);
/// # Ok::<(), ServeError>(())
/// ```
pub fn run<D: Deployment>(app: Application<D>) -> Result<DeploymentHandle<D>, ServeError> {
    default_instance()?.run(app)
}

/// Shuts the process-wide default instance down (a later [`run`] starts a new one).
pub fn shutdown() {
    let serve = DEFAULT.locked().take();
    if let Some(serve) = serve {
        serve.shutdown();
    }
}
