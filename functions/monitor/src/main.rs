//! Wires the Lambda runtime to the monitor handler: settings and clients are built once per cold start.

// The run's future (plan mode's load, databases, caches, alarms, janitor) nests deeper than the compiler's default
// query depth when it lays out `main`'s future.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lifeboat::core::settings::ProcessEnv;
use monitor::settings::MonitorSettings;
use serde_json::Value;
use std::process::ExitCode;
use tracing::Instrument;

#[tokio::main]
async fn main() -> ExitCode {
    lifeboat::core::telemetry::init();
    lifeboat::core::telemetry::exit_code(run().await)
}

async fn run() -> Result<(), Error> {
    let settings = MonitorSettings::from_env(&ProcessEnv)?;
    let config = lifeboat::core::aws::load_config().await;
    let deps = monitor::Deps::new(&config, settings);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        lifeboat::core::telemetry::reported(monitor::run(deps, event.payload)).instrument(span)
    }))
    .await
}
