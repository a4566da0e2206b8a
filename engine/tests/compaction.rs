//! Log compaction against a model: random keyed appends (tombstones,
//! keyless records, compressed and idempotent batches), cleans with small
//! and large offset maps, crashes injected into cleans, and restarts. After
//! every step the log must read as exactly the model's latest record per key
//! below the clean's end plus everything after it, offsets unchanged.

mod common;

use common::*;
use proptest::prelude::*;
use ringlog_engine::batch::{
    assemble, BatchBuilder, BatchView, NewRecord, ProducerStamp, HEADER_BYTES,
};
use ringlog_engine::{CleanOptions, Compaction, Log, LogConfig};
use ringlog_format::compression;
use std::collections::HashMap;
use std::path::Path;

const NOW_MS: i64 = 12_000;
const DELETE_RETENTION_MS: u64 = 5_000;

fn config() -> LogConfig {
    LogConfig {
        compaction: Some(Compaction {
            delete_retention_ms: DELETE_RETENTION_MS,
        }),
        ..small_config(1024)
    }
}

/// One batch of `records`, compressed with `codec` (0 for none) and
/// stamped with a producer id when `producer` is set.
fn batch(records: &[Rec], codec: i16, producer: Option<i32>) -> Vec<u8> {
    let stamp = match producer {
        Some(seq) => ProducerStamp {
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: seq,
        },
        None => ProducerStamp::NONE,
    };
    let mut b = BatchBuilder::new(stamp);
    for r in records {
        b.push(&NewRecord {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &[],
            timestamp: r.timestamp,
        })
        .unwrap();
    }
    let plain = b.finish().unwrap();
    if codec == 0 {
        return plain;
    }
    let view = BatchView::parse(&plain, usize::MAX).unwrap();
    let packed = compression::compress(codec, &plain[HEADER_BYTES..], false).unwrap();
    let mut header = *view.header();
    header.attributes = zerocopy::byteorder::big_endian::I16::new(header.attributes.get() | codec);
    assemble(&header, &packed)
}

/// Every record of the log, reading `max_bytes` at a time and moving on by
/// each batch's last offset (a compacted batch's records may end before it).
async fn read_log(log: &Log) -> Vec<(u64, Rec)> {
    let mut out = Vec::new();
    let mut offset = log.earliest();
    while offset < log.latest() {
        let bytes = log.read(offset, 700).await.unwrap();
        assert!(
            !bytes.is_empty(),
            "empty read at {offset} below {}",
            log.latest()
        );
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let view = BatchView::parse(rest, usize::MAX).expect("served batches are valid");
            let plain = compression::decompressed_batch(&view, 1 << 24).unwrap();
            let records = BatchView::parse_crc_checked(&plain, usize::MAX).unwrap();
            for r in records.records().unwrap() {
                let r = r.unwrap();
                if r.offset as u64 >= offset {
                    out.push((
                        r.offset as u64,
                        Rec {
                            key: r.key.map(<[u8]>::to_vec),
                            value: r.value.map(<[u8]>::to_vec),
                            headers: Vec::new(),
                            timestamp: r.timestamp,
                        },
                    ));
                }
            }
            offset = view.last_offset() as u64 + 1;
            rest = &rest[view.bytes().len()..];
        }
    }
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "offsets ascend");
    out
}

/// What the log must hold once cleaned below `cleaned_below`.
fn expected(model: &[(u64, Rec)], cleaned_below: u64) -> Vec<(u64, Rec)> {
    let horizon = NOW_MS - DELETE_RETENTION_MS as i64;
    let mut latest: HashMap<&[u8], u64> = HashMap::new();
    for (offset, r) in model.iter().filter(|(o, _)| *o < cleaned_below) {
        if let Some(k) = &r.key {
            latest.insert(k, *offset);
        }
    }
    model
        .iter()
        .filter(|(offset, r)| {
            let Some(key) = &r.key else { return true };
            *offset >= cleaned_below
                || (latest[key.as_slice()] == *offset
                    && !(r.value.is_none() && r.timestamp < horizon))
        })
        .cloned()
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: Vec<Rec>,
        codec: i16,
        producer: bool,
    },
    Clean {
        map_bytes: usize,
        crash: Option<u32>,
    },
    Reopen {
        clean: bool,
    },
}

