//! One event: render the message, skip it if it is a repeat within the window (or an OK that follows no alarm),
//! deliver it to every configured channel, and remember it.

use chrono::{DateTime, Utc};
use lifeboat::bucket::layout;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{NOTIFICATION_DELIVERED, NOTIFICATION_SUPPRESSED};
use lifeboat::monitoring::caches::{alarm_subject, AlarmSubject};
use lifeboat::monitoring::notify::{self, SentRecord};
use serde_json::{json, Value};

use crate::deliver::{self, DeliveryError};
use crate::deps::Deps;
use crate::event::{self, Notice};
use crate::failing;
use crate::render::{render, Kind, LastGood, Message, OpenAnomaly};
use lifeboat::monitoring::monitor::CONTENT_CHECK;
use lifeboat::watch::hold;
use lifeboat::watch::record::{CACHE, DATABASE};

/// The newest available snapshot and complete export of a database, best effort: a message is never held up by a
/// lookup that fails (each failure is logged, and the message goes without that line).
async fn last_good(deps: &Deps, db: &str) -> LastGood {
    LastGood {
        evidence: None,
        anomalies: Vec::new(),
        failing_caches: Vec::new(),
        snapshot: newest_snapshot(deps, db).await,
        export: match layout::newest_export(&deps.s3, &deps.settings.bucket, db, None).await {
            Ok(newest) => newest,
            Err(e) => {
                tracing::warn!(db = %db, error = %e, "could not find the newest export; the message goes without it");
                None
            }
        },
    }
}

/// A cache's newest verified RDB copy, best effort like [`last_good`].
async fn last_good_cache(deps: &Deps, cache: &str) -> LastGood {
    let prefix = layout::rdb_prefix(cache);
    let export = layout::newest_key(&deps.s3, &deps.settings.bucket, &prefix, layout::MANIFEST_SUFFIX).await;
    LastGood {
        export: export.unwrap_or_else(|e| {
            tracing::warn!(cache = %cache, error = %e, "could not find the newest RDB copy; the message goes without it");
            None
        }),
        ..LastGood::default()
    }
}

async fn newest_snapshot(deps: &Deps, db: &str) -> Option<(String, DateTime<Utc>)> {
    let all = match lifeboat::rds::selection::discover(&deps.rds).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(db = %db, error = %e, "could not list the databases; the message goes without the newest snapshot");
            return None;
        }
    };
    let d = all.iter().find(|d| d.id == db && d.cluster.is_none())?;
    match lifeboat::rds::snapshots::list_for_db(&deps.rds, db, d.kind).await {
        Ok(snaps) => snaps
            .iter()
            .filter(|s| s.is_available())
            .filter_map(|s| Some((s.id.clone(), s.created?)))
            .max_by_key(|(_, t)| *t),
        Err(e) => {
            tracing::warn!(db = %db, error = %e, "could not list the snapshots; the message goes without the newest one");
            None
        }
    }
}

/// The newest evidence report as a link, best effort like the rest of [`LastGood`].
async fn evidence_link(deps: &Deps) -> Option<String> {
    let bucket_name = &deps.settings.bucket;
    match layout::newest_evidence_report(&deps.s3, bucket_name).await {
        Ok(key) => key.map(|k| format!("s3://{bucket_name}/{k}")),
        Err(e) => {
            tracing::warn!(error = %e, "could not find the newest evidence report; the message goes without it");
            None
        }
    }
}

