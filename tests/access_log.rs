//! Access logs, as Ray writes them: the proxy's `POST / 200 1.2ms` per HTTP request and each
//! replica's `CALL say_hello OK 0.5ms` per call, in text and in JSON, from the real `hello`
//! example (its stderr); off with `enable_access_log: false`; failures with their status, from a
//! real HTTP server in this process.

use serve_test_support::example::ExampleServer;
use serve_test_support::http::send;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn greet(server: &ExampleServer, body: &str) -> serve_test_support::http::Reply {
    runtime().block_on(send(
        server.addr,
        "POST",
        "/",
        &[("content-type", "application/json")],
        body.to_owned(),
    ))
}

/// The value of `key=value` in a text log line (quotes stripped).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[at..];
    let value = rest.split([' ', '}']).next()?;
    Some(value.trim_matches('"'))
}

#[test]
fn text_access_lines_name_the_request_route_deployment_and_replica() {
    let server = ExampleServer::start("hello", &[]);
    let reply = greet(&server, r#"{"language": "spanish", "name": "Dora"}"#);
    assert_eq!(reply.body, "Hola Dora");
    let proxy = server.wait_for_line("the proxy's line", |l| {
        l.contains("serve::access") && l.contains("POST / 200 ")
    });
    // `POST / 200 0.4ms method="POST" path="/" route="/" application="LanguageClassifier" ..`
    assert!(proxy.contains(" INFO "), "{proxy}");
    assert_eq!(field(&proxy, "route"), Some("/"), "{proxy}");
    assert_eq!(
        field(&proxy, "application"),
        Some("LanguageClassifier"),
        "{proxy}"
    );
    assert_eq!(field(&proxy, "status"), Some("200"), "{proxy}");
    let latency: f64 = field(&proxy, "latency_ms").unwrap().parse().unwrap();
    assert!(latency > 0.0, "{proxy}");
    let request_id = field(&proxy, "request_id").unwrap().to_owned();
    assert_eq!(request_id.len(), 16, "{proxy}");
    // The replicas' lines carry the same request id, in the request's span.
    let spanish = server.wait_for_line("SpanishResponder's line", |l| {
        l.contains("serve::access") && l.contains("CALL say_hello OK")
    });
    assert_eq!(
        field(&spanish, "request_id"),
        Some(request_id.as_str()),
        "{spanish}"
    );
    assert_eq!(
        field(&spanish, "deployment"),
        Some("SpanishResponder"),
        "{spanish}"
    );
    let replica: usize = field(&spanish, "replica").unwrap().parse().unwrap();
    assert!(replica < 3, "one of its three replicas: {spanish}");
    let ingress = server.wait_for_line("LanguageClassifier's line", |l| {
        l.contains("serve::access") && l.contains("CALL call OK")
    });
    assert_eq!(field(&ingress, "deployment"), Some("LanguageClassifier"));
    assert_eq!(field(&ingress, "request_id"), Some(request_id.as_str()));

    // A 4xx: the proxy's line has its status, the ingress's call is an ERROR with its reason.
    let reply = greet(&server, "not json");
    assert_eq!(reply.status, 400);
    let bad = server.wait_for_line("the 400's line", |l| {
        l.contains("serve::access") && l.contains("POST / 400 ")
    });
    assert!(bad.contains(" INFO "), "{bad}");
    let failed = server.wait_for_line("the ingress's ERROR line", |l| {
        l.contains("serve::access") && l.contains("CALL call ERROR")
    });
    assert!(failed.contains(" ERROR "), "{failed}");
    assert!(failed.contains("error="), "{failed}");
    assert!(server.stop().success());
}

#[test]
fn json_access_lines_parse_and_carry_every_field() {
    let server = ExampleServer::start("hello", &["--log-format", "json"]);
    let reply = greet(&server, r#"{"language": "french", "name": "Dora"}"#);
    assert_eq!(reply.body, "Bonjour Dora");
    let parse = |line: &str| -> serde_json::Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let proxy = parse(&server.wait_for_line("the proxy's line", |l| {
        l.contains("\"serve::access\"") && l.contains("\"POST / 200 ")
    }));
    assert_eq!(proxy["level"], "INFO");
    assert_eq!(proxy["method"], "POST");
    assert_eq!(proxy["route"], "/");
    assert_eq!(proxy["status"], 200);
    assert_eq!(proxy["application"], "LanguageClassifier");
    assert_eq!(proxy["deployment"], "LanguageClassifier");
    assert!(proxy["latency_ms"].as_f64().unwrap() > 0.0, "{proxy}");
    let request_id = proxy["request_id"].as_str().unwrap().to_owned();
    let french = parse(&server.wait_for_line("FrenchResponder's line", |l| {
        l.contains("\"serve::access\"") && l.contains("\"CALL say_hello OK")
    }));
    assert_eq!(french["method"], "say_hello");
    assert_eq!(french["status"], "OK");
    assert_eq!(french["deployment"], "FrenchResponder");
    assert_eq!(french["replica"], 0);
    assert_eq!(french["request_id"], request_id.as_str());
    assert!(french["latency_ms"].as_f64().unwrap() >= 0.0, "{french}");
    assert!(french["timestamp"].is_string(), "{french}");
    // Every line of the log is JSON, the runtime's own too.
    assert!(server.stop().success());
    // (`stop` read the log to its end.)
}

#[test]
fn enable_access_log_false_removes_the_lines() {
    let path = std::env::temp_dir().join(format!("no-access-log-{}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "logging_config:\n  enable_access_log: false\napplications:\n- name: hello\n",
    )
    .unwrap();
    let server = ExampleServer::start("hello", &["--config", path.to_str().unwrap()]);
    let reply = greet(&server, r#"{"language": "spanish", "name": "Dora"}"#);
    assert_eq!(reply.body, "Hola Dora");
    // Stopping flushes the log: every line is in once it ends.
    let lines = server.stop_and_lines();
    let _ = std::fs::remove_file(&path);
    assert!(
        lines.iter().any(|l| l.contains("all requests finished")),
        "the log was read to its end: {lines:?}"
    );
    let access: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("serve::access"))
        .collect();
    assert!(access.is_empty(), "{access:?}");
}

#[test]
fn rust_log_can_turn_the_access_log_off_too() {
    let server =
        ExampleServer::start_with_env("hello", &[], &[("RUST_LOG", "info,serve::access=off")]);
    let reply = greet(&server, r#"{"language": "spanish", "name": "Dora"}"#);
    assert_eq!(reply.body, "Hola Dora");
    let lines = server.stop_and_lines();
    assert!(lines.iter().any(|l| l.contains("all requests finished")));
    assert!(
        !lines.iter().any(|l| l.contains("serve::access")),
        "{lines:?}"
    );
}

mod in_process {
    //! A real HTTP server in this process, with a `tracing` subscriber writing into a buffer.

    use std::sync::{Arc, Mutex, OnceLock};

    use serve_core::http::{HttpError, Request, StatusCode};
    use serve_core::prelude::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every line written by this process's subscriber (installed on first use).
    fn log() -> &'static Buffer {
        static LOG: OnceLock<Buffer> = OnceLock::new();
        LOG.get_or_init(|| {
            let buffer = Buffer::default();
            let writer = buffer.clone();
            tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            buffer
        })
    }

    fn lines() -> Vec<String> {
        String::from_utf8_lossy(&log().0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[deployment]
    #[derive(Default)]
    pub struct Flaky;

    #[deployment]
    impl Flaky {
        pub fn call(&self, req: Request) -> Result<String, HttpError> {
            match req.path() {
                "/flaky/forbidden" => Err(HttpError::new(StatusCode::FORBIDDEN, "not for you")),
                "/flaky/broken" => Err(HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "broken")),
                "/flaky/panic" => panic!("the flaky deployment panicked"),
                _ => Ok("fine".into()),
            }
        }
    }

    #[test]
    fn failures_and_their_statuses_are_logged() {
        log();
        let serve = Serve::start().unwrap();
        let addr = serve.start_http("127.0.0.1:0").unwrap();
        serve.run_http(Flaky::bind(), "/flaky").unwrap();
        let rt = super::runtime();
        let get =
            |path: &str| rt.block_on(serve_test_support::http::send(addr, "GET", path, &[], ""));
        assert_eq!(get("/flaky/ok").status, 200);
        assert_eq!(get("/flaky/forbidden").status, 403);
        assert_eq!(get("/flaky/broken").status, 500);
        assert_eq!(get("/flaky/panic").status, 500);
        assert_eq!(get("/elsewhere").status, 404);
        // The proxy logs each before it answers; lines are written as they are made.
        let lines = lines();
        let line = |what: &str| {
            lines
                .iter()
                .find(|l| l.contains("serve::access") && l.contains(what))
                .unwrap_or_else(|| panic!("no line with {what}:\n{}", lines.join("\n")))
                .clone()
        };
        assert!(line("GET /flaky/ok 200 ").contains(" INFO "));
        assert!(line("GET /flaky/forbidden 403 ").contains(" INFO "));
        let broken = line("GET /flaky/broken 500 ");
        assert!(broken.contains(" ERROR "), "a 5xx is an error: {broken}");
        assert!(broken.contains("route=\"/flaky\""), "{broken}");
        assert!(line("GET /flaky/panic 500 ").contains(" ERROR "));
        let missing = line("GET /elsewhere 404 ");
        assert!(
            missing.contains("application=\"\""),
            "no application: {missing}"
        );
        // The replica's lines: OK, then the errors with their reasons.
        let errors: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("deployment=Flaky") && l.contains("CALL call ERROR"))
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|l| l.contains("the flaky deployment panicked")),
            "{errors:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("deployment=Flaky") && l.contains("CALL call OK")),
            "{lines:?}"
        );
        serve.shutdown();
    }
}
