//! Log compaction (Kafka's log cleaner, `cleanup.policy=compact`): sealed
//! segments are rewritten keeping only the latest record of each key.
//!
//! A clean has three parts, so that the partition is never stopped for the
//! long one:
//!
//! 1. [`Log::plan_clean`] takes the list of sealed segments (never the active
//!    one) and where the dirty part begins (`cleaner.checkpoint`: below it,
//!    a previous clean left one record per key).
//! 2. [`prepare`] reads those segment files on its own, builds the offset map
//!    (key -> latest offset) over the dirty part, bounded by `map_bytes`
//!    (Kafka's `log.cleaner.dedupe.buffer.size`), and writes the cleaned
//!    segments beside the old ones as `<base>.log.cleaned` (synced) with
//!    their `.index.cleaned` and `.timeindex.cleaned`. Consecutive segments
//!    are merged into one while what is written fits a segment.
//! 3. [`Log::install`] swaps them in: it writes `clean.manifest` (the commit
//!    point: atomic, synced), then per cleaned segment deletes the old
//!    segments it replaces and renames the new files into place, then
//!    deletes the manifest. [`recover`] runs at every open: with a manifest
//!    it finishes the swap, without one it deletes every `.cleaned` file.
//!    A crash at any point therefore leaves the old segments or the new
//!    ones, never a mix.
//!
//! Offsets never change: a rewritten batch keeps its base offset, base
//! timestamp, producer fields and leader epoch, and only loses records, so
//! the offsets of a compacted log have gaps inside batches, as Kafka's do.
//! Batches still follow on without holes (the engine checks that every
//! batch starts where the one before ended, because the CRC does not cover
//! `baseOffset`): the offsets of a batch that loses every record are taken
//! over by the batch before it (its `lastOffsetDelta` grows, as Kafka's
//! readers expect of compacted batches) when that batch has no producer id,
//! or else by an empty batch (no records, 61 bytes) in their place.
//!
//! A record is kept when it has no key, when it is at or above the end of
//! the offset map, or when no later record of its key is in the map; a
//! tombstone (null value) that is the latest of its key is removed once its
//! timestamp is `delete_retention_ms` old. Compressed batches are
//! decompressed, filtered and compressed again with the same codec.
//! Transactional and control batches are kept as they are.

use crate::batch::{
    assemble, reseal, BatchHeader, BatchView, ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_BYTES,
};
use crate::error::{Error, IoContext};
use crate::index::SegmentIndex;
use crate::io;
use crate::log::Log;
use crate::segment::{self, Repair, Segment, Trust};
use ringlog_format::compression;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::FromBytes;

/// The swap in progress: which cleaned segments replace which old ones.
pub const MANIFEST_FILE: &str = "clean.manifest";
/// Where the dirty part of the log begins.
pub const CHECKPOINT_FILE: &str = "cleaner.checkpoint";
/// Extension added to a cleaned segment's files until they are swapped in.
const CLEANED: &str = "cleaned";
/// Kafka's `delete.retention.ms` default: a day.
pub const DELETE_RETENTION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;
/// Kafka's `log.cleaner.dedupe.buffer.size` default (128 MiB).
pub const MAP_BYTES_DEFAULT: usize = 128 << 20;
/// What one key is counted against `map_bytes`: a table bucket, its 16-byte
/// digest and 8-byte offset padded to 32. The table's control bytes and
/// spare capacity (up to twice the buckets while it grows) come on top.
const MAP_ENTRY_BYTES: usize = 32;
/// Bytes read from a segment per step.
const READ_CHUNK_BYTES: usize = 4 << 20;
/// Bytes gathered before a cleaned segment's buffer is written.
const WRITE_CHUNK_BYTES: usize = 4 << 20;
/// The most a compressed batch's records may inflate to.
const DECOMPRESSED_MAX: usize = 256 << 20;

/// A log's compaction settings (present when its policy includes compact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// How long a tombstone stays readable (Kafka's `delete.retention.ms`).
    pub delete_retention_ms: u64,
}

impl Default for Compaction {
    fn default() -> Self {
        Self {
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
        }
    }
}

/// How one clean runs.
#[derive(Debug, Clone, Copy)]
pub struct CleanOptions {
    /// Bound of the offset map in bytes.
    pub map_bytes: usize,
    /// Clean even when less than half of the sealed bytes are dirty (Kafka
    /// waits for `min.cleanable.dirty.ratio`, 0.5).
    pub force: bool,
    /// For crash tests: fail as a killed process would, before the file
    /// step with this number (0 is the first), leaving the files as they are.
    pub crash_before_step: Option<u32>,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self {
            map_bytes: MAP_BYTES_DEFAULT,
            force: false,
            crash_before_step: None,
        }
    }
}

