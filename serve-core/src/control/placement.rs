//! [`Placement`]: how the replicas of one deployment get their resources from the instance's
//! [`ResourcePool`], now or (pending) when a reservation elsewhere is given back; and the one
//! place replicas are numbered.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::nodes::{Node, NodeSet};
use super::resources::{InstanceResources, Reservation, ResourcePool};
use crate::config::ReplicaResources;
use crate::error::{ErrorKind, ServeError};
use crate::request::context::{ReplicaInfo, ReplicaLogging};
use crate::util::counted::Counted;
use crate::util::sync::Lock;

/// How the replicas of one deployment get their resources: now, or (pending) when a reservation
/// elsewhere is given back. Numbers the replicas too, so a constructor already knows its replica.
pub(crate) struct Placement {
    nodes: Arc<NodeSet>,
    /// In cluster mode, place on this process first (the ingress, next to the HTTP proxy).
    prefer_here: bool,
    /// What each new replica reserves (an update may change it: later replicas reserve the new
    /// amounts, running ones keep what they hold).
    request: Mutex<ReplicaResources>,
    app: Arc<str>,
    deployment: Arc<str>,
    /// How the deployment's replicas log.
    logging: ReplicaLogging,
    next_id: AtomicUsize,
    /// Reserved at deploy time for the initial replicas, taken by their constructions.
    prepaid: Mutex<VecDeque<(Arc<Node>, Reservation, NodeCount)>>,
    /// Replicas of the deployment per node id (placed and not yet dropped), so replicas spread.
    on_node: Arc<Mutex<HashMap<Arc<str>, usize>>>,
    /// Replicas holding a reservation whose constructor has not finished.
    building: Arc<AtomicUsize>,
    /// Reservations held by the deployment's replicas (being constructed, running, or stopped
    /// but not yet dropped: a stopped replica gives its resources back only when the last
    /// reference to it goes, after its requests and health checks).
    held: Arc<AtomicUsize>,
    /// Replicas waiting for resources (pending).
    waiting: AtomicUsize,
    /// Told when a replica starts waiting (the deployment's controller may make room).
    on_wait: OnceLock<Arc<tokio::sync::Notify>>,
    /// Set when the deployment is gone: a pending replica gives up.
    closed: tokio::sync::watch::Sender<bool>,
    /// Pending replicas already warned about at deploy time (not warned about again).
    announced: AtomicUsize,
}

/// A replica's place: its identity and what it was given, held while it is constructed and then
/// by the replica itself.
pub(crate) struct Placed {
    info: Arc<ReplicaInfo>,
    node: Arc<Node>,
    held: Held,
    /// Counts it as being constructed until the replica takes its parts.
    _building: Counted<Arc<AtomicUsize>>,
}

/// What a placed replica holds for its lifetime: its reservation on its node, and its place in
/// the count of the deployment's replicas on that node.
pub(crate) struct Held {
    _reservation: Reservation,
    _count: NodeCount,
    /// Counts it among the deployment's reservations held until it is dropped.
    _held: Counted<Arc<AtomicUsize>>,
}

/// One replica counted on a node; uncounted when dropped.
struct NodeCount {
    counts: Arc<Mutex<HashMap<Arc<str>, usize>>>,
    node: Arc<str>,
}

impl NodeCount {
    fn new(counts: &Arc<Mutex<HashMap<Arc<str>, usize>>>, node: &Arc<str>) -> Self {
        *counts.locked().entry(node.clone()).or_default() += 1;
        Self {
            counts: counts.clone(),
            node: node.clone(),
        }
    }
}

impl Drop for NodeCount {
    fn drop(&mut self) {
        let mut counts = self.counts.locked();
        if let Some(n) = counts.get_mut(&self.node) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.node);
            }
        }
    }
}

impl Placed {
    pub(crate) fn info(&self) -> &Arc<ReplicaInfo> {
        &self.info
    }

    /// The node it was placed on.
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The replica's identity and what it holds; it no longer counts as being constructed.
    pub(crate) fn into_parts(self) -> (Arc<ReplicaInfo>, Held) {
        (self.info, self.held)
    }
}

impl Placement {
    pub(crate) fn new(
        nodes: Arc<NodeSet>,
        request: ReplicaResources,
        app: Arc<str>,
        deployment: Arc<str>,
        logging: ReplicaLogging,
        prefer_here: bool,
    ) -> Self {
        Self {
            logging,
            nodes,
            prefer_here,
            on_node: Arc::default(),
            request: Mutex::new(request),
            app,
            deployment,
            next_id: AtomicUsize::new(0),
            prepaid: Mutex::new(VecDeque::new()),
            building: Arc::new(AtomicUsize::new(0)),
            held: Arc::new(AtomicUsize::new(0)),
            waiting: AtomicUsize::new(0),
            on_wait: OnceLock::new(),
            closed: tokio::sync::watch::Sender::new(false),
            announced: AtomicUsize::new(0),
        }
    }

