//! The process around the handler, shared by the `restore` and `restore-test` binaries: settings and clients
//! built once per cold start, then the Lambda runtime, or one standalone event (`--event '<json>'` or
//! `LIFEBOAT_EVENT`) handled with no deadline, its result printed on stdout. Which actions the process serves is
//! `LIFEBOAT_RESTORE_ENTRY`'s to say, never the binary's name.

use crate::settings::RestoreSettings;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use lifeboat::core::settings::ProcessEnv;
use serde_json::Value;
use std::process::ExitCode;
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

/// Runs the function until the runtime stops it (or once, for a standalone event); an error that stops it is
/// written as a log line like any other.
pub async fn run() -> ExitCode {
    lifeboat::core::telemetry::init();
    lifeboat::core::telemetry::exit_code(serve().await)
}

async fn serve() -> Result<(), Error> {
    let settings = RestoreSettings::from_env(&ProcessEnv)?;
    let config = lifeboat::core::aws::load_config().await;
    let deps = crate::Deps::new(&config, settings);

    if let Some(raw) = standalone_event() {
        let payload: Value = serde_json::from_str(&raw).map_err(|e| {
            crate::RestoreError::from(lifeboat::core::error::Error::InvalidEvent(format!(
                "--event / LIFEBOAT_EVENT is not JSON: {e}"
            )))
        })?;
        let result = crate::handle(&deps, payload, None)
            .instrument(tracing::info_span!("standalone"))
            .await?;
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        let deadline = lifeboat::core::deadline_from_epoch_ms(event.context.deadline);
        lifeboat::core::telemetry::reported(crate::handle(deps, event.payload, deadline)).instrument(span)
    }))
    .await
}
