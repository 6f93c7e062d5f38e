//! A plan's `rotation` rule against a secret's rotation configuration: what the rotate function's plan tick does
//! with a member's secret ([`reconcile`]) and when monitor calls its rotation overdue ([`overdue`]), plus the one
//! read both make of a secret ([`describe`], DescribeSecret: metadata only, never a value).
//!
//! The plan states a cadence; Secrets Manager drives the rotations themselves (its schedule invokes the rotate
//! function's steps). So following the plan means keeping each member secret's rotation configuration equal to
//! the plan's: enabled, this stack's rotate function, `AutomaticallyAfterDays = every_days`. A secret already
//! configured that way is left alone, so a redelivered tick changes nothing.
//!
//! Design choices:
//! - A secret RDS owns (`OwningService = rds`, the RDS-managed master user secret) is never reconfigured: RDS
//!   rotates it with its own managed rotation, and the stack may read it but never write it.
//! - A member of a plan *without* a rotation rule whose secret is rotated by this function is left rotating and
//!   reported: a plan without the rule says nothing about rotation, and turning rotation off because a rule was
//!   removed would silently stop a security control; a person turns it off (`aws secretsmanager
//!   cancel-rotate-secret`) if that is what they meant.
//! - Overdue uses the freshness the plan document already states for the rule ([`RuleRef::max_age`]: the
//!   cadence plus 10 %), not a grace of its own: the document is the one source of truth, and monitor, `lifeboat
//!   plan show` and the book's freshness rule then agree. The grace absorbs Secrets Manager's rotation window (it
//!   picks the hour within the due day) and a failed rotation's retries before anyone is paged.
//!
//! Must never: read a secret's value, choose a secret from anything but the database's own tags and RDS's
//! description of it (`Database::secret_id`), or read a clock (callers pass `now`).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::core::error::Error;
use crate::plans::document::{Plan, RotationRule, RuleKind};

/// What DescribeSecret says of a secret's rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretRotation {
    /// The secret's full ARN.
    pub arn: String,
    pub name: String,
    pub enabled: bool,
    pub lambda_arn: Option<String>,
    pub every_days: Option<i64>,
    pub last_rotated: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
    /// The AWS service that owns the secret (`rds` for an RDS-managed master user secret).
    pub owning_service: Option<String>,
}

impl SecretRotation {
    /// Whether `function` rotates this secret (rotation on, its Lambda is `function`).
    pub fn rotated_by(&self, function: &str) -> bool {
        self.enabled && self.lambda_arn.as_deref() == Some(function)
    }

    /// The last rotation, or the creation when it was never rotated: the time the current credentials are from.
    pub fn since(&self) -> Option<DateTime<Utc>> {
        self.last_rotated.or(self.created)
    }
}

/// What a plan tick does with one member's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Reconcile {
    /// Configured as the plan says: nothing to do.
    InStep,
    /// RotateSecret (not immediately) with this function and `every_days`.
    Configure { every_days: u32 },
    /// RDS rotates it (managed rotation); the plan's cadence is not applied.
    OwnedByRds,
    /// The plan has no rotation rule and this function rotates the secret: left rotating, reported.
    RotatingWithoutRule,
    /// The plan has no rotation rule and the secret is not rotated by this function: nothing to do.
    NoRule,
}

/// The pure decision for one member's secret under its plan's rotation rule.
pub fn reconcile(secret: &SecretRotation, function: &str, rule: Option<RotationRule>) -> Reconcile {
    if secret.owning_service.as_deref() == Some("rds") {
        return Reconcile::OwnedByRds;
    }
    match rule {
        None if secret.rotated_by(function) => Reconcile::RotatingWithoutRule,
        None => Reconcile::NoRule,
        Some(r) if secret.rotated_by(function) && secret.every_days == Some(i64::from(r.every_days)) => {
            Reconcile::InStep
        }
        Some(r) => Reconcile::Configure {
            every_days: r.every_days,
        },
    }
}

/// How old a member's credentials may be under its plan: the rotation rule's freshness, `None` without a rule.
pub fn max_age(plan: &Plan) -> Option<Duration> {
    plan.rules()
        .into_iter()
        .find(|r| r.kind == RuleKind::Rotation)
        .map(|r| r.max_age())
}

