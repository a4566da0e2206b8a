//! The broker binary end to end: topics, produce and fetch across shards,
//! long polling, offsets, idempotence, metrics.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{batch, keyed_batch, now_ms, records, value, Broker};
use ringlog_engine::batch::ProducerStamp;
use ringlog_protocol::{self as proto, ApiKey, ErrorCode, Payload};

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    let created = c.create_topic("orders", 4, "interval:100");
    assert_eq!(created.topics[0].partitions.len(), 4);
    assert_eq!(created.topics[0].config.fsync, "interval:100");
    // The partitions land on both shards.
    let shards: BTreeSet<u32> = created.topics[0]
        .partitions
        .iter()
        .map(|p| p.shard)
        .collect();
    assert_eq!(shards.len(), 2);

    let again = proto::CreateTopicRequest {
        name: "orders".into(),
        partitions: Some(1),
        ..Default::default()
    };
    assert_eq!(
        c.call(ApiKey::CreateTopic, &again.encode()).error,
        ErrorCode::TopicExists
    );
    let bad = proto::CreateTopicRequest {
        name: "no/slash".into(),
        partitions: Some(1),
        ..Default::default()
    };
    assert_eq!(
        c.call(ApiKey::CreateTopic, &bad.encode()).error,
        ErrorCode::InvalidTopicConfig
    );

    let list: proto::ListTopicsResponse = c.call(ApiKey::ListTopics, &[]).ok(ApiKey::ListTopics);
    assert!(list
        .topics
        .iter()
        .any(|t| t.name == "orders" && t.partitions == 4));

    let meta = proto::MetadataRequest {
        topics: Some(vec!["nope".into()]),
    };
    assert_eq!(
        c.call(ApiKey::Metadata, &meta.encode()).error,
        ErrorCode::UnknownTopic
    );
    let meta: proto::MetadataResponse = c
        .call(
            ApiKey::Metadata,
            &proto::MetadataRequest { topics: None }.encode(),
        )
        .ok(ApiKey::Metadata);
    assert_eq!(meta.brokers[0].port, broker.addr.port());
    assert_eq!(meta.brokers[0].shards, 2);

    c.produce("orders", 1, &batch(&[b"x"], ProducerStamp::NONE, 1));
    let del = proto::DeleteTopicRequest {
        name: "orders".into(),
        force: false,
    };
    let after: proto::ListTopicsResponse = c
        .call(ApiKey::DeleteTopic, &del.encode())
        .ok(ApiKey::DeleteTopic);
    assert!(after.topics.iter().all(|t| t.name != "orders"));
    assert!(!dir.path().join("orders-1").exists());
    let r = c.produce("orders", 1, &batch(&[b"x"], ProducerStamp::NONE, 1));
    assert_eq!(ErrorCode::from_u16(r.error), ErrorCode::UnknownTopic);

    // Re-created after delete: empty, and survives a restart.
    c.create_topic("orders", 2, "always");
    drop(c);
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    assert_eq!(c.list_offset("orders", 1, proto::LATEST), 0);
}

