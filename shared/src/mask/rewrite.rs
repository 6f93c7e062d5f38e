//! The masking rewriter: a pg_dump custom-format archive in, the same archive out with every masked table's COPY
//! rows rewritten, as it streams (no row is kept beyond the one being rewritten, nothing touches a disk).
//!
//! Never writes a source value of a masked column to its output, an error or a log line; never keeps one in
//! memory past its row (the leak check keeps keyed hashes only), except the rows of a batch waiting for a
//! column's SQL expression (at most [`SQL_BATCH`] rows of one table).
//!
//! The archive's layout is [`crate::postgres::dump_format`]'s (archiver 1.12 to 1.16, uncompressed). The header
//! and the table of contents go through byte for byte, and so does every data block but the `TABLE DATA` of a
//! masked table: its COPY text rows are split on tabs, each masked field decoded, masked (`super::fake`),
//! encoded again (`super::copy_text`) and written in new length-prefixed chunks, followed by the block's end
//! line (`\.`) in a chunk of its own and the zero length, as pg_dump writes them. Columns are found by name in
//! the entry's COPY statement, which may list fewer than the catalogue (generated columns are not dumped). A
//! partition's data follows the rules of the partitioned table it is attached to (the archive's `TABLE ATTACH`
//! entries), and an inheriting table's those of the first table it inherits from (its `CREATE TABLE`), so that
//! naming the parent masks every row a query of it returns; a masked table whose rows the archive holds nowhere
//! is refused rather than guessed at.
//! A data offset the archive records goes through unchanged although masked blocks change length: the output
//! is for pg_restore reading a pipe, which reads blocks in order and never seeks (Lifeboat's exports are
//! written by pg_dump to a pipe, so they record none).
//!
//! Refused, before a value is written where it could not be masked: a compressed archive, large objects (their
//! bytes are opaque), `STATISTICS DATA` entries (pg_dump 18's `--with-statistics`: most-common values are row
//! data), a row whose field count is not its COPY list's, an unknown block, a block for no entry. A refusal names
//! the table or entry and, for a row, its number: never a value.
//!
//! The leak check: per masked column, the keyed 64-bit digest (`fake::Faker::digest`) of every non-NULL source value
//! and of every non-NULL output value, 16 bytes per masked value; once the archive has ended, the output digests
//! found among the source digests are counted (an output equal to a source value counts, even a constant).

use std::collections::HashMap;
use std::io::{Read, Write};

use super::copy_text;
use super::fake::Faker;
use crate::bucket::manifest::label;
use crate::mask::rules::{Checked, ColumnRule};
use crate::postgres::archive::stream::{Rewrite, RewriteError};

/// Rows of one table given to the SQL evaluator at once.
pub const SQL_BATCH: usize = 1000;
/// The read and write buffers.
const BUF: usize = 256 * 1024;
/// Masked COPY data is written in chunks of about this size.
const CHUNK: usize = 128 * 1024;
/// The longest COPY statement kept from the table of contents (a table of thousands of columns fits).
const KEPT_STRING: usize = 1 << 20;
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const FORMAT_CUSTOM: u8 = 1;
const OFFSET_NO_DATA: u8 = 3;

/// The stack's masking key (HMAC-SHA-256), read from Secrets Manager by the caller. Never printed.
#[derive(Clone)]
pub struct MaskKey(pub Vec<u8>);

/// The shortest masking key accepted: an HMAC key shorter than its hash's output weakens every keyed value.
pub const MIN_KEY_BYTES: usize = 32;

impl MaskKey {
    /// The key a secret's text holds (surrounding whitespace trimmed), or why it is refused: shorter than
    /// [`MIN_KEY_BYTES`]. The error names the secret and the length, never the key.
    pub fn from_secret_text(secret: &str, text: &str) -> Result<MaskKey, String> {
        let bytes = text.trim().as_bytes().to_vec();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the masking key in {secret} has {} bytes; at least {MIN_KEY_BYTES} are needed",
                bytes.len()
            ));
        }
        Ok(MaskKey(bytes))
    }
}

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
        self.outcome = None;
        if self.checked.tables.is_empty() {
            // Nothing to mask: the archive goes through as it is.
            copy(from, to)?;
            self.outcome = Some(Masked::default());
            return Ok(());
        }
        let faker = Faker::new(&self.key.0)
            .ok_or_else(|| RewriteError::Refused("the masking key cannot key an HMAC".into()))?;
        let mut run = Run {
            input: Input::new(from),
            output: Output::new(to),
            checked: &self.checked,
            faker,
            sql: self.sql.as_deref_mut(),
            int_size: 4,
            off_size: 8,
            last_int: 0,
            plans: Vec::new(),
            entries: HashMap::new(),
            parents: HashMap::new(),
            scratch: Scratch::default(),
        };
        run.archive()?;
        let masked = run.finish();
        self.outcome = Some(masked);
        Ok(())
    }
}

fn copy(from: &mut dyn Read, to: &mut dyn Write) -> Result<(), RewriteError> {
    let mut buf = vec![0u8; BUF];
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

fn refused(why: impl Into<String>) -> RewriteError {
    RewriteError::Refused(why.into())
}

/// The archive read through one reused buffer.
struct Input<'a> {
    from: &'a mut dyn Read,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
}

impl<'a> Input<'a> {
    fn new(from: &'a mut dyn Read) -> Self {
        Input {
            from,
            buf: vec![0; BUF],
            pos: 0,
            len: 0,
        }
    }

    /// Makes sure there are bytes to read; `false` at the end of the archive.
    fn fill(&mut self) -> Result<bool, RewriteError> {
        while self.pos == self.len {
            match self.from.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.pos = 0;
                    self.len = n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RewriteError::Read(e)),
            }
        }
        Ok(true)
    }

    /// Up to `max` (at least one) bytes, from the buffer.
    fn some(&mut self, max: usize, what: &str) -> Result<&[u8], RewriteError> {
        if !self.fill()? {
            return Err(refused(format!("the archive ended inside {what}")));
        }
        let n = max.min(self.len - self.pos);
        let piece = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(piece)
    }

    /// Like [`Input::some`], as the bytes' range in the buffer.
    fn some_range(&mut self, max: usize, what: &str) -> Result<(usize, usize), RewriteError> {
        if !self.fill()? {
            return Err(refused(format!("the archive ended inside {what}")));
        }
        let (start, n) = (self.pos, max.min(self.len - self.pos));
        self.pos += n;
        Ok((start, n))
    }

    fn byte_or_end(&mut self) -> Result<Option<u8>, RewriteError> {
        if !self.fill()? {
            return Ok(None);
        }
        self.pos += 1;
        Ok(Some(self.buf[self.pos - 1]))
    }
}

/// The output through one reused buffer, written when it fills.
struct Output<'a> {
    to: &'a mut dyn Write,
    buf: Vec<u8>,
}

