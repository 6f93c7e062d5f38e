//! The verify step: is the restored database there, complete and usable? It connects to the target in its input
//! (the restored instance, or any PostgreSQL a test points it at), so the checks do not depend on RDS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat::bucket::manifest::{Manifest, TableCount};
use lifeboat::postgres::archive::{self, plan, ArchiveError, Counters};
use lifeboat::postgres::db::{self, TlsSettings};
use lifeboat::postgres::rotation::quote_ident;
use lifeboat::rds::recovery::Heartbeat;
use lifeboat::rds::restore::{compare_counts, scratch_check, sql_answer_passes, Check, Reach};

use crate::event::Target;
use crate::settings::SqlCheck;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn db_target(t: &Target, dbname: &str, tls: &TlsSettings) -> db::Target {
    db::Target {
        host: t.host.clone(),
        port: t.port,
        dbname: dbname.to_owned(),
        user: t.user.clone(),
        password: t.password.clone(),
        tls: tls.clone(),
    }
}

fn expected_counts(m: &Manifest) -> BTreeMap<String, i64> {
    m.tables.iter().map(|t| (t.label(), t.rows)).collect()
}

/// Counts each of the manifest's tables by its schema and name (never by splitting a display name, which a dot
/// inside a name would cut in the wrong place), keyed by the same label as [`expected_counts`].
async fn count_rows(client: &tokio_postgres::Client, tables: &[TableCount]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for t in tables {
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&t.schema),
            quote_ident(&t.name)
        );
        // A table that cannot be counted is reported missing by the comparison.
        if let Ok(row) = client.query_one(&sql, &[]).await {
            out.insert(t.label(), row.get::<_, i64>(0));
        }
    }
    out
}

async fn sql_check(client: &tokio_postgres::Client, check: &SqlCheck) -> Check {
    match client.simple_query(&check.sql).await {
        Err(e) => Check::new(&check.name, false, db::describe(&e)),
        Ok(messages) => {
            let first = messages.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_owned()),
                _ => None,
            });
            match first {
                None => Check::new(&check.name, false, "returned no row"),
                Some(v) => Check::new(&check.name, sql_answer_passes(&v), format!("returned {v}")),
            }
        }
    }
}

/// Connects, runs `SELECT 1`, the configured SQL checks, and compares row counts with the manifest.
pub async fn database_checks(
    target: &Target,
    tls: &TlsSettings,
    manifest: Option<&Manifest>,
    tolerance_percent: f64,
    checks: &[SqlCheck],
) -> Vec<Check> {
    let dbname = manifest
        .map(|m| m.source.dbname.clone())
        .unwrap_or_else(|| target.dbname.clone());
    let client = match db::connect(&db_target(target, &dbname, tls), CONNECT_TIMEOUT).await {
        Ok(c) => c,
        Err(e) => return vec![Check::new("connect", false, e.to_string())],
    };
    let mut out = vec![Check::new(
        "connect",
        true,
        format!(
            "{}:{}/{dbname} as {} ({})",
            target.host,
            target.port,
            target.user,
            tls.mode.as_str()
        ),
    )];
    for check in checks {
        out.push(sql_check(&client, check).await);
    }
    match manifest {
        None => out.push(Check::skipped(
            "rows match the latest export",
            "no complete export to compare with",
        )),
        Some(m) => {
            let expected = expected_counts(m);
            let actual = count_rows(&client, &m.tables).await;
            out.extend(compare_counts(&expected, &actual, tolerance_percent));
        }
    }
    out
}

/// The name of the check that reads a point-in-time test's heartbeat.
pub const HEARTBEAT_CHECK: &str = "heartbeat";

/// What the catalogue must say of a heartbeat before it is read: an ordinary (or partitioned) table whose column
/// is a timestamp. The restored database came from a backup, so its objects are code: a view or a column of
/// another type could run functions it defines; a plain table's timestamp column, aggregated by
/// `pg_catalog.max`, runs none.
const HEARTBEAT_SHAPE: &str = "SELECT c.relkind::text, pg_catalog.format_type(a.atttypid, a.atttypmod) \
     FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
     WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND NOT a.attisdropped";

