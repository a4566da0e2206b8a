//! Replication's data path with real logs over real QUIC: a follower with a
//! diverged tail is cut back to where it agrees with the leader, then copies
//! the leader's batches byte for byte; the leader's high watermark follows
//! what the follower has synced, and an `acks=all` wait completes.

use std::rc::Rc;
use std::time::Duration;

use ringlog_cluster::replica::{LogState, Output, Replica, ReplicaConfig};
use ringlog_cluster::{PartitionState, TopicPartition};
use ringlog_engine::batch::{BatchBuilder, NewRecord, ProducerStamp};
use ringlog_engine::{Log, LogConfig};
use ringlog_server::cluster::certs;
use ringlog_server::cluster::quic::{self, Tls};
use ringlog_server::cluster::replication::{self, ReplicatedLog, ShardReplicas};

fn batch(tag: &str, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(ProducerStamp::NONE);
    for i in 0..n {
        let value = format!("{tag}-{i}");
        b.push(&NewRecord {
            key: None,
            value: Some(value.as_bytes()),
            headers: &[],
            timestamp: 1_000,
        })
        .unwrap();
    }
    b.finish().unwrap()
}

async fn append(log: &mut Log, bytes: Vec<u8>, epoch: i32) -> u64 {
    let a = log.append(bytes, epoch).await.unwrap();
    a.durable.wait().await.unwrap();
    a.last_offset + 1
}

fn replica(tp: &TopicPartition, me: u32, log: &Log) -> Replica {
    let state = LogState {
        log_start: log.earliest(),
        log_end: log.next_offset(),
        durable: log.next_offset(),
        high_watermark: 0,
        epochs: log.epochs().clone(),
    };
    Replica::new(tp.clone(), me, 1, ReplicaConfig::default(), state)
}

#[test]
fn a_follower_cuts_its_diverged_tail_and_copies_the_leader_byte_for_byte() {
    let certs_dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    certs::generate(certs_dir.path(), &[1, 2]).unwrap();
    tokio_uring::start(async {
        let tp = TopicPartition::new("orders", 0);
        let config = LogConfig {
            fsync: ringlog_engine::FsyncPolicy::Always,
            ..LogConfig::default()
        };
        let (mut leader_log, _) = Log::open(&data.path().join("leader"), config.clone())
            .await
            .unwrap();
        let (mut follower_log, _) = Log::open(&data.path().join("follower"), config)
            .await
            .unwrap();
        // A shared prefix under epoch 0, then the follower's own tail of
        // epoch 0 (it led then, and nothing of it was committed).
        for i in 0..2 {
            let bytes = batch(&format!("shared{i}"), 3);
            append(&mut leader_log, bytes.clone(), 0).await;
            append(&mut follower_log, bytes, 0).await;
        }
        append(&mut follower_log, batch("lost", 5), 0).await;
        let shared_end = leader_log.next_offset();
        assert!(follower_log.next_offset() > shared_end);

        let state = PartitionState {
            replicas: vec![1, 2],
            leader: Some(1),
            leader_epoch: 1,
            partition_epoch: 1,
            isr: vec![1, 2],
            min_insync: 2,
        };
        let mut leader = replica(&tp, 1, &leader_log);
        leader.set_lease(u64::MAX, 0);
        leader.apply_state(&state, 0);
        leader_log
            .assign_epoch(1, leader_log.next_offset())
            .await
            .unwrap();
        let mut follower = replica(&tp, 2, &follower_log);
        follower.apply_state(&state, 0);

        // The leader appends under epoch 1 and waits for acks=all.
        let mut end = 0;
        for i in 0..4 {
            end = append(&mut leader_log, batch(&format!("new{i}"), 2), 1).await;
            leader.leader_appended(end);
        }
        leader.durable_to(end, 0);
        leader.wait_for(end, 42, 0);
        assert_eq!(leader.poll_output(), Some(Output::EpochsChanged));
        assert_eq!(
            leader.poll_output(),
            None,
            "acknowledged before the follower had it"
        );

        let leader_side = Rc::new(ShardReplicas::default());
        let leader_part = leader_side.insert(
            tp.clone(),
            ReplicatedLog {
                log: leader_log,
                replica: leader,
            },
        );
        let follower_side = Rc::new(ShardReplicas::default());
        let follower_part = follower_side.insert(
            tp.clone(),
            ReplicatedLog {
                log: follower_log,
                replica: follower,
            },
        );

        let local = "127.0.0.1:0".parse().unwrap();
        let e1 = Tls::load(certs_dir.path(), 1)
            .unwrap()
            .endpoint(local)
            .unwrap();
        let e2 = Tls::load(certs_dir.path(), 2)
            .unwrap()
            .endpoint(local)
            .unwrap();
        let addr1 = e1.local_addr().unwrap();
        let serving = leader_side.clone();
        tokio_uring::spawn(async move {
            let conn = e1.accept().await.unwrap().await.unwrap();
            let (send, recv) = conn.accept_bi().await.unwrap();
            let _ = replication::serve_session(serving, send, recv).await;
        });
        let conn = quic::connect(&e2, addr1, 1).await.unwrap();
        let fetching = follower_side.clone();
        tokio_uring::spawn(async move {
            let _ = replication::run_session(fetching, conn, 1).await;
        });

        let mut acked = false;
        for _ in 0..500 {
            {
                let mut l = leader_part.lock().await;
                while let Some(out) = l.replica.poll_output() {
                    if out == Output::Acked(42) {
                        acked = true;
                    }
                }
            }
            let caught_up = follower_part.lock().await.log.next_offset() == end;
            if acked && caught_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(acked, "acks=all never completed");
        let l = leader_part.lock().await;
        let f = follower_part.lock().await;
        assert_eq!(l.replica.high_watermark(), end);
        assert_eq!(
            f.log.read(0, 1 << 20).await.unwrap(),
            l.log.read(0, 1 << 20).await.unwrap(),
            "the follower's log is not the leader's, byte for byte"
        );
        assert_eq!(f.log.epochs(), l.log.epochs());
        assert_eq!(f.replica.high_watermark(), end);
    });
}
