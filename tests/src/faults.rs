//! The fault-injecting proxy (`tests/emulator/faults.py`) started in front of a running [`Moto`]: a test gives
//! its SDK clients [`Faults::config`], and every call they make reaches moto unchanged unless a [`Rules`] rule
//! draws a fault for it (throttling, a 500 or 503, a reset connection, a lost answer, a slow answer). The draws
//! come from a seed, so a failing run is replayed by running it again with the same seed, and every injected
//! fault is in [`Faults::injected`]. Never: changes a request it lets through, or skips a test when it cannot
//! start (it fails with the reason).
//!
//! Why Python and not a proxy in Rust: the standard library's threading HTTP server and client are the least
//! code that forwards any request byte for byte, the interpreter is already there for moto, and a test process's
//! own runtime is not slowed by the requests it proxies.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tempfile::TempDir;

use crate::moto::Moto;

const SCRIPT: &str = "tests/emulator/faults.py";

/// What a rule injects (the proxy's docstring says how each reaches the SDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The service's own throttling error: `ThrottlingException`, `Throttling` or S3's `SlowDown`.
    Throttle,
    /// A 500 in the service's error shape.
    Error500,
    /// A 503 in the service's error shape.
    Error503,
    /// The connection reset before the request reaches moto.
    Reset,
    /// The request takes effect in moto, then the connection is reset: the answer is lost.
    Lost,
    /// The answer held back by the rule's delay.
    Slow,
}

#[derive(Debug, Clone, Serialize)]
struct Rule {
    service: String,
    operation: String,
    kind: Kind,
    rate: f64,
    delay_ms: u64,
}

/// A seed and the rules drawn with it: `Rules::seed(7).on("s3", "UploadPart", Kind::Throttle, 0.3)`.
#[derive(Debug, Clone)]
pub struct Rules {
    seed: u64,
    rules: Vec<Rule>,
}

impl Rules {
    pub fn seed(seed: u64) -> Self {
        Self {
            seed,
            rules: Vec::new(),
        }
    }

    /// `kind` at `rate` (0..1) on `service` (the SigV4 signing name: `s3`, `rds`, `secretsmanager`, `monitoring`,
    /// ...) and `operation` (the API's name: `GetSecretValue`, `UploadPart`); either may be `*`.
    pub fn on(self, service: &str, operation: &str, kind: Kind, rate: f64) -> Self {
        self.rule(service, operation, kind, rate, Duration::ZERO)
    }

    /// Slow answers: held back `delay` at `rate`.
    pub fn slow(self, service: &str, operation: &str, rate: f64, delay: Duration) -> Self {
        self.rule(service, operation, Kind::Slow, rate, delay)
    }

    fn rule(mut self, service: &str, operation: &str, kind: Kind, rate: f64, delay: Duration) -> Self {
        assert!((0.0..=1.0).contains(&rate), "a fault's rate is in 0..1, not {rate}");
        self.rules.push(Rule {
            service: service.to_owned(),
            operation: operation.to_owned(),
            kind,
            rate,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        });
        self
    }
}

/// One injected fault, as the proxy logged it: the `n`-th request (from 0) of `service`'s `operation` got `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Injected {
    pub service: String,
    pub operation: String,
    pub n: u64,
    pub kind: Kind,
}

/// One request the proxy saw: the `n`-th (from 0) of `service`'s `operation`, and the fault it got if any.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Seen {
    pub service: String,
    pub operation: String,
    pub n: u64,
    pub kind: Option<Kind>,
}

/// A running proxy in front of one moto server; stopped when dropped.
#[derive(Debug)]
pub struct Faults {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
    requests: PathBuf,
    stderr: PathBuf,
    rules_file: PathBuf,
    seed: u64,
    _dir: TempDir,
}

impl Faults {
    /// Starts the proxy on a free port in front of `moto`, drawing `rules`' faults, and waits until it answers.
    pub fn start(moto: &Moto, rules: &Rules) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the fault proxy");
        let rules_file = dir.path().join("rules.json");
        write_rules(&rules_file, rules);
        let (log, stderr) = (dir.path().join("injected.jsonl"), dir.path().join("proxy.log"));
        let requests = dir.path().join("requests.jsonl");
        let port = crate::free_port();
        let python = crate::moto::python();
        let child = Command::new(&python)
            .arg(crate::repo_root().join(SCRIPT))
            .args([moto.port.to_string(), port.to_string(), rules.seed.to_string()])
            .args([&rules_file, &log, &requests])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("the fault proxy's log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting the fault proxy with {}: {e}", python.display()));
        let mut faults = Faults {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            requests,
            stderr,
            rules_file,
            seed: rules.seed,
            _dir: dir,
        };
        faults.wait_ready(port);
        faults
    }

    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the fault proxy exited with {status} before it answered:\n{}",
                    self.log_text()
                );
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the fault proxy did not listen on port {port} within 30 s:\n{}",
            self.log_text()
        );
    }

    /// Replaces the rules from the next request on (the proxy reads its rules file again when it changes). The
    /// seed is the one the proxy started with: its draws carry on, so a seed still replays the whole run.
    pub fn set_rules(&self, rules: &Rules) {
        assert_eq!(rules.seed, self.seed, "the proxy draws from the seed it started with");
        write_rules(&self.rules_file, rules);
    }

    /// The proxy's own output (a Python traceback, if it failed).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SDK configuration whose endpoint is the proxy (test credentials and Lifeboat's retries, as
    /// [`Moto::config`]).
    pub fn config(&self, region: &str) -> aws_config::SdkConfig {
        crate::sdk_config(&self.endpoint, region)
    }

    /// Every fault injected so far, in the order injected.
    pub fn injected(&self) -> Vec<Injected> {
        read_lines(&self.log)
    }

    /// Every request the proxy has seen so far, faulted or not, in the order seen.
    pub fn requests(&self) -> Vec<Seen> {
        read_lines(&self.requests)
    }
}

/// Writes the rules file whole (a new file renamed over the old one), so the proxy never reads half of it.
fn write_rules(path: &std::path::Path, rules: &Rules) {
    let next = path.with_extension("json.next");
    std::fs::write(&next, serde_json::to_vec(&rules.rules).expect("rules as JSON")).expect("rules file");
    std::fs::rename(&next, path).expect("rules file");
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .expect("the fault proxy's log")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a fault log line {l:?}: {e}")))
        .collect()
}

impl Drop for Faults {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
