//! Plan mode (`LIFEBOAT_PLAN_DOCUMENT` set): what a tick of the quarter-hour schedule snapshots, read from the
//! plan document in force at that tick.
//!
//! Owns loading the document for one invocation (`load`: the newest valid version; newer invalid ones are
//! logged and reported, never followed), which rules are due (`due`), where each discovered database and
//! cache stands (`place`: due under its plan, in a plan with nothing due, in no plan, or refused because its
//! membership cannot be decided), the retention a manual run keeps each resource by (`manual`), and whether a
//! finished snapshot's plan copies it (`declines_copy`). The handler acts on the `Work` this returns.
//!
//! Why the document is read at every tick rather than at cold start: a new version then takes effect at the next
//! tick with no redeploy, and every run records the version it followed. Why an idle tick stops before any
//! describe call: most ticks are idle (a daily rule is due at one tick in 96), and an idle tick writes nothing.
//!
//! Must never: act on a resource, take a snapshot's plan from the payload (only from the document and the
//! resources' tags), or back up a resource in no plan under a default.

use chrono::{DateTime, Utc};
use lifeboat::caches::elasticache::Cache;
use lifeboat::core::error::Error;
use lifeboat::plans::document::{Document, RuleKind};
use lifeboat::plans::due::{due_at_tick, Due};
use lifeboat::plans::membership::{plan_of, MembershipError, Resource};
use lifeboat::plans::store::{self, Loaded, Location};
use lifeboat::rds::naming::SnapshotKind;
use lifeboat::rds::retention;
use lifeboat::rds::selection::Database;
use serde::Serialize;

use crate::deps::Deps;
use crate::job::{Job, PlanTag};

/// What the run followed and what it passed over, in its JSON result.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// `s3://bucket/key` of the document.
    pub document: String,
    /// The version followed: `PlanVersion::label()` (also the snapshots' `lifeboat:plan-version`).
    pub version: String,
    /// S3's version id of it.
    pub version_id: String,
    /// Newer versions that failed validation and were not followed.
    pub refused: Vec<RefusedVersion>,
    /// The snapshot and cache-snapshot rules due at this tick.
    pub due: Vec<DueRule>,
    /// Databases and caches in no plan (listed, never backed up under a default).
    pub unplanned: Vec<Unplanned>,
    /// The restore-test rules due at this tick, and whether their run was started.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restore_tests: Vec<crate::restore_tests::Started>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefusedVersion {
    pub version: String,
    pub version_id: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DueRule {
    pub plan: String,
    pub rule: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unplanned {
    /// `database` or `cache`.
    pub kind: &'static str,
    pub id: String,
}

/// The document in force for this invocation. A refused newer version is logged (its label and error); no
/// usable version at all is `Error::Plan`, and nothing is snapshotted or expired.
pub(crate) async fn load(deps: &Deps, location: &Location) -> Result<Loaded, Error> {
    let loaded = store::load(&deps.s3, location).await?;
    for r in &loaded.refused {
        tracing::error!(
            document = %location,
            plan_version = r.version.label(),
            version_id = %r.version.version_id,
            error = %r.error,
            "plan document version refused; following the previous valid version"
        );
    }
    tracing::info!(
        document = %location,
        plan_version = loaded.version.label(),
        version_id = %loaded.version.version_id,
        "plan document loaded"
    );
    Ok(loaded)
}

/// The report of a tick before it places anything: the version and what was refused.
pub(crate) fn report(location: &Location, loaded: &Loaded, due: &Dues) -> PlanReport {
    PlanReport {
        document: location.to_string(),
        version: loaded.version.label().to_owned(),
        version_id: loaded.version.version_id.clone(),
        refused: loaded
            .refused
            .iter()
            .map(|r| RefusedVersion {
                version: r.version.label().to_owned(),
                version_id: r.version.version_id.clone(),
                error: r.error.clone(),
            })
            .collect(),
        due: due
            .databases
            .iter()
            .chain(&due.caches)
            .map(|d| DueRule {
                plan: d.plan.clone(),
                rule: d.rule.clone(),
                at: d.at,
            })
            .collect(),
        unplanned: Vec::new(),
        restore_tests: Vec::new(),
    }
}

/// The snapshot rules (databases) and cache-snapshot rules due at a tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dues {
    pub(crate) databases: Vec<Due>,
    pub(crate) caches: Vec<Due>,
}

