//! The demo's last chapter: the fleet's policy written as a plan document (`examples/plans/three-environments.json`),
//! checked, stored as a versioned object, and reviewed against what the story made, the way
//! `lifeboat plan check`, `lifeboat plan apply` and `lifeboat plan diff` do it (the same library calls).
//!
//! The functions above ran as a local run without `LIFEBOAT_PLAN_DOCUMENT` does, on settings from their
//! environment (the deployed stack always has a plan document); this chapter shows what the same fleet looks like
//! under the plan: who follows which plan, each rule's next run and alarm threshold, and which of the story's
//! snapshots the plan's retention would expire.

use chrono::{DateTime, Utc};
use lifeboat::plans::change::newly_expired;
use lifeboat::plans::document::parse;
use lifeboat::plans::due::next_runs;
use lifeboat::plans::membership::{plan_of, Resource};
use lifeboat::plans::store::{self, Location, PlanVersion};
use lifeboat::rds::retention::Gfs;
use lifeboat::rds::{selection, snapshots};

use super::{heading, World, REGION, RETENTION};
use crate::repo_root;

/// The versioned bucket the plan document lives in (the stack's `PlanBucket`).
pub const CONFIG_BUCKET: &str = "lifeboat-demo-config";
/// Which plan each database of the demo's fleet follows, as its `lifeboat:plan` tag.
pub const PLANS: [(&str, &str); 5] = [
    ("app-prod", "production"),
    ("billing", "production"),
    ("analytics", "production"),
    ("app-staging", "staging"),
    ("sandbox", "dev"),
];

fn hours(d: chrono::Duration) -> String {
    format!("{:.1} h", d.num_minutes() as f64 / 60.0)
}

/// Returns how many of the story's snapshots the plan would expire (the demo's test reads it).
pub async fn chapter(w: &World, now: DateTime<Utc>) -> usize {
    let path = repo_root().join("examples/plans/three-environments.json");
    heading("The same policy as a plan document: examples/plans/three-environments.json");
    let bytes = std::fs::read(&path).unwrap();
    let doc = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (name, plan) in &doc.plans {
        if let Some(why) = &plan.no_backups {
            println!("  plan {name}: not backed up ({why})");
            continue;
        }
        println!("  plan {name}:");
        let next: std::collections::BTreeMap<_, _> = next_runs(&doc, name, now).into_iter().collect();
        for rule in plan.rules() {
            let when = rule.schedule.map_or_else(String::new, |s| format!("`{s}`"));
            let next = next.get(&rule.id).copied().flatten();
            println!(
                "    {:<16} {:<20} next {:<22} monitor alarms after {}",
                rule.id,
                when,
                next.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                hours(rule.max_age())
            );
        }
    }

    // Stored as lifeboat plan apply stores it: a new version of a versioned object.
    let config = w.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    let rds = aws_sdk_rds::Client::new(&config);
    crate::plans::versioned_bucket(&s3, CONFIG_BUCKET).await;
    let location = Location {
        bucket: CONFIG_BUCKET.into(),
        key: "lifeboat/plans.json".into(),
    };
    s3.put_object()
        .bucket(&location.bucket)
        .key(&location.key)
        .body(bytes.clone().into())
        .send()
        .await
        .unwrap();
    let loaded = store::load(&s3, &location).await.unwrap();
    assert_eq!(loaded.version.label(), PlanVersion::new("", now, &bytes).label());
    println!(
        "  stored at {location} (versioned): version {} is in force; a bad upload would be refused and this one kept",
        loaded.version.label()
    );

    // Who follows which plan: the tag on each database.
    for (db, plan) in PLANS {
        let arn = selection::discover(&rds)
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.id == db)
            .map(|d| d.arn)
            .unwrap();
        rds.add_tags_to_resource()
            .resource_name(arn)
            .tags(
                aws_sdk_rds::types::Tag::builder()
                    .key("lifeboat:plan")
                    .value(plan)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    heading("lifeboat plan diff, as a dry-run: what following it would change for the story's snapshots");
    let template = Gfs::parse(RETENTION).unwrap();
    let mut expiring = 0;
    for db in selection::discover(&rds)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.cluster.is_none())
    {
        let plan = plan_of(&loaded.document, Resource::Database, &db.id, &db.tags).unwrap();
        let Some(plan) = plan else {
            println!("  {}: in no plan (monitor would report it)", db.id);
            continue;
        };
        let rule = loaded.document.plans[plan].snapshots.as_ref();
        let Some(rule) = rule else {
            println!("  {}: plan {plan}, which takes no snapshots", db.id);
            continue;
        };
        let snaps = snapshots::list_for_db(&rds, &db.id, db.kind).await.unwrap();
        let gone = newly_expired(&snaps, Some(&template), Some(&rule.retention.gfs()), now);
        expiring += gone.len();
        println!(
            "  {}: plan {plan}, retention {} instead of the template's {RETENTION}: {} snapshot(s) would expire",
            db.id,
            rule.retention.gfs(),
            gone.len()
        );
    }
    println!(
        "  apply it with `lifeboat plan apply examples/plans/three-environments.json --document s3://{CONFIG_BUCKET}/lifeboat/plans.json`{}",
        if expiring > 0 { " --accept-expiry (it would expire snapshots)" } else { "" }
    );
    expiring
}
