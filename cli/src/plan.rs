//! `lifeboat plan`: check a plan document, show the plan in force and who follows it, and change it safely.
//!
//! `check` reads a file only. `show`, `diff` and `apply` read the version in force the way the functions do
//! (`lifeboat::plans::store::load`: the newest version that passes validation) and the fleet from RDS and
//! ElastiCache (their tags say who follows which plan). `diff` is the dry-run: every field that changes
//! (`plans::change::field_changes`), every resource whose plan changes, every membership problem, and the snapshots
//! the new retention would expire that the current one keeps (`plans::change::newly_expired`, the same retention
//! rules the snapshot function runs). `apply` prints the same, then uploads the file as a new version of the object.
//!
//! Refuses (exit 4), writing nothing: an invalid document; a document under which a resource would follow two
//! plans or an unknown one; replacing a document in a bucket without versioning (S3 must keep the previous version
//! for it to keep working when a new one is bad); a change that would expire snapshots, unless `--accept-expiry` says the reviewer saw
//! the list. Never (with `diff` or `--dry-run`): calls an AWS API that writes.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use lifeboat::core::error::{ConfigError, Error};
use lifeboat::core::settings::{bucket as bucket_var, ProcessEnv, SERVERLESS_CACHES};
use lifeboat::plans::change::{field_changes, newly_expired};
use lifeboat::plans::document::{parse, Document};
use lifeboat::plans::due::next_runs;
use lifeboat::plans::membership::Resource;
use lifeboat::plans::standing::{minute, standing, Clients, Fleet, Last, StandingError};
use lifeboat::plans::store::{self, Location, PlanVersion, PLAN_DOCUMENT};
use lifeboat::rds::snapshots;
use serde_json::{json, Value};

use crate::args::{PlanCommand, PlanSource};
use crate::run::{aws_config, CliError, Done};

pub async fn run(command: &PlanCommand, profile: Option<&str>) -> Result<Done, CliError> {
    match command {
        PlanCommand::Check { file } => check(file),
        PlanCommand::Show { resource, source } => show(resource.as_deref(), source, profile).await,
        PlanCommand::Diff { file, source } => change(file, source, profile, Mode::DryRun).await,
        PlanCommand::Apply {
            file,
            accept_expiry,
            dry_run,
            source,
        } => {
            let mode = if *dry_run {
                Mode::DryRun
            } else {
                Mode::Apply {
                    accept_expiry: *accept_expiry,
                }
            };
            change(file, source, profile, mode).await
        }
    }
}

fn time(t: DateTime<Utc>) -> String {
    minute(t)
}

/// `26 h 24 min`, `7 d 16 h 48 min`: a duration as a person reads a threshold.
fn hours(d: chrono::Duration) -> String {
    let minutes = d.num_minutes();
    let (days, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let mut parts = Vec::new();
    if minutes >= 48 * 60 {
        parts.push(format!("{days} d"));
        if h > 0 {
            parts.push(format!("{h} h"));
        }
    } else {
        parts.push(format!("{} h", minutes / 60));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    parts.join(" ")
}

fn read_document(path: &Path) -> Result<(Vec<u8>, Document), CliError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CliError::ReadFile {
        path: shown.clone(),
        source,
    })?;
    let doc = parse(&bytes).map_err(|e| CliError::Refused(format!("{shown}: {e}")))?;
    Ok((bytes, doc))
}

