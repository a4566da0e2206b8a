//! The ringlog wire protocol, shared by the broker and every client.
//!
//! A connection carries length-prefixed frames. Every frame starts with a
//! fixed header (a `zerocopy` struct, big-endian); a request's header names
//! its API and a request id that the response repeats, so a client can
//! pipeline. Control and metadata payloads are validated `rkyv` archives;
//! produce and fetch carry Kafka v2 record batches verbatim behind small
//! fixed headers, so the bytes a producer sends are the bytes stored and the
//! bytes stored are the bytes a consumer receives. `docs/protocol.md` is the
//! byte-level specification.

use std::ops::Range;

use zerocopy::byteorder::big_endian::{I16, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

mod error;
mod payload;

pub use error::ErrorCode;
pub use payload::*;

/// Bytes of a request or response header, length field included.
pub const HEADER_LEN: usize = 16;

/// Default largest frame (length field excluded) a peer accepts.
pub const MAX_FRAME_BYTES_DEFAULT: u32 = 16 * 1024 * 1024;

/// `ListOffsets` spec asking for the log start offset.
pub const EARLIEST: i64 = -2;
/// `ListOffsets` spec asking for the log end offset.
pub const LATEST: i64 = -1;

/// The internal topic holding committed offsets; its partition's leader
/// coordinates the groups that hash to it.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Its partition count: groups are spread over these by name.
pub const OFFSETS_PARTITIONS: u32 = 4;
/// The most bytes of metadata a commit may carry (Kafka's default
/// `offset.metadata.max.bytes`).
pub const COMMIT_METADATA_MAX: usize = 4096;

/// FNV-1a 64 of a name: spreads topics over shards and groups over
/// offsets partitions, the same on brokers and clients.
pub fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The partition of [`OFFSETS_TOPIC`] that keeps `group`'s offsets (its
/// leader is the group's coordinator).
pub fn offsets_partition(group: &str) -> u32 {
    (name_hash(group) % u64::from(OFFSETS_PARTITIONS)) as u32
}

/// Fixed header of every request frame.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RequestHeader {
    /// Bytes after this field: the rest of the header and the payload.
    pub length: U32,
    /// Which API ([`ApiKey`]).
    pub api_key: U16,
    /// Version of that API's payload; 0 for every API today.
    pub api_version: U16,
    /// Chosen by the client, repeated in the response.
    pub request_id: U64,
}

/// Fixed header of every response frame.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResponseHeader {
    /// Bytes after this field: the rest of the header and the payload.
    pub length: U32,
    /// The request id of the request this answers.
    pub request_id: U64,
    /// The API of that request (or 0 if the request could not be read).
    pub api_key: U16,
    /// [`ErrorCode`] of the whole request; when not 0 the payload is a UTF-8
    /// message instead of the API's response.
    pub error: U16,
}

/// Fixed part of a produce request's payload.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ProduceHeader {
    /// 0: no response is sent; 1: answered once the leader stored the
    /// batches under the topic's fsync policy; -1 (all): needs replication.
    pub acks: I16,
    /// Reserved, zero.
    pub reserved: U16,
    /// How long the broker may wait for durability before answering Timeout.
    pub timeout_ms: U32,
    /// Partition sections that follow.
    pub partitions: U32,
}

/// Header of one partition's section in a produce request, followed by the
/// topic name and then `bytes` of concatenated record batches.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ProducePartitionHeader {
    /// Length of the UTF-8 topic name that follows.
    pub topic_len: U16,
    /// Partition index.
    pub partition: U32,
    /// Bytes of record batches after the topic name.
    pub bytes: U32,
}

/// Fixed part of a fetch response's payload.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FetchResponseHeader {
    /// Partition sections that follow.
    pub partitions: U32,
}

/// Header of one partition's section in a fetch response, followed by the
/// topic name and `bytes` of stored record batches.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FetchPartitionHeader {
    /// Length of the UTF-8 topic name that follows.
    pub topic_len: U16,
    /// [`ErrorCode`] for this partition.
    pub error: U16,
    /// Partition index.
    pub partition: U32,
    /// First offset still in the log.
    pub log_start: U64,
    /// Offset the next record will get (the high watermark).
    pub log_end: U64,
    /// Bytes of record batches after the topic name.
    pub bytes: U32,
}

