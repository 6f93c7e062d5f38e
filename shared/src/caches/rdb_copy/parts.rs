//! Moving a verified RDB file larger than one `CopyObject` (5 GiB) under `exports/`: a multipart upload whose
//! parts are server-side copies (`UploadPartCopy`) of byte ranges of the staged file, with the same proof as a
//! single copy, that the stored object is the file that was verified.
//!
//! The proof: while the verifier streams the staged file it also hashes each part-sized piece ([`PartHasher`]).
//! The upload asks S3 for SHA-256 checksums, so S3 hashes each copied part and, on completion, records the
//! composite checksum (the SHA-256 of the parts' digests, `-<parts>` after it); completion names each part's
//! verified SHA-256, which S3 checks against its own, and the stored composite must equal the one computed from
//! the verified pieces. A part S3 reports with another SHA-256 aborts the upload at once.
//!
//! Owns: the part plan (how big the parts are), the part hashes and the composite, the multipart adapter.
//! Never: leaves an upload it started open when a step fails (it is aborted; the bucket's lifecycle rule aborts
//! what a killed process could not), or overwrites a key already taken (completion asks `If-None-Match: *`).

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use sha2::{Digest, Sha256};

use super::{Move, RdbCopyError, MAX_COPY_BYTES};
use crate::core::error::Error;

/// S3's smallest part (every part but the last).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3's most parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// The usual part: few enough calls for a file of tens of GiB, each copy well within a call's time.
pub const DEFAULT_PART_BYTES: u64 = 512 * 1024 * 1024;

/// How a file is moved: in one copy up to `single_max` bytes, else in parts of `part_bytes` (the last shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyPlan {
    pub single_max: u64,
    pub part_bytes: u64,
}

impl CopyPlan {
    /// The plan for a file of `size` bytes: one copy up to 5 GiB, else parts of 512 MiB, larger when 10,000
    /// of those would not hold the file (whole MiB, so every part but the last has the same size).
    pub fn for_size(size: u64) -> Self {
        const MIB: u64 = 1024 * 1024;
        let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        Self {
            single_max: MAX_COPY_BYTES,
            part_bytes: needed.max(DEFAULT_PART_BYTES),
        }
    }

    /// Whether a file of `size` bytes is moved in parts.
    pub fn in_parts(&self, size: u64) -> bool {
        size > self.single_max
    }

    /// The byte ranges (first, last, inclusive, as `x-amz-copy-source-range` takes them) of the parts of a file
    /// of `size` bytes; `Err` when the plan cannot move it (parts under S3's minimum, or more than 10,000).
    pub fn ranges(&self, size: u64) -> Result<Vec<(u64, u64)>, String> {
        if self.part_bytes < MIN_PART_BYTES {
            return Err(format!(
                "parts of {} bytes are under S3's minimum of {MIN_PART_BYTES}",
                self.part_bytes
            ));
        }
        let parts = size.div_ceil(self.part_bytes);
        if parts > MAX_PARTS {
            return Err(format!(
                "{size} bytes in parts of {} make {parts} parts, over S3's {MAX_PARTS}",
                self.part_bytes
            ));
        }
        Ok((0..parts)
            .map(|i| (i * self.part_bytes, ((i + 1) * self.part_bytes).min(size) - 1))
            .collect())
    }
}

/// The SHA-256 of each `part_bytes` piece of a stream, fed in chunks of any size.
#[derive(Debug, Clone)]
pub struct PartHasher {
    part_bytes: u64,
    current: Sha256,
    filled: u64,
    done: Vec<[u8; 32]>,
}

impl PartHasher {
    pub fn new(part_bytes: u64) -> Self {
        Self {
            part_bytes: part_bytes.max(1),
            current: Sha256::new(),
            filled: 0,
            done: Vec::new(),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = usize::try_from(self.part_bytes - self.filled).unwrap_or(usize::MAX);
            let (now, rest) = data.split_at(room.min(data.len()));
            self.current.update(now);
            self.filled += now.len() as u64;
            if self.filled == self.part_bytes {
                self.done.push(std::mem::take(&mut self.current).finalize().into());
                self.filled = 0;
            }
            data = rest;
        }
    }

    /// The digests, one per piece (the last piece may be shorter; an empty stream has none).
    pub fn finish(mut self) -> Vec<[u8; 32]> {
        if self.filled > 0 {
            self.done.push(self.current.finalize().into());
        }
        self.done
    }
}

