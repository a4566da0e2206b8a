//! ringlog-server: the broker.
//!
//! One pinned thread per shard, each running its own tokio-uring runtime and
//! owning a share of the partitions outright ([`shard`]). Every shard
//! accepts client connections on the same ports ([`shard_thread`]), through
//! two front doors, the native protocol ([`native`]) and Kafka's
//! ([`kafka`]), which only decode, call the broker's operations ([`ops`])
//! and encode; a request for a
//! partition another shard owns crosses over a bounded per-pair queue with
//! the very buffer it arrived in. `server/README.md` follows a produce and a
//! fetch through the shards and counts the copies of the record bytes.

pub mod assignor;
pub mod catalog;
pub mod classic_group;
pub mod cluster;
pub mod config;
pub mod fdlimit;
pub mod group;
pub mod kafka;
pub mod metrics;
pub mod native;
pub mod net;
pub mod ops;
pub mod partition;
pub mod producer_state;
pub mod server;
pub mod shard;
pub mod shard_thread;
pub mod testing;
