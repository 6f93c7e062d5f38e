//! The role a restore runs as: an archive is code (its CHECK constraints, defaults, triggers and index
//! expressions call functions its authors wrote, and they run while pg_restore loads the data), so it must never
//! run with the rights of the administrator whose secret Lifeboat holds.
//!
//! Each restore creates its own role, named after the new database ([`role_name`]), which owns that database and
//! nothing else: NOSUPERUSER, NOCREATEDB, NOCREATEROLE, NOREPLICATION, NOBYPASSRLS, a member of no role. pg_restore
//! and every statement Lifeboat runs inside the new database **log in as that role** (with a one-time random
//! password, removed with LOGIN as soon as the restore ends). `SET ROLE` (and `pg_restore --role`) is not enough:
//! the session user stays the administrator, and any function the archive plants can call
//! `set_config('role', 'none', false)` (`RESET ROLE`) and continue as the administrator. This was reproduced on
//! PostgreSQL 15: a CHECK constraint's function reset the role during COPY and gave its author CREATEDB and
//! CREATEROLE. Logging in as the role leaves nothing to reset to.
//!
//! The password is 32 random bytes that only this process holds; CREATE ROLE carries only its SCRAM-SHA-256
//! verifier (as rotation sends passwords), so a server that logs DDL never logs the password itself; it expires
//! (VALID UNTIL) and is removed with LOGIN when the restore ends.
//!
//! The role is INHERIT, unlike the rest of its attributes: it is granted no role, and on PostgreSQL 15 and later
//! the owner of a database holds its `public` schema only through the implicit `pg_database_owner` membership,
//! which NOINHERIT would cut.
//!
//! Privileges: the archive's own GRANT/REVOKE statements are not restored (`--no-privileges`). They name the
//! source server's roles: on another server these are missing (and with `--exit-on-error` the restore would
//! fail), or are different principals who happen to share a name (and would be handed the restored data). The
//! new database is deny-by-default instead: CONNECT and TEMPORARY are revoked from PUBLIC at once, and default
//! privileges are set before the restore so that no function or procedure it creates is executable by PUBLIC.
//! A `REVOKE EXECUTE ... FROM PUBLIC` in the archive (on a SECURITY DEFINER function, say) therefore still holds,
//! and whoever should use the restored database is granted the role by an operator (`GRANT <role> TO <user>`).
//! On servers older than 15, where `public` is writable by everyone, CREATE on it is revoked from PUBLIC and the
//! role is made its owner.
//!
//! Owns the role's name, its creation, the statements that fence the new database, and the role's removal.
//! Never drops or alters a role it did not create in the same call (an existing role of that name is refused).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;

use super::ArchiveError;
use crate::postgres::db;
use crate::postgres::export::quote_ident;

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;
const SUFFIX: &str = "_owner";

/// How long the one-time password may be used to log in, should the process die before it is removed.
const PASSWORD_VALID_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// The role that owns a restored database: `<database>_owner`, or, when that would be longer than PostgreSQL
/// keeps, the name cut at a character boundary plus a short digest of the whole name (so that two long names
/// sharing a prefix still get two roles). Deterministic: the operator can tell it from the database's name.
pub fn role_name(database: &str) -> String {
    let whole = format!("{database}{SUFFIX}");
    if whole.len() <= MAX_IDENTIFIER {
        return whole;
    }
    let digest = super::stream::hex(&Sha256::digest(database.as_bytes()));
    let tail = format!("_{}{SUFFIX}", &digest[..8]);
    let mut cut = MAX_IDENTIFIER - tail.len();
    while !database.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tail}", &database[..cut])
}

