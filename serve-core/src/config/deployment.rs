//! [`DeploymentConfig`]: how one deployment is run, and [`ReplicaResources`]: what each of its
//! replicas reserves.

use super::autoscaling::AutoscalingConfig;
use super::logging::LoggingConfig;

/// The default of [`DeploymentConfig::max_ongoing_requests`], as in Ray Serve.
pub const DEFAULT_MAX_ONGOING_REQUESTS: usize = 5;

/// How a deployment is run. Set in code with `#[deployment(..)]` on the struct (e.g.
/// `#[deployment(num_replicas = 2, max_ongoing_requests = 10)]`), overridden by a config file.
/// Defaults follow Ray Serve's.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeploymentConfig {
    /// The deployment's name (default: the struct's name); unique within an application.
    pub name: String,
    /// How many replicas (instances) serve requests (default 1). With autoscaling, the initial
    /// count comes from the autoscaling config instead.
    pub num_replicas: usize,
    /// How many requests one replica runs at once (default 5); more wait in a FIFO queue.
    pub max_ongoing_requests: usize,
    /// How many requests may wait in the queue for a replica (default: unlimited); past it a call
    /// fails at once with a back-pressure error (HTTP 503).
    pub max_queued_requests: Option<usize>,
    /// Scale the number of replicas with the load (default: off, fixed `num_replicas`).
    pub autoscaling: Option<AutoscalingConfig>,
    /// How often each replica's `check_health` runs, in seconds (default 10).
    pub health_check_period_s: f64,
    /// How long one `check_health` may take before it counts as failed, in seconds (default 30).
    pub health_check_timeout_s: f64,
    /// How long a stopping replica may take to finish its requests, in seconds (default 20).
    pub graceful_shutdown_timeout_s: f64,
    /// What each replica reserves from the machine (default: 1 CPU).
    pub resources: ReplicaResources,
    /// A JSON value handed to the deployment's `reconfigure(&self, cfg)` (default: none).
    pub user_config: Option<serde_json::Value>,
    /// How its replicas log (level, access log); keys not given inherit from the application's
    /// and the process's (see [`LoggingConfig`]).
    pub logging: LoggingConfig,
}

impl DeploymentConfig {
    /// The default configuration of a deployment called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            num_replicas: 1,
            max_ongoing_requests: DEFAULT_MAX_ONGOING_REQUESTS,
            max_queued_requests: None,
            autoscaling: None,
            health_check_period_s: 10.0,
            health_check_timeout_s: 30.0,
            graceful_shutdown_timeout_s: 20.0,
            resources: ReplicaResources::default(),
            user_config: None,
            logging: LoggingConfig::default(),
        }
    }

    /// Sets the number of replicas.
    pub fn num_replicas(mut self, n: usize) -> Self {
        self.num_replicas = n;
        self
    }

    /// Sets how many requests one replica runs at once.
    pub fn max_ongoing_requests(mut self, n: usize) -> Self {
        self.max_ongoing_requests = n;
        self
    }

    /// Caps the requests waiting for a replica.
    pub fn max_queued_requests(mut self, n: usize) -> Self {
        self.max_queued_requests = Some(n);
        self
    }

    /// Turns autoscaling on.
    pub fn autoscaling(mut self, autoscaling: AutoscalingConfig) -> Self {
        self.autoscaling = Some(autoscaling);
        self
    }

    /// Sets the health-check period, in seconds.
    pub fn health_check_period_s(mut self, seconds: f64) -> Self {
        self.health_check_period_s = seconds;
        self
    }

    /// Sets the health-check timeout, in seconds.
    pub fn health_check_timeout_s(mut self, seconds: f64) -> Self {
        self.health_check_timeout_s = seconds;
        self
    }

    /// Sets how long a stopping replica may take to finish its requests, in seconds.
    pub fn graceful_shutdown_timeout_s(mut self, seconds: f64) -> Self {
        self.graceful_shutdown_timeout_s = seconds;
        self
    }

    /// Sets the CPUs each replica reserves.
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.resources.num_cpus = n;
        self
    }

    /// Sets the GPUs each replica reserves.
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.resources.num_gpus = n;
        self
    }

    /// Adds a custom resource each replica reserves (e.g. `"a100", 1.0`).
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.resources.custom.insert(name.into(), amount);
        self
    }

    /// Sets the `user_config` passed to `reconfigure`.
    pub fn user_config(mut self, value: serde_json::Value) -> Self {
        self.user_config = Some(value);
        self
    }

    /// Sets how its replicas log (Ray's `logging_config`).
    pub fn logging_config(mut self, logging: LoggingConfig) -> Self {
        self.logging = logging;
        self
    }
}

/// What one replica reserves from the machine: Ray's `ray_actor_options`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaResources {
    /// CPUs (default 1; fractions allowed).
    #[serde(default = "one")]
    pub num_cpus: f64,
    /// GPUs (default 0; fractions allowed).
    #[serde(default)]
    pub num_gpus: f64,
    /// Custom resources by name (e.g. `{"a100": 1.0}`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub custom: std::collections::BTreeMap<String, f64>,
}

fn one() -> f64 {
    1.0
}

impl Default for ReplicaResources {
    fn default() -> Self {
        Self {
            num_cpus: 1.0,
            num_gpus: 0.0,
            custom: Default::default(),
        }
    }
}
