//! Row counts read from a pg_dump custom-format archive as it streams by, so the manifest's exact counts cost no
//! second scan of every table on the server: the archive's own COPY data, in the dump's snapshot by construction.
//!
//! The archive (archiver versions 1.12 to 1.16: PostgreSQL 12 to 18's pg_dump) is
//! - a header: `PGDMP`, version (major, minor, revision bytes), integer size, offset size, format (1: custom),
//!   compression (a byte naming the algorithm from 1.15, an integer level before), the creation time (7
//!   integers), the database name, and the server's and pg_dump's versions;
//! - the table of contents: a count, then per entry its dump id, whether it has data, catalog ids, tag, kind
//!   (`desc`), section, definition, drop and COPY statements, schema, tablespace, table access method (from 1.14),
//!   relkind (from 1.16), owner, a legacy flag, a NULL-terminated list of dependencies, and the custom format's
//!   data offset (a flag byte and `offSize` bytes);
//! - data blocks until the end: a block type byte (1: a table's data, 3: large objects) and the entry's dump id,
//!   then length-prefixed chunks ending with a zero length (for large objects: per object an OID then its chunks,
//!   ending with OID 0).
//!
//! Integers are a sign byte and `intSize` bytes, least significant first; strings an integer length (-1: NULL)
//! and that many bytes. Uncompressed, a `TABLE DATA` block is COPY text: one line per row (newlines inside values
//! are escaped), ending with a `\.` line. Anything else (compression, an unknown block, a block for no entry, a
//! truncated stream, a table whose data never came) is an error, never a guess: the caller fails the export.
//! The parser holds no buffer of its own: it reads the chunks it is pushed in place and never holds a whole block.
//!
//! The same pass reads the table of contents into the manifest's [`Catalog`] for the content watch's schema
//! drift: each entry's kind, schema, name and a SHA-256 of its definition, hashed piece by piece as it streams
//! (never kept, however long), and each table's columns from its `CREATE TABLE` ([`columns`]). A definition the
//! column reader does not understand keeps only its hash: the catalogue never fails an export.

mod columns;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use sha2::{Digest, Sha256};

use crate::bucket::manifest::{Catalog, CatalogEntry, CatalogTable};

/// The most a TOC string the parser keeps (tag, kind, schema) may be; longer strings are only skipped.
const KEPT_STRING: usize = 1 << 20;
/// The parser's read buffer.
pub const BUF: usize = 64 * 1024;
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const FORMAT_CUSTOM: u8 = 1;
const OFFSET_NO_DATA: u8 = 3;

/// Kinds of TOC entry the catalogue leaves out: data, and entries there is one of per row or whose definition
/// changes with the data (a sequence's current value), which would make every export drift.
const NOT_CATALOGUED: [&str; 6] = [
    "TABLE DATA",
    "BLOBS",
    "BLOB",
    "LARGE OBJECT",
    "BLOB METADATA",
    "SEQUENCE SET",
];

/// What the streamed archive holds: every table's rows, and its catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub tables: Vec<TableRows>,
    pub catalog: Catalog,
}

/// The rows of one table's data in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    pub schema: String,
    pub name: String,
    pub rows: u64,
}

