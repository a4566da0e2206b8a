//! Shards: one pinned thread and tokio-uring runtime each, owning a share of
//! the partitions and handing each other partition commands through
//! bounded per-pair queues. The connections a shard accepts are served by
//! the front doors ([`crate::native`], [`crate::kafka`]), started by
//! [`crate::shard_thread`].

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use ringlog_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch, Barrier};

use crate::catalog::{self, Catalog, Topic};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::partition::{self, Failure, PartCmd, PartitionHandle};

/// Messages between shards.
pub enum ShardMsg {
    /// A command for a partition the receiving shard owns.
    Partition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// The command (its reply channel answers the sender directly).
        cmd: PartCmd,
    },
    /// Open the receiver's partitions of a new topic.
    Open {
        /// The topic.
        topic: Arc<Topic>,
        /// Ok, or why a partition could not be created.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Apply a topic's altered settings to the receiver's partitions of it.
    Reconfigure {
        /// The topic as it now is.
        topic: Arc<Topic>,
        /// Fired when every partition has them.
        reply: oneshot::Sender<()>,
    },
    /// Close and delete the receiver's partitions of a deleted topic.
    Drop {
        /// The topic.
        topic: Arc<Topic>,
        /// Fired when done.
        reply: oneshot::Sender<()>,
    },
}

/// Depth of each per-shard-pair queue.
const PEER_QUEUE_DEPTH: usize = 256;
/// Producer ids reserved on disk at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// State every shard shares: settings, the topic catalog, metrics.
pub struct Shared {
    /// Settings.
    pub config: Config,
    /// Where clients connect (the real port when 0 was asked).
    pub listen: SocketAddr,
    /// Topics.
    pub catalog: RwLock<Catalog>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Open client connections, all shards.
    pub connections: AtomicUsize,
    /// Stable id of this data directory.
    pub cluster_id: String,
    /// Descriptors fetches sent with sendfile may hold: one permit per
    /// segment-file duplicate, released once its range is sent.
    pub sendfile_files: Arc<tokio::sync::Semaphore>,
    /// This broker's cluster membership, in cluster mode.
    pub cluster: Option<Arc<crate::cluster::agent::ClusterNode>>,
    /// What the Kafka listener's Metadata names as this broker, if it
    /// listens.
    pub kafka_address: Option<(String, u16)>,
    /// What the schema registry knows, for topics that validate records.
    pub schemas: Arc<ringlog_registry::validation::Known>,
    producer_ids: Mutex<ProducerIds>,
}

struct ProducerIds {
    path: PathBuf,
    next: i64,
    reserved_until: i64,
}

impl Shared {
    /// Loads the catalog and producer-id state of the data directory.
    pub fn load(config: Config, listen: SocketAddr) -> anyhow::Result<Shared> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
        let catalog = Catalog::load(dir, config.offsets_segment_bytes)?;
        let id_path = dir.join("cluster-id");
        let cluster_id = match std::fs::read_to_string(&id_path) {
            Ok(id) => id.trim().to_string(),
            Err(_) => {
                let id = format!(
                    "{:016x}",
                    catalog::name_hash(&format!(
                        "{:?}{}",
                        std::time::SystemTime::now(),
                        std::process::id()
                    ))
                );
                std::fs::write(&id_path, &id)
                    .with_context(|| format!("writing {}", id_path.display()))?;
                id
            }
        };
        let path = dir.join("producer-ids");
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .with_context(|| format!("parsing {}", path.display()))?,
            Err(_) => 0,
        };
        Ok(Shared {
            sendfile_files: Arc::new(tokio::sync::Semaphore::new(config.sendfile_files)),
            config,
            listen,
            catalog: RwLock::new(catalog),
            metrics: Arc::new(Metrics::new()),
            connections: AtomicUsize::new(0),
            cluster_id,
            cluster: None,
            kafka_address: None,
            schemas: Arc::default(),
            producer_ids: Mutex::new(ProducerIds {
                path,
                next,
                reserved_until: next,
            }),
        })
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        catalog.all().cloned().collect()
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
    }

    /// Hands out a producer id never handed out before by this data
    /// directory (nor by another broker of its cluster): ids are reserved
    /// on disk a block at a time.
    pub fn next_producer_id(&self) -> Result<i64, Failure> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.next >= ids.reserved_until {
            let until = ids.next + PRODUCER_ID_BLOCK;
            let tmp = ids.path.with_extension("tmp");
            std::fs::write(&tmp, until.to_string())
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &ids.path))
                .map_err(|e| {
                    Failure::new(
                        ErrorCode::StorageError,
                        format!("reserving producer ids: {e}"),
                    )
                })?;
            ids.reserved_until = until;
        }
        let id = ids.next;
        ids.next += 1;
        // In a cluster every broker hands out ids: the node id in the high
        // bits keeps them apart (2^40 ids per broker).
        let node = self
            .cluster
            .as_ref()
            .map_or(0, |c| i64::from(c.config().node_id));
        Ok(id | (node << 40))
    }
}

