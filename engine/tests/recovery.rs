//! Crash recovery, damage and retention on real files.

mod common;

use common::*;
use ringlog_engine::batch::BatchView;
use ringlog_engine::{Error, Log, Repair};
use std::path::Path;

/// Appends `batches` batches of 3 records each (`value_len`-byte values,
/// record `i` stamped `timestamp(i)`), each acknowledged, and returns them.
async fn fill(
    log: &mut Log,
    batches: u64,
    value_len: usize,
    timestamp: impl Fn(u64) -> i64,
) -> Vec<Rec> {
    let mut all = Vec::new();
    for b in 0..batches {
        let recs: Vec<Rec> = (b * 3..b * 3 + 3)
            .map(|i| rec(i, value_len, timestamp(i)))
            .collect();
        let a = log.append(build(&recs), 0).await.unwrap();
        a.durable.wait().await.unwrap();
        all.extend(recs);
    }
    all
}

/// A log in `dir` filled with `batches` batches of 120-byte records, closed.
async fn closed_log(dir: &Path, batches: u64) -> Vec<Rec> {
    let (mut log, _) = Log::open(dir, small_config(8192)).await.unwrap();
    let written = fill(&mut log, batches, 120, |i| 50_000 + i as i64).await;
    log.close().await.unwrap();
    written
}

/// Byte ranges of the batches in one segment file.
fn batch_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = BatchView::parse(&bytes[at..], usize::MAX)
            .unwrap()
            .bytes()
            .len();
        out.push((at, at + n));
        at += n;
    }
    out
}

#[test]
fn a_cut_at_every_byte_of_the_final_batch_keeps_exactly_the_batches_before_it() {
    // After a crash (no checkpoint covers the active segment), and after a
    // clean close (the checkpoint covers the batch that is then cut).
    for clean in [false, true] {
        cut_every_byte_of_the_final_batch(clean);
    }
}

fn cut_every_byte_of_the_final_batch(clean: bool) {
    tokio_uring::start(async {
        let src = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(src.path(), small_config(4096)).await.unwrap();
        let written = fill(&mut log, 12, 100, |i| 1_000 + i as i64).await;
        if clean {
            log.close().await.unwrap();
        } else {
            drop(log);
        }
        let last = segment_files(src.path()).pop().unwrap();
        let bytes = std::fs::read(&last).unwrap();
        let ranges = batch_ranges(&bytes);
        let (final_start, final_end) = *ranges.last().unwrap();
        let before = written.len() - 3;
        for cut in final_start..final_end {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dir.path());
            let seg = dir.path().join(last.file_name().unwrap());
            std::fs::OpenOptions::new()
                .write(true)
                .open(&seg)
                .unwrap()
                .set_len(cut as u64)
                .unwrap();
            let (log, report) = Log::open(dir.path(), small_config(4096)).await.unwrap();
            assert_eq!(log.latest(), before as u64, "cut at {cut}");
            if cut > final_start {
                assert!(
                    matches!(&report.repairs[..], [Repair::Truncated { position, .. }] if *position == final_start as u64),
                    "cut at {cut}: {:?}",
                    report.repairs
                );
            } else {
                assert!(
                    report.repairs.is_empty(),
                    "cut at a batch boundary needs no repair"
                );
            }
            assert_eq!(std::fs::metadata(&seg).unwrap().len(), final_start as u64);
            let got = read_all(&log, 0, 1 << 20).await;
            assert_eq!(records_of(&got), written[..before]);
            // The log takes appends again right where it was cut.
            let mut log = log;
            let a = log.append(build(&[rec(9, 5, 5)]), 0).await.unwrap();
            assert_eq!(a.base_offset, before as u64);
        }
    });
}

