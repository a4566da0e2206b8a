//! The client library against the real broker binary.

mod common;

use common::{broker, runtime};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ringlog_client::partitioner::partition_for_key;
use ringlog_client::{
    Admin, Client, Consumer, ConsumerConfig, ConsumerRecord, ErrorKind, NewTopic, OffsetReset,
    Producer, ProducerConfig, Record, SeekTo,
};

/// Polls until `n` records came (a 60 s liveness bound, not a speed claim).
async fn consume_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    for _ in 0..600 {
        out.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
        if out.len() >= n {
            break;
        }
    }
    out
}

/// Nothing more arrives: no record was stored twice or left behind.
async fn assert_drained(consumer: &mut Consumer) {
    let more = consumer.poll(Duration::from_millis(300)).await.unwrap();
    assert!(more.is_empty(), "unexpected records: {more:?}");
}

#[test]
fn keyed_records_round_trip_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    runtime().block_on(async {
        let client = Client::connect(&b.addr.to_string()).await.unwrap();
        let admin = Admin::new(client.clone());
        admin
            .create_topic(NewTopic::new("keyed", 8).fsync("never"))
            .await
            .unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default())
            .await
            .unwrap();
        let mut deliveries = Vec::new();
        for i in 0..3000u32 {
            let key = format!("user-{}", i % 97);
            let record = Record::new("keyed", format!("{key}:{i}"))
                .key(key.clone())
                .header("seq", i.to_string());
            deliveries.push((key, producer.send(record).await.unwrap()));
        }
        producer.flush().await.unwrap();
        for (key, d) in deliveries {
            let meta = d.await.unwrap();
            assert_eq!(
                meta.partition,
                partition_for_key(key.as_bytes(), 8),
                "{key}"
            );
            assert!(meta.offset.is_some());
        }

        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        assert_eq!(consumer.assign_topic("keyed").await.unwrap().len(), 8);
        let records = consume_n(&mut consumer, 3000).await;
        assert_eq!(records.len(), 3000);
        let mut last_seq: BTreeMap<String, u32> = BTreeMap::new();
        let mut offsets = BTreeSet::new();
        for r in &records {
            let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            assert_eq!(r.partition, partition_for_key(key.as_bytes(), 8));
            let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            let seq: u32 = value.rsplit(':').next().unwrap().parse().unwrap();
            assert_eq!(r.headers[0].1.as_deref(), Some(seq.to_string().as_bytes()));
            // Per key (hence per partition) in the order produced.
            if let Some(prev) = last_seq.insert(key, seq) {
                assert!(seq > prev);
            }
            assert!(
                offsets.insert((r.partition, r.offset)),
                "a record came twice"
            );
        }
        // Nothing more arrives.
        assert_drained(&mut consumer).await;
    });
}

#[test]
fn seek_by_timestamp_offset_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    runtime().block_on(async {
        let client = Client::connect(&b.addr.to_string()).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("timed", 1))
            .await
            .unwrap();
        let config = ProducerConfig {
            batch_size: 1024,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client.clone(), config).await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..200i64 {
            let record = Record::new("timed", format!("v{i}")).timestamp(1_000_000 + i * 10);
            deliveries.push(producer.send(record).await.unwrap());
        }
        producer.flush().await.unwrap();
        for d in deliveries {
            d.await.unwrap();
        }
        let mut consumer = Consumer::new(client, ConsumerConfig::default());
        consumer.assign(&[("timed", 0)]).await.unwrap();
        assert_eq!(
            consumer.position("timed", 0),
            Some(200),
            "latest by default"
        );

        consumer
            .seek("timed", 0, SeekTo::Timestamp(1_000_505))
            .await
            .unwrap();
        let first = consume_n(&mut consumer, 1).await.remove(0);
        assert_eq!((first.offset, first.timestamp), (51, 1_000_510));

        consumer.seek("timed", 0, SeekTo::Offset(7)).await.unwrap();
        assert_eq!(
            consume_n(&mut consumer, 1).await[0].value.as_deref(),
            Some(&b"v7"[..])
        );
        consumer.seek("timed", 0, SeekTo::Beginning).await.unwrap();
        assert_eq!(consume_n(&mut consumer, 1).await[0].offset, 0);
        consumer
            .seek("timed", 0, SeekTo::Timestamp(9_000_000))
            .await
            .unwrap();
        assert_eq!(consumer.position("timed", 0), Some(200));
        // Past the end: the broker says out of range and the consumer resets.
        consumer
            .seek("timed", 0, SeekTo::Offset(10_000))
            .await
            .unwrap();
        assert_drained(&mut consumer).await;
    });
}

