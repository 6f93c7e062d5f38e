//! A table's columns read from the `CREATE TABLE` statement pg_dump writes as a `TABLE` entry's definition, for
//! the content watch's schema drift (a column added, removed or changing type).
//!
//! pg_dump writes one column or table constraint per line, four spaces in, between a line ending with `(` and
//! one starting with `)`: `    name type [COLLATE c] [DEFAULT e] [NOT NULL] [GENERATED ...]`, or
//! `    CONSTRAINT name CHECK (...)`. Anything else (a typed table `OF type`, a line that does not fit, an
//! unbalanced quote) is not guessed at: the answer is `None` and only the definition's hash is compared. Never an
//! error: a definition this reader does not understand must not fail an export.

use crate::bucket::manifest::Column;

/// The words after which a column line no longer names its type.
const AFTER_TYPE: [&str; 10] = [
    " COLLATE ",
    " DEFAULT ",
    " NOT NULL",
    " NULL",
    " GENERATED ",
    " CONSTRAINT ",
    " CHECK ",
    " REFERENCES ",
    " PRIMARY KEY",
    " UNIQUE",
];

/// The columns of `definition`, in order; `None` when it is not a `CREATE TABLE` with a column list this reader
/// understands.
pub fn columns(definition: &str) -> Option<Vec<Column>> {
    let mut lines = definition.lines();
    // The statement may follow `SET` lines or comments; its column list opens at the end of its first line.
    let create = lines.by_ref().find(|l| l.starts_with("CREATE "))?;
    if !(create.contains(" TABLE ") && create.ends_with(" (")) {
        return None;
    }
    let mut out = Vec::new();
    for line in lines {
        if line.starts_with(')') {
            return Some(out);
        }
        let item = line.strip_prefix("    ")?;
        let item = item.strip_suffix(',').unwrap_or(item);
        if item.starts_with("CONSTRAINT ") {
            continue;
        }
        out.push(column(item)?);
    }
    // The list never closed.
    None
}

/// One column line: its name (a quoted identifier unquoted) and its type.
fn column(item: &str) -> Option<Column> {
    let (name, rest) = match item.strip_prefix('"') {
        Some(quoted) => {
            let end = closing_quote(quoted)?;
            (quoted[..end].replace("\"\"", "\""), &quoted[end + 1..])
        }
        None => {
            let end = item.find(' ')?;
            (item[..end].to_owned(), &item[end..])
        }
    };
    let rest = rest.strip_prefix(' ')?;
    let end = type_end(rest)?;
    let type_name = rest[..end].trim();
    if name.is_empty() || type_name.is_empty() {
        return None;
    }
    Some(Column {
        name,
        type_name: type_name.to_owned(),
    })
}

/// Where the identifier quoted at the start of `s` (its opening quote already taken) closes: `""` is a quote
/// inside it.
fn closing_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            if bytes.get(i + 1) == Some(&b'"') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Where a column's type ends: at the first of [`AFTER_TYPE`] outside double quotes, or at the end of the line.
/// `None` for an unbalanced quote.
fn type_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut quoted = false;
    for i in 0..bytes.len() {
        if bytes[i] == b'"' {
            quoted = !quoted;
        } else if !quoted && bytes[i] == b' ' && AFTER_TYPE.iter().any(|w| s[i..].starts_with(w)) {
            return Some(i);
        }
    }
    (!quoted).then_some(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cols(definition: &str) -> Option<Vec<(String, String)>> {
        columns(definition).map(|c| c.into_iter().map(|c| (c.name, c.type_name)).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(list.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect())
    }

    #[test]
    fn reads_the_columns_pg_dump_writes_with_their_clauses() {
        let definition = "CREATE TABLE public.orders (\n    id bigint NOT NULL,\n    \"Customer Name\" character varying(200) COLLATE pg_catalog.\"C\" NOT NULL,\n    total numeric(10,2) DEFAULT 0 NOT NULL,\n    \"we\"\"ird\" public.\"Mood\"[],\n    at timestamp with time zone,\n    doubled integer GENERATED ALWAYS AS ((id * 2)) STORED,\n    CONSTRAINT positive CHECK ((total >= (0)::numeric))\n);\n";
        assert_eq!(
            cols(definition),
            pairs(&[
                ("id", "bigint"),
                ("Customer Name", "character varying(200)"),
                ("total", "numeric(10,2)"),
                ("we\"ird", "public.\"Mood\"[]"),
                ("at", "timestamp with time zone"),
                ("doubled", "integer"),
            ])
        );
    }

    #[test]
    fn partitioned_inherited_unlogged_and_empty_tables_are_read() {
        assert_eq!(
            cols("CREATE TABLE public.m (\n    d date NOT NULL,\n    v text\n)\nPARTITION BY RANGE (d);\n"),
            pairs(&[("d", "date"), ("v", "text")])
        );
        assert_eq!(
            cols("CREATE TABLE public.child (\n    extra integer\n)\nINHERITS (public.parent);\n"),
            pairs(&[("extra", "integer")])
        );
        assert_eq!(
            cols("CREATE UNLOGGED TABLE public.u (\n    k text\n);\n"),
            pairs(&[("k", "text")])
        );
        assert_eq!(cols("CREATE TABLE public.e (\n);\n"), pairs(&[]));
    }

    #[test]
    fn what_does_not_fit_is_none_never_a_guess() {
        assert_eq!(cols("CREATE TABLE public.t OF public.ty;\n"), None);
        assert_eq!(cols("CREATE VIEW public.v AS\n SELECT 1;\n"), None);
        assert_eq!(cols("CREATE TABLE public.t (\n    a integer,\n"), None);
        assert_eq!(cols("CREATE TABLE public.t (\n    \"open integer\n);\n"), None);
        assert_eq!(cols("CREATE TABLE public.t (\n  a integer\n);\n"), None);
        assert_eq!(cols(""), None);
    }

    proptest! {
        #[test]
        fn any_definition_is_read_or_refused_without_panicking(s in "(CREATE TABLE x \\(\n)?[ -~\n\"]{0,200}") {
            let _ = columns(&s);
        }
    }
}
