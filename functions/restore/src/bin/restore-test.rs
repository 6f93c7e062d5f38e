//! The restore-test steps' binary, which the template's `RestoreTestFunction` runs: the state machine's steps
//! only. The console's restores are not in it (`restore` serves them), and it refuses to start where
//! `LIFEBOAT_RESTORE_ENTRY` is not `steps`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    restore::runtime::run_steps().await
}
