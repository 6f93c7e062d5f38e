//! A plan tick (only with `LIFEBOAT_PLAN_DOCUMENT` set): load the plan document's version in force, run the
//! export profiles and RDB copies due in the tick's quarter hour for the databases and caches of their plan, and
//! expire the exports and RDB copies the plan no longer keeps.
//!
//! - **What runs** comes from the document (`lifeboat::plans::due`), each run named by its *due* time, so a
//!   redelivered or retried tick finds its exports already there (the scheduled-export path skips a manifest
//!   that exists) and makes nothing twice. A tick with nothing due writes nothing but the remaining steps of an
//!   RDB copy already requested (`crate::caches::Pass` says why those cannot wait for the next due time).
//! - **On what** comes from AWS: the databases and caches the describe calls return, in a plan by their
//!   `lifeboat:plan` tag or the plan's list (`lifeboat::plans::membership`). The tick's payload names nothing but
//!   its time. A resource whose plan cannot be decided is reported (log, `PlanMembershipError`, the summary) and
//!   left out; the others proceed.
//! - **Which version**: the newest valid version of the document, read on every tick (a new version takes
//!   effect at the next one); newer invalid versions are logged and counted (`PlanVersionsRefused`). No valid
//!   version at all is `Error::Plan`, and nothing is exported or expired. Each manifest records the plan and the
//!   version label it followed.
//! - **RDB copies** are kept the plan's `rdb_copies.keep_days` by the rule exports are (a `Series::RdbCopy`),
//!   applied after the `copy-caches` step to each cache it stepped without a failure: every shard's file, then
//!   the manifest, behind delete markers. No lifecycle rule of the stack's decides their age any more.
//! - **Retention** is the plan's `keep_days` per profile, applied here after the profile's due run
//!   (`lifeboat::plans::export_expiry` says why not S3 lifecycle and what is never expired): only for a database
//!   whose export of that run exists, as snapshots are never expired by a run whose own snapshot failed. The
//!   archive is removed before its manifest, so a run stopped between the two leaves a manifest the next tick
//!   expires again, never an archive no manifest names. A copy an open content anomaly holds is kept (manifest
//!   and objects), and when the resource's anomaly records cannot be read nothing of it expires
//!   (`lifeboat::watch::hold`).
//!
//! A manual export (`{"database": ..., "profile": ...}`, the console's or the ECS task's) takes its profile from
//! here too ([`manual_profiles`]): the export rules of the database's plan, so a profile's tables and object lock
//! are the plan's wherever the export runs. A whole-database `full` export is always possible by hand (before a
//! risky migration, say), even for a database whose plan has no `full` rule; the tick never expires a profile its
//! plan does not have, so such an export is kept until removed by hand.
//!
//! Must never: take a database, cache, host or secret from the payload, or remove a key outside
//! `exports/<db>/<profile>/` of a database in the plan being run or `exports/_caches/<cache>/rdb/` of a cache in
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::bucket::layout::{self, MANIFEST_SUFFIX, RDB_PROFILE};
use lifeboat::bucket::manifest::Manifest;
use lifeboat::caches::elasticache;
use lifeboat::caches::records::RdbManifest;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::plans::document::{Document, ExportRule, RuleKind};
use lifeboat::plans::due::{self, Due};
use lifeboat::plans::export_expiry::{self, Export, Series};
use lifeboat::plans::membership::{plan_of, MembershipError, Resource};
use lifeboat::plans::store::{self, Loaded, Location, Refused};
use lifeboat::postgres::export::{Profile, DEFAULT_PROFILE};
use lifeboat::rds::selection::{self, Database, Selection};
use lifeboat::watch::{hold, record};
use serde::Serialize;

use crate::batch::{export_all, Run, Summary};
use crate::caches::{CopySummary, Pass};
use crate::deps::Deps;
use crate::job::Followed;

