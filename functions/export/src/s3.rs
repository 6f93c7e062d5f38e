//! S3 side of an export: multipart upload with SSE-KMS, abort on any failure, manifest written last.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockMode, ServerSideEncryption};
use aws_sdk_s3::Client;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lifeboat::error::{aws_error_message, Error};

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
        .metadata("lifeboat-version", lifeboat::VERSION);
    if let Some(until) = lock_until {
        req = req
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(until.timestamp()));
    }
    let out = req.send().await.map_err(|e| Error::aws("CreateMultipartUpload", e))?;
    let upload_id = out.upload_id().ok_or_else(|| Error::Aws {
        operation: "CreateMultipartUpload",
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
    pub async fn complete(&self, parts: &[UploadedPart]) -> Result<(), Error> {
        let parts: Vec<CompletedPart> = parts
            .iter()
            .map(|p| CompletedPart::builder().part_number(p.number).e_tag(&p.etag).build())
            .collect();
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::aws("CompleteMultipartUpload", e))
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

/// Writes the manifest, SSE-KMS like the export itself.
pub async fn put_json(
    s3: &Client,
    bucket: &str,
    key: &str,
    profile: &str,
    body: Vec<u8>,
    kms_key_id: Option<&str>,
) -> Result<(), Error> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .tagging(format!("{PROFILE_TAG}={profile}"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .set_ssekms_key_id(kms_key_id.map(str::to_owned))
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Error::aws("PutObject", e))
}
