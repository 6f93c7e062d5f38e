//! Test and demo harness: a local AWS (moto's server) and a throwaway PostgreSQL, both started from real
//! binaries and always stopped (their guards stop them on drop, also when a test fails).
//!
//! Nothing here is skipped when a tool is missing: a test that needs moto or PostgreSQL and cannot find them
//! fails with a message that says how to install them. Every instance lives in its own temporary directory on
//! its own free port, so tests run in parallel without stepping on each other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod asl;
pub mod bench;
pub mod chaos;
pub mod demo;
pub mod faults;
pub mod fleet;
pub mod history;
pub mod lambda;
pub mod moto;
pub mod permissions;
pub mod plans;
pub mod postgres;
pub mod redis;
pub mod shop;
pub mod stack;
pub mod stats;

use std::net::TcpListener;
use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// The repository root (the workspace), found from this crate's manifest.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free local port")
}

/// SDK configuration pointed at a local endpoint, with fixed test credentials. Built explicitly rather than
/// from `AWS_ENDPOINT_URL` so that parallel tests can each use their own emulator.
pub fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_rds::config::SharedCredentialsProvider::new(
            aws_sdk_rds::config::Credentials::new("testing", "testing", None, None, "lifeboat-tests"),
        ))
        .retry_config(lifeboat::core::aws::retry_config())
        // The functions' own HTTPS client: the SDK crates are built without a default one.
        .http_client(lifeboat::core::aws::https_client())
        .build()
}

/// Random hex, for passwords that exist only for one test.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("reading /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The steps Secrets Manager invokes a rotation function with, in order, each once.
pub const ROTATION_STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// What Secrets Manager does after finishSecret succeeds: it takes AWSPENDING off the rotation's version.
pub async fn end_rotation(
    sm: &aws_sdk_secretsmanager::Client,
    secret: &str,
    token: &str,
) -> Result<(), aws_sdk_secretsmanager::Error> {
    sm.update_secret_version_stage()
        .secret_id(secret)
        .version_stage(lifeboat::postgres::rotation::AWSPENDING)
        .remove_from_version_id(token)
        .send()
        .await?;
    Ok(())
}

/// What Secrets Manager does before it invokes a rotation function: a new version, staged AWSPENDING, with no
/// value yet. moto's RotateSecret does exactly that and then fails to find the Lambda function it would call (it
/// has none, and cannot run one without Docker); the caller invokes the four steps itself. Returns the version id
/// (the rotation's ClientRequestToken).
pub async fn stage_rotation(sm: &aws_sdk_secretsmanager::Client, secret: &str) -> String {
    let token = random_hex(18);
    let err = sm
        .rotate_secret()
        .secret_id(secret)
        .client_request_token(&token)
        // A function no stack names (a deployed stack's is `<stack>-rotate`): moto must not find it, so that it
        // stops after staging the version instead of rotating by itself.
        .rotation_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:no-such-function-staging-only")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(90)
                .build(),
        )
        .send()
        .await
        .expect_err("moto has no Lambda function to invoke");
    assert!(format!("{err:?}").contains("ResourceNotFound"), "{err:?}");
    token
}
