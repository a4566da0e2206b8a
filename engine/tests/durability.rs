//! Durability policies and group commit, observed by counting fdatasync
//! calls, never by timing.

mod common;

use common::*;
use ringlog_engine::{Appended, FsyncPolicy, Log, LogConfig, WriteMode};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig {
        fsync,
        ..small_config(1 << 20)
    }
}

#[test]
fn always_acknowledges_only_after_the_covering_sync() {
    // Through the page cache, and with the direct appender (whose writes
    // reach the device but not past its volatile cache: the sync still
    // decides).
    for write_mode in [WriteMode::Buffered, WriteMode::Direct] {
        always_acknowledges_only_after_the_covering_sync_in(write_mode);
    }
}

fn always_acknowledges_only_after_the_covering_sync_in(write_mode: WriteMode) {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            write_mode,
            ..config(FsyncPolicy::Always)
        };
        let (mut log, _) = Log::open(dir.path(), config).await.unwrap();
        let a = log.append(build(&[rec(0, 10, 0)]), 0).await.unwrap();
        // Written to the page cache, not yet synced: not durable.
        assert!(!a.durable.is_durable());
        assert_eq!(log.sync_count(), 0);
        a.durable.wait().await.unwrap();
        assert_eq!(log.sync_count(), 1);

        // Fifty appends whose tickets are awaited together: one sync covers all.
        let mut tickets = Vec::new();
        for i in 0..50 {
            tickets.push(
                log.append(build(&[rec(i, 10, 0)]), 0)
                    .await
                    .unwrap()
                    .durable,
            );
        }
        // Once all fifty writes are in the page cache, one sync covers them all.
        log.flush_writes().await.unwrap();
        assert_eq!(log.latest(), 51);
        assert!(tickets.iter().all(|t| !t.is_durable()));
        let waiters: Vec<_> = tickets
            .into_iter()
            .map(|t| tokio_uring::spawn(t.wait()))
            .collect();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        assert_eq!(log.sync_count(), 2);
    });
}

/// Many appenders share one log through a writer task, as the shards will:
/// every append is acknowledged after a sync, with far fewer syncs than appends.
#[test]
fn concurrent_appenders_share_syncs() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(dir.path(), config(FsyncPolicy::Always))
            .await
            .unwrap();
        type Req = (Vec<u8>, oneshot::Sender<Appended>);
        let (tx, mut rx) = mpsc::channel::<Req>(64);
        let writer = tokio_uring::spawn(async move {
            let mut log = log;
            while let Some((batch, reply)) = rx.recv().await {
                let _ = reply.send(log.append(batch, 0).await.unwrap());
            }
            log
        });
        const APPENDERS: u64 = 32;
        const EACH: u64 = 8;
        let acked = Rc::new(Cell::new(0u64));
        let mut tasks = Vec::new();
        for p in 0..APPENDERS {
            let tx = tx.clone();
            let acked = acked.clone();
            tasks.push(tokio_uring::spawn(async move {
                for i in 0..EACH {
                    let (reply, rx) = oneshot::channel();
                    tx.send((build(&[rec(p * 1000 + i, 64, 0)]), reply))
                        .await
                        .unwrap();
                    let appended = rx.await.unwrap();
                    appended.durable.wait().await.unwrap();
                    acked.set(acked.get() + 1);
                }
            }));
        }
        drop(tx);
        for t in tasks {
            t.await.unwrap();
        }
        let log = writer.await.unwrap();
        let appends = APPENDERS * EACH;
        assert_eq!(acked.get(), appends);
        assert_eq!(log.latest(), appends);
        let syncs = log.sync_count();
        assert!(
            syncs >= 1 && syncs < appends,
            "{syncs} syncs for {appends} appends"
        );
        assert_eq!(read_all(&log, 0, 1 << 20).await.len() as u64, appends);
    });
}

#[test]
fn never_does_not_sync_on_append_and_interval_syncs_in_the_background() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), config(FsyncPolicy::Never))
            .await
            .unwrap();
        for i in 0..10 {
            let a = log.append(build(&[rec(i, 10, 0)]), 0).await.unwrap();
            a.durable.wait().await.unwrap();
        }
        assert_eq!(log.sync_count(), 0);
        // Close syncs whatever the policy.
        log.close().await.unwrap();

        let dir = tempfile::tempdir().unwrap();
        let policy = FsyncPolicy::Interval(Duration::from_millis(5));
        let (mut log, _) = Log::open(dir.path(), config(policy)).await.unwrap();
        let a = log.append(build(&[rec(0, 10, 0)]), 0).await.unwrap();
        a.durable.wait().await.unwrap();
        assert_eq!(log.sync_count(), 0);
        // The background sync comes once the interval has passed; poll for it
        // (bounded) rather than assume how long it takes.
        for _ in 0..1000 {
            if log.sync_count() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(log.sync_count(), 1);
    });
}

#[test]
fn bad_batches_are_refused_and_append_nothing() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), config(FsyncPolicy::Never))
            .await
            .unwrap();
        let good = build(&[rec(0, 10, 0)]);
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut two = good.clone();
        two.extend_from_slice(&good);
        let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kafka-v2");
        let mut cases = vec![bad_crc, good[..40].to_vec(), two, Vec::new()];
        for f in [
            "bad_magic.bin",
            "count_mismatch.bin",
            "varint_overflow.bin",
            "length_too_large.bin",
        ] {
            cases.push(std::fs::read(vectors.join(f)).unwrap());
        }
        for case in cases {
            assert!(log.append(case, 0).await.is_err());
        }
        let mut tiny = config(FsyncPolicy::Never);
        tiny.batch_bytes_max = 100;
        let dir2 = tempfile::tempdir().unwrap();
        let (mut small, _) = Log::open(dir2.path(), tiny).await.unwrap();
        assert!(small.append(build(&[rec(0, 500, 0)]), 0).await.is_err());
        assert_eq!(log.latest(), 0);
        assert_eq!(log.size_bytes(), 0);
        let a = log.append(good, 0).await.unwrap();
        assert_eq!(a.base_offset, 0);
        a.durable.wait().await.unwrap();
        // The compressed vector is stored and served byte for byte.
        let gzip = std::fs::read(vectors.join("gzip.bin")).unwrap();
        let a = log.append(gzip.clone(), 4).await.unwrap();
        let base = a.base_offset;
        a.durable.wait().await.unwrap();
        let served = log.read(base, 1 << 20).await.unwrap();
        assert_eq!(served.len(), gzip.len());
        // Only baseOffset (0..8) and partitionLeaderEpoch (12..16) were stamped.
        assert_eq!(served[8..12], gzip[8..12]);
        assert_eq!(served[16..], gzip[16..]);
        assert_eq!(i64::from_be_bytes(served[..8].try_into().unwrap()), 1);
        assert_eq!(i32::from_be_bytes(served[12..16].try_into().unwrap()), 4);
    });
}
