//! Where a request waits for a replica, and how it runs there.
//!
//! A [`Router`] owns a deployment's replicas. A handle call:
//!
//! 1. builds its argument tuple; if an argument is a pending response, a small task first waits for
//!    it (and fails the call with an upstream error if it failed);
//! 2. reserves a slot on a replica: *power of two choices* on in-flight counts (Mitzenmacher, "The
//!    Power of Two Choices in Randomized Load Balancing", 2001: picking the less loaded of two random
//!    replicas keeps the maximum load within `O(log log n)` of the mean, without a global scan); a
//!    replica has `max_ongoing_requests` slots;
//! 3. when every replica is full, waits in one FIFO queue; a replica that finishes a request hands
//!    its slot to the head of the queue;
//! 4. runs: an `async fn` method as a task on the runtime's async workers, a synchronous `fn` method
//!    on the runtime's blocking pool (so it never stalls the async workers).
//!
//! The slot is a [`Slot`] guard that travels with the request and is released when the request
//! completes *or is dropped* (cancelled, aborted, runtime shut down), never by a bookkeeping call.
//! Panics in user code are caught and fail that one request; the replica goes on serving.
//!
//! A replica leaves routing (scaled down, replaced, rolled over by an update) by being *retired*:
//! it takes no new request, finishes those it runs, and past its deployment's
//! `graceful_shutdown_timeout_s` fails the ones left (a stopping instance does the same for every
//! replica at once). For that a slot also records its request in the replica's running set (a
//! slab under a short, per-replica lock).

use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use futures::{FutureExt, Stream, StreamExt};
use slab::Slab;
use tokio::task::AbortHandle;

use crate::args::ArgList;
use crate::blocking::allow_blocking;
use crate::context::{self, ReplicaInfo, RequestScope};
use crate::counted::Counted;
use crate::deployment::Deployment;
use crate::error::{BoxError, ServeError};
use crate::resources::{Assignment, Placed, Placement, Reservation};
use crate::response::{self, Completer, DeploymentResponse, DeploymentResponseGenerator};
use crate::status::{DeploymentStatus, DeploymentUpdate, ReplicaStatus};

pub(crate) struct Replica<D> {
    info: Arc<ReplicaInfo>,
    instance: Arc<D>,
    in_flight: AtomicUsize,
    /// Health checks failed in a row.
    health_failures: AtomicUsize,
    /// The resources it holds, given back when it is dropped (after its last request).
    _reservation: Option<Reservation>,
    /// The rollout generation it was built for (an update that replaces replicas starts a new one).
    generation: u64,
    /// The requests running on it, so a replica stopped past its graceful shutdown timeout can
    /// fail them (keyed by [`Slot::key`]).
    running: Mutex<Slab<Arc<dyn Stop>>>,
    /// Set when it leaves routing; from then on its last request signals `idle`.
    retired: AtomicBool,
    idle: tokio::sync::Notify,
}

/// A request running on a replica, as the replica's shutdown sees it.
pub(crate) trait Stop: Send + Sync {
    /// Fails the request with `err` (if it has not finished) and stops its task; returns whether
    /// it was still going.
    fn stop(&self, err: ServeError) -> bool;
}

impl<T: Send> Stop for response::Cell<T> {
    fn stop(&self, err: ServeError) -> bool {
        response::Cell::stop(self, err)
    }
}

/// A streaming request's stop: sends the error down the stream and aborts the producer.
struct StreamStop<T> {
    tx: tokio::sync::mpsc::Sender<Result<T, ServeError>>,
    /// Set once the stream ended whole: then there is nothing to stop.
    finished: Arc<AtomicBool>,
    /// The producer's task once spawned; `None` inside after a stop that came first.
    task: Mutex<Option<Option<AbortHandle>>>,
}

impl<T: Send> Stop for StreamStop<T> {
    fn stop(&self, err: ServeError) -> bool {
        let task = self
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(None);
        if self.finished.load(Ordering::Acquire) || matches!(task, Some(None)) {
            return false;
        }
        // When the buffer is full the consumer sees the cut-off stream's own shut-down error.
        let _ = self.tx.try_send(Err(err));
        if let Some(Some(task)) = task {
            task.abort();
        }
        true
    }
}

impl<T> StreamStop<T> {
    /// Records the producer's task; aborts it at once if the stream was stopped already.
    fn started(&self, handle: AbortHandle) {
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        match &*task {
            Some(None) => handle.abort(),
            _ => *task = Some(Some(handle)),
        }
    }
}

/// A constructed replica on its way into routing, with its place (identity and resources) when
/// it has one.
pub(crate) struct NewReplica<D> {
    pub(crate) instance: Arc<D>,
    pub(crate) placed: Option<Placed>,
    /// The rollout generation it was built for.
    pub(crate) generation: u64,
}

impl<D> From<Arc<D>> for NewReplica<D> {
    fn from(instance: Arc<D>) -> Self {
        Self {
            instance,
            placed: None,
            generation: 0,
        }
    }
}

/// One request of a given kind (sync, async or streaming method), waiting for its arguments and
/// a slot. It owns the request's result cell or stream channel, so it can tell whether anybody
/// still wants it, and fail it when an argument failed.
trait Call<D>: Send + 'static {
    type Values: Send + 'static;
    /// Nobody wants the result any more (cancelled, or a stream whose consumer left): such a
    /// request is dropped without running or taking a slot.
    fn abandoned(&self) -> bool;
    /// An argument's request failed: the method is never invoked.
    fn fail(self, err: ServeError);
    /// Runs the method on the slot's replica; the slot is released when the request ends.
    fn run(self, values: Self::Values, slot: Slot<D>);
}

/// A request waiting in the queue for a free slot (type-erased).
trait Job<D>: Send {
    fn abandoned(&self) -> bool;
    fn fail(self: Box<Self>, err: ServeError);
    fn run(self: Box<Self>, slot: Slot<D>);
}

