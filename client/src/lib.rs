//! ringlog-client: the producer, consumer and admin library of ringlog.
//!
//! Built on plain tokio, so it drops into any tokio application. One
//! [`Client`] holds one pipelined connection to the broker; [`Producer`],
//! [`Consumer`] and [`Admin`] share it. Batches are encoded with the
//! engine's `BatchBuilder` (one implementation of the format), and fetched
//! records are decoded in place: keys and values are slices of the fetched
//! buffer.
//!
//! ```no_run
//! # async fn demo() -> ringlog_client::Result<()> {
//! use ringlog_client::{Admin, Client, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, Record, SeekTo};
//! let client = Client::connect("127.0.0.1:9292").await?;
//! Admin::new(client.clone()).create_topic(NewTopic::new("greetings", 3)).await?;
//! let producer = Producer::new(client.clone(), ProducerConfig::default()).await?;
//! let delivery = producer.send(Record::new("greetings", "hello").key("k1")).await?;
//! println!("stored at {:?}", delivery.await?);
//! let mut consumer = Consumer::new(client, ConsumerConfig::default());
//! consumer.assign_topic("greetings").await?;
//! consumer.seek_all(SeekTo::Beginning).await?;
//! for record in consumer.poll(std::time::Duration::from_secs(1)).await? {
//!     println!("{} {:?}", record.offset, record.value);
//! }
//! # Ok(()) }
//! ```

mod admin;
#[cfg(feature = "avro")]
pub mod avro;
mod conn;
mod consumer;
mod error;
pub mod partitioner;

/// A string as one percent-encoded URL path segment: schema registry
/// subjects may hold any character.
pub fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
mod producer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringlog_protocol::{ApiKey, ErrorCode, MetadataRequest, Payload};

pub use admin::{Admin, NewTopic};
pub use consumer::{
    Consumer, ConsumerBatch, ConsumerConfig, ConsumerRecord, OffsetReset, RebalanceEvent, SeekTo,
};
pub use error::{Error, ErrorKind, Result};
pub use producer::{
    Acks, BatchDelivery, BatchMetadata, Delivery, Pending, Producer, ProducerBatch, ProducerConfig,
    ProducerStats, Record, RecordMetadata,
};
/// A record to push into a [`ProducerBatch`] (the record format's own type).
pub use ringlog_format::batch::NewRecord;
/// A record inside a [`ConsumerBatch`], borrowing its bytes (the record
/// format's own type).
pub use ringlog_format::batch::Record as StoredRecord;
pub use ringlog_protocol::{
    BrokerMetadata, MetadataResponse, PartitionMetadata, TopicConfig, TopicMetadata, TopicSummary,
};

/// How long a group request follows its coordinator while it moves: a
/// dead coordinator's partition gets a new leader within the brokers'
/// session timeout (9 s by default).
const COORDINATOR_WAIT: Duration = Duration::from_secs(30);
/// Pause before a retriable request is tried again.
pub(crate) const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The default broker address.
pub const DEFAULT_BROKER: &str = "127.0.0.1:9292";

/// A handle on the broker: one pipelined connection, re-established when it
/// breaks. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    /// The bootstrap list: `addr` split at commas.
    addrs: Vec<String>,
    /// Which of `addrs` to try first: the one that answered last.
    preferred: std::sync::atomic::AtomicUsize,
    connect_timeout: Duration,
    conn: tokio::sync::Mutex<Option<Arc<conn::Connection>>>,
    /// Where each partition's leader is (cluster mode).
    routes: tokio::sync::Mutex<Routes>,
    /// Set when a leader moved or a route failed: the next routed request
    /// reads the metadata again first.
    routes_stale: AtomicBool,
}

/// Partition leaders and their brokers, from the metadata. Empty while the
/// metadata names one broker: everything then goes to the bootstrap
/// connection.
#[derive(Default)]
struct Routes {
    /// Topic -> leader per partition (`u32::MAX`: none now).
    leaders: HashMap<String, Vec<u32>>,
    addrs: HashMap<u32, String>,
    conns: HashMap<u32, Arc<conn::Connection>>,
}

