//! Benchmark: the export pipeline against pg_dump alone, on a generated database of `BENCH_GB` GB (default 1).
//!
//! It measures
//!   1. `pg_dump -Fc -Z0 > /dev/null` (the reference: the dump alone, no compression, no upload),
//!   2. `pg_dump -Fc > file` (pg_dump's own compression, the size reference),
//!   3. the export binary run standalone (pg_dump -Z0 → SHA-256 → zstd → age → S3 multipart upload, with the
//!      plaintext also parsed by pg_restore), uploading to a local S3-compatible server (s3s-fs) on loopback,
//!
//! each `BENCH_RUNS` times (default and minimum 3), round-robin with the starting command rotating from round to
//! round (so that no command always gets the cache another left warm), and prints the median, minimum and maximum
//! of every figure; ratios are of medians (see `lifeboat_tests::stats`). Then the ratios against the targets
//! (export wall ≤ 1.1x the raw dump in the Lambda shape, 1.3x in the shared one; export CPU ≤ 3x the raw dump's,
//! whole process trees; the function's own peak RSS ≤ 64 MiB; output no larger than `pg_dump -Fc`'s),
//! and the endpoint's own upload speed, to show it is not the bottleneck. Wall time, peak RSS and CPU time (user +
//! sys) of each command come from GNU time (`/usr/bin/time -f '%e %M %U %S'`); the export's own peak RSS (without
//! its pg_dump and pg_restore children) from its summary. Prints; asserts nothing about speed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use aws_sdk_rds::types::Tag;
use lifeboat_tests::bench::{generate, start_s3s};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use lifeboat_tests::stats::{self, Spread};
use lifeboat_tests::{repo_root, sdk_config};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-bench";
const MIB: f64 = 1024.0 * 1024.0;
/// The stages of the export's `cpu_seconds`, in the order of the stream.
const STAGES: [&str; 9] = [
    "pg_dump",
    "pg_restore",
    "hashing",
    "compression",
    "encryption",
    "upload",
    "pipes",
    "row_counts",
    "other",
];

struct Measured {
    seconds: f64,
    /// Peak RSS of the largest process among the command and the children it waited for, in bytes.
    peak_rss: u64,
    /// User + system CPU seconds of the command and every child it waited for (GNU time's figures include the
    /// children a process reaped: the whole process tree when each waits for its own).
    cpu: f64,
    stdout: Vec<u8>,
}

/// Where a command's stdout goes.
#[derive(Clone)]
enum Out {
    /// Discarded (`/dev/null`).
    Null,
    /// A file, measured and then deleted after each run.
    File(PathBuf),
    Capture,
}

/// One command under test.
struct Cmd {
    name: &'static str,
    argv: Vec<String>,
    env: Vec<(&'static str, String)>,
    out: Out,
}

/// Runs a command under GNU time, pinned to the CPUs `cpus` when given (`taskset -c`: every child inherits it).
fn measure(cmd: &Cmd, cpus: Option<&str>) -> Measured {
    let times = tempfile::NamedTempFile::new().unwrap();
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "%e %M %U %S", "-o"]).arg(times.path());
    if let Some(cpus) = cpus {
        c.args(["taskset", "-c", cpus]);
    }
    c.args(&cmd.argv);
    for (k, v) in &cmd.env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).stderr(Stdio::inherit());
    match &cmd.out {
        Out::Null => {
            c.stdout(Stdio::null());
        }
        Out::File(path) => {
            c.stdout(std::fs::File::create(path).unwrap());
        }
        Out::Capture => {
            c.stdout(Stdio::piped());
        }
    }
    let output = c
        .output()
        .unwrap_or_else(|e| panic!("/usr/bin/time is needed: `apt-get install time` (make bench does): {e}"));
    assert!(output.status.success(), "{:?} failed: {}", cmd.argv, output.status);
    let text = std::fs::read_to_string(times.path()).unwrap();
    let last = text.lines().last().unwrap_or_default().to_owned();
    let fields: Vec<f64> = last.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    let [seconds, kib, user, sys] = fields[..] else {
        panic!("time said: {text}")
    };
    Measured {
        seconds,
        peak_rss: kib as u64 * 1024,
        cpu: user + sys,
        stdout: output.stdout,
    }
}

/// Fills database `bench` until it is at least `bytes` large: an event log with mixed columns (integers,
/// timestamps, short categorical text, repetitive prose with numbers, jsonb), the shape that dominates real
/// application databases, so compression ratios mean something.
fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / MIB)
}