#[test]
fn committed_offsets_survive_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    let addr = b.addr.to_string();
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("progress", 3))
            .await
            .unwrap();
        let config = ConsumerConfig {
            group: Some("app".into()),
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        consumer
            .commit_offsets(&[("progress", 0, 5), ("progress", 2, 9)])
            .await
            .unwrap();
        let err = consumer
            .commit_offsets(&[("missing", 0, 1)])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownTopic);
    });
    let b = b.restart_after_kill().unwrap();
    rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        let config = ConsumerConfig {
            group: Some("app".into()),
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        let got = consumer
            .committed(&[("progress", 0), ("progress", 1), ("progress", 2)])
            .await
            .unwrap();
        assert_eq!(got, vec![Some(5), None, Some(9)]);
        // A group's consumer starts where it committed.
        consumer.assign(&[("progress", 2)]).await.unwrap();
        assert_eq!(consumer.position("progress", 2), Some(9));
    });
    drop(b);
}

#[test]
fn retries_across_a_broker_crash_store_each_record_once() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    let addr = b.addr.to_string();
    let rt = runtime();
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("exactly", 8).fsync("always"))
            .await
            .unwrap();
        let config = ProducerConfig {
            batch_size: 4096,
            linger: Duration::from_millis(2),
            ..ProducerConfig::default()
        };
        Producer::new(client, config).await.unwrap()
    });
    let producing = {
        let (acked, stop) = (acked.clone(), stop.clone());
        rt.spawn(async move {
            let mut waits = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let record = Record::new("exactly", format!("{i:08}")).key(format!("k{}", i % 13));
                let delivery = producer.send(record).await.unwrap();
                let acked = acked.clone();
                waits.push(tokio::spawn(async move {
                    let result = delivery.await;
                    acked.fetch_add(1, Ordering::Relaxed);
                    result
                }));
                i += 1;
                if i % 200 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            producer.flush().await.unwrap();
            let mut results = Vec::new();
            for w in waits {
                results.push(w.await.unwrap());
            }
            results
        })
    };
    let wait_for = |n: usize| {
        for _ in 0..6000 {
            if acked.load(Ordering::Relaxed) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("fewer than {n} records were acknowledged");
    };
    // Crash the broker mid-stream, bring it back on the same port: the
    // producer retries whatever was not acknowledged, some of which the
    // broker had stored already.
    let mut b = b;
    for _ in 0..3 {
        wait_for(acked.load(Ordering::Relaxed) + 3000);
        b = b.restart_after_kill().unwrap();
    }
    wait_for(acked.load(Ordering::Relaxed) + 3000);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        let results = producing.await.unwrap();
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "deliveries failed: {:?}", failed.first());
        let total = results.len();

        let client = Client::connect(&addr).await.unwrap();
        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        consumer.assign_topic("exactly").await.unwrap();
        let records = consume_n(&mut consumer, total).await;
        let mut seen = BTreeSet::new();
        for r in &records {
            assert!(
                seen.insert(r.value.clone().unwrap()),
                "stored twice: {:?}",
                r.value
            );
        }
        assert_eq!(seen.len(), total, "every record stored");
        assert_drained(&mut consumer).await;
    });
    drop(b);
}

/// What a proxy hook does with a frame.
enum Pass {
    /// Send it on (changed or not).
    Forward,
    /// Drop it and cut the connection.
    Cut,
}

/// Sees (and may change) each frame going one way through a proxy.
type Hook = std::sync::Arc<dyn Fn(&mut Vec<u8>) -> Pass + Send + Sync>;

/// A TCP proxy to the broker that hands every whole frame to a hook on its
/// way: `requests` for the client's frames, `responses` for the broker's.
fn proxy(
    broker: std::net::SocketAddr,
    requests: Option<Hook>,
    responses: Option<Hook>,
) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = std::net::TcpStream::connect(broker).unwrap();
            let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let requests = requests.clone();
            std::thread::spawn(move || pump(c, s, requests));
            let responses = responses.clone();
            std::thread::spawn(move || pump(server, client, responses));
        }
    });
    addr
}