fn record() -> impl Strategy<Value = Rec> {
    (
        proptest::option::weighted(0.95, 0u8..8),
        proptest::option::weighted(0.85, proptest::collection::vec(any::<u8>(), 0..60)),
        0i64..10_000,
    )
        .prop_map(|(key, value, timestamp)| Rec {
            key: key.map(|k| vec![b'k', k]),
            value,
            headers: Vec::new(),
            timestamp,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            proptest::collection::vec(record(), 1..6),
            prop_oneof![4 => Just(0i16), 1 => 1i16..=4],
            proptest::bool::weighted(0.3),
        )
            .prop_map(|(records, codec, producer)| Op::Append { records, codec, producer }),
        2 => (
            prop_oneof![Just(1usize << 20), 60usize..400],
            proptest::option::weighted(0.3, 0u32..30),
        )
            .prop_map(|(map_bytes, crash)| Op::Clean { map_bytes, crash }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

async fn open(dir: &Path) -> Log {
    Log::open(dir, config()).await.unwrap().0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn a_compacted_log_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        tokio_uring::start(async move {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("p");
            let mut log = open(&dir).await;
            let mut model: Vec<(u64, Rec)> = Vec::new();
            let mut cleaned_below = 0;
            let mut seq = 0;
            for op in ops {
                match op {
                    Op::Append { records, codec, producer } => {
                        let bytes = batch(&records, codec, producer.then_some(seq));
                        seq += records.len() as i32;
                        let a = log.append(bytes, 0).await.unwrap();
                        a.durable.wait().await.unwrap();
                        for (i, r) in records.into_iter().enumerate() {
                            model.push((a.base_offset + i as u64, r));
                        }
                    }
                    Op::Clean { map_bytes, crash } => {
                        let options = CleanOptions { map_bytes, force: true, crash_before_step: None };
                        // The clean as it would end, on a copy: the one
                        // state besides the old one a crash may leave.
                        let twin = tmp.path().join("twin");
                        let _ = std::fs::remove_dir_all(&twin);
                        log.flush_writes().await.unwrap();
                        copy_dir(&dir, &twin);
                        let mut other = open(&twin).await;
                        let report = other.clean(NOW_MS, options).await.unwrap();
                        let after = read_log(&other).await;
                        drop(other);
                        let new_below = cleaned_below.max(report.cleaned_below);
                        prop_assert_eq!(&after, &expected(&model, new_below));
                        let before = expected(&model, cleaned_below);
                        let crashed = log
                            .clean(NOW_MS, CleanOptions { crash_before_step: crash, ..options })
                            .await;
                        match crashed {
                            Ok(r) => {
                                prop_assert_eq!(r.cleaned_below, report.cleaned_below);
                                cleaned_below = new_below;
                            }
                            Err(e) => {
                                prop_assert!(crash.is_some(), "clean failed: {}", e);
                                drop(log);
                                log = open(&dir).await;
                                let found = read_log(&log).await;
                                prop_assert!(
                                    found == before || found == after,
                                    "a crashed clean left a mix: {:?}", found
                                );
                                if found == after {
                                    cleaned_below = new_below;
                                }
                                // A clean after the crash reads what the
                                // crash left: its map may reach further.
                                let r = log.clean(NOW_MS, options).await.unwrap();
                                cleaned_below = cleaned_below.max(r.cleaned_below);
                            }
                        }
                    }
                    Op::Reopen { clean } => {
                        if clean {
                            log.close().await.unwrap();
                        } else {
                            drop(log);
                        }
                        log = open(&dir).await;
                    }
                }
                prop_assert_eq!(read_log(&log).await, expected(&model, cleaned_below));
                prop_assert_eq!(log.latest(), model.len() as u64, "offsets never change");
            }
            Ok(())
        })?;
    }
}

/// Many versions of few keys over many segments: one clean leaves one
/// record per key in fewer, merged segments, and appends go on after it.
#[test]
fn a_clean_keeps_the_latest_of_each_key_and_merges_segments() {
    tokio_uring::start(async {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = open(tmp.path()).await;
        let mut model = Vec::new();
        for round in 0..200u64 {
            let records: Vec<Rec> = (0..4)
                .map(|k| Rec {
                    key: Some(format!("key-{k}").into_bytes()),
                    value: Some(format!("{round}").into_bytes()),
                    headers: Vec::new(),
                    timestamp: 11_000,
                })
                .collect();
            let a = log.append(batch(&records, 0, None), 0).await.unwrap();
            a.durable.wait().await.unwrap();
            model.extend(
                records
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (a.base_offset + i as u64, r)),
            );
        }
        let segments = log.segment_bases().len();
        assert!(segments > 10, "{segments} segments");
        let report = log.clean(NOW_MS, CleanOptions::default()).await.unwrap();
        assert_eq!(report.cleaned_below, log.active_base());
        assert!(
            log.segment_bases().len() < segments / 4,
            "{:?}",
            log.segment_bases()
        );
        assert!(report.bytes_written < report.bytes_read / 4, "{report:?}");
        let found = read_log(&log).await;
        assert_eq!(found, expected(&model, report.cleaned_below));
        // Below the clean's end, one record per key.
        let below: Vec<_> = found
            .iter()
            .filter(|(o, _)| *o < report.cleaned_below)
            .collect();
        assert_eq!(below.len(), 4);
        // Nothing more to clean until half the log is dirty again.
        let again = log.clean(NOW_MS, CleanOptions::default()).await.unwrap();
        assert_eq!(again, Default::default());
        let a = log
            .append(
                batch(
                    &model[0..1].iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
                    0,
                    None,
                ),
                0,
            )
            .await
            .unwrap();
        a.durable.wait().await.unwrap();
        assert_eq!(a.base_offset, 800, "offsets go on from where they were");
        log.close().await.unwrap();
        let log = open(tmp.path()).await;
        assert_eq!(read_log(&log).await.len(), found.len() + 1);
    });
}

/// The same clean crashed before each of its file steps in turn: every
/// reopen finds the old records or the new ones, and the next clean ends
/// where an uninterrupted one does.
#[test]
fn a_crash_at_every_step_of_a_clean_leaves_the_old_log_or_the_new() {
    tokio_uring::start(async {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        let mut log = open(&origin).await;
        let mut model = Vec::new();
        for i in 0..300u64 {
            let records = vec![Rec {
                key: Some(vec![(i % 7) as u8]),
                value: (i % 11 != 0).then(|| vec![i as u8; 20]),
                headers: Vec::new(),
                timestamp: (i * 40) as i64,
            }];
            let a = log
                .append(
                    batch(
                        &records,
                        [0, 1, 2, 3, 4][i as usize % 5],
                        (i % 3 == 0).then_some(i as i32),
                    ),
                    0,
                )
                .await
                .unwrap();
            a.durable.wait().await.unwrap();
            model.push((a.base_offset, records.into_iter().next().unwrap()));
        }
        log.close().await.unwrap();
        let old = expected(&model, 0);
        let reference = tmp.path().join("reference");
        copy_dir(&origin, &reference);
        let mut log = open(&reference).await;
        let report = log.clean(NOW_MS, CleanOptions::default()).await.unwrap();
        let new = read_log(&log).await;
        assert_eq!(new, expected(&model, report.cleaned_below));
        assert_ne!(new, old);
        drop(log);
        let mut crashed_at_least_once = false;
        for step in 0.. {
            let dir = tmp.path().join(format!("crash-{step}"));
            copy_dir(&origin, &dir);
            let mut log = open(&dir).await;
            let options = CleanOptions {
                crash_before_step: Some(step),
                ..CleanOptions::default()
            };
            if log.clean(NOW_MS, options).await.is_ok() {
                assert!(crashed_at_least_once);
                assert_eq!(read_log(&log).await, new);
                break;
            }
            crashed_at_least_once = true;
            drop(log);
            let mut log = open(&dir).await;
            let found = read_log(&log).await;
            assert!(found == old || found == new, "step {step} left a mix");
            let leftovers: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".cleaned") || n.starts_with("clean.manifest"))
                .collect();
            assert!(leftovers.is_empty(), "step {step}: {leftovers:?}");
            let r = log
                .clean(
                    NOW_MS,
                    CleanOptions {
                        force: true,
                        ..CleanOptions::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(read_log(&log).await, new, "step {step}: {r:?}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    });
}
