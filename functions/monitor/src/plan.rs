//! Plan mode of a monitoring run (`LIFEBOAT_PLAN_DOCUMENT` set): the plan version in force, loaded every run so a
//! new version takes effect at the next run without a redeploy, and where each database and cache stands under it
//! (`lifeboat::monitoring::plan` decides; this file gathers and reports).
//!
//! Every database and cache in the region is placed, not only a selector's: the plan document is the one source
//! of truth, and a resource in no plan is exactly what must be reported. Restore-test resources and the
//! instances inside a cluster (the cluster is the resource) are left out. A document with no usable version fails
//! the run with `Error::Plan` after publishing `PlanDocumentUnusable` = 1 (its own alarm, since the run's other
//! figures are then missing); newer versions that fail validation, resources in no plan and membership conflicts
//! are published as counts, each watched by a stack alarm, listed in the summary and logged.
//!
//! Rotation ([`PlanRun::check_rotations`]): every database whose plan has a `rotation` rule is checked, whatever
//! its other rules, against the freshness the document states for it (`lifeboat::plans::rotation` decides).
//! Its secret is the one every function uses (`Database::secret_id`), read with DescribeSecret only: monitor
//! never reads a value nor changes a rotation (the rotate function's plan tick configures them). A member whose
//! secret is missing or cannot be read is counted overdue: nothing shows that its credentials rotate.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::{DateTime, Utc};
use lifeboat::caches::elasticache::Cache;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{
    Metrics, DB_DIMENSION, PLAN_CONFLICTS, PLAN_DOCUMENT_UNUSABLE, PLAN_MEMBERS_MISSING, PLAN_UNASSIGNED,
    PLAN_VERSIONS_REFUSED, ROTATIONS_OVERDUE, ROTATION_OVERDUE,
};
use lifeboat::monitoring::monitor::Thresholds;
use lifeboat::monitoring::plan::{not_backed_up_note, place, unplanned_note, Placement};
use lifeboat::plans::membership::{plan_of, Resource};
use lifeboat::plans::rotation;
use lifeboat::plans::standing::{standing, Clients, Fleet, StandingError};
use lifeboat::plans::store::{self, Loaded, Location, PlanVersion, Refused};
use lifeboat::rds::restore::is_restore_test;
use lifeboat::rds::selection::Database;
use serde::Serialize;

use crate::deps::Deps;

/// A resource its plan deliberately does not back up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotBackedUp {
    /// `<db>` or `cache <id>`.
    pub resource: String,
    pub plan: String,
    pub reason: String,
}

/// What a plan-mode run followed and found: the run's summary carries it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanRun {
    /// `s3://bucket/key`.
    pub document: String,
    /// The version in force (its S3 version id, time and SHA-256) and its label.
    pub version: Option<PlanVersion>,
    pub label: String,
    /// Newer versions that fail validation, with why: the version in force is older.
    pub refused: Vec<Refused>,
    /// The plan each watched database follows.
    pub databases: BTreeMap<String, String>,
    /// The plan each watched cache follows.
    pub caches: BTreeMap<String, String>,
    /// Resources in no plan (`<db>`, `cache <id>`).
    pub unplanned: Vec<String>,
    /// Resources whose plan cannot be decided, each with both names.
    pub conflicts: Vec<String>,
    /// Resources a plan lists by name that the region does not have (`<db>`, `cache <id>`, with the plan).
    pub missing: Vec<String>,
    pub not_backed_up: Vec<NotBackedUp>,
    /// Databases whose credentials are older than their plan's rotation rule allows, each with why.
    pub rotations_overdue: Vec<String>,
}

/// The version in force. When none can be used, `PlanDocumentUnusable` = 1 is published at once (the run's
/// other figures will be missing) and the error is returned: the run fails as a failed invocation.
pub async fn load(deps: &Deps, location: &Location, now: DateTime<Utc>) -> Result<Loaded, Error> {
    match store::load(&deps.s3, location).await {
        Ok(loaded) => {
            for r in &loaded.refused {
                tracing::error!(version = %r.version.version_id, label = %r.version.label(), error = %r.error,
                    "a newer plan version fails validation; the previous valid version stays in force");
            }
            tracing::info!(document = %location, version = %loaded.version.version_id,
                label = %loaded.version.label(), "plan version in force");
            Ok(loaded)
        }
        Err(e) => {
            tracing::error!(document = %location, error = %e, "no usable plan version");
            let mut m = Metrics::new();
            m.put(PLAN_DOCUMENT_UNUSABLE, 1.0, StandardUnit::Count, &[]);
            let namespace = &deps.settings.common.metrics_namespace;
            if let Err(p) = m.publish(&deps.cw, namespace, now).await {
                tracing::error!(error = %p, "could not publish PlanDocumentUnusable");
            }
            Err(e)
        }
    }
}

