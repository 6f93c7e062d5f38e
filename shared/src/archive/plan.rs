//! The pure rules of a restore from an export run by a function (the `restore` function's `restore-export`
//! action): which export the event names, whether the target's name can be a new database, whether the restore
//! can finish inside the invocation, and the `aws ecs run-task` command line that runs what cannot.
//!
//! Never: calls AWS, opens a connection, runs a process or reads the clock (the caller passes the time left).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::select::Which;
use crate::export::{admit, Refusal};

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
/// the stored size at the configured speed, with the export rule's margin (see [`crate::export::admit`]).
/// `time_left` is `None` where there is no deadline: nothing is refused.
pub fn admit_restore(stored_bytes: u64, mib_per_second: u32, time_left: Option<Duration>) -> Result<(), Refusal> {
    admit(
        i64::try_from(stored_bytes).unwrap_or(i64::MAX),
        mib_per_second,
        time_left,
    )
}

/// Where to connect for the restore: on the source's own server, the secret's host first, as every function
/// connects to it ([`crate::export::address`]); on another instance, only that instance's endpoint from RDS (the
/// secret's host is the source's, and must never be where a restore "into another instance" lands).
pub fn restore_address(
    into_source: bool,
    secret_host: Option<&str>,
    secret_port: Option<u16>,
    endpoint: Option<(&str, u16)>,
) -> Option<(String, u16)> {
    if into_source {
        crate::export::address(secret_host, secret_port, endpoint)
    } else {
        endpoint.map(|(h, p)| (h.to_owned(), p))
    }
}

/// The ECS task that runs the same image outside Lambda (infra/template.yaml: the `ExportCluster`, the
/// `ExportTaskDefinition` of family `<stack>-export`, its container `export`, and the network it needs). Values
/// not configured are printed as the stack output or placeholder to fill in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsTask {
    pub cluster: Option<String>,
    pub task_definition: Option<String>,
    pub subnets: Vec<String>,
    pub security_group: Option<String>,
}

/// The container name of the export task definition.
pub const TASK_CONTAINER: &str = "export";

/// `text` quoted for a POSIX shell: in single quotes, each `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The `aws ecs run-task` command line that runs `event` (passed in `LIFEBOAT_EVENT`) as the ECS task.
pub fn run_task_command(task: &EcsTask, event: &serde_json::Value) -> String {
    let cluster = task.cluster.as_deref().unwrap_or("<ExportClusterName>");
    let definition = task.task_definition.as_deref().unwrap_or("<ExportTaskDefinitionArn>");
    let subnets = if task.subnets.is_empty() {
        "subnet-...".to_owned()
    } else {
        task.subnets.join(",")
    };
    let group = task.security_group.as_deref().unwrap_or("<ExportSecurityGroupId>");
    let network = format!("awsvpcConfiguration={{subnets=[{subnets}],securityGroups=[{group}]}}");
    let overrides = serde_json::json!({"containerOverrides": [{
        "name": TASK_CONTAINER,
        "environment": [{"name": "LIFEBOAT_EVENT", "value": event.to_string()}],
    }]});
    format!(
        "aws ecs run-task --cluster {} --task-definition {} --launch-type FARGATE --network-configuration {} \
         --overrides {}",
        shell_quote(cluster),
        shell_quote(definition),
        shell_quote(&network),
        shell_quote(&overrides.to_string())
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::export::DEADLINE_MARGIN;
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
    fn the_run_task_command_carries_the_event_through_two_quotings() {
        let event = serde_json::json!({"action": "restore-export", "database": "app-prod",
                                       "into": {"database": "o'brien"}});
        let task = EcsTask {
            cluster: Some("lifeboat-ExportCluster-abc".into()),
            task_definition: Some("lifeboat-export".into()),
            subnets: vec!["subnet-1".into(), "subnet-2".into()],
            security_group: Some("sg-9".into()),
        };
        let cmd = run_task_command(&task, &event);
        assert!(cmd.starts_with("aws ecs run-task --cluster 'lifeboat-ExportCluster-abc' --task-definition 'lifeboat-export' --launch-type FARGATE"), "{cmd}");
        assert!(
            cmd.contains("'awsvpcConfiguration={subnets=[subnet-1,subnet-2],securityGroups=[sg-9]}'"),
            "{cmd}"
        );
        // What the shell hands to the AWS CLI is JSON whose LIFEBOAT_EVENT is the event itself.
        let quoted = cmd.split(" --overrides ").nth(1).unwrap();
        let unquoted = quoted[1..quoted.len() - 1].replace(r"'\''", "'");
        let overrides: serde_json::Value = serde_json::from_str(&unquoted).unwrap();
        let container = &overrides["containerOverrides"][0];
        assert_eq!(container["name"], TASK_CONTAINER);
        assert_eq!(container["environment"][0]["name"], "LIFEBOAT_EVENT");
        let carried: serde_json::Value =
            serde_json::from_str(container["environment"][0]["value"].as_str().unwrap()).unwrap();
        assert_eq!(carried, event);
        let bare = run_task_command(&EcsTask::default(), &event);
        assert!(
            bare.contains("<ExportClusterName>") && bare.contains("<ExportSecurityGroupId>"),
            "{bare}"
        );
    }
}
