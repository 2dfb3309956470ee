//! [`AutoscalingConfig`]: when and how far a deployment scales with its load, with Ray Serve's
//! names and defaults. The policy that applies it is `control::autoscaling`.

use serde::{Deserialize, Serialize};

/// Autoscaling settings, with Ray Serve's names and defaults. Set in code with
/// `#[deployment(autoscaling(min_replicas = 1, max_replicas = 8, target_ongoing_requests = 2))]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AutoscalingConfig {
    /// Never fewer replicas than this (default 1; 0 allows scaling to zero).
    #[serde(default = "defaults::min_replicas")]
    pub min_replicas: usize,
    /// Never more replicas than this (default 1).
    #[serde(default = "defaults::max_replicas")]
    pub max_replicas: usize,
    /// How many replicas to start with (default: `min_replicas`, as in Ray: with
    /// `min_replicas = 0` the deployment starts with none, and the first call wakes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_replicas: Option<usize>,
    /// The ongoing requests (queued at callers plus running) per replica to aim for (default 2).
    #[serde(default = "defaults::target_ongoing_requests")]
    pub target_ongoing_requests: f64,
    /// How long a decision to add replicas must hold before it is applied, in seconds (default 30).
    #[serde(default = "defaults::upscale_delay_s")]
    pub upscale_delay_s: f64,
    /// How long a decision to remove replicas must hold before it is applied, in seconds
    /// (default 600).
    #[serde(default = "defaults::downscale_delay_s")]
    pub downscale_delay_s: f64,
    /// How long a decision to go from 1 replica to 0 must hold before it is applied, in seconds
    /// (default: none, and `downscale_delay_s` is used). As in Ray, a deployment heading for 0
    /// from more than one replica stops at 1 first (after `downscale_delay_s`), then waits this
    /// long for the last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downscale_to_zero_delay_s: Option<f64>,
    /// Over how long the load is averaged, in seconds (default 30).
    #[serde(default = "defaults::look_back_period_s")]
    pub look_back_period_s: f64,
    /// How often the load is measured, in seconds (default 10). The controller measures it at
    /// each of its decisions too (every 0.1 s), so a value above 0.1 s changes nothing in one
    /// process; see the guide's chapter on scaling.
    #[serde(default = "defaults::metrics_interval_s")]
    pub metrics_interval_s: f64,
    /// Multiplies each upscaling step (default 1: go straight to the desired count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscaling_factor: Option<f64>,
    /// Multiplies each downscaling step (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downscaling_factor: Option<f64>,
}

mod defaults {
    use crate::config::rules;

    pub(super) fn min_replicas() -> usize {
        rules::DEFAULT_MIN_REPLICAS as usize
    }
    pub(super) fn max_replicas() -> usize {
        rules::DEFAULT_MAX_REPLICAS as usize
    }
    pub(super) fn target_ongoing_requests() -> f64 {
        2.0
    }
    pub(super) fn upscale_delay_s() -> f64 {
        30.0
    }
    pub(super) fn downscale_delay_s() -> f64 {
        600.0
    }
    pub(super) fn look_back_period_s() -> f64 {
        30.0
    }
    pub(super) fn metrics_interval_s() -> f64 {
        10.0
    }
}

impl Default for AutoscalingConfig {
    fn default() -> Self {
        Self {
            min_replicas: defaults::min_replicas(),
            max_replicas: defaults::max_replicas(),
            initial_replicas: None,
            target_ongoing_requests: defaults::target_ongoing_requests(),
            upscale_delay_s: defaults::upscale_delay_s(),
            downscale_delay_s: defaults::downscale_delay_s(),
            downscale_to_zero_delay_s: None,
            look_back_period_s: defaults::look_back_period_s(),
            metrics_interval_s: defaults::metrics_interval_s(),
            upscaling_factor: None,
            downscaling_factor: None,
        }
    }
}

