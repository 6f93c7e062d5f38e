//! What of pg_dump's and pg_restore's stderr may leave the process: the SQLSTATE-bearing error, the object and
//! the line, never a row's values.
//!
//! The server's DETAIL (`Failing row contains (...)`, `Key (email)=(...) already exists`) and COPY's CONTEXT
//! (`COPY users, line 3: "<the row>"`) quote the data being restored, and an error message may end in a quoted
//! value (`invalid input syntax for type integer: "..."`). Backups hold emails, names and card numbers, encrypted
//! at rest; a message goes to logs, Step Functions history, reports and the evidence page, which are not.
//! So: a DETAIL line is withheld whole (with the lines that continue it), a CONTEXT line keeps what precedes
//! its quoted value (`COPY users, line 3`), an error message loses a trailing quoted value, and a statement's
//! `LINE n:` excerpt (and its caret line) is withheld.
//!
//! Owns the rule ([`scrub`]) and the kept end of a scrubbed stderr ([`tail`]). Never keeps a DETAIL's text.

/// How much of the end of stderr is kept: where pg_dump and pg_restore say what went wrong.
const TAIL_BYTES: usize = 2000;

const WITHHELD_DETAIL: &str = "DETAIL:  (withheld: it may quote row values)";
const WITHHELD_VALUE: &str = ": \"...\" (value withheld)";

/// Prefixes that start a new message (any other line continues the one before it).
const STARTS: [&str; 12] = [
    "pg_restore:",
    "pg_dump:",
    "ERROR:",
    "FATAL:",
    "WARNING:",
    "NOTICE:",
    "HINT:",
    "DETAIL:",
    "CONTEXT:",
    "LINE ",
    "Command was:",
    "STATEMENT:",
];

fn starts_message(line: &str) -> bool {
    STARTS.iter().any(|p| line.starts_with(p))
}

/// `text` up to a `: "` or a `near "` (where a quoted value or a statement's text begins), followed by a marker
/// that a value was there.
fn without_quoted_value(text: &str) -> String {
    let at = [": \"", " near \""]
        .iter()
        .filter_map(|p| text.find(p).map(|i| (i, *p)))
        .min_by_key(|(i, _)| *i);
    match at {
        Some((i, ": \"")) => format!("{}{WITHHELD_VALUE}", &text[..i]),
        Some((i, _)) => format!("{} near \"...\" (value withheld)", &text[..i]),
        None => text.to_owned(),
    }
}

/// Every line of `stderr` that may leave the process, rewritten where it quoted data (see the module's doc).
pub fn scrub(stderr: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    // Whether the lines that continue the current message are withheld with it.
    let mut withholding = false;
    for line in stderr.lines() {
        if !starts_message(line) {
            if !withholding {
                out.push(without_quoted_value(line));
            }
            continue;
        }
        withholding = false;
        if line.starts_with("DETAIL:") {
            out.push(WITHHELD_DETAIL.to_owned());
            withholding = true;
        } else if line.starts_with("LINE ") {
            // The statement's text around the error, and the caret line under it.
            withholding = true;
        } else if line.starts_with("Command was:") {
            // The statement's first line names the object (`COPY public.users (...) FROM stdin;`); the rest of
            // it is the archive's text.
            out.push(without_quoted_value(line));
            withholding = true;
        } else {
            out.push(without_quoted_value(line));
        }
    }
    out.join("\n")
}

/// The end of the scrubbed `stderr`, at most [`TAIL_BYTES`] long.
pub fn tail(stderr: &str) -> String {
    let text = scrub(stderr.trim());
    let text = text.trim();
    let start = text.len().saturating_sub(TAIL_BYTES);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pg_restore 15's stderr when COPY hits a CHECK constraint (captured from a real restore).
    const CHECK_DURING_COPY: &str = "pg_restore: error: COPY failed for table \"patients\": ERROR:  new row for \
relation \"patients\" violates check constraint \"patients_age_check\"
DETAIL:  Failing row contains (3, alice@example.com, 123-45-6789, -4).
CONTEXT:  COPY patients, line 3: \"3\talice@example.com\t123-45-6789\t-4\"
";

    /// A unique violation, an input that does not parse, and a multi-line detail, as the server words them.
    const OTHERS: &str = "pg_restore: from TOC entry 3340; 0 16390 TABLE DATA users lifeboat_admin
pg_restore: error: COPY failed for table \"users\": ERROR:  duplicate key value violates unique constraint \
\"users_email_key\"
DETAIL:  Key (email)=(bob@example.com) already exists.
CONTEXT:  COPY users, line 2
pg_restore: error: COPY failed for table \"visits\": ERROR:  invalid input syntax for type integer: \"carol-ssn-987\"
CONTEXT:  COPY visits, line 7, column n: \"carol-ssn-987\"
pg_restore: error: could not execute query: ERROR:  insert or update on table \"visits\" violates foreign key \
constraint \"visits_user_fkey\"
DETAIL:  Key (user_id)=(42)
is not present in table \"users\" (dave@example.com).
Command was: ALTER TABLE ONLY public.visits
    ADD CONSTRAINT visits_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);
pg_restore: error: could not execute query: ERROR:  syntax error at or near \"'eve@example.com'\"
LINE 1: INSERT INTO t VALUES ('eve@example.com')
                              ^
pg_restore: warning: errors ignored on restore: 1
";

    const VALUES: [&str; 7] = [
        "alice@example.com",
        "123-45-6789",
        "bob@example.com",
        "carol-ssn-987",
        "dave@example.com",
        "eve@example.com",
        "(42)",
    ];

    #[test]
    fn no_row_value_survives_but_the_error_object_and_line_do() {
        let all = format!("{CHECK_DURING_COPY}{OTHERS}");
        let kept = scrub(&all);
        for value in VALUES {
            assert!(!kept.contains(value), "{value} leaked:\n{kept}");
        }
        for kept_part in [
            "ERROR:  new row for relation \"patients\" violates check constraint \"patients_age_check\"",
            "CONTEXT:  COPY patients, line 3: \"...\" (value withheld)",
            "duplicate key value violates unique constraint \"users_email_key\"",
            "CONTEXT:  COPY users, line 2",
            "CONTEXT:  COPY visits, line 7, column n: \"...\" (value withheld)",
            "ERROR:  invalid input syntax for type integer: \"...\" (value withheld)",
            "pg_restore: from TOC entry 3340; 0 16390 TABLE DATA users lifeboat_admin",
            "Command was: ALTER TABLE ONLY public.visits",
            "pg_restore: warning: errors ignored on restore: 1",
            "ERROR:  syntax error at or near \"...\" (value withheld)",
            WITHHELD_DETAIL,
        ] {
            assert!(kept.contains(kept_part), "{kept_part} missing:\n{kept}");
        }
        assert!(
            !kept.contains("is not present"),
            "a DETAIL's continuation is withheld too"
        );
        assert!(!kept.contains("ADD CONSTRAINT"), "only a command's first line");
    }

    #[test]
    fn the_tail_is_scrubbed_and_bounded() {
        let long = format!("{}{CHECK_DURING_COPY}", "pg_restore: processing item\n".repeat(200));
        let t = tail(&long);
        assert!(t.len() <= TAIL_BYTES, "{}", t.len());
        assert!(t.ends_with("(value withheld)"), "{t}");
        assert!(!t.contains("alice@example.com"));
        assert_eq!(
            tail("pg_dump: error: connection lost\n"),
            "pg_dump: error: connection lost"
        );
    }
}
