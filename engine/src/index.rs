//! A segment's sparse offset index and time index: the in-memory entries, the
//! rule that decides when an entry is due, lookups, and the file encoding.
//!
//! Pure: no I/O here. The log feeds every batch it appends or recovers to
//! [`SegmentIndex::on_batch`], so the same rule builds the index at append
//! time and rebuilds it at recovery.
//!
//! Invariants (checked when a file is decoded, asserted when entries are
//! added): offset entries strictly increase in relative offset and position;
//! time entries strictly increase in timestamp and never decrease in offset.
//! A time entry `(T, r)` means "every batch before relative offset `r` has a
//! max timestamp <= `T`", which is what makes the time lookup exact.

/// Magic at the start of an offset index file.
pub const OFFSET_INDEX_MAGIC: [u8; 4] = *b"RLOI";
/// Magic at the start of a time index file.
pub const TIME_INDEX_MAGIC: [u8; 4] = *b"RLTI";
/// Version of both index file layouts.
pub const INDEX_VERSION: u32 = 1;
/// Magic (4) + version (4).
pub const INDEX_HEADER_BYTES: usize = 8;
/// Relative offset u32 + position u32.
pub const OFFSET_ENTRY_BYTES: usize = 8;
/// Timestamp i64 + relative offset u32.
pub const TIME_ENTRY_BYTES: usize = 12;

/// One offset index entry: the batch starting at `position` has base offset
/// `segment base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OffsetEntry {
    /// Base offset of the batch, relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
}

/// One time index entry: batches before `relative_offset` have max timestamps
/// of at most `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest batch max-timestamp before `relative_offset` (ms).
    pub timestamp: i64,
    /// Relative offset of the first batch not covered.
    pub relative_offset: u32,
}

/// Why an index file was not trusted (it is then rebuilt from the segment).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Wrong magic or version.
    #[error("bad index header")]
    BadHeader,
    /// Size is not a whole number of entries.
    #[error("index size {0} is not header + whole entries")]
    BadSize(usize),
    /// Entries out of order, or pointing past the segment.
    #[error("index entry {0} out of order or beyond the segment")]
    BadEntry(usize),
}

/// Both indexes of one segment, plus the state that decides the next entry.
#[derive(Debug, Clone)]
pub struct SegmentIndex {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    interval_bytes: u64,
    bytes_since_entry: u64,
    max_timestamp: i64,
}

