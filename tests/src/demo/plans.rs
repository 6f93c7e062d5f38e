//! The plan in force, as `lifeboat plan show` and `lifeboat plan apply` see it: the document read back from its
//! versioned object (the same library calls the functions make at every tick), each plan's rules with their
//! next run and the age at which monitor alarms, and the version in force.

use chrono::{DateTime, Utc};
use lifeboat::plans::due::next_runs;
use lifeboat::plans::store::{self, Location};

use super::{PLAN_BUCKET, PLAN_KEY};

fn hours(d: chrono::Duration) -> String {
    format!("{:.1} h", d.num_minutes() as f64 / 60.0)
}

/// Prints the plan document in force in the demo's plan bucket as of `now`.
pub async fn print(s3: &aws_sdk_s3::Client, now: DateTime<Utc>) {
    let location = Location {
        bucket: PLAN_BUCKET.into(),
        key: PLAN_KEY.into(),
    };
    let loaded = store::load(s3, &location)
        .await
        .unwrap_or_else(|e| panic!("the demo's plan document is refused: {e}"));
    let doc = &loaded.document;
    for (name, plan) in &doc.plans {
        let members: Vec<&str> = plan.databases.iter().chain(&plan.caches).map(String::as_str).collect();
        if let Some(why) = &plan.no_backups {
            println!("  plan {name} ({}): not backed up ({why})", members.join(", "));
            continue;
        }
        println!("  plan {name} ({}):", members.join(", "));
        let next: std::collections::BTreeMap<_, _> = next_runs(doc, name, now).into_iter().collect();
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
    println!(
        "  stored at {location} (versioned): version {} is in force; `lifeboat plan apply` stores the next one, and \
         a bad upload is refused with this one kept",
        loaded.version.label()
    );
}
