//! The engine's error type: one enum, so a caller can tell bad input from a
//! corrupt file from a full disk.

use crate::batch::BatchError;
use std::path::PathBuf;

/// Everything a partition log operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The batch offered for append is malformed; nothing was written.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// Bytes after the one batch an append takes.
    #[error("append takes exactly one batch: {0} bytes follow it")]
    TrailingBytes(usize),
    /// The requested offset is outside the log.
    #[error("offset {offset} is out of range: the log holds [{start}, {end})")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// Log start offset.
        start: u64,
        /// Log end offset.
        end: u64,
    },
    /// Stored bytes failed validation on read; they are not served.
    #[error("corrupt data in {path} at position {position}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad batch.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A write or sync failed earlier; the partition refuses appends until a
    /// restart recovers it from disk.
    #[error("partition log failed and refuses appends until restart: {0}")]
    Failed(String),
    /// An I/O error, with the file it happened on.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot work.
    #[error("invalid log configuration: {0}")]
    Config(String),
    /// A replicated batch does not start where the log ends: the follower
    /// must truncate or fetch from its own log end.
    #[error("replicated batch starts at offset {found}, the log ends at {expected}")]
    NotContiguous {
        /// The log end offset.
        expected: u64,
        /// The batch's base offset.
        found: i64,
    },
}

impl Error {
    /// True if the OS reported the disk full (or over quota).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

/// Attaches a path to an I/O result.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
