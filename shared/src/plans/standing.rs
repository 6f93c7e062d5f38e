//! Where one database or cache stands under the plan document in force: the plan it follows, and for each rule of
//! that plan the next due run, the freshness monitor alarms on, and the last outcome found in AWS (the newest
//! Lifeboat snapshot, complete export, restore-test report, verified RDB copy, or the secret's last rotation).
//! `lifeboat plan show <resource>` prints it and monitor's `plan-show` action returns it to the console, so both
//! say the same thing.
//!
//! Reads only: describe and list calls (RDS, ElastiCache, S3 keys) and DescribeSecret's metadata, never a secret's
//! value, an object's body or anything that writes. The resource named by the caller is only looked up among the
//! account's own databases and caches; nothing else is taken from the caller.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::bucket::layout::{self, MANIFEST_SUFFIX, REPORT_SUFFIX};
use crate::caches::elasticache::{self, Cache, CacheKind};
use crate::core::error::{aws_error_message, Error};
use crate::plans::document::{Document, RuleKind};
use crate::plans::due::next_runs;
use crate::plans::membership::{plan_of, Resource};
use crate::rds::retention::Retained;
use crate::rds::selection::{self, Database};
use crate::rds::snapshots;

/// The clients the reads need.
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub rds: aws_sdk_rds::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub sm: aws_sdk_secretsmanager::Client,
}

/// The databases and caches of the account and region, with their tags.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub databases: Vec<Database>,
    pub caches: Vec<Cache>,
}

impl Fleet {
    /// Every database and cache (serverless caches too when `serverless`).
    pub async fn discover(c: &Clients, serverless: bool) -> Result<Self, Error> {
        Ok(Self {
            databases: selection::discover(&c.rds).await?,
            caches: elasticache::discover_all(&c.elasticache, serverless).await?,
        })
    }

    /// Each resource (an instance inside a cluster is the cluster's, not one of its own) with its tags.
    pub fn resources(&self) -> Vec<(Resource, &str, &BTreeMap<String, String>)> {
        self.databases
            .iter()
            .filter(|d| d.cluster.is_none())
            .map(|d| (Resource::Database, d.id.as_str(), &d.tags))
            .chain(self.caches.iter().map(|c| (Resource::Cache, c.id.as_str(), &c.tags)))
            .collect()
    }

    /// Each resource's plan under `doc`: `Ok(None)` in no plan, `Err` a membership problem (its words).
    pub fn assignments(&self, doc: &Document) -> Vec<(Resource, String, Result<Option<String>, String>)> {
        self.resources()
            .into_iter()
            .map(|(kind, id, tags)| {
                let plan = plan_of(doc, kind, id, tags)
                    .map(|p| p.map(str::to_owned))
                    .map_err(|e| e.to_string());
                (kind, id.to_owned(), plan)
            })
            .collect()
    }
}

/// A time as the plan commands print it: to the minute, UTC.
pub fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

/// A rule's last outcome for the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Last {
    /// When it happened, when that is known ([`minute`]).
    pub time: Option<String>,
    pub outcome: String,
}

/// One rule of the resource's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStanding {
    pub rule: String,
    /// The next due run after now ([`minute`]); none for a rule without a schedule.
    pub next: Option<String>,
    /// The freshness monitor alarms on (`RuleRef::max_age`).
    pub max_age_hours: f64,
    /// `None`: it never ran.
    pub last: Option<Last>,
    /// Whether the last outcome is older than the freshness; `None` when its time is unknown.
    pub late: Option<bool>,
}

/// Where the resource stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standing {
    pub resource: String,
    pub kind: &'static str,
    /// `None`: in no plan; nothing backs it up on a schedule.
    pub plan: Option<String>,
    /// The plan's written reason not to back its members up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_backups: Option<String>,
    pub rules: Vec<RuleStanding>,
}

/// Why a standing cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum StandingError {
    #[error("no database or cache `{0}` in this account and region")]
    NotFound(String),
    /// The resource's plan cannot be decided (two plans, an unknown one): the membership error's words.
    #[error("{0}")]
    Undecided(String),
    #[error(transparent)]
    Aws(#[from] Error),
}