/// A part's SHA-256 as S3 writes it (base64).
pub fn part_checksum(digest: &[u8; 32]) -> String {
    aws_smithy_types::base64::encode(digest)
}

/// The composite checksum S3 records for a multipart object with SHA-256 parts: the base64 SHA-256 of the
/// parts' digests one after another, then `-<parts>`.
pub fn composite_sha256(parts: &[[u8; 32]]) -> String {
    let mut all = Sha256::new();
    for p in parts {
        all.update(p);
    }
    format!("{}-{}", aws_smithy_types::base64::encode(all.finalize()), parts.len())
}

/// A composite checksum without its `-<parts>` (some S3 answers carry it, some do not).
fn bare(checksum: &str) -> &str {
    checksum.split_once('-').map_or(checksum, |(b, _)| b)
}

fn differs(m: &Move<'_>, expected: &str, stored: Option<String>) -> RdbCopyError {
    RdbCopyError::StoredDiffers {
        key: m.to.to_owned(),
        verified: format!("{} (composite of {} parts)", m.sha256, m.parts.len()),
        stored: stored.unwrap_or_else(|| format!("missing (expected {expected})")),
    }
}

/// Whether the object stored at the destination is the verified file: its composite SHA-256 is the one the
/// verified parts make.
fn check_stored(m: &Move<'_>, expected: &str, stored: Option<String>) -> Result<(), RdbCopyError> {
    match stored {
        Some(s) if bare(&s) == bare(expected) => Ok(()),
        other => Err(differs(m, expected, other)),
    }
}

/// Moves a large verified file in parts (see the module's doc). A destination already holding the verified file
/// (an earlier run stopped before its manifest) is accepted; one holding anything else is refused.
pub async fn move_in_parts(s3: &aws_sdk_s3::Client, m: Move<'_>) -> Result<(), RdbCopyError> {
    let ranges = m.plan.ranges(m.size).map_err(|why| RdbCopyError::Parts {
        key: m.from.to_owned(),
        why,
    })?;
    if ranges.len() != m.parts.len() {
        return Err(RdbCopyError::Parts {
            key: m.from.to_owned(),
            why: format!(
                "{} parts planned but {} were hashed while verifying",
                ranges.len(),
                m.parts.len()
            ),
        });
    }
    let expected = composite_sha256(m.parts);
    if let Some(stored) = existing(s3, &m).await? {
        return check_stored(&m, &expected, stored);
    }
    let upload = start(s3, &m).await?;
    let done = copy_parts(s3, &m, &upload, &ranges).await;
    let completed = match done {
        Ok(parts) => complete(s3, &m, &upload, parts).await,
        Err(e) => Err(e),
    };
    match completed {
        Ok(()) => {}
        Err(Completion::Taken) => {}
        Err(Completion::Failed(e)) => {
            abort(s3, &m, &upload).await;
            return Err(e);
        }
    }
    let stored = existing(s3, &m).await?.flatten();
    check_stored(&m, &expected, stored)
}

/// The destination's stored SHA-256: `None` when there is no object, `Some(None)` when it has no checksum.
async fn existing(s3: &aws_sdk_s3::Client, m: &Move<'_>) -> Result<Option<Option<String>>, RdbCopyError> {
    let out = s3
        .get_object_attributes()
        .bucket(m.bucket)
        .key(m.to)
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::Checksum)
        .send()
        .await;
    match out {
        Ok(out) => Ok(Some(
            out.checksum().and_then(|c| c.checksum_sha256()).map(str::to_owned),
        )),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
        Err(e) => Err(Error::aws("GetObjectAttributes", e).into()),
    }
}

async fn start(s3: &aws_sdk_s3::Client, m: &Move<'_>) -> Result<String, RdbCopyError> {
    let out = s3
        .create_multipart_upload()
        .bucket(m.bucket)
        .key(m.to)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .set_ssekms_key_id(m.kms_key_id.map(str::to_owned))
        .tagging(format!("{}={}", super::PROFILE_TAG, crate::bucket::layout::RDB_PROFILE))
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .map_err(|e| Error::aws("CreateMultipartUpload", e))?;
    out.upload_id().map(str::to_owned).ok_or_else(|| {
        RdbCopyError::Aws(Error::PartialFailure(format!(
            "CreateMultipartUpload for {} returned no upload id",
            m.to
        )))
    })
}