#[test]
fn produce_through_any_shard_reads_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    let partitions = 4u32;
    c.create_topic("events", partitions, "never");
    // Pipelined: every request is sent before any response is read, through
    // one connection (accepted by one shard) to partitions on both shards.
    let batches = 40;
    let mut sent = Vec::new();
    for i in 0..batches {
        let sections: Vec<(String, u32, Vec<u8>)> = (0..partitions)
            .map(|p| {
                let values: Vec<Vec<u8>> = (0..5).map(|j| value(p, i * 5 + j)).collect();
                let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                (
                    "events".to_string(),
                    p,
                    batch(&refs, ProducerStamp::NONE, 1000 + i as i64),
                )
            })
            .collect();
        let refs: Vec<(&str, u32, &[u8])> = sections
            .iter()
            .map(|(t, p, b)| (t.as_str(), *p, b.as_slice()))
            .collect();
        sent.push(c.send(ApiKey::Produce, &proto::encode_produce(1, 0, &refs)));
    }
    let mut answered = Vec::new();
    for _ in 0..batches {
        let reply = c.recv().unwrap();
        answered.push(reply.request_id);
        let resp: proto::ProduceResponse = reply.ok(ApiKey::Produce);
        for p in &resp.partitions {
            assert_eq!(p.error, 0, "{}", p.message);
            assert_eq!(p.base_offsets.len(), 1);
        }
    }
    answered.sort();
    assert_eq!(answered, sent);
    for p in 0..partitions {
        let got = c.read_all("events", p, 0);
        let want: Vec<(u64, Vec<u8>)> = (0..batches * 5).map(|i| (i as u64, value(p, i))).collect();
        assert_eq!(got, want, "partition {p}");
    }
    // A multi-partition fetch spanning both shards answers every partition.
    let all: Vec<(&str, u32, u64)> = (0..partitions).map(|p| ("events", p, 0)).collect();
    let parts = c.fetch(&all, 0);
    assert_eq!(parts.len(), partitions as usize);
    for (p, (error, end, bytes)) in parts.iter().enumerate() {
        assert_eq!(*error, ErrorCode::None);
        assert_eq!(*end, batches as u64 * 5);
        assert_eq!(records(bytes)[0].1, value(p as u32, 0));
    }
    // Reads by offset from the middle begin with the batch holding it.
    let mid = c.fetch(&[("events", 2, 7)], 0).remove(0).2;
    assert!(records(&mid).iter().any(|(o, _)| *o == 7));
    assert_eq!(
        c.fetch(&[("events", 2, 10_000)], 0)[0].0,
        ErrorCode::OffsetOutOfRange
    );
    assert_eq!(
        c.fetch(&[("events", 9, 0)], 0)[0].0,
        ErrorCode::UnknownPartition
    );
    // Timestamps: the first record at or after 1010 is batch 10's.
    assert_eq!(c.list_offset("events", 3, 1010), 50);
    assert_eq!(c.list_offset("events", 3, proto::EARLIEST), 0);
    assert_eq!(c.list_offset("events", 3, 99_999), -1);

    let metrics = broker.metrics_text();
    assert!(
        metrics.contains("ringlog_requests_total{shard="),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringlog_log_end_offset{topic=\"events\",partition=\"0\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringlog_request_latency_seconds_bucket"),
        "{metrics}"
    );
}

#[test]
fn long_poll_answers_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    c.create_topic("poll", 2, "never");
    // An empty poll with a short wait comes back empty.
    let (error, end, bytes) = c.fetch(&[("poll", 0, 0)], 100).remove(0);
    assert_eq!((error, end, bytes.len()), (ErrorCode::None, 0, 0));

    // A poll that may wait an hour must be woken by the produce; the
    // client's 60 s read timeout turns a missed wake-up into a failure.
    let addr = broker.addr;
    let poller = std::thread::spawn(move || {
        let mut c = common::Client::connect(addr);
        c.fetch(&[("poll", 0, 0), ("poll", 1, 0)], 3_600_000)
    });
    std::thread::sleep(Duration::from_millis(200));
    c.produce("poll", 1, &batch(&[b"wake up"], ProducerStamp::NONE, 5));
    let parts = poller.join().unwrap();
    assert_eq!(records(&parts[1].2), vec![(0, b"wake up".to_vec())]);
}

