//! Arbitrary bytes through the validating batch view and the record and
//! header iterators (with and without the CRC gate): never a panic, never a read out of bounds, and a batch
//! that validates decodes completely.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlog_format::batch::{peek, BatchView};

fuzz_target!(|data: &[u8]| {
    let _ = peek(data, usize::MAX);
    let _ = BatchView::parse_crc_only(data, usize::MAX);
    // Without the CRC gate the fuzzer reaches the record walk with garbage:
    // it may fail, never panic (the consumer walks batches this way).
    if let Ok(view) = BatchView::parse_crc_checked(data, usize::MAX) {
        if let Ok(records) = view.records() {
            for record in records.flatten() {
                for (name, value) in record.headers() {
                    let _ = (name.len(), value.map(<[u8]>::len));
                }
            }
        }
    }
    if let Ok(view) = BatchView::parse(data, usize::MAX) {
        assert!(view.bytes().len() <= data.len());
        if let Ok(records) = view.records() {
            let mut count = 0;
            for record in records {
                let record = record.expect("a validated batch decodes without error");
                assert!(record.offset >= view.base_offset() && record.offset <= view.last_offset());
                for (name, value) in record.headers() {
                    let _ = (name.len(), value.map(<[u8]>::len));
                }
                count += 1;
            }
            assert_eq!(count, view.header().record_count.get());
        }
    }
});
