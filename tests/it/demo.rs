//! `make demo`'s world and story (`lifeboat_tests::demo`), told through the deployed stack's functions as the
//! demo tells it: the verdicts are the ones the story means on any day (every database and the cache fresh and
//! restore-tested, three of four databases meeting their policy, and the one finding the story makes on purpose:
//! app-staging's unencrypted storage and snapshots).

use lifeboat_tests::demo::{self, Functions, Verdicts, World};

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
async fn the_demo_through_the_deployed_stack_shows_the_fleet_its_story_means() {
    let out = tempfile::tempdir().unwrap();
    let world = World::start(out.path()).await;
    let functions = Functions::start(&world, &out.path().join("functions"));
    let verdicts = demo::run(&world, &functions).await;
    assert_as_the_story_means(&verdicts);
}
