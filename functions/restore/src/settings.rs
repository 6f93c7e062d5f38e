//! The `restore` function's settings, parsed once at cold start.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lifeboat::caches::check::KeyCheck;
use lifeboat::core::error::ConfigError;
use lifeboat::core::settings::{self, parse_number, read, Env};
use lifeboat::postgres::archive::plan;
use lifeboat::postgres::db::{SslMode, TlsSettings};
use lifeboat::postgres::export::ALLOW_ANY_HOST;
use lifeboat::rds::settings::CommonSettings;
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
pub const ENTRY: &str = "LIFEBOAT_RESTORE_ENTRY";
pub const RESOLVE: &str = "LIFEBOAT_RESTORE_RESOLVE";
/// The Secrets Manager secret (name or ARN) whose value is the masking key of staging refreshes (`hash` and the
/// fakes are keyed with it). Set by the template to the stack's own `MaskingKeySecret`; never from a payload.
pub const MASKING_KEY_SECRET: &str = "LIFEBOAT_MASKING_KEY_SECRET";

/// `LIFEBOAT_RESTORE_RESOLVE`: `<host suffix>=<host>:<port>[,...]`, for local runs against an emulator whose
/// described endpoints nothing listens on (as curl's `--resolve`). It maps only endpoints that AWS described, so a
/// payload can never choose a host through it; the template never sets it.
fn redirects(env: &impl Env) -> Result<Redirects, ConfigError> {
    let mut out = Redirects::default();
    let Some(raw) = read(env, RESOLVE) else {
        return Ok(out);
    };
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parsed = item.split_once('=').and_then(|(suffix, to)| {
            let (host, port) = to.rsplit_once(':')?;
            Some((suffix, host, port.parse::<u16>().ok()?))
        });
        let (suffix, host, port) = parsed
            .ok_or_else(|| ConfigError::new(RESOLVE, &raw, format!("`{item}` is not <host suffix>=<host>:<port>")))?;
        out.add(suffix, host, port);
    }
    Ok(out)
}

/// Which requests this deployment of the binary serves. One image, two functions with two roles: the state
/// machine's steps (`steps`, invoked by the state machine alone) and the console's actions (`console`, invoked by
/// operators). A step takes state from its caller, so whoever may invoke the console must never reach a step
/// (issue #22): the split is by who may call, and each function refuses the other's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// plan, start, poll, prepare, verify, report, cleanup, summary and the `cache_*` steps.
    Steps,
    /// restore, restore-export, restore-cache.
    Console,
}

impl Entry {
    pub fn as_str(self) -> &'static str {
        match self {
            Entry::Steps => "steps",
            Entry::Console => "console",
        }
    }

    /// The function that serves this entry's requests, as the template names it.
    pub fn function(self) -> &'static str {
        match self {
            Entry::Steps => {
                "RestoreTestFunction (<stack>-restore-test, invoked by the restore-test state machine only)"
            }
            Entry::Console => "RestoreFunction (<stack>-restore, the console restores)",
        }
    }

    /// The binary that serves this entry (its own code only): what the template's entry point names.
    pub fn binary(self) -> &'static str {
        match self {
            Entry::Steps => "restore-test",
            Entry::Console => "restore",
        }
    }

    /// Required: a missing or unknown value is a start-up error naming the variable.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        match read(env, ENTRY).as_deref() {
            Some("steps") => Ok(Entry::Steps),
            Some("console") => Ok(Entry::Console),
            other => Err(ConfigError::new(
                ENTRY,
                other.unwrap_or(""),
                "expected `steps` (the state machine's function) or `console` (the console's function)",
            )),
        }
    }
}

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
    /// The restored cache's TLS: always verify-full, against this CA bundle, or (unset) against Amazon's root CAs
    /// only.
    pub tls: TlsSettings,
    /// The parameter group of sharded (cluster mode) restored groups; unset: ElastiCache's default cluster-mode
    /// group of the snapshot's engine and version (`lifeboat::caches::restore::cluster_parameter_group`).
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
        // Unset: Amazon's root CAs shipped in the binary (`cache_check::AMAZON_ROOT_CAS`), never the system store.
        let ca_bundle = read(env, CACHE_CA_BUNDLE);
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
    /// Which requests this function serves (`LIFEBOAT_RESTORE_ENTRY`).
    pub entry: Entry,
    /// Where described endpoints are reached (empty in production: as AWS describes them).
    pub redirects: Redirects,
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
    /// `recover`'s pg_dump (the image's, as the export's).
    pub pg_dump: String,
    pub tls: TlsSettings,
    /// The `restore-export` action: its assumed speed and the ECS task for long restores.
    pub from_export: FromExportSettings,
    /// Restore tests of caches.
    pub cache: CacheRestoreSettings,
    /// The plan document (`LIFEBOAT_PLAN_DOCUMENT`): set, a restore-test run started for a plan rule tests that
    /// plan's members.
    pub plan: Option<lifeboat::plans::store::Location>,
    /// The masking key's secret (`LIFEBOAT_MASKING_KEY_SECRET`): unset, a refresh is refused before it starts.
    pub masking_key_secret: Option<String>,
}

