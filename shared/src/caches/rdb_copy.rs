//! The RDB copy of a cache's snapshot into the export bucket: which snapshot to copy, how ElastiCache is asked to
//! export it, which staged objects belong to which copy and when a copy is complete, the streaming verification
//! of a staged file, and the manifest written last.
//!
//! Owns: the copy rules (pure functions, unit-tested), the `CopySnapshot` adapter (tested with `aws-smithy-mocks`:
//! moto does not implement the export to S3), and reading an object from S3 through [`crate::caches::rdb::verify`].
//!
//! Never: deletes anything (the bucket policy forbids Lifeboat's roles every delete; staged files expire by the
//! bucket's lifecycle rule on [`RDB_STAGING_PREFIX`]), writes a manifest for a file that failed verification, or
//! copies a snapshot Lifeboat did not make.
//!
//! # How ElastiCache exports a snapshot (what this relies on)
//!
//! From the ElastiCache API reference (`CopySnapshot`) and the user guide ("Exporting a backup"), read for this:
//! - `CopySnapshot` with `TargetBucket` exports an existing snapshot to a bucket in the same Region.
//!   `TargetSnapshotName` names the objects: ElastiCache writes one `.rdb` file per node group (shard),
//!   `<TargetSnapshotName>-0001.rdb`, `-0002.rdb`, ..., at the bucket's root (the name takes no folder). A
//!   single-node file named `<TargetSnapshotName>.rdb` is accepted as shard 1 too, in case a Region names it so.
//!   The source snapshot's status is `exporting` while it runs.
//! - "ElastiCache does not permit overwriting a snapshot": a name already used in the bucket is refused
//!   (`The S3 bucket %s already contains an object with key %s`, surfaced as `InvalidParameterValue` or
//!   `SnapshotAlreadyExistsFault`). Lifeboat asks for the name its request record holds, so this refusal means
//!   "already requested" (a rerun), never an error.
//! - Access: the caller needs `elasticache:CopySnapshot` plus `s3:GetBucketLocation` and `s3:ListAllMyBuckets`;
//!   ElastiCache itself writes the objects. The guide's current method is a bucket policy for the service
//!   principal `<region>.elasticache-snapshot.amazonaws.com` (`s3:PutObject`, `s3:GetObject`, `s3:ListBucket`,
//!   `s3:GetBucketAcl`, `s3:ListMultipartUploadParts`, `s3:ListBucketMultipartUploads`); the older method, an
//!   ACL grant to ElastiCache's canonical user id, does not work on a bucket with ACLs disabled
//!   (`BucketOwnerEnforced`, as Lifeboat's is), so the template uses the policy, scoped to the staging prefix.
//!   Missing grants come back as "ElastiCache has not been granted READ/WRITE/READ_ACP permissions".
//! - Encryption: the exported objects are encrypted at rest; the guide names SSE-S3 and SSE-KMS buckets, and for a
//!   customer managed key the service principal must be allowed to use the key (the template's key policy admits
//!   it through S3 only). This was not exercised against AWS here; the move under `exports/` re-encrypts every
//!   file with the bucket's key whatever the staged object carried.
//! - Not supported by ElastiCache: clusters with data tiering, and buckets in another Region.
//!
//! # Binding staged files to Lifeboat's request
//!
//! Anyone in the account with `elasticache:CopySnapshot` can make ElastiCache stage any snapshot's data in the
//! bucket under any target name (the bucket policy admits the service, not the caller), so "already staged" is
//! never read as "Lifeboat's". Before it asks, Lifeboat writes a request record
//! ([`crate::bucket::layout::rdb_staging_request_key`], at a key derived from the snapshot, encrypted with the
//! bucket's key) naming the snapshot as ElastiCache describes it (name, ARN, creation time, cache) and the target
//! name; staged files are verified only under that name, only if the record matches the snapshot and only if each
//! file was written after the record ([`staged_by_request`]); files under the predictable name without a record,
//! or older than it, get a failure record and the alarm.
//!
//! Why the target name has a random part ([`unpredictable_staging_name`]): a record and a time window alone cannot
//! tell ElastiCache's write for Lifeboat's `CopySnapshot` from its write for someone else's made after the record
//! (same service principal, same bucket owner, no request id or source ARN on the object, and `CopySnapshot`'s
//! answer names no object). Someone who staged another cache's data under a predictable name between the record
//! and ElastiCache's own export would have it published (Lifeboat's request is then refused as "already
//! contains", read as already requested). With 128 random bits in the name, the only way to know it before
//! ElastiCache writes is to read the record (`s3:GetObject` on the bucket's root and `kms:Decrypt` with its key,
//! which already reads every copy) in the seconds between its write and the export; that window is what is
//! left, and it is closed to anyone who holds only `elasticache:CopySnapshot`. Records written before names had
//! a random part (the predictable name alone) are still honoured. Not exercised against AWS here: that
//! `CopySnapshot` takes a target name this long (about 100 characters for Lifeboat's longest snapshot names). A
//! serverless export takes no target name ([`serverless`]): there the record and time window are the binding, and
//! the residual is said there.
//!
//! A serverless cache's snapshot is exported by `ExportServerlessCacheSnapshot`, which takes no target name and
//! reports no shard count: where its files land and when they are complete is [`serverless`]'s (with what is
//! assumed there); from the staged files on, the copy is this module's, the same as a node-based one's.

use std::collections::BTreeMap;
use std::io::Read;

use aws_sdk_elasticache::error::ProvideErrorMetadata;
use aws_sdk_elasticache::operation::copy_snapshot::CopySnapshotError;
use chrono::{DateTime, Utc};

