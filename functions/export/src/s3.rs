//! S3 side of an export: multipart upload with SSE-KMS, abort on any failure, manifest written last.
//!
//! Never overwrites: every object the export creates (the completed dump and the manifest) is written with
//! `If-None-Match: *`, and the bucket policy refuses the export role's writes without it. A backup can then not
//! be replaced by a retried run or by a compromised function, only added to. S3 answers 412 PreconditionFailed
//! when the key is taken; that is reported as [`Written::Exists`], never retried as an overwrite.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockMode, ServerSideEncryption};
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat::core::error::{aws_error_message, Error};

use crate::pipeline::{PartError, PartSink, UploadedPart};

/// Why S3 did not take a part.
#[derive(Debug, thiserror::Error)]
pub enum PartUploadError {
    /// The SDK error's most specific message (the service's code and message, see `aws_error_message`).
    #[error("{0}")]
    Service(String),
    #[error("UploadPart returned no ETag")]
    NoEtag,
}

/// What a write that must not overwrite did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    /// The key already held an object (S3's 412 PreconditionFailed to `If-None-Match: *`): nothing was written.
    Exists,
}

/// Whether S3 refused a conditional write because the key is taken.
fn precondition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    match err {
        SdkError::ServiceError(e) => e.err().code() == Some("PreconditionFailed"),
        _ => false,
    }
}

/// One multipart upload in progress.
#[derive(Debug, Clone)]
pub struct Upload {
    pub s3: Client,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
}

impl PartSink for Upload {
    async fn upload(&self, number: i32, body: Bytes) -> Result<String, PartError> {
        let out = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            // The part's integrity rests on the SDK's checksum of it (CRC32, which S3 checks) and the whole object's
            // on the manifest's SHA-256. Over HTTPS the SDK already leaves the payload out of the signature; over
            // plain HTTP (an S3-compatible endpoint) it would hash every part again with SHA-256 to sign it.
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| PartUploadError::Service(aws_error_message(&e)))?;
        let etag = out.e_tag().ok_or(PartUploadError::NoEtag)?;
        Ok(etag.to_owned())
    }
}

/// Starts a multipart upload encrypted with SSE-KMS (the bucket's default key unless one is given).
/// The object tag that lifecycle rules select on: one expiration rule per export profile.
pub const PROFILE_TAG: &str = "lifeboat-profile";

pub async fn start(
    s3: &Client,
    bucket: &str,
    key: &str,
    profile: &str,
    kms_key_id: Option<&str>,
    lock_until: Option<DateTime<Utc>>,
) -> Result<Upload, Error> {
    let mut req = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .content_type("application/octet-stream")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .set_ssekms_key_id(kms_key_id.map(str::to_owned))
        .tagging(format!("{PROFILE_TAG}={profile}"))
        .metadata("lifeboat-version", lifeboat::core::VERSION);
    if let Some(until) = lock_until {
        req = req
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(until.timestamp()));
    }
    let out = req.send().await.map_err(|e| Error::aws("CreateMultipartUpload", e))?;
    let upload_id = out.upload_id().ok_or_else(|| Error::Aws {
        operation: "CreateMultipartUpload",
        code: None,
        message: "no UploadId returned".into(),
    })?;
    Ok(Upload {
        s3: s3.clone(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
    })
}

impl Upload {
    /// Completes the upload only if the key is free; [`Written::Exists`] leaves the upload open (abort it).
    pub async fn complete(&self, parts: &[UploadedPart]) -> Result<Written, Error> {
        let parts: Vec<CompletedPart> = parts
            .iter()
            .map(|p| CompletedPart::builder().part_number(p.number).e_tag(&p.etag).build())
            .collect();
        let result = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .if_none_match("*")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Created),
            Err(e) if precondition_failed(&e) => Ok(Written::Exists),
            Err(e) => Err(Error::aws("CompleteMultipartUpload", e)),
        }
    }

    /// Discards every uploaded part: a failed export leaves no object behind (and no storage bill).
    pub async fn abort(&self) -> Result<(), Error> {
        self.s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("AbortMultipartUpload", e))
    }
}

/// Whether an object exists (the manifest of an export already made).
pub async fn exists(s3: &Client, bucket: &str, key: &str) -> Result<bool, Error> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
        Err(e) => Err(Error::aws("HeadObject", e)),
    }
}

