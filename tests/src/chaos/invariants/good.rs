//! Reported good is good: every manifest in the bucket (an export's, an RDB copy's) names objects that exist with
//! the size and SHA-256 it records, and at each check the newest copy of each kind not restored before is restored
//! for real: an export by the product's own restore path (decrypted with the stack's identity, pg_restore into a
//! new database owned by a role it creates, row counts compared with the manifest's), an RDB copy through
//! Lifeboat's verifier and then loaded by a throwaway `redis-server`, its keys counted against the manifest's.
//!
//! A copy past its policy whose expiry was cut short (its objects deleted, its manifest not yet: the product
//! deletes in that order and the next tick finishes) is no violation: it is no longer reported good.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lifeboat::bucket::layout::{self, CACHE_EXPORTS_PREFIX, EXPORTS_PREFIX, MANIFEST_SUFFIX};
use lifeboat::bucket::manifest::Manifest;
use lifeboat::caches::records::RdbManifest;
use sha2::{Digest, Sha256};

use super::{kept, objects, violation, Cloud, Invariant, Ledger, Violation};
use crate::demo::deployed::World;

/// One object a manifest vouches for.
struct Vouched {
    key: String,
    bytes: u64,
    sha256: String,
}

/// A manifest as read: an export's or an RDB copy's, its time and its objects.
enum Copy {
    Export(Box<Manifest>),
    Rdb(RdbManifest),
}

impl Copy {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Copy::Export(m) => m.logical_time,
            Copy::Rdb(m) => m.snapshot_time,
        }
    }

    fn vouched(&self) -> Vec<Vouched> {
        match self {
            Copy::Export(m) => vec![Vouched {
                key: m.stored.key.clone(),
                bytes: m.stored.bytes,
                sha256: m.stored.sha256.clone(),
            }],
            Copy::Rdb(m) => m
                .shards
                .iter()
                .map(|s| Vouched {
                    key: s.key.clone(),
                    bytes: s.size,
                    sha256: s.sha256.clone(),
                })
                .collect(),
        }
    }
}

async fn read(c: &Cloud, key: &str) -> Result<Copy, String> {
    let e = |e: lifeboat::core::error::Error| format!("manifest {key} cannot be read: {e}");
    if key.starts_with(CACHE_EXPORTS_PREFIX) {
        Ok(Copy::Rdb(layout::get_json(&c.s3, &c.bucket, key).await.map_err(e)?))
    } else {
        Ok(Copy::Export(Box::new(
            layout::get_json(&c.s3, &c.bucket, key).await.map_err(e)?,
        )))
    }
}

async fn body(c: &Cloud, key: &str) -> Result<Vec<u8>, String> {
    let got =
        c.s3.get_object()
            .bucket(&c.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("{key} cannot be read: {e}"))?;
    let bytes = got
        .body
        .collect()
        .await
        .map_err(|e| format!("{key} cannot be read: {e}"))?;
    Ok(bytes.into_bytes().to_vec())
}

pub(super) async fn check(w: &World, c: &Cloud, ledger: &mut Ledger, now: DateTime<Utc>, out: &mut Vec<Violation>) {
    let bad = |what: String| violation(Invariant::ReportedGood, what);
    let listed = match objects(&c.s3, &c.bucket, EXPORTS_PREFIX).await {
        Ok(l) => l,
        Err(e) => return out.push(bad(e)),
    };
    let mut intact: BTreeMap<String, Copy> = BTreeMap::new();
    for key in listed.keys().filter(|k| k.ends_with(MANIFEST_SUFFIX)) {
        let copy = match read(c, key).await {
            Ok(copy) => copy,
            Err(e) => {
                out.push(bad(e));
                continue;
            }
        };
        ledger.manifests.insert(key.clone(), copy.at());
        let before = out.len();
        for v in copy.vouched() {
            if let Some(what) = object_fault(c, &listed, ledger, &v).await {
                if !kept::past_policy(c, ledger, key, now) {
                    out.push(bad(format!("{key} reports {} good, but {what}", v.key)));
                }
            }
        }
        if out.len() == before {
            intact.insert(key.clone(), copy);
        }
    }
    for rdb in [false, true] {
        let newest = intact
            .iter()
            .filter(|(k, _)| k.starts_with(CACHE_EXPORTS_PREFIX) == rdb && !ledger.sampled.contains(*k))
            .max_by_key(|(k, copy)| (copy.at(), (*k).clone()));
        let Some((key, copy)) = newest else { continue };
        ledger.sampled.insert(key.clone());
        let restored = match copy {
            Copy::Export(m) => restore_export(w, c, m).await,
            Copy::Rdb(m) => load_rdb(c, m).await,
        };
        if let Err(e) = restored {
            out.push(bad(format!("{key}'s sample does not restore: {e}")));
        }
    }
}

