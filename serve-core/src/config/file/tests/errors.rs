//! The errors of config files: unknown keys (serde's, with their position), deployments the
//! application lacks, and values against their rules, with the file, the line and the key.

use std::path::PathBuf;

use super::*;

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
fn zero_replicas_is_refused() {
    let yaml = "applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n    num_replicas: 0\n";
    assert!(ServeConfig::from_yaml(yaml).is_err());
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
    assert_eq!(
        err,
        "invalid configuration: deployment `FrenchResponder`: `num_replicas` cannot be set for a \
         deployment that autoscales (`autoscaling_config`): its number of replicas follows the \
         load; set the starting count with `autoscaling_config.initial_replicas`"
    );

    let toml = "[[applications]]\nname = \"hello\"\n[[applications.deployments]]\nname = \"SpanishResponder\"\nnum_replicas = 2\nautoscaling_config = { max_replicas = 4 }\n";
    let err = ServeConfig::from_toml(toml).unwrap_err().to_string();
    assert!(
        err.contains(
            "line 5: deployment `SpanishResponder`: `num_replicas` cannot be set for a deployment \
             that autoscales (`autoscaling_config`)"
        ),
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

    let toml = "[[applications]]\nname = \"hello\"\n[[applications.deployments]]\nname = \"SpanishResponder\"\n[applications.deployments.ray_actor_options]\nnum_cpus = 1\nmemroy = 2\n";
    let err = ServeConfig::from_toml(toml).unwrap_err().to_string();
    assert!(err.contains("unknown field `memroy`"), "{err}");
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
    let yaml =
        format!("applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n{body}");
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
            "`ray_actor_options.resources`: `GPU` is not a custom resource: use \
             `ray_actor_options.num_gpus`",
        ),
        (
            "    autoscaling_config: {max_replicas: 0, min_replicas: 0}\n",
            "`autoscaling_config.max_replicas` must be at least 1, not 0",
        ),
        (
            "    autoscaling_config: {min_replicas: 3, max_replicas: 2}\n",
            "`autoscaling_config.max_replicas` (2) must be at least `autoscaling_config.min_replicas` (3)",
        ),
        (
            "    autoscaling_config: {min_replicas: 2}\n",
            "`autoscaling_config.max_replicas` (1) must be at least `autoscaling_config.min_replicas` (2)",
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
            "    autoscaling_config: {downscale_to_zero_delay_s: -2}\n",
            "`autoscaling_config.downscale_to_zero_delay_s` must be a number of at least 0, not -2",
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
        // The whole message: the line of the value (5), the deployment and the key.
        assert_eq!(
            entry_error(body),
            format!("invalid configuration: line 5: deployment `SpanishResponder`: {expected}"),
            "for {body:?}"
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
        err.contains("line 5: deployment `SpanishResponder`: `health_check_period_s` must be a number greater than 0, not inf"),
        "{err}"
    );
}

/// A config file in a directory of its own under the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("serve-config-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    /// The error of loading it.
    fn error(&self) -> String {
        ServeConfig::load(&self.0).unwrap_err().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

/// The module docs' example, with a health-check period of 0 on line 14.
const HELLO_YAML: &str = "\
http_options:
  host: 127.0.0.1
  port: 8000
applications:
- name: LanguageClassifier
  route_prefix: /
  deployments:
  - name: SpanishResponder
    num_replicas: 3
    max_ongoing_requests: 5
    max_queued_requests: -1       # -1: unlimited
    user_config:                  # any value, handed to `reconfigure`
      greeting: Hola
    health_check_period_s: 0
  - name: FrenchResponder
    autoscaling_config:           # instead of num_replicas
      min_replicas: 0
      max_replicas: 4
      initial_replicas: 5
";

#[test]
fn a_yaml_file_with_a_bad_value_names_the_file_the_line_and_the_key() {
    let file = TempFile::new("hello.yaml", HELLO_YAML);
    assert_eq!(
        file.error(),
        format!(
            "invalid configuration: {}:14: deployment `SpanishResponder`: \
             `health_check_period_s` must be a number greater than 0, not 0",
            file.0.display()
        )
    );
    let fixed = HELLO_YAML.replace("health_check_period_s: 0", "health_check_period_s: 10.0");
    let file = TempFile::new("hello.yml", &fixed);
    assert_eq!(
        file.error(),
        format!(
            "invalid configuration: {}:19: deployment `FrenchResponder`: \
             `autoscaling_config.initial_replicas` (5) must be between \
             `autoscaling_config.min_replicas` (0) and `autoscaling_config.max_replicas` (4)",
            file.0.display()
        )
    );
    // Without a file, the line alone.
    let err = ServeConfig::from_yaml(HELLO_YAML).unwrap_err().to_string();
    assert!(
        err.starts_with("invalid configuration: line 14: deployment `SpanishResponder`: "),
        "{err}"
    );
}

#[test]
fn a_toml_file_with_a_bad_value_names_the_file_the_line_and_the_key() {
    let toml = r#"[http_options]
port = 8000

[[applications]]
name = "LanguageClassifier"

[[applications.deployments]]
name = "SpanishResponder"
num_replicas = 3
health_check_period_s = 10.0

[[applications.deployments]]
name = "FrenchResponder"

[applications.deployments.ray_actor_options]
num_cpus = 1
resources = { a100 = -1 }
"#;
    let file = TempFile::new("hello.toml", toml);
    assert_eq!(
        file.error(),
        format!(
            "invalid configuration: {}:17: deployment `FrenchResponder`: \
             `ray_actor_options.resources.a100` must be a number of at least 0, not -1",
            file.0.display()
        )
    );
    let zero = toml.replace("num_replicas = 3", "num_replicas = 0");
    let err = ServeConfig::from_toml(&zero).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid configuration: line 9: deployment `SpanishResponder`: `num_replicas` must be at \
         least 1, not 0"
    );
}

#[test]
fn mistakes_found_when_applying_a_file_name_its_line_too() {
    let text = HELLO_YAML
        .replace("health_check_period_s: 0", "health_check_period_s: 10.0")
        .replace("initial_replicas: 5", "initial_replicas: 2")
        .replace("SpanishResponder", "GermanResponder");
    let file = TempFile::new("hello.yaml", &text);
    let loaded = ConfigFile::load(&file.0).unwrap();
    assert_eq!(
        loaded.apply(0, &mut defaults()).unwrap_err().to_string(),
        format!(
            "invalid configuration: {}:8: application `LanguageClassifier` has no deployment \
             `GermanResponder`; its deployments are: SpanishResponder, FrenchResponder, \
             LanguageClassifier",
            file.0.display()
        )
    );
    // `num_replicas` in the file for a deployment whose code autoscales.
    let text = text.replace("GermanResponder", "SpanishResponder");
    let file = TempFile::new("hello.yaml", &text);
    let mut configs = defaults();
    configs[0] =
        DeploymentConfig::new("SpanishResponder").autoscaling(AutoscalingConfig::default());
    let err = ConfigFile::load(&file.0)
        .unwrap()
        .apply(0, &mut configs)
        .unwrap_err();
    let expected = format!(
        "{}:9: deployment `SpanishResponder`: `num_replicas` cannot be set for a deployment that \
         autoscales",
        file.0.display()
    );
    assert!(err.to_string().contains(&expected), "{err}");
    // The same through the public `apply`, which has no text: no line.
    let config = ServeConfig::load(&file.0).unwrap();
    let err = config.applications[0]
        .apply(&mut configs)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid configuration: deployment `SpanishResponder`: `num_replicas`"),
        "{err}"
    );
}

#[test]
fn application_and_http_values_name_their_line() {
    let yaml = "http_options:\n  port: 8000\n  request_timeout_s: -1\napplications: []\n";
    assert_eq!(
        ServeConfig::from_yaml(yaml).unwrap_err().to_string(),
        "invalid configuration: line 3: `http_options.request_timeout_s` must be a number greater \
         than 0, not -1"
    );
    let toml = "[[applications]]\nname = \"hello\"\nroute_prefix = \"hello\"\n";
    assert_eq!(
        ServeConfig::from_toml(toml).unwrap_err().to_string(),
        "invalid configuration: line 3: application `hello`: route_prefix `hello` must start with `/`"
    );
}

#[test]
fn a_value_whose_entry_the_search_cannot_find_has_no_line() {
    // A flow sequence of deployments: the value is refused all the same, without a line.
    let yaml = "applications:\n- name: hello\n  deployments: [{name: SpanishResponder, num_replicas: 0}]\n";
    assert_eq!(
        ServeConfig::from_yaml(yaml).unwrap_err().to_string(),
        "invalid configuration: deployment `SpanishResponder`: `num_replicas` must be at least 1, \
         not 0"
    );
}
