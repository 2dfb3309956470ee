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
//! Every key of Ray Serve's config schema (`ServeDeploySchema` and what it holds: `http_options`,
//! `grpc_options`, `logging_config`, each application's and deployment's keys, `ray_actor_options`)
//! is accepted, so a file that Ray's `serve build` wrote loads as it is. Keys that mean something
//! here are honoured; keys that have no effect here (`runtime_env`, `grpc_options`,
//! `placement_group_bundles`, ..) are accepted and named in one log line at start
//! ([`ServeConfig::ignored_keys`]). The guide's chapter "The command line and config files" has
//! the table of both.
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
use super::logging::LoggingConfig;
use super::rules;
use super::validate::{Invalid, Keys, check, config_error};
use crate::error::ServeError;
use lines::Format;
use source::{Mistake, Source};

mod lines;
mod source;

/// A whole config file: Ray Serve's `ServeDeploySchema`, plus `cluster` (cluster mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Which nodes run an HTTP proxy (Ray's top-level key; `http_options.proxy_location` says the
    /// same): `HeadOnly`, `EveryNode` (Ray's default; one process has one proxy either way) or
    /// `Disabled` (no HTTP: handles only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_location: Option<ProxyLocation>,
    /// Where the HTTP proxy listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_options: Option<HttpOptionsConfig>,
    /// Ray's gRPC proxy. There is none here: accepted, and named as ignored at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_options: Option<GrpcOptionsConfig>,
    /// How the process logs: the proxy, and the default of every deployment (see
    /// [`LoggingConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging_config: Option<LoggingConfig>,
    /// Ray's `target_capacity` (a percentage scaling every deployment down for a rollout):
    /// accepted, and named as ignored at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_capacity: Option<f64>,
    /// Cluster mode: the NATS server(s), the cluster's name and credentials (see
    /// [`ClusterOptions`]). Absent: one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterOptions>,
    /// The applications. A binary serves one: the one `serve run NAME` names, else the first,
    /// whose `import_path` picks among the applications the binary offers.
    pub applications: Vec<ApplicationConfig>,
}

/// `http_options`: Ray's `HTTPOptionsSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptionsConfig {
    /// The host to listen on (default `127.0.0.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port to listen on (default 8000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// A path every application's route prefix is mounted under (`/api`: the application at `/`
    /// serves `/api`, the one at `/b` serves `/api/b`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_path: Option<String>,
    /// How long an HTTP request may run before it is cancelled and answered 408 (default: no
    /// limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_s: Option<f64>,
    /// Ray's idle keep-alive timeout: accepted, and named as ignored at start (the proxy keeps
    /// idle connections until the client closes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_timeout_s: Option<f64>,
    /// HTTPS is not served here (terminate TLS in front of the proxy): a value is an error, a
    /// `null` (as `serve build` writes it) is fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_keyfile: Option<String>,
    /// As `ssl_keyfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_certfile: Option<String>,
    /// As `ssl_keyfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_keyfile_password: Option<String>,
    /// As `ssl_keyfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_ca_certs: Option<String>,
    /// In cluster mode, which nodes run an HTTP proxy (default `HeadOnly`); the top-level
    /// `proxy_location` says the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_location: Option<ProxyLocation>,
}

/// `grpc_options`: Ray's `gRPCOptionsSchema`. Accepted so Ray's files load; there is no gRPC proxy
/// here, so it has no effect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcOptionsConfig {
    /// The gRPC proxy's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The servicer functions to add to the gRPC server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_servicer_functions: Option<Vec<String>>,
    /// The gRPC request timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_s: Option<f64>,
}

