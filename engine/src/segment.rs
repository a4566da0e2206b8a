//! One segment: a `.log` file of batches named by its base offset, with its
//! offset index and time index. This is the I/O shell around the pure index
//! and recovery logic: it reads and writes the files, and decides nothing
//! that the pure modules can decide.
//!
//! The active segment's indexes live in memory and reach disk when the
//! segment is sealed or the log is closed; they are never needed from disk
//! for the active segment, because recovery rebuilds the part after the
//! checkpoint anyway.

use crate::batch::{peek, BatchHeader, BatchView, HEADER_BYTES};
use crate::direct::Recent;
use crate::error::{Error, IoContext};
use crate::files::LazyFile;
use crate::index::{OffsetEntry, SegmentIndex};
use crate::io;
use crate::recovery::{Feed, Scanner, Stop};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use zerocopy::FromBytes;

/// Bytes read per step while scanning a segment at recovery.
const SCAN_CHUNK_BYTES: usize = 4 << 20;
/// Bytes read per step while walking batch headers towards an offset or a
/// timestamp: a few index intervals, so one read usually suffices.
const WALK_WINDOW_BYTES: usize = 16 << 10;

/// File name of a segment's file with the given extension.
pub(crate) fn file_name(base_offset: u64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// Parses a segment file name back to its base offset.
pub(crate) fn parse_log_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".log")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// How much of a segment recovery may trust without validating it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trust {
    /// Everything: a segment sealed and synced before the checkpoint, whose
    /// batches end where the next segment begins.
    Sealed { end_offset: u64 },
    /// Batches before this offset; validate the rest.
    Below(u64),
}

/// What recovery did to one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Bytes after the last whole valid batch were cut off.
    Truncated {
        /// Segment base offset.
        segment: u64,
        /// New size of the segment file.
        position: u64,
        /// Bytes removed.
        bytes_dropped: u64,
        /// Why the batch at `position` was not kept.
        reason: String,
    },
    /// The index files were missing or damaged and were rebuilt.
    IndexRebuilt {
        /// Segment base offset.
        segment: u64,
        /// What was wrong with them.
        reason: String,
    },
    /// A clean that was interrupted after its commit point was finished:
    /// these cleaned segments replaced the ones they cover.
    CleanFinished {
        /// Base offsets of the cleaned segments.
        segments: Vec<u64>,
    },
    /// A whole segment was deleted because an earlier one lost its tail, so
    /// its offsets no longer follow on.
    SegmentDropped {
        /// Segment base offset.
        segment: u64,
        /// Its size in bytes.
        bytes: u64,
    },
}

/// What a read found: bytes read and checked, or where in a file they lie.
#[derive(Debug)]
pub enum Stored {
    /// Whole batches, read and CRC-checked.
    Bytes(Vec<u8>),
    /// Whole batches left in the segment file, to be sent from there.
    File(FileRange),
}

impl Stored {
    /// Bytes of stored batches in the answer.
    pub fn len(&self) -> usize {
        match self {
            Stored::Bytes(b) => b.len(),
            Stored::File(r) => r.len,
        }
    }

    /// Whether the answer holds no batch (the read was at the log end).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whole batches in a segment file, not read: for `sendfile`.
#[derive(Debug)]
pub struct FileRange {
    /// A descriptor of its own (a duplicate), so the range stays readable
    /// for as long as the send takes, even if retention deletes the segment
    /// or the shard closes its descriptor meanwhile.
    pub file: std::os::fd::OwnedFd,
    /// Where the first batch starts in the file.
    pub position: u64,
    /// Bytes from there: whole batches.
    pub len: usize,
}

/// A batch found by walking headers, with the window read to find it.
struct Found {
    position: u64,
    size: usize,
    header: BatchHeader,
    window: Vec<u8>,
    window_start: u64,
}

pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    /// Offset after the last batch.
    pub(crate) next_offset: u64,
    /// Bytes of whole batches; the file is never read past this.
    pub(crate) size: u64,
    pub(crate) index: SegmentIndex,
    pub(crate) file: LazyFile,
    /// The active segment's most recent bytes, in direct mode: reads that
    /// fall inside are answered from memory (direct writes leave nothing in
    /// the page cache for a reader just behind the writer).
    pub(crate) recent: Option<Rc<RefCell<Recent>>>,
    /// Max timestamp of the first batch: the segment's age for rolling.
    pub(crate) first_timestamp: Option<i64>,
    dir: PathBuf,
}

