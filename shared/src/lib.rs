//! Lifeboat's shared library: everything the functions have in common, and no Lambda runtime code.
//!
//! The split follows one rule: `shared` decides, the functions translate. Business rules (naming, retention,
//! selection) are pure functions over plain data with unit and property tests; the AWS adapters are thin and
//! are tested with `aws-smithy-mocks` here and against moto in `tests/`.

#[cfg(feature = "archive")]
pub mod archive;
pub mod aws;
pub mod bucket;
pub mod cache_check;
pub mod cache_monitor;
pub mod cache_records;
pub mod cache_restore;
pub mod copies;
pub mod db;
pub mod dump_format;
pub mod elasticache;
pub mod error;
pub mod evidence;
pub mod export;
pub mod manifest;
pub mod metrics;
pub mod monitor;
pub mod naming;
pub mod notify;
pub mod pg_stderr;
pub mod quota;
pub mod rdb;
pub mod rdb_copy;
pub mod rdb_restore;
pub mod rds;
pub mod restore;
pub mod retention;
pub mod rotation;
pub mod secret_json;
pub mod selection;
pub mod settings;
pub mod snapshot_ladder;
pub mod snapshot_tags;
pub mod telemetry;
pub mod test_secrets;

/// The monotonic instant of an invocation's deadline, from the milliseconds since the epoch that the Lambda runtime
/// gives (`Context::deadline`). A deadline already past when the invocation starts means the runtime set none
/// (local emulators), and is treated as no deadline.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Option<std::time::Instant> {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    (deadline_ms > now_ms).then(|| std::time::Instant::now() + std::time::Duration::from_millis(deadline_ms - now_ms))
}

/// The version recorded in tags, manifests and reports, so an artefact says which Lifeboat made it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Tag keys Lifeboat writes and reads. Ownership is decided by [`tags::MANAGED`] alone.
pub mod tags {
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
    /// restore function's cleanup or by `monitor`'s janitor (see [`crate::restore::is_restore_test`]).
    pub const RESTORE_TEST: &str = "lifeboat:restore-test";
    /// On a restore-test resource: the database the restore came from.
    pub const SOURCE_DB: &str = "lifeboat:source-db";
    /// The Lifeboat version that wrote the tags.
    pub const VERSION: &str = "lifeboat:version";
}

#[cfg(test)]
mod tests {
    #[test]
    fn deadlines_in_the_past_mean_none_and_future_ones_count_down() {
        assert!(super::deadline_from_epoch_ms(0).is_none());
        let in_a_minute = chrono::Utc::now().timestamp_millis() as u64 + 60_000;
        let left = super::deadline_from_epoch_ms(in_a_minute)
            .unwrap()
            .saturating_duration_since(std::time::Instant::now());
        assert!(left > std::time::Duration::from_secs(55) && left <= std::time::Duration::from_secs(60));
    }
}