    /// What each new replica reserves.
    pub(crate) fn request(&self) -> ReplicaResources {
        self.request.locked().clone()
    }

    /// Changes what replicas placed from now on reserve.
    pub(crate) fn set_request(&self, request: ReplicaResources) {
        *self.request.locked() = request;
    }

    /// Fails (with what is short) when one replica asking for `request` could never fit.
    pub(crate) fn check_feasible(
        &self,
        deployment: &str,
        request: &ReplicaResources,
    ) -> Result<(), ServeError> {
        check_feasible(&self.nodes, deployment, request)
    }

    /// This process's pool.
    fn pool(&self) -> &ResourcePool {
        &self.nodes.local().pool
    }

    /// Reserves `request` on a node where it fits now. In one process that is this process. In
    /// cluster mode, the workers come first — the one with the fewest replicas of the deployment
    /// (the one that joined first on ties), so replicas spread — and the head (which also runs
    /// the controller and the HTTP proxy) only when no worker has room; except for the
    /// application's ingress, which takes the head first, next to the proxy.
    fn reserve_somewhere(
        &self,
        request: &ReplicaResources,
    ) -> Option<(Arc<Node>, Reservation, NodeCount)> {
        let counted =
            |node: &Arc<Node>, r| (node.clone(), r, NodeCount::new(&self.on_node, &node.id));
        let local = self.nodes.local();
        let here = || local.pool.reserve(request).map(|r| counted(local, r));
        if self.nodes.cluster().is_none() {
            return here();
        }
        if self.prefer_here
            && let Some(placed) = here()
        {
            return Some(placed);
        }
        self.placement_order()
            .into_iter()
            .find_map(|node| node.pool.reserve(request).map(|r| counted(&node, r)))
    }

