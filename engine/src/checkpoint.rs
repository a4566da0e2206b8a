//! The recovery checkpoint: the offset below which a partition's segments
//! were synced and need no validation at the next open. Pure encoding; the
//! log writes it atomically (temp file, fsync, rename).
//!
//! Layout (20 bytes, big-endian): magic `RLCK`, version u32 = 1,
//! recovery offset u64, CRC-32C of the 16 bytes before it.

/// File name of the checkpoint inside a partition directory.
pub const CHECKPOINT_FILE: &str = "recovery.checkpoint";
const MAGIC: [u8; 4] = *b"RLCK";
const VERSION: u32 = 1;
/// Size of the checkpoint file.
pub const CHECKPOINT_BYTES: usize = 20;

/// Encodes a checkpoint at `offset`.
pub fn encode(offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHECKPOINT_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a checkpoint; `None` if it is damaged, in which case the log
/// validates everything.
pub fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != CHECKPOINT_BYTES || bytes[0..4] != MAGIC {
        return None;
    }
    if u32::from_be_bytes(bytes[4..8].try_into().ok()?) != VERSION {
        return None;
    }
    let crc = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    if crc32c::crc32c(&bytes[..16]) != crc {
        return None;
    }
    Some(u64::from_be_bytes(bytes[8..16].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let bytes = encode(123_456);
        assert_eq!(decode(&bytes), Some(123_456));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert_eq!(decode(&b), None, "damage at byte {i} accepted");
        }
        assert_eq!(decode(&bytes[..19]), None);
    }
}
