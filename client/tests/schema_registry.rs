//! The schema registry served by the real broker, driven by software
//! nobody here wrote: confluent-kafka's `SchemaRegistryClient`, its Avro,
//! JSON Schema and Protobuf serializers and deserializers (records go
//! through the Kafka listener). Raw HTTP (bad input, two registries on one topic) is
//! tested in `registry/tests/rest.rs`. `.ci/run`
//! installs the Python packages in its virtual environment
//! (`RINGLOG_KAFKA_PYTHON`); elsewhere a missing one skips the Python test,
//! under `CI` it fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

mod common;

/// A Python with confluent-kafka and its schema registry extras.
fn python() -> Option<PathBuf> {
    ringlog_server::testing::python_with(
        "confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.json_schema, \
         confluent_kafka.schema_registry.protobuf",
    )
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

#[test]
fn a_topic_validating_payloads_takes_only_what_its_schema_decodes() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = common::broker(dir.path(), 2);
    common::runtime().block_on(async {
        let admin = ringlog_client::Admin::new(
            ringlog_client::Client::connect(&b.addr.to_string())
                .await
                .unwrap(),
        );
        for topic in ["strict", "strict-proto"] {
            let meta = admin
                .create_topic(ringlog_client::NewTopic::new(topic, 1).schema_validation("payload"))
                .await
                .unwrap();
            assert_eq!(meta.config.schema_validation, "payload");
        }
        let e = admin
            .create_topic(ringlog_client::NewTopic::new("odd", 1).schema_validation("sometimes"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ringlog_client::ErrorKind::InvalidConfig, "{e}");
    });
    let out = run_check(&python, b.registry.unwrap(), b.kafka.unwrap(), "validated");
    assert!(out.contains("bad ones refused"), "{out}");
    assert!(out.contains("protobuf validation"), "{out}");
}

#[test]
fn confluent_protobuf_serializer_registers_references_evolves_and_round_trips() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = common::broker(dir.path(), 2);
    let out = run_check(&python, b.registry.unwrap(), b.kafka.unwrap(), "protobuf");
    assert!(out.contains("text = descriptor"), "{out}");
}
