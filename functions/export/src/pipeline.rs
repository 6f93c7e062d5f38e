//! The export pipeline: one pass over pg_dump's output, every stage concurrent.
//!
//! ```text
//! pg_dump stdout ──► [thread] reader ──┬──► [thread] SHA-256 ─► zstd (8 MiB frames) ─► age ─► parts ──► uploader (N in flight)
//!                   │                  └─► row counts from the archive's COPY data (`lifeboat::postgres::dump_format`)
//!                   └─ tee(2) ─► pg_restore -f /dev/null (parses the whole archive)
//! ```
//!
//! The reader has a thread of its own and blocking pipes. pg_dump writes its archive 4 KiB at a time: a reader on
//! the runtime was woken twice for each write (the runtime's I/O driver, then the task), and a reader that keeps up
//! is woken once for each. After a short read it waits a millisecond (the widened pipe holds several), so it wakes
//! once for many writes. It duplicates pg_dump's pipe into pg_restore's with `tee(2)`, which hands pg_restore the
//! same pipe pages instead of a copy written through this process, in the same larger batches.
//!
//! The row counter runs on the encoder's thread, fed the same chunks (no thread, channel or copy of its own):
//! on a machine whose cores the database server shares, every thread handed a chunk costs wake-ups the dump
//! pays for.
//!
//! Memory is bounded whatever the database size: chunks and parts travel through bounded channels, so a slow
//! stage slows the dump instead of buffering it. The pipeline decides nothing about success on its own: it
//! returns `Ok` only when pg_dump exited 0, pg_restore accepted the whole stream, and every part is uploaded.
//! Completing (or aborting) the multipart upload is the caller's job, after this returns.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use lifeboat::bucket::manifest::Catalog;
use lifeboat::postgres::dump_format::{Counted, FormatError, RowCounter, TableRows};
// sha2 0.11 hashes with the CPU's SHA instructions when it has them, detected at run time: SHA-NI on x86-64,
// ARMv8 SHA2 on arm64 (Lambda's Graviton). 0.10, the workspace's, did so on x86-64 only. Checked on the
// development machine (sha_ni in /proc/cpuinfo) by hashing 1 GiB with sha2 0.11.1 as built here and again with
// `--cfg sha2_backend="soft"`: the default build was 2.5x faster under the same load.
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::cpu::{self, CpuSeconds, Meter, Stage};

/// Size of the chunks handed on: small enough to keep the stages busy, large enough that handing one on (a wake-up
/// of each consumer) is rare. A pipe holds 64 KiB, so a chunk is several reads.
const CHUNK: usize = 256 * 1024;
/// A read shorter than this means the reader is keeping up with pg_dump's 4 KiB writes: it waits [`FILL_WAIT`]
/// before the next, so that it wakes once for many of them.
const SHORT_READ: usize = 64 * 1024;
const FILL_WAIT: Duration = Duration::from_millis(1);
/// Chunks queued between the reader and each consumer.
const CHUNKS_QUEUED: usize = 8;

/// How the stream is compressed, encrypted and cut into parts.
#[derive(Clone)]
pub struct Options {
    pub zstd_level: i32,
    /// zstd worker threads; 0 compresses on the pipeline thread itself.
    pub zstd_workers: u32,
    pub recipients: Vec<age::x25519::Recipient>,
    pub part_size: usize,
    pub parts_in_flight: usize,
    /// The most parts the upload may have (S3's 10,000); one more fails the export, naming the limit.
    pub max_parts: i32,
    /// Count each table's rows from the archive (pg_dump custom format, uncompressed); `false` only where the
    /// stream is not an archive (the pipeline's own tests).
    pub count_rows: bool,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("zstd_level", &self.zstd_level)
            .field("zstd_workers", &self.zstd_workers)
            .field("recipients", &self.recipients.len())
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("max_parts", &self.max_parts)
            .field("count_rows", &self.count_rows)
            .finish()
    }
}

/// What went through the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub plaintext_bytes: u64,
    pub plaintext_sha256: String,
    pub stored_bytes: u64,
    pub stored_sha256: String,
    pub parts: Vec<UploadedPart>,
    /// The rows of every table whose data the archive holds, counted from the stream itself.
    pub tables: Vec<TableRows>,
    /// The archive's table of contents for the content watch (`None` where rows are not counted).
    pub catalog: Option<Catalog>,
    /// CPU seconds per stage (see `cpu`): reported, never recorded in the manifest.
    pub cpu: CpuSeconds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: String,
}