/// The statements, run by the administrator on the maintenance database, that create the role and the new
/// database it owns, and fence the database from PUBLIC. `server_version_num` decides how the administrator is
/// made able to create a database owned by the role: PostgreSQL 16 and later grant a role to its creator
/// (with the options `createrole_self_grant` names); older ones need an explicit grant. `password` is what the
/// server stores: the caller passes a SCRAM-SHA-256 verifier, never the password itself.
pub fn create_statements(
    server_version_num: i32,
    role: &str,
    database: &str,
    password: &str,
    valid_until: DateTime<Utc>,
) -> Vec<String> {
    let r = quote_ident(role);
    let d = quote_ident(database);
    let mut out = Vec::new();
    if server_version_num >= 160_000 {
        // The implicit grant to a non-superuser creator carries only ADMIN; SET lets it create a database owned
        // by the role, INHERIT lets it drop that database and count its rows afterwards. Superusers need neither.
        out.push("SET createrole_self_grant = 'set, inherit'".to_owned());
    }
    out.push(format!(
        "CREATE ROLE {r} LOGIN PASSWORD '{password}' VALID UNTIL '{}' NOSUPERUSER NOCREATEDB NOCREATEROLE \
         INHERIT NOREPLICATION NOBYPASSRLS",
        valid_until.format("%Y-%m-%d %H:%M:%S+00")
    ));
    if server_version_num < 160_000 {
        out.push(format!("GRANT {r} TO CURRENT_USER"));
    }
    out.push(format!("CREATE DATABASE {d} OWNER {r}"));
    out.push(format!("REVOKE CONNECT, TEMPORARY ON DATABASE {d} FROM PUBLIC"));
    out
}

/// The statements the administrator runs inside the new database before the restore (servers older than 15
/// create `public` writable by everyone and owned by the bootstrap superuser).
pub fn fence_public_statements(server_version_num: i32, role: &str) -> Vec<String> {
    if server_version_num >= 150_000 {
        return Vec::new();
    }
    vec![
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
        format!("ALTER SCHEMA public OWNER TO {}", quote_ident(role)),
    ]
}

/// What the role itself runs in the new database before pg_restore: nothing it creates is executable by PUBLIC.
pub const DEFAULT_PRIVILEGES: &str = "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC";

/// Once the restore is done, the role can no longer log in; it stays as the database's owner.
pub fn retire_statement(role: &str) -> String {
    format!("ALTER ROLE {} NOLOGIN PASSWORD NULL", quote_ident(role))
}

/// A role created by this restore, with its one-time password (never printed).
pub struct Owner {
    pub role: String,
    password: String,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Owner {
    /// Where the role logs in: the same server and TLS settings as the administrator, the new database.
    pub fn target(&self, admin: &db::Target, dbname: &str) -> db::Target {
        db::Target {
            dbname: dbname.to_owned(),
            user: self.role.clone(),
            password: self.password.clone(),
            ..admin.clone()
        }
    }
}

/// 32 random bytes in hex: a password that is only ever used by this process, for the length of one restore.
pub fn one_time_password() -> Result<String, ArchiveError> {
    let mut bytes = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| ArchiveError::Random)?;
    Ok(super::stream::hex(&bytes))
}

fn sql_error(action: String) -> impl FnOnce(tokio_postgres::Error) -> ArchiveError {
    move |e| ArchiveError::Sql {
        action,
        message: db::describe(&e),
    }
}

/// The server's `server_version_num`.
pub async fn server_version(admin: &tokio_postgres::Client) -> Result<i32, ArchiveError> {
    let row = admin
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(sql_error("reading the server version".to_owned()))?;
    Ok(row.get(0))
}

/// What [`create`] made, for [`drop_created`] to remove on failure.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub role: bool,
    pub database: bool,
}

/// Creates the role and the database it owns, refusing a database or a role that exists (checked first, and
/// again by the server's own answer). On an error, `created` says what exists now and must be dropped.
pub async fn create(
    admin: &tokio_postgres::Client,
    version: i32,
    database: &str,
    created: &mut Created,
) -> Result<Owner, ArchiveError> {
    let role = role_name(database);
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(sql_error(format!("checking whether database {database} exists")))?;
    let db_exists = || ArchiveError::TargetExists {
        database: database.to_owned(),
    };
    if exists.is_some() {
        return Err(db_exists());
    }
    let role_exists = || ArchiveError::RoleExists {
        role: role.clone(),
        database: database.to_owned(),
    };
    let taken = admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(sql_error(format!("checking whether role {role} exists")))?;
    if taken.is_some() {
        return Err(role_exists());
    }
    let password = one_time_password()?;
    let stored = postgres_protocol::password::scram_sha_256(password.as_bytes());
    let valid_until = Utc::now() + PASSWORD_VALID_FOR;
    for statement in create_statements(version, &role, database, &stored, valid_until) {
        let action = if statement.starts_with("CREATE ROLE") {
            format!("creating role {role}")
        } else {
            // Never the CREATE ROLE statement itself: it holds the password.
            statement.clone()
        };
        match admin.batch_execute(&statement).await {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) && !created.role => return Err(role_exists()),
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => return Err(db_exists()),
            Err(e) => return Err(sql_error(action)(e)),
        }
        if statement.starts_with("CREATE ROLE") {
            created.role = true;
        } else if statement.starts_with("CREATE DATABASE") {
            created.database = true;
        }
    }
    Ok(Owner { role, password })
}

