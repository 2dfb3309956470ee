//! The request a piece of code runs on behalf of: Ray's `serve.get_replica_context()`.
//!
//! While a replica runs a method, the runtime keeps a *request scope* for it (task-local for an
//! `async fn`, thread-local for a sync `fn`, wherever it runs). Three things read it:
//!
//! * [`replica_context`]: the application, deployment, replica and request id, for user code;
//! * handle calls made inside the method: they share its request id and become its children, so
//!   cancelling the request cancels them (recursive cancellation);
//! * logs: the method runs inside a `tracing` span `request{request_id=.. deployment=.. replica=..}`, so
//!   every log line it causes carries its request id.
//!
//! Calls made outside any request (from `main`, or from a constructor) start a new request id and
//! belong to no parent.
//!
//! A constructor runs in a *replica scope* instead: [`replica_context`] gives it its replica (and
//! the resources it was given, to pin a model to its GPUs) but no request.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::response::{Cancel, format_request_id};
use crate::config::ReplicaResources;
use crate::metrics::registry::Metrics;
use crate::metrics::series::ReplicaSeries;
use crate::util::sync::Lock;

/// Where a replica runs: its application, deployment and id, and the resources it was given (one
/// per replica, shared).
#[derive(Debug)]
pub(crate) struct ReplicaInfo {
    pub(crate) app: Arc<str>,
    pub(crate) deployment: Arc<str>,
    pub(crate) replica_id: usize,
    pub(crate) assigned: Assignment,
    /// The name of the node it runs on, in cluster mode.
    pub(crate) node: Option<Arc<str>>,
    /// What the runtime keeps per replica for the features that live with one (a batched
    /// method's queue, a multiplexed loader's models).
    pub(crate) state: ReplicaState,
    /// Its metrics, for a replica running in this process (a remote replica's are kept where it
    /// runs).
    pub(crate) metrics: Option<ReplicaSeries>,
    /// How its deployment logs.
    pub(crate) logging: ReplicaLogging,
}

/// How a deployment's replicas log: its `logging_config` as the request path reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaLogging {
    /// Whether each call gets an access line (`enable_access_log`).
    pub(crate) access_log: bool,
    /// The deployment's own level, for what its replicas log; `None`: the process's.
    pub(crate) level: Option<tracing::level_filters::LevelFilter>,
}

impl Default for ReplicaLogging {
    fn default() -> Self {
        Self {
            access_log: true,
            level: None,
        }
    }
}

impl From<&crate::config::LoggingConfig> for ReplicaLogging {
    fn from(config: &crate::config::LoggingConfig) -> Self {
        Self {
            access_log: config.access_log(),
            level: config.log_level.map(|l| l.filter()),
        }
    }
}

impl ReplicaInfo {
    pub(crate) fn new(
        app: Arc<str>,
        deployment: Arc<str>,
        replica_id: usize,
        assigned: Assignment,
    ) -> Self {
        Self {
            app,
            deployment,
            replica_id,
            assigned,
            node: None,
            state: ReplicaState::default(),
            metrics: None,
            logging: ReplicaLogging::default(),
        }
    }

    /// The same, measured by `metrics` (it runs in this process).
    pub(crate) fn measured(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(ReplicaSeries::new(
            metrics,
            &self.app,
            &self.deployment,
            self.replica_id,
        ));
        self
    }

    /// The same, on node `node`.
    pub(crate) fn on_node(mut self, node: Option<Arc<str>>) -> Self {
        self.node = node;
        self
    }

    /// The same, logging as `logging` says.
    pub(crate) fn logging(mut self, logging: ReplicaLogging) -> Self {
        self.logging = logging;
        self
    }
}

/// Times a request's run on its replica `I` (a `&ReplicaInfo` or an `Arc` of one), if the replica
/// has metrics (it runs in this process): [`finish`](Self::finish)ed, the request counts as done
/// or failed; dropped unfinished (the request was cancelled, or its replica stopped it), as
/// failed, as Ray counts a cancelled request.
pub(crate) struct Processing<I: Deref<Target = ReplicaInfo>> {
    info: I,
    /// When it started; `None` once counted, or with no metrics to count in.
    start: Option<Instant>,
}

