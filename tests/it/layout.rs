//! The bucket's layout against moto's S3: a cache and a database of the same name keep apart. The database's
//! newest export, its newest export of each profile and `lifeboat exports`' listing answer only the database's
//! exports, whether the cache's RDB copy was written where copies live now or where an older version kept them.

use chrono::{TimeZone, Utc};
use lifeboat::bucket::layout::{self, rdb_keys};
use lifeboat_tests::moto::Moto;

const REGION: &str = "us-east-1";
const BUCKET: &str = "lifeboat-layout";
const NAME: &str = "orders";

async fn put(s3: &aws_sdk_s3::Client, key: &str, body: &str) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_never_reads_a_cache_copy_of_the_same_name() {
    let moto = Moto::start();
    let s3 = aws_sdk_s3::Client::new(&moto.config(REGION));
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let exported = Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap();
    let (_, db_manifest) = layout::export_keys(NAME, "full", exported, false);
    put(&s3, &db_manifest, "{}").await;
    // The cache's copies are newer than the database's export, so a listing that mixed them would pick a copy.
    let copied = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
    put(&s3, &rdb_keys(NAME, copied).manifest(), "{}").await;
    let legacy = "exports/orders/rdb/2026/11/28/orders-rdb-20261128T030000Z.manifest.json";
    put(&s3, legacy, "{}").await;

    let keys = layout::export_manifest_keys(&s3, BUCKET, NAME, None).await.unwrap();
    assert_eq!(keys, vec![db_manifest.clone()]);
    let newest = layout::newest_export(&s3, BUCKET, NAME, None).await.unwrap();
    assert_eq!(newest, Some((db_manifest.clone(), exported)));
    let copy = layout::newest_key(&s3, BUCKET, &layout::rdb_prefix(NAME), layout::MANIFEST_SUFFIX)
        .await
        .unwrap();
    assert_eq!(copy.map(|(k, _)| k), Some(rdb_keys(NAME, copied).manifest()));
}
