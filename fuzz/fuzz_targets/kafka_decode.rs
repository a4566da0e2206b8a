//! The Kafka listener's request decoder on arbitrary frames: it must never
//! panic, and a frame it answers at once must be framed right.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringlog_kafka_codec::{check_length, decode, Decoded};

fuzz_target!(|data: &[u8]| {
    if let Some(prefix) = data.get(..4) {
        let length = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if let Ok(n) = check_length(length, 1 << 20) {
            assert!((8..=1 << 20).contains(&n));
        }
    }
    if let Ok(Decoded::Answer(frame)) = decode(BytesMut::from(data)) {
        let length = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(length as usize + 4, frame.len());
    }
});
