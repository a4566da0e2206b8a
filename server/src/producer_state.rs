//! The idempotent producers' state of a partition, snapshotted at every
//! segment roll and at a clean close (as Kafka does): a start after a clean
//! close loads it instead of re-reading the active segment, and a start
//! after a crash replays only the log after it, yet still knows producers
//! whose last batches are in sealed segments. Pure functions over bytes.
//!
//! File `producer-state.snapshot` in the partition directory, big-endian:
//!
//! ```text
//! magic "RLPS" | version u16 (1) | end_offset u64 | producers u32
//! producers times: producer_id i64 | epoch i16 | batches u8
//!                  batches times: first_seq i32 | last_seq i32 | base_offset u64
//! crc32c u32 of every byte before it
//! ```
//!
//! `end_offset` is the log end the state covers: a start replays the batches
//! from there to the log end on top of it. A snapshot that fails its CRC, or
//! whose end is past the log end (the log lost its tail), is ignored and the
//! state is rebuilt from the log as before.

/// File name in the partition directory.
pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";
const MAGIC: &[u8; 4] = b"RLPS";
const VERSION: u16 = 1;
/// Batches remembered per producer (Kafka's 5); more in a file is corrupt.
const BATCHES_MAX: usize = 5;
/// Producers in one file at most: a bound on what a corrupt count allocates.
const PRODUCERS_MAX: usize = 1 << 20;

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// First sequence number.
    pub first_seq: i32,
    /// Last sequence number.
    pub last_seq: i32,
    /// Where it was stored.
    pub base_offset: u64,
}

/// One producer's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producer {
    /// Producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// Its last batches, oldest first.
    pub batches: Vec<Batch>,
}

/// A partition's producers as of `end_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Log end offset the state covers.
    pub end_offset: u64,
    /// Every producer with state.
    pub producers: Vec<Producer>,
}

/// The file's bytes.
pub fn encode(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(22 + s.producers.len() * (11 + BATCHES_MAX * 16));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&s.end_offset.to_be_bytes());
    out.extend_from_slice(&(s.producers.len() as u32).to_be_bytes());
    for p in &s.producers {
        out.extend_from_slice(&p.producer_id.to_be_bytes());
        out.extend_from_slice(&p.epoch.to_be_bytes());
        let batches = &p.batches[p.batches.len().saturating_sub(BATCHES_MAX)..];
        out.push(batches.len() as u8);
        for b in batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Reads a snapshot, or says why it cannot be trusted.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or("shorter than its checksum")?;
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader(body);
    if r.take::<4>()? != *MAGIC {
        return Err("not a producer-state snapshot".into());
    }
    let version = u16::from_be_bytes(r.take()?);
    if version != VERSION {
        return Err(format!("version {version}, not {VERSION}"));
    }
    let end_offset = u64::from_be_bytes(r.take()?);
    let count = u32::from_be_bytes(r.take()?) as usize;
    if count > PRODUCERS_MAX {
        return Err(format!("{count} producers"));
    }
    let mut producers = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let producer_id = i64::from_be_bytes(r.take()?);
        let epoch = i16::from_be_bytes(r.take()?);
        let [n] = r.take::<1>()?;
        if usize::from(n) > BATCHES_MAX {
            return Err(format!("{n} batches for producer {producer_id}"));
        }
        let mut batches = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            batches.push(Batch {
                first_seq: i32::from_be_bytes(r.take()?),
                last_seq: i32::from_be_bytes(r.take()?),
                base_offset: u64::from_be_bytes(r.take()?),
            });
        }
        producers.push(Producer {
            producer_id,
            epoch,
            batches,
        });
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes after the last producer", r.0.len()));
    }
    Ok(Snapshot {
        end_offset,
        producers,
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or("ends in the middle of a field")?;
        self.0 = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            end_offset: 4242,
            producers: vec![
                Producer {
                    producer_id: 7,
                    epoch: 1,
                    batches: (0..5)
                        .map(|i| Batch {
                            first_seq: i * 10,
                            last_seq: i * 10 + 9,
                            base_offset: 100 + i as u64 * 10,
                        })
                        .collect(),
                },
                Producer {
                    producer_id: 8,
                    epoch: 0,
                    batches: vec![],
                },
            ],
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_written() {
        assert_eq!(decode(&encode(&sample())).unwrap(), sample());
        let empty = Snapshot {
            end_offset: 0,
            producers: vec![],
        };
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn every_damage_is_refused_without_panic() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(decode(&bad).is_err(), "flip at {at}");
        }
    }
}
