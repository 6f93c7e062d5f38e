//! The masked staging refresh (`lifeboat::refresh`) against moto's S3 and a real PostgreSQL: the export function
//! exports the local `app` (users with emails, names and phones; sessions whose `user_email` references
//! `users.email`; messages of free text), and the refresh restores it into a new database on the same server,
//! which stands in for the staging server (its maintenance database is `postgres`).
//!
//! Tests of the orchestration (swap, cleanup, reports) run with an empty masking, which the masking passes through
//! unchanged; the tests after them mask.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lifeboat::mask::rewrite::MaskKey;
use lifeboat::mask::rules::{MaskRuleError, RefreshRule};
use lifeboat::postgres::archive::{Counters, Which};
use lifeboat::postgres::db::{SslMode, Target, TlsSettings};
use lifeboat::refresh::{self, RefreshError, Refreshed};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-backups";
const PLAN_BUCKET: &str = "lifeboat-plans";
const PLAN_KEY: &str = "lifeboat/plans.json";
const SOURCE: &str = "app-prod";
const PLAN: &str = r#"{"format": 1, "plans": {"app": {"databases": ["app-prod"],
  "exports": {"full": {"schedule": "0 2 * * *", "keep_days": 30}}}}}"#;

/// 200 users, 300 sessions (each user's email in `user_email`), 100 messages.
const SCHEMA: &str = "
create table users (id int primary key, email text unique not null, name text, phone text);
create table sessions (token text primary key, user_email text not null references users (email));
create table messages (id int primary key, body text);
insert into users select i, 'user' || i || '@example.com', 'Person Number' || i, '+1555' || lpad(i::text, 7, '0')
  from generate_series(1, 200) i;
insert into sessions select md5('token' || i), 'user' || (i % 200 + 1) || '@example.com' from generate_series(1, 300) i;
insert into messages select i, 'Hello from user' || i || ', call me on +1555' || lpad(i::text, 7, '0')
  from generate_series(1, 100) i;
";

struct World {
    _moto: Moto,
    pg: Postgres,
    s3: aws_sdk_s3::Client,
    export: export::Deps,
    clock: Arc<std::sync::atomic::AtomicI64>,
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The local `app` with [`SCHEMA`] and then `plant`, and one `full` export of it taken at 02:00.
async fn world(plant: &str) -> World {
    let moto = Moto::start();
    let pg = Postgres::start();
    pg.psql("postgres", "create database app").unwrap();
    pg.psql("app", SCHEMA).unwrap();
    if !plant.is_empty() {
        pg.psql("app", plant).unwrap();
    }
    let config = moto.config(REGION);
    let s3 = aws_sdk_s3::Client::new(&config);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    lifeboat_tests::plans::versioned_bucket(&s3, PLAN_BUCKET).await;
    lifeboat_tests::plans::put_json(
        &s3,
        PLAN_BUCKET,
        PLAN_KEY,
        &serde_json::from_str::<Value>(PLAN).unwrap(),
    )
    .await;
    lifeboat_tests::plans::database_on(&config, &pg, SOURCE, "app", &[]).await;
    let document = format!("s3://{PLAN_BUCKET}/{PLAN_KEY}");
    let (export, clock) = lifeboat_tests::plans::export_deps(&config, BUCKET, &document);
    let w = World {
        _moto: moto,
        pg,
        s3,
        export,
        clock,
    };
    w.export_at(at("2026-12-07T02:00:00Z")).await;
    w
}

/// A staging refresh of `app-prod`'s `full` exports into `staging`, masked by `masking`.
fn rule(swap: bool, masking: Value) -> RefreshRule {
    serde_json::from_value(json!({
        "name": "staging", "from": SOURCE, "export": "full",
        "into": {"instance": "staging-db", "database": "staging"}, "swap": swap, "masking": masking
    }))
    .unwrap()
}

impl World {
    async fn export_at(&self, t: DateTime<Utc>) {
        self.clock.store(t.timestamp(), std::sync::atomic::Ordering::SeqCst);
        let summary = export::handle(&self.export, json!({"database": SOURCE, "profile": "full"}), None)
            .await
            .unwrap();
        assert_eq!(summary.failed, 0, "{summary:?}");
    }