/// What one clean did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    /// Below this offset the log holds one record per key (the end of the
    /// offset map); at and above it, everything. 0 when nothing was cleaned.
    pub cleaned_below: u64,
    /// Sealed segments before and after.
    pub segments_before: usize,
    /// Sealed segments after.
    pub segments_after: usize,
    /// Bytes of the segments that were read.
    pub bytes_read: u64,
    /// Bytes of the segments that replaced them.
    pub bytes_written: u64,
    /// Records read.
    pub records_read: u64,
    /// Records removed because a later record has their key.
    pub records_superseded: u64,
    /// Tombstones removed after `delete_retention_ms`.
    pub tombstones_removed: u64,
}

/// A clean about to be prepared: what it reads and how.
#[derive(Debug, Clone)]
pub struct CleanPlan {
    dir: PathBuf,
    /// Every sealed segment, oldest first.
    segments: Vec<Sealed>,
    dirty_start: u64,
    segment_bytes_max: u64,
    batch_bytes_max: usize,
    index_interval_bytes: u32,
    /// Tombstones older than this (ms) are removed.
    tombstone_horizon: i64,
    options: CleanOptions,
}

impl CleanPlan {
    /// The partition directory it cleans.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A sealed segment as the plan saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sealed {
    base: u64,
    end: u64,
    size: u64,
}

/// A cleaned segment written beside the segments it replaces.
#[derive(Debug, Clone)]
struct Group {
    base: u64,
    end: u64,
    replaces: Vec<Sealed>,
}

/// A clean whose files are written, waiting for [`Log::install`].
#[derive(Debug)]
pub struct Prepared {
    plan: CleanPlan,
    groups: Vec<Group>,
    report: CleanReport,
    steps: Steps,
}

/// Counts file steps, and fails at the injected one.
#[derive(Debug, Clone, Copy)]
struct Steps {
    next: u32,
    crash_before: Option<u32>,
}

impl Steps {
    fn step(&mut self) -> Result<(), Error> {
        let n = self.next;
        self.next += 1;
        if self.crash_before == Some(n) {
            return Err(Error::Failed(format!(
                "crash injected before clean step {n}"
            )));
        }
        Ok(())
    }
}

fn cleaned_path(dir: &Path, base: u64, extension: &str) -> PathBuf {
    dir.join(format!("{}.{CLEANED}", segment::file_name(base, extension)))
}

impl Log {
    /// What a clean would read now, or `None` when the log is not compacted,
    /// has no sealed segment, or (unless forced) less than half of its
    /// sealed bytes are dirty.
    pub async fn plan_clean(
        &self,
        now_ms: i64,
        options: CleanOptions,
    ) -> Result<Option<CleanPlan>, Error> {
        let Some(compaction) = self.config().compaction else {
            return Ok(None);
        };
        let segments: Vec<Sealed> = self
            .sealed()
            .map(|(base, end, size)| Sealed { base, end, size })
            .collect();
        if segments.is_empty() {
            return Ok(None);
        }
        let dirty_start = read_checkpoint(self.dir())
            .await?
            .unwrap_or(0)
            .max(self.earliest());
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let dirty: u64 = segments
            .iter()
            .filter(|s| s.end > dirty_start)
            .map(|s| s.size)
            .sum();
        if dirty == 0 || (!options.force && dirty * 2 < total) {
            return Ok(None);
        }
        let config = self.config();
        Ok(Some(CleanPlan {
            dir: self.dir().to_path_buf(),
            segments,
            dirty_start,
            segment_bytes_max: config.segment_bytes_max,
            batch_bytes_max: config.batch_bytes_max,
            index_interval_bytes: config.index_interval_bytes,
            tombstone_horizon: now_ms
                .saturating_sub(i64::try_from(compaction.delete_retention_ms).unwrap_or(i64::MAX)),
            options,
        }))
    }

    /// Plans, prepares and installs one clean, holding the log throughout:
    /// for tools and tests. A broker prepares without the log and installs
    /// briefly.
    pub async fn clean(
        &mut self,
        now_ms: i64,
        options: CleanOptions,
    ) -> Result<CleanReport, Error> {
        match self.plan_clean(now_ms, options).await? {
            Some(plan) => {
                let prepared = prepare(plan).await?;
                self.install(prepared).await
            }
            None => Ok(CleanReport::default()),
        }
    }

