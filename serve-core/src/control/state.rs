//! [`DeploymentState`]: one deployment as the control plane runs it — its request router, the
//! replica count it heads for, its rollout generation, its placement, and what `status` reports.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::placement::Placement;
use super::status::{DeploymentStatus, ReplicaStatus};
use crate::config::DeploymentConfig;
use crate::dataplane::replica::{Endpoint, Replica};
use crate::dataplane::router::RequestRouter;
use crate::error::ServeError;
use crate::metrics::registry::Refresh;
use crate::metrics::series::ControlSeries;
use crate::request::context::ReplicaInfo;
use crate::request::multiplex::{LOADED_MODELS, LoadedModels};
use crate::util::sync::Lock;

/// Builds one more replica of a deployment (for autoscaling, recovery and rollouts): places it
/// (pending until its resources are free, which it holds from then on), constructs it and hands
/// it its `user_config`.
pub(crate) type ReplicaFactory<D> = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<NewReplica<D>, ServeError>> + Send>>
        + Send
        + Sync,
>;

/// The most constructor failures a deployment tolerates before it gives up for a while, with
/// `target` replicas to run: as in Ray Serve, `min(3 * target, 20)` (and 3 for a target of 0).
/// A deploy (and a rollout, for `run` under an application's name) fails once this many
/// constructions failed; a running deployment is then reported `UNHEALTHY` and tries again once
/// per health-check period.
pub(crate) fn construction_bound(target: usize) -> usize {
    target.max(1).saturating_mul(3).min(20)
}

/// Constructor failures, as the controller and a waiting `run` see them.
#[derive(Debug, Default)]
pub(crate) struct Constructions {
    /// Failed in a row (a success resets it).
    pub(crate) in_a_row: usize,
    /// Failed since the rollout began (`run` of a new version: see `control/redeploy.rs`).
    pub(crate) since_rollout: usize,
    /// The last failure.
    pub(crate) last_error: Option<ServeError>,
}

/// A constructed replica on its way into routing (holding its place: identity and resources).
pub(crate) struct NewReplica<D> {
    pub(crate) replica: Arc<dyn Replica<D>>,
    /// In cluster mode, keeps a replica of this node listed for (and callable from) the others.
    pub(crate) published: Option<Box<dyn Any + Send + Sync>>,
}

/// What the control plane keeps of each routable replica.
#[derive(Debug, Clone, Copy, Default)]
struct ReplicaRecord {
    /// The rollout generation it was built for (an update that replaces replicas starts a new one).
    generation: u64,
    /// Health checks failed in a row.
    health_failures: usize,
}

/// One running deployment.
pub(crate) struct DeploymentState<D> {
    pub(crate) router: Arc<RequestRouter<D>>,
    /// The replica count the deployment is heading for (autoscaling and updates change it).
    target: AtomicUsize,
    /// The current rollout generation: replicas of an older one are replaced (rolling).
    generation: AtomicU64,
    /// The highest generation ever started (a rolled-back rollout's number is not used again).
    last_generation: AtomicU64,
    /// What builds its replicas (a new version of the application brings a new one).
    factory: Mutex<ReplicaFactory<D>>,
    /// The controller that runs it: an older one (of an earlier version) ends at its next tick.
    controller_epoch: AtomicU64,
    /// Constructor failures.
    constructions: Mutex<Constructions>,
    /// Counts changes of its replicas and constructions, for whoever waits for a rollout.
    events: tokio::sync::watch::Sender<u64>,
    /// By replica id, for the replicas in routing.
    records: Mutex<HashMap<usize, ReplicaRecord>>,
    /// By replica id: what keeps this node's replicas callable from other nodes (cluster mode);
    /// dropped when the replica leaves routing.
    published: Mutex<HashMap<usize, Box<dyn Any + Send + Sync>>>,
    /// Why the deployment is unhealthy (its replicas cannot be constructed), if it is.
    unhealthy: Mutex<Option<String>>,
    /// Updates (`reconfigure` with a new `user_config`) in progress.
    pub(crate) updating: AtomicUsize,
    /// Held by an update from its check to its last change, so two updates do not interleave.
    pub(crate) update_lock: tokio::sync::Mutex<()>,
    /// The `user_config` new replicas get (shared with the replica factory).
    pub(crate) user_config: Arc<Mutex<Option<serde_json::Value>>>,
    /// How its replicas get their resources.
    pub(crate) placement: Arc<Placement>,
    /// Its configuration as last deployed or updated (updates are checked against it).
    pub(crate) config: Mutex<DeploymentConfig>,
    /// Cluster mode: the node to take the next removed replica from (a rebalance).
    rebalance_from: Mutex<Option<Arc<str>>>,
    /// What its controller measures: its replicas, their health, the autoscaler's decisions.
    pub(crate) metrics: ControlSeries,
}

