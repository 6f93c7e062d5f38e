//! The `monitor` function: hourly, per selected database, the age of the newest snapshot, export (per profile) and
//! restore test, and the compliance facts (retention, PITR lag, encryption, deletion protection), as metrics with
//! one alarm set per database; alarms of databases that are gone are deleted, those of databases and caches that
//! are de-selected are kept until a person confirms (`deselection`); expired restore-test resources are deleted
//! (the janitor, which reports each one it could not delete). On request and monthly, it writes the fleet's
//! evidence report (`evidence`). With `LIFEBOAT_PLAN_DOCUMENT` set ("plan mode", `plan`), every database and cache
//! is held to the thresholds of the plan it follows, and the evidence report expects what the plan versions in
//! force each day scheduled; unset, it runs on the threshold variables as it always did. A newest export or RDB
//! copy whose content watch never ran is watched (`watch`).

#![warn(clippy::too_many_lines)]

pub mod alarms;
pub mod anomalies;
pub mod caches;
pub mod deps;
pub mod deselection;
pub mod event;
pub mod evidence;
pub mod handler;
pub mod plan;
pub mod settings;
pub mod watch;

pub use deps::Deps;
pub use handler::{handle, handle_at, run, run_at};