/// One application: Ray's `ServeApplicationSchema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationConfig {
    /// The application's name (default `default`, as in Ray).
    #[serde(default = "default_name")]
    pub name: String,
    /// The HTTP route prefix it is served under (default `/`).
    #[serde(default = "root_prefix")]
    pub route_prefix: String,
    /// Which of the binary's applications this is, as Ray writes it (`hello:language_classifier`):
    /// the part after `:` (or after the last `.`) names one that the binary offers
    /// (`serve_core::apps().app("language_classifier", ..)`). A binary offering one application
    /// runs it whatever this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_path: Option<String>,
    /// Ray's Python environment (pip packages, working directory): accepted, and named as ignored
    /// at start when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_env: Option<serde_json::Value>,
    /// Ray's per-application host (deprecated there): accepted, and named as ignored at start;
    /// use `http_options.host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Ray's per-application port (deprecated there): as `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Arguments for an application built from them (`AppsBuilder::app_with_args`), deserialised
    /// into its argument type. An application built without arguments refuses any but `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<serde_json::Value>,
    /// How this application's deployments log; each key inherits from the top level's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging_config: Option<LoggingConfig>,
    /// Ray's custom application-level autoscaling policy: accepted, and named as ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling_policy: Option<serde_json::Value>,
    /// Ray's external scaler switch: accepted, and named as ignored when `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_scaler_enabled: Option<bool>,
    /// Per-deployment settings; deployments not listed keep the code's defaults.
    #[serde(default)]
    pub deployments: Vec<DeploymentEntry>,
}

fn default_name() -> String {
    "default".into()
}

fn root_prefix() -> String {
    "/".into()
}

/// `num_replicas`: a count, or `"auto"` (autoscale with Ray's defaults for it: between 1 and 100
/// replicas, 2 ongoing requests each; an `autoscaling_config` given with it is used as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumReplicas {
    /// This many replicas.
    Count(usize),
    /// Autoscale.
    Auto,
}

