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
//! ```
//!
//! Unknown keys are errors that name the key and its position in the file; a deployment the
//! application does not have is an error that lists the ones it has.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::deployment::DeploymentConfig;
use crate::error::{ErrorKind, ServeError};

/// A whole config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Where the HTTP proxy listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_options: Option<HttpOptionsConfig>,
    /// The applications (a `serve_core::main` binary serves one: the first).
    pub applications: Vec<ApplicationConfig>,
}

/// `http_options`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptionsConfig {
    /// The host to listen on (default `127.0.0.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The port to listen on (default 8000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// One application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// One deployment's settings; absent values keep the code's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentEntry {
    /// The deployment's name (as `config` prints it: `Inner`, `Inner_1`, ..).
    pub name: String,
    /// How many replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_replicas: Option<usize>,
    /// How many requests one replica runs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ongoing_requests: Option<usize>,
}

fn config_error(message: String) -> ServeError {
    ServeError::new(ErrorKind::Runtime).with_message(message)
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
        parsed.map_err(|e| config_error(format!("{}: {e}", path.display())))
    }

    /// Parses YAML.
    pub fn from_yaml(text: &str) -> Result<Self, ServeError> {
        let config: Self = serde_yaml_ng::from_str(text)
            .map_err(|e| config_error(format!("invalid config: {e}")))?;
        config.validate()
    }

    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Self, ServeError> {
        let config: Self =
            toml::from_str(text).map_err(|e| config_error(format!("invalid config: {e}")))?;
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
                if d.num_replicas == Some(0) || d.max_ongoing_requests == Some(0) {
                    return Err(config_error(format!(
                        "deployment `{}`: num_replicas and max_ongoing_requests must be at least 1",
                        d.name
                    )));
                }
            }
        }
        Ok(self)
    }

    /// The full configuration of one application, every deployment with every option: what the
    /// `config` command prints, for a user to edit.
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
            }),
            applications: vec![ApplicationConfig {
                name: name.to_owned(),
                route_prefix: route_prefix.to_owned(),
                deployments: deployments
                    .iter()
                    .map(|d| DeploymentEntry {
                        name: d.name.clone(),
                        num_replicas: Some(d.num_replicas),
                        max_ongoing_requests: Some(d.max_ongoing_requests),
                    })
                    .collect(),
            }],
        }
    }

    /// As YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }

    /// As TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

impl ApplicationConfig {
    /// Applies this application's deployment settings to `configs` (as
    /// [`Application::deployment_configs`](crate::Application::deployment_configs) gives them).
    pub fn apply(&self, configs: &mut [DeploymentConfig]) -> Result<(), ServeError> {
        for entry in &self.deployments {
            let Some(config) = configs.iter_mut().find(|c| c.name == entry.name) else {
                let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
                return Err(config_error(format!(
                    "application `{}` has no deployment `{}`; its deployments are: {}",
                    self.name,
                    entry.name,
                    names.join(", ")
                )));
            };
            if let Some(n) = entry.num_replicas {
                config.num_replicas = n;
            }
            if let Some(n) = entry.max_ongoing_requests {
                config.max_ongoing_requests = n;
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
        assert_eq!(ServeConfig::from_toml(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn zero_replicas_is_refused() {
        let yaml = "applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n    num_replicas: 0\n";
        assert!(ServeConfig::from_yaml(yaml).is_err());
    }
}