impl SegmentIndex {
    /// An empty index that adds an entry every `interval_bytes` of batches.
    pub fn new(interval_bytes: u32) -> Self {
        Self {
            offsets: Vec::new(),
            times: Vec::new(),
            interval_bytes: u64::from(interval_bytes.max(1)),
            bytes_since_entry: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Accounts for the next batch of the segment, adding entries when due.
    pub fn on_batch(&mut self, relative_offset: u32, position: u32, size: u32, max_timestamp: i64) {
        if self.bytes_since_entry >= self.interval_bytes {
            debug_assert!(self
                .offsets
                .last()
                .is_none_or(|e| { e.relative_offset < relative_offset && e.position < position }));
            self.offsets.push(OffsetEntry {
                relative_offset,
                position,
            });
            self.note_time(relative_offset);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += u64::from(size);
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
    }

    fn note_time(&mut self, relative_offset: u32) {
        let last = self.times.last().map_or(i64::MIN, |e| e.timestamp);
        if self.max_timestamp > last {
            self.times.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset,
            });
        }
    }

    /// Closes the time index of a segment that takes no more batches, so the
    /// file alone tells the segment's max timestamp after a restart.
    pub fn seal(&mut self, end_relative_offset: u32) {
        if self
            .times
            .last()
            .is_none_or(|e| e.relative_offset < end_relative_offset)
        {
            self.note_time(end_relative_offset);
        }
    }

    /// Largest max-timestamp of the batches seen, or `i64::MIN` if none.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The offset entries, in order.
    pub fn offsets(&self) -> &[OffsetEntry] {
        &self.offsets
    }

    /// The time entries, in order.
    pub fn times(&self) -> &[TimeEntry] {
        &self.times
    }

    /// Where to start scanning for relative offset `target`: the last entry at
    /// or before it, or the segment start.
    pub fn lookup_offset(&self, target: u32) -> OffsetEntry {
        let i = self
            .offsets
            .partition_point(|e| e.relative_offset <= target);
        if i == 0 {
            OffsetEntry::default()
        } else {
            self.offsets[i - 1]
        }
    }

    /// The relative offset from which to scan for the first batch whose max
    /// timestamp is >= `target`: no batch before it qualifies.
    pub fn lookup_time(&self, target: i64) -> u32 {
        let i = self.times.partition_point(|e| e.timestamp < target);
        if i == 0 {
            0
        } else {
            self.times[i - 1].relative_offset
        }
    }

    /// Forgets every entry at or after `relative_offset`, and the last entry
    /// before it, and returns the entry from which batches must be fed
    /// again to bring the index up to date: the forgotten entry's batch, or
    /// the segment start. Used after truncation and for the part of a segment
    /// recovery does not trust.
    pub fn rewind(&mut self, relative_offset: u32) -> OffsetEntry {
        let keep = self
            .offsets
            .partition_point(|e| e.relative_offset < relative_offset);
        self.offsets.truncate(keep);
        let restart = self.offsets.pop();
        // A time entry at the restart batch says exactly what the max was
        // before it, and re-feeding will not add it twice: keep it.
        let keep_times = match restart {
            Some(r) => self
                .times
                .partition_point(|e| e.relative_offset <= r.relative_offset),
            None => 0,
        };
        self.times.truncate(keep_times);
        self.max_timestamp = self.times.last().map_or(i64::MIN, |e| e.timestamp);
        // Re-feeding the restart batch must add its entry again: it was due.
        self.bytes_since_entry = if restart.is_some() {
            self.interval_bytes
        } else {
            0
        };
        restart.unwrap_or_default()
    }

    /// The offset index file's bytes.
    pub fn encode_offsets(&self) -> Vec<u8> {
        let mut out = header(OFFSET_INDEX_MAGIC, self.offsets.len() * OFFSET_ENTRY_BYTES);
        for e in &self.offsets {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// The time index file's bytes.
    pub fn encode_times(&self) -> Vec<u8> {
        let mut out = header(TIME_INDEX_MAGIC, self.times.len() * TIME_ENTRY_BYTES);
        for e in &self.times {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Decodes both index files of a segment of `segment_bytes` bytes whose
    /// batches end at relative offset `end_relative_offset`, checking every
    /// invariant. The next entry is due after a full interval.
    pub fn decode(
        offsets: &[u8],
        times: &[u8],
        interval_bytes: u32,
        segment_bytes: u64,
        end_relative_offset: u32,
    ) -> Result<Self, IndexError> {
        let mut index = Self::new(interval_bytes);
        for (i, chunk) in body(offsets, OFFSET_INDEX_MAGIC, OFFSET_ENTRY_BYTES)?.enumerate() {
            let e = OffsetEntry {
                relative_offset: u32::from_be_bytes(chunk[0..4].try_into().expect("4 bytes")),
                position: u32::from_be_bytes(chunk[4..8].try_into().expect("4 bytes")),
            };
            let ordered = index
                .offsets
                .last()
                .is_none_or(|p| p.relative_offset < e.relative_offset && p.position < e.position);
            if !ordered
                || u64::from(e.position) >= segment_bytes
                || e.relative_offset >= end_relative_offset
            {
                return Err(IndexError::BadEntry(i));
            }
            index.offsets.push(e);
        }
        for (i, chunk) in body(times, TIME_INDEX_MAGIC, TIME_ENTRY_BYTES)?.enumerate() {
            let e = TimeEntry {
                timestamp: i64::from_be_bytes(chunk[0..8].try_into().expect("8 bytes")),
                relative_offset: u32::from_be_bytes(chunk[8..12].try_into().expect("4 bytes")),
            };
            let ordered = index.times.last().is_none_or(|p| {
                p.timestamp < e.timestamp && p.relative_offset <= e.relative_offset
            });
            if !ordered || e.relative_offset > end_relative_offset {
                return Err(IndexError::BadEntry(i));
            }
            index.times.push(e);
        }
        index.max_timestamp = index.times.last().map_or(i64::MIN, |e| e.timestamp);
        index.bytes_since_entry = index.interval_bytes;
        Ok(index)
    }
}

fn header(magic: [u8; 4], entries_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_BYTES + entries_bytes);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&INDEX_VERSION.to_be_bytes());
    out
}

fn body(
    bytes: &[u8],
    magic: [u8; 4],
    entry_bytes: usize,
) -> Result<std::slice::ChunksExact<'_, u8>, IndexError> {
    if bytes.len() < INDEX_HEADER_BYTES
        || bytes[0..4] != magic
        || bytes[4..8] != INDEX_VERSION.to_be_bytes()
    {
        return Err(IndexError::BadHeader);
    }
    let entries = &bytes[INDEX_HEADER_BYTES..];
    if entries.len() % entry_bytes != 0 {
        return Err(IndexError::BadSize(bytes.len()));
    }
    Ok(entries.chunks_exact(entry_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `sizes.len()` batches of one offset each and the given sizes and
    /// timestamps; returns the index and each batch's position.
    fn build(sizes: &[(u32, i64)], interval: u32) -> (SegmentIndex, Vec<u32>) {
        let mut index = SegmentIndex::new(interval);
        let mut pos = 0;
        let mut positions = Vec::new();
        for (rel, &(size, ts)) in sizes.iter().enumerate() {
            positions.push(pos);
            index.on_batch(rel as u32, pos, size, ts);
            pos += size;
        }
        (index, positions)
    }

    proptest! {
        #[test]
        fn lookups_point_at_or_before_the_target(
            batches in proptest::collection::vec((61u32..10_000, 0i64..1_000_000), 1..300),
            interval in 1u32..20_000,
        ) {
            let (mut index, positions) = build(&batches, interval);
            let end = batches.len() as u32;
            for target in 0..end {
                let e = index.lookup_offset(target);
                prop_assert!(e.relative_offset <= target);
                prop_assert_eq!(positions[e.relative_offset as usize], e.position);
            }
            for &(_, ts) in &batches {
                // Every batch before the answer has a max timestamp below the target.
                let from = index.lookup_time(ts) as usize;
                prop_assert!(batches[..from].iter().all(|&(_, t)| t < ts));
                prop_assert!(batches[from..].iter().any(|&(_, t)| t >= ts));
            }
            index.seal(end);
            let max = batches.iter().map(|b| b.1).max().unwrap();
            prop_assert_eq!(index.times().last().unwrap().timestamp, max);
            let size: u64 = batches.iter().map(|b| u64::from(b.0)).sum();
            let decoded = SegmentIndex::decode(
                &index.encode_offsets(), &index.encode_times(), interval, size, end,
            ).unwrap();
            prop_assert_eq!(decoded.offsets(), index.offsets());
            prop_assert_eq!(decoded.times(), index.times());
            prop_assert_eq!(decoded.max_timestamp(), max);
        }

        #[test]
        fn rewind_then_refeed_rebuilds_the_same_index(
            batches in proptest::collection::vec((61u32..10_000, 0i64..1_000_000), 1..200),
            interval in 1u32..20_000,
            cut_frac in 0.0f64..1.0,
        ) {
            let cut = ((batches.len() as f64) * cut_frac) as usize;
            let (full, _) = build(&batches[..cut], interval);
            let (mut rewound, positions) = build(&batches, interval);
            let from = rewound.rewind(cut as u32);
            let start = from.relative_offset as usize;
            prop_assert_eq!(positions[start], from.position);
            for (rel, &(size, ts)) in batches.iter().enumerate().take(cut).skip(start) {
                rewound.on_batch(rel as u32, positions[rel], size, ts);
            }
            prop_assert_eq!(rewound.offsets(), full.offsets());
            prop_assert_eq!(rewound.times(), full.times());
            prop_assert_eq!(rewound.max_timestamp(), full.max_timestamp());
        }

        #[test]
        fn garbage_index_files_never_panic(a: Vec<u8>, b: Vec<u8>) {
            let _ = SegmentIndex::decode(&a, &b, 4096, 1 << 20, 1 << 20);
        }
    }

    #[test]
    fn damaged_files_are_refused() {
        let (index, _) = build(&[(5000, 1), (5000, 2), (5000, 3), (5000, 4)], 4096);
        let offsets = index.encode_offsets();
        let times = index.encode_times();
        assert!(SegmentIndex::decode(&offsets, &times, 4096, 20_000, 4).is_ok());
        assert_eq!(
            SegmentIndex::decode(&offsets[..offsets.len() - 1], &times, 4096, 20_000, 4)
                .unwrap_err(),
            IndexError::BadSize(offsets.len() - 1)
        );
        let mut bad = offsets.clone();
        bad[0] = b'X';
        assert_eq!(
            SegmentIndex::decode(&bad, &times, 4096, 20_000, 4).unwrap_err(),
            IndexError::BadHeader
        );
        // An entry pointing past the end of the segment.
        assert!(SegmentIndex::decode(&offsets, &times, 4096, 9_000, 4).is_err());
    }
}