impl<D, C: Call<D>> Job<D> for (C, C::Values) {
    fn abandoned(&self) -> bool {
        self.0.abandoned()
    }

    fn fail(self: Box<Self>, err: ServeError) {
        self.0.fail(err)
    }

    fn run(self: Box<Self>, slot: Slot<D>) {
        let (call, values) = *self;
        call.run(values, slot)
    }
}

/// Routes the requests of one deployment to its replicas.
#[doc(hidden)]
pub struct Router<D> {
    app: Arc<str>,
    name: Arc<str>,
    /// The replicas that take new requests. Replaced whole (copy on write) when replicas come and
    /// go, so routing reads it without a lock; a removed replica finishes what it runs, since each
    /// request's slot holds the replica.
    replicas: ArcSwap<Vec<Arc<Replica<D>>>>,
    /// Slots per replica (changed in place by an update).
    max_ongoing: AtomicUsize,
    /// Past this many waiting requests a call fails at once (back pressure); `None`: unlimited.
    max_queued: Option<usize>,
    queue: Mutex<VecDeque<Box<dyn Job<D>>>>,
    /// Calls refused at a full queue since it was last purged of cancelled calls (changed under
    /// the `queue` lock).
    refused_since_purge: AtomicUsize,
    /// `queue.len()`, readable without the lock. Together with `in_flight` it forms a Dekker-style
    /// handshake (both `SeqCst`): a dispatcher publishes "queued" then retries slots; a finishing
    /// request frees its slot then checks "queued". One of the two always sees the other.
    queued: AtomicUsize,
    /// The replica count the deployment is heading for (autoscaling changes it).
    target: AtomicUsize,
    next_replica_id: AtomicUsize,
    /// Serialises changes to `replicas` (routing itself never takes it).
    membership: Mutex<()>,
    /// Wakes the deployment's controller when a request waits at a deployment with no replica.
    wake: Arc<tokio::sync::Notify>,
    /// Set by a graceful shutdown: new outside requests are refused.
    closed: AtomicBool,
    /// Set when a graceful shutdown's time is up: every request is refused.
    stopped: AtomicBool,
    /// Requests failed because a graceful shutdown timeout ran out (a retired replica's, or the
    /// deployment's when the instance stopped).
    stopped_requests: Arc<AtomicUsize>,
    /// How long a replica taken out of routing may take to finish its requests before they are
    /// failed (`graceful_shutdown_timeout_s`).
    graceful_timeout: std::time::Duration,
    /// The current rollout generation: replicas of an older one are replaced (rolling).
    generation: std::sync::atomic::AtomicU64,
    /// Replicas out of routing that still finish requests (until they are idle or their
    /// graceful shutdown timeout ends).
    retiring: Arc<Mutex<Vec<Arc<Replica<D>>>>>,
    /// Why the deployment is unhealthy (its replicas cannot be constructed), if it is.
    unhealthy: Mutex<Option<String>>,
    /// Whether the replica count is the autoscaler's (then it cannot be set by hand).
    autoscaling: bool,
    /// Updates (`reconfigure` with a new `user_config`) in progress.
    updating: AtomicUsize,
    /// Held by an update from its check to its last change, so two updates do not interleave.
    update_lock: tokio::sync::Mutex<()>,
    /// The `user_config` new replicas get (shared with the replica factory).
    user_config: Arc<Mutex<Option<serde_json::Value>>>,
    /// How its replicas get their resources (for the pending count in `status`).
    placement: Option<Arc<Placement>>,
    /// Its configuration as last deployed or updated (updates are checked against it).
    config: Mutex<crate::deployment::DeploymentConfig>,
    rt: tokio::runtime::Handle,
}

/// A reserved place on one replica, released on drop.
pub(crate) struct Slot<D> {
    router: Arc<Router<D>>,
    replica: Arc<Replica<D>>,
    /// The request's entry in the replica's running set, once tracked.
    key: Option<usize>,
}

impl<D> Slot<D> {
    fn new(router: Arc<Router<D>>, replica: Arc<Replica<D>>) -> Self {
        Self {
            router,
            replica,
            key: None,
        }
    }

    fn instance(&self) -> &D {
        &self.replica.instance
    }

    /// Records the request running in this slot, so stopping the replica can fail it.
    fn track(&mut self, request: Arc<dyn Stop>) {
        let key = self
            .replica
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request);
        self.key = Some(key);
    }
}

impl<D> Drop for Slot<D> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let request = self
                .replica
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_remove(key);
            drop(request); // outside the lock
        }
        self.replica.release();
        if self.router.queued.load(Ordering::SeqCst) > 0 {
            self.router.drain();
        }
    }
}

/// A deployment's live state (for `status`) and the instance's controls over it.
pub(crate) trait RouterStatus: Send + Sync {
    fn name(&self) -> &str;
    fn status(&self) -> DeploymentStatus;
    /// Stops admitting new outside requests (calls made on behalf of requests in flight still
    /// run, so those requests can finish); after the deployment's graceful shutdown timeout,
    /// fails whatever still runs or waits.
    fn close(self: Arc<Self>);
    /// Fails at once whatever still runs or waits, as `close` does after the timeout.
    fn stop_now(&self);
    /// How long its replicas may take to finish their requests when they stop.
    fn graceful_timeout(&self) -> std::time::Duration;
    /// Whether a shutdown's timeout failed requests here.
    fn stopped_requests(&self) -> usize;
    /// Requests waiting or running.
    fn in_progress(&self) -> usize;
    /// Applies a change to the running deployment (see `Serve::update_deployment`).
    fn update(
        self: Arc<Self>,
        update: DeploymentUpdate,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>>;
}

impl<D: Deployment> RouterStatus for Router<D> {
    fn name(&self) -> &str {
        &self.name
    }

