//! The command line, parsed by hand (three commands, a dozen options: no parser crate needed), and the help
//! texts. Pure: no environment, no I/O.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDateTime, Utc};
use lifeboat::postgres::archive::Which;

pub const HELP: &str = "\
lifeboat: restore from Lifeboat's exports in one command

Usage:
  lifeboat exports <database> [--profile P]
  lifeboat restore <database> [--latest | --before <time> | --manifest <key>] [--table T ...] --into <postgres URL> \
[--identity-file <path> | --identity-secret <secret id>] [--report] [--jobs N [--workdir DIR]]
  lifeboat verify <manifest key> [--identity-file <path> | --identity-secret <secret id>]
  lifeboat report [--period P] [--out FILE]
  lifeboat <command> --help     explains a command, with an example

Common options:
  --bucket B          the export bucket (default: $LIFEBOAT_BUCKET)
  --pg-restore PATH   the pg_restore program (default: $LIFEBOAT_PG_RESTORE, else pg_restore on the PATH)

AWS credentials and region come from the usual chain (AWS_PROFILE, ~/.aws, SSO, environment);
AWS_ENDPOINT_URL points it at an S3-compatible endpoint. Exit codes: 0 done, 1 failed, 2 usage,
130 interrupted (Ctrl-C during a restore drops the database it created).
";

pub const EXPORTS_HELP: &str = "\
lifeboat exports <database> [--profile P] [--bucket B]

Lists the complete exports of a database (those with a manifest), oldest first: time, profile, stored size,
tables, how the export was verified, and the manifest key to give to `restore --manifest` or `verify`.

Example:
  lifeboat exports app-prod --profile full
";

pub const RESTORE_HELP: &str = "\
lifeboat restore <database> [--profile P] [--latest | --before <time> | --manifest <key>] [--table T ...]
                 --into <postgres URL> [--identity-file <path> | --identity-secret <secret id>] [--report]
                 [--jobs N [--workdir DIR]]

