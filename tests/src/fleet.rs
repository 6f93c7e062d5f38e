//! A fleet of databases in the emulator: the demo's and the integration tests' starting point.

use aws_sdk_rds::types::Tag;
use aws_sdk_rds::Client;

/// One database to create.
#[derive(Debug, Clone)]
pub struct FleetDb {
    pub id: &'static str,
    pub cluster: bool,
    pub tags: &'static [(&'static str, &'static str)],
}

const BACKUP: (&str, &str) = ("lifeboat:backup", "true");

/// Several tagged instances, a tagged Aurora cluster (with one member instance, which is never selected on its
/// own), and one untagged instance that Lifeboat must leave alone.
pub const STANDARD: &[FleetDb] = &[
    FleetDb {
        id: "app-prod",
        cluster: false,
        tags: &[BACKUP, ("env", "production")],
    },
    FleetDb {
        id: "app-staging",
        cluster: false,
        tags: &[BACKUP, ("env", "staging")],
    },
    FleetDb {
        id: "billing",
        cluster: false,
        tags: &[BACKUP, ("env", "production")],
    },
    FleetDb {
        id: "analytics",
        cluster: true,
        tags: &[BACKUP, ("env", "production")],
    },
    FleetDb {
        id: "sandbox",
        cluster: false,
        tags: &[("env", "dev")],
    },
];

fn tags(list: &[(&str, &str)]) -> Vec<Tag> {
    list.iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect()
}

/// Creates the databases (PostgreSQL instances; Aurora PostgreSQL clusters with one writer instance).
pub async fn create(rds: &Client, fleet: &[FleetDb]) {
    for db in fleet {
        if db.cluster {
            rds.create_db_cluster()
                .db_cluster_identifier(db.id)
                .engine("aurora-postgresql")
                .engine_version("16.4")
                .master_username("lifeboat_admin")
                .master_user_password("not-a-real-password-1")
                .set_tags(Some(tags(db.tags)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("creating cluster {}: {e:?}", db.id));
            rds.create_db_instance()
                .db_instance_identifier(format!("{}-1", db.id))
                .db_cluster_identifier(db.id)
                .db_instance_class("db.r6g.large")
                .engine("aurora-postgresql")
                .set_tags(Some(tags(db.tags)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("creating cluster instance {}-1: {e:?}", db.id));
        } else {
            rds.create_db_instance()
                .db_instance_identifier(db.id)
                .db_instance_class("db.t4g.micro")
                .engine("postgres")
                .engine_version("16.4")
                .allocated_storage(20)
                .master_username("lifeboat_admin")
                .master_user_password("not-a-real-password-1")
                .set_tags(Some(tags(db.tags)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("creating instance {}: {e:?}", db.id));
        }
    }
}

/// How [`create_protected`] sets up a fleet: as a real production fleet is, every database with storage encrypted
/// under `kms_key_id` and seven days of automated backups, except those named in `unencrypted` (a story's
/// deliberate finding). Deletion protection stays off: moto ignores a restore's `DeletionProtection=false`
/// (it drops false overrides), so a restore test's copy of a protected database could never be cleaned up in
/// the emulator; the evidence report lists it as advice, not as a breach.
#[derive(Debug, Clone, Copy)]
pub struct Protection<'a> {
    pub kms_key_id: &'a str,
    pub unencrypted: &'a [&'a str],
}

/// Automated backups kept by a protected fleet: monitor's default minimum.
pub const RETENTION_DAYS: i32 = 7;

/// Creates the databases as [`create`] does, protected as [`Protection`] says.
pub async fn create_protected(rds: &Client, fleet: &[FleetDb], protection: Protection<'_>) {
    for db in fleet {
        let encrypted = !protection.unencrypted.contains(&db.id);
        let key = encrypted.then(|| protection.kms_key_id.to_owned());
        if db.cluster {
            rds.create_db_cluster()
                .db_cluster_identifier(db.id)
                .engine("aurora-postgresql")
                .engine_version("16.4")
                .master_username("lifeboat_admin")
                .master_user_password("not-a-real-password-1")
                .storage_encrypted(encrypted)
                .set_kms_key_id(key)
                .backup_retention_period(RETENTION_DAYS)
                .set_tags(Some(tags(db.tags)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("creating cluster {}: {e:?}", db.id));
            rds.create_db_instance()
                .db_instance_identifier(format!("{}-1", db.id))
                .db_cluster_identifier(db.id)
                .db_instance_class("db.r6g.large")
                .engine("aurora-postgresql")
                .set_tags(Some(tags(db.tags)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("creating cluster instance {}-1: {e:?}", db.id));
        } else {
            rds.create_db_instance()
                .db_instance_identifier(db.id)
                .db_instance_class("db.t4g.micro")
                .engine("postgres")
                .engine_version("16.4")
                .allocated_storage(20)
                .master_username("lifeboat_admin")
                .master_user_password("not-a-real-password-1")
                .storage_encrypted(encrypted)
                .set_kms_key_id(key)
                .backup_retention_period(RETENTION_DAYS)
                .set_tags(Some(tags(db.tags)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("creating instance {}: {e:?}", db.id));
        }
    }
}