    /// Swaps a prepared clean in (see the module doc). If the segments it
    /// read changed meanwhile (retention deleted one, a follower truncated),
    /// its files are deleted and nothing else changes.
    pub async fn install(&mut self, prepared: Prepared) -> Result<CleanReport, Error> {
        let Prepared {
            plan,
            groups,
            mut report,
            mut steps,
        } = prepared;
        let current: Vec<(u64, u64, u64)> = self.sealed().collect();
        let unchanged = groups.iter().all(|g| {
            g.replaces
                .iter()
                .all(|s| current.contains(&(s.base, s.end, s.size)))
        });
        if !unchanged {
            tracing::info!(dir = %plan.dir.display(), "log changed during its clean: clean dropped");
            for g in &groups {
                remove_cleaned(&plan.dir, g.base).await?;
            }
            return Ok(CleanReport::default());
        }
        if !groups.is_empty() {
            steps.step()?;
            let manifest: Vec<(u64, u64)> = groups.iter().map(|g| (g.base, g.end)).collect();
            let path = plan.dir.join(MANIFEST_FILE);
            io::write_file_atomic(&path, encode_manifest(&manifest), true)
                .await
                .at(&path)?;
            complete_swap(&plan.dir, &manifest, &mut steps).await?;
            steps.step()?;
            io::remove_file(&path).await.at(&path)?;
            io::sync_dir(&plan.dir).at(&plan.dir)?;
            let mut repairs = Vec::new();
            for g in &groups {
                for s in &g.replaces {
                    self.forget_segment(s.base);
                }
                let seg = Segment::open(
                    &plan.dir,
                    g.base,
                    Trust::Sealed { end_offset: g.end },
                    plan.index_interval_bytes,
                    plan.batch_bytes_max,
                    false,
                    &mut repairs,
                )
                .await?;
                self.adopt_segment(seg);
            }
            for r in repairs {
                tracing::warn!(dir = %plan.dir.display(), "cleaned segment repaired on open: {r:?}");
            }
        }
        steps.step()?;
        let path = plan.dir.join(CHECKPOINT_FILE);
        io::write_file_atomic(&path, encode_checkpoint(report.cleaned_below), true)
            .await
            .at(&path)?;
        report.segments_after = self.sealed().count();
        Ok(report)
    }
}

/// Reads the planned segments and writes the cleaned ones beside them,
/// without the log: nothing it does is visible until [`Log::install`].
pub async fn prepare(plan: CleanPlan) -> Result<Prepared, Error> {
    let mut steps = Steps {
        next: 0,
        crash_before: plan.options.crash_before_step,
    };
    let (map, map_end) = build_map(&plan).await?;
    let mut report = CleanReport {
        cleaned_below: map_end,
        segments_before: plan.segments.len(),
        ..CleanReport::default()
    };
    let mut groups = Vec::new();
    let cleanable: Vec<Sealed> = plan
        .segments
        .iter()
        .copied()
        .filter(|s| s.base < map_end)
        .collect();
    let mut at = 0;
    while at < cleanable.len() {
        let base = cleanable[at].base;
        let mut writer = Writer::create(&plan, base).await?;
        let mut changed = false;
        let first = at;
        // Segments join this one while what is written so far plus the
        // next one's old size (its cleaned size is never more) fits a
        // segment, so a clean merges the segments it empties.
        while let Some(&s) = cleanable.get(at) {
            let fits = at == first
                || (writer.size() + s.size <= plan.segment_bytes_max
                    && s.end - base < u64::from(u32::MAX));
            if !fits {
                break;
            }
            changed |= at > first;
            at += 1;
            report.bytes_read += s.size;
            let mut reader = Reader::open(&plan, s).await?;
            while let Some(chunk) = reader.next_chunk().await? {
                for view in reader.views(&chunk) {
                    let view = view?;
                    let verdict = filter(&view, &map, map_end, plan.tombstone_horizon, &mut report)
                        .map_err(|e| reader.corrupt(e.to_string()))?;
                    match verdict {
                        Verdict::KeepAll => writer.keep(view.bytes().to_vec()),
                        Verdict::Rewritten(batch) => {
                            changed = true;
                            writer.keep(batch);
                        }
                        Verdict::Dropped => {
                            changed = true;
                            let epoch = view.header().partition_leader_epoch.get();
                            writer.skip(
                                view.base_offset() as u64,
                                view.last_offset() as u64 + 1,
                                epoch,
                            );
                        }
                    }
                    writer.maybe_flush().await?;
                }
            }
        }
        let members = &cleanable[first..at];
        let end = members[members.len() - 1].end;
        if !changed {
            writer.abandon().await?;
            report.bytes_written += members.iter().map(|s| s.size).sum::<u64>();
            continue;
        }
        report.bytes_written += writer.finish(end, &mut steps).await?;
        groups.push(Group {
            base,
            end,
            replaces: members.to_vec(),
        });
    }
    report.bytes_written += plan
        .segments
        .iter()
        .filter(|s| s.base >= map_end)
        .map(|s| s.size)
        .sum::<u64>();
    Ok(Prepared {
        plan,
        groups,
        report,
        steps,
    })
}

