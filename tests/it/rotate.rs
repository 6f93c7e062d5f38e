//! The `rotate` handler against moto's Secrets Manager and a real PostgreSQL (scram-sha-256; one server that
//! requires TLS). The tests play Secrets Manager's part: they stage the rotation's version as AWSPENDING, call
//! the four steps in order (or out of order, twice, after faults), and check the database and the secret after
//! each. After every fault, the AWSCURRENT credentials must still log in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::Client as SecretsManager;
use lifeboat::postgres::db::SslMode;
use lifeboat::postgres::rotation::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{Postgres, SUPERUSER};
use lifeboat_tests::ROTATION_STEPS as STEPS;
use rotate::error::{ErrorKind, RotateError};
use rotate::handler::Outcome;
use rotate::settings::RotateSettings;
use rotate::{handle, Deps};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";

struct World {
    _moto: Moto,
    pg: Postgres,
    sm: SecretsManager,
    deps: Deps,
}

async fn world(pg: Postgres, env: &[(&str, &str)]) -> World {
    let moto = Moto::start();
    let config = moto.config(REGION);
    let map: BTreeMap<String, String> = [("LIFEBOAT_DB_SSLMODE", "disable")]
        .iter()
        .chain(env)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = RotateSettings::from_env(&move |n: &str| map.get(n).cloned()).unwrap();
    World {
        _moto: moto,
        pg,
        sm: SecretsManager::new(&config),
        deps: Deps::new(&config, settings),
    }
}

impl World {
    /// A login role with a password, in database `app`, owning a table and a member of `app_readers`.
    fn make_user(&self, user: &str, password: &str) {
        let q = lifeboat::postgres::rotation::quote_ident(user);
        let lit = lifeboat::postgres::rotation::quote_literal(password);
        let sql = format!(
            "CREATE ROLE {q} LOGIN CREATEDB CONNECTION LIMIT 7 PASSWORD {lit};
             GRANT CONNECT ON DATABASE app TO {q};
             GRANT app_readers TO {q};
             GRANT CREATE ON SCHEMA public TO {q};
             SET ROLE {q};
             CREATE TABLE notes (id int primary key, body text);
             INSERT INTO notes VALUES (1, 'kept through rotations');"
        );
        self.pg.psql("app", &sql).unwrap();
    }

    fn setup_database(&self) {
        self.pg.psql("postgres", "CREATE DATABASE app").unwrap();
        self.pg
            .psql("app", "CREATE ROLE app_readers NOLOGIN; CREATE TABLE shared_data (x int); INSERT INTO shared_data VALUES (42); GRANT SELECT ON shared_data TO app_readers;")
            .unwrap();
    }

    fn secret_json(&self, user: &str, password: &str, port: u16, extra: &[(&str, Value)]) -> String {
        let mut v = json!({"engine": "postgres", "host": "127.0.0.1", "port": port, "username": user,
                           "password": password, "dbname": "app", "owner": "team-a"});
        for (k, x) in extra {
            v[*k] = x.clone();
        }
        v.to_string()
    }

    async fn create_secret(&self, name: &str, value: &str) -> String {
        let out = self
            .sm
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
        out.arn().unwrap().to_owned()
    }

    /// Secrets Manager's part before it invokes the function (see `lifeboat_tests::stage_rotation`), checked.
    async fn start_rotation(&self, secret: &str) -> String {
        let token = lifeboat_tests::stage_rotation(&self.sm, secret).await;
        let stages = self.stages(secret).await;
        assert_eq!(stages.get(&token), Some(&vec![AWSPENDING.to_owned()]), "{stages:?}");
        token
    }

