//! The export bucket's layout: every key Lifeboat writes or reads there, and the one way of finding "the newest"
//! object of a kind (the newest complete export of a database and profile, the newest restore-test report).
//!
//! ```text
//! exports/<db>/<profile>/<yyyy>/<mm>/<dd>/<db>-<profile>-<yyyymmddThhmmssZ>.dump.zst[.age]
//! exports/<db>/<profile>/<yyyy>/<mm>/<dd>/<db>-<profile>-<yyyymmddThhmmssZ>.manifest.json   (written last)
//! reports/restore-tests/<db>/<yyyymmddThhmmssZ>.json (+ .md)
//! reports/restore-tests/<db>/export-<profile>-<yyyymmddThhmmssZ>.json (+ .md)      a test from the newest export
//! reports/restore-export/<db>/[<n>-]<yyyymmddThhmmssZ>.json
//! notifications/<sha256 of the message key, 16 bytes in hex>.json
//! reports/evidence/<yyyy>-<mm>/fleet-<period>.html (+ .json)      the month of the period's last day
//! exports/_caches/<cache>/rdb/<yyyy>/<mm>/<dd>/<cache>-rdb-<yyyymmddThhmmssZ>-<nnnn>.rdb     one per shard
//! exports/_caches/<cache>/rdb/<yyyy>/<mm>/<dd>/<cache>-rdb-<yyyymmddThhmmssZ>.manifest.json  (written last)
//! reports/cache-restore-tests/<cache>/<yyyymmddThhmmssZ>.json (+ .md)
//! refresh/<refresh>/<yyyymmddThhmmssZ>.json                      a staging refresh's report
//! refresh/<refresh>/runs/<yyyymmddThhmmssZ>.json                 a scheduled refresh's claim of its due time
//! ```
//!
//! A cache and a database may carry the same name, so their keys never share a prefix: a cache's RDB copies live
//! under [`CACHE_EXPORTS_PREFIX`] (`exports/_caches/`), a name no database can have (RDS identifiers begin with a
//! letter), and a database's exports are read only through [`export_manifest_keys`], which never answers an RDB
//! copy (not even one an older Lifeboat wrote at `exports/<cache>/rdb/`, under the profile name [`RDB_PROFILE`]
//! that no database export profile may take). Restore tests of caches have their own report prefix for the same
//! reason. Kept under `exports/` so that RDB copies have every protection exports have (no overwrite, no delete,
//! retention, Object Lock).
//!
//! Owns: the key shapes and the reading of a time back from a key. Never decides what a key's object means
//! beyond its name: an export is complete when its manifest exists, and only the manifest's key is a
//! candidate for "newest". "Newest" is by the time in the key's name (never by the key's text or the object's
//! last-modified time, which a copy or a re-upload changes); a key whose name carries no time is ignored.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::bucket::manifest::Manifest;
use crate::core::error::{aws_error_message, Error};

/// The prefix under which every export lives.
pub const EXPORTS_PREFIX: &str = "exports/";
/// The suffix of an export's manifest: its presence means the export is complete and verified.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// The suffix of a restore-test report's JSON (the Markdown beside it ends in `.md`).
pub const REPORT_SUFFIX: &str = ".json";

const STAMP: &str = "%Y%m%dT%H%M%SZ";

/// The keys of one export: the archive and the manifest beside it.
pub fn export_keys(db: &str, profile: &str, at: DateTime<Utc>, encrypted: bool) -> (String, String) {
    let base = format!(
        "{EXPORTS_PREFIX}{db}/{profile}/{}/{db}-{profile}-{}",
        at.format("%Y/%m/%d"),
        at.format(STAMP)
    );
    let dump = format!("{base}.dump.zst{}", if encrypted { ".age" } else { "" });
    (dump, format!("{base}{MANIFEST_SUFFIX}"))
}

/// Where a database's exports of one profile live; every profile's with `None`.
pub fn export_prefix(db: &str, profile: Option<&str>) -> String {
    match profile {
        Some(p) => format!("{EXPORTS_PREFIX}{db}/{p}/"),
        None => format!("{EXPORTS_PREFIX}{db}/"),
    }
}

/// Where a database's restore-test reports live.
pub fn restore_report_prefix(db: &str) -> String {
    format!("reports/restore-tests/{db}/")
}

/// A restore-test report's key without its extension (add `.json` / `.md`).
pub fn restore_report_base(db: &str, requested_at: DateTime<Utc>) -> String {
    format!("{}{}", restore_report_prefix(db), requested_at.format(STAMP))
}

