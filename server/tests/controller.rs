//! The controller quorum over the cluster's QUIC endpoint: three nodes elect
//! a leader, apply commands submitted anywhere, survive the leader's death,
//! and a restarted node recovers its files and catches up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ringlog_cluster::controller::{Applied, ClusterState, Command};
use ringlog_server::cluster::certs;
use ringlog_server::cluster::quic::Tls;
use ringlog_server::cluster::raft::{Controller, Peers};

struct Node {
    controller: Arc<Controller>,
    endpoint: quinn::Endpoint,
}

async fn start(
    id: u64,
    certs: &Path,
    data: &Path,
    addr: SocketAddr,
    addrs: &BTreeMap<u64, SocketAddr>,
) -> Node {
    let endpoint = bind(certs, id, addr).await;
    let peers = Peers::new(endpoint.clone(), addrs.clone());
    let controller = Controller::start(id, &data.join(format!("n{id}")), peers, 3_000)
        .await
        .unwrap();
    tokio::spawn(
        controller
            .clone()
            .serve(endpoint.clone(), Default::default()),
    );
    Node {
        controller,
        endpoint,
    }
}

/// Binds node `id`'s endpoint, waiting for a port a stopped node still held.
async fn bind(certs: &Path, id: u64, addr: SocketAddr) -> quinn::Endpoint {
    // The stopped node's tasks let go of its socket within moments; a
    // restarted process would get a fresh one.
    for _ in 0..300 {
        if let Ok(e) = Tls::load(certs, id as u32).unwrap().endpoint(addr) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not bind {addr}");
}

async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn state(n: &Node) -> ClusterState {
    n.controller.state().borrow().clone()
}

#[test]
fn a_three_node_quorum_applies_commands_and_survives_its_leader() {
    let certs_dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    certs::generate(certs_dir.path(), &[1, 2, 3]).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Ports first, so that every node knows every address.
        let mut addrs = BTreeMap::new();
        for id in 1..=3u64 {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            addrs.insert(id, probe.local_addr().unwrap());
        }
        let mut nodes = BTreeMap::new();
        for (&id, &addr) in &addrs {
            nodes.insert(
                id,
                start(id, certs_dir.path(), data.path(), addr, &addrs).await,
            );
        }
        let leader = until("a leader", || nodes[&1].controller.leader()).await;

        // Submitted at a follower: forwarded to the leader.
        let follower = *nodes.keys().find(|id| **id != leader).unwrap();
        for broker in 1..=3 {
            let reply = nodes[&follower]
                .controller
                .submit(
                    Command::RegisterBroker {
                        broker,
                        incarnation: 7,
                        address: format!("127.0.0.1:{}", 9000 + broker),
                        kafka_address: String::new(),
                    },
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            assert!(matches!(reply.0, Ok(Applied::Registered(_))), "{reply:?}");
        }
        let reply = nodes[&leader]
            .controller
            .submit(
                Command::CreateTopic {
                    topic: "orders".into(),
                    assignments: vec![vec![1, 2, 3], vec![2, 3, 1]],
                    min_insync: 2,
                    config: String::new(),
                },
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(reply.0, Ok(Applied::TopicCreated));
        let want = state(&nodes[&leader]);
        assert_eq!(want.partitions.len(), 2);
        for id in 1..=3 {
            until("every node applied the commands", || {
                (state(&nodes[&id]) == want).then_some(())
            })
            .await;
        }

        // The leader dies; the other two elect one and go on.
        let dead = nodes.remove(&leader).unwrap();
        dead.controller.raft.shutdown().await.unwrap();
        dead.endpoint.close(0u32.into(), b"stopped");
        dead.endpoint.wait_idle().await;
        drop(dead);
        let survivor = *nodes.keys().next().unwrap();
        let new_leader = until("a new leader", || {
            nodes[&survivor]
                .controller
                .leader()
                .filter(|l| *l != leader)
        })
        .await;
        let reply = nodes[&survivor]
            .controller
            .submit(
                Command::RegisterBroker {
                    broker: 4,
                    incarnation: 1,
                    address: String::new(),
                    kafka_address: String::new(),
                },
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert!(matches!(reply.0, Ok(Applied::Registered(_))));
        assert!(nodes.contains_key(&new_leader));

        // The old leader restarts from its files and catches up.
        let back = start(
            leader,
            certs_dir.path(),
            data.path(),
            addrs[&leader],
            &addrs,
        )
        .await;
        let want = state(&nodes[&new_leader]);
        assert!(want.brokers.contains_key(&4));
        until("the restarted node caught up", || {
            (state(&back) == want).then_some(())
        })
        .await;
    });
}
