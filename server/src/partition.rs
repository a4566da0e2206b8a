//! One partition, served by a task on its owning shard.
//!
//! The task owns the partition's [`Log`] outright and takes commands from a
//! bounded channel, so nothing else ever touches the log and no lock guards
//! it. An append returns as soon as its write is submitted; the wait for
//! durability and the reply run in a task of their own, so appends to one
//! partition pipeline (up to the engine's writes-in-flight limit).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ringlog_cluster::controller::{Applied, Command, CommandError};
use ringlog_cluster::replica::{
    BatchMeta, FetchAnswer, FetchReply, FetchRequest as ReplicaFetchRequest, FollowerStep,
    LogState, Output, Replica, ReplicaConfig,
};
use ringlog_cluster::{BrokerId, PartitionState, ReplicaError};
use ringlog_engine::batch::{self, BatchError, BatchHeader, BatchView};
use ringlog_engine::compact;
use ringlog_engine::{Error as EngineError, FileRange, Log, RecoveryReport, Stored};
use ringlog_protocol::{CommitOffset, ErrorCode, TopicPartition, EARLIEST, LATEST};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};

use crate::catalog::{Topic, OFFSETS_TOPIC};
use crate::classic_group::code::NOT_COORDINATOR;
use crate::cluster::agent::ClusterNode;
use crate::cluster::replication::{Verdict, PARTITION_FETCH_BYTES};
use crate::metrics::{Metrics, PartitionLabels};
use crate::producer_state;

/// Commands a partition's task takes.
pub enum PartCmd {
    /// Append batches (each a slice of the frame they arrived in).
    Produce {
        /// The batches, in order.
        batches: Vec<BytesMut>,
        /// Longest wait for durability before answering Timeout.
        timeout: Duration,
        /// `acks=all`: answer once the in-sync replicas hold the batches.
        acks_all: bool,
        /// Store them only if the log ends here (a conditional produce).
        if_end: Option<u64>,
        /// Where the outcome goes.
        reply: oneshot::Sender<ProduceOutcome>,
    },
    /// Read stored batches from `offset`.
    Fetch {
        /// First offset wanted.
        offset: u64,
        /// Most bytes (at least one batch is returned).
        max_bytes: usize,
        /// Set when the answer may be sent with sendfile.
        sendfile: Option<Sendfile>,
        /// Where the outcome goes.
        reply: oneshot::Sender<FetchOutcome>,
    },
    /// Answer once the log end is past `offset`; dropped if the asker gives up.
    Wait {
        /// The offset the asker wants to read.
        offset: u64,
        /// Fired when there is data at `offset`.
        reply: oneshot::Sender<()>,
    },
    /// Earliest, latest or first offset at a timestamp.
    ListOffset {
        /// [`EARLIEST`], [`LATEST`] or a timestamp.
        spec: i64,
        /// The offset (-1 for none) or a failure.
        reply: oneshot::Sender<Result<i64, Failure>>,
    },
    /// Log start and end offsets.
    Offsets {
        /// `(start, end)`.
        reply: oneshot::Sender<(u64, u64)>,
    },
    /// Store committed offsets (offsets partitions only).
    Commit {
        /// Group name.
        group: String,
        /// Committing member (empty for a standalone consumer).
        member_id: String,
        /// Its generation, or -1 for a standalone consumer.
        generation: i32,
        /// The offsets.
        offsets: Vec<CommitOffset>,
        /// Success or why not.
        reply: oneshot::Sender<Result<(), Failure>>,
    },
    /// Read committed offsets (offsets partitions only).
    Committed {
        /// Group name.
        group: String,
        /// Partitions asked about.
        partitions: Vec<TopicPartition>,
        /// One offset (-1 for none) and its metadata per partition, or why
        /// not (this replica does not coordinate the group now).
        reply: oneshot::Sender<Result<Vec<(i64, String)>, Failure>>,
    },
    /// A consumer group heartbeat (offsets partitions only).
    GroupHeartbeat {
        /// The request.
        req: ringlog_protocol::GroupHeartbeatRequest,
        /// Partition count of every topic.
        partitions: std::collections::BTreeMap<String, u32>,
        /// The member's assignment, or why not.
        reply: oneshot::Sender<Result<ringlog_protocol::GroupHeartbeatResponse, Failure>>,
    },
    /// Names of this partition's groups.
    ListGroups {
        /// The names.
        reply: oneshot::Sender<Vec<String>>,
    },
    /// A group's state and committed offsets.
    DescribeGroup {
        /// Group name.
        group: String,
        /// The description (generation 0 and no members if unknown), or
        /// why not.
        reply: oneshot::Sender<Result<ringlog_protocol::DescribeGroupResponse, Failure>>,
    },
    /// A request of Kafka's classic group protocol (offsets partitions
    /// only).
    KafkaGroup {
        /// Group name.
        group: String,
        /// The request, with where its answer goes.
        op: ClassicOp,
    },
    /// Delete segments past retention.
    Retention,
    /// Take the topic's altered settings (retention, compaction).
    Reconfigure {
        /// The topic as it now is.
        topic: Arc<Topic>,
        /// Fired when applied.
        done: oneshot::Sender<()>,
    },
    /// A compacted log: what a clean would read now (`None`: nothing to do).
    PlanClean {
        /// How the clean runs.
        options: ringlog_engine::CleanOptions,
        /// The plan.
        reply: oneshot::Sender<Option<ringlog_engine::compact::CleanPlan>>,
    },
    /// Swap a clean prepared off the partition's task into its log.
    InstallClean {
        /// The cleaned segments, written (boxed: a big, rare message).
        prepared: Box<ringlog_engine::compact::Prepared>,
        /// Fired when it is installed (or refused).
        reply: oneshot::Sender<()>,
    },
    /// Re-read up to `bytes` of sealed segments from where the last step
    /// stopped, checking every CRC (the sendfile path does not).
    Scrub {
        /// Most bytes to read.
        bytes: usize,
        /// Fired when the step is done.
        done: oneshot::Sender<()>,
    },
    /// Cluster mode: the controller's state of this partition, and the
    /// epoch this broker registered with.
    ClusterState {
        /// The partition's state.
        state: PartitionState,
        /// This broker's epoch.
        broker_epoch: u64,
    },
    /// Follower: the fetch due to `leader` now, if any.
    PollFetch {
        /// The leader a session fetches from.
        leader: BrokerId,
        /// The fetch, or `None`.
        reply: oneshot::Sender<Option<ReplicaFetchRequest>>,
    },
    /// Follower: the leader's answer to fetch `seq`.
    ApplyFetch {
        /// The fetch answered.
        seq: u64,
        /// The leader's verdict.
        verdict: Verdict,
        /// The records, as the leader stores them.
        bytes: BytesMut,
        /// Done, or why the records could not be stored.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Leader: a follower's fetch.
    ReplicaFetch {
        /// The fetch.
        req: ReplicaFetchRequest,
        /// The verdict and the records to send.
        reply: oneshot::Sender<(Verdict, Vec<u8>)>,
    },
    /// Leader: the records from `from`, if this broker still leads under
    /// `leader_epoch` (a long-polled fetch's records).
    ReplicaRead {
        /// First offset.
        from: u64,
        /// The epoch the fetch was answered under.
        leader_epoch: i32,
        /// The records (none if leadership moved).
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// Leader: a message on `notify` once the log holds records at
    /// `offset`; given up when `notify`'s receiver is gone.
    WaitAppended {
        /// The offset a follower fetches from.
        offset: u64,
        /// Where to say so.
        notify: mpsc::Sender<()>,
    },
    /// Sync and close the log, deleting its files if `delete`.
    Close {
        /// Remove the partition's directory after closing.
        delete: bool,
        /// Fired when done.
        reply: oneshot::Sender<()>,
    },
}

/// A failure to report for a partition: its code and a message.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Code sent to the client.
    pub code: ErrorCode,
    /// Detail.
    pub message: String,
}

impl Failure {
    /// A failure with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// What a produce did for one partition.
#[derive(Debug, Clone)]
pub struct ProduceOutcome {
    /// Base offset of each batch stored (or, for a duplicate, first stored).
    pub base_offsets: Vec<u64>,
    /// Why the batches after the stored ones were not stored.
    pub failure: Option<Failure>,
}

/// Leave to a fetch command to answer with a range of the segment file.
#[derive(Debug)]
pub struct Sendfile {
    /// Answers this large or larger stay in the file; smaller ones are read
    /// and CRC-checked.
    pub min_bytes: usize,
    /// The descriptor budget's permit, which a file answer keeps until it
    /// is sent.
    pub permit: OwnedSemaphorePermit,
}

/// Stored batches a fetch found in one partition.
#[derive(Debug)]
pub enum Answer {
    /// Read and CRC-checked.
    Read(Vec<u8>),
    /// Left in the segment file, with the permit for its descriptor.
    File(FileRange, OwnedSemaphorePermit),
}

impl Answer {
    /// Bytes of stored batches.
    pub fn len(&self) -> usize {
        match self {
            Answer::Read(b) => b.len(),
            Answer::File(r, _) => r.len,
        }
    }