/// Why an archive's rows could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("reading the archive: {0}")]
    Io(#[from] io::Error),
    #[error("the archive ended inside {0}")]
    Truncated(&'static str),
    #[error("not a pg_dump archive: no PGDMP header")]
    NotAnArchive,
    #[error("archive version {0}.{1}.{2} is not one this reader knows (1.12 to 1.16: pg_dump 12 to 18)")]
    Version(u8, u8, u8),
    #[error("archive format {0} is not the custom format (1)")]
    Format(u8),
    #[error("the archive's integers are {0} bytes: only 1 to 8 can be read")]
    IntSize(u8),
    #[error("the archive is compressed ({0}): row counting needs pg_dump --compress=0")]
    Compressed(String),
    #[error("invalid archive: {0}")]
    Invalid(String),
}

fn invalid(what: impl Into<String>) -> FormatError {
    FormatError::Invalid(what.into())
}

/// Counts the rows of every `TABLE DATA` entry of an uncompressed custom-format archive read from `input`, in
/// the order of the table of contents.
pub fn count_rows(input: impl Read) -> Result<Vec<TableRows>, FormatError> {
    count_rows_with_catalog(input).map(|c| c.tables)
}

/// [`count_rows`], and the archive's catalogue (what a masking is checked against).
pub fn count_rows_with_catalog(mut input: impl Read) -> Result<Counted, FormatError> {
    let mut counter = RowCounter::new();
    let mut buf = vec![0; BUF];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return counter.finish_with_catalog(),
            Ok(n) => counter.push(Bytes::copy_from_slice(&buf[..n])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The row counter fed chunk by chunk, on the thread that already holds the archive's chunks (the export's
/// encoder), so counting needs no thread, no channel and no copy of its own: [`RowCounter::push`] each chunk in
/// order, then [`RowCounter::finish`]. Once the archive is found invalid, further chunks are ignored and
/// `finish` returns the first error.
///
/// The parser is written as a pull parser (an `async fn` that awaits its next bytes) and driven here by hand:
/// each push hands it one chunk and polls it until it has consumed the chunk and waits for the next one.
pub struct RowCounter {
    feed: Rc<RefCell<Feed>>,
    parse: Option<Parse>,
    verdict: Option<Result<Counted, FormatError>>,
}

/// The parse in progress: it completes with the counts once the archive has ended, or at its first error.
type Parse = Pin<Box<dyn Future<Output = Result<Counted, FormatError>>>>;

/// The bytes handed to the parser and not yet consumed, and whether the archive has ended.
#[derive(Default)]
struct Feed {
    current: Bytes,
    ended: bool,
}

impl std::fmt::Debug for RowCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowCounter")
            .field("pending", &self.feed.borrow().current.len())
            .field("verdict", &self.verdict)
            .finish_non_exhaustive()
    }
}

impl Default for RowCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl RowCounter {
    pub fn new() -> Self {
        let feed = Rc::new(RefCell::new(Feed::default()));
        let parse = Box::pin(parse(Reader::new(Rc::clone(&feed))));
        RowCounter {
            feed,
            parse: Some(parse),
            verdict: None,
        }
    }

    /// Hands the parser the archive's next chunk (a cheap clone of the caller's: nothing is copied).
    pub fn push(&mut self, chunk: Bytes) {
        if self.verdict.is_some() || chunk.is_empty() {
            return;
        }
        self.feed.borrow_mut().current = chunk;
        self.poll();
    }

    /// The counts, once the whole archive was pushed; an archive that ended early is an error.
    pub fn finish(self) -> Result<Vec<TableRows>, FormatError> {
        self.finish_with_catalog().map(|c| c.tables)
    }

    /// The counts and the archive's catalogue, once the whole archive was pushed.
    pub fn finish_with_catalog(mut self) -> Result<Counted, FormatError> {
        self.feed.borrow_mut().ended = true;
        self.poll();
        self.verdict
            .unwrap_or(Err(invalid("the row counter stopped before the end of the archive")))
    }

    fn poll(&mut self) {
        let Some(parse) = self.parse.as_mut() else {
            return;
        };
        // The parser waits only for bytes, which only `push` brings: no waker is ever needed.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(verdict) = parse.as_mut().poll(&mut cx) {
            self.verdict = Some(verdict);
            self.parse = None;
        }
    }
}

