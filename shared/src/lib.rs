//! Lifeboat's shared library: everything the functions have in common, and no Lambda runtime code.
//!
//! The split follows one rule: `shared` decides, the functions translate. Business rules (naming, retention,
//! selection) are pure functions over plain data with unit and property tests; the AWS adapters are thin and
//! are tested with `aws-smithy-mocks` here and against moto in `tests/`.
//!
//! The library is grouped by domain, one folder each; every domain's `mod.rs` says what it owns, what it may use
//! and what it must never do. Dependencies point one way, from the top of this list to the bottom:
//!
//! ```text
//! evidence     the auditor's report                          uses monitoring, watch, rds, bucket, core
//! monitoring   alarms, findings, the janitor's rules, notify  uses plans, caches, rds, bucket, core
//! recover      a database or tables back as at a time         uses rds, postgres, core (feature `archive`)
//! refresh      staging from the newest export, masked         uses mask, postgres, bucket, core (feature `archive`)
//! plans        the written policy as a document, due runs     uses watch, mask, rds, postgres, bucket, core
//! mask         masking rules and the masking rewriter         uses postgres, bucket, core
//! watch        what is inside backups, compared; holds        uses caches, rds, bucket, core
//! caches       ElastiCache, RDB files, cache restore tests   uses rds, postgres, bucket, core
//! rds          snapshots, instances, retention, restore tests uses bucket, core
//! postgres     connections, dumps, exports, rotation          uses bucket, core
//! bucket       the export bucket's layout and manifests      uses core
//! core         settings, errors, metrics, AWS config, tags   uses nothing of ours
//! ```

pub mod bucket;
pub mod caches;
pub mod core;
pub mod evidence;
pub mod mask;
pub mod monitoring;
pub mod plans;
pub mod postgres;
pub mod rds;
#[cfg(feature = "archive")]
pub mod recover;
#[cfg(feature = "archive")]
pub mod refresh;
pub mod watch;
