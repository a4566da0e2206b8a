//! A broker's membership of the cluster: its member of the controller
//! quorum, its registration and heartbeats, and what it knows of the
//! cluster, on a thread of its own (plain tokio; the shards never wait on
//! it). The data path's replication runs on the shards.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringlog_cluster::controller::{ClusterState, Command};
use ringlog_cluster::lease::BrokerLease;
use ringlog_cluster::Millis;
use tokio::sync::{mpsc, oneshot, watch};

use super::quic::Tls;
use super::raft::{
    Controller, HeartbeatAnswer, HeartbeatRequest, Peers, RegisterRequest, Reply, SessionInboxes,
};

/// How long a command from a shard (an ISR change) may take at the
/// controller before the shard is told it failed.
const COMMAND_WITHIN: Duration = Duration::from_secs(5);

type CommandRequest = (Command, oneshot::Sender<anyhow::Result<Reply>>);
type ConnectRequest = (u32, oneshot::Sender<anyhow::Result<quinn::Connection>>);

/// Cluster-mode settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This broker's node id.
    pub node_id: u32,
    /// Where this broker's QUIC endpoint listens.
    pub listen: SocketAddr,
    /// Every node of the cluster (this one included) and its QUIC address.
    pub peers: BTreeMap<u32, SocketAddr>,
    /// Certificates written by `ringlog-server certs`.
    pub tls_dir: PathBuf,
    /// A broker silent this long is fenced (ms).
    pub session_timeout_ms: u64,
    /// A follower that has not caught up for this long leaves the ISR (ms).
    pub replica_lag_max_ms: u64,
}

impl ClusterConfig {
    /// Parses `--peers 1@127.0.0.1:9392,2@127.0.0.1:9393`.
    pub fn parse_peers(spec: &str) -> anyhow::Result<BTreeMap<u32, SocketAddr>> {
        let mut peers = BTreeMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, addr) = item
                .split_once('@')
                .with_context(|| format!("--peers entry {item:?} is not ID@HOST:PORT"))?;
            let id: u32 = id
                .parse()
                .with_context(|| format!("--peers entry {item:?}: {id:?} is not a node id"))?;
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("--peers entry {item:?}: {addr:?} is not HOST:PORT"))?;
            if peers.insert(id, addr).is_some() {
                bail!("--peers names node {id} twice");
            }
        }
        if peers.is_empty() {
            bail!("--peers names no node");
        }
        Ok(peers)
    }
}

/// What this broker knows of the cluster.
#[derive(Debug, Clone)]
pub struct View {
    /// The cluster metadata as this broker's controller member applied it.
    pub state: ClusterState,
    /// The active controller, if known.
    pub controller: Option<u32>,
    /// This broker's epoch, once registered.
    pub epoch: Option<u64>,
    /// This broker's node id.
    pub node_id: u32,
    /// Whether this broker may act as a leader now (its lease runs).
    pub lease_valid: bool,
}

