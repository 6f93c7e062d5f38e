//! The `export` function's settings, parsed once at cold start (shared variables are in `lifeboat::core::settings`).

use std::collections::BTreeMap;
use std::str::FromStr;

use lifeboat::core::error::ConfigError;
use lifeboat::core::settings::{self, parse_list, parse_number, read, Env};
use lifeboat::plans::store::Location;
use lifeboat::postgres::db::TlsSettings;
use lifeboat::postgres::export::validate_profile;
use lifeboat::rds::settings::CommonSettings;

pub const KMS_KEY_ID: &str = "LIFEBOAT_EXPORT_KMS_KEY_ID";
pub const AGE_RECIPIENTS: &str = "LIFEBOAT_AGE_RECIPIENTS";
pub const ZSTD_LEVEL: &str = "LIFEBOAT_ZSTD_LEVEL";
pub const ZSTD_WORKERS: &str = "LIFEBOAT_ZSTD_WORKERS";
pub const PART_SIZE_MIB: &str = "LIFEBOAT_PART_SIZE_MIB";
pub const PARTS_IN_FLIGHT: &str = "LIFEBOAT_PARTS_IN_FLIGHT";
pub const PROFILES: &str = "LIFEBOAT_EXPORT_PROFILES";
pub const PG_DUMP: &str = "LIFEBOAT_PG_DUMP";
pub const MIB_PER_SECOND: &str = "LIFEBOAT_EXPORT_MIB_PER_SECOND";
pub use lifeboat::postgres::export::ALLOW_ANY_HOST;

pub const DEFAULT_PROFILES: &str = r#"{"full": {}}"#;
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// One export profile (the type and its rules live in `lifeboat::postgres::export`).
pub use lifeboat::postgres::export::Profile;

#[derive(Clone)]
pub struct ExportSettings {
    pub common: CommonSettings,
    pub bucket: String,
    pub kms_key_id: Option<String>,
    pub recipients: Vec<age::x25519::Recipient>,
    /// The recipients as configured (public keys), recorded in manifests.
    pub recipient_keys: Vec<String>,
    pub zstd_level: i32,
    pub zstd_workers: u32,
    pub part_size: usize,
    pub parts_in_flight: usize,
    pub profiles: BTreeMap<String, Profile>,
    pub pg_dump: String,
    pub pg_restore: String,
    pub tls: TlsSettings,
    /// Assumed dump speed, used to refuse exports that cannot finish before the invocation's deadline.
    pub mib_per_second: u32,
    /// Connect to whatever host a secret names, not only the database's endpoints (off by default).
    pub allow_any_host: bool,
    /// Whether serverless caches are copied too (`LIFEBOAT_SERVERLESS_CACHES`, as snapshot and monitor read it).
    pub serverless_caches: bool,
    /// The plan document (`LIFEBOAT_PLAN_DOCUMENT`): set, the function follows the plan ("plan mode", `plan.rs`);
    /// unset, it runs the scheduled profiles of `LIFEBOAT_EXPORT_PROFILES` as it always has.
    pub plan: Option<Location>,
}

impl std::fmt::Debug for ExportSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportSettings")
            .field("bucket", &self.bucket)
            .field("recipients", &self.recipient_keys)
            .field("profiles", &self.profiles)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl ExportSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        // In this order, so the first bad variable reported stays the same one.
        let common = CommonSettings::from_env(env)?;
        let bucket = settings::bucket(env)?;
        let recipient_keys = parse_list(env, AGE_RECIPIENTS);
        let recipients = recipients(&recipient_keys)?;
        let profiles = profiles(env)?;
        Ok(Self {
            common,
            bucket,
            kms_key_id: read(env, KMS_KEY_ID),
            recipients,
            recipient_keys,
            // Level 1 and one compressing thread by default: on Lambda's one or two vCPUs the compressor shares the
            // cores with pg_dump, pg_restore and the hashes, and `make bench` measured level 1 single-threaded as
            // both the fastest setting and (on its data) smaller than level 3 or pg_dump -Fc. Worker threads cost
            // about 25 MiB each and only pay off with spare cores.
            zstd_level: parse_number(env, ZSTD_LEVEL, DEFAULT_ZSTD_LEVEL, 1..=19)?,
            zstd_workers: parse_number(env, ZSTD_WORKERS, 0, 0..=16)?,
            part_size: parse_number(env, PART_SIZE_MIB, 8usize, 5..=512)? * 1024 * 1024,
            // Two 8 MiB parts uploading while the next fills keeps a loopback or in-region upload ahead of the
            // dump, within the 64 MiB budget.
            parts_in_flight: parse_number(env, PARTS_IN_FLIGHT, 2usize, 1..=16)?,
            profiles,
            pg_dump: read(env, PG_DUMP).unwrap_or_else(|| "pg_dump".to_owned()),
            pg_restore: settings::pg_restore(env),
            tls: TlsSettings::from_env(env)?,
            mib_per_second: parse_number(env, MIB_PER_SECOND, 20, 1..=10_000)?,
            allow_any_host: parse_flag(env, ALLOW_ANY_HOST)?,
            serverless_caches: settings::serverless_caches(env)?,
            plan: Location::from_env(env)?,
        })
    }
}