/// The APIs, by the key in [`RequestHeader::api_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ApiKey {
    /// Append batches to partitions.
    Produce = 1,
    /// Read stored batches from partitions, with long polling.
    Fetch = 2,
    /// Earliest, latest or by-timestamp offsets.
    ListOffsets = 3,
    /// Brokers, topics, partitions, leaders and offsets.
    Metadata = 4,
    /// Create a topic.
    CreateTopic = 5,
    /// Delete a topic and its data.
    DeleteTopic = 6,
    /// Names and partition counts of every topic.
    ListTopics = 7,
    /// Store a group's committed offsets.
    CommitOffsets = 8,
    /// Read a group's committed offsets.
    FetchOffsets = 9,
    /// Obtain a producer id for idempotent produce.
    InitProducerId = 10,
    /// Join, stay in, or leave a consumer group; receive an assignment.
    GroupHeartbeat = 11,
    /// Names of the consumer groups.
    ListGroups = 12,
    /// Members, assignments and offsets of a group.
    DescribeGroup = 13,
    /// Cluster mode's brokers, controller and replica placement.
    DescribeCluster = 14,
    /// Raise a topic's partition count.
    AddPartitions = 15,
    /// Append to one partition only if its log ends where the writer
    /// expects (compare-and-append, for state kept in a topic).
    ProduceIf = 16,
    /// Change a topic's settings (retention, cleanup policy, schema
    /// validation) after its creation.
    AlterTopicConfig = 17,
}

impl ApiKey {
    /// Every API, in key order.
    pub const ALL: [ApiKey; 17] = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::CreateTopic,
        ApiKey::DeleteTopic,
        ApiKey::ListTopics,
        ApiKey::CommitOffsets,
        ApiKey::FetchOffsets,
        ApiKey::InitProducerId,
        ApiKey::GroupHeartbeat,
        ApiKey::ListGroups,
        ApiKey::DescribeGroup,
        ApiKey::DescribeCluster,
        ApiKey::AddPartitions,
        ApiKey::ProduceIf,
        ApiKey::AlterTopicConfig,
    ];

    /// The API for a wire key, if there is one.
    pub fn from_u16(key: u16) -> Option<ApiKey> {
        Self::ALL.into_iter().find(|k| *k as u16 == key)
    }

    /// Lower-case name, for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            ApiKey::Produce => "produce",
            ApiKey::Fetch => "fetch",
            ApiKey::ListOffsets => "list_offsets",
            ApiKey::Metadata => "metadata",
            ApiKey::CreateTopic => "create_topic",
            ApiKey::DeleteTopic => "delete_topic",
            ApiKey::ListTopics => "list_topics",
            ApiKey::CommitOffsets => "commit_offsets",
            ApiKey::FetchOffsets => "fetch_offsets",
            ApiKey::InitProducerId => "init_producer_id",
            ApiKey::GroupHeartbeat => "group_heartbeat",
            ApiKey::ListGroups => "list_groups",
            ApiKey::DescribeGroup => "describe_group",
            ApiKey::DescribeCluster => "describe_cluster",
            ApiKey::AddPartitions => "add_partitions",
            ApiKey::ProduceIf => "produce_if",
            ApiKey::AlterTopicConfig => "alter_topic_config",
        }
    }
}

/// Why bytes could not be read as a frame or payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame length is smaller than the header or larger than allowed.
    #[error("frame length {length} is outside {min}..={max}")]
    FrameLength {
        /// Length announced by the frame.
        length: u32,
        /// Smallest valid length.
        min: u32,
        /// Largest accepted length.
        max: u32,
    },
    /// The header names no known API.
    #[error("unknown API key {0}")]
    UnknownApi(u16),
    /// The API exists but not in this version.
    #[error("unsupported version {version} of API {api}")]
    UnsupportedVersion {
        /// API name.
        api: &'static str,
        /// Version asked for.
        version: u16,
    },
    /// The payload does not have the API's layout.
    #[error("malformed {api} payload: {reason}")]
    Malformed {
        /// API name.
        api: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl DecodeError {
    /// The error code this is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameLength { .. } => ErrorCode::FrameTooLarge,
            DecodeError::UnknownApi(_) | DecodeError::UnsupportedVersion { .. } => {
                ErrorCode::UnsupportedApi
            }
            DecodeError::Malformed { .. } => ErrorCode::MalformedRequest,
        }
    }
}

