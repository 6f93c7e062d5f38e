//! A restored cache's checks against a real redis-server over TLS with AUTH: what passes, and each way it fails
//! clearly (a missing key, too few keys, a wrong password, a server whose certificate is not trusted).

use std::collections::BTreeMap;

use lifeboat::caches::check::{checks, CacheTarget, KeyCheck};
use lifeboat::caches::rdb::{self, DbKeys};
use lifeboat::postgres::db::{SslMode, TlsSettings};
use lifeboat::rds::restore::{Check, CheckResult};
use lifeboat_tests::redis::Redis;

fn target(r: &Redis, password: &str, mode: SslMode) -> CacheTarget {
    CacheTarget {
        host: "127.0.0.1".into(),
        port: r.port,
        user: None,
        password: Some(password.into()),
        tls: TlsSettings {
            mode,
            ca_bundle: r.ca_file.as_ref().map(|p| p.display().to_string()),
        },
    }
}

fn results(checks: &[Check]) -> BTreeMap<&str, (CheckResult, &str)> {
    checks
        .iter()
        .map(|c| (c.name.as_str(), (c.result, c.detail.as_str())))
        .collect()
}

/// An RQ-like queue and sessions in db0, a few keys in db2; the RDB the server saves is what the counts come
/// from, as a restore test takes them from the verified copy's manifest.
fn seeded() -> (Redis, BTreeMap<u64, DbKeys>) {
    let r = Redis::start_tls(&[]);
    r.cli(0, &["RPUSH", "rq:queue:default", "job-1", "job-2"]);
    for i in 0..20 {
        r.cli(0, &["SET", &format!("session:{i}"), "x", "EX", "3600"]);
    }
    for i in 0..3 {
        r.cli(2, &["SET", &format!("feature:{i}"), "on"]);
    }
    let summary = rdb::verify(std::fs::File::open(r.save()).unwrap()).unwrap();
    (r, summary.databases)
}

fn key_checks() -> Vec<KeyCheck> {
    serde_json::from_value(serde_json::json!([
        {"name": "the default RQ queue is there", "pattern": "rq:queue:default"},
        {"name": "sessions are there", "pattern": "session:*"},
        {"name": "feature flags are there", "pattern": "feature:*", "db": 2}
    ]))
    .unwrap()
}

/// Every check, as a restore test runs them: verify-full TLS, the server's password, a 10 % tolerance.
async fn check_all(r: &Redis, expected: &BTreeMap<u64, DbKeys>) -> Vec<Check> {
    checks(
        &target(r, &r.password, SslMode::VerifyFull),
        expected,
        10.0,
        &key_checks(),
    )
    .await
}

#[tokio::test]
async fn a_restored_cache_passes_over_tls_with_auth_when_its_keys_are_there() {
    let (r, expected) = seeded();
    assert_eq!(expected[&0], DbKeys { keys: 21, expires: 20 });
    let got = check_all(&r, &expected).await;
    let by_name = results(&got);
    for name in [
        "connect",
        "keys in db0",
        "keys in db2",
        "the default RQ queue is there",
        "sessions are there",
        "feature flags are there",
    ] {
        assert_eq!(
            by_name.get(name).map(|r| r.0),
            Some(CheckResult::Passed),
            "{name}: {got:#?}"
        );
    }
    assert_eq!(got.len(), 6, "{got:#?}");
}

#[tokio::test]
async fn a_missing_key_or_lost_keys_fail_naming_what_is_missing() {
    let (r, expected) = seeded();
    r.cli(0, &["DEL", "rq:queue:default"]);
    for i in 0..5 {
        r.cli(0, &["DEL", &format!("session:{i}")]);
    }
    let got = check_all(&r, &expected).await;
    let by_name = results(&got);
    let (result, detail) = by_name["the default RQ queue is there"];
    assert_eq!(result, CheckResult::Failed);
    assert_eq!(detail, "no key matches `rq:queue:default` in db0");
    let (result, detail) = by_name["keys in db0"];
    assert_eq!(result, CheckResult::Failed, "{detail}");
    assert_eq!(detail, "15 restored, 21 in the snapshot (tolerance -3)");
    assert_eq!(by_name["keys in db2"].0, CheckResult::Passed);
}

