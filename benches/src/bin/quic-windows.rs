//! `ringlog-quic-windows`: what quinn's flow-control windows do to a
//! replication stream. A follower asks for fetch-sized responses one after
//! the other (as a fetch session does) over ringlog's mutual-TLS QUIC on
//! loopback, once with quinn's default windows and once with raised ones
//! (`--stream-window`, `--conn-window`), alternating, and prints one JSON
//! line per run.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use ringlog_server::cluster::certs;
use ringlog_server::cluster::quic::{self, Tls};

#[derive(Debug, Parser)]
#[command(name = "ringlog-quic-windows", about)]
struct Args {
    /// Bytes to move per run.
    #[arg(long, default_value_t = 2 << 30)]
    bytes: u64,
    /// Bytes per response (a fetch answer).
    #[arg(long, default_value_t = 4 << 20)]
    response_bytes: u64,
    /// Runs of each setting, alternating.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Runtime threads: 1 puts both ends on one core, 2 gives each its own
    /// (as two brokers' shards on two cores).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The raised setting's stream receive window.
    #[arg(long, default_value_t = (4 << 20) + (256 << 10))]
    stream_window: u32,
    /// The raised setting's connection receive and send windows.
    #[arg(long, default_value_t = 16 << 20)]
    conn_window: u32,
    /// With a value, the raised setting is this MTU ceiling instead of the
    /// windows: the largest UDP payload accepted and the upper bound of
    /// path-MTU discovery (quinn's default ceiling is 1452).
    #[arg(long)]
    mtu: Option<u16>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    certs::generate(dir.path(), &[1, 2])?;
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        for run in 1..=args.runs {
            for setting in ["quinn-default", "raised"] {
                let secs = transfer(dir.path(), setting, &args).await?;
                let mb_s = args.bytes as f64 / secs / 1e6;
                println!(
                    "{{\"setting\":\"{setting}\",\"mtu\":{},\"stream_window\":{},\"conn_window\":{},\"run\":{run},\"threads\":{},\"bytes\":{},\"response_bytes\":{},\"secs\":{secs:.3},\"mb_per_s\":{mb_s:.1}}}",
                    args.mtu.unwrap_or(0), args.stream_window, args.conn_window, args.threads, args.bytes, args.response_bytes
                );
            }
        }
        anyhow::Ok(())
    })
}

async fn transfer(certs: &std::path::Path, setting: &str, args: &Args) -> anyhow::Result<f64> {
    let endpoint = |node| -> anyhow::Result<quinn::Endpoint> {
        let mut tls = Tls::load(certs, node)?;
        let mut t = quic::transport_config();
        let mut config = quinn::EndpointConfig::default();
        match (setting, args.mtu) {
            ("raised", Some(mtu)) => {
                let mut discovery = quinn::MtuDiscoveryConfig::default();
                discovery.upper_bound(mtu);
                t.mtu_discovery_config(Some(discovery));
                config.max_udp_payload_size(mtu)?;
            }
            ("raised", None) => {
                t.stream_receive_window(quinn::VarInt::from_u32(args.stream_window));
                t.receive_window(quinn::VarInt::from_u32(args.conn_window));
                t.send_window(u64::from(args.conn_window));
            }
            _ => {}
        }
        let t = Arc::new(t);
        tls.server.transport_config(t.clone());
        tls.client.transport_config(t);
        tls.endpoint_with("127.0.0.1:0".parse()?, config)
    };
    let leader = endpoint(1)?;
    let follower = endpoint(2)?;
    let addr = leader.local_addr()?;
    let response = vec![0x5au8; args.response_bytes as usize];
    let server = tokio::spawn(async move {
        let conn = leader.accept().await.context("no peer")?.await?;
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            recv.read_to_end(64).await?;
            send.write_all(&response).await?;
            send.finish()?;
        }
        anyhow::Ok(())
    });
    let conn = quic::connect(&follower, addr, 1).await?;
    let start = Instant::now();
    let mut moved = 0u64;
    while moved < args.bytes {
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(b"fetch").await?;
        send.finish()?;
        moved += recv.read_to_end(usize::MAX).await?.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    conn.close(0u32.into(), b"done");
    follower.wait_idle().await;
    let _ = server.await;
    Ok(secs)
}
