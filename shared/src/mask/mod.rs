//! Masking personal data on its way from a verified export into a staging database: the rules a team writes
//! (per column: keep, null, a constant, redact, a deterministic fake, a keyed hash, an SQL expression), their
//! check against the export's catalogue before anything is written, and the rewriter that masks the archive's
//! COPY data as it streams into pg_restore.
//!
//! ```text
//! rules     the plan document's `refresh` rules and their masking, checked against a manifest's catalogue
//! rewrite   the custom-format archive in, the same archive with masked rows out, and the leak check (feature
//!           `archive`)
//! fake      what each rule makes of a value, from HMAC-SHA-256 under the masking key; the leak check's digests
//! copy_text COPY text fields decoded and encoded as COPY reads them
//! words     the fakes' word lists (written for Lifeboat) and the longest value each fake makes
//! ```
//!
//! Owns: what a rule means, and the proof that a masked column holds no value of the source (keyed hashes of
//! both sides, compared in memory; never a source value kept or printed).
//! Uses: postgres (the archive's format, the stream's rewrite hook), bucket (the manifest's catalogue), core.
//! Never: reads AWS, connects to a database, or writes an unmasked value anywhere (a file, a log line, an error).

#[cfg(feature = "archive")]
mod copy_text;
#[cfg(feature = "archive")]
mod fake;
#[cfg(feature = "archive")]
pub mod rewrite;
pub mod rules;
mod words;
