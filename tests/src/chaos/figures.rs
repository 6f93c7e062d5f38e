//! What a chaos run counted, and the table `make chaos` prints: faults injected by kind, runs, retries, invariant
//! violations (the target is zero) and the time to recover.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use super::faults::DataFault;
use super::invariants::{Invariant, Violation};
use crate::faults::{Injected, Kind};

/// The counts of one run.
#[derive(Debug, Default)]
pub struct Figures {
    pub days: u32,
    pub seed: u64,
    /// Days whose invariants were checked.
    pub days_run: u32,
    /// Set when the bound stopped the run before its last day: the day it stopped before.
    pub stopped_after: Option<u32>,
    /// Invocations of the functions, redeliveries included.
    pub runs: u64,
    /// Invocations that failed.
    pub failed_attempts: u64,
    /// Events that failed on every delivery.
    pub unrecovered: u64,
    /// Events delivered again after their success.
    pub redeliveries: u64,
    pub restore_tests: u64,
    pub failed_restore_tests: u64,
    pub rotations: u64,
    /// The restore-test executions already run.
    pub executions: BTreeSet<String>,
    /// AWS faults the proxy injected, by kind, and every request it saw.
    pub aws: BTreeMap<Kind, u64>,
    pub requests: usize,
    /// Data-side faults: injected (the operation caught under way), and missed (it ended before the watcher saw it).
    pub data: BTreeMap<DataFault, (u64, u64)>,
    /// Wall-clock time from a failed attempt's answer to the next good answer of the same event.
    pub recoveries: Vec<Duration>,
    /// Every violation, with the day (from 0) it was found on.
    pub violations: Vec<(u32, Violation)>,
    pub wall: Duration,
    /// Wall-clock time by part of the run (the schedules' ticks, the restore tests, the checks, ...): where a
    /// month goes, for its bound.
    pub spent: BTreeMap<&'static str, Duration>,
}

impl Figures {
    pub fn new(days: u32, seed: u64) -> Self {
        Self {
            days,
            seed,
            ..Self::default()
        }
    }

    /// The day `d`'s invariants were checked, with what they found (a violation found again on a later day, the
    /// same failure judged again, is counted once, on the day it was first found).
    pub fn day_checked(&mut self, d: u32, found: Vec<Violation>) {
        self.days_run = d + 1;
        for v in found {
            self.violation_on(d, v);
        }
    }

    /// A violation found by the runner itself, on the day under way.
    pub fn violation(&mut self, v: Violation) {
        self.violation_on(self.days_run, v);
    }

    fn violation_on(&mut self, d: u32, v: Violation) {
        if !self.violations.iter().any(|(_, seen)| *seen == v) {
            self.violations.push((d, v));
        }
    }

    /// Adds `took` to the wall-clock time of `part`.
    pub fn spent(&mut self, part: &'static str, took: Duration) {
        *self.spent.entry(part).or_default() += took;
    }

    pub fn recovered(&mut self, after: Duration) {
        self.recoveries.push(after);
    }

    pub fn data_fault(&mut self, fault: DataFault, hit: bool) {
        let e = self.data.entry(fault).or_default();
        if hit {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }

    pub fn injected_aws(&mut self, injected: &[Injected], requests: usize) {
        for i in injected {
            *self.aws.entry(i.kind).or_default() += 1;
        }
        self.requests = requests;
    }

    /// Whether the run met its promise: every day run within the bound, no violation.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.stopped_after.is_none()
    }