    fn update(
        self: Arc<Self>,
        update: DeploymentUpdate,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>> {
        Box::pin(async move {
            let refuse = |message: String| {
                Err(ServeError::new(crate::error::ErrorKind::Runtime)
                    .with_message(message)
                    .in_deployment(&self.name))
            };
            let _one_at_a_time = self.update_lock.lock().await;
            if update.num_replicas.is_some() && self.autoscaling {
                return refuse(
                    "the deployment autoscales: change its autoscaling config instead of num_replicas"
                        .into(),
                );
            }
            // The whole new config is checked as a config file's would be, before anything changes.
            let mut config = self
                .config
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(n) = update.num_replicas {
                config.num_replicas = n;
            }
            if let Some(n) = update.max_ongoing_requests {
                config.max_ongoing_requests = n;
            }
            if let Some(resources) = &update.resources {
                config.resources = resources.clone();
            }
            crate::config::check_deployment(&config)?;
            let new_resources = update
                .resources
                .filter(|r| self.placement.as_ref().is_some_and(|p| p.request() != *r));
            if let (Some(resources), Some(placement)) = (&new_resources, &self.placement) {
                placement.check_feasible(&self.name, resources)?;
            }
            if let Some(user_config) = update.user_config {
                // Status `UPDATING` while the replicas take it.
                let _updating = Counted::new(&self.updating);
                let replicas = self.replicas();
                let mut hooks = Vec::with_capacity(replicas.len());
                for replica in replicas.iter() {
                    match D::__reconfigure(replica.instance(), user_config.clone()) {
                        Some(hook) => hooks.push(hook),
                        None => {
                            return refuse(
                                "the deployment has no `reconfigure` method to take a user_config"
                                    .into(),
                            );
                        }
                    }
                }
                *self.user_config.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(user_config.clone());
                config.user_config = Some(user_config);
                for result in futures::future::join_all(hooks).await {
                    if let Err(e) = result {
                        return Err(ServeError::new(crate::error::ErrorKind::User)
                            .with_message("reconfigure failed")
                            .with_source(e)
                            .in_deployment(&self.name));
                    }
                }
            }
            *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
            if let Some(n) = update.max_ongoing_requests {
                self.max_ongoing.store(n, Ordering::SeqCst);
                // More slots: queued requests take them now.
                self.drain();
            }
            if let Some(n) = update.num_replicas {
                self.set_target(n);
            }
            let restart = match (new_resources, &self.placement) {
                (Some(resources), Some(placement)) => {
                    placement.set_request(resources);
                    true
                }
                _ => update.restart,
            };
            if restart {
                // Replicas of the old generation are replaced one by one (see the controller).
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            self.wake.notify_one();
            Ok(())
        })
    }

    fn close(self: Arc<Self>) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Past the graceful shutdown timeout, whatever still runs or waits is failed.
        let timeout = self.graceful_timeout;
        let router = Arc::downgrade(&self);
        self.rt.spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(router) = router.upgrade() {
                router.stop_all(timeout);
            }
        });
    }

    fn stop_now(&self) {
        self.stop_all(self.graceful_timeout);
    }

    fn graceful_timeout(&self) -> std::time::Duration {
        self.graceful_timeout
    }

    fn stopped_requests(&self) -> usize {
        self.stopped_requests.load(Ordering::SeqCst)
    }

    fn in_progress(&self) -> usize {
        self.ongoing()
    }

