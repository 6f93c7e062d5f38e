//! A plan tick (only with `LIFEBOAT_PLAN_DOCUMENT` set): bring every plan member's secret in step with its plan's
//! `rotation` rule, so Secrets Manager rotates it on the plan's cadence from then on (the rule itself:
//! `lifeboat::plans::rotation`).
//!
//! - **On what** comes from AWS: the databases RDS's describe calls return, in a plan by their `lifeboat:plan` tag
//!   or the plan's list (`lifeboat::plans::membership`), and each one's secret as every function finds it
//!   (`Database::secret_id`: the `lifeboat:secret` tag, else the RDS-managed master user secret). The tick's
//!   payload names nothing but its time; what the role may change is further bounded by IAM (the `DatabaseSecrets`
//!   pattern or the `lifeboat:managed` tag, never a restore test's secret).
//! - **What it does**: RotateSecret with `RotateImmediately=false`, this function's ARN and the plan's
//!   `every_days`, only for a secret not already configured so. Not immediately, because a cadence change is no
//!   reason to rotate now: Secrets Manager schedules the next rotation from the last one. A secret in step is not
//!   touched, so a redelivered tick changes nothing. Why a tick and not one `RotationSchedule` resource per secret:
//!   the members and their cadence are data (tags and the plan document), which a deployed template cannot
//!   follow without a redeploy.
//! - **Daily** is often enough: a cadence is counted in days, and a new member or a changed rule waits at most a
//!   day, well within the plan's own grace for an overdue rotation (monitor alarms on that).
//! - **Which version**: the newest valid version of the document, read on every tick; its label is in the result
//!   and the log. No valid version is `Lifeboat.PlanError` and nothing is changed.
//! - A member whose plan cannot be decided, whose secret cannot be found or read, or whose configuration fails is
//!   reported (log, metrics, the result) and the others proceed; the tick then fails as a partial failure.
//!
//! Must never: take a database or secret from the payload, rotate a secret immediately, or turn rotation off.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StandardUnit;
use aws_sdk_secretsmanager::types::RotationRulesType;
use chrono::{DateTime, Utc};
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::plans::document::RotationRule;
use lifeboat::plans::membership::{plan_of, Resource};
use lifeboat::plans::rotation::{self, Reconcile, SecretRotation};
use lifeboat::plans::store::{self, Loaded, Location, Refused, PLAN_DOCUMENT};
use lifeboat::rds::restore::is_restore_test;
use lifeboat::rds::selection::{self, Database};
use serde::Serialize;

use crate::deps::Deps;
use crate::error::RotateError;
use crate::settings::FUNCTION_ARN;

/// What a plan tick did.
#[derive(Debug, Clone, Serialize)]
pub struct TickSummary {
    pub trigger: &'static str,
    /// The tick's scheduled time.
    pub time: DateTime<Utc>,
    pub plan_document: String,
    /// The label of the version in force (`PlanVersion::label`) and its S3 version id.
    pub plan_version: String,
    pub plan_version_id: String,
    /// Newer versions passed over because they fail validation.
    pub refused_versions: Vec<Refused>,
    /// Every database in a plan, with what the tick did with its secret.
    pub databases: Vec<Member>,
    /// Databases whose plan cannot be decided (both names), left out.
    pub conflicts: Vec<String>,
    /// Members whose secret could not be brought in step, and why.
    pub failures: Vec<String>,
}

/// One plan member and its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub db: String,
    pub plan: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The plan's cadence, when it has a rotation rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_days: Option<u32>,
    /// `configured`, `in_step`, `owned_by_rds`, `rotating_without_rule`, `no_rule` or `failed`.
    pub result: &'static str,
}

impl Member {
    fn new(db: &Database, plan: &str, rule: Option<RotationRule>) -> Self {
        Self {
            db: db.id.clone(),
            plan: plan.to_owned(),
            secret: None,
            every_days: rule.map(|r| r.every_days),
            result: "failed",
        }
    }
}

/// The margin a tick keeps before the invocation's deadline, to report what it did not reach.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// The plan document's location and this function's ARN: a tick needs both.
fn tick_settings(deps: &Deps) -> Result<(&Location, &str), RotateError> {
    let s = &deps.settings;
    let location = s
        .plan
        .as_ref()
        .ok_or_else(|| RotateError::plan(format!("a plan tick needs {PLAN_DOCUMENT} (the plan document)")))?;
    let function = s
        .function_arn
        .as_deref()
        .ok_or_else(|| RotateError::plan(format!("a plan tick needs {FUNCTION_ARN} (this function's ARN)")))?;
    Ok((location, function))
}