/// A restore test from the newest export of `profile`: `reports/restore-tests/<db>/export-<profile>-<stamp>`
/// (add `.json` / `.md`). Under the database's restore-test reports, so monitor and the evidence report count it
/// as the database's restore test ([`time_in_key`] reads the stamp after the last hyphen), and never the key of
/// a snapshot test of the same time.
pub fn export_test_report_base(db: &str, profile: &str, requested_at: DateTime<Utc>) -> String {
    format!(
        "{}export-{profile}-{}",
        restore_report_prefix(db),
        requested_at.format(STAMP)
    )
}

/// The key that remembers when a notification with this dedupe key last went out. Hashed, because the message
/// key holds alarm names and database identifiers that need not be valid in a key.
pub fn notification_key(message_key: &str) -> String {
    let digest: String = Sha256::digest(message_key.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("notifications/{digest}.json")
}

/// The time in an export or report key: `...-<yyyymmddThhmmssZ>.manifest.json` or `.../<yyyymmddThhmmssZ>.json`.
pub fn time_in_key(key: &str) -> Option<DateTime<Utc>> {
    let stem = key.rsplit('/').next()?;
    let stem = stem
        .strip_suffix(MANIFEST_SUFFIX)
        .or_else(|| stem.strip_suffix(REPORT_SUFFIX))?;
    let stamp = stem.rsplit('-').next()?;
    NaiveDateTime::parse_from_str(stamp, STAMP).ok().map(|t| t.and_utc())
}

/// The newest of `keys` that end in `suffix`, by the time in the name; on equal times the greater key wins, so
/// the choice never depends on the order of a listing.
pub fn newest<'a>(keys: impl IntoIterator<Item = &'a str>, suffix: &str) -> Option<(&'a str, DateTime<Utc>)> {
    keys.into_iter()
        .filter(|k| k.ends_with(suffix))
        .filter_map(|k| Some((k, time_in_key(k)?)))
        .max_by(|(ka, ta), (kb, tb)| ta.cmp(tb).then_with(|| ka.cmp(kb)))
}

/// The newest manifest key of each profile among `keys` of database `db`, by profile.
pub fn newest_per_profile<'a>(db: &str, keys: impl IntoIterator<Item = &'a str>) -> BTreeMap<&'a str, &'a str> {
    let mut by_profile: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for key in keys {
        if let Some(profile) = profile_in_key(db, key) {
            by_profile.entry(profile).or_default().push(key);
        }
    }
    by_profile
        .into_iter()
        .filter_map(|(p, ks)| Some((p, newest(ks, MANIFEST_SUFFIX)?.0)))
        .collect()
}

/// Every key under `prefix` ending in `suffix`, across every page of the listing.
pub async fn list_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<String>, Error> {
    Ok(list_with_sizes(s3, bucket, prefix)
        .await?
        .into_keys()
        .filter(|k| k.ends_with(suffix))
        .collect())
}

/// Every key under `prefix` with its size, across every page of the listing.
pub async fn list_with_sizes(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<BTreeMap<String, u64>, Error> {
    Ok(list_objects(s3, bucket, prefix)
        .await?
        .iter()
        .filter_map(|o| {
            let size = o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            o.key().map(|k| (k.to_owned(), size))
        })
        .collect())
}

/// Every object under `prefix`, as ListObjectsV2 describes it, page after page.
pub async fn list_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<aws_sdk_s3::types::Object>, Error> {
    let mut out = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("ListObjectsV2", e))?;
        out.extend(page.contents().iter().cloned());
    }
    Ok(out)
}

/// The newest key under `prefix` ending in `suffix`, with its time.
pub async fn newest_key(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    suffix: &str,
) -> Result<Option<(String, DateTime<Utc>)>, Error> {
    let keys = list_keys(s3, bucket, prefix, suffix).await?;
    Ok(newest(keys.iter().map(String::as_str), suffix).map(|(k, t)| (k.to_owned(), t)))
}

/// Every manifest key of a database's complete exports (of one profile, or of every profile): never an RDB
/// copy of a cache, even one of the same name.
pub async fn export_manifest_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    db: &str,
    profile: Option<&str>,
) -> Result<Vec<String>, Error> {
    let mut keys = list_keys(s3, bucket, &export_prefix(db, profile), MANIFEST_SUFFIX).await?;
    keys.retain(|k| profile_in_key(db, k).is_some());
    Ok(keys)
}

