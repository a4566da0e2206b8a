//! The client library against a 3-broker cluster: given the bootstrap list,
//! an idempotent `acks=all` producer sends each partition to its leader and
//! rides through the SIGKILL of one, and a consumer reads every record
//! exactly once from the leaders that remain.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ringlog_client::{
    Acks, Admin, Client, Consumer, ConsumerConfig, NewTopic, OffsetReset, Producer, ProducerConfig,
    Record, SeekTo,
};

mod common;

use common::cluster;

/// Creates `topic` with RF=3 and min.insync.replicas=2, and an `acks=all`
/// producer.
async fn replicated(client: &Client, topic: &str, partitions: u32) -> (Admin, Producer) {
    let admin = Admin::new(client.clone());
    admin
        .create_topic(
            NewTopic::new(topic, partitions)
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
    (admin, producer)
}

/// The broker leading `topic`'s `partition` now.
async fn leader_of(admin: &Admin, topic: &str, partition: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = admin.describe_cluster().await.unwrap();
        let leader = d
            .partitions
            .iter()
            .find(|p| p.topic == topic && p.partition == partition)
            .and_then(|p| p.leader);
        if let Some(leader) = leader {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}-{partition} has no leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_producer_and_a_consumer_follow_the_leaders_through_a_leader_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut brokers, bootstrap) = cluster(dir.path());

    common::runtime().block_on(async {
        let client = Client::connect(&bootstrap).await.unwrap();
        let (admin, producer) = replicated(&client, "events", 3).await;
        let mut deliveries = Vec::new();
        for i in 0..300 {
            if i == 150 {
                // Kill the leader of partition 0 in mid-stream.
                let leader = leader_of(&admin, "events", 0).await;
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

/// `__consumer_offsets` is replicated: a group's commits survive the death
/// of its coordinator, whose successor (the new leader of the group's
/// offsets partition) takes the members back and resumes them where they
/// committed, reading nothing twice.
#[test]
fn a_group_resumes_from_its_commits_after_its_coordinator_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut brokers, bootstrap) = cluster(dir.path());

    common::runtime().block_on(async {
        let client = Client::connect(&bootstrap).await.unwrap();
        let (admin, producer) = replicated(&client, "orders", 2).await;
        let send = |from: usize, to: usize| {
            let producer = &producer;
            async move {
                let mut deliveries = Vec::new();
                for i in from..to {
                    let record =
                        Record::new("orders", format!("order {i}")).key(format!("key {i}"));
                    deliveries.push(producer.send(record).await.unwrap());
                }
                for d in deliveries {
                    d.await.expect("acks=all record acknowledged");
                }
            }
        };
        send(0, 200).await;

        let config = ConsumerConfig {
            group: Some("billing".into()),
            auto_commit: false,
            auto_offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::from_secs(5),
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client.clone(), config);
        consumer.subscribe(&["orders"]).await.unwrap();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 200 {
            assert!(Instant::now() < deadline, "read {} of 200", seen.len());
            for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
                let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                *seen.entry(value).or_default() += 1;
            }
        }
        consumer.commit().await.unwrap();

        let offsets_partition = ringlog_protocol::offsets_partition("billing");
        let coordinator =
            leader_of(&admin, ringlog_protocol::OFFSETS_TOPIC, offsets_partition).await;
        let replicas = admin
            .describe_cluster()
            .await
            .unwrap()
            .partitions
            .into_iter()
            .find(|p| {
                p.topic == ringlog_protocol::OFFSETS_TOPIC && p.partition == offsets_partition
            })
            .unwrap()
            .replicas;
        assert_eq!(
            replicas.len(),
            3,
            "__consumer_offsets has RF=min(3, brokers)"
        );
        brokers[coordinator as usize - 1].take().unwrap().kill();

        send(200, 300).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < 300 {
            assert!(Instant::now() < deadline, "read {} of 300", seen.len());
            for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
                let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                *seen.entry(value).or_default() += 1;
            }
        }
        assert!(
            seen.values().all(|n| *n == 1),
            "a record read twice: the group did not resume at its commits"
        );
        let now = leader_of(&admin, ringlog_protocol::OFFSETS_TOPIC, offsets_partition).await;
        assert_ne!(now, coordinator, "the coordinator moved");
        consumer.commit().await.unwrap();
        let described = admin.describe_group("billing").await.unwrap();
        let committed: u64 = described.offsets.iter().map(|o| o.offset).sum();
        assert_eq!(committed, 300, "the new coordinator holds every commit");
        assert!(admin
            .list_groups()
            .await
            .unwrap()
            .contains(&"billing".to_string()));
    });
}
