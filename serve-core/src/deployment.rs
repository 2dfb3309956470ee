//! What a deployment is to the runtime: the [`Deployment`] trait the macros implement, its
//! [`DeploymentConfig`], and the typed [`DeploymentHandle`] other deployments call it through.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::autoscaling::AutoscalingConfig;
use crate::router::Router;

/// The default of [`DeploymentConfig::max_ongoing_requests`], as in Ray Serve.
pub const DEFAULT_MAX_ONGOING_REQUESTS: usize = 5;

/// How a deployment is run. Set in code with `#[deployment(..)]` on the struct (e.g.
/// `#[deployment(num_replicas = 2, max_ongoing_requests = 10)]`), overridden by a config file.
/// Defaults follow Ray Serve's.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeploymentConfig {
    /// The deployment's name (default: the struct's name); unique within an application.
    pub name: String,
    /// How many replicas (instances) serve requests (default 1). With autoscaling, the initial
    /// count comes from the autoscaling config instead.
    pub num_replicas: usize,
    /// How many requests one replica runs at once (default 5); more wait in a FIFO queue.
    pub max_ongoing_requests: usize,
    /// How many requests may wait in the queue for a replica (default: unlimited); past it a call
    /// fails at once with a back-pressure error (HTTP 503).
    pub max_queued_requests: Option<usize>,
    /// Scale the number of replicas with the load (default: off, fixed `num_replicas`).
    pub autoscaling: Option<AutoscalingConfig>,
    /// How often each replica's `check_health` runs, in seconds (default 10).
    pub health_check_period_s: f64,
    /// How long one `check_health` may take before it counts as failed, in seconds (default 30).
    pub health_check_timeout_s: f64,
    /// How long a stopping replica may take to finish its requests, in seconds (default 20).
    pub graceful_shutdown_timeout_s: f64,
    /// What each replica reserves from the machine (default: 1 CPU).
    pub resources: ReplicaResources,
    /// A JSON value handed to the deployment's `reconfigure(&self, cfg)` (default: none).
    pub user_config: Option<serde_json::Value>,
}

impl DeploymentConfig {
    /// The default configuration of a deployment called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            num_replicas: 1,
            max_ongoing_requests: DEFAULT_MAX_ONGOING_REQUESTS,
            max_queued_requests: None,
            autoscaling: None,
            health_check_period_s: 10.0,
            health_check_timeout_s: 30.0,
            graceful_shutdown_timeout_s: 20.0,
            resources: ReplicaResources::default(),
            user_config: None,
        }
    }

    /// Sets the number of replicas.
    pub fn num_replicas(mut self, n: usize) -> Self {
        self.num_replicas = n;
        self
    }

    /// Sets how many requests one replica runs at once.
    pub fn max_ongoing_requests(mut self, n: usize) -> Self {
        self.max_ongoing_requests = n;
        self
    }

    /// Caps the requests waiting for a replica.
    pub fn max_queued_requests(mut self, n: usize) -> Self {
        self.max_queued_requests = Some(n);
        self
    }

    /// Turns autoscaling on.
    pub fn autoscaling(mut self, autoscaling: AutoscalingConfig) -> Self {
        self.autoscaling = Some(autoscaling);
        self
    }

    /// Sets the health-check period, in seconds.
    pub fn health_check_period_s(mut self, seconds: f64) -> Self {
        self.health_check_period_s = seconds;
        self
    }

    /// Sets the health-check timeout, in seconds.
    pub fn health_check_timeout_s(mut self, seconds: f64) -> Self {
        self.health_check_timeout_s = seconds;
        self
    }

    /// Sets how long a stopping replica may take to finish its requests, in seconds.
    pub fn graceful_shutdown_timeout_s(mut self, seconds: f64) -> Self {
        self.graceful_shutdown_timeout_s = seconds;
        self
    }

    /// Sets the CPUs each replica reserves.
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.resources.num_cpus = n;
        self
    }

    /// Sets the GPUs each replica reserves.
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.resources.num_gpus = n;
        self
    }

    /// Adds a custom resource each replica reserves (e.g. `"a100", 1.0`).
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.resources.custom.insert(name.into(), amount);
        self
    }

    /// Sets the `user_config` passed to `reconfigure`.
    pub fn user_config(mut self, value: serde_json::Value) -> Self {
        self.user_config = Some(value);
        self
    }
}

/// What one replica reserves from the machine: Ray's `ray_actor_options`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaResources {
    /// CPUs (default 1; fractions allowed).
    #[serde(default = "one")]
    pub num_cpus: f64,
    /// GPUs (default 0; fractions allowed).
    #[serde(default)]
    pub num_gpus: f64,
    /// Custom resources by name (e.g. `{"a100": 1.0}`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub custom: std::collections::BTreeMap<String, f64>,
}

fn one() -> f64 {
    1.0
}

impl Default for ReplicaResources {
    fn default() -> Self {
        Self {
            num_cpus: 1.0,
            num_gpus: 0.0,
            custom: Default::default(),
        }
    }
}

/// The defaults set by `#[deployment(..)]` on the struct.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is missing `#[deployment]` on its struct",
    label = "this type's struct has no `#[deployment]` attribute",
    note = "put `#[deployment]` on both the struct and its `impl` block"
)]
pub trait DeploymentDefaults {
    fn __deployment_config() -> DeploymentConfig;
}