impl<D: Send + Sync + 'static> DeploymentState<D> {
    /// The state of a deployment deployed with `config`, routing through `router` (whose
    /// replicas are the initial ones, of generation 0).
    pub(crate) fn new(
        router: Arc<RequestRouter<D>>,
        config: DeploymentConfig,
        user_config: Arc<Mutex<Option<serde_json::Value>>>,
        placement: Arc<Placement>,
        target: usize,
        metrics: ControlSeries,
        factory: ReplicaFactory<D>,
    ) -> Self {
        let records = router
            .replicas()
            .iter()
            .map(|r| (r.info().replica_id, ReplicaRecord::default()))
            .collect();
        for replica in router.replicas().iter() {
            metrics.replica_added(replica.info().replica_id);
        }
        Self {
            router,
            target: AtomicUsize::new(target),
            generation: AtomicU64::new(0),
            last_generation: AtomicU64::new(0),
            factory: Mutex::new(factory),
            controller_epoch: AtomicU64::new(0),
            constructions: Mutex::default(),
            events: tokio::sync::watch::Sender::new(0),
            records: Mutex::new(records),
            published: Mutex::default(),
            unhealthy: Mutex::new(None),
            updating: AtomicUsize::new(0),
            update_lock: tokio::sync::Mutex::new(()),
            user_config,
            placement,
            config: Mutex::new(config),
            rebalance_from: Mutex::new(None),
            metrics,
        }
    }

    /// Keeps what publishes replica `id` (an initial one) to other nodes until it leaves
    /// routing.
    pub(crate) fn keep_published(&self, id: usize, published: Box<dyn Any + Send + Sync>) {
        self.published.locked().insert(id, published);
    }

    /// Adds a constructed replica of `generation` to routing.
    pub(crate) fn add_replica(&self, new: NewReplica<D>, generation: u64) {
        let NewReplica { replica, published } = new;
        let id = replica.info().replica_id;
        self.router.add_replica(|| {
            let record = ReplicaRecord {
                generation,
                health_failures: 0,
            };
            self.records.locked().insert(id, record);
            self.metrics.replica_added(id);
            replica
        });
        if let Some(published) = published {
            self.published.locked().insert(id, published);
        }
        self.changed();
    }

    /// What builds its replicas now.
    pub(crate) fn factory(&self) -> ReplicaFactory<D> {
        self.factory.locked().clone()
    }

    /// Builds its replicas with `factory` from now on; returns the one it replaces.
    pub(crate) fn set_factory(&self, factory: ReplicaFactory<D>) -> ReplicaFactory<D> {
        std::mem::replace(&mut *self.factory.locked(), factory)
    }

    /// Takes a replica out of routing: one of an older generation if any (a rolling update),
    /// else the least loaded. It finishes the requests it runs and is dropped after the last
    /// one. Returns whether there was one.
    pub(crate) fn remove_replica(&self) -> bool {
        let generation = self.generation();
        // A rebalance (cluster mode) takes the extra replica from the node that has too many.
        let from = self.rebalance_from.locked().take();
        let on_from = |r: &Arc<dyn Replica<D>>| match (&from, r.endpoint()) {
            (Some(node), Endpoint::Remote(endpoint)) => endpoint.node() == &**node,
            (Some(node), Endpoint::Local(_)) => self.placement.is_local_node(node),
            (None, _) => false,
        };
        self.remove_where(|replicas, records| {
            (0..replicas.len()).min_by_key(|&i| {
                let r = &replicas[i];
                let current = records
                    .get(&r.info().replica_id)
                    .is_some_and(|rec| rec.generation == generation);
                (current, !on_from(r), r.slots().load())
            })
        })
    }

    /// Cluster mode: when one node runs at least two replicas more than another where one
    /// fits, the controller starts one more replica (placement puts it on the emptier node) and
    /// marks the fuller node here, so the replica that then goes is one of its (a worker that
    /// joins, or comes back, gets replicas again).
    pub(crate) fn rebalance_from(&self, node: Arc<str>) {
        *self.rebalance_from.locked() = Some(node);
    }

    /// Takes the replica `replica_id` out of routing (a failed one); it finishes what it runs.
    pub(crate) fn remove_replica_id(&self, replica_id: usize) -> bool {
        self.remove_where(|replicas, _| {
            replicas
                .iter()
                .position(|r| r.info().replica_id == replica_id)
        })
    }

    /// Takes a replica running on node `node` (cluster mode) out of routing; returns whether
    /// there was one.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn remove_on_node(&self, node: &str) -> bool {
        self.remove_where(|replicas, _| {
            replicas.iter().position(|r| match r.endpoint() {
                Endpoint::Remote(endpoint) => endpoint.node() == node,
                Endpoint::Local(_) => false,
            })
        })
    }

    fn remove_where(
        &self,
        pick: impl FnOnce(&[Arc<dyn Replica<D>>], &HashMap<usize, ReplicaRecord>) -> Option<usize>,
    ) -> bool {
        // Lock order: the router's membership, then the records.
        let removed = self.router.remove_where(|replicas| {
            let records = self.records.locked();
            pick(replicas, &records)
        });
        match removed {
            Some(replica) => {
                let id = replica.info().replica_id;
                self.records.locked().remove(&id);
                self.metrics.replica_removed(id);
                let published = self.published.locked().remove(&id);
                drop(published);
                self.changed();
                true
            }
            None => false,
        }
    }

    /// Records one health check of `replica_id`; returns how many failed in a row.
    pub(crate) fn record_health(&self, replica_id: usize, healthy: bool) -> usize {
        let mut records = self.records.locked();
        let Some(record) = records.get_mut(&replica_id) else {
            return 0;
        };
        self.metrics.replica_health(replica_id, healthy);
        record.health_failures = if healthy {
            0
        } else {
            record.health_failures + 1
        };
        record.health_failures
    }
}

