//! The rotate function's one error type: what failed (its kind), which credential it was about, and a message
//! that names the credential and the failure. It owns the mapping to Lambda's `errorType`.
//!
//! It depends on nothing else in this crate but `credentials::Role`, so the adapters (`postgres`, `secrets`) and the
//! handler can all use it without depending on each other. A message never holds a password or the rotation
//! token.

use lambda_runtime::Diagnostic;
use lifeboat::core::error::aws_error_message;
use lifeboat::postgres::db::FailureKind;
use lifeboat::postgres::rotation::set_secret::Refusal;

use crate::credentials::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidEvent,
    Aws,
    InvalidSecret,
    Database(FailureKind),
    Protocol,
    Timeout,
    /// A plan tick without a usable plan document, or without the settings a tick needs.
    Plan,
    /// A plan tick that could not bring every member's secret in step (the others were).
    PartialFailure,
}

/// A failed step. The message names the credential and the failure; it never holds a password or the token.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RotateError {
    pub kind: ErrorKind,
    pub role: Option<Role>,
    pub message: String,
}

impl RotateError {
    pub fn aws(operation: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        Self::aws_message(operation, &aws_error_message(err))
    }

    pub fn aws_message(operation: &str, message: &str) -> Self {
        Self {
            kind: ErrorKind::Aws,
            role: None,
            message: format!("{operation} failed: {message}"),
        }
    }

    pub fn about(mut self, role: Role) -> Self {
        self.role = Some(role);
        self.message = format!("{} credentials ({}): {}", role.as_str(), role.source(), self.message);
        self
    }

    pub fn invalid_secret(role: Role, reason: impl std::fmt::Display) -> Self {
        Self {
            kind: ErrorKind::InvalidSecret,
            role: Some(role),
            message: format!("{} credentials ({}): {reason}", role.as_str(), role.source()),
        }
    }

    pub fn database(role: Role, user: &str, kind: FailureKind, detail: String) -> Self {
        Self {
            kind: ErrorKind::Database(kind),
            role: Some(role),
            message: format!(
                "{} credentials ({}, user {user}): {} failure: {detail}",
                role.as_str(),
                role.source(),
                kind.as_str()
            ),
        }
    }

    pub fn invalid_event(reason: impl std::fmt::Display) -> Self {
        Self {
            kind: ErrorKind::InvalidEvent,
            role: None,
            message: reason.to_string(),
        }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Protocol,
            role: None,
            message: message.into(),
        }
    }

    pub fn timeout(message: String) -> Self {
        Self {
            kind: ErrorKind::Timeout,
            role: None,
            message,
        }
    }

    pub fn plan(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Plan,
            role: None,
            message: message.into(),
        }
    }

    pub fn partial_failure(message: String) -> Self {
        Self {
            kind: ErrorKind::PartialFailure,
            role: None,
            message,
        }
    }

    fn error_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidEvent => "Lifeboat.InvalidEvent",
            ErrorKind::Aws => "Lifeboat.AwsError",
            ErrorKind::InvalidSecret => "Lifeboat.Rotation.InvalidSecret",
            ErrorKind::Database(FailureKind::Network) => "Lifeboat.Rotation.Network",
            ErrorKind::Database(FailureKind::Authentication) => "Lifeboat.Rotation.Authentication",
            ErrorKind::Database(FailureKind::Permission) => "Lifeboat.Rotation.Permission",
            ErrorKind::Database(FailureKind::Tls) => "Lifeboat.Rotation.Tls",
            ErrorKind::Database(_) => "Lifeboat.Rotation.Database",
            ErrorKind::Protocol => "Lifeboat.Rotation.Protocol",
            ErrorKind::Timeout => "Lifeboat.Rotation.Timeout",
            ErrorKind::Plan => "Lifeboat.PlanError",
            ErrorKind::PartialFailure => "Lifeboat.PartialFailure",
        }
    }
}

/// The shared library's errors, met by a plan tick (the plan store, RDS's describe calls, DescribeSecret).
impl From<lifeboat::core::error::Error> for RotateError {
    fn from(err: lifeboat::core::error::Error) -> Self {
        use lifeboat::core::error::Error;
        match err {
            Error::Plan(m) => Self::plan(m),
            Error::Config(m) => Self::plan(m.to_string()),
            Error::InvalidEvent(m) => Self::invalid_event(m),
            Error::PartialFailure(m) => Self::partial_failure(m),
            e @ (Error::Aws { .. } | Error::Metrics(_)) => Self {
                kind: ErrorKind::Aws,
                role: None,
                message: e.to_string(),
            },
        }
    }
}

/// A state setSecret refuses to act on breaks the protocol's assumptions: a protocol error, with the table's words.
impl From<Refusal> for RotateError {
    fn from(refusal: Refusal) -> Self {
        Self::protocol(refusal.to_string())
    }
}

impl From<RotateError> for Diagnostic {
    fn from(err: RotateError) -> Self {
        Diagnostic {
            error_type: err.error_type().to_owned(),
            error_message: err.message,
        }
    }
}
