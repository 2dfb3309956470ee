//! [`NodeSet`]: the nodes replicas can be placed on — this process, and (cluster mode) the
//! workers that joined — each with its own [`ResourcePool`]; and [`ClusterHooks`], what the
//! control plane asks of the cluster layer (start a replica on another node, make a replica of
//! this node callable from the others).
//!
//! In one process the set holds only this process, and nothing here changes how replicas are
//! placed.

use std::any::Any;
use std::sync::{Arc, OnceLock, RwLock};

use super::resources::ResourcePool;
use futures::future::BoxFuture;

use crate::error::ServeError;
use crate::metrics::registry::Metrics;
use crate::request::context::ReplicaInfo;
use crate::transport::{RemoteEndpoint, Served};
use crate::util::sync::ReadWrite;

/// A node: this process, or a worker in cluster mode.
pub(crate) struct Node {
    /// Unique for the life of the process (a restarted worker is a new node).
    pub(crate) id: Arc<str>,
    /// What `status` and errors call it (`--node-name`).
    pub(crate) name: Arc<str>,
    /// What its replicas reserve from (on the head, the head's own record of a worker's).
    pub(crate) pool: ResourcePool,
}

/// What the control plane asks of the cluster layer.
pub(crate) trait ClusterHooks: Send + Sync {
    /// Constructs replica `info` on the remote `node` (with `user_config`); resolves once it
    /// runs there, to its endpoint and a guard that stops it when dropped.
    fn start_remote(
        &self,
        node: &Arc<Node>,
        info: &Arc<ReplicaInfo>,
        user_config: Option<serde_json::Value>,
    ) -> BoxFuture<'static, Result<RemoteStarted, ServeError>>;

    /// Makes replica `info` of this node callable from the other nodes through `served`, and
    /// lists it; dropping the guard unlists it (and, once calls already sent have had time to
    /// arrive, stops serving it).
    fn publish_local(
        &self,
        info: &Arc<ReplicaInfo>,
        served: Arc<dyn Served>,
    ) -> Box<dyn Any + Send + Sync>;
}

/// A replica started on another node.
pub(crate) struct RemoteStarted {
    pub(crate) endpoint: Arc<dyn RemoteEndpoint>,
    /// Stops the replica on its node (and unlists it) when dropped.
    pub(crate) guard: Box<dyn Any + Send + Sync>,
}

/// The nodes replicas can be placed on.
pub(crate) struct NodeSet {
    local: Arc<Node>,
    remote: RwLock<Vec<Arc<Node>>>,
    /// Bumped when a node joins or leaves, or a remote node's reservation is given back.
    changed: Arc<tokio::sync::watch::Sender<u64>>,
    cluster: OnceLock<Arc<dyn ClusterHooks>>,
    /// What this node measures (its replicas, its callers, its proxy).
    metrics: Metrics,
}

impl NodeSet {
    /// Only this process, with `pool`, measured by `metrics`.
    pub(crate) fn new(pool: ResourcePool, metrics: Metrics) -> Self {
        Self {
            local: Arc::new(Node {
                id: "local".into(),
                name: "local".into(),
                pool,
            }),
            remote: RwLock::default(),
            changed: Arc::new(tokio::sync::watch::Sender::new(0)),
            cluster: OnceLock::new(),
            metrics,
        }
    }

    /// What this node measures.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// This process.
    pub(crate) fn local(&self) -> &Arc<Node> {
        &self.local
    }

    /// Whether `node` is this process.
    pub(crate) fn is_local(&self, node: &Arc<Node>) -> bool {
        Arc::ptr_eq(node, &self.local)
    }

    /// Node `id` named `name` of a cluster, with `pool`; [`set_cluster`](Self::set_cluster)
    /// gives it the cluster layer.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn clustered(pool: ResourcePool, id: &str, name: &str, metrics: Metrics) -> Self {
        let mut set = Self::new(pool, metrics);
        set.local = Arc::new(Node {
            id: id.into(),
            name: name.into(),
            pool: set.local.pool.clone(),
        });
        set
    }

    /// Hands the cluster layer to the control plane (once).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn set_cluster(&self, hooks: Arc<dyn ClusterHooks>) {
        let _ = self.cluster.set(hooks);
    }

    /// The cluster layer, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<&Arc<dyn ClusterHooks>> {
        self.cluster.get()
    }

    /// This node's name in cluster mode (`None` in one process).
    pub(crate) fn local_name(&self) -> Option<Arc<str>> {
        self.cluster.get().map(|_| self.local.name.clone())
    }

    /// What a new remote node's pool signals when a reservation is given back.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn signal(&self) -> Arc<tokio::sync::watch::Sender<u64>> {
        self.changed.clone()
    }

    /// A worker joined.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn add_remote(&self, node: Arc<Node>) {
        self.remote.write_locked().push(node);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A worker left or died; returns it if it was there.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn remove_remote(&self, id: &str) -> Option<Arc<Node>> {
        let mut remote = self.remote.write_locked();
        let at = remote.iter().position(|n| &*n.id == id)?;
        let node = remote.remove(at);
        drop(remote);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Some(node)
    }

    /// How many remote nodes (workers) there are.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn remote_count(&self) -> usize {
        self.remote.read_locked().len()
    }

    /// Every node: the remote ones in the order they joined, then this process.
    pub(crate) fn all(&self) -> Vec<Arc<Node>> {
        let mut all = self.remote.read_locked().clone();
        all.push(self.local.clone());
        all
    }

    /// Changes when a node joins or leaves, or a remote reservation is given back.
    pub(crate) fn changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
