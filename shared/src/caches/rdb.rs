//! The RDB verifier: reads a Redis or Valkey RDB file (what `SAVE`/`BGSAVE` write and what ElastiCache exports
//! to S3) from start to end, and says whether it is whole and what it holds, without loading it into a server.
//!
//! Owns: the RDB structure rules (header and version: `REDIS` up to [`MAX_VERSION`], Valkey 9's `VALKEY080`;
//! opcodes, length and string encodings, every value type ElastiCache's Redis OSS 5–7 and Valkey 7–9 write,
//! modules' self-describing values), the CRC-64 the file ends with, the key and expiry counts per database as
//! the server holds them after loading (an empty value is dropped by the loader and not counted; `RESIZEDB` is
//! compared with the keys read), and the SHA-256 of the bytes read.
//!
//! Checked as deeply as Redis's loader with `sanitize-dump-payload yes` ([`containers`]): every listpack,
//! ziplist, intset and zipmap (header lengths, entry encodings, back-lengths and prevlens, terminators, counts,
//! intset order, duplicate fields and members), quicklist node containers, stream node ids and listpack layout,
//! LZF strings (decoded as the loader decodes them), NaN scores. Every length is checked arithmetic bounded by
//! the bytes left. A stream's consumer groups are checked as the loader checks them: no name twice, no pending
//! entry twice, every consumer's pending entry in its group's and every group's owned by a consumer.
//!
//! Refused as the loader refuses them: a member twice in a plain (non-encoded) set (type 2, "Duplicate set members
//! detected"), a field twice in a plain hash (type 4, "Duplicate hash fields detected"), a member twice in a plain
//! sorted set (types 3 and 5, "Duplicate zset fields detected"), and a key twice in one database ("RDB has
//! duplicated key", which stops the server; a database selected twice keeps its keys, the same key in two
//! databases is two keys). Strings are compared as the loader compares them, decoded: an integer-encoded `123`
//! and a plain `123` are one member, an LZF string is its plain bytes. The error names the type, the offset and
//! (for a key) the database, never the bytes (a key or member is the customer's data). Stricter than the loader
//! in one corner, on purpose: a key twice is refused even when the loader would have dropped the first copy
//! (expired, or empty); no server writes a key twice.
//!
//! How, in bounded memory: no key or member is kept, only a 128-bit fingerprint of its decoded bytes (two
//! SipHash-1-3 from std's `RandomState`, keyed at random per verification so a file cannot be crafted to collide),
//! computed through the fixed buffer as the string is read (an LZF string decoded through its 8 KiB window).
//! Cost: a `HashSet<u128>`, about 20 B per key when its table is full and 39 B just after it doubles (16 B of
//! fingerprint and one control byte per slot, slots at most 7/8 used): 2-4 GB for 100 million keys, less than the
//! server itself holds for them; per plain container the same per member, freed when the container ends. A false
//! "twice" (two different strings with one fingerprint) has a probability of about n² / 2^129 among n strings
//! compared: below 10^-20 for a billion keys.
//!
//! Newer engines' types (sources: `src/rdb.h` of redis/redis and valkey-io/valkey): Redis OSS 7.4+ writes RDB 12
//! with hashes whose fields expire (types 24 and 25; 22 and 23 in its release candidates). ElastiCache runs Redis
//! OSS up to 7.1 (RDB 11 at most), so no ElastiCache file has them: refused by name under a `REDIS` header, saying
//! so. Valkey 7.2-8.x writes RDB 11; Valkey 9.0 writes `VALKEY080`, where type 22 is its hash whose fields can
//! expire (written, with every field, once one field has a TTL): read as Valkey 9.0's loader (`rdbLoadObject`)
//! reads it, a count and per field its name, its value (strings of any encoding, through the fixed buffer) and
//! its expiry, 8 bytes of little-endian Unix milliseconds, -1 for none; no other field. Refused as the loader
//! refuses them: an expiry below -1 (named by its offset, never its value) and a field twice ("Duplicate hash
//! fields detected", compared decoded). Counted as the server holds it after loading, at the time of verification:
//! a hash of no field is dropped by the loader; a hash whose every field has an expiry already past when the
//! verification starts is not counted either (Valkey 9.1's loader drops it, "all fields expired hashes"; 9.0's
//! loads it and its field-expiry cycle deletes it moments later); any other is a key. So a server that loads the
//! file later may hold fewer keys than counted (more fields have expired by then), as with a key whose own TTL
//! passes (counted here, skipped by a primary's loader). A field's TTL is not its key's: it adds nothing to
//! `expires`. Held against real servers: files Valkey 9.0.0 and 9.1.2 wrote (`tests/fixtures/rdb/`, whose README
//! says how, with the counts each server gave after loading them) and hand-made variants whose verdicts they gave
//! (-2 and a field twice refused, a hash of no field skipped, a past expiry loaded). Types 23-25 under `VALKEY080`
//! (Valkey 9.0 and 9.1 write none of them) are refused as unknown where their value starts.
//! Valkey 9.2's `VALKEY081` (type 23, path hashes) and Redis OSS 8's later versions are refused by version.
//!
//! Never: calls AWS, opens a connection, or reports a count for a file it could not read to its checksum. A big
//! string is checked through a fixed buffer; a container is read whole (it is at most 4 GiB: its own header
//! counts its bytes in 32 bits). A value type it does not know is an error naming the type and offset, never
//! skipped by guesswork.
//!
//! Why our own reader and not `redis-check-rdb`: the check must run where the copy is verified (a Lambda
//! function reading from S3, with no Redis binaries) and must give key counts per database for the manifest,
//! which `redis-check-rdb` does not print. The tests hold it against files a real `redis-server` wrote, and
//! against `redis-check-rdb`'s own verdict on damaged ones.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod containers;
mod lzf;

/// The newest RDB format version read under the `REDIS` magic: Redis 7.0 writes 10, Redis 7.2 and Valkey 7.2–8.x
/// write 11, Redis 7.4 writes 12 (its hash-field-expiry types 22–25 are refused by name, never guessed).
pub const MAX_VERSION: u32 = 12;

/// The RDB format version Valkey 9.0 writes, under its own `VALKEY` magic (`VALKEY080`): Valkey reserves 12–79
/// for Redis's formats and writes its own from 80, so the version alone says which magic a file has. Its
/// field-expiring hash (type 22 there) is read; 22 under `REDIS` is another engine's type, refused by name.
pub const VALKEY_VERSION: u32 = 80;

/// The version in a header, and whether its magic is Valkey's: `REDIS` and four digits, or `VALKEY` and three.
fn header_version(header: &[u8; 9]) -> Option<(bool, u32)> {
    let digits = |d: &[u8]| -> Option<u32> {
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(d).ok()?.parse().ok())?
    };
    if let Some(d) = header.strip_prefix(b"REDIS") {
        digits(d).map(|v| (false, v))
    } else if let Some(d) = header.strip_prefix(b"VALKEY") {
        digits(d).map(|v| (true, v))
    } else {
        None
    }
}

/// What a whole, verified RDB file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdbSummary {
    /// The RDB format version in the header.
    pub version: u32,
    /// The server's version from its auxiliary fields, when present: `valkey-ver` where the file has it (Valkey
    /// 8+; Valkey 9 writes no `redis-ver`), otherwise `redis-ver` (Redis, and Valkey 7.2).
    pub server_version: Option<String>,
    /// Keys and keys with an expiry, per database number; databases without keys are absent.
    pub databases: BTreeMap<u64, DbKeys>,
    pub bytes: u64,
    pub sha256: String,
    /// Whether the file carried a CRC-64 (a server with `rdbchecksum no` writes zeros, and nothing is checked).
    pub checksummed: bool,
}

