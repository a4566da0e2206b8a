//! The producer: records are batched per partition by size and time,
//! pipelined to the broker, and retried safely thanks to the idempotent
//! producer's sequence numbers.
//!
//! All batching state lives in one task that owns it; `send` hands records
//! to it over a channel after reserving their bytes from the buffer budget,
//! which is the back-pressure: a producer faster than the broker waits in
//! `send` instead of growing without bound.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringlog_format::batch::{restamp_producer, BatchBuilder, NewRecord, ProducerStamp};
use ringlog_protocol::{
    self as proto, ApiKey, ErrorCode, InitProducerIdResponse, Payload, ProduceResponse,
};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::partitioner::partition_for_key;
use crate::{Admin, Client, Error, ErrorKind, Result};

/// How many replicas must store a batch before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: no response, no offsets, no retries.
    None,
    /// The leader stored it under the topic's fsync policy.
    Leader,
    /// Every in-sync replica stored it (needs replication; the broker refuses it today).
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = Error;

    fn from_str(s: &str) -> Result<Acks> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("acks {other:?} is not 0, 1 or all"),
            )),
        }
    }
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// A partition's batch is sent once it holds this many bytes.
    pub batch_size: usize,
    /// ...or once its first record has waited this long.
    pub linger: Duration,
    /// Durability asked of the broker.
    pub acks: Acks,
    /// Bytes of records buffered (unsent or unacknowledged) before `send` waits.
    pub buffer_memory: usize,
    /// Give up on a record this long after it was batched.
    pub delivery_timeout: Duration,
    /// How long the broker may wait for durability.
    pub request_timeout: Duration,
    /// Batches per partition in flight at once (at most 5 with idempotence).
    pub max_in_flight: usize,
    /// Pause before retrying after a retriable error.
    pub retry_backoff: Duration,
    /// Stamp producer id and sequences so retries are stored once.
    pub idempotent: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_size: 64 * 1024,
            linger: Duration::from_millis(1),
            acks: Acks::Leader,
            buffer_memory: 32 << 20,
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            retry_backoff: Duration::from_millis(100),
            idempotent: true,
        }
    }
}

/// A record to send.
#[derive(Debug, Clone)]
pub struct Record {
    /// Topic.
    pub topic: String,
    /// Partition; `None` lets the key (or stickiness, for no key) choose.
    pub partition: Option<u32>,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Bytes)>,
    /// Timestamp in ms; `None` for the time of `send`.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with a value and no key.
    pub fn new(topic: &str, value: impl Into<Bytes>) -> Record {
        Record {
            topic: topic.to_string(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Record {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Bytes>) -> Record {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sends to this partition.
    pub fn partition(mut self, partition: u32) -> Record {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp(mut self, ms: i64) -> Record {
        self.timestamp = Some(ms);
        self
    }

    fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
            + 32
    }
}

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset; `None` with acks=0, where the broker does not say.
    pub offset: Option<u64>,
}

/// Resolves when what was sent is acknowledged (or failed for good): a
/// record ([`Delivery`]) or a whole batch ([`BatchDelivery`]).
#[must_use = "a delivery can fail; await it to know"]
pub struct Pending<T> {
    rx: oneshot::Receiver<Result<T>>,
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| Err(Error::new(ErrorKind::Closed, "the producer stopped")))
        })
    }
}

/// Resolves when the record is acknowledged (or failed for good).
pub type Delivery = Pending<RecordMetadata>;

/// Resolves when a whole batch is acknowledged (or failed for good).
pub type BatchDelivery = Pending<BatchMetadata>;

/// Largest batch the producer builds: the broker's default batch limit.
const BATCH_BYTES_MAX: usize = 8 << 20;
/// Largest record the producer accepts (the broker's batch limit, less room
/// for the batch header).
const RECORD_MAX: usize = BATCH_BYTES_MAX - 1024;
/// Bytes of batches per produce request.
const REQUEST_BYTES_MAX: usize = 4 << 20;