    fn status(&self) -> DeploymentStatus {
        // Under `membership`, a replica joining routing is counted once (built or running).
        let membership = self.membership.lock().unwrap_or_else(|p| p.into_inner());
        let replicas = self.replicas.load();
        let target = self.target.load(Ordering::Relaxed);
        let building = self.placement.as_ref().map_or(0, |p| p.building());
        drop(membership);
        // Short of the target and not being constructed: waiting for resources.
        let pending = target.saturating_sub(replicas.len() + building);
        let unhealthy = self
            .unhealthy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let generation = self.generation.load(Ordering::SeqCst);
        let updating = self.updating.load(Ordering::SeqCst) > 0
            || replicas.iter().any(|r| r.generation != generation);
        let status = match (&unhealthy, replicas.len().cmp(&target)) {
            (Some(_), _) => "UNHEALTHY",
            (None, _) if updating => "UPDATING",
            (None, std::cmp::Ordering::Less) => "UPSCALING",
            (None, std::cmp::Ordering::Greater) => "DOWNSCALING",
            (None, std::cmp::Ordering::Equal) => "HEALTHY",
        };
        DeploymentStatus {
            name: self.name.to_string(),
            status: status.into(),
            message: unhealthy.or_else(|| {
                let placement = self.placement.as_ref().filter(|_| pending > 0)?;
                Some(placement.pending_message(pending))
            }),
            num_replicas: replicas.len(),
            pending_replicas: pending,
            target_replicas: target,
            max_ongoing_requests: self.max_ongoing.load(Ordering::Relaxed),
            queued_requests: self.queued.load(Ordering::Relaxed),
            replicas: replicas
                .iter()
                .map(|replica| ReplicaStatus {
                    replica_id: replica.info.replica_id,
                    state: if replica.health_failures.load(Ordering::Relaxed) > 0 {
                        "UNHEALTHY"
                    } else {
                        "RUNNING"
                    }
                    .into(),
                    ongoing_requests: replica.in_flight.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

/// Picks two distinct replica indices out of `n >= 2` with `rand(k)` in `0..k`.
fn two_choices(n: usize, mut rand: impl FnMut(usize) -> usize) -> (usize, usize) {
    let first = rand(n);
    let mut second = rand(n - 1);
    if second >= first {
        second += 1;
    }
    (first, second)
}

impl<D> Replica<D> {
    pub(crate) fn id(&self) -> usize {
        self.info.replica_id
    }

    pub(crate) fn instance(&self) -> &Arc<D> {
        &self.instance
    }

    /// Records one health check; returns how many failed in a row.
    pub(crate) fn record_health(&self, healthy: bool) -> usize {
        if healthy {
            self.health_failures.store(0, Ordering::Relaxed);
            0
        } else {
            self.health_failures.fetch_add(1, Ordering::Relaxed) + 1
        }
    }

    /// Takes a slot if one is free and the replica is not retired.
    fn try_reserve(&self, max: usize) -> bool {
        let mut current = self.in_flight.load(Ordering::SeqCst);
        while current < max {
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    // Routing may have read the replica list just before the replica left it.
                    // `retire` sets `retired` then reads `in_flight`; this the other way round:
                    // either it waits for this slot, or this sees `retired` and gives it back.
                    if !self.retired.load(Ordering::SeqCst) {
                        return true;
                    }
                    self.release();
                    return false;
                }
                Err(now) => current = now,
            }
        }
        false
    }

    /// Gives one slot back; the last one of a retired replica says it is idle.
    fn release(&self) {
        let left = self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1;
        if left == 0 && self.retired.load(Ordering::SeqCst) {
            self.idle.notify_one();
        }
    }

    fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The generation it was built for.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Fails every request running on it (its graceful shutdown timeout passed); returns how many.
    fn stop_running(&self, deployment: &Arc<str>, timeout: std::time::Duration) -> usize {
        let running: Vec<_> = {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.iter().map(|(_, r)| r.clone()).collect()
        };
        let mut stopped = 0;
        for request in &running {
            let err = ServeError::shut_down()
                .with_message(format!(
                    "replica {} was stopped: the request did not finish within its graceful \
                     shutdown timeout ({timeout:?})",
                    self.info.replica_id
                ))
                .in_deployment(deployment);
            stopped += usize::from(request.stop(err));
        }
        stopped
    }
}

impl<D: Send + Sync + 'static> Router<D> {
    pub(crate) fn new(
        app: Arc<str>,
        name: Arc<str>,
        instances: Vec<impl Into<NewReplica<D>>>,
        max_ongoing: usize,
        max_queued: Option<usize>,
        rt: tokio::runtime::Handle,
    ) -> Self {
        let replicas: Vec<_> = instances
            .into_iter()
            .enumerate()
            .map(|(id, instance)| Arc::new(Replica::new(&app, &name, id, instance.into())))
            .collect();
        Self {
            config: Mutex::new(crate::deployment::DeploymentConfig::new(&*name)),
            app,
            name,
            target: AtomicUsize::new(replicas.len()),
            next_replica_id: AtomicUsize::new(replicas.len()),
            replicas: ArcSwap::from_pointee(replicas),
            max_ongoing: AtomicUsize::new(max_ongoing.max(1)),
            max_queued,
            queue: Mutex::new(VecDeque::new()),
            refused_since_purge: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            membership: Mutex::new(()),
            wake: Arc::new(tokio::sync::Notify::new()),
            closed: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            stopped_requests: Arc::default(),
            graceful_timeout: std::time::Duration::from_secs(20),
            generation: std::sync::atomic::AtomicU64::new(0),
            retiring: Arc::default(),
            unhealthy: Mutex::new(None),
            autoscaling: false,
            updating: AtomicUsize::new(0),
            update_lock: tokio::sync::Mutex::new(()),
            user_config: Arc::default(),
            placement: None,
            rt,
        }
    }
}

impl<D> Replica<D> {
    /// A placed replica keeps its identity and reservation; an unplaced one is numbered
    /// `replica_id` and holds nothing.
    fn new(app: &Arc<str>, deployment: &Arc<str>, replica_id: usize, new: NewReplica<D>) -> Self {
        let (info, reservation) = match new.placed {
            Some(placed) => {
                let (info, reservation) = placed.into_parts();
                (info, Some(reservation))
            }
            None => {
                let info = ReplicaInfo::new(
                    app.clone(),
                    deployment.clone(),
                    replica_id,
                    Assignment::none(),
                );
                (Arc::new(info), None)
            }
        };
        Replica {
            info,
            instance: new.instance,
            in_flight: AtomicUsize::new(0),
            health_failures: AtomicUsize::new(0),
            _reservation: reservation,
            generation: new.generation,
            running: Mutex::new(Slab::new()),
            retired: AtomicBool::new(false),
            idle: tokio::sync::Notify::new(),
        }
    }
}

impl<D> Router<D> {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// How many replicas take requests now.
    pub(crate) fn num_replicas(&self) -> usize {
        self.replicas.load().len()
    }

    /// The replica count the deployment is heading for.
    pub(crate) fn target(&self) -> usize {
        self.target.load(Ordering::SeqCst)
    }

    pub(crate) fn set_target(&self, n: usize) {
        self.target.store(n, Ordering::SeqCst);
    }

    /// Requests waiting for a replica plus requests running on one (replicas that left routing
    /// and still finish requests included): the load autoscaling sees, and what a graceful
    /// shutdown waits for.
    pub(crate) fn ongoing(&self) -> usize {
        let running: usize = self.replicas.load().iter().map(|r| r.load()).sum();
        let retiring: usize = self
            .retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| r.load())
            .sum();
        running + retiring + self.queued.load(Ordering::SeqCst)
    }

    /// What the controller waits on besides its ticker.
    pub(crate) fn wake_signal(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Settings the router needs for updates: whether it autoscales, and the `user_config` cell
    /// its replica factory reads.
    pub(crate) fn with_settings(
        mut self,
        autoscaling: bool,
        user_config: Arc<Mutex<Option<serde_json::Value>>>,
    ) -> Self {
        self.autoscaling = autoscaling;
        self.user_config = user_config;
        self
    }

    /// How its replicas get their resources.
    pub(crate) fn with_placement(mut self, placement: Arc<Placement>) -> Self {
        self.placement = Some(placement);
        self
    }

    /// The configuration it was deployed with (for its graceful shutdown timeout, and to check
    /// updates against).
    pub(crate) fn with_config(mut self, config: crate::deployment::DeploymentConfig) -> Self {
        self.graceful_timeout =
            std::time::Duration::from_secs_f64(config.graceful_shutdown_timeout_s.clamp(0.0, 1e9));
        self.config = Mutex::new(config);
        self
    }

    /// The current rollout generation: replicas built for an older one are replaced.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Replicas out of routing that still finish their requests.
    pub(crate) fn draining(&self) -> usize {
        self.retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether a new replica waits for resources that are not free: replicas wait for them,
    /// none holds its resources while being constructed, and what a new replica needs is not
    /// free now (given back but not yet taken counts as free).
    pub(crate) fn starved(&self) -> bool {
        self.placement
            .as_ref()
            .is_some_and(|p| p.waiting() > 0 && p.building() == 0 && !p.fits_now())
    }

    /// The routable replicas now.
    pub(crate) fn replicas(&self) -> Arc<Vec<Arc<Replica<D>>>> {
        self.replicas.load_full()
    }

    /// Takes one replica out of routing (a failed one); it finishes what it runs (see
    /// [`retire`](Self::retire)).
    pub(crate) fn remove_replica_id(&self, replica_id: usize) -> bool
    where
        D: Send + Sync + 'static,
    {
        self.remove_where(|replicas| {
            replicas
                .iter()
                .position(|r| r.info.replica_id == replica_id)
        })
    }

    /// Takes the replica `pick` chooses out of routing and retires it; returns whether there
    /// was one.
    fn remove_where(&self, pick: impl FnOnce(&[Arc<Replica<D>>]) -> Option<usize>) -> bool
    where
        D: Send + Sync + 'static,
    {
        let removed = {
            let _membership = self.membership.lock().unwrap_or_else(|p| p.into_inner());
            let mut replicas = Vec::clone(&self.replicas.load());
            let Some(at) = pick(&replicas) else {
                return false;
            };
            let removed = replicas.remove(at);
            self.replicas.store(Arc::new(replicas));
            removed
        };
        self.retire(removed);
        true
    }

    /// Lets a replica taken out of routing finish its requests for up to the graceful shutdown
    /// timeout; past it, the requests still running on it fail with [`ErrorKind::ShutDown`]
    /// (an async method is dropped at its next `.await`; a synchronous one cannot be interrupted
    /// and runs to its end, its result discarded). The replica (and the resources it holds) is
    /// dropped after its last request.
    ///
    /// [`ErrorKind::ShutDown`]: crate::ErrorKind::ShutDown
    fn retire(&self, replica: Arc<Replica<D>>)
    where
        D: Send + Sync + 'static,
    {
        replica.retired.store(true, Ordering::SeqCst);
        if replica.in_flight.load(Ordering::SeqCst) == 0 {
            return;
        }
        /// Keeps the replica in the router's retiring list until dropped.
        struct Draining<D>(Arc<Mutex<Vec<Arc<Replica<D>>>>>, Arc<Replica<D>>);
        impl<D> Drop for Draining<D> {
            fn drop(&mut self) {
                let mut retiring = self.0.lock().unwrap_or_else(|p| p.into_inner());
                retiring.retain(|r| !Arc::ptr_eq(r, &self.1));
            }
        }
        self.retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(replica.clone());
        let draining = Draining(self.retiring.clone(), replica.clone());
        let (timeout, name) = (self.graceful_timeout, self.name.clone());
        let stopped_requests = self.stopped_requests.clone();
        self.rt.spawn(async move {
            let _draining = draining;
            let idle = async {
                // `retired` was set before this check, and a finishing request checks `retired`
                // after it frees its slot: one of the two sees the other (a missed wake-up is
                // stored by `notify_one`).
                while replica.in_flight.load(Ordering::SeqCst) > 0 {
                    replica.idle.notified().await;
                }
            };
            if tokio::time::timeout(timeout, idle).await.is_err() {
                let stopped = replica.stop_running(&name, timeout);
                stopped_requests.fetch_add(stopped, Ordering::SeqCst);
                tracing::warn!(
                    deployment = %name,
                    replica = replica.id(),
                    "replica stopped: {stopped} request(s) still running after the graceful \
                     shutdown timeout ({timeout:?}) were failed"
                );
            }
        });
    }

    /// Past a graceful shutdown's timeout: refuses every call, fails the requests still
    /// waiting for a replica and those still running on one.
    fn stop_all(&self, timeout: std::time::Duration) {
        self.stopped.store(true, Ordering::SeqCst);
        let queued: Vec<_> = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            self.queued.fetch_sub(queue.len(), Ordering::SeqCst);
            queue.drain(..).collect()
        };
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
        let mut stopped = 0;
        let retiring = self
            .retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for replica in self.replicas.load().iter().chain(&retiring) {
            stopped += replica.stop_running(&self.name, timeout);
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

    /// Marks the deployment unhealthy (`Some(reason)`) or healthy again (`None`).
    pub(crate) fn set_unhealthy(&self, reason: Option<String>) {
        *self.unhealthy.lock().unwrap_or_else(|p| p.into_inner()) = reason;
    }

    /// Adds a constructed replica; queued requests start on it at once.
    pub(crate) fn add_replica(self: &Arc<Self>, instance: impl Into<NewReplica<D>>)
    where
        D: Send + Sync + 'static,
    {
        {
            let _membership = self.membership.lock().unwrap_or_else(|p| p.into_inner());
            let id = self.next_replica_id.fetch_add(1, Ordering::SeqCst);
            let mut replicas = Vec::clone(&self.replicas.load());
            let replica = Replica::new(&self.app, &self.name, id, instance.into());
            replicas.push(Arc::new(replica));
            self.replicas.store(Arc::new(replicas));
        }
        self.drain();
    }

    /// Takes a replica out of routing: one of an older generation if any (a rolling update),
    /// else the least loaded. It finishes the requests it runs (see [`retire`](Self::retire))
    /// and is dropped after the last one. Returns whether there was one.
    pub(crate) fn remove_replica(&self) -> bool
    where
        D: Send + Sync + 'static,
    {
        let generation = self.generation();
        self.remove_where(|replicas| {
            (0..replicas.len()).min_by_key(|&i| {
                let r = &replicas[i];
                (r.generation == generation, r.load())
            })
        })
    }

    /// Power of two choices, then any replica with room.
    fn reserve(&self) -> Option<Arc<Replica<D>>> {
        let replicas = self.replicas.load();
        let n = replicas.len();
        let max = self.max_ongoing.load(Ordering::Relaxed);
        match n {
            0 => return None,
            1 => return replicas[0].try_reserve(max).then(|| replicas[0].clone()),
            _ => {}
        }
        let (a, b) = two_choices(n, |k| fastrand::usize(..k));
        let (first, second) = if replicas[b].load() < replicas[a].load() {
            (b, a)
        } else {
            (a, b)
        };
        [first, second]
            .into_iter()
            .chain(
                (0..n)
                    .map(|k| (a + k) % n)
                    .filter(|&i| i != first && i != second),
            )
            .find(|&i| replicas[i].try_reserve(max))
            .map(|i| replicas[i].clone())
    }

    /// Runs `call` with a slot now, or queues it (FIFO) until one frees up; fails it at once when
    /// the queue is full.
    fn dispatch<C: Call<D>>(self: &Arc<Self>, call: C, values: C::Values) {
        if self.queued.load(Ordering::SeqCst) == 0
            && let Some(replica) = self.reserve()
        {
            call.run(values, Slot::new(self.clone(), replica));
            return;
        }
        {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(max) = self.max_queued
                && queue.len() >= max
            {
                // Requests cancelled while they waited no longer count against the cap. Looking
                // for them costs a pass over the queue, so under a flood of refusals it is done
                // once per `len / 8` refusals (at every refusal for a queue of up to 15).
                let refused = self.refused_since_purge.fetch_add(1, Ordering::Relaxed) + 1;
                if refused >= (queue.len() / 8).max(1) {
                    self.refused_since_purge.store(0, Ordering::Relaxed);
                    let before = queue.len();
                    queue.retain(|job| !job.abandoned());
                    self.queued
                        .fetch_sub(before - queue.len(), Ordering::SeqCst);
                }
                if queue.len() >= max {
                    drop(queue);
                    call.fail(ServeError::back_pressure(max).in_deployment(&self.name));
                    return;
                }
            }
            queue.push_back(Box::new((call, values)));
            self.queued.fetch_add(1, Ordering::SeqCst);
        }
        if self.replicas.load().is_empty() {
            // Scaled to zero: wake the controller rather than wait for its next measurement.
            self.wake.notify_one();
        }
        self.drain();
    }

    /// Hands free slots to queued requests, oldest first.
    fn drain(self: &Arc<Self>) {
        loop {
            let (job, replica) = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                let Some(front) = queue.front() else { return };
                if front.abandoned() {
                    queue.pop_front();
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let Some(replica) = self.reserve() else {
                    return;
                };
                let job = queue.pop_front().expect("checked non-empty under the lock");
                self.queued.fetch_sub(1, Ordering::SeqCst);
                (job, replica)
            };
            // Run outside the lock: the job may drop its slot at once, which drains again.
            job.run(Slot::new(self.clone(), replica));
        }
    }
}

impl<D: Send + Sync + 'static> Router<D> {
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
        if (scope.is_none() && self.closed.load(Ordering::Relaxed))
            || self.stopped.load(Ordering::Relaxed)
        {
            call.fail(
                ServeError::shut_down()
                    .with_message("the deployment is shutting down and takes no new requests")
                    .at(&self.name, method),
            );
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
    ) -> DeploymentResponse<T>
    where
        A: ArgList,
        T: Send + 'static,
        I: Invoke<D, A::Values, T>,
    {
        let scope = context::current();
        let request_id = context::request_id_for_new_call(scope.as_ref());
        let (completer, consumer) = response::pending::<T>(request_id);
        if let Some(parent) = scope.as_ref().and_then(|s| s.request.as_ref()) {
            // Started on behalf of another request: cancelled with it.
            parent.adopt(completer.cell().clone());
        }
        let call = UnaryCall {
            completer,
            method,
            invoke,
            _values: PhantomData,
        };
        self.submit(method, call, args, scope.as_ref());
        DeploymentResponse::from_consumer(consumer)
    }

    /// Calls a synchronous method: it runs on the blocking pool.
    pub fn call_sync<A, T, F>(
        self: &Arc<Self>,
        method: &'static str,
        args: A,
        f: F,
    ) -> DeploymentResponse<T>
    where
        A: ArgList,
        T: Send + 'static,
        F: FnOnce(&D, A::Values) -> Result<T, BoxError> + Send + 'static,
    {
        self.call_unary(method, args, SyncFn(f))
    }

    /// Calls an `async fn` method: it runs as a task on the async workers.
    pub fn call_async<A, T, F, Fut>(
        self: &Arc<Self>,
        method: &'static str,
        args: A,
        f: F,
    ) -> DeploymentResponse<T>
    where
        A: ArgList,
        T: Send + 'static,
        F: FnOnce(Arc<D>, A::Values) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
    {
        self.call_unary(method, args, AsyncFn(f))
    }

    /// Calls a streaming method: `f` drives the method's stream into the sink; items reach the
    /// caller's generator as they are produced.
    pub fn call_stream<A, T, F, Fut>(
        self: &Arc<Self>,
        method: &'static str,
        args: A,
        f: F,
    ) -> DeploymentResponseGenerator<T>
    where
        A: ArgList,
        T: Send + 'static,
        F: FnOnce(Arc<D>, A::Values, StreamSink<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let scope = context::current();
        let request_id = context::request_id_for_new_call(scope.as_ref());
        let (sender, generator) = response::generator::<T>();
        let call = StreamCall {
            request_id,
            sender,
            method,
            f,
            _values: PhantomData,
        };
        self.submit(method, call, args, scope.as_ref());
        generator
    }
}

/// Turns a method's outcome (value, user error, or panic) into the request's result.
fn outcome<T>(
    deployment: &Arc<str>,
    method: &'static str,
    outcome: Result<Result<T, BoxError>, Box<dyn std::any::Any + Send>>,
) -> Result<T, ServeError> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ServeError::user(e).at(deployment, method)),
        Err(panic) => Err(ServeError::panic(panic).at(deployment, method)),
    }
}

