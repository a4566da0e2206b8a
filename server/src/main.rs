//! `ringlog-server`: the broker binary.

use std::time::Duration;

use clap::Parser;
use ringlog_server::config::{Args, Config, Tool};
use ringlog_server::server::Broker;
use signal_hook::consts::{SIGINT, SIGTERM};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLOG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("ringlog-server: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Tool::Certs { dir, nodes }) = &args.command {
        for path in ringlog_server::cluster::certs::generate(dir, nodes)? {
            println!("wrote {}", path.display());
        }
        println!(
            "keep {} private: whoever holds it can add brokers to the cluster",
            dir.join(ringlog_server::cluster::certs::CA_KEY).display()
        );
        return Ok(());
    }
    let config = Config::resolve(args)?;
    let signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    let data_dir = config.data_dir.clone();
    let cluster = config.cluster.clone();
    let shards = config.shards;
    let registry_listen = config.schema_registry_listen;
    let mut broker = Broker::start(config)?;
    // The registry is a client of this broker's own native listener.
    let registry = match registry_listen {
        Some(addr) => Some(
            ringlog_registry::start_thread(addr, broker.listen.to_string(), broker.schemas.clone())
                .map_err(|e| anyhow::anyhow!("binding the schema registry on {addr}: {e}"))?,
        ),
        None => None,
    };
    // Tests and scripts read these lines: keep their shape.
    println!("ringlog-server listening on {}", broker.listen);
    match broker.metrics {
        Some(addr) => println!("ringlog-server metrics on http://{addr}/metrics"),
        None => println!("ringlog-server metrics off"),
    }
    match broker.kafka {
        Some(addr) => println!("ringlog-server kafka listening on {addr}"),
        None => println!("ringlog-server kafka off"),
    }
    match registry {
        Some(addr) => println!("ringlog-server schema registry on http://{addr}"),
        None => println!("ringlog-server schema registry off"),
    }
    println!(
        "ringlog-server data in {} ({shards} shards)",
        data_dir.display()
    );
    match &cluster {
        Some(c) => println!(
            "ringlog-server cluster node {} of {}, replication on {}",
            c.node_id,
            c.peers.len(),
            c.listen
        ),
        None => println!("ringlog-server alone (no --peers)"),
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut signals = signals;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = tx.send(signal);
        }
    });
    // Wake now and then to notice a shard that died on its own.
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(signal) => {
                tracing::info!(
                    signal,
                    "shutting down: finishing in-flight requests, closing logs"
                );
                break;
            }
            Err(_) if broker.finished() => anyhow::bail!("a shard stopped unexpectedly"),
            Err(_) => {}
        }
    }
    broker.stop();
    handle.close();
    tracing::info!("stopped cleanly");
    Ok(())
}
