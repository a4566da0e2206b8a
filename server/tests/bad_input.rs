//! Malformed input gets an error reply or a clean close, stores nothing,
//! and never stops the broker from serving everyone else.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{batch, Broker, Client};
use ringlog_engine::batch::ProducerStamp;
use ringlog_protocol::{self as proto, ApiKey, ErrorCode, Payload};

/// True once the broker has closed the connection (EOF after any replies).
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).is_ok()
}

fn raw_frame(api: u16, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&((12 + payload.len()) as u32).to_be_bytes());
    f.extend_from_slice(&api.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&42u64.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn malformed_requests_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(dir.path(), 2, &["--max-frame-bytes", "65536"]);
    let mut good = broker.client();
    good.create_topic("t", 2, "always");
    good.produce("t", 0, &batch(&[b"before"], ProducerStamp::NONE, 1));

    // A frame over the limit: refused from its header, then closed.
    let mut c = broker.client();
    c.stream.write_all(&(65537u32).to_be_bytes()).unwrap();
    c.stream.write_all(&[0u8; 12]).unwrap();
    let reply = c.recv().unwrap();
    assert_eq!(reply.error, ErrorCode::FrameTooLarge, "{}", reply.message());
    assert!(closed_by_broker(&mut c.stream));

    // Text where a frame should be ("GET " reads as a 1.2 GB length).
    let mut c = broker.client();
    c.stream
        .write_all(b"GET / HTTP/1.1\r\nHost: ringlog\r\n\r\n")
        .unwrap();
    assert_eq!(c.recv().unwrap().error, ErrorCode::FrameTooLarge);
    assert!(closed_by_broker(&mut c.stream));

    // A length too small to hold the header.
    let mut c = broker.client();
    c.stream
        .write_all(&[0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        .unwrap();
    assert_eq!(c.recv().unwrap().error, ErrorCode::FrameTooLarge);
    assert!(closed_by_broker(&mut c.stream));

    // Unknown API keys and versions, and garbage payloads, are answered and
    // the connection stays usable.
    let mut c = broker.client();
    c.stream.write_all(&raw_frame(999, 0, b"whatever")).unwrap();
    assert_eq!(c.recv().unwrap().error, ErrorCode::UnsupportedApi);
    c.stream
        .write_all(&raw_frame(ApiKey::Fetch as u16, 7, b""))
        .unwrap();
    assert_eq!(c.recv().unwrap().error, ErrorCode::UnsupportedApi);
    for api in ApiKey::ALL {
        // Too short to hold any API's payload.
        let reply = c.call(api, b"\x01\x02\x03");
        assert_eq!(
            reply.error,
            ErrorCode::MalformedRequest,
            "{api:?}: {}",
            reply.message()
        );
        // Longer garbage may happen to validate as an archive (rkyv checks
        // bounds and types, not intent): it must still get an answer (call()
        // checks the request id) and change nothing; a harmless read such as
        // DescribeGroup of a group named by the garbage answers empty.
        let reply = c.call(
            api,
            b"\xde\xad\xbe\xef garbage \x00\x01\x02\xff\xff\xff\x7f",
        );
        if reply.error == ErrorCode::None {
            assert!(
                matches!(api, ApiKey::DescribeGroup),
                "{api:?} accepted garbage"
            );
        }
    }
    // A produce whose section claims more bytes than the frame holds.
    let mut lying = proto::encode_produce(1, 0, &[("t", 0, b"abc")]);
    lying.truncate(lying.len() - 1);
    assert_eq!(
        c.call(ApiKey::Produce, &lying).error,
        ErrorCode::MalformedRequest
    );
    assert_eq!(c.call(ApiKey::ListTopics, &[]).error, ErrorCode::None);

    // Batches that fail validation: bad CRC, bad magic, lying length,
    // truncated, random bytes. Each is refused and nothing is appended.
    let valid = batch(&[b"payload"], ProducerStamp::NONE, 1);
    let mut bad_crc = valid.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut bad_magic = valid.clone();
    bad_magic[16] = 1;
    let mut long_length = valid.clone();
    long_length[8..12].copy_from_slice(&(valid.len() as i32).to_be_bytes());
    let mut short_length = valid.clone();
    short_length[8..12].copy_from_slice(&20i32.to_be_bytes());
    let truncated = valid[..valid.len() - 3].to_vec();
    let cases: [(&str, Vec<u8>); 6] = [
        ("bad crc", bad_crc),
        ("bad magic", bad_magic),
        ("length past the end", long_length),
        ("length too small", short_length),
        ("truncated", truncated),
        (
            "random",
            (0..200u32).map(|i| (i * 37 % 251) as u8).collect(),
        ),
    ];
    for (what, bytes) in &cases {
        let r = c.produce("t", 1, bytes);
        assert_eq!(
            ErrorCode::from_u16(r.error),
            ErrorCode::CorruptBatch,
            "{what}: {}",
            r.message
        );
        assert!(r.base_offsets.is_empty(), "{what}");
    }
    // A good batch followed by a bad one: the good one is stored, the rest refused.
    let mut mixed = valid.clone();
    mixed.extend_from_slice(&cases[0].1);
    mixed.extend_from_slice(&valid);
    let r = c.produce("t", 1, &mixed);
    assert_eq!(ErrorCode::from_u16(r.error), ErrorCode::CorruptBatch);
    assert_eq!(r.base_offsets, vec![0]);
    assert_eq!(c.list_offset("t", 1, proto::LATEST), 1);

    // A frame cut short by a disconnect.
    let mut c = broker.client();
    let frame = raw_frame(
        ApiKey::Produce as u16,
        0,
        &proto::encode_produce(1, 0, &[("t", 0, &valid)]),
    );
    c.stream.write_all(&frame[..frame.len() / 2]).unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_broker(&mut c.stream));

    // Everything else kept working, and nothing bad was stored.
    let r = good.produce("t", 0, &batch(&[b"after"], ProducerStamp::NONE, 2));
    assert_eq!(r.error, 0);
    let values: Vec<Vec<u8>> = good
        .read_all("t", 0, 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, vec![b"before".to_vec(), b"after".to_vec()]);
    let mut fresh = broker.client();
    assert_eq!(fresh.read_all("t", 1, 0), vec![(0, b"payload".to_vec())]);
}

#[test]
fn connections_over_the_limit_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_with(dir.path(), 2, &["--max-connections", "2"]);
    let mut a = broker.client();
    let mut b = broker.client();
    assert_eq!(a.call(ApiKey::ListTopics, &[]).error, ErrorCode::None);
    assert_eq!(b.call(ApiKey::ListTopics, &[]).error, ErrorCode::None);
    let mut over = broker.client();
    over.send(ApiKey::ListTopics, &[]);
    assert!(over.recv().is_err(), "the third connection must be refused");
    drop(a);
    // The slot frees once the broker notices the close; retry until then.
    let mut served = false;
    for _ in 0..100 {
        let mut c = broker.client();
        c.send(ApiKey::ListTopics, &[]);
        if c.recv().is_ok() {
            served = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(served);
    assert_eq!(b.call(ApiKey::ListTopics, &[]).error, ErrorCode::None);
}

#[test]
fn a_full_disk_fails_the_produce_and_keeps_the_log_readable() {
    let dir = tempfile::tempdir().unwrap();
    // RLIMIT_FSIZE stands in for a full disk: writes past 2 MiB fail with
    // EFBIG (SIGXFSZ ignored so the broker sees the error, as with ENOSPC).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringlog-server"));
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--kafka-listen",
            "none",
            "--shards",
            "1",
        ])
        .env("RINGLOG_LOG", "error")
        .stdout(std::process::Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 2 << 20,
                rlim_max: 2 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("ringlog-server listening on ")
        .unwrap()
        .parse()
        .unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let mut c = Client::connect(addr);
    c.create_topic("full", 1, "always");
    let value = vec![7u8; 100 * 1024];
    let mut stored = 0;
    let failure = loop {
        let r = c.produce("full", 0, &batch(&[&value], ProducerStamp::NONE, 1));
        if r.error != 0 {
            break r;
        }
        stored += 1;
        assert!(stored < 100, "the size limit never hit");
    };
    assert_eq!(
        ErrorCode::from_u16(failure.error),
        ErrorCode::StorageError,
        "{}",
        failure.message
    );
    // Later appends are refused too; everything acknowledged reads back.
    let again = c.produce("full", 0, &batch(&[b"small"], ProducerStamp::NONE, 1));
    assert_eq!(ErrorCode::from_u16(again.error), ErrorCode::StorageError);
    let all = c.read_all("full", 0, 0);
    assert_eq!(all.len(), stored);
    assert!(all.iter().all(|(_, v)| *v == value));
    assert_eq!(c.call(ApiKey::ListTopics, &[]).error, ErrorCode::None);
    let _ = child.kill();
    let _ = child.wait();
}

/// A bit flipped on disk in a sealed segment, after the broker stored it:
/// the sendfile path sends stored bytes as they are, so the reader's CRC
/// check is what sees the damage; the scrubber finds it, after which the
/// partition's fetches are read and checked and the damaged batch is refused
/// while the batches around it are still served.
#[test]
fn a_batch_damaged_on_disk_is_caught_by_the_reader_then_by_the_scrubber() {
    let dir = tempfile::tempdir().unwrap();
    let sendfile = ["--sendfile-min-bytes", "0", "--scrub-interval-ms", "0"];
    let broker = Broker::start_with(dir.path(), 1, &sendfile);
    let mut c = broker.client();
    let req = proto::CreateTopicRequest {
        name: "flip".into(),
        partitions: Some(1),
        segment_bytes: Some(8192),
        fsync: Some("never".into()),
        ..Default::default()
    };
    let _: proto::MetadataResponse = c
        .call(ApiKey::CreateTopic, &req.encode())
        .ok(ApiKey::CreateTopic);
    let values: Vec<Vec<u8>> = (0..30).map(|i| vec![b'a' + i as u8; 1000]).collect();
    for v in &values {
        let r = c.produce("flip", 0, &batch(&[v], ProducerStamp::NONE, 1));
        assert_eq!(r.error, 0);
    }
    drop(c);
    assert!(broker.terminate().success());

    // Offset 0's batch: a byte of its value, well inside the first segment.
    let log = dir.path().join("flip-0").join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[500] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();

    let check_neighbours = |c: &mut Client| {
        let (error, _, stored) = c.fetch(&[("flip", 0, 1)], 0).remove(0);
        assert_eq!(error, ErrorCode::None);
        let after = common::records(&stored);
        assert_eq!(after[0], (1, values[1].clone()));
    };

    // sendfile: the damaged batch goes out as stored; its CRC gives it away.
    let broker = Broker::start_with(dir.path(), 1, &sendfile);
    let mut c = broker.client();
    let (error, _, stored) = c.fetch(&[("flip", 0, 0)], 0).remove(0);
    assert_eq!(error, ErrorCode::None);
    assert!(matches!(
        ringlog_engine::batch::BatchView::parse_crc_only(&stored, usize::MAX),
        Err(ringlog_engine::batch::BatchError::BadCrc { .. })
    ));
    check_neighbours(&mut c);
    drop(c);
    assert!(broker.terminate().success());

    // Read and checked (sendfile off): refused.
    let copy = [
        "--sendfile-min-bytes",
        "4294967295",
        "--scrub-interval-ms",
        "0",
    ];
    let broker = Broker::start_with(dir.path(), 1, &copy);
    let mut c = broker.client();
    assert_eq!(
        c.fetch(&[("flip", 0, 0)], 0).remove(0).0,
        ErrorCode::StorageError
    );
    check_neighbours(&mut c);
    drop(c);
    assert!(broker.terminate().success());

    // sendfile with a fast scrubber: once it has found the damage, fetches
    // of this partition are checked and the damaged batch is refused.
    let scrubbing = ["--sendfile-min-bytes", "0", "--scrub-interval-ms", "20"];
    let broker = Broker::start_with(dir.path(), 1, &scrubbing);
    let found = wait_for_metric(&broker, "ringlog_partition_scrub_corrupt_total", "flip");
    assert!(found, "the scrubber never reported the damaged batch");
    let mut c = broker.client();
    assert_eq!(
        c.fetch(&[("flip", 0, 0)], 0).remove(0).0,
        ErrorCode::StorageError
    );
    check_neighbours(&mut c);
    // It went on past the damage: later segments were read and found sound.
    assert!(wait_for_metric(
        &broker,
        "ringlog_partition_scrubbed_bytes_total",
        "flip"
    ));
}

/// Waits up to 10 s for a partition counter of `topic` to be above 0.
fn wait_for_metric(broker: &Broker, name: &str, topic: &str) -> bool {
    (0..500).any(|_| {
        let text = broker.metrics_text();
        let hit = text.lines().any(|l| {
            l.starts_with(&format!("{name}{{"))
                && l.contains(&format!("topic=\"{topic}\""))
                && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0)
        });
        if !hit {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        hit
    })
}
