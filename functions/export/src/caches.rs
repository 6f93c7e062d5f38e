//! The `copy-caches` action: for each selected cache, its newest Lifeboat snapshot exported by ElastiCache into
//! the bucket's staging prefix, each shard's file verified by streaming it through the RDB verifier, moved under
//! `exports/_caches/<cache>/rdb/...` server-side, and the manifest written last.
//!
//! Lives in `export` because this function owns `exports/` and the bucket (its role writes there, its key
//! encrypts there); caches are chosen by the same selector as the snapshot function's. The rules (which snapshot,
//! which staged files, when complete, what the manifest says) are `lifeboat::caches::rdb_copy`'s; this translates.
//!
//! Serverless caches (with `LIFEBOAT_SERVERLESS_CACHES=true`) are copied too: their snapshot is exported by
//! `ExportServerlessCacheSnapshot` under its own name (`lifeboat::caches::rdb_copy::serverless` says where and what is
//! assumed), then verified, moved and described exactly as a node-based cache's.
//!
//! Every run has a deadline: caches are stepped `CONCURRENT_CACHES` (two) at a time (so one cache with a large
//! file does not hold up every cache after it), and a step still running [`DEADLINE_MARGIN`] before the
//! invocation's deadline is stopped there (nothing is moved and no manifest is written before every file passed, so
//! a stopped verify leaves nothing half-written and the staged files for the next run, which verifies again; a stop
//! while moving leaves moved files without a manifest, accepted next time only with the verified SHA-256), reported
//! as `deadline`, and the caches not started by then as `not-reached`; both publish `RdbCopyError` and fail the
//! invocation, with the metrics published first.
//!
//! The export is requested under a name with a random part, recorded in the request record before asking, and
//! staged files are looked for under the recorded name only (`lifeboat::caches::rdb_copy`'s "Binding staged files
//! to Lifeboat's request" says why).
//!
//! A plan's `rdb_copies` rule says when a copy is *requested*; ElastiCache's export then takes minutes, and the
//! snapshot function makes a newer snapshot before the rule is due again. So the plan tick runs a
//! [`Pass::FinishStarted`] over its plans' caches at every tick the rule is not due: it takes only the steps of a
//! copy already requested (wait, verify, move, manifest) and never asks for a new one. Without it a copy would
//! only be verified at the rule's next due time, when the newest snapshot, and so the copy to make, has moved on.
//!
//! Each step is idempotent: a copy with a manifest is done; the export request's name is recorded before asking
//! (a rerun reads it and asks for the same thing); a file that failed verification gets a failure record next to
//! it, is reported and alarmed on every run while its snapshot is the newest, and is never verified again.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::stream::{self, StreamExt};

use aws_sdk_cloudwatch::types::StandardUnit;
use chrono::Utc;
use lifeboat::bucket::layout::{
    rdb_keys, rdb_staging_failure_key, rdb_staging_name, rdb_staging_request_key, RdbKeys, RDB_PROFILE,
};
use lifeboat::caches::elasticache::{self, Cache, CacheSnapshot};
use lifeboat::caches::rdb_copy::{
    self, CopyState, ExportableSnapshot, Move, RdbCopyError, Requested, Step, VerifiedFile,
};
use lifeboat::caches::records::RdbCopyRequest;
use lifeboat::core::error::Error;
use lifeboat::core::metrics::{self, Metrics};
use lifeboat::rds::selection::Selector;
use serde::Serialize;

use crate::deps::Deps;
use crate::s3::{self, Written};
use lifeboat::postgres::export::DEADLINE_MARGIN;

/// How many caches one run steps at once.
const CONCURRENT_CACHES: usize = 2;

/// Which steps a run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Every step, from asking ElastiCache for the export to the manifest.
    Every,
    /// Only the steps of a copy already requested; a cache with none in progress is left out of the summary.
    FinishStarted,
}