Streams an export out of S3 into a NEW database: the stored object's SHA-256 is checked against the manifest,
decrypted with the age identity, decompressed, and fed to pg_restore with no temporary file; then every
restored table's row count must equal the manifest's. The target database must not exist; it is created, and
dropped again if anything fails, or on Ctrl-C (exit code 130). Progress per stage goes to stderr, the result
to stdout.

  --latest            the newest complete export (the default)
  --before <time>     the newest complete export at or before this RFC 3339 time (2026-11-22T12:00:00Z)
  --manifest <key>    exactly this export (a key from `lifeboat exports`)
  --profile P         exports of this profile (default: full; ignored with --manifest)
  --table T           only this table (repeatable): users, billing.invoices, \"My Schema\".\"odd.name\";
                      any case. Tables come back without their indexes and constraints, as pg_restore -t does.
  --into URL          postgres://user[:password]@host[:port]/<new database>[?sslmode=..&sslrootcert=..];
                      the password may come from PGPASSWORD instead; TLS defaults to verify-full
  --identity-file P   an age identity file (AGE-SECRET-KEY-1..., as age-keygen writes it)
  --identity-secret S a Secrets Manager secret holding the identity
  --report            also write the restore's report (tables, counted and expected rows, stage durations, RTO,
                      outcome) to s3://<bucket>/reports/restore-export/<database>/<time>.json, restored or failed
  --jobs N            pg_restore --jobs N (2 to 32): the plaintext archive is first written, checked, to a 0600
                      file in the work directory (refused up front when it would not fit with 64 MiB to spare)
                      and removed afterwards; without it (or with 1) the restore streams, with no file
  --workdir DIR       the work directory for --jobs (default: the system's temporary directory, $TMPDIR)

Example (last night's users table beside the live database):
  PGPASSWORD=... lifeboat restore app-prod --before 2026-11-22T12:00Z --table users \\
      --into 'postgres://admin@app-prod.xxxx.rds.amazonaws.com/app_users_20261122?sslmode=require' \\
      --identity-secret lifeboat/age-identity
";

pub const VERIFY_HELP: &str = "\
lifeboat verify <manifest key> [--identity-file <path> | --identity-secret <secret id>] [--bucket B]

Checks an export end to end without restoring it: downloads it, checks the stored SHA-256 and size against
the manifest, decrypts, decompresses, checks the plaintext SHA-256, and has pg_restore parse the whole archive
(pg_restore -f /dev/null).

Example:
  lifeboat verify exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json \\
      --identity-file ~/.config/lifeboat/age.key
";

pub const REPORT_HELP: &str = "\
lifeboat report [--period P] [--out FILE] [--bucket B]

Writes the fleet's evidence report, the same page monitor writes under reports/evidence/ in the bucket: each
database's policy next to what happened (snapshots and exports per day, gaps marked), backup ages against their
thresholds, restore tests with RTO and RPO, export sizes and durations, open findings and a verdict line. One
self-contained HTML file (no scripts, nothing fetched, prints to PDF) and its JSON beside it (same name, .json).
Reads RDS and the bucket only. The databases and thresholds come from the same variables monitor reads
(LIFEBOAT_SELECT_TAG, LIFEBOAT_DATABASES, LIFEBOAT_SNAPSHOT_MAX_AGE_HOURS, LIFEBOAT_EXPORT_MAX_AGE_HOURS, ...).

  --period P   2026-10 (a month), 2026-Q3 (a quarter), previous-month, or last-30-days (the default)
  --out FILE   where to write the page (default: lifeboat-evidence-<period>.html here)

Example:
  LIFEBOAT_EXPORT_MAX_AGE_HOURS=full=26,critical=7 lifeboat report --period 2026-Q3 --out q3.html
";

/// Where the age identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    File(PathBuf),
    Secret(String),
}

/// Options every command that reads the bucket takes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Common {
    pub bucket: Option<String>,
    pub pg_restore: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    pub db: String,
    pub profile: String,
    pub which: Which,
    pub tables: Vec<String>,
    /// The URL as given (it may hold a password; parsed, never printed).
    pub into: String,
    pub identity: Option<IdentitySource>,
    /// Write the restore's report to the bucket (`reports/restore-export/<db>/...`).
    pub report: bool,
    /// `pg_restore --jobs` (2 or more: through a file in `workdir`); `None` streams.
    pub jobs: Option<u32>,
    /// Where the plaintext archive goes with `--jobs` (default: the system's temporary directory).
    pub workdir: Option<PathBuf>,
    pub common: Common,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help(&'static str),
    Version,
    Exports {
        db: String,
        profile: Option<String>,
        common: Common,
    },
    Restore(Restore),
    Verify {
        manifest: String,
        identity: Option<IdentitySource>,
        common: Common,
    },
    Report {
        period: Option<String>,
        out: Option<PathBuf>,
        common: Common,
    },
}

/// A command line that cannot be run; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("no command: run `lifeboat --help`")]
    NoCommand,
    #[error("unknown command `{0}`: the commands are exports, restore, verify and report (`lifeboat --help`)")]
    UnknownCommand(String),
    #[error("`lifeboat {0}` does not take {1}: run `lifeboat {0} --help`")]
    UnknownOption(&'static str, String),
    #[error("{0} needs a value: run `lifeboat {1} --help`")]
    MissingValue(String, &'static str),
    #[error("{0} given twice")]
    Repeated(String),
    #[error("`lifeboat {0}` needs {1}: run `lifeboat {0} --help`")]
    Missing(&'static str, &'static str),
    #[error("unexpected argument `{1}`: run `lifeboat {0} --help`")]
    Extra(&'static str, String),
    #[error("choose one of --latest, --before and --manifest")]
    ManyExports,
    #[error("choose one of --identity-file and --identity-secret")]
    ManyIdentities,
    #[error("--before {0} is not an RFC 3339 time (e.g. 2026-11-22T12:00:00Z)")]
    Time(String),
    #[error("--jobs {0}: give a whole number from 1 to 32")]
    Jobs(String),
}

/// Options and positionals of one command.
#[derive(Debug, Default)]
struct Parsed {
    positional: Vec<String>,
    values: Vec<(String, String)>,
    flags: Vec<String>,
    help: bool,
}

impl Parsed {
    fn one(&self, name: &str) -> Result<Option<String>, UsageError> {
        let mut found = self.values.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone());
        let first = found.next();
        match found.next() {
            Some(_) => Err(UsageError::Repeated(name.to_owned())),
            None => Ok(first),
        }
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Splits `args` into positionals, `--name value` / `--name=value` options (of `valued`) and flags (of `flags`).
fn split(cmd: &'static str, args: &[String], valued: &[&str], flags: &[&str]) -> Result<Parsed, UsageError> {
    let mut out = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--help" || arg == "-h" {
            out.help = true;
        } else if let Some(opt) = arg.strip_prefix("--") {
            let (name, inline) = match opt.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            if flags.contains(&name.as_str()) && inline.is_none() {
                out.flags.push(name);
            } else if valued.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| UsageError::MissingValue(name.clone(), cmd))?,
                };
                out.values.push((name, value));
            } else {
                return Err(UsageError::UnknownOption(cmd, arg.clone()));
            }
        } else {
            out.positional.push(arg.clone());
        }
    }
    Ok(out)
}

