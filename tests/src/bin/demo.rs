//! `make demo`: Lifeboat end to end on this machine, with no AWS account.
//!
//! Builds the demo's world (`lifeboat_tests::demo`: moto's server, a real PostgreSQL loaded with the demo
//! application, a real Redis, the fleet in the emulator), runs the functions' binaries under the real Lambda
//! runtime (the runtime APIs of `cargo lambda watch --only-lambda-apis`, invoked with `cargo lambda invoke` and the
//! events of `events/`, re-dated to the moment the demo runs), and prints what happened in words an operator
//! reads. It ends with the story's verdicts and fails when any differs from what the story means.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_tests::demo::{self, heading, Clock, Invoke, Verdicts, World};
use lifeboat_tests::repo_root;
use serde_json::Value;

/// The functions, each a binary of its own crate; `restore` runs twice, as the template deploys it: the console's
/// function (`restore`) and the restore-test steps' (`restore-test`), each refusing the other's actions.
const FUNCTIONS: [&str; 7] = [
    "snapshot",
    "export",
    "rotate",
    "restore",
    "restore-test",
    "monitor",
    "notify",
];

/// The binary a function runs, and the entry it serves (`LIFEBOAT_RESTORE_ENTRY`) when it is the restore binary.
fn binary_of(function: &str) -> (&str, Option<&str>) {
    match function {
        "restore" => ("restore", Some("console")),
        "restore-test" => ("restore-test", Some("steps")),
        other => (other, None),
    }
}

/// The local Lambda runtime APIs (`cargo lambda watch --only-lambda-apis`) and one process per function, started
/// from the binaries `make demo` built beside this one: built once, with the same features as `make test`'s, so
/// the demo compiles nothing again (cargo-lambda's own build selects one package at a time, and each package's
/// feature set rebuilds the AWS SDK).
struct Watch {
    child: Child,
    functions: Vec<Child>,
    port: u16,
    /// The functions' standard output and error (Lambda's log of them).
    log: PathBuf,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for f in &mut self.functions {
            let _ = f.kill();
            let _ = f.wait();
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn path_with_venv() -> String {
    let venv = repo_root().join(".venv/bin");
    format!("{}:{}", venv.display(), std::env::var("PATH").unwrap_or_default())
}

/// The cargo-lambda executable from the project's virtualenv (PyPI package `cargo-lambda`).
fn cargo_lambda() -> PathBuf {
    let exe = repo_root().join(".venv/bin/cargo-lambda");
    assert!(
        exe.exists(),
        "{} is missing: run `make demo`, which installs cargo-lambda into .venv",
        exe.display()
    );
    exe
}

fn start_watch(env: &BTreeMap<String, String>, log: &Path) -> Watch {
    let port = lifeboat_tests::free_port();
    let log_file = std::fs::File::create(log).unwrap();
    let child = Command::new(cargo_lambda())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--ignore-changes",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .current_dir(repo_root())
        .env("PATH", path_with_venv())
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting `cargo lambda watch`: {e}; run `make demo`, which installs cargo-lambda into .venv")
        });
    let mut watch = Watch {
        child,
        functions: Vec::new(),
        port,
        log: log.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = watch.child.try_wait() {
            panic!(
                "cargo lambda watch exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen within 60 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let bin_dir = std::env::current_exe().unwrap().parent().unwrap().to_owned();
    for name in FUNCTIONS {
        let (binary, entry) = binary_of(name);
        let exe = bin_dir.join(binary);
        assert!(
            exe.exists(),
            "{} is missing: run `make demo`, which builds the functions first",
            exe.display()
        );
        let function = Command::new(&exe)
            .envs(env.iter())
            .envs(entry.map(|e| ("LIFEBOAT_RESTORE_ENTRY", e)))
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt/{name}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file.try_clone().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        watch.functions.push(function);
    }
    watch
}

/// Invokes a function through the local Lambda runtime (`cargo lambda invoke`, the payload written to a file).
impl Invoke for Watch {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data_file = dir.path().join("event.json");
        std::fs::write(&data_file, payload.to_string()).map_err(|e| e.to_string())?;
        invoke_file(self, function, &data_file)
    }

    /// Under the Lambda runtime the functions write their metrics as EMF lines into their log.
    async fn metric_names(&self, _: &World) -> Vec<String> {
        demo::emf_metric_names(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

/// Invokes a function with the event in `data_file`; returns its JSON result or its error text.
fn invoke_file(watch: &Watch, function: &str, data_file: &Path) -> Result<Value, String> {
    let out = Command::new(cargo_lambda())
        .args([
            "lambda",
            "invoke",
            function,
            "-A",
            "127.0.0.1",
            "-P",
            &watch.port.to_string(),
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

#[tokio::main]
async fn main() {
    let log_dir = repo_root().join(".demo");
    let world = World::start(Clock::real(), &log_dir).await;

    heading("Starting the functions under the local Lambda runtime (cargo lambda watch's runtime APIs)");
    let log = log_dir.join("lambda.log");
    let watch = start_watch(&world.env, &log);
    println!(
        "  listening on 127.0.0.1:{}; function logs (Lambda JSON format) in {}",
        watch.port,
        log.display()
    );
    let verdicts = demo::run(&world, &watch).await;
    drop(watch);

    heading("The story's verdicts");
    verdicts.print();
    let differences = verdicts.differences(&Verdicts::story());
    if differences.is_empty() {
        println!(
            "  as the story means: a healthy fleet but for {}, left unencrypted on purpose",
            demo::UNENCRYPTED_ON_PURPOSE
        );
    }
    drop(world);
    println!(
        "\nDemo finished; the emulator and PostgreSQL are stopped. Function logs: {}",
        log.display()
    );
    assert!(
        differences.is_empty(),
        "the demo's verdicts are not what its story means:\n  {}",
        differences.join("\n  ")
    );
}
