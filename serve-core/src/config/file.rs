//! Config files in the shape of Ray Serve's (`serve build` / `serve run config.yaml`), in YAML or
//! TOML: values in the file override the code's defaults without recompiling.
//!
//! ```yaml
//! http_options:
//!   host: 127.0.0.1
//!   port: 8000
//! applications:
//! - name: LanguageClassifier
//!   route_prefix: /
//!   deployments:
//!   - name: SpanishResponder
//!     num_replicas: 3
//!     max_ongoing_requests: 5
//!     max_queued_requests: -1       # -1: unlimited
//!     health_check_period_s: 10.0
//!     health_check_timeout_s: 30.0
//!     graceful_shutdown_timeout_s: 20.0
//!     user_config:                  # any value, handed to `reconfigure`
//!       greeting: Hola
//!     ray_actor_options:
//!       num_cpus: 1.0
//!       num_gpus: 0.0
//!       resources: {}
//!   - name: FrenchResponder
//!     autoscaling_config:           # instead of num_replicas
//!       min_replicas: 0
//!       max_replicas: 4
//!       target_ongoing_requests: 2.0
//! ```
//!
//! Unknown keys are errors that name the key and its position in the file; a deployment the
//! application does not have is an error that lists the ones it has; values out of range are
//! errors that name the deployment, the key and its line (``hello.yaml:14: deployment
//! `SpanishResponder`: ..``). Values are checked by the same rules as `#[deployment(..)]` options
//! and [`DeploymentConfig::validate`] (`rules.rs`), with the file's key names.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::autoscaling::AutoscalingConfig;
use super::cluster::{ClusterOptions, ProxyLocation};
use super::deployment::DeploymentConfig;
use super::rules;
use super::validate::{Invalid, Keys, check, config_error};
use crate::error::ServeError;
use lines::Format;
use source::{Mistake, Source};

mod lines;
mod source;

/// A whole config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Where the HTTP proxy listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_options: Option<HttpOptionsConfig>,
    /// Cluster mode: the NATS server(s), the cluster's name and credentials (see
    /// [`ClusterOptions`]). Absent: one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterOptions>,
    /// The applications (a `serve_core::main` binary serves one: the first).
    pub applications: Vec<ApplicationConfig>,
}

/// `http_options`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptionsConfig {
    /// The host to listen on (default `127.0.0.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port to listen on (default 8000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// How long an HTTP request may run before it is cancelled and answered 408 (default: no
    /// limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_s: Option<f64>,
    /// In cluster mode, which nodes run an HTTP proxy (default `HeadOnly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_location: Option<ProxyLocation>,
}

/// One application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    /// The application's name.
    pub name: String,
    /// The HTTP route prefix it is served under (default `/`).
    #[serde(default = "root_prefix")]
    pub route_prefix: String,
    /// Per-deployment settings; deployments not listed keep the code's defaults.
    #[serde(default)]
    pub deployments: Vec<DeploymentEntry>,
}

fn root_prefix() -> String {
    "/".into()
}

/// One deployment's settings, with Ray Serve's key names; absent values keep the code's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentEntry {
    /// The deployment's name (as `config` prints it: `Inner`, `Inner_1`, ..).
    pub name: String,
    /// How many replicas. Not for a deployment that autoscales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_replicas: Option<usize>,
    /// How many requests one replica runs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ongoing_requests: Option<usize>,
    /// How many requests may wait for a replica; `-1` is unlimited (as in Ray Serve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued_requests: Option<i64>,
    /// How often each replica's health is checked, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_period_s: Option<f64>,
    /// How long one health check may take, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_timeout_s: Option<f64>,
    /// How long a stopping replica may take to finish its requests, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_shutdown_timeout_s: Option<f64>,
    /// Any value (mapping, list, scalar), handed to the deployment's `reconfigure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_config: Option<serde_json::Value>,
    /// Autoscaling; replaces the code's (keys not given take Ray Serve's defaults, not the code's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling_config: Option<AutoscalingConfig>,
    /// What each replica reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_actor_options: Option<RayActorOptions>,
}

/// `ray_actor_options`: what each replica of a deployment reserves from the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RayActorOptions {
    /// CPUs per replica (fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_cpus: Option<f64>,
    /// GPUs per replica (fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_gpus: Option<f64>,
    /// Custom resources per replica, by name; replaces the code's set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, f64>>,
}

