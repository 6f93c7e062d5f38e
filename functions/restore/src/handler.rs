//! Dispatches the requests: one step of a restore test per invocation (the state machine carries the state), or
//! a console restore. Each step parses, gathers facts through the adapters, asks `lifeboat::rds::restore` what they
//! mean, acts and reports; it decides nothing itself.
//!
//! A request of the other entry (`LIFEBOAT_RESTORE_ENTRY`) is refused before anything is read: the console's
//! function never runs a step, the state machine's never a console restore. [`steps`] and [`console`] each serve
//! one entry, and each binary calls only its own, so a binary holds no code of the other entry's requests. The steps after start take only the
//! database and request time from the state (`crate::restored` finds the rest in AWS), and the report's verdict
//! comes from the verify step's own record in the bucket.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::rds::instances::{self as rds, Deleted, PointInTimeTest, RestoreRequest};
use lifeboat::rds::recovery::{self, Choice, Point};
use lifeboat::rds::restore::{self as rules, test_identifier, Check};
use lifeboat::rds::selection::{self, Database, DbKind, Selector};
use serde_json::{json, Value};

use crate::deps::{age_identity, error_text, find, put_report, Deps};
use crate::error::{poll_verdict, Ready, RestoreError};
use crate::event::{self, Request, Target, TestState};
use crate::password;
use crate::report;
use crate::restored::{self, RestoredDb};
use crate::settings::Entry;
use crate::verify;

fn to_value(test: &TestState) -> Result<Value, RestoreError> {
    serde_json::to_value(test).map_err(RestoreError::State)
}

/// The request, parsed and refused when it is not `entry`'s.
fn accept(entry: Entry, payload: Value) -> Result<Request, RestoreError> {
    let request = event::parse(payload)?;
    if request.entry() != entry {
        let e = other_entry(&request, entry);
        tracing::error!(error = %e, "request of the other entry refused");
        return Err(e);
    }
    Ok(request)
}

/// Handles a request of either entry, as the deployment's `LIFEBOAT_RESTORE_ENTRY` says: what the tests call.
/// The binaries call [`steps`] or [`console`] alone, so that each holds only its own entry's code.
pub async fn handle(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    match deps.settings.entry {
        Entry::Steps => steps(deps, payload, deadline).await,
        Entry::Console => console(deps, payload, deadline).await,
    }
}

/// A request of the other entry that got past [`accept`]: refused, never served.
fn other_entry(request: &Request, entry: Entry) -> RestoreError {
    RestoreError::WrongEntry {
        action: request.action(),
        entry,
        want: request.entry(),
    }
}

/// Logs how a request ended.
fn finished(started: Instant, result: Result<Value, RestoreError>) -> Result<Value, RestoreError> {
    match &result {
        Ok(_) => tracing::info!(seconds = started.elapsed().as_secs_f64(), "restore step finished"),
        Err(e) => tracing::error!(error = %e, "restore step failed"),
    }
    result
}

/// A step of a restore test (the state machine's function).
pub async fn steps(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    let started = Instant::now();
    let request = accept(Entry::Steps, payload)?;
    // The match is inline (not a function of its own) so the step's future holds no second copy of the request.
    let result = match request {
        Request::Plan {
            time,
            plan: Some(name),
            rule: Some(rule),
            ..
        } => crate::plan_tests::plan(deps, time, &name, &rule).await,
        Request::Plan { time, databases, .. } => plan(deps, time, databases).await,
        Request::Start {
            database,
            snapshot,
            requested_at,
        } => {
            start(
                deps,
                &database,
                snapshot.as_deref(),
                requested_at.unwrap_or_else(Utc::now),
            )
            .await
        }
        Request::ExportStart {
            database,
            requested_at,
            export,
        } => crate::export_tests::start_step(deps, database, export, requested_at).await,
        Request::ExportVerify { test } => crate::export_tests::verify_step(deps, test, deadline).await,
        Request::Poll { test } => poll(deps, test).await,
        Request::Prepare { test } => prepare(deps, test).await,
        Request::Verify { test } => verify_step(deps, test, deadline).await,
        Request::Report { test, error } => report_step(deps, test, error).await,
        Request::Cleanup { test } => cleanup(deps, test).await,
        Request::Summary { results } => summary(&results),
        Request::CacheStart {
            cache,
            snapshot,
            requested_at,
        } => crate::caches::start(deps, &cache, snapshot.as_deref(), requested_at).await,
        Request::CachePoll { test } => crate::caches::poll(deps, test).await,
        Request::CacheVerify { test } => crate::caches::verify(deps, test).await,
        Request::CacheReport { test, error } => crate::caches::report(deps, test, error).await,
        Request::CacheCleanup { test } => crate::caches::cleanup(deps, test).await,
        ref other @ (Request::Restore(_)
        | Request::RestoreExport(_)
        | Request::Recover(_)
        | Request::RestoreCache(_)
        | Request::Refresh(_)
        | Request::RefreshTick { .. }) => Err(other_entry(other, Entry::Steps)),
    };
    finished(started, result)
}