/// Copies length-prefixed frames from `from` to `to` through `hook`.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, hook: Option<Hook>) {
    use std::io::{Read, Write};
    let Some(hook) = hook else {
        let _ = std::io::copy(&mut from, &mut to);
        return;
    };
    loop {
        let mut frame = vec![0u8; 4];
        if from.read_exact(&mut frame).is_err() {
            break;
        }
        let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        frame.resize(4 + len, 0);
        if from.read_exact(&mut frame[4..]).is_err() {
            break;
        }
        match hook(&mut frame) {
            Pass::Forward => {
                if to.write_all(&frame).is_err() {
                    break;
                }
            }
            Pass::Cut => {
                let _ = to.shutdown(std::net::Shutdown::Both);
                let _ = from.shutdown(std::net::Shutdown::Both);
                break;
            }
        }
    }
}

/// A TCP proxy to the broker that, once, forwards a produce request but
/// swallows its response and cuts the connection: the broker stored the
/// batch, the producer never heard, as when a broker dies after a write.
fn lossy_proxy(broker: std::net::SocketAddr, swallow_response: usize) -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (seen, fired) = (AtomicUsize::new(0), AtomicBool::new(false));
    let hook: Hook = std::sync::Arc::new(move |frame: &mut Vec<u8>| {
        // A response's api key follows its length and request id.
        let produce = u16::from_be_bytes([frame[12], frame[13]]) == 1;
        let n = seen.fetch_add(usize::from(produce), Ordering::SeqCst) + usize::from(produce);
        if produce && n == swallow_response && !fired.swap(true, Ordering::SeqCst) {
            Pass::Cut
        } else {
            Pass::Forward
        }
    });
    proxy(broker, None, Some(hook))
}

/// A TCP proxy to the broker that flips the last byte of the `nth` produce
/// request on its way, so the broker refuses that request's last batch as
/// corrupt: a batch that fails for good in the middle of a pipelined stream.
fn corrupting_proxy(broker: std::net::SocketAddr, nth: usize) -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let produces = AtomicUsize::new(0);
    let hook: Hook = std::sync::Arc::new(move |frame: &mut Vec<u8>| {
        let produce = u16::from_be_bytes([frame[4], frame[5]]) == 1;
        if produce && produces.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            if let Some(last) = frame.last_mut() {
                *last ^= 0x55;
            }
        }
        Pass::Forward
    });
    proxy(broker, Some(hook), None)
}

#[test]
fn a_batch_that_fails_for_good_does_not_stall_the_batches_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 1);
    let proxy = corrupting_proxy(b.addr, 10);
    runtime().block_on(async {
        let client = Client::connect(&proxy.to_string()).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("gap", 1))
            .await
            .unwrap();
        // Small batches, five in flight: when the corrupt one is refused,
        // the ones behind it are already on their way with later sequences.
        let config = ProducerConfig {
            batch_size: 512,
            linger: Duration::from_millis(5),
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client.clone(), config).await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..3000 {
            let record = Record::new("gap", format!("{i:05}"));
            deliveries.push((i, producer.send(record).await.unwrap()));
        }
        producer.flush().await.unwrap();
        let (mut delivered, mut lost) = (BTreeSet::new(), 0);
        for (i, d) in deliveries {
            match d.await {
                Ok(_) => assert!(delivered.insert(format!("{i:05}").into_bytes())),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::CorruptRecord, "{e}");
                    lost += 1;
                }
            }
        }
        // Only the corrupted batch is lost; the producer numbered the rest
        // again under a new producer id instead of failing them as out of
        // order (or retrying them until the delivery timeout).
        assert!(lost > 0 && lost < 40, "{lost} records failed");
        assert!(
            producer.stats().sequence_resets >= 1,
            "{:?}",
            producer.stats()
        );

        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        consumer.assign_topic("gap").await.unwrap();
        let records = consume_n(&mut consumer, delivered.len()).await;
        let stored: BTreeSet<_> = records.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(records.len(), stored.len(), "a record was stored twice");
        assert_eq!(
            stored,
            delivered.into_iter().map(bytes::Bytes::from).collect()
        );
        assert_drained(&mut consumer).await;
    });
}

#[test]
fn a_lost_acknowledgement_is_retried_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    let proxy = lossy_proxy(b.addr, 5);
    runtime().block_on(async {
        let client = Client::connect(&proxy.to_string()).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("once", 2))
            .await
            .unwrap();
        let config = ProducerConfig {
            batch_size: 512,
            max_in_flight: 1,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client.clone(), config).await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..400 {
            deliveries.push(
                producer
                    .send(Record::new("once", format!("{i:05}")).partition(i % 2))
                    .await
                    .unwrap(),
            );
        }
        producer.flush().await.unwrap();
        for d in deliveries {
            d.await.unwrap();
        }
        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        consumer.assign_topic("once").await.unwrap();
        let records = consume_n(&mut consumer, 400).await;
        let values: BTreeSet<_> = records.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(
            (records.len(), values.len()),
            (400, 400),
            "each record stored exactly once"
        );
        assert_drained(&mut consumer).await;
    });
}

