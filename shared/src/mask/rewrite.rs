//! The masking rewriter: a pg_dump custom-format archive in, the same archive out with every masked table's COPY
//! rows rewritten, as it streams (no row is kept beyond the one being rewritten, nothing touches a disk).
//!
//! Never writes a source value of a masked column to its output, an error or a log line; never keeps one in
//! memory past its row (the leak check keeps keyed hashes only).

use std::io::{Read, Write};

use crate::mask::rules::Checked;
use crate::postgres::archive::stream::{Rewrite, RewriteError};

/// The stack's masking key (HMAC-SHA-256), read from Secrets Manager by the caller. Never printed.
#[derive(Clone)]
pub struct MaskKey(pub Vec<u8>);

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

/// Evaluates a column's SQL expression for a batch of rows without writing anything (the refresh runs it in a
/// read-only session on the staging server). `rows` are the table's values as text in `columns`' order; the
/// answer is one value per row.
pub trait SqlEval: Send {
    fn eval(
        &mut self,
        table: &str,
        columns: &[String],
        expression: &str,
        rows: &[Vec<Option<String>>],
    ) -> Result<Vec<Option<String>>, String>;
}

/// What the rewrite did, for the refresh's report: per masked table and column.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Masked {
    pub tables: Vec<MaskedTable>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MaskedTable {
    /// `schema.table`.
    pub table: String,
    pub rows: u64,
    pub columns: Vec<MaskedColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MaskedColumn {
    pub column: String,
    /// The rule as the plan writes it (`fake:email`, `hash`, `constant`, ...; never the constant itself).
    pub rule: String,
    /// Non-NULL values masked.
    pub values: u64,
    /// Output values whose keyed hash equals that of some source value of the same column: 0, or the refresh fails.
    pub source_values_in_output: u64,
}

/// Masks an archive by a checked masking.
pub struct Masker {
    checked: Checked,
    key: MaskKey,
    sql: Option<Box<dyn SqlEval>>,
    outcome: Option<Masked>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("tables", &self.checked.tables.keys())
            .finish_non_exhaustive()
    }
}

impl Masker {
    pub fn new(checked: Checked, key: MaskKey, sql: Option<Box<dyn SqlEval>>) -> Self {
        Self {
            checked,
            key,
            sql,
            outcome: None,
        }
    }

    /// What the finished rewrite did; `None` until a rewrite has finished.
    pub fn outcome(&self) -> Option<&Masked> {
        self.outcome.as_ref()
    }
}

impl Rewrite for Masker {
    fn rewrite(&mut self, from: &mut dyn Read, to: &mut dyn Write) -> Result<(), RewriteError> {
        let _ = (&self.key, &mut self.sql);
        if !self.checked.tables.is_empty() {
            return Err(RewriteError::Refused("masking is not built yet".into()));
        }
        // Nothing to mask: the archive goes through as it is.
        copy(from, to)?;
        self.outcome = Some(Masked::default());
        Ok(())
    }
}

fn copy(from: &mut dyn Read, to: &mut dyn Write) -> Result<(), RewriteError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RewriteError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(RewriteError::Write)?;
    }
}
