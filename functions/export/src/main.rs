//! Wires the Lambda runtime to the handler. The same binary runs outside Lambda (the ECS Fargate task for
//! exports longer than 15 minutes): `export --event '<json>'` or `LIFEBOAT_EVENT='<json>' export` runs one
//! export, prints the summary on stdout and exits non-zero on failure.

use export::settings::ExportSettings;
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

#[tokio::main]
async fn main() -> ExitCode {
    lifeboat::core::telemetry::init();
    lifeboat::core::telemetry::exit_code(run().await)
}

async fn run() -> Result<(), Error> {
    let settings = ExportSettings::from_env(&ProcessEnv)?;
    let config = lifeboat::core::aws::load_config().await;
    let deps = export::Deps::new(&config, settings);

    if let Some(raw) = standalone_event() {
        let payload: Value = serde_json::from_str(&raw).map_err(export::ExportError::EventNotJson)?;
        let summary = export::invoke(&deps, payload, None).await?;
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        let deadline = lifeboat::core::deadline_from_epoch_ms(event.context.deadline);
        lifeboat::core::telemetry::reported(export::invoke(deps, event.payload, deadline)).instrument(span)
    }))
    .await
}
