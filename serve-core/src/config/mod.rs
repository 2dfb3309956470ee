//! The configuration layer: how each deployment is run ([`DeploymentConfig`], [`ReplicaResources`],
//! [`AutoscalingConfig`]), the one place its options are checked ([`DeploymentConfig::validate`]),
//! and config files in the shape of Ray Serve's (`ServeConfig`, feature `config-file`).
//!
//! Every way of setting options goes through the same rules, kept once by key in `rules.rs`:
//! `#[deployment(..)]` checks literal options with them at compile time (serve-macros compiles
//! that file too), config files check each entry with them under the file's key names and say
//! the file and line of a bad value, [`Serve::run_configured`] and [`Serve::update_deployment`]
//! check the whole configuration with [`DeploymentConfig::validate`] before anything is deployed
//! or changed, and `Serve::builder()` and the command line check the amounts and seconds they
//! share with deployments. Each error names the key as its caller spells it.
//!
//! [`Serve::run_configured`]: crate::Serve::run_configured
//! [`Serve::update_deployment`]: crate::Serve::update_deployment

pub(crate) mod autoscaling;
pub(crate) mod cluster;
mod deployment;
#[cfg(feature = "config-file")]
mod file;
mod logging;
// Some rules are a config file's only (Ray's `-1` for unlimited).
#[cfg_attr(not(feature = "config-file"), allow(dead_code))]
pub(crate) mod rules;
mod validate;

pub use autoscaling::AutoscalingConfig;
pub use cluster::{ClusterOptions, MISSED_HEARTBEATS, ProxyLocation};
pub use deployment::{DEFAULT_MAX_ONGOING_REQUESTS, DeploymentConfig, ReplicaResources};
#[cfg(feature = "cli")]
pub(crate) use file::ConfigFile;
#[cfg(feature = "cli")]
pub(crate) use file::import_attribute;
#[cfg(feature = "config-file")]
pub use file::{
    ACCELERATOR_TYPE_AMOUNT, ApplicationConfig, DeploymentEntry, GrpcOptionsConfig,
    HttpOptionsConfig, NumReplicas, RayActorOptions, ServeConfig,
};
pub use logging::{Encoding, LogLevel, LoggingConfig};
#[cfg(feature = "cli")]
pub(crate) use validate::config_error;
