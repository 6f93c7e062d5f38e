//! The harness itself: the servers start, authenticate as they should, and stop.

use lifeboat_tests::moto::Moto;
use lifeboat_tests::postgres::{Postgres, SUPERUSER};

#[test]
fn postgres_requires_the_scram_password() {
    let pg = Postgres::start();
    assert_eq!(pg.psql("postgres", "select 1").unwrap(), "1");
    let method = pg.psql(
        "postgres",
        "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = current_user",
    );
    assert_eq!(
        method.unwrap(),
        "t",
        "the superuser's password is stored as a SCRAM verifier"
    );
    let err = pg
        .psql_as(SUPERUSER, "wrong-password", "postgres", "select 1")
        .unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn postgres_is_stopped_and_removed_on_drop() {
    let pg = Postgres::start();
    let data = pg.data_dir().to_path_buf();
    let port = pg.port;
    drop(pg);
    assert!(!data.exists(), "data directory {} left behind", data.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening on {port}"
    );
}

#[test]
fn moto_answers_and_stops_on_drop() {
    let moto = Moto::start();
    let port = moto.port;
    assert!(moto.get("/moto-api/").is_some());
    drop(moto);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "moto still listening on {port}"
    );
}
