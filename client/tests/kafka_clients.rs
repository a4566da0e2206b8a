//! Kafka clients nobody here wrote against the real broker's Kafka
//! listener: kcat (librdkafka), kafka-python and confluent-kafka. `.ci/run`
//! installs them (kcat from the distribution, the Python clients in a
//! virtual environment named by `RINGLOG_KAFKA_PYTHON`); elsewhere a test
//! whose tool is missing says so and passes, and under `CI` it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ringlog_client::{partitioner, Admin, Client, NewTopic};
use ringlog_server::testing::{python_with, required, BrokerProcess};

mod common;

fn kcat() -> Option<PathBuf> {
    let found = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
        .then(|| PathBuf::from("kcat"));
    required("kcat", found)
}

/// A Python with kafka-python and confluent-kafka.
fn python() -> Option<PathBuf> {
    python_with("kafka, confluent_kafka")
}

fn broker(dir: &Path) -> (BrokerProcess, String) {
    let b = common::broker(dir, 2);
    let kafka = b.kafka.expect("the Kafka listener is on").to_string();
    (b, kafka)
}

/// Runs a command to its end; its stdout, or a panic with its stderr.
fn run(command: &mut Command) -> String {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn create(native: &str, topic: &str, partitions: u32) {
    common::runtime().block_on(async {
        let admin = Admin::new(Client::connect(native).await.unwrap());
        admin
            .create_topic(NewTopic::new(topic, partitions))
            .await
            .unwrap();
    });
}

/// Records as kcat and `ringlog consume` print them alike.
const FORMAT: &str = "%p %o %T %k=%s [%h]\\n";

#[test]
fn kcat_lists_produces_and_consumes_every_record_byte_for_byte() {
    let Some(kcat) = kcat() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (b, kafka) = broker(dir.path());
    create(&b.addr.to_string(), "kc", 2);

    let listing = run(Command::new(&kcat).args(["-b", &kafka, "-L", "-t", "kc"]));
    assert!(
        listing.contains("topic \"kc\" with 2 partitions"),
        "{listing}"
    );

    let input = dir.path().join("in.txt");
    let lines: Vec<String> = (0..200)
        .map(|i| format!("key-{i}:value {i} \u{e9}\t\u{1f600}"))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    run(Command::new(&kcat)
        .args(["-b", &kafka, "-P", "-t", "kc", "-p", "1", "-K:"])
        .args(["-H", "trace=abc", "-l", input.to_str().unwrap()]));
    let out = run(Command::new(&kcat).args([
        "-b",
        &kafka,
        "-C",
        "-t",
        "kc",
        "-p",
        "1",
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%k:%s|%h|%o\\n",
    ]));
    let expected: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{l}|trace=abc|{i}\n"))
        .collect();
    assert_eq!(out, expected);
}

#[test]
fn kcat_idempotent_and_compressed_batches_come_back_whole() {
    let Some(kcat) = kcat() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (b, kafka) = broker(dir.path());
    create(&b.addr.to_string(), "codecs", 1);
    let mut expected = String::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let input = dir.path().join(codec);
        let lines: String = (0..100).map(|i| format!("{codec} record {i}\n")).collect();
        expected.push_str(&lines);
        std::fs::write(&input, &lines).unwrap();
        run(Command::new(&kcat)
            .args(["-b", &kafka, "-P", "-t", "codecs", "-z", codec])
            .args([
                "-X",
                "enable.idempotence=true",
                "-l",
                input.to_str().unwrap(),
            ]));
    }
    let out = run(Command::new(&kcat).args([
        "-b",
        &kafka,
        "-C",
        "-t",
        "codecs",
        "-o",
        "beginning",
        "-e",
        "-q",
    ]));
    assert_eq!(out, expected);
    // The native client decompresses each codec as librdkafka wrote it.
    let native = run(Command::new(env!("CARGO_BIN_EXE_ringlog")).args([
        "--broker",
        &b.addr.to_string(),
        "consume",
        "codecs",
        "--from",
        "beginning",
        "--max-messages",
        "500",
    ]));
    assert_eq!(native, expected);
}

