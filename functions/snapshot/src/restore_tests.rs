//! The plan tick's restore tests: for each plan restore-test rule due at the tick, one execution of the
//! restore-test state machine, named by the rule and its due time.
//!
//! The name makes the start idempotent: Step Functions keeps a standard workflow's execution names for 90 days, so
//! a redelivered or retried tick starts nothing twice (while the run goes on, the same start returns the running
//! execution; after it ended, `ExecutionAlreadyExists`). The input names the plan, the rule and the due time only; the state machine's first step reads the plan
//! document itself and derives the databases and caches from AWS (`restore::plan_tests`).
//!
//! Must never: choose the databases a test restores, or start a run for a rule that is not due at the tick.

use aws_sdk_sfn::Client;
use chrono::{DateTime, Utc};
use lifeboat::core::error::Error;
use lifeboat::plans::due::Due;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The state machine's ARN (the template's `RestoreTestStateMachine`).
pub const STATE_MACHINE: &str = "LIFEBOAT_RESTORE_TEST_STATE_MACHINE";
/// Step Functions' limit on an execution name.
pub const MAX_NAME: usize = 80;

/// `plan-<plan>-<rule>-<due time>`, in the characters Step Functions allows; a name that would be too long keeps
/// its rule and time and shortens the plan's name to a prefix and a hash of the whole, so it stays unique.
pub fn execution_name(due: &Due) -> String {
    let rule = due.rule.replace('.', "-");
    let time = due.at.format("%Y%m%dT%H%MZ").to_string();
    let name = format!("plan-{}-{rule}-{time}", due.plan);
    if name.len() <= MAX_NAME {
        return name;
    }
    let digest = Sha256::digest(due.plan.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let room = MAX_NAME - format!("plan--{hash}-{rule}-{time}").len();
    let prefix: String = due.plan.chars().take(room).collect();
    format!("plan-{prefix}-{hash}-{rule}-{time}")
}

/// What became of one due restore-test rule at this tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    pub plan: String,
    pub rule: String,
    pub due: DateTime<Utc>,
    pub execution: String,
    /// `started`, `already-started` (a redelivered tick), or `failed`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Starts one execution per due rule. A failure to start one is reported and the others go on.
pub async fn start_due(sfn: &Client, state_machine: &str, due: &[Due]) -> Vec<Started> {
    let mut out = Vec::new();
    for d in due {
        let name = execution_name(d);
        let input = json!({"time": d.at, "plan": d.plan, "rule": d.rule}).to_string();
        let result = sfn
            .start_execution()
            .state_machine_arn(state_machine)
            .name(&name)
            .input(input)
            .send()
            .await;
        let (outcome, error) = match result {
            Ok(_) => ("started", None),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => {
                ("already-started", None)
            }
            Err(e) => ("failed", Some(Error::aws("StartExecution", e).to_string())),
        };
        if let Some(error) = &error {
            tracing::error!(plan = %d.plan, rule = %d.rule, execution = %name, error = %error, "restore test not started");
        } else {
            tracing::info!(plan = %d.plan, rule = %d.rule, execution = %name, outcome, "restore test for a plan rule");
        }
        out.push(Started {
            plan: d.plan.clone(),
            rule: d.rule.clone(),
            due: d.at,
            execution: name,
            outcome,
            error,
        });
    }
    out
}

/// Due rules in a deployment with no state machine to start: each is reported failed, never dropped.
pub fn not_configured(due: &[Due]) -> Vec<Started> {
    due.iter()
        .map(|d| {
            let error = format!(
                "the plan's rule is due and {STATE_MACHINE} is unset: this deployment cannot start restore tests"
            );
            tracing::error!(plan = %d.plan, rule = %d.rule, error = %error, "restore test not started");
            Started {
                plan: d.plan.clone(),
                rule: d.rule.clone(),
                due: d.at,
                execution: execution_name(d),
                outcome: "failed",
                error: Some(error),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(plan: &str) -> Due {
        Due {
            plan: plan.to_owned(),
            rule: "restore_tests.0".to_owned(),
            at: "2027-01-01T06:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn names_come_from_the_rule_and_its_due_time_and_fit_step_functions() {
        assert_eq!(
            execution_name(&due("production")),
            "plan-production-restore_tests-0-20270101T0600Z"
        );
        let long = "p".repeat(64);
        let a = execution_name(&due(&long));
        let b = execution_name(&due(&format!("{}q", "p".repeat(63))));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.ends_with("-restore_tests-0-20270101T0600Z"), "{a}");
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
    }
}
