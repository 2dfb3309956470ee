//! [`RequestRouter`]: the request path of one deployment — its routable replicas, its queue, and
//! the calls the generated stubs make (through a [`CallTarget`]: the router and a handle's options).

use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::call::{Call, StreamCall, UnaryCall};
use super::invoke::{AsyncFn, Invoke, SyncFn};
use super::picker::{PowerOfTwoChoices, ReplicaPicker};
use super::queue::RequestQueue;
use super::replica::Replica;
use super::sink::StreamSink;
use super::slot::{Job, Slot, SlotSource};
use super::sync_policy::SyncPolicy;
use crate::error::{BoxError, ErrorKind, ServeError};
use crate::metrics::registry::Refresh;
use crate::metrics::series::DeploymentSeries;
use crate::request::args::ArgList;
use crate::request::codec::CallWire;
use crate::request::context::{self, RequestScope};
use crate::request::generator::{self, DeploymentResponseGenerator};
use crate::request::response::{self, DeploymentResponse};
use crate::util::sync::Lock;

/// A duration in whole nanoseconds (saturating), to keep in an atomic.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The replicas a router routes to (copy on write).
pub(crate) type ReplicaSet<D> = Arc<Vec<Arc<dyn Replica<D>>>>;

/// What a router needs to know of its deployment's configuration.
#[derive(Debug)]
pub(crate) struct RouterSettings {
    /// Slots per replica (`max_ongoing_requests`).
    pub(crate) max_ongoing: usize,
    /// Waiting requests past which a call fails at once (`max_queued_requests`).
    pub(crate) max_queued: Option<usize>,
    /// How long a replica taken out of routing may take to finish its requests before they are
    /// failed (`graceful_shutdown_timeout_s`).
    pub(crate) graceful_timeout: Duration,
    /// What this node's callers of the deployment measure (none for the router that serves one
    /// replica to other nodes: their callers count their calls).
    pub(crate) metrics: Option<DeploymentSeries>,
}

impl RouterSettings {
    /// The settings of a deployment configured with `config`, its callers measured by
    /// `metrics`.
    pub(crate) fn of(
        config: &crate::config::DeploymentConfig,
        metrics: Option<DeploymentSeries>,
    ) -> Self {
        Self {
            max_ongoing: config.max_ongoing_requests,
            max_queued: config.max_queued_requests,
            graceful_timeout: crate::util::time::seconds(config.graceful_shutdown_timeout_s)
                .unwrap_or(Duration::ZERO),
            metrics,
        }
    }
}

/// What a handle's stubs call through: a deployment's router with the options of one handle
/// (`handle.options()`: today the multiplexed model id). Cheap to clone: a handle without options
/// costs what its router's `Arc` costs, and its calls check one `None`.
#[doc(hidden)]
pub struct CallTarget<D> {
    router: Arc<RequestRouter<D>>,
    /// The model each call is sent for (model multiplexing), if any.
    model_id: Option<Arc<str>>,
}

impl<D> CallTarget<D> {
    /// The plain target of `router`: no options.
    pub(crate) fn new(router: Arc<RequestRouter<D>>) -> Self {
        Self {
            router,
            model_id: None,
        }
    }

    /// The same router, each call sent for model `model_id` (`None`: no model).
    pub(crate) fn with_model_id(&self, model_id: Option<Arc<str>>) -> Self {
        Self {
            router: self.router.clone(),
            model_id,
        }
    }

    /// The router.
    #[inline]
    pub(crate) fn router(&self) -> &Arc<RequestRouter<D>> {
        &self.router
    }

    /// The model id its calls are sent for.
    #[inline]
    pub(crate) fn model_id(&self) -> Option<&Arc<str>> {
        self.model_id.as_ref()
    }
}

impl<D> Clone for CallTarget<D> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            router: self.router.clone(),
            model_id: self.model_id.clone(),
        }
    }
}

/// The generated handle reads its router through the target (`__router`, `unknown_method`).
impl<D> Deref for CallTarget<D> {
    type Target = Arc<RequestRouter<D>>;

