//! Start-up and shutdown of the whole broker: listeners, shard threads,
//! the metrics endpoint, signals.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{watch, Barrier};

use crate::config::Config;
use crate::shard::{self, ShardSetup, Shared};

/// How long start-up waits for a taken port to be released.
const BIND_PATIENCE: Duration = Duration::from_secs(5);

/// Binds `addr`, waiting up to [`BIND_PATIENCE`] while it is in use: a
/// broker that just died keeps its listener until the kernel has torn down
/// its io_uring instance, which happens after the process is reaped.
fn bind_patiently(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let started = std::time::Instant::now();
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && started.elapsed() < BIND_PATIENCE =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {addr}")),
        }
    }
}

/// Binds one SO_REUSEPORT listener per shard on the same address: the
/// kernel spreads new connections over the shards.
fn bind_reuseport(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpListener>> {
    // SO_REUSEPORT would let this broker silently share a port another
    // process of the same user listens on: probe with a plain bind first, so
    // a taken port is an error (it also resolves port 0 to a free port).
    let probe = bind_patiently(addr)?;
    let mut addr = probe.local_addr()?;
    drop(probe);
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket
            .bind(&addr.into())
            .with_context(|| format!("binding {addr}"))?;
        socket.listen(1024)?;
        let listener: TcpListener = socket.into();
        // Port 0 resolves on the first bind; the others join that port.
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A running broker.
pub struct Broker {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where metrics are served, if enabled.
    pub metrics: Option<SocketAddr>,
    /// Where Kafka clients connect, if enabled.
    pub kafka: Option<SocketAddr>,
    /// What the schema registry knows (its thread publishes here).
    pub schemas: Arc<ringlog_registry::validation::Known>,
    shutdown: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    shard_count: usize,
    cluster: Option<Arc<crate::cluster::agent::ClusterNode>>,
}

impl Broker {
    /// Recovers every partition and starts serving.
    pub fn start(mut config: Config) -> anyhow::Result<Broker> {
        let n = config.shards;
        let fds = crate::fdlimit::raise_and_split(
            n,
            config.max_connections,
            config.max_open_files,
            config.sendfile_min_bytes != u32::MAX,
        )?;
        tracing::info!(
            soft_before = fds.soft_before,
            soft = fds.soft,
            hard = fds.hard,
            segment_files_per_shard = fds.files_per_shard,
            connections = fds.connections,
            "open-files limit"
        );
        if fds.connections < config.max_connections {
            tracing::warn!(
                configured = config.max_connections,
                served = fds.connections,
                "the open-files limit serves fewer connections than --max-connections"
            );
            config.max_connections = fds.connections;
        }
        config.max_open_files = Some(fds.files_per_shard * n);
        config.sendfile_files = fds.sendfile_files;
        let listeners = bind_reuseport(config.listen, n)?;
        let listen = listeners[0].local_addr()?;
        let kafka_listeners = match config.kafka_listen {
            Some(addr) => bind_reuseport(addr, n)
                .with_context(|| format!("binding the Kafka listener on {addr}"))?
                .into_iter()
                .map(Some)
                .collect(),
            None => (0..n).map(|_| None).collect::<Vec<_>>(),
        };
        let kafka = match &kafka_listeners[0] {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                crate::metrics::bind(addr).with_context(|| format!("binding metrics on {addr}"))?,
            ),
            None => None,
        };
        let mut shared = Shared::load(config, listen)?;
        shared.kafka_address = kafka.map(|addr| {
            shared
                .config
                .kafka_advertised
                .clone()
                .unwrap_or_else(|| (addr.ip().to_string(), addr.port()))
        });
        if let Some(c) = &shared.config.cluster {
            let node = crate::cluster::agent::ClusterNode::start(
                c,
                &shared.config.data_dir,
                listen.to_string(),
                shared
                    .kafka_address
                    .as_ref()
                    .map_or_else(String::new, |(host, port)| format!("{host}:{port}")),
            )?;
            shared.cluster = Some(Arc::new(node));
        }
        let cluster = shared.cluster.clone();
        let schemas = shared.schemas.clone();
        let shared = Arc::new(shared);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let drained = Arc::new(Barrier::new(n));
        let opened = Arc::new(Barrier::new(n));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (mut peers, inboxes) = shard::queues(n);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut threads = Vec::with_capacity(n);
        let fronts = listeners.into_iter().zip(kafka_listeners);
        for (id, ((listener, kafka_listener), inboxes)) in fronts.zip(inboxes).enumerate() {
            let setup = ShardSetup {
                id,
                shared: shared.clone(),
                peers: std::mem::take(&mut peers[id]),
                inboxes,
                shutdown: shutdown_rx.clone(),
                drained: drained.clone(),
                opened: opened.clone(),
                ready: ready_tx.clone(),
            };
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            let thread = std::thread::Builder::new()
                .name(format!("ringlog-shard-{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    crate::shard_thread::run(
                        setup,
                        crate::shard_thread::Listeners {
                            native: listener,
                            kafka: kafka_listener,
                        },
                    );
                })
                .context("spawning a shard thread")?;
            threads.push(thread);
        }
        drop(ready_tx);
        let mut broker = Broker {
            listen,
            metrics: None,
            kafka,
            schemas,
            shutdown,
            threads,
            shard_count: n,
            cluster,
        };
        let mut partitions = 0;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(opened)) => partitions += opened,
                Ok(Err(e)) => {
                    broker.stop();
                    bail!("start-up failed: {e}");
                }
                Err(_) => {
                    broker.stop();
                    bail!("a shard thread ended during start-up");
                }
            }
        }
        if let Some(listener) = metrics_listener {
            broker.metrics = listener.local_addr().ok();
            crate::metrics::serve(listener, shared.metrics.clone());
        }
        tracing::info!(
            partitions,
            topics = shared
                .catalog
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .all()
                .count(),
            "recovered"
        );
        Ok(broker)
    }

    /// Stops accepting, lets in-flight requests finish, syncs and closes
    /// every log, and waits for the shards to exit.
    pub fn stop(&mut self) {
        // A cluster member hands its leaderships over first (a controlled
        // shutdown): its clients move to the new leaders while its logs
        // close.
        if let Some(cluster) = &self.cluster {
            cluster.stop();
        }
        let _ = self.shutdown.send(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }

    /// Shard threads started.
    pub fn shards(&self) -> usize {
        self.shard_count
    }

    /// True once every shard thread has exited.
    pub fn finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
