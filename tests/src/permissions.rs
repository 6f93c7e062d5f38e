//! Permissions proven by use, from a test: `tests/stack/permissions.py` run over a recording of moto's requests
//! ([`crate::moto::Moto::start_recording`]) and a deployed stack's document, with the reasons kept for unused
//! grants (`infra/permissions-unused.json`). What the script checks and prints: its module docstring and
//! `docs/book/src/reference/permissions.md`.

use std::path::Path;
use std::process::Command;

use crate::repo_root;

/// The file of reasons each unused grant is kept for.
pub const REASONS: &str = "infra/permissions-unused.json";

/// Runs the check; its exit code (0 every call allowed, 1 a call not allowed, 2 unusable input) and its report
/// (one finding a line, tab-separated: kind, function, action, resource, detail; then a summary). `extra` is
/// passed on (`--strict-unused`, `--quiet`, `--json FILE`, or `--reasons FILE` to replace [`REASONS`]).
pub fn check(recording: &Path, stack: &Path, extra: &[&str]) -> (i32, String) {
    let python = repo_root().join(".venv/bin/python3");
    let out = Command::new(&python)
        .arg(repo_root().join("tests/stack/permissions.py"))
        .arg("--recording")
        .arg(recording)
        .arg("--stack")
        .arg(stack)
        .arg("--reasons")
        .arg(repo_root().join(REASONS))
        .args(extra)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}; make test creates .venv", python.display()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("permissions.py exited"), report)
}
