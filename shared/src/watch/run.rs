//! The adapter that runs the content watch on one new manifest: reads the series' history and anomaly records
//! from the bucket, compares ([`crate::watch::compare`]) and writes `<base>.watch.json` beside the manifest.
//!
//! The record is written once (`If-None-Match: *`): a second run (a retried export, monitor catching a missed
//! trigger) finds it and returns it, never a second verdict. Reads are bounded: at most `history + 1` manifests,
//! at most [`MAX_ANOMALIES`] anomaly records, each object at most [`MAX_OBJECT_BYTES`]. Every error names the key
//! and the cause. The series is read from the manifest's key (`exports/<db>/<profile>/…` or
//! `exports/_caches/<cache>/rdb/…`), never from a payload.
//!
//! Owns: which objects one watch run reads and writes. Never decides a finding (compare does) nor opens an
//! anomaly or a hold.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::ServerSideEncryption;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::bucket::layout::{self, CACHE_EXPORTS_PREFIX, EXPORTS_PREFIX, MANIFEST_SUFFIX, RDB_PROFILE};
use crate::bucket::manifest::Manifest;
use crate::caches::records::RdbManifest;
use crate::core::error::aws_error_message;
use aws_sdk_cloudwatch::types::StandardUnit;

use crate::core::metrics::{self, Metrics};
use crate::watch::compare::{self, Backup, Outcome};
use crate::watch::record::{anomaly_prefix, watch_key_of, Anomaly, Watch, CACHE, DATABASE, FORMAT_VERSION};
use crate::watch::thresholds::Thresholds;

/// The largest object one watch run reads (a manifest with its catalogue, an anomaly record).
pub const MAX_OBJECT_BYTES: i64 = 64 * 1024 * 1024;
/// The most anomaly records of one series one run reads, newest first.
pub const MAX_ANOMALIES: usize = 50;

/// Why a watch run could not finish. Each names the object and the cause.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("`{0}` is not an export's or an RDB copy's manifest key")]
    NotAManifest(String),
    #[error("reading {key}: {cause}")]
    Read { key: String, cause: String },
    #[error("{key} is {bytes} bytes, more than the watch reads ({MAX_OBJECT_BYTES})")]
    TooLarge { key: String, bytes: i64 },
    #[error("{key} is not what Lifeboat wrote: {cause}")]
    Parse { key: String, cause: String },
    #[error("listing {prefix}: {cause}")]
    List { prefix: String, cause: String },
    #[error("writing {key}: {cause}")]
    Write { key: String, cause: String },
}

/// The series a manifest key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Series {
    Export { db: String, profile: String },
    Rdb { cache: String },
}

impl Series {
    /// The series of a manifest key, or `None` for any other key.
    pub fn of(manifest_key: &str) -> Option<Series> {
        if !manifest_key.ends_with(MANIFEST_SUFFIX) {
            return None;
        }
        if let Some(rest) = manifest_key.strip_prefix(CACHE_EXPORTS_PREFIX) {
            let mut parts = rest.split('/');
            let (cache, profile) = (parts.next()?, parts.next()?);
            return (profile == RDB_PROFILE && !cache.is_empty()).then(|| Series::Rdb {
                cache: cache.to_owned(),
            });
        }
        let rest = manifest_key.strip_prefix(EXPORTS_PREFIX)?;
        let mut parts = rest.split('/');
        let (db, profile) = (parts.next()?, parts.next()?);
        (!db.is_empty() && !profile.is_empty() && layout::profile_in_key(db, manifest_key) == Some(profile)).then(
            || Series::Export {
                db: db.to_owned(),
                profile: profile.to_owned(),
            },
        )
    }

    /// Where the series' manifests live.
    pub fn prefix(&self) -> String {
        match self {
            Series::Export { db, profile } => layout::export_prefix(db, Some(profile)),
            Series::Rdb { cache } => layout::rdb_prefix(cache),
        }
    }

    /// Where the series' anomaly records live: `watch/<db>/<profile>/`, `watch/_caches/<cache>/rdb/`.
    pub fn anomaly_prefix(&self) -> String {
        match self {
            Series::Export { db, profile } => anomaly_prefix(DATABASE, db, Some(profile)),
            Series::Rdb { cache } => anomaly_prefix(CACHE, cache, Some(RDB_PROFILE)),
        }
    }

