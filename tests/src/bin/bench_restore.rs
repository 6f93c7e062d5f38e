//! Benchmark: a restore from an export against `pg_restore` of the same archive from a local file, on the export
//! benchmark's generated database of `BENCH_GB` GB (default 1).
//!
//! One run exports the database once (the export binary standalone, age-encrypted, to s3s-fs on loopback), writes
//! the export's verified plaintext archive to a local file, then prints wall time and peak RSS of
//!   1. `pg_restore -d <new> <file>` (the reference: the archive already local, decrypted and decompressed),
//!   2. the streamed restore: the restore function's binary in its standalone mode (the ECS task's), the event
//!      `restore-export` of the whole export: S3 GetObject → SHA-256 → age → zstd → pg_restore's standard input,
//!      then every table's row count checked against the manifest,
//!   3. the CLI's restore (`lifeboat restore`), the same path with its progress reporting,
//!
//! each `BENCH_RUNS` times (default 3) round-robin, and the ratios of the medians against the reference's, beside
//! the targets (streamed wall ≤ 1.15x; own memory ≤ 64 MiB).
//! Wall time and peak RSS come from GNU time (`/usr/bin/time -f '%e %M'`: the largest process of the command's
//! tree, which may be pg_restore); the restore function's own peak RSS from its result. Asserts nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lifeboat::bucket::manifest::Manifest;
use lifeboat::postgres::archive::{Counters, Destination};
use lifeboat_tests::bench::{export_once, generate, measure, mib, release_binary, Exported, Measured, MIB};
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::repo_root;
use lifeboat_tests::stats::{self, Spread};
use serde_json::{json, Value};

const BUCKET: &str = "lifeboat-bench";

/// Drops a restored database and the role a restore from an export made to own it (`<name>_owner`), so that the
/// next round restores anew.
fn drop_database(pg: &Postgres, name: &str) {
    pg.psql("postgres", &format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    pg.psql("postgres", &format!("DROP ROLE IF EXISTS {name}_owner"))
        .unwrap();
}

#[tokio::main]
async fn main() {
    let gb: f64 = std::env::var("BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let export_bin = release_binary("export", "export");
    let restore_bin = release_binary("restore", "restore");
    let cli_bin = release_binary("lifeboat", "lifeboat-cli");
    let scratch = repo_root().join(".bench/restore-run");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("s3")).unwrap();

    println!("Restore benchmark: generating a database of at least {gb} GB");
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
        identity_text,
        manifest_key,
        manifest,
        aws,
    } = export_once(&pg, &scratch, BUCKET, &export_bin).await;
    let identity_file = scratch.join("identity.txt");
    std::fs::write(&identity_file, format!("{identity_text}\n")).unwrap();
    let pg_restore = postgres::bin_dir().join("pg_restore").display().to_string();

    // The reference's input: the export's own plaintext archive, verified on the way (checksums, age, zstd).
    let archive = scratch.join("bench.dump");
    let file = std::fs::File::create(&archive).unwrap();
    lifeboat::postgres::archive::stream::stream(
        &s3,
        BUCKET,
        &manifest,
        std::slice::from_ref(&identity),
        Destination::File(file),
        Arc::new(Counters::default()),
    )
    .await
    .unwrap();
    let archive_path = archive.display().to_string();

    let libpq = vec![
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", pg.port.to_string()),
        ("PGUSER", SUPERUSER.to_owned()),
        ("PGPASSWORD", pg.password.clone()),
    ];
    let mut restore_env = aws.clone();
    restore_env.extend([
        // The console's entry, as the restore task runs it (restore-export is a console action).
        ("LIFEBOAT_RESTORE_ENTRY", "console".to_owned()),
        // The secret names the local server, not the emulator's endpoint for the database (item 14's pinning).
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
        ("LIFEBOAT_AGE_IDENTITY_SECRET", "lifeboat/bench-age".to_owned()),
        (
            "LIFEBOAT_EVENT",
            json!({"action": "restore-export", "database": "bench", "export": manifest_key,
                   "into": {"database": "bench_streamed"}})
            .to_string(),
        ),
    ]);
    let mut cli_env = aws.clone();
    cli_env.push(("PGPASSWORD", pg.password.clone()));
    let url = format!("postgres://{SUPERUSER}@127.0.0.1:{}/bench_cli?sslmode=disable", pg.port);
    let identity_arg = identity_file.display().to_string();

    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);
    println!("  {runs} rounds of the three commands, round-robin (BENCH_RUNS)");
    let mut results: [Vec<Measured>; 3] = Default::default();
    let mut own_rss = Vec::new();
    let mut phases: Vec<Vec<f64>> = Vec::new();
    for (n, command) in stats::schedule(3, runs).into_iter().enumerate() {
        let round = n / 3 + 1;
        let m = match command {
            0 => {
                println!("  [{round}/{runs}] pg_restore -d <new database> <local plaintext archive> (the reference)");
                pg.psql("postgres", "CREATE DATABASE bench_ref").unwrap();
                let m = measure(
                    &[
                        &pg_restore,
                        "--no-owner",
                        "--no-privileges",
                        "--exit-on-error",
                        "-d",
                        "bench_ref",
                        &archive_path,
                    ],
                    &libpq,
                    Some(Path::new("/dev/null")),
                );
                drop_database(&pg, "bench_ref");
                m
            }
            1 => {
                println!("  [{round}/{runs}] streamed restore: the restore binary standalone, event restore-export (S3 → sha256 → age → zstd → pg_restore)");
                let m = measure(&[&restore_bin], &restore_env, None);
                let (rss, durations) = verified_result(&m);
                own_rss.push(rss as f64);
                phases.push(durations);
                drop_database(&pg, "bench_streamed");
                m
            }
            _ => {
                println!("  [{round}/{runs}] lifeboat restore (the CLI, same path, with progress)");
                let m = measure(
                    &[
                        &cli_bin,
                        "restore",
                        "bench",
                        "--manifest",
                        &manifest_key,
                        "--into",
                        &url,
                        "--identity-file",
                        &identity_arg,
                    ],
                    &cli_env,
                    Some(Path::new("/dev/null")),
                );
                drop_database(&pg, "bench_cli");
                m
            }
        };
        results[command].push(m);
    }
    std::fs::remove_file(&archive).ok();
    drop(s3s);
    let _ = std::fs::remove_dir_all(&scratch);

    let [reference, streamed, cli] = results.map(|r| Figures::of(&r));
    let own_rss = stats::spread(&own_rss).expect("the streamed restore ran");
    report(size, &manifest, &reference, &streamed, &own_rss, &cli);
    let medians: Vec<String> = PHASES
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let values: Vec<f64> = phases.iter().map(|d| d[i]).collect();
            let median = stats::spread(&values).map_or(f64::NAN, |s| s.median);
            format!("{p} {median:.1} s")
        })
        .collect();
    println!(
        "streamed restore's own phases (median; download, decrypt and restore overlap): {}",
        medians.join(", ")
    );
}

