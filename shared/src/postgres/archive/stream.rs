//! The streamed read of one export: S3 GetObject → SHA-256 and size of the stored bytes → age decryption →
//! zstd → SHA-256 of the plaintext → `pg_restore` on standard input.
//!
//! ```text
//! [task]   GetObject body ──► sha256(stored), size ──► bounded channel ──┐
//! [thread] age ─► zstd ─► sha256(plaintext) ─► pg_restore stdin  ◄───────┘
//! ```
//!
//! Memory is bounded (a few chunks queued, one buffer per stage) and nothing touches the disk, unless the caller
//! asks for a file ([`Destination::File`], for `pg_restore --jobs`): then the plaintext goes there instead. Owns the order in
//! which failures are told: a changed object is a checksum error (the download is finished to prove it), even
//! when the decryption noticed first; a wrong identity stops at once.
//! Never creates or drops a database (see [`super::restore`]).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::ArchiveError;
use crate::bucket::manifest::{Manifest, TableCount};

/// Chunks of the object queued between the download and the decoder.
const QUEUED: usize = 16;
/// The buffer pg_restore is fed from.
const BUFFER: usize = 256 * 1024;

/// Bytes so far, for progress: read by the caller while the stream runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Stored (encrypted, compressed) bytes downloaded.
    pub stored: AtomicU64,
    /// Plaintext archive bytes given to pg_restore.
    pub plain: AtomicU64,
    /// Tables whose rows have been counted after the restore.
    pub counted: AtomicU64,
}

/// Where the plaintext goes: `pg_restore` with these arguments and environment.
#[derive(Clone)]
pub struct Sink {
    pub program: String,
    pub args: Vec<String>,
    /// libpq variables (the password among them, never on a command line).
    pub env: Vec<(&'static str, String)>,
    /// The tables to restore whole ([`super::select::whole_tables`]); empty restores the whole archive.
    pub tables: Vec<TableCount>,
    /// Rewrites the verified plaintext on its way in (the masked refresh); `None` feeds it as it is. Shared, so
    /// that the caller reads what the rewriter found once the stream is done.
    pub rewrite: Option<Arc<Mutex<dyn Rewrite>>>,
}

/// Rewrites the plaintext archive between the checks and pg_restore (the masked refresh:
/// `crate::mask::rewrite`). The checksums are of the archive as exported, read before the rewrite.
pub trait Rewrite: Send {
    /// Reads all of `from` (the exported archive) and writes what pg_restore is given to `to`.
    fn rewrite(&mut self, from: &mut dyn Read, to: &mut dyn Write) -> Result<(), RewriteError>;
}

/// Why a rewrite stopped: its input failed (a decoding error), its output (pg_restore stopped reading), or it
/// refused the archive (what the rewriter says, which never quotes row data).
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("reading the archive: {0}")]
    Read(#[source] std::io::Error),
    #[error("writing to pg_restore: {0}")]
    Write(#[source] std::io::Error),
    #[error("{0}")]
    Refused(String),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("program", &self.program)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// pg_restore parsing the whole archive and writing the SQL nowhere: the check without a database.
    pub fn parse_only(program: &str) -> Self {
        Self {
            program: program.to_owned(),
            args: vec!["-f".into(), "/dev/null".into()],
            env: Vec::new(),
            tables: Vec::new(),
            rewrite: None,
        }
    }
}

/// Where the plaintext goes: into pg_restore's standard input (streamed), or into a file that pg_restore reads
/// afterwards (`--jobs` needs one; see [`super::restore`], which owns the file and removes it).
#[derive(Debug)]
pub enum Destination {
    PgRestore(Sink),
    File(std::fs::File),
}

/// What went through, and when each stage finished (from the start of the stream; the stages overlap).
#[derive(Debug, Clone, PartialEq)]
pub struct Streamed {
    /// What belongs to the chosen tables but was left out, and why ([`super::select::WholeTables`]).
    pub left_out: Vec<String>,
    pub stored_bytes: u64,
    pub plain_bytes: u64,
    pub download: Duration,
    pub decrypt: Duration,
    pub restore: Duration,
}

struct Downloaded {
    bytes: u64,
    sha256: String,
    at: Duration,
}

struct Consumed {
    left_out: Vec<String>,
    bytes: u64,
    sha256: String,
    decrypted_at: Duration,
    restored_at: Duration,
}

/// Streams the manifest's object from `bucket` through decryption (with `identities`, required when the export
/// is encrypted) and decompression into `sink`, checking both checksums and the size against the manifest.
pub async fn stream(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    manifest: &Manifest,
    identities: &[age::x25519::Identity],
    destination: Destination,
    counters: Arc<Counters>,
) -> Result<Streamed, ArchiveError> {
    super::check_identities(manifest, identities)?;
    let key = manifest.stored.key.clone();
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| ArchiveError::Download {
            key: key.clone(),
            message: crate::core::error::aws_error_message(&e),
        })?;
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUED);
    let download = tokio::spawn(download(
        object.body,
        tx,
        manifest.stored.bytes,
        key,
        counters.clone(),
        start,
    ));
    let ids = manifest.encryption.is_some().then(|| identities.to_vec());
    let consumer = tokio::task::spawn_blocking(move || consume(rx, ids, destination, &counters, start));
    let consumed = match consumer.await? {
        Err(e) if !e.is_data_error() => {
            download.abort();
            return Err(e);
        }
        other => other,
    };
    let downloaded = download.await??;
    judge(manifest, downloaded, consumed)
}