impl ServeConfig {
    /// Reads a config file: YAML (`.yaml`, `.yml`) or TOML (`.toml`). A value out of range is an
    /// error that names the file, the line, the deployment and the key:
    /// ``hello.yaml:14: deployment `SpanishResponder`: `health_check_period_s` must be a number
    /// greater than 0, not 0``.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ServeError> {
        ConfigFile::load(path).map(|file| file.config)
    }

    /// Parses YAML. A value out of range is an error that names the line (``line 14: deployment
    /// `SpanishResponder`: ..``).
    pub fn from_yaml(text: &str) -> Result<Self, ServeError> {
        Self::read(&Source::new(None, text.to_owned(), Format::Yaml))
    }

    /// Parses TOML, with errors as [`from_yaml`](Self::from_yaml)'s.
    pub fn from_toml(text: &str) -> Result<Self, ServeError> {
        Self::read(&Source::new(None, text.to_owned(), Format::Toml))
    }

    /// Parses `source` and checks every value.
    fn read(source: &Source) -> Result<Self, ServeError> {
        let parsed = match source.format {
            Format::Yaml => serde_yaml_ng::from_str(source.text()).map_err(|e| e.to_string()),
            Format::Toml => toml::from_str(source.text()).map_err(|e| e.to_string()),
        };
        let config: Self = parsed.map_err(|e| source.error(&e))?;
        config.check().map_err(|m| source.locate(m))?;
        Ok(config)
    }

    /// Every value by the rules of its key (`rules.rs`); deployment entries as
    /// `DeploymentEntry::check` checks them.
    fn check(&self) -> Result<(), Mistake> {
        let timeout = self.http_options.as_ref().and_then(|h| h.request_timeout_s);
        if let Some(seconds) = timeout {
            let key = "http_options.request_timeout_s";
            rules::number("request_timeout_s", key, seconds).map_err(|message| Mistake {
                app: None,
                deployment: None,
                key: Some(key.to_owned()),
                message,
            })?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate().map_err(|message| Mistake {
                app: None,
                deployment: None,
                key: Some("cluster".to_owned()),
                message,
            })?;
        }
        for app in &self.applications {
            if !app.route_prefix.starts_with('/') {
                return Err(Mistake {
                    app: Some(app.name.clone()),
                    deployment: None,
                    key: Some("route_prefix".to_owned()),
                    message: format!(
                        "application `{}`: route_prefix `{}` must start with `/`",
                        app.name, app.route_prefix
                    ),
                });
            }
            for d in &app.deployments {
                d.check()
                    .map_err(|e| Mistake::in_deployment(&app.name, &d.name, e))?;
            }
        }
        Ok(())
    }

    /// The full configuration of one application, every deployment with every option: what the
    /// `config` command prints, for a user to edit. A deployment that autoscales gets its
    /// `autoscaling_config` (with the scaling factors spelled out) instead of `num_replicas`;
    /// `user_config` and `initial_replicas` appear when they are set (their defaults have no
    /// value to print); `max_queued_requests` is `-1` when unlimited.
    pub fn for_application(
        name: &str,
        route_prefix: &str,
        host: &str,
        port: u16,
        deployments: &[DeploymentConfig],
    ) -> Self {
        Self {
            http_options: Some(HttpOptionsConfig {
                host: Some(host.to_owned()),
                port: Some(port),
                request_timeout_s: None,
                proxy_location: None,
            }),
            cluster: None,
            applications: vec![ApplicationConfig {
                name: name.to_owned(),
                route_prefix: route_prefix.to_owned(),
                deployments: deployments.iter().map(DeploymentEntry::complete).collect(),
            }],
        }
    }

    /// As YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }

    /// As TOML. Fails on what TOML cannot write, such as a null inside a `user_config`.
    pub fn to_toml(&self) -> Result<String, ServeError> {
        toml::to_string(self).map_err(|e| {
            config_error(format!(
                "cannot write the config as TOML ({e}); TOML has no null: write it as YAML"
            ))
        })
    }
}

impl DeploymentEntry {
    /// Every option of `config`, as a config file spells it.
    fn complete(config: &DeploymentConfig) -> Self {
        let autoscaling = config.autoscaling.clone().map(|mut a| {
            a.upscaling_factor = Some(a.upscaling_factor.unwrap_or(1.0));
            a.downscaling_factor = Some(a.downscaling_factor.unwrap_or(1.0));
            a
        });
        let resources = &config.resources;
        Self {
            name: config.name.clone(),
            num_replicas: autoscaling.is_none().then_some(config.num_replicas),
            max_ongoing_requests: Some(config.max_ongoing_requests),
            max_queued_requests: Some(
                config
                    .max_queued_requests
                    .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            ),
            health_check_period_s: Some(config.health_check_period_s),
            health_check_timeout_s: Some(config.health_check_timeout_s),
            graceful_shutdown_timeout_s: Some(config.graceful_shutdown_timeout_s),
            user_config: config.user_config.clone(),
            autoscaling_config: autoscaling,
            ray_actor_options: Some(RayActorOptions {
                num_cpus: Some(resources.num_cpus),
                num_gpus: Some(resources.num_gpus),
                resources: Some(resources.custom.clone()),
            }),
        }
    }

