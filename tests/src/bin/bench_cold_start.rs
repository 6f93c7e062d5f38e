//! Benchmark: what a deploy costs at run time. Builds every function's release binary and zip the way a deploy
//! does (`make package`: one `cargo lambda build --release -p <function>` each, Zig linking and the CPU level
//! cargo-lambda sets, so that no function gets another's cargo features), and a minimal `lambda_runtime` function
//! (`lambda_minimal`, a binary of this test crate, never deployed) built the same way in the same run; then prints, per function, the zip's size, the unzipped binary's size (what a cold
//! start reads) and the time from process start to ready-for-the-first-invocation: the process's first
//! `GET /2018-06-01/runtime/invocation/next` to a tiny runtime API this benchmark serves itself.
//!
//! Each figure is the median [min–max] of `BENCH_RUNS` starts (default 15), round-robin over the binaries; the
//! ratio is of medians against the minimal function's. The functions start with harmless settings and AWS at a
//! closed local port, so nothing leaves the machine (none calls AWS before it asks for its first event). The
//! targets: binary ≤ 10 MB (10^6 bytes), init ≤ 2x the minimal function's. Prints; asserts nothing.
//!
//! arm64 is built when this toolchain has the aarch64-unknown-linux-gnu standard library (sizes only: its init
//! cannot be timed on another architecture); otherwise the benchmark says that it was not built, and why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_tests::repo_root;
use lifeboat_tests::stats::{ratio, schedule, spread, Spread};

const MB: f64 = 1_000_000.0;
const TARGET_BYTES: u64 = 10_000_000;
const TARGET_RATIO: f64 = 2.0;
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next ";
const ARM64: &str = "aarch64-unknown-linux-gnu";

/// One binary to measure: its package, its binary name, and the settings it needs to start.
struct Function {
    package: &'static str,
    binary: &'static str,
    env: &'static [(&'static str, &'static str)],
}

const FUNCTIONS: [Function; 8] = [
    Function {
        package: "lifeboat-tests",
        binary: "lambda_minimal",
        env: &[],
    },
    Function {
        package: "snapshot",
        binary: "snapshot",
        env: &[("LIFEBOAT_PLAN_DOCUMENT", "s3://bench-bucket/lifeboat/plans.json")],
    },
    Function {
        package: "export",
        binary: "export",
        env: &[("LIFEBOAT_BUCKET", "bench-bucket")],
    },
    Function {
        package: "rotate",
        binary: "rotate",
        env: &[("LIFEBOAT_DB_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")],
    },
    Function {
        package: "restore",
        binary: "restore",
        env: &[
            ("LIFEBOAT_BUCKET", "bench-bucket"),
            ("LIFEBOAT_RESTORE_ENTRY", "console"),
        ],
    },
    Function {
        package: "restore",
        binary: "restore-test",
        env: &[("LIFEBOAT_BUCKET", "bench-bucket"), ("LIFEBOAT_RESTORE_ENTRY", "steps")],
    },
    Function {
        package: "monitor",
        binary: "monitor",
        env: &[("LIFEBOAT_BUCKET", "bench-bucket"), ("LIFEBOAT_STACK_NAME", "bench")],
    },
    Function {
        package: "notify",
        binary: "notify",
        env: &[("LIFEBOAT_NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:bench")],
    },
];

/// Whether a request head is the runtime API's "next invocation" call.
fn is_next_request(head: &str) -> bool {
    head.starts_with(NEXT)
}

