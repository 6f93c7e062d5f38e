//! Integration tests: the functions' handlers against moto's server and a real PostgreSQL.
//! One test binary (see rust-analyzer's style guide): modules per function.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod book;
mod cache_check;
mod cache_monitor;
mod cache_restore;
mod chaos;
mod chaos_run;
mod cli;
mod demo;
mod deployed;
mod elasticache;
mod emf;
mod events;
mod evidence;
mod evidence_browser;
mod export;
mod faults;
mod harness;
mod hold;
mod https;
mod hygiene;
mod infra;
mod layout;
mod logs;
mod mask;
mod monitor;
mod package;
mod permissions;
mod plan_cli;
mod plan_export_test;
mod plan_exports;
mod plan_month;
mod plan_restore;
mod plan_rotation;
mod plan_watch;
mod plans;
mod rdb;
mod rdb_copy;
mod recover;
mod refresh;
mod refresh_entry;
mod restore;
mod restore_export;
mod rotate;
mod snapshot;
mod watch;