/// A console restore (the console's function).
pub async fn console(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    let started = Instant::now();
    let request = accept(Entry::Console, payload)?;
    let result = match request {
        Request::Restore(m) => crate::console::restore(deps, m, deadline).await,
        Request::RestoreExport(r) => crate::from_export::run(deps, r, deadline).await,
        Request::Recover(r) => crate::recover::run(deps, r, deadline).await,
        Request::RestoreCache(r) => crate::cache_console::restore(deps, r).await,
        Request::Refresh(r) => crate::refresh::run(deps, r, deadline).await,
        Request::RefreshTick { time } => crate::refresh::tick(deps, time, deadline).await,
        ref other => Err(other_entry(other, Entry::Console)),
    };
    finished(started, result)
}

/// The tags of the instance or cluster of that identifier, `None` when there is none.
async fn existing_tags(deps: &Deps, kind: DbKind, id: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
    Ok(match kind {
        DbKind::Instance => rds::instance(&deps.rds, id).await?.map(|i| i.tags),
        DbKind::Cluster => rds::cluster(&deps.rds, id).await?.map(|c| c.tags),
    })
}

/// The databases a scheduled run tests: the selection, or the list in the event.
async fn plan(deps: &Deps, time: DateTime<Utc>, databases: Option<Vec<String>>) -> Result<Value, RestoreError> {
    let all = selection::discover(&deps.rds).await?;
    let selector = match databases {
        Some(list) => Selector {
            databases: list,
            tag: None,
        },
        None => deps.settings.common.selector.clone(),
    };
    let chosen = selection::select(&all, &selector);
    let (cache_tests, caches) = crate::caches::plan(deps, &selector, time, &chosen.missing).await;
    // A listed name that is a cache is not missing.
    let missing: Vec<String> = chosen.missing.into_iter().filter(|m| !caches.contains(m)).collect();
    if !missing.is_empty() {
        tracing::warn!(missing = ?missing, "databases or caches named for restore tests do not exist");
    }
    let mut tests: Vec<Value> = chosen
        .databases
        .iter()
        .map(|d| json!({"database": d.id, "requested_at": time}))
        .collect();
    tests.extend(cache_tests);
    Ok(json!({"time": time, "tests": tests, "missing": missing}))
}

/// The master user of the source, which the restored copy keeps.
async fn master_user(deps: &Deps, db: &Database) -> Result<String, Error> {
    Ok(match db.kind {
        DbKind::Instance => rds::instance(&deps.rds, &db.id).await?.map(|i| i.master_user),
        DbKind::Cluster => rds::cluster(&deps.rds, &db.id).await?.map(|c| c.master_user),
    }
    .unwrap_or_default())
}

