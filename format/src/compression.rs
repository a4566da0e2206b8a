//! The records of a compressed batch, decompressed: Kafka's codecs as its
//! clients write them (gzip; snappy raw or in the xerial framing the Java
//! client uses; lz4 frames; zstd frames). The broker stores and serves
//! compressed batches as they are; this is for readers of their records.
//!
//! Decompression is bounded: a batch whose records inflate past the limit
//! is refused (a few kilobytes must not become gigabytes in a reader).
//!
//! [`compress`] writes the same codecs back, for the log cleaner, which
//! filters the records of a compressed batch and stores them compressed as
//! they came.

use std::io::Read;

use crate::batch::{BatchError, BatchView, HEADER_BYTES};

/// Codec ids (attribute bits 0-2).
pub const GZIP: i16 = 1;
/// Snappy.
pub const SNAPPY: i16 = 2;
/// LZ4 (frame format).
pub const LZ4: i16 = 3;
/// Zstandard.
pub const ZSTD: i16 = 4;

/// Attribute bits 0-2: the compression codec.
const COMPRESSION_MASK: i16 = 0x07;
/// Offset of the attributes in a batch header.
const ATTRIBUTES_AT: usize = 21;
/// Offset of `batchLength`.
const LENGTH_AT: usize = 8;
/// The xerial snappy framing's magic (Kafka's Java client writes it).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// `data` decompressed with `codec`, at most `limit` bytes.
pub fn decompress(codec: i16, data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let fail = |why: String| BatchError::Decompress { codec, why };
    let mut out = Vec::new();
    match codec {
        GZIP => read_bounded(flate2::read::MultiGzDecoder::new(data), limit, &mut out)
            .map_err(|e| fail(e.to_string()))?,
        LZ4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), limit, &mut out)
            .map_err(|e| fail(e.to_string()))?,
        ZSTD => {
            let decoder =
                ruzstd::decoding::StreamingDecoder::new(data).map_err(|e| fail(e.to_string()))?;
            read_bounded(decoder, limit, &mut out).map_err(|e| fail(e.to_string()))?
        }
        SNAPPY if is_xerial(data) => {
            // Magic, version and compatible version, then blocks of
            // [length: i32 BE][raw snappy].
            let mut rest = data
                .get(16..)
                .ok_or_else(|| fail("a truncated xerial header".into()))?;
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err(fail("a truncated xerial block length".into()));
                };
                let len = u32::from_be_bytes(*len) as usize;
                let block = tail
                    .get(..len)
                    .ok_or_else(|| fail("a truncated xerial block".into()))?;
                snappy_raw(block, limit.saturating_sub(out.len()), &mut out).map_err(fail)?;
                rest = &tail[len..];
            }
        }
        SNAPPY => snappy_raw(data, limit, &mut out).map_err(fail)?,
        other => return Err(BatchError::Compressed(other)),
    }
    Ok(out)
}

/// Block size of the xerial snappy framing (the Java client's default).
const XERIAL_BLOCK_BYTES: usize = 32 << 10;

/// Whether compressed snappy data is in the xerial framing.
pub fn is_xerial(data: &[u8]) -> bool {
    data.starts_with(XERIAL_MAGIC)
}

/// `records` (the uncompressed record bytes of a batch) compressed with
/// `codec`; snappy in the xerial framing when `xerial`, so a batch keeps
/// the framing its producer chose.
pub fn compress(codec: i16, records: &[u8], xerial: bool) -> Result<Vec<u8>, BatchError> {
    use std::io::Write;
    let fail = |why: String| BatchError::Decompress {
        codec,
        why: format!("compressing: {why}"),
    };
    match codec {
        GZIP => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder
                .write_all(records)
                .map_err(|e| fail(e.to_string()))?;
            encoder.finish().map_err(|e| fail(e.to_string()))
        }
        LZ4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder
                .write_all(records)
                .map_err(|e| fail(e.to_string()))?;
            encoder.finish().map_err(|e| fail(e.to_string()))
        }
        ZSTD => Ok(ruzstd::encoding::compress_to_vec(
            records,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
        SNAPPY if xerial => {
            let mut out = Vec::with_capacity(16 + records.len());
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in records.chunks(XERIAL_BLOCK_BYTES) {
                let packed = encoder
                    .compress_vec(block)
                    .map_err(|e| fail(e.to_string()))?;
                out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
                out.extend_from_slice(&packed);
            }
            Ok(out)
        }
        SNAPPY => snap::raw::Encoder::new()
            .compress_vec(records)
            .map_err(|e| fail(e.to_string())),
        other => Err(BatchError::Compressed(other)),
    }
}

