//! One event: render the message, skip it if it is a repeat within the window (or an OK that follows no alarm),
//! deliver it to every configured channel, and remember it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat::bucket;
use lifeboat::error::Error;
use lifeboat::monitor::parse_alarm_name;
use serde_json::{json, Value};

use crate::deliver;
use crate::event::{self, Notice};
use crate::render::{render, Kind, LastGood, Message};
use crate::settings::NotifySettings;

#[derive(Debug)]
pub struct Deps {
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub settings: NotifySettings,
    /// The first pause between webhook attempts (doubling after each).
    pub retry_pause: Duration,
}

impl Deps {
    pub fn new(config: &aws_config::SdkConfig, settings: NotifySettings) -> Self {
        Self {
            rds: aws_sdk_rds::Client::new(config),
            s3: aws_sdk_s3::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            sm: aws_sdk_secretsmanager::Client::new(config),
            cw: aws_sdk_cloudwatch::Client::new(config),
            settings,
            retry_pause: Duration::from_secs(2),
        }
    }
}

/// The newest available snapshot and complete export of a database, best effort: a message is never held up by a
/// lookup that fails.
async fn last_good(deps: &Deps, db: &str) -> LastGood {
    let mut last = LastGood::default();
    if let Ok(all) = lifeboat::selection::discover(&deps.rds).await {
        if let Some(d) = all.iter().find(|d| d.id == db && d.cluster.is_none()) {
            if let Ok(snaps) = lifeboat::rds::list_for_db(&deps.rds, db, d.kind).await {
                last.snapshot = snaps
                    .iter()
                    .filter(|s| s.is_available())
                    .filter_map(|s| Some((s.id.clone(), s.created?)))
                    .max_by_key(|(_, t)| *t);
            }
        }
    }
    match bucket::newest_export(&deps.s3, &deps.settings.bucket, db, None).await {
        Ok(newest) => last.export = newest,
        Err(e) => tracing::warn!(db = %db, error = %e, "could not find the newest export; the message goes without it"),
    }
    last
}

fn state_key(m: &Message) -> String {
    bucket::notification_key(&m.key)
}

/// Whether the same message went out within the window.
async fn is_repeat(deps: &Deps, m: &Message, now: DateTime<Utc>) -> bool {
    let window = chrono::Duration::minutes(i64::from(deps.settings.dedupe_minutes));
    let Ok(out) = deps
        .s3
        .get_object()
        .bucket(&deps.settings.bucket)
        .key(state_key(m))
        .send()
        .await
    else {
        return false;
    };
    let Ok(body) = out.body.collect().await else {
        return false;
    };
    let Ok(state) = serde_json::from_slice::<Value>(&body.into_bytes()) else {
        return false;
    };
    let same = state.get("fingerprint").and_then(Value::as_str) == Some(m.fingerprint.as_str());
    let sent = state
        .get("sent_at")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<DateTime<Utc>>().ok());
    same && sent.is_some_and(|t| now - t < window)
}

async fn webhook_url(deps: &Deps, secret: &str) -> Result<String, String> {
    let out = deps
        .sm
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| format!("reading the webhook secret: {}", lifeboat::error::aws_error_message(&e)))?;
    let raw = out.secret_string().unwrap_or_default().trim().to_owned();
    match serde_json::from_str::<Value>(&raw) {
        Ok(v) => v
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "the webhook secret is JSON without a `url` key".to_owned()),
        Err(_) => Ok(raw),
    }
}

/// Every run publishes what became of its message: `NotificationDelivered` (1, or 0 when a channel failed) or
/// `NotificationSuppressed` (a repeat within the window, or an OK that follows no alarm). A failure to publish is
/// logged, never allowed to stop the message itself.
async fn publish(deps: &Deps, name: &str, value: f64) {
    let mut metrics = lifeboat::metrics::Metrics::new();
    metrics.put(name, value, aws_sdk_cloudwatch::types::StandardUnit::Count, &[]);
    if let Err(e) = metrics
        .publish(&deps.cw, &deps.settings.metrics_namespace, Utc::now())
        .await
    {
        tracing::warn!(error = %e, "could not publish notify's metrics");
    }
}

pub async fn handle(deps: &Deps, payload: Value) -> Result<Value, Error> {
    let result = deliver_one(deps, payload).await;
    match &result {
        Ok(v) if v["sent"] == true => publish(deps, "NotificationDelivered", 1.0).await,
        Ok(_) => publish(deps, "NotificationSuppressed", 1.0).await,
        Err(Error::InvalidEvent(_)) => {}
        Err(_) => publish(deps, "NotificationDelivered", 0.0).await,
    }
    result
}

async fn deliver_one(deps: &Deps, payload: Value) -> Result<Value, Error> {
    let now = Utc::now();
    let notice = event::parse(payload)?;
    let last = match &notice {
        Notice::Alarm { name, .. } => match parse_alarm_name(name) {
            Some((db, _)) => last_good(deps, db).await,
            None => LastGood::default(),
        },
        Notice::RestoreTestFailed { .. } => LastGood::default(),
    };
    let m = render(&notice, &last, now);
    if m.kind == Kind::Quiet {
        return Ok(
            json!({"sent": false, "reason": "an OK that follows no alarm: nothing to report", "subject": m.subject}),
        );
    }
    if is_repeat(deps, &m, now).await {
        tracing::info!(about = %m.key, "identical message sent within the dedupe window; not resent");
        return Ok(json!({"sent": false, "reason": "sent within the dedupe window", "subject": m.subject}));
    }
    let s = &deps.settings;
    let mut delivered = Vec::new();
    let mut failed = Vec::new();
    if let Some(topic) = &s.topic_arn {
        match deliver::to_sns(&deps.sns, topic, &m).await {
            Ok(()) => delivered.push("sns".to_owned()),
            Err(e) => failed.push(e),
        }
    }
    if let Some(secret) = &s.webhook_secret {
        let sent = match webhook_url(deps, secret).await {
            Ok(url) => deliver::to_webhook(&url, &m, s.webhook_attempts, deps.retry_pause).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(attempts) => delivered.push(format!("webhook (attempt {attempts})")),
            Err(e) => failed.push(format!("webhook: {e}")),
        }
    }
    if !failed.is_empty() {
        // Fail the invocation so EventBridge retries it: a message is never dropped silently.
        return Err(Error::PartialFailure(format!(
            "notification `{}` not delivered: {}{}",
            m.subject,
            failed.join("; "),
            if delivered.is_empty() {
                String::new()
            } else {
                format!(" (delivered: {})", delivered.join(", "))
            }
        )));
    }
    let state = json!({"fingerprint": m.fingerprint, "sent_at": now, "subject": m.subject});
    deps.s3
        .put_object()
        .bucket(&s.bucket)
        .key(state_key(&m))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(state.to_string().into_bytes().into())
        .send()
        .await
        .map_err(|e| Error::aws("PutObject", e))?;
    tracing::info!(about = %m.key, channels = ?delivered, "notification sent");
    Ok(json!({"sent": true, "channels": delivered, "subject": m.subject, "text": m.text}))
}