impl Serialize for NumReplicas {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            NumReplicas::Count(n) => serializer.serialize_u64(*n as u64),
            NumReplicas::Auto => serializer.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for NumReplicas {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumReplicas;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of replicas or \"auto\"")
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<NumReplicas, E> {
                Ok(NumReplicas::Count(usize::try_from(n).unwrap_or(usize::MAX)))
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<NumReplicas, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom(format!("`num_replicas` must be at least 1, not {n}")))
                    .and_then(|n| self.visit_u64(n))
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<NumReplicas, E> {
                match s {
                    "auto" => Ok(NumReplicas::Auto),
                    _ => Err(E::custom(format!(
                        "`num_replicas` is a number of replicas or \"auto\", not \"{s}\""
                    ))),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One deployment's settings: Ray Serve's `DeploymentSchema`; absent values keep the code's
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentEntry {
    /// The deployment's name (as `config` prints it: `Inner`, `Inner_1`, ..).
    pub name: String,
    /// How many replicas, or `"auto"`. A count is not for a deployment that autoscales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_replicas: Option<NumReplicas>,
    /// Ray's per-deployment route (deprecated there): accepted, and named as ignored; the
    /// application's `route_prefix` is where it is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_prefix: Option<String>,
    /// How many requests one replica runs at once (Ray's older `max_concurrent_queries` too).
    #[serde(
        default,
        alias = "max_concurrent_queries",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_ongoing_requests: Option<usize>,
    /// How many requests may wait for a replica; `-1` is unlimited (as in Ray Serve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued_requests: Option<i64>,
    /// Any value (mapping, list, scalar), handed to the deployment's `reconfigure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_config: Option<serde_json::Value>,
    /// Autoscaling; replaces the code's (keys not given take Ray Serve's defaults, not the code's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling_config: Option<AutoscalingConfig>,
    /// Ray's polling period of a stopping replica: accepted and named as ignored (a replica here
    /// is told at once when its last request ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_shutdown_wait_loop_s: Option<f64>,
    /// How long a stopping replica may take to finish its requests, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_shutdown_timeout_s: Option<f64>,
    /// How often each replica's health is checked, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_period_s: Option<f64>,
    /// How long one health check may take, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_timeout_s: Option<f64>,
    /// What each replica reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray_actor_options: Option<RayActorOptions>,
    /// Ray's placement group per replica: accepted, and named as ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_group_bundles: Option<Vec<BTreeMap<String, f64>>>,
    /// Ray's placement group strategy (`PACK`, `SPREAD`, `STRICT_PACK`, `STRICT_SPREAD`):
    /// accepted, and named as ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_group_strategy: Option<String>,
    /// Ray's cap of replicas per node: accepted, and named as ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<usize>,
    /// How this deployment's replicas log; each key inherits from the application's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging_config: Option<LoggingConfig>,
    /// Ray's custom request router: accepted, and named as ignored (replicas are chosen by power
    /// of two choices here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_router_config: Option<serde_json::Value>,
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
    /// Only on nodes with this accelerator, as in Ray: each replica reserves 0.001 of the custom
    /// resource `accelerator_type:<type>`, which a node offers with `--resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator_type: Option<String>,
    /// Ray's heap memory reservation: accepted, and named as ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<f64>,
    /// Ray's object store reservation: accepted, and named as ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store_memory: Option<f64>,
    /// Ray's per-replica Python environment: accepted, and named as ignored when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_env: Option<serde_json::Value>,
}

/// The amount of `accelerator_type:<type>` a replica reserves for `ray_actor_options.
/// accelerator_type`, as Ray does.
pub const ACCELERATOR_TYPE_AMOUNT: f64 = 0.001;

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
        let top = |key: &str, message: String| Mistake {
            app: None,
            deployment: None,
            key: Some(key.to_owned()),
            message,
        };
        if let Some(http) = &self.http_options {
            if let Some(seconds) = http.request_timeout_s {
                let key = "http_options.request_timeout_s";
                rules::number("request_timeout_s", key, seconds).map_err(|m| top(key, m))?;
            }
            if let Some(seconds) = http.keep_alive_timeout_s {
                let key = "http_options.keep_alive_timeout_s";
                non_negative(key, seconds).map_err(|m| top(key, m))?;
            }
            if let Some(root) = &http.root_path
                && !root.is_empty()
                && !root.starts_with('/')
            {
                let key = "http_options.root_path";
                return Err(top(
                    key,
                    format!("`{key}` must be empty or start with `/`, not `{root}`"),
                ));
            }
            let tls = [
                ("ssl_keyfile", &http.ssl_keyfile),
                ("ssl_certfile", &http.ssl_certfile),
                ("ssl_keyfile_password", &http.ssl_keyfile_password),
                ("ssl_ca_certs", &http.ssl_ca_certs),
            ];
            if let Some((name, _)) = tls.iter().find(|(_, v)| v.is_some()) {
                let key = format!("http_options.{name}");
                return Err(top(
                    &key,
                    format!(
                        "`{key}`: the proxy serves plain HTTP only; terminate TLS in front of it \
                         (a load balancer, nginx) and leave the ssl_* options out"
                    ),
                ));
            }
            if let (Some(outer), Some(inner)) = (self.proxy_location, http.proxy_location)
                && outer != inner
            {
                return Err(top(
                    "proxy_location",
                    format!(
                        "`proxy_location` ({outer:?}) and `http_options.proxy_location` \
                         ({inner:?}) disagree: give one"
                    ),
                ));
            }
        }
        if let Some(capacity) = self.target_capacity
            && !(capacity.is_finite() && (0.0..=100.0).contains(&capacity))
        {
            return Err(top(
                "target_capacity",
                format!("`target_capacity` must be a percentage from 0 to 100, not {capacity}"),
            ));
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate().map_err(|m| top("cluster", m))?;
        }
        let mut names = std::collections::HashSet::new();
        for app in &self.applications {
            let mistake = |key: &str, message: String| Mistake {
                app: Some(app.name.clone()),
                deployment: None,
                key: Some(key.to_owned()),
                message: format!("application `{}`: {message}", app.name),
            };
            if !names.insert(app.name.as_str()) {
                return Err(mistake(
                    "name",
                    "two applications have this name; each needs its own".into(),
                ));
            }
            if !app.route_prefix.starts_with('/') {
                return Err(mistake(
                    "route_prefix",
                    format!("route_prefix `{}` must start with `/`", app.route_prefix),
                ));
            }
            if let Some(path) = &app.import_path {
                import_attribute(path).map_err(|m| mistake("import_path", m))?;
            }
            for d in &app.deployments {
                d.check()
                    .map_err(|e| Mistake::in_deployment(&app.name, &d.name, e))?;
            }
        }
        Ok(())
    }

    /// Where HTTP proxies run: the top-level `proxy_location`, else `http_options`'s.
    pub fn proxy_location(&self) -> Option<ProxyLocation> {
        let http = self.http_options.as_ref().and_then(|h| h.proxy_location);
        self.proxy_location.or(http)
    }

    /// The keys given that have no effect here (Ray's `runtime_env`, `grpc_options`, placement
    /// groups, ..), each with where it is: what the command line names in one log line at start.
    /// Empty values (`runtime_env: {}`, `null`) are not named: they ask for nothing.
    pub fn ignored_keys(&self) -> Vec<String> {
        let mut ignored = Vec::new();
        if self.grpc_options.is_some() {
            ignored.push("grpc_options (no gRPC proxy here)".to_owned());
        }
        if self.target_capacity.is_some() {
            ignored.push("target_capacity".to_owned());
        }
        if let Some(seconds) = self
            .http_options
            .as_ref()
            .and_then(|h| h.keep_alive_timeout_s)
        {
            ignored.push(format!("http_options.keep_alive_timeout_s ({seconds})"));
        }
        if let Some(logging) = &self.logging_config {
            ignored.extend(unused_log_attributes(logging, "logging_config"));
        }
        for app in &self.applications {
            let at = |key: &str| format!("{key} (application `{}`)", app.name);
            if given(&app.runtime_env) {
                ignored.push(at("runtime_env"));
            }
            for (key, set) in [
                ("host", app.host.is_some()),
                ("port", app.port.is_some()),
                ("autoscaling_policy", given(&app.autoscaling_policy)),
                (
                    "external_scaler_enabled",
                    app.external_scaler_enabled == Some(true),
                ),
            ] {
                if set {
                    ignored.push(at(key));
                }
            }
            if let Some(logging) = &app.logging_config {
                ignored.extend(own_logging_ignored(logging, &at("logging_config")));
            }
            for d in &app.deployments {
                let at = |key: &str| format!("{key} (deployment `{}`)", d.name);
                let options = d.ray_actor_options.as_ref();
                for (key, set) in [
                    ("route_prefix", d.route_prefix.is_some()),
                    (
                        "graceful_shutdown_wait_loop_s",
                        d.graceful_shutdown_wait_loop_s.is_some(),
                    ),
                    (
                        "placement_group_bundles",
                        d.placement_group_bundles.is_some(),
                    ),
                    (
                        "placement_group_strategy",
                        d.placement_group_strategy.is_some(),
                    ),
                    ("max_replicas_per_node", d.max_replicas_per_node.is_some()),
                    ("request_router_config", given(&d.request_router_config)),
                    (
                        "ray_actor_options.memory",
                        options.is_some_and(|o| o.memory.is_some()),
                    ),
                    (
                        "ray_actor_options.object_store_memory",
                        options.is_some_and(|o| o.object_store_memory.is_some()),
                    ),
                    (
                        "ray_actor_options.runtime_env",
                        options.is_some_and(|o| given(&o.runtime_env)),
                    ),
                ] {
                    if set {
                        ignored.push(at(key));
                    }
                }
                if let Some(logging) = &d.logging_config {
                    ignored.extend(own_logging_ignored(logging, &at("logging_config")));
                }
            }
        }
        ignored
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
            proxy_location: None,
            http_options: Some(HttpOptionsConfig {
                host: Some(host.to_owned()),
                port: Some(port),
                ..HttpOptionsConfig::default()
            }),
            grpc_options: None,
            logging_config: None,
            target_capacity: None,
            cluster: None,
            applications: vec![ApplicationConfig {
                name: name.to_owned(),
                route_prefix: route_prefix.to_owned(),
                import_path: None,
                runtime_env: None,
                host: None,
                port: None,
                args: None,
                logging_config: None,
                autoscaling_policy: None,
                external_scaler_enabled: None,
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

/// Whether a free-form value asks for something: not `null`, not `{}` or `[]`.
fn given(value: &Option<serde_json::Value>) -> bool {
    match value {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Object(map)) => !map.is_empty(),
        Some(serde_json::Value::Array(list)) => !list.is_empty(),
        Some(_) => true,
    }
}

/// The `additional_log_standard_attrs` of `logging` that have no equivalent here.
fn unused_log_attributes(logging: &LoggingConfig, at: &str) -> Vec<String> {
    let attrs = logging.additional_log_standard_attrs.iter().flatten();
    attrs
        .filter(|a| !matches!(a.as_str(), "name" | "filename" | "pathname" | "lineno"))
        .map(|a| format!("{at}.additional_log_standard_attrs `{a}`"))
        .collect()
}

/// What an application's or deployment's own `logging_config` asks that only the process can do
/// (its own directory, attributes, encoding), named as ignored.
fn own_logging_ignored(logging: &LoggingConfig, at: &str) -> Vec<String> {
    let mut ignored = Vec::new();
    if logging.logs_dir.is_some() {
        ignored.push(format!("{at}.logs_dir (the top level's is the process's)"));
    }
    if given_list(&logging.additional_log_standard_attrs) {
        ignored.push(format!(
            "{at}.additional_log_standard_attrs (the top level's apply)"
        ));
    }
    ignored
}

fn given_list(list: &Option<Vec<String>>) -> bool {
    list.as_ref().is_some_and(|l| !l.is_empty())
}

/// A number of seconds of at least 0, displayed as `key`.
fn non_negative(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "`{key}` must be a number of at least 0, not {value}"
        ))
    }
}

/// The application an import path names, as Ray reads one: `module:attribute` (at most one
/// `:`, not first or last), or `module.attribute` (the part after the last `.`).
pub(crate) fn import_attribute(path: &str) -> Result<&str, String> {
    let invalid = |why: &str| format!("import_path `{path}`: {why}");
    if let Some((module, attribute)) = path.split_once(':') {
        if attribute.contains(':') {
            return Err(invalid("an import path has at most one `:`"));
        }
        if module.is_empty() || attribute.is_empty() {
            return Err(invalid("an import path does not start or end with `:`"));
        }
        return Ok(attribute);
    }
    match path.rsplit_once('.') {
        Some((module, attribute)) if !module.is_empty() && !attribute.is_empty() => Ok(attribute),
        Some(_) => Err(invalid("an import path does not start or end with `.`")),
        None => Err(invalid(
            "an import path is `module:application` (or `module.application`), like \
             `hello:language_classifier`",
        )),
    }
}

impl DeploymentEntry {
    /// Every option of `config`, as a config file spells it.
    pub(crate) fn complete(config: &DeploymentConfig) -> Self {
        let autoscaling = config.autoscaling.clone().map(|mut a| {
            a.upscaling_factor = Some(a.upscaling_factor.unwrap_or(1.0));
            a.downscaling_factor = Some(a.downscaling_factor.unwrap_or(1.0));
            a
        });
        let resources = &config.resources;
        Self {
            name: config.name.clone(),
            num_replicas: autoscaling
                .is_none()
                .then_some(NumReplicas::Count(config.num_replicas)),
            route_prefix: None,
            max_ongoing_requests: Some(config.max_ongoing_requests),
            max_queued_requests: Some(
                config
                    .max_queued_requests
                    .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            ),
            user_config: config.user_config.clone(),
            autoscaling_config: autoscaling,
            graceful_shutdown_wait_loop_s: None,
            graceful_shutdown_timeout_s: Some(config.graceful_shutdown_timeout_s),
            health_check_period_s: Some(config.health_check_period_s),
            health_check_timeout_s: Some(config.health_check_timeout_s),
            ray_actor_options: Some(RayActorOptions {
                num_cpus: Some(resources.num_cpus),
                num_gpus: Some(resources.num_gpus),
                resources: Some(resources.custom.clone()),
                ..RayActorOptions::default()
            }),
            placement_group_bundles: None,
            placement_group_strategy: None,
            max_replicas_per_node: None,
            logging_config: (config.logging != LoggingConfig::default())
                .then(|| config.logging.clone()),
            request_router_config: None,
        }
    }