/// The newest complete export (its manifest's key and time) of a database, of one profile or of any.
pub async fn newest_export(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    db: &str,
    profile: Option<&str>,
) -> Result<Option<(String, DateTime<Utc>)>, Error> {
    let keys = export_manifest_keys(s3, bucket, db, profile).await?;
    Ok(newest(keys.iter().map(String::as_str), MANIFEST_SUFFIX).map(|(k, t)| (k.to_owned(), t)))
}

/// The newest complete export of a database and profile, with its manifest read.
pub async fn latest_manifest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    db: &str,
    profile: &str,
) -> Result<Option<(String, Manifest)>, Error> {
    let Some((key, _)) = newest_export(s3, bucket, db, Some(profile)).await? else {
        return Ok(None);
    };
    let manifest = get_json(s3, bucket, &key).await?;
    Ok(Some((key, manifest)))
}

/// The newest complete export of each profile of a database, with its manifest read, in profile order.
pub async fn latest_manifests(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    db: &str,
) -> Result<Vec<(String, Manifest)>, Error> {
    let keys = export_manifest_keys(s3, bucket, db, None).await?;
    let mut out = Vec::new();
    for key in newest_per_profile(db, keys.iter().map(String::as_str)).into_values() {
        out.push((key.to_owned(), get_json(s3, bucket, key).await?));
    }
    Ok(out)
}

/// Reads a JSON object. A body that is not the expected shape is an error naming the key, never a default.
pub async fn get_json<T: DeserializeOwned>(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<T, Error> {
    let body = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| Error::aws("GetObject", e))?
        .body
        .collect()
        .await
        .map_err(|e| Error::aws_other("GetObject", aws_error_message(&e)))?
        .into_bytes();
    serde_json::from_slice(&body).map_err(|e| Error::PartialFailure(format!("{key} is not what Lifeboat wrote: {e}")))
}

/// Where evidence reports live.
pub const EVIDENCE_PREFIX: &str = "reports/evidence/";

/// The keys of the fleet's evidence report for a period (its HTML page and its JSON), filed under the month of
/// the period's last day: `reports/evidence/2026-10/fleet-2026-10.html`.
pub fn evidence_keys(year: i32, month: u32, period_slug: &str) -> (String, String) {
    let base = format!("{EVIDENCE_PREFIX}{year:04}-{month:02}/fleet-{period_slug}");
    (format!("{base}.html"), format!("{base}.json"))
}

/// The export profile of a key under [`export_prefix`]`(db, None)`; `None` for anything that is not a database
/// export, such as an RDB copy an older Lifeboat kept at `exports/<cache>/rdb/`.
pub fn profile_in_key<'a>(db: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(EXPORTS_PREFIX)?.strip_prefix(db)?.strip_prefix('/')?;
    rest.split_once('/')
        .map(|(profile, _)| profile)
        .filter(|p| !p.is_empty() && *p != RDB_PROFILE)
}

/// The evidence report written last (by the object's last-modified time: a link in a message points at the
/// newest page, whatever period it covers; nothing is decided by it).
pub async fn newest_evidence_report(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<String>, Error> {
    let mut newest: Option<((i64, u32), String)> = None;
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(EVIDENCE_PREFIX)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("ListObjectsV2", e))?;
        for o in page.contents() {
            let (Some(key), Some(at)) = (o.key(), o.last_modified()) else {
                continue;
            };
            let at = (at.secs(), at.subsec_nanos());
            if key.ends_with(".html") && newest.as_ref().is_none_or(|(t, k)| (at, key) > (*t, k.as_str())) {
                newest = Some((at, key.to_owned()));
            }
        }
    }
    Ok(newest.map(|(_, k)| k))
}

/// Where the reports of restores from exports (console and `lifeboat restore --report`) of a database live.
pub fn restore_export_report_prefix(db: &str) -> String {
    format!("reports/restore-export/{db}/")
}

/// A restore-from-export report's key: `reports/restore-export/<db>/<yyyymmddThhmmssZ>.json`, or, when that key
/// is taken by another restore in the same second (reports are never overwritten), `<n>-<stamp>.json` for the
/// `n`th retry, whose time still reads back with [`time_in_key`].
pub fn restore_export_report_key(db: &str, finished_at: DateTime<Utc>, retry: u32) -> String {
    let stamp = finished_at.format(STAMP);
    match retry {
        0 => format!("{}{stamp}{REPORT_SUFFIX}", restore_export_report_prefix(db)),
        n => format!("{}{n}-{stamp}{REPORT_SUFFIX}", restore_export_report_prefix(db)),
    }
}

