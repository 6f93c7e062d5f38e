//! Connections to the databases Lifeboat backs up, with credentials read from Secrets Manager at use time.
//!
//! TLS is required by default (`verify-full`); plaintext happens only when the operator sets
//! `LIFEBOAT_DB_SSLMODE=disable`, never as a fallback. Credentials are fetched when needed, so a rotated
//! password takes effect at the next run without redeploying anything. Nothing here logs a password.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::core::error::{aws_error_message, ConfigError};
use crate::postgres::secret_json::{self, FieldError, SecretJsonError};

pub const SSLMODE: &str = "LIFEBOAT_DB_SSLMODE";
pub const CA_BUNDLE: &str = "LIFEBOAT_DB_CA_BUNDLE";

/// libpq's `sslmode` values that Lifeboat supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// Encrypted, server not authenticated.
    Require,
    /// Encrypted, certificate chain checked against the CA bundle, host name not checked.
    VerifyCa,
    /// Encrypted, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "disable" => Ok(Self::Disable),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err("expected disable, require, verify-ca or verify-full".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// How to reach databases: the TLS settings every connection uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// PEM file of trusted CAs (for RDS: the regional or global bundle from AWS's trust store).
    pub ca_bundle: Option<String>,
}

impl TlsSettings {
    pub fn from_env(env: &impl crate::core::settings::Env) -> Result<Self, ConfigError> {
        let raw = env.get(SSLMODE).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mode = match &raw {
            None => SslMode::VerifyFull,
            Some(v) => SslMode::parse(v).map_err(|reason| ConfigError::new(SSLMODE, v, reason))?,
        };
        let ca_bundle = env
            .get(CA_BUNDLE)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
            match &ca_bundle {
                None => {
                    return Err(ConfigError::new(
                        CA_BUNDLE,
                        "",
                        format!(
                            "{SSLMODE}={} needs a CA bundle (PEM) to verify the server",
                            mode.as_str()
                        ),
                    ))
                }
                Some(path) if !std::path::Path::new(path).is_file() => {
                    return Err(ConfigError::new(CA_BUNDLE, path, "no such file"));
                }
                Some(_) => {}
            }
        }
        Ok(Self { mode, ca_bundle })
    }
}

/// The RDS secret JSON (the shape AWS's rotation templates use). `host`, `port` and `dbname` may be absent in
/// an RDS-managed master secret; the caller fills them from the instance's endpoint.
///
/// Its fields are read by [`crate::postgres::secret_json`], not typed by serde: the port may be a string (as AWS's
/// templates accept it), and an error names the field at fault, never the value it held.
#[derive(Clone, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct DbSecret {
    pub engine: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: String,
    pub password: String,
    pub dbname: Option<String>,
}

impl TryFrom<Map<String, Value>> for DbSecret {
    type Error = FieldError;

    fn try_from(map: Map<String, Value>) -> Result<Self, FieldError> {
        Ok(Self {
            engine: secret_json::text(&map, "engine")?,
            host: secret_json::text(&map, "host")?,
            port: secret_json::port(&map)?,
            username: secret_json::text(&map, "username")?.ok_or(FieldError::Missing("username"))?,
            password: secret_json::text(&map, "password")?.ok_or(FieldError::Missing("password"))?,
            dbname: secret_json::text(&map, "dbname")?,
        })
    }
}

impl DbSecret {
    /// Parses a secret's value. Unlike `serde_json::from_str`, a value that is not an object (a plain-text
    /// secret) is refused without being quoted.
    pub fn parse(json: &str) -> Result<Self, SecretJsonError> {
        Ok(Self::try_from(secret_json::object(json)?)?)
    }
}

impl std::fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSecret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("dbname", &self.dbname)
            .finish()
    }
}

/// Why a connection could not be made; never contains the password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("reading secret {secret}: {message}")]
    Secret { secret: String, message: String },
    #[error("secret {secret} is not the RDS secret JSON (username, password, host, port, dbname): {message}")]
    SecretShape { secret: String, message: String },
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("connecting to {host}:{port}/{dbname} as {user}: {} failure: {message}", kind.as_str())]
    Connect {
        host: String,
        port: u16,
        dbname: String,
        user: String,
        kind: FailureKind,
        message: String,
    },
}

