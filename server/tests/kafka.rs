//! The Kafka listener at the byte level, without a Kafka client: version
//! negotiation, requests it does not serve, and frames that are not
//! Kafka. (Real clients are tested in `client/tests/kafka_clients.rs`.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;

/// A request frame with a v1 header (key, version, correlation id,
/// client id).
fn request(key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client = b"raw-test";
    let mut frame = Vec::new();
    frame.extend_from_slice(&key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&(client.len() as i16).to_be_bytes());
    frame.extend_from_slice(client);
    frame.extend_from_slice(body);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend(frame);
    out
}

/// The next response frame (after its length), or `None` if the broker
/// closed the connection.
fn response(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An ApiVersions v0 answer: correlation id, error, (key, min, max)s.
fn api_versions(b: &[u8]) -> (i32, i16, Vec<(i16, i16, i16)>) {
    let n = i32_at(b, 6) as usize;
    let apis = (0..n)
        .map(|i| {
            let at = 10 + 6 * i;
            (i16_at(b, at), i16_at(b, at + 2), i16_at(b, at + 4))
        })
        .collect();
    (i32_at(b, 0), i16_at(b, 4), apis)
}

#[test]
fn versions_are_negotiated_and_an_unserved_request_leaves_the_connection_usable() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::Broker::start(dir.path(), 2);
    let mut s = connect(broker.kafka.expect("the Kafka listener is on"));

    s.write_all(&request(18, 0, 1, &[])).unwrap();
    let (correlation, error, apis) = api_versions(&response(&mut s).unwrap());
    assert_eq!((correlation, error), (1, 0));
    assert!(apis.contains(&(0, 0, 9)), "Produce 0-9: {apis:?}");
    assert!(apis.contains(&(1, 4, 12)), "Fetch 4-12: {apis:?}");
    assert!(apis.contains(&(18, 0, 4)), "ApiVersions 0-4: {apis:?}");

    // A version past the range: a v0 body with UNSUPPORTED_VERSION and the
    // versions served (KIP-511), so the client can retry with one.
    s.write_all(&request(18, 99, 2, &[])).unwrap();
    let (correlation, error, again) = api_versions(&response(&mut s).unwrap());
    assert_eq!((correlation, error), (2, 35));
    assert_eq!(again, apis);

    // An API the broker does not serve: answered, connection kept.
    s.write_all(&request(999, 0, 3, &[])).unwrap();
    let r = response(&mut s).unwrap();
    assert_eq!((i32_at(&r, 0), i16_at(&r, 4)), (3, 35));

    // Pipelined: answers come back in request order.
    let mut both = request(18, 1, 4, &[]);
    both.extend(request(18, 0, 5, &[]));
    s.write_all(&both).unwrap();
    assert_eq!(i32_at(&response(&mut s).unwrap(), 0), 4);
    assert_eq!(i32_at(&response(&mut s).unwrap(), 0), 5);
}

#[test]
fn frames_that_are_not_kafka_close_their_connection_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::Broker::start(dir.path(), 2);
    let addr = broker.kafka.unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        // 2 GiB announced: refused before anything is allocated for it.
        i32::MAX.to_be_bytes().to_vec(),
        // A negative length.
        (-5i32).to_be_bytes().to_vec(),
        // Shorter than any request header.
        [&3i32.to_be_bytes()[..], &[0, 18, 0]].concat(),
        // A Produce v9 whose body is noise.
        request(0, 9, 7, &[0xff; 64]),
        // A Metadata v12 cut short of its body.
        request(3, 12, 8, &[]),
    ];
    for bytes in garbage {
        let mut s = connect(addr);
        s.write_all(&bytes).unwrap();
        assert!(
            response(&mut s).is_none(),
            "{bytes:?} was answered instead of closing the connection"
        );
    }
    // The broker serves on, on both listeners.
    let mut s = connect(addr);
    s.write_all(&request(18, 0, 9, &[])).unwrap();
    assert_eq!(api_versions(&response(&mut s).unwrap()).1, 0);
    assert!(TcpStream::connect(broker.addr).is_ok());
}