/// How a unary method runs on its replica: [`SyncFn`] on the blocking pool, [`AsyncFn`] as a task.
trait Invoke<D, V, T>: Send + 'static {
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

struct SyncFn<F>(F);

impl<D, V, T, F> Invoke<D, V, T> for SyncFn<F>
where
    D: Send + Sync + 'static,
    V: Send + 'static,
    T: Send + 'static,
    F: FnOnce(&D, V) -> Result<T, BoxError> + Send + 'static,
{
    fn invoke(
        self,
        values: V,
        slot: Slot<D>,
        completer: Completer<T>,
        method: &'static str,
    ) -> AbortHandle {
        let rt = slot.router.rt.clone();
        let scope = request_scope(&completer, &slot);
        let task = rt.spawn_blocking(move || {
            let result = allow_blocking(|| {
                context::in_sync_scope(scope, || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| (self.0)(slot.instance(), values)))
                })
            });
            let result = outcome(&slot.router.name, method, result);
            drop(slot); // free the slot before the caller sees the result
            completer.complete(result);
        });
        // Aborting only stops the call if it has not started: blocking code cannot be interrupted.
        task.abort_handle()
    }
}

struct AsyncFn<F>(F);

impl<D, V, T, F, Fut> Invoke<D, V, T> for AsyncFn<F>
where
    D: Send + Sync + 'static,
    V: Send + 'static,
    T: Send + 'static,
    F: FnOnce(Arc<D>, V) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, BoxError>> + Send + 'static,
{
    fn invoke(
        self,
        values: V,
        slot: Slot<D>,
        completer: Completer<T>,
        method: &'static str,
    ) -> AbortHandle {
        let rt = slot.router.rt.clone();
        let scope = request_scope(&completer, &slot);
        let task = rt.spawn(async move {
            let instance = slot.replica.instance.clone();
            let call = AssertUnwindSafe((self.0)(instance, values)).catch_unwind();
            let result = context::in_scope(scope, call).await;
            let result = outcome(&slot.router.name, method, result);
            drop(slot);
            completer.complete(result);
        });
        task.abort_handle()
    }
}

