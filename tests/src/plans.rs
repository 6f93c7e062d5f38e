//! What the plan tests and the demo share: a versioned bucket for the plan document, the example policies, and a
//! stand-in for the restore-test state machine (moto records its executions; it never runs them).

/// Creates `bucket` with versioning on, as the stack's `PlanBucket` must be.
pub async fn versioned_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The bytes of `examples/plans/<name>.json`.
pub fn example(name: &str) -> Vec<u8> {
    std::fs::read(crate::repo_root().join("examples/plans").join(format!("{name}.json"))).unwrap()
}

/// A one-state machine standing in for the restore-test state machine; returns its ARN.
pub async fn state_machine(sfn: &aws_sdk_sfn::Client) -> String {
    sfn.create_state_machine()
        .name("lifeboat-restore-test")
        .definition(r#"{"StartAt": "Plan", "States": {"Plan": {"Type": "Pass", "End": true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/lifeboat-restore-test")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned()
}
