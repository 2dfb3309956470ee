//! Cluster mode for an instance: [`ServeBuilder::cluster`] makes it a cluster's head, and
//! [`ServeBuilder::start_worker`] a worker of one ([`Worker`]). See the guide's chapter "Running
//! on many machines".

use std::net::SocketAddr;
use std::sync::Arc;

use super::{Serve, ServeBuilder};
use crate::api::deployment::Deployment;
use crate::api::handle::{CallOne, DeploymentHandle};
use crate::cluster::worker::{Offer, WorkerNode};
use crate::cluster::{connect, new_node_id, prefix, prepare_build_id};
use crate::config::ClusterOptions;
use crate::control::application::Application;
use crate::control::nodes::NodeSet;
use crate::error::{ErrorKind, ServeError};
use crate::http::{IntoHttpResponse, Request, UnaryIngress};
use crate::metrics::snapshot::MetricsSnapshot;
use crate::util::blocking;

impl ServeBuilder {
    /// Makes the instance the head of a cluster over NATS (`ClusterOptions::new("nats://..")`):
    /// [`start`](Self::start) connects (within the options' connect timeout), and workers that
    /// join get replicas. Without it, everything runs in this process and no NATS is needed.
    pub fn cluster(mut self, options: ClusterOptions) -> Self {
        self.cluster = Some(options);
        self
    }

    /// This node's name in a cluster (what `status` and errors call it). Default: `head` for the
    /// head, the host name and process id for a worker.
    pub fn node_name(mut self, name: impl Into<String>) -> Self {
        self.node_name = Some(name.into());
        self
    }

    /// Starts a worker of the cluster set with [`cluster`](Self::cluster), for `app` (the same
    /// application, from the same binary, as the head's). It offers the builder's resources,
    /// joins the head (waiting for it up to the connect timeout), and runs the replicas the head
    /// places on it until [`Worker::wait`] returns (the head is gone) or it is dropped.
    pub fn start_worker<D: Deployment>(self, app: Application<D>) -> Result<Worker<D>, ServeError> {
        let Some(options) = self.cluster.clone() else {
            return Err(ServeError::new(ErrorKind::Config)
                .with_message("a worker needs a cluster: `Serve::builder().cluster(..)`"));
        };
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("ServeBuilder::start_worker"));
        }
        let pool = self.pool()?;
        prepare_build_id();
        let id = new_node_id();
        let name = self
            .node_name
            .clone()
            .unwrap_or_else(|| default_worker_name(&id));
        let offer = Offer {
            resources: pool.total(),
            gpu_labels: pool.gpu_labels(),
        };
        let nodes = Arc::new(NodeSet::clustered(pool, &id, &name, self.metrics(&id)));
        let serve = Serve::from_parts(Serve::new_runtime()?, nodes.clone(), Arc::default());
        let rt = serve.live_handle()?;
        let (handle, mirrors) = app.mirror(rt.clone(), app.deployment_configs(), nodes);
        // The head's default too (the command line names both after the application).
        let prefix = prefix(options.name.as_deref().unwrap_or("serve"));
        let node_name = name.clone();
        let node = futures::executor::block_on(rt.spawn(async move {
            let (client, events) = connect(&options, &node_name, &prefix).await?;
            WorkerNode::start(
                client, events, prefix, &id, &node_name, options, mirrors, offer,
            )
            .await
        }))
        .unwrap_or_else(|_| Err(ServeError::shut_down()))?;
        let stop = node.clone();
        serve.on_shutdown(move || stop.shutdown());
        Ok(Worker {
            serve,
            handle,
            node,
        })
    }
}

fn default_worker_name(id: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", &id[..8.min(id.len())])
}

impl Serve {
    /// How many workers have joined this head (0 outside cluster mode).
    pub fn workers(&self) -> usize {
        self.inner.nodes.remote_count()
    }

