//! `ringlog-bench` end to end, briefly, so the tool cannot rot: an embedded
//! e2e run, and produce then consume against a broker process.

use std::process::Command;

use ringlog_server::testing::{server_binary, BrokerProcess};

fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ringlog-bench"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ringlog-bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn embedded_e2e_verifies_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("e2e.json");
    let svg = dir.path().join("e2e.svg");
    let out = bench(&[
        "e2e",
        "--embedded",
        "--shards",
        "2",
        "--messages",
        "5000",
        "--message-size",
        "200",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(out.contains("verified: 10000 messages, 0 errors"), "{out}");
    assert!(out.contains("e2e latency:  p50"), "{out}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["produce"]["messages"], 5000);
    assert_eq!(report["e2e_latency"]["count"], 10000);
    assert_eq!(report["params"]["producers"], 2);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn produce_then_consume_against_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&server_binary(), dir.path(), 2, &[]).unwrap();
    let addr = broker.addr.to_string();
    let out = bench(&[
        "produce",
        "--broker",
        &addr,
        "--topic",
        "b",
        "--messages",
        "3000",
        "--rate",
        "20000",
    ]);
    assert!(out.contains("produce:  "), "{out}");
    let out = bench(&[
        "consume",
        "--broker",
        &addr,
        "--topic",
        "b",
        "--consumers",
        "2",
    ]);
    assert!(out.contains("verified: 6000 messages, 0 errors"), "{out}");
    // The topic exists now: a second produce run says so instead of mixing data.
    let again = Command::new(env!("CARGO_BIN_EXE_ringlog-bench"))
        .args([
            "produce",
            "--broker",
            &addr,
            "--topic",
            "b",
            "--messages",
            "10",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}
