//! The masking engine against a real PostgreSQL: a database with users (emails, names, phones, addresses),
//! sessions (tokens, and a foreign key on a masked column) and messages (free text with tabs, newlines,
//! backslashes and non-ASCII text) is dumped as Lifeboat exports it (`pg_dump -Fc -Z0` to a pipe), rewritten by
//! the masker and restored with pg_restore into a new database.

use std::io::Write;
use std::process::{Command, Stdio};

use lifeboat::bucket::manifest::Catalog;
use lifeboat::mask::rewrite::{MaskKey, Masked, Masker};
use lifeboat::mask::rules::{check, ColumnRule, FakeKind, Masking};
use lifeboat::postgres::archive::stream::Rewrite;
use lifeboat::postgres::dump_format::count_rows_with_catalog;
use lifeboat_tests::postgres::{self, Postgres, SUPERUSER};

const SCHEMA: &str = r#"
create table users (id serial primary key, email text not null unique, name text, phone varchar(20),
                    address text, ip inet, born date);
create table sessions (token text primary key, user_email text not null references users(email));
create table messages (id serial primary key, body text);
create table events (id int not null, user_email text, payload text) partition by range (id);
create table events_low partition of events for values from (0) to (100);
create table events_high partition of events for values from (100) to (1000);
insert into events select i, 'user' || (i % 300 + 1) || '@corp.example', 'clicked ' || i from generate_series(1, 400) i;
insert into users (email, name, phone, address, ip, born)
  select 'user' || i || '@corp.example', 'Person ' || i, '+44 20 7946 ' || lpad(i::text, 4, '0'),
         i || ' High Street, Oldtown', ('192.168.' || (i / 250) || '.' || (i % 250))::inet, date '1980-01-01' + i
  from generate_series(1, 300) i;
insert into users (email, name) values ('nobody@corp.example', null);
create table former_users () inherits (users);
insert into former_users (email, name, phone) values ('gone@corp.example', 'Gone Person', '+44 20 7946 9999');
insert into sessions select md5('token' || i), 'user' || (i % 300 + 1) || '@corp.example'
  from generate_series(1, 700) i;
insert into messages (body) values (E'tab\there'), (E'new\nline\r\n'), (E'back\\slash \\N'), ('héllo 東京 🚀'),
  (E'all\t\n\\ 混合 \\.'), (null), ('\.'), ('');
"#;

/// Every masked column, and the query for its values' digests (md5 of the text: never the values themselves in
/// an assertion message).
const MASKED: [(&str, &str); 10] = [
    ("users", "email"),
    ("users", "name"),
    ("users", "phone"),
    ("users", "address"),
    ("users", "ip"),
    ("sessions", "token"),
    ("sessions", "user_email"),
    ("messages", "body"),
    ("events", "user_email"),
    ("events", "payload"),
];

fn masking(name_rule: ColumnRule) -> Masking {
    let mut m = Masking {
        strict: vec!["public.users".into()],
        ..Masking::default()
    };
    let mut rule = |table: &str, column: &str, rule: ColumnRule| {
        m.tables
            .entry(format!("public.{table}"))
            .or_default()
            .insert(column.to_owned(), rule);
    };
    rule("users", "id", ColumnRule::Keep);
    rule("users", "email", ColumnRule::Fake(FakeKind::Email));
    rule("users", "name", name_rule);
    rule("users", "phone", ColumnRule::Fake(FakeKind::Phone));
    rule("users", "address", ColumnRule::Fake(FakeKind::Address));
    rule("users", "ip", ColumnRule::Fake(FakeKind::Ip));
    rule("users", "born", ColumnRule::Null);
    rule("sessions", "token", ColumnRule::Hash);
    rule("sessions", "user_email", ColumnRule::Fake(FakeKind::Email));
    rule("messages", "body", ColumnRule::Fake(FakeKind::Text));
    // A partitioned table: its partitions' rows follow its rules.
    rule("events", "user_email", ColumnRule::Fake(FakeKind::Email));
    rule("events", "payload", ColumnRule::Redact);
    m
}

