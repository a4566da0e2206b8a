//! Arbitrary bytes as a segment file through recovery's scanner (the same
//! `Scanner` the I/O shell feeds chunk by chunk): never a panic, and what it
//! keeps is self-consistent: scanning the kept prefix again keeps all of it,
//! stops nowhere and indexes only positions inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlog_engine::recovery::scan;

fuzz_target!(|data: &[u8]| {
    let base = 0;
    let first = scan(data, base, 1 << 20, 64);
    assert!(first.valid_bytes <= data.len() as u64);
    assert_eq!(first.stop.is_none(), first.valid_bytes == data.len() as u64);
    let kept = &data[..first.valid_bytes as usize];
    let again = scan(kept, base, 1 << 20, 64);
    assert_eq!(again.valid_bytes, first.valid_bytes);
    assert_eq!(again.next_offset, first.next_offset);
    assert!(again.stop.is_none());
    for e in again.index.offsets() {
        assert!(u64::from(e.position) < again.valid_bytes);
    }
});