/// Plan mode's start of a run: the version in force and the run's record of it; `None` in legacy mode.
pub async fn start(deps: &Deps, now: DateTime<Utc>) -> Result<Option<(Loaded, PlanRun)>, Error> {
    let Some(location) = &deps.settings.plan else {
        return Ok(None);
    };
    let loaded = load(deps, location, now).await?;
    let run = run_of(&loaded, location);
    Ok(Some((loaded, run)))
}

/// A new run's record of the version in force.
pub fn run_of(loaded: &Loaded, location: &Location) -> PlanRun {
    PlanRun {
        document: location.to_string(),
        label: loaded.version.label().to_owned(),
        version: Some(loaded.version.clone()),
        refused: loaded.refused.clone(),
        ..PlanRun::default()
    }
}

impl PlanRun {
    /// Records one placement; returns the thresholds of a resource that follows a plan.
    fn record(&mut self, placement: Placement, what: String, id: &str, cache: bool) -> Option<Thresholds> {
        match placement {
            Placement::Follows { plan, thresholds } => {
                let map = if cache { &mut self.caches } else { &mut self.databases };
                map.insert(id.to_owned(), plan);
                Some(thresholds)
            }
            Placement::NotBackedUp { plan, reason } => {
                let line = not_backed_up_note(&what, &plan, &reason);
                tracing::info!(resource = %what, plan = %plan, line = %line, "not backed up by policy");
                self.not_backed_up.push(NotBackedUp {
                    resource: what,
                    plan,
                    reason,
                });
                None
            }
            Placement::Unplanned => {
                self.unplanned.push(what);
                None
            }
            Placement::Conflict(e) => {
                self.conflicts.push(e.to_string());
                None
            }
        }
    }

