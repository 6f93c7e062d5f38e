//! Benchmark: wall time of a full four-step rotation (createSecret, setSecret, testSecret, finishSecret) against
//! the local services (moto's Secrets Manager, a real PostgreSQL with scram-sha-256), for both strategies.
//!
//! Figures are relative to references measured in the same run on the same services: one PostgreSQL login
//! (scram-sha-256, the cost every step pays at least once) and one GetSecretValue call. Prints; asserts nothing.
//! `BENCH_ROUNDS` sets the number of rotations per strategy (default 20).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{Postgres, SUPERUSER};
use rotate::settings::RotateSettings;
use serde_json::json;

const REGION: &str = "us-east-1";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let moto = Moto::start();
    let pg = Postgres::start();
    let config = moto.config(REGION);
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let env: BTreeMap<String, String> = BTreeMap::from([("LIFEBOAT_DB_SSLMODE".into(), "disable".into())]);
    let deps = rotate::Deps::new(
        &config,
        RotateSettings::from_env(&move |n: &str| env.get(n).cloned()).unwrap(),
    );

    pg.psql("postgres", "CREATE DATABASE app").unwrap();
    pg.psql("app", "CREATE ROLE app LOGIN PASSWORD 'bench-password-1'")
        .unwrap();
    let secret = |user: &str, password: &str, master: Option<&str>| {
        let mut v = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": user,
                           "password": password, "dbname": "app"});
        if let Some(m) = master {
            v["masterarn"] = json!(m);
        }
        v.to_string()
    };
    let create = |name: &'static str, value: String| {
        let sm = sm.clone();
        async move {
            sm.create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .unwrap()
                .arn()
                .unwrap()
                .to_owned()
        }
    };
    let master = create("bench/master", secret(SUPERUSER, &pg.password, None)).await;
    let single = create("bench/single", secret("app", "bench-password-1", None)).await;
    pg.psql("app", "CREATE ROLE svc LOGIN PASSWORD 'bench-password-2'")
        .unwrap();
    let alternating = create("bench/alternating", secret("svc", "bench-password-2", Some(&master))).await;

    // References: a scram-sha-256 login, and a GetSecretValue call.
    let mut logins = Vec::new();
    let mut reads = Vec::new();
    let target = lifeboat::postgres::db::Target {
        host: "127.0.0.1".into(),
        port: pg.port,
        dbname: "app".into(),
        user: SUPERUSER.into(),
        password: pg.password.clone(),
        tls: lifeboat::postgres::db::TlsSettings {
            mode: lifeboat::postgres::db::SslMode::Disable,
            ca_bundle: None,
        },
    };
    for _ in 0..rounds {
        let t = Instant::now();
        let c = lifeboat::postgres::db::connect(&target, Duration::from_secs(5))
            .await
            .unwrap();
        c.simple_query("SELECT 1").await.unwrap();
        logins.push(t.elapsed());
        let t = Instant::now();
        sm.get_secret_value().secret_id(&master).send().await.unwrap();
        reads.push(t.elapsed());
    }
    let login = median(logins);
    let read = median(reads);

    println!("Rotation benchmark: {rounds} rotations per strategy, moto + PostgreSQL on loopback\n");
    println!("reference: one scram-sha-256 login + SELECT 1   {}", ms(login));
    println!("reference: one GetSecretValue                   {}\n", ms(read));
    println!(
        "{:<18} {:>12} {:>12} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "strategy", "create", "set", "test", "finish", "total", "x login", "x read"
    );
    for (name, id) in [("single-user", &single), ("alternating-users", &alternating)] {
        let mut per_step: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let mut totals = Vec::new();
        for _ in 0..rounds {
            let token = lifeboat_tests::stage_rotation(&sm, id).await;
            let total = Instant::now();
            for step in lifeboat_tests::ROTATION_STEPS {
                let t = Instant::now();
                let event = json!({"Step": step, "SecretId": id, "ClientRequestToken": token});
                rotate::handle(&deps, event, None)
                    .await
                    .unwrap_or_else(|e| panic!("{name} {step}: {e}"));
                per_step.entry(step).or_default().push(t.elapsed());
            }
            totals.push(total.elapsed());
            lifeboat_tests::end_rotation(&sm, id, &token).await.unwrap();
        }
        let total = median(totals);
        println!(
            "{:<18} {:>12} {:>12} {:>12} {:>12} {:>12} {:>9.1} {:>9.1}",
            name,
            ms(median(per_step.remove("createSecret").unwrap())),
            ms(median(per_step.remove("setSecret").unwrap())),
            ms(median(per_step.remove("testSecret").unwrap())),
            ms(median(per_step.remove("finishSecret").unwrap())),
            ms(total),
            total.as_secs_f64() / login.as_secs_f64(),
            total.as_secs_f64() / read.as_secs_f64(),
        );
    }
    println!("\n(medians; each step also publishes its metrics to moto's CloudWatch, included in the times)");
}