/// What is wrong with one vouched-for object, if anything: missing, another size, another SHA-256.
async fn object_fault(
    c: &Cloud,
    listed: &BTreeMap<String, (u64, String)>,
    ledger: &mut Ledger,
    v: &Vouched,
) -> Option<String> {
    let Some((size, etag)) = listed.get(&v.key) else {
        return Some("it is missing".to_owned());
    };
    if *size != v.bytes {
        return Some(format!("it is {size} bytes, not the {} it says", v.bytes));
    }
    if ledger.verified.get(&v.key) == Some(etag) {
        return None;
    }
    let bytes = match body(c, &v.key).await {
        Ok(b) => b,
        Err(e) => return Some(e),
    };
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if sha != v.sha256 {
        return Some(format!("its SHA-256 is {sha}, not the {} it says", v.sha256));
    }
    ledger.verified.insert(v.key.clone(), etag.clone());
    None
}

/// The product's restore of a whole export into a new database on the local server (the role it creates owns
/// what it restores), its row counts compared with the manifest's here too; both are dropped afterwards.
async fn restore_export(w: &World, c: &Cloud, m: &Manifest) -> Result<(), String> {
    use lifeboat::postgres::archive::restore::{restore, Request};
    use lifeboat::postgres::db::{SslMode, Target, TlsSettings};
    let into = Target {
        host: "127.0.0.1".into(),
        port: w.pg.port,
        dbname: format!("chaos_sample_{}", crate::random_hex(4)),
        user: crate::postgres::SUPERUSER.into(),
        password: w.pg.password.clone(),
        tls: TlsSettings {
            mode: SslMode::Disable,
            ca_bundle: None,
        },
    };
    let pg_restore = crate::postgres::bin_dir().join("pg_restore").display().to_string();
    let report = restore(Request {
        s3: &c.s3,
        bucket: &c.bucket,
        manifest: m,
        tables: &[],
        identities: std::slice::from_ref(&w.identity.0),
        pg_restore: &pg_restore,
        into: &into,
        maintenance_db: "postgres",
        counters: &Arc::new(lifeboat::postgres::archive::Counters::default()),
        interrupt: None,
        jobs: None,
        stop_at: None,
        rewrite: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    let dropped =
        w.pg.psql("postgres", &format!("DROP DATABASE \"{}\"", report.database))
            .and_then(|_| w.pg.psql("postgres", &format!("DROP ROLE \"{}\"", report.owner_role)));
    let restored: BTreeMap<String, i64> = report
        .tables
        .iter()
        .map(|t| (format!("{}.{}", t.schema, t.name), t.restored_rows))
        .collect();
    let promised: BTreeMap<String, i64> = m
        .tables
        .iter()
        .map(|t| (format!("{}.{}", t.schema, t.name), t.rows))
        .collect();
    if restored != promised {
        return Err(format!("restored rows {restored:?}, the manifest says {promised:?}"));
    }
    dropped
        .map(|_| ())
        .map_err(|e| format!("dropping the sample's database: {e}"))
}

/// Each shard through Lifeboat's verifier, then loaded by a `redis-server` of its own: both must count the keys
/// per database the manifest records.
async fn load_rdb(c: &Cloud, m: &RdbManifest) -> Result<(), String> {
    for shard in &m.shards {
        let bytes = body(c, &shard.key).await?;
        let summary = lifeboat::caches::rdb::verify_sized(&bytes[..], Some(bytes.len() as u64))
            .map_err(|e| format!("{}: {e}", shard.key))?;
        let verified: BTreeMap<u64, u64> = summary.databases.iter().map(|(db, k)| (*db, k.keys)).collect();
        if verified != shard.keys_per_db {
            return Err(format!(
                "{}: the verifier counts {verified:?} keys per database, the manifest {:?}",
                shard.key, shard.keys_per_db
            ));
        }
        let loaded = redis_keys(&bytes)?;
        if loaded != shard.keys_per_db {
            return Err(format!(
                "{}: redis-server loads {loaded:?} keys per database, the manifest says {:?}",
                shard.key, shard.keys_per_db
            ));
        }
    }
    Ok(())
}

/// The keys per database a fresh `redis-server` holds after loading `rdb` (it refuses to start on a bad file).
fn redis_keys(rdb: &[u8]) -> Result<BTreeMap<u64, u64>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("copy.rdb"), rdb).map_err(|e| e.to_string())?;
    let d = dir.path().display().to_string();
    let info = tokio::task::block_in_place(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let r = crate::redis::Redis::start(&["--dir", &d, "--dbfilename", "copy.rdb"]);
            r.cli(0, &["INFO", "keyspace"])
        }))
    })
    .map_err(|_| "redis-server would not load it".to_owned())?;
    Ok(lifeboat::caches::check::parse_keyspace(&info)
        .into_iter()
        .map(|(db, k)| (db, k.keys))
        .collect())
}