/// The scope a unary request's method runs in.
fn request_scope<T: Send + 'static, D>(completer: &Completer<T>, slot: &Slot<D>) -> RequestScope {
    let cell = completer.cell();
    RequestScope {
        request_id: cell.request_id(),
        request: Some(cell.clone()),
        replica: slot.replica.info.clone(),
    }
}

struct UnaryCall<T, I, V> {
    completer: Completer<T>,
    method: &'static str,
    invoke: I,
    _values: PhantomData<fn(V)>,
}

impl<D, T, I, V> Call<D> for UnaryCall<T, I, V>
where
    T: Send + 'static,
    V: Send + 'static,
    I: Invoke<D, V, T>,
{
    type Values = V;

    fn abandoned(&self) -> bool {
        self.completer.cell().is_done()
    }

    fn fail(self, err: ServeError) {
        self.completer.complete(Err(err));
    }

    fn run(self, values: V, mut slot: Slot<D>) {
        let cell = self.completer.cell().clone();
        slot.track(cell.clone());
        let abort = self
            .invoke
            .invoke(values, slot, self.completer, self.method);
        cell.set_abort(abort);
    }
}

struct StreamCall<T, F, V> {
    request_id: u64,
    sender: response::GeneratorSender<T>,
    method: &'static str,
    f: F,
    _values: PhantomData<fn(V)>,
}