    #[inline]
    fn deref(&self) -> &Arc<RequestRouter<D>> {
        &self.router
    }
}

/// Routes the requests of one deployment to its replicas.
#[doc(hidden)]
pub struct RequestRouter<D> {
    name: Arc<str>,
    /// The replicas that take new requests. Replaced whole (copy on write) when replicas come and
    /// go, so routing reads it without a lock; a removed replica finishes what it runs, since each
    /// request's slot holds the replica.
    replicas: ArcSwap<Vec<Arc<dyn Replica<D>>>>,
    picker: Box<dyn ReplicaPicker<D>>,
    /// Slots per replica (changed in place by an update).
    max_ongoing: AtomicUsize,
    queue: RequestQueue<D>,
    /// Serialises changes to `replicas` (routing itself never takes it).
    membership: Mutex<()>,
    /// Told when a request waits at a deployment with no replica, so whoever manages the
    /// replicas (the controller) starts one at once.
    wake: Arc<tokio::sync::Notify>,
    /// Set by a graceful shutdown: new outside requests are refused.
    closed: AtomicBool,
    /// Set when a graceful shutdown's time is up: every request is refused.
    stopped: AtomicBool,
    /// Set when its deployment was deleted (with `stopped`): refusals say so.
    deleted: AtomicBool,
    /// Requests failed because a graceful shutdown timeout ran out (a retired replica's, or the
    /// deployment's when the instance stopped).
    stopped_requests: Arc<AtomicUsize>,
    /// `graceful_shutdown_timeout_s`, in nanoseconds (a new version of the application may
    /// change it).
    graceful_timeout: AtomicU64,
    /// Replicas out of routing that still finish requests (until they are idle or their
    /// graceful shutdown timeout ends).
    retiring: Arc<Mutex<Vec<Arc<dyn Replica<D>>>>>,
    /// Where its sync methods run: in place while they are short.
    sync_policy: SyncPolicy,
    rt: tokio::runtime::Handle,
    /// What its callers measure.
    metrics: Option<DeploymentSeries>,
}

impl<D: Send + Sync + 'static> RequestRouter<D> {
    /// A router over `replicas`, dispatching on `rt`.
    pub(crate) fn new(
        name: Arc<str>,
        replicas: Vec<Arc<dyn Replica<D>>>,
        settings: RouterSettings,
        rt: tokio::runtime::Handle,
    ) -> Self {
        Self {
            name,
            replicas: ArcSwap::from_pointee(replicas),
            picker: Box::new(PowerOfTwoChoices::default()),
            max_ongoing: AtomicUsize::new(settings.max_ongoing.max(1)),
            queue: RequestQueue::new(settings.max_queued),
            membership: Mutex::new(()),
            wake: Arc::new(tokio::sync::Notify::new()),
            closed: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            stopped_requests: Arc::default(),
            graceful_timeout: AtomicU64::new(nanos(settings.graceful_timeout)),
            retiring: Arc::default(),
            sync_policy: SyncPolicy::new(&rt),
            rt,
            metrics: settings.metrics,
        }
    }
}

impl<D> RequestRouter<D> {
    /// The deployment's name.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// How many replicas take requests now.
    pub(crate) fn num_replicas(&self) -> usize {
        self.replicas.load().len()
    }

    /// The routable replicas now.
    pub(crate) fn replicas(&self) -> ReplicaSet<D> {
        self.replicas.load_full()
    }

    /// Calls `f` with the routable replicas while no replica joins or leaves (so a replica that
    /// joins routing is seen either as built or as running, never as neither).
    pub(crate) fn with_membership<R>(&self, f: impl FnOnce(&[Arc<dyn Replica<D>>]) -> R) -> R {
        let _membership = self.membership.locked();
        f(&self.replicas.load())
    }

    /// Requests waiting for a replica.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Requests waiting for a replica plus requests running on one (replicas that left routing
    /// and still finish requests included): the load autoscaling sees, and what a graceful
    /// shutdown waits for.
    pub(crate) fn ongoing(&self) -> usize {
        let running: usize = self.replicas.load().iter().map(|r| r.slots().load()).sum();
        let retiring: usize = self
            .retiring
            .locked()
            .iter()
            .map(|r| r.slots().load())
            .sum();
        running + retiring + self.queue.len()
    }

