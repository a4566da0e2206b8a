//! One pipelined connection: requests go out as soon as they are made,
//! responses are matched to them by request id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use ringlog_protocol::{self as proto, ApiKey, ErrorCode, HEADER_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};

/// A response as received.
pub(crate) struct Reply {
    /// The request's error code.
    pub error: ErrorCode,
    /// The payload; fetched record bytes are sliced out of it, not copied.
    pub payload: Bytes,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Reply>>>>>;

/// A connection to the broker.
pub(crate) struct Connection {
    tx: mpsc::UnboundedSender<Vec<Bytes>>,
    pending: Pending,
    next_id: AtomicU64,
    closed: Arc<AtomicBool>,
}

/// The largest response this client accepts.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

impl Connection {
    /// Connects within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::BrokerUnreachable,
                    format!("connecting to {addr}: timed out"),
                )
            })?
            .map_err(|e| {
                Error::new(
                    ErrorKind::BrokerUnreachable,
                    format!("connecting to {addr}: {e}"),
                )
            })?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        // Unbounded: callers bound what they have outstanding (the producer
        // by its buffer memory), and a synchronous send keeps request order.
        let (tx, rx) = mpsc::unbounded_channel::<Vec<Bytes>>();
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(write, rx, closed.clone()));
        tokio::spawn(read_loop(read, pending.clone(), closed.clone()));
        Ok(Connection {
            tx,
            pending,
            next_id: AtomicU64::new(1),
            closed,
        })
    }

    /// Whether the connection has broken.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn frame(&self, api: ApiKey, payload: Vec<Bytes>) -> (u64, Vec<Bytes>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let len: usize = payload.iter().map(Bytes::len).sum();
        let mut chunks = Vec::with_capacity(payload.len() + 1);
        chunks.push(Bytes::copy_from_slice(&proto::request_header(api, id, len)));
        chunks.extend(payload);
        (id, chunks)
    }

    fn write(&self, chunks: Vec<Bytes>) -> Result<()> {
        self.tx
            .send(chunks)
            .map_err(|_| Error::new(ErrorKind::ConnectionLost, "connection to the broker closed"))
    }

    /// Queues a request now (requests go out in the order of these calls)
    /// and returns the future of its response.
    pub fn start_call(
        &self,
        api: ApiKey,
        payload: Vec<Bytes>,
    ) -> impl std::future::Future<Output = Result<Reply>> {
        let (id, chunks) = self.frame(api, payload);
        let (reply, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, reply);
        let queued = if self.is_closed() {
            Err(Error::new(
                ErrorKind::ConnectionLost,
                "connection to the broker closed",
            ))
        } else {
            self.write(chunks)
        };
        if queued.is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
        async move {
            queued?;
            rx.await.unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::ConnectionLost,
                    "connection to the broker closed",
                ))
            })
        }
    }

    /// Sends a request and waits for its response.
    pub async fn call(&self, api: ApiKey, payload: Vec<Bytes>) -> Result<Reply> {
        self.start_call(api, payload).await
    }

    /// Queues a request that gets no response (produce with acks=0).
    pub fn send_only(&self, api: ApiKey, payload: Vec<Bytes>) -> Result<()> {
        let (_, chunks) = self.frame(api, payload);
        self.write(chunks)
    }
}

async fn write_loop(
    write: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<Bytes>>,
    closed: Arc<AtomicBool>,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, write);
    while let Some(chunks) = rx.recv().await {
        let mut ok = true;
        for chunk in chunks {
            ok &= out.write_all(&chunk).await.is_ok();
        }
        // Flush once nothing else is queued, so pipelined requests share writes.
        if ok && rx.is_empty() {
            ok = out.flush().await.is_ok();
        }
        if !ok {
            closed.store(true, Ordering::Release);
            return;
        }
    }
}

async fn read_loop(
    mut read: tokio::net::tcp::OwnedReadHalf,
    pending: Pending,
    closed: Arc<AtomicBool>,
) {
    let reason = loop {
        let mut head = [0u8; HEADER_LEN];
        if let Err(e) = read.read_exact(&mut head).await {
            break format!("connection to the broker lost: {e}");
        }
        let header = proto::parse_response_header(&head);
        let len = (header.length.get() as usize).saturating_sub(HEADER_LEN - 4);
        if len > MAX_RESPONSE_BYTES {
            break format!("response of {len} bytes is over the client's limit");
        }
        // Read into uninitialised capacity: zeroing a fetch's megabytes
        // first cost the consumer as much as the CRC check.
        let mut payload = BytesMut::with_capacity(len);
        let mut lost = None;
        while payload.len() < len {
            let room = len - payload.len();
            match read.read_buf(&mut (&mut payload).limit(room)).await {
                Ok(0) => lost = Some("the broker closed the connection".to_string()),
                Ok(_) => continue,
                Err(e) => lost = Some(e.to_string()),
            }
            break;
        }
        if let Some(e) = lost {
            break format!("connection to the broker lost: {e}");
        }
        let id = header.request_id.get();
        let error = ErrorCode::from_u16(header.error.get());
        let waiter = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Ok(Reply {
                    error,
                    payload: payload.freeze(),
                }));
            }
            // Request id 0: the broker could not read a frame and will close.
            None if error != ErrorCode::None => {
                break format!(
                    "broker closed the connection: {}",
                    String::from_utf8_lossy(&payload)
                );
            }
            None => {}
        }
    };
    closed.store(true, Ordering::Release);
    let waiters: Vec<_> = pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    for (_, waiter) in waiters {
        let _ = waiter.send(Err(Error::new(ErrorKind::ConnectionLost, reason.clone())));
    }
}
