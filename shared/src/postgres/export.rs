//! The export rules, as pure functions over plain data: which profile an event asks for, whether an export may
//! start before the invocation's deadline (admission), which pg_dump may dump which server, which tables a
//! profile names and the pg_dump arguments that select exactly those, where to connect, and when a stored
//! object is the one the pipeline wrote.
//!
//! Owns: the export [`Profile`] and its validation, [`admit`] (the deadline refusal), [`check_pg_dump`] (the
//! version rule), [`select_tables`] / [`table_args`] / [`quote_pattern`] (table matching), [`check_foreign_keys`]
//! (a partial profile must hold the rows its tables reference), [`check_stored_size`]
//! and the [`Outcome`] of one export.
//!
//! Never: runs a process, opens a connection, calls AWS or reads the clock. The `export` function gathers the
//! facts (database size, versions, the table list, the time left) and acts on the verdicts given here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Time kept in hand at the end of an invocation for aborting, metrics and the summary.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);
/// The profile a manual export without `profile` or `tables` uses.
pub const DEFAULT_PROFILE: &str = "full";
/// The profile name a manual export of named tables is recorded under.
pub const MANUAL_PROFILE: &str = "manual";
/// PostgreSQL's port, when neither the secret nor the database names one.
pub const DEFAULT_PORT: u16 = 5432;

const MIB: i64 = 1024 * 1024;

/// One export profile: which tables, and how long the objects are locked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Tables whose data is dumped (`name` or `schema.name`, a part in double quotes to hold a dot, see
    /// [`parse_table_name`]); empty means every table. The schema is always dumped whole.
    #[serde(default)]
    pub include: Vec<String>,
    /// Tables whose data is left out (their definitions stay).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// S3 Object Lock retention (days) for each object; needs a bucket with Object Lock enabled.
    #[serde(default)]
    pub object_lock_days: Option<u32>,
}

impl Profile {
    /// Until when the objects of an export made at `at` are locked, if the profile locks them.
    pub fn lock_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.object_lock_days.map(|d| at + chrono::Duration::days(i64::from(d)))
    }
}

/// Why a configured profile cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("profile names are lowercase letters, digits and hyphens")]
    Name,
    #[error("the profile name `rdb` is reserved for caches' RDB copies (exports/<cache>/rdb/); choose another")]
    Reserved,
    #[error("a profile has either `include` or `exclude`, not both")]
    IncludeAndExclude,
    #[error("a table is `name` or `schema.name`, a part that holds a dot in double quotes (`public.\"my.table\"`)")]
    TableName,
}

/// A profile name is lowercase letters, digits and hyphens (it is part of object keys and tags); a profile
/// either includes or excludes tables.
pub fn validate_profile(name: &str, profile: &Profile) -> Result<(), ProfileError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ProfileError::Name);
    }
    if name == crate::bucket::layout::RDB_PROFILE {
        return Err(ProfileError::Reserved);
    }
    if !profile.include.is_empty() && !profile.exclude.is_empty() {
        return Err(ProfileError::IncludeAndExclude);
    }
    if profile
        .include
        .iter()
        .chain(&profile.exclude)
        .any(|t| parse_table_name(t).is_none())
    {
        return Err(ProfileError::TableName);
    }
    Ok(())
}

/// An event named a profile that is not configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export profile `{name}` (configured: {})", configured.join(", "))]
pub struct UnknownProfile {
    pub name: String,
    pub configured: Vec<String>,
}

/// The profile an event asks for, and the name its export is recorded under: named tables make a one-off
/// `manual` profile including just those; otherwise the named profile (or `full`) must be configured.
pub fn choose_profile(
    profiles: &BTreeMap<String, Profile>,
    requested: Option<String>,
    tables: Vec<String>,
) -> Result<(String, Profile), UnknownProfile> {
    if !tables.is_empty() {
        let profile = Profile {
            include: tables,
            ..Profile::default()
        };
        return Ok((MANUAL_PROFILE.to_owned(), profile));
    }
    let name = requested.unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    match profiles.get(&name) {
        Some(profile) => Ok((name, profile.clone())),
        None => Err(UnknownProfile {
            name,
            configured: profiles.keys().cloned().collect(),
        }),
    }
}

/// An export that would not finish before the invocation's deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{size_mib} MiB at about {mib_per_second} MiB/s needs ~{estimate_secs} s but only {remaining_secs} s remain \
     before the invocation's deadline: run this export as the ECS task (docs/book/src/guide/export.md) or raise the function's timeout"
)]
pub struct Refusal {
    pub size_mib: i64,
    pub mib_per_second: u32,
    pub estimate_secs: u64,
    pub remaining_secs: u64,
}