    /// Cluster mode: the nodes in the order a new replica tries them — the workers, those with
    /// the fewest replicas of the deployment first (the one that joined first on ties), then
    /// this process.
    fn placement_order(&self) -> Vec<Arc<Node>> {
        let mut nodes: Vec<(bool, usize, usize, Arc<Node>)> = {
            let counts = self.on_node.locked();
            self.nodes
                .all()
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    let count = counts.get(&n.id).copied().unwrap_or(0);
                    (self.nodes.is_local(&n), count, i, n)
                })
                .collect()
        };
        nodes.sort_unstable_by_key(|(local, count, i, _)| (*local, *count, *i));
        nodes.into_iter().map(|(.., n)| n).collect()
    }

    /// Says what to tell when a replica starts waiting for resources.
    pub(crate) fn set_on_wait(&self, on_wait: Arc<tokio::sync::Notify>) {
        let _ = self.on_wait.set(on_wait);
    }

    /// The deployment is gone: pending replicas give up, and no new replica is placed.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Reserves now for up to `n` replicas (taken by [`take_prepaid`](Self::take_prepaid));
    /// returns how many fit, with a warning naming what is missing for the others.
    pub(crate) fn reserve_upfront(&self, n: usize) -> usize {
        let mut prepaid = self.prepaid.locked();
        let request = self.request();
        for _ in 0..n {
            match self.reserve_somewhere(&request) {
                Some(placed) => prepaid.push_back(placed),
                None => break,
            }
        }
        let fit = prepaid.len();
        if fit < n {
            self.announced.fetch_add(n - fit, Ordering::SeqCst);
            tracing::warn!(
                deployment = %self.deployment,
                "{} of {n} replica(s) are pending: each needs {} and the instance is short of it \
                 ({}); they start when resources are released",
                n - fit,
                describe(&request),
                self.shortfall(&request),
            );
        }
        fit
    }

    /// A place reserved up front, numbered now (so initial replicas are numbered in order).
    pub(crate) fn take_prepaid(&self) -> Option<Placed> {
        let (node, reservation, count) = self.prepaid.locked().pop_front()?;
        let building = Counted::new(self.building.clone());
        Some(self.placed(node, reservation, count, building))
    }

    /// `prepaid`, or a place as soon as the resources are free: while they are not, the replica
    /// is *pending* (with a warning naming what is missing). Fails only when the deployment is
    /// gone.
    pub(crate) async fn place(&self, prepaid: Option<Placed>) -> Result<Placed, ServeError> {
        if let Some(placed) = prepaid {
            return Ok(placed);
        }
        let mut released = self.pool().released();
        let mut joined = self.nodes.changed();
        let mut closed = self.closed.subscribe();
        let mut warned = false;
        // Counts the replica as waiting for resources from its first miss until it returns.
        let mut waiting = None;
        loop {
            released.borrow_and_update();
            joined.borrow_and_update();
            if *closed.borrow_and_update() {
                return Err(ServeError::shut_down().in_deployment(&self.deployment));
            }
            let request = self.request();
            // Counted as being built before its resources leave the pool: the controller, which
            // makes room for a waiting replica when none is built and the resources do not fit,
            // must never see them gone while nothing counts as building (it would take another
            // old replica out).
            let building = Counted::new(self.building.clone());
            if let Some((node, reservation, count)) = self.reserve_somewhere(&request) {
                if warned {
                    tracing::info!(
                        deployment = %self.deployment,
                        "a pending replica got its resources and starts"
                    );
                }
                return Ok(self.placed(node, reservation, count, building));
            }
            drop(building);
            if waiting.is_none() {
                waiting = Some(Counted::new(&self.waiting));
                if let Some(on_wait) = self.on_wait.get() {
                    on_wait.notify_one();
                }
            }
            if !warned {
                warned = true;
                let announced = self
                    .announced
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if !announced {
                    tracing::warn!(
                        deployment = %self.deployment,
                        "a replica is pending: it needs {} and the instance is short of it ({}); \
                         it starts when resources are released",
                        describe(&request),
                        self.shortfall(&request),
                    );
                }
            }
            // The pool and `self` outlive this wait, so neither sender is dropped.
            tokio::select! {
                _ = released.changed() => {}
                _ = joined.changed() => {}
                _ = closed.changed() => {}
            }
        }
    }

    fn placed(
        &self,
        node: Arc<Node>,
        reservation: Reservation,
        count: NodeCount,
        building: Counted<Arc<AtomicUsize>>,
    ) -> Placed {
        let local = self.nodes.is_local(&node);
        let node_name = if local {
            self.nodes.local_name()
        } else {
            Some(node.name.clone())
        };
        let mut info = ReplicaInfo::new(
            self.app.clone(),
            self.deployment.clone(),
            self.next_id.fetch_add(1, Ordering::SeqCst),
            reservation.assignment().clone(),
        )
        .on_node(node_name)
        .logging(self.logging);
        if local {
            // A replica placed on another node is measured there.
            info = info.measured(self.nodes.metrics());
        }
        Placed {
            info: Arc::new(info),
            node,
            held: Held {
                _reservation: reservation,
                _count: count,
                _held: Counted::new(self.held.clone()),
            },
            _building: building,
        }
    }

    /// What of `request` is short now (on this process; in cluster mode, on every node).
    fn shortfall(&self, request: &ReplicaResources) -> String {
        let here = self.pool().shortfall(request);
        if self.nodes.cluster().is_none() {
            return here;
        }
        let others = self.nodes.all().len() - 1;
        format!("here: {here}; no other of the cluster's {others} other node(s) has it free")
    }

    /// Whether node `id` is this process.
    pub(crate) fn is_local_node(&self, id: &str) -> bool {
        *self.nodes.local().id == *id
    }

    /// Cluster mode: the node to move a replica away from, when it runs at least two replicas of
    /// the deployment more than the node a new replica would be placed on now (a worker joined,
    /// or came back after a failure); with that node's name, for logs. The ingress, which
    /// belongs next to the proxy, is never moved.
    ///
    /// The comparison is with where placement would really put the new replica, not with any
    /// node where one fits: a head with room but no replicas (placement takes the head only when
    /// no worker has room) would otherwise look lighter forever, and every rebalance would start
    /// a replica on a worker and stop one there again, without end.
    pub(crate) fn imbalance(&self) -> Option<(Arc<str>, Arc<str>)> {
        if self.nodes.cluster().is_none() || self.prefer_here {
            return None;
        }
        let request = self.request();
        let order = self.placement_order();
        let target = order.iter().find(|n| n.pool.fits(&request))?;
        let counts = self.on_node.locked();
        let count = |n: &Arc<Node>| counts.get(&n.id).copied().unwrap_or(0);
        let heaviest = order.iter().max_by_key(|n| count(n))?;
        (count(heaviest) >= count(target) + 2).then(|| (heaviest.id.clone(), heaviest.name.clone()))
    }

    /// Replicas holding their resources whose constructor has not finished.
    pub(crate) fn building(&self) -> usize {
        self.building.load(Ordering::SeqCst)
    }

    /// Reservations the deployment's replicas hold (see the field).
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Replicas waiting for resources (pending).
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Whether a new replica's resources are free now (given back, not yet taken).
    pub(crate) fn fits_now(&self) -> bool {
        let request = self.request();
        self.nodes.all().iter().any(|n| n.pool.fits(&request))
    }

    /// Why `pending` replicas do not start (for `status`).
    pub(crate) fn pending_message(&self, pending: usize) -> String {
        let request = self.request();
        let short = self.shortfall(&request);
        let short = if short.is_empty() {
            String::new()
        } else {
            format!(" ({short})")
        };
        format!(
            "{pending} replica(s) pending: each needs {}; the instance has {} free{short}",
            describe(&request),
            describe_instance(&self.pool().available()),
        )
    }
}

