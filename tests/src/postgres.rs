//! A throwaway PostgreSQL cluster: `initdb` in a temporary directory, a free port on 127.0.0.1,
//! scram-sha-256 password authentication for every connection. Stopped and deleted when dropped.
//!
//! PostgreSQL refuses to run as root; when the tests run as root (CI), the server runs as the `postgres`
//! system user that Debian's packages create.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// Overrides the directory holding initdb, pg_ctl and postgres.
pub const PG_BIN_VAR: &str = "LIFEBOAT_PG_BIN";
pub const SUPERUSER: &str = "lifeboat_admin";

const INSTALL_HINT: &str = "install the PostgreSQL server with `make test` (it runs `apt-get install postgresql`), \
     or by hand: `sudo apt-get install -y postgresql`; or point LIFEBOAT_PG_BIN at a directory with initdb and pg_ctl";

/// Finds the server binaries: `LIFEBOAT_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var(PG_BIN_VAR) {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) are needed for this test but none were found: {INSTALL_HINT}"
        ),
    }
}

/// Where an archiving server's WAL segments and base backup go, in its own directory.
const ARCHIVE_DIR: &str = "wal-archive";
const BASE_DIR: &str = "base-backup";

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// A running server; stopped and removed when dropped.
#[derive(Debug)]
pub struct Postgres {
    pub port: u16,
    pub password: String,
    /// With TLS: the CA that signed the server's certificate (for `verify-full`).
    pub ca_file: Option<PathBuf>,
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<(u32, u32)>,
    dir: TempDir,
}

impl Postgres {
    /// A server that accepts plaintext and TLS connections.
    pub fn start() -> Self {
        Self::start_with(false, false)
    }

    /// A server that archives every finished WAL segment into its own archive directory, so that a base backup
    /// ([`Postgres::base_backup`]) plus the archive can be replayed to any later moment: the stand-in for an RDS
    /// instance's point-in-time recovery (`tests/emulator/rds_pitr.py`).
    pub fn start_archiving() -> Self {
        Self::start_with(false, true)
    }

    /// A server that rejects every connection without TLS; its certificate (CN and SAN `localhost`,
    /// `127.0.0.1`) is signed by a throwaway CA in `ca_file`.
    pub fn start_tls_only() -> Self {
        Self::start_with(true, false)
    }