    /// Blocks until at least `n` workers have joined this head, or `timeout` passed (then fails
    /// saying how many did).
    pub fn wait_for_workers(
        &self,
        n: usize,
        timeout: std::time::Duration,
    ) -> Result<(), ServeError> {
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("Serve::wait_for_workers"));
        }
        let nodes = self.inner.nodes.clone();
        let rt = self.live_handle()?;
        let waited = futures::executor::block_on(rt.spawn(async move {
            let mut changed = nodes.changed();
            tokio::time::timeout(timeout, async {
                while nodes.remote_count() < n {
                    if changed.changed().await.is_err() {
                        return;
                    }
                }
            })
            .await
            .is_ok()
        }))
        .unwrap_or(false);
        if waited {
            Ok(())
        } else {
            Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
                "{} of {n} worker(s) joined within {timeout:?}",
                self.workers()
            )))
        }
    }
}

/// A worker of a cluster: see [`ServeBuilder::start_worker`]. Dropping it leaves the cluster
/// abruptly (the head notices within its detection bound); [`leave`](Self::leave) leaves
/// gracefully.
pub struct Worker<D: Deployment> {
    serve: Serve,
    handle: DeploymentHandle<D>,
    node: Arc<WorkerNode>,
}

impl<D: Deployment> std::fmt::Debug for Worker<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("node", &self.node.name())
            .finish_non_exhaustive()
    }
}

impl<D: Deployment> Worker<D> {
    /// The application's root handle on this worker: calls route over every replica of the
    /// cluster, like the head's.
    pub fn handle(&self) -> &DeploymentHandle<D> {
        &self.handle
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        self.node.name()
    }

    /// Serves the application over HTTP from this worker too (Ray's `proxy_location:
    /// EveryNode`), on `addr` under `route_prefix`; returns the address it listens on. Requests
    /// go to the ingress replicas on any node.
    pub fn serve_http<R>(&self, addr: &str, route_prefix: &str) -> Result<SocketAddr, ServeError>
    where
        D::Handle: CallOne<Request, Output = R>,
        R: IntoHttpResponse + Send + 'static,
    {
        crate::http::normalized_prefix(route_prefix)?;
        let bound = self.serve.start_http(addr)?;
        let name = self.handle.deployment_name().to_owned();
        self.serve.proxy()?.mount(
            route_prefix,
            &name,
            Arc::new(UnaryIngress(self.handle.clone())),
        )?;
        Ok(bound)
    }

    /// This node's metrics in Prometheus's text format (see [`Serve::metrics_text`]): the
    /// replicas the head placed here, this node's callers and, once
    /// [`serve_http`](Self::serve_http) ran, its proxy, which also serves them at `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.serve.metrics_text()
    }

    /// This node's metrics as numbers (see [`Serve::metrics`]).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.serve.metrics()
    }

    /// Sets the HTTP proxy's request timeout (see [`Serve::set_http_request_timeout`]).
    pub fn set_http_request_timeout(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), ServeError> {
        self.serve.set_http_request_timeout(timeout)
    }

    /// Blocks until the worker stops (its head stopped answering, or it was refused on
    /// rejoining); returns why.
    pub fn wait(&self) -> ServeError {
        let node = self.node.clone();
        match self.serve.live_handle() {
            Ok(rt) => futures::executor::block_on(rt.spawn(async move { node.wait().await }))
                .unwrap_or_else(|_| ServeError::shut_down()),
            Err(e) => e,
        }
    }

    /// Leaves the cluster gracefully: the head stops routing here and rebuilds this node's
    /// replicas elsewhere; the requests this node runs for other nodes finish (up to `timeout`,
    /// 20 s if `None`), then the worker shuts down. Returns whether they finished in time.
    pub fn leave(&self, timeout: impl Into<Option<std::time::Duration>>) -> bool {
        let node = self.node.clone();
        let timeout = timeout.into().unwrap_or(std::time::Duration::from_secs(20));
        let drained = match self.serve.live_handle() {
            Ok(rt) => {
                futures::executor::block_on(rt.spawn(async move { node.leave(timeout).await }))
                    .unwrap_or(false)
            }
            Err(_) => false,
        };
        self.serve.shutdown();
        drained
    }
}

impl<D: Deployment> Drop for Worker<D> {
    fn drop(&mut self) {
        self.serve.shutdown();
    }
}
