//! How a unary method runs on its replica: [`SyncFn`] in a task on the async workers while the
//! deployment's sync calls are short, on the runtime's blocking pool otherwise (so a blocking
//! method never stalls the async workers; see [`SyncPolicy`](super::sync_policy::SyncPolicy)),
//! [`AsyncFn`] as a task on the async workers. Either way the method runs in its request's scope
//! (request id, replica context, log span), a panic fails only its request, and the slot is freed
//! before the caller sees the result.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use super::access;
use super::replica::Endpoint;
use super::slot::Slot;
use crate::error::{BoxError, ServeError};
use crate::request::context::{self, Processing, RequestScope};
use crate::request::response::Completer;
use crate::util;
use crate::util::panic::{self, Panic};

/// Starts a unary method on a slot's replica.
pub(crate) trait Invoke<D, V, T>: Send + 'static {
    /// Starts the method; it completes `completer` and drops `slot` when done. Returns the
    /// handle that cancels it, or `None` when it already ran (in place).
    fn invoke(
        self,
        values: V,
        slot: Slot<D>,
        completer: Completer<T>,
        method: &'static str,
    ) -> Option<AbortHandle>;
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
    ) -> Option<AbortHandle> {
        let scope = request_scope(&completer, &slot);
        let rt = slot.runtime().clone();
        let policy = slot.source().sync_policy();
        if policy.inline() {
            let here = policy.runs_here();
            // The slot's release (which may hand free slots to queued requests) happens in place
            // too, so those run in tasks: calls never nest in place.
            let in_place = move || {
                util::blocking::run_inline(|| {
                    slot.source().sync_policy().learn_runtime();
                    let start = Instant::now();
                    let result = panic::catch_unwind(|| self.call(scope, &slot, method, values));
                    let took = start.elapsed();
                    ran_inline(&slot, method, took);
                    finish(slot, method, result, completer, took);
                })
            };
            if here {
                // Right in the caller's code.
                in_place();
                return None;
            }
            return Some(rt.spawn(async move { in_place() }).abort_handle());
        }
        let task = rt.spawn_blocking(move || {
            let start = Instant::now();
            let result = panic::catch_sync(|| self.call(scope, &slot, method, values));
            let took = start.elapsed();
            slot.source().sync_policy().ran_offloaded(took);
            finish(slot, method, result, completer, took);
        });
        // Aborting only stops the call if it has not started: blocking code cannot be interrupted.
        Some(task.abort_handle())
    }
}

/// Records an inline call's length; a long one, or one that blocked, sends the deployment back
/// to the blocking pool.
#[inline]
fn ran_inline<D>(slot: &Slot<D>, method: &'static str, took: Duration) {
    let blocked = util::blocking::take_inline_blocked();
    let counted = if blocked { Duration::MAX } else { took };
    if slot.source().sync_policy().ran_inline(counted) {
        let why = if blocked { "blocked" } else { "ran long" };
        tracing::debug!(
            deployment = %slot.deployment(),
            method,
            "a sync call {why} ({took:?}): this deployment's sync calls run on the blocking pool again"
        );
    }
}

impl<F> SyncFn<F> {
    /// Calls the method in its request's scope.
    #[inline]
    fn call<D, V, T>(
        self,
        scope: RequestScope,
        slot: &Slot<D>,
        method: &'static str,
        values: V,
    ) -> Result<T, BoxError>
    where
        F: FnOnce(&D, V) -> Result<T, BoxError>,
    {
        context::in_sync_scope(scope, || match slot.endpoint() {
            Endpoint::Local(instance) => access::timed_sync(method, || (self.0)(instance, values)),
            Endpoint::Remote(_) => Err(not_local()),
        })
    }
}

/// Counts the method's run of `took`, frees the slot, then completes the request with the
/// method's outcome.
#[inline]
fn finish<D, T>(
    slot: Slot<D>,
    method: &'static str,
    result: Result<Result<T, BoxError>, Panic>,
    completer: Completer<T>,
    took: Duration,
) {
    let result = outcome(slot.deployment(), method, result);
    if let Some(series) = &slot.replica().info().metrics {
        series.finished(took, result.is_err());
    }
    drop(slot); // free the slot before the caller sees the result
    completer.complete(result);
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
    ) -> Option<AbortHandle> {
        let scope = request_scope(&completer, &slot);
        let rt = slot.runtime().clone();
        let run = async move {
            let processing = Processing::start(&**slot.replica().info());
            let result = match slot.endpoint() {
                Endpoint::Local(instance) => {
                    let call = panic::catch_async((self.0)(instance.clone(), values));
                    context::in_scope(scope, access::timed(method, call)).await
                }
                Endpoint::Remote(_) => Ok(Err(not_local())),
            };
            let result = outcome(slot.deployment(), method, result);
            processing.finish(result.is_err());
            drop(slot);
            completer.complete(result);
        };
        if caller_drives() {
            hand_to_caller(Box::pin(run));
            return None;
        }
        Some(rt.spawn(run).abort_handle())
    }
}

/// An `async fn` method's run, driven by the task that awaits its response (see
/// [`driven_by_caller`]).
pub(crate) type CallerDriven = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// Set while [`driven_by_caller`] makes its call, until a method's run is handed over.
    static CALLER_DRIVES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The run handed over.
    static DRIVEN: std::cell::Cell<Option<CallerDriven>> = const { std::cell::Cell::new(None) };
}

/// Makes the handle call `call` for a caller that awaits its response at once and to the end
/// (the HTTP proxy): if the call starts an `async fn` method right away (a replica had room),
/// the method's run is handed back instead of spawned as a task, and the caller polls it in its
/// own task before the response — one task and one wake-up fewer per request. Dropping the run
/// cancels the method, as aborting its task would. A call that waits in the queue, or any other
/// kind of method, runs as usual (and the run is `None`).
pub(crate) fn driven_by_caller<R>(call: impl FnOnce() -> R) -> (R, Option<CallerDriven>) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CALLER_DRIVES.with(|d| d.set(false));
            drop(DRIVEN.with(std::cell::Cell::take));
        }
    }
    CALLER_DRIVES.with(|d| d.set(true));
    let reset = Reset;
    let response = call();
    let run = DRIVEN.with(std::cell::Cell::take);
    drop(reset);
    (response, run)
}

/// Whether the method about to start should be handed to the caller (see [`driven_by_caller`]).
#[inline]
fn caller_drives() -> bool {
    CALLER_DRIVES.with(std::cell::Cell::get)
}

/// Hands a method's run to the caller of [`driven_by_caller`] (only the first one: later calls
/// made during the same call run as usual).
fn hand_to_caller(run: CallerDriven) {
    CALLER_DRIVES.with(|d| d.set(false));
    DRIVEN.with(|d| d.set(Some(run)));
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
#[inline]
fn request_scope<T: Send + 'static, D>(completer: &Completer<T>, slot: &Slot<D>) -> RequestScope {
    let cell = completer.cell();
    RequestScope {
        request_id: cell.request_id(),
        request: Some(cell.clone()),
        replica: slot.replica().info().clone(),
    }
}
