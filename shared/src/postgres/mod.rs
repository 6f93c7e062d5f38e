//! The PostgreSQL side: talking to the databases themselves, as opposed to RDS's control plane.
//!
//! Owns connections and TLS, with credentials read from Secrets Manager at use time ([`db`]) and the shapes a
//! secret's JSON may take ([`secret_json`]: only database secrets are read this way, so it lives here and not in
//! the core); the export rules ([`export`]: profiles, admission, pg_dump versions, table matching) and the row
//! counts read from the dump as it streams ([`dump_format`]); what of PostgreSQL's stderr may leave the process
//! ([`pg_stderr`]); rotation's rules ([`rotation`]); and, behind the `archive` cargo feature, restores from
//! exports ([`archive`]: only the `restore` function and the `lifeboat` tool compile zstd and age).
//!
//! May use: `bucket`, `core`. Must never: call RDS's control plane (which databases exist and their snapshots
//! are `rds`'s), put a row's values into an error, a log line or a message, or connect without TLS unless the
//! operator said so.

#[cfg(feature = "archive")]
pub mod archive;
pub mod db;
pub mod dump_format;
pub mod export;
pub mod pg_stderr;
pub mod rotation;
pub mod secret_json;
