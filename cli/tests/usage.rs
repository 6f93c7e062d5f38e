//! The binary's usage contract, without any service: help exits 0, a bad command line exits 2 and says what
//! to do. (Also makes `cargo test --workspace` build `target/<profile>/lifeboat`, which `tests/it/cli.rs` runs
//! against moto and PostgreSQL.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn lifeboat(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_exits_0_and_bad_usage_exits_2() {
    let out = lifeboat(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("lifeboat restore"));
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["verify"][..],
        &["exports", "db", "--nope"][..],
    ] {
        let out = lifeboat(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--help"), "{args:?}");
    }
}

#[test]
fn a_report_for_a_period_that_cannot_be_read_exits_2_and_names_the_forms() {
    let out = lifeboat(&["report", "--period", "2026-13"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`2026-13` is not a period: use YYYY-MM (2026-10), YYYY-Qn (2026-Q3)"),
        "{err}"
    );
}
