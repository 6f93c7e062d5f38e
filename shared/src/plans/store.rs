//! Where the plan document lives and which version is in force: a versioned S3 object, named by
//! `LIFEBOAT_PLAN_DOCUMENT` (`s3://bucket/key`).
//!
//! A versioned object because S3 keeps every version with its time: a change takes effect at the next tick with
//! no redeploy, the evidence report can say which version was in force on each day, and a bad upload never stops
//! backups. The version in force is the newest one that passes [`crate::plans::document::parse`]; newer versions
//! that fail are reported (`refused`), so monitor can alarm on them while the last good policy keeps running.
//! A delete marker is not a policy: the newest version under it stays in force.
//!
//! A version is named by the SHA-256 of its bytes ([`PlanVersion::label`], the first 12 hex digits): the same
//! document uploaded twice is the same policy, and a label on a snapshot can be checked against the bytes.
//!
//! Must never: write the document (`lifeboat plan apply` does, after its own validation and dry-run).

use aws_sdk_s3::Client;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::core::error::{ConfigError, Error};
use crate::core::settings::{read, Env};
use crate::plans::document::{parse, Document, DocumentError};

/// `s3://bucket/key` of the plan document.
pub const PLAN_DOCUMENT: &str = "LIFEBOAT_PLAN_DOCUMENT";
/// How many versions, newest first, are tried before giving up: a run never reads an unbounded history.
pub const MAX_VERSIONS_TRIED: usize = 20;
/// The largest document read (a plan document is a few kilobytes; this bounds what a bad upload can cost).
pub const MAX_DOCUMENT_BYTES: i64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub key: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl Location {
    pub fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| "expected s3://bucket/key".to_owned())?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or_else(|| "expected s3://bucket/key (no key after the bucket)".to_owned())?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !bucket_ok {
            return Err(format!("`{bucket}` is not an S3 bucket name"));
        }
        if key.is_empty() || key.ends_with('/') {
            return Err("the key names a folder, not the document".to_owned());
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// `LIFEBOAT_PLAN_DOCUMENT`, `None` when unset.
    pub fn from_env(env: &impl Env) -> Result<Option<Self>, ConfigError> {
        match read(env, PLAN_DOCUMENT) {
            None => Ok(None),
            Some(raw) => Self::parse(&raw)
                .map(Some)
                .map_err(|r| ConfigError::new(PLAN_DOCUMENT, &raw, r)),
        }
    }
}

/// One version of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanVersion {
    /// S3's version id.
    pub version_id: String,
    pub modified: DateTime<Utc>,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

impl PlanVersion {
    pub fn new(version_id: impl Into<String>, modified: DateTime<Utc>, bytes: &[u8]) -> Self {
        Self {
            version_id: version_id.into(),
            modified,
            sha256: hex(&Sha256::digest(bytes)),
        }
    }

    /// The short name runs record (`lifeboat:plan-version`): the first 12 hex digits of the SHA-256.
    pub fn label(&self) -> &str {
        &self.sha256[..12.min(self.sha256.len())]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A newer version that fails validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub version: PlanVersion,
    pub error: String,
}

/// The document in force and what was passed over to find it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub document: Document,
    pub version: PlanVersion,
    pub refused: Vec<Refused>,
}

/// Picks the version in force from versions newest first, each with its parse result: the first that parsed.
/// Pure, so the choice is tested without S3; [`load`] feeds it.
pub fn choose(
    newest_first: impl IntoIterator<Item = (PlanVersion, Result<Document, DocumentError>)>,
    location: &Location,
) -> Result<Loaded, Error> {
    let mut refused = Vec::new();
    for (version, parsed) in newest_first {
        match parsed {
            Ok(document) => {
                return Ok(Loaded {
                    document,
                    version,
                    refused,
                })
            }
            Err(e) => refused.push(Refused {
                version,
                error: e.to_string(),
            }),
        }
    }
    Err(Error::Plan(match refused.first() {
        None => format!("{location} has no version: upload one with `lifeboat plan apply`"),
        Some(r) => format!(
            "no version of {location} passes validation (newest, {}: {})",
            r.version.label(),
            r.error
        ),
    }))
}

