//! Kafka RecordBatch v2: the validating view, the lazy record iterator and the
//! builder.
//!
//! This is the one implementation of the format in ringlog: the broker stores
//! and serves these bytes verbatim and the client builds them here. Pure
//! functions over bytes; no I/O, no allocation on the read path.
//!
//! Layout (big-endian, see `engine/FORMAT.md`): a 61-byte header followed by
//! the records. The CRC-32C covers everything from `attributes` to the end, so
//! the leader may patch `baseOffset` and `partitionLeaderEpoch` in place.

use crate::varint::{put_varint, put_varlong, varint_len, varlong_len, Cursor};
use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the fixed batch header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batchLength` counts: `baseOffset` (8) and `batchLength` (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Where the CRC-covered part begins (`attributes`).
pub const CRC_START: usize = 21;
/// The only magic ringlog speaks.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal `batchLength`: a header with no records.
pub const BATCH_LENGTH_MIN: i32 = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;

/// Attribute bits 0-2: the compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are the broker's append time (`maxTimestamp`).
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;

/// The 61-byte RecordBatch v2 header, read in place with zerocopy.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug, Clone, Copy)]
#[repr(C)]
pub struct BatchHeader {
    /// Offset of the first record; assigned by the leader at append.
    pub base_offset: I64,
    /// Bytes after this field.
    pub batch_length: I32,
    /// Epoch of the leader that appended the batch.
    pub partition_leader_epoch: I32,
    /// Format version; always 2.
    pub magic: i8,
    /// CRC-32C of `attributes` through the end of the batch.
    pub crc: U32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: I16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: I32,
    /// Timestamp the record deltas are relative to (ms).
    pub base_timestamp: I64,
    /// Largest record timestamp in the batch (ms).
    pub max_timestamp: I64,
    /// Idempotent producer id, or -1.
    pub producer_id: I64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: I16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: I32,
    /// Number of records that follow.
    pub record_count: I32,
}

const _: () = assert!(std::mem::size_of::<BatchHeader>() == HEADER_BYTES);

/// Why a batch was rejected. Every variant names the first check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header or than `batchLength` announces.
    #[error("batch truncated: {needed} bytes needed, {present} present")]
    Incomplete {
        /// Bytes the batch needs in total.
        needed: usize,
        /// Bytes that were there.
        present: usize,
    },
    /// `batchLength` is below the header size.
    #[error("batchLength {0} is smaller than the {BATCH_LENGTH_MIN}-byte header")]
    LengthTooSmall(i32),
    /// `batchLength` exceeds the configured limit.
    #[error("batch of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared size of the whole batch.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// Not a v2 batch.
    #[error("unsupported magic {0}, only 2 is supported")]
    BadMagic(i8),
    /// The stored CRC does not match the bytes.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// `recordCount` is negative or does not fit `lastOffsetDelta`.
    #[error("recordCount {count} does not fit lastOffsetDelta {last_offset_delta}")]
    BadCount {
        /// `recordCount` from the header.
        count: i32,
        /// `lastOffsetDelta` from the header.
        last_offset_delta: i32,
    },
    /// The records do not add up to `recordCount`.
    #[error("recordCount says {declared} records, {found} found")]
    CountMismatch {
        /// `recordCount` from the header.
        declared: i32,
        /// Records actually decoded.
        found: i32,
    },
    /// A record's offset delta is out of order or beyond `lastOffsetDelta`.
    #[error(
        "record offset delta {delta} out of order or beyond lastOffsetDelta {last_offset_delta}"
    )]
    BadOffsetDelta {
        /// The record's delta.
        delta: i32,
        /// `lastOffsetDelta` from the header.
        last_offset_delta: i32,
    },
    /// A varint longer than its type allows.
    #[error("over-long or overflowing varint")]
    VarintOverflow,
    /// A length field below -1.
    #[error("negative length {0}")]
    NegativeLength(i32),
    /// A record runs past the end of the batch or of its own length.
    #[error("record truncated")]
    RecordTruncated,
    /// Bytes left inside a record, or after the last record.
    #[error("{0} unexpected bytes after the records")]
    TrailingBytes(usize),
    /// Records compressed with a codec this build does not decode (or
    /// read without decompressing them first).
    #[error("compression codec {0} is not decoded here")]
    Compressed(i16),
    /// Compressed records that do not decompress.
    #[error("compression codec {codec}: {why}")]
    Decompress {
        /// The codec.
        codec: i16,
        /// What went wrong.
        why: String,
    },
    /// The builder was asked for more than a batch can hold.
    #[error("batch is full")]
    Full,
}

impl BatchError {
    /// True when more bytes could make the batch whole (a torn tail, not corruption).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, BatchError::Incomplete { .. })
    }
}

/// Reads the header at the start of `buf` and checks what can be checked
/// without the body: magic, counts and the declared length against
/// `max_bytes`. Returns the header and the batch's total size, which may be
/// more than `buf` holds. Does not check the CRC.
pub fn peek(buf: &[u8], max_bytes: usize) -> Result<(&BatchHeader, usize), BatchError> {
    let Ok((header, _)) = BatchHeader::ref_from_prefix(buf) else {
        return Err(BatchError::Incomplete {
            needed: HEADER_BYTES,
            present: buf.len(),
        });
    };
    let length = header.batch_length.get();
    if length < BATCH_LENGTH_MIN {
        return Err(BatchError::LengthTooSmall(length));
    }
    let size = LOG_OVERHEAD_BYTES + length as usize;
    if size > max_bytes {
        return Err(BatchError::TooLarge {
            size,
            max: max_bytes,
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    let count = header.record_count.get();
    let last = header.last_offset_delta.get();
    // A batch always holds at least one offset; records may be fewer than
    // offsets (compaction) but never more.
    if count < 0 || last < 0 || i64::from(count) > i64::from(last) + 1 {
        return Err(BatchError::BadCount {
            count,
            last_offset_delta: last,
        });
    }
    Ok((header, size))
}

/// CRC-32C of a whole batch's covered part (`attributes` to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// A validated batch over borrowed bytes.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    header: &'a BatchHeader,
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Validates the batch at the start of `buf` completely: header, lengths,
    /// magic, CRC, and for an uncompressed batch every record (varints
    /// bounded, lengths within the batch, offset deltas ascending, count equal
    /// to `recordCount`). Bytes after the batch are ignored.
    pub fn parse(buf: &'a [u8], max_bytes: usize) -> Result<Self, BatchError> {
        let view = Self::parse_crc_only(buf, max_bytes)?;
        if view.compression() == 0 {
            let mut found = 0i32;
            for record in view.records()? {
                record?;
                found += 1;
            }
            if found != view.header.record_count.get() {
                return Err(BatchError::CountMismatch {
                    declared: view.header.record_count.get(),
                    found,
                });
            }
        }
        Ok(view)
    }

    /// Validates header, lengths, magic and CRC, but not the records: for
    /// bytes that were fully validated before they were stored.
    pub fn parse_crc_only(buf: &'a [u8], max_bytes: usize) -> Result<Self, BatchError> {
        let view = Self::parse_crc_checked(buf, max_bytes)?;
        let (header, bytes) = (view.header, view.bytes);
        let computed = compute_crc(bytes);
        let stored = header.crc.get();
        if computed != stored {
            return Err(BatchError::BadCrc { stored, computed });
        }
        Ok(Self { header, bytes })
    }

    /// Checks header, lengths and magic, not the CRC: for bytes whose CRC
    /// this process has checked already (a consumer walking a batch it
    /// checked when it was fetched). Computing it again cost as much as
    /// the rest of the walk.
    pub fn parse_crc_checked(buf: &'a [u8], max_bytes: usize) -> Result<Self, BatchError> {
        let (header, size) = peek(buf, max_bytes)?;
        let Some(bytes) = buf.get(..size) else {
            return Err(BatchError::Incomplete {
                needed: size,
                present: buf.len(),
            });
        };
        Ok(Self { header, bytes })
    }

    /// The header, in place.
    pub fn header(&self) -> &'a BatchHeader {
        self.header
    }

    /// The whole batch, exactly as stored.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset.get()
    }

    /// Offset of the last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.header.last_offset_delta.get())
    }

    /// Number of offsets the batch occupies.
    pub fn offset_count(&self) -> u64 {
        self.header.last_offset_delta.get() as u64 + 1
    }

    /// The compression codec (0 = none).
    pub fn compression(&self) -> i16 {
        self.header.attributes.get() & ATTR_COMPRESSION_MASK
    }

    /// Largest timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp.get()
    }

    /// The records, decoded lazily. Fails for a compressed batch.
    pub fn records(&self) -> Result<Records<'a>, BatchError> {
        let compression = self.compression();
        if compression != 0 {
            return Err(BatchError::Compressed(compression));
        }
        Ok(Records {
            cursor: Cursor::new(&self.bytes[HEADER_BYTES..]),
            left: self.header.record_count.get(),
            base_offset: self.base_offset(),
            base_timestamp: self.header.base_timestamp.get(),
            log_append_time: (self.header.attributes.get() & ATTR_LOG_APPEND_TIME != 0)
                .then(|| self.max_timestamp()),
            last_offset_delta: self.header.last_offset_delta.get(),
            previous_delta: -1,
        })
    }
}

/// One record, borrowing the batch's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Timestamp (ms): create time, or the append time for log-append-time batches.
    pub timestamp: i64,
    /// Key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: i32,
    encoded: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record exactly as stored, its length prefix included: what a
    /// rewritten batch with the same base offset and timestamp holds.
    pub fn encoded(&self) -> &'a [u8] {
        self.encoded
    }

    /// The record's headers as (name, value) pairs, in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            cursor: Cursor::new(self.headers),
            left: self.header_count,
        }
    }
}

/// Lazy iterator over a batch's records; stops after the first error.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    cursor: Cursor<'a>,
    left: i32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    last_offset_delta: i32,
    previous_delta: i64,
}

impl<'a> Records<'a> {
    fn decode(&mut self) -> Result<Record<'a>, BatchError> {
        let start = self.cursor.pos();
        let length = self.cursor.varint()?;
        if length < 0 {
            return Err(BatchError::NegativeLength(length));
        }
        let mut rec = Cursor::new(self.cursor.bytes(length as usize)?);
        let _attributes = rec.u8()?;
        let timestamp_delta = rec.varlong()?;
        let offset_delta = rec.varint()?;
        if i64::from(offset_delta) <= self.previous_delta || offset_delta > self.last_offset_delta {
            return Err(BatchError::BadOffsetDelta {
                delta: offset_delta,
                last_offset_delta: self.last_offset_delta,
            });
        }
        self.previous_delta = i64::from(offset_delta);
        let key = rec.nullable_bytes()?;
        let value = rec.nullable_bytes()?;
        let header_count = rec.varint()?;
        if header_count < 0 {
            return Err(BatchError::NegativeLength(header_count));
        }
        let headers_start = rec.pos();
        for _ in 0..header_count {
            match rec.nullable_bytes()? {
                Some(_) => {}
                None => return Err(BatchError::NegativeLength(-1)),
            }
            rec.nullable_bytes()?;
        }
        let headers = rec.slice(headers_start, rec.pos());
        if rec.remaining() != 0 {
            return Err(BatchError::TrailingBytes(rec.remaining()));
        }
        let timestamp = match self.log_append_time {
            Some(t) => t,
            None => self.base_timestamp.wrapping_add(timestamp_delta),
        };
        Ok(Record {
            offset: self.base_offset + i64::from(offset_delta),
            timestamp,
            key,
            value,
            headers,
            header_count,
            encoded: self.cursor.slice(start, self.cursor.pos()),
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left <= 0 {
            if self.cursor.remaining() != 0 && self.left == 0 {
                self.left = -1;
                return Some(Err(BatchError::TrailingBytes(self.cursor.remaining())));
            }
            return None;
        }
        if self.cursor.remaining() == 0 {
            let declared = self.left;
            self.left = -1;
            return Some(Err(BatchError::CountMismatch { declared, found: 0 }));
        }
        match self.decode() {
            Ok(record) => {
                self.left -= 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.left = -1;
                Some(Err(e))
            }
        }
    }
}

/// Lazy iterator over a record's headers. The headers were checked when the
/// record was decoded, so this iterator cannot meet malformed bytes.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    cursor: Cursor<'a>,
    left: i32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left <= 0 {
            return None;
        }
        self.left -= 1;
        let name = self.cursor.nullable_bytes().ok().flatten();
        let value = self.cursor.nullable_bytes();
        debug_assert!(
            name.is_some() && value.is_ok(),
            "headers were validated at decode"
        );
        Some((name?, value.ok()?))
    }
}

/// A record to be added to a batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRecord<'a> {
    /// Key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// Headers as (name, value) pairs.
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
    /// Create time (ms).
    pub timestamp: i64,
}

/// Identity of an idempotent producer, stamped into the batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    /// Producer id handed out by the broker.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence number of the batch's first record.
    pub base_sequence: i32,
}

impl ProducerStamp {
    /// The stamp of a batch that is not from an idempotent producer.
    pub const NONE: ProducerStamp = ProducerStamp {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// Builds one uncompressed v2 batch: records go in, one buffer with a correct
/// CRC comes out. `baseOffset` is 0 and `partitionLeaderEpoch` -1 until the
/// leader patches them.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    stamp: ProducerStamp,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new(ProducerStamp::NONE)
    }
}

impl BatchBuilder {
    /// An empty batch for the given producer stamp.
    pub fn new(stamp: ProducerStamp) -> Self {
        Self::with_capacity(stamp, 1024)
    }

    /// An empty batch whose buffer has room for `bytes` before it grows.
    pub fn with_capacity(stamp: ProducerStamp, bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_BYTES));
        buf.resize(HEADER_BYTES, 0);
        Self {
            buf,
            stamp,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Replaces the producer stamp the batch will carry: a producer numbers
    /// a batch when it closes it, not when it opens it.
    pub fn set_stamp(&mut self, stamp: ProducerStamp) {
        self.stamp = stamp;
    }

    /// Records added so far.
    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// Size the finished batch would have now.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Size `record` would add to the batch.
    pub fn record_size_bytes(&self, record: &NewRecord<'_>) -> usize {
        let base = if self.count == 0 {
            record.timestamp
        } else {
            self.base_timestamp
        };
        let value_len = record.value.map(<[u8]>::len);
        let body = Self::body_len(
            record,
            value_len,
            record.timestamp.wrapping_sub(base),
            self.count,
        );
        varint_len(body as i32) + body
    }

    fn body_len(
        record: &NewRecord<'_>,
        value_len: Option<usize>,
        timestamp_delta: i64,
        offset_delta: i32,
    ) -> usize {
        let nullable = |len: Option<usize>| match len {
            None => varint_len(-1),
            Some(n) => varint_len(n as i32) + n,
        };
        let headers: usize = record
            .headers
            .iter()
            .map(|(name, value)| nullable(Some(name.len())) + nullable(value.map(<[u8]>::len)))
            .sum();
        1 + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + nullable(record.key.map(<[u8]>::len))
            + nullable(value_len)
            + varint_len(record.headers.len() as i32)
            + headers
    }

    /// Appends a record. Fails with [`BatchError::Full`] if the batch would
    /// exceed `i32` lengths or counts.
    pub fn push(&mut self, record: &NewRecord<'_>) -> Result<(), BatchError> {
        let value = record.value;
        self.push_value(record, value.map(<[u8]>::len), |out| {
            if let Some(v) = value {
                out.copy_from_slice(v);
            }
        })
    }

    /// Appends a record whose value (`value_len` bytes, `record.value` is
    /// ignored) is written in place by `fill`: no buffer of its own for a
    /// value that is produced, not copied. `fill` gets exactly `value_len`
    /// bytes (zeroed); it is not called for a null value (`None`).
    pub fn push_with(
        &mut self,
        record: &NewRecord<'_>,
        value_len: Option<usize>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), BatchError> {
        self.push_value(record, value_len, fill)
    }

    fn push_value(
        &mut self,
        record: &NewRecord<'_>,
        value_len: Option<usize>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), BatchError> {
        if self.count == i32::MAX {
            return Err(BatchError::Full);
        }
        let fits_i32 = |n: usize| i32::try_from(n).is_ok();
        if !fits_i32(record.key.map_or(0, <[u8]>::len))
            || !fits_i32(value_len.unwrap_or(0))
            || !fits_i32(record.headers.len())
        {
            return Err(BatchError::Full);
        }
        if self.count == 0 {
            self.base_timestamp = record.timestamp;
        }
        let delta = record.timestamp.wrapping_sub(self.base_timestamp);
        let body = Self::body_len(record, value_len, delta, self.count);
        if !fits_i32(self.buf.len() + body + 5) {
            return Err(BatchError::Full);
        }
        let out = &mut self.buf;
        put_varint(out, body as i32);
        let start = out.len();
        out.push(0); // record attributes: unused in v2
        put_varlong(out, delta);
        put_varint(out, self.count);
        let put_nullable = |out: &mut Vec<u8>, b: Option<&[u8]>| match b {
            None => put_varint(out, -1),
            Some(b) => {
                put_varint(out, b.len() as i32);
                out.extend_from_slice(b);
            }
        };
        put_nullable(out, record.key);
        match value_len {
            None => put_varint(out, -1),
            Some(n) => {
                put_varint(out, n as i32);
                let at = out.len();
                out.resize(at + n, 0);
                fill(&mut out[at..]);
            }
        }
        put_varint(out, record.headers.len() as i32);
        for (name, value) in record.headers {
            put_nullable(out, Some(name));
            put_nullable(out, *value);
        }
        debug_assert_eq!(out.len() - start, body);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        Ok(())
    }

    /// Writes the header and CRC and returns the batch. An empty builder
    /// yields `None`: a batch always holds at least one record.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let header = BatchHeader {
            base_offset: I64::new(0),
            batch_length: I32::new((self.buf.len() - LOG_OVERHEAD_BYTES) as i32),
            partition_leader_epoch: I32::new(-1),
            magic: MAGIC_V2,
            crc: U32::new(0),
            attributes: I16::new(0),
            last_offset_delta: I32::new(self.count - 1),
            base_timestamp: I64::new(self.base_timestamp),
            max_timestamp: I64::new(self.max_timestamp),
            producer_id: I64::new(self.stamp.producer_id),
            producer_epoch: I16::new(self.stamp.producer_epoch),
            base_sequence: I32::new(self.stamp.base_sequence),
            record_count: I32::new(self.count),
        };
        self.buf[..HEADER_BYTES].copy_from_slice(header.as_bytes());
        let crc = compute_crc(&self.buf);
        self.buf[17..CRC_START].copy_from_slice(&crc.to_be_bytes());
        Some(self.buf)
    }
}

/// Stamps a validated batch for append: writes `baseOffset` and
/// `partitionLeaderEpoch` in place. Neither is covered by the CRC, so the
/// batch stays valid and no other byte changes.
/// Fails only if `batch` is shorter than a header.
pub fn stamp_for_append(
    batch: &mut [u8],
    base_offset: i64,
    leader_epoch: i32,
) -> Result<(), BatchError> {
    let present = batch.len();
    let (header, _) = BatchHeader::mut_from_prefix(batch).map_err(|_| BatchError::Incomplete {
        needed: HEADER_BYTES,
        present,
    })?;
    header.base_offset = I64::new(base_offset);
    header.partition_leader_epoch = I32::new(leader_epoch);
    Ok(())
}

/// A batch of `header`'s fields around `records` (the encoded records,
/// compressed as the attributes say): `batchLength` and the CRC are
/// computed, every other field is taken as given. For rewriting stored
/// batches (the log cleaner); producers use [`BatchBuilder`].
pub fn assemble(header: &BatchHeader, records: &[u8]) -> Vec<u8> {
    let mut header = *header;
    header.batch_length = I32::new((HEADER_BYTES + records.len() - LOG_OVERHEAD_BYTES) as i32);
    let mut batch = Vec::with_capacity(HEADER_BYTES + records.len());
    batch.extend_from_slice(header.as_bytes());
    batch.extend_from_slice(records);
    reseal(&mut batch);
    batch
}

/// Recomputes a whole batch's CRC in place, after a field it covers was
/// changed. A slice shorter than a header is left alone.
pub fn reseal(batch: &mut [u8]) {
    if batch.len() >= HEADER_BYTES {
        let crc = compute_crc(batch);
        batch[17..CRC_START].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Gives a finished batch a new producer stamp (id, epoch, base sequence)
/// and recomputes its CRC, which covers those fields: for a producer that
/// starts its sequences again under a new identity. The batch is not
/// otherwise checked. Fails only if `batch` is shorter than a header.
pub fn restamp_producer(batch: &mut [u8], stamp: ProducerStamp) -> Result<(), BatchError> {
    let present = batch.len();
    let (header, _) = BatchHeader::mut_from_prefix(batch).map_err(|_| BatchError::Incomplete {
        needed: HEADER_BYTES,
        present,
    })?;
    header.producer_id = I64::new(stamp.producer_id);
    header.producer_epoch = I16::new(stamp.producer_epoch);
    header.base_sequence = I32::new(stamp.base_sequence);
    let crc = compute_crc(batch);
    batch[17..CRC_START].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 << 20;

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::default();
        let h: &[(&[u8], Option<&[u8]>)] = &[(b"h1", Some(b"v1")), (b"h2", None)];
        b.push(&NewRecord {
            key: Some(b"k"),
            value: Some(b"value"),
            headers: h,
            timestamp: 1_000,
        })
        .unwrap();
        b.push(&NewRecord {
            key: None,
            value: None,
            headers: &[],
            timestamp: 990,
        })
        .unwrap();
        b.finish().unwrap()
    }

    #[test]
    fn built_batch_parses_back() {
        let bytes = sample();
        let view = BatchView::parse(&bytes, MAX).unwrap();
        assert_eq!(view.bytes().len(), bytes.len());
        assert_eq!(view.max_timestamp(), 1_000);
        let records: Vec<_> = view.records().unwrap().map(Result::unwrap).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key, Some(&b"k"[..]));
        assert_eq!(records[0].value, Some(&b"value"[..]));
        let headers: Vec<_> = records[0].headers().collect();
        assert_eq!(
            headers,
            vec![(&b"h1"[..], Some(&b"v1"[..])), (&b"h2"[..], None)]
        );
        assert_eq!(records[1].offset, 1);
        assert_eq!(records[1].timestamp, 990);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].value, None);
    }

    #[test]
    fn stamping_keeps_the_crc_valid() {
        let mut bytes = sample();
        stamp_for_append(&mut bytes, 42, 7).unwrap();
        let view = BatchView::parse(&bytes, MAX).unwrap();
        assert_eq!(view.base_offset(), 42);
        assert_eq!(view.header().partition_leader_epoch.get(), 7);
        assert_eq!(view.records().unwrap().next().unwrap().unwrap().offset, 42);
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_bit_flip_is_rejected() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            let err = BatchView::parse(&bytes[..cut], MAX).unwrap_err();
            assert!(err.is_incomplete(), "cut at {cut}: {err}");
        }
        // Flips in baseOffset or partitionLeaderEpoch are legal by design: the
        // CRC does not cover them. Every other bit must be caught.
        for byte in (8..12).chain(17..bytes.len()) {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[byte] ^= 1 << bit;
                assert!(
                    BatchView::parse(&b, MAX).is_err(),
                    "flip of bit {bit} in byte {byte} accepted"
                );
            }
        }
    }

    #[test]
    fn limit_is_enforced_before_reading_the_body() {
        let bytes = sample();
        let err = BatchView::parse(&bytes[..HEADER_BYTES], HEADER_BYTES).unwrap_err();
        assert!(matches!(err, BatchError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn empty_builder_gives_no_batch() {
        assert!(BatchBuilder::default().finish().is_none());
    }

    #[test]
    fn record_size_estimate_is_exact() {
        let mut b = BatchBuilder::default();
        for i in 0..300i64 {
            let v = vec![7u8; i as usize * 3];
            let r = NewRecord {
                key: Some(b"key"),
                value: Some(&v),
                headers: &[],
                timestamp: 5_000 + i * 1_000,
            };
            let before = b.size_bytes();
            let est = b.record_size_bytes(&r);
            b.push(&r).unwrap();
            assert_eq!(b.size_bytes() - before, est);
        }
    }

    #[test]
    fn restamped_batches_validate_with_their_new_stamp() {
        let mut b = BatchBuilder::new(ProducerStamp {
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: 40,
        });
        b.push(&NewRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: &[],
            timestamp: 5,
        })
        .unwrap();
        let mut bytes = b.finish().unwrap();
        let stamp = ProducerStamp {
            producer_id: 9,
            producer_epoch: 2,
            base_sequence: 0,
        };
        restamp_producer(&mut bytes, stamp).unwrap();
        let view = BatchView::parse(&bytes, MAX).unwrap();
        let h = view.header();
        assert_eq!(
            (
                h.producer_id.get(),
                h.producer_epoch.get(),
                h.base_sequence.get()
            ),
            (9, 2, 0)
        );
        assert_eq!(view.records().unwrap().count(), 1);
        assert!(restamp_producer(&mut [0u8; 10], stamp).is_err());
    }

    #[test]
    fn a_value_written_in_place_makes_the_same_batch() {
        let headers: &[(&[u8], Option<&[u8]>)] = &[(b"h", Some(b"x"))];
        let (mut a, mut b) = (BatchBuilder::default(), BatchBuilder::default());
        for (i, value) in [Some(&b"hello"[..]), None, Some(&b""[..])]
            .into_iter()
            .enumerate()
        {
            let record = NewRecord {
                key: Some(b"k"),
                value,
                headers,
                timestamp: 10 + i as i64,
            };
            a.push(&record).unwrap();
            let placeholder = NewRecord {
                value: None,
                ..record
            };
            b.push_with(&placeholder, value.map(<[u8]>::len), |out| {
                out.copy_from_slice(value.unwrap())
            })
            .unwrap();
        }
        assert_eq!(a.finish(), b.finish());
    }
}
