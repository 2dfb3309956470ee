//! How one node of an application graph is deployed: its placement, its replica factory, its
//! initial replicas (constructed in parallel; those that do not fit wait, pending), its request
//! router, its state and its controller.

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

use super::application::{AnyNode, AppRef, BoxFuture, BuildContext, Deployed, Node};
use super::controller;
use super::managed::ManagedDeployment;
use super::mirror::Mirror;
use super::placement::Placement;
use super::redeploy;
use super::state::{DeploymentState, NewReplica, ReplicaFactory, construction_bound};
use crate::api::deployment::{Deployment, on_replica};
use crate::api::handle::DeploymentHandle;
use crate::config::DeploymentConfig;
use crate::dataplane::batch;
use crate::dataplane::replica::{Endpoint, LocalReplica, RemoteReplica, Replica};
use crate::dataplane::router::{RequestRouter, RouterSettings};
use crate::error::{ErrorKind, ServeError};
use crate::metrics::registry::Refresh;
use crate::metrics::series::{ControlSeries, DeploymentSeries};
use crate::request::context::{ReplicaInfo, ReplicaLogging};
use crate::transport::{RemoteEndpoint, Served};
use crate::util::sync::Lock;

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
        ingress: bool,
        previous: Option<Arc<dyn ManagedDeployment>>,
    ) -> BoxFuture<'static, Result<Deployed, ServeError>> {
        // The deployment of the previous version, if it has this node's type: taken over.
        let previous = previous.and_then(|p| p.as_any().downcast::<DeploymentState<D>>().ok());
        match previous {
            Some(state) => {
                let factory = replica_factory(self, ctx, &rt, &state.user_config, &state.placement);
                let upgrade = redeploy::InPlace::new(state.clone(), factory, config, rt);
                Box::pin(std::future::ready(Ok(Deployed {
                    handle: Arc::new(DeploymentHandle::<D>::from_router(state.router.clone())),
                    status: state,
                    upgrade: Some(Box::new(upgrade)),
                })))
            }
            None => Box::pin(deploy(self, ctx, app, config, rt, ingress)),
        }
    }

    fn mirror(
        self: Arc<Self>,
        ctx: BuildContext,
        app: Arc<str>,
        config: DeploymentConfig,
        rt: tokio::runtime::Handle,
    ) -> (Arc<dyn Any + Send + Sync>, Arc<dyn Mirror>) {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let metrics = ctx.nodes.metrics();
        let series = DeploymentSeries::new(metrics, &app, &name);
        let router = Arc::new(RequestRouter::new(
            name,
            Vec::new(),
            RouterSettings::of(&config, Some(series)),
            rt.clone(),
        ));
        metrics.on_scrape(Arc::downgrade(&router) as Weak<dyn Refresh>);
        let handle = Arc::new(DeploymentHandle::<D>::from_router(router.clone()));
        let mirror = Arc::new(MirrorOf {
            node: self,
            ctx,
            router,
            rt,
            logging: (&config.logging).into(),
        });
        (handle, mirror)
    }
}