#[tokio::test]
async fn a_wrong_password_or_an_untrusted_certificate_fail_the_connect_check_alone() {
    let (r, expected) = seeded();
    let got = checks(
        &target(&r, "not-the-password", SslMode::VerifyFull),
        &expected,
        10.0,
        &key_checks(),
    )
    .await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].result, CheckResult::Failed);
    assert!(got[0].detail.contains("AUTH"), "{}", got[0].detail);
    assert!(!got[0].detail.contains("not-the-password"), "{}", got[0].detail);

    let mut untrusted = target(&r, &r.password, SslMode::VerifyFull);
    let other_ca = Redis::start_tls(&[]);
    untrusted.tls.ca_bundle = other_ca.ca_file.as_ref().map(|p| p.display().to_string());
    let got = checks(&untrusted, &expected, 10.0, &[]).await;
    assert_eq!((got.len(), got[0].result), (1, CheckResult::Failed), "{got:#?}");
    assert!(got[0].detail.contains("TLS handshake"), "{}", got[0].detail);

    let plaintext = target(&r, &r.password, SslMode::Disable);
    let got = checks(&plaintext, &expected, 10.0, &[]).await;
    assert_eq!(
        (got.len(), got[0].result),
        (1, CheckResult::Failed),
        "a TLS-only server answered plaintext: {got:#?}"
    );
}

/// The sharded checks against what is not a whole cluster fail clearly, never crash: a server without cluster
/// mode (its `CLUSTER SLOTS` error is the failed check), a wrong password, a key asked in a database other
/// than 0 (cluster mode has db0 only).
#[tokio::test]
async fn cluster_checks_fail_clearly_on_a_plain_server_a_wrong_password_and_a_database_other_than_0() {
    use lifeboat::caches::check::cluster;
    let plain = Redis::start_tls(&[]);
    let checks = cluster::checks_with(&target(&plain, &plain.password, SslMode::VerifyFull), None, 5.0, &[]).await;
    let r = results(&checks);
    assert_eq!(r["connect"].0, CheckResult::Passed, "{checks:?}");
    assert_eq!(r["cluster slots"].0, CheckResult::Failed);
    assert!(r["cluster slots"].1.contains("cluster support disabled"), "{checks:?}");
    assert_eq!(checks.len(), 2, "nothing else runs: {checks:?}");

    let c = lifeboat_tests::redis::RedisCluster::start_tls(2);
    c.load("SET feature:dark-mode on\n");
    let at = |password: &str| CacheTarget {
        host: "localhost".into(),
        port: c.ports[1],
        user: None,
        password: Some(password.into()),
        tls: TlsSettings {
            mode: SslMode::VerifyFull,
            ca_bundle: Some(c.ca_file.display().to_string()),
        },
    };
    let wrong = cluster::checks_with(&at("not-the-password"), None, 5.0, &[]).await;
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert_eq!(
        (wrong[0].name.as_str(), wrong[0].result),
        ("connect", CheckResult::Failed)
    );
    let keys = [
        KeyCheck {
            name: "flags in db0".into(),
            pattern: "feature:*".into(),
            db: 0,
        },
        KeyCheck {
            name: "flags in db2".into(),
            pattern: "feature:*".into(),
            db: 2,
        },
    ];
    let expected = BTreeMap::from([(0, DbKeys { keys: 1, expires: 0 })]);
    let checks = cluster::checks_with(&at(&c.password), Some(&expected), 5.0, &keys).await;
    let r = results(&checks);
    assert_eq!(r["cluster slots"].0, CheckResult::Passed, "{checks:?}");
    assert_eq!(r["keys in db0"].0, CheckResult::Passed, "{checks:?}");
    assert_eq!(r["flags in db0"].0, CheckResult::Passed, "{checks:?}");
    assert_eq!(r["flags in db2"].0, CheckResult::Failed);
    assert!(r["flags in db2"].1.contains("db0 only"), "{checks:?}");
}
