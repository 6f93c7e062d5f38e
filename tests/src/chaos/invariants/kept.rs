//! Kept what policy keeps: the newest Lifeboat snapshot of every database and cache in a plan, once one was seen;
//! every snapshot retention would keep; every export and RDB copy within its `keep_days`, and the newest of each
//! series whatever its age; and everything not Lifeboat's ([`foreign`]).
//!
//! Judged by the product's own rules and clock: snapshots by `rds::retention::decide` over every Lifeboat
//! snapshot ever seen (so a deletion is judged against what retention saw and more), copies by the
//! `plans::export_expiry` rule (strictly older than `keep_days`, by the time the manifest records, never the
//! newest), each at the earlier of its time and the real clock, as `rds::retention::clock` counts, at the check's
//! time: the time of the last tick that ran before it (see [`past_policy`]). A correct expiry is therefore no
//! violation, and one a day early is.

use chrono::{DateTime, Duration, Utc};
use lifeboat::bucket::layout::CACHE_EXPORTS_PREFIX;
use lifeboat::rds::retention::{self, Gfs, Retained};
use serde_json::Value;

use super::{objects, violation, Cloud, Invariant, Ledger, Violation};
use crate::demo::deployed::World;

/// Things that are not Lifeboat's, made by the harness at the start of a run: none may ever go.
#[derive(Debug, Clone, Default)]
pub struct Foreign {
    /// A manual RDS snapshot of a planned database, without Lifeboat's tags.
    pub rds_snapshot: Option<String>,
    /// A snapshot of a planned cache, without Lifeboat's tags.
    pub cache_snapshot: Option<String>,
    /// An object in the stack's bucket outside Lifeboat's prefixes (when the bucket policy lets the harness write).
    pub object: Option<String>,
}

/// Makes one of each [`Foreign`] thing, of the first database and cache the plans list; each that the local cloud
/// refuses is left `None` (and said on standard error).
pub async fn foreign(w: &World) -> Foreign {
    let c = Cloud::of(w).await;
    let mut out = Foreign::default();
    if let Some(db) = c.members("databases").into_iter().next() {
        let id = format!("not-lifeboat-{db}");
        match c
            .rds
            .create_db_snapshot()
            .db_instance_identifier(&db)
            .db_snapshot_identifier(&id)
            .send()
            .await
        {
            Ok(_) => out.rds_snapshot = Some(id),
            Err(e) => eprintln!("foreign: no manual snapshot of {db}: {e}"),
        }
    }
    if let Some(cache) = c.members("caches").into_iter().next() {
        let name = format!("not-lifeboat-{cache}");
        let made =
            c.ec.create_snapshot()
                .cache_cluster_id(&cache)
                .snapshot_name(&name)
                .send()
                .await;
        match made {
            Ok(_) => out.cache_snapshot = Some(name),
            Err(e) => eprintln!("foreign: no snapshot of {cache}: {e}"),
        }
    }
    let key = "not-lifeboat/kept.txt";
    let put =
        c.s3.put_object()
            .bucket(&c.bucket)
            .key(key)
            .body(b"a user's object".to_vec().into())
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .send()
            .await;
    match put {
        Ok(_) => out.object = Some(key.to_owned()),
        Err(e) => eprintln!("foreign: no object in {}: {e}", c.bucket),
    }
    out
}

pub(super) async fn check(c: &Cloud, ledger: &mut Ledger, now: DateTime<Utc>, out: &mut Vec<Violation>) {
    let clock = retention::clock(now, Utc::now());
    snapshots(c, ledger, clock, out).await;
    copies(c, ledger, now, out).await;
    foreign_kept(c, &ledger.foreign, out).await;
}

/// The GFS policy the plans give `field` (`snapshots`, `cache_snapshots`): each period's largest count.
fn policy(c: &Cloud, field: &str) -> Option<Gfs> {
    let mut gfs = Gfs::default();
    for r in c.in_plans(&[field, "retention"]) {
        let n = |k: &str| r[k].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        gfs.daily = gfs.daily.max(n("daily"));
        gfs.weekly = gfs.weekly.max(n("weekly"));
        gfs.monthly = gfs.monthly.max(n("monthly"));
        gfs.yearly = gfs.yearly.max(n("yearly"));
    }
    (gfs != Gfs::default()).then_some(gfs)
}

async fn snapshots(c: &Cloud, ledger: &mut Ledger, clock: DateTime<Utc>, out: &mut Vec<Violation>) {
    let kept = |what: String| violation(Invariant::Kept, what);
    for db in c.members("databases") {
        let listed =
            lifeboat::rds::snapshots::list_for_db(&c.rds, &db, lifeboat::rds::selection::DbKind::Instance).await;
        let Ok(now) = listed else {
            out.push(kept(format!("the snapshots of {db} cannot be listed")));
            continue;
        };
        let now: Vec<_> = now.into_iter().filter(|s| s.owned()).collect();
        for s in &now {
            ledger.snapshots.insert(s.id.clone(), s.logical_time());
            ledger.db_snapshots.insert(s.id.clone(), s.clone());
        }
        let seen: Vec<_> = ledger.db_snapshots.values().filter(|s| s.db == db).cloned().collect();
        let present = |id: &str| now.iter().any(|s| s.id == id);
        judge(&db, &seen, &present, policy(c, "snapshots"), clock, out);
    }
    let Ok(listed) = lifeboat::caches::elasticache::list_snapshots(&c.ec).await else {
        return out.push(kept("the cache snapshots cannot be listed".to_owned()));
    };
    for cache in c.members("caches") {
        let now: Vec<_> = listed.iter().filter(|s| s.owned() && s.belongs_to(&cache)).collect();
        for s in &now {
            ledger.snapshots.insert(s.name.clone(), Retained::logical_time(*s));
            ledger.cache_snapshots.insert(s.name.clone(), (*s).clone());
        }
        let seen: Vec<_> = ledger
            .cache_snapshots
            .values()
            .filter(|s| s.belongs_to(&cache))
            .cloned()
            .collect();
        let present = |id: &str| now.iter().any(|s| s.name == id);
        judge(&cache, &seen, &present, policy(c, "cache_snapshots"), clock, out);
    }
}

