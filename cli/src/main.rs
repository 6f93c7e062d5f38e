//! `lifeboat`: the on-call terminal tool. Lists complete exports, restores one (or some of its tables) into a
//! new database in one streamed, verified step, verifies an export end to end without restoring it, and writes
//! the fleet's evidence report (`lifeboat::evidence`, the same page monitor writes).
//!
//! Wires only: the arguments are parsed in [`args`], the work is `lifeboat::postgres::archive`'s, and [`run`] prints.
//! Exit codes: 0 done, 1 failed, 2 usage, 130 interrupted (Ctrl-C; a restore drops the database it created).

mod args;
mod progress;
mod run;
mod url;

use std::process::ExitCode;

use args::Command;

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match args::parse(&argv) {
        Err(e) => Err(run::CliError::Usage(e)),
        Ok(Command::Help(text)) => {
            print!("{text}");
            Ok(())
        }
        Ok(Command::Version) => {
            println!("lifeboat {}", lifeboat::core::VERSION);
            Ok(())
        }
        Ok(Command::Exports { db, profile, common }) => run::exports(&db, profile.as_deref(), &common).await,
        Ok(Command::Restore(r)) => run::restore(&r).await,
        Ok(Command::Verify {
            manifest,
            identity,
            common,
        }) => run::verify(&manifest, identity.as_ref(), &common).await,
        Ok(Command::Report { period, out, common }) => run::report(period.as_deref(), out, &common).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lifeboat: {e}");
            let code = e.exit_code();
            if code == run::INTERRUPTED {
                // Leave at once: returning would wait for the abandoned stream's decoding thread to notice.
                std::process::exit(i32::from(code));
            }
            ExitCode::from(code)
        }
    }
}
