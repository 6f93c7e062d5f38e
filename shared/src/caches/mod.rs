//! Caches: ElastiCache for Redis OSS and Valkey, node-based and serverless, backed up and restore-tested the way
//! databases are.
//!
//! Owns the cache model, selection and the ElastiCache adapter ([`elasticache`]); the RDB verifier ([`rdb`]); RDB
//! copies into the bucket ([`rdb_copy`]) and what is recorded about them ([`records`]); what a restore test checks
//! on a restored cache ([`check`]); restore tests of caches ([`restore`]) and those seeded from an RDB copy
//! ([`rdb_restore`]).
//!
//! Caches stand on `rds`: they reuse its selector, snapshot tags, retention, name shortening and restore-test
//! rules (test passed, RTO/RPO, timeouts), so a cache is kept and judged by the same rules as a database. They
//! stand on `postgres` only for its TLS settings (`LIFEBOAT_DB_SSLMODE`, `LIFEBOAT_DB_CA_BUNDLE`), so a cache
//! check is exactly as strict as a database connection.
//!
//! May use: `rds`, `postgres`, `bucket`, `core`. Must never: be imported by those (monitoring of caches is in
//! `monitoring`, above), trust an RDB file before the verifier read it whole, or delete a cache snapshot or a
//! restored group that does not carry Lifeboat's tags.

pub mod check;
pub mod elasticache;
pub mod rdb;
pub mod rdb_copy;
pub mod rdb_restore;
pub mod records;
pub mod restore;
