//! `make demo`: Lifeboat end to end on this machine, with no AWS account.
//!
//! Builds the demo's world (`lifeboat_tests::demo`: moto's server, a real PostgreSQL loaded with the demo
//! application, a real Redis, the fleet in the emulator), runs the functions' binaries under the real Lambda
//! runtime (the runtime APIs of `cargo lambda watch --only-lambda-apis`, invoked with `cargo lambda invoke` and the
//! events of `events/`, re-dated to the moment the demo runs), and prints what happened in words an operator
//! reads. It ends with the story's verdicts and fails when any differs from what the story means.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;

use lifeboat_tests::demo::{self, deployed, heading, Clock, Invoke, Verdicts, World};
use lifeboat_tests::lambda::RuntimeApi;
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
    functions: Vec<Child>,
    /// Dropped after the functions: they are stopped first.
    api: RuntimeApi,
    /// The functions' standard output and error (Lambda's log of them).
    log: PathBuf,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for f in &mut self.functions {
            let _ = f.kill();
            let _ = f.wait();
        }
    }
}

fn start_watch(env: &BTreeMap<String, String>, log: &Path) -> Watch {
    let api = RuntimeApi::start(&log.with_file_name("runtime-api.log"));
    let log_file = std::fs::File::create(log).unwrap();
    let bin_dir = std::env::current_exe().unwrap().parent().unwrap().to_owned();
    let mut functions = Vec::new();
    for name in FUNCTIONS {
        let (binary, entry) = binary_of(name);
        let exe = bin_dir.join(binary);
        assert!(
            exe.exists(),
            "{} is missing: run `make demo`, which builds the functions first",
            exe.display()
        );
        let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        vars.extend(entry.map(|e| ("LIFEBOAT_RESTORE_ENTRY", e)));
        let out = || log_file.try_clone().unwrap();
        functions.push(api.spawn(name, &exe, &vars, out(), out()));
    }
    Watch {
        functions,
        api,
        log: log.to_path_buf(),
    }
}

/// Invokes a function through the local Lambda runtime (`cargo lambda invoke`, the payload written to a file).
impl Invoke for Watch {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data_file = dir.path().join("event.json");
        std::fs::write(&data_file, payload.to_string()).map_err(|e| e.to_string())?;
        self.api.invoke(function, &data_file)
    }

    /// Under the Lambda runtime the functions write their metrics as EMF lines into their log.
    async fn metric_names(&self, _: &World) -> Vec<String> {
        demo::emf_metric_names(&std::fs::read_to_string(&self.log).unwrap_or_default())
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
        watch.api.port,
        log.display()
    );
    let verdicts = demo::run(&world, &watch).await;
    drop(watch);

    // The same functions as a user deploys them: the template itself, in a local cloud of its own.
    heading("The stack as a user deploys it: infra/template.yaml in the local cloud (tests/stack/deploy.py)");
    let stack_world = deployed::world().await;
    let functions = deployed::start_functions(&stack_world, &log_dir.join("deployed"));
    deployed::story(&stack_world, &functions, &|line| println!("  {line}")).await;
    println!(
        "  every function ran with the environment and role the stack gave it; logs in {}",
        log_dir.join("deployed").display()
    );
    drop(functions);
    drop(stack_world);

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
