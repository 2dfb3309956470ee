//! What a deployment is to the runtime: the [`Deployment`] trait the macros implement, with its
//! defaults and lifecycle hooks (`check_health`, `reconfigure`).

use std::sync::Arc;

use crate::config::DeploymentConfig;
use crate::dataplane::batch::BatchSpec;
use crate::dataplane::router::CallTarget;
use crate::dataplane::router::RequestRouter;
use crate::error::{BoxError, ErrorKind, ServeError};
use crate::request::context;
use crate::request::encoded::EncodedResponse;
use crate::util::panic;

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

    /// The deployment's `#[batch]` methods (to warn at deploy when a replica cannot hold a full
    /// batch).
    #[doc(hidden)]
    fn __batches() -> &'static [BatchSpec] {
        &[]
    }
}

/// `hook`, made for `replica`, run on its behalf: `replica_context()` and `batching(..)` see that
/// replica inside it, on the async workers and on the blocking pool.
pub(crate) fn on_replica(replica: &Arc<context::ReplicaInfo>, hook: Option<Hook>) -> Option<Hook> {
    let replica = replica.clone();
    hook.map(|run| -> Hook { Box::pin(context::on_replica(replica, run)) })
}

/// A running lifecycle hook (`check_health`, `reconfigure`).
#[doc(hidden)]
pub type Hook = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), BoxError>> + Send>>;

/// An `async fn` hook.
#[doc(hidden)]
pub fn hook_async(
    f: impl std::future::Future<Output = Result<(), BoxError>> + Send + 'static,
) -> Hook {
    Box::pin(async move {
        match panic::catch_async(f).await {
            Ok(result) => result,
            Err(panic) => Err(Box::new(ServeError::panic(panic)) as _),
        }
    })
}

/// A sync hook: runs on the blocking pool.
#[doc(hidden)]
pub fn hook_sync(f: impl FnOnce() -> Result<(), BoxError> + Send + 'static) -> Hook {
    Box::pin(async move {
        // On the blocking pool too, the hook runs on behalf of the replica it ran for here.
        let replica = context::current_replica();
        let f = move || match replica {
            Some(replica) => context::constructing_sync(replica, f),
            None => f(),
        };
        match panic::on_blocking_pool(&tokio::runtime::Handle::current(), f).await {
            Some(Ok(result)) => result,
            Some(Err(panic)) => Err(Box::new(ServeError::panic(panic)) as _),
            None => Err(Box::new(ServeError::shut_down()) as _),
        }
    })
}

/// Decodes a `user_config` into `reconfigure`'s argument type.
#[doc(hidden)]
pub fn user_config<T: serde::de::DeserializeOwned>(
    config: serde_json::Value,
) -> Result<T, BoxError> {
    serde_json::from_value(config)
        .map_err(|e| format!("the user_config does not fit `reconfigure`'s argument: {e}").into())
}

/// Compile-time check that a deployment type can be shared by a replica's concurrent requests.
#[doc(hidden)]
pub fn assert_deployment_type<T: Send + Sync + 'static>() {}

/// Implemented by the generated handle type of a deployment.
#[doc(hidden)]
pub trait HandleStubs<D>: Clone + Send + Sync + 'static {
    /// Stubs that call through `target` (a router and the handle's options).
    fn __from_target(target: CallTarget<D>) -> Self;
    fn __target(&self) -> &CallTarget<D>;
    /// Calls `method` with its argument tuple encoded in `args` (see `api::encoded`).
    fn __call_encoded(&self, method: &str, args: &[u8]) -> Result<EncodedResponse, ServeError>;
}

/// The error of a call by name to a method the deployment does not have.
#[doc(hidden)]
pub fn unknown_method<D>(router: &Arc<RequestRouter<D>>, method: &str) -> ServeError {
    ServeError::new(ErrorKind::Wire)
        .with_message(format!("the deployment has no method `{method}`"))
        .in_deployment(router.name())
}
