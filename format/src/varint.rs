//! Kafka's zig-zag varints: a bounds-checked reader over a byte slice and the
//! matching writer. No I/O here; every read is checked against the bytes present.

use crate::batch::BatchError;

/// The longest encoding of a 32-bit varint: 5 groups of 7 bits.
const VARINT_BYTES_MAX: usize = 5;
/// The longest encoding of a 64-bit varlong: 10 groups of 7 bits.
const VARLONG_BYTES_MAX: usize = 10;

/// A cursor over a record's bytes that refuses to read past its end.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes between two positions this cursor has passed.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        &self.buf[start..end]
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn u8(&mut self) -> Result<u8, BatchError> {
        let b = *self.buf.get(self.pos).ok_or(BatchError::RecordTruncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], BatchError> {
        if len > self.remaining() {
            return Err(BatchError::RecordTruncated);
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// Reads an unsigned LEB128 of at most `bytes_max` groups whose value fits in `bits`.
    fn uleb(&mut self, bytes_max: usize, bits: u32) -> Result<u64, BatchError> {
        let mut value: u64 = 0;
        for i in 0..bytes_max {
            let b = self.u8()?;
            let group = u64::from(b & 0x7f);
            let shift = 7 * i as u32;
            // The last group may only carry the bits that are left; anything
            // more is an over-long or overflowing encoding no encoder makes.
            if shift + 7 > bits && group >> (bits - shift) != 0 {
                return Err(BatchError::VarintOverflow);
            }
            value |= group << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BatchError::VarintOverflow)
    }

    pub(crate) fn varint(&mut self) -> Result<i32, BatchError> {
        let raw = self.uleb(VARINT_BYTES_MAX, 32)? as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    pub(crate) fn varlong(&mut self) -> Result<i64, BatchError> {
        let raw = self.uleb(VARLONG_BYTES_MAX, 64)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// A varint length followed by that many bytes; -1 means null.
    pub(crate) fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            len if len < 0 => Err(BatchError::NegativeLength(len)),
            len => self.bytes(len as usize).map(Some),
        }
    }
}

/// Appends `v` as a zig-zag varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_uleb(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
}

/// Appends `v` as a zig-zag varlong.
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_uleb(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_uleb(out: &mut Vec<u8>, mut raw: u64) {
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Encoded length of `v` as a zig-zag varint.
pub(crate) fn varint_len(v: i32) -> usize {
    uleb_len(((v << 1) ^ (v >> 31)) as u32 as u64)
}

/// Encoded length of `v` as a zig-zag varlong.
pub(crate) fn varlong_len(v: i64) -> usize {
    uleb_len(((v << 1) ^ (v >> 63)) as u64)
}

fn uleb_len(raw: u64) -> usize {
    // One byte per started group of 7 bits, at least one.
    (64 - (raw | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_roundtrips(v: i32) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            let mut c = Cursor::new(&out);
            prop_assert_eq!(c.varint().unwrap(), v);
            prop_assert_eq!(c.remaining(), 0);
        }

        #[test]
        fn varlong_roundtrips(v: i64) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(v));
            let mut c = Cursor::new(&out);
            prop_assert_eq!(c.varlong().unwrap(), v);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let mut c = Cursor::new(&bytes);
            let _ = c.varint();
            let _ = c.varlong();
            let _ = c.nullable_bytes();
        }
    }

    #[test]
    fn overlong_and_overflowing_varints_are_rejected() {
        // Six groups for a 32-bit varint.
        let mut c = Cursor::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        assert_eq!(c.varint(), Err(BatchError::VarintOverflow));
        // Five groups whose last carries more than the 4 bits left.
        let mut c = Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert_eq!(c.varint(), Err(BatchError::VarintOverflow));
        // The largest legal one still decodes.
        let mut c = Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(c.varint(), Ok(i32::MIN));
        let mut c = Cursor::new(&[0x80]);
        assert_eq!(c.varint(), Err(BatchError::RecordTruncated));
    }
}