/// The latest offset of every key in the dirty part, from its start to a
/// batch boundary where the map is full (or the last sealed segment ends).
async fn build_map(plan: &CleanPlan) -> Result<(OffsetMap, u64), Error> {
    let mut map = OffsetMap::new();
    let mut pending: Vec<(u128, u64)> = Vec::new();
    let mut end = plan.dirty_start;
    for s in plan.segments.iter().filter(|s| s.end > plan.dirty_start) {
        let mut reader = Reader::open(plan, *s).await?;
        while let Some(chunk) = reader.next_chunk().await? {
            for view in reader.views(&chunk) {
                let view = view?;
                let after = view.last_offset() as u64 + 1;
                if after <= plan.dirty_start {
                    continue;
                }
                // Its record count bounds what a batch can add; a full map
                // ends the clean here (always after at least one batch).
                let worst = view.header().record_count.get().max(0) as usize * MAP_ENTRY_BYTES;
                if map.bytes > 0 && map.bytes + worst > plan.options.map_bytes {
                    return Ok((map, end));
                }
                if !skips_compaction(view.header()) {
                    // Digests first, then the table in a tight loop: its
                    // cache misses overlap instead of waiting on hashing.
                    pending.clear();
                    each_record(&view, |offset, key, _| {
                        if let Some(key) = key {
                            pending.push((map.digest(key), offset));
                        }
                    })
                    .map_err(|e| reader.corrupt(e.to_string()))?;
                    for &(digest, offset) in &pending {
                        map.insert(digest, offset);
                    }
                }
                end = after;
            }
        }
        end = end.max(s.end);
    }
    Ok((map, end))
}

/// Key -> latest offset, by a 128-bit digest of the key rather than the key
/// itself, as Kafka's offset map holds an MD5 digest: one fixed-size entry
/// per key and no key bytes to fetch and compare (the cleaner's time went
/// to cache misses on boxed keys). The digest is two SipHash-1-3 hashes
/// under keys drawn at random for each clean, so producers cannot aim
/// two keys at one digest; distinct keys collide with a probability of
/// about n^2 / 2^129 (1e-27 for a billion keys).
struct OffsetMap {
    keys: HashMap<u128, u64, BuildHasherDefault<DigestHasher>>,
    digest: (RandomState, RandomState),
    bytes: usize,
}

impl OffsetMap {
    fn new() -> Self {
        Self {
            keys: HashMap::default(),
            digest: (RandomState::new(), RandomState::new()),
            bytes: 0,
        }
    }

    fn digest(&self, key: &[u8]) -> u128 {
        (u128::from(self.digest.0.hash_one(key)) << 64) | u128::from(self.digest.1.hash_one(key))
    }

    fn insert(&mut self, digest: u128, offset: u64) {
        if self.keys.insert(digest, offset).is_none() {
            self.bytes += MAP_ENTRY_BYTES;
        }
    }

    /// The latest offset of the key with `digest` in the map's range.
    fn latest(&self, digest: u128) -> Option<u64> {
        self.keys.get(&digest).copied()
    }
}

/// The table's hash of a digest: its low 64 bits, already uniform.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only digests are hashed here (`write_u128`); fold anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// The index of the first record without a key in a batch offered to a
/// compacted log, if it has one. A batch that does not parse is left to
/// the append's own validation.
pub fn first_keyless(batch: &[u8]) -> Option<usize> {
    let view = BatchView::parse_crc_checked(batch, usize::MAX).ok()?;
    if skips_compaction(view.header()) {
        return None;
    }
    let mut found = None;
    let mut index = 0;
    let _ = each_record(&view, |_, key, _| {
        if key.is_none() && found.is_none() {
            found = Some(index);
        }
        index += 1;
    });
    found
}

/// Batches the cleaner leaves alone: a transaction's records and markers.
fn skips_compaction(header: &BatchHeader) -> bool {
    header.attributes.get() & (ATTR_CONTROL | ATTR_TRANSACTIONAL) != 0
}