/// Deploys `node` as `config` says (`ingress`: it is the application's root, which in cluster
/// mode prefers the head, next to the HTTP proxy): constructs the initial replicas that fit now (in parallel),
/// then starts its router and its controller, which starts the pending ones when resources are
/// given back.
async fn deploy<D: Deployment>(
    node: Arc<Node<D>>,
    ctx: BuildContext,
    app: Arc<str>,
    config: DeploymentConfig,
    rt: tokio::runtime::Handle,
    ingress: bool,
) -> Result<Deployed, ServeError> {
    let name: Arc<str> = Arc::from(config.name.as_str());
    batch::warn_if_capped(&config.name, config.max_ongoing_requests, D::__batches());
    // The current user_config: updates reach replicas constructed later too.
    let user_config = Arc::new(Mutex::new(config.user_config.clone()));
    let placement = Arc::new(Placement::new(
        ctx.nodes.clone(),
        config.resources.clone(),
        app.clone(),
        name.clone(),
        (&config.logging).into(),
        ingress,
    ));
    let metrics = ctx.nodes.metrics().clone();
    let factory = replica_factory(node, ctx, &rt, &user_config, &placement);
    let initial = match &config.autoscaling {
        Some(autoscaling) => autoscaling.initial(),
        None => config.num_replicas,
    };
    // The replicas that fit now are constructed now; the controller starts the others
    // (pending) when resources are given back.
    let fit = placement.reserve_upfront(initial);
    let built = construct_initial(&factory, fit, construction_bound(initial), &config.name).await?;
    let mut published = Vec::new();
    let replicas = built
        .into_iter()
        .map(|new| {
            if let Some(guard) = new.published {
                published.push((new.replica.info().replica_id, guard));
            }
            new.replica
        })
        .collect();
    let series = DeploymentSeries::new(&metrics, &app, &name);
    let settings = RouterSettings::of(&config, Some(series));
    let router = Arc::new(RequestRouter::new(name, replicas, settings, rt.clone()));
    metrics.on_scrape(Arc::downgrade(&router) as Weak<dyn Refresh>);
    placement.set_on_wait(router.wake_signal());
    let control = ControlSeries::new(&metrics, &app, &config.name, config.autoscaling.is_some());
    let state = Arc::new(DeploymentState::new(
        router.clone(),
        config.clone(),
        user_config,
        placement,
        initial,
        control,
        factory,
    ));
    metrics.on_scrape(Arc::downgrade(&state) as Weak<dyn Refresh>);
    for (id, guard) in published {
        state.keep_published(id, guard);
    }
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
    controller::spawn(&state, &rt);
    Ok(Deployed {
        handle: Arc::new(DeploymentHandle::<D>::from_router(router)),
        status: state,
        upgrade: None,
    })
}

/// Constructs `fit` replicas with `factory`, in parallel. A constructor that fails is tried
/// again, until `bound` constructions have failed in all (Ray's `min(3 * target, 20)`: see
/// [`construction_bound`]): then the deploy fails with the last constructor's error (the
/// replicas already built are dropped). A replica whose node went away (cluster mode) is left to
/// the controller, which starts another.
async fn construct_initial<D: Deployment>(
    factory: &ReplicaFactory<D>,
    fit: usize,
    bound: usize,
    name: &str,
) -> Result<Vec<NewReplica<D>>, ServeError> {
    use futures::StreamExt;
    let mut building: futures::stream::FuturesUnordered<_> = (0..fit).map(|_| factory()).collect();
    let mut built = Vec::with_capacity(fit);
    let (mut failed, mut unavailable) = (0, 0);
    let mut last_error = None;
    while let Some(result) = building.next().await {
        match result {
            Ok(new) => built.push(new),
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                unavailable += 1;
                tracing::warn!(deployment = %name, "{e}; starting another");
            }
            Err(e) => {
                failed += 1;
                // At most `bound` constructions that did not succeed, running ones included.
                let again = failed + building.len() < bound;
                tracing::warn!(
                    deployment = %name,
                    "a replica could not be constructed ({failed} of at most {bound} failures): \
                     {e}{}",
                    if again { "; trying again" } else { "" }
                );
                if again {
                    building.push(factory());
                }
                last_error = Some(e);
            }
        }
    }
    // A failure not tried again (the bound ran out) leaves its replica unbuilt.
    match last_error {
        Some(e) if built.len() + unavailable < fit => Err(e),
        _ => Ok(built),
    }
}

/// Builds replicas of `node` one at a time: see [`ReplicaFactory`]. A replica placed on this
/// process is constructed here (and, in cluster mode, made callable from the other nodes); one
/// placed on another node is constructed there, and reached through the request plane.
fn replica_factory<D: Deployment>(
    node: Arc<Node<D>>,
    ctx: BuildContext,
    rt: &tokio::runtime::Handle,
    user_config: &Arc<Mutex<Option<serde_json::Value>>>,
    placement: &Arc<Placement>,
) -> ReplicaFactory<D> {
    let (rt, user_config, placement) = (rt.clone(), user_config.clone(), placement.clone());
    Arc::new(move || {
        let (node, ctx) = (node.clone(), ctx.clone());
        let user_config = user_config.locked().clone();
        let (rt, placement) = (rt.clone(), placement.clone());
        let prepaid = placement.take_prepaid();
        Box::pin(async move {
            // Resources first (pending while they are short), held from here on.
            let placed = placement.place(prepaid).await?;
            let name = placed.info().deployment.clone();
            if !ctx.nodes.is_local(placed.node()) {
                let Some(cluster) = ctx.nodes.cluster() else {
                    return Err(ServeError::new(ErrorKind::Runtime)
                        .with_message("a replica was placed on another node outside cluster mode")
                        .in_deployment(&name));
                };
                let started = cluster
                    .start_remote(placed.node(), placed.info(), user_config)
                    .await?;
                let (info, held) = placed.into_parts();
                let held: Box<dyn Any + Send + Sync> = Box::new((held, started.guard));
                let replica = RemoteReplica::new(info, started.endpoint, Some(held));
                return Ok(NewReplica {
                    replica: Arc::new(replica),
                    published: None,
                });
            }
            let instance = construct(&node, &ctx, placed.info(), user_config, &rt).await?;
            let (info, held) = placed.into_parts();
            let replica: Arc<dyn Replica<D>> = Arc::new(LocalReplica::new(
                info.clone(),
                instance,
                Some(Box::new(held)),
            ));
            let published = ctx.nodes.cluster().map(|cluster| {
                let served = serving_handle(&name, &replica, &rt);
                cluster.publish_local(&info, served)
            });
            Ok(NewReplica { replica, published })
        })
    })
}