    /// Each value by the rules of its key (`rules.rs`), named as the file names it
    /// (`autoscaling_config.min_replicas`, `ray_actor_options.num_cpus`): the entry applied to a
    /// default configuration, checked as [`DeploymentConfig::validate`] checks one. And not both
    /// a count of `num_replicas` and `autoscaling_config`; `max_queued_requests` may be `-1`
    /// (unlimited). Ray's keys that have no effect here are checked by Ray's rules too, so a
    /// file refused by Ray is refused here.
    fn check(&self) -> Result<(), Invalid> {
        if matches!(self.num_replicas, Some(NumReplicas::Count(_)))
            && self.autoscaling_config.is_some()
        {
            return Err(replicas_with_autoscaling());
        }
        if let Some(n) = self.max_queued_requests {
            let key = "max_queued_requests";
            rules::count_or_unlimited(key, key, n).map_err(|m| Invalid::new(key, m))?;
        }
        if let Some(seconds) = self.graceful_shutdown_wait_loop_s {
            let key = "graceful_shutdown_wait_loop_s";
            non_negative(key, seconds).map_err(|m| Invalid::new(key, m))?;
        }
        if self.max_replicas_per_node == Some(0) {
            let key = "max_replicas_per_node";
            return Err(Invalid::new(
                key,
                format!("`{key}` must be at least 1, not 0"),
            ));
        }
        if let Some(strategy) = &self.placement_group_strategy
            && !["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"].contains(&strategy.as_str())
        {
            let key = "placement_group_strategy";
            return Err(Invalid::new(
                key,
                format!("`{key}` is PACK, SPREAD, STRICT_PACK or STRICT_SPREAD, not `{strategy}`"),
            ));
        }
        if let Some(options) = &self.ray_actor_options {
            for (key, value) in [
                ("ray_actor_options.memory", options.memory),
                (
                    "ray_actor_options.object_store_memory",
                    options.object_store_memory,
                ),
            ] {
                if let Some(value) = value {
                    non_negative(key, value).map_err(|m| Invalid::new(key, m))?;
                }
            }
            if options.accelerator_type.as_deref() == Some("") {
                let key = "ray_actor_options.accelerator_type";
                return Err(Invalid::new(key, format!("`{key}` is empty")));
            }
        }
        let mut config = DeploymentConfig::new(self.name.clone());
        self.apply_to(&mut config);
        check(&config, Keys::FILE)
    }

