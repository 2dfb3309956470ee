//! Applications by name, as in Ray Serve: [`RunOptions`] names an application (and where it is
//! served over HTTP) when it is run; running one under a name that runs already deploys a new
//! version of it; [`Serve::delete`] takes one away; [`Serve::get_app_handle`] and
//! [`Serve::get_deployment_handle`] find a running one's handles by name.
//!
//! A new version takes over, in place, each deployment of the running version that has the same
//! name and type: the deployment keeps its router (so handles to it stay good, and nothing
//! queued is dropped) while its replicas are replaced, rolling (see `control/redeploy.rs`).
//! Deployments of the new version only are deployed as usual. Once the new version is up, its
//! HTTP route (if any) takes the place of the old one's, and the deployments of the old version
//! only are retired like a deleted application's: they first finish the requests in flight,
//! HTTP requests that had already found the old route included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Serve;
use super::options::RunOptions;
use crate::api::deployment::Deployment;
use crate::api::handle::DeploymentHandle;
use crate::config::DeploymentConfig;
use crate::control::application::Application;
use crate::control::managed::ManagedDeployment;
use crate::control::registry::AppRecord;
use crate::error::{ErrorKind, ServeError};
use crate::http::{self, Ingress};
use crate::util::blocking;
use crate::util::sync::Lock;

/// Makes an application's HTTP ingress from its root's handle.
pub(super) type MakeIngress<D> = Box<dyn FnOnce(DeploymentHandle<D>) -> Arc<dyn Ingress> + Send>;