/// The one positional a command takes.
fn positional(cmd: &'static str, p: &Parsed, what: &'static str) -> Result<String, UsageError> {
    match p.positional.as_slice() {
        [] => Err(UsageError::Missing(cmd, what)),
        [one] => Ok(one.clone()),
        [_, extra, ..] => Err(UsageError::Extra(cmd, extra.clone())),
    }
}

fn common(p: &Parsed) -> Result<Common, UsageError> {
    Ok(Common {
        bucket: p.one("--bucket")?,
        pg_restore: p.one("--pg-restore")?,
    })
}

fn identity(p: &Parsed) -> Result<Option<IdentitySource>, UsageError> {
    match (p.one("--identity-file")?, p.one("--identity-secret")?) {
        (Some(_), Some(_)) => Err(UsageError::ManyIdentities),
        (Some(f), None) => Ok(Some(IdentitySource::File(PathBuf::from(f)))),
        (None, Some(s)) => Ok(Some(IdentitySource::Secret(s))),
        (None, None) => Ok(None),
    }
}

/// An RFC 3339 time, also without seconds (`2026-11-22T12:00Z`).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, UsageError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M%#z") {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%MZ")
        .map(|t| t.and_utc())
        .map_err(|_| UsageError::Time(text.to_owned()))
}

fn which(p: &Parsed) -> Result<Which, UsageError> {
    let latest = p.flags.iter().any(|f| f == "--latest");
    match (latest, p.one("--before")?, p.one("--manifest")?) {
        (_, Some(_), Some(_)) | (true, Some(_), _) | (true, _, Some(_)) => Err(UsageError::ManyExports),
        (_, Some(t), None) => Ok(Which::Before(parse_time(&t)?)),
        (_, None, Some(k)) => Ok(Which::Manifest(k)),
        (_, None, None) => Ok(Which::Latest),
    }
}

const COMMON: [&str; 2] = ["--bucket", "--pg-restore"];
const IDENTITY: [&str; 2] = ["--identity-file", "--identity-secret"];

fn restore(args: &[String]) -> Result<Command, UsageError> {
    let valued = [
        &COMMON[..],
        &IDENTITY[..],
        &[
            "--profile",
            "--before",
            "--manifest",
            "--table",
            "--into",
            "--jobs",
            "--workdir",
        ],
    ]
    .concat();
    let p = split("restore", args, &valued, &["--latest", "--report"])?;
    if p.help {
        return Ok(Command::Help(RESTORE_HELP));
    }
    let db = positional("restore", &p, "a database")?;
    let into = p
        .one("--into")?
        .ok_or(UsageError::Missing("restore", "--into <postgres URL>"))?;
    Ok(Command::Restore(Restore {
        db,
        profile: p
            .one("--profile")?
            .unwrap_or_else(|| lifeboat::postgres::export::DEFAULT_PROFILE.to_owned()),
        which: which(&p)?,
        tables: p.all("--table"),
        into,
        identity: identity(&p)?,
        report: p.flags.iter().any(|f| f == "--report"),
        jobs: p.one("--jobs")?.map(|j| jobs(&j)).transpose()?,
        workdir: p.one("--workdir")?.map(PathBuf::from),
        common: common(&p)?,
    }))
}

