//! What the benchmarks share: GNU time around a command, the generated database (an event log of mixed columns),
//! and s3s-fs, a fast S3-compatible server over a local directory (moto is too slow to be a benchmark's endpoint).
//! Used by `bench_restore` (`bench_export` keeps its own copies of the same code, from before this module).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::Postgres;
use crate::{free_port, repo_root};

pub const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug)]
pub struct Measured {
    pub seconds: f64,
    /// Peak RSS of the process and the children it waited for, in bytes.
    pub peak_rss: u64,
    pub stdout: Vec<u8>,
}

/// Runs a command under GNU time; `stdout` goes to `out` (a file or /dev/null) or is captured.
pub fn measure(cmd: &[&str], env: &[(&str, String)], out: Option<&Path>) -> Measured {
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
pub fn generate(pg: &Postgres, bytes: u64) -> u64 {
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

#[derive(Debug)]
pub struct S3s {
    child: Child,
    pub endpoint: String,
}

impl S3s {
    /// The server's process id (the benchmark's Lambda shape pins it to the server's core).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for S3s {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_s3s(root: &Path) -> S3s {
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

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}