impl<I: Deref<Target = ReplicaInfo>> Processing<I> {
    /// Starts timing a request on replica `info`.
    #[inline]
    pub(crate) fn start(info: I) -> Self {
        let start = info.metrics.as_ref().map(|_| Instant::now());
        Self { info, start }
    }

    /// The request ended, failed or not.
    #[inline]
    pub(crate) fn finish(mut self, failed: bool) {
        self.count(failed);
    }

    #[inline]
    fn count(&mut self, failed: bool) {
        if let (Some(start), Some(series)) = (self.start.take(), &self.info.metrics) {
            series.finished(start.elapsed(), failed);
        }
    }
}

impl<I: Deref<Target = ReplicaInfo>> Drop for Processing<I> {
    fn drop(&mut self) {
        self.count(true);
    }
}

/// Per-replica state of the runtime's own features, each under a name of the feature's choosing
/// (a method's name) and its type: made on first use, shared from then on, dropped with the
/// replica. Two features never see each other's entries, even under one name.
#[derive(Default)]
pub(crate) struct ReplicaState {
    entries: Mutex<Vec<StateEntry>>,
}

/// An entry's type, name and value.
type StateEntry = (TypeId, &'static str, Arc<dyn Any + Send + Sync>);

impl ReplicaState {
    /// The entry `T` named `key`, made by `init` if there is none yet.
    pub(crate) fn get_or_init<T: Any + Send + Sync>(
        &self,
        key: &'static str,
        init: impl FnOnce() -> T,
    ) -> Arc<T> {
        let mut entries = self.entries.locked();
        if let Some(found) = Self::find::<T>(&entries, key) {
            return found;
        }
        let made = Arc::new(init());
        entries.push((TypeId::of::<T>(), key, made.clone()));
        made
    }

    /// The entry `T` named `key`, if one was made.
    pub(crate) fn get<T: Any + Send + Sync>(&self, key: &'static str) -> Option<Arc<T>> {
        Self::find(&self.entries.locked(), key)
    }

    fn find<T: Any + Send + Sync>(entries: &[StateEntry], key: &'static str) -> Option<Arc<T>> {
        entries
            .iter()
            .find(|(ty, k, _)| *ty == TypeId::of::<T>() && *k == key)
            .and_then(|(_, _, entry)| entry.clone().downcast::<T>().ok())
    }
}

impl fmt::Debug for ReplicaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<_> = self.entries.locked().iter().map(|(_, k, _)| *k).collect();
        f.debug_struct("ReplicaState")
            .field("entries", &keys)
            .finish()
    }
}

/// What a replica was given: its request and the CPU and GPU ids it holds.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    pub(crate) cpu_ids: Vec<usize>,
    pub(crate) gpu_ids: Vec<usize>,
    pub(crate) cuda_visible_devices: String,
    pub(crate) resources: ReplicaResources,
}

impl Assignment {
    /// Nothing reserved (a replica made without a pool: in unit tests, and a worker's record of
    /// another node's replica).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn none() -> Self {
        Self {
            cpu_ids: Vec::new(),
            gpu_ids: Vec::new(),
            cuda_visible_devices: String::new(),
            resources: ReplicaResources {
                num_cpus: 0.0,
                num_gpus: 0.0,
                custom: Default::default(),
            },
        }
    }
}

/// What runs on behalf of one request on one replica.
#[derive(Clone)]
pub(crate) struct RequestScope {
    /// The request itself, to adopt the calls made on its behalf (a unary request's result cell,
    /// a stream's `StreamRequest`).
    pub(crate) request: Option<Arc<dyn Cancel>>,
    pub(crate) request_id: u64,
    pub(crate) replica: Arc<ReplicaInfo>,
}

