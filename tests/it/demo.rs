//! `make demo`'s world and story (`lifeboat_tests::demo`), told through the functions' handlers in this process,
//! today and a year ahead: the verdicts are the ones the story means on any day (every database and the cache
//! fresh and restore-tested, three of four databases meeting their policy, and the one finding the story makes on
//! purpose: app-staging's unencrypted storage and snapshots).
//!
//! A year ahead, the whole world moves: the story is anchored at the clock a year ahead, moto's clock runs a year
//! ahead (as AWS's would), and the functions that judge (snapshot's retention, monitor, the evidence report) are
//! handed that moment as their `now` (see `lifeboat_tests::demo`'s design note on the clock). A story that kept a
//! fixed date anywhere would show stale exports, missed days and failed policies here.

use chrono::Duration;
use lifeboat_tests::demo::{self, in_process::InProcess, Clock, Verdicts, World};

async fn story_at(clock: Clock) -> Verdicts {
    let out = tempfile::tempdir().unwrap();
    let world = World::start(clock, out.path()).await;
    let functions = InProcess::new(&world);
    demo::run(&world, &functions).await
}

fn assert_as_the_story_means(verdicts: &Verdicts) {
    let story = Verdicts::story();
    assert_eq!(
        verdicts.differences(&story),
        Vec::<String>::new(),
        "the demo's verdicts: {verdicts:#?}"
    );
    // The same, spelled out: what a reader of the demo's output is promised.
    assert_eq!(verdicts.evidence_met, (3, 4), "3 of 4 databases meet their policy");
    assert_eq!(
        verdicts.findings,
        [
            "app-staging: storage is not encrypted",
            "app-staging: N unencrypted snapshot(s)"
        ],
        "monitor's findings are the story's deliberate ones, by name"
    );
    assert_eq!(
        verdicts.evidence_not_met.keys().collect::<Vec<_>>(),
        ["app-staging"],
        "only the database left unencrypted on purpose fails its policy"
    );
    assert!(verdicts.stale.is_empty(), "{:?}", verdicts.stale);
    assert_eq!(
        verdicts.restore_tests.keys().collect::<Vec<_>>(),
        ["analytics", "app-prod", "app-staging", "billing", "sessions"]
    );
    assert!(
        verdicts.restore_tests.values().all(|p| *p),
        "{:?}",
        verdicts.restore_tests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_today_shows_the_fleet_its_story_means() {
    assert_as_the_story_means(&story_at(Clock::real()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_a_year_ahead_shows_the_same_verdicts() {
    assert_as_the_story_means(&story_at(Clock::ahead(Duration::days(365))).await);
}
