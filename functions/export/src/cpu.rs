//! CPU time per stage of one export, so that a change can be aimed at the stage that costs most.
//!
//! - pg_dump and pg_restore: the growth of this process's reaped children's CPU (`cutime + cstime` in
//!   `/proc/self/stat`) across the wait that reaps each of them, so each is counted whole, after it exited.
//! - Hashing, compression, encryption, the copy into parts and the row counts all run on the encoder thread: a [`Meter`] charges
//!   that thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) to whichever stage runs, exclusive of the stages nested in
//!   it (zstd writes into age, which writes into the part writer).
//! - Upload: the thread CPU clock around every poll of its future ([`Timed`]), whichever runtime thread polls it.
//! - Pipes (reading pg_dump, duplicating its output into pg_restore's input): the reader thread's CPU clock.
//! - Other: the rest of the process's CPU over the pipeline (the runtime, the HTTP connections' own tasks, zstd's
//!   worker threads when `LIFEBOAT_ZSTD_WORKERS` > 0).
//!
//! Only reports; decides nothing. Where a clock is unavailable it reads zero.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};
use serde::Serialize;

/// CPU seconds per stage of one export (reported in the summary, never in the manifest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuSeconds {
    pub pg_dump: f64,
    pub pg_restore: f64,
    pub hashing: f64,
    pub compression: f64,
    pub encryption: f64,
    pub upload: f64,
    pub pipes: f64,
    pub row_counts: f64,
    pub other: f64,
}

/// The calling thread's CPU time.
pub fn thread_cpu() -> Duration {
    to_duration(clock_gettime(ClockId::ThreadCPUTime))
}

/// The whole process's CPU time (all its threads, not its children).
pub fn process_cpu() -> Duration {
    to_duration(clock_gettime(ClockId::ProcessCPUTime))
}

fn to_duration(t: rustix::time::Timespec) -> Duration {
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// CPU time of the children this process has reaped, from `/proc/self/stat` (zero where unreadable).
pub fn children_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| children_ticks(&stat))
        .map(|ticks| Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64))
        .unwrap_or_default()
}

/// `cutime + cstime` (fields 16 and 17) of a `/proc/<pid>/stat` line; the command name (field 2) may hold spaces
/// and parentheses, so fields are counted from its last `)`.
fn children_ticks(stat: &str) -> Option<u64> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (the state).
    let cutime: u64 = fields.get(16 - 3)?.parse().ok()?;
    let cstime: u64 = fields.get(17 - 3)?.parse().ok()?;
    Some(cutime + cstime)
}

/// The encoder thread's stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Between stages: receiving chunks, the loop itself.
    Pipes,
    Hashing,
    Compression,
    Encryption,
    /// Copying into the part buffer and handing parts on.
    Upload,
    /// Counting the rows in the archive's COPY data.
    RowCounts,
}

const STAGES: usize = 6;

/// Charges one thread's CPU time to the stage running on it. Cheap to clone; not `Send` (one thread's clock).
#[derive(Debug, Clone)]
pub struct Meter(Rc<MeterState>);

#[derive(Debug)]
struct MeterState {
    current: Cell<Stage>,
    since: Cell<Duration>,
    totals: [Cell<Duration>; STAGES],
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

impl Meter {
    pub fn new() -> Self {
        Meter(Rc::new(MeterState {
            current: Cell::new(Stage::Pipes),
            since: Cell::new(thread_cpu()),
            totals: Default::default(),
        }))
    }

    /// Runs `f` as `stage`; the time of stages it enters itself is theirs, not `stage`'s.
    pub fn stage<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let outer = self.switch(stage);
        let out = f();
        self.switch(outer);
        out
    }

    /// Charges the time since the last switch to the running stage, then runs `stage`; returns the previous.
    fn switch(&self, stage: Stage) -> Stage {
        let now = thread_cpu();
        let s = &self.0;
        let running = s.current.replace(stage);
        let slot = &s.totals[running as usize];
        slot.set(slot.get() + now.saturating_sub(s.since.replace(now)));
        running
    }

    /// The time charged to `stage` so far (the running stage is charged up to now).
    pub fn total(&self, stage: Stage) -> Duration {
        let current = self.0.current.get();
        self.switch(current);
        self.0.totals[stage as usize].get()
    }
}

/// CPU time accumulated by [`Timed`] futures, shared across threads.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, d: Duration) {
        self.0
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

/// A future whose polls are charged to a [`Counter`], by the CPU clock of the thread that polls it.
#[derive(Debug)]
pub struct Timed<F> {
    inner: Pin<Box<F>>,
    counter: Counter,
}

pub fn timed<F: Future>(counter: &Counter, inner: F) -> Timed<F> {
    Timed {
        inner: Box::pin(inner),
        counter: counter.clone(),
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = thread_cpu();
        let out = self.inner.as_mut().poll(cx);
        self.counter.add(thread_cpu().saturating_sub(start));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let start = thread_cpu();
        let mut x = 0u64;
        while thread_cpu().saturating_sub(start) < d {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[test]
    fn children_ticks_are_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "123 (a b) c)) S 1 123 123 0 -1 4194304 100 0 0 0 7 3 250 40 20 0 1 0 100 1000 10";
        assert_eq!(children_ticks(stat), Some(290));
        assert_eq!(children_ticks("123 (x) S 1"), None);
        assert_eq!(children_ticks("garbage"), None);
    }

    #[test]
    fn nested_stages_are_charged_exclusively() {
        let meter = Meter::new();
        meter.stage(Stage::Compression, || {
            spin(Duration::from_millis(30));
            meter.stage(Stage::Encryption, || spin(Duration::from_millis(60)));
        });
        let compression = meter.total(Stage::Compression);
        let encryption = meter.total(Stage::Encryption);
        assert!(encryption >= Duration::from_millis(60), "{encryption:?}");
        assert!(
            compression >= Duration::from_millis(30) && compression < Duration::from_millis(55),
            "compression {compression:?} must not include encryption's 60 ms"
        );
        assert_eq!(meter.total(Stage::Hashing), Duration::ZERO);
    }

    #[tokio::test]
    async fn timed_futures_count_their_own_polls_only() {
        let counter = Counter::default();
        timed(&counter, async { spin(Duration::from_millis(40)) }).await;
        spin(Duration::from_millis(40));
        let got = counter.get();
        assert!(
            got >= Duration::from_millis(40) && got < Duration::from_millis(70),
            "{got:?}"
        );
    }

    #[test]
    fn a_reaped_childs_cpu_shows_in_children_cpu() {
        let before = children_cpu();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(children_cpu() > before, "a busy child reaped must add CPU time");
    }
}
