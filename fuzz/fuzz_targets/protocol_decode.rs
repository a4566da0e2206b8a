//! The broker's request decoder on arbitrary frames: it must never panic,
//! and a decoded produce request must only point inside its payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlog_protocol::{
    check_frame_length, decode_fetch_response, decode_request, parse_request_header, Request,
    HEADER_LEN, MAX_FRAME_BYTES_DEFAULT,
};

fuzz_target!(|data: &[u8]| {
    let _ = decode_fetch_response(data);
    let Some(head) = data.get(..HEADER_LEN) else { return };
    let head: &[u8; HEADER_LEN] = head.try_into().expect("sliced to HEADER_LEN");
    let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if check_frame_length(length, MAX_FRAME_BYTES_DEFAULT).is_err() {
        return;
    }
    let Ok((_, Ok(api))) = parse_request_header(head) else { return };
    let payload = &data[HEADER_LEN..];
    if let Ok(Request::Produce(req)) = decode_request(api, payload) {
        let mut end = 0;
        for p in &req.partitions {
            assert!(p.batches.start >= end && p.batches.end <= payload.len());
            end = p.batches.end;
        }
    }
});
