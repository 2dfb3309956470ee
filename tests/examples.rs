//! Runs every example program (cargo builds them for `cargo test`) and checks it prints what the
//! seed program prints.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> String {
    // This test binary lives in target/<profile>/deps/; the examples in target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "example binary {} not built", path.display());
    let out = Command::new(&path).output().unwrap();
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
fn hello_answers_in_each_language() {
    let out = example("hello");
    for answer in ["Hola Dora", "Bonjour Dora", "Please try again."] {
        assert!(out.contains(answer), "{answer} missing from:\n{out}");
    }
}

#[test]
fn pipeline_runs() {
    example("pipeline");
}