/// Flips single bits across a stored batch in a sealed segment and in the
/// active one, after a clean close (recovery trusts them: reads must catch
/// it) and after a crash (recovery validates the active segment). A flipped
/// batch is never served: reads either fail with `Corrupt` or return
/// batches identical to what was written.
#[test]
fn flipped_bits_are_never_served() {
    tokio_uring::start(async {
        let src = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(src.path(), small_config(4096)).await.unwrap();
        fill(&mut log, 30, 90, |i| 1_000 + i as i64).await;
        let clean = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        copy_dir(src.path(), crashed.path());
        log.close().await.unwrap();
        copy_dir(src.path(), clean.path());
        let original = {
            let (log, _) = Log::open(clean.path(), small_config(4096)).await.unwrap();
            read_all(&log, 0, 1 << 20).await
        };
        assert_eq!(original.len(), 90);
        for (variant, base) in [("clean", clean.path()), ("crashed", crashed.path())] {
            let files = segment_files(base);
            assert!(
                files.len() >= 3,
                "want several segments, got {}",
                files.len()
            );
            for file in [&files[0], files.last().unwrap()] {
                let bytes = std::fs::read(file).unwrap();
                let (start, end) = batch_ranges(&bytes)[1];
                // Every byte of the header, then a stride through the records.
                let positions = (start..start + 61).chain((start + 61..end).step_by(7));
                for pos in positions {
                    // partitionLeaderEpoch is not covered by the CRC, by design.
                    if (start + 12..start + 16).contains(&pos) {
                        continue;
                    }
                    let dir = tempfile::tempdir().unwrap();
                    copy_dir(base, dir.path());
                    let target = dir.path().join(file.file_name().unwrap());
                    let mut damaged = bytes.clone();
                    damaged[pos] ^= 1 << (pos % 8);
                    std::fs::write(&target, &damaged).unwrap();
                    check_never_served(
                        dir.path(),
                        &original,
                        &format!("{variant} {} byte {pos}", file.display()),
                    )
                    .await;
                }
            }
        }
    });
}

async fn check_never_served(dir: &Path, original: &[(u64, Rec)], what: &str) {
    let (log, _) = Log::open(dir, small_config(4096)).await.unwrap();
    let mut offset = log.earliest();
    let mut corrupt_seen = false;
    while offset < log.latest() {
        match log.read(offset, 1 << 20).await {
            Ok(bytes) => {
                for (o, r) in decode_all(&bytes) {
                    assert_eq!(
                        &original[o as usize].1, &r,
                        "{what}: wrong record served at {o}"
                    );
                    offset = o + 1;
                }
            }
            Err(Error::Corrupt { .. }) => {
                corrupt_seen = true;
                // Skip the damaged batch (3 offsets) and go on reading.
                offset += 3;
            }
            Err(e) => panic!("{what}: unexpected error {e}"),
        }
    }
    // Either the read caught it, or recovery cut the log before the damage.
    assert!(
        corrupt_seen || log.latest() < original.len() as u64,
        "{what}: damage went unnoticed"
    );
}

#[test]
fn deleted_indexes_are_rebuilt_identically() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let written = closed_log(dir.path(), 80).await;
        let index_files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "index" || e == "timeindex")
            })
            .collect();
        assert!(index_files.len() >= 6);
        let before: Vec<Vec<u8>> = index_files
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        for p in &index_files {
            std::fs::remove_file(p).unwrap();
        }
        let (log, report) = Log::open(dir.path(), small_config(8192)).await.unwrap();
        let sealed = segment_files(dir.path()).len() - 1;
        let rebuilt = report
            .repairs
            .iter()
            .filter(|r| matches!(r, Repair::IndexRebuilt { .. }))
            .count();
        // Every sealed segment, and the active one (the checkpoint trusted part of it).
        assert_eq!(rebuilt, sealed + 1, "{:?}", report.repairs);
        // Lookups work from every offset.
        for offset in 0..written.len() as u64 {
            let bytes = log.read(offset, 1).await.unwrap();
            let recs = decode_all(&bytes);
            assert!(recs.iter().any(|(o, _)| *o == offset));
        }
        for (i, r) in written.iter().enumerate().step_by(13) {
            assert_eq!(
                log.offset_for_timestamp(r.timestamp).await.unwrap(),
                Some(i as u64)
            );
        }
        log.close().await.unwrap();
        let after: Vec<Vec<u8>> = index_files
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert_eq!(
            before, after,
            "rebuilt index files differ from the originals"
        );
    });
}