/// What one run did for one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyOutcome {
    /// ElastiCache was asked to export the snapshot now.
    Requested,
    /// An export is under way (requested earlier, or files still arriving).
    Waiting,
    /// Every file verified and moved, the manifest written by this run.
    Verified,
    /// The copy already has its manifest.
    AlreadyCopied,
    /// A file failed verification in this run: no manifest.
    Failed,
    /// A file failed verification in an earlier run (its failure record says which): no manifest.
    FailedEarlier,
    /// A step could not be done now (an AWS error); the next run tries again.
    Error,
    /// The cache has no available Lifeboat snapshot yet.
    NoSnapshot,
    /// The step was stopped before the invocation's deadline; nothing of it was moved or written.
    Deadline,
    /// The run's deadline came before this cache's turn.
    NotReached,
    /// A [`Pass::FinishStarted`] found no copy in progress (none requested, or already copied): nothing to do.
    NothingStarted,
}

/// A staged file that failed, by shard, with the verifier's (or the move's) words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileFailure {
    pub shard: u32,
    pub key: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheCopyReport {
    pub cache: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub outcome: CopyOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_key: Option<String>,
    /// Keys per database over every shard (a verified copy only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub keys_per_db: BTreeMap<u64, u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FileFailure>,
}

impl CacheCopyReport {
    fn new(cache: &str, snapshot: Option<&str>, outcome: CopyOutcome) -> Self {
        Self {
            cache: cache.to_owned(),
            snapshot: snapshot.map(str::to_owned),
            outcome,
            detail: None,
            manifest_key: None,
            keys_per_db: BTreeMap::new(),
            failures: Vec::new(),
        }
    }

    fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The newest snapshot's copy is bad: alarmed.
    pub fn copy_failed(&self) -> bool {
        matches!(self.outcome, CopyOutcome::Failed | CopyOutcome::FailedEarlier)
    }

    /// The run could not take this cache's step (an AWS error, or the deadline).
    pub fn run_error(&self) -> bool {
        matches!(
            self.outcome,
            CopyOutcome::Error | CopyOutcome::Deadline | CopyOutcome::NotReached
        )
    }