#[test]
fn errors_have_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    runtime().block_on(async {
        let err = Client::connect("127.0.0.1:1").await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::BrokerUnreachable);
        assert!(err.is_retriable());
        let client = Client::connect(&b.addr.to_string()).await.unwrap();
        let admin = Admin::new(client.clone());
        assert_eq!(
            admin.describe_topic("nope").await.unwrap_err().kind(),
            ErrorKind::UnknownTopic
        );
        admin.create_topic(NewTopic::new("t", 2)).await.unwrap();
        assert_eq!(
            admin
                .create_topic(NewTopic::new("t", 2))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::TopicExists
        );
        assert_eq!(
            admin
                .create_topic(NewTopic::new("bad name", 2))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidConfig
        );
        let producer = Producer::new(client.clone(), ProducerConfig::default())
            .await
            .unwrap();
        let err = producer.send(Record::new("nope", "v")).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::UnknownTopic);
        let err = producer
            .send(Record::new("t", "v").partition(5))
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::UnknownPartition);
        // Alone, the broker is every replica: acks=all is stored at once.
        let all = ProducerConfig {
            acks: ringlog_client::Acks::All,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client.clone(), all).await.unwrap();
        producer
            .send(Record::new("t", "v"))
            .await
            .unwrap()
            .await
            .unwrap();
        let list = admin.list_topics().await.unwrap();
        assert!(list.iter().any(|t| t.name == "t"));
        admin.delete_topic("t").await.unwrap();
        assert_eq!(
            admin.delete_topic("t").await.unwrap_err().kind(),
            ErrorKind::UnknownTopic
        );
    });
}

#[test]
fn whole_batches_go_out_and_come_back_in_place() {
    use ringlog_client::NewRecord;

    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    runtime().block_on(async {
        let client = Client::connect(&b.addr.to_string()).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("batches", 2))
            .await
            .unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default())
            .await
            .unwrap();
        // A record sent alone first: a batch sent after it is stored after it.
        let single = producer
            .send(Record::new("batches", "alone").partition(1))
            .await
            .unwrap();
        let mut deliveries = Vec::new();
        let headers: &[(&[u8], Option<&[u8]>)] = &[(b"h", Some(b"v"))];
        for round in 0..3u32 {
            for partition in 0..2 {
                let mut batch = producer.batch("batches", partition).await.unwrap();
                for i in 0..100u32 {
                    let key = format!("k{i}");
                    let record = NewRecord {
                        key: Some(key.as_bytes()),
                        value: None,
                        headers,
                        timestamp: 1_000 + i64::from(i),
                    };
                    if i % 2 == 0 {
                        let value = format!("{partition}-{round}-{i}");
                        let record = NewRecord {
                            value: Some(value.as_bytes()),
                            ..record
                        };
                        batch.push(&record).unwrap();
                    } else {
                        let value = format!("{partition}-{round}-{i}");
                        batch
                            .push_with(&record, value.len(), |out| {
                                out.copy_from_slice(value.as_bytes())
                            })
                            .unwrap();
                    }
                }
                assert_eq!(batch.len(), 100);
                deliveries.push(producer.send_batch(batch).await.unwrap());
            }
        }
        assert!(producer
            .send_batch(producer.batch("batches", 0).await.unwrap())
            .await
            .is_err());
        assert!(producer.batch("batches", 2).await.is_err());
        assert_eq!(single.await.unwrap().offset, Some(0));
        let mut next = [0u64, 1];
        for d in deliveries {
            let meta = d.await.unwrap();
            assert_eq!(meta.records, 100);
            let p = meta.partition as usize;
            assert_eq!(
                meta.base_offset,
                Some(next[p]),
                "batches are stored in order"
            );
            next[p] += 100;
        }

        // Whole batches, decoded in place.
        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client.clone(), config.clone());
        consumer.assign_topic("batches").await.unwrap();
        let mut seen = BTreeMap::new();
        for _ in 0..100 {
            for batch in consumer
                .poll_batches(Duration::from_millis(100))
                .await
                .unwrap()
            {
                for r in batch.records().unwrap() {
                    let r = r.unwrap();
                    let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                    if value != "alone" {
                        assert_eq!(
                            r.headers().collect::<Vec<_>>(),
                            vec![(&b"h"[..], Some(&b"v"[..]))]
                        );
                    }
                    assert!(seen
                        .insert((batch.partition(), r.offset as u64), value)
                        .is_none());
                }
            }
            if seen.len() == 601 {
                break;
            }
        }
        assert_eq!(seen.len(), 601);
        assert_eq!(seen[&(1, 0)], "alone");
        assert_eq!(seen[&(0, 0)], "0-0-0");
        assert_eq!(seen[&(1, 1)], "1-0-0");
        assert_eq!(seen[&(1, 300)], "1-2-99");
        assert_drained(&mut consumer).await;

        // Records one by one from the same batches, a few at a time: a batch
        // taken in part goes on where the last poll stopped.
        let config = ConsumerConfig {
            max_poll_records: 7,
            ..config
        };
        let mut consumer = Consumer::new(client, config);
        consumer.assign_topic("batches").await.unwrap();
        let records = consume_n(&mut consumer, 601).await;
        let again: BTreeMap<_, _> = records
            .iter()
            .map(|r| {
                let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
                ((r.partition, r.offset), value)
            })
            .collect();
        assert_eq!((records.len(), again), (601, seen));
        assert_drained(&mut consumer).await;
    });
}