impl DbError {
    /// What kind of failure this was, for errors and metrics that must say *why* (a wrong password is not an
    /// outage).
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Connect { kind, .. } => *kind,
            Self::Tls(_) => FailureKind::Tls,
            Self::Secret { .. } | Self::SecretShape { .. } => FailureKind::Secret,
        }
    }
}

/// Why talking to a database failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Unreachable, refused, timed out, or the connection dropped.
    Network,
    /// The server rejected the credentials (SQLSTATE class 28).
    Authentication,
    /// Logged in, but not allowed (SQLSTATE 42501).
    Permission,
    /// TLS could not be set up or the server's certificate was not trusted.
    Tls,
    /// The secret could not be read or is not the expected JSON.
    Secret,
    /// Anything else the server reported.
    Database,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Authentication => "authentication",
            Self::Permission => "permission",
            Self::Tls => "TLS",
            Self::Secret => "secret",
            Self::Database => "database",
        }
    }

    /// Classifies an error from tokio-postgres (connecting or running a statement).
    pub fn of(err: &tokio_postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            let code = db.code().code();
            return if code.starts_with("28") {
                Self::Authentication
            } else if code == "42501" {
                Self::Permission
            } else {
                Self::Database
            };
        }
        let text = aws_error_message(err).to_ascii_lowercase();
        if ["certificate", "tls", "handshake", "ssl"]
            .iter()
            .any(|w| text.contains(w))
        {
            Self::Tls
        } else {
            Self::Network
        }
    }
}

/// Reads the current value of a database secret.
pub async fn read_secret(sm: &aws_sdk_secretsmanager::Client, secret_id: &str) -> Result<DbSecret, DbError> {
    let out = sm
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| DbError::Secret {
            secret: secret_id.to_owned(),
            message: aws_error_message(&e),
        })?;
    let text = out.secret_string().ok_or_else(|| DbError::SecretShape {
        secret: secret_id.to_owned(),
        message: "the secret has no SecretString".into(),
    })?;
    // The message names the field at fault, never a value.
    DbSecret::parse(text).map_err(|e| DbError::SecretShape {
        secret: secret_id.to_owned(),
        message: e.to_string(),
    })
}

/// Everything needed to open a connection.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: String,
    pub tls: TlsSettings,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}:{}/{} ({})",
            self.user,
            self.host,
            self.port,
            self.dbname,
            self.tls.mode.as_str()
        )
    }
}

impl Target {
    fn config(&self, connect_timeout: Duration) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.dbname)
            .user(&self.user)
            .password(&self.password)
            .application_name("lifeboat")
            .connect_timeout(connect_timeout)
            .ssl_mode(match self.tls.mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                _ => tokio_postgres::config::SslMode::Require,
            });
        c
    }

    /// The libpq environment for pg_dump/pg_restore/psql: the password travels in the child's environment,
    /// never on its command line.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGUSER", self.user.clone()),
            ("PGPASSWORD", self.password.clone()),
            ("PGSSLMODE", self.tls.mode.as_str().to_owned()),
            ("PGAPPNAME", "lifeboat".to_owned()),
            ("PGCONNECT_TIMEOUT", "10".to_owned()),
        ];
        if let Some(ca) = &self.tls.ca_bundle {
            env.push(("PGSSLROOTCERT", ca.clone()));
        }
        env
    }
}

/// A database error in one line: the server's message and SQLSTATE, or the client's error chain.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => aws_error_message(e),
    }
}

/// Opens a connection and drives it on a background task.
pub async fn connect(target: &Target, connect_timeout: Duration) -> Result<tokio_postgres::Client, DbError> {
    let err = |e: tokio_postgres::Error| DbError::Connect {
        host: target.host.clone(),
        port: target.port,
        dbname: target.dbname.clone(),
        user: target.user.clone(),
        kind: FailureKind::of(&e),
        message: describe(&e),
    };
    let config = target.config(connect_timeout);
    if target.tls.mode == SslMode::Disable {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.map_err(err)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "database connection closed with an error");
            }
        });
        return Ok(client);
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(&target.tls)?);
    let (client, conn) = config.connect(tls).await.map_err(err)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "database connection closed with an error");
        }
    });
    Ok(client)
}

