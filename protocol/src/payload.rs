//! Control and metadata payloads: rkyv archives, validated when read.

use rkyv::{Archive, Deserialize, Serialize};

use crate::{ApiKey, DecodeError};

/// A payload carried as an rkyv archive.
pub trait Payload: Sized {
    /// The archive bytes.
    fn encode(&self) -> Vec<u8>;
    /// Validates an archive (every pointer and length checked against the
    /// bytes) and reads it.
    fn decode(api: ApiKey, bytes: &[u8]) -> Result<Self, DecodeError>;
}

macro_rules! rkyv_payload {
    ($($t:ty),* $(,)?) => {$(
        impl Payload for $t {
            fn encode(&self) -> Vec<u8> {
                match rkyv::to_bytes::<rkyv::rancor::Error>(self) {
                    Ok(bytes) => bytes.to_vec(),
                    // Serializing owned strings and vectors into a growable
                    // buffer has no failure path short of allocation failure.
                    Err(e) => unreachable!("rkyv serialization failed: {e}"),
                }
            }

            fn decode(api: ApiKey, bytes: &[u8]) -> Result<Self, DecodeError> {
                // Validation needs the archive aligned; frames put it anywhere.
                let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
                aligned.extend_from_slice(bytes);
                rkyv::from_bytes::<$t, rkyv::rancor::Error>(&aligned).map_err(|e| {
                    DecodeError::Malformed { api: api.name(), reason: e.to_string() }
                })
            }
        }
    )*};
}

rkyv_payload!(
    FetchRequest,
    ListOffsetsRequest,
    ListOffsetsResponse,
    MetadataRequest,
    MetadataResponse,
    CreateTopicRequest,
    DeleteTopicRequest,
    ListTopicsResponse,
    CommitOffsetsRequest,
    CommitOffsetsResponse,
    FetchOffsetsRequest,
    FetchOffsetsResponse,
    InitProducerIdResponse,
    ProduceResponse,
    GroupHeartbeatRequest,
    GroupHeartbeatResponse,
    ListGroupsResponse,
    DescribeGroupRequest,
    DescribeGroupResponse,
    DescribeClusterResponse,
    AddPartitionsRequest,
    AlterTopicConfigRequest,
    ProduceIfRequest,
    ProduceIfResponse,
);

/// A broker as the cluster metadata knows it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClusterBroker {
    /// Node id.
    pub id: u32,
    /// Where clients reach it.
    pub address: String,
    /// Its broker epoch (raised by every registration and fencing).
    pub epoch: u64,
    /// Fenced: silent past the session timeout, leading nothing.
    pub fenced: bool,
}

/// A partition's replicas as the cluster metadata knows them.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClusterPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Leader, if any replica in the ISR is alive.
    pub leader: Option<u32>,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Every replica.
    pub replicas: Vec<u32>,
    /// The in-sync replicas.
    pub isr: Vec<u32>,
    /// The high watermark, if the broker asked leads the partition.
    pub high_watermark: Option<u64>,
}

/// Describe-cluster response.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DescribeClusterResponse {
    /// False for a broker running alone (the rest is then empty).
    pub cluster_mode: bool,
    /// The broker that answered.
    pub node_id: u32,
    /// The active controller, if known.
    pub controller: Option<u32>,
    /// Every registered broker.
    pub brokers: Vec<ClusterBroker>,
    /// Every replicated partition.
    pub partitions: Vec<ClusterPartition>,
}

/// One partition to fetch from.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// First offset wanted.
    pub offset: u64,
    /// Most bytes for this partition (at least one whole batch is returned).
    pub max_bytes: u32,
}

/// Fetch request: read stored batches, waiting up to `max_wait_ms` until at
/// least `min_bytes` are available.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Longest the broker holds the request while too little data exists.
    pub max_wait_ms: u32,
    /// Bytes that make the broker answer before `max_wait_ms`.
    pub min_bytes: u32,
    /// Most bytes in the whole response.
    pub max_bytes: u32,
    /// Partitions, answered in this order.
    pub partitions: Vec<FetchPartition>,
}

/// One partition's offset question.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// [`crate::EARLIEST`], [`crate::LATEST`], or a timestamp in ms: the first
    /// offset whose record timestamp is at least this.
    pub spec: i64,
}

/// List offsets request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsRequest {
    /// Partitions, answered in this order.
    pub partitions: Vec<ListOffsetsPartition>,
}

/// One partition's answer.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsResult {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// [`crate::ErrorCode`] as u16.
    pub error: u16,
    /// The offset, or -1 when no record is at or after the timestamp.
    pub offset: i64,
}

