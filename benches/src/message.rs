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

/// The filler's 8-byte pattern: distinct per message, and cheap enough
/// that the load generator's own work does not bound what it measures.
fn pattern(producer: u32, seq: u64) -> [u8; 8] {
    ((u64::from(producer) << 48) ^ seq)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .to_le_bytes()
}

/// A message of `size` bytes (at least [`HEADER_BYTES`]).
pub fn encode(producer: u32, seq: u64, sent_ns: u64, size: usize) -> Vec<u8> {
    let mut out = vec![0; size.max(HEADER_BYTES)];
    encode_into(&mut out, producer, seq, sent_ns);
    out
}

/// Writes a message over all of `out` (at least [`HEADER_BYTES`] long), in
/// place: the batch-level producer path writes it straight into the batch.
pub fn encode_into(out: &mut [u8], producer: u32, seq: u64, sent_ns: u64) {
    out[0..4].copy_from_slice(&producer.to_be_bytes());
    out[4..12].copy_from_slice(&seq.to_be_bytes());
    out[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    let pattern = pattern(producer, seq);
    let mut chunks = out[HEADER_BYTES..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&pattern);
    }
    let rest = chunks.into_remainder();
    let n = rest.len();
    rest.copy_from_slice(&pattern[..n]);
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

/// Reads a message's header only, not its filler.
pub fn decode_header(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "message of {} bytes is shorter than its header",
            bytes.len()
        ));
    }
    Ok(Decoded {
        producer: u32::from_be_bytes(bytes[0..4].try_into().map_err(|_| "header")?),
        seq: u64::from_be_bytes(bytes[4..12].try_into().map_err(|_| "header")?),
        sent_ns: u64::from_be_bytes(bytes[12..20].try_into().map_err(|_| "header")?),
    })
}

/// Reads a message and checks its filler; `Err` says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let decoded = decode_header(bytes)?;
    let (producer, seq) = (decoded.producer, decoded.seq);
    let pattern = pattern(producer, seq);
    // Word by word: a slice compare per 8 bytes was a memcmp call each, and
    // the bench's own check was the consumer's largest cost.
    let word = u64::from_ne_bytes(pattern);
    let body = &bytes[HEADER_BYTES..];
    let words = body.chunks_exact(8);
    let tail = words.remainder();
    let bad_word = words
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .position(|w| w != word);
    let bad_tail = (tail != &pattern[..tail.len()]).then_some(body.len() / 8);
    if let Some(chunk) = bad_word.or(bad_tail) {
        let at = HEADER_BYTES + chunk * 8;
        return Err(format!(
            "producer {producer} message {seq}: bytes from {at} differ from what was sent"
        ));
    }
    Ok(decoded)
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
        assert!(decode(&bad).unwrap_err().contains("from 36"));
        assert_eq!(encode(1, 2, 3, 27).len(), 27);
        assert!(decode(&encode(1, 2, 3, 27)).is_ok());
        // A flip in the tail that is not a whole word is caught too.
        let mut tail = encode(1, 2, 3, 27);
        tail[26] ^= 0x80;
        assert!(decode(&tail).unwrap_err().contains("from 20"));
        assert!(decode(&m[..10]).is_err());
    }
}
