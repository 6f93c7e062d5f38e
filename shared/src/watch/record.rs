//! The watch's records in the export bucket.
//!
//! ```text
//! <manifest key without .manifest.json>.watch.json          what one backup's comparison found (written once)
//! watch/<db>/<profile>/<yyyymmddThhmmssZ>.json              an anomaly of a database's export series, and its hold
//! watch/_caches/<cache>/rdb/<yyyymmddThhmmssZ>.json         the same for a cache's RDB copies
//! ```
//!
//! The stamp of an anomaly's key is the logical time of the backup where it was first seen. An anomaly is open
//! until it carries an acknowledgement; while open, the restore points it names in `held` are kept by retention
//! (snapshots and exports alike), whatever their age. An acknowledged anomaly releases its hold and becomes the
//! new baseline: later comparisons take no history from before the backup where it was seen.
//!
//! Owns: the shapes and keys. Never decides what is an anomaly (the comparisons do) nor deletes anything.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The version of both records' format.
pub const FORMAT_VERSION: u32 = 1;
/// The prefix of every anomaly record.
pub const WATCH_PREFIX: &str = "watch/";
/// The suffix of the record beside a manifest.
pub const WATCH_SUFFIX: &str = ".watch.json";

/// One thing the comparison found out of the ordinary, as a person reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of change: `rows-dropped`, `table-vanished`, `table-appeared`, `schema-vanished`,
    /// `schema-appeared`, `large-objects-dropped`, `size-jump`, `size-drop`, `server-major-changed`,
    /// `pg-dump-major-changed`, `extension-vanished`, `extension-appeared`, `keys-dropped`.
    pub kind: String,
    /// What it is about: a table's label (`public.users`), a schema, an extension, `archive`, or `db0` for a
    /// cache's database number.
    pub object: String,
    /// The figure in the backup compared with (rows, bytes, keys), when the finding has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<f64>,
    /// The figure in the new backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<f64>,
    /// One line for a message: `public.users: 12,030 rows in the backup of 2026-12-05, 8,301 in today's, -31%`.
    pub line: String,
}

/// What one backup's comparison found, written beside its manifest (`<base>.watch.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    pub format_version: u32,
    /// The manifest this record is about.
    pub manifest_key: String,
    pub watched_at: DateTime<Utc>,
    /// The previous complete backup of the same series it was compared with; none for the first.
    pub compared_with: Option<String>,
    /// The manifests whose median the figures were also compared with.
    pub history: Vec<String>,
    pub findings: Vec<Finding>,
    /// Schema drift against `compared_with` (exports only), and its one-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_summary: Option<String>,
}

/// An anomaly of one series and the restore points it holds from retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    pub format_version: u32,
    /// `database` or `cache`.
    pub resource_kind: String,
    /// The database or cache identifier.
    pub resource: String,
    /// The export profile, or `rdb` for a cache's RDB copies.
    pub series: String,
    /// The manifest of the backup where the change was first seen, and its logical time.
    pub manifest_key: String,
    pub seen_at: DateTime<Utc>,
    /// Later backups of the series that showed findings while this anomaly was open.
    #[serde(default)]
    pub also_seen_in: Vec<String>,
    pub findings: Vec<Finding>,
    pub held: Held,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Acknowledgement>,
}

/// The last restore points from before an anomaly: kept by retention while it is open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Export (or RDB copy) manifest keys: the manifest and every object it names are kept.
    #[serde(default)]
    pub manifests: Vec<String>,
    /// RDS snapshot identifiers (databases) or ElastiCache snapshot names (caches).
    #[serde(default)]
    pub snapshots: Vec<String>,
}

/// Who accepted the change, why, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// The caller's AWS identity (an ARN) when known; otherwise the name the invoker stated.
    pub by: String,
    /// True when `by` is only what an invocation's payload said (CloudTrail's Invoke record has the caller).
    #[serde(default)]
    pub by_stated: bool,
    pub why: String,
    pub at: DateTime<Utc>,
}

impl Anomaly {
    pub fn is_open(&self) -> bool {
        self.acknowledged.is_none()
    }
}

/// `resource_kind` of a database's anomaly.
pub const DATABASE: &str = "database";
/// `resource_kind` of a cache's anomaly.
pub const CACHE: &str = "cache";
/// The folder of caches' anomalies under [`WATCH_PREFIX`]: no database may be named so (RDS identifiers begin with
/// a letter), as under `exports/`.
const CACHES_FOLDER: &str = "_caches/";

/// Where a resource's anomalies live: every series' (`series` `None`) or one series' (a profile, or `rdb`).
pub fn anomaly_prefix(resource_kind: &str, resource: &str, series: Option<&str>) -> String {
    let folder = if resource_kind == CACHE { CACHES_FOLDER } else { "" };
    match series {
        Some(s) => format!("{WATCH_PREFIX}{folder}{resource}/{s}/"),
        None => format!("{WATCH_PREFIX}{folder}{resource}/"),
    }
}

/// The key of an anomaly first seen in the backup of logical time `seen_at`.
pub fn anomaly_key(resource_kind: &str, resource: &str, series: &str, seen_at: DateTime<Utc>) -> String {
    format!(
        "{}{}.json",
        anomaly_prefix(resource_kind, resource, Some(series)),
        seen_at.format("%Y%m%dT%H%M%SZ")
    )
}

/// The record beside a manifest (`<base>.manifest.json` -> `<base>.watch.json`); `None` for a key that is no
/// manifest's.
pub fn watch_key_of(manifest_key: &str) -> Option<String> {
    manifest_key
        .strip_suffix(crate::bucket::layout::MANIFEST_SUFFIX)
        .map(|base| format!("{base}{WATCH_SUFFIX}"))
}

/// The manifest a record beside it is about (`<base>.watch.json` -> `<base>.manifest.json`).
pub fn manifest_key_of(watch_key: &str) -> Option<String> {
    watch_key
        .strip_suffix(WATCH_SUFFIX)
        .map(|base| format!("{base}{}", crate::bucket::layout::MANIFEST_SUFFIX))
}

#[cfg(test)]
mod key_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn anomaly_keys_follow_the_layout_and_a_cache_never_shares_a_databases_prefix() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 2, 0, 0).unwrap();
        assert_eq!(
            anomaly_key(DATABASE, "product-db", "critical", at),
            "watch/product-db/critical/20261206T020000Z.json"
        );
        assert_eq!(
            anomaly_key(CACHE, "sessions", "rdb", at),
            "watch/_caches/sessions/rdb/20261206T020000Z.json"
        );
        assert!(!anomaly_key(CACHE, "app", "rdb", at).starts_with(&anomaly_prefix(DATABASE, "app", None)));
        assert_eq!(
            crate::bucket::layout::time_in_key(&anomaly_key(DATABASE, "db", "full", at)),
            Some(at)
        );
        let m = "exports/db/full/2026/12/06/db-full-20261206T020000Z.manifest.json";
        let w = watch_key_of(m).unwrap();
        assert_eq!(w, "exports/db/full/2026/12/06/db-full-20261206T020000Z.watch.json");
        assert_eq!(manifest_key_of(&w).unwrap(), m);
        assert_eq!(watch_key_of("exports/db/full/x.dump.zst"), None);
    }
}
