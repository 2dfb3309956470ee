//! [`Mirror`]: a deployment as a cluster worker holds it. The worker builds the same application
//! graph as the head (same binary), but controls nothing: each deployment is a router whose
//! replicas are the ones the head placed — constructed here when the head says so, or reached on
//! their own nodes (the head's replica table says where). Handles on the worker (those its
//! replicas' constructors receive, and its HTTP proxy's) route over all of them, like the head's.

use std::sync::Arc;

use super::application::{BoxFuture, BuildContext, Node};
use super::deploy::{construct, serving_handle};
use crate::api::deployment::Deployment;
use crate::dataplane::replica::{Endpoint, LocalReplica, RemoteReplica, Replica};
use crate::dataplane::router::RequestRouter;
use crate::error::ServeError;
use crate::request::context::ReplicaInfo;
use crate::transport::{RemoteEndpoint, Served};

/// One deployment on a worker, whatever its type.
pub(crate) trait Mirror: Send + Sync {
    /// The deployment's name.
    fn name(&self) -> &Arc<str>;
    /// Constructs replica `info` here and adds it to routing; resolves to what serves it to the
    /// other nodes.
    fn start_local(
        self: Arc<Self>,
        info: Arc<ReplicaInfo>,
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

/// The mirror of one deployment of type `D`.
pub(crate) struct MirrorOf<D> {
    pub(crate) node: Arc<Node<D>>,
    pub(crate) ctx: BuildContext,
    pub(crate) router: Arc<RequestRouter<D>>,
    pub(crate) rt: tokio::runtime::Handle,
}

impl<D: Deployment> Mirror for MirrorOf<D> {
    fn name(&self) -> &Arc<str> {
        self.router.name()
    }

    fn start_local(
        self: Arc<Self>,
        info: Arc<ReplicaInfo>,
        user_config: Option<serde_json::Value>,
    ) -> BoxFuture<'static, Result<Arc<dyn Served>, ServeError>> {
        Box::pin(async move {
            let instance = construct(&self.node, &self.ctx, &info, user_config, &self.rt).await?;
            let replica: Arc<dyn Replica<D>> =
                Arc::new(LocalReplica::new(info.clone(), instance, None));
            let served = serving_handle(self.router.name(), &replica, &self.rt);
            self.router.add_replica(|| replica);
            Ok(served)
        })
    }

    fn add_remote(&self, info: Arc<ReplicaInfo>, endpoint: Arc<dyn RemoteEndpoint>) {
        let id = info.replica_id;
        if self.router.replicas().iter().any(|r| r.info().replica_id == id) {
            return;
        }
        self.router
            .add_replica(|| Arc::new(RemoteReplica::new(info, endpoint, None)));
    }

    fn remove(&self, replica_id: usize) -> bool {
        self.router
            .remove_where(|replicas| {
                replicas
                    .iter()
                    .position(|r| r.info().replica_id == replica_id)
            })
            .is_some()
    }

    fn remote_ids(&self) -> Vec<usize> {
        self.remote_ids_now()
    }

    fn close(&self) {
        self.router.close();
    }

    fn set_max_ongoing(&self, n: usize) {
        self.router.set_max_ongoing(n);
    }
}

impl<D: Deployment> MirrorOf<D> {
    fn remote_ids_now(&self) -> Vec<usize> {
        self.router
            .replicas()
            .iter()
            .filter(|r| matches!(r.endpoint(), Endpoint::Remote(_)))
            .map(|r| r.info().replica_id)
            .collect()
    }
}
