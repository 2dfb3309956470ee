//! The request a piece of code runs on behalf of: Ray's `serve.get_replica_context()`.
//!
//! While a replica runs a method, the runtime keeps a *request scope* for it (task-local for an
//! `async fn`, thread-local for a sync `fn` on the blocking pool). Three things read it:
//!
//! * [`replica_context`]: the application, deployment, replica and request id, for user code;
//! * handle calls made inside the method: they share its request id and become its children, so
//!   cancelling the request cancels them (recursive cancellation);
//! * logs: the method runs inside a `tracing` span `request{id=.. deployment=.. replica=..}`, so
//!   every log line it causes carries its request id.
//!
//! Calls made outside any request (from `main`, or from a constructor) start a new request id and
//! belong to no parent.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use crate::response::Cancel;

/// Where a replica runs: its application, deployment and id (one per replica, shared).
#[derive(Debug)]
pub(crate) struct ReplicaInfo {
    pub(crate) app: Arc<str>,
    pub(crate) deployment: Arc<str>,
    pub(crate) replica_id: usize,
}

/// What runs on behalf of one request on one replica.
#[derive(Clone)]
pub(crate) struct RequestScope {
    /// The request itself, to adopt the calls made on its behalf (`None` for a stream).
    pub(crate) request: Option<Arc<dyn Cancel>>,
    pub(crate) request_id: u64,
    pub(crate) replica: Arc<ReplicaInfo>,
}

tokio::task_local! {
    static SCOPE: RequestScope;
}

thread_local! {
    static SYNC_SCOPE: RefCell<Option<RequestScope>> = const { RefCell::new(None) };
}

/// The request scope the current code runs in, if any.
pub(crate) fn current() -> Option<RequestScope> {
    SCOPE
        .try_with(RequestScope::clone)
        .ok()
        .or_else(|| SYNC_SCOPE.with(|s| s.borrow().clone()))
}

/// The request id of the current scope, or a new one for a call made outside any request.
pub(crate) fn request_id_for_new_call(scope: Option<&RequestScope>) -> u64 {
    scope.map_or_else(|| fastrand::u64(..), |s| s.request_id)
}

pub(crate) fn format_request_id(id: u64) -> String {
    format!("{id:016x}")
}

fn span(scope: &RequestScope) -> tracing::Span {
    tracing::info_span!(
        "request",
        id = %format_args!("{:016x}", scope.request_id),
        deployment = %scope.replica.deployment,
        replica = scope.replica.replica_id,
    )
}

/// Runs an async method's future inside `scope`.
pub(crate) fn in_scope<F: Future>(scope: RequestScope, fut: F) -> impl Future<Output = F::Output> {
    use tracing::Instrument;
    let span = span(&scope);
    SCOPE.scope(scope, fut.instrument(span))
}

/// Runs a sync method inside `scope`.
pub(crate) fn in_sync_scope<R>(scope: RequestScope, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<RequestScope>);
    impl Drop for Reset {
        fn drop(&mut self) {
            SYNC_SCOPE.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    let span = span(&scope);
    let _entered = span.enter();
    let _reset = Reset(SYNC_SCOPE.with(|s| s.borrow_mut().replace(scope)));
    f()
}

/// Where the calling code runs, inside a deployment's method: see [`replica_context`].
#[derive(Debug, Clone)]
pub struct ReplicaContext {
    replica: Arc<ReplicaInfo>,
    request_id: u64,
}

impl ReplicaContext {
    /// The application's name (its ingress deployment's name).
    pub fn app_name(&self) -> &str {
        &self.replica.app
    }

    /// The deployment's name.
    pub fn deployment(&self) -> &str {
        &self.replica.deployment
    }

    /// The replica's id within its deployment.
    pub fn replica_id(&self) -> usize {
        self.replica.replica_id
    }

    /// The id of the request being served (shared with the calls made on its behalf, and in
    /// every log line the request causes).
    pub fn request_id(&self) -> String {
        format_request_id(self.request_id)
    }
}

/// The replica and request the calling code serves, when called inside a deployment's method
/// (`None` elsewhere): Ray's `serve.get_replica_context()`.
///
/// ```
/// use serve_core::prelude::*;
///
/// #[deployment]
/// #[derive(Default)]
/// pub struct WhoAmI;
///
/// #[deployment]
/// impl WhoAmI {
///     pub fn call(&self) -> String {
///         let ctx = serve_core::replica_context().expect("inside a request");
///         format!("{} replica {}", ctx.deployment(), ctx.replica_id())
///     }
/// }
///
/// let serve = Serve::start()?;
/// assert_eq!(serve.run(WhoAmI::bind())?.remote().result()?, "WhoAmI replica 0");
/// assert!(serve_core::replica_context().is_none());
/// # Ok::<(), ServeError>(())
/// ```
pub fn replica_context() -> Option<ReplicaContext> {
    current().map(|scope| ReplicaContext {
        replica: scope.replica,
        request_id: scope.request_id,
    })
}