/// Runs one tick. `deadline` is the invocation's: members not reached before it are reported as failures.
pub async fn tick(deps: &Deps, time: DateTime<Utc>, deadline: Option<Instant>) -> Result<TickSummary, RotateError> {
    let (location, function) = tick_settings(deps)?;
    let loaded = store::load(&deps.s3, location).await?;
    for r in &loaded.refused {
        tracing::error!(version = %r.version.version_id, label = %r.version.label(), error = %r.error,
            "a newer plan version fails validation; the previous valid version stays in force");
    }
    tracing::info!(document = %location, version = %loaded.version.version_id, label = %loaded.version.label(),
        time = %time, "rotation plan tick");
    let all = selection::discover(&deps.rds).await?;
    let mut summary = TickSummary {
        trigger: "plan-tick",
        time,
        plan_document: location.to_string(),
        plan_version: loaded.version.label().to_owned(),
        plan_version_id: loaded.version.version_id.clone(),
        refused_versions: loaded.refused.clone(),
        databases: Vec::new(),
        conflicts: Vec::new(),
        failures: Vec::new(),
    };
    let mut m = Metrics::new();
    members(deps, function, &loaded, &all, deadline, &mut summary, &mut m).await;
    let without_rule = summary
        .databases
        .iter()
        .filter(|d| d.result == "rotating_without_rule")
        .count();
    m.put(
        metrics::ROTATION_WITHOUT_PLAN_RULE,
        without_rule as f64,
        StandardUnit::Count,
        &[],
    );
    m.put(
        metrics::PLAN_VERSIONS_REFUSED,
        loaded.refused.len() as f64,
        StandardUnit::Count,
        &[],
    );
    if let Err(e) = m.publish(&deps.cw, &deps.settings.metrics_namespace, Utc::now()).await {
        tracing::warn!(error = %e, "could not publish the plan tick's metrics");
    }
    if !summary.failures.is_empty() {
        return Err(RotateError::partial_failure(format!(
            "plan version {}: {} member(s) not in step with their plan's rotation: {}",
            summary.plan_version,
            summary.failures.len(),
            summary.failures.join("; ")
        )));
    }
    Ok(summary)
}

/// Every database in a plan, in turn: its secret brought in step, recorded in `summary` and `m`.
async fn members(
    deps: &Deps,
    function: &str,
    loaded: &Loaded,
    all: &[Database],
    deadline: Option<Instant>,
    summary: &mut TickSummary,
    m: &mut Metrics,
) {
    // A secret two members share is configured once; two cadences for one secret are refused.
    let mut handled: BTreeMap<String, (String, Option<u32>)> = BTreeMap::new();
    for db in all.iter().filter(|d| d.cluster.is_none() && !is_restore_test(&d.tags)) {
        let plan = match plan_of(&loaded.document, Resource::Database, &db.id, &db.tags) {
            Err(e) => {
                tracing::error!(db = %db.id, error = %e, "plan membership cannot be decided; left out");
                m.put(
                    metrics::PLAN_MEMBERSHIP_ERROR,
                    1.0,
                    StandardUnit::Count,
                    &[(metrics::DB_DIMENSION, &db.id)],
                );
                summary.conflicts.push(e.to_string());
                continue;
            }
            Ok(None) => continue,
            Ok(Some(name)) => name,
        };
        let Some(rule) = loaded.document.plans.get(plan).map(|p| p.rotation) else {
            continue;
        };
        let mut member = Member::new(db, plan, rule);
        let outcome = if deadline.is_some_and(|d| Instant::now() + DEADLINE_MARGIN >= d) {
            Err("not reached before the invocation's deadline; the next tick resumes".to_owned())
        } else {
            bring_in_step(deps, function, db, rule, &mut member, &mut handled).await
        };
        match outcome {
            Ok(result) => member.result = result,
            Err(why) => {
                tracing::error!(db = %db.id, plan = %plan, secret = ?member.secret, error = %why,
                    "could not bring the secret's rotation in step with the plan");
                summary.failures.push(format!("{}: {why}", db.id));
            }
        }
        tracing::info!(db = %member.db, plan = %member.plan, secret = ?member.secret, every_days = ?member.every_days,
            result = member.result, label = %summary.plan_version, "rotation plan member");
        member_metrics(&member, m);
        summary.databases.push(member);
    }
}

