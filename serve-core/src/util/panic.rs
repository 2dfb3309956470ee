//! Running user code so that a panic fails the one thing it was doing (a request, a constructor, a
//! health check, a task) and never the runtime.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::blocking::allow_blocking;

/// A caught panic's payload.
pub(crate) type Panic = Box<dyn Any + Send>;

/// What a panic said: its message, when its payload is a string (as `panic!` makes it).
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Runs synchronous user code on the current (blocking-pool) thread: blocking waits are allowed
/// in it (see [`allow_blocking`]) and a panic is caught.
///
/// User code that panics leaves nothing of ours half-changed (it runs under none of our locks),
/// which is why asserting unwind safety is sound here.
pub(crate) fn catch_sync<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    allow_blocking(|| catch_unwind(f))
}

/// Runs user code, catching a panic (the caller has set up where it runs: a sync method running
/// in place does so inside `blocking::run_inline`).
pub(crate) fn catch_unwind<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
}

/// Awaits asynchronous user code, catching a panic in any of its polls.
pub(crate) fn catch_async<F: Future>(fut: F) -> impl Future<Output = Result<F::Output, Panic>> {
    AssertUnwindSafe(fut).catch_unwind()
}

/// Runs synchronous user code on `rt`'s blocking pool (so it never stalls the async workers)
/// with [`catch_sync`]. `None` when the runtime shut down before it ran.
pub(crate) async fn on_blocking_pool<R: Send + 'static>(
    rt: &tokio::runtime::Handle,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<Result<R, Panic>> {
    rt.spawn_blocking(move || catch_sync(f)).await.ok()
}
