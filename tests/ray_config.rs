//! A config file as Ray's `serve build` writes it (every key of Ray's schema:
//! `tests/configs/hello_serve_build.yaml`) runs the `hello` example unchanged: the keys that mean
//! something here are honoured, the others are named in one log line.

use serve_test_support::example::{ExampleServer, refused};
use serve_test_support::http::post_json;

const RAY_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/configs/hello_serve_build.yaml"
);

fn post(server: &ExampleServer, language: &str) -> serve_test_support::http::Reply {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = serde_json::json!({"language": language, "name": "Dora"});
    rt.block_on(post_json(server.addr, "/", &body))
}

#[test]
fn rays_serve_build_config_runs_the_hello_example() {
    let server = ExampleServer::start("hello", &["--config", RAY_CONFIG]);
    for (language, greeting) in [("spanish", "Hola Dora"), ("french", "Bonjour Dora")] {
        let reply = post(&server, language);
        assert_eq!((reply.status, reply.body.as_str()), (200, greeting));
    }
    // The keys with no effect here, named once.
    let ignored = server.wait_for_line("the ignored keys", |l| {
        l.contains("config keys accepted but with no effect here")
    });
    for key in [
        "grpc_options",
        "runtime_env (application `app1`)",
        "placement_group_bundles (deployment `SpanishResponder`)",
        "http_options.keep_alive_timeout_s",
    ] {
        assert!(ignored.contains(key), "{key} in {ignored}");
    }
    // Honoured: SpanishResponder's 2 replicas (the code says 3), FrenchResponder autoscaling
    // (`num_replicas: auto`), the import path naming the example's application.
    let status = serve_test_support::example::status(&server);
    let spanish = status
        .split("- name: ")
        .find(|d| d.starts_with("SpanishResponder"))
        .unwrap_or_else(|| panic!("no SpanishResponder in:\n{status}"));
    assert!(spanish.contains("num_replicas: 2"), "{status}");
    // Access lines: FrenchResponder's are off (`enable_access_log: false`), the others on.
    server.wait_for_line("SpanishResponder's access line", |l| {
        l.contains("serve::access")
            && l.contains("SpanishResponder")
            && l.contains("CALL say_hello OK")
    });
    server.wait_for_line("the proxy's access line", |l| {
        l.contains("serve::access") && l.contains("POST / 200")
    });
    assert!(server.stop().success());
}

#[test]
fn an_import_path_naming_another_application_is_still_the_only_one() {
    // A binary offering one application runs it whatever the path names, and says so.
    let server = ExampleServer::start("hello", &["hello:summarizer"]);
    server.wait_for_line("the note about the import path", |l| {
        l.contains("`hello:summarizer` names application `summarizer`; this binary serves one, `LanguageClassifier`")
    });
    assert_eq!(post(&server, "spanish").body, "Hola Dora");
    assert!(server.stop().success());
}

#[test]
fn a_misspelt_ray_key_is_refused_with_the_valid_keys() {
    let text = std::fs::read_to_string(RAY_CONFIG)
        .unwrap()
        .replace("proxy_location: EveryNode", "proxy_locaton: EveryNode");
    let path = std::env::temp_dir().join(format!("ray-misspelt-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let stderr = refused(
        "hello",
        &["run", "--port", "0", "--config", path.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&path);
    assert!(stderr.contains("unknown field `proxy_locaton`"), "{stderr}");
    assert!(
        stderr.contains("`proxy_location`"),
        "lists the valid keys: {stderr}"
    );
}
