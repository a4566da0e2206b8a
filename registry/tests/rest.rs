//! The registry's REST API over raw HTTP on the real broker: bad input gets
//! Confluent's errors and stores nothing, `_schemas` is not deleted by
//! accident, and two registries (the broker's own and a `ringlog-registry`
//! process) writing one topic at once agree on every id.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

use ringlog_server::testing::{server_binary, BrokerProcess};

fn broker(dir: &std::path::Path) -> BrokerProcess {
    BrokerProcess::start(&server_binary(), dir, 1, &[]).expect("start the broker")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One HTTP/1.1 request; the status and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A refused huge body may close the connection before it is all sent.
    let _ = s.write_all(body);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Method, path, content type, body, the status expected, a piece of the
/// answer expected.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);

#[test]
fn bad_input_gets_confluent_errors_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    let r = b.registry.unwrap();
    let json = Some("application/vnd.schemaregistry.v1+json");
    let cases: [Case; 12] = [
        ("POST", "/subjects/a/versions", json, b"{not json".to_vec(), 422, "\"error_code\":422"),
        ("POST", "/subjects/a/versions", Some("text/plain"), b"{}".to_vec(), 415, "\"error_code\":415"),
        ("POST", "/subjects/a/versions", json, br#"{"schema":"{\"type\":\"nope\"}"}"#.to_vec(), 422, "42201"),
        ("POST", "/subjects/a/versions", json, br#"{"schema":"\"string\"","schemaType":"XML"}"#.to_vec(), 422, "42201"),
        (
            "POST",
            "/subjects/a/versions",
            json,
            br#"{"schema":"\"string\"","references":[{"name":"x","subject":"missing","version":1}]}"#.to_vec(),
            422,
            "42201",
        ),
        (
            "POST",
            "/subjects/a/versions",
            json,
            br#"{"schema":"syntax = \"proto3\"; message A { int32 a = 1; int32 b = 1; }","schemaType":"PROTOBUF"}"#.to_vec(),
            422,
            "42201",
        ),
        (
            "POST",
            "/subjects/a/versions",
            json,
            br#"{"schema":"syntax = \"proto3\"; import \"other.proto\"; message A { Other o = 1; }","schemaType":"PROTOBUF"}"#.to_vec(),
            422,
            "other.proto",
        ),
        ("POST", "/subjects/a/versions", json, br#"{"schema":"AAAA","schemaType":"PROTOBUF"}"#.to_vec(), 422, "42201"),
        ("POST", "/subjects/a/versions", json, vec![b'x'; 20 << 20], 413, "error_code"),
        ("GET", "/subjects/a/versions/zero", None, Vec::new(), 422, "42202"),
        ("PUT", "/config", json, br#"{"compatibility":"SIDEWAYS"}"#.to_vec(), 422, "42203"),
        ("PUT", "/mode", json, br#"{"mode":"SIDEWAYS"}"#.to_vec(), 422, "42204"),
    ];
    for (method, path, content_type, body, status, needle) in cases {
        let (got, text) = http(r, method, path, content_type, &body);
        assert_eq!(got, status, "{method} {path}: {text}");
        assert!(text.contains(needle), "{method} {path}: {text}");
    }
    let (status, text) = http(r, "GET", "/subjects", None, b"");
    assert_eq!((status, text.as_str()), (200, "[]"), "nothing was stored");
    let (status, _) = http(r, "GET", "/schemas/ids/1", None, b"");
    assert_eq!(status, 404);
    // A schema registered by raw HTTP reads back.
    let (status, text) = http(
        r,
        "POST",
        "/subjects/raw-value/versions",
        json,
        br#"{"schema":"\"string\""}"#,
    );
    assert_eq!((status, text.as_str()), (200, r#"{"id":1}"#));
    let (status, text) = http(r, "GET", "/schemas/types", None, b"");
    assert_eq!(
        (status, text.as_str()),
        (200, r#"["AVRO","JSON","PROTOBUF"]"#)
    );

    // Its topic is not deleted by accident, only with force.
    runtime().block_on(async {
        let admin = ringlog_client::Admin::new(
            ringlog_client::Client::connect(&b.addr.to_string())
                .await
                .unwrap(),
        );
        let e = admin.delete_topic("_schemas").await.unwrap_err();
        assert_eq!(e.kind(), ringlog_client::ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("force"), "{e}");
        admin.delete_topic_with("_schemas", true).await.unwrap();
    });
}

/// A `ringlog-registry` process on the broker at `broker`; killed on drop.
struct Standalone(std::process::Child, SocketAddr);

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn standalone(broker: SocketAddr) -> Standalone {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringlog-registry"))
        .args(["--broker", &broker.to_string(), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("ringlog-registry on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    Standalone(child, addr)
}

fn register(r: SocketAddr, subject: &str, schema: &str) -> i64 {
    let body = serde_json::json!({ "schema": schema }).to_string();
    let (status, text) = http(
        r,
        "POST",
        &format!("/subjects/{subject}/versions"),
        Some("application/vnd.schemaregistry.v1+json"),
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{subject}: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["id"].as_i64().unwrap()
}

#[test]
fn two_registries_writing_one_topic_at_once_agree_on_every_id() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path());
    let other = standalone(b.addr);
    let registries = [b.registry.unwrap(), other.1];
    let ids: Vec<Vec<(String, i64)>> = std::thread::scope(|s| {
        let workers: Vec<_> = registries
            .iter()
            .enumerate()
            .map(|(w, &r)| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..20 {
                        // A schema of its own, and one both register.
                        let own = format!(
                            r#"{{"type":"fixed","name":"F","size":{}}}"#,
                            w * 100 + i + 1
                        );
                        let subject = format!("w{w}-{i}");
                        out.push((subject.clone(), register(r, &subject, &own)));
                        let shared =
                            format!(r#"{{"type":"fixed","name":"S","size":{}}}"#, i + 1000);
                        let subject = format!("shared-{w}-{i}");
                        out.push((subject.clone(), register(r, &subject, &shared)));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    // Own schemas: 40 distinct ids; a schema both registered: one id.
    let mut own: Vec<i64> = ids
        .iter()
        .flatten()
        .filter(|(s, _)| s.starts_with('w'))
        .map(|(_, id)| *id)
        .collect();
    own.sort_unstable();
    own.dedup();
    assert_eq!(own.len(), 40, "{ids:?}");
    let id_of = |w: usize, subject: String| ids[w].iter().find(|(s, _)| *s == subject).unwrap().1;
    for i in 0..20 {
        assert_eq!(
            id_of(0, format!("shared-0-{i}")),
            id_of(1, format!("shared-1-{i}")),
            "the same schema has one id"
        );
    }
    // Both registries answer the same.
    let listing: Vec<String> = registries
        .iter()
        .map(|&r| http(r, "GET", "/subjects", None, b"").1)
        .collect();
    assert_eq!(listing[0], listing[1]);
    for (subject, id) in ids.iter().flatten() {
        for &r in &registries {
            let (status, text) = http(
                r,
                "GET",
                &format!("/subjects/{subject}/versions/1"),
                None,
                b"",
            );
            assert_eq!(status, 200);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["id"].as_i64(), Some(*id), "{subject} at {r}");
        }
    }
}
