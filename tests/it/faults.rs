//! The fault-injecting proxy (`tests/src/faults.rs`, `tests/emulator/faults.py`) between the SDK and moto: its
//! draws replay from a seed, it passes what it does not fault byte for byte (a multi-MiB object and a multipart
//! upload included), each kind of fault reaches the SDK as that kind, and the export function's plan tick under
//! throttling converges to what it does without faults.

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_smithy_types::body::SdkBody;
use lifeboat_tests::faults::{Faults, Injected, Kind, Rules, Seen};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::Postgres;
use serde_json::Value;
use sha2::{Digest, Sha256};

const REGION: &str = "us-east-1";

/// Clients of `faults` that never retry: a fault reaches the caller as it was injected, and the proxy sees exactly
/// the requests a test makes.
fn once(faults: &Faults) -> aws_config::SdkConfig {
    faults
        .config(REGION)
        .into_builder()
        .retry_config(RetryConfig::disabled())
        .build()
}

/// The same calls, in the same order, through a proxy drawing `rules`; the faults it injected.
async fn faults_of(moto: &Moto, rules: &Rules) -> Vec<Injected> {
    let faults = Faults::start(moto, rules);
    let config = once(&faults);
    let (s3, sm) = (
        aws_sdk_s3::Client::new(&config),
        aws_sdk_secretsmanager::Client::new(&config),
    );
    for _ in 0..30 {
        let _ = s3.list_buckets().send().await;
        let _ = sm.list_secrets().send().await;
    }
    faults.injected()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_injects_the_same_faults_and_another_seed_others() {
    let moto = Moto::start();
    let rules = |seed| {
        Rules::seed(seed)
            .on("s3", "ListBuckets", Kind::Throttle, 0.4)
            .on("secretsmanager", "*", Kind::Error500, 0.3)
            .on("secretsmanager", "ListSecrets", Kind::Reset, 0.2)
    };
    let first = faults_of(&moto, &rules(7)).await;
    let again = faults_of(&moto, &rules(7)).await;
    let other = faults_of(&moto, &rules(8)).await;
    assert!(first.len() >= 10, "at these rates 60 calls draw more faults: {first:?}");
    for kind in [Kind::Throttle, Kind::Error500, Kind::Reset] {
        assert!(first.iter().any(|f| f.kind == kind), "no {kind:?} in {first:?}");
    }
    assert_eq!(first, again, "the same seed replays the same faults");
    assert_ne!(first, other, "another seed draws other faults");
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

async fn object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_rate_zero_every_call_passes_byte_for_byte_multi_mib_objects_included() {
    let moto = Moto::start();
    let faults = Faults::start(
        &moto,
        &Rules::seed(3)
            .on("*", "*", Kind::Reset, 0.0)
            .on("s3", "*", Kind::Throttle, 0.0),
    );
    let config = once(&faults);
    let s3 = aws_sdk_s3::Client::new(&config);
    let direct = aws_sdk_s3::Client::new(&moto.config(REGION));
    s3.create_bucket().bucket("through").send().await.unwrap();

    // One PutObject of 12 MiB.
    let whole = pseudo_random(12 << 20, 1);
    s3.put_object()
        .bucket("through")
        .key("whole.bin")
        .body(whole.clone().into())
        .send()
        .await
        .unwrap();
    // A multipart upload of two 5 MiB parts and a short last one, as the export's upload makes.
    let parts = [
        pseudo_random(5 << 20, 2),
        pseudo_random(5 << 20, 3),
        pseudo_random(1234, 4),
    ];
    let upload = s3
        .create_multipart_upload()
        .bucket("through")
        .key("parts.bin")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut done = aws_sdk_s3::types::CompletedMultipartUpload::builder();
    for (i, part) in parts.iter().enumerate() {
        let number = i32::try_from(i + 1).unwrap();
        let out = s3
            .upload_part()
            .bucket("through")
            .key("parts.bin")
            .upload_id(id)
            .part_number(number)
            .body(SdkBody::from(part.clone()).into())
            .send()
            .await
            .unwrap();
        done = done.parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("through")
        .key("parts.bin")
        .upload_id(id)
        .multipart_upload(done.build())
        .send()
        .await
        .unwrap();

    let joined = parts.concat();
    for (key, bytes) in [("whole.bin", &whole), ("parts.bin", &joined)] {
        let (through, behind) = (object(&s3, "through", key).await, object(&direct, "through", key).await);
        assert_eq!(
            Sha256::digest(&through),
            Sha256::digest(bytes),
            "{key} read through the proxy"
        );
        assert_eq!(Sha256::digest(&behind), Sha256::digest(bytes), "{key} as moto keeps it");
    }
    let head = s3
        .head_object()
        .bucket("through")
        .key("whole.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(12 << 20));

    // A JSON protocol and a query protocol call pass too.
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    sm.create_secret()
        .name("s")
        .secret_string("{\"a\": 1}")
        .send()
        .await
        .unwrap();
    let got = sm.get_secret_value().secret_id("s").send().await.unwrap();
    assert_eq!(got.secret_string(), Some("{\"a\": 1}"));
    aws_sdk_rds::Client::new(&config)
        .describe_db_instances()
        .send()
        .await
        .unwrap();
    assert_eq!(faults.injected(), [], "nothing injected at rate 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_fault_reaches_the_sdk_as_that_kind() {
    use aws_sdk_s3::error::SdkError;
    let moto = Moto::start();
    aws_sdk_s3::Client::new(&moto.config(REGION))
        .create_bucket()
        .bucket("bucket-b")
        .send()
        .await
        .unwrap();
    let faults = Faults::start(
        &moto,
        &Rules::seed(1)
            .on("s3", "ListBuckets", Kind::Throttle, 1.0)
            .on("s3", "GetBucketVersioning", Kind::Reset, 1.0)
            .slow("s3", "ListObjectsV2", 1.0, Duration::from_millis(1500))
            .on("secretsmanager", "ListSecrets", Kind::Throttle, 1.0)
            .on("secretsmanager", "CreateSecret", Kind::Lost, 1.0)
            .on("secretsmanager", "DescribeSecret", Kind::Error503, 1.0)
            .on("rds", "DescribeDBInstances", Kind::Throttle, 1.0)
            .on("rds", "DescribeDBSnapshots", Kind::Error500, 1.0),
    );
    let config = once(&faults);
    let s3 = aws_sdk_s3::Client::new(&config);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let rds = aws_sdk_rds::Client::new(&config);

    let e = s3.list_buckets().send().await.unwrap_err();
    assert_eq!(
        (e.code(), e.raw_response().map(|r| r.status().as_u16())),
        (Some("SlowDown"), Some(503))
    );
    let e = sm.list_secrets().send().await.unwrap_err();
    assert_eq!(e.code(), Some("ThrottlingException"), "{e:?}");
    let e = rds.describe_db_instances().send().await.unwrap_err();
    assert_eq!(e.code(), Some("Throttling"), "{e:?}");
    let e = rds.describe_db_snapshots().send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500), "{e:?}");
    let e = sm.describe_secret().secret_id("x").send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(503), "{e:?}");

    let e = s3.get_bucket_versioning().bucket("bucket-b").send().await.unwrap_err();
    assert!(
        matches!(&e, SdkError::DispatchFailure(d) if d.is_io()),
        "a reset is an IO error: {e:?}"
    );
    // A lost answer: the SDK sees a dropped connection, but the call took effect.
    let e = sm
        .create_secret()
        .name("lost")
        .secret_string("v")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(&e, SdkError::DispatchFailure(d) if d.is_io()), "{e:?}");
    let direct = aws_sdk_secretsmanager::Client::new(&moto.config(REGION));
    direct.describe_secret().secret_id("lost").send().await.unwrap();

    let started = Instant::now();
    s3.list_objects_v2().bucket("bucket-b").send().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    let kinds: Vec<(String, Kind)> = faults.injected().into_iter().map(|f| (f.operation, f.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("ListBuckets", Kind::Throttle),
            ("ListSecrets", Kind::Throttle),
            ("DescribeDBInstances", Kind::Throttle),
            ("DescribeDBSnapshots", Kind::Error500),
            ("DescribeSecret", Kind::Error503),
            ("GetBucketVersioning", Kind::Reset),
            ("CreateSecret", Kind::Lost),
            ("ListObjectsV2", Kind::Slow),
        ]
        .map(|(o, k)| (o.to_owned(), k))
    );
}

const BUCKET: &str = "lifeboat-backups";
const PLAN_BUCKET: &str = "lifeboat-plans";
const PLAN_KEY: &str = "lifeboat/plans.json";

/// The export function's plan tick at `t` on a fresh world (moto, PostgreSQL, the example product policy), its
/// calls made through a proxy drawing `rules`; the tick's summary, the keys under `exports/` and the faults
/// injected.
async fn tick_through(
    rules: &Rules,
    t: chrono::DateTime<chrono::Utc>,
) -> (Value, Vec<String>, Vec<Injected>, Vec<Seen>) {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database product").unwrap();
    pg.psql(
        "product",
        "create table users (id int primary key, email text); insert into users values (1, 'a')",
    )
    .unwrap();
    let setup = moto.config(REGION);
    let plan = String::from_utf8(lifeboat_tests::plans::example("product-pgvector"))
        .unwrap()
        .replace("\"product-db\"", "\"product-test\"");
    let s3 = aws_sdk_s3::Client::new(&setup);
    lifeboat_tests::plans::buckets_with_plan(&s3, BUCKET, PLAN_BUCKET, PLAN_KEY, plan.as_bytes()).await;
    lifeboat_tests::plans::database_on(&setup, &pg, "product-test", "product", &[]).await;

    let faults = Faults::start(&moto, rules);
    let (deps, clock) = lifeboat_tests::plans::export_deps(
        &faults.config(REGION),
        BUCKET,
        &format!("s3://{PLAN_BUCKET}/{PLAN_KEY}"),
    );
    clock.store(t.timestamp(), std::sync::atomic::Ordering::SeqCst);
    let summary = export::invoke(&deps, lifeboat_tests::plans::tick(t), None)
        .await
        .unwrap_or_else(|e| panic!("tick at {t}: {e}\nproxy: {}", faults.log_text()));
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("exports/")
        .send()
        .await
        .unwrap();
    let keys = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    (summary, keys, faults.injected(), faults.requests())
}

/// What of a tick's summary does not depend on how long its calls took: each run's profile and its exports'
/// databases and outcomes.
fn outcomes(summary: &Value) -> Vec<(Value, Value, Value)> {
    let mut out = Vec::new();
    for run in summary["exports"].as_array().unwrap() {
        for e in run["exports"].as_array().unwrap() {
            out.push((run["profile"].clone(), e["db"].clone(), e["outcome"].clone()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_tick_under_throttling_converges_to_the_tick_without_faults() {
    // 02:00 on a Monday: the `full` profile is due.
    let t = chrono::DateTime::parse_from_rfc3339("2026-12-07T02:00:00Z")
        .unwrap()
        .to_utc();
    let (calm, calm_keys, none, calm_seen) = tick_through(&Rules::seed(11), t).await;
    assert_eq!(none, []);
    // A third of the S3 GetObjects throttled (the plan document, the manifests read back), with a seed that draws
    // two faults: Lifeboat's retries (standard, 8 attempts) absorb them. Why a rate this low: each throttled call
    // backs off exponentially, and at half the calls the tick takes minutes.
    let (rough, rough_keys, injected, seen) =
        tick_through(&Rules::seed(12).on("s3", "GetObject", Kind::Throttle, 0.3), t).await;
    assert!(!injected.is_empty(), "no fault was injected: {rough}\n{seen:?}");
    assert!(injected
        .iter()
        .all(|f| f.operation == "GetObject" && f.kind == Kind::Throttle));
    assert_eq!(outcomes(&rough), outcomes(&calm), "{rough}\n{calm}");
    assert!(!outcomes(&calm).is_empty(), "the tick exported nothing: {calm}");
    assert_eq!(rough_keys, calm_keys);
    // Each fault cost one more request of its call, and nothing else changed.
    let gets = |seen: &[Seen]| seen.iter().filter(|s| s.operation == "GetObject").count();
    assert_eq!(gets(&seen), gets(&calm_seen) + injected.len(), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rules_take_effect_from_the_next_request_without_a_restart() {
    let moto = Moto::start();
    let faults = Faults::start(&moto, &Rules::seed(3));
    let s3 = aws_sdk_s3::Client::new(&once(&faults));
    for _ in 0..5 {
        s3.list_buckets().send().await.expect("no rule: every call passes");
    }
    faults.set_rules(&Rules::seed(3).on("s3", "ListBuckets", Kind::Error503, 1.0));
    let err = s3
        .list_buckets()
        .send()
        .await
        .expect_err("the new rule fails every call");
    assert_eq!(err.code(), Some("ServiceUnavailable"), "{err:?}");
    faults.set_rules(&Rules::seed(3));
    s3.list_buckets()
        .send()
        .await
        .expect("the rule taken away: calls pass again");
    let injected = faults.injected();
    assert_eq!(
        injected,
        vec![Injected {
            service: "s3".into(),
            operation: "ListBuckets".into(),
            n: 5,
            kind: Kind::Error503
        }],
        "one fault, on the sixth call: the draws carried on across the change"
    );
}