/// A TCP proxy to the broker that holds every response for `delay`: a slow
/// broker, as the producer sees it.
fn slow_proxy(broker: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    let hook: Hook = std::sync::Arc::new(move |_: &mut Vec<u8>| {
        std::thread::sleep(delay);
        Pass::Forward
    });
    proxy(broker, None, Some(hook))
}

/// With no linger, records sent while the partition's requests are all in
/// flight join one open batch instead of queueing as a batch each: under
/// back-pressure batches grow (a batch per record collapsed fsync=always
/// latency at 10,000 msgs/s to hundreds of ms).
#[test]
fn records_sent_while_requests_are_in_flight_join_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 1);
    let proxy = slow_proxy(b.addr, Duration::from_millis(300));
    runtime().block_on(async {
        let client = Client::connect(&proxy.to_string()).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("grow", 1).fsync("never"))
            .await
            .unwrap();
        let config = ProducerConfig {
            linger: Duration::ZERO,
            max_in_flight: 1,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client.clone(), config).await.unwrap();
        let mut deliveries = Vec::new();
        // Spaced out as an open-loop producer sends them, so the producer
        // task sees each alone.
        for i in 0..50 {
            let record = Record::new("grow", format!("{i}")).partition(0);
            deliveries.push(producer.send(record).await.unwrap());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for (i, d) in deliveries.into_iter().enumerate() {
            assert_eq!(d.await.unwrap().offset, Some(i as u64));
        }
        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        consumer.assign(&[("grow", 0)]).await.unwrap();
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < 50 {
            for batch in consumer
                .poll_batches(Duration::from_millis(100))
                .await
                .unwrap()
            {
                sizes.push(batch.records().unwrap().count());
            }
        }
        // The first record goes alone; the rest were sent while it was in
        // flight (about 100 ms against the proxy's 300).
        assert!(sizes.len() <= 3, "batches of {sizes:?}");
    });
}

#[test]
fn a_bootstrap_list_skips_brokers_that_do_not_answer_and_fails_over_to_the_next() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let b1 = broker(d1.path(), 1);
    let b2 = broker(d2.path(), 1);
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    runtime().block_on(async {
        let none = Client::connect(&format!("{dead}, 127.0.0.1:1")).await;
        let err = none.err().expect("connected to nothing");
        assert_eq!(err.kind(), ErrorKind::BrokerUnreachable);
        assert!(err.to_string().contains(&dead.to_string()), "{err}");

        let only_b2 = Client::connect(&b2.addr.to_string()).await.unwrap();
        Admin::new(only_b2)
            .create_topic(NewTopic::new("on-b2", 1))
            .await
            .unwrap();
        let client = Client::connect(&format!("{dead},{},{}", b1.addr, b2.addr))
            .await
            .unwrap();
        let admin = Admin::new(client);
        let names = |t: Vec<ringlog_protocol::TopicSummary>| {
            t.into_iter().map(|s| s.name).collect::<Vec<_>>()
        };
        assert!(!names(admin.list_topics().await.unwrap()).contains(&"on-b2".to_string()));
        b1.kill();
        // The next calls reach the next broker of the list.
        let mut reached = None;
        for _ in 0..5 {
            if let Ok(t) = admin.list_topics().await {
                reached = Some(names(t));
                break;
            }
        }
        assert!(
            reached
                .expect("no broker answered")
                .contains(&"on-b2".to_string()),
            "the client did not fail over to the second broker"
        );
    });
}
