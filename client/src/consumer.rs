//! The consumer: assigned partitions, polled records, one fetch always in
//! flight ahead of the application, and committed offsets for a group.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringlog_format::batch::{BatchView, Record as StoredRecord};
use std::collections::BTreeSet;

use ringlog_protocol::{
    self as proto, ApiKey, CommitOffset, CommitOffsetsRequest, CommitOffsetsResponse, ErrorCode,
    FetchOffsetsRequest, FetchOffsetsResponse, FetchPartition, FetchRequest, GroupHeartbeatRequest,
    GroupHeartbeatResponse, ListOffsetsPartition, ListOffsetsRequest, ListOffsetsResponse, Payload,
    TopicPartition,
};
use tokio::sync::oneshot;

use crate::{Admin, Client, Error, ErrorKind, Result};

/// Where to start a partition that has no committed offset (or whose
/// offset fell out of the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The oldest record kept.
    Earliest,
    /// The next record produced.
    Latest,
}

/// A position to seek to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The oldest record kept.
    Beginning,
    /// The next record produced.
    End,
    /// This offset.
    Offset(u64),
    /// The first record with a timestamp at or after this (ms); the end if none.
    Timestamp(i64),
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Group whose committed offsets are read and written.
    pub group: Option<String>,
    /// Start of partitions without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// Longest the broker holds a fetch while no data arrives.
    pub fetch_max_wait: Duration,
    /// Bytes that make the broker answer a fetch early.
    pub fetch_min_bytes: u32,
    /// Most bytes per partition per fetch (at least one batch comes back).
    pub max_partition_fetch_bytes: u32,
    /// Most bytes per fetch.
    pub fetch_max_bytes: u32,
    /// Most records one `poll` returns.
    pub max_poll_records: usize,
    /// Subscribed consumers: silence after which the group evicts this one.
    pub session_timeout: Duration,
    /// Subscribed consumers: `range`, `roundrobin` or `sticky`.
    pub assignor: String,
    /// Subscribed consumers: commit positions every `auto_commit_interval`
    /// and before giving partitions up.
    pub auto_commit: bool,
    /// How often auto-commit commits.
    pub auto_commit_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group: None,
            auto_offset_reset: OffsetReset::Latest,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            max_partition_fetch_bytes: 1 << 20,
            fetch_max_bytes: 50 << 20,
            max_poll_records: 500,
            session_timeout: Duration::from_secs(10),
            assignor: "range".into(),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

/// A consumed record. Key, value and headers are slices of the fetched
/// buffer, not copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

type Tp = (Arc<str>, u32);

/// Pause before fetching again from a partition whose leader moved.
const NOT_LEADER_BACKOFF: Duration = Duration::from_millis(100);
/// How long an offset lookup retries a retriable answer.
const LIST_OFFSETS_WITHIN: Duration = Duration::from_secs(15);

struct InFlight {
    /// One response per leader asked.
    rx: oneshot::Receiver<Result<Vec<Bytes>>>,
    /// Bumped by seeks and assignments: an older fetch's data is dropped.
    generation: u64,
}