/// The stored checksum first (a changed object explains every later failure), then what the consumer found,
/// then the plaintext checksum.
fn judge(manifest: &Manifest, d: Downloaded, c: Result<Consumed, ArchiveError>) -> Result<Streamed, ArchiveError> {
    if d.sha256 != manifest.stored.sha256 || d.bytes != manifest.stored.bytes {
        return Err(ArchiveError::StoredChecksum {
            key: manifest.stored.key.clone(),
            expected: format!("{} bytes, sha256 {}", manifest.stored.bytes, manifest.stored.sha256),
            actual: format!("{} bytes, sha256 {}", d.bytes, d.sha256),
        });
    }
    let c = c?;
    if c.sha256 != manifest.plaintext.sha256 || c.bytes != manifest.plaintext.bytes {
        return Err(ArchiveError::PlaintextChecksum {
            expected: format!(
                "{} bytes, sha256 {}",
                manifest.plaintext.bytes, manifest.plaintext.sha256
            ),
            actual: format!("{} bytes, sha256 {}", c.bytes, c.sha256),
        });
    }
    Ok(Streamed {
        left_out: c.left_out,
        stored_bytes: d.bytes,
        plain_bytes: c.bytes,
        download: d.at,
        decrypt: c.decrypted_at,
        restore: c.restored_at,
    })
}

/// Reads the whole body, hashing and counting it, and hands the chunks on while the consumer takes them; once
/// it stops taking them, keeps reading to finish the checksum (the caller aborts this when that is not needed).
async fn download(
    mut body: aws_sdk_s3::primitives::ByteStream,
    tx: mpsc::Sender<Bytes>,
    expected: u64,
    key: String,
    counters: Arc<Counters>,
    start: Instant,
) -> Result<Downloaded, ArchiveError> {
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let mut tx = Some(tx);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ArchiveError::Download {
            key: key.clone(),
            message: crate::core::error::aws_error_message(&e),
        })?;
        hash.update(&chunk);
        bytes += chunk.len() as u64;
        counters.stored.store(bytes, Ordering::Relaxed);
        if bytes > expected {
            // Longer than the manifest says: no need to read the rest to know it is not the export.
            return Ok(Downloaded {
                bytes,
                sha256: hex(&hash.finalize()),
                at: start.elapsed(),
            });
        }
        if let Some(sender) = &tx {
            if sender.send(chunk).await.is_err() {
                tx = None;
            }
        }
    }
    Ok(Downloaded {
        bytes,
        sha256: hex(&hash.finalize()),
        at: start.elapsed(),
    })
}

/// Lowercase hex, as the manifest records digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The download's chunks as a blocking reader.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// The plaintext archive: decrypted when identities are given (the export is encrypted), then decompressed.
fn plain_reader(
    stored: ChannelReader,
    identities: Option<Vec<age::x25519::Identity>>,
) -> Result<Box<dyn Read + Send>, ArchiveError> {
    let compressed: Box<dyn Read + Send> = match identities {
        None => Box::new(stored),
        Some(ids) => {
            let decryptor = age::Decryptor::new(std::io::BufReader::new(stored)).map_err(ArchiveError::AgeHeader)?;
            let reader = decryptor
                .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
                .map_err(ArchiveError::AgeHeader)?;
            Box::new(reader)
        }
    };
    let decoder = zstd::stream::read::Decoder::new(compressed).map_err(ArchiveError::Decode)?;
    Ok(Box::new(decoder))
}

/// The blocking half: decrypt, decompress, hash, and feed pg_restore or write the file.
fn consume(
    rx: mpsc::Receiver<Bytes>,
    identities: Option<Vec<age::x25519::Identity>>,
    destination: Destination,
    counters: &Counters,
    start: Instant,
) -> Result<Consumed, ArchiveError> {
    let plain = plain_reader(
        ChannelReader {
            rx,
            current: Bytes::new(),
        },
        identities,
    )?;
    match destination {
        Destination::PgRestore(sink) => feed(plain, sink, counters, start),
        Destination::File(file) => write_file(plain, file, counters, start),
    }
}