#[test]
fn idempotent_retries_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    c.create_topic("idem", 2, "always");
    let a: proto::InitProducerIdResponse = c
        .call(ApiKey::InitProducerId, &[])
        .ok(ApiKey::InitProducerId);
    let b: proto::InitProducerIdResponse = c
        .call(ApiKey::InitProducerId, &[])
        .ok(ApiKey::InitProducerId);
    assert_ne!(a.producer_id, b.producer_id);
    let stamp = |seq| ProducerStamp {
        producer_id: a.producer_id,
        producer_epoch: 0,
        base_sequence: seq,
    };
    let first = batch(&[b"a", b"b", b"c"], stamp(0), 1);
    let r1 = c.produce("idem", 1, &first);
    let r2 = c.produce("idem", 1, &first);
    assert_eq!((r1.error, r2.error), (0, 0));
    assert_eq!(r1.base_offsets, r2.base_offsets);
    let r3 = c.produce("idem", 1, &batch(&[b"d"], stamp(3), 1));
    assert_eq!(r3.base_offsets, vec![3]);
    let gap = c.produce("idem", 1, &batch(&[b"x"], stamp(9), 1));
    assert_eq!(
        ErrorCode::from_u16(gap.error),
        ErrorCode::OutOfOrderSequence
    );
    let values: Vec<Vec<u8>> = c
        .read_all("idem", 1, 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        values,
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );

    // After a crash the broker still knows the producer's last batches.
    drop(c);
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    let retry = c.produce("idem", 1, &batch(&[b"d"], stamp(3), 1));
    assert_eq!((retry.error, retry.base_offsets), (0, vec![3]));
    assert_eq!(c.list_offset("idem", 1, proto::LATEST), 4);
    let next: proto::InitProducerIdResponse = c
        .call(ApiKey::InitProducerId, &[])
        .ok(ApiKey::InitProducerId);
    assert!(
        next.producer_id > b.producer_id,
        "producer ids are never reused"
    );
}

#[test]
fn producer_state_comes_from_a_snapshot_after_a_clean_stop() {
    use ringlog_server::producer_state::{self as ps, SNAPSHOT_FILE};

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 1);
    let mut c = broker.client();
    c.create_topic("snap", 1, "never");
    let id: proto::InitProducerIdResponse = c
        .call(ApiKey::InitProducerId, &[])
        .ok(ApiKey::InitProducerId);
    let stamp = |seq| ProducerStamp {
        producer_id: id.producer_id,
        producer_epoch: 0,
        base_sequence: seq,
    };
    for seq in 0..8 {
        let r = c.produce("snap", 0, &batch(&[b"v"], stamp(seq), 1));
        assert_eq!((r.error, r.base_offsets), (0, vec![seq as u64]));
    }
    drop(c);
    let stopped = broker.terminate();
    assert!(stopped.success());

    // The clean stop wrote the state; make it say something the log does
    // not, so the test can tell the snapshot was used and the log not read.
    let path = dir.path().join("snap-0").join(SNAPSHOT_FILE);
    let mut snapshot = ps::decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(snapshot.end_offset, 8);
    let producer = &mut snapshot.producers[0];
    assert_eq!(producer.producer_id, id.producer_id);
    assert_eq!(producer.batches.len(), 5, "the last 5 batches");
    // (Still inside the log: a retry is answered once the offset it names
    // is durable.)
    producer.batches.last_mut().unwrap().base_offset = 3;
    std::fs::write(&path, ps::encode(&snapshot)).unwrap();

    let broker = Broker::start(dir.path(), 1);
    let mut c = broker.client();
    let retry = c.produce("snap", 0, &batch(&[b"v"], stamp(7), 1));
    assert_eq!((retry.error, retry.base_offsets), (0, vec![3]));
    let next = c.produce("snap", 0, &batch(&[b"v"], stamp(8), 1));
    assert_eq!((next.error, next.base_offsets), (0, vec![8]));
    drop(c);

    // A damaged snapshot is ignored (and removed): the state comes from
    // the log again.
    assert!(broker.terminate().success());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let broker = Broker::start(dir.path(), 1);
    assert!(!path.exists(), "a damaged snapshot is removed");
    let mut c = broker.client();
    let retry = c.produce("snap", 0, &batch(&[b"v"], stamp(8), 1));
    assert_eq!((retry.error, retry.base_offsets), (0, vec![8]));
}

