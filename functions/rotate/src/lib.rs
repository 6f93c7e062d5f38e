//! The `rotate` function: the Secrets Manager rotation protocol (createSecret, setSecret, testSecret,
//! finishSecret) for PostgreSQL on RDS and Aurora, single-user and alternating-users; and, on a daily plan tick,
//! each plan member's secret configured to rotate on its plan's cadence (`plan`).
//!
//! Every step is idempotent under retries and redelivery, the AWSCURRENT credentials keep logging in whatever
//! step fails, and no password or rotation token ever reaches a log line or an error message.

#![warn(clippy::too_many_lines)]

pub mod credentials;
pub mod deps;
pub mod error;
pub mod event;
pub mod handler;
pub mod plan;
pub mod postgres;
pub mod secrets;
mod set_secret;
pub mod settings;

pub use deps::Deps;
pub use error::{ErrorKind, RotateError};
pub use handler::{handle, run, Outcome};
