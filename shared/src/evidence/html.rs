//! The report as one self-contained HTML page: inline CSS, hand-written inline SVG, no script, nothing fetched
//! (its Content-Security-Policy forbids every fetch, so a mistake would be blocked and logged, not leak). Every
//! chart reads in black and white (a gap is hatched and carries a ✕, a threshold is dashed and labelled) and has
//! a table of the same numbers beneath it. Every text that came from outside (names, tags, findings, errors) is
//! escaped by [`esc`]; nothing else writes text into the page.

use chrono::NaiveDate;

use super::report::{
    Day, DayStatus, DbReport, ExportFact, FleetSummary, PlanSection, Report, RestoreTestFact, Series, SeriesKind,
    VersionRef,
};

/// The page's policy: nothing may be fetched; inline styles and data: images only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = include_str!("report.css");

/// Escapes text for HTML and SVG, in content and in quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A figure as the tables print it: no decimals from 100 up, one below.
pub fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The page being written, and a counter that keeps the SVG pattern ids unique.
#[derive(Debug, Default)]
struct Page {
    out: String,
    ids: usize,
}

impl Page {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn id(&mut self) -> usize {
        self.ids += 1;
        self.ids
    }
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut p = Page::default();
    let title = format!("Backup evidence, {}", r.period.label);
    p.push(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <style>\n{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    ));
    header(&mut p, r, &title);
    summary(&mut p, &r.summary);
    if let Some(plan) = &r.plan {
        plan_versions(&mut p, plan);
    }
    legend(&mut p);
    for db in &r.databases {
        database(&mut p, db, &r.days);
    }
    anomalies(&mut p, &r.anomalies);
    p.push(&format!(
        "<footer>Made by Lifeboat {} from what S3 and RDS held at {}. The same data as JSON sits beside this \
         page. Thresholds are the ones monitor alarms on.</footer>\n</body>\n</html>\n",
        esc(&r.lifeboat_version),
        r.generated_at.format("%Y-%m-%d %H:%M UTC")
    ));
    p.out
}

/// The content watch's anomalies of the period: what was seen, what it held, who acknowledged it, when and why.
fn anomalies(p: &mut Page, list: &[crate::evidence::report::AnomalyEvidence]) {
    p.push("<section class=\"anomalies\"><h2>Content anomalies</h2>\n");
    if list.is_empty() {
        p.push("<p>No content anomaly in the period.</p></section>\n");
        return;
    }
    p.push(
        "<table><thead><tr><th>Resource</th><th>Series</th><th>Seen</th><th>Findings</th><th>Held</th>\
            <th>Acknowledged</th></tr></thead><tbody>\n",
    );
    for a in list {
        let findings: Vec<String> = a.findings.iter().map(|f| esc(f)).collect();
        let held: Vec<String> = a
            .held_snapshots
            .iter()
            .chain(&a.held_manifests)
            .map(|h| esc(h))
            .collect();
        let ack = match &a.acknowledged {
            Some(k) => format!(
                "{} by {}{}: {}",
                k.at.format("%Y-%m-%d %H:%M UTC"),
                esc(&k.by),
                if k.by_stated { " (as stated)" } else { "" },
                esc(&k.why)
            ),
            None => "open: held until acknowledged".to_owned(),
        };
        p.push(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ack}</td></tr>\n",
            esc(&a.resource),
            esc(&a.series),
            a.seen_at.format("%Y-%m-%d %H:%M UTC"),
            findings.join("<br>"),
            held.join("<br>")
        ));
    }
    p.push("</tbody></table></section>\n");
}

fn header(p: &mut Page, r: &Report, title: &str) {
    p.push(&format!(
        "<header><h1>{}</h1><p class=\"sub\">{} to {} (UTC days) &middot; generated {} &middot; {} database(s)</p></header>\n",
        esc(title),
        r.period.first,
        r.period.end - chrono::Duration::days(1),
        r.generated_at.format("%Y-%m-%d %H:%M UTC"),
        r.databases.len()
    ));
}

fn card(p: &mut Page, label: &str, value: &str, note: &str, bad: bool) {
    p.push(&format!(
        "<div class=\"card{}\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"note\">{}</div></div>\n",
        if bad { " bad" } else { "" },
        esc(label),
        esc(value),
        esc(note)
    ));
}

