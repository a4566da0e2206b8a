//! Cluster mode with real processes: three `ringlog-server`s on loopback
//! form a controller quorum over QUIC with mutual TLS, register, and
//! heartbeat; the controller's death elects another, the dead broker is
//! fenced, and it comes back under a new epoch. A broker asked for cluster
//! mode without certificates refuses to start and says how to make them.
//! Replicated topics: `acks=all` writes survive their leader's SIGKILL,
//! replicas converge byte for byte, followers refuse clients.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ringlog_engine::batch::{BatchView, ProducerStamp};
use ringlog_protocol::{self as proto, ApiKey, DescribeClusterResponse, ErrorCode, Payload};

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
    /// Where each broker's QUIC endpoint listens (its `--peers` entry may be
    /// a proxy in front of it).
    listens: Vec<SocketAddr>,
    session_ms: String,
    brokers: Vec<Option<Broker>>,
}

/// A fault-injecting UDP proxy in front of each broker's QUIC port: every
/// broker reaches broker `i` through proxy `i`, which forwards datagrams
/// both ways unless the pair is cut.
struct Proxies {
    addrs: Vec<SocketAddr>,
    /// Pairs of broker ids (smaller first) whose datagrams are dropped.
    cut: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<(u32, u32)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxies {
    /// Proxies for brokers `1..=n` whose endpoints listen at `targets`.
    fn start(targets: &[SocketAddr]) -> Proxies {
        use std::net::UdpSocket;
        use std::sync::atomic::Ordering;
        let cut = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut addrs = Vec::new();
        let port_of: std::collections::HashMap<SocketAddr, u32> = targets
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, i as u32 + 1))
            .collect();
        for (i, target) in targets.iter().enumerate() {
            let to = i as u32 + 1;
            let front = UdpSocket::bind("127.0.0.1:0").unwrap();
            front
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            addrs.push(front.local_addr().unwrap());
            let (cut, stop, target, port_of) =
                (cut.clone(), stop.clone(), *target, port_of.clone());
            std::thread::spawn(move || {
                // One upstream socket per sender, so the target's answers
                // can be told apart and sent back from the front.
                let mut upstreams: std::collections::HashMap<SocketAddr, UdpSocket> =
                    std::collections::HashMap::new();
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue;
                    };
                    let from_id = port_of.get(&from).copied().unwrap_or(0);
                    let pair = (from_id.min(to), from_id.max(to));
                    if cut.lock().unwrap().contains(&pair) {
                        continue;
                    }
                    let up = upstreams.entry(from).or_insert_with(|| {
                        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
                        up.connect(target).unwrap();
                        up.set_read_timeout(Some(Duration::from_millis(100)))
                            .unwrap();
                        let (back, up2) = (front.try_clone().unwrap(), up.try_clone().unwrap());
                        let (cut, stop) = (cut.clone(), stop.clone());
                        std::thread::spawn(move || {
                            let mut buf = vec![0u8; 65536];
                            while !stop.load(Ordering::Relaxed) {
                                let Ok(n) = up2.recv(&mut buf) else { continue };
                                if !cut.lock().unwrap().contains(&pair) {
                                    let _ = back.send_to(&buf[..n], from);
                                }
                            }
                        });
                        up
                    });
                    let _ = up.send(&buf[..n]);
                }
            });
        }
        Proxies { addrs, cut, stop }
    }

    /// Drops every datagram between brokers `a` and `b` (or lets them
    /// through again).
    fn set_cut(&self, a: u32, b: u32, cut: bool) {
        let pair = (a.min(b), a.max(b));
        let mut set = self.cut.lock().unwrap();
        if cut {
            set.insert(pair);
        } else {
            set.remove(&pair);
        }
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Cluster {
    fn start(session_ms: u64) -> Cluster {
        Self::start_behind(session_ms, None).0
    }

    /// Three brokers, each reached by the others through a proxy if asked.
    fn start_behind(session_ms: u64, proxied: Option<()>) -> (Cluster, Option<Proxies>) {
        let dir = tempfile::tempdir().unwrap();
        ringlog_server::cluster::certs::generate(&dir.path().join("certs"), &[1, 2, 3]).unwrap();
        let listens: Vec<SocketAddr> = (0..3).map(|_| free_udp_port()).collect();
        let proxies = proxied.map(|()| Proxies::start(&listens));
        let reach = proxies
            .as_ref()
            .map_or(listens.clone(), |p| p.addrs.clone());
        let peers = reach
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}@{a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            dir,
            peers,
            listens,
            session_ms: session_ms.to_string(),
            brokers: Vec::new(),
        };
        c.brokers = (1..=3).map(|i| Some(c.start_node(i))).collect();
        (c, proxies)
    }

    fn start_node(&self, i: usize) -> Broker {
        let certs = self.dir.path().join("certs");
        let lag_ms = (self.session_ms.parse::<u64>().unwrap() / 2).to_string();
        let listen = self.listens[i - 1].to_string();
        Broker::start_with(
            &self.dir.path().join(format!("d{i}")),
            1,
            &[
                "--node-id",
                &i.to_string(),
                "--peers",
                &self.peers,
                "--replication-listen",
                &listen,
                "--tls-dir",
                certs.to_str().unwrap(),
                "--broker-session-timeout-ms",
                &self.session_ms,
                "--replica-lag-time-max-ms",
                &lag_ms,
            ],
        )
    }

    /// The first live broker other than `not`.
    fn other_than(&self, not: usize) -> usize {
        (1..=3)
            .find(|i| *i != not && self.brokers[i - 1].is_some())
            .unwrap()
    }

    /// Waits until the partition has a live leader other than `not` and
    /// an ISR of at least `isr`, as broker `via` sees it.
    fn leader(&self, via: usize, topic: &str, partition: u32, isr: usize, not: u32) -> u32 {
        until("a leader with the ISR asked for", 30, || {
            let d = describe(self.addr(via))?;
            let p = d
                .partitions
                .iter()
                .find(|p| p.topic == topic && p.partition == partition)?;
            let leader = p.leader.filter(|l| *l != not)?;
            let live = d.brokers.iter().any(|b| b.id == leader && !b.fenced);
            (live && p.isr.len() >= isr).then_some(leader)
        })
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

/// Produces one idempotent batch with `acks=all` to whichever broker leads
/// partition 0 now, retrying (as a client does) until it is acknowledged;
/// the producer id makes retries of a stored batch duplicates.
fn produce_until_acked(cluster: &Cluster, topic: &str, batch: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        let via = cluster.other_than(0);
        if let Some(d) = describe(cluster.addr(via)) {
            let leader = d
                .partitions
                .iter()
                .find(|p| p.topic == topic && p.partition == 0)
                .and_then(|p| p.leader);
            if let Some(leader) = leader.filter(|l| cluster.brokers[*l as usize - 1].is_some()) {
                let client =
                    std::panic::catch_unwind(|| Client::connect(cluster.addr(leader as usize)));
                if let Ok(mut client) = client {
                    let (error, _) = produce_acks(&mut client, topic, batch, -1);
                    if error == ErrorCode::None {
                        return;
                    }
                    assert!(
                        matches!(
                            error,
                            ErrorCode::NotLeader
                                | ErrorCode::NotEnoughReplicas
                                | ErrorCode::NotEnoughReplicasAfterAppend
                                | ErrorCode::Timeout
                        ),
                        "{error:?}"
                    );
                    last = Some(error);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not acknowledged within 60 s (last error {last:?})");
}

/// Produces with `acks`; the partition's error and base offsets.
fn produce_acks(
    client: &mut Client,
    topic: &str,
    batch: &[u8],
    acks: i16,
) -> (ErrorCode, Vec<u64>) {
    produce_to(client, topic, 0, batch, acks)
}

/// Produces to one partition with `acks`; its error and base offsets.
fn produce_to(
    client: &mut Client,
    topic: &str,
    partition: u32,
    batch: &[u8],
    acks: i16,
) -> (ErrorCode, Vec<u64>) {
    let payload = proto::encode_produce(acks, 10_000, &[(topic, partition, batch)]);
    let reply = client.call(ApiKey::Produce, &payload);
    if reply.error != ErrorCode::None {
        return (reply.error, Vec::new());
    }
    let mut resp: proto::ProduceResponse = reply.ok(ApiKey::Produce);
    let p = resp.partitions.remove(0);
    (ErrorCode::from_u16(p.error), p.base_offsets)
}

fn create_replicated(client: &mut Client, topic: &str, partitions: u32, rf: u32, min_insync: u32) {
    let req = proto::CreateTopicRequest {
        name: topic.into(),
        partitions: Some(partitions),
        replication_factor: Some(rf),
        min_insync_replicas: Some(min_insync),
        ..Default::default()
    };
    let reply = client.call(ApiKey::CreateTopic, &req.encode());
    assert_eq!(reply.error, ErrorCode::None, "{}", reply.message());
}

/// The stored batches of a replica's partition directory, as bytes: every
/// segment in order, up to where the batches stop (a preallocated tail).
fn stored_batches(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for seg in segments {
        let bytes = std::fs::read(&seg).unwrap();
        let mut rest = &bytes[..];
        while let Ok(view) = BatchView::parse(rest, 16 << 20) {
            out.push(view.bytes().to_vec());
            rest = &rest[view.bytes().len()..];
        }
    }
    out
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

#[test]
fn acks_all_writes_survive_leader_kills_and_the_replicas_converge_byte_for_byte() {
    let mut cluster = Cluster::start(2_000);
    cluster.formed(1);
    create_replicated(&mut Client::connect(cluster.addr(1)), "orders", 1, 3, 2);
    let mut acked: Vec<Vec<u8>> = Vec::new();
    let mut leader = cluster.leader(1, "orders", 0, 3, 0);
    let ids: proto::InitProducerIdResponse = Client::connect(cluster.addr(1))
        .call(ApiKey::InitProducerId, &[])
        .ok(ApiKey::InitProducerId);
    let mut seq = 0;
    let mut produce = |cluster: &Cluster, acked: &mut Vec<Vec<u8>>, value: String| {
        let stamp = ProducerStamp {
            producer_id: ids.producer_id,
            producer_epoch: ids.producer_epoch,
            base_sequence: seq,
        };
        seq += 1;
        let b = batch(&[value.as_bytes()], stamp, 1_000);
        produce_until_acked(cluster, "orders", &b);
        acked.push(value.into_bytes());
    };
    // CI kills five leaders; `CLUSTER_KILLS=100` is the long run.
    let kills: usize = std::env::var("CLUSTER_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(5);
    for round in 0..kills {
        for i in 0..10 {
            produce(&cluster, &mut acked, format!("round {round} record {i}"));
        }
        // A follower refuses clients: they must go to the leader.
        let follower = cluster.other_than(leader as usize);
        let got = Client::connect(cluster.addr(follower)).fetch(&[("orders", 0, 0)], 0);
        assert_eq!(got[0].0, ErrorCode::NotLeader);

        // The leader dies; the producer carries on with the next one.
        let killed = leader as usize;
        cluster.brokers[killed - 1].take().unwrap().kill();
        for i in 10..20 {
            produce(&cluster, &mut acked, format!("round {round} record {i}"));
        }
        cluster.brokers[killed - 1] = Some(cluster.start_node(killed));
        leader = cluster.leader(cluster.other_than(killed), "orders", 0, 3, 0);
    }
    let mut client = Client::connect(cluster.addr(leader as usize));
    let values: Vec<Vec<u8>> = client
        .read_all("orders", 0, 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, acked, "every acknowledged record, once, in order");

    // All three replicas hold the same batches, byte for byte.
    let copies = until("the replicas to converge", 20, || {
        let copies: Vec<_> = (1..=3)
            .map(|i| stored_batches(&cluster.dir.path().join(format!("d{i}/orders-0"))))
            .collect();
        (copies[0] == copies[1] && copies[1] == copies[2]).then_some(copies)
    });
    assert_eq!(copies[0].len(), acked.len());
}

#[test]
fn a_follower_cut_off_leaves_the_isr_and_acks_all_needs_min_insync_replicas() {
    let (cluster, proxies) = Cluster::start_behind(3_000, Some(()));
    let proxies = proxies.unwrap();
    let controller = cluster.formed(1).controller.unwrap();
    let mut admin = Client::connect(cluster.addr(1));
    // Three partitions each: partition p's replicas start at the p-th
    // broker, so one of each topic is led away from the controller.
    create_replicated(&mut admin, "three", 3, 3, 2);
    create_replicated(&mut admin, "two", 3, 2, 2);
    let d = until("every partition led with a full ISR", 30, || {
        let d = describe(cluster.addr(1))?;
        (d.partitions.len() == 6
            && d.partitions
                .iter()
                .all(|p| p.leader.is_some() && p.isr.len() == p.replicas.len()))
        .then_some(d)
    });
    // The two brokers that do not control the cluster: cut them apart.
    // Both still reach the controller, so both keep their sessions.
    let (a, b) = {
        let others: Vec<u32> = (1..=3).filter(|i| *i != controller).collect();
        (others[0], others[1])
    };
    let three = d
        .partitions
        .iter()
        .find(|p| p.topic == "three" && p.leader == Some(a))
        .unwrap()
        .partition;
    let two = d
        .partitions
        .iter()
        .find(|p| p.topic == "two" && p.replicas.contains(&a) && p.replicas.contains(&b))
        .unwrap();
    let (two_leader, two) = (two.leader.unwrap(), two.partition);
    let value = batch(&[b"v"], ProducerStamp::NONE, 1);
    let mut to_a = Client::connect(cluster.addr(a as usize));
    let mut to_two = Client::connect(cluster.addr(two_leader as usize));
    assert_eq!(
        produce_to(&mut to_a, "three", three, &value, -1).0,
        ErrorCode::None
    );
    assert_eq!(
        produce_to(&mut to_two, "two", two, &value, -1).0,
        ErrorCode::None
    );

    proxies.set_cut(a, b, true);
    let isr_of = |topic: &str, partition: u32| {
        describe(cluster.addr(controller as usize)).and_then(|d| {
            d.partitions
                .into_iter()
                .find(|p| p.topic == topic && p.partition == partition)
                .map(|p| p.isr)
        })
    };
    until("the cut-off followers to leave the ISR", 30, || {
        let three_isr = isr_of("three", three)?;
        let two_isr = isr_of("two", two)?;
        (three_isr.len() == 2 && !three_isr.contains(&b) && two_isr == vec![two_leader])
            .then_some(())
    });
    // Two in sync of three: acks=all goes on. One of two: refused at once.
    assert_eq!(
        produce_to(&mut to_a, "three", three, &value, -1).0,
        ErrorCode::None
    );
    assert_eq!(
        produce_to(&mut to_two, "two", two, &value, -1).0,
        ErrorCode::NotEnoughReplicas
    );
    // acks=1 needs the leader alone.
    assert_eq!(
        produce_to(&mut to_two, "two", two, &value, 1).0,
        ErrorCode::None
    );

    // Healed: the followers catch up and rejoin; acks=all works again.
    proxies.set_cut(a, b, false);
    until("the followers to rejoin the ISR", 30, || {
        let three_isr = isr_of("three", three)?;
        let two_isr = isr_of("two", two)?;
        (three_isr.len() == 3 && two_isr.len() == 2).then_some(())
    });
    assert_eq!(
        produce_to(&mut to_two, "two", two, &value, -1).0,
        ErrorCode::None
    );
    let stored = to_two.read_all("two", two, 0);
    assert_eq!(stored.len(), 3, "acks=all, acks=1, acks=all: {stored:?}");
}

#[test]
fn a_leader_paused_past_its_session_steps_down_and_acknowledges_nothing() {
    let cluster = Cluster::start(2_000);
    cluster.formed(1);
    create_replicated(&mut Client::connect(cluster.addr(1)), "paused", 1, 3, 2);
    let leader = cluster.leader(1, "paused", 0, 3, 0) as usize;
    let value = |i: usize| batch(&[format!("v{i}").as_bytes()], ProducerStamp::NONE, 1);
    let mut old = Client::connect(cluster.addr(leader));
    // Broker 1 named the leader; the leader's own view of the controller's
    // state may lag it a moment, and a not_leader write stores nothing: a
    // client asks again, as this does.
    let first = until("the leader to take writes", 10, || {
        let code = produce_acks(&mut old, "paused", &value(0), -1).0;
        (code != ErrorCode::NotLeader).then_some(code)
    });
    assert_eq!(first, ErrorCode::None);
    for i in 1..5 {
        assert_eq!(
            produce_acks(&mut old, "paused", &value(i), -1).0,
            ErrorCode::None
        );
    }
    let paused = cluster.brokers[leader - 1].as_ref().unwrap();
    paused.signal(libc::SIGSTOP).unwrap();
    let new = cluster.leader(cluster.other_than(leader), "paused", 0, 1, leader as u32);
    let mut to_new = Client::connect(cluster.addr(new as usize));
    let first = until("the new leader to take writes", 10, || {
        let code = produce_acks(&mut to_new, "paused", &value(5), -1).0;
        (code != ErrorCode::NotLeader).then_some(code)
    });
    assert_eq!(first, ErrorCode::None, "record 5");
    for i in 6..10 {
        let (error, _) = produce_acks(&mut to_new, "paused", &value(i), -1);
        assert_eq!(error, ErrorCode::None, "record {i}");
    }
    // Woken up, the old leader's lease has run out: it refuses writes,
    // whatever the acks, before it even learns it was replaced.
    paused.signal(libc::SIGCONT).unwrap();
    for acks in [-1, 1] {
        let (error, _) = produce_acks(&mut old, "paused", &value(99), acks);
        assert_ne!(
            error,
            ErrorCode::None,
            "a deposed leader acknowledged acks={acks}"
        );
    }
    // It comes back as a follower and catches up.
    let leader = cluster.leader(new as usize, "paused", 0, 3, 0);
    let stored: Vec<Vec<u8>> = Client::connect(cluster.addr(leader as usize))
        .read_all("paused", 0, 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let want: Vec<Vec<u8>> = (0..10).map(|i| format!("v{i}").into_bytes()).collect();
    assert_eq!(stored, want);
}