/// How far past `max_age` the secret's credentials are at `now` (`None`: not overdue). A secret with neither a
/// rotation nor a creation date proves nothing and is overdue by its whole age bound.
pub fn overdue(secret: &SecretRotation, max_age: Duration, now: DateTime<Utc>) -> Option<Duration> {
    match secret.since() {
        Some(t) => {
            let late = now - t - max_age;
            (late > Duration::zero()).then_some(late)
        }
        None => Some(max_age),
    }
}

fn time(t: Option<&aws_sdk_secretsmanager::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// DescribeSecret, as [`SecretRotation`]. `id` is a name or an ARN, from `Database::secret_id`.
pub async fn describe(sm: &aws_sdk_secretsmanager::Client, id: &str) -> Result<SecretRotation, Error> {
    let d = sm
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeSecret", e))?;
    Ok(SecretRotation {
        arn: d.arn().unwrap_or(id).to_owned(),
        name: d.name().unwrap_or(id).to_owned(),
        enabled: d.rotation_enabled().unwrap_or(false),
        lambda_arn: d.rotation_lambda_arn().filter(|a| !a.is_empty()).map(str::to_owned),
        every_days: d.rotation_rules().and_then(|r| r.automatically_after_days()),
        last_rotated: time(d.last_rotated_date()),
        created: time(d.created_date()),
        owning_service: d.owning_service().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::plans::document::parse;

    const FN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:lifeboat-rotate";

    fn secret(enabled: bool, lambda: Option<&str>, days: Option<i64>) -> SecretRotation {
        SecretRotation {
            arn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lifeboat/app-AbCdEf".into(),
            name: "lifeboat/app".into(),
            enabled,
            lambda_arn: lambda.map(Into::into),
            every_days: days,
            ..SecretRotation::default()
        }
    }

    const NINETY: Option<RotationRule> = Some(RotationRule { every_days: 90 });

    #[test]
    fn a_secret_is_configured_until_it_rotates_as_the_plan_says_then_left_alone() {
        let configure = Reconcile::Configure { every_days: 90 };
        assert_eq!(reconcile(&secret(false, None, None), FN, NINETY), configure);
        assert_eq!(reconcile(&secret(true, Some(FN), Some(30)), FN, NINETY), configure);
        let other = "arn:aws:lambda:eu-west-1:123456789012:function:someone-elses";
        assert_eq!(reconcile(&secret(true, Some(other), Some(90)), FN, NINETY), configure);
        assert_eq!(reconcile(&secret(false, Some(FN), Some(90)), FN, NINETY), configure);
        assert_eq!(
            reconcile(&secret(true, Some(FN), Some(90)), FN, NINETY),
            Reconcile::InStep
        );
    }

    #[test]
    fn without_a_rule_rotation_is_neither_started_nor_stopped() {
        assert_eq!(
            reconcile(&secret(true, Some(FN), Some(90)), FN, None),
            Reconcile::RotatingWithoutRule
        );
        assert_eq!(reconcile(&secret(false, None, None), FN, None), Reconcile::NoRule);
    }

    #[test]
    fn an_rds_owned_secret_is_never_reconfigured() {
        let mut s = secret(true, None, Some(7));
        s.owning_service = Some("rds".into());
        assert_eq!(reconcile(&s, FN, NINETY), Reconcile::OwnedByRds);
        assert_eq!(reconcile(&s, FN, None), Reconcile::OwnedByRds);
    }

    #[test]
    fn overdue_counts_from_the_last_rotation_else_the_creation_past_the_plans_freshness() {
        let doc =
            parse(br#"{"format": 1, "plans": {"p": {"rotation": {"every_days": 90}}, "q": {"no_backups": "x"}}}"#)
                .unwrap();
        let max = max_age(&doc.plans["p"]).unwrap();
        assert_eq!(max, Duration::days(99), "90 days plus 10 %");
        assert_eq!(max_age(&doc.plans["q"]), None);
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").unwrap().to_utc();
        let mut s = secret(true, Some(FN), Some(90));
        s.created = Some(now - Duration::days(400));
        s.last_rotated = Some(now - Duration::days(98));
        assert_eq!(overdue(&s, max, now), None, "rotated 98 days ago: within 99");
        s.last_rotated = Some(now - Duration::days(100));
        assert_eq!(overdue(&s, max, now), Some(Duration::days(1)));
        s.last_rotated = None;
        assert_eq!(
            overdue(&s, max, now),
            Some(Duration::days(301)),
            "never rotated: from its creation"
        );
        s.created = None;
        assert_eq!(overdue(&s, max, now), Some(max), "no date proves nothing");
    }
}