/// What a plan tick did.
#[derive(Debug, Clone, Serialize)]
pub struct TickSummary {
    pub trigger: &'static str,
    /// The tick's scheduled time.
    pub time: DateTime<Utc>,
    pub plan_document: String,
    /// The label of the version in force (`PlanVersion::label`).
    pub plan_version: String,
    /// Newer versions passed over because they fail validation.
    pub refused_versions: Vec<Refused>,
    pub due: Vec<DueRun>,
    /// One summary per due export run.
    pub exports: Vec<Summary>,
    pub expired: Vec<ExpiredExport>,
    /// Exports old enough to expire and kept, with why.
    pub held: Vec<HeldExport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caches: Option<CopySummary>,
    /// Resources whose plan cannot be decided, expiries that failed, a cache copy that failed.
    pub errors: Vec<String>,
    pub failed: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DueRun {
    pub plan: String,
    pub rule: String,
    pub at: DateTime<Utc>,
}

/// An export or an RDB copy a tick expired.
#[derive(Debug, Clone, Serialize)]
pub struct ExpiredExport {
    #[serde(flatten)]
    pub of: Of,
    pub at: DateTime<Utc>,
    pub manifest_key: String,
}

/// Whose copy expired: a database's export of a profile, or a cache's RDB copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Of {
    Export { db: String, profile: String },
    RdbCopy { cache: String },
}

