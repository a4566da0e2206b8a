//! A client connection: frames in, requests handled concurrently (the
//! protocol pipelines), responses out in completion order.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::fd::{AsRawFd, OwnedFd};

use bytes::{Buf, Bytes, BytesMut};
use ringlog_engine::FileRange;
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
pub type Response = Vec<Chunk>;

/// Part of a response: bytes in memory, or stored batches sent straight
/// from their segment file.
#[derive(Debug)]
pub enum Chunk {
    /// Bytes, written with `writev`.
    Mem(Bytes),
    /// A range of a segment file, written with `sendfile`, and the permit
    /// for the descriptor it holds (returned once it is sent).
    File(FileRange, OwnedSemaphorePermit),
}

impl Chunk {
    /// Bytes it puts on the wire.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Mem(b) => b.len(),
            Chunk::File(r, _) => r.len,
        }
    }

    /// Whether it puts nothing on the wire.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response waiting for the writer, with the in-flight bytes it holds.
pub(crate) type Queued = (Response, Option<OwnedSemaphorePermit>);

/// How long a stopping broker waits for a client to read its responses.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A request frame as read.
struct Frame {
    api_key: u16,
    request_id: u64,
    api: Result<ApiKey, DecodeError>,
    /// The payload: the frame's own buffer, which batches are split from.
    payload: BytesMut,
}

pub(crate) enum ReadError {
    /// Refused before allocating: answer, then close.
    Refused(DecodeError),
    /// The peer closed or the socket failed.
    Closed,
}

pub(crate) struct FrameReader {
    stream: Rc<TcpStream>,
    /// Bytes read and not yet taken.
    pub(crate) buf: BytesMut,
    max_frame: u32,
}

impl FrameReader {
    /// A reader of `stream` whose frames are at most `max_frame` bytes.
    pub(crate) fn new(stream: Rc<TcpStream>, max_frame: u32) -> FrameReader {
        FrameReader {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max_frame,
        }
    }

    /// The largest frame this reader accepts.
    pub(crate) fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Reads until `buf` holds at least `n` bytes, growing it to fit; an
    /// error when the peer closed or the socket failed.
    pub(crate) async fn fill(&mut self, n: usize) -> Result<(), ReadError> {
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

/// Writes each queued response as it comes, gathering what is ready into
/// one `writev`; ends when every sender is gone.
pub(crate) async fn write_loop(
    stream: Rc<TcpStream>,
    sock: Option<Arc<OwnedFd>>,
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
        let bytes: usize = chunks.iter().map(Chunk::len).sum();
        shard.shared.metrics.shard_bytes(shard.id, 0, bytes);
        if let Err(e) = write_chunks(&stream, &sock, chunks).await {
            tracing::debug!("closing connection: write failed: {e}");
            // The peer is gone; keep draining so senders never block.
            while rx.recv().await.is_some() {}
            return;
        }
        drop(permits);
    }
}

/// Writes a response's chunks in order: runs of bytes with `writev`, file
/// ranges with `sendfile`.
async fn write_chunks(
    stream: &TcpStream,
    sock: &Option<Arc<OwnedFd>>,
    chunks: Vec<Chunk>,
) -> std::io::Result<()> {
    let mut mem = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        match chunk {
            Chunk::Mem(b) => mem.push(b),
            Chunk::File(range, permit) => {
                write_bytes(stream, std::mem::take(&mut mem)).await?;
                let Some(sock) = sock else {
                    // Only a broker with sendfile on answers with file
                    // ranges, and it duplicated every socket.
                    return Err(std::io::Error::other("file range without sendfile"));
                };
                send_file(sock.clone(), range).await?;
                drop(permit);
            }
        }
    }
    write_bytes(stream, mem).await
}

/// Sends a file range to the socket on tokio's blocking pool: sendfile
/// reads the page cache (or the disk) itself, and that wait must not stall
/// the shard's thread. The thread owns both descriptors until it is done,
/// so a connection dropped meanwhile closes nothing it still uses.
async fn send_file(sock: Arc<OwnedFd>, range: FileRange) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || sendfile_all(&sock, &range))
        .await
        .map_err(std::io::Error::other)?
}

fn sendfile_all(sock: &OwnedFd, range: &FileRange) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let mut offset = libc::off_t::try_from(range.position)
        .map_err(|_| Error::new(ErrorKind::InvalidInput, "file position out of range"))?;
    let mut left = range.len;
    while left > 0 {
        // SAFETY: both descriptors are owned by the caller and open for the
        // whole call; `offset` is a live local the kernel updates.
        let n =
            unsafe { libc::sendfile(sock.as_raw_fd(), range.file.as_raw_fd(), &mut offset, left) };
        if n < 0 {
            let e = Error::last_os_error();
            match e.kind() {
                ErrorKind::Interrupted => continue,
                ErrorKind::WouldBlock => {
                    wait_writable(sock)?;
                    continue;
                }
                _ => return Err(e),
            }
        }
        if n == 0 {
            // The file was cut below the range (it cannot be, short of
            // outside interference): the frame is now unfinishable.
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                "segment file ends inside the range being sent",
            ));
        }
        left -= n as usize;
    }
    Ok(())
}

/// Blocks until `sock` can take more bytes (for a non-blocking socket).
fn wait_writable(sock: &OwnedFd) -> std::io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is a live local and the count is 1.
    if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Writes bytes with `writev`, as many buffers per call as the kernel takes.
async fn write_bytes(stream: &TcpStream, mut chunks: Vec<Bytes>) -> std::io::Result<()> {
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
        Chunk::Mem(Bytes::copy_from_slice(&header)),
        Chunk::Mem(Bytes::copy_from_slice(message.as_bytes())),
    ]
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
        Request::DescribeCluster => Ok(payload_response(
            api_key,
            request_id,
            &handlers::describe_cluster(shard).await,
        )),
    };
    Some(result.unwrap_or_else(|f| error_response(shard, api_key, request_id, f.code, &f.message)))
}

/// Default durability wait when a produce names none.
pub const PRODUCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