/// Why an export did not complete. Each names the stage, so the error says what happened.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("pg_dump failed ({status}): {stderr}")]
    Dump { status: String, stderr: String },
    #[error("verification failed: pg_restore could not parse the archive ({status}): {stderr}")]
    Verify { status: String, stderr: String },
    #[error("compressing or encrypting the stream failed: {0}")]
    Encode(#[source] io::Error),
    #[error("compressing or encrypting the stream failed: age: {0}")]
    Age(#[source] age::EncryptError),
    #[error("compressing or encrypting the stream failed: encoder thread: {0}")]
    EncoderThread(#[source] tokio::task::JoinError),
    #[error("reading pg_dump's output failed: reader thread: {0}")]
    ReaderThread(#[source] tokio::task::JoinError),
    /// The archive's own rows could not be counted: no counts are made up, the export fails.
    #[error("counting the rows in pg_dump's archive failed: {0}; the export is not recorded")]
    Count(#[source] FormatError),
    /// The stream outgrew the size the part size was chosen for.
    #[error(
        "the stream needs more than {0} parts (S3's limit): it outgrew the database's size; raise \
         LIFEBOAT_PART_SIZE_MIB"
    )]
    TooManyParts(i32),
    #[error("uploading part {part} failed: {message}")]
    Upload { part: i32, message: PartError },
    /// A child process has no pipe where the pipeline needs one.
    #[error("{0} has no {1}")]
    NoPipe(&'static str, &'static str),
    #[error("{what}: {source}")]
    Io { what: &'static str, source: io::Error },
}

/// Why a sink could not take a part; its message is reported as the upload's failure.
pub type PartError = Box<dyn std::error::Error + Send + Sync>;

/// Receives finished parts. The S3 implementation uploads them; tests may collect them.
pub trait PartSink: Sync {
    fn upload(&self, number: i32, body: Bytes) -> impl std::future::Future<Output = Result<String, PartError>> + Send;
}

/// Spawns a command with piped stdout/stderr, killed if the pipeline is dropped.
pub fn spawn(mut command: Command, stdin: bool) -> io::Result<Child> {
    command
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(if stdin { Stdio::null() } else { Stdio::piped() })
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

/// The pipe size asked for pg_dump's output and pg_restore's input: Linux's default limit for an unprivileged
/// process (`/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: usize = 1024 * 1024;

/// Widens a pipe from the default 64 KiB, so that pg_dump writes (and pg_restore reads) about 16 times longer
/// before it must wait for the other end: fewer context switches where the database server shares the cores.
/// Best effort: a pipe that cannot be widened works as before, only slower.
fn widen_pipe(pipe: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_SIZE) {
        tracing::debug!(error = %e, "the pipe keeps its default size");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pipe;
}

/// Runs the pipeline over a running pg_dump (`dump`, stdout piped) and pg_restore (`verify`, stdin piped).
pub async fn run(
    mut dump: Child,
    mut verify: Child,
    sink: &impl PartSink,
    options: &Options,
) -> Result<Output, PipelineError> {
    let (stdout, restore_in) = take_pipes(&mut dump, &mut verify)?;
    let dump_err = read_stderr(&mut dump);
    let verify_err = read_stderr(&mut verify);

    let process_start = cpu::process_cpu();
    let stages = run_stages(stdout, restore_in, &mut verify, sink, options).await;
    let read_to_end = stages.read?;
    let (verify_status, verify_cpu) = stages.verified?;
    let children_start = cpu::children_cpu();
    let dump_status = wait(&mut dump, "waiting for pg_dump").await?;
    let children_dumped = cpu::children_cpu();

    // Report the cause, not the symptom. If the reader saw the end of pg_dump's output, pg_dump's own verdict
    // comes first (it dies halfway: the stream just ends). If the reader stopped early, a consumer failed first
    // and pg_dump only died of the closed pipe.
    if read_to_end && !dump_status.success() {
        return Err(PipelineError::Dump {
            status: dump_status.to_string(),
            stderr: dump_err.await,
        });
    }
    let parts = stages.uploaded?;
    let encoded = stages.encoded?;
    let cpu = CpuSeconds {
        pg_dump: children_dumped.saturating_sub(children_start).as_secs_f64(),
        pg_restore: verify_cpu.as_secs_f64(),
        ..encoded
            .cpu
            .seconds(&stages.cpu, cpu::process_cpu().saturating_sub(process_start))
    };
    if !verify_status.success() {
        return Err(PipelineError::Verify {
            status: verify_status.to_string(),
            stderr: verify_err.await,
        });
    }
    if !read_to_end || !dump_status.success() {
        return Err(PipelineError::Dump {
            status: dump_status.to_string(),
            stderr: dump_err.await,
        });
    }
    // pg_dump and pg_restore both vouched for the archive; a stream the counter cannot read still fails.
    let (tables, catalog) = split(encoded.counted.map_err(PipelineError::Count)?);
    Ok(Output {
        plaintext_bytes: encoded.plaintext_bytes,
        plaintext_sha256: encoded.plaintext_sha256,
        stored_bytes: encoded.stored_bytes,
        stored_sha256: encoded.stored_sha256,
        parts,
        tables,
        catalog,
        cpu,
    })
}

/// pg_dump's output and pg_restore's input, widened, out of the runtime's hands and back in blocking mode for the
/// reader's own thread.
fn take_pipes(dump: &mut Child, verify: &mut Child) -> Result<(OwnedFd, OwnedFd), PipelineError> {
    let stdout = dump.stdout.take().ok_or(PipelineError::NoPipe("pg_dump", "stdout"))?;
    let restore_in = verify
        .stdin
        .take()
        .ok_or(PipelineError::NoPipe("pg_restore", "stdin"))?;
    let stdout = stdout.into_owned_fd().map_err(|source| PipelineError::Io {
        what: "taking pg_dump's output pipe",
        source,
    })?;
    let restore_in = restore_in.into_owned_fd().map_err(|source| PipelineError::Io {
        what: "taking pg_restore's input pipe",
        source,
    })?;
    widen_pipe(&stdout);
    widen_pipe(&restore_in);
    Ok((stdout, restore_in))
}

/// The counts and the catalogue, or neither where rows are not counted.
fn split(counted: Option<Counted>) -> (Vec<TableRows>, Option<Catalog>) {
    match counted {
        Some(Counted { tables, catalog }) => (tables, Some(catalog)),
        None => (Vec::new(), None),
    }
}

/// What each concurrent stage ended with.
struct Stages {
    /// Whether the reader saw the end of pg_dump's output (`false`: a consumer stopped first).
    read: Result<bool, PipelineError>,
    /// How pg_restore exited, and its CPU time.
    verified: Result<(std::process::ExitStatus, Duration), PipelineError>,
    encoded: Result<Encoded, PipelineError>,
    uploaded: Result<Vec<UploadedPart>, PipelineError>,
    cpu: ReaderUploaderCpu,
}

/// CPU time of the stages outside the encoder thread.
#[derive(Default)]
struct ReaderUploaderCpu {
    /// The uploader's future, on the runtime's threads.
    upload: cpu::Counter,
    /// The reader's thread: reading pg_dump's output and duplicating it into pg_restore's input.
    pipes: cpu::Counter,
}

/// CPU time of the encoder thread's stages.
struct EncoderCpu {
    hashing: Duration,
    compression: Duration,
    encryption: Duration,
    upload: Duration,
    pipes: Duration,
    row_counts: Duration,
}

impl EncoderCpu {
    fn read(meter: &Meter) -> Self {
        EncoderCpu {
            hashing: meter.total(Stage::Hashing),
            compression: meter.total(Stage::Compression),
            encryption: meter.total(Stage::Encryption),
            upload: meter.total(Stage::Upload),
            pipes: meter.total(Stage::Pipes),
            row_counts: meter.total(Stage::RowCounts),
        }
    }

    /// The in-process stages; `other` is the rest of the process's CPU over the pipeline (`process`).
    fn seconds(&self, outside: &ReaderUploaderCpu, process: Duration) -> CpuSeconds {
        let upload = self.upload + outside.upload.get();
        let pipes = self.pipes + outside.pipes.get();
        let row_counts = self.row_counts;
        let measured = self.hashing + self.compression + self.encryption + upload + pipes + row_counts;
        CpuSeconds {
            hashing: self.hashing.as_secs_f64(),
            compression: self.compression.as_secs_f64(),
            encryption: self.encryption.as_secs_f64(),
            upload: upload.as_secs_f64(),
            pipes: pipes.as_secs_f64(),
            row_counts: row_counts.as_secs_f64(),
            other: process.saturating_sub(measured).as_secs_f64(),
            ..CpuSeconds::default()
        }
    }
}

/// Runs the reader, the encoder thread, the uploader and the pg_restore feeder to completion.
async fn run_stages(
    stdout: OwnedFd,
    restore_in: OwnedFd,
    verify: &mut Child,
    sink: &impl PartSink,
    options: &Options,
) -> Stages {
    let (to_encode, encode_rx) = mpsc::channel::<Bytes>(CHUNKS_QUEUED);
    let (parts_tx, parts_rx) = mpsc::channel::<Bytes>(1);
    let (verdict_tx, verdict) = std::sync::mpsc::sync_channel::<bool>(1);

    let cpu = ReaderUploaderCpu::default();
    let pipes = cpu.pipes.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let start = cpu::thread_cpu();
        let read = read_dump(&stdout, restore_in, &to_encode, &verdict);
        pipes.add(cpu::thread_cpu().saturating_sub(start));
        read
    });
    let encode_options = options.clone();
    let encoder = tokio::task::spawn_blocking(move || encode(encode_rx, parts_tx, &encode_options));
    let uploader = upload_parts(parts_rx, sink, options.parts_in_flight, options.max_parts, &cpu.upload);
    // pg_restore is reaped as soon as it exits; its CPU is what the reaped children's total grew by meanwhile
    // (pg_dump is reaped only after the stages).
    let verifier = async {
        let before = cpu::children_cpu();
        let status = wait(verify, "waiting for pg_restore").await;
        let spent = cpu::children_cpu().saturating_sub(before);
        // The reader may be waiting for this verdict (it found pg_restore's input closed); it may also have ended.
        let _ = verdict_tx.send(status.as_ref().is_ok_and(std::process::ExitStatus::success));
        status.map(|s| (s, spent))
    };
    let (read, encoded, uploaded, verified) = tokio::join!(reader, encoder, uploader, verifier);
    Stages {
        read: read.map_err(PipelineError::ReaderThread).and_then(|r| r),
        verified,
        encoded: encoded.map_err(PipelineError::EncoderThread).and_then(|e| e),
        uploaded,
        cpu,
    }
}

async fn wait(child: &mut Child, what: &'static str) -> Result<std::process::ExitStatus, PipelineError> {
    child.wait().await.map_err(|source| PipelineError::Io { what, source })
}

fn read_stderr(child: &mut Child) -> impl std::future::Future<Output = String> {
    let stderr = child.stderr.take();
    let handle = tokio::spawn(async move {
        let mut bytes = Vec::new();
        if let Some(mut s) = stderr {
            // Best effort on purpose: stderr only details the message; the exit status is the verdict, and
            // what was read before a read failure is still the best detail there is.
            let _ = s.read_to_end(&mut bytes).await;
        }
        // A server or locale that is not UTF-8 still has its words kept: invalid bytes become U+FFFD.
        let text = String::from_utf8_lossy(&bytes);
        // Keep the end, where pg_dump and pg_restore say what went wrong, without the row values a server's
        // DETAIL or CONTEXT line may quote (the message goes to logs and the summary).
        lifeboat::postgres::pg_stderr::tail(&text)
    });
    // The task only reads a pipe; if it could not finish, the message goes without stderr's detail.
    async move { handle.await.unwrap_or_default() }
}

/// Reads pg_dump's output, blocking, on a thread of its own, and hands it to the encoder (and its row counter) in
/// chunks of [`CHUNK`] bytes; every byte is duplicated into pg_restore's input before it is read. Returns whether it
/// saw the end of pg_dump's output (`false`: pg_restore or the encoder stopped first, and reports why).
///
/// pg_restore stops reading once it has read the archive's last entry, and may leave a few bytes of it unread. So a
/// closed input is a failure only if pg_restore's own `verdict` is: after a success the rest is read and stored.
fn read_dump(
    dump: &OwnedFd,
    restore: OwnedFd,
    encoder: &mpsc::Sender<Bytes>,
    verdict: &std::sync::mpsc::Receiver<bool>,
) -> Result<bool, PipelineError> {
    let mut restore = Some(restore);
    loop {
        let mut chunk = BytesMut::zeroed(CHUNK);
        let mut filled = 0;
        let mut ended = false;
        while filled < CHUNK && !ended {
            match read_some(dump, restore.as_ref(), &mut chunk[filled..]) {
                Ok(0) => ended = true,
                Ok(n) => {
                    filled += n;
                    if n < SHORT_READ && filled < CHUNK {
                        std::thread::sleep(FILL_WAIT);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => match verdict.recv() {
                    Ok(true) => restore = None,
                    // pg_restore failed (or the pipeline is being dropped): its exit status and stderr say why.
                    _ => return Ok(false),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(PipelineError::Io {
                        what: "reading pg_dump's output into pg_restore's input",
                        source,
                    })
                }
            }
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        if encoder.blocking_send(chunk.freeze()).is_err() {
            // The encoder has failed and will report why.
            return Ok(false);
        }
        if ended {
            break;
        }
    }
    // pg_restore's input closes here, and pg_restore sees the archive end.
    drop(restore);
    Ok(true)
}

/// Reads what pg_dump has written (at most `buf.len()` bytes), after duplicating exactly those bytes into
/// pg_restore's input (while there is one). 0 at the end of pg_dump's output; `BrokenPipe` once pg_restore has
/// closed its input, with nothing read.
fn read_some(dump: &OwnedFd, restore: Option<&OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    let Some(restore) = restore else {
        return Ok(rustix::io::read(dump, buf)?);
    };
    let n = duplicate(dump, restore, buf)?;
    // Only this thread reads pg_dump's pipe, so the `n` bytes just duplicated are still the first in it.
    let mut read = 0;
    while read < n {
        match rustix::io::read(dump, &mut buf[read..n]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => read += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Duplicates up to `buf.len()` of the bytes waiting in pg_dump's pipe into pg_restore's with `tee(2)`, leaving
/// them in pg_dump's: the pipe pages are shared, not copied. Returns how many.
#[cfg(target_os = "linux")]
fn duplicate(dump: &OwnedFd, restore: &OwnedFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::pipe::tee(
        dump,
        restore,
        buf.len(),
        rustix::pipe::SpliceFlags::empty(),
    )?)
}

/// Lambda runs Linux, and so do the machines the tests run on.
#[cfg(not(target_os = "linux"))]
fn duplicate(_dump: &OwnedFd, _restore: &OwnedFd, _buf: &[u8]) -> io::Result<usize> {
    compile_error!("the export pipeline duplicates pg_dump's output with tee(2), which only Linux has");
}

/// Collects output bytes into parts of `part_size` and hands each to the uploader.
struct PartWriter {
    buf: Vec<u8>,
    part_size: usize,
    tx: mpsc::Sender<Bytes>,
    hasher: Sha256,
    bytes: u64,
    meter: Meter,
}

impl PartWriter {
    fn send(&mut self) -> io::Result<()> {
        let body = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size)));
        self.tx
            .blocking_send(body)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the uploader stopped"))
    }

    fn finish(mut self) -> io::Result<(u64, String)> {
        // The last part may be short; an empty object still gets one (empty) part.
        if !self.buf.is_empty() || self.bytes == 0 {
            self.send()?;
        }
        Ok((self.bytes, hex(&self.hasher.finalize())))
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let meter = self.meter.clone();
        let room = self.part_size - self.buf.len();
        let n = data.len().min(room);
        meter.stage(Stage::Upload, || self.buf.extend_from_slice(&data[..n]));
        meter.stage(Stage::Hashing, || self.hasher.update(&data[..n]));
        self.bytes += n as u64;
        if self.buf.len() == self.part_size {
            meter.stage(Stage::Upload, || self.send())?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sink behind zstd: age encryption when there are recipients, else the parts directly.
enum Sealed {
    Plain(PartWriter),
    Age(age::stream::StreamWriter<PartWriter>, Meter),
}

impl Write for Sealed {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sealed::Plain(w) => w.write(data),
            Sealed::Age(w, meter) => meter.stage(Stage::Encryption, || w.write(data)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealed::Plain(w) => w.flush(),
            Sealed::Age(w, meter) => meter.stage(Stage::Encryption, || w.flush()),
        }
    }
}

impl Sealed {
    fn finish(self) -> io::Result<PartWriter> {
        match self {
            Sealed::Plain(w) => Ok(w),
            Sealed::Age(w, meter) => meter.stage(Stage::Encryption, || w.finish()),
        }
    }
}

/// Input compressed as one zstd frame: 8 MiB, sixteen of zstd's 512 KiB windows at levels 1 and 2 (the default is
/// 1), so that starting a frame afresh costs the stored size next to nothing. Higher levels have larger windows
/// (8 MiB at 19): a frame then holds fewer of them, and at the highest levels it bounds the window.
const FRAME: usize = 8 * 1024 * 1024;

/// The stream compressed as a sequence of zstd frames, each from [`FRAME`] bytes of contiguous input, each with its
/// content checksum. zstd's streaming encoder copies its input into a ring buffer of one window and a block; once
/// the ring wraps, nearly every block is matched against two separate segments (zstd's "extDict" path), which
/// `perf` showed taking 64 % of the compressor's time. A whole frame in one buffer is matched against a single
/// prefix. A sequence of frames is what `zstd -d` and every zstd decoder read as one stream.
struct Frames<W> {
    compressor: zstd::bulk::Compressor<'static>,
    input: Vec<u8>,
    output: Vec<u8>,
    sink: W,
    frames: u64,
}

impl<W: Write> Frames<W> {
    fn new(sink: W, options: &Options) -> io::Result<Self> {
        let mut compressor = zstd::bulk::Compressor::new(options.zstd_level)?;
        if options.zstd_workers > 0 {
            compressor.multithread(options.zstd_workers)?;
        }
        compressor.include_checksum(true)?;
        Ok(Frames {
            compressor,
            input: Vec::with_capacity(FRAME),
            output: Vec::with_capacity(zstd::zstd_safe::compress_bound(FRAME)),
            sink,
            frames: 0,
        })
    }

    fn compress_frame(&mut self) -> io::Result<()> {
        self.output.clear();
        self.compressor.compress_to_buffer(&self.input, &mut self.output)?;
        self.input.clear();
        self.frames += 1;
        self.sink.write_all(&self.output)
    }

    /// Compresses what is left (an empty stream still gets its frame) and hands back the sink.
    fn finish(mut self) -> io::Result<W> {
        if !self.input.is_empty() || self.frames == 0 {
            self.compress_frame()?;
        }
        Ok(self.sink)
    }
}

impl<W: Write> Write for Frames<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(FRAME - self.input.len());
        self.input.extend_from_slice(&data[..n]);
        if self.input.len() == FRAME {
            self.compress_frame()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the encoder thread ends with.
struct Encoded {
    plaintext_bytes: u64,
    plaintext_sha256: String,
    stored_bytes: u64,
    stored_sha256: String,
    cpu: EncoderCpu,
    /// The row counts, or why the stream could not be counted (reported after pg_dump's and pg_restore's
    /// verdicts: a counter that failed does not cut the dump short).
    counted: Result<Option<Counted>, FormatError>,
}

/// Runs on a blocking thread: hash, compress, encrypt, cut into parts.
fn encode(
    mut rx: mpsc::Receiver<Bytes>,
    parts: mpsc::Sender<Bytes>,
    options: &Options,
) -> Result<Encoded, PipelineError> {
    let err = PipelineError::Encode;
    let meter = Meter::new();
    let writer = PartWriter {
        buf: Vec::with_capacity(options.part_size),
        part_size: options.part_size,
        tx: parts,
        hasher: Sha256::new(),
        bytes: 0,
        meter: meter.clone(),
    };
    let sealed = if options.recipients.is_empty() {
        Sealed::Plain(writer)
    } else {
        let encryptor = age::Encryptor::with_recipients(options.recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(PipelineError::Age)?;
        Sealed::Age(encryptor.wrap_output(writer).map_err(err)?, meter.clone())
    };
    let mut zstd = Frames::new(sealed, options).map_err(err)?;

    let mut plain = Sha256::new();
    let mut plain_bytes = 0u64;
    let mut counter = options.count_rows.then(RowCounter::new);
    while let Some(chunk) = rx.blocking_recv() {
        if let Some(counter) = counter.as_mut() {
            meter.stage(Stage::RowCounts, || counter.push(chunk.clone()));
        }
        meter.stage(Stage::Hashing, || plain.update(&chunk));
        plain_bytes += chunk.len() as u64;
        meter
            .stage(Stage::Compression, || zstd.write_all(&chunk))
            .map_err(err)?;
    }
    let sealed = meter.stage(Stage::Compression, || zstd.finish()).map_err(err)?;
    let writer = sealed.finish().map_err(err)?;
    let (stored_bytes, stored_sha256) = meter.stage(Stage::Upload, || writer.finish()).map_err(err)?;
    let counted = match counter {
        Some(counter) => meter
            .stage(Stage::RowCounts, || counter.finish_with_catalog())
            .map(Some),
        None => Ok(None),
    };
    Ok(Encoded {
        plaintext_bytes: plain_bytes,
        plaintext_sha256: hex(&plain.finalize()),
        stored_bytes,
        stored_sha256,
        cpu: EncoderCpu::read(&meter),
        counted,
    })
}

async fn upload_parts(
    mut rx: mpsc::Receiver<Bytes>,
    sink: &impl PartSink,
    in_flight: usize,
    max_parts: i32,
    cpu: &cpu::Counter,
) -> Result<Vec<UploadedPart>, PipelineError> {
    let mut running = FuturesUnordered::new();
    let mut done = Vec::new();
    let mut next = 1i32;
    loop {
        // Take a new part only while there is room; otherwise wait for one in flight to finish.
        if running.len() < in_flight.max(1) {
            match rx.recv().await {
                Some(_) if next > max_parts => return Err(PipelineError::TooManyParts(max_parts)),
                Some(body) => {
                    let number = next;
                    next += 1;
                    running.push(cpu::timed(
                        cpu,
                        async move { (number, sink.upload(number, body).await) },
                    ));
                    continue;
                }
                None => break,
            }
        }
        if let Some((number, result)) = running.next().await {
            done.push(UploadedPart {
                number,
                etag: result.map_err(|message| PipelineError::Upload { part: number, message })?,
            });
        }
    }
    while let Some((number, result)) = running.next().await {
        done.push(UploadedPart {
            number,
            etag: result.map_err(|message| PipelineError::Upload { part: number, message })?,
        });
    }
    done.sort_by_key(|p| p.number);
    Ok(done)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<(i32, Bytes)>>);

    impl PartSink for Collect {
        async fn upload(&self, number: i32, body: Bytes) -> Result<String, PartError> {
            self.0.lock().map_err(|e| e.to_string())?.push((number, body));
            Ok(format!("etag-{number}"))
        }
    }

    struct Failing;

    impl PartSink for Failing {
        async fn upload(&self, number: i32, _body: Bytes) -> Result<String, PartError> {
            if number == 2 {
                Err("SlowDown: reduce your request rate".into())
            } else {
                Ok("e".into())
            }
        }
    }

    fn shell(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    fn options(recipients: Vec<age::x25519::Recipient>) -> Options {
        Options {
            zstd_level: 3,
            zstd_workers: 2,
            recipients,
            part_size: 64 * 1024,
            parts_in_flight: 3,
            max_parts: 10_000,
            count_rows: false,
        }
    }

    #[test]
    fn a_stream_longer_than_a_frame_is_several_checksummed_frames_that_decode_as_one() {
        // Text that compresses, but not to nothing: 2.5 frames of numbered lines.
        let mut plain = Vec::new();
        let mut i = 0u64;
        while plain.len() < FRAME * 5 / 2 {
            plain.extend_from_slice(format!("{i}\t{}\n", i.wrapping_mul(2_654_435_761) % 1_000_003).as_bytes());
            i += 1;
        }
        let mut frames = Frames::new(Vec::new(), &options(Vec::new())).unwrap();
        for piece in plain.chunks(100_000) {
            frames.write_all(piece).unwrap();
        }
        assert_eq!(frames.frames, 2, "two whole frames before the end");
        let stored = frames.finish().unwrap();
        assert_eq!(zstd::stream::decode_all(&stored[..]).unwrap(), plain);
        // Three frames, each closed by its checksum: a flipped byte anywhere fails the decode.
        let mut corrupt = stored.clone();
        let at = corrupt.len() / 2;
        corrupt[at] ^= 0x40;
        assert!(zstd::stream::decode_all(&corrupt[..]).map_or(true, |d| d != plain));

        let empty = Frames::new(Vec::new(), &options(Vec::new())).unwrap().finish().unwrap();
        assert!(!empty.is_empty(), "an empty stream still gets a frame");
        assert!(zstd::stream::decode_all(&empty[..]).unwrap().is_empty());
    }

    /// Stands in for pg_dump: 1 MiB of pseudo-random-ish text.
    const PRODUCER: &str = "i=0; while [ $i -lt 4096 ]; do printf '%0256d' $i; i=$((i+1)); done";

    #[tokio::test]
    async fn round_trips_through_zstd_and_age_with_parts_in_order() {
        let identity = age::x25519::Identity::generate();
        let sink = Collect(Mutex::new(Vec::new()));
        let dump = spawn(shell(PRODUCER), false).unwrap();
        let verify = spawn(shell("cat > /dev/null"), true).unwrap();
        let out = run(dump, verify, &sink, &options(vec![identity.to_public()]))
            .await
            .unwrap();

        assert_eq!(out.plaintext_bytes, 4096 * 256);
        let mut parts = sink.0.into_inner().unwrap();
        parts.sort_by_key(|p| p.0);
        assert_eq!(parts.len(), out.parts.len());
        assert!(
            parts[..parts.len() - 1].iter().all(|p| p.1.len() == 64 * 1024),
            "every part but the last is full"
        );
        let stored: Vec<u8> = parts.iter().flat_map(|p| p.1.to_vec()).collect();
        assert_eq!(stored.len() as u64, out.stored_bytes);
        assert_eq!(hex(&Sha256::digest(&stored)), out.stored_sha256);

        let decryptor = age::Decryptor::new(&stored[..]).unwrap();
        let reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .unwrap();
        let plain = zstd::stream::decode_all(reader).unwrap();
        assert_eq!(plain.len() as u64, out.plaintext_bytes);
        assert_eq!(hex(&Sha256::digest(&plain)), out.plaintext_sha256);
        assert!(plain.starts_with(format!("{:0256}", 0).as_bytes()));

        // Every in-process stage that ran was charged some CPU (zstd workers run on their own threads: other).
        let cpu = out.cpu;
        assert!(cpu.hashing > 0.0 && cpu.encryption > 0.0 && cpu.upload > 0.0, "{cpu:?}");
        assert!(
            cpu.other >= 0.0 && cpu.pg_dump >= 0.0 && cpu.pg_restore >= 0.0,
            "{cpu:?}"
        );
    }

    #[tokio::test]
    async fn pg_restore_is_fed_every_byte_the_encoder_gets_in_order() {
        // Several MiB in writes of odd sizes, more than both widened pipes hold: the reader waits on pg_restore
        // and on pg_dump in turn, and every byte duplicated into one must be the byte read for the other.
        let seen = std::env::temp_dir().join(format!("lifeboat-pipeline-fed-{}", std::process::id()));
        let sink = Collect(Mutex::new(Vec::new()));
        let dump = spawn(shell("head -c 6000000 /dev/urandom | dd bs=4093 2>/dev/null"), false).unwrap();
        let verify = spawn(shell(&format!("sleep 0.2; cat > '{}'", seen.display())), true).unwrap();
        let out = run(dump, verify, &sink, &options(vec![])).await.unwrap();

        let fed = std::fs::read(&seen).unwrap();
        std::fs::remove_file(&seen).unwrap();
        assert_eq!(out.plaintext_bytes, 6_000_000);
        assert_eq!(fed.len(), 6_000_000);
        assert_eq!(hex(&Sha256::digest(&fed)), out.plaintext_sha256);
    }

    #[tokio::test]
    async fn what_pg_restore_leaves_unread_after_accepting_the_archive_is_still_stored() {
        // pg_restore stops reading after the archive's last entry; the bytes after it are pg_dump's all the same.
        let sink = Collect(Mutex::new(Vec::new()));
        let dump = spawn(shell("head -c 6000000 /dev/urandom"), false).unwrap();
        let verify = spawn(shell("head -c 1000 > /dev/null"), true).unwrap();
        let out = run(dump, verify, &sink, &options(vec![])).await.unwrap();
        assert_eq!(out.plaintext_bytes, 6_000_000);
        let mut parts = sink.0.into_inner().unwrap();
        parts.sort_by_key(|p| p.0);
        let stored: Vec<u8> = parts.iter().flat_map(|p| p.1.to_vec()).collect();
        assert_eq!(zstd::stream::decode_all(&stored[..]).unwrap().len(), 6_000_000);
    }

    #[tokio::test]
    async fn a_rejected_archive_stops_the_dump_without_reading_it_to_the_end() {
        // An endless pg_dump: the pipeline ends only because pg_restore's failure stops the reader.
        let sink = Collect(Mutex::new(Vec::new()));
        let dump = spawn(shell("cat /dev/zero"), false).unwrap();
        let verify = spawn(
            shell("head -c 100000 > /dev/null; echo 'pg_restore: error: bad block' >&2; exit 1"),
            true,
        )
        .unwrap();
        let o = options(vec![]);
        let ran = tokio::time::timeout(Duration::from_secs(20), run(dump, verify, &sink, &o));
        let err = ran
            .await
            .expect("the pipeline stops after pg_restore fails")
            .unwrap_err();
        assert!(matches!(err, PipelineError::Verify { .. }), "{err}");
        assert!(err.to_string().contains("bad block"), "{err}");
    }

    #[tokio::test]
    async fn a_dump_that_dies_halfway_is_a_failure_naming_pg_dump() {
        let sink = Collect(Mutex::new(Vec::new()));
        let dump = spawn(
            shell("head -c 300000 /dev/zero; echo 'pg_dump: error: connection lost' >&2; exit 1"),
            false,
        )
        .unwrap();
        let verify = spawn(shell("cat > /dev/null"), true).unwrap();
        let err = run(dump, verify, &sink, &options(vec![])).await.unwrap_err();
        assert!(matches!(err, PipelineError::Dump { .. }), "{err}");
        assert!(err.to_string().contains("connection lost"), "{err}");
    }

    #[tokio::test]
    async fn stderr_that_is_not_utf8_keeps_its_words() {
        let sink = Collect(Mutex::new(Vec::new()));
        // Latin-1 bytes (a server or locale that is not UTF-8): the message must survive, lossily.
        let dump = spawn(
            shell("printf 'pg_dump: error: relation caf\\351 failed\\n' >&2; exit 1"),
            false,
        )
        .unwrap();
        let verify = spawn(shell("cat > /dev/null"), true).unwrap();
        let err = run(dump, verify, &sink, &options(vec![])).await.unwrap_err();
        assert!(
            err.to_string().contains("pg_dump: error: relation caf\u{fffd} failed"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_rejected_archive_is_a_verification_failure() {
        let sink = Collect(Mutex::new(Vec::new()));
        let dump = spawn(shell(PRODUCER), false).unwrap();
        let verify = spawn(shell("head -c 1000 > /dev/null; echo 'pg_restore: error: input file does not appear to be a valid archive' >&2; exit 1"), true).unwrap();
        let err = run(dump, verify, &sink, &options(vec![])).await.unwrap_err();
        assert!(
            err.to_string().contains("does not appear to be a valid archive"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_stream_that_outgrows_the_part_limit_fails_naming_it() {
        let sink = Collect(Mutex::new(Vec::new()));
        let dump = spawn(shell(PRODUCER), false).unwrap();
        let verify = spawn(shell("cat > /dev/null"), true).unwrap();
        let mut o = options(vec![]);
        o.part_size = 1024;
        o.max_parts = 2;
        let err = run(dump, verify, &sink, &o).await.unwrap_err();
        assert!(
            err.to_string().contains("needs more than 2 parts (S3's limit)"),
            "{err}"
        );
        assert!(sink.0.into_inner().unwrap().len() <= 2);
    }

    #[tokio::test]
    async fn a_stream_the_row_counter_cannot_read_fails_after_the_whole_stream_went_through() {
        let sink = Collect(Mutex::new(Vec::new()));
        let dump = spawn(shell(PRODUCER), false).unwrap();
        let verify = spawn(shell("cat > /dev/null"), true).unwrap();
        let mut o = options(vec![]);
        o.count_rows = true;
        let err = run(dump, verify, &sink, &o).await.unwrap_err();
        assert!(matches!(err, PipelineError::Count(_)), "{err}");
        assert!(err.to_string().contains("not a pg_dump archive"), "{err}");
        // The counter's failure did not cut the dump short: every byte reached the uploader.
        let stored: usize = sink.0.into_inner().unwrap().iter().map(|p| p.1.len()).sum();
        assert!(stored > 0);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_pipes_to_pg_dump_and_pg_restore_are_widened() {
        let mut dump = spawn(shell("sleep 5"), false).unwrap();
        let stdout = dump.stdout.take().unwrap();
        assert_eq!(rustix::pipe::fcntl_getpipe_size(&stdout).unwrap(), 64 * 1024);
        widen_pipe(&stdout);
        assert_eq!(rustix::pipe::fcntl_getpipe_size(&stdout).unwrap(), PIPE_SIZE);
        dump.kill().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_part_fails_the_pipeline() {
        let dump = spawn(shell(PRODUCER), false).unwrap();
        let verify = spawn(shell("cat > /dev/null"), true).unwrap();
        let mut o = options(vec![]);
        o.zstd_level = 1;
        // Level 1 on zero-padded numbers compresses well; small parts make sure there are at least two.
        o.part_size = 1024;
        let err = run(dump, verify, &Failing, &o).await.unwrap_err();
        assert!(err.to_string().contains("uploading part 2 failed: SlowDown"), "{err}");
    }
}
