//! The `export` function: `pg_dump` streamed through SHA-256, zstd and age into an S3 multipart upload, the
//! same stream parsed by `pg_restore`, and a manifest written last.
//!
//! Never completes an upload that is not verified; never writes a manifest for an incomplete export; never
//! holds a key that can decrypt what it wrote (age encrypts to public keys only).

#![warn(clippy::too_many_lines)]

pub mod batch;
pub mod caches;
pub mod cpu;
pub mod deps;
pub mod error;
pub mod event;
pub mod handler;
pub mod hold;
pub mod job;
pub mod pipeline;
pub mod plan;
pub mod s3;
pub mod settings;

pub use deps::Deps;
pub use error::ExportError;
pub use handler::{handle, invoke, Summary};