    /// The staging server as the refresh's caller hands it over: the administrator on the maintenance database.
    fn server(&self) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: self.pg.port,
            dbname: "postgres".into(),
            user: SUPERUSER.into(),
            password: self.pg.password.clone(),
            tls: TlsSettings {
                mode: SslMode::Disable,
                ca_bundle: None,
            },
        }
    }

    /// Runs the refresh at `now` and writes its report, as every entry point does; answers both.
    async fn refresh_with(
        &self,
        rule: &RefreshRule,
        now: DateTime<Utc>,
        pg_restore: &str,
        interrupt: Option<&tokio::sync::watch::Receiver<bool>>,
        stop_at: Option<std::time::Instant>,
    ) -> (Result<Refreshed, RefreshError>, Value) {
        let server = self.server();
        let counters = Arc::new(Counters::default());
        let result = refresh::refresh(refresh::Request {
            s3: &self.s3,
            bucket: BUCKET,
            rule,
            which: &Which::Latest,
            identities: &[],
            key: &MaskKey(b"the stack's masking key".to_vec()),
            pg_restore,
            server: &server,
            counters: &counters,
            interrupt,
            stop_at,
            now,
        })
        .await;
        let key = refresh::write_report(&self.s3, BUCKET, rule, now, None, &result)
            .await
            .unwrap();
        let report = self.json(&key).await;
        let markdown = self.text(&key.replace(".json", ".md")).await;
        assert!(markdown.starts_with("# Staging refresh `staging`"), "{markdown}");
        (result, report)
    }

    async fn refresh(&self, rule: &RefreshRule, now: DateTime<Utc>) -> (Result<Refreshed, RefreshError>, Value) {
        let pg_restore = postgres::bin_dir().join("pg_restore").display().to_string();
        self.refresh_with(rule, now, &pg_restore, None, None).await
    }

    async fn text(&self, key: &str) -> String {
        let object = self.s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        String::from_utf8(object.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
    }

    async fn json(&self, key: &str) -> Value {
        serde_json::from_str(&self.text(key).await).unwrap()
    }

    /// Every database and role whose name starts with `staging`, sorted: what a refresh left on the server.
    fn staging_objects(&self) -> (String, String) {
        let dbs = self
            .pg
            .psql(
                "postgres",
                "select coalesce(string_agg(datname, ',' order by datname), '') from pg_database \
                 where datname like 'staging%'",
            )
            .unwrap();
        let roles = self
            .pg
            .psql(
                "postgres",
                "select coalesce(string_agg(rolname, ',' order by rolname), '') from pg_roles \
                 where rolname like 'staging%'",
            )
            .unwrap();
        (dbs, roles)
    }

    /// Row count and an MD5 over the table's rows in a fixed order.
    fn fingerprint(&self, db: &str, table: &str) -> String {
        self.pg
            .psql(
                db,
                &format!("select count(*) || ':' || md5(string_agg(t::text, '|' order by t::text)) from {table} t"),
            )
            .unwrap()
    }

    fn column(&self, db: &str, sql: &str) -> BTreeSet<String> {
        self.pg.psql(db, sql).unwrap().lines().map(str::to_owned).collect()
    }
}

const NOW: &str = "2026-12-07T04:00:00Z";
const NEW: &str = "staging_20261207040000";

#[tokio::test]
async fn a_refresh_restores_the_newest_export_into_a_new_database_checks_it_and_reports_it() {
    let w = world("").await;
    let (result, report) = w.refresh(&rule(false, json!({})), at(NOW)).await;
    let done = result.unwrap();

    assert_eq!(done.database, NEW, "without swap the new database keeps its own name");
    assert_eq!(done.new_database, NEW);
    assert!(!done.swapped);
    assert_eq!(done.owner_role, format!("{NEW}_owner"));
    assert!(done.export_key.ends_with(".manifest.json"), "{done:?}");
    for table in ["users", "sessions", "messages"] {
        assert_eq!(
            w.fingerprint(NEW, table),
            w.fingerprint("app", table),
            "{table}: as exported"
        );
    }
    let mut counted: Vec<(&str, i64, i64)> = done
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.expected_rows, t.restored_rows))
        .collect();
    counted.sort_unstable();
    assert_eq!(
        counted,
        [("messages", 100, 100), ("sessions", 300, 300), ("users", 200, 200)]
    );
    let checks: Vec<&str> = done.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        checks,
        ["row-counts", "masking", "no-source-values", "constraints", "indexes"]
    );
    assert!(
        done.checks[3].detail.contains("every one validated"),
        "{:?}",
        done.checks
    );

    let mark =
        w.pg.psql(
            "postgres",
            &format!("select shobj_description(oid, 'pg_database') from pg_database where datname = '{NEW}'"),
        )
        .unwrap();
    assert_eq!(
        mark,
        format!("lifeboat refresh rule=staging database={NEW} role={NEW}_owner")
    );
    let login =
        w.pg.psql(
            "postgres",
            &format!("select rolcanlogin from pg_roles where rolname = '{NEW}_owner'"),
        )
        .unwrap();
    assert_eq!(login, "f", "the owner role's login is retired");

    assert_eq!(report["outcome"], "refreshed");
    assert_eq!(report["rule"], "staging");
    assert_eq!(report["database"], NEW);
    assert_eq!(report["export_key"], done.export_key.as_str());
    assert_eq!(report["checks"].as_array().unwrap().len(), 5);
    assert_eq!(report["tables"].as_array().unwrap().len(), 3);
    let listed =
        w.s3.list_objects_v2()
            .bucket(BUCKET)
            .prefix("refresh/staging/")
            .send()
            .await
            .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [
            "refresh/staging/20261207T040000Z.json",
            "refresh/staging/20261207T040000Z.md"
        ]
    );
}

