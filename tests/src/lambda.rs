//! Function binaries under a real Lambda runtime API, on this machine: `cargo lambda watch --only-lambda-apis`
//! (PyPI `cargo-lambda`, in `.venv`) serves the runtime API, a binary registers with it as Lambda starts one
//! (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`), and `cargo lambda invoke` sends it an event. A
//! function's standard output is what Lambda hands to CloudWatch Logs, so a test reads its log lines and its
//! Embedded Metric Format documents there. The demo runs every function this way ([`RuntimeApi`], [`spawn`]);
//! a test runs one ([`LocalLambda`]).
//!
//! Every process started here is killed when its guard drops, also when a test fails.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, repo_root};

const INSTALL_HINT: &str = "install it with `make test` or `make demo` (which create .venv with the pinned tools), \
     or by hand: `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt`";

fn cargo_lambda() -> PathBuf {
    let exe = repo_root().join(".venv/bin/cargo-lambda");
    assert!(exe.exists(), "{} is missing: {INSTALL_HINT}", exe.display());
    exe
}

fn path_with_venv() -> String {
    let venv = repo_root().join(".venv/bin");
    format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default())
}

/// `target/<profile>/<name>`: a function's binary, built by `cargo test --workspace` for the function's own
/// integration tests (a test crate cannot depend on another package's binary).
pub fn function_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join(name);
    assert!(
        path.exists(),
        "{} does not exist: build the functions first with `cargo build --workspace --bins` (`make test` does)",
        path.display()
    );
    path
}

/// The local Lambda runtime API (`cargo lambda watch`), listening on its own port; stopped on drop.
#[derive(Debug)]
pub struct RuntimeApi {
    pub port: u16,
    child: Child,
    /// Where its commands run: the workspace, whose binaries' names cargo-lambda accepts as function names, or
    /// a directory whose manifest names the functions ([`RuntimeApi::start_named`]).
    dir: PathBuf,
}

impl RuntimeApi {
    /// Starts it with its output in `log`, and waits until it listens; functions are named as the workspace's
    /// binaries.
    pub fn start(log: &Path) -> Self {
        Self::start_in(log, repo_root())
    }

    /// As [`RuntimeApi::start`], for functions with other names (a deployed stack's, `<stack>-snapshot`):
    /// cargo-lambda accepts only names its working directory's manifest gives binaries, so it runs beside `log`
    /// with a manifest that names `functions` (read, never built).
    pub fn start_named(log: &Path, functions: &[&str]) -> Self {
        let dir = log.parent().expect("the log's directory").to_owned();
        let bins: String = functions
            .iter()
            .map(|f| format!("[[bin]]\nname = \"{f}\"\npath = \"main.rs\"\n"))
            .collect();
        let manifest =
            format!("[package]\nname = \"deployed\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n\n{bins}");
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("the runtime API's manifest");
        std::fs::write(dir.join("main.rs"), "fn main() {}\n").expect("the manifest's source");
        Self::start_in(log, dir)
    }

    fn start_in(log: &Path, dir: PathBuf) -> Self {
        let port = free_port();
        let log_file = File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let child = Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--ignore-changes",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(&dir)
            .env("PATH", path_with_venv())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("the runtime API's log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting `cargo lambda watch`: {e}; {INSTALL_HINT}"));
        // Dropped (and killed) if it never listens.
        let mut api = Self { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log_text = || std::fs::read_to_string(log).unwrap_or_default();
            if let Ok(Some(status)) = api.child.try_wait() {
                panic!("cargo lambda watch exited ({status}):\n{}", log_text());
            }
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen within 60 s:\n{}",
                log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        api
    }

    /// Starts the binary `exe` as function `name` registered with this runtime API, with `env` over this
    /// process's environment; its output goes to `stdout` and `stderr`. Start the API first: a function asks it
    /// for its first event as soon as it starts.
    pub fn spawn(&self, name: &str, exe: &Path, env: &[(&str, &str)], stdout: File, stderr: File) -> Child {
        Command::new(exe)
            .envs(env.iter().copied())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt/{name}", self.port),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()))
    }

    /// Invokes function `name` with the event in `data_file`: its JSON result, or its error text.
    pub fn invoke(&self, name: &str, data_file: &Path) -> Result<Value, String> {
        let out = Command::new(cargo_lambda())
            .args([
                "lambda",
                "invoke",
                name,
                "-A",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "-o",
                "json",
            ])
            .arg("--data-file")
            .arg(data_file)
            .current_dir(&self.dir)
            .env("PATH", path_with_venv())
            .stdin(Stdio::null())
            .output()
            .expect("running cargo lambda invoke");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            serde_json::from_str(stdout.trim()).map_err(|e| format!("unreadable result ({e}): {stdout}"))
        } else {
            Err(format!(
                "{}{}",
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for RuntimeApi {
    /// SIGTERM, so that cargo-lambda stops what it started; a kill only if that fails.
    fn drop(&mut self) {
        let termed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !termed {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One function running under its own local Lambda runtime API, its output kept in a temporary directory.
#[derive(Debug)]
pub struct LocalLambda {
    name: String,
    function: Child,
    // Dropped after the function: the function is killed first.
    api: RuntimeApi,
    dir: tempfile::TempDir,
}

impl LocalLambda {
    /// Starts the runtime API and the binary `exe` as function `name`, with `env`.
    pub fn start(name: &str, exe: &Path, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let api = RuntimeApi::start(&dir.path().join("runtime-api.log"));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let create = |file: &str| File::create(dir.path().join(file)).expect("the function's output file");
        let function = api.spawn(name, exe, &env, create("stdout"), create("stderr"));
        Self {
            name: name.to_owned(),
            function,
            api,
            dir,
        }
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default()
    }

    /// Invokes the function with the event in `data_file`: its JSON result, or its error text.
    pub fn invoke(&mut self, data_file: &Path) -> Result<Value, String> {
        if let Ok(Some(status)) = self.function.try_wait() {
            panic!(
                "{} exited ({status}):\n{}{}",
                self.name,
                self.read("stdout"),
                self.read("stderr")
            );
        }
        self.api.invoke(&self.name, data_file)
    }

    /// The function's standard output so far, line by line.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.read("stdout").lines().map(str::to_owned).collect()
    }

    /// The function's standard error so far, line by line (Lambda reads it as log lines too).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.read("stderr").lines().map(str::to_owned).collect()
    }
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        let _ = self.function.kill();
        let _ = self.function.wait();
    }
}
