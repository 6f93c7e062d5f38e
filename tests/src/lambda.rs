//! A function binary under a real Lambda runtime API, on this machine: `cargo lambda watch --only-lambda-apis`
//! (PyPI `cargo-lambda`, in `.venv`) serves the runtime API, the binary registers with it as Lambda starts one
//! (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`), and `cargo lambda invoke` sends it an event. The
//! function's standard output is kept in a file: that is what Lambda hands to CloudWatch Logs, so a test reads
//! the function's log lines and Embedded Metric Format documents there.
//!
//! Both processes are killed when the guard drops, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, repo_root};

const INSTALL_HINT: &str = "install it with `make test` (which creates .venv with the pinned tools), or by hand: \
     `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt`";

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
        "{} does not exist: build the function first with `cargo build -p {name}`",
        path.display()
    );
    path
}

/// One function running under the local Lambda runtime API.
#[derive(Debug)]
pub struct LocalLambda {
    name: String,
    port: u16,
    watch: Child,
    function: Child,
    dir: tempfile::TempDir,
}

impl LocalLambda {
    /// Starts the runtime API and the function binary `exe` as function `name`, with `env` (and nothing else of
    /// this process's environment but `PATH`).
    pub fn start(name: &str, exe: &Path, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let watch_log = std::fs::File::create(dir.path().join("watch.log")).expect("the watch log");
        let mut watch = Command::new(cargo_lambda())
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
            .current_dir(repo_root())
            .env("PATH", path_with_venv())
            .stdin(Stdio::null())
            .stdout(watch_log.try_clone().expect("the watch log"))
            .stderr(watch_log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting `cargo lambda watch`: {e}; {INSTALL_HINT}"));
        // The function asks the runtime API for its first event as soon as it starts: the API must listen first.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = watch.try_wait() {
                panic!(
                    "cargo lambda watch exited ({status}):\n{}",
                    read(dir.path(), "watch.log")
                );
            }
            if Instant::now() > deadline {
                let _ = watch.kill();
                panic!(
                    "cargo lambda watch did not listen within 60 s:\n{}",
                    read(dir.path(), "watch.log")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let function = Command::new(exe)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt/{name}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).expect("the function's stdout"))
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("the function's stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        Self {
            name: name.to_owned(),
            port,
            watch,
            function,
            dir,
        }
    }

    fn read(&self, file: &str) -> String {
        read(self.dir.path(), file)
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
        let out = Command::new(cargo_lambda())
            .args([
                "lambda",
                "invoke",
                &self.name,
                "-A",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "-o",
                "json",
            ])
            .arg("--data-file")
            .arg(data_file)
            .current_dir(repo_root())
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

    /// The function's standard output so far, line by line.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.read("stdout").lines().map(str::to_owned).collect()
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

impl Drop for LocalLambda {
    fn drop(&mut self) {
        let _ = self.function.kill();
        let _ = self.function.wait();
        let _ = self.watch.kill();
        let _ = self.watch.wait();
    }
}
