//! The native protocol's front door: a client connection's frames in,
//! requests run concurrently (the protocol pipelines), responses out in
//! completion order. Decoding and encoding only; what each request does is
//! [`crate::ops`], shared with the Kafka front door.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use ringlog_protocol::{
    self as proto, ApiKey, DecodeError, ErrorCode, FetchRequest, Payload, ProducePartitionResult,
    ProduceRequest, ProduceResponse, Request, HEADER_LEN,
};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_uring::net::TcpStream;

use crate::net::{close_after, write_loop, Chunk, FrameReader, Queued, Response};
use crate::ops;
use crate::partition::{Answer, Failure, FetchOutcome, ProduceOutcome};
use crate::shard::Shard;

/// A request frame as read.
struct Frame {
    api_key: u16,
    request_id: u64,
    api: Result<ApiKey, DecodeError>,
    /// The payload: the frame's own buffer, which batches are split from.
    payload: BytesMut,
}

/// Why no frame was read.
enum ReadError {
    /// Refused before allocating: answer, then close.
    Refused(DecodeError),
    /// The peer closed or the socket failed.
    Closed,
}

/// The next frame, or why there is none.
async fn next_frame(reader: &mut FrameReader) -> Result<Frame, ReadError> {
    reader
        .fill(HEADER_LEN)
        .await
        .map_err(|_| ReadError::Closed)?;
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&reader.buf[..HEADER_LEN]);
    let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    // Checked before a byte of the payload is buffered for it.
    proto::check_frame_length(length, reader.max_frame()).map_err(ReadError::Refused)?;
    let (header, api) = proto::parse_request_header(&head).map_err(ReadError::Refused)?;
    let total = 4 + length as usize;
    reader.fill(total).await.map_err(|_| ReadError::Closed)?;
    let mut frame = reader.buf.split_to(total);
    frame.advance(HEADER_LEN);
    Ok(Frame {
        api_key: header.api_key.get(),
        request_id: header.request_id.get(),
        api,
        payload: frame,
    })
}

/// Serves one connection until the peer closes, it breaks the protocol
/// beyond repair, or the broker shuts down (in-flight requests finish).
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    // sendfile runs on a blocking thread, which needs a descriptor of the
    // socket that no drop on this shard can close under it; without
    // sendfile no answer is a file range and the duplicate is not made (the
    // descriptor budget counts it only then).
    let sock = if shard.shared.config.sendfile_min_bytes == u32::MAX {
        None
    } else {
        // SAFETY: `stream` keeps the descriptor open through this statement,
        // and the borrow is used only to duplicate it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        match borrowed.try_clone_to_owned() {
            Ok(fd) => Some(Arc::new(fd)),
            Err(e) => {
                tracing::warn!(%peer, "closing connection: cannot duplicate its socket: {e}");
                return;
            }
        }
    };
    let stream = Rc::new(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Queued>();
    let writer = tokio_uring::spawn(write_loop(stream.clone(), sock, rx, shard.clone()));
    let config = &shard.shared.config;
    let inflight = Arc::new(Semaphore::new(config.max_inflight_bytes as usize));
    let mut reader = FrameReader::new(stream.clone(), config.max_frame_bytes);
    let mut shutdown = shard.shutdown.clone();
    loop {
        let frame = tokio::select! {
            frame = next_frame(&mut reader) => frame,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(ReadError::Closed) => break,
            Err(ReadError::Refused(e)) => {
                tracing::debug!(%peer, "closing connection: {e}");
                let _ = tx.send((error_response(&shard, 0, 0, e.code(), &e.to_string()), None));
                break;
            }
        };
        let size = frame.payload.len() + HEADER_LEN;
        shard.shared.metrics.shard_bytes(shard.id, size, 0);
        // Stop reading while this connection's requests hold too much memory.
        let Ok(permit) = inflight.clone().acquire_many_owned(size as u32).await else {
            break;
        };
        let started = Instant::now();
        let api_name = frame.api.as_ref().map_or("unknown", |a| a.name());
        // Produce sections are queued at their partitions here, in read
        // order; only the wait for their outcomes runs aside.
        let work = match frame.api {
            Ok(ApiKey::Produce) => Work::Produce(start_produce(&shard, frame).await),
            _ => Work::Other(frame),
        };
        let (shard, tx) = (shard.clone(), tx.clone());
        tokio_uring::spawn(async move {
            let response = match work {
                Work::Other(frame) => handle(&shard, frame).await,
                Work::Produce(Err(response)) => Some(response),
                Work::Produce(Ok((api_key, request_id, pending))) => {
                    produce_finish(&shard, pending)
                        .await
                        .map(|resp| payload_response(api_key, request_id, &resp))
                }
            };
            shard
                .shared
                .metrics
                .request(shard.id, api_name, started.elapsed());
            // The permit travels with the response: a client that does not
            // read its responses stops being read from.
            if let Some(response) = response {
                let _ = tx.send((response, Some(permit)));
            }
        });
    }
    drop(tx);
    close_after(&shard, &stream, writer, peer).await;
}