impl<'a> Output<'a> {
    fn new(to: &'a mut dyn Write) -> Self {
        Output {
            to,
            buf: Vec::with_capacity(BUF),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), RewriteError> {
        if self.buf.len() + bytes.len() > BUF {
            self.flush()?;
            if bytes.len() >= BUF {
                return self.to.write_all(bytes).map_err(RewriteError::Write);
            }
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RewriteError> {
        self.to.write_all(&self.buf).map_err(RewriteError::Write)?;
        self.buf.clear();
        Ok(())
    }
}

/// A masked table's data entry: its COPY columns and their rules, and what the rewrite found.
struct Plan {
    /// The data's own table, and the masked table whose rules it follows (itself, or the partitioned table it
    /// is a partition of).
    label: String,
    masked_as: String,
    /// The COPY statement's columns, in its order.
    columns: Vec<String>,
    /// Each COPY column's rule.
    rules: Vec<ColumnRule>,
    /// The COPY columns that have an SQL expression.
    sql: Vec<usize>,
    rows: u64,
    /// Per COPY column: non-NULL values masked, and the leak check's digests.
    values: Vec<u64>,
    sources: Vec<Vec<u64>>,
    outputs: Vec<Vec<u64>>,
}

/// What a TOC entry's data block is.
enum Entry {
    /// Goes through as it is.
    Pass,
    /// A masked table's data: its plan.
    Masked(usize),
}

/// Buffers reused from row to row.
#[derive(Default)]
struct Scratch {
    /// The current line, when it spans chunks.
    line: Vec<u8>,
    /// Masked rows waiting to be written as one chunk.
    chunk: Vec<u8>,
    /// The block's end line and what follows it.
    tail: Vec<u8>,
    fields: Vec<(usize, usize)>,
    value: Vec<u8>,
    masked: Vec<u8>,
    /// Raw lines waiting for the SQL evaluator, and how many of them are in use.
    batch: Vec<Vec<u8>>,
    batched: usize,
}

/// A row of an SQL batch: the batch's answers per SQL column, the row's index in the batch and its number.
type BatchRow<'b> = (&'b [Vec<Option<String>>], usize, u64);

/// One rewrite in progress.
struct Run<'a, 'r> {
    input: Input<'r>,
    output: Output<'r>,
    checked: &'a Checked,
    faker: Faker,
    sql: Option<&'a mut (dyn SqlEval + 'static)>,
    int_size: u8,
    off_size: u8,
    /// The integer read last.
    last_int: i64,
    plans: Vec<Plan>,
    entries: HashMap<i64, Entry>,
    /// Each partition's partitioned table, from the archive's `TABLE ATTACH` entries.
    parents: HashMap<String, String>,
    scratch: Scratch,
}

impl Run<'_, '_> {
    fn archive(&mut self) -> Result<(), RewriteError> {
        let minor = self.header()?;
        self.toc(minor)?;
        self.blocks()?;
        self.output.flush()?;
        self.output.to.flush().map_err(RewriteError::Write)
    }

    /// Reads `n` bytes, passing them through.
    fn pass(&mut self, mut n: usize, what: &str) -> Result<(), RewriteError> {
        while n > 0 {
            let piece = self.input.some(n, what)?;
            n -= piece.len();
            self.output.put(piece)?;
        }
        Ok(())
    }