/// How the machine's cores are shared between the database (and the S3 endpoint) and the command under test.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Every process on every core, as the machine schedules them: PostgreSQL competes with every stage.
    Shared,
    /// The server (and s3s-fs, the remote side) pinned to core 0, the command and all its children to core 1:
    /// a function with one vCPU of its own and a database on another machine.
    Lambda,
}

impl Shape {
    fn title(self) -> &'static str {
        match self {
            Shape::Shared => "shared: server, endpoint and command on all cores",
            Shape::Lambda => "lambda: server and endpoint pinned to core 0, command and its children to core 1",
        }
    }

    /// The CPUs of the command under test (`taskset -c`), and of the server side.
    /// The most the export's wall time may be, against the raw dump's: in the Lambda shape the export has its core
    /// to itself, as in production; in the shared shape it competes with the server for both.
    fn wall_target(self) -> f64 {
        match self {
            Shape::Shared => 1.3,
            Shape::Lambda => 1.1,
        }
    }

    fn cpus(self) -> (Option<&'static str>, String) {
        match self {
            Shape::Shared => (None, format!("0-{}", cores() - 1)),
            Shape::Lambda => (Some("1"), "0".to_owned()),
        }
    }
}

/// The shapes `BENCH_SHAPE` asks for (`shared`, `lambda` or `both`, the default).
fn shapes() -> Vec<Shape> {
    match std::env::var("BENCH_SHAPE").as_deref() {
        Ok("shared") => vec![Shape::Shared],
        Ok("lambda") => vec![Shape::Lambda],
        Ok("both") | Err(_) => vec![Shape::Shared, Shape::Lambda],
        Ok(other) => panic!("BENCH_SHAPE={other}: say shared, lambda or both"),
    }
}

/// Pins every process of PostgreSQL's server (the postmaster, its children, and so every backend forked later)
/// and s3s-fs to `cpus`.
fn pin_server_side(pg: &Postgres, s3s_pid: u32, cpus: &str) {
    let pidfile = std::fs::read_to_string(pg.data_dir().join("postmaster.pid")).unwrap();
    let postmaster: u32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
    let mut pids = vec![postmaster, s3s_pid];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): state, then the parent's pid.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        if after.split_whitespace().nth(1) == Some(&postmaster.to_string()) {
            pids.push(pid);
        }
    }
    for pid in pids {
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("taskset is needed (util-linux): {e}"));
        assert!(status.success(), "taskset -p -c {cpus} {pid} failed");
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Everything measured over the runs of one command.
#[derive(Default)]
struct Samples {
    wall: Vec<f64>,
    peak_rss: Vec<f64>,
    cpu_per_gb: Vec<f64>,
    output: Vec<f64>,
    /// The export's own peak RSS, from its summary.
    own_rss: Vec<f64>,
    /// The export's CPU seconds per GB per stage, from its summary (`cpu_seconds`), in the summary's order.
    stages: Vec<(String, Vec<f64>)>,
}

fn sp(values: &[f64]) -> Spread {
    stats::spread(values).expect("every command ran at least once")
}

/// `median [min–max]`, each formatted by `f`.
fn show(values: &[f64], f: impl Fn(f64) -> String) -> String {
    let s = sp(values);
    format!("{} [{}–{}]", f(s.median), f(s.min), f(s.max))
}

struct Bench {
    commands: Vec<Cmd>,
    runs: usize,
    /// The archive's size in GB (10^9 bytes): CPU figures are per GB of pg_dump's uncompressed output.
    gb: f64,
    s3: aws_sdk_s3::Client,
}

impl Bench {
    /// Runs every command `runs` times round-robin in `shape`; returns the samples per command.
    async fn run(&self, shape: Shape) -> Vec<Samples> {
        let (cpus, _) = shape.cpus();
        let mut samples: Vec<Samples> = self.commands.iter().map(|_| Samples::default()).collect();
        for (n, i) in stats::schedule(self.commands.len(), self.runs).into_iter().enumerate() {
            let cmd = &self.commands[i];
            println!("  run {}/{}: {}", n + 1, self.commands.len() * self.runs, cmd.name);
            let m = measure(cmd, cpus);
            let s = &mut samples[i];
            s.wall.push(m.seconds);
            s.peak_rss.push(m.peak_rss as f64);
            s.cpu_per_gb.push(m.cpu / self.gb);
            match &cmd.out {
                Out::Null => s.output.push(self.gb * 1e9),
                Out::File(path) => {
                    s.output.push(std::fs::metadata(path).unwrap().len() as f64);
                    std::fs::remove_file(path).ok();
                }
                Out::Capture => self.export_figures(&m.stdout, s).await,
            }
        }
        samples
    }

