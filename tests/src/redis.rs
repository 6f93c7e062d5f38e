//! A throwaway Redis server: Debian's `redis-server` in a temporary directory on a free port of 127.0.0.1,
//! always with AUTH (a random password), persistence off until a test asks for `SAVE`, and with TLS only when
//! started with [`Redis::start_tls`] (its certificate for 127.0.0.1/localhost signed by a throwaway CA in
//! `ca_file`). Stopped when dropped.
//!
//! Commands go through Debian's `redis-cli`, as an operator would type them. A cluster (cluster mode enabled,
//! several primaries, TLS and AUTH) is [`RedisCluster`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod cluster;
pub use cluster::RedisCluster;

const INSTALL_HINT: &str =
    "install Redis with `make test` (it runs `apt-get install redis-server redis-tools`), or by \
     hand: `sudo apt-get install -y redis-server redis-tools`";

/// A program of Debian's Redis packages, or a failure that says how to install it.
pub fn program(name: &str) -> PathBuf {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match found {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!("`{name}` is needed for this test but was not found: {INSTALL_HINT}"),
    }
}

/// A running server; stopped and removed when dropped.
#[derive(Debug)]
pub struct Redis {
    pub port: u16,
    pub password: String,
    /// With TLS: the CA that signed the server's certificate.
    pub ca_file: Option<PathBuf>,
    dir: TempDir,
    child: Child,
}

impl Redis {
    /// Starts a server with `extra` configuration (`["--maxmemory-policy", "allkeys-lfu"]`, ...).
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(extra, false)
    }

    /// A server that accepts only TLS connections.
    pub fn start_tls(extra: &[&str]) -> Self {
        Self::start_with(extra, true)
    }

    fn start_with(extra: &[&str], tls: bool) -> Self {
        let server = program("redis-server");
        let dir = tempfile::tempdir().expect("temp dir for Redis");
        let port = crate::free_port();
        let password = crate::random_hex(16);
        let mut cmd = Command::new(server);
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        let ca_file = if tls {
            let (cert, key, ca) = crate::postgres::make_certificates(dir.path(), None);
            cmd.args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key)
            .arg("--tls-ca-cert-file")
            .arg(&ca);
            Some(ca)
        } else {
            cmd.args(["--port", &port.to_string()]);
            None
        };
        let child = cmd
            .args(["--requirepass", &password, "--enable-debug-command", "local"])
            .arg("--dir")
            .arg(dir.path())
            .args([
                "--dbfilename",
                "dump.rdb",
                "--logfile",
                "redis.log",
                "--daemonize",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        let redis = Self {
            port,
            password,
            ca_file,
            dir,
            child,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while redis.try_cli(0, &["PING"]).as_deref() != Some("PONG") {
            assert!(
                Instant::now() < until,
                "redis-server did not answer PING within 10 s; its log: {}",
                std::fs::read_to_string(redis.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn try_cli(&self, db: u32, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new(program("redis-cli"));
        if let Some(ca) = &self.ca_file {
            cmd.arg("--tls").arg("--cacert").arg(ca);
        }
        let out = cmd
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-n", &db.to_string()])
            .args(["--no-auth-warning", "-a", &self.password])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs one command in database `db` and returns its reply as redis-cli prints it.
    pub fn cli(&self, db: u32, args: &[&str]) -> String {
        let reply = self
            .try_cli(db, args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"));
        assert!(
            !reply.starts_with("ERR") && !reply.starts_with("WRONGTYPE"),
            "redis-cli {args:?}: {reply}"
        );
        reply
    }

    /// Stops the server's process (SIGSTOP) until the guard is dropped (SIGCONT): a server gone without a word,
    /// whose connections are accepted by the kernel and never answered.
    pub fn freeze(&self) -> Frozen {
        signal(self.child.id(), "-STOP");
        Frozen(self.child.id())
    }

    /// `SAVE`s and returns the path of the RDB file the server wrote.
    pub fn save(&self) -> PathBuf {
        assert_eq!(self.cli(0, &["SAVE"]), "OK");
        self.rdb()
    }

    pub fn rdb(&self) -> PathBuf {
        self.dir.path().join("dump.rdb")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A frozen server ([`Redis::freeze`]); it answers again when this is dropped.
#[derive(Debug)]
pub struct Frozen(u32);

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill").arg(which).arg(pid.to_string()).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "kill {which} {pid} (redis-server) failed"
    );
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