    /// Reads `out.len()` bytes, passing them through.
    fn pass_exact(&mut self, out: &mut [u8], what: &str) -> Result<(), RewriteError> {
        let mut at = 0;
        while at < out.len() {
            let piece = self.input.some(out.len() - at, what)?;
            out[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
            self.output.put(piece)?;
        }
        Ok(())
    }

    fn pass_byte(&mut self, what: &str) -> Result<u8, RewriteError> {
        let mut b = [0u8];
        self.pass_exact(&mut b, what)?;
        Ok(b[0])
    }

    /// An integer: a sign byte and `int_size` bytes, least significant first.
    fn read_int(&mut self, tee: bool, what: &str) -> Result<i64, RewriteError> {
        let mut bytes = [0u8; 9];
        let n = 1 + usize::from(self.int_size);
        if tee {
            self.pass_exact(&mut bytes[..n], what)?;
        } else {
            let mut at = 0;
            while at < n {
                let piece = self.input.some(n - at, what)?;
                bytes[at..at + piece.len()].copy_from_slice(piece);
                at += piece.len();
            }
        }
        let mut value: u64 = 0;
        for (i, b) in bytes[1..n].iter().enumerate() {
            value |= u64::from(*b) << (8 * i);
        }
        let value = i64::try_from(value).map_err(|_| refused(format!("an integer out of range in {what}")))?;
        self.last_int = if bytes[0] == 0 { value } else { -value };
        Ok(self.last_int)
    }

    fn int(&mut self, what: &str) -> Result<i64, RewriteError> {
        self.read_int(true, what)
    }

    /// A string passed through; kept (when at most [`KEPT_STRING`] bytes) if `keep`.
    fn string(&mut self, keep: bool, what: &str) -> Result<Option<Vec<u8>>, RewriteError> {
        let n = self.int(what)?;
        if n == -1 {
            return Ok(None);
        }
        let n = usize::try_from(n).map_err(|_| refused(format!("a string of length {n} in {what}")))?;
        if keep && n <= KEPT_STRING {
            let mut bytes = vec![0; n];
            self.pass_exact(&mut bytes, what)?;
            return Ok(Some(bytes));
        }
        self.pass(n, what)?;
        Ok(None)
    }

    /// The bytes of a string whose length was just read (again, from the output's last integer).
    fn pass_string_rest(&mut self, what: &str) -> Result<(), RewriteError> {
        let n = self.last_int;
        let n = usize::try_from(n).map_err(|_| refused(format!("a string of length {n} in {what}")))?;
        self.pass(n, what)
    }

    fn text(&mut self, what: &str) -> Result<String, RewriteError> {
        Ok(self
            .string(true, what)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    }

    /// The header, passed through; answers the archiver's minor version.
    fn header(&mut self) -> Result<u8, RewriteError> {
        let mut magic = [0u8; 5];
        self.pass_exact(&mut magic, "the header")?;
        if &magic != b"PGDMP" {
            return Err(refused("not a pg_dump custom-format archive (no PGDMP header)"));
        }
        let mut version = [0u8; 3];
        self.pass_exact(&mut version, "the header")?;
        let [major, minor, revision] = version;
        if major != 1 || !(12..=16).contains(&minor) {
            return Err(refused(format!(
                "archive version {major}.{minor}.{revision} is not one the masking reads (1.12 to 1.16)"
            )));
        }
        self.int_size = self.pass_byte("the header")?;
        if !(1..=8).contains(&self.int_size) {
            return Err(refused(format!("the archive's integers are {} bytes", self.int_size)));
        }
        let off_size = self.pass_byte("the header")?;
        let format = self.pass_byte("the header")?;
        if format != FORMAT_CUSTOM {
            return Err(refused(format!("archive format {format} is not the custom format")));
        }
        let compressed = if minor >= 15 {
            self.pass_byte("the header")? != 0
        } else {
            self.int("the header")? != 0
        };
        if compressed {
            return Err(refused(
                "the archive is compressed: the masking reads only archives dumped with --compress=0",
            ));
        }
        for _ in 0..7 {
            self.int("the header")?;
        }
        for _ in 0..3 {
            self.string(false, "the header")?;
        }
        self.off_size = off_size;
        Ok(minor)
    }

    /// The table of contents, passed through; plans the masked tables' data.
    fn toc(&mut self, minor: u8) -> Result<(), RewriteError> {
        let count = self.int("the table of contents")?;
        for _ in 0..count.max(0) {
            let what = "the table of contents";
            let id = self.int(what)?;
            self.int(what)?; // had a data dumper
            self.string(false, what)?; // table oid
            self.string(false, what)?; // oid
            let tag = self.text(what)?;
            let desc = self.text(what)?;
            self.int(what)?; // section
            let definition = self.string(desc == "TABLE ATTACH" || desc == "TABLE", what)?;
            self.string(false, what)?; // drop statement
            let copy = self.string(desc == "TABLE DATA", what)?;
            let schema = self.text(what)?;
            self.string(false, what)?; // tablespace
            if minor >= 14 {
                self.string(false, what)?; // table access method
            }
            if minor >= 16 {
                self.int(what)?; // relkind
            }
            self.string(false, what)?; // owner
            self.string(false, what)?; // with oids
            while self.int(what)? != -1 {
                // Dependencies, until a NULL: each a dump id in decimal, passed through.
                self.pass_string_rest(what)?;
            }
            let flag = self.pass_byte(what)?;
            self.pass(usize::from(self.off_size), what)?;
            let has_data = flag != OFFSET_NO_DATA;
            let definition = definition.and_then(|d| String::from_utf8(d).ok());
            let parent = match desc.as_str() {
                "TABLE ATTACH" => definition.as_deref().and_then(attached_to),
                _ => definition.as_deref().and_then(inherits_from),
            };
            if let Some(parent) = parent {
                self.parents.insert(label(&schema, &tag), parent);
            }
            let entry = self.plan_entry(id, &desc, &schema, &tag, copy.as_deref(), has_data)?;
            if self.entries.insert(id, entry).is_some() {
                return Err(refused(format!("two TOC entries with dump id {id}")));
            }
        }
        // A masked table without data of its own is most likely partitioned, its rows in partitions the masking
        // does not name: they would go through unmasked.
        for (table, ruled) in &self.checked.tables {
            let masked = ruled.iter().any(|(_, rule)| *rule != ColumnRule::Keep);
            if masked && !self.plans.iter().any(|p| &p.masked_as == table) {
                return Err(refused(format!(
                    "{table} has masking rules but no data of its own in the archive (a partitioned table keeps \
                     its rows in its partitions): give each partition the rules"
                )));
            }
        }
        Ok(())
    }

    fn plan_entry(
        &mut self,
        id: i64,
        desc: &str,
        schema: &str,
        tag: &str,
        copy: Option<&[u8]>,
        has_data: bool,
    ) -> Result<Entry, RewriteError> {
        match desc {
            "BLOBS" | "BLOB" if has_data => {
                return Err(refused(format!(
                    "the archive holds large objects (entry {id}), which cannot be masked: export without them"
                )))
            }
            "STATISTICS DATA" => {
                return Err(refused(format!(
                    "the archive holds planner statistics (entry {id}, {schema}.{tag}), whose most common values \
                     are row data: export without --with-statistics"
                )))
            }
            "TABLE DATA" => {}
            _ => return Ok(Entry::Pass),
        }
        let table = label(schema, tag);
        // A partition (or an inheriting table) follows the rules of the nearest masked table above it.
        let mut masked_as = table.clone();
        let mut hops = 0;
        let ruled = loop {
            if let Some(ruled) = self.checked.tables.get(&masked_as) {
                break ruled;
            }
            match self.parents.get(&masked_as) {
                Some(parent) if hops < 64 => {
                    masked_as = parent.clone();
                    hops += 1;
                }
                _ => return Ok(Entry::Pass),
            }
        };
        let columns = copy
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(copy_columns)
            .ok_or_else(|| {
                refused(format!(
                    "the COPY statement of {table}'s data (entry {id}) cannot be read"
                ))
            })?;
        let mut rules = Vec::with_capacity(columns.len());
        for column in &columns {
            let rule = ruled
                .iter()
                .find(|(name, _)| name == column)
                .map(|(_, rule)| rule.clone())
                .ok_or_else(|| {
                    refused(format!(
                        "{table}'s data (entry {id}) has column {column}, which the checked masking does not list"
                    ))
                })?;
            rules.push(rule);
        }
        if let Some((column, rule)) = ruled
            .iter()
            .find(|(name, rule)| *rule != ColumnRule::Keep && !columns.contains(name))
        {
            return Err(refused(format!(
                "{table}'s data (entry {id}) has no column {column} to apply rule {} to (a generated column?): \
                 give it rule keep",
                rule.name()
            )));
        }
        if self.sql.is_none() && rules.iter().any(|r| matches!(r, ColumnRule::Sql(_))) {
            return Err(refused(format!(
                "{table} has a column masked by an SQL expression and the rewrite has no SQL evaluator"
            )));
        }
        let n = columns.len();
        self.plans.push(Plan {
            label: table,
            masked_as,
            sql: (0..n).filter(|&i| matches!(rules[i], ColumnRule::Sql(_))).collect(),
            columns,
            rules,
            rows: 0,
            values: vec![0; n],
            sources: vec![Vec::new(); n],
            outputs: vec![Vec::new(); n],
        });
        Ok(Entry::Masked(self.plans.len() - 1))
    }

    /// The data blocks, until the end of the archive.
    fn blocks(&mut self) -> Result<(), RewriteError> {
        while let Some(kind) = self.input.byte_or_end()? {
            self.output.put(&[kind])?;
            let id = self.int("a data block's header")?;
            match (kind, self.entries.get(&id)) {
                (BLK_DATA, Some(Entry::Pass)) => self.pass_chunks()?,
                (BLK_DATA, Some(Entry::Masked(plan))) => {
                    let plan = *plan;
                    self.mask_block(plan)?
                }
                (BLK_DATA, None) => {
                    return Err(refused(format!(
                        "a data block for dump id {id}, which the table of contents does not list"
                    )))
                }
                (BLK_BLOBS, _) => {
                    return Err(refused(format!(
                        "a large-object block (dump id {id}): large objects cannot be masked"
                    )))
                }
                (other, _) => return Err(refused(format!("unknown block type {other} (dump id {id})"))),
            }
        }
        Ok(())
    }

    fn chunk_len(&mut self, tee: bool) -> Result<usize, RewriteError> {
        let n = self.read_int(tee, "a data block")?;
        usize::try_from(n).map_err(|_| refused(format!("a data chunk of length {n}")))
    }

    fn pass_chunks(&mut self) -> Result<(), RewriteError> {
        loop {
            let n = self.chunk_len(true)?;
            if n == 0 {
                return Ok(());
            }
            self.pass(n, "a data chunk")?;
        }
    }

    /// A masked table's block: its rows masked into new chunks, then its end line, then the zero length.
    fn mask_block(&mut self, plan: usize) -> Result<(), RewriteError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.mask_block_with(plan, &mut scratch);
        self.scratch = scratch;
        result
    }

    fn mask_block_with(&mut self, plan: usize, s: &mut Scratch) -> Result<(), RewriteError> {
        s.line.clear();
        s.chunk.clear();
        s.tail.clear();
        s.batched = 0;
        loop {
            let mut left = self.chunk_len(false)?;
            if left == 0 {
                break;
            }
            while left > 0 {
                let (piece_start, piece_len) = self.input.some_range(left, "a data chunk")?;
                left -= piece_len;
                let mut at = piece_start;
                let end = piece_start + piece_len;
                while at < end {
                    if !s.tail.is_empty() {
                        // After the end line only empty lines may come.
                        let rest = &self.input.buf[at..end];
                        if rest.iter().any(|&b| b != b'\n') {
                            return Err(refused(format!(
                                "data after the end of {}'s COPY data",
                                self.plans[plan].label
                            )));
                        }
                        s.tail.extend_from_slice(rest);
                        break;
                    }
                    match memchr::memchr(b'\n', &self.input.buf[at..end]) {
                        Some(n) => {
                            if s.line.is_empty() {
                                let (a, b) = (at, at + n);
                                let line = std::mem::take(&mut self.input.buf);
                                let r = self.line(plan, &line[a..b], s);
                                self.input.buf = line;
                                r?;
                            } else {
                                s.line.extend_from_slice(&self.input.buf[at..at + n]);
                                let line = std::mem::take(&mut s.line);
                                let r = self.line(plan, &line, s);
                                s.line = line;
                                s.line.clear();
                                r?;
                            }
                            at += n + 1;
                        }
                        None => {
                            s.line.extend_from_slice(&self.input.buf[at..end]);
                            at = end;
                        }
                    }
                }
            }
        }
        if !s.line.is_empty() || s.tail.is_empty() {
            return Err(refused(format!(
                "{}'s COPY data ends inside a row or without its end line",
                self.plans[plan].label
            )));
        }
        self.write_chunk(&s.chunk)?;
        s.chunk.clear();
        self.write_chunk(&s.tail)?;
        self.write_int(0)
    }

    fn write_int(&mut self, v: i64) -> Result<(), RewriteError> {
        let mut bytes = [0u8; 9];
        bytes[0] = u8::from(v < 0);
        let magnitude = v.unsigned_abs();
        let n = usize::from(self.int_size);
        for (i, b) in bytes[1..=n].iter_mut().enumerate() {
            *b = (magnitude >> (8 * i)) as u8;
        }
        self.output.put(&bytes[..=n])
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), RewriteError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let n = i64::try_from(chunk.len()).map_err(|_| refused("a chunk too long to write"))?;
        self.write_int(n)?;
        self.output.put(chunk)
    }