    /// The table `make chaos` prints.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "chaos: {} of {} days, seed {}, {:.0} s wall",
            self.days_run,
            self.days,
            self.seed,
            self.wall.as_secs_f64()
        );
        let _ = writeln!(t, "\n| fault injected | count |\n|---|---:|");
        for (kind, n) in &self.aws {
            let _ = writeln!(t, "| AWS {} | {n} |", kind_name(*kind));
        }
        for f in DataFault::ALL {
            let (hit, missed) = self.data.get(&f).copied().unwrap_or_default();
            let note = if missed > 0 {
                format!(" ({missed} missed: the operation ended first)")
            } else {
                String::new()
            };
            let _ = writeln!(t, "| {} | {hit}{note} |", f.name());
        }
        let retried = self
            .aws
            .iter()
            .filter(|(k, _)| **k != Kind::Slow)
            .map(|(_, n)| n)
            .sum::<u64>();
        let _ = writeln!(t, "\n| runs | count |\n|---|---:|");
        for (what, n) in [
            ("AWS requests through the proxy", self.requests as u64),
            ("SDK retries (requests answered with a fault)", retried),
            ("function invocations", self.runs),
            (
                "failed invocations (each signalled, then redelivered)",
                self.failed_attempts,
            ),
            ("events failed on every delivery", self.unrecovered),
            ("events redelivered after success", self.redeliveries),
            ("restore tests run", self.restore_tests),
            ("restore tests failed (each signalled)", self.failed_restore_tests),
            ("rotations", self.rotations),
        ] {
            let _ = writeln!(t, "| {what} | {n} |");
        }
        let _ = writeln!(t, "\n| invariant | violations |\n|---|---:|");
        for inv in Invariant::ALL {
            let n = self.violations.iter().filter(|(_, v)| v.invariant == inv).count();
            let _ = writeln!(t, "| {} | {n} |", inv.name());
        }
        let _ = writeln!(t, "\n{}", self.recovery_line());
        t.push_str(&self.spent_table());
        for (d, v) in &self.violations {
            let _ = writeln!(t, "VIOLATION day {d}: {}: {}", v.invariant.name(), v.what);
        }
        if let Some(d) = self.stopped_after {
            let _ = writeln!(t, "STOPPED: the bound was reached before day {d} of {}", self.days);
        }
        t
    }

    /// Where the wall-clock time went, largest first; the rest is the world's set-up (servers, the stack's
    /// deployment) and the figures.
    fn spent_table(&self) -> String {
        let mut parts: Vec<(&str, Duration)> = self.spent.iter().map(|(k, v)| (*k, *v)).collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        let counted: Duration = parts.iter().map(|(_, d)| *d).sum();
        parts.push(("set-up and the rest", self.wall.saturating_sub(counted)));
        let mut t = String::from("\n| where the time went | s |\n|---|---:|\n");
        for (part, d) in parts {
            let _ = writeln!(t, "| {part} | {:.0} |", d.as_secs_f64());
        }
        t
    }

    fn recovery_line(&self) -> String {
        let mut r = self.recoveries.clone();
        r.sort();
        if r.is_empty() {
            return "time to recover: no failed run to recover from".to_owned();
        }
        format!(
            "time to recover (a failed attempt's answer to the next good one of the same event, wall clock; Lambda \
             adds its own 1-2 min between deliveries): median {:.1} s, max {:.1} s over {} recoveries",
            r[r.len() / 2].as_secs_f64(),
            r[r.len() - 1].as_secs_f64(),
            r.len()
        )
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Throttle => "throttling",
        Kind::Error500 => "500",
        Kind::Error503 => "503",
        Kind::Reset => "connection reset",
        Kind::Lost => "answer lost (request took effect)",
        Kind::Slow => "slow answer (400 ms)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_table_puts_the_largest_part_first_and_counts_the_rest_as_set_up() {
        let mut f = Figures::new(2, 1);
        f.spent("the invariants' checks", Duration::from_secs(3));
        f.spent("restore tests (the state machine's steps)", Duration::from_secs(5));
        f.spent("the invariants' checks", Duration::from_secs(4));
        f.wall = Duration::from_secs(20);
        let table = f.table();
        let rows: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("| where the time went"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(
            rows,
            [
                "| the invariants' checks | 7 |",
                "| restore tests (the state machine's steps) | 5 |",
                "| set-up and the rest | 8 |",
            ],
            "{table}"
        );
    }
}