/// Per member with a rotation rule: whether this tick changed its configuration, and whether it failed.
fn member_metrics(member: &Member, m: &mut Metrics) {
    if member.every_days.is_none() {
        return;
    }
    let dims = [(metrics::DB_DIMENSION, member.db.as_str())];
    let changed = f64::from(u8::from(member.result == "configured"));
    m.put(metrics::ROTATION_SCHEDULE_CHANGED, changed, StandardUnit::Count, &dims);
    let failed = f64::from(u8::from(member.result == "failed"));
    m.put(metrics::ROTATION_SCHEDULE_FAILED, failed, StandardUnit::Count, &dims);
}

/// Reads the member's secret and configures it when the plan asks for another configuration.
async fn bring_in_step(
    deps: &Deps,
    function: &str,
    db: &Database,
    rule: Option<RotationRule>,
    member: &mut Member,
    handled: &mut BTreeMap<String, (String, Option<u32>)>,
) -> Result<&'static str, String> {
    let Some(id) = db.secret_id() else {
        return match rule {
            None => Ok("no_rule"),
            Some(_) => Err(format!(
                "no secret to rotate: tag the database `{}=<secret name or ARN>`",
                lifeboat::core::tags::SECRET
            )),
        };
    };
    member.secret = Some(id.to_owned());
    let secret = rotation::describe(&deps.sm, id).await.map_err(|e| e.to_string())?;
    member.secret = Some(secret.name.clone());
    let every_days = rule.map(|r| r.every_days);
    if let Some((other, days)) = handled.get(&secret.arn) {
        return if *days == every_days {
            Ok("in_step")
        } else {
            Err(format!(
                "secret {} is also {other}'s, whose plan asks for another cadence; one secret has one cadence",
                secret.name
            ))
        };
    }
    handled.insert(secret.arn.clone(), (db.id.clone(), every_days));
    Ok(match rotation::reconcile(&secret, function, rule) {
        Reconcile::InStep => "in_step",
        Reconcile::OwnedByRds => "owned_by_rds",
        Reconcile::NoRule => "no_rule",
        Reconcile::RotatingWithoutRule => {
            // Left rotating (lifeboat::plans::rotation says why); counted in RotationWithoutPlanRule.
            tracing::warn!(db = %db.id, secret = %secret.name,
                "rotated by Lifeboat but its plan has no rotation rule; left rotating");
            "rotating_without_rule"
        }
        Reconcile::Configure { every_days } => {
            configure(deps, function, &secret, every_days).await?;
            "configured"
        }
    })
}

/// RotateSecret, not immediately: the rotation function and the cadence, nothing else.
async fn configure(deps: &Deps, function: &str, secret: &SecretRotation, every_days: u32) -> Result<(), String> {
    deps.sm
        .rotate_secret()
        .secret_id(&secret.arn)
        .rotation_lambda_arn(function)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(i64::from(every_days))
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .map_err(|e| format!("RotateSecret failed: {}", lifeboat::core::error::aws_error_message(&e)))?;
    tracing::info!(secret = %secret.name, every_days, was_enabled = secret.enabled, was_every_days = ?secret.every_days,
        "rotation configured as the plan says");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::ErrorKind;
    use crate::settings::RotateSettings;

    /// Clients that would fail any call (no endpoint answers at port 9): the tick must refuse before one.
    fn deps(pairs: &[(&'static str, &'static str)]) -> Deps {
        let vars: BTreeMap<&str, &str> = pairs
            .iter()
            .copied()
            .chain([("LIFEBOAT_DB_SSLMODE", "disable")])
            .collect();
        let settings = RotateSettings::from_env(&move |n: &str| vars.get(n).map(|v| (*v).to_owned())).unwrap();
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        Deps::new(&config, settings)
    }

    #[tokio::test]
    async fn a_tick_without_the_plan_document_or_its_own_arn_is_a_plan_error_naming_the_variable() {
        let arn = (
            "LIFEBOAT_ROTATE_FUNCTION_ARN",
            "arn:aws:lambda:eu-west-1:123456789012:function:lifeboat-rotate",
        );
        let plan = ("LIFEBOAT_PLAN_DOCUMENT", "s3://plans/lifeboat.json");
        for (pairs, missing) in [(vec![arn], PLAN_DOCUMENT), (vec![plan], FUNCTION_ARN)] {
            let e = tick(&deps(&pairs), Utc::now(), None).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Plan);
            assert!(e.message.contains(missing), "{}", e.message);
        }
    }
}