/// Checks a frame's announced length against the header size and `max`,
/// before any buffer is allocated for it.
pub fn check_frame_length(length: u32, max: u32) -> Result<(), DecodeError> {
    let min = (HEADER_LEN - 4) as u32;
    if length < min || length > max {
        return Err(DecodeError::FrameLength { length, min, max });
    }
    Ok(())
}

/// The header of a request frame and the API it names.
pub fn parse_request_header(
    bytes: &[u8; HEADER_LEN],
) -> Result<(RequestHeader, Result<ApiKey, DecodeError>), DecodeError> {
    let header =
        RequestHeader::read_from_bytes(&bytes[..]).map_err(|_| DecodeError::Malformed {
            api: "frame",
            reason: "short header".into(),
        })?;
    let key = header.api_key.get();
    let api = match ApiKey::from_u16(key) {
        None => Err(DecodeError::UnknownApi(key)),
        Some(api) if header.api_version.get() != 0 => Err(DecodeError::UnsupportedVersion {
            api: api.name(),
            version: header.api_version.get(),
        }),
        Some(api) => Ok(api),
    };
    Ok((header, api))
}

/// The header of a request frame whose payload has `payload_len` bytes.
pub fn request_header(api: ApiKey, request_id: u64, payload_len: usize) -> [u8; HEADER_LEN] {
    let header = RequestHeader {
        length: U32::new((HEADER_LEN - 4 + payload_len) as u32),
        api_key: U16::new(api as u16),
        api_version: U16::new(0),
        request_id: U64::new(request_id),
    };
    let mut out = [0u8; HEADER_LEN];
    out.copy_from_slice(header.as_bytes());
    out
}

/// The header of a response frame whose payload has `payload_len` bytes.
pub fn response_header(
    api_key: u16,
    request_id: u64,
    error: ErrorCode,
    payload_len: usize,
) -> [u8; HEADER_LEN] {
    let header = ResponseHeader {
        length: U32::new((HEADER_LEN - 4 + payload_len) as u32),
        request_id: U64::new(request_id),
        api_key: U16::new(api_key),
        error: U16::new(error as u16),
    };
    let mut out = [0u8; HEADER_LEN];
    out.copy_from_slice(header.as_bytes());
    out
}

/// Reads a response header.
pub fn parse_response_header(bytes: &[u8; HEADER_LEN]) -> ResponseHeader {
    // A 16-byte array always holds an unaligned 16-byte struct.
    ResponseHeader::read_from_bytes(&bytes[..]).unwrap_or_else(|_| unreachable!())
}

/// One partition's section of a decoded produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Where its record batches lie in the payload.
    pub batches: Range<usize>,
}

/// A decoded produce request; the batches stay in the payload buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRequest {
    /// 0, 1 or -1 (all).
    pub acks: i16,
    /// Durability wait limit.
    pub timeout_ms: u32,
    /// Partition sections in request order.
    pub partitions: Vec<ProducePartition>,
}

fn malformed(api: ApiKey, reason: impl Into<String>) -> DecodeError {
    DecodeError::Malformed {
        api: api.name(),
        reason: reason.into(),
    }
}

/// Reads a `T` at `*pos` and moves past it.
fn take<'a, T: FromBytes + KnownLayout + Immutable + Unaligned>(
    api: ApiKey,
    payload: &'a [u8],
    pos: &mut usize,
) -> Result<&'a T, DecodeError> {
    let rest = payload.get(*pos..).unwrap_or_default();
    let (value, _) = T::ref_from_prefix(rest).map_err(|_| malformed(api, "truncated header"))?;
    *pos += std::mem::size_of::<T>();
    Ok(value)
}

/// Takes `len` bytes at `*pos` as a range.
fn take_range(
    api: ApiKey,
    payload: &[u8],
    pos: &mut usize,
    len: usize,
) -> Result<Range<usize>, DecodeError> {
    let end = pos
        .checked_add(len)
        .filter(|end| *end <= payload.len())
        .ok_or_else(|| malformed(api, "section longer than the frame"))?;
    let range = *pos..end;
    *pos = end;
    Ok(range)
}

fn take_topic(
    api: ApiKey,
    payload: &[u8],
    pos: &mut usize,
    len: usize,
) -> Result<String, DecodeError> {
    let range = take_range(api, payload, pos, len)?;
    std::str::from_utf8(&payload[range])
        .map(str::to_owned)
        .map_err(|_| malformed(api, "topic name is not UTF-8"))
}

