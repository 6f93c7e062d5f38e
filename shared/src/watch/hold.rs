//! What happens on an anomaly: the record is opened (once per series while open), the restore points from
//! before it are named in its hold, retention asks what is held, and a person's acknowledgement releases it.
//!
//! - **Opening** ([`opening`]): a backup's comparison ([`Watch`]) with findings opens an anomaly of its series
//!   at `watch/<db>/<profile>/<stamp>.json` (caches: `watch/_caches/<cache>/rdb/<stamp>.json`), written
//!   create-only. While one is open, a later backup of the series with findings is appended to its
//!   `also_seen_in` instead: one hold per episode, never a second. A backup any anomaly already names is left
//!   alone, so the export function and monitor's hourly pass may both try, in any order.
//! - **What it holds**: the manifest compared with (`Watch::compared_with`, the last good backup of the series),
//!   and the resource's snapshots from the newest one taken at or before that backup's logical time up to the
//!   anomalous backup's time ([`snapshots_to_hold`]). Only Lifeboat's own manual snapshots are named: an
//!   automated snapshot is expired by RDS (or ElastiCache) by its backup retention window, which no hold of
//!   Lifeboat's can change, so naming one would promise a hold that cannot be kept. The snapshots are read from
//!   describe calls (never from a payload or the watch record).
//! - **Retention** ([`Holds`]): a resource's anomalies are read with a bound ([`MAX_RECORDS`]); a failed or
//!   over-long read is [`Holds::Unknown`], and retention then keeps everything of that resource for the run (a
//!   hold that cannot be read must never become a delete).
//! - **Acknowledgement** ([`acknowledge`]): the open anomaly of the named series (or the only open one) gets who,
//!   why and when; retention then expires its restore points normally, and the comparison takes it as the new
//!   baseline (`record`'s rule).
//!
//! Must never: delete anything, decide what is an anomaly (the comparisons do), or take a snapshot, a manifest
//! or an acknowledger's identity from a payload (a console's stated name is recorded as stated).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::bucket::layout::{self, CACHE_EXPORTS_PREFIX, EXPORTS_PREFIX, RDB_PROFILE};
use crate::core::error::Error;
use crate::rds::retention::{Decision, Retained};
use crate::watch::record::{
    anomaly_key, anomaly_prefix, Acknowledgement, Anomaly, Held, Watch, CACHE, DATABASE, FORMAT_VERSION, WATCH_SUFFIX,
};

/// The most anomaly records of one resource read at once: more is refused (and retention keeps everything of
/// that resource) rather than read without end.
pub const MAX_RECORDS: usize = 1000;
/// The longest `why` an acknowledgement records, in characters.
pub const MAX_WHY_CHARS: usize = 1000;

/// Whose series a backup belongs to, read from its manifest's place in the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesOf {
    /// [`DATABASE`] or [`CACHE`].
    pub kind: &'static str,
    pub resource: String,
    /// The export profile, or `rdb`.
    pub series: String,
}

/// The series of a manifest key: `exports/<db>/<profile>/...` or `exports/_caches/<cache>/rdb/...`; `None` for
/// a key outside the layout.
pub fn series_of(manifest_key: &str) -> Option<SeriesOf> {
    if let Some(rest) = manifest_key.strip_prefix(CACHE_EXPORTS_PREFIX) {
        let (cache, _) = rest.split_once('/')?;
        let at = layout::time_in_key(manifest_key)?;
        return (layout::rdb_keys(cache, at).manifest() == manifest_key).then(|| SeriesOf {
            kind: CACHE,
            resource: cache.to_owned(),
            series: RDB_PROFILE.to_owned(),
        });
    }
    let rest = manifest_key.strip_prefix(EXPORTS_PREFIX)?;
    let (db, _) = rest.split_once('/')?;
    let profile = layout::profile_in_key(db, manifest_key)?;
    // Exactly the layout's manifest key for its series and time, as retention requires.
    let at = layout::time_in_key(manifest_key)?;
    if layout::export_keys(db, profile, at, true).1 != manifest_key {
        return None;
    }
    Some(SeriesOf {
        kind: DATABASE,
        resource: db.to_owned(),
        series: profile.to_owned(),
    })
}

