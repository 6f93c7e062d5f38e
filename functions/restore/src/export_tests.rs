//! A plan's restore test from the newest export (`{"from": "newest-export", "export": "<profile>"}`): two steps
//! of its own, `export_start` and `export_verify`, around the snapshot tests' `poll`, `report` and `cleanup`
//! (the state machine's `ExportStart` ... `ExportVerify` states, then `Report` and `Cleanup`, or on any failure
//! `ReportFailure` and `CleanupAfterFailure`).
//!
//! Design choices:
//! - **The target is a new, empty RDS for PostgreSQL instance**, not a database on the production server nor on
//!   a snapshot test's restored copy: isolated as a snapshot test's instance is (the restore-test subnet and
//!   security groups, no public address, encrypted storage, no Multi-AZ, no backups), holding nothing but what
//!   the export restores, tagged as a restore test of the database with an expiry for monitor's janitor, and
//!   deleted by `cleanup` on every route. It is what recovering from exports alone starts from.
//! - **Its name** is `lifeboat::rds::restore::export_test_identifier` of the database, the profile and the
//!   request time (`lifeboat-rx-...`): never a snapshot test's name, and two profiles tested at the same time
//!   get two instances, two records and two reports. Its engine is the major version of the server the export
//!   was taken from (the manifest), its storage twice the database's size then.
//! - **The export is chosen here**, from the bucket: the newest complete export of the profile (its manifest is
//!   written last, after the archive was verified), never a key from the payload. The choice goes into the
//!   instance's `lifeboat:restored-from` tag in the create call, and `export_verify` restores only what that tag
//!   names, and only when it is a manifest of this database and profile.
//! - **The password** is random, kept in the test's own secret (`lifeboat/restore-test/<instance>`) before the
//!   instance is created with it, so `cleanup` finds and deletes it on every route, and no `prepare` is needed.
//!   The master user is the source's, as a restored snapshot's is.
//! - **The restore is restore-export's** (`lifeboat::postgres::archive`): the archive streamed through its
//!   checksums, decryption and decompression into pg_restore, logged in as a role that owns only the new
//!   database (data from a backup is code), and every table's row count compared exactly with the manifest. The
//!   configured SQL checks (`LIFEBOAT_RESTORE_CHECKS`) are not run here: they would run as the master user
//!   inside a database whose functions came from the archive.
//! - **Deadlines**: the instance must be available within `LIFEBOAT_RESTORE_TIMEOUT_MINUTES` of the request
//!   (`poll`, as for a snapshot); the restore must fit in the invocation (admitted up front from the stored size
//!   and `LIFEBOAT_RESTORE_MIB_PER_SECOND`, stopped with a margin before the deadline and dropped). An export too
//!   large for one invocation fails the test and says so: the ECS restore task does not run plan tests.
//! - **The data's age** (the report's RPO) is the export's logical time.
//!
//! Never: takes an export key, an endpoint, a password or a verdict from the state; restores into anything
//! but the test's own instance; runs a statement in the restored database as the master user.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat::bucket::layout;
use lifeboat::bucket::manifest::{Manifest, TableCount};
use lifeboat::postgres::archive::{self, plan, ArchiveError, Counters};
use lifeboat::postgres::db;
use lifeboat::rds::instances::{self as rds, EmptyInstance};
use lifeboat::rds::restore::{self as rules, Check};
use lifeboat::rds::selection::{Database, DbKind};
use serde_json::Value;

use crate::deps::{age_identity, find, Deps};
use crate::error::RestoreError;
use crate::event::TestState;
use crate::password;
use crate::restored::{self, RestoredDb};

/// The server database the restore's new database is created from (every RDS for PostgreSQL instance has it).
const MAINTENANCE_DB: &str = "postgres";

fn to_value(test: &TestState) -> Result<Value, RestoreError> {
    serde_json::to_value(test).map_err(RestoreError::State)
}

