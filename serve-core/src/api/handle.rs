//! [`DeploymentHandle`]: the typed client of a deployment, and the traits the generated handle
//! types implement.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::deployment::{Deployment, HandleStubs, Hook, on_replica};
use crate::dataplane::replica::Endpoint;
use crate::dataplane::router::CallTarget;
use crate::dataplane::router::RequestRouter;
use crate::error::{ErrorKind, ServeError};
use crate::request::encoded::EncodedResponse;
use crate::request::generator::DeploymentResponseGenerator;
use crate::request::response::DeploymentResponse;
use crate::transport::Served;

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
/// Handles inside a `Vec`, `Option`, map, array or tuple are bound likewise (see
/// [`Bindable`](crate::Bindable)).
pub struct DeploymentHandle<D: Deployment> {
    stubs: D::Handle,
}

impl<D: Deployment> DeploymentHandle<D> {
    pub(crate) fn from_router(router: Arc<RequestRouter<D>>) -> Self {
        Self {
            stubs: D::Handle::__from_target(CallTarget::new(router)),
        }
    }

    pub(crate) fn router(&self) -> &Arc<RequestRouter<D>> {
        self.stubs.__target().router()
    }

    /// A handle of the same deployment whose calls carry options, as Ray's
    /// `handle.options(..)`: `handle.options().multiplexed_model_id("customer-42").predict.remote(x)`.
    /// What it returns derefs to the handle's methods; keep it (it is cheap to clone) to make
    /// many calls with the same options.
    pub fn options(&self) -> HandleOptions<D> {
        HandleOptions {
            handle: self.clone(),
        }
    }

    /// The multiplexed model id this handle's calls are sent for, if any.
    fn model_id(&self) -> Option<&str> {
        self.stubs.__target().model_id().map(|id| &**id)
    }

    /// The deployment's name within its application (made unique: `Inner`, `Inner_1`, ..).
    pub fn deployment_name(&self) -> &str {
        self.router().name()
    }

    /// How many replicas serve this deployment.
    pub fn num_replicas(&self) -> usize {
        self.router().num_replicas()
    }

    /// Calls `method` with its argument tuple encoded in `args` (postcard), and encodes what it
    /// returns: how a replica serves a caller in another process. The call goes through this
    /// handle like any other (queueing, slots, cancellation, request context). A method the
    /// deployment does not have, or arguments that do not decode, fail with `ErrorKind::Wire`.
    #[doc(hidden)]
    pub fn call_encoded(&self, method: &str, args: &[u8]) -> Result<EncodedResponse, ServeError> {
        self.stubs.__call_encoded(method, args)
    }
}

impl<D: Deployment> Served for DeploymentHandle<D> {
    fn call_encoded(
        &self,
        method: &str,
        args: &[u8],
        model_id: Option<&str>,
    ) -> Result<EncodedResponse, ServeError> {
        match model_id {
            None => self.stubs.__call_encoded(method, args),
            Some(id) => self
                .options()
                .multiplexed_model_id(id)
                .stubs
                .__call_encoded(method, args),
        }
    }

    fn model_ids(&self) -> Option<Arc<Vec<Arc<str>>>> {
        use crate::request::multiplex::{LOADED_MODELS, LoadedModels};
        // A serving handle routes to its one replica.
        let replicas = self.router().replicas();
        let loaded = replicas
            .first()?
            .info()
            .state
            .get::<LoadedModels>(LOADED_MODELS)?;
        Some(loaded.ids())
    }

    fn check_health(&self) -> BoxFuture<'static, Result<(), ServeError>> {
        let hooks = self.local_hooks(|instance| D::__check_health(instance));
        let name = self.router().name().clone();
        Box::pin(async move {
            for hook in hooks {
                let Some(hook) = hook else { continue };
                hook.await.map_err(|e| {
                    ServeError::new(ErrorKind::User)
                        .with_message("health check failed")
                        .with_source(e)
                        .in_deployment(&name)
                })?;
            }
            Ok(())
        })
    }

    fn reconfigure(&self, config: serde_json::Value) -> BoxFuture<'static, Result<(), ServeError>> {
        let hooks = self.local_hooks(|instance| D::__reconfigure(instance, config.clone()));
        let name = self.router().name().clone();
        Box::pin(async move {
            for hook in hooks {
                let Some(hook) = hook else {
                    return Err(ServeError::new(ErrorKind::Runtime)
                        .with_message(
                            "the deployment has no `reconfigure` method to take a user_config",
                        )
                        .in_deployment(&name));
                };
                hook.await.map_err(|e| {
                    ServeError::new(ErrorKind::User)
                        .with_message("reconfigure failed")
                        .with_source(e)
                        .in_deployment(&name)
                })?;
            }
            Ok(())
        })
    }
}

impl<D: Deployment> DeploymentHandle<D> {
    /// `hook` of each replica of this process it routes to, run on behalf of its replica (so
    /// that `replica_context()` and a `#[batch]` method's `batching(..)` find it).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn local_hooks(&self, hook: impl Fn(&Arc<D>) -> Option<Hook>) -> Vec<Option<Hook>> {
        self.router()
            .replicas()
            .iter()
            .filter_map(|replica| match replica.endpoint() {
                Endpoint::Local(instance) => Some(on_replica(replica.info(), hook(instance))),
                Endpoint::Remote(_) => None,
            })
            .collect()
    }
}

/// A handle with options set: see [`DeploymentHandle::options`]. It derefs to the handle (so
/// `.method.remote(..)` calls with the options); [`handle`](Self::handle) gives it as a plain
/// `DeploymentHandle<D>` to store or pass on.
pub struct HandleOptions<D: Deployment> {
    handle: DeploymentHandle<D>,
}

impl<D: Deployment> HandleOptions<D> {
    /// Sends each call for multiplexed model `id` (Ray's `multiplexed_model_id`): routing
    /// prefers a replica that holds the model, and the method reads the id with
    /// [`get_multiplexed_model_id`](crate::get_multiplexed_model_id). An empty id means none.
    pub fn multiplexed_model_id(self, id: impl AsRef<str>) -> Self {
        let id = id.as_ref();
        let id = (!id.is_empty()).then(|| Arc::from(id));
        let target = self.handle.stubs.__target().with_model_id(id);
        Self {
            handle: DeploymentHandle {
                stubs: D::Handle::__from_target(target),
            },
        }
    }

    /// The handle with these options.
    pub fn handle(&self) -> DeploymentHandle<D> {
        self.handle.clone()
    }
}

impl<D: Deployment> Deref for HandleOptions<D> {
    type Target = DeploymentHandle<D>;

    fn deref(&self) -> &DeploymentHandle<D> {
        &self.handle
    }
}

impl<D: Deployment> Clone for HandleOptions<D> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
        }
    }
}

impl<D: Deployment> From<HandleOptions<D>> for DeploymentHandle<D> {
    fn from(options: HandleOptions<D>) -> Self {
        options.handle
    }
}

impl<D: Deployment> fmt::Debug for HandleOptions<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandleOptions")
            .field("deployment", &self.handle.deployment_name())
            .field("multiplexed_model_id", &self.handle.model_id())
            .finish()
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
    fn __call_one(&self, arg: A) -> DeploymentResponse<Self::Output>;
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
    fn __call_stream(&self, arg: A) -> DeploymentResponseGenerator<Self::Item>;
}