/// The snapshots an anomaly holds: Lifeboat's own (manual, tagged) snapshots of the resource, the newest one at
/// or before `baseline_at` (the last good backup's logical time) and every one after it up to `seen_at`.
pub fn snapshots_to_hold<S: Retained>(
    snapshots: &[S],
    baseline_at: DateTime<Utc>,
    seen_at: DateTime<Utc>,
) -> Vec<String> {
    let ours: Vec<&S> = snapshots.iter().filter(|s| s.owned() && !s.is_automated()).collect();
    let before = ours
        .iter()
        .filter(|s| s.logical_time() <= baseline_at)
        .max_by(|a, b| (a.logical_time(), a.id()).cmp(&(b.logical_time(), b.id())));
    let mut out: Vec<String> = before
        .into_iter()
        .chain(
            ours.iter()
                .filter(|s| s.logical_time() > baseline_at && s.logical_time() <= seen_at),
        )
        .map(|s| s.id().to_owned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What to do with one backup's comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Opening {
    /// A new anomaly, at its key (create-only).
    Open { key: String, anomaly: Anomaly },
    /// The series' open anomaly, with this backup added to `also_seen_in` (rewritten in place).
    Append { key: String, anomaly: Anomaly },
    /// An anomaly already names this backup.
    Covered(String),
    /// The comparison found nothing.
    Nothing,
}

/// The baseline a comparison's hold starts from: the time of the backup compared with, else the new one's own.
pub fn baseline_at(watch: &Watch, seen_at: DateTime<Utc>) -> DateTime<Utc> {
    watch
        .compared_with
        .as_deref()
        .and_then(layout::time_in_key)
        .unwrap_or(seen_at)
}

/// The rule: what one backup's comparison does to its series' anomalies (`existing`: the series' records, by
/// key), given the snapshots [`snapshots_to_hold`] named for it. `None` when the watch record's manifest is no
/// backup of the layout (nothing is opened for a key outside it).
pub fn opening(watch: &Watch, existing: &[(String, Anomaly)], snapshots: Vec<String>) -> Option<Opening> {
    if watch.findings.is_empty() {
        return Some(Opening::Nothing);
    }
    let series = series_of(&watch.manifest_key)?;
    let seen_at = layout::time_in_key(&watch.manifest_key)?;
    let ours = existing
        .iter()
        .filter(|(_, a)| a.resource == series.resource && a.series == series.series);
    if let Some((key, _)) = ours
        .clone()
        .find(|(_, a)| a.manifest_key == watch.manifest_key || a.also_seen_in.contains(&watch.manifest_key))
    {
        return Some(Opening::Covered(key.clone()));
    }
    if let Some((key, open)) = ours.filter(|(_, a)| a.is_open()).max_by(|a, b| a.0.cmp(&b.0)) {
        let mut anomaly = open.clone();
        anomaly.also_seen_in.push(watch.manifest_key.clone());
        return Some(Opening::Append {
            key: key.clone(),
            anomaly,
        });
    }
    Some(Opening::Open {
        key: anomaly_key(series.kind, &series.resource, &series.series, seen_at),
        anomaly: Anomaly {
            format_version: FORMAT_VERSION,
            resource_kind: series.kind.to_owned(),
            resource: series.resource,
            series: series.series,
            manifest_key: watch.manifest_key.clone(),
            seen_at,
            also_seen_in: Vec::new(),
            findings: watch.findings.clone(),
            held: Held {
                manifests: watch.compared_with.iter().cloned().collect(),
                snapshots,
            },
            acknowledged: None,
        },
    })
}

/// What a resource's open anomalies hold, as retention asks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holds {
    /// Read: each held manifest and snapshot, with the anomaly that holds it.
    Known(BTreeMap<String, String>),
    /// The records could not be read (or were too many): everything of the resource is kept this run.
    Unknown(String),
}

/// Why retention keeps something it would expire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hold {
    #[error("held by the open content anomaly {0} until it is acknowledged")]
    Anomaly(String),
    #[error("the content anomaly records could not be read ({0}); kept this run")]
    Unreadable(String),
}

impl Holds {
    /// The holds of the open anomalies among `records`.
    pub fn of(records: &[(String, Anomaly)]) -> Self {
        let mut held = BTreeMap::new();
        for (key, a) in records.iter().filter(|(_, a)| a.is_open()) {
            for name in a.held.manifests.iter().chain(&a.held.snapshots) {
                held.entry(name.clone()).or_insert_with(|| key.clone());
            }
        }
        Holds::Known(held)
    }

