//! RDS: the databases as the control plane sees them, their snapshots, and restore tests from those snapshots.
//!
//! Owns which databases a run works on ([`selection`], and the settings that parse a selector: [`settings`]);
//! snapshot names ([`naming`]), tags ([`snapshot_tags`]), the precondition ladder ([`snapshot_ladder`]), GFS
//! retention ([`retention`], which caches reuse through its `Retained` trait), DR copies ([`copies`]) and the
//! manual-snapshot quota ([`quota`]); the adapters for snapshots ([`snapshots`]) and for instances and clusters
//! ([`instances`], with their plain data in [`described`]); and the rules of restore tests ([`restore`]) with
//! their short-lived secrets ([`test_secrets`]) and the recovery point each test proves ([`recovery`]).
//!
//! Selection and naming are here, not in the core or with PostgreSQL: selection reads RDS's instance and cluster
//! lists and their tags, and naming makes RDS identifiers (caches borrow its shortening rule).
//!
//! May use: `bucket`, `core`. Must never: connect to a database (that is `postgres`), know caches, or delete
//! anything that does not carry Lifeboat's tags: snapshots only with `lifeboat:managed=true`, restore-test
//! resources only with `lifeboat:restore-test=true`.
//!
//! Within the domain the plain data sits under the adapters and the rules: `snapshot_tags` <- `snapshots` <-
//! `retention`, and `described` <- `restore` <- `instances`, so no two files import each other.

pub mod copies;
pub mod described;
pub mod instances;
pub mod naming;
pub mod quota;
pub mod recover;
pub mod recovery;
pub mod restore;
pub mod retention;
pub mod selection;
pub mod settings;
pub mod snapshot_ladder;
pub mod snapshot_tags;
pub mod snapshots;
pub mod test_secrets;