fn summary(p: &mut Page, s: &FleetSummary) {
    p.push("<section class=\"summary\"><h2>Fleet summary</h2><div class=\"cards\">\n");
    card(
        p,
        "Databases covered",
        &s.databases_covered.to_string(),
        "selected for backup",
        false,
    );
    let unmet = s.policies_met < s.databases_covered;
    let met = format!("{} of {}", s.policies_met, s.databases_covered);
    card(
        p,
        "Policies met",
        &met,
        if unmet { "✕ some are not met" } else { "✓ all met" },
        unmet,
    );
    match &s.oldest_restore_test {
        Some(t) => {
            let when = t.at.map_or("never".to_owned(), |a| a.format("%Y-%m-%d").to_string());
            card(p, "Oldest restore test", &when, &t.db, t.at.is_none());
        }
        None => card(p, "Oldest restore test", "–", "no databases", false),
    }
    match &s.worst_rpo {
        Some(w) => card(
            p,
            "Worst RPO (restore tests)",
            &format!("{} h", num(w.rpo_hours)),
            &format!("{} on {}", w.db, w.at.date_naive()),
            false,
        ),
        None => card(
            p,
            "Worst RPO (restore tests)",
            "–",
            "no restore test in the period",
            false,
        ),
    }
    p.push("</div>\n<h3>Needs a human</h3>\n");
    if s.needs_a_human.is_empty() {
        p.push("<p class=\"ok\">✓ Nothing: every database meets its policy.</p>\n");
    } else {
        p.push("<ul class=\"human\">\n");
        for n in &s.needs_a_human {
            p.push(&format!("<li>✕ {}</li>\n", esc(n)));
        }
        p.push("</ul>\n");
    }
    p.push("</section>\n");
}

/// Which plan version was in force on which days, as runs of consecutive days with the same versions, then the
/// databases no plan backs up.
fn plan_versions(p: &mut Page, plan: &PlanSection) {
    p.push(&format!(
        "<section class=\"plan\"><h2>Plan in force</h2>\n<p>Expected backups come from the plan document {}, \
         version by version, day by day.</p>\n<ul class=\"plan-days\">\n",
        esc(&plan.document)
    ));
    let mut runs: Vec<(NaiveDate, NaiveDate, &[VersionRef])> = Vec::new();
    for d in &plan.days {
        match runs.last_mut() {
            Some((_, last, v)) if *v == d.versions.as_slice() => *last = d.date,
            _ => runs.push((d.date, d.date, &d.versions)),
        }
    }
    for (first, last, versions) in runs {
        let when = if first == last {
            first.to_string()
        } else {
            format!("{first} to {last}")
        };
        let what = if versions.is_empty() {
            "no valid plan version in force: nothing expected".to_owned()
        } else {
            versions
                .iter()
                .map(|v| {
                    format!(
                        "version {} (S3 version {}, written {})",
                        v.label,
                        v.version_id,
                        v.modified.format("%Y-%m-%d %H:%M UTC")
                    )
                })
                .collect::<Vec<_>>()
                .join(", then ")
        };
        p.push(&format!(
            "<li class=\"plan-day\"><span class=\"when\">{}</span>: {}</li>\n",
            esc(&when),
            esc(&what)
        ));
    }
    p.push("</ul>\n");
    for (title, list) in [
        ("Not backed up by policy", &plan.not_backed_up),
        ("In no plan", &plan.unplanned),
        ("Plan cannot be decided", &plan.conflicts),
    ] {
        if list.is_empty() {
            continue;
        }
        p.push(&format!("<h3>{}</h3><ul>\n", esc(title)));
        for item in list {
            p.push(&format!("<li>{}</li>\n", esc(item)));
        }
        p.push("</ul>\n");
    }
    p.push("</section>\n");
}

