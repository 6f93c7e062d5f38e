//! The `restore` function's settings, parsed once at cold start.

use std::collections::BTreeMap;

use lifeboat::cache_check::KeyCheck;
use lifeboat::db::{SslMode, TlsSettings};
use lifeboat::error::ConfigError;
use lifeboat::settings::{self, parse_number, read, CommonSettings, Env};
use serde::Deserialize;

pub const SUBNET_GROUP: &str = "LIFEBOAT_RESTORE_SUBNET_GROUP";
pub const SECURITY_GROUP: &str = "LIFEBOAT_RESTORE_SECURITY_GROUP";
pub const INSTANCE_CLASS: &str = "LIFEBOAT_RESTORE_INSTANCE_CLASS";
pub const TIMEOUT_MINUTES: &str = "LIFEBOAT_RESTORE_TIMEOUT_MINUTES";
pub const EXPIRY_HOURS: &str = "LIFEBOAT_RESTORE_EXPIRY_HOURS";
pub const ROW_TOLERANCE: &str = "LIFEBOAT_RESTORE_ROW_TOLERANCE_PERCENT";
pub const CHECKS: &str = "LIFEBOAT_RESTORE_CHECKS";
pub const AGE_IDENTITY_SECRET: &str = "LIFEBOAT_AGE_IDENTITY_SECRET";
pub const PROFILE: &str = "LIFEBOAT_RESTORE_EXPORT_PROFILE";
pub const CACHE_SUBNET_GROUP: &str = "LIFEBOAT_CACHE_RESTORE_SUBNET_GROUP";
pub const CACHE_SECURITY_GROUP: &str = "LIFEBOAT_CACHE_RESTORE_SECURITY_GROUP";
pub const CACHE_NODE_TYPE: &str = "LIFEBOAT_CACHE_RESTORE_NODE_TYPE";
pub const CACHE_KEY_TOLERANCE: &str = "LIFEBOAT_CACHE_RESTORE_KEY_TOLERANCE_PERCENT";
pub const CACHE_CHECKS: &str = "LIFEBOAT_CACHE_RESTORE_CHECKS";
pub const CACHE_CA_BUNDLE: &str = "LIFEBOAT_CACHE_CA_BUNDLE";
pub const CACHE_CLUSTER_PARAMETER_GROUP: &str = "LIFEBOAT_CACHE_RESTORE_CLUSTER_PARAMETER_GROUP";

/// Where the system's public CAs usually are (Debian, then Amazon Linux, the Lambda runtime's); ElastiCache's
/// in-transit certificates chain to Amazon's public roots.
const SYSTEM_CA_BUNDLES: [&str; 2] = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

/// How restore tests of caches are made and checked.
#[derive(Debug, Clone)]
pub struct CacheRestoreSettings {
    /// The private cache subnet group restored groups go in.
    pub subnet_group: Option<String>,
    /// The security group that admits only the restore function.
    pub security_group: Option<String>,
    pub node_type: String,
    pub key_tolerance_percent: f64,
    /// Named keys or patterns per cache (`"*"`: every cache), e.g.
    /// `{"jobs": [{"name": "RQ queue", "pattern": "rq:queue:default"}]}`.
    pub checks: BTreeMap<String, Vec<KeyCheck>>,
    /// The restored cache's TLS: always verify-full, against this CA bundle.
    pub tls: TlsSettings,
    /// The parameter group of sharded (cluster mode) restored groups; unset: ElastiCache's default cluster-mode
    /// group of the snapshot's engine and version (`cache_restore::cluster_parameter_group`).
    pub cluster_parameter_group: Option<String>,
    /// Whether serverless caches are restore-tested too, from their verified RDB copies
    /// (`LIFEBOAT_SERVERLESS_CACHES`, as snapshot, export and monitor read it).
    pub serverless_caches: bool,
}

impl CacheRestoreSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let raw = read(env, CACHE_CHECKS).unwrap_or_else(|| "{}".to_owned());
        let checks = serde_json::from_str(&raw).map_err(|e| {
            ConfigError::new(
                CACHE_CHECKS,
                &raw,
                format!("expected {{\"<cache or *>\": [{{\"name\": ..., \"pattern\": ..., \"db\": 0}}]}}: {e}"),
            )
        })?;
        let ca_bundle = read(env, CACHE_CA_BUNDLE).or_else(|| {
            SYSTEM_CA_BUNDLES
                .iter()
                .find(|p| std::path::Path::new(p).is_file())
                .map(|p| (*p).to_owned())
        });
        Ok(Self {
            subnet_group: read(env, CACHE_SUBNET_GROUP),
            security_group: read(env, CACHE_SECURITY_GROUP),
            node_type: read(env, CACHE_NODE_TYPE).unwrap_or_else(|| "cache.t4g.micro".to_owned()),
            key_tolerance_percent: f64::from(parse_number(env, CACHE_KEY_TOLERANCE, 5u32, 0..=100)?),
            checks,
            tls: TlsSettings {
                mode: SslMode::VerifyFull,
                ca_bundle,
            },
            cluster_parameter_group: read(env, CACHE_CLUSTER_PARAMETER_GROUP),
            serverless_caches: settings::serverless_caches(env)?,
        })
    }
}

