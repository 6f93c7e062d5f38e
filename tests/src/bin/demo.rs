//! `make demo`: Lifeboat end to end on this machine, with no AWS account, through the stack a user deploys.
//!
//! Builds the demo's world (`lifeboat_tests::demo`: moto's server, a real PostgreSQL loaded with the demo
//! application, a real Redis, the fleet in the emulator under a tiered plan document, and `infra/template.yaml`
//! deployed into moto's CloudFormation), starts every function of the stack under the local Lambda runtime with
//! the environment and role the stack gave it, tells the story through the stack's schedules, rules and state
//! machine, and prints what happened in words an operator reads. It ends with the story's verdicts and fails when
//! any differs from what the story means.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lifeboat_tests::demo::{self, heading, Functions, Verdicts, World};
use lifeboat_tests::repo_root;

#[tokio::main]
async fn main() {
    let out_dir = repo_root().join(".demo");
    let world = World::start(&out_dir).await;

    heading("Starting the stack's functions under the local Lambda runtime (cargo lambda watch's runtime APIs)");
    let logs = out_dir.join("functions");
    let functions = Functions::start(&world, &logs);
    println!(
        "  each with the environment and role the stack gave it; logs (Lambda's JSON format) in {}",
        logs.display()
    );
    let verdicts = demo::run(&world, &functions).await;
    drop(functions);

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
        "\nDemo finished; the emulator and the servers are stopped. Function logs: {}",
        logs.display()
    );
    assert!(
        differences.is_empty(),
        "the demo's verdicts are not what its story means:\n  {}",
        differences.join("\n  ")
    );
}
