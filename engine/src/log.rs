//! A partition's log: its segments in offset order, the append path, reads by
//! offset and by time, truncation, retention, and recovery on open.
//!
//! Owned by one shard and driven through `&mut self` for writes: no lock
//! guards it. An append reserves its place and submits its write, then
//! returns; the caller awaits the [`Durable`] ticket before acknowledging
//! (page cache for `never`/`interval`, a covering sync for `always`), so
//! several appends' writes can be in flight at once. Readers see only the
//! prefix of the log whose writes have all completed.

use crate::batch::{stamp_for_append, BatchView};
use crate::checkpoint::{self, CHECKPOINT_FILE};
use crate::direct::DirectWriter;
use crate::epochs::{EpochCache, EPOCHS_FILE};
use crate::error::{Error, IoContext};
use crate::flush::{Durable, Flusher, FsyncPolicy};
use crate::io;
use crate::retention::{self, Retention, SegmentStat};
use crate::segment::{self, Repair, Segment, Stored, Trust};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// Default largest segment: Kafka's `segment.bytes`.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Segment positions are u32 in the index.
pub const SEGMENT_BYTES_LIMIT: u64 = u32::MAX as u64;
/// Default largest batch an append takes. Kafka's default is 1 MiB; ringlog
/// allows more so a large record need not be split, while still bounding the
/// memory one request can pin.
pub const BATCH_BYTES_DEFAULT: usize = 8 << 20;
/// Default spacing of offset index entries: Kafka's `index.interval.bytes`.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Default time retention: Kafka's 7 days.
pub const RETENTION_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;

/// Settings of one partition's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment before the active one would exceed this.
    pub segment_bytes_max: u64,
    /// Roll when a batch is this much newer than the segment's first (ms).
    pub segment_ms_max: Option<u64>,
    /// Time and size retention.
    pub retention: Retention,
    /// When appends are fdatasync'ed.
    pub fsync: FsyncPolicy,
    /// Bytes between offset index entries.
    pub index_interval_bytes: u32,
    /// Largest batch an append takes, and the largest a read will trust.
    pub batch_bytes_max: usize,
    /// How appends reach the disk.
    pub write_mode: WriteMode,
    /// Compaction (`cleanup.policy` with `compact`): `None` for a log that
    /// only deletes by retention.
    pub compaction: Option<crate::compact::Compaction>,
}

/// How appends reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Through the page cache, the producer's buffer written as received.
    #[default]
    Buffered,
    /// With `O_DIRECT` into a preallocated segment, copied into aligned
    /// blocks first (see the `direct` module).
    Direct,
}

impl std::str::FromStr for WriteMode {
    type Err = String;

    /// Parses `buffered` or `direct`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "buffered" => Ok(WriteMode::Buffered),
            "direct" => Ok(WriteMode::Direct),
            _ => Err(format!("bad write mode {s:?}: expected buffered or direct")),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
            segment_ms_max: None,
            retention: Retention {
                retention_ms: Some(RETENTION_MS_DEFAULT),
                retention_bytes: None,
            },
            // Correct first: an acknowledged record survives a power cut.
            fsync: FsyncPolicy::Always,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            batch_bytes_max: BATCH_BYTES_DEFAULT,
            write_mode: WriteMode::Buffered,
            compaction: None,
        }
    }
}