impl Segment {
    pub(crate) fn path(&self, extension: &str) -> PathBuf {
        self.dir.join(file_name(self.base_offset, extension))
    }

    fn log_path(&self) -> PathBuf {
        self.path("log")
    }

    /// Creates an empty segment file.
    pub(crate) async fn create(
        dir: &Path,
        base_offset: u64,
        index_interval_bytes: u32,
    ) -> Result<Self, Error> {
        let path = dir.join(file_name(base_offset, "log"));
        let file = LazyFile::open(&path, true).await.at(&path)?;
        Ok(Self {
            base_offset,
            next_offset: base_offset,
            size: 0,
            index: SegmentIndex::new(index_interval_bytes),
            file,
            first_timestamp: None,
            recent: None,
            dir: dir.to_path_buf(),
        })
    }

    /// Opens an existing segment, validating what `trust` does not cover and
    /// cutting off a torn or corrupt tail.
    pub(crate) async fn open(
        dir: &Path,
        base_offset: u64,
        trust: Trust,
        index_interval_bytes: u32,
        batch_bytes_max: usize,
        zero_tail_is_padding: bool,
        repairs: &mut Vec<Repair>,
    ) -> Result<Self, Error> {
        let mut seg = Self::create(dir, base_offset, index_interval_bytes).await?;
        let path = seg.log_path();
        let file_len = std::fs::metadata(&path).at(&path)?.len();
        let offsets = io::read_file(&seg.path("index")).await.at(&path)?;
        let times = io::read_file(&seg.path("timeindex")).await.at(&path)?;
        // A sealed segment's index must fit it exactly. A partly trusted
        // one's may hold entries past a later truncation: rewind drops them
        // and the scan from the restart point checks the rest.
        let (bytes_bound, end_relative) = match trust {
            Trust::Sealed { end_offset } => (
                file_len,
                u32::try_from(end_offset.saturating_sub(base_offset)).unwrap_or(u32::MAX),
            ),
            Trust::Below(_) => (u64::MAX, u32::MAX),
        };
        let decoded = match (offsets, times) {
            (Some(o), Some(t)) => {
                SegmentIndex::decode(&o, &t, index_interval_bytes, bytes_bound, end_relative)
                    .map_err(|e| e.to_string())
            }
            _ => Err("index files missing".to_string()),
        };
        let index_problem = match decoded {
            Ok(index) => {
                seg.index = index;
                None
            }
            Err(why) => Some(why),
        };

        if let (Trust::Sealed { end_offset }, None) = (trust, &index_problem) {
            seg.size = file_len;
            seg.next_offset = end_offset;
            // A spot check that the last entry points at the batch it names.
            if seg.check_last_entry().await? {
                seg.load_first_timestamp().await?;
                return Ok(seg);
            }
        }
        let (restart, problem) = match (trust, index_problem) {
            // Nothing of this segment is trusted: it is scanned from the start
            // anyway, and the active segment's indexes are never on disk
            // after a crash. Not a repair.
            (Trust::Below(offset), Some(_)) if offset <= base_offset => {
                (OffsetEntry::default(), None)
            }
            (_, Some(why)) => (OffsetEntry::default(), Some(why)),
            (Trust::Sealed { .. }, None) => (
                OffsetEntry::default(),
                Some("index entry points at the wrong batch".into()),
            ),
            (Trust::Below(offset), None) => {
                let relative =
                    u32::try_from(offset.saturating_sub(base_offset)).unwrap_or(u32::MAX);
                (seg.index.rewind(relative), None)
            }
        };
        if problem.is_some() {
            seg.index = SegmentIndex::new(index_interval_bytes);
        }
        let mut stop = seg.scan_from(restart, file_len, batch_bytes_max).await?;
        // Stopped right at the restart point: either the batch there is
        // damaged (then the index is right and the cut stands), or the index
        // points at something that is not the batch it names (then the index
        // is damaged, not the data: rebuild it from the start).
        let mut problem = problem;
        let stopped_at_restart =
            restart.position > 0 && seg.size == u64::from(restart.position) && stop.is_some();
        if stopped_at_restart && seg.entry_names_its_batch(restart).await? == Some(false) {
            problem = Some(format!(
                "index restart point disagrees with the log: {}",
                stop.as_ref().map(ToString::to_string).unwrap_or_default()
            ));
            seg.index = SegmentIndex::new(index_interval_bytes);
            stop = seg
                .scan_from(OffsetEntry::default(), file_len, batch_bytes_max)
                .await?;
        }
        if let Some(reason) = problem {
            tracing::warn!(segment = %path.display(), %reason, "rebuilding segment index");
            repairs.push(Repair::IndexRebuilt {
                segment: base_offset,
                reason,
            });
        }
        let stop = match stop {
            // The direct appender's preallocated zeros after a crash: not
            // damage, nothing was there.
            Some(_) if zero_tail_is_padding && seg.zeros_from(seg.size, file_len).await? => {
                tracing::debug!(segment = %path.display(), bytes = file_len - seg.size, "cutting off preallocated zeros");
                io::truncate(&path, seg.size).at(&path)?;
                None
            }
            stop => stop,
        };
        if let Some(stop) = stop {
            tracing::warn!(
                segment = %path.display(),
                position = seg.size,
                bytes_dropped = file_len - seg.size,
                reason = %stop,
                "truncating segment to its last whole valid batch"
            );
            io::truncate(&path, seg.size).at(&path)?;
            repairs.push(Repair::Truncated {
                segment: base_offset,
                position: seg.size,
                bytes_dropped: file_len - seg.size,
                reason: stop.to_string(),
            });
        }
        seg.load_first_timestamp().await?;
        Ok(seg)
    }

