//! A killed broker loses no acknowledged record under fsync=always; a
//! gracefully stopped one loses nothing under any policy.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{batch, value, Broker, Client};
use ringlog_engine::batch::ProducerStamp;
use ringlog_protocol::{self as proto, ApiKey};

/// An acknowledged batch: where it went and what it held.
#[derive(Debug, Clone)]
struct Acked {
    partition: u32,
    base_offset: u64,
    values: Vec<Vec<u8>>,
}

/// Produces batches to every partition, `window` requests in flight, until
/// the connection breaks or `limit` batches were acknowledged.
fn produce_stream(
    mut c: Client,
    topic: &str,
    partitions: u32,
    window: usize,
    limit: usize,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let mut in_flight = std::collections::HashMap::new();
    let mut n = 0usize;
    loop {
        while in_flight.len() < window && n < limit {
            let p = (n % partitions as usize) as u32;
            let values: Vec<Vec<u8>> = (0..3).map(|j| value(p, n * 3 + j)).collect();
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let b = batch(&refs, ProducerStamp::NONE, n as i64);
            let payload = proto::encode_produce(1, 0, &[(topic, p, &b)]);
            let mut frame =
                proto::request_header(ApiKey::Produce, n as u64, payload.len()).to_vec();
            frame.extend_from_slice(&payload);
            if std::io::Write::write_all(&mut c.stream, &frame).is_err() {
                return;
            }
            in_flight.insert(n as u64, (p, values));
            n += 1;
        }
        if in_flight.is_empty() {
            return;
        }
        let Ok(reply) = c.recv() else { return };
        // Responses come in completion order: match them by request id.
        let (p, values) = in_flight
            .remove(&reply.request_id)
            .expect("a response to a request in flight");
        let resp: proto::ProduceResponse = reply.ok(ApiKey::Produce);
        let r = &resp.partitions[0];
        assert_eq!(r.error, 0, "{}", r.message);
        acked.lock().unwrap().push(Acked {
            partition: p,
            base_offset: r.base_offsets[0],
            values,
        });
    }
}

fn check_all_present(c: &mut Client, topic: &str, acked: &[Acked]) {
    for a in acked {
        let got = c.read_all(topic, a.partition, a.base_offset);
        let stored: Vec<&Vec<u8>> = got.iter().take(a.values.len()).map(|(_, v)| v).collect();
        let want: Vec<&Vec<u8>> = a.values.iter().collect();
        assert_eq!(
            stored, want,
            "acknowledged batch at {}-{} @{}",
            topic, a.partition, a.base_offset
        );
        assert_eq!(got[0].0, a.base_offset);
    }
}

#[test]
fn sigkill_loses_no_acknowledged_record_with_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    c.create_topic("durable", 4, "always");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let producer = {
        let (c, acked) = (broker.client(), acked.clone());
        std::thread::spawn(move || {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                produce_stream(c, "durable", 1, 16, usize::MAX, acked)
            }));
        })
    };
    // Let a few hundred acknowledgements through, then kill mid-stream.
    while acked.lock().unwrap().len() < 1000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let broker = broker.restart_after_kill();
    producer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 1000);
    let mut c = broker.client();
    check_all_present(&mut c, "durable", &acked);
    // Offsets are dense: every acknowledged batch is below the new log end.
    let end = c.list_offset("durable", 0, proto::LATEST) as u64;
    assert!(acked.iter().all(|a| a.base_offset + 3 <= end));
}

#[test]
fn graceful_shutdown_loses_nothing_with_any_fsync_policy() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), 2);
    let mut c = broker.client();
    let policies = [
        ("always", "t-always"),
        ("never", "t-never"),
        ("interval:60000", "t-interval"),
    ];
    for (policy, topic) in policies {
        c.create_topic(topic, 2, policy);
    }
    let mut acked = Vec::new();
    for (_, topic) in policies {
        let list = Arc::new(Mutex::new(Vec::new()));
        produce_stream(broker.client(), topic, 2, 8, 200, list.clone());
        acked.push((topic, list.lock().unwrap().clone()));
    }
    drop(c);
    let dir_path = broker.data_dir.clone();
    let status = broker.terminate();
    assert!(status.success(), "SIGTERM must exit 0, got {status:?}");
    let broker = Broker::start(&dir_path, 2);
    let mut c = broker.client();
    for (topic, list) in &acked {
        assert_eq!(list.len(), 200);
        check_all_present(&mut c, topic, list);
        let total: i64 = (0..2).map(|p| c.list_offset(topic, p, proto::LATEST)).sum();
        assert_eq!(total, 600, "{topic}: exactly what was acknowledged");
    }
}