#[test]
fn a_damaged_index_file_is_rebuilt_not_trusted() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let written = closed_log(dir.path(), 40).await;
        let first_index = dir.path().join(format!("{:020}.index", 0));
        let mut bytes = std::fs::read(&first_index).unwrap();
        // Point the last entry at the wrong batch: structurally fine, wrong.
        let n = bytes.len();
        bytes[n - 1] ^= 0x10;
        std::fs::write(&first_index, &bytes).unwrap();
        let (log, report) = Log::open(dir.path(), small_config(8192)).await.unwrap();
        assert!(
            report
                .repairs
                .iter()
                .any(|r| matches!(r, Repair::IndexRebuilt { segment: 0, .. })),
            "{:?}",
            report.repairs
        );
        assert_eq!(records_of(&read_all(&log, 0, 333).await), written);
    });
}

#[test]
fn retention_deletes_the_right_segments() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(4096);
        config.retention.retention_ms = Some(10_000);
        let (mut log, _) = Log::open(dir.path(), config.clone()).await.unwrap();
        // Timestamps grow 1 s per record, so segments span distinct times.
        let written = fill(&mut log, 40, 200, |i| (i * 1_000) as i64).await;
        let bases = log.segment_bases();
        assert!(bases.len() >= 5, "{bases:?}");
        // Max timestamp of each segment: the record just before the next base.
        let max_ts = |i: usize| -> i64 {
            let end = bases.get(i + 1).copied().unwrap_or(written.len() as u64);
            written[end as usize - 1].timestamp
        };
        // At this `now`, segments 0 and 1 are older than 10 s, segment 2 is not.
        let now = max_ts(1) + 10_001;
        assert!(now - max_ts(2) <= 10_000);
        let report = log.apply_retention(now).await.unwrap();
        assert_eq!(report.deleted_segments, bases[..2]);
        assert_eq!(log.earliest(), bases[2]);
        assert_eq!(report.log_start_offset, bases[2]);
        for b in &bases[..2] {
            assert!(!dir.path().join(format!("{b:020}.log")).exists());
        }
        // Reading below the log start is out of range; from it, exact.
        assert!(matches!(
            log.read(0, 100).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        let rest = read_all(&log, bases[2], 1 << 20).await;
        assert_eq!(records_of(&rest), written[bases[2] as usize..]);
        // Far in the future everything but the active segment goes.
        let report = log.apply_retention(i64::MAX).await.unwrap();
        assert_eq!(log.segment_bases(), vec![*bases.last().unwrap()]);
        assert_eq!(report.deleted_segments, bases[2..bases.len() - 1]);

        // Size retention, on a fresh log.
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(4096);
        config.retention = ringlog_engine::retention::Retention {
            retention_ms: None,
            retention_bytes: Some(10_000),
        };
        let (mut log, _) = Log::open(dir.path(), config.clone()).await.unwrap();
        fill(&mut log, 40, 200, |_| 0).await;
        let before = log.size_bytes();
        let report = log.apply_retention(0).await.unwrap();
        assert!(!report.deleted_segments.is_empty());
        assert!(
            log.size_bytes() >= 10_000,
            "size retention deleted too much"
        );
        assert_eq!(before - report.bytes_deleted, log.size_bytes());
        // One more deletion would have gone below the limit.
        let next = log.segment_bases()[1] - log.segment_bases()[0];
        assert!(next > 0);
        // It survives a restart: the log starts where retention left it.
        let start = log.earliest();
        log.close().await.unwrap();
        let (log, report) = Log::open(dir.path(), config).await.unwrap();
        assert!(report.repairs.is_empty());
        assert_eq!(log.earliest(), start);
    });
}

#[test]
fn segments_roll_by_age_of_their_records() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(1 << 30);
        config.segment_ms_max = Some(10_000);
        let (mut log, _) = Log::open(dir.path(), config).await.unwrap();
        // Three records per batch, one second apart: a batch whose newest
        // record is more than 10 s newer than the segment's first batch rolls.
        fill(&mut log, 10, 10, |i| (i * 1_000) as i64).await;
        // First batch max ts 2 s; batch 4 (max 14 s) is 12 s newer: roll at
        // offset 12; then its max 14 s, batch 8 (max 26 s) rolls at 24.
        assert_eq!(log.segment_bases(), vec![0, 12, 24]);
        assert_eq!(records_of(&read_all(&log, 0, 1 << 20).await).len(), 30);
    });
}

