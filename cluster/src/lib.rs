//! ringlog's cluster logic as sans-I/O state machines.
//!
//! Nothing here opens a socket or a file or reads a clock: every input (a
//! message, a completed write, the time) is passed in, and every effect (a
//! message to send, a truncation to perform, an acknowledgement) comes out as
//! a value. The broker's shards drive these machines in production; the
//! deterministic simulator in `tests/sim` drives them in tests with virtual
//! time and a faulty network. `docs/replication.md` describes the protocol and
//! the invariants the simulator checks.
//!
//! - [`controller`]: the cluster metadata (brokers, broker epochs, partitions,
//!   leaders, leader epochs, ISR) as a deterministic state machine, the part
//!   the controller quorum replicates, and the controller's broker liveness.
//! - [`replica`]: one partition's replica on one broker: the leader's ISR and
//!   high watermark, the follower's fetch and truncation.
//! - [`lease`]: a broker's right to act as leader, kept by heartbeats.

pub mod controller;
pub mod lease;
pub mod replica;

use std::fmt;

/// A broker's node id, unique in the cluster.
pub type BrokerId = u32;

/// Milliseconds on a monotonic clock (virtual in the simulator).
pub type Millis = u64;

/// A partition of a topic.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's index in the topic.
    pub partition: u32,
}

impl TopicPartition {
    /// A partition of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A partition's replication state as the controller last committed it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    /// Every broker holding a replica, in preference order.
    pub replicas: Vec<BrokerId>,
    /// The leader, if any replica in the ISR is alive.
    pub leader: Option<BrokerId>,
    /// Raised with every change of leader (including to none).
    pub leader_epoch: i32,
    /// Raised with every change of this record: the version an ISR change
    /// must name, so that two changes never race.
    pub partition_epoch: i32,
    /// The in-sync replicas, leader included.
    pub isr: Vec<BrokerId>,
    /// How many replicas must be in sync for `acks=all` and for the high
    /// watermark to advance.
    pub min_insync: usize,
}

/// Why a replication request or a produce was refused. The names and
/// meanings follow Kafka's error codes of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReplicaError {
    /// This broker does not lead the partition (or its lease expired).
    NotLeader,
    /// The request names an older leader epoch than this replica's.
    FencedLeaderEpoch,
    /// The request names a newer leader epoch than this replica knows.
    UnknownLeaderEpoch,
    /// Fewer replicas in sync than `min.insync.replicas`.
    NotEnoughReplicas,
    /// The ISR fell below `min.insync.replicas` after the batch was
    /// appended: the batch may or may not become committed.
    NotEnoughReplicasAfterAppend,
    /// The fetching broker holds no replica of the partition.
    NotReplica,
    /// The request comes from an older incarnation of the fetching broker,
    /// or is older than one already answered.
    StaleRequest,
}

impl fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotLeader => "not_leader",
            Self::FencedLeaderEpoch => "fenced_leader_epoch",
            Self::UnknownLeaderEpoch => "unknown_leader_epoch",
            Self::NotEnoughReplicas => "not_enough_replicas",
            Self::NotEnoughReplicasAfterAppend => "not_enough_replicas_after_append",
            Self::NotReplica => "not_replica",
            Self::StaleRequest => "stale_request",
        })
    }
}

impl std::error::Error for ReplicaError {}