    /// Whether (and why) a manifest key or snapshot identifier is held.
    pub fn hold(&self, name: &str) -> Option<Hold> {
        match self {
            Holds::Known(held) => held.get(name).map(|key| Hold::Anomaly(key.clone())),
            Holds::Unknown(why) => Some(Hold::Unreadable(why.clone())),
        }
    }

    /// A retention decision with the holds applied: an `Expire` of a held snapshot becomes `KeepHeld`.
    pub fn decide(&self, decision: Decision, id: &str) -> Decision {
        if decision.expires() && self.hold(id).is_some() {
            Decision::KeepHeld
        } else {
            decision
        }
    }
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckRefused {
    #[error("nothing to acknowledge: {0} has no open content anomaly")]
    NothingOpen(String),
    #[error("{resource} has open content anomalies in several series ({series}): name one")]
    WhichSeries { resource: String, series: String },
    #[error("{resource} has no open content anomaly in series `{series}`")]
    NoSuchSeries { resource: String, series: String },
    #[error("an acknowledgement needs a reason: `why` is empty")]
    NoWhy,
    #[error("`why` is {0} characters; at most {MAX_WHY_CHARS}")]
    WhyTooLong(usize),
    #[error("an acknowledgement needs who: `by` is empty")]
    NoBy,
}

/// The rule: the open anomaly of `resource` that an acknowledgement of `series` (or of the only open series)
/// closes, with who, why and when recorded.
pub fn acknowledge(
    resource: &str,
    records: &[(String, Anomaly)],
    series: Option<&str>,
    acknowledgement: Acknowledgement,
) -> Result<(String, Anomaly), AckRefused> {
    let why = acknowledgement.why.trim();
    if why.is_empty() {
        return Err(AckRefused::NoWhy);
    }
    let chars = why.chars().count();
    if chars > MAX_WHY_CHARS {
        return Err(AckRefused::WhyTooLong(chars));
    }
    if acknowledgement.by.trim().is_empty() {
        return Err(AckRefused::NoBy);
    }
    let open: Vec<&(String, Anomaly)> = records
        .iter()
        .filter(|(_, a)| a.is_open() && a.resource == resource)
        .collect();
    if open.is_empty() {
        return Err(AckRefused::NothingOpen(resource.to_owned()));
    }
    let chosen: Vec<&&(String, Anomaly)> = match series {
        Some(s) => open.iter().filter(|(_, a)| a.series == s).collect(),
        None => open.iter().collect(),
    };
    let mut names: Vec<&str> = chosen.iter().map(|(_, a)| a.series.as_str()).collect();
    names.dedup();
    match (series, names.len()) {
        (Some(s), 0) => Err(AckRefused::NoSuchSeries {
            resource: resource.to_owned(),
            series: s.to_owned(),
        }),
        (None, n) if n > 1 => Err(AckRefused::WhichSeries {
            resource: resource.to_owned(),
            series: names.join(", "),
        }),
        _ => {
            // Several open records of one series cannot be opened by this module; should an older one exist,
            // the newest is the episode in force.
            let (key, a) = chosen
                .iter()
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|r| (&r.0, &r.1))
                .ok_or_else(|| AckRefused::NothingOpen(resource.to_owned()))?;
            let mut a = a.clone();
            a.acknowledged = Some(Acknowledgement {
                why: why.to_owned(),
                ..acknowledgement
            });
            Ok((key.clone(), a))
        }
    }
}

// ---- The adapter: S3 (the records), RDS and ElastiCache (the snapshots held).

/// Every anomaly record of a resource (one series', or all), at most [`MAX_RECORDS`]: more is an error.
pub async fn read_anomalies(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    kind: &str,
    resource: &str,
    series: Option<&str>,
) -> Result<Vec<(String, Anomaly)>, Error> {
    let prefix = anomaly_prefix(kind, resource, series);
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws("ListObjectsV2", e))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| k.ends_with(layout::REPORT_SUFFIX))
                .map(str::to_owned),
        );
        if keys.len() > MAX_RECORDS {
            return Err(Error::PartialFailure(format!(
                "more than {MAX_RECORDS} content anomaly records under {prefix}"
            )));
        }
    }
    let mut out = Vec::new();
    for key in keys {
        let a: Anomaly = layout::get_json(s3, bucket, &key).await?;
        out.push((key, a));
    }
    Ok(out)
}

