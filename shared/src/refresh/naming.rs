//! The names a refresh gives (the new database, the old one while it is swapped out) and the mark that tells a
//! later refresh a database is Lifeboat's to replace: pure rules, no database.
//!
//! The mark is a database comment, `lifeboat refresh rule=<rule> database=<name> role=<role>`, written once the
//! proof has passed. Anyone who may own a refreshed database may also rewrite its comment, so the mark alone never
//! decides what is dropped: [`Mark::owned_by`] also asks that the role be the one Lifeboat names after the
//! database it created ([`role_name`]) and the database's actual owner (read from `pg_database`), so a comment
//! cannot point the swap at another role.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::postgres::archive::owner::role_name;

/// PostgreSQL keeps this many bytes of an identifier (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;
/// The stamp in a refresh's database names: the refresh's time to the second.
const STAMP: &str = "%Y%m%d%H%M%S";
const MARK_PREFIX: &str = "lifeboat refresh ";

/// The new database a refresh restores into: `<database>_<yyyymmddhhmmss>`.
pub fn new_database(database: &str, now: DateTime<Utc>) -> String {
    stamped(database, &format!("_{}", now.format(STAMP)))
}

/// What the database being replaced is renamed to while the new one takes its name: `<database>_old_<stamp>`.
pub fn old_database(database: &str, now: DateTime<Utc>) -> String {
    stamped(database, &format!("_old_{}", now.format(STAMP)))
}

/// `base` + `suffix`, within PostgreSQL's limit: a base too long is cut at a character boundary and followed by
/// a short digest of the whole base, so two long names that share a prefix still get two names.
fn stamped(base: &str, suffix: &str) -> String {
    let whole = format!("{base}{suffix}");
    if whole.len() <= MAX_IDENTIFIER {
        return whole;
    }
    let digest = crate::postgres::archive::stream::hex(&Sha256::digest(base.as_bytes()));
    let tail = format!("_{}{suffix}", &digest[..8]);
    let mut cut = MAX_IDENTIFIER.saturating_sub(tail.len());
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{tail}", &base[..cut])
}

/// A refresh's mark on the database it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub rule: String,
    /// The name the refresh created the database under (before any swap).
    pub database: String,
    /// The role that owns it.
    pub role: String,
}

impl Mark {
    /// The mark of a database `rule` created as `database`.
    pub fn new(rule: &str, database: &str) -> Self {
        Self {
            rule: rule.to_owned(),
            database: database.to_owned(),
            role: role_name(database),
        }
    }

    /// The comment's text. Names are written as they are: a refresh rule's name is a plan identifier, and a
    /// database name with a space would not read back, so [`Mark::parse`] refuses it rather than guess.
    pub fn comment(&self) -> String {
        format!(
            "{MARK_PREFIX}rule={} database={} role={}",
            self.rule, self.database, self.role
        )
    }

    /// A comment read back; `None` when it is not a refresh's mark.
    pub fn parse(comment: &str) -> Option<Self> {
        let rest = comment.strip_prefix(MARK_PREFIX)?;
        let mut fields = rest.split(' ');
        let rule = fields.next()?.strip_prefix("rule=")?;
        let database = fields.next()?.strip_prefix("database=")?;
        let role = fields.next()?.strip_prefix("role=")?;
        if fields.next().is_some() || [rule, database, role].iter().any(|f| f.is_empty()) {
            return None;
        }
        Some(Self {
            rule: rule.to_owned(),
            database: database.to_owned(),
            role: role.to_owned(),
        })
    }

    /// Whether the mark holds for a database whose owner is `owner`: the role is the one Lifeboat names after
    /// the database it created, and it owns the database. Only then may the swap drop the database and the role.
    pub fn owned_by(&self, owner: &str) -> bool {
        self.role == role_name(&self.database) && self.role == owner
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        "2026-12-07T04:05:06Z".parse().unwrap()
    }

    #[test]
    fn the_new_database_is_named_after_the_target_and_the_time() {
        assert_eq!(new_database("app", at()), "app_20261207040506");
        assert_eq!(old_database("app", at()), "app_old_20261207040506");
    }

    #[test]
    fn a_long_name_is_cut_with_a_digest_and_keeps_its_stamp() {
        let long = "a".repeat(60);
        let name = new_database(&long, at());
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.ends_with("_20261207040506") && name.starts_with("aaaa"), "{name}");
        let other = format!("{}b", "a".repeat(59));
        assert_ne!(
            new_database(&other, at()),
            name,
            "two long names sharing a prefix get two names"
        );
        let old = old_database(&long, at());
        assert!(old.len() <= 63 && old.ends_with("_old_20261207040506"), "{old}");
    }

    proptest! {
        #[test]
        fn names_are_never_longer_than_postgresql_keeps(base in "\\PC{1,63}") {
            prop_assume!(base.len() <= 63);
            for name in [new_database(&base, at()), old_database(&base, at())] {
                prop_assert!(name.len() <= MAX_IDENTIFIER, "{}", name);
            }
        }
    }

    #[test]
    fn a_mark_reads_back_and_holds_only_for_its_own_role() {
        let mark = Mark::new("staging", "app_20261207040506");
        assert_eq!(
            mark.comment(),
            "lifeboat refresh rule=staging database=app_20261207040506 role=app_20261207040506_owner"
        );
        let back = Mark::parse(&mark.comment()).unwrap();
        assert_eq!(back, mark);
        assert!(back.owned_by("app_20261207040506_owner"));
        assert!(
            !back.owned_by("someone_else"),
            "the database's real owner must be the mark's role"
        );
    }

    #[test]
    fn a_forged_or_foreign_comment_is_not_a_mark() {
        assert_eq!(Mark::parse("production data, do not drop"), None);
        assert_eq!(Mark::parse("lifeboat refresh rule=s database=d"), None);
        assert_eq!(Mark::parse("lifeboat refresh rule=s database=d role=r extra"), None);
        assert_eq!(Mark::parse("lifeboat refresh rule= database=d role=r"), None);
        // A comment naming the administrator as the role: parsed, but it holds for no database.
        let forged = Mark::parse("lifeboat refresh rule=s database=app_1 role=postgres").unwrap();
        assert!(
            !forged.owned_by("postgres"),
            "the role is not the one named after the database"
        );
    }
}
