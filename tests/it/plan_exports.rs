//! The `export` function following a plan document (plan mode) against moto (S3, Secrets Manager, RDS) and a
//! real PostgreSQL: `examples/plans/product-pgvector.json`, its database id replaced by the test database's, run
//! for a week of plan ticks, and checked against what the written policy says: `full` daily with every table,
//! `critical` every 6 hours with only its four tables' data, `embeddings` on Sunday only, nothing made twice,
//! exports past `keep_days` expired (the newest is always kept: `lifeboat::plans::export_expiry`'s tests), every
//! manifest naming the plan and version it followed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use export::Deps;
use lifeboat::bucket::manifest::Manifest;
use lifeboat::plans::store::PlanVersion;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const PLAN_BUCKET: &str = "lifeboat-plans";
const PLAN_KEY: &str = "lifeboat/plans.json";
/// The database the example's `product-db` becomes.
const DB: &str = "product-test";
const CRITICAL: [&str; 4] = ["interaction_events", "moderated_syntheses", "projects", "users"];
const ALL_TABLES: [&str; 6] = [
    "billing_events",
    "context_chunks",
    "interaction_events",
    "moderated_syntheses",
    "projects",
    "users",
];

/// The product database: the four critical tables (with the foreign keys between them), the embeddings table
/// (vectors as arrays: the policy is about the table, not the extension), and one table only `full` holds.
const SCHEMA: &str = r"
create table users (id int primary key, email text);
create table projects (id int primary key, owner int references users(id), name text);
create table interaction_events (id int primary key, project int references projects(id), kind text);
create table moderated_syntheses (id int primary key, project int references projects(id), body text);
create table context_chunks (id int primary key, project_id int, embedding real[]);
create table billing_events (id int primary key, amount int);
insert into users select g, 'u' || g || '@example.com' from generate_series(1, 20) g;
insert into projects select g, 1 + g % 20, 'p' || g from generate_series(1, 10) g;
insert into interaction_events select g, 1 + g % 10, 'click' from generate_series(1, 50) g;
insert into moderated_syntheses select g, 1 + g % 10, 'ok' from generate_series(1, 5) g;
insert into context_chunks select g, 1 + g % 10, array[g, g * 2, g * 3]::real[] from generate_series(1, 30) g;
insert into billing_events select g, g * 100 from generate_series(1, 7) g;
";

struct World {
    moto: Moto,
    _pg: Postgres,
    deps: Deps,
    /// The real time the function sees (unix seconds): each tick below runs on time, so the helper sets it to
    /// the tick's time before invoking, and a month of ticks runs in minutes.
    clock: Arc<AtomicI64>,
    /// The example document as uploaded (its database id replaced).
    plan: Vec<u8>,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn example_plan() -> Vec<u8> {
    let text = String::from_utf8(lifeboat_tests::plans::example("product-pgvector")).unwrap();
    assert!(
        text.contains("\"product-db\""),
        "the example names its database product-db"
    );
    text.replace("\"product-db\"", &format!("\"{DB}\"")).into_bytes()
}

async fn world() -> World {
    world_with(example_plan()).await
}

async fn world_with(plan: Vec<u8>) -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database product").unwrap();
    pg.psql("product", SCHEMA).unwrap();

    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    for bucket in [BUCKET, PLAN_BUCKET] {
        lifeboat_tests::plans::versioned_bucket(&s3, bucket).await;
    }
    upload_plan(&s3, &plan).await;
    lifeboat_tests::plans::database_on(&config, &pg, DB, "product", &[]).await;
    // In no plan (not listed, not tagged): a plan tick never exports it, whatever the legacy selection says.
    lifeboat_tests::plans::database_on(&config, &pg, "unplanned-db", "product", &[("lifeboat:backup", "true")]).await;
    let document = format!("s3://{PLAN_BUCKET}/{PLAN_KEY}");
    let (deps, clock) = lifeboat_tests::plans::export_deps(&config, BUCKET, &document);
    World {
        moto,
        _pg: pg,
        deps,
        clock,
        plan,
    }
}

/// A new version of the plan document. S3 orders versions by time: a second passes between two uploads.
async fn upload_plan(s3: &aws_sdk_s3::Client, body: &[u8]) {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s3.put_object()
        .bucket(PLAN_BUCKET)
        .key(PLAN_KEY)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap();
}