/// The rustls configuration for a TLS mode, as libpq reads the modes (also used for caches).
pub(crate) fn client_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, DbError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Tls(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    if let Some(path) = &tls.ca_bundle {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| DbError::Tls(format!("reading {path}: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| DbError::Tls(format!("reading {path}: {e}")))?;
            roots.add(cert).map_err(|e| DbError::Tls(format!("{path}: {e}")))?;
        }
    }
    let config = match tls.mode {
        SslMode::VerifyFull => builder.with_root_certificates(roots).with_no_client_auth(),
        mode => {
            let inner = if roots.is_empty() {
                None
            } else {
                Some(
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| DbError::Tls(e.to_string()))?,
                )
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ModeVerifier { mode, inner, provider }))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// `require` (encrypt only) and `verify-ca` (chain without host name), as libpq defines them.
#[derive(Debug)]
struct ModeVerifier {
    mode: SslMode,
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for ModeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match (self.mode, &self.inner) {
            (SslMode::Require, _) => Ok(ServerCertVerified::assertion()),
            (_, Some(inner)) => match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
                | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                    Ok(ServerCertVerified::assertion())
                }
                other => other,
            },
            (_, None) => Err(rustls::Error::General("no CA bundle to verify the server with".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_verified_by_default_and_needs_a_bundle() {
        let env = |_: &str| None;
        let err = TlsSettings::from_env(&env).unwrap_err();
        assert_eq!(err.var, CA_BUNDLE);
        let env = |n: &str| (n == SSLMODE).then(|| "disable".to_owned());
        assert_eq!(TlsSettings::from_env(&env).unwrap().mode, SslMode::Disable);
        let env = |n: &str| (n == SSLMODE).then(|| "prefer".to_owned());
        let err = TlsSettings::from_env(&env).unwrap_err();
        assert_eq!(
            (err.var.as_str(), err.value.as_str()),
            (SSLMODE, "prefer"),
            "no silent fallback modes"
        );
    }

    /// Issue 12, item 12: the port as AWS's templates accept it, and type errors that name the field only.
    #[test]
    fn secrets_of_the_shapes_aws_writes_are_read_and_errors_never_echo_a_value() {
        let s: DbSecret =
            serde_json::from_str(r#"{"username":"app","password":"p","host":"h","port":"5432"}"#).unwrap();
        assert_eq!(s.port, Some(5432));
        for (json, field) in [
            (
                r#"{"username":"app","password":"p","host":"h","port":"hunter2"}"#,
                "`port`",
            ),
            (r#"{"username":"app","password":"p","host":"h","port":true}"#, "`port`"),
            (r#"{"username":"app","password":12345,"host":"h"}"#, "`password`"),
            (r#"{"username":["hunter2"],"password":"p"}"#, "`username`"),
            (
                r#"{"username":"app","password":"p","dbname":{"x":"hunter2"}}"#,
                "`dbname`",
            ),
        ] {
            let err = serde_json::from_str::<DbSecret>(json).unwrap_err().to_string();
            assert!(err.contains(field), "{json}: {err}");
            assert!(!err.contains("hunter2") && !err.contains("12345"), "{json}: {err}");
            let err = DbSecret::parse(json).unwrap_err().to_string();
            assert!(err.contains(field) && !err.contains("hunter2"), "{json}: {err}");
        }
        // A plain-text secret, which serde would quote back.
        let err = DbSecret::parse(r#""hunter2""#).unwrap_err().to_string();
        assert_eq!(err, "the secret is JSON but not an object");
        assert_eq!(
            DbSecret::parse(r#"{"username":"a","password":"p","port":" 6543"}"#)
                .unwrap()
                .port,
            Some(6543)
        );
    }

    #[test]
    fn secrets_never_print_their_password() {
        let s: DbSecret =
            serde_json::from_str(r#"{"username":"app","password":"hunter2","host":"h","port":5432}"#).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let t = Target {
            host: "h".into(),
            port: 1,
            dbname: "d".into(),
            user: "u".into(),
            password: "hunter2".into(),
            tls: TlsSettings {
                mode: SslMode::Require,
                ca_bundle: None,
            },
        };
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