use crate::bucket::layout::{rdb_staging_name, RDB_STAGING_PREFIX, RDB_SUFFIX};
use crate::caches::elasticache::{Cache, CacheSnapshot};
use crate::caches::rdb::{RdbError, RdbSummary};
use crate::caches::records::{RdbCopyRequest, RdbManifest, RdbShard, FORMAT_VERSION};
use crate::core::error::Error;
use crate::rds::retention::Retained;

pub mod serverless;

/// Why a copy step failed. Each names what was wrong and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum RdbCopyError {
    #[error(transparent)]
    Aws(#[from] Error),
    #[error(
        "ElastiCache may not export to bucket {bucket}: {message}; the bucket policy must admit the service \
         principal <region>.elasticache-snapshot.amazonaws.com to {RDB_STAGING_PREFIX}* (see infra/template.yaml, \
         ExportBucketPolicy) and the export role needs elasticache:CopySnapshot, s3:GetBucketLocation and \
         s3:ListAllMyBuckets"
    )]
    BucketAccess { bucket: String, message: String },
    #[error(
        "ElastiCache may not export a serverless snapshot to bucket {bucket}: {message}; the bucket policy must admit \
         the service principal <region>.elasticache-snapshot.amazonaws.com to lifeboat-*.rdb (see infra/template.yaml, \
         ExportBucketPolicy, ElastiCacheExportsServerlessSnapshots) and the export role needs \
         elasticache:ExportServerlessCacheSnapshot"
    )]
    ServerlessBucketAccess { bucket: String, message: String },
    #[error("{key}: {source}")]
    Verify { key: String, source: RdbError },
    #[error("{key}: S3 says {expected} bytes but {read} were read: read it again, or re-export the snapshot")]
    SizeMismatch { key: String, expected: u64, read: u64 },
    #[error("the verifier's thread stopped before the end: {0}")]
    Join(String),
    #[error("{key} cannot be moved in parts: {why}; the staged file is kept, copy it by hand with `aws s3 cp`")]
    Parts { key: String, why: String },
    #[error(
        "{key}: S3's SHA-256 of the stored copy is {stored} (base64) but the verified file's is {verified} (hex): \
         the copy is not the file that was verified; it is not listed in a manifest"
    )]
    StoredDiffers {
        key: String,
        verified: String,
        stored: String,
    },
}

impl RdbCopyError {
    /// The file itself is bad (or cannot be moved as it is): recorded, alarmed, and never tried again. Anything
    /// else (a network error, a throttled call) is tried again by the next run.
    pub fn is_final(&self) -> bool {
        match self {
            Self::Verify { source, .. } => !matches!(source, RdbError::Io(_)),
            Self::Parts { .. } | Self::StoredDiffers { .. } => true,
            Self::Aws(_)
            | Self::BucketAccess { .. }
            | Self::ServerlessBucketAccess { .. }
            | Self::SizeMismatch { .. }
            | Self::Join(_) => false,
        }
    }
}

mod parts;
pub use parts::{composite_sha256, CopyPlan, PartHasher};

/// The most one `CopyObject` copies (5 GiB); larger files are copied in parts ([`CopyPlan`]).
pub const MAX_COPY_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The tag whose value picks an export's lifecycle rule; RDB copies carry `lifeboat-profile=rdb`.
pub const PROFILE_TAG: &str = "lifeboat-profile";

/// A snapshot Lifeboat may export, with what the manifest records of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportableSnapshot {
    pub name: String,
    pub cache: String,
    pub status: String,
    pub engine: String,
    pub engine_version: String,
    /// Node groups (shards): one staged file each.
    pub shards: u32,
    /// The snapshot's logical time (the schedule time Lifeboat tagged it with): names the copy's keys.
    pub time: DateTime<Utc>,
    /// The snapshot's ARN and creation time as ElastiCache describes them: what a staged copy is bound to.
    pub arn: String,
    pub created: Option<DateTime<Utc>>,
}

/// The statuses of a snapshot that can be (or is being) exported.
const EXPORTABLE: [&str; 2] = ["available", "exporting"];

/// The snapshot a cache's copy is made of: the newest (by logical time, then name) manual snapshot Lifeboat made
/// of it that is available or being exported. Whether it still needs a copy is [`next_step`]'s question.
pub fn choose<'a>(snapshots: &'a [CacheSnapshot], cache: &Cache) -> Option<&'a CacheSnapshot> {
    snapshots
        .iter()
        .filter(|s| s.cache == cache.id || s.tags.get(crate::core::tags::DATABASE) == Some(&cache.id))
        .filter(|s| s.owned() && !s.is_automated() && EXPORTABLE.contains(&s.status.as_str()))
        .max_by(|a, b| (a.logical_time(), &a.name).cmp(&(b.logical_time(), &b.name)))
}

/// The staged files of one copy by shard number, from the keys listed under its staging name:
/// `<name>-0001.rdb` is shard 1 (`<name>.rdb` too); any other key is not this copy's.
pub fn staged_shards<'a>(staging_name: &str, keys: impl IntoIterator<Item = &'a str>) -> BTreeMap<u32, String> {
    keys.into_iter()
        .filter_map(|key| {
            let rest = key.strip_prefix(staging_name)?.strip_suffix(RDB_SUFFIX)?;
            if rest.is_empty() {
                return Some((1, key.to_owned()));
            }
            let digits = rest.strip_prefix('-')?;
            if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, key.to_owned()))
        })
        .collect()
}

/// What the run does for one cache's chosen snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The copy has its manifest: nothing to do.
    Done,
    /// An earlier run found a file that failed verification: reported (and alarmed) again, not verified again.
    FailedEarlier,
    /// Every shard's file is staged: verify and move them, then write the manifest.
    Verify,
    /// Nothing is staged and ElastiCache is not exporting: ask it to export.
    Request,
    /// ElastiCache is exporting, or only some files are there yet.
    Waiting(String),
    /// The copy cannot be proven complete (a serverless snapshot reports no shard count): nothing is requested
    /// or verified, and the copy is reported failed with the reason, so its alarm fires.
    Refused(String),
}