/// Calls `f(offset, key, is_tombstone)` for each record of the batch,
/// decompressing it first if needed.
fn each_record(
    view: &BatchView<'_>,
    mut f: impl FnMut(u64, Option<&[u8]>, bool),
) -> Result<(), crate::batch::BatchError> {
    let plain = compression::decompressed_batch(view, DECOMPRESSED_MAX)?;
    let view = BatchView::parse_crc_checked(&plain, usize::MAX)?;
    for record in view.records()? {
        let record = record?;
        f(record.offset as u64, record.key, record.value.is_none());
    }
    Ok(())
}

enum Verdict {
    KeepAll,
    Rewritten(Vec<u8>),
    Dropped,
}

/// What the clean keeps of one batch.
fn filter(
    view: &BatchView<'_>,
    map: &OffsetMap,
    map_end: u64,
    tombstone_horizon: i64,
    report: &mut CleanReport,
) -> Result<Verdict, crate::batch::BatchError> {
    let count = view.header().record_count.get().max(0) as u64;
    report.records_read += count;
    if skips_compaction(view.header()) || view.base_offset() as u64 >= map_end {
        return Ok(Verdict::KeepAll);
    }
    let codec = view.compression();
    let plain = compression::decompressed_batch(view, DECOMPRESSED_MAX)?;
    let records_view = BatchView::parse_crc_checked(&plain, usize::MAX)?;
    let records = records_view.records()?.collect::<Result<Vec<_>, _>>()?;
    // Digests first, then the lookups in a tight loop (their cache misses
    // overlap), then the verdicts.
    let digests: Vec<Option<u128>> = records
        .iter()
        .map(|r| {
            r.key
                .filter(|_| (r.offset as u64) < map_end)
                .map(|k| map.digest(k))
        })
        .collect();
    let latest: Vec<Option<u64>> = digests
        .iter()
        .map(|d| d.and_then(|d| map.latest(d)))
        .collect();
    let mut kept = Vec::new();
    let mut kept_count = 0i32;
    for (record, latest) in records.iter().zip(latest) {
        let offset = record.offset as u64;
        let keep = match record.key {
            None => true,
            Some(_) if offset >= map_end => true,
            Some(_) => match latest {
                Some(latest) if latest > offset => {
                    report.records_superseded += 1;
                    false
                }
                _ if record.value.is_none() && record.timestamp < tombstone_horizon => {
                    report.tombstones_removed += 1;
                    false
                }
                _ => true,
            },
        };
        if keep {
            kept.extend_from_slice(record.encoded());
            kept_count += 1;
        }
    }
    if i64::from(kept_count) == count as i64 {
        return Ok(Verdict::KeepAll);
    }
    if kept_count == 0 {
        return Ok(Verdict::Dropped);
    }
    let records = if codec == 0 {
        kept
    } else {
        compression::compress(
            codec,
            &kept,
            compression::is_xerial(&view.bytes()[HEADER_BYTES..]),
        )?
    };
    let mut header = *view.header();
    header.record_count = I32::new(kept_count);
    Ok(Verdict::Rewritten(assemble(&header, &records)))
}

/// Reads one sealed segment's batches a chunk at a time, checking that
/// each starts where the one before ended.
struct Reader {
    file: tokio_uring::fs::File,
    path: PathBuf,
    position: u64,
    size: u64,
    expected: u64,
    batch_bytes_max: usize,
}

impl Reader {
    async fn open(plan: &CleanPlan, s: Sealed) -> Result<Self, Error> {
        let path = plan.dir.join(segment::file_name(s.base, "log"));
        let file = tokio_uring::fs::File::open(&path).await.at(&path)?;
        Ok(Self {
            file,
            path,
            position: 0,
            size: s.size,
            expected: s.base,
            batch_bytes_max: plan.batch_bytes_max,
        })
    }