/// A response frame whose whole payload is an error message.
pub fn error_response(
    shard: &Shard,
    api_key: u16,
    request_id: u64,
    code: ErrorCode,
    message: &str,
) -> Response {
    shard.shared.metrics.error(shard.id, code);
    let header = proto::response_header(api_key, request_id, code, message.len());
    vec![
        Chunk::Mem(Bytes::copy_from_slice(&header)),
        Chunk::Mem(Bytes::copy_from_slice(message.as_bytes())),
    ]
}

/// A topic's metadata once `done`, an admin change to it, succeeded: what
/// `AddPartitions` and `AlterTopicConfig` answer.
async fn topic_after(
    shard: &Rc<Shard>,
    done: Result<(), Failure>,
    topic: String,
) -> Result<proto::MetadataResponse, Failure> {
    done?;
    ops::metadata(
        shard,
        proto::MetadataRequest {
            topics: Some(vec![topic]),
        },
    )
    .await
}

/// A successful response with an rkyv payload.
pub fn payload_response(api_key: u16, request_id: u64, payload: &impl Payload) -> Response {
    let body = payload.encode();
    let header = proto::response_header(api_key, request_id, ErrorCode::None, body.len());
    vec![
        Chunk::Mem(Bytes::copy_from_slice(&header)),
        Chunk::Mem(Bytes::from(body)),
    ]
}

/// A request as the read loop hands it on.
enum Work {
    /// A produce already queued at its partitions, or its error response.
    Produce(Result<(u16, u64, PendingProduce), Response>),
    /// Anything else, run whole aside.
    Other(Frame),
}

/// Decodes a produce and queues its sections at their partitions.
async fn start_produce(
    shard: &Rc<Shard>,
    frame: Frame,
) -> Result<(u16, u64, PendingProduce), Response> {
    let Frame {
        api_key,
        request_id,
        payload,
        ..
    } = frame;
    let fail =
        |code: ErrorCode, message: &str| error_response(shard, api_key, request_id, code, message);
    let req = match ProduceRequest::decode(&payload) {
        Ok(req) => req,
        Err(e) => return Err(fail(e.code(), &e.to_string())),
    };
    match produce_start(shard, req, payload).await {
        Ok(pending) => Ok((api_key, request_id, pending)),
        Err(f) => Err(fail(f.code, &f.message)),
    }
}