/// How long dumping `size_bytes` takes at `mib_per_second` (saturating: a speed of 0 never finishes).
pub fn estimate(size_bytes: i64, mib_per_second: u32) -> Duration {
    if size_bytes <= 0 {
        return Duration::ZERO;
    }
    let secs = size_bytes as f64 / (f64::from(mib_per_second) * MIB as f64);
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// Admission: an export starts only if, at the configured speed, it finishes with [`DEADLINE_MARGIN`] to spare
/// before the deadline. `time_left` is `None` where there is no deadline (the ECS task): nothing is refused.
///
/// Invariant (property-tested): if a database is refused, a bigger one, a slower speed or less time left is
/// refused too.
pub fn admit(size_bytes: i64, mib_per_second: u32, time_left: Option<Duration>) -> Result<(), Refusal> {
    let Some(remaining) = time_left else {
        return Ok(());
    };
    let estimate = estimate(size_bytes, mib_per_second);
    if estimate.saturating_add(DEADLINE_MARGIN) > remaining {
        return Err(Refusal {
            size_mib: size_bytes / MIB,
            mib_per_second,
            estimate_secs: estimate.as_secs(),
            remaining_secs: remaining.as_secs(),
        });
    }
    Ok(())
}

/// When a running export stops itself: [`DEADLINE_MARGIN`] before the invocation's deadline, so that aborting
/// the upload, the metrics and the summary still happen before Lambda kills the process. `None`: no deadline.
pub fn stop_at(deadline: Option<Instant>) -> Option<Instant> {
    deadline.map(|d| d.checked_sub(DEADLINE_MARGIN).unwrap_or(d))
}

/// An export that was still running when [`stop_at`] came: it was stopped and its upload aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "stopped {margin_secs} s before the invocation's deadline after {elapsed_secs} s, slower than \
     LIFEBOAT_EXPORT_MIB_PER_SECOND assumed; the upload was aborted: use the ECS task for this database \
     (docs/book/src/guide/export.md) or raise the function's timeout"
)]
pub struct DeadlineStop {
    pub margin_secs: u64,
    pub elapsed_secs: u64,
}

impl DeadlineStop {
    pub fn after(elapsed: Duration) -> Self {
        Self {
            margin_secs: DEADLINE_MARGIN.as_secs(),
            elapsed_secs: elapsed.as_secs(),
        }
    }
}

/// A database the run did not reach because an earlier export ran into the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not reached: an earlier export ran into the invocation's deadline; use the ECS task for this run (docs/book/src/guide/export.md) \
     or raise the function's timeout"
)]
pub struct NotReached;

/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's smallest part (all but the last).
pub const MIN_PART: u64 = 5 * MIB as u64;
/// S3's largest part.
pub const MAX_PART: u64 = 5 * 1024 * MIB as u64;
/// How many times the database's size the stored stream may reach: a dump holds TOASTed values decompressed
/// and `bytea` as hex, which zstd takes back to about their size on disk; zstd's own bound adds under 1% and
/// age 16 bytes per 64 KiB. Twice the size on disk covers that with room for growth during the dump.
pub const STORED_WORST_CASE: u64 = 2;

/// How an export's stream is cut into parts, and the memory that takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSizing {
    pub part_size: u64,
    pub parts_in_flight: usize,
    /// Parts held at once (one filling, one queued, the ones in flight) times their size.
    pub memory_bytes: u64,
}

/// The part size for a database of `size_bytes` (known before dumping): the configured size, grown (in whole
/// MiB) so that [`STORED_WORST_CASE`] times the size fits in S3's [`MAX_PARTS`]. The memory budget is the
/// configured one (`part_size × (parts_in_flight + 2)`): bigger parts trade parts in flight for size, down to
/// one, so memory grows past the budget only when a single part in flight needs it (a multi-terabyte export,
/// which runs as the ECS task, sized for it).
///
/// Invariants (property-tested): for any size up to 5 TiB, the worst-case stream fits in 10,000 parts of a
/// size within S3's 5 MiB..5 GiB, never smaller than configured.
pub fn part_sizing(size_bytes: i64, part_size: usize, parts_in_flight: usize) -> PartSizing {
    let configured = (part_size as u64).clamp(MIN_PART, MAX_PART);
    let in_flight = parts_in_flight.max(1);
    let worst = u64::try_from(size_bytes).unwrap_or(0).saturating_mul(STORED_WORST_CASE);
    let needed = worst.div_ceil(MAX_PARTS).div_ceil(MIB as u64) * MIB as u64;
    let part = needed.max(configured).min(MAX_PART);
    let budget = configured * (in_flight as u64 + 2);
    let fits = usize::try_from((budget / part).saturating_sub(2)).unwrap_or(usize::MAX);
    let parts_in_flight = fits.clamp(1, in_flight);
    PartSizing {
        part_size: part,
        parts_in_flight,
        memory_bytes: part * (parts_in_flight as u64 + 2),
    }
}

