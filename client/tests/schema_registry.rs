//! The schema registry served by the real broker, driven by software
//! nobody here wrote: confluent-kafka's `SchemaRegistryClient`, its Avro
//! and JSON Schema serializers and deserializers (records go through the
//! Kafka listener), and `curl`-style raw HTTP for bad input. `.ci/run`
//! installs the Python packages in its virtual environment
//! (`RINGLOG_KAFKA_PYTHON`); elsewhere a missing one skips the Python test,
//! under `CI` it fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};

mod common;

/// A Python with confluent-kafka and its schema registry extras.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("RINGLOG_KAFKA_PYTHON")
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let found = Command::new(&candidate)
        .args([
            "-c",
            "import confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.json_schema",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(candidate);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "confluent-kafka[avro,json,schemaregistry] is missing: .ci/run installs it"
        );
        eprintln!("skipped: confluent-kafka's schema registry packages are not installed");
    }
    found
}

fn run_check(python: &PathBuf, registry: SocketAddr, kafka: SocketAddr, check: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/kafka/schema_registry.py"
    );
    let out = Command::new(python)
        .args([
            script,
            &format!("http://{registry}"),
            &kafka.to_string(),
            check,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{check} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn confluent_clients_register_evolve_serialize_and_everything_survives_a_kill() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = common::broker(dir.path(), 2);
    let out = run_check(&python, b.registry.unwrap(), b.kafka.unwrap(), "evolve");
    assert!(out.contains("deserialized, deleted"), "{out}");
    let b = b.restart_after_kill().unwrap();
    let out = run_check(
        &python,
        b.registry.unwrap(),
        b.kafka.unwrap(),
        "after_restart",
    );
    assert!(out.contains("survived"), "{out}");
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
    let b = common::broker(dir.path(), 1);
    let r = b.registry.unwrap();
    let json = Some("application/vnd.schemaregistry.v1+json");
    let cases: [Case; 9] = [
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
    assert_eq!((status, text.as_str()), (200, r#"["AVRO","JSON"]"#));
}
