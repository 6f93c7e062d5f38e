//! Benchmark: the export pipeline against pg_dump alone, on a generated database of `BENCH_GB` GB (default 1).
//!
//! From one run it prints wall time and peak RSS of
//!   1. `pg_dump -Fc -Z0 > /dev/null` (the reference: the dump alone, no compression, no upload),
//!   2. `pg_dump -Fc > file` (pg_dump's own compression, the size reference),
//!   3. the export binary run standalone (pg_dump -Z0 → SHA-256 → zstd → age → S3 multipart upload, with the
//!      plaintext also parsed by pg_restore), uploading to a local S3-compatible server (s3s-fs) on loopback,
//!
//! then the ratios against the targets (export wall ≤ 1.3x the raw dump; the function's own peak RSS ≤ 64 MiB;
//! output no larger than `pg_dump -Fc`'s), and the endpoint's own upload speed, to show it is not the bottleneck.
//! Times and peak RSS of the commands come from GNU time (`/usr/bin/time -f '%e %M'`); the export's own peak RSS
//! (without its pg_dump and pg_restore children) from its summary. Prints; asserts nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_rds::types::Tag;
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::{free_port, repo_root, sdk_config};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-bench";
const MIB: f64 = 1024.0 * 1024.0;

struct Measured {
    seconds: f64,
    /// Peak RSS of the process and the children it waited for, in bytes.
    peak_rss: u64,
    stdout: Vec<u8>,
}

/// Runs a command under GNU time; `stdout` goes to `out` (a file or /dev/null) or is captured.
fn measure(cmd: &[&str], env: &[(&str, String)], out: Option<&Path>) -> Measured {
    let times = tempfile::NamedTempFile::new().unwrap();
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "%e %M", "-o"]).arg(times.path()).args(cmd);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).stderr(Stdio::inherit());
    match out {
        Some(path) => {
            c.stdout(std::fs::File::create(path).unwrap());
        }
        None => {
            c.stdout(Stdio::piped());
        }
    }
    let output = c
        .output()
        .unwrap_or_else(|e| panic!("/usr/bin/time is needed: `apt-get install time` (make bench does): {e}"));
    assert!(output.status.success(), "{cmd:?} failed: {}", output.status);
    let text = std::fs::read_to_string(times.path()).unwrap();
    let last = text.lines().last().unwrap_or_default().to_owned();
    let mut parts = last.split_whitespace();
    let seconds: f64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("time said: {text}"));
    let kib: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Measured {
        seconds,
        peak_rss: kib * 1024,
        stdout: output.stdout,
    }
}

/// Fills database `bench` until it is at least `bytes` large: an event log with mixed columns (integers,
/// timestamps, short categorical text, repetitive prose with numbers, jsonb), the shape that dominates real
/// application databases, so compression ratios mean something.
fn generate(pg: &Postgres, bytes: u64) -> u64 {
    pg.psql("postgres", "CREATE DATABASE bench").unwrap();
    pg.psql(
        "bench",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL);
         INSERT INTO users SELECT g, 'user' || g || '@example.com', now() - g * interval '1 minute'
           FROM generate_series(1, 200000) g;
         CREATE TABLE events (id bigserial PRIMARY KEY, user_id bigint NOT NULL, at timestamptz NOT NULL,
           kind text NOT NULL, body text NOT NULL, attrs jsonb NOT NULL);",
    )
    .unwrap();
    let batch = "INSERT INTO events (user_id, at, kind, body, attrs)
        SELECT (random() * 199999)::bigint + 1,
               now() - (random() * 365) * interval '1 day',
               (ARRAY['login','logout','view','edit','share','comment','upload','delete'])[1 + (random() * 7)::int],
               'User ' || (random() * 100000)::int || ' opened project ' || (random() * 5000)::int
                 || ' and changed ' || (random() * 40)::int || ' fields; previous revision '
                 || md5(random()::text) || ' was kept for audit.',
               jsonb_build_object('ip', '10.' || (random() * 255)::int || '.' || (random() * 255)::int || '.1',
                                  'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)','Mozilla/5.0 (Macintosh)',
                                                  'curl/8.5.0','okhttp/4.12'])[1 + (random() * 3)::int],
                                  'latency_ms', (random() * 900)::int,
                                  'flags', jsonb_build_array(random() > 0.5, random() > 0.9))
        FROM generate_series(1, 500000)";
    loop {
        let size: u64 = pg
            .psql("bench", "SELECT pg_database_size('bench')")
            .unwrap()
            .parse()
            .unwrap();
        if size >= bytes {
            pg.psql("bench", "VACUUM ANALYZE").unwrap();
            return size;
        }
        pg.psql("bench", batch).unwrap();
        print!(".");
        std::io::Write::flush(&mut std::io::stdout()).ok();
    }
}

