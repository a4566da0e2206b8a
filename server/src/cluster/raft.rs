//! The controller quorum: openraft replicating `ringlog-cluster`'s
//! [`ClusterState`] among the brokers, over the cluster's QUIC endpoint.
//!
//! Why openraft 0.9: it is the stable line (0.10 is in alpha), it leaves
//! storage and transport to the application (so both are ringlog's: files it
//! syncs itself, QUIC with mutual TLS), and its split storage API (log store
//! and state machine apart) fits a state machine this small.
//!
//! On disk, in `<data-dir>/controller/`:
//!
//! - `vote`: the current vote, JSON, replaced atomically (write, sync,
//!   rename, sync the directory) before it is acted on.
//! - `raft-log`: an append-only file of records, each
//!   `[len: u32 LE][crc32c: u32 LE][JSON]`: an entry, a truncation or a
//!   purge. Every append is synced before openraft is told it is flushed.
//!   Opening replays it; a torn or corrupt tail (a crash mid-write) is cut.
//!   It is rewritten from memory, atomically, when a purge leaves most of it
//!   dead.
//! - `snapshot`: the state machine (the cluster state, the last applied log
//!   id, the membership) as JSON, replaced atomically whenever openraft builds
//!   or installs a snapshot; read at start.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{Cursor, Write};
use std::net::SocketAddr;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftNetwork, RaftNetworkFactory,
    RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use ringlog_cluster::controller::{
    Applied, ClusterState, Command, CommandError, HeartbeatReply, Liveness,
};
use ringlog_cluster::Millis;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::quic;

/// The answer to a command: what the state machine said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply(pub Result<Applied, CommandError>);

