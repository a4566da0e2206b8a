//! File descriptors: a broker under a low `ulimit -n` holds more partitions
//! (and segments) than it has descriptors, and a topic creation that fails
//! leaves nothing behind.

mod common;

use common::{batch, records, value, Broker};
use ringlog_engine::batch::ProducerStamp;
use ringlog_protocol::{self as proto, ApiKey, ErrorCode, Payload};
use ringlog_server::testing::BrokerProcess;
use std::path::Path;

/// Soft and hard limit of the broker under test: below the partition count,
/// and far below the segment count.
const OPEN_FILES_LIMIT: u64 = 256;
const PARTITIONS: u32 = 300;
const BATCHES_PER_PARTITION: usize = 6;

/// A record value of ~300 bytes: a batch of four fills a 1 KiB segment.
fn big_value(p: u32, i: usize) -> Vec<u8> {
    let mut v = value(p, i);
    v.resize(300, b'.');
    v
}

fn produce_all(c: &mut common::Client, round: usize) {
    for p in 0..PARTITIONS {
        let values: Vec<Vec<u8>> = (0..4).map(|j| big_value(p, round * 4 + j)).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let r = c.produce("many", p, &batch(&refs, ProducerStamp::NONE, 1000));
        assert_eq!(r.error, 0, "partition {p}: {}", r.message);
    }
}

fn check_all(c: &mut common::Client, rounds: usize) {
    for p in 0..PARTITIONS {
        let got = c.read_all("many", p, 0);
        let want: Vec<(u64, Vec<u8>)> = (0..rounds * 4)
            .map(|i| (i as u64, big_value(p, i)))
            .collect();
        assert_eq!(got, want, "partition {p}");
    }
}

fn segment_files(data: &Path) -> usize {
    std::fs::read_dir(data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("many-"))
        .map(|e| {
            std::fs::read_dir(e.path())
                .unwrap()
                .filter(|f| {
                    f.as_ref()
                        .is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".log"))
                })
                .count()
        })
        .sum()
}

#[test]
fn more_partitions_than_descriptors_create_write_read_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_ringlog-server"));
    // 1 KiB segments: every partition rolls, so sealed segments are read back
    // through reopened files too.
    let process = BrokerProcess::start_with_open_files_limit(
        binary,
        dir.path(),
        2,
        &["--default-segment-bytes", "1024"],
        OPEN_FILES_LIMIT,
    )
    .expect("start ringlog-server under a low open-files limit");
    let broker = Broker(process);
    let mut c = broker.client();
    let meta = c.create_topic("many", PARTITIONS, "never");
    assert_eq!(meta.topics[0].partitions.len(), PARTITIONS as usize);
    for round in 0..BATCHES_PER_PARTITION {
        produce_all(&mut c, round);
    }
    let segments = segment_files(dir.path());
    assert!(
        segments >= PARTITIONS as usize * BATCHES_PER_PARTITION,
        "only {segments} segment files"
    );
    check_all(&mut c, BATCHES_PER_PARTITION);
    drop(c);

    // A crash and a clean stop: both recover every partition and serve.
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    check_all(&mut c, BATCHES_PER_PARTITION);
    produce_all(&mut c, BATCHES_PER_PARTITION);
    drop(c);
    let broker = Broker(broker.0.restart_gracefully().unwrap());
    let mut c = broker.client();
    check_all(&mut c, BATCHES_PER_PARTITION + 1);
    // Still room for connections and for another topic.
    let mut others: Vec<common::Client> = (0..20).map(|_| broker.client()).collect();
    others[19].create_topic("after", 10, "never");
    assert!(broker.metrics_text().contains("ringlog"));
}

#[test]
fn a_topic_that_cannot_be_created_whole_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    // A file where partition 1's directory must go: that partition cannot
    // be opened, whichever shard owns it.
    let obstruction = dir.path().join("blocked-1");
    std::fs::write(&obstruction, b"not a directory").unwrap();
    let req = proto::CreateTopicRequest {
        name: "blocked".into(),
        partitions: Some(4),
        ..Default::default()
    };
    let reply = c.call(ApiKey::CreateTopic, &req.encode());
    assert_eq!(reply.error, ErrorCode::StorageError, "{}", reply.message());
    assert!(reply.message().contains("blocked-1"), "{}", reply.message());

    let topics: proto::ListTopicsResponse = c.call(ApiKey::ListTopics, &[]).ok(ApiKey::ListTopics);
    assert!(topics.topics.iter().all(|t| t.name != "blocked"));
    for p in [0, 2, 3] {
        assert!(
            !dir.path().join(format!("blocked-{p}")).exists(),
            "blocked-{p} left"
        );
    }
    assert!(!dir.path().join("topics/blocked.topic").exists());
    assert!(
        obstruction.is_file(),
        "a file ringlog did not make was removed"
    );

    // The same name works once the obstruction is gone, also after a restart.
    std::fs::remove_file(&obstruction).unwrap();
    let broker = broker.restart_after_kill();
    let mut c = broker.client();
    let topics: proto::ListTopicsResponse = c.call(ApiKey::ListTopics, &[]).ok(ApiKey::ListTopics);
    assert!(topics.topics.iter().all(|t| t.name != "blocked"));
    let meta = c.create_topic("blocked", 4, "never");
    assert_eq!(meta.topics[0].partitions.len(), 4);
    let r = c.produce("blocked", 1, &batch(&[b"x"], ProducerStamp::NONE, 1));
    assert_eq!(r.error, 0, "{}", r.message);
    assert_eq!(records(&c.fetch(&[("blocked", 1, 0)], 0)[0].2).len(), 1);
}
