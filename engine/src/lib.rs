//! ringlog-engine: the storage engine.
//!
//! A partition is a directory of segments holding Kafka RecordBatch v2 bytes
//! exactly as producers sent them. The format itself ([`batch`]) lives in
//! `ringlog-format`, which has no I/O; this crate owns its storage:
//! the sparse indexes ([`index`]), the partition log ([`log`]), crash recovery
//! ([`recovery`], [`checkpoint`]) and retention ([`retention`]). It knows
//! nothing of sockets, shards or replication. Format, index, recovery and
//! retention logic are pure functions over bytes; `io` is the only module
//! that touches files, through io_uring (tokio-uring) with owned buffers, and
//! `segment` is the shell that joins the two.
//!
//! The on-disk format is described byte by byte in `engine/FORMAT.md`.

pub mod checkpoint;
pub mod compact;
mod direct;
pub mod epochs;
mod error;
pub mod files;
mod flush;
pub mod index;
mod io;
pub mod log;
pub mod recovery;
pub mod retention;
mod segment;

/// The record format, re-exported: the engine stores exactly these batches.
pub use ringlog_format::batch;

pub use error::Error;

/// A buffer an append can stamp in place and hand to io_uring: a `Vec<u8>`,
/// or (with tokio-uring's `bytes` feature) a `BytesMut` split off the frame
/// a batch arrived in, so the received bytes are the written bytes.
pub trait BatchBuf: tokio_uring::buf::IoBuf + std::ops::DerefMut<Target = [u8]> {}

impl<T: tokio_uring::buf::IoBuf + std::ops::DerefMut<Target = [u8]>> BatchBuf for T {}
pub use compact::{CleanOptions, CleanReport, Compaction};
pub use flush::{Durable, FsyncPolicy};
pub use log::{Appended, Log, LogConfig, RecoveryReport, RetentionReport, WriteMode};
pub use segment::{FileRange, Repair, Stored};
