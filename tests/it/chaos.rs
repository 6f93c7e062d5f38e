//! The invariants `make chaos` checks after every day (`lifeboat_tests::chaos::invariants`), held against the
//! deployed stack after one clean day of its plan (`deployed::story`): the clean day keeps every one, and each
//! thing a broken product would leave behind is caught, by a violation that names it.

use chrono::{DateTime, Duration, Utc};
use lifeboat::bucket::layout;
use lifeboat::bucket::manifest::Manifest;
use lifeboat::core::tags;
use lifeboat_tests::chaos::invariants::{self, Invariant, Ledger, RunFailure, Violation};
use lifeboat_tests::demo::deployed::{self, World};
use lifeboat_tests::stack::Deployed;
use serde_json::json;

/// A world after one clean day of the plan, its functions running, the things not Lifeboat's made, and a
/// monitor run (the janitor's) recorded as the runner records it.
async fn clean_day(logs: &std::path::Path) -> (World, Deployed, Ledger) {
    let w = deployed::world_with(&[]).await;
    let functions = deployed::start_functions(&w, logs);
    deployed::story(&w, &functions, &|_| {}).await;
    let mut ledger = Ledger {
        foreign: invariants::foreign(&w).await,
        ..Ledger::default()
    };
    let monitor = w.stack.schedule("monitor");
    let began = Utc::now();
    tokio::task::block_in_place(|| {
        functions.invoke(&monitor.target_arn, &monitor.input_at(w.day + Duration::hours(5)))
    })
    .unwrap();
    ledger.janitor_runs.push(began);
    (w, functions, ledger)
}

fn end_of(w: &World) -> DateTime<Utc> {
    w.day + Duration::hours(23)
}

/// The violations of `invariant` that name `thing`.
fn naming<'a>(found: &'a [Violation], invariant: Invariant, thing: &str) -> Vec<&'a Violation> {
    found
        .iter()
        .filter(|v| v.invariant == invariant && v.what.contains(thing))
        .collect()
}