/// Where a staging refresh's records live (its name is unique in the plan document).
pub fn refresh_prefix(rule: &str) -> String {
    format!("refresh/{rule}/")
}

/// A refresh report's key without its extension (add `.json` / `.md`): `refresh/<rule>/<yyyymmddThhmmssZ>` of the
/// refresh's time, or `<n>-<stamp>` for the `n`th retry when another report took that key (reports are never
/// overwritten); [`time_in_key`] reads the time back from either.
pub fn refresh_report_base(rule: &str, at: DateTime<Utc>, retry: u32) -> String {
    let stamp = at.format(STAMP);
    match retry {
        0 => format!("{}{stamp}", refresh_prefix(rule)),
        n => format!("{}{n}-{stamp}", refresh_prefix(rule)),
    }
}

/// The claim a scheduled refresh writes (once: `If-None-Match`) before it runs for a due time, so that a
/// redelivered or retried tick runs it no second time.
pub fn refresh_claim_key(refresh: &str, due: DateTime<Utc>) -> String {
    format!("{}runs/{}{REPORT_SUFFIX}", refresh_prefix(refresh), due.format(STAMP))
}

/// Where every cache's RDB copies live, apart from every database's exports: no RDS identifier begins with `_`.
pub const CACHE_EXPORTS_PREFIX: &str = "exports/_caches/";

/// The profile segment under which a cache's RDB copies live: `exports/_caches/<cache>/rdb/...`. Reserved: no
/// database export profile may be named so (older Lifeboats kept copies at `exports/<cache>/rdb/`).
pub const RDB_PROFILE: &str = "rdb";

/// The suffix of an RDB file, as ElastiCache names the files of an exported snapshot (one per shard).
pub const RDB_SUFFIX: &str = ".rdb";

/// The keys of one RDB copy of a cache, taken from the snapshot made at `at`: the key of shard `shard`'s file
/// (1-based, as ElastiCache numbers them: `-0001.rdb`) is `object(shard)`; the manifest is written last.
pub fn rdb_keys(cache: &str, at: DateTime<Utc>) -> RdbKeys {
    let base = format!(
        "{CACHE_EXPORTS_PREFIX}{cache}/{RDB_PROFILE}/{}/{cache}-{RDB_PROFILE}-{}",
        at.format("%Y/%m/%d"),
        at.format(STAMP)
    );
    RdbKeys { base }
}

/// The keys of one RDB copy; see [`rdb_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdbKeys {
    base: String,
}

impl RdbKeys {
    /// The key of shard `shard`'s file (1-based).
    pub fn object(&self, shard: u32) -> String {
        format!("{}-{shard:04}{RDB_SUFFIX}", self.base)
    }

    /// The key of the copy's manifest (its presence means every shard's file was verified).
    pub fn manifest(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", self.base)
    }
}

/// Where a cache's RDB copies live.
pub fn rdb_prefix(cache: &str) -> String {
    format!("{CACHE_EXPORTS_PREFIX}{cache}/{RDB_PROFILE}/")
}

/// Where a cache's restore-test reports live (apart from databases': a cache may share a database's name).
pub fn cache_restore_report_prefix(cache: &str) -> String {
    format!("reports/cache-restore-tests/{cache}/")
}

/// A cache restore-test report's key without its extension (add `.json` / `.md`).
pub fn cache_restore_report_base(cache: &str, requested_at: DateTime<Utc>) -> String {
    format!("{}{}", cache_restore_report_prefix(cache), requested_at.format(STAMP))
}

/// Where ElastiCache's export (`CopySnapshot` with `TargetBucket`) writes a snapshot's files before they are
/// verified and moved under [`rdb_keys`]: the bucket's root, under this prefix (ElastiCache names the objects
/// after the target snapshot name and takes no folder), so the bucket policy can admit ElastiCache to this prefix
/// only and a lifecycle rule can expire what is left there.
pub const RDB_STAGING_PREFIX: &str = "rdb-staging-";

/// The predictable part of the target snapshot name an export of snapshot `snapshot` asks for (a new request adds
/// a random part, `rdb_copy::unpredictable_staging_name`, and records the whole name), and the stem of the copy's
/// request and failure records.
pub fn rdb_staging_name(snapshot: &str) -> String {
    format!("{RDB_STAGING_PREFIX}{snapshot}")
}

