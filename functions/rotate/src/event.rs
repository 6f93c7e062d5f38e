//! The two events the rotate function serves ([`request`] tells them apart):
//! - a rotation step, which Secrets Manager sends once per step:
//!   `{"Step": "createSecret", "SecretId": "<arn>", "ClientRequestToken": "<version id>"}` (newer events also carry
//!   a `RotationToken`, which this function does not need);
//! - a plan tick (`plan.rs`, only with `LIFEBOAT_PLAN_DOCUMENT` set), an EventBridge Scheduled Event:
//!   `{"detail-type": "Scheduled Event", "source": "aws.scheduler", "time": "<scheduled time>", "detail": {}}`.
//!   It names nothing: the secrets it configures come from the plan document and RDS, never from the payload.

use chrono::{DateTime, Utc};
use lifeboat::core::error::Error;
use lifeboat::postgres::rotation::Step;
use serde::Deserialize;
use serde_json::Value;

#[derive(Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub step: Step,
    pub secret_id: String,
    /// The version being rotated in. Never logged.
    pub token: String,
}

impl std::fmt::Debug for RotationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationEvent")
            .field("step", &self.step)
            .field("secret_id", &self.secret_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    step: String,
    secret_id: String,
    client_request_token: String,
}

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Step(RotationEvent),
    /// Bring every plan member's secret in step with its plan's rotation rule; `time` is the scheduled time.
    PlanTick {
        time: DateTime<Utc>,
    },
}

/// The `detail-type` of a plan tick.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// An EventBridge Scheduled Event: only its type and time matter; the envelope's other fields are ignored.
#[derive(Deserialize)]
struct Tick {
    #[serde(rename = "detail-type")]
    detail_type: String,
    time: Option<DateTime<Utc>>,
}

/// A rotation step (it has `Step`) or a plan tick (it has `detail-type`).
pub fn request(payload: Value) -> Result<Request, Error> {
    if payload.get("detail-type").is_none() {
        return parse(payload).map(Request::Step);
    }
    let t: Tick = serde_json::from_value(payload).map_err(|e| Error::InvalidEvent(format!("plan tick: {e}")))?;
    if t.detail_type != SCHEDULED_EVENT {
        return Err(Error::InvalidEvent(format!(
            "unsupported detail-type `{}` (a plan tick is a `{SCHEDULED_EVENT}`)",
            t.detail_type
        )));
    }
    let time = t
        .time
        .ok_or_else(|| Error::InvalidEvent("plan tick: a Scheduled Event needs `time` (RFC 3339)".into()))?;
    Ok(Request::PlanTick { time })
}

/// A rotation step's event.
pub fn parse(payload: Value) -> Result<RotationEvent, Error> {
    let raw: Raw = serde_json::from_value(payload)
        .map_err(|e| Error::InvalidEvent(format!("expected a Secrets Manager rotation event: {e}")))?;
    let step = Step::parse(&raw.step).ok_or_else(|| {
        Error::InvalidEvent(format!(
            "unknown Step `{}`: expected createSecret, setSecret, testSecret or finishSecret",
            raw.step
        ))
    })?;
    if raw.secret_id.trim().is_empty() {
        return Err(Error::InvalidEvent("SecretId is empty".into()));
    }
    // Secrets Manager's version ids are 32 to 64 characters.
    if !(32..=64).contains(&raw.client_request_token.len()) {
        return Err(Error::InvalidEvent(format!(
            "ClientRequestToken must be 32 to 64 characters, got {}",
            raw.client_request_token.len()
        )));
    }
    Ok(RotationEvent {
        step,
        secret_id: raw.secret_id,
        token: raw.client_request_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_each_step_and_keeps_the_token_out_of_debug_output() {
        let e = parse(json!({
            "Step": "setSecret",
            "SecretId": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-AbCdEf",
            "ClientRequestToken": "0d8d4a6e-4a0c-4b53-9a41-7f2b3f1c9e10",
            "RotationToken": "ignored"
        }))
        .unwrap();
        assert_eq!(e.step, Step::Set);
        assert!(!format!("{e:?}").contains("0d8d4a6e"));
    }

    #[test]
    fn a_scheduled_event_is_a_plan_tick_and_a_step_is_a_step() {
        let tick = request(json!({"detail-type": "Scheduled Event", "source": "aws.scheduler",
            "time": "2026-12-13T03:15:00Z", "detail": {}}))
        .unwrap();
        let time = DateTime::parse_from_rfc3339("2026-12-13T03:15:00Z").unwrap().to_utc();
        assert_eq!(tick, Request::PlanTick { time });
        let step = request(json!({"Step": "testSecret", "SecretId": "s", "ClientRequestToken": "a".repeat(36)}));
        assert!(matches!(step, Ok(Request::Step(e)) if e.step == Step::Test));
        for (event, expected) in [
            (
                json!({"detail-type": "RDS DB Instance Event", "time": "2026-12-13T03:15:00Z"}),
                "unsupported detail-type",
            ),
            (json!({"detail-type": "Scheduled Event"}), "needs `time`"),
            (json!({"detail-type": "Scheduled Event", "time": "soon"}), "plan tick"),
        ] {
            let err = request(event).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let cases = [
            (
                json!({"Step": "rotate", "SecretId": "s", "ClientRequestToken": "a".repeat(36)}),
                "unknown Step `rotate`",
            ),
            (
                json!({"Step": "setSecret", "ClientRequestToken": "a".repeat(36)}),
                "missing field `SecretId`",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": "short"}),
                "32 to 64",
            ),
            (
                json!({"Step": "setSecret", "SecretId": " ", "ClientRequestToken": "a".repeat(36)}),
                "SecretId is empty",
            ),
        ];
        for (event, expected) in cases {
            let err = parse(event).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