impl RdbSummary {
    /// Keys in every database.
    pub fn keys(&self) -> u64 {
        self.databases.values().map(|d| d.keys).sum()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbKeys {
    pub keys: u64,
    pub expires: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    #[error(
        "not an RDB file: it does not start with `REDIS` and a four-digit version or `VALKEY` and a three-digit one"
    )]
    NotRdb,
    #[error(
        "RDB version {0} is not one this verifier reads (REDIS up to {MAX_VERSION}, VALKEY {VALKEY_VERSION}); upgrade Lifeboat"
    )]
    UnsupportedVersion(u32),
    #[error("the file ends early, at byte {offset}, inside {inside}: it is truncated")]
    Truncated { offset: u64, inside: &'static str },
    #[error("byte {offset}: {what}: the file is damaged")]
    Corrupt { offset: u64, what: String },
    #[error("byte {offset}: value type {kind} is not one this verifier reads ({what})")]
    UnknownType { offset: u64, kind: u8, what: &'static str },
    #[error("the file's CRC-64 is {stored:016x} but its bytes give {computed:016x}: the file is damaged")]
    Checksum { stored: u64, computed: u64 },
    #[error("reading the file: {0}")]
    Io(std::io::Error),
}

const OP_FUNCTION2: u8 = 0xF5;
const OP_FUNCTION_PRE_GA: u8 = 0xF6;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_EXPIRETIME: u8 = 0xFD;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;
const OP_SLOT_INFO: u8 = 0xF4;

/// Fingerprints of strings as the loader compares them (decoded bytes): two SipHash-1-3 of std's
/// [`std::collections::hash_map::RandomState`], each keyed at random when the verification starts, so a file
/// cannot be crafted to collide. 128 bits: among `n` strings compared, a false "twice" has a chance of about
/// n² / 2^129 (below 10^-20 for a billion keys).
struct Fingerprints {
    a: std::collections::hash_map::RandomState,
    b: std::collections::hash_map::RandomState,
}

/// One string being fingerprinted, fed in pieces (the same bytes in any pieces give the same fingerprint).
struct Fingerprint {
    a: std::collections::hash_map::DefaultHasher,
    b: std::collections::hash_map::DefaultHasher,
}

impl Fingerprints {
    fn new() -> Self {
        Self {
            a: std::collections::hash_map::RandomState::new(),
            b: std::collections::hash_map::RandomState::new(),
        }
    }

    fn start(&self) -> Fingerprint {
        Fingerprint {
            a: self.a.build_hasher(),
            b: self.b.build_hasher(),
        }
    }
}

impl Fingerprint {
    fn feed(&mut self, piece: &[u8]) {
        self.a.write(piece);
        self.b.write(piece);
    }

    fn finish(&self) -> u128 {
        u128::from(self.a.finish()) << 64 | u128::from(self.b.finish())
    }
}

/// A length, or the special string encoding its first byte announces.
enum Len {
    Plain(u64),
    Encoded(u8),
}

/// Reads through the file once, hashing and checksumming every byte it consumes.
struct Cursor<R> {
    inner: R,
    offset: u64,
    /// The file's size when known (an S3 object's `Content-Length`): every length is bounded by the bytes left
    /// before anything is skipped or allocated for it.
    size: Option<u64>,
    crc: u64,
    sha: Sha256,
    buf: Vec<u8>,
    fingerprints: Fingerprints,
    /// When the verification started, in Unix milliseconds: a hash whose every field expired by then is one the
    /// server does not hold after loading (Valkey 9's type 22).
    now_ms: i64,
}

impl<R: Read> Cursor<R> {
    fn new(inner: R, size: Option<u64>) -> Self {
        Self {
            inner,
            offset: 0,
            size,
            crc: 0,
            sha: Sha256::new(),
            buf: vec![0; 64 * 1024],
            fingerprints: Fingerprints::new(),
            now_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// Fills `out` exactly, or says the file ended inside `inside`.
    fn fill(&mut self, out: &mut [u8], inside: &'static str) -> Result<(), RdbError> {
        let mut done = 0;
        while done < out.len() {
            match self.inner.read(&mut out[done..]) {
                Ok(0) => {
                    return Err(RdbError::Truncated {
                        offset: self.offset + done as u64,
                        inside,
                    })
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RdbError::Io(e)),
            }
        }
        self.offset += out.len() as u64;
        Ok(())
    }

    /// Reads bytes that count towards the checksum.
    fn read(&mut self, out: &mut [u8], inside: &'static str) -> Result<(), RdbError> {
        self.fill(out, inside)?;
        self.crc = crc64(self.crc, out);
        self.sha.update(&*out);
        Ok(())
    }

    fn byte(&mut self, inside: &'static str) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.read(&mut b, inside)?;
        Ok(b[0])
    }

    fn array<const N: usize>(&mut self, inside: &'static str) -> Result<[u8; N], RdbError> {
        let mut b = [0u8; N];
        self.read(&mut b, inside)?;
        Ok(b)
    }

    /// The bytes left in the file (unbounded when its size is not known: then the end of the stream says it).
    fn left(&self) -> u64 {
        self.size.map_or(u64::MAX, |size| size.saturating_sub(self.offset))
    }

    /// A length read from the file, checked before it is used: `n` things of at least `each` bytes must fit in
    /// the bytes left. Refuses, naming the offset, a length whose bytes overflow or run past the end.
    fn fits(&self, n: u64, each: u64, inside: &'static str) -> Result<u64, RdbError> {
        match n.checked_mul(each) {
            Some(bytes) if bytes <= self.left() => Ok(n),
            Some(bytes) => Err(self.corrupt(format!(
                "{inside} declares {n} x {each} = {bytes} bytes but only {} are left in the file",
                self.left()
            ))),
            None => Err(self.corrupt(format!(
                "{inside} declares {n} x {each} bytes, more than any file holds"
            ))),
        }
    }

    /// Skips `n` bytes through the fixed buffer.
    fn skip(&mut self, n: u64, inside: &'static str) -> Result<(), RdbError> {
        self.skip_through(n, inside, |_| Ok(()))
    }

    /// Skips `n` bytes through the fixed buffer, each piece shown to `look` (which may refuse it, saying why).
    fn skip_through(
        &mut self,
        mut n: u64,
        inside: &'static str,
        mut look: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), RdbError> {
        self.fits(n, 1, inside)?;
        let mut chunk = std::mem::take(&mut self.buf);
        let mut result = Ok(());
        while n > 0 && result.is_ok() {
            let take = n.min(chunk.len() as u64) as usize;
            result = self
                .read(&mut chunk[..take], inside)
                .and_then(|()| look(&chunk[..take]).map_err(|why| self.corrupt(format!("{inside}: {why}"))));
            n -= take as u64;
        }
        self.buf = chunk;
        result
    }

    /// The lengths of an LZF-compressed string: compressed and plain, both bounded before anything is read.
    fn lzf_lengths(&mut self, inside: &'static str) -> Result<(u64, u64), RdbError> {
        let compressed = self.len(inside)?;
        let plain = self.len(inside)?;
        self.fits(compressed, 1, inside)?;
        if compressed.checked_mul(lzf::MAX_RATIO).is_none_or(|most| plain > most) {
            return Err(self.corrupt(format!(
                "{inside}: {compressed} compressed bytes cannot give the {plain} declared"
            )));
        }
        Ok((compressed, plain))
    }

    /// Checks an LZF string through the fixed buffer, as the loader would decompress it; returns its stored size.
    fn check_lzf(&mut self, inside: &'static str) -> Result<u64, RdbError> {
        let (compressed, plain) = self.lzf_lengths(inside)?;
        let mut lzf = lzf::Lzf::check(plain);
        self.skip_through(compressed, inside, |piece| lzf.feed(piece))?;
        lzf.finish().map_err(|why| self.corrupt(format!("{inside}: {why}")))?;
        Ok(compressed)
    }

    fn corrupt(&self, what: impl Into<String>) -> RdbError {
        RdbError::Corrupt {
            offset: self.offset,
            what: what.into(),
        }
    }

    fn len_or_encoding(&mut self, inside: &'static str) -> Result<Len, RdbError> {
        let first = self.byte(inside)?;
        Ok(match first >> 6 {
            0 => Len::Plain(u64::from(first & 0x3F)),
            1 => Len::Plain(u64::from(first & 0x3F) << 8 | u64::from(self.byte(inside)?)),
            2 => match first {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(self.array(inside)?))),
                0x81 => Len::Plain(u64::from_be_bytes(self.array(inside)?)),
                other => return Err(self.corrupt(format!("length prefix {other:#04x}"))),
            },
            _ => Len::Encoded(first & 0x3F),
        })
    }

    fn len(&mut self, inside: &'static str) -> Result<u64, RdbError> {
        match self.len_or_encoding(inside)? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(self.corrupt(format!("an encoded string where a length belongs ({inside})"))),
        }
    }

    /// Skips one string (plain, integer-encoded or LZF-compressed) and returns its stored size.
    fn skip_string(&mut self, inside: &'static str) -> Result<u64, RdbError> {
        match self.len_or_encoding(inside)? {
            Len::Plain(n) => self.skip(n, inside).map(|()| n),
            Len::Encoded(0) => self.skip(1, inside).map(|()| 1),
            Len::Encoded(1) => self.skip(2, inside).map(|()| 2),
            Len::Encoded(2) => self.skip(4, inside).map(|()| 4),
            Len::Encoded(3) => self.check_lzf(inside),
            Len::Encoded(other) => Err(self.corrupt(format!("string encoding {other}"))),
        }
    }

    /// Reads one string (plain, integer-encoded or LZF-compressed) through the fixed buffer and gives the
    /// fingerprint of its bytes as the loader compares them: decoded, an integer by its decimal digits (an
    /// integer-encoded `123` and a plain `123` are the same member), an LZF string by its plain bytes.
    fn fingerprint_string(&mut self, inside: &'static str) -> Result<u128, RdbError> {
        let mut f = self.fingerprints.start();
        match self.len_or_encoding(inside)? {
            Len::Plain(n) => self.skip_through(n, inside, |piece| {
                f.feed(piece);
                Ok(())
            })?,
            Len::Encoded(0) => f.feed(i8::from_le_bytes(self.array(inside)?).to_string().as_bytes()),
            Len::Encoded(1) => f.feed(i16::from_le_bytes(self.array(inside)?).to_string().as_bytes()),
            Len::Encoded(2) => f.feed(i32::from_le_bytes(self.array(inside)?).to_string().as_bytes()),
            Len::Encoded(3) => {
                let (compressed, plain) = self.lzf_lengths(inside)?;
                let mut lzf = lzf::Lzf::stream(plain);
                self.skip_through(compressed, inside, |piece| {
                    lzf.feed(piece)?;
                    lzf.drain(&mut |out| f.feed(out));
                    Ok(())
                })?;
                let rest = lzf.finish().map_err(|why| self.corrupt(format!("{inside}: {why}")))?;
                f.feed(&rest);
            }
            Len::Encoded(other) => return Err(self.corrupt(format!("string encoding {other}"))),
        }
        Ok(f.finish())
    }

    /// Reads `n` strings of one container, refusing one whose bytes (as the loader compares them) came before:
    /// the loader's "Duplicate ... detected". `after` reads what follows each (a score, a hash's value). Memory:
    /// one fingerprint per string of this container, never its bytes.
    fn distinct_strings(
        &mut self,
        n: u64,
        what: &'static str,
        element: &'static str,
        loader: &'static str,
        mut after: impl FnMut(&mut Self) -> Result<(), RdbError>,
    ) -> Result<(), RdbError> {
        let mut seen = HashSet::new();
        for _ in 0..n {
            let at = self.offset;
            if !seen.insert(self.fingerprint_string(what)?) {
                return Err(RdbError::Corrupt {
                    offset: at,
                    what: format!("{what} holds a {element} twice (the loader refuses it: \"{loader}\")"),
                });
            }
            after(self)?;
        }
        Ok(())
    }

    /// Reads a short string (an auxiliary field); longer ones are skipped and `None`.
    fn small_string(&mut self, inside: &'static str) -> Result<Option<String>, RdbError> {
        match self.len_or_encoding(inside)? {
            Len::Plain(n) if n <= 256 => {
                let mut v = vec![0u8; n as usize];
                self.read(&mut v, inside)?;
                Ok(Some(String::from_utf8_lossy(&v).into_owned()))
            }
            Len::Plain(n) => self.skip(n, inside).map(|()| None),
            Len::Encoded(0) => Ok(Some(i8::from_le_bytes(self.array(inside)?).to_string())),
            Len::Encoded(1) => Ok(Some(i16::from_le_bytes(self.array(inside)?).to_string())),
            Len::Encoded(2) => Ok(Some(i32::from_le_bytes(self.array(inside)?).to_string())),
            Len::Encoded(3) => self.check_lzf(inside).map(|_| None),
            Len::Encoded(other) => Err(self.corrupt(format!("string encoding {other}"))),
        }
    }

    fn skip_strings(&mut self, n: u64, inside: &'static str) -> Result<(), RdbError> {
        for _ in 0..n {
            self.skip_string(inside)?;
        }
        Ok(())
    }

    /// A score in the old text form: a length byte, or 253/254/255 for NaN, +inf and -inf.
    fn skip_text_double(&mut self) -> Result<(), RdbError> {
        match self.byte("a sorted-set score")? {
            253 => Err(self.corrupt("a sorted set with a NaN score")),
            254 | 255 => Ok(()),
            n => self.skip(u64::from(n), "a sorted-set score"),
        }
    }

    /// A hash field's expiry (Valkey 9's type 22): 8 bytes, little-endian Unix milliseconds, -1 for none. The
    /// loader refuses the file below -1 and accepts any other value, even one already past, so only below -1 is
    /// refused (the value is not named). Gives the expiry, for the caller's count.
    fn field_expiry(&mut self) -> Result<i64, RdbError> {
        let at = self.offset;
        let expiry = i64::from_le_bytes(self.array("a hash field's expiry")?);
        if expiry < -1 {
            return Err(RdbError::Corrupt {
                offset: at,
                what: "a hash field's expiry is below -1, the mark for none (the loader refuses the file)".into(),
            });
        }
        Ok(expiry)
    }

    /// A module's self-describing value: typed fields until the end marker.
    fn skip_module_fields(&mut self) -> Result<(), RdbError> {
        loop {
            match self.len("a module value")? {
                0 => return Ok(()),
                1 | 2 => {
                    self.len("a module integer")?;
                }
                3 => self.skip(4, "a module float")?,
                4 => self.skip(8, "a module double")?,
                5 => {
                    self.skip_string("a module string")?;
                }
                other => return Err(self.corrupt(format!("module field type {other}"))),
            }
        }
    }

    /// A stream: its listpacks, its metadata, and its consumer groups with their pending entries.
    fn skip_stream(&mut self, kind: u8) -> Result<(), RdbError> {
        // Each node is two strings of at least one byte each: its master id (16 bytes) and its listpack.
        let nodes = self.len("a stream")?;
        let mut ids = std::collections::HashSet::new();
        for _ in 0..self.fits(nodes, 2, "a stream's listpacks")? {
            let id = self.read_blob("a stream node's id")?;
            if id.len() != 16 {
                return Err(self.corrupt(format!("a stream node's id has {} bytes, not 16", id.len())));
            }
            if !ids.insert(id) {
                return Err(self.corrupt("a stream node's id is used twice"));
            }
            self.container("a stream listpack", |b| {
                containers::stream_node(&containers::listpack(b)?).map(|()| 1)
            })?;
        }
        // length, last id (ms, seq); from type 19 also first id, max deleted id, entries added.
        let fields = if kind >= 19 { 8 } else { 3 };
        let length = self.len("a stream's metadata")?;
        for _ in 1..fields {
            self.len("a stream's metadata")?;
        }
        if length > 0 && nodes == 0 {
            return Err(self.corrupt(format!("a stream of {length} entries has no listpack")));
        }
        let groups = self.len("a stream's consumer groups")?;
        let mut names = std::collections::HashSet::new();
        for _ in 0..self.fits(groups, 4, "a stream's consumer groups")? {
            if !names.insert(self.read_blob("a consumer group's name")?) {
                return Err(self.corrupt("a stream has two consumer groups of the same name"));
            }
            for _ in 0..if kind >= 19 { 3 } else { 2 } {
                self.len("a consumer group's position")?;
            }
            // The group's pending entries, each owned by a consumer once the consumers are read.
            let pending = self.len("a consumer group's pending entries")?;
            let mut owned: std::collections::HashMap<[u8; 16], bool> = std::collections::HashMap::new();
            for _ in 0..self.fits(pending, 16 + 8 + 1, "a consumer group's pending entries")? {
                let id: [u8; 16] = self.array("a pending entry")?;
                self.skip(8, "a pending entry's delivery time")?;
                self.len("a pending entry's delivery count")?;
                if owned.insert(id, false).is_some() {
                    return Err(self.corrupt("a consumer group lists a pending entry twice"));
                }
            }
            let consumers = self.len("a consumer group's consumers")?;
            let mut consumer_names = std::collections::HashSet::new();
            for _ in 0..self.fits(consumers, 10, "a consumer group's consumers")? {
                if !consumer_names.insert(self.read_blob("a consumer's name")?) {
                    return Err(self.corrupt("a consumer group has two consumers of the same name"));
                }
                self.skip(if kind >= 21 { 16 } else { 8 }, "a consumer's times")?;
                let pending = self.len("a consumer's pending entries")?;
                let mut own = std::collections::HashSet::new();
                for _ in 0..self.fits(pending, 16, "a consumer's pending entries")? {
                    let id: [u8; 16] = self.array("a consumer's pending entry")?;
                    match owned.get_mut(&id) {
                        Some(o) => *o = true,
                        None => return Err(self.corrupt("a consumer's pending entry is not in its group's")),
                    }
                    if !own.insert(id) {
                        return Err(self.corrupt("a consumer lists a pending entry twice"));
                    }
                }
            }
            if owned.values().any(|o| !o) {
                return Err(self.corrupt("a consumer group's pending entry belongs to no consumer"));
            }
        }
        Ok(())
    }

    /// Reads one string whole (a container), decompressed: its size bounded by the bytes left (and the LZF
    /// ratio) and by [`MAX_CONTAINER`] before anything is allocated. An integer-encoded string is its digits, as
    /// the loader reads it.
    fn read_blob(&mut self, inside: &'static str) -> Result<Vec<u8>, RdbError> {
        let too_big = |c: &Self, n: u64| {
            c.corrupt(format!(
                "{inside} of {n} bytes: larger than any container ({MAX_CONTAINER} bytes) this verifier reads"
            ))
        };
        match self.len_or_encoding(inside)? {
            Len::Plain(n) => {
                self.fits(n, 1, inside)?;
                if n > MAX_CONTAINER {
                    return Err(too_big(self, n));
                }
                let mut v = vec![0u8; n as usize];
                self.read(&mut v, inside)?;
                Ok(v)
            }
            Len::Encoded(0) => Ok(i8::from_le_bytes(self.array(inside)?).to_string().into_bytes()),
            Len::Encoded(1) => Ok(i16::from_le_bytes(self.array(inside)?).to_string().into_bytes()),
            Len::Encoded(2) => Ok(i32::from_le_bytes(self.array(inside)?).to_string().into_bytes()),
            Len::Encoded(3) => {
                let (compressed, plain) = self.lzf_lengths(inside)?;
                if plain > MAX_CONTAINER {
                    return Err(too_big(self, plain));
                }
                let mut lzf = lzf::Lzf::decode(plain as usize);
                self.skip_through(compressed, inside, |piece| lzf.feed(piece))?;
                lzf.finish().map_err(|why| self.corrupt(format!("{inside}: {why}")))
            }
            Len::Encoded(other) => Err(self.corrupt(format!("string encoding {other}"))),
        }
    }

    /// Reads one container of a value and checks it with `check`, which gives its number of elements; the
    /// error names the container's offset and the loader's words for it.
    fn container(
        &mut self,
        inside: &'static str,
        check: impl FnOnce(&[u8]) -> Result<u64, String>,
    ) -> Result<u64, RdbError> {
        let at = self.offset;
        let blob = self.read_blob(inside)?;
        check(&blob).map_err(|why| RdbError::Corrupt {
            offset: at,
            what: format!("{inside}: integrity check failed: {why}"),
        })
    }

    /// Reads one value of type `kind`, every encoded container checked as the loader checks it with payload
    /// sanitisation on. `Ok(false)`: an empty value, which the loader drops (the key is not loaded).
    fn value(&mut self, kind: u8, at: u64) -> Result<bool, RdbError> {
        use containers as cc;
        let kept = |n: u64| Ok(n > 0);
        match kind {
            0 => self.skip_string("a value").map(|_| true),
            9 => self
                .container("a zipmap hash", |b| cc::zipmap(b).map(|p| p.len() as u64))
                .and_then(kept),
            10 => self
                .container("a ziplist list", |b| cc::ziplist(b).map(|e| e.len() as u64))
                .and_then(kept),
            11 => self.container("an intset", cc::intset).and_then(kept),
            12 => self
                .container("a ziplist sorted set", |b| cc::pairs(&cc::ziplist(b)?, "a sorted set"))
                .and_then(kept),
            13 => self
                .container("a ziplist hash", |b| cc::pairs(&cc::ziplist(b)?, "a hash"))
                .and_then(kept),
            16 => self
                .container("a listpack hash", |b| cc::pairs(&cc::listpack(b)?, "a hash"))
                .and_then(kept),
            17 => self
                .container("a listpack sorted set", |b| {
                    cc::pairs(&cc::listpack(b)?, "a sorted set")
                })
                .and_then(kept),
            20 => self
                .container("a listpack set", |b| cc::members(&cc::listpack(b)?, "a set"))
                .and_then(kept),
            1 => {
                let n = self.len("a list")?;
                let n = self.fits(n, 1, "a list")?;
                self.skip_strings(n, "a list")?;
                kept(n)
            }
            2 => {
                let n = self.len("a set")?;
                let n = self.fits(n, 1, "a set")?;
                self.distinct_strings(n, "a set (type 2)", "member", "Duplicate set members detected", |_| {
                    Ok(())
                })?;
                kept(n)
            }
            3 => {
                let n = self.len("a sorted set")?;
                let n = self.fits(n, 2, "a sorted set")?;
                self.distinct_strings(
                    n,
                    "a sorted set (type 3)",
                    "member",
                    "Duplicate zset fields detected",
                    |c| c.skip_text_double(),
                )?;
                kept(n)
            }
            4 => {
                let n = self.len("a hash")?;
                let n = self.fits(n, 2, "a hash")?;
                self.distinct_strings(n, "a hash (type 4)", "field", "Duplicate hash fields detected", |c| {
                    c.skip_string("a hash value").map(drop)
                })?;
                kept(n)
            }
            5 => {
                let n = self.len("a sorted set")?;
                let n = self.fits(n, 9, "a sorted set")?;
                self.distinct_strings(
                    n,
                    "a sorted set (type 5)",
                    "member",
                    "Duplicate zset fields detected",
                    |c| {
                        let score = f64::from_le_bytes(c.array("a sorted-set score")?);
                        if score.is_nan() {
                            return Err(c.corrupt("a sorted set with a NaN score"));
                        }
                        Ok(())
                    },
                )?;
                kept(n)
            }
            7 => {
                self.len("a module id")?;
                self.skip_module_fields().map(|()| true)
            }
            15 | 19 | 21 => self.skip_stream(kind).map(|()| true),
            // Valkey 9's hash whose fields can expire (only under `VALKEY080`: `foreign_type` refuses 22 under
            // `REDIS` before its key is read): a count, then per field its name, its value and its expiry.
            22 => {
                let n = self.len("a hash with field expirations")?;
                // A name and a value of at least one byte each, and 8 bytes of expiry.
                let n = self.fits(n, 1 + 1 + 8, "a hash with field expirations")?;
                let mut all_expired = true;
                self.distinct_strings(
                    n,
                    "a hash with field expirations (type 22)",
                    "field",
                    "Duplicate hash fields detected",
                    |c| {
                        c.skip_string("a hash value")?;
                        let expiry = c.field_expiry()?;
                        all_expired &= expiry != -1 && expiry <= c.now_ms;
                        Ok(())
                    },
                )?;
                // Every field expired: Valkey 9.1's loader drops the hash ("all fields expired hashes"), 9.0's loads
                // it and deletes it moments later; either way the server does not hold it.
                Ok(n > 0 && !all_expired)
            }
            14 => {
                let n = self.len("a quicklist")?;
                let mut elements = 0u64;
                for _ in 0..self.fits(n, 1, "a quicklist")? {
                    elements +=
                        self.container("a quicklist ziplist node", |b| cc::ziplist(b).map(|e| e.len() as u64))?;
                }
                kept(elements)
            }
            18 => {
                let n = self.len("a quicklist")?;
                let mut elements = 0u64;
                for _ in 0..self.fits(n, 2, "a quicklist")? {
                    match self.len("a quicklist node's container")? {
                        // A plain node: one element, a string of any bytes.
                        1 => {
                            self.skip_string("a quicklist plain node")?;
                            elements += 1;
                        }
                        2 => {
                            elements += self
                                .container("a quicklist listpack node", |b| cc::listpack(b).map(|e| e.len() as u64))?
                        }
                        other => {
                            return Err(self.corrupt(format!(
                                "a quicklist node's container is {other} (1, plain, or 2, listpack, are valid)"
                            )))
                        }
                    }
                }
                kept(elements)
            }
            other => Err(RdbError::UnknownType {
                offset: at,
                kind: other,
                what: UNKNOWN,
            }),
        }
    }
}

