//! The event Secrets Manager sends the rotation function, once per step:
//! `{"Step": "createSecret", "SecretId": "<arn>", "ClientRequestToken": "<version id>"}` (newer events also carry a
//! `RotationToken`, which this function does not need).

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
