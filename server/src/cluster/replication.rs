//! Replication's data path: a follower shard's fetch session with the
//! leader's matching shard over QUIC, driving the sans-I/O
//! [`Replica`] machines over engine logs. The leader sends stored batches as
//! they are; the follower appends them byte for byte
//! ([`Log::append_replica`]), reports how far it has synced in its next
//! fetch, and truncates where the leader says its log diverged.
//!
//! A session is one long-lived QUIC stream carrying frames in both
//! directions, `[header length: u32 LE][data length: u32 LE][header JSON]
//! [data]`: a request names every partition the follower fetches from this
//! leader; the answer carries each partition's verdict in the header and its
//! records, concatenated, as the data.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringlog_cluster::replica::{
    BatchMeta, FetchAnswer, FetchReply, FetchRequest, FollowerStep, Replica,
};
use ringlog_cluster::{BrokerId, Millis, ReplicaError, TopicPartition};
use ringlog_engine::batch::BatchView;
use ringlog_engine::Log;
use serde::{Deserialize, Serialize};

/// The most record bytes one partition sends in one answer.
pub const PARTITION_FETCH_BYTES: usize = 4 << 20;
/// A frame larger than this is not from a broker.
const FRAME_MAX: usize = 64 << 20;

/// One partition on this shard: its log and its replica machine.
pub struct ReplicatedLog {
    /// The partition's log.
    pub log: Log,
    /// Its replication state.
    pub replica: Replica,
}

/// A partition shared between the tasks of one shard.
pub type SharedLog = Rc<tokio::sync::Mutex<ReplicatedLog>>;

/// The replicated partitions of one shard.
pub struct ShardReplicas {
    parts: RefCell<BTreeMap<TopicPartition, SharedLog>>,
    started: Instant,
}

impl Default for ShardReplicas {
    fn default() -> Self {
        Self {
            parts: RefCell::new(BTreeMap::new()),
            started: Instant::now(),
        }
    }
}

impl ShardReplicas {
    /// Milliseconds on this shard's clock, the replicas' time.
    pub fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    /// Adds (or replaces) a partition.
    pub fn insert(&self, tp: TopicPartition, part: ReplicatedLog) -> SharedLog {
        let shared = Rc::new(tokio::sync::Mutex::new(part));
        self.parts.borrow_mut().insert(tp, shared.clone());
        shared
    }

    /// A partition.
    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        self.parts.borrow().get(tp).cloned()
    }

    fn all(&self) -> Vec<(TopicPartition, SharedLog)> {
        self.parts
            .borrow()
            .iter()
            .map(|(tp, p)| (tp.clone(), p.clone()))
            .collect()
    }
}

/// A partition's verdict in an answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Verdict {
    Records { high_watermark: u64 },
    Diverging { epoch: i32, end_offset: u64 },
    Error(ReplicaError),
}

#[derive(Serialize, Deserialize)]
struct SessionRequest {
    partitions: Vec<(TopicPartition, FetchRequest)>,
}

#[derive(Serialize, Deserialize)]
struct PartAnswer {
    partition: TopicPartition,
    seq: u64,
    verdict: Verdict,
    bytes: usize,
}

async fn write_frame(
    send: &mut quinn::SendStream,
    header: &[u8],
    data: &[u8],
) -> anyhow::Result<()> {
    let mut head = Vec::with_capacity(8 + header.len());
    head.extend_from_slice(&(header.len() as u32).to_le_bytes());
    head.extend_from_slice(&(data.len() as u32).to_le_bytes());
    head.extend_from_slice(header);
    send.write_all(&head).await?;
    send.write_all(data).await?;
    Ok(())
}

/// The next frame, or `None` when the peer finished the stream.
async fn read_frame(recv: &mut quinn::RecvStream) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut lens = [0u8; 8];
    match recv.read_exact(&mut lens).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let header_len = u32::from_le_bytes(lens[..4].try_into().expect("4 bytes")) as usize;
    let data_len = u32::from_le_bytes(lens[4..].try_into().expect("4 bytes")) as usize;
    if header_len + data_len > FRAME_MAX {
        bail!("a replication frame of {} bytes", header_len + data_len);
    }
    let mut header = vec![0; header_len];
    recv.read_exact(&mut header).await?;
    let mut data = vec![0; data_len];
    recv.read_exact(&mut data).await?;
    Ok(Some((header, data)))
}