fn label(body: &[u8]) -> String {
    PlanVersion::new("", Utc::now(), body).label().to_owned()
}

async fn tick(w: &World, t: DateTime<Utc>) -> Value {
    w.clock.store(t.timestamp(), Ordering::SeqCst);
    export::invoke(&w.deps, lifeboat_tests::plans::tick(t), None)
        .await
        .unwrap_or_else(|e| panic!("tick at {t}: {e}"))
}

/// Every current key under `exports/`.
async fn export_keys(w: &World) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut pages = w
        .deps
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("exports/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        out.extend(
            page.unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    out
}

/// The complete exports of a profile, by time, with their manifests.
async fn manifests(w: &World, profile: &str) -> BTreeMap<DateTime<Utc>, Manifest> {
    let mut out = BTreeMap::new();
    for key in export_keys(w).await {
        if key.starts_with(&format!("exports/{DB}/{profile}/")) && key.ends_with(".manifest.json") {
            let m: Manifest = lifeboat::bucket::layout::get_json(&w.deps.s3, BUCKET, &key)
                .await
                .unwrap();
            out.insert(m.logical_time, m);
        }
    }
    out
}

fn tables_with_data(m: &Manifest) -> Vec<String> {
    m.tables.iter().map(|t| t.name.clone()).collect()
}

/// The tables whose data the stored archive itself holds, as `pg_restore --list` reads it (not the manifest's
/// word for it).
async fn data_in_archive(w: &World, m: &Manifest) -> Vec<String> {
    let out = w
        .deps
        .s3
        .get_object()
        .bucket(BUCKET)
        .key(&m.stored.key)
        .send()
        .await
        .unwrap();
    let bytes = out.body.collect().await.unwrap().into_bytes();
    let dir = tempfile::tempdir().unwrap();
    let (zst, dump) = (dir.path().join("a.dump.zst"), dir.path().join("a.dump"));
    std::fs::write(&zst, &bytes).unwrap();
    let status = std::process::Command::new("zstd")
        .args(["-d", "-q", "-o"])
        .arg(&dump)
        .arg(&zst)
        .status()
        .expect("zstd is needed (make test installs it)");
    assert!(status.success());
    let list = std::process::Command::new(postgres::bin_dir().join("pg_restore"))
        .arg("--list")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(list.status.success());
    let mut tables: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once(" TABLE DATA ")
                .map(|(_, rest)| rest.split_whitespace().nth(1).unwrap().to_owned())
        })
        .collect();
    tables.sort();
    tables
}

/// The maxima of a metric (with the given dimensions) published in the last minutes.
async fn metric(w: &World, name: &str, dims: &[(&str, &str)]) -> Vec<f64> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let cw = aws_sdk_cloudwatch::Client::new(&w.moto.config(REGION));
    let now = std::time::SystemTime::now();
    let mut req = cw
        .get_metric_statistics()
        .namespace("Lifeboat")
        .metric_name(name)
        .start_time(DateTime::from(now - std::time::Duration::from_secs(600)))
        .end_time(DateTime::from(now + std::time::Duration::from_secs(600)))
        .period(60)
        .statistics(Statistic::Maximum);
    for (k, v) in dims {
        req = req.dimensions(Dimension::builder().name(*k).value(*v).build());
    }
    let out = req.send().await.unwrap();
    out.datapoints().iter().filter_map(|d| d.maximum()).collect()
}

/// Every quarter hour from `start` to `end` inclusive.
fn quarters(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = start;
    while t <= end {
        out.push(t);
        t += Duration::minutes(15);
    }
    out
}