/// A producer whose last batches are in a sealed segment is still known
/// after a crash: the state was snapshotted when the segment rolled, so a
/// retry of such a batch is answered with its first offset, not stored again.
#[test]
fn producer_state_survives_a_crash_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 1);
    let mut c = broker.client();
    let req = proto::CreateTopicRequest {
        name: "rolls".into(),
        partitions: Some(1),
        fsync: Some("never".into()),
        segment_bytes: Some(1024),
        ..Default::default()
    };
    c.call(ApiKey::CreateTopic, &req.encode())
        .ok::<proto::MetadataResponse>(ApiKey::CreateTopic);
    let ids: Vec<i64> = (0..2)
        .map(|_| {
            c.call(ApiKey::InitProducerId, &[])
                .ok::<proto::InitProducerIdResponse>(ApiKey::InitProducerId)
                .producer_id
        })
        .collect();
    let stamp = |p: usize, seq| ProducerStamp {
        producer_id: ids[p],
        producer_epoch: 0,
        base_sequence: seq,
    };
    let value = [7u8; 300];
    // Producer 0 writes twice, then producer 1 writes enough to roll the
    // segment twice: producer 0's batches are now in a sealed segment.
    for seq in 0..2 {
        let r = c.produce("rolls", 0, &batch(&[&value], stamp(0, seq), 1));
        assert_eq!((r.error, r.base_offsets), (0, vec![seq as u64]));
    }
    for seq in 0..8 {
        let r = c.produce("rolls", 0, &batch(&[&value], stamp(1, seq), 1));
        assert_eq!(r.error, 0);
    }
    drop(c);
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    let retry = c.produce("rolls", 0, &batch(&[&value], stamp(0, 1), 1));
    assert_eq!((retry.error, retry.base_offsets), (0, vec![1]), "a retry");
    let next = c.produce("rolls", 0, &batch(&[&value], stamp(0, 2), 1));
    assert_eq!((next.error, next.base_offsets), (0, vec![10]));
    assert_eq!(c.list_offset("rolls", 0, proto::LATEST), 11);
}

#[test]
fn committed_offsets_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    c.create_topic("c", 3, "never");
    let commit = proto::CommitOffsetsRequest {
        group: "readers".into(),
        member_id: String::new(),
        generation: -1,
        offsets: vec![
            proto::CommitOffset {
                topic: "c".into(),
                partition: 0,
                offset: 10,
                metadata: String::new(),
            },
            proto::CommitOffset {
                topic: "c".into(),
                partition: 2,
                offset: 7,
                metadata: "checkpoint {\"epoch\":3}".into(),
            },
            proto::CommitOffset {
                topic: "nope".into(),
                partition: 0,
                offset: 1,
                metadata: String::new(),
            },
            proto::CommitOffset {
                topic: "c".into(),
                partition: 1,
                offset: 5,
                metadata: "x".repeat(proto::COMMIT_METADATA_MAX + 1),
            },
        ],
    };
    let resp: proto::CommitOffsetsResponse = c
        .call(ApiKey::CommitOffsets, &commit.encode())
        .ok(ApiKey::CommitOffsets);
    let codes: Vec<u16> = resp.results.iter().map(|r| r.error).collect();
    assert_eq!(
        codes,
        vec![
            0,
            0,
            ErrorCode::UnknownTopic as u16,
            ErrorCode::OffsetMetadataTooLarge as u16
        ]
    );
    let newer = proto::CommitOffsetsRequest {
        group: "readers".into(),
        member_id: String::new(),
        generation: -1,
        offsets: vec![proto::CommitOffset {
            topic: "c".into(),
            partition: 0,
            offset: 12,
            metadata: String::new(),
        }],
    };
    let _: proto::CommitOffsetsResponse = c
        .call(ApiKey::CommitOffsets, &newer.encode())
        .ok(ApiKey::CommitOffsets);
    drop(c);
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    assert_eq!(
        c.committed_with_metadata("readers", "c", 3),
        vec![
            (12, String::new()),
            (-1, String::new()),
            (7, "checkpoint {\"epoch\":3}".to_string())
        ]
    );
    assert_eq!(c.committed("others", "c", 3), vec![-1, -1, -1]);
}

