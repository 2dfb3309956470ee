//! [`DeploymentState`]: one deployment as the control plane runs it — its request router, the
//! replica count it heads for, its rollout generation, its placement, and what `status` reports.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::placement::Placement;
use super::status::{DeploymentStatus, ReplicaStatus};
use crate::config::DeploymentConfig;
use crate::dataplane::replica::{Endpoint, Replica};
use crate::dataplane::router::RequestRouter;
use crate::metrics::registry::Refresh;
use crate::metrics::series::ControlSeries;
use crate::request::context::ReplicaInfo;
use crate::request::multiplex::{LOADED_MODELS, LoadedModels};
use crate::util::sync::Lock;

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
    /// By replica id, for the replicas in routing.
    records: Mutex<HashMap<usize, ReplicaRecord>>,
    /// By replica id: what keeps this node's replicas callable from other nodes (cluster mode);
    /// dropped when the replica leaves routing.
    published: Mutex<HashMap<usize, Box<dyn Any + Send + Sync>>>,
    /// Why the deployment is unhealthy (its replicas cannot be constructed), if it is.
    unhealthy: Mutex<Option<String>>,
    /// Whether the replica count is the autoscaler's (then it cannot be set by hand).
    pub(crate) autoscaling: bool,
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
            records: Mutex::new(records),
            published: Mutex::default(),
            unhealthy: Mutex::new(None),
            autoscaling: config.autoscaling.is_some(),
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

    /// Starts a new rollout generation: every replica is replaced, rolling.
    pub(crate) fn next_generation(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
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