impl<D> DeploymentState<D> {
    /// The deployment's name.
    pub(crate) fn name(&self) -> &Arc<str> {
        self.router.name()
    }

    /// Whether the replica count is the autoscaler's (then it cannot be set by hand).
    pub(crate) fn autoscales(&self) -> bool {
        self.config.locked().autoscaling.is_some()
    }

    /// The replica count the deployment is heading for.
    pub(crate) fn target(&self) -> usize {
        self.target.load(Ordering::SeqCst)
    }

    pub(crate) fn set_target(&self, n: usize) {
        self.target.store(n, Ordering::SeqCst);
    }

    /// The current rollout generation: replicas built for an older one are replaced.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Starts a new rollout generation: every replica is replaced, rolling. Returns the
    /// generation it replaces.
    pub(crate) fn next_generation(&self) -> u64 {
        let next = self.last_generation.fetch_add(1, Ordering::SeqCst) + 1;
        let before = self.generation.swap(next, Ordering::SeqCst);
        self.changed();
        before
    }

    /// Makes `generation` (an earlier one) current again: a rollout rolled back. Its replicas
    /// serve on; those of the abandoned generation are replaced, rolling.
    pub(crate) fn restore_generation(&self, generation: u64) {
        self.generation.store(generation, Ordering::SeqCst);
        self.changed();
    }

    /// A new epoch for the controller about to start: the one running ends at its next tick.
    pub(crate) fn next_controller_epoch(&self) -> u64 {
        let epoch = self.controller_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        // Let the one running see it now rather than at its next tick.
        self.router.wake_signal().notify_waiters();
        epoch
    }

    /// The epoch of the controller that runs the deployment now.
    pub(crate) fn controller_epoch(&self) -> u64 {
        self.controller_epoch.load(Ordering::SeqCst)
    }

    /// Constructor failures so far (`f` reads them under their lock).
    pub(crate) fn constructions<R>(&self, f: impl FnOnce(&mut Constructions) -> R) -> R {
        f(&mut self.constructions.locked())
    }

    /// Records a construction that succeeded.
    pub(crate) fn construction_succeeded(&self) {
        self.constructions.locked().in_a_row = 0;
        self.set_unhealthy(None);
        self.changed();
    }

    /// Records a construction that failed with `error`; returns how many failed in a row.
    pub(crate) fn construction_failed(&self, error: ServeError) -> usize {
        let in_a_row = {
            let mut c = self.constructions.locked();
            c.in_a_row += 1;
            c.since_rollout += 1;
            c.last_error = Some(error);
            c.in_a_row
        };
        self.changed();
        in_a_row
    }

