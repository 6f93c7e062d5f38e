//! The pure rules of a restore from an export run by a function (the `restore` function's `restore-export`
//! action): which export the event names, whether the target's name can be a new database, whether the restore
//! can finish inside the invocation, and the `lifeboat` command line that runs what cannot (from a terminal,
//! with no time limit).
//!
//! Never: calls AWS, opens a connection, runs a process or reads the clock (the caller passes the time left).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::select::Which;
use crate::postgres::export::{admit, Refusal};

/// The `export` field of a `restore-export` event: `"latest"`, a manifest key, or `{"before": "<RFC 3339>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ExportChoice {
    Named(String),
    Before { before: DateTime<Utc> },
}

impl Default for ExportChoice {
    fn default() -> Self {
        Self::Named(LATEST.to_owned())
    }
}

const LATEST: &str = "latest";

impl ExportChoice {
    /// What [`super::find_export`] looks for.
    pub fn which(&self) -> Which {
        match self {
            Self::Named(name) if name == LATEST => Which::Latest,
            Self::Named(key) => Which::Manifest(key.clone()),
            Self::Before { before } => Which::Before(*before),
        }
    }
}

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
pub const MAX_DATABASE_NAME: usize = 63;

/// Why a name cannot be the new database's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetNameError {
    #[error("`into.database` is empty: name the new database to restore into")]
    Empty,
    #[error(
        "`into.database` `{0}` is longer than {MAX_DATABASE_NAME} bytes: PostgreSQL would truncate it to another name"
    )]
    TooLong(String),
    #[error("`into.database` must not contain a NUL character")]
    Nul,
    #[error("`into.database` `{0}` is a template or maintenance database: name a new database")]
    Reserved(String),
}

/// A name that can only be a new database's: not empty, not truncated by the server, and not one of the
/// databases every server has (the target is created, so an existing name is refused by the server anyway).
pub fn check_target_name(name: &str) -> Result<(), TargetNameError> {
    if name.is_empty() {
        return Err(TargetNameError::Empty);
    }
    if name.len() > MAX_DATABASE_NAME {
        return Err(TargetNameError::TooLong(name.to_owned()));
    }
    if name.contains('\0') {
        return Err(TargetNameError::Nul);
    }
    if ["postgres", "template0", "template1", "rdsadmin"].contains(&name) {
        return Err(TargetNameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// Admission of a streamed restore: the whole stored object is read whatever the tables, so the estimate is
/// the stored size at the configured speed, with the export rule's margin (see [`crate::postgres::export::admit`]).
/// `time_left` is `None` where there is no deadline: nothing is refused.
pub fn admit_restore(stored_bytes: u64, mib_per_second: u32, time_left: Option<Duration>) -> Result<(), Refusal> {
    admit(
        i64::try_from(stored_bytes).unwrap_or(i64::MAX),
        mib_per_second,
        time_left,
    )
}

/// Where to connect for the restore: on the source's own server, the secret's host first, as every function
/// connects to it ([`crate::postgres::export::address`]); on another instance, only that instance's endpoint from RDS (the
/// secret's host is the source's, and must never be where a restore "into another instance" lands).
pub fn restore_address(
    into_source: bool,
    secret_host: Option<&str>,
    secret_port: Option<u16>,
    endpoint: Option<(&str, u16)>,
) -> Option<(String, u16)> {
    if into_source {
        crate::postgres::export::address(secret_host, secret_port, endpoint)
    } else {
        endpoint.map(|(h, p)| (h.to_owned(), p))
    }
}

/// Space kept free beside the plaintext archive of a `--jobs` restore, unless configured otherwise.
pub const WORKDIR_RESERVE_BYTES: u64 = 64 * 1024 * 1024;

/// A `--jobs` restore whose plaintext archive would not fit in its work directory: refused before anything is
/// created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the plaintext archive ({needed} bytes, {}) does not fit in the work directory {dir}: {free} bytes free,      {reserve} to be kept free; nothing was created. Free space there, choose a larger work directory, or restore      without jobs (streamed, no file)",
    mib(*needed)
)]
pub struct NoRoom {
    pub dir: String,
    pub needed: u64,
    pub free: u64,
    pub reserve: u64,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Whether the plaintext archive (`needed` bytes: the manifest records its exact size) fits in `dir`, which
/// has `free` bytes available, keeping `reserve` bytes free.
pub fn check_room(dir: &str, needed: u64, free: u64, reserve: u64) -> Result<(), NoRoom> {
    if needed.checked_add(reserve).is_some_and(|total| total <= free) {
        return Ok(());
    }
    Err(NoRoom {
        dir: dir.to_owned(),
        needed,
        free,
        reserve,
    })
}

/// `pg_restore --jobs`: at least 2 (1 is the streamed restore, which needs no file), at most this many.
pub const MAX_JOBS: u32 = 32;

/// `text` quoted for a POSIX shell: in single quotes, each `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What a refused restore-export asks for, to be run instead with the `lifeboat` terminal tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliRestore<'a> {
    pub database: &'a str,
    pub manifest_key: &'a str,
    pub tables: &'a [String],
    pub into_database: &'a str,
    /// The Secrets Manager secret holding the age identity, when the function has one.
    pub identity_secret: Option<&'a str>,
}

/// The `lifeboat restore` command line that performs the same restore from a terminal (no invocation deadline):
/// pinned to the export the function chose. The server and user are left for the operator to fill in, since the
/// function's view of the network (a VPC endpoint) is not the operator's.
pub fn cli_command(r: &CliRestore<'_>) -> String {
    let mut cmd = format!(
        "lifeboat restore {} --manifest {}",
        shell_quote(r.database),
        shell_quote(r.manifest_key)
    );
    for t in r.tables {
        cmd.push_str(&format!(" --table {}", shell_quote(t)));
    }
    cmd.push_str(&format!(
        " --into {}",
        shell_quote(&format!(
            "postgres://<user>@<host>:5432/{}?sslmode=verify-full",
            r.into_database
        ))
    ));
    match r.identity_secret {
        Some(secret) => cmd.push_str(&format!(" --identity-secret {}", shell_quote(secret))),
        None => cmd.push_str(" --identity-file <age identity file>"),
    }
    cmd
}

/// The deployed ECS task that runs restores with no time limit (the template's `RestoreTaskDefinition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsTask {
    pub cluster: String,
    pub task_definition: String,
    /// Comma-separated subnet ids, as the template's `SubnetIds` parameter holds them.
    pub subnets: String,
    pub security_group: String,
}

