//! Tests of config files: reading, applying and printing them; their errors are in `errors`.

use super::super::cluster::ProxyLocation;
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
    assert_eq!(entry.num_replicas, Some(NumReplicas::Count(1)));
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
            ..RayActorOptions::default()
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

/// The hello app's config as Ray's `serve build` writes it, every key of Ray's schema given.
const RAY_HELLO: &str = include_str!("../../../../tests/configs/hello_serve_build.yaml");

fn hello_defaults() -> Vec<DeploymentConfig> {
    vec![
        DeploymentConfig::new("SpanishResponder").num_replicas(3),
        DeploymentConfig::new("FrenchResponder"),
        DeploymentConfig::new("LanguageClassifier"),
    ]
}

#[test]
fn a_config_from_rays_serve_build_loads_and_applies() {
    let config = ServeConfig::from_yaml(RAY_HELLO).unwrap();
    assert_eq!(config.proxy_location(), Some(ProxyLocation::EveryNode));
    let http = config.http_options.as_ref().unwrap();
    assert_eq!(http.keep_alive_timeout_s, Some(90.0));
    assert_eq!(http.root_path.as_deref(), Some(""));
    let top = config.logging_config.as_ref().unwrap();
    assert_eq!(top.encoding, Some(super::super::Encoding::Text));
    let app = &config.applications[0];
    assert_eq!(
        app.import_path.as_deref(),
        Some("hello:language_classifier")
    );
    assert_eq!(
        import_attribute(app.import_path.as_deref().unwrap()),
        Ok("language_classifier")
    );

    let mut configs = hello_defaults();
    app.apply(&mut configs).unwrap();
    let [spanish, french, classifier] = &configs[..] else {
        panic!("{configs:?}")
    };
    assert_eq!(spanish.num_replicas, 2);
    assert_eq!(spanish.max_queued_requests, Some(100));
    assert_eq!(spanish.resources.num_cpus, 0.5);
    assert_eq!(
        spanish.logging.log_level,
        Some(super::super::LogLevel::Debug)
    );
    // `num_replicas: auto` with an autoscaling_config: the config as written.
    let autoscaling = french.autoscaling.as_ref().unwrap();
    assert_eq!((autoscaling.min_replicas, autoscaling.max_replicas), (1, 2));
    assert!(!french.logging.access_log(), "its own switch");
    assert!(spanish.logging.access_log(), "the application's");
    assert_eq!(classifier.max_ongoing_requests, 8);
    assert_eq!(classifier.max_queued_requests, None, "-1 is unlimited");

    let ignored = config.ignored_keys().join("; ");
    for key in [
        "grpc_options",
        "http_options.keep_alive_timeout_s (90)",
        "runtime_env (application `app1`)",
        "graceful_shutdown_wait_loop_s (deployment `SpanishResponder`)",
        "placement_group_bundles (deployment `SpanishResponder`)",
        "placement_group_strategy (deployment `SpanishResponder`)",
        "max_replicas_per_node (deployment `SpanishResponder`)",
        "request_router_config (deployment `SpanishResponder`)",
        "ray_actor_options.memory (deployment `LanguageClassifier`)",
    ] {
        assert!(ignored.contains(key), "{key} in {ignored}");
    }
    // Empty and null values ask for nothing.
    assert!(!ignored.contains("external_scaler_enabled"), "{ignored}");
    assert!(
        !ignored.contains("ray_actor_options.runtime_env"),
        "{ignored}"
    );
    assert!(
        !ignored.contains("request_router_config (deployment `Lang"),
        "{ignored}"
    );

    // The same keys read from TOML.
    let value: serde_json::Value = serde_yaml_ng::from_str(RAY_HELLO).unwrap();
    let without_nulls = drop_nulls(value);
    let toml = toml::to_string(&without_nulls).unwrap();
    let from_toml = ServeConfig::from_toml(&toml).unwrap();
    assert_eq!(from_toml.ignored_keys(), config.ignored_keys());
}

/// `value` without its nulls (TOML has none).
fn drop_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, drop_nulls(v)))
            .collect(),
        serde_json::Value::Array(list) => list.into_iter().map(drop_nulls).collect(),
        other => other,
    }
}

#[test]
fn num_replicas_auto_autoscales_with_rays_defaults_for_it() {
    let yaml =
        "applications:\n- deployments:\n  - name: SpanishResponder\n    num_replicas: auto\n";
    let config = ServeConfig::from_yaml(yaml).unwrap();
    assert_eq!(config.applications[0].name, "default", "Ray's default name");
    let mut configs = defaults();
    config.applications[0].apply(&mut configs).unwrap();
    let expected = AutoscalingConfig::default()
        .min_replicas(1)
        .max_replicas(100)
        .target_ongoing_requests(2.0);
    assert_eq!(configs[0].autoscaling, Some(expected));
    let err = entry_error_of("    num_replicas: many\n");
    assert!(err.contains("\"auto\""), "{err}");
}

fn entry_error_of(body: &str) -> String {
    let yaml =
        format!("applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n{body}");
    ServeConfig::from_yaml(&yaml).unwrap_err().to_string()
}