/// List offsets response.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsResponse {
    /// One result per requested partition, in request order.
    pub partitions: Vec<ListOffsetsResult>,
}

/// Metadata request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MetadataRequest {
    /// Topics to describe; `None` for all.
    pub topics: Option<Vec<String>>,
}

/// A broker of the cluster.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    /// Broker id.
    pub id: u32,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: u16,
    /// Shards (cores) serving it.
    pub shards: u32,
}

/// A partition's placement and offsets.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: u32,
    /// Leader broker id.
    pub leader: u32,
    /// Shard of the leader that owns it.
    pub shard: u32,
    /// First offset still stored.
    pub log_start: u64,
    /// Offset the next record will get.
    pub log_end: u64,
}

/// A topic's settings as the broker applies them.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Partition count.
    pub partitions: u32,
    /// Time retention in ms; -1 keeps data forever.
    pub retention_ms: i64,
    /// Size retention per partition in bytes; -1 for none.
    pub retention_bytes: i64,
    /// Segment size in bytes.
    pub segment_bytes: u64,
    /// `always`, `never` or `interval:MS`.
    pub fsync: String,
    /// Kafka's `cleanup.policy`: `delete`, `compact` or `compact,delete`.
    pub cleanup_policy: String,
    /// How long a compacted topic keeps tombstones, in ms.
    pub delete_retention_ms: i64,
    /// Records checked against the schema registry: `none`, `id` or
    /// `payload`.
    pub schema_validation: String,
}

/// A topic, its settings and its partitions.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Settings.
    pub config: TopicConfig,
    /// Every partition, by index.
    pub partitions: Vec<PartitionMetadata>,
}

/// Metadata response.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MetadataResponse {
    /// Cluster id (stable for a data directory).
    pub cluster_id: String,
    /// Every broker.
    pub brokers: Vec<BrokerMetadata>,
    /// The requested topics.
    pub topics: Vec<TopicMetadata>,
}

/// Create topic request; `None` settings take the broker's defaults.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateTopicRequest {
    /// Topic name: 1 to 249 of `[a-zA-Z0-9._-]`, not starting with `__`.
    pub name: String,
    /// Partition count (1 to 10000); `None` asks for the broker's default.
    /// Never 0 for "default": a count the user typed is never changed.
    pub partitions: Option<u32>,
    /// Time retention in ms, -1 for forever.
    pub retention_ms: Option<i64>,
    /// Size retention per partition, -1 for none.
    pub retention_bytes: Option<i64>,
    /// Segment size in bytes.
    pub segment_bytes: Option<u64>,
    /// `always`, `never` or `interval:MS`.
    pub fsync: Option<String>,
    /// Replicas per partition (cluster mode; a broker alone holds one).
    pub replication_factor: Option<u32>,
    /// Replicas that must be in sync for `acks=all` (cluster mode).
    pub min_insync_replicas: Option<u32>,
    /// `delete` (the default), `compact` or `compact,delete`.
    pub cleanup_policy: Option<String>,
    /// How long a compacted topic keeps tombstones, in ms.
    pub delete_retention_ms: Option<i64>,
    /// `none` (the default), `id` (records carry the wire format and an id
    /// registered under the topic's subject) or `payload` (and decode).
    pub schema_validation: Option<String>,
}

/// Add partitions request: the topic's new, higher, partition count.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AddPartitionsRequest {
    /// Topic name.
    pub topic: String,
    /// The partition count wanted (more than the topic has).
    pub partitions: u32,
}

/// Alter topic config request: settings by their Kafka names
/// (`retention.ms`, `retention.bytes`, `cleanup.policy`,
/// `delete.retention.ms`, `ringlog.schema.validation`); answered with the
/// topic's metadata as it now is.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AlterTopicConfigRequest {
    /// Topic name.
    pub topic: String,
    /// Each setting and its new value (`None`: back to the broker's default).
    pub changes: Vec<(String, Option<String>)>,
    /// Check only; change nothing.
    pub validate_only: bool,
}

/// Conditional produce: `records` (whole batches) are stored in the
/// partition only if its log ends at `expected_end` when they arrive, and
/// acknowledged once durable (and, in a cluster, in sync as `acks=all`).
/// Otherwise nothing is stored and the answer is `end_offset_moved`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProduceIfRequest {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The log end offset the writer last saw.
    pub expected_end: u64,
    /// Longest wait for durability, in ms (0: the broker's default).
    pub timeout_ms: u32,
    /// The batches.
    pub records: Vec<u8>,
}

/// What a conditional produce stored.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProduceIfResponse {
    /// Base offset of each stored batch.
    pub base_offsets: Vec<u64>,
}