impl AutoscalingConfig {
    /// Sets `min_replicas`.
    pub fn min_replicas(mut self, n: usize) -> Self {
        self.min_replicas = n;
        self
    }
    /// Sets `max_replicas`.
    pub fn max_replicas(mut self, n: usize) -> Self {
        self.max_replicas = n;
        self
    }
    /// Sets `initial_replicas`.
    pub fn initial_replicas(mut self, n: usize) -> Self {
        self.initial_replicas = Some(n);
        self
    }
    /// Sets `target_ongoing_requests`.
    pub fn target_ongoing_requests(mut self, n: f64) -> Self {
        self.target_ongoing_requests = n;
        self
    }
    /// Sets `upscale_delay_s`.
    pub fn upscale_delay_s(mut self, s: f64) -> Self {
        self.upscale_delay_s = s;
        self
    }
    /// Sets `downscale_delay_s`.
    pub fn downscale_delay_s(mut self, s: f64) -> Self {
        self.downscale_delay_s = s;
        self
    }
    /// Sets `downscale_to_zero_delay_s`.
    pub fn downscale_to_zero_delay_s(mut self, s: f64) -> Self {
        self.downscale_to_zero_delay_s = Some(s);
        self
    }
    /// Sets `look_back_period_s`.
    pub fn look_back_period_s(mut self, s: f64) -> Self {
        self.look_back_period_s = s;
        self
    }
    /// Sets `metrics_interval_s`.
    pub fn metrics_interval_s(mut self, s: f64) -> Self {
        self.metrics_interval_s = s;
        self
    }
    /// Sets `upscaling_factor`.
    pub fn upscaling_factor(mut self, f: f64) -> Self {
        self.upscaling_factor = Some(f);
        self
    }
    /// Sets `downscaling_factor`.
    pub fn downscaling_factor(mut self, f: f64) -> Self {
        self.downscaling_factor = Some(f);
        self
    }

    /// The replicas a deployment starts with: `initial_replicas`, else `min_replicas` (both
    /// kept within `[min_replicas, max_replicas]`).
    pub fn initial(&self) -> usize {
        self.initial_replicas
            .unwrap_or(self.min_replicas)
            .clamp(self.min_replicas, self.max_replicas.max(self.min_replicas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AutoscalingConfig {
        AutoscalingConfig::default().max_replicas(10)
    }

    /// Ray Serve's defaults, as its documentation gives them (`ray.serve.config.AutoscalingConfig`),
    /// written out as numbers.
    #[test]
    fn the_defaults_are_ray_serves() {
        let d = AutoscalingConfig::default();
        assert_eq!(d.min_replicas, 1);
        assert_eq!(d.max_replicas, 1);
        assert_eq!(d.initial_replicas, None);
        assert_eq!(d.target_ongoing_requests, 2.0);
        assert_eq!(d.upscale_delay_s, 30.0);
        assert_eq!(d.downscale_delay_s, 600.0);
        assert_eq!(d.downscale_to_zero_delay_s, None);
        assert_eq!(d.look_back_period_s, 30.0);
        assert_eq!(d.metrics_interval_s, 10.0);
        assert_eq!(d.upscaling_factor, None);
        assert_eq!(d.downscaling_factor, None);
        // `initial_replicas` not given: `min_replicas`.
        assert_eq!(d.initial(), 1);
        assert_eq!(d.clone().max_replicas(5).min_replicas(3).initial(), 3);
        assert_eq!(d.min_replicas(0).initial(), 0);
        // A config file that names no key gets the same numbers.
        let empty: AutoscalingConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, AutoscalingConfig::default());
        let given: AutoscalingConfig =
            serde_json::from_str(r#"{"downscale_to_zero_delay_s": 60}"#).unwrap();
        assert_eq!(given.downscale_to_zero_delay_s, Some(60.0));
    }

    #[test]
    fn initial_of_the_config() {
        assert_eq!(AutoscalingConfig::default().initial(), 1);
        assert_eq!(config().min_replicas(3).initial(), 3);
        assert_eq!(config().min_replicas(0).initial(), 0);
        assert_eq!(config().initial_replicas(4).initial(), 4);
        assert_eq!(config().min_replicas(0).initial_replicas(0).initial(), 0);
        assert_eq!(config().min_replicas(2).initial_replicas(1).initial(), 2);
        assert_eq!(config().max_replicas(5).initial_replicas(9).initial(), 5);
        assert_eq!(
            AutoscalingConfig::default()
                .min_replicas(0)
                .max_replicas(0)
                .initial(),
            0
        );
    }
}
