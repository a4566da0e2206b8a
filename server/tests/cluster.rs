//! Cluster mode with real processes: three `ringlog-server`s on loopback
//! form a controller quorum over QUIC with mutual TLS, register, and
//! heartbeat; the controller's death elects another, the dead broker is
//! fenced, and it comes back under a new epoch. A broker asked for cluster
//! mode without certificates refuses to start and says how to make them.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ringlog_protocol::{ApiKey, DescribeClusterResponse};

fn describe(addr: SocketAddr) -> Option<DescribeClusterResponse> {
    let mut client = std::panic::catch_unwind(|| Client::connect(addr)).ok()?;
    Some(
        client
            .call(ApiKey::DescribeCluster, &[])
            .ok::<DescribeClusterResponse>(ApiKey::DescribeCluster),
    )
}

fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

fn free_udp_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Three brokers on loopback with their certificates and data directories.
struct Cluster {
    dir: tempfile::TempDir,
    peers: String,
    session_ms: String,
    brokers: Vec<Option<Broker>>,
}

impl Cluster {
    fn start(session_ms: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        ringlog_server::cluster::certs::generate(&dir.path().join("certs"), &[1, 2, 3]).unwrap();
        let peers = (1..=3)
            .map(|i| format!("{i}@{}", free_udp_port()))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            dir,
            peers,
            session_ms: session_ms.to_string(),
            brokers: Vec::new(),
        };
        c.brokers = (1..=3).map(|i| Some(c.start_node(i))).collect();
        c
    }

    fn start_node(&self, i: usize) -> Broker {
        let certs = self.dir.path().join("certs");
        Broker::start_with(
            &self.dir.path().join(format!("d{i}")),
            1,
            &[
                "--node-id",
                &i.to_string(),
                "--peers",
                &self.peers,
                "--tls-dir",
                certs.to_str().unwrap(),
                "--broker-session-timeout-ms",
                &self.session_ms,
            ],
        )
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.brokers[i - 1].as_ref().unwrap().addr
    }

    /// Waits until broker `via` sees three live brokers and a controller.
    fn formed(&self, via: usize) -> DescribeClusterResponse {
        until("three registered brokers and a controller", 20, || {
            let d = describe(self.addr(via))?;
            (d.cluster_mode
                && d.controller.is_some()
                && d.brokers.len() == 3
                && d.brokers.iter().all(|b| !b.fenced))
            .then_some(d)
        })
    }
}

#[test]
fn three_brokers_elect_a_controller_and_fence_the_one_that_dies() {
    let mut cluster = Cluster::start(3_000);
    let formed = cluster.formed(1);
    for (i, b) in formed.brokers.iter().enumerate() {
        assert_eq!(b.address, cluster.addr(i + 1).to_string(), "{formed:?}");
    }
    let controller = formed.controller.unwrap() as usize;
    let old_epoch = formed.brokers[controller - 1].epoch;

    cluster.brokers[controller - 1].take().unwrap().kill();
    let survivor = if controller == 1 { 2 } else { 1 };
    let after = until("a new controller that fenced the dead broker", 20, || {
        let d = describe(cluster.addr(survivor))?;
        let fenced = d
            .brokers
            .iter()
            .find(|b| b.id as usize == controller)?
            .fenced;
        (d.controller.is_some_and(|c| c as usize != controller) && fenced).then_some(d)
    });
    assert!(
        after
            .brokers
            .iter()
            .filter(|b| b.id as usize != controller)
            .all(|b| !b.fenced),
        "a live broker was fenced: {after:?}"
    );

    // Back with its data directory: registered again, under a new epoch.
    cluster.brokers[controller - 1] = Some(cluster.start_node(controller));
    let back = until("the restarted broker registered again", 20, || {
        let d = describe(cluster.addr(survivor))?;
        let b = d.brokers.iter().find(|b| b.id as usize == controller)?;
        (!b.fenced && b.epoch > old_epoch).then_some(d)
    });
    assert_eq!(back.brokers.len(), 3);
}

#[test]
fn a_clean_stop_hands_over_at_once_and_the_restart_registers_without_waiting() {
    // A session far longer than the test: only a controlled shutdown can
    // fence the stopped broker, and only that lets it register again.
    let mut cluster = Cluster::start(120_000);
    let formed = cluster.formed(1);
    let controller = formed.controller.unwrap() as usize;
    let stopping = if controller == 3 { 2 } else { 3 };
    let status = cluster.brokers[stopping - 1].take().unwrap().terminate();
    assert!(status.success());
    until("the stopped broker fenced by its own leave", 30, || {
        let d = describe(cluster.addr(controller))?;
        d.brokers
            .iter()
            .any(|b| b.id as usize == stopping && b.fenced)
            .then_some(())
    });
    cluster.brokers[stopping - 1] = Some(cluster.start_node(stopping));
    cluster.formed(controller);
}

#[test]
fn cluster_mode_without_certificates_refuses_to_start_and_names_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ringlog-server"))
            .args(["--data-dir"])
            .arg(dir.path().join("d"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
            .args(extra)
            .output()
            .unwrap()
    };
    let peers = "1@127.0.0.1:1,2@127.0.0.1:2";
    let no_dir = run(&["--node-id", "1", "--peers", peers]);
    let empty = run(&[
        "--node-id",
        "1",
        "--peers",
        peers,
        "--tls-dir",
        "/nonexistent",
    ]);
    for out in [no_dir, empty] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ringlog-server certs"), "{err}");
    }
    let stray = run(&["--node-id", "1"]);
    assert!(!stray.status.success(), "--node-id without --peers");
    let unknown = run(&["--node-id", "9", "--peers", peers, "--tls-dir", "/x"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not one of --peers"));
}
