//! Benchmark: the masked staging refresh against an unmasked streamed restore of the same export, on the export
//! benchmark's generated database of `BENCH_GB` GB (default 1).
//!
//! One run exports the database once (the export binary standalone, age-encrypted, to s3s-fs on loopback; see
//! `lifeboat_tests::bench::export_once`), then times, in this process, `BENCH_RUNS` times (default 3) round-robin:
//!   1. the streamed restore of the export into a new database (`restore::restore`, no rewrite): S3 → SHA-256 →
//!      age → zstd → pg_restore, then every table's row count checked;
//!   2. the refresh of the same export (`lifeboat::refresh::refresh`): the same stream with the masking between
//!      zstd and pg_restore, then its proof (masking figures, constraints, indexes) and its mark. Masked: the
//!      users' emails by keyed hash, the events' prose by a fake text (`BENCH_MASKING=none` refreshes with
//!      nothing to mask, the orchestration's own cost).
//!
//! and prints the medians and the ratio against the target (refresh ≤ 1.3x the restore). Asserts nothing about
//! speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat::mask::rewrite::MaskKey;
use lifeboat::mask::rules::RefreshRule;
use lifeboat::postgres::archive::restore;
use lifeboat::postgres::archive::{Counters, Which};
use lifeboat::postgres::db::{SslMode, Target, TlsSettings};
use lifeboat_tests::bench::{export_once, generate, mib, release_binary, Exported};
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::repo_root;
use lifeboat_tests::stats;
use serde_json::json;

const BUCKET: &str = "lifeboat-bench";

/// Drops a database and the role a restore made to own it (`<name>_owner`), so that the next round starts anew.
fn drop_database(pg: &Postgres, name: &str) {
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    pg.psql("postgres", &format!("DROP ROLE IF EXISTS {name}_owner"))
        .unwrap();
}

fn rule(masked: bool) -> RefreshRule {
    let masking = if masked {
        json!({"tables": {
            "public.users": {"email": "hash"},
            "public.events": {"body": "fake:text"}
        }})
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "name": "bench", "from": "bench", "export": "full",
        "into": {"instance": "bench", "database": "bench_staging"}, "masking": masking
    }))
    .unwrap()
}

#[tokio::main]
async fn main() {
    let gb: f64 = std::env::var("BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);
    let masked = std::env::var("BENCH_MASKING").map_or(true, |v| v != "none");
    let export_bin = release_binary("export", "export");
    let scratch = repo_root().join(".bench/refresh-run");
    let _ = std::fs::remove_dir_all(&scratch);

    println!("Refresh benchmark: generating a database of at least {gb} GB");
    let pg = Postgres::start();
    let started = Instant::now();
    let size = generate(&pg, (gb * 1e9) as u64);
    println!(
        "\n  database `bench`: {} (pg_database_size), generated in {:.0} s",
        mib(size),
        started.elapsed().as_secs_f64()
    );
    let Exported {
        moto: _moto,
        s3s,
        s3,
        identity,
        manifest_key,
        manifest,
        ..
    } = export_once(&pg, &scratch, BUCKET, &export_bin).await;
    let identities = [identity];
    let pg_restore = postgres::bin_dir().join("pg_restore").display().to_string();
    let server = Target {
        host: "127.0.0.1".into(),
        port: pg.port,
        dbname: "postgres".into(),
        user: SUPERUSER.into(),
        password: pg.password.clone(),
        tls: TlsSettings {
            mode: SslMode::Disable,
            ca_bundle: None,
        },
    };
    let rule = rule(masked);
    let key = MaskKey(b"the benchmark's masking key, 32 bytes".to_vec());
    let which = Which::Manifest(manifest_key.clone());
    let first: DateTime<Utc> = "2026-12-07T04:00:00Z".parse().unwrap();

    println!(
        "  {runs} rounds of the two, round-robin (BENCH_RUNS); the refresh {}",
        if masked {
            "masks emails and prose"
        } else {
            "masks nothing (BENCH_MASKING=none)"
        }
    );
    let mut walls: [Vec<f64>; 2] = Default::default();
    for (n, command) in stats::schedule(2, runs).into_iter().enumerate() {
        let round = n / 2 + 1;
        let counters = Arc::new(Counters::default());
        let started = Instant::now();
        if command == 0 {
            println!("  [{round}/{runs}] streamed restore, nothing rewritten (the reference)");
            let into = Target {
                dbname: "bench_plain".into(),
                ..server.clone()
            };
            restore::restore(restore::Request {
                s3: &s3,
                bucket: BUCKET,
                manifest: &manifest,
                tables: &[],
                identities: &identities,
                pg_restore: &pg_restore,
                into: &into,
                maintenance_db: "postgres",
                counters: &counters,
                interrupt: None,
                jobs: None,
                stop_at: None,
                rewrite: None,
            })
            .await
            .unwrap();
            walls[0].push(started.elapsed().as_secs_f64());
            drop_database(&pg, "bench_plain");
        } else {
            println!("  [{round}/{runs}] refresh: the same stream masked, then its proof");
            let now = first + chrono::Duration::minutes(n as i64);
            let refreshed = lifeboat::refresh::refresh(lifeboat::refresh::Request {
                s3: &s3,
                bucket: BUCKET,
                rule: &rule,
                which: &which,
                identities: &identities,
                key: &key,
                pg_restore: &pg_restore,
                server: &server,
                counters: &counters,
                interrupt: None,
                stop_at: None,
                now,
            })
            .await
            .unwrap_or_else(|e| panic!("the refresh failed: {e}"));
            walls[1].push(started.elapsed().as_secs_f64());
            let values: u64 = refreshed
                .masked
                .tables
                .iter()
                .flat_map(|t| &t.columns)
                .map(|c| c.values)
                .sum();
            println!("      {values} values masked");
            drop_database(&pg, &refreshed.database);
        }
    }
    drop(s3s);
    let _ = std::fs::remove_dir_all(&scratch);

    let [reference, refresh] = walls.map(|w| stats::spread(&w).expect("each ran at least once"));
    println!(
        "\nResults ({} database, {} plaintext archive, {} stored; 2 cores shared with the server; median of {runs} \
         runs, [min-max])\n",
        mib(size),
        mib(manifest.plaintext.bytes),
        mib(manifest.stored.bytes),
    );
    let row = |name: &str, s: &stats::Spread| {
        let wall = format!("{:.1}s [{:.1}-{:.1}]", s.median, s.min, s.max);
        println!("{name:<58} {wall:>22}");
    };
    row("streamed restore, nothing rewritten (reference)", &reference);
    row(
        if masked {
            "masked refresh (restore, masking, proof)"
        } else {
            "refresh with nothing to mask"
        },
        &refresh,
    );
    let ratio = stats::ratio(&refresh, &reference).unwrap_or(f64::NAN);
    println!(
        "\nrefresh wall / restore wall      {ratio:>6.2}x   target <= 1.3x   {}",
        if ratio <= 1.3 { "met" } else { "NOT MET" }
    );
}
