//! One monitoring run: observe every selected database, publish the figures, keep the alarm sets in step with
//! the fleet (a de-selected database or cache keeps its alarms and is a finding until a person confirms:
//! `crate::deselection`), and delete expired restore-test resources.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::bucket::layout;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{
    Metrics, CACHE_DIMENSION, DB_DIMENSION, DESELECTED, DESELECTED_UNCONFIRMED, RESTORE_TEST_JANITOR_DELETED,
    RESTORE_TEST_JANITOR_FAILED,
};
use lifeboat::monitoring::caches::CACHE_ALARM_MARK;
use lifeboat::monitoring::monitor::{
    alarm_set_for, attention, deselection_note, expired_tests, gone_note, plan_alarms, restore_test_passed,
    verified_point, Facts, Presence, Thresholds, VERIFIED_RPO_REPORTS,
};
use lifeboat::plans::store::Loaded;
use lifeboat::rds::selection::{self, Database};
use lifeboat::watch::record::{CACHE, DATABASE};
use serde::Serialize;
use serde_json::Value;

use crate::alarms::{delete_alarms, existing_alarms, put_alarm};
use crate::caches::{self, CacheFleet};
use crate::deps::Deps;
use crate::event;
use crate::plan::PlanRun;

/// What monitor saw of one cache (the rule that computes it is `CacheFacts::view`).
pub use lifeboat::monitoring::caches::CacheView;
/// What monitor saw of one database (the rule that computes it is [`Facts::view`]).
pub use lifeboat::monitoring::monitor::DbView;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub databases: Vec<DbView>,
    /// What monitor saw of each selected cache (`lifeboat::monitoring::caches`).
    pub caches: Vec<CacheView>,
    pub alarms_kept: usize,
    pub alarms_deleted: Vec<String>,
    /// Databases and caches monitor watched that still exist and are no longer selected, as their alarms name
    /// them (`<db>`, `cache:<id>`): their alarms are kept until a person confirms (`confirm-deselection`).
    pub deselected: Vec<String>,
    /// Databases and caches monitor watched that no longer exist: their alarms were deleted in this run.
    pub gone: Vec<String>,
    pub janitor_deleted: Vec<String>,
    /// Each expired restore-test resource the janitor could not delete, and why (`RestoreTestJanitorFailed`).
    pub janitor_failed: Vec<String>,
    /// What a human must hear about now.
    pub attention: Vec<String>,
    /// Plan mode only: the plan version followed, each resource's plan, what is in no plan, in conflict or not
    /// backed up by policy, and the newer versions refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanRun>,
    /// Newest manifests whose content watch had not run (a missed trigger), watched by this run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watched: Vec<String>,
}