/// What a resource's open anomalies hold, for retention: never an error (a failed read holds everything).
pub async fn holds_of(s3: &aws_sdk_s3::Client, bucket: &str, kind: &str, resource: &str) -> Holds {
    match read_anomalies(s3, bucket, kind, resource, None).await {
        Ok(records) => Holds::of(&records),
        Err(e) => {
            tracing::error!(resource = %resource, error = %e, "content anomaly records unreadable; retention keeps everything of the resource");
            Holds::Unknown(e.to_string())
        }
    }
}

/// The clients an opening reads snapshots through.
#[derive(Debug, Clone, Copy)]
pub struct Clients<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub rds: &'a aws_sdk_rds::Client,
    pub ec: &'a aws_sdk_elasticache::Client,
    pub bucket: &'a str,
    /// Whether serverless caches are read (`LIFEBOAT_SERVERLESS_CACHES`).
    pub serverless: bool,
}

/// What [`open_for`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Opened(String),
    Appended(String),
    Covered(String),
    Nothing,
}

/// Opens (or extends) the anomaly a backup's comparison calls for: the export function calls it right after the
/// watch record is written, monitor for a watch record no anomaly covers yet.
pub async fn open_for(c: Clients<'_>, watch: &Watch) -> Result<Opened, Error> {
    if watch.findings.is_empty() {
        return Ok(Opened::Nothing);
    }
    let not_ours = || Error::PartialFailure(format!("{} is no backup of the layout", watch.manifest_key));
    let series = series_of(&watch.manifest_key).ok_or_else(not_ours)?;
    let seen_at = layout::time_in_key(&watch.manifest_key).ok_or_else(not_ours)?;
    let existing = read_anomalies(c.s3, c.bucket, series.kind, &series.resource, Some(&series.series)).await?;
    let baseline = baseline_at(watch, seen_at);
    let snapshots = if series.kind == CACHE {
        let all = crate::caches::elasticache::list_all_snapshots(c.ec, c.serverless).await?;
        let ours: Vec<_> = all.into_iter().filter(|s| s.belongs_to(&series.resource)).collect();
        snapshots_to_hold(&ours, baseline, seen_at)
    } else {
        let dbs = crate::rds::selection::discover(c.rds).await?;
        match dbs.iter().find(|d| d.id == series.resource) {
            Some(db) => {
                let all = crate::rds::snapshots::list_for_db(c.rds, &db.id, db.kind).await?;
                snapshots_to_hold(&all, baseline, seen_at)
            }
            None => Vec::new(),
        }
    };
    match opening(watch, &existing, snapshots).ok_or_else(not_ours)? {
        Opening::Nothing => Ok(Opened::Nothing),
        Opening::Covered(key) => Ok(Opened::Covered(key)),
        Opening::Append { key, anomaly } => {
            put(c.s3, c.bucket, &key, &anomaly, false).await?;
            tracing::warn!(key = %key, manifest = %watch.manifest_key, "content anomaly seen again; its hold stays");
            Ok(Opened::Appended(key))
        }
        Opening::Open { key, anomaly } => {
            if put(c.s3, c.bucket, &key, &anomaly, true).await? {
                tracing::warn!(key = %key, manifests = anomaly.held.manifests.len(), snapshots = anomaly.held.snapshots.len(), "content anomaly opened; restore points held");
                Ok(Opened::Opened(key))
            } else {
                // Another writer opened it first (the export function and monitor may race): theirs stands.
                Ok(Opened::Covered(key))
            }
        }
    }
}

/// Writes an anomaly record; `create_only` refuses an existing key (returns false). Encrypted with the bucket's
/// KMS key, as every object there.
pub async fn put(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    anomaly: &Anomaly,
    create_only: bool,
) -> Result<bool, Error> {
    let body = serde_json::to_vec_pretty(anomaly)
        .map_err(|e| Error::PartialFailure(format!("the anomaly record {key} did not serialise: {e}")))?;
    let mut req = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(body.into());
    if create_only {
        req = req.if_none_match("*");
    }
    match req.send().await {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(false),
        Err(e) => Err(Error::aws("PutObject", e)),
    }
}

