//! The export bucket: where everything Lifeboat keeps outside RDS and ElastiCache lies, and what makes an export
//! complete.
//!
//! Owns the layout (every key Lifeboat writes or reads, and the one way of finding "the newest" object of a kind:
//! [`layout`]) and the export manifest, written last ([`manifest`]). The records of other domains that live in
//! the bucket keep their shapes with their domain (a restore test's report is `rds::restore`'s, a cache's RDB
//! manifest is `caches::records`'); only their keys are here.
//!
//! May use: `core`. Must never: import another domain, decide whether an export or a test is good (the writer
//! does and records it), or write an object (its readers list and get; the functions put).

pub mod layout;
pub mod manifest;