/// What is known of one copy, read from ElastiCache and the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyState<'a> {
    pub snapshot_status: &'a str,
    pub shards: u32,
    pub manifest_exists: bool,
    pub failure_recorded: bool,
    pub staged: &'a BTreeMap<u32, String>,
}

/// The copy's next step. A copy is complete when exactly the files 1..=shards are staged (one per node group);
/// a file numbered past the snapshot's shards is reported rather than guessed at.
pub fn next_step(state: &CopyState) -> Step {
    if state.manifest_exists {
        return Step::Done;
    }
    if state.failure_recorded {
        return Step::FailedEarlier;
    }
    let want: Vec<u32> = (1..=state.shards.max(1)).collect();
    let have: Vec<u32> = state.staged.keys().copied().collect();
    if have == want {
        return Step::Verify;
    }
    if let Some(extra) = have.iter().find(|n| !want.contains(n)) {
        return Step::Waiting(format!(
            "a staged file for shard {extra} but the snapshot has {} shards: check the staged objects",
            want.len()
        ));
    }
    if state.snapshot_status == "exporting" {
        return Step::Waiting("ElastiCache is exporting the snapshot".into());
    }
    if have.is_empty() {
        return Step::Request;
    }
    Step::Waiting(format!("{} of {} files staged", have.len(), want.len()))
}

/// The manifest of a verified copy: one entry per shard, in shard order, with where each file now lives.
pub fn manifest(
    snapshot: &ExportableSnapshot,
    verified: &BTreeMap<u32, (String, RdbSummary)>,
    copied_at: DateTime<Utc>,
) -> RdbManifest {
    RdbManifest {
        format_version: FORMAT_VERSION,
        lifeboat_version: env!("CARGO_PKG_VERSION").to_owned(),
        cache: snapshot.cache.clone(),
        engine: snapshot.engine.clone(),
        engine_version: snapshot.engine_version.clone(),
        snapshot: snapshot.name.clone(),
        snapshot_time: snapshot.time,
        copied_at,
        shards: verified
            .iter()
            .map(|(shard, (key, s))| RdbShard {
                shard: *shard,
                key: key.clone(),
                size: s.bytes,
                sha256: s.sha256.clone(),
                rdb_version: s.version,
                server_version: s.server_version.clone(),
                keys_per_db: s.databases.iter().map(|(db, k)| (*db, k.keys)).collect(),
                checksummed: s.checksummed,
            })
            .collect(),
    }
}

/// Shards of a snapshot as ElastiCache describes it: its node groups, else the distinct node groups of its node
/// snapshots, else one (a single node).
fn shards_of(s: &aws_sdk_elasticache::types::Snapshot) -> u32 {
    if let Some(n) = s
        .num_node_groups()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    let groups: std::collections::BTreeSet<&str> =
        s.node_snapshots().iter().filter_map(|n| n.node_group_id()).collect();
    u32::try_from(groups.len()).unwrap_or(1).max(1)
}

/// The chosen snapshot with its engine and shard count (one `DescribeSnapshots` by name).
pub async fn describe(
    client: &aws_sdk_elasticache::Client,
    chosen: &CacheSnapshot,
    cache: &Cache,
) -> Result<ExportableSnapshot, Error> {
    let out = client
        .describe_snapshots()
        .snapshot_name(&chosen.name)
        .send()
        .await
        .map_err(|e| Error::aws("DescribeSnapshots", e))?;
    let s = out.snapshots().first();
    Ok(ExportableSnapshot {
        name: chosen.name.clone(),
        cache: cache.id.clone(),
        status: chosen.status.clone(),
        engine: s.and_then(|s| s.engine()).unwrap_or(&cache.engine).to_owned(),
        engine_version: s.and_then(|s| s.engine_version()).unwrap_or_default().to_owned(),
        shards: s.map_or(1, shards_of),
        time: chosen.logical_time(),
        arn: s.and_then(|s| s.arn()).unwrap_or(&chosen.arn).to_owned(),
        created: s.and_then(crate::caches::elasticache::created_of).or(chosen.created),
    })
}

/// The request record written before asking ElastiCache for the export of `snapshot`.
pub fn request_record(snapshot: &ExportableSnapshot, staging_name: &str, now: DateTime<Utc>) -> RdbCopyRequest {
    RdbCopyRequest {
        format_version: FORMAT_VERSION,
        snapshot: snapshot.name.clone(),
        snapshot_arn: snapshot.arn.clone(),
        snapshot_created: snapshot.created,
        cache: snapshot.cache.clone(),
        staging_name: staging_name.to_owned(),
        requested_at: now,
    }
}

