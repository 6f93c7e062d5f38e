//! The `snapshot` function: managed RDS and Aurora snapshots with deterministic identifiers, GFS retention,
//! and copies to a DR region or other accounts.
//!
//! Deletes only snapshots tagged `lifeboat:managed=true`; never the newest available one; nothing for a database
//! whose snapshot failed in the same run; never an automated snapshot.

#![warn(clippy::too_many_lines)]

pub mod caches;
pub mod deps;
pub mod event;
pub mod handler;
pub mod job;
pub mod plan;
pub mod restore_tests;

#[cfg(test)]
mod failed_snapshot_tests;

pub use deps::Deps;
pub use handler::{handle, handle_at, Summary};
