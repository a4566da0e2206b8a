//! The leader-epoch cache of a partition (cluster mode, issue 13): for each
//! leader epoch whose leader appended records, the first offset it wrote.
//! A follower asks the leader where its last epoch ended and truncates its
//! log there before fetching again, so replicas never keep a tail written
//! under an older epoch that the new leader does not have (Kafka's KIP-101
//! and KIP-279 rule). Pure: the log persists the encoding beside the
//! segments.
//!
//! File layout (big-endian): magic `RLEP`, version u32 = 1, entry count u32,
//! then per entry epoch i32 and start offset u64, then the CRC-32C of every
//! byte before it.

/// File name of the cache inside a partition directory.
pub const EPOCHS_FILE: &str = "leader-epochs";
const MAGIC: [u8; 4] = *b"RLEP";
const VERSION: u32 = 1;
/// Entries a file may hold: a bound on what a corrupt count allocates.
const ENTRIES_MAX: usize = 1 << 20;

/// One leader epoch and the first offset appended under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The first offset its leader appended.
    pub start_offset: u64,
}

/// The epochs of a partition's log, ascending in both epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// An empty cache (a log with no records).
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Records that records of `epoch` start at `start_offset` (called when
    /// a batch of a new epoch is appended). The first offset of an epoch is
    /// fixed, so the same epoch again changes nothing. Entries that the new
    /// one contradicts (an epoch as high or higher, or a start as late or
    /// later: what a follower had written past the point it truncated to)
    /// are dropped first, as Kafka does. Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: u64) -> bool {
        if self
            .latest()
            .is_some_and(|l| l.epoch == epoch && l.start_offset <= start_offset)
        {
            return false;
        }
        while self
            .entries
            .last()
            .is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Where `requested`'s records end in this log, as the leader answers a
    /// follower whose last fetched epoch is `requested` (Kafka's
    /// `endOffsetFor`): `(epoch, end_offset)` with `epoch` the largest epoch
    /// known at or below `requested`, and `end_offset` the start of the first
    /// epoch above it, or `log_end` if `requested` is the latest epoch.
    /// `None` if nothing is known about `requested` (the cache is empty, or
    /// `requested` is above every epoch here).
    pub fn end_offset_for(&self, requested: i32, log_end: u64) -> Option<(i32, u64)> {
        let latest = self.latest()?;
        if requested == latest.epoch {
            return Some((latest.epoch, log_end));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
        Some(match floor {
            Some(f) => (f.epoch, higher.start_offset),
            // Older than every epoch here: it ended where the first began.
            None => (requested, higher.start_offset),
        })
    }

    /// The log was cut to end at `end_offset`: epochs that started there or
    /// later are gone.
    pub fn truncate_from_end(&mut self, end_offset: u64) {
        while self
            .entries
            .last()
            .is_some_and(|e| e.start_offset >= end_offset)
        {
            self.entries.pop();
        }
    }

    /// The log now starts at `start_offset` (retention): epochs that ended
    /// before it are gone, and the one holding it starts there.
    pub fn truncate_from_start(&mut self, start_offset: u64) {
        let ended = self
            .entries
            .windows(2)
            .take_while(|w| w[1].start_offset <= start_offset)
            .count();
        self.entries.drain(..ended);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = first.start_offset.max(start_offset);
        }
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 12 * self.entries.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.start_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a file, or says why it cannot be trusted (then the cache is
    /// rebuilt from the batches' `partitionLeaderEpoch` fields).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body_len = bytes.len().checked_sub(4).ok_or("shorter than its CRC")?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return Err("CRC mismatch".into());
        }
        if body.len() < 12 || body[..4] != MAGIC {
            return Err("not a leader-epoch file".into());
        }
        let word =
            |at: usize| u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        if word(4) != VERSION {
            return Err(format!("version {} is not {VERSION}", word(4)));
        }
        let count = word(8) as usize;
        if count > ENTRIES_MAX || body.len() != 12 + 12 * count {
            return Err(format!("{count} entries do not fit {} bytes", body.len()));
        }
        let mut entries: Vec<EpochEntry> = Vec::with_capacity(count);
        for chunk in body[12..].chunks_exact(12) {
            let epoch = i32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let mut start = [0u8; 8];
            start.copy_from_slice(&chunk[4..]);
            let entry = EpochEntry {
                epoch,
                start_offset: u64::from_be_bytes(start),
            };
            if entries
                .last()
                .is_some_and(|l| l.epoch >= entry.epoch || l.start_offset > entry.start_offset)
            {
                return Err("entries out of order".into());
            }
            entries.push(entry);
        }
        Ok(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cache(entries: &[(i32, u64)]) -> EpochCache {
        let mut c = EpochCache::new();
        for &(epoch, start) in entries {
            assert!(c.assign(epoch, start));
        }
        c
    }

    #[test]
    fn end_offsets_follow_kafka() {
        // Epoch 1 wrote 0..10, epoch 3 wrote 10..25, epoch 4 from 25 on.
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(
            c.end_offset_for(4, 40),
            Some((4, 40)),
            "the latest: the log end"
        );
        assert_eq!(c.end_offset_for(3, 40), Some((3, 25)));
        assert_eq!(
            c.end_offset_for(2, 40),
            Some((1, 10)),
            "unknown epoch: the floor's"
        );
        assert_eq!(c.end_offset_for(0, 40), Some((0, 0)), "older than all");
        assert_eq!(c.end_offset_for(5, 40), None, "newer than all");
        assert_eq!(EpochCache::new().end_offset_for(1, 0), None);
    }

    #[test]
    fn assign_keeps_an_epochs_first_offset_and_drops_what_it_contradicts() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(!c.assign(3, 12), "an epoch's start is fixed");
        // A follower that wrote epoch 3 from 10 learns the leader's epoch 2
        // started at 8: its epoch 3 entry goes.
        assert!(c.assign(2, 8));
        assert_eq!(c.entries(), &cache(&[(1, 0), (2, 8)]).entries);
    }

    #[test]
    fn truncation_at_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 25)]);
        c.truncate_from_end(25);
        assert_eq!(
            c.latest(),
            Some(EpochEntry {
                epoch: 3,
                start_offset: 10
            })
        );
        c.truncate_from_start(12);
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 12
            }]
        );
        c.truncate_from_end(0);
        assert!(c.entries().is_empty());
    }

    #[test]
    fn the_file_round_trips_and_refuses_damage() {
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        let bytes = c.encode();
        assert_eq!(EpochCache::decode(&bytes), Ok(c));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(
                EpochCache::decode(&b).is_err(),
                "damage at byte {i} accepted"
            );
        }
        assert!(EpochCache::decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(
            EpochCache::decode(&EpochCache::new().encode()),
            Ok(EpochCache::new())
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// The leader of `epoch + bump` appends `n` records.
        Append { bump: i32, n: u64 },
        /// The log is cut to end at this fraction of its length.
        CutEnd(f64),
        /// Retention moves the start to this fraction of the log.
        CutStart(f64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0i32..3, 1u64..20).prop_map(|(bump, n)| Op::Append { bump, n }),
            1 => (0.0f64..1.0).prop_map(Op::CutEnd),
            1 => (0.0f64..1.0).prop_map(Op::CutStart),
        ]
    }

    proptest! {
        /// Against a model that remembers the epoch of every offset: the
        /// cache's answers are what the records say.
        #[test]
        fn answers_match_the_records(ops in proptest::collection::vec(op(), 1..60)) {
            let mut cache = EpochCache::new();
            // The epoch each offset was written under, from `start` on.
            let (mut start, mut written): (u64, Vec<i32>) = (0, Vec::new());
            let mut epoch = 0;
            for op in ops {
                match op {
                    Op::Append { bump, n } => {
                        epoch += bump;
                        let end = start + written.len() as u64;
                        cache.assign(epoch, end);
                        written.extend(std::iter::repeat_n(epoch, n as usize));
                    }
                    Op::CutEnd(f) => {
                        let keep = (written.len() as f64 * f) as usize;
                        written.truncate(keep);
                        cache.truncate_from_end(start + keep as u64);
                    }
                    Op::CutStart(f) => {
                        // Retention never empties a log (the active segment
                        // stays).
                        let drop = ((written.len() as f64 * f) as usize).min(written.len().saturating_sub(1));
                        written.drain(..drop);
                        start += drop as u64;
                        cache.truncate_from_start(start);
                    }
                }
                let end = start + written.len() as u64;
                let first_of = |e: i32| written.iter().position(|&w| w == e).map(|i| start + i as u64);
                // Each epoch present in the log, with its first offset.
                let mut want: Vec<EpochEntry> = Vec::new();
                for &e in &written {
                    if want.last().is_none_or(|l| l.epoch != e) {
                        want.push(EpochEntry { epoch: e, start_offset: first_of(e).unwrap() });
                    }
                }
                prop_assert_eq!(cache.entries(), &want[..]);
                for requested in -1..=epoch + 1 {
                    let higher = written.iter().find(|&&w| w > requested).copied();
                    let floor = written.iter().rev().filter(|&&w| w <= requested).max().copied();
                    let expect = match (written.last(), higher) {
                        (None, _) => None,
                        (Some(&latest), _) if latest == requested => Some((latest, end)),
                        (_, None) => None,
                        (_, Some(h)) => Some((floor.unwrap_or(requested), first_of(h).unwrap())),
                    };
                    prop_assert_eq!(cache.end_offset_for(requested, end), expect, "epoch {}", requested);
                }
                prop_assert_eq!(EpochCache::decode(&cache.encode()), Ok(cache.clone()));
            }
        }
    }
}