/// Constructs the instance of replica `info` of `node` and hands it its `user_config`.
pub(crate) async fn construct<D: Deployment>(
    node: &Node<D>,
    ctx: &BuildContext,
    info: &Arc<ReplicaInfo>,
    user_config: Option<serde_json::Value>,
    rt: &tokio::runtime::Handle,
) -> Result<Arc<D>, ServeError> {
    let name = &info.deployment;
    let instance = (node.ctor)(ctx)
        .in_replica(info.clone())
        .construct(rt)
        .await
        .map_err(|e| e.in_deployment(name))?;
    let instance = Arc::new(instance);
    // A replica gets its user_config before it takes any request.
    if let Some(config) = user_config {
        let Some(hook) = on_replica(info, D::__reconfigure(&instance, config)) else {
            return Err(ServeError::new(ErrorKind::Constructor)
                .with_message(
                    "a user_config is set, but the deployment has no `reconfigure` method to \
                     take it",
                )
                .in_deployment(name));
        };
        hook.await.map_err(|e| {
            ServeError::new(ErrorKind::Constructor)
                .with_message("reconfigure failed")
                .with_source(e)
                .in_deployment(name)
        })?;
    }
    Ok(instance)
}

/// What serves `replica` to callers on other nodes: a handle whose router holds only that
/// replica. It shares the replica's slots with this node's own router, so local and remote
/// callers see one load; it does not queue (each caller's router already held the request
/// back until the replica had a free slot in its view), so a replica called by several nodes at
/// once may run more than `max_ongoing_requests` (at most that many per calling node).
pub(crate) fn serving_handle<D: Deployment>(
    name: &Arc<str>,
    replica: &Arc<dyn Replica<D>>,
    rt: &tokio::runtime::Handle,
) -> Arc<dyn Served> {
    let settings = RouterSettings {
        max_ongoing: usize::MAX,
        max_queued: None,
        graceful_timeout: std::time::Duration::ZERO,
        metrics: None,
    };
    let router = RequestRouter::new(name.clone(), vec![replica.clone()], settings, rt.clone());
    Arc::new(DeploymentHandle::<D>::from_router(Arc::new(router)))
}

/// The mirror of one deployment of type `D`.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
struct MirrorOf<D> {
    pub(crate) node: Arc<Node<D>>,
    pub(crate) ctx: BuildContext,
    pub(crate) router: Arc<RequestRouter<D>>,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) logging: ReplicaLogging,
}

impl<D: Deployment> Mirror for MirrorOf<D> {
    fn name(&self) -> &Arc<str> {
        self.router.name()
    }

    fn logging(&self) -> ReplicaLogging {
        self.logging
    }

    fn start_local(
        self: Arc<Self>,
        info: ReplicaInfo,
        user_config: Option<serde_json::Value>,
    ) -> BoxFuture<'static, Result<Arc<dyn Served>, ServeError>> {
        let info = Arc::new(info.measured(self.ctx.nodes.metrics()));
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
        if self
            .router
            .replicas()
            .iter()
            .any(|r| r.info().replica_id == id)
        {
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
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn remote_ids_now(&self) -> Vec<usize> {
        self.router
            .replicas()
            .iter()
            .filter(|r| matches!(r.endpoint(), Endpoint::Remote(_)))
            .map(|r| r.info().replica_id)
            .collect()
    }
}