/// Restores the chosen snapshot or point in time into the restore test's instance (or cluster plus instance),
/// unless a redelivered start already did: an existing resource of that name is reused only when it is a restore
/// test of the same database.
async fn ensure_restored(
    deps: &Deps,
    db: &Database,
    choice: &Choice,
    restored_id: &str,
    restored_instance: Option<&str>,
) -> Result<(), RestoreError> {
    if let Some(tags) = existing_tags(deps, db.kind, restored_id).await? {
        return rules::may_reuse(&tags, &db.id).map_err(|owner| RestoreError::NameTaken {
            id: restored_id.to_owned(),
            database: db.id.clone(),
            owner,
        });
    }
    let s = &deps.settings;
    let placement = rules::test_placement(
        s.subnet_group.as_deref(),
        s.security_group.as_deref(),
        &s.instance_class,
    );
    let mut tags = rds::test_tags(&db.id, rules::test_expiry(Utc::now(), s.expiry_hours));
    // What the later steps read back to know what was restored (never from the state they are handed).
    for (key, value) in [
        (rules::RESTORED_FROM, choice.restored_from()),
        (recovery::RECOVERY_CHOICE, choice.describe()),
    ] {
        tags.push(aws_sdk_rds::types::Tag::builder().key(key).value(value).build());
    }
    match &choice.point {
        Point::Snapshot { id, .. } => {
            let request = RestoreRequest {
                kind: db.kind,
                snapshot_id: id,
                engine: &db.engine,
                target_id: restored_id,
                cluster_instance: restored_instance,
                placement: &placement,
                tags: &tags,
            };
            rds::restore_snapshot(&deps.rds, &request).await?;
        }
        Point::Time(at) => {
            let request = PointInTimeTest {
                kind: db.kind,
                source_id: &db.id,
                engine: &db.engine,
                target_id: restored_id,
                cluster_instance: restored_instance,
                at: *at,
                placement: &placement,
                tags: &tags,
            };
            rds::restore_test_to_time(&deps.rds, &request).await?;
        }
    }
    Ok(())
}