    /// Failed in this run, or not stepped: fails the invocation.
    fn fails_run(&self) -> bool {
        self.outcome == CopyOutcome::Failed || self.run_error()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CopySummary {
    pub action: &'static str,
    pub caches: Vec<CacheCopyReport>,
    /// Caches whose copy failed in this run, or could not be stepped (an AWS error).
    pub failed: usize,
    pub seconds: f64,
}

/// The action: copy, publish metrics, and fail the invocation if a copy failed in this run or a cache could not
/// be stepped before the deadline (`None`: no deadline, the standalone task).
pub async fn handle(deps: &Deps, caches: Option<Vec<String>>, deadline: Option<Instant>) -> Result<CopySummary, Error> {
    handle_pass(deps, caches, deadline, Pass::Every).await
}

/// [`handle`] taking only the steps `pass` allows.
pub async fn handle_pass(
    deps: &Deps,
    caches: Option<Vec<String>>,
    deadline: Option<Instant>,
    pass: Pass,
) -> Result<CopySummary, Error> {
    let summary = run_pass(deps, caches, deadline, pass).await?;
    let mut m = Metrics::new();
    record(&summary.caches, &mut m);
    if let Err(e) = m
        .publish(&deps.cw, &deps.settings.common.metrics_namespace, Utc::now())
        .await
    {
        tracing::error!(error = %e, "metrics not published");
    }
    conclude(summary)
}

/// One pass over the selected caches (the named ones when given), each cache's step reported, in the selection's
/// order.
pub async fn run(deps: &Deps, caches: Option<Vec<String>>, deadline: Option<Instant>) -> Result<CopySummary, Error> {
    run_pass(deps, caches, deadline, Pass::Every).await
}

async fn run_pass(
    deps: &Deps,
    caches: Option<Vec<String>>,
    deadline: Option<Instant>,
    pass: Pass,
) -> Result<CopySummary, Error> {
    let started = Instant::now();
    let selector = match caches {
        Some(list) => Selector {
            databases: list,
            tag: None,
        },
        None => deps.settings.common.selector.clone(),
    };
    let serverless = deps.settings.serverless_caches;
    let all = elasticache::discover_all(&deps.ec, serverless).await?;
    let chosen = elasticache::select(&all, &selector);
    let snapshots = if chosen.is_empty() {
        Vec::new()
    } else {
        elasticache::list_all_snapshots(&deps.ec, serverless).await?
    };
    let stop = deadline.map(|d| d.checked_sub(DEADLINE_MARGIN).unwrap_or(d));
    let reports: Vec<CacheCopyReport> = stream::iter(chosen)
        .map(|cache| copy_before(deps, cache, &snapshots, stop, pass))
        .buffered(CONCURRENT_CACHES)
        .filter(|r| {
            let idle = matches!(r.outcome, CopyOutcome::NothingStarted | CopyOutcome::NoSnapshot);
            std::future::ready(!(pass == Pass::FinishStarted && idle))
        })
        .collect()
        .await;
    Ok(CopySummary {
        action: crate::event::COPY_CACHES,
        failed: reports.iter().filter(|r| r.fails_run()).count(),
        caches: reports,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// [`copy_one`], stopped at `stop` (the deadline less its margin): not started when its turn comes after it.
async fn copy_before(
    deps: &Deps,
    cache: &Cache,
    snapshots: &[CacheSnapshot],
    stop: Option<Instant>,
    pass: Pass,
) -> CacheCopyReport {
    let Some(stop) = stop else {
        return copy_pass(deps, cache, snapshots, pass).await;
    };
    if Instant::now() >= stop {
        tracing::error!(cache = %cache.id, "cache RDB copy not reached before the invocation's deadline");
        return CacheCopyReport::new(&cache.id, None, CopyOutcome::NotReached)
            .with_detail("not reached before the invocation's deadline; the next run steps it");
    }
    match tokio::time::timeout_at(stop.into(), copy_pass(deps, cache, snapshots, pass)).await {
        Ok(report) => report,
        Err(_) => {
            tracing::error!(cache = %cache.id, "cache RDB copy stopped before the invocation's deadline");
            CacheCopyReport::new(&cache.id, None, CopyOutcome::Deadline).with_detail(format!(
                "stopped {} s before the invocation's deadline; no manifest was written and the next run \
                 verifies again (a copy that never fits in one invocation needs a longer function timeout)",
                DEADLINE_MARGIN.as_secs()
            ))
        }
    }
}

/// One cache's copy stepped once (its newest Lifeboat snapshot among `snapshots`), reported and logged.
pub async fn copy_one(deps: &Deps, cache: &Cache, snapshots: &[CacheSnapshot]) -> CacheCopyReport {
    copy_pass(deps, cache, snapshots, Pass::Every).await
}

async fn copy_pass(deps: &Deps, cache: &Cache, snapshots: &[CacheSnapshot], pass: Pass) -> CacheCopyReport {
    let Some(chosen) = rdb_copy::choose(snapshots, cache) else {
        return CacheCopyReport::new(&cache.id, None, CopyOutcome::NoSnapshot)
            .with_detail("no available snapshot Lifeboat made of this cache yet");
    };
    let report = match step(deps, cache, chosen, pass).await {
        Ok(report) => report,
        Err(e) => CacheCopyReport::new(&cache.id, Some(&chosen.name), CopyOutcome::Error).with_detail(e.to_string()),
    };
    match report.outcome {
        CopyOutcome::Failed | CopyOutcome::FailedEarlier | CopyOutcome::Error => {
            tracing::error!(cache = %cache.id, snapshot = %chosen.name, outcome = ?report.outcome,
                detail = report.detail.as_deref().unwrap_or(""), failures = ?report.failures, "cache RDB copy failed");
        }
        _ => tracing::info!(cache = %cache.id, snapshot = %chosen.name, outcome = ?report.outcome, "cache RDB copy"),
    }
    report
}

/// Reads what is known of the copy and takes its next step. A serverless snapshot differs only in its
/// description, where its files land, how their number is known and the export request
/// (`lifeboat::caches::rdb_copy::serverless`); from the staged files on, both take the same path.
async fn step(deps: &Deps, cache: &Cache, chosen: &CacheSnapshot, pass: Pass) -> Result<CacheCopyReport, RdbCopyError> {
    let bucket = deps.settings.bucket.as_str();
    let serverless = chosen.serverless;
    let snap = if serverless {
        rdb_copy::serverless::describe(&deps.ec, chosen, cache).await?
    } else {
        rdb_copy::describe(&deps.ec, chosen, cache).await?
    };
    let keys = rdb_keys(&cache.id, snap.time);
    let (request, staging) = request_and_staging(deps, &snap, serverless).await?;
    let failure_key = rdb_staging_failure_key(&rdb_staging_name(&snap.name));
    // Under the predictable name: the files under the recorded name and the failure record both start with it.
    let prefix = if serverless {
        staging.clone()
    } else {
        rdb_staging_name(&snap.name)
    };
    let listed = lifeboat::bucket::layout::list_with_sizes(&deps.s3, bucket, &prefix).await?;
    let staged = rdb_copy::staged_shards(&staging, listed.keys().map(String::as_str));
    // A serverless copy's failure record is not under its files' name but under the staging prefix.
    let failure_recorded =
        listed.contains_key(&failure_key) || (serverless && s3::exists(&deps.s3, bucket, &failure_key).await?);
    let state = CopyState {
        snapshot_status: &snap.status,
        shards: snap.shards,
        manifest_exists: s3::exists(&deps.s3, bucket, &keys.manifest()).await?,
        failure_recorded,
        staged: &staged,
    };
    let next = if serverless {
        rdb_copy::serverless::next_step(&state)
    } else {
        rdb_copy::next_step(&state)
    };
    let report = |outcome| CacheCopyReport::new(&cache.id, Some(&snap.name), outcome);
    Ok(match next {
        Step::Done | Step::Request if pass == Pass::FinishStarted => report(CopyOutcome::NothingStarted),
        Step::Done => CacheCopyReport {
            manifest_key: Some(keys.manifest()),
            ..report(CopyOutcome::AlreadyCopied)
        },
        Step::FailedEarlier => report(CopyOutcome::FailedEarlier)
            .with_detail(format!("a staged file failed verification; see {failure_key}")),
        Step::Waiting(why) => report(CopyOutcome::Waiting).with_detail(why),
        Step::Refused(why) => report(CopyOutcome::Failed).with_detail(why),
        Step::Request => ask(deps, &snap, serverless, &request, staging).await?,
        Step::Verify => match bound_to_request(deps, &request, &snap, &staging, &staged).await? {
            Ok(()) => verify_and_move(deps, &snap, &keys, &staged).await?,
            Err(why) => {
                let refused = staged
                    .iter()
                    .map(|(shard, key)| FileFailure {
                        shard: *shard,
                        key: key.clone(),
                        error: why.clone(),
                    })
                    .collect();
                failed(deps, &snap, staged.len(), refused).await?
            }
        },
    })
}

/// The copy's request record (`Err`: one that is not Lifeboat's, unreadable or naming a name Lifeboat never asks
/// for, kept as the reason to refuse if and when the copy would be requested or verified) and the name its files
/// are looked for under: the recorded one, else the predictable one (a serverless snapshot's own).
async fn request_and_staging(
    deps: &Deps,
    snap: &ExportableSnapshot,
    serverless: bool,
) -> Result<(Result<Option<Recorded>, String>, String), RdbCopyError> {
    let request = read_request(deps, snap).await?;
    if serverless {
        return Ok((request, rdb_copy::serverless::staging_name(&snap.name)));
    }
    let recorded = request.as_ref().ok().and_then(Option::as_ref).map(|(r, _)| r);
    Ok(match rdb_copy::staging_of(recorded, &snap.name) {
        Ok(name) => (request, name),
        Err(why) => (Err(why), rdb_staging_name(&snap.name)),
    })
}

/// Asks ElastiCache for the export, after recording the request.
async fn ask(
    deps: &Deps,
    snap: &ExportableSnapshot,
    serverless: bool,
    recorded: &Result<Option<Recorded>, String>,
    staging: String,
) -> Result<CacheCopyReport, RdbCopyError> {
    let report = |outcome| CacheCopyReport::new(&snap.cache, Some(&snap.name), outcome);
    // A record already there (a run whose request failed or was cut short) keeps its name: ElastiCache
    // either exports under it now or answers that it already did. Otherwise a new, unpredictable name.
    let staging = match (recorded, serverless) {
        (Err(why), _) => return Ok(report(CopyOutcome::Failed).with_detail(why.clone())),
        (Ok(Some(_)), _) => staging,
        (Ok(None), true) => {
            record_request(deps, snap, &staging).await?;
            staging
        }
        (Ok(None), false) => {
            let fresh = rdb_copy::unpredictable_staging_name(&snap.name)
                .map_err(|e| Error::PartialFailure(format!("reading /dev/urandom: {e}")))?;
            if record_request(deps, snap, &fresh).await? == Written::Exists {
                return Ok(
                    report(CopyOutcome::Waiting).with_detail("another run recorded a request for this snapshot first")
                );
            }
            fresh
        }
    };
    Ok(match request_export(deps, serverless, &snap.name, &staging).await? {
        Requested::Started => report(CopyOutcome::Requested).with_detail(format!("export to {staging}-*.rdb")),
        Requested::AlreadyRequested(m) => report(CopyOutcome::Waiting).with_detail(m),
    })
}

/// Records what Lifeboat is about to ask ElastiCache for, before asking, only if no record is there
/// (`Written::Exists`: another run recorded its own request first, and its name is the one to use).
pub async fn record_request(deps: &Deps, snap: &ExportableSnapshot, staging: &str) -> Result<Written, RdbCopyError> {
    let record = rdb_copy::request_record(snap, staging, Utc::now());
    let body = serde_json::to_vec_pretty(&record).map_err(|e| Error::PartialFailure(e.to_string()))?;
    let key = rdb_staging_request_key(&rdb_staging_name(&snap.name));
    let kms = deps.settings.kms_key_id.as_deref();
    Ok(s3::put_json(&deps.s3, &deps.settings.bucket, &key, RDB_PROFILE, body, kms).await?)
}

/// A recorded request with S3's time of it: what staged files are bound to.
type Recorded = (RdbCopyRequest, chrono::DateTime<Utc>);

/// The copy's request record with S3's time of it (`None`: Lifeboat has not asked). `Ok(Err(why))`: a record
/// that is not Lifeboat's (unreadable, or without a write time), refused.
async fn read_request(
    deps: &Deps,
    snap: &ExportableSnapshot,
) -> Result<Result<Option<Recorded>, String>, RdbCopyError> {
    let bucket = deps.settings.bucket.as_str();
    let key = rdb_staging_request_key(&rdb_staging_name(&snap.name));
    match deps.s3.get_object().bucket(bucket).key(&key).send().await {
        Ok(out) => {
            let recorded = out
                .last_modified()
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0));
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| Error::PartialFailure(format!("reading {key}: {e}")))?;
            Ok(
                match (serde_json::from_slice::<RdbCopyRequest>(&body.into_bytes()), recorded) {
                    (Ok(r), Some(at)) => Ok(Some((r, at))),
                    (Err(e), _) => Err(format!("the request record {key} is not Lifeboat's: {e}")),
                    (Ok(_), None) => Err(format!("the request record {key} has no write time")),
                },
            )
        }
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(Ok(None)),
        Err(e) => Err(Error::aws("GetObject", e).into()),
    }
}

/// Whether the staged files are the export Lifeboat asked for (`lifeboat::caches::rdb_copy::staged_by_request`):
/// the request record read by [`read_request`], and each staged file's S3 time. `Ok(Err(why))`: refused.
async fn bound_to_request(
    deps: &Deps,
    request: &Result<Option<Recorded>, String>,
    snap: &ExportableSnapshot,
    staging: &str,
    staged: &BTreeMap<u32, String>,
) -> Result<Result<(), String>, RdbCopyError> {
    let request = match request {
        Ok(request) => request.as_ref(),
        Err(why) => return Ok(Err(why.clone())),
    };
    let bucket = deps.settings.bucket.as_str();
    let mut times = Vec::with_capacity(staged.len());
    for key in staged.values() {
        let head = deps
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| Error::aws("HeadObject", e))?;
        let at = head
            .last_modified()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0));
        times.push((key.clone(), at));
    }
    Ok(rdb_copy::staged_by_request(
        request.map(|(r, at)| (r, *at)),
        snap,
        staging,
        &times,
    ))
}