/// Fails (with what is short) when one replica of `deployment` could never fit in this process.
/// In cluster mode it always passes: a node it fits on may join later (until then the replica
/// is pending, and `status` says what it needs).
pub(crate) fn check_feasible(
    nodes: &NodeSet,
    deployment: &str,
    request: &ReplicaResources,
) -> Result<(), ServeError> {
    if nodes.cluster().is_some() {
        return Ok(());
    }
    nodes.local().pool.check_feasible(request).map_err(|short| {
        ServeError::new(ErrorKind::Runtime)
            .with_message(format!(
                "a replica of `{deployment}` needs {} but could never fit in this instance ({short}); \
                 give the instance more with `Serve::builder()` (`.num_cpus(n)`, `.num_gpus(n)`, \
                 `.resource(name, n)`)",
                describe(request),
            ))
            .in_deployment(&Arc::from(deployment))
    })
}

/// `{CPU: 1, GPU: 0.5, a100: 1}`.
fn describe(request: &ReplicaResources) -> String {
    let mut parts = vec![format!("CPU: {}", request.num_cpus)];
    if request.num_gpus > 0.0 {
        parts.push(format!("GPU: {}", request.num_gpus));
    }
    parts.extend(
        request
            .custom
            .iter()
            .filter(|(_, amount)| **amount > 0.0)
            .map(|(name, amount)| format!("{name}: {amount}")),
    );
    format!("{{{}}}", parts.join(", "))
}

fn describe_instance(resources: &InstanceResources) -> String {
    let mut parts = Vec::new();
    if let Some(cpus) = resources.num_cpus {
        parts.push(format!("CPU: {cpus}"));
    }
    parts.push(format!("GPU: {}", resources.num_gpus));
    parts.extend(
        resources
            .custom
            .iter()
            .map(|(name, amount)| format!("{name}: {amount}")),
    );
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use std::any::Any;
    use std::collections::BTreeMap;

    use futures::future::BoxFuture;

    use super::*;
    use crate::control::nodes::{ClusterHooks, RemoteStarted};
    use crate::transport::Served;

    /// Cluster hooks that are never called: placement only needs to know it is clustered.
    struct NoHooks;

    impl ClusterHooks for NoHooks {
        fn start_remote(
            &self,
            _: &Arc<Node>,
            _: &Arc<ReplicaInfo>,
            _: Option<serde_json::Value>,
        ) -> BoxFuture<'static, Result<RemoteStarted, ServeError>> {
            unreachable!("placement starts nothing")
        }

        fn publish_local(
            &self,
            _: &Arc<ReplicaInfo>,
            _: Arc<dyn Served>,
        ) -> Box<dyn Any + Send + Sync> {
            unreachable!("placement publishes nothing")
        }
    }

    fn unlimited() -> ResourcePool {
        ResourcePool::new(None, 0.0, &BTreeMap::new(), Vec::new())
    }

    fn worker(nodes: &NodeSet, id: &str) {
        nodes.add_remote(Arc::new(Node {
            id: id.into(),
            name: id.into(),
            pool: unlimited(),
        }));
    }

    #[test]
    fn a_head_with_room_but_no_replicas_is_no_reason_to_rebalance() {
        let nodes = Arc::new(NodeSet::clustered(
            unlimited(),
            "head",
            "head",
            Default::default(),
        ));
        nodes.set_cluster(Arc::new(NoHooks));
        worker(&nodes, "w1");
        let placement = Placement::new(
            nodes.clone(),
            ReplicaResources::default(),
            "App".into(),
            "Leaf".into(),
            ReplicaLogging::default(),
            false,
        );
        assert_eq!(placement.reserve_upfront(4), 4);
        let placed: Vec<Placed> = (0..4).map(|_| placement.take_prepaid().unwrap()).collect();
        assert!(
            placed.iter().all(|p| &*p.node().id == "w1"),
            "workers first"
        );
        // The head has room and no replica, but a new replica would go to w1 again: moving one
        // would only start and stop replicas on w1 forever.
        assert_eq!(placement.imbalance(), None);

        // A second worker is where a new replica would go: move from w1 until 2 and 2.
        worker(&nodes, "w2");
        assert_eq!(
            placement.imbalance().map(|(id, _)| id).as_deref(),
            Some("w1")
        );
    }
}