fn legend(p: &mut Page) {
    let id = p.id();
    p.push(&format!(
        "<p class=\"legend\"><svg width=\"300\" height=\"18\" viewBox=\"0 0 300 18\" role=\"img\" aria-label=\"legend\">{}\
         <rect x=\"1\" y=\"2\" width=\"14\" height=\"14\" class=\"met\"/><text x=\"20\" y=\"13\">backups made</text>\
         <rect x=\"110\" y=\"2\" width=\"14\" height=\"14\" fill=\"url(#hatch{id})\" class=\"gap\"/><text x=\"129\" y=\"13\">✕ gap: missed</text>\
         <rect x=\"220\" y=\"2\" width=\"14\" height=\"14\" class=\"notkept\"/><text x=\"239\" y=\"13\">· not kept</text></svg> \
         Dashed line: the threshold monitor alarms on. Every chart's numbers are in the table beneath it.</p>\n",
        hatch(id)
    ));
}

/// The hatching of a gap: diagonal dark-red lines, visible without colour.
fn hatch(id: usize) -> String {
    format!(
        "<defs><pattern id=\"hatch{id}\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" \
         patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fbe3e3\"/>\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#b3141d\" stroke-width=\"2.5\"/></pattern></defs>"
    )
}

fn series_title(s: &Series) -> String {
    match s.kind {
        SeriesKind::Snapshot => "snapshots".to_owned(),
        SeriesKind::Export => format!("export {}", s.name),
    }
}

fn expectation(s: &Series) -> String {
    match (&s.schedule, s.per_day) {
        (Some(cron), _) => format!(
            "as scheduled by the plan: `{cron}` UTC (alarm after {} h)",
            num(s.threshold_hours)
        ),
        (None, Some(n)) => format!("{n} a day (threshold {} h)", num(s.threshold_hours)),
        (None, None) => format!("one at least every {} h", num(s.threshold_hours)),
    }
}

fn database(p: &mut Page, db: &DbReport, days: &[NaiveDate]) {
    let kind = match db.kind {
        super::report::SubjectKind::RdsInstance => "RDS instance",
        super::report::SubjectKind::AuroraCluster => "Aurora cluster",
    };
    let (mark, class) = if db.verdict.meets_policy {
        ("✓", "verdict ok")
    } else {
        ("✕", "verdict bad")
    };
    p.push(&format!(
        "<section class=\"db\"><h2>{} <span class=\"kind\">{kind}</span></h2>\n<p class=\"{class}\">{mark} {} {}</p>\n",
        esc(&db.db),
        esc(&db.db),
        esc(&db.verdict.line)
    ));
    policy(p, db);
    per_day(p, db, days);
    ages(p, db, days);
    restore_tests(p, &db.restore_tests);
    verified_rpo(p, db);
    exports(p, db, days);
    findings(p, &db.findings);
    p.push("</section>\n");
}

/// A threshold the plan does not state: nothing is expected of it.
const NOT_IN_PLAN: &str = "not in its plan: nothing expected";

fn policy(p: &mut Page, db: &DbReport) {
    let pol = &db.policy;
    p.push("<h3>Written policy</h3><table class=\"policy\"><tbody>\n");
    let mut row = |k: &str, v: String| p.push(&format!("<tr><th>{}</th><td>{}</td></tr>\n", esc(k), esc(&v)));
    if let Some(plan) = &pol.plan {
        row("plan", format!("`{plan}` of the plan document"));
    }
    for s in &db.series {
        let kept = s
            .kept_from
            .map_or("nothing kept".to_owned(), |d| format!("kept from {d}"));
        row(&series_title(s), format!("{} · {kept}", expectation(s)));
    }
    row(
        "snapshot retention",
        pol.snapshot_retention
            .clone()
            .unwrap_or_else(|| "no Lifeboat snapshot to read it from".to_owned()),
    );
    row(
        "restore test",
        pol.restore_test_max_age_days
            .map_or(NOT_IN_PLAN.to_owned(), |d| format!("at least every {} days", num(d))),
    );
    let lag = pol.pitr_lag_max_minutes.map(|m| format!("lag at most {} min", num(m)));
    let kept = pol
        .min_retention_days
        .map(|d| format!("automated backups kept ≥ {} days", num(d)));
    let pitr: Vec<String> = lag.into_iter().chain(kept).collect();
    row(
        "point-in-time recovery",
        if pitr.is_empty() {
            NOT_IN_PLAN.to_owned()
        } else {
            pitr.join("; ")
        },
    );
    p.push("</tbody></table>\n");
}