impl<D, T, F, V, Fut> Call<D> for StreamCall<T, F, V>
where
    D: Send + Sync + 'static,
    T: Send + 'static,
    V: Send + 'static,
    F: FnOnce(Arc<D>, V, StreamSink<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Values = V;

    fn abandoned(&self) -> bool {
        self.sender.tx.is_closed()
    }

    fn fail(self, err: ServeError) {
        // The channel is empty: nothing was sent before the arguments resolved.
        let _ = self.sender.tx.try_send(Err(err));
    }

    fn run(self, values: V, mut slot: Slot<D>) {
        let Self {
            sender,
            method,
            f,
            request_id,
            ..
        } = self;
        let errors = sender.tx.clone();
        let stop = Arc::new(StreamStop {
            tx: errors.clone(),
            finished: sender.finished_flag(),
            task: Mutex::new(None),
        });
        slot.track(stop.clone());
        let scope = RequestScope {
            request: None,
            request_id,
            replica: slot.replica.info.clone(),
        };
        let rt = slot.router.rt.clone();
        let task = rt.spawn(async move {
            let sink = StreamSink {
                sender,
                deployment: slot.router.name.clone(),
                method,
            };
            let instance = slot.replica.instance.clone();
            let produce = AssertUnwindSafe(f(instance, values, sink)).catch_unwind();
            let result = context::in_scope(scope, produce).await;
            if let Err(panic) = result {
                let err = ServeError::panic(panic).at(&slot.router.name, method);
                drop(slot);
                let _ = errors.send(Err(err)).await;
            }
        });
        stop.started(task.abort_handle());
    }
}