#[test]
fn acks_all_alone_is_the_leader_and_other_acks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 1);
    let mut c = broker.client();
    c.create_topic("a", 1, "never");
    let b = batch(&[b"v"], ProducerStamp::NONE, 1);
    // Alone, the leader is every replica: acks=all is stored as acks=1.
    let mut all: proto::ProduceResponse = c
        .call(
            ApiKey::Produce,
            &proto::encode_produce(-1, 0, &[("a", 0, &b)]),
        )
        .ok(ApiKey::Produce);
    let all = all.partitions.remove(0);
    assert_eq!(all.error, 0, "{}", all.message);
    assert_eq!(all.base_offsets, vec![0]);
    let reply = c.call(
        ApiKey::Produce,
        &proto::encode_produce(2, 0, &[("a", 0, &b)]),
    );
    assert_eq!(reply.error, ErrorCode::InvalidAcks);
    assert!(reply.message().contains("acks=2"), "{}", reply.message());
    // acks=0 gets no response; the next request's response comes first.
    c.send(
        ApiKey::Produce,
        &proto::encode_produce(0, 0, &[("a", 0, &b)]),
    );
    let list = c.call(ApiKey::ListTopics, &[]);
    assert_eq!(list.error, ErrorCode::None);
    // Nothing says when an acks=0 batch is stored: wait for it (bounded).
    let mut stored = 0;
    for _ in 0..500 {
        stored = c.read_all("a", 0, 0).len();
        if stored == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stored, 2);
}

#[test]
fn retention_runs_on_a_timer() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(dir.path(), 2, &["--retention-check-ms", "50"]);
    let mut c = broker.client();
    let req = proto::CreateTopicRequest {
        name: "short".into(),
        partitions: Some(1),
        retention_ms: Some(60_000),
        segment_bytes: Some(1024),
        fsync: Some("never".into()),
        ..Default::default()
    };
    let _: proto::MetadataResponse = c
        .call(ApiKey::CreateTopic, &req.encode())
        .ok(ApiKey::CreateTopic);
    let filler = vec![b'x'; 300];
    // Records from 1970: past any retention as soon as their segment seals.
    for _ in 0..20 {
        assert_eq!(
            c.produce("short", 0, &batch(&[&filler], ProducerStamp::NONE, 1))
                .error,
            0
        );
    }
    // Settled: a slow machine may have seen passes run between the produces,
    // so the start moves until every sealed segment is gone.
    let mut start = 0;
    for _ in 0..600 {
        let now = c.list_offset("short", 0, proto::EARLIEST);
        if now > 0 && now == start {
            break;
        }
        start = now;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(start > 0, "retention never deleted a segment");
    assert_eq!(c.list_offset("short", 0, proto::LATEST), 20);
    let kept = c.read_all("short", 0, start as u64);
    assert_eq!(kept.first().map(|(o, _)| *o as i64), Some(start));
}