/// Restores the chosen recovery point (`crate::recovery`: the plan rule's snapshot or point in time) into an
/// isolated, tagged instance (or cluster plus instance). A redelivered start finds its instance already there and
/// goes on with it, but only when that is a restore test of the same database.
async fn start(
    deps: &Deps,
    database: &str,
    snapshot: Option<&str>,
    requested_at: DateTime<Utc>,
) -> Result<Value, RestoreError> {
    let t = Instant::now();
    let db = find(deps, database).await?;
    let snapshots = lifeboat::rds::snapshots::list_for_db(&deps.rds, &db.id, db.kind).await?;
    let chosen = crate::recovery::choose(deps, &db, &snapshots, snapshot, requested_at).await?;
    let restored_id = test_identifier(&db.id, requested_at);
    let restored_instance = rules::test_member(db.kind, &restored_id);
    let master_user = master_user(deps, &db).await?;
    ensure_restored(deps, &db, &chosen, &restored_id, restored_instance.as_deref()).await?;
    let choice = chosen.describe();
    tracing::info!(db = %db.id, from = %chosen.restored_from(), choice = %choice, restored = %restored_id, "restore test started");
    let mut test = TestState {
        database: db.id.clone(),
        kind: Some(db.kind),
        restored_id: Some(restored_id),
        restored_instance,
        snapshot_id: match &chosen.point {
            Point::Snapshot { id, .. } => Some(id.clone()),
            Point::Time(_) => None,
        },
        snapshot_time: Some(chosen.time()),
        requested_at,
        master_user: Some(master_user),
        polls: 0,
        status: Some("restoring".into()),
        password_secret: None,
        timings: Default::default(),
        checks: vec![],
        verified_at: None,
        passed: None,
        report_key: None,
        export: None,
        recovery_choice: Some(choice),
    };
    test.timings.insert("start".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

/// Records in the state (for people) what the step found in RDS.
fn note(test: &mut TestState, r: &RestoredDb) {
    test.kind = Some(r.kind);
    test.restored_id = Some(r.id.clone());
    test.restored_instance.clone_from(&r.member);
    test.master_user = Some(r.master_user.clone());
}

/// One look at the restored instance (found by its derived name and tags): `status` becomes `available` when it
/// is, and a restore that takes longer than the configured timeout (or lands in a failed state) fails the test.
async fn poll(deps: &Deps, mut test: TestState) -> Result<Value, RestoreError> {
    let r = restored::existing(deps, &test).await?;
    test.polls += 1;
    let now = Utc::now();
    let minutes = deps.settings.timeout_minutes;
    let progress = rules::progress(&r.status, test.requested_at, now, minutes);
    let id = r.member.clone().unwrap_or_else(|| r.id.clone());
    let verdict = poll_verdict(id, &r.status, progress, r.endpoint.clone(), test.requested_at, minutes)?;
    if let Some(Ready { seconds, .. }) = verdict {
        test.timings.insert("restore".into(), seconds);
    }
    note(&mut test, &r);
    test.status = Some(r.status);
    to_value(&test)
}

/// Refuses a test from an export in a snapshot test's step: its instance is set up by export_start and checked
/// by export_verify (`crate::export_tests`).
fn not_from_export(test: &TestState) -> Result<(), RestoreError> {
    match test.export {
        Some(_) => Err(RestoreError::OutOfOrder(
            "prepare and verify are a snapshot test's steps; a test from an export is checked by export_verify",
        )),
        None => Ok(()),
    }
}

/// A fresh master password on the restored database (found by its derived name and tags), kept in the test's
/// own secret: only the secret's ARN goes into the execution's state.
async fn prepare(deps: &Deps, mut test: TestState) -> Result<Value, RestoreError> {
    let t = Instant::now();
    not_from_export(&test)?;
    let r = restored::existing(deps, &test).await?;
    if r.endpoint.is_none() || r.status != "available" {
        return Err(RestoreError::OutOfOrder(
            "prepare before the restored instance was available (no endpoint yet)",
        ));
    }
    let password = password::random(&deps.sm).await?;
    let secret = rules::test_secret_name(&r.id);
    let owner = password::Owner {
        name: &secret,
        restored_id: &r.id,
        database: &test.database,
        expires: rules::test_expiry(Utc::now(), deps.settings.expiry_hours),
    };
    let arn = password::store(&deps.sm, &owner, &r.master_user, &password).await?;
    rds::set_master_password(&deps.rds, r.kind, &r.id, &password).await?;
    note(&mut test, &r);
    test.password_secret = Some(arn);
    test.status = Some("prepared".into());
    test.timings.insert("prepare".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

/// What the restored resource's `lifeboat:restored-from` tag names: a snapshot (when RDS says it was taken), or a
/// point in time (`point-in-time:<RFC 3339>`: the snapshot is then `None`). `Err` says why it is unknown (a
/// failed check).
async fn restored_snapshot(
    deps: &Deps,
    test: &TestState,
    r: &RestoredDb,
) -> Result<(Option<String>, DateTime<Utc>), String> {
    let Some(id) = r.tags.get(rules::RESTORED_FROM) else {
        return Err(format!("{} carries no {} tag", r.id, rules::RESTORED_FROM));
    };
    if let Some(at) = recovery::point_in_time_of(id) {
        return Ok((None, at));
    }
    let snapshots = lifeboat::rds::snapshots::list_for_db(&deps.rds, &test.database, r.kind)
        .await
        .map_err(|e| e.to_string())?;
    let created = snapshots.iter().find(|s| &s.id == id).and_then(|s| s.created);
    created.map(|t| (Some(id.clone()), t)).ok_or_else(|| {
        format!(
            "snapshot {id} of {} (or its creation time) is not in RDS",
            test.database
        )
    })
}

/// How far a connected point-in-time test's data restored to `at` reaches ([`verify::reach`], in the export's
/// database, else `postgres`), its heartbeat's check added to `checks`; `None` for any other test.
async fn reach(
    deps: &Deps,
    database: &str,
    target: &Target,
    manifest: Option<&lifeboat::bucket::manifest::Manifest>,
    at: Option<DateTime<Utc>>,
    checks: &mut Vec<Check>,
) -> Option<rules::Reach> {
    let at = at?;
    let dbname = manifest.map_or("postgres", |m| m.source.dbname.as_str());
    let heartbeat = heartbeat_of(deps, database).await;
    let (reach, check) = verify::reach(target, &deps.settings.tls, heartbeat, dbname, at).await;
    checks.extend(check);
    Some(reach)
}

/// The heartbeat the source database's owner named in its `lifeboat:heartbeat` tag (read from RDS, never from the
/// state): `None` when there is none, `Some(Err)` when the tag cannot be read as one (a failed check says so).
async fn heartbeat_of(deps: &Deps, database: &str) -> Option<Result<recovery::Heartbeat, String>> {
    let db = find(deps, database).await.ok()?;
    let value = db.tags.get(recovery::HEARTBEAT)?;
    Some(recovery::parse_heartbeat(value).map_err(|e| format!("{} tag: {e}", recovery::HEARTBEAT)))
}

/// Where verify connects: the endpoint RDS describes for the test's own instance (once available), as its master
/// user, with the password in the test's own secret.
async fn target_of(deps: &Deps, test: &TestState, r: &RestoredDb) -> Result<Target, RestoreError> {
    let login = r
        .login(
            deps,
            test,
            "verify before the restored instance was available (no endpoint yet)",
        )
        .await?;
    Ok(Target {
        host: login.host,
        port: login.port,
        user: login.user,
        password: login.password,
        dbname: "postgres".into(),
    })
}

/// Connects to the restored database at the endpoint RDS gives (as its master user, with the test's own
/// password secret), checks the data against the latest export, restores that export into a scratch database,
/// and records what it ran in the bucket for the report step.
async fn verify_step(deps: &Deps, mut test: TestState, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    let t = Instant::now();
    not_from_export(&test)?;
    let s = &deps.settings;
    let r = restored::existing(deps, &test).await?;
    let target = target_of(deps, &test, &r).await?;
    let snapshot = restored_snapshot(deps, &test, &r).await;
    let latest = lifeboat::bucket::layout::latest_manifest(&deps.s3, &s.bucket, &test.database, &s.profile).await?;
    let manifest = latest.as_ref().map(|(_, m)| m);
    let mut checks = verify::database_checks(&target, &s.tls, manifest, s.row_tolerance_percent, &s.checks).await;
    let connected = rules::connected(&checks);
    if let Err(reason) = &snapshot {
        checks.push(Check::new("restored snapshot known", false, reason.clone()));
    }
    match (&latest, connected) {
        (Some((key, m)), true) => {
            checks.push(Check::new(
                "latest export",
                true,
                format!("{key} ({})", m.logical_time.to_rfc3339()),
            ));
            checks.extend(scratch_checks(deps, &test, &target, m, deadline).await?);
        }
        (None, _) => checks.push(Check::skipped(
            rules::scratch_check_name(None),
            format!("no complete `{}` export of {}", s.profile, test.database),
        )),
        (Some(_), false) => {}
    }
    let (snapshot_id, snapshot_time) = snapshot.ok().unzip();
    let snapshot_id = snapshot_id.flatten();
    // A point-in-time test (a known time, no snapshot): how far its data reaches.
    let point_in_time = snapshot_time.filter(|_| snapshot_id.is_none());
    let verified_time = point_in_time.filter(|_| connected);
    let data_reaches = reach(deps, &test.database, &target, manifest, verified_time, &mut checks).await;
    let record = rules::VerifyRecord {
        format_version: 1,
        database: test.database.clone(),
        kind: r.kind,
        restored_id: r.id.clone(),
        snapshot_id,
        snapshot_time,
        requested_at: test.requested_at,
        verified_at: connected.then(Utc::now),
        checks,
        export: None,
        recovery_choice: r.tags.get(recovery::RECOVERY_CHOICE).cloned(),
        point_in_time,
        data_reaches,
    };
    restored::write_record(deps, &test.record_key(), &record).await?;
    note(&mut test, &r);
    test.snapshot_id = record.snapshot_id;
    test.snapshot_time = record.snapshot_time;
    test.verified_at = record.verified_at;
    test.checks = record.checks;
    test.status = Some("verified".into());
    test.timings.insert("verify".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

/// Restores the latest export of the test's profile, then the latest of every other profile of the database,
/// each into a scratch database of its own: every profile's archive is proven to restore, not only parsed.
async fn scratch_checks(
    deps: &Deps,
    test: &TestState,
    target: &Target,
    own: &lifeboat::bucket::manifest::Manifest,
    deadline: Option<Instant>,
) -> Result<Vec<Check>, RestoreError> {
    let s = &deps.settings;
    let identity = age_identity(deps).await?;
    let others = lifeboat::bucket::layout::latest_manifests(&deps.s3, &s.bucket, &test.database).await?;
    let others = others.iter().filter(|(_, m)| m.profile != s.profile);
    let runs = std::iter::once((None, own)).chain(others.map(|(_, m)| (Some(m.profile.as_str()), m)));
    let mut checks = Vec::new();
    for (n, (profile, manifest)) in runs.enumerate() {
        let database = match n {
            0 => rules::scratch_database(test.requested_at),
            n => rules::other_scratch_database(test.requested_at, n),
        };
        let check = rules::scratch_check_name(profile);
        let scratch = verify::Scratch {
            s3: &deps.s3,
            bucket: &s.bucket,
            manifest,
            identity: identity.as_ref(),
            target,
            tls: &s.tls,
            pg_restore: &s.pg_restore,
            database: &database,
            check: &check,
            mib_per_second: s.from_export.mib_per_second,
            deadline,
        };
        checks.push(scratch.check().await);
    }
    Ok(checks)
}

/// The test's metrics: success, recovery time (when it got that far) and the age of the restored data (when the
/// restored snapshot is known: an unknown one must not look like fresh data).
fn report_metrics(r: &report::Report, data_age_known: bool) -> Metrics {
    let mut metrics = Metrics::new();
    metrics.db(
        &r.database,
        metrics::RESTORE_TEST_SUCCESS,
        f64::from(u8::from(r.passed)),
        StandardUnit::Count,
    );
    if let Some(rto) = r.rto_seconds {
        metrics.db(&r.database, metrics::RESTORE_TIME_SECONDS, rto, StandardUnit::Seconds);
    }
    if data_age_known {
        metrics.db(
            &r.database,
            metrics::RESTORE_DATA_AGE_SECONDS,
            r.rpo_seconds,
            StandardUnit::Seconds,
        );
    }
    metrics
}

/// Writes the JSON and Markdown reports and publishes the test's metrics. The verdict is computed from the
/// verify step's own record (`<report base>.checks.json`): checks in the state are ignored, and without a
/// record the test failed. `error`, the state machine's caught error, can only fail a test.
async fn report_step(deps: &Deps, mut test: TestState, error: Option<Value>) -> Result<Value, RestoreError> {
    let derived = test.derived_id();
    restored::same_id("restored_id", test.restored_id.as_deref(), &derived)?;
    let key = test.record_key();
    let record: Option<rules::VerifyRecord> = restored::record(deps, &key).await?;
    let facts = report::Facts {
        database: &test.database,
        requested_at: test.requested_at,
        restored_id: &derived,
        kind: test.kind.unwrap_or(DbKind::Instance),
        timings: &test.timings,
        record: record.as_ref(),
        record_key: &key,
    };
    let r = report::build(&facts, error.as_ref().map(error_text));
    let base = test.report_base();
    let json_body = serde_json::to_vec_pretty(&r).map_err(RestoreError::Report)?;
    put_report(deps, format!("{base}.json"), json_body, "application/json").await?;
    let markdown = report::markdown(&r).into_bytes();
    put_report(deps, format!("{base}.md"), markdown, "text/markdown; charset=utf-8").await?;
    let data_age_known = record.as_ref().is_some_and(|r| r.snapshot_time.is_some());
    report_metrics(&r, data_age_known)
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await?;
    tracing::info!(db = %test.database, passed = r.passed, report = %base, "restore test reported");
    test.passed = Some(r.passed);
    test.report_key = Some(format!("{base}.json"));
    to_value(&test)
}

/// The run's verdict: an error naming the databases whose test failed.
fn summary(results: &[Value]) -> Result<Value, RestoreError> {
    let failed = rules::failed_databases(results);
    if failed.is_empty() {
        Ok(json!({"tested": results.len(), "failed": 0}))
    } else {
        Err(RestoreError::TestsFailed {
            failed: failed.into_iter().map(str::to_owned).collect(),
            tested: results.len(),
        })
    }
}

/// Deletes the test's password secret and the restored resources (found by their derived names, and only a
/// restore test of this database), and confirms they are going away. A start that failed half-way (or never
/// made anything) is cleaned up the same way: nothing found is nothing to delete.
async fn cleanup(deps: &Deps, mut test: TestState) -> Result<Value, RestoreError> {
    let derived = test.derived_id();
    restored::same_id("restored_id", test.restored_id.as_deref(), &derived)?;
    // Refused before anything is deleted when the name is taken by what is not this database's restore test.
    let found = restored::database(deps, &test).await?;
    password::delete(&deps.sm, &rules::test_secret_name(&derived)).await?;
    test.password_secret = None;
    let Some(r) = found else {
        test.status = Some("deleted".into());
        return to_value(&test);
    };
    let outcome = rds::delete_test(&deps.rds, r.kind, &r.id, r.member.as_deref()).await?;
    // Confirm: the resource must now be deleting or gone.
    let still = match r.kind {
        DbKind::Instance => rds::instance(&deps.rds, &r.id).await?.map(|i| i.status),
        DbKind::Cluster => rds::cluster(&deps.rds, &r.id).await?.map(|c| c.status),
    };
    if let Some(status) = still.filter(|s| s != "deleting") {
        return Err(RestoreError::NotDeleted { id: r.id, status });
    }
    note(&mut test, &r);
    test.status = Some(match outcome {
        Deleted::Deleting => "deleting".into(),
        Deleted::Gone => "deleted".into(),
    });
    to_value(&test)
}