/// Column headers for day tables: month-day, written vertically.
fn day_headers(days: &[NaiveDate]) -> String {
    days.iter()
        .map(|d| format!("<th class=\"d\">{}</th>", d.format("%m-%d")))
        .collect()
}

fn cell(d: &Day) -> String {
    match d.status {
        DayStatus::Gap => format!("<td class=\"gap\" title=\"missed {}\">✕{}</td>", d.missed, d.count),
        DayStatus::NotKept => "<td class=\"nk\">·</td>".to_owned(),
        DayStatus::NotYet => "<td class=\"ny\"></td>".to_owned(),
        DayStatus::Met => format!("<td>{}</td>", d.count),
    }
}

/// Days per table: a quarter's 92 columns would not fit a page, so longer periods get one table per 31 days.
const DAYS_PER_TABLE: usize = 31;

fn day_table(p: &mut Page, caption: &str, days: &[NaiveDate], rows: &[(String, Vec<String>)]) {
    for (n, chunk) in days.chunks(DAYS_PER_TABLE).enumerate() {
        let from = n * DAYS_PER_TABLE;
        let caption = if n == 0 { esc(caption) } else { "(continued)".to_owned() };
        p.push(&format!(
            "<table class=\"days\"><caption>{caption}</caption><thead><tr><th></th>{}</tr></thead><tbody>\n",
            day_headers(chunk)
        ));
        for (label, cells) in rows {
            let part = cells.get(from..from + chunk.len()).unwrap_or_default();
            p.push(&format!("<tr><th>{}</th>{}</tr>\n", esc(label), part.concat()));
        }
        p.push("</tbody></table>\n");
    }
}

const W: f64 = 960.0;
const LEFT: f64 = 120.0;

/// Labels under the columns, about fifteen of them; none so near the right edge that it would be cut off.
fn x_labels(names: &[String], step: f64, y: f64) -> String {
    let every = names.len().div_ceil(15).max(1);
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, n)| (LEFT + step * (i as f64 + 0.5), n))
        .filter(|(x, _)| *x < W - 16.0)
        .map(|(x, n)| {
            format!(
                "<text x=\"{x:.1}\" y=\"{y}\" class=\"tick\" text-anchor=\"middle\">{}</text>",
                esc(n)
            )
        })
        .collect()
}

fn day_names(days: &[NaiveDate]) -> Vec<String> {
    days.iter().map(|d| d.format("%m-%d").to_string()).collect()
}

fn grid_cell(d: &Day, x: f64, y: f64, w: f64, id: usize) -> String {
    let (class, fill, text) = match d.status {
        DayStatus::Gap => ("gap", format!(" fill=\"url(#hatch{id})\""), "✕".to_owned()),
        DayStatus::NotKept => ("notkept", String::new(), "·".to_owned()),
        DayStatus::NotYet => ("notyet", String::new(), String::new()),
        DayStatus::Met if d.count == 0 => ("zero", String::new(), "0".to_owned()),
        DayStatus::Met => ("met", String::new(), d.count.to_string()),
    };
    // A quarter's cells are too narrow for figures: the table beneath has them; a gap keeps its mark.
    let text = if w < 16.0 && d.status != DayStatus::Gap {
        String::new()
    } else {
        text
    };
    format!(
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"20\" class=\"{class}\"{fill}/>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"c {class}\" text-anchor=\"middle\">{text}</text>",
        w - 2.0,
        x + (w - 2.0) / 2.0,
        y + 14.5
    )
}

fn per_day(p: &mut Page, db: &DbReport, days: &[NaiveDate]) {
    let id = p.id();
    let step = (W - LEFT) / days.len().max(1) as f64;
    let h = 26.0 * db.series.len() as f64 + 22.0;
    p.push(&format!("<h3>Backups per day</h3>\n<svg class=\"chart\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"backups per day of {}\">{}", esc(&db.db), hatch(id)));
    for (row, s) in db.series.iter().enumerate() {
        let y = 26.0 * row as f64;
        p.push(&format!(
            "<text x=\"0\" y=\"{:.1}\" class=\"row\">{}</text>",
            y + 14.5,
            esc(&series_title(s))
        ));
        for (i, d) in s.days.iter().enumerate() {
            p.push(&grid_cell(d, LEFT + step * i as f64, y, step, id));
        }
    }
    p.push(&x_labels(&day_names(days), step, h - 6.0));
    p.push("</svg>\n");
    let rows: Vec<(String, Vec<String>)> = db
        .series
        .iter()
        .map(|s| (series_title(s), s.days.iter().map(cell).collect()))
        .collect();
    day_table(
        p,
        "Backups made each day (✕ a gap: fewer than the policy expects; · not kept; blank: not over yet)",
        days,
        &rows,
    );
}