    /// The next run of whole batches, or `None` at the segment's end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        if self.position >= self.size {
            return Ok(None);
        }
        let mut want = READ_CHUNK_BYTES.min((self.size - self.position) as usize);
        loop {
            let chunk = io::read_at(&self.file, self.position, want)
                .await
                .at(&self.path)?;
            let mut whole = 0;
            let mut needed = None;
            while whole < chunk.len() {
                match crate::batch::peek(&chunk[whole..], self.batch_bytes_max) {
                    Ok((header, size)) if whole + size <= chunk.len() => {
                        if header.base_offset.get() != self.expected as i64 {
                            return Err(self.corrupt(format!(
                                "batch base offset {} where {} was expected",
                                header.base_offset.get(),
                                self.expected
                            )));
                        }
                        self.expected += header.last_offset_delta.get() as u64 + 1;
                        whole += size;
                    }
                    Ok((_, size)) => {
                        needed = Some(size);
                        break;
                    }
                    Err(e) if e.is_incomplete() => {
                        needed = Some(HEADER_BYTES);
                        break;
                    }
                    Err(e) => return Err(self.corrupt(e.to_string())),
                }
            }
            if whole > 0 {
                let mut chunk = chunk;
                chunk.truncate(whole);
                self.position += whole as u64;
                return Ok(Some(chunk));
            }
            let needed = needed.unwrap_or(HEADER_BYTES);
            if chunk.len() < want || self.position + needed as u64 > self.size {
                return Err(self.corrupt("segment ends inside a batch".into()));
            }
            want = needed;
        }
    }

    /// The batches of a chunk from [`Reader::next_chunk`], each CRC-checked.
    fn views<'a>(
        &'a self,
        chunk: &'a [u8],
    ) -> impl Iterator<Item = Result<BatchView<'a>, Error>> + 'a {
        let mut rest = chunk;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            match BatchView::parse_crc_only(rest, self.batch_bytes_max) {
                Ok(view) => {
                    rest = &rest[view.bytes().len()..];
                    Some(Ok(view))
                }
                Err(e) => {
                    rest = &[];
                    Some(Err(self.corrupt(e.to_string())))
                }
            }
        })
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            position: self.position,
            reason,
        }
    }
}

/// Writes one cleaned segment: batches in order, every offset covered.
struct Writer {
    dir: PathBuf,
    base: u64,
    path: PathBuf,
    file: tokio_uring::fs::File,
    /// Bytes not yet written, starting at file position `written`.
    buffer: Vec<u8>,
    written: u64,
    index: SegmentIndex,
    /// The last batch kept: it may still take over the offsets of dropped
    /// batches after it.
    held: Option<Vec<u8>>,
    /// Dropped offsets no batch covers yet: [start, end) and their epoch.
    gap: Option<(u64, u64, i32)>,
    /// The offset after the last batch placed (held or written).
    covered: u64,
}

impl Writer {
    async fn create(plan: &CleanPlan, base: u64) -> Result<Self, Error> {
        remove_cleaned(&plan.dir, base).await?;
        let path = cleaned_path(&plan.dir, base, "log");
        let file = io::open_rw(&path, true).await.at(&path)?;
        Ok(Self {
            dir: plan.dir.clone(),
            base,
            path,
            file,
            buffer: Vec::new(),
            written: 0,
            index: SegmentIndex::new(plan.index_interval_bytes),
            held: None,
            gap: None,
            covered: base,
        })
    }

    /// Places a kept batch after whatever came before.
    fn keep(&mut self, batch: Vec<u8>) {
        self.close_gap();
        self.place(batch);
    }

    /// Accounts for a dropped batch's offsets `[start, end)`.
    fn skip(&mut self, start: u64, end: u64, epoch: i32) {
        if let Some((gap_start, gap_end, gap_epoch)) = self.gap {
            if gap_end == start && gap_epoch == epoch {
                self.gap = Some((gap_start, end, epoch));
                return;
            }
            self.close_gap();
        }
        if let Some(held) = &mut self.held {
            if let Ok((header, _)) = BatchHeader::mut_from_prefix(held) {
                let delta = end - 1 - header.base_offset.get() as u64;
                let absorbs = header.producer_id.get() < 0
                    && !skips_compaction(header)
                    && header.partition_leader_epoch.get() == epoch
                    && delta <= i32::MAX as u64;
                if absorbs {
                    header.last_offset_delta = I32::new(delta as i32);
                    reseal(held);
                    self.covered = end;
                    return;
                }
            }
        }
        self.gap = Some((start, end, epoch));
    }

    /// Covers the pending gap with empty batches.
    fn close_gap(&mut self) {
        let Some((mut start, end, epoch)) = self.gap.take() else {
            return;
        };
        while start < end {
            let delta = (end - start - 1).min(i32::MAX as u64);
            self.place(empty_batch(start, delta as i32, epoch));
            start += delta + 1;
        }
    }

    /// Moves the held batch to the buffer (indexing it) and holds `batch`.
    fn place(&mut self, batch: Vec<u8>) {
        if let Ok((header, _)) = BatchHeader::ref_from_prefix(&batch) {
            self.covered =
                header.base_offset.get() as u64 + header.last_offset_delta.get() as u64 + 1;
        }
        if let Some(previous) = self.held.replace(batch) {
            self.push(previous);
        }
    }

    fn push(&mut self, batch: Vec<u8>) {
        if let Ok((header, _)) = BatchHeader::ref_from_prefix(&batch) {
            let position = self.written + self.buffer.len() as u64;
            self.index.on_batch(
                (header.base_offset.get() as u64 - self.base) as u32,
                position as u32,
                batch.len() as u32,
                header.max_timestamp.get(),
            );
        }
        self.buffer.extend_from_slice(&batch);
    }

