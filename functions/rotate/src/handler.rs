//! The entry ([`run`]: a rotation step or a plan tick, `crate::plan`) and the four rotation steps. Each step re-reads the secret's state and does only what is still to do, so retries
//! and redeliveries are harmless; none of them touches AWSCURRENT until finishSecret, so the current
//! credentials keep logging in whatever step fails.

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StandardUnit;
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::postgres::rotation::{self, alternate_user, Plan, Step, Strategy, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use serde::Serialize;
use serde_json::Value;

use crate::credentials::{Credentials, InvalidSecret, Role};
use crate::deps::Deps;
use crate::error::RotateError;
use crate::{event, postgres, secrets, set_secret};

/// What a step did, returned as the invocation's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub secret: String,
    pub step: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<&'static str>,
    /// The user whose password this rotation sets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub result: &'static str,
    pub seconds: f64,
}

/// The Lambda entry: a plan tick (`crate::plan`) or one rotation step ([`handle`]), as the invocation's JSON result.
pub async fn run(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Value, RotateError> {
    let to_json = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| RotateError::protocol(format!("the result could not be written as JSON: {e}")))
    };
    match event::request(payload.clone()).map_err(RotateError::invalid_event)? {
        event::Request::PlanTick { time } => {
            to_json(serde_json::to_value(crate::plan::tick(deps, time, deadline).await?))
        }
        event::Request::Step(_) => to_json(serde_json::to_value(handle(deps, payload, deadline).await?)),
    }
}

/// Runs one step within its time budget, publishes its metrics, and logs its result.
pub async fn handle(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Outcome, RotateError> {
    let started = Instant::now();
    let ev = event::parse(payload).map_err(RotateError::invalid_event)?;
    let budget = budget(deps.settings.step_budget, started, deadline);
    let run = tokio::time::timeout(budget, step(deps, &ev)).await;
    let seconds = started.elapsed().as_secs_f64();
    let result = run.unwrap_or_else(|_| {
        Err((
            ev.secret_id.clone(),
            RotateError::timeout(format!(
                "the step ran out of its time budget ({}s); nothing after the last completed action was done",
                budget.as_secs()
            )),
        ))
    });
    let (name, result) = finished(&ev, result, seconds);
    publish_metrics(deps, &name, ev.step, result.is_ok(), seconds).await;
    match &result {
        Ok(o) => tracing::info!(
            secret = %o.secret, step = o.step, strategy = o.strategy, user = o.user, result = o.result,
            seconds = o.seconds, "rotation step finished"
        ),
        Err(e) => tracing::error!(secret = %name, step = ev.step.as_str(), error = %e.message, "rotation step failed"),
    }
    result
}

/// The step's time: the configured budget, cut to stop early enough to report a failure before Lambda stops the
/// invocation.
fn budget(configured: Duration, started: Instant, deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(deadline) => configured.min(
            deadline
                .saturating_duration_since(started)
                .saturating_sub(Duration::from_secs(2)),
        ),
        None => configured,
    }
}

/// The secret's name for metrics and logs (the id as given when the step failed before reading it), and the
/// result as reported: its duration on success; on failure, the step and secret named and the token hidden.
fn finished(ev: &event::RotationEvent, result: StepResult, seconds: f64) -> (String, Result<Outcome, RotateError>) {
    match result {
        Ok((name, mut outcome)) => {
            outcome.seconds = seconds;
            (name, Ok(outcome))
        }
        Err((name, mut err)) => {
            // Error messages from AWS can quote the version id; the token is never reported.
            err.message =
                format!("{} of secret {name}: {}", ev.step.as_str(), err.message).replace(&ev.token, "<token>");
            (name, Err(err))
        }
    }
}

/// Publishes the step's success and duration. A failure to publish is logged, never the step's failure.
async fn publish_metrics(deps: &Deps, name: &str, step: Step, ok: bool, seconds: f64) {
    let mut metrics = Metrics::new();
    let dims = [
        (metrics::SECRET_DIMENSION, name),
        (metrics::STEP_DIMENSION, step.as_str()),
    ];
    metrics.put(
        metrics::ROTATION_SUCCESS,
        f64::from(u8::from(ok)),
        StandardUnit::Count,
        &dims,
    );
    metrics.put(
        metrics::ROTATION_STEP_DURATION_SECONDS,
        seconds,
        StandardUnit::Seconds,
        &dims,
    );
    if let Err(e) = metrics
        .publish(&deps.cw, &deps.settings.metrics_namespace, chrono::Utc::now())
        .await
    {
        tracing::warn!(error = %e, secret = %name, "could not publish rotation metrics");
    }
}

