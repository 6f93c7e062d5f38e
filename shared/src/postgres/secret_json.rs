//! The fields of a database secret's JSON value, read the way AWS writes and reads them: the one place that
//! decides which JSON types a field of an RDS secret may have.
//!
//! The model is AWS's rotation templates (`SecretsManagerRDSPostgreSQLRotation*`): they read `port` with
//! `int(secret['port'])`, so a port stored as a string (`"port": "5432"`, as some consoles, Terraform modules and
//! hand-written secrets have it) is as good as a number. Lifeboat accepts both, everywhere a secret is parsed
//! (the rotate function's `Credentials`, and [`crate::postgres::db::DbSecret`] for the export).
//!
//! It must never put a value it read into an error: a secret's fields are secrets, and a password pasted into
//! the wrong field (or a port that holds one) would otherwise land in logs, in Lambda's error output and in the
//! run summary. Errors name the field and the expected type, nothing else (serde's own messages quote the value:
//! `invalid type: string "hunter2", expected u16`, which is why this module does not let serde type the fields).
//! It does no I/O.

use serde_json::{Map, Value};

/// What is wrong with one field. The message names the field, never its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("`{0}` must be a string")]
    NotAString(&'static str),
    #[error("`{0}` is missing or empty")]
    Missing(&'static str),
    #[error("`port` is not a port")]
    NotAPort,
    #[error("`port` must be a number")]
    PortNotANumber,
}

/// What is wrong with a secret's value as a whole, or with one of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretJsonError {
    /// serde's syntax errors give a position, never the text; only the position is kept.
    #[error("the secret is not JSON (line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("the secret is JSON but not an object")]
    NotAnObject,
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// The secret's value as a JSON object.
pub fn object(json: &str) -> Result<Map<String, Value>, SecretJsonError> {
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(SecretJsonError::NotAnObject),
        Err(e) => Err(SecretJsonError::NotJson {
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// A string field; `None` when absent or null.
pub fn text(map: &Map<String, Value>, key: &'static str) -> Result<Option<String>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FieldError::NotAString(key)),
    }
}

/// A string field that must be present and not empty.
pub fn required(map: &Map<String, Value>, key: &'static str) -> Result<String, FieldError> {
    text(map, key)?
        .filter(|s| !s.is_empty())
        .ok_or(FieldError::Missing(key))
}

/// The `port` field: a number, or a string of digits (surrounding blanks allowed, as Python's `int()` allows
/// them); `None` when absent or null.
pub fn port(map: &Map<String, Value>) -> Result<Option<u16>, FieldError> {
    match map.get("port") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or(FieldError::NotAPort),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| FieldError::NotAPort),
        Some(_) => Err(FieldError::PortNotANumber),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_port_is_a_number_or_a_string_of_digits() {
        for v in [json!(5432), json!("5432"), json!(" 5432 ")] {
            assert_eq!(port(&map(json!({ "port": v }))), Ok(Some(5432)), "{v}");
        }
        assert_eq!(port(&map(json!({}))), Ok(None));
        assert_eq!(port(&map(json!({"port": null}))), Ok(None));
        for v in [
            json!(70000),
            json!(-1),
            json!(54.5),
            json!("hunter2"),
            json!(""),
            json!("70000"),
        ] {
            assert_eq!(port(&map(json!({ "port": v }))), Err(FieldError::NotAPort), "{v}");
        }
        assert_eq!(port(&map(json!({"port": true}))), Err(FieldError::PortNotANumber));
        assert_eq!(port(&map(json!({"port": ["x"]}))), Err(FieldError::PortNotANumber));
    }

    #[test]
    fn a_type_error_names_the_field_never_the_value() {
        let m = map(json!({"port": "hunter2", "username": 12345, "password": ["hunter2"]}));
        let errors = [
            port(&m).unwrap_err().to_string(),
            text(&m, "username").unwrap_err().to_string(),
            required(&m, "password").unwrap_err().to_string(),
        ];
        assert_eq!(
            errors,
            [
                "`port` is not a port",
                "`username` must be a string",
                "`password` must be a string"
            ]
        );
        assert_eq!(
            required(&map(json!({"host": ""})), "host").unwrap_err().to_string(),
            "`host` is missing or empty"
        );
        for (json, expected) in [
            (r#""hunter2""#, "the secret is JSON but not an object"),
            ("hunter2", "the secret is not JSON (line 1, column 1)"),
            (r#"{"password": "hunter2"#, "the secret is not JSON (line 1, column 21)"),
        ] {
            assert_eq!(object(json).unwrap_err().to_string(), expected);
        }
    }

    proptest! {
        /// Whatever a field holds, an error about it never contains what it held.
        #[test]
        fn errors_never_echo_the_value(tail in "[a-zA-Z0-9!$%^*]{0,20}", as_string in any::<bool>()) {
            // A prefix no message contains, so a value cannot match a message's own words by chance.
            let value = format!("x9Q{tail}");
            let v = if as_string { json!(value) } else { json!([value]) };
            let m = map(json!({ "port": v.clone(), "username": v.clone(), "password": v }));
            for err in [
                port(&m).err().map(|e| e.to_string()),
                text(&m, "username").err().map(|e| e.to_string()),
                required(&m, "password").err().map(|e| e.to_string()),
                object(&format!("{{\"password\": \"{value}")).err().map(|e| e.to_string()),
            ]
            .into_iter()
            .flatten()
            {
                prop_assert!(!err.contains(&value), "{err}");
            }
        }
    }
}