#[test]
fn accelerator_type_reserves_its_resource_as_in_ray() {
    let yaml = "applications:\n- name: hello\n  deployments:\n  - name: SpanishResponder\n    ray_actor_options: {accelerator_type: A100, resources: {tpu: 1}}\n";
    let mut configs = defaults();
    ServeConfig::from_yaml(yaml).unwrap().applications[0]
        .apply(&mut configs)
        .unwrap();
    let custom = &configs[0].resources.custom;
    assert_eq!(
        custom.get("accelerator_type:A100"),
        Some(&ACCELERATOR_TYPE_AMOUNT)
    );
    assert_eq!(custom.get("tpu"), Some(&1.0));
}

#[test]
fn logging_config_inherits_from_the_application_and_the_top_level() {
    let yaml = "\
logging_config: {enable_access_log: false, log_level: WARNING, encoding: JSON}
applications:
- name: hello
  logging_config: {log_level: ERROR}
  deployments:
  - name: SpanishResponder
    logging_config: {log_level: DEBUG, enable_access_log: true}
";
    let config = ServeConfig::from_yaml(yaml).unwrap();
    let mut configs = defaults();
    configs[1] = DeploymentConfig::new("FrenchResponder")
        .logging_config(LoggingConfig::default().log_level(super::super::LogLevel::Info));
    config.applications[0].apply(&mut configs).unwrap();
    use super::super::LogLevel;
    assert_eq!(
        configs[0].logging.log_level,
        Some(LogLevel::Debug),
        "its own"
    );
    assert_eq!(
        configs[1].logging.log_level,
        Some(LogLevel::Info),
        "the code's"
    );
    assert_eq!(
        configs[2].logging.log_level,
        Some(LogLevel::Error),
        "the app's"
    );
    // Applied as the command line does, the top level's access switch reaches every
    // deployment that has none of its own; its level stays the process's.
    let file = ConfigFile {
        source: source::Source::new(None, yaml.to_owned(), lines::Format::Yaml),
        config,
    };
    let mut configs = defaults();
    file.apply(0, &mut configs).unwrap();
    assert!(configs[0].logging.access_log());
    assert!(!configs[2].logging.access_log());
    assert_eq!(configs[2].logging.log_level, Some(LogLevel::Error));
    assert_eq!(
        configs[2].logging.encoding,
        Some(super::super::Encoding::Json)
    );
    // Without an application level, the process's level is no deployment's own.
    let toplevel = ConfigFile {
        source: source::Source::new(None, String::new(), lines::Format::Yaml),
        config: ServeConfig::from_yaml("logging_config: {log_level: WARNING}\napplications: []\n")
            .unwrap(),
    };
    let mut configs = defaults();
    toplevel.apply(0, &mut configs).unwrap();
    assert_eq!(configs[0].logging.log_level, None);
}

#[test]
fn misspelt_ray_keys_are_refused_with_the_valid_ones() {
    for (yaml, wrong, valid) in [
        (
            "proxy_locaton: EveryNode\napplications: []\n",
            "proxy_locaton",
            "`proxy_location`",
        ),
        (
            "http_options: {keepalive_timeout_s: 5}\napplications: []\n",
            "keepalive_timeout_s",
            "`keep_alive_timeout_s`",
        ),
        (
            "logging_config: {enable_accesslog: false}\napplications: []\n",
            "enable_accesslog",
            "`enable_access_log`",
        ),
        (
            "applications:\n- name: a\n  import_pth: hello:app\n",
            "import_pth",
            "`import_path`",
        ),
        (
            "applications:\n- name: a\n  deployments:\n  - name: X\n    placement_group_strategie: PACK\n",
            "placement_group_strategie",
            "`placement_group_strategy`",
        ),
    ] {
        let err = ServeConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains(&format!("unknown field `{wrong}`")), "{err}");
        assert!(err.contains(valid), "lists the valid keys: {err}");
    }
}

#[test]
fn ray_values_out_of_range_are_refused() {
    for (yaml, expected) in [
        (
            "http_options: {ssl_keyfile: key.pem}\napplications: []\n",
            "`http_options.ssl_keyfile`: the proxy serves plain HTTP only",
        ),
        (
            "http_options: {root_path: api}\napplications: []\n",
            "`http_options.root_path` must be empty or start with `/`, not `api`",
        ),
        (
            "proxy_location: Disabled\nhttp_options: {proxy_location: EveryNode}\napplications: []\n",
            "disagree",
        ),
        (
            "applications:\n- name: a\n  import_path: hello\n",
            "application `a`: import_path `hello`: an import path is `module:application`",
        ),
        (
            "applications:\n- name: a\n  import_path: 'a:b:c'\n",
            "at most one `:`",
        ),
        (
            "applications:\n- name: a\n- name: a\n",
            "two applications have this name",
        ),
        (
            "applications:\n- name: a\n  deployments:\n  - name: X\n    placement_group_strategy: TIGHT\n",
            "`placement_group_strategy` is PACK, SPREAD, STRICT_PACK or STRICT_SPREAD, not `TIGHT`",
        ),
        (
            "applications:\n- name: a\n  deployments:\n  - name: X\n    graceful_shutdown_wait_loop_s: -1\n",
            "`graceful_shutdown_wait_loop_s` must be a number of at least 0, not -1",
        ),
        (
            "logging_config: {log_level: LOUD}\napplications: []\n",
            "`LOUD` is not a log level",
        ),
    ] {
        let err = ServeConfig::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains(expected), "{yaml}: {err}");
    }
}
