//! What a running instance reports about itself (Ray's `serve status`): its applications, their
//! deployments, and each deployment's replicas.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::router::RouterStatus;

/// One application: a deployed graph, maybe served over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationStatus {
    /// The application's name (its ingress deployment's name unless given).
    pub name: String,
    /// The HTTP route prefix it is served under, if it is served over HTTP.
    pub route_prefix: Option<String>,
    /// `RUNNING` while the instance serves it.
    pub status: String,
    /// Its deployments, children first (the ingress last).
    pub deployments: Vec<DeploymentStatus>,
}

/// One deployment of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// The deployment's (unique) name.
    pub name: String,
    /// `HEALTHY` when it runs its target number of replicas, `UPSCALING` / `DOWNSCALING` while
    /// it heads for a new target, `UPDATING` while its replicas take a new `user_config`,
    /// `UNHEALTHY` when new replicas cannot be constructed.
    pub status: String,
    /// Why it is unhealthy, when it is; else why replicas are pending, when some are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many replicas take requests now.
    pub num_replicas: usize,
    /// Replicas it is short of that are not being constructed: waiting for resources (the
    /// message says what is missing), started as soon as a reservation is given back.
    #[serde(default)]
    pub pending_replicas: usize,
    /// How many replicas it is heading for (differs while scaling).
    pub target_replicas: usize,
    /// How many requests a replica runs at once.
    pub max_ongoing_requests: usize,
    /// Requests waiting for a free replica.
    pub queued_requests: usize,
    /// Its replicas.
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The replica's id within its deployment (ids are not reused).
    pub replica_id: usize,
    /// `RUNNING`, or `UNHEALTHY` while its health checks fail (it is replaced after 3 in a row).
    pub state: String,
    /// Requests it is running now.
    pub ongoing_requests: usize,
}

/// An application the instance runs.
pub(crate) struct AppRecord {
    pub(crate) name: String,
    pub(crate) route_prefix: Option<String>,
    pub(crate) deployments: Vec<Arc<dyn RouterStatus>>,
}

/// The applications of one instance, shared with its HTTP proxy (which serves `/-/status`).
#[derive(Default)]
pub(crate) struct Registry {
    apps: Mutex<Vec<AppRecord>>,
}

impl Registry {
    pub(crate) fn add(&self, app: AppRecord) {
        self.apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(app);
    }

    pub(crate) fn set_route_prefix(&self, name: &str, prefix: &str) {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(app) = apps.iter_mut().rev().find(|a| a.name == name) {
            app.route_prefix = Some(prefix.to_owned());
        }
    }

    /// Every deployment of every application, in the order deployed (the list is copied, so
    /// callers call into deployments without holding the registry's lock).
    fn deployments(&self) -> Vec<Arc<dyn RouterStatus>> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.iter().flat_map(|a| a.deployments.clone()).collect()
    }

    /// Stops every deployment from admitting new outside requests.
    pub(crate) fn close_all(&self) {
        self.deployments().into_iter().for_each(|d| d.close());
    }

    /// Fails whatever still runs or waits in every deployment.
    pub(crate) fn stop_all(&self) {
        self.deployments().iter().for_each(|d| d.stop_now());
    }

    /// Requests failed because a graceful shutdown timeout ran out, in every deployment so far.
    pub(crate) fn stopped_requests(&self) -> usize {
        self.deployments()
            .iter()
            .map(|d| d.stopped_requests())
            .sum()
    }

    /// The longest graceful shutdown timeout of any deployment (zero without deployments).
    pub(crate) fn graceful_timeout(&self) -> std::time::Duration {
        let timeouts = self.deployments().into_iter().map(|d| d.graceful_timeout());
        timeouts.max().unwrap_or_default()
    }

    /// Requests waiting or running across every deployment.
    pub(crate) fn in_progress(&self) -> usize {
        self.deployments().iter().map(|d| d.in_progress()).sum()
    }

    pub(crate) fn snapshot(&self) -> Vec<ApplicationStatus> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.iter()
            .map(|app| ApplicationStatus {
                name: app.name.clone(),
                route_prefix: app.route_prefix.clone(),
                status: "RUNNING".into(),
                deployments: app.deployments.iter().map(|d| d.status()).collect(),
            })
            .collect()
    }
}

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
    pub resources: Option<crate::deployment::ReplicaResources>,
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

    /// Sets the resources each replica reserves (a rolling replacement of the replicas).
    pub fn resources(mut self, resources: crate::deployment::ReplicaResources) -> Self {
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

impl Registry {
    /// The deployment called `name` (in the most recently deployed application that has one).
    pub(crate) fn find(&self, name: &str) -> Option<Arc<dyn RouterStatus>> {
        let apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.iter()
            .rev()
            .flat_map(|a| a.deployments.iter())
            .find(|d| d.name() == name)
            .cloned()
    }

    /// Every deployment's name.
    pub(crate) fn names(&self) -> Vec<String> {
        let deployments = self.deployments();
        deployments.iter().map(|d| d.name().to_owned()).collect()
    }
}
