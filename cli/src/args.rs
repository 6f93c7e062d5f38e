//! The command line as a `clap` definition: the commands, their options and their help texts, and nothing else.
//!
//! Owns: what `lifeboat` accepts and what `--help`, `help <command>`, the shell completions and the man page say.
//! Never: reads the environment, does I/O, or depends on anything but `clap` and `std`, because `build.rs`
//! includes this very file (`#[path]`) to write the completions and man pages at build time; a definition the
//! binary parses with and one the build documents can then never differ.
//! Values the library must check (a `--before` time, an `--into` URL) stay strings here and are checked in
//! `run`, where a bad one is still a usage error (exit 2). Paths are `PathBuf`, so a path that is not UTF-8 is
//! used as it is; any other argument that is not UTF-8 is clap's usage error, never a panic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Shown under every command's `--help`: where AWS settings come from and what the exit codes mean.
pub const AFTER_HELP: &str = "\
AWS credentials and region come from the usual chain (--profile or AWS_PROFILE, ~/.aws, SSO, environment);
AWS_ENDPOINT_URL points it at an S3-compatible endpoint.

Exit codes: 0 done, 1 failed, 2 usage, 3 not found, 4 refused (bad input, permission, a target that exists),
5 verification failed (a checksum, the decryption, pg_restore's parse or a row count), 130 interrupted.
With --json, stdout holds one JSON document (the result, or {\"error\": {\"kind\": ...}}); progress goes to stderr.";

#[derive(Debug, Parser)]
#[command(
    name = "lifeboat",
    version,
    about = "Restore from Lifeboat's exports in one command",
    long_about = "Restore from Lifeboat's exports in one command: list a database's complete exports, restore one \
                  (or some of its tables) into a new database in one streamed, verified step, verify one without \
                  restoring it, and write the fleet's evidence report.",
    after_help = AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct Global {
    /// The AWS named profile to use (from ~/.aws/config and ~/.aws/credentials); default: $AWS_PROFILE,
    /// else the default chain
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Print one JSON document on stdout (the result, or the error); progress and messages stay on stderr
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a database's complete exports, oldest first
    #[command(
        long_about = "Lists the complete exports of a database (those with a manifest), oldest first: time, export \
                      profile, stored size, tables, how the export was verified, and the manifest key to give to \
                      `restore --manifest` or `verify`. No export at all is an empty list (exit 0).",
        after_help = "Example:\n  lifeboat exports app-prod --export-profile full\n  lifeboat exports app-prod --json | jq -r '.exports[-1].manifest'"
    )]
    Exports(Exports),
    /// Restore an export (or some of its tables) into a new database, verified
    #[command(
        long_about = "Streams an export out of S3 into a NEW database: the stored object's SHA-256 is checked \
                      against the manifest, decrypted with the age identity, decompressed, and fed to pg_restore \
                      with no temporary file; then every restored table's row count must equal the manifest's. The \
                      target database must not exist; it is created, owned by a new role, and dropped again if \
                      anything fails, or on Ctrl-C (exit code 130). Progress per stage goes to stderr, the result \
                      to stdout. --dry-run resolves and checks everything and prints the plan, creating nothing.",
        after_help = "Example (last night's users table beside the live database):\n  \
PGPASSWORD=... lifeboat restore app-prod --before 2026-11-22T12:00Z --table users \\\n      \
--into 'postgres://admin@app-prod.xxxx.rds.amazonaws.com/app_users_20261122?sslmode=require' \\\n      \
--identity-secret lifeboat/age-identity\n\n\
Example (what would happen, as JSON; nothing is created):\n  \
lifeboat restore app-prod --into postgres://admin@host/app_check?sslmode=require --identity-file age.key --dry-run --json"
    )]
    Restore(Restore),
    /// Bring a database, or some of its tables, back as it was at a time, into a new database
    #[command(
        long_about = "Restores the instance (or cluster) to TIME into a private scratch instance tagged as a restore \
                      test, streams the database (or the --table tables, whole: with their indexes, constraints, \
                      defaults and sequences) from it into a NEW database on the --into server with pg_dump | \
                      pg_restore (no file), as a role that owns only what it creates, checks every table's row count \
                      against the scratch's, and deletes the scratch: always, also on failure and on Ctrl-C (exit \
                      code 130). A time outside the restorable window, or a target database that exists, is refused \
                      before anything is created. The tool must reach the scratch's subnet (run it where restores \
                      run). Progress per stage goes to stderr, the result (with the RTO) to stdout.",
        after_help = "Example (the orders table as it was at 14:31, beside the live database):\n  \
PGPASSWORD=... lifeboat recover app-prod --to 2026-11-22T14:31:00Z --table orders \\\n      \
--into 'postgres://admin@app-prod.xxxx.rds.amazonaws.com/app_orders_1431?sslmode=verify-full' \\\n      \
--subnet-group lifeboat-restore --security-group sg-0123456789abcdef0"
    )]
    Recover(Recover),
    /// Refresh a plan's staging database from the newest verified export, masked on the way
    #[command(
        long_about = "Runs the plan document's refresh rule REFRESH of PLAN now, as the restore function does: the \
                      newest complete export of the rule's source and profile (or --export), checked, decrypted and \
                      masked as it streams into pg_restore, into a NEW database on the rule's staging server, then \
                      proven (row counts, constraints, no source value in a masked column) and, when the rule says \
                      so, swapped in. The staging server is the rule's `into.instance` as RDS describes it, logged \
                      in to with its own `lifeboat:secret` (never the source's); the masking key is the stack's \
                      secret. Ctrl-C stops it and drops what it created (exit code 130).",
        after_help = "Example:\n  \
lifeboat refresh product staging --identity-secret lifeboat/age-identity --masking-key-secret lifeboat-masking-key"
    )]
    Refresh(Refresh),
    /// Check an export end to end without restoring it
    #[command(
        long_about = "Checks an export end to end without restoring it: downloads it, checks the stored SHA-256 and \
                      size against the manifest, decrypts, decompresses, checks the plaintext SHA-256, and has \
                      pg_restore parse the whole archive (pg_restore -f /dev/null). A check that fails exits 5.",
        after_help = "Example:\n  lifeboat verify exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json \\\n      \
--identity-file ~/.config/lifeboat/age.key"
    )]
    Verify(Verify),
    /// Write the fleet's evidence report (HTML and JSON) to a local file
    #[command(
        long_about = "Writes the fleet's evidence report, the same page monitor writes under reports/evidence/ in \
                      the bucket: each database's policy next to what happened (snapshots and exports per day, gaps \
                      marked), backup ages against their thresholds, restore tests with RTO and RPO, export sizes and \
                      durations, open findings and a verdict line. One self-contained HTML file and its JSON beside \
                      it (same name, .json). Reads RDS and the bucket only. The databases and thresholds come from \
                      the variables monitor reads (LIFEBOAT_SELECT_TAG, LIFEBOAT_DATABASES, \
                      LIFEBOAT_SNAPSHOT_MAX_AGE_HOURS, LIFEBOAT_EXPORT_MAX_AGE_HOURS, ...); with \
                      LIFEBOAT_PLAN_DOCUMENT=s3://bucket/key, as in monitor, every database a plan covers is judged \
                      by the plan versions in force on each day, and the report names them.",
        after_help = "Example:\n  LIFEBOAT_EXPORT_MAX_AGE_HOURS=full=26,critical=7 lifeboat report --period 2026-Q3 --out q3.html"
    )]
    Report(Report),
    /// Accept a content anomaly: release the restore points it holds and make the change the new baseline
    #[command(
        long_about = "Acknowledges the open content anomaly of a database or cache (docs/book/src/runbooks/\
                      content-anomaly.md): the record under watch/ in the bucket gets who (your AWS identity, from \
                      STS GetCallerIdentity), why and when. Retention then expires the restore points it held as \
                      the plan says, and later comparisons take the acknowledged backup as their baseline. Name the \
                      series (the export profile, or `rdb` for a cache's RDB copies) when more than one is open. \
                      Refused (exit 4) when nothing is open.",
        after_help = "Example:\n  lifeboat acknowledge product-db --series critical --why \"OPS-1311: the sessions purge was planned\""
    )]
    Acknowledge(Acknowledge),
    /// Check, show, compare and apply the backup plan document
    #[command(
        long_about = "The backup plans: one JSON document (docs/book/src/reference/plans.md) in a versioned S3 \
                      object that the functions follow. `check` validates a file offline; `show` prints the plan in \
                      force, or one database's or cache's plan with each rule's next run and last outcome; `diff` \
                      is the dry-run of a new document: every field that changes, who changes plan, and which \
                      snapshots its retention would expire; `apply` validates, prints the same, and uploads it as the \
                      new version, refusing a change that would expire snapshots unless --accept-expiry is given.",
        after_help = "Example:\n  lifeboat plan check examples/plans/three-environments.json\n  \
lifeboat plan diff plans.json --document s3://acme-config/lifeboat/plans.json\n  \
lifeboat plan apply plans.json --document s3://acme-config/lifeboat/plans.json\n  \
lifeboat plan show app-prod --bucket acme-lifeboat-exports"
    )]
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        long_about = "Prints the completion script for a shell, generated from this very command line when the \
                      tool was built. --json does not apply.",
        after_help = "Example:\n  lifeboat completions bash > ~/.local/share/bash-completion/completions/lifeboat\n  \
lifeboat completions zsh > ~/.zfunc/_lifeboat\n  lifeboat completions fish > ~/.config/fish/completions/lifeboat.fish"
    )]
    Completions {
        /// The shell to complete in
        shell: Shell,
    },
    /// Print the man page (roff), of the tool or of one command
    #[command(
        long_about = "Prints a man page in roff, generated from this very command line when the tool was built: \
                      lifeboat(1), or lifeboat-<command>(1) for one command. --json does not apply.",
        after_help = "Example:\n  lifeboat man > ~/.local/share/man/man1/lifeboat.1\n  lifeboat man restore | man -l -"
    )]
    Man {
        /// One command's page instead of the tool's
        #[arg(value_parser = MAN_PAGES)]
        command: Option<String>,
    },
}