/// One shard's state, on its own thread.
pub struct Shard {
    /// Index of this shard.
    pub id: usize,
    /// Shared state.
    pub shared: Arc<Shared>,
    peers: PeerSenders,
    partitions: RefCell<HashMap<(String, u32), PartitionHandle>>,
    /// Cluster mode: the partitions open here as replicas.
    replicated: RefCell<BTreeSet<ringlog_cluster::TopicPartition>>,
    /// Cluster mode: the partition state and broker epoch each replica was
    /// told last.
    told: RefCell<HashMap<ringlog_cluster::TopicPartition, (ringlog_cluster::PartitionState, u64)>>,
    /// Fires once when the broker begins shutting down.
    pub shutdown: watch::Receiver<bool>,
}

/// What a shard thread needs to start.
pub struct ShardSetup {
    /// Index.
    pub id: usize,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Senders to every other shard (None at its own index).
    pub peers: PeerSenders,
    /// Receivers from every other shard.
    pub inboxes: Vec<mpsc::Receiver<ShardMsg>>,
    /// Shutdown signal.
    pub shutdown: watch::Receiver<bool>,
    /// Shared by all shards: passed when every shard has drained its
    /// connections, so no cross-shard request is left when logs close.
    pub drained: Arc<Barrier>,
    /// Shared by all shards: passed when every shard has opened its
    /// partitions. No shard serves a request before, so none is routed to a
    /// partition that is still loading.
    pub opened: Arc<Barrier>,
    /// Told how many partitions this shard opened, or why it could not.
    pub ready: std::sync::mpsc::Sender<Result<usize, String>>,
}

/// Senders from one shard to each other shard (None at its own index).
pub type PeerSenders = Vec<Option<mpsc::Sender<ShardMsg>>>;

/// Builds the per-pair queues: `peers[i][j]` sends from shard i to j,
/// `inboxes[j]` holds what j receives from each i.
pub fn queues(n: usize) -> (Vec<PeerSenders>, Vec<Vec<mpsc::Receiver<ShardMsg>>>) {
    let mut peers: Vec<PeerSenders> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut inboxes: Vec<Vec<mpsc::Receiver<ShardMsg>>> = (0..n).map(|_| Vec::new()).collect();
    for (i, row) in peers.iter_mut().enumerate() {
        for (j, slot) in row.iter_mut().enumerate() {
            if i != j {
                let (tx, rx) = mpsc::channel(PEER_QUEUE_DEPTH);
                *slot = Some(tx);
                inboxes[j].push(rx);
            }
        }
    }
    (peers, inboxes)
}

/// Builds the shard on the current thread's runtime, opens its partitions,
/// reports ready and waits for every other shard; then starts its timers
/// and, in cluster mode, replication. `None`: another shard failed to
/// start, and nothing is to be served.
pub async fn start(setup: ShardSetup) -> anyhow::Result<Option<Rc<Shard>>> {
    let ShardSetup {
        id,
        shared,
        peers,
        inboxes,
        shutdown,
        drained: _,
        opened,
        ready,
    } = setup;
    let shard = Rc::new(Shard {
        id,
        shared,
        peers,
        partitions: RefCell::new(HashMap::new()),
        replicated: RefCell::new(BTreeSet::new()),
        told: RefCell::new(HashMap::new()),
        shutdown,
    });
    for mut inbox in inboxes {
        let shard = shard.clone();
        tokio_uring::spawn(async move {
            while let Some(msg) = inbox.recv().await {
                shard.clone().receive(msg).await;
            }
        });
    }
    let view = shard.shared.cluster.as_ref().map(|c| c.view());
    for topic in shard.shared.topics() {
        if let Err(e) = shard.open_topic(topic.clone(), true, view.as_ref()).await {
            let _ = ready.send(Err(e.clone()));
            anyhow::bail!(e);
        }
    }
    let _ = ready.send(Ok(shard.partitions.borrow().len()));
    let mut stopped = shard.shutdown.clone();
    tokio::select! {
        _ = opened.wait() => {}
        // Another shard failed to start: nothing was served here.
        _ = stopped.wait_for(|s| *s) => {
            shard.close_all().await;
            return Ok(None);
        }
    }
    if shard.shared.cluster.is_some() {
        start_replication(&shard);
    }
    tokio_uring::spawn(retention_timer(shard.clone()));
    tokio_uring::spawn(cleaner_timer(shard.clone()));
    if shard.shared.config.scrub_interval_ms > 0 {
        tokio_uring::spawn(scrub_timer(shard.clone()));
    }
    Ok(Some(shard))
}