/// Copies each range as a part; a part S3 hashes differently from the verified piece stops the move.
async fn copy_parts(
    s3: &aws_sdk_s3::Client,
    m: &Move<'_>,
    upload: &str,
    ranges: &[(u64, u64)],
) -> Result<Vec<CompletedPart>, Completion> {
    let mut done = Vec::with_capacity(ranges.len());
    for (i, ((first, last), digest)) in ranges.iter().zip(m.parts).enumerate() {
        let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let out = s3
            .upload_part_copy()
            .bucket(m.bucket)
            .key(m.to)
            .upload_id(upload)
            .part_number(number)
            .copy_source(format!("{}/{}", m.bucket, m.from))
            .copy_source_range(format!("bytes={first}-{last}"))
            .send()
            .await
            .map_err(|e| Completion::Failed(Error::aws("UploadPartCopy", e).into()))?;
        let result = out.copy_part_result();
        let verified = part_checksum(digest);
        if let Some(stored) = result.and_then(|r| r.checksum_sha256()).filter(|s| *s != verified) {
            return Err(Completion::Failed(RdbCopyError::StoredDiffers {
                key: format!("{} part {number} (bytes {first}-{last})", m.to),
                verified: verified.clone(),
                stored: stored.to_owned(),
            }));
        }
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(result.and_then(|r| r.e_tag()).map(str::to_owned))
                .checksum_sha256(verified)
                .build(),
        );
    }
    Ok(done)
}

/// How completing the upload ended when it did not store the object.
enum Completion {
    /// Another run stored the key first (`If-None-Match` refused): its object is checked like ours.
    Taken,
    Failed(RdbCopyError),
}

impl From<RdbCopyError> for Completion {
    fn from(e: RdbCopyError) -> Self {
        Self::Failed(e)
    }
}

async fn complete(
    s3: &aws_sdk_s3::Client,
    m: &Move<'_>,
    upload: &str,
    parts: Vec<CompletedPart>,
) -> Result<(), Completion> {
    let sent = s3
        .complete_multipart_upload()
        .bucket(m.bucket)
        .key(m.to)
        .upload_id(upload)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .if_none_match("*")
        .send()
        .await;
    match sent {
        Ok(_) => Ok(()),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Err(Completion::Taken),
        // S3 hashed a part differently from the verified piece: the staged file changed since it was verified.
        Err(e) if matches!(e.code(), Some("BadDigest" | "InvalidPart")) => {
            Err(Completion::Failed(RdbCopyError::StoredDiffers {
                key: m.to.to_owned(),
                verified: format!("{} (composite of {} parts)", m.sha256, m.parts.len()),
                stored: format!(
                    "refused by S3 at completion: {}",
                    e.message().unwrap_or("a part's checksum differs")
                ),
            }))
        }
        Err(e) => Err(Completion::Failed(Error::aws("CompleteMultipartUpload", e).into())),
    }
}

