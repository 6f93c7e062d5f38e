//! `lifeboat plan` as a user runs it: the real binary against moto, a versioned bucket holding the plan
//! document, and databases tagged with their plans. Checks that `check` names what is wrong, `show` says who
//! follows which plan, `diff` lists exactly the snapshots a shorter retention would expire and writes nothing, and
//! `apply` refuses what it must (expiry without `--accept-expiry`, a resource in two plans, an unversioned bucket)
//! and otherwise adds exactly one version.

use std::process::{Command, Output};

use aws_sdk_rds::types::Tag;
use chrono::{Duration, Timelike, Utc};
use lifeboat_tests::fleet::{self, FleetDb};
use lifeboat_tests::moto::Moto;

const REGION: &str = "us-east-1";
const CONFIG: &str = "acme-config";
const KEY: &str = "lifeboat/plans.json";

const FLEET: &[FleetDb] = &[
    FleetDb {
        id: "app-prod",
        cluster: false,
        tags: &[("lifeboat:plan", "production")],
    },
    FleetDb {
        id: "app-staging",
        cluster: false,
        tags: &[("lifeboat:plan", "staging")],
    },
    FleetDb {
        id: "app-dev",
        cluster: false,
        tags: &[("lifeboat:plan", "dev")],
    },
    FleetDb {
        id: "scratch",
        cluster: false,
        tags: &[],
    },
];

