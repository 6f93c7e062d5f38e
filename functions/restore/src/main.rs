//! Wires the Lambda runtime to the restore handler: settings and clients are built once per cold start. The same
//! binary runs outside Lambda (the ECS Fargate task for restores from exports longer than an invocation):
//! `restore --event '<json>'` or `LIFEBOAT_EVENT='<json>' restore` handles one event with no deadline, prints the
//! result on stdout and exits non-zero on failure.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use lifeboat::settings::ProcessEnv;
use restore::settings::RestoreSettings;
use serde_json::Value;
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
async fn main() -> Result<(), Error> {
    lifeboat::telemetry::init();
    let settings = RestoreSettings::from_env(&ProcessEnv)?;
    let config = lifeboat::aws::load_config().await;
    let deps = restore::Deps::new(&config, settings);

    if let Some(raw) = standalone_event() {
        let payload: Value = serde_json::from_str(&raw).map_err(|e| {
            restore::RestoreError::from(lifeboat::error::Error::InvalidEvent(format!(
                "--event / LIFEBOAT_EVENT is not JSON: {e}"
            )))
        })?;
        let result = restore::handle(&deps, payload, None)
            .instrument(tracing::info_span!("standalone"))
            .await?;
        println!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = &deps;
        let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
        let deadline = lifeboat::deadline_from_epoch_ms(event.context.deadline);
        restore::handle(deps, event.payload, deadline).instrument(span)
    }))
    .await
}