/// The source's master user (a cluster's for an Aurora source), which the empty instance gets too.
async fn master_user(deps: &Deps, db: &Database) -> Result<String, RestoreError> {
    let user = match db.kind {
        DbKind::Instance => rds::instance(&deps.rds, &db.id).await?.map(|i| i.master_user),
        DbKind::Cluster => rds::cluster(&deps.rds, &db.id).await?.map(|c| c.master_user),
    };
    // RDS always describes one; the engine's own superuser name is the fallback.
    Ok(user.filter(|u| !u.is_empty()).unwrap_or_else(|| "postgres".to_owned()))
}

/// Creates the empty instance (its password stored first), unless a redelivered start already did: an
/// existing instance of that name is reused only when it is a restore test of the same database, made for an
/// export of the same profile. Answers the password secret's ARN when this call stored it.
async fn ensure_created(
    deps: &Deps,
    db: &Database,
    profile: &str,
    id: &str,
    chosen: (&str, &Manifest),
    master_user: &str,
) -> Result<Option<String>, RestoreError> {
    let (key, manifest) = chosen;
    if let Some(existing) = rds::instance(&deps.rds, id).await? {
        let same_export = existing
            .tags
            .get(rules::RESTORED_FROM)
            .is_some_and(|k| rules::is_export_of(k, &db.id, profile));
        return match rules::may_reuse(&existing.tags, &db.id) {
            Ok(()) if same_export => Ok(None),
            Ok(()) => Err(RestoreError::NameTaken {
                id: id.to_owned(),
                database: db.id.clone(),
                owner: None,
            }),
            Err(owner) => Err(RestoreError::NameTaken {
                id: id.to_owned(),
                database: db.id.clone(),
                owner,
            }),
        };
    }
    let s = &deps.settings;
    let expires = rules::test_expiry(Utc::now(), s.expiry_hours);
    let password = password::random(&deps.sm).await?;
    let secret = rules::test_secret_name(id);
    let owner = password::Owner {
        name: &secret,
        restored_id: id,
        database: &db.id,
        expires,
    };
    let arn = password::store(&deps.sm, &owner, master_user, &password).await?;
    let mut tags = rds::test_tags(&db.id, expires);
    // What export_verify reads back to know what to restore (never from the state it is handed).
    tags.push(
        aws_sdk_rds::types::Tag::builder()
            .key(rules::RESTORED_FROM)
            .value(key)
            .build(),
    );
    let placement = rules::test_placement(
        s.subnet_group.as_deref(),
        s.security_group.as_deref(),
        &s.instance_class,
    );
    let engine_version = rules::export_test_engine_version(&manifest.source.server_version);
    let request = EmptyInstance {
        id,
        engine_version: engine_version.as_deref(),
        storage_gib: rules::export_test_storage_gib(manifest.source.database_size_bytes),
        master_user,
        master_password: &password,
        placement: &placement,
        tags: &tags,
    };
    rds::create_empty(&deps.rds, &request).await?;
    Ok(Some(arn))
}

/// A step's future, on the heap: the handler's poll function gets a stack slot for every match arm's future in a
/// debug build, and these two (a restore among them) are large enough to overflow a test thread's stack.
pub type Step<'a> = Pin<Box<dyn Future<Output = Result<Value, RestoreError>> + Send + 'a>>;

/// [`start`], boxed before its future exists (the async block captures only its arguments).
pub fn start_step(deps: &Deps, database: String, profile: String, requested_at: DateTime<Utc>) -> Step<'_> {
    Box::pin(async move { start(deps, &database, &profile, requested_at).await })
}

/// [`verify`], boxed likewise.
pub fn verify_step(deps: &Deps, test: TestState, deadline: Option<Instant>) -> Step<'_> {
    Box::pin(async move { verify(deps, test, deadline).await })
}

