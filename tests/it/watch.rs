//! The content watch against moto and a real PostgreSQL: the export function writes `<base>.watch.json` beside
//! each manifest it makes, comparing it with the previous export of the profile (a mass delete names the table
//! and both counts; a dropped table and an added column appear in the schema drift and its summary; growth raises
//! nothing), and monitor writes the record a missed trigger left undone, for exports and for a cache's RDB copies
//! (whose key-count drop is a finding).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use lifeboat::bucket::manifest::Manifest;
use lifeboat::watch::record::Watch;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::Postgres;
use monitor::settings::MonitorSettings;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const PLANS: &str = "lifeboat-plans";
const KEY: &str = "lifeboat/plans.json";
const DB: &str = "shop-prod";
const CACHE: &str = "shop-sessions";

/// One plan: the database's daily export, the cache's RDB copies, and a watch that looks at small tables too.
const PLAN: &str = r#"{"format": 1, "plans": {"shop": {
    "databases": ["shop-prod"], "caches": ["shop-sessions"],
    "exports": {"full": {"schedule": "0 3 * * *", "keep_days": 30}},
    "cache_snapshots": {"schedule": "0 3 * * *", "retention": {"daily": 7}},
    "watch": {"min_rows": 10}}}}"#;

const SCHEMA: &str = r"
create table users (id int primary key, email text not null);
create table orders (id int primary key, total numeric(10,2));
insert into users select g, 'u' || g || '@example.com' from generate_series(1, 200) g;
insert into orders select g, g * 1.5 from generate_series(1, 50) g;
";

struct World {
    _moto: Moto,
    pg: Postgres,
    config: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    export: export::Deps,
}

async fn world() -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database shop").unwrap();
    pg.psql("shop", SCHEMA).unwrap();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    lifeboat_tests::plans::buckets_with_plan(&s3, BUCKET, PLANS, KEY, PLAN.as_bytes()).await;
    lifeboat_tests::plans::database_on(&config, &pg, DB, "shop", &[]).await;
    let (export, _clock) = lifeboat_tests::plans::export_deps(&config, BUCKET, &format!("s3://{PLANS}/{KEY}"));
    World {
        _moto: moto,
        pg,
        config,
        s3,
        export,
    }
}

impl World {
    /// A manual export of the `full` profile; returns its manifest key. Keys are stamped to the second, so each
    /// export waits one out first.
    async fn export(&self) -> String {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let summary = export::handler::handle(&self.export, json!({"database": DB, "profile": "full"}), None)
            .await
            .unwrap();
        assert_eq!(summary.exports[0].outcome, export::handler::Outcome::Exported);
        summary.exports[0].manifest_key.clone()
    }

    async fn watch_of(&self, manifest_key: &str) -> Option<Watch> {
        let key = lifeboat::watch::run::watch_key(manifest_key).unwrap();
        lifeboat::watch::run::get_bounded(&self.s3, BUCKET, &key).await.unwrap()
    }