    /// Reads the export's summary into `s`, then deletes what it stored (each run stores anew).
    async fn export_figures(&self, stdout: &[u8], s: &mut Samples) {
        let summary: Value = serde_json::from_slice(stdout)
            .unwrap_or_else(|e| panic!("export printed no summary ({e}): {}", String::from_utf8_lossy(stdout)));
        let report = &summary["exports"][0];
        assert_eq!(report["outcome"], "exported", "{summary}");
        s.output.push(report["stored_bytes"].as_f64().unwrap());
        s.own_rss.push(summary["peak_rss_bytes"].as_f64().unwrap());
        if let Some(stages) = report["cpu_seconds"].as_object() {
            let total: f64 = stages.values().filter_map(Value::as_f64).sum();
            let named = STAGES.iter().map(|&n| (n, stages.get(n).and_then(Value::as_f64)));
            for (name, secs) in named.chain([("total (sum of stages)", Some(total))]) {
                let per_gb = secs.unwrap_or(f64::NAN) / self.gb;
                match s.stages.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => v.push(per_gb),
                    None => s.stages.push((name.to_owned(), vec![per_gb])),
                }
            }
        }
        let listed = self.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
        for object in listed.contents() {
            let key = object.key().unwrap();
            self.s3.delete_object().bucket(BUCKET).key(key).send().await.unwrap();
        }
    }
}