struct S3s {
    child: Child,
    endpoint: String,
}

impl Drop for S3s {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_s3s(root: &Path) -> S3s {
    let bin = repo_root().join(".bench/tools/bin/s3s-fs");
    assert!(
        bin.exists(),
        "{} is missing: `make bench` installs it (cargo install --locked s3s-fs --version ~0.14 --features binary \
         --root .bench/tools)",
        bin.display()
    );
    let port = free_port();
    let child = Command::new(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "testing", "--secret-key", "testing"])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    S3s {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

#[tokio::main]
async fn main() {
    let gb: f64 = std::env::var("BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let export_bin = repo_root().join("target/release/export");
    assert!(
        export_bin.exists(),
        "{} is missing: `make bench` builds it (cargo build --release -p export)",
        export_bin.display()
    );
    let scratch = repo_root().join(".bench/run");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("s3")).unwrap();

    println!("Export benchmark: generating a database of at least {gb} GB");
    let pg = Postgres::start();
    let started = Instant::now();
    let size = generate(&pg, (gb * 1e9) as u64);
    println!(
        "\n  database `bench`: {} (pg_database_size), generated in {:.0} s",
        mib(size),
        started.elapsed().as_secs_f64()
    );

    let moto = Moto::start();
    let config = moto.config(REGION);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret = json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": SUPERUSER,
                        "password": pg.password, "dbname": "bench"});
    secrets
        .create_secret()
        .name("lifeboat/bench")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    aws_sdk_rds::Client::new(&config)
        .create_db_instance()
        .db_instance_identifier("bench")
        .db_instance_class("db.t4g.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("x")
        .master_user_password("not-a-real-password-1")
        .tags(Tag::builder().key("lifeboat:secret").value("lifeboat/bench").build())
        .send()
        .await
        .unwrap();
    let s3s = start_s3s(&scratch.join("s3"));
    let s3 = aws_sdk_s3::Client::new(&sdk_config(&s3s.endpoint, REGION));
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();

    let bin = postgres::bin_dir();
    let pg_dump = bin.join("pg_dump").display().to_string();
    let pg_restore = bin.join("pg_restore").display().to_string();
    let libpq = vec![
        ("PGHOST", "127.0.0.1".to_owned()),
        ("PGPORT", pg.port.to_string()),
        ("PGUSER", SUPERUSER.to_owned()),
        ("PGPASSWORD", pg.password.clone()),
        ("PGDATABASE", "bench".to_owned()),
    ];

    // A warm-up dump, so that every measured run reads the database from the page cache.
    measure(&[&pg_dump, "-Fc", "-Z0"], &libpq, Some(Path::new("/dev/null")));

    println!("  1/3 pg_dump -Fc -Z0 > /dev/null");
    let raw = measure(&[&pg_dump, "-Fc", "-Z0"], &libpq, Some(Path::new("/dev/null")));
    println!("  2/3 pg_dump -Fc > file");
    let fc_file: PathBuf = scratch.join("bench.dump");
    let fc = measure(&[&pg_dump, "-Fc"], &libpq, Some(&fc_file));
    let fc_size = std::fs::metadata(&fc_file).unwrap().len();
    std::fs::remove_file(&fc_file).ok();

    println!("  3/3 export (pg_dump -Z0 | sha256 | zstd | age | S3 multipart; pg_restore verifying) to s3s-fs");
    let setting = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| format!("{default} (default)"));
    println!(
        "      zstd level {}, zstd workers {}, parts in flight {}",
        setting("LIFEBOAT_ZSTD_LEVEL", &export::settings::DEFAULT_ZSTD_LEVEL.to_string()),
        setting("LIFEBOAT_ZSTD_WORKERS", "0"),
        setting("LIFEBOAT_PARTS_IN_FLIGHT", "2")
    );
    let identity = age::x25519::Identity::generate();
    let env = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_S3", s3s.endpoint.clone()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("LIFEBOAT_BUCKET", BUCKET.to_owned()),
        ("LIFEBOAT_AGE_RECIPIENTS", identity.to_public().to_string()),
        // The secret points at the local PostgreSQL, not at an RDS endpoint.
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
        ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
        ("LIFEBOAT_DATABASES", "bench".to_owned()),
        ("LIFEBOAT_PG_DUMP", pg_dump.clone()),
        ("LIFEBOAT_PG_RESTORE", pg_restore.clone()),
        ("LIFEBOAT_EVENT", r#"{"database": "bench"}"#.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let export = measure(&[export_bin.to_str().unwrap()], &env, None);
    let summary: Value = serde_json::from_slice(&export.stdout).unwrap_or_else(|e| {
        panic!(
            "export printed no summary ({e}): {}",
            String::from_utf8_lossy(&export.stdout)
        )
    });
    let report = &summary["exports"][0];
    assert_eq!(report["outcome"], "exported", "{summary}");
    let stored = report["stored_bytes"].as_u64().unwrap();
    let plaintext = report["plaintext_bytes"].as_u64().unwrap();
    let own_rss = summary["peak_rss_bytes"].as_u64().unwrap();

    // The endpoint alone: the stored object uploaded again as one PutObject from a file.
    let key = report["key"].as_str().unwrap().to_owned();
    let copy = scratch.join("object");
    let object = s3.get_object().bucket(BUCKET).key(&key).send().await.unwrap();
    std::fs::write(&copy, object.body.collect().await.unwrap().into_bytes()).unwrap();
    let t = Instant::now();
    s3.put_object()
        .bucket(BUCKET)
        .key("endpoint-check")
        .body(aws_sdk_s3::primitives::ByteStream::from_path(&copy).await.unwrap())
        .send()
        .await
        .unwrap();
    let endpoint_secs = t.elapsed().as_secs_f64();
    drop(s3s);
    let _ = std::fs::remove_dir_all(&scratch);

    let target = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!(
        "\nResults ({} database, {} pg_dump archive, 2 cores shared with the server)\n",
        mib(size),
        mib(plaintext)
    );
    println!("{:<46} {:>9} {:>12} {:>12}", "run", "wall", "peak RSS", "output");
    println!(
        "{:<46} {:>8.1}s {:>12} {:>12}",
        "pg_dump -Fc -Z0 > /dev/null",
        raw.seconds,
        mib(raw.peak_rss),
        mib(plaintext)
    );
    println!(
        "{:<46} {:>8.1}s {:>12} {:>12}",
        "pg_dump -Fc > file",
        fc.seconds,
        mib(fc.peak_rss),
        mib(fc_size)
    );
    println!(
        "{:<46} {:>8.1}s {:>12} {:>12}",
        "export (this process only)",
        export.seconds,
        mib(own_rss),
        mib(stored)
    );
    println!(
        "{:<46} {:>9} {:>12}",
        "export (largest process of its tree)",
        "",
        mib(export.peak_rss)
    );
    let wall_ratio = export.seconds / raw.seconds;
    let size_ratio = stored as f64 / fc_size as f64;
    println!();
    println!(
        "export wall / raw dump wall      {wall_ratio:>6.2}x   target <= 1.30x   {}",
        target(wall_ratio <= 1.3)
    );
    println!(
        "export wall / pg_dump -Fc wall   {:>6.2}x   (for reference)",
        export.seconds / fc.seconds
    );
    println!(
        "export peak RSS (own)            {:>6.1} MiB  target <= 64 MiB  {}",
        own_rss as f64 / MIB,
        target(own_rss as f64 <= 64.0 * MIB)
    );
    println!(
        "stored size / pg_dump -Fc size   {size_ratio:>6.2}x   target <= 1.00x   {}",
        target(size_ratio <= 1.0)
    );
    println!(
        "endpoint alone: PutObject of the stored object at {:.0} MiB/s; the export stored {:.0} MiB/s",
        stored as f64 / MIB / endpoint_secs,
        stored as f64 / MIB / export.seconds
    );
}
