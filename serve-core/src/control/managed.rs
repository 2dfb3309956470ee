//! [`ManagedDeployment`]: a running deployment as the instance controls it, whatever its type.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::state::DeploymentState;
use super::status::DeploymentStatus;
use super::update::DeploymentUpdate;
use crate::api::deployment::Deployment;
use crate::api::handle::DeploymentHandle;
use crate::config::DeploymentConfig;
use crate::error::ServeError;
use crate::util::sync::Lock;

/// A deployment's live state (for `status`) and the instance's controls over it.
pub(crate) trait ManagedDeployment: Send + Sync {
    fn name(&self) -> &str;
    fn status(&self) -> DeploymentStatus;
    /// Stops admitting new outside requests (calls made on behalf of requests in flight still
    /// run, so those requests can finish); after the deployment's graceful shutdown timeout,
    /// fails whatever still runs or waits.
    fn close(self: Arc<Self>);
    /// Fails at once whatever still runs or waits, as `close` does after the timeout.
    fn stop_now(&self);
    /// How long its replicas may take to finish their requests when they stop.
    fn graceful_timeout(&self) -> Duration;
    /// Whether a shutdown's timeout failed requests here.
    fn stopped_requests(&self) -> usize;
    /// Requests waiting or running.
    fn in_progress(&self) -> usize;
    /// Applies a change to the running deployment (see `Serve::update_deployment`).
    fn update(
        self: Arc<Self>,
        update: DeploymentUpdate,
    ) -> Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>>;
    /// Node `node` (cluster mode) is gone: takes its replicas out of routing (the controller
    /// replaces them); returns how many there were.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn drop_node(&self, node: &str) -> usize;
    /// Its configuration as last deployed or updated.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn config(&self) -> DeploymentConfig;
    /// Has its controller look at it now (a node joined: replicas may be placed or moved).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn wake(&self);
    /// The deployment's Rust type, as `std::any::type_name` spells it.
    fn type_name(&self) -> &'static str;
    /// A handle to it: a `DeploymentHandle<D>` of its type `D`.
    fn handle(&self) -> Box<dyn Any + Send>;
    /// Itself, to be downcast to its `DeploymentState<D>`.
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Its application was deleted, or replaced by a version without it (after its requests
    /// were given their time): its controller stops, every replica leaves routing (finishing
    /// what it runs, for up to its graceful shutdown timeout), and calls through its handles
    /// fail from now on ([`ErrorKind::NotFound`](crate::ErrorKind::NotFound)).
    fn retire(&self);
}

impl<D: Deployment> ManagedDeployment for DeploymentState<D> {
    fn name(&self) -> &str {
        DeploymentState::name(self)
    }

    fn status(&self) -> DeploymentStatus {
        DeploymentState::status(self)
    }

    fn close(self: Arc<Self>) {
        self.router.close();
    }

    fn stop_now(&self) {
        self.router.stop_all();
    }

    fn graceful_timeout(&self) -> Duration {
        self.router.graceful_timeout()
    }

    fn stopped_requests(&self) -> usize {
        self.router.stopped_requests()
    }

    fn in_progress(&self) -> usize {
        self.router.ongoing()
    }

    fn update(
        self: Arc<Self>,
        update: DeploymentUpdate,
    ) -> Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>> {
        Box::pin(DeploymentState::update(self, update))
    }

    fn config(&self) -> DeploymentConfig {
        self.config.locked().clone()
    }

    fn wake(&self) {
        self.router.wake_signal().notify_one();
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<D>()
    }

    fn handle(&self) -> Box<dyn Any + Send> {
        Box::new(DeploymentHandle::<D>::from_router(self.router.clone()))
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn retire(&self) {
        // No controller from now on: nothing starts or replaces replicas.
        self.next_controller_epoch();
        self.set_target(0);
        self.router.delete();
        while self.remove_replica() {}
    }

    fn drop_node(&self, node: &str) -> usize {
        let mut dropped = 0;
        while self.remove_on_node(node) {
            dropped += 1;
        }
        if dropped > 0 {
            self.router.wake_signal().notify_one();
        }
        dropped
    }
}