/// Appends one raw snappy block, checking its declared size first.
fn snappy_raw(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let size = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
    if size > limit {
        return Err(format!("records inflate past {limit} bytes"));
    }
    let start = out.len();
    out.resize(start + size, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn read_bounded(reader: impl Read, limit: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    let read = reader.take(limit as u64 + 1).read_to_end(out)?;
    if read > limit {
        return Err(std::io::Error::other(format!(
            "records inflate past {limit} bytes"
        )));
    }
    Ok(())
}

/// The batch as it would be uncompressed: its header (codec bits cleared,
/// `batchLength` adjusted; the CRC is left as it was, covering the stored
/// bytes, which the caller checked) and its records decompressed, at most
/// `limit` bytes of them. An uncompressed batch comes back as it is,
/// borrowed: a reader of records calls this whatever the codec.
pub fn decompressed_batch<'a>(
    view: &BatchView<'a>,
    limit: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, BatchError> {
    let bytes = view.bytes();
    let codec = view.compression();
    if codec == 0 {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let records = decompress(codec, &bytes[HEADER_BYTES..], limit)?;
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len());
    out.extend_from_slice(&bytes[..HEADER_BYTES]);
    out.extend_from_slice(&records);
    let attributes = i16::from_be_bytes([out[ATTRIBUTES_AT], out[ATTRIBUTES_AT + 1]]);
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2]
        .copy_from_slice(&(attributes & !COMPRESSION_MASK).to_be_bytes());
    let length = (out.len() - 12) as i32;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    Ok(std::borrow::Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../engine/tests/data/kafka-v2/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    #[test]
    fn kafka_pythons_gzip_batch_decompresses_to_its_hundred_records() {
        let bytes = vector("gzip.bin");
        let view = BatchView::parse_crc_only(&bytes, usize::MAX).unwrap();
        assert_eq!(view.compression(), GZIP);
        assert!(
            view.records().is_err(),
            "compressed records are not walked as they are"
        );
        let plain = decompressed_batch(&view, 1 << 20).unwrap();
        let view = BatchView::parse_crc_checked(&plain, usize::MAX).unwrap();
        assert_eq!(view.compression(), 0);
        let offsets: Vec<i64> = view.records().unwrap().map(|r| r.unwrap().offset).collect();
        assert_eq!(offsets, (0..100).collect::<Vec<_>>());
        // Bounded: the same batch with too small a limit is refused.
        let view = BatchView::parse_crc_only(&bytes, usize::MAX).unwrap();
        assert!(matches!(
            decompressed_batch(&view, 16),
            Err(BatchError::Decompress { codec: GZIP, .. })
        ));
    }

    #[test]
    fn snappy_raw_and_xerial_framed_both_decompress() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(SNAPPY, &raw, 1 << 20).unwrap(), data);
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&1i32.to_be_bytes());
        xerial.extend_from_slice(&1i32.to_be_bytes());
        for chunk in data.chunks(7_000) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        assert_eq!(decompress(SNAPPY, &xerial, 1 << 20).unwrap(), data);
        assert!(
            decompress(SNAPPY, &xerial, 1000).is_err(),
            "the limit holds per block too"
        );
        assert!(decompress(SNAPPY, &xerial[..xerial.len() - 3], 1 << 20).is_err());
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            assert!(
                decompress(codec, b"not compressed at all", 1 << 20).is_err(),
                "{codec}"
            );
        }
        assert!(matches!(
            decompress(5, b"", 10),
            Err(BatchError::Compressed(5))
        ));
    }

    #[test]
    fn every_codec_reads_back_what_it_wrote() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for (codec, xerial) in [
            (GZIP, false),
            (SNAPPY, false),
            (SNAPPY, true),
            (LZ4, false),
            (ZSTD, false),
        ] {
            let packed = compress(codec, &data, xerial).unwrap();
            assert_eq!(is_xerial(&packed), xerial, "{codec}");
            assert!(packed.len() < data.len(), "{codec} compresses");
            assert_eq!(
                decompress(codec, &packed, 1 << 20).unwrap(),
                data,
                "{codec}"
            );
        }
        assert!(matches!(
            compress(7, b"", false),
            Err(BatchError::Compressed(7))
        ));
    }
}