impl Dues {
    pub(crate) fn is_empty(&self) -> bool {
        self.databases.is_empty() && self.caches.is_empty()
    }
}

/// What a tick delivered at `tick` runs.
pub(crate) fn due(doc: &Document, tick: DateTime<Utc>) -> Dues {
    Dues {
        databases: due_at_tick(doc, RuleKind::Snapshot, tick),
        caches: due_at_tick(doc, RuleKind::CacheSnapshot, tick),
    }
}

/// Where one resource stands at a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement<'a> {
    /// Its plan's rule is due: snapshot it under this run.
    Due(&'a Due),
    /// In a plan with nothing due now.
    Idle,
    /// In no plan.
    Unplanned,
    /// Its plan cannot be decided (two plans, or an unknown one): reported as failing, never guessed.
    Refused(MembershipError),
}

/// The placement of one resource: its plan by [`plan_of`], then that plan's due run among `due`.
pub(crate) fn place<'a>(
    doc: &Document,
    due: &'a [Due],
    resource: Resource,
    id: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> Placement<'a> {
    match plan_of(doc, resource, id, tags) {
        Err(e) => Placement::Refused(e),
        Ok(None) => Placement::Unplanned,
        Ok(Some(plan)) => due
            .iter()
            .find(|d| d.plan == plan)
            .map_or(Placement::Idle, Placement::Due),
    }
}

/// The job of a due run: the rule's retention, the plan's tags, the due time as the snapshots' time.
pub(crate) fn job(doc: &Document, version: &str, due: &Due, kind: RuleKind, now: DateTime<Utc>) -> Option<Job> {
    let plan = doc.plans.get(&due.plan)?;
    let (retention, dr_copy) = match kind {
        RuleKind::Snapshot => plan.snapshots.as_ref().map(|r| (r.retention, r.dr_copy))?,
        RuleKind::CacheSnapshot => plan.cache_snapshots.as_ref().map(|r| (r.retention, false))?,
        _ => return None,
    };
    Some(Job {
        kind: SnapshotKind::Schedule,
        at: due.at,
        clock: retention::clock(due.at, now),
        retention: retention.gfs(),
        manual: None,
        plan: Some(PlanTag {
            plan: due.plan.clone(),
            version: version.to_owned(),
            dr_copy,
        }),
    })
}

/// Why a finished snapshot made under plan `name` is neither copied nor shared, `None` when its plan's snapshot
/// rule says `dr_copy`. A plan the document no longer has, or one without a snapshot rule, does not copy.
pub(crate) fn declines_copy(doc: &Document, name: &str) -> Option<String> {
    match doc.plans.get(name).map(|p| p.snapshots.as_ref()) {
        Some(Some(rule)) if rule.dr_copy => None,
        Some(Some(_)) => Some(format!("plan `{name}` does not copy its snapshots (`dr_copy` is off)")),
        Some(None) => Some(format!("plan `{name}` has no snapshot rule: nothing to copy")),
        None => Some(format!("the plan document in force has no plan `{name}`: not copied")),
    }
}

/// What a tick acts on: each due resource with its job, the refused ones with why, the ones in no plan.
#[derive(Debug, Default)]
pub(crate) struct Work {
    pub(crate) databases: Vec<(Database, Job)>,
    pub(crate) caches: Vec<(Cache, Job)>,
    pub(crate) refused_databases: Vec<(Database, MembershipError)>,
    pub(crate) refused_caches: Vec<(Cache, MembershipError)>,
    pub(crate) unplanned: Vec<Unplanned>,
}

