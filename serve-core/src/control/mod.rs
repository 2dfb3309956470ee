//! The control plane: which replicas a deployment has, and how that changes.
//!
//! * [`application`]: the graph `Type::bind(..)` builds, and [`deploy`]: how each node of it is
//!   deployed (placement, initial replicas, router, state, controller); [`redeploy`]: how a
//!   new version of a running application takes its deployments over in place (rolling);
//!   [`bind`]: the shapes of handles a constructor parameter may hold (`Vec`, `Option`, maps,
//!   arrays, tuples);
//! * [`state`]: one running deployment ([`DeploymentState`](state::DeploymentState)): its router,
//!   target replica count, rollout generation and per-replica records; [`managed`] is the
//!   type-erased view the instance holds, and [`registry`] holds them all;
//! * [`controller`]: the per-deployment task that autoscales ([`autoscaling`]), checks health
//!   ([`health`]) and reconciles replicas with the target, rolling updates included;
//! * [`update`]: changes to a running deployment; [`status`]: what `serve status` reports;
//! * [`resources`] and [`placement`]: the instance's CPUs, GPUs and custom resources, and how a
//!   replica reserves its share before its constructor runs (pending while they are short).
//!
//! The request path never waits on anything here: it reads the replica set the control plane
//! publishes (see `dataplane`).

pub(crate) mod application;
pub mod autoscaling;
pub(crate) mod bind;
pub(crate) mod controller;
pub(crate) mod deploy;
pub(crate) mod health;
pub(crate) mod managed;
pub(crate) mod mirror;
pub(crate) mod nodes;
pub(crate) mod placement;
pub(crate) mod redeploy;
pub(crate) mod registry;
pub mod resources;
pub(crate) mod state;
pub(crate) mod status;
pub(crate) mod update;