async fn request_export(
    deps: &Deps,
    serverless: bool,
    snapshot: &str,
    staging: &str,
) -> Result<Requested, RdbCopyError> {
    let bucket = deps.settings.bucket.as_str();
    if serverless {
        rdb_copy::serverless::request_export(&deps.ec, snapshot, bucket).await
    } else {
        rdb_copy::request_export(&deps.ec, snapshot, staging, bucket).await
    }
}

/// Verifies every shard's file, and only when all passed moves them and writes the manifest, so nothing lands
/// under `exports/` for a copy with a bad file. A bad file stops the copy with a failure record next to the
/// staged files (kept there for inspection until the staging lifecycle rule expires them).
async fn verify_and_move(
    deps: &Deps,
    snap: &ExportableSnapshot,
    keys: &RdbKeys,
    staged: &BTreeMap<u32, String>,
) -> Result<CacheCopyReport, RdbCopyError> {
    let mut verified = BTreeMap::new();
    let mut failures = Vec::new();
    for (shard, key) in staged {
        match verify_one(deps, key).await {
            Ok(file) => {
                verified.insert(*shard, (keys.object(*shard), file));
            }
            Err(e) if e.is_final() => failures.push(failure(*shard, key, &e)),
            Err(e) => return Err(e),
        }
    }
    for (shard, (to, file)) in failures.is_empty().then_some(&verified).into_iter().flatten() {
        let from = staged.get(shard).map_or("", String::as_str);
        let m = Move {
            bucket: &deps.settings.bucket,
            from,
            to,
            size: file.summary.bytes,
            sha256: &file.summary.sha256,
            kms_key_id: deps.settings.kms_key_id.as_deref(),
            plan: file.plan,
            parts: &file.parts,
        };
        match rdb_copy::move_verified(&deps.s3, m).await {
            Ok(()) => {}
            Err(e) if e.is_final() => failures.push(failure(*shard, from, &e)),
            Err(e) => return Err(e),
        }
    }
    if !failures.is_empty() {
        return failed(deps, snap, staged.len(), failures).await;
    }
    let summaries = verified
        .into_iter()
        .map(|(shard, (key, file))| (shard, (key, file.summary)))
        .collect();
    write_manifest(deps, snap, keys, &summaries).await
}

