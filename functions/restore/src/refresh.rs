//! The console's `refresh` action and the restore function's `refresh-tick`: a staging database refreshed from
//! the newest verified export (or a named one), masked on the way, by `lifeboat::refresh`.
//!
//! Translates only, and trusts nothing of the payload but names. The rule is read from the plan document in force
//! (`lifeboat::plans::store`, the stack's `LIFEBOAT_PLAN_DOCUMENT`); the staging server is the rule's
//! `into.instance` as RDS describes it (`find`); its login is the staging server's OWN Lifeboat secret
//! (`lifeboat:secret`), never the source's: a staging server without one is refused, since the source's
//! administrator must never be the one that writes staging. The age identity is the one `from_export` reads, the
//! masking key the stack's secret (`LIFEBOAT_MASKING_KEY_SECRET`). The export is chosen and admitted against the
//! invocation's deadline as a restore from an export is (`lifeboat::postgres::archive::plan`), then pinned, so
//! the refresh restores the export that was admitted.
//!
//! The tick runs each refresh the document makes due in its quarter (`lifeboat::plans::due`) under its due time,
//! after claiming that due time in the bucket with a write that fails when the claim exists: a redelivered or
//! retried tick runs nothing twice. A refresh that fails is not run again by the tick; the next due time or the
//! console runs it.
//!
//! Every refresh that starts (export chosen and admitted) writes its report under `refresh/<name>/`, refreshed
//! or failed, and publishes `RefreshSuccess` and `RefreshDurationSeconds` for its source.
//! Never: connects to the source database, reads a secret or a host from the payload, or returns a password.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::bucket::layout;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::mask::rewrite::MaskKey;
use lifeboat::mask::rules::RefreshRule;
use lifeboat::plans::due::{refresh_rule, refreshes_due_at_tick};
use lifeboat::plans::store;
use lifeboat::postgres::archive::plan;
use lifeboat::postgres::archive::{find_export, Counters, Which};
use lifeboat::postgres::export::stop_at;
use lifeboat::refresh::{self, RefreshError, Refreshed};
use serde_json::{json, Value};

use crate::deps::{age_identity, find, Deps};
use crate::error::{ExportRestoreError, RestoreError};
use crate::event::RefreshRequest;

/// The server database a refresh's new database is created from.
const MAINTENANCE_DB: &str = "postgres";

/// The console's `refresh`: the named rule of the named plan, now.
pub async fn run(deps: &Deps, req: RefreshRequest, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    req.validate()?;
    let loaded = store::load(&deps.s3, plan_location(deps)?).await?;
    let rule = refresh_rule(&loaded.document, &req.plan, &req.refresh).map_err(Error::InvalidEvent)?;
    let which = req.export.clone().map_or(Which::Latest, Which::Manifest);
    let started = Instant::now();
    let result = refresh_one(deps, &req.plan, rule, &which, Utc::now(), deadline).await;
    publish(deps, rule, result.is_ok(), started).await;
    result
}

/// The plan tick: every refresh due in the quarter of `time`, once per due time.
pub async fn tick(deps: &Deps, time: DateTime<Utc>, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    let loaded = store::load(&deps.s3, plan_location(deps)?).await?;
    let doc = &loaded.document;
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    for due in refreshes_due_at_tick(doc, time) {
        let rule = refresh_rule(doc, &due.plan, &due.rule).map_err(Error::InvalidEvent)?;
        if !claim(deps, &due.rule, &due.plan, due.at).await? {
            tracing::info!(plan = %due.plan, refresh = %due.rule, due = %due.at, "refresh already run for its due time");
            runs.push(json!({"plan": due.plan, "refresh": due.rule, "due": due.at, "skipped": "already claimed"}));
            continue;
        }
        let started = Instant::now();
        let result = refresh_one(deps, &due.plan, rule, &Which::Latest, due.at, deadline).await;
        publish(deps, rule, result.is_ok(), started).await;
        match result {
            Ok(out) => runs.push(json!({"plan": due.plan, "refresh": due.rule, "due": due.at, "result": out})),
            Err(e) => {
                tracing::error!(plan = %due.plan, refresh = %due.rule, error = %e, "scheduled refresh failed");
                runs.push(json!({"plan": due.plan, "refresh": due.rule, "due": due.at, "error": e.to_string()}));
                failed.push(due.rule.clone());
            }
        }
    }
    if !failed.is_empty() {
        return Err(RestoreError::RefreshesFailed { failed });
    }
    Ok(json!({"time": time, "plan_version": loaded.version.label(), "refreshes": runs}))
}

fn plan_location(deps: &Deps) -> Result<&store::Location, Error> {
    deps.settings.plan.as_ref().ok_or_else(|| {
        Error::InvalidEvent(format!(
            "a refresh is a plan's rule, and this stack has no plan document ({} is unset)",
            store::PLAN_DOCUMENT
        ))
    })
}

/// Claims the refresh's due time: `false` when an earlier delivery of the tick already did.
async fn claim(deps: &Deps, name: &str, plan: &str, due: DateTime<Utc>) -> Result<bool, Error> {
    let body = json!({"plan": plan, "refresh": name, "due": due, "claimed_at": Utc::now()});
    let sent = deps
        .s3
        .put_object()
        .bucket(&deps.settings.bucket)
        .key(layout::refresh_claim_key(name, due))
        .content_type("application/json")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(body.to_string().into_bytes().into())
        .if_none_match("*")
        .send()
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(false),
        Err(e) => Err(Error::aws("PutObject", e)),
    }
}