type StepResult = Result<(String, Outcome), (String, RotateError)>;

async fn step(deps: &Deps, ev: &event::RotationEvent) -> StepResult {
    let meta = secrets::describe(&deps.sm, &ev.secret_id)
        .await
        .map_err(|e| (ev.secret_id.clone(), e))?;
    let name = meta.name.clone();
    let fail = |e: RotateError| (name.clone(), e);
    let done = |strategy: Option<Strategy>, user: Option<String>, result: &'static str| Outcome {
        secret: name.clone(),
        step: ev.step.as_str(),
        strategy: strategy.map(Strategy::as_str),
        user,
        result,
        seconds: 0.0,
    };
    match rotation::plan(meta.rotation_enabled, &meta.versions, &ev.token)
        .map_err(|m| fail(RotateError::protocol(m)))?
    {
        Plan::AlreadyCurrent => return Ok((name.clone(), done(None, None, "already_current"))),
        Plan::Proceed => {}
    }
    let sm = &deps.sm;
    let id = ev.secret_id.as_str();
    let current = secrets::require(sm, id, AWSCURRENT, None, Role::Current)
        .await
        .map_err(fail)?;
    let strategy = if current.masterarn.is_some() {
        Strategy::AlternatingUsers
    } else {
        Strategy::SingleUser
    };
    let outcome = match ev.step {
        Step::Create => create(deps, ev, &current, strategy).await,
        Step::Set => set_secret::set(&deps.sm, &deps.settings, ev, &current, strategy)
            .await
            .map(|(user, result)| (Some(user), result)),
        Step::Test => test(deps, ev).await,
        Step::Finish => finish(deps, ev, &meta.versions).await,
    }
    .map_err(fail)?;
    let (user, result) = outcome;
    Ok((name.clone(), done(Some(strategy), user, result)))
}

type Done = (Option<String>, &'static str);

/// createSecret: a pending value for this token, made once. A retry finds it and never makes another password.
async fn create(
    deps: &Deps,
    ev: &event::RotationEvent,
    current: &Credentials,
    strategy: Strategy,
) -> Result<Done, RotateError> {
    let sm = &deps.sm;
    if let Some(pending) = secrets::get(sm, &ev.secret_id, AWSPENDING, Some(&ev.token), Role::Pending).await? {
        return Ok((Some(pending.username), "pending_exists"));
    }
    let user = match strategy {
        Strategy::SingleUser => current.username.clone(),
        Strategy::AlternatingUsers => {
            let previous = secrets::get(sm, &ev.secret_id, AWSPREVIOUS, None, Role::Previous)
                .await
                .ok()
                .flatten();
            alternate_user(&current.username, previous.as_ref().map(|p| p.username.as_str()))
                .map_err(|r| RotateError::invalid_secret(Role::Current, InvalidSecret::Username(r)))?
        }
    };
    let s = &deps.settings;
    let password = secrets::random_password(sm, s.password_length, &s.exclude_characters).await?;
    let pending = current.with_login(&user, &password);
    secrets::put_pending(sm, &ev.secret_id, &ev.token, &pending).await?;
    Ok((Some(user), "pending_created"))
}

/// testSecret: the pending credentials log in and are who they say.
async fn test(deps: &Deps, ev: &event::RotationEvent) -> Result<Done, RotateError> {
    let s = &deps.settings;
    let pending = secrets::require(&deps.sm, &ev.secret_id, AWSPENDING, Some(&ev.token), Role::Pending).await?;
    let client = postgres::connect(&pending, Role::Pending, &s.tls, None, s.connect_timeout).await?;
    postgres::check_login(&client, Role::Pending, &pending.username).await?;
    Ok((Some(pending.username), "pending_logs_in"))
}

/// finishSecret: AWSCURRENT moves to the new version (Secrets Manager keeps the old one as AWSPREVIOUS).
async fn finish(
    deps: &Deps,
    ev: &event::RotationEvent,
    versions: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Done, RotateError> {
    let from = rotation::current_version(versions)
        .ok_or_else(|| RotateError::protocol("no version of the secret is AWSCURRENT"))?;
    secrets::promote(&deps.sm, &ev.secret_id, &ev.token, from).await?;
    Ok((None, "promoted"))
}
