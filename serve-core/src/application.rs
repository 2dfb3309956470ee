//! Bound applications: the graph `Type::bind(..)` builds, and how it is deployed.
//!
//! `Adder::bind(1)` does not construct anything: it records the deployment's configuration and a
//! constructor closure holding the bound arguments. `Ingress::bind(adder_app, multiplier_app)`
//! records its children too. Deploying the root walks the graph children-first; each node is
//! deployed once however many parents share it (identity is the node, so clones of one
//! [`Application`] are one deployment), gets a unique name (`Inner`, `Inner_1`, ..), and constructs
//! its replicas in parallel. A parent's constructor then receives its children's handles.
//!
//! Each replica reserves its resources before its constructor runs (see [`Placement`]); the
//! initial replicas that do not fit are left to the controller, pending until resources free up.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;

use crate::blocking::allow_blocking;
use crate::context::{self, ReplicaInfo};
use crate::controller;
use crate::deployment::{Deployment, DeploymentConfig, DeploymentHandle};
use crate::error::{BoxError, ErrorKind, ServeError};
use crate::resources::{self, Placement, ResourcePool};
use crate::router::{NewReplica, Router, RouterStatus};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How one replica of a deployment is built: the generated `bind` returns one per replica.
#[doc(hidden)]
pub enum Constructor<D> {
    /// A synchronous `new` (or `Default`): run on the blocking pool.
    Sync(Box<dyn FnOnce() -> Result<D, BoxError> + Send>),
    /// An `async fn new`.
    Async(BoxFuture<'static, Result<D, BoxError>>),
}

impl<D> Constructor<D> {
    pub fn sync(f: impl FnOnce() -> Result<D, BoxError> + Send + 'static) -> Self {
        Self::Sync(Box::new(f))
    }

    pub fn from_async(f: impl Future<Output = Result<D, BoxError>> + Send + 'static) -> Self {
        Self::Async(Box::pin(f))
    }

    /// The constructor of `replica`: it sees its replica (and resources) in `replica_context()`.
    fn in_replica(self, replica: Arc<ReplicaInfo>) -> Self
    where
        D: 'static,
    {
        match self {
            Self::Sync(f) => Self::Sync(Box::new(move || context::constructing_sync(replica, f))),
            Self::Async(fut) => Self::Async(Box::pin(context::constructing(replica, fut))),
        }
    }

    async fn construct(self, rt: &tokio::runtime::Handle) -> Result<D, ServeError>
    where
        D: Send + 'static,
    {
        let outcome = match self {
            Self::Sync(f) => {
                match rt
                    .spawn_blocking(move || {
                        allow_blocking(|| std::panic::catch_unwind(AssertUnwindSafe(f)))
                    })
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => return Err(ServeError::shut_down()),
                }
            }
            Self::Async(fut) => AssertUnwindSafe(fut).catch_unwind().await,
        };
        match outcome {
            Ok(Ok(instance)) => Ok(instance),
            Ok(Err(e)) => Err(ServeError::new(ErrorKind::Constructor).with_source(e)),
            Err(panic) => {
                let panic = ServeError::panic(panic);
                Err(ServeError::new(ErrorKind::Constructor).with_source(Box::new(panic)))
            }
        }
    }
}

/// Gives a constructor the handles of the deployments it was bound with.
#[doc(hidden)]
#[derive(Clone)]
pub struct BuildContext {
    handles: HashMap<usize, Arc<dyn Any + Send + Sync>>,
    /// The instance's resources, which replicas reserve from.
    pool: ResourcePool,
}

impl BuildContext {
    /// The handle of the already-deployed `app`.
    pub fn handle<D: Deployment>(&self, app: &Application<D>) -> DeploymentHandle<D> {
        self.handles
            .get(&app.node.id())
            .and_then(|h| h.downcast_ref::<DeploymentHandle<D>>())
            .cloned()
            .expect("children are deployed before their parents")
    }
}

type CtorFn<D> = dyn Fn(&BuildContext) -> Constructor<D> + Send + Sync;

struct Node<D> {
    config: DeploymentConfig,
    children: Vec<AppRef>,
    ctor: Box<CtorFn<D>>,
}

