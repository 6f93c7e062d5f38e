//! The `notify` function: turns Lifeboat's alarm state changes and failed restore-test executions into a message
//! an on-call engineer understands at 3 a.m., and delivers it to an SNS topic and/or a chat webhook. A message
//! that cannot be delivered fails the invocation (EventBridge retries it); an identical alarm is not resent within
//! the dedupe window; OK after ALARM is reported as a recovery.

#![warn(clippy::too_many_lines)]

pub mod deliver;
pub mod deps;
pub mod event;
pub mod failing;
pub mod handler;
pub mod render;
pub mod settings;

pub use deps::Deps;
pub use handler::handle;
