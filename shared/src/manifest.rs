//! The manifest: written last, so its presence means the export is complete and verified.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub lifeboat_version: String,
    pub database: String,
    pub profile: String,
    /// The schedule's time (or the invocation's, for manual exports): it names the objects.
    pub logical_time: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub source: Source,
    pub pg_dump_version: String,
    pub tables: Vec<TableCount>,
    /// Large objects in the dump (every export holds them all), counted in the same snapshot. Absent (0) in
    /// manifests written before it was recorded.
    #[serde(default)]
    pub large_objects: i64,
    pub plaintext: Digest,
    pub stored: Stored,
    pub compression: Compression,
    pub encryption: Option<Encryption>,
    pub verification: Verification,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub engine: String,
    pub server_version: String,
    pub dbname: String,
    pub database_size_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    pub schema: String,
    pub name: String,
    /// Exact, counted in the same snapshot pg_dump dumped.
    pub rows: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub bucket: String,
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    pub parts: usize,
    pub sse: String,
    pub kms_key_id: Option<String>,
    pub object_lock_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    pub algorithm: String,
    pub level: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub algorithm: String,
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// How the archive was proven parseable: the whole plaintext stream through `pg_restore -f /dev/null`.
    pub method: String,
    pub pg_restore_version: String,
}
