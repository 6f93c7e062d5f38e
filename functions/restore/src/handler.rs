//! Dispatches the requests: one step of a restore test per invocation (the state machine carries the state), or
//! a console restore.

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::error::Error;
use lifeboat::metrics::Metrics;
use lifeboat::restore::{choose_snapshot, test_identifier, Check};
use lifeboat::selection::{self, Database, DbKind, Selector};
use serde_json::{json, Value};

use crate::event::{self, ManualRestore, Request, Target, TestState};
use crate::report;
use crate::settings::RestoreSettings;
use crate::verify;
use lifeboat::rds::instances::{self as rds, Deleted, Placement};

#[derive(Debug)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub settings: RestoreSettings,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: RestoreSettings) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            sm: aws_sdk_secretsmanager::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            settings,
        }
    }
}

fn fail(message: impl Into<String>) -> Error {
    Error::PartialFailure(message.into())
}

fn to_value(test: &TestState) -> Result<Value, Error> {
    serde_json::to_value(test).map_err(|e| fail(format!("serialising the test state: {e}")))
}

pub async fn handle(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Value, Error> {
    let started = Instant::now();
    let request = event::parse(payload)?;
    let result = match request {
        Request::Plan { time, databases } => plan(deps, time, databases).await,
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
        Request::Poll { test } => poll(deps, test).await,
        Request::Prepare { test } => prepare(deps, test).await,
        Request::Verify { test } => verify_step(deps, test).await,
        Request::Report { test, error } => report_step(deps, test, error).await,
        Request::Cleanup { test } => cleanup(deps, test).await,
        Request::Summary { results } => summary(&results),
        Request::Restore(m) => manual(deps, m, deadline).await,
    };
    match &result {
        Ok(_) => tracing::info!(seconds = started.elapsed().as_secs_f64(), "restore step finished"),
        Err(e) => tracing::error!(error = %e, "restore step failed"),
    }
    result
}

async fn find(deps: &Deps, id: &str) -> Result<Database, Error> {
    let all = selection::discover(&deps.rds).await?;
    all.into_iter()
        .find(|d| d.id == id && d.cluster.is_none())
        .ok_or_else(|| fail(format!("no instance or cluster `{id}` in this region")))
}

/// The databases a scheduled run tests: the selection, or the list in the event.
async fn plan(deps: &Deps, time: DateTime<Utc>, databases: Option<Vec<String>>) -> Result<Value, Error> {
    let all = selection::discover(&deps.rds).await?;
    let selector = match databases {
        Some(list) => Selector {
            databases: list,
            tag: None,
        },
        None => deps.settings.common.selector.clone(),
    };
    let chosen = selection::select(&all, &selector);
    if !chosen.missing.is_empty() {
        tracing::warn!(missing = ?chosen.missing, "databases named for restore tests do not exist");
    }
    let tests: Vec<Value> = chosen
        .databases
        .iter()
        .map(|d| json!({"database": d.id, "requested_at": time}))
        .collect();
    Ok(json!({"time": time, "tests": tests, "missing": chosen.missing}))
}

fn placement(s: &RestoreSettings) -> Placement {
    Placement {
        subnet_group: s.subnet_group.clone(),
        security_groups: s.security_group.iter().cloned().collect(),
        instance_class: s.instance_class.clone(),
        parameter_group: None,
        isolated: true,
    }
}

/// Restores the chosen snapshot into an isolated, tagged instance (or cluster plus instance). A redelivered start
/// finds its instance already there and goes on with it.
async fn start(
    deps: &Deps,
    database: &str,
    snapshot: Option<&str>,
    requested_at: DateTime<Utc>,
) -> Result<Value, Error> {
    let t = Instant::now();
    let db = find(deps, database).await?;
    let snapshots = lifeboat::rds::list_for_db(&deps.rds, &db.id, db.kind).await?;
    let chosen = choose_snapshot(&snapshots, snapshot).map_err(|r| fail(format!("{database}: {r}")))?;
    let restored_id = test_identifier(&db.id, requested_at);
    let restored_instance =
        (db.kind == DbKind::Cluster).then(|| restored_id.replacen("lifeboat-rt-", "lifeboat-ri-", 1));
    let master_user = match db.kind {
        DbKind::Instance => rds::instance(&deps.rds, &db.id).await?.map(|i| i.master_user),
        DbKind::Cluster => rds::cluster(&deps.rds, &db.id).await?.map(|c| c.2),
    }
    .unwrap_or_default();
    let exists = match db.kind {
        DbKind::Instance => rds::instance(&deps.rds, &restored_id).await?.is_some(),
        DbKind::Cluster => rds::cluster(&deps.rds, &restored_id).await?.is_some(),
    };
    if !exists {
        let expires = Utc::now() + chrono::Duration::hours(i64::from(deps.settings.expiry_hours));
        rds::restore_snapshot(
            &deps.rds,
            db.kind,
            &chosen.id,
            &db.engine,
            &restored_id,
            restored_instance.as_deref(),
            &placement(&deps.settings),
            &rds::test_tags(&db.id, expires),
        )
        .await?;
    }
    tracing::info!(db = %db.id, snapshot = %chosen.id, restored = %restored_id, "restore test started");
    let mut test = TestState {
        database: db.id.clone(),
        kind: db.kind,
        restored_id,
        restored_instance,
        snapshot_id: chosen.id.clone(),
        snapshot_time: chosen.created.unwrap_or(requested_at),
        requested_at,
        master_user,
        polls: 0,
        status: Some("restoring".into()),
        target: None,
        timings: Default::default(),
        checks: vec![],
        verified_at: None,
        passed: None,
        report_key: None,
    };
    test.timings.insert("start".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

const FAILED_STATES: [&str; 5] = [
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "storage-full",
];

/// One look at the restored instance: `status` becomes `available` when it is, the endpoint is recorded, and a
/// restore that takes longer than the configured timeout (or lands in a failed state) fails the test.
async fn poll(deps: &Deps, mut test: TestState) -> Result<Value, Error> {
    let instance_id = test
        .restored_instance
        .clone()
        .unwrap_or_else(|| test.restored_id.clone());
    let info = rds::instance(&deps.rds, &instance_id).await?;
    test.polls += 1;
    let elapsed = Utc::now() - test.requested_at;
    let Some(info) = info else {
        return Err(fail(format!("restored instance {instance_id} does not exist")));
    };
    if FAILED_STATES.contains(&info.status.as_str()) {
        return Err(fail(format!("restored instance {instance_id} is {}", info.status)));
    }
    if info.status == "available" {
        let (host, port) = info.endpoint.ok_or_else(|| {
            fail(format!(
                "restored instance {instance_id} is available but has no endpoint"
            ))
        })?;
        test.timings
            .insert("restore".into(), elapsed.num_milliseconds() as f64 / 1000.0);
        test.target = Some(Target {
            host,
            port,
            user: test.master_user.clone(),
            password: String::new(),
            dbname: "postgres".into(),
        });
    } else if elapsed > chrono::Duration::minutes(i64::from(deps.settings.timeout_minutes)) {
        return Err(fail(format!(
            "restored instance {instance_id} is still {} after {} minutes (LIFEBOAT_RESTORE_TIMEOUT_MINUTES)",
            info.status, deps.settings.timeout_minutes
        )));
    }
    test.status = Some(info.status);
    to_value(&test)
}

/// A fresh master password on the restored database, kept only in the execution's state.
async fn prepare(deps: &Deps, mut test: TestState) -> Result<Value, Error> {
    let t = Instant::now();
    let password = deps
        .sm
        .get_random_password()
        .password_length(32)
        .exclude_characters(lifeboat::rotation::DEFAULT_EXCLUDED_CHARACTERS)
        .send()
        .await
        .map_err(|e| Error::aws("GetRandomPassword", e))?
        .random_password()
        .map(str::to_owned)
        .ok_or_else(|| fail("GetRandomPassword returned no password"))?;
    rds::set_master_password(&deps.rds, test.kind, &test.restored_id, &password).await?;
    let target = test
        .target
        .as_mut()
        .ok_or_else(|| fail("prepare before the restored instance was available (no endpoint yet)"))?;
    target.password = password;
    test.status = Some("prepared".into());
    test.timings.insert("prepare".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

async fn age_identity(deps: &Deps) -> Result<Option<age::x25519::Identity>, Error> {
    let Some(secret) = &deps.settings.age_identity_secret else {
        return Ok(None);
    };
    let value = deps
        .sm
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| Error::aws("GetSecretValue", e))?;
    let text = value.secret_string().unwrap_or_default().trim().to_owned();
    text.parse::<age::x25519::Identity>().map(Some).map_err(|_| {
        fail(format!(
            "secret {secret} does not hold an age identity (AGE-SECRET-KEY-1...)"
        ))
    })
}

/// Connects to the target in the state, checks the data against the latest export, and restores that export
/// into a scratch database.
async fn verify_step(deps: &Deps, mut test: TestState) -> Result<Value, Error> {
    let t = Instant::now();
    let s = &deps.settings;
    let target = test
        .target
        .clone()
        .ok_or_else(|| fail("verify needs a target (host, port, user, password) in the test state"))?;
    let latest = lifeboat::bucket::latest_manifest(&deps.s3, &s.bucket, &test.database, &s.profile).await?;
    let manifest = latest.as_ref().map(|(_, m)| m);
    let mut checks = verify::database_checks(&target, &s.tls, manifest, s.row_tolerance_percent, &s.checks).await;
    let connected = checks
        .first()
        .is_some_and(|c| c.result == lifeboat::restore::CheckResult::Passed);
    match (&latest, connected) {
        (Some((key, m)), true) => {
            checks.push(Check::new(
                "latest export",
                true,
                format!("{key} ({})", m.logical_time.to_rfc3339()),
            ));
            let identity = age_identity(deps).await?;
            let scratch = format!("lifeboat_verify_{}", test.requested_at.format("%Y%m%d%H%M%S"));
            checks.push(
                verify::scratch_restore(
                    &deps.s3,
                    &s.bucket,
                    m,
                    identity.as_ref(),
                    &target,
                    &s.tls,
                    &s.pg_restore,
                    &scratch,
                )
                .await,
            );
        }
        (None, _) => checks.push(Check::skipped(
            "the latest export restores with pg_restore",
            format!("no complete `{}` export of {}", s.profile, test.database),
        )),
        (Some(_), false) => {}
    }
    if connected {
        test.verified_at = Some(Utc::now());
    }
    test.checks = checks;
    test.status = Some("verified".into());
    test.timings.insert("verify".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

fn error_text(error: &Value) -> String {
    // Step Functions' caught error: {"Error": "...", "Cause": "<the function's error JSON or text>"}.
    let cause = error.get("Cause").and_then(Value::as_str).unwrap_or_default();
    let message = serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|c| c.get("errorMessage").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned());
    let kind = error.get("Error").and_then(Value::as_str).unwrap_or("error");
    if message.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {message}")
    }
}

/// Writes the JSON and Markdown reports and publishes the test's metrics.
async fn report_step(deps: &Deps, mut test: TestState, error: Option<Value>) -> Result<Value, Error> {
    let r = report::build(&test, error.as_ref().map(error_text));
    let base = report::key_base(&r);
    let json_body = serde_json::to_vec_pretty(&r).map_err(|e| fail(e.to_string()))?;
    for (key, body, content_type) in [
        (format!("{base}.json"), json_body, "application/json"),
        (
            format!("{base}.md"),
            report::markdown(&r).into_bytes(),
            "text/markdown; charset=utf-8",
        ),
    ] {
        deps.s3
            .put_object()
            .bucket(&deps.settings.bucket)
            .key(&key)
            .content_type(content_type)
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .body(body.into())
            .send()
            .await
            .map_err(|e| Error::aws("PutObject", e))?;
    }
    let mut metrics = Metrics::new();
    metrics.db(
        &test.database,
        "RestoreTestSuccess",
        f64::from(u8::from(r.passed)),
        StandardUnit::Count,
    );
    if let Some(rto) = r.rto_seconds {
        metrics.db(&test.database, "RestoreTimeSeconds", rto, StandardUnit::Seconds);
    }
    metrics.db(
        &test.database,
        "RestoreDataAgeSeconds",
        r.rpo_seconds,
        StandardUnit::Seconds,
    );
    metrics
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await?;
    tracing::info!(db = %test.database, passed = r.passed, report = %base, "restore test reported");
    test.passed = Some(r.passed);
    test.report_key = Some(format!("{base}.json"));
    to_value(&test)
}

/// The run's verdict: an error naming the databases whose test failed.
fn summary(results: &[Value]) -> Result<Value, Error> {
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.get("passed").and_then(Value::as_bool) != Some(true))
        .map(|r| r.get("database").and_then(Value::as_str).unwrap_or("?"))
        .collect();
    if failed.is_empty() {
        Ok(json!({"tested": results.len(), "failed": 0}))
    } else {
        Err(fail(format!(
            "restore tests failed for {} of {} databases: {}",
            failed.len(),
            results.len(),
            failed.join(", ")
        )))
    }
}

/// Deletes the restored resources and confirms they are going away.
async fn cleanup(deps: &Deps, mut test: TestState) -> Result<Value, Error> {
    let outcome = rds::delete_test(
        &deps.rds,
        test.kind,
        &test.restored_id,
        test.restored_instance.as_deref(),
    )
    .await?;
    // Confirm: the resource must now be deleting or gone.
    let still = match test.kind {
        DbKind::Instance => rds::instance(&deps.rds, &test.restored_id).await?.map(|i| i.status),
        DbKind::Cluster => rds::cluster(&deps.rds, &test.restored_id).await?.map(|c| c.0),
    };
    if let Some(status) = still.filter(|s| s != "deleting") {
        return Err(fail(format!(
            "{} is still {status} after its deletion was requested",
            test.restored_id
        )));
    }
    test.status = Some(match outcome {
        Deleted::Deleting => "deleting".into(),
        Deleted::Gone => "deleted".into(),
    });
    // The password is of no use any more; keep it out of the execution's final output.
    if let Some(t) = test.target.as_mut() {
        t.password = String::new();
    }
    to_value(&test)
}

/// A console restore into a new, named instance (or cluster) with the source's settings unless overridden; waits
/// for it within the invocation's time and returns the endpoint. Never touches an existing resource.
async fn manual(deps: &Deps, m: ManualRestore, deadline: Option<Instant>) -> Result<Value, Error> {
    let db = find(deps, &m.database).await?;
    let taken = match db.kind {
        DbKind::Instance => rds::instance(&deps.rds, &m.target).await?.is_some(),
        DbKind::Cluster => rds::cluster(&deps.rds, &m.target).await?.is_some(),
    };
    if taken {
        return Err(fail(format!(
            "`{}` already exists; a restore never overwrites or deletes an existing database: choose a new name",
            m.target
        )));
    }
    let source = rds::instance(&deps.rds, &m.database).await?;
    let placement = Placement {
        subnet_group: m
            .subnet_group
            .clone()
            .or_else(|| source.as_ref().and_then(|s| s.subnet_group.clone())),
        security_groups: m
            .security_groups
            .clone()
            .unwrap_or_else(|| source.as_ref().map(|s| s.security_groups.clone()).unwrap_or_default()),
        instance_class: m
            .instance_class
            .clone()
            .or_else(|| {
                source
                    .as_ref()
                    .map(|s| s.instance_class.clone())
                    .filter(|c| !c.is_empty())
            })
            .unwrap_or_else(|| deps.settings.instance_class.clone()),
        parameter_group: m
            .parameter_group
            .clone()
            .or_else(|| source.as_ref().and_then(|s| s.parameter_group.clone())),
        isolated: false,
    };
    let restored_from = match (&m.snapshot, &m.point_in_time) {
        (Some(snap), _) => {
            let snapshots = lifeboat::rds::list_for_db(&deps.rds, &db.id, db.kind).await?;
            let chosen = choose_snapshot(&snapshots, Some(snap)).map_err(|r| fail(format!("{}: {r}", db.id)))?;
            rds::restore_snapshot(
                &deps.rds,
                db.kind,
                &chosen.id,
                &db.engine,
                &m.target,
                Some(&format!("{}-1", m.target)),
                &placement,
                &[],
            )
            .await?;
            format!("snapshot {}", chosen.id)
        }
        (None, Some(t)) => {
            let at = (t != "latest")
                .then(|| DateTime::parse_from_rfc3339(t).map(|d| d.with_timezone(&Utc)))
                .transpose()
                .map_err(|e| Error::InvalidEvent(format!("point_in_time: {e}")))?;
            rds::restore_to_time(&deps.rds, db.kind, &db.id, &db.engine, &m.target, at, &placement).await?;
            format!("point in time {t}")
        }
        (None, None) => {
            return Err(Error::InvalidEvent(
                "restore: `snapshot` or `point_in_time` is required".into(),
            ))
        }
    };
    tracing::info!(db = %db.id, target = %m.target, from = %restored_from, "restore started");
    let instance_id = match db.kind {
        DbKind::Instance => m.target.clone(),
        DbKind::Cluster => format!("{}-1", m.target),
    };
    // Wait while the invocation has time; the restore goes on in RDS either way.
    loop {
        let info = rds::instance(&deps.rds, &instance_id).await?;
        let status = info
            .as_ref()
            .map(|i| i.status.clone())
            .unwrap_or_else(|| "creating".into());
        if status == "available" {
            let endpoint = info.and_then(|i| i.endpoint);
            return Ok(
                json!({"target": m.target, "restored_from": restored_from, "status": status,
                             "endpoint": endpoint.map(|(h, p)| format!("{h}:{p}"))}),
            );
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_none_or(|l| l < Duration::from_secs(40)) || FAILED_STATES.contains(&status.as_str()) {
            return Ok(
                json!({"target": m.target, "restored_from": restored_from, "status": status,
                             "endpoint": null,
                             "next": format!("aws rds wait db-instance-available --db-instance-identifier {instance_id}")}),
            );
        }
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
}