/// This broker's cluster membership, running.
pub struct ClusterNode {
    view: Arc<Mutex<View>>,
    /// Raised whenever the view changes; shards watch it.
    changes: Arc<watch::Sender<u64>>,
    /// The clock every replica of this broker runs on, and its lease's end
    /// on that clock (0: no lease).
    clock: Instant,
    lease: SharedLease,
    commands: mpsc::UnboundedSender<CommandRequest>,
    connects: mpsc::UnboundedSender<ConnectRequest>,
    sessions: SessionInboxes,
    config: ClusterConfig,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ClusterNode {
    /// Joins the cluster: loads the certificates (refusing to start without
    /// them), binds the QUIC endpoint, starts this broker's controller member
    /// and registers with the addresses clients reach it at (Kafka's
    /// empty without a Kafka listener). Returns once the endpoint and the
    /// controller run; registration goes on in the background.
    pub fn start(
        config: &ClusterConfig,
        data_dir: &Path,
        client_address: String,
        kafka_address: String,
    ) -> anyhow::Result<Self> {
        let tls = Tls::load(&config.tls_dir, config.node_id)?;
        let view = Arc::new(Mutex::new(View {
            state: ClusterState::new(),
            controller: None,
            epoch: None,
            node_id: config.node_id,
            lease_valid: false,
        }));
        let (stop, stopped) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let node_config = config.clone();
        let config = config.clone();
        let dir = data_dir.join("controller");
        let shared = view.clone();
        let changes = Arc::new(watch::channel(0u64).0);
        let clock = Instant::now();
        let lease = SharedLease::default();
        let sessions = SessionInboxes::default();
        let (commands, mut command_rx) = mpsc::unbounded_channel::<CommandRequest>();
        let (connects, mut connect_rx) = mpsc::unbounded_channel::<ConnectRequest>();
        let membership_state = Membership {
            view: shared.clone(),
            changes: changes.clone(),
            clock,
            lease: lease.clone(),
        };
        let thread_sessions = sessions.clone();
        let thread = std::thread::Builder::new()
            .name("ringlog-cluster".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("cluster runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let started = async {
                        let endpoint = tls.endpoint(config.listen)?;
                        let addrs = config
                            .peers
                            .iter()
                            .map(|(id, a)| (u64::from(*id), *a))
                            .collect();
                        let peers = Peers::new(endpoint.clone(), addrs);
                        let controller = Controller::start(
                            u64::from(config.node_id),
                            &dir,
                            peers.clone(),
                            config.session_timeout_ms,
                        )
                        .await?;
                        tokio::spawn(
                            controller
                                .clone()
                                .serve(endpoint.clone(), thread_sessions),
                        );
                        tokio::spawn(controller.clone().run_liveness());
                        anyhow::Ok((endpoint, controller, peers))
                    };
                    let (endpoint, controller) = match started.await {
                        Ok((endpoint, controller, peers)) => {
                            let _ = ready_tx.send(Ok(()));
                            // Connections are made here, so their drivers
                            // run on this thread whichever shard asked.
                            tokio::spawn(async move {
                                while let Some((node, reply)) = connect_rx.recv().await {
                                    let peers = peers.clone();
                                    tokio::spawn(async move {
                                        let _ = reply.send(peers.connection(u64::from(node)).await);
                                    });
                                }
                            });
                            (endpoint, controller)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    // Shards' commands (ISR changes) go through this thread,
                    // which owns the controller member.
                    let submitter = controller.clone();
                    tokio::spawn(async move {
                        while let Some((command, reply)) = command_rx.recv().await {
                            let controller = submitter.clone();
                            tokio::spawn(async move {
                                let _ = reply.send(controller.submit(command, COMMAND_WITHIN).await);
                            });
                        }
                    });
                    tokio::spawn(follow_state(controller.clone(), membership_state.clone()));
                    tokio::select! {
                        _ = stopped => {}
                        _ = membership(&config, controller.clone(), (client_address, kafka_address), membership_state.clone()) => {}
                    }
                    membership_state.lease.set(0, 0);
                    leave(&config, &controller, &shared).await;
                    let _ = controller.raft.shutdown().await;
                    endpoint.close(0u32.into(), b"broker stopping");
                    endpoint.wait_idle().await;
                });
            })
            .context("spawning the cluster thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                view,
                changes,
                clock,
                lease,
                commands,
                connects,
                sessions,
                config: node_config,
                stop: Mutex::new(Some(stop)),
                thread: Mutex::new(Some(thread)),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                bail!("the cluster thread ended during start-up")
            }
        }
    }

    /// What this broker knows of the cluster now.
    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes whenever [`ClusterNode::view`] does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Milliseconds on the clock this broker's replicas share.
    pub fn now(&self) -> Millis {
        self.clock.elapsed().as_millis() as Millis
    }

    /// When the lease this broker holds under broker epoch `epoch` ends on
    /// [`ClusterNode::now`]'s clock (0 if its lease is under another
    /// epoch): a replica made under `epoch` may lead until then. A lease
    /// renewed by a new registration is not the old incarnation's.
    pub fn lease_until(&self, epoch: u64) -> Millis {
        self.lease.until(epoch)
    }

    /// The cluster settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Applies `command` through the controller quorum (from any thread).
    pub async fn submit(&self, command: Command) -> anyhow::Result<Reply> {
        ask_cluster_thread(&self.commands, command).await
    }

    /// A QUIC connection to node `node` (made on first use), driven by the
    /// cluster thread: a shard's runtime may end before the connection.
    pub async fn connection(&self, node: u32) -> anyhow::Result<quinn::Connection> {
        ask_cluster_thread(&self.connects, node).await
    }

    /// Where the replication sessions opened by peers with shard `shard`
    /// are handed over.
    pub fn session_inbox(&self, shard: usize, inbox: super::raft::SessionSender) {
        self.sessions.set(shard, inbox);
    }

    /// Leaves: stops the controller member and closes the endpoint.
    pub fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A clean stop fences this broker's own epoch through the controller
/// (Kafka's controlled shutdown): its leaderships move at once rather than
/// after the session timeout, and its next start registers without waiting
/// for this session to run out. Gives up after a few seconds (no quorum).
async fn leave(config: &ClusterConfig, controller: &Controller, view: &Mutex<View>) {
    let epoch = view.lock().unwrap_or_else(|e| e.into_inner()).epoch;
    let Some(epoch) = epoch else { return };
    let fence = Command::FenceBroker {
        broker: config.node_id,
        epoch,
    };
    match controller.submit(fence, Duration::from_secs(3)).await {
        Ok(_) => tracing::info!(epoch, "left the cluster: leaderships handed over"),
        Err(e) => tracing::warn!("could not leave the cluster cleanly: {e:#}"),
    }
}

