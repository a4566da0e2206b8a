//! Connection plumbing both front doors share (the native protocol's,
//! [`crate::native`], and Kafka's, [`crate::kafka`]): reading a socket into
//! frames' buffers, and writing responses back with `writev`, or
//! `sendfile` for stored batches. Nothing here knows either protocol.

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use ringlog_engine::FileRange;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;

use crate::shard::Shard;

/// Read buffer size: small frames share one, large ones get their own.
const READ_CHUNK: usize = 64 * 1024;
/// Buffers per `writev` (below the kernel's IOV_MAX of 1024).
const IOVECS_MAX: usize = 512;
/// The least a read asks for (a native frame header's size).
const READ_MIN: usize = 16;

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

/// The peer closed the connection or the socket failed.
#[derive(Debug)]
pub(crate) struct Closed;

/// Reads a connection into one buffer that frames are split off.
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
    pub(crate) async fn fill(&mut self, n: usize) -> Result<(), Closed> {
        while self.buf.len() < n {
            let want = n.max(self.buf.len() + READ_CHUNK.min(n.max(READ_MIN)));
            if self.buf.capacity() < want {
                // Reserve at least a chunk so small frames share reads.
                self.buf.reserve(want.max(READ_CHUNK) - self.buf.len());
            }
            let buf = std::mem::take(&mut self.buf);
            let len = buf.len();
            let (res, slice) = self.stream.read(buf.slice(len..)).await;
            self.buf = slice.into_inner();
            match res {
                Ok(0) | Err(_) => return Err(Closed),
                Ok(_) => {}
            }
        }
        Ok(())
    }
}

/// Ends a connection once its writer is done (every request read has
/// been answered). When the broker is stopping, a client that stopped
/// reading gets [`SHUTDOWN_GRACE`], then its socket is shut so the pending
/// write fails.
pub(crate) async fn close_after(
    shard: &Shard,
    stream: &TcpStream,
    writer: tokio::task::JoinHandle<()>,
    peer: std::net::SocketAddr,
) {
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