/// The quarter hours the written policy makes due: 02:00 every day, 00/06/12/18:00 every day, Sunday 01:00.
fn due_by_the_written_policy(t: DateTime<Utc>) -> bool {
    use chrono::{Datelike, Timelike, Weekday};
    let (h, m) = (t.hour(), t.minute());
    m == 0 && (h == 2 || h % 6 == 0 || (h == 1 && t.weekday() == Weekday::Sun))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_ticks_makes_keeps_and_expires_exactly_what_the_product_policy_says() {
    let w = world().await;
    let version = label(&w.plan);
    // Monday 2026-12-07 00:00 to Thursday 2027-01-07 06:00 UTC: a month and a day, so that every profile's
    // keep_days is passed at least once (Sundays are Dec 13, 20, 27 and Jan 3).
    let end = at("2027-01-07T06:00:00Z");
    let all = quarters(at("2026-12-07T00:00:00Z"), end);
    let mut expired = Vec::new();
    for (i, t) in all.iter().enumerate() {
        let due = due_by_the_written_policy(*t);
        // Every due tick, and one idle tick in seven (spread over every hour and quarter).
        if !due && i % 7 != 0 {
            continue;
        }
        let before = export_keys(&w).await;
        let summary = tick(&w, *t).await;
        assert_eq!(summary["plan_version"], version.as_str(), "{summary}");
        if !due {
            assert_eq!(summary["due"], json!([]), "{t}: {summary}");
            assert_eq!(export_keys(&w).await, before, "an idle tick at {t} wrote something");
            continue;
        }
        for e in summary["expired"].as_array().unwrap() {
            expired.push((e["profile"].as_str().unwrap().to_owned(), at(e["at"].as_str().unwrap())));
        }
        for run in summary["exports"].as_array().unwrap() {
            let dbs: Vec<&str> = run["exports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["db"].as_str().unwrap())
                .collect();
            assert_eq!(dbs, [DB], "only the plan's database, never unplanned-db: {run}");
            assert_eq!(run["exports"][0]["outcome"], "exported", "{run}");
        }
    }

    // Redelivered (and late) ticks find their exports there and make nothing twice.
    let before = export_keys(&w).await;
    for t in [
        "2027-01-06T02:00:00Z",
        "2027-01-06T02:07:31Z",
        "2027-01-03T01:00:00Z",
        "2027-01-07T06:00:00Z",
    ] {
        let summary = tick(&w, at(t)).await;
        for run in summary["exports"].as_array().unwrap() {
            assert_eq!(run["exports"][0]["outcome"], "already_exported", "{t}: {run}");
        }
    }
    assert_eq!(export_keys(&w).await, before, "a redelivered tick wrote something");

    // Each profile's runs by the written policy, and which of them its keep_days still keeps at the end: expiry
    // runs after each due run of the profile, and keeps an export exactly keep_days old.
    let runs_of = |first: &str, every: Duration| -> Vec<DateTime<Utc>> {
        let mut out = vec![at(first)];
        while *out.last().unwrap() + every <= end {
            out.push(*out.last().unwrap() + every);
        }
        out
    };
    let kept = |runs: &[DateTime<Utc>], keep: Duration| -> (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) {
        let last = *runs.last().unwrap();
        runs.iter().partition(|t| **t >= last - keep)
    };
    let full_runs = runs_of("2026-12-07T02:00:00Z", Duration::days(1));
    let critical_runs = runs_of("2026-12-07T00:00:00Z", Duration::hours(6));
    let embedding_runs = runs_of("2026-12-13T01:00:00Z", Duration::weeks(1));
    assert_eq!(
        (full_runs.len(), critical_runs.len(), embedding_runs.len()),
        (32, 126, 4)
    );
    let (full_kept, full_gone) = kept(&full_runs, Duration::days(30));
    let (critical_kept, critical_gone) = kept(&critical_runs, Duration::days(7));
    let (embeddings_kept, embeddings_gone) = kept(&embedding_runs, Duration::days(28));
    assert_eq!(
        (full_gone.len(), critical_gone.len(), embeddings_gone.len()),
        (1, 97, 0)
    );

    // full: every table's data, kept 30 days.
    let full = manifests(&w, "full").await;
    assert_eq!(full.keys().copied().collect::<Vec<_>>(), full_kept);
    for m in full.values() {
        assert_eq!(tables_with_data(m), ALL_TABLES);
    }
    // critical: its four tables, kept 7 days.
    let critical = manifests(&w, "critical").await;
    assert_eq!(critical.keys().copied().collect::<Vec<_>>(), critical_kept);
    for m in critical.values() {
        assert_eq!(
            tables_with_data(m),
            CRITICAL,
            "critical holds only its four tables' data"
        );
    }
    let mut expected_expired: Vec<(String, DateTime<Utc>)> = full_gone
        .iter()
        .map(|t| ("full".to_owned(), *t))
        .chain(critical_gone.iter().map(|t| ("critical".to_owned(), *t)))
        .collect();
    expected_expired.sort();
    expired.sort();
    assert_eq!(expired, expected_expired);
    let expiries = metric(&w, "ExportsExpired", &[("DBIdentifier", DB), ("Profile", "critical")]).await;
    // One critical export expires after each of its runs once the first is 7 days old: the figure is 1 per run.
    assert_eq!(expiries.iter().copied().fold(0.0, f64::max), 1.0, "{expiries:?}");
    assert_eq!(
        data_in_archive(&w, &critical[critical_kept.last().unwrap()]).await,
        CRITICAL
    );
    assert_eq!(data_in_archive(&w, &full[full_kept.last().unwrap()]).await, ALL_TABLES);
    // embeddings: Sunday 01:00 only, context_chunks' data only, all four within 28 days.
    let embeddings = manifests(&w, "embeddings").await;
    assert_eq!(embeddings.keys().copied().collect::<Vec<_>>(), embeddings_kept);
    let m = &embeddings[&embedding_runs[0]];
    assert_eq!(tables_with_data(m), ["context_chunks"]);
    assert_eq!(m.tables[0].rows, 30);
    assert_eq!(data_in_archive(&w, m).await, ["context_chunks"]);
    // Every manifest names the plan and version it followed.
    for m in full.values().chain(critical.values()).chain(embeddings.values()) {
        assert_eq!(
            (m.plan.as_deref(), m.plan_version.as_deref()),
            (Some("product"), Some(version.as_str()))
        );
    }
    // Nothing of unplanned-db, and the expired export's archive and manifest are gone from the listing but kept
    // as noncurrent versions under a delete marker: hidden, not destroyed.
    // Each export has the content watch's record beside its manifest.
    let (watches, keys): (BTreeSet<String>, BTreeSet<String>) = export_keys(&w)
        .await
        .into_iter()
        .partition(|k| k.ends_with(".watch.json"));
    for k in keys.iter().filter(|k| k.ends_with(".manifest.json")) {
        assert!(
            watches.contains(&lifeboat::watch::run::watch_key(k).unwrap()),
            "{k} has no watch record"
        );
    }
    assert!(
        keys.iter().all(|k| k.starts_with(&format!("exports/{DB}/"))),
        "{keys:?}"
    );
    assert_eq!(
        keys.len(),
        2 * (full_kept.len() + critical_kept.len() + embeddings_kept.len()),
        "an archive and a manifest per export: {keys:?}"
    );
    let (dump, manifest) = lifeboat::bucket::layout::export_keys(DB, "critical", critical_gone[0], false);
    assert!(!keys.contains(&dump) && !keys.contains(&manifest));
    let prefix = format!("exports/{DB}/critical/2026/12/07/");
    lifeboat_tests::plans::assert_hidden(&w.deps.s3, BUCKET, &prefix, &[dump, manifest]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plan_version_takes_effect_at_the_next_tick_and_an_invalid_one_is_passed_over() {
    let w = world().await;
    tick(&w, at("2026-12-13T01:00:00Z")).await;
    tick(&w, at("2026-12-13T02:00:00Z")).await;
    // Version 2 keeps embeddings 1 day instead of 28; version 3, newer, is invalid.
    let v2 = String::from_utf8(w.plan.clone())
        .unwrap()
        .replace(
            "\"include\": [\"context_chunks\"], \"keep_days\": 28",
            "\"include\": [\"context_chunks\"], \"keep_days\": 1",
        )
        .into_bytes();
    assert_ne!(
        v2, w.plan,
        "the example's embeddings rule changed shape: adapt this test"
    );
    upload_plan(&w.deps.s3, &v2).await;
    upload_plan(&w.deps.s3, b"{\"format\": 1, \"plans\": {\"product\": {}}}").await;

    let summary = tick(&w, at("2026-12-20T01:00:00Z")).await;
    assert_eq!(summary["plan_version"], label(&v2).as_str());
    assert_eq!(summary["refused_versions"].as_array().unwrap().len(), 1, "{summary}");
    // The earlier ticks published 0 (maybe in an earlier minute); this one 1.
    let refused = metric(&w, "PlanVersionsRefused", &[]).await;
    assert_eq!(refused.iter().copied().fold(0.0, f64::max), 1.0, "{refused:?}");
    // The week-old embeddings export expired under the new keep_days; the new one is there and names v2.
    let embeddings = manifests(&w, "embeddings").await;
    assert_eq!(
        embeddings.keys().copied().collect::<Vec<_>>(),
        [at("2026-12-20T01:00:00Z")]
    );
    assert_eq!(
        embeddings.values().next().unwrap().plan_version.as_deref(),
        Some(label(&v2).as_str())
    );
    // Expiry touches only the profile that ran: the full export of the 13th is untouched.
    assert_eq!(manifests(&w, "full").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_whose_plan_cannot_be_decided_is_reported_and_the_others_proceed() {
    let w = world().await;
    let rds = aws_sdk_rds::Client::new(&w.moto.config(REGION));
    lifeboat_tests::plans::instance(&rds, "mistagged-db", &[("lifeboat:plan", "prodcut")], 1).await;
    let err = export::invoke(&w.deps, lifeboat_tests::plans::tick(at("2026-12-13T02:00:00Z")), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "database `mistagged-db` is tagged `lifeboat:plan=prodcut`, and the plan document has no plan `prodcut`"
        ),
        "{err}"
    );
    assert_eq!(
        manifests(&w, "full").await.len(),
        1,
        "product-test's export was made all the same"
    );
    assert_eq!(
        metric(&w, "PlanMembershipError", &[("DBIdentifier", "mistagged-db")]).await,
        [1.0]
    );
    assert_eq!(metric(&w, "PlanMembershipError", &[("DBIdentifier", DB)]).await, [0.0]);
    assert!(export_keys(&w).await.iter().all(|k| !k.contains("mistagged-db")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_valid_plan_version_exports_and_expires_nothing() {
    let w = world().await;
    tick(&w, at("2026-12-13T01:00:00Z")).await;
    let before = export_keys(&w).await;
    // Replace the only valid version's effect: delete every version, then upload an invalid one.
    let versions = w
        .deps
        .s3
        .list_object_versions()
        .bucket(PLAN_BUCKET)
        .send()
        .await
        .unwrap();
    for v in versions.versions() {
        w.deps
            .s3
            .delete_object()
            .bucket(PLAN_BUCKET)
            .key(PLAN_KEY)
            .version_id(v.version_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    upload_plan(&w.deps.s3, b"{\"format\": 1}").await;
    let err = export::invoke(&w.deps, lifeboat_tests::plans::tick(at("2027-03-07T01:00:00Z")), None)
        .await
        .unwrap_err();
    assert!(matches!(err, lifeboat::core::error::Error::Plan(_)), "{err}");
    assert_eq!(export_keys(&w).await, before);
    // A scheduled export naming its profile is refused in plan mode: the plan says what runs when.
    let err = export::invoke(
        &w.deps,
        json!({"profile": "full", "time": "2026-12-13T02:00:00Z"}),
        None,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("plan tick"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_rdb_copy_rule_runs_copy_caches_on_the_plans_caches_only() {
    // The product plan with an hourly RDB copy of its caches.
    let text = String::from_utf8(example_plan()).unwrap();
    let plan = text.replacen(
        "\"exports\": {",
        "\"rdb_copies\": {\"schedule\": \"0 * * * *\", \"keep_days\": 7},\n      \"exports\": {",
        1,
    );
    assert_ne!(plan, text);
    let w = world_with(plan.into_bytes()).await;
    lifeboat_tests::plans::cache(&w.deps.ec, "sessions", &[("lifeboat:plan", "product")]).await;
    // Selected the legacy way, in no plan: a plan tick leaves it alone.
    lifeboat_tests::plans::cache(&w.deps.ec, "unplanned-cache", &[("lifeboat:backup", "true")]).await;

    let summary = export::plan::tick(&w.deps, at("2026-12-13T03:00:00Z"), None)
        .await
        .unwrap();
    let due: Vec<&str> = summary.due.iter().map(|d| d.rule.as_str()).collect();
    assert_eq!(due, ["rdb_copies"]);
    assert!(summary.exports.is_empty(), "no export is due at 03:00");
    let copied = summary.caches.expect("the copy-caches action ran");
    let caches: Vec<&str> = copied.caches.iter().map(|c| c.cache.as_str()).collect();
    assert_eq!(caches, ["sessions"]);
    assert_eq!(copied.caches[0].outcome, export::caches::CopyOutcome::NoSnapshot);
    // Between the hours nothing is due and the action does not run.
    let idle = export::plan::tick(&w.deps, at("2026-12-13T03:15:00Z"), None)
        .await
        .unwrap();
    assert!(idle.due.is_empty() && idle.caches.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_export_takes_its_profile_from_the_databases_plan() {
    let w = world().await;
    // `embeddings` is the product plan's rule: its tables, and the plan and version it followed, are the plan's.
    let summary = export::handler::handle(&w.deps, json!({"database": DB, "profile": "embeddings"}), None)
        .await
        .unwrap();
    assert_eq!(summary.trigger, "manual");
    assert_eq!(summary.exports[0].outcome, export::handler::Outcome::Exported);
    let made = manifests(&w, "embeddings").await;
    let m = made.values().next().expect("the manual export's manifest");
    assert_eq!(tables_with_data(m), ["context_chunks"]);
    assert_eq!(data_in_archive(&w, m).await, ["context_chunks"]);
    assert_eq!(m.plan.as_deref(), Some("product"));
    assert_eq!(m.plan_version.as_deref(), Some(label(&w.plan).as_str()));

    // A profile the database's plan does not have is refused, naming the ones it has; nothing is written.
    let before = export_keys(&w).await;
    let err = export::handler::handle(&w.deps, json!({"database": DB, "profile": "weekly"}), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("weekly") && err.contains("critical") && err.contains("embeddings"),
        "{err}"
    );
    assert_eq!(export_keys(&w).await, before);

    // A database in no plan can still be dumped whole by hand, following no plan.
    let summary = export::handler::handle(&w.deps, json!({"database": "unplanned-db"}), None)
        .await
        .unwrap();
    assert_eq!(summary.profile, "full");
    let key = &summary.exports[0].manifest_key;
    let m: Manifest = lifeboat::bucket::layout::get_json(&w.deps.s3, BUCKET, key)
        .await
        .unwrap();
    assert_eq!((m.plan, m.plan_version), (None, None));
}

/// What the copy-caches action leaves for a verified copy of `cache` taken at `at`: each shard's file, then the
/// manifest naming them.
async fn rdb_copy_in_bucket(w: &World, cache: &str, at: DateTime<Utc>, shards: u32) {
    use lifeboat::caches::records::{RdbManifest, RdbShard, FORMAT_VERSION};
    let keys = lifeboat::bucket::layout::rdb_keys(cache, at);
    let mut files = Vec::new();
    for shard in 1..=shards {
        let key = keys.object(shard);
        w.deps
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(b"REDIS0011".to_vec().into())
            .send()
            .await
            .unwrap();
        files.push(RdbShard {
            shard,
            key,
            size: 9,
            sha256: "0".repeat(64),
            rdb_version: 11,
            server_version: None,
            keys_per_db: BTreeMap::from([(0, 1)]),
            checksummed: true,
        });
    }
    let manifest = RdbManifest {
        format_version: FORMAT_VERSION,
        lifeboat_version: "test".into(),
        cache: cache.into(),
        engine: "redis".into(),
        engine_version: "7.1".into(),
        snapshot: format!("lifeboat-{cache}-{}", at.format("%Y%m%d-%H%M")),
        snapshot_time: at,
        copied_at: at + Duration::minutes(20),
        shards: files,
    };
    lifeboat_tests::plans::put_json(&w.deps.s3, BUCKET, &keys.manifest(), &manifest).await;
}

/// The plan's `rdb_copies.keep_days` decides how long a cache's RDB copies stay (no stack parameter): the tick
/// that runs the rule hides every copy older than 7 days behind delete markers (each shard's file and the
/// manifest; the versions stay), keeps the younger ones, and touches no other cache's copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_rdb_copy_rule_expires_the_plans_cache_copies_past_keep_days() {
    let text = String::from_utf8(example_plan()).unwrap();
    let plan = text.replacen(
        "\"exports\": {",
        "\"rdb_copies\": {\"schedule\": \"0 4 * * *\", \"keep_days\": 7},\n      \"exports\": {",
        1,
    );
    let w = world_with(plan.into_bytes()).await;
    lifeboat_tests::plans::cache(&w.deps.ec, "sessions", &[("lifeboat:plan", "product")]).await;
    lifeboat_tests::plans::cache(&w.deps.ec, "unplanned-cache", &[("lifeboat:backup", "true")]).await;
    let days: Vec<DateTime<Utc>> = (1..=12).map(|d| at(&format!("2026-12-{d:02}T03:00:00Z"))).collect();
    for t in &days {
        rdb_copy_in_bucket(&w, "sessions", *t, 2).await;
        rdb_copy_in_bucket(&w, "unplanned-cache", *t, 1).await;
    }
    let before = export_keys(&w).await;

    // 12-12 04:00, 7 days: the copies of 12-01 to 12-05 03:00 are older than 12-05 04:00.
    let t = at("2026-12-12T04:00:00Z");
    w.clock.store(t.timestamp(), Ordering::SeqCst);
    let summary = export::plan::tick(&w.deps, t, None).await.unwrap();
    let expired: Vec<(String, DateTime<Utc>)> = summary
        .expired
        .iter()
        .map(|e| match &e.of {
            export::plan::Of::RdbCopy { cache } => (cache.clone(), e.at),
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<(String, DateTime<Utc>)> = days[..5].iter().map(|t| ("sessions".to_owned(), *t)).collect();
    assert_eq!(expired, want);
    let gone: BTreeSet<String> = days[..5]
        .iter()
        .flat_map(|t| {
            let k = lifeboat::bucket::layout::rdb_keys("sessions", *t);
            [k.object(1), k.object(2), k.manifest()]
        })
        .collect();
    let after = export_keys(&w).await;
    assert_eq!(before.difference(&after).cloned().collect::<BTreeSet<_>>(), gone);
    assert!(after.is_subset(&before));
    let gone: Vec<String> = gone.into_iter().collect();
    lifeboat_tests::plans::assert_hidden(&w.deps.s3, BUCKET, "exports/_caches/sessions/", &gone).await;
    let expiries = metric(
        &w,
        "ExportsExpired",
        &[("CacheIdentifier", "sessions"), ("Profile", "rdb")],
    )
    .await;
    assert_eq!(expiries, [5.0]);
    // Between the rule's times nothing is due and nothing more expires.
    let idle = export::plan::tick(&w.deps, at("2026-12-13T03:00:00Z"), None)
        .await
        .unwrap();
    assert!(idle.due.is_empty() && idle.expired.is_empty());
    assert_eq!(export_keys(&w).await, after);
}

/// A cache whose copy-caches step fails at the due tick keeps every copy it has, however old: as a snapshot run
/// that failed expires nothing, the copies already made are what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rdb_copy_step_expires_none_of_the_caches_copies() {
    let text = String::from_utf8(example_plan()).unwrap();
    let plan = text.replacen(
        "\"exports\": {",
        "\"rdb_copies\": {\"schedule\": \"0 4 * * *\", \"keep_days\": 7},\n      \"exports\": {",
        1,
    );
    let w = world_with(plan.into_bytes()).await;
    lifeboat_tests::plans::cache(&w.deps.ec, "sessions", &[("lifeboat:plan", "product")]).await;
    // Copies of 12-01 to 12-11: seven of them older than keep_days at 12-12 04:00.
    let days: Vec<DateTime<Utc>> = (1..=11).map(|d| at(&format!("2026-12-{d:02}T03:00:00Z"))).collect();
    for t in &days {
        rdb_copy_in_bucket(&w, "sessions", *t, 1).await;
    }
    // Lifeboat's snapshot of 12-12 03:00, whose copy the step asks ElastiCache for; moto cannot export a
    // snapshot to a bucket, so the step fails as an AWS error would.
    let tag = |k: &str, v: &str| aws_sdk_elasticache::types::Tag::builder().key(k).value(v).build();
    w.deps
        .ec
        .create_snapshot()
        .snapshot_name("lifeboat-sessions-20261212-0300")
        .cache_cluster_id("sessions")
        .tags(tag(lifeboat::core::tags::MANAGED, "true"))
        .tags(tag(lifeboat::core::tags::DATABASE, "sessions"))
        .tags(tag(lifeboat::core::tags::CREATED_AT, "2026-12-12T03:00:00Z"))
        .send()
        .await
        .unwrap();
    let before = export_keys(&w).await;
    let t = at("2026-12-12T04:00:00Z");
    w.clock.store(t.timestamp(), Ordering::SeqCst);
    let err = export::plan::tick(&w.deps, t, None).await.unwrap_err().to_string();
    assert!(err.contains("copy-caches") && err.contains("sessions"), "{err}");
    assert!(err.contains("\"expired\":[]"), "{err}");
    assert_eq!(export_keys(&w).await, before);
}
