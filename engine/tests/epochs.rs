//! The leader-epoch cache kept beside the log: assigned by appends,
//! persisted, cut by truncation and retention, rebuilt when its file is
//! missing or damaged, and brought in line with a log that lost its tail.

mod common;

use common::*;
use ringlog_engine::epochs::{EpochEntry, EPOCHS_FILE};
use ringlog_engine::{Error, Log};
use std::path::Path;

fn entries(log: &Log) -> Vec<(i32, u64)> {
    log.epochs()
        .entries()
        .iter()
        .map(
            |EpochEntry {
                 epoch,
                 start_offset,
             }| (*epoch, *start_offset),
        )
        .collect()
}

/// Appends one two-record batch per epoch given; returns each base offset.
async fn append_epochs(log: &mut Log, epochs: &[i32]) -> Vec<u64> {
    let mut bases = Vec::new();
    for (i, epoch) in epochs.iter().enumerate() {
        let batch = build(&[rec(i as u64, 300, 1_000), rec(i as u64 + 1, 300, 1_000)]);
        let appended = log.append(batch, *epoch).await.unwrap();
        appended.durable.wait().await.unwrap();
        bases.push(appended.base_offset);
    }
    log.flush_writes().await.unwrap();
    bases
}

async fn reopen(dir: &Path) -> Log {
    Log::open(dir, small_config(2_048)).await.unwrap().0
}

#[test]
fn epochs_are_assigned_by_appends_and_survive_a_reopen_or_the_loss_of_their_file() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), small_config(2_048)).await.unwrap();
        let bases = append_epochs(&mut log, &[1, 1, 2, 2, 2, 5, 5]).await;
        let want = vec![(1, bases[0]), (2, bases[2]), (5, bases[5])];
        assert_eq!(entries(&log), want);
        assert!(
            log.segment_bases().len() > 2,
            "the test wants several segments"
        );
        log.close().await.unwrap();

        let log = reopen(dir.path()).await;
        assert_eq!(entries(&log), want, "read back from its file");
        log.close().await.unwrap();

        std::fs::remove_file(dir.path().join(EPOCHS_FILE)).unwrap();
        let log = reopen(dir.path()).await;
        assert_eq!(entries(&log), want, "rebuilt from the batches");
        log.close().await.unwrap();
        assert!(
            dir.path().join(EPOCHS_FILE).exists(),
            "the rebuilt cache is written"
        );

        std::fs::write(dir.path().join(EPOCHS_FILE), b"garbage that is no cache").unwrap();
        let log = reopen(dir.path()).await;
        assert_eq!(entries(&log), want, "rebuilt over a damaged file");
        log.close().await.unwrap();
    });
}

#[test]
fn truncation_and_retention_cut_the_epochs_and_a_lost_tail_takes_its_epochs_along() {
    tokio_uring::start(async {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), small_config(2_048)).await.unwrap();
        let bases = append_epochs(&mut log, &[1, 1, 2, 3, 3, 4]).await;
        log.truncate_to(bases[3]).await.unwrap();
        assert_eq!(entries(&log), vec![(1, bases[0]), (2, bases[2])]);
        log.close().await.unwrap();
        let mut log = reopen(dir.path()).await;
        assert_eq!(entries(&log), vec![(1, bases[0]), (2, bases[2])]);

        // Epoch 7's batch never reaches the disk (the copy is cut before it),
        // though its entry was written first.
        let before = log.next_offset();
        let size = std::fs::metadata(segment_files(dir.path()).last().unwrap())
            .unwrap()
            .len();
        append_epochs(&mut log, &[7]).await;
        assert_eq!(entries(&log).last(), Some(&(7, before)));
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let last = segment_files(copy.path()).pop().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(size)
            .unwrap();
        let crashed = reopen(copy.path()).await;
        assert_eq!(crashed.next_offset(), before);
        assert_eq!(entries(&crashed), vec![(1, bases[0]), (2, bases[2])]);
        crashed.close().await.unwrap();

        // Segments of epoch 1 and 2 deleted: the oldest entry starts where
        // the log now does.
        let deleted = log.delete_segments_below(before).await.unwrap();
        assert!(!deleted.deleted_segments.is_empty());
        let start = log.earliest();
        assert_eq!(entries(&log).first().map(|e| e.1), Some(start));
        log.close().await.unwrap();
        let log = reopen(dir.path()).await;
        assert_eq!(entries(&log).first().map(|e| e.1), Some(start));
        log.close().await.unwrap();
    });
}

#[test]
fn a_replica_appends_the_leaders_batches_as_they_are() {
    tokio_uring::start(async {
        let leader_dir = tempfile::tempdir().unwrap();
        let follower_dir = tempfile::tempdir().unwrap();
        let (mut leader, _) = Log::open(leader_dir.path(), small_config(1 << 20))
            .await
            .unwrap();
        append_epochs(&mut leader, &[3, 3, 4, 6]).await;
        let bytes = leader.read(0, 1 << 20).await.unwrap();
        let (mut follower, _) = Log::open(follower_dir.path(), small_config(1 << 20))
            .await
            .unwrap();
        let mut rest = &bytes[..];
        let mut batches = Vec::new();
        while !rest.is_empty() {
            let view = ringlog_engine::batch::BatchView::parse(rest, 1 << 20).unwrap();
            batches.push(view.bytes().to_vec());
            rest = &rest[view.bytes().len()..];
        }
        // Out of place: the second batch first.
        match follower.append_replica(batches[1].clone()).await {
            Err(Error::NotContiguous { expected: 0, found }) => assert_eq!(found, 2),
            Err(other) => panic!("refused for the wrong reason: {other}"),
            Ok(_) => panic!("appended out of place"),
        }
        for batch in &batches {
            let appended = follower.append_replica(batch.clone()).await.unwrap();
            appended.durable.wait().await.unwrap();
        }
        follower.flush_writes().await.unwrap();
        assert_eq!(entries(&follower), entries(&leader));
        assert_eq!(
            follower.read(0, 1 << 20).await.unwrap(),
            bytes,
            "byte for byte"
        );
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
}