impl RequestScope {
    /// The multiplexed model id the request was sent for, if any.
    pub(crate) fn model_id(&self) -> Option<&Arc<str>> {
        self.request.as_ref().and_then(|r| r.model_id())
    }
}

tokio::task_local! {
    static SCOPE: RequestScope;
    static CONSTRUCTING: Arc<ReplicaInfo>;
}

thread_local! {
    static SYNC_SCOPE: RefCell<Option<RequestScope>> = const { RefCell::new(None) };
    static SYNC_CONSTRUCTING: RefCell<Option<Arc<ReplicaInfo>>> = const { RefCell::new(None) };
}

/// Runs an `async fn new` as the constructor of `replica`.
pub(crate) fn constructing<F: Future>(
    replica: Arc<ReplicaInfo>,
    fut: F,
) -> impl Future<Output = F::Output> {
    CONSTRUCTING.scope(replica, fut)
}

/// Runs a sync `new` as the constructor of `replica`.
pub(crate) fn constructing_sync<R>(replica: Arc<ReplicaInfo>, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Arc<ReplicaInfo>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            SYNC_CONSTRUCTING.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    let _reset = Reset(SYNC_CONSTRUCTING.with(|s| s.borrow_mut().replace(replica)));
    f()
}

/// Runs `fut` on behalf of `replica` but of no one request: a lifecycle hook (`reconfigure`,
/// `check_health`) or a batch of a `#[batch]` method. It sees its replica as a constructor does.
pub(crate) fn on_replica<F: Future>(
    replica: Arc<ReplicaInfo>,
    fut: F,
) -> impl Future<Output = F::Output> {
    CONSTRUCTING.scope(replica, fut)
}

/// The replica whose constructor the current code runs in, if any.
fn constructing_now() -> Option<Arc<ReplicaInfo>> {
    CONSTRUCTING
        .try_with(Arc::clone)
        .ok()
        .or_else(|| SYNC_CONSTRUCTING.with(|s| s.borrow().clone()))
}

/// The request scope the current code runs in, if any.
///
/// A sync method's scope comes first: a short sync method may run in place inside an async
/// method's task (see `dataplane::sync_policy`), and then it is the innermost scope.
pub(crate) fn current() -> Option<RequestScope> {
    SYNC_SCOPE
        .with(|s| s.borrow().clone())
        .or_else(|| SCOPE.try_with(RequestScope::clone).ok())
}

/// The replica the current code runs on: the current request's, or the one being constructed.
pub(crate) fn current_replica() -> Option<Arc<ReplicaInfo>> {
    current()
        .map(|scope| scope.replica)
        .or_else(constructing_now)
}

/// How the replica the current code runs on logs (`None` outside any replica): read by the
/// command line's log filter, so a deployment's own `log_level` applies to what its methods,
/// constructor and hooks log, and by the replica's access lines. Copies two words; clones nothing.
pub(crate) fn current_logging() -> Option<ReplicaLogging> {
    if let Some(found) = SYNC_SCOPE.with(|s| s.borrow().as_ref().map(|s| s.replica.logging)) {
        return Some(found);
    }
    if let Ok(found) = SCOPE.try_with(|s| s.replica.logging) {
        return Some(found);
    }
    CONSTRUCTING
        .try_with(|r| r.logging)
        .ok()
        .or_else(|| SYNC_CONSTRUCTING.with(|s| s.borrow().as_ref().map(|r| r.logging)))
}

/// The request id of the current scope, or a new one for a call made outside any request.
pub(crate) fn request_id_for_new_call(scope: Option<&RequestScope>) -> u64 {
    scope.map_or_else(|| fastrand::u64(..), |s| s.request_id)
}

/// The target of the `request` span (its module), for filters that keep it on.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) const SPAN_TARGET: &str = module_path!();

fn span(scope: &RequestScope) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %format_args!("{:016x}", scope.request_id),
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

