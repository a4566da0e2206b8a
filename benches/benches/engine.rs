//! Criterion micro-benchmarks of the engine: batch validation with CRC-32C,
//! append under each durability policy, a sequential read of a 1 GiB log,
//! and an offset index lookup.
//!
//! The logs are written under `RINGLOG_BENCH_DIR` (default: the system temp
//! dir), which must be on the disk being measured. See `benches/RESULTS.md`
//! and `benches/run-engine.sh`, which runs fio on the same disk for the ratio.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlog_engine::batch::{BatchBuilder, BatchView, NewRecord, ProducerStamp};
use ringlog_engine::index::SegmentIndex;
use ringlog_engine::{FsyncPolicy, Log, LogConfig};
use std::collections::VecDeque;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RECORD_BYTES: usize = 1024;
const APPEND_BATCH_BYTES: usize = 64 << 10;
/// Appends not yet acknowledged at once: what concurrent producers (or one
/// pipelining producer) keep outstanding, and what group commit and the
/// write pipeline serve.
const APPENDS_IN_FLIGHT: usize = 16;
const APPENDS_IN_FLIGHT_MANY: usize = 64;

fn bench_dir() -> PathBuf {
    std::env::var_os("RINGLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// One batch of 1 KiB records with small keys, about `bytes` long.
fn batch_of(bytes: usize) -> Vec<u8> {
    let value = vec![0x5a; RECORD_BYTES];
    let mut b = BatchBuilder::with_capacity(ProducerStamp::NONE, bytes + 1024);
    let mut i = 0u64;
    while b.size_bytes() + RECORD_BYTES + 32 <= bytes {
        let key = i.to_be_bytes();
        b.push(&NewRecord {
            key: Some(&key),
            value: Some(&value),
            headers: &[],
            timestamp: 1_700_000_000_000 + i as i64,
        })
        .expect("batch has room");
        i += 1;
    }
    b.finish().expect("at least one record")
}

fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_crc");
    for size in [16 << 10, 1 << 20] {
        let batch = batch_of(size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &batch, |b, batch| {
            b.iter(|| BatchView::parse(black_box(batch), usize::MAX).expect("valid"))
        });
    }
    group.finish();
}

/// Appends `iters` 64 KiB batches to a fresh log, keeping
/// `APPENDS_IN_FLIGHT` unacknowledged, and returns the time taken including
/// the wait for every acknowledgement the policy requires.
fn timed_appends(policy: FsyncPolicy, in_flight: usize, iters: u64) -> Duration {
    let dir = tempfile::tempdir_in(bench_dir()).expect("bench dir");
    let batch = batch_of(APPEND_BATCH_BYTES);
    let config = LogConfig {
        fsync: policy,
        ..LogConfig::default()
    };
    tokio_uring::start(async move {
        let (mut log, _) = Log::open(dir.path(), config).await.expect("open");
        let mut pending = VecDeque::with_capacity(in_flight);
        let start = Instant::now();
        for _ in 0..iters {
            // Copying the batch stands in for receiving it from a socket.
            let appended = log.append(batch.clone(), 0).await.expect("append");
            pending.push_back(appended.durable);
            // Acknowledge in order, as a producer connection does.
            if pending.len() == in_flight {
                let oldest = pending.pop_front().expect("full");
                oldest.wait().await.expect("durable");
            }
        }
        for ticket in pending {
            ticket.wait().await.expect("durable");
        }
        let elapsed = start.elapsed();
        eprintln!(
            "  [{policy:?}, {in_flight} in flight: {iters} appends, {} fdatasync calls]",
            log.sync_count()
        );
        drop(log);
        drop(dir);
        elapsed
    })
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_64k_batches");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(batch_of(APPEND_BATCH_BYTES).len() as u64));
    for (name, policy, in_flight) in [
        ("never", FsyncPolicy::Never, APPENDS_IN_FLIGHT),
        (
            "interval_100ms",
            FsyncPolicy::Interval(Duration::from_millis(100)),
            APPENDS_IN_FLIGHT,
        ),
        ("always", FsyncPolicy::Always, APPENDS_IN_FLIGHT),
        (
            "always_64_in_flight",
            FsyncPolicy::Always,
            APPENDS_IN_FLIGHT_MANY,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| timed_appends(policy, in_flight, iters))
        });
    }
    group.finish();
}

fn read_1gib(c: &mut Criterion) {
    const LOG_BYTES: u64 = 1 << 30;
    let dir = tempfile::tempdir_in(bench_dir()).expect("bench dir");
    let path = dir.path().to_path_buf();
    let batch = batch_of(APPEND_BATCH_BYTES);
    let config = LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let written = tokio_uring::start(async {
        let (mut log, _) = Log::open(&path, config.clone()).await.expect("open");
        while log.size_bytes() < LOG_BYTES {
            let _ = log.append(batch.clone(), 0).await.expect("append");
        }
        let size = log.size_bytes();
        log.close().await.expect("close");
        size
    });
    let mut group = c.benchmark_group("read_1gib_log");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(written));
    group.bench_function("from_offset_0_1mib_reads", |b| {
        b.iter_custom(|iters| {
            let config = config.clone();
            let path = path.clone();
            tokio_uring::start(async move {
                let (log, _) = Log::open(&path, config).await.expect("open");
                let start = Instant::now();
                for _ in 0..iters {
                    let mut offset = 0;
                    let mut bytes = 0u64;
                    while offset < log.latest() {
                        let chunk = log.read(offset, 1 << 20).await.expect("read");
                        bytes += chunk.len() as u64;
                        // The next offset follows the last batch returned.
                        let mut at = 0;
                        while at < chunk.len() {
                            let view = BatchView::parse_crc_only(&chunk[at..], usize::MAX)
                                .expect("served batches are valid");
                            offset = view.last_offset() as u64 + 1;
                            at += view.bytes().len();
                        }
                    }
                    assert_eq!(bytes, written);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    drop(dir);
}

fn index_lookup(c: &mut Criterion) {
    // A full 1 GiB segment's index: one entry per 4 KiB.
    let mut index = SegmentIndex::new(4096);
    let batches = (1u32 << 30) / 4096;
    for i in 0..batches {
        index.on_batch(i * 4, i * 4096, 4096, i64::from(i));
    }
    let mut x = 0x9e37_79b9_u32;
    c.bench_function("offset_index_lookup_256k_entries", |b| {
        b.iter(|| {
            // xorshift: a different target each time, no allocation.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            black_box(index.lookup_offset(x % (batches * 4)))
        })
    });
}

criterion_group!(benches, validate, append, read_1gib, index_lookup);
criterion_main!(benches);
