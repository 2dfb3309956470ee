//! Tests of config files: reading, applying and printing them; their errors are in `errors`.

use super::*;

mod errors;

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
      downscale_to_zero_delay_s: 45
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
downscale_to_zero_delay_s = 45
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
            .downscale_to_zero_delay_s(45.0)
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
                .downscale_to_zero_delay_s(30.0)
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
        "downscale_to_zero_delay_s",
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