/// One refresh: the staging server and its own login, the export (admitted against the deadline, then pinned),
/// the identity and the key; then the refresh itself and its report.
async fn refresh_one(
    deps: &Deps,
    plan_name: &str,
    rule: &RefreshRule,
    which: &Which,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
) -> Result<Value, RestoreError> {
    let server = find(deps, &rule.into.instance).await?;
    if server.secret_id().is_none() {
        return Err(ExportRestoreError::NoCredentials { id: server.id.clone() }.into());
    }
    // The staging server as its own "source": its own secret and nothing else, its host checked against its own
    // endpoints.
    let admin = crate::from_export::target(deps, &server, &server, MAINTENANCE_DB).await?;
    let s = &deps.settings;
    let (key, manifest) = find_export(&deps.s3, &s.bucket, &rule.from, Some(&rule.export), which)
        .await
        .map_err(ExportRestoreError::from)?;
    // A named manifest is read as it is: it must still be an export of the rule's own profile.
    if manifest.profile != rule.export {
        return Err(Error::InvalidEvent(format!(
            "export {key} is of profile `{}`, not the refresh's `{}`",
            manifest.profile, rule.export
        ))
        .into());
    }
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    plan::admit_restore(manifest.stored.bytes, s.from_export.mib_per_second, left).map_err(|refusal| {
        RestoreError::RefreshTooLong {
            plan: plan_name.to_owned(),
            rule: rule.name.clone(),
            key: key.clone(),
            refusal,
        }
    })?;
    let identities: Vec<_> = age_identity(deps).await?.into_iter().collect();
    let mask_key = masking_key(deps).await?;
    let pinned = Which::Manifest(key.clone());
    let counters = Arc::new(Counters::default());
    tracing::info!(plan = plan_name, refresh = %rule.name, from = %rule.from, export = %key,
                   into = %server.id, "refresh started");
    let result = refresh::refresh(refresh::Request {
        s3: &deps.s3,
        bucket: &s.bucket,
        rule,
        which: &pinned,
        identities: &identities,
        key: &mask_key,
        pg_restore: &s.pg_restore,
        server: &admin,
        counters: &counters,
        interrupt: None,
        stop_at: stop_at(deadline),
        now,
    })
    .await;
    let report = write_report(deps, rule, now, &key, &result).await;
    let done = result?;
    tracing::info!(plan = plan_name, refresh = %rule.name, database = %done.database, swapped = done.swapped,
                   "refreshed");
    Ok(
        json!({"plan": plan_name, "refresh": rule.name, "export": key, "instance": server.id,
              "database": done.database, "swapped": done.swapped, "owner_role": done.owner_role,
              "access": format!("GRANT \"{0}\" TO <user> lets a staging user in", done.owner_role),
              "tables": done.tables.len(), "checks": done.checks, "report": report}),
    )
}

/// The masking key, from the stack's secret: refused when the stack names none or it is too short.
async fn masking_key(deps: &Deps) -> Result<MaskKey, RestoreError> {
    let Some(secret) = &deps.settings.masking_key_secret else {
        return Err(RestoreError::InvalidSecret(format!(
            "no masking key: {} is unset (the stack sets it to its MaskingKeySecret)",
            crate::settings::MASKING_KEY_SECRET
        )));
    };
    let text = crate::deps::secret_text(&deps.sm, secret).await?;
    MaskKey::from_secret_text(secret, &text).map_err(RestoreError::InvalidSecret)
}

/// The report of a started refresh, refreshed or failed (JSON and Markdown under `refresh/<name>/`); the JSON's
/// key, or `None` when it could not be written (logged: the refresh's outcome stands).
async fn write_report(
    deps: &Deps,
    rule: &RefreshRule,
    now: DateTime<Utc>,
    export_key: &str,
    result: &Result<Refreshed, RefreshError>,
) -> Option<String> {
    match refresh::write_report(&deps.s3, &deps.settings.bucket, rule, now, Some(export_key), result).await {
        Ok(key) => {
            tracing::info!(refresh = %rule.name, report = %key, "refresh report written");
            Some(key)
        }
        Err(e) => {
            tracing::warn!(refresh = %rule.name, error = %e, "refresh report not written");
            None
        }
    }
}

/// The run's metrics, per source database: success, and how long it took.
fn run_metrics(rule: &RefreshRule, ok: bool, seconds: f64) -> Metrics {
    let mut m = Metrics::new();
    m.db(
        &rule.from,
        metrics::REFRESH_SUCCESS,
        f64::from(u8::from(ok)),
        StandardUnit::Count,
    );
    m.db(
        &rule.from,
        metrics::REFRESH_DURATION_SECONDS,
        seconds,
        StandardUnit::Seconds,
    );
    m
}

async fn publish(deps: &Deps, rule: &RefreshRule, ok: bool, started: Instant) {
    let m = run_metrics(rule, ok, started.elapsed().as_secs_f64());
    if let Err(e) = m
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await
    {
        tracing::warn!(refresh = %rule.name, error = %e, "refresh metrics not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_counts_success_and_time_for_its_source() {
        let rule: RefreshRule = serde_json::from_value(json!({"name": "staging", "from": "app-prod",
            "export": "full", "into": {"instance": "staging-db", "database": "app"}}))
        .unwrap();
        let m = run_metrics(&rule, false, 12.5);
        assert_eq!(m.value_for("app-prod", metrics::REFRESH_SUCCESS), Some(0.0));
        assert_eq!(m.value_for("app-prod", metrics::REFRESH_DURATION_SECONDS), Some(12.5));
        assert_eq!(
            run_metrics(&rule, true, 1.0).value_for("app-prod", metrics::REFRESH_SUCCESS),
            Some(1.0)
        );
    }
}
