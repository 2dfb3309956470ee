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
