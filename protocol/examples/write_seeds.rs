//! Writes one well-formed request frame per API into a directory, as seeds
//! for the `protocol_decode` fuzz target:
//! `cargo run -p ringlog-protocol --example write_seeds fuzz/corpus/protocol_decode`.

use ringlog_protocol::*;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/protocol_decode".into());
    std::fs::create_dir_all(&dir)?;
    let fetch = FetchRequest {
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition {
            topic: "t".into(),
            partition: 0,
            offset: 5,
            max_bytes: 4096,
        }],
    };
    let tp = || TopicPartition {
        topic: "t".into(),
        partition: 1,
    };
    let payloads: Vec<(ApiKey, Vec<u8>)> = vec![
        (
            ApiKey::Produce,
            encode_produce(1, 1000, &[("t", 0, &[0u8; 70]), ("u", 3, b"")]),
        ),
        (ApiKey::Fetch, fetch.encode()),
        (
            ApiKey::ListOffsets,
            ListOffsetsRequest {
                partitions: vec![ListOffsetsPartition {
                    topic: "t".into(),
                    partition: 0,
                    spec: EARLIEST,
                }],
            }
            .encode(),
        ),
        (
            ApiKey::Metadata,
            MetadataRequest {
                topics: Some(vec!["t".into()]),
            }
            .encode(),
        ),
        (
            ApiKey::CreateTopic,
            CreateTopicRequest {
                name: "t".into(),
                partitions: Some(3),
                fsync: Some("never".into()),
                ..Default::default()
            }
            .encode(),
        ),
        (
            ApiKey::DeleteTopic,
            DeleteTopicRequest {
                name: "t".into(),
                force: false,
            }
            .encode(),
        ),
        (
            ApiKey::AddPartitions,
            AddPartitionsRequest {
                topic: "t".into(),
                partitions: 6,
            }
            .encode(),
        ),
        (ApiKey::ListTopics, Vec::new()),
        (
            ApiKey::CommitOffsets,
            CommitOffsetsRequest {
                group: "g".into(),
                member_id: String::new(),
                generation: -1,
                offsets: vec![CommitOffset {
                    topic: "t".into(),
                    partition: 1,
                    offset: 9,
                    metadata: "m".into(),
                }],
            }
            .encode(),
        ),
        (
            ApiKey::FetchOffsets,
            FetchOffsetsRequest {
                group: "g".into(),
                partitions: vec![tp()],
            }
            .encode(),
        ),
        (ApiKey::InitProducerId, Vec::new()),
        (
            ApiKey::GroupHeartbeat,
            GroupHeartbeatRequest {
                group: "g".into(),
                member_id: String::new(),
                topics: vec!["t".into()],
                assignor: "range".into(),
                session_timeout_ms: 10_000,
                owned: vec![tp()],
                leave: false,
            }
            .encode(),
        ),
        (ApiKey::ListGroups, Vec::new()),
        (
            ApiKey::DescribeGroup,
            DescribeGroupRequest { group: "g".into() }.encode(),
        ),
    ];
    for (api, payload) in payloads {
        let mut frame = request_header(api, 7, payload.len()).to_vec();
        frame.extend_from_slice(&payload);
        std::fs::write(format!("{dir}/seed-{}", api.name()), frame)?;
    }
    Ok(())
}