/// The newest restore-test report's time and whether it passed, and the newest recovery point a passed report
/// among the [`VERIFIED_RPO_REPORTS`] newest proved (the verified RPO). A report that cannot be read as one
/// counts as a failed test (and says so in the log): an unreadable report proves nothing.
async fn restore_tests(deps: &Deps, db: &str) -> Result<RestoreTests, Error> {
    let bucket_name = &deps.settings.bucket;
    let prefix = layout::restore_report_prefix(db);
    let keys = layout::list_keys(&deps.s3, bucket_name, &prefix, layout::REPORT_SUFFIX).await?;
    let mut timed: Vec<(DateTime<Utc>, &str)> = keys
        .iter()
        .filter_map(|k| Some((layout::time_in_key(k)?, k.as_str())))
        .collect();
    // Newest first; on equal times the greater key, as `layout::newest` picks.
    timed.sort_by(|a, b| b.cmp(a));
    let mut reports = Vec::new();
    for (_, key) in timed.iter().take(VERIFIED_RPO_REPORTS) {
        match layout::get_json::<Value>(&deps.s3, bucket_name, key).await {
            Ok(report) => reports.push(Some(report)),
            Err(e @ Error::Aws { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(db = %db, key = %key, error = %e, "restore-test report unreadable; counted as failed");
                reports.push(None);
            }
        }
    }
    let newest = timed
        .first()
        .map(|(t, _)| (*t, restore_test_passed(reports.first().and_then(Option::as_ref))));
    Ok(RestoreTests {
        newest,
        verified_point: verified_point(reports.iter().flatten()),
    })
}

/// What a database's restore-test reports say.
struct RestoreTests {
    newest: Option<(DateTime<Utc>, bool)>,
    verified_point: Option<DateTime<Utc>>,
}

/// Everything monitor reads about one database: its snapshots, its backup configuration, its newest export per
/// profile it is held to and its newest restore-test report.
async fn gather(deps: &Deps, db: &Database, thresholds: &Thresholds) -> Result<Facts, Error> {
    let s = &deps.settings;
    let snapshots = lifeboat::rds::snapshots::list_for_db(&deps.rds, &db.id, db.kind).await?;
    let backup = lifeboat::rds::instances::backup_details(&deps.rds, db.kind, &db.id).await?;
    let mut exports = BTreeMap::new();
    for profile in thresholds.export_max_age_s.keys() {
        if let Some((_, t)) = layout::newest_export(&deps.s3, &s.bucket, &db.id, Some(profile)).await? {
            exports.insert(profile.clone(), t);
        }
    }
    let tests = restore_tests(deps, &db.id).await?;
    Ok(Facts {
        newest_snapshot: snapshots
            .iter()
            .filter(|s| s.is_available())
            .filter_map(|s| s.created)
            .max(),
        unencrypted_snapshots: snapshots.iter().filter(|s| !s.encrypted).count(),
        exports,
        restore_test: tests.newest,
        verified_point: tests.verified_point,
        backup,
    })
}

/// What one run found over the chosen databases.
#[derive(Default)]
struct Fleet {
    views: Vec<DbView>,
    notes: Vec<String>,
    wanted: BTreeSet<String>,
    failures: Vec<String>,
}

/// Observes every watched database and keeps its alarm set (one alarm per threshold it is held to) in place. A
/// database that cannot be observed is reported at the end; its alarms are still put (missing data breaches).
async fn observe_fleet(
    deps: &Deps,
    targets: &[(&Database, Thresholds)],
    now: DateTime<Utc>,
    metrics: &mut Metrics,
) -> Result<Fleet, Error> {
    let mut fleet = Fleet::default();
    for (db, thresholds) in targets {
        match gather(deps, db, thresholds).await {
            Ok(facts) => {
                facts.metrics(&db.id, now, metrics);
                fleet.notes.extend(attention(&db.id, &facts.observed(now)));
                fleet.views.push(facts.view(&db.id, now));
            }
            Err(e) => fleet.failures.push(format!("{}: {e}", db.id)),
        }
        // Content watch: a database whose exports are compared has its anomalies opened and counted.
        if !thresholds.export_max_age_s.is_empty() {
            if let Err(e) = crate::anomalies::watch(deps, DATABASE, &db.id, metrics, &mut fleet.notes).await {
                fleet.failures.push(format!("{} content watch: {e}", db.id));
            }
        }
        for spec in alarm_set_for(&deps.settings.alarm_scope, &db.id, thresholds) {
            put_alarm(deps, (DB_DIMENSION, &db.id), &spec).await?;
            fleet.wanted.insert(spec.name);
        }
    }
    Ok(fleet)
}

/// A run that could not observe every database and cache fails as a whole (after publishing what it saw), naming
/// each one it could not.
fn partial_failure(failures: &[String]) -> Result<(), Error> {
    if failures.is_empty() {
        return Ok(());
    }
    Err(Error::PartialFailure(format!(
        "could not observe {} database(s) or cache(s): {}",
        failures.len(),
        failures.join("; ")
    )))
}

/// The caches' content-watch catch-up, each cache it watched then having its anomalies opened in this run rather
/// than the next (its count is published a second time, and the content alarm reads the maximum).
async fn watch_caches(
    deps: &Deps,
    loaded: Option<&lifeboat::plans::store::Loaded>,
    caches_seen: (
        &[lifeboat::caches::elasticache::Cache],
        &[lifeboat::monitoring::caches::CacheView],
    ),
    metrics: &mut Metrics,
    (notes, failures): (&mut Vec<String>, &mut Vec<String>),
) -> Vec<String> {
    let mut watched = Vec::new();
    for (cache, key) in crate::watch::catch_up_caches(deps, loaded, caches_seen, metrics).await {
        if let Err(e) = crate::anomalies::watch(deps, CACHE, &cache, metrics, notes).await {
            failures.push(format!("cache {cache} content watch: {e}"));
        }
        watched.push(key);
    }
    watched
}

/// A subject as alarm names spell it (`<db>` or `cache:<id>`): whether it is a cache, and its identifier.
fn subject_of(who: &str) -> (bool, &str) {
    match who.strip_prefix(CACHE_ALARM_MARK) {
        Some(cache) => (true, cache),
        None => (false, who),
    }
}

/// What the run did with the alarms no wanted set contains.
struct AlarmChanges {
    deleted: Vec<String>,
    deselected: Vec<String>,
    gone: Vec<String>,
}

/// Applies [`plan_alarms`]: deletes dropped checks and the alarms of what is gone; keeps a de-selected subject's
/// alarms, publishes `Deselected` for it and `DeselectedUnconfirmed` for the run, and says it in `notes`. When
/// the caches could not be listed (`caches` is `None`), nothing is concluded about a cache.
async fn reconcile_alarms(
    deps: &Deps,
    wanted: &BTreeSet<String>,
    databases: &[Database],
    caches: Option<&[lifeboat::caches::elasticache::Cache]>,
    metrics: &mut Metrics,
    notes: &mut Vec<String>,
) -> Result<AlarmChanges, Error> {
    let existing = existing_alarms(deps).await?;
    let presence = |who: &str| match subject_of(who) {
        (true, id) => match caches {
            None => Presence::Unknown,
            Some(all) if all.iter().any(|c| c.id == id) => Presence::Exists,
            Some(_) => Presence::Gone,
        },
        (false, id) if databases.iter().any(|d| d.id == id) => Presence::Exists,
        (false, _) => Presence::Gone,
    };
    let plan = plan_alarms(&deps.settings.alarm_scope, &existing, wanted, presence);
    for (who, alarms) in &plan.deselected {
        let (cache, id) = subject_of(who);
        let (what, key, dimension) = if cache {
            (format!("cache {id}"), "cache", CACHE_DIMENSION)
        } else {
            (id.to_owned(), "database", DB_DIMENSION)
        };
        tracing::warn!(subject = %who, alarms = alarms.len(), "de-selected: its alarms are kept until a person confirms");
        notes.push(deselection_note(&what, key, id));
        metrics.put(DESELECTED, 1.0, StandardUnit::Count, &[(dimension, id)]);
    }
    metrics.put(
        DESELECTED_UNCONFIRMED,
        plan.deselected.len() as f64,
        StandardUnit::Count,
        &[],
    );
    for who in &plan.gone {
        let (cache, id) = subject_of(who);
        let what = if cache { format!("cache {id}") } else { id.to_owned() };
        tracing::warn!(subject = %who, "gone: its alarms are deleted");
        notes.push(gone_note(&what));
    }
    let deleted: Vec<String> = plan.delete.iter().map(|n| (*n).to_owned()).collect();
    delete_alarms(deps, &deleted).await?;
    Ok(AlarmChanges {
        deleted,
        deselected: plan.deselected.keys().map(|s| (*s).to_owned()).collect(),
        gone: plan.gone.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// What the janitor did: what it deleted, and each resource it could not delete (or list), with why.
#[derive(Debug, Default)]
struct Janitor {
    deleted: Vec<String>,
    failed: Vec<String>,
}

impl Janitor {
    fn metrics(&self, out: &mut Metrics) {
        let deleted = self.deleted.len() as f64;
        out.put(RESTORE_TEST_JANITOR_DELETED, deleted, StandardUnit::Count, &[]);
        let failed = self.failed.len() as f64;
        out.put(RESTORE_TEST_JANITOR_FAILED, failed, StandardUnit::Count, &[]);
    }

    fn report_failure(&mut self, resource: &str, error: &dyn std::fmt::Display) {
        tracing::error!(resource = %resource, error = %error, "janitor: could not delete an expired restore-test resource");
        self.failed.push(format!("{resource}: {error}"));
    }
}

/// Restore-test instances, clusters and cache groups past their expiry tag, deleted through the one tag-checked
/// cleanup that the restore function uses too. A failed deletion is logged, reported in the result and counted in
/// `RestoreTestJanitorFailed`, and the janitor goes on with the rest; the next run tries again.
async fn janitor(deps: &Deps, all: &[Database], now: DateTime<Utc>) -> Janitor {
    let mut out = Janitor::default();
    for d in expired_tests(all, now) {
        match lifeboat::rds::instances::delete_test(&deps.rds, d.kind, d.id, d.member).await {
            Ok(_) => {
                tracing::warn!(resource = %d.id, "deleted an expired restore-test resource");
                out.deleted.push(d.id.to_owned());
            }
            Err(e) => out.report_failure(d.id, &e),
        }
    }
    match lifeboat::caches::restore::sweep_expired(&deps.ec, now).await {
        Ok(sweep) => {
            for g in &sweep.deleted {
                tracing::warn!(resource = %g, "deleted an expired cache restore-test group");
            }
            out.deleted.extend(sweep.deleted);
            for (g, e) in &sweep.failed {
                out.report_failure(g, e);
            }
        }
        Err(e) => out.report_failure("cache restore-test groups", &e),
    }
    expired_test_secrets(deps, now, &mut out).await;
    out
}

/// The password secrets of restore tests whose cleanup never ran, once their expiry has passed.
async fn expired_test_secrets(deps: &Deps, now: DateTime<Utc>, out: &mut Janitor) {
    let names = match lifeboat::rds::test_secrets::expired(&deps.sm, now).await {
        Ok(names) => names,
        Err(e) => return out.report_failure("restore-test secrets", &e),
    };
    for name in names {
        match lifeboat::rds::test_secrets::delete(&deps.sm, &name).await {
            Ok(_) => {
                tracing::warn!(secret = %name, "deleted an expired restore-test secret");
                out.deleted.push(name);
            }
            Err(e) => out.report_failure(&name, &e),
        }
    }
}

/// The manual-snapshot quota warning: the same rule (`lifeboat::rds::quota`) that `snapshot` reports after each run.
async fn quota_note(deps: &Deps) -> Result<Option<String>, Error> {
    let s = &deps.settings;
    let manual = lifeboat::rds::snapshots::list_manual(&deps.rds).await?.len();
    let region = deps.rds.config().region().map(|r| r.to_string()).unwrap_or_default();
    let q = lifeboat::rds::quota::quota_report(&region, manual, s.snapshot_quota, s.quota_warn_percent);
    Ok(q.warning.then(|| {
        format!(
            "manual snapshots: {manual} of the quota of {} ({:.0}%)",
            q.quota, q.used_percent
        )
    }))
}

/// The Lambda entry: an evidence report when the event asks for one, else the monitoring run, both measured
/// against the moment it runs.
pub async fn run(deps: &Deps, payload: Value) -> Result<Value, Error> {
    run_at(deps, payload, Utc::now()).await
}

/// [`run`] measured against `now`: the clock is an argument, never a setting, so a deployed function always
/// measures against its own clock ([`run`]) and a test may evaluate a world built at another time (the demo's
/// world a year ahead, `tests/it/demo.rs`) without any switch a deployment could set.
pub async fn run_at(deps: &Deps, payload: Value, now: DateTime<Utc>) -> Result<Value, Error> {
    let json = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| Error::PartialFailure(format!("the run's summary could not be written as JSON: {e}")))
    };
    match event::parse(&payload).request {
        event::Request::Monitor => json(serde_json::to_value(handle_at(deps, payload, now).await?)),
        event::Request::Evidence { period } => json(serde_json::to_value(
            crate::evidence::report_at(deps, period.as_deref(), now).await?,
        )),
        event::Request::ConfirmDeselection(c) => {
            json(serde_json::to_value(crate::deselection::confirm(deps, &c).await?))
        }
        event::Request::PlanShow { resource } => crate::plan::show(deps, &resource, now).await,
        event::Request::Acknowledge(a) => json(serde_json::to_value(crate::anomalies::acknowledge(deps, &a).await?)),
        event::Request::Invalid(reason) => Err(Error::InvalidEvent(reason)),
        event::Request::Unknown(action) => Err(Error::InvalidEvent(format!(
            "unknown action {action}: send {{}} for a monitoring run, {{\"action\": \"{}\", \"period\": \"2026-10\"}} \
             for an evidence report, {{\"action\": \"{}\", \"database\": \"<id>\", \"by\": \"<who>\"}}, or \
             {{\"action\": \"{}\", \"resource\": \"<id>\"}}, or {{\"action\": \"{}\", \"resource\": \"<id>\", \
             \"why\": \"...\", \"by\": \"<who>\"}}",
            event::EVIDENCE_REPORT,
            event::CONFIRM_DESELECTION,
            event::PLAN_SHOW,
            event::ACKNOWLEDGE
        ))),
    }
}

/// Every cache and what was seen of the watched ones (the selector's, or in plan mode those that follow a plan,
/// placed into `run`). A failed discovery does not stop the databases' run: it is reported as a failure at the
/// end, and the caches' alarms, finding no data, fire.
async fn observe_caches(
    deps: &Deps,
    now: DateTime<Utc>,
    metrics: &mut Metrics,
    plan: Option<(&Loaded, &mut PlanRun)>,
) -> Result<(Option<Vec<lifeboat::caches::elasticache::Cache>>, CacheFleet), Error> {
    match lifeboat::caches::elasticache::discover_all(&deps.ec, deps.settings.serverless_caches).await {
        Ok(all) => {
            let targets = match plan {
                None => caches::legacy_targets(deps, &all),
                Some((loaded, run)) => run.place_caches(loaded, &all),
            };
            let fleet = caches::observe(deps, &targets, now, metrics).await?;
            Ok((Some(all), fleet))
        }
        Err(e) => Ok((
            None,
            CacheFleet {
                failures: vec![format!("caches: {e}")],
                ..CacheFleet::default()
            },
        )),
    }
}

/// The databases a run watches and what each is held to: the selector's under the one policy (and the names in
/// `LIFEBOAT_DATABASES` that do not exist), or in plan mode those that follow a plan.
fn database_targets<'a>(
    deps: &Deps,
    all: &'a [Database],
    plan: Option<(&Loaded, &mut PlanRun)>,
) -> (Vec<(&'a Database, Thresholds)>, Vec<String>) {
    let s = &deps.settings;
    match plan {
        Some((loaded, run)) => (run.place_databases(loaded, all), Vec::new()),
        None => {
            let chosen = selection::select(all, &s.common.selector);
            let targets = chosen
                .databases
                .iter()
                .filter_map(|c| all.iter().find(|d| d.id == c.id && d.kind == c.kind))
                .map(|d| (d, s.policy.thresholds()))
                .collect();
            (targets, chosen.missing)
        }
    }
}

/// The names in `LIFEBOAT_DATABASES` that are neither a database nor a cache.
fn missing_notes(missing: &[String], caches: Option<&[lifeboat::caches::elasticache::Cache]>) -> Vec<String> {
    missing
        .iter()
        .filter(|m| !caches.iter().copied().flatten().any(|c| &c.id == *m))
        .map(|m| format!("{m}: named in LIFEBOAT_DATABASES but does not exist"))
        .collect()
}

/// Parse the event, observe the chosen databases (metrics and alarm sets), delete the alarms of databases that
/// are gone and the expired restore tests, warn about the quota, publish, report.
pub async fn handle(deps: &Deps, payload: Value) -> Result<Summary, Error> {
    handle_at(deps, payload, Utc::now()).await
}

/// [`handle`] measured against `now` (see [`run_at`]).
pub async fn handle_at(deps: &Deps, payload: Value, now: DateTime<Utc>) -> Result<Summary, Error> {
    let trigger = event::parse(&payload);
    tracing::info!(source = ?trigger.source, scheduled_at = ?trigger.time, "monitor run");
    let s = &deps.settings;
    let mut plan = crate::plan::start(deps, now).await?;
    let all = selection::discover(&deps.rds).await?;
    let mut metrics = Metrics::new();
    let (targets, missing) = database_targets(deps, &all, plan.as_mut().map(|(l, r)| (&*l, r)));
    let loaded = plan.as_ref().map(|(l, _)| l);
    let mut watched = crate::watch::catch_up_databases(deps, loaded, &targets, &mut metrics).await;
    let Fleet {
        views,
        mut notes,
        mut wanted,
        mut failures,
    } = observe_fleet(deps, &targets, now, &mut metrics).await?;
    let (all_caches, cache_fleet) =
        observe_caches(deps, now, &mut metrics, plan.as_mut().map(|(l, r)| (&*l, r))).await?;
    notes.extend(cache_fleet.notes);
    wanted.extend(cache_fleet.wanted);
    failures.extend(cache_fleet.failures);
    notes.extend(missing_notes(&missing, all_caches.as_deref()));
    let caches_seen = (all_caches.as_deref().unwrap_or_default(), cache_fleet.views.as_slice());
    let loaded = plan.as_ref().map(|(l, _)| l);
    watched.extend(watch_caches(deps, loaded, caches_seen, &mut metrics, (&mut notes, &mut failures)).await);
    let mut plan_run = None;
    if let Some((loaded, mut run)) = plan {
        run.check_rotations(deps, &loaded, &all, now, &mut metrics).await;
        run.metrics(&mut metrics);
        notes.extend(run.notes());
        plan_run = Some(run);
    }
    let changes = reconcile_alarms(deps, &wanted, &all, all_caches.as_deref(), &mut metrics, &mut notes).await?;
    let janitor = janitor(deps, &all, now).await;
    janitor.metrics(&mut metrics);
    notes.extend(quota_note(deps).await?);
    metrics.publish(&deps.cw, &s.common.metrics_namespace, now).await?;
    for note in &notes {
        tracing::warn!(finding = %note, "needs attention");
    }
    partial_failure(&failures)?;
    Ok(Summary {
        databases: views,
        caches: cache_fleet.views,
        alarms_kept: wanted.len(),
        alarms_deleted: changes.deleted,
        deselected: changes.deselected,
        gone: changes.gone,
        janitor_deleted: janitor.deleted,
        janitor_failed: janitor.failed,
        attention: notes,
        plan: plan_run,
        watched,
    })
}