/// A SQL check run on the restored database: its first column of its first row must be true (or a non-zero
/// number). E.g. `{"name": "users not empty", "sql": "select count(*) > 0 from users"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    pub name: String,
    pub sql: String,
}

#[derive(Debug, Clone)]
pub struct RestoreSettings {
    pub common: CommonSettings,
    pub bucket: String,
    pub subnet_group: Option<String>,
    pub security_group: Option<String>,
    pub instance_class: String,
    pub timeout_minutes: u32,
    pub expiry_hours: u32,
    pub row_tolerance_percent: f64,
    pub checks: Vec<SqlCheck>,
    /// A secret holding an age identity (`AGE-SECRET-KEY-1...`) to decrypt exports for the scratch restore.
    pub age_identity_secret: Option<String>,
    /// The export profile whose latest manifest the restored data is compared with.
    pub profile: String,
    pub pg_restore: String,
    pub tls: TlsSettings,
    /// The `restore-export` action: its assumed speed and the ECS task for long restores.
    pub from_export: crate::from_export::Settings,
    /// Restore tests of caches.
    pub cache: CacheRestoreSettings,
}

pub const DEFAULT_CHECKS: &str = r#"[{"name": "SELECT 1 answers", "sql": "select 1 = 1"}, {"name": "SELECT now() answers", "sql": "select now() is not null"}]"#;

impl RestoreSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let bucket = settings::bucket(env)?;
        let raw = read(env, CHECKS).unwrap_or_else(|| DEFAULT_CHECKS.to_owned());
        let checks: Vec<SqlCheck> = serde_json::from_str(&raw)
            .map_err(|e| ConfigError::new(CHECKS, &raw, format!("expected [{{\"name\": ..., \"sql\": ...}}]: {e}")))?;
        Ok(Self {
            common: CommonSettings::from_env(env)?,
            bucket,
            subnet_group: read(env, SUBNET_GROUP),
            security_group: read(env, SECURITY_GROUP),
            instance_class: read(env, INSTANCE_CLASS).unwrap_or_else(|| "db.t4g.micro".to_owned()),
            timeout_minutes: parse_number(env, TIMEOUT_MINUTES, 90u32, 5..=720)?,
            expiry_hours: parse_number(env, EXPIRY_HOURS, 6u32, 1..=72)?,
            row_tolerance_percent: f64::from(parse_number(env, ROW_TOLERANCE, 5u32, 0..=100)?),
            checks,
            age_identity_secret: read(env, AGE_IDENTITY_SECRET),
            profile: read(env, PROFILE).unwrap_or_else(|| "full".to_owned()),
            pg_restore: settings::pg_restore(env),
            tls: TlsSettings::from_env(env)?,
            from_export: crate::from_export::Settings::from_env(env)?,
            cache: CacheRestoreSettings::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_settings(vars: &[(&str, &str)]) -> Result<CacheRestoreSettings, ConfigError> {
        let vars: BTreeMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        CacheRestoreSettings::from_env(&move |n: &str| vars.get(n).cloned())
    }

    #[test]
    fn cache_restore_settings_default_small_and_strict_and_name_what_is_wrong() {
        let s = cache_settings(&[(CACHE_CA_BUNDLE, "/ca.pem")]).unwrap();
        assert_eq!(s.node_type, "cache.t4g.micro");
        assert_eq!(s.key_tolerance_percent, 5.0);
        assert!(s.checks.is_empty());
        assert_eq!(s.tls.mode, SslMode::VerifyFull, "a restored cache is always verified");
        assert_eq!(s.tls.ca_bundle.as_deref(), Some("/ca.pem"));
        let s = cache_settings(&[(
            CACHE_CHECKS,
            r#"{"jobs": [{"name": "q", "pattern": "rq:queue:*", "db": 1}]}"#,
        )])
        .unwrap();
        assert_eq!(s.checks["jobs"][0].db, 1);
        let err = cache_settings(&[(CACHE_CHECKS, r#"[{"name": "q"}]"#)])
            .unwrap_err()
            .to_string();
        assert!(err.contains(CACHE_CHECKS), "{err}");
    }
}
