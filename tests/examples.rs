//! Runs every example program (cargo builds them for `cargo test`) and checks it prints what the
//! seed program prints.

use std::process::Command;

use serve_test_support::example::{ExampleServer, example_path, refused};

fn example(name: &str) -> String {
    example_with(name, &[])
}

fn example_with(name: &str, args: &[&str]) -> String {
    let out = Command::new(example_path(name))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn chain_prints_12() {
    assert!(example("chain").lines().any(|l| l.trim() == "12"));
}

#[test]
fn stream_prints_0_to_9() {
    assert!(example("stream").contains("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"));
}

#[test]
fn object_ref_prints_the_task_message() {
    assert!(example("object_ref").contains("Ray task got message: 'Hi from Serve deployment'"));
}

#[test]
fn token_pipeline_streams_through_three_stages() {
    let out = example("token_pipeline");
    assert!(out.contains("predicted: cat sat on the cat ."), "{out}");
    assert!(out.contains("100002 tokens through three stages"), "{out}");
}

#[test]
fn hello_serves_over_http_and_the_client_prints_hola_dora() {
    let server = ExampleServer::start("hello", &[]);
    server.wait_for_line("where the proxy listens", |l| {
        l.contains("HTTP proxy listening on")
    });
    server.wait_for_line("SpanishResponder up", |l| {
        l.contains("deployment is up") && l.contains("SpanishResponder")
    });
    assert_eq!(
        example_with("hello_client", &[&server.url]).trim(),
        "Hola Dora"
    );
    let status = server.stop();
    assert!(status.success(), "SIGTERM drains and exits 0: {status}");
}

#[test]
fn hello_config_output_is_a_config_file_that_run_and_status_honour() {
    let config = example_with("hello", &["config"]);
    assert!(config.contains("name: SpanishResponder"), "{config}");
    // Edit the printed config (3 Spanish replicas -> 2) and run with it.
    let edited = config.replacen("num_replicas: 3", "num_replicas: 2", 1);
    assert_ne!(
        edited, config,
        "the printed config lists SpanishResponder's 3 replicas"
    );
    let path = std::env::temp_dir().join(format!("hello-config-{}.yaml", std::process::id()));
    std::fs::write(&path, edited).unwrap();
    let server = ExampleServer::start("hello", &["--config", path.to_str().unwrap()]);

    let status = example_with("hello", &["status", "--address", &server.url]);
    let spanish = status
        .split("- name: ")
        .find(|d| d.starts_with("SpanishResponder"))
        .unwrap_or_else(|| panic!("no SpanishResponder in:\n{status}"));
    assert!(spanish.contains("num_replicas: 2"), "{status}");
    assert!(status.contains("route_prefix: /"), "{status}");
    // The application runs under the file's name (what `config` printed).
    assert!(
        status.contains("- name: LanguageClassifier\n  route_prefix: /"),
        "{status}"
    );
    assert!(server.stop().success());
    let _ = std::fs::remove_file(path);
}

#[test]
fn run_names_the_application_with_name_and_serves_it_under_the_route_prefix() {
    let server = ExampleServer::start(
        "hello",
        &["--name", "greetings", "--route-prefix", "/greet"],
    );
    assert!(server.url.ends_with("/greet"), "{}", server.url);
    let address = server.url.trim_end_matches("/greet").to_owned();
    let status = example_with("hello", &["status", "--address", &address]);
    assert!(
        status.contains("- name: greetings\n  route_prefix: /greet"),
        "{status}"
    );
    assert!(server.stop().success());
}

#[test]
fn a_config_naming_a_missing_deployment_is_refused_with_the_ones_that_exist() {
    let path = std::env::temp_dir().join(format!("hello-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[applications]]\nname = \"hello\"\n[[applications.deployments]]\nname = \"GermanResponder\"\nnum_replicas = 2\n",
    )
    .unwrap();
    let stderr = refused(
        "hello",
        &["run", "--port", "0", "--config", path.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&path);
    assert!(
        stderr.contains("no deployment `GermanResponder`"),
        "{stderr}"
    );
    // The file and the line of the entry.
    let at = format!(
        "invalid configuration: {}:4: application `hello` has no deployment",
        path.display()
    );
    assert!(stderr.contains(&at), "{stderr}");
    assert!(
        stderr.contains("SpanishResponder, FrenchResponder, LanguageClassifier"),
        "{stderr}"
    );
}

#[test]
fn a_graceful_shutdown_timeout_that_is_not_a_number_of_seconds_is_refused_before_serving() {
    for bad in ["NaN", "-1"] {
        let out = Command::new(example_path("hello"))
            .args([
                "run",
                "--port",
                "0",
                &format!("--graceful-shutdown-timeout={bad}"),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr
                .contains("--graceful-shutdown-timeout must be a number of seconds of at least 0"),
            "{stderr}"
        );
    }
}

#[test]
fn pipeline_runs() {
    example("pipeline");
}

#[test]
fn batch_compares_the_batched_model_with_the_unbatched_one() {
    let out = example_with("batch", &["--seconds", "0.2"]);
    assert!(out.contains("unbatched:"), "{out}");
    assert!(out.contains("batched / unbatched:"), "{out}");
}

#[test]
fn ensemble_names_each_model_and_gets_every_message_right() {
    let out = example("ensemble");
    assert!(
        out.contains("deployments: LogisticModel, LogisticModel_1, LogisticModel_2, Ensemble"),
        "{out}"
    );
    assert!(out.contains("5 of 5 right"), "{out}");
}

#[test]
fn multiplex_trains_each_customers_model_once() {
    let out = example("multiplex");
    assert!(out.contains("18 calls, 3 models trained"), "{out}");
    assert!(out.contains("could not load model `hooli`"), "{out}");
}