    fn start_with(tls_only: bool, archiving: bool) -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir for PostgreSQL");
        let data = dir.path().join("data");
        let password = crate::random_hex(16);
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).expect("password file");
        if archiving {
            std::fs::create_dir(dir.path().join(ARCHIVE_DIR)).expect("WAL archive directory");
        }

        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        let run_as = if is_root {
            let uid = id_of("postgres", "-u").unwrap_or_else(|| {
                panic!("running as root, PostgreSQL needs an unprivileged user and there is no `postgres` user: {INSTALL_HINT}")
            });
            let gid = id_of("postgres", "-g").expect("postgres group");
            let status = Command::new("chown")
                .args(["-R", &format!("{uid}:{gid}")])
                .arg(dir.path())
                .status();
            assert!(
                status.map(|s| s.success()).unwrap_or(false),
                "chown of the PostgreSQL temp dir failed"
            );
            Some((uid, gid))
        } else {
            None
        };

        let port = crate::free_port();
        let mut pg = Postgres {
            port,
            password,
            ca_file: None,
            bin,
            data,
            run_as,
            dir,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&pg.data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                "--pwfile",
                path_str(&pwfile),
                "--encoding=UTF8",
                "--locale=C",
            ],
        );
        std::fs::remove_file(&pwfile).ok();
        let sock = pg.dir.path().to_path_buf();
        let log = pg.dir.path().join("postgres.log");
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c password_encryption=scram-sha-256 -c fsync=off",
            sock.display()
        );
        if archiving {
            let archive = pg.dir.path().join(ARCHIVE_DIR);
            let conf = format!(
                "\nwal_level = replica\narchive_mode = on\narchive_command = 'cp %p {}/%f'\n",
                archive.display()
            );
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(pg.data.join("postgresql.conf"))
                .expect("postgresql.conf");
            std::io::Write::write_all(&mut file, conf.as_bytes()).expect("postgresql.conf");
        }
        if tls_only {
            let (cert, key, ca) = make_certificates(pg.dir.path(), pg.run_as);
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            ));
            // TCP connections only over TLS: hostssl for the scram rules initdb wrote, and a reject for the rest.
            let hba = pg.data.join("pg_hba.conf");
            let rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
            let rules: String = rules
                .lines()
                .map(|l| match l.strip_prefix("host ") {
                    Some(rest) => format!("hostssl {rest}\n"),
                    None => format!("{l}\n"),
                })
                .collect();
            std::fs::write(&hba, format!("{rules}hostnossl all all 0.0.0.0/0 reject\n")).expect("pg_hba.conf");
            pg.ca_file = Some(ca);
        }
        pg.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&pg.data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        pg.port = port;
        pg
    }

    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(tool));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}; {INSTALL_HINT}"));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
            panic!(
                "{tool} failed ({}):\n{}\n{}\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    /// Restarts the server as an instance reboot does: every session is ended (fast shutdown), then it starts
    /// again with the same options, on the same port, and answers before this returns.
    pub fn restart(&self) {
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data),
                "-l",
                path_str(&log),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "restart",
            ],
        );
    }

    /// A libpq connection string for the superuser (password included: test-only).
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}:{}@127.0.0.1:{}/{dbname}",
            self.password, self.port
        )
    }

    /// Runs SQL through `psql` over TCP with password authentication; returns unaligned output.
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, String> {
        self.psql_as(SUPERUSER, &self.password, dbname, sql)
    }

    pub fn psql_as(&self, user: &str, password: &str, dbname: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", user, "-d", dbname, "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Loads a SQL file with psql (stops at the first error).
    pub fn load_file(&self, dbname: &str, file: &Path) -> Result<(), String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", SUPERUSER, "-d", dbname, "-f"])
            .arg(file)
            .env("PGPASSWORD", &self.password)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// A base backup of the whole server (`pg_basebackup`, as the server's user) in its own directory, and when it
    /// was complete: a point-in-time restore can reach any moment after it. For a server started with
    /// [`Postgres::start_archiving`].
    pub fn base_backup(&self) -> (PathBuf, chrono::DateTime<chrono::Utc>) {
        let base = self.dir.path().join(BASE_DIR);
        let out = self
            .command("pg_basebackup")
            .args([
                "-D",
                path_str(&base),
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .args(["-X", "fetch", "-c", "fast"])
            .env("PGPASSWORD", &self.password)
            .output()
            .unwrap_or_else(|e| panic!("running pg_basebackup: {e}; {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (base, chrono::Utc::now())
    }

    /// What the point-in-time emulator needs to replay this server (see `tests/emulator/rds_pitr.py`): a base
    /// backup taken now, the WAL archive, and how to log in and run the tools.
    pub fn pitr_stand_in(&self) -> serde_json::Value {
        let (base, at) = self.base_backup();
        serde_json::json!({
            "bin": self.bin, "base": base, "base_time": at.timestamp() as f64 + 1.0,
            "archive": self.dir.path().join(ARCHIVE_DIR), "port": self.port, "user": SUPERUSER,
            "password": self.password, "uid": self.run_as.map(|(u, _)| u), "gid": self.run_as.map(|(_, g)| g),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

/// A CA and a server certificate for 127.0.0.1/localhost, made with the openssl command-line tool.
pub fn make_certificates(dir: &Path, owner: Option<(u32, u32)>) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("the TLS tests need the openssl command: `apt-get install openssl` (make test does): {e}")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=lifeboat-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions file");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    let key = dir.join("server.key");
    // The server refuses a key file others can read, and must own it.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod server.key");
    if let Some((uid, gid)) = owner {
        for f in ["server.key", "server.crt", "ca.pem"] {
            std::os::unix::fs::chown(dir.join(f), Some(uid), Some(gid)).expect("chown certificate files");
        }
    }
    (dir.join("server.crt"), key, dir.join("ca.pem"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", path_str(&self.data), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