/// Why the configured pg_dump cannot dump the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("cannot read pg_dump's version from `{0}`")]
    Unreadable(String),
    #[error(
        "pg_dump {pg_dump} is older than the server ({server}); an older pg_dump cannot dump a newer server: \
         use a PostgreSQL client at least as new as the server (LIFEBOAT_PG_DUMP)"
    )]
    Older { pg_dump: String, server: String },
}

/// The major version in `pg_dump (PostgreSQL) 16.4 (Debian ...)`.
pub fn major(version: &str) -> Option<i32> {
    version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .and_then(|w| w.split('.').next())
        .and_then(|m| m.parse().ok())
}

/// pg_dump dumps servers of its own major version and older, never newer ones. `server_version_num` is the
/// server's `server_version_num` (e.g. 160004); `server_version` its display form, for the message.
pub fn check_pg_dump(pg_dump_version: &str, server_version: &str, server_version_num: i32) -> Result<(), VersionError> {
    let dump_major = major(pg_dump_version).ok_or_else(|| VersionError::Unreadable(pg_dump_version.to_owned()))?;
    if dump_major < server_version_num / 10000 {
        return Err(VersionError::Older {
            pg_dump: pg_dump_version.to_owned(),
            server: server_version.to_owned(),
        });
    }
    Ok(())
}

/// A table as `(schema, name)`.
pub type Table = (String, String);

/// A profile names a table the database does not have: most likely a typo, which must not silently export
/// less (or more) than intended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile `{profile}` names table `{pattern}`, which {db} does not have")]
pub struct MissingTable {
    pub profile: String,
    pub pattern: String,
    pub db: String,
}

/// A profile's table name, `name` or `schema.name`, parsed: either part may be in double quotes to hold a dot or
/// a quote (`"my.table"` is the table `my.table` in any schema, `my.table` the table `table` in schema `my`; `""`
/// is a quote inside quotes). `None` when it is neither shape.
pub fn parse_table_name(pattern: &str) -> Option<(Option<String>, String)> {
    let (first, rest) = name_part(pattern)?;
    if rest.is_empty() {
        return Some((None, first));
    }
    let (second, rest) = name_part(rest.strip_prefix('.')?)?;
    rest.is_empty().then_some((Some(first), second))
}

/// One part of a table name and what follows it.
fn name_part(s: &str) -> Option<(String, &str)> {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find('.').unwrap_or(s.len());
        let part = &s[..end];
        return (!part.is_empty() && !part.contains('"')).then(|| (part.to_owned(), &s[end..]));
    };
    let mut out = String::new();
    let mut rest = quoted;
    loop {
        let close = rest.find('"')?;
        out.push_str(&rest[..close]);
        rest = &rest[close + 1..];
        match rest.strip_prefix('"') {
            Some(after) => {
                out.push('"');
                rest = after;
            }
            None => return (!out.is_empty()).then_some((out, rest)),
        }
    }
}

/// Whether a profile's `name` or `schema.name` names this table (exactly: no wildcards).
pub fn matches(pattern: &str, (schema, name): &Table) -> bool {
    match parse_table_name(pattern) {
        Some((Some(s), n)) => s == *schema && n == *name,
        Some((None, n)) => n == *name,
        None => false,
    }
}

/// The tables an export of `profile` dumps and counts, out of every table of the database (`all`, in order).
/// Every table the profile names must exist in `all`.
pub fn select_tables(
    all: Vec<Table>,
    profile: &Profile,
    profile_name: &str,
    db: &str,
) -> Result<Vec<Table>, MissingTable> {
    for pattern in profile.include.iter().chain(&profile.exclude) {
        if !all.iter().any(|t| matches(pattern, t)) {
            return Err(MissingTable {
                profile: profile_name.to_owned(),
                pattern: pattern.clone(),
                db: db.to_owned(),
            });
        }
    }
    Ok(all
        .into_iter()
        .filter(|t| profile.include.is_empty() || profile.include.iter().any(|p| matches(p, t)))
        .filter(|t| !profile.exclude.iter().any(|p| matches(p, t)))
        .collect())
}