/// A bar chart: one bar per value, bars over the threshold (or flagged) hatched and marked ✕.
struct Bars<'a> {
    label: &'a str,
    unit: &'a str,
    names: Vec<String>,
    values: Vec<Option<f64>>,
    flagged: Vec<bool>,
    threshold: Option<f64>,
}

/// A label of the value scale, right-aligned in the left margin at height `y`.
fn y_label(y: f64, text: &str) -> String {
    format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tick\" text-anchor=\"end\">{}</text>",
        LEFT - 6.0,
        y + 3.5,
        esc(text)
    )
}

fn bars(p: &mut Page, b: &Bars<'_>) {
    let id = p.id();
    let (h, top, bottom) = (118.0, 22.0, 22.0);
    let plot = h - top - bottom;
    let max = b
        .values
        .iter()
        .flatten()
        .copied()
        .chain(b.threshold)
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.15;
    let y = |v: f64| top + plot - plot * v / max;
    // A few bars (restore tests) stay bar-shaped rather than filling the width.
    let step = ((W - LEFT) / b.values.len().max(1) as f64).min(48.0);
    p.push(&format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{}\">{}",
        esc(b.label),
        hatch(id)
    ));
    p.push(&format!(
        "<text x=\"0\" y=\"12\" class=\"row\">{}</text>{}<line x1=\"{LEFT}\" x2=\"{W}\" y1=\"{:.1}\" y2=\"{:.1}\" class=\"axis\"/>",
        esc(b.label),
        y_label(y(0.0), "0"),
        y(0.0),
        y(0.0)
    ));
    // The top of the scale, unless the threshold's label (drawn below) already says about as much.
    let top_value = max / 1.15;
    if b.threshold.is_none_or(|t| (y(t) - y(top_value)).abs() > 12.0) {
        p.push(&y_label(y(top_value), &format!("{} {}", num(top_value), b.unit)));
    }
    for (i, v) in b.values.iter().enumerate() {
        let x = LEFT + step * i as f64 + step * 0.15;
        let Some(v) = v else { continue };
        let flagged = b.flagged.get(i).copied().unwrap_or(false);
        let (class, fill) = if flagged {
            ("gap", format!(" fill=\"url(#hatch{id})\""))
        } else {
            ("met", String::new())
        };
        p.push(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"{class}\"{fill}/>",
            y(*v),
            step * 0.7,
            (top + plot - y(*v)).max(0.5)
        ));
        if flagged {
            p.push(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"c gap\" text-anchor=\"middle\">✕</text>",
                x + step * 0.35,
                y(*v) - 3.0
            ));
        }
    }
    if let Some(t) = b.threshold {
        p.push(&format!(
            "<line x1=\"{LEFT}\" x2=\"{W}\" y1=\"{:.1}\" y2=\"{:.1}\" class=\"threshold\"/>{}",
            y(t),
            y(t),
            y_label(y(t), &format!("threshold {} {}", num(t), b.unit))
        ));
    }
    p.push(&x_labels(&b.names, step, h - 6.0));
    p.push("</svg>\n");
}