/// Whether staged files are the export Lifeboat asked for: its request record (`None` when there is none) must
/// name this snapshot as ElastiCache describes it now (name, ARN, creation time, cache) and this staging name,
/// and every staged file must have been written (S3's `LastModified`) no earlier than the record (S3's
/// `LastModified` of it, the same clock). Anyone with `elasticache:CopySnapshot` can stage files under the
/// predictable name; files staged before Lifeboat asked, or without its asking, are refused. `Err` says why.
pub fn staged_by_request(
    request: Option<(&RdbCopyRequest, DateTime<Utc>)>,
    snapshot: &ExportableSnapshot,
    staging_name: &str,
    staged: &[(String, Option<DateTime<Utc>>)],
) -> Result<(), String> {
    let Some((r, recorded)) = request else {
        return Err(format!(
            "files are staged under {staging_name} but Lifeboat never asked for that export (no request record): \
             staged by someone else; not verified, not published"
        ));
    };
    let facts = (
        r.snapshot.as_str(),
        r.snapshot_arn.as_str(),
        r.snapshot_created,
        r.cache.as_str(),
        r.staging_name.as_str(),
    );
    let now = (
        snapshot.name.as_str(),
        snapshot.arn.as_str(),
        snapshot.created,
        snapshot.cache.as_str(),
        staging_name,
    );
    if facts != now {
        return Err(format!(
            "the request record under {staging_name} names {facts:?} but the snapshot is {now:?}: not the export \
             Lifeboat asked for"
        ));
    }
    for (key, modified) in staged {
        match modified {
            Some(at) if at.timestamp() >= recorded.timestamp() => {}
            Some(at) => {
                return Err(format!(
                    "{key} was written at {at}, before Lifeboat asked for the export at {recorded}: staged by \
                     someone else"
                ))
            }
            None => {
                return Err(format!(
                    "{key} has no write time: cannot be bound to Lifeboat's request"
                ))
            }
        }
    }
    Ok(())
}

/// What asking ElastiCache for an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    Started,
    /// The target name is taken (a rerun, or an export under way): already requested.
    AlreadyRequested(String),
}

/// The staging name a new request asks for: the snapshot's predictable name ([`rdb_staging_name`]) followed by
/// 128 bits from the operating system's random source, so that nobody can stage files under it before
/// ElastiCache does without first reading Lifeboat's request record (see the module's doc).
pub fn unpredictable_staging_name(snapshot: &str) -> std::io::Result<String> {
    let mut nonce = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut nonce)?;
    Ok(staging_name_with(snapshot, &nonce))
}

/// `<rdb_staging_name(snapshot)>-<nonce as lowercase hex>` (letters, digits and hyphens only, as snapshot names
/// must be).
pub fn staging_name_with(snapshot: &str, nonce: &[u8]) -> String {
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", rdb_staging_name(snapshot))
}

/// The staging name a copy's files are looked for under: its request record's, when there is one (the name
/// Lifeboat asked ElastiCache for), else the predictable name (so files staged there by someone else are still
/// seen, and refused by [`staged_by_request`]). A record naming anything but the predictable name or the
/// predictable name with a random suffix ([`staging_name_with`]) is refused: Lifeboat never asks for it.
pub fn staging_of(request: Option<&RdbCopyRequest>, snapshot: &str) -> Result<String, String> {
    let predictable = rdb_staging_name(snapshot);
    let Some(r) = request else {
        return Ok(predictable);
    };
    let suffix = r.staging_name.strip_prefix(&predictable);
    let ok = match suffix {
        Some("") => true,
        Some(rest) => rest.strip_prefix('-').is_some_and(|hex| {
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }),
        None => false,
    };
    if ok {
        Ok(r.staging_name.clone())
    } else {
        Err(format!(
            "the request record for {snapshot} names the staging name {:?}, which Lifeboat never asks for",
            r.staging_name
        ))
    }
}

/// The whole text of an export request's failure, and whether it says ElastiCache may not write the bucket. The
/// modeled faults carry their text in their own field, not in the error metadata: the whole chain is read.
pub(crate) fn export_refusal<E>(err: &E) -> (String, bool)
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let message = crate::core::error::aws_error_message(err);
    let denied = err.code() == Some("AccessDenied")
        || message.contains("not been granted")
        || message.contains("sufficient permissions");
    (message, denied)
}

/// Asks ElastiCache to export `snapshot` into `bucket` under `staging_name` (`CopySnapshot` with `TargetBucket`;
/// the name is the one recorded in the copy's request record).
pub async fn request_export(
    client: &aws_sdk_elasticache::Client,
    snapshot: &str,
    staging_name: &str,
    bucket: &str,
) -> Result<Requested, RdbCopyError> {
    let sent = client
        .copy_snapshot()
        .source_snapshot_name(snapshot)
        .target_snapshot_name(staging_name)
        .target_bucket(bucket)
        .send()
        .await;
    let err = match sent {
        Ok(_) => return Ok(Requested::Started),
        Err(e) => e,
    };
    let (message, denied) = export_refusal(&err);
    match err.as_service_error() {
        Some(CopySnapshotError::SnapshotAlreadyExistsFault(_)) => Ok(Requested::AlreadyRequested(message)),
        Some(CopySnapshotError::InvalidParameterValueException(_)) if message.contains("already contains") => {
            Ok(Requested::AlreadyRequested(message))
        }
        _ if denied => Err(RdbCopyError::BucketAccess {
            bucket: bucket.to_owned(),
            message,
        }),
        _ => Err(Error::aws("CopySnapshot", err).into()),
    }
}

/// The SHA-256 S3 reports for an object, as base64 (what `x-amz-checksum-sha256` carries), from a hex digest.
pub fn sha256_base64(hex: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    bytes.filter(|b| b.len() == 32).map(aws_smithy_types::base64::encode)
}

/// Where a verified file goes and how it is stored.
#[derive(Debug, Clone, Copy)]
pub struct Move<'a> {
    pub bucket: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub size: u64,
    /// The verifier's SHA-256 of the staged file (hex).
    pub sha256: &'a str,
    pub kms_key_id: Option<&'a str>,
    /// How the file is moved: at once, or in parts of the plan's size.
    pub plan: CopyPlan,
    /// The SHA-256 of each of the plan's parts, from the verifier's pass (empty for a file moved at once).
    pub parts: &'a [[u8; 32]],
}