/// Cluster mode: takes the replication sessions peers open with this
/// shard, fetches from every other broker for the partitions it leads, and
/// keeps this shard's replicas in step with the controller's state.
fn start_replication(shard: &Rc<Shard>) {
    let Some(node) = shard.shared.cluster.clone() else {
        return;
    };
    let (inbox, mut sessions) = mpsc::unbounded_channel();
    node.session_inbox(shard.id, inbox);
    let serving = shard.clone();
    tokio_uring::spawn(async move {
        while let Some((send, recv)) = sessions.recv().await {
            let shard = serving.clone();
            tokio_uring::spawn(async move {
                if let Err(e) = crate::cluster::replication::serve_session(shard, send, recv).await
                {
                    tracing::debug!("a follower's replication session ended: {e:#}");
                }
            });
        }
    });
    for &peer in node.config().peers.keys() {
        if peer != node.config().node_id {
            tokio_uring::spawn(crate::cluster::replication::follow(shard.clone(), peer));
        }
    }
    tokio_uring::spawn(follow_cluster(shard.clone(), node));
}

/// Applies every change of the cluster metadata to this shard: creates the
/// topics the controller created (the first shard to see one writes the
/// catalog), opens this shard's replicas of them, and hands each replica
/// its partition's new state.
async fn follow_cluster(shard: Rc<Shard>, node: Arc<crate::cluster::agent::ClusterNode>) {
    let mut changes = node.changes();
    let mut shutdown = shard.shutdown.clone();
    loop {
        let view = node.view();
        if let Some(broker_epoch) = view.epoch {
            for (name, text) in &view.state.topics {
                if shard.shared.topic(name).is_none() {
                    match Topic::from_text(name, text) {
                        Ok(topic) => {
                            let created = shard
                                .shared
                                .catalog
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .create(topic);
                            match created {
                                Ok(_) => {
                                    tracing::info!(topic = %name, "topic created by the controller")
                                }
                                Err(catalog::Refusal(ErrorCode::TopicExists, _)) => {}
                                Err(catalog::Refusal(_, e)) => {
                                    tracing::error!(topic = %name, "creating a replicated topic: {e}")
                                }
                            }
                        }
                        Err(e) => {
                            tracing::error!(topic = %name, "the controller's topic settings: {e:#}")
                        }
                    }
                }
                if let Some(topic) = shard.shared.topic(name) {
                    if let Err(e) = shard.open_topic(topic, false, Some(&view)).await {
                        tracing::error!(topic = %name, "opening replicas: {e}");
                    }
                }
            }
            let me = node.config().node_id;
            let owned: Vec<_> = view
                .state
                .partitions
                .iter()
                .filter(|(tp, p)| {
                    p.replicas.contains(&me) && shard.owner(&tp.topic, tp.partition) == shard.id
                })
                .collect();
            for (tp, state) in owned {
                let current = (state.clone(), broker_epoch);
                if shard.told.borrow().get(tp) == Some(&current) {
                    continue;
                }
                let handle = shard
                    .partitions
                    .borrow()
                    .get(&(tp.topic.clone(), tp.partition))
                    .cloned();
                if let Some(handle) = handle {
                    handle
                        .send(PartCmd::ClusterState {
                            state: state.clone(),
                            broker_epoch,
                        })
                        .await;
                    shard.told.borrow_mut().insert(tp.clone(), current);
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Sends every partition of this shard a scrub step at each interval, one
/// partition at a time: one scrub read in flight per shard bounds both the
/// disk load and the descriptors that reads of closed files hold.
async fn scrub_timer(shard: Rc<Shard>) {
    let every = Duration::from_millis(shard.shared.config.scrub_interval_ms);
    let bytes = shard.shared.config.scrub_bytes as usize;
    every_partition_every(&shard, every, async |handle| {
        let (done, finished) = tokio::sync::oneshot::channel();
        handle.send(PartCmd::Scrub { bytes, done }).await;
        let _ = finished.await;
    })
    .await;
}

async fn retention_timer(shard: Rc<Shard>) {
    let every = Duration::from_millis(shard.shared.config.retention_check_ms);
    every_partition_every(&shard, every, async |handle| {
        handle.send(PartCmd::Retention).await;
    })
    .await;
}

/// The shard's log cleaner: one partition at a time, its clean prepared
/// here (reading and writing files while the partition goes on serving)
/// and installed by the partition's own task in one short step.
async fn cleaner_timer(shard: Rc<Shard>) {
    let config = &shard.shared.config;
    let every = Duration::from_millis(config.cleaner_interval_ms);
    let options = ringlog_engine::CleanOptions {
        map_bytes: usize::try_from(config.cleaner_map_bytes).unwrap_or(usize::MAX),
        ..ringlog_engine::CleanOptions::default()
    };
    every_partition_every(&shard, every, async |handle| {
        let (reply, plan) = tokio::sync::oneshot::channel();
        handle.send(PartCmd::PlanClean { options, reply }).await;
        let Ok(Some(plan)) = plan.await else {
            return;
        };
        let dir = plan.dir().to_path_buf();
        let prepared = match ringlog_engine::compact::prepare(plan).await {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::error!(dir = %dir.display(), "log clean failed: {e}");
                return;
            }
        };
        let (reply, installed) = tokio::sync::oneshot::channel();
        handle
            .send(PartCmd::InstallClean {
                prepared: Box::new(prepared),
                reply,
            })
            .await;
        let _ = installed.await;
    })
    .await;
}

/// Runs `step` for each partition of the shard in turn, every `every`,
/// until the broker stops (also in the middle of a round).
async fn every_partition_every(
    shard: &Rc<Shard>,
    every: Duration,
    mut step: impl AsyncFnMut(PartitionHandle),
) {
    let mut shutdown = shard.shutdown.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let handles: Vec<PartitionHandle> = shard.partitions.borrow().values().cloned().collect();
        for handle in handles {
            tokio::select! {
                () = step(handle) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

impl Shard {
    /// The shard owning a partition.
    pub fn owner(&self, topic: &str, partition: u32) -> usize {
        catalog::owner(topic, partition, self.shared.config.shards)
    }

    /// Sends a command to a partition's task, on this shard or another.
    pub async fn route(&self, topic: &str, partition: u32, cmd: PartCmd) {
        let owner = self.owner(topic, partition);
        if owner == self.id {
            self.deliver(topic, partition, cmd).await;
            return;
        }
        let Some(peer) = self.peers.get(owner).and_then(Option::as_ref) else {
            cmd.fail(Failure::new(
                ErrorCode::Unknown,
                format!("no shard {owner}"),
            ));
            return;
        };
        let msg = ShardMsg::Partition {
            topic: topic.to_string(),
            partition,
            cmd,
        };
        if let Err(mpsc::error::SendError(ShardMsg::Partition { cmd, .. })) = peer.send(msg).await {
            cmd.fail(Failure::new(
                ErrorCode::ShuttingDown,
                "the owning shard has stopped",
            ));
        }
    }

    /// The partitions open on this shard as replicas.
    pub fn replicated_partitions(&self) -> Vec<ringlog_cluster::TopicPartition> {
        self.replicated.borrow().iter().cloned().collect()
    }

    /// Sends a command to a partition of this shard.
    pub async fn deliver(&self, topic: &str, partition: u32, cmd: PartCmd) {
        let handle = self
            .partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned();
        match handle {
            Some(handle) => handle.send(cmd).await,
            // In the catalog but not open: being created or deleted. Retriable,
            // as Kafka's NOT_LEADER_OR_FOLLOWER: a producer must not take it
            // for a permanent failure and drop the batch.
            None => cmd.fail(Failure::new(
                ErrorCode::NotLeader,
                format!(
                    "{topic}-{partition} is not open on shard {} (being created or deleted)",
                    self.id
                ),
            )),
        }
    }

    async fn receive(self: Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Partition {
                topic,
                partition,
                cmd,
            } => self.deliver(&topic, partition, cmd).await,
            // Opening recovers logs: run it aside so the queue keeps moving.
            ShardMsg::Open { topic, reply } => {
                tokio_uring::spawn(async move {
                    let view = self.shared.cluster.as_ref().map(|c| c.view());
                    let _ = reply.send(self.open_topic(topic, false, view.as_ref()).await);
                });
            }
            ShardMsg::Drop { topic, reply } => {
                tokio_uring::spawn(async move {
                    self.drop_topic(&topic).await;
                    let _ = reply.send(());
                });
            }
            ShardMsg::Reconfigure { topic, reply } => {
                tokio_uring::spawn(async move {
                    let handles: Vec<PartitionHandle> = (0..topic.config.partitions)
                        .filter_map(|p| {
                            self.partitions
                                .borrow()
                                .get(&(topic.name.clone(), p))
                                .cloned()
                        })
                        .collect();
                    for handle in handles {
                        let (done, applied) = oneshot::channel();
                        handle
                            .send(PartCmd::Reconfigure {
                                topic: topic.clone(),
                                done,
                            })
                            .await;
                        let _ = applied.await;
                    }
                    let _ = reply.send(());
                });
            }
        }
    }

    /// Opens this shard's partitions of `topic`; in cluster mode those
    /// `view` (what this broker knows of the cluster) places here.
    async fn open_topic(
        &self,
        topic: Arc<Topic>,
        at_start: bool,
        view: Option<&crate::cluster::agent::View>,
    ) -> Result<(), String> {
        // In cluster mode every topic is replicated (only the controller
        // creates topics there, `__consumer_offsets` included); a broker
        // opens the partitions it holds a replica of, and at start, before
        // it knows the assignments, every one in its catalog.
        let cluster = self.shared.cluster.clone();
        for p in 0..topic.config.partitions {
            if self.owner(&topic.name, p) != self.id
                || self
                    .partitions
                    .borrow()
                    .contains_key(&(topic.name.clone(), p))
            {
                continue;
            }
            let tp = ringlog_cluster::TopicPartition::new(topic.name.clone(), p);
            if let Some(view) = view {
                let elsewhere = view
                    .state
                    .partitions
                    .get(&tp)
                    .is_some_and(|s| !s.replicas.contains(&view.node_id));
                if elsewhere {
                    continue;
                }
            }
            let (handle, report) = partition::open(
                &self.shared.config.data_dir,
                topic.clone(),
                p,
                self.id,
                self.shared.metrics.clone(),
                self.shared.config.write_mode,
                cluster.clone(),
            )
            .await
            .map_err(|e| format!("opening {}-{p}: {e}", topic.name))?;
            if !report.repairs.is_empty() {
                tracing::warn!(topic = %topic.name, partition = p, repairs = ?report.repairs, "recovery repaired the log");
            } else if at_start {
                tracing::debug!(topic = %topic.name, partition = p, segments = report.segments, "partition recovered");
            }
            self.partitions
                .borrow_mut()
                .insert((topic.name.clone(), p), handle);
            if cluster.is_some() {
                self.replicated.borrow_mut().insert(tp);
            }
        }
        Ok(())
    }

    async fn drop_topic(&self, topic: &Topic) {
        for p in 0..topic.config.partitions {
            let handle = self
                .partitions
                .borrow_mut()
                .remove(&(topic.name.clone(), p));
            if let Some(handle) = handle {
                handle.close(true).await;
            } else if self.owner(&topic.name, p) == self.id {
                // A creation that failed part way left this one unopened,
                // perhaps with a directory: nothing of it may stay on disk.
                let dir = Topic::partition_dir(&self.shared.config.data_dir, &topic.name, p);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(dir = %dir.display(), "removing a partition directory: {e}");
                    }
                }
            }
        }
    }

    /// Runs `msg` on every shard (this one included) and waits for all.
    pub async fn broadcast<T>(
        self: &Rc<Self>,
        make: impl Fn(oneshot::Sender<T>) -> ShardMsg,
    ) -> Vec<Option<T>> {
        let mut waits = Vec::new();
        for owner in 0..self.shared.config.shards {
            let (reply, rx) = oneshot::channel();
            let msg = make(reply);
            if owner == self.id {
                self.clone().receive(msg).await;
            } else if let Some(peer) = self.peers[owner].as_ref() {
                let _ = peer.send(msg).await;
            }
            waits.push(rx);
        }
        let mut out = Vec::new();
        for rx in waits {
            out.push(rx.await.ok());
        }
        out
    }

    pub(crate) async fn close_all(&self) {
        let handles: Vec<PartitionHandle> = self
            .partitions
            .borrow_mut()
            .drain()
            .map(|(_, h)| h)
            .collect();
        for handle in handles {
            handle.close(false).await;
        }
    }
}