/// Feeds another process's archive (pg_dump's standard output, in [`super::recover`]) to pg_restore, the chosen
/// tables whole, as an export's plaintext is fed: answers the bytes that went through and what was left out.
pub(super) fn pipe(
    archive: Box<dyn Read + Send>,
    sink: Sink,
    counters: &Counters,
) -> Result<(u64, Vec<String>), ArchiveError> {
    let consumed = feed(archive, sink, counters, Instant::now())?;
    Ok((consumed.bytes, consumed.left_out))
}

/// Writes the plaintext into the file (which pg_restore reads only once every check has passed).
fn write_file(
    mut plain: Box<dyn Read + Send>,
    mut file: std::fs::File,
    counters: &Counters,
    start: Instant,
) -> Result<Consumed, ArchiveError> {
    let (bytes, sha256) = match pump(&mut plain, &mut file, counters) {
        Err(ArchiveError::Stopped(e)) => return Err(ArchiveError::WriteFile(e)),
        other => other?,
    };
    let at = start.elapsed();
    Ok(Consumed {
        left_out: Vec::new(),
        bytes,
        sha256,
        decrypted_at: at,
        restored_at: at,
    })
}

/// Feeds pg_restore's standard input; pg_restore's own failure is told unless the stream broke first (then
/// pg_restore only saw it end early).
fn feed(
    plain: Box<dyn Read + Send>,
    sink: Sink,
    counters: &Counters,
    start: Instant,
) -> Result<Consumed, ArchiveError> {
    let (mut plain, chosen) = choose_entries(plain, &sink.tables)?;
    let mut child = Command::new(&sink.program)
        .args(&sink.args)
        .args(chosen.list_args())
        .envs(sink.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ArchiveError::StartPgRestore {
            program: sink.program.clone(),
            source,
        })?;
    let stderr = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut text = String::new();
            // Unreadable stderr only loses the message; the exit status still tells the failure.
            let _ = s.read_to_string(&mut text);
            text
        })
    });
    let mut stdin = child.stdin.take().ok_or(ArchiveError::NoStdin)?;
    let pumped = match &sink.rewrite {
        None => pump_until(&mut plain, &mut stdin, counters, !sink.tables.is_empty()),
        Some(rewriter) => rewrite_into(&mut plain, &mut stdin, counters, rewriter),
    };
    let decrypted_at = start.elapsed();
    drop(stdin);
    drop(plain);
    let status = child.wait().map_err(ArchiveError::Wait)?;
    let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let (bytes, sha256) = match pumped {
        Err(e @ ArchiveError::Decode(_)) => return Err(e),
        other if !status.success() => {
            drop(other);
            return Err(ArchiveError::PgRestore {
                status: status.to_string(),
                stderr: tail(&stderr),
            });
        }
        other => other?,
    };
    Ok(Consumed {
        left_out: chosen.left_out,
        bytes,
        sha256,
        decrypted_at,
        restored_at: start.elapsed(),
    })
}

/// The entries pg_restore restores: every one (no tables chosen), or the chosen tables whole, through a `-L`
/// list file that lives as long as this value.
#[derive(Debug, Default)]
pub struct Chosen {
    list: Option<tempfile::NamedTempFile>,
    pub left_out: Vec<String>,
}

impl Chosen {
    /// pg_restore's arguments for the choice: `-L <file>`, or none.
    pub fn list_args(&self) -> Vec<std::ffi::OsString> {
        self.list
            .iter()
            .flat_map(|f| ["-L".into(), f.path().as_os_str().to_owned()])
            .collect()
    }
}

/// Reads the archive's table of contents off the front of `plain` when tables are chosen, writes the list of the
/// entries that restore them whole, and gives back the archive whole (what was read, then the rest): it is
/// still read once, as it streams by.
pub fn choose_entries(
    mut plain: Box<dyn Read + Send>,
    tables: &[TableCount],
) -> Result<(Box<dyn Read + Send>, Chosen), ArchiveError> {
    if tables.is_empty() {
        return Ok((plain, Chosen::default()));
    }
    let (entries, head) = crate::postgres::dump_format::read_toc_entries(&mut plain)?;
    let whole = super::select::whole_tables(&entries, tables)?;
    let mut list = tempfile::Builder::new()
        .prefix("lifeboat-restore-")
        .suffix(".list")
        .tempfile()
        .map_err(ArchiveError::List)?;
    list.write_all(whole.list().as_bytes()).map_err(ArchiveError::List)?;
    list.flush().map_err(ArchiveError::List)?;
    let replayed: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head).chain(plain));
    Ok((
        replayed,
        Chosen {
            list: Some(list),
            left_out: whole.left_out,
        },
    ))
}

