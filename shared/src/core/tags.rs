//! Tag keys Lifeboat writes and reads. Ownership is decided by [`MANAGED`] alone.
//!
//! Only the keys: which values a snapshot carries is `rds::snapshot_tags`, which resources a restore test may
//! delete is `rds::restore`. It must never read or write a tag itself.

/// `true` on every snapshot Lifeboat created; the only thing that makes a snapshot Lifeboat's to delete.
pub const MANAGED: &str = "lifeboat:managed";
/// `schedule` or `manual`: which trigger made the snapshot.
pub const SOURCE: &str = "lifeboat:source";
/// The retention policy in force when the snapshot was made, e.g. `daily=7,weekly=4,monthly=12,yearly=3`.
pub const POLICY: &str = "lifeboat:policy";
/// The logical time of the snapshot (RFC 3339): the schedule time, or the invocation time for manual runs.
pub const CREATED_AT: &str = "lifeboat:created-at";
/// The database (instance or cluster identifier) the snapshot belongs to.
pub const DATABASE: &str = "lifeboat:database";
/// Why a manual snapshot was taken (free text from the invocation).
pub const REASON: &str = "lifeboat:reason";
/// When a manual snapshot may be deleted (RFC 3339; scheduled snapshots follow the GFS policy instead), and
/// when the janitor deletes a restore-test resource whatever happened to its test.
pub const EXPIRES_AT: &str = "lifeboat:expires-at";
/// On a cross-region copy: the ARN of the snapshot it was copied from.
pub const COPY_OF: &str = "lifeboat:copy-of";
/// On a database: the Secrets Manager secret (name or ARN) with its credentials.
pub const SECRET: &str = "lifeboat:secret";
/// `true` on every restore-test instance and cluster. Only resources carrying it are ever deleted by the
/// restore function's cleanup or by `monitor`'s janitor (see `rds::restore::is_restore_test`).
pub const RESTORE_TEST: &str = "lifeboat:restore-test";
/// On a restore-test resource: the database the restore came from.
pub const SOURCE_DB: &str = "lifeboat:source-db";
/// On a database or cache: the plan it follows (see `plans::membership`). On a snapshot: the plan it was taken under.
pub const PLAN: &str = "lifeboat:plan";
/// On a snapshot: the version of the plan document its run followed.
pub const PLAN_VERSION: &str = "lifeboat:plan-version";
/// The Lifeboat version that wrote the tags.
pub const VERSION: &str = "lifeboat:version";