impl Client {
    /// Connects to the broker at `addr` (`HOST:PORT`), or to the first that
    /// answers of a comma-separated list (`HOST:PORT,HOST:PORT`): a broken
    /// connection is made again to whichever of them answers.
    pub async fn connect(addr: &str) -> Result<Client> {
        let addrs: Vec<String> = addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if addrs.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("no broker address in {addr:?}"),
            ));
        }
        let client = Client {
            inner: Arc::new(Inner {
                addr: addr.to_string(),
                addrs,
                preferred: std::sync::atomic::AtomicUsize::new(0),
                connect_timeout: Duration::from_secs(10),
                conn: tokio::sync::Mutex::new(None),
                routes: tokio::sync::Mutex::new(Routes::default()),
                routes_stale: AtomicBool::new(true),
            }),
        };
        client.connection().await?;
        Ok(client)
    }

    /// The broker address.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The live connection, connecting again if it broke.
    pub(crate) async fn connection(&self) -> Result<Arc<conn::Connection>> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let n = self.inner.addrs.len();
        let first = self
            .inner
            .preferred
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut failures = Vec::new();
        for i in 0..n {
            let at = (first + i) % n;
            let addr = &self.inner.addrs[at];
            match conn::Connection::connect(addr, self.inner.connect_timeout).await {
                Ok(c) => {
                    let c = Arc::new(c);
                    self.inner
                        .preferred
                        .store(at, std::sync::atomic::Ordering::Relaxed);
                    *slot = Some(c.clone());
                    return Ok(c);
                }
                Err(e) if n == 1 => return Err(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Error::new(
            ErrorKind::BrokerUnreachable,
            format!(
                "no broker of {} answered: {}",
                self.inner.addr,
                failures.join("; ")
            ),
        ))
    }

    /// The connection to the leader of `topic`'s `partition`: in cluster
    /// mode the broker the metadata names, else the bootstrap connection.
    pub(crate) async fn connection_for(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<conn::Connection>> {
        let mut routes = self.inner.routes.lock().await;
        if self.inner.routes_stale.load(Ordering::Acquire) {
            self.refresh_routes(&mut routes).await;
        }
        let leader = routes
            .leaders
            .get(topic)
            .and_then(|l| l.get(partition as usize))
            .copied();
        let Some(leader) = leader else {
            drop(routes);
            return self.connection().await;
        };
        if let Some(c) = routes.conns.get(&leader).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let Some(addr) = routes.addrs.get(&leader).cloned() else {
            self.routes_stale();
            return Err(Error::new(
                ErrorKind::NotLeader,
                format!("{topic}-{partition} has no leader now"),
            ));
        };
        match conn::Connection::connect(&addr, self.inner.connect_timeout).await {
            Ok(c) => {
                let c = Arc::new(c);
                routes.conns.insert(leader, c.clone());
                Ok(c)
            }
            Err(e) => {
                self.routes_stale();
                Err(e)
            }
        }
    }

    /// `items` grouped by the connection to their partition's leader (one
    /// group in all for a broker alone), in their order within each group;
    /// an item whose leader cannot be reached is a group of its own with
    /// the error.
    pub(crate) async fn by_leader<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        partition_of: impl Fn(&T) -> (&str, u32),
    ) -> Vec<(Result<Arc<conn::Connection>>, Vec<T>)> {
        let mut groups: Vec<(Result<Arc<conn::Connection>>, Vec<T>)> = Vec::new();
        for item in items {
            let (topic, partition) = partition_of(&item);
            let conn = self.connection_for(topic, partition).await;
            let same = groups.iter_mut().find(|(c, _)| match (c, &conn) {
                (Ok(a), Ok(b)) => Arc::ptr_eq(a, b),
                _ => false,
            });
            match same {
                Some((_, group)) => group.push(item),
                None => groups.push((conn, vec![item])),
            }
        }
        groups
    }

    /// Partition leaders may have moved: read the metadata again before
    /// the next routed request.
    pub(crate) fn routes_stale(&self) {
        self.inner.routes_stale.store(true, Ordering::Release);
    }

    async fn refresh_routes(&self, routes: &mut Routes) {
        let request = MetadataRequest { topics: None }.encode();
        let Ok(meta) = self
            .call::<ringlog_protocol::MetadataResponse>(ApiKey::Metadata, Some(request))
            .await
        else {
            return;
        };
        routes.leaders.clear();
        routes.addrs.clear();
        if meta.brokers.len() > 1 {
            routes.addrs = meta
                .brokers
                .iter()
                .map(|b| (b.id, format!("{}:{}", b.host, b.port)))
                .collect();
            for t in &meta.topics {
                let mut leaders = vec![u32::MAX; t.partitions.len()];
                for p in &t.partitions {
                    if let Some(slot) = leaders.get_mut(p.partition as usize) {
                        *slot = p.leader;
                    }
                }
                routes.leaders.insert(t.name.clone(), leaders);
            }
        }
        self.inner.routes_stale.store(false, Ordering::Release);
    }

    /// Sends a request to the leader of `topic`'s `partition`.
    pub(crate) async fn call_for<T: Payload>(
        &self,
        topic: &str,
        partition: u32,
        api: ApiKey,
        request: Vec<u8>,
    ) -> Result<T> {
        let conn = self.connection_for(topic, partition).await?;
        decode_reply(api, conn.call(api, vec![Bytes::from(request)]).await?)
    }

    /// Appends `records` (whole batches) to a partition only if its log
    /// ends at `expected_end` when they reach its leader; returns each
    /// batch's base offset once it is durable and in sync (`acks=all`).
    /// If the log moved, fails with [`ErrorKind::EndOffsetMoved`] and
    /// stores nothing: the writer reads what was added and decides again.
    /// For state kept in a topic by one writer at a time.
    pub async fn produce_if(
        &self,
        topic: &str,
        partition: u32,
        expected_end: u64,
        records: Vec<u8>,
    ) -> Result<Vec<u64>> {
        let req = ringlog_protocol::ProduceIfRequest {
            topic: topic.to_string(),
            partition,
            expected_end,
            timeout_ms: 0,
            records,
        };
        let resp: ringlog_protocol::ProduceIfResponse = self
            .call_for(topic, partition, ApiKey::ProduceIf, req.encode())
            .await?;
        Ok(resp.base_offsets)
    }

    /// Sends a group's request to its coordinator: the leader of the
    /// group's [`ringlog_protocol::OFFSETS_TOPIC`] partition (the broker
    /// itself when alone), following the coordinator while it moves.
    pub(crate) async fn call_group<T: Payload>(
        &self,
        group: &str,
        api: ApiKey,
        request: Vec<u8>,
    ) -> Result<T> {
        let partition = ringlog_protocol::offsets_partition(group);
        self.retrying(COORDINATOR_WAIT, || {
            self.call_for(
                ringlog_protocol::OFFSETS_TOPIC,
                partition,
                api,
                request.clone(),
            )
        })
        .await
    }

    /// Runs `attempt` again after a pause while it fails with a retriable
    /// error (a leader being elected or moving, a new topic's replicas not
    /// started yet), for up to `wait`, reading the routes again between.
    pub(crate) async fn retrying<T, F, Fut>(&self, wait: Duration, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match attempt().await {
                Err(e) if e.is_retriable() && std::time::Instant::now() < deadline => {
                    self.routes_stale();
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
                other => return other,
            }
        }
    }

    /// Sends an rkyv request and decodes an rkyv response.
    pub(crate) async fn call<T: Payload>(
        &self,
        api: ApiKey,
        request: Option<Vec<u8>>,
    ) -> Result<T> {
        let payload = request.map(|r| vec![Bytes::from(r)]).unwrap_or_default();
        decode_reply(api, self.connection().await?.call(api, payload).await?)
    }
}

/// A reply decoded as `api`'s response, or its request-level error.
pub(crate) fn decode_reply<T: Payload>(api: ApiKey, reply: conn::Reply) -> Result<T> {
    let bytes = reply_payload(reply)?;
    T::decode(api, &bytes).map_err(|e| Error::new(ErrorKind::Protocol, e.to_string()))
}

/// A reply's payload, or its request-level error.
pub(crate) fn reply_payload(reply: conn::Reply) -> Result<Bytes> {
    if reply.error != ErrorCode::None {
        return Err(Error::from_code(
            reply.error,
            String::from_utf8_lossy(&reply.payload),
        ));
    }
    Ok(reply.payload)
}
