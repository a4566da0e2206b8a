//! Operation sequences against a model: random appends, reads, truncations,
//! retention-free rolls and restarts (clean and crashed) on the real log,
//! checked against a `Vec` of what must be there.

mod common;

use common::*;
use proptest::prelude::*;
use ringlog_engine::{Log, Stored, WriteMode};
use std::os::unix::fs::FileExt;

#[derive(Debug, Clone)]
enum Op {
    /// Append; `wait` awaits the ticket at once, otherwise it stays in flight.
    Append(Vec<Rec>, bool),
    Read {
        at: f64,
        max_bytes: usize,
        file_bytes_min: usize,
    },
    Truncate(f64),
    Reopen {
        clean: bool,
    },
    TimeLookup(i64),
}

fn record() -> impl Strategy<Value = Rec> {
    (
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..16)),
        proptest::option::weighted(0.95, proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..8),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            ),
            0..3,
        ),
        0i64..10_000,
    )
        .prop_map(|(key, value, headers, timestamp)| Rec {
            key,
            value,
            headers,
            timestamp,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec(record(), 1..8), any::<bool>()).prop_map(|(r, w)| Op::Append(r, w)),
        3 => (0.0f64..1.0, 1usize..3000, prop_oneof![Just(0usize), 1usize..2000, Just(usize::MAX)])
            .prop_map(|(at, max_bytes, file_bytes_min)| Op::Read { at, max_bytes, file_bytes_min }),
        1 => (0.0f64..1.0).prop_map(Op::Truncate),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (0i64..10_500).prop_map(Op::TimeLookup),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40), direct in any::<bool>()) {
        tokio_uring::start(async move {
            let tmp = tempfile::tempdir().unwrap();
            let mut config = small_config(2048);
            if direct {
                config.write_mode = WriteMode::Direct;
            }
            let (mut log, _) = Log::open(tmp.path(), config.clone()).await.unwrap();
            let mut model: Vec<(u64, Rec)> = Vec::new();
            // Batch boundaries, as (base offset, next offset).
            let mut batches: Vec<(u64, u64)> = Vec::new();
            let mut in_flight = Vec::new();
            for op in ops {
                // Readers see a prefix of what was appended, never more.
                prop_assert!(log.latest() <= model.len() as u64);
                match op {
                    Op::Append(recs, wait) => {
                        let a = log.append(build(&recs), 3).await.unwrap();
                        if wait {
                            a.durable.wait().await.unwrap();
                        } else {
                            in_flight.push(a.durable);
                        }
                        let base = model.len() as u64;
                        prop_assert_eq!(a.base_offset, base);
                        prop_assert_eq!(a.last_offset, base + recs.len() as u64 - 1);
                        batches.push((base, base + recs.len() as u64));
                        for (i, r) in recs.into_iter().enumerate() {
                            model.push((base + i as u64, r));
                        }
                    }
                    Op::Read { at, max_bytes, file_bytes_min } => {
                        let visible = log.latest();
                        let offset = (visible as f64 * at) as u64;
                        let got = log.read(offset, max_bytes).await.unwrap();
                        // The same answer left in the file (sendfile's view)
                        // or read and checked, by the size threshold. Writes
                        // in flight may have landed during the read.
                        let visible_now = log.latest();
                        let located = match log.locate(offset, max_bytes, file_bytes_min).await.unwrap() {
                            Stored::Bytes(b) => {
                                prop_assert!(b.len() < file_bytes_min || b.is_empty());
                                b
                            }
                            Stored::File(r) => {
                                prop_assert!(r.len >= file_bytes_min);
                                let mut b = vec![0; r.len];
                                std::fs::File::from(r.file).read_exact_at(&mut b, r.position).unwrap();
                                b
                            }
                        };
                        let mut ends = Vec::new();
                        for (answer, visible) in [(&got, visible), (&located, visible_now)] {
                            let recs = decode_all(answer);
                            if offset == visible {
                                prop_assert!(recs.is_empty());
                                continue;
                            }
                            // Starts at the batch holding `offset`, whole batches only.
                            let &(start, _) = batches.iter().find(|(b, n)| *b <= offset && offset < *n).unwrap();
                            prop_assert_eq!(recs[0].0, start);
                            let end = recs.last().unwrap().0 + 1;
                            prop_assert!(batches.iter().any(|&(_, n)| n == end));
                            prop_assert!(end <= visible);
                            prop_assert_eq!(&recs[..], &model[start as usize..end as usize]);
                            ends.push(end);
                        }
                        // Stopping on an index entry never goes further than
                        // the read, and never past `max_bytes` unless one
                        // batch alone is larger.
                        if let [read_end, located_end] = ends[..] {
                            prop_assert!(located_end <= read_end || visible_now > visible);
                            let first = batches.iter().find(|(b, n)| *b <= offset && offset < *n).unwrap();
                            prop_assert!(located.len() <= max_bytes || located_end == first.1);
                        }
                    }
                    Op::Truncate(at) => {
                        let offset = (model.len() as f64 * at) as u64;
                        log.truncate_to(offset).await.unwrap();
                        // The batch holding `offset` goes whole.
                        if let Some(i) = batches.iter().position(|&(b, n)| b <= offset && offset < n) {
                            let start = batches[i].0;
                            batches.truncate(i);
                            model.truncate(start as usize);
                        }
                        prop_assert_eq!(log.latest(), model.len() as u64);
                    }
                    Op::Reopen { clean } => {
                        // A crash while writes are in flight is the torn-write
                        // test's business; here every write lands first.
                        for t in in_flight.drain(..) {
                            t.wait().await.unwrap();
                        }
                        if clean {
                            log.close().await.unwrap();
                        } else {
                            drop(log);
                        }
                        let (reopened, report) = Log::open(tmp.path(), config.clone()).await.unwrap();
                        // Every append was whole before the "crash": nothing to repair.
                        prop_assert!(report.repairs.is_empty(), "{:?}", report.repairs);
                        log = reopened;
                        prop_assert_eq!(log.latest(), model.len() as u64);
                    }
                    Op::TimeLookup(ts) => {
                        let visible = log.latest() as usize;
                        let want = model[..visible].iter().find(|(_, r)| r.timestamp >= ts).map(|(o, _)| *o);
                        prop_assert_eq!(log.offset_for_timestamp(ts).await.unwrap(), want);
                    }
                }
            }
            for t in in_flight.drain(..) {
                t.wait().await.unwrap();
            }
            let all = read_all(&log, 0, 700).await;
            prop_assert_eq!(&all, &model);
            log.close().await.unwrap();
            let (log, report) = Log::open(tmp.path(), config).await.unwrap();
            prop_assert!(report.repairs.is_empty());
            // A clean close leaves no preallocated zeros behind.
            let on_disk: u64 = segment_files(tmp.path()).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
            prop_assert_eq!(on_disk, log.size_bytes());
            prop_assert_eq!(read_all(&log, 0, 1 << 20).await, model);
            Ok(())
        })?;
    }
}