/// The newest watch record of each series of a resource (a database's profiles, or a cache's RDB copies).
pub async fn newest_watches(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    kind: &str,
    resource: &str,
) -> Result<Vec<String>, Error> {
    let prefix = if kind == CACHE {
        layout::rdb_prefix(resource)
    } else {
        layout::export_prefix(resource, None)
    };
    let keys = layout::list_keys(s3, bucket, &prefix, WATCH_SUFFIX).await?;
    let mut by_series: BTreeMap<String, (DateTime<Utc>, String)> = BTreeMap::new();
    for key in keys {
        let Some(manifest) = crate::watch::record::manifest_key_of(&key) else {
            continue;
        };
        let (Some(series), Some(at)) = (series_of(&manifest), layout::time_in_key(&manifest)) else {
            continue;
        };
        if series.resource != resource || series.kind != kind {
            continue;
        }
        let entry = by_series.entry(series.series).or_insert((at, key.clone()));
        if (at, &key) > (entry.0, &entry.1) {
            *entry = (at, key);
        }
    }
    Ok(by_series.into_values().map(|(_, k)| k).collect())
}

/// Monitor's pass over one resource: each series' newest watch record with findings that no anomaly covers yet
/// is opened (a missed step in the export function is caught within the hour).
pub async fn open_missed(c: Clients<'_>, kind: &str, resource: &str) -> Result<Vec<Opened>, Error> {
    let mut out = Vec::new();
    for key in newest_watches(c.s3, c.bucket, kind, resource).await? {
        let watch: Watch = match layout::get_json(c.s3, c.bucket, &key).await {
            Ok(w) => w,
            Err(e @ Error::Aws { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "watch record unreadable; not opened");
                continue;
            }
        };
        // The record must be about the manifest beside it: a record naming another backup opens nothing.
        if crate::watch::record::manifest_key_of(&key).as_deref() != Some(watch.manifest_key.as_str()) {
            tracing::warn!(key = %key, "watch record names another manifest; not opened");
            continue;
        }
        out.push(open_for(c, &watch).await?);
    }
    Ok(out)
}

/// Acknowledges the open anomaly of a resource (the console's and the `lifeboat` tool's one path): reads its
/// records, applies [`acknowledge`], writes the record back. `Ok(Err(_))` is a refusal to say to the person.
pub async fn acknowledge_open(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    resource: &str,
    series: Option<&str>,
    acknowledgement: Acknowledgement,
) -> Result<Result<(String, Anomaly), AckRefused>, Error> {
    let mut records = read_anomalies(s3, bucket, DATABASE, resource, None).await?;
    records.extend(read_anomalies(s3, bucket, CACHE, resource, None).await?);
    let (key, anomaly) = match acknowledge(resource, &records, series, acknowledgement) {
        Ok(done) => done,
        Err(refused) => return Ok(Err(refused)),
    };
    put(s3, bucket, &key, &anomaly, false).await?;
    tracing::warn!(key = %key, "content anomaly acknowledged; its hold is released");
    Ok(Ok((key, anomaly)))
}