    /// Validates batches from `restart` to the end of the file, feeding the
    /// index; leaves `size` and `next_offset` after the last valid batch and
    /// returns why it stopped short of `file_len`, if it did.
    async fn scan_from(
        &mut self,
        restart: OffsetEntry,
        file_len: u64,
        batch_bytes_max: usize,
    ) -> Result<Option<Stop>, Error> {
        let start = u64::from(restart.position);
        let mut scanner = Scanner::new(
            self.base_offset,
            start,
            self.base_offset + u64::from(restart.relative_offset),
            batch_bytes_max,
        );
        let stop = if start > file_len {
            Some(Stop::Torn {
                needed: 0,
                present: 0,
            })
        } else {
            let mut want = SCAN_CHUNK_BYTES;
            loop {
                let chunk = self.read_at(scanner.position(), want).await?;
                let eof = chunk.len() < want;
                match scanner.feed(&chunk, &mut self.index) {
                    Feed::NeedMore {
                        position,
                        bytes_min,
                    } => {
                        if eof {
                            let present = (file_len - position) as usize;
                            break (present > 0).then_some(Stop::Torn {
                                needed: bytes_min,
                                present,
                            });
                        }
                        want = SCAN_CHUNK_BYTES.max(bytes_min);
                    }
                    Feed::Corrupt(reason) => break Some(Stop::Corrupt(reason)),
                }
            }
        };
        self.size = scanner.position();
        self.next_offset = scanner.next_offset();
        Ok(stop)
    }

    /// Whether every byte from `from` to `to` is zero.
    async fn zeros_from(&self, mut from: u64, to: u64) -> Result<bool, Error> {
        while from < to {
            let len = (to - from).min(SCAN_CHUNK_BYTES as u64) as usize;
            let chunk = self.read_at(from, len).await?;
            if chunk.len() < len || chunk.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            from += len as u64;
        }
        Ok(true)
    }

    async fn check_last_entry(&self) -> Result<bool, Error> {
        match self.index.offsets().last() {
            Some(&last) => Ok(self.entry_names_its_batch(last).await? == Some(true)),
            None => Ok(true),
        }
    }

    /// Whether a v2 batch header with the entry's offset sits at its
    /// position; `None` if the file ends before a whole header.
    async fn entry_names_its_batch(&self, entry: OffsetEntry) -> Result<Option<bool>, Error> {
        let header = self.header_at(u64::from(entry.position)).await?;
        Ok(header.map(|h| {
            h.magic == crate::batch::MAGIC_V2
                && h.base_offset.get()
                    == (self.base_offset + u64::from(entry.relative_offset)) as i64
        }))
    }

