//! ringlog-client's Avro serializer and deserializer (feature `avro`)
//! against confluent-kafka's, through the broker's registry: values the
//! Rust side writes, Python reads as they were written, and the other way.
//! Needs the Python of `RINGLOG_KAFKA_PYTHON` (`.ci/run` makes it);
//! elsewhere, without it, the test says so and passes; under `CI` it fails.

use std::path::PathBuf;
use std::process::Command;

use ringlog_client::avro::{AvroDeserializer, AvroSerializer, SchemaRegistry};
use ringlog_client::{
    Admin, Client, Consumer, ConsumerConfig, NewTopic, OffsetReset, Producer, ProducerConfig,
    Record,
};
use ringlog_server::testing::{server_binary, BrokerProcess};

const USER_V1: &str = r#"{"type": "record", "name": "User", "namespace": "test",
  "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"}]}"#;

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    name: String,
    age: i32,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct UserV2 {
    name: String,
    age: i32,
    email: Option<String>,
}

fn python() -> Option<PathBuf> {
    ringlog_server::testing::python_with("confluent_kafka.schema_registry.avro")
}

fn check(python: &PathBuf, b: &BrokerProcess, name: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../client/tests/kafka/schema_registry.py"
    );
    let out = Command::new(python)
        .args([
            script,
            &format!("http://{}", b.registry.unwrap()),
            &b.kafka.unwrap().to_string(),
            name,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rust_and_python_read_each_others_avro() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = BrokerProcess::start(&server_binary(), dir.path(), 1, &[]).unwrap();
    let registry = SchemaRegistry::new(&format!("http://{}", b.registry.unwrap()));
    let users = vec![
        User {
            name: "ada".into(),
            age: 36,
        },
        User {
            name: "grace".into(),
            age: 45,
        },
        User {
            name: "edsger".into(),
            age: 72,
        },
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::connect(&b.addr.to_string()).await.unwrap();
        let admin = Admin::new(client.clone());
        admin
            .create_topic(NewTopic::new("from-rust", 1))
            .await
            .unwrap();
        admin
            .create_topic(NewTopic::new("from-python", 1))
            .await
            .unwrap();
        let serializer = AvroSerializer::new(registry.clone(), "from-rust-value", USER_V1).unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default())
            .await
            .unwrap();
        for u in &users {
            let bytes = serializer.serialize(u).await.unwrap();
            producer
                .send(Record::new("from-rust", bytes))
                .await
                .unwrap()
                .await
                .unwrap();
        }
        assert!(AvroSerializer::new(registry.clone(), "x", "{not avro").is_err());
    });
    let printed = check(&python, &b, "read_rust");
    let read: Vec<serde_json::Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: Vec<serde_json::Value> = users
        .iter()
        .map(|u| serde_json::json!({"name": u.name, "age": u.age}))
        .collect();
    assert_eq!(read, expected, "Python reads what Rust wrote");

    check(&python, &b, "write_python");
    runtime.block_on(async {
        let client = Client::connect(&b.addr.to_string()).await.unwrap();
        let config = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        consumer.assign(&[("from-python", 0)]).await.unwrap();
        let deserializer = AvroDeserializer::new(registry.clone(), None).unwrap();
        let mut got = Vec::new();
        for _ in 0..50 {
            for r in consumer
                .poll(std::time::Duration::from_millis(200))
                .await
                .unwrap()
            {
                got.push(
                    deserializer
                        .deserialize::<UserV2>(r.value.as_deref().unwrap())
                        .await
                        .unwrap(),
                );
            }
            if got.len() == 2 {
                break;
            }
        }
        assert_eq!(
            got,
            vec![
                UserV2 {
                    name: "ada".into(),
                    age: 36,
                    email: None
                },
                UserV2 {
                    name: "alan".into(),
                    age: 41,
                    email: Some("a@example.com".into())
                },
            ]
        );
        // Read through the v1 reader schema: the field it lacks is dropped.
        let v1 = AvroDeserializer::new(registry.clone(), Some(USER_V1)).unwrap();
        let mut consumer = Consumer::new(
            Client::connect(&b.addr.to_string()).await.unwrap(),
            ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                ..ConsumerConfig::default()
            },
        );
        consumer.assign(&[("from-python", 0)]).await.unwrap();
        let mut first = None;
        for _ in 0..50 {
            if let Some(r) = consumer
                .poll(std::time::Duration::from_millis(200))
                .await
                .unwrap()
                .into_iter()
                .next()
            {
                first = Some(
                    v1.deserialize::<User>(r.value.as_deref().unwrap())
                        .await
                        .unwrap(),
                );
                break;
            }
        }
        assert_eq!(
            first,
            Some(User {
                name: "ada".into(),
                age: 36
            })
        );
        let e = deserializer
            .deserialize::<User>(b"plain")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ringlog_client::ErrorKind::CorruptRecord);
    });
}