    /// Whoever waits for its replicas to change (a rollout) looks again.
    fn changed(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes of its replicas and constructions from now on (see [`changed`](Self::changed)).
    pub(crate) fn events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Routable replicas, and how many of them were built for the current generation.
    pub(crate) fn running_and_current(&self) -> (usize, usize) {
        let generation = self.generation();
        let replicas = self.router.replicas();
        let records = self.records.locked();
        let current = replicas
            .iter()
            .filter(|r| {
                records
                    .get(&r.info().replica_id)
                    .is_some_and(|rec| rec.generation == generation)
            })
            .count();
        (replicas.len(), current)
    }

    /// Marks the deployment unhealthy (`Some(reason)`) or healthy again (`None`).
    pub(crate) fn set_unhealthy(&self, reason: Option<String>) {
        *self.unhealthy.locked() = reason;
    }

    /// Whether a new replica waits for resources that are not free: replicas wait for them,
    /// none holds its resources while being constructed, and what a new replica needs is not
    /// free now (given back but not yet taken counts as free).
    pub(crate) fn starved(&self) -> bool {
        let p = &self.placement;
        p.waiting() > 0 && p.building() == 0 && !p.fits_now()
    }

    /// What `status` reports of the deployment.
    pub(crate) fn status(&self) -> DeploymentStatus {
        // Under the router's membership, a replica joining routing is counted once (built or
        // running).
        let (replicas, building) = self
            .router
            .with_membership(|replicas| (replicas.to_vec(), self.placement.building()));
        let target = self.target();
        // Short of the target and not being constructed: waiting for resources.
        let pending = target.saturating_sub(replicas.len() + building);
        let unhealthy = self.unhealthy.locked().clone();
        let generation = self.generation();
        let records: Vec<ReplicaRecord> = {
            let records = self.records.locked();
            let record = |r: &Arc<dyn Replica<D>>| records.get(&r.info().replica_id).copied();
            replicas
                .iter()
                .map(|r| record(r).unwrap_or_default())
                .collect()
        };
        let updating = self.updating.load(Ordering::SeqCst) > 0
            || records.iter().any(|r| r.generation != generation);
        let status = match (&unhealthy, replicas.len().cmp(&target)) {
            (Some(_), _) => "UNHEALTHY",
            (None, _) if updating => "UPDATING",
            (None, std::cmp::Ordering::Less) => "UPSCALING",
            (None, std::cmp::Ordering::Greater) => "DOWNSCALING",
            (None, std::cmp::Ordering::Equal) => "HEALTHY",
        };
        DeploymentStatus {
            name: self.name().to_string(),
            status: status.into(),
            message: unhealthy
                .or_else(|| (pending > 0).then(|| self.placement.pending_message(pending))),
            num_replicas: replicas.len(),
            pending_replicas: pending,
            target_replicas: target,
            max_ongoing_requests: self.router.max_ongoing(),
            queued_requests: self.router.queued(),
            replicas: replicas
                .iter()
                .zip(&records)
                .map(|(replica, record)| ReplicaStatus {
                    replica_id: replica.info().replica_id,
                    state: if record.health_failures > 0 {
                        "UNHEALTHY"
                    } else {
                        "RUNNING"
                    }
                    .into(),
                    ongoing_requests: replica.slots().load(),
                    node: replica.info().node.as_deref().map(str::to_owned),
                    multiplexed_model_ids: multiplexed_model_ids(replica.info()),
                })
                .collect(),
        }
    }
}

/// The multiplexed model ids a replica holds, as this process knows them.
fn multiplexed_model_ids(info: &ReplicaInfo) -> Vec<String> {
    info.state
        .get::<LoadedModels>(LOADED_MODELS)
        .map(|loaded| loaded.ids().iter().map(|id| id.to_string()).collect())
        .unwrap_or_default()
}

/// At scrape time: the replicas in routing and the target.
impl<D: Send + Sync + 'static> Refresh for DeploymentState<D> {
    fn refresh(&self) {
        self.metrics
            .set_replicas(self.router.num_replicas(), self.target());
    }
}

impl<D> Drop for DeploymentState<D> {
    fn drop(&mut self) {
        // Pending replicas of a deployment that is gone give up.
        self.placement.close();
    }
}