impl ProduceRequest {
    /// Reads a produce payload. Batches are located, not validated: the
    /// engine validates each one whole before it is stored.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let api = ApiKey::Produce;
        let mut pos = 0;
        let header: &ProduceHeader = take(api, payload, &mut pos)?;
        let count = header.partitions.get() as usize;
        // Each section needs at least its header: bound the allocation.
        let most = payload.len() / std::mem::size_of::<ProducePartitionHeader>();
        if count > most {
            return Err(malformed(
                api,
                format!("{count} partitions in {} bytes", payload.len()),
            ));
        }
        let mut partitions = Vec::with_capacity(count);
        for _ in 0..count {
            let p: &ProducePartitionHeader = take(api, payload, &mut pos)?;
            let (topic_len, partition, bytes) = (
                p.topic_len.get() as usize,
                p.partition.get(),
                p.bytes.get() as usize,
            );
            let topic = take_topic(api, payload, &mut pos, topic_len)?;
            let batches = take_range(api, payload, &mut pos, bytes)?;
            partitions.push(ProducePartition {
                topic,
                partition,
                batches,
            });
        }
        if pos != payload.len() {
            return Err(malformed(
                api,
                format!("{} trailing bytes", payload.len() - pos),
            ));
        }
        Ok(ProduceRequest {
            acks: header.acks.get(),
            timeout_ms: header.timeout_ms.get(),
            partitions,
        })
    }
}

/// The fixed part of a produce payload.
pub fn produce_header(acks: i16, timeout_ms: u32, partitions: usize) -> [u8; 12] {
    let header = ProduceHeader {
        acks: I16::new(acks),
        reserved: U16::new(0),
        timeout_ms: U32::new(timeout_ms),
        partitions: U32::new(partitions as u32),
    };
    let mut out = [0u8; 12];
    out.copy_from_slice(header.as_bytes());
    out
}

/// A produce section's header and topic name; `bytes` of batches follow.
pub fn produce_section_header(topic: &str, partition: u32, bytes: usize) -> Vec<u8> {
    let p = ProducePartitionHeader {
        topic_len: U16::new(topic.len() as u16),
        partition: U32::new(partition),
        bytes: U32::new(bytes as u32),
    };
    let mut out = Vec::with_capacity(std::mem::size_of::<ProducePartitionHeader>() + topic.len());
    out.extend_from_slice(p.as_bytes());
    out.extend_from_slice(topic.as_bytes());
    out
}

/// Encodes a produce payload: `(topic, partition, concatenated batches)`.
pub fn encode_produce(acks: i16, timeout_ms: u32, sections: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = produce_header(acks, timeout_ms, sections.len()).to_vec();
    for (topic, partition, batches) in sections {
        out.extend_from_slice(&produce_section_header(topic, *partition, batches.len()));
        out.extend_from_slice(batches);
    }
    out
}

/// One partition's section of a fetch response, about to be written.
pub struct FetchSection<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Partition index.
    pub partition: u32,
    /// Error for this partition.
    pub error: ErrorCode,
    /// Log start offset.
    pub log_start: u64,
    /// Log end offset.
    pub log_end: u64,
    /// Bytes of record batches that will follow the returned header.
    pub bytes: usize,
}

/// The fixed part of a fetch response payload.
pub fn fetch_response_header(partitions: usize) -> [u8; 4] {
    FetchResponseHeader {
        partitions: U32::new(partitions as u32),
    }
    .as_bytes()
    .try_into()
    .unwrap_or_else(|_| unreachable!())
}

/// A partition section's header and topic name; its batches follow.
pub fn fetch_section_header(s: &FetchSection<'_>) -> Vec<u8> {
    let header = FetchPartitionHeader {
        topic_len: U16::new(s.topic.len() as u16),
        error: U16::new(s.error as u16),
        partition: U32::new(s.partition),
        log_start: U64::new(s.log_start),
        log_end: U64::new(s.log_end),
        bytes: U32::new(s.bytes as u32),
    };
    let mut out = Vec::with_capacity(std::mem::size_of::<FetchPartitionHeader>() + s.topic.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(s.topic.as_bytes());
    out
}

/// One partition's section of a decoded fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Error code for this partition.
    pub error: ErrorCode,
    /// Log start offset.
    pub log_start: u64,
    /// Log end offset (high watermark).
    pub log_end: u64,
    /// Where its stored batches lie in the payload.
    pub records: Range<usize>,
}