    fn monitor(&self) -> monitor::Deps {
        let document = format!("s3://{PLANS}/{KEY}");
        let vars: BTreeMap<String, String> = [
            ("LIFEBOAT_STACK_NAME", "prod"),
            ("LIFEBOAT_BUCKET", BUCKET),
            ("LIFEBOAT_PLAN_DOCUMENT", document.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let settings = MonitorSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
        monitor::Deps::new(&self.config, settings)
    }
}

fn kinds(w: &Watch) -> Vec<(String, String)> {
    w.findings.iter().map(|f| (f.kind.clone(), f.object.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_delete_a_dropped_table_and_an_added_column_are_found_and_growth_is_not() {
    let w = world().await;
    let first = w.export().await;
    let watch = w.watch_of(&first).await.expect("the first export's watch record");
    assert_eq!((watch.compared_with.as_deref(), watch.findings.len()), (None, 0));
    let m: Manifest = lifeboat::bucket::layout::get_json(&w.s3, BUCKET, &first).await.unwrap();
    let catalog = m.catalog.expect("the manifest's catalogue");
    let users = catalog.tables.iter().find(|t| t.name == "users").unwrap();
    let columns: Vec<_> = users
        .columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.type_name.as_str()))
        .collect();
    assert_eq!(columns, [("id", "integer"), ("email", "text")]);

    // Normal growth: more rows everywhere, nothing to say.
    w.pg.psql(
        "shop",
        "insert into users select g, 'n' || g from generate_series(201, 260) g",
    )
    .unwrap();
    let grown = w.export().await;
    let watch = w.watch_of(&grown).await.unwrap();
    assert_eq!(watch.compared_with.as_deref(), Some(first.as_str()));
    assert!(watch.findings.is_empty(), "{:?}", watch.findings);
    assert_eq!(watch.drift_summary.as_deref(), Some("no schema change"));

    // A mass delete: the finding names the table and both counts.
    w.pg.psql("shop", "delete from users where id > 60").unwrap();
    let deleted = w.export().await;
    let watch = w.watch_of(&deleted).await.unwrap();
    // Most of the archive was those rows: it shrank beyond the size limit too.
    assert_eq!(
        kinds(&watch),
        [
            ("rows-dropped".to_owned(), "public.users".to_owned()),
            ("size-drop".to_owned(), "archive".to_owned())
        ]
    );
    let f = &watch.findings[0];
    assert_eq!((f.before, f.after), (Some(260.0), Some(60.0)));
    assert!(
        f.line.starts_with("public.users: 260 rows in the backup of ") && f.line.contains(", 60 in this one ("),
        "{}",
        f.line
    );
    assert!(f.line.ends_with("-77%"), "{}", f.line);

    // A dropped table and an added column: in the drift record and its one line.
    w.pg.psql("shop", "drop table orders; alter table users add column plan text")
        .unwrap();
    let changed = w.export().await;
    let watch = w.watch_of(&changed).await.unwrap();
    assert!(
        kinds(&watch).contains(&("table-vanished".to_owned(), "public.orders".to_owned())),
        "{:?}",
        watch.findings
    );
    let drift: Value = watch.drift.clone().expect("the drift record");
    assert!(
        drift["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["desc"] == "TABLE" && o["tag"] == "orders"),
        "{drift}"
    );
    assert!(
        drift["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["table"] == "public.users" && c["column"] == "plan" && c["change"] == "added"),
        "{drift}"
    );
    let summary = watch.drift_summary.unwrap();
    assert!(
        summary.contains("1 table removed") && summary.contains("1 column added in public.users"),
        "{summary}"
    );

    // A second run finds the record and returns it: written once, never replaced.
    let again = lifeboat::watch::run::run(&w.s3, BUCKET, &changed, &Default::default(), None, Utc::now())
        .await
        .unwrap();
    assert!(!again.written);
    assert_eq!(again.watch.watched_at, w.watch_of(&changed).await.unwrap().watched_at);

    // Monitor writes a record a missed trigger left undone (here: removed by hand).
    let key = lifeboat::watch::run::watch_key(&changed).unwrap();
    w.s3.delete_object().bucket(BUCKET).key(&key).send().await.unwrap();
    assert!(w.watch_of(&changed).await.is_none());
    let summary = monitor::handle(&w.monitor(), json!({})).await.unwrap();
    assert_eq!(summary.watched, std::slice::from_ref(&changed));
    let rewritten = w.watch_of(&changed).await.expect("monitor's watch record");
    assert!(kinds(&rewritten).contains(&("table-vanished".to_owned(), "public.orders".to_owned())));
}

/// A verified RDB copy of the cache taken at `at`, with `keys` in database 0 (as the copy-caches action leaves it).
async fn rdb_copy(w: &World, at: DateTime<Utc>, keys: u64) -> String {
    use lifeboat::caches::records::{RdbManifest, RdbShard, FORMAT_VERSION};
    let k = lifeboat::bucket::layout::rdb_keys(CACHE, at);
    let manifest = RdbManifest {
        format_version: FORMAT_VERSION,
        lifeboat_version: "test".into(),
        cache: CACHE.into(),
        engine: "redis".into(),
        engine_version: "7.1".into(),
        snapshot: format!("lifeboat-{CACHE}-{}", at.format("%Y%m%d-%H%M")),
        snapshot_time: at,
        copied_at: at + Duration::minutes(20),
        shards: vec![RdbShard {
            shard: 1,
            key: k.object(1),
            size: 9,
            sha256: "0".repeat(64),
            rdb_version: 11,
            server_version: None,
            keys_per_db: BTreeMap::from([(0, keys)]),
            checksummed: true,
        }],
    };
    lifeboat_tests::plans::put_json(&w.s3, BUCKET, &k.manifest(), &manifest).await;
    k.manifest()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caches_key_count_drop_between_two_rdb_copies_is_a_finding_monitor_catches() {
    let w = world().await;
    lifeboat_tests::plans::cache(&aws_sdk_elasticache::Client::new(&w.config), CACHE, &[]).await;
    let now = Utc::now();
    let older = rdb_copy(&w, now - Duration::days(1), 40_000).await;
    let newer = rdb_copy(&w, now - Duration::hours(1), 9_000).await;
    let summary = monitor::handle(&w.monitor(), json!({})).await.unwrap();
    assert!(summary.watched.contains(&newer), "{:?}", summary.watched);
    let watch = w.watch_of(&newer).await.expect("the copy's watch record");
    assert_eq!(watch.compared_with.as_deref(), Some(older.as_str()));
    assert_eq!(kinds(&watch), [("keys-dropped".to_owned(), "db0".to_owned())]);
    assert!(
        watch.findings[0].line.starts_with("db0: 40,000 keys in the backup of "),
        "{}",
        watch.findings[0].line
    );
    assert!(
        watch.findings[0].line.contains(", 9,000 in this one ("),
        "{}",
        watch.findings[0].line
    );
    // The run that wrote the comparison also opened its anomaly, holding the copy before the drop.
    let prefix = format!("watch/_caches/{CACHE}/rdb/");
    let opened = lifeboat::bucket::layout::list_keys(&w.s3, BUCKET, &prefix, ".json")
        .await
        .unwrap();
    assert_eq!(opened.len(), 1, "one anomaly opened in the same run: {opened:?}");
    let anomaly: lifeboat::watch::record::Anomaly = lifeboat::bucket::layout::get_json(&w.s3, BUCKET, &opened[0])
        .await
        .unwrap();
    assert_eq!(anomaly.manifest_key, newer);
    assert_eq!(anomaly.held.manifests, [older]);
    assert!(
        summary
            .attention
            .iter()
            .any(|n| n.contains(CACHE) && n.contains("content anomaly")),
        "{:?}",
        summary.attention
    );
}