/// Where a streaming method's items go: the generated code hands the method's stream to
/// [`drive`](Self::drive) (or [`drive_fallible`](Self::drive_fallible) for `Result` items).
#[doc(hidden)]
pub struct StreamSink<T> {
    sender: response::GeneratorSender<T>,
    deployment: Arc<str>,
    method: &'static str,
}

impl<T: Send + 'static> StreamSink<T> {
    /// Forwards an infallible stream's items until it ends or the consumer goes away.
    pub async fn drive<S>(self, stream: S)
    where
        S: Stream<Item = T>,
    {
        self.drive_fallible(stream.map(Ok::<T, std::convert::Infallible>))
            .await
    }

    /// Forwards items until the stream ends, yields an error (forwarded, then the stream ends), or
    /// the consumer goes away (the stream is dropped at once, even while it waits for its next item).
    pub async fn drive_fallible<S, E>(self, stream: S)
    where
        S: Stream<Item = Result<T, E>>,
        E: Into<BoxError>,
    {
        let mut stream = std::pin::pin!(stream);
        let tx = &self.sender.tx;
        loop {
            let item = tokio::select! {
                biased;
                _ = tx.closed() => return,
                item = stream.next() => item,
            };
            match item {
                None => break,
                Some(Ok(value)) => {
                    if tx.send(Ok(value)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let err = ServeError::user(e.into()).at(&self.deployment, self.method);
                    let _ = tx.send(Err(err)).await;
                    break;
                }
            }
        }
        self.sender.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request for the router's own tests: runs a closure with the slot.
    struct TestCall<F, A> {
        run: F,
        abandoned: A,
    }

    impl<F, A> Call<()> for TestCall<F, A>
    where
        F: FnOnce(Slot<()>) + Send + 'static,
        A: Fn() -> bool + Send + 'static,
    {
        type Values = ();
        fn abandoned(&self) -> bool {
            (self.abandoned)()
        }
        fn fail(self, _err: ServeError) {}
        fn run(self, _values: (), slot: Slot<()>) {
            (self.run)(slot)
        }
    }

    fn submit(
        r: &Arc<Router<()>>,
        run: impl FnOnce(Slot<()>) + Send + 'static,
        abandoned: impl Fn() -> bool + Send + 'static,
    ) {
        r.dispatch(TestCall { run, abandoned }, ());
    }

    #[test]
    fn two_choices_are_distinct_and_cover_all_pairs() {
        let mut seen = std::collections::HashSet::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let (a, b) = two_choices(4, |k| rng.usize(..k));
            assert_ne!(a, b);
            assert!(a < 4 && b < 4);
            seen.insert((a, b));
        }
        assert_eq!(
            seen.len(),
            12,
            "every ordered pair of distinct replicas is reachable"
        );
    }

    fn loads(r: &Router<()>) -> Vec<usize> {
        r.replicas
            .load()
            .iter()
            .map(|replica| replica.load())
            .collect()
    }

    #[test]
    fn removed_replicas_take_no_new_requests_and_added_ones_drain_the_queue() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = router(1, 1, &rt);
        let held = Arc::new(Mutex::new(Vec::new()));
        {
            let held = held.clone();
            submit(&r, move |slot| held.lock().unwrap().push(slot), || false);
        }
        let ran = Arc::new(AtomicUsize::new(0));
        {
            let ran = ran.clone();
            submit(
                &r,
                move |_slot| {
                    ran.fetch_add(1, Ordering::SeqCst);
                },
                || false,
            );
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0, "queued behind the held slot");
        r.add_replica(Arc::new(()));
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "a new replica drains the queue at once"
        );
        assert!(r.remove_replica());
        assert_eq!(r.num_replicas(), 1);
        assert!(r.remove_replica());
        assert_eq!(r.num_replicas(), 0);
        assert!(r.reserve().is_none(), "no replica takes new requests");
        held.lock().unwrap().clear(); // the removed replica's request still finishes cleanly
        assert_eq!(r.ongoing(), 0);
    }

    fn router(replicas: usize, max: usize, rt: &tokio::runtime::Runtime) -> Arc<Router<()>> {
        Arc::new(Router::new(
            Arc::from("App"),
            Arc::from("T"),
            (0..replicas).map(|_| Arc::new(())).collect(),
            max,
            None,
            rt.handle().clone(),
        ))
    }

    #[test]
    fn reserve_prefers_the_less_loaded_replica_and_respects_the_limit() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = router(2, 2, &rt);
        let picks: Vec<usize> = (0..4)
            .map(|_| r.reserve().unwrap().info.replica_id)
            .collect();
        assert_eq!(loads(&r), [2, 2]);
        assert!(r.reserve().is_none(), "all slots taken: {picks:?}");
    }

    #[test]
    fn queued_jobs_run_in_fifo_order_when_slots_free() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = router(1, 1, &rt);
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(None));
        {
            let held = held.clone();
            submit(&r, move |slot| *held.lock().unwrap() = Some(slot), || false);
        }
        for i in 0..3 {
            let order = order.clone();
            submit(&r, move |_slot| order.lock().unwrap().push(i), || false);
        }
        assert!(order.lock().unwrap().is_empty(), "the only slot is held");
        assert_eq!(r.queued.load(Ordering::SeqCst), 3);
        held.lock().unwrap().take(); // release: the queue drains in order
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(loads(&r), [0]);
    }

    #[test]
    fn abandoned_jobs_are_skipped_without_a_slot() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = router(1, 1, &rt);
        let held = Arc::new(Mutex::new(None));
        {
            let held = held.clone();
            submit(&r, move |slot| *held.lock().unwrap() = Some(slot), || false);
        }
        let ran = Arc::new(AtomicUsize::new(0));
        {
            let ran = ran.clone();
            submit(
                &r,
                move |_slot| {
                    ran.fetch_add(1, Ordering::SeqCst);
                },
                || true,
            );
        }
        held.lock().unwrap().take();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(r.queued.load(Ordering::SeqCst), 0);
    }
}