/// The direct appender after a crash: every completed append is kept and the
/// preallocated zeros are not reported as damage; when the final append's
/// blocks landed only in part (its head block, some body blocks, or none),
/// recovery keeps exactly the batches before it.
#[test]
fn a_direct_log_recovers_every_completed_append_and_cuts_a_partly_landed_one() {
    tokio_uring::start(async {
        let mut config = small_config(1 << 20);
        config.write_mode = ringlog_engine::WriteMode::Direct;
        let src = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(src.path(), config.clone()).await.unwrap();
        let mut written = Vec::new();
        // Values of varied sizes, so batches start and end anywhere in a block.
        for (b, len) in [100usize, 2000, 37, 5000, 1365, 4096, 3, 3000]
            .iter()
            .enumerate()
        {
            let recs: Vec<Rec> = (0..3)
                .map(|i| rec(b as u64 * 3 + i, *len, 1_000 + b as i64))
                .collect();
            let a = log.append(build(&recs), 0).await.unwrap();
            a.durable.wait().await.unwrap();
            written.extend(recs);
        }
        let data_len = log.size_bytes();
        drop(log);
        // The crash's state, for the torn variants below.
        let crashed = tempfile::tempdir().unwrap();
        copy_dir(src.path(), crashed.path());
        let seg = segment_files(src.path()).pop().unwrap();
        let file_len = std::fs::metadata(&seg).unwrap().len();
        assert!(file_len > data_len, "preallocated: {file_len} > {data_len}");

        let (log, report) = Log::open(src.path(), config.clone()).await.unwrap();
        assert!(report.repairs.is_empty(), "{:?}", report.repairs);
        assert_eq!(records_of(&read_all(&log, 0, 1 << 20).await), written);
        log.close().await.unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), data_len);

        // The final append's write landed only in part (a direct write lands
        // block by block): zero what did not land.
        let bytes = std::fs::read(&seg).unwrap();
        let (final_start, final_end) = *batch_ranges(&bytes).last().unwrap();
        let block = 4096;
        let head_end = final_start.next_multiple_of(block).min(final_end);
        let mut lost: Vec<(std::ops::Range<usize>, &str)> = vec![
            (final_start..final_end, "nothing landed"),
            (
                final_start..head_end,
                "its first block did not land, later ones did",
            ),
        ];
        let mut at = head_end;
        while at < final_end {
            lost.push((at..final_end, "its first blocks landed, later ones did not"));
            at += block;
        }
        let before = written.len() - 3;
        for (range, what) in lost {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(crashed.path(), dir.path());
            let mut torn = bytes.clone();
            torn[range.clone()].fill(0);
            // Preallocated zeros follow, as after a crash.
            torn.resize(final_end + 3 * block, 0);
            std::fs::write(dir.path().join(seg.file_name().unwrap()), &torn).unwrap();
            let (log, report) = Log::open(dir.path(), config.clone()).await.unwrap();
            assert_eq!(log.latest(), before as u64, "{what}");
            assert_eq!(
                records_of(&read_all(&log, 0, 1 << 20).await),
                written[..before],
                "{what}"
            );
            // Only a tail of zeros is silent: anything else that is cut off
            // is reported.
            if range.start == final_start && range.end == final_end {
                assert!(report.repairs.is_empty(), "{what}: {:?}", report.repairs);
            } else {
                assert!(
                    matches!(&report.repairs[..], [Repair::Truncated { position, .. }] if *position == final_start as u64),
                    "{what}: {:?}",
                    report.repairs
                );
            }
            // Appends continue right where the log was cut.
            let mut log = log;
            let a = log.append(build(&[rec(9, 5, 5)]), 0).await.unwrap();
            a.durable.wait().await.unwrap();
            assert_eq!(a.base_offset, before as u64);
            log.close().await.unwrap();
            let (log, report) = Log::open(dir.path(), config.clone()).await.unwrap();
            assert!(report.repairs.is_empty());
            assert_eq!(log.latest(), before as u64 + 1);
        }
    });
}
