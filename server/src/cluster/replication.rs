//! Replication's data path: a follower shard's fetch session with the
//! leader's matching shard over QUIC. Each side's partitions keep their own
//! [`ringlog_cluster::replica::Replica`] machine inside their task
//! (`crate::partition`); a session only carries their fetches and answers.
//! The leader sends stored batches as they are; the follower appends them
//! byte for byte, reports how far it has synced in its next fetch, and
//! truncates where the leader says its log diverged.
//!
//! A session is one long-lived QUIC stream per (follower shard, leader
//! broker), opened with [`Kind::Replication`] and the shard index, carrying
//! frames in both directions, `[header length: u32 LE][data length: u32
//! LE][header JSON][data]`: a request names every partition the follower
//! fetches from this leader; the answer carries each partition's verdict in
//! the header and its records, concatenated, as the data. The leader holds
//! a request that finds nothing new for up to its `max_wait_ms` (a long
//! poll), so an idle session costs nothing and new data leaves at once.

use std::rc::Rc;
use std::time::Duration;

use anyhow::bail;
use bytes::BytesMut;
use ringlog_cluster::replica::FetchRequest;
use ringlog_cluster::{BrokerId, ReplicaError, TopicPartition};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::raft::Kind;
use crate::partition::PartCmd;
use crate::shard::Shard;

/// The most record bytes one partition sends in one answer.
pub const PARTITION_FETCH_BYTES: usize = 4 << 20;
/// A frame larger than this is not from a broker.
const FRAME_MAX: usize = 64 << 20;
/// How long a leader holds a fetch that finds nothing new.
const LONG_POLL: Duration = Duration::from_millis(250);
/// How long a follower shard waits before asking its partitions again when
/// none had a fetch due.
const IDLE: Duration = Duration::from_millis(5);
/// Pause after a session failed (the leader is down or unreachable).
const RECONNECT: Duration = Duration::from_millis(200);

/// A partition's verdict in an answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Verdict {
    /// Records (in the data, possibly none) and the leader's high watermark.
    Records {
        /// The leader's high watermark.
        high_watermark: u64,
    },
    /// The follower's log diverged (see
    /// [`ringlog_cluster::replica::FetchAnswer::Diverging`]).
    Diverging {
        /// The leader's epoch at or below the follower's last one.
        epoch: i32,
        /// Where it ends in the leader's log.
        end_offset: u64,
    },
    /// Refused.
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

/// Writes one frame whose data is `data`'s pieces, in order (each
/// partition's records as read, not gathered into one buffer first).
async fn write_frame(
    send: &mut quinn::SendStream,
    header: &[u8],
    data: &[&[u8]],
) -> anyhow::Result<()> {
    let data_len: usize = data.iter().map(|d| d.len()).sum();
    let mut head = Vec::with_capacity(8 + header.len());
    head.extend_from_slice(&(header.len() as u32).to_le_bytes());
    head.extend_from_slice(&(data_len as u32).to_le_bytes());
    head.extend_from_slice(header);
    send.write_all(&head).await?;
    for piece in data {
        send.write_all(piece).await?;
    }
    Ok(())
}

/// The next frame, or `None` when the peer finished the stream. The data
/// comes in one buffer that each partition's records are split from
/// without copying, down to the appends.
async fn read_frame(recv: &mut quinn::RecvStream) -> anyhow::Result<Option<(Vec<u8>, BytesMut)>> {
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
    let mut data = BytesMut::zeroed(data_len);
    recv.read_exact(&mut data).await?;
    Ok(Some((header, data)))
}

/// Asks one partition of this shard; `None` if it is not open here.
async fn ask<T>(
    shard: &Shard,
    tp: &TopicPartition,
    make: impl FnOnce(oneshot::Sender<T>) -> PartCmd,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    shard.deliver(&tp.topic, tp.partition, make(reply)).await;
    answer.await.ok()
}

