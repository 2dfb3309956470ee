//! The control API of a running server (issue 12), against the `apps` example run as a real
//! process: `deploy` a changed config (replicas and `user_config` change in place, `args` roll
//! out a new version; no request fails meanwhile), `delete` an application (its route answers
//! 404, its replicas stop), `shutdown`, bad configs refused with a 400 that changes nothing, and
//! the token: required off loopback, 401 without it.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;
use serve_test_support::PATIENCE;
use serve_test_support::example::{ConfigFile, ExampleServer, example_path};
use serve_test_support::http::send;

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// One request to `addr`: status and body.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let reply = block_on(send(addr, method, path, headers, body.to_owned()));
    (reply.status, reply.body)
}

/// `apps VERB ARGS..` against the control API at `control`: its exit status and stdout/stderr.
fn verb(
    verb: &str,
    args: &[&str],
    control: SocketAddr,
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let out = Command::new(example_path("apps"))
        .arg(verb)
        .args(args)
        .args(["--address", &format!("http://{control}")])
        .env_remove("SERVE_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GET /api/serve/applications/`, parsed.
fn details(control: SocketAddr) -> Value {
    let (status, body) = call(control, "GET", "/api/serve/applications/", &[], "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until `details` satisfies `done` (the replica counts converge in the background after
/// an update returns); fails with the last details after [`PATIENCE`].
fn until(control: SocketAddr, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = details(control);
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "never {what}: {now:#}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn running_replicas(details: &Value, app: &str, deployment: &str) -> usize {
    details["applications"][app]["deployments"][deployment]["replicas"]
        .as_array()
        .map_or(0, |r| r.iter().filter(|r| r["state"] == "RUNNING").count())
}

/// Clients sending requests to `addr` in a loop until stopped; every answer is recorded.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<std::thread::JoinHandle<Vec<(u16, String)>>>,
}

impl Load {
    fn start(addr: SocketAddr, path: &'static str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut answers = Vec::new();
                    block_on(async {
                        while !stop.load(Ordering::Relaxed) {
                            let reply = send(addr, "GET", path, &[], "").await;
                            answers.push((reply.status, reply.body));
                        }
                    });
                    answers
                })
            })
            .collect();
        Self { stop, clients }
    }

    fn stop(self) -> Vec<(u16, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    }
}

const GREETER: &str = "
applications:
  - name: greeter
    import_path: apps:greeter
    route_prefix: /
    deployments:
      - name: Greeter
        num_replicas: 1
";

#[test]
fn a_changed_config_reaches_the_running_server_without_dropping_requests() {
    let first = ConfigFile::new("control-first", GREETER);
    let server = ExampleServer::start("apps", &["--config", first.path()]);
    let control = server.control_addr();
    let before = details(control);
    assert_eq!(before["applications"]["greeter"]["status"], "RUNNING");
    assert_eq!(running_replicas(&before, "greeter", "Greeter"), 1);
    assert_eq!(
        call(server.addr, "GET", "/?name=Dora", &[], "").1,
        "Hello Dora"
    );

    // Three replicas and a new user_config: in place, while requests keep coming.
    let load = Load::start(server.addr, "/?name=Dora", 4);
    let changed = ConfigFile::new(
        "control-changed",
        &GREETER.replace(
            "num_replicas: 1",
            "num_replicas: 3\n        user_config: {greeting: Hola}",
        ),
    );
    let (ok, out, err) = verb("deploy", &[changed.path()], control, &[]);
    assert!(ok, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["applications"]["greeter"], "updated", "{out}");
    // `deploy` returns once every replica took the new user_config.
    assert_eq!(
        call(server.addr, "GET", "/?name=Dora", &[], "").1,
        "Hola Dora"
    );
    let after = until(control, "3 replicas running", |d| {
        running_replicas(d, "greeter", "Greeter") == 3
    });
    let deployment = &after["applications"]["greeter"]["deployments"]["Greeter"];
    assert_eq!(deployment["target_num_replicas"], 3);
    assert_eq!(
        deployment["deployment_config"]["user_config"]["greeting"],
        "Hola"
    );
    assert_eq!(
        after["applications"]["greeter"]["deployed_app_config"]["import_path"],
        "apps:greeter"
    );
    // Replicas started after the update have the new user_config too.
    for _ in 0..30 {
        assert_eq!(
            call(server.addr, "GET", "/?name=Ada", &[], "").1,
            "Hola Ada"
        );
    }

    // New args: a new version, rolled out while requests keep coming.
    let new_code = ConfigFile::new(
        "control-new-args",
        &GREETER
            .replace("num_replicas: 1", "num_replicas: 2")
            .replace(
                "route_prefix: /",
                "route_prefix: /\n    args: {greeting: Bonjour}",
            ),
    );
    let (ok, out, err) = verb("deploy", &[new_code.path()], control, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("\"redeployed\""), "{out}");
    assert_eq!(
        call(server.addr, "GET", "/?name=Dora", &[], "").1,
        "Bonjour Dora"
    );
    // The same config again changes nothing.
    let (ok, out, _) = verb("deploy", &[new_code.path()], control, &[]);
    assert!(ok && out.contains("\"unchanged\""), "{out}");

    let answers = load.stop();
    assert!(
        answers.len() > 20,
        "the load ran: {} answers",
        answers.len()
    );
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "requests failed during the changes: {failed:?}"
    );
    for greeting in ["Hello Dora", "Hola Dora", "Bonjour Dora"] {
        assert!(
            answers.iter().any(|(_, body)| body == greeting),
            "no `{greeting}` while the config changed"
        );
    }
    server.stop_and_lines();
}

