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
//! errors that name the deployment and the key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::autoscaling::AutoscalingConfig;
use super::deployment::DeploymentConfig;
use super::validate::{
    check_autoscaling, check_custom_resources, config_error, non_negative, positive,
};
use crate::error::ServeError;

/// A whole config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Where the HTTP proxy listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_options: Option<HttpOptionsConfig>,
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
    /// Reads a config file: YAML (`.yaml`, `.yml`) or TOML (`.toml`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ServeError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_error(format!("cannot read config file {}: {e}", path.display()))
        })?;
        let parsed = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml(&text),
            Some("yaml" | "yml") => Self::from_yaml(&text),
            _ => Err(config_error(
                "a config file ends in .yaml, .yml or .toml".into(),
            )),
        };
        parsed.map_err(|e| {
            config_error(format!(
                "{}: {}",
                path.display(),
                e.message().unwrap_or_default()
            ))
        })
    }

    /// Parses YAML.
    pub fn from_yaml(text: &str) -> Result<Self, ServeError> {
        let config: Self =
            serde_yaml_ng::from_str(text).map_err(|e| config_error(e.to_string()))?;
        config.validate()
    }

    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Self, ServeError> {
        let config: Self = toml::from_str(text).map_err(|e| config_error(e.to_string()))?;
        config.validate()
    }

    fn validate(self) -> Result<Self, ServeError> {
        for app in &self.applications {
            if !app.route_prefix.starts_with('/') {
                return Err(config_error(format!(
                    "application `{}`: route_prefix `{}` must start with `/`",
                    app.name, app.route_prefix
                )));
            }
            for d in &app.deployments {
                d.check()
                    .map_err(|e| config_error(format!("deployment `{}`: {e}", d.name)))?;
            }
        }
        Ok(self)
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
            }),
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

    /// Each value in range, and not both `num_replicas` and `autoscaling_config`.
    fn check(&self) -> Result<(), String> {
        if self.num_replicas == Some(0) || self.max_ongoing_requests == Some(0) {
            return Err("num_replicas and max_ongoing_requests must be at least 1".into());
        }
        if self.num_replicas.is_some() && self.autoscaling_config.is_some() {
            return Err(
                "`num_replicas` and `autoscaling_config` cannot both be set: with \
                 autoscaling the number of replicas follows the load; set the starting count \
                 with `autoscaling_config.initial_replicas`"
                    .into(),
            );
        }
        if let Some(n) = self.max_queued_requests
            && n != -1
            && n < 1
        {
            return Err(format!(
                "`max_queued_requests` must be -1 (unlimited) or at least 1, not {n}"
            ));
        }
        let seconds = [
            ("health_check_period_s", self.health_check_period_s),
            ("health_check_timeout_s", self.health_check_timeout_s),
            (
                "graceful_shutdown_timeout_s",
                self.graceful_shutdown_timeout_s,
            ),
        ];
        for (key, value) in seconds {
            value.map_or(Ok(()), |v| positive(key, v))?;
        }
        if let Some(a) = &self.autoscaling_config {
            check_autoscaling("autoscaling_config.", a)?;
        }
        if let Some(r) = &self.ray_actor_options {
            let prefix = "ray_actor_options.";
            r.num_cpus
                .map_or(Ok(()), |v| non_negative(&format!("{prefix}num_cpus"), v))?;
            r.num_gpus
                .map_or(Ok(()), |v| non_negative(&format!("{prefix}num_gpus"), v))?;
            if let Some(custom) = &r.resources {
                check_custom_resources(prefix, custom)?;
            }
        }
        Ok(())
    }
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
        for entry in &self.deployments {
            entry
                .check()
                .map_err(|e| config_error(format!("deployment `{}`: {e}", entry.name)))?;
            let Some(config) = configs.iter_mut().find(|c| c.name == entry.name) else {
                let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
                return Err(config_error(format!(
                    "application `{}` has no deployment `{}`; its deployments are: {}",
                    self.name,
                    entry.name,
                    names.join(", ")
                )));
            };
            if let Some(autoscaling) = &entry.autoscaling_config {
                config.autoscaling = Some(autoscaling.clone());
            }
            if let Some(n) = entry.num_replicas {
                if config.autoscaling.is_some() {
                    return Err(config_error(format!(
                        "deployment `{}` autoscales, so its `num_replicas` cannot be set: set \
                         its `autoscaling_config` (e.g. `initial_replicas`, `min_replicas`, \
                         `max_replicas`) instead",
                        entry.name
                    )));
                }
                config.num_replicas = n;
            }
            if let Some(n) = entry.max_ongoing_requests {
                config.max_ongoing_requests = n;
            }
            if let Some(n) = entry.max_queued_requests {
                // `check` let through only -1 and counts of at least 1.
                config.max_queued_requests = usize::try_from(n).ok();
            }
            if let Some(s) = entry.health_check_period_s {
                config.health_check_period_s = s;
            }
            if let Some(s) = entry.health_check_timeout_s {
                config.health_check_timeout_s = s;
            }
            if let Some(s) = entry.graceful_shutdown_timeout_s {
                config.graceful_shutdown_timeout_s = s;
            }
            if let Some(value) = &entry.user_config {
                config.user_config = Some(value.clone());
            }
            if let Some(options) = &entry.ray_actor_options {
                if let Some(n) = options.num_cpus {
                    config.resources.num_cpus = n;
                }
                if let Some(n) = options.num_gpus {
                    config.resources.num_gpus = n;
                }
                if let Some(custom) = &options.resources {
                    config.resources.custom = custom.clone();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<DeploymentConfig> {
        vec![
            DeploymentConfig::new("SpanishResponder"),
            DeploymentConfig::new("FrenchResponder"),
            DeploymentConfig::new("LanguageClassifier"),
        ]
    }

    #[test]
    fn yaml_and_toml_override_the_defaults() {
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n    num_replicas: 3\n";
        let toml = "[[applications]]\nname = \"hello\"\n[[applications.deployments]]\nname = \"SpanishResponder\"\nnum_replicas = 3\n";
        for config in [
            ServeConfig::from_yaml(yaml).unwrap(),
            ServeConfig::from_toml(toml).unwrap(),
        ] {
            let app = &config.applications[0];
            assert_eq!(app.route_prefix, "/");
            let mut configs = defaults();
            app.apply(&mut configs).unwrap();
            assert_eq!(configs[0].num_replicas, 3);
            assert_eq!(
                configs[0].max_ongoing_requests, 5,
                "untouched values keep the default"
            );
            assert_eq!(configs[1].num_replicas, 1);
        }
    }

    #[test]
    fn unknown_keys_name_the_key_and_its_position() {
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n    num_replica: 3\n";
        let err = ServeConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains("unknown field `num_replica`"), "{err}");
        assert!(err.contains("line 5"), "{err}");

        let toml = "[[applications]]\nname = \"hello\"\nroute_prefx = \"/\"\n";
        let err = ServeConfig::from_toml(toml).unwrap_err().to_string();
        assert!(err.contains("unknown field `route_prefx`"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_deployment_that_does_not_exist_lists_the_ones_that_do() {
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: GermanResponder\n    num_replicas: 2\n";
        let config = ServeConfig::from_yaml(yaml).unwrap();
        let err = config.applications[0]
            .apply(&mut defaults())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no deployment `GermanResponder`"), "{err}");
        assert!(
            err.contains("SpanishResponder, FrenchResponder, LanguageClassifier"),
            "{err}"
        );
    }

    #[test]
    fn printed_config_reads_back_the_same() {
        let config = ServeConfig::for_application("hello", "/", "127.0.0.1", 8000, &defaults());
        assert_eq!(ServeConfig::from_yaml(&config.to_yaml()).unwrap(), config);
        assert_eq!(
            ServeConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
            config
        );
    }

    #[test]
    fn http_options_take_a_request_timeout() {
        let yaml = "http_options:\n  port: 9000\n  request_timeout_s: 2.5\napplications: []\n";
        let options = ServeConfig::from_yaml(yaml).unwrap().http_options.unwrap();
        assert_eq!(
            (options.port, options.request_timeout_s),
            (Some(9000), Some(2.5))
        );
    }

    #[test]
    fn zero_replicas_is_refused() {
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n    num_replicas: 0\n";
        assert!(ServeConfig::from_yaml(yaml).is_err());
    }

    /// The same file as YAML and as TOML: every new key of a deployment entry.
    const FULL_YAML: &str = "\
applications:
- name: hello
  deployments:
  - name: SpanishResponder
    max_queued_requests: 100
    health_check_period_s: 0.5
    health_check_timeout_s: 3
    graceful_shutdown_timeout_s: 7.25
    user_config:
      greeting: Hola
      weights: [0.1, 2]
      nested: {enabled: true, missing: null}
    ray_actor_options:
      num_cpus: 0.5
      num_gpus: 1
      resources: {a100: 1, \"accelerator_type:A100\": 0.25}
  - name: FrenchResponder
    max_queued_requests: -1
    user_config: 3
    autoscaling_config:
      min_replicas: 0
      max_replicas: 8
      target_ongoing_requests: 1.5
      upscale_delay_s: 0
      downscaling_factor: 0.5
";

    const FULL_TOML: &str = r#"
[[applications]]
name = "hello"

[[applications.deployments]]
name = "SpanishResponder"
max_queued_requests = 100
health_check_period_s = 0.5
health_check_timeout_s = 3
graceful_shutdown_timeout_s = 7.25
user_config = { greeting = "Hola", weights = [0.1, 2], nested = { enabled = true } }
ray_actor_options = { num_cpus = 0.5, num_gpus = 1, resources = { a100 = 1, "accelerator_type:A100" = 0.25 } }

[[applications.deployments]]
name = "FrenchResponder"
max_queued_requests = -1
user_config = 3

[applications.deployments.autoscaling_config]
min_replicas = 0
max_replicas = 8
target_ongoing_requests = 1.5
upscale_delay_s = 0
downscaling_factor = 0.5
"#;

    fn applied(config: &ServeConfig) -> Vec<DeploymentConfig> {
        let mut configs = defaults();
        configs[0].max_queued_requests = Some(3); // a code value that the file keeps
        configs[1].max_queued_requests = Some(3); // and one that it lifts
        configs[0].resources.custom.insert("tpu".into(), 1.0); // replaced by the file's set
        config.applications[0].apply(&mut configs).unwrap();
        configs
    }

    #[test]
    fn every_deployment_key_is_read_and_applied_from_yaml_and_toml() {
        let yaml = applied(&ServeConfig::from_yaml(FULL_YAML).unwrap());
        let toml = applied(&ServeConfig::from_toml(FULL_TOML).unwrap());
        for (format, configs) in [("yaml", &yaml), ("toml", &toml)] {
            let spanish = &configs[0];
            assert_eq!(spanish.max_queued_requests, Some(100), "{format}");
            assert_eq!(spanish.health_check_period_s, 0.5, "{format}");
            assert_eq!(spanish.health_check_timeout_s, 3.0, "{format}");
            assert_eq!(spanish.graceful_shutdown_timeout_s, 7.25, "{format}");
            assert_eq!(spanish.resources.num_cpus, 0.5, "{format}");
            assert_eq!(spanish.resources.num_gpus, 1.0, "{format}");
            let custom: Vec<_> = spanish.resources.custom.iter().collect();
            assert_eq!(
                custom,
                [
                    (&"a100".to_owned(), &1.0),
                    (&"accelerator_type:A100".to_owned(), &0.25)
                ],
                "{format}: the file's resources replace the code's"
            );
            let user_config = spanish.user_config.as_ref().unwrap();
            assert_eq!(user_config["greeting"], "Hola", "{format}");
            assert_eq!(
                user_config["weights"],
                serde_json::json!([0.1, 2]),
                "{format}"
            );
            assert_eq!(user_config["nested"]["enabled"], true, "{format}");
            assert!(spanish.autoscaling.is_none(), "{format}");
            assert_eq!(spanish.num_replicas, 1, "{format}");

            let french = &configs[1];
            assert_eq!(
                french.max_queued_requests, None,
                "{format}: -1 is unlimited"
            );
            assert_eq!(french.user_config, Some(serde_json::json!(3)), "{format}");
            let expected = AutoscalingConfig::default()
                .min_replicas(0)
                .max_replicas(8)
                .target_ongoing_requests(1.5)
                .upscale_delay_s(0.0)
                .downscaling_factor(0.5);
            assert_eq!(french.autoscaling, Some(expected), "{format}");
            assert_eq!(french.health_check_period_s, 10.0, "{format}: untouched");
            assert_eq!(french.resources, Default::default(), "{format}: untouched");

            assert_eq!(configs[2], DeploymentConfig::new("LanguageClassifier"));
        }
        // YAML has null, TOML does not: otherwise the two files say the same.
        let mut yaml = yaml;
        let nested = &mut yaml[0].user_config.as_mut().unwrap()["nested"];
        nested.as_object_mut().unwrap().remove("missing");
        assert_eq!(yaml, toml);
    }

    #[test]
    fn an_autoscaling_config_replaces_the_codes_whole() {
        let mut configs = defaults();
        configs[1] = DeploymentConfig::new("FrenchResponder").autoscaling(
            AutoscalingConfig::default()
                .max_replicas(4)
                .upscale_delay_s(1.0)
                .upscaling_factor(2.0),
        );
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: FrenchResponder\n    autoscaling_config: {max_replicas: 6}\n";
        ServeConfig::from_yaml(yaml).unwrap().applications[0]
            .apply(&mut configs)
            .unwrap();
        assert_eq!(
            configs[1].autoscaling,
            Some(AutoscalingConfig::default().max_replicas(6)),
            "keys not in the file take Ray's defaults, not the code's"
        );
        // And a file can turn autoscaling on for a deployment whose code has a fixed count.
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n    autoscaling_config: {}\n";
        ServeConfig::from_yaml(yaml).unwrap().applications[0]
            .apply(&mut configs)
            .unwrap();
        assert_eq!(configs[0].autoscaling, Some(AutoscalingConfig::default()));
    }

    #[test]
    fn num_replicas_for_a_deployment_that_autoscales_is_an_error() {
        let mut configs = defaults();
        configs[1] = DeploymentConfig::new("FrenchResponder")
            .autoscaling(AutoscalingConfig::default().max_replicas(4));
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: FrenchResponder\n    num_replicas: 2\n";
        let err = ServeConfig::from_yaml(yaml).unwrap().applications[0]
            .apply(&mut configs)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "deployment `FrenchResponder` autoscales, so its `num_replicas` cannot be set"
            ),
            "{err}"
        );
        assert!(err.contains("autoscaling_config"), "{err}");

        let toml = "[[applications]]\nname = \"hello\"\n[[applications.deployments]]\nname = \"SpanishResponder\"\nnum_replicas = 2\nautoscaling_config = { max_replicas = 4 }\n";
        let err = ServeConfig::from_toml(toml).unwrap_err().to_string();
        assert!(
            err.contains("deployment `SpanishResponder`: `num_replicas` and `autoscaling_config` cannot both be set"),
            "{err}"
        );
    }

    #[test]
    fn unknown_nested_keys_name_the_key_and_its_position() {
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: FrenchResponder\n    autoscaling_config:\n      min_replicas: 1\n      max_replica: 3\n";
        let err = ServeConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains("unknown field `max_replica`"), "{err}");
        assert!(err.contains("line 7"), "{err}");
        assert!(
            err.contains("`max_replicas`"),
            "lists the valid keys: {err}"
        );

        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: FrenchResponder\n    ray_actor_options:\n      num_cpu: 1\n";
        let err = ServeConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains("unknown field `num_cpu`"), "{err}");
        assert!(err.contains("line 6"), "{err}");

        let toml = "[[applications]]\nname = \"hello\"\n[[applications.deployments]]\nname = \"SpanishResponder\"\n[applications.deployments.ray_actor_options]\nnum_cpus = 1\nmemory = 2\n";
        let err = ServeConfig::from_toml(toml).unwrap_err().to_string();
        assert!(err.contains("unknown field `memory`"), "{err}");
        assert!(err.contains("line 7"), "{err}");

        let toml = "[[applications]]\nname = \"hello\"\n[[applications.deployments]]\nname = \"SpanishResponder\"\nautoscaling_config = { target_num_ongoing_requests_per_replica = 2 }\n";
        let err = ServeConfig::from_toml(toml).unwrap_err().to_string();
        assert!(
            err.contains("unknown field `target_num_ongoing_requests_per_replica`"),
            "{err}"
        );
        assert!(err.contains("line 5"), "{err}");
    }

    /// The error of a YAML file whose one deployment entry has `body` (indented by 4).
    fn entry_error(body: &str) -> String {
        let yaml = format!(
            "applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n{body}"
        );
        match ServeConfig::from_yaml(&yaml) {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn values_out_of_range_name_the_deployment_and_the_key() {
        let cases = [
            (
                "    max_queued_requests: 0\n",
                "`max_queued_requests` must be -1 (unlimited) or at least 1, not 0",
            ),
            (
                "    max_queued_requests: -2\n",
                "`max_queued_requests` must be -1 (unlimited) or at least 1, not -2",
            ),
            (
                "    health_check_period_s: 0\n",
                "`health_check_period_s` must be a number greater than 0, not 0",
            ),
            (
                "    health_check_timeout_s: -1\n",
                "`health_check_timeout_s` must be a number greater than 0, not -1",
            ),
            (
                "    graceful_shutdown_timeout_s: .nan\n",
                "`graceful_shutdown_timeout_s` must be a number greater than 0, not NaN",
            ),
            (
                "    ray_actor_options: {num_cpus: -0.5}\n",
                "`ray_actor_options.num_cpus` must be a number of at least 0, not -0.5",
            ),
            (
                "    ray_actor_options: {num_gpus: .inf}\n",
                "`ray_actor_options.num_gpus` must be a number of at least 0, not inf",
            ),
            (
                "    ray_actor_options: {resources: {a100: -1}}\n",
                "`ray_actor_options.resources.a100` must be a number of at least 0, not -1",
            ),
            (
                "    ray_actor_options: {resources: {GPU: 1}}\n",
                "`ray_actor_options.resources`: `GPU` is not a custom resource: use `ray_actor_options.num_gpus`",
            ),
            (
                "    autoscaling_config: {max_replicas: 0, min_replicas: 0}\n",
                "`autoscaling_config.max_replicas` must be at least 1",
            ),
            (
                "    autoscaling_config: {min_replicas: 3, max_replicas: 2}\n",
                "`autoscaling_config.min_replicas` (3) must not be more than `autoscaling_config.max_replicas` (2)",
            ),
            (
                "    autoscaling_config: {min_replicas: 2}\n",
                "`autoscaling_config.min_replicas` (2) must not be more than `autoscaling_config.max_replicas` (1)",
            ),
            (
                "    autoscaling_config: {max_replicas: 4, initial_replicas: 5}\n",
                "`autoscaling_config.initial_replicas` (5) must be between `autoscaling_config.min_replicas` (1) and `autoscaling_config.max_replicas` (4)",
            ),
            (
                "    autoscaling_config: {target_ongoing_requests: 0}\n",
                "`autoscaling_config.target_ongoing_requests` must be a number greater than 0, not 0",
            ),
            (
                "    autoscaling_config: {downscale_delay_s: -1}\n",
                "`autoscaling_config.downscale_delay_s` must be a number of at least 0, not -1",
            ),
            (
                "    autoscaling_config: {metrics_interval_s: 0}\n",
                "`autoscaling_config.metrics_interval_s` must be a number greater than 0, not 0",
            ),
            (
                "    autoscaling_config: {upscaling_factor: 0}\n",
                "`autoscaling_config.upscaling_factor` must be a number greater than 0, not 0",
            ),
        ];
        for (body, expected) in cases {
            let err = entry_error(body);
            assert!(
                err.contains(&format!("deployment `SpanishResponder`: {expected}")),
                "for {body:?}: {err}"
            );
        }
        // Floats where integers belong are type errors, with a position.
        let err = entry_error("    max_queued_requests: 1.5\n");
        assert!(err.contains("line 5"), "{err}");
        let err = entry_error("    autoscaling_config: {min_replicas: -1}\n");
        assert!(err.contains("line 5"), "{err}");
        // TOML's nan and inf are refused too.
        let toml = "[[applications]]\nname = \"hello\"\n[[applications.deployments]]\nname = \"SpanishResponder\"\nhealth_check_period_s = inf\n";
        let err = ServeConfig::from_toml(toml).unwrap_err().to_string();
        assert!(
            err.contains("`health_check_period_s` must be a number greater than 0, not inf"),
            "{err}"
        );
    }

    /// Code configurations with every option away from its default.
    fn tuned() -> Vec<DeploymentConfig> {
        vec![
            DeploymentConfig::new("SpanishResponder")
                .num_replicas(3)
                .max_ongoing_requests(7)
                .max_queued_requests(11)
                .health_check_period_s(0.1)
                .health_check_timeout_s(2.5)
                .graceful_shutdown_timeout_s(1e-3)
                .num_cpus(0.25)
                .num_gpus(1.0)
                .resource("a100", 0.5)
                .resource("accelerator_type:A100", 1.0)
                .user_config(serde_json::json!({"greeting": "Hola", "weights": [0.1, 2, -3], "deep": {"x": [{"y": 1}]}})),
            DeploymentConfig::new("FrenchResponder").autoscaling(
                AutoscalingConfig::default()
                    .min_replicas(0)
                    .max_replicas(8)
                    .initial_replicas(2)
                    .target_ongoing_requests(1.5)
                    .upscale_delay_s(0.3)
                    .downscale_delay_s(600.0)
                    .look_back_period_s(3.0)
                    .metrics_interval_s(0.7)
                    .upscaling_factor(2.0)
                    .downscaling_factor(0.1),
            ),
            // Factors and initial_replicas left to their defaults; the user_config a scalar.
            DeploymentConfig::new("LanguageClassifier")
                .autoscaling(AutoscalingConfig::default().max_replicas(2))
                .user_config(serde_json::json!("plain")),
        ]
    }

    #[test]
    fn printed_config_has_every_option_and_round_trips() {
        let code = tuned();
        let config = ServeConfig::for_application("hello", "/", "127.0.0.1", 8000, &code);
        let yaml = config.to_yaml();
        let toml = config.to_toml().unwrap();
        for key in [
            "max_ongoing_requests",
            "max_queued_requests",
            "health_check_period_s",
            "health_check_timeout_s",
            "graceful_shutdown_timeout_s",
            "user_config",
            "autoscaling_config",
            "min_replicas",
            "max_replicas",
            "initial_replicas",
            "target_ongoing_requests",
            "upscale_delay_s",
            "downscale_delay_s",
            "look_back_period_s",
            "metrics_interval_s",
            "upscaling_factor",
            "downscaling_factor",
            "ray_actor_options",
            "num_cpus",
            "num_gpus",
            "resources",
            "a100",
        ] {
            assert!(yaml.contains(key), "{key} in\n{yaml}");
            assert!(toml.contains(key), "{key} in\n{toml}");
        }
        let from_yaml = ServeConfig::from_yaml(&yaml).unwrap();
        let from_toml = ServeConfig::from_toml(&toml).unwrap();
        assert_eq!(from_yaml, config, "{yaml}");
        assert_eq!(from_toml, config, "{toml}");

        // Applied to defaults, the printed file gives back the code's configurations.
        for printed in [from_yaml, from_toml] {
            let mut configs: Vec<_> = code
                .iter()
                .map(|c| DeploymentConfig::new(c.name.clone()))
                .collect();
            printed.applications[0].apply(&mut configs).unwrap();
            let mut expected = code.clone();
            // Printed as the values they stand for.
            let defaulted = expected[2].autoscaling.as_mut().unwrap();
            defaulted.upscaling_factor = Some(1.0);
            defaulted.downscaling_factor = Some(1.0);
            assert_eq!(configs, expected);
        }
    }

    #[test]
    fn printed_defaults_are_the_defaults() {
        let config = ServeConfig::for_application("hello", "/", "127.0.0.1", 8000, &defaults());
        let entry = &config.applications[0].deployments[0];
        assert_eq!(entry.num_replicas, Some(1));
        assert_eq!(
            entry.max_queued_requests,
            Some(-1),
            "unlimited, as Ray spells it"
        );
        assert_eq!(entry.health_check_period_s, Some(10.0));
        assert_eq!(entry.health_check_timeout_s, Some(30.0));
        assert_eq!(entry.graceful_shutdown_timeout_s, Some(20.0));
        assert_eq!(entry.user_config, None);
        assert_eq!(entry.autoscaling_config, None);
        assert_eq!(
            entry.ray_actor_options,
            Some(RayActorOptions {
                num_cpus: Some(1.0),
                num_gpus: Some(0.0),
                resources: Some(BTreeMap::new()),
            })
        );
        let mut configs = defaults();
        config.applications[0].apply(&mut configs).unwrap();
        assert_eq!(configs, defaults());
    }

    #[test]
    fn a_null_in_user_config_prints_as_yaml_but_not_as_toml() {
        let code = [DeploymentConfig::new("SpanishResponder")
            .user_config(serde_json::json!({"threshold": null}))];
        let config = ServeConfig::for_application("hello", "/", "127.0.0.1", 8000, &code);
        assert_eq!(ServeConfig::from_yaml(&config.to_yaml()).unwrap(), config);
        let err = config.to_toml().unwrap_err().to_string();
        assert!(err.contains("TOML has no null: write it as YAML"), "{err}");
    }

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
                "num_replicas and max_ongoing_requests must be at least 1",
            ),
            (
                DeploymentConfig::new("A").max_queued_requests(0),
                "`max_queued_requests` must be at least 1",
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
                DeploymentConfig::new("A")
                    .autoscaling(AutoscalingConfig::default().min_replicas(2)),
                "`autoscaling.min_replicas` (2) must not be more than `autoscaling.max_replicas` (1)",
            ),
        ];
        for (config, expected) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.contains(&format!("deployment `A`: {expected}")),
                "{err}"
            );
        }
    }
}
