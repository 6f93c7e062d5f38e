//! Evidence for an auditor: one report per fleet and period that puts each database's written policy next to
//! what happened (snapshots and exports per day, the gaps, backup ages against their thresholds, restore tests
//! with RTO and RPO, export sizes and durations, open findings) and ends in a verdict line per database, with a
//! fleet summary on top.
//!
//! Owns: the rules that turn gathered facts into that report ([`rules`]: expected backups per day, gaps,
//! worst age per day, verdicts, the fleet summary), in plan mode what each day expected under the plan versions in
//! force ([`planned`]), the period ([`period`]), and its two renderings: a single
//! self-contained HTML page ([`html`]: inline CSS and hand-written SVG, no script, nothing fetched) and JSON
//! (the [`report::Report`] itself, serialised). [`gather`] is the one adapter: it reads the facts from S3 and the RDS
//! API, for `monitor` and the `lifeboat` tool alike.
//!
//! Never: decides a threshold of its own (they are monitor's [`crate::monitoring::monitor::Policy`], or in plan mode
//! each database's plan, the same numbers the alarms use), writes anywhere (the caller puts the report under [`crate::bucket::layout::evidence_keys`]), or keeps
//! state between runs: every report is rebuilt from what S3 and RDS hold, so a report can only show history
//! that is still kept. Days before the oldest kept backup of a series are "not kept", never "missed".
//!
//! May use: `monitoring` (its policy and alarm rules), `plans` (the document's versions), `watch` (the content
//! anomalies of the period, what they held and who acknowledged them: [`report::AnomalyEvidence`]), `rds`, `bucket`, `core`; it is the top domain, and nothing
//! in `shared` imports it. Within it, [`report`] (the shape) and [`period`] are at the bottom, [`rules`] builds,
//! [`html`] renders and [`gather`] reads.

pub mod gather;
pub mod html;
pub mod period;
pub mod planned;
pub mod report;
pub mod rules;