/// The newest value of the heartbeat's column, in seconds since the epoch (`None`: the table is empty).
async fn newest_beat(target: &Target, tls: &TlsSettings, h: &Heartbeat, dbname: &str) -> Result<Option<f64>, String> {
    let dbname = h.dbname.as_deref().unwrap_or(dbname);
    let client = db::connect(&db_target(target, dbname, tls), CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let shape = client
        .query_opt(HEARTBEAT_SHAPE, &[&h.schema, &h.table, &h.column])
        .await
        .map_err(|e| db::describe(&e))?
        .ok_or("no such table and column in the restored database")?;
    let (kind, ty): (String, String) = (shape.get(0), shape.get(1));
    let timestamp = ty == "timestamp with time zone" || ty == "timestamp without time zone";
    if !matches!(kind.as_str(), "r" | "p") || !timestamp {
        return Err(format!(
            "not a table's timestamp column (relkind {kind}, type {ty}): it is not read"
        ));
    }
    let sql = format!(
        "SELECT pg_catalog.date_part('epoch', pg_catalog.max({}))::float8 FROM {}.{}",
        quote_ident(&h.column),
        quote_ident(&h.schema),
        quote_ident(&h.table)
    );
    let row = client.query_one(&sql, &[]).await.map_err(|e| db::describe(&e))?;
    row.try_get::<_, Option<f64>>(0).map_err(|e| db::describe(&e))
}

/// How far a point-in-time restore's data reaches: the newest value of the heartbeat's column (`heartbeat`, from
/// the source's `lifeboat:heartbeat` tag), with a check saying what was read; the restore time `at` when no
/// heartbeat is configured. The tag names identifiers only: each is quoted, the one query is Lifeboat's own, and
/// a value never leaves as more than a time. A heartbeat that cannot be read fails its check (the owner said
/// the table would be there) and the reach falls back to the restore time.
pub async fn reach(
    target: &Target,
    tls: &TlsSettings,
    heartbeat: Option<Result<Heartbeat, String>>,
    dbname: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> (Reach, Option<Check>) {
    let fallback = Reach {
        time: at,
        from: "restore time".into(),
    };
    let h = match heartbeat {
        None => return (fallback, None),
        Some(Err(e)) => return (fallback, Some(Check::new(HEARTBEAT_CHECK, false, e))),
        Some(Ok(h)) => h,
    };
    let label = format!("{}.{}.{}", h.schema, h.table, h.column);
    let newest = match newest_beat(target, tls, &h, dbname).await {
        Err(e) => {
            return (
                fallback,
                Some(Check::new(HEARTBEAT_CHECK, false, format!("{label}: {e}"))),
            )
        }
        Ok(None) => {
            let detail = format!("{label} is empty in the restored database");
            return (fallback, Some(Check::new(HEARTBEAT_CHECK, false, detail)));
        }
        Ok(Some(epoch)) => epoch,
    };
    let time = chrono::DateTime::from_timestamp_millis((newest * 1000.0) as i64).unwrap_or(at);
    // A commit after the restore time means the copy is not the moment asked for.
    let after = time > at + chrono::Duration::seconds(1);
    let detail = match after {
        false => format!(
            "{label}: the newest commit restored is {}, {} s before the restore time {}",
            time.to_rfc3339(),
            (at - time).num_seconds(),
            at.to_rfc3339()
        ),
        true => format!(
            "{label}: the restored data holds a commit at {}, after the restore time {}",
            time.to_rfc3339(),
            at.to_rfc3339()
        ),
    };
    (
        Reach {
            time,
            from: format!("heartbeat {label}"),
        },
        Some(Check::new(HEARTBEAT_CHECK, !after, detail)),
    )
}

/// The admission restore-export uses ([`plan::admit_restore`]): why a scratch restore of `stored_bytes` cannot
/// finish before `deadline` at `mib_per_second`, or `None` when it can. A refused one is not started, and the
/// archive is then not proven restorable: a failed check, never a passed or a skipped one.
fn refusal(stored_bytes: u64, mib_per_second: u32, deadline: Option<Instant>, now: Instant) -> Option<String> {
    let left = deadline.map(|d| d.saturating_duration_since(now));
    let refusal = plan::admit_restore(stored_bytes, mib_per_second, left).err()?;
    Some(format!(
        "not started: {} MiB stored at about {} MiB/s needs ~{} s but only {} s remain in this invocation \
         (LIFEBOAT_RESTORE_MIB_PER_SECOND); restore it with the ECS restore task",
        refusal.size_mib, refusal.mib_per_second, refusal.estimate_secs, refusal.remaining_secs
    ))
}

/// A scratch restore of the latest export: where the export is, how to read it, and where it goes.
#[derive(Clone, Copy)]
pub struct Scratch<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    pub manifest: &'a Manifest,
    /// Decrypts an age-encrypted export; without it such an export is skipped.
    pub identity: Option<&'a age::x25519::Identity>,
    pub target: &'a Target,
    pub tls: &'a TlsSettings,
    pub pg_restore: &'a str,
    /// The scratch database, created and dropped on the target.
    pub database: &'a str,
    /// The check's name in the report.
    pub check: &'a str,
    /// The speed a restore is assumed to go (`LIFEBOAT_RESTORE_MIB_PER_SECOND`, as restore-export's admission).
    pub mib_per_second: u32,
    /// The invocation's deadline: a scratch restore that would not finish before it is refused up front, and one
    /// still running near it is stopped and dropped. `None`: no deadline.
    pub deadline: Option<Instant>,
}

/// Names where the export comes from and goes to; the identity is a secret and is never printed.
impl std::fmt::Debug for Scratch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("bucket", &self.bucket)
            .field("key", &self.manifest.stored.key)
            .field("identity", &self.identity.map(|_| "<secret>"))
            .field("target", self.target)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Scratch<'_> {
    /// Restores the export into the scratch database, streamed through its checksums, decryption and
    /// decompression into pg_restore (`lifeboat::postgres::archive`, which refuses an existing database and drops the
    /// scratch database when the restore fails), compares its row counts with the manifest exactly, and drops
    /// the scratch database again.
    pub async fn check(&self) -> Check {
        if self.manifest.encryption.is_some() && self.identity.is_none() {
            return Check::skipped(self.check, "the export is age-encrypted and no identity is configured");
        }
        if let Some(refused) = refusal(
            self.manifest.stored.bytes,
            self.mib_per_second,
            self.deadline,
            Instant::now(),
        ) {
            return Check::new(self.check, false, refused);
        }
        let identities: Vec<_> = self.identity.cloned().into_iter().collect();
        let into = db_target(self.target, self.database, self.tls);
        let restored = archive::restore::restore(archive::restore::Request {
            s3: self.s3,
            bucket: self.bucket,
            manifest: self.manifest,
            tables: &[],
            identities: &identities,
            pg_restore: self.pg_restore,
            into: &into,
            maintenance_db: &self.manifest.source.dbname,
            counters: &Arc::new(Counters::default()),
            interrupt: None,
            jobs: None,
            stop_at: lifeboat::postgres::export::stop_at(self.deadline),
            rewrite: None,
        })
        .await;
        let expected = expected_counts(self.manifest);
        match restored {
            Ok(report) => {
                self.drop_scratch().await;
                scratch_check(self.check, report.plaintext_bytes, &expected, &expected)
            }
            // The scratch database is already dropped: say which tables differ, as the count comparison does.
            Err(ArchiveError::RowCounts { mismatches }) => {
                let mut actual = expected.clone();
                for m in mismatches {
                    match m.actual {
                        Some(n) => actual.insert(m.table, n),
                        None => actual.remove(&m.table),
                    };
                }
                scratch_check(self.check, 0, &expected, &actual)
            }
            Err(e) => Check::new(self.check, false, e.to_string()),
        }
    }

    /// Drops the verified scratch database and the role that owned it; a failure is logged (the check's
    /// verdict stands).
    async fn drop_scratch(&self) {
        let admin = db_target(self.target, &self.manifest.source.dbname, self.tls);
        let role = archive::owner::role_name(self.database);
        let dropped = match db::connect(&admin, CONNECT_TIMEOUT).await {
            Err(e) => e.to_string(),
            Ok(client) => {
                // Two statements: DROP DATABASE cannot run inside the transaction a batch of them would be.
                let database = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(self.database));
                let role = format!("DROP ROLE IF EXISTS {}", quote_ident(&role));
                match client.batch_execute(&database).await {
                    Ok(()) => match client.batch_execute(&role).await {
                        Ok(()) => return,
                        Err(e) => db::describe(&e),
                    },
                    Err(e) => db::describe(&e),
                }
            }
        };
        tracing::warn!(database = self.database, error = %dropped, "could not drop the scratch database");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_scratch_restore_is_admitted_or_refused_up_front_from_size_speed_and_time_left() {
        let now = Instant::now();
        assert_eq!(
            refusal(10 * 1024 * MIB, 12, None, now),
            None,
            "no deadline: never refused"
        );
        // 100 MiB at 12 MiB/s: ~9 s, plus the 60 s margin, fits in 15 minutes.
        assert_eq!(refusal(100 * MIB, 12, Some(now + Duration::from_secs(900)), now), None);
        // 20 GiB at 12 MiB/s: ~1707 s, more than a whole invocation.
        let refused = refusal(20 * 1024 * MIB, 12, Some(now + Duration::from_secs(900)), now).unwrap_or_default();
        assert!(
            refused.starts_with("not started: 20480 MiB stored at about 12 MiB/s"),
            "{refused}"
        );
        assert!(refused.contains("only 900 s remain"), "{refused}");
        assert!(
            refusal(MIB, 12, Some(now + Duration::from_secs(30)), now).is_some(),
            "within the margin"
        );
    }
}