    /// One COPY line (without its newline): a row, or the end line.
    fn line(&mut self, plan: usize, raw: &[u8], s: &mut Scratch) -> Result<(), RewriteError> {
        if raw == b"\\." {
            self.flush_batch(plan, s)?;
            s.tail.extend_from_slice(b"\\.\n");
            return Ok(());
        }
        self.plans[plan].rows += 1;
        if self.plans[plan].sql.is_empty() {
            self.row(plan, raw, None, s)?;
        } else {
            if s.batch.len() <= s.batched {
                s.batch.push(Vec::new());
            }
            s.batch[s.batched].clear();
            s.batch[s.batched].extend_from_slice(raw);
            s.batched += 1;
            if s.batched == SQL_BATCH {
                self.flush_batch(plan, s)?;
            }
        }
        if s.chunk.len() >= CHUNK {
            self.write_chunk(&s.chunk)?;
            s.chunk.clear();
        }
        Ok(())
    }

    /// Splits a raw row into its fields; refuses a row whose field count is not the COPY list's.
    fn split(&self, plan: usize, raw: &[u8], row: u64, fields: &mut Vec<(usize, usize)>) -> Result<(), RewriteError> {
        fields.clear();
        let mut start = 0;
        for at in memchr::memchr_iter(b'\t', raw) {
            fields.push((start, at));
            start = at + 1;
        }
        fields.push((start, raw.len()));
        let p = &self.plans[plan];
        if fields.len() != p.columns.len() && !(p.columns.is_empty() && raw.is_empty()) {
            return Err(refused(format!(
                "row {row} of {} has {} fields where its COPY statement lists {} columns",
                p.label,
                fields.len(),
                p.columns.len()
            )));
        }
        Ok(())
    }

    /// Evaluates the batch's SQL columns, then writes its rows.
    fn flush_batch(&mut self, plan: usize, s: &mut Scratch) -> Result<(), RewriteError> {
        if s.batched == 0 {
            return Ok(());
        }
        let first_row = self.plans[plan].rows - s.batched as u64 + 1;
        let mut rows = Vec::with_capacity(s.batched);
        let mut fields = std::mem::take(&mut s.fields);
        for (i, raw) in s.batch[..s.batched].iter().enumerate() {
            let row = first_row + i as u64;
            self.split(plan, raw, row, &mut fields)?;
            let mut values = Vec::with_capacity(fields.len());
            for (c, &(a, b)) in fields.iter().enumerate() {
                let field = &raw[a..b];
                if copy_text::is_null(field) {
                    values.push(None);
                    continue;
                }
                copy_text::decode(field, &mut s.value);
                let text = String::from_utf8(std::mem::take(&mut s.value)).map_err(|_| {
                    refused(format!(
                        "row {row} of {}: column {} is not UTF-8, so no SQL expression can read it",
                        self.plans[plan].label, self.plans[plan].columns[c]
                    ))
                })?;
                values.push(Some(text));
            }
            rows.push(values);
        }
        s.fields = fields;
        let mut answers = Vec::with_capacity(self.plans[plan].sql.len());
        for &c in &self.plans[plan].sql.clone() {
            let p = &self.plans[plan];
            let ColumnRule::Sql(expression) = &p.rules[c] else {
                continue;
            };
            let Some(eval) = self.sql.as_deref_mut() else {
                return Err(refused(format!("{} needs an SQL evaluator", p.label)));
            };
            let answer = eval.eval(&p.label, &p.columns, expression, &rows).map_err(|why| {
                refused(format!(
                    "the SQL expression of {}.{} failed: {why}",
                    p.label, p.columns[c]
                ))
            })?;
            if answer.len() != rows.len() {
                return Err(refused(format!(
                    "the SQL expression of {}.{} gave {} values for {} rows",
                    p.label,
                    p.columns[c],
                    answer.len(),
                    rows.len()
                )));
            }
            answers.push(answer);
        }
        drop(rows);
        let batch = std::mem::take(&mut s.batch);
        let mut result = Ok(());
        for (i, raw) in batch[..s.batched].iter().enumerate() {
            result = self.row(plan, raw, Some((&answers, i, first_row + i as u64)), s);
            if result.is_err() {
                break;
            }
        }
        s.batch = batch;
        s.batched = 0;
        result
    }