#[test]
fn records_cross_protocols_byte_for_byte_both_ways() {
    let Some(kcat) = kcat() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (b, kafka) = broker(dir.path());
    let native = b.addr.to_string();
    create(&native, "across", 1);
    let ringlog = env!("CARGO_BIN_EXE_ringlog");

    // Kafka in, native out.
    let input = dir.path().join("kafka.txt");
    let lines: String = (0..50).map(|i| format!("k{i}:from kcat {i}\n")).collect();
    std::fs::write(&input, &lines).unwrap();
    run(Command::new(&kcat)
        .args(["-b", &kafka, "-P", "-t", "across", "-K:", "-H", "via=kafka"])
        .args(["-l", input.to_str().unwrap()]));
    // Native in, Kafka out.
    let mut produce = Command::new(ringlog)
        .args([
            "--broker",
            &native,
            "produce",
            "across",
            "--key-separator",
            ":",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let native_lines: String = (0..50)
        .map(|i| format!("n{i}:from ringlog {i}\n"))
        .collect();
    produce
        .stdin
        .take()
        .unwrap()
        .write_all(native_lines.as_bytes())
        .unwrap();
    assert!(produce.wait().unwrap().success());

    let by_kcat = run(Command::new(&kcat).args([
        "-b",
        &kafka,
        "-C",
        "-t",
        "across",
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        FORMAT,
    ]));
    let by_ringlog = run(Command::new(ringlog).args([
        "--broker",
        &native,
        "consume",
        "across",
        "--from",
        "beginning",
        "--max-messages",
        "100",
        "--format",
        FORMAT,
    ]));
    assert_eq!(by_kcat.lines().count(), 100, "{by_kcat}");
    assert_eq!(by_kcat, by_ringlog, "the two protocols disagree");
    assert!(by_kcat.contains("k7=from kcat 7 [via=kafka]"), "{by_kcat}");
    assert!(by_kcat.contains("n7=from ringlog 7 []"), "{by_kcat}");
}

#[test]
fn kafka_python_produces_and_consumes_with_keys_and_headers() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_b, kafka) = broker(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/python_clients.py");
    let out = run(Command::new(python).args([script, &kafka, "kafka_python_round_trip"]));
    assert!(out.contains("a partition added"), "{out}");
}

#[test]
fn confluent_kafka_idempotent_producer_partitions_keys_as_kafka_and_stores_each_once() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (b, kafka) = broker(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/python_clients.py");
    let out = run(Command::new(python).args([script, &kafka, "confluent_idempotent_keyed"]));
    let mut offsets: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    let mut keys = BTreeSet::new();
    for line in out.lines() {
        let mut fields = line.split('\t');
        let (Some(key), Some(p), Some(o)) = (fields.next(), fields.next(), fields.next()) else {
            panic!("not key<TAB>partition<TAB>offset: {line:?}");
        };
        let partition: u32 = p.parse().unwrap();
        assert_eq!(
            partition,
            partitioner::partition_for_key(key.as_bytes(), 6),
            "{key} went where Kafka's murmur2 partitioner does not put it"
        );
        assert!(keys.insert(key.to_string()), "{key} acknowledged twice");
        assert!(offsets
            .entry(partition)
            .or_default()
            .insert(o.parse().unwrap()));
    }
    assert_eq!(keys.len(), 100_000);
    // Every record stored once: each partition's log ends where its
    // acknowledged offsets do, with no gap and nothing extra.
    let metadata = common::runtime().block_on(async {
        let admin = Admin::new(Client::connect(&b.addr.to_string()).await.unwrap());
        admin.describe_topic("ck-keyed").await.unwrap()
    });
    for p in metadata.partitions {
        let acked = offsets.get(&p.partition).map_or(0, BTreeSet::len) as u64;
        assert_eq!(p.log_end, acked, "partition {}", p.partition);
        assert_eq!(
            offsets.get(&p.partition).and_then(|o| o.last().copied()),
            acked.checked_sub(1),
            "partition {}: offsets have a gap",
            p.partition
        );
    }
}

#[test]
fn confluent_kafka_consumer_groups_split_hand_over_and_resume_after_a_restart() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (b, kafka) = broker(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/python_clients.py");
    let out = run(Command::new(&python).args([script, &kafka, "confluent_group"]));
    assert!(out.contains("a leave handed over"), "{out}");
    let b = b.restart_gracefully().unwrap();
    let kafka = b.kafka.unwrap().to_string();
    let out = run(Command::new(&python).args([script, &kafka, "confluent_group_resume"]));
    assert!(out.contains("commits survived the restart"), "{out}");
}

#[test]
fn kafka_admin_clients_create_describe_alter_and_delete_topics() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_b, kafka) = broker(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/python_clients.py");
    let out = run(Command::new(&python).args([script, &kafka, "confluent_admin"]));
    assert!(
        out.contains("partitions added, cluster described, altered"),
        "{out}"
    );
    let out = run(Command::new(python).args([script, &kafka, "kafka_python_alter_configs"]));
    assert!(out.contains("altered with AlterConfigs"), "{out}");
}

#[test]
fn a_compacted_topic_made_and_read_by_kafka_clients() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start(
        &ringlog_server::testing::server_binary(),
        dir.path(),
        2,
        &["--cleaner-interval-ms", "50"],
    )
    .unwrap();
    let kafka = b.kafka.unwrap().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/python_clients.py");
    let out = run(Command::new(python).args([script, &kafka, "confluent_compacted"]));
    assert!(out.contains("read by both clients"), "{out}");
}

#[test]
fn confluent_kafka_writes_and_reads_a_cluster_through_a_brokers_death() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (mut brokers, _) = common::cluster(dir.path());
    let kafka = brokers
        .iter()
        .map(|b| {
            b.as_ref()
                .unwrap()
                .kafka
                .expect("Kafka listener")
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(",");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka/python_clients.py");
    let out = run(Command::new(&python).args([script, &kafka, "confluent_cluster"]));
    assert!(out.contains("read once by a group"), "{out}");
    // Whatever broker 1 led moves; its acknowledged records must not.
    brokers[0].take().unwrap().kill();
    let out = run(Command::new(&python).args([script, &kafka, "confluent_cluster_after_kill"]));
    assert!(out.contains("none lost, none twice"), "{out}");
}