/// The phases of the streamed restore its result reports (seconds), in the order it runs them.
const PHASES: [&str; 5] = ["prepare", "download", "decrypt", "restore", "verify"];

/// The restore function's own peak RSS and its phases' durations from its result, after checking it says the
/// restore was verified.
fn verified_result(m: &Measured) -> (u64, Vec<f64>) {
    let stdout = String::from_utf8_lossy(&m.stdout);
    let result: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("verified").is_some())
        .unwrap_or_else(|| panic!("the restore printed no result: {stdout}"));
    assert_eq!(result["verified"], true, "{result}");
    let phases = PHASES
        .iter()
        .map(|p| result["durations"][format!("{p}_seconds")].as_f64().unwrap_or(f64::NAN))
        .collect();
    (result["peak_rss_bytes"].as_u64().unwrap_or(0), phases)
}

/// Wall time and peak RSS of one command over its runs.
struct Figures {
    wall: Spread,
    rss: Spread,
}

impl Figures {
    fn of(runs: &[Measured]) -> Self {
        let wall: Vec<f64> = runs.iter().map(|m| m.seconds).collect();
        let rss: Vec<f64> = runs.iter().map(|m| m.peak_rss as f64).collect();
        Self {
            wall: stats::spread(&wall).expect("every command ran at least once"),
            rss: stats::spread(&rss).expect("every command ran at least once"),
        }
    }
}

fn report(size: u64, manifest: &Manifest, reference: &Figures, streamed: &Figures, own_rss: &Spread, cli: &Figures) {
    let target = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!(
        "\nResults ({} database, {} plaintext archive, {} stored; 2 cores shared with the server; median of {} runs, [min-max])\n",
        mib(size),
        mib(manifest.plaintext.bytes),
        mib(manifest.stored.bytes),
        reference.wall.runs
    );
    println!("{:<58} {:>22} {:>14}", "run", "wall", "peak RSS");
    let row = |name: &str, f: &Figures| {
        let wall = format!("{:.1}s [{:.1}-{:.1}]", f.wall.median, f.wall.min, f.wall.max);
        println!("{name:<58} {wall:>22} {:>14}", mib(f.rss.median as u64));
    };
    row("pg_restore from a local plaintext file (reference)", reference);
    row("streamed restore (restore binary; largest process)", streamed);
    row("lifeboat restore (largest process)", cli);
    println!(
        "{:<58} {:>22} {:>14}",
        "streamed restore (its own process)",
        "",
        mib(own_rss.median as u64)
    );
    let ratio = |f: &Figures| stats::ratio(&f.wall, &reference.wall).unwrap_or(f64::NAN);
    println!();
    println!(
        "streamed wall / reference wall   {:>6.2}x   target <= 1.15x   {}",
        ratio(streamed),
        target(ratio(streamed) <= 1.15)
    );
    println!(
        "lifeboat wall / reference wall   {:>6.2}x   (for reference)",
        ratio(cli)
    );
    println!(
        "streamed peak RSS (own)          {:>6.1} MiB  target <= 64 MiB  {}",
        own_rss.median / MIB,
        target(own_rss.median <= 64.0 * MIB)
    );
}