/// Where the calling code runs, inside a deployment's method or constructor: see
/// [`replica_context`].
#[derive(Debug, Clone)]
pub struct ReplicaContext {
    replica: Arc<ReplicaInfo>,
    /// `None` in a constructor.
    request_id: Option<u64>,
    model_id: Option<Arc<str>>,
}

impl ReplicaContext {
    /// The application's name (`default` unless it was run under a name, as in Ray).
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

    /// The name of the node the replica runs on, in cluster mode (`None` in one process).
    pub fn node_name(&self) -> Option<&str> {
        self.replica.node.as_deref()
    }

    /// The id of the request being served (shared with the calls made on its behalf, and in
    /// every log line the request causes); empty in a constructor, as in Ray.
    pub fn request_id(&self) -> String {
        self.request_id.map(format_request_id).unwrap_or_default()
    }

    /// The model id the request was sent for (model multiplexing; see
    /// [`get_multiplexed_model_id`](crate::get_multiplexed_model_id)); `None` for a request sent
    /// without one, and in a constructor.
    pub fn multiplexed_model_id(&self) -> Option<&str> {
        self.model_id.as_deref()
    }

    /// What the replica reserves (its deployment's `num_cpus`, `num_gpus` and custom resources).
    pub fn resources(&self) -> &ReplicaResources {
        &self.replica.assigned.resources
    }

    /// The CPUs the replica holds all or part of, numbered `0..num_cpus` of the instance (see
    /// [`resources`](crate::resources)); empty when the instance does not account for CPUs or the
    /// replica reserves none. Where the process may use every core these are the OS's CPU numbers,
    /// for `sched_setaffinity` or `taskset`.
    pub fn cpu_ids(&self) -> &[usize] {
        &self.replica.assigned.cpu_ids
    }

    /// The GPUs the replica holds all or part of: CUDA device ordinals as this process sees them
    /// (`cuda:{id}`). A replica of `num_gpus = 1` holds a GPU no other replica holds; replicas of
    /// fractions may share one.
    pub fn gpu_ids(&self) -> &[usize] {
        &self.replica.assigned.gpu_ids
    }

    /// [`gpu_ids`](Self::gpu_ids) as a child process's `CUDA_VISIBLE_DEVICES` should name them:
    /// mapped through this process's own `CUDA_VISIBLE_DEVICES` when it is set (ordinal 0 of
    /// `CUDA_VISIBLE_DEVICES=2,3` is `"2"`), comma-separated. Replicas share the process, so set it
    /// on a child process (`Command::env`), never on this one.
    pub fn cuda_visible_devices(&self) -> &str {
        &self.replica.assigned.cuda_visible_devices
    }
}

/// The replica and request the calling code serves, when called inside a deployment's method, or
/// the replica being built, when called inside its constructor (`None` elsewhere): Ray's
/// `serve.get_replica_context()`.
///
/// A constructor sees its replica's resources before the replica takes a request, which is where a
/// model loader pins itself: `ctx.gpu_ids()`, `ctx.cpu_ids()`.
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
    current()
        .map(|scope| ReplicaContext {
            model_id: scope.model_id().cloned(),
            replica: scope.replica,
            request_id: Some(scope.request_id),
        })
        .or_else(|| {
            constructing_now().map(|replica| ReplicaContext {
                replica,
                request_id: None,
                model_id: None,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::ReplicaState;
    use std::sync::Arc;

    #[test]
    fn replica_state_makes_an_entry_once_per_name_and_type() {
        let state = ReplicaState::default();
        let a = state.get_or_init("m", || 1u32);
        let again = state.get_or_init("m", || 2u32);
        assert!(Arc::ptr_eq(&a, &again), "made once, then shared");
        assert_eq!(*state.get_or_init("other", || 3u32), 3, "another name");
        assert_eq!(
            *state.get_or_init("m", || 4u64),
            4,
            "another type, same name"
        );
        assert_eq!(state.get::<u32>("m").as_deref(), Some(&1));
        assert!(state.get::<u8>("m").is_none());
    }
}
