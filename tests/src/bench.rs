//! What the benchmarks share: GNU time around a command, the generated database (an event log of mixed columns),
//! and s3s-fs, a fast S3-compatible server over a local directory (moto is too slow to be a benchmark's endpoint).
//! Used by `bench_restore` and `bench_refresh`, which restore the same kind of export ([`export_once`]);
//! `bench_export` keeps its own copies of the same code, from before this module.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat::bucket::manifest::Manifest;
use serde_json::json;

use crate::moto::Moto;
use crate::postgres::{Postgres, SUPERUSER};
use crate::{free_port, repo_root, sdk_config};

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

const REGION: &str = "us-east-1";

/// A release binary of the workspace (`name` of `package`), where cargo put it: CARGO_TARGET_DIR when the build
/// used one (a shared target), else the workspace's.
pub fn release_binary(name: &str, package: &str) -> String {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), Into::into);
    let path = target.join("release").join(name);
    assert!(
        path.exists(),
        "{} is missing: the benchmark's make target builds it (cargo build --release -p {package})",
        path.display()
    );
    path.display().to_string()
}

/// One age-encrypted export of the generated `bench` database, made by the export binary into s3s-fs: the
/// instance `bench` in moto (its secret `lifeboat/bench` points at the local server), the age identity in moto's
/// Secrets Manager as `lifeboat/bench-age`.
pub struct Exported {
    pub moto: Moto,
    pub s3s: S3s,
    /// A client of s3s-fs.
    pub s3: aws_sdk_s3::Client,
    pub identity: age::x25519::Identity,
    pub identity_text: String,
    pub manifest_key: String,
    pub manifest: Manifest,
    /// The environment a Lifeboat binary of the benchmark runs with: moto and s3s-fs, the bucket, no TLS to the
    /// local server, the local pg_restore.
    pub aws: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Exported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exported")
            .field("manifest_key", &self.manifest_key)
            .finish_non_exhaustive()
    }
}

/// Exports `bench` on `pg` once, with the export binary `export_bin`, into `bucket` on an s3s-fs over
/// `scratch/s3`.
pub async fn export_once(pg: &Postgres, scratch: &Path, bucket: &str, export_bin: &str) -> Exported {
    std::fs::create_dir_all(scratch.join("s3")).unwrap();
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
    let identity = age::x25519::Identity::generate();
    let identity_text = {
        use age::secrecy::ExposeSecret;
        identity.to_string().expose_secret().to_owned()
    };
    secrets
        .create_secret()
        .name("lifeboat/bench-age")
        .secret_string(&identity_text)
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
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("lifeboat:secret")
                .value("lifeboat/bench")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let s3s = start_s3s(&scratch.join("s3"));
    let s3 = aws_sdk_s3::Client::new(&sdk_config(&s3s.endpoint, REGION));
    s3.create_bucket().bucket(bucket).send().await.unwrap();

    let bin = crate::postgres::bin_dir();
    let pg_dump = bin.join("pg_dump").display().to_string();
    let pg_restore = bin.join("pg_restore").display().to_string();
    let aws = vec![
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_S3", s3s.endpoint.clone()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("LIFEBOAT_BUCKET", bucket.to_owned()),
        ("LIFEBOAT_DB_SSLMODE", "disable".to_owned()),
        ("LIFEBOAT_PG_RESTORE", pg_restore.clone()),
        ("AWS_LAMBDA_LOG_LEVEL", "WARN".to_owned()),
    ];

    println!("  exporting once (export binary, age-encrypted, to s3s-fs)");
    let mut export_env = aws.clone();
    export_env.extend([
        ("LIFEBOAT_AGE_RECIPIENTS", identity.to_public().to_string()),
        ("LIFEBOAT_EXPORT_ALLOW_ANY_HOST", "true".to_owned()),
        ("LIFEBOAT_DATABASES", "bench".to_owned()),
        ("LIFEBOAT_PG_DUMP", pg_dump),
        ("LIFEBOAT_EVENT", r#"{"database": "bench"}"#.to_owned()),
    ]);
    let export = measure(&[export_bin], &export_env, None);
    println!("      exported in {:.1} s", export.seconds);
    let (manifest_key, manifest) = manifest(&s3, bucket).await;
    Exported {
        moto,
        s3s,
        s3,
        identity,
        identity_text,
        manifest_key,
        manifest,
        aws,
    }
}

/// The one manifest in the bucket (the benchmark exports once).
async fn manifest(s3: &aws_sdk_s3::Client, bucket: &str) -> (String, Manifest) {
    let list = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let key = list
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .find(|k| k.ends_with(".manifest.json"))
        .expect("the export wrote a manifest")
        .to_owned();
    let manifest = lifeboat::bucket::layout::get_json(s3, bucket, &key).await.unwrap();
    (key, manifest)
}
