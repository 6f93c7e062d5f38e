//! `lifeboat`: the on-call terminal tool. Lists complete exports, restores one (or some of its tables) into a
//! new database in one streamed, verified step (or plans it with `--dry-run`), verifies an export end to end
//! without restoring it, acknowledges a content anomaly (`acknowledge`), checks, shows, compares and applies the backup plan document (`plan`), writes the fleet's
//! evidence report (`lifeboat::evidence`, the same page monitor
//! writes), and prints its own shell completions and man pages.
//!
//! Wires only: the command line is [`args`]'s (clap), the work is `lifeboat::postgres::archive`'s, [`run`] carries a
//! command out and classes its errors, and this file prints: the result as text, or with `--json` as one JSON
//! document on stdout (an error too, as `{"error": {...}}`); messages and progress always on stderr.
//! Exit codes ([`run::Kind`]): 0 done, 1 failed, 2 usage, 3 not found, 4 refused, 5 verification failed,
//! 130 interrupted (Ctrl-C; a restore drops the database it created).

mod acknowledge;
mod args;
mod plan;
mod progress;
mod recover;
mod refresh;
mod run;
mod url;

/// The completion scripts and man pages `build.rs` wrote from [`args`].
mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use args::Command;

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match args::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return usage(&e, argv.iter().any(|a| a == "--json")),
    };
    let json = cli.global.json;
    let profile = cli.global.profile.as_deref();
    let result = match &cli.command {
        Command::Exports(a) => run::exports(a, profile).await,
        Command::Restore(a) => run::restore(a, profile).await,
        Command::Recover(a) => recover::recover(a, profile).await,
        Command::Refresh(a) => refresh::refresh(a, profile).await,
        Command::Acknowledge(a) => acknowledge::acknowledge(a, profile).await,
        Command::Verify(a) => run::verify(a, profile).await,
        Command::Report(a) => run::report(a, profile).await,
        Command::Plan { command } => plan::run(command, profile).await,
        Command::Completions { shell } => return print_generated(generated::COMPLETIONS, shell.name()),
        Command::Man { command } => {
            return print_generated(generated::MAN_PAGES, command.as_deref().unwrap_or("lifeboat"));
        }
    };
    match result {
        Ok(done) => {
            if json {
                print_json(&done.json);
            } else {
                write_out(&done.text);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lifeboat: {e}");
            if json {
                print_json(&e.to_json());
            }
            let code = e.kind().exit_code();
            if code == run::INTERRUPTED {
                // Leave at once: returning would wait for the abandoned stream's decoding thread to notice.
                let _ = std::io::stdout().flush();
                std::process::exit(i32::from(code));
            }
            ExitCode::from(code)
        }
    }
}

fn print_json(doc: &serde_json::Value) {
    // A Value always serializes; the fallback only keeps this free of a panic path.
    let text = serde_json::to_string_pretty(doc).unwrap_or_else(|_| doc.to_string());
    write_out(&format!("{text}\n"));
}

/// Writes to stdout, ignoring a reader that went away (`lifeboat plan show | head`): `print!` would panic on
/// the broken pipe, and the command's work is done either way.
fn write_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// clap's verdict on the command line: help and version exit 0 (on stdout), anything else is a usage error
/// (exit 2, clap's message on stderr; with `--json` also as the JSON error document on stdout).
fn usage(e: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let _ = e.print();
    if json {
        // clap's message without its usage and tip: the paragraph after `error: `, on one line.
        let rendered = e.to_string();
        let first = rendered.split("\n\n").next().unwrap_or_default();
        let message = first
            .trim_start_matches("error: ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let kind = run::Kind::Usage;
        print_json(&serde_json::json!({
            "error": {"kind": kind.as_str(), "exit_code": kind.exit_code(), "message": message}
        }));
    }
    ExitCode::from(run::Kind::Usage.exit_code())
}

/// Prints one of the build's embedded files; the name was checked by clap against the same list.
fn print_generated(files: &[(&str, &str)], name: &str) -> ExitCode {
    match files.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("lifeboat: nothing generated for {name}");
            ExitCode::from(run::Kind::Failed.exit_code())
        }
    }
}
