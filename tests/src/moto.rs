//! moto's server (PyPI `moto[server]`, installed into the project's `.venv` by `make test`), started as it is or
//! through a small Python launcher that changes moto before its server starts, only where the emulator must stand
//! in for AWS better: a clock ahead ([`AHEAD_SCRIPT`]), a clock a test moves ([`CLOCK_SCRIPT`]), and ElastiCache's
//! export of a snapshot to S3, which moto lacks (`tests/emulator/elasticache_export.py`; the recording server
//! has it, for the deployed stack's RDB copies). Never: changes what moto answers for anything else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Overrides the moto_server executable (default: `<repo>/.venv/bin/moto_server`).
pub const MOTO_SERVER_VAR: &str = "LIFEBOAT_MOTO_SERVER";

const INSTALL_HINT: &str = "install it with `make test` (which creates .venv with the pinned tools), or by hand: \
     `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt`";

/// The interpreter of moto's own virtualenv, beside its `moto_server` script (which runs the emulator's other
/// Python pieces too: `tests/src/faults.rs`).
pub fn python() -> PathBuf {
    executable().with_file_name("python3")
}

fn executable() -> PathBuf {
    if let Ok(path) = std::env::var(MOTO_SERVER_VAR) {
        return PathBuf::from(path);
    }
    crate::repo_root().join(".venv/bin/moto_server")
}

/// A running moto server; stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
    log: PathBuf,
    recording: Option<PathBuf>,
    _dir: TempDir,
}

/// The file a recording server writes every request to (see [`Moto::start_recording`]), in its own directory.
const RECORDING_FILE: &str = "recording.jsonl";

/// moto's server with its clock moved by a number of seconds: every time moto stamps (a snapshot's creation, an
/// instance's latest restorable time, an object's last modification) comes from `moto.core.utils.utcnow`, which
/// this replaces before any of moto's services is loaded. The emulator stands in for AWS, whose clock would be
/// as far ahead as the world a test builds; nothing of Lifeboat's own code is touched.
const AHEAD_SCRIPT: &str = "import datetime, sys\n\
ahead = datetime.timedelta(seconds=float(sys.argv.pop(1)))\n\
import moto.core.utils as utils\n\
real_utcnow = utils.utcnow\n\
utils.utcnow = lambda: real_utcnow() + ahead\n\
from moto.server import main\n\
sys.argv[0] = 'moto_server'\n\
sys.exit(main())\n";

/// moto's server with a clock a test moves while it runs: as [`AHEAD_SCRIPT`], but the offset (seconds, may be
/// negative) is read from a file at every stamp, so objects written one after the other can carry days between
/// them (versions of a plan document written ten days apart, say). Written by [`Moto::set_ahead`].
const CLOCK_SCRIPT: &str = "import datetime, sys\n\
clock = sys.argv.pop(1)\n\
def ahead(): return datetime.timedelta(seconds=float(open(clock).read().strip() or 0))\n\
import moto.core.utils as utils\n\
real_utcnow = utils.utcnow\n\
utils.utcnow = lambda: real_utcnow() + ahead()\n\
from moto.server import main\n\
sys.argv[0] = 'moto_server'\n\
sys.exit(main())\n";

/// The file [`CLOCK_SCRIPT`] reads, in the server's own directory.
const CLOCK_FILE: &str = "clock";

/// moto's server with ElastiCache's export of a snapshot to S3 (see [`Moto::start_with_cache_exports`]), and the
/// files it reads in the server's own directory.
const EXPORT_SCRIPT: &str = "tests/emulator/elasticache_export.py";
const STAND_INS_FILE: &str = "stand-ins.json";
const BUCKET_POLICIES_FILE: &str = "bucket-policies.json";
const PITR_STAND_INS_FILE: &str = "stand-ins-pitr.json";