/// The container of the restore task definition, whose `LIFEBOAT_EVENT` a run overrides.
pub const TASK_CONTAINER: &str = "restore";

/// The `aws ecs run-task` command that runs `event` (the refused request, pinned to its export) in the restore
/// task, which has no deadline: the event goes in the container's `LIFEBOAT_EVENT`, quoted for a POSIX shell.
pub fn ecs_command(task: &EcsTask, event: &serde_json::Value) -> String {
    let overrides = serde_json::json!({"containerOverrides": [{"name": TASK_CONTAINER,
        "environment": [{"name": "LIFEBOAT_EVENT", "value": event.to_string()}]}]});
    let network = format!(
        "awsvpcConfiguration={{subnets=[{}],securityGroups=[{}],assignPublicIp=DISABLED}}",
        task.subnets, task.security_group
    );
    format!(
        "aws ecs run-task --cluster {} --task-definition {} --launch-type FARGATE --network-configuration {} \
         --overrides {}",
        shell_quote(&task.cluster),
        shell_quote(&task.task_definition),
        shell_quote(&network),
        shell_quote(&overrides.to_string())
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::postgres::export::DEADLINE_MARGIN;
    use proptest::prelude::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_export_field_names_latest_a_manifest_or_a_time() {
        let parse = |v: serde_json::Value| serde_json::from_value::<ExportChoice>(v).unwrap().which();
        assert_eq!(parse("latest".into()), Which::Latest);
        let key = "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json";
        assert_eq!(parse(key.into()), Which::Manifest(key.into()));
        let at: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        assert_eq!(
            parse(serde_json::json!({"before": "2026-11-22T12:00:00Z"})),
            Which::Before(at)
        );
        assert!(serde_json::from_value::<ExportChoice>(serde_json::json!({"before": "noon"})).is_err());
        assert_eq!(ExportChoice::default().which(), Which::Latest);
    }

    #[test]
    fn the_plaintext_must_fit_with_the_reserve_to_spare() {
        assert_eq!(check_room("/tmp", 100 * MIB, 200 * MIB, 64 * MIB), Ok(()));
        assert_eq!(check_room("/tmp", 136 * MIB, 200 * MIB, 64 * MIB), Ok(()));
        let err = check_room("/tmp", 137 * MIB, 200 * MIB, 64 * MIB).unwrap_err();
        assert_eq!(err.needed, 137 * MIB);
        let text = err.to_string();
        assert!(text.contains("does not fit in the work directory /tmp"), "{text}");
        assert!(text.contains("nothing was created"), "{text}");
        assert!(check_room("/tmp", u64::MAX, u64::MAX, 1).is_err(), "no overflow");
        assert_eq!(check_room("/tmp", 0, 0, 0), Ok(()));
    }

    proptest! {
        #[test]
        fn room_is_refused_exactly_when_needed_plus_reserve_exceed_free(
            needed in 0u64..1 << 40, free in 0u64..1 << 40, reserve in 0u64..1 << 30
        ) {
            prop_assert_eq!(check_room("/w", needed, free, reserve).is_ok(), needed + reserve <= free);
        }
    }

    #[test]
    fn target_names_must_be_new_and_whole() {
        assert_eq!(check_target_name("app_prod_restore_20261123"), Ok(()));
        assert_eq!(check_target_name(""), Err(TargetNameError::Empty));
        assert!(matches!(
            check_target_name(&"x".repeat(64)),
            Err(TargetNameError::TooLong(_))
        ));
        assert_eq!(check_target_name(&"x".repeat(63)), Ok(()));
        assert_eq!(check_target_name("a\0b"), Err(TargetNameError::Nul));
        assert!(matches!(
            check_target_name("template1"),
            Err(TargetNameError::Reserved(_))
        ));
    }

    #[test]
    fn another_instance_is_reached_at_its_own_endpoint_only() {
        let ep = Some(("other.rds.amazonaws.com", 5433));
        assert_eq!(
            restore_address(true, Some("10.0.0.5"), None, ep),
            Some(("10.0.0.5".into(), 5432))
        );
        assert_eq!(
            restore_address(true, None, None, ep),
            Some(("other.rds.amazonaws.com".into(), 5433))
        );
        assert_eq!(
            restore_address(false, Some("10.0.0.5"), Some(6543), ep),
            Some(("other.rds.amazonaws.com".into(), 5433))
        );
        assert_eq!(restore_address(false, Some("10.0.0.5"), Some(6543), None), None);
    }

    #[test]
    fn a_restore_that_cannot_finish_in_the_invocation_is_refused() {
        // 1 GiB at 10 MiB/s: ~102 s, plus the margin.
        let size = 1024 * MIB;
        assert_eq!(admit_restore(size, 10, None), Ok(()), "no deadline: never refused");
        let enough = Duration::from_secs(103) + DEADLINE_MARGIN;
        assert_eq!(admit_restore(size, 10, Some(enough)), Ok(()));
        let err = admit_restore(size, 10, Some(Duration::from_secs(120))).unwrap_err();
        assert_eq!((err.size_mib, err.estimate_secs, err.remaining_secs), (1024, 102, 120));
        assert!(admit_restore(u64::MAX, 10, Some(Duration::from_secs(900))).is_err());
    }

    proptest! {
        #[test]
        fn refusal_is_monotonic(size in 0u64..1 << 40, extra in 0u64..1 << 30, speed in 1u32..1000, left in 0u64..3600) {
            let left = Some(Duration::from_secs(left));
            if admit_restore(size, speed, left).is_err() {
                prop_assert!(admit_restore(size + extra, speed, left).is_err());
            }
        }
    }

    #[test]
    fn the_cli_command_is_pinned_to_the_export_and_survives_the_shell() {
        let tables = vec!["users".to_owned(), "o'brien.notes".to_owned()];
        let cmd = cli_command(&CliRestore {
            database: "app-prod",
            manifest_key: "exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json",
            tables: &tables,
            into_database: "app_prod_restore",
            identity_secret: Some("lifeboat/age-identity"),
        });
        assert_eq!(
            cmd,
            "lifeboat restore 'app-prod' --manifest \
             'exports/app-prod/full/2026/11/22/app-prod-full-20261122T020000Z.manifest.json' --table 'users' \
             --table 'o'\\''brien.notes' --into 'postgres://<user>@<host>:5432/app_prod_restore?sslmode=verify-full' \
             --identity-secret 'lifeboat/age-identity'"
        );
        let without = cli_command(&CliRestore {
            identity_secret: None,
            tables: &[],
            ..CliRestore {
                database: "db",
                manifest_key: "k",
                tables: &[],
                into_database: "t",
                identity_secret: None,
            }
        });
        assert!(without.ends_with("--identity-file <age identity file>"), "{without}");
    }

    #[test]
    fn the_ecs_command_carries_the_event_in_lifeboat_event_and_survives_the_shell() {
        let task = EcsTask {
            cluster: "lifeboat-ExportCluster-x".into(),
            task_definition: "arn:aws:ecs:eu-west-1:1:task-definition/lifeboat-restore:3".into(),
            subnets: "subnet-a,subnet-b".into(),
            security_group: "sg-1".into(),
        };
        let event = serde_json::json!({"action": "restore-export", "database": "app-prod",
                                       "export": "exports/k.manifest.json", "tables": ["o'brien"],
                                       "into": {"database": "t"}});
        let cmd = ecs_command(&task, &event);
        assert!(
            cmd.starts_with(
                "aws ecs run-task --cluster 'lifeboat-ExportCluster-x' --task-definition \
                 'arn:aws:ecs:eu-west-1:1:task-definition/lifeboat-restore:3' --launch-type FARGATE \
                 --network-configuration \
                 'awsvpcConfiguration={subnets=[subnet-a,subnet-b],securityGroups=[sg-1],assignPublicIp=DISABLED}' \
                 --overrides '"
            ),
            "{cmd}"
        );
        // What the shell hands to the AWS CLI: the overrides JSON, whose LIFEBOAT_EVENT is the event itself.
        let quoted = cmd.split(" --overrides ").nth(1).unwrap();
        let unquoted = quoted[1..quoted.len() - 1].replace(r"'\''", "'");
        let overrides: serde_json::Value = serde_json::from_str(&unquoted).unwrap();
        let c = &overrides["containerOverrides"][0];
        assert_eq!(c["name"], TASK_CONTAINER);
        assert_eq!(c["environment"][0]["name"], "LIFEBOAT_EVENT");
        let carried: serde_json::Value = serde_json::from_str(c["environment"][0]["value"].as_str().unwrap()).unwrap();
        assert_eq!(carried, event);
    }
}