    async fn header_at(&self, position: u64) -> Result<Option<BatchHeader>, Error> {
        let bytes = self.read_at(position, HEADER_BYTES).await?;
        Ok(BatchHeader::read_from_bytes(&bytes).ok())
    }

    async fn load_first_timestamp(&mut self) -> Result<(), Error> {
        self.first_timestamp = if self.size == 0 {
            None
        } else {
            self.header_at(0).await?.map(|h| h.max_timestamp.get())
        };
        Ok(())
    }

    /// Reserves the end of the segment for a batch of `size` bytes and
    /// accounts for it in the index; returns its position. The caller
    /// submits the write; readers see it once the write completes.
    pub(crate) fn reserve(&mut self, size: u64, offset_count: u64, max_timestamp: i64) -> u64 {
        let position = self.size;
        let relative = self.next_offset - self.base_offset;
        // The log rolls before either would overflow, so these always fit.
        debug_assert!(position + size <= u64::from(u32::MAX));
        debug_assert!(relative + offset_count <= u64::from(u32::MAX));
        self.index
            .on_batch(relative as u32, position as u32, size as u32, max_timestamp);
        self.size += size;
        self.next_offset += offset_count;
        self.first_timestamp.get_or_insert(max_timestamp);
        position
    }

    /// Walks batch headers from `start` until `stop` says yes, reading a
    /// window at a time. `None` if the segment ends first.
    /// Every header's base offset must follow on from the one before: the
    /// CRC does not cover `baseOffset`, so this is what catches a damaged one.
    /// Reads `window_bytes` at a time: a caller that wants the found batch's
    /// bytes asks for a window big enough to hold them too.
    async fn walk(
        &self,
        start: OffsetEntry,
        end: u64,
        window_bytes: usize,
        batch_bytes_max: usize,
        mut stop: impl FnMut(&BatchHeader) -> bool,
    ) -> Result<Option<Found>, Error> {
        let mut position = u64::from(start.position);
        let mut expected = self.base_offset + u64::from(start.relative_offset);
        let mut window = Vec::new();
        let mut window_start = position;
        while position < end {
            let at = (position - window_start) as usize;
            if window.len() < at + HEADER_BYTES {
                let len = window_bytes.min((end - position) as usize);
                window = self.read_at(position, len).await?;
                window_start = position;
                if window.len() < HEADER_BYTES {
                    return Err(self.corrupt(position, "segment ends inside a batch header".into()));
                }
            }
            let at = (position - window_start) as usize;
            let (header, size) = peek(&window[at..], batch_bytes_max)
                .map_err(|e| self.corrupt(position, e.to_string()))?;
            if position + size as u64 > end {
                return Err(self.corrupt(position, "batch runs past the segment end".into()));
            }
            if header.base_offset.get() != expected as i64 {
                return Err(self.corrupt(
                    position,
                    format!(
                        "batch base offset {} where {expected} was expected",
                        header.base_offset.get()
                    ),
                ));
            }
            expected += header.last_offset_delta.get() as u64 + 1;
            if stop(header) {
                let header = *header;
                return Ok(Some(Found {
                    position,
                    size,
                    header,
                    window,
                    window_start,
                }));
            }
            position += size as u64;
        }
        Ok(None)
    }

    fn corrupt(&self, position: u64, reason: String) -> Error {
        Error::Corrupt {
            path: self.log_path(),
            position,
            reason,
        }
    }

    /// Finds the batch holding `offset`, or the first one after it, among
    /// the batches before position `end`.
    async fn find(
        &self,
        offset: u64,
        end: u64,
        window_bytes: usize,
        batch_bytes_max: usize,
    ) -> Result<Option<Found>, Error> {
        let relative = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let entry = self.index.lookup_offset(relative);
        self.walk(entry, end, window_bytes, batch_bytes_max, |h| {
            h.base_offset.get() + i64::from(h.last_offset_delta.get()) >= offset as i64
        })
        .await
    }

