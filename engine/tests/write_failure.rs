//! A write that fails marks the partition failed: the append is not
//! acknowledged, later appends are refused, reads keep working, and a reopen
//! recovers exactly the acknowledged records. The file size limit
//! (RLIMIT_FSIZE, EFBIG) stands in for a full disk. It is process-wide, so
//! this file holds a single test and runs as its own process.

mod common;

use common::*;
use ringlog_engine::{Error, FsyncPolicy, Log};

fn set_file_size_limit(bytes: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the `rlimit` struct we
    // pass by valid pointer; RLIMIT_FSIZE is a valid resource.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

#[test]
fn a_failed_write_fails_the_partition_and_loses_nothing_acknowledged() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // code; it makes a write past RLIMIT_FSIZE fail with EFBIG instead of
    // killing this test process with SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(1 << 30);
        config.fsync = FsyncPolicy::Never;
        let (mut log, _) = Log::open(dir.path(), config.clone()).await.unwrap();
        let mut acked = Vec::new();
        for i in 0..10 {
            let r = rec(i, 1000, i as i64);
            let a = log
                .append(build(std::slice::from_ref(&r)), 0)
                .await
                .unwrap();
            a.durable.wait().await.unwrap();
            acked.push(r);
        }
        // Room for about one and a half more batches.
        set_file_size_limit(log.size_bytes() + 1500);
        let mut failure = None;
        for i in 10..20 {
            let r = rec(i, 1000, i as i64);
            match log.append(build(std::slice::from_ref(&r)), 0).await {
                Ok(a) => match a.durable.wait().await {
                    Ok(()) => acked.push(r),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        set_file_size_limit(libc::RLIM_INFINITY);
        let failure = failure.expect("a write past the limit failed");
        assert!(matches!(failure, Error::Failed(_)), "{failure}");
        assert_eq!(acked.len(), 11, "exactly one more batch fit");
        // Refused from now on, with the reason.
        match log.append(build(&[rec(99, 10, 0)]), 0).await {
            Err(Error::Failed(why)) => assert!(why.contains("write failed"), "{why}"),
            other => panic!(
                "append after a failed write: {:?}",
                other.map(|a| a.base_offset)
            ),
        }
        // Still readable: every acknowledged record, nothing else.
        assert_eq!(records_of(&read_all(&log, 0, 1 << 20).await), acked);
        drop(log);
        // A restart recovers from disk: the torn partial write is cut off.
        let (mut log, report) = Log::open(dir.path(), config).await.unwrap();
        assert_eq!(log.latest(), acked.len() as u64, "{:?}", report.repairs);
        assert_eq!(records_of(&read_all(&log, 0, 1 << 20).await), acked);
        let a = log.append(build(&[rec(11, 10, 0)]), 0).await.unwrap();
        a.durable.wait().await.unwrap();
        assert_eq!(a.base_offset, acked.len() as u64);
    });
}
