//! The content watch: what is inside each new backup, compared with the backups before it, so that a mass delete,
//! a vanished table or a shrunken cache raises an alarm while a good restore point still exists.
//!
//! Backups copy faithfully whatever the database holds: when a bug deletes most of a table, the next exports carry
//! the damage and retention quietly expires the last good ones. Every export's manifest already records per-table
//! row counts, large objects, sizes and versions, and every RDB copy's manifest its keys per database; the watch
//! compares each new manifest with its history and, on an anomaly, holds the last restore points from before it
//! until a person acknowledges the change.
//!
//! - [`record`]: the two records the watch writes to the bucket, their keys, and the rules that read them
//!   (which restore points are held, where an acknowledged change moves the baseline).
//! - [`thresholds`]: how far a figure may move (a plan's `watch` object, its defaults and overrides).
//! - [`compare`]: the comparisons themselves and the schema drift, pure functions over manifests.
//! - [`run`]: the adapter that reads a series from the bucket, compares and writes `<base>.watch.json` once.
//! - [`hold`]: an anomaly opened from a comparison, the snapshots and manifests it holds, what retention asks
//!   of it, and the acknowledgement that releases it (rules and the S3/RDS/ElastiCache adapter).
//!
//! Owns: the comparisons (pure functions over manifests), the records and the holds they imply. Uses caches (the
//! RDB manifest, the cache snapshots a hold names), rds (the snapshots a hold names, retention's decision),
//! bucket and core. Must never: decide retention itself (the retention code asks [`record`] what is
//! held), nor take a finding, a hold or an acknowledgement from an invocation's payload: findings come from
//! manifests in the bucket, and an acknowledgement names its acknowledger as the caller's AWS identity (or, from
//! a console invocation, as stated, and marked so).

pub mod compare;
pub mod hold;
pub mod record;
pub mod run;
pub mod thresholds;
