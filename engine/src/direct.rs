//! The direct appender (`WriteMode::Direct`): appends written with `O_DIRECT`
//! to a preallocated active segment, bypassing the page cache.
//!
//! `O_DIRECT` asks for block-aligned file positions, lengths and memory, and
//! a batch ends anywhere. So appends are copied into an aligned *stage* and
//! one writer task per partition writes what is staged, one write at a time:
//! whole blocks from the block holding the end of the data on disk,
//! zero-padded past the end of what is staged. The bytes of that last,
//! partly filled block are carried into the next stage, and the next write
//! rewrites the block with them first. One write at a time is what makes the
//! rewrite safe (two writes in flight covering the same block could land in
//! either order), and it costs little: appends that arrive while a write is
//! in flight are staged behind it and leave together in the next write, so
//! the writes grow with the load (group commit, for writes).
//!
//! Two stage buffers alternate (one filling, one being written), so the
//! steady state allocates nothing.
//!
//! Readers keep their buffered descriptor: Linux keeps the page cache
//! coherent with direct writes (it drops cached pages of the range written),
//! and readers never read past the completed prefix, whose bytes a rewrite
//! of the last block repeats unchanged.
//!
//! What direct writes give up is the page cache's copy of fresh data, which
//! a consumer just behind its producers reads. Each partition keeps its
//! last [`RECENT_BYTES`] in memory instead ([`Recent`]), and the active
//! segment answers reads inside that window from it.
//!
//! Preallocation: ext4 serialises direct writes that extend the file, so the
//! active segment is grown with `fallocate` ahead of the writes, in steps of
//! [`PREALLOCATE_BYTES`]; the zeros past the data are cut off when the
//! segment is sealed or the log closed, and recovery after a crash treats a
//! zero-filled tail as preallocation, not as damage.

use crate::files::LazyFile;
use crate::flush::Flusher;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use tokio::sync::Notify;
use tokio_uring::buf::BoundedBuf;

/// Alignment of direct writes: the page size, a multiple of every common
/// logical block size (512 or 4096).
pub(crate) const BLOCK: u64 = 4096;

/// How far ahead of the data the active segment is allocated.
pub(crate) const PREALLOCATE_BYTES: u64 = 64 << 20;

/// Bytes of each active segment's recent data kept in memory for readers.
pub(crate) const RECENT_BYTES: usize = 2 << 20;

/// A stage buffer's first capacity; it grows to the largest write seen.
const STAGE_BYTES: usize = 1 << 20;