pub const DEFAULT_CHECKS: &str = r#"[{"name": "SELECT 1 answers", "sql": "select 1 = 1"}, {"name": "SELECT now() answers", "sql": "select now() is not null"}]"#;

impl RestoreSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let bucket = settings::bucket(env)?;
        let raw = read(env, CHECKS).unwrap_or_else(|| DEFAULT_CHECKS.to_owned());
        let checks: Vec<SqlCheck> = serde_json::from_str(&raw)
            .map_err(|e| ConfigError::new(CHECKS, &raw, format!("expected [{{\"name\": ..., \"sql\": ...}}]: {e}")))?;
        Ok(Self {
            entry: Entry::from_env(env)?,
            redirects: redirects(env)?,
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
            pg_dump: read(env, "LIFEBOAT_PG_DUMP").unwrap_or_else(|| "pg_dump".to_owned()),
            tls: TlsSettings::from_env(env)?,
            from_export: FromExportSettings::from_env(env)?,
            cache: CacheRestoreSettings::from_env(env)?,
            plan: lifeboat::plans::store::Location::from_env(env)?,
            masking_key_secret: read(env, MASKING_KEY_SECRET),
        })
    }
}

// The restore-export action's variables.
pub const MIB_PER_SECOND: &str = "LIFEBOAT_RESTORE_MIB_PER_SECOND";
pub const WORKDIR: &str = "LIFEBOAT_RESTORE_WORKDIR";
pub const WORKDIR_RESERVE_MIB: &str = "LIFEBOAT_RESTORE_WORKDIR_RESERVE_MIB";
pub const TASK_CLUSTER: &str = "LIFEBOAT_RESTORE_TASK_CLUSTER";
pub const TASK_DEFINITION: &str = "LIFEBOAT_RESTORE_TASK_DEFINITION";
pub const TASK_SUBNETS: &str = "LIFEBOAT_RESTORE_TASK_SUBNETS";
pub const TASK_SECURITY_GROUP: &str = "LIFEBOAT_RESTORE_TASK_SECURITY_GROUP";

/// The speed assumed unless configured: no faster than `make bench-restore` measured. Its slowest streamed run
/// (docs/bench/restore-2026-11-30-1gb.txt: 177.3 MiB stored in 14.2 s, median 12.6 s) is 12.5 stored MiB/s; an
/// assumption faster than what was measured admits restores that then run out of time.
pub const DEFAULT_MIB_PER_SECOND: u32 = 12;

/// How fast a restore is assumed to go (what is too long for an invocation is run with the `lifeboat` tool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromExportSettings {
    /// Stored (compressed, encrypted) MiB per second through download, decryption and pg_restore.
    pub mib_per_second: u32,
    /// Where a `jobs` restore writes the plaintext archive: the function's ephemeral storage (`/tmp`), or the
    /// ECS task's volume.
    pub workdir: PathBuf,
    /// Space kept free there beside the archive.
    pub workdir_reserve_mib: u32,
    /// The ECS task that runs what an invocation cannot finish (when the stack deploys it).
    pub task: Option<plan::EcsTask>,
    /// `LIFEBOAT_EXPORT_ALLOW_ANY_HOST`, the export's own setting: a secret's host may be other than the
    /// database's endpoints (a proxy, a tunnel). Off, a restore onto the source's server connects only to it.
    pub allow_any_host: bool,
}