#[test]
fn a_deleted_application_answers_404_and_its_replicas_stop() {
    // Not at `/`, which would take `/echo` once echo is gone.
    let greeter = GREETER.replace("route_prefix: /", "route_prefix: /greet");
    let first = ConfigFile::new("control-two-first", &greeter);
    let server = ExampleServer::start("apps", &["--config", first.path()]);
    let control = server.control_addr();
    // A second application, added by the API.
    let two = ConfigFile::new(
        "control-two",
        &format!("{greeter}  - name: echo\n    import_path: apps:echo\n    route_prefix: /echo\n"),
    );
    let (ok, out, err) = verb("deploy", &[two.path()], control, &[]);
    assert!(ok, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["applications"]["echo"], "deployed");
    assert_eq!(summary["applications"]["greeter"], "unchanged");
    assert_eq!(
        call(server.addr, "POST", "/echo", &[], "ping"),
        (200, "ping".into())
    );
    assert_eq!(running_replicas(&details(control), "echo", "Echo"), 1);

    let (ok, _, err) = verb("delete", &["echo"], control, &[]);
    assert!(ok, "{err}");
    let (status, body) = call(server.addr, "POST", "/echo", &[], "ping");
    assert_eq!(status, 404, "{body}");
    // `delete` returns once its replicas stopped: no longer in the status, nor in the metrics'
    // running replicas.
    let now = details(control);
    assert!(now["applications"].get("echo").is_none(), "{now:#}");
    let (_, status) = call(server.addr, "GET", "/-/status", &[], "");
    assert!(!status.contains("\"Echo\""), "{status}");
    let (_, metrics) = call(server.addr, "GET", "/metrics", &[], "");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("serve_deployment_running_replicas")
                && l.contains("deployment=\"Echo\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    // The other application is untouched.
    assert_eq!(
        call(server.addr, "GET", "/greet?name=Dora", &[], "").1,
        "Hello Dora"
    );

    // Unknown names are a 404 with the names there are.
    let (ok, _, err) = verb("delete", &["echo"], control, &[]);
    assert!(!ok);
    assert!(err.contains("404") && err.contains("greeter"), "{err}");

    // A config without an application deletes it (declarative, as in Ray).
    let (ok, out, err) = verb("deploy", &[two.path()], control, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("\"echo\": \"deployed\""), "{out}");
    let (ok, out, err) = verb("deploy", &[first.path()], control, &[]);
    assert!(ok, "{err}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["deleted"], serde_json::json!(["echo"]));
    assert_eq!(call(server.addr, "POST", "/echo", &[], "ping").0, 404);
    server.stop_and_lines();
}

#[test]
fn a_bad_config_is_a_400_with_the_reason_and_changes_nothing() {
    let first = ConfigFile::new("control-bad-first", GREETER);
    let server = ExampleServer::start("apps", &["--config", first.path()]);
    let control = server.control_addr();
    let before = details(control)["applications"].clone();
    let bad = [
        (
            r#"{"applications": [{"name": "greeter", "import_path": "apps:greeter", "deployments": [{"name": "Greeter", "num_replica": 2}]}]}"#,
            "num_replica",
        ),
        (
            r#"{"applications": [{"name": "greeter", "import_path": "apps:nope"}]}"#,
            "nope",
        ),
        (
            r#"{"applications": [{"name": "greeter", "import_path": "apps:greeter", "args": {"greting": "Hi"}}]}"#,
            "greting",
        ),
        (
            r#"{"applications": [{"name": "greeter", "import_path": "apps:greeter", "deployments": [{"name": "Greeter", "num_replicas": 2}]}, {"name": "echo", "import_path": "apps:echo", "route_prefix": "/echo", "deployments": [{"name": "Missing"}]}]}"#,
            "Missing",
        ),
        ("not json", "expected struct ServeConfig"),
    ];
    for (config, reason) in bad {
        let (status, body) = call(control, "PUT", "/api/serve/applications/", &[], config);
        assert_eq!(status, 400, "{config}: {body}");
        assert!(body.contains(reason), "{config}: {body}");
    }
    assert_eq!(details(control)["applications"], before);
    assert_eq!(
        call(server.addr, "GET", "/?name=Dora", &[], "").1,
        "Hello Dora"
    );
    server.stop_and_lines();
}

#[test]
fn shutdown_drains_and_exits() {
    let mut server = ExampleServer::start("apps", &["greeter"]);
    let control = server.control_addr();
    let (ok, out, err) = verb("shutdown", &[], control, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("shutting down"), "{out}");
    let status = server.exited().expect("the process exits after `shutdown`");
    assert!(status.success(), "{status}");
    assert!(
        server
            .lines()
            .iter()
            .any(|l| l.contains("all requests finished; bye")),
        "{:?}",
        server.lines()
    );
}

#[test]
fn off_loopback_the_control_api_needs_its_token() {
    // Without a token it does not start.
    let err = serve_test_support::example::refused(
        "apps",
        &[
            "run",
            "greeter",
            "--port",
            "0",
            "--admin-address",
            "0.0.0.0:0",
        ],
    );
    assert!(
        err.contains("not loopback") && err.contains("--admin-token"),
        "{err}"
    );

    let mut server = ExampleServer::start(
        "apps",
        &[
            "greeter",
            "--admin-address",
            "0.0.0.0:0",
            "--admin-token",
            "s3cret",
        ],
    );
    let control = server.control_addr();
    assert!(!control.ip().is_loopback(), "{control}");
    let control: SocketAddr = ([127, 0, 0, 1], control.port()).into();
    for headers in [
        &[][..],
        &[("authorization", "Bearer wrong")],
        &[("authorization", "s3cret")],
    ] {
        let (status, body) = call(control, "GET", "/api/serve/applications/", headers, "");
        assert_eq!(status, 401, "{headers:?}: {body}");
        for (method, path) in [
            ("DELETE", "/api/serve/applications/Greeter"),
            ("DELETE", "/api/serve/applications/"),
            ("PUT", "/api/serve/applications/"),
            ("POST", "/api/serve/shutdown"),
        ] {
            assert_eq!(
                call(control, method, path, headers, "").0,
                401,
                "{method} {path}"
            );
        }
    }
    // Nothing was deleted or stopped.
    assert_eq!(
        call(server.addr, "GET", "/?name=Dora", &[], "").1,
        "Hello Dora"
    );
    let (status, _) = call(
        control,
        "GET",
        "/api/serve/applications/",
        &[("authorization", "Bearer s3cret")],
        "",
    );
    assert_eq!(status, 200);
    // The verbs send it, from the flag or from the environment.
    let (ok, _, err) = verb("delete", &["Greeter"], control, &[]);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = verb(
        "delete",
        &["Greeter"],
        control,
        &[("SERVE_ADMIN_TOKEN", "s3cret")],
    );
    assert!(ok, "{err}");
    assert_eq!(call(server.addr, "GET", "/?name=Dora", &[], "").0, 404);
    let (ok, _, err) = verb("shutdown", &["--admin-token", "s3cret"], control, &[]);
    assert!(ok, "{err}");
    let status = server.exited().expect("the process exits after `shutdown`");
    assert!(status.success(), "{status}");
}

#[test]
fn on_loopback_no_token_is_needed() {
    let server = ExampleServer::start("apps", &["echo"]);
    let control = server.control_addr();
    assert!(control.ip().is_loopback());
    let now = details(control);
    assert_eq!(now["applications"]["Echo"]["route_prefix"], "/", "{now:#}");
    server.stop_and_lines();
}

#[test]
fn an_autoscaling_config_is_a_lightweight_update() {
    let first = ConfigFile::new("control-autoscale-first", GREETER);
    let server = ExampleServer::start("apps", &["--config", first.path()]);
    let control = server.control_addr();
    let autoscaling = |min: usize| {
        GREETER.replace(
            "num_replicas: 1",
            &format!(
                "autoscaling_config: {{min_replicas: {min}, max_replicas: 4, \
                 downscale_delay_s: 0.2, look_back_period_s: 0.2}}\n        \
                 graceful_shutdown_timeout_s: 3\n        health_check_period_s: 2"
            ),
        )
    };
    // From a fixed count to autoscaling, in place: the count is brought within the bounds.
    let two = ConfigFile::new("control-autoscale-two", &autoscaling(2));
    let (ok, out, err) = verb("deploy", &[two.path()], control, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("\"greeter\": \"updated\""), "{out}");
    let now = until(control, "2 replicas running", |d| {
        running_replicas(d, "greeter", "Greeter") == 2
    });
    let config = &now["applications"]["greeter"]["deployments"]["Greeter"]["deployment_config"];
    assert_eq!(
        config["autoscaling_config"]["min_replicas"], 2,
        "{config:#}"
    );
    assert_eq!(config["graceful_shutdown_timeout_s"], 3.0, "{config:#}");
    // The autoscaler runs by the newest config: idle, with a lower minimum, it scales down.
    let one = ConfigFile::new("control-autoscale-one", &autoscaling(1));
    let (ok, out, err) = verb("deploy", &[one.path()], control, &[]);
    assert!(ok, "{err}");
    assert!(out.contains("\"greeter\": \"updated\""), "{out}");
    until(control, "an idle deployment scaled down to 1", |d| {
        running_replicas(d, "greeter", "Greeter") == 1
            && d["applications"]["greeter"]["deployments"]["Greeter"]["target_num_replicas"] == 1
    });
    assert_eq!(
        call(server.addr, "GET", "/?name=Dora", &[], "").1,
        "Hello Dora"
    );
    server.stop_and_lines();
}