    /// Whether it holds no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a fetch read from one partition.
#[derive(Debug)]
pub struct FetchOutcome {
    /// Stored batches, or why not.
    pub result: Result<Answer, Failure>,
    /// Log start offset.
    pub log_start: u64,
    /// Log end offset.
    pub log_end: u64,
}

impl FetchOutcome {
    /// The outcome of a fetch that read nothing, and why.
    pub fn failed(failure: Failure) -> FetchOutcome {
        FetchOutcome {
            result: Err(failure),
            log_start: 0,
            log_end: 0,
        }
    }
}

/// A classic-group request and where its answer goes.
pub enum ClassicOp {
    /// JoinGroup.
    Join {
        /// The request.
        join: crate::classic_group::Join,
        /// The answer, when the join phase ends.
        reply: oneshot::Sender<crate::classic_group::Joined>,
    },
    /// SyncGroup.
    Sync {
        /// The member's generation.
        generation: i32,
        /// The member.
        member_id: String,
        /// From the leader: each member's assignment.
        assignments: Vec<(String, bytes::Bytes)>,
        /// Kafka error code and this member's assignment.
        reply: oneshot::Sender<(i16, bytes::Bytes)>,
    },
    /// Heartbeat.
    Heartbeat {
        /// The member's generation.
        generation: i32,
        /// The member.
        member_id: String,
        /// Kafka error code.
        reply: oneshot::Sender<i16>,
    },
    /// LeaveGroup.
    Leave {
        /// The members leaving.
        member_ids: Vec<String>,
        /// A Kafka error code per member.
        reply: oneshot::Sender<Vec<i16>>,
    },
    /// DescribeGroups: the group, if it is a classic one here.
    Describe {
        /// Its description.
        reply: oneshot::Sender<Option<crate::classic_group::Described>>,
    },
}

impl ClassicOp {
    /// Answers with Kafka error `code` without running it.
    fn fail(self, code: i16) {
        match self {
            ClassicOp::Join { join, reply } => {
                let _ = reply.send(crate::classic_group::Joined {
                    error: code,
                    generation: -1,
                    member_id: join.member_id,
                    ..Default::default()
                });
            }
            ClassicOp::Sync { reply, .. } => {
                let _ = reply.send((code, bytes::Bytes::new()));
            }
            ClassicOp::Heartbeat { reply, .. } => {
                let _ = reply.send(code);
            }
            ClassicOp::Leave { member_ids, reply } => {
                let _ = reply.send(vec![code; member_ids.len()]);
            }
            ClassicOp::Describe { .. } => {}
        }
    }
}

impl PartCmd {
    /// Answers the command with `failure` without running it (the partition
    /// is gone or unreachable).
    pub fn fail(self, failure: Failure) {
        match self {
            PartCmd::Produce { reply, .. } => {
                let _ = reply.send(ProduceOutcome {
                    base_offsets: Vec::new(),
                    failure: Some(failure),
                });
            }
            PartCmd::Fetch { reply, .. } => {
                let _ = reply.send(FetchOutcome::failed(failure));
            }
            PartCmd::ListOffset { reply, .. } => {
                let _ = reply.send(Err(failure));
            }
            PartCmd::Commit { reply, .. } => {
                let _ = reply.send(Err(failure));
            }
            PartCmd::GroupHeartbeat { reply, .. } => {
                let _ = reply.send(Err(failure));
            }
            PartCmd::Committed { reply, .. } => {
                let _ = reply.send(Err(failure));
            }
            PartCmd::DescribeGroup { reply, .. } => {
                let _ = reply.send(Err(failure));
            }
            PartCmd::ListGroups { .. } => {}
            PartCmd::KafkaGroup { op, .. } => op.fail(NOT_COORDINATOR),
            // Dropping the reply tells the asker there is no answer.
            PartCmd::Wait { .. }
            | PartCmd::Offsets { .. }
            | PartCmd::Retention
            | PartCmd::PlanClean { .. }
            | PartCmd::Scrub { .. } => {}
            PartCmd::InstallClean { reply, .. } | PartCmd::Reconfigure { done: reply, .. } => {
                let _ = reply.send(());
            }
            PartCmd::Close { reply, .. } => {
                let _ = reply.send(());
            }
            PartCmd::ApplyFetch { reply, .. } => {
                let _ = reply.send(Err(failure.message));
            }
            PartCmd::ReplicaFetch { reply, .. } => {
                let _ = reply.send((Verdict::Error(ReplicaError::NotLeader), Vec::new()));
            }
            PartCmd::ClusterState { .. }
            | PartCmd::PollFetch { .. }
            | PartCmd::ReplicaRead { .. }
            | PartCmd::WaitAppended { .. } => {}
        }
    }
}

/// The whole batches at the start of `bytes`, by their headers alone: each
/// one's end offset (one past its last) and the byte length up to its end.
fn batch_ends(bytes: &[u8]) -> impl Iterator<Item = (u64, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = &bytes[at..];
        let (header, size) = batch::peek(rest, usize::MAX).ok()?;
        if size > rest.len() {
            return None;
        }
        at += size;
        let end = header.base_offset.get() as u64 + header.last_offset_delta.get() as u64 + 1;
        Some((end, at))
    })
}

/// The offset after the last whole batch in `bytes`, if any.
fn next_offset_after(bytes: &[u8]) -> Option<u64> {
    batch_ends(bytes).last().map(|(end, _)| end)
}

/// Maps an engine error to what the client is told.
pub fn engine_failure(e: &EngineError) -> Failure {
    let code = match e {
        EngineError::InvalidBatch(BatchError::TooLarge { .. }) => ErrorCode::BatchTooLarge,
        EngineError::InvalidBatch(_) | EngineError::TrailingBytes(_) => ErrorCode::CorruptBatch,
        EngineError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        EngineError::Corrupt { .. } | EngineError::Failed(_) | EngineError::Io { .. } => {
            ErrorCode::StorageError
        }
        EngineError::Config(_) => ErrorCode::InvalidTopicConfig,
        // Only replication appends a leader's batches; no client gets here.
        EngineError::NotContiguous { .. } => ErrorCode::StorageError,
    };
    Failure::new(code, e.to_string())
}

/// The sending side of a partition's task.
#[derive(Clone)]
pub struct PartitionHandle {
    tx: mpsc::Sender<PartCmd>,
}

impl PartitionHandle {
    /// Syncs and closes the log (deleting its files if `delete`) and waits
    /// for it.
    pub async fn close(&self, delete: bool) {
        let (reply, done) = oneshot::channel();
        self.send(PartCmd::Close { delete, reply }).await;
        let _ = done.await;
    }

    /// Queues a command (waiting while the partition's queue is full).
    pub async fn send(&self, cmd: PartCmd) {
        if let Err(mpsc::error::SendError(cmd)) = self.tx.send(cmd).await {
            cmd.fail(Failure::new(
                ErrorCode::UnknownTopic,
                "the partition was closed",
            ));
        }
    }
}

/// How often a coordinator looks for members whose session ran out.
const GROUP_TICK: Duration = Duration::from_millis(100);
/// Commands a partition's queue holds before senders wait.
const QUEUE_DEPTH: usize = 1024;
/// Idempotence refusals are logged at most this often per partition.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);
/// Batches per producer remembered for duplicate detection (Kafka's 5).
const PRODUCER_WINDOW: usize = 5;
/// Bytes of commit records per batch (well under the 8 MiB batch limit).
const COMMIT_BATCH_BYTES: usize = 1 << 20;

/// How long a commit may take to become durable (and replicated), as
/// Kafka's `offsets.commit.timeout.ms` bounds it.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a producer-state or offsets rebuild reads at a time.
const REBUILD_READ_BYTES: usize = 1 << 20;

/// How often a replica checks its followers' lag and its lease.
const REPLICA_TICK: Duration = Duration::from_millis(100);

/// Opens (recovering) a partition's log and starts its task; with `cluster`,
/// the partition is a replica driven by the controller's state.
pub async fn open(
    data_dir: &Path,
    topic: Arc<Topic>,
    partition: u32,
    shard: usize,
    metrics: Arc<Metrics>,
    write_mode: ringlog_engine::WriteMode,
    cluster: Option<Arc<ClusterNode>>,
) -> Result<(PartitionHandle, RecoveryReport), EngineError> {
    let dir = Topic::partition_dir(data_dir, &topic.name, partition);
    let config = ringlog_engine::LogConfig {
        write_mode,
        ..topic.log.clone()
    };
    let (log, report) = Log::open(&dir, config).await?;
    let (internal, internal_rx) = mpsc::unbounded_channel();
    let replication = cluster.map(|node| Replication {
        node,
        partition: ringlog_cluster::TopicPartition::new(topic.name.clone(), partition),
        replica: None,
        broker_epoch: 0,
        waiters: HashMap::new(),
        next_token: 0,
        internal,
        appended: Rc::new(watch::channel(log.latest()).0),
    });
    // A replica's consumers read below the high watermark, which its
    // replication sets; alone, everything durable is readable.
    let visible = if replication.is_some() {
        0
    } else {
        log.latest()
    };
    let mut state = State {
        labels: PartitionLabels {
            topic: topic.name.clone(),
            partition,
            shard: shard as u32,
        },
        end: Rc::new(watch::channel(visible).0),
        replication,
        producers: HashMap::new(),
        committed: None,
        groups: crate::group::Groups::default(),
        classic: crate::classic_group::ClassicGroups::default(),
        metrics,
        log: Some(log),
        refusal_logged_at: None,
        refusals_unlogged: 0,
        scrub_next: 0,
        damaged: false,
    };
    state.rebuild(topic.name == OFFSETS_TOPIC).await?;
    state.publish_offsets();
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    tokio_uring::spawn(state.run(rx, internal_rx));
    Ok((PartitionHandle { tx }, report))
}

#[derive(Debug, Clone, Copy)]
struct SentBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
}

