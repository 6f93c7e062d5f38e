//! Benchmark: what following a plan document costs the functions, per tick and per monitor run, for each of the
//! three example policies (`examples/plans/`).
//!
//! Figures (median [min–max] of `BENCH_RUNS` runs, default 7; ratios of medians) are relative to a reference measured in the same run: parsing
//! the same bytes as plain JSON (`serde_json::Value`), the least any reader of the document pays. Measured:
//! - `validate`: `plans::document::parse`, the whole validation a function runs on each version it reads;
//! - `a year of ticks`: every rule kind's due runs at each of the 35,040 quarter-hour ticks of a year, what the
//!   snapshot and export ticks decide in a year, shown per tick;
//! - `thresholds`: `RuleRef::max_age()` of every rule, which measures each schedule's longest gap over four
//!   years: what monitor derives per resource and run.
//!
//! Prints; asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat::plans::document::{parse, RuleKind};
use lifeboat::plans::due::due_at_tick;
use lifeboat_tests::repo_root;
use lifeboat_tests::stats::{ratio, spread, Spread};

const KINDS: [RuleKind; 5] = [
    RuleKind::Snapshot,
    RuleKind::Export,
    RuleKind::CacheSnapshot,
    RuleKind::RdbCopy,
    RuleKind::RestoreTest,
];

/// Microseconds of each of `runs` calls of `f`, as the spread the other benchmarks print.
fn time<T>(runs: usize, per: u32, mut f: impl FnMut() -> T) -> Spread {
    let us: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e6 / f64::from(per)
        })
        .collect();
    spread(&us).unwrap()
}

fn us(s: &Spread) -> String {
    format!("{:.1} µs [{:.1}–{:.1}]", s.median, s.min, s.max)
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
        "{:<26} {:>22} {:>29} {:>29} {:>29}",
        "example", "plain JSON (reference)", "validate", "a tick's due runs", "every threshold"
    );
    let mut examples: Vec<_> = std::fs::read_dir(repo_root().join("examples/plans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    examples.sort();
    for path in examples {
        let bytes = std::fs::read(&path).unwrap();
        let doc = parse(&bytes).unwrap();
        // A thousand calls per run for the short figures, reported per call.
        let reference = time(runs, 1000, || {
            for _ in 0..1000 {
                std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap());
            }
        });
        let validate = time(runs, 1000, || {
            for _ in 0..1000 {
                std::hint::black_box(parse(&bytes).unwrap());
            }
        });
        // A year of ticks per run, reported per tick.
        let per_tick = time(runs, ticks as u32, || {
            let mut n = 0;
            for i in 1..=ticks {
                let tick = start + chrono::Duration::minutes(15 * i);
                for kind in KINDS {
                    n += due_at_tick(&doc, kind, tick).len();
                }
            }
            n
        });
        let thresholds = time(runs, 1000, || {
            (0..1000)
                .map(|_| {
                    doc.plans
                        .values()
                        .flat_map(|p| p.rules())
                        .map(|r| r.max_age().num_minutes())
                        .sum::<i64>()
                })
                .sum::<i64>()
        });
        let x = |s: &Spread| format!("{} ({:.1}x)", us(s), ratio(s, &reference).unwrap_or(f64::NAN));
        println!(
            "{:<26} {:>22} {:>29} {:>29} {:>29}",
            path.file_name().unwrap().to_string_lossy(),
            us(&reference),
            x(&validate),
            x(&per_tick),
            x(&thresholds)
        );
    }
}
