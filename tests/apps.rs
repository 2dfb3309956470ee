//! A binary offering several applications (`examples/apps.rs`): `run NAME` and a config file's
//! `import_path` pick one, its `args` build it, and mistakes are errors naming what there is.

use serve_test_support::example::{ConfigFile, ExampleServer, example_path};
use serve_test_support::http::send;

fn get(server: &ExampleServer, path: &str, body: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = rt.block_on(send(server.addr, "POST", path, &[], body.to_owned()));
    (reply.status, reply.body)
}

/// Runs `apps ARGS..` to its end (it must fail) and returns its stderr.
fn refused(args: &[&str]) -> String {
    serve_test_support::example::refused("apps", args)
}

#[test]
fn run_names_the_application_by_name_or_import_path() {
    for target in ["echo", "apps:echo"] {
        let server = ExampleServer::start("apps", &[target]);
        assert_eq!(get(&server, "/", "ping"), (200, "ping".into()), "{target}");
        assert!(server.stop().success());
    }
    let server = ExampleServer::start("apps", &["greeter"]);
    assert_eq!(
        get(&server, "/?name=Dora", ""),
        (200, "Hello Dora".into()),
        "default args"
    );
    assert!(server.stop().success());
}

#[test]
fn a_config_files_import_path_and_args_pick_and_build_the_application() {
    let file = ConfigFile::new(
        "apps-greeter",
        "applications:\n- name: greetings\n  route_prefix: /greet\n  import_path: apps:greeter\n  args:\n    greeting: Hola\n",
    );
    // As Ray's `serve run config.yaml`: the file as the argument.
    let server = ExampleServer::start("apps", &[file.path()]);
    assert_eq!(
        get(&server, "/greet?name=Dora", ""),
        (200, "Hola Dora".into())
    );
    assert!(server.stop().success());
}

#[test]
fn mistakes_name_what_the_binary_offers() {
    let err = refused(&["run", "--port", "0"]);
    assert!(
        err.contains("this binary offers several applications (greeter, echo): name one"),
        "{err}"
    );
    let err = refused(&["run", "--port", "0", "apps:summarizer"]);
    assert!(
        err.contains("`apps:summarizer` names application `summarizer`, but this binary offers: greeter, echo"),
        "{err}"
    );
    let bad_args = ConfigFile::new(
        "apps-bad-args",
        "applications:\n- import_path: apps:greeter\n  args: {greting: Hola}\n",
    );
    let err = refused(&["run", "--port", "0", "--config", bad_args.path()]);
    assert!(
        err.contains("the `args` of application `greeter` do not fit it")
            && err.contains("greting"),
        "{err}"
    );
    let args_for_echo = ConfigFile::new(
        "apps-echo-args",
        "applications:\n- import_path: apps:echo\n  args: {loud: true}\n",
    );
    let err = refused(&["run", "--port", "0", "--config", args_for_echo.path()]);
    assert!(err.contains("application `echo` takes no `args`"), "{err}");
}

#[test]
fn config_prints_every_application_with_its_import_path() {
    let out = std::process::Command::new(example_path("apps"))
        .arg("config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("import_path: apps:greeter"), "{printed}");
    assert!(printed.contains("import_path: apps:echo"), "{printed}");
    assert!(printed.contains("route_prefix: /echo"), "{printed}");
    // And it reads back as a config file.
    serve_core::config::ServeConfig::from_yaml(&printed).unwrap();
}
