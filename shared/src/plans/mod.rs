//! Backup plans: a team's written policy as one document, and what follows from it.
//!
//! Owns the plan document and its validation ([`document`]), schedules and their due times ([`schedule`],
//! [`due`]), which plan a database or cache follows ([`membership`]), where the document lives and which version
//! is in force ([`store`]), what a `rotation` rule means for a member's secret ([`rotation`]), and where one
//! resource stands under its plan ([`standing`]). Every schedule that runs, every freshness threshold monitor
//! alarms on and every "expected" in the evidence report comes from here; nothing is inferred from deployment
//! parameters.
//!
//! May use: `rds` (GFS retention, identifiers), `postgres` (export profiles), `caches` (a cache's snapshots, for
//! [`standing`]), `bucket`, `core`. Must never: act on a resource, or be imported by `rds`, `postgres`, `caches`,
//! `bucket` or `core` (`monitoring` and `evidence`, above it, read plans).

pub mod change;
pub mod document;
pub mod due;
pub mod export_expiry;
pub mod membership;
pub mod rotation;
pub mod schedule;
pub mod standing;
pub mod store;
