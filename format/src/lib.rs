//! ringlog-format: Kafka RecordBatch v2, the one implementation of the record
//! format in ringlog.
//!
//! The engine stores these bytes, the protocol carries them and the client
//! builds and reads them, so this crate has no I/O dependency at all: it
//! builds and runs wherever a client application does (no io_uring, no
//! runtime). Every byte is described in `engine/FORMAT.md`.

pub mod batch;
#[cfg(feature = "decompress")]
pub mod compression;
mod varint;
