//! A client connection: frames in, requests handled concurrently (the
//! protocol pipelines), responses out in completion order.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use ringlog_protocol::{
    self as proto, ApiKey, DecodeError, ErrorCode, Payload, ProduceRequest, Request, HEADER_LEN,
};

use crate::partition::Failure;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

use crate::handlers;
use crate::shard::Shard;

/// Read buffer size: small frames share one, large ones get their own.
const READ_CHUNK: usize = 64 * 1024;
/// Buffers per `writev` (below the kernel's IOV_MAX of 1024).
const IOVECS_MAX: usize = 512;

/// A response: chunks written back to back, no copy into one buffer.
pub type Response = Vec<Bytes>;

/// A response waiting for the writer, with the in-flight bytes it holds.
type Queued = (Response, Option<OwnedSemaphorePermit>);

/// How long a stopping broker waits for a client to read its responses.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A request frame as read.
struct Frame {
    api_key: u16,
    request_id: u64,
    api: Result<ApiKey, DecodeError>,
    /// The payload: the frame's own buffer, which batches are split from.
    payload: BytesMut,
}

enum ReadError {
    /// Refused before allocating: answer, then close.
    Refused(DecodeError),
    /// The peer closed or the socket failed.
    Closed,
}

struct FrameReader {
    stream: Rc<TcpStream>,
    buf: BytesMut,
    max_frame: u32,
}