/// A type-erased node of the application graph.
trait AnyNode: Send + Sync {
    fn id(&self) -> usize;
    fn config(&self) -> &DeploymentConfig;
    fn children(&self) -> &[AppRef];
    fn deploy(
        self: Arc<Self>,
        ctx: BuildContext,
        app: Arc<str>,
        config: DeploymentConfig,
        rt: tokio::runtime::Handle,
    ) -> BoxFuture<'static, Result<Deployed, ServeError>>;
}

/// A deployed node: its handle (a `DeploymentHandle<D>`, type-erased) and its router's status.
struct Deployed {
    handle: Arc<dyn Any + Send + Sync>,
    status: Arc<dyn RouterStatus>,
}

/// Builds one more replica of a deployment (for autoscaling and recovery): constructs it and
/// hands it its `user_config`.
/// It waits (pending) until the replica's resources are free, which it holds from then on.
pub(crate) type ReplicaFactory<D> =
    Arc<dyn Fn() -> BoxFuture<'static, Result<NewReplica<D>, ServeError>> + Send + Sync>;

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
        Box::pin(async move {
            let name: Arc<str> = Arc::from(config.name.as_str());
            // The current user_config: updates reach replicas constructed later too.
            let user_config = Arc::new(std::sync::Mutex::new(config.user_config.clone()));
            let placement = Arc::new(Placement::new(
                ctx.pool.clone(),
                config.resources.clone(),
                app.clone(),
                name.clone(),
            ));
            let factory: ReplicaFactory<D> = {
                let (node, ctx, rt, name) = (self.clone(), ctx, rt.clone(), name.clone());
                let user_config = user_config.clone();
                let placement = placement.clone();
                Arc::new(move || {
                    let constructor = (node.ctor)(&ctx);
                    let user_config = user_config
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    let (rt, name) = (rt.clone(), name.clone());
                    let (placement, prepaid) = (placement.clone(), placement.take_prepaid());
                    Box::pin(async move {
                        // Resources first (pending while they are short), held from here on.
                        let placed = placement.place(prepaid).await?;
                        let instance = Arc::new(
                            constructor
                                .in_replica(placed.info().clone())
                                .construct(&rt)
                                .await
                                .map_err(|e| e.in_deployment(&name))?,
                        );
                        // A replica gets its user_config before it takes any request.
                        if let Some(config) = user_config {
                            let Some(hook) = D::__reconfigure(&instance, config) else {
                                return Err(ServeError::new(ErrorKind::Constructor)
                                    .with_message(
                                        "a user_config is set, but the deployment has no \
                                         `reconfigure` method to take it",
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
                        Ok(NewReplica {
                            instance,
                            placed: Some(placed),
                            generation: 0,
                        })
                    })
                })
            };
            let initial = match &config.autoscaling {
                Some(autoscaling) => autoscaling.initial(),
                None => config.num_replicas,
            };
            // The replicas that fit now are constructed now; the controller starts the others
            // (pending) when resources are given back.
            let fit = placement.reserve_upfront(initial);
            let constructors: Vec<_> = (0..fit).map(|_| factory()).collect();
            let mut instances = Vec::with_capacity(constructors.len());
            for result in futures::future::join_all(constructors).await {
                instances.push(result?);
            }
            let router = Arc::new(
                Router::new(
                    app,
                    name,
                    instances,
                    config.max_ongoing_requests,
                    config.max_queued_requests,
                    rt.clone(),
                )
                .with_settings(config.autoscaling.is_some(), user_config)
                .with_placement(placement.clone())
                .with_config(config.clone()),
            );
            router.set_target(initial);
            placement.set_owner(Arc::downgrade(&router) as _, router.wake_signal());
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
            rt.spawn(controller::run(
                Arc::downgrade(&router),
                factory,
                config.clone(),
            ));
            Ok(Deployed {
                handle: Arc::new(DeploymentHandle::<D>::from_router(router.clone())),
                status: router,
            })
        })
    }
}

/// A reference to any node of an application graph (a child of a bound deployment).
#[doc(hidden)]
#[derive(Clone)]
pub struct AppRef(Arc<dyn AnyNode>);

/// A bound deployment, ready to run: what `Type::bind(..)` returns.
///
/// Pass it to [`run`](crate::run) / [`Serve::run`](crate::Serve::run) to deploy it (with everything it
/// was bound with), or to another deployment's `bind` where that deployment's constructor takes a
/// `DeploymentHandle<D>`. Clones are the same deployment: binding one application into two parents
/// deploys it once, shared.
pub struct Application<D> {
    node: Arc<Node<D>>,
    _marker: PhantomData<fn() -> D>,
}

impl<D> Clone for Application<D> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
            _marker: PhantomData,
        }
    }
}