/// Quotes a name for a pg_dump pattern, so it matches exactly that name.
pub fn quote_pattern(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQL that counts a table's rows.
pub fn count_sql((schema, name): &Table) -> String {
    format!("select count(*) from {}.{}", quote_ident(schema), quote_ident(name))
}

/// pg_dump's table arguments: the whole schema is always dumped (every schema, type, domain, extension and large
/// object a table may need, so that the archive restores into an empty database on its own), and the data of
/// each table of `all` that is not `selected` is left out with `--exclude-table-data`, named exactly.
pub fn table_args(all: &[Table], selected: &[Table]) -> Vec<String> {
    all.iter()
        .filter(|t| !selected.contains(t))
        .map(|(schema, name)| format!("--exclude-table-data={}.{}", quote_pattern(schema), quote_pattern(name)))
        .collect()
}

/// A foreign key of the database, read from `pg_constraint`: the table that holds it (`from`) references `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub name: String,
    pub from: Table,
    pub to: Table,
}

/// A table name as SQL writes it, schema and name each quoted: `"public"."my.table"` and `"my"."table"` never
/// read alike, in an error or a log line.
pub fn qualified((schema, name): &Table) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A profile exports the rows of a table but not those of a table it references: pg_restore adds the foreign
/// key after loading the data, which then fails on every row, so the archive would not restore on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "profile `{profile}` of {db} exports the rows of {} but not those of {}, which it references (foreign key `{}`): \
     the archive would not restore; add {} to the profile's tables, or leave {} out too",
    qualified(&key.from), qualified(&key.to), key.name, qualified(&key.to), qualified(&key.from)
)]
pub struct UnsatisfiedForeignKey {
    pub profile: String,
    pub db: String,
    pub key: Box<ForeignKey>,
}

/// Every validated foreign key from a table whose data is `selected` must point at a selected table too (or at
/// itself). The whole schema is always dumped, so the constraint is in the archive whatever the profile; only
/// the rows it checks can be missing. A `NOT VALID` key is restored without checking old rows, so the caller
/// passes only validated keys. The first unsatisfied key, in `keys` order, is the error.
pub fn check_foreign_keys(
    selected: &[Table],
    keys: &[ForeignKey],
    profile_name: &str,
    db: &str,
) -> Result<(), UnsatisfiedForeignKey> {
    match keys
        .iter()
        .find(|k| selected.contains(&k.from) && !selected.contains(&k.to))
    {
        None => Ok(()),
        Some(key) => Err(UnsatisfiedForeignKey {
            profile: profile_name.to_owned(),
            db: db.to_owned(),
            key: Box::new(key.clone()),
        }),
    }
}

/// Where to connect: the secret's host (and port, else PostgreSQL's), else the database's endpoint (with the
/// secret's port if it names one). `None` when neither says where the database is.
pub fn address(
    secret_host: Option<&str>,
    secret_port: Option<u16>,
    endpoint: Option<(&str, u16)>,
) -> Option<(String, u16)> {
    match (secret_host, secret_port, endpoint) {
        (Some(h), p, _) => Some((h.to_owned(), p.unwrap_or(DEFAULT_PORT))),
        (None, p, Some((h, ep))) => Some((h.to_owned(), p.unwrap_or(ep))),
        (None, _, None) => None,
    }
}

/// The variable that lets the export connect to a host that is not one of the database's endpoints.
pub const ALLOW_ANY_HOST: &str = "LIFEBOAT_EXPORT_ALLOW_ANY_HOST";

/// A secret names a host that is not the selected database: whoever can tag a database (`lifeboat:secret`)
/// must not be able to make the export dump another server. Never carries the secret's password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "secret {secret} names host `{host}`, which is not an endpoint of {db} ({}): the export connects only to the \
     database it exports; fix the secret's host, or set {ALLOW_ANY_HOST}=true to allow any host (a proxy, a tunnel)",
    expected_text(expected)
)]
pub struct ForeignHost {
    pub secret: String,
    pub db: String,
    pub host: String,
    pub expected: Vec<String>,
}

fn expected_text(expected: &[String]) -> String {
    if expected.is_empty() {
        "the database reports no endpoint".to_owned()
    } else {
        format!("expected {}", expected.join(" or "))
    }
}

