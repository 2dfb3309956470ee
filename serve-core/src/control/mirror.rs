//! [`Mirror`]: a deployment as a cluster worker holds it. The worker builds the same application
//! graph as the head (same binary), but controls nothing: each deployment is a router whose
//! replicas are the ones the head placed — constructed here when the head says so, or reached on
//! their own nodes (the head's replica table says where). Handles on the worker (those its
//! replicas' constructors receive, and its HTTP proxy's) route over all of them, like the head's.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::ServeError;
use crate::request::context::{ReplicaInfo, ReplicaLogging};
use crate::transport::{RemoteEndpoint, Served};

/// One deployment on a worker, whatever its type.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) trait Mirror: Send + Sync {
    /// The deployment's name.
    fn name(&self) -> &Arc<str>;
    /// How its replicas here log.
    fn logging(&self) -> ReplicaLogging;
    /// Constructs replica `info` here (measured by this node's metrics) and adds it to routing;
    /// resolves to what serves it to the other nodes.
    fn start_local(
        self: Arc<Self>,
        info: ReplicaInfo,
        user_config: Option<serde_json::Value>,
    ) -> BoxFuture<'static, Result<Arc<dyn Served>, ServeError>>;
    /// Adds replica `info` of another node, reached through `endpoint`.
    fn add_remote(&self, info: Arc<ReplicaInfo>, endpoint: Arc<dyn RemoteEndpoint>);
    /// Takes replica `replica_id` out of routing (it finishes what it runs); returns whether it
    /// was there.
    fn remove(&self, replica_id: usize) -> bool;
    /// The ids of the replicas of other nodes in routing.
    fn remote_ids(&self) -> Vec<usize>;
    /// Stops admitting outside requests (a graceful shutdown).
    fn close(&self);
    /// Sets the slots per replica (the head's `max_ongoing_requests`).
    fn set_max_ongoing(&self, n: usize);
}