impl From<Series<'_>> for Of {
    fn from(s: Series<'_>) -> Self {
        match s {
            Series::Export { db, profile } => Of::Export {
                db: db.to_owned(),
                profile: profile.to_owned(),
            },
            Series::RdbCopy { cache } => Of::RdbCopy {
                cache: cache.to_owned(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HeldExport {
    pub manifest_key: String,
    pub reason: String,
}

/// The action. Fails the invocation (after publishing metrics) when anything in it failed.
pub async fn tick(deps: &Deps, time: DateTime<Utc>, deadline: Option<Instant>) -> Result<TickSummary, Error> {
    let started = Instant::now();
    let Some(location) = deps.settings.plan.as_ref() else {
        return Err(Error::InvalidEvent(
            "a plan tick needs a plan document: LIFEBOAT_PLAN_DOCUMENT is not set".into(),
        ));
    };
    let loaded = store::load(&deps.s3, location).await?;
    let mut metrics = Metrics::new();
    report_refused(&loaded, &mut metrics);
    let exports = due::due_at_tick(&loaded.document, RuleKind::Export, time);
    let copies = due::due_at_tick(&loaded.document, RuleKind::RdbCopy, time);
    let mut summary = TickSummary {
        trigger: "plan-tick",
        time,
        plan_document: location.to_string(),
        plan_version: loaded.version.label().to_owned(),
        refused_versions: loaded.refused.clone(),
        due: exports.iter().chain(&copies).map(DueRun::from).collect(),
        exports: Vec::new(),
        expired: Vec::new(),
        held: Vec::new(),
        caches: None,
        errors: Vec::new(),
        failed: 0,
        seconds: 0.0,
    };
    let work = async {
        if !exports.is_empty() {
            run_exports(deps, &loaded, &exports, deadline, &mut summary, &mut metrics).await?;
        }
        {
            copy_caches(deps, &loaded.document, &copies, deadline, &mut summary, &mut metrics).await?;
        }
        expire_rdb_copies(deps, &loaded.document, &mut summary, &mut metrics).await?;
        Ok::<_, Error>(())
    };
    let result = work.await;
    if let Err(e) = metrics
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await
    {
        tracing::error!(error = %e, "metrics not published");
    }
    result?;
    summary.seconds = started.elapsed().as_secs_f64();
    conclude(summary)
}

impl From<&Due> for DueRun {
    fn from(d: &Due) -> Self {
        Self {
            plan: d.plan.clone(),
            rule: d.rule.clone(),
            at: d.at,
        }
    }
}

/// The profiles a manual export of `database` may name under the plan document, and the plan and version it
/// follows (none for a database in no plan).
pub(crate) struct ManualProfiles {
    pub profiles: BTreeMap<String, Profile>,
    pub followed: Option<Followed>,
}

/// [`ManualProfiles`] of `database` under the document's version in force. A database whose plan cannot be decided
/// (two plans, an unknown one) is refused with the reason; a database the describe calls do not return is left to
/// the export, which reports it missing.
pub(crate) async fn manual_profiles(
    deps: &Deps,
    location: &Location,
    database: &str,
    all: &[Database],
) -> Result<ManualProfiles, Error> {
    let loaded = store::load(&deps.s3, location).await?;
    let mut profiles = BTreeMap::from([(DEFAULT_PROFILE.to_owned(), Profile::default())]);
    let plan = match all.iter().find(|d| d.id == database) {
        Some(db) => plan_of(&loaded.document, Resource::Database, &db.id, &db.tags)
            .map_err(|e| Error::Plan(format!("manual export of `{database}`: {e}")))?,
        None => None,
    };
    let Some(plan) = plan else {
        return Ok(ManualProfiles {
            profiles,
            followed: None,
        });
    };
    if let Some(rules) = loaded.document.plans.get(plan) {
        profiles.extend(rules.exports.iter().map(|(name, rule)| (name.clone(), rule.profile())));
    }
    Ok(ManualProfiles {
        profiles,
        followed: Some(Followed {
            plan: plan.to_owned(),
            version: loaded.version.label().to_owned(),
            watch: loaded
                .document
                .plans
                .get(plan)
                .and_then(|p| p.watch.clone())
                .unwrap_or_default(),
        }),
    })
}

/// Newer versions that fail validation: logged one by one, counted on every tick (0 included, so an alarm on
/// the count clears once a valid version is uploaded).
fn report_refused(loaded: &Loaded, metrics: &mut Metrics) {
    for r in &loaded.refused {
        tracing::error!(version = r.version.label(), version_id = %r.version.version_id, error = %r.error,
            in_force = loaded.version.label(), "plan document version refused; the previous valid one is in force");
    }
    metrics.put(
        metrics::PLAN_VERSIONS_REFUSED,
        loaded.refused.len() as f64,
        StandardUnit::Count,
        &[],
    );
}

/// Every due export run, in due order, on its plan's databases; then the profile's expiry.
async fn run_exports(
    deps: &Deps,
    loaded: &Loaded,
    exports: &[Due],
    deadline: Option<Instant>,
    summary: &mut TickSummary,
    metrics: &mut Metrics,
) -> Result<(), Error> {
    let doc = &loaded.document;
    let all = selection::discover(&deps.rds).await?;
    let Members { by_plan, undecided } = members(doc, &all);
    for db in all.iter().filter(|d| d.cluster.is_none()) {
        let error = undecided.iter().find(|(id, _)| id == &db.id).map(|(_, e)| e);
        let dims = [(metrics::DB_DIMENSION, db.id.as_str())];
        let value = f64::from(u8::from(error.is_some()));
        metrics.put(metrics::PLAN_MEMBERSHIP_ERROR, value, StandardUnit::Count, &dims);
        if let Some(e) = error {
            tracing::error!(db = %db.id, error = %e, "database's plan cannot be decided; left out");
            summary.errors.push(e.to_string());
        }
    }
    let version = loaded.version.label().to_owned();
    let mut stopped = false;
    for run in exports {
        let Some((profile_name, rule)) = export_rule(doc, run) else {
            continue;
        };
        let selection = Selection {
            databases: by_plan.get(run.plan.as_str()).cloned().unwrap_or_default(),
            missing: listed_missing(doc, &run.plan, &all),
        };
        let export = Run {
            trigger: "plan",
            profile_name: profile_name.to_owned(),
            profile: rule.profile(),
            at: run.at,
            selection,
            followed: Some(Followed {
                plan: run.plan.clone(),
                version: version.clone(),
                watch: doc
                    .plans
                    .get(run.plan.as_str())
                    .and_then(|p| p.watch.clone())
                    .unwrap_or_default(),
            }),
        };
        let done = export_all(deps, export, deadline, &mut stopped, Instant::now()).await;
        for report in done.exports.iter().filter(|r| r.outcome.succeeded()) {
            let series = Series::Export {
                db: &report.db,
                profile: profile_name,
            };
            expire(deps, series, rule.keep_days, summary, metrics).await;
        }
        summary.exports.push(done);
    }
    Ok(())
}

/// The profile an `exports.<profile>` rule runs.
fn export_rule<'d>(doc: &'d Document, run: &Due) -> Option<(&'d str, &'d ExportRule)> {
    let profile = run.rule.strip_prefix("exports.")?;
    doc.plans
        .get(&run.plan)?
        .exports
        .get_key_value(profile)
        .map(|(name, rule)| (name.as_str(), rule))
}

/// The databases of each plan (sorted as a selection is), by the tags the describe calls returned, and those
/// whose plan cannot be decided, left out of every plan. An instance of a cluster is never a member on its own:
/// its cluster is (as selection has it).
fn members(doc: &Document, all: &[Database]) -> Members {
    let mut out: BTreeMap<String, Vec<Database>> = BTreeMap::new();
    let mut undecided = Vec::new();
    for db in all.iter().filter(|d| d.cluster.is_none()) {
        match plan_of(doc, Resource::Database, &db.id, &db.tags) {
            Ok(Some(plan)) => out.entry(plan.to_owned()).or_default().push(db.clone()),
            Ok(None) => tracing::info!(db = %db.id, "database in no plan: not exported by plan ticks"),
            Err(e) => undecided.push((db.id.clone(), e)),
        }
    }
    for dbs in out.values_mut() {
        dbs.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    }
    Members {
        by_plan: out,
        undecided,
    }
}

/// The databases of each plan, and those whose plan cannot be decided (with why).
struct Members {
    by_plan: BTreeMap<String, Vec<Database>>,
    undecided: Vec<(String, MembershipError)>,
}

/// Databases the plan lists by name that the region does not have (reported as missing, as an explicit list
/// always was).
fn listed_missing(doc: &Document, plan: &str, all: &[Database]) -> Vec<String> {
    doc.plans
        .get(plan)
        .map(|p| {
            p.databases
                .iter()
                .filter(|id| !all.iter().any(|d| d.cluster.is_none() && &d.id == *id))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// One series' expired copies removed (a database's exports of one profile, or a cache's RDB copies); what
/// failed is reported, never fatal to the tick.
async fn expire(deps: &Deps, series: Series<'_>, keep_days: u32, summary: &mut TickSummary, metrics: &mut Metrics) {
    let tick = summary.time;
    let removed = match expire_one(deps, series, keep_days, tick, summary).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(series = ?series, error = %e, "expired copies not removed");
            summary.errors.push(format!("{}: {e}", expiring(series)));
            0
        }
    };
    let dims = match series {
        Series::Export { db, profile } => [(metrics::DB_DIMENSION, db), (metrics::PROFILE_DIMENSION, profile)],
        Series::RdbCopy { cache } => [
            (metrics::CACHE_DIMENSION, cache),
            (metrics::PROFILE_DIMENSION, RDB_PROFILE),
        ],
    };
    metrics.put(metrics::EXPORTS_EXPIRED, removed as f64, StandardUnit::Count, &dims);
}

/// What a failed expiry was about, for the summary's errors.
fn expiring(series: Series<'_>) -> String {
    match series {
        Series::Export { db, profile } => format!("{db}: expiring `{profile}` exports"),
        Series::RdbCopy { cache } => format!("{cache}: expiring RDB copies"),
    }
}

/// Reads the manifests that may expire (older than `keep_days` by their key, and the newest, which is kept),
/// asks the rule, and removes what it names: the objects (archive, or every shard's file), then the manifest.
async fn expire_one(
    deps: &Deps,
    series: Series<'_>,
    keep_days: u32,
    tick: DateTime<Utc>,
    summary: &mut TickSummary,
) -> Result<usize, Error> {
    let bucket = &deps.settings.bucket;
    let keys = match series {
        Series::Export { db, profile } => layout::export_manifest_keys(&deps.s3, bucket, db, Some(profile)).await?,
        Series::RdbCopy { cache } => {
            layout::list_keys(&deps.s3, bucket, &layout::rdb_prefix(cache), MANIFEST_SUFFIX).await?
        }
    };
    let newest = layout::newest(keys.iter().map(String::as_str), MANIFEST_SUFFIX).map(|(k, _)| k);
    let cutoff = tick - chrono::Duration::days(i64::from(keep_days));
    let mut copies = Vec::new();
    for key in &keys {
        let old = layout::time_in_key(key).is_some_and(|t| t < cutoff);
        if !old && newest != Some(key.as_str()) {
            continue;
        }
        copies.push(read_copy(deps, series, key).await?);
    }
    let verdict = export_expiry::expiry(series, &copies, keep_days, tick, deps.clock.now());
    // Content-watch holds: read only when something would expire, and a failed read keeps everything.
    let verdict = if verdict.expire.is_empty() {
        verdict
    } else {
        let (kind, resource) = match series {
            Series::Export { db, .. } => (record::DATABASE, db),
            Series::RdbCopy { cache } => (record::CACHE, cache),
        };
        let holds = hold::holds_of(&deps.s3, bucket, kind, resource).await;
        export_expiry::with_holds(verdict, &holds)
    };
    for (key, why) in verdict.held {
        tracing::warn!(series = ?series, key = %key, reason = %why, "copy past its plan's keep_days kept");
        summary.held.push(HeldExport {
            manifest_key: key,
            reason: why.to_string(),
        });
    }
    let mut removed = 0;
    for e in verdict.expire {
        // The content watch's record beside the manifest goes last: it is about the copy, and a comparison reads
        // manifests only, so a record left by a failure here is inert.
        let watch = lifeboat::watch::record::watch_key_of(&e.manifest_key);
        for key in e.objects.iter().chain([&e.manifest_key]).chain(watch.as_ref()) {
            deps.s3
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|err| Error::aws("DeleteObject", err))?;
        }
        tracing::info!(series = ?series, key = %e.manifest_key, "copy expired by its plan's keep_days");
        removed += 1;
        summary.expired.push(ExpiredExport {
            of: series.into(),
            at: e.at,
            manifest_key: e.manifest_key,
        });
    }
    Ok(removed)
}

/// The `copy-caches` action for the caches of the plans with an `rdb_copies` rule: every step for the plans whose
/// rule is due, and only the steps of copies already requested for the others (`crate::caches::Pass` says why).
async fn copy_caches(
    deps: &Deps,
    doc: &Document,
    copies: &[Due],
    deadline: Option<Instant>,
    summary: &mut TickSummary,
    metrics: &mut Metrics,
) -> Result<(), Error> {
    let due_plans: BTreeSet<&str> = copies.iter().map(|d| d.plan.as_str()).collect();
    let copying: BTreeSet<&str> = doc
        .plans
        .iter()
        .filter(|(_, p)| p.rdb_copies.is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    if copying.is_empty() {
        return Ok(());
    }
    let all = elasticache::discover_all(&deps.ec, deps.settings.serverless_caches).await?;
    let (mut chosen, mut finishing) = (Vec::new(), Vec::new());
    for cache in &all {
        let dims = [(metrics::CACHE_DIMENSION, cache.id.as_str())];
        // Membership is judged (published, reported) when a rule is due; a tick that only finishes copies
        // already requested stays quiet about it, as an idle tick does.
        let judged = !due_plans.is_empty();
        match plan_of(doc, Resource::Cache, &cache.id, &cache.tags) {
            Ok(plan) => {
                if judged {
                    metrics.put(metrics::PLAN_MEMBERSHIP_ERROR, 0.0, StandardUnit::Count, &dims);
                }
                if plan.is_some_and(|p| due_plans.contains(p)) {
                    chosen.push(cache.id.clone());
                } else if plan.is_some_and(|p| copying.contains(p)) {
                    finishing.push(cache.id.clone());
                }
            }
            Err(_) if !judged => {}
            Err(e) => {
                tracing::error!(cache = %cache.id, error = %e, "cache's plan cannot be decided; left out");
                metrics.put(metrics::PLAN_MEMBERSHIP_ERROR, 1.0, StandardUnit::Count, &dims);
                summary.errors.push(e.to_string());
            }
        }
    }
    for (caches, pass) in [(chosen, Pass::Every), (finishing, Pass::FinishStarted)] {
        if caches.is_empty() {
            continue;
        }
        match crate::caches::handle_pass(deps, Some(caches), deadline, pass).await {
            Ok(copied) if copied.caches.is_empty() => {}
            Ok(mut copied) => {
                watch_copies(deps, doc, &all, &copied.caches, metrics).await;
                match &mut summary.caches {
                    Some(all) => {
                        all.caches.append(&mut copied.caches);
                        all.failed += copied.failed;
                        all.seconds += copied.seconds;
                    }
                    None => summary.caches = Some(copied),
                }
            }
            Err(e) => summary.errors.push(format!("copy-caches: {e}")),
        }
    }
    Ok(())
}

/// The content watch on each RDB copy this tick verified, right after its manifest (keys per database against
/// the cache's earlier copies). Never fails the tick: a failure is logged and published, and monitor retries.
async fn watch_copies(
    deps: &Deps,
    doc: &Document,
    all: &[lifeboat::caches::elasticache::Cache],
    copies: &[crate::caches::CacheCopyReport],
    metrics: &mut Metrics,
) {
    for copy in copies
        .iter()
        .filter(|c| c.outcome == crate::caches::CopyOutcome::Verified)
    {
        let Some(key) = &copy.manifest_key else {
            continue;
        };
        let rule = all
            .iter()
            .find(|c| c.id == copy.cache)
            .and_then(|c| plan_of(doc, Resource::Cache, &c.id, &c.tags).ok().flatten())
            .and_then(|p| doc.plans.get(p))
            .and_then(|p| p.watch.clone())
            .unwrap_or_default();
        let settings = &deps.settings;
        let watched = lifeboat::watch::run::run_and_report(
            &deps.s3,
            &settings.bucket,
            key,
            rule.thresholds(&copy.cache).as_ref(),
            settings.kms_key_id.as_deref(),
            metrics,
        )
        .await;
        // The comparison just written opens its anomaly; a failure is logged and never fails the tick.
        if let Some(w) = watched {
            crate::hold::open(deps, &w.watch).await;
        }
    }
}

/// After the `copy-caches` step: each cache it stepped without a failure (a copy that failed or could not be
/// stepped keeps the older ones, as a snapshot run that failed expires nothing) has its RDB copies past its plan's
/// `rdb_copies.keep_days` expired. The caches' plans are read again from their tags, as the step chose them.
async fn expire_rdb_copies(
    deps: &Deps,
    doc: &Document,
    summary: &mut TickSummary,
    metrics: &mut Metrics,
) -> Result<(), Error> {
    let stepped: Vec<String> = summary
        .caches
        .iter()
        .flat_map(|copied| &copied.caches)
        .filter(|r| !r.copy_failed() && !r.run_error())
        .map(|r| r.cache.clone())
        .collect();
    if stepped.is_empty() {
        return Ok(());
    }
    let all = elasticache::discover_all(&deps.ec, deps.settings.serverless_caches).await?;
    for cache in all.iter().filter(|c| stepped.contains(&c.id)) {
        let plan = plan_of(doc, Resource::Cache, &cache.id, &cache.tags).ok().flatten();
        let rule = plan.and_then(|p| doc.plans.get(p)?.rdb_copies.as_ref());
        if let Some(rule) = rule {
            expire(
                deps,
                Series::RdbCopy { cache: &cache.id },
                rule.keep_days,
                summary,
                metrics,
            )
            .await;
        }
    }
    Ok(())
}

/// What the rule needs of one manifest: an export's `Manifest` or an RDB copy's `RdbManifest`.
async fn read_copy(deps: &Deps, series: Series<'_>, key: &str) -> Result<Export, Error> {
    let bucket = &deps.settings.bucket;
    Ok(match series {
        Series::Export { .. } => {
            let m: Manifest = layout::get_json(&deps.s3, bucket, key).await?;
            Export {
                manifest_key: key.to_owned(),
                at: m.logical_time,
                stored: vec![m.stored.key],
                lock_until: m.stored.object_lock_until,
            }
        }
        Series::RdbCopy { .. } => {
            let m: RdbManifest = layout::get_json(&deps.s3, bucket, key).await?;
            Export {
                manifest_key: key.to_owned(),
                at: m.snapshot_time,
                stored: m.shards.into_iter().map(|s| s.key).collect(),
                lock_until: None,
            }
        }
    })
}

/// Logs the summary; anything failed fails the run, with the summary in the error.
fn conclude(mut summary: TickSummary) -> Result<TickSummary, Error> {
    summary.failed = summary.exports.iter().map(|s| s.failed).sum::<usize>() + summary.errors.len();
    let json = serde_json::to_string(&summary).unwrap_or_default();
    tracing::info!(failed = summary.failed, due = summary.due.len(), summary = %json, "plan tick finished");
    if summary.failed == 0 {
        return Ok(summary);
    }
    Err(Error::PartialFailure(format!(
        "plan tick at {}: {} failed; summary: {json}",
        summary.time, summary.failed
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use lifeboat::plans::document::parse;
    use lifeboat::rds::selection::DbKind;

    fn doc() -> Document {
        parse(
            br#"{"format": 1, "plans": {
              "product": {"databases": ["product-db", "gone-db"],
                "exports": {"critical": {"schedule": "0 */6 * * *", "keep_days": 7, "include": ["users"]}}},
              "staging": {"exports": {"full": {"schedule": "0 2 * * *", "keep_days": 14}}}}}"#,
        )
        .unwrap()
    }

    fn db(id: &str, kind: DbKind, plan: Option<&str>, cluster: Option<&str>) -> Database {
        Database {
            id: id.into(),
            kind,
            arn: format!("arn:aws:rds:us-east-1:123456789012:db:{id}"),
            engine: "postgres".into(),
            status: "available".into(),
            tags: plan
                .map(|p| [("lifeboat:plan".to_owned(), p.to_owned())].into())
                .unwrap_or_default(),
            cluster: cluster.map(str::to_owned),
            endpoint: None,
            aliases: Vec::new(),
            master_secret_arn: None,
        }
    }

    #[test]
    fn members_follow_tags_and_lists_and_undecided_ones_are_left_out() {
        let all = [
            db("staging-b", DbKind::Instance, Some("staging"), None),
            db("staging-a", DbKind::Cluster, Some("staging"), None),
            db("product-db", DbKind::Instance, None, None),
            // A cluster's instance tagged into a plan is its cluster's, never a member of its own.
            db("staging-a-1", DbKind::Instance, Some("staging"), Some("staging-a")),
            db("mistagged", DbKind::Instance, Some("prodcut"), None),
            db("two-plans", DbKind::Instance, Some("staging"), None),
            db("unplanned", DbKind::Instance, None, None),
        ];
        let mut d = doc();
        d.plans.get_mut("product").unwrap().databases.push("two-plans".into());
        let Members { by_plan, undecided } = members(&d, &all);
        let ids = |p: &str| by_plan[p].iter().map(|m| m.id.as_str()).collect::<Vec<_>>();
        assert_eq!(ids("product"), ["product-db"]);
        assert_eq!(
            ids("staging"),
            ["staging-b", "staging-a"],
            "instances first, as a selection sorts"
        );
        let undecided: Vec<&str> = undecided.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(undecided, ["mistagged", "two-plans"]);
        // Listed and not in the region (a cluster's instance of that name does not count): reported missing.
        assert_eq!(listed_missing(&d, "product", &all), ["gone-db"]);
        assert!(listed_missing(&d, "staging", &all).is_empty());
    }

    #[tokio::test]
    async fn without_a_plan_document_a_tick_is_refused_before_any_aws_call() {
        // No endpoint and no credentials: any AWS call would fail with another error than the one expected.
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let env = |n: &str| match n {
            "LIFEBOAT_BUCKET" => Some("backups".to_owned()),
            "LIFEBOAT_DB_SSLMODE" => Some("disable".to_owned()),
            _ => None,
        };
        let deps = Deps::new(&config, crate::settings::ExportSettings::from_env(&env).unwrap());
        let tick = serde_json::json!({"detail-type": "Scheduled Event", "time": "2026-12-13T01:00:00Z"});
        let err = crate::handler::invoke(&deps, tick, None).await.unwrap_err();
        assert!(matches!(err, Error::InvalidEvent(_)), "{err}");
        assert!(err.to_string().contains("LIFEBOAT_PLAN_DOCUMENT is not set"), "{err}");
    }

    #[test]
    fn an_export_rule_id_names_its_plans_profile() {
        let d = doc();
        let due = |plan: &str, rule: &str| Due {
            plan: plan.into(),
            rule: rule.into(),
            at: Utc::now(),
        };
        let (name, rule) = export_rule(&d, &due("product", "exports.critical")).unwrap();
        assert_eq!(
            (name, rule.keep_days, rule.profile().include),
            ("critical", 7, vec!["users".to_owned()])
        );
        assert!(
            export_rule(&d, &due("product", "exports.full")).is_none(),
            "staging's profile, not product's"
        );
        assert!(export_rule(&d, &due("product", "snapshots")).is_none());
        assert!(export_rule(&d, &due("nope", "exports.critical")).is_none());
    }
}
