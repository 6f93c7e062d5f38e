//! The SQL side of a rotation. `ALTER ROLE ... PASSWORD` and `CREATE ROLE` cannot take bound parameters, so names
//! are quoted with `quote_ident` and the password is sent as a SCRAM-SHA-256 verifier in a quoted literal: the
//! server (and its statement log) never sees the plaintext password.

use std::time::Duration;

use lifeboat::postgres::db::{self, describe, FailureKind, TlsSettings};
use lifeboat::postgres::rotation::set_secret::RoleRights;
use lifeboat::postgres::rotation::{quote_ident, quote_literal};
use tokio_postgres::{Client, GenericClient};

use crate::credentials::{Credentials, Role};
use crate::error::RotateError;

/// Logs in with one credential; the error says which credential failed and why.
pub async fn connect(
    creds: &Credentials,
    role: Role,
    tls: &TlsSettings,
    dbname: Option<&str>,
    timeout: Duration,
) -> Result<Client, RotateError> {
    let target = creds.target(tls, dbname);
    db::connect(&target, timeout).await.map_err(|e| {
        let detail = match &e {
            db::DbError::Connect {
                host,
                port,
                dbname,
                message,
                ..
            } => format!("connecting to {host}:{port}/{dbname}: {message}"),
            other => other.to_string(),
        };
        RotateError::database(role, &creds.username, e.kind(), detail)
    })
}

fn statement_error(role: Role, user: &str, what: &str, e: &tokio_postgres::Error) -> RotateError {
    RotateError::database(role, user, FailureKind::of(e), format!("{what}: {}", describe(e)))
}

/// The password as the server stores it (SCRAM-SHA-256 with a random salt), quoted for the statement.
fn verifier(password: &str) -> String {
    quote_literal(&postgres_protocol::password::scram_sha_256(password.as_bytes()))
}

pub async fn set_password(
    client: &Client,
    as_role: Role,
    as_user: &str,
    user: &str,
    password: &str,
) -> Result<(), RotateError> {
    let sql = format!("ALTER ROLE {} WITH PASSWORD {}", quote_ident(user), verifier(password));
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| statement_error(as_role, as_user, &format!("setting the password of user {user}"), &e))
}

pub async fn role_exists(client: &Client, as_role: Role, as_user: &str, name: &str) -> Result<bool, RotateError> {
    let row = client
        .query_opt("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", &[&name])
        .await
        .map_err(|e| statement_error(as_role, as_user, "looking up roles", &e))?;
    Ok(row.is_some())
}

/// What `user` may do that makes it an administrator: superuser, member of `rds_superuser` (directly or through
/// other roles; the role exists on RDS only), CREATEROLE. Read as the master.
pub async fn role_rights(client: &Client, as_user: &str, user: &str) -> Result<RoleRights, RotateError> {
    let row = client
        .query_opt(
            "SELECT u.rolsuper, u.rolcreaterole, EXISTS (SELECT 1 FROM pg_catalog.pg_roles r \
               WHERE r.rolname = 'rds_superuser' AND pg_catalog.pg_has_role(u.oid, r.oid, 'MEMBER')) \
             FROM pg_catalog.pg_roles u WHERE u.rolname = $1",
            &[&user],
        )
        .await
        .map_err(|e| statement_error(Role::Master, as_user, &format!("reading the rights of user {user}"), &e))?
        .ok_or_else(|| {
            RotateError::database(
                Role::Master,
                as_user,
                FailureKind::Database,
                format!("user {user} does not exist in the database"),
            )
        })?;
    Ok(RoleRights {
        superuser: row.get(0),
        create_role: row.get(1),
        rds_superuser: row.get(2),
    })
}

/// The role attributes and memberships of `source` that a clone must share.
struct Profile {
    inherit: bool,
    create_role: bool,
    create_db: bool,
    bypass_rls: bool,
    connection_limit: i32,
    /// (role, with admin option)
    memberships: Vec<(String, bool)>,
}