/// Builds one binary as `make package` does (`cargo lambda build --release`, Zig linking for the architecture,
/// the CPU level cargo-lambda sets for it), into `lambda_dir/<binary>/bootstrap`; its path.
fn lambda_build(package: &str, binary: &str, arch: Arch, lambda_dir: &Path) -> Result<PathBuf, String> {
    let venv_bin = repo_root().join(".venv/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(venv_bin.clone()).chain(std::env::split_paths(&path)))
        .map_err(|e| e.to_string())?;
    if !venv_bin.join("cargo-lambda").exists() {
        return Err(format!(
            "{} is missing: `make tools` installs cargo-lambda (as `make package` uses it)",
            venv_bin.join("cargo-lambda").display()
        ));
    }
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.args(["lambda", "build", "--locked", "--release", "--lambda-dir"])
        .arg(lambda_dir)
        .args([arch.flag(), "-p", package, "--bin", binary])
        .env("PATH", path)
        .current_dir(repo_root());
    let status = cmd.status().map_err(|e| format!("running cargo lambda: {e}"))?;
    status
        .success()
        .then(|| lambda_dir.join(binary).join("bootstrap"))
        .ok_or_else(|| {
            format!(
                "cargo lambda build {} -p {package} --bin {binary} failed ({status})",
                arch.flag()
            )
        })
}

/// The architectures a deploy builds for (the template's `Architecture`).
#[derive(Clone, Copy)]
enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    fn flag(self) -> &'static str {
        match self {
            Arch::X86_64 => "--x86-64",
            Arch::Arm64 => "--arm64",
        }
    }
}

/// The binary as a deployment zip (`bootstrap`, deflated, as cargo-lambda and `sam build` pack it); its size.
fn zip_size(binary: &Path, out_dir: &Path, name: &str) -> u64 {
    let staging = tempfile::tempdir().unwrap();
    std::fs::copy(binary, staging.path().join("bootstrap")).unwrap();
    std::fs::create_dir_all(out_dir).unwrap();
    let zip = out_dir.join(format!("{name}.zip"));
    let _ = std::fs::remove_file(&zip);
    let status = Command::new("zip")
        .args(["-q", "-9", "-X"])
        .arg(&zip)
        .arg("bootstrap")
        .current_dir(staging.path())
        .status()
        .unwrap_or_else(|e| panic!("`zip` is needed (apt-get install zip): {e}"));
    assert!(status.success(), "zip failed: {status}");
    std::fs::metadata(&zip).unwrap().len()
}

/// Milliseconds from spawning `exe` to its first request for an event, served on a port of its own.
fn time_to_next(exe: &Path, env: &[(&str, &str)], log: &Path) -> Result<f64, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let api = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(exe);
    // Only what Lambda would give it, plus the function's settings: nothing of this machine's AWS set-up.
    cmd.env_clear()
        .envs(env.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", exe.display()))?;
    let result = (|| {
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.to_string()),
            }
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!("exited ({status}) before asking for an event:\n{said}"));
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err("asked for no event within 30 s".to_owned());
            }
            std::thread::sleep(Duration::from_micros(50));
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut buf = [0_u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let elapsed = start.elapsed();
        let head = String::from_utf8_lossy(&head);
        if !is_next_request(&head) {
            return Err(format!("its first request was not for an event: {head}"));
        }
        Ok(elapsed.as_secs_f64() * 1e3)
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn host_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{} ({model}, {cores} cores), {rustc}", std::env::consts::ARCH)
}

/// Why arm64 cannot be built here, or `None` when it can.
fn arm64_missing() -> Option<String> {
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().ok()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let std_dir = sysroot.join("lib/rustlib").join(ARM64).join("lib");
    (!std_dir.exists()).then(|| {
        format!(
            "this toolchain has no {ARM64} standard library ({} is missing; `rustup target add {ARM64}` \
             installs it, where rustup's dist server is reachable) and no arm64 binary can be linked without it",
            std_dir.display()
        )
    })
}

fn fmt_spread(s: &Spread) -> String {
    format!("{:.1} [{:.1}–{:.1}]", s.median, s.min, s.max)
}

