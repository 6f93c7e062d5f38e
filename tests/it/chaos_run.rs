//! `make chaos` in small: the runner's first days (a baseline day, then a day whose export loses its `pg_dump`
//! connection mid-dump) under the proxy's AWS faults, with the invariants checked after each day. The month
//! itself is `make chaos`; this proves the runner injects what it says, that the failed export is signalled and
//! recovered by its redelivery, and that the invariants hold.

use std::time::Duration;

use lifeboat_tests::chaos::faults::DataFault;
use lifeboat_tests::chaos::{self, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_days_under_faults_keep_every_invariant_and_recover_from_a_killed_dump() {
    let logs = tempfile::tempdir().unwrap();
    let options = Options {
        days: 2,
        seed: 5,
        bound: Duration::from_secs(600),
        aws_fault_percent: 1.0,
        logs: logs.path().to_owned(),
    };
    let figures = chaos::run(&options).await;
    let table = figures.table();
    assert_eq!(figures.days_run, 2, "{table}");
    assert!(figures.violations.is_empty(), "{table}");
    assert_eq!(
        figures.data.get(&DataFault::PgDumpKilled),
        Some(&(1, 0)),
        "the second day's export lost its pg_dump connection while it dumped: {table}"
    );
    assert!(
        figures.failed_attempts >= 1,
        "the killed dump failed its attempt: {table}"
    );
    assert!(
        !figures.recoveries.is_empty(),
        "and its redelivery made the export: {table}"
    );
    assert_eq!(figures.unrecovered, 0, "{table}");
    assert!(
        figures.aws.values().sum::<u64>() > 0,
        "the proxy injected AWS faults: {table}"
    );
    assert!(figures.passed(), "{table}");
}
