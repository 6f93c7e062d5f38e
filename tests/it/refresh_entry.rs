//! The restore function's staging-refresh entry points against moto: the console's `refresh` and the refresh
//! tick read the rule from the plan document, log in to the staging server with its OWN secret only, read the
//! stack's masking key, choose the rule's export, write a report for every refresh that starts, and run a due
//! refresh once per due time. What the refresh itself does (mask, restore, prove) is tests/it's refresh tests';
//! here it fails (no PostgreSQL listens at moto's endpoints), and its report must say so.

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use lifeboat::bucket::{layout, manifest};
use lifeboat_tests::fleet::{self, FleetDb};
use lifeboat_tests::moto::Moto;
use restore::settings::RestoreSettings;
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
pub(crate) const CONFIG: &str = "acme-config";
pub(crate) const KEY: &str = "lifeboat/plans.json";
pub(crate) const BUCKET: &str = "lifeboat-backups";
pub(crate) const MASKING_KEY: &str = "lb-masking-key";

const DOCUMENT: &str = r#"{"format": 1, "plans": {"product": {
  "exports": {"full": {"schedule": "0 2 * * *", "keep_days": 30},
              "users": {"schedule": "0 3 * * *", "keep_days": 30, "include": ["users"]}},
  "refresh": [
    {"name": "staging", "from": "app-prod", "export": "full", "schedule": "0 4 * * MON-FRI",
     "into": {"instance": "staging-db", "database": "app"},
     "masking": {"tables": {"public.users": {"email": "fake:email"}}}},
    {"name": "bare", "from": "app-prod", "export": "full",
     "into": {"instance": "bare-db", "database": "app"}}]}}}"#;

const FLEET: &[FleetDb] = &[
    FleetDb {
        id: "app-prod",
        cluster: false,
        tags: &[("lifeboat:plan", "product"), ("lifeboat:secret", "lifeboat/prod-admin")],
    },
    // The staging server, with its own administrator's secret.
    FleetDb {
        id: "staging-db",
        cluster: false,
        tags: &[("lifeboat:secret", "lifeboat/staging-admin")],
    },
    // A server without a Lifeboat secret: never logged in to with the source's.
    FleetDb {
        id: "bare-db",
        cluster: false,
        tags: &[],
    },
];

/// An export's manifest as the export function writes it (no archive: the refresh fails before reading one).
pub(crate) fn manifest(profile: &str, at: chrono::DateTime<Utc>) -> (String, Value) {
    let (dump, key) = layout::export_keys("app-prod", profile, at, false);
    let digest = json!({"bytes": 4096, "sha256": "0".repeat(64)});
    let m = json!({
        "format_version": manifest::FORMAT_VERSION, "lifeboat_version": lifeboat::core::VERSION,
        "database": "app-prod", "profile": profile, "logical_time": at, "started_at": at,
        "finished_at": at + Duration::seconds(60), "duration_seconds": 60.0,
        "source": {"engine": "postgres", "server_version": "16.4", "dbname": "app", "database_size_bytes": 8192},
        "pg_dump_version": "16.4", "tables": [{"schema": "public", "name": "users", "rows": 3}],
        "plaintext": digest,
        "stored": {"bucket": BUCKET, "key": dump, "bytes": 1024, "sha256": "0".repeat(64), "parts": 1,
                   "sse": "aws:kms", "kms_key_id": null, "object_lock_until": null},
        "compression": {"algorithm": "zstd", "level": 1}, "encryption": null,
        "verification": {"method": "pg_restore -f /dev/null over the whole stream", "pg_restore_version": "16.4"}
    });
    serde_json::from_value::<manifest::Manifest>(m.clone()).expect("the test's manifest is a manifest");
    (key, m)
}