fn yes_no(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "NO"
    }
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(15);
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let lambda_dir = target_dir.join("lambda-x86_64");
    let zips = lambda_dir.join("cold-start");

    println!("cold start: {}", host_description());
    println!(
        "building {} release binaries (x86_64, cargo lambda build)...",
        FUNCTIONS.len()
    );
    let binaries: Vec<PathBuf> = FUNCTIONS
        .iter()
        .map(|f| lambda_build(f.package, f.binary, Arch::X86_64, &lambda_dir).unwrap_or_else(|e| panic!("{e}")))
        .collect();

    let base_env = [
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        // A closed port: if a function called AWS before its first event, it would fail here, never leave.
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        // What the template gives every function that needs it (harmless to the others): the CA bundle a
        // verify-full connection needs, the export bucket, the notification topic, the plan document.
        ("LIFEBOAT_DB_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
        ("LIFEBOAT_BUCKET", "bench-bucket"),
        ("LIFEBOAT_NOTIFY_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:bench"),
        ("LIFEBOAT_PLAN_DOCUMENT", "s3://bench-bucket/lifeboat/plans.json"),
        // The stack whose alarms monitor and notify manage.
        ("LIFEBOAT_STACK_NAME", "bench"),
    ];
    let envs: Vec<Vec<(&str, &str)>> = FUNCTIONS
        .iter()
        .map(|f| {
            let mut env: Vec<(&str, &str)> = base_env.to_vec();
            env.push(("AWS_LAMBDA_FUNCTION_NAME", f.binary));
            env.extend_from_slice(f.env);
            env
        })
        .collect();

    let log_dir = tempfile::tempdir().unwrap();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); FUNCTIONS.len()];
    println!("starting each {runs} times, round-robin...");
    for i in schedule(FUNCTIONS.len(), runs) {
        let f = &FUNCTIONS[i];
        let log = log_dir.path().join(format!("{}.log", f.binary));
        match time_to_next(&binaries[i], &envs[i], &log) {
            Ok(ms) => times[i].push(ms),
            Err(e) => panic!("{} did not get ready: {e}", f.binary),
        }
    }

    let minimal = spread(&times[0]).unwrap();
    println!();
    println!("x86_64, {runs} starts each; sizes in MB (10^6 bytes); init in ms, median [min–max], process start to its first GET .../invocation/next");
    println!(
        "{:<15} {:>8} {:>8} {:>8} {:>24} {:>10} {:>7}",
        "function", "zip", "binary", "≤10 MB", "init ms", "/ minimal", "≤2x"
    );
    for (i, f) in FUNCTIONS.iter().enumerate() {
        let binary = std::fs::metadata(&binaries[i]).unwrap().len();
        let zip = zip_size(&binaries[i], &zips, f.binary);
        let init = spread(&times[i]).unwrap();
        let r = ratio(&init, &minimal).unwrap_or(f64::NAN);
        let deployed = i > 0;
        println!(
            "{:<15} {:>8.2} {:>8.2} {:>8} {:>24} {:>10} {:>7}",
            f.binary,
            zip as f64 / MB,
            binary as f64 / MB,
            if deployed { yes_no(binary <= TARGET_BYTES) } else { "-" },
            fmt_spread(&init),
            if deployed {
                format!("{r:.2}x")
            } else {
                "1.00x".to_owned()
            },
            if deployed { yes_no(r <= TARGET_RATIO) } else { "-" },
        );
    }
    println!("zips: {}", zips.display());

    println!();
    match arm64_missing() {
        Some(why) => println!("arm64: NOT built: {why}."),
        None => {
            println!(
                "arm64 (sizes only: its init cannot be timed on {}):",
                std::env::consts::ARCH
            );
            let arm_dir = target_dir.join("lambda-arm64");
            for f in &FUNCTIONS {
                match lambda_build(f.package, f.binary, Arch::Arm64, &arm_dir) {
                    Ok(path) => {
                        let binary = std::fs::metadata(&path).unwrap().len();
                        let zip = zip_size(&path, &arm_dir.join("cold-start"), f.binary);
                        println!(
                            "{:<15} zip {:>6.2} MB  binary {:>6.2} MB  ≤10 MB: {}",
                            f.binary,
                            zip as f64 / MB,
                            binary as f64 / MB,
                            yes_no(binary <= TARGET_BYTES)
                        );
                    }
                    Err(e) => println!("{:<15} NOT built: {e}", f.binary),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_next_invocation_call_counts_as_ready() {
        assert!(is_next_request(
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
        ));
        assert!(!is_next_request("POST /2018-06-01/runtime/init/error HTTP/1.1\r\n\r\n"));
        assert!(!is_next_request(
            "GET /2018-06-01/runtime/invocation/nextish HTTP/1.1\r\n\r\n"
        ));
    }
}
