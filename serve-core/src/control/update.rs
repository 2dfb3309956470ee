//! [`DeploymentUpdate`]: a change to a running deployment, and how it is applied.

use std::sync::Arc;

use super::controller;
use super::state::DeploymentState;
use crate::api::deployment::{Deployment, on_replica};
use crate::config::{AutoscalingConfig, ReplicaResources};
use crate::dataplane::replica::Endpoint;
use crate::dataplane::router::RouterSettings;
use crate::error::{ErrorKind, ServeError};
use crate::util::counted::Counted;
use crate::util::sync::Lock;

/// A change to a running deployment: see [`Serve::update_deployment`](crate::Serve::update_deployment).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct DeploymentUpdate {
    /// The new number of replicas (not for a deployment that autoscales).
    pub num_replicas: Option<usize>,
    /// A new `user_config`, handed to every replica's `reconfigure` (and to replicas started later).
    pub user_config: Option<serde_json::Value>,
    /// A new number of requests one replica runs at once; applies to running replicas at once.
    pub max_ongoing_requests: Option<usize>,
    /// New resources per replica: replicas are replaced, rolling, by ones that reserve these.
    pub resources: Option<ReplicaResources>,
    /// A new autoscaling config: the deployment autoscales by it from now on (it may have had a
    /// fixed count), starting from its current replica count brought within the new bounds.
    pub autoscaling_config: Option<AutoscalingConfig>,
    /// A new `graceful_shutdown_timeout_s` for replicas that stop from now on.
    pub graceful_shutdown_timeout_s: Option<f64>,
    /// A new `health_check_period_s`.
    pub health_check_period_s: Option<f64>,
    /// A new `health_check_timeout_s`.
    pub health_check_timeout_s: Option<f64>,
    /// Replace every replica by a newly constructed one, rolling (e.g. to load a new model file).
    pub restart: bool,
}

impl DeploymentUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of replicas.
    pub fn num_replicas(mut self, n: usize) -> Self {
        self.num_replicas = Some(n);
        self
    }

    /// Sets the `user_config`.
    pub fn user_config(mut self, config: serde_json::Value) -> Self {
        self.user_config = Some(config);
        self
    }

    /// Sets how many requests one replica runs at once.
    pub fn max_ongoing_requests(mut self, n: usize) -> Self {
        self.max_ongoing_requests = Some(n);
        self
    }

    /// Sets a new autoscaling config (the deployment autoscales by it from now on).
    pub fn autoscaling_config(mut self, config: AutoscalingConfig) -> Self {
        self.autoscaling_config = Some(config);
        self
    }

    /// Sets `graceful_shutdown_timeout_s`.
    pub fn graceful_shutdown_timeout_s(mut self, s: f64) -> Self {
        self.graceful_shutdown_timeout_s = Some(s);
        self
    }

    /// Sets `health_check_period_s`.
    pub fn health_check_period_s(mut self, s: f64) -> Self {
        self.health_check_period_s = Some(s);
        self
    }

    /// Sets `health_check_timeout_s`.
    pub fn health_check_timeout_s(mut self, s: f64) -> Self {
        self.health_check_timeout_s = Some(s);
        self
    }

    /// Sets the resources each replica reserves (a rolling replacement of the replicas).
    pub fn resources(mut self, resources: ReplicaResources) -> Self {
        self.resources = Some(resources);
        self
    }

    /// Replaces every replica by a new one, rolling: each new replica is constructed before an
    /// old one leaves routing, and the old one finishes its requests.
    pub fn restart(mut self) -> Self {
        self.restart = true;
        self
    }
}