    /// The `len` bytes at the found batch: from the walk's window when it
    /// holds them, which saves reading them again.
    async fn bytes_at(&self, found: Found, len: usize) -> Result<Vec<u8>, Error> {
        let at = (found.position - found.window_start) as usize;
        if found.window.len() >= at + len {
            let mut bytes = found.window;
            bytes.truncate(at + len);
            bytes.drain(..at);
            return Ok(bytes);
        }
        self.read_at(found.position, len).await
    }

    /// Up to `len` bytes of the log file at `position`, reopening the file
    /// if the shard's open-file budget closed it.
    async fn read_at(&self, position: u64, len: usize) -> Result<Vec<u8>, Error> {
        if let Some(bytes) = self
            .recent
            .as_ref()
            .and_then(|r| r.borrow().get(position, len))
        {
            return Ok(bytes);
        }
        let path = self.log_path();
        let file = self.file.get().await.at(&path)?;
        io::read_at(&file, position, len).await.at(&path)
    }

    /// The stored bytes of whole batches from the one holding `offset`, up to
    /// `max_bytes` but at least one batch. Every batch's CRC is checked before
    /// it is returned. `None` if no batch before position `end` (what readers
    /// may see) holds `offset` or a later one.
    pub(crate) async fn read(
        &self,
        offset: u64,
        end: u64,
        max_bytes: usize,
        batch_bytes_max: usize,
    ) -> Result<Option<Vec<u8>>, Error> {
        // One window that holds the answer too, usually: the batch holding
        // `offset` is within about an index interval of the entry.
        let window_bytes = max_bytes.saturating_add(WALK_WINDOW_BYTES);
        let Some(first) = self
            .find(offset, end, window_bytes, batch_bytes_max)
            .await?
        else {
            return Ok(None);
        };
        let len = first
            .size
            .max(max_bytes.min((end - first.position) as usize));
        self.checked_bytes(first, len, batch_bytes_max)
            .await
            .map(Some)
    }