/// The commands with a page of their own (`lifeboat-<command>(1)`): every command but `help`.
pub const MAN_PAGES: [&str; 10] = [
    "exports",
    "restore",
    "recover",
    "refresh",
    "verify",
    "report",
    "acknowledge",
    "plan",
    "completions",
    "man",
];

/// The shells a completion script is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl Shell {
    /// Every shell, for build.rs (the binary itself only parses one).
    #[allow(dead_code)]
    pub const ALL: [Shell; 5] = [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::Powershell];

    pub fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
            Shell::Elvish => "elvish",
            Shell::Powershell => "powershell",
        }
    }
}

/// Options every command that reads the bucket takes.
#[derive(Debug, Clone, Default, Args)]
pub struct Common {
    /// The export bucket (default: $LIFEBOAT_BUCKET)
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// The pg_restore program (default: $LIFEBOAT_PG_RESTORE, else pg_restore on the PATH)
    #[arg(long, value_name = "PATH")]
    pub pg_restore: Option<String>,
}

/// Where the age identity comes from: a file or a Secrets Manager secret, not both.
#[derive(Debug, Clone, Default, Args)]
#[group(multiple = false)]
pub struct Identity {
    /// An age identity file (AGE-SECRET-KEY-1..., as age-keygen writes it)
    #[arg(long, value_name = "PATH")]
    pub identity_file: Option<PathBuf>,
    /// A Secrets Manager secret holding the identity
    #[arg(long, value_name = "SECRET")]
    pub identity_secret: Option<String>,
}