fn print_shape(shape: Shape, bench: &Bench, samples: &[Samples]) {
    println!(
        "\nShape {} — {} runs of each command, round-robin; median [min–max]\n",
        shape.title(),
        bench.runs
    );
    println!(
        "{:<30} {:>22} {:>22} {:>22} {:>22}",
        "command", "wall s", "CPU s/GB (tree)", "peak RSS MiB", "output MiB"
    );
    for (cmd, s) in bench.commands.iter().zip(samples) {
        println!(
            "{:<30} {:>22} {:>22} {:>22} {:>22}",
            cmd.name,
            show(&s.wall, |v| format!("{v:.2}")),
            show(&s.cpu_per_gb, |v| format!("{v:.2}")),
            show(&s.peak_rss, mib),
            show(&s.output, mib)
        );
    }
    let [raw, fc, export] = samples else {
        unreachable!("three commands")
    };
    println!(
        "{:<30} {:>22} {:>22} {:>22}",
        "export (own process only)",
        "",
        "",
        show(&export.own_rss, mib)
    );
    let target = |ok: bool| if ok { "met" } else { "NOT MET" };
    let wall_ratio = stats::ratio(&sp(&export.wall), &sp(&raw.wall)).unwrap();
    let cpu_ratio = stats::ratio(&sp(&export.cpu_per_gb), &sp(&raw.cpu_per_gb)).unwrap();
    let size_ratio = stats::ratio(&sp(&export.output), &sp(&fc.output)).unwrap();
    let own_max = sp(&export.own_rss).max;
    let wall_target = shape.wall_target();
    println!();
    println!(
        "export wall / raw dump wall (medians)     {wall_ratio:>6.2}x   target <= {wall_target:.2}x   {}",
        target(wall_ratio <= wall_target)
    );
    println!(
        "export wall / pg_dump -Fc wall (medians)  {:>6.2}x   (for reference)",
        stats::ratio(&sp(&export.wall), &sp(&fc.wall)).unwrap()
    );
    println!(
        "export CPU / raw dump CPU (medians)       {cpu_ratio:>6.2}x   target <= 3.00x   {} (whole process trees)",
        target(cpu_ratio <= 3.0)
    );
    println!(
        "export peak RSS (own, largest run)        {:>6.1} MiB  target <= 64 MiB  {}",
        own_max / MIB,
        target(own_max <= 64.0 * MIB)
    );
    println!(
        "stored size / pg_dump -Fc size (medians)  {size_ratio:>6.2}x   target <= 1.00x   {}",
        target(size_ratio <= 1.0)
    );
    if !export.stages.is_empty() {
        println!("\nexport CPU s/GB per stage (from its summary's cpu_seconds), median [min–max]");
        for (name, values) in &export.stages {
            println!("  {name:<28} {:>22}", show(values, |v| format!("{v:.3}")));
        }
    }
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
        .unwrap_or(3)
        .max(3);
    let export_bin = repo_root().join("target/release/export");
    // BENCH_EXPORT_BIN: a copy of the binary to measure (a target directory shared by several checkouts may hold
    // another one's build by the time the benchmark runs).
    let export_bin = match (std::env::var("BENCH_EXPORT_BIN"), std::env::var("CARGO_TARGET_DIR")) {
        (Ok(bin), _) => PathBuf::from(bin),
        (_, Ok(dir)) => PathBuf::from(dir).join("release/export"),
        _ => export_bin,
    };
    assert!(
        export_bin.exists(),
        "{} is missing: `make bench` builds it (cargo build --release -p export)",
        export_bin.display()
    );
    let mut shapes = shapes();
    if shapes.contains(&Shape::Lambda) && cores() < 2 {
        println!(
            "This machine has {} core: the lambda shape needs 2 (one for the server, one for the export); \
             skipping only that shape.",
            cores()
        );
        shapes.retain(|s| *s != Shape::Lambda);
    }
    let scratch = repo_root().join(".bench/run");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("s3")).unwrap();

    println!("Export benchmark: generating a database of at least {gb} GB");
    let pg = Postgres::start();
    let started = Instant::now();
    let size = generate(&pg, (gb * 1e9) as u64);
    println!(
        "\n  database `bench`: {} MiB (pg_database_size), generated in {:.0} s",
        mib(size as f64),
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
    let identity = age::x25519::Identity::generate();
    let mut export_env = vec![
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
        ("AWS_LAMBDA_LOG_LEVEL", "WARN".to_owned()),
    ];
    for var in [
        "LIFEBOAT_ZSTD_LEVEL",
        "LIFEBOAT_ZSTD_WORKERS",
        "LIFEBOAT_PARTS_IN_FLIGHT",
    ] {
        if let Ok(v) = std::env::var(var) {
            export_env.push((var, v));
        }
    }
    let raw = Cmd {
        name: "pg_dump -Fc -Z0 > /dev/null",
        argv: vec![pg_dump.clone(), "-Fc".into(), "-Z0".into()],
        env: libpq.clone(),
        out: Out::Null,
    };
    let fc = Cmd {
        name: "pg_dump -Fc > file",
        argv: vec![pg_dump.clone(), "-Fc".into()],
        env: libpq.clone(),
        out: Out::File(scratch.join("bench.dump")),
    };
    let export = Cmd {
        name: "export --event (to s3s-fs)",
        argv: vec![
            export_bin.display().to_string(),
            "--event".into(),
            r#"{"database": "bench"}"#.into(),
        ],
        env: export_env,
        out: Out::Capture,
    };
    let setting = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| format!("{default} (default)"));
    println!(
        "  export: zstd level {}, zstd workers {}, parts in flight {}",
        setting("LIFEBOAT_ZSTD_LEVEL", &export::settings::DEFAULT_ZSTD_LEVEL.to_string()),
        setting("LIFEBOAT_ZSTD_WORKERS", "0"),
        setting("LIFEBOAT_PARTS_IN_FLIGHT", "2")
    );

    // A warm-up dump, so that every measured run reads the database from the page cache; it also gives the
    // archive's size, the unit of the CPU figures.
    let probe = Cmd {
        name: "warm-up",
        argv: raw.argv.clone(),
        env: libpq.clone(),
        out: Out::File(scratch.join("probe.dump")),
    };
    measure(&probe, None);
    let archive_bytes = std::fs::metadata(scratch.join("probe.dump")).unwrap().len();
    std::fs::remove_file(scratch.join("probe.dump")).ok();
    println!(
        "  pg_dump archive (uncompressed): {} MiB; CPU figures are per GB (10^9 bytes) of it",
        mib(archive_bytes as f64)
    );

    let bench = Bench {
        commands: vec![raw, fc, export],
        runs,
        gb: archive_bytes as f64 / 1e9,
        s3: s3.clone(),
    };
    let s3s_pid = s3s.pid();
    let mut results = Vec::new();
    for shape in shapes {
        println!("\nShape {}", shape.title());
        pin_server_side(&pg, s3s_pid, &shape.cpus().1);
        results.push((shape, bench.run(shape).await));
    }
    pin_server_side(&pg, s3s_pid, &Shape::Shared.cpus().1);

    // The endpoint alone: an object of the stored size uploaded as one PutObject from a file.
    let stored = results
        .first()
        .map_or(1.0, |(_, samples)| sp(&samples[2].output).median) as usize;
    let copy = scratch.join("object");
    std::fs::write(&copy, vec![7u8; stored]).unwrap();
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

    println!(
        "\nResults: {} MiB database, {} MiB pg_dump archive, {} cores ({})",
        mib(size as f64),
        mib(archive_bytes as f64),
        cores(),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    println!("CPU s/GB (tree): user + sys of the command and every child it waited for (GNU time), per GB of archive");
    for (shape, samples) in &results {
        print_shape(*shape, &bench, samples);
    }
    println!(
        "\nendpoint alone: PutObject of {} MiB at {:.0} MiB/s",
        mib(stored as f64),
        stored as f64 / MIB / endpoint_secs
    );
}
