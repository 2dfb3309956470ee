//! What a deployment is to the runtime: the [`Deployment`] trait the macros implement, its
//! [`DeploymentConfig`], and the typed [`DeploymentHandle`] other deployments call it through.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::router::Router;

/// The default of [`DeploymentConfig::max_ongoing_requests`], as in Ray Serve.
pub const DEFAULT_MAX_ONGOING_REQUESTS: usize = 5;

/// How a deployment is run: its name, its number of replicas, and how many requests each replica
/// runs at once. Set in code with `#[deployment(name = "..", num_replicas = 2, max_ongoing_requests = 10)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeploymentConfig {
    /// The deployment's name (default: the struct's name); unique within an application.
    pub name: String,
    /// How many replicas (instances) serve requests (default 1).
    pub num_replicas: usize,
    /// How many requests one replica runs at once (default 5); more wait in a FIFO queue.
    pub max_ongoing_requests: usize,
}

impl DeploymentConfig {
    /// The default configuration of a deployment called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            num_replicas: 1,
            max_ongoing_requests: DEFAULT_MAX_ONGOING_REQUESTS,
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