/// A manual run's work under the plan document: each named resource whose plan has a rule for its kind is kept
/// by that rule's retention and tagged with the plan and version (so retention after a manual snapshot never
/// expires what the plan keeps); one in no plan, or in a plan without such a rule, keeps the deployment's
/// retention as before; one whose plan cannot be decided is refused. Pure.
pub(crate) fn manual(doc: &Document, version: &str, work: Work) -> Work {
    let mut out = Work {
        unplanned: work.unplanned,
        refused_databases: work.refused_databases,
        refused_caches: work.refused_caches,
        ..Work::default()
    };
    for (db, job) in work.databases {
        match under_plan(doc, version, Resource::Database, &db.id, &db.tags, job) {
            Ok(job) => out.databases.push((db, job)),
            Err(e) => out.refused_databases.push((db, e)),
        }
    }
    for (cache, job) in work.caches {
        match under_plan(doc, version, Resource::Cache, &cache.id, &cache.tags, job) {
            Ok(job) => out.caches.push((cache, job)),
            Err(e) => out.refused_caches.push((cache, e)),
        }
    }
    out
}

/// `job` for one resource of a manual run, as [`manual`] says.
fn under_plan(
    doc: &Document,
    version: &str,
    resource: Resource,
    id: &str,
    tags: &std::collections::BTreeMap<String, String>,
    job: Job,
) -> Result<Job, MembershipError> {
    let Some(name) = plan_of(doc, resource, id, tags)? else {
        return Ok(job);
    };
    let plan = doc.plans.get(name);
    let rule = match resource {
        Resource::Database => plan
            .and_then(|p| p.snapshots.as_ref())
            .map(|r| (r.retention, r.dr_copy)),
        Resource::Cache => plan
            .and_then(|p| p.cache_snapshots.as_ref())
            .map(|r| (r.retention, false)),
    };
    Ok(match rule {
        None => job,
        Some((retention, dr_copy)) => Job {
            retention: retention.gfs(),
            plan: Some(PlanTag {
                plan: name.to_owned(),
                version: version.to_owned(),
                dr_copy,
            }),
            ..job
        },
    })
}

