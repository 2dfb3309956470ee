//! How a unary method runs on its replica: [`SyncFn`] on the runtime's blocking pool (so it never
//! stalls the async workers), [`AsyncFn`] as a task on the async workers. Either way the method
//! runs in its request's scope (request id, replica context, log span), a panic fails only its
//! request, and the slot is freed before the caller sees the result.

use std::future::Future;
use std::sync::Arc;

use tokio::task::AbortHandle;

use super::replica::Endpoint;
use super::slot::Slot;
use crate::error::{BoxError, ServeError};
use crate::request::context::{self, RequestScope};
use crate::request::response::Completer;
use crate::util::panic::{self, Panic};

/// Starts a unary method on a slot's replica.
pub(crate) trait Invoke<D, V, T>: Send + 'static {
    /// Starts the method; it completes `completer` and drops `slot` when done. Returns the
    /// handle that cancels it.
    fn invoke(
        self,
        values: V,
        slot: Slot<D>,
        completer: Completer<T>,
        method: &'static str,
    ) -> AbortHandle;
}

/// A synchronous `fn` method.
pub(crate) struct SyncFn<F>(pub(crate) F);

impl<D, V, T, F> Invoke<D, V, T> for SyncFn<F>
where
    D: Send + Sync + 'static,
    V: Send + 'static,
    T: Send + 'static,
    F: FnOnce(&D, V) -> Result<T, BoxError> + Send + 'static,
{
    #[inline]
    fn invoke(
        self,
        values: V,
        slot: Slot<D>,
        completer: Completer<T>,
        method: &'static str,
    ) -> AbortHandle {
        let scope = request_scope(&completer, &slot);
        let task = slot.runtime().clone().spawn_blocking(move || {
            let result = panic::catch_sync(|| {
                context::in_sync_scope(scope, || match slot.endpoint() {
                    Endpoint::Local(instance) => (self.0)(instance, values),
                    Endpoint::Remote(_) => Err(not_local()),
                })
            });
            let result = outcome(slot.deployment(), method, result);
            drop(slot); // free the slot before the caller sees the result
            completer.complete(result);
        });
        // Aborting only stops the call if it has not started: blocking code cannot be interrupted.
        task.abort_handle()
    }
}

/// An `async fn` method.
pub(crate) struct AsyncFn<F>(pub(crate) F);

impl<D, V, T, F, Fut> Invoke<D, V, T> for AsyncFn<F>
where
    D: Send + Sync + 'static,
    V: Send + 'static,
    T: Send + 'static,
    F: FnOnce(Arc<D>, V) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
{
    #[inline]
    fn invoke(
        self,
        values: V,
        slot: Slot<D>,
        completer: Completer<T>,
        method: &'static str,
    ) -> AbortHandle {
        let scope = request_scope(&completer, &slot);
        let task = slot.runtime().clone().spawn(async move {
            let result = match slot.endpoint() {
                Endpoint::Local(instance) => {
                    let call = panic::catch_async((self.0)(instance.clone(), values));
                    context::in_scope(scope, call).await
                }
                Endpoint::Remote(_) => Ok(Err(not_local())),
            };
            let result = outcome(slot.deployment(), method, result);
            drop(slot);
            completer.complete(result);
        });
        task.abort_handle()
    }
}

/// A local invocation reached a remote replica (the call path picks the remote path first, so
/// this is never seen).
fn not_local() -> BoxError {
    "a local call reached a remote replica".into()
}

/// Turns a method's outcome (value, user error, or panic) into the request's result.
pub(crate) fn outcome<T>(
    deployment: &Arc<str>,
    method: &'static str,
    outcome: Result<Result<T, BoxError>, Panic>,
) -> Result<T, ServeError> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ServeError::user(e).at(deployment, method)),
        Err(panic) => Err(ServeError::panic(panic).at(deployment, method)),
    }
}

/// The scope a unary request's method runs in.
fn request_scope<T: Send + 'static, D>(completer: &Completer<T>, slot: &Slot<D>) -> RequestScope {
    let cell = completer.cell();
    RequestScope {
        request_id: cell.request_id(),
        request: Some(cell.clone()),
        replica: slot.replica().info().clone(),
    }
}