#[derive(Debug, Default)]
struct ProducerState {
    epoch: i16,
    recent: VecDeque<SentBatch>,
}

enum Idempotence {
    /// Not from an idempotent producer, or the next in sequence.
    Append,
    /// Already stored at this base offset.
    Duplicate(u64),
}

type CommitKey = (String, String, u32);
/// A committed offset and the metadata committed with it.
type CommitValue = (u64, String);

/// What a replica's own helpers tell its task.
enum Internal {
    /// Appends up to `end` are durable here; with `wait`, answer it once
    /// the in-sync replicas hold them too (`acks=all`).
    Durable {
        end: u64,
        wait: Option<oneshot::Sender<Result<(), ReplicaError>>>,
    },
    /// The controller answered the ISR change based on this partition
    /// epoch.
    AlterIsrReply {
        base_partition_epoch: i32,
        result: Result<PartitionState, CommandError>,
    },
}

/// A replicated partition's replication state (cluster mode).
struct Replication {
    node: Arc<ClusterNode>,
    partition: ringlog_cluster::TopicPartition,
    /// Made once this broker's epoch is known.
    replica: Option<Replica>,
    broker_epoch: u64,
    /// `acks=all` producers waiting, by token.
    waiters: HashMap<u64, oneshot::Sender<Result<(), ReplicaError>>>,
    next_token: u64,
    internal: mpsc::UnboundedSender<Internal>,
    /// The log end durable here: followers' long polls wait on it.
    appended: Rc<watch::Sender<u64>>,
}

impl Replication {
    /// The replica, with this broker's lease for its epoch brought up to
    /// date, and the time; `None` until the broker's epoch is known.
    fn replica_now(&mut self) -> Option<(&mut Replica, ringlog_cluster::Millis)> {
        let now = self.node.now();
        let lease = self.node.lease_until(self.broker_epoch);
        let replica = self.replica.as_mut()?;
        replica.set_lease(lease, now);
        Some((replica, now))
    }
}

/// What a producer is told when the replica refuses.
fn replica_failure(partition: &ringlog_cluster::TopicPartition, e: ReplicaError) -> Failure {
    match e {
        ReplicaError::NotEnoughReplicas => Failure::new(
            ErrorCode::NotEnoughReplicas,
            format!(
                "{partition}: fewer replicas in sync than min.insync.replicas; nothing written"
            ),
        ),
        ReplicaError::NotEnoughReplicasAfterAppend => Failure::new(
            ErrorCode::NotEnoughReplicasAfterAppend,
            format!(
                "{partition}: the in-sync replicas fell below min.insync.replicas before the \
                 write was replicated; it may be stored"
            ),
        ),
        other => Failure::new(
            ErrorCode::NotLeader,
            format!("{partition}: this broker does not lead it now ({other:?})"),
        ),
    }
}

/// The whole batches of `bytes` that end at or below `limit`.
fn batches_below(mut bytes: Vec<u8>, limit: u64) -> Vec<u8> {
    let keep = batch_ends(&bytes)
        .take_while(|(end, _)| *end <= limit)
        .last()
        .map_or(0, |(_, len)| len);
    bytes.truncate(keep);
    bytes
}

struct State {
    labels: PartitionLabels,
    /// What consumers may read below (the durable log end alone, the high
    /// watermark in a cluster): fetch long polls wait on it.
    end: Rc<watch::Sender<u64>>,
    /// Cluster mode: this replica's replication.
    replication: Option<Replication>,
    producers: HashMap<i64, ProducerState>,
    /// Committed offsets, for partitions of the offsets topic.
    committed: Option<HashMap<CommitKey, CommitValue>>,
    /// Consumer groups coordinated here (offsets partitions only).
    groups: crate::group::Groups,
    /// Kafka classic-protocol groups coordinated here.
    classic: crate::classic_group::ClassicGroups,
    metrics: Arc<Metrics>,
    /// Taken on close.
    log: Option<Log>,
    /// When an idempotence refusal was last logged, and refusals since.
    refusal_logged_at: Option<std::time::Instant>,
    refusals_unlogged: u64,
    /// The offset the scrubber reads next.
    scrub_next: u64,
    /// The scrubber found a damaged batch: every fetch is read and checked
    /// from now on, so the damage is refused instead of sent.
    damaged: bool,
}