/// Reads a fetch response payload; record bytes stay where they are.
pub fn decode_fetch_response(payload: &[u8]) -> Result<Vec<FetchedPartition>, DecodeError> {
    let api = ApiKey::Fetch;
    let mut pos = 0;
    let header: &FetchResponseHeader = take(api, payload, &mut pos)?;
    let count = header.partitions.get() as usize;
    if count > payload.len() / std::mem::size_of::<FetchPartitionHeader>() {
        return Err(malformed(api, "more partitions than bytes"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let p: &FetchPartitionHeader = take(api, payload, &mut pos)?;
        let (topic_len, bytes) = (p.topic_len.get() as usize, p.bytes.get() as usize);
        let error = ErrorCode::from_u16(p.error.get());
        let (partition, log_start, log_end) =
            (p.partition.get(), p.log_start.get(), p.log_end.get());
        let topic = take_topic(api, payload, &mut pos, topic_len)?;
        let records = take_range(api, payload, &mut pos, bytes)?;
        out.push(FetchedPartition {
            topic,
            partition,
            error,
            log_start,
            log_end,
            records,
        });
    }
    if pos != payload.len() {
        return Err(malformed(api, "trailing bytes"));
    }
    Ok(out)
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// See [`ApiKey::Produce`].
    Produce(ProduceRequest),
    /// See [`ApiKey::Fetch`].
    Fetch(FetchRequest),
    /// See [`ApiKey::ListOffsets`].
    ListOffsets(ListOffsetsRequest),
    /// See [`ApiKey::Metadata`].
    Metadata(MetadataRequest),
    /// See [`ApiKey::CreateTopic`].
    CreateTopic(CreateTopicRequest),
    /// See [`ApiKey::DeleteTopic`].
    DeleteTopic(DeleteTopicRequest),
    /// See [`ApiKey::ListTopics`].
    ListTopics,
    /// See [`ApiKey::CommitOffsets`].
    CommitOffsets(CommitOffsetsRequest),
    /// See [`ApiKey::FetchOffsets`].
    FetchOffsets(FetchOffsetsRequest),
    /// See [`ApiKey::InitProducerId`].
    InitProducerId,
    /// See [`ApiKey::GroupHeartbeat`].
    GroupHeartbeat(GroupHeartbeatRequest),
    /// See [`ApiKey::ListGroups`].
    ListGroups,
    /// See [`ApiKey::DescribeGroup`].
    DescribeGroup(DescribeGroupRequest),
    /// See [`ApiKey::DescribeCluster`].
    DescribeCluster,
    /// See [`ApiKey::AddPartitions`].
    AddPartitions(AddPartitionsRequest),
    /// See [`ApiKey::ProduceIf`].
    ProduceIf(ProduceIfRequest),
    /// See [`ApiKey::AlterTopicConfig`].
    AlterTopicConfig(AlterTopicConfigRequest),
}

/// Decodes the payload of a request for `api`: the broker's one decoder.
pub fn decode_request(api: ApiKey, payload: &[u8]) -> Result<Request, DecodeError> {
    fn empty(api: ApiKey, payload: &[u8]) -> Result<(), DecodeError> {
        if payload.is_empty() {
            Ok(())
        } else {
            Err(malformed(api, "payload must be empty"))
        }
    }
    Ok(match api {
        ApiKey::Produce => Request::Produce(ProduceRequest::decode(payload)?),
        ApiKey::Fetch => Request::Fetch(Payload::decode(api, payload)?),
        ApiKey::ListOffsets => Request::ListOffsets(Payload::decode(api, payload)?),
        ApiKey::Metadata => Request::Metadata(Payload::decode(api, payload)?),
        ApiKey::CreateTopic => Request::CreateTopic(Payload::decode(api, payload)?),
        ApiKey::DeleteTopic => Request::DeleteTopic(Payload::decode(api, payload)?),
        ApiKey::ListTopics => {
            empty(api, payload)?;
            Request::ListTopics
        }
        ApiKey::CommitOffsets => Request::CommitOffsets(Payload::decode(api, payload)?),
        ApiKey::FetchOffsets => Request::FetchOffsets(Payload::decode(api, payload)?),
        ApiKey::InitProducerId => {
            empty(api, payload)?;
            Request::InitProducerId
        }
        ApiKey::GroupHeartbeat => Request::GroupHeartbeat(Payload::decode(api, payload)?),
        ApiKey::ListGroups => {
            empty(api, payload)?;
            Request::ListGroups
        }
        ApiKey::DescribeGroup => Request::DescribeGroup(Payload::decode(api, payload)?),
        ApiKey::DescribeCluster => {
            empty(api, payload)?;
            Request::DescribeCluster
        }
        ApiKey::AddPartitions => Request::AddPartitions(Payload::decode(api, payload)?),
        ApiKey::ProduceIf => Request::ProduceIf(Payload::decode(api, payload)?),
        ApiKey::AlterTopicConfig => Request::AlterTopicConfig(Payload::decode(api, payload)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn produce_round_trip() {
        let payload = encode_produce(1, 500, &[("t", 3, b"abc"), ("other", 0, b"")]);
        let req = ProduceRequest::decode(&payload).unwrap();
        assert_eq!(req.acks, 1);
        assert_eq!(req.timeout_ms, 500);
        assert_eq!(req.partitions.len(), 2);
        assert_eq!(req.partitions[0].topic, "t");
        assert_eq!(&payload[req.partitions[0].batches.clone()], b"abc");
        assert_eq!(req.partitions[1].partition, 0);
        assert!(req.partitions[1].batches.is_empty());
    }

    #[test]
    fn produce_lies_are_refused() {
        let mut payload = encode_produce(1, 0, &[("t", 0, b"abc")]);
        payload.pop();
        assert!(ProduceRequest::decode(&payload).is_err());
        let mut payload = encode_produce(1, 0, &[("t", 0, b"abc")]);
        payload[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(ProduceRequest::decode(&payload).is_err());
        let mut payload = encode_produce(1, 0, &[("t", 0, b"abc")]);
        payload.push(0);
        assert!(ProduceRequest::decode(&payload).is_err());
    }

    #[test]
    fn fetch_response_round_trip() {
        let mut payload = fetch_response_header(1).to_vec();
        payload.extend(fetch_section_header(&FetchSection {
            topic: "t",
            partition: 7,
            error: ErrorCode::None,
            log_start: 1,
            log_end: 9,
            bytes: 4,
        }));
        payload.extend_from_slice(b"recs");
        let parts = decode_fetch_response(&payload).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].partition, 7);
        assert_eq!((parts[0].log_start, parts[0].log_end), (1, 9));
        assert_eq!(&payload[parts[0].records.clone()], b"recs");
    }

    #[test]
    fn frame_length_is_checked_before_allocation() {
        assert!(check_frame_length(11, 100).is_err());
        assert!(check_frame_length(12, 100).is_ok());
        assert!(check_frame_length(101, 100).is_err());
    }

    #[test]
    fn headers_round_trip() {
        let bytes = request_header(ApiKey::Fetch, 77, 5);
        let (h, api) = parse_request_header(&bytes).unwrap();
        assert_eq!(api.unwrap(), ApiKey::Fetch);
        assert_eq!(h.request_id.get(), 77);
        assert_eq!(h.length.get(), 17);
        let mut bad = bytes;
        bad[4..6].copy_from_slice(&999u16.to_be_bytes());
        assert_eq!(
            parse_request_header(&bad).unwrap().1,
            Err(DecodeError::UnknownApi(999))
        );
        let r = parse_response_header(&response_header(2, 9, ErrorCode::UnknownTopic, 3));
        assert_eq!(r.request_id.get(), 9);
        assert_eq!(ErrorCode::from_u16(r.error.get()), ErrorCode::UnknownTopic);
    }

    #[test]
    fn rkyv_payloads_round_trip() {
        let req = FetchRequest {
            max_wait_ms: 100,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partitions: vec![FetchPartition {
                topic: "t".into(),
                partition: 1,
                offset: 42,
                max_bytes: 1024,
            }],
        };
        let bytes = req.encode();
        match decode_request(ApiKey::Fetch, &bytes).unwrap() {
            Request::Fetch(got) => assert_eq!(got, req),
            other => panic!("decoded {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn decoders_never_panic(api in 0u16..15, payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Some(api) = ApiKey::from_u16(api) {
                let _ = decode_request(api, &payload);
            }
            let _ = decode_fetch_response(&payload);
        }
    }
}