impl LogConfig {
    fn validate(&self) -> Result<(), Error> {
        if self.segment_bytes_max == 0 || self.segment_bytes_max > SEGMENT_BYTES_LIMIT {
            return Err(Error::Config(format!(
                "segment_bytes_max {} must be in 1..={SEGMENT_BYTES_LIMIT}",
                self.segment_bytes_max
            )));
        }
        if self.batch_bytes_max as u64 > SEGMENT_BYTES_LIMIT {
            return Err(Error::Config(format!(
                "batch_bytes_max {} must be at most {SEGMENT_BYTES_LIMIT}",
                self.batch_bytes_max
            )));
        }
        if self.index_interval_bytes == 0 {
            return Err(Error::Config(
                "index_interval_bytes must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// What an append did.
#[must_use = "under fsync=always an append is not durable until `durable` resolves"]
pub struct Appended {
    /// Offset assigned to the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// Resolves when the batch is durable under the partition's policy.
    pub durable: Durable,
}

/// What opening a log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments found on disk.
    pub segments: usize,
    /// Offset below which nothing was validated (the checkpoint), if any.
    pub checkpoint: Option<u64>,
    /// Every repair, in segment order.
    pub repairs: Vec<Repair>,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Base offsets of the deleted segments.
    pub deleted_segments: Vec<u64>,
    /// Bytes freed.
    pub bytes_deleted: u64,
    /// Log start offset after the pass.
    pub log_start_offset: u64,
}

/// One partition's log.
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Every segment by base offset; the last is the active one.
    segments: BTreeMap<u64, Segment>,
    flusher: Flusher,
    /// Appends to the active segment whose writes may not have completed,
    /// oldest first.
    pending: VecDeque<Pending>,
    /// The checkpoint on disk: below it, everything is synced.
    recovery_point: u64,
    /// The active segment's direct appender, in `WriteMode::Direct`.
    direct: Option<DirectWriter>,
    /// The leader epochs of the log's batches, kept in `EPOCHS_FILE`.
    epochs: EpochCache,
}

/// Where an append whose write may still be in flight begins.
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    position: u64,
    offset: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering it: segments before the
    /// checkpoint are trusted, everything after it is validated, a torn or
    /// corrupt tail is cut off and damaged indexes are rebuilt.
    pub async fn open(dir: &Path, config: LogConfig) -> Result<(Self, RecoveryReport), Error> {
        config.validate()?;
        std::fs::create_dir_all(dir).at(dir)?;
        let mut clean_repairs = Vec::new();
        crate::compact::recover(dir, &mut clean_repairs).await?;
        let files = io::list_dir(dir).at(dir)?;
        for stale in files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        {
            io::remove_file(stale).await.at(stale)?;
        }
        let bases: Vec<u64> = files
            .iter()
            .filter_map(|p| segment::parse_log_name(p))
            .collect();
        let checkpoint_path = dir.join(CHECKPOINT_FILE);
        let checkpoint = io::read_file(&checkpoint_path)
            .await
            .at(&checkpoint_path)?
            .and_then(|b| checkpoint::decode(&b));
        let mut report = RecoveryReport {
            segments: bases.len(),
            checkpoint,
            repairs: clean_repairs,
        };
        let trusted_below = checkpoint.unwrap_or(0);

        let mut segments = BTreeMap::new();
        let mut expected: Option<u64> = None;
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(segment::file_name(base, "log"));
            if expected.is_some_and(|e| e != base) {
                // An earlier segment lost its tail: these offsets no longer
                // follow on, and a log has no holes.
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                tracing::warn!(segment = %path.display(), "dropping segment after a truncated one");
                for extension in ["log", "index", "timeindex"] {
                    let p = dir.join(segment::file_name(base, extension));
                    io::remove_file(&p).await.at(&p)?;
                }
                report.repairs.push(Repair::SegmentDropped {
                    segment: base,
                    bytes,
                });
                continue;
            }
            let trust = match bases.get(i + 1) {
                Some(&next) if next <= trusted_below => Trust::Sealed { end_offset: next },
                _ => Trust::Below(trusted_below),
            };
            let repairs_before = report.repairs.len();
            let mut seg = Segment::open(
                dir,
                base,
                trust,
                config.index_interval_bytes,
                config.batch_bytes_max,
                config.write_mode == WriteMode::Direct,
                &mut report.repairs,
            )
            .await?;
            let rebuilt = report.repairs[repairs_before..]
                .iter()
                .any(|r| matches!(r, Repair::IndexRebuilt { .. }));
            if rebuilt && i + 1 < bases.len() {
                seg.seal().await?;
            }
            expected = Some(seg.next_offset);
            segments.insert(base, seg);
        }
        // Removing files for dropped segments must survive a crash too.
        io::sync_dir(dir).at(dir)?;
        if segments.is_empty() {
            let seg = Segment::create(dir, 0, config.index_interval_bytes).await?;
            io::sync_dir(dir).at(dir)?;
            segments.insert(0, seg);
        }
        let active = segments.values().next_back().expect("a log has a segment");
        let flusher = Flusher::new(config.fsync, active.file.clone());
        if !report.repairs.is_empty() {
            tracing::info!(dir = %dir.display(), repairs = report.repairs.len(), "recovered partition log");
        }
        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            segments,
            flusher,
            pending: VecDeque::new(),
            recovery_point: checkpoint.unwrap_or(0),
            direct: None,
            epochs: EpochCache::new(),
        };
        log.open_direct().await?;
        log.load_epochs(checkpoint).await?;
        Ok((log, report))
    }