/// The stored size of an object, from a listing: the function may list its exports but never read them.
pub async fn size(s3: &Client, bucket: &str, key: &str) -> Result<i64, Error> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(key)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| Error::aws("ListObjectsV2", e))?;
    Ok(out
        .contents()
        .iter()
        .find(|o| o.key() == Some(key))
        .and_then(|o| o.size())
        .unwrap_or(-1))
}

/// Writes the manifest, SSE-KMS like the export itself, only if the key is free.
pub async fn put_json(
    s3: &Client,
    bucket: &str,
    key: &str,
    profile: &str,
    body: Vec<u8>,
    kms_key_id: Option<&str>,
) -> Result<Written, Error> {
    let result = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .tagging(format!("{PROFILE_TAG}={profile}"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .set_ssekms_key_id(kms_key_id.map(str::to_owned))
        .body(ByteStream::from(body))
        .if_none_match("*")
        .send()
        .await;
    match result {
        Ok(_) => Ok(Written::Created),
        Err(e) if precondition_failed(&e) => Ok(Written::Exists),
        Err(e) => Err(Error::aws("PutObject", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const PRECONDITION_FAILED: &str = "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition></Error>";

    fn upload(s3: Client) -> Upload {
        Upload {
            s3,
            bucket: "b".into(),
            key: "exports/db/full/db.dump.zst".into(),
            upload_id: "u".into(),
        }
    }

    fn parts() -> Vec<UploadedPart> {
        vec![UploadedPart {
            number: 1,
            etag: "e".into(),
        }]
    }

    /// Answers one request with an ETag and hands back its head (lower-cased), whatever the SDK sent.
    async fn answer_one(listener: tokio::net::TcpListener) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended before its head did");
            head.extend_from_slice(&buf[..n]);
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&head).to_lowercase()
    }

    #[tokio::test]
    async fn a_part_is_sent_with_its_crc32_and_not_hashed_again_to_sign_it() {
        // Plain HTTP, where the SDK would otherwise put the part's SHA-256 in the signature.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(answer_one(listener));
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .http_client(lifeboat::core::aws::https_client())
            .build();
        let etag = upload(Client::from_conf(config))
            .upload(1, Bytes::from_static(b"a part of the archive"))
            .await
            .unwrap();
        assert_eq!(etag, "\"e1\"");
        let head = server.await.unwrap();
        let signed_body = head
            .lines()
            .find_map(|l| l.strip_prefix("x-amz-content-sha256: "))
            .unwrap_or_default();
        assert!(signed_body.contains("unsigned-payload"), "{head}");
        assert!(head.contains("x-amz-checksum-crc32"), "{head}");
    }

    #[tokio::test]
    async fn completing_sends_if_none_match_and_a_taken_key_is_reported_not_overwritten() {
        let created = mock!(Client::complete_multipart_upload)
            .match_requests(|r| r.if_none_match() == Some("*"))
            .then_output(|| CompleteMultipartUploadOutput::builder().build());
        let taken = mock!(Client::complete_multipart_upload)
            .match_requests(|r| r.if_none_match() == Some("*"))
            .sequence()
            .http_status(412, Some(PRECONDITION_FAILED.into()))
            .build();
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&created, &taken]);
        let up = upload(s3);
        assert_eq!(up.complete(&parts()).await.unwrap(), Written::Created);
        assert_eq!(up.complete(&parts()).await.unwrap(), Written::Exists);
        assert_eq!((created.num_calls(), taken.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn the_manifest_is_written_only_if_absent() {
        let created = mock!(Client::put_object)
            .match_requests(|r| r.if_none_match() == Some("*") && r.key() == Some("m.json"))
            .then_output(|| PutObjectOutput::builder().build());
        let taken = mock!(Client::put_object)
            .match_requests(|r| r.if_none_match() == Some("*"))
            .sequence()
            .http_status(412, Some(PRECONDITION_FAILED.into()))
            .build();
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&created, &taken]);
        for expected in [Written::Created, Written::Exists] {
            let written = put_json(&s3, "b", "m.json", "full", b"{}".to_vec(), None).await;
            assert_eq!(written.unwrap(), expected);
        }
    }

    #[tokio::test]
    async fn other_refusals_stay_errors() {
        let denied = mock!(Client::put_object)
            .sequence()
            .http_status(
                403,
                Some(
                    "<Error><Code>AccessDenied</Code><Message>explicit deny in a bucket policy</Message></Error>"
                        .into(),
                ),
            )
            .build();
        let s3 = mock_client!(aws_sdk_s3, [&denied]);
        let err = put_json(&s3, "b", "m.json", "full", b"{}".to_vec(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("explicit deny in a bucket policy"), "{err}");
    }
}
