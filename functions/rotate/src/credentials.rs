//! The secret's value: the RDS secret JSON that AWS's rotation templates use (`engine`, `host`, `port`,
//! `username`, `password`, `dbname`, optional `masterarn`, optional `ssl`). Keys this function does not know are
//! kept as they are, so a rotation never drops what another tool stored in the secret.

use lifeboat::postgres::db::{SslMode, Target, TlsSettings};
use lifeboat::postgres::rotation::validate_username;
use lifeboat::postgres::secret_json::{self, FieldError, SecretJsonError};
use serde_json::{Map, Value};

/// Which credential a message is about: errors must say which one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Pending,
    Current,
    Previous,
    Master,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Master => "master",
        }
    }

    /// The staging label (or key) the credential comes from, for messages.
    pub fn source(self) -> &'static str {
        match self {
            Self::Pending => "AWSPENDING",
            Self::Current => "AWSCURRENT",
            Self::Previous => "AWSPREVIOUS",
            Self::Master => "the secret named by masterarn",
        }
    }
}

/// One version of the secret, parsed. The password is never printed.
#[derive(Clone)]
pub struct Credentials {
    /// Every key of the JSON, including those not modelled below.
    pub raw: Map<String, Value>,
    pub username: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub masterarn: Option<String>,
    /// The `ssl` key: `true`/`false`, or an explicit mode (`require`, `verify-ca`, `verify-full`, `disable`).
    pub ssl: Option<SslChoice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslChoice {
    On,
    Off,
    Mode(SslMode),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("masterarn", &self.masterarn)
            .field("ssl", &self.ssl)
            .finish()
    }
}

/// Why a secret's value cannot be rotated. The message names the key at fault, never a value (but the engine's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSecret {
    /// Not a JSON object, or a field of the wrong type (`lifeboat::postgres::secret_json`'s reason, which never quotes it).
    #[error(transparent)]
    Json(#[from] SecretJsonError),
    #[error("`engine` is `{0}`; this function rotates PostgreSQL secrets")]
    NotPostgres(String),
    /// The username cannot be a PostgreSQL role name (`lifeboat::postgres::rotation::validate_username`'s reason).
    #[error("`username`: {0}")]
    Username(String),
    /// `ssl` names no sslmode (`lifeboat::postgres::db::SslMode::parse`'s reason).
    #[error("`ssl`: {0}")]
    SslMode(String),
    #[error("`ssl` must be true, false or an sslmode")]
    SslNotAChoice,
}

impl From<FieldError> for InvalidSecret {
    fn from(e: FieldError) -> Self {
        Self::Json(e.into())
    }
}

/// `engine` is optional; when present it must be PostgreSQL's.
fn check_engine(raw: &Map<String, Value>) -> Result<(), InvalidSecret> {
    match secret_json::text(raw, "engine")? {
        Some(engine) if !matches!(engine.as_str(), "postgres" | "postgresql" | "aurora-postgresql") => {
            Err(InvalidSecret::NotPostgres(engine))
        }
        _ => Ok(()),
    }
}

fn ssl(raw: &Map<String, Value>) -> Result<Option<SslChoice>, InvalidSecret> {
    Ok(match raw.get("ssl") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(true)) => Some(SslChoice::On),
        Some(Value::Bool(false)) => Some(SslChoice::Off),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Some(SslChoice::On),
            "false" => Some(SslChoice::Off),
            other => Some(SslChoice::Mode(SslMode::parse(other).map_err(InvalidSecret::SslMode)?)),
        },
        Some(_) => return Err(InvalidSecret::SslNotAChoice),
    })
}

