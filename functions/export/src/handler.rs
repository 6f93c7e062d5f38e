//! The `export` handler: parse the event, and either hand it on (the `copy-caches` action to `caches.rs`, a plan
//! tick to `plan.rs`) or resolve the databases and profile it asks for and run their exports (`batch.rs`).
//! The rules (admission, deadline, versions, hosts, tables, part sizes, profiles) are in
//! `lifeboat::postgres::export`.

use std::time::Instant;

use chrono::Utc;
use lifeboat::core::error::Error;
use lifeboat::postgres::export as rules;
use lifeboat::rds::selection::{self, Database, Selector};
use serde_json::Value;

use crate::batch::{conclude, export_all, Run};
use crate::deps::Deps;
use crate::event::{self, Trigger};
use crate::plan::ManualProfiles;
use crate::settings::ExportSettings;

pub use crate::batch::{peak_rss_bytes, ExportReport, Outcome, Summary, DEADLINE_MARGIN};

/// The function's entry: the `copy-caches` action (`caches.rs`), a plan tick (`plan.rs`), or an export; the
/// run's summary as JSON.
pub async fn invoke(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Value, Error> {
    let json = match event::parse(payload.clone())? {
        Trigger::CopyCaches { caches } => serde_json::to_value(crate::caches::handle(deps, caches, deadline).await?),
        Trigger::PlanTick { time } => serde_json::to_value(crate::plan::tick(deps, time, deadline).await?),
        _ => serde_json::to_value(handle(deps, payload, deadline).await?),
    };
    // Plain numbers and strings always serialize; should that ever change, say so rather than hide it.
    json.map_err(|e| Error::PartialFailure(format!("the run finished but its summary did not serialize: {e}")))
}

pub async fn handle(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Result<Summary, Error> {
    let started = Instant::now();
    let trigger = event::parse(payload)?;
    let all = selection::discover(&deps.rds).await?;
    // Under a plan document a manual export's profiles are its database's plan's (`plan::manual_profiles`).
    let planned = match (&deps.settings.plan, &trigger) {
        (Some(location), Trigger::Manual { database, .. }) => {
            Some(crate::plan::manual_profiles(deps, location, database, &all).await?)
        }
        _ => None,
    };
    let run = resolve(&deps.settings, trigger, &all, planned)?;
    conclude(export_all(deps, run, deadline, &mut false, started).await)
}

fn resolve(
    settings: &ExportSettings,
    trigger: Trigger,
    all: &[Database],
    planned: Option<ManualProfiles>,
) -> Result<Run, Error> {
    if settings.plan.is_some() && matches!(trigger, Trigger::Schedule { .. }) {
        return Err(Error::InvalidEvent(
            "a scheduled export names its profile, and under a plan document (LIFEBOAT_PLAN_DOCUMENT) the plan \
             says what runs when: send a plan tick (a Scheduled Event) instead"
                .into(),
        ));
    }
    let (trigger, requested, tables, at, selector) = match trigger {
        Trigger::Schedule {
            profile,
            time,
            databases,
        } => {
            let selector = match databases {
                Some(list) => Selector {
                    databases: list,
                    tag: None,
                },
                None => settings.common.selector.clone(),
            };
            ("schedule", Some(profile), Vec::new(), time, selector)
        }
        Trigger::Manual {
            database,
            profile,
            tables,
        } => {
            let selector = Selector {
                databases: vec![database],
                tag: None,
            };
            ("manual", profile, tables, Utc::now(), selector)
        }
        Trigger::CopyCaches { .. } | Trigger::PlanTick { .. } => {
            return Err(Error::InvalidEvent(
                "copy-caches and plan ticks are not one export: invoke the entry (`invoke`), not `handle`".into(),
            ))
        }
    };
    let (profiles, followed) = match planned {
        Some(p) => (p.profiles, p.followed),
        None => (settings.profiles.clone(), None),
    };
    let (profile_name, profile) = rules::choose_profile(&profiles, requested, tables)
        .map_err(|unknown| Error::InvalidEvent(unknown.to_string()))?;
    Ok(Run {
        trigger,
        profile_name,
        profile,
        at,
        selection: selection::select(all, &selector),
        followed,
    })
}