    async fn stages(&self, secret: &str) -> BTreeMap<String, Vec<String>> {
        let d = self.sm.describe_secret().secret_id(secret).send().await.unwrap();
        d.version_ids_to_stages()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    async fn step(&self, secret: &str, step: &str, token: &str) -> Result<Outcome, RotateError> {
        let event = json!({"Step": step, "SecretId": secret, "ClientRequestToken": token});
        handle(&self.deps, event, None).await
    }

    async fn rotate(&self, secret: &str) -> String {
        let token = self.start_rotation(secret).await;
        for step in STEPS {
            self.step(secret, step, &token)
                .await
                .unwrap_or_else(|e| panic!("{step}: {e}"));
        }
        self.secrets_manager_ends_rotation(secret, &token).await;
        token
    }

    /// After finishSecret succeeds, Secrets Manager takes AWSPENDING off the new version.
    async fn secrets_manager_ends_rotation(&self, secret: &str, token: &str) {
        lifeboat_tests::end_rotation(&self.sm, secret, token).await.unwrap();
    }

    /// A new AWSCURRENT value, as an operator editing the secret makes one; Secrets Manager moves AWSPREVIOUS to
    /// the version it replaces (moto's PutSecretValue does not, its UpdateSecretVersionStage does).
    async fn make_current(&self, secret: &str, value: String) {
        let stages = self.stages(secret).await;
        let from = lifeboat::postgres::rotation::current_version(&stages)
            .unwrap()
            .to_owned();
        let version = lifeboat_tests::random_hex(18);
        self.sm
            .put_secret_value()
            .secret_id(secret)
            .client_request_token(&version)
            .secret_string(value)
            .version_stages("edited")
            .send()
            .await
            .unwrap();
        self.sm
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage(AWSCURRENT)
            .move_to_version_id(&version)
            .remove_from_version_id(from)
            .send()
            .await
            .unwrap();
    }

    async fn value(&self, secret: &str, stage: &str) -> Value {
        let out = self
            .sm
            .get_secret_value()
            .secret_id(secret)
            .version_stage(stage)
            .send()
            .await
            .unwrap();
        serde_json::from_str(out.secret_string().unwrap()).unwrap()
    }

    fn login(&self, v: &Value) -> Result<String, String> {
        self.pg.psql_as(
            v["username"].as_str().unwrap(),
            v["password"].as_str().unwrap(),
            "app",
            "select current_user || ':' || (select count(*) from notes)",
        )
    }

    /// The invariant of every test: whatever happened, AWSCURRENT logs in.
    async fn current_logs_in(&self, secret: &str) {
        let current = self.value(secret, AWSCURRENT).await;
        let who = self
            .login(&current)
            .unwrap_or_else(|e| panic!("AWSCURRENT must log in: {e}"));
        assert_eq!(who.split(':').next(), current["username"].as_str());
    }
}

fn assert_clean(err: &RotateError, token: &str, passwords: &[&str]) {
    assert!(!err.message.contains(token), "the token leaked: {}", err.message);
    for p in passwords {
        assert!(!err.message.contains(p), "a password leaked: {}", err.message);
    }
}

#[tokio::test]
async fn single_user_rotation_changes_the_password_and_keeps_open_sessions() {
    let w = world(Postgres::start(), &[]).await;
    w.setup_database();
    w.make_user("app", "old-password-1");
    let secret = w
        .create_secret("lifeboat/app", &w.secret_json("app", "old-password-1", w.pg.port, &[]))
        .await;

    // An application session opened before the rotation, as a pool would hold it.
    let (session, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=app password=old-password-1 dbname=app",
            w.pg.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);

    let token = w.start_rotation(&secret).await;
    let created = w.step(&secret, "createSecret", &token).await.unwrap();
    assert_eq!(
        (created.result, created.strategy),
        ("pending_created", Some("single-user"))
    );
    let pending = w.value(&secret, AWSPENDING).await;
    assert_eq!(pending["username"], "app");
    assert_eq!(pending["owner"], "team-a", "keys the function does not know are kept");
    let password = pending["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 32);
    assert!(
        !password
            .chars()
            .any(|c| lifeboat::postgres::rotation::DEFAULT_EXCLUDED_CHARACTERS.contains(c)),
        "{password}"
    );

    for step in &STEPS[1..] {
        w.step(&secret, step, &token)
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
    w.secrets_manager_ends_rotation(&secret, &token).await;

    let current = w.value(&secret, AWSCURRENT).await;
    assert_eq!(current["password"], password.as_str());
    assert_eq!(w.login(&current).unwrap(), "app:1");
    let old = w.pg.psql_as("app", "old-password-1", "app", "select 1").unwrap_err();
    assert!(old.contains("password authentication failed"), "{old}");
    assert_eq!(w.value(&secret, AWSPREVIOUS).await["password"], "old-password-1");
    // The server was sent a SCRAM verifier, never the plaintext.
    let stored =
        w.pg.psql(
            "app",
            "select rolpassword like 'SCRAM-SHA-256$4096:%' from pg_authid where rolname = 'app'",
        )
        .unwrap();
    assert_eq!(stored, "t");
    // The session opened with the old password keeps working.
    let row = session.query_one("select count(*) from notes", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn alternating_users_clone_the_user_and_clients_keep_working_throughout() {
    let w = world(Postgres::start(), &[]).await;
    w.setup_database();
    w.make_user("app", "app-password-1");
    let master = w
        .create_secret(
            "lifeboat/master",
            &w.secret_json(SUPERUSER, &w.pg.password, w.pg.port, &[]),
        )
        .await;
    let secret = w
        .create_secret(
            "lifeboat/app",
            &w.secret_json("app", "app-password-1", w.pg.port, &[("masterarn", json!(master))]),
        )
        .await;

    for round in 0..2 {
        let token = w.start_rotation(&secret).await;
        for step in STEPS {
            // A client that reads AWSCURRENT logs in before and after every step.
            w.current_logs_in(&secret).await;
            w.step(&secret, step, &token)
                .await
                .unwrap_or_else(|e| panic!("round {round} {step}: {e}"));
        }
        w.secrets_manager_ends_rotation(&secret, &token).await;
        w.current_logs_in(&secret).await;

        let current = w.value(&secret, AWSCURRENT).await;
        let previous = w.value(&secret, AWSPREVIOUS).await;
        let expected = if round == 0 { "app_clone" } else { "app" };
        assert_eq!(current["username"], expected);
        assert_eq!(current["masterarn"], master.as_str());
        // The previous user keeps its password until the next rotation: no client is cut off.
        w.login(&previous).unwrap();
    }

    // The clone has the original's attributes, memberships and privileges, including on its tables.
    let clone =
        w.pg.psql(
            "app",
            "select rolcreatedb, rolconnlimit, pg_has_role('app_clone', 'app_readers', 'member'), \
             pg_has_role('app_clone', 'app', 'member') from pg_roles where rolname = 'app_clone'",
        )
        .unwrap();
    assert_eq!(clone, "t|7|t|t");
    let previous = w.value(&secret, AWSPREVIOUS).await;
    assert_eq!(previous["username"], "app_clone");
    let p = previous["password"].as_str().unwrap();
    let out =
        w.pg.psql_as(
            "app_clone",
            p,
            "app",
            "insert into notes values (2, 'by the clone'); select (select x from shared_data), count(*) from notes",
        )
        .unwrap();
    assert_eq!(out, "42|2");
}

#[tokio::test]
async fn hostile_usernames_and_passwords_are_quoted() {
    let w = world(Postgres::start(), &[]).await;
    w.setup_database();
    let user = r#"o'brien "the" \admin; drop role x"#;
    w.make_user(user, "start-password");
    let master = w
        .create_secret(
            "lifeboat/master",
            &w.secret_json(SUPERUSER, &w.pg.password, w.pg.port, &[]),
        )
        .await;
    let secret = w
        .create_secret(
            "lifeboat/app",
            &w.secret_json(user, "start-password", w.pg.port, &[("masterarn", json!(master))]),
        )
        .await;
    // A pending value staged by hand (as a retried createSecret would find it) with every quoting hazard.
    let token = w.start_rotation(&secret).await;
    let hostile_password = r#"p'a"s\s; DROP ROLE x;--$$"#;
    let clone_name = format!("{user}_clone");
    w.sm.put_secret_value()
        .secret_id(&secret)
        .client_request_token(&token)
        .secret_string(w.secret_json(
            &clone_name,
            hostile_password,
            w.pg.port,
            &[("masterarn", json!(master))],
        ))
        .version_stages(AWSPENDING)
        .send()
        .await
        .unwrap();
    for step in STEPS {
        let out = w
            .step(&secret, step, &token)
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        if step == "createSecret" {
            assert_eq!(out.result, "pending_exists", "a pending value is never regenerated");
        }
    }
    assert_eq!(
        w.pg.psql_as(&clone_name, hostile_password, "app", "select current_user")
            .unwrap(),
        clone_name
    );
    assert_eq!(
        w.pg.psql("app", "select count(*) from pg_roles where rolname = 'x'")
            .unwrap(),
        "0"
    );
}

#[tokio::test]
async fn rotation_over_required_tls_verifies_the_server() {
    let pg = Postgres::start_tls_only();
    let ca = pg.ca_file.clone().unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let w = world(
        pg,
        &[("LIFEBOAT_DB_SSLMODE", "verify-full"), ("LIFEBOAT_DB_CA_BUNDLE", &ca)],
    )
    .await;
    assert_eq!(w.deps.settings.tls.mode, SslMode::VerifyFull);
    w.setup_database();
    w.make_user("app", "tls-password-1");
    let secret = w
        .create_secret("lifeboat/app", &w.secret_json("app", "tls-password-1", w.pg.port, &[]))
        .await;
    w.rotate(&secret).await;
    w.current_logs_in(&secret).await;
    assert_eq!(
        w.pg.psql("app", "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
            .unwrap(),
        "t",
        "the server takes TLS connections only"
    );

    // `ssl: false` in the secret is honoured: no TLS, so this server refuses the login; nothing is changed.
    let plain = w
        .create_secret(
            "lifeboat/plain",
            &w.secret_json("app", "unused", w.pg.port, &[("ssl", json!(false))]),
        )
        .await;
    let token = w.start_rotation(&plain).await;
    w.step(&plain, "createSecret", &token).await.unwrap();
    let err = w.step(&plain, "setSecret", &token).await.unwrap_err();
    assert!(err.message.contains("no encryption"), "{}", err.message);
    w.current_logs_in(&secret).await;
}

/// A TCP relay to the database that can be switched off, to make the database unreachable mid-rotation.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
}

async fn relay(to: u16) -> Relay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !flag.load(Ordering::SeqCst) {
                continue; // dropped: the client sees the connection closed at once
            }
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Relay { port, up }
}

#[tokio::test]
async fn faults_leave_the_current_credentials_working() {
    let w = world(Postgres::start(), &[]).await;
    w.setup_database();
    w.make_user("app", "app-password-1");
    let relay = relay(w.pg.port).await;
    let secret = w
        .create_secret("lifeboat/app", &w.secret_json("app", "app-password-1", relay.port, &[]))
        .await;
    let passwords = ["app-password-1"];

    // 1. testSecret before setSecret: the pending password does not log in yet; the error says which one.
    let stale = w.start_rotation(&secret).await;
    w.step(&secret, "createSecret", &stale).await.unwrap();
    let err = w.step(&secret, "testSecret", &stale).await.unwrap_err();
    assert!(
        err.message
            .contains("pending credentials (AWSPENDING, user app): authentication failure"),
        "{}",
        err.message
    );
    assert_eq!(
        err.kind,
        ErrorKind::Database(lifeboat::postgres::db::FailureKind::Authentication)
    );
    let pending_password = w.value(&secret, AWSPENDING).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_clean(&err, &stale, &[&pending_password, passwords[0]]);
    w.current_logs_in(&secret).await;

    // 2. The database unreachable at setSecret: a network failure, and nothing changed.
    relay.up.store(false, Ordering::SeqCst);
    let err = w.step(&secret, "setSecret", &stale).await.unwrap_err();
    assert!(
        err.message
            .contains("current credentials (AWSCURRENT, user app): network failure"),
        "{}",
        err.message
    );
    assert_clean(&err, &stale, &[&pending_password, passwords[0]]);
    relay.up.store(true, Ordering::SeqCst);
    w.current_logs_in(&secret).await;

    // 3. A new rotation replaces the stale AWSPENDING: a late step of the old one is refused, the new one works.
    let token = w.start_rotation(&secret).await;
    let err = w.step(&secret, "setSecret", &stale).await.unwrap_err();
    assert!(
        err.message.contains("not staged AWSPENDING") || err.message.contains("not a version of the secret"),
        "{}",
        err.message
    );
    assert_eq!(err.kind, ErrorKind::Protocol);
    assert_clean(&err, &stale, &[]);

    // 4. Every step twice (retries, redelivery): the same pending value, one new version, no error.
    let mut outcomes = Vec::new();
    for step in STEPS {
        for _ in 0..2 {
            outcomes.push(w.step(&secret, step, &token).await.unwrap().result);
        }
        if step == "createSecret" {
            let first = w.value(&secret, AWSPENDING).await;
            w.step(&secret, step, &token).await.unwrap();
            assert_eq!(
                w.value(&secret, AWSPENDING).await,
                first,
                "createSecret never regenerates"
            );
        }
    }
    assert_eq!(
        outcomes,
        [
            "pending_created",
            "pending_exists",
            "password_set",
            "pending_already_works",
            "pending_logs_in",
            "pending_logs_in",
            "promoted",
            "already_current"
        ]
    );
    w.secrets_manager_ends_rotation(&secret, &token).await;
    w.current_logs_in(&secret).await;
    let stages = w.stages(&secret).await;
    assert_eq!(stages.get(&token).unwrap(), &vec![AWSCURRENT.to_owned()]);

    // 5. A wrong current password (the secret edited by hand): setSecret falls back to AWSPREVIOUS, which still
    // logs in, and the rotation repairs the secret.
    let real = w.value(&secret, AWSCURRENT).await;
    let put = |password: &'static str| w.make_current(&secret, w.secret_json("app", password, relay.port, &[]));
    put("wrong-password-1").await;
    assert_eq!(w.value(&secret, AWSPREVIOUS).await, real);
    w.rotate(&secret).await;
    w.current_logs_in(&secret).await;

    // 6. Neither the current nor the previous password logs in: setSecret says so about both, changes nothing,
    // and the database keeps the last good password.
    let good = w.value(&secret, AWSCURRENT).await;
    put("wrong-password-2").await;
    put("wrong-password-3").await;
    let token = w.start_rotation(&secret).await;
    w.step(&secret, "createSecret", &token).await.unwrap();
    let err = w.step(&secret, "setSecret", &token).await.unwrap_err();
    for expected in [
        "current credentials (AWSCURRENT, user app): authentication failure",
        "previous credentials (AWSPREVIOUS, user app): authentication failure",
    ] {
        assert!(err.message.contains(expected), "{}", err.message);
    }
    let pending = w.value(&secret, AWSPENDING).await;
    assert_clean(
        &err,
        &token,
        &[
            "wrong-password-2",
            "wrong-password-3",
            pending["password"].as_str().unwrap(),
        ],
    );
    assert_eq!(
        w.login(&good).unwrap(),
        "app:1",
        "the database still has the last good password"
    );
}

/// No password and no rotation token in any log line, at the most verbose level the function's own crates log.
/// The subscriber is the process's global one (a thread-scoped one misses events whose callsites other tests'
/// threads reached first), so it also collects the other tests' logs; the check is for this test's secrets.
#[tokio::test]
async fn logs_never_hold_a_password_or_the_token() {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter("rotate=trace,lifeboat=trace,info")
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("no other test installs a global subscriber");

    let w = world(Postgres::start(), &[]).await;
    w.setup_database();
    w.make_user("app", "app-password-1");
    let secret = w
        .create_secret("lifeboat/app", &w.secret_json("app", "app-password-1", w.pg.port, &[]))
        .await;
    let token = w.rotate(&secret).await;
    // And a failing step, whose error is logged too.
    let err = w.step(&secret, "setSecret", "f".repeat(36).as_str()).await.unwrap_err();
    assert!(err.message.contains("not a version"), "{}", err.message);

    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("rotation step finished"), "the steps were logged: {logs}");
    let new_password = w.value(&secret, AWSCURRENT).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    for needle in [token.as_str(), new_password.as_str(), "app-password-1"] {
        assert!(!logs.contains(needle), "`{needle}` appears in the logs:\n{logs}");
    }
}

/// The master user of the issue's scenario, as RDS names it by default; a superuser here, as on a plain server.
const MASTER: &str = "postgres";
const MASTER_PASSWORD: &str = "real-master-password-1";

impl World {
    /// The `postgres` master user and its secret (the `masterarn` of the secrets below).
    async fn master_secret(&self) -> String {
        let sql = format!("CREATE ROLE {MASTER} LOGIN SUPERUSER PASSWORD '{MASTER_PASSWORD}'");
        self.pg.psql("postgres", &sql).unwrap();
        let value = self.secret_json(MASTER, MASTER_PASSWORD, self.pg.port, &[]);
        self.create_secret("lifeboat/master", &value).await
    }

    /// A secret for `user` (with `password`) that names the master secret.
    async fn alternating_secret(&self, user: &str, password: &str, master: &str) -> String {
        let value = self.secret_json(user, password, self.pg.port, &[("masterarn", json!(master))]);
        self.create_secret(&format!("lifeboat/{user}"), &value).await
    }

    /// Runs createSecret and setSecret of an alternating-users rotation that setSecret must refuse: the error, after
    /// checking that no clone was made, that the pending password logs in nowhere and AWSCURRENT is untouched.
    async fn refused_rotation(&self, secret: &str) -> RotateError {
        let before = self.value(secret, AWSCURRENT).await;
        let token = self.start_rotation(secret).await;
        self.step(secret, "createSecret", &token).await.unwrap();
        let pending = self.value(secret, AWSPENDING).await;
        let err = self.step(secret, "setSecret", &token).await.unwrap_err();
        let clone = lifeboat::postgres::rotation::quote_literal(pending["username"].as_str().unwrap());
        let roles = self
            .pg
            .psql("app", &format!("select count(*) from pg_roles where rolname = {clone}"))
            .unwrap();
        assert_eq!(roles, "0", "no role {clone} may be created: {}", err.message);
        assert!(
            self.login(&pending).is_err(),
            "the pending password must log in nowhere"
        );
        assert_eq!(self.value(secret, AWSCURRENT).await, before);
        assert_clean(&err, &token, &[pending["password"].as_str().unwrap(), MASTER_PASSWORD]);
        err
    }
}

/// Issue 12, item 1: a secret naming the master user with a made-up password and a real `masterarn` must not get
/// a clone of the master (with its memberships) whose password lands in that secret. As AWS's multi-user template
/// does, setSecret first proves that AWSCURRENT logs in; and even with the right password, the master user itself
/// is not cloned.
#[tokio::test]
async fn alternating_users_refuse_to_clone_the_master_user() {
    let w = world(Postgres::start(), &[]).await;
    w.setup_database();
    let master = w.master_secret().await;
    let forged = w.alternating_secret(MASTER, "made-up-password", &master).await;
    let err = w.refused_rotation(&forged).await;
    assert!(
        err.message
            .contains("current credentials (AWSCURRENT, user postgres): authentication failure"),
        "{}",
        err.message
    );
    assert_eq!(
        err.kind,
        ErrorKind::Database(lifeboat::postgres::db::FailureKind::Authentication)
    );

    // With the master's own password the current login works, but the master user is not the one to clone.
    let value = w.secret_json(MASTER, MASTER_PASSWORD, w.pg.port, &[("masterarn", json!(master))]);
    let real = w.create_secret("lifeboat/postgres-with-its-password", &value).await;
    let err = w.refused_rotation(&real).await;
    assert!(
        err.message
            .contains("refusing to clone postgres: it is the master user"),
        "{}",
        err.message
    );
    assert_eq!(err.kind, ErrorKind::Protocol);
}

/// Issue 12, item 1: alternating users clone application users, never a role that can make or take over others.
#[tokio::test]
async fn alternating_users_refuse_to_clone_a_privileged_role() {
    let w = world(Postgres::start(), &[]).await;
    w.setup_database();
    let master = w.master_secret().await;
    w.pg.psql(
        "app",
        "CREATE ROLE rds_superuser NOLOGIN; CREATE ROLE rds_admins NOLOGIN IN ROLE rds_superuser",
    )
    .unwrap();
    for (user, attribute, reason) in [
        ("admin", "CREATEROLE", "it has CREATEROLE"),
        ("root", "SUPERUSER", "it is a superuser"),
        ("ops", "IN ROLE rds_admins", "it is a member of rds_superuser"),
    ] {
        let sql = format!("CREATE ROLE {user} LOGIN {attribute} PASSWORD 'admin-password-1'");
        w.pg.psql("app", &sql).unwrap();
        let secret = w.alternating_secret(user, "admin-password-1", &master).await;
        let err = w.refused_rotation(&secret).await;
        assert!(
            err.message.contains(&format!("refusing to clone {user}: {reason}")),
            "{}",
            err.message
        );
        assert_eq!(err.kind, ErrorKind::Protocol);
    }
}