/// Sends records to the broker. Cheap to share behind an `Arc`.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let bin = ringlog_server::testing::server_binary();
/// # let broker = ringlog_server::testing::BrokerProcess::start(&bin, dir.path(), 1, &[]).unwrap();
/// # let addr = broker.addr.to_string();
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use ringlog_client::partitioner::partition_for_key;
/// use ringlog_client::{Admin, Client, NewTopic, Producer, ProducerConfig, Record};
///
/// let client = Client::connect(&addr).await?;
/// Admin::new(client.clone()).create_topic(NewTopic::new("orders", 3)).await?;
/// let producer = Producer::new(client, ProducerConfig::default()).await?;
/// let delivery = producer.send(Record::new("orders", "2 apples").key("customer-7")).await?;
/// let stored = delivery.await?;
/// // Same partition as Kafka's Java client would pick for this key.
/// assert_eq!(stored.partition, partition_for_key(b"customer-7", 3));
/// assert_eq!(stored.offset, Some(0));
/// # Ok::<(), ringlog_client::Error>(()) }).unwrap();
/// ```
pub struct Producer {
    client: Client,
    config: ProducerConfig,
    stats: Arc<Stats>,
    tx: mpsc::UnboundedSender<Cmd>,
    memory: Arc<Semaphore>,
    partition_counts: Mutex<HashMap<String, u32>>,
}

enum Cmd {
    Record {
        record: Record,
        partition: Option<u32>,
        partitions: u32,
        permit: OwnedSemaphorePermit,
        reply: oneshot::Sender<Result<RecordMetadata>>,
    },
    Batch {
        batch: ProducerBatch,
        permit: OwnedSemaphorePermit,
        reply: oneshot::Sender<Result<BatchMetadata>>,
    },
    Flush(oneshot::Sender<()>),
}