/// Where `id` stands under `doc` at `now`. `bucket`: the export bucket, without which exports, restore tests and
/// RDB copies are reported unknown.
pub async fn standing(
    c: &Clients,
    doc: &Document,
    fleet: &Fleet,
    id: &str,
    bucket: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Standing, StandingError> {
    let Some((kind, id, plan)) = fleet.assignments(doc).into_iter().find(|(_, found, _)| found == id) else {
        return Err(StandingError::NotFound(id.to_owned()));
    };
    let plan = plan.map_err(StandingError::Undecided)?;
    let mut out = Standing {
        resource: id.clone(),
        kind: kind.noun(),
        plan: plan.clone(),
        no_backups: None,
        rules: Vec::new(),
    };
    let Some(plan_name) = plan else {
        return Ok(out);
    };
    let Some(p) = doc.plans.get(&plan_name) else {
        return Ok(out);
    };
    out.no_backups.clone_from(&p.no_backups);
    let next: BTreeMap<String, Option<DateTime<Utc>>> = next_runs(doc, &plan_name, now).into_iter().collect();
    for rule in p.rules() {
        let last = last_outcome(c, fleet, kind, &id, &rule.id, rule.kind, bucket).await?;
        let late = last.as_ref().and_then(|(t, _)| *t).map(|t| now - t > rule.max_age());
        out.rules.push(RuleStanding {
            next: next.get(&rule.id).copied().flatten().map(minute),
            max_age_hours: rule.max_age().num_minutes() as f64 / 60.0,
            last: last.map(|(t, outcome)| Last {
                time: t.map(minute),
                outcome,
            }),
            late,
            rule: rule.id,
        });
    }
    Ok(out)
}

/// A rule's last outcome for one resource: its time (if known) and what it was. `None`: it never ran.
async fn last_outcome(
    c: &Clients,
    fleet: &Fleet,
    kind: Resource,
    id: &str,
    rule_id: &str,
    rule: RuleKind,
    bucket: Option<&str>,
) -> Result<Option<(Option<DateTime<Utc>>, String)>, Error> {
    let no_bucket = || {
        Some((
            None,
            "unknown (no export bucket given: --bucket or LIFEBOAT_BUCKET)".to_owned(),
        ))
    };
    match (kind, rule) {
        (Resource::Database, RuleKind::Snapshot) => {
            let Some(db) = fleet.databases.iter().find(|d| d.id == id) else {
                return Ok(None);
            };
            let snaps = snapshots::list_for_db(&c.rds, &db.id, db.kind).await?;
            Ok(snaps
                .iter()
                .filter(|s| s.owned())
                .max_by_key(|s| s.logical_time())
                .map(|s| (Some(s.logical_time()), format!("{} ({})", s.id, s.status))))
        }
        (Resource::Database, RuleKind::Export) => {
            let Some(bucket) = bucket else { return Ok(no_bucket()) };
            let profile = rule_id.trim_start_matches("exports.");
            let newest = layout::newest_export(&c.s3, bucket, id, Some(profile)).await?;
            Ok(newest.map(|(key, t)| (Some(t), format!("complete ({key})"))))
        }
        (Resource::Database, RuleKind::RestoreTest) => {
            let Some(bucket) = bucket else { return Ok(no_bucket()) };
            let prefix = layout::restore_report_prefix(id);
            let keys = layout::list_keys(&c.s3, bucket, &prefix, REPORT_SUFFIX).await?;
            Ok(layout::newest(keys.iter().map(String::as_str), REPORT_SUFFIX)
                .map(|(key, t)| (Some(t), format!("report {key}"))))
        }
        (Resource::Database, RuleKind::Rotation) => {
            let Some(secret) = fleet
                .databases
                .iter()
                .find(|d| d.id == id)
                .and_then(Database::secret_id)
            else {
                return Ok(Some((None, "no secret (tag lifeboat:secret)".to_owned())));
            };
            Ok(match c.sm.describe_secret().secret_id(secret).send().await {
                Ok(d) => d.last_rotated_date().map(|t| {
                    let t = DateTime::from_timestamp(t.secs(), 0).unwrap_or_default();
                    (Some(t), format!("rotated ({secret})"))
                }),
                Err(e) => Some((None, format!("unknown: {}", aws_error_message(&e)))),
            })
        }
        (Resource::Cache, RuleKind::CacheSnapshot) => {
            let serverless = fleet
                .caches
                .iter()
                .any(|c| c.id == id && c.kind == CacheKind::Serverless);
            let snaps = elasticache::list_all_snapshots(&c.elasticache, serverless).await?;
            Ok(snaps
                .iter()
                .filter(|s| s.belongs_to(id) && s.owned())
                .max_by_key(|s| s.logical_time())
                .map(|s| (Some(s.logical_time()), format!("{} ({})", s.name, s.status))))
        }
        (Resource::Cache, RuleKind::RdbCopy) => {
            let Some(bucket) = bucket else { return Ok(no_bucket()) };
            let prefix = layout::rdb_prefix(id);
            let keys = layout::list_keys(&c.s3, bucket, &prefix, MANIFEST_SUFFIX).await?;
            Ok(layout::newest(keys.iter().map(String::as_str), MANIFEST_SUFFIX)
                .map(|(key, t)| (Some(t), format!("verified copy ({key})"))))
        }
        // A rule that does not apply to this kind of resource (a cache under `snapshots`, say).
        _ => Ok(Some((None, format!("does not apply to a {}", kind.noun())))),
    }
}
