//! The reference of `make bench-cold-start`: the least a Rust Lambda function does before its first invocation
//! (a Tokio runtime and `lambda_runtime` asking for an event), built with the same release profile as the
//! functions. It echoes its event. Never deployed: the template names no such function.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