impl Producer {
    /// A producer on `client`; obtains a producer id if idempotent.
    pub async fn new(client: Client, config: ProducerConfig) -> Result<Producer> {
        if config.batch_size == 0 || config.max_in_flight == 0 || config.buffer_memory < 1024 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "batch_size and max_in_flight must be positive and buffer_memory at least 1 KiB",
            ));
        }
        let idempotent = config.idempotent && config.acks != Acks::None;
        if idempotent && config.max_in_flight > 5 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "an idempotent producer keeps at most 5 batches per partition in flight",
            ));
        }
        let stamp = if idempotent {
            Some(init_producer_id(&client).await?)
        } else {
            None
        };
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            client: client.clone(),
            config: config.clone(),
            stamp,
            reset_pending: false,
            stats: stats.clone(),
            rx,
            done: mpsc::unbounded_channel(),
            parts: HashMap::new(),
            sticky: HashMap::new(),
            counts: HashMap::new(),
            flushers: Vec::new(),
            backoff_until: None,
            seed: std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15,
        };
        tokio::spawn(task.run());
        Ok(Producer {
            client,
            memory: Arc::new(Semaphore::new(config.buffer_memory)),
            config,
            stats,
            tx,
            partition_counts: Mutex::new(HashMap::new()),
        })
    }

    async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(n) = self
            .partition_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            return Ok(*n);
        }
        let meta = Admin::new(self.client.clone())
            .describe_topic(topic)
            .await?;
        let n = meta.config.partitions;
        self.partition_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_string(), n);
        Ok(n)
    }

    /// Queues a record; the returned [`Delivery`] resolves once the broker
    /// acknowledges it. Waits while the buffer budget is used up.
    pub async fn send(&self, record: Record) -> Result<Delivery> {
        let partitions = self.partition_count(&record.topic).await?;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < partitions => Some(p),
            (Some(p), _) => {
                return Err(Error::new(
                    ErrorKind::UnknownPartition,
                    format!(
                        "topic {:?} has {partitions} partitions, not {}",
                        record.topic,
                        p + 1
                    ),
                ))
            }
            (None, Some(key)) => Some(partition_for_key(key, partitions)),
            (None, None) => None,
        };
        let size = record.size();
        if size > RECORD_MAX || size > self.config.buffer_memory {
            return Err(Error::new(
                ErrorKind::RecordTooLarge,
                format!(
                    "a record of {size} bytes exceeds the limit of {}",
                    RECORD_MAX.min(self.config.buffer_memory)
                ),
            ));
        }
        let rx = self
            .submit(size, |permit, reply| Cmd::Record {
                record,
                partition,
                partitions,
                permit,
                reply,
            })
            .await?;
        Ok(Pending { rx })
    }

    /// An empty batch for `partition` of `topic`, to fill with
    /// [`ProducerBatch::push`] and hand to [`Producer::send_batch`]: records
    /// go straight into the bytes sent to the broker, with one
    /// acknowledgement for the whole batch.
    pub async fn batch(&self, topic: &str, partition: u32) -> Result<ProducerBatch> {
        let partitions = self.partition_count(topic).await?;
        if partition >= partitions {
            return Err(Error::new(
                ErrorKind::UnknownPartition,
                format!(
                    "topic {topic:?} has {partitions} partitions, not {}",
                    partition + 1
                ),
            ));
        }
        Ok(ProducerBatch {
            topic: Arc::from(topic),
            partition,
            builder: BatchBuilder::with_capacity(
                ProducerStamp::NONE,
                self.config.batch_size.min(BATCH_BYTES_MAX),
            ),
        })
    }

    /// Queues a whole batch after the partition's earlier records and
    /// batches; the returned [`BatchDelivery`] resolves once the broker
    /// acknowledges it (offsets `base_offset..base_offset + records`).
    /// Waits while the buffer budget is used up. Retries and idempotence
    /// are as for single records.
    pub async fn send_batch(&self, batch: ProducerBatch) -> Result<BatchDelivery> {
        let size = batch.size_bytes();
        if batch.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the batch holds no record",
            ));
        }
        if size > self.config.buffer_memory {
            return Err(Error::new(
                ErrorKind::RecordTooLarge,
                format!(
                    "a batch of {size} bytes exceeds buffer_memory ({})",
                    self.config.buffer_memory
                ),
            ));
        }
        let rx = self
            .submit(size, |permit, reply| Cmd::Batch {
                batch,
                permit,
                reply,
            })
            .await?;
        Ok(Pending { rx })
    }

    /// Reserves `size` bytes of the buffer budget (waiting while it is used
    /// up: the back-pressure) and hands the batching task the command made
    /// with that reservation and a reply channel.
    async fn submit<T>(
        &self,
        size: usize,
        make: impl FnOnce(OwnedSemaphorePermit, oneshot::Sender<Result<T>>) -> Cmd,
    ) -> Result<oneshot::Receiver<Result<T>>> {
        let closed = || Error::new(ErrorKind::Closed, "the producer stopped");
        let permit = self
            .memory
            .clone()
            .acquire_many_owned(size as u32)
            .await
            .map_err(|_| closed())?;
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(permit, reply)).map_err(|_| closed())?;
        Ok(rx)
    }

    /// What the producer has had to do to deliver: retries and sequence
    /// resets (a new producer id after the broker's sequence state and the
    /// producer's parted ways).
    pub fn stats(&self) -> ProducerStats {
        ProducerStats {
            retries: self.stats.retries.load(Ordering::Relaxed),
            sequence_resets: self.stats.sequence_resets.load(Ordering::Relaxed),
        }
    }

    /// Sends every buffered record now and waits until each one is
    /// acknowledged or has failed.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(tx))
            .map_err(|_| Error::new(ErrorKind::Closed, "the producer stopped"))?;
        rx.await
            .map_err(|_| Error::new(ErrorKind::Closed, "the producer stopped"))
    }
}

struct Waiter {
    reply: oneshot::Sender<Result<RecordMetadata>>,
    _permit: OwnedSemaphorePermit,
}

/// Records for one partition, written straight into the batch that goes to
/// the broker (no allocation, channel message or acknowledgement per
/// record). Made by [`Producer::batch`], sent by [`Producer::send_batch`].
pub struct ProducerBatch {
    topic: Arc<str>,
    partition: u32,
    builder: BatchBuilder,
}

impl ProducerBatch {
    /// Appends a record. Fails with `RecordTooLarge` once the batch would
    /// pass the broker's batch limit (8 MiB): send it and start another.
    pub fn push(&mut self, record: &NewRecord<'_>) -> Result<()> {
        let value_len = record.value.map(<[u8]>::len);
        self.room_for(record, value_len)?;
        self.builder.push(record).map_err(too_large)
    }

    /// Appends a record whose value of `value_len` bytes is written in place
    /// by `fill` (`record.value` is ignored): for values that are produced
    /// rather than copied, such as a load generator's.
    pub fn push_with(
        &mut self,
        record: &NewRecord<'_>,
        value_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        self.room_for(record, Some(value_len))?;
        self.builder
            .push_with(record, Some(value_len), fill)
            .map_err(too_large)
    }