    /// Replicas out of routing that still finish their requests.
    pub(crate) fn draining(&self) -> usize {
        self.retiring.locked().len()
    }

    /// Slots per replica.
    pub(crate) fn max_ongoing(&self) -> usize {
        self.max_ongoing.load(Ordering::Relaxed)
    }

    /// What is told when a request waits at a deployment with no replica.
    pub(crate) fn wake_signal(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// How long its replicas may take to finish their requests when they stop.
    pub(crate) fn graceful_timeout(&self) -> Duration {
        Duration::from_nanos(self.graceful_timeout.load(Ordering::Relaxed))
    }

    /// Takes new settings (a new version of the application): more slots take queued requests
    /// at once; requests waiting already keep their places under a lower queue limit.
    /// (A router keeps the metrics it was made with: `settings.metrics` is not read.)
    pub(crate) fn set_settings(self: &Arc<Self>, settings: &RouterSettings)
    where
        D: Send + Sync + 'static,
    {
        self.queue.set_max(settings.max_queued);
        self.graceful_timeout
            .store(nanos(settings.graceful_timeout), Ordering::Relaxed);
        self.set_max_ongoing(settings.max_ongoing);
    }

    /// Requests failed because a graceful shutdown timeout ran out.
    pub(crate) fn stopped_requests(&self) -> usize {
        self.stopped_requests.load(Ordering::SeqCst)
    }
}

impl<D: Send + Sync + 'static> RequestRouter<D> {
    /// Sets the slots per replica; queued requests take new slots at once.
    pub(crate) fn set_max_ongoing(self: &Arc<Self>, n: usize) {
        self.max_ongoing.store(n.max(1), Ordering::SeqCst);
        self.drain();
    }

    /// Adds the replica `build` makes (it runs while no other replica joins or leaves); queued
    /// requests start on it at once.
    pub(crate) fn add_replica(self: &Arc<Self>, build: impl FnOnce() -> Arc<dyn Replica<D>>) {
        {
            let _membership = self.membership.locked();
            let mut replicas = Vec::clone(&self.replicas.load());
            replicas.push(build());
            self.replicas.store(Arc::new(replicas));
        }
        self.drain();
    }

    /// Takes the replica `pick` chooses out of routing and retires it (it finishes what it runs,
    /// see [`retire`](Self::retire)); returns it, if `pick` chose one.
    pub(crate) fn remove_where(
        &self,
        pick: impl FnOnce(&[Arc<dyn Replica<D>>]) -> Option<usize>,
    ) -> Option<Arc<dyn Replica<D>>> {
        let removed = {
            let _membership = self.membership.locked();
            let mut replicas = Vec::clone(&self.replicas.load());
            let at = pick(&replicas)?;
            let removed = replicas.remove(at);
            self.replicas.store(Arc::new(replicas));
            removed
        };
        self.retire(removed.clone());
        Some(removed)
    }

    /// Lets a replica taken out of routing finish its requests for up to the graceful shutdown
    /// timeout; past it, the requests still running on it fail with [`ErrorKind::ShutDown`]
    /// (an async method is dropped at its next `.await`; a synchronous one cannot be interrupted
    /// and runs to its end, its result discarded). The replica (and the resources it holds) is
    /// dropped after its last request.
    ///
    /// [`ErrorKind::ShutDown`]: crate::ErrorKind::ShutDown
    fn retire(&self, replica: Arc<dyn Replica<D>>) {
        if !replica.slots().retire() {
            return;
        }
        /// Keeps the replica in the router's retiring list until dropped.
        struct Draining<D>(Arc<Mutex<Vec<Arc<dyn Replica<D>>>>>, Arc<dyn Replica<D>>);
        impl<D> Drop for Draining<D> {
            fn drop(&mut self) {
                self.0.locked().retain(|r| !Arc::ptr_eq(r, &self.1));
            }
        }
        self.retiring.locked().push(replica.clone());
        let draining = Draining(self.retiring.clone(), replica.clone());
        let timeout = self.graceful_timeout();
        let stopped_requests = self.stopped_requests.clone();
        self.rt.spawn(async move {
            let _draining = draining;
            if tokio::time::timeout(timeout, replica.slots().idle())
                .await
                .is_err()
            {
                let info = replica.info();
                let stopped = replica.slots().stop_running(info, timeout);
                stopped_requests.fetch_add(stopped, Ordering::SeqCst);
                tracing::warn!(
                    deployment = %info.deployment,
                    replica = info.replica_id,
                    "replica stopped: {stopped} request(s) still running after the graceful \
                     shutdown timeout ({timeout:?}) were failed"
                );
            }
        });
    }

