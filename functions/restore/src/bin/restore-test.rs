//! The restore-test steps' binary: the `restore` binary under the name of the template's `RestoreTestFunction`,
//! so that `cargo lambda watch` and `invoke` (and `make demo`) know the steps' function by its own name. What it
//! serves is still `LIFEBOAT_RESTORE_ENTRY`'s to say (`steps`), never the name.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    restore::runtime::run().await
}
