//! The binary's usage contract as a process, without any service: help (per command), completions, man pages,
//! usage errors (exit 2, also as JSON with `--json`) and arguments that are not UTF-8. (Also makes `cargo test
//! --workspace` build `target/<profile>/lifeboat`, which `tests/it/cli.rs` runs against moto and PostgreSQL.)

#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

const COMMANDS: [&str; 7] = [
    "exports",
    "restore",
    "recover",
    "verify",
    "report",
    "completions",
    "man",
];

fn lifeboat<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(args)
        .env_remove("LIFEBOAT_BUCKET")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_exits_0_and_bad_usage_exits_2() {
    let out = lifeboat(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for command in COMMANDS {
        assert!(help.contains(&format!("\n  {command} ")), "{command}: {help}");
    }
    assert!(
        help.contains("3 not found, 4 refused"),
        "the exit codes are in the help: {help}"
    );
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["verify"][..],
        &["exports", "db", "--nope"][..],
        &[
            "restore",
            "db",
            "--into",
            "postgres://h/d",
            "--latest",
            "--before",
            "2026-11-22T12:00Z",
        ][..],
        &["restore", "db", "--into", "postgres://h/d", "--jobs", "33"][..],
        &[
            "restore",
            "db",
            "--into",
            "postgres://h/d",
            "--identity-file",
            "k",
            "--identity-secret",
            "s",
        ][..],
        &["completions", "tcsh"][..],
    ] {
        let out = lifeboat(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("--help"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn help_for_a_command_is_that_commands_help_whichever_way_it_is_asked() {
    let top = stdout(&lifeboat(&["--help"]));
    for command in COMMANDS {
        let asked = lifeboat(&["help", command]);
        assert_eq!(asked.status.code(), Some(0), "{command}");
        let text = stdout(&asked);
        assert_ne!(text, top, "`lifeboat help {command}` is not the top-level help");
        assert!(
            text.contains(&format!("Usage: lifeboat {command}")),
            "{command}: {text}"
        );
        assert!(text.contains("Example"), "{command}: {text}");
        let flag = lifeboat(&[command, "--help"]);
        assert_eq!(flag.status.code(), Some(0), "{command}");
        assert_eq!(
            stdout(&flag),
            text,
            "`{command} --help` and `help {command}` say the same"
        );
    }
    let restore = stdout(&lifeboat(&["help", "restore"]));
    for option in [
        "--into",
        "--dry-run",
        "--export-profile",
        "--profile",
        "--json",
        "--jobs",
    ] {
        assert!(restore.contains(option), "{option}: {restore}");
    }
}

#[test]
fn completions_for_each_shell_name_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = lifeboat(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        assert!(script.len() > 500, "{shell}: {script}");
        for word in ["exports", "restore", "verify", "report", "dry-run", "export-profile"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    assert!(stdout(&lifeboat(&["completions", "bash"])).contains("complete -F _lifeboat"));
    assert!(stdout(&lifeboat(&["completions", "zsh"])).starts_with("#compdef lifeboat"));
}

#[test]
fn the_man_pages_render_as_roff() {
    let page = stdout(&lifeboat(&["man"]));
    assert!(page.contains("\n.TH lifeboat 1"), "{page}");
    for command in ["exports", "restore", "verify", "report", "completions", "man"] {
        assert!(page.contains(command), "{command} in lifeboat(1)");
        let out = lifeboat(&["man", command]);
        assert_eq!(out.status.code(), Some(0));
        let sub = stdout(&out);
        assert!(sub.contains(&format!(".TH lifeboat-{command} 1")), "{sub}");
        assert!(sub.contains(".SH OPTIONS"), "{sub}");
    }
    assert!(stdout(&lifeboat(&["man", "restore"])).contains("dry\\-run"));
}

#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error_and_a_path_that_is_not_is_used_as_one() {
    let name = OsStr::from_bytes(b"app-\xff");
    let out = lifeboat(&[OsStr::new("exports"), name]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid UTF-8"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));

    let out = lifeboat(&[OsStr::new("--json"), OsStr::new("exports"), name]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "usage");

    // A path is taken as bytes: the command goes on to its next check (here: no bucket, also exit 2, but its own).
    let path = OsStr::from_bytes(b"/tmp/key-\xff.txt");
    let out = lifeboat(&[
        OsStr::new("verify"),
        OsStr::new("exports/a/full/2026/11/22/a-full-20261122T020000Z.manifest.json"),
        OsStr::new("--identity-file"),
        path,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no bucket"), "{}", stderr(&out));
}

#[test]
fn with_json_a_usage_error_is_one_json_document_on_stdout() {
    let out = lifeboat(&["--json", "restore", "app-prod"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "usage");
    assert_eq!(doc["error"]["exit_code"], 2);
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("--into <URL>"), "{message}");
    assert!(stderr(&out).contains("--into"), "clap's message stays on stderr");
    let out = lifeboat(&["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("'lifeboat' requires a subcommand"), "{message}");

    // A value the tool checks after clap: the same document, from the tool.
    let out = lifeboat(&[
        "restore",
        "app-prod",
        "--into",
        "mysql://h/d",
        "--json",
        "--before",
        "2026-11-22T12:00Z",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "usage");
    assert_eq!(
        doc["error"]["message"],
        "--into must start with postgres:// or postgresql://"
    );
}

#[test]
fn a_reserved_target_name_is_refused_before_anything_is_read() {
    let out = lifeboat(&[
        "--json",
        "restore",
        "app-prod",
        "--into",
        "postgres://h/template1?sslmode=require",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "refused");
    assert_eq!(doc["error"]["exit_code"], 4);
}

#[test]
fn a_report_for_a_period_that_cannot_be_read_exits_2_and_names_the_forms() {
    let out = lifeboat(&["report", "--period", "2026-13"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`2026-13` is not a period: use YYYY-MM (2026-10), YYYY-Qn (2026-Q3)"),
        "{err}"
    );
}