    /// The databases that follow a plan, with their thresholds.
    pub fn place_databases<'a>(&mut self, loaded: &Loaded, all: &'a [Database]) -> Vec<(&'a Database, Thresholds)> {
        let mut out = Vec::new();
        for db in all.iter().filter(|d| d.cluster.is_none() && !is_restore_test(&d.tags)) {
            let placement = place(&loaded.document, Resource::Database, &db.id, &db.tags, None);
            if let Some(t) = self.record(placement, db.id.clone(), &db.id, false) {
                out.push((db, t));
            }
        }
        // An instance inside a cluster is not a resource of its own: a plan listing it backs nothing up.
        let present: Vec<&str> = all
            .iter()
            .filter(|d| d.cluster.is_none())
            .map(|d| d.id.as_str())
            .collect();
        self.missing_listed(loaded, Resource::Database, &present);
        out
    }

    /// Records each resource of `resource`'s kind that a plan lists and `present` does not have.
    fn missing_listed(&mut self, loaded: &Loaded, resource: Resource, present: &[&str]) {
        for (plan, rules) in &loaded.document.plans {
            let (listed, noun) = match resource {
                Resource::Database => (&rules.databases, ""),
                Resource::Cache => (&rules.caches, "cache "),
            };
            for id in listed.iter().filter(|id| !present.contains(&id.as_str())) {
                tracing::error!(resource = %id, plan = %plan, "listed in a plan and not in the region");
                self.missing.push(format!(
                    "{noun}{id}: listed in plan `{plan}` and not in this region, so nothing backs it up                      (a typo, or a renamed or deleted resource)"
                ));
            }
        }
    }

    /// The caches that follow a plan, with their thresholds.
    pub fn place_caches<'a>(&mut self, loaded: &Loaded, all: &'a [Cache]) -> Vec<(&'a Cache, Thresholds)> {
        let mut out = Vec::new();
        for c in all.iter().filter(|c| !is_restore_test(&c.tags)) {
            let placement = place(&loaded.document, Resource::Cache, &c.id, &c.tags, Some(c.kind));
            if let Some(t) = self.record(placement, format!("cache {}", c.id), &c.id, true) {
                out.push((c, t));
            }
        }
        let present: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        self.missing_listed(loaded, Resource::Cache, &present);
        out
    }

    /// Checks the rotation of every database whose plan has a rotation rule: `RotationOverdue` per database, each
    /// overdue one recorded (`ROTATIONS_OVERDUE` is published with the run's other plan figures).
    pub async fn check_rotations(
        &mut self,
        deps: &Deps,
        loaded: &Loaded,
        all: &[Database],
        now: DateTime<Utc>,
        out: &mut Metrics,
    ) {
        for db in all.iter().filter(|d| d.cluster.is_none() && !is_restore_test(&d.tags)) {
            let Ok(Some(plan)) = plan_of(&loaded.document, Resource::Database, &db.id, &db.tags) else {
                continue;
            };
            let Some(max_age) = loaded.document.plans.get(plan).and_then(rotation::max_age) else {
                continue;
            };
            let late = match db.secret_id() {
                None => Some(format!("no secret (tag it `{}`)", lifeboat::core::tags::SECRET)),
                Some(id) => match rotation::describe(&deps.sm, id).await {
                    Err(e) => Some(format!("its secret {id} cannot be read: {e}")),
                    Ok(secret) => rotation::overdue(&secret, max_age, now).map(|late| {
                        format!(
                            "secret {} last rotated {} ({} days past the plan's {} days)",
                            secret.name,
                            secret
                                .since()
                                .map_or_else(|| "never".to_owned(), |t| t.format("%Y-%m-%d").to_string()),
                            late.num_days(),
                            max_age.num_days()
                        )
                    }),
                },
            };
            let dims = [(DB_DIMENSION, db.id.as_str())];
            out.put(
                ROTATION_OVERDUE,
                f64::from(u8::from(late.is_some())),
                StandardUnit::Count,
                &dims,
            );
            if let Some(why) = late {
                tracing::warn!(db = %db.id, plan = %plan, why = %why, "rotation overdue");
                self.rotations_overdue
                    .push(format!("{}: rotation overdue under plan `{plan}`: {why}", db.id));
            }
        }
    }

    /// The run's plan figures: the version in force was usable, and the counts.
    pub fn metrics(&self, out: &mut Metrics) {
        for (name, value) in [
            (ROTATIONS_OVERDUE, self.rotations_overdue.len() as f64),
            (PLAN_DOCUMENT_UNUSABLE, 0.0),
            (PLAN_UNASSIGNED, self.unplanned.len() as f64),
            (PLAN_CONFLICTS, self.conflicts.len() as f64),
            (PLAN_MEMBERS_MISSING, self.missing.len() as f64),
            (PLAN_VERSIONS_REFUSED, self.refused.len() as f64),
        ] {
            out.put(name, value, StandardUnit::Count, &[]);
        }
    }

    /// What a human must hear about: resources in no plan, conflicts, listed resources missing, overdue rotations,
    /// refused versions. Resources not backed up by policy are a written decision, listed in the summary, not a
    /// finding.
    pub fn notes(&self) -> Vec<String> {
        let mut out: Vec<String> = self.unplanned.iter().map(|w| unplanned_note(w)).collect();
        out.extend(self.conflicts.iter().cloned());
        out.extend(self.missing.iter().cloned());
        out.extend(self.rotations_overdue.iter().cloned());
        out.extend(self.refused.iter().map(|r| {
            format!(
                "plan document version {} ({}, written {}) fails validation and is not used: {}",
                r.version.label(),
                r.version.version_id,
                r.version.modified.format("%Y-%m-%d %H:%M UTC"),
                r.error
            )
        }));
        out
    }
}

/// The console's `plan-show` action: where `resource` stands under the version in force
/// (`lifeboat::plans::standing`, what `lifeboat plan show <resource>` prints), with the document and version.
pub async fn show(deps: &Deps, resource: &str, now: DateTime<Utc>) -> Result<serde_json::Value, Error> {
    let Some(location) = &deps.settings.plan else {
        return Err(Error::InvalidEvent(format!(
            "plan-show needs the plan document, and {} is not set",
            store::PLAN_DOCUMENT
        )));
    };
    let loaded = store::load(&deps.s3, location).await?;
    let clients = Clients {
        s3: (*deps.s3).clone(),
        rds: (*deps.rds).clone(),
        elasticache: (*deps.ec).clone(),
        sm: (*deps.sm).clone(),
    };
    let fleet = Fleet::discover(&clients, deps.settings.serverless_caches).await?;
    let bucket = Some(deps.settings.bucket.as_str());
    let st = standing(&clients, &loaded.document, &fleet, resource, bucket, now)
        .await
        .map_err(|e| match e {
            StandingError::NotFound(_) => Error::InvalidEvent(e.to_string()),
            StandingError::Undecided(why) => Error::Plan(why),
            StandingError::Aws(e) => e,
        })?;
    let mut out = serde_json::json!({"document": location.to_string(), "version": loaded.version.label()});
    if let (Some(o), Ok(serde_json::Value::Object(st))) = (out.as_object_mut(), serde_json::to_value(&st)) {
        o.extend(st);
    }
    Ok(out)
}
