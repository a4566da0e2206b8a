//! The benchmark's messages: who sent each, its sequence number, when it
//! was meant to be sent, and filler bytes derived from those, so a consumer
//! can check every byte it receives.

/// Bytes of the fixed part: producer (4), sequence (8), send time (8).
pub const HEADER_BYTES: usize = 20;

/// Nanoseconds since the Unix epoch: comparable between processes on one host.
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn filler(producer: u32, seq: u64, i: usize) -> u8 {
    (u64::from(producer).wrapping_mul(31) ^ seq.wrapping_mul(17)).wrapping_add(i as u64) as u8
}

/// A message of `size` bytes (at least [`HEADER_BYTES`]).
pub fn encode(producer: u32, seq: u64, sent_ns: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(HEADER_BYTES));
    out.extend_from_slice(&producer.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&sent_ns.to_be_bytes());
    out.extend((HEADER_BYTES..size).map(|i| filler(producer, seq, i)));
    out
}

/// What a received message says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Producer index.
    pub producer: u32,
    /// Its sequence number at that producer.
    pub seq: u64,
    /// When it was meant to be sent (ns since the epoch).
    pub sent_ns: u64,
}

/// Reads a message and checks its filler; `Err` says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "message of {} bytes is shorter than its header",
            bytes.len()
        ));
    }
    let producer = u32::from_be_bytes(bytes[0..4].try_into().map_err(|_| "header")?);
    let seq = u64::from_be_bytes(bytes[4..12].try_into().map_err(|_| "header")?);
    let sent_ns = u64::from_be_bytes(bytes[12..20].try_into().map_err(|_| "header")?);
    if let Some(i) = (HEADER_BYTES..bytes.len()).find(|&i| bytes[i] != filler(producer, seq, i)) {
        return Err(format!(
            "producer {producer} message {seq}: byte {i} differs from what was sent"
        ));
    }
    Ok(Decoded {
        producer,
        seq,
        sent_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let m = encode(3, 99, 12345, 64);
        assert_eq!(m.len(), 64);
        assert_eq!(
            decode(&m).unwrap(),
            Decoded {
                producer: 3,
                seq: 99,
                sent_ns: 12345
            }
        );
        let mut bad = m.clone();
        bad[40] ^= 1;
        assert!(decode(&bad).unwrap_err().contains("byte 40"));
        assert!(decode(&m[..10]).is_err());
    }
}
