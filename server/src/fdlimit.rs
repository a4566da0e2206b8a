//! File descriptors: the broker raises its soft `RLIMIT_NOFILE` to the hard
//! limit at start and splits what it gets between segment files (an LRU per
//! shard, `ringlog_engine::files`), connections, and a fixed reserve, so the
//! number of partitions is bounded by disk, not by the descriptor limit.

use anyhow::bail;
use rlimit::Resource;

/// Descriptors that are neither segment files nor connections: stdio, the
/// listeners, each shard's io_uring instance and eventfds, the metrics
/// server, catalog and checkpoint files opened for a moment, index files
/// read at open, and descriptors of evicted files that an I/O operation in
/// flight still holds.
const RESERVE_FIXED: u64 = 48;
/// The same, per shard.
const RESERVE_PER_SHARD: u64 = 16;
/// Descriptors per connection with sendfile on: its socket, and the
/// duplicate of it that sendfile uses on a blocking thread (one without).
const FDS_PER_CONNECTION_SENDFILE: u64 = 2;
/// Most segment-file duplicates that sends in flight hold at once.
const SENDFILE_FILES_MAX: u64 = 1024;
/// Fewest segment files a shard can work with (a roll holds two).
const FILES_PER_SHARD_MIN: u64 = 8;

/// How the descriptor limit was split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// Soft limit found at start.
    pub soft_before: u64,
    /// Soft limit now (the hard limit, if raising worked).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
    /// Segment files each shard keeps open at most.
    pub files_per_shard: usize,
    /// Connections served at once (the configured limit, or less if the
    /// descriptors cannot serve that many).
    pub connections: usize,
    /// Segment-file duplicates that fetches sent with sendfile may hold at
    /// once; a fetch past it is read and copied instead. 0 with sendfile off.
    pub sendfile_files: usize,
}

/// Raises the soft limit to the hard one and splits it.
pub fn raise_and_split(
    shards: usize,
    max_connections: usize,
    max_open_files: Option<usize>,
    sendfile: bool,
) -> anyhow::Result<FdBudget> {
    let (soft_before, hard) = Resource::NOFILE.get()?;
    let soft = if soft_before < hard {
        match Resource::NOFILE.set(hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(
                    "could not raise the open-files limit from {soft_before} to {hard}: {e}"
                );
                soft_before
            }
        }
    } else {
        soft_before
    };
    let budget = split(
        soft,
        shards as u64,
        max_connections as u64,
        max_open_files,
        sendfile,
    )?;
    Ok(FdBudget {
        soft_before,
        hard,
        ..budget
    })
}

/// Splits `limit` descriptors: a fixed reserve first, then (with sendfile
/// on) an eighth of the rest, at most 1024, for sendfile's file duplicates,
/// then segment files (configured, or half of what is left) and connections
/// (the rest, one descriptor each, two with sendfile, up to the configured
/// limit).
fn split(
    limit: u64,
    shards: u64,
    max_connections: u64,
    max_open_files: Option<usize>,
    sendfile: bool,
) -> anyhow::Result<FdBudget> {
    let per_connection = if sendfile {
        FDS_PER_CONNECTION_SENDFILE
    } else {
        1
    };
    let reserve = RESERVE_FIXED + RESERVE_PER_SHARD * shards;
    let files_min = FILES_PER_SHARD_MIN * shards;
    // At least one connection, or the broker is useless.
    let least = reserve + files_min + per_connection + 1;
    if limit < least {
        bail!(
            "the open-files limit {limit} is too low for {shards} shards: at least {least} needed (raise it with `ulimit -n`)"
        );
    }
    let sendfile = if sendfile {
        ((limit - reserve) / 8).clamp(1, SENDFILE_FILES_MAX)
    } else {
        0
    };
    let rest = limit - reserve - sendfile;
    let files = match max_open_files {
        Some(n) if (n as u64) < files_min => {
            bail!("--max-open-files {n} must be at least {files_min} ({FILES_PER_SHARD_MIN} per shard)")
        }
        Some(n) if n as u64 + per_connection > rest => bail!(
            "--max-open-files {n} leaves no descriptors for connections under the limit of {limit} ({reserve} reserved)"
        ),
        Some(n) => n as u64,
        None => (rest / 2).max(files_min),
    };
    let connections = max_connections.min((rest - files) / per_connection);
    Ok(FdBudget {
        soft_before: limit,
        soft: limit,
        hard: limit,
        files_per_shard: (files / shards) as usize,
        connections: connections as usize,
        sendfile_files: sendfile as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_split_between_files_and_connections() {
        let reserve = RESERVE_FIXED + 2 * RESERVE_PER_SHARD;
        // With sendfile on: a share for file duplicates, two per connection.
        let b = split(1024, 2, 4096, None, true).unwrap();
        let sendfile = (1024 - reserve) / 8;
        let rest = 1024 - reserve - sendfile;
        assert_eq!(b.sendfile_files as u64, sendfile);
        assert_eq!(b.files_per_shard as u64, rest / 2 / 2);
        assert_eq!(b.connections as u64, (rest - rest / 2) / 2);
        assert!(
            reserve
                + sendfile
                + 2 * b.files_per_shard as u64
                + FDS_PER_CONNECTION_SENDFILE * b.connections as u64
                <= 1024
        );
        // Off (the default): no share, one descriptor per connection.
        let b = split(1024, 2, 4096, None, false).unwrap();
        let rest = 1024 - reserve;
        assert_eq!(b.sendfile_files, 0);
        assert_eq!(b.files_per_shard as u64, rest / 2 / 2);
        assert_eq!(b.connections as u64, rest - rest / 2);
        assert!(reserve + 2 * b.files_per_shard as u64 + b.connections as u64 <= 1024);

        let b = split(1 << 20, 2, 4096, None, true).unwrap();
        assert_eq!((b.connections, b.sendfile_files), (4096, 1024));

        let b = split(1024, 2, 100, Some(600), false).unwrap();
        assert_eq!((b.files_per_shard, b.connections), (300, 100));

        assert!(split(64, 2, 10, None, false)
            .unwrap_err()
            .to_string()
            .contains("ulimit"));
        assert!(split(1024, 2, 10, Some(2), false).is_err());
        assert!(split(1024, 2, 10, Some(1024), false).is_err());
    }
}