    /// The database or cache.
    pub fn resource(&self) -> &str {
        match self {
            Series::Export { db, .. } => db,
            Series::Rdb { cache } => cache,
        }
    }
}

/// The key of the watch record beside a manifest: `<base>.watch.json`.
pub fn watch_key(manifest_key: &str) -> Option<String> {
    watch_key_of(manifest_key)
}

/// What one run did: the record, and whether this run wrote it (`false`: it was already there).
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    pub watch: Watch,
    pub written: bool,
    pub series: Series,
}

/// Runs the watch on the manifest at `manifest_key` with `thresholds`, writing its record unless one exists.
pub async fn run(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest_key: &str,
    thresholds: &Thresholds,
    kms_key_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Watched, WatchError> {
    let series = Series::of(manifest_key).ok_or_else(|| WatchError::NotAManifest(manifest_key.to_owned()))?;
    let key = watch_key(manifest_key).ok_or_else(|| WatchError::NotAManifest(manifest_key.to_owned()))?;
    if let Some(watch) = get_bounded::<Watch>(s3, bucket, &key).await? {
        return Ok(Watched {
            watch,
            written: false,
            series,
        });
    }
    let at = layout::time_in_key(manifest_key).ok_or_else(|| WatchError::NotAManifest(manifest_key.to_owned()))?;
    let earlier = earlier_keys(s3, bucket, &series, manifest_key, at).await?;
    let anomalies = anomalies(s3, bucket, &series).await?;
    let placeholders: Vec<Backup<'_, ()>> = earlier
        .iter()
        .map(|(k, t)| Backup {
            key: k,
            at: *t,
            manifest: &(),
        })
        .collect();
    let chosen: Vec<(String, DateTime<Utc>)> = compare::baseline(&placeholders, &anomalies, thresholds.history)
        .iter()
        .map(|b| (b.key.to_owned(), b.at))
        .collect();
    let outcome = match series {
        Series::Export { .. } => {
            let (current, history) = read_series::<Manifest>(s3, bucket, manifest_key, &chosen).await?;
            let backups = backups(&history);
            let current = Backup {
                key: manifest_key,
                at,
                manifest: &current,
            };
            compare::compare_exports(current, &backups, thresholds)
        }
        Series::Rdb { .. } => {
            let (current, history) = read_series::<RdbManifest>(s3, bucket, manifest_key, &chosen).await?;
            let backups = backups(&history);
            let current = Backup {
                key: manifest_key,
                at,
                manifest: &current,
            };
            compare::compare_rdb(current, &backups, thresholds)
        }
    };
    let watch = record(manifest_key, outcome, now);
    let written = put_once(s3, bucket, &key, &watch, kms_key_id).await?;
    if !written {
        // Another run wrote it first: its record is the one.
        if let Some(theirs) = get_bounded::<Watch>(s3, bucket, &key).await? {
            return Ok(Watched {
                watch: theirs,
                written: false,
                series,
            });
        }
    }
    Ok(Watched { watch, written, series })
}

/// Runs the watch where a backup was just written or found unwatched, and never fails its caller: the outcome
/// is logged and published (`ContentFindings`, `ContentWatchFailed`); a failure leaves no record, so monitor's
/// next run tries again. `None` thresholds: the watch is off for this resource.
pub async fn run_and_report(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest_key: &str,
    thresholds: Option<&Thresholds>,
    kms_key_id: Option<&str>,
    out: &mut Metrics,
) -> Option<Watched> {
    let thresholds = thresholds?;
    let series = Series::of(manifest_key)?;
    let dims: [(&str, &str); 2] = match &series {
        Series::Export { db, profile } => [(metrics::DB_DIMENSION, db), (metrics::PROFILE_DIMENSION, profile)],
        Series::Rdb { cache } => [
            (metrics::CACHE_DIMENSION, cache),
            (metrics::PROFILE_DIMENSION, RDB_PROFILE),
        ],
    };
    match run(s3, bucket, manifest_key, thresholds, kms_key_id, Utc::now()).await {
        Ok(watched) => {
            let findings = watched.watch.findings.len();
            out.put(metrics::CONTENT_FINDINGS, findings as f64, StandardUnit::Count, &dims);
            out.put(metrics::CONTENT_WATCH_FAILED, 0.0, StandardUnit::Count, &dims);
            tracing::info!(manifest = %manifest_key, findings, written = watched.written,
                drift = watched.watch.drift_summary.as_deref().unwrap_or(""), "content watch");
            Some(watched)
        }
        Err(e) => {
            out.put(metrics::CONTENT_WATCH_FAILED, 1.0, StandardUnit::Count, &dims);
            tracing::warn!(manifest = %manifest_key, error = %e, "content watch failed; monitor tries again");
            None
        }
    }
}

fn backups<M>(history: &[(String, DateTime<Utc>, M)]) -> Vec<Backup<'_, M>> {
    history
        .iter()
        .map(|(key, at, manifest)| Backup { key, at: *at, manifest })
        .collect()
}