    /// Each value by the rules of its key (`rules.rs`), named as the file names it
    /// (`autoscaling_config.min_replicas`, `ray_actor_options.num_cpus`): the entry applied to a
    /// default configuration, checked as [`DeploymentConfig::validate`] checks one. And not both
    /// `num_replicas` and `autoscaling_config`; `max_queued_requests` may be `-1` (unlimited).
    fn check(&self) -> Result<(), Invalid> {
        if self.num_replicas.is_some() && self.autoscaling_config.is_some() {
            return Err(replicas_with_autoscaling());
        }
        if let Some(n) = self.max_queued_requests {
            let key = "max_queued_requests";
            rules::count_or_unlimited(key, key, n).map_err(|m| Invalid::new(key, m))?;
        }
        let mut config = DeploymentConfig::new(self.name.clone());
        self.apply_to(&mut config);
        check(&config, Keys::FILE)
    }

    /// Sets each value given on `config` (checked values: see `check`).
    fn apply_to(&self, config: &mut DeploymentConfig) {
        if let Some(autoscaling) = &self.autoscaling_config {
            config.autoscaling = Some(autoscaling.clone());
        }
        if let Some(n) = self.num_replicas {
            config.num_replicas = n;
        }
        if let Some(n) = self.max_ongoing_requests {
            config.max_ongoing_requests = n;
        }
        if let Some(n) = self.max_queued_requests {
            // -1 is unlimited; `check` lets through no other negative value.
            config.max_queued_requests = usize::try_from(n).ok();
        }
        if let Some(s) = self.health_check_period_s {
            config.health_check_period_s = s;
        }
        if let Some(s) = self.health_check_timeout_s {
            config.health_check_timeout_s = s;
        }
        if let Some(s) = self.graceful_shutdown_timeout_s {
            config.graceful_shutdown_timeout_s = s;
        }
        if let Some(value) = &self.user_config {
            config.user_config = Some(value.clone());
        }
        if let Some(options) = &self.ray_actor_options {
            let resources = &mut config.resources;
            resources.num_cpus = options.num_cpus.unwrap_or(resources.num_cpus);
            resources.num_gpus = options.num_gpus.unwrap_or(resources.num_gpus);
            if let Some(custom) = &options.resources {
                resources.custom = custom.clone();
            }
        }
    }
}

/// `num_replicas` for a deployment that autoscales, in a config file's words.
fn replicas_with_autoscaling() -> Invalid {
    let message = rules::replicas_with_autoscaling(
        "num_replicas",
        "autoscaling_config",
        "autoscaling_config.initial_replicas",
    );
    Invalid::new("num_replicas", message)
}

impl ApplicationConfig {
    /// Applies this application's deployment settings to `configs` (as
    /// [`Application::deployment_configs`](crate::Application::deployment_configs) gives them).
    ///
    /// Each value given replaces the code's; an `autoscaling_config` replaces the code's whole
    /// autoscaling config, and `ray_actor_options.resources` its whole set of custom resources.
    /// `num_replicas` for a deployment that autoscales (in its code or in the file) is an error,
    /// as in Ray Serve.
    pub fn apply(&self, configs: &mut [DeploymentConfig]) -> Result<(), ServeError> {
        self.apply_entries(configs).map_err(Mistake::into_error)
    }

    fn apply_entries(&self, configs: &mut [DeploymentConfig]) -> Result<(), Mistake> {
        for entry in &self.deployments {
            let mistake = |invalid| Mistake::in_deployment(&self.name, &entry.name, invalid);
            entry.check().map_err(mistake)?;
            let Some(config) = configs.iter_mut().find(|c| c.name == entry.name) else {
                let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
                return Err(Mistake {
                    app: Some(self.name.clone()),
                    deployment: Some(entry.name.clone()),
                    key: Some("name".to_owned()),
                    message: format!(
                        "application `{}` has no deployment `{}`; its deployments are: {}",
                        self.name,
                        entry.name,
                        names.join(", ")
                    ),
                });
            };
            if entry.num_replicas.is_some() && config.autoscaling.is_some() {
                return Err(mistake(replicas_with_autoscaling()));
            }
            entry.apply_to(config);
        }
        Ok(())
    }
}

/// A config file as read: its values, and its text, so that what applying it finds wrong names
/// the file and the line too. The command line reads its `--config` with this.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    pub(crate) config: ServeConfig,
    source: Source,
}

impl ConfigFile {
    /// Reads a config file, as [`ServeConfig::load`].
    pub(crate) fn load(path: impl AsRef<Path>) -> Result<Self, ServeError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Format::Toml,
            Some("yaml" | "yml") => Format::Yaml,
            _ => {
                return Err(config_error(format!(
                    "{}: a config file ends in .yaml, .yml or .toml",
                    path.display()
                )));
            }
        };
        let source = Source::new(Some(path), text, format);
        let config = ServeConfig::read(&source)?;
        Ok(Self { config, source })
    }

    /// Applies the entries of application `app` (an index into `config.applications`) to
    /// `configs`, as [`ApplicationConfig::apply`] does.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn apply(
        &self,
        app: usize,
        configs: &mut [DeploymentConfig],
    ) -> Result<(), ServeError> {
        match self.config.applications.get(app) {
            Some(app) => app
                .apply_entries(configs)
                .map_err(|m| self.source.locate(m)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