    /// Stops admitting new outside requests (calls made on behalf of requests in flight still
    /// run, so those requests can finish); after the graceful shutdown timeout, fails whatever
    /// still runs or waits.
    pub(crate) fn close(self: &Arc<Self>) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let timeout = self.graceful_timeout();
        let router = Arc::downgrade(self);
        self.rt.spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(router) = router.upgrade() {
                router.stop_all();
            }
        });
    }

    /// Its deployment was deleted: every call is refused from now on, saying so
    /// ([`ErrorKind::NotFound`]), and the requests still waiting for a replica fail the same way.
    /// Requests running on a replica finish there (its retirement bounds them).
    ///
    /// [`ErrorKind::NotFound`]: crate::ErrorKind::NotFound
    pub(crate) fn delete(&self) {
        self.deleted.store(true, Ordering::SeqCst);
        self.closed.store(true, Ordering::SeqCst);
        self.stopped.store(true, Ordering::SeqCst);
        for job in self.queue.take_all() {
            job.fail(self.refusal().in_deployment(&self.name));
        }
    }

    /// Why a call is refused: the deployment was deleted, or it is shutting down.
    #[cold]
    fn refusal(&self) -> ServeError {
        if self.deleted.load(Ordering::Relaxed) {
            ServeError::new(ErrorKind::NotFound).with_message(
                "the deployment was deleted (its application was deleted, or replaced by a \
                 version without it)",
            )
        } else {
            ServeError::shut_down()
                .with_message("the deployment is shutting down and takes no new requests")
        }
    }

    /// Past a graceful shutdown's timeout: refuses every call, fails the requests still
    /// waiting for a replica and those still running on one.
    pub(crate) fn stop_all(&self) {
        let timeout = self.graceful_timeout();
        self.stopped.store(true, Ordering::SeqCst);
        let queued = self.queue.take_all();
        self.stopped_requests
            .fetch_add(queued.len(), Ordering::SeqCst);
        for job in queued {
            job.fail(
                ServeError::shut_down()
                    .with_message(format!(
                        "the deployment shut down ({timeout:?} graceful shutdown timeout) before a \
                         replica took the request"
                    ))
                    .in_deployment(&self.name),
            );
        }
        let retiring = self.retiring.locked().clone();
        let mut stopped = 0;
        for replica in self.replicas.load().iter().chain(&retiring) {
            stopped += replica.slots().stop_running(replica.info(), timeout);
        }
        self.stopped_requests.fetch_add(stopped, Ordering::SeqCst);
        if stopped > 0 {
            tracing::warn!(
                deployment = %self.name,
                "{stopped} request(s) still running after the graceful shutdown timeout \
                 ({timeout:?}) were failed"
            );
        }
    }

    /// A slot on a replica with room, as the picker chooses.
    fn reserve(&self) -> Option<Arc<dyn Replica<D>>> {
        let replicas = self.replicas.load();
        self.picker
            .reserve(&replicas, self.max_ongoing.load(Ordering::Relaxed))
    }

    /// A free slot for a new request, if nobody waits for one already (FIFO).
    #[inline]
    fn free_slot(self: &Arc<Self>) -> Option<Slot<D>> {
        if self.queue.len() > 0 {
            return None;
        }
        let replica = self.reserve()?;
        Some(Slot::new(self.clone(), replica))
    }

    /// A free slot for a request sent for multiplexed model `id`: on a replica that holds the
    /// model if one has room (see `multiplexed`). Kept out of line: the plain call path does not
    /// carry its code.
    #[cold]
    #[inline(never)]
    fn free_slot_for(self: &Arc<Self>, id: &str) -> Option<Slot<D>> {
        if self.queue.len() > 0 {
            return None;
        }
        let replicas = self.replicas.load();
        let max = self.max_ongoing.load(Ordering::Relaxed);
        let replica = super::multiplexed::reserve(&replicas, max, id, |k| fastrand::usize(..k))?;
        Some(Slot::new(self.clone(), replica))
    }

    /// Runs `call` with a slot now, or queues it (FIFO) until one frees up; fails it at once when
    /// the queue is full.
    #[inline]
    fn dispatch<C: Call<D>>(self: &Arc<Self>, call: C, values: C::Values) {
        let slot = match call.model_id() {
            None => self.free_slot(),
            Some(id) => self.free_slot_for(id),
        };
        match slot {
            Some(slot) => call.run(values, slot),
            None => self.enqueue(Box::new((call, values))),
        }
    }

    /// Queues `job` until a slot frees up; fails it at once when the queue is full.
    fn enqueue(self: &Arc<Self>, job: Box<dyn Job<D>>) {
        if let Err((job, err)) = self.queue.push(job) {
            job.fail(err.in_deployment(&self.name));
            return;
        }
        if self.replicas.load().is_empty() {
            // Scaled to zero: wake the controller rather than wait for its next measurement.
            self.wake.notify_one();
        }
        self.drain();
    }

    /// Hands free slots to queued requests, oldest first.
    fn drain(self: &Arc<Self>) {
        // Run outside the queue's lock: a job may drop its slot at once, which drains again.
        while let Some((job, replica)) = self.queue.pop_with(|| self.reserve()) {
            job.run(Slot::new(self.clone(), replica));
        }
    }

    /// Dispatches `call` once every argument is resolved: at once when all are plain values (the
    /// fast path), else from a task that waits for the upstream requests first.
    fn submit<C, A>(
        self: &Arc<Self>,
        method: &'static str,
        call: C,
        args: A,
        scope: Option<&RequestScope>,
    ) where
        C: Call<D>,
        A: ArgList<Values = C::Values>,
    {
        if let Some(metrics) = &self.metrics {
            metrics.called();
        }
        if (scope.is_none() && self.closed.load(Ordering::Relaxed))
            || self.stopped.load(Ordering::Relaxed)
        {
            call.fail(self.refusal().at(&self.name, method));
            return;
        }
        match args.ready() {
            Ok(values) => self.dispatch(call, values),
            Err(args) => {
                let router = self.clone();
                self.rt.spawn(async move {
                    match args.resolve().await {
                        Ok(values) if !call.abandoned() => router.dispatch(call, values),
                        Ok(_) => {}
                        Err(e) => call.fail(e.at(&router.name, method)),
                    }
                });
            }
        }
    }

    fn call_unary<A, T, I>(
        self: &Arc<Self>,
        method: &'static str,
        args: A,
        invoke: I,
        wire: CallWire<A::Values, T>,
        model_id: Option<Arc<str>>,
    ) -> DeploymentResponse<T>
    where
        A: ArgList,
        T: Send + 'static,
        I: Invoke<D, A::Values, T>,
    {
        let scope = context::current();
        let request_id = context::request_id_for_new_call(scope.as_ref());
        let (completer, consumer) = response::pending_for::<T>(request_id, model_id);
        if let Some(parent) = scope.as_ref().and_then(|s| s.request.as_ref()) {
            // Started on behalf of another request: cancelled with it.
            parent.adopt(completer.cell().clone());
        }
        let call = UnaryCall {
            completer,
            method,
            invoke,
            wire,
        };
        self.submit(method, call, args, scope.as_ref());
        DeploymentResponse::from_consumer(consumer)
    }

    /// Calls a synchronous method: in a task on the async workers while the deployment's sync
    /// calls are short, else on the blocking pool (see `SyncPolicy`).
    pub fn call_sync<A, T, F>(
        target: &CallTarget<D>,
        method: &'static str,
        args: A,
        f: F,
        wire: CallWire<A::Values, T>,
    ) -> DeploymentResponse<T>
    where
        A: ArgList,
        T: Send + 'static,
        F: FnOnce(&D, A::Values) -> Result<T, BoxError> + Send + 'static,
    {
        let model_id = target.model_id().cloned();
        target
            .router()
            .call_unary(method, args, SyncFn(f), wire, model_id)
    }

    /// Calls an `async fn` method: it runs as a task on the async workers.
    pub fn call_async<A, T, F, Fut>(
        target: &CallTarget<D>,
        method: &'static str,
        args: A,
        f: F,
        wire: CallWire<A::Values, T>,
    ) -> DeploymentResponse<T>
    where
        A: ArgList,
        T: Send + 'static,
        F: FnOnce(Arc<D>, A::Values) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
    {
        let model_id = target.model_id().cloned();
        target
            .router()
            .call_unary(method, args, AsyncFn(f), wire, model_id)
    }

    /// Calls a streaming method: `f` drives the method's stream into the sink; items reach the
    /// caller's generator as they are produced.
    pub fn call_stream<A, T, F, Fut>(
        target: &CallTarget<D>,
        method: &'static str,
        args: A,
        f: F,
        wire: CallWire<A::Values, T>,
    ) -> DeploymentResponseGenerator<T>
    where
        A: ArgList,
        T: Send + 'static,
        F: FnOnce(Arc<D>, A::Values, StreamSink<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let scope = context::current();
        let request_id = context::request_id_for_new_call(scope.as_ref());
        let (sender, generator) = generator::generator::<T>();
        let call = StreamCall {
            request_id,
            sender,
            method,
            f,
            wire,
            model_id: target.model_id().cloned(),
        };
        target.router().submit(method, call, args, scope.as_ref());
        generator
    }
}