/// `--jobs`: a whole number from 1 to [`lifeboat::postgres::archive::plan::MAX_JOBS`].
fn jobs(text: &str) -> Result<u32, UsageError> {
    text.parse()
        .ok()
        .filter(|j| (1..=lifeboat::postgres::archive::plan::MAX_JOBS).contains(j))
        .ok_or_else(|| UsageError::Jobs(text.to_owned()))
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(UsageError::NoCommand);
    };
    match cmd.as_str() {
        "--help" | "-h" | "help" => Ok(Command::Help(HELP)),
        "--version" | "-V" => Ok(Command::Version),
        "exports" => {
            let valued = [&COMMON[..], &["--profile"]].concat();
            let p = split("exports", rest, &valued, &[])?;
            if p.help {
                return Ok(Command::Help(EXPORTS_HELP));
            }
            let db = positional("exports", &p, "a database")?;
            Ok(Command::Exports {
                db,
                profile: p.one("--profile")?,
                common: common(&p)?,
            })
        }
        "restore" => restore(rest),
        "verify" => {
            let p = split("verify", rest, &[&COMMON[..], &IDENTITY[..]].concat(), &[])?;
            if p.help {
                return Ok(Command::Help(VERIFY_HELP));
            }
            let manifest = positional("verify", &p, "a manifest key")?;
            Ok(Command::Verify {
                manifest,
                identity: identity(&p)?,
                common: common(&p)?,
            })
        }
        "report" => {
            let p = split("report", rest, &["--bucket", "--period", "--out"], &[])?;
            if p.help {
                return Ok(Command::Help(REPORT_HELP));
            }
            if let Some(extra) = p.positional.first() {
                return Err(UsageError::Extra("report", extra.clone()));
            }
            Ok(Command::Report {
                period: p.one("--period")?,
                out: p.one("--out")?.map(PathBuf::from),
                common: common(&p)?,
            })
        }
        other => Err(UsageError::UnknownCommand(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use chrono::TimeZone;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn restore_parses_every_option() {
        let cmd = parse(&args(
            "restore app-prod --before 2026-11-22T12:00Z --table users --table=billing.invoices \
             --into postgres://h/new --identity-file k.txt --bucket b",
        ))
        .unwrap();
        let Command::Restore(r) = cmd else { panic!("{cmd:?}") };
        assert_eq!(r.db, "app-prod");
        assert_eq!(r.profile, "full");
        assert_eq!(
            r.which,
            Which::Before(Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap())
        );
        assert_eq!(r.tables, vec!["users", "billing.invoices"]);
        assert_eq!(r.identity, Some(IdentitySource::File("k.txt".into())));
        assert_eq!(r.common.bucket.as_deref(), Some("b"));
        assert!(!r.report);
        let Command::Restore(r) = parse(&args("restore db --into postgres://h/d --report")).unwrap() else {
            panic!("not a restore")
        };
        assert!(r.report);
        assert_eq!(r.jobs, None);
        let Command::Restore(r) = parse(&args("restore db --into postgres://h/d --jobs 4 --workdir /big")).unwrap()
        else {
            panic!("not a restore")
        };
        assert_eq!((r.jobs, r.workdir), (Some(4), Some(PathBuf::from("/big"))));
        for bad in ["0", "33", "two"] {
            assert_eq!(
                parse(&args(&format!("restore db --into postgres://h/d --jobs {bad}"))).unwrap_err(),
                UsageError::Jobs(bad.into())
            );
        }
    }

    #[test]
    fn usage_errors_say_what_to_do() {
        assert_eq!(parse(&[]).unwrap_err(), UsageError::NoCommand);
        assert!(matches!(
            parse(&args("nope")).unwrap_err(),
            UsageError::UnknownCommand(_)
        ));
        assert_eq!(
            parse(&args("restore db --latest --manifest k --into postgres://h/d")).unwrap_err(),
            UsageError::ManyExports
        );
        assert_eq!(
            parse(&args("restore db")).unwrap_err(),
            UsageError::Missing("restore", "--into <postgres URL>")
        );
        assert!(matches!(
            parse(&args("exports db --tables x")).unwrap_err(),
            UsageError::UnknownOption(..)
        ));
        assert!(matches!(
            parse(&args("exports a b")).unwrap_err(),
            UsageError::Extra(..)
        ));
        assert!(matches!(
            parse(&args("verify k --identity-file")).unwrap_err(),
            UsageError::MissingValue(..)
        ));
        assert!(matches!(
            parse(&args("restore db --before yesterday --into postgres://h/d")).unwrap_err(),
            UsageError::Time(_)
        ));
        assert_eq!(
            parse(&args("verify k --identity-file a --identity-secret b")).unwrap_err(),
            UsageError::ManyIdentities
        );
    }

    #[test]
    fn help_is_per_command() {
        assert_eq!(parse(&args("--help")).unwrap(), Command::Help(HELP));
        assert_eq!(parse(&args("restore --help")).unwrap(), Command::Help(RESTORE_HELP));
        assert_eq!(parse(&args("exports -h")).unwrap(), Command::Help(EXPORTS_HELP));
        assert_eq!(parse(&args("verify --help")).unwrap(), Command::Help(VERIFY_HELP));
        assert_eq!(parse(&args("report --help")).unwrap(), Command::Help(REPORT_HELP));
        for text in [EXPORTS_HELP, RESTORE_HELP, VERIFY_HELP, REPORT_HELP] {
            assert!(text.contains("Example"), "{text}");
        }
    }

    #[test]
    fn report_takes_a_period_and_a_file() {
        assert_eq!(
            parse(&args("report --period 2026-Q3 --out q3.html")).unwrap(),
            Command::Report {
                period: Some("2026-Q3".to_owned()),
                out: Some("q3.html".into()),
                common: Common::default()
            }
        );
        assert!(matches!(
            parse(&args("report app-prod")).unwrap_err(),
            UsageError::Extra(..)
        ));
        assert!(matches!(
            parse(&args("report --table x")).unwrap_err(),
            UsageError::UnknownOption(..)
        ));
    }

    #[test]
    fn times_parse_with_and_without_seconds() {
        let noon = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(parse_time("2026-11-22T12:00:00Z").unwrap(), noon);
        assert_eq!(parse_time("2026-11-22T12:00Z").unwrap(), noon);
        assert_eq!(parse_time("2026-11-22T13:00+01:00").unwrap(), noon);
    }
}
