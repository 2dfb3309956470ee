//! The configuration layer: how each deployment is run ([`DeploymentConfig`], [`ReplicaResources`],
//! [`AutoscalingConfig`]), the one place its options are checked ([`DeploymentConfig::validate`]),
//! and config files in the shape of Ray Serve's ([`ServeConfig`]).
//!
//! Every way of setting options goes through the same rules (`rules.rs`): `#[deployment(..)]`
//! checks literal options with them at compile time, and config files, [`Serve::run_configured`],
//! [`Serve::update_deployment`] and the command line check the whole configuration with
//! [`DeploymentConfig::validate`] before anything is deployed or changed.
//!
//! [`Serve::run_configured`]: crate::Serve::run_configured
//! [`Serve::update_deployment`]: crate::Serve::update_deployment

pub(crate) mod autoscaling;
mod deployment;
#[cfg(feature = "config-file")]
mod file;
pub(crate) mod rules;
mod validate;

pub use autoscaling::AutoscalingConfig;
pub use deployment::{DEFAULT_MAX_ONGOING_REQUESTS, DeploymentConfig, ReplicaResources};
#[cfg(feature = "config-file")]
pub use file::{
    ApplicationConfig, DeploymentEntry, HttpOptionsConfig, RayActorOptions, ServeConfig,
};
