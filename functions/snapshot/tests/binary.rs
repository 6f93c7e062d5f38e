//! The binary as Lambda starts it: a bad setting stops it at once, naming the variable, before it asks the
//! runtime for an event. (Also makes `cargo test --workspace` build `target/<profile>/snapshot`, which
//! `tests/it/emf.rs` runs under a local Lambda runtime API.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn a_bad_setting_stops_the_binary_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_snapshot"))
        .env_clear()
        .env("LIFEBOAT_CONCURRENCY", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("LIFEBOAT_CONCURRENCY"), "{text}");
}