impl<D> std::fmt::Debug for Application<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("config", &self.node.config)
            .finish_non_exhaustive()
    }
}

impl<D: Deployment> Application<D> {
    #[doc(hidden)]
    pub fn __new<const N: usize>(
        children: [AppRef; N],
        ctor: impl Fn(&BuildContext) -> Constructor<D> + Send + Sync + 'static,
    ) -> Self {
        Self {
            node: Arc::new(Node {
                config: D::__deployment_config(),
                children: children.into(),
                ctor: Box::new(ctor),
            }),
            _marker: PhantomData,
        }
    }

    #[doc(hidden)]
    pub fn __node(&self) -> AppRef {
        AppRef(self.node.clone())
    }

    /// The configuration this application's root deployment will run with.
    pub fn config(&self) -> &DeploymentConfig {
        &self.node.config
    }

    /// The configuration of every deployment in the graph, children first, with the unique names
    /// they will be deployed under.
    pub fn deployment_configs(&self) -> Vec<DeploymentConfig> {
        let order = post_order(&self.__node());
        order
            .iter()
            .zip(unique_names(&order))
            .map(|(node, name)| {
                let mut config = node.0.config().clone();
                config.name = name;
                config
            })
            .collect()
    }

    /// Deploys the graph on `rt` with `configs` (as [`deployment_configs`](Self::deployment_configs)
    /// gives them, possibly changed) and returns the root's handle and every router's status.
    pub(crate) async fn deploy(
        self,
        rt: tokio::runtime::Handle,
        configs: Vec<DeploymentConfig>,
        pool: ResourcePool,
    ) -> Result<(DeploymentHandle<D>, Vec<Arc<dyn RouterStatus>>), ServeError> {
        let order = post_order(&self.__node());
        // The application is named after its root (ingress) deployment.
        let app: Arc<str> = Arc::from(configs.last().map_or("", |c| c.name.as_str()));
        // A replica that could never fit fails the whole application before anything is deployed.
        for config in &configs {
            resources::check_feasible(&pool, &config.name, &config.resources)?;
        }
        let mut ctx = BuildContext {
            handles: HashMap::new(),
            pool,
        };
        let mut statuses = Vec::with_capacity(order.len());
        for (node, config) in order.iter().zip(configs) {
            let deployed = node
                .0
                .clone()
                .deploy(ctx.clone(), app.clone(), config, rt.clone())
                .await?;
            ctx.handles.insert(node.0.id(), deployed.handle);
            statuses.push(deployed.status);
        }
        let handle = ctx.handle(&self);
        Ok((handle, statuses))
    }
}

/// Children before parents, each node once.
fn post_order(root: &AppRef) -> Vec<AppRef> {
    fn visit(node: &AppRef, seen: &mut HashSet<usize>, out: &mut Vec<AppRef>) {
        if !seen.insert(node.0.id()) {
            return;
        }
        for child in node.0.children() {
            visit(child, seen, out);
        }
        out.push(node.clone());
    }
    let mut out = Vec::new();
    visit(root, &mut HashSet::new(), &mut out);
    out
}

/// `Inner`, `Inner_1`, `Inner_2`, .. for distinct deployments that share a name.
fn unique_names(order: &[AppRef]) -> Vec<String> {
    let mut taken = HashSet::new();
    order
        .iter()
        .map(|node| {
            let base = &node.0.config().name;
            let mut name = base.clone();
            let mut k = 0;
            while !taken.insert(name.clone()) {
                k += 1;
                name = format!("{base}_{k}");
            }
            name
        })
        .collect()
}