/// DNS names compare case-insensitively, with or without the root's trailing dot.
fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Whether the export may connect to the host a secret names: a secret without a host connects to the
/// endpoint; otherwise the host must be one of the database's `endpoints` (instance, cluster writer, reader or
/// member endpoints), unless `allow_any` ([`ALLOW_ANY_HOST`]).
pub fn check_host(
    secret: &str,
    db: &str,
    secret_host: Option<&str>,
    endpoints: &[String],
    allow_any: bool,
) -> Result<(), ForeignHost> {
    match secret_host {
        None => Ok(()),
        Some(_) if allow_any => Ok(()),
        Some(host) if endpoints.iter().any(|e| same_host(e, host)) => Ok(()),
        Some(host) => Err(ForeignHost {
            secret: secret.to_owned(),
            db: db.to_owned(),
            host: host.to_owned(),
            expected: endpoints.to_vec(),
        }),
    }
}

/// The stored object is not the size the pipeline wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stored object has {stored} bytes, the pipeline wrote {written}")]
pub struct SizeMismatch {
    pub stored: i64,
    pub written: u64,
}

/// The completed object must be exactly what the pipeline wrote (`stored` is -1 when it is not listed at all).
pub fn check_stored_size(stored: i64, written: u64) -> Result<(), SizeMismatch> {
    if stored != written as i64 {
        return Err(SizeMismatch { stored, written });
    }
    Ok(())
}

/// What became of one database's export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Exported,
    /// The manifest for this database, profile and time exists: a redelivered event makes no second export.
    AlreadyExported,
    /// Would not finish before the invocation's deadline; nothing was started.
    Refused,
    Failed,
}

impl Outcome {
    /// Whether a complete export exists afterwards (the `ExportSuccess` metric is 1).
    pub fn succeeded(self) -> bool {
        matches!(self, Self::Exported | Self::AlreadyExported)
    }

    /// Whether the run reports this database as failed (a refusal is a failure: no export exists).
    pub fn failed(self) -> bool {
        matches!(self, Self::Failed | Self::Refused)
    }
}