/// Leader side: serves one follower shard's fetch session until it ends.
pub async fn serve_session(
    shard: Rc<Shard>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> anyhow::Result<()> {
    while let Some((header, _)) = read_frame(&mut recv).await? {
        let request: SessionRequest = serde_json::from_slice(&header)?;
        let mut answers = Vec::with_capacity(request.partitions.len());
        let mut parts = Vec::with_capacity(request.partitions.len());
        for (tp, req) in request.partitions {
            let (seq, from, epoch) = (req.seq, req.fetch_offset, req.leader_epoch);
            let (verdict, bytes) = ask(&shard, &tp, |reply| PartCmd::ReplicaFetch { req, reply })
                .await
                .unwrap_or((Verdict::Error(ReplicaError::NotLeader), Vec::new()));
            parts.push((tp, seq, from, epoch, verdict, bytes));
        }
        // Nothing new anywhere: hold the request until a partition grows.
        let idle = parts
            .iter()
            .all(|(.., v, b)| matches!(v, Verdict::Records { .. }) && b.is_empty());
        if idle && !parts.is_empty() {
            let (notify, mut grown) = mpsc::channel(1);
            for (tp, _, from, ..) in &parts {
                let cmd = PartCmd::WaitAppended {
                    offset: *from,
                    notify: notify.clone(),
                };
                shard.deliver(&tp.topic, tp.partition, cmd).await;
            }
            drop(notify);
            let _ = tokio::time::timeout(LONG_POLL, grown.recv()).await;
            // Closing the receiver ends every partition's wait.
            drop(grown);
            for (tp, _, from, epoch, _, bytes) in &mut parts {
                let (from, leader_epoch) = (*from, *epoch);
                *bytes = ask(&shard, tp, |reply| PartCmd::ReplicaRead {
                    from,
                    leader_epoch,
                    reply,
                })
                .await
                .unwrap_or_default();
            }
        }
        let mut data = Vec::with_capacity(parts.len());
        for (tp, seq, _, _, verdict, bytes) in parts {
            answers.push(PartAnswer {
                partition: tp,
                seq,
                verdict,
                bytes: bytes.len(),
            });
            data.push(bytes);
        }
        let pieces: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        write_frame(&mut send, &serde_json::to_vec(&answers)?, &pieces).await?;
    }
    Ok(())
}

/// Follower side: for as long as the shard runs, fetches every partition
/// of this shard that `leader` leads, over one session at a time,
/// reconnecting after a failure.
pub async fn follow(shard: Rc<Shard>, leader: BrokerId) {
    let Some(node) = shard.shared.cluster.clone() else {
        return;
    };
    let mut shutdown = shard.shutdown.clone();
    loop {
        let session = async {
            let conn = node.connection(leader).await?;
            run_session(&shard, conn, leader).await
        };
        tokio::select! {
            result = session => {
                if let Err(e) = result {
                    tracing::debug!(shard = shard.id, leader, "replication session ended: {e:#}");
                }
            }
            _ = shutdown.wait_for(|s| *s) => return,
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

async fn run_session(
    shard: &Rc<Shard>,
    conn: quinn::Connection,
    leader: BrokerId,
) -> anyhow::Result<()> {
    let mut stream: Option<(quinn::SendStream, quinn::RecvStream)> = None;
    loop {
        let mut due = Vec::new();
        for tp in shard.replicated_partitions() {
            if let Some(Some(req)) =
                ask(shard, &tp, |reply| PartCmd::PollFetch { leader, reply }).await
            {
                due.push((tp, req));
            }
        }
        if due.is_empty() {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        // The stream opens with the first fetch: a follower with nothing to
        // fetch from this leader holds no stream there.
        if stream.is_none() {
            let (mut send, recv) = conn.open_bi().await?;
            send.write_all(&[Kind::Replication as u8]).await?;
            send.write_all(&(shard.id as u32).to_le_bytes()).await?;
            stream = Some((send, recv));
        }
        let (send, recv) = stream.as_mut().expect("opened above");
        let request = SessionRequest { partitions: due };
        write_frame(send, &serde_json::to_vec(&request)?, &[]).await?;
        let Some((header, mut data)) = read_frame(recv).await? else {
            bail!("the leader ended the session");
        };
        let answers: Vec<PartAnswer> = serde_json::from_slice(&header)?;
        for answer in answers {
            if answer.bytes > data.len() {
                bail!("an answer shorter than its header says");
            }
            let bytes = data.split_to(answer.bytes);
            let PartAnswer {
                partition,
                seq,
                verdict,
                ..
            } = answer;
            let applied = ask(shard, &partition, |reply| PartCmd::ApplyFetch {
                seq,
                verdict,
                bytes,
                reply,
            })
            .await;
            if let Some(Err(e)) = applied {
                tracing::warn!(%partition, "applying the leader's records failed: {e}");
            }
        }
    }
}
