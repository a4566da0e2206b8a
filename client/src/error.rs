//! One error type, with a kind a caller can match.

use ringlog_protocol::ErrorCode;

/// What went wrong, coarsely enough to decide what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No connection to the broker could be made.
    BrokerUnreachable,
    /// The connection broke while a request was outstanding.
    ConnectionLost,
    /// The topic does not exist.
    UnknownTopic,
    /// The topic has no such partition.
    UnknownPartition,
    /// A topic of that name exists already.
    TopicExists,
    /// A topic name or setting was refused.
    InvalidConfig,
    /// The offset is outside the log.
    OffsetOutOfRange,
    /// The broker refused a batch as corrupt, or a fetched batch is corrupt.
    CorruptRecord,
    /// A record or batch is larger than allowed.
    RecordTooLarge,
    /// A record the topic refuses (no key on a compacted topic): nothing of
    /// its batch was stored.
    InvalidRecord,
    /// The schema registry refused or failed, or a value does not match
    /// its schema.
    Schema,
    /// A conditional produce found the partition's log ending elsewhere:
    /// nothing was stored (read what was added, then try again).
    EndOffsetMoved,
    /// The request did not complete in time.
    Timeout,
    /// The broker's storage failed (full disk, I/O error).
    Storage,
    /// An idempotent producer's sequence did not follow.
    OutOfOrderSequence,
    /// An idempotent producer was fenced by a newer epoch.
    InvalidProducerEpoch,
    /// The acks setting was refused.
    InvalidAcks,
    /// The broker is shutting down.
    ShuttingDown,
    /// The broker does not lead the partition.
    NotLeader,
    /// The broker or client broke the protocol.
    Protocol,
    /// The caller passed something invalid.
    InvalidArgument,
    /// The consumer group no longer knows this member (evicted, or left).
    UnknownMember,
    /// A rebalance moved the group to a newer generation.
    IllegalGeneration,
    /// Too few replicas in sync for an `acks=all` write.
    NotEnoughReplicas,
    /// The producer or consumer was closed.
    Closed,
    /// Anything else; the message says what.
    Other,
}

/// A client error: a kind and a message for humans.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// Result with the client's error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the same operation may succeed if tried again.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::BrokerUnreachable
                | ErrorKind::ConnectionLost
                | ErrorKind::Timeout
                | ErrorKind::ShuttingDown
                | ErrorKind::NotLeader
                | ErrorKind::NotEnoughReplicas
        )
    }

    /// The error for a broker error code and message.
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> Error {
        let kind = match code {
            ErrorCode::UnknownTopic => ErrorKind::UnknownTopic,
            ErrorCode::UnknownPartition => ErrorKind::UnknownPartition,
            ErrorCode::TopicExists => ErrorKind::TopicExists,
            ErrorCode::InvalidTopicConfig => ErrorKind::InvalidConfig,
            ErrorCode::CorruptBatch => ErrorKind::CorruptRecord,
            ErrorCode::BatchTooLarge | ErrorCode::FrameTooLarge => ErrorKind::RecordTooLarge,
            ErrorCode::OffsetOutOfRange => ErrorKind::OffsetOutOfRange,
            ErrorCode::NotLeader => ErrorKind::NotLeader,
            ErrorCode::Timeout => ErrorKind::Timeout,
            ErrorCode::StorageError => ErrorKind::Storage,
            ErrorCode::OutOfOrderSequence => ErrorKind::OutOfOrderSequence,
            ErrorCode::InvalidProducerEpoch => ErrorKind::InvalidProducerEpoch,
            ErrorCode::InvalidAcks => ErrorKind::InvalidAcks,
            ErrorCode::ShuttingDown => ErrorKind::ShuttingDown,
            ErrorCode::UnsupportedApi | ErrorCode::MalformedRequest => ErrorKind::Protocol,
            ErrorCode::InvalidRequest | ErrorCode::OffsetMetadataTooLarge => {
                ErrorKind::InvalidArgument
            }
            ErrorCode::UnknownMember => ErrorKind::UnknownMember,
            ErrorCode::IllegalGeneration => ErrorKind::IllegalGeneration,
            ErrorCode::NotEnoughReplicas | ErrorCode::NotEnoughReplicasAfterAppend => {
                ErrorKind::NotEnoughReplicas
            }
            ErrorCode::InvalidRecord => ErrorKind::InvalidRecord,
            ErrorCode::EndOffsetMoved => ErrorKind::EndOffsetMoved,
            ErrorCode::None | ErrorCode::Unknown => ErrorKind::Other,
        };
        let message = message.into();
        let message = if message.is_empty() {
            code.name().to_string()
        } else {
            message
        };
        Error { kind, message }
    }
}