/// Places every discovered database (cluster members are their cluster) and cache. Pure.
pub(crate) fn work(
    doc: &Document,
    version: &str,
    due: &Dues,
    databases: &[Database],
    caches: &[Cache],
    now: DateTime<Utc>,
) -> Work {
    let mut out = Work::default();
    for db in databases.iter().filter(|db| db.cluster.is_none()) {
        match place(doc, &due.databases, Resource::Database, &db.id, &db.tags) {
            Placement::Due(d) => {
                if let Some(job) = job(doc, version, d, RuleKind::Snapshot, now) {
                    out.databases.push((db.clone(), job));
                }
            }
            Placement::Idle => {}
            Placement::Unplanned => out.unplanned.push(Unplanned {
                kind: Resource::Database.noun(),
                id: db.id.clone(),
            }),
            Placement::Refused(e) => out.refused_databases.push((db.clone(), e)),
        }
    }
    for cache in caches {
        match place(doc, &due.caches, Resource::Cache, &cache.id, &cache.tags) {
            Placement::Due(d) => {
                if let Some(job) = job(doc, version, d, RuleKind::CacheSnapshot, now) {
                    out.caches.push((cache.clone(), job));
                }
            }
            Placement::Idle => {}
            Placement::Unplanned => out.unplanned.push(Unplanned {
                kind: Resource::Cache.noun(),
                id: cache.id.clone(),
            }),
            Placement::Refused(e) => out.refused_caches.push((cache.clone(), e)),
        }
    }
    out.databases
        .sort_by(|a, b| (a.0.kind, &a.0.id).cmp(&(b.0.kind, &b.0.id)));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lifeboat::caches::elasticache::CacheKind;
    use lifeboat::core::tags::PLAN;
    use lifeboat::plans::document::parse;
    use lifeboat::rds::selection::DbKind;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn doc() -> Document {
        parse(
            br#"{"format": 1, "plans": {
              "production": {"databases": ["listed-prod"],
                             "snapshots": {"schedule": "0 2 * * *", "retention": {"daily": 30}, "dr_copy": true},
                             "cache_snapshots": {"schedule": "0 3 * * *", "retention": {"daily": 7}}},
              "staging": {"snapshots": {"schedule": "30 2 * * *", "retention": {"daily": 14}}},
              "exports-only": {"exports": {"full": {"schedule": "0 2 * * *", "keep_days": 7}}},
              "dev": {"no_backups": "recreated from seed data"}}}"#,
        )
        .unwrap()
    }

    fn tags(plan: Option<&str>) -> BTreeMap<String, String> {
        plan.map(|p| BTreeMap::from([(PLAN.to_owned(), p.to_owned())]))
            .unwrap_or_default()
    }

    fn db(id: &str, plan: Option<&str>) -> Database {
        Database {
            id: id.into(),
            kind: DbKind::Instance,
            arn: format!("arn:aws:rds:us-east-1:1:db:{id}"),
            engine: "postgres".into(),
            status: "available".into(),
            tags: tags(plan),
            cluster: None,
            endpoint: None,
            aliases: Vec::new(),
            master_secret_arn: None,
        }
    }

    fn cache(id: &str, plan: Option<&str>) -> Cache {
        Cache {
            id: id.into(),
            kind: CacheKind::ReplicationGroup,
            arn: format!("arn:aws:elasticache:us-east-1:1:replicationgroup:{id}"),
            engine: "valkey".into(),
            status: "available".into(),
            tags: tags(plan),
            cluster_mode: false,
            members: Vec::new(),
            at_rest_encryption: true,
            transit_encryption: true,
            snapshot_retention_days: 0,
            replicated: true,
        }
    }

    #[test]
    fn a_tick_places_each_resource_by_its_plan() {
        let d = doc();
        let mut member = db("app-1", Some("production"));
        member.cluster = Some("app".into());
        let dbs = [
            db("app-prod", Some("production")),
            db("listed-prod", None),
            db("app-staging", Some("staging")),
            db("app-dev", Some("dev")),
            db("orphan", None),
            db("typo", Some("prod")),
            db("conflict", Some("staging")),
            member,
        ];
        let mut conflict = dbs[6].clone();
        conflict.id = "listed-prod".into();
        let dbs: Vec<Database> = dbs.into_iter().chain([conflict]).collect();
        let caches = [cache("sessions", Some("production")), cache("loose", None)];
        let now = at("2026-12-06T02:00:09Z");
        let due = due(&d, at("2026-12-06T02:00:00Z"));
        let w = work(&d, "0123456789ab", &due, &dbs, &caches, now);
        let ids: Vec<&str> = w.databases.iter().map(|(db, _)| db.id.as_str()).collect();
        // Staging is due at 02:30, caches at 03:00; the cluster member is its cluster's.
        assert_eq!(ids, ["app-prod", "listed-prod"]);
        let job = &w.databases[0].1;
        assert_eq!(job.at, at("2026-12-06T02:00:00Z"));
        assert_eq!(job.clock, at("2026-12-06T02:00:00Z"));
        assert_eq!(job.retention.to_string(), "daily=30,weekly=0,monthly=0,yearly=0");
        assert_eq!(
            job.plan,
            Some(PlanTag {
                plan: "production".into(),
                version: "0123456789ab".into(),
                dr_copy: true
            })
        );
        let refused: Vec<(&str, String)> = w
            .refused_databases
            .iter()
            .map(|(db, e)| (db.id.as_str(), e.to_string()))
            .collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused[0].0 == "typo" && refused[0].1.contains("no plan `prod`"),
            "{refused:?}"
        );
        assert!(
            refused[1].0 == "listed-prod" && refused[1].1.contains("in two plans"),
            "{refused:?}"
        );
        let unplanned: Vec<(&str, &str)> = w.unplanned.iter().map(|u| (u.kind, u.id.as_str())).collect();
        assert_eq!(unplanned, [("database", "orphan"), ("cache", "loose")]);
        assert!(w.caches.is_empty());
    }

    #[test]
    fn cache_rules_give_cache_jobs_and_never_copy() {
        let d = doc();
        let due = due(&d, at("2026-12-06T03:05:00Z"));
        assert!(due.databases.is_empty());
        let w = work(
            &d,
            "v",
            &due,
            &[],
            &[cache("sessions", Some("production"))],
            at("2026-12-06T03:05:00Z"),
        );
        let (c, job) = &w.caches[0];
        assert_eq!(c.id, "sessions");
        assert_eq!(job.retention.daily, 7);
        assert!(!job.copies());
    }

    #[test]
    fn nothing_is_due_between_the_rules_and_never_for_no_backups() {
        let d = doc();
        assert!(due(&d, at("2026-12-06T02:15:00Z")).is_empty());
        // The export-only plan's 02:00 export is not a snapshot rule.
        let at2 = due(&d, at("2026-12-06T02:00:00Z"));
        assert_eq!(
            at2.databases.iter().map(|d| d.plan.as_str()).collect::<Vec<_>>(),
            ["production"]
        );
        let month: usize = (0..31 * 96)
            .map(|q| due(&d, at("2026-12-01T00:00:00Z") + chrono::Duration::minutes(15 * q)))
            .map(|d| d.databases.iter().chain(&d.caches).filter(|d| d.plan == "dev").count())
            .sum();
        assert_eq!(month, 0);
        assert_eq!(
            place(&d, &at2.databases, Resource::Database, "x", &tags(Some("dev"))),
            Placement::Idle
        );
    }

    #[test]
    fn a_manual_run_keeps_each_resource_by_its_plans_retention() {
        let d = doc();
        let now = at("2026-12-06T10:00:00Z");
        let legacy = Job {
            kind: SnapshotKind::Manual,
            at: now,
            clock: now,
            retention: lifeboat::rds::retention::Gfs::parse("daily=7,weekly=4").unwrap(),
            manual: None,
            plan: None,
        };
        let work = Work {
            databases: [
                db("app-prod", Some("production")),
                db("orphan", None),
                db("app-dev", Some("dev")),
                db("typo", Some("prod")),
            ]
            .into_iter()
            .map(|db| (db, legacy.clone()))
            .collect(),
            caches: vec![(cache("sessions", Some("production")), legacy.clone())],
            ..Work::default()
        };
        let w = manual(&d, "v9", work);
        let jobs: Vec<(&str, String, Option<&str>)> = w
            .databases
            .iter()
            .map(|(db, j)| {
                (
                    db.id.as_str(),
                    j.retention.to_string(),
                    j.plan.as_ref().map(|p| p.plan.as_str()),
                )
            })
            .collect();
        assert_eq!(
            jobs,
            [
                (
                    "app-prod",
                    "daily=30,weekly=0,monthly=0,yearly=0".to_owned(),
                    Some("production")
                ),
                ("orphan", "daily=7,weekly=4,monthly=0,yearly=0".to_owned(), None),
                ("app-dev", "daily=7,weekly=4,monthly=0,yearly=0".to_owned(), None),
            ]
        );
        assert!(w
            .databases
            .iter()
            .all(|(_, j)| j.kind == SnapshotKind::Manual && j.at == now));
        assert_eq!(w.refused_databases.len(), 1);
        assert_eq!(w.caches[0].1.retention.daily, 7);
        assert_eq!(w.caches[0].1.plan.as_ref().map(|p| p.version.as_str()), Some("v9"));
    }

    #[test]
    fn only_a_plan_with_dr_copy_copies_its_finished_snapshots() {
        let d = doc();
        assert_eq!(declines_copy(&d, "production"), None);
        assert!(declines_copy(&d, "staging").unwrap().contains("`dr_copy` is off"));
        assert!(declines_copy(&d, "exports-only").unwrap().contains("no snapshot rule"));
        assert!(declines_copy(&d, "gone").unwrap().contains("no plan `gone`"));
    }
}