    fn room_for(&self, record: &NewRecord<'_>, value_len: Option<usize>) -> Result<()> {
        let sized = NewRecord {
            value: None,
            ..*record
        };
        let grows = self.builder.record_size_bytes(&sized) + value_len.unwrap_or(0);
        if self.builder.size_bytes() + grows > BATCH_BYTES_MAX {
            return Err(Error::new(
                ErrorKind::RecordTooLarge,
                format!("the batch would pass {BATCH_BYTES_MAX} bytes: send it and start another"),
            ));
        }
        Ok(())
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.builder.record_count() as usize
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.builder.record_count() == 0
    }

    /// Bytes the batch would have if sent now.
    pub fn size_bytes(&self) -> usize {
        self.builder.size_bytes()
    }

    /// The partition it goes to.
    pub fn partition(&self) -> u32 {
        self.partition
    }
}

fn too_large(e: ringlog_format::batch::BatchError) -> Error {
    Error::new(ErrorKind::RecordTooLarge, e.to_string())
}

/// Where a batch was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset of its first record; `None` with acks=0.
    pub base_offset: Option<u64>,
    /// Records in it (offsets `base_offset..base_offset + records`).
    pub records: u32,
}

/// Counters of a producer's recoveries, for [`Producer::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Batches sent again after a retriable error.
    pub retries: u64,
    /// Times the producer took a new producer id and numbered its unsent
    /// batches from 0 again, because a batch failed for good (leaving a gap
    /// in its sequence) or the broker refused one as out of order with no
    /// earlier batch outstanding (KIP-360's case).
    pub sequence_resets: u64,
}

#[derive(Default)]
struct Stats {
    retries: AtomicU64,
    sequence_resets: AtomicU64,
}

/// A new producer id (and epoch) from the broker.
async fn init_producer_id(client: &Client) -> Result<(i64, i16)> {
    let id: InitProducerIdResponse = client.call(ApiKey::InitProducerId, None).await?;
    Ok((id.producer_id, id.producer_epoch))
}

struct Open {
    builder: BatchBuilder,
    waiters: Vec<Waiter>,
    deadline: Instant,
}

/// Who hears of a sealed batch's outcome: each record's sender, or the one
/// sender of a whole [`ProducerBatch`].
enum Waiters {
    Records(Vec<Waiter>),
    Batch {
        reply: oneshot::Sender<Result<BatchMetadata>>,
        _permit: OwnedSemaphorePermit,
    },
}

impl Waiters {
    fn succeed(self, topic: &str, partition: u32, base: Option<u64>, records: i32) {
        match self {
            Waiters::Records(waiters) => {
                for (i, w) in waiters.into_iter().enumerate() {
                    let _ = w.reply.send(Ok(RecordMetadata {
                        topic: topic.to_string(),
                        partition,
                        offset: base.map(|b| b + i as u64),
                    }));
                }
            }
            Waiters::Batch { reply, .. } => {
                let _ = reply.send(Ok(BatchMetadata {
                    topic: topic.to_string(),
                    partition,
                    base_offset: base,
                    records: records as u32,
                }));
            }
        }
    }