/// Decodes and runs one request; `None` when no response is due (acks=0).
async fn handle(shard: &Rc<Shard>, frame: Frame) -> Option<Response> {
    let Frame {
        api_key,
        request_id,
        api,
        payload,
    } = frame;
    let reply_error = |code: ErrorCode, message: &str| {
        Some(error_response(shard, api_key, request_id, code, message))
    };
    let api = match api {
        Ok(api) => api,
        Err(e) => return reply_error(e.code(), &e.to_string()),
    };
    let request = match proto::decode_request(api, &payload) {
        Ok(request) => request,
        Err(e) => return reply_error(e.code(), &e.to_string()),
    };
    let result = match request {
        // Produce goes through start_produce in the read loop.
        Request::Produce(_) => Err(Failure::new(ErrorCode::Unknown, "produce out of order")),
        Request::Fetch(req) => {
            return Some(match fetch(shard, req).await {
                Ok(body) => {
                    let len: usize = body.iter().map(Chunk::len).sum();
                    let header = proto::response_header(api_key, request_id, ErrorCode::None, len);
                    let mut out = Vec::with_capacity(body.len() + 1);
                    out.push(Chunk::Mem(Bytes::copy_from_slice(&header)));
                    out.extend(body);
                    out
                }
                Err(f) => error_response(shard, api_key, request_id, f.code, &f.message),
            })
        }
        Request::ListOffsets(req) => ops::list_offsets(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::Metadata(req) => ops::metadata(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::CreateTopic(req) => ops::create_topic(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::DeleteTopic(req) => ops::delete_topic(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::AddPartitions(req) => topic_after(
            shard,
            ops::add_partitions(shard, &req.topic, req.partitions, false).await,
            req.topic,
        )
        .await
        .map(|r| payload_response(api_key, request_id, &r)),
        Request::AlterTopicConfig(req) => topic_after(
            shard,
            ops::alter_topic(shard, &req.topic, &req.changes, req.validate_only)
                .await
                .map(|_| ()),
            req.topic,
        )
        .await
        .map(|r| payload_response(api_key, request_id, &r)),
        Request::ProduceIf(req) => ops::produce_if(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::ListTopics => Ok(payload_response(
            api_key,
            request_id,
            &ops::list_topics(shard),
        )),
        Request::CommitOffsets(req) => ops::commit_offsets(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::FetchOffsets(req) => ops::fetch_offsets(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::InitProducerId => {
            ops::init_producer_id(shard).map(|r| payload_response(api_key, request_id, &r))
        }
        Request::GroupHeartbeat(req) => ops::group_heartbeat(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::ListGroups => ops::list_groups(shard)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::DescribeGroup(req) => ops::describe_group(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::DescribeCluster => Ok(payload_response(
            api_key,
            request_id,
            &ops::describe_cluster(shard).await,
        )),
    };
    Some(result.unwrap_or_else(|f| error_response(shard, api_key, request_id, f.code, &f.message)))
}

/// Produce: every section goes to its partition's shard as a slice of the
/// frame; answers once each partition stored (and synced, per its policy)
/// its batches. `Ok(None)` for acks=0.
///
/// Split in two: [`produce_start`] hands every section to its partition and
/// runs in the connection's read loop, so requests to a partition are
/// applied in the order they arrived (an idempotent producer pipelines and
/// counts on it); [`produce_finish`] waits for the outcomes.
pub async fn produce_start(
    shard: &Rc<Shard>,
    req: ProduceRequest,
    mut payload: BytesMut,
) -> Result<PendingProduce, Failure> {
    match req.acks {
        // Alone, the leader is every replica: acks=all is acks=1.
        -1..=1 => {}
        other => {
            return Err(Failure::new(
                ErrorCode::InvalidAcks,
                format!("acks={other} is not 0, 1 or -1 (all)"),
            ))
        }
    }
    let timeout = match req.timeout_ms {
        0 => ops::PRODUCE_TIMEOUT_DEFAULT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let mut waits = Vec::with_capacity(req.partitions.len());
    let mut consumed = 0;
    for section in req.partitions {
        // Sections are in payload order: cut each out without copying.
        let _ = payload.split_to(section.batches.start - consumed);
        let bytes = payload.split_to(section.batches.len());
        consumed = section.batches.end;
        let acks_all = req.acks == -1;
        let rx = ops::produce_partition(
            shard,
            &section.topic,
            section.partition,
            bytes,
            timeout,
            acks_all,
        )
        .await;
        waits.push((section.topic, section.partition, rx));
    }
    Ok(PendingProduce {
        acks: req.acks,
        waits,
    })
}

/// A produce whose sections are queued at their partitions.
pub struct PendingProduce {
    acks: i16,
    waits: Vec<(String, u32, oneshot::Receiver<ProduceOutcome>)>,
}

/// Waits for every section's outcome; `None` for acks=0.
pub async fn produce_finish(shard: &Shard, pending: PendingProduce) -> Option<ProduceResponse> {
    let mut partitions = Vec::with_capacity(pending.waits.len());
    for (topic, partition, rx) in pending.waits {
        let outcome = rx.await.unwrap_or_else(|_| ProduceOutcome {
            base_offsets: Vec::new(),
            failure: Some(Failure::new(
                ErrorCode::ShuttingDown,
                "the partition stopped before answering",
            )),
        });
        let (error, message) = outcome
            .failure
            .map_or((ErrorCode::None, String::new()), |f| (f.code, f.message));
        if error != ErrorCode::None {
            shard.shared.metrics.error(shard.id, error);
        }
        partitions.push(ProducePartitionResult {
            topic,
            partition,
            error: error as u16,
            message,
            base_offsets: outcome.base_offsets,
        });
    }
    (pending.acks != 0).then_some(ProduceResponse { partitions })
}

/// Fetch: reads every partition (on its shard); if fewer than `min_bytes`
/// came back, waits for any of them to grow or for `max_wait_ms`, and reads
/// again. Returns the payload as chunks: headers, then stored bytes as read.
pub async fn fetch(shard: &Rc<Shard>, req: FetchRequest) -> Result<Vec<Chunk>, Failure> {
    let outcomes = ops::fetch_outcomes(shard, &req, true).await;
    Ok(fetch_payload(shard, &req, outcomes))
}

fn fetch_payload(shard: &Shard, req: &FetchRequest, mut outcomes: Vec<FetchOutcome>) -> Vec<Chunk> {
    let mut chunks = Vec::with_capacity(1 + 2 * outcomes.len());
    chunks.push(Chunk::Mem(Bytes::copy_from_slice(
        &proto::fetch_response_header(outcomes.len()),
    )));
    ops::fit_fetch_budget(&mut outcomes, req.max_bytes as usize);
    for (p, outcome) in req.partitions.iter().zip(outcomes) {
        let (error, data) = match outcome.result {
            Ok(Answer::Read(b)) => (ErrorCode::None, Chunk::Mem(Bytes::from(b))),
            Ok(Answer::File(r, permit)) => (ErrorCode::None, Chunk::File(r, permit)),
            Err(f) => {
                shard.shared.metrics.error(shard.id, f.code);
                (f.code, Chunk::Mem(Bytes::new()))
            }
        };
        chunks.push(Chunk::Mem(Bytes::from(proto::fetch_section_header(
            &proto::FetchSection {
                topic: &p.topic,
                partition: p.partition,
                error,
                log_start: outcome.log_start,
                log_end: outcome.log_end,
                bytes: data.len(),
            },
        ))));
        chunks.push(data);
    }
    chunks
}
