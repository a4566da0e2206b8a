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

use bytes::{Buf, Bytes, BytesMut};
use ringlog_kafka_codec::kafka_protocol::messages::{self, ApiKey, RequestKind};
use ringlog_kafka_codec::{encode, Decoded};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_uring::net::TcpStream;

use crate::net::{self, Chunk, Closed, FrameReader, Queued};
use crate::shard::Shard;

pub use apis::kafka_error;

/// One request's response, once it is ready (`None`: none is sent, as
/// for `acks=0`).
type Pending = oneshot::Receiver<Option<Bytes>>;

/// Serves one Kafka client connection until it closes, breaks the
/// protocol, or the broker stops (requests already read are answered).
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let stream = Rc::new(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Queued>();
    let writer = tokio_uring::spawn(net::write_loop(stream.clone(), None, rx, shard.clone()));
    // Responses leave in request order, whichever finishes first.
    // Each carries the in-flight permit of its request, given back once
    // the response is written.
    let (order, mut in_order) = mpsc::unbounded_channel::<(Pending, OwnedSemaphorePermit)>();
    tokio_uring::spawn(async move {
        while let Some((pending, permit)) = in_order.recv().await {
            if let Ok(Some(bytes)) = pending.await {
                if tx.send((vec![Chunk::Mem(bytes)], Some(permit))).is_err() {
                    return;
                }
            }
        }
    });
    let inflight = Arc::new(Semaphore::new(
        shard.shared.config.max_inflight_bytes as usize,
    ));
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
        let size = frame.len() + 4;
        shard.shared.metrics.shard_bytes(shard.id, size, 0);
        // Stop reading while this connection's requests hold too much
        // memory (a client that does not read its responses included).
        // A request holds its size (at most the whole budget) until its
        // response is written.
        let capacity = shard.shared.config.max_inflight_bytes as usize;
        let held = size.min(capacity).min(u32::MAX as usize) as u32;
        let Ok(permit) = inflight.clone().acquire_many_owned(held).await else {
            break;
        };
        match request(&shard, frame).await {
            Ok(pending) => {
                if order.send((pending, permit)).is_err() {
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
    net::close_after(&shard, &stream, writer, peer).await;
}

/// The next request frame (without its length prefix), or why there is
/// none (`None`: the peer closed).
async fn next_frame(reader: &mut FrameReader) -> Result<BytesMut, Option<String>> {
    let closed = |_: Closed| None;
    reader.fill(4).await.map_err(closed)?;
    let length = i32::from_be_bytes([reader.buf[0], reader.buf[1], reader.buf[2], reader.buf[3]]);
    // Checked before a byte of the payload is buffered for it.
    let length = ringlog_kafka_codec::check_length(length, reader.max_frame()).map_err(Some)?;
    reader.fill(4 + length).await.map_err(closed)?;
    let mut frame = reader.buf.split_to(4 + length);
    frame.advance(4);
    Ok(frame)
}

/// Decodes one request and starts it; the receiver gets its response.
/// An error closes the connection (a frame that is not Kafka, or a
/// version the client should not have sent).
async fn request(shard: &Rc<Shard>, frame: BytesMut) -> anyhow::Result<Pending> {
    let (tx, rx) = oneshot::channel();
    let request = match ringlog_kafka_codec::decode(frame)? {
        Decoded::Answer(bytes) => {
            shard
                .shared
                .metrics
                .request(shard.id, "kafka_refused", Default::default());
            let _ = tx.send(Some(bytes));
            return Ok(rx);
        }
        Decoded::Request(r) => *r,
    };
    let (api, version) = (request.api, request.version);
    let correlation_id = request.header.correlation_id;
    let client_id = request
        .header
        .client_id
        .as_ref()
        .map_or_else(String::new, |c| c.to_string());
    let started = std::time::Instant::now();
    let metric = apis::metric_name(api, version);
    let respond = move |shard: &Shard, body: anyhow::Result<Option<Response>>| {
        shard
            .shared
            .metrics
            .request(shard.id, &metric, started.elapsed());
        let bytes = body.and_then(|b| match b {
            Some(r) => r.encode(api, version, correlation_id).map(Some),
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
    match request.body {
        // Handed to the partitions here, in read order.
        RequestKind::Produce(req) => {
            let pending = apis::produce_start(shard, req, request.records, version).await;
            let shard = shard.clone();
            tokio_uring::spawn(async move {
                let response = apis::produce_finish(pending).await;
                respond(&shard, Ok(response.map(Response::Produce)));
            });
        }
        other => {
            let shard = shard.clone();
            tokio_uring::spawn(async move {
                let response = apis::handle(&shard, other, version, &client_id).await;
                respond(&shard, response.map(Some));
            });
        }
    }
    Ok(rx)
}

/// A typed response body.
pub enum Response {
    /// ApiVersions.
    ApiVersions(messages::ApiVersionsResponse),
    /// Metadata.
    Metadata(messages::MetadataResponse),
    /// Produce.
    Produce(messages::ProduceResponse),
    /// Fetch.
    Fetch(messages::FetchResponse),
    /// ListOffsets.
    ListOffsets(messages::ListOffsetsResponse),
    /// InitProducerId.
    InitProducerId(messages::InitProducerIdResponse),
    /// CreateTopics.
    CreateTopics(messages::CreateTopicsResponse),
    /// FindCoordinator.
    FindCoordinator(messages::FindCoordinatorResponse),
    /// JoinGroup.
    JoinGroup(messages::JoinGroupResponse),
    /// SyncGroup.
    SyncGroup(messages::SyncGroupResponse),
    /// Heartbeat.
    Heartbeat(messages::HeartbeatResponse),
    /// LeaveGroup.
    LeaveGroup(messages::LeaveGroupResponse),
    /// OffsetCommit.
    OffsetCommit(messages::OffsetCommitResponse),
    /// OffsetFetch.
    OffsetFetch(messages::OffsetFetchResponse),
    /// ListGroups.
    ListGroups(messages::ListGroupsResponse),
    /// DescribeGroups.
    DescribeGroups(messages::DescribeGroupsResponse),
    /// DeleteTopics.
    DeleteTopics(messages::DeleteTopicsResponse),
    /// DescribeConfigs.
    DescribeConfigs(messages::DescribeConfigsResponse),
    /// CreatePartitions.
    CreatePartitions(messages::CreatePartitionsResponse),
    /// DescribeCluster.
    DescribeCluster(messages::DescribeClusterResponse),
    /// AlterConfigs.
    AlterConfigs(messages::AlterConfigsResponse),
    /// IncrementalAlterConfigs.
    IncrementalAlterConfigs(messages::IncrementalAlterConfigsResponse),
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
            Response::FindCoordinator(r) => encode(api, version, correlation_id, r),
            Response::JoinGroup(r) => encode(api, version, correlation_id, r),
            Response::SyncGroup(r) => encode(api, version, correlation_id, r),
            Response::Heartbeat(r) => encode(api, version, correlation_id, r),
            Response::LeaveGroup(r) => encode(api, version, correlation_id, r),
            Response::OffsetCommit(r) => encode(api, version, correlation_id, r),
            Response::OffsetFetch(r) => encode(api, version, correlation_id, r),
            Response::ListGroups(r) => encode(api, version, correlation_id, r),
            Response::DescribeGroups(r) => encode(api, version, correlation_id, r),
            Response::DeleteTopics(r) => encode(api, version, correlation_id, r),
            Response::DescribeConfigs(r) => encode(api, version, correlation_id, r),
            Response::CreatePartitions(r) => encode(api, version, correlation_id, r),
            Response::DescribeCluster(r) => encode(api, version, correlation_id, r),
            Response::AlterConfigs(r) => encode(api, version, correlation_id, r),
            Response::IncrementalAlterConfigs(r) => encode(api, version, correlation_id, r),
        }
    }
}