fn dump(pg: &Postgres, db: &str) -> Vec<u8> {
    // To a pipe, as the export runs it: no data offsets recorded.
    let out = Command::new(postgres::bin_dir().join("pg_dump"))
        .args([
            "-Fc",
            "-Z0",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            db,
        ])
        .env("PGPASSWORD", &pg.password)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn catalog(archive: &[u8]) -> Catalog {
    count_rows_with_catalog(archive).unwrap().catalog
}

fn rewrite(archive: &[u8], masking: &Masking, key: &[u8]) -> (Vec<u8>, Masked) {
    let checked = check(masking, &catalog(archive)).unwrap();
    let mut masker = Masker::new(checked, MaskKey(key.to_vec()), None);
    let mut out = Vec::new();
    masker.rewrite(&mut &archive[..], &mut out).unwrap();
    (out, masker.outcome().unwrap().clone())
}

fn restore(pg: &Postgres, db: &str, archive: &[u8]) {
    pg.psql("postgres", &format!("create database {db}")).unwrap();
    let mut child = Command::new(postgres::bin_dir().join("pg_restore"))
        .args([
            "--no-owner",
            "--exit-on-error",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
        ])
        .args(["-U", SUPERUSER, "-d", db])
        .env("PGPASSWORD", &pg.password)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// md5 of every non-NULL value of a column, as text.
fn digests(pg: &Postgres, db: &str, table: &str, column: &str) -> std::collections::BTreeSet<String> {
    pg.psql(
        db,
        &format!("select md5({column}::text) from {table} where {column} is not null"),
    )
    .unwrap()
    .lines()
    .map(str::to_owned)
    .collect()
}

fn count(pg: &Postgres, db: &str, sql: &str) -> u64 {
    pg.psql(db, sql).unwrap().parse().unwrap()
}

#[test]
fn a_masked_restore_holds_no_source_value_keeps_joins_and_is_the_same_every_run() {
    let pg = Postgres::start();
    pg.psql("postgres", "create database source").unwrap();
    pg.psql("source", SCHEMA).unwrap();
    let archive = dump(&pg, "source");
    let (masked, outcome) = rewrite(&archive, &masking(ColumnRule::Fake(FakeKind::Name)), b"staging key");
    restore(&pg, "masked", &masked);

    for (table, column) in MASKED {
        let source = digests(&pg, "source", table, column);
        let target = digests(&pg, "masked", table, column);
        assert!(!source.is_empty() && !target.is_empty(), "{table}.{column}");
        assert!(
            source.is_disjoint(&target),
            "a source value of {table}.{column} is in the target"
        );
    }
    for table in [
        "users",
        "former_users",
        "sessions",
        "messages",
        "events",
        "events_low",
        "events_high",
    ] {
        let sql = format!("select count(*) from {table}");
        assert_eq!(count(&pg, "source", &sql), count(&pg, "masked", &sql), "{table}");
    }
    // NULL stays NULL, kept columns are kept, the rows of the null rule are all NULL.
    let nulls = "select count(*) from messages where body is null";
    assert_eq!(count(&pg, "masked", nulls), 1);
    assert_eq!(
        count(&pg, "masked", "select count(*) from users where born is not null"),
        0
    );
    assert_eq!(
        count(&pg, "masked", "select sum(id) from users"),
        count(&pg, "source", "select sum(id) from users")
    );
    // A partition's masked emails are the same fakes as the users'.
    let events = "select count(*) from events e join users u on u.email = e.user_email";
    assert_eq!(count(&pg, "masked", events), 400);
    // The foreign key was restored (pg_restore --exit-on-error) and the join matches as many rows.
    let join = "select count(*) from sessions s join users u on u.email = s.user_email";
    assert_eq!(count(&pg, "masked", join), 700);
    assert_eq!(
        count(
            &pg,
            "masked",
            "select count(*) from users where email not like '%@example.com'"
        ),
        0
    );
    assert_eq!(
        count(
            &pg,
            "masked",
            "select count(*) from users where ip << inet '10.0.0.0/8'"
        ),
        300
    );
    // Free text keeps its length (at least 8 characters: an empty value must not come back as itself).
    assert_eq!(
        pg.psql(
            "masked",
            "select string_agg(coalesce(greatest(length(body), 8), -1)::text, ',' order by id) from messages"
        )
        .unwrap(),
        pg.psql(
            "source",
            "select string_agg(coalesce(greatest(length(body), 8), -1)::text, ',' order by id) from messages"
        )
        .unwrap()
    );

    // The rewriter's own leak check agrees, and says what it masked.
    let users = outcome.tables.iter().find(|t| t.table == "public.users").unwrap();
    // An inheriting table's rows are masked by its parent's rules, and counted with them.
    assert_eq!(users.rows, 302);
    let email = users.columns.iter().find(|c| c.column == "email").unwrap();
    assert_eq!((email.rule.as_str(), email.values), ("fake:email", 302));
    assert!(outcome
        .tables
        .iter()
        .flat_map(|t| &t.columns)
        .all(|c| c.source_values_in_output == 0));

    // Two runs with the same key are byte for byte the same; another key gives other values.
    let (again, _) = rewrite(&archive, &masking(ColumnRule::Fake(FakeKind::Name)), b"staging key");
    assert!(again == masked, "two rewrites with the same key differ");
    let (other, _) = rewrite(&archive, &masking(ColumnRule::Fake(FakeKind::Name)), b"another key");
    restore(&pg, "other", &other);
    for (table, column) in [("users", "email"), ("sessions", "token"), ("users", "name")] {
        assert_ne!(
            digests(&pg, "masked", table, column),
            digests(&pg, "other", table, column),
            "{table}.{column}"
        );
    }
    assert!(digests(&pg, "masked", "users", "email").is_disjoint(&digests(&pg, "other", "users", "email")));

    // A constant that happens to be a source value is reported, once per row that holds it (the inheriting
    // table's row too: a query of users returns it).
    let (_, leaky) = rewrite(
        &archive,
        &masking(ColumnRule::Constant("Person 7".into())),
        b"staging key",
    );
    let users = leaky.tables.iter().find(|t| t.table == "public.users").unwrap();
    let name = users.columns.iter().find(|c| c.column == "name").unwrap();
    assert_eq!(
        (name.rule.as_str(), name.values, name.source_values_in_output),
        ("constant", 301, 301)
    );
}

#[test]
fn a_new_column_of_a_strict_table_stops_the_masking_before_anything_is_written() {
    let pg = Postgres::start();
    pg.psql("postgres", "create database source").unwrap();
    pg.psql("source", SCHEMA).unwrap();
    pg.psql("source", "alter table users add column ssn text").unwrap();
    let archive = dump(&pg, "source");
    let err = check(&masking(ColumnRule::Fake(FakeKind::Name)), &catalog(&archive)).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("public.users") && message.contains("ssn"), "{message}");
}