/// Aborts an upload that failed; a failed abort is logged (the bucket's lifecycle rule aborts it a day later).
async fn abort(s3: &aws_sdk_s3::Client, m: &Move<'_>, upload: &str) {
    let out = s3
        .abort_multipart_upload()
        .bucket(m.bucket)
        .key(m.to)
        .upload_id(upload)
        .send()
        .await;
    if let Err(e) = out {
        tracing::warn!(key = m.to, error = %Error::aws("AbortMultipartUpload", e), "multipart copy not aborted; the lifecycle rule aborts it within a day");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_plan_moves_up_to_5_gib_at_once_and_larger_files_in_equal_parts_within_10000() {
        let small = CopyPlan::for_size(MAX_COPY_BYTES);
        assert!(!small.in_parts(MAX_COPY_BYTES));
        let big = CopyPlan::for_size(MAX_COPY_BYTES + 1);
        assert!(big.in_parts(MAX_COPY_BYTES + 1));
        assert_eq!(big.part_bytes, DEFAULT_PART_BYTES);
        let r = big.ranges(MAX_COPY_BYTES + 1).unwrap();
        assert_eq!(r.len(), 11);
        assert_eq!(r[0], (0, DEFAULT_PART_BYTES - 1));
        assert_eq!(r[10], (10 * DEFAULT_PART_BYTES, MAX_COPY_BYTES));
        // 10 TiB: 512 MiB parts would be 20,480; the parts grow (whole MiB) to fit 10,000.
        let huge = 10 * 1024 * 1024 * MIB;
        let plan = CopyPlan::for_size(huge);
        assert_eq!(plan.part_bytes % MIB, 0);
        let parts = plan.ranges(huge).unwrap();
        assert!(parts.len() as u64 <= MAX_PARTS, "{}", parts.len());
        assert_eq!(parts.last().unwrap().1, huge - 1);
        assert!(parts.windows(2).all(|w| w[1].0 == w[0].1 + 1), "ranges are contiguous");
        let tiny = CopyPlan {
            single_max: 0,
            part_bytes: MIB,
        };
        assert!(tiny.ranges(10 * MIB).unwrap_err().contains("minimum"));
        let many = CopyPlan {
            single_max: 0,
            part_bytes: MIN_PART_BYTES,
        };
        assert!(many
            .ranges(MIN_PART_BYTES * (MAX_PARTS + 1))
            .unwrap_err()
            .contains("10000"));
    }

    #[test]
    fn part_hashes_do_not_depend_on_how_the_stream_is_chunked() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = data
            .chunks(300)
            .map(|c| <[u8; 32]>::from(Sha256::digest(c)))
            .collect::<Vec<_>>();
        for chunk in [1, 7, 299, 300, 301, 1000, 4096] {
            let mut h = PartHasher::new(300);
            data.chunks(chunk).for_each(|c| h.update(c));
            assert_eq!(h.finish(), whole, "chunks of {chunk}");
        }
        assert!(PartHasher::new(300).finish().is_empty());
        let composite = composite_sha256(&whole);
        assert!(composite.ends_with("-4"), "{composite}");
        assert_eq!(bare(&composite), bare(composite.split('-').next().unwrap()));
    }

    /// What moto cannot do: S3 refusing completion because a part's checksum is not the verified one. The move
    /// fails as "not the verified file" (final: recorded, never retried) and aborts its upload.
    #[tokio::test]
    async fn a_part_s3_hashes_differently_aborts_the_upload_and_fails_for_good() {
        use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
        use aws_sdk_s3::operation::upload_part_copy::UploadPartCopyOutput;
        use aws_sdk_s3::Client;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        const BAD_DIGEST: &str = "<Error><Code>BadDigest</Code><Message>The sha256 you specified for part 1 did \
            not match what we received.</Message></Error>";
        let missing = mock!(Client::get_object_attributes)
            .sequence()
            .http_status(404, None)
            .build();
        let create = mock!(Client::create_multipart_upload)
            .match_requests(|r| r.checksum_algorithm() == Some(&ChecksumAlgorithm::Sha256))
            .then_output(|| CreateMultipartUploadOutput::builder().upload_id("u1").build());
        let part = mock!(Client::upload_part_copy)
            .match_requests(|r| r.copy_source_range() == Some("bytes=0-5242879") && r.part_number() == Some(1))
            .then_output(|| UploadPartCopyOutput::builder().build());
        let last = mock!(Client::upload_part_copy)
            .match_requests(|r| r.copy_source_range() == Some("bytes=5242880-5242889"))
            .then_output(|| UploadPartCopyOutput::builder().build());
        let refused = mock!(Client::complete_multipart_upload)
            .sequence()
            .http_status(400, Some(BAD_DIGEST.into()))
            .build();
        let abort = mock!(Client::abort_multipart_upload)
            .match_requests(|r| r.upload_id() == Some("u1"))
            .then_output(|| {
                aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput::builder().build()
            });
        let s3 = mock_client!(
            aws_sdk_s3,
            RuleMode::Sequential,
            [&missing, &create, &part, &last, &refused, &abort]
        );
        let parts = [[1u8; 32], [2u8; 32]];
        let m = Move {
            bucket: "b",
            from: "rdb-staging-x-0001.rdb",
            to: "exports/x/rdb/x-0001.rdb",
            size: MIN_PART_BYTES + 10,
            sha256: "00",
            kms_key_id: None,
            plan: CopyPlan {
                single_max: 0,
                part_bytes: MIN_PART_BYTES,
            },
            parts: &parts,
        };
        let err = move_in_parts(&s3, m).await.unwrap_err();
        assert!(
            matches!(err, RdbCopyError::StoredDiffers { .. }) && err.is_final(),
            "{err}"
        );
        assert!(err.to_string().contains("refused by S3"), "{err}");
        assert_eq!((part.num_calls(), last.num_calls(), abort.num_calls()), (1, 1, 1));
    }
}
