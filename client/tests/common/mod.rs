//! What the client's integration tests share: the broker binary on a
//! loopback port, and a tokio runtime to drive the library.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use ringlog_client::{Admin, Client};
use ringlog_server::testing::{server_binary, BrokerProcess};

/// The real `ringlog-server` with `shards` shards on a fresh data directory.
pub fn broker(dir: &std::path::Path, shards: usize) -> BrokerProcess {
    BrokerProcess::start(&server_binary(), dir, shards, &[]).expect("start the broker")
}

/// A two-worker runtime, like a small application's.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn free_udp_port() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Three brokers with short sessions, and their bootstrap list, once every
/// one is registered and unfenced.
pub fn cluster(dir: &std::path::Path) -> (Vec<Option<BrokerProcess>>, String) {
    let certs = dir.join("certs");
    ringlog_server::cluster::certs::generate(&certs, &[1, 2, 3]).unwrap();
    let peers = (1..=3)
        .map(|i| format!("{i}@{}", free_udp_port()))
        .collect::<Vec<_>>()
        .join(",");
    let brokers: Vec<Option<BrokerProcess>> = (1..=3)
        .map(|i: u32| {
            let id = i.to_string();
            let args = [
                "--node-id",
                &id,
                "--peers",
                &peers,
                "--tls-dir",
                certs.to_str().unwrap(),
                "--broker-session-timeout-ms",
                "2000",
                "--replica-lag-time-max-ms",
                "1000",
            ];
            let data = dir.join(format!("d{i}"));
            Some(BrokerProcess::start(&server_binary(), &data, 1, &args).unwrap())
        })
        .collect();
    let bootstrap = brokers
        .iter()
        .map(|b| b.as_ref().unwrap().addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    runtime().block_on(async {
        let admin = Admin::new(Client::connect(&bootstrap).await.unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = admin.describe_cluster().await.unwrap();
            if d.brokers.len() == 3 && d.brokers.iter().all(|b| !b.fenced) {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not form: {d:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (brokers, bootstrap)
}