/// Copies a verified staged file to its key under `exports/` server-side: SSE-KMS with the bucket's key, tagged
/// `lifeboat-profile=rdb`, only if the key is free (`If-None-Match: *`), with S3 computing the copy's SHA-256,
/// which must equal the verifier's. A key already taken (a run that stopped before its manifest) is accepted
/// only if S3's SHA-256 of it is the verified one. The staged file stays (lifecycle expires it). A file past
/// 5 GiB is copied in parts, with the same proof (see `parts`).
pub async fn move_verified(s3: &aws_sdk_s3::Client, m: Move<'_>) -> Result<(), RdbCopyError> {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ServerSideEncryption, TaggingDirective};
    if m.plan.in_parts(m.size) {
        return parts::move_in_parts(s3, m).await;
    }
    let sent = s3
        .copy_object()
        .bucket(m.bucket)
        .key(m.to)
        .copy_source(format!("{}/{}", m.bucket, m.from))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .set_ssekms_key_id(m.kms_key_id.map(str::to_owned))
        .tagging_directive(TaggingDirective::Replace)
        .tagging(format!("{PROFILE_TAG}={}", crate::bucket::layout::RDB_PROFILE))
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .if_none_match("*")
        .send()
        .await;
    let stored = match sent {
        Ok(out) => out
            .copy_object_result()
            .and_then(|r| r.checksum_sha256())
            .map(str::to_owned),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => stored_sha256(s3, m).await?,
        Err(e) => return Err(Error::aws("CopyObject", e).into()),
    };
    let verified = sha256_base64(m.sha256);
    match (stored, verified) {
        (Some(stored), Some(verified)) if stored == verified => Ok(()),
        (stored, _) => Err(RdbCopyError::StoredDiffers {
            key: m.to.to_owned(),
            verified: m.sha256.to_owned(),
            stored: stored.unwrap_or_else(|| "missing".to_owned()),
        }),
    }
}

/// S3's SHA-256 of an object already at the destination (`GetObjectAttributes`, no read of its bytes).
async fn stored_sha256(s3: &aws_sdk_s3::Client, m: Move<'_>) -> Result<Option<String>, RdbCopyError> {
    let out = s3
        .get_object_attributes()
        .bucket(m.bucket)
        .key(m.to)
        .object_attributes(aws_sdk_s3::types::ObjectAttributes::Checksum)
        .send()
        .await
        .map_err(|e| Error::aws("GetObjectAttributes", e))?;
    Ok(out.checksum().and_then(|c| c.checksum_sha256()).map(str::to_owned))
}

/// Reads a channel of chunks as one stream of bytes; an error sent on it ends the stream with that error.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk?;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A staged file that passed verification, with the SHA-256 of each of its parts (when it is moved in parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedFile {
    pub summary: RdbSummary,
    pub plan: CopyPlan,
    pub parts: Vec<[u8; 32]>,
}

