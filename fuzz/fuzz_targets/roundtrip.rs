//! Arbitrary records through the builder and back through the parser: every
//! key, value, header and timestamp comes back exactly.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ringlog_format::batch::{BatchBuilder, BatchView, NewRecord, ProducerStamp};

#[derive(Debug, Arbitrary)]
struct Input {
    records: Vec<Rec>,
    producer_id: i64,
}

#[derive(Debug, Arbitrary)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    timestamp: i64,
}

fuzz_target!(|input: Input| {
    let stamp = ProducerStamp {
        producer_id: input.producer_id,
        producer_epoch: 0,
        base_sequence: 0,
    };
    let mut builder = BatchBuilder::new(stamp);
    for r in &input.records {
        let headers: Vec<(&[u8], Option<&[u8]>)> =
            r.headers.iter().map(|(n, v)| (n.as_slice(), v.as_deref())).collect();
        builder
            .push(&NewRecord {
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &headers,
                timestamp: r.timestamp,
            })
            .expect("small inputs fit a batch");
    }
    let Some(bytes) = builder.finish() else {
        assert!(input.records.is_empty());
        return;
    };
    let view = BatchView::parse(&bytes, usize::MAX).expect("built batches are valid");
    assert_eq!(view.header().producer_id.get(), input.producer_id);
    let decoded: Vec<_> = view.records().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(decoded.len(), input.records.len());
    for (i, (d, r)) in decoded.iter().zip(&input.records).enumerate() {
        assert_eq!(d.offset, i as i64);
        assert_eq!(d.timestamp, r.timestamp);
        assert_eq!(d.key, r.key.as_deref());
        assert_eq!(d.value, r.value.as_deref());
        let headers: Vec<(&[u8], Option<&[u8]>)> = d.headers().collect();
        let want: Vec<(&[u8], Option<&[u8]>)> =
            r.headers.iter().map(|(n, v)| (n.as_slice(), v.as_deref())).collect();
        assert_eq!(headers, want);
    }
});
