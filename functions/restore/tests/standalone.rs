//! The binary as the ECS task starts it, without any service: with no configuration it stops at once, naming the
//! variable it needs, and exits non-zero. (Also makes `cargo test --workspace` build `target/<profile>/restore`,
//! which `tests/it/restore_export.rs` runs in its standalone mode against moto and PostgreSQL.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn without_its_bucket_the_binary_stops_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_restore"))
        .args(["--event", "{}"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("LIFEBOAT_BUCKET"), "{text}");
    assert!(text.contains("required"), "{text}");
}