/// The watch record of an outcome.
pub fn record(manifest_key: &str, outcome: Outcome, now: DateTime<Utc>) -> Watch {
    Watch {
        format_version: FORMAT_VERSION,
        manifest_key: manifest_key.to_owned(),
        watched_at: now,
        compared_with: outcome.compared_with,
        history: outcome.history,
        findings: outcome.findings,
        drift: outcome.drift.and_then(|d| serde_json::to_value(d).ok()),
        drift_summary: outcome.drift_summary,
    }
}

/// The series' manifest keys before `at` (the new manifest excluded), with their times.
async fn earlier_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    series: &Series,
    manifest_key: &str,
    at: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>, WatchError> {
    let prefix = series.prefix();
    let keys = layout::list_keys(s3, bucket, &prefix, MANIFEST_SUFFIX)
        .await
        .map_err(|e| WatchError::List {
            prefix: prefix.clone(),
            cause: e.to_string(),
        })?;
    Ok(keys
        .into_iter()
        .filter(|k| k != manifest_key && Series::of(k).as_ref() == Some(series))
        .filter_map(|k| {
            let t = layout::time_in_key(&k)?;
            (t < at).then_some((k, t))
        })
        .collect())
}

/// The series' newest anomaly records (at most [`MAX_ANOMALIES`]).
async fn anomalies(s3: &aws_sdk_s3::Client, bucket: &str, series: &Series) -> Result<Vec<Anomaly>, WatchError> {
    let prefix = series.anomaly_prefix();
    let mut keys = layout::list_keys(s3, bucket, &prefix, ".json")
        .await
        .map_err(|e| WatchError::List {
            prefix: prefix.clone(),
            cause: e.to_string(),
        })?;
    keys.sort_unstable_by(|a, b| b.cmp(a));
    keys.truncate(MAX_ANOMALIES);
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(a) = get_bounded::<Anomaly>(s3, bucket, &key).await? {
            out.push(a);
        }
    }
    Ok(out)
}

type Read<M> = (M, Vec<(String, DateTime<Utc>, M)>);

async fn read_series<M: DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest_key: &str,
    chosen: &[(String, DateTime<Utc>)],
) -> Result<Read<M>, WatchError> {
    let current = get_bounded::<M>(s3, bucket, manifest_key)
        .await?
        .ok_or_else(|| WatchError::Read {
            key: manifest_key.to_owned(),
            cause: "no such key".to_owned(),
        })?;
    let mut history = Vec::with_capacity(chosen.len());
    for (key, at) in chosen {
        // A manifest gone since the listing (expired by its plan) is left out of the history.
        if let Some(m) = get_bounded::<M>(s3, bucket, key).await? {
            history.push((key.clone(), *at, m));
        }
    }
    Ok((current, history))
}

/// Reads a JSON object of at most [`MAX_OBJECT_BYTES`]; `None` when there is no such key.
pub async fn get_bounded<T: DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<T>, WatchError> {
    let read = |cause: String| WatchError::Read {
        key: key.to_owned(),
        cause,
    };
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => return Err(read(aws_error_message(&e))),
    };
    let bytes = out.content_length().unwrap_or(0);
    if bytes > MAX_OBJECT_BYTES {
        return Err(WatchError::TooLarge {
            key: key.to_owned(),
            bytes,
        });
    }
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| read(aws_error_message(&e)))?
        .into_bytes();
    serde_json::from_slice(&body).map(Some).map_err(|e| WatchError::Parse {
        key: key.to_owned(),
        cause: e.to_string(),
    })
}