/// Streams `key` from S3 through [`crate::caches::rdb::verify`] once: the body's chunks go through a channel of a few
/// chunks to the verifier on a blocking thread, so memory stays flat whatever the file's size. The bytes read
/// must be the object's size. A file moved in parts (`plan` of its size, unless given) has its parts hashed in
/// the same pass.
pub async fn verify_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    plan: Option<CopyPlan>,
) -> Result<VerifiedFile, RdbCopyError> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| Error::aws("GetObject", e))?;
    let expected = out.content_length().and_then(|n| u64::try_from(n).ok());
    let plan = plan.unwrap_or_else(|| CopyPlan::for_size(expected.unwrap_or(0)));
    let mut hasher = plan
        .in_parts(expected.unwrap_or(0))
        .then(|| PartHasher::new(plan.part_bytes));
    let mut body = out.body;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let verifier = tokio::task::spawn_blocking(move || {
        let reader = ChunkReader {
            rx,
            current: Vec::new(),
            at: 0,
        };
        crate::caches::rdb::verify_sized(reader, expected)
    });
    while let Some(item) = body.next().await {
        let item = item
            .map(|c| c.to_vec())
            .map_err(|e| std::io::Error::other(e.to_string()));
        if let (Some(h), Ok(chunk)) = (hasher.as_mut(), &item) {
            h.update(chunk);
        }
        let failed = item.is_err();
        // The verifier stops reading once it fails: nothing more to send then.
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let verdict = verifier.await.map_err(|e| RdbCopyError::Join(e.to_string()))?;
    let summary = verdict.map_err(|source| RdbCopyError::Verify {
        key: key.to_owned(),
        source,
    })?;
    match expected {
        Some(expected) if expected != summary.bytes => Err(RdbCopyError::SizeMismatch {
            key: key.to_owned(),
            expected,
            read: summary.bytes,
        }),
        _ => Ok(VerifiedFile {
            summary,
            plan,
            parts: hasher.map(PartHasher::finish).unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::caches::elasticache::CacheKind;
    use chrono::TimeZone;

    fn cache(id: &str) -> Cache {
        Cache {
            id: id.into(),
            kind: CacheKind::ReplicationGroup,
            arn: String::new(),
            engine: "valkey".into(),
            status: "available".into(),
            tags: BTreeMap::new(),
            cluster_mode: false,
            members: Vec::new(),
            at_rest_encryption: true,
            transit_encryption: true,
            snapshot_retention_days: 1,
            replicated: true,
        }
    }

    fn snap(name: &str, of: &str, status: &str, hour: u32, owned: bool) -> CacheSnapshot {
        let mut tags = BTreeMap::new();
        if owned {
            tags.insert(crate::core::tags::MANAGED.to_owned(), "true".to_owned());
        }
        let at = Utc.with_ymd_and_hms(2026, 11, 29, hour, 0, 0).unwrap();
        tags.insert(crate::core::tags::CREATED_AT.to_owned(), at.to_rfc3339());
        CacheSnapshot {
            name: name.into(),
            arn: String::new(),
            cache: of.into(),
            status: status.into(),
            source: "manual".into(),
            tags,
            created: None,
            serverless: false,
        }
    }

    #[test]
    fn the_newest_available_lifeboat_snapshot_of_the_cache_is_chosen() {
        let snaps = [
            snap("lifeboat-sessions-0100", "sessions", "available", 1, true),
            snap("lifeboat-sessions-0200", "sessions", "exporting", 2, true),
            snap("lifeboat-sessions-0300", "sessions", "creating", 3, true),
            snap("theirs", "sessions", "available", 4, false),
            snap("lifeboat-jobs-0500", "jobs", "available", 5, true),
        ];
        let chosen = choose(&snaps, &cache("sessions")).unwrap();
        assert_eq!(
            chosen.name, "lifeboat-sessions-0200",
            "creating and foreign ones are passed over"
        );
        let mut automated = snap("lifeboat-x-0900", "x", "available", 9, true);
        automated.source = "automated".into();
        assert_eq!(choose(&[automated], &cache("x")), None);
        // A snapshot taken of a replica node names the node; Lifeboat's tag names the cache.
        let mut of_node = snap("lifeboat-sessions-0600", "sessions-002", "available", 6, true);
        of_node
            .tags
            .insert(crate::core::tags::DATABASE.to_owned(), "sessions".to_owned());
        let all = [snaps[0].clone(), of_node];
        assert_eq!(choose(&all, &cache("sessions")).unwrap().name, "lifeboat-sessions-0600");
    }

    #[test]
    fn staged_files_belong_to_their_copy_by_exact_name() {
        let name = rdb_staging_name("lifeboat-a-20261129-0300");
        assert_eq!(name, "rdb-staging-lifeboat-a-20261129-0300");
        let keys = [
            format!("{name}-0001.rdb"),
            format!("{name}-0002.rdb"),
            format!("{name}-0002.rdb.tmp"),
            format!("{name}0-0001.rdb"),
            format!("{name}-01.rdb"),
            format!("{name}.failed.json"),
            "exports/a/rdb/x-0001.rdb".to_owned(),
        ];
        let staged = staged_shards(&name, keys.iter().map(String::as_str));
        assert_eq!(
            staged,
            BTreeMap::from([(1, format!("{name}-0001.rdb")), (2, format!("{name}-0002.rdb"))])
        );
        let single = [format!("{name}.rdb")];
        assert_eq!(
            staged_shards(&name, single.iter().map(String::as_str)),
            BTreeMap::from([(1, format!("{name}.rdb"))])
        );
    }

    #[test]
    fn a_copy_is_complete_with_exactly_one_file_per_shard() {
        let files = |ns: &[u32]| -> BTreeMap<u32, String> { ns.iter().map(|n| (*n, format!("k{n}"))).collect() };
        let step = |status: &str, shards: u32, manifest: bool, failed: bool, staged: &[u32]| {
            next_step(&CopyState {
                snapshot_status: status,
                shards,
                manifest_exists: manifest,
                failure_recorded: failed,
                staged: &files(staged),
            })
        };
        assert_eq!(step("available", 3, true, true, &[]), Step::Done, "a manifest ends it");
        assert_eq!(step("available", 3, false, true, &[1, 2, 3]), Step::FailedEarlier);
        assert_eq!(step("available", 3, false, false, &[1, 2, 3]), Step::Verify);
        assert_eq!(step("exporting", 1, false, false, &[1]), Step::Verify);
        assert_eq!(
            step("available", 0, false, false, &[1]),
            Step::Verify,
            "no node groups: one file"
        );
        assert_eq!(step("available", 3, false, false, &[]), Step::Request);
        assert_eq!(
            step("exporting", 3, false, false, &[]),
            Step::Waiting("ElastiCache is exporting the snapshot".into())
        );
        assert_eq!(
            step("available", 3, false, false, &[1, 3]),
            Step::Waiting("2 of 3 files staged".into())
        );
        let Step::Waiting(why) = step("available", 2, false, false, &[1, 2, 3]) else {
            panic!("an extra file is not verified")
        };
        assert!(why.contains("shard 3") && why.contains("2 shards"), "{why}");
    }

    #[test]
    fn the_manifest_lists_every_shard_with_its_counts_and_hash() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let snapshot = ExportableSnapshot {
            name: "lifeboat-a-20261129-0300".into(),
            cache: "a".into(),
            status: "available".into(),
            engine: "valkey".into(),
            engine_version: "8.0.1".into(),
            shards: 2,
            time: at,
            arn: String::new(),
            created: None,
        };
        let summary = |keys: u64| RdbSummary {
            version: 11,
            server_version: Some("7.2.4".into()),
            databases: BTreeMap::from([(0, crate::caches::rdb::DbKeys { keys, expires: 1 })]),
            bytes: 100 + keys,
            sha256: format!("{keys:064}"),
            checksummed: true,
        };
        let verified = BTreeMap::from([(2, ("k2".to_owned(), summary(7))), (1, ("k1".to_owned(), summary(5)))]);
        let m = manifest(&snapshot, &verified, at);
        assert_eq!(m.shards.iter().map(|s| s.shard).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((m.shards[0].key.as_str(), m.shards[0].size), ("k1", 105));
        assert_eq!(m.total_keys(), 12);
        assert_eq!(
            (m.snapshot.as_str(), m.snapshot_time, m.engine_version.as_str()),
            (snapshot.name.as_str(), at, "8.0.1")
        );
    }

    /// Staged files are the copy only when Lifeboat's request record names this snapshot as ElastiCache
    /// describes it and every file was written after the record.
    #[test]
    fn staged_files_are_bound_to_lifeboats_request() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let snapshot = ExportableSnapshot {
            name: "lifeboat-a-20261129-0300".into(),
            cache: "a".into(),
            status: "available".into(),
            engine: "valkey".into(),
            engine_version: "8.0".into(),
            shards: 1,
            time: at,
            arn: "arn:aws:elasticache:us-east-1:1:snapshot:lifeboat-a-20261129-0300".into(),
            created: Some(at),
        };
        let staging = rdb_staging_name(&snapshot.name);
        let asked = at + chrono::Duration::minutes(5);
        let record = request_record(&snapshot, &staging, asked);
        let file = |secs: i64| {
            vec![(
                format!("{staging}-0001.rdb"),
                Some(asked + chrono::Duration::seconds(secs)),
            )]
        };
        assert_eq!(
            staged_by_request(Some((&record, asked)), &snapshot, &staging, &file(0)),
            Ok(())
        );
        assert_eq!(
            staged_by_request(Some((&record, asked)), &snapshot, &staging, &file(60)),
            Ok(())
        );
        let early = staged_by_request(Some((&record, asked)), &snapshot, &staging, &file(-1)).unwrap_err();
        assert!(early.contains("before Lifeboat asked"), "{early}");
        let none = staged_by_request(None, &snapshot, &staging, &file(0)).unwrap_err();
        assert!(none.contains("never asked"), "{none}");
        let undated = [(format!("{staging}-0001.rdb"), None)];
        assert!(staged_by_request(Some((&record, asked)), &snapshot, &staging, &undated).is_err());
        // A snapshot deleted and made again under the same name is another snapshot.
        let remade = ExportableSnapshot {
            created: Some(at + chrono::Duration::hours(1)),
            ..snapshot.clone()
        };
        let err = staged_by_request(Some((&record, asked)), &remade, &staging, &file(0)).unwrap_err();
        assert!(err.contains("not the export Lifeboat asked for"), "{err}");
        let other_cache = RdbCopyRequest {
            cache: "b".into(),
            ..record.clone()
        };
        assert!(staged_by_request(Some((&other_cache, asked)), &snapshot, &staging, &file(0)).is_err());
    }

    /// A new request's name cannot be guessed from the snapshot's (two draws differ, each with 128 random bits),
    /// and a copy's files are looked for under the name its record holds, which must be one Lifeboat asks for.
    #[test]
    fn a_requests_staging_name_is_unpredictable_and_only_lifeboats_names_are_honoured() {
        let snapshot = "lifeboat-a-20261129-0300";
        let predictable = rdb_staging_name(snapshot);
        let one = unpredictable_staging_name(snapshot).unwrap();
        let two = unpredictable_staging_name(snapshot).unwrap();
        assert_ne!(one, two);
        let suffix = one.strip_prefix(&format!("{predictable}-")).unwrap();
        assert_eq!(suffix.len(), 32, "{one}");
        assert!(one.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{one}");
        assert_eq!(staging_name_with(snapshot, &[0xab; 2]), format!("{predictable}-abab"));

        let at = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let snap = ExportableSnapshot {
            name: snapshot.into(),
            cache: "a".into(),
            status: "available".into(),
            engine: "valkey".into(),
            engine_version: "8.0".into(),
            shards: 1,
            time: at,
            arn: "arn".into(),
            created: Some(at),
        };
        let record = |name: &str| request_record(&snap, name, at);
        assert_eq!(staging_of(None, snapshot), Ok(predictable.clone()));
        assert_eq!(staging_of(Some(&record(&one)), snapshot), Ok(one.clone()));
        assert_eq!(
            staging_of(Some(&record(&predictable)), snapshot),
            Ok(predictable.clone()),
            "records from before the random part are honoured"
        );
        for foreign in [
            "rdb-staging-lifeboat-b-20261129-0300".to_owned(),
            format!("{predictable}-0001"),
            format!("{predictable}-{}", "A".repeat(32)),
            format!("{predictable}x"),
        ] {
            let err = staging_of(Some(&record(&foreign)), snapshot).unwrap_err();
            assert!(err.contains("never asks for"), "{foreign}: {err}");
        }
    }

    #[test]
    fn hashes_compare_as_s3_writes_them_and_bad_files_are_final() {
        // SHA-256 of the empty string, hex and base64.
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            sha256_base64(hex).as_deref(),
            Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        );
        assert_eq!(sha256_base64("abc"), None);
        let corrupt = RdbCopyError::Verify {
            key: "k".into(),
            source: RdbError::Checksum { stored: 1, computed: 2 },
        };
        let network = RdbCopyError::Verify {
            key: "k".into(),
            source: RdbError::Io(std::io::Error::other("reset")),
        };
        assert!(corrupt.is_final() && !network.is_final());
    }

    mod moves {
        use super::*;
        use aws_sdk_s3::operation::copy_object::CopyObjectOutput;
        use aws_sdk_s3::operation::get_object_attributes::GetObjectAttributesOutput;
        use aws_sdk_s3::types::{Checksum, CopyObjectResult};
        use aws_sdk_s3::Client;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        const EMPTY_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        const EMPTY_B64: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        const PRECONDITION_FAILED: &str = "<Error><Code>PreconditionFailed</Code><Message>At least one of the \
            pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition></Error>";

        fn copied(sha: &'static str) -> impl Fn() -> CopyObjectOutput {
            move || {
                CopyObjectOutput::builder()
                    .copy_object_result(CopyObjectResult::builder().checksum_sha256(sha).build())
                    .build()
            }
        }

        /// The copy asks for SSE-KMS, the rdb tag, S3's SHA-256 and a free key; S3's hash must be the verified
        /// one; a taken key is accepted only with the verified hash; a file past 5 GiB goes in parts, and never
        /// with parts it did not hash.
        #[tokio::test]
        async fn a_move_is_checked_against_the_hash_s3_computes() {
            let good = mock!(Client::copy_object)
                .match_requests(|r| {
                    r.copy_source() == Some("b/rdb-staging-x-0001.rdb")
                        && r.if_none_match() == Some("*")
                        && r.ssekms_key_id() == Some("key")
                        && r.tagging() == Some("lifeboat-profile=rdb")
                        && r.checksum_algorithm() == Some(&aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
                })
                .then_output(copied(EMPTY_B64));
            let differs = mock!(Client::copy_object).then_output(copied("AAAA"));
            let taken = mock!(Client::copy_object)
                .sequence()
                .http_status(412, Some(PRECONDITION_FAILED.into()))
                .build();
            let attributes = mock!(Client::get_object_attributes)
                .match_requests(|r| r.key() == Some("exports/x/rdb/x-0001.rdb"))
                .then_output(|| {
                    GetObjectAttributesOutput::builder()
                        .checksum(Checksum::builder().checksum_sha256(EMPTY_B64).build())
                        .build()
                });
            let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&good, &differs, &taken, &attributes]);
            let m = Move {
                bucket: "b",
                from: "rdb-staging-x-0001.rdb",
                to: "exports/x/rdb/x-0001.rdb",
                size: 10,
                sha256: EMPTY_HEX,
                kms_key_id: Some("key"),
                plan: CopyPlan::for_size(10),
                parts: &[],
            };
            move_verified(&s3, m).await.unwrap();
            let err = move_verified(&s3, m).await.unwrap_err();
            assert!(
                matches!(err, RdbCopyError::StoredDiffers { .. }) && err.is_final(),
                "{err}"
            );
            move_verified(&s3, m).await.unwrap();
            assert_eq!(attributes.num_calls(), 1);
            let big = Move {
                size: MAX_COPY_BYTES + 1,
                plan: CopyPlan::for_size(MAX_COPY_BYTES + 1),
                ..m
            };
            let err = move_verified(&s3, big).await.unwrap_err();
            assert!(
                err.to_string().contains("11 parts planned but 0") && err.is_final(),
                "{err}"
            );
        }
    }

    mod export_requests {
        use super::*;
        use aws_sdk_elasticache::types::error::{InvalidParameterValueException, SnapshotAlreadyExistsFault};
        use aws_sdk_elasticache::Client;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};

        /// The request names the source, the deterministic staging name and the bucket; a refusal because the
        /// name is taken (a rerun) is "already requested"; ElastiCache's missing grant and the caller's
        /// AccessDenied both become an error naming the bucket policy.
        #[tokio::test]
        async fn export_requests_are_idempotent_and_access_errors_name_the_bucket_policy() {
            let started = mock!(Client::copy_snapshot)
                .match_requests(|r| {
                    r.source_snapshot_name() == Some("lifeboat-a-20261129-0300")
                        && r.target_snapshot_name() == Some("rdb-staging-lifeboat-a-20261129-0300")
                        && r.target_bucket() == Some("backups")
                })
                .then_output(|| aws_sdk_elasticache::operation::copy_snapshot::CopySnapshotOutput::builder().build());
            let exists = mock!(Client::copy_snapshot).then_error(|| {
                CopySnapshotError::InvalidParameterValueException(
                    InvalidParameterValueException::builder()
                        .message("The S3 bucket backups already contains an object with key rdb-staging-x-0001.rdb.")
                        .build(),
                )
            });
            let exists_fault = mock!(Client::copy_snapshot).then_error(|| {
                CopySnapshotError::SnapshotAlreadyExistsFault(SnapshotAlreadyExistsFault::builder().build())
            });
            let not_granted = mock!(Client::copy_snapshot).then_error(|| {
                CopySnapshotError::InvalidParameterValueException(
                    InvalidParameterValueException::builder()
                        .message("ElastiCache has not been granted WRITE permissions backups on the S3 Bucket.")
                        .build(),
                )
            });
            let denied = mock!(Client::copy_snapshot).then_error(|| {
                CopySnapshotError::generic(
                    aws_sdk_elasticache::error::ErrorMetadata::builder()
                        .code("AccessDenied")
                        .message("User is not authorized to perform: elasticache:CopySnapshot")
                        .build(),
                )
            });
            let other = mock!(Client::copy_snapshot).then_error(|| {
                CopySnapshotError::InvalidParameterValueException(
                    InvalidParameterValueException::builder()
                        .message("The S3 bucket backups is outside of the region.")
                        .build(),
                )
            });
            let client = mock_client!(
                aws_sdk_elasticache,
                RuleMode::Sequential,
                [&started, &exists, &exists_fault, &not_granted, &denied, &other]
            );
            let name = "lifeboat-a-20261129-0300";
            assert_eq!(
                request_export(&client, name, &rdb_staging_name(name), "backups")
                    .await
                    .unwrap(),
                Requested::Started
            );
            for _ in 0..2 {
                let again = request_export(&client, name, &rdb_staging_name(name), "backups")
                    .await
                    .unwrap();
                assert!(matches!(again, Requested::AlreadyRequested(_)), "{again:?}");
            }
            for expected in ["not been granted WRITE", "not authorized"] {
                let err = request_export(&client, name, &rdb_staging_name(name), "backups")
                    .await
                    .unwrap_err();
                let text = err.to_string();
                assert!(matches!(err, RdbCopyError::BucketAccess { .. }), "{text}");
                assert!(
                    text.contains(expected) && text.contains("bucket backups") && text.contains("bucket policy"),
                    "{text}"
                );
            }
            let err = request_export(&client, name, &rdb_staging_name(name), "backups")
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("CopySnapshot failed") && err.contains("outside of the region"),
                "{err}"
            );
        }
    }
}