    /// Loads the leader-epoch cache and brings it in line with the recovered
    /// log. An entry is written before the first batch of its epoch, so the
    /// file holds every epoch below the checkpoint; batches after it are
    /// scanned, since a crash may have kept a batch whose entry was never
    /// written, or lost batches whose entries were. A missing or damaged
    /// file is rebuilt from every batch's `partitionLeaderEpoch`.
    async fn load_epochs(&mut self, checkpoint: Option<u64>) -> Result<(), Error> {
        let path = self.dir.join(EPOCHS_FILE);
        let stored = io::read_file(&path).await.at(&path)?;
        let (cache, scan_from, rewrite) = match stored.as_deref().map(EpochCache::decode) {
            Some(Ok(cache)) => (cache, checkpoint.unwrap_or(0), false),
            Some(Err(why)) => {
                tracing::warn!(file = %path.display(), "rebuilding the leader-epoch cache: {why}");
                (EpochCache::new(), 0, true)
            }
            // An empty log has nothing to rebuild: the first append writes it.
            None => (EpochCache::new(), 0, self.latest() > self.earliest()),
        };
        self.epochs = cache;
        let before = self.epochs.clone();
        self.epochs.truncate_from_end(self.latest());
        self.epochs.truncate_from_start(self.earliest());
        let mut offset = scan_from.max(self.earliest());
        while offset < self.latest() {
            let bytes = self.read(offset, 1 << 20).await?;
            let mut rest = &bytes[..];
            if rest.is_empty() {
                break;
            }
            while !rest.is_empty() {
                let view = BatchView::parse_crc_checked(rest, self.config.batch_bytes_max)?;
                let base = view.base_offset() as u64;
                let epoch = view.header().partition_leader_epoch.get();
                if epoch >= 0 {
                    self.epochs.assign(epoch, base);
                }
                offset = base + view.offset_count();
                rest = &rest[view.bytes().len()..];
            }
        }
        if rewrite || self.epochs != before {
            self.persist_epochs().await?;
        }
        Ok(())
    }

    async fn persist_epochs(&mut self) -> Result<(), Error> {
        let path = self.dir.join(EPOCHS_FILE);
        io::write_file_atomic(&path, self.epochs.encode(), true)
            .await
            .at(&path)
    }

    /// The leader epochs of the log's batches (persisted beside them).
    pub fn epochs(&self) -> &EpochCache {
        &self.epochs
    }

    /// Records that `epoch` starts at `start_offset` (a replica that becomes
    /// leader does so at its log end before it appends anything), and
    /// persists the cache if that changed it.
    pub async fn assign_epoch(&mut self, epoch: i32, start_offset: u64) -> Result<(), Error> {
        if self.epochs.assign(epoch, start_offset) {
            self.persist_epochs().await?;
        }
        Ok(())
    }