impl Credentials {
    /// Parses a secret's value. Errors name the key at fault, never a value.
    pub fn parse(json: &str) -> Result<Self, InvalidSecret> {
        let raw = secret_json::object(json)?;
        check_engine(&raw)?;
        let username = secret_json::required(&raw, "username")?;
        validate_username(&username).map_err(InvalidSecret::Username)?;
        let password = secret_json::required(&raw, "password")?;
        let host = secret_json::required(&raw, "host")?;
        // A number or a string, as AWS's templates accept it (`lifeboat::postgres::secret_json::port`).
        let port = secret_json::port(&raw)?.unwrap_or(5432);
        let dbname = secret_json::text(&raw, "dbname")?
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "postgres".into());
        let masterarn = secret_json::text(&raw, "masterarn")?.filter(|m| !m.is_empty());
        let ssl = ssl(&raw)?;
        Ok(Self {
            raw,
            username,
            password,
            host,
            port,
            dbname,
            masterarn,
            ssl,
        })
    }

    /// The same secret with another user and password; every other key kept.
    pub fn with_login(&self, username: &str, password: &str) -> Self {
        let mut next = self.clone();
        next.username = username.to_owned();
        next.password = password.to_owned();
        next.raw.insert("username".into(), Value::String(username.to_owned()));
        next.raw.insert("password".into(), Value::String(password.to_owned()));
        next
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.raw.clone()).to_string()
    }

    /// The TLS mode for this secret: its `ssl` key when present, else the function's setting. `ssl: true` never
    /// weakens the configured verification; `ssl: false` is an explicit choice of the secret's owner.
    pub fn tls(&self, configured: &TlsSettings) -> TlsSettings {
        let mode = match self.ssl {
            None => configured.mode,
            Some(SslChoice::On) if configured.mode == SslMode::Disable => SslMode::Require,
            Some(SslChoice::On) => configured.mode,
            Some(SslChoice::Off) => SslMode::Disable,
            Some(SslChoice::Mode(m)) => m,
        };
        TlsSettings {
            mode,
            ca_bundle: configured.ca_bundle.clone(),
        }
    }

    /// Where and as whom to connect; `dbname` overrides the secret's database (the master logs in to the user's).
    pub fn target(&self, configured: &TlsSettings, dbname: Option<&str>) -> Target {
        Target {
            host: self.host.clone(),
            port: self.port,
            dbname: dbname.unwrap_or(&self.dbname).to_owned(),
            user: self.username.clone(),
            password: self.password.clone(),
            tls: self.tls(configured),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = r#"{"engine":"postgres","host":"db.example.internal","port":"5432","username":"app",
        "password":"s3cret-Value","dbname":"app","masterarn":"arn:aws:secretsmanager:eu-west-1:1:secret:m","owner":"team-a"}"#;

    #[test]
    fn parses_the_aws_shape_and_keeps_unknown_keys() {
        let c = Credentials::parse(SECRET).unwrap();
        assert_eq!((c.username.as_str(), c.port, c.dbname.as_str()), ("app", 5432, "app"));
        assert!(c.masterarn.is_some());
        let next = c.with_login("app_clone", "n3w");
        let round: Map<String, Value> = serde_json::from_str(&next.to_json()).unwrap();
        assert_eq!(round["owner"], "team-a");
        assert_eq!(round["username"], "app_clone");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_key_never_the_value() {
        for (json, expected) in [
            (r#"{"username":"app","host":"h"}"#, "`password` is missing"),
            (
                r#"{"engine":"mysql","username":"a","password":"p","host":"h"}"#,
                "`engine` is `mysql`",
            ),
            (
                r#"{"username":"a","password":"p","host":"h","port":70000}"#,
                "`port` is not a port",
            ),
            (r#"{"username":"a","password":"p","host":"h","ssl":"prefer"}"#, "`ssl`"),
            (r#"["not", "an", "object"]"#, "not an object"),
            (r#"{"username":"a","password":"p-secret"#, "not JSON"),
        ] {
            let err = Credentials::parse(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
            assert!(!err.contains("p-secret"));
        }
    }

    /// Issue 12, item 12: the port as AWS's templates read it (`int(port)`), and no rejected value in an error.
    #[test]
    fn the_port_may_be_a_string_and_a_rejected_value_is_never_echoed() {
        for port in [r#""5432""#, r#"" 5432 ""#, "5432"] {
            let json = format!(r#"{{"username":"a","password":"p","host":"h","port":{port}}}"#);
            assert_eq!(Credentials::parse(&json).map(|c| c.port), Ok(5432), "{json}");
        }
        for (json, expected) in [
            (
                r#"{"username":"a","password":"p","host":"h","port":"hunter2"}"#,
                "`port` is not a port",
            ),
            (
                r#"{"username":"a","password":"p","host":"h","port":["hunter2"]}"#,
                "`port` must be a number",
            ),
            (
                r#"{"username":"a","password":["hunter2"],"host":"h"}"#,
                "`password` must be a string",
            ),
            (
                r#"{"username":"a","password":"p","host":{"h":"hunter2"}}"#,
                "`host` must be a string",
            ),
            (
                r#"{"username":"a","password":"p","host":"h","masterarn":7}"#,
                "`masterarn` must be a string",
            ),
            (r#""hunter2""#, "the secret is JSON but not an object"),
        ] {
            let err = Credentials::parse(json).unwrap_err().to_string();
            assert_eq!(err, expected, "{json}");
        }
    }

    #[test]
    fn ssl_key_is_honoured_without_weakening_the_setting() {
        let verify = TlsSettings {
            mode: SslMode::VerifyFull,
            ca_bundle: Some("/ca.pem".into()),
        };
        let with = |ssl: &str| {
            let json = format!(r#"{{"username":"a","password":"p","host":"h","ssl":{ssl}}}"#);
            Credentials::parse(&json).unwrap().tls(&verify).mode
        };
        assert_eq!(with("true"), SslMode::VerifyFull);
        assert_eq!(with("false"), SslMode::Disable);
        assert_eq!(with("\"require\""), SslMode::Require);
        let plain = TlsSettings {
            mode: SslMode::Disable,
            ca_bundle: None,
        };
        let c = Credentials::parse(r#"{"username":"a","password":"p","host":"h","ssl":true}"#).unwrap();
        assert_eq!(c.tls(&plain).mode, SslMode::Require);
    }
}