#[test]
fn group_members_with_a_stale_generation_cannot_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    c.create_topic("g", 4, "never");
    let join = |c: &mut common::Client, member: &str| -> proto::GroupHeartbeatResponse {
        let req = proto::GroupHeartbeatRequest {
            group: "grp".into(),
            member_id: member.into(),
            topics: vec!["g".into()],
            assignor: "roundrobin".into(),
            session_timeout_ms: 30_000,
            owned: Vec::new(),
            leave: false,
        };
        c.call(ApiKey::GroupHeartbeat, &req.encode())
            .ok(ApiKey::GroupHeartbeat)
    };
    let a = join(&mut c, "");
    assert_eq!(a.assignment.len(), 4);
    let b = join(&mut c, "");
    assert!(b.generation > a.generation);
    let commit = |c: &mut common::Client, member: &str, generation: i32| {
        let req = proto::CommitOffsetsRequest {
            group: "grp".into(),
            member_id: member.into(),
            generation,
            offsets: vec![proto::CommitOffset {
                topic: "g".into(),
                partition: 0,
                offset: 3,
                metadata: String::new(),
            }],
        };
        let resp: proto::CommitOffsetsResponse = c
            .call(ApiKey::CommitOffsets, &req.encode())
            .ok(ApiKey::CommitOffsets);
        ErrorCode::from_u16(resp.results[0].error)
    };
    assert_eq!(
        commit(&mut c, &a.member_id, a.generation),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        commit(&mut c, "stranger", b.generation),
        ErrorCode::UnknownMember
    );
    assert_eq!(commit(&mut c, &a.member_id, b.generation), ErrorCode::None);
    let unknown = proto::GroupHeartbeatRequest {
        group: "grp".into(),
        member_id: "ghost".into(),
        topics: vec!["g".into()],
        assignor: "range".into(),
        session_timeout_ms: 30_000,
        owned: Vec::new(),
        leave: false,
    };
    assert_eq!(
        c.call(ApiKey::GroupHeartbeat, &unknown.encode()).error,
        ErrorCode::UnknownMember
    );
    let groups: proto::ListGroupsResponse = c.call(ApiKey::ListGroups, &[]).ok(ApiKey::ListGroups);
    assert_eq!(groups.groups, vec!["grp".to_string()]);
    let desc = proto::DescribeGroupRequest {
        group: "grp".into(),
    };
    let desc: proto::DescribeGroupResponse = c
        .call(ApiKey::DescribeGroup, &desc.encode())
        .ok(ApiKey::DescribeGroup);
    assert_eq!(desc.members.len(), 2);
    assert_eq!(
        desc.offsets,
        vec![proto::CommitOffset {
            topic: "g".into(),
            partition: 0,
            offset: 3,
            metadata: String::new(),
        }]
    );
}

#[test]
fn the_offsets_topic_is_compacted_and_keeps_the_latest_commits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(
        dir.path(),
        2,
        &[
            "--offsets-segment-bytes",
            "4096",
            "--cleaner-interval-ms",
            "50",
        ],
    );
    let mut c = broker.client();
    c.create_topic("busy", 8, "never");
    // Far more commits than two 4 KiB segments hold, to the same 8 keys.
    for round in 0..400u64 {
        let req = proto::CommitOffsetsRequest {
            group: "committer".into(),
            member_id: String::new(),
            generation: -1,
            offsets: (0..8)
                .map(|p| proto::CommitOffset {
                    topic: "busy".into(),
                    partition: p,
                    offset: round * 10 + u64::from(p),
                    metadata: String::new(),
                })
                .collect(),
        };
        let resp: proto::CommitOffsetsResponse = c
            .call(ApiKey::CommitOffsets, &req.encode())
            .ok(ApiKey::CommitOffsets);
        assert!(resp.results.iter().all(|r| r.error == 0));
    }
    let offsets_bytes = || -> u64 {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("__consumer_offsets-")
            })
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    // 400 commits of 8 keys are ~150 KiB of records; the log cleaner
    // keeps the latest of each key and merges what it empties.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while offsets_bytes() >= 40 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "offsets topic still holds {} bytes",
            offsets_bytes()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(c);
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    let offsets = c.committed("committer", "busy", 8);
    assert_eq!(offsets, (0..8).map(|p| 3990 + p).collect::<Vec<i64>>());
}