/// Chooses the newest complete export of `profile` and creates the empty instance it is restored into.
pub async fn start(
    deps: &Deps,
    database: &str,
    profile: &str,
    requested_at: DateTime<Utc>,
) -> Result<Value, RestoreError> {
    let t = Instant::now();
    let db = find(deps, database).await?;
    let newest = layout::latest_manifest(&deps.s3, &deps.settings.bucket, &db.id, profile).await?;
    let (key, manifest) = newest.ok_or_else(|| RestoreError::NoExport {
        database: db.id.clone(),
        profile: profile.to_owned(),
    })?;
    let id = rules::export_test_identifier(&db.id, profile, requested_at);
    let master_user = master_user(deps, &db).await?;
    let secret = ensure_created(deps, &db, profile, &id, (&key, &manifest), &master_user).await?;
    tracing::info!(db = %db.id, export = %key, restored = %id, "restore test from the newest export started");
    let mut test = TestState {
        database: db.id.clone(),
        requested_at,
        kind: Some(DbKind::Instance),
        restored_id: Some(id),
        restored_instance: None,
        snapshot_id: None,
        snapshot_time: Some(manifest.logical_time),
        master_user: Some(master_user),
        polls: 0,
        status: Some("creating".into()),
        password_secret: secret,
        timings: Default::default(),
        checks: vec![],
        verified_at: None,
        passed: None,
        report_key: None,
        export: Some(profile.to_owned()),
        recovery_choice: None,
    };
    test.timings.insert("start".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

/// The export the instance's `lifeboat:restored-from` tag names, read from the bucket; `Err` says why it is
/// not one this test may restore (a failed check).
async fn tagged_export(
    deps: &Deps,
    database: &str,
    profile: &str,
    r: &RestoredDb,
) -> Result<(String, Manifest), String> {
    let Some(key) = r.tags.get(rules::RESTORED_FROM) else {
        return Err(format!("{} carries no {} tag", r.id, rules::RESTORED_FROM));
    };
    if !rules::is_export_of(key, database, profile) {
        return Err(format!(
            "{} names {key}, which is not a `{profile}` export of {database}",
            rules::RESTORED_FROM
        ));
    }
    let manifest: Manifest = layout::get_json(&deps.s3, &deps.settings.bucket, key)
        .await
        .map_err(|e| e.to_string())?;
    if manifest.database != database || manifest.profile != profile {
        return Err(format!(
            "{key} is the manifest of a `{}` export of {}",
            manifest.profile, manifest.database
        ));
    }
    Ok((key.clone(), manifest))
}

/// Where the restore goes: a new database on the test's own instance, at the endpoint RDS describes (once
/// available), as its master user with the password in the test's own secret.
async fn target_of(deps: &Deps, test: &TestState, r: &RestoredDb, dbname: &str) -> Result<db::Target, RestoreError> {
    let login = r
        .login(
            deps,
            test,
            "export_verify before the test's instance was available (no endpoint yet)",
        )
        .await?;
    Ok(db::Target {
        host: login.host,
        port: login.port,
        dbname: dbname.to_owned(),
        user: login.user,
        password: login.password,
        tls: deps.settings.tls.clone(),
    })
}

fn counts(tables: impl Iterator<Item = TableCount>) -> std::collections::BTreeMap<String, i64> {
    tables.map(|t| (t.label(), t.rows)).collect()
}

/// Why the restore may not start: an encrypted export without the identity, or one too large to finish before
/// the deadline at `mib_per_second`. `None` when it may.
fn refusal(
    manifest: &Manifest,
    has_identity: bool,
    mib_per_second: u32,
    deadline: Option<Instant>,
    now: Instant,
) -> Option<String> {
    if manifest.encryption.is_some() && !has_identity {
        return Some("the export is age-encrypted and no identity is configured (LIFEBOAT_AGE_IDENTITY_SECRET)".into());
    }
    let left = deadline.map(|d| d.saturating_duration_since(now));
    let refused = plan::admit_restore(manifest.stored.bytes, mib_per_second, left).err()?;
    Some(format!(
        "not started: {} MiB stored at about {} MiB/s needs ~{} s but only {} s remain in this invocation \
         (LIFEBOAT_RESTORE_MIB_PER_SECOND); the ECS restore task does not run plan tests",
        refused.size_mib, refused.mib_per_second, refused.estimate_secs, refused.remaining_secs
    ))
}

/// Restores the export into the new database and judges it: every table of the manifest with exactly its row
/// count. A refused or failed restore is a failed check (the archive code drops what it created).
async fn restore_check(
    deps: &Deps,
    manifest: &Manifest,
    into: &db::Target,
    check: &str,
    deadline: Option<Instant>,
) -> Result<Check, RestoreError> {
    let identity = age_identity(deps).await?;
    let mib_per_second = deps.settings.from_export.mib_per_second;
    if let Some(refused) = refusal(manifest, identity.is_some(), mib_per_second, deadline, Instant::now()) {
        return Ok(Check::new(check, false, refused));
    }
    let identities: Vec<_> = identity.into_iter().collect();
    let s = &deps.settings;
    let restored = archive::restore::restore(archive::restore::Request {
        s3: &deps.s3,
        bucket: &s.bucket,
        manifest,
        tables: &[],
        identities: &identities,
        pg_restore: &s.pg_restore,
        into,
        maintenance_db: MAINTENANCE_DB,
        counters: &Arc::new(Counters::default()),
        interrupt: None,
        jobs: None,
        stop_at: lifeboat::postgres::export::stop_at(deadline),
        rewrite: None,
    })
    .await;
    let expected = counts(manifest.tables.iter().cloned());
    Ok(match restored {
        Ok(report) => {
            let actual = counts(report.tables.into_iter().map(|t| TableCount {
                schema: t.schema,
                name: t.name,
                rows: t.restored_rows,
            }));
            rules::scratch_check(check, report.plaintext_bytes, &expected, &actual)
        }
        Err(ArchiveError::RowCounts { mismatches }) => {
            let mut actual = expected.clone();
            for m in mismatches {
                match m.actual {
                    Some(n) => actual.insert(m.table, n),
                    None => actual.remove(&m.table),
                };
            }
            rules::scratch_check(check, 0, &expected, &actual)
        }
        Err(e) => Check::new(check, false, e.to_string()),
    })
}

/// Restores the export the test's instance was made for into it, and records the checks for the report step.
pub async fn verify(deps: &Deps, mut test: TestState, deadline: Option<Instant>) -> Result<Value, RestoreError> {
    let t = Instant::now();
    let profile = test.export.clone().ok_or(RestoreError::OutOfOrder(
        "export_verify is the step of a test from an export: the state names no `export` profile",
    ))?;
    let r = restored::existing(deps, &test).await?;
    let dbname = rules::scratch_database(test.requested_at);
    let into = target_of(deps, &test, &r, &dbname).await?;
    let chosen_name = rules::export_chosen_check_name(&profile);
    let mut checks = Vec::new();
    let chosen = tagged_export(deps, &test.database, &profile, &r).await;
    let (key, data_time) = match &chosen {
        Err(reason) => {
            checks.push(Check::new(chosen_name, false, reason.clone()));
            (None, None)
        }
        Ok((key, m)) => {
            let detail = format!("{key} ({})", m.logical_time.to_rfc3339());
            checks.push(Check::new(chosen_name, true, detail));
            let name = rules::export_restore_check_name(&profile);
            checks.push(restore_check(deps, m, &into, &name, deadline).await?);
            (Some(key.clone()), Some(m.logical_time))
        }
    };
    let restored_ok = checks.len() == 2 && checks.iter().all(|c| c.result == rules::CheckResult::Passed);
    let record = rules::VerifyRecord {
        format_version: 1,
        database: test.database.clone(),
        kind: DbKind::Instance,
        restored_id: r.id.clone(),
        snapshot_id: None,
        snapshot_time: data_time,
        requested_at: test.requested_at,
        verified_at: restored_ok.then(Utc::now),
        checks,
        export: key,
        recovery_choice: None,
        point_in_time: None,
        data_reaches: None,
    };
    restored::write_record(deps, &test.record_key(), &record).await?;
    tracing::info!(db = %test.database, restored = %r.id, verified = restored_ok, "export restored and checked");
    test.kind = Some(DbKind::Instance);
    test.restored_id = Some(r.id.clone());
    test.master_user = Some(r.master_user.clone());
    test.snapshot_time = record.snapshot_time;
    test.verified_at = record.verified_at;
    test.checks = record.checks;
    test.status = Some("verified".into());
    test.timings.insert("verify".into(), t.elapsed().as_secs_f64());
    to_value(&test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse, Request};
    use serde_json::json;

    #[test]
    fn an_export_tests_state_names_its_own_instance_record_and_report() {
        let state = json!({"database": "app-prod", "requested_at": "2026-11-22T03:00:00Z", "export": "full"});
        let Ok(Request::ExportVerify { test }) = parse(json!({"action": "export_verify", "test": state})) else {
            panic!("an export_verify request");
        };
        let at = test.requested_at;
        assert_eq!(test.derived_id(), rules::export_test_identifier("app-prod", "full", at));
        assert_eq!(
            test.record_key(),
            "reports/restore-tests/app-prod/export-full-20261122T030000Z.checks.json"
        );
        assert_eq!(
            test.report_base(),
            "reports/restore-tests/app-prod/export-full-20261122T030000Z"
        );
        // The same database and time without `export` is the snapshot test's, and shares none of it.
        let mut snapshot_test = test.clone();
        snapshot_test.export = None;
        assert_ne!(snapshot_test.derived_id(), test.derived_id());
        assert_ne!(snapshot_test.record_key(), test.record_key());
        assert_ne!(snapshot_test.report_base(), test.report_base());
    }

    /// A manifest as the export function writes it, `stored_bytes` stored, encrypted or not.
    fn manifest(stored_bytes: u64, encrypted: bool) -> Manifest {
        let mut m: Manifest = serde_json::from_value(json!({
            "format_version": 1, "lifeboat_version": "0", "database": "app-prod", "profile": "full",
            "logical_time": "2026-11-22T02:00:00Z", "started_at": "2026-11-22T02:00:00Z",
            "finished_at": "2026-11-22T02:01:00Z", "duration_seconds": 60.0,
            "source": {"engine": "postgres", "server_version": "16.4", "dbname": "app", "database_size_bytes": 1},
            "pg_dump_version": "16.4", "tables": [],
            "plaintext": {"sha256": "00", "bytes": 1},
            "stored": {"bucket": "b", "key": "k", "bytes": stored_bytes, "sha256": "00", "parts": 1, "sse": "aws:kms",
                       "kms_key_id": null, "object_lock_until": null},
            "compression": {"algorithm": "zstd", "level": 3},
            "encryption": null,
            "verification": {"method": "pg_restore -f /dev/null", "pg_restore_version": "16.4"}
        }))
        .unwrap();
        if encrypted {
            m.encryption = serde_json::from_value(json!({"algorithm": "age", "recipients": ["age1x"]})).unwrap();
        }
        m
    }

    #[test]
    fn an_export_that_cannot_be_restored_in_time_or_decrypted_is_not_started() {
        const MIB: u64 = 1024 * 1024;
        let now = Instant::now();
        let in_15_minutes = Some(now + std::time::Duration::from_secs(900));
        assert_eq!(
            refusal(&manifest(100 * MIB, false), false, 12, in_15_minutes, now),
            None
        );
        assert_eq!(refusal(&manifest(100 * MIB, true), true, 12, in_15_minutes, now), None);
        let no_identity = refusal(&manifest(MIB, true), false, 12, None, now).unwrap_or_default();
        assert!(no_identity.contains("no identity is configured"), "{no_identity}");
        let too_large = refusal(&manifest(20 * 1024 * MIB, false), false, 12, in_15_minutes, now).unwrap_or_default();
        assert!(too_large.starts_with("not started: 20480 MiB stored"), "{too_large}");
        assert!(
            too_large.contains("the ECS restore task does not run plan tests"),
            "{too_large}"
        );
    }

    #[test]
    fn a_profile_that_is_not_a_profile_name_is_refused_before_anything_runs() {
        for bad in ["../x", "Full", "", "rdb", "a/b"] {
            let start = json!({"action": "export_start", "database": "app-prod",
                               "requested_at": "2026-11-22T03:00:00Z", "export": bad});
            assert!(parse(start).is_err(), "{bad}");
            let state = json!({"database": "app-prod", "requested_at": "2026-11-22T03:00:00Z", "export": bad});
            for action in ["poll", "export_verify", "report", "cleanup"] {
                assert!(
                    parse(json!({"action": action, "test": state})).is_err(),
                    "{action} {bad}"
                );
            }
        }
        let start = json!({"action": "export_start", "database": "app-prod",
                           "requested_at": "2026-11-22T03:00:00Z", "export": "full"});
        assert!(matches!(parse(start), Ok(Request::ExportStart { .. })));
    }
}