/// The record Lifeboat writes just before it asks ElastiCache to export a snapshot under `staging_name`: staged
/// files are accepted only if they match it (see `rdb_copy::staged_by_request`). ElastiCache writes only `.rdb`
/// objects, so it cannot write this `.json` key for anyone.
pub fn rdb_staging_request_key(staging_name: &str) -> String {
    format!("{staging_name}.request.json")
}

/// The record of a staged copy that failed verification, next to its files (which are kept for inspection):
/// its presence means "failed, do not verify again".
pub fn rdb_staging_failure_key(staging_name: &str) -> String {
    format!("{staging_name}.failed.json")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn refresh_keys_follow_the_documented_layout() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 4, 0, 0).unwrap();
        assert_eq!(
            format!("{}{REPORT_SUFFIX}", refresh_report_base("staging", at, 0)),
            "refresh/staging/20261207T040000Z.json"
        );
        assert_eq!(
            refresh_claim_key("staging", at),
            "refresh/staging/runs/20261207T040000Z.json"
        );
        assert_eq!(
            time_in_key(&format!("{}{REPORT_SUFFIX}", refresh_report_base("staging", at, 0))),
            Some(at)
        );
    }

    #[test]
    fn export_keys_follow_the_documented_layout() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        let (dump, manifest) = export_keys("app-prod", "full", at, true);
        assert_eq!(
            dump,
            "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.dump.zst.age"
        );
        assert_eq!(
            manifest,
            "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json"
        );
        assert!(manifest.starts_with(&export_prefix("app-prod", Some("full"))));
        assert_eq!(
            export_keys("db", "p", at, false).0,
            "exports/db/p/2026/11/22/db-p-20261122T020000Z.dump.zst"
        );
        assert_eq!(
            restore_report_base("app-prod", at),
            "reports/restore-tests/app-prod/20261122T020000Z"
        );
    }

    #[test]
    fn times_are_read_from_export_and_report_keys() {
        let t = time_in_key("exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T02:00:00+00:00");
        let r = time_in_key("reports/restore-tests/app-prod/20261122T030000Z.json").unwrap();
        assert_eq!(r.to_rfc3339(), "2026-11-22T03:00:00+00:00");
        assert!(time_in_key("exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.dump.zst").is_none());
        // A test from the newest export is read as the database's restore test of that time; its record is not.
        let base = export_test_report_base("app-prod", "full-2", r);
        assert_eq!(base, "reports/restore-tests/app-prod/export-full-2-20261122T030000Z");
        assert_eq!(time_in_key(&format!("{base}.json")), Some(r));
        assert!(time_in_key(&format!("{base}.checks.json")).is_none());
    }

    #[test]
    fn the_newest_is_chosen_by_the_time_in_the_name_whatever_the_listing_order() {
        // A profile named so that its keys sort after a newer one's by text: the time decides, not the text.
        let keys = [
            "exports/db/full/2026/11/23/db-full-20261123T020000Z.manifest.json",
            "exports/db/full/2026/11/22/db-full-20261122T020000Z.manifest.json",
            "exports/db/full/2026/11/24/db-full-20261124T020000Z.dump.zst",
            "exports/db/full/2026/11/25/not-a-lifeboat-key.manifest.json",
        ];
        let (k, t) = newest(keys, MANIFEST_SUFFIX).unwrap();
        assert_eq!(k, keys[0]);
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap());
        let mut reversed = keys;
        reversed.reverse();
        assert_eq!(newest(reversed, MANIFEST_SUFFIX).unwrap().0, keys[0]);
        assert!(newest(["exports/db/full/x.dump.zst"], MANIFEST_SUFFIX).is_none());
    }

    #[test]
    fn the_newest_export_of_each_profile_is_found_by_the_profile_in_its_key() {
        let at = |h| Utc.with_ymd_and_hms(2026, 11, 22, h, 0, 0).unwrap();
        let keys = [
            export_keys("app", "full", at(2), true).1,
            export_keys("app", "full", at(4), true).1,
            export_keys("app", "critical", at(3), true).1,
            export_keys("app", "critical", at(5), true).0,
            "exports/app/stray.manifest.json".to_owned(),
        ];
        let newest = newest_per_profile("app", keys.iter().map(String::as_str));
        assert_eq!(
            newest.into_iter().collect::<Vec<_>>(),
            vec![("critical", keys[2].as_str()), ("full", keys[1].as_str())]
        );
        assert_eq!(profile_in_key("app", "exports/app/stray.manifest.json"), None);
        assert_eq!(profile_in_key("app", "reports/restore-tests/app/x.json"), None);
    }

    #[test]
    fn evidence_reports_are_filed_by_month_and_profiles_read_back_from_export_keys() {
        assert_eq!(
            evidence_keys(2026, 9, "2026-Q3"),
            (
                "reports/evidence/2026-09/fleet-2026-Q3.html".to_owned(),
                "reports/evidence/2026-09/fleet-2026-Q3.json".to_owned()
            )
        );
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        let (_, manifest) = export_keys("app-prod", "critical", at, true);
        assert_eq!(profile_in_key("app-prod", &manifest), Some("critical"));
        assert_eq!(
            profile_in_key("app", &manifest),
            None,
            "a database whose name is a prefix of another's"
        );
        assert_eq!(profile_in_key("app-prod", "exports/app-prod/"), None);
    }

    #[test]
    fn restore_export_reports_never_share_a_key_and_keep_their_time() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 3, 4, 5).unwrap();
        let first = restore_export_report_key("app-prod", at, 0);
        assert_eq!(first, "reports/restore-export/app-prod/20261123T030405Z.json");
        let again = restore_export_report_key("app-prod", at, 2);
        assert_eq!(again, "reports/restore-export/app-prod/2-20261123T030405Z.json");
        assert_eq!(time_in_key(&first), Some(at));
        assert_eq!(time_in_key(&again), Some(at));
        assert!(first.starts_with(&restore_export_report_prefix("app-prod")));
    }

    #[test]
    fn refresh_reports_are_filed_by_rule_never_share_a_key_and_keep_their_time() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 4, 5, 6).unwrap();
        let first = refresh_report_base("staging", at, 0);
        assert_eq!(first, "refresh/staging/20261207T040506Z");
        let again = refresh_report_base("staging", at, 1);
        assert_eq!(again, "refresh/staging/1-20261207T040506Z");
        assert_eq!(time_in_key(&format!("{first}{REPORT_SUFFIX}")), Some(at));
        assert_eq!(time_in_key(&format!("{again}{REPORT_SUFFIX}")), Some(at));
        assert!(first.starts_with(&refresh_prefix("staging")));
    }

    #[test]
    fn notification_keys_are_fixed_length_hashes() {
        let k = notification_key("alarm:lifeboat/app-prod/snapshot-age");
        assert!(k.starts_with("notifications/") && k.ends_with(".json"));
        assert_eq!(k.len(), "notifications/".len() + 32 + ".json".len());
        assert_ne!(k, notification_key("alarm:lifeboat/app-prod/export-age-full"));
    }
    #[test]
    fn rdb_keys_sit_apart_from_every_database_export_and_read_back_their_time() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let keys = rdb_keys("sessions", at);
        assert_eq!(
            keys.object(2),
            "exports/_caches/sessions/rdb/2026/11/29/sessions-rdb-20261129T030000Z-0002.rdb"
        );
        assert_eq!(
            keys.manifest(),
            "exports/_caches/sessions/rdb/2026/11/29/sessions-rdb-20261129T030000Z.manifest.json"
        );
        assert_eq!(time_in_key(&keys.manifest()), Some(at));
        assert!(keys.manifest().starts_with(&rdb_prefix("sessions")));
        assert_eq!(
            time_in_key(&format!("{}.json", cache_restore_report_base("sessions", at))),
            Some(at)
        );
        assert_ne!(cache_restore_report_prefix("orders"), restore_report_prefix("orders"));
    }

    #[test]
    fn a_cache_and_a_database_of_the_same_name_share_no_prefix() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let copy = rdb_keys("orders", at).manifest();
        assert!(!copy.starts_with(&export_prefix("orders", None)));
        assert!(!rdb_prefix("orders").starts_with(&export_prefix("orders", None)));
        assert_eq!(profile_in_key("orders", &copy), None);
        // An RDB copy that an older Lifeboat kept under the database-shaped prefix is no database export either.
        let legacy = "exports/orders/rdb/2026/11/29/orders-rdb-20261129T030000Z.manifest.json";
        assert_eq!(profile_in_key("orders", legacy), None);
        assert!(newest_per_profile("orders", [legacy]).is_empty());
    }
}