/// The plans of a document as JSON and text: each rule with its schedule, next run and alarm threshold.
fn describe(doc: &Document, now: DateTime<Utc>) -> (Value, String) {
    let mut plans = serde_json::Map::new();
    let mut text = String::new();
    for (name, plan) in &doc.plans {
        let next: BTreeMap<String, Option<DateTime<Utc>>> = next_runs(doc, name, now).into_iter().collect();
        let members: Vec<&String> = plan.databases.iter().chain(&plan.caches).collect();
        text.push_str(&format!("plan {name} (tag lifeboat:plan={name}"));
        if !members.is_empty() {
            text.push_str(&format!(
                "; listed: {}",
                members.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        text.push_str(")\n");
        if let Some(why) = &plan.no_backups {
            text.push_str(&format!("  not backed up: {why}\n"));
        }
        let mut rules = Vec::new();
        for rule in plan.rules() {
            let schedule = rule.schedule.map(ToString::to_string);
            let next_at = next.get(&rule.id).copied().flatten();
            text.push_str(&format!(
                "  {:<22} {:<18} next {:<18} alarm after {}\n",
                rule.id,
                schedule.clone().unwrap_or_else(|| match &plan.rotation {
                    Some(r) => format!("every {} d", r.every_days),
                    None => "-".to_owned(),
                }),
                next_at.map(time).unwrap_or_else(|| "-".into()),
                hours(rule.max_age()),
            ));
            rules.push(json!({
                "rule": rule.id,
                "kind": rule.kind,
                "schedule": schedule,
                "next": next_at.map(time),
                "max_age_hours": rule.max_age().num_minutes() as f64 / 60.0,
            }));
        }
        if let Some(p) = &plan.pitr {
            text.push_str(&format!(
                "  {:<22} at least {} d of point-in-time recovery\n",
                "pitr", p.min_days
            ));
        }
        plans.insert(
            name.clone(),
            json!({"databases": plan.databases, "caches": plan.caches, "no_backups": plan.no_backups,
                   "pitr_min_days": plan.pitr.map(|p| p.min_days), "rules": rules}),
        );
    }
    (Value::Object(plans), text)
}

/// `lifeboat plan check FILE`.
fn check(file: &Path) -> Result<Done, CliError> {
    let (bytes, doc) = read_document(file)?;
    let label = PlanVersion::new("", Utc::now(), &bytes).label().to_owned();
    let (plans, text) = describe(&doc, Utc::now());
    Ok(Done {
        json: json!({"command": "plan check", "file": file.display().to_string(), "valid": true,
                     "version": label, "plans": plans}),
        text: format!(
            "{}: valid, {} plan(s), version {label}\n{text}",
            file.display(),
            doc.plans.len()
        ),
    })
}

/// `--document`, else `LIFEBOAT_PLAN_DOCUMENT` read as the functions read it.
pub(crate) fn location(source: &PlanSource) -> Result<Location, CliError> {
    let location = match &source.document {
        Some(raw) => Some(Location::parse(raw.trim()).map_err(|r| ConfigError::new("--document", raw, r))?),
        None => Location::from_env(&ProcessEnv)?,
    };
    location.ok_or_else(|| {
        ConfigError::new(
            PLAN_DOCUMENT,
            "",
            "pass --document s3://bucket/key or set LIFEBOAT_PLAN_DOCUMENT",
        )
        .into()
    })
}

async fn clients(profile: Option<&str>) -> Clients {
    let config = aws_config(profile).await;
    Clients {
        s3: aws_sdk_s3::Client::new(&config),
        rds: aws_sdk_rds::Client::new(&config),
        elasticache: aws_sdk_elasticache::Client::new(&config),
        sm: aws_sdk_secretsmanager::Client::new(&config),
    }
}

/// The databases and caches of the account, with their tags.
async fn fleet(c: &Clients) -> Result<Fleet, CliError> {
    let serverless = lifeboat::core::settings::serverless_caches(&ProcessEnv)
        .map_err(|_| CliError::Config(ConfigError::new(SERVERLESS_CACHES, "", "expected true or false")))?;
    Fleet::discover(c, serverless).await.map_err(CliError::Gather)
}

async fn in_force(
    s3: &aws_sdk_s3::Client,
    loc: &Location,
    listed: &[store::Listed],
) -> Result<Option<store::Loaded>, CliError> {
    match store::load_listed(s3, loc, listed).await {
        Ok(l) => Ok(Some(l)),
        // No version yet (a first apply) or none valid: there is nothing in force to compare with.
        Err(Error::Plan(_)) => Ok(None),
        Err(e) => Err(CliError::Gather(e)),
    }
}

fn export_bucket(source: &PlanSource) -> Option<String> {
    source.bucket.clone().or_else(|| bucket_var(&ProcessEnv).ok())
}

/// `lifeboat plan show [RESOURCE]`.
async fn show(resource: Option<&str>, source: &PlanSource, profile: Option<&str>) -> Result<Done, CliError> {
    let loc = location(source)?;
    let c = clients(profile).await;
    let loaded = store::load(&c.s3, &loc).await.map_err(|e| match e {
        Error::Plan(m) => CliError::NotFound(m),
        other => CliError::Gather(other),
    })?;
    let now = Utc::now();
    let fleet = fleet(&c).await?;
    let v = &loaded.version;
    let mut text = format!(
        "plan document {loc}: version {} (S3 version {}, written {})\n",
        v.label(),
        v.version_id,
        time(v.modified)
    );
    for r in &loaded.refused {
        text.push_str(&format!(
            "  newer version {} ({}) is refused and not followed: {}\n",
            r.version.label(),
            time(r.version.modified),
            r.error
        ));
    }
    let version = json!({"label": v.label(), "s3_version_id": v.version_id, "written": time(v.modified),
                         "refused": loaded.refused.iter().map(|r| json!({"label": r.version.label(),
                             "written": time(r.version.modified), "error": r.error})).collect::<Vec<_>>()});
    let assigned = fleet.assignments(&loaded.document);
    let Some(wanted) = resource else {
        let (plans, plans_text) = describe(&loaded.document, now);
        text.push_str(&plans_text);
        let mut members = Vec::new();
        for (kind, id, plan) in &assigned {
            let shown = match plan {
                Ok(Some(p)) => format!("plan {p}"),
                Ok(None) => "in no plan (not backed up by any plan)".to_owned(),
                Err(e) => format!("REFUSED: {e}"),
            };
            text.push_str(&format!("{} {id}: {shown}\n", kind.noun()));
            members.push(
                json!({"kind": kind.noun(), "id": id, "plan": plan.as_ref().ok().cloned().flatten(),
                                "problem": plan.as_ref().err()}),
            );
        }
        return Ok(Done {
            json: json!({"command": "plan show", "document": loc.to_string(), "version": version,
                         "plans": plans, "resources": members}),
            text,
        });
    };
    let bucket = export_bucket(source);
    let st = standing(&c, &loaded.document, &fleet, wanted, bucket.as_deref(), now)
        .await
        .map_err(|e| match e {
            StandingError::NotFound(_) => CliError::NotFound(e.to_string()),
            StandingError::Undecided(why) => CliError::Refused(why),
            StandingError::Aws(e) => CliError::Gather(e),
        })?;
    let (kind, id) = (st.kind, st.resource.as_str());
    match &st.plan {
        None => text.push_str(&format!("{kind} {id}: in no plan; nothing backs it up on a schedule\n")),
        Some(plan) => text.push_str(&format!("{kind} {id}: plan {plan}\n")),
    }
    if let Some(why) = &st.no_backups {
        text.push_str(&format!("  not backed up by policy: {why}\n"));
    }
    for r in &st.rules {
        let last_text = match &r.last {
            Some(Last { time: Some(t), outcome }) => {
                format!("{t} {outcome}{}", if r.late == Some(true) { " LATE" } else { "" })
            }
            Some(Last { time: None, outcome }) => outcome.clone(),
            None => "never".to_owned(),
        };
        text.push_str(&format!(
            "  {:<22} next {:<18} last {last_text}\n",
            r.rule,
            r.next.as_deref().unwrap_or("-")
        ));
    }
    let mut json = json!({"command": "plan show", "document": loc.to_string(), "version": version});
    if let (Some(out), Ok(Value::Object(standing))) = (json.as_object_mut(), serde_json::to_value(&st)) {
        out.extend(standing);
    }
    Ok(Done { json, text })
}

fn unversioned(loc: &Location) -> String {
    format!(
        "bucket {} does not have versioning enabled; S3 must keep the previous version so that it keeps working if \
         a new one is bad (aws s3api put-bucket-versioning --bucket {} --versioning-configuration Status=Enabled)",
        loc.bucket, loc.bucket
    )
}

enum Mode {
    DryRun,
    Apply { accept_expiry: bool },
}

/// `lifeboat plan diff FILE` and `lifeboat plan apply FILE`.
async fn change(file: &Path, source: &PlanSource, profile: Option<&str>, mode: Mode) -> Result<Done, CliError> {
    let (bytes, new) = read_document(file)?;
    let loc = location(source)?;
    let c = clients(profile).await;
    // Listed once: what is in force, and whether the bucket keeps versions, are both read from it.
    let listed = store::list_versions(&c.s3, &loc).await.map_err(CliError::Gather)?;
    let current = in_force(&c.s3, &loc, &listed).await?;
    let fleet = fleet(&c).await?;
    let now = Utc::now();
    let new_label = PlanVersion::new("", now, &bytes).label().to_owned();
    let mut text = match &current {
        Some(l) => format!(
            "plan document {loc}: in force {} (written {}); new {new_label}\n",
            l.version.label(),
            time(l.version.modified)
        ),
        None => format!("plan document {loc}: nothing in force yet; new {new_label}\n"),
    };
    let empty = Document {
        format: new.format,
        description: None,
        plans: BTreeMap::new(),
    };
    let old = current.as_ref().map(|l| &l.document).unwrap_or(&empty);

    let changes = field_changes(old, &new);
    text.push_str(&format!("{} field(s) change\n", changes.len()));
    for ch in &changes {
        text.push_str(&format!(
            "  {}: {} -> {}\n",
            ch.path,
            ch.old.as_deref().unwrap_or("(absent)"),
            ch.new.as_deref().unwrap_or("(absent)")
        ));
    }

    // With nothing in force, a tag names no plan yet: every resource was in none.
    let before: BTreeMap<String, Result<Option<String>, String>> = match &current {
        Some(_) => fleet.assignments(old).into_iter().map(|(_, id, p)| (id, p)).collect(),
        None => BTreeMap::new(),
    };
    let mut moves = Vec::new();
    let mut problems = Vec::new();
    let mut unplanned = Vec::new();
    let after_all = fleet.assignments(&new);
    for (kind, id, after) in after_all.iter().map(|(k, i, a)| (*k, i.as_str(), a)) {
        match after {
            Err(e) => problems.push(e.clone()),
            Ok(None) => unplanned.push(format!("{} {id}", kind.noun())),
            Ok(Some(_)) => {}
        }
        let was = before.get(id).cloned().unwrap_or(Ok(None));
        if was.as_ref().ok() != after.as_ref().ok() {
            let name = |p: &Result<Option<String>, String>| match p {
                Ok(Some(p)) => p.clone(),
                Ok(None) => "(none)".to_owned(),
                Err(_) => "(refused)".to_owned(),
            };
            moves.push(json!({"kind": kind.noun(), "id": id, "from": name(&was), "to": name(after)}));
            text.push_str(&format!(
                "  {} {id}: plan {} -> {}\n",
                kind.noun(),
                name(&was),
                name(after)
            ));
        }
    }
    if !unplanned.is_empty() {
        text.push_str(&format!(
            "in no plan under the new document: {}\n",
            unplanned.join(", ")
        ));
    }

    // The snapshots each database's new retention expires and its current one keeps.
    let gfs = |doc: &Document, plan: &Result<Option<String>, String>| {
        plan.as_ref().ok().cloned().flatten().and_then(|p| {
            doc.plans
                .get(&p)
                .and_then(|p| p.snapshots.as_ref())
                .map(|s| s.retention.gfs())
        })
    };
    let mut expiring = Vec::new();
    for (kind, id, after) in after_all.iter().map(|(k, i, a)| (*k, i.as_str(), a)) {
        if kind != Resource::Database {
            continue;
        }
        let (old_gfs, new_gfs) = (gfs(old, before.get(id).unwrap_or(&Ok(None))), gfs(&new, after));
        if new_gfs.is_none() || old_gfs == new_gfs {
            continue;
        }
        let Some(db) = fleet.databases.iter().find(|d| d.id == id) else {
            continue;
        };
        let snaps = snapshots::list_for_db(&c.rds, &db.id, db.kind)
            .await
            .map_err(CliError::Gather)?;
        for s in newly_expired(&snaps, old_gfs.as_ref(), new_gfs.as_ref(), now) {
            expiring.push(json!({"database": id, "snapshot": s.id, "time": time(s.logical_time())}));
            text.push_str(&format!("  would expire: {id} {} ({})\n", s.id, time(s.logical_time())));
        }
    }
    text.push_str(&format!(
        "{} snapshot(s) would expire under the new retention\n",
        expiring.len()
    ));
    for p in &problems {
        text.push_str(&format!("  problem: {p}\n"));
    }

    let mut json = json!({
        "command": match mode { Mode::DryRun => "plan diff", Mode::Apply { .. } => "plan apply" },
        "document": loc.to_string(),
        "in_force": current.as_ref().map(|l| l.version.label()),
        "new": new_label,
        "changes": changes,
        "moves": moves,
        "unplanned": unplanned,
        "would_expire": expiring,
        "problems": problems,
        "applied": false,
    });
    let Mode::Apply { accept_expiry } = mode else {
        return Ok(Done { json, text });
    };
    if !problems.is_empty() {
        return Err(CliError::Refused(format!(
            "not applied: {} resource(s) would follow no single plan: {}",
            problems.len(),
            problems.join("; ")
        )));
    }
    if !expiring.is_empty() && !accept_expiry {
        return Err(CliError::Refused(format!(
            "not applied: the new retention would expire {} snapshot(s) the current one keeps (see `lifeboat plan \
             diff`); apply again with --accept-expiry once they are meant to go",
            expiring.len()
        )));
    }
    // Versioning is read from the versions themselves (an object in an unversioned bucket lists as version
    // `null`), which every S3-compatible store answers alike; a replacement there would lose the previous version.
    if listed.iter().any(|v| v.version_id == "null") {
        return Err(CliError::Refused(format!("not applied: {}", unversioned(&loc))));
    }
    let put =
        c.s3.put_object()
            .bucket(&loc.bucket)
            .key(&loc.key)
            .content_type("application/json")
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| CliError::Gather(Error::aws("PutObject", e)))?;
    let version_id = put.version_id().unwrap_or("null").to_owned();
    if version_id == "null" {
        // The first document in an unversioned bucket: nothing was replaced, and the next apply is refused.
        eprintln!("lifeboat: warning: {}", unversioned(&loc));
    }
    text.push_str(&format!(
        "applied: version {new_label} (S3 version {version_id}); the functions follow it from their next run\n"
    ));
    json["applied"] = json!(true);
    json["s3_version_id"] = json!(version_id);
    Ok(Done { json, text })
}