/// Plaintext bytes per second of an export (a zero duration counts as a millisecond).
pub fn throughput(plaintext_bytes: u64, seconds: f64) -> f64 {
    plaintext_bytes as f64 / seconds.max(0.001)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn reads_pg_dump_versions() {
        assert_eq!(major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(major("pg_dump (PostgreSQL) 17.2"), Some(17));
        assert_eq!(major("nonsense"), None);
    }

    #[test]
    fn patterns_match_exact_names() {
        assert_eq!(quote_pattern("users"), "\"users\"");
        assert_eq!(quote_pattern("we\"ird*"), "\"we\"\"ird*\"");
    }

    #[test]
    fn pg_dump_may_be_newer_never_older() {
        assert_eq!(check_pg_dump("pg_dump (PostgreSQL) 17.2", "16.4", 160004), Ok(()));
        assert_eq!(check_pg_dump("pg_dump (PostgreSQL) 16.1", "16.4", 160004), Ok(()));
        let err = check_pg_dump("pg_dump (PostgreSQL) 15.18", "16.4", 160004).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pg_dump pg_dump (PostgreSQL) 15.18 is older than the server (16.4); an older pg_dump cannot dump a newer \
             server: use a PostgreSQL client at least as new as the server (LIFEBOAT_PG_DUMP)"
        );
        assert_eq!(
            check_pg_dump("nonsense", "16.4", 160004).unwrap_err().to_string(),
            "cannot read pg_dump's version from `nonsense`"
        );
    }

    fn t(schema: &str, name: &str) -> Table {
        (schema.to_owned(), name.to_owned())
    }

    fn all() -> Vec<Table> {
        vec![t("audit", "users"), t("public", "messages"), t("public", "users")]
    }

    #[test]
    fn profiles_select_their_tables_and_name_what_is_missing() {
        let include = Profile {
            include: vec!["public.users".into(), "messages".into()],
            ..Profile::default()
        };
        assert_eq!(
            select_tables(all(), &include, "critical", "app").unwrap(),
            vec![t("public", "messages"), t("public", "users")]
        );
        let exclude = Profile {
            exclude: vec!["users".into()],
            ..Profile::default()
        };
        assert_eq!(
            select_tables(all(), &exclude, "lean", "app").unwrap(),
            vec![t("public", "messages")]
        );
        assert_eq!(select_tables(all(), &Profile::default(), "full", "app").unwrap(), all());
        let typo = Profile {
            include: vec!["userz".into()],
            ..Profile::default()
        };
        assert_eq!(
            select_tables(all(), &typo, "typo", "app-prod").unwrap_err().to_string(),
            "profile `typo` names table `userz`, which app-prod does not have"
        );
    }

    fn fk(name: &str, from: Table, to: Table) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            from,
            to,
        }
    }

    #[test]
    fn a_profile_that_leaves_out_the_rows_its_tables_reference_is_refused_naming_both() {
        let keys = [
            fk("projects_owner_id_fkey", t("public", "projects"), t("public", "users")),
            fk("tree_parent_fkey", t("public", "tree"), t("public", "tree")),
        ];
        // The referenced table is selected, or the referencing one is not: restorable.
        check_foreign_keys(&[t("public", "projects"), t("public", "users")], &keys, "p", "app").unwrap();
        check_foreign_keys(&[t("public", "users")], &keys, "p", "app").unwrap();
        // A table that references itself needs nothing else.
        check_foreign_keys(&[t("public", "tree")], &keys, "p", "app").unwrap();
        let err = check_foreign_keys(&[t("public", "projects")], &keys, "critical", "app-prod").unwrap_err();
        assert_eq!(*err.key, keys[0]);
        assert_eq!(
            err.to_string(),
            "profile `critical` of app-prod exports the rows of \"public\".\"projects\" but not those of \
             \"public\".\"users\", which it references (foreign key `projects_owner_id_fkey`): the archive would \
             not restore; add \"public\".\"users\" to the profile's tables, or leave \"public\".\"projects\" out too"
        );
    }

    #[test]
    fn qualified_names_keep_a_dot_inside_a_name_apart_from_the_schema_dot() {
        assert_eq!(qualified(&t("public", "my.table")), "\"public\".\"my.table\"");
        assert_eq!(qualified(&t("my", "table")), "\"my\".\"table\"");
        assert_ne!(qualified(&t("a.b", "c")), qualified(&t("a", "b.c")));
    }

    #[test]
    fn pg_dump_dumps_the_whole_schema_and_leaves_out_the_data_of_unselected_tables() {
        assert_eq!(
            table_args(&all(), &[t("public", "users")]),
            vec![
                "--exclude-table-data=\"audit\".\"users\"",
                "--exclude-table-data=\"public\".\"messages\""
            ]
        );
        assert_eq!(
            table_args(
                &[t("public", "my.table"), t("my", "we\"ird")],
                &[t("public", "my.table")]
            ),
            vec!["--exclude-table-data=\"my\".\"we\"\"ird\""]
        );
        assert!(table_args(&all(), &all()).is_empty());
        assert_eq!(
            count_sql(&t("public", "we\"ird")),
            "select count(*) from \"public\".\"we\"\"ird\""
        );
    }

    #[test]
    fn a_dot_inside_a_quoted_name_is_not_a_schema() {
        assert_eq!(parse_table_name("users"), Some((None, "users".into())));
        assert_eq!(parse_table_name("my.table"), Some((Some("my".into()), "table".into())));
        assert_eq!(parse_table_name("\"my.table\""), Some((None, "my.table".into())));
        assert_eq!(
            parse_table_name("public.\"my.table\""),
            Some((Some("public".into()), "my.table".into()))
        );
        assert_eq!(
            parse_table_name("\"a\"\"b\".c"),
            Some((Some("a\"b".into()), "c".into()))
        );
        for bad in ["a.b.c", "\"open", "", ".x", "x.", "\"\"", "a\"b"] {
            assert_eq!(parse_table_name(bad), None, "{bad}");
        }
        let tables = vec![t("my", "table"), t("public", "my.table")];
        let quoted = Profile {
            include: vec!["\"my.table\"".into()],
            ..Profile::default()
        };
        assert_eq!(
            select_tables(tables.clone(), &quoted, "q", "app").unwrap(),
            vec![t("public", "my.table")]
        );
        let dotted = Profile {
            include: vec!["my.table".into()],
            ..Profile::default()
        };
        assert_eq!(
            select_tables(tables, &dotted, "d", "app").unwrap(),
            vec![t("my", "table")]
        );
        let bad = Profile {
            exclude: vec!["a.b.c".into()],
            ..Profile::default()
        };
        assert_eq!(validate_profile("x", &bad), Err(ProfileError::TableName));
    }

    #[test]
    fn events_choose_a_configured_profile_or_name_their_tables() {
        let profiles = BTreeMap::from([("full".to_owned(), Profile::default())]);
        assert_eq!(choose_profile(&profiles, None, vec![]).unwrap().0, "full");
        let (name, p) = choose_profile(&profiles, Some("x".into()), vec!["users".into()]).unwrap();
        assert_eq!((name.as_str(), p.include), ("manual", vec!["users".to_owned()]));
        assert_eq!(
            choose_profile(&profiles, Some("weekly".into()), vec![])
                .unwrap_err()
                .to_string(),
            "unknown export profile `weekly` (configured: full)"
        );
    }

    #[test]
    fn profile_names_and_shapes_are_validated() {
        assert_eq!(validate_profile("no-messages-2", &Profile::default()), Ok(()));
        assert_eq!(validate_profile("Crit", &Profile::default()), Err(ProfileError::Name));
        assert_eq!(validate_profile("", &Profile::default()), Err(ProfileError::Name));
        assert_eq!(
            validate_profile("rdb", &Profile::default()),
            Err(ProfileError::Reserved)
        );
        let both = Profile {
            include: vec!["a".into()],
            exclude: vec!["b".into()],
            ..Profile::default()
        };
        assert_eq!(validate_profile("x", &both), Err(ProfileError::IncludeAndExclude));
    }

    #[test]
    fn the_secret_says_where_to_connect_before_the_endpoint() {
        assert_eq!(address(Some("h"), None, Some(("e", 5433))), Some(("h".into(), 5432)));
        assert_eq!(address(None, Some(6432), Some(("e", 5433))), Some(("e".into(), 6432)));
        assert_eq!(address(None, None, Some(("e", 5433))), Some(("e".into(), 5433)));
        assert_eq!(address(None, Some(1), None), None);
    }

    #[test]
    fn a_secret_may_name_only_the_databases_own_endpoints() {
        let endpoints = vec![
            "app.cluster-abc.us-east-1.rds.amazonaws.com".to_owned(),
            "app.cluster-ro-abc.us-east-1.rds.amazonaws.com".to_owned(),
        ];
        let check = |host: Option<&str>, allow| check_host("lifeboat/app", "app", host, &endpoints, allow);
        assert_eq!(check(None, false), Ok(()), "no host: the endpoint is used");
        assert_eq!(
            check(Some("APP.cluster-abc.us-east-1.rds.amazonaws.com."), false),
            Ok(())
        );
        assert_eq!(
            check(Some("app.cluster-ro-abc.us-east-1.rds.amazonaws.com"), false),
            Ok(())
        );
        assert_eq!(check(Some("10.0.0.9"), true), Ok(()), "allowed by configuration");
        let err = check(Some("evil.example.com"), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret lifeboat/app names host `evil.example.com`, which is not an endpoint of app (expected \
             app.cluster-abc.us-east-1.rds.amazonaws.com or app.cluster-ro-abc.us-east-1.rds.amazonaws.com): the \
             export connects only to the database it exports; fix the secret's host, or set \
             LIFEBOAT_EXPORT_ALLOW_ANY_HOST=true to allow any host (a proxy, a tunnel)"
        );
        let none = check_host("s", "new-db", Some("h"), &[], false)
            .unwrap_err()
            .to_string();
        assert!(
            none.contains("not an endpoint of new-db (the database reports no endpoint)"),
            "{none}"
        );
    }

    #[test]
    fn a_running_export_stops_a_margin_before_the_deadline_and_says_to_use_ecs() {
        let deadline = Instant::now() + Duration::from_secs(900);
        assert_eq!(stop_at(Some(deadline)), Some(deadline - DEADLINE_MARGIN));
        assert_eq!(stop_at(None), None);
        let stop = DeadlineStop::after(Duration::from_millis(840_500)).to_string();
        assert!(
            stop.starts_with("stopped 60 s before the invocation's deadline after 840 s"),
            "{stop}"
        );
        assert!(stop.contains("use the ECS task"), "{stop}");
        assert!(NotReached.to_string().contains("use the ECS task"));
    }

    #[test]
    fn parts_grow_with_the_database_and_trade_parallelism_for_size() {
        let mib = MIB as u64;
        let small = part_sizing(100 * MIB, 8 * MIB as usize, 2);
        assert_eq!(
            small,
            PartSizing {
                part_size: 8 * mib,
                parts_in_flight: 2,
                memory_bytes: 32 * mib
            }
        );
        // 1 TiB: 2 TiB worst case over 10,000 parts is 210 MiB parts; one in flight.
        let tib = part_sizing(1 << 40, 8 * MIB as usize, 2);
        assert_eq!(tib.part_size, 210 * mib);
        assert_eq!(tib.parts_in_flight, 1);
        // 100 GiB needs 21 MiB parts: the configured 64 MiB already fits, and keeps its parallelism.
        let mid = part_sizing(100 << 30, 64 * MIB as usize, 4);
        assert_eq!(
            (mid.part_size, mid.parts_in_flight),
            (64 * mib, 4),
            "the configured size already fits"
        );
    }

    proptest! {
        #[test]
        fn any_database_up_to_5_tib_fits_in_s3s_parts_within_the_budget(
            size in 0i64..=(5i64 << 40),
            configured_mib in 5usize..=512,
            in_flight in 1usize..=16,
            bigger in 0i64..(1 << 40),
        ) {
            let configured = configured_mib * MIB as usize;
            let p = part_sizing(size, configured, in_flight);
            prop_assert!((MIN_PART..=MAX_PART).contains(&p.part_size));
            prop_assert!(p.part_size >= configured as u64);
            let worst = size as u64 * STORED_WORST_CASE;
            prop_assert!(worst.div_ceil(p.part_size) <= MAX_PARTS, "{p:?}");
            prop_assert!((1..=in_flight).contains(&p.parts_in_flight));
            let budget = configured as u64 * (in_flight as u64 + 2);
            prop_assert!(p.memory_bytes <= budget.max(3 * p.part_size), "{p:?}");
            prop_assert!(part_sizing(size + bigger, configured, in_flight).part_size >= p.part_size);
        }
    }

    #[test]
    fn refusals_say_size_speed_and_time() {
        let refusal = admit(600 * 1024 * 1024, 1, Some(Duration::from_secs(30))).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "600 MiB at about 1 MiB/s needs ~600 s but only 30 s remain before the invocation's deadline: run this \
             export as the ECS task (docs/book/src/guide/export.md) or raise the function's timeout"
        );
        assert_eq!(admit(600 * 1024 * 1024, 20, Some(Duration::from_secs(900))), Ok(()));
        assert!(
            admit(0, 20, Some(Duration::from_secs(59))).is_err(),
            "the margin is kept"
        );
        assert!(
            admit(1, 0, Some(Duration::from_secs(1 << 40))).is_err(),
            "no speed never finishes"
        );
    }

    #[test]
    fn stored_size_and_outcomes() {
        assert_eq!(check_stored_size(10, 10), Ok(()));
        assert_eq!(
            check_stored_size(-1, 10).unwrap_err().to_string(),
            "the stored object has -1 bytes, the pipeline wrote 10"
        );
        assert!(Outcome::AlreadyExported.succeeded() && !Outcome::AlreadyExported.failed());
        assert!(Outcome::Refused.failed() && !Outcome::Refused.succeeded());
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
        let locked = Profile {
            object_lock_days: Some(30),
            ..Profile::default()
        };
        assert_eq!(
            locked.lock_until(at),
            Some(Utc.with_ymd_and_hms(2026, 12, 22, 2, 0, 0).unwrap())
        );
        assert_eq!(Profile::default().lock_until(at), None);
    }

    proptest! {
        #[test]
        fn an_admitted_selection_holds_every_table_its_rows_reference(
            edges in proptest::collection::vec((0usize..6, 0usize..6), 0..12),
            chosen in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let table = |i: usize| t("public", &format!("t{i}"));
            let keys: Vec<ForeignKey> = edges.iter().map(|&(a, b)| fk(&format!("k{a}{b}"), table(a), table(b))).collect();
            let every: Vec<Table> = (0..6).map(table).collect();
            prop_assert!(check_foreign_keys(&every, &keys, "full", "db").is_ok(), "everything is always restorable");
            let selected: Vec<Table> = (0..6).filter(|&i| chosen[i]).map(table).collect();
            let closed = keys.iter().all(|k| !selected.contains(&k.from) || selected.contains(&k.to));
            prop_assert_eq!(check_foreign_keys(&selected, &keys, "p", "db").is_ok(), closed);
        }
    }
    proptest! {
        #[test]
        fn a_refusal_holds_for_anything_bigger_slower_or_later(
            size in 0i64..(1 << 44),
            bigger in 0i64..(1 << 40),
            speed in 1u32..10_000,
            slower in 0u32..10_000,
            left in 0u64..200_000,
            less in 0u64..200_000,
        ) {
            let time = Duration::from_secs(left);
            if admit(size, speed, Some(time)).is_err() {
                prop_assert!(admit(size + bigger, speed, Some(time)).is_err());
                prop_assert!(admit(size, speed.saturating_sub(slower).max(1), Some(time)).is_err());
                prop_assert!(admit(size, speed, Some(Duration::from_secs(left.saturating_sub(less)))).is_err());
            }
            prop_assert!(admit(size, speed, None).is_ok(), "without a deadline nothing is refused");
        }
    }
}