/// A topic with `cleanup.policy=compact`: the cleaner keeps the latest
/// record of each key at its own offset, removes a deleted key's records
/// and its tombstone, survives a kill, and a record without a key is
/// refused with nothing of its request stored.
#[test]
fn a_topic_altered_to_compact_applies_at_once_and_keeps_it_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(dir.path(), 2, &["--cleaner-interval-ms", "50"]);
    let mut c = broker.client();
    let req = proto::CreateTopicRequest {
        name: "changes".into(),
        partitions: Some(1),
        fsync: Some("never".into()),
        segment_bytes: Some(4096),
        delete_retention_ms: Some(0),
        ..Default::default()
    };
    c.call(ApiKey::CreateTopic, &req.encode())
        .ok::<proto::MetadataResponse>(ApiKey::CreateTopic);
    let keyless = || batch(&[b"no key"], ProducerStamp::NONE, now_ms());
    assert_eq!(
        c.produce("changes", 0, &keyless()).error,
        0,
        "delete takes any record"
    );
    let alter = |c: &mut common::Client, topic: &str, changes: &[(&str, Option<&str>)]| {
        let req = proto::AlterTopicConfigRequest {
            topic: topic.into(),
            changes: changes
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            validate_only: false,
        };
        c.call(ApiKey::AlterTopicConfig, &req.encode())
    };
    // Refused: each leaves the topic as it was.
    for (topic, changes, code) in [
        (
            "changes",
            vec![("retention.ms", Some("soon"))],
            ErrorCode::InvalidTopicConfig,
        ),
        (
            "changes",
            vec![("cleanup.policy", Some("shred"))],
            ErrorCode::InvalidTopicConfig,
        ),
        (
            "changes",
            vec![("segment.bytes", Some("8192"))],
            ErrorCode::InvalidTopicConfig,
        ),
        (
            "changes",
            vec![("no.such.setting", Some("1"))],
            ErrorCode::InvalidTopicConfig,
        ),
        (
            "missing",
            vec![("retention.ms", Some("1"))],
            ErrorCode::UnknownTopic,
        ),
        (
            "__consumer_offsets",
            vec![("retention.ms", Some("1"))],
            ErrorCode::InvalidTopicConfig,
        ),
    ] {
        let reply = alter(&mut c, topic, &changes);
        assert_eq!(
            reply.error,
            code,
            "{topic} {changes:?}: {}",
            reply.message()
        );
    }
    let meta: proto::MetadataResponse = alter(
        &mut c,
        "changes",
        &[
            ("cleanup.policy", Some("compact")),
            ("retention.ms", Some("3600000")),
        ],
    )
    .ok(ApiKey::AlterTopicConfig);
    let config = &meta.topics[0].config;
    assert_eq!(
        (config.cleanup_policy.as_str(), config.retention_ms),
        ("compact", 3_600_000)
    );
    // At once: a keyless record is refused, and the cleaner compacts.
    let refused = c.produce("changes", 0, &keyless());
    assert_eq!(
        refused.error,
        ErrorCode::InvalidRecord as u16,
        "{}",
        refused.message
    );
    for i in 0..600 {
        let b = keyed_batch(
            &[(format!("k{}", i % 3).as_bytes(), Some(b"vvvvvvvv"))],
            now_ms(),
        );
        assert_eq!(c.produce("changes", 0, &b).error, 0);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while c.read_all("changes", 0, 0).len() > 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "the altered topic was not cleaned"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Kept across a kill; a reset returns to the default.
    drop(c);
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    let meta: proto::MetadataResponse =
        alter(&mut c, "changes", &[("cleanup.policy", None)]).ok(ApiKey::AlterTopicConfig);
    assert_eq!(meta.topics[0].config.cleanup_policy, "delete");
    assert_eq!(
        meta.topics[0].config.retention_ms, 3_600_000,
        "kept across the kill"
    );
    assert_eq!(c.produce("changes", 0, &keyless()).error, 0);
}

