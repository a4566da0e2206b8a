//! Cluster mode's I/O: certificates and the QUIC endpoint brokers share for
//! controller traffic and replication. The decisions themselves (ISR, high
//! watermark, epochs, elections) are `ringlog-cluster`'s sans-I/O machines;
//! see `docs/replication.md`.

pub mod agent;
pub mod certs;
pub mod quic;
pub mod raft;
pub mod replication;