    /// Masks one row into the chunk being built. `sql`: the batch's answers per SQL column, this row's index in
    /// the batch and its number.
    fn row(&mut self, plan: usize, raw: &[u8], sql: Option<BatchRow<'_>>, s: &mut Scratch) -> Result<(), RewriteError> {
        let row = match sql {
            Some((_, _, row)) => row,
            None => self.plans[plan].rows,
        };
        let mut fields = std::mem::take(&mut s.fields);
        let split = self.split(plan, raw, row, &mut fields);
        if let Err(e) = split {
            s.fields = fields;
            return Err(e);
        }
        let p = &mut self.plans[plan];
        let mut sql_index = 0;
        for (c, &(a, b)) in fields.iter().enumerate() {
            if c > 0 {
                s.chunk.push(b'\t');
            }
            let field = &raw[a..b];
            let rule = &p.rules[c];
            if matches!(rule, ColumnRule::Keep) {
                s.chunk.extend_from_slice(field);
                continue;
            }
            let is_sql = matches!(rule, ColumnRule::Sql(_));
            let answer = match (is_sql, sql) {
                (true, Some((answers, i, _))) => {
                    let a = answers.get(sql_index).and_then(|col| col.get(i)).cloned().flatten();
                    sql_index += 1;
                    a
                }
                _ => None,
            };
            if copy_text::is_null(field) {
                s.chunk.extend_from_slice(copy_text::NULL);
                continue;
            }
            copy_text::decode(field, &mut s.value);
            p.values[c] += 1;
            p.sources[c].push(self.faker.digest(&s.value));
            let out: Option<&[u8]> = match rule {
                ColumnRule::Keep => Some(&s.value),
                ColumnRule::Null => None,
                ColumnRule::Constant(constant) => Some(constant.as_bytes()),
                ColumnRule::Redact => {
                    Faker::redact(&s.value, &mut s.masked);
                    Some(&s.masked)
                }
                ColumnRule::Hash => {
                    self.faker.hash(&s.value, &mut s.masked);
                    Some(&s.masked)
                }
                ColumnRule::Fake(kind) => {
                    self.faker.fake(*kind, &s.value, &mut s.masked);
                    Some(&s.masked)
                }
                ColumnRule::Sql(_) => answer.as_ref().map(|a| a.as_bytes()),
            };
            match out {
                None => s.chunk.extend_from_slice(copy_text::NULL),
                Some(out) => {
                    p.outputs[c].push(self.faker.digest(out));
                    copy_text::encode(out, &mut s.chunk);
                }
            }
        }
        s.chunk.push(b'\n');
        s.fields = fields;
        Ok(())
    }

