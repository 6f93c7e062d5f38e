//! The refreshed database marked as Lifeboat's, and swapped in under the rule's database name.
//!
//! The swap replaces only a database an earlier refresh made ([`super::naming::Mark`], whose role must also be
//! the database's real owner); any other database of that name is refused and the new database is kept under its
//! own name. The old database is renamed aside (`<db>_old_<stamp>`) before the new one takes its name, and only
//! dropped once the new one has it: should the second rename fail, the old one is renamed back, so a failure
//! midway never loses it. Sessions on the old database are ended (with new connections refused first, so none
//! arrives between the two renames).
//! Never: drops a database without a refresh's mark, or a role other than the one that owns the marked database
//! (and not a superuser, nor one that may log in).

use chrono::{DateTime, Utc};

use super::naming::{old_database, Mark};
use super::RefreshError;
use crate::postgres::db;
use crate::postgres::export::quote_ident;
use crate::postgres::rotation::quote_literal;

/// What the swap did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Swapped {
    /// The earlier refresh's database it replaced (and dropped), under the name that refresh created it with.
    pub replaced: Option<String>,
    /// What the swap could not clean up after the new database was in place (the data is where it should be).
    pub warnings: Vec<String>,
}

fn sql(action: String) -> impl FnOnce(tokio_postgres::Error) -> String {
    move |e| format!("{action}: {}", db::describe(&e))
}

/// Marks `database` (just created by `rule`) as a refresh's.
pub async fn mark(admin: &tokio_postgres::Client, mark: &Mark) -> Result<(), String> {
    let statement = format!(
        "COMMENT ON DATABASE {} IS {}",
        quote_ident(&mark.database),
        quote_literal(&mark.comment())
    );
    admin
        .batch_execute(&statement)
        .await
        .map_err(sql(format!("marking {} as a refresh's", mark.database)))
}

/// An existing database of the target's name: its owner, whether that owner is a superuser or may log in, and
/// its comment.
struct Existing {
    owner: String,
    owner_is_plain: bool,
    comment: Option<String>,
}

async fn existing(admin: &tokio_postgres::Client, database: &str) -> Result<Option<Existing>, String> {
    let row = admin
        .query_opt(
            "SELECT r.rolname::text, NOT r.rolsuper AND NOT r.rolcanlogin, \
             pg_catalog.shobj_description(d.oid, 'pg_database') \
             FROM pg_catalog.pg_database d JOIN pg_catalog.pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
            &[&database],
        )
        .await
        .map_err(sql(format!("looking for database {database}")))?;
    Ok(row.map(|r| Existing {
        owner: r.get(0),
        owner_is_plain: r.get(1),
        comment: r.get(2),
    }))
}

/// Gives `new` the name `database`, replacing an earlier refresh's database of that name.
pub async fn swap(
    admin: &tokio_postgres::Client,
    new: &str,
    database: &str,
    now: DateTime<Utc>,
) -> Result<Swapped, RefreshError> {
    let failed = |message: String| RefreshError::Swap {
        database: database.to_owned(),
        kept: new.to_owned(),
        message,
    };
    let Some(old) = existing(admin, database).await.map_err(failed)? else {
        rename(admin, new, database).await.map_err(failed)?;
        return Ok(Swapped::default());
    };
    let mark = old
        .comment
        .as_deref()
        .and_then(Mark::parse)
        .filter(|m| m.owned_by(&old.owner) && old.owner_is_plain);
    let Some(mark) = mark else {
        return Err(RefreshError::NotOurs {
            database: database.to_owned(),
            kept: new.to_owned(),
        });
    };
    let aside = old_database(database, now);
    set_connections(admin, database, false).await.map_err(failed)?;
    let moved = async {
        end_sessions(admin, database).await?;
        rename(admin, database, &aside).await
    }
    .await;
    if let Err(message) = moved {
        let reopened = set_connections(admin, database, true).await;
        return Err(failed(with_undo(message, reopened, database)));
    }
    if let Err(message) = rename(admin, new, database).await {
        let back = async {
            rename(admin, &aside, database).await?;
            set_connections(admin, database, true).await
        }
        .await;
        return Err(match back {
            Ok(()) => failed(message),
            Err(undo) => RefreshError::SwapUndo {
                database: database.to_owned(),
                kept: new.to_owned(),
                aside,
                message,
                undo,
            },
        });
    }
    let mut swapped = Swapped {
        replaced: Some(mark.database.clone()),
        warnings: Vec::new(),
    };
    if let Err(e) = drop_old(admin, &aside, &mark.role).await {
        tracing::warn!(database = %aside, role = %mark.role, error = %e, "the replaced database was not dropped");
        swapped.warnings.push(e);
    }
    Ok(swapped)
}

fn with_undo(message: String, undone: Result<(), String>, database: &str) -> String {
    match undone {
        Ok(()) => message,
        Err(undo) => format!("{message}; and {database} still refuses new connections ({undo})"),
    }
}

async fn rename(admin: &tokio_postgres::Client, from: &str, to: &str) -> Result<(), String> {
    let statement = format!("ALTER DATABASE {} RENAME TO {}", quote_ident(from), quote_ident(to));
    admin
        .batch_execute(&statement)
        .await
        .map_err(sql(format!("renaming {from} to {to}")))
}

async fn set_connections(admin: &tokio_postgres::Client, database: &str, allow: bool) -> Result<(), String> {
    let statement = format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
        quote_ident(database)
    );
    admin
        .batch_execute(&statement)
        .await
        .map_err(sql(format!("setting ALLOW_CONNECTIONS {allow} on {database}")))
}

/// Ends every other session on `database` (it refuses new ones already).
async fn end_sessions(admin: &tokio_postgres::Client, database: &str) -> Result<(), String> {
    admin
        .query(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()",
            &[&database],
        )
        .await
        .map_err(sql(format!("ending the sessions on {database}")))?;
    Ok(())
}

/// Drops the replaced database, then its role (which then owns nothing).
async fn drop_old(admin: &tokio_postgres::Client, database: &str, role: &str) -> Result<(), String> {
    admin
        .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", quote_ident(database)))
        .await
        .map_err(sql(format!(
            "dropping the replaced database {database}: drop it by hand"
        )))?;
    admin
        .batch_execute(&format!("DROP ROLE {}", quote_ident(role)))
        .await
        .map_err(sql(format!(
            "dropping role {role} of the replaced database: drop it by hand"
        )))
}
