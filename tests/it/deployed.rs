//! The stack a user deploys, run here (`lifeboat_tests::demo::deployed`, also the demo's last chapter): one
//! scheduled run of every function, a rotation, and restore tests of a database and a cache through the deployed
//! state machine, all through the stack's own wiring.

use lifeboat_tests::demo::deployed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_stack_runs_every_function_a_rotation_and_a_restore_test_through_its_own_wiring() {
    let w = deployed::world().await;
    let logs = tempfile::tempdir().unwrap();
    let functions = deployed::start_functions(&w, logs.path());
    let said = std::sync::Mutex::new(Vec::new());
    deployed::story(&w, &functions, &|line| said.lock().unwrap().push(line)).await;
    let said = said.into_inner().unwrap();
    assert!(
        said.iter().any(|l| l.contains("restore test of app-db passed")),
        "the story says what it did: {said:?}"
    );
}
