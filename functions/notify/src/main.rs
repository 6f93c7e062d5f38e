//! Wires the Lambda runtime to the notify handler: settings and clients are built once per cold start.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lifeboat::core::settings::ProcessEnv;
use notify::settings::NotifySettings;
use serde_json::Value;
use std::process::ExitCode;
use tracing::Instrument;

#[tokio::main]
async fn main() -> ExitCode {
    lifeboat::core::telemetry::init();
    lifeboat::core::telemetry::exit_code(run().await)
}

async fn run() -> Result<(), Error> {
    let settings = NotifySettings::from_env(&ProcessEnv)?;
    let config = lifeboat::core::aws::load_config().await;
    let deps = notify::Deps::new(&config, settings);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        lifeboat::core::telemetry::reported(notify::handle(deps, event.payload)).instrument(span)
    }))
    .await
}