#[tokio::test]
async fn a_swap_replaces_the_previous_refresh_and_drops_it_with_its_role() {
    let w = world("").await;
    let (first, _) = w.refresh(&rule(true, json!({})), at(NOW)).await;
    let first = first.unwrap();
    assert!(first.swapped && first.database == "staging", "{first:?}");
    assert_eq!(first.replaced, None, "nothing to replace the first time");
    assert_eq!(w.staging_objects(), ("staging".into(), format!("{NEW}_owner")));

    // Someone is using the staging database when the next refresh swaps it out.
    let user = tokio_postgres::connect(&w.pg.url("staging"), tokio_postgres::NoTls)
        .await
        .unwrap();
    let session = tokio::spawn(user.1);
    let user = user.0;
    user.batch_execute("create table scratch (x int)").await.unwrap();

    w.pg.psql("app", "insert into messages values (101, 'newer')").unwrap();
    w.export_at(at("2026-12-08T02:00:00Z")).await;
    let (second, report) = w.refresh(&rule(true, json!({})), at("2026-12-08T04:00:00Z")).await;
    let second = second.unwrap();
    assert!(second.swapped, "{second:?}");
    assert_eq!(second.replaced.as_deref(), Some(NEW));
    assert!(second.warnings.is_empty(), "{second:?}");
    assert_eq!(
        w.staging_objects(),
        ("staging".into(), "staging_20261208040000_owner".into()),
        "the old database and its role are gone, nothing left aside"
    );
    assert_eq!(
        w.fingerprint("staging", "messages"),
        w.fingerprint("app", "messages"),
        "the newer export"
    );
    assert!(
        user.simple_query("select 1").await.is_err(),
        "the old database's sessions were ended"
    );
    session.abort();
    assert_eq!(report["swapped"], true);
    assert_eq!(report["replaced"], NEW);
}

#[tokio::test]
async fn a_swap_refuses_a_database_no_refresh_made_and_loses_nothing() {
    let w = world("").await;
    w.pg.psql("postgres", "create database staging").unwrap();
    w.pg.psql(
        "staging",
        "create table precious (x int); insert into precious values (42)",
    )
    .unwrap();

    let (result, report) = w.refresh(&rule(true, json!({})), at(NOW)).await;
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RefreshError::NotOurs { .. }), "{err:?}");
    assert!(
        text.contains("staging was not made by a Lifeboat refresh; drop or rename it yourself, or set swap false"),
        "{text}"
    );
    assert!(text.contains(NEW), "the error says where the refreshed data is: {text}");
    assert_eq!(w.pg.psql("staging", "select x from precious").unwrap(), "42");
    assert_eq!(
        w.fingerprint(NEW, "users"),
        w.fingerprint("app", "users"),
        "the new database is kept"
    );
    assert_eq!(report["failed_check"], "swap");
    assert_eq!(report["new_database_fate"], "kept under its own name");

    // A comment that imitates a refresh's mark does not make it one: the role it names must own the database.
    w.pg.psql("postgres", &format!("drop database {NEW} with (force)"))
        .unwrap();
    w.pg.psql("postgres", &format!("drop role {NEW}_owner")).unwrap();
    w.pg.psql(
        "postgres",
        "comment on database staging is 'lifeboat refresh rule=staging database=staging_1 role=staging_1_owner'",
    )
    .unwrap();
    let (result, _) = w.refresh(&rule(true, json!({})), at("2026-12-07T05:00:00Z")).await;
    assert!(matches!(result, Err(RefreshError::NotOurs { .. })), "{result:?}");
    assert_eq!(w.pg.psql("staging", "select x from precious").unwrap(), "42");
}

