//! A new version of a running application taking over one of its deployments in place: the
//! deployment keeps its router (so every handle to it, and every queued request, stays), and its
//! replicas are replaced by ones of the new version, rolling (a new replica is constructed
//! before an old one leaves routing, and the old one finishes what it runs).
//!
//! The new version is prepared first ([`InPlace::new`]: its replica factory, with the new bound
//! arguments and the new version's handles of its children), and switched to only once every
//! deployment of the new version is ready ([`Upgrade::commit`]): then the deployment takes the
//! new configuration (router settings, resources, `user_config`, replica count), starts a new
//! rollout generation, and gets a new controller, which replaces the replicas. The rollout is
//! done ([`Upgrade::finished`]) once no replica of the previous version is left in routing and
//! one of the new version runs (or every new one waits for resources, as a fresh deploy may
//! leave replicas pending). It fails once [`construction_bound`] constructions of the new
//! version have failed: the application's deploy then rolls back ([`Upgrade::roll_back`]): the
//! previous factory, configuration and generation come back, so the previous version's replicas
//! are current again and serve on; any new-version replica is replaced by a previous-version one.
//!
//! The bound arguments of a new version cannot be compared with the previous ones, so a
//! deployment taken over is always rolled, even when nothing changed.

use std::sync::Arc;

use super::application::{BoxFuture, Upgrade};
use super::controller::{self, CONTROL_LOOP_INTERVAL};
use super::state::{Constructions, DeploymentState, ReplicaFactory, construction_bound};
use crate::api::deployment::Deployment;
use crate::config::DeploymentConfig;
use crate::dataplane::router::RouterSettings;
use crate::error::ServeError;
use crate::util::sync::Lock;

/// One version of a deployment: what builds its replicas and how it is configured.
struct Version<D> {
    factory: ReplicaFactory<D>,
    config: DeploymentConfig,
    /// Its replica count (for the version switched from: the count it had).
    target: Option<usize>,
    /// Its rollout generation (for the version switched from).
    generation: Option<u64>,
}

/// A deployment taken over in place by a new version of its application.
pub(crate) struct InPlace<D> {
    state: Arc<DeploymentState<D>>,
    /// Before `commit`: the new version; after: the version it replaced (for `roll_back`).
    other: Option<Version<D>>,
    committed: bool,
    rt: tokio::runtime::Handle,
}

impl<D: Deployment> InPlace<D> {
    /// Prepares `state` to switch to the version that `factory` builds, configured with `config`.
    pub(crate) fn new(
        state: Arc<DeploymentState<D>>,
        factory: ReplicaFactory<D>,
        config: DeploymentConfig,
        rt: tokio::runtime::Handle,
    ) -> Self {
        let version = Version {
            factory,
            config,
            target: None,
            generation: None,
        };
        Self {
            state,
            other: Some(version),
            committed: false,
            rt,
        }
    }

    /// Makes `version` the deployment's; returns the version it replaces.
    fn switch(&self, version: Version<D>) -> Version<D> {
        let state = &self.state;
        let target = version
            .target
            .unwrap_or_else(|| new_target(&version.config, state));
        let config = version.config;
        let before = Version {
            factory: state.set_factory(version.factory),
            config: std::mem::replace(&mut *state.config.locked(), config.clone()),
            target: Some(state.target()),
            generation: Some(match version.generation {
                Some(generation) => {
                    let abandoned = state.generation();
                    state.restore_generation(generation);
                    abandoned
                }
                None => state.next_generation(),
            }),
        };
        *state.user_config.locked() = config.user_config.clone();
        state.placement.set_request(config.resources.clone());
        state
            .router
            .set_settings(&RouterSettings::of(&config, None));
        state.set_target(target);
        state.constructions(|c| *c = Constructions::default());
        state.set_unhealthy(None);
        // A controller with the new configuration (health periods, autoscaling); the one
        // running ends at its next tick.
        controller::spawn(state, &self.rt);
        state.router.wake_signal().notify_one();
        before
    }
}

/// The replica count a deployment heads for when it switches to a version configured with
/// `config`: what the version asks for, except that an autoscaling deployment that stays
/// autoscaling keeps its count (within the new bounds).
fn new_target<D: Deployment>(config: &DeploymentConfig, state: &DeploymentState<D>) -> usize {
    match &config.autoscaling {
        Some(a) if state.autoscales() => state
            .target()
            .clamp(a.min_replicas, a.max_replicas.max(a.min_replicas)),
        Some(a) => a.initial(),
        None => config.num_replicas,
    }
}

/// How a rollout stands: `None` while it runs.
fn outcome<D>(state: &DeploymentState<D>) -> Option<Result<(), ServeError>> {
    let target = state.target();
    let (failures, error) = state.constructions(|c| (c.since_rollout, c.last_error.clone()));
    if failures >= construction_bound(target)
        && let Some(error) = error
    {
        return Some(Err(error));
    }
    let (running, current) = state.running_and_current();
    let all_pending = state.placement.waiting() > 0 && state.placement.building() == 0;
    (running == current && (current > 0 || target == 0 || all_pending)).then_some(Ok(()))
}

impl<D: Deployment> Upgrade for InPlace<D> {
    fn commit(&mut self) {
        if !self.committed
            && let Some(version) = self.other.take()
        {
            self.other = Some(self.switch(version));
            self.committed = true;
        }
    }

    fn finished(&self) -> BoxFuture<'static, Result<(), ServeError>> {
        let state = self.state.clone();
        Box::pin(async move {
            let mut events = state.events();
            loop {
                if let Some(outcome) = outcome(&state) {
                    return outcome;
                }
                // Replicas and constructions signal each change; a replica that starts waiting
                // for resources does not, so look again at the controller's pace too.
                if let Ok(Err(_)) =
                    tokio::time::timeout(CONTROL_LOOP_INTERVAL, events.changed()).await
                {
                    return Err(ServeError::shut_down());
                }
            }
        })
    }

    fn roll_back(&mut self) {
        if self.committed
            && let Some(previous) = self.other.take()
        {
            self.committed = false;
            tracing::warn!(
                deployment = %self.state.name(),
                "the new version could not be rolled out: back to the previous one"
            );
            self.switch(previous);
        }
    }
}