/// The open anomalies of a resource (for monitor's metric and the notification), read with the same bound.
pub async fn open_anomalies(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    kind: &str,
    resource: &str,
) -> Result<Vec<(String, Anomaly)>, Error> {
    let mut records = read_anomalies(s3, bucket, kind, resource, None).await?;
    records.retain(|(_, a)| a.is_open());
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rds::snapshots::testing::snap;
    use crate::watch::record::Finding;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, 2, 0, 0).unwrap()
    }

    fn manifest(db: &str, profile: &str, at: DateTime<Utc>) -> String {
        layout::export_keys(db, profile, at, true).1
    }

    fn finding() -> Finding {
        Finding {
            kind: "rows-dropped".into(),
            object: "public.users".into(),
            before: Some(12030.0),
            after: Some(8301.0),
            line: "public.users: 12,030 rows in the backup of 2026-12-05, 8,301 in today's, -31%".into(),
        }
    }

    fn watch(at: DateTime<Utc>, findings: Vec<Finding>) -> Watch {
        Watch {
            format_version: FORMAT_VERSION,
            manifest_key: manifest("product-db", "critical", at),
            watched_at: at,
            compared_with: Some(manifest("product-db", "critical", at - Duration::days(1))),
            history: vec![],
            findings,
            drift: None,
            drift_summary: None,
        }
    }

    fn ack(why: &str) -> Acknowledgement {
        Acknowledgement {
            by: "arn:aws:iam::123456789012:user/ana".into(),
            by_stated: false,
            why: why.into(),
            at: day(9),
        }
    }

    #[test]
    fn a_manifest_key_names_its_series_and_a_cache_is_never_a_database() {
        let s = series_of(&manifest("product-db", "critical", day(5))).unwrap();
        assert_eq!(
            (s.kind, s.resource.as_str(), s.series.as_str()),
            (DATABASE, "product-db", "critical")
        );
        let c = series_of(&layout::rdb_keys("sessions", day(5)).manifest()).unwrap();
        assert_eq!(
            (c.kind, c.resource.as_str(), c.series.as_str()),
            (CACHE, "sessions", "rdb")
        );
        assert_eq!(series_of("reports/x/20261205T020000Z.json"), None);
        assert_eq!(
            series_of("exports/db/full/2026/12/05/other-full-20261205T020000Z.manifest.json"),
            None
        );
    }

    #[test]
    fn held_snapshots_start_at_the_newest_before_the_baseline_and_end_at_the_anomaly() {
        let snaps = vec![
            snap("s1", day(1), true),
            snap("s3", day(3), true),
            snap("s4-not-ours", day(4), false),
            snap("s5", day(5), true),
            snap("s6", day(6), true),
            snap("s8", day(8), true),
        ];
        // Baseline on day 4 (between snapshots), anomaly on day 6.
        assert_eq!(snapshots_to_hold(&snaps, day(4), day(6)), ["s3", "s5", "s6"]);
        // A baseline exactly at a snapshot's time starts there.
        assert_eq!(snapshots_to_hold(&snaps, day(5), day(6)), ["s5", "s6"]);
        assert!(snapshots_to_hold(&snaps, day(1) - Duration::days(1), day(1) - Duration::hours(1)).is_empty());
    }

    #[test]
    fn findings_open_an_anomaly_holding_the_baseline_and_nothing_opens_nothing() {
        let w = watch(day(6), vec![finding()]);
        let Some(Opening::Open { key, anomaly }) = opening(&w, &[], vec!["s5".into()]) else {
            panic!("not opened")
        };
        assert_eq!(key, "watch/product-db/critical/20261206T020000Z.json");
        assert_eq!(anomaly.held.manifests, [manifest("product-db", "critical", day(5))]);
        assert_eq!(anomaly.held.snapshots, ["s5"]);
        assert!(anomaly.is_open());
        assert_eq!(opening(&watch(day(6), vec![]), &[], vec![]), Some(Opening::Nothing));
    }

    #[test]
    fn while_open_a_later_backup_is_appended_never_a_second_hold_and_a_named_one_is_covered() {
        let first = watch(day(6), vec![finding()]);
        let Some(Opening::Open { key, anomaly }) = opening(&first, &[], vec![]) else {
            panic!()
        };
        let records = vec![(key.clone(), anomaly)];
        let later = watch(day(7), vec![finding()]);
        let Some(Opening::Append { key: k2, anomaly: a2 }) = opening(&later, &records, vec![]) else {
            panic!("not appended")
        };
        assert_eq!(k2, key);
        assert_eq!(a2.also_seen_in, std::slice::from_ref(&later.manifest_key));
        assert_eq!(a2.held, records[0].1.held, "the hold is the first backup's, unchanged");
        assert_eq!(opening(&first, &records, vec![]), Some(Opening::Covered(key.clone())));
        let records = vec![(key.clone(), a2)];
        assert_eq!(opening(&later, &records, vec![]), Some(Opening::Covered(key)));
    }

    #[test]
    fn after_acknowledgement_a_new_finding_opens_a_new_anomaly() {
        let Some(Opening::Open { key, anomaly }) = opening(&watch(day(6), vec![finding()]), &[], vec![]) else {
            panic!()
        };
        let (key, acked) = acknowledge("product-db", &[(key, anomaly)], None, ack("migration")).unwrap();
        let next = opening(&watch(day(8), vec![finding()]), &[(key.clone(), acked)], vec![]);
        assert!(matches!(next, Some(Opening::Open { key: k, .. }) if k != key));
    }

    #[test]
    fn holds_name_open_anomalies_only_and_an_unreadable_record_holds_everything() {
        let Some(Opening::Open { key, anomaly }) = opening(&watch(day(6), vec![finding()]), &[], vec!["s5".into()])
        else {
            panic!()
        };
        let open = Holds::of(&[(key.clone(), anomaly.clone())]);
        assert_eq!(open.hold("s5"), Some(Hold::Anomaly(key.clone())));
        assert_eq!(
            open.hold(&manifest("product-db", "critical", day(5))),
            Some(Hold::Anomaly(key.clone()))
        );
        assert_eq!(open.hold("s4"), None);
        assert_eq!(open.decide(Decision::Expire, "s5"), Decision::KeepHeld);
        assert_eq!(open.decide(Decision::KeepDaily, "s5"), Decision::KeepDaily);
        assert_eq!(open.decide(Decision::Expire, "s4"), Decision::Expire);
        let (_, acked) = acknowledge("product-db", &[(key.clone(), anomaly)], None, ack("expected")).unwrap();
        assert_eq!(Holds::of(&[(key, acked)]).hold("s5"), None);
        let unknown = Holds::Unknown("ListObjectsV2 failed".into());
        assert!(unknown.hold("anything").is_some());
        assert_eq!(unknown.decide(Decision::Expire, "s1"), Decision::KeepHeld);
    }

    #[test]
    fn an_acknowledgement_needs_something_open_a_reason_and_one_series() {
        assert_eq!(
            acknowledge("product-db", &[], None, ack("why")),
            Err(AckRefused::NothingOpen("product-db".into()))
        );
        let Some(Opening::Open { key, anomaly }) = opening(&watch(day(6), vec![finding()]), &[], vec![]) else {
            panic!()
        };
        let mut other = anomaly.clone();
        other.series = "full".into();
        let records = vec![(key.clone(), anomaly), ("watch/product-db/full/x.json".into(), other)];
        assert_eq!(
            acknowledge("product-db", &records, None, ack("  ")),
            Err(AckRefused::NoWhy)
        );
        assert_eq!(
            acknowledge("product-db", &records, None, ack(&"x".repeat(MAX_WHY_CHARS + 1))),
            Err(AckRefused::WhyTooLong(MAX_WHY_CHARS + 1))
        );
        assert!(matches!(
            acknowledge("product-db", &records, None, ack("why")),
            Err(AckRefused::WhichSeries { .. })
        ));
        assert!(matches!(
            acknowledge("product-db", &records, Some("nightly"), ack("why")),
            Err(AckRefused::NoSuchSeries { .. })
        ));
        let (k, a) = acknowledge("product-db", &records, Some("critical"), ack(" planned purge ")).unwrap();
        assert_eq!(k, key);
        let done = a.acknowledged.unwrap();
        assert_eq!(done.why, "planned purge");
        assert_eq!(done.by, "arn:aws:iam::123456789012:user/ana");
    }

    proptest! {
        /// Whatever the snapshots, the hold names only Lifeboat's, none after the anomaly, and always the newest
        /// of Lifeboat's at or before the baseline when there is one.
        #[test]
        fn the_hold_covers_the_baseline_and_never_later_than_the_anomaly(
            times in proptest::collection::vec((0i64..400, any::<bool>()), 0..20),
            baseline in 0i64..400,
            gap in 0i64..100,
        ) {
            let t0 = day(1);
            let snaps: Vec<_> = times
                .iter()
                .enumerate()
                .map(|(i, (h, owned))| snap(&format!("s{i}"), t0 + Duration::hours(*h), *owned))
                .collect();
            let (b, seen) = (t0 + Duration::hours(baseline), t0 + Duration::hours(baseline + gap));
            let held = snapshots_to_hold(&snaps, b, seen);
            for id in &held {
                let s = snaps.iter().find(|s| &s.id == id).unwrap();
                prop_assert!(s.owned());
                prop_assert!(s.logical_time() <= seen);
            }
            let newest_before = snaps.iter().filter(|s| s.owned() && s.logical_time() <= b).map(|s| s.logical_time()).max();
            if let Some(t) = newest_before {
                prop_assert!(held.iter().any(|id| snaps.iter().any(|s| &s.id == id && s.logical_time() == t)));
            }
        }
    }
}
