//! Progress per stage on stderr while a stream runs: bytes, rate, and an ETA when the size is known. On a
//! terminal one line is redrawn; otherwise a line is written every few seconds (logs, CI, tests).

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat::postgres::archive::Counters;

const MIB: f64 = 1024.0 * 1024.0;

/// The totals the manifest announces.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub stored: u64,
    pub plain: u64,
    /// Tables to count after a restore; 0 for a verification.
    pub tables: u64,
}

/// One stage's progress: `download 12.0/45.0 MiB 8.1 MiB/s ETA 4s`.
pub fn stage(name: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let mut out = format!(
        "{name} {:.1}/{:.1} MiB {:.1} MiB/s",
        done as f64 / MIB,
        total as f64 / MIB,
        rate / MIB
    );
    if done < total && rate > 0.0 {
        out.push_str(&format!(" ETA {:.0}s", (total - done) as f64 / rate));
    } else if done >= total {
        out.push_str(" done");
    }
    out
}

/// The whole progress line.
pub fn line(c: &Counters, t: Totals, elapsed: Duration) -> String {
    let mut parts = vec![
        stage("download", c.stored.load(Ordering::Relaxed), t.stored, elapsed),
        stage("decrypt+restore", c.plain.load(Ordering::Relaxed), t.plain, elapsed),
    ];
    if t.tables > 0 {
        parts.push(format!(
            "verify {}/{} tables",
            c.counted.load(Ordering::Relaxed),
            t.tables
        ));
    }
    parts.join(" | ")
}

/// Prints progress until the returned guard is dropped; then prints the final line.
pub fn start(counters: Arc<Counters>, totals: Totals) -> Reporter {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(2)
    };
    let started = Instant::now();
    let handle = std::thread::spawn(move || {
        let mut last = Instant::now();
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= every {
                last = Instant::now();
                let text = line(&counters, totals, started.elapsed());
                let mut err = std::io::stderr();
                // Progress is best effort: a closed stderr must not stop a restore.
                let _ = if tty {
                    write!(err, "\r\x1b[2K{text}")
                } else {
                    writeln!(err, "{text}")
                };
            }
        }
        let text = line(&counters, totals, started.elapsed());
        let _ = writeln!(std::io::stderr(), "{}{text}", if tty { "\r\x1b[2K" } else { "" });
    });
    Reporter {
        stop,
        handle: Some(handle),
    }
}

/// Stops the progress line when dropped.
#[derive(Debug)]
pub struct Reporter {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            // A progress thread that panicked has nothing left to print.
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_show_bytes_rate_and_eta() {
        let s = stage("download", 10 * 1024 * 1024, 40 * 1024 * 1024, Duration::from_secs(5));
        assert_eq!(s, "download 10.0/40.0 MiB 2.0 MiB/s ETA 15s");
        let s = stage("download", 40 * 1024 * 1024, 40 * 1024 * 1024, Duration::from_secs(5));
        assert_eq!(s, "download 40.0/40.0 MiB 8.0 MiB/s done");
    }
}