impl ReplicatedLog {
    /// Leader side: answers one follower fetch, with the stored records.
    async fn answer(&mut self, req: &FetchRequest, now: Millis) -> (Verdict, Vec<u8>) {
        match self.replica.on_fetch(req, now) {
            FetchAnswer::Records {
                from,
                high_watermark,
            } => {
                let bytes = if from < self.log.latest() {
                    match self.log.read(from, PARTITION_FETCH_BYTES).await {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::warn!("replication read failed: {e}");
                            Vec::new()
                        }
                    }
                } else {
                    Vec::new()
                };
                (Verdict::Records { high_watermark }, bytes)
            }
            FetchAnswer::Diverging { epoch, end_offset } => {
                (Verdict::Diverging { epoch, end_offset }, Vec::new())
            }
            FetchAnswer::Error(e) => (Verdict::Error(e), Vec::new()),
        }
    }

    /// Follower side: applies the leader's answer to fetch `seq`.
    async fn apply(
        &mut self,
        seq: u64,
        verdict: &Verdict,
        bytes: &[u8],
        now: Millis,
    ) -> anyhow::Result<()> {
        // The records crossed a network: every CRC is checked before any
        // byte is stored.
        let mut slices = Vec::new();
        let mut metas = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let view = BatchView::parse_crc_only(rest, self.log.config().batch_bytes_max)
                .context("a replicated batch")?;
            let base = view.base_offset() as u64;
            metas.push(BatchMeta {
                base_offset: base,
                end_offset: base + view.offset_count(),
                leader_epoch: view.header().partition_leader_epoch.get(),
            });
            slices.push(view.bytes());
            rest = &rest[view.bytes().len()..];
        }
        let reply = match verdict {
            Verdict::Records { high_watermark } => FetchReply::Records {
                high_watermark: *high_watermark,
                batches: metas.clone(),
            },
            Verdict::Diverging { epoch, end_offset } => FetchReply::Diverging {
                epoch: *epoch,
                end_offset: *end_offset,
            },
            Verdict::Error(e) => FetchReply::Error(*e),
        };
        match self.replica.on_fetch_reply(seq, &reply, now) {
            FollowerStep::Ignore => {}
            FollowerStep::Truncate(to) => {
                tracing::info!(to, "truncating a diverged tail");
                self.log.truncate_to(to).await?;
            }
            FollowerStep::Append => {
                let mut last = None;
                for slice in slices {
                    last = Some(self.log.append_replica(slice.to_vec()).await?);
                }
                let Verdict::Records { high_watermark } = verdict else {
                    unreachable!("only records are appended")
                };
                self.replica
                    .follower_appended(seq, &metas, *high_watermark, now);
                if let Some(appended) = last {
                    let end = appended.last_offset + 1;
                    appended.durable.wait().await?;
                    self.replica.durable_to(end, now);
                }
            }
        }
        Ok(())
    }
}

/// Leader side: serves one follower shard's fetch session until it ends.
pub async fn serve_session(
    replicas: Rc<ShardReplicas>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> anyhow::Result<()> {
    while let Some((header, _)) = read_frame(&mut recv).await? {
        let request: SessionRequest = serde_json::from_slice(&header)?;
        let mut answers = Vec::with_capacity(request.partitions.len());
        let mut data = Vec::new();
        for (tp, req) in request.partitions {
            let (verdict, bytes) = match replicas.get(&tp) {
                Some(part) => {
                    let now = replicas.now();
                    part.lock().await.answer(&req, now).await
                }
                None => (Verdict::Error(ReplicaError::NotLeader), Vec::new()),
            };
            answers.push(PartAnswer {
                partition: tp,
                seq: req.seq,
                verdict,
                bytes: bytes.len(),
            });
            data.extend_from_slice(&bytes);
        }
        write_frame(&mut send, &serde_json::to_vec(&answers)?, &data).await?;
    }
    Ok(())
}

/// Follower side: fetches every partition of this shard that `leader`
/// leads, over one session on `conn`, until the connection fails.
pub async fn run_session(
    replicas: Rc<ShardReplicas>,
    conn: quinn::Connection,
    leader: BrokerId,
) -> anyhow::Result<()> {
    let (mut send, mut recv) = conn.open_bi().await?;
    loop {
        let now = replicas.now();
        let mut due = Vec::new();
        for (tp, part) in replicas.all() {
            let mut part = part.lock().await;
            if part.replica.fetch_leader() != Some(leader) {
                continue;
            }
            if let Some((_, req)) = part.replica.poll_fetch(now) {
                due.push((tp, req));
            }
        }
        if due.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let request = SessionRequest { partitions: due };
        write_frame(&mut send, &serde_json::to_vec(&request)?, &[]).await?;
        let Some((header, data)) = read_frame(&mut recv).await? else {
            bail!("the leader ended the session");
        };
        let answers: Vec<PartAnswer> = serde_json::from_slice(&header)?;
        let mut at: usize = 0;
        for answer in answers {
            let end = at
                .checked_add(answer.bytes)
                .context("an answer longer than its frame")?;
            let bytes = data
                .get(at..end)
                .context("an answer shorter than its header says")?;
            at = end;
            if let Some(part) = replicas.get(&answer.partition) {
                let now = replicas.now();
                part.lock()
                    .await
                    .apply(answer.seq, &answer.verdict, bytes, now)
                    .await?;
            }
        }
    }
}