/// Reads records from assigned partitions.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let bin = ringlog_server::testing::server_binary();
/// # let broker = ringlog_server::testing::BrokerProcess::start(&bin, dir.path(), 1, &[]).unwrap();
/// # let addr = broker.addr.to_string();
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use ringlog_client::{Admin, Client, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, Record, SeekTo};
///
/// let client = Client::connect(&addr).await?;
/// Admin::new(client.clone()).create_topic(NewTopic::new("events", 1)).await?;
/// let producer = Producer::new(client.clone(), ProducerConfig::default()).await?;
/// producer.send(Record::new("events", "first")).await?.await?;
///
/// let config = ConsumerConfig { group: Some("reporting".into()), ..ConsumerConfig::default() };
/// let mut consumer = Consumer::new(client, config);
/// consumer.assign(&[("events", 0)]).await?;
/// consumer.seek("events", 0, SeekTo::Beginning).await?;
/// let records = consumer.poll(Duration::from_secs(5)).await?;
/// assert_eq!(records[0].value.as_deref(), Some(&b"first"[..]));
/// consumer.commit().await?; // the group resumes at offset 1
/// assert_eq!(consumer.committed(&[("events", 0)]).await?, vec![Some(1)]);
/// # Ok::<(), ringlog_client::Error>(()) }).unwrap();
/// ```
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    /// Next offset to hand to the application, per partition.
    positions: BTreeMap<Tp, u64>,
    /// Next offset to fetch (ahead of `positions` by what is buffered).
    fetch_positions: BTreeMap<Tp, u64>,
    /// Fetched batches not yet handed out, in fetch order.
    buffer: VecDeque<ConsumerBatch>,
    fetch: Option<InFlight>,
    /// Bumped by seeks and reassignments: older fetches' data is dropped.
    fetch_epoch: u64,
    /// Group membership, once subscribed.
    sub: Option<Subscription>,
    /// Partitions gained and lost, oldest first, until taken.
    events: VecDeque<RebalanceEvent>,
}

/// A change of a subscribed consumer's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// These partitions were given to this consumer (it starts at their
    /// committed offsets, or per `auto_offset_reset`).
    Assigned(Vec<(String, u32)>),
    /// These were taken away (after their positions were committed, with
    /// auto-commit on).
    Revoked(Vec<(String, u32)>),
}

struct Subscription {
    topics: Vec<String>,
    member_id: String,
    generation: i32,
    next_heartbeat: Instant,
    next_commit: Instant,
}