/// A version as S3 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub version_id: String,
    pub modified: DateTime<Utc>,
    pub size: i64,
}

/// The document's versions, newest first, delete markers left out.
pub async fn list_versions(s3: &Client, location: &Location) -> Result<Vec<Listed>, Error> {
    let mut out = Vec::new();
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(&location.bucket)
            .prefix(&location.key)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| Error::aws("ListObjectVersions", e))?;
        for v in page.versions() {
            if v.key() != Some(location.key.as_str()) {
                continue;
            }
            let (Some(id), Some(modified)) = (v.version_id(), v.last_modified()) else {
                continue;
            };
            let modified = DateTime::from_timestamp(modified.secs(), modified.subsec_nanos()).unwrap_or_default();
            out.push(Listed {
                version_id: id.to_owned(),
                modified,
                size: v.size().unwrap_or(0),
            });
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        if key_marker.is_none() && version_marker.is_none() {
            break;
        }
    }
    // S3 lists a key's versions newest first, and its times are whole seconds: a stable sort by time keeps S3's
    // own order for two versions written in the same second (an id carries no order).
    out.sort_by_key(|v| std::cmp::Reverse(v.modified));
    Ok(out)
}

/// One version's bytes, refusing one larger than [`MAX_DOCUMENT_BYTES`].
pub async fn read_version(s3: &Client, location: &Location, listed: &Listed) -> Result<Vec<u8>, Error> {
    if listed.size > MAX_DOCUMENT_BYTES {
        return Ok(Vec::new());
    }
    let object = s3
        .get_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .version_id(&listed.version_id)
        .send()
        .await
        .map_err(|e| Error::aws("GetObject", e))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| Error::aws_other("GetObject", format!("reading the plan document: {e}")))?;
    Ok(bytes.into_bytes().to_vec())
}

/// The version in force: reads versions newest first until one passes validation, at most
/// [`MAX_VERSIONS_TRIED`].
pub async fn load(s3: &Client, location: &Location) -> Result<Loaded, Error> {
    load_listed(s3, location, &list_versions(s3, location).await?).await
}

/// [`load`] over versions already listed (newest first), for a caller that needs the listing too.
pub async fn load_listed(s3: &Client, location: &Location, listed: &[Listed]) -> Result<Loaded, Error> {
    // Each version is parsed once, here; `choose` only picks among the results.
    let mut tried = Vec::new();
    for v in listed.iter().take(MAX_VERSIONS_TRIED) {
        let bytes = read_version(s3, location, v).await?;
        let parsed = parse(&bytes);
        let valid = parsed.is_ok();
        tried.push((PlanVersion::new(&v.version_id, v.modified, &bytes), parsed));
        if valid {
            break;
        }
    }
    choose(tried, location)
}

/// Every version with whether it passes validation, newest first: what the evidence report reads.
pub async fn history(s3: &Client, location: &Location) -> Result<Vec<(PlanVersion, Option<Document>)>, Error> {
    let mut out = Vec::new();
    for v in list_versions(s3, location).await? {
        let bytes = read_version(s3, location, &v).await?;
        out.push((PlanVersion::new(&v.version_id, v.modified, &bytes), parse(&bytes).ok()));
    }
    Ok(out)
}

