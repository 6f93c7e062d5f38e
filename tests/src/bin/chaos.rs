//! `make chaos`: a month of the deployed stack's schedules under faults (`lifeboat_tests::chaos`), the figures
//! printed as a table, and a non-zero exit on any invariant violation or when the bound stops the run early.
//!
//! Options: `--days N` (30), `--seed S` (1), `--bound-minutes M` (12), `--aws-fault-percent P` (1). The functions' logs go to `.chaos/functions`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use lifeboat_tests::chaos::{self, Options};
use lifeboat_tests::repo_root;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} takes a whole number")),
        None => default,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(bad) = args
        .iter()
        .step_by(2)
        .find(|a| !["--days", "--seed", "--bound-minutes", "--aws-fault-percent"].contains(&a.as_str()))
    {
        eprintln!("chaos: unknown option {bad}; options: --days N, --seed S, --bound-minutes M, --aws-fault-percent P");
        std::process::exit(2);
    }
    let options = Options {
        days: u32::try_from(arg(&args, "--days", 30)).expect("--days fits 32 bits"),
        seed: arg(&args, "--seed", 1),
        bound: Duration::from_secs(60 * arg(&args, "--bound-minutes", 12)),
        aws_fault_percent: arg(&args, "--aws-fault-percent", 1) as f64,
        logs: repo_root().join(".chaos").join("functions"),
    };
    let figures = chaos::run(&options).await;
    println!("{}", figures.table());
    if !figures.passed() {
        std::process::exit(1);
    }
}