#[derive(Debug, Args)]
pub struct Exports {
    /// The source database (its RDS instance identifier, as the exports name it)
    pub database: String,
    /// Only exports of this export profile (as LIFEBOAT_EXPORT_PROFILES names them); default: every profile
    #[arg(long, value_name = "PROFILE")]
    pub export_profile: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct Restore {
    /// The source database (its RDS instance identifier, as the exports name it)
    pub database: String,
    /// Exports of this export profile (ignored with --manifest)
    #[arg(long, value_name = "PROFILE", default_value = "full")]
    pub export_profile: String,
    /// The newest complete export (the default)
    #[arg(long, conflicts_with_all = ["before", "manifest"])]
    pub latest: bool,
    /// The newest complete export at or before this RFC 3339 time (2026-11-22T12:00:00Z, 2026-11-22T12:00Z)
    #[arg(long, value_name = "TIME", conflicts_with = "manifest")]
    pub before: Option<String>,
    /// Exactly this export (a manifest key from `lifeboat exports`)
    #[arg(long, value_name = "KEY")]
    pub manifest: Option<String>,
    /// Only this table (repeatable): users, billing.invoices, "My Schema"."odd.name"; any case. Tables come
    /// back without their indexes and constraints, as pg_restore -t does
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// postgres://user[:password]@host[:port]/<new database>[?sslmode=..&sslrootcert=..]; the password may come
    /// from PGPASSWORD instead; TLS defaults to verify-full
    #[arg(long, value_name = "URL", required = true)]
    pub into: String,
    #[command(flatten)]
    pub identity: Identity,
    /// Also write the restore's report (tables, counted and expected rows, stage durations, RTO, outcome) to
    /// s3://<bucket>/reports/restore-export/<database>/<time>.json, restored or failed
    #[arg(long)]
    pub report: bool,
    /// pg_restore --jobs N (1 to 32): from 2 on, the plaintext archive is first written, checked, to a 0600 file
    /// in the work directory (refused up front when it would not fit with 64 MiB to spare) and removed afterwards;
    /// without it (or with 1) the restore streams, with no file
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=32))]
    pub jobs: Option<u32>,
    /// The work directory for --jobs (default: the system's temporary directory, $TMPDIR)
    #[arg(long, value_name = "DIR", requires = "jobs")]
    pub workdir: Option<PathBuf>,
    /// Resolve and check everything (the export, the identity, the tables, the target's name, that neither the
    /// database nor its owner role exists, the work directory's room), print the plan, and create nothing:
    /// reads only, no write to AWS or PostgreSQL
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct Acknowledge {
    /// The database (RDS instance or Aurora cluster) or cache identifier
    pub resource: String,
    /// The series: an export profile, or `rdb` for a cache's RDB copies (needed only when several are open)
    #[arg(long, visible_alias = "export-profile", value_name = "NAME")]
    pub series: Option<String>,
    /// Why the change is accepted (recorded; required, at most 1000 characters)
    #[arg(long, value_name = "TEXT", required = true)]
    pub why: String,
    /// The export bucket (default: $LIFEBOAT_BUCKET)
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
}