#[test]
fn a_compacted_topic_keeps_the_latest_record_of_each_key() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(dir.path(), 2, &["--cleaner-interval-ms", "50"]);
    let mut c = broker.client();
    let req = proto::CreateTopicRequest {
        name: "table".into(),
        partitions: Some(1),
        fsync: Some("never".into()),
        segment_bytes: Some(4096),
        cleanup_policy: Some("compact".into()),
        delete_retention_ms: Some(0),
        ..Default::default()
    };
    let meta: proto::MetadataResponse = c
        .call(ApiKey::CreateTopic, &req.encode())
        .ok(ApiKey::CreateTopic);
    assert_eq!(meta.topics[0].config.cleanup_policy, "compact");
    assert_eq!(meta.topics[0].config.delete_retention_ms, 0);

    let mut bad = keyed_batch(&[(b"k", Some(b"v"))], now_ms());
    let keyless = batch(&[b"no key"], ProducerStamp::NONE, now_ms());
    bad.extend_from_slice(&keyless);
    // A keyed batch, then a keyless one, in one request.
    let payload = proto::encode_produce(1, 10_000, &[("table", 0, &bad)]);
    let resp: proto::ProduceResponse = c.call(ApiKey::Produce, &payload).ok(ApiKey::Produce);
    assert_eq!(resp.partitions[0].error, ErrorCode::InvalidRecord as u16);
    assert!(
        resp.partitions[0].message.contains("no key"),
        "{}",
        resp.partitions[0].message
    );
    assert_eq!(c.list_offset("table", 0, -1), 0, "nothing of it was stored");

    // 10 keys written 200 times each, key 9 then deleted, then other
    // records so the tombstone's segment is sealed too.
    let mut model: Vec<(u64, String, Option<String>)> = Vec::new();
    let mut produce = |c: &mut common::Client, key: String, value: Option<String>| {
        let b = keyed_batch(
            &[(key.as_bytes(), value.as_deref().map(str::as_bytes))],
            now_ms(),
        );
        let r = c.produce("table", 0, &b);
        assert_eq!(r.error, 0);
        model.push((r.base_offsets[0], key, value));
    };
    for i in 0..2000 {
        produce(&mut c, format!("k{}", i % 10), Some(format!("v{i}")));
    }
    produce(&mut c, "k9".into(), None);
    for i in 0..100 {
        produce(&mut c, format!("pad{}", i % 2), Some(format!("p{i}")));
    }
    let read = |c: &mut common::Client| -> Vec<(u64, String, Option<String>)> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let (error, end, bytes) = c.fetch(&[("table", 0, offset)], 0).remove(0);
            assert_eq!(error, ErrorCode::None);
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let view = ringlog_engine::batch::BatchView::parse(rest, 16 << 20).unwrap();
                for r in view.records().unwrap() {
                    let r = r.unwrap();
                    if r.offset as u64 >= offset {
                        out.push((
                            r.offset as u64,
                            String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                            r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                        ));
                    }
                }
                offset = view.last_offset() as u64 + 1;
                rest = &rest[view.bytes().len()..];
            }
            if offset >= end {
                return out;
            }
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let cleaned = loop {
        let found = read(&mut c);
        if found.iter().all(|(_, k, _)| k != "k9") && found.len() < 200 {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not cleaned: {} records",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Every record read is the one produced at that offset.
    for (offset, key, value) in &cleaned {
        assert_eq!(
            &model[*offset as usize],
            &(*offset, key.clone(), value.clone())
        );
    }
    // The latest of each live key is there.
    for k in 0..9 {
        let key = format!("k{k}");
        let latest = model.iter().rev().find(|(_, mk, _)| *mk == key).unwrap();
        assert!(cleaned.contains(latest), "{key}: {latest:?}");
    }
    assert_eq!(
        c.list_offset("table", 0, -1),
        model.len() as i64,
        "offsets never change"
    );

    drop(c);
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    let after = read(&mut c);
    assert!(after.len() <= cleaned.len());
    for k in 0..9 {
        let key = format!("k{k}");
        let latest = model.iter().rev().find(|(_, mk, _)| *mk == key).unwrap();
        assert!(after.contains(latest), "{key} after the restart");
    }
}