/// Registers a stand-in Lambda function (and the IAM role moto requires it to have), after switching moto's Lambda
/// to its Docker-free backend (`/moto-api/config`, `lambda.use_docker=false`). Why: Secrets Manager's RotateSecret
/// runs the rotation function's testSecret step even with `RotateImmediately=false` (AWS documents that it tests
/// the configuration), and moto does the same (`moto/secretsmanager/models.py`, `rotate_secret`): it first looks
/// the function up (an unknown ARN is `ResourceNotFoundException`) and then invokes it, which with the default
/// backend means running it in Docker. The Docker-free backend answers every invocation with success and runs
/// nothing. Uses boto3, which moto's own virtualenv carries: the workspace has no Lambda or IAM client.
/// Arguments: endpoint, region, function name; prints the function's ARN.
const STAND_IN_FUNCTION_SCRIPT: &str = "import boto3, io, json, sys, urllib.request, zipfile\n\
endpoint, region, name = sys.argv[1:4]\n\
urllib.request.urlopen(urllib.request.Request(endpoint + '/moto-api/config', method='POST', \
data=json.dumps({'lambda': {'use_docker': False}}).encode()))\n\
kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id='test', aws_secret_access_key='test')\n\
role = boto3.client('iam', **kw).create_role(RoleName=name, AssumeRolePolicyDocument='{}')['Role']['Arn']\n\
code = io.BytesIO()\n\
with zipfile.ZipFile(code, 'w') as z: z.writestr('bootstrap', 'stand-in')\n\
fn = boto3.client('lambda', **kw).create_function(FunctionName=name, Runtime='provided.al2023', Role=role, \
Handler='bootstrap', Code={'ZipFile': code.getvalue()})\n\
print(fn['FunctionArn'])\n";

impl Moto {
    /// A stand-in Lambda function named `name` in `region` (see [`STAND_IN_FUNCTION_SCRIPT`]); returns its ARN.
    pub fn stand_in_function(&self, region: &str, name: &str) -> String {
        let out = Command::new(executable().with_file_name("python3"))
            .args(["-c", STAND_IN_FUNCTION_SCRIPT, &self.endpoint, region, name])
            .output()
            .unwrap_or_else(|e| panic!("running moto's python for a stand-in function: {e}; {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "registering the stand-in function failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts a fresh server whose clock a test moves with [`Moto::set_ahead`] (see [`CLOCK_SCRIPT`]).
    pub fn start_with_clock() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for moto");
        let clock = dir.path().join(CLOCK_FILE);
        std::fs::write(&clock, "0").expect("moto's clock file");
        let mut c = Command::new(executable().with_file_name("python3"));
        c.args(["-c", CLOCK_SCRIPT, &clock.display().to_string()]);
        Self::spawn(c, dir)
    }

    /// Moves the clock of a server started with [`Moto::start_with_clock`]: from now on moto stamps times `ahead`
    /// of this machine's (behind, if negative).
    pub fn set_ahead(&self, ahead: chrono::Duration) {
        std::fs::write(self._dir.path().join(CLOCK_FILE), ahead.num_seconds().to_string()).expect("moto's clock file");
    }

    /// Starts a fresh server that records every request it answers (moto's recorder: `MOTO_ENABLE_RECORDING`,
    /// one JSON object a line with the request's headers, method, URL and body) to [`Moto::recording`], so that a
    /// test can check the calls a function made against its role (`tests/stack/permissions.py`). It exports cache
    /// snapshots to S3 as [`Moto::start_with_cache_exports`]'s does: the deployed stack's RDB copies need it.
    pub fn start_recording() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for moto");
        let file = dir.path().join(RECORDING_FILE);
        let mut c = Self::exporting(&dir);
        c.env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", &file);
        Self::spawn(c, dir)
    }

    /// Starts a fresh server whose ElastiCache exports a snapshot to S3 (`CopySnapshot` with `TargetBucket`, which
    /// moto lacks), from data a real `redis-server` saved when the snapshot was taken, into a bucket whose policy
    /// lets ElastiCache write: `tests/emulator/elasticache_export.py` says how. A cache gets its data from
    /// [`Moto::stand_in_cache`]; a bucket its policy from [`Moto::keep_bucket_policies`] (a deployed stack's, by
    /// `Stack::deploy`).
    pub fn start_with_cache_exports() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for moto");
        let c = Self::exporting(&dir);
        Self::spawn(c, dir)
    }

    /// moto's server started through the export extension, with its state in `dir`.
    fn exporting(dir: &TempDir) -> Command {
        let mut c = Command::new(executable().with_file_name("python3"));
        c.arg(crate::repo_root().join(EXPORT_SCRIPT)).arg(dir.path());
        c
    }

