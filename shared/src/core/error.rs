//! Errors shared by every function, and their mapping to the `errorType` Lambda reports.

use lambda_runtime::Diagnostic;

/// A configuration value that cannot be used. Always names the variable and the value it got.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            var: var.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The error type every handler returns. Each variant becomes a distinct Lambda `errorType`, so a failed
/// invocation can be told apart (and alarmed on) without reading its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The event was not one this function accepts; the message says which field was wrong.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// An AWS call failed after the SDK's own retries. `code` is the service's error code when it sent one
    /// (`AccessDenied`, `NoSuchKey`, ...), so that a caller can tell "refused" and "not found" from an outage
    /// without reading the message.
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
        code: Option<String>,
    },
    /// Some databases failed while the others completed; the message lists them.
    #[error("{0}")]
    PartialFailure(String),
    /// The run's metrics could not be written (standard output refused the Embedded Metric Format lines).
    #[error("writing the run's metrics failed: {0}")]
    Metrics(String),
    /// No version of the plan document can be used (none exists, or every one fails validation); the message
    /// names the location and the newest version's error.
    #[error("plan document: {0}")]
    Plan(String),
}

impl Error {
    /// Wraps an SDK error, keeping the service's own error code and message rather than the SDK's
    /// generic "service error" text.
    pub fn aws<E>(operation: &'static str, err: E) -> Self
    where
        E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
    {
        Self::Aws {
            operation,
            code: err.code().map(str::to_owned),
            message: aws_error_message(&err),
        }
    }

    /// An AWS-side failure that carries no service error (a response without a field the call needs, ...).
    pub fn aws_other(operation: &'static str, message: impl Into<String>) -> Self {
        Self::Aws {
            operation,
            message: message.into(),
            code: None,
        }
    }

    /// The service's error code of an AWS failure, if it sent one.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Self::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::Config(_) => "Lifeboat.ConfigError",
            Self::InvalidEvent(_) => "Lifeboat.InvalidEvent",
            Self::Aws { .. } => "Lifeboat.AwsError",
            Self::PartialFailure(_) => "Lifeboat.PartialFailure",
            Self::Metrics(_) => "Lifeboat.MetricsError",
            Self::Plan(_) => "Lifeboat.PlanError",
        }
    }
}

impl From<Error> for Diagnostic {
    fn from(err: Error) -> Self {
        Diagnostic {
            error_type: err.error_type().to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// The most specific message in an error chain. The SDK's `Display` for a service error is just
/// "service error"; the service's code and message live further down the chain.
pub fn aws_error_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = inner.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_error_names_variable_and_value() {
        let err = ConfigError::new("LIFEBOAT_RETENTION", "daily=x", "`x` is not a whole number");
        assert_eq!(
            err.to_string(),
            "invalid configuration: LIFEBOAT_RETENTION=\"daily=x\": `x` is not a whole number"
        );
    }

    #[test]
    fn each_variant_has_its_own_lambda_error_type() {
        let d: Diagnostic = Error::InvalidEvent("missing `time`".into()).into();
        assert_eq!(d.error_type, "Lifeboat.InvalidEvent");
        assert_eq!(d.error_message, "invalid event: missing `time`");
        let d: Diagnostic = Error::from(ConfigError::new("A", "b", "c")).into();
        assert_eq!(d.error_type, "Lifeboat.ConfigError");
    }
}