fn round_down(n: u64) -> u64 {
    n / BLOCK * BLOCK
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// A buffer whose data starts on a block boundary in memory.
struct Aligned {
    vec: Vec<u8>,
    /// Where the aligned data starts in `vec`.
    skip: usize,
}

impl Aligned {
    /// An empty buffer with room for `capacity` bytes of data, rounded up
    /// to whole blocks.
    fn with_capacity(capacity: usize) -> Self {
        let block = BLOCK as usize;
        let capacity = round_up(capacity as u64) as usize;
        // Room to start anywhere in the first block, so the vector never
        // reallocates (which would move the data off the boundary).
        let mut vec = Vec::with_capacity(capacity + block);
        let skip = (block - vec.as_ptr() as usize % block) % block;
        vec.resize(skip, 0);
        Self { vec, skip }
    }

    fn data(&self) -> &[u8] {
        &self.vec[self.skip..]
    }

    /// Data bytes it can hold without moving, padding included: whole
    /// blocks only, or padding a full buffer would reallocate it off the
    /// boundary.
    fn capacity(&self) -> usize {
        round_down((self.vec.capacity() - self.skip) as u64) as usize
    }

    fn clear(&mut self) {
        self.vec.truncate(self.skip);
    }

    /// Appends `bytes`, moving to a larger aligned buffer if they do not fit.
    fn extend(&mut self, bytes: &[u8]) {
        let len = self.data().len() + bytes.len();
        if len > self.capacity() {
            let mut bigger = Aligned::with_capacity(len.max(2 * self.capacity()));
            bigger.vec.extend_from_slice(self.data());
            *self = bigger;
        }
        self.vec.extend_from_slice(bytes);
    }
}

/// The most recent bytes appended to a segment, in a ring: byte at file
/// position `p` lives at `p % ring.len()` while `start <= p < end`. The ring
/// grows (doubling, from [`RECENT_FIRST_BYTES`]) up to `capacity` as data
/// arrives, so a quiet partition holds little.
pub(crate) struct Recent {
    ring: Vec<u8>,
    capacity: usize,
    /// File position of the oldest byte held.
    start: u64,
    /// File position after the newest.
    end: u64,
}

/// A ring's first size.
const RECENT_FIRST_BYTES: usize = 64 << 10;

impl Recent {
    /// An empty window of at most `capacity` bytes that starts at file
    /// position `at`; its memory is taken as data arrives.
    pub(crate) fn new(capacity: usize, at: u64) -> Self {
        Self {
            ring: Vec::new(),
            capacity: capacity.max(1),
            start: at,
            end: at,
        }
    }

    /// Appends `bytes`, written at file position `at` (the end so far; if
    /// not, the window restarts there).
    pub(crate) fn push(&mut self, at: u64, bytes: &[u8]) {
        if at != self.end {
            self.start = at;
            self.end = at;
        }
        let want = ((self.end - self.start) as usize + bytes.len()).min(self.capacity);
        if self.ring.len() < want {
            self.grow(want);
        }
        let cap = self.ring.len();
        let end = at + bytes.len() as u64;
        // Only the newest `cap` bytes can be held.
        let keep = bytes.len().min(cap);
        let newest = &bytes[bytes.len() - keep..];
        let from = ((end - keep as u64) % cap as u64) as usize;
        let first_part = keep.min(cap - from);
        self.ring[from..from + first_part].copy_from_slice(&newest[..first_part]);
        self.ring[..keep - first_part].copy_from_slice(&newest[first_part..]);
        self.end = end;
        self.start = self.start.max(end.saturating_sub(cap as u64));
    }

    /// Moves the window into a ring of at least `want` bytes.
    fn grow(&mut self, want: usize) {
        let size = want
            .next_power_of_two()
            .max(RECENT_FIRST_BYTES)
            .min(self.capacity);
        let held = self
            .get(self.start, (self.end - self.start) as usize)
            .unwrap_or_default();
        let (start, end) = (self.start, self.end);
        self.ring = vec![0; size];
        self.start = end;
        self.end = end;
        if !held.is_empty() {
            self.end = start;
            self.start = start;
            self.push(start, &held);
        }
    }

    /// The `len` bytes at file position `at`, if the window holds them all.
    pub(crate) fn get(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        if at < self.start || at + len as u64 > self.end {
            return None;
        }
        if len == 0 {
            return Some(Vec::new());
        }
        let cap = self.ring.len();
        let from = (at % cap as u64) as usize;
        let first_part = len.min(cap - from);
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.ring[from..from + first_part]);
        out.extend_from_slice(&self.ring[..len - first_part]);
        Some(out)
    }
}

/// What is staged for the next write.
struct Stage {
    /// The data from `start` on: the carried bytes of the last block on
    /// disk, then the appends staged since.
    buf: Aligned,
    /// The spare buffer (the one last written), reused for the next stage.
    spare: Option<Aligned>,
    /// File position of `buf`'s first byte (aligned).
    start: u64,
    /// Bytes of `buf` that are already on disk (the carried tail).
    carried: usize,
    /// Sequence number of the last append staged.
    last_seq: u64,
    /// The log dropped its appender: write what is staged and stop.
    closed: bool,
}

impl Stage {
    /// A stage at `start` (aligned) holding `tail`, the data of that block
    /// already on disk.
    fn new(start: u64, tail: &[u8]) -> Self {
        let mut buf = Aligned::with_capacity(STAGE_BYTES);
        buf.extend(tail);
        Stage {
            buf,
            spare: None,
            start,
            carried: tail.len(),
            last_seq: 0,
            closed: false,
        }
    }

    fn end(&self) -> u64 {
        self.start + self.buf.data().len() as u64
    }

    /// Whether appends are staged that no write has taken yet.
    fn has_news(&self) -> bool {
        self.buf.data().len() > self.carried
    }

    /// Takes what is staged as one write (buffer padded to whole blocks, its
    /// position, the last sequence number it covers) and starts the next
    /// stage with the bytes of the block the data now ends in.
    fn take(&mut self) -> (Aligned, u64, u64) {
        let end = self.end();
        let tail_start = round_down(end);
        let mut next = self
            .spare
            .take()
            .unwrap_or_else(|| Aligned::with_capacity(STAGE_BYTES));
        next.clear();
        next.extend(&self.buf.data()[(tail_start - self.start) as usize..]);
        let mut write = std::mem::replace(&mut self.buf, next);
        let padded = round_up(write.data().len() as u64) as usize;
        debug_assert!(padded <= write.capacity(), "padding would move the buffer");
        write.vec.resize(write.skip + padded, 0);
        let start = self.start;
        self.start = tail_start;
        self.carried = (end - tail_start) as usize;
        (write, start, self.last_seq)
    }
}