/// The version in force at `t`: the newest valid version written at or before `t`.
pub fn in_force_at(
    history_newest_first: &[(PlanVersion, Option<Document>)],
    t: DateTime<Utc>,
) -> Option<(&PlanVersion, &Document)> {
    history_newest_first
        .iter()
        .filter(|(v, _)| v.modified <= t)
        .find_map(|(v, d)| d.as_ref().map(|d| (v, d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"format": 1, "plans": {"prod": {"pitr": {"min_days": 7}}}}"#;
    const GOOD2: &str = r#"{"format": 1, "plans": {"prod": {"pitr": {"min_days": 14}}}}"#;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn loc() -> Location {
        Location::parse("s3://cfg-bucket/lifeboat/plans.json").unwrap()
    }

    fn v(id: &str, t: &str, body: &str) -> (PlanVersion, Result<Document, DocumentError>) {
        (PlanVersion::new(id, at(t), body.as_bytes()), parse(body.as_bytes()))
    }

    #[test]
    fn the_newest_valid_version_is_in_force_and_newer_invalid_ones_are_reported() {
        let loaded = choose(
            [
                v(
                    "v3",
                    "2026-12-03T00:00:00Z",
                    "{\"format\": 1, \"plans\": {\"prod\": {}}}",
                ),
                v("v2", "2026-12-02T00:00:00Z", "not json"),
                v("v1", "2026-12-01T00:00:00Z", GOOD),
            ],
            &loc(),
        )
        .unwrap();
        assert_eq!(loaded.version.version_id, "v1");
        assert_eq!(loaded.document.plans["prod"].pitr.unwrap().min_days, 7);
        let refused: Vec<&str> = loaded.refused.iter().map(|r| r.version.version_id.as_str()).collect();
        assert_eq!(refused, ["v3", "v2"]);
        assert!(
            loaded.refused[0].error.starts_with("plans.prod: has no rule"),
            "{}",
            loaded.refused[0].error
        );
    }

    #[test]
    fn no_usable_version_is_an_error_naming_the_location_and_the_newest_error() {
        let e = choose(Vec::new(), &loc()).unwrap_err().to_string();
        assert_eq!(
            e,
            "plan document: s3://cfg-bucket/lifeboat/plans.json has no version: upload one with `lifeboat plan apply`"
        );
        let e = choose([v("v1", "2026-12-01T00:00:00Z", "{}")], &loc())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no version of s3://cfg-bucket/lifeboat/plans.json passes validation"),
            "{e}"
        );
        assert!(e.contains("missing field `format`"), "{e}");
    }

    #[test]
    fn versions_are_named_by_their_bytes() {
        let a = PlanVersion::new("x", at("2026-12-01T00:00:00Z"), GOOD.as_bytes());
        let b = PlanVersion::new("y", at("2026-12-02T00:00:00Z"), GOOD.as_bytes());
        assert_eq!(a.label(), b.label());
        assert_eq!(a.label().len(), 12);
        assert_ne!(a.label(), PlanVersion::new("z", a.modified, GOOD2.as_bytes()).label());
    }

    #[test]
    fn the_version_in_force_on_a_day_is_the_newest_valid_one_written_before_it() {
        let history: Vec<(PlanVersion, Option<Document>)> = [
            ("v3", "2026-12-20T12:00:00Z", GOOD2),
            ("v2", "2026-12-10T12:00:00Z", "bad"),
            ("v1", "2026-12-01T00:00:00Z", GOOD),
        ]
        .into_iter()
        .map(|(id, t, body)| {
            (
                PlanVersion::new(id, at(t), body.as_bytes()),
                parse(body.as_bytes()).ok(),
            )
        })
        .collect();
        let on = |t: &str| in_force_at(&history, at(t)).map(|(v, _)| v.version_id.as_str());
        assert_eq!(on("2026-11-30T23:59:59Z"), None);
        assert_eq!(on("2026-12-05T00:00:00Z"), Some("v1"));
        assert_eq!(on("2026-12-15T00:00:00Z"), Some("v1"));
        assert_eq!(on("2026-12-20T12:00:00Z"), Some("v3"));
    }

    #[test]
    fn locations_are_checked() {
        assert_eq!(loc().to_string(), "s3://cfg-bucket/lifeboat/plans.json");
        for (uri, expected) in [
            ("cfg/plans.json", "expected s3://"),
            ("s3://cfg", "no key"),
            ("s3://Cfg_Bucket/p.json", "not an S3 bucket name"),
            ("s3://cfg-bucket/plans/", "names a folder"),
        ] {
            let e = Location::parse(uri).unwrap_err();
            assert!(e.contains(expected), "{uri}: {e}");
        }
    }
}