impl Serve {
    /// Deploys `app` like [`run`](Self::run), as the application `options` names (with the
    /// configurations it gives, if any): under a name that runs already, as a new version of
    /// that application. Each of its deployments with the same name and type as one of the
    /// running version's takes that one over: handles to it stay good, and its replicas are
    /// replaced rolling (new ones are constructed before old ones leave routing; no request is
    /// dropped); this returns once no replica of the old version is left in them. Deployments of
    /// the old version only are then retired (they finish their requests first). If the new
    /// version cannot be deployed (a constructor keeps failing), the running version is left as
    /// it was and this fails with the constructor's error.
    ///
    /// For an application served over HTTP, use [`run_http`](Self::run_http) with the same
    /// options and a route prefix; `run_with` refuses options with a route prefix. A new version
    /// run here (without HTTP) of an application that was served over HTTP is no longer served.
    ///
    /// Blocks the calling thread, like `run`; from async code, use
    /// [`run_with_async`](Self::run_with_async).
    pub fn run_with<D: Deployment>(
        &self,
        app: Application<D>,
        options: RunOptions,
    ) -> Result<DeploymentHandle<D>, ServeError> {
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("Serve::run"));
        }
        futures::executor::block_on(self.deploy(app, options, None)?)
    }

    /// Like [`run_with`](Self::run_with), for async code.
    pub async fn run_with_async<D: Deployment>(
        &self,
        app: Application<D>,
        options: RunOptions,
    ) -> Result<DeploymentHandle<D>, ServeError> {
        self.deploy(app, options, None)?.await
    }

    /// Deletes the application `app_name`: its HTTP route, if it has one, answers 404 at once;
    /// its deployments take no new calls from outside once the HTTP requests that had already
    /// found the route got to them; the requests in flight finish (calls they make included),
    /// for up to each deployment's `graceful_shutdown_timeout_s` (past it they fail with
    /// [`ErrorKind::ShutDown`]); then every replica stops. Calls through handles to its
    /// deployments fail from then on with [`ErrorKind::NotFound`]. Blocks until its replicas
    /// stopped. Fails with [`ErrorKind::NotFound`], changing nothing, when no application of
    /// that name runs.
    ///
    /// In cluster mode, the head runs the one application its workers mirror: it cannot be
    /// deleted (an error says so).
    pub fn delete(&self, app_name: &str) -> Result<(), ServeError> {
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("Serve::delete"));
        }
        let rt = self.live_handle()?;
        let registry = self.inner.registry.clone();
        let proxy = self.inner.http.locked().clone();
        let clustered = self.inner.nodes.cluster().is_some();
        let name = app_name.to_owned();
        let task = rt.spawn(async move {
            let (record, ingress) = {
                let _changing = registry.changing().await;
                // Unknown names fail here, with the names there are.
                registry.lookup(&name, None)?;
                if clustered {
                    return Err(in_cluster_mode("deleted"));
                }
                let ingress = proxy.and_then(|proxy| proxy.unmount(&name));
                let record = registry.remove(&name).ok_or_else(ServeError::shut_down)?;
                (record, ingress)
            };
            tracing::info!(application = %name, "deleting the application");
            retire(record.deployments, ingress).await;
            Ok(())
        });
        futures::executor::block_on(task).unwrap_or_else(|_| Err(ServeError::shut_down()))
    }

    /// The handle of application `app_name`'s ingress (root) deployment, of type `D` (Ray's
    /// `serve.get_app_handle`). Fails with [`ErrorKind::NotFound`] when no application of that
    /// name runs (the error lists those that do), and with [`ErrorKind::Runtime`] when its
    /// ingress is not a `D` (the error names its type).
    ///
    /// ```
    /// use serve_core::prelude::*;
    /// use serve_core::RunOptions;
    ///
    /// #[deployment]
    /// #[derive(Default)]
    /// pub struct Echo;
    ///
    /// #[deployment]
    /// impl Echo {
    ///     pub fn call(&self, text: String) -> String { text }
    /// }
    ///
    /// let serve = Serve::start()?;
    /// serve.run_with(Echo::bind(), RunOptions::named("echo"))?;
    /// let echo = serve.get_app_handle::<Echo>("echo")?;
    /// assert_eq!(echo.remote("hi").result()?, "hi");
    /// assert_eq!(serve.get_app_handle::<Echo>("nope").unwrap_err().kind(), ErrorKind::NotFound);
    /// # serve.shutdown();
    /// # Ok::<(), ServeError>(())
    /// ```
    pub fn get_app_handle<D: Deployment>(
        &self,
        app_name: &str,
    ) -> Result<DeploymentHandle<D>, ServeError> {
        let deployment = self.inner.registry.lookup(app_name, None)?;
        typed(&*deployment, app_name)
    }

    /// The handle of deployment `deployment_name` of application `app_name`, of type `D` (Ray's
    /// `serve.get_deployment_handle`). Fails with [`ErrorKind::NotFound`] when no application of
    /// that name runs, or it has no deployment of that name (the error lists the names there
    /// are), and with [`ErrorKind::Runtime`] when the deployment is not a `D`.
    pub fn get_deployment_handle<D: Deployment>(
        &self,
        deployment_name: &str,
        app_name: &str,
    ) -> Result<DeploymentHandle<D>, ServeError> {
        let deployment = self
            .inner
            .registry
            .lookup(app_name, Some(deployment_name))?;
        typed(&*deployment, app_name)
    }

    /// Whether this instance is the head of a cluster (which runs one application only).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn clustered(&self) -> bool {
        self.inner.nodes.cluster().is_some()
    }

    /// [`update_deployment`](Self::update_deployment) for deployment `deployment_name` of
    /// application `app_name` (the control API's in-place updates): the same rules, and
    /// [`ErrorKind::NotFound`] for a name that does not run.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn update_app_deployment(
        &self,
        app_name: &str,
        deployment_name: &str,
        update: crate::control::update::DeploymentUpdate,
    ) -> Result<(), ServeError> {
        if blocking::on_serve_async_thread() {
            return Err(ServeError::blocking_in_async("Serve::update_deployment"));
        }
        let deployment = self
            .inner
            .registry
            .lookup(app_name, Some(deployment_name))?;
        let rt = self.live_handle()?;
        futures::executor::block_on(rt.spawn(deployment.update(update)))
            .unwrap_or_else(|_| Err(ServeError::shut_down()))
    }

    /// Checks `options` and starts deploying `app` as they say on the instance's runtime
    /// (served over HTTP through the ingress `ingress` makes, if given). The future resolves to
    /// the root's handle once the application runs (see [`run_with`](Self::run_with)).
    pub(super) fn deploy<D: Deployment>(
        &self,
        app: Application<D>,
        options: RunOptions,
        ingress: Option<MakeIngress<D>>,
    ) -> Result<impl Future<Output = Result<DeploymentHandle<D>, ServeError>> + use<D>, ServeError>
    {
        let name = options.app_name().to_owned();
        if name.is_empty() {
            return Err(ServeError::new(ErrorKind::Runtime)
                .with_message("an application's name must not be empty"));
        }
        let (http, prefix) = match (ingress, options.route_prefix) {
            (Some(ingress), prefix) => {
                let prefix = prefix.unwrap_or_else(|| "/".into());
                http::normalized_prefix(&prefix)?;
                (Some((ingress, self.proxy()?)), Some(prefix))
            }
            (None, Some(prefix)) => {
                return Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
                    "a route prefix (`{prefix}`) serves application `{name}` over HTTP: run it \
                     with `run_http` (its ingress's `call` taking a `Request`), not `run_with`"
                )));
            }
            (None, None) => (None, None),
        };
        let configs = match options.deployment_configs {
            Some(configs) => {
                check_names(&app, &configs)?;
                configs
            }
            None => app.deployment_configs(),
        };
        for config in &configs {
            config.validate()?;
        }
        let rt = self.live_handle()?;
        // Without HTTP, an earlier version's route (if any) goes.
        let proxy = match &http {
            Some((_, proxy)) => Some(proxy.clone()),
            None => self.inner.http.locked().clone(),
        };
        let (registry, nodes) = (self.inner.registry.clone(), self.inner.nodes.clone());
        let task = rt.clone().spawn(async move {
            let _changing = registry.changing().await;
            if let (Some(prefix), Some(proxy)) = (&prefix, &proxy) {
                proxy.check_mount(prefix, &name)?;
            }
            let previous = registry.deployments_of(&name);
            if !previous.is_empty() && nodes.cluster().is_some() {
                return Err(in_cluster_mode("replaced by a new version"));
            }
            // The route label of the application's metrics, set before its replicas start
            // (and put back if the new version fails).
            let metrics = nodes.metrics().clone();
            let earlier_route = metrics.route_of(&name);
            let route = prefix.as_deref().map(http::normalized_prefix).transpose()?;
            metrics.set_route(&name, route.as_deref());
            let deployed = match app
                .deploy(rt.clone(), configs, nodes, name.as_str().into(), &previous)
                .await
            {
                Ok(deployed) => deployed,
                Err(e) => {
                    let earlier = (!earlier_route.is_empty()).then_some(earlier_route.as_str());
                    metrics.set_route(&name, earlier);
                    return Err(e);
                }
            };
            let replaced_ingress = match (http, &prefix) {
                (Some((make, proxy)), Some(prefix)) => {
                    proxy.mount(prefix, &name, make(deployed.handle.clone()))?
                }
                _ => proxy.and_then(|proxy| proxy.unmount(&name)),
            };
            let record = AppRecord {
                name: name.clone(),
                route_prefix: prefix,
                deployments: deployed.deployments.clone(),
            };
            if let Some(old) = registry.put(record) {
                let kept = &deployed.deployments;
                let leftovers: Vec<_> = old
                    .deployments
                    .into_iter()
                    .filter(|d| !kept.iter().any(|k| same(k, d)))
                    .collect();
                tracing::info!(
                    application = %name,
                    "a new version is up; {} deployment(s) of the old one retire",
                    leftovers.len()
                );
                if !leftovers.is_empty() {
                    rt.spawn(retire(leftovers, replaced_ingress));
                }
            }
            Ok(deployed.handle)
        });
        Ok(async move { task.await.unwrap_or_else(|_| Err(ServeError::shut_down())) })
    }
}