    /// The answer [`Segment::read`] would give, as a range of the file when
    /// it is `file_bytes_min` bytes or more (for a caller that sends it
    /// without reading it: no copy, and no CRC check on the way out), or as
    /// checked bytes when it is smaller. The range ends at a batch boundary
    /// the index knows, so it may stop short of `max_bytes` by up to an
    /// index interval; it always holds at least one whole batch.
    pub(crate) async fn locate(
        &self,
        offset: u64,
        end: u64,
        max_bytes: usize,
        batch_bytes_max: usize,
        file_bytes_min: usize,
    ) -> Result<Option<Stored>, Error> {
        let Some(first) = self
            .find(offset, end, WALK_WINDOW_BYTES, batch_bytes_max)
            .await?
        else {
            return Ok(None);
        };
        // The walk checked that the first batch ends by `end`.
        let limit = first.position + (first.size.max(max_bytes) as u64).min(end - first.position);
        let stop = if limit == end {
            end
        } else {
            // Index entries are batch starts: the last one by `limit` past
            // the first batch ends the answer on a boundary.
            let entries = self.index.offsets();
            let at = entries.partition_point(|e| u64::from(e.position) <= limit);
            match at.checked_sub(1).map(|i| u64::from(entries[i].position)) {
                Some(p) if p > first.position => p,
                _ => first.position + first.size as u64,
            }
        };
        let len = (stop - first.position) as usize;
        if len < file_bytes_min {
            return Ok(Some(Stored::Bytes(
                self.checked_bytes(first, len, batch_bytes_max).await?,
            )));
        }
        let path = self.log_path();
        let file = self.file.get().await.at(&path)?;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&*file);
        // SAFETY: `file` holds the descriptor open until the end of this
        // statement, and the borrow is used only to duplicate it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
        let file = borrowed.try_clone_to_owned().at(&path)?;
        Ok(Some(Stored::File(FileRange {
            file,
            position: first.position,
            len,
        })))
    }

    /// `len` bytes from the found batch on, every batch's CRC and base
    /// offset checked; cut after the last whole batch.
    async fn checked_bytes(
        &self,
        first: Found,
        len: usize,
        batch_bytes_max: usize,
    ) -> Result<Vec<u8>, Error> {
        let (first_position, first_size) = (first.position, first.size);
        let mut expected = first.header.base_offset.get();
        let mut bytes = self.bytes_at(first, len).await?;
        if bytes.len() < first_size {
            return Err(self.corrupt(
                first_position,
                "segment file shorter than its batches".into(),
            ));
        }
        let mut end = 0;
        while end < bytes.len() {
            let position = first_position + end as u64;
            let view = match BatchView::parse_crc_only(&bytes[end..], batch_bytes_max) {
                Ok(view) => view,
                // A batch cut by `max_bytes` is left for the next read.
                Err(e) if e.is_incomplete() && end > 0 => break,
                Err(e) => return Err(self.corrupt(position, e.to_string())),
            };
            if view.base_offset() != expected {
                return Err(self.corrupt(
                    position,
                    format!(
                        "batch base offset {} where {expected} was expected",
                        view.base_offset()
                    ),
                ));
            }
            expected = view.last_offset() + 1;
            end += view.bytes().len();
        }
        bytes.truncate(end);
        Ok(bytes)
    }

    /// The offset of the first record with a timestamp >= `timestamp`, if
    /// this segment has one. For a compressed batch, its base offset.
    pub(crate) async fn offset_for_timestamp(
        &self,
        timestamp: i64,
        end: u64,
        batch_bytes_max: usize,
    ) -> Result<Option<u64>, Error> {
        if self.index.max_timestamp() < timestamp {
            return Ok(None);
        }
        let from = self.index.lookup_offset(self.index.lookup_time(timestamp));
        let found = self
            .walk(from, end, WALK_WINDOW_BYTES, batch_bytes_max, |h| {
                h.max_timestamp.get() >= timestamp
            })
            .await?;
        let Some(found) = found else {
            return Ok(None);
        };
        let (position, size, base) = (found.position, found.size, found.header.base_offset.get());
        let bytes = self.bytes_at(found, size).await?;
        let view = BatchView::parse(&bytes, batch_bytes_max)
            .map_err(|e| self.corrupt(position, e.to_string()))?;
        let Ok(records) = view.records() else {
            return Ok(Some(base as u64));
        };
        for record in records {
            let record = record.map_err(|e| self.corrupt(position, e.to_string()))?;
            if record.timestamp >= timestamp {
                return Ok(Some(record.offset as u64));
            }
        }
        // Unreachable for a consistent batch (maxTimestamp is a record's).
        Ok(Some(view.last_offset() as u64))
    }

    /// Removes the batch holding `offset` and everything after it. No write
    /// may be in flight.
    pub(crate) async fn truncate_to(
        &mut self,
        offset: u64,
        batch_bytes_max: usize,
    ) -> Result<(), Error> {
        let Some(found) = self
            .find(offset, self.size, WALK_WINDOW_BYTES, batch_bytes_max)
            .await?
        else {
            return Ok(());
        };
        let path = self.log_path();
        io::truncate(&path, found.position).at(&path)?;
        let base = found.header.base_offset.get() as u64;
        let restart = self.index.rewind((base - self.base_offset) as u32);
        let stop = self
            .scan_from(restart, found.position, batch_bytes_max)
            .await?;
        if let Some(stop) = stop {
            return Err(self.corrupt(self.size, stop.to_string()));
        }
        debug_assert_eq!(self.size, found.position);
        debug_assert_eq!(self.next_offset, base);
        if self.size == 0 {
            self.first_timestamp = None;
        }
        self.write_indexes().await
    }

    /// Writes both index files (not synced: they can always be rebuilt).
    pub(crate) async fn write_indexes(&self) -> Result<(), Error> {
        let path = self.path("index");
        io::write_file(&path, self.index.encode_offsets())
            .await
            .at(&path)?;
        let path = self.path("timeindex");
        io::write_file(&path, self.index.encode_times())
            .await
            .at(&path)
    }

    /// Closes the time index and writes both indexes: the segment takes no
    /// more batches.
    pub(crate) async fn seal(&mut self) -> Result<(), Error> {
        let end = (self.next_offset - self.base_offset) as u32;
        self.index.seal(end);
        self.write_indexes().await
    }

    /// Deletes the segment's files.
    pub(crate) async fn remove(self) -> Result<(), Error> {
        for extension in ["log", "index", "timeindex"] {
            let path = self.path(extension);
            io::remove_file(&path).await.at(&path)?;
        }
        Ok(())
    }
}