/// The newest of `seen` must be present, and so must every one retention keeps at `clock`.
fn judge<S: Retained>(
    of: &str,
    seen: &[S],
    present: &dyn Fn(&str) -> bool,
    policy: Option<Gfs>,
    clock: DateTime<Utc>,
    out: &mut Vec<Violation>,
) {
    let newest = seen
        .iter()
        .filter(|s| s.is_available())
        .max_by(|a, b| (a.logical_time(), a.id()).cmp(&(b.logical_time(), b.id())));
    if let Some(n) = newest.filter(|n| !present(n.id())) {
        out.push(violation(
            Invariant::Kept,
            format!("the newest snapshot of {of}, {}, was deleted", n.id()),
        ));
    }
    let Some(policy) = policy else { return };
    for (s, decision) in seen.iter().zip(retention::decide(seen, &policy, clock)) {
        if !present(s.id()) && !decision.expires() && Some(s.id()) != newest.map(Retained::id) {
            out.push(violation(
                Invariant::Kept,
                format!(
                    "snapshot {} of {of} was deleted, though retention {policy} keeps it ({decision:?})",
                    s.id()
                ),
            ));
        }
    }
}

/// The prefix of a copy's series: `exports/<db>/<profile>/` or `exports/_caches/<cache>/rdb/`.
fn series(key: &str) -> String {
    let depth = if key.starts_with(CACHE_EXPORTS_PREFIX) { 4 } else { 3 };
    let parts: Vec<&str> = key.split('/').take(depth).collect();
    format!("{}/", parts.join("/"))
}

/// The `keep_days` the plans give the series of `key` (the largest, when several plans name it).
fn keep_days(c: &Cloud, key: &str) -> Option<u32> {
    let s = series(key);
    let parts: Vec<&str> = s.split('/').collect();
    let found: Vec<&Value> = if key.starts_with(CACHE_EXPORTS_PREFIX) {
        c.in_plans(&["rdb_copies", "keep_days"])
    } else {
        let profile = parts.get(2).copied().unwrap_or_default();
        c.in_plans(&["exports"])
            .into_iter()
            .map(|e| &e[profile]["keep_days"])
            .collect()
    };
    found
        .into_iter()
        .filter_map(Value::as_u64)
        .filter_map(|n| u32::try_from(n).ok())
        .max()
}

/// Whether the copy of manifest `key` (seen before) may have been expired by now: strictly older than
/// `keep_days` at the retention clock of `now` (the time of the last tick that ran before the check: the latest
/// moment a tick could have removed it), and not the newest of its series seen. So a copy removed on the last day
/// of its policy is caught, and one a tick rightly expired is not (judged at an earlier moment, a month's run
/// counted every correct expiry of an RDB copy made at 01:00 and expired at the next 02:00 tick as a violation).
pub(super) fn past_policy(c: &Cloud, ledger: &Ledger, key: &str, now: DateTime<Utc>) -> bool {
    let (Some(at), Some(days)) = (ledger.manifests.get(key), keep_days(c, key)) else {
        return false;
    };
    let prefix = series(key);
    let newest = ledger
        .manifests
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .max_by_key(|(k, t)| (**t, (*k).clone()))
        .map(|(k, _)| k.as_str());
    let clock = retention::clock(now, Utc::now());
    newest != Some(key) && *at < clock - Duration::days(i64::from(days))
}

async fn copies(c: &Cloud, ledger: &Ledger, now: DateTime<Utc>, out: &mut Vec<Violation>) {
    let Ok(listed) = objects(&c.s3, &c.bucket, lifeboat::bucket::layout::EXPORTS_PREFIX).await else {
        return out.push(violation(Invariant::Kept, "the bucket cannot be listed"));
    };
    for (key, at) in &ledger.manifests {
        if !listed.contains_key(key) && !past_policy(c, ledger, key, now) {
            out.push(violation(
                Invariant::Kept,
                format!("{key} (of {at}) was deleted within its policy"),
            ));
        }
    }
}

async fn foreign_kept(c: &Cloud, f: &super::Foreign, out: &mut Vec<Violation>) {
    let gone = |what: String| violation(Invariant::Kept, format!("{what}, not Lifeboat's, was deleted"));
    if let Some(id) = &f.rds_snapshot {
        let found = c.rds.describe_db_snapshots().db_snapshot_identifier(id).send().await;
        if found.map_or(true, |o| o.db_snapshots().is_empty()) {
            out.push(gone(format!("snapshot {id}")));
        }
    }
    if let Some(name) = &f.cache_snapshot {
        let found = c.ec.describe_snapshots().snapshot_name(name).send().await;
        if found.map_or(true, |o| o.snapshots().is_empty()) {
            out.push(gone(format!("cache snapshot {name}")));
        }
    }
    if let Some(key) = &f.object {
        if c.s3.head_object().bucket(&c.bucket).key(key).send().await.is_err() {
            out.push(gone(format!("object {key}")));
        }
    }
}
