//! The `restore` binary: restore tests driven step by step by a Step Functions state machine (plan, start,
//! poll, prepare, verify, report, cleanup; from an export: export_start, poll, export_verify, report, cleanup), and real restores into a named instance from the console. It is
//! deployed as two functions with two roles (`LIFEBOAT_RESTORE_ENTRY`): the steps, which only the state machine
//! may invoke, and the console's actions; each refuses the other's requests, and each runs a binary of its own
//! (`restore-test`, `restore`) that holds no code of the other's.
//!
//! A restore test never touches the source database; it deletes only what carries the restore-test tag; its
//! cleanup is reachable from every failure path of the state machine, and what it restores carries an expiry tag
//! for `monitor`'s janitor to act on.

#![warn(clippy::too_many_lines)]

pub mod cache_console;
pub mod cache_group;
pub mod cache_rdb;
pub mod cache_shards;
pub mod caches;
pub mod console;
pub mod deps;
pub mod error;
pub mod event;
pub mod export_tests;
pub mod from_export;
pub mod handler;
pub mod password;
pub mod plan_tests;
pub mod recover;
pub mod recovery;
pub mod refresh;
pub mod report;
pub mod restored;
pub mod runtime;
pub mod settings;
pub mod verify;

pub use deps::Deps;
pub use error::RestoreError;
pub use handler::handle;