async fn object(w: &World, bucket: &str, key: &str) -> Vec<u8> {
    let s3 = aws_sdk_s3::Client::new(&w.config);
    let got = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn put(w: &World, bucket: &str, key: &str, body: Vec<u8>) {
    aws_sdk_s3::Client::new(&w.config)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

async fn delete(w: &World, bucket: &str, key: &str) {
    aws_sdk_s3::Client::new(&w.config)
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
}

/// A copy of the day's export as Lifeboat would have written it `days` earlier: its object and its manifest.
async fn older_export(w: &World, bucket: &str, manifest: &Manifest, days: i64) -> String {
    let at = manifest.logical_time - Duration::days(days);
    let (dump, key) = layout::export_keys(&manifest.database, &manifest.profile, at, true);
    put(w, bucket, &dump, object(w, bucket, &manifest.stored.key).await).await;
    let mut older = manifest.clone();
    older.logical_time = at;
    older.stored.key = dump;
    put(w, bucket, &key, serde_json::to_vec(&older).unwrap()).await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_day_keeps_every_invariant_and_each_lost_or_damaged_backup_is_named() {
    let logs = tempfile::tempdir().unwrap();
    let (w, _functions, mut ledger) = clean_day(logs.path()).await;
    let bucket = w.stack.function("ExportFunction").env["LIFEBOAT_BUCKET"].clone();
    let s3 = aws_sdk_s3::Client::new(&w.config);
    let (export_key, manifest) = layout::latest_manifest(&s3, &bucket, "app-db", "full")
        .await
        .unwrap()
        .unwrap();
    // Two older copies, as 13 and 14 days of the plan's ticks would have left them: at the next day's tick the
    // first is 14 days old (kept: only a copy strictly older than its 14 days expires) and the second 15.
    let last_day = older_export(&w, &bucket, &manifest, 13).await;
    let expired = older_export(&w, &bucket, &manifest, 14).await;
    let now = end_of(&w);
    let found = invariants::check(&w, &mut ledger, now).await;
    assert_eq!(found, vec![], "a clean day keeps every invariant");
    assert!(
        ledger.sampled.contains(&export_key),
        "the newest export was restored for real: {:?}",
        ledger.sampled
    );
    let copy = ledger
        .sampled
        .iter()
        .find(|k| k.starts_with(layout::CACHE_EXPORTS_PREFIX))
        .cloned();
    let copy = copy.expect("the newest RDB copy was loaded for real");

    // A success reported before verifying: one byte of the export changed, then the object gone.
    let mut bytes = object(&w, &bucket, &manifest.stored.key).await;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    put(&w, &bucket, &manifest.stored.key, bytes).await;
    let found = invariants::check(&w, &mut ledger, now).await;
    assert_eq!(naming(&found, Invariant::ReportedGood, "SHA-256").len(), 1, "{found:?}");
    delete(&w, &bucket, &manifest.stored.key).await;
    let found = invariants::check(&w, &mut ledger, now).await;
    assert_eq!(naming(&found, Invariant::ReportedGood, "missing").len(), 1, "{found:?}");
    assert!(
        naming(&found, Invariant::ReportedGood, &manifest.stored.key).len() == 1,
        "{found:?}"
    );

    // An upload with a part missing: the RDB copy's file shorter than its manifest says.
    let rdb: lifeboat::caches::records::RdbManifest = layout::get_json(&s3, &bucket, &copy).await.unwrap();
    let shard = &rdb.shards[0].key;
    let bytes = object(&w, &bucket, shard).await;
    put(&w, &bucket, shard, bytes[..bytes.len() - 9].to_vec()).await;
    let found = invariants::check(&w, &mut ledger, now).await;
    assert_eq!(naming(&found, Invariant::ReportedGood, shard).len(), 1, "{found:?}");
    assert!(found.iter().any(|v| v.what.contains("bytes, not the")), "{found:?}");

    // The next day's export tick expires both: the copy on the last day of its policy is caught, the one past
    // it is a correct expiry.
    for key in [&last_day, &expired] {
        delete(&w, &bucket, key).await;
    }
    let next_tick = w.day + Duration::days(1) + Duration::hours(2);
    let found = invariants::check(&w, &mut ledger, next_tick).await;
    assert_eq!(naming(&found, Invariant::Kept, &last_day).len(), 1, "{found:?}");
    assert_eq!(naming(&found, Invariant::Kept, &expired), Vec::<&Violation>::new());

    // The newest snapshot of the database deleted, and a snapshot that is not Lifeboat's.
    let rds = aws_sdk_rds::Client::new(&w.config);
    let newest = ledger.db_snapshots.keys().next().cloned().unwrap();
    rds.delete_db_snapshot()
        .db_snapshot_identifier(&newest)
        .send()
        .await
        .unwrap();
    let theirs = ledger.foreign.rds_snapshot.clone().expect("a foreign snapshot");
    rds.delete_db_snapshot()
        .db_snapshot_identifier(&theirs)
        .send()
        .await
        .unwrap();
    let object = ledger.foreign.object.clone().expect("an object not Lifeboat's");
    delete(&w, &bucket, &object).await;
    let found = invariants::check(&w, &mut ledger, now).await;
    assert_eq!(naming(&found, Invariant::Kept, &object).len(), 1, "{found:?}");
    assert!(ledger.foreign.cache_snapshot.is_some(), "{:?}", ledger.foreign);
    assert_eq!(naming(&found, Invariant::Kept, &newest).len(), 1, "{found:?}");
    assert!(
        naming(&found, Invariant::Kept, "newest snapshot of app-db").len() == 1,
        "{found:?}"
    );
    assert_eq!(naming(&found, Invariant::Kept, &theirs).len(), 1, "{found:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_left_over_restore_test_an_unsignalled_failure_and_a_rerun_that_changes_things_are_named() {
    let logs = tempfile::tempdir().unwrap();
    let (w, functions, mut ledger) = clean_day(logs.path()).await;
    let now = end_of(&w);
    let ran = ledger.janitor_runs[0];

    // A skipped cleanup: a restore-test instance and its secret, expired before the janitor's run, still there;
    // and one that expires after it, which the janitor rightly keeps.
    let rds = aws_sdk_rds::Client::new(&w.config);
    let sm = aws_sdk_secretsmanager::Client::new(&w.config);
    for (id, expires) in [
        ("lifeboat-rt-app-db-leftover", ran - Duration::hours(1)),
        ("lifeboat-rt-app-db-running", ran + Duration::hours(5)),
    ] {
        let expires = expires.to_rfc3339();
        let tags = [
            (tags::RESTORE_TEST, "true"),
            (tags::EXPIRES_AT, expires.as_str()),
            (tags::SOURCE_DB, "app-db"),
        ];
        lifeboat_tests::plans::instance(&rds, id, &tags, 0).await;
        let mut secret = sm
            .create_secret()
            .name(lifeboat::rds::restore::test_secret_name(id))
            .secret_string("{}");
        for (k, v) in tags {
            secret = secret.tags(aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build());
        }
        secret.send().await.unwrap();
    }
    let found = invariants::check(&w, &mut ledger, now).await;
    let left = naming(&found, Invariant::Cleaned, "lifeboat-rt-app-db-leftover");
    assert_eq!(left.len(), 2, "the instance and its secret: {found:?}");
    assert_eq!(naming(&found, Invariant::Cleaned, "running"), Vec::<&Violation>::new());

    // A failure the runner saw with nothing signalled: a failed execution of the 01:30 cache test. The story's own
    // (today's) was told to notify before the harness's queue listened, and notify would not repeat it within its
    // window, so the failure is the same rule's execution a day earlier, started by its tick. Then what AWS does.
    let snapshot = w.stack.schedule("snapshot");
    let earlier = w.day - Duration::days(1) + Duration::minutes(90);
    tokio::task::block_in_place(|| functions.invoke(&snapshot.target_arn, &snapshot.input_at(earlier))).unwrap();
    let sfn = aws_sdk_sfn::Client::new(&w.config);
    let (machine, _) = w.stack.state_machine("restore-test");
    let listed = sfn.list_executions().state_machine_arn(&machine).send().await.unwrap();
    let stamp = format!("{}T0130Z", earlier.format("%Y%m%d"));
    let execution = listed
        .executions()
        .iter()
        .map(|e| e.execution_arn().to_owned())
        .find(|arn| arn.ends_with(&stamp))
        .expect("the earlier 01:30 execution");
    let failure = RunFailure {
        function: "RestoreFunction".into(),
        at: earlier,
        error: "restore tests failed for 1 of 1 databases".into(),
        resource: Some("app-cache".into()),
        execution: Some(execution.clone()),
    };
    ledger.failures.push(failure.clone());
    let found = invariants::check(&w, &mut ledger, now).await;
    let name = execution.rsplit(':').next().unwrap();
    assert_eq!(naming(&found, Invariant::Signalled, name).len(), 1, "{found:?}");
    assert_eq!(
        naming(&found, Invariant::Signalled, "no failure metric").len(),
        1,
        "{found:?}"
    );
    invariants::signal(&w, &functions, &mut ledger.shipped, &failure)
        .await
        .unwrap();
    let found = invariants::check(&w, &mut ledger, now).await;
    assert_eq!(
        found
            .iter()
            .filter(|v| v.invariant == Invariant::Signalled)
            .collect::<Vec<_>>(),
        Vec::<&Violation>::new(),
        "signalled: its metric, its event and notify's message naming {name}; heard {:?}",
        ledger.notifications
    );

    // A failed invocation that nothing signalled: no failure metric of the database, no alarm, no message.
    ledger.failures.push(RunFailure {
        function: "SnapshotFunction".into(),
        at: w.day + Duration::hours(1),
        error: "Lifeboat.PartialFailure".into(),
        resource: Some("app-db".into()),
        execution: None,
    });
    let found = invariants::check(&w, &mut ledger, now).await;
    let unsignalled = naming(&found, Invariant::Signalled, "(app-db)");
    assert!(
        unsignalled.iter().any(|v| v.what.contains("no failure metric")),
        "{found:?}"
    );
    assert!(
        unsignalled
            .iter()
            .any(|v| v.what.contains("no notification names app-db")),
        "{found:?}"
    );

    // A rerun that converges changes nothing; one that writes again is named by what it changed.
    let before = invariants::state(&w).await;
    assert!(
        before.items.keys().any(|k| k.starts_with("rds snapshot ")),
        "{:?}",
        before.items.keys()
    );
    assert_eq!(
        invariants::converges("monitor", &before, &invariants::state(&w).await),
        vec![]
    );
    let bucket = w.stack.function("ExportFunction").env["LIFEBOAT_BUCKET"].clone();
    let report = before
        .items
        .keys()
        .find(|k| k.contains("/reports/restore-tests/app-db/"))
        .cloned()
        .unwrap();
    let key = report.strip_prefix(&format!("s3://{bucket}/")).unwrap().to_owned();
    put(&w, &bucket, &key, json!({"rewritten": true}).to_string().into_bytes()).await;
    let found = invariants::converges("the 03:00 snapshot tick", &before, &invariants::state(&w).await);
    assert_eq!(
        found,
        vec![Violation {
            invariant: Invariant::Converges,
            what: format!("a rerun of the 03:00 snapshot tick added or changed {report}"),
        }]
    );
    // A rerun that adds a second snapshot is named; one that only removes (retention finishing) is Kept's to judge.
    let mut twice = before.clone();
    twice
        .items
        .insert("rds snapshot lifeboat-app-db-again".into(), "available".into());
    let found = invariants::converges("the 01:00 snapshot tick", &before, &twice);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].what.contains("lifeboat-app-db-again"), "{found:?}");
    assert_eq!(
        invariants::converges("the 01:00 snapshot tick", &twice, &before),
        vec![]
    );
}

/// A failed invocation through the whole path: the next day's staged RDB file damaged before the 02:15 tick
/// verifies it, the tick fails, and [`invariants::signal`] does what AWS would. Its metric (`RdbCopyFailed`) and
/// the stack's alarm over it hold; notify's message, rendered for the stack's fleet-wide alarm, names no cache,
/// and the check says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rdb_copy_is_signalled_by_its_metric_its_alarm_and_a_message_that_names_the_cache() {
    let logs = tempfile::tempdir().unwrap();
    let (w, functions, mut ledger) = clean_day(logs.path()).await;
    let bucket = w.stack.function("ExportFunction").env["LIFEBOAT_BUCKET"].clone();
    let next = w.day + Duration::days(1);
    let snapshot = w.stack.schedule("snapshot");
    let export = w.stack.schedule("export-plan-tick");
    let run = |arn: &str, at| tokio::task::block_in_place(|| functions.invoke(arn, &snapshot.input_at(at)));
    run(&snapshot.target_arn, next + Duration::hours(1)).unwrap();
    run(&export.target_arn, next + Duration::hours(2)).unwrap();
    let s3 = aws_sdk_s3::Client::new(&w.config);
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(layout::RDB_STAGING_PREFIX)
        .send()
        .await
        .unwrap();
    let day = next.format("%Y%m%d").to_string();
    let staged = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .find(|k| k.ends_with("-0001.rdb") && k.contains(&day))
        .expect("the next day's staged RDB file")
        .to_owned();
    let mut bytes = object(&w, &bucket, &staged).await;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    put(&w, &bucket, &staged, bytes).await;
    let at = next + Duration::minutes(135);
    let error = run(&export.target_arn, at).expect_err("a damaged staged file fails the tick");
    assert!(error.contains("the file is damaged"), "{error}");
    let failure = RunFailure {
        function: "ExportFunction".into(),
        at,
        error: "Lifeboat.PartialFailure".into(),
        resource: Some("app-cache".into()),
        execution: None,
    };
    ledger.failures.push(failure.clone());
    invariants::signal(&w, &functions, &mut ledger.shipped, &failure)
        .await
        .unwrap();
    let found = invariants::check(&w, &mut ledger, next + Duration::hours(23)).await;
    let told = ledger
        .notifications
        .iter()
        .find(|n| n.contains("rdb-copy-failed"))
        .unwrap_or_else(|| panic!("notify told of no breached alarm: {:?}", ledger.notifications));
    // The alarm's one series is the maximum over every cache: notify reads each cache's own to name it.
    assert!(told.contains("[ALARM] cache app-cache: "), "{told}");
    assert!(told.contains("\nCache: app-cache\n"), "{told}");
    assert_eq!(found, vec![], "metric, alarm and a message naming the cache");
}