impl<D: Send + Sync + 'static> SlotSource<D> for RequestRouter<D> {
    #[inline]
    fn deployment(&self) -> &Arc<str> {
        &self.name
    }

    #[inline]
    fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }

    #[inline]
    fn sync_policy(&self) -> &SyncPolicy {
        &self.sync_policy
    }

    #[inline]
    fn has_waiting(&self) -> bool {
        self.queue.len() > 0
    }

    fn slot_freed(self: Arc<Self>) {
        self.drain();
    }

    fn evict(&self, replica: &Arc<dyn Replica<D>>, why: &ServeError) {
        let evicted =
            self.remove_where(|replicas| replicas.iter().position(|r| Arc::ptr_eq(r, replica)));
        if evicted.is_some() {
            tracing::warn!(
                deployment = %self.name,
                replica = replica.info().replica_id,
                "replica taken out of routing, its requests sent elsewhere: {why}"
            );
            // Its controller (if this process has one) replaces it without waiting for a tick.
            self.wake.notify_one();
        }
    }

    fn requeue(self: Arc<Self>, job: Box<dyn Job<D>>) {
        if self.stopped.load(Ordering::Relaxed) {
            let error = if self.deleted.load(Ordering::Relaxed) {
                self.refusal()
            } else {
                ServeError::shut_down()
            };
            job.fail(error.in_deployment(&self.name));
            return;
        }
        match self.free_slot() {
            Some(slot) => job.run(slot),
            None => self.enqueue(job),
        }
    }
}

/// At scrape time: the calls waiting for a replica and running on one, and each replica of this
/// process's running requests (routable or finishing after it left routing).
impl<D: Send + Sync + 'static> Refresh for RequestRouter<D> {
    fn refresh(&self) {
        let replicas = self.replicas.load();
        let retiring = self.retiring.locked().clone();
        let mut running = 0;
        for replica in replicas.iter().chain(&retiring) {
            let load = replica.slots().load();
            running += load;
            if let Some(series) = &replica.info().metrics {
                series.set_processing(load);
            }
        }
        if let Some(metrics) = &self.metrics {
            metrics.set_load(self.queue.len(), running);
        }
    }
}

#[cfg(test)]
mod tests;