/// What an unknown type's error says when nothing more is known of it.
const UNKNOWN: &str = "a newer server's type?";

/// The types a newer engine writes that this verifier refuses by name before reading their key, each with who
/// writes it: Redis OSS 7.4+'s hashes with field expirations under a `REDIS` header (no engine ElastiCache runs
/// writes them). `None`: a type read (Valkey 9's type 22 under `VALKEY080` among them), or one no engine is known
/// to write (refused as unknown where its value would start: 23-25 under `VALKEY080`, which Valkey 9.0 does not
/// write).
fn foreign_type(valkey: bool, kind: u8) -> Option<&'static str> {
    Some(match (valkey, kind) {
        (false, 22) => {
            "a hash with field expirations as Redis OSS 7.4's release candidates wrote it; ElastiCache does not run Redis OSS 7.4+"
        }
        (false, 23) => {
            "a listpack hash with field expirations as Redis OSS 7.4's release candidates wrote it; ElastiCache does not run Redis OSS 7.4+"
        }
        (false, 24) => "a hash with field expirations, written by Redis OSS 7.4+, which ElastiCache does not run",
        (false, 25) => {
            "a listpack hash with field expirations, written by Redis OSS 7.4+, which ElastiCache does not run"
        }
        _ => return None,
    })
}

