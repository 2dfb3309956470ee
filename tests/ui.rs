//! Compile-time checks: every macro and type error a user can hit has a case under `tests/ui/`
//! (`.rs` + the expected `.stderr`). Regenerate with `TRYBUILD=overwrite cargo test --test ui` and
//! review the diff like code.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    // The seed programs, exactly as the examples write them, compile (and run) as pass cases.
    // (`hello` serves until stopped, so tests/examples.rs runs it against a real client instead.)
    for seed in ["chain", "stream", "object_ref"] {
        t.pass(format!("examples/{seed}.rs"));
    }
}

/// The first error message of a compile-fail case's expected output.
fn macro_error(case: &str) -> String {
    let path = format!("{}/tests/ui/fail/{case}.stderr", env!("CARGO_MANIFEST_DIR"));
    let stderr = std::fs::read_to_string(&path).unwrap();
    let first = stderr.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// The message of a config file whose one deployment entry has `body`, after the deployment.
fn file_error(body: &str) -> String {
    let yaml = format!("applications:\n- name: hello\n  deployments:\n  - name: Adder\n{body}");
    let err = serve_core::config::ServeConfig::from_yaml(&yaml)
        .unwrap_err()
        .to_string();
    let (place, message) = err.split_once("deployment `Adder`: ").unwrap();
    assert_eq!(place, "invalid configuration: line 5: ");
    message.to_owned()
}

/// `#[deployment(..)]` and config files check options by one set of rules (serve-core's
/// `config/rules.rs`): the same mistake reads the same, keys named as each place names them.
#[test]
fn a_macro_error_and_a_config_file_error_of_one_rule_say_the_same() {
    let same_key = [
        (
            "option_seconds_not_positive",
            "    health_check_period_s: 0\n",
        ),
        ("num_replicas_zero", "    num_replicas: 0\n"),
        ("max_ongoing_requests_zero", "    max_ongoing_requests: 0\n"),
    ];
    for (case, body) in same_key {
        assert_eq!(macro_error(case), file_error(body), "{case}");
    }
    // A file nests these keys in a section and names them with it.
    let nested = [
        (
            "autoscaling_min_above_max",
            "    autoscaling_config: {min_replicas: 4, max_replicas: 2}\n",
            "autoscaling_config.",
        ),
        (
            "autoscaling_initial_out_of_range",
            "    autoscaling_config: {max_replicas: 4, initial_replicas: 5}\n",
            "autoscaling_config.",
        ),
        (
            "autoscaling_values_out_of_range",
            "    autoscaling_config: {max_replicas: 0}\n",
            "autoscaling_config.",
        ),
        (
            "option_resources_negative",
            "    ray_actor_options: {num_cpus: -0.5}\n",
            "ray_actor_options.",
        ),
        (
            "resources_reserved_names",
            "    ray_actor_options: {resources: {CPU: 1}}\n",
            "ray_actor_options.",
        ),
    ];
    for (case, body, section) in nested {
        let file = file_error(body);
        assert!(file.contains(section), "{file}");
        assert_eq!(macro_error(case), file.replace(section, ""), "{case}");
    }
}