fn failure(shard: u32, key: &str, e: &RdbCopyError) -> FileFailure {
    FileFailure {
        shard,
        key: key.to_owned(),
        error: e.to_string(),
    }
}

/// Reads a staged file once through the verifier (hashing its parts when it is moved in parts).
async fn verify_one(deps: &Deps, key: &str) -> Result<VerifiedFile, RdbCopyError> {
    rdb_copy::verify_object(&deps.s3, &deps.settings.bucket, key, None).await
}

async fn failed(
    deps: &Deps,
    snap: &ExportableSnapshot,
    files: usize,
    failures: Vec<FileFailure>,
) -> Result<CacheCopyReport, RdbCopyError> {
    record_failure(deps, &rdb_staging_failure_key(&rdb_staging_name(&snap.name)), &failures).await?;
    let mut report = CacheCopyReport::new(&snap.cache, Some(&snap.name), CopyOutcome::Failed).with_detail(format!(
        "{} of {files} files failed; no manifest written",
        failures.len()
    ));
    report.failures = failures;
    Ok(report)
}

/// The manifest, last, only if its key is free (a concurrent run that wrote it first wins; the copy is done).
async fn write_manifest(
    deps: &Deps,
    snap: &ExportableSnapshot,
    keys: &RdbKeys,
    verified: &BTreeMap<u32, (String, lifeboat::caches::rdb::RdbSummary)>,
) -> Result<CacheCopyReport, RdbCopyError> {
    let manifest = rdb_copy::manifest(snap, verified, Utc::now());
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::PartialFailure(e.to_string()))?;
    let kms = deps.settings.kms_key_id.as_deref();
    let written = s3::put_json(
        &deps.s3,
        &deps.settings.bucket,
        &keys.manifest(),
        RDB_PROFILE,
        body,
        kms,
    )
    .await?;
    let outcome = match written {
        Written::Created => CopyOutcome::Verified,
        Written::Exists => CopyOutcome::AlreadyCopied,
    };
    let mut report = CacheCopyReport::new(&snap.cache, Some(&snap.name), outcome);
    report.keys_per_db = manifest.keys_per_db();
    report.manifest_key = Some(keys.manifest());
    Ok(report)
}

