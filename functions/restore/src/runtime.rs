//! The process around the handler, shared by the `restore` and `restore-test` binaries: settings and clients
//! built once per cold start, then the Lambda runtime, or one standalone event (`--event '<json>'` or
//! `LIFEBOAT_EVENT`) handled with no deadline, its result printed on stdout. Each binary serves one entry, fixed
//! when it is built (`restore` the console's actions, `restore-test` the state machine's steps), and refuses to
//! start where `LIFEBOAT_RESTORE_ENTRY` names the other: a binary holds no code of the other entry's requests.

use crate::settings::{Entry, RestoreSettings};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use lifeboat::core::settings::ProcessEnv;
use serde_json::Value;
use std::future::Future;
use std::process::ExitCode;
use std::time::Instant;
use tracing::Instrument;

fn standalone_event() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--event" {
            return args.next();
        }
    }
    std::env::var("LIFEBOAT_EVENT").ok()
}

/// Runs the console's function (the `restore` binary) until the runtime stops it, or once for a standalone event.
pub async fn run_console() -> ExitCode {
    run(Entry::Console, crate::handler::console).await
}

/// Runs the state machine's function (the `restore-test` binary), as [`run_console`] does.
pub async fn run_steps() -> ExitCode {
    run(Entry::Steps, crate::handler::steps).await
}

/// Runs the function until the runtime stops it (or once, for a standalone event); an error that stops it is
/// written as a log line like any other. `handle` is the one entry's handler the binary serves: the other entry's
/// code is never called from it, so the linker leaves it out of the binary.
async fn run<F, Fut>(entry: Entry, handle: F) -> ExitCode
where
    F: Fn(&'static crate::Deps, Value, Option<Instant>) -> Fut,
    Fut: Future<Output = Result<Value, crate::RestoreError>>,
{
    lifeboat::core::telemetry::init();
    lifeboat::core::telemetry::exit_code(serve(entry, handle).await)
}

async fn serve<F, Fut>(entry: Entry, handle: F) -> Result<(), Error>
where
    F: Fn(&'static crate::Deps, Value, Option<Instant>) -> Fut,
    Fut: Future<Output = Result<Value, crate::RestoreError>>,
{
    let settings = RestoreSettings::from_env(&ProcessEnv)?;
    if settings.entry != entry {
        return Err(lifeboat::core::error::ConfigError::new(
            "LIFEBOAT_RESTORE_ENTRY",
            settings.entry.as_str(),
            format!(
                "this binary (/usr/local/bin/{}) serves `{}` only, the requests of {}; {} runs \
                 /usr/local/bin/{}",
                entry.binary(),
                entry.as_str(),
                entry.function(),
                settings.entry.function(),
                settings.entry.binary(),
            ),
        )
        .into());
    }
    let config = lifeboat::core::aws::load_config().await;
    // The clients and settings live as long as the process: every invocation borrows them.
    let deps: &'static crate::Deps = Box::leak(Box::new(crate::Deps::new(&config, settings)));

    if let Some(raw) = standalone_event() {
        let payload: Value = serde_json::from_str(&raw).map_err(|e| {
            crate::RestoreError::from(lifeboat::core::error::Error::InvalidEvent(format!(
                "--event / LIFEBOAT_EVENT is not JSON: {e}"
            )))
        })?;
        let result = handle(deps, payload, None)
            .instrument(tracing::info_span!("standalone"))
            .await?;
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        let deadline = lifeboat::core::deadline_from_epoch_ms(event.context.deadline);
        lifeboat::core::telemetry::reported(handle(deps, event.payload, deadline)).instrument(span)
    }))
    .await
}
