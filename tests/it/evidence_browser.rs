//! The evidence page in a real browser: Debian's headless `chromium` opens the page monitor wrote and must log
//! no console error, refuse nothing and request nothing but the page itself (its net log is read back), and it
//! saves a screenshot; a second run prints the page to PDF. A page that tries to fetch an image is the control:
//! the same checks must catch it, so a check that stopped seeing would fail here first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::evidence::{world, written_report};

const INSTALL: &str = "install Debian's chromium: sudo apt-get install chromium (or `make chromium`)";

/// The browser: `LIFEBOAT_CHROMIUM`, else `chromium` on the PATH. Missing is a failure, never a skip.
fn chromium() -> String {
    let bin = std::env::var("LIFEBOAT_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    match Command::new(&bin).arg("--version").output() {
        Ok(out) if out.status.success() => bin,
        _ => panic!("{bin} not found or not working: {INSTALL}"),
    }
}

/// One headless run with a profile of its own, nothing in the background, and the console on stderr.
fn run(page: &Path, dir: &Path, extra: &[String]) -> Output {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("running chromium: {e}: {INSTALL}"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Console messages and refusals (CSP violations) chromium logged.
fn complaints(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Refused to") || l.contains("Content Security Policy"))
        .map(str::to_owned)
        .collect()
}

/// The URLs the page asked for, from chromium's net log: requests in the page's own network partition (its
/// isolation key names `file://`). The browser's own background traffic (time, updates, accounts), which no
/// flag fully silences, is in other partitions and is not the page's doing.
fn page_requests(net_log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(net_log).unwrap();
    // A log cut short by the browser's exit lacks its closing brackets.
    let log: Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(','))))
        .unwrap_or_else(|e| panic!("net log {} unreadable: {e}", net_log.display()));
    let events = log["events"]
        .as_array()
        .unwrap_or_else(|| panic!("net log {} has no events", net_log.display()));
    let mut out: Vec<String> = events
        .iter()
        .filter_map(|e| {
            let p = &e["params"];
            let partition = p["network_isolation_key"].as_str()?;
            partition
                .contains("file://")
                .then(|| p["url"].as_str().map(str::to_owned))?
        })
        .collect();
    out.dedup();
    out
}

/// Opens `page` with a net log and a screenshot: what it complained about, what it fetched, the screenshot.
pub(crate) fn open(page: &Path, dir: &Path) -> (Vec<String>, Vec<String>, Vec<u8>) {
    let (net_log, shot) = (dir.join("net-log.json"), dir.join("screenshot.png"));
    let out = run(
        page,
        dir,
        &[
            format!("--log-net-log={}", net_log.display()),
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400".to_owned(),
        ],
    );
    (complaints(&out), page_requests(&net_log), std::fs::read(&shot).unwrap())
}

pub(crate) fn fetched_elsewhere(urls: &[String]) -> Vec<String> {
    urls.iter()
        .filter(|u| !u.starts_with("file://") && !u.starts_with("data:"))
        .cloned()
        .collect()
}

/// Where the page, its screenshot and its PDF are kept after the tests (`target/<profile>/evidence/`), to look at.
fn kept(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().join("evidence");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test]
async fn the_page_opens_with_no_console_error_and_no_request_and_is_screenshotted() {
    let w = world().await;
    let (_, html, _) = written_report(&w).await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("evidence.html");
    std::fs::write(&page, &html).unwrap();
    let (complaints, urls, png) = open(&page, dir.path());
    assert!(complaints.is_empty(), "{complaints:#?}");
    assert_eq!(fetched_elsewhere(&urls), Vec::<String>::new());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (width, height) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((width, height), (1280, 2400));
    assert!(
        png.len() > 50_000,
        "a page of charts and tables is not a blank {} bytes",
        png.len()
    );
    std::fs::write(kept("evidence-report.png"), &png).unwrap();
    std::fs::write(kept("evidence-report.html"), &html).unwrap();

    // The controls: a page that tries to fetch an image is caught by each check. With the page's policy the
    // browser refuses the fetch and says so; without it, the request shows in the page's net log.
    let img = "<img src=\"http://127.0.0.1:9/x.png\"></body>";
    let hostile = dir.path().join("hostile.html");
    std::fs::write(&hostile, html.replacen("</body>", img, 1)).unwrap();
    let (complaints, urls, _) = open(&hostile, dir.path());
    let refused =
        |l: &String| l.contains("Refused to load") || l.contains("violates the following Content Security Policy");
    assert!(
        complaints.iter().any(refused),
        "the refusal was not seen: {complaints:#?}"
    );
    assert_eq!(
        fetched_elsewhere(&urls),
        Vec::<String>::new(),
        "the policy let a fetch through"
    );
    let csp = format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        lifeboat::evidence::html::CSP
    );
    std::fs::write(&hostile, html.replacen("</body>", img, 1).replacen(&csp, "", 1)).unwrap();
    let (_, urls, _) = open(&hostile, dir.path());
    assert_eq!(
        fetched_elsewhere(&urls),
        ["http://127.0.0.1:9/x.png"],
        "the net log did not show the page's fetch"
    );
}

#[tokio::test]
async fn the_page_prints_to_pdf() {
    let w = world().await;
    let (_, html, _) = written_report(&w).await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("evidence.html");
    std::fs::write(&page, &html).unwrap();
    let pdf = dir.path().join("evidence.pdf");
    run(
        &page,
        dir.path(),
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".to_owned(),
        ],
    );
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "not a PDF");
    assert!(
        bytes.ends_with(b"%%EOF\n") || bytes.ends_with(b"%%EOF"),
        "a PDF ends with %%EOF"
    );
    let text = String::from_utf8_lossy(&bytes);
    let pages = text.matches("/Type /Page\n").count()
        + text.matches("/Type /Page ").count()
        + text.matches("/Type /Page>").count()
        + text.matches("/Type/Page").count()
        - text.matches("/Type/Pages").count();
    assert!(
        pages >= 4,
        "one page for the summary and one per database at least, got {pages}"
    );
    std::fs::write(kept("evidence-report.pdf"), &bytes).unwrap();
}
