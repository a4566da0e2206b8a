//! The client library against a 3-broker cluster: given the bootstrap list,
//! an idempotent `acks=all` producer sends each partition to its leader and
//! rides through the SIGKILL of one, and a consumer reads every record
//! exactly once from the leaders that remain.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ringlog_client::{
    Acks, Admin, Client, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, Record,
    SeekTo,
};
use ringlog_server::testing::{server_binary, BrokerProcess};

mod common;

fn free_udp_port() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_producer_and_a_consumer_follow_the_leaders_through_a_leader_kill() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    ringlog_server::cluster::certs::generate(&certs, &[1, 2, 3]).unwrap();
    let peers = (1..=3)
        .map(|i| format!("{i}@{}", free_udp_port()))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers: Vec<Option<BrokerProcess>> = (1..=3)
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
            let data = dir.path().join(format!("d{i}"));
            Some(BrokerProcess::start(&server_binary(), &data, 1, &args).unwrap())
        })
        .collect();
    let bootstrap = brokers
        .iter()
        .map(|b| b.as_ref().unwrap().addr.to_string())
        .collect::<Vec<_>>()
        .join(",");

    common::runtime().block_on(async {
        let client = Client::connect(&bootstrap).await.unwrap();
        let admin = Admin::new(client.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = admin.describe_cluster().await.unwrap();
            if d.brokers.len() == 3 && d.brokers.iter().all(|b| !b.fenced) {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not form: {d:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        admin
            .create_topic(
                NewTopic::new("events", 3)
                    .replication_factor(3)
                    .min_insync_replicas(2),
            )
            .await
            .unwrap();
        let config = ProducerConfig {
            acks: Acks::All,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client.clone(), config).await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..300 {
            if i == 150 {
                // Kill the leader of partition 0 in mid-stream.
                let d = admin.describe_cluster().await.unwrap();
                let leader = d
                    .partitions
                    .iter()
                    .find(|p| p.topic == "events" && p.partition == 0)
                    .and_then(|p| p.leader)
                    .unwrap();
                brokers[leader as usize - 1].take().unwrap().kill();
            }
            let record = Record::new("events", format!("value {i}")).key(format!("key {i}"));
            deliveries.push(producer.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.expect("every acks=all record is acknowledged");
        }

        let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
        consumer.assign_topic("events").await.unwrap();
        consumer.seek_all(SeekTo::Beginning).await.unwrap();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 300 && Instant::now() < deadline {
            for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
                let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                *seen.entry(value).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), 300, "every record read");
        assert!(seen.values().all(|n| *n == 1), "a record read twice");
    });
}
