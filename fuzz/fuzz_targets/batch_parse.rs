//! Arbitrary bytes through the validating batch view and the record and
//! header iterators: never a panic, never a read out of bounds, and a batch
//! that validates decodes completely.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlog_format::batch::{peek, BatchView};

fuzz_target!(|data: &[u8]| {
    let _ = peek(data, usize::MAX);
    let _ = BatchView::parse_crc_only(data, usize::MAX);
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
