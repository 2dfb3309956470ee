//! [`DeploymentConfig::validate`]: the one check of a deployment's options.

use std::collections::BTreeMap;

use super::autoscaling::AutoscalingConfig;
use super::deployment::DeploymentConfig;
use crate::error::{ErrorKind, ServeError};

/// An invalid configuration: `ErrorKind::Config` with `message`.
pub(crate) fn config_error(message: String) -> ServeError {
    ServeError::new(ErrorKind::Config).with_message(message)
}

/// `key`'s value must be a finite number greater than 0.
pub(crate) fn positive(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!(
            "`{key}` must be a number greater than 0, not {value}"
        ))
    }
}

/// `key`'s value must be a finite number, at least 0.
pub(crate) fn non_negative(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "`{key}` must be a number of at least 0, not {value}"
        ))
    }
}

/// The rules of `#[deployment(autoscaling(..))]`, for keys named `{prefix}{key}`.
pub(crate) fn check_autoscaling(prefix: &str, a: &AutoscalingConfig) -> Result<(), String> {
    if a.max_replicas == 0 {
        return Err(format!("`{prefix}max_replicas` must be at least 1"));
    }
    if a.min_replicas > a.max_replicas {
        return Err(format!(
            "`{prefix}min_replicas` ({}) must not be more than `{prefix}max_replicas` ({})",
            a.min_replicas, a.max_replicas
        ));
    }
    if let Some(n) = a.initial_replicas
        && !(a.min_replicas..=a.max_replicas).contains(&n)
    {
        return Err(format!(
            "`{prefix}initial_replicas` ({n}) must be between `{prefix}min_replicas` ({}) and \
             `{prefix}max_replicas` ({})",
            a.min_replicas, a.max_replicas
        ));
    }
    let key = |k: &str| format!("{prefix}{k}");
    positive(&key("target_ongoing_requests"), a.target_ongoing_requests)?;
    non_negative(&key("upscale_delay_s"), a.upscale_delay_s)?;
    non_negative(&key("downscale_delay_s"), a.downscale_delay_s)?;
    positive(&key("look_back_period_s"), a.look_back_period_s)?;
    positive(&key("metrics_interval_s"), a.metrics_interval_s)?;
    for (k, factor) in [
        ("upscaling_factor", a.upscaling_factor),
        ("downscaling_factor", a.downscaling_factor),
    ] {
        factor.map_or(Ok(()), |f| positive(&key(k), f))?;
    }
    Ok(())
}

/// Custom resources: amounts at least 0, no `CPU`/`GPU` (those are `num_cpus`/`num_gpus`).
pub(crate) fn check_custom_resources(
    prefix: &str,
    custom: &BTreeMap<String, f64>,
) -> Result<(), String> {
    for (name, amount) in custom {
        if name.is_empty() {
            return Err(format!(
                "`{prefix}resources`: a resource name must not be empty"
            ));
        }
        if name == "CPU" || name == "GPU" {
            return Err(format!(
                "`{prefix}resources`: `{name}` is not a custom resource: use `{prefix}num_{}s`",
                name.to_lowercase()
            ));
        }
        non_negative(&format!("{prefix}resources.{name}"), *amount)?;
    }
    Ok(())
}

impl DeploymentConfig {
    /// Checks every value of the configuration, however it was built (code, a config file, an
    /// update): what [`Serve::run_configured`](crate::Serve::run_configured) refuses to deploy. The
    /// error names the deployment and the key.
    pub fn validate(&self) -> Result<(), ServeError> {
        let config = self;
        let check = || -> Result<(), String> {
            if config.num_replicas == 0 || config.max_ongoing_requests == 0 {
                return Err("num_replicas and max_ongoing_requests must be at least 1".into());
            }
            if config.max_queued_requests == Some(0) {
                return Err("`max_queued_requests` must be at least 1".into());
            }
            positive("health_check_period_s", config.health_check_period_s)?;
            positive("health_check_timeout_s", config.health_check_timeout_s)?;
            positive(
                "graceful_shutdown_timeout_s",
                config.graceful_shutdown_timeout_s,
            )?;
            if let Some(a) = &config.autoscaling {
                check_autoscaling("autoscaling.", a)?;
            }
            let r = &config.resources;
            non_negative("num_cpus", r.num_cpus)?;
            non_negative("num_gpus", r.num_gpus)?;
            check_custom_resources("", &r.custom)
        };
        check().map_err(|e| config_error(format!("deployment `{}`: {e}", config.name)))
    }
}