    /// Sets each value given on `config` (checked values: see `check`).
    fn apply_to(&self, config: &mut DeploymentConfig) {
        match (self.num_replicas, &self.autoscaling_config) {
            (_, Some(autoscaling)) => config.autoscaling = Some(autoscaling.clone()),
            (Some(NumReplicas::Auto), None) => config.autoscaling = Some(auto_replicas()),
            (Some(NumReplicas::Count(n)), None) => config.num_replicas = n,
            (None, None) => {}
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
            if let Some(accelerator) = &options.accelerator_type {
                resources.custom.insert(
                    format!("accelerator_type:{accelerator}"),
                    ACCELERATOR_TYPE_AMOUNT,
                );
            }
        }
        if let Some(logging) = &self.logging_config {
            config.logging = logging.or(&config.logging);
        }
    }
}

/// What `num_replicas: auto` stands for, as in Ray: autoscale between 1 and 100 replicas, 2
/// ongoing requests each.
fn auto_replicas() -> AutoscalingConfig {
    AutoscalingConfig::default()
        .min_replicas(1)
        .max_replicas(100)
        .target_ongoing_requests(2.0)
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
            if matches!(entry.num_replicas, Some(NumReplicas::Count(_)))
                && config.autoscaling.is_some()
            {
                return Err(mistake(replicas_with_autoscaling()));
            }
            entry.apply_to(config);
        }
        if let Some(logging) = &self.logging_config {
            for config in configs.iter_mut() {
                config.logging = config.logging.or(logging);
            }
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

    /// Reads a config sent as JSON (the control API's `PUT`): JSON is YAML, so it is read as
    /// YAML, with the same checks and errors (`line 3: ..`).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn from_json(text: String) -> Result<Self, ServeError> {
        let source = Source::new(None, text, Format::Yaml);
        let config = ServeConfig::read(&source)?;
        Ok(Self { config, source })
    }

    /// Applies the entries of application `app` (an index into `config.applications`) to
    /// `configs`, as [`ApplicationConfig::apply`] does, and then the top level's
    /// `logging_config` (but its `log_level`, the process's) under what each deployment has.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn apply(
        &self,
        app: usize,
        configs: &mut [DeploymentConfig],
    ) -> Result<(), ServeError> {
        if let Some(app) = self.config.applications.get(app) {
            app.apply_entries(configs)
                .map_err(|m| self.source.locate(m))?;
        }
        // The top level's level is the process's (the log filter's): a deployment without one of
        // its own follows it, and `RUST_LOG`, without taking it as its own.
        if let Some(logging) = &self.config.logging_config {
            let inherited = LoggingConfig {
                log_level: None,
                ..logging.clone()
            };
            for config in configs.iter_mut() {
                config.logging = config.logging.or(&inherited);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