/// The active segment's direct descriptor, its stage and writer task.
pub(crate) struct DirectWriter {
    file: LazyFile,
    /// The segment's recent bytes, shared with the segment's readers.
    pub(crate) recent: Rc<RefCell<Recent>>,
    stage: Rc<RefCell<Stage>>,
    wake: Rc<Notify>,
    /// The file's length: allocated up to here.
    allocated: u64,
    /// Preallocation stops here (the segment's size limit, aligned up).
    allocate_max: u64,
    /// `fallocate` is not supported here: writes extend the file.
    no_fallocate: bool,
}

impl DirectWriter {
    /// Opens the segment at `path`, whose data ends at `size`, for direct
    /// appends (its last partial block is read back through `reader`) and
    /// starts its writer task, which reports to `flusher`.
    pub(crate) async fn open(
        path: &std::path::Path,
        reader: &LazyFile,
        size: u64,
        segment_bytes_max: u64,
        flusher: Flusher,
    ) -> io::Result<Self> {
        let file = LazyFile::open_direct(path).await?;
        let start = round_down(size);
        let tail = if size > start {
            let f = reader.get().await?;
            crate::io::read_at(&f, start, (size - start) as usize).await?
        } else {
            Vec::new()
        };
        if tail.len() as u64 != size - start {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shorter than its data",
            ));
        }
        let stage = Rc::new(RefCell::new(Stage::new(start, &tail)));
        let wake = Rc::new(Notify::new());
        tokio_uring::spawn(write_loop(
            file.clone(),
            stage.clone(),
            wake.clone(),
            flusher,
        ));
        Ok(Self {
            file,
            recent: Rc::new(RefCell::new(Recent::new(RECENT_BYTES, size))),
            stage,
            wake,
            allocated: std::fs::metadata(path)?.len(),
            allocate_max: round_up(segment_bytes_max),
            no_fallocate: false,
        })
    }

    /// Grows the file ahead of an append of `len` bytes, so no write extends
    /// it. Called before the append's position is reserved: a failure (a
    /// full disk) leaves the log as it was.
    pub(crate) async fn allocate_for(&mut self, len: u64) -> io::Result<()> {
        let need = round_up(self.stage.borrow().end() + len);
        if need <= self.allocated || self.no_fallocate {
            return Ok(());
        }
        let target = need.max((self.allocated + PREALLOCATE_BYTES).min(self.allocate_max));
        let file = self.file.get().await?;
        match file
            .fallocate(self.allocated, target - self.allocated, 0)
            .await
        {
            Ok(()) => {
                self.allocated = target;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::info!("fallocate is not supported here: direct writes extend the file");
                self.no_fallocate = true;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Stages `batch` (the append numbered `seq` by the flusher) for the
    /// writer task.
    pub(crate) fn stage(&mut self, batch: &[u8], seq: u64) {
        let mut stage = self.stage.borrow_mut();
        self.recent.borrow_mut().push(stage.end(), batch);
        stage.buf.extend(batch);
        stage.last_seq = seq;
        self.allocated = self.allocated.max(round_up(stage.end()));
        drop(stage);
        self.wake.notify_one();
    }

    /// Cuts the preallocated zeros off the file, so its length is its
    /// data's again: before the segment is sealed or the log closed. No
    /// write may be in flight.
    pub(crate) fn trim(&mut self, path: &std::path::Path) -> io::Result<()> {
        let end = self.stage.borrow().end();
        if self.allocated != end {
            crate::io::truncate(path, end)?;
            self.allocated = end;
        }
        Ok(())
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        self.stage.borrow_mut().closed = true;
        self.wake.notify_one();
    }
}

/// Writes what is staged, one write at a time, until the appender is
/// dropped and nothing is left.
async fn write_loop(file: LazyFile, stage: Rc<RefCell<Stage>>, wake: Rc<Notify>, flusher: Flusher) {
    loop {
        let taken = {
            let mut s = stage.borrow_mut();
            if s.has_news() {
                Some(s.take())
            } else if s.closed {
                return;
            } else {
                None
            }
        };
        let Some((buf, position, seq)) = taken else {
            wake.notified().await;
            continue;
        };
        let res = match file.get().await {
            Ok(f) => {
                let len = buf.data().len();
                let skip = buf.skip;
                let (res, slice) = f
                    .write_all_at(buf.vec.slice(skip..skip + len), position)
                    .await;
                stage.borrow_mut().spare = Some(Aligned {
                    vec: slice.into_inner(),
                    skip,
                });
                res
            }
            Err(e) => Err(e),
        };
        let failed = res.is_err();
        flusher.completed_through(seq, res);
        if failed {
            // The partition has failed; nothing more is written.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_window_holds_exactly_the_newest_bytes() {
        // 100 KiB at most, growing from 64 KiB: both the growth and the
        // wrap are crossed.
        let cap = 100_000;
        let mut recent = Recent::new(cap, 50);
        let mut data: Vec<u8> = Vec::new();
        assert_eq!(recent.get(50, 0), Some(Vec::new()));
        assert_eq!(recent.get(50, 1), None);
        for (i, len) in [10usize, 60_000, 1, 4_999, 250_000, 7, 99_993, 30_000]
            .iter()
            .enumerate()
        {
            let bytes: Vec<u8> = (0..*len).map(|j| (i * 13 + j) as u8).collect();
            recent.push(50 + data.len() as u64, &bytes);
            data.extend_from_slice(&bytes);
            let end = 50 + data.len() as u64;
            let start = end.saturating_sub(cap as u64).max(50);
            // Every range inside the window reads back; nothing outside it.
            let ranges = [
                (start, (end - start) as usize),
                (start, 1),
                (end - 1, 1),
                (start + 3, 400),
                (end, 0),
            ];
            for (at, len) in ranges
                .into_iter()
                .filter(|&(at, len)| at + len as u64 <= end)
            {
                let want = &data[(at - 50) as usize..(at - 50) as usize + len];
                assert_eq!(recent.get(at, len).as_deref(), Some(want), "{at}+{len}");
            }
            assert_eq!(recent.get(end, 1), None);
            if start > 50 {
                assert_eq!(recent.get(start - 1, 2), None);
            }
        }
        // A push elsewhere (after a truncation) restarts the window there.
        recent.push(10, b"abc");
        assert_eq!(recent.get(10, 3).as_deref(), Some(&b"abc"[..]));
        assert_eq!(recent.get(9, 1), None);
    }

    #[test]
    fn a_stage_filled_to_any_length_stays_aligned_when_padded() {
        // Lengths around every multiple of the block and of the capacity,
        // where padding a full buffer could reallocate it.
        let mut stage = Stage::new(0, &[]);
        let mut written = 0u64;
        for len in (1..3 * STAGE_BYTES + 2 * BLOCK as usize).step_by(4093) {
            stage.buf.extend(&vec![7; len]);
            stage.last_seq += 1;
            written += len as u64;
            let (buf, position, _) = stage.take();
            assert_eq!(
                buf.data().as_ptr() as usize % BLOCK as usize,
                0,
                "len {len}"
            );
            assert_eq!(buf.data().len() as u64 % BLOCK, 0);
            assert_eq!(position, round_down(written - len as u64));
            stage.spare = Some(buf);
        }
    }

    #[test]
    fn writes_cover_whole_aligned_blocks_and_carry_the_last_one() {
        let mut disk = vec![0u8; 64 << 10];
        let mut data = Vec::new();
        let mut stage = Stage::new(0, &[]);
        let sizes = [100usize, 3996, 1, 5000, 4096, 8191, 7, 20_000, 3];
        // Appends staged one, two or three at a time per write.
        for (i, chunk) in sizes.chunks(2).enumerate() {
            for (j, len) in chunk.iter().enumerate() {
                let batch: Vec<u8> = (0..*len).map(|k| (i * 31 + j * 7 + k) as u8 | 1).collect();
                stage.buf.extend(&batch);
                stage.last_seq += 1;
                data.extend_from_slice(&batch);
            }
            assert!(stage.has_news());
            let (buf, position, seq) = stage.take();
            assert_eq!(seq, stage.last_seq);
            let bytes = buf.data();
            assert_eq!(position % BLOCK, 0, "aligned position");
            assert_eq!(bytes.len() as u64 % BLOCK, 0, "whole blocks");
            assert_eq!(
                bytes.as_ptr() as usize % BLOCK as usize,
                0,
                "aligned memory"
            );
            disk[position as usize..position as usize + bytes.len()].copy_from_slice(bytes);
            stage.spare = Some(buf);
            // What the writes left on disk is the data, then zeros.
            assert_eq!(&disk[..data.len()], &data[..]);
            let padded = round_up(data.len() as u64) as usize;
            assert!(disk[data.len()..padded].iter().all(|&b| b == 0));
            assert_eq!(stage.end(), data.len() as u64);
            assert!(!stage.has_news());
        }
    }
}