/// The largest container read whole (a listpack's or ziplist's own header counts its bytes in 32 bits).
const MAX_CONTAINER: u64 = u32::MAX as u64;

/// Keys counted in the database being read, and what its `RESIZEDB` record declared.
#[derive(Default)]
struct Db {
    number: u64,
    /// Keys read, and keys the server keeps after loading (an empty one is dropped).
    read: DbKeys,
    counted: DbKeys,
    declared: Option<DbKeys>,
}

/// Reads a whole RDB file and verifies it: structure, every value, the CRC-64 at its end, nothing after it.
pub fn verify(reader: impl Read) -> Result<RdbSummary, RdbError> {
    verify_sized(reader, None)
}

/// [`verify`] for a file whose size is known (an S3 object's): every length read is bounded by the bytes left
/// before it is used, so a hostile length is refused where it is read, naming its offset.
pub fn verify_sized(reader: impl Read, size: Option<u64>) -> Result<RdbSummary, RdbError> {
    let mut c = Cursor::new(reader, size);
    let header: [u8; 9] = c.array("the header").map_err(|_| RdbError::NotRdb)?;
    let (valkey, version) = header_version(&header).ok_or(RdbError::NotRdb)?;
    let known = if valkey {
        version == VALKEY_VERSION
    } else {
        (1..=MAX_VERSION).contains(&version)
    };
    if !known {
        return Err(RdbError::UnsupportedVersion(version));
    }
    let mut server_version = None;
    let mut valkey_ver = false;
    let mut databases = BTreeMap::new();
    let mut db = Db::default();
    // One fingerprint per key per database number (a database selected twice keeps its keys).
    let mut keys: HashMap<u64, HashSet<u128>> = HashMap::new();
    let mut expiring = false;
    loop {
        let at = c.offset;
        match c.byte("an opcode")? {
            OP_EOF => break,
            OP_SELECTDB => {
                close(&c, std::mem::take(&mut db), &mut databases)?;
                db.number = c.len("a database number")?;
            }
            OP_RESIZEDB => {
                let keys = c.len("a database size")?;
                let expires = c.len("a database size")?;
                db.declared = Some(DbKeys { keys, expires });
            }
            OP_AUX => {
                let key = c.small_string("an auxiliary field")?;
                let value = c.small_string("an auxiliary field")?;
                match key.as_deref() {
                    Some("valkey-ver") => {
                        server_version = value;
                        valkey_ver = true;
                    }
                    // Valkey 8 also writes `redis-ver` (the Redis version it is compatible with): not its own.
                    Some("redis-ver") if !valkey_ver => server_version = value,
                    _ => {}
                }
            }
            OP_EXPIRETIME_MS => {
                c.skip(8, "an expiry")?;
                expiring = true;
            }
            OP_EXPIRETIME => {
                c.skip(4, "an expiry")?;
                expiring = true;
            }
            OP_FREQ => c.skip(1, "an LFU frequency")?,
            OP_IDLE => drop(c.len("an LRU idle time")?),
            OP_MODULE_AUX => {
                c.len("a module id")?;
                c.skip_module_fields()?;
            }
            OP_FUNCTION2 => drop(c.skip_string("a function library")?),
            OP_SLOT_INFO => {
                for _ in 0..3 {
                    c.len("slot information")?;
                }
            }
            OP_FUNCTION_PRE_GA => {
                return Err(RdbError::UnknownType {
                    offset: at,
                    kind: OP_FUNCTION_PRE_GA,
                    what: "a function library as Redis 7.0's release candidates wrote it",
                })
            }
            kind => {
                if let Some(what) = foreign_type(valkey, kind) {
                    return Err(RdbError::UnknownType { offset: at, kind, what });
                }
                let key = c.fingerprint_string("a key")?;
                // The loader stops at a key it already holds in this database ("RDB has duplicated key"); named by
                // its offset and database, never its bytes (a key is the customer's data).
                if !keys.entry(db.number).or_default().insert(key) {
                    return Err(RdbError::Corrupt {
                        offset: at,
                        what: format!(
                            "database {} holds this key twice (the loader refuses it: \"RDB has duplicated key\")",
                            db.number
                        ),
                    });
                }
                let kept = c.value(kind, at)?;
                let expires = u64::from(std::mem::take(&mut expiring));
                db.read.keys += 1;
                db.read.expires += expires;
                // An empty value is dropped by the loader: the server holds one key fewer than the file.
                if kept {
                    db.counted.keys += 1;
                    db.counted.expires += expires;
                }
            }
        }
    }
    close(&c, db, &mut databases)?;
    let computed = c.crc;
    let sha_so_far = c.sha.clone();
    let checksummed = if version >= 5 {
        let mut stored = [0u8; 8];
        c.fill(&mut stored, "the checksum")?;
        let stored = u64::from_le_bytes(stored);
        if stored != 0 && stored != computed {
            return Err(RdbError::Checksum { stored, computed });
        }
        let mut sha = sha_so_far;
        sha.update(stored.to_le_bytes());
        c.sha = sha;
        stored != 0
    } else {
        false
    };
    let mut extra = [0u8; 1];
    if c.inner.read(&mut extra).map_err(RdbError::Io)? != 0 {
        return Err(c.corrupt("bytes after the end of the file"));
    }
    Ok(RdbSummary {
        version,
        server_version,
        databases,
        bytes: c.offset,
        sha256: hex(&c.sha.finalize()),
        checksummed,
    })
}

