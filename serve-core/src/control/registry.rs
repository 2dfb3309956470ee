//! [`Registry`]: the applications one instance runs, by name, shared with its HTTP proxy (which
//! serves `/-/status`), and what the instance does to all of them at once (status, graceful
//! shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::managed::ManagedDeployment;
use super::status::ApplicationStatus;
use crate::error::{ErrorKind, ServeError};
use crate::util::sync::Lock;

/// An application the instance runs.
pub(crate) struct AppRecord {
    /// Its name (unique on the instance).
    pub(crate) name: String,
    pub(crate) route_prefix: Option<String>,
    /// Children first; the last is its ingress (root) deployment.
    pub(crate) deployments: Vec<Arc<dyn ManagedDeployment>>,
}

/// The applications of one instance, shared with its HTTP proxy (which serves `/-/status`).
#[derive(Default)]
pub(crate) struct Registry {
    /// In the order they were first deployed; a new version of one takes its place.
    apps: Mutex<Vec<AppRecord>>,
    /// Held while an application is deployed, replaced or deleted, so two such changes (of one
    /// application or of two sharing a route) do not interleave.
    changing: tokio::sync::Mutex<()>,
}

impl Registry {
    /// Waits until no other change to the applications is in progress; changes go one at a
    /// time while the guard lives.
    pub(crate) async fn changing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changing.lock().await
    }

    /// Records `app`, in the place of the application of the same name if there is one (which
    /// it returns).
    pub(crate) fn put(&self, app: AppRecord) -> Option<AppRecord> {
        let mut apps = self.apps.locked();
        match apps.iter_mut().find(|a| a.name == app.name) {
            Some(old) => Some(std::mem::replace(old, app)),
            None => {
                apps.push(app);
                None
            }
        }
    }

    /// Takes the application `name` out, if there is one.
    pub(crate) fn remove(&self, name: &str) -> Option<AppRecord> {
        let mut apps = self.apps.locked();
        let at = apps.iter().position(|a| a.name == name)?;
        Some(apps.remove(at))
    }

    /// The deployments of application `name` by deployment name (empty when there is no such
    /// application).
    pub(crate) fn deployments_of(&self, name: &str) -> HashMap<String, Arc<dyn ManagedDeployment>> {
        let apps = self.apps.locked();
        apps.iter()
            .filter(|a| a.name == name)
            .flat_map(|a| a.deployments.iter())
            .map(|d| (d.name().to_owned(), d.clone()))
            .collect()
    }

    /// The deployment `deployment` of application `app` (`None`: its ingress): the error says
    /// which name is unknown, and lists the names there are.
    pub(crate) fn lookup(
        &self,
        app: &str,
        deployment: Option<&str>,
    ) -> Result<Arc<dyn ManagedDeployment>, ServeError> {
        let apps = self.apps.locked();
        let Some(record) = apps.iter().find(|a| a.name == app) else {
            let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
            return Err(not_found(format!(
                "no application `{app}` runs on this instance; {}",
                listed("the applications are", &names)
            )));
        };
        let found = match deployment {
            None => record.deployments.last(),
            Some(name) => record.deployments.iter().find(|d| d.name() == name),
        };
        found.cloned().ok_or_else(|| {
            let names: Vec<&str> = record.deployments.iter().map(|d| d.name()).collect();
            not_found(format!(
                "application `{app}` has no deployment `{}`; {}",
                deployment.unwrap_or_default(),
                listed("its deployments are", &names)
            ))
        })
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

/// A [`ErrorKind::NotFound`] error saying `message`.
fn not_found(message: String) -> ServeError {
    ServeError::new(ErrorKind::NotFound).with_message(message)
}

/// `"{what}: a, b"`, or that there are none.
fn listed(what: &str, names: &[&str]) -> String {
    if names.is_empty() {
        "there are none".to_owned()
    } else {
        let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        format!("{what} {}", names.join(", "))
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
