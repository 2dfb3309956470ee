//! [`DeploymentConfig::validate`]: a whole configuration checked by the rules of its options
//! (`rules.rs`), with its keys named as code names them or as a config file does.

use super::autoscaling::AutoscalingConfig;
use super::deployment::DeploymentConfig;
use super::rules;
use crate::error::{ErrorKind, ServeError};

/// An invalid configuration: `ErrorKind::Config` with `message`.
pub(crate) fn config_error(message: String) -> ServeError {
    ServeError::new(ErrorKind::Config).with_message(message)
}

/// How a configuration's keys are displayed in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    /// Before each autoscaling key.
    autoscaling: &'static str,
    /// Before `num_cpus`, `num_gpus` and `resources`.
    resources: &'static str,
}

impl Keys {
    /// As [`DeploymentConfig`] names them: `autoscaling.min_replicas`, `num_cpus`,
    /// `resources.a100`.
    pub(crate) const CODE: Keys = Keys {
        autoscaling: "autoscaling.",
        resources: "",
    };
    /// As a config file names them (Ray Serve's names): `autoscaling_config.min_replicas`,
    /// `ray_actor_options.num_cpus`, `ray_actor_options.resources.a100`.
    #[cfg_attr(not(feature = "config-file"), allow(dead_code))]
    pub(crate) const FILE: Keys = Keys {
        autoscaling: "autoscaling_config.",
        resources: "ray_actor_options.",
    };
}

/// A value against its option's rule: the key as displayed (where to look for it), and the
/// message, which names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invalid {
    pub(crate) key: String,
    pub(crate) message: String,
}

impl Invalid {
    pub(crate) fn new(key: impl Into<String>, message: String) -> Self {
        Self {
            key: key.into(),
            message,
        }
    }
}

/// Count option `key`, displayed as `shown`.
fn count(key: &str, shown: String, value: usize) -> Result<(), Invalid> {
    let value = u64::try_from(value).unwrap_or(u64::MAX);
    rules::count(key, &shown, value).map_err(|m| Invalid::new(shown, m))
}

/// Numeric option `key`, displayed as `shown`.
fn number(key: &str, shown: String, value: f64) -> Result<(), Invalid> {
    rules::number(key, &shown, value).map_err(|m| Invalid::new(shown, m))
}

/// Every value of `config` by the rules of its options, the keys displayed as `keys` says; the
/// first value against its rule.
pub(crate) fn check(config: &DeploymentConfig, keys: Keys) -> Result<(), Invalid> {
    let counts = [
        ("num_replicas", Some(config.num_replicas)),
        ("max_ongoing_requests", Some(config.max_ongoing_requests)),
        ("max_queued_requests", config.max_queued_requests),
    ];
    for (key, value) in counts {
        value.map_or(Ok(()), |n| count(key, key.to_owned(), n))?;
    }
    let seconds = [
        ("health_check_period_s", config.health_check_period_s),
        ("health_check_timeout_s", config.health_check_timeout_s),
        (
            "graceful_shutdown_timeout_s",
            config.graceful_shutdown_timeout_s,
        ),
    ];
    for (key, value) in seconds {
        number(key, key.to_owned(), value)?;
    }
    if let Some(a) = &config.autoscaling {
        check_autoscaling(keys.autoscaling, a)?;
    }
    let (p, r) = (keys.resources, &config.resources);
    number("num_cpus", format!("{p}num_cpus"), r.num_cpus)?;
    number("num_gpus", format!("{p}num_gpus"), r.num_gpus)?;
    for (name, amount) in &r.custom {
        let shown = format!("{p}resources.{name}");
        rules::resource_name(p, name).map_err(|m| Invalid::new(shown.clone(), m))?;
        rules::resource_amount(&shown, *amount).map_err(|m| Invalid::new(shown, m))?;
    }
    Ok(())
}

/// An autoscaling config, its keys displayed as `{prefix}{key}`: each count, then the counts
/// together, then the numbers.
fn check_autoscaling(prefix: &str, a: &AutoscalingConfig) -> Result<(), Invalid> {
    let key = |k: &str| format!("{prefix}{k}");
    let counts = [
        ("min_replicas", Some(a.min_replicas)),
        ("max_replicas", Some(a.max_replicas)),
        ("initial_replicas", a.initial_replicas),
    ];
    for (k, value) in counts {
        value.map_or(Ok(()), |n| count(k, key(k), n))?;
    }
    let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    rules::replica_bounds(
        prefix,
        Some(wide(a.min_replicas)),
        Some(wide(a.max_replicas)),
        a.initial_replicas.map(wide),
    )
    .map_err(|(blame, m)| Invalid::new(key(blame.key()), m))?;
    let numbers = [
        ("target_ongoing_requests", Some(a.target_ongoing_requests)),
        ("upscale_delay_s", Some(a.upscale_delay_s)),
        ("downscale_delay_s", Some(a.downscale_delay_s)),
        ("downscale_to_zero_delay_s", a.downscale_to_zero_delay_s),
        ("look_back_period_s", Some(a.look_back_period_s)),
        ("metrics_interval_s", Some(a.metrics_interval_s)),
        ("upscaling_factor", a.upscaling_factor),
        ("downscaling_factor", a.downscaling_factor),
    ];
    for (k, value) in numbers {
        value.map_or(Ok(()), |v| number(k, key(k), v))?;
    }
    Ok(())
}