/// The end of pg_restore's stderr, where it says what went wrong, without the row values its DETAIL and
/// CONTEXT lines quote ([`crate::postgres::pg_stderr`]): this text leaves the process in errors, logs and reports.
pub(super) fn tail(text: &str) -> String {
    crate::postgres::pg_stderr::tail(text)
}

/// Gives the plaintext to the rewriter through a reader that hashes and counts it, so the checksums are the
/// exported archive's whatever the rewriter writes.
fn rewrite_into(
    plain: &mut dyn Read,
    stdin: &mut dyn Write,
    counters: &Counters,
    rewriter: &Mutex<dyn Rewrite>,
) -> Result<(u64, String), ArchiveError> {
    let mut hashed = Hashed {
        inner: plain,
        hash: Sha256::new(),
        total: 0,
        counters,
    };
    let mut rewriter = rewriter
        .lock()
        .map_err(|_| ArchiveError::Rewrite("a rewriter panicked".into()))?;
    match rewriter.rewrite(&mut hashed, stdin) {
        Ok(()) => {}
        Err(RewriteError::Read(e)) => return Err(ArchiveError::Decode(e)),
        Err(RewriteError::Write(e)) => return Err(ArchiveError::Stopped(e)),
        Err(RewriteError::Refused(why)) => return Err(ArchiveError::Rewrite(why)),
    }
    // Whatever the rewriter left unread is still part of the archive its checksum covers.
    std::io::copy(&mut hashed, &mut std::io::sink()).map_err(ArchiveError::Decode)?;
    Ok((hashed.total, hex(&hashed.hash.finalize())))
}

/// A reader that hashes and counts what is read through it.
struct Hashed<'a> {
    inner: &'a mut dyn Read,
    hash: Sha256,
    total: u64,
    counters: &'a Counters,
}

impl Read for Hashed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.total += n as u64;
        self.counters.plain.store(self.total, Ordering::Relaxed);
        Ok(n)
    }
}

/// Copies the plaintext into pg_restore, hashing and counting it. A read error is the decoders' (age reports a
/// changed or cut ciphertext as one, zstd a corrupt frame); a write error means pg_restore stopped reading.
fn pump(plain: &mut dyn Read, stdin: &mut dyn Write, counters: &Counters) -> Result<(u64, String), ArchiveError> {
    pump_until(plain, stdin, counters, false)
}

/// [`pump`], where pg_restore may stop reading before the end: with a `-L` list it exits once its last chosen
/// entry is restored, and the writes after that meet a closed pipe. Then the rest is still read and hashed (the
/// checksum covers the whole archive), and whether stopping was right is pg_restore's exit status to say.
fn pump_until(
    plain: &mut dyn Read,
    stdin: &mut dyn Write,
    counters: &Counters,
    may_stop_early: bool,
) -> Result<(u64, String), ArchiveError> {
    let mut buf = vec![0u8; BUFFER];
    let mut hash = Sha256::new();
    let mut total = 0u64;
    let mut writing = true;
    loop {
        let n = match plain.read(&mut buf) {
            Ok(0) => return Ok((total, hex(&hash.finalize()))),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ArchiveError::Decode(e)),
        };
        hash.update(&buf[..n]);
        total += n as u64;
        counters.plain.store(total, Ordering::Relaxed);
        if !writing {
            continue;
        }
        match stdin.write_all(&buf[..n]) {
            Ok(()) => {}
            Err(e) if may_stop_early && e.kind() == std::io::ErrorKind::BrokenPipe => writing = false,
            Err(e) => return Err(ArchiveError::Stopped(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A pg_restore that reads `room` bytes and exits: writes after that meet a closed pipe.
    struct Closes {
        room: usize,
    }

    impl Write for Closes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_chosen_restore_that_stops_reading_still_hashes_the_whole_archive() {
        let archive: Vec<u8> = (0..3 * BUFFER).map(|i| (i % 251) as u8).collect();
        let whole = hex(&Sha256::digest(&archive));
        let (bytes, sha) = pump_until(
            &mut &archive[..],
            &mut Closes { room: 1000 },
            &Counters::default(),
            true,
        )
        .unwrap();
        assert_eq!((bytes, sha), (archive.len() as u64, whole));
        // Where the whole archive must go in, a closed pipe is pg_restore's failure.
        let e = pump(&mut &archive[..], &mut Closes { room: 1000 }, &Counters::default()).unwrap_err();
        assert!(matches!(e, ArchiveError::Stopped(_)), "{e}");
    }
}
