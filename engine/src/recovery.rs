//! Recovery decisions: how much of a segment's bytes are whole, valid,
//! contiguous batches. Pure: the I/O shell in `segment.rs` reads the file in
//! chunks and feeds them to the same [`Scanner`] that the fuzz target and the
//! tests drive over plain byte slices.
//!
//! A batch is kept only if it passes every check of [`BatchView::parse`]
//! (lengths, magic, CRC, every record) and its base offset is the one the
//! previous batch ends at. The CRC does not cover `baseOffset`, so the
//! contiguity check is what catches a damaged one. The first batch that fails
//! ends the segment: it and everything after it are truncated.

use crate::batch::{BatchError, BatchView, HEADER_BYTES};
use crate::index::SegmentIndex;

/// Why a scan stopped before the end of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A batch needs more bytes than there are: a torn write.
    Torn {
        /// Bytes the batch at the stop position needs.
        needed: usize,
        /// Bytes present from the stop position to the end.
        present: usize,
    },
    /// A batch failed validation.
    Corrupt(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Torn { needed, present } => write!(
                f,
                "torn write: the last batch needs {needed} bytes, {present} present"
            ),
            Stop::Corrupt(reason) => write!(f, "corrupt batch: {reason}"),
        }
    }
}

/// What the scanner wants after a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Give me the bytes from `position` on, at least `bytes_min` of them
    /// (fewer means the file ends there).
    NeedMore {
        /// Where the next unvalidated byte is.
        position: u64,
        /// How many bytes the next batch needs at least.
        bytes_min: usize,
    },
    /// Stop here: the batch at the scanner's position is corrupt.
    Corrupt(String),
}

/// Validates a segment's batches in order, chunk by chunk, feeding each valid
/// batch to the segment's index.
#[derive(Debug, Clone)]
pub struct Scanner {
    base_offset: u64,
    next_offset: u64,
    position: u64,
    batch_bytes_max: usize,
}

impl Scanner {
    /// Starts at `position`, where a batch with base offset `next_offset` is
    /// expected, in a segment whose base offset is `base_offset`.
    pub fn new(base_offset: u64, position: u64, next_offset: u64, batch_bytes_max: usize) -> Self {
        Self {
            base_offset,
            next_offset,
            position,
            batch_bytes_max,
        }
    }

    /// Position of the first byte not yet validated: everything before it is
    /// whole valid batches.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Offset the next batch must start at.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Consumes every whole valid batch at the front of `chunk`, which must
    /// begin at [`Scanner::position`].
    pub fn feed(&mut self, chunk: &[u8], index: &mut SegmentIndex) -> Feed {
        let mut at = 0;
        loop {
            let rest = &chunk[at..];
            if rest.is_empty() {
                return self.need(HEADER_BYTES);
            }
            let view = match BatchView::parse(rest, self.batch_bytes_max) {
                Ok(view) => view,
                Err(BatchError::Incomplete { needed, .. }) => return self.need(needed),
                Err(e) => return Feed::Corrupt(e.to_string()),
            };
            if view.base_offset() != self.next_offset as i64 {
                return Feed::Corrupt(format!(
                    "batch base offset {} where {} was expected",
                    view.base_offset(),
                    self.next_offset
                ));
            }
            let size = view.bytes().len() as u64;
            let relative = self.next_offset - self.base_offset;
            let (Ok(relative), Ok(position), Ok(size32)) = (
                u32::try_from(relative),
                u32::try_from(self.position),
                u32::try_from(size),
            ) else {
                return Feed::Corrupt("segment exceeds the 32-bit index range".into());
            };
            if u32::try_from(self.position + size).is_err() {
                return Feed::Corrupt("segment exceeds the 32-bit index range".into());
            }
            index.on_batch(relative, position, size32, view.max_timestamp());
            self.next_offset += view.offset_count();
            self.position += size;
            at += size as usize;
        }
    }

    fn need(&self, bytes_min: usize) -> Feed {
        Feed::NeedMore {
            position: self.position,
            bytes_min,
        }
    }
}

/// The outcome of scanning one segment's bytes.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Bytes of whole valid batches from the start.
    pub valid_bytes: u64,
    /// Offset after the last valid batch.
    pub next_offset: u64,
    /// The index of the valid part.
    pub index: SegmentIndex,
    /// Why the scan stopped short of the end, if it did.
    pub stop: Option<Stop>,
}

/// Scans a whole segment held in memory: the pure core of recovery, for the
/// fuzz target and the tests. The I/O shell does the same chunk by chunk.
pub fn scan(
    bytes: &[u8],
    base_offset: u64,
    batch_bytes_max: usize,
    index_interval_bytes: u32,
) -> Scan {
    let mut scanner = Scanner::new(base_offset, 0, base_offset, batch_bytes_max);
    let mut index = SegmentIndex::new(index_interval_bytes);
    let stop = match scanner.feed(bytes, &mut index) {
        Feed::NeedMore {
            position,
            bytes_min,
        } => {
            let present = bytes.len() - position as usize;
            (present > 0).then_some(Stop::Torn {
                needed: bytes_min,
                present,
            })
        }
        Feed::Corrupt(reason) => Some(Stop::Corrupt(reason)),
    };
    Scan {
        valid_bytes: scanner.position(),
        next_offset: scanner.next_offset(),
        index,
        stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{stamp_for_append, BatchBuilder, NewRecord};

    fn segment(batches: usize, base: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        let mut offset = base;
        for i in 0..batches {
            let mut b = BatchBuilder::default();
            for r in 0..=(i % 3) {
                let v = vec![i as u8; 10 + r * 7];
                b.push(&NewRecord {
                    key: Some(b"k"),
                    value: Some(&v),
                    headers: &[],
                    timestamp: 1_000 + i as i64,
                })
                .unwrap();
            }
            let mut batch = b.finish().unwrap();
            stamp_for_append(&mut batch, offset as i64, 0).unwrap();
            offset += (i % 3) as u64 + 1;
            bytes.extend_from_slice(&batch);
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    #[test]
    fn a_cut_at_every_byte_keeps_exactly_the_whole_batches_before_it() {
        let (bytes, ends) = segment(6, 100);
        for cut in 0..=bytes.len() {
            let scan = scan(&bytes[..cut], 100, 1 << 20, 64);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            let keep = if whole == 0 { 0 } else { ends[whole - 1] };
            assert_eq!(scan.valid_bytes, keep as u64, "cut at {cut}");
            assert_eq!(scan.stop.is_some(), keep != cut, "cut at {cut}");
        }
    }

    #[test]
    fn a_wrong_base_offset_ends_the_segment() {
        let (mut bytes, ends) = segment(4, 0);
        // Batch 2's baseOffset is not covered by the CRC: only contiguity catches it.
        bytes[ends[1] + 7] ^= 1;
        let scan = scan(&bytes, 0, 1 << 20, 64);
        assert_eq!(scan.valid_bytes, ends[1] as u64);
        assert!(matches!(scan.stop, Some(Stop::Corrupt(_))));
    }
}