impl<D: Deployment> DeploymentState<D> {
    /// Applies `update` (see `Serve::update_deployment`): the whole new configuration is checked
    /// first, and nothing changes if it is refused.
    pub(crate) async fn update(
        self: Arc<Self>,
        update: DeploymentUpdate,
    ) -> Result<(), ServeError> {
        let refuse = |message: &str| {
            Err(ServeError::new(ErrorKind::Runtime)
                .with_message(message.to_owned())
                .in_deployment(self.name()))
        };
        let _one_at_a_time = self.update_lock.lock().await;
        if update.num_replicas.is_some() && self.autoscales() {
            return refuse(
                "the deployment autoscales: change its autoscaling config instead of num_replicas",
            );
        }
        // The whole new config is checked as a config file's would be, before anything changes.
        let mut config = self.config.locked().clone();
        if let Some(n) = update.num_replicas {
            config.num_replicas = n;
        }
        if let Some(n) = update.max_ongoing_requests {
            config.max_ongoing_requests = n;
        }
        if let Some(resources) = &update.resources {
            config.resources = resources.clone();
        }
        if let Some(autoscaling) = &update.autoscaling_config {
            config.autoscaling = Some(autoscaling.clone());
        }
        if let Some(s) = update.graceful_shutdown_timeout_s {
            config.graceful_shutdown_timeout_s = s;
        }
        if let Some(s) = update.health_check_period_s {
            config.health_check_period_s = s;
        }
        if let Some(s) = update.health_check_timeout_s {
            config.health_check_timeout_s = s;
        }
        config.validate()?;
        // What the controller and the router read from the config when they start.
        let retune = update.autoscaling_config.is_some()
            || update.graceful_shutdown_timeout_s.is_some()
            || update.health_check_period_s.is_some()
            || update.health_check_timeout_s.is_some();
        let new_resources = update.resources.filter(|r| self.placement.request() != *r);
        if let Some(resources) = &new_resources {
            self.placement.check_feasible(self.name(), resources)?;
        }
        if let Some(user_config) = update.user_config {
            self.reconfigure(&user_config).await?;
            config.user_config = Some(user_config);
        }
        *self.config.locked() = config.clone();
        if retune {
            self.router.set_settings(&RouterSettings::of(&config, None));
            if let Some(a) = &config.autoscaling {
                let bounded = self
                    .target()
                    .clamp(a.min_replicas, a.max_replicas.max(a.min_replicas));
                self.set_target(bounded);
            }
            // A controller with the new autoscaling and health periods; the running one ends
            // at its next tick.
            controller::spawn(&self, &tokio::runtime::Handle::current());
        }
        if let Some(n) = update.max_ongoing_requests {
            // More slots: queued requests take them now.
            self.router.set_max_ongoing(n);
        }
        if let Some(n) = update.num_replicas {
            self.set_target(n);
        }
        let restart = match new_resources {
            Some(resources) => {
                self.placement.set_request(resources);
                true
            }
            None => update.restart,
        };
        if restart {
            // Replicas of the old generation are replaced one by one (see the controller).
            self.next_generation();
        }
        self.router.wake_signal().notify_one();
        Ok(())
    }

    /// Hands `user_config` to every replica's `reconfigure` (status `UPDATING` meanwhile) and
    /// keeps it for replicas started later.
    async fn reconfigure(&self, user_config: &serde_json::Value) -> Result<(), ServeError> {
        let _updating = Counted::new(&self.updating);
        let name = self.name();
        let replicas = self.router.replicas();
        let mut hooks = Vec::with_capacity(replicas.len());
        for replica in replicas.iter() {
            let hook = match replica.endpoint() {
                Endpoint::Local(instance) => on_replica(
                    replica.info(),
                    D::__reconfigure(instance, user_config.clone()),
                ),
                // A replica in another process is reconfigured on its own node.
                Endpoint::Remote(endpoint) => {
                    let hook = endpoint.reconfigure(user_config);
                    Some(
                        Box::pin(async move { hook.await.map_err(crate::error::BoxError::from) })
                            as crate::api::deployment::Hook,
                    )
                }
            };
            match hook {
                Some(hook) => hooks.push(hook),
                None => {
                    return Err(ServeError::new(ErrorKind::Runtime)
                        .with_message(
                            "the deployment has no `reconfigure` method to take a user_config",
                        )
                        .in_deployment(name));
                }
            }
        }
        *self.user_config.locked() = Some(user_config.clone());
        for result in futures::future::join_all(hooks).await {
            if let Err(e) = result {
                return Err(ServeError::new(ErrorKind::User)
                    .with_message("reconfigure failed")
                    .with_source(e)
                    .in_deployment(name));
            }
        }
        Ok(())
    }
}
