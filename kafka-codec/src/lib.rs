//! The Kafka wire protocol as ringlog's Kafka listener speaks it, with no
//! I/O: which APIs and versions are served, how a request frame is checked
//! and decoded, and how a response is framed. Control messages go through
//! the `kafka-protocol` crate; record data stays opaque bytes.
//!
//! Kept apart from the broker so the decoder can be fuzzed on its own
//! (`fuzz/fuzz_targets/kafka_decode.rs`).

mod decode;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader,
};
use kafka_protocol::protocol::Encodable;

pub use kafka_protocol;

/// The APIs served and the versions advertised, from what real clients
/// need (docs/kafka.md). Produce advertises v0 (librdkafka's feature
/// checks look for it) but answers v0-2 with UNSUPPORTED_VERSION: those
/// carry the old message format, which is not stored.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
];

/// Kafka's UNSUPPORTED_VERSION.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// The smallest request: api key, version and correlation id.
const HEADER_MIN: usize = 8;

/// A request frame's length prefix, checked before anything is read or
/// allocated for it: the frame's size, or why it is refused.
pub fn check_length(length: i32, max: u32) -> Result<usize, String> {
    if length < HEADER_MIN as i32 || length as u64 > u64::from(max) {
        return Err(format!(
            "a request frame of {length} bytes (the limit is {max})"
        ));
    }
    Ok(length as usize)
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// Its API.
    pub api: ApiKey,
    /// Its version (within [`SUPPORTED`]).
    pub version: i16,
    /// Its header.
    pub header: RequestHeader,
    /// Its body.
    pub body: RequestKind,
    /// A Produce's records, per partition in request order, cut out of the
    /// frame without a copy (the body's `records` are left empty).
    pub records: Vec<Option<BytesMut>>,
}

/// What a request frame is.
#[derive(Debug)]
pub enum Decoded {
    /// A request to serve.
    Request(Box<Request>),
    /// One answered at once, with this response frame: an API not served
    /// (the connection stays usable), an ApiVersions version past the range
    /// (KIP-511: a v0 body with the versions), or a Produce v0-2.
    Answer(Bytes),
}

/// Decodes one request frame (without its length prefix). An error means
/// the frame is not a Kafka request this broker can answer: the
/// connection closes.
pub fn decode(frame: BytesMut) -> anyhow::Result<Decoded> {
    let Some(head) = frame.get(..HEADER_MIN) else {
        anyhow::bail!("a frame of {} bytes has no request header", frame.len());
    };
    let key = i16::from_be_bytes([head[0], head[1]]);
    let version = i16::from_be_bytes([head[2], head[3]]);
    let correlation_id = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let Some(&(api, min, max)) = SUPPORTED.iter().find(|(k, ..)| *k as i16 == key) else {
        // The smallest answer a client can read: its correlation id and
        // UNSUPPORTED_VERSION.
        return Ok(Decoded::Answer(frame_bytes(
            correlation_id,
            &UNSUPPORTED_VERSION.to_be_bytes(),
        )));
    };
    if api == ApiKey::Produce && (0..3).contains(&version) {
        // Advertised, not served: its own layout with no topics (and a
        // throttle time from v1).
        let mut body = BytesMut::new();
        body.put_i32(0);
        if version >= 1 {
            body.put_i32(0);
        }
        return Ok(Decoded::Answer(frame_bytes(correlation_id, &body)));
    }
    if !(min..=max).contains(&version) {
        if api == ApiKey::ApiVersions {
            let body = api_versions(UNSUPPORTED_VERSION);
            return Ok(Decoded::Answer(encode(api, 0, correlation_id, &body)?));
        }
        anyhow::bail!("{api:?} v{version} is outside the advertised {min}..={max}");
    }
    let (header, body, records) = decode::request(frame, api, version)?;
    Ok(Decoded::Request(Box::new(Request {
        api,
        version,
        header,
        body,
        records,
    })))
}

/// The versions served, with `error`.
pub fn api_versions(error: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|(api, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*api as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        )
}

/// A response frame: length, header (as `api` at `version` wants it),
/// body.
pub fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) -> anyhow::Result<Bytes> {
    // ApiVersions' response header is always v0 (no tagged fields), so a
    // client that does not yet know the broker's versions can read it.
    let header_version = match api {
        ApiKey::ApiVersions => 0,
        _ => api.response_header_version(version),
    };
    let mut header = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut header, header_version)?;
    let mut out = BytesMut::with_capacity(4 + header.len() + body.compute_size(version)?);
    out.put_i32(0);
    out.extend_from_slice(&header);
    body.encode(&mut out, version)?;
    let length = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&length.to_be_bytes());
    Ok(out.freeze())
}

/// A response frame from a v0 header (the correlation id) and a raw body.
fn frame_bytes(correlation_id: i32, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + body.len());
    out.put_i32((4 + body.len()) as i32);
    out.put_i32(correlation_id);
    out.extend_from_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(key: i16, version: i16, correlation_id: i32) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i16(key);
        b.put_i16(version);
        b.put_i32(correlation_id);
        b.put_i16(-1); // null client id
        b
    }

    #[test]
    fn lengths_are_checked_before_reading() {
        assert!(check_length(7, 1 << 20).is_err());
        assert!(check_length(-1, 1 << 20).is_err());
        assert!(check_length((1 << 20) + 1, 1 << 20).is_err());
        assert_eq!(check_length(100, 1 << 20), Ok(100));
    }

    #[test]
    fn an_unserved_api_is_answered_with_its_correlation_id() {
        let Decoded::Answer(a) = decode(frame(999, 0, 77)).unwrap() else {
            panic!("not answered")
        };
        assert_eq!(&a[..], &[0, 0, 0, 6, 0, 0, 0, 77, 0, 35]);
    }

    #[test]
    fn produce_before_v3_is_refused_in_its_own_layout() {
        let Decoded::Answer(v0) = decode(frame(0, 0, 5)).unwrap() else {
            panic!("not answered")
        };
        assert_eq!(&v0[..], &[0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 0]);
        let Decoded::Answer(v2) = decode(frame(0, 2, 5)).unwrap() else {
            panic!("not answered")
        };
        assert_eq!(v2.len(), 4 + 4 + 8);
    }

    #[test]
    fn a_version_outside_the_range_of_another_api_is_an_error() {
        assert!(decode(frame(1, 3, 1)).is_err(), "Fetch v3");
        assert!(decode(frame(3, 13, 1)).is_err(), "Metadata v13");
    }

    #[test]
    fn api_versions_decodes_at_every_version_served() {
        for version in 0..=2 {
            let Decoded::Request(r) = decode(frame(18, version, 9)).unwrap() else {
                panic!("v{version} not decoded")
            };
            assert_eq!((r.api, r.header.correlation_id), (ApiKey::ApiVersions, 9));
        }
    }
}
