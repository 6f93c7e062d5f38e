//! Wires the Lambda runtime to the rotate function's entry (rotation steps and plan ticks): settings and clients are built once per cold start.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lifeboat::core::settings::ProcessEnv;
use rotate::settings::RotateSettings;
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lifeboat::core::telemetry::init();
    let settings = RotateSettings::from_env(&ProcessEnv)?;
    let config = lifeboat::core::aws::load_config().await;
    let deps = rotate::Deps::new(&config, settings);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        let deadline = lifeboat::core::deadline_from_epoch_ms(event.context.deadline);
        rotate::run(deps, event.payload, deadline).instrument(span)
    }))
    .await
}
