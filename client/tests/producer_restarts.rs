//! An idempotent producer rides through repeated broker crashes: every
//! acknowledged record is stored exactly once, and the producer finishes
//! soon after the last restart instead of stalling on refused sequences.
//!
//! One run by default; `RINGLOG_RESTART_RUNS=20 cargo test -p ringlog-client
//! --test producer_restarts -- --nocapture` loops it (each run has its own
//! seed; `RINGLOG_RESTART_FIRST=N` starts at run N).

mod common;

use common::{broker, runtime};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlog_client::{
    Admin, Client, Consumer, ConsumerConfig, NewTopic, OffsetReset, Producer, ProducerConfig,
    Record,
};

const PARTITIONS: u32 = 4;
/// Records sent after the last restart (the stream runs until then).
const RECORDS_AFTER: usize = 50_000;
const RESTARTS: usize = 8;
/// Liveness, not speed: how long the producer may take to finish after the
/// last restart (without restarts the whole stream takes a few seconds).
const FINISH_AFTER_LAST_RESTART: Duration = Duration::from_secs(60);

/// xorshift, seeded per run so a failing run can be told apart in the log.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn an_idempotent_producer_finishes_through_repeated_broker_kills() {
    let runs: usize = std::env::var("RINGLOG_RESTART_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // A failing run's index, to run it alone again.
    let first: usize = std::env::var("RINGLOG_RESTART_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for run in first..first + runs {
        let seed = 0x5eed_0000 + run as u64;
        let started = Instant::now();
        one_run(seed);
        eprintln!(
            "run {run} (seed {seed:#x}) passed in {:?}",
            started.elapsed()
        );
    }
}

fn one_run(seed: u64) {
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    let addr = b.addr.to_string();
    let rt = runtime();
    let acked = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let producer = rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("restarts", PARTITIONS).fsync("never"))
            .await
            .unwrap();
        // The defaults: idempotent, acks=1, 5 batches in flight per partition.
        Producer::new(client, ProducerConfig::default())
            .await
            .unwrap()
    });
    let producing = {
        let (acked, restarted, done) = (acked.clone(), restarted.clone(), done.clone());
        rt.spawn(async move {
            // One waiter per chunk of deliveries, not per record.
            let mut waiters = Vec::new();
            let mut chunk = Vec::with_capacity(1000);
            let mut last = None;
            let mut i = 0;
            while last.is_none_or(|last| i < last) {
                if last.is_none() && restarted.load(Ordering::Relaxed) {
                    last = Some(i + RECORDS_AFTER);
                }
                let record = Record::new("restarts", format!("{i:09}")).key(format!("k{}", i % 97));
                chunk.push((i, producer.send(record).await.unwrap()));
                i += 1;
                if chunk.len() == 1000 || last == Some(i) {
                    // A breath per chunk: the stream spans the restarts.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let deliveries = std::mem::take(&mut chunk);
                    let acked = acked.clone();
                    waiters.push(tokio::spawn(async move {
                        let mut out = Vec::with_capacity(deliveries.len());
                        for (i, d) in deliveries {
                            let result = d.await;
                            if result.is_ok() {
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                            out.push((i, result));
                        }
                        out
                    }));
                }
            }
            producer.flush().await.unwrap();
            let mut results = Vec::with_capacity(i);
            for w in waiters {
                results.extend(w.await.unwrap());
            }
            done.store(true, Ordering::Relaxed);
            (results, producer.stats())
        })
    };

    let mut b = b;
    for _ in 0..RESTARTS {
        std::thread::sleep(Duration::from_millis(100 + rng.below(1800)));
        b = b.restart_after_kill().unwrap();
    }
    restarted.store(true, Ordering::Relaxed);
    let last_restart = Instant::now();
    let acked_at_last_restart = acked.load(Ordering::Relaxed);
    while !done.load(Ordering::Relaxed) {
        assert!(
            last_restart.elapsed() < FINISH_AFTER_LAST_RESTART,
            "seed {seed:#x}: the producer stalled: {} acknowledged at the last restart, {} {:?} later",
            acked_at_last_restart,
            acked.load(Ordering::Relaxed),
            last_restart.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    rt.block_on(async {
        let (results, stats) = producing.await.unwrap();
        let records = results.len();
        eprintln!("seed {seed:#x}: {records} records, {stats:?}");
        let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(
            failed.is_empty(),
            "seed {seed:#x}: {} deliveries failed, first {:?}",
            failed.len(),
            failed.first()
        );
        // Where each record was acknowledged: (partition, offset) -> index.
        let mut at: HashMap<(u32, u64), usize> = HashMap::new();
        for (i, r) in &results {
            let meta = r.as_ref().unwrap();
            let offset = meta.offset.expect("acks=1 reports offsets");
            assert!(at.insert((meta.partition, offset), *i).is_none());
        }

        let client = Client::connect(&addr).await.unwrap();
        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        consumer.assign_topic("restarts").await.unwrap();
        let mut seen = vec![false; records];
        let mut stored = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while stored < records && Instant::now() < deadline {
            for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
                let value = r.value.as_ref().unwrap();
                let i: usize = std::str::from_utf8(value).unwrap().parse().unwrap();
                assert!(!seen[i], "seed {seed:#x}: record {i} stored twice");
                seen[i] = true;
                stored += 1;
                // The acknowledged offset is where the record is.
                assert_eq!(
                    at.get(&(r.partition, r.offset)),
                    Some(&i),
                    "seed {seed:#x}: record {i} read at {}-{}, acknowledged at {:?}",
                    r.partition,
                    r.offset,
                    results[i].1.as_ref().map(|m| (m.partition, m.offset))
                );
            }
        }
        assert_eq!(stored, records, "seed {seed:#x}: every record stored once");
        let more = consumer.poll(Duration::from_millis(300)).await.unwrap();
        assert!(more.is_empty(), "seed {seed:#x}: more records than sent");
    });
    drop(b);
}