impl DeploymentConfig {
    /// Checks every value of the configuration, however it was built (code, a config file, an
    /// update): what [`Serve::run_configured`](crate::Serve::run_configured) refuses to deploy. The
    /// error names the deployment and the key, e.g. ``deployment `Adder`:
    /// `autoscaling.max_replicas` must be at least 1, not 0``.
    pub fn validate(&self) -> Result<(), ServeError> {
        check(self, Keys::CODE)
            .map_err(|e| config_error(format!("deployment `{}`: {}", self.name, e.message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_built_configuration_is_checked_too() {
        let ok = DeploymentConfig::new("A")
            .max_queued_requests(1)
            .num_gpus(0.0)
            .autoscaling(AutoscalingConfig::default().min_replicas(0));
        ok.validate().unwrap();
        let cases = [
            (
                DeploymentConfig::new("A").num_replicas(0),
                "`num_replicas` must be at least 1, not 0",
            ),
            (
                DeploymentConfig::new("A").max_ongoing_requests(0),
                "`max_ongoing_requests` must be at least 1, not 0",
            ),
            (
                DeploymentConfig::new("A").max_queued_requests(0),
                "`max_queued_requests` must be at least 1, not 0",
            ),
            (
                DeploymentConfig::new("A").health_check_timeout_s(f64::NAN),
                "`health_check_timeout_s` must be a number greater than 0, not NaN",
            ),
            (
                DeploymentConfig::new("A").graceful_shutdown_timeout_s(0.0),
                "`graceful_shutdown_timeout_s` must be a number greater than 0, not 0",
            ),
            (
                DeploymentConfig::new("A").num_cpus(-1.0),
                "`num_cpus` must be a number of at least 0, not -1",
            ),
            (
                DeploymentConfig::new("A").resource("CPU", 1.0),
                "`resources`: `CPU` is not a custom resource: use `num_cpus`",
            ),
            (
                DeploymentConfig::new("A").resource("a100", f64::INFINITY),
                "`resources.a100` must be a number of at least 0, not inf",
            ),
            (
                DeploymentConfig::new("A")
                    .autoscaling(AutoscalingConfig::default().min_replicas(2)),
                "`autoscaling.max_replicas` (1) must be at least `autoscaling.min_replicas` (2)",
            ),
            (
                DeploymentConfig::new("A").autoscaling(
                    AutoscalingConfig::default()
                        .max_replicas(4)
                        .initial_replicas(5),
                ),
                "`autoscaling.initial_replicas` (5) must be between `autoscaling.min_replicas` \
                 (1) and `autoscaling.max_replicas` (4)",
            ),
            (
                DeploymentConfig::new("A")
                    .autoscaling(AutoscalingConfig::default().downscaling_factor(-1.0)),
                "`autoscaling.downscaling_factor` must be a number greater than 0, not -1",
            ),
            (
                DeploymentConfig::new("A")
                    .autoscaling(AutoscalingConfig::default().downscale_to_zero_delay_s(f64::NAN)),
                "`autoscaling.downscale_to_zero_delay_s` must be a number of at least 0, not NaN",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(
                config.validate().unwrap_err().to_string(),
                format!("invalid configuration: deployment `A`: {expected}")
            );
        }
    }

    #[test]
    fn keys_are_named_as_code_or_a_file_names_them() {
        let config = DeploymentConfig::new("A")
            .num_gpus(-1.0)
            .autoscaling(AutoscalingConfig::default().max_replicas(0));
        let file = check(&config, Keys::FILE).unwrap_err();
        assert_eq!(file.key, "autoscaling_config.max_replicas");
        assert_eq!(
            file.message,
            "`autoscaling_config.max_replicas` must be at least 1, not 0"
        );
        let config = config.autoscaling(AutoscalingConfig::default());
        let code = check(&config, Keys::CODE).unwrap_err();
        assert_eq!(code.key, "num_gpus");
        let file = check(&config, Keys::FILE).unwrap_err();
        assert_eq!(
            (file.key.as_str(), file.message.as_str()),
            (
                "ray_actor_options.num_gpus",
                "`ray_actor_options.num_gpus` must be a number of at least 0, not -1"
            )
        );
        let config = DeploymentConfig::new("A").resource("GPU", 1.0);
        assert_eq!(
            check(&config, Keys::FILE).unwrap_err().key,
            "ray_actor_options.resources.GPU",
            "the key of a bad name is where the name is"
        );
    }
}