#[derive(Debug, Args)]
pub struct Refresh {
    /// The plan whose refresh rule runs
    pub plan: String,
    /// The refresh rule's name
    pub refresh: String,
    /// Exactly this export of the rule's source and profile (a manifest key from `lifeboat exports`); default:
    /// the newest complete one
    #[arg(long, value_name = "KEY")]
    pub export: Option<String>,
    /// s3://bucket/key of the plan document (default: $LIFEBOAT_PLAN_DOCUMENT)
    #[arg(long, value_name = "S3_URI")]
    pub document: Option<String>,
    /// The Secrets Manager secret holding the masking key (default: $LIFEBOAT_MASKING_KEY_SECRET)
    #[arg(long, value_name = "SECRET")]
    pub masking_key_secret: Option<String>,
    #[command(flatten)]
    pub identity: Identity,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct Recover {
    /// The RDS instance or Aurora cluster identifier
    pub database: String,
    /// The time to bring back (RFC 3339, e.g. 2026-11-22T14:31:00Z); inside the restorable window
    #[arg(long, value_name = "TIME", required = true)]
    pub to: String,
    /// A table to bring back (repeatable; `name`, `schema.name` or `"schema"."name"`); none: the whole database
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// The target server and the NEW database's name: postgres://user@host:port/new_db?sslmode=...; the password
    /// comes from PGPASSWORD. The scratch is reached with the same sslmode
    #[arg(long, value_name = "URL", required = true)]
    pub into: String,
    /// The database to copy out of the scratch (default: the instance's DBName, else postgres)
    #[arg(long, value_name = "NAME")]
    pub source_database: Option<String>,
    /// The scratch's DB subnet group (private; default: $LIFEBOAT_RESTORE_SUBNET_GROUP, else the default VPC's)
    #[arg(long, value_name = "NAME")]
    pub subnet_group: Option<String>,
    /// The scratch's security group (default: $LIFEBOAT_RESTORE_SECURITY_GROUP)
    #[arg(long, value_name = "ID")]
    pub security_group: Option<String>,
    /// The scratch's instance class
    #[arg(long, value_name = "CLASS", default_value = "db.t4g.medium")]
    pub instance_class: String,
    /// Hours after which the janitor deletes the scratch, should this command not
    #[arg(long, value_name = "HOURS", default_value_t = 6)]
    pub expires_hours: u32,
    /// Seconds between looks at the scratch's status
    #[arg(long, value_name = "SECONDS", default_value_t = 15, hide = true)]
    pub poll_seconds: u64,
    /// The pg_dump program (default: $LIFEBOAT_PG_DUMP, else pg_dump on the PATH)
    #[arg(long, value_name = "PATH")]
    pub pg_dump: Option<String>,
    /// The pg_restore program (default: $LIFEBOAT_PG_RESTORE, else pg_restore on the PATH)
    #[arg(long, value_name = "PATH")]
    pub pg_restore: Option<String>,
}

#[derive(Debug, Args)]
pub struct Verify {
    /// The export's manifest key (from `lifeboat exports`)
    pub manifest: String,
    #[command(flatten)]
    pub identity: Identity,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct Report {
    /// 2026-10 (a month), 2026-Q3 (a quarter), previous-month, or last-30-days (the default)
    #[arg(long, value_name = "PERIOD")]
    pub period: Option<String>,
    /// Where to write the page (default: lifeboat-evidence-<period>.html here); the JSON goes beside it
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The export bucket (default: $LIFEBOAT_BUCKET)
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Validate a plan document file (no AWS call)
    Check {
        /// The document (JSON)
        file: PathBuf,
    },
    /// The plan in force, or one database's or cache's plan, next runs and last outcomes
    Show {
        /// A database (instance or cluster identifier) or cache; default: every plan and who follows it
        resource: Option<String>,
        #[command(flatten)]
        source: PlanSource,
    },
    /// What a new document would change, applying nothing (the dry-run of `apply`)
    Diff {
        /// The new document (JSON)
        file: PathBuf,
        #[command(flatten)]
        source: PlanSource,
    },
    /// Validate a new document, print what it changes, and upload it as the version in force
    Apply {
        /// The new document (JSON)
        file: PathBuf,
        /// Apply even though the new retention expires snapshots the current one keeps (listed first)
        #[arg(long)]
        accept_expiry: bool,
        /// Print what would change and upload nothing (the same as `diff`)
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        source: PlanSource,
    },
}

/// Where the plan document in force lives, and where exports are read.
#[derive(Debug, Clone, Default, Args)]
pub struct PlanSource {
    /// s3://bucket/key of the plan document (default: $LIFEBOAT_PLAN_DOCUMENT)
    #[arg(long, value_name = "S3_URI")]
    pub document: Option<String>,
    /// The export bucket, for exports' and restore tests' last outcomes (default: $LIFEBOAT_BUCKET)
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
}

/// The whole definition as `clap` builds it (for the build script and the tests; the binary parses with [`Cli`]).
#[allow(dead_code)]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent_and_every_command_has_a_man_page() {
        command().debug_assert();
        let cli = command();
        let commands: Vec<&str> = cli
            .get_subcommands()
            .map(clap::Command::get_name)
            .filter(|n| *n != "help")
            .collect();
        assert_eq!(commands, MAN_PAGES);
    }
}