/// A type that can be deployed: a struct with `#[deployment]` on it and on its `impl` block.
///
/// Implemented by the `#[deployment]` macro, never by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a deployment",
    label = "this type has no `#[deployment]` impl block",
    note = "put `#[deployment]` on both the struct and its `impl` block"
)]
pub trait Deployment: DeploymentDefaults + Send + Sync + Sized + 'static {
    /// The generated handle type: one stub field per method.
    type Handle: HandleStubs<Self>;

    /// The deployment's `check_health(&self)`, if it has one.
    #[doc(hidden)]
    fn __check_health(_this: &Arc<Self>) -> Option<Hook> {
        None
    }

    /// The deployment's `reconfigure(&self, cfg)` called with a `user_config`, if it has one.
    #[doc(hidden)]
    fn __reconfigure(_this: &Arc<Self>, _config: serde_json::Value) -> Option<Hook> {
        None
    }
}

/// A running lifecycle hook (`check_health`, `reconfigure`).
#[doc(hidden)]
pub type Hook =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::error::BoxError>> + Send>>;

/// An `async fn` hook.
#[doc(hidden)]
pub fn hook_async(
    f: impl std::future::Future<Output = Result<(), crate::error::BoxError>> + Send + 'static,
) -> Hook {
    use futures::FutureExt;
    Box::pin(async move {
        match std::panic::AssertUnwindSafe(f).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(Box::new(crate::error::ServeError::panic(panic)) as _),
        }
    })
}

/// A sync hook: runs on the blocking pool.
#[doc(hidden)]
pub fn hook_sync(f: impl FnOnce() -> Result<(), crate::error::BoxError> + Send + 'static) -> Hook {
    Box::pin(async move {
        let run = move || {
            crate::blocking::allow_blocking(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
                    Err(Box::new(crate::error::ServeError::panic(panic)) as _)
                })
            })
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(result) => result,
            Err(e) => Err(Box::new(e) as _),
        }
    })
}

/// Decodes a `user_config` into `reconfigure`'s argument type.
#[doc(hidden)]
pub fn user_config<T: serde::de::DeserializeOwned>(
    config: serde_json::Value,
) -> Result<T, crate::error::BoxError> {
    serde_json::from_value(config)
        .map_err(|e| format!("the user_config does not fit `reconfigure`'s argument: {e}").into())
}

/// Implemented by the generated handle type of a deployment.
#[doc(hidden)]
pub trait HandleStubs<D>: Clone + Send + Sync + 'static {
    fn __from_router(router: Arc<Router<D>>) -> Self;
    fn __router(&self) -> &Arc<Router<D>>;
}

/// A typed handle to a running deployment: `handle.method.remote(args)` sends a request to one of
/// its replicas and returns a [`DeploymentResponse`](crate::DeploymentResponse) (or a
/// [`DeploymentResponseGenerator`](crate::DeploymentResponseGenerator) for a streaming method);
/// `handle.remote(args)` calls the method named `call`.
///
/// Argument and return types are those of the method, checked by the compiler. A handle is cheap to
/// clone and can be shared between threads; all clones route to the same replicas.
///
/// A constructor parameter of type `DeploymentHandle<D>` is bound with an
/// [`Application<D>`](crate::Application); the runtime passes in the handle of the deployed `D`.
pub struct DeploymentHandle<D: Deployment> {
    stubs: D::Handle,
}

impl<D: Deployment> DeploymentHandle<D> {
    pub(crate) fn from_router(router: Arc<Router<D>>) -> Self {
        Self {
            stubs: D::Handle::__from_router(router),
        }
    }

    pub(crate) fn router(&self) -> &Arc<Router<D>> {
        self.stubs.__router()
    }

    /// The deployment's name within its application (made unique: `Inner`, `Inner_1`, ..).
    pub fn deployment_name(&self) -> &str {
        self.router().name()
    }

    /// How many replicas serve this deployment.
    pub fn num_replicas(&self) -> usize {
        self.router().num_replicas()
    }
}

impl<D: Deployment> Deref for DeploymentHandle<D> {
    type Target = D::Handle;

    fn deref(&self) -> &D::Handle {
        &self.stubs
    }
}

impl<D: Deployment> Clone for DeploymentHandle<D> {
    fn clone(&self) -> Self {
        Self {
            stubs: self.stubs.clone(),
        }
    }
}

impl<D: Deployment> fmt::Debug for DeploymentHandle<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentHandle")
            .field("deployment", &self.deployment_name())
            .finish()
    }
}

/// How the runtime calls a deployment's one-argument `call` method without knowing the deployment:
/// implemented on the generated handle type when `call` is unary and takes one argument `A`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "the deployment behind `{Self}` has no `call` method taking one `{A}`",
    label = "its `call` must take exactly one `{A}` argument",
    note = "an HTTP ingress deployment needs `fn call(&self, req: Request) -> R` (or an `async fn`), where `R` is a response type such as `String`, `Json<T>` or `HttpResponse`"
)]
pub trait CallOne<A> {
    /// What `call` returns.
    type Output;
    fn __call_one(&self, arg: A) -> crate::DeploymentResponse<Self::Output>;
}

/// Like [`CallOne`], for a streaming `call` method with one argument `A`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "the deployment behind `{Self}` has no streaming `call` method taking one `{A}`",
    label = "its `call` must take exactly one `{A}` and return `impl Stream<Item = T>`",
    note = "a streaming HTTP ingress needs `fn call(&self, req: Request) -> impl Stream<Item = T> + Send`, where `T` is `String`, `Vec<u8>` or `Json<U>`"
)]
pub trait CallStream<A> {
    /// The stream's item type.
    type Item;
    fn __call_stream(&self, arg: A) -> crate::DeploymentResponseGenerator<Self::Item>;
}

/// Compile-time check that a deployment type can be shared by a replica's concurrent requests.
#[doc(hidden)]
pub fn assert_deployment_type<T: Send + Sync + 'static>() {}
