//! Benchmark: what following a plan document costs the functions, per tick and per monitor run, for each of the
//! three example policies (`examples/plans/`).
//!
//! Figures (medians of `BENCH_RUNS` runs, default 7) are relative to a reference measured in the same run: parsing
//! the same bytes as plain JSON (`serde_json::Value`), the least any reader of the document pays. Measured:
//! - `validate`: `plans::document::parse`, the whole validation a function runs on each version it reads;
//! - `a year of ticks`: every rule kind's due runs at each of the 35,040 quarter-hour ticks of a year, what the
//!   snapshot and export ticks decide in a year, shown per tick;
//! - `thresholds`: `RuleRef::max_age()` of every rule, which measures each schedule's longest gap over four
//!   years: what monitor derives per resource and run.
//!
//! Prints; asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat::plans::document::{parse, RuleKind};
use lifeboat::plans::due::due_at_tick;
use lifeboat_tests::repo_root;

const KINDS: [RuleKind; 5] = [
    RuleKind::Snapshot,
    RuleKind::Export,
    RuleKind::CacheSnapshot,
    RuleKind::RdbCopy,
    RuleKind::RestoreTest,
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let start: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
    let ticks = 365 * 96;
    println!("plan document costs, median of {runs} runs (reference: the same bytes parsed as plain JSON)\n");
    println!(
        "{:<26} {:>10} {:>12} {:>7} {:>16} {:>10} {:>14} {:>10}",
        "example", "JSON", "validate", "x", "per tick (year)", "x", "thresholds", "x"
    );
    let mut examples: Vec<_> = std::fs::read_dir(repo_root().join("examples/plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    examples.sort();
    for path in examples {
        let bytes = std::fs::read(&path).unwrap();
        let doc = parse(&bytes).unwrap();
        let reference = time(runs * 20, || {
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        });
        let validate = time(runs * 20, || parse(&bytes).unwrap());
        let year = time(runs, || {
            let mut n = 0;
            for i in 1..=ticks {
                let tick = start + chrono::Duration::minutes(15 * i);
                for kind in KINDS {
                    n += due_at_tick(&doc, kind, tick).len();
                }
            }
            n
        });
        let per_tick = year / ticks as u32;
        let thresholds = time(runs, || {
            doc.plans
                .values()
                .flat_map(|p| p.rules())
                .map(|r| r.max_age().num_minutes())
                .sum::<i64>()
        });
        let ratio = |d: Duration| d.as_secs_f64() / reference.as_secs_f64();
        println!(
            "{:<26} {:>10} {:>12} {:>6.1}x {:>16} {:>9.1}x {:>14} {:>9.1}x",
            path.file_name().unwrap().to_string_lossy(),
            us(reference),
            us(validate),
            ratio(validate),
            us(per_tick),
            ratio(per_tick),
            us(thresholds),
            ratio(thresholds)
        );
    }
}