    /// Bytes placed so far (the held batch included).
    fn size(&self) -> u64 {
        self.written + self.buffer.len() as u64 + self.held.as_ref().map_or(0, |h| h.len() as u64)
    }

    async fn maybe_flush(&mut self) -> Result<(), Error> {
        if self.buffer.len() >= WRITE_CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        let bytes = std::mem::take(&mut self.buffer);
        let len = bytes.len() as u64;
        let (res, mut bytes) = self.file.write_all_at(bytes, self.written).await;
        res.at(&self.path)?;
        self.written += len;
        bytes.clear();
        self.buffer = bytes;
        Ok(())
    }

    /// Writes the rest, syncs the segment and writes its indexes; returns
    /// its size.
    async fn finish(mut self, end: u64, steps: &mut Steps) -> Result<u64, Error> {
        self.close_gap();
        if let Some(last) = self.held.take() {
            self.push(last);
        }
        if self.covered != end {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                position: self.written,
                reason: format!(
                    "cleaned batches end at offset {} where the segments ended at {end}",
                    self.covered
                ),
            });
        }
        steps.step()?;
        self.flush().await?;
        steps.step()?;
        self.file.sync_data().await.at(&self.path)?;
        self.file.close().await.at(&self.path)?;
        self.index.seal((end - self.base) as u32);
        steps.step()?;
        let path = cleaned_path(&self.dir, self.base, "index");
        io::write_file(&path, self.index.encode_offsets())
            .await
            .at(&path)?;
        let path = cleaned_path(&self.dir, self.base, "timeindex");
        io::write_file(&path, self.index.encode_times())
            .await
            .at(&path)?;
        Ok(self.written)
    }

    async fn abandon(self) -> Result<(), Error> {
        self.file.close().await.at(&self.path)?;
        remove_cleaned(&self.dir, self.base).await
    }
}

/// A batch of no records holding offsets `start..=start + delta`: what
/// stands in for dropped batches no kept batch can take over.
fn empty_batch(start: u64, delta: i32, epoch: i32) -> Vec<u8> {
    let header = BatchHeader {
        base_offset: I64::new(start as i64),
        batch_length: I32::new(0),
        partition_leader_epoch: I32::new(epoch),
        magic: crate::batch::MAGIC_V2,
        crc: U32::new(0),
        attributes: I16::new(0),
        last_offset_delta: I32::new(delta),
        // No record, no time: never the answer to a lookup by time.
        base_timestamp: I64::new(-1),
        max_timestamp: I64::new(-1),
        producer_id: I64::new(-1),
        producer_epoch: I16::new(-1),
        base_sequence: I32::new(-1),
        record_count: I32::new(0),
    };
    assemble(&header, &[])
}

async fn remove_cleaned(dir: &Path, base: u64) -> Result<(), Error> {
    for extension in ["log", "index", "timeindex"] {
        let path = cleaned_path(dir, base, extension);
        io::remove_file(&path).await.at(&path)?;
    }
    Ok(())
}

/// Swaps each cleaned segment in: the old segments it covers go, then its
/// files take their names. Every step can be repeated, so a crash anywhere
/// is finished by running this again.
async fn complete_swap(dir: &Path, groups: &[(u64, u64)], steps: &mut Steps) -> Result<(), Error> {
    let bases: Vec<u64> = io::list_dir(dir)
        .at(dir)?
        .iter()
        .filter_map(|p| segment::parse_log_name(p))
        .collect();
    for &(base, end) in groups {
        let log = cleaned_path(dir, base, "log");
        if log.exists() {
            for &old in bases.iter().filter(|&&b| b > base && b < end) {
                for extension in ["log", "index", "timeindex"] {
                    steps.step()?;
                    let path = dir.join(segment::file_name(old, extension));
                    io::remove_file(&path).await.at(&path)?;
                }
            }
            steps.step()?;
            let to = dir.join(segment::file_name(base, "log"));
            std::fs::rename(&log, &to).at(&to)?;
        }
        for extension in ["index", "timeindex"] {
            let from = cleaned_path(dir, base, extension);
            if from.exists() {
                steps.step()?;
                let to = dir.join(segment::file_name(base, extension));
                std::fs::rename(&from, &to).at(&to)?;
            }
        }
    }
    steps.step()?;
    io::sync_dir(dir).at(dir)
}