    fn fail(self, e: &Error) {
        match self {
            Waiters::Records(waiters) => {
                for w in waiters {
                    let _ = w.reply.send(Err(e.clone()));
                }
            }
            Waiters::Batch { reply, .. } => {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

struct Sealed {
    topic: Arc<str>,
    partition: u32,
    bytes: Bytes,
    waiters: Waiters,
    /// Position among the partition's batches: sequence order, without the
    /// wrap of sequence numbers.
    order: u64,
    records: i32,
    /// Sent, and failed in a way that leaves unknown whether the broker
    /// stored it: it may only go again under the stamp it has, so that the
    /// broker can recognise it as a duplicate.
    unresolved: bool,
    created: Instant,
}

#[derive(Default)]
struct Part {
    open: Option<Open>,
    /// Sealed batches to send, in `order`.
    ready: VecDeque<Sealed>,
    /// `order` of each batch sent and not yet answered.
    in_flight: BTreeSet<u64>,
    next_seq: i32,
    next_order: u64,
    /// An earlier batch failed and is queued again: later ones that the
    /// broker refuses as out of order will be retried behind it.
    retrying: bool,
}

impl Part {
    /// Numbers and finishes a batch and queues it to be sent, after every
    /// batch queued before it. An empty builder is dropped.
    fn enqueue(
        &mut self,
        key: &(Arc<str>, u32),
        stamp: Option<(i64, i16)>,
        mut builder: BatchBuilder,
        waiters: Waiters,
    ) {
        let count = builder.record_count();
        if count == 0 {
            return;
        }
        if let Some(stamp) = stamp {
            builder.set_stamp(self.number(stamp, count));
        }
        let Some(bytes) = builder.finish() else {
            return;
        };
        let order = self.next_order;
        self.next_order += 1;
        self.ready.push_back(Sealed {
            topic: key.0.clone(),
            partition: key.1,
            bytes: Bytes::from(bytes),
            waiters,
            order,
            records: count,
            unresolved: false,
            created: Instant::now(),
        });
    }

    /// The stamp of the partition's next batch of `records` records, and
    /// the sequence advanced past it (wrapping as Kafka's does).
    fn number(&mut self, (producer_id, producer_epoch): (i64, i16), records: i32) -> ProducerStamp {
        let stamp = ProducerStamp {
            producer_id,
            producer_epoch,
            base_sequence: self.next_seq,
        };
        self.next_seq =
            ((i64::from(self.next_seq) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32;
        stamp
    }

    /// Whether a batch sealed now would go out at once: nothing queued
    /// before it and room in flight. A lingering batch is sealed only then,
    /// so that under back-pressure records keep joining the open batch
    /// instead of queueing as many tiny ones (Kafka drains a batch only when
    /// its broker can take a request, for the same reason).
    fn can_send(&self, max_in_flight: usize) -> bool {
        let limit = if self.retrying { 1 } else { max_in_flight };
        self.ready.is_empty() && self.in_flight.len() < limit
    }

    /// Whether a batch before `order` is still unanswered or queued: an
    /// out-of-order refusal of `order` may then just mean it overtook that
    /// batch, which is resolved by sending them again in order.
    fn has_earlier(&self, order: u64) -> bool {
        self.in_flight.first().is_some_and(|o| *o < order)
            || self.ready.front().is_some_and(|s| s.order < order)
    }

    /// Queues `sealed` again in sequence order.
    fn requeue(&mut self, sealed: Sealed) {
        let at = self
            .ready
            .iter()
            .position(|s| s.order > sealed.order)
            .unwrap_or(self.ready.len());
        self.ready.insert(at, sealed);
    }
}

struct Done {
    sealed: Sealed,
    result: Result<Option<u64>>,
}

struct Task {
    client: Client,
    config: ProducerConfig,
    /// Producer id and epoch of an idempotent producer.
    stamp: Option<(i64, i16)>,
    /// The broker's sequence state for `stamp` and the producer's no longer
    /// agree: once every unresolved batch is answered, take a new producer
    /// id and number the unsent batches from 0 (see [`ProducerStats`]).
    reset_pending: bool,
    stats: Arc<Stats>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    done: (mpsc::UnboundedSender<Done>, mpsc::UnboundedReceiver<Done>),
    parts: HashMap<(Arc<str>, u32), Part>,
    sticky: HashMap<Arc<str>, u32>,
    /// Partition count of each topic seen.
    counts: HashMap<Arc<str>, u32>,
    flushers: Vec<oneshot::Sender<()>>,
    backoff_until: Option<Instant>,
    seed: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Task {
    async fn run(mut self) {
        let mut closing = false;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                cmd = self.rx.recv(), if !closing => match cmd {
                    Some(cmd) => {
                        self.handle(cmd);
                        // Take whatever else is queued before batching decisions.
                        while let Ok(cmd) = self.rx.try_recv() {
                            self.handle(cmd);
                        }
                    }
                    None => {
                        closing = true;
                        self.seal_all();
                    }
                },
                Some(done) = self.done.1.recv() => {
                    self.complete(done);
                    while let Ok(done) = self.done.1.try_recv() {
                        self.complete(done);
                    }
                }
                () = sleep_until(wake) => {}
            }
            self.seal_expired();
            self.dispatch().await;
            if self.idle() {
                for f in self.flushers.drain(..) {
                    let _ = f.send(());
                }
                if closing {
                    return;
                }
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        // A partition that cannot send is woken by its next answer instead.
        let max = self.config.max_in_flight;
        let linger = self
            .parts
            .values()
            .filter(|p| p.can_send(max))
            .filter_map(|p| p.open.as_ref().map(|o| o.deadline))
            .min();
        match (linger, self.backoff_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn idle(&self) -> bool {
        self.parts
            .values()
            .all(|p| p.open.is_none() && p.ready.is_empty() && p.in_flight.is_empty())
    }

    fn random(&mut self, n: u32) -> u32 {
        // xorshift: stickiness only needs spread, not quality.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed % u64::from(n.max(1))) as u32
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Flush(reply) => {
                self.seal_all();
                self.flushers.push(reply);
            }
            Cmd::Batch {
                batch,
                permit,
                reply,
            } => {
                let key = (batch.topic, batch.partition);
                // Records sent one by one before this batch go first.
                self.seal(&key);
                let waiters = Waiters::Batch {
                    reply,
                    _permit: permit,
                };
                let stamp = self.stamp;
                self.parts.entry(key.clone()).or_default().enqueue(
                    &key,
                    stamp,
                    batch.builder,
                    waiters,
                );
            }
            Cmd::Record {
                record,
                partition,
                partitions,
                permit,
                reply,
            } => {
                let topic: Arc<str> = Arc::from(record.topic.as_str());
                self.counts.insert(topic.clone(), partitions);
                let partition = match partition {
                    Some(p) => p,
                    None => match self.sticky.get(&topic) {
                        Some(p) if *p < partitions => *p,
                        _ => {
                            let p = self.random(partitions);
                            self.sticky.insert(topic.clone(), p);
                            p
                        }
                    },
                };
                self.append(
                    topic,
                    partition,
                    record,
                    Waiter {
                        reply,
                        _permit: permit,
                    },
                );
            }
        }
    }

    fn append(&mut self, topic: Arc<str>, partition: u32, record: Record, waiter: Waiter) {
        let headers: Vec<(&[u8], Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), Some(&v[..])))
            .collect();
        let new = NewRecord {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
            timestamp: record.timestamp.unwrap_or_else(now_ms),
        };
        let key = (topic.clone(), partition);
        let batch_size = self.config.batch_size;
        let full = self
            .parts
            .get(&key)
            .and_then(|p| p.open.as_ref())
            .is_some_and(|o| {
                o.builder.record_count() > 0
                    && o.builder.size_bytes() + o.builder.record_size_bytes(&new) > batch_size
            });
        if full {
            self.seal(&key);
        }
        let linger = self.config.linger;
        let part = self.parts.entry(key.clone()).or_default();
        // The producer stamp is set when the batch is sealed and numbered.
        let open = part.open.get_or_insert_with(|| Open {
            builder: BatchBuilder::with_capacity(ProducerStamp::NONE, batch_size.min(1 << 20)),
            waiters: Vec::new(),
            deadline: Instant::now() + linger,
        });
        match open.builder.push(&new) {
            Ok(()) => open.waiters.push(waiter),
            Err(e) => {
                let _ = waiter
                    .reply
                    .send(Err(Error::new(ErrorKind::RecordTooLarge, e.to_string())));
            }
        }
        let full = open.builder.size_bytes() >= batch_size;
        if full {
            self.seal(&key);
        }
    }

    fn seal(&mut self, key: &(Arc<str>, u32)) {
        let partitions = self.counts.get(&key.0).copied().unwrap_or(1);
        let Some(part) = self.parts.get_mut(key) else {
            return;
        };
        let Some(open) = part.open.take() else {
            return;
        };
        part.enqueue(
            key,
            self.stamp,
            open.builder,
            Waiters::Records(open.waiters),
        );
        // Sticky partitioning moves on once its batch is complete.
        if self.sticky.get(&key.0) == Some(&key.1) && partitions > 1 {
            let mut next = self.random(partitions - 1);
            if next >= key.1 {
                next += 1;
            }
            self.sticky.insert(key.0.clone(), next);
        }
    }

    fn seal_all(&mut self) {
        let keys: Vec<_> = self
            .parts
            .iter()
            .filter(|(_, p)| p.open.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.seal(&key);
        }
    }

    fn seal_expired(&mut self) {
        let now = Instant::now();
        let max = self.config.max_in_flight;
        let keys: Vec<_> = self
            .parts
            .iter()
            .filter(|(_, p)| p.can_send(max) && p.open.as_ref().is_some_and(|o| o.deadline <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.seal(&key);
        }
    }

    async fn dispatch(&mut self) {
        if let Some(until) = self.backoff_until {
            if Instant::now() < until {
                return;
            }
            self.backoff_until = None;
        }
        if self.reset_pending {
            self.reset_sequences().await;
            if self.backoff_until.is_some() {
                return;
            }
        }
        let max = self.config.max_in_flight;
        let resetting = self.reset_pending;
        let mut sections = Vec::new();
        let mut bytes = 0;
        for part in self.parts.values_mut() {
            if resetting {
                // Before a reset only batches of unknown fate go, one at a
                // time under their old stamp, to learn whether the broker
                // has them (a duplicate) or not (out of order).
                let next = part.ready.iter().position(|s| s.unresolved);
                if let (true, Some(i)) = (part.in_flight.is_empty(), next) {
                    if let Some(sealed) = part.ready.remove(i) {
                        bytes += sealed.bytes.len();
                        part.in_flight.insert(sealed.order);
                        sections.push(sealed);
                    }
                }
                continue;
            }
            // While a retry is pending, resend in order from the front only.
            let limit = if part.retrying { 1 } else { max };
            while part.in_flight.len() < limit && bytes < REQUEST_BYTES_MAX {
                let Some(sealed) = part.ready.pop_front() else {
                    break;
                };
                bytes += sealed.bytes.len();
                part.in_flight.insert(sealed.order);
                sections.push(sealed);
            }
        }
        if sections.is_empty() {
            return;
        }
        // One request per leader (one in all for a broker alone), each
        // queued on its connection before anything else can: requests
        // (hence batches of a partition) go out in sequence order.
        let groups = self
            .client
            .by_leader(sections, |s| (&s.topic, s.partition))
            .await;
        for (conn, sections) in groups {
            let done = self.done.0.clone();
            let sent = match conn {
                Ok(conn) => produce(
                    &conn,
                    self.config.acks,
                    self.config.request_timeout,
                    &sections,
                ),
                Err(e) => Sent::Failed(e),
            };
            tokio::spawn(async move {
                let results = sent.outcomes(sections.len()).await;
                for (sealed, result) in sections.into_iter().zip(results) {
                    let _ = done.send(Done { sealed, result });
                }
            });
        }
    }

    /// Takes a new producer id and numbers every queued batch from 0 under
    /// it, once no batch of unknown fate is left (each was answered, or
    /// failed for good); until then, [`Task::dispatch`] sends only those.
    /// If the broker cannot be asked, sets a back-off and tries again then.
    async fn reset_sequences(&mut self) {
        let waiting = self
            .parts
            .values()
            .any(|p| !p.in_flight.is_empty() || p.ready.iter().any(|s| s.unresolved));
        if waiting {
            return;
        }
        let fresh =
            tokio::time::timeout(self.config.request_timeout, init_producer_id(&self.client))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::new(ErrorKind::Timeout, "InitProducerId timed out"))
                });
        let stamp = match fresh {
            Ok(stamp) => stamp,
            Err(_) => {
                // The broker is not back yet: try again after a pause.
                self.backoff_until = Some(Instant::now() + self.config.retry_backoff);
                return;
            }
        };
        self.stamp = Some(stamp);
        for part in self.parts.values_mut() {
            part.next_seq = 0;
            part.retrying = false;
            let mut ready = std::mem::take(&mut part.ready);
            for sealed in &mut ready {
                let mut bytes = sealed.bytes.to_vec();
                // A sealed batch always has a whole header.
                let _ = restamp_producer(&mut bytes, part.number(stamp, sealed.records));
                sealed.bytes = Bytes::from(bytes);
            }
            part.ready = ready;
        }
        self.reset_pending = false;
        self.stats.sequence_resets.fetch_add(1, Ordering::Relaxed);
    }

    fn complete(&mut self, done: Done) {
        let Done { mut sealed, result } = done;
        let key = (sealed.topic.clone(), sealed.partition);
        let idempotent = self.stamp.is_some();
        let Some(part) = self.parts.get_mut(&key) else {
            return;
        };
        part.in_flight.remove(&sealed.order);
        match result {
            Ok(base) => {
                part.retrying = false;
                let (topic, partition, records) = (sealed.topic, sealed.partition, sealed.records);
                sealed.waiters.succeed(&topic, partition, base, records);
            }
            Err(e) => {
                let in_time = sealed.created.elapsed() < self.config.delivery_timeout;
                // The broker checks for a duplicate before the order, so an
                // out-of-order refusal means the batch is not stored.
                let out_of_order = idempotent && e.kind() == ErrorKind::OutOfOrderSequence;
                let retry =
                    in_time && self.config.acks != Acks::None && (e.is_retriable() || out_of_order);
                if e.is_retriable() {
                    // The leader may have moved (or died).
                    self.client.routes_stale();
                }
                if retry {
                    if out_of_order {
                        sealed.unresolved = false;
                        // Nothing earlier outstanding: the gap is real (a batch
                        // failed for good, or the broker lost its state).
                        if !part.has_earlier(sealed.order) {
                            self.reset_pending = true;
                        }
                    } else {
                        sealed.unresolved = idempotent;
                    }
                    part.retrying = true;
                    part.requeue(sealed);
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.backoff_until = Some(Instant::now() + self.config.retry_backoff);
                } else {
                    // A batch given up leaves a gap in the sequence that every
                    // later batch would hit.
                    if idempotent {
                        self.reset_pending = true;
                    }
                    sealed.waiters.fail(&e);
                }
            }
        }
    }
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when.into()).await,
        None => std::future::pending().await,
    }
}

/// A produce request on its way.
enum Sent<F> {
    /// Waiting for the response.
    Waiting(F),
    /// acks=0: nothing will come back.
    Unacknowledged,
    /// Could not be sent.
    Failed(Error),
}

impl<F: std::future::Future<Output = Result<crate::conn::Reply>>> Sent<F> {
    /// One result (base offset) per section.
    async fn outcomes(self, sections: usize) -> Vec<Result<Option<u64>>> {
        let reply = match self {
            Sent::Unacknowledged => return vec![Ok(None); sections],
            Sent::Failed(e) => return vec![Err(e); sections],
            Sent::Waiting(f) => f.await.and_then(crate::reply_payload),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => return vec![Err(e); sections],
        };
        let resp = match ProduceResponse::decode(ApiKey::Produce, &reply) {
            Ok(resp) if resp.partitions.len() == sections => resp,
            Ok(_) => {
                return vec![
                    Err(Error::new(
                        ErrorKind::Protocol,
                        "produce response does not match the request"
                    ));
                    sections
                ]
            }
            Err(e) => return vec![Err(Error::new(ErrorKind::Protocol, e.to_string())); sections],
        };
        resp.partitions
            .into_iter()
            .map(
                |p| match (ErrorCode::from_u16(p.error), p.base_offsets.first()) {
                    (ErrorCode::None, Some(base)) => Ok(Some(*base)),
                    (ErrorCode::None, None) => Err(Error::new(
                        ErrorKind::Protocol,
                        "produce response without an offset",
                    )),
                    (code, _) => Err(Error::from_code(code, p.message)),
                },
            )
            .collect()
    }
}

/// Queues one produce request for `sections` on `conn`, now.
fn produce(
    conn: &crate::conn::Connection,
    acks: Acks,
    timeout: Duration,
    sections: &[Sealed],
) -> Sent<impl std::future::Future<Output = Result<crate::conn::Reply>>> {
    let timeout_ms = timeout.as_millis().min(u128::from(u32::MAX)) as u32;
    let mut chunks = Vec::with_capacity(1 + 2 * sections.len());
    chunks.push(Bytes::copy_from_slice(&proto::produce_header(
        acks.wire(),
        timeout_ms,
        sections.len(),
    )));
    for s in sections {
        chunks.push(Bytes::from(proto::produce_section_header(
            &s.topic,
            s.partition,
            s.bytes.len(),
        )));
        chunks.push(s.bytes.clone());
    }
    if acks == Acks::None {
        return match conn.send_only(ApiKey::Produce, chunks) {
            Ok(()) => Sent::Unacknowledged,
            Err(e) => Sent::Failed(e),
        };
    }
    Sent::Waiting(conn.start_call(ApiKey::Produce, chunks))
}
