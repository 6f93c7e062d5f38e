//! Logging set-up.
//!
//! Deployed functions run with Lambda's JSON log format (`LoggingConfig: LogFormat: JSON` in the template,
//! which sets `AWS_LAMBDA_LOG_FORMAT=JSON`); the runtime's subscriber then writes one JSON object per event,
//! with span fields, at the level in `AWS_LAMBDA_LOG_LEVEL`. Locally the same call writes readable text.
//! Log lines carry fields and a constant message; secrets are never fields.

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
