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

#[test]
fn three_brokers_elect_a_controller_and_fence_the_one_that_dies() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    ringlog_server::cluster::certs::generate(&certs, &[1, 2, 3]).unwrap();
    let quic: Vec<SocketAddr> = (0..3).map(|_| free_udp_port()).collect();
    let peers = (1..=3)
        .map(|i| format!("{i}@{}", quic[i - 1]))
        .collect::<Vec<_>>()
        .join(",");
    let start = |i: usize| {
        Broker::start_with(
            &dir.path().join(format!("d{i}")),
            1,
            &[
                "--node-id",
                &i.to_string(),
                "--peers",
                &peers,
                "--tls-dir",
                certs.to_str().unwrap(),
                "--broker-session-timeout-ms",
                "3000",
            ],
        )
    };
    let mut brokers: Vec<Option<Broker>> = (1..=3).map(|i| Some(start(i))).collect();
    let addr = |b: &[Option<Broker>], i: usize| b[i - 1].as_ref().unwrap().addr;

    let formed = until("three registered brokers and a controller", 20, || {
        let d = describe(addr(&brokers, 1))?;
        (d.cluster_mode
            && d.controller.is_some()
            && d.brokers.len() == 3
            && d.brokers.iter().all(|b| !b.fenced))
        .then_some(d)
    });
    for (i, b) in formed.brokers.iter().enumerate() {
        assert_eq!(b.address, addr(&brokers, i + 1).to_string(), "{formed:?}");
    }
    let controller = formed.controller.unwrap() as usize;
    let old_epoch = formed.brokers[controller - 1].epoch;

    brokers[controller - 1].take().unwrap().kill();
    let survivor = if controller == 1 { 2 } else { 1 };
    let after = until("a new controller that fenced the dead broker", 20, || {
        let d = describe(addr(&brokers, survivor))?;
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
    brokers[controller - 1] = Some(start(controller));
    let back = until("the restarted broker registered again", 20, || {
        let d = describe(addr(&brokers, survivor))?;
        let b = d.brokers.iter().find(|b| b.id as usize == controller)?;
        (!b.fenced && b.epoch > old_epoch).then_some(d)
    });
    assert_eq!(back.brokers.len(), 3);
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