/// `true` or `false` (any case); unset is `false`.
fn parse_flag(env: &impl Env, name: &str) -> Result<bool, ConfigError> {
    match read(env, name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConfigError::new(name, &v, "expected true or false".to_owned())),
    }
}

fn recipients(keys: &[String]) -> Result<Vec<age::x25519::Recipient>, ConfigError> {
    keys.iter()
        .map(|key| {
            age::x25519::Recipient::from_str(key).map_err(|e| {
                ConfigError::new(
                    AGE_RECIPIENTS,
                    key,
                    format!("not an age X25519 public key (age1...): {e}"),
                )
            })
        })
        .collect()
}

fn profiles(env: &impl Env) -> Result<BTreeMap<String, Profile>, ConfigError> {
    let raw = read(env, PROFILES).unwrap_or_else(|| DEFAULT_PROFILES.to_owned());
    let profiles: BTreeMap<String, Profile> = serde_json::from_str(&raw).map_err(|e| {
        ConfigError::new(
            PROFILES,
            &raw,
            format!("expected {{\"name\": {{\"include\": [...], \"exclude\": [...]}}}}: {e}"),
        )
    })?;
    for (name, p) in &profiles {
        validate_profile(name, p).map_err(|reason| ConfigError::new(PROFILES, name, reason.to_string()))?;
    }
    Ok(profiles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::core::settings::BUCKET;
    use lifeboat::plans::store::PLAN_DOCUMENT;

    fn env(pairs: &[(&str, &str)]) -> impl Env {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |n: &str| map.get(n).cloned()
    }

    const BASE: [(&str, &str); 2] = [(BUCKET, "backups"), ("LIFEBOAT_DB_SSLMODE", "disable")];

    #[test]
    fn defaults() {
        let s = ExportSettings::from_env(&env(&BASE)).unwrap();
        assert_eq!(s.profiles.keys().collect::<Vec<_>>(), vec!["full"]);
        assert_eq!(
            (s.zstd_level, s.zstd_workers, s.part_size, s.parts_in_flight),
            (1, 0, 8 * 1024 * 1024, 2)
        );
        assert!(s.recipients.is_empty());
        assert!(
            !s.allow_any_host,
            "a secret may point only at its database unless allowed"
        );
        assert_eq!(s.plan, None, "no plan document: legacy mode");
    }

    #[test]
    fn a_plan_document_puts_the_function_in_plan_mode() {
        let mut pairs = BASE.to_vec();
        pairs.push((PLAN_DOCUMENT, "s3://cfg-bucket/lifeboat/plans.json"));
        let s = ExportSettings::from_env(&env(&pairs)).unwrap();
        assert_eq!(s.plan.unwrap().to_string(), "s3://cfg-bucket/lifeboat/plans.json");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let mut cases: Vec<(&str, &str, &str)> = vec![
            (AGE_RECIPIENTS, "age1notakey", "not an age X25519 public key"),
            (PROFILES, "{\"critical\": {\"tables\": []}}", "unknown field `tables`"),
            (PROFILES, "{\"Crit\": {}}", "lowercase"),
            (
                PROFILES,
                "{\"x\": {\"include\": [\"a\"], \"exclude\": [\"b\"]}}",
                "not both",
            ),
            (PART_SIZE_MIB, "4", "between 5 and 512"),
            (ALLOW_ANY_HOST, "yes", "expected true or false"),
            (PLAN_DOCUMENT, "cfg-bucket/plans.json", "expected s3://"),
        ];
        for (var, value, expected) in cases.drain(..) {
            let mut pairs = BASE.to_vec();
            pairs.push((var, value));
            let err = ExportSettings::from_env(&env(&pairs)).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.reason.contains(expected), "{var}={value}: {err}");
        }
        let err = ExportSettings::from_env(&env(&[("LIFEBOAT_DB_SSLMODE", "disable")])).unwrap_err();
        assert_eq!(err.var, BUCKET);
    }
}
