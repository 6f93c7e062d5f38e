//! The console's restore binary (the template's `RestoreFunction` and restore task): the console's restores only,
//! `LIFEBOAT_RESTORE_ENTRY=console` (the steps are `restore-test`'s). Settings and clients are built once per cold
//! start. The same binary runs outside Lambda (the ECS Fargate task for restores from exports longer than an
//! invocation): `restore --event '<json>'` or `LIFEBOAT_EVENT='<json>' restore` handles one event with no
//! deadline, prints the result on stdout and exits non-zero on failure.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    restore::runtime::run_console().await
}
