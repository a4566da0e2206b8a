//! A shard's thread: starts the shard ([`crate::shard::start`]), then
//! serves the connections its listeners accept through the two front doors,
//! the native protocol ([`crate::native`]) and Kafka's ([`crate::kafka`]),
//! until shutdown; then lets in-flight requests finish and closes the
//! partitions.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::ops;
use crate::shard::{self, Shard, ShardSetup};

/// A shard's listening sockets (`SO_REUSEPORT`: every shard has its own on
/// the same ports).
pub struct Listeners {
    /// The native protocol's.
    pub native: std::net::TcpListener,
    /// The Kafka protocol's, if on.
    pub kafka: Option<std::net::TcpListener>,
}

/// Runs a shard on the current thread until shutdown completes.
pub fn run(setup: ShardSetup, listeners: Listeners) {
    let ready = setup.ready.clone();
    let config = &setup.shared.config;
    if let Some(files) = config.max_open_files {
        ringlog_engine::files::set_open_files_max(files / config.shards);
    }
    let result = tokio_uring::start(run_async(setup, listeners));
    if let Err(e) = result {
        let _ = ready.send(Err(format!("{e:#}")));
    }
}

async fn run_async(setup: ShardSetup, listeners: Listeners) -> anyhow::Result<()> {
    let drained = setup.drained.clone();
    let Some(shard) = shard::start(setup).await? else {
        return Ok(());
    };
    if let (Some(node), 0) = (shard.shared.cluster.clone(), shard.id) {
        tokio_uring::spawn(ops::create_offsets_topic(shard.clone(), node));
    }
    // Every connection task holds a clone; recv() returns None once all ended.
    let (conn_token, mut conns_done) = mpsc::channel::<()>(1);
    if let Some(kafka) = listeners.kafka {
        tokio_uring::spawn(accept(
            shard.clone(),
            kafka,
            Front::Kafka,
            conn_token.clone(),
        ));
    }
    accept(shard.clone(), listeners.native, Front::Native, conn_token).await;
    let _ = conns_done.recv().await;
    drained.wait().await;
    shard.close_all().await;
    tracing::info!(shard = shard.id, "shard stopped");
    Ok(())
}

/// Which protocol a listener speaks.
#[derive(Clone, Copy)]
enum Front {
    Native,
    Kafka,
}

/// Accepts connections on `listener` until shutdown, serving each with
/// `front`'s protocol; every connection holds a clone of `token`.
async fn accept(
    shard: Rc<Shard>,
    listener: std::net::TcpListener,
    front: Front,
    token: mpsc::Sender<()>,
) {
    let listener = tokio_uring::net::TcpListener::from_std(listener);
    let mut shutdown = shard.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let limit = shard.shared.config.max_connections;
                    if shard.shared.connections.fetch_add(1, Ordering::AcqRel) >= limit {
                        shard.shared.connections.fetch_sub(1, Ordering::AcqRel);
                        tracing::warn!(%peer, limit, "refusing connection: too many connections");
                        drop(stream);
                        continue;
                    }
                    let shard = shard.clone();
                    let token = token.clone();
                    tokio_uring::spawn(async move {
                        shard.shared.metrics.connections(shard.id, 1);
                        match front {
                            Front::Native => crate::native::serve(shard.clone(), stream, peer).await,
                            Front::Kafka => crate::kafka::serve(shard.clone(), stream, peer).await,
                        }
                        shard.shared.metrics.connections(shard.id, -1);
                        shard.shared.connections.fetch_sub(1, Ordering::AcqRel);
                        drop(token);
                    });
                }
                Err(e) => {
                    tracing::warn!(shard = shard.id, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
