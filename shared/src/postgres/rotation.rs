//! Rules of Secrets Manager rotation for PostgreSQL, as pure functions: the protocol's steps and staging labels,
//! which user a rotation changes, and SQL quoting for the statements that cannot take bound parameters
//! (`CREATE ROLE`, `ALTER ROLE ... PASSWORD`, `GRANT`). The setSecret decision table is in [`set_secret`].

use std::collections::BTreeMap;

pub mod set_secret;

/// Staging labels of the rotation protocol.
pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// The suffix of the second user in the alternating-users strategy (the name AWS's own templates use).
pub const CLONE_SUFFIX: &str = "_clone";

/// PostgreSQL silently truncates identifiers to NAMEDATALEN - 1 bytes; a longer name would rotate another role.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Create,
    Set,
    Test,
    Finish,
}

impl Step {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "createSecret" => Some(Self::Create),
            "setSecret" => Some(Self::Set),
            "testSecret" => Some(Self::Test),
            "finishSecret" => Some(Self::Finish),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "createSecret",
            Self::Set => "setSecret",
            Self::Test => "testSecret",
            Self::Finish => "finishSecret",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The user changes its own password.
    SingleUser,
    /// The master secret (`masterarn`) keeps two users, `<name>` and `<name>_clone`, and each rotation sets a new
    /// password on the one not in use, so clients holding AWSCURRENT never see a password change under them.
    AlternatingUsers,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleUser => "single-user",
            Self::AlternatingUsers => "alternating-users",
        }
    }
}

/// What a step must do, decided from the secret's version-to-stages map before anything else is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The rotation's version is already AWSCURRENT: the rotation finished; every step is a no-op.
    AlreadyCurrent,
    /// Go on with the step.
    Proceed,
}

/// Checks the protocol's preconditions, as Secrets Manager states them: rotation must be enabled, the token must
/// be a version of the secret, and that version must carry AWSPENDING unless it is already AWSCURRENT.
pub fn plan(rotation_enabled: bool, versions: &BTreeMap<String, Vec<String>>, token: &str) -> Result<Plan, String> {
    if !rotation_enabled {
        return Err("rotation is not enabled on the secret".into());
    }
    // The token itself is never part of a message: it names the version being rotated.
    let stages = versions
        .get(token)
        .ok_or("the rotation's version (ClientRequestToken) is not a version of the secret")?;
    if stages.iter().any(|s| s == AWSCURRENT) {
        return Ok(Plan::AlreadyCurrent);
    }
    if !stages.iter().any(|s| s == AWSPENDING) {
        return Err(format!(
            "the rotation's version is not staged {AWSPENDING} (it has {}): another rotation may have replaced it",
            if stages.is_empty() {
                "no stage".to_owned()
            } else {
                stages.join(", ")
            }
        ));
    }
    Ok(Plan::Proceed)
}

/// The version that carries AWSCURRENT.
pub fn current_version(versions: &BTreeMap<String, Vec<String>>) -> Option<&str> {
    versions
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == AWSCURRENT))
        .map(|(v, _)| v.as_str())
}

/// Checks a role name before it goes anywhere near SQL.
pub fn validate_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the username is empty".into());
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(format!(
            "the username is {} bytes; PostgreSQL truncates names to {MAX_IDENTIFIER_BYTES} bytes",
            name.len()
        ));
    }
    if name.contains('\0') {
        return Err("the username contains a NUL character".into());
    }
    Ok(())
}

/// The clone of `user`: `<user>_clone`, with `user` cut (on a character boundary) so the result fits in 63 bytes.
pub fn clone_of(user: &str) -> String {
    let room = MAX_IDENTIFIER_BYTES - CLONE_SUFFIX.len();
    let mut end = user.len().min(room);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CLONE_SUFFIX}", &user[..end])
}

/// The user the next rotation sets a password on, in the alternating-users strategy: the other user of the pair.
/// `previous` (the AWSPREVIOUS user) is that other user whenever it belongs to the pair, which matters when the
/// original was cut to fit; without it, a name ending in `_clone` goes back to its original, any other to its clone.
pub fn alternate_user(current: &str, previous: Option<&str>) -> Result<String, String> {
    validate_username(current)?;
    if let Some(prev) = previous.filter(|p| *p != current && same_pair(p, current)) {
        return Ok(prev.to_owned());
    }
    match current.strip_suffix(CLONE_SUFFIX) {
        Some(original) if !original.is_empty() && clone_of(original) == current => Ok(original.to_owned()),
        _ => Ok(clone_of(current)),
    }
}

/// Whether `a` and `b` are the two users of one alternating pair.
pub fn same_pair(a: &str, b: &str) -> bool {
    a == b || clone_of(a) == b || clone_of(b) == a
}