struct World {
    moto: Moto,
    s3: aws_sdk_s3::Client,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let moto = Moto::start();
        let config = moto.config(REGION);
        let s3 = aws_sdk_s3::Client::new(&config);
        let rds = aws_sdk_rds::Client::new(&config);
        fleet::create(&rds, FLEET).await;
        lifeboat_tests::plans::versioned_bucket(&s3, CONFIG).await;
        s3.create_bucket().bucket("unversioned-config").send().await.unwrap();
        // Forty daily scheduled snapshots of app-prod, the newest an hour ago.
        let newest = Utc::now() - Duration::hours(1);
        let newest = newest.date_naive().and_hms_opt(newest.hour(), 0, 0).unwrap().and_utc();
        for d in 0..40 {
            let at = newest - Duration::days(d);
            let id = format!("lifeboat-app-prod-{}", at.format("%Y%m%dt%H%M%Sz"));
            let tag = |k: &str, v: String| Tag::builder().key(k).value(v).build();
            rds.create_db_snapshot()
                .db_instance_identifier("app-prod")
                .db_snapshot_identifier(&id)
                .tags(tag("lifeboat:managed", "true".into()))
                .tags(tag("lifeboat:source", "schedule".into()))
                .tags(tag("lifeboat:created-at", at.to_rfc3339()))
                .tags(tag("lifeboat:database", "app-prod".into()))
                .send()
                .await
                .unwrap();
        }
        Self {
            moto,
            s3,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = crate::cli::command(&self.moto.endpoint, self.dir.path(), args);
        cmd.env("LIFEBOAT_PLAN_DOCUMENT", format!("s3://{CONFIG}/{KEY}"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// A document written beside the test: the three-environments example with `edit` applied to its text.
    fn document(&self, name: &str, edit: impl Fn(String) -> String) -> String {
        let text = String::from_utf8(lifeboat_tests::plans::example("three-environments")).unwrap();
        let path = self.dir.path().join(name);
        std::fs::write(&path, edit(text)).unwrap();
        path.display().to_string()
    }

    async fn versions(&self) -> usize {
        let out = self
            .s3
            .list_object_versions()
            .bucket(CONFIG)
            .prefix(KEY)
            .send()
            .await
            .unwrap();
        out.versions().len()
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", texts(out)))
}

#[tokio::test]
async fn check_validates_offline_and_names_the_field_and_line() {
    let w = World::new().await;
    let good = w.document("good.json", |t| t);
    let out = w.run(&["plan", "check", &good]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(code(&out), 0, "{stderr}");
    assert!(stdout.contains("valid, 3 plan(s)"), "{stdout}");
    assert!(stdout.contains("snapshots              0 2 * * *"), "{stdout}");
    assert!(stdout.contains("alarm after 26 h 24 min"), "{stdout}");
    assert!(stdout.contains("not backed up: recreated at will"), "{stdout}");

    let bad = w.document("bad.json", |t| t.replacen("\"0 2 * * *\"", "\"0 2 * * * *\"", 1));
    let out = w.run(&["plan", "check", &bad, "--json"]);
    assert_eq!(code(&out), 4);
    let e = &json(&out)["error"];
    assert_eq!(e["kind"], "refused");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("plans.production.snapshots.schedule: expected five fields") && message.contains("(line 6,"),
        "{message}"
    );
    let out = w.run(&["plan", "check", "/nonexistent/plans.json"]);
    assert_eq!(code(&out), 3, "{:?}", texts(&out));
}

#[tokio::test]
async fn apply_show_diff_and_the_refusals_a_careful_change_needs() {
    let w = World::new().await;
    let first = w.document("first.json", |t| t);

    // Nothing in force yet. Joining the plan puts app-prod's snapshots under a 30-day retention for the first
    // time: the ten older ones would go, so the first apply is refused until that is accepted.
    let out = w.run(&["plan", "apply", &first]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(code(&out), 4, "{stdout}{stderr}");
    assert!(stderr.contains("would expire 10 snapshot(s)"), "{stderr}");
    assert_eq!(w.versions().await, 0);
    let out = w.run(&["plan", "apply", &first, "--accept-expiry"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(code(&out), 0, "{stdout}{stderr}");
    assert!(stdout.contains("nothing in force yet"), "{stdout}");
    assert!(stdout.contains("app-prod: plan (none) -> production"), "{stdout}");
    assert!(
        stdout.contains("in no plan under the new document: database scratch"),
        "{stdout}"
    );
    assert_eq!(w.versions().await, 1);

    // Who follows which plan, and one database's rules.
    let out = w.run(&["plan", "show", "--json"]);
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    let doc = json(&out);
    let plan_of = |id: &str| {
        doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["plan"].clone())
            .unwrap()
    };
    assert_eq!(plan_of("app-prod"), "production");
    assert_eq!(plan_of("app-dev"), "dev");
    assert_eq!(plan_of("scratch"), serde_json::Value::Null);
    let out = w.run(&["plan", "show", "app-prod"]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(code(&out), 0, "{stderr}");
    assert!(stdout.contains("database app-prod: plan production"), "{stdout}");
    let snapshots_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("snapshots"))
        .unwrap();
    assert!(snapshots_line.contains("lifeboat-app-prod-"), "{snapshots_line}");
    assert!(!snapshots_line.contains("LATE"), "{snapshots_line}");
    let out = w.run(&["plan", "show", "no-such-db"]);
    assert_eq!(code(&out), 3);

    // Production keeps 20 days instead of 30: the dry-run lists the ten snapshots that would go, writes nothing.
    let shorter = w.document("shorter.json", |t| t.replacen("{\"daily\": 30}", "{\"daily\": 20}", 1));
    let log_before = w.moto.log_text().len();
    let out = w.run(&["plan", "diff", &shorter, "--json"]);
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    let diff = json(&out);
    assert_eq!(diff["changes"][0]["path"], "plans.production.snapshots.retention.daily");
    assert_eq!(diff["changes"].as_array().unwrap().len(), 1);
    let expiring: Vec<&str> = diff["would_expire"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(expiring.len(), 10, "{expiring:?}");
    // The twenty newest are kept, the ten before them go, the ten before those were already beyond 30 days.
    let mut all: Vec<String> = (0..40)
        .map(|d| {
            let t = Utc::now() - Duration::hours(1) - Duration::days(d);
            format!("lifeboat-app-prod-{}", t.format("%Y%m%dt%H0000z"))
        })
        .collect();
    all.sort();
    all.reverse();
    let mut expected: Vec<&str> = all[20..30].iter().map(String::as_str).collect();
    let mut got = expiring.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let writes: Vec<String> = w.moto.log_text()[log_before..]
        .lines()
        .filter(|l| l.contains("\"PUT ") || l.contains("\"DELETE "))
        .map(str::to_owned)
        .collect();
    assert!(writes.is_empty(), "a dry-run wrote: {writes:?}");

    // Applying it without saying the expiry is meant is refused, and adds nothing.
    let out = w.run(&["plan", "apply", &shorter]);
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 4, "{stderr}");
    assert!(
        stderr.contains("would expire 10 snapshot(s)") && stderr.contains("--accept-expiry"),
        "{stderr}"
    );
    assert_eq!(w.versions().await, 1);

    // A database tagged staging and listed in production follows no single plan: refused with both names.
    let conflict = w.document("conflict.json", |t| {
        t.replacen(
            "\"production\": {",
            "\"production\": {\"databases\": [\"app-staging\"],",
            1,
        )
    });
    let out = w.run(&["plan", "apply", &conflict, "--accept-expiry"]);
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 4, "{stderr}");
    assert!(
        stderr.contains(
            "database `app-staging` is in two plans: tagged `lifeboat:plan=staging` and listed in plan `production`"
        ),
        "{stderr}"
    );
    assert_eq!(w.versions().await, 1);

    // Accepted: one more version, and it is the one in force.
    let out = w.run(&["plan", "apply", &shorter, "--accept-expiry", "--json"]);
    assert_eq!(code(&out), 0, "{:?}", texts(&out));
    assert_eq!(json(&out)["applied"], true);
    assert_eq!(w.versions().await, 2);
    let out = w.run(&["plan", "diff", &shorter, "--json"]);
    let diff = json(&out);
    assert_eq!(diff["changes"].as_array().unwrap().len(), 0, "{diff}");
    assert_eq!(diff["in_force"], diff["new"]);

    // A bucket without versioning cannot keep the previous version working. The first document there is written
    // with a warning (nothing is replaced); replacing it is refused, and the first stays as it was.
    let elsewhere = ["--document", "s3://unversioned-config/plans.json", "--accept-expiry"];
    let out = w.run(&[&["plan", "apply", first.as_str()][..], &elsewhere[..]].concat());
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 0, "{stderr}");
    assert!(
        stderr.contains("warning: bucket unversioned-config does not have versioning enabled"),
        "{stderr}"
    );
    let out = w.run(&[&["plan", "apply", shorter.as_str()][..], &elsewhere[..]].concat());
    let (_, stderr) = texts(&out);
    assert_eq!(code(&out), 4, "{stderr}");
    assert!(
        stderr.contains("not applied: bucket unversioned-config does not have versioning enabled"),
        "{stderr}"
    );
    let body =
        w.s3.get_object()
            .bucket("unversioned-config")
            .key("plans.json")
            .send()
            .await
            .unwrap();
    let body = body.body.collect().await.unwrap().into_bytes();
    assert!(String::from_utf8_lossy(&body).contains("{\"daily\": 30}"));
}