impl Consumer {
    /// A consumer with no partitions yet.
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            positions: BTreeMap::new(),
            fetch_positions: BTreeMap::new(),
            buffer: VecDeque::new(),
            fetch: None,
            fetch_epoch: 0,
            sub: None,
            events: VecDeque::new(),
        }
    }

    /// Takes these partitions (adding to the current ones). Each starts at
    /// the group's committed offset if there is one, else per
    /// `auto_offset_reset`.
    pub async fn assign(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        let committed = match self.config.group {
            Some(_) => self.committed(partitions).await?,
            None => vec![None; partitions.len()],
        };
        let reset = match self.config.auto_offset_reset {
            OffsetReset::Earliest => SeekTo::Beginning,
            OffsetReset::Latest => SeekTo::End,
        };
        for ((topic, partition), committed) in partitions.iter().zip(committed) {
            let to = committed.map_or(reset, SeekTo::Offset);
            self.seek(topic, *partition, to).await?;
        }
        Ok(())
    }

    /// Takes every partition of `topic`; returns their indexes.
    pub async fn assign_topic(&mut self, topic: &str) -> Result<Vec<u32>> {
        let meta = Admin::new(self.client.clone())
            .describe_topic(topic)
            .await?;
        let parts: Vec<u32> = meta.partitions.iter().map(|p| p.partition).collect();
        let tps: Vec<(&str, u32)> = parts.iter().map(|p| (topic, *p)).collect();
        self.assign(&tps).await?;
        Ok(parts)
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.positions
            .keys()
            .map(|(t, p)| (t.to_string(), *p))
            .collect()
    }

    /// The next offset `poll` will return for a partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.positions.get(&(Arc::from(topic), partition)).copied()
    }

    /// Moves a partition (assigning it if needed) to `to`.
    pub async fn seek(&mut self, topic: &str, partition: u32, to: SeekTo) -> Result<()> {
        let offset = match to {
            SeekTo::Offset(o) => o,
            SeekTo::Beginning => self.list_offset(topic, partition, proto::EARLIEST).await?,
            SeekTo::End => self.list_offset(topic, partition, proto::LATEST).await?,
            SeekTo::Timestamp(ts) if ts >= 0 => {
                match self.list_offset_raw(topic, partition, ts).await? {
                    -1 => self.list_offset(topic, partition, proto::LATEST).await?,
                    o => o as u64,
                }
            }
            SeekTo::Timestamp(ts) => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("timestamp {ts} is negative"),
                ))
            }
        };
        let tp: Tp = (Arc::from(topic), partition);
        self.positions.insert(tp.clone(), offset);
        self.fetch_positions.insert(tp.clone(), offset);
        self.buffer.retain(|b| b.tp != tp);
        // Whatever is in flight was asked at the old position. Other
        // partitions lose nothing: fetch positions only advance when data
        // is buffered.
        self.fetch_epoch += 1;
        self.fetch = None;
        Ok(())
    }

    /// Every assigned partition to `to`.
    pub async fn seek_all(&mut self, to: SeekTo) -> Result<()> {
        let tps: Vec<Tp> = self.positions.keys().cloned().collect();
        for (t, p) in tps {
            self.seek(&t, p, to).await?;
        }
        Ok(())
    }

    /// Asks the partition's leader for an offset, again after a pause
    /// while the answer is retriable (a leader being elected or moving,
    /// a new topic's replicas not started yet), for up to
    /// [`LIST_OFFSETS_WITHIN`].
    async fn list_offset_raw(&self, topic: &str, partition: u32, spec: i64) -> Result<i64> {
        self.client
            .retrying(LIST_OFFSETS_WITHIN, || {
                self.list_offset_once(topic, partition, spec)
            })
            .await
    }

    async fn list_offset_once(&self, topic: &str, partition: u32, spec: i64) -> Result<i64> {
        let req = ListOffsetsRequest {
            partitions: vec![ListOffsetsPartition {
                topic: topic.to_string(),
                partition,
                spec,
            }],
        };
        let resp: ListOffsetsResponse = self
            .client
            .call_for(topic, partition, ApiKey::ListOffsets, req.encode())
            .await?;
        let r = resp
            .partitions
            .first()
            .ok_or_else(|| Error::new(ErrorKind::Protocol, "empty list offsets response"))?;
        match ErrorCode::from_u16(r.error) {
            ErrorCode::None => Ok(r.offset),
            code => Err(Error::from_code(
                code,
                format!("{topic}-{partition}: {}", code.name()),
            )),
        }
    }

    async fn list_offset(&self, topic: &str, partition: u32, spec: i64) -> Result<u64> {
        Ok(self.list_offset_raw(topic, partition, spec).await?.max(0) as u64)
    }

    fn ensure_fetch(&mut self) {
        if self.fetch.is_some() || self.fetch_positions.is_empty() {
            return;
        }
        let max_wait_ms = self
            .config
            .fetch_max_wait
            .as_millis()
            .min(u128::from(u32::MAX)) as u32;
        let (min_bytes, max_bytes) = (self.config.fetch_min_bytes, self.config.fetch_max_bytes);
        let partition_bytes = self.config.max_partition_fetch_bytes;
        let positions: Vec<(Tp, u64)> = self
            .fetch_positions
            .iter()
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        let (tx, rx) = oneshot::channel();
        let client = self.client.clone();
        tokio::spawn(async move {
            // One fetch per leader (one in all for a broker alone), all at
            // once.
            let parts = positions
                .into_iter()
                .map(|((t, p), offset)| FetchPartition {
                    topic: t.to_string(),
                    partition: p,
                    offset,
                    max_bytes: partition_bytes,
                });
            let mut groups = Vec::new();
            for (conn, partitions) in client.by_leader(parts, |p| (&p.topic, p.partition)).await {
                match conn {
                    Ok(conn) => groups.push((conn, partitions)),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            let calls: Vec<_> = groups
                .into_iter()
                .map(|(conn, partitions)| {
                    let req = FetchRequest {
                        max_wait_ms,
                        min_bytes,
                        max_bytes,
                        partitions,
                    };
                    tokio::spawn(async move {
                        let reply = conn
                            .call(ApiKey::Fetch, vec![Bytes::from(req.encode())])
                            .await?;
                        crate::reply_payload(reply)
                    })
                })
                .collect();
            let mut payloads = Vec::with_capacity(calls.len());
            for call in calls {
                match call.await {
                    Ok(Ok(payload)) => payloads.push(payload),
                    Ok(Err(e)) => {
                        if e.is_retriable() {
                            client.routes_stale();
                        }
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Error::new(ErrorKind::Other, e.to_string())));
                        return;
                    }
                }
            }
            let _ = tx.send(Ok(payloads));
        });
        self.fetch = Some(InFlight {
            rx,
            generation: self.fetch_epoch,
        });
    }

    /// Records from the assigned partitions, waiting up to `timeout` for
    /// some; empty if none came. The next fetch is already on its way when
    /// this returns. Built on the batches [`Consumer::poll_batches`] hands
    /// out: at most `max_poll_records` records are decoded from them.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if !self.wait_for_batches(timeout).await? {
            return Ok(Vec::new());
        }
        let out = self.take_records()?;
        self.ensure_fetch();
        Ok(out)
    }

    /// Whole fetched batches from the assigned partitions, as stored (CRC
    /// checked, records decoded only as [`ConsumerBatch::records`] walks
    /// them), waiting up to `timeout` for some; empty if none came. The
    /// consumer's positions move past every batch returned. This is the
    /// path for reading at the speed of the wire: no allocation per record.
    pub async fn poll_batches(&mut self, timeout: Duration) -> Result<Vec<ConsumerBatch>> {
        if !self.wait_for_batches(timeout).await? {
            return Ok(Vec::new());
        }
        let out: Vec<ConsumerBatch> = self.buffer.drain(..).collect();
        for b in &out {
            self.positions.insert(b.tp.clone(), b.next);
        }
        self.ensure_fetch();
        Ok(out)
    }

    /// Decodes up to `max_poll_records` records from the front batches; a
    /// batch taken in part stays, to go on from where this stopped.
    fn take_records(&mut self) -> Result<Vec<ConsumerRecord>> {
        let max = self.config.max_poll_records.max(1);
        let mut out = Vec::with_capacity(max.min(4096));
        while out.len() < max {
            let Some(batch) = self.buffer.front_mut() else {
                break;
            };
            let mut last = None;
            for record in batch.records()? {
                let record = record?;
                if out.len() == max {
                    break;
                }
                last = Some(record.offset as u64 + 1);
                out.push(owned(record, &batch.tp.0, batch.tp.1, &batch.decoded));
            }
            let tp = batch.tp.clone();
            let done = last.is_none_or(|next| next >= batch.next);
            if let Some(next) = last {
                batch.from = next;
            }
            if done {
                let next = batch.next;
                self.buffer.pop_front();
                self.positions.insert(tp, next);
            } else if let Some(next) = last {
                self.positions.insert(tp, next);
            }
        }
        Ok(out)
    }

    /// Waits until batches are buffered (true) or `timeout` passes (false),
    /// heartbeating and committing meanwhile if subscribed.
    async fn wait_for_batches(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            self.group_duties().await?;
            if !self.buffer.is_empty() {
                return Ok(true);
            }
            // Wake for the next heartbeat too, if that comes first.
            let wake = self
                .sub
                .as_ref()
                .map_or(deadline, |s| deadline.min(s.next_heartbeat));
            if self.fetch_positions.is_empty() {
                tokio::time::sleep_until(wake.into()).await;
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                continue;
            }
            self.ensure_fetch();
            let Some(inflight) = self.fetch.as_mut() else {
                continue;
            };
            let result = match tokio::time::timeout_at(wake.into(), &mut inflight.rx).await {
                // The fetch stays in flight for the next poll.
                Err(_) if Instant::now() >= deadline => return Ok(false),
                Err(_) => continue,
                Ok(result) => result.unwrap_or_else(|_| {
                    Err(Error::new(ErrorKind::ConnectionLost, "fetch abandoned"))
                }),
            };
            let generation = inflight.generation;
            self.fetch = None;
            if generation != self.fetch_epoch {
                continue;
            }
            let payloads = match result {
                Ok(payloads) => payloads,
                // A leader died or moved: ask again after a pause (as a Kafka
                // consumer does), within this poll's time.
                Err(e) if e.is_retriable() => {
                    self.client.routes_stale();
                    let pause = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(pause.min(NOT_LEADER_BACKOFF)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            for payload in payloads {
                self.take_fetched(payload).await?;
            }
            self.ensure_fetch();
        }
    }

    /// Joins `group` (from [`ConsumerConfig::group`]) for these topics: the
    /// group's members share their partitions, and `poll` keeps the
    /// membership alive and applies rebalances (see [`Consumer::rebalance_events`]).
    pub async fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        self.group()?;
        if topics.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "subscribe to at least one topic",
            ));
        }
        let now = Instant::now();
        let owned: Vec<Tp> = self.positions.keys().cloned().collect();
        self.drop_partitions(&owned);
        self.sub = Some(Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            member_id: String::new(),
            generation: -1,
            next_heartbeat: now,
            next_commit: now + self.config.auto_commit_interval,
        });
        self.heartbeat(false).await
    }

    /// Partitions gained and lost since the last call, oldest first.
    pub fn rebalance_events(&mut self) -> Vec<RebalanceEvent> {
        self.events.drain(..).collect()
    }

    /// The member id and generation, once the group answered.
    pub fn membership(&self) -> Option<(String, i32)> {
        self.sub
            .as_ref()
            .filter(|s| !s.member_id.is_empty())
            .map(|s| (s.member_id.clone(), s.generation))
    }

    /// Commits (with auto-commit on) and leaves the group, so the others
    /// take its partitions at once instead of after the session timeout.
    pub async fn close(mut self) -> Result<()> {
        if self.sub.is_some() {
            if self.config.auto_commit {
                self.commit().await?;
            }
            self.heartbeat(true).await?;
        }
        Ok(())
    }

    /// Heartbeats and auto-commits when they are due.
    async fn group_duties(&mut self) -> Result<()> {
        let Some(sub) = &self.sub else { return Ok(()) };
        let now = Instant::now();
        let (heartbeat_due, commit_due) = (now >= sub.next_heartbeat, now >= sub.next_commit);
        if heartbeat_due {
            self.heartbeat(false).await?;
        }
        if commit_due && self.config.auto_commit {
            if let Some(sub) = self.sub.as_mut() {
                sub.next_commit = now + self.config.auto_commit_interval;
            }
            match self.commit().await {
                Ok(()) => {}
                // A rebalance moved on: the next heartbeat catches up.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::IllegalGeneration | ErrorKind::UnknownMember
                    ) =>
                {
                    if let Some(sub) = self.sub.as_mut() {
                        sub.next_heartbeat = now;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn drop_partitions(&mut self, tps: &[Tp]) {
        for tp in tps {
            self.positions.remove(tp);
            self.fetch_positions.remove(tp);
        }
        self.buffer.retain(|b| !tps.contains(&b.tp));
        self.fetch_epoch += 1;
        self.fetch = None;
    }

    async fn heartbeat(&mut self, leave: bool) -> Result<()> {
        let group = self.group()?.to_string();
        let Some(sub) = self.sub.as_ref() else {
            return Ok(());
        };
        let req = GroupHeartbeatRequest {
            group: group.clone(),
            member_id: sub.member_id.clone(),
            topics: sub.topics.clone(),
            assignor: self.config.assignor.clone(),
            session_timeout_ms: self
                .config
                .session_timeout
                .as_millis()
                .min(u128::from(u32::MAX)) as u32,
            owned: self
                .positions
                .keys()
                .map(|(t, p)| TopicPartition {
                    topic: t.to_string(),
                    partition: *p,
                })
                .collect(),
            leave,
        };
        let resp: GroupHeartbeatResponse = match self
            .client
            .call_group(&group, ApiKey::GroupHeartbeat, req.encode())
            .await
        {
            Ok(resp) => resp,
            Err(e) if e.kind() == ErrorKind::UnknownMember => {
                // Evicted (or the broker restarted): let go of everything
                // and join again at once.
                let owned: Vec<Tp> = self.positions.keys().cloned().collect();
                self.revoke(owned, false).await;
                if let Some(sub) = self.sub.as_mut() {
                    sub.member_id.clear();
                    sub.generation = -1;
                    sub.next_heartbeat = Instant::now();
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if leave {
            let owned: Vec<Tp> = self.positions.keys().cloned().collect();
            self.drop_partitions(&owned);
            self.sub = None;
            return Ok(());
        }
        if let Some(sub) = self.sub.as_mut() {
            sub.member_id = resp.member_id;
            sub.generation = resp.generation;
            sub.next_heartbeat = Instant::now()
                + Duration::from_millis(u64::from(resp.heartbeat_interval_ms.max(10)));
        }
        let new: BTreeSet<Tp> = resp
            .assignment
            .into_iter()
            .map(|tp| (Arc::from(tp.topic.as_str()), tp.partition))
            .collect();
        let revoked: Vec<Tp> = self
            .positions
            .keys()
            .filter(|tp| !new.contains(*tp))
            .cloned()
            .collect();
        let gained: Vec<Tp> = new
            .iter()
            .filter(|tp| !self.positions.contains_key(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            let commit = self.config.auto_commit;
            self.revoke(revoked, commit).await;
            // Tell the coordinator soon that they are free.
            if let Some(sub) = self.sub.as_mut() {
                sub.next_heartbeat = Instant::now();
            }
        }
        if !gained.is_empty() {
            let tps: Vec<(&str, u32)> = gained.iter().map(|(t, p)| (&**t, *p)).collect();
            let committed = self.committed(&tps).await?;
            let reset = match self.config.auto_offset_reset {
                OffsetReset::Earliest => SeekTo::Beginning,
                OffsetReset::Latest => SeekTo::End,
            };
            for ((t, p), c) in gained.iter().zip(committed) {
                self.seek(t, *p, c.map_or(reset, SeekTo::Offset)).await?;
            }
            self.events.push_back(RebalanceEvent::Assigned(
                gained.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            ));
        }
        Ok(())
    }

    /// Lets partitions go, committing their positions first if asked.
    async fn revoke(&mut self, revoked: Vec<Tp>, commit: bool) {
        if commit {
            let offsets: Vec<(String, u32, u64)> = revoked
                .iter()
                .filter_map(|tp| self.positions.get(tp).map(|o| (tp.0.to_string(), tp.1, *o)))
                .collect();
            let refs: Vec<(&str, u32, u64)> = offsets
                .iter()
                .map(|(t, p, o)| (t.as_str(), *p, *o))
                .collect();
            // Best effort: a failed commit means the next owner re-reads
            // from the previous commit (at-least-once).
            let _ = self.commit_once(&refs).await;
        }
        self.drop_partitions(&revoked);
        self.events.push_back(RebalanceEvent::Revoked(
            revoked.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
        ));
    }

    async fn take_fetched(&mut self, payload: Bytes) -> Result<()> {
        let parts = proto::decode_fetch_response(&payload)
            .map_err(|e| Error::new(ErrorKind::Protocol, e.to_string()))?;
        for part in parts {
            let tp: Tp = (Arc::from(part.topic.as_str()), part.partition);
            let Some(&position) = self.fetch_positions.get(&tp) else {
                continue;
            };
            match part.error {
                ErrorCode::None => {}
                ErrorCode::OffsetOutOfRange => {
                    let to = match self.config.auto_offset_reset {
                        OffsetReset::Earliest => SeekTo::Beginning,
                        OffsetReset::Latest => SeekTo::End,
                    };
                    self.seek(&part.topic, part.partition, to).await?;
                    continue;
                }
                // The leader moved: ask the new one after a pause (a
                // failover takes a moment to settle).
                ErrorCode::NotLeader => {
                    self.client.routes_stale();
                    tokio::time::sleep(NOT_LEADER_BACKOFF).await;
                    continue;
                }
                code => {
                    return Err(Error::from_code(
                        code,
                        format!(
                            "fetching {}-{}: {}",
                            part.topic,
                            part.partition,
                            code.name()
                        ),
                    ))
                }
            }
            let records = payload.slice(part.records.clone());
            let next = split_batches(&tp, &records, position, &mut self.buffer)?;
            self.fetch_positions.insert(tp, next);
        }
        Ok(())
    }

    /// Commits the current positions of every assigned partition.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets: Vec<(String, u32, u64)> = self
            .positions
            .iter()
            .map(|((t, p), o)| (t.to_string(), *p, *o))
            .collect();
        let refs: Vec<(&str, u32, u64)> = offsets
            .iter()
            .map(|(t, p, o)| (t.as_str(), *p, *o))
            .collect();
        self.commit_offsets(&refs).await
    }

    fn group(&self) -> Result<&str> {
        self.config.group.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "committed offsets need a group (ConsumerConfig::group)",
            )
        })
    }

    /// Commits these offsets (each the next offset to consume) for the group.
    /// A subscribed consumer that missed a rebalance heartbeats and commits
    /// again what it still owns; `IllegalGeneration` then means those
    /// partitions moved on.
    pub async fn commit_offsets(&mut self, offsets: &[(&str, u32, u64)]) -> Result<()> {
        match self.commit_once(offsets).await {
            Err(e) if e.kind() == ErrorKind::IllegalGeneration && self.sub.is_some() => {
                self.heartbeat(false).await?;
                let still: Vec<(&str, u32, u64)> = offsets
                    .iter()
                    .filter(|(t, p, _)| self.positions.contains_key(&(Arc::from(*t), *p)))
                    .copied()
                    .collect();
                if still.is_empty() {
                    return Err(e);
                }
                self.commit_once(&still).await
            }
            other => other,
        }
    }

    async fn commit_once(&self, offsets: &[(&str, u32, u64)]) -> Result<()> {
        let (member_id, generation) = self.membership().unwrap_or((String::new(), -1));
        let req = CommitOffsetsRequest {
            group: self.group()?.to_string(),
            member_id,
            generation,
            offsets: offsets
                .iter()
                .map(|(t, p, o)| CommitOffset {
                    topic: t.to_string(),
                    partition: *p,
                    offset: *o,
                    metadata: String::new(),
                })
                .collect(),
        };
        let resp: CommitOffsetsResponse = self
            .client
            .call_group(&req.group, ApiKey::CommitOffsets, req.encode())
            .await?;
        for r in resp.results {
            let code = ErrorCode::from_u16(r.error);
            if code != ErrorCode::None {
                return Err(Error::from_code(
                    code,
                    format!("committing {}-{}: {}", r.topic, r.partition, code.name()),
                ));
            }
        }
        Ok(())
    }

    /// The group's committed offsets for these partitions.
    pub async fn committed(&self, partitions: &[(&str, u32)]) -> Result<Vec<Option<u64>>> {
        let req = FetchOffsetsRequest {
            group: self.group()?.to_string(),
            partitions: partitions
                .iter()
                .map(|(t, p)| TopicPartition {
                    topic: t.to_string(),
                    partition: *p,
                })
                .collect(),
        };
        let resp: FetchOffsetsResponse = self
            .client
            .call_group(&req.group, ApiKey::FetchOffsets, req.encode())
            .await?;
        resp.offsets
            .into_iter()
            .map(|o| match ErrorCode::from_u16(o.error) {
                ErrorCode::None => Ok((o.offset >= 0).then_some(o.offset as u64)),
                code => Err(Error::from_code(
                    code,
                    format!("{}-{}: {}", o.topic, o.partition, code.name()),
                )),
            })
            .collect()
    }
}

/// Appends the stored batches in `records` that hold offsets at or after
/// `from` to `out`, each checked (header, lengths, CRC) but not decoded;
/// returns the offset after the last batch.
fn split_batches(
    tp: &Tp,
    records: &Bytes,
    from: u64,
    out: &mut VecDeque<ConsumerBatch>,
) -> Result<u64> {
    let mut next = from;
    let mut rest = &records[..];
    while !rest.is_empty() {
        let view = BatchView::parse_crc_only(rest, usize::MAX).map_err(|e| corrupt(tp, &e))?;
        let len = view.bytes().len();
        let after = view.last_offset() as u64 + 1;
        if after > next {
            let bytes = records.slice_ref(view.bytes());
            // A compressed batch's records are decompressed once, here.
            let decoded = match view.compression() {
                0 => bytes.clone(),
                _ => Bytes::from(
                    ringlog_format::compression::decompressed_batch(&view, DECOMPRESSED_MAX)
                        .map_err(|e| corrupt(tp, &e))?
                        .into_owned(),
                ),
            };
            out.push_back(ConsumerBatch {
                tp: tp.clone(),
                bytes,
                decoded,
                from: next.max(view.base_offset() as u64),
                next: after,
            });
            next = after;
        }
        rest = &rest[len..];
    }
    Ok(next)
}

/// The most a compressed batch's records may inflate to: far past any
/// real batch, short of letting a few kilobytes exhaust memory.
const DECOMPRESSED_MAX: usize = 256 << 20;

fn corrupt(tp: &Tp, e: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::CorruptRecord,
        format!("{}-{}: fetched batch: {e}", tp.0, tp.1),
    )
}

/// One stored batch of a partition as fetched: the bytes the producer sent,
/// unchanged. Records are decoded only as [`ConsumerBatch::records`] walks
/// them, as borrowed slices of the batch.
#[derive(Debug, Clone)]
pub struct ConsumerBatch {
    tp: Tp,
    bytes: Bytes,
    /// The batch with its records uncompressed (the same bytes when they
    /// were not compressed): what records are read from.
    decoded: Bytes,
    /// First offset not yet handed out (records below it are skipped).
    from: u64,
    /// Offset after the batch's last.
    next: u64,
}

impl ConsumerBatch {
    /// Topic.
    pub fn topic(&self) -> &str {
        &self.tp.0
    }

    /// Partition.
    pub fn partition(&self) -> u32 {
        self.tp.1
    }

    /// Offset after the batch's last record: the position to commit once it
    /// is processed.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// The batch exactly as stored (Kafka RecordBatch v2).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The records at or after the consumer's position, decoded lazily
    /// (from the decompressed records for a compressed batch).
    pub fn records(&self) -> Result<impl Iterator<Item = Result<StoredRecord<'_>>> + '_> {
        let tp = &self.tp;
        // The CRC was checked when the batch was fetched; the walk still
        // checks every record's lengths against the batch.
        let view =
            BatchView::parse_crc_checked(&self.decoded, usize::MAX).map_err(|e| corrupt(tp, &e))?;
        let from = self.from;
        Ok(view
            .records()
            .map_err(|e| corrupt(tp, &e))?
            .map(move |r| r.map_err(|e| corrupt(tp, &e)))
            .filter_map(move |r| match r {
                Ok(r) if (r.offset as u64) < from => None,
                other => Some(other),
            }))
    }
}

/// An owned record whose byte fields are slices of `batch` (no copy).
fn owned(
    record: StoredRecord<'_>,
    topic: &Arc<str>,
    partition: u32,
    batch: &Bytes,
) -> ConsumerRecord {
    let slice = |s: &[u8]| batch.slice_ref(s);
    ConsumerRecord {
        topic: topic.clone(),
        partition,
        offset: record.offset as u64,
        timestamp: record.timestamp,
        key: record.key.map(slice),
        value: record.value.map(slice),
        headers: record
            .headers()
            .map(|(k, v)| (slice(k), v.map(slice)))
            .collect(),
    }
}
