//! How one node of an application graph is deployed: its placement, its replica factory, its
//! initial replicas (constructed in parallel; those that do not fit wait, pending), its request
//! router, its state and its controller.

use std::sync::{Arc, Mutex};

use super::application::{AnyNode, AppRef, BoxFuture, BuildContext, Deployed, Node};
use super::controller::{self, ReplicaFactory};
use super::placement::Placement;
use super::state::{DeploymentState, NewReplica};
use crate::api::deployment::Deployment;
use crate::api::handle::DeploymentHandle;
use crate::config::DeploymentConfig;
use crate::dataplane::router::{RequestRouter, RouterSettings};
use crate::error::{ErrorKind, ServeError};
use crate::util::sync::Lock;
use crate::util::time;

impl<D: Deployment> AnyNode for Node<D> {
    fn id(&self) -> usize {
        self as *const Self as *const () as usize
    }

    fn config(&self) -> &DeploymentConfig {
        &self.config
    }

    fn children(&self) -> &[AppRef] {
        &self.children
    }

    fn deploy(
        self: Arc<Self>,
        ctx: BuildContext,
        app: Arc<str>,
        config: DeploymentConfig,
        rt: tokio::runtime::Handle,
    ) -> BoxFuture<'static, Result<Deployed, ServeError>> {
        Box::pin(deploy(self, ctx, app, config, rt))
    }
}

/// Deploys `node` as `config` says: constructs the initial replicas that fit now (in parallel),
/// then starts its router and its controller, which starts the pending ones when resources are
/// given back.
async fn deploy<D: Deployment>(
    node: Arc<Node<D>>,
    ctx: BuildContext,
    app: Arc<str>,
    config: DeploymentConfig,
    rt: tokio::runtime::Handle,
) -> Result<Deployed, ServeError> {
    let name: Arc<str> = Arc::from(config.name.as_str());
    // The current user_config: updates reach replicas constructed later too.
    let user_config = Arc::new(Mutex::new(config.user_config.clone()));
    let placement = Arc::new(Placement::new(
        ctx.pool.clone(),
        config.resources.clone(),
        app,
        name.clone(),
    ));
    let factory = replica_factory(node, ctx, &rt, &user_config, &placement);
    let initial = match &config.autoscaling {
        Some(autoscaling) => autoscaling.initial(),
        None => config.num_replicas,
    };
    // The replicas that fit now are constructed now; the controller starts the others
    // (pending) when resources are given back.
    let fit = placement.reserve_upfront(initial);
    let constructors: Vec<_> = (0..fit).map(|_| factory()).collect();
    let mut replicas = Vec::with_capacity(constructors.len());
    for result in futures::future::join_all(constructors).await {
        replicas.push(DeploymentState::local_replica(result?));
    }
    let settings = RouterSettings {
        max_ongoing: config.max_ongoing_requests,
        max_queued: config.max_queued_requests,
        graceful_timeout: time::seconds(config.graceful_shutdown_timeout_s)
            .unwrap_or(std::time::Duration::ZERO),
    };
    let router = Arc::new(RequestRouter::new(name, replicas, settings, rt.clone()));
    placement.set_on_wait(router.wake_signal());
    let state = Arc::new(DeploymentState::new(
        router.clone(),
        config.clone(),
        user_config,
        placement,
        initial,
    ));
    tracing::info!(
        deployment = %config.name,
        replicas = fit,
        pending = initial - fit,
        max_ongoing_requests = config.max_ongoing_requests,
        "deployment is up: {fit} replica(s) running, {} pending",
        initial - fit,
    );
    // Every deployment gets a controller: it applies target changes (autoscaling,
    // `Serve::update_deployment`) and runs health checks.
    rt.spawn(controller::run(Arc::downgrade(&state), factory, config));
    Ok(Deployed {
        handle: Arc::new(DeploymentHandle::<D>::from_router(router)),
        status: state,
    })
}

/// Builds replicas of `node` one at a time: see [`ReplicaFactory`].
fn replica_factory<D: Deployment>(
    node: Arc<Node<D>>,
    ctx: BuildContext,
    rt: &tokio::runtime::Handle,
    user_config: &Arc<Mutex<Option<serde_json::Value>>>,
    placement: &Arc<Placement>,
) -> ReplicaFactory<D> {
    let (rt, user_config, placement) = (rt.clone(), user_config.clone(), placement.clone());
    Arc::new(move || {
        let constructor = (node.ctor)(&ctx);
        let user_config = user_config.locked().clone();
        let (rt, placement) = (rt.clone(), placement.clone());
        let prepaid = placement.take_prepaid();
        Box::pin(async move {
            // Resources first (pending while they are short), held from here on.
            let placed = placement.place(prepaid).await?;
            let name = placed.info().deployment.clone();
            let instance = constructor
                .in_replica(placed.info().clone())
                .construct(&rt)
                .await
                .map_err(|e| e.in_deployment(&name))?;
            let instance = Arc::new(instance);
            // A replica gets its user_config before it takes any request.
            if let Some(config) = user_config {
                let Some(hook) = D::__reconfigure(&instance, config) else {
                    return Err(ServeError::new(ErrorKind::Constructor)
                        .with_message(
                            "a user_config is set, but the deployment has no `reconfigure` \
                             method to take it",
                        )
                        .in_deployment(&name));
                };
                hook.await.map_err(|e| {
                    ServeError::new(ErrorKind::Constructor)
                        .with_message("reconfigure failed")
                        .with_source(e)
                        .in_deployment(&name)
                })?;
            }
            Ok(NewReplica { instance, placed })
        })
    })
}