/// At open, before the segments are read: finishes a swap whose manifest
/// was written, and deletes what an unfinished clean left.
pub(crate) async fn recover(dir: &Path, repairs: &mut Vec<Repair>) -> Result<(), Error> {
    let path = dir.join(MANIFEST_FILE);
    if let Some(bytes) = io::read_file(&path).await.at(&path)? {
        match decode_manifest(&bytes) {
            Some(groups) => {
                tracing::warn!(dir = %dir.display(), segments = groups.len(), "finishing an interrupted clean");
                let mut steps = Steps {
                    next: 0,
                    crash_before: None,
                };
                complete_swap(dir, &groups, &mut steps).await?;
                repairs.push(Repair::CleanFinished {
                    segments: groups.iter().map(|g| g.0).collect(),
                });
            }
            None => tracing::warn!(file = %path.display(), "ignoring a damaged clean manifest"),
        }
        io::remove_file(&path).await.at(&path)?;
    }
    for file in io::list_dir(dir).at(dir)? {
        if file.extension().is_some_and(|e| e == CLEANED) {
            io::remove_file(&file).await.at(&file)?;
        }
    }
    io::sync_dir(dir).at(dir)
}

const MANIFEST_MAGIC: &[u8; 4] = b"RLCM";
const CHECKPOINT_MAGIC: &[u8; 4] = b"RLCC";
const FORMAT_VERSION: u32 = 1;

/// `RLCM` | version u32 | count u32 | (base u64, end u64) per group | crc32c.
fn encode_manifest(groups: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + groups.len() * 16);
    out.extend_from_slice(MANIFEST_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&(groups.len() as u32).to_be_bytes());
    for &(base, end) in groups {
        out.extend_from_slice(&base.to_be_bytes());
        out.extend_from_slice(&end.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode_manifest(bytes: &[u8]) -> Option<Vec<(u64, u64)>> {
    let body = checked_body(bytes, MANIFEST_MAGIC)?;
    let (count, rest) = body.split_first_chunk::<4>()?;
    let count = u32::from_be_bytes(*count) as usize;
    if rest.len() != count.checked_mul(16)? {
        return None;
    }
    Some(
        rest.chunks_exact(16)
            .map(|c| {
                let (base, end) = c.split_at(8);
                (
                    u64::from_be_bytes(base.try_into().unwrap_or_default()),
                    u64::from_be_bytes(end.try_into().unwrap_or_default()),
                )
            })
            .collect(),
    )
}

/// The bytes between magic+version and the trailing CRC, if both check.
fn checked_body<'a>(bytes: &'a [u8], magic: &[u8; 4]) -> Option<&'a [u8]> {
    let (covered, crc) = bytes.split_last_chunk::<4>()?;
    if crc32c::crc32c(covered) != u32::from_be_bytes(*crc) {
        return None;
    }
    let rest = covered.strip_prefix(magic)?;
    let (version, body) = rest.split_first_chunk::<4>()?;
    (u32::from_be_bytes(*version) == FORMAT_VERSION).then_some(body)
}

/// `RLCC` | version u32 | first dirty offset u64 | crc32c.
fn encode_checkpoint(offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(CHECKPOINT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The first dirty offset; a missing or damaged file means none is known
/// (the next clean reads the whole log).
async fn read_checkpoint(dir: &Path) -> Result<Option<u64>, Error> {
    let path = dir.join(CHECKPOINT_FILE);
    let Some(bytes) = io::read_file(&path).await.at(&path)? else {
        return Ok(None);
    };
    Ok(checked_body(&bytes, CHECKPOINT_MAGIC)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_and_checkpoint_read_back_and_refuse_damage() {
        let groups = vec![(0, 10), (10, 4_000_000_000)];
        let bytes = encode_manifest(&groups);
        assert_eq!(decode_manifest(&bytes), Some(groups));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert_eq!(decode_manifest(&bad), None, "byte {i}");
        }
        assert_eq!(decode_manifest(&bytes[..bytes.len() - 1]), None);
        let c = encode_checkpoint(42);
        assert_eq!(
            checked_body(&c, CHECKPOINT_MAGIC),
            Some(&42u64.to_be_bytes()[..])
        );
        assert_eq!(checked_body(&c, MANIFEST_MAGIC), None);
    }

    #[test]
    fn an_empty_batch_is_a_valid_batch_holding_its_offsets() {
        let b = empty_batch(100, 9, 3);
        let view = BatchView::parse(&b, usize::MAX).unwrap();
        assert_eq!((view.base_offset(), view.last_offset()), (100, 109));
        assert_eq!(view.records().unwrap().count(), 0);
        assert_eq!(view.header().partition_leader_epoch.get(), 3);
    }
}