/// moto with the plan document, the servers and their secrets, the masking keys and two exports' manifests (the
/// rule's `full` one, and a `users` one); the manifest keys.
pub(crate) async fn world() -> (Moto, aws_config::SdkConfig, String, String) {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    fleet::create(&aws_sdk_rds::Client::new(&config), FLEET).await;
    lifeboat_tests::plans::versioned_bucket(&s3, CONFIG).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let put = |bucket: &'static str, key: String, body: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap()
        }
    };
    put(CONFIG, KEY.into(), DOCUMENT.as_bytes().to_vec()).await;
    let (full, m) = manifest("full", Utc.with_ymd_and_hms(2026, 12, 6, 2, 0, 0).unwrap());
    put(BUCKET, full.clone(), m.to_string().into_bytes()).await;
    let (users, m) = manifest("users", Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0).unwrap());
    put(BUCKET, users.clone(), m.to_string().into_bytes()).await;
    for (name, value) in [
        (
            "lifeboat/staging-admin",
            r#"{"username": "staging_admin", "password": "s"}"#.to_owned(),
        ),
        (
            "lifeboat/prod-admin",
            r#"{"username": "prod_admin", "password": "p"}"#.to_owned(),
        ),
        (MASKING_KEY, "k".repeat(64)),
        ("short-key", "k".repeat(8)),
    ] {
        sm.create_secret().name(name).secret_string(value).send().await.unwrap();
    }
    (moto, config, full, users)
}

fn deps(config: &aws_config::SdkConfig, entry: &str, key_secret: Option<&str>) -> restore::Deps {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("LIFEBOAT_RESTORE_ENTRY".into(), entry.into());
    vars.insert("LIFEBOAT_BUCKET".into(), BUCKET.into());
    vars.insert("LIFEBOAT_SERVERLESS_CACHES".into(), "false".into());
    vars.insert("LIFEBOAT_DB_SSLMODE".into(), "disable".into());
    vars.insert("LIFEBOAT_PLAN_DOCUMENT".into(), format!("s3://{CONFIG}/{KEY}"));
    if let Some(k) = key_secret {
        vars.insert("LIFEBOAT_MASKING_KEY_SECRET".into(), k.into());
    }
    let settings = RestoreSettings::from_env(&move |n: &str| vars.get(n).cloned()).unwrap();
    restore::Deps::new(config, settings)
}

async fn keys(config: &aws_config::SdkConfig, prefix: &str) -> Vec<String> {
    let out = aws_sdk_s3::Client::new(config)
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn object(config: &aws_config::SdkConfig, key: &str) -> Value {
    let out = aws_sdk_s3::Client::new(config)
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&out.body.collect().await.unwrap().into_bytes()).unwrap()
}