/// A different number at every start of the process.
fn incarnation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

/// Hands `question` to a task of the cluster thread and waits for its
/// answer (from a shard's runtime or any other).
async fn ask_cluster_thread<Q, A>(
    to: &mpsc::UnboundedSender<(Q, oneshot::Sender<anyhow::Result<A>>)>,
    question: Q,
) -> anyhow::Result<A> {
    let stopped = || anyhow::anyhow!("the cluster thread has stopped");
    let (reply, answer) = oneshot::channel();
    to.send((question, reply)).map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// The broker epoch a lease was granted under, and when it ends.
#[derive(Clone, Default)]
struct SharedLease(Arc<Mutex<(u64, Millis)>>);

impl SharedLease {
    fn set(&self, epoch: u64, until: Millis) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = (epoch, until);
    }

    fn until(&self, epoch: u64) -> Millis {
        let (held, until) = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        if held == epoch {
            until
        } else {
            0
        }
    }
}

/// What the cluster thread keeps current for the shards.
#[derive(Clone)]
struct Membership {
    view: Arc<Mutex<View>>,
    changes: Arc<watch::Sender<u64>>,
    clock: Instant,
    lease: SharedLease,
}

impl Membership {
    fn now(&self) -> Millis {
        self.clock.elapsed().as_millis() as Millis
    }

    /// Updates the view with `change` and tells the shards.
    fn update(&self, change: impl FnOnce(&mut View)) {
        change(&mut self.view.lock().unwrap_or_else(|e| e.into_inner()));
        self.changes.send_modify(|v| *v += 1);
    }
}

/// Copies every change of the controller's state into the view as it is
/// applied here, so leaderships and ISR changes reach the shards at once.
async fn follow_state(controller: Arc<Controller>, membership: Membership) {
    let mut state = controller.state();
    loop {
        let current = state.borrow_and_update().clone();
        let leader = controller.leader().map(|l| l as u32);
        membership.update(|v| {
            v.state = current;
            v.controller = leader;
        });
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// Registers, then heartbeats for as long as the session lasts; registers
/// again when fenced. Keeps the view and the lease current.
async fn membership(
    config: &ClusterConfig,
    controller: Arc<Controller>,
    (client_address, kafka_address): (String, String),
    membership: Membership,
) {
    let now = || membership.now();
    let every = Duration::from_millis((config.session_timeout_ms / 4).clamp(50, 1_000));
    let mut lease = BrokerLease::new(config.session_timeout_ms);
    let incarnation = incarnation();
    let update = |epoch: Option<u64>, lease: &BrokerLease| {
        membership.lease.set(epoch.unwrap_or(0), lease.expires_at());
        let state = controller.state().borrow().clone();
        let leader = controller.leader().map(|l| l as u32);
        let valid = lease.valid(now());
        membership.update(|v| {
            v.state = state;
            v.controller = leader;
            v.epoch = epoch;
            v.lease_valid = valid;
        });
    };
    loop {
        let sent = now();
        let registration = controller.register(RegisterRequest {
            broker: config.node_id,
            incarnation,
            address: client_address.clone(),
            kafka_address: kafka_address.clone(),
        });
        let epoch = match registration.await {
            Ok(epoch) => epoch,
            Err(e) => {
                tracing::warn!("registration failed: {e:#}");
                tokio::time::sleep(every).await;
                continue;
            }
        };
        tracing::info!(epoch, "registered with the controller");
        lease.renewed(sent);
        update(Some(epoch), &lease);
        let mut wait = every;
        loop {
            tokio::time::sleep(wait).await;
            let sent = now();
            let request = HeartbeatRequest {
                broker: config.node_id,
                epoch,
            };
            // A heartbeat that failed is sent again soon, to whichever node
            // leads by then.
            wait = every / 5;
            match controller.heartbeat(&request, every).await {
                Ok(HeartbeatAnswer::Alive) => {
                    lease.renewed(sent);
                    wait = every;
                }
                Ok(HeartbeatAnswer::Fenced) => {
                    tracing::warn!(epoch, "fenced by the controller: registering again");
                    lease.revoke();
                    update(None, &lease);
                    break;
                }
                Ok(HeartbeatAnswer::NotLeader(_)) => {}
                Err(e) => tracing::debug!("heartbeat failed: {e:#}"),
            }
            update(Some(epoch), &lease);
        }
    }
}
