//! The Kafka wire protocol's front door: a listener on every shard that
//! speaks Kafka's framing and messages to any Kafka client or tool, served
//! by the same shards, partition tasks and engine as the native protocol
//! (so both see the same topics and offsets).
//!
//! Control messages are decoded and encoded with the `kafka-protocol`
//! crate; record data stays opaque bytes: a produced batch is appended as
//! received (its CRC and header checked by the partition, as on the native
//! path) and a fetch returns stored batches as they are.
//!
//! Requests on one connection run concurrently, but their responses go
//! back in request order (Kafka clients match them by order as much as by
//! correlation id). Produce requests are handed to their partitions in the
//! order they were read, so a pipelining idempotent producer's batches
//! reach each partition in sequence.

mod apis;

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::sync::{mpsc, oneshot};
use tokio_uring::net::TcpStream;

use crate::conn::{self, Chunk, FrameReader, Queued, ReadError};
use crate::shard::Shard;

pub use apis::{kafka_error, SUPPORTED};

/// Kafka's UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// One request's response, once it is ready (`None`: none is sent, as
/// for `acks=0`).
type Pending = oneshot::Receiver<Option<Bytes>>;

/// Serves one Kafka client connection until it closes, breaks the
/// protocol, or the broker stops (requests already read are answered).
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let stream = Rc::new(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Queued>();
    let writer = tokio_uring::spawn(conn::write_loop(stream.clone(), None, rx, shard.clone()));
    // Responses leave in request order, whichever finishes first.
    let (order, mut in_order) = mpsc::unbounded_channel::<Pending>();
    tokio_uring::spawn(async move {
        while let Some(pending) = in_order.recv().await {
            if let Ok(Some(bytes)) = pending.await {
                if tx.send((vec![Chunk::Mem(bytes)], None)).is_err() {
                    return;
                }
            }
        }
    });
    let mut reader = FrameReader::new(stream.clone(), shard.shared.config.max_frame_bytes);
    let mut shutdown = shard.shutdown.clone();
    loop {
        let frame = tokio::select! {
            frame = next_frame(&mut reader) => frame,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(why) => {
                if let Some(why) = why {
                    tracing::debug!(%peer, "closing Kafka connection: {why}");
                }
                break;
            }
        };
        shard
            .shared
            .metrics
            .shard_bytes(shard.id, frame.len() + 4, 0);
        match request(&shard, frame).await {
            Ok(pending) => {
                if order.send(pending).is_err() {
                    break;
                }
            }
            Err(why) => {
                tracing::debug!(%peer, "closing Kafka connection: {why:#}");
                break;
            }
        }
    }
    drop(order);
    let _ = writer.await;
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// The next request frame (without its length prefix), or why there is
/// none (`None`: the peer closed).
async fn next_frame(reader: &mut FrameReader) -> Result<BytesMut, Option<String>> {
    let closed = |_: ReadError| None;
    reader.fill(4).await.map_err(closed)?;
    let length = i32::from_be_bytes([reader.buf[0], reader.buf[1], reader.buf[2], reader.buf[3]]);
    // Checked before a byte of the payload is buffered for it.
    if length < 8 || length as u64 > u64::from(reader.max_frame()) {
        return Err(Some(format!(
            "a request frame of {length} bytes (the limit is {})",
            reader.max_frame()
        )));
    }
    let total = 4 + length as usize;
    reader.fill(total).await.map_err(closed)?;
    let mut frame = reader.buf.split_to(total);
    frame.advance(4);
    Ok(frame)
}

/// Decodes one request and starts it; the receiver gets its response.
/// An error closes the connection (a frame that is not Kafka, or a
/// version the client should not have sent).
async fn request(shard: &Rc<Shard>, frame: BytesMut) -> anyhow::Result<Pending> {
    let (tx, rx) = oneshot::channel();
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let supported = SUPPORTED.iter().find(|(k, ..)| *k as i16 == key);
    let Some(&(api, min, max)) = supported else {
        // An API this broker does not serve: the smallest answer a client
        // can read (its correlation id and UNSUPPORTED_VERSION), and the
        // connection stays usable.
        shard
            .shared
            .metrics
            .request(shard.id, "kafka_unknown", Default::default());
        let mut body = BytesMut::new();
        body.put_i16(UNSUPPORTED_VERSION);
        let _ = tx.send(Some(frame_bytes(correlation_id, &[], &body)));
        return Ok(rx);
    };
    if !(min..=max).contains(&version) {
        if api == ApiKey::ApiVersions {
            // KIP-511: a v0 body with the error and the versions served.
            let body = apis::api_versions(UNSUPPORTED_VERSION);
            let _ = tx.send(Some(encode(api, 0, correlation_id, &body)?));
            return Ok(rx);
        }
        if api == ApiKey::Produce && version < 3 {
            let _ = tx.send(Some(apis::produce_v0_2_unsupported(&frame, version)?));
            return Ok(rx);
        }
        anyhow::bail!("{api:?} v{version} is outside the advertised {min}..={max}");
    }
    let mut bytes = frame.freeze();
    let header = RequestHeader::decode(&mut bytes, api.request_header_version(version))?;
    let body = RequestKind::decode(api, &mut bytes, version)?;
    let started = std::time::Instant::now();
    let metric = apis::metric_name(api, version);
    let respond = move |shard: &Shard, body: anyhow::Result<Option<Response>>| {
        shard
            .shared
            .metrics
            .request(shard.id, &metric, started.elapsed());
        let bytes = body.and_then(|b| match b {
            Some(r) => r.encode(api, version, header.correlation_id).map(Some),
            None => Ok(None),
        });
        match bytes {
            Ok(b) => {
                let _ = tx.send(b);
            }
            // Dropping the sender ends the connection's ordered replies
            // at this request: nothing after it is answered out of turn.
            Err(e) => tracing::warn!("encoding a Kafka {api:?} v{version} response: {e:#}"),
        }
    };
    match body {
        // Handed to the partitions here, in read order.
        RequestKind::Produce(req) => {
            let pending = apis::produce_start(shard, req, version).await;
            let shard = shard.clone();
            tokio_uring::spawn(async move {
                let response = apis::produce_finish(pending).await;
                respond(&shard, Ok(response.map(Response::Produce)));
            });
        }
        other => {
            let shard = shard.clone();
            tokio_uring::spawn(async move {
                let response = apis::handle(&shard, other, version).await;
                respond(&shard, response.map(Some));
            });
        }
    }
    Ok(rx)
}

/// A typed response body.
pub enum Response {
    /// ApiVersions.
    ApiVersions(kafka_protocol::messages::ApiVersionsResponse),
    /// Metadata.
    Metadata(kafka_protocol::messages::MetadataResponse),
    /// Produce.
    Produce(kafka_protocol::messages::ProduceResponse),
    /// Fetch.
    Fetch(kafka_protocol::messages::FetchResponse),
    /// ListOffsets.
    ListOffsets(kafka_protocol::messages::ListOffsetsResponse),
    /// InitProducerId.
    InitProducerId(kafka_protocol::messages::InitProducerIdResponse),
    /// CreateTopics.
    CreateTopics(kafka_protocol::messages::CreateTopicsResponse),
}

impl Response {
    fn encode(&self, api: ApiKey, version: i16, correlation_id: i32) -> anyhow::Result<Bytes> {
        match self {
            Response::ApiVersions(r) => encode(api, version, correlation_id, r),
            Response::Metadata(r) => encode(api, version, correlation_id, r),
            Response::Produce(r) => encode(api, version, correlation_id, r),
            Response::Fetch(r) => encode(api, version, correlation_id, r),
            Response::ListOffsets(r) => encode(api, version, correlation_id, r),
            Response::InitProducerId(r) => encode(api, version, correlation_id, r),
            Response::CreateTopics(r) => encode(api, version, correlation_id, r),
        }
    }
}

/// A response frame: length, header (as `api` at `version` wants it),
/// body.
fn encode(
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

/// A response frame from a v0 header (the correlation id) and raw bodies.
fn frame_bytes(correlation_id: i32, header_rest: &[u8], body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + header_rest.len() + body.len());
    out.put_i32((4 + header_rest.len() + body.len()) as i32);
    out.put_i32(correlation_id);
    out.extend_from_slice(header_rest);
    out.extend_from_slice(body);
    out.freeze()
}