async fn refresh(deps: &restore::Deps, event: Value) -> Result<Value, String> {
    restore::handle(deps, event, None).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_console_refresh_derives_its_server_login_and_key_and_reports_what_happened() {
    let (_moto, config, full, users) = world().await;
    let d = deps(&config, "console", Some(MASKING_KEY));
    let err = refresh(
        &d,
        json!({"action": "refresh", "plan": "product", "refresh": "staging"}),
    )
    .await
    .unwrap_err();
    // The refresh started (rule, server, login, export, key all found) and failed inside the refresh.
    let reports = keys(&config, "refresh/staging/").await;
    assert_eq!(
        reports.len(),
        2,
        "one report (JSON and Markdown) for the started refresh: {reports:?} ({err})"
    );
    let json_key = reports.iter().find(|k| k.ends_with(".json")).unwrap();
    let report = object(&config, json_key).await;
    assert_eq!(report["outcome"], "failed", "{report}");
    assert_eq!(
        report["export_key"],
        full.as_str(),
        "the newest export of the rule's profile: {report}"
    );
    assert_eq!(
        (&report["into_instance"], &report["into_database"]),
        (&json!("staging-db"), &json!("app"))
    );
    assert!(
        err.contains(report["error"].as_str().unwrap()),
        "the report says why it failed: {report} ({err})"
    );

    // A named export of the rule's source and profile is used; another profile's is refused before it starts.
    let e = refresh(
        &d,
        json!({"action": "refresh", "plan": "product", "refresh": "staging", "export": users}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("is of profile `users`, not the refresh's `full`"), "{e}");
    assert_eq!(
        keys(&config, "refresh/staging/").await.len(),
        2,
        "a refused refresh writes no report"
    );

    // The staging server's own secret or nothing: the source's administrator never logs in to staging.
    let e = refresh(&d, json!({"action": "refresh", "plan": "product", "refresh": "bare"}))
        .await
        .unwrap_err();
    assert!(e.contains("bare-db has no credentials"), "{e}");
    assert!(keys(&config, "refresh/bare/").await.is_empty());

    // Only what the document names runs.
    let e = refresh(&d, json!({"action": "refresh", "plan": "product", "refresh": "qa"}))
        .await
        .unwrap_err();
    assert!(
        e.contains("plan `product` has no refresh `qa` (it has: staging, bare)"),
        "{e}"
    );

    // No masking key, or one too short: refused before the refresh starts.
    for (secret, expected) in [
        (None, "LIFEBOAT_MASKING_KEY_SECRET is unset"),
        (Some("short-key"), "has 8 bytes"),
    ] {
        let e = refresh(
            &deps(&config, "console", secret),
            json!({"action": "refresh", "plan": "product", "refresh": "staging"}),
        )
        .await
        .unwrap_err();
        assert!(e.contains(expected), "{e}");
    }
    assert_eq!(keys(&config, "refresh/staging/").await.len(), 2);

    // The state machine's function never runs a refresh.
    let e = refresh(
        &deps(&config, "steps", Some(MASKING_KEY)),
        json!({"action": "refresh", "plan": "product", "refresh": "staging"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("`refresh` is not served here"), "{e}");
}

#[tokio::test]
async fn the_tick_runs_a_due_refresh_once_per_due_time() {
    let (_moto, config, _, _) = world().await;
    let d = deps(&config, "console", Some(MASKING_KEY));
    // Monday 2026-12-07 04:00 (delivered late): `staging` is due; `bare` has no schedule.
    let tick = json!({"action": "refresh-tick", "time": "2026-12-07T04:06:00Z"});
    let e = restore::handle(&d, tick.clone(), None).await.unwrap_err().to_string();
    assert!(
        e.contains("staging refreshes failed: staging"),
        "the due refresh ran and failed inside the refresh: {e}"
    );
    let due = Utc.with_ymd_and_hms(2026, 12, 7, 4, 0, 0).unwrap();
    let claim = layout::refresh_claim_key("staging", due);
    assert_eq!(object(&config, &claim).await["due"], "2026-12-07T04:00:00Z");
    assert!(
        keys(&config, "refresh/staging/")
            .await
            .contains(&format!("{}.json", layout::refresh_report_base("staging", due, 0))),
        "the scheduled run's report is named by its due time"
    );
    assert!(keys(&config, "refresh/bare/").await.is_empty());

    // A redelivered tick finds the due time claimed and runs nothing.
    let out = restore::handle(&d, tick, None).await.unwrap();
    assert_eq!(out["refreshes"][0]["skipped"], "already claimed", "{out}");
    assert_eq!(
        keys(&config, "refresh/staging/").await.len(),
        3,
        "one report (JSON and Markdown) and one claim"
    );

    // Sunday: nothing is due.
    let out = restore::handle(
        &d,
        json!({"action": "refresh-tick", "time": "2026-12-06T04:00:00Z"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(out["refreshes"], json!([]), "{out}");
}

/// `lifeboat refresh` refuses what the function refuses, with the tool's exit classes, before anything is created.
#[tokio::test]
async fn the_cli_refresh_refuses_bad_arguments_and_rules_with_its_exit_classes() {
    let (moto, _config, _full, users) = world().await;
    let dir = tempfile::tempdir().unwrap();
    let document = format!("s3://{CONFIG}/{KEY}");
    let run = |args: &[&str]| {
        let out = crate::cli::command(&moto.endpoint, dir.path(), args)
            .env("LIFEBOAT_BUCKET", BUCKET)
            .env("LIFEBOAT_PLAN_DOCUMENT", &document)
            // The staging server's TLS, as the functions read it (verify-full needs LIFEBOAT_DB_CA_BUNDLE).
            .env("LIFEBOAT_DB_SSLMODE", "require")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), stderr)
    };
    let with_key = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--masking-key-secret", MASKING_KEY]);
        run(&all)
    };
    // Usage: a missing argument, no masking key.
    let (code, err) = run(&["refresh", "product"]);
    assert_eq!(code, 2, "{err}");
    let (code, err) = run(&["refresh", "product", "staging"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("LIFEBOAT_MASKING_KEY_SECRET"), "{err}");
    // Not found: a rule the document does not have.
    let (code, err) = with_key(&["refresh", "product", "qa"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("plan `product` has no refresh `qa`"), "{err}");
    // Refused: a staging server without its own secret; another profile's export; a short key.
    let (code, err) = with_key(&["refresh", "product", "bare"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("bare-db has no credentials"), "{err}");
    let (code, err) = with_key(&["refresh", "product", "staging", "--export", &users]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("is of profile `users`, not the refresh's `full`"), "{err}");
    let (code, err) = run(&["refresh", "product", "staging", "--masking-key-secret", "short-key"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("has 8 bytes"), "{err}");
    assert!(!err.contains("\"password\""), "no secret value in the output: {err}");
}