    /// The report, with the leak check: per masked column, the output digests found among the source digests.
    fn finish(mut self) -> Masked {
        let mut tables: Vec<MaskedTable> = Vec::new();
        for (table, ruled) in &self.checked.tables {
            // A table's data may come in several entries (its own, its partitions', its inheriting tables'): a
            // query of it returns all of them, so their digests are compared as one column.
            let mut plans: Vec<&mut Plan> = self.plans.iter_mut().filter(|p| &p.masked_as == table).collect();
            let mut columns = Vec::with_capacity(ruled.len());
            let (mut sources, mut outputs) = (Vec::new(), Vec::new());
            for (column, rule) in ruled {
                let mut values = 0;
                sources.clear();
                outputs.clear();
                for p in plans.iter_mut() {
                    if let Some(c) = p.columns.iter().position(|name| name == column) {
                        values += p.values[c];
                        sources.append(&mut p.sources[c]);
                        outputs.append(&mut p.outputs[c]);
                    }
                }
                // Both sides sorted, then walked together once: a lookup per output digest misses the cache at
                // every step and took longer than the whole rewrite.
                sources.sort_unstable();
                outputs.sort_unstable();
                columns.push(MaskedColumn {
                    column: column.clone(),
                    rule: rule.name(),
                    values,
                    source_values_in_output: common(&sources, &outputs),
                });
            }
            tables.push(MaskedTable {
                table: table.clone(),
                rows: plans.iter().map(|p| p.rows).sum(),
                columns,
            });
        }
        Masked { tables }
    }
}

/// How many of the sorted `outputs` (each occurrence) are among the sorted `sources`.
fn common(sources: &[u64], outputs: &[u64]) -> u64 {
    let (mut i, mut found) = (0, 0);
    for &d in outputs {
        while i < sources.len() && sources[i] < d {
            i += 1;
        }
        if sources.get(i) == Some(&d) {
            found += 1;
        }
    }
    found
}

/// The partitioned table a `TABLE ATTACH` entry's definition attaches to
/// (`ALTER TABLE ONLY public.events ATTACH PARTITION public.events_2026 FOR VALUES ...;`), as a label.
fn attached_to(definition: &str) -> Option<String> {
    let rest = definition.trim_start().strip_prefix("ALTER TABLE ")?;
    let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
    let (first, rest) = identifier(rest)?;
    let (schema, name, rest) = match rest.strip_prefix('.') {
        Some(after) => {
            let (name, rest) = identifier(after)?;
            (first, name, rest)
        }
        None => (String::new(), first, rest),
    };
    rest.trim_start()
        .starts_with("ATTACH PARTITION ")
        .then(|| label(&schema, &name))
}

/// The first table a `CREATE TABLE` inherits from (`CREATE TABLE public.admins (...)\nINHERITS (public.users);`),
/// as a label: its rows are masked by that table's rules (a column the rules do not know stops the rewrite).
fn inherits_from(definition: &str) -> Option<String> {
    let at = definition.rfind("\nINHERITS (")?;
    let (first, rest) = identifier(&definition[at + "\nINHERITS (".len()..])?;
    let (schema, name) = match rest.strip_prefix('.') {
        Some(after) => (first, identifier(after)?.0),
        None => (String::new(), first),
    };
    Some(label(&schema, &name))
}

/// The columns of a COPY statement as pg_dump writes it (`COPY public.users (id, "Email") FROM stdin;`), their
/// names unquoted; `None` if it does not read as one.
fn copy_columns(statement: &str) -> Option<Vec<String>> {
    let mut rest = statement.trim_start().strip_prefix("COPY ")?;
    // The table's (qualified) name.
    loop {
        let (_, after) = identifier(rest)?;
        rest = after;
        match rest.strip_prefix('.') {
            Some(after) => rest = after,
            None => break,
        }
    }
    rest = rest.trim_start();
    let Some(mut list) = rest.strip_prefix('(') else {
        // A table without columns.
        return rest.starts_with("FROM ").then(Vec::new);
    };
    let mut columns = Vec::new();
    loop {
        let (name, after) = identifier(list.trim_start())?;
        columns.push(name);
        list = after.trim_start();
        if let Some(after) = list.strip_prefix(',') {
            list = after;
        } else {
            list.strip_prefix(')')?
                .trim_start()
                .starts_with("FROM ")
                .then_some(())?;
            return Some(columns);
        }
    }
}

/// One identifier, double-quoted (`""` inside stands for `"`) or bare, and what follows it.
fn identifier(text: &str) -> Option<(String, &str)> {
    if let Some(mut rest) = text.strip_prefix('"') {
        let mut name = String::new();
        loop {
            let at = rest.find('"')?;
            name.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            match rest.strip_prefix('"') {
                Some(after) => {
                    name.push('"');
                    rest = after;
                }
                None => return Some((name, rest)),
            }
        }
    }
    let end = text
        .find(|c: char| c.is_whitespace() || matches!(c, '.' | ',' | '(' | ')'))
        .unwrap_or(text.len());
    (end > 0).then(|| (text[..end].to_owned(), &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masking_key_is_the_secrets_trimmed_text_and_a_short_one_is_refused_without_its_value() {
        let key = "k".repeat(MIN_KEY_BYTES);
        let read = MaskKey::from_secret_text("lifeboat/masking-key", &format!("  {key}\n")).unwrap();
        assert_eq!(read.0, key.as_bytes());
        let short = "s3cr3t-but-short";
        let e = MaskKey::from_secret_text("lifeboat/masking-key", short).unwrap_err();
        assert_eq!(
            e,
            "the masking key in lifeboat/masking-key has 16 bytes; at least 32 are needed"
        );
        assert!(!e.contains(short), "{e}");
    }
    use crate::mask::rules::FakeKind;
    use crate::postgres::dump_format::count_rows;
    use proptest::prelude::*;

    /// Writes archives as pg_dump's custom format lays them out.
    struct Archive {
        minor: u8,
        out: Vec<u8>,
    }

    impl Archive {
        fn new(minor: u8) -> Self {
            let mut a = Archive { minor, out: Vec::new() };
            a.out.extend_from_slice(b"PGDMP");
            a.out.extend_from_slice(&[1, minor, 0, 4, 8, FORMAT_CUSTOM]);
            if minor >= 15 {
                a.out.push(0);
            } else {
                a.int(0);
            }
            for v in [1, 2, 3, 4, 5, 124, 0] {
                a.int(v);
            }
            for s in ["app", "16.4", "16.4"] {
                a.str(Some(s));
            }
            a
        }

        fn int(&mut self, v: i64) {
            self.out.push(u8::from(v < 0));
            self.out.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        }

        fn str(&mut self, s: Option<&str>) {
            match s {
                None => self.int(-1),
                Some(s) => {
                    self.int(s.len() as i64);
                    self.out.extend_from_slice(s.as_bytes());
                }
            }
        }

        fn entry(&mut self, id: i64, desc: &str, schema: &str, tag: &str, copy: &str, data: bool) {
            self.int(id);
            self.int(i64::from(data));
            self.str(Some("0"));
            self.str(Some("16384"));
            self.str(Some(tag));
            self.str(Some(desc));
            self.int(2);
            self.str(Some(""));
            self.str(Some(""));
            self.str(Some(copy));
            self.str(Some(schema));
            self.str(Some(""));
            if self.minor >= 14 {
                self.str(Some("heap"));
            }
            if self.minor >= 16 {
                self.int(i64::from(b'r'));
            }
            self.str(Some("postgres"));
            self.str(Some("false"));
            self.str(Some("7"));
            self.str(None);
            self.out.push(if data { 1 } else { OFFSET_NO_DATA });
            self.out.extend_from_slice(&[0; 8]);
        }

        fn data(&mut self, id: i64, chunks: &[&[u8]]) {
            self.out.push(BLK_DATA);
            self.int(id);
            for c in chunks {
                self.int(c.len() as i64);
                self.out.extend_from_slice(c);
            }
            self.int(0);
        }
    }

    const USERS_COPY: &str = "COPY public.users (id, \"E-mail\", name, note) FROM stdin;\n";

    /// users (masked) and orders (not), each row a chunk of its own as pg_dump writes them.
    fn sample(minor: u8, users: &[&[u8]]) -> (Vec<u8>, usize) {
        let mut a = Archive::new(minor);
        a.int(4);
        a.entry(1, "TABLE", "public", "users", "", false);
        a.entry(2, "TABLE DATA", "public", "users", USERS_COPY, true);
        a.entry(
            3,
            "TABLE DATA",
            "public",
            "orders",
            "COPY public.orders (id, total) FROM stdin;\n",
            true,
        );
        a.entry(4, "SEQUENCE SET", "public", "users_id_seq", "", false);
        let toc = a.out.len();
        a.data(3, &[b"1\t9.50\n", b"2\t\\N\n", b"\\.\n\n"]);
        let mut chunks = users.to_vec();
        chunks.push(b"\\.\n\n");
        a.data(2, &chunks);
        (a.out, toc)
    }

    fn rules(rules: &[(&str, ColumnRule)]) -> Checked {
        let mut checked = Checked::default();
        checked.tables.insert(
            "public.users".into(),
            ["id", "E-mail", "name", "note"]
                .iter()
                .map(|c| {
                    let rule = rules.iter().find(|(n, _)| n == c).map(|(_, r)| r.clone());
                    (c.to_string(), rule.unwrap_or(ColumnRule::Keep))
                })
                .collect(),
        );
        checked
    }

    fn run(masker: &mut Masker, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut from = input;
        masker.rewrite(&mut from, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn masker(checked: Checked, key: &[u8]) -> Masker {
        Masker::new(checked, MaskKey(key.to_vec()), None)
    }

    /// The COPY text of one data block of an archive the rewriter wrote (its chunks joined).
    fn block_text(archive: &[u8], id: i64) -> Vec<u8> {
        let mut marker = vec![BLK_DATA, 0];
        marker.extend_from_slice(&(id as u32).to_le_bytes());
        let mut at = archive
            .windows(marker.len())
            .rposition(|w| w == marker.as_slice())
            .unwrap()
            + marker.len();
        let mut text = Vec::new();
        loop {
            let len = u32::from_le_bytes(archive[at + 1..at + 5].try_into().unwrap()) as usize;
            at += 5;
            if len == 0 {
                return text;
            }
            text.extend_from_slice(&archive[at..at + len]);
            at += len;
        }
    }

    const ROWS: [&[u8]; 3] = [
        b"1\talice@corp.example\tAlice\ttab\\there\n",
        b"2\t\\N\tB\xc3\xb6b \xe6\x9d\xb1\\\\\t\\N\n",
        b"3\tcarol@corp.example\tCarol\tline\\nbreak\n",
    ];

    #[test]
    fn an_empty_masking_passes_the_archive_through_unchanged() {
        let (input, _) = sample(16, &ROWS);
        let mut m = masker(Checked::default(), b"k");
        assert_eq!(run(&mut m, &input).unwrap(), input);
        assert_eq!(m.outcome(), Some(&Masked::default()));
    }

    #[test]
    fn masked_rows_are_rewritten_and_everything_else_goes_through_byte_for_byte() {
        for minor in [12, 14, 15, 16] {
            let (input, toc) = sample(minor, &ROWS);
            let mut m = masker(
                rules(&[
                    ("E-mail", ColumnRule::Constant("a\tb".into())),
                    ("name", ColumnRule::Redact),
                    ("note", ColumnRule::Null),
                ]),
                b"k",
            );
            let out = run(&mut m, &input).unwrap();
            // Header, TOC and the unmasked table's block are the input's bytes.
            let orders_end = toc + input[toc..].windows(2).position(|w| w == [BLK_DATA, 0]).unwrap();
            let orders_end = orders_end
                + 1
                + input[orders_end + 1..]
                    .windows(2)
                    .position(|w| w == [BLK_DATA, 0])
                    .unwrap();
            assert_eq!(out[..orders_end], input[..orders_end], "1.{minor}");
            assert_eq!(
                block_text(&out, 2),
                b"1\ta\\tb\txxxxx\t\\N\n2\t\\N\txxxxxx\t\\N\n3\ta\\tb\txxxxx\t\\N\n\\.\n\n",
                "1.{minor}"
            );
            // The result is still an archive pg_dump's reader accepts, with the same rows.
            let counted = count_rows(&out[..]).unwrap();
            assert_eq!(counted.iter().map(|t| t.rows).collect::<Vec<_>>(), [3, 2]);
            let outcome = m.outcome().unwrap();
            assert_eq!(outcome.tables.len(), 1);
            assert_eq!(outcome.tables[0].rows, 3);
            let cols: Vec<_> = outcome.tables[0]
                .columns
                .iter()
                .map(|c| (c.column.as_str(), c.rule.as_str(), c.values, c.source_values_in_output))
                .collect();
            assert_eq!(
                cols,
                [
                    ("id", "keep", 0, 0),
                    ("E-mail", "constant", 2, 0),
                    ("name", "redact", 3, 0),
                    ("note", "null", 2, 0)
                ]
            );
        }
    }

    #[test]
    fn redact_keeps_the_number_of_characters_of_multibyte_text() {
        let (input, _) = sample(16, &[b"1\t\\N\t\xc3\xa9t\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac\t\\N\n"]);
        let mut m = masker(rules(&[("name", ColumnRule::Redact)]), b"k");
        let out = run(&mut m, &input).unwrap();
        assert_eq!(block_text(&out, 2), b"1\t\\N\txxxxxx\t\\N\n\\.\n\n");
    }

    #[test]
    fn outputs_are_the_same_for_the_same_key_in_every_table_and_run_and_differ_between_keys() {
        let mut checked = rules(&[
            ("E-mail", ColumnRule::Fake(FakeKind::Email)),
            ("name", ColumnRule::Hash),
        ]);
        checked.tables.insert(
            "public.orders".into(),
            vec![
                ("id".into(), ColumnRule::Keep),
                ("total".into(), ColumnRule::Fake(FakeKind::Email)),
            ],
        );
        let mut a = Archive::new(16);
        a.int(2);
        a.entry(2, "TABLE DATA", "public", "users", USERS_COPY, true);
        a.entry(
            3,
            "TABLE DATA",
            "public",
            "orders",
            "COPY public.orders (id, total) FROM stdin;\n",
            true,
        );
        a.data(2, &[b"1\talice@corp.example\tx\ty\n\\.\n\n"]);
        a.data(3, &[b"1\talice@corp.example\n\\.\n\n"]);
        let first = run(&mut masker(checked.clone(), b"k"), &a.out).unwrap();
        let second = run(&mut masker(checked.clone(), b"k"), &a.out).unwrap();
        assert_eq!(first, second);
        let users = String::from_utf8(block_text(&first, 2)).unwrap();
        let orders = String::from_utf8(block_text(&first, 3)).unwrap();
        let email = users.split('\t').nth(1).unwrap();
        assert!(email.ends_with("@example.com"), "{users}");
        assert_eq!(orders.split(['\t', '\n']).nth(1).unwrap(), email);
        assert!(!users.contains("alice") && !orders.contains("alice"));
        let other = run(&mut masker(checked, b"other key"), &a.out).unwrap();
        assert_ne!(block_text(&other, 2), block_text(&first, 2));
    }

    #[test]
    fn the_leak_check_counts_outputs_equal_to_a_source_value_even_a_constant() {
        let (input, _) = sample(16, &ROWS);
        let mut m = masker(
            rules(&[
                ("E-mail", ColumnRule::Constant("carol@corp.example".into())),
                ("name", ColumnRule::Fake(FakeKind::Name)),
            ]),
            b"k",
        );
        run(&mut m, &input).unwrap();
        let cols = &m.outcome().unwrap().tables[0].columns;
        assert_eq!((cols[1].values, cols[1].source_values_in_output), (2, 2));
        assert_eq!(cols[2].source_values_in_output, 0);
    }

    /// Hands out the input in the given read sizes, as pipes do.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        next: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let size = self.sizes[self.next % self.sizes.len()].max(1);
            self.next += 1;
            let n = size.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn any_read_sizes_and_row_splits_give_the_same_output(
            sizes in prop::collection::vec(1usize..50, 1..10),
            cuts in prop::collection::vec(0usize..120, 0..6),
        ) {
            let rows: Vec<u8> = ROWS.concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % rows.len()).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain([rows.len()]) {
                if c > last {
                    pieces.push(&rows[last..c]);
                    last = c;
                }
            }
            let (whole, _) = sample(16, &ROWS);
            let (split, _) = sample(16, &pieces);
            let checked = rules(&[("E-mail", ColumnRule::Hash), ("note", ColumnRule::Fake(FakeKind::Text))]);
            let expected = run(&mut masker(checked.clone(), b"k"), &whole).unwrap();
            let mut out = Vec::new();
            masker(checked, b"k")
                .rewrite(&mut Chunked { data: &split, sizes, next: 0 }, &mut out)
                .unwrap();
            prop_assert_eq!(block_text(&out, 2), block_text(&expected, 2));
        }
    }

    proptest! {
        #[test]
        fn any_values_are_masked_in_place_and_kept_ones_come_back_unchanged(
            values in prop::collection::vec(("\\PC{0,12}", proptest::option::of("[\t\n\\\\a-zé東 N.]{0,10}")), 1..20),
        ) {
            // Rows of (id, E-mail, name, note): `name` redacted, the others kept.
            let mut rows = Vec::new();
            let mut expected = Vec::new();
            for (i, (kept, name)) in values.iter().enumerate() {
                let mut row = format!("{i}\t").into_bytes();
                copy_text::encode(kept.as_bytes(), &mut row);
                row.push(b'\t');
                let mut masked = row.clone();
                match name {
                    Some(name) => {
                        copy_text::encode(name.as_bytes(), &mut row);
                        masked.extend(std::iter::repeat_n(b'x', name.chars().count()));
                    }
                    None => {
                        row.extend_from_slice(copy_text::NULL);
                        masked.extend_from_slice(copy_text::NULL);
                    }
                }
                row.extend_from_slice(b"\t\\N\n");
                masked.extend_from_slice(b"\t\\N\n");
                rows.push(row);
                expected.extend_from_slice(&masked);
            }
            expected.extend_from_slice(b"\\.\n\n");
            let rows: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
            let (input, _) = sample(15, &rows);
            let mut m = masker(rules(&[("name", ColumnRule::Redact)]), b"k");
            let out = run(&mut m, &input).unwrap();
            prop_assert_eq!(block_text(&out, 2), expected);
            let names = values.iter().filter(|(_, n)| n.is_some()).count() as u64;
            prop_assert_eq!(m.outcome().unwrap().tables[0].columns[2].values, names);
        }
    }

    fn refusal(input: &[u8], checked: Checked) -> String {
        run(&mut masker(checked, b"k"), input).unwrap_err()
    }

    #[test]
    fn archives_that_cannot_be_masked_are_refused_without_quoting_a_value() {
        let masked = || rules(&[("name", ColumnRule::Redact)]);
        let (mut gz, _) = sample(16, &ROWS);
        gz[11] = 1;
        assert!(refusal(&gz, masked()).contains("compressed"));
        let (mut old_gz, _) = sample(14, &ROWS);
        old_gz[12] = 6;
        assert!(refusal(&old_gz, masked()).contains("compressed"));
        // A row with a field too many, or too few: its number, never its values.
        let (bad, _) = sample(16, &[ROWS[0], b"2\tsecret@corp.example\tS\n"]);
        let m = refusal(&bad, masked());
        assert!(m.contains("row 2 of public.users") && m.contains("3 fields"), "{m}");
        assert!(!m.contains("secret"), "{m}");
        for desc in ["BLOBS", "STATISTICS DATA"] {
            let mut a = Archive::new(16);
            a.int(1);
            a.entry(9, desc, "", desc, "", desc == "BLOBS");
            let m = refusal(&a.out, masked());
            assert!(m.contains("entry 9"), "{m}");
        }
        let (mut unknown, _) = sample(16, &ROWS);
        unknown.extend_from_slice(&[7, 0, 1, 0, 0, 0]);
        assert!(refusal(&unknown, masked()).contains("unknown block type 7"));
        let (mut blobs, _) = sample(16, &ROWS);
        blobs.extend_from_slice(&[BLK_BLOBS, 0, 1, 0, 0, 0]);
        assert!(refusal(&blobs, masked()).contains("large-object block"));
        let (mut stray, _) = sample(16, &ROWS);
        stray.extend_from_slice(&[BLK_DATA, 0, 42, 0, 0, 0]);
        assert!(refusal(&stray, masked()).contains("dump id 42"));
        let (truncated, _) = sample(16, &ROWS);
        let m = refusal(&truncated[..truncated.len() - 7], masked());
        assert!(m.contains("ended") || m.contains("ends"), "{m}");
        // A masked column the COPY statement does not list (a generated column) is fine only when kept.
        let mut a = Archive::new(16);
        a.int(1);
        a.entry(
            2,
            "TABLE DATA",
            "public",
            "users",
            "COPY public.users (id, \"E-mail\", name) FROM stdin;\n",
            true,
        );
        assert!(refusal(&a.out, rules(&[("note", ColumnRule::Redact)])).contains("no column note"));
        let mut a = Archive::new(16);
        a.int(1);
        a.entry(
            2,
            "TABLE DATA",
            "public",
            "users",
            "COPY public.users (id, \"E-mail\", name) FROM stdin;\n",
            true,
        );
        a.data(2, &[b"1\ta\tb\n\\.\n\n"]);
        assert!(run(&mut masker(rules(&[("name", ColumnRule::Redact)]), b"k"), &a.out).is_ok());
        // A masked table whose rows are elsewhere, in tables the archive does not say are its partitions.
        let mut a = Archive::new(16);
        a.int(1);
        a.entry(
            5,
            "TABLE DATA",
            "public",
            "users_2026",
            "COPY public.users_2026 (id) FROM stdin;\n",
            true,
        );
        a.data(5, &[b"1\n\\.\n\n"]);
        let m = refusal(&a.out, masked());
        assert!(
            m.contains("public.users has masking rules but no data of its own"),
            "{m}"
        );
        // An SQL rule with nobody to evaluate it.
        let m = refusal(
            &sample(16, &ROWS).0,
            rules(&[("note", ColumnRule::Sql("upper(note)".into()))]),
        );
        assert!(m.contains("no SQL evaluator"), "{m}");
    }

    /// Upper-cases the `name` column, counting its calls.
    struct Upper(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl SqlEval for Upper {
        fn eval(
            &mut self,
            table: &str,
            columns: &[String],
            expression: &str,
            rows: &[Vec<Option<String>>],
        ) -> Result<Vec<Option<String>>, String> {
            assert_eq!((table, expression), ("public.users", "upper(name)"));
            assert!(rows.len() <= SQL_BATCH);
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let at = columns.iter().position(|c| c == "name").unwrap();
            Ok(rows.iter().map(|r| r[at].as_ref().map(|v| v.to_uppercase())).collect())
        }
    }

    #[test]
    fn sql_rules_are_evaluated_in_batches_with_every_value_of_the_row() {
        let rows: Vec<Vec<u8>> = (0..2500)
            .map(|i| format!("{i}\te{i}\tn\\t{i}\tx\n").into_bytes())
            .collect();
        let rows: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
        let (input, _) = sample(16, &rows);
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut m = Masker::new(
            rules(&[
                ("E-mail", ColumnRule::Redact),
                ("name", ColumnRule::Sql("upper(name)".into())),
            ]),
            MaskKey(b"k".to_vec()),
            Some(Box::new(Upper(calls.clone()))),
        );
        let out = run(&mut m, &input).unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        let text = String::from_utf8(block_text(&out, 2)).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2502);
        assert_eq!(lines[1234], "1234\txxxxx\tN\\t1234\tx");
        assert_eq!(m.outcome().unwrap().tables[0].rows, 2500);
    }

    #[test]
    fn a_partitions_rows_follow_the_rules_of_its_partitioned_table() {
        let mut a = Archive::new(16);
        a.int(4);
        a.entry(1, "TABLE", "public", "users", "", false);
        a.entry(2, "TABLE", "public", "users_a", "", false);
        // The definition is what names the parent: `entry` writes an empty one, so this entry is written here.
        let attach = "ALTER TABLE ONLY public.users ATTACH PARTITION public.users_a FOR VALUES IN (1);\n";
        a.int(3);
        a.int(0);
        a.str(Some("0"));
        a.str(Some("16390"));
        a.str(Some("users_a"));
        a.str(Some("TABLE ATTACH"));
        a.int(1);
        a.str(Some(attach));
        a.str(Some(""));
        a.str(Some(""));
        a.str(Some("public"));
        a.str(Some(""));
        a.str(Some(""));
        a.int(0);
        a.str(Some("postgres"));
        a.str(Some("false"));
        a.str(None);
        a.out.push(OFFSET_NO_DATA);
        a.out.extend_from_slice(&[0; 8]);
        a.entry(4, "TABLE DATA", "public", "users_a", USERS_COPY, true);
        a.data(4, &[ROWS[0], b"\\.\n\n"]);
        let mut m = masker(rules(&[("name", ColumnRule::Redact)]), b"k");
        let out = run(&mut m, &a.out).unwrap();
        assert_eq!(
            block_text(&out, 4),
            b"1\talice@corp.example\txxxxx\ttab\\there\n\\.\n\n"
        );
        let users = &m.outcome().unwrap().tables[0];
        assert_eq!(
            (users.table.as_str(), users.rows, users.columns[2].values),
            ("public.users", 1, 1)
        );
        assert_eq!(
            attached_to("ALTER TABLE ONLY \"a.b\".\"P\" ATTACH PARTITION x.y FOR VALUES IN (1);"),
            Some("\"a.b\".P".into())
        );
        assert_eq!(
            attached_to("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (true);"),
            None
        );
        assert_eq!(
            inherits_from("CREATE TABLE public.admins (\n    level integer\n)\nINHERITS (public.users, x.y);\n"),
            Some("public.users".into())
        );
        assert_eq!(inherits_from("CREATE TABLE public.t (\n    a integer\n);\n"), None);
    }

    #[test]
    fn the_leak_count_counts_every_output_occurrence_found_among_the_sources() {
        assert_eq!(common(&[1, 3, 3, 7], &[0, 3, 3, 4, 7, 9]), 3);
        assert_eq!(common(&[], &[1]), 0);
        assert_eq!(common(&[5], &[]), 0);
    }

    #[test]
    fn copy_statements_are_read_with_quoted_identifiers() {
        assert_eq!(
            copy_columns("COPY \"my.schema\".\"T (x)\" (id, \"a, \"\"b\"\"\", c) FROM stdin;\n").unwrap(),
            ["id", "a, \"b\"", "c"]
        );
        assert_eq!(
            copy_columns("COPY public.empty  FROM stdin;\n").unwrap(),
            Vec::<String>::new()
        );
        assert!(copy_columns("SELECT 1").is_none());
        assert!(copy_columns("COPY public.t (a, FROM stdin;").is_none());
    }
}