impl FrameReader {
    /// Reads until `buf` holds at least `n` bytes, growing it to fit.
    async fn fill(&mut self, n: usize) -> Result<(), ReadError> {
        while self.buf.len() < n {
            let want = n.max(self.buf.len() + READ_CHUNK.min(n.max(HEADER_LEN)));
            if self.buf.capacity() < want {
                // Reserve at least a chunk so small frames share reads.
                self.buf.reserve(want.max(READ_CHUNK) - self.buf.len());
            }
            let buf = std::mem::take(&mut self.buf);
            let len = buf.len();
            let (res, slice) = self.stream.read(buf.slice(len..)).await;
            self.buf = slice.into_inner();
            match res {
                Ok(0) | Err(_) => return Err(ReadError::Closed),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// The next frame, or why there is none.
    async fn next(&mut self) -> Result<Frame, ReadError> {
        self.fill(HEADER_LEN).await?;
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&self.buf[..HEADER_LEN]);
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        // Checked before a byte of the payload is buffered for it.
        proto::check_frame_length(length, self.max_frame).map_err(ReadError::Refused)?;
        let (header, api) = proto::parse_request_header(&head).map_err(ReadError::Refused)?;
        let total = 4 + length as usize;
        self.fill(total).await?;
        let mut frame = self.buf.split_to(total);
        frame.advance(HEADER_LEN);
        Ok(Frame {
            api_key: header.api_key.get(),
            request_id: header.request_id.get(),
            api,
            payload: frame,
        })
    }
}

/// Serves one connection until the peer closes, it breaks the protocol
/// beyond repair, or the broker shuts down (in-flight requests finish).
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let stream = Rc::new(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Queued>();
    let writer = tokio_uring::spawn(write_loop(stream.clone(), rx, shard.clone()));
    let config = &shard.shared.config;
    let inflight = Arc::new(Semaphore::new(config.max_inflight_bytes as usize));
    let mut reader = FrameReader {
        stream: stream.clone(),
        buf: BytesMut::with_capacity(READ_CHUNK),
        max_frame: config.max_frame_bytes,
    };
    let mut shutdown = shard.shutdown.clone();
    loop {
        let frame = tokio::select! {
            frame = reader.next() => frame,
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
                    handlers::produce_finish(&shard, pending)
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
    // The writer ends once every in-flight request has sent its response;
    // when the broker is stopping, a client that stopped reading gets a
    // grace period, then its socket is shut so the pending write fails.
    let mut stopping = shard.shutdown.clone();
    let grace = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = writer => {}
        () = grace => tracing::warn!(%peer, "client did not read its responses; closing"),
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

async fn write_loop(
    stream: Rc<TcpStream>,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    shard: Rc<Shard>,
) {
    while let Some((mut chunks, permit)) = rx.recv().await {
        let mut permits = vec![permit];
        // Gather what else is ready into the same writev.
        while chunks.len() < IOVECS_MAX {
            match rx.try_recv() {
                Ok((more, permit)) => {
                    chunks.extend(more);
                    permits.push(permit);
                }
                Err(_) => break,
            }
        }
        let bytes: usize = chunks.iter().map(Bytes::len).sum();
        shard.shared.metrics.shard_bytes(shard.id, 0, bytes);
        if write_chunks(&stream, chunks).await.is_err() {
            // The peer is gone; keep draining so senders never block.
            while rx.recv().await.is_some() {}
            return;
        }
        drop(permits);
    }
}

async fn write_chunks(stream: &TcpStream, mut chunks: Vec<Bytes>) -> std::io::Result<()> {
    chunks.retain(|c| !c.is_empty());
    while !chunks.is_empty() {
        let rest = chunks.split_off(chunks.len().min(IOVECS_MAX));
        let (res, mut sent) = stream.writev(chunks).await;
        let mut n = res?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut done = 0;
        while n > 0 && done < sent.len() {
            let len = sent[done].len();
            if len <= n {
                n -= len;
                done += 1;
            } else {
                sent[done].advance(n);
                n = 0;
            }
        }
        sent.drain(..done);
        sent.extend(rest);
        chunks = sent;
    }
    Ok(())
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
        Bytes::copy_from_slice(&header),
        Bytes::copy_from_slice(message.as_bytes()),
    ]
}

/// A successful response with an rkyv payload.
pub fn payload_response(api_key: u16, request_id: u64, payload: &impl Payload) -> Response {
    let body = payload.encode();
    let header = proto::response_header(api_key, request_id, ErrorCode::None, body.len());
    vec![Bytes::copy_from_slice(&header), Bytes::from(body)]
}

/// A request as the read loop hands it on.
enum Work {
    /// A produce already queued at its partitions, or its error response.
    Produce(Result<(u16, u64, handlers::PendingProduce), Response>),
    /// Anything else, run whole aside.
    Other(Frame),
}

/// Decodes a produce and queues its sections at their partitions.
async fn start_produce(
    shard: &Rc<Shard>,
    frame: Frame,
) -> Result<(u16, u64, handlers::PendingProduce), Response> {
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
    match handlers::produce_start(shard, req, payload).await {
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
            return Some(match handlers::fetch(shard, req).await {
                Ok(body) => {
                    let len: usize = body.iter().map(Bytes::len).sum();
                    let header = proto::response_header(api_key, request_id, ErrorCode::None, len);
                    let mut out = Vec::with_capacity(body.len() + 1);
                    out.push(Bytes::copy_from_slice(&header));
                    out.extend(body);
                    out
                }
                Err(f) => error_response(shard, api_key, request_id, f.code, &f.message),
            })
        }
        Request::ListOffsets(req) => handlers::list_offsets(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::Metadata(req) => handlers::metadata(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::CreateTopic(req) => handlers::create_topic(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::DeleteTopic(req) => handlers::delete_topic(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::ListTopics => Ok(payload_response(
            api_key,
            request_id,
            &handlers::list_topics(shard),
        )),
        Request::CommitOffsets(req) => handlers::commit_offsets(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::FetchOffsets(req) => handlers::fetch_offsets(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::InitProducerId => {
            handlers::init_producer_id(shard).map(|r| payload_response(api_key, request_id, &r))
        }
        Request::GroupHeartbeat(req) => handlers::group_heartbeat(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::ListGroups => handlers::list_groups(shard)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
        Request::DescribeGroup(req) => handlers::describe_group(shard, req)
            .await
            .map(|r| payload_response(api_key, request_id, &r)),
    };
    Some(result.unwrap_or_else(|f| error_response(shard, api_key, request_id, f.code, &f.message)))
}

/// Default durability wait when a produce names none.
pub const PRODUCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
