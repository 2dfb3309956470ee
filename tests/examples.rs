//! Runs every example program (cargo builds them for `cargo test`) and checks it prints what the
//! seed program prints.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn example_path(name: &str) -> PathBuf {
    // This test binary lives in target/<profile>/deps/; the examples in target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "example binary {} not built", path.display());
    path
}

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

/// A `hello` server started with `run`, stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    url: String,
    log: Vec<String>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(example_path("hello"))
            .arg("run")
            .args(["--port", "0"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        // The log says where it listens once the application is ready.
        let url = loop {
            let line = lines
                .next()
                .expect("hello exited before it was ready")
                .unwrap();
            log.push(line.clone());
            if let Some(at) = line.find("application is ready at ") {
                break line[at + "application is ready at ".len()..]
                    .trim()
                    .to_owned();
            }
        };
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, url, log }
    }

    /// Sends SIGTERM and returns the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn hello_serves_over_http_and_the_client_prints_hola_dora() {
    let server = Server::start(&[]);
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("HTTP proxy listening on")),
        "{:?}",
        server.log
    );
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("deployment is up") && l.contains("SpanishResponder")),
        "{:?}",
        server.log
    );
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
    let server = Server::start(&["--config", path.to_str().unwrap()]);

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
    let server = Server::start(&["--name", "greetings", "--route-prefix", "/greet"]);
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
    let out = Command::new(example_path("hello"))
        .args(["run", "--port", "0", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
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