/// The last good backups the message about `notice` names (only an alarm of one database has any), and the
/// newest evidence report.
async fn last_good_for(deps: &Deps, notice: &Notice) -> LastGood {
    let last = match notice {
        Notice::Alarm { name, state, since, .. } => match alarm_subject(&deps.settings.alarm_scope, name) {
            Some((AlarmSubject::Database(db), _)) => last_good(deps, db).await,
            Some((AlarmSubject::Cache(cache), _)) => last_good_cache(deps, cache).await,
            None if state == "ALARM" && *name == failing::rdb_copy_alarm(&deps.settings.alarm_scope) => {
                let failing_caches = failing::caches(&deps.cw, &deps.settings.metrics_namespace, *since).await;
                let last = match failing_caches.as_slice() {
                    [cache] => last_good_cache(deps, cache).await,
                    _ => LastGood::default(),
                };
                LastGood { failing_caches, ..last }
            }
            None => LastGood::default(),
        },
        Notice::RestoreTestFailed { .. } => LastGood::default(),
    };
    let anomalies = match notice {
        Notice::Alarm { name, .. } => match alarm_subject(&deps.settings.alarm_scope, name) {
            Some((AlarmSubject::Database(db), CONTENT_CHECK)) => open_anomalies(deps, DATABASE, db).await,
            Some((AlarmSubject::Cache(cache), CONTENT_CHECK)) => open_anomalies(deps, CACHE, cache).await,
            _ => Vec::new(),
        },
        Notice::RestoreTestFailed { .. } => Vec::new(),
    };
    LastGood {
        evidence: evidence_link(deps).await,
        anomalies,
        ..last
    }
}

/// A content alarm's open anomalies, from their records (bounded by `lifeboat::watch::hold`), best effort: a
/// message is never held up by a read that fails (logged; the message goes without the findings).
async fn open_anomalies(deps: &Deps, kind: &str, resource: &str) -> Vec<OpenAnomaly> {
    // Boxed: the read's future nested in the handler's would pass the compiler's layout depth limit.
    match Box::pin(hold::open_anomalies(&deps.s3, &deps.settings.bucket, kind, resource)).await {
        Ok(open) => open
            .into_iter()
            .map(|(key, a)| OpenAnomaly {
                key,
                lines: a.findings.into_iter().map(|f| f.line).collect(),
                snapshots: a.held.snapshots.len(),
                exports: a.held.manifests.len(),
            })
            .collect(),
        Err(e) => {
            tracing::warn!(resource = %resource, error = %e, "could not read the open content anomalies; the message goes without them");
            Vec::new()
        }
    }
}

fn state_key(m: &Message) -> String {
    layout::notification_key(&m.key)
}

/// The record of the last message sent about the same alarm or execution. None when there is none (the usual
/// first time) or when it cannot be read: then the message goes out, and an unreadable record is logged.
async fn last_sent(deps: &Deps, m: &Message) -> Option<SentRecord> {
    let out = match deps
        .s3
        .get_object()
        .bucket(&deps.settings.bucket)
        .key(state_key(m))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return None,
        Err(e) => {
            tracing::warn!(about = %m.key, error = %Error::aws("GetObject", e), "could not read the last message sent; not deduplicated");
            return None;
        }
    };
    let body = match out.body.collect().await {
        Ok(body) => body.into_bytes(),
        Err(e) => {
            tracing::warn!(about = %m.key, error = %e, "could not read the last message sent; not deduplicated");
            return None;
        }
    };
    match serde_json::from_slice::<SentRecord>(&body) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(about = %m.key, error = %e, "the record of the last message sent is unreadable; not deduplicated");
            None
        }
    }
}

/// Whether the same message went out within the window.
async fn is_repeat(deps: &Deps, m: &Message, now: DateTime<Utc>) -> bool {
    let window = chrono::Duration::minutes(i64::from(deps.settings.dedupe_minutes));
    last_sent(deps, m)
        .await
        .is_some_and(|last| notify::is_repeat(&last, &m.fingerprint, now, window))
}

/// Remembers the message as sent, for the dedupe window.
async fn remember(deps: &Deps, m: &Message, now: DateTime<Utc>) -> Result<(), Error> {
    let record = SentRecord {
        fingerprint: m.fingerprint.clone(),
        sent_at: now,
        subject: m.subject.clone(),
    };
    deps.s3
        .put_object()
        .bucket(&deps.settings.bucket)
        .key(state_key(m))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .body(record.to_json().into_bytes().into())
        .send()
        .await
        .map_err(|e| Error::aws("PutObject", e))?;
    Ok(())
}

async fn webhook_url(deps: &Deps, secret: &str) -> Result<String, DeliveryError> {
    let out = deps
        .sm
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| DeliveryError::Secret(lifeboat::core::error::aws_error_message(&e)))?;
    let raw = out.secret_string().unwrap_or_default().trim().to_owned();
    match serde_json::from_str::<Value>(&raw) {
        Ok(v) => v
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(DeliveryError::SecretWithoutUrl),
        Err(_) => Ok(raw),
    }
}