/// The configurations must name the application's deployments, in its order.
fn check_names<D: Deployment>(
    app: &Application<D>,
    configs: &[DeploymentConfig],
) -> Result<(), ServeError> {
    let expected: Vec<String> = app
        .deployment_configs()
        .into_iter()
        .map(|c| c.name)
        .collect();
    let given: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
    if expected == given {
        return Ok(());
    }
    Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
        "the configurations name the deployments {given:?}, but the application has {expected:?}"
    )))
}

/// Whether `a` and `b` are the same deployment.
fn same(a: &Arc<dyn ManagedDeployment>, b: &Arc<dyn ManagedDeployment>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// `deployment`'s handle if it is a `D`; else an error naming both types.
fn typed<D: Deployment>(
    deployment: &dyn ManagedDeployment,
    app: &str,
) -> Result<DeploymentHandle<D>, ServeError> {
    match deployment.handle().downcast::<DeploymentHandle<D>>() {
        Ok(handle) => Ok(*handle),
        Err(_) => Err(ServeError::new(ErrorKind::Runtime).with_message(format!(
            "deployment `{}` of application `{app}` is a `{}`, not a `{}`",
            deployment.name(),
            deployment.type_name(),
            std::any::type_name::<D>()
        ))),
    }
}

/// What cluster mode refuses to do to its application.
fn in_cluster_mode(what: &str) -> ServeError {
    ServeError::new(ErrorKind::Runtime).with_message(format!(
        "in cluster mode the head runs the one application its workers mirror (built from the \
         same binary): it cannot be {what}; restart the cluster with the new version instead"
    ))
}

/// How often a retiring application looks whether its requests finished (retiring is rare, and
/// a wake-up per finished request would tax every request).
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Retires the deployments of a deleted application (or of a replaced version only), served
/// over HTTP through `ingress` until now: HTTP requests that found its route before it went
/// reach their ingress first; then the deployments take no new calls from outside, finish what
/// they run and what waits (calls made on behalf of those requests included), for up to the
/// longest of their graceful shutdown timeouts in all; then their replicas leave routing and
/// stop. Returns whether everything finished in time.
pub(super) async fn retire(
    deployments: Vec<Arc<dyn ManagedDeployment>>,
    ingress: Option<Arc<dyn Ingress>>,
) -> bool {
    let timeout = deployments
        .iter()
        .map(|d| d.graceful_timeout())
        .max()
        .unwrap_or_default();
    let deadline = Instant::now() + timeout;
    // Each request the proxy routed to the ingress holds a clone of it until it has answered.
    if let Some(ingress) = &ingress {
        while Arc::strong_count(ingress) > 1 && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
    deployments.iter().for_each(|d| d.clone().close());
    let busy = || deployments.iter().map(|d| d.in_progress()).sum::<usize>() > 0;
    while busy() && Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let finished = !busy();
    for deployment in &deployments {
        deployment.retire();
    }
    finished
}