/// Ends one database: its counts must be what its `RESIZEDB` record declared, if it had one.
fn close<R: Read>(c: &Cursor<R>, db: Db, out: &mut BTreeMap<u64, DbKeys>) -> Result<(), RdbError> {
    if let Some(declared) = db.declared {
        if declared != db.read {
            return Err(c.corrupt(format!(
                "database {} declares {} keys ({} expiring) but holds {} ({} expiring)",
                db.number, declared.keys, declared.expires, db.read.keys, db.read.expires
            )));
        }
    }
    if db.counted.keys > 0 {
        let total = out.entry(db.number).or_default();
        total.keys += db.counted.keys;
        total.expires += db.counted.expires;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-64 as Redis computes it (Jones polynomial, reflected, initial value 0, no final xor).
pub fn crc64(mut crc: u64, bytes: &[u8]) -> u64 {
    const TABLE: [u64; 256] = crc64_table();
    for &b in bytes {
        crc = TABLE[((crc ^ u64::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

const fn crc64_table() -> [u64; 256] {
    const POLY: u64 = 0x95AC_9329_AC4B_C9B5;
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc64_matches_redis_check_value() {
        // Redis's crc64.c test vector: crc64(0, "123456789") = e9c6d914c4b8d9ca.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(crc64(0, b"1234"), b"56789"), 0xe9c6_d914_c4b8_d9ca);
    }

    /// A minimal file as Redis writes it: header, one database with `keys`, EOF and its CRC.
    fn file(version: &str, body: &[u8]) -> Vec<u8> {
        let magic = if version.len() == 3 { "VALKEY" } else { "REDIS" };
        let mut v = format!("{magic}{version}").into_bytes();
        v.extend_from_slice(body);
        v.push(OP_EOF);
        let crc = crc64(0, &v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    }

    fn db0_with_two_strings() -> Vec<u8> {
        let mut b = vec![OP_AUX, 9];
        b.extend_from_slice(b"redis-ver");
        b.push(6);
        b.extend_from_slice(b"7.0.15");
        b.extend_from_slice(&[OP_SELECTDB, 0, OP_RESIZEDB, 2, 1]);
        b.extend_from_slice(&[0, 1, b'a', 1, b'1']);
        b.extend_from_slice(&[OP_EXPIRETIME_MS, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0, 1, b'b', 0xC0, 7]);
        b
    }

    #[test]
    fn a_small_file_is_read_to_its_checksum_with_its_counts() {
        let f = file("0010", &db0_with_two_strings());
        let s = verify(&f[..]).unwrap();
        assert_eq!(s.version, 10);
        assert_eq!(s.server_version.as_deref(), Some("7.0.15"));
        assert_eq!(s.databases, BTreeMap::from([(0, DbKeys { keys: 2, expires: 1 })]));
        assert_eq!(s.bytes, f.len() as u64);
        assert_eq!(s.sha256, hex(&Sha256::digest(&f)));
        assert!(s.checksummed);
    }

    #[test]
    fn damage_is_named() {
        let good = file("0010", &db0_with_two_strings());
        let mut flipped = good.clone();
        flipped[30] ^= 0x01;
        assert!(verify(&flipped[..]).is_err());
        let truncated = &good[..good.len() - 12];
        assert!(
            matches!(verify(truncated), Err(RdbError::Truncated { .. })),
            "{:?}",
            verify(truncated)
        );
        let mut longer = good.clone();
        longer.push(0);
        assert!(verify(&longer[..]).unwrap_err().to_string().contains("after the end"));
        assert!(matches!(verify(&b"REDIS00a9"[..]), Err(RdbError::NotRdb)));
        assert!(matches!(verify(&b"hello"[..]), Err(RdbError::NotRdb)));
        assert!(matches!(
            verify(&file("0099", &[])[..]),
            Err(RdbError::UnsupportedVersion(99))
        ));
        let mut lying = db0_with_two_strings();
        let at = lying.iter().position(|&b| b == OP_RESIZEDB).unwrap();
        lying[at + 1] = 3;
        let err = verify(&file("0010", &lying)[..]).unwrap_err().to_string();
        assert!(
            err.contains("database 0 declares 3 keys (1 expiring) but holds 2 (1 expiring)"),
            "{err}"
        );
        let unknown = verify(&file("0010", &[OP_SELECTDB, 0, 42, 1, b'k'])[..]).unwrap_err();
        assert!(matches!(unknown, RdbError::UnknownType { kind: 42, .. }), "{unknown}");
    }

    /// An empty value (a listpack of nothing, a list of no elements) is dropped by the loader: not counted as a
    /// key, though `RESIZEDB` (what the writer held) counts it; a NaN score is refused as the loader refuses it.
    #[test]
    fn empty_values_are_not_keys_after_loading() {
        let mut b = vec![OP_SELECTDB, 0, OP_RESIZEDB, 4, 1, 0, 1, b's', 1, b'v'];
        b.extend_from_slice(&[16, 1, b'h']);
        b.extend(string(&lp(&[])));
        b.extend_from_slice(&[OP_EXPIRETIME_MS, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, b'l', 0]);
        b.extend_from_slice(&[18, 1, b'q', 1, 2]);
        b.extend(string(&lp(&[])));
        let s = verify(&file("0010", &b)[..]).unwrap();
        assert_eq!(s.databases, BTreeMap::from([(0, DbKeys { keys: 1, expires: 0 })]));
        let nan = [OP_SELECTDB, 0, 5, 1, b'z', 1, 1, b'm', 0, 0, 0, 0, 0, 0, 0xF8, 0x7F];
        let err = verify(&file("0010", &nan)[..]).unwrap_err().to_string();
        assert!(err.contains("NaN"), "{err}");
    }

    /// The encodings of old servers (zipmap, ziplist, intset) are read through the file and checked: a hash
    /// ziplist with a field twice is refused as the loader refuses it.
    #[test]
    fn old_encodings_are_checked_through_the_file() {
        let ziplist = |fields: &[u8]| {
            let mut v = vec![(10 + 3 * fields.len() + 1) as u8, 0, 0, 0];
            v.extend_from_slice(&((10 + 3 * (fields.len() - 1)) as u32).to_le_bytes());
            v.extend_from_slice(&(fields.len() as u16).to_le_bytes());
            for (i, f) in fields.iter().enumerate() {
                v.extend_from_slice(&[if i == 0 { 0 } else { 3 }, 0x01, *f]);
            }
            v.push(0xFF);
            v
        };
        let mut b = vec![OP_SELECTDB, 0, 9, 1, b'm'];
        b.extend(string(&[1, 1, b'a', 1, 0, b'1', 0xFF]));
        b.extend_from_slice(&[11, 1, b'i']);
        b.extend(string(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 5, 0]));
        b.extend_from_slice(&[13, 1, b'h']);
        b.extend(string(&ziplist(b"a1b2")));
        b.extend_from_slice(&[10, 1, b'l']);
        b.extend(string(&ziplist(b"xx")));
        let s = verify(&file("0009", &b)[..]).unwrap();
        assert_eq!(s.keys(), 4);
        let mut dup = vec![OP_SELECTDB, 0, 13, 1, b'h'];
        dup.extend(string(&ziplist(b"a1a2")));
        let err = verify(&file("0009", &dup)[..]).unwrap_err().to_string();
        assert!(
            err.contains("a ziplist hash: integrity check failed") && err.contains("twice"),
            "{err}"
        );
        let mut unsorted = vec![OP_SELECTDB, 0, 11, 1, b'i'];
        unsorted.extend(string(&[2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 1, 0]));
        let err = verify(&file("0009", &unsorted)[..]).unwrap_err().to_string();
        assert!(err.contains("an intset: integrity check failed"), "{err}");
    }

    /// Valkey 9 writes `VALKEY080`; each magic goes with its own versions only.
    #[test]
    fn valkeys_own_magic_is_read_with_its_version() {
        let s = verify(&file("080", &db0_with_two_strings())[..]).unwrap();
        assert_eq!((s.version, s.keys()), (80, 2));
        assert!(matches!(
            verify(&file("081", &[])[..]),
            Err(RdbError::UnsupportedVersion(81))
        ));
        assert!(
            matches!(verify(&file("011", &[])[..]), Err(RdbError::UnsupportedVersion(11))),
            "VALKEY011"
        );
        assert!(
            matches!(verify(&file("0080", &[])[..]), Err(RdbError::UnsupportedVersion(80))),
            "REDIS0080"
        );
        assert!(matches!(
            verify(&file("0000", &[])[..]),
            Err(RdbError::UnsupportedVersion(0))
        ));
        assert_eq!(verify(&file("0012", &db0_with_two_strings())[..]).unwrap().version, 12);
        // Valkey 9's field-expiring hash is read (an empty one is dropped, as the loader drops it); the types Valkey
        // 9.0 does not write (Redis 7.4's numbers): refused by type, never guessed.
        let s = verify(&file("080", &[OP_SELECTDB, 0, 22, 1, b'h', 0])[..]).unwrap();
        assert_eq!((s.version, s.keys()), (80, 0));
        for kind in [23, 24, 25] {
            let err = verify(&file("080", &[OP_SELECTDB, 0, kind, 1, b'h', 0])[..]).unwrap_err();
            assert!(matches!(err, RdbError::UnknownType { .. }), "{kind}: {err}");
        }
    }

    /// A plain member as the file stores it, of any length (a 32-bit length for long ones).
    fn long_string(bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80];
        v.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        v.extend_from_slice(bytes);
        v
    }

    /// `kind` with `members` (each already encoded as the file stores it): after each, a hash's value or a
    /// sorted set's score as its type stores it.
    fn plain_container(kind: u8, members: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![OP_SELECTDB, 0, kind, 1, b'k', members.len() as u8];
        for m in members {
            b.extend_from_slice(m);
            match kind {
                3 => b.extend_from_slice(&[3, b'1', b'.', b'5']),
                4 => b.extend(string(b"value")),
                5 => b.extend_from_slice(&1.5f64.to_le_bytes()),
                _ => {}
            }
        }
        file("0010", &b)
    }

    /// The loader refuses a plain (non-encoded) set, hash or sorted set holding a member or field twice; so does
    /// the verifier, naming the type and offset but never the member's bytes.
    #[test]
    fn plain_containers_with_a_member_twice_are_refused() {
        let secret = string(b"secret-member");
        for (kind, loader) in [
            (2, "Duplicate set members detected"),
            (3, "Duplicate zset fields detected"),
            (4, "Duplicate hash fields detected"),
            (5, "Duplicate zset fields detected"),
        ] {
            let good = plain_container(kind, &[secret.clone(), string(b"other")]);
            assert_eq!(verify(&good[..]).unwrap().keys(), 1, "type {kind}");
            let twice = plain_container(kind, &[secret.clone(), string(b"other"), secret.clone()]);
            let err = verify(&twice[..]).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, RdbError::Corrupt { .. }), "type {kind}: {text}");
            assert!(text.contains(&format!("(type {kind}) holds a")), "{text}");
            assert!(text.contains("twice") && text.contains(loader), "{text}");
            assert!(
                !text.contains("secret"),
                "the member's bytes are in the message: {text}"
            );
        }
        // A list may hold the same element twice.
        assert!(verify(&plain_container(1, &[secret.clone(), secret])[..]).is_ok());
    }

    /// The loader compares decoded bytes: an integer-encoded 123 and a plain "123" are one member, and an LZF
    /// string is its plain bytes.
    #[test]
    fn a_member_twice_in_two_encodings_is_refused() {
        let int123 = vec![0xC0, 123];
        let twice = plain_container(2, &[int123.clone(), string(b"123")]);
        assert!(verify(&twice[..]).unwrap_err().to_string().contains("twice"));
        let int16 = vec![0xC1, 0x39, 0x30]; // 12345
        let twice = plain_container(4, &[string(b"12345"), int16]);
        assert!(verify(&twice[..]).unwrap_err().to_string().contains("twice"));
        assert!(verify(&plain_container(2, &[int123, string(b"124"), string(b"0123")])[..]).is_ok());
        // "aaaaaaaaaaa" compressed: a literal `a`, then a reference one back of 10 bytes.
        let lzf = vec![0xC3, 5, 11, 0, b'a', 7 << 5, 1, 0];
        let twice = plain_container(5, &[string(&[b'a'; 11]), lzf.clone()]);
        assert!(verify(&twice[..]).unwrap_err().to_string().contains("twice"));
        assert!(verify(&plain_container(5, &[string(&[b'a'; 10]), lzf])[..]).is_ok());
    }

    /// A member bigger than the fixed buffer is compared through it, in pieces: the same bytes are refused, bytes
    /// differing only in the last piece are not.
    #[test]
    fn long_members_are_compared_through_the_buffer() {
        let big = vec![b'x'; 200 * 1024];
        let mut other = big.clone();
        *other.last_mut().unwrap() = b'y';
        let twice = plain_container(2, &[long_string(&big), long_string(&big)]);
        assert!(verify(&twice[..]).unwrap_err().to_string().contains("twice"));
        assert!(verify(&plain_container(2, &[long_string(&big), long_string(&other)])[..]).is_ok());
        let f = Fingerprints::new();
        let mut whole = f.start();
        whole.feed(&big);
        let mut pieces = f.start();
        for piece in big.chunks(1000) {
            pieces.feed(piece);
        }
        assert_eq!(whole.finish(), pieces.finish());
    }

    /// The loader stops at a key it already holds in the database ("RDB has duplicated key"): refused naming the
    /// database and offset, never the key; the same key in two databases is two keys; an integer-encoded key is
    /// its digits.
    #[test]
    fn a_key_twice_in_a_database_is_refused() {
        let key = |k: &[u8]| {
            let mut v = vec![0];
            v.extend(string(k));
            v.extend(string(b"v"));
            v
        };
        let mut twice = vec![OP_SELECTDB, 0];
        twice.extend(key(b"secret-key"));
        twice.extend(key(b"other"));
        twice.extend(key(b"secret-key"));
        let err = verify(&file("0010", &twice)[..]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RdbError::Corrupt { .. }), "{text}");
        assert!(text.contains("database 0 holds this key twice"), "{text}");
        assert!(!text.contains("secret"), "the key is in the message: {text}");
        let mut two_dbs = vec![OP_SELECTDB, 0];
        two_dbs.extend(key(b"secret-key"));
        two_dbs.extend_from_slice(&[OP_SELECTDB, 1]);
        two_dbs.extend(key(b"secret-key"));
        let s = verify(&file("0010", &two_dbs)[..]).unwrap();
        assert_eq!(s.databases.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        // Database 0 selected again: its keys are remembered, and counted together.
        let mut again = two_dbs.clone();
        again.extend_from_slice(&[OP_SELECTDB, 0]);
        again.extend(key(b"another"));
        assert_eq!(verify(&file("0010", &again)[..]).unwrap().databases[&0].keys, 2);
        again.extend(key(b"secret-key"));
        let text = verify(&file("0010", &again)[..]).unwrap_err().to_string();
        assert!(text.contains("database 0 holds this key twice"), "{text}");
        let mut int_key = vec![OP_SELECTDB, 3, 0, 0xC0, 7, 1, b'v'];
        int_key.extend(key(b"7"));
        let text = verify(&file("0010", &int_key)[..]).unwrap_err().to_string();
        assert!(text.contains("database 3 holds this key twice"), "{text}");
    }

    /// Redis OSS 7.4+'s hashes with field expirations (no ElastiCache engine writes them) are refused by name,
    /// saying who writes them (Valkey 9's, read under `VALKEY080`, are tested with the real server's files).
    #[test]
    fn newer_hash_types_are_refused_by_name() {
        for (version, kind, says) in [
            ("0012", 22, "Redis OSS 7.4's release candidates"),
            ("0012", 23, "Redis OSS 7.4's release candidates"),
            ("0012", 24, "written by Redis OSS 7.4+, which ElastiCache does not run"),
            ("0012", 25, "written by Redis OSS 7.4+, which ElastiCache does not run"),
        ] {
            let err = verify(&file(version, &[OP_SELECTDB, 0, kind, 1, b'h', 0])[..]).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, RdbError::UnknownType { offset: 11, .. }), "{text}");
            assert!(
                text.contains(&format!("value type {kind} ")) && text.contains(says),
                "{text}"
            );
            assert!(text.contains("field expirations"), "{text}");
        }
    }

    /// Files Valkey 9.0.0 and 9.1.2 wrote (`tests/fixtures/rdb/README.md` says how), and the counts the same server
    /// gave after loading a copy of each: `keys loaded: 7` and `INFO keyspace` `db0:keys=7,expires=1`; `keys
    /// loaded: 3` and `db2:keys=3,expires=0`; 9.1.2's as 9.0.0's first. A field's TTL is not its key's: `expires`
    /// counts key TTLs only.
    const VALKEY_9_FIELD_TTLS: &[u8] = include_bytes!("../../../tests/fixtures/rdb/valkey-9.0-hash-field-ttl.rdb");
    const VALKEY_9_FIELD_TTLS_DB2: &[u8] =
        include_bytes!("../../../tests/fixtures/rdb/valkey-9.0-hash-field-ttl-db2.rdb");
    const VALKEY_9_1_FIELD_TTLS: &[u8] = include_bytes!("../../../tests/fixtures/rdb/valkey-9.1.2-hash-field-ttl.rdb");

    #[test]
    fn a_real_valkey_9_file_with_field_ttls_is_verified_with_the_servers_counts() {
        for (f, server, db, keys, expires) in [
            (VALKEY_9_FIELD_TTLS, "9.0.0", 0, 7, 1),
            (VALKEY_9_FIELD_TTLS_DB2, "9.0.0", 2, 3, 0),
            (VALKEY_9_1_FIELD_TTLS, "9.1.2", 0, 7, 1),
        ] {
            let s = verify_sized(f, Some(f.len() as u64)).unwrap();
            assert_eq!(s.version, VALKEY_VERSION);
            assert_eq!(s.server_version.as_deref(), Some(server));
            assert_eq!(s.databases, BTreeMap::from([(db, DbKeys { keys, expires })]));
            assert_eq!((s.bytes, s.checksummed), (f.len() as u64, true));
        }
    }

    /// Where `needle` first starts in `hay`.
    fn at(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).position(|w| w == needle).unwrap()
    }

    /// `f` with its CRC-64 made right again for its bytes (a hand-made variant that only its content damages).
    fn with_crc(mut f: Vec<u8>) -> Vec<u8> {
        let n = f.len() - 8;
        let crc = crc64(0, &f[..n]);
        f[n..].copy_from_slice(&crc.to_le_bytes());
        f
    }

    /// The real file with `h:ttl`'s two field expiries (the 8 bytes after `f1`'s and `f2`'s values) set.
    fn with_field_expiries(first: i64, second: i64) -> (Vec<u8>, usize) {
        let mut f = VALKEY_9_FIELD_TTLS.to_vec();
        let one = at(&f, b"\x02f1\x02v1") + 6;
        let two = at(&f, b"\x02f2\x02v2") + 6;
        f[one..one + 8].copy_from_slice(&first.to_le_bytes());
        f[two..two + 8].copy_from_slice(&second.to_le_bytes());
        (with_crc(f), one)
    }

    /// Valkey 9's loaders, given each variant (README's table): a hash with a field whose expiry has passed and
    /// one that has not is held; one whose every field has passed is not (9.1.2 drops it loading, 9.0.0 loads it
    /// and deletes it moments later); below -1 and a field twice are refused. The verifier gives the same verdicts
    /// and counts, naming no field's bytes.
    #[test]
    fn valkey_9_field_expiries_are_held_to_the_loaders_verdicts() {
        let future = 4_102_444_800_000;
        for (first, second, keys) in [(1000, future, 7), (0, -1, 7), (-1, -1, 7), (1000, 2000, 6), (0, 0, 6)] {
            let s = verify(&with_field_expiries(first, second).0[..]).unwrap();
            assert_eq!(s.databases[&0], DbKeys { keys, expires: 1 }, "{first} {second}");
        }

        let (minus_two, offset) = with_field_expiries(-2, -1);
        let err = verify(&minus_two[..]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, RdbError::Corrupt { offset: o, .. } if o == offset as u64),
            "{text}"
        );
        assert!(text.contains("expiry is below -1"), "{text}");

        let mut twice = VALKEY_9_FIELD_TTLS.to_vec();
        let f2 = at(&twice, b"\x02f2\x02v2");
        twice[f2 + 2] = b'1';
        let err = verify(&with_crc(twice)[..]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, RdbError::Corrupt { offset: o, .. } if o == f2 as u64),
            "{text}"
        );
        assert!(
            text.contains("type 22) holds a field twice") && text.contains("Duplicate hash fields detected"),
            "{text}"
        );
        for text in [verify(&minus_two[..]).unwrap_err().to_string(), text] {
            assert!(!text.contains("f1") && !text.contains("h:ttl"), "{text}");
        }
    }

    #[test]
    fn a_damaged_valkey_9_file_is_refused() {
        let f = VALKEY_9_FIELD_TTLS;
        // Cut inside `h:mixed`'s fields, and inside a field's expiry.
        for cut in [at(f, b"h:mixed") + 12, at(f, b"\x02f1\x02v1") + 9] {
            let err = verify_sized(&f[..cut], Some(cut as u64)).unwrap_err();
            assert!(
                matches!(err, RdbError::Truncated { .. } | RdbError::Corrupt { .. }),
                "{cut}: {err}"
            );
            assert!(
                matches!(verify(&f[..cut]).unwrap_err(), RdbError::Truncated { .. }),
                "{cut}"
            );
        }
        // A value's byte changed, the CRC-64 left as the server wrote it.
        let mut flipped = f.to_vec();
        flipped[at(f, b"\x02v1") + 1] = b'w';
        assert!(matches!(verify(&flipped[..]).unwrap_err(), RdbError::Checksum { .. }));
        // A count larger than the fields the file holds.
        let mut more = f.to_vec();
        more[at(f, b"h:ttl") + 5] = 60;
        assert!(verify(&with_crc(more)[..]).is_err());
        // Type 22 under a `REDIS` header is Redis 7.4's release candidates' type, not Valkey's: refused by name.
        let mut redis = f.to_vec();
        redis[..9].copy_from_slice(b"REDIS0012");
        let err = verify(&with_crc(redis)[..]).unwrap_err();
        assert!(matches!(err, RdbError::UnknownType { kind: 22, .. }), "{err}");
        assert!(err.to_string().contains("Redis OSS 7.4"), "{err}");
    }

    #[test]
    fn a_file_without_a_checksum_is_read_but_says_so() {
        let mut f = file("0010", &db0_with_two_strings());
        let n = f.len();
        f[n - 8..].fill(0);
        let s = verify(&f[..]).unwrap();
        assert!(!s.checksummed);
        assert_eq!(s.keys(), 2);
    }

    /// A string as the file stores it (short ones only).
    fn string(bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 64);
        let mut v = vec![bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    /// A listpack of short strings, or of small integers for entries of one byte that is a digit's value.
    fn lp_of(items: &[Result<&[u8], u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        for item in items {
            match item {
                Ok(s) => {
                    body.push(0x80 | s.len() as u8);
                    body.extend_from_slice(s);
                    body.push(1 + s.len() as u8);
                }
                Err(n) => body.extend_from_slice(&[*n, 1]),
            }
        }
        let mut v = ((body.len() + 7) as u32).to_le_bytes().to_vec();
        v.extend_from_slice(&(items.len() as u16).to_le_bytes());
        v.extend(body);
        v.push(0xFF);
        v
    }

    fn lp(items: &[&[u8]]) -> Vec<u8> {
        lp_of(&items.iter().map(|s| Ok(*s)).collect::<Vec<_>>())
    }

    /// A stream node's listpack of one entry with the master entry's field `f`: value `v`.
    fn stream_lp() -> Vec<u8> {
        lp_of(&[
            Err(1),
            Err(0),
            Err(1),
            Ok(b"f"),
            Err(0),
            Err(2),
            Err(0),
            Err(0),
            Ok(b"v"),
            Err(4),
        ])
    }

    /// Types and opcodes the Debian server of the tests (Redis 7.0) never writes, as Valkey 8 and Redis 7.2+
    /// write them: a listpack set (20), a version-3 stream with a consumer (21), a module value (7), a function
    /// library and cluster slot information.
    #[test]
    fn newer_servers_types_and_opcodes_are_read() {
        let mut b = vec![
            OP_FUNCTION2,
            3,
            b'l',
            b'i',
            b'b',
            OP_SELECTDB,
            0,
            OP_RESIZEDB,
            3,
            0,
            OP_SLOT_INFO,
            7,
            3,
            0,
        ];
        b.extend_from_slice(&[20, 1, b's']);
        b.extend(string(&lp(&[b"a", b"b"])));
        // stream v3: 1 node (id, listpack), length, last id, first id, max deleted id, entries added
        b.extend_from_slice(&[21, 1, b'q', 1]);
        b.extend(string(&[0; 16]));
        b.extend(string(&stream_lp()));
        b.extend_from_slice(&[1, 5, 0, 5, 0, 0, 0, 1]);
        // one group "g": last id, entries read, PEL of one entry (id, delivery time, count)
        b.extend_from_slice(&[1, 1, b'g', 5, 0, 1, 1]);
        b.extend_from_slice(&[0; 24]);
        b.push(1);
        // one consumer "c": seen and active times, its PEL of one id
        b.extend_from_slice(&[1, 1, b'c']);
        b.extend_from_slice(&[0; 16]);
        b.push(1);
        let consumer_pel = b.len();
        b.extend_from_slice(&[0; 16]);
        // a module value: id, then an unsigned, a double, a string, end
        b.extend_from_slice(&[
            7, 1, b'm', 0x80, 0, 0, 0, 9, 2, 7, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, b'x', 0,
        ]);
        let s = verify(&file("0011", &b)[..]).unwrap();
        assert_eq!(s.databases, BTreeMap::from([(0, DbKeys { keys: 3, expires: 0 })]));
        // The consumer's pending id not in the group's: the group's is then owned by nobody.
        let mut stray = b.clone();
        stray[consumer_pel] = 1;
        let err = verify(&file("0011", &stray)[..]).unwrap_err().to_string();
        assert!(err.contains("not in its group's"), "{err}");
        let mut pre_ga = b.clone();
        pre_ga[0] = OP_FUNCTION_PRE_GA;
        assert!(matches!(
            verify(&file("0011", &pre_ga)[..]),
            Err(RdbError::UnknownType {
                kind: OP_FUNCTION_PRE_GA,
                ..
            })
        ));
    }

    /// What a hostile file declares where lengths multiply or run past the end: refused where it is read,
    /// naming the offset, before anything is skipped or allocated; with and without the file's size known.
    #[test]
    fn hostile_lengths_are_refused_where_they_are_read() {
        let huge = |n: u64| {
            let mut v = vec![0x81];
            v.extend_from_slice(&n.to_be_bytes());
            v
        };
        let refuse = |body: Vec<u8>, expected: &str| {
            let f = file("0010", &body);
            for size in [Some(f.len() as u64), None] {
                let err = verify_sized(&f[..], size).unwrap_err();
                let text = err.to_string();
                assert!(
                    matches!(err, RdbError::Corrupt { offset, .. } if offset > 9),
                    "{size:?}: {text}"
                );
                assert!(text.contains(expected), "{size:?}: {text}");
            }
        };
        // A hash of 2^63 + 1 fields: 2 x the count wraps to 2 in u64.
        let mut hash = vec![OP_SELECTDB, 0, 4, 1, b'h'];
        hash.extend(huge((1 << 63) + 1));
        refuse(hash, "more than any file holds");
        // A stream of 2^63 nodes.
        let mut stream = vec![OP_SELECTDB, 0, 15, 1, b's'];
        stream.extend(huge(1 << 63));
        refuse(stream, "more than any file holds");
        // A consumer's 2^60 pending ids of 16 bytes: 2^64, zero after the wrap.
        let mut consumer = vec![OP_SELECTDB, 0, 15, 1, b's', 0, 0, 0, 0, 1, 1, b'g', 0, 0, 0, 1, 1, b'c'];
        consumer.extend_from_slice(&[0; 8]);
        consumer.extend(huge(1 << 60));
        refuse(consumer, "more than any file holds");
        // An LZF string declaring 2^40 plain bytes from 3 compressed ones.
        let mut lzf = vec![OP_SELECTDB, 0, 0, 1, b'k', 0xC3, 3];
        lzf.extend(huge(1 << 40));
        lzf.extend_from_slice(&[0, b'a', 0]);
        refuse(lzf, "cannot give");
        // A bad LZF string (a reference before its start) is refused as the loader refuses it.
        refuse(
            vec![OP_SELECTDB, 0, 0, 1, b'k', 0xC3, 2, 4, 0x20, 9],
            "before the start",
        );
        // With the size known, a string longer than the bytes left is refused before it is skipped.
        let mut long = vec![OP_SELECTDB, 0, 0, 1, b'k'];
        long.extend(huge(1 << 40));
        let f = file("0010", &long);
        let err = verify_sized(&f[..], Some(f.len() as u64)).unwrap_err().to_string();
        assert!(err.contains("only 9 are left"), "{err}");
        assert!(matches!(verify(&f[..]), Err(RdbError::Truncated { .. })));
    }

    proptest! {
        #[test]
        fn any_bytes_are_an_answer_never_a_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let f = file("0010", &body);
            let _ = verify(&f[..]);
            let _ = verify_sized(&f[..], Some(f.len() as u64));
            let mut raw = b"REDIS0010".to_vec();
            raw.extend_from_slice(&body);
            let _ = verify(&raw[..]);
        }

        /// A plain set of members that are digits stored as text or as integers: refused exactly when two decode
        /// to the same bytes, as the loader compares them.
        #[test]
        fn a_set_is_refused_exactly_when_two_members_decode_alike(
            members in proptest::collection::vec(0u8..20, 1..12)
        ) {
            let encoded: Vec<Vec<u8>> = members
                .iter()
                .map(|&m| if m < 10 { string(m.to_string().as_bytes()) } else { vec![0xC0, m - 10] })
                .collect();
            let decoded: std::collections::HashSet<u8> = members.iter().map(|m| m % 10).collect();
            let result = verify(&plain_container(2, &encoded)[..]);
            prop_assert_eq!(result.is_err(), decoded.len() < members.len(), "{:?}", result);
        }

        #[test]
        fn any_single_bit_flip_is_refused(bit in 0usize..(8 * 60)) {
            let good = file("0010", &db0_with_two_strings());
            let mut bad = good.clone();
            let i = bit / 8 % good.len();
            bad[i] ^= 1 << (bit % 8);
            prop_assert!(verify(&bad[..]).is_err());
        }
    }
}