async fn profile(client: &impl GenericClient, as_user: &str, source: &str) -> Result<Profile, RotateError> {
    let err = |e: tokio_postgres::Error| statement_error(Role::Master, as_user, &format!("reading user {source}"), &e);
    let row = client
        .query_opt(
            "SELECT rolinherit, rolcreaterole, rolcreatedb, rolbypassrls, rolconnlimit \
             FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&source],
        )
        .await
        .map_err(err)?
        .ok_or_else(|| {
            RotateError::database(
                Role::Master,
                as_user,
                FailureKind::Database,
                format!("user {source} (AWSCURRENT) does not exist in the database, so it has nothing to clone"),
            )
        })?;
    let memberships = client
        .query(
            "SELECT r.rolname, m.admin_option FROM pg_catalog.pg_auth_members m \
             JOIN pg_catalog.pg_roles r ON r.oid = m.roleid \
             JOIN pg_catalog.pg_roles u ON u.oid = m.member \
             WHERE u.rolname = $1 ORDER BY r.rolname",
            &[&source],
        )
        .await
        .map_err(err)?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
        .collect();
    Ok(Profile {
        inherit: row.get(0),
        create_role: row.get(1),
        create_db: row.get(2),
        bypass_rls: row.get(3),
        connection_limit: row.get(4),
        memberships,
    })
}

/// Grants `clone` what `source` has: its role memberships (with the same admin option) and, through membership
/// in `source` itself, its privileges on every object and the objects it owns. Idempotent: granting a membership
/// that exists is a notice, not an error.
async fn grant_like(
    client: &impl GenericClient,
    as_user: &str,
    source: &str,
    clone: &str,
    p: &Profile,
) -> Result<(), RotateError> {
    let mut sql = Vec::new();
    for (role, admin) in &p.memberships {
        if role != clone {
            sql.push(format!(
                "GRANT {} TO {}{}",
                quote_ident(role),
                quote_ident(clone),
                if *admin { " WITH ADMIN OPTION" } else { "" }
            ));
        }
    }
    sql.push(format!("GRANT {} TO {}", quote_ident(source), quote_ident(clone)));
    for statement in sql {
        client.batch_execute(&statement).await.map_err(|e| {
            statement_error(
                Role::Master,
                as_user,
                &format!("granting {source}'s roles to {clone}"),
                &e,
            )
        })?;
    }
    Ok(())
}

/// Creates `clone` with `source`'s attributes, memberships and privileges, in one transaction: a failure leaves
/// no half-made role behind for the next attempt to trip over.
pub async fn create_clone(
    client: &mut Client,
    as_user: &str,
    source: &str,
    clone: &str,
    password: &str,
) -> Result<(), RotateError> {
    let p = profile(client, as_user, source).await?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| statement_error(Role::Master, as_user, "starting a transaction", &e))?;
    let mut create = format!("CREATE ROLE {} WITH LOGIN", quote_ident(clone));
    create.push_str(if p.inherit { " INHERIT" } else { " NOINHERIT" });
    if p.create_role {
        create.push_str(" CREATEROLE");
    }
    if p.create_db {
        create.push_str(" CREATEDB");
    }
    if p.bypass_rls {
        create.push_str(" BYPASSRLS");
    }
    create.push_str(&format!(
        " CONNECTION LIMIT {} PASSWORD {}",
        p.connection_limit,
        verifier(password)
    ));
    tx.batch_execute(&create)
        .await
        .map_err(|e| statement_error(Role::Master, as_user, &format!("creating user {clone}"), &e))?;
    grant_like(&tx, as_user, source, clone, &p).await?;
    tx.commit()
        .await
        .map_err(|e| statement_error(Role::Master, as_user, &format!("creating user {clone}"), &e))
}

/// Sets the clone's password and brings its memberships up to date with `source` (roles granted to the original
/// since the clone was made).
pub async fn update_clone(
    client: &Client,
    as_user: &str,
    source: &str,
    clone: &str,
    password: &str,
) -> Result<(), RotateError> {
    let p = profile(client, as_user, source).await?;
    set_password(client, Role::Master, as_user, clone, password).await?;
    grant_like(client, as_user, source, clone, &p).await
}

/// Proves a login works: `SELECT current_user` must name the expected user.
pub async fn check_login(client: &Client, role: Role, user: &str) -> Result<(), RotateError> {
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .map_err(|e| statement_error(role, user, "running SELECT current_user", &e))?;
    let actual: String = row.get(0);
    if actual != user {
        return Err(RotateError::database(
            role,
            user,
            FailureKind::Database,
            format!("logged in as {actual}, expected {user}"),
        ));
    }
    Ok(())
}
