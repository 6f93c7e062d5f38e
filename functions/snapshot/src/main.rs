//! Wires the Lambda runtime to the handler: configuration and clients are built once per cold start.

// The run's future (plan mode, databases, caches, retention, wrapped to log a failure) nests deeper than the
// compiler's default query depth when it lays out `main`'s future.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lifeboat::core::settings::ProcessEnv;
use lifeboat::plans::store::Location;
use lifeboat::rds::settings::SnapshotSettings;
use serde_json::Value;
use std::process::ExitCode;
use tracing::Instrument;

#[tokio::main]
async fn main() -> ExitCode {
    lifeboat::core::telemetry::init();
    lifeboat::core::telemetry::exit_code(run().await)
}

async fn run() -> Result<(), Error> {
    let settings = SnapshotSettings::from_env(&ProcessEnv)?;
    let plan = Location::from_env(&ProcessEnv)?;
    let config = lifeboat::core::aws::load_config().await;
    let state_machine = lifeboat::core::settings::read(&ProcessEnv, snapshot::restore_tests::STATE_MACHINE);
    let deps = snapshot::Deps::new(&config, settings)
        .with_plan(plan)
        .with_restore_tests(&config, state_machine);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        lifeboat::core::telemetry::reported(snapshot::handle(deps, event.payload)).instrument(span)
    }))
    .await
}