fn ages(p: &mut Page, db: &DbReport, days: &[NaiveDate]) {
    p.push("<h3>Backup age: the oldest the newest backup got each day, against its threshold</h3>\n");
    let names = day_names(days);
    let mut rows = Vec::new();
    for s in &db.series {
        let values: Vec<Option<f64>> = s.days.iter().map(|d| d.worst_age_hours).collect();
        let flagged = values
            .iter()
            .map(|v| v.is_some_and(|v| v > s.threshold_hours))
            .collect::<Vec<_>>();
        let label = format!("{} (hours)", series_title(s));
        bars(
            p,
            &Bars {
                label: &label,
                unit: "h",
                names: names.clone(),
                values: values.clone(),
                flagged: flagged.clone(),
                threshold: Some(s.threshold_hours),
            },
        );
        let cells = values
            .iter()
            .zip(&flagged)
            .map(|(v, f)| match (v, f) {
                (Some(v), true) => format!("<td class=\"gap\">✕{}</td>", num(*v)),
                (Some(v), false) => format!("<td>{}</td>", num(*v)),
                (None, _) => "<td class=\"nk\">–</td>".to_owned(),
            })
            .collect();
        rows.push((format!("{} ≤ {} h", series_title(s), num(s.threshold_hours)), cells));
    }
    day_table(
        p,
        "Oldest age of the newest backup each day, in hours (✕ over the threshold; – none known yet)",
        days,
        &rows,
    );
}

fn restore_tests(p: &mut Page, tests: &[RestoreTestFact]) {
    p.push("<h3>Restore tests: result, RTO and RPO</h3>\n");
    if tests.is_empty() {
        p.push("<p class=\"none\">No restore test in the period or before it.</p>\n");
        return;
    }
    let names = tests.iter().map(|t| t.at.format("%m-%d").to_string()).collect();
    let values = tests
        .iter()
        .map(|t| Some(t.rto_seconds.unwrap_or(0.0) / 60.0))
        .collect();
    let flagged = tests.iter().map(|t| !t.passed).collect();
    bars(
        p,
        &Bars {
            label: "RTO (minutes)",
            unit: "min",
            names,
            values,
            flagged,
            threshold: None,
        },
    );
    p.push("<table class=\"list\"><caption>Restore tests (✕ failed; RTO: request to verified database; RPO: age of the data restored)</caption>\
            <thead><tr><th>requested</th><th>result</th><th>RTO (min)</th><th>RPO (h)</th><th>why it failed</th></tr></thead><tbody>\n");
    for t in tests {
        let result = if t.passed {
            "<td>✓ passed</td>"
        } else {
            "<td class=\"gap\">✕ FAILED</td>"
        };
        p.push(&format!(
            "<tr><td>{}</td>{result}<td>{}</td><td>{}</td><td>{}</td></tr>\n",
            t.at.format("%Y-%m-%d %H:%M"),
            t.rto_seconds.map_or("–".to_owned(), |s| num(s / 60.0)),
            t.rpo_seconds.map_or("–".to_owned(), |s| num(s / 3600.0)),
            esc(t.error.as_deref().unwrap_or(""))
        ));
    }
    p.push("</tbody></table>\n");
}

/// The verified RPO beside the age of the newest backup taken: how old a backup the team has seen restore is.
fn verified_rpo(p: &mut Page, db: &DbReport) {
    let hours = |h: Option<f64>| h.map_or("–".to_owned(), |h| format!("{} h", num(h)));
    let verified = match db.verified_rpo_hours {
        Some(_) => hours(db.verified_rpo_hours),
        None => "none: no restore test passed".to_owned(),
    };
    p.push(&format!(
        "<p class=\"verified-rpo\">Verified RPO (age of the newest backup a restore test proved): <strong>{}</strong>; \
         newest backup taken: {}</p>\n",
        esc(&verified),
        esc(&hours(db.newest_backup_age_hours))
    ));
}

/// Per day: the largest stored size (MiB) and the longest duration (s) of a profile's exports.
fn export_days(exports: &[&ExportFact], days: &[NaiveDate]) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let on = |d: NaiveDate| exports.iter().filter(move |e| e.at.date_naive() == d);
    let size = days
        .iter()
        .map(|d| on(*d).filter_map(|e| e.stored_bytes).map(mib).reduce(f64::max))
        .collect();
    let dur = days
        .iter()
        .map(|d| on(*d).filter_map(|e| e.duration_seconds).reduce(f64::max))
        .collect();
    (size, dur)
}