openraft::declare_raft_types!(
    /// The controller's openraft types.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The controller's Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
type StorageResult<T> = Result<T, StorageError<u64>>;

const VOTE_FILE: &str = "vote";
const LOG_FILE: &str = "raft-log";
const SNAPSHOT_FILE: &str = "snapshot";
/// A record larger than this is damage, not data.
const RECORD_MAX: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
enum Record {
    Entry(Entry<TypeConfig>),
    /// Entries at this index and after are gone.
    Truncate(u64),
    /// Entries up to this log id are gone (a snapshot holds them).
    Purge(LogId<u64>),
}

fn encode_record(record: &Record) -> Vec<u8> {
    let json = serde_json::to_vec(record).expect("controller records serialize");
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// The log store's contents, in memory and in `raft-log`.
struct LogInner {
    dir: PathBuf,
    file: std::fs::File,
    vote: Option<Vote<u64>>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<u64>>,
    /// Records in the file that no longer describe a live entry.
    dead: usize,
}

impl LogInner {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(LOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let mut dead = 0;
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + 8) {
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            let Some(json) = bytes
                .get(at + 8..at + 8 + len)
                .filter(|_| len <= RECORD_MAX)
            else {
                break;
            };
            if crc32c::crc32c(json) != crc {
                break;
            }
            let Ok(record) = serde_json::from_slice::<Record>(json) else {
                break;
            };
            match record {
                Record::Entry(e) => {
                    entries.insert(e.log_id.index, e);
                }
                Record::Truncate(index) => {
                    dead += entries.split_off(&index).len() + 1;
                }
                Record::Purge(id) => {
                    let kept = entries.split_off(&(id.index + 1));
                    dead += std::mem::replace(&mut entries, kept).len() + 1;
                    last_purged = Some(id);
                }
            }
            at += 8 + len;
        }
        if at < bytes.len() {
            tracing::warn!(
                file = %path.display(),
                cut = bytes.len() - at,
                "cutting a torn or corrupt tail off the controller log"
            );
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.set_len(at as u64)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cutting {}", path.display()))?;
        let vote_path = dir.join(VOTE_FILE);
        let vote = match std::fs::read(&vote_path) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .with_context(|| format!("{} is damaged", vote_path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", vote_path.display())),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            vote,
            entries,
            last_purged,
            dead,
        })
    }

    fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        for r in records {
            bytes.extend(encode_record(r));
        }
        self.file.write_all(&bytes)?;
        self.file.sync_data()
    }

    /// Rewrites the file with the live entries only.
    fn compact(&mut self) -> std::io::Result<()> {
        let path = self.dir.join(LOG_FILE);
        let mut bytes = Vec::new();
        if let Some(id) = self.last_purged {
            bytes.extend(encode_record(&Record::Purge(id)));
        }
        for e in self.entries.values() {
            bytes.extend(encode_record(&Record::Entry(e.clone())));
        }
        crate::catalog::write_durably(&path, &bytes)?;
        self.file = std::fs::OpenOptions::new().append(true).open(&path)?;
        self.dead = 0;
        Ok(())
    }
}

/// openraft's log store over `raft-log` and `vote`.
#[derive(Clone)]
pub struct LogStore(Arc<Mutex<LogInner>>);

impl LogStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let inner = self.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> StorageResult<()> {
        let mut inner = self.lock();
        let bytes = serde_json::to_vec(vote).expect("a vote serializes");
        crate::catalog::write_durably(&inner.dir.join(VOTE_FILE), &bytes)
            .map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<u64>>> {
        Ok(self.lock().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let records: Vec<Record> = entries.iter().cloned().map(Record::Entry).collect();
        let result = inner.write(&records);
        if result.is_ok() {
            for e in entries {
                inner.entries.insert(e.log_id.index, e);
            }
        }
        let failed = result.as_ref().err().map(StorageIOError::write_logs);
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let mut inner = self.lock();
        inner
            .write(&[Record::Truncate(log_id.index)])
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let gone = inner.entries.split_off(&log_id.index).len();
        inner.dead += gone + 1;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> StorageResult<()> {
        let mut inner = self.lock();
        inner
            .write(&[Record::Purge(log_id)])
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let kept = inner.entries.split_off(&(log_id.index + 1));
        let gone = std::mem::replace(&mut inner.entries, kept).len();
        inner.dead += gone + 1;
        inner.last_purged = Some(log_id);
        if inner.dead > 1_000 && inner.dead > inner.entries.len() {
            inner
                .compact()
                .map_err(|e| StorageIOError::write_logs(&e))?;
        }
        Ok(())
    }
}

/// What a snapshot holds.
#[derive(Clone, Serialize, Deserialize)]
struct SnapshotData {
    state: ClusterState,
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshot_id: String,
}

struct SmInner {
    dir: PathBuf,
    data: SnapshotData,
    /// The bytes of the newest snapshot, as built or installed.
    snapshot: Option<Vec<u8>>,
    published: watch::Sender<ClusterState>,
}

/// openraft's state machine: the cluster state, published to this broker
/// through a watch channel as commands apply.
#[derive(Clone)]
pub struct StateMachine(Arc<Mutex<SmInner>>);

impl StateMachine {
    fn open(dir: &Path) -> anyhow::Result<(Self, watch::Receiver<ClusterState>)> {
        let path = dir.join(SNAPSHOT_FILE);
        let (data, snapshot) = match std::fs::read(&path) {
            Ok(bytes) => (
                serde_json::from_slice::<SnapshotData>(&bytes)
                    .with_context(|| format!("{} is damaged", path.display()))?,
                Some(bytes),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                SnapshotData {
                    state: ClusterState::new(),
                    last_applied: None,
                    membership: StoredMembership::default(),
                    snapshot_id: String::new(),
                },
                None,
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (published, rx) = watch::channel(data.state.clone());
        Ok((
            Self(Arc::new(Mutex::new(SmInner {
                dir: dir.to_path_buf(),
                data,
                snapshot,
                published,
            }))),
            rx,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let mut inner = self.lock();
        let last = inner.data.last_applied;
        inner.data.snapshot_id = match last {
            Some(id) => format!("{}-{}", id.leader_id, id.index),
            None => "empty".into(),
        };
        let bytes = serde_json::to_vec(&inner.data).expect("the cluster state serializes");
        crate::catalog::write_durably(&inner.dir.join(SNAPSHOT_FILE), &bytes)
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        inner.snapshot = Some(bytes.clone());
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: last,
                last_membership: inner.data.membership.clone(),
                snapshot_id: inner.data.snapshot_id.clone(),
            },
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>)> {
        let inner = self.lock();
        Ok((inner.data.last_applied, inner.data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Reply>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let mut replies = Vec::new();
        for entry in entries {
            inner.data.last_applied = Some(entry.log_id);
            replies.push(match entry.payload {
                EntryPayload::Blank => Reply::not_a_command(),
                EntryPayload::Normal(command) => Reply(inner.data.state.apply(&command)),
                EntryPayload::Membership(m) => {
                    inner.data.membership = StoredMembership::new(Some(entry.log_id), m);
                    Reply::not_a_command()
                }
            });
        }
        let state = inner.data.state.clone();
        inner.published.send_replace(state);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let bytes = snapshot.into_inner();
        let mut data: SnapshotData = serde_json::from_slice(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        data.last_applied = meta.last_log_id;
        data.membership = meta.last_membership.clone();
        let mut inner = self.lock();
        crate::catalog::write_durably(&inner.dir.join(SNAPSHOT_FILE), &bytes)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        inner.published.send_replace(data.state.clone());
        inner.data = data;
        inner.snapshot = Some(bytes);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let inner = self.lock();
        Ok(inner.snapshot.as_ref().map(|bytes| Snapshot {
            meta: SnapshotMeta {
                last_log_id: inner.data.last_applied,
                last_membership: inner.data.membership.clone(),
                snapshot_id: inner.data.snapshot_id.clone(),
            },
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}

impl Reply {
    /// The reply to an entry that carries no command (openraft's blank and
    /// membership entries): nobody reads it.
    fn not_a_command() -> Self {
        Reply(Err(CommandError::Invalid("not a command".into())))
    }
}

// ---- transport ------------------------------------------------------------

/// What a stream on the cluster endpoint asks for: its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Raft AppendEntries.
    AppendEntries = 1,
    /// Raft RequestVote.
    Vote = 2,
    /// Raft InstallSnapshot (one chunk).
    InstallSnapshot = 3,
    /// A controller command, from any broker; the Raft leader applies it.
    Command = 10,
    /// A broker process registers (its first words to the controller).
    Register = 11,
    /// A broker's heartbeat.
    Heartbeat = 12,
    /// A follower shard's replication session (then the shard: u32 LE),
    /// handed to the matching shard here.
    Replication = 20,
}

/// Hands a replication session's streams to a shard.
pub type SessionSender = tokio::sync::mpsc::UnboundedSender<(quinn::SendStream, quinn::RecvStream)>;

/// Where each shard takes the replication sessions peers open with it.
#[derive(Clone, Default)]
pub struct SessionInboxes(Arc<Mutex<BTreeMap<usize, SessionSender>>>);

impl SessionInboxes {
    /// Shard `shard` takes its sessions from `inbox` from now on.
    pub fn set(&self, shard: usize, inbox: SessionSender) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shard, inbox);
    }

    fn hand_over(
        &self,
        shard: usize,
        streams: (quinn::SendStream, quinn::RecvStream),
    ) -> anyhow::Result<()> {
        let inbox = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&shard)
            .cloned();
        match inbox {
            Some(inbox) => inbox
                .send(streams)
                .map_err(|_| anyhow!("shard {shard} has stopped")),
            None => bail!("no shard {shard} serves replication"),
        }
    }
}

/// A broker process's registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Its node id.
    pub broker: u32,
    /// Random per start of the process.
    pub incarnation: u64,
    /// Where clients reach it.
    pub address: String,
    /// Where Kafka clients reach it (empty: no Kafka listener).
    #[serde(default)]
    pub kafka_address: String,
}

/// The controller's answer to a registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RegisterAnswer {
    /// Registered with this broker epoch.
    Registered(u64),
    /// Another incarnation of this broker still holds a live session: ask
    /// again once it has run out.
    Busy,
    /// Not the controller; it may be the node named.
    NotLeader(Option<u64>),
    /// The command failed.
    Failed(String),
}

/// A broker's heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// Its node id.
    pub broker: u32,
    /// The epoch it registered with.
    pub epoch: u64,
}

/// The controller's answer to a heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum HeartbeatAnswer {
    /// The session is extended.
    Alive,
    /// The epoch is not current: register again.
    Fenced,
    /// Not the controller; it may be the node named.
    NotLeader(Option<u64>),
}

/// A request's largest accepted body: a snapshot chunk or a batch of
/// entries is far below it; anything larger is not a broker.
const BODY_MAX: usize = 16 << 20;

/// Sends one request on a fresh stream of `conn` and reads the answer.
async fn call(conn: &quinn::Connection, kind: Kind, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&[kind as u8]).await?;
    send.write_all(body).await?;
    send.finish()?;
    Ok(recv.read_to_end(BODY_MAX).await?)
}

/// The connections this node keeps to its peers, made on first use and
/// dropped when they fail.
#[derive(Clone)]
pub struct Peers {
    endpoint: quinn::Endpoint,
    addrs: Arc<BTreeMap<u64, SocketAddr>>,
    conns: Arc<Mutex<BTreeMap<u64, quinn::Connection>>>,
}

impl Peers {
    /// Peers reached through `endpoint` at `addrs`.
    pub fn new(endpoint: quinn::Endpoint, addrs: BTreeMap<u64, SocketAddr>) -> Self {
        Self {
            endpoint,
            addrs: Arc::new(addrs),
            conns: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Every node id of the cluster.
    pub fn ids(&self) -> Vec<u64> {
        self.addrs.keys().copied().collect()
    }

    /// The connection to `node`, made on first use (and again after it
    /// failed).
    pub async fn connection(&self, node: u64) -> anyhow::Result<quinn::Connection> {
        if let Some(c) = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
        {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let addr = *self
            .addrs
            .get(&node)
            .ok_or_else(|| anyhow!("node {node} is not among the peers"))?;
        let conn = quic::connect(&self.endpoint, addr, node as u32).await?;
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node, conn.clone());
        Ok(conn)
    }

    /// One request to `node`; a failed connection is forgotten so the next
    /// call makes a new one.
    pub async fn request(&self, node: u64, kind: Kind, body: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.request_within(node, kind, body, Duration::from_secs(5))
            .await
    }

    /// [`Peers::request`] with its own deadline (connecting included).
    pub async fn request_within(
        &self,
        node: u64,
        kind: Kind,
        body: &[u8],
        within: Duration,
    ) -> anyhow::Result<Vec<u8>> {
        let attempt = async {
            let conn = self.connection(node).await?;
            call(&conn, kind, body).await
        };
        let result = tokio::time::timeout(within, attempt)
            .await
            .map_err(|_| anyhow!("node {node} did not answer within {within:?}"))
            .and_then(|r| r);
        if result.is_err() {
            self.conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&node);
        }
        result
    }
}

/// openraft's view of one peer.
pub struct PeerClient {
    peers: Peers,
    target: u64,
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> PeerClient {
        PeerClient {
            peers: self.clone(),
            target,
        }
    }
}

impl PeerClient {
    async fn rpc<Req, Resp, E>(
        &mut self,
        kind: Kind,
        req: &Req,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: for<'de> Deserialize<'de>,
        E: std::error::Error + for<'de> Deserialize<'de>,
    {
        let body = serde_json::to_vec(req).expect("raft requests serialize");
        let answer = self
            .peers
            .request(self.target, kind, &body)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&AnyErr(format!("{e:#}")))))?;
        let result: Result<Resp, RaftError<u64, E>> = serde_json::from_slice(&answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// An error that is only a message (what crossed the wire).
#[derive(Debug)]
struct AnyErr(String);

impl std::fmt::Display for AnyErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AnyErr {}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.rpc(Kind::AppendEntries, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.rpc(Kind::InstallSnapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.rpc(Kind::Vote, &rpc).await
    }
}

// ---- the controller -------------------------------------------------------

/// This broker's member of the controller quorum.
pub struct Controller {
    /// The Raft handle.
    pub raft: Raft,
    node: u64,
    peers: Peers,
    state: watch::Receiver<ClusterState>,
    /// Heartbeats, kept while this node is the active controller.
    liveness: Mutex<Liveness>,
    started: std::time::Instant,
}

/// An answer to [`Kind::Command`].
#[derive(Serialize, Deserialize)]
enum CommandAnswer {
    Applied(Reply),
    /// This node does not lead; try the one named, if any.
    NotLeader(Option<u64>),
    Failed(String),
}

impl Controller {
    /// Starts node `node` of the quorum of `peers` (every node, this one
    /// included, with its replication address), keeping its files in `dir`.
    /// A pristine quorum initializes itself with every peer as a voter. As
    /// the active controller it fences brokers silent for `session_timeout`
    /// ms.
    pub async fn start(
        node: u64,
        dir: &Path,
        peers: Peers,
        session_timeout: Millis,
    ) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = LogStore(Arc::new(Mutex::new(LogInner::open(dir)?)));
        let (sm, state) = StateMachine::open(dir)?;
        let config = openraft::Config {
            cluster_name: "ringlog".into(),
            heartbeat_interval: 150,
            election_timeout_min: 600,
            election_timeout_max: 1_200,
            ..Default::default()
        };
        let config = Arc::new(config.validate().context("controller raft config")?);
        let raft = Raft::new(node, config, peers.clone(), log, sm)
            .await
            .context("starting the controller")?;
        if !raft.is_initialized().await? {
            let members: BTreeMap<u64, BasicNode> = peers
                .addrs
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr.to_string())))
                .collect();
            // Every node may try: one with the same membership that loses
            // the race is told it is not pristine any more.
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!("controller quorum already initialized: {e}");
            }
        }
        Ok(Arc::new(Self {
            raft,
            node,
            peers,
            state,
            liveness: Mutex::new(Liveness::new(session_timeout)),
            started: std::time::Instant::now(),
        }))
    }

    fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    fn leads(&self) -> bool {
        self.leader() == Some(self.node)
    }

    /// While this node is the active controller: starts every session
    /// afresh when it takes office, and fences brokers whose sessions ran
    /// out. Runs until the Raft node shuts down.
    pub async fn run_liveness(self: Arc<Self>) {
        let mut was_leader = false;
        let mut metrics = self.raft.metrics();
        loop {
            let leads = self.leads();
            if leads {
                let state = self.state.borrow().clone();
                let expired = {
                    let mut liveness = self.liveness.lock().unwrap_or_else(|e| e.into_inner());
                    if !was_leader {
                        liveness.reset(&state, self.now());
                    }
                    liveness.expired(&state, self.now())
                };
                for command in expired {
                    tracing::warn!(?command, "fencing a broker whose session ran out");
                    if let Err(e) = self.raft.client_write(command).await {
                        tracing::warn!("fencing failed: {e}");
                    }
                }
            }
            was_leader = leads;
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                _ = tick => {}
                changed = metrics.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Handles a registration here, as the active controller.
    async fn handle_register(&self, req: RegisterRequest) -> RegisterAnswer {
        if !self.leads() {
            return RegisterAnswer::NotLeader(self.leader());
        }
        let state = self.state.borrow().clone();
        let may = self
            .liveness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .may_register(&state, req.broker, req.incarnation, self.now());
        if !may {
            return RegisterAnswer::Busy;
        }
        let command = Command::RegisterBroker {
            broker: req.broker,
            incarnation: req.incarnation,
            address: req.address,
            kafka_address: req.kafka_address,
        };
        match self.raft.client_write(command).await {
            Ok(r) => match r.data.0 {
                Ok(Applied::Registered(epoch)) => {
                    self.liveness
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .registered(req.broker, epoch, self.now());
                    RegisterAnswer::Registered(epoch)
                }
                other => RegisterAnswer::Failed(format!("{other:?}")),
            },
            Err(e) => match e.forward_to_leader() {
                Some(f) => RegisterAnswer::NotLeader(f.leader_id),
                None => RegisterAnswer::Failed(e.to_string()),
            },
        }
    }

    /// Handles a heartbeat here, as the active controller.
    fn handle_heartbeat(&self, req: &HeartbeatRequest) -> HeartbeatAnswer {
        if !self.leads() {
            return HeartbeatAnswer::NotLeader(self.leader());
        }
        let state = self.state.borrow().clone();
        let reply = self
            .liveness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .heartbeat(&state, req.broker, req.epoch, self.now());
        match reply {
            HeartbeatReply::Alive => HeartbeatAnswer::Alive,
            HeartbeatReply::Fenced => HeartbeatAnswer::Fenced,
        }
    }

    /// Registers this broker with the active controller, wherever it is;
    /// waits while another incarnation's session runs out.
    pub async fn register(&self, req: RegisterRequest) -> anyhow::Result<u64> {
        loop {
            let answer = match self.leader() {
                Some(l) if l == self.node => self.handle_register(req.clone()).await,
                Some(l) => {
                    let body = serde_json::to_vec(&req).expect("requests serialize");
                    match self.peers.request(l, Kind::Register, &body).await {
                        Ok(bytes) => serde_json::from_slice(&bytes)
                            .unwrap_or_else(|e| RegisterAnswer::Failed(e.to_string())),
                        Err(e) => RegisterAnswer::Failed(format!("{e:#}")),
                    }
                }
                None => RegisterAnswer::NotLeader(None),
            };
            match answer {
                RegisterAnswer::Registered(epoch) => return Ok(epoch),
                RegisterAnswer::Busy => {
                    tracing::info!("waiting for this broker's previous session to run out")
                }
                RegisterAnswer::NotLeader(_) => {}
                RegisterAnswer::Failed(e) => tracing::debug!("registration failed: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sends one heartbeat to the active controller, giving up after
    /// `within` (a dead controller must not hold the next heartbeat back
    /// past its successor's election).
    pub async fn heartbeat(
        &self,
        req: &HeartbeatRequest,
        within: Duration,
    ) -> anyhow::Result<HeartbeatAnswer> {
        match self.leader() {
            Some(l) if l == self.node => Ok(self.handle_heartbeat(req)),
            Some(l) => {
                let body = serde_json::to_vec(req).expect("requests serialize");
                let bytes = self
                    .peers
                    .request_within(l, Kind::Heartbeat, &body, within)
                    .await?;
                Ok(serde_json::from_slice(&bytes)?)
            }
            None => Ok(HeartbeatAnswer::NotLeader(None)),
        }
    }

    /// The cluster state as this node last applied it.
    pub fn state(&self) -> watch::Receiver<ClusterState> {
        self.state.clone()
    }

    /// The current Raft leader, as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Applies `command` through the quorum: here if this node leads, else
    /// at the leader. Retries while the quorum elects, for up to `within`.
    pub async fn submit(&self, command: Command, within: Duration) -> anyhow::Result<Reply> {
        let deadline = tokio::time::Instant::now() + within;
        let mut last_error = anyhow!("no controller leader");
        while tokio::time::Instant::now() < deadline {
            match self.leader() {
                Some(leader) if leader == self.node => {
                    match self.raft.client_write(command.clone()).await {
                        Ok(r) => return Ok(r.data),
                        Err(e) => last_error = anyhow!("{e}"),
                    }
                }
                Some(leader) => {
                    let body = serde_json::to_vec(&command).expect("commands serialize");
                    match self.peers.request(leader, Kind::Command, &body).await {
                        Ok(answer) => match serde_json::from_slice(&answer) {
                            Ok(CommandAnswer::Applied(reply)) => return Ok(reply),
                            Ok(CommandAnswer::NotLeader(_)) => {
                                last_error = anyhow!("leadership moved")
                            }
                            Ok(CommandAnswer::Failed(e)) => last_error = anyhow!(e),
                            Err(e) => {
                                last_error = anyhow!("a garbled answer from node {leader}: {e}")
                            }
                        },
                        Err(e) => last_error = e,
                    }
                }
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(last_error.context(format!(
            "the controller did not apply the command within {within:?}"
        )))
    }

    /// Serves the controller's part of the cluster endpoint: every
    /// authenticated peer's Raft messages and commands. Runs until the
    /// endpoint closes.
    pub async fn serve(self: Arc<Self>, endpoint: quinn::Endpoint, sessions: SessionInboxes) {
        let ids: Vec<u32> = self.peers.ids().iter().map(|id| *id as u32).collect();
        while let Some(incoming) = endpoint.accept().await {
            let this = self.clone();
            let ids = ids.clone();
            let sessions = sessions.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let Some(peer) = quic::peer_node(&conn, &ids) else {
                    conn.close(1u32.into(), b"not a member of this cluster");
                    return;
                };
                while let Ok((send, recv)) = conn.accept_bi().await {
                    let this = this.clone();
                    let sessions = sessions.clone();
                    tokio::spawn(async move {
                        if let Err(e) = this.answer(send, recv, &sessions).await {
                            tracing::debug!(peer, "controller request failed: {e:#}");
                        }
                    });
                }
            });
        }
    }

    async fn answer(
        &self,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        sessions: &SessionInboxes,
    ) -> anyhow::Result<()> {
        let mut kind = [0u8; 1];
        recv.read_exact(&mut kind).await?;
        let kind = kind[0];
        if kind == Kind::Replication as u8 {
            let mut shard = [0u8; 4];
            recv.read_exact(&mut shard).await?;
            let shard = u32::from_le_bytes(shard) as usize;
            return sessions.hand_over(shard, (send, recv));
        }
        let body = recv.read_to_end(BODY_MAX).await?;
        let body = &body[..];
        let answer = match kind {
            k if k == Kind::AppendEntries as u8 => serde_json::to_vec(
                &self
                    .raft
                    .append_entries(serde_json::from_slice(body)?)
                    .await,
            )?,
            k if k == Kind::Vote as u8 => {
                serde_json::to_vec(&self.raft.vote(serde_json::from_slice(body)?).await)?
            }
            k if k == Kind::InstallSnapshot as u8 => serde_json::to_vec(
                &self
                    .raft
                    .install_snapshot(serde_json::from_slice(body)?)
                    .await,
            )?,
            k if k == Kind::Command as u8 => {
                let command: Command = serde_json::from_slice(body)?;
                let answer = if self.leader() == Some(self.node) {
                    match self.raft.client_write(command).await {
                        Ok(r) => CommandAnswer::Applied(r.data),
                        Err(e) => match e.forward_to_leader() {
                            Some(f) => CommandAnswer::NotLeader(f.leader_id),
                            None => CommandAnswer::Failed(e.to_string()),
                        },
                    }
                } else {
                    CommandAnswer::NotLeader(self.leader())
                };
                serde_json::to_vec(&answer)?
            }
            k if k == Kind::Register as u8 => {
                serde_json::to_vec(&self.handle_register(serde_json::from_slice(body)?).await)?
            }
            k if k == Kind::Heartbeat as u8 => {
                serde_json::to_vec(&self.handle_heartbeat(&serde_json::from_slice(body)?))?
            }
            other => bail!("unknown request kind {other}"),
        };
        send.write_all(&answer).await?;
        send.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn entry(index: u64, broker: u32) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::RegisterBroker {
                broker,
                incarnation: 1,
                address: String::new(),
                kafka_address: String::new(),
            }),
        }
    }

    #[test]
    fn the_log_file_replays_truncations_and_purges_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogInner::open(dir.path()).unwrap();
        log.write(
            &(1..=5)
                .map(|i| Record::Entry(entry(i, i as u32)))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        log.write(&[Record::Truncate(4), Record::Entry(entry(4, 40))])
            .unwrap();
        log.write(&[Record::Purge(entry(2, 2).log_id)]).unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let good = std::fs::metadata(&path).unwrap().len();
        // A record torn half-way, then garbage.
        let mut tail = encode_record(&Record::Entry(entry(5, 5)));
        tail.truncate(tail.len() / 2);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&tail).unwrap();
        drop(file);
        let log = LogInner::open(dir.path()).unwrap();
        assert_eq!(log.entries.keys().copied().collect::<Vec<_>>(), vec![3, 4]);
        assert!(matches!(
            &log.entries[&4].payload,
            EntryPayload::Normal(Command::RegisterBroker { broker: 40, .. })
        ));
        assert_eq!(log.last_purged.map(|id| id.index), Some(2));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            good,
            "the torn tail is cut"
        );
    }
}
