//! [`Registry`]: the applications one instance runs, shared with its HTTP proxy (which serves
//! `/-/status`), and what the instance does to all of them at once (status, graceful shutdown).

use std::sync::{Arc, Mutex};

use super::managed::ManagedDeployment;
use super::status::ApplicationStatus;
use crate::util::sync::Lock;

/// An application the instance runs.
pub(crate) struct AppRecord {
    pub(crate) name: String,
    pub(crate) route_prefix: Option<String>,
    pub(crate) deployments: Vec<Arc<dyn ManagedDeployment>>,
}

/// The applications of one instance, shared with its HTTP proxy (which serves `/-/status`).
#[derive(Default)]
pub(crate) struct Registry {
    apps: Mutex<Vec<AppRecord>>,
}

impl Registry {
    pub(crate) fn add(&self, app: AppRecord) {
        self.apps.locked().push(app);
    }

    pub(crate) fn set_route_prefix(&self, name: &str, prefix: &str) {
        let mut apps = self.apps.locked();
        if let Some(app) = apps.iter_mut().rev().find(|a| a.name == name) {
            app.route_prefix = Some(prefix.to_owned());
        }
    }

    /// Every deployment of every application, in the order deployed (the list is copied, so
    /// callers call into deployments without holding the registry's lock).
    pub(crate) fn deployments(&self) -> Vec<Arc<dyn ManagedDeployment>> {
        let apps = self.apps.locked();
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
        let apps = self.apps.locked();
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

impl Registry {
    /// The deployment called `name` (in the most recently deployed application that has one).
    pub(crate) fn find(&self, name: &str) -> Option<Arc<dyn ManagedDeployment>> {
        let apps = self.apps.locked();
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