fn exports(p: &mut Page, db: &DbReport, days: &[NaiveDate]) {
    p.push("<h3>Exports: size and duration</h3>\n");
    let names = day_names(days);
    let mut rows = Vec::new();
    for s in db.series.iter().filter(|s| s.kind == SeriesKind::Export) {
        let mine: Vec<&ExportFact> = db.exports.iter().filter(|e| e.profile == s.name).collect();
        let (size, dur) = export_days(&mine, days);
        let none = vec![false; days.len()];
        bars(
            p,
            &Bars {
                label: &format!("export {} size (MiB)", s.name),
                unit: "MiB",
                names: names.clone(),
                values: size.clone(),
                flagged: none.clone(),
                threshold: None,
            },
        );
        bars(
            p,
            &Bars {
                label: &format!("export {} duration (s)", s.name),
                unit: "s",
                names: names.clone(),
                values: dur.clone(),
                flagged: none,
                threshold: None,
            },
        );
        let fmt = |v: &Option<f64>| {
            v.map_or("<td class=\"nk\">–</td>".to_owned(), |v| {
                format!("<td>{}</td>", num(v))
            })
        };
        rows.push((format!("{} MiB", s.name), size.iter().map(fmt).collect()));
        rows.push((format!("{} s", s.name), dur.iter().map(fmt).collect()));
    }
    if rows.is_empty() {
        p.push("<p class=\"none\">The policy has no export profile.</p>\n");
        return;
    }
    day_table(
        p,
        "Largest stored size (MiB) and longest duration (s) of each day's exports (– none that day)",
        days,
        &rows,
    );
}

fn findings(p: &mut Page, list: &[String]) {
    p.push("<h3>Open findings</h3>\n");
    if list.is_empty() {
        p.push("<p class=\"ok\">✓ None: encrypted, retention and point-in-time recovery within the policy, deletion protection on.</p>\n");
        return;
    }
    p.push("<ul class=\"findings\">\n");
    for f in list {
        p.push(&format!("<li>✕ {}</li>\n", esc(f)));
    }
    p.push("</ul>\n");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::evidence::period::Period;
    use crate::evidence::report::fixtures::{fleet, now, policy};
    use crate::evidence::rules::build;

    fn page() -> String {
        render(&build(&fleet(), &policy(), &Period::parse(None, now()).unwrap(), now()))
    }

    #[test]
    fn a_quarter_gets_one_day_table_per_month_or_so() {
        let q = Period::parse(Some("2026-Q3"), now()).unwrap();
        let html = render(&build(&fleet(), &policy(), &q, now()));
        // 92 days: tables of 31, 31 and 30 days, for each of the three day tables of each of three databases.
        assert_eq!(html.matches("<table class=\"days\">").count(), 3 * 3 * 3);
        assert_eq!(html.matches("<caption>(continued)</caption>").count(), 3 * 3 * 2);
    }

    #[test]
    fn each_database_shows_its_verified_rpo_beside_its_newest_backup() {
        let html = page();
        assert_eq!(
            html.matches(
                "<p class=\"verified-rpo\">Verified RPO (age of the newest backup a restore test proved): <strong>"
            )
            .count(),
            3,
            "{html}"
        );
        assert!(html.contains("; newest backup taken: "));
    }

    #[test]
    fn text_from_outside_is_escaped() {
        assert_eq!(
            esc("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        let html = page();
        assert!(
            !html.contains("<script"),
            "a database named <script> must not become a script"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn the_page_fetches_nothing_and_says_so() {
        let html = page();
        assert!(html.contains(&format!(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
        )));
        for outside in [
            "http://", "https://", "src=", "href=", "@import", "url(http", "<link", "<img",
        ] {
            let at = html.find(outside);
            // The SVG namespace is the one absolute URL, and it is a name, never fetched.
            assert!(at.is_none(), "{outside} at {at:?}");
        }
    }

    #[test]
    fn gaps_are_marked_in_words_as_well_as_colour_and_tables_carry_the_numbers() {
        let html = page();
        assert!(html.contains("✕ app-prod does not: 1 missed snapshot on 2026-11-03"));
        assert!(
            html.contains("<td class=\"gap\" title=\"missed 3\">✕1</td>"),
            "the critical gap of 2026-11-25"
        );
        assert!(
            html.contains("<td class=\"gap\">✕46.0</td>"),
            "the snapshot age over its threshold"
        );
        assert!(html.contains("<td class=\"gap\">✕ FAILED</td>"));
        assert!(html.contains("class=\"threshold\""));
        assert!(html.contains("✓ &lt;script&gt;alert(1)&lt;/script&gt; meets its policy"));
    }
}