fn seq_after(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

fn last_seq(h: &BatchHeader) -> i32 {
    let sum = i64::from(h.base_sequence.get()) + i64::from(h.last_offset_delta.get());
    (sum % (i64::from(i32::MAX) + 1)) as i32
}

impl State {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<PartCmd>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        // Offsets partitions coordinate groups: evict silent members.
        let mut tick = tokio::time::interval(GROUP_TICK);
        let coordinator = self.committed.is_some();
        let mut replica_tick = tokio::time::interval(REPLICA_TICK);
        let replicated = self.replication.is_some();
        loop {
            let cmd = tokio::select! {
                cmd = rx.recv() => cmd,
                _ = tick.tick(), if coordinator => {
                    let now = std::time::Instant::now();
                    for evicted in self.groups.expire(now).into_iter().chain(self.classic.tick(now)) {
                        tracing::info!(member = %evicted, "session timed out: member evicted");
                    }
                    continue;
                }
                Some(message) = internal.recv(), if replicated => {
                    self.internal(message).await;
                    continue;
                }
                _ = replica_tick.tick(), if replicated => {
                    self.replica_tick().await;
                    continue;
                }
            };
            let Some(cmd) = cmd else { break };
            let Some(log) = self.log.as_mut() else {
                cmd.fail(Failure::new(
                    ErrorCode::UnknownTopic,
                    "the partition was closed",
                ));
                continue;
            };
            match cmd {
                PartCmd::Produce {
                    if_end: Some(expected),
                    reply,
                    ..
                } if log.next_offset() != expected => {
                    let _ = reply.send(ProduceOutcome {
                        base_offsets: Vec::new(),
                        failure: Some(Failure::new(
                            ErrorCode::EndOffsetMoved,
                            format!(
                                "the log ends at {}, not {expected}: nothing stored",
                                log.next_offset()
                            ),
                        )),
                    });
                }
                PartCmd::Produce {
                    batches,
                    timeout,
                    acks_all,
                    reply,
                    ..
                } => self.produce(batches, timeout, acks_all, reply).await,
                PartCmd::Fetch {
                    offset,
                    max_bytes,
                    reply,
                    ..
                } if self.replication.is_some() => {
                    let outcome = self.replica_consumer_fetch(offset, max_bytes).await;
                    let _ = reply.send(outcome);
                }
                PartCmd::Fetch {
                    offset,
                    max_bytes,
                    sendfile,
                    reply,
                } => {
                    let result = match sendfile {
                        Some(Sendfile { min_bytes, permit }) if !self.damaged => log
                            .locate(offset, max_bytes, min_bytes)
                            .await
                            .map(|stored| match stored {
                                Stored::Bytes(b) => Answer::Read(b),
                                Stored::File(r) => Answer::File(r, permit),
                            }),
                        _ => log.read(offset, max_bytes).await.map(Answer::Read),
                    }
                    .map_err(|e| engine_failure(&e));
                    if let Ok(answer) = &result {
                        self.metrics.partition_bytes_out(&self.labels, answer.len());
                    }
                    let _ = reply.send(FetchOutcome {
                        result,
                        log_start: log.earliest(),
                        log_end: log.latest(),
                    });
                }
                PartCmd::Wait { offset, reply } => {
                    let mut end = self.end.subscribe();
                    let mut reply = reply;
                    tokio_uring::spawn(async move {
                        tokio::select! {
                            ready = end.wait_for(|e| *e > offset) => if ready.is_ok() {
                                let _ = reply.send(());
                            },
                            () = reply.closed() => {}
                        }
                    });
                }
                PartCmd::ListOffset { reply, .. } if !serves_clients(&self.replication) => {
                    let _ = reply.send(Err(replica_failure(
                        &tp_of(&self.labels),
                        ReplicaError::NotLeader,
                    )));
                }
                PartCmd::ListOffset { spec, reply } => {
                    let answer = match spec {
                        EARLIEST => Ok(log.earliest() as i64),
                        LATEST => {
                            Ok(readable_end(self.replication.is_some(), &self.end, log) as i64)
                        }
                        ts if ts >= 0 => log
                            .offset_for_timestamp(ts)
                            .await
                            .map(|o| o.map_or(-1, |o| o as i64))
                            .map_err(|e| engine_failure(&e)),
                        other => Err(Failure::new(
                            ErrorCode::InvalidRequest,
                            format!("offset spec {other} is not -2, -1 or a timestamp"),
                        )),
                    };
                    let _ = reply.send(answer);
                }
                PartCmd::Offsets { reply } => {
                    let _ = reply.send((
                        log.earliest(),
                        readable_end(self.replication.is_some(), &self.end, log),
                    ));
                }
                PartCmd::ClusterState {
                    state,
                    broker_epoch,
                } => self.cluster_state(state, broker_epoch).await,
                PartCmd::PollFetch { leader, reply } => {
                    let _ = reply.send(self.poll_fetch(leader));
                }
                PartCmd::ApplyFetch {
                    seq,
                    verdict,
                    bytes,
                    reply,
                } => {
                    let _ = reply.send(self.apply_fetch(seq, verdict, bytes).await);
                }
                PartCmd::ReplicaFetch { req, reply } => {
                    let _ = reply.send(self.replica_fetch(req).await);
                }
                PartCmd::ReplicaRead {
                    from,
                    leader_epoch,
                    reply,
                } => {
                    let _ = reply.send(self.replica_read(from, leader_epoch).await);
                }
                PartCmd::WaitAppended { offset, notify } => self.wait_appended(offset, notify),
                // A group's coordinator is the leader of its offsets
                // partition: a follower's view of the group is not current.
                PartCmd::KafkaGroup { op, .. } if !serves_clients(&self.replication) => {
                    op.fail(NOT_COORDINATOR)
                }
                PartCmd::KafkaGroup { group, op } => self.kafka_group(group, op),
                cmd @ (PartCmd::Commit { .. }
                | PartCmd::Committed { .. }
                | PartCmd::GroupHeartbeat { .. }
                | PartCmd::DescribeGroup { .. })
                    if !serves_clients(&self.replication) =>
                {
                    cmd.fail(Failure::new(
                        ErrorCode::NotLeader,
                        format!(
                            "this broker does not lead {}-{} now, so it does not coordinate its \
                             groups: ask its leader",
                            self.labels.topic, self.labels.partition
                        ),
                    ));
                }
                PartCmd::Commit {
                    group,
                    member_id,
                    generation,
                    offsets,
                    reply,
                } => match self.check_commit(&group, &member_id, generation) {
                    Ok(()) => self.commit(group, offsets, reply).await,
                    Err(f) => {
                        let _ = reply.send(Err(f));
                    }
                },
                PartCmd::GroupHeartbeat {
                    req,
                    partitions,
                    reply,
                } => {
                    let now = std::time::Instant::now();
                    let answer = if self.classic.has(&req.group) {
                        Err(Failure::new(
                            ErrorCode::InvalidRequest,
                            format!(
                                "group {:?} is a Kafka consumer group: native consumers cannot join it",
                                req.group
                            ),
                        ))
                    } else {
                        self.groups.heartbeat(req, &partitions, now)
                    };
                    let _ = reply.send(answer);
                }
                PartCmd::ListGroups { reply } => {
                    let mut names = self.groups.names();
                    names.extend(self.classic.names());
                    let _ = reply.send(names);
                }
                PartCmd::DescribeGroup { group, reply } => {
                    let (generation, assignor, members) =
                        self.groups
                            .describe(&group)
                            .unwrap_or((0, String::new(), Vec::new()));
                    let mut offsets: Vec<CommitOffset> = self
                        .committed
                        .iter()
                        .flatten()
                        .filter(|((g, _, _), _)| *g == group)
                        .map(|((_, topic, partition), (offset, metadata))| CommitOffset {
                            topic: topic.clone(),
                            partition: *partition,
                            offset: *offset,
                            metadata: metadata.clone(),
                        })
                        .collect();
                    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                    let _ = reply.send(Ok(ringlog_protocol::DescribeGroupResponse {
                        group,
                        generation,
                        assignor,
                        members,
                        offsets,
                    }));
                }
                PartCmd::Committed {
                    group,
                    partitions,
                    reply,
                } => {
                    let map = self.committed.as_ref();
                    let answer = partitions
                        .into_iter()
                        .map(|tp| {
                            map.and_then(|m| m.get(&(group.clone(), tp.topic, tp.partition)))
                                .map_or((-1, String::new()), |(o, m)| (*o as i64, m.clone()))
                        })
                        .collect();
                    let _ = reply.send(Ok(answer));
                }
                PartCmd::Scrub { bytes, done } => {
                    self.scrub(bytes).await;
                    let _ = done.send(());
                }
                PartCmd::Retention => {
                    let now = now_ms();
                    match log.apply_retention(now).await {
                        Ok(r) if !r.deleted_segments.is_empty() => tracing::info!(
                            topic = %self.labels.topic,
                            partition = self.labels.partition,
                            segments = r.deleted_segments.len(),
                            bytes = r.bytes_deleted,
                            log_start = r.log_start_offset,
                            "retention deleted segments"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::error!(
                            topic = %self.labels.topic,
                            partition = self.labels.partition,
                            "retention failed: {e}"
                        ),
                    }
                    self.publish_offsets();
                }
                PartCmd::Reconfigure { topic, done } => {
                    log.reconfigure(&topic.log);
                    let _ = done.send(());
                }
                PartCmd::PlanClean { options, reply } => {
                    let plan = match log.plan_clean(now_ms(), options).await {
                        Ok(plan) => plan,
                        Err(e) => {
                            tracing::error!(
                                topic = %self.labels.topic,
                                partition = self.labels.partition,
                                "planning a clean failed: {e}"
                            );
                            None
                        }
                    };
                    let _ = reply.send(plan);
                }
                PartCmd::InstallClean { prepared, reply } => {
                    match log.install(*prepared).await {
                        Ok(r) if r.cleaned_below > 0 => tracing::info!(
                            topic = %self.labels.topic,
                            partition = self.labels.partition,
                            cleaned_below = r.cleaned_below,
                            bytes_read = r.bytes_read,
                            bytes_written = r.bytes_written,
                            superseded = r.records_superseded,
                            tombstones = r.tombstones_removed,
                            segments = r.segments_after,
                            "log cleaned"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::error!(
                            topic = %self.labels.topic,
                            partition = self.labels.partition,
                            "installing a clean failed: {e}"
                        ),
                    }
                    self.publish_offsets();
                    let _ = reply.send(());
                }
                PartCmd::Close { delete, reply } => {
                    self.close(delete).await;
                    let _ = reply.send(());
                    break;
                }
            }
        }
        // Every sender is gone (or Close ran): make sure the log is closed.
        self.close(false).await;
    }

    /// Runs a Kafka classic-group request; a group is one protocol or the
    /// other.
    fn kafka_group(&mut self, group: String, op: ClassicOp) {
        if self.groups.describe(&group).is_some() {
            op.fail(crate::classic_group::code::INCONSISTENT_GROUP_PROTOCOL);
            return;
        }
        let now = std::time::Instant::now();
        match op {
            ClassicOp::Join { join, reply } => self.classic.join(&group, join, reply, now),
            ClassicOp::Sync {
                generation,
                member_id,
                assignments,
                reply,
            } => self
                .classic
                .sync(&group, generation, &member_id, assignments, reply, now),
            ClassicOp::Heartbeat {
                generation,
                member_id,
                reply,
            } => {
                let _ = reply.send(self.classic.heartbeat(&group, generation, &member_id, now));
            }
            ClassicOp::Leave { member_ids, reply } => {
                let _ = reply.send(self.classic.leave(&group, &member_ids, now));
            }
            ClassicOp::Describe { reply } => {
                let _ = reply.send(self.classic.describe(&group));
            }
        }
    }

    /// Whether a commit comes from a current member of its group (any
    /// commit of a standalone consumer, generation < 0, does).
    fn check_commit(&self, group: &str, member_id: &str, generation: i32) -> Result<(), Failure> {
        use crate::classic_group::code;
        if !self.classic.has(group) {
            return self.groups.check_commit(group, member_id, generation);
        }
        match self.classic.check_commit(group, member_id, generation) {
            code::NONE => Ok(()),
            code::UNKNOWN_MEMBER_ID => Err(Failure::new(
                ErrorCode::UnknownMember,
                format!("group {group:?} has no member {member_id:?}"),
            )),
            // A rebalance under way makes the generation stale too.
            _ => Err(Failure::new(
                ErrorCode::IllegalGeneration,
                format!("generation {generation} of group {group:?} is not current"),
            )),
        }
    }

    async fn close(&mut self, delete: bool) {
        let Some(log) = self.log.take() else { return };
        let dir = log.dir().to_path_buf();
        let end = log.latest();
        match log.close().await {
            Err(e) => tracing::error!(dir = %dir.display(), "closing the log failed: {e}"),
            // Only a log closed cleanly (synced) is covered by a snapshot.
            Ok(()) if !delete => self.write_snapshot_in(&dir, end),
            Ok(()) => {}
        }
        self.metrics.forget_partition(&self.labels);
        if delete {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::error!(dir = %dir.display(), "deleting the partition failed: {e}");
            }
        }
    }

    /// One scrub step: reads (and so CRC-checks) up to `bytes` of sealed
    /// segments from `scrub_next`, starting over at the log start past the
    /// last sealed segment. The active segment is left to recovery, which
    /// checks what a crash left of it.
    async fn scrub(&mut self, bytes: usize) {
        let Some(log) = self.log.as_ref() else {
            return;
        };
        let bases = log.segment_bases();
        let Some(&active_base) = bases.last() else {
            return;
        };
        if self.scrub_next < log.earliest() || self.scrub_next >= active_base {
            self.scrub_next = log.earliest();
        }
        if self.scrub_next >= active_base {
            return;
        }
        match log.read(self.scrub_next, bytes).await {
            Ok(read) => {
                self.metrics
                    .partition_scrubbed(&self.labels, read.len(), false);
                match next_offset_after(&read) {
                    Some(next) => self.scrub_next = next,
                    None => self.scrub_next = active_base,
                }
            }
            Err(e @ EngineError::Corrupt { .. }) => {
                self.metrics.partition_scrubbed(&self.labels, 0, true);
                if !self.damaged {
                    tracing::error!(
                        topic = %self.labels.topic,
                        partition = self.labels.partition,
                        "scrub found a damaged batch; this partition's fetches are now read \
                         and checked, and the damaged batch is refused: {e}"
                    );
                }
                self.damaged = true;
                // Go on with the next segment: the damage blocks this one.
                self.scrub_next = bases
                    .iter()
                    .copied()
                    .find(|&b| b > self.scrub_next)
                    .unwrap_or(active_base);
            }
            Err(e) => tracing::warn!(
                topic = %self.labels.topic,
                partition = self.labels.partition,
                "scrub read failed: {e}"
            ),
        }
    }

    fn publish_offsets(&self) {
        if let Some(log) = &self.log {
            self.metrics
                .partition_offsets(&self.labels, log.earliest(), log.latest());
        }
    }

    /// Checks an idempotent producer's batch against what it sent before.
    /// A batch to append is validated whole by the engine's append, so its
    /// CRC is checked here only when the verdict rests on its header alone
    /// (a duplicate or a refusal): no header field is trusted before its CRC.
    fn idempotence(
        &self,
        batch: &[u8],
        header: Option<&BatchHeader>,
        max: usize,
    ) -> Result<Idempotence, Failure> {
        let verdict = match header {
            Some(h) if h.producer_id.get() >= 0 => self.sequence_verdict(h),
            // Not idempotent, or malformed: the engine's validation reports it.
            _ => return Ok(Idempotence::Append),
        };
        if matches!(verdict, Ok(Idempotence::Append)) {
            return verdict;
        }
        BatchView::parse(batch, max).map_err(|e| engine_failure(&EngineError::InvalidBatch(e)))?;
        verdict
    }

    fn sequence_verdict(&self, h: &BatchHeader) -> Result<Idempotence, Failure> {
        let (epoch, first) = (h.producer_epoch.get(), h.base_sequence.get());
        let Some(state) = self.producers.get(&h.producer_id.get()) else {
            // Unknown producer (new, or its state aged out with retention).
            return Ok(Idempotence::Append);
        };
        if epoch < state.epoch {
            return Err(Failure::new(
                ErrorCode::InvalidProducerEpoch,
                format!("producer epoch {epoch} is older than {}", state.epoch),
            ));
        }
        if epoch > state.epoch {
            return if first == 0 {
                Ok(Idempotence::Append)
            } else {
                Err(Failure::new(
                    ErrorCode::OutOfOrderSequence,
                    format!("a new producer epoch must start at sequence 0, not {first}"),
                ))
            };
        }
        if let Some(sent) = state
            .recent
            .iter()
            .find(|s| s.first_seq == first && s.last_seq == last_seq(h))
        {
            return Ok(Idempotence::Duplicate(sent.base_offset));
        }
        let expected = state.recent.back().map_or(first, |s| seq_after(s.last_seq));
        if first != expected {
            return Err(Failure::new(
                ErrorCode::OutOfOrderSequence,
                format!("sequence {first} received, {expected} expected"),
            ));
        }
        Ok(Idempotence::Append)
    }

    /// Snapshots the idempotent producers' state as of `end_offset`, which
    /// must be synced, replacing the last snapshot. Not for the offsets
    /// topic, which rebuilds from its whole log.
    fn write_snapshot(&self, end_offset: u64) {
        if let Some(dir) = self.log.as_ref().map(|l| l.dir().to_path_buf()) {
            self.write_snapshot_in(&dir, end_offset);
        }
    }

    fn write_snapshot_in(&self, dir: &Path, end_offset: u64) {
        if self.committed.is_some() {
            return;
        }
        let path = dir.join(producer_state::SNAPSHOT_FILE);
        let bytes = producer_state::encode(&self.snapshot(end_offset));
        if let Err(e) = crate::catalog::write_durably(&path, &bytes) {
            tracing::warn!(path = %path.display(), "writing the producer-state snapshot: {e}");
        }
    }

    /// Idempotent producers' state as of `end_offset`, for a snapshot.
    fn snapshot(&self, end_offset: u64) -> producer_state::Snapshot {
        producer_state::Snapshot {
            end_offset,
            producers: self
                .producers
                .iter()
                .map(|(id, p)| producer_state::Producer {
                    producer_id: *id,
                    epoch: p.epoch,
                    batches: p
                        .recent
                        .iter()
                        .map(|b| producer_state::Batch {
                            first_seq: b.first_seq,
                            last_seq: b.last_seq,
                            base_offset: b.base_offset,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Says at info why an idempotent batch was refused, at most once a
    /// second per partition (with how many refusals that second hid), so a
    /// producer stuck on refusals leaves its cause in the log.
    fn log_refusal(&mut self, h: Option<&BatchHeader>, f: &Failure) {
        let now = std::time::Instant::now();
        self.refusals_unlogged += 1;
        if self
            .refusal_logged_at
            .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_EVERY)
        {
            return;
        }
        let (pid, epoch, first, last) = h.map_or((-1, -1, -1, -1), |h| {
            (
                h.producer_id.get(),
                h.producer_epoch.get(),
                h.base_sequence.get(),
                last_seq(h),
            )
        });
        let recent = self.producers.get(&pid).map(|s| {
            s.recent
                .iter()
                .map(|b| format!("{}..={}", b.first_seq, b.last_seq))
                .collect::<Vec<_>>()
                .join(",")
        });
        tracing::info!(
            topic = %self.labels.topic,
            partition = self.labels.partition,
            producer_id = pid,
            producer_epoch = epoch,
            sequences = %format!("{first}..={last}"),
            recent = recent.as_deref().unwrap_or("none"),
            refusals = self.refusals_unlogged,
            "idempotent batch refused: {}",
            f.message
        );
        self.refusal_logged_at = Some(now);
        self.refusals_unlogged = 0;
    }

    /// Remembers an idempotent batch's sequence range once it is stored.
    fn remember(&mut self, h: &BatchHeader, base_offset: u64) {
        let pid = h.producer_id.get();
        if pid < 0 {
            return;
        }
        let state = self.producers.entry(pid).or_default();
        if h.producer_epoch.get() != state.epoch {
            state.epoch = h.producer_epoch.get();
            state.recent.clear();
        }
        if state.recent.len() == PRODUCER_WINDOW {
            state.recent.pop_front();
        }
        state.recent.push_back(SentBatch {
            first_seq: h.base_sequence.get(),
            last_seq: last_seq(h),
            base_offset,
        });
    }

    async fn produce(
        &mut self,
        batches: Vec<BytesMut>,
        timeout: Duration,
        acks_all: bool,
        reply: oneshot::Sender<ProduceOutcome>,
    ) {
        // A replica appends only as the leader, stamping its epoch.
        let leader_epoch = match self.leader_check(acks_all) {
            Ok(epoch) => epoch,
            Err(failure) => {
                let _ = reply.send(ProduceOutcome {
                    base_offsets: Vec::new(),
                    failure: Some(failure),
                });
                return;
            }
        };
        let mut base_offsets = Vec::with_capacity(batches.len());
        let mut tickets = Vec::with_capacity(batches.len());
        // Ends of duplicates' originals: a duplicate is acknowledged only once
        // its original is as durable as a new append would have to be (the
        // original may still sit in a write buffer that a crash loses).
        let mut duplicate_ends: Vec<u64> = Vec::new();
        let mut failure = None;
        let bytes: usize = batches.iter().map(|b| b.len()).sum();
        // Kafka refuses a keyless record on a compacted topic, and with it
        // the partition's whole request: nothing of it is stored.
        let compacted = self
            .log
            .as_ref()
            .is_some_and(|l| l.config().compaction.is_some());
        if compacted {
            if let Some(record) = batches.iter().find_map(|b| compact::first_keyless(b)) {
                let _ = reply.send(ProduceOutcome {
                    base_offsets: Vec::new(),
                    failure: Some(Failure::new(
                        ErrorCode::InvalidRecord,
                        format!(
                            "record {record} of a batch has no key: a compacted topic keeps the \
                             latest record per key, and takes only records with one"
                        ),
                    )),
                });
                return;
            }
        }
        for batch in batches {
            let Some(max) = self.log.as_ref().map(|l| l.config().batch_bytes_max) else {
                break;
            };
            let peeked = batch::peek(&batch, max);
            // A length past the data sent is a corrupt batch, not a big one.
            if let Err(BatchError::TooLarge { size, .. }) = peeked {
                if size > batch.len() {
                    failure = Some(Failure::new(
                        ErrorCode::CorruptBatch,
                        format!("batch declares {size} bytes but {} were sent", batch.len()),
                    ));
                    break;
                }
            }
            let header = peeked.ok().map(|(h, _)| *h);
            match self.idempotence(&batch, header.as_ref(), max) {
                Ok(Idempotence::Duplicate(offset)) => {
                    base_offsets.push(offset);
                    let count = header.map_or(1, |h| h.last_offset_delta.get().max(0) as u64 + 1);
                    duplicate_ends.push(offset + count);
                    continue;
                }
                Ok(Idempotence::Append) => {}
                Err(f) => {
                    self.log_refusal(header.as_ref(), &f);
                    failure = Some(f);
                    break;
                }
            }
            // An offsets partition's map of commits follows its log.
            let commits = match self.committed {
                Some(_) => commits_in(&batch, max),
                None => Vec::new(),
            };
            let Some(log) = self.log.as_mut() else { break };
            let active_before = log.active_base();
            match log.append(batch, leader_epoch).await {
                Ok(appended) => {
                    if let Some(map) = self.committed.as_mut() {
                        map.extend(commits);
                    }
                    if let Some(replica) =
                        self.replication.as_mut().and_then(|r| r.replica.as_mut())
                    {
                        replica.leader_appended(appended.last_offset + 1);
                    }
                    if log.active_base() != active_before {
                        // The log rolled before this batch, and the roll
                        // synced everything before it: the state as of
                        // that point is what a start after a crash
                        // replays from (as Kafka snapshots at roll).
                        self.write_snapshot(appended.base_offset);
                    }
                    if let Some(h) = header {
                        self.remember(&h, appended.base_offset);
                    }
                    base_offsets.push(appended.base_offset);
                    tickets.push((appended.last_offset, appended.durable));
                }
                Err(e) => {
                    failure = Some(engine_failure(&e));
                    break;
                }
            }
        }
        self.metrics.partition_bytes_in(&self.labels, bytes);
        let end = self.end.clone();
        let metrics = self.metrics.clone();
        let labels = self.labels.clone();
        let start = self.log.as_ref().map_or(0, |l| l.earliest());
        let internal = self.replication.as_ref().map(|r| r.internal.clone());
        tokio_uring::spawn(async move {
            let mut stored_end = None;
            for (last, durable) in tickets {
                match tokio::time::timeout(timeout, durable.wait()).await {
                    Ok(Ok(())) => stored_end = Some(last + 1),
                    Ok(Err(e)) => {
                        failure = Some(engine_failure(&e));
                        break;
                    }
                    Err(_) => {
                        failure = Some(Failure::new(
                            ErrorCode::Timeout,
                            format!("not durable within {timeout:?}; it may still be stored"),
                        ));
                        break;
                    }
                }
            }
            match (stored_end, internal) {
                // A replica: the high watermark decides what is readable
                // and when an acks=all write is acknowledged.
                (Some(new_end), Some(internal)) => {
                    let (wait, replicated) = if acks_all {
                        let (tx, rx) = oneshot::channel();
                        (Some(tx), Some(rx))
                    } else {
                        (None, None)
                    };
                    let _ = internal.send(Internal::Durable { end: new_end, wait });
                    if let Some(replicated) = replicated {
                        match tokio::time::timeout(timeout, replicated).await {
                            Ok(Ok(Ok(()))) => {}
                            Ok(Ok(Err(e))) => failure = Some(replica_failure(&tp_of(&labels), e)),
                            Ok(Err(_)) => {
                                failure =
                                    Some(replica_failure(&tp_of(&labels), ReplicaError::NotLeader))
                            }
                            Err(_) => {
                                failure = Some(Failure::new(
                                    ErrorCode::Timeout,
                                    format!(
                                        "not replicated within {timeout:?}; it may still be stored"
                                    ),
                                ))
                            }
                        }
                    }
                }
                (Some(new_end), None) => {
                    raise(&end, new_end);
                    metrics.partition_offsets(&labels, start, *end.borrow());
                }
                (None, _) => {}
            }
            if failure.is_none() {
                if let Some(&needed) = duplicate_ends.iter().max() {
                    let mut durable_end = end.subscribe();
                    let reached =
                        tokio::time::timeout(timeout, durable_end.wait_for(|e| *e >= needed)).await;
                    if !matches!(reached, Ok(Ok(_))) {
                        failure = Some(Failure::new(
                            ErrorCode::Timeout,
                            format!(
                                "a retried batch's original is not durable within {timeout:?}; it may still be stored"
                            ),
                        ));
                    }
                }
            }
            let _ = reply.send(ProduceOutcome {
                base_offsets,
                failure,
            });
        });
    }

    /// Rebuilds idempotent producers' recent batches from the last
    /// snapshot and the log after it (the active segment without one), and
    /// committed offsets from the whole log of an offsets partition.
    async fn rebuild(&mut self, offsets: bool) -> Result<(), EngineError> {
        let Some(log) = self.log.as_ref() else {
            return Ok(());
        };
        let from = if offsets {
            self.committed = Some(HashMap::new());
            log.earliest()
        } else {
            match load_snapshot(log) {
                Some((end, producers)) => {
                    self.producers = producers;
                    end
                }
                None => log.active_base(),
            }
        };
        let max = log.config().batch_bytes_max;
        let mut offset = from.max(log.earliest());
        let mut seen: Vec<(BatchHeader, u64)> = Vec::new();
        let mut commits: Vec<(CommitKey, CommitValue)> = Vec::new();
        while offset < log.latest() {
            let bytes = log.read(offset, REBUILD_READ_BYTES).await?;
            let mut rest = &bytes[..];
            let before = offset;
            while !rest.is_empty() {
                let view = BatchView::parse_crc_only(rest, max)?;
                let h = *view.header();
                offset = offset.max((view.last_offset() + 1) as u64);
                if offsets {
                    commits.extend(commits_in(view.bytes(), max));
                } else {
                    seen.push((h, view.base_offset() as u64));
                }
                rest = &rest[view.bytes().len()..];
            }
            if offset == before {
                break;
            }
        }
        for (h, base) in seen {
            self.remember(&h, base);
        }
        if let Some(map) = self.committed.as_mut() {
            map.extend(commits);
        }
        Ok(())
    }

    /// Stores a group's commits as records of its offsets partition,
    /// through the produce path: in a cluster they are stamped with the
    /// leader epoch and answered once the in-sync replicas hold them, as
    /// an `acks=all` write. The map of committed offsets follows the log
    /// (see [`commits_in`]).
    async fn commit(
        &mut self,
        group: String,
        offsets: Vec<CommitOffset>,
        reply: oneshot::Sender<Result<(), Failure>>,
    ) {
        if self.committed.is_none() {
            let _ = reply.send(Err(Failure::new(
                ErrorCode::InvalidRequest,
                "not an offsets partition",
            )));
            return;
        }
        let records: Vec<(Vec<u8>, Vec<u8>)> = offsets
            .iter()
            .map(|c| {
                (
                    commit_key(&group, &c.topic, c.partition),
                    commit_value(c.offset, &c.metadata),
                )
            })
            .collect();
        let batches = match commit_batches(&records) {
            Ok(batches) => batches,
            Err(f) => {
                let _ = reply.send(Err(f));
                return;
            }
        };
        let (tx, rx) = oneshot::channel();
        self.produce(batches, COMMIT_TIMEOUT, true, tx).await;
        tokio_uring::spawn(async move {
            let result = match rx.await {
                Ok(ProduceOutcome { failure: None, .. }) => Ok(()),
                Ok(ProduceOutcome {
                    failure: Some(f), ..
                }) => Err(f),
                Err(_) => Err(Failure::new(ErrorCode::ShuttingDown, "stopped")),
            };
            let _ = reply.send(result);
        });
    }
}

/// Moves an offset watch forward to `to` (never back), waking its waiters
/// only when it moved.
fn raise(watch: &watch::Sender<u64>, to: u64) {
    watch.send_if_modified(|e| {
        let advanced = to > *e;
        *e = (*e).max(to);
        advanced
    });
}

/// What consumers may read below: the high watermark of a replica, the
/// log end otherwise.
fn readable_end(replicated: bool, end: &watch::Sender<u64>, log: &Log) -> u64 {
    if replicated {
        *end.borrow()
    } else {
        log.latest()
    }
}

/// Whether clients may read a partition here: alone always, in a cluster
/// on the leader only.
fn serves_clients(replication: &Option<Replication>) -> bool {
    replication
        .as_ref()
        .is_none_or(|r| r.replica.as_ref().is_some_and(Replica::is_leader))
}

fn tp_of(labels: &PartitionLabels) -> ringlog_cluster::TopicPartition {
    ringlog_cluster::TopicPartition::new(labels.topic.clone(), labels.partition)
}

/// Cluster mode: the partition as a replica, driving its
/// [`Replica`] machine with the log it owns.
impl State {
    /// The leader epoch to stamp, or why this replica may not append now.
    fn leader_check(&mut self, acks_all: bool) -> Result<i32, Failure> {
        let Some(r) = self.replication.as_mut() else {
            return Ok(0);
        };
        let Some((replica, now)) = r.replica_now() else {
            return Err(replica_failure(
                &tp_of(&self.labels),
                ReplicaError::NotLeader,
            ));
        };
        replica
            .check_produce(acks_all, now)
            .map_err(|e| replica_failure(&tp_of(&self.labels), e))?;
        Ok(replica.leader_epoch())
    }

    async fn internal(&mut self, message: Internal) {
        let Some(r) = self.replication.as_mut() else {
            return;
        };
        let now = r.node.now();
        match message {
            Internal::Durable { end, wait } => {
                raise(&r.appended, end);
                match r.replica.as_mut() {
                    Some(replica) => {
                        replica.durable_to(end, now);
                        if let Some(wait) = wait {
                            let token = r.next_token;
                            r.next_token += 1;
                            r.waiters.insert(token, wait);
                            replica.wait_for(end, token, now);
                        }
                    }
                    None => {
                        if let Some(wait) = wait {
                            let _ = wait.send(Err(ReplicaError::NotLeader));
                        }
                    }
                }
            }
            Internal::AlterIsrReply {
                base_partition_epoch,
                result,
            } => {
                if let Some(replica) = r.replica.as_mut() {
                    replica.on_alter_isr_reply(base_partition_epoch, result, now);
                }
            }
        }
        self.drive().await;
    }

    async fn replica_tick(&mut self) {
        if let Some((replica, now)) = self.replication.as_mut().and_then(Replication::replica_now) {
            replica.tick(now);
        }
        self.drive().await;
    }

    /// Carries out what the replica machine asks: acknowledgements, ISR
    /// changes for the controller, the epoch cache, and the high watermark
    /// consumers see.
    async fn drive(&mut self) {
        let Some(r) = self.replication.as_mut() else {
            return;
        };
        let now = r.node.now();
        let Some(replica) = r.replica.as_mut() else {
            return;
        };
        let mut epochs_changed = false;
        while let Some(output) = replica.poll_output() {
            match output {
                Output::Acked(token) => {
                    if let Some(w) = r.waiters.remove(&token) {
                        let _ = w.send(Ok(()));
                    }
                }
                Output::Failed(token, e) => {
                    if let Some(w) = r.waiters.remove(&token) {
                        let _ = w.send(Err(e));
                    }
                }
                Output::AlterIsr(command) => {
                    let Command::AlterIsr {
                        partition_epoch, ..
                    } = &command
                    else {
                        continue;
                    };
                    let base_partition_epoch = *partition_epoch;
                    let node = r.node.clone();
                    let internal = r.internal.clone();
                    tokio_uring::spawn(async move {
                        match node.submit(command).await {
                            Ok(reply) => {
                                let result = reply.0.and_then(|applied| match applied {
                                    Applied::IsrChanged(state) => Ok(state),
                                    other => Err(CommandError::Invalid(format!(
                                        "an ISR change answered with {other:?}"
                                    ))),
                                });
                                let _ = internal.send(Internal::AlterIsrReply {
                                    base_partition_epoch,
                                    result,
                                });
                            }
                            // Unanswered: the replica sends it again.
                            Err(e) => tracing::debug!("an ISR change was not answered: {e:#}"),
                        }
                    });
                }
                Output::EpochsChanged => epochs_changed = true,
            }
        }
        if let Some(hw) = replica.exposed_high_watermark(now) {
            raise(&self.end, hw);
        }
        // A new leader's epoch starts at its log end before anything is
        // appended under it (followers' epochs come with their batches).
        let latest = replica.epochs().latest().filter(|_| replica.is_leader());
        if let (true, Some(entry), Some(log)) = (epochs_changed, latest, self.log.as_mut()) {
            if let Err(e) = log.assign_epoch(entry.epoch, entry.start_offset).await {
                tracing::error!(partition = %r.partition, "persisting the leader epoch failed: {e}");
            }
        }
        if let Some(log) = self.log.as_ref() {
            self.metrics
                .partition_offsets(&self.labels, log.earliest(), *self.end.borrow());
        }
    }

    async fn cluster_state(&mut self, state: PartitionState, broker_epoch: u64) {
        let (Some(r), Some(log)) = (self.replication.as_mut(), self.log.as_mut()) else {
            return;
        };
        if r.replica.is_none() || r.broker_epoch != broker_epoch {
            // A new incarnation in the cluster's eyes: a fresh replica over
            // the log as it is, everything in it synced first.
            for (_, w) in r.waiters.drain() {
                let _ = w.send(Err(ReplicaError::NotLeader));
            }
            if let Err(e) = log.sync().await {
                tracing::error!(partition = %r.partition, "syncing before replicating failed: {e}");
                return;
            }
            let config = ReplicaConfig {
                lag_max: r.node.config().replica_lag_max_ms,
                ..ReplicaConfig::default()
            };
            let log_state = LogState {
                log_start: log.earliest(),
                log_end: log.latest(),
                durable: log.latest(),
                high_watermark: 0,
                epochs: log.epochs().clone(),
            };
            r.replica = Some(Replica::new(
                r.partition.clone(),
                r.node.config().node_id,
                broker_epoch,
                config,
                log_state,
            ));
            r.broker_epoch = broker_epoch;
        }
        if let Some((replica, now)) = r.replica_now() {
            replica.apply_state(&state, now);
            // Groups are coordinated by the leader alone, in memory: their
            // members join the next leader, which has their commits.
            if !replica.is_leader() {
                self.groups = crate::group::Groups::default();
            }
        }
        self.drive().await;
    }

    fn poll_fetch(&mut self, leader: BrokerId) -> Option<ReplicaFetchRequest> {
        let r = self.replication.as_mut()?;
        let replica = r.replica.as_mut()?;
        if replica.fetch_leader() != Some(leader) {
            return None;
        }
        replica.poll_fetch(r.node.now()).map(|(_, req)| req)
    }

    /// Follower: checks and stores the leader's answer to fetch `seq`.
    async fn apply_fetch(
        &mut self,
        seq: u64,
        verdict: Verdict,
        mut bytes: BytesMut,
    ) -> Result<(), String> {
        let (Some(r), Some(log)) = (self.replication.as_mut(), self.log.as_mut()) else {
            return Err("not a replica".into());
        };
        let Some(replica) = r.replica.as_mut() else {
            return Ok(());
        };
        let now = r.node.now();
        // The records crossed a network: every CRC is checked before any
        // byte is stored.
        let max = log.config().batch_bytes_max;
        let mut slices = Vec::new();
        let mut metas = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let view = BatchView::parse_crc_only(rest, max)
                .map_err(|e| format!("a replicated batch: {e}"))?;
            let base = view.base_offset() as u64;
            metas.push(BatchMeta {
                base_offset: base,
                end_offset: base + view.offset_count(),
                leader_epoch: view.header().partition_leader_epoch.get(),
            });
            slices.push((*view.header(), view.bytes().len()));
            rest = &rest[view.bytes().len()..];
        }
        let reply = match &verdict {
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
        match replica.on_fetch_reply(seq, &reply, now) {
            FollowerStep::Ignore => {}
            FollowerStep::Truncate(to) => {
                tracing::info!(partition = %r.partition, to, "truncating a diverged tail");
                log.truncate_to(to).await.map_err(|e| e.to_string())?;
                // Batches cut off are no longer stored: a retry of one must
                // be written again, not answered as a duplicate.
                for p in self.producers.values_mut() {
                    p.recent.retain(|b| b.base_offset < to);
                }
                // Commits cut off were never acknowledged: the map is read
                // again from what the log holds now.
                if self.committed.is_some() {
                    self.rebuild(true).await.map_err(|e| e.to_string())?;
                }
            }
            FollowerStep::Append => {
                let Verdict::Records { high_watermark } = verdict else {
                    return Err("records appended without a records verdict".into());
                };
                if let Some(map) = self.committed.as_mut() {
                    map.extend(commits_in(&bytes, max));
                }
                let mut last = None;
                for (_, len) in &slices {
                    // Each batch is split off the frame's buffer as it is.
                    let appended = log
                        .append_replica(bytes.split_to(*len))
                        .await
                        .map_err(|e| e.to_string())?;
                    last = Some(appended);
                }
                replica.follower_appended(seq, &metas, high_watermark, now);
                if let Some(appended) = last {
                    let end = appended.last_offset + 1;
                    appended.durable.wait().await.map_err(|e| e.to_string())?;
                    replica.durable_to(end, r.node.now());
                    raise(&r.appended, end);
                }
                // A follower keeps the idempotent producers' state too: it
                // may lead next. A replicated batch keeps the leader's base
                // offset (`append_replica` refuses any other).
                for (header, _) in &slices {
                    self.remember(header, header.base_offset.get() as u64);
                }
            }
        }
        self.drive().await;
        Ok(())
    }

    /// Leader: answers a follower's fetch with the stored records.
    async fn replica_fetch(&mut self, req: ReplicaFetchRequest) -> (Verdict, Vec<u8>) {
        let (Some(r), Some(log)) = (self.replication.as_mut(), self.log.as_ref()) else {
            return (Verdict::Error(ReplicaError::NotLeader), Vec::new());
        };
        let Some((replica, now)) = r.replica_now() else {
            return (Verdict::Error(ReplicaError::NotLeader), Vec::new());
        };
        let answer = match replica.on_fetch(&req, now) {
            FetchAnswer::Records {
                from,
                high_watermark,
            } => {
                let bytes = read_for_follower(log, from).await;
                (Verdict::Records { high_watermark }, bytes)
            }
            FetchAnswer::Diverging { epoch, end_offset } => {
                (Verdict::Diverging { epoch, end_offset }, Vec::new())
            }
            FetchAnswer::Error(e) => (Verdict::Error(e), Vec::new()),
        };
        self.drive().await;
        answer
    }

    async fn replica_read(&self, from: u64, leader_epoch: i32) -> Vec<u8> {
        let (Some(r), Some(log)) = (self.replication.as_ref(), self.log.as_ref()) else {
            return Vec::new();
        };
        match &r.replica {
            Some(replica) if replica.is_leader() && replica.leader_epoch() == leader_epoch => {
                read_for_follower(log, from).await
            }
            _ => Vec::new(),
        }
    }

    fn wait_appended(&self, offset: u64, notify: mpsc::Sender<()>) {
        let Some(r) = self.replication.as_ref() else {
            return;
        };
        let mut appended = r.appended.subscribe();
        tokio_uring::spawn(async move {
            tokio::select! {
                ready = appended.wait_for(|e| *e > offset) => if ready.is_ok() {
                    let _ = notify.try_send(());
                },
                () = notify.closed() => {}
            }
        });
    }

    /// A consumer's fetch from a replica: only the leader answers, and
    /// only below the high watermark.
    async fn replica_consumer_fetch(&mut self, offset: u64, max_bytes: usize) -> FetchOutcome {
        let Some(log) = self.log.as_ref() else {
            return FetchOutcome::failed(Failure::new(
                ErrorCode::UnknownTopic,
                "the partition was closed",
            ));
        };
        let hw = *self.end.borrow();
        let result = if !serves_clients(&self.replication) {
            let partition = tp_of(&self.labels);
            Err(replica_failure(&partition, ReplicaError::NotLeader))
        } else if offset >= hw && offset <= log.latest() && offset >= log.earliest() {
            Ok(Answer::Read(Vec::new()))
        } else {
            log.read(offset, max_bytes)
                .await
                .map(|bytes| Answer::Read(batches_below(bytes, hw)))
                .map_err(|e| engine_failure(&e))
        };
        if let Ok(answer) = &result {
            self.metrics.partition_bytes_out(&self.labels, answer.len());
        }
        FetchOutcome {
            result,
            log_start: log.earliest(),
            log_end: hw,
        }
    }
}

/// The records a follower fetching from `from` gets: whole batches, up to
/// [`PARTITION_FETCH_BYTES`].
async fn read_for_follower(log: &Log, from: u64) -> Vec<u8> {
    if from >= log.latest() {
        return Vec::new();
    }
    match log.read(from, PARTITION_FETCH_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(dir = %log.dir().display(), from, "reading for a follower failed: {e}");
            Vec::new()
        }
    }
}

/// `u16 len, group, u16 len, topic, u32 partition`, all big-endian.
/// Commit records (key, offset) as batches of at most about
/// [`COMMIT_BATCH_BYTES`].
fn commit_batches(records: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<BytesMut>, Failure> {
    let now = now_ms();
    let mut batches = Vec::new();
    let mut builder = batch::BatchBuilder::default();
    for (key, value) in records {
        builder
            .push(&batch::NewRecord {
                key: Some(key),
                value: Some(value),
                headers: &[],
                timestamp: now,
            })
            .map_err(|e| Failure::new(ErrorCode::InvalidRequest, e.to_string()))?;
        if builder.size_bytes() >= COMMIT_BATCH_BYTES {
            batches.extend(std::mem::take(&mut builder).finish());
        }
    }
    batches.extend(builder.finish());
    Ok(batches
        .iter()
        .map(|b: &Vec<u8>| BytesMut::from(&b[..]))
        .collect())
}

/// The commits in stored batches, in order: what the map of committed
/// offsets takes from each append, on a leader as on a follower. Batches
/// are CRC-checked before they get here; what does not parse as a commit
/// is not one.
fn commits_in(mut bytes: &[u8], max: usize) -> Vec<(CommitKey, CommitValue)> {
    let mut out = Vec::new();
    while let Ok(view) = BatchView::parse_crc_only(bytes, max) {
        if let Ok(records) = view.records() {
            for record in records.map_while(Result::ok) {
                if let (Some(key), Some(value)) = (record.key, record.value) {
                    out.extend(decode_commit(key, value));
                }
            }
        }
        bytes = &bytes[view.bytes().len()..];
    }
    out
}

fn commit_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + group.len() + topic.len());
    for part in [group, topic] {
        key.extend_from_slice(&(part.len() as u16).to_be_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

/// A commit record's value: the offset as a big-endian u64, then the
/// metadata's UTF-8 bytes (none in logs written before metadata was kept,
/// which read back as empty metadata).
fn commit_value(offset: u64, metadata: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + metadata.len());
    value.extend_from_slice(&offset.to_be_bytes());
    value.extend_from_slice(metadata.as_bytes());
    value
}

fn decode_commit(key: &[u8], value: &[u8]) -> Option<(CommitKey, CommitValue)> {
    fn string(bytes: &mut &[u8]) -> Option<String> {
        let len = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(bytes.get(2..2 + len)?)
            .ok()?
            .to_string();
        *bytes = &bytes[2 + len..];
        Some(s)
    }
    let mut rest = key;
    let group = string(&mut rest)?;
    let topic = string(&mut rest)?;
    let partition = u32::from_be_bytes(rest.try_into().ok()?);
    let offset = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let metadata = std::str::from_utf8(&value[8..]).ok()?.to_string();
    Some(((group, topic, partition), (offset, metadata)))
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Loads the producer-state snapshot (written at the last segment roll or
/// clean close), if it can stand in for reading the log up to its end
/// offset: that offset is within the log (at or after its start, at or
/// before its end). Returns the offset to replay from and the state. Every
/// offset below a snapshot's end was synced before it was written, so
/// recovery never cuts the log below it; a snapshot that does not match is
/// removed, so it cannot come back to describe a log that changed since.
fn load_snapshot(log: &Log) -> Option<(u64, HashMap<i64, ProducerState>)> {
    let path = log.dir().join(producer_state::SNAPSHOT_FILE);
    let bytes = std::fs::read(&path).ok()?;
    let discard = |why: &dyn std::fmt::Display| {
        tracing::warn!(path = %path.display(), "ignoring the producer-state snapshot: {why}");
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), "removing the producer-state snapshot: {e}");
        }
    };
    let snapshot = match producer_state::decode(&bytes) {
        Ok(s) => s,
        Err(why) => {
            discard(&why);
            return None;
        }
    };
    let end = snapshot.end_offset;
    if end < log.earliest() || end > log.latest() {
        discard(&format!(
            "it ends at {end}, outside the log ({}..{})",
            log.earliest(),
            log.latest()
        ));
        return None;
    }
    let producers = snapshot
        .producers
        .into_iter()
        .map(|p| {
            let recent = p
                .batches
                .into_iter()
                .map(|b| SentBatch {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    base_offset: b.base_offset,
                })
                .collect();
            (
                p.producer_id,
                ProducerState {
                    epoch: p.epoch,
                    recent,
                },
            )
        })
        .collect();
    Some((end, producers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_keys_round_trip() {
        let key = commit_key("g", "orders", 7);
        // A value of only the offset is what logs from before metadata was
        // kept hold: it reads back with empty metadata.
        let ((g, t, p), (o, m)) = decode_commit(&key, &42u64.to_be_bytes()).unwrap();
        assert_eq!(
            (g.as_str(), t.as_str(), p, o, m.as_str()),
            ("g", "orders", 7, 42, "")
        );
        let value = commit_value(43, "host-1 {\"epoch\":3}");
        let (_, (o, m)) = decode_commit(&key, &value).unwrap();
        assert_eq!((o, m.as_str()), (43, "host-1 {\"epoch\":3}"));
        assert!(decode_commit(&key[..3], &42u64.to_be_bytes()).is_none());
        assert!(decode_commit(&key, b"short").is_none());
        assert!(decode_commit(&key, &[0, 0, 0, 0, 0, 0, 0, 1, 0xff]).is_none());
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(seq_after(i32::MAX), 0);
        assert_eq!(seq_after(4), 5);
    }
}
