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
//!
//! Deploying a new version of a running application (`run` under a name that runs already)
//! takes over each deployment of the previous version that has the same name and type, in place
//! (see `control/redeploy.rs`): its router, and so every handle to it, stays; its replicas are
//! replaced, rolling. Deployments of the new version only are deployed as above; the caller
//! retires those of the previous version only.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use super::managed::ManagedDeployment;
use super::mirror::Mirror;
use super::nodes::NodeSet;
use super::placement;
use crate::api::deployment::Deployment;
use crate::api::handle::DeploymentHandle;
use crate::config::DeploymentConfig;
use crate::error::{BoxError, ErrorKind, ServeError};
use crate::request::context::{self, ReplicaInfo};
use crate::util::panic;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
    pub(crate) fn in_replica(self, replica: Arc<ReplicaInfo>) -> Self
    where
        D: 'static,
    {
        match self {
            Self::Sync(f) => Self::Sync(Box::new(move || context::constructing_sync(replica, f))),
            Self::Async(fut) => Self::Async(Box::pin(context::constructing(replica, fut))),
        }
    }

    pub(crate) async fn construct(self, rt: &tokio::runtime::Handle) -> Result<D, ServeError>
    where
        D: Send + 'static,
    {
        let outcome = match self {
            Self::Sync(f) => match panic::on_blocking_pool(rt, f).await {
                Some(outcome) => outcome,
                None => return Err(ServeError::shut_down()),
            },
            Self::Async(fut) => panic::catch_async(fut).await,
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
    /// The nodes replicas are placed on (this process alone, unless in cluster mode).
    pub(crate) nodes: Arc<NodeSet>,
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

pub(crate) struct Node<D> {
    pub(crate) config: DeploymentConfig,
    pub(crate) children: Vec<AppRef>,
    pub(crate) ctor: Box<CtorFn<D>>,
}

/// A type-erased node of the application graph.
pub(crate) trait AnyNode: Send + Sync {
    fn id(&self) -> usize;
    fn config(&self) -> &DeploymentConfig;
    fn children(&self) -> &[AppRef];
    /// Deploys the node as `config` says, or, when `previous` (the deployment of the same name
    /// in the application's previous version) has its type, prepares to take that one over.
    fn deploy(
        self: Arc<Self>,
        ctx: BuildContext,
        app: Arc<str>,
        config: DeploymentConfig,
        rt: tokio::runtime::Handle,
        ingress: bool,
        previous: Option<Arc<dyn ManagedDeployment>>,
    ) -> BoxFuture<'static, Result<Deployed, ServeError>>;
    /// Builds its mirror on a cluster worker (no replicas until the head places some).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn mirror(
        self: Arc<Self>,
        ctx: BuildContext,
        app: Arc<str>,
        config: DeploymentConfig,
        rt: tokio::runtime::Handle,
    ) -> (Arc<dyn Any + Send + Sync>, Arc<dyn Mirror>);
}

/// A deployed node: its handle (a `DeploymentHandle<D>`, type-erased) and its router's status.
pub(crate) struct Deployed {
    pub(crate) handle: Arc<dyn Any + Send + Sync>,
    pub(crate) status: Arc<dyn ManagedDeployment>,
    /// When it takes over a deployment of the application's previous version: how.
    pub(crate) upgrade: Option<Box<dyn Upgrade>>,
}

/// A deployment of the application's previous version that the new version takes over in
/// place, once every node of the new version is ready (see `control/redeploy.rs`).
pub(crate) trait Upgrade: Send {
    /// Switches the deployment to the new version: its replicas are replaced, rolling.
    fn commit(&mut self);
    /// Resolves once no replica of the previous version is left in routing; fails with the
    /// constructor's error once too many constructions of the new version failed.
    fn finished(&self) -> BoxFuture<'static, Result<(), ServeError>>;
    /// Back to the version before [`commit`](Self::commit): its replicas serve on, and those
    /// of the new version are replaced by ones of the previous.
    fn roll_back(&mut self);
}

/// A deployed application: its root's handle and each deployment's state, children first.
pub(crate) struct DeployedApp<D: Deployment> {
    pub(crate) handle: DeploymentHandle<D>,
    pub(crate) deployments: Vec<Arc<dyn ManagedDeployment>>,
}

/// A reference to any node of an application graph (a child of a bound deployment).
#[doc(hidden)]
#[derive(Clone)]
pub struct AppRef(Arc<dyn AnyNode>);

/// A bound deployment, ready to run: what `Type::bind(..)` returns.
///
/// Pass it to [`run`](crate::run) / [`Serve::run`](crate::Serve::run) to deploy it (with everything it
/// was bound with), or to another deployment's `bind` where that deployment's constructor takes a
/// `DeploymentHandle<D>` (or a `Vec`, `Option`, map, array or tuple of them: see [`Bindable`]).
/// Clones are the same deployment: binding one application into two parents, or twice into one,
/// deploys it once, shared.
///
/// [`Bindable`]: crate::Bindable
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
    pub fn __new(
        children: impl IntoIterator<Item = AppRef>,
        ctor: impl Fn(&BuildContext) -> Constructor<D> + Send + Sync + 'static,
    ) -> Self {
        Self {
            node: Arc::new(Node {
                config: D::__deployment_config(),
                children: children.into_iter().collect(),
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
    /// gives them, possibly changed) as the application `app`, and returns the root's handle
    /// and every deployment's state. `previous` holds the deployments of the application's
    /// previous version by name: those the new version has, with the same type, are taken over in
    /// place, their replicas replaced rolling; the call returns once no replica of the previous
    /// version is left in them. On failure nothing of the previous version has changed (a
    /// rollout that fails is rolled back) and what was deployed anew is dropped.
    pub(crate) async fn deploy(
        self,
        rt: tokio::runtime::Handle,
        configs: Vec<DeploymentConfig>,
        nodes: Arc<NodeSet>,
        app: Arc<str>,
        previous: &HashMap<String, Arc<dyn ManagedDeployment>>,
    ) -> Result<DeployedApp<D>, ServeError> {
        let order = post_order(&self.__node());
        // A replica that could never fit fails the whole application before anything is deployed.
        for config in &configs {
            placement::check_feasible(&nodes, &config.name, &config.resources)?;
        }
        let mut ctx = BuildContext {
            handles: HashMap::new(),
            nodes,
        };
        let mut deployments = Vec::with_capacity(order.len());
        let mut upgrades = Vec::new();
        let root = order.len().saturating_sub(1);
        for (i, (node, config)) in order.iter().zip(configs).enumerate() {
            let before = previous.get(&config.name).cloned();
            let deployed = node
                .0
                .clone()
                .deploy(
                    ctx.clone(),
                    app.clone(),
                    config,
                    rt.clone(),
                    i == root,
                    before,
                )
                .await?;
            ctx.handles.insert(node.0.id(), deployed.handle);
            deployments.push(deployed.status);
            upgrades.extend(deployed.upgrade);
        }
        // Every node is ready: the deployments taken over switch to the new version together.
        for upgrade in &mut upgrades {
            upgrade.commit();
        }
        let rollouts = upgrades.iter().map(|u| u.finished());
        let failed = futures::future::join_all(rollouts)
            .await
            .into_iter()
            .find_map(Result::err);
        if let Some(error) = failed {
            for upgrade in &mut upgrades {
                upgrade.roll_back();
            }
            return Err(error);
        }
        Ok(DeployedApp {
            handle: ctx.handle(&self),
            deployments,
        })
    }
}

impl<D: Deployment> Application<D> {
    /// Builds the graph's mirror on a cluster worker (see [`Mirror`]): every deployment's router,
    /// with no replica until the head places one; `configs` as [`deployment_configs`] gives them
    /// (the head's). Returns the root's handle and each deployment's mirror.
    ///
    /// [`deployment_configs`]: Self::deployment_configs
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn mirror(
        &self,
        rt: tokio::runtime::Handle,
        configs: Vec<DeploymentConfig>,
        nodes: Arc<NodeSet>,
    ) -> (DeploymentHandle<D>, Vec<Arc<dyn Mirror>>) {
        let order = post_order(&self.__node());
        // Named as `deploy` names it.
        let app: Arc<str> = Arc::from(configs.last().map_or("", |c| c.name.as_str()));
        let mut ctx = BuildContext {
            handles: HashMap::new(),
            nodes,
        };
        let mut mirrors = Vec::with_capacity(order.len());
        for (node, config) in order.iter().zip(configs) {
            let (handle, mirror) =
                node.0
                    .clone()
                    .mirror(ctx.clone(), app.clone(), config, rt.clone());
            ctx.handles.insert(node.0.id(), handle);
            mirrors.push(mirror);
        }
        (ctx.handle(self), mirrors)
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