    /// Makes `servers` (one per shard, in shard order) stand in for cache `cache`: a snapshot of it taken from now
    /// on holds the RDB file each server writes when the snapshot is taken, and an export of the snapshot writes
    /// those files. Only for a server started with the export extension.
    pub fn stand_in_cache(&self, cache: &str, servers: &[&crate::redis::Redis]) {
        let path = self._dir.path().join(STAND_INS_FILE);
        let mut all: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        all[cache] = servers
            .iter()
            .map(|r| serde_json::json!({"port": r.port, "password": r.password, "ca": r.ca_file, "rdb": r.rdb()}))
            .collect();
        std::fs::write(&path, all.to_string()).expect("moto's stand-ins file");
    }

    /// Makes `pg` (started with `Postgres::start_archiving`) stand in for RDS instance `instance`: a point-in-time
    /// restore of it from now on replays a base backup taken now and the server's archived WAL to the requested
    /// time into a new server, which the restored instance's endpoint names (`tests/emulator/rds_pitr.py`). Only for a
    /// server started with the export extension.
    pub fn stand_in_pitr(&self, instance: &str, pg: &crate::postgres::Postgres) {
        let path = self._dir.path().join(PITR_STAND_INS_FILE);
        let mut all: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        all[instance] = pg.pitr_stand_in();
        std::fs::write(&path, all.to_string()).expect("moto's point-in-time stand-ins file");
    }

    /// The bucket policies ElastiCache's exports are judged by (bucket name -> policy document), as a deployed
    /// stack's document keeps them (`bucket_policies`): moto's S3 holds and enforces none.
    pub fn keep_bucket_policies(&self, policies: &serde_json::Value) {
        std::fs::write(self._dir.path().join(BUCKET_POLICIES_FILE), policies.to_string())
            .expect("moto's bucket policies file");
    }

    /// The recording of a server started with [`Moto::start_recording`].
    pub fn recording(&self) -> Option<&std::path::Path> {
        self.recording.as_deref()
    }

    /// Empties the recording: what a test did before (its set-up, a deploy) is not among the calls checked.
    pub fn reset_recording(&self) {
        assert!(self.recording.is_some(), "this server does not record");
        let reply = self.request("POST", "/moto-api/recorder/reset-recording");
        assert!(
            reply
                .as_deref()
                .is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200")),
            "moto did not reset its recording: {reply:?}"
        );
    }

    /// Starts a fresh server on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_ahead(chrono::Duration::zero())
    }

    /// Starts a fresh server whose clock runs `ahead` of this machine's (see [`AHEAD_SCRIPT`]); `start_ahead(0)`
    /// is [`Moto::start`].
    pub fn start_ahead(ahead: chrono::Duration) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for moto");
        let command = if ahead.is_zero() {
            Command::new(executable())
        } else {
            // The interpreter of moto's own virtualenv, beside its `moto_server` script.
            let mut c = Command::new(executable().with_file_name("python3"));
            c.args(["-c", AHEAD_SCRIPT, &ahead.num_seconds().to_string()]);
            c
        };
        Self::spawn(command, dir)
    }

    /// Runs `command` (moto's server, however started) on a free port with its log in `dir`, and waits until it
    /// answers.
    fn spawn(mut command: Command, dir: TempDir) -> Self {
        let exe = executable();
        if !exe.exists() {
            panic!(
                "moto's server is needed for this test but {} does not exist: {INSTALL_HINT}",
                exe.display()
            );
        }
        let log = dir.path().join("moto.log");
        let port = crate::free_port();
        let log_file = std::fs::File::create(&log).expect("moto log file");
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL_HINT}", exe.display()));
        let recording = Some(dir.path().join(RECORDING_FILE)).filter(|_| {
            command
                .get_envs()
                .any(|(k, v)| k == "MOTO_ENABLE_RECORDING" && v.is_some())
        });
        let mut moto = Moto {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            recording,
            _dir: dir,
        };
        moto.wait_ready();
        moto
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited with {status} before it answered:\n{}",
                    self.log_text()
                );
            }
            if self.get("/moto-api/").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not answer on port {} within 60 s:\n{}",
            self.port,
            self.log_text()
        );
    }

    /// A plain HTTP GET against the server (for its `/moto-api/` endpoints); `None` if it does not answer.
    pub fn get(&self, path: &str) -> Option<String> {
        self.request("GET", path)
    }

    /// A plain HTTP request without a body; `None` if the server does not answer.
    fn request(&self, method: &str, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        )
        .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).ok()?;
        body.starts_with("HTTP/").then_some(body)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn config(&self, region: &str) -> aws_config::SdkConfig {
        crate::sdk_config(&self.endpoint, region)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