/// A quoted SQL identifier: double quotes around it, embedded double quotes doubled (as `quote_ident` does).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal, correct whatever `standard_conforming_strings` is: embedded quotes are doubled,
/// and a value with a backslash becomes an escape string (`E'...'`) with the backslashes doubled (as
/// `quote_literal` does).
pub fn quote_literal(value: &str) -> String {
    let body = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// The default characters left out of generated passwords: those RDS refuses in a master password (`/`, `@`,
/// `"`, space) and those that break libpq connection strings and URLs unless escaped (`'`, `\`, `` ` ``, `:`,
/// `?`, `#`, `%`, `&`, `=`, `+`).
pub const DEFAULT_EXCLUDED_CHARACTERS: &str = "/@\"'\\`:?#%&=+ ";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn versions(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(v, s)| ((*v).to_owned(), s.iter().map(|x| (*x).to_owned()).collect()))
            .collect()
    }

    #[test]
    fn steps_round_trip_and_unknown_steps_are_refused() {
        for s in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            assert_eq!(Step::parse(s.as_str()), Some(s));
        }
        assert_eq!(Step::parse("CreateSecret"), None);
    }

    #[test]
    fn plan_follows_the_protocol() {
        let v = versions(&[("old", &[AWSCURRENT]), ("tok", &[AWSPENDING])]);
        assert_eq!(plan(true, &v, "tok"), Ok(Plan::Proceed));
        assert!(plan(false, &v, "tok").unwrap_err().contains("not enabled"));
        let missing = plan(true, &v, "other").unwrap_err();
        assert!(missing.contains("not a version"));
        assert!(
            !missing.contains("other"),
            "the token must not appear in messages: {missing}"
        );

        let done = versions(&[("old", &[AWSPREVIOUS]), ("tok", &[AWSCURRENT, AWSPENDING])]);
        assert_eq!(plan(true, &done, "tok"), Ok(Plan::AlreadyCurrent));

        // A stale token whose AWSPENDING label moved to a newer rotation.
        let stale = versions(&[("old", &[AWSCURRENT]), ("tok", &[]), ("newer", &[AWSPENDING])]);
        assert!(plan(true, &stale, "tok").unwrap_err().contains("no stage"));
        assert_eq!(current_version(&stale), Some("old"));
    }

    #[test]
    fn usernames_alternate_within_the_identifier_limit() {
        assert_eq!(alternate_user("app", None).unwrap(), "app_clone");
        assert_eq!(alternate_user("app_clone", Some("app")).unwrap(), "app");
        assert_eq!(alternate_user("app_clone", None).unwrap(), "app");
        // A user whose own name ends in _clone but is not anyone's clone.
        assert_eq!(alternate_user("_clone", None).unwrap(), "_clone_clone");

        let long = "a".repeat(63);
        let clone = alternate_user(&long, None).unwrap();
        assert_eq!(clone.len(), 63);
        assert!(clone.ends_with("_clone"));
        assert_eq!(alternate_user(&clone, Some(&long)).unwrap(), long);

        // Multi-byte characters are never split.
        let wide = "é".repeat(31);
        let c = clone_of(&wide);
        assert!(c.len() <= 63 && c.ends_with("_clone"));
        assert!(alternate_user(&"x".repeat(64), None).unwrap_err().contains("64 bytes"));
    }

    #[test]
    fn quoting_handles_hostile_text() {
        assert_eq!(quote_ident(r#"ro"bert"#), r#""ro""bert""#);
        assert_eq!(
            quote_ident("Robert'); DROP TABLE students;--"),
            "\"Robert'); DROP TABLE students;--\""
        );
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"back\slash'"), r"E'back\\slash'''");
    }

    proptest! {
        #[test]
        fn alternation_is_an_involution(user in "[a-z_é\"' ]{1,30}") {
            let other = alternate_user(&user, None).unwrap();
            prop_assert!(other.len() <= MAX_IDENTIFIER_BYTES);
            prop_assert_ne!(&other, &user);
            prop_assert_eq!(alternate_user(&other, Some(&user)).unwrap(), user.clone());
            prop_assert!(same_pair(&user, &other));
        }

        #[test]
        fn quoted_identifiers_unquote_to_the_original(name in "\\PC{0,40}") {
            let q = quote_ident(&name);
            let inner = &q[1..q.len() - 1];
            prop_assert_eq!(inner.replace("\"\"", "\""), name.clone());
            // Every double quote inside is doubled, so the identifier cannot end early.
            prop_assert!(!inner.replace("\"\"", "").contains('"'));
        }

        #[test]
        fn quoted_literals_cannot_end_early(value in "\\PC{0,40}") {
            let q = quote_literal(&value);
            let body = q.trim_start_matches('E');
            let inner = &body[1..body.len() - 1];
            prop_assert!(!inner.replace("''", "").contains('\''));
        }
    }
}