#[tokio::test]
async fn an_interrupted_refresh_leaves_no_database_and_no_role() {
    let w = world("").await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    // Ctrl-C as soon as the new database exists: the refresh is mid-run.
    let url = w.pg.url("postgres");
    let watcher = tokio::spawn(async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        loop {
            let row = client
                .query_one("select count(*) from pg_database where datname = $1", &[&NEW])
                .await
                .unwrap();
            if row.get::<_, i64>(0) > 0 {
                tx.send(true).unwrap();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let pg_restore = postgres::bin_dir().join("pg_restore").display().to_string();
    // A pg_restore that waits before it reads, so the interruption lands while the restore runs.
    let slow = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(slow.path(), format!("#!/bin/sh\nsleep 2\nexec {pg_restore} \"$@\"\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(slow.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let slow_path = slow.into_temp_path();
    let (result, report) = w
        .refresh_with(
            &rule(true, json!({})),
            at(NOW),
            slow_path.to_str().unwrap(),
            Some(&rx),
            None,
        )
        .await;
    watcher.await.unwrap();
    let err = result.unwrap_err();
    assert!(err.is_interrupted(), "{err:?}");
    assert_eq!(
        w.staging_objects(),
        (String::new(), String::new()),
        "nothing left behind"
    );
    assert_eq!(report["failed_check"], "interrupted");
    assert_eq!(report["outcome"], "failed");
}

#[tokio::test]
async fn a_refresh_that_reaches_its_stop_time_leaves_no_database_and_no_role() {
    let w = world("").await;
    let pg_restore = postgres::bin_dir().join("pg_restore").display().to_string();
    // The invocation's deadline, less the cleanup's time, is already here when the refresh starts.
    let stop_at = Some(std::time::Instant::now());
    let (result, report) = w
        .refresh_with(&rule(true, json!({})), at(NOW), &pg_restore, None, stop_at)
        .await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            RefreshError::Archive(lifeboat::postgres::archive::ArchiveError::Deadline { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        w.staging_objects(),
        (String::new(), String::new()),
        "nothing left behind"
    );
    assert_eq!(report["failed_check"], "deadline");
}

#[tokio::test]
async fn a_failed_restore_leaves_no_database_and_no_role() {
    let w = world("").await;
    let (result, report) = w
        .refresh_with(&rule(true, json!({})), at(NOW), "/nonexistent/pg_restore", None, None)
        .await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/pg_restore"), "{err}");
    assert_eq!(
        w.staging_objects(),
        (String::new(), String::new()),
        "nothing left behind"
    );
    assert_eq!(report["failed_check"], "pg_restore");
    assert_eq!(report["new_database_fate"], "dropped, or never created");
}

#[tokio::test]
async fn a_constraint_left_not_valid_fails_the_proof_and_leaves_nothing_behind() {
    let w = world("alter table messages add constraint body_short check (length(body) < 1000) not valid").await;
    let (result, report) = w.refresh(&rule(true, json!({})), at(NOW)).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, RefreshError::Proof { check: "constraints", detail, .. } if detail.contains("body_short on public.messages")),
        "{err:?}"
    );
    assert_eq!(
        w.staging_objects(),
        (String::new(), String::new()),
        "nothing left behind"
    );
    assert_eq!(report["failed_check"], "constraints");
    assert!(report["error"].as_str().unwrap().contains("body_short"), "{report}");
}

#[tokio::test]
async fn a_swap_that_fails_midway_puts_the_old_database_back_and_keeps_the_new_one() {
    let w = world("").await;
    let (first, _) = w.refresh(&rule(true, json!({})), at(NOW)).await;
    first.unwrap();
    w.pg.psql("staging", "create table marker (x int); insert into marker values (7)")
        .unwrap();
    // A session on the next refresh's database, opened as soon as it exists and held through the swap: the
    // rename that would give it the name `staging` fails (after PostgreSQL's own five-second wait).
    let next = "staging_20261208040000";
    let url = w.pg.url("postgres");
    let holder = tokio::spawn(async move {
        let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        loop {
            let row = admin
                .query_one("select count(*) from pg_database where datname = $1", &[&next])
                .await
                .unwrap();
            if row.get::<_, i64>(0) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let url = url.replace("/postgres", &format!("/{next}"));
        let (held, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        (held, tokio::spawn(conn))
    });
    let (result, report) = w.refresh(&rule(true, json!({})), at("2026-12-08T04:00:00Z")).await;
    let _held = holder.await.unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, RefreshError::Swap { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("staging is as it was") && text.contains(next), "{text}");
    assert_eq!(
        w.pg.psql("staging", "select x from marker").unwrap(),
        "7",
        "the old database is back"
    );
    assert_eq!(
        w.pg.psql(
            "postgres",
            "select datallowconn from pg_database where datname = 'staging'"
        )
        .unwrap(),
        "t",
        "and open to connections again"
    );
    assert_eq!(
        w.fingerprint(next, "users"),
        w.fingerprint("app", "users"),
        "the new one is kept"
    );
    assert_eq!(
        w.staging_objects().0,
        format!("staging,{next}"),
        "nothing left aside under an _old_ name"
    );
    assert_eq!(report["new_database_fate"], "kept under its own name");
}

#[tokio::test]
async fn sql_expressions_are_evaluated_read_only_in_row_order_and_their_errors_quote_no_value() {
    use lifeboat::mask::rewrite::SqlEval;
    use lifeboat::refresh::eval::ReadOnlyEval;

    let pg = Postgres::start();
    pg.psql("postgres", "create sequence counter").unwrap();
    let url = pg.url("postgres");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let eval = ReadOnlyEval::new(client, tokio::runtime::Handle::current())
        .with_timeout(std::time::Duration::from_millis(300));
    let columns = vec!["id".to_owned(), "Email".to_owned()];
    let rows: Vec<Vec<Option<String>>> = (1..=500)
        .map(|i| {
            vec![
                Some(i.to_string()),
                (i % 7 != 0).then(|| format!("person{i}@example.com")),
            ]
        })
        .collect();
    // The masking calls it from the stream's blocking thread.
    let (eval, answers) = tokio::task::spawn_blocking(move || {
        let mut eval = eval;
        let ok = eval.eval(
            "public.users",
            &columns,
            "id || ':' || split_part(\"Email\", '@', 2)",
            &rows,
        );
        let write = eval.eval("public.users", &columns, "nextval('counter')", &rows);
        let bad = eval.eval("public.users", &columns, "\"Email\"::int", &rows);
        let slow = eval.eval("public.users", &columns, "pg_sleep(1)", &rows[..1]);
        let empty = eval.eval("public.users", &columns, "1", &[]);
        (eval, [ok, write, bad, slow, empty])
    })
    .await
    .unwrap();
    let [ok, write, bad, slow, empty] = answers;
    let ok = ok.unwrap();
    assert_eq!(ok.len(), 500);
    assert_eq!(ok[0].as_deref(), Some("1:example.com"));
    assert_eq!(ok[6], None, "NULL stays NULL through the expression");
    assert_eq!(ok[499].as_deref(), Some("500:example.com"), "in the rows' order");
    let write = write.unwrap_err();
    assert!(write.contains("SQLSTATE 25006"), "read-only: {write}");
    let bad = bad.unwrap_err();
    assert!(bad.contains("SQLSTATE 22P02") && !bad.contains("example.com"), "{bad}");
    assert!(slow.unwrap_err().contains("SQLSTATE 57014"), "the statement timeout");
    assert_eq!(empty.unwrap(), Vec::<Option<String>>::new());
    drop(eval);
    assert_eq!(
        pg.psql("postgres", "select last_value || ':' || is_called from counter")
            .unwrap(),
        "1:false",
        "nothing was written"
    );
}

// With a masking from here on: the refresh's promises about masked data.

#[tokio::test]
async fn a_masking_naming_a_missing_table_or_column_is_refused_with_nothing_created() {
    let w = world("").await;
    let (result, report) = w
        .refresh(
            &rule(true, json!({"tables": {"public.customers": {"email": "hash"}}})),
            at(NOW),
        )
        .await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, RefreshError::Rules(MaskRuleError::NoTable { table }) if table == "public.customers"),
        "{err:?}"
    );
    assert_eq!(report["failed_check"], "masking-rules");
    let (result, _) = w
        .refresh(
            &rule(true, json!({"tables": {"public.users": {"ssn": "hash"}}})),
            at(NOW),
        )
        .await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, RefreshError::Rules(MaskRuleError::NoColumn { column, .. }) if column == "ssn"),
        "{err:?}"
    );
    assert_eq!(w.staging_objects(), (String::new(), String::new()), "nothing created");
}

/// Every personal column masked; the emails by keyed hash on both sides of the foreign key, the phones by an SQL
/// expression (evaluated on the maintenance database).
fn personal() -> Value {
    json!({"tables": {
        "public.users": {"email": "hash", "name": "fake:name", "phone": {"sql": "left(phone, 5) || 'xxxxxxx'"}},
        "public.sessions": {"token": "hash", "user_email": "hash"},
        "public.messages": {"body": "fake:text"}
    }})
}

#[tokio::test]
async fn no_source_value_of_a_masked_column_reaches_the_target_and_joins_still_match() {
    let w = world("").await;
    let (result, report) = w.refresh(&rule(false, personal()), at(NOW)).await;
    let done = result.unwrap();
    for (table, column) in [
        ("users", "email"),
        ("users", "name"),
        ("users", "phone"),
        ("sessions", "token"),
        ("sessions", "user_email"),
        ("messages", "body"),
    ] {
        let sql = format!("select {column} from {table} where {column} is not null");
        let source = w.column("app", &sql);
        let target = w.column(NEW, &sql);
        assert!(!target.is_empty(), "{table}.{column} kept its rows");
        assert!(
            source.is_disjoint(&target),
            "{table}.{column}: a source value reached the target"
        );
    }
    assert_eq!(
        w.column(NEW, "select id from users order by id"),
        w.column("app", "select id from users order by id"),
        "a column without a rule is kept"
    );
    assert_eq!(
        w.column(NEW, "select distinct phone from users"),
        ["+1555xxxxxxx".to_owned()].into(),
        "the SQL expression's answer, row by row"
    );
    let joined = "select count(*) from sessions s join users u on u.email = s.user_email";
    assert_eq!(
        w.pg.psql(NEW, joined).unwrap(),
        "300",
        "every session still finds its user"
    );
    let masked = &done.masked.tables;
    assert!(masked
        .iter()
        .flat_map(|t| &t.columns)
        .all(|c| c.source_values_in_output == 0));
    let users = masked.iter().find(|t| t.table == "public.users").unwrap();
    assert_eq!(users.rows, 200);
    let text = report.to_string();
    assert!(!text.contains("@example.com"), "no source value in the report");
    assert_eq!(report["masked"].as_array().unwrap().len(), 3, "{report}");
}

#[tokio::test]
async fn two_refreshes_of_the_same_export_give_the_same_masked_values() {
    let w = world("").await;
    let (first, _) = w.refresh(&rule(false, personal()), at(NOW)).await;
    let (second, _) = w.refresh(&rule(false, personal()), at("2026-12-07T05:00:00Z")).await;
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first.database, second.database);
    for table in ["users", "sessions", "messages"] {
        assert_eq!(
            w.fingerprint(&first.database, table),
            w.fingerprint(&second.database, table),
            "{table}: masked alike in both runs"
        );
    }
}

#[tokio::test]
async fn a_new_column_in_a_strict_table_stops_the_refresh_naming_it_with_nothing_created() {
    let w = world("").await;
    // The sessions' emails are hashed as the users' are, or their foreign key would not hold.
    let strict = json!({"strict": ["public.users"], "tables": {
        "public.users": {"id": "keep", "email": "hash", "name": "fake:name", "phone": "fake:phone"},
        "public.sessions": {"user_email": "hash"}}});
    let (first, _) = w.refresh(&rule(true, strict.clone()), at(NOW)).await;
    first.unwrap();
    w.pg.psql(
        "app",
        "alter table users add column ssn text; update users set ssn = 'ssn-' || id",
    )
    .unwrap();
    w.export_at(at("2026-12-08T02:00:00Z")).await;
    let before = w.staging_objects();
    let (result, report) = w.refresh(&rule(true, strict), at("2026-12-08T04:00:00Z")).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, RefreshError::Rules(MaskRuleError::Unruled { table, column }) if table == "public.users" && column == "ssn"),
        "{err:?}"
    );
    assert!(err.to_string().contains("ssn"), "{err}");
    assert_eq!(
        w.staging_objects(),
        before,
        "nothing created, the previous refresh untouched"
    );
    assert_eq!(report["failed_check"], "masking-rules");
}