/// The failure record, JSON, written once (a second writer finds it there and leaves it).
async fn record_failure(deps: &Deps, key: &str, failures: &[FileFailure]) -> Result<(), RdbCopyError> {
    let body = serde_json::to_vec_pretty(failures).map_err(|e| Error::PartialFailure(e.to_string()))?;
    let kms = deps.settings.kms_key_id.as_deref();
    s3::put_json(&deps.s3, &deps.settings.bucket, key, RDB_PROFILE, body, kms).await?;
    Ok(())
}

/// Per cache: `RdbCopyFailed` (1 while the newest snapshot's copy is bad) and `RdbCopyVerified` (1 when this run
/// wrote a manifest). A cache with nothing to say (waiting, no snapshot) publishes `RdbCopyFailed` 0 too, so
/// the alarm clears once a newer snapshot is copied.
pub fn record(reports: &[CacheCopyReport], out: &mut Metrics) {
    for r in reports {
        let dims = [(metrics::CACHE_DIMENSION, r.cache.as_str())];
        let failed = f64::from(u8::from(r.copy_failed()));
        out.put(metrics::RDB_COPY_FAILED, failed, StandardUnit::Count, &dims);
        let verified = f64::from(u8::from(r.outcome == CopyOutcome::Verified));
        out.put(metrics::RDB_COPY_VERIFIED, verified, StandardUnit::Count, &dims);
        let error = f64::from(u8::from(r.run_error()));
        out.put(metrics::RDB_COPY_ERROR, error, StandardUnit::Count, &dims);
    }
}

/// Logs the summary; a copy that failed in this run (or could not be stepped) fails the invocation, naming the
/// cache, shard, key and error. A failure recorded by an earlier run is reported and alarmed, not raised again.
fn conclude(summary: CopySummary) -> Result<CopySummary, Error> {
    let json = serde_json::to_string(&summary).unwrap_or_default();
    tracing::info!(failed = summary.failed, caches = summary.caches.len(), summary = %json, "copy-caches run finished");
    if summary.failed == 0 {
        return Ok(summary);
    }
    let failures: Vec<String> = summary
        .caches
        .iter()
        .filter(|r| r.fails_run())
        .map(|r| {
            let files: Vec<String> = r
                .failures
                .iter()
                .map(|f| format!("shard {} {}: {}", f.shard, f.key, f.error))
                .collect();
            let why = if files.is_empty() {
                r.detail.clone().unwrap_or_default()
            } else {
                files.join("; ")
            };
            format!("{} ({why})", r.cache)
        })
        .collect();
    Err(Error::PartialFailure(format!(
        "RDB copy failed for {} of {} caches: {}; summary: {json}",
        summary.failed,
        summary.caches.len(),
        failures.join(", ")
    )))
}