/// Drops what [`create`] made, the database first (WITH FORCE ends pg_restore's session, and with it
/// pg_restore), then the role (which then owns nothing).
pub async fn drop_created(
    admin: &tokio_postgres::Client,
    database: &str,
    role: &str,
    created: Created,
) -> Result<(), String> {
    if created.database {
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(database)
            ))
            .await
            .map_err(|e| format!("dropping database {database}: {}", db::describe(&e)))?;
    }
    if created.role {
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(role)))
            .await
            .map_err(|e| format!("dropping role {role}: {}", db::describe(&e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_role_is_named_after_the_database() {
        assert_eq!(role_name("app_prod_restore"), "app_prod_restore_owner");
        let long = "x".repeat(63);
        let role = role_name(&long);
        assert_eq!(role.len(), 63, "{role}");
        assert!(role.ends_with("_owner") && role.starts_with("xxxx"), "{role}");
        let other = format!("{}y", "x".repeat(62));
        assert_ne!(role_name(&other), role, "two long names sharing a prefix get two roles");
        assert_eq!(role_name(&long), role, "deterministic");
    }

    proptest! {
        #[test]
        fn a_role_name_is_never_longer_than_postgresql_keeps(name in "\\PC{1,63}") {
            prop_assume!(name.len() <= 63);
            let role = role_name(&name);
            prop_assert!(role.len() <= MAX_IDENTIFIER);
            prop_assert!(role.ends_with(SUFFIX));
        }
    }

    #[test]
    fn postgresql_15_grants_the_role_explicitly_and_16_through_createrole_self_grant() {
        let at: DateTime<Utc> = "2026-12-13T04:00:00Z".parse().unwrap();
        let v15 = create_statements(150_004, "t_owner", "t", "pw", at);
        assert_eq!(
            v15,
            [
                "CREATE ROLE \"t_owner\" LOGIN PASSWORD 'pw' VALID UNTIL '2026-12-13 04:00:00+00' NOSUPERUSER \
                 NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS",
                "GRANT \"t_owner\" TO CURRENT_USER",
                "CREATE DATABASE \"t\" OWNER \"t_owner\"",
                "REVOKE CONNECT, TEMPORARY ON DATABASE \"t\" FROM PUBLIC",
            ]
        );
        let v16 = create_statements(160_001, "t_owner", "t", "pw", at);
        assert_eq!(v16[0], "SET createrole_self_grant = 'set, inherit'");
        assert!(v16[1].starts_with("CREATE ROLE \"t_owner\" LOGIN"), "{v16:?}");
        assert!(!v16.iter().any(|s| s.starts_with("GRANT")), "{v16:?}");
        assert_eq!(v16[2..], v15[2..]);
    }

    #[test]
    fn public_is_fenced_where_the_server_leaves_it_open() {
        assert!(fence_public_statements(150_000, "r").is_empty());
        assert_eq!(
            fence_public_statements(140_010, "r"),
            [
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                "ALTER SCHEMA public OWNER TO \"r\""
            ]
        );
    }

    #[test]
    fn the_password_is_random_and_never_printed() {
        let a = one_time_password().unwrap();
        let b = one_time_password().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let owner = Owner {
            role: "r".into(),
            password: a.clone(),
        };
        assert!(!format!("{owner:?}").contains(&a));
    }
}
