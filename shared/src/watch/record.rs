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