/// A message that did not reach every channel: which failed and why, and which took it.
#[derive(Debug, thiserror::Error)]
#[error("notification `{subject}` not delivered: {}{}", failures(.failed), delivered_note(.delivered))]
pub struct NotDelivered {
    pub subject: String,
    pub failed: Vec<(Channel, DeliveryError)>,
    pub delivered: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sns,
    Webhook,
}

fn failures(failed: &[(Channel, DeliveryError)]) -> String {
    let each = failed.iter().map(|(c, e)| match c {
        Channel::Sns => e.to_string(),
        Channel::Webhook => format!("webhook: {e}"),
    });
    each.collect::<Vec<_>>().join("; ")
}

fn delivered_note(delivered: &[String]) -> String {
    if delivered.is_empty() {
        String::new()
    } else {
        format!(" (delivered: {})", delivered.join(", "))
    }
}

/// Sends the message to every configured channel; the channels that took it, or why one did not.
async fn send(deps: &Deps, m: &Message) -> Result<Vec<String>, NotDelivered> {
    let s = &deps.settings;
    let mut delivered = Vec::new();
    let mut failed = Vec::new();
    if let Some(topic) = &s.topic_arn {
        match deliver::to_sns(&deps.sns, topic, m).await {
            Ok(()) => delivered.push("sns".to_owned()),
            Err(e) => failed.push((Channel::Sns, e)),
        }
    }
    if let Some(secret) = &s.webhook_secret {
        let sent = match webhook_url(deps, secret).await {
            Ok(url) => deliver::to_webhook(&url, m, s.webhook_attempts, deps.retry_pause).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(attempts) => delivered.push(format!("webhook (attempt {attempts})")),
            Err(e) => failed.push((Channel::Webhook, e)),
        }
    }
    if failed.is_empty() {
        return Ok(delivered);
    }
    Err(NotDelivered {
        subject: m.subject.clone(),
        failed,
        delivered,
    })
}

/// Every run publishes what became of its message: `NotificationDelivered` (1, or 0 when a channel failed) or
/// `NotificationSuppressed` (a repeat within the window, or an OK that follows no alarm). A failure to publish is
/// logged, never allowed to stop the message itself.
async fn publish(deps: &Deps, name: &str, value: f64) {
    let mut metrics = lifeboat::core::metrics::Metrics::new();
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
        Ok(v) if v["sent"] == true => publish(deps, NOTIFICATION_DELIVERED, 1.0).await,
        Ok(_) => publish(deps, NOTIFICATION_SUPPRESSED, 1.0).await,
        Err(Error::InvalidEvent(_)) => {}
        Err(_) => publish(deps, NOTIFICATION_DELIVERED, 0.0).await,
    }
    result
}

/// Parse the event, look up the last good backups, render, skip quiet transitions and repeats, deliver, remember.
async fn deliver_one(deps: &Deps, payload: Value) -> Result<Value, Error> {
    let now = Utc::now();
    let notice = event::parse(payload)?;
    let last = last_good_for(deps, &notice).await;
    let m = render(&deps.settings.alarm_scope, &notice, &last, now);
    if m.kind == Kind::Quiet {
        return Ok(
            json!({"sent": false, "reason": "an OK that follows no alarm: nothing to report", "subject": m.subject}),
        );
    }
    if is_repeat(deps, &m, now).await {
        tracing::info!(about = %m.key, "identical message sent within the dedupe window; not resent");
        return Ok(json!({"sent": false, "reason": "sent within the dedupe window", "subject": m.subject}));
    }
    // A failure fails the invocation so EventBridge retries it: a message is never dropped silently.
    let delivered = send(deps, &m).await.map_err(|e| Error::PartialFailure(e.to_string()))?;
    remember(deps, &m, now).await?;
    tracing::info!(about = %m.key, channels = ?delivered, "notification sent");
    Ok(json!({"sent": true, "channels": delivered, "subject": m.subject, "text": m.text}))
}
