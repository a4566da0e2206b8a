//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use ringlog_engine::batch::{BatchBuilder, BatchView, NewRecord, ProducerStamp};
use ringlog_engine::{Log, LogConfig};
use std::path::Path;

/// A record as the tests model it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub timestamp: i64,
}

/// Builds one batch holding `records`.
pub fn build(records: &[Rec]) -> Vec<u8> {
    let mut b = BatchBuilder::new(ProducerStamp::NONE);
    for r in records {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_deref()))
            .collect();
        b.push(&NewRecord {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &headers,
            timestamp: r.timestamp,
        })
        .unwrap();
    }
    b.finish().unwrap()
}

/// A simple record: key `k{i}`, a value of `len` bytes, timestamp `ts`.
pub fn rec(i: u64, len: usize, ts: i64) -> Rec {
    Rec {
        key: Some(format!("k{i}").into_bytes()),
        value: Some(vec![(i % 251) as u8; len]),
        headers: vec![(b"h".to_vec(), Some(i.to_be_bytes().to_vec()))],
        timestamp: ts,
    }
}

/// Decodes every record of a run of stored batches as (offset, record).
pub fn decode_all(mut bytes: &[u8]) -> Vec<(u64, Rec)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let view = BatchView::parse(bytes, usize::MAX).expect("served bytes are valid batches");
        for r in view.records().unwrap() {
            let r = r.unwrap();
            out.push((
                r.offset as u64,
                Rec {
                    key: r.key.map(<[u8]>::to_vec),
                    value: r.value.map(<[u8]>::to_vec),
                    headers: r
                        .headers()
                        .map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec)))
                        .collect(),
                    timestamp: r.timestamp,
                },
            ));
        }
        bytes = &bytes[view.bytes().len()..];
    }
    out
}

/// Reads the whole log from `from` to its end, `max_bytes` at a time.
pub async fn read_all(log: &Log, from: u64, max_bytes: usize) -> Vec<(u64, Rec)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.latest() {
        let bytes = log.read(offset, max_bytes).await.unwrap();
        assert!(
            !bytes.is_empty(),
            "empty read at {offset} before the end {}",
            log.latest()
        );
        let recs = decode_all(&bytes);
        offset = recs.last().unwrap().0 + 1;
        out.extend(recs.into_iter().filter(|(o, _)| *o >= from));
    }
    out
}

/// A small-segment configuration that rolls often and indexes densely.
pub fn small_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max: segment_bytes,
        index_interval_bytes: 256,
        fsync: ringlog_engine::FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

/// Copies every file of a partition directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The segment files of a partition directory, sorted.
pub fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// The records of `(offset, record)` pairs, offsets dropped.
pub fn records_of(all: &[(u64, Rec)]) -> Vec<Rec> {
    all.iter().map(|(_, r)| r.clone()).collect()
}
