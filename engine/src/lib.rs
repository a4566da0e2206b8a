//! ringlog-engine: the storage engine.
//!
//! A partition is a directory of segments holding Kafka RecordBatch v2 bytes
//! exactly as producers sent them. This crate owns that format
//! ([`batch`]), the sparse indexes ([`index`]), the partition log ([`log`]),
//! crash recovery ([`recovery`]) and retention ([`retention`]). It knows nothing
//! of sockets, shards or replication. Format and index logic are pure
//! functions over bytes; [`io`] is the only module that touches files, through
//! io_uring (tokio-uring) with owned buffers.

pub mod batch;
pub mod checkpoint;
pub mod index;
pub mod recovery;
mod varint;