impl FromExportSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let reserve = plan::WORKDIR_RESERVE_BYTES / (1024 * 1024);
        Ok(Self {
            mib_per_second: parse_number(env, MIB_PER_SECOND, DEFAULT_MIB_PER_SECOND, 1..=10_000)?,
            workdir: read(env, WORKDIR).map_or_else(std::env::temp_dir, PathBuf::from),
            workdir_reserve_mib: parse_number(env, WORKDIR_RESERVE_MIB, reserve as u32, 0..=u32::MAX)?,
            task: match (read(env, TASK_CLUSTER), read(env, TASK_DEFINITION)) {
                (Some(cluster), Some(task_definition)) => Some(plan::EcsTask {
                    cluster,
                    task_definition,
                    subnets: read(env, TASK_SUBNETS).unwrap_or_else(|| "<subnet-id>".to_owned()),
                    security_group: read(env, TASK_SECURITY_GROUP).unwrap_or_else(|| "<security group>".to_owned()),
                }),
                _ => None,
            },
            allow_any_host: parse_flag(env, ALLOW_ANY_HOST)?,
        })
    }
}

/// `true` or `false` (any case), as the export reads the same variable; unset is `false`.
fn parse_flag(env: &impl Env, name: &str) -> Result<bool, ConfigError> {
    match read(env, name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConfigError::new(name, &v, "expected true or false")),
    }
}

/// Where an endpoint that AWS describes is reached. Production leaves it empty: the endpoint as AWS gives it.
/// Local runs (moto describes endpoints nothing listens on) map a described host, by its suffix, to a local
/// server, as an `/etc/hosts` line would (`LIFEBOAT_RESTORE_RESOLVE`, never set by the template; never from a
/// payload); it maps only what AWS described.
#[derive(Debug, Clone, Default)]
pub struct Redirects(Vec<(String, String, u16)>);

impl Redirects {
    /// Reaches every described host ending in `suffix` at `host:port` instead.
    pub fn add(&mut self, suffix: &str, host: &str, port: u16) {
        self.0.push((suffix.to_owned(), host.to_owned(), port));
    }

    /// Where a described endpoint is reached.
    pub fn reach(&self, host: &str, port: u16) -> (String, u16) {
        self.0
            .iter()
            .find(|(suffix, _, _)| host.ends_with(suffix.as_str()))
            .map_or_else(|| (host.to_owned(), port), |(_, h, p)| (h.clone(), *p))
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
    fn a_redirect_maps_only_the_described_hosts_it_names() {
        let mut r = Redirects::default();
        assert_eq!(
            r.reach("a.rds.amazonaws.com", 5432),
            ("a.rds.amazonaws.com".to_owned(), 5432)
        );
        r.add(".rds.amazonaws.com", "127.0.0.1", 5433);
        assert_eq!(r.reach("a.rds.amazonaws.com", 5432), ("127.0.0.1".to_owned(), 5433));
        assert_eq!(r.reach("evil.example", 5432), ("evil.example".to_owned(), 5432));
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

    #[test]
    fn the_cache_trust_defaults_to_amazon_roots_never_a_system_bundle() {
        let s = cache_settings(&[]).unwrap();
        assert_eq!(
            s.tls.ca_bundle, None,
            "no bundle named: the shipped Amazon roots, not a system file"
        );
    }

    #[test]
    fn resolve_maps_described_hosts_and_names_a_bad_item() {
        let env = |v: &'static str| move |n: &str| (n == RESOLVE).then(|| v.to_owned());
        let r = redirects(&env(".rds.amazonaws.com=127.0.0.1:5433")).unwrap();
        assert_eq!(r.reach("x.rds.amazonaws.com", 5432), ("127.0.0.1".to_owned(), 5433));
        let err = redirects(&env("nonsense")).unwrap_err().to_string();
        assert!(err.contains(RESOLVE), "{err}");
    }

    #[test]
    fn the_entry_is_required_and_named_when_wrong() {
        let entry = |v: Option<&str>| {
            let v = v.map(str::to_owned);
            Entry::from_env(&move |n: &str| if n == ENTRY { v.clone() } else { None })
        };
        assert_eq!(entry(Some("steps")).unwrap(), Entry::Steps);
        assert_eq!(entry(Some("console")).unwrap(), Entry::Console);
        for bad in [None, Some(""), Some("both")] {
            let err = entry(bad).unwrap_err().to_string();
            assert!(err.contains(ENTRY), "{err}");
        }
    }
}