/// Writes the record only if its key is free; `false` when it was taken.
async fn put_once(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    watch: &Watch,
    kms_key_id: Option<&str>,
) -> Result<bool, WatchError> {
    let write = |cause: String| WatchError::Write {
        key: key.to_owned(),
        cause,
    };
    let body = serde_json::to_vec_pretty(watch).map_err(|e| write(e.to_string()))?;
    let sent = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .set_ssekms_key_id(kms_key_id.map(str::to_owned))
        .body(body.into())
        .if_none_match("*")
        .send()
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("PreconditionFailed") => Ok(false),
        Err(e) => Err(write(aws_error_message(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::error::NoSuchKey;
    use aws_sdk_s3::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const KEY: &str = "exports/app/full/2026/12/06/app-full-20261206T030000Z.manifest.json";

    fn denied() -> aws_smithy_mocks::Rule {
        mock!(Client::get_object).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
                aws_smithy_types::body::SdkBody::from("<Error><Code>AccessDenied</Code><Message>no</Message></Error>"),
            )
        })
    }

    #[tokio::test]
    async fn a_watch_that_cannot_run_never_fails_its_caller_and_says_so_in_a_metric() {
        // The record is not there, and the manifest cannot be read: the run fails naming the key, and the
        // reporting wrapper turns that into a warning and ContentWatchFailed 1, never an error.
        let rules = || {
            let none = mock!(Client::get_object).then_error(|| GetObjectError::NoSuchKey(NoSuchKey::builder().build()));
            let listed = || {
                mock!(Client::list_objects_v2)
                    .then_output(|| aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output::builder().build())
            };
            [none, listed(), listed(), denied()]
        };
        let [a, b, c, d] = rules();
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&a, &b, &c, &d]);
        let err = run(&s3, "b", KEY, &Thresholds::default(), None, Utc::now())
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with(&format!("reading {KEY}: ")), "{err}");
        let [a, b, c, d] = rules();
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&a, &b, &c, &d]);
        let mut m = Metrics::new();
        assert!(
            run_and_report(&s3, "b", KEY, Some(&Thresholds::default()), None, &mut m)
                .await
                .is_none()
        );
        let failed: Vec<_> = m
            .items()
            .iter()
            .filter(|i| i.name == metrics::CONTENT_WATCH_FAILED)
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].value, 1.0);
        // Turned off: nothing read, nothing published.
        let unused = denied();
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&unused]);
        let mut m = Metrics::new();
        assert!(run_and_report(&s3, "b", KEY, None, None, &mut m).await.is_none());
        assert!(m.items().is_empty());
    }

    #[tokio::test]
    async fn a_record_already_there_is_returned_and_nothing_is_written() {
        let existing = Watch {
            format_version: FORMAT_VERSION,
            manifest_key: KEY.into(),
            watched_at: Utc::now(),
            compared_with: None,
            history: vec![],
            findings: vec![],
            drift: None,
            drift_summary: None,
        };
        let body = serde_json::to_vec(&existing).unwrap();
        let found = mock!(Client::get_object).then_output(move || {
            GetObjectOutput::builder()
                .content_length(body.len() as i64)
                .body(ByteStream::from(body.clone()))
                .build()
        });
        let s3 = mock_client!(aws_sdk_s3, RuleMode::Sequential, [&found]);
        let got = run(&s3, "b", KEY, &Thresholds::default(), None, Utc::now())
            .await
            .unwrap();
        assert!(!got.written);
        assert_eq!(got.watch, existing);
        assert_eq!(found.num_calls(), 1);
    }

    #[test]
    fn the_series_comes_from_the_key_and_nothing_else() {
        assert_eq!(
            Series::of("exports/app/full/2026/12/06/app-full-20261206T030000Z.manifest.json"),
            Some(Series::Export {
                db: "app".into(),
                profile: "full".into()
            })
        );
        assert_eq!(
            Series::of("exports/_caches/sessions/rdb/2026/12/06/sessions-rdb-20261206T030000Z.manifest.json"),
            Some(Series::Rdb {
                cache: "sessions".into()
            })
        );
        assert_eq!(
            Series::of("exports/app/full/2026/12/06/app-full-20261206T030000Z.dump.zst"),
            None
        );
        assert_eq!(Series::of("watch/app/full/20261206T030000Z.json"), None);
        assert_eq!(
            Series::Rdb {
                cache: "sessions".into()
            }
            .anomaly_prefix(),
            "watch/_caches/sessions/rdb/"
        );
        assert_eq!(
            watch_key("exports/app/full/2026/12/06/app-full-20261206T030000Z.manifest.json").as_deref(),
            Some("exports/app/full/2026/12/06/app-full-20261206T030000Z.watch.json")
        );
    }
}