/// Delete topic request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopicRequest {
    /// Topic name.
    pub name: String,
    /// Delete even a topic whose loss costs more than its records (the
    /// schema registry's `_schemas`), which is refused otherwise.
    pub force: bool,
}

/// A topic in a listing.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
}

/// List topics response, sorted by name.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListTopicsResponse {
    /// Every topic (internal ones included, their names start with `__`).
    pub topics: Vec<TopicSummary>,
}

/// A partition's committed offset.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The next offset the group will consume.
    pub offset: u64,
    /// The committer's note, stored and returned with the offset (Kafka's
    /// commit metadata); at most [`crate::COMMIT_METADATA_MAX`] bytes.
    pub metadata: String,
}

/// Commit offsets request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitOffsetsRequest {
    /// Group name.
    pub group: String,
    /// The committing member, for a subscribed consumer; empty otherwise.
    pub member_id: String,
    /// The group generation the member holds, or -1 for a standalone
    /// consumer (no membership check). A stale generation is refused.
    pub generation: i32,
    /// Offsets to store.
    pub offsets: Vec<CommitOffset>,
}

/// One partition's outcome.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PartitionError {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// [`crate::ErrorCode`] as u16.
    pub error: u16,
}

/// Commit offsets response.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommitOffsetsResponse {
    /// One outcome per committed partition, in request order.
    pub results: Vec<PartitionError>,
}

/// A topic partition.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
}

/// Fetch committed offsets request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FetchOffsetsRequest {
    /// Group name.
    pub group: String,
    /// Partitions asked about.
    pub partitions: Vec<TopicPartition>,
}

/// A partition's committed offset, or -1 if the group never committed one.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The committed offset or -1.
    pub offset: i64,
    /// The metadata committed with it (empty if none).
    pub metadata: String,
    /// [`crate::ErrorCode`] as u16.
    pub error: u16,
}

/// Fetch committed offsets response.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FetchOffsetsResponse {
    /// One answer per requested partition, in request order.
    pub offsets: Vec<CommittedOffset>,
}

/// Init producer id response.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    /// A producer id no other producer of this broker has had.
    pub producer_id: i64,
    /// The epoch to stamp in batches.
    pub producer_epoch: i16,
}

/// One partition's produce outcome.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProducePartitionResult {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// [`crate::ErrorCode`] as u16; when set, nothing of this section was stored
    /// after the batch that failed.
    pub error: u16,
    /// Human-readable detail of the error, empty on success.
    pub message: String,
    /// Base offset of each stored batch, in order (a duplicate batch of an
    /// idempotent producer reports the offset it was first stored at).
    pub base_offsets: Vec<u64>,
}

/// Produce response (none is sent for `acks=0`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProduceResponse {
    /// One result per partition section, in request order.
    pub partitions: Vec<ProducePartitionResult>,
}

/// A consumer group member's heartbeat: joins (empty `member_id`), keeps
/// the membership alive, reports what the member owns, and receives its
/// assignment. The broker computes assignments with the named assignor.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupHeartbeatRequest {
    /// Group name.
    pub group: String,
    /// Member id from an earlier response; empty to join.
    pub member_id: String,
    /// Topics the member subscribes to.
    pub topics: Vec<String>,
    /// `range`, `roundrobin` or `sticky`.
    pub assignor: String,
    /// Silence after which the broker evicts the member.
    pub session_timeout_ms: u32,
    /// Partitions the member holds now (it has let go of anything else).
    pub owned: Vec<TopicPartition>,
    /// Leave the group.
    pub leave: bool,
}

/// The member's identity, the group generation and what it may consume.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupHeartbeatResponse {
    /// The member id to use from now on.
    pub member_id: String,
    /// Group generation; commits must carry it.
    pub generation: i32,
    /// Partitions the member may consume. A partition moving from another
    /// member is given only once that member no longer reports owning it.
    pub assignment: Vec<TopicPartition>,
    /// When to heartbeat next (sooner while partitions are still moving).
    pub heartbeat_interval_ms: u32,
}

/// Groups known to the broker.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ListGroupsResponse {
    /// Group names, sorted.
    pub groups: Vec<String>,
}

/// Describe group request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroupRequest {
    /// Group name.
    pub group: String,
}

/// A member as the coordinator sees it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// What it was last given.
    pub assignment: Vec<TopicPartition>,
}

/// A group's members, assignments and committed offsets.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroupResponse {
    /// Group name.
    pub group: String,
    /// Current generation (0 if it has no members).
    pub generation: i32,
    /// Assignor in use.
    pub assignor: String,
    /// Members, by id.
    pub members: Vec<GroupMember>,
    /// Every committed offset of the group.
    pub offsets: Vec<CommitOffset>,
}