/// The table of contents at the start of an uncompressed custom-format archive read from `input`, and every
/// byte read to find it (the caller hands them on before the rest of `input`, so that the archive is read once).
pub fn read_toc_entries(input: &mut dyn Read) -> Result<(Vec<TocEntry>, Vec<u8>), FormatError> {
    let feed = Rc::new(RefCell::new(Feed::default()));
    let mut parse = Box::pin(async {
        let mut r = Reader::new(Rc::clone(&feed));
        let header = read_header(&mut r).await?;
        read_toc(&mut r, &header).await.map(|toc| toc.entries)
    });
    let mut head = Vec::new();
    let mut buf = vec![0; BUF];
    // The parser waits only for bytes, which only this loop brings: no waker is ever needed.
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(entries) = parse.as_mut().poll(&mut cx) {
            return entries.map(|e| (e, head));
        }
        match input.read(&mut buf) {
            Ok(0) => feed.borrow_mut().ended = true,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                feed.borrow_mut().current = Bytes::copy_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

async fn parse(mut r: Reader) -> Result<Counted, FormatError> {
    let header = read_header(&mut r).await?;
    let toc = read_toc(&mut r, &header).await?;
    let mut rows: Vec<Option<u64>> = vec![None; toc.tables.len()];
    while let Some(kind) = r.byte_or_end().await? {
        let id = r.int().await?;
        match kind {
            BLK_DATA => {
                let Some(&slot) = toc.by_id.get(&id) else {
                    if !toc.other_data.contains(&id) {
                        return Err(invalid(format!(
                            "a data block for dump id {id}, which the TOC does not list"
                        )));
                    }
                    skip_chunks(&mut r).await?;
                    continue;
                };
                if rows[slot].is_some() {
                    return Err(invalid(format!("two data blocks for dump id {id}")));
                }
                rows[slot] = Some(count_block(&mut r, &toc.tables[slot]).await?);
            }
            BLK_BLOBS => skip_large_objects(&mut r).await?,
            other => return Err(invalid(format!("unknown block type {other} (dump id {id})"))),
        }
    }
    let tables = toc
        .tables
        .into_iter()
        .zip(rows)
        .map(|(t, rows)| match (rows, t.has_data) {
            (Some(rows), _) => Ok((t, rows)),
            (None, false) => Ok((t, 0)),
            (None, true) => Err(FormatError::Truncated("the data blocks: a table's data never came")),
        })
        .map(|r| {
            r.map(|(t, rows)| TableRows {
                schema: t.schema,
                name: t.name,
                rows,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Counted {
        tables,
        catalog: toc.catalog,
    })
}

struct Header {
    minor: u8,
}

async fn read_header(r: &mut Reader) -> Result<Header, FormatError> {
    let mut magic = [0u8; 5];
    r.exact(&mut magic, "the header").await?;
    if &magic != b"PGDMP" {
        return Err(FormatError::NotAnArchive);
    }
    let (major, minor, rev) = (r.byte().await?, r.byte().await?, r.byte().await?);
    if major != 1 || !(12..=16).contains(&minor) {
        return Err(FormatError::Version(major, minor, rev));
    }
    let int_size = r.byte().await?;
    if !(1..=8).contains(&int_size) {
        return Err(FormatError::IntSize(int_size));
    }
    r.int_size = int_size;
    r.off_size = r.byte().await?;
    let format = r.byte().await?;
    if format != FORMAT_CUSTOM {
        return Err(FormatError::Format(format));
    }
    if minor >= 15 {
        let algorithm = r.byte().await?;
        if algorithm != 0 {
            return Err(FormatError::Compressed(format!("algorithm {algorithm}")));
        }
    } else {
        let level = r.int().await?;
        if level != 0 {
            return Err(FormatError::Compressed(format!("level {level}")));
        }
    }
    for _ in 0..7 {
        r.int().await?; // creation time
    }
    r.skip_str().await?; // database name
    r.skip_str().await?; // server version
    r.skip_str().await?; // pg_dump version
    Ok(Header { minor })
}

/// One entry of the table of contents, as much as choosing what to restore needs: its dump id, its kind
/// (`TABLE`, `INDEX`, `FK CONSTRAINT`, ...), its schema and name (`tag`), and the dump ids it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub id: i64,
    pub desc: String,
    pub schema: String,
    pub tag: String,
    pub deps: Vec<i64>,
}

/// The table of contents, reduced to what counting needs.
struct Toc {
    /// Every entry, in TOC order.
    entries: Vec<TocEntry>,
    /// `TABLE DATA` entries, in TOC order.
    tables: Vec<TableEntry>,
    /// Their dump ids, to their index in `tables`.
    by_id: HashMap<i64, usize>,
    /// The dump ids of other entries whose data may have blocks (large objects, and kinds this reader ignores).
    other_data: std::collections::HashSet<i64>,
    catalog: Catalog,
}

/// A `TABLE DATA` entry, and whether the archive says it has data.
#[derive(Debug, Clone)]
struct TableEntry {
    schema: String,
    name: String,
    has_data: bool,
}

async fn read_toc(r: &mut Reader, header: &Header) -> Result<Toc, FormatError> {
    let count = r.int().await?;
    if count < 0 {
        return Err(invalid(format!("a TOC of {count} entries")));
    }
    let mut toc = Toc {
        entries: Vec::new(),
        tables: Vec::new(),
        by_id: HashMap::new(),
        other_data: Default::default(),
        catalog: Catalog::default(),
    };
    for _ in 0..count {
        let id = r.int().await?;
        if id <= 0 {
            return Err(invalid(format!("TOC entry id {id}")));
        }
        r.int().await?; // had a data dumper
        r.skip_str().await?; // table oid
        r.skip_str().await?; // oid
        let tag = r.kept_str().await?;
        let desc = r.kept_str().await?;
        r.int().await?; // section
        let is_table = desc.as_deref() == Some("TABLE");
        let (sha256, definition) = r.hashed_str(is_table).await?;
        r.skip_str().await?; // drop statement
        r.skip_str().await?; // copy statement
        let schema = r.kept_str().await?;
        r.skip_str().await?; // tablespace
        if header.minor >= 14 {
            r.skip_str().await?; // table access method
        }
        if header.minor >= 16 {
            r.int().await?; // relkind
        }
        r.skip_str().await?; // owner
        r.skip_str().await?; // "false" (tables WITH OIDS are no more)
        let mut deps = Vec::new();
        while let Some(dep) = r.kept_str().await? {
            // Dependencies, until a NULL: each a dump id in decimal.
            deps.push(
                dep.parse()
                    .map_err(|_| invalid(format!("TOC entry {id}: dependency `{dep}`")))?,
            );
        }
        let flag = r.byte().await?;
        for _ in 0..r.off_size {
            r.byte().await?;
        }
        let has_data = flag != OFFSET_NO_DATA;
        catalogue(&mut toc.catalog, &desc, &schema, &tag, sha256, definition.as_deref());
        toc.entries.push(TocEntry {
            id,
            desc: desc.clone().unwrap_or_default(),
            schema: schema.clone().unwrap_or_default(),
            tag: tag.clone().unwrap_or_default(),
            deps,
        });
        if desc.as_deref() == Some("TABLE DATA") {
            let (Some(schema), Some(name)) = (schema, tag) else {
                return Err(invalid(format!("TABLE DATA entry {id} without a schema or a name")));
            };
            if toc.by_id.insert(id, toc.tables.len()).is_some() {
                return Err(invalid(format!("two TOC entries with dump id {id}")));
            }
            toc.tables.push(TableEntry { schema, name, has_data });
        } else {
            toc.other_data.insert(id);
        }
    }
    Ok(toc)
}

/// Adds one TOC entry to the catalogue.
fn catalogue(
    catalog: &mut Catalog,
    desc: &Option<String>,
    schema: &Option<String>,
    tag: &Option<String>,
    sha256: String,
    definition: Option<&str>,
) {
    let (desc, schema, tag) = (
        desc.as_deref().unwrap_or_default(),
        schema.as_deref().unwrap_or_default(),
        tag.as_deref().unwrap_or_default(),
    );
    if NOT_CATALOGUED.contains(&desc) {
        return;
    }
    match desc {
        "SCHEMA" => catalog.schemas.push(tag.to_owned()),
        "EXTENSION" => catalog.extensions.push(tag.to_owned()),
        "TABLE" => catalog.tables.push(CatalogTable {
            schema: schema.to_owned(),
            name: tag.to_owned(),
            columns: definition.and_then(columns::columns),
        }),
        _ => {}
    }
    catalog.entries.push(CatalogEntry {
        desc: desc.to_owned(),
        schema: schema.to_owned(),
        tag: tag.to_owned(),
        sha256,
    });
}

/// Counts the rows of one table's data block, chunk by chunk.
async fn count_block(r: &mut Reader, table: &TableEntry) -> Result<u64, FormatError> {
    let mut copy = CopyRows::default();
    loop {
        if r.count_buffered_chunks(&mut copy, table)? {
            return copy.finish(table);
        }
        let len = r.len().await?;
        if len == 0 {
            return copy.finish(table);
        }
        let mut left = len;
        while left > 0 {
            let piece = r.some(left, "a data chunk").await?;
            left -= piece.len();
            copy.feed(&piece, table)?;
        }
    }
}

async fn skip_chunks(r: &mut Reader) -> Result<(), FormatError> {
    loop {
        let len = r.len().await?;
        if len == 0 {
            return Ok(());
        }
        r.skip(len, "a data chunk").await?;
    }
}

async fn skip_large_objects(r: &mut Reader) -> Result<(), FormatError> {
    while r.int().await? != 0 {
        skip_chunks(r).await?;
    }
    Ok(())
}

/// COPY text's rows: newline-terminated lines before the `\.` line; after it only empty lines may follow.
#[derive(Debug, Default)]
struct CopyRows {
    rows: u64,
    /// Bytes of the current line so far, and its first two bytes.
    line: usize,
    head: [u8; 2],
    ended: bool,
}

impl CopyRows {
    fn feed(&mut self, mut data: &[u8], table: &TableEntry) -> Result<(), FormatError> {
        if self.ended {
            return match data.iter().all(|&b| b == b'\n') {
                true => Ok(()),
                false => Err(invalid(format!(
                    "data after the end of {}.{}'s COPY data",
                    table.schema, table.name
                ))),
            };
        }
        while let Some(at) = memchr::memchr(b'\n', data) {
            self.extend(&data[..at]);
            if self.line == 2 && &self.head == b"\\." {
                self.ended = true;
                self.line = 0;
                return self.feed(&data[at + 1..], table);
            }
            self.rows += 1;
            self.line = 0;
            data = &data[at + 1..];
        }
        self.extend(data);
        Ok(())
    }

    fn extend(&mut self, segment: &[u8]) {
        for (i, &b) in segment.iter().take(2usize.saturating_sub(self.line)).enumerate() {
            self.head[self.line + i] = b;
        }
        self.line = self.line.saturating_add(segment.len());
    }

    fn finish(self, table: &TableEntry) -> Result<u64, FormatError> {
        if self.line != 0 {
            return Err(invalid(format!(
                "{}.{}'s COPY data ends inside a row",
                table.schema, table.name
            )));
        }
        Ok(self.rows)
    }
}

/// The parser's view of the feed: the bytes pushed so far and not consumed, and the archive's integer and offset
/// sizes.
struct Reader {
    feed: Rc<RefCell<Feed>>,
    int_size: u8,
    off_size: u8,
}

/// Pending once, then ready: how the parser waits for the next push.
struct NextChunk(bool);

impl Future for NextChunk {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        Poll::Pending
    }
}

impl Reader {
    fn new(feed: Rc<RefCell<Feed>>) -> Self {
        Reader {
            feed,
            int_size: 4,
            off_size: 8,
        }
    }

    /// Waits until there are bytes to read; `false` at the end of the archive.
    async fn fill(&mut self) -> Result<bool, FormatError> {
        loop {
            {
                let feed = self.feed.borrow();
                if !feed.current.is_empty() {
                    return Ok(true);
                }
                if feed.ended {
                    return Ok(false);
                }
            }
            NextChunk(false).await;
        }
    }

    /// Up to `max` (at least one) bytes: a slice of the pushed chunk, not a copy.
    async fn some(&mut self, max: usize, what: &'static str) -> Result<Bytes, FormatError> {
        if !self.fill().await? {
            return Err(FormatError::Truncated(what));
        }
        let mut feed = self.feed.borrow_mut();
        let n = max.min(feed.current.len());
        Ok(feed.current.split_to(n))
    }

    async fn exact(&mut self, out: &mut [u8], what: &'static str) -> Result<(), FormatError> {
        let mut at = 0;
        while at < out.len() {
            let piece = self.some(out.len() - at, what).await?;
            let n = piece.len();
            out[at..at + n].copy_from_slice(&piece);
            at += n;
        }
        Ok(())
    }

    async fn skip(&mut self, mut n: usize, what: &'static str) -> Result<(), FormatError> {
        while n > 0 {
            n -= self.some(n, what).await?.len();
        }
        Ok(())
    }

    async fn byte(&mut self) -> Result<u8, FormatError> {
        self.byte_or_end()
            .await?
            .ok_or(FormatError::Truncated("the header or the table of contents"))
    }

    /// The next byte, or `None` at a clean end of the archive.
    async fn byte_or_end(&mut self) -> Result<Option<u8>, FormatError> {
        if !self.fill().await? {
            return Ok(None);
        }
        let mut feed = self.feed.borrow_mut();
        let byte = feed.current.first().copied();
        feed.current.advance(1);
        Ok(byte)
    }

    async fn int(&mut self) -> Result<i64, FormatError> {
        let size = 1 + usize::from(self.int_size);
        {
            // The usual case: the whole integer is in the pushed chunk.
            let mut feed = self.feed.borrow_mut();
            if feed.current.len() >= size {
                let value = decode_int(&feed.current[..size]);
                feed.current.advance(size);
                return value;
            }
        }
        let mut bytes = [0u8; 9];
        for byte in &mut bytes[..size] {
            *byte = self.byte().await?;
        }
        decode_int(&bytes[..size])
    }

    /// A non-negative length (a chunk's or a string's).
    async fn len(&mut self) -> Result<usize, FormatError> {
        to_len(self.int().await?)
    }

    /// Counts the data chunks (a length, then that many bytes of COPY text) that lie whole in the pushed chunk,
    /// in place, without waiting; `true` once it read the block's closing zero length. pg_dump writes a chunk per
    /// row, so most rows are counted here; a chunk cut by the end of the pushed bytes is left to the caller.
    fn count_buffered_chunks(&mut self, copy: &mut CopyRows, table: &TableEntry) -> Result<bool, FormatError> {
        let size = 1 + usize::from(self.int_size);
        let mut feed = self.feed.borrow_mut();
        loop {
            let Some(head) = feed.current.get(..size) else {
                return Ok(false);
            };
            let len = to_len(decode_int(head)?)?;
            if len == 0 {
                feed.current.advance(size);
                return Ok(true);
            }
            let Some(data) = feed.current.get(size..size.saturating_add(len)) else {
                return Ok(false);
            };
            copy.feed(data, table)?;
            feed.current.advance(size + len);
        }
    }

    /// Skips a string; `false` if it was NULL.
    async fn str_present(&mut self) -> Result<bool, FormatError> {
        let n = self.int().await?;
        if n == -1 {
            return Ok(false);
        }
        let n = usize::try_from(n).map_err(|_| invalid(format!("string length {n}")))?;
        self.skip(n, "a string").await?;
        Ok(true)
    }

    async fn skip_str(&mut self) -> Result<(), FormatError> {
        self.str_present().await.map(|_| ())
    }

    /// Reads a string into a SHA-256 as it streams by (NULL hashes as the empty string), and keeps it too when
    /// `keep` and it is at most [`KEPT_STRING`] bytes of UTF-8.
    async fn hashed_str(&mut self, keep: bool) -> Result<(String, Option<String>), FormatError> {
        let n = self.int().await?;
        let mut hasher = Sha256::new();
        if n == -1 {
            return Ok((hex(&hasher.finalize()), None));
        }
        let mut left = usize::try_from(n).map_err(|_| invalid(format!("string length {n}")))?;
        let mut kept = (keep && left <= KEPT_STRING).then(|| Vec::with_capacity(left));
        while left > 0 {
            let piece = self.some(left, "a string").await?;
            left -= piece.len();
            hasher.update(&piece);
            if let Some(kept) = kept.as_mut() {
                kept.extend_from_slice(&piece);
            }
        }
        let kept = kept.and_then(|bytes| String::from_utf8(bytes).ok());
        Ok((hex(&hasher.finalize()), kept))
    }

    async fn kept_str(&mut self) -> Result<Option<String>, FormatError> {
        let n = self.int().await?;
        if n == -1 {
            return Ok(None);
        }
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= KEPT_STRING)
            .ok_or_else(|| invalid(format!("a name of {n} bytes")))?;
        let mut bytes = vec![0; n];
        self.exact(&mut bytes, "a string").await?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| invalid("a name that is not UTF-8"))
    }
}

/// An archive integer: a sign byte, then its magnitude in `int_size` little-endian bytes.
fn decode_int(bytes: &[u8]) -> Result<i64, FormatError> {
    let (sign, magnitude) = bytes.split_first().ok_or(FormatError::Truncated("an integer"))?;
    let value = magnitude
        .iter()
        .enumerate()
        .fold(0u64, |value, (i, &b)| value | u64::from(b) << (8 * i));
    let value = i64::try_from(value).map_err(|_| invalid(format!("integer {value} out of range")))?;
    Ok(if *sign == 0 { value } else { -value })
}

/// A non-negative length (a chunk's or a string's).
fn to_len(n: i64) -> Result<usize, FormatError> {
    usize::try_from(n).map_err(|_| invalid(format!("length {n}")))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes archives the way pg_dump's custom format lays them out, for the tests.
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
            a.str(Some("app"));
            a.str(Some("15.4"));
            a.str(Some("15.4"));
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

        /// One TOC entry; `data`: whether it has a data block.
        fn entry(&mut self, id: i64, desc: &str, schema: &str, tag: &str, data: bool) {
            self.entry_with(id, desc, schema, tag, data, "");
        }

        /// One TOC entry with its definition.
        fn entry_with(&mut self, id: i64, desc: &str, schema: &str, tag: &str, data: bool, definition: &str) {
            self.int(id);
            self.int(i64::from(data));
            self.str(Some("0"));
            self.str(Some("16384"));
            self.str(Some(tag));
            self.str(Some(desc));
            self.int(2);
            self.str(Some(definition));
            self.str(Some(""));
            self.str(Some("COPY x FROM stdin;\n"));
            self.str(Some(schema));
            self.str(Some(""));
            self.str(Some("heap"));
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

    /// Three tables (one empty, one with awkward values) and a large object, as pg_dump 15 or 17 writes them.
    fn sample(minor: u8) -> Vec<u8> {
        sample_and_tail(minor).0
    }

    /// The sample, and where its large-object block (after every table's data) starts.
    fn sample_and_tail(minor: u8) -> (Vec<u8>, usize) {
        let mut a = Archive::new(minor);
        a.int(5);
        a.entry(1, "SCHEMA", "", "odd.schema", false);
        a.entry(2, "TABLE DATA", "public", "users", true);
        a.entry(3, "TABLE DATA", "odd.schema", "a.b", true);
        a.entry(4, "TABLE DATA", "public", "empty", true);
        a.entry(5, "BLOBS", "", "BLOBS", true);
        a.data(2, &[b"1\talice\n2\t\\N\n", b"3\tline\\nbreak \\\\ back\n\\.\n\n"]);
        a.data(3, &[b"\n\n\\.\n\n"]);
        a.data(4, &[b"\\.\n\n"]);
        let tail = a.out.len();
        a.out.push(BLK_BLOBS);
        a.int(5);
        a.int(16500);
        a.int(3);
        a.out.extend_from_slice(b"\n\n\n");
        a.int(0);
        a.int(0);
        (a.out, tail)
    }

    fn expected() -> Vec<TableRows> {
        let t = |schema: &str, name: &str, rows| TableRows {
            schema: schema.into(),
            name: name.into(),
            rows,
        };
        vec![
            t("public", "users", 3),
            t("odd.schema", "a.b", 2),
            t("public", "empty", 0),
        ]
    }

    #[test]
    fn counts_rows_of_every_table_in_toc_order_for_each_known_version() {
        for minor in [14, 15, 16] {
            assert_eq!(count_rows(&sample(minor)[..]).unwrap(), expected(), "1.{minor}");
        }
    }

    #[test]
    fn a_table_whose_data_never_came_is_an_error_not_zero() {
        let mut a = Archive::new(15);
        a.int(2);
        a.entry(2, "TABLE DATA", "public", "t", true);
        a.entry(3, "TABLE DATA", "public", "u", true);
        a.data(2, &[b"1\n\\.\n\n"]);
        let err = count_rows(&a.out[..]).unwrap_err();
        assert!(err.to_string().contains("a table's data never came"), "{err}");
        // Entries pg_dump marked as having no data count zero rows.
        let mut a = Archive::new(15);
        a.int(1);
        a.entry(2, "TABLE DATA", "public", "t", false);
        assert_eq!(count_rows(&a.out[..]).unwrap()[0].rows, 0);
    }

    #[test]
    fn compressed_and_foreign_archives_are_refused_by_name() {
        let mut gz = sample(15);
        gz[11] = 1; // the compression algorithm byte: gzip
        assert!(matches!(count_rows(&gz[..]), Err(FormatError::Compressed(_))));
        let mut tar = sample(15);
        tar[10] = 3;
        assert!(matches!(count_rows(&tar[..]), Err(FormatError::Format(3))));
        let mut future = sample(16);
        future[6] = 17;
        assert!(matches!(count_rows(&future[..]), Err(FormatError::Version(1, 17, 0))));
        assert!(matches!(count_rows(&b"-- SQL"[..]), Err(FormatError::NotAnArchive)));
        assert!(matches!(count_rows(&b"PGD"[..]), Err(FormatError::Truncated(_))));
        assert!(matches!(count_rows(&b"PGDMQ..."[..]), Err(FormatError::NotAnArchive)));
    }

    #[test]
    fn a_row_cut_in_the_middle_or_data_after_the_end_marker_is_an_error() {
        let mut a = Archive::new(16);
        a.int(1);
        a.entry(2, "TABLE DATA", "public", "t", true);
        a.data(2, &[b"1\n2"]);
        assert!(count_rows(&a.out[..])
            .unwrap_err()
            .to_string()
            .contains("ends inside a row"));
        let mut a = Archive::new(16);
        a.int(1);
        a.entry(2, "TABLE DATA", "public", "t", true);
        a.data(2, &[b"1\n\\.\n3\n"]);
        assert!(count_rows(&a.out[..])
            .unwrap_err()
            .to_string()
            .contains("after the end"));
    }

    #[test]
    fn a_line_that_only_starts_like_the_end_marker_is_a_row() {
        let mut a = Archive::new(16);
        a.int(1);
        a.entry(2, "TABLE DATA", "public", "t", true);
        a.data(2, &[b"\\.x\n\\\\.\n\\", b".\n"]);
        assert_eq!(count_rows(&a.out[..]).unwrap()[0].rows, 2);
    }

    /// Hands out the input in the given chunk sizes (cycled), as pipes do.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        next: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.next % self.sizes.len()].max(1);
            self.next += 1;
            let n = size.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_pushed_archive_counts_like_a_read_one_and_keeps_its_first_error() {
        let bytes = sample(16);
        let mut counter = RowCounter::new();
        for piece in bytes.chunks(7) {
            counter.push(Bytes::copy_from_slice(piece));
        }
        assert_eq!(counter.finish().unwrap(), expected());
        // Not an archive: the verdict comes at the first chunk and stays, whatever follows.
        let mut counter = RowCounter::new();
        counter.push(Bytes::from_static(b"-- SQL"));
        counter.push(Bytes::copy_from_slice(&bytes));
        assert!(matches!(counter.finish(), Err(FormatError::NotAnArchive)));
        // Nothing pushed at all is a truncated archive, not an empty one.
        assert!(matches!(RowCounter::new().finish(), Err(FormatError::Truncated(_))));
    }

    #[test]
    fn the_toc_is_read_with_its_dependencies_and_the_bytes_read_are_handed_back() {
        let bytes = sample(16);
        let mut input: &[u8] = &bytes;
        let (entries, head) = read_toc_entries(&mut input).unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(
            (
                entries[1].id,
                entries[1].desc.as_str(),
                entries[1].schema.as_str(),
                entries[1].tag.as_str()
            ),
            (2, "TABLE DATA", "public", "users")
        );
        assert_eq!(entries[1].deps, [7]);
        // What was read and what is left are the archive, in order: nothing lost, nothing read twice.
        assert_eq!([head.as_slice(), input].concat(), bytes);
        let mut sql: &[u8] = b"-- SQL";
        assert!(matches!(read_toc_entries(&mut sql), Err(FormatError::NotAnArchive)));
    }

    fn sha(s: &str) -> String {
        hex(&Sha256::digest(s.as_bytes()))
    }

    #[test]
    fn the_catalogue_has_every_object_hashed_and_each_tables_columns() {
        let long_function = format!(
            "CREATE FUNCTION public.f() RETURNS text AS $$ {} $$;",
            "x".repeat(KEPT_STRING + 10)
        );
        let long_table = format!(
            "CREATE TABLE public.wide (\n{}    last integer\n);\n",
            "    c text,\n".repeat(KEPT_STRING / 10)
        );
        let users = "CREATE TABLE public.users (\n    id integer NOT NULL,\n    name text\n);\n";
        let mut a = Archive::new(16);
        a.int(8);
        a.entry_with(1, "SCHEMA", "", "billing", false, "CREATE SCHEMA billing;\n");
        a.entry_with(2, "EXTENSION", "", "pgcrypto", false, "CREATE EXTENSION pgcrypto;\n");
        a.entry_with(3, "TABLE", "public", "users", false, users);
        a.entry_with(4, "TABLE", "public", "wide", false, &long_table);
        a.entry_with(5, "FUNCTION", "public", "f()", false, &long_function);
        a.entry_with(6, "SEQUENCE SET", "public", "users_id_seq", false, "SELECT setval(1);");
        a.entry(7, "TABLE DATA", "public", "users", true);
        a.entry(8, "TABLE DATA", "public", "wide", false);
        a.data(7, &[b"1\ta\n\\.\n\n"]);
        let mut counter = RowCounter::new();
        for piece in a.out.chunks(1000) {
            counter.push(Bytes::copy_from_slice(piece));
        }
        let counted = counter.finish_with_catalog().unwrap();
        assert_eq!(counted.tables[0].rows, 1);
        let c = counted.catalog;
        assert_eq!(c.schemas, ["billing"]);
        assert_eq!(c.extensions, ["pgcrypto"]);
        // Data and sequence values are not objects: they would drift at every export.
        let kinds: Vec<_> = c.entries.iter().map(|e| e.desc.as_str()).collect();
        assert_eq!(kinds, ["SCHEMA", "EXTENSION", "TABLE", "TABLE", "FUNCTION"]);
        assert_eq!(c.entries[2].sha256, sha(users));
        // A definition past what is kept is still hashed whole.
        assert_eq!(c.entries[4].sha256, sha(&long_function));
        assert_eq!(c.entries[3].sha256, sha(&long_table));
        let users = &c.tables[0];
        assert_eq!(users.label(), "public.users");
        let columns: Vec<_> = users
            .columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.name.as_str(), c.type_name.as_str()))
            .collect();
        assert_eq!(columns, [("id", "integer"), ("name", "text")]);
        // Too long to keep: only its hash is compared.
        assert_eq!(
            (c.tables[1].name.as_str(), c.tables[1].columns.as_ref()),
            ("wide", None)
        );
    }

    #[test]
    fn a_negative_chunk_length_is_refused_whether_the_chunk_came_whole_or_byte_by_byte() {
        let mut a = Archive::new(16);
        a.int(1);
        a.entry(1, "TABLE DATA", "public", "users", true);
        a.out.push(BLK_DATA);
        a.int(1);
        a.int(-3);
        a.out.extend_from_slice(b"1\n\\.\n");
        a.int(0);
        for sizes in [vec![a.out.len()], vec![1]] {
            let err = count_rows(Chunked {
                data: &a.out,
                sizes,
                next: 0,
            })
            .unwrap_err();
            assert!(err.to_string().contains("length -3"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_counts(sizes in prop::collection::vec(1usize..40, 1..20), minor in 14u8..=16) {
            let bytes = sample(minor);
            let got = count_rows(Chunked { data: &bytes, sizes, next: 0 }).unwrap();
            prop_assert_eq!(got, expected());
        }

        #[test]
        fn garbage_is_an_error_and_never_a_panic(noise in prop::collection::vec(any::<u8>(), 0..400), at in 0usize..400, cut in 0usize..400) {
            // Pure noise, noise after a valid header, and a valid archive corrupted or cut at a random point.
            let _ = count_rows(&noise[..]);
            let mut bytes = sample(16);
            let i = at % bytes.len();
            bytes[i] = bytes[i].wrapping_add(noise.first().copied().unwrap_or(1).max(1));
            let _ = count_rows(&bytes[..]);
            // Cut anywhere before the last table's data ends, the archive is an error.
            let (valid, tail) = sample_and_tail(15);
            let cut = cut % tail;
            prop_assert!(count_rows(&valid[..cut]).is_err());
            let mut header = Archive::new(16).out;
            header.extend_from_slice(&noise);
            let _ = count_rows(&header[..]);
        }
    }
}
