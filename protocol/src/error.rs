//! The closed set of error codes, shared by every API.

/// Why a request, or one partition of it, failed. Sent as a big-endian u16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// Success.
    None = 0,
    /// An error the broker did not classify; the message says more.
    Unknown = 1,
    /// The API key or version is not served by this broker.
    UnsupportedApi = 2,
    /// The payload does not have the API's layout.
    MalformedRequest = 3,
    /// The frame is larger than the broker's `max-frame-bytes`.
    FrameTooLarge = 4,
    /// No topic of that name exists.
    UnknownTopic = 5,
    /// The topic has no partition of that index.
    UnknownPartition = 6,
    /// A topic of that name already exists.
    TopicExists = 7,
    /// The topic name or a topic setting is invalid.
    InvalidTopicConfig = 8,
    /// A record batch failed validation (CRC, lengths, magic, counts).
    CorruptBatch = 9,
    /// A record batch is larger than the partition accepts.
    BatchTooLarge = 10,
    /// The offset is before the log start or after the log end.
    OffsetOutOfRange = 11,
    /// This broker does not lead the partition.
    NotLeader = 12,
    /// The request did not complete within its timeout.
    Timeout = 13,
    /// The partition's storage failed (a full disk, an I/O error); reads
    /// still work, appends are refused until the broker restarts.
    StorageError = 14,
    /// An idempotent batch's sequence number is not the next expected one.
    OutOfOrderSequence = 15,
    /// An idempotent batch carries an older producer epoch than seen before.
    InvalidProducerEpoch = 16,
    /// `acks` is not 0, 1 or -1 (all).
    InvalidAcks = 17,
    /// The broker is shutting down.
    ShuttingDown = 18,
    /// The request is well formed but asks for something invalid.
    InvalidRequest = 19,
    /// The group has no member of that id (never joined, left, or evicted
    /// after its session timed out): join again with an empty id.
    UnknownMember = 20,
    /// The generation is not the group's current one: a rebalance happened;
    /// heartbeat to learn the new assignment, then commit again.
    IllegalGeneration = 21,
    /// `acks=all` with fewer replicas in sync than the topic's
    /// `min.insync.replicas`: nothing was written.
    NotEnoughReplicas = 22,
    /// Written on the leader, but the in-sync replicas fell below
    /// `min.insync.replicas` before it was replicated: it may be stored.
    NotEnoughReplicasAfterAppend = 23,
    /// A commit's metadata string is longer than
    /// [`crate::COMMIT_METADATA_MAX`] bytes: nothing of it was stored.
    OffsetMetadataTooLarge = 24,
    /// A record the topic does not take (a record without a key on a
    /// compacted topic): nothing of its batch was stored.
    InvalidRecord = 25,
    /// A conditional produce found the log ending elsewhere than expected:
    /// nothing was stored.
    EndOffsetMoved = 26,
}

impl ErrorCode {
    /// Every code, in wire order.
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::None,
        ErrorCode::Unknown,
        ErrorCode::UnsupportedApi,
        ErrorCode::MalformedRequest,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownTopic,
        ErrorCode::UnknownPartition,
        ErrorCode::TopicExists,
        ErrorCode::InvalidTopicConfig,
        ErrorCode::CorruptBatch,
        ErrorCode::BatchTooLarge,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::NotLeader,
        ErrorCode::Timeout,
        ErrorCode::StorageError,
        ErrorCode::OutOfOrderSequence,
        ErrorCode::InvalidProducerEpoch,
        ErrorCode::InvalidAcks,
        ErrorCode::ShuttingDown,
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownMember,
        ErrorCode::IllegalGeneration,
        ErrorCode::NotEnoughReplicas,
        ErrorCode::NotEnoughReplicasAfterAppend,
        ErrorCode::OffsetMetadataTooLarge,
        ErrorCode::InvalidRecord,
        ErrorCode::EndOffsetMoved,
    ];

    /// The code for a wire value; values this build does not know read as
    /// [`ErrorCode::Unknown`].
    pub fn from_u16(value: u16) -> ErrorCode {
        Self::ALL
            .into_iter()
            .find(|c| *c as u16 == value)
            .unwrap_or(ErrorCode::Unknown)
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeader
                | ErrorCode::Timeout
                | ErrorCode::ShuttingDown
                | ErrorCode::IllegalGeneration
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
        )
    }

    /// Snake-case name, as in `docs/protocol.md`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::None => "none",
            ErrorCode::Unknown => "unknown",
            ErrorCode::UnsupportedApi => "unsupported_api",
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownTopic => "unknown_topic",
            ErrorCode::UnknownPartition => "unknown_partition",
            ErrorCode::TopicExists => "topic_exists",
            ErrorCode::InvalidTopicConfig => "invalid_topic_config",
            ErrorCode::CorruptBatch => "corrupt_batch",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::OffsetOutOfRange => "offset_out_of_range",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::Timeout => "timeout",
            ErrorCode::StorageError => "storage_error",
            ErrorCode::OutOfOrderSequence => "out_of_order_sequence",
            ErrorCode::InvalidProducerEpoch => "invalid_producer_epoch",
            ErrorCode::InvalidAcks => "invalid_acks",
            ErrorCode::NotEnoughReplicas => "not_enough_replicas",
            ErrorCode::NotEnoughReplicasAfterAppend => "not_enough_replicas_after_append",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownMember => "unknown_member",
            ErrorCode::IllegalGeneration => "illegal_generation",
            ErrorCode::OffsetMetadataTooLarge => "offset_metadata_too_large",
            ErrorCode::InvalidRecord => "invalid_record",
            ErrorCode::EndOffsetMoved => "end_offset_moved",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