    /// In direct mode, opens the active segment's direct appender. A file
    /// system without `O_DIRECT` (tmpfs, some overlays) refuses it with
    /// `EINVAL`: the log then writes through the page cache, and says so.
    async fn open_direct(&mut self) -> Result<(), Error> {
        if self.config.write_mode != WriteMode::Direct {
            return Ok(());
        }
        let active = self.active();
        let path = active.path("log");
        match DirectWriter::open(
            &path,
            &active.file,
            active.size,
            self.config.segment_bytes_max,
            self.flusher.clone(),
        )
        .await
        {
            Ok(writer) => {
                self.active_mut().recent = Some(writer.recent.clone());
                self.direct = Some(writer);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    "O_DIRECT is not supported here ({e}): writing through the page cache"
                );
                self.config.write_mode = WriteMode::Buffered;
                self.direct = None;
            }
            Err(e) => return Err(e).at(&path),
        }
        Ok(())
    }

    /// In direct mode, cuts the active segment's preallocated zeros off.
    /// No write may be in flight.
    fn trim_active(&mut self) -> Result<(), Error> {
        let path = self.active().path("log");
        match &mut self.direct {
            Some(d) => d.trim(&path).at(&path),
            None => Ok(()),
        }
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Takes the settings that may change while the log is open (retention
    /// and compaction, read at each retention pass, clean and append); the
    /// rest (segment size, fsync, write mode, ...) stay as opened.
    pub fn reconfigure(&mut self, config: &LogConfig) {
        self.config.retention = config.retention;
        self.config.compaction = config.compaction;
    }

    /// Log start offset: the first offset still held.
    pub fn earliest(&self) -> u64 {
        *self.segments.keys().next().expect("a log has a segment")
    }

    /// Log end offset as readers see it: every record below it has been
    /// written. Appends in flight are above it.
    pub fn latest(&self) -> u64 {
        self.visible_end().1
    }

    /// The offset the next append gets.
    pub fn next_offset(&self) -> u64 {
        self.active().next_offset
    }

    /// Position and offset of the end of the active segment's completed
    /// prefix: where the first append whose write is unfinished begins.
    fn visible_end(&self) -> (u64, u64) {
        let written = self.flusher.written();
        match self.pending.iter().find(|p| p.seq > written) {
            Some(p) => (p.position, p.offset),
            None => (self.active().size, self.active().next_offset),
        }
    }

    fn forget_written(&mut self) {
        let written = self.flusher.written();
        while self.pending.front().is_some_and(|p| p.seq <= written) {
            self.pending.pop_front();
        }
    }

    /// Waits until every submitted write has reached the page cache.
    pub async fn flush_writes(&mut self) -> Result<(), Error> {
        self.flusher.drain().await.map_err(Error::Failed)?;
        self.forget_written();
        Ok(())
    }

    /// Bytes held in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// Base offset of the active segment: it changes when the log rolls.
    pub fn active_base(&self) -> u64 {
        self.active().base_offset
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// Every sealed segment as (base offset, end offset, bytes), oldest
    /// first: all but the active one.
    pub(crate) fn sealed(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        // A segment ends where the next begins.
        self.segments
            .iter()
            .zip(self.segments.keys().skip(1))
            .map(|((&base, seg), &end)| (base, end, seg.size))
    }

    /// Drops a sealed segment from the log's map (its files were replaced).
    pub(crate) fn forget_segment(&mut self, base: u64) {
        if base != self.active_base() {
            self.segments.remove(&base);
        }
    }

    /// Takes a sealed segment that replaced others at its base.
    pub(crate) fn adopt_segment(&mut self, seg: Segment) {
        self.segments.insert(seg.base_offset, seg);
    }

    /// fdatasync calls made on the data so far (for tests and metrics).
    pub fn sync_count(&self) -> u64 {
        self.flusher.sync_count()
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log has a segment")
    }

    /// Appends one batch exactly as received: validates it whole, stamps its
    /// base offset and leader epoch in place and submits the write of that
    /// same buffer. Returns once the write is submitted (waiting first if
    /// [`crate::flush::WRITES_IN_FLIGHT_MAX`] are in flight); await
    /// [`Appended::durable`] before acknowledging it.
    pub async fn append<B: crate::BatchBuf>(
        &mut self,
        mut batch: B,
        leader_epoch: i32,
    ) -> Result<Appended, Error> {
        self.flusher.check().map_err(Error::Failed)?;
        let view = BatchView::parse(&batch, self.config.batch_bytes_max)?;
        let trailing = batch.len() - view.bytes().len();
        if trailing != 0 {
            return Err(Error::TrailingBytes(trailing));
        }
        let offset_count = view.offset_count();
        let max_timestamp = view.max_timestamp();
        self.flusher.wait_for_room().await.map_err(Error::Failed)?;
        self.forget_written();
        self.maybe_roll(batch.len() as u64, offset_count, max_timestamp)
            .await?;
        // Whatever can fail comes before the position is reserved, so a
        // failure leaves nothing reserved that no write fills: the file's
        // room in direct mode, the descriptor otherwise.
        let file = match &mut self.direct {
            Some(d) => {
                if let Err(e) = d.allocate_for(batch.len() as u64).await {
                    return Err(e).at(&self.active().path("log"));
                }
                None
            }
            None => {
                let active = self.active();
                Some(active.file.get().await.at(&active.path("log"))?)
            }
        };
        let base_offset = self.next_offset();
        if leader_epoch >= 0 && self.epochs.assign(leader_epoch, base_offset) {
            self.persist_epochs().await?;
        }
        stamp_for_append(&mut batch, base_offset as i64, leader_epoch)?;
        let active = self.active_mut();
        let position = active.reserve(batch.len() as u64, offset_count, max_timestamp);
        let durable = match (file, &mut self.direct) {
            (Some(file), _) => self.flusher.submit(file, batch, position),
            (None, Some(d)) => {
                let durable = self.flusher.next_ticket();
                d.stage(&batch, durable.seq());
                durable
            }
            (None, None) => unreachable!("no descriptor only in direct mode"),
        };
        self.pending.push_back(Pending {
            seq: durable.seq(),
            position,
            offset: base_offset,
        });
        Ok(Appended {
            base_offset,
            last_offset: base_offset + offset_count - 1,
            durable,
        })
    }

    /// Appends a batch copied from the leader, byte for byte: it must start
    /// at this log's end, and keeps the leader's base offset and epoch.
    pub async fn append_replica<B: crate::BatchBuf>(
        &mut self,
        batch: B,
    ) -> Result<Appended, Error> {
        let view = BatchView::parse_crc_checked(&batch, self.config.batch_bytes_max)?;
        let (base, epoch) = (
            view.base_offset(),
            view.header().partition_leader_epoch.get(),
        );
        let expected = self.next_offset();
        if base != expected as i64 {
            return Err(Error::NotContiguous {
                expected,
                found: base,
            });
        }
        self.append(batch, epoch).await
    }

    async fn maybe_roll(
        &mut self,
        size: u64,
        offset_count: u64,
        max_timestamp: i64,
    ) -> Result<(), Error> {
        let active = self.active();
        if active.size == 0 {
            return Ok(());
        }
        let too_big = active.size + size > self.config.segment_bytes_max;
        let offsets_full =
            active.next_offset - active.base_offset + offset_count > u64::from(u32::MAX);
        let too_old = match (self.config.segment_ms_max, active.first_timestamp) {
            (Some(ms), Some(first)) => {
                i128::from(max_timestamp) - i128::from(first) > i128::from(ms)
            }
            _ => false,
        };
        if too_big || offsets_full || too_old {
            self.roll().await?;
        }
        Ok(())
    }

    /// Seals the active segment, syncs it, starts a new one at the log end
    /// and moves the checkpoint there.
    async fn roll(&mut self) -> Result<(), Error> {
        self.flush_writes().await?;
        self.trim_active()?;
        let next = self.next_offset();
        let sealing = self.active_mut();
        // Sealed segments are read from the file (the window goes with the
        // direct appender).
        sealing.recent = None;
        sealing.seal().await?;
        let file = sealing.file.clone();
        self.flusher.sync_file(&file).await.map_err(Error::Failed)?;
        let seg = Segment::create(&self.dir, next, self.config.index_interval_bytes).await?;
        io::sync_dir(&self.dir).at(&self.dir)?;
        self.flusher.set_file(seg.file.clone());
        self.segments.insert(next, seg);
        self.open_direct().await?;
        self.write_checkpoint(next).await
    }

    async fn write_checkpoint(&mut self, offset: u64) -> Result<(), Error> {
        let path = self.dir.join(CHECKPOINT_FILE);
        io::write_file_atomic(&path, checkpoint::encode(offset), true)
            .await
            .at(&path)?;
        self.recovery_point = offset;
        Ok(())
    }

    fn out_of_range(&self, offset: u64) -> Error {
        Error::OffsetOutOfRange {
            offset,
            start: self.earliest(),
            end: self.latest(),
        }
    }

    /// The stored bytes of whole batches, starting with the batch that holds
    /// `offset` (Kafka semantics: it may begin before `offset`), up to
    /// `max_bytes` but always at least one batch. Empty at the log end. Every
    /// batch's CRC is checked before it is served.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> Result<Vec<u8>, Error> {
        for seg in self.segments_from(offset)? {
            if let Some(bytes) = seg
                .read(
                    offset,
                    self.readable_end(seg),
                    max_bytes,
                    self.config.batch_bytes_max,
                )
                .await?
            {
                return Ok(bytes);
            }
        }
        Ok(Vec::new())
    }

    /// What [`Log::read`] would answer, left in the segment file when it is
    /// `file_bytes_min` bytes or more (see [`crate::FileRange`]: the caller
    /// sends it with `sendfile`, and its CRCs are not checked here), read
    /// and checked when it is smaller. Empty bytes at the log end.
    pub async fn locate(
        &self,
        offset: u64,
        max_bytes: usize,
        file_bytes_min: usize,
    ) -> Result<Stored, Error> {
        for seg in self.segments_from(offset)? {
            if let Some(found) = seg
                .locate(
                    offset,
                    self.readable_end(seg),
                    max_bytes,
                    self.config.batch_bytes_max,
                    file_bytes_min,
                )
                .await?
            {
                return Ok(found);
            }
        }
        Ok(Stored::Bytes(Vec::new()))
    }

    /// The segments a read at `offset` walks: the one holding it, then on.
    fn segments_from(&self, offset: u64) -> Result<impl Iterator<Item = &Segment>, Error> {
        if offset < self.earliest() || offset > self.latest() {
            return Err(self.out_of_range(offset));
        }
        let from = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(self.earliest(), |(&base, _)| base);
        Ok(self.segments.range(from..).map(|(_, s)| s))
    }

    /// How far readers may read in `seg`: all of a sealed segment, the
    /// completed prefix of the active one.
    fn readable_end(&self, seg: &Segment) -> u64 {
        if seg.base_offset == self.active().base_offset {
            self.visible_end().0
        } else {
            seg.size
        }
    }

    /// The offset of the first record whose timestamp is >= `timestamp`, or
    /// `None` if every record is older (Kafka's ListOffsets by time).
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<u64>, Error> {
        for seg in self.segments.values() {
            if let Some(offset) = seg
                .offset_for_timestamp(
                    timestamp,
                    self.readable_end(seg),
                    self.config.batch_bytes_max,
                )
                .await?
            {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// Removes every record at `offset` and after, so the log ends at the
    /// start of the batch that held `offset` (batches are never split; a
    /// follower truncates at batch boundaries). Below the log start, the log
    /// is emptied and restarts at `offset`. Durable when it returns.
    pub async fn truncate_to(&mut self, offset: u64) -> Result<(), Error> {
        self.flush_writes().await?;
        if offset >= self.latest() {
            return Ok(());
        }
        let emptied = offset < self.earliest();
        // Lower the checkpoint first: a crash half-way must not trust bytes
        // that are about to change.
        if self.recovery_point > offset {
            self.write_checkpoint(offset).await?;
        }
        let doomed: Vec<u64> = if offset < self.earliest() {
            self.segments.keys().copied().collect()
        } else {
            self.segments.range(offset + 1..).map(|(&b, _)| b).collect()
        };
        for base in doomed {
            if let Some(seg) = self.segments.remove(&base) {
                seg.remove().await?;
            }
        }
        match self.segments.values_mut().next_back() {
            Some(seg) => seg.truncate_to(offset, self.config.batch_bytes_max).await?,
            None => {
                let seg =
                    Segment::create(&self.dir, offset, self.config.index_interval_bytes).await?;
                self.segments.insert(offset, seg);
            }
        }
        io::sync_dir(&self.dir).at(&self.dir)?;
        let file = self.active().file.clone();
        self.flusher.set_file(file.clone());
        self.open_direct().await?;
        self.flusher.sync_file(&file).await.map_err(Error::Failed)?;
        let before = self.epochs.entries().len();
        self.epochs.truncate_from_end(self.latest());
        if emptied {
            self.epochs = EpochCache::new();
        }
        if emptied || self.epochs.entries().len() != before {
            self.persist_epochs().await?;
        }
        Ok(())
    }

    /// Deletes whole segments past retention at `now_ms`, oldest first, never
    /// the active one; the log start offset moves to the first kept segment.
    pub async fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionReport, Error> {
        let stats: Vec<SegmentStat> = self
            .segments
            .values()
            .map(|s| SegmentStat {
                size_bytes: s.size,
                max_timestamp: s.index.max_timestamp(),
            })
            .collect();
        let count = retention::expired(&stats, now_ms, self.config.retention);
        self.delete_oldest(count, "retention").await
    }

    /// Deletes every segment whose records all lie below `offset` (never the
    /// active one), as Kafka's DeleteRecords does at a segment boundary.
    pub async fn delete_segments_below(&mut self, offset: u64) -> Result<RetentionReport, Error> {
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        // A segment ends where the next begins; the last is the active one.
        let count = bases.windows(2).take_while(|w| w[1] <= offset).count();
        self.delete_oldest(count, "compaction").await
    }

    async fn delete_oldest(&mut self, count: usize, why: &str) -> Result<RetentionReport, Error> {
        let mut report = RetentionReport::default();
        for _ in 0..count.min(self.segments.len().saturating_sub(1)) {
            let Some((_, seg)) = self.segments.pop_first() else {
                break;
            };
            report.deleted_segments.push(seg.base_offset);
            report.bytes_deleted += seg.size;
            seg.remove().await?;
        }
        if !report.deleted_segments.is_empty() {
            io::sync_dir(&self.dir).at(&self.dir)?;
            tracing::info!(
                dir = %self.dir.display(),
                segments = report.deleted_segments.len(),
                bytes = report.bytes_deleted,
                "{why} deleted segments"
            );
        }
        report.log_start_offset = self.earliest();
        let before = self.epochs.clone();
        self.epochs.truncate_from_start(self.earliest());
        if self.epochs != before {
            self.persist_epochs().await?;
        }
        Ok(report)
    }

    /// Syncs everything appended so far, whatever the policy.
    pub async fn sync(&mut self) -> Result<(), Error> {
        self.flush_writes().await?;
        let file = self.active().file.clone();
        self.flusher.sync_file(&file).await.map_err(Error::Failed)
    }

    /// Syncs the data, writes the active segment's indexes and moves the
    /// checkpoint to the log end, so the next open validates nothing.
    pub async fn close(mut self) -> Result<(), Error> {
        self.flush_writes().await?;
        self.trim_active()?;
        self.sync().await?;
        self.active().write_indexes().await?;
        let end = self.latest();
        self.write_checkpoint(end).await
    }
}
