//! Each Kafka API, in terms of the broker's own operations
//! ([`crate::ops`]): decode what the client asked, call, encode.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringlog_kafka_codec::kafka_protocol::messages::{
    alter_configs_response, create_partitions_response::CreatePartitionsTopicResult,
    create_topics_response::CreatableTopicResult, delete_topics_response,
    describe_cluster_response, describe_configs_response, describe_groups_response, fetch_response,
    find_coordinator_response, incremental_alter_configs_response, join_group_response,
    leave_group_response, list_groups_response, list_offsets_response, metadata_response,
    offset_commit_response, offset_fetch_response, produce_response, AlterConfigsRequest,
    AlterConfigsResponse, ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FetchRequest,
    FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
    HeartbeatResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse,
    ProducerId, RequestKind, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use ringlog_kafka_codec::kafka_protocol::protocol::StrBytes;
use ringlog_protocol::ErrorCode;
use tokio::sync::oneshot;

use super::Response;
use crate::classic_group::{Join, Joined};
use crate::ops;
use crate::ops::PRODUCE_TIMEOUT_DEFAULT;
use crate::partition::ClassicOp;
use crate::partition::{Answer, ProduceOutcome};
use crate::shard::Shard;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 119;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
use crate::classic_group::code::NOT_COORDINATOR;

/// Kafka's error code for a broker error.
pub fn kafka_error(code: ErrorCode) -> i16 {
    match code {
        ErrorCode::None => NONE,
        ErrorCode::Unknown => -1,
        ErrorCode::UnsupportedApi => 35,
        ErrorCode::MalformedRequest | ErrorCode::InvalidRequest => INVALID_REQUEST,
        ErrorCode::FrameTooLarge | ErrorCode::BatchTooLarge => 10,
        ErrorCode::UnknownTopic | ErrorCode::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode::TopicExists => 36,
        ErrorCode::InvalidTopicConfig => INVALID_CONFIG,
        ErrorCode::CorruptBatch => 2,
        ErrorCode::OffsetOutOfRange => 1,
        // Retriable: the client refreshes its metadata and tries again.
        ErrorCode::NotLeader | ErrorCode::ShuttingDown => 6,
        ErrorCode::Timeout => 7,
        ErrorCode::StorageError => 56,
        ErrorCode::OutOfOrderSequence => 45,
        ErrorCode::InvalidProducerEpoch => 47,
        ErrorCode::InvalidAcks => INVALID_REQUIRED_ACKS,
        ErrorCode::UnknownMember => 25,
        ErrorCode::IllegalGeneration => 22,
        ErrorCode::NotEnoughReplicas => 19,
        ErrorCode::NotEnoughReplicasAfterAppend => 20,
        ErrorCode::OffsetMetadataTooLarge => 12,
        ErrorCode::InvalidRecord => 87,
        // Not a Kafka API: the nearest meaning.
        ErrorCode::EndOffsetMoved => INVALID_REQUEST,
    }
}

/// The metrics label of a request.
pub fn metric_name(api: ApiKey, version: i16) -> String {
    format!("kafka_{api:?}_v{version}")
}

/// Runs every request but Produce (`client_id` from its header).
pub async fn handle(
    shard: &Rc<Shard>,
    request: RequestKind,
    version: i16,
    client_id: &str,
) -> anyhow::Result<Response> {
    Ok(match request {
        RequestKind::ApiVersions(_) => {
            Response::ApiVersions(ringlog_kafka_codec::api_versions(NONE))
        }
        RequestKind::Metadata(req) => Response::Metadata(metadata(shard, req, version).await),
        RequestKind::Fetch(req) => Response::Fetch(fetch(shard, req).await),
        RequestKind::ListOffsets(req) => Response::ListOffsets(list_offsets(shard, req).await?),
        RequestKind::InitProducerId(req) => Response::InitProducerId(init_producer_id(shard, req)),
        RequestKind::CreateTopics(req) => Response::CreateTopics(create_topics(shard, req).await),
        RequestKind::FindCoordinator(req) => {
            Response::FindCoordinator(find_coordinator(shard, req, version))
        }
        RequestKind::JoinGroup(req) => {
            Response::JoinGroup(join_group(shard, req, version, client_id).await)
        }
        RequestKind::SyncGroup(req) => Response::SyncGroup(sync_group(shard, req, version).await),
        RequestKind::Heartbeat(req) => Response::Heartbeat(heartbeat(shard, req).await),
        RequestKind::LeaveGroup(req) => {
            Response::LeaveGroup(leave_group(shard, req, version).await)
        }
        RequestKind::OffsetCommit(req) => Response::OffsetCommit(offset_commit(shard, req).await),
        RequestKind::OffsetFetch(req) => {
            Response::OffsetFetch(offset_fetch(shard, req, version).await)
        }
        RequestKind::ListGroups(_) => Response::ListGroups(list_groups(shard).await),
        RequestKind::DescribeGroups(req) => {
            Response::DescribeGroups(describe_groups(shard, req).await)
        }
        RequestKind::DeleteTopics(req) => {
            Response::DeleteTopics(delete_topics(shard, req, version).await)
        }
        RequestKind::DescribeConfigs(req) => {
            Response::DescribeConfigs(describe_configs(shard, req, version))
        }
        RequestKind::CreatePartitions(req) => {
            Response::CreatePartitions(create_partitions(shard, req).await)
        }
        RequestKind::DescribeCluster(req) => {
            Response::DescribeCluster(describe_cluster(shard, req))
        }
        RequestKind::AlterConfigs(req) => Response::AlterConfigs(alter_configs(shard, req).await),
        RequestKind::IncrementalAlterConfigs(req) => {
            Response::IncrementalAlterConfigs(incremental_alter_configs(shard, req).await)
        }
        other => anyhow::bail!("{other:?} is not served"),
    })
}

/// This broker's node id as Kafka clients see it.
fn node_id(shard: &Shard) -> i32 {
    shard
        .shared
        .cluster
        .as_ref()
        .map_or(0, |c| c.config().node_id as i32)
}

/// A topic's id (Metadata v10+): derived from its name, so it is stable
/// across restarts.
fn topic_id(name: &str) -> uuid::Uuid {
    let a = ringlog_protocol::name_hash(name);
    let b = ringlog_protocol::name_hash(&format!("{name}\u{0}topic-id"));
    uuid::Uuid::from_u64_pair(a, b)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Metadata: this broker, and the topics asked for (all for a null list,
/// or an empty one before v1), created first where the request allows it
/// and `--auto-create-topics` is on.
async fn metadata(shard: &Rc<Shard>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let names: Option<Vec<String>> = match req.topics {
        Some(t) if !(t.is_empty() && version == 0) => Some(
            t.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.to_string()))
                .collect(),
        ),
        _ => None,
    };
    // Before v4 the request cannot say; Kafka creates then.
    let may_create = version < 4 || req.allow_auto_topic_creation;
    if let (Some(names), true, true) = (&names, may_create, shard.shared.config.auto_create_topics)
    {
        for name in names {
            if shard.shared.topic(name).is_none() {
                let create = ringlog_protocol::CreateTopicRequest {
                    name: name.clone(),
                    ..Default::default()
                };
                match ops::create_topic(shard, create).await {
                    Ok(_) => {
                        tracing::info!(topic = %name, "topic created by a Kafka client's metadata request")
                    }
                    Err(f) => tracing::debug!(topic = %name, "auto-creating: {}", f.message),
                }
            }
        }
    }
    let me = node_id(shard);
    let view = shard.shared.cluster.as_ref().map(|c| c.view());
    let known = match &names {
        None => shard.shared.topics(),
        Some(names) => names.iter().filter_map(|n| shard.shared.topic(n)).collect(),
    };
    let mut topics = Vec::new();
    let found = ops::metadata(
        shard,
        ringlog_protocol::MetadataRequest {
            topics: Some(known.iter().map(|t| t.name.clone()).collect()),
        },
    )
    .await
    .map(|m| m.topics)
    .unwrap_or_default();
    for t in found {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let m = metadata_response::MetadataResponsePartition::default()
                    .with_partition_index(p.partition as i32);
                let Some(view) = &view else {
                    // Alone: this broker leads every partition (no epoch:
                    // leadership never moves).
                    return m
                        .with_leader_id(BrokerId(me))
                        .with_replica_nodes(vec![BrokerId(me)])
                        .with_isr_nodes(vec![BrokerId(me)]);
                };
                let tp = ringlog_cluster::TopicPartition::new(t.name.clone(), p.partition);
                let ids = |list: &[u32]| list.iter().map(|id| BrokerId(*id as i32)).collect();
                match view.state.partitions.get(&tp) {
                    Some(s) => m
                        .with_error_code(if s.leader.is_some() {
                            NONE
                        } else {
                            LEADER_NOT_AVAILABLE
                        })
                        .with_leader_id(BrokerId(s.leader.map_or(-1, |l| l as i32)))
                        .with_leader_epoch(s.leader_epoch)
                        .with_replica_nodes(ids(&s.replicas))
                        .with_isr_nodes(ids(&s.isr)),
                    None => m
                        .with_error_code(LEADER_NOT_AVAILABLE)
                        .with_leader_id(BrokerId(-1)),
                }
            })
            .collect();
        topics.push(
            metadata_response::MetadataResponseTopic::default()
                .with_name(Some(topic_name(&t.name)))
                .with_topic_id(topic_id(&t.name))
                .with_is_internal(t.name == ringlog_protocol::OFFSETS_TOPIC)
                .with_partitions(partitions),
        );
    }
    for name in names.iter().flatten() {
        if shard.shared.topic(name).is_none() {
            topics.push(
                metadata_response::MetadataResponseTopic::default()
                    .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
                    .with_name(Some(topic_name(name))),
            );
        }
    }
    let brokers = kafka_brokers(shard)
        .into_iter()
        .map(|b| {
            metadata_response::MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host))
                .with_port(i32::from(b.port))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(shard.shared.cluster_id.clone())))
        .with_controller_id(BrokerId(controller_id(shard)))
        .with_topics(topics)
}

/// Where Kafka clients reach this broker: the advertised address.
fn advertised(shard: &Shard) -> (String, u16) {
    shard
        .shared
        .kafka_address
        .clone()
        .unwrap_or_else(|| ("127.0.0.1".into(), 9092))
}

/// A broker as Kafka clients reach it.
struct KafkaBroker {
    id: i32,
    host: String,
    port: u16,
}

/// The brokers Kafka clients can reach: this one alone, or in cluster mode
/// every live broker that registered a Kafka listener, by node id.
fn kafka_brokers(shard: &Shard) -> Vec<KafkaBroker> {
    let Some(cluster) = &shard.shared.cluster else {
        let (host, port) = advertised(shard);
        return vec![KafkaBroker {
            id: node_id(shard),
            host,
            port,
        }];
    };
    let view = cluster.view();
    view.state
        .brokers
        .iter()
        .filter(|(_, b)| !b.fenced)
        .filter_map(|(id, b)| {
            let (host, port) = b.kafka_address.rsplit_once(':')?;
            Some(KafkaBroker {
                id: *id as i32,
                host: host.to_string(),
                port: port.parse().ok()?,
            })
        })
        .collect()
}

/// The controller's node id (-1 while there is none).
fn controller_id(shard: &Shard) -> i32 {
    match &shard.shared.cluster {
        None => node_id(shard),
        Some(c) => c.view().controller.map_or(-1, |id| id as i32),
    }
}

/// DescribeCluster: the brokers Kafka clients can reach and the
/// controller. Kafka's controller endpoints (endpoint type 2) are not
/// served.
fn describe_cluster(shard: &Shard, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(shard.shared.cluster_id.clone()))
        .with_controller_id(BrokerId(controller_id(shard)))
        // Kafka's "not asked for": no authorizer runs here.
        .with_cluster_authorized_operations(i32::MIN);
    if req.endpoint_type != 1 {
        return response
            .with_error_code(UNSUPPORTED_ENDPOINT_TYPE)
            .with_error_message(Some(StrBytes::from_static_str(
                "only broker endpoints (type 1) are served",
            )));
    }
    response.with_brokers(
        kafka_brokers(shard)
            .into_iter()
            .map(|b| {
                describe_cluster_response::DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(b.host))
                    .with_port(i32::from(b.port))
            })
            .collect(),
    )
}

/// CreatePartitions: raises each topic's partition count (never lowers
/// it); replicas can only be this broker.
async fn create_partitions(
    shard: &Rc<Shard>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let me = BrokerId(node_id(shard));
    let mut results = Vec::with_capacity(req.topics.len());
    for (i, t) in req.topics.iter().enumerate() {
        let name = t.name.0.to_string();
        let current = shard.shared.topic(&name).map(|t| t.config.partitions);
        let refusal = if req.topics[..i].iter().any(|o| o.name == t.name) {
            Some((INVALID_REQUEST, format!("topic {name:?} appears twice")))
        } else if name == ringlog_protocol::OFFSETS_TOPIC {
            Some((
                INVALID_REQUEST,
                "the offsets topic's partitions are fixed".into(),
            ))
        } else {
            match current {
                None => Some((
                    UNKNOWN_TOPIC_OR_PARTITION,
                    format!("unknown topic {name:?}"),
                )),
                Some(n) if t.count <= n as i32 => Some((
                    INVALID_PARTITIONS,
                    format!(
                        "topic {name:?} has {n} partitions; the count can only grow, not to {}",
                        t.count
                    ),
                )),
                Some(n) => match &t.assignments {
                    Some(a) if a.len() != (t.count as u32 - n) as usize => Some((
                        INVALID_REPLICA_ASSIGNMENT,
                        format!(
                            "{} assignments for {} new partitions",
                            a.len(),
                            t.count as u32 - n
                        ),
                    )),
                    Some(a) if a.iter().any(|p| p.broker_ids != [me]) => Some((
                        INVALID_REPLICA_ASSIGNMENT,
                        format!("the only replica here is broker {}", me.0),
                    )),
                    _ => None,
                },
            }
        };
        let (code, message) = match refusal {
            Some(r) => r,
            None => {
                match ops::add_partitions(shard, &name, t.count as u32, req.validate_only).await {
                    Ok(()) => (NONE, String::new()),
                    Err(f) => (kafka_error(f.code), f.message),
                }
            }
        };
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(code)
                .with_error_message((code != NONE).then(|| StrBytes::from_string(message))),
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// A produce whose partitions have their batches queued.
pub struct PendingProduce {
    acks: i16,
    version: i16,
    topics: Vec<(TopicName, Vec<(i32, PartitionWait)>)>,
}

enum PartitionWait {
    Queued(oneshot::Receiver<ProduceOutcome>),
    Refused(i16, String),
}

/// Hands every partition's records to its partition task, in request
/// order: `records` are the frame's own bytes, cut apart by the decoder
/// (the log stamps offsets into them in place), one per partition.
pub async fn produce_start(
    shard: &Rc<Shard>,
    req: ProduceRequest,
    records: Vec<Option<BytesMut>>,
    version: i16,
) -> PendingProduce {
    let mut records = records.into_iter();
    let timeout = match req.timeout_ms {
        ms if ms > 0 => Duration::from_millis(ms as u64),
        _ => PRODUCE_TIMEOUT_DEFAULT,
    };
    let refusal = if !matches!(req.acks, -1..=1) {
        Some((
            INVALID_REQUIRED_ACKS,
            format!("acks={} is not 0, 1 or -1", req.acks),
        ))
    } else if req.transactional_id.is_some() {
        Some((
            TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "transactions are not supported yet".to_string(),
        ))
    } else {
        None
    };
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for t in req.topic_data {
        let mut partitions = Vec::with_capacity(t.partition_data.len());
        for p in t.partition_data {
            let sent = records.next().flatten();
            let wait = match (&refusal, sent, u32::try_from(p.index)) {
                (Some((code, why)), ..) => PartitionWait::Refused(*code, why.clone()),
                (None, None, _) => PartitionWait::Refused(INVALID_REQUEST, "no records".into()),
                (None, _, Err(_)) => PartitionWait::Refused(
                    UNKNOWN_TOPIC_OR_PARTITION,
                    format!("partition {}", p.index),
                ),
                (None, Some(bytes), Ok(partition)) => PartitionWait::Queued(
                    ops::produce_partition(
                        shard,
                        t.name.0.as_str(),
                        partition,
                        bytes,
                        timeout,
                        req.acks == -1,
                    )
                    .await,
                ),
            };
            partitions.push((p.index, wait));
        }
        topics.push((t.name, partitions));
    }
    PendingProduce {
        acks: req.acks,
        version,
        topics,
    }
}

/// Waits for every partition's outcome; `None` for acks=0.
pub async fn produce_finish(pending: PendingProduce) -> Option<ProduceResponse> {
    let mut responses = Vec::with_capacity(pending.topics.len());
    for (name, partitions) in pending.topics {
        let mut out = Vec::with_capacity(partitions.len());
        for (index, wait) in partitions {
            let (code, mut message, base) = match wait {
                PartitionWait::Refused(code, message) => (code, Some(message), -1),
                PartitionWait::Queued(rx) => match rx.await {
                    Ok(ProduceOutcome {
                        failure: None,
                        base_offsets,
                    }) => (NONE, None, base_offsets.first().map_or(-1, |o| *o as i64)),
                    Ok(ProduceOutcome {
                        failure: Some(f), ..
                    }) => (kafka_error(f.code), Some(f.message), -1),
                    Err(_) => (6, Some("the partition stopped".into()), -1),
                },
            };
            // The message field exists from v8 on.
            if pending.version < 8 {
                message = None;
            }
            out.push(
                produce_response::PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(code)
                    .with_base_offset(base)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1)
                    .with_error_message(message.map(StrBytes::from_string)),
            );
        }
        responses.push(
            produce_response::TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(out),
        );
    }
    (pending.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// Fetch: every fetch is a full one (no sessions); stored batches go back
/// as they are, the whole batch where the offset falls inside one.
async fn fetch(shard: &Rc<Shard>, req: FetchRequest) -> FetchResponse {
    let mut partitions = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            partitions.push(ringlog_protocol::FetchPartition {
                topic: t.topic.0.to_string(),
                partition: p.partition.max(0) as u32,
                offset: p.fetch_offset.max(0) as u64,
                max_bytes: p.partition_max_bytes.max(1) as u32,
            });
        }
    }
    let native = ringlog_protocol::FetchRequest {
        max_wait_ms: req.max_wait_ms.max(0) as u32,
        min_bytes: req.min_bytes.max(0) as u32,
        max_bytes: if req.max_bytes > 0 {
            req.max_bytes as u32
        } else {
            i32::MAX as u32
        },
        partitions,
    };
    let mut outcomes = ops::fetch_outcomes(shard, &native, false).await;
    ops::fit_fetch_budget(&mut outcomes, native.max_bytes as usize);
    let mut outcomes = outcomes.into_iter();
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut out = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let Some(outcome) = outcomes.next() else {
                break;
            };
            let (code, records) = match outcome.result {
                Ok(Answer::Read(bytes)) => (NONE, Bytes::from(bytes)),
                // Never asked for: fetches here are read, not sendfile'd.
                Ok(Answer::File(..)) => (6, Bytes::new()),
                Err(f) => (kafka_error(f.code), Bytes::new()),
            };
            out.push(
                fetch_response::PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_error_code(code)
                    .with_high_watermark(outcome.log_end as i64)
                    .with_last_stable_offset(outcome.log_end as i64)
                    .with_log_start_offset(outcome.log_start as i64)
                    .with_aborted_transactions(Some(Vec::new()))
                    .with_preferred_read_replica(BrokerId(-1))
                    .with_records(Some(records)),
            );
        }
        responses.push(
            fetch_response::FetchableTopicResponse::default()
                .with_topic(t.topic)
                .with_partitions(out),
        );
    }
    FetchResponse::default().with_responses(responses)
}

/// ListOffsets: earliest (-2), latest (-1) or the first offset at a
/// timestamp.
async fn list_offsets(
    shard: &Rc<Shard>,
    req: ListOffsetsRequest,
) -> anyhow::Result<ListOffsetsResponse> {
    let mut asked = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            asked.push(ringlog_protocol::ListOffsetsPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index.max(0) as u32,
                spec: p.timestamp,
            });
        }
    }
    let answers = ops::list_offsets(
        shard,
        ringlog_protocol::ListOffsetsRequest { partitions: asked },
    )
    .await
    .map_err(|f| anyhow::anyhow!("{}", f.message))?;
    let mut answers = answers.partitions.into_iter();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut out = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let Some(a) = answers.next() else { break };
            out.push(
                list_offsets_response::ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(kafka_error(ErrorCode::from_u16(a.error)))
                    .with_timestamp(-1)
                    .with_offset(a.offset),
            );
        }
        topics.push(
            list_offsets_response::ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(out),
        );
    }
    Ok(ListOffsetsResponse::default().with_topics(topics))
}

/// InitProducerId: a fresh idempotent producer id (transactions later).
fn init_producer_id(shard: &Shard, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        return InitProducerIdResponse::default()
            .with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match ops::init_producer_id(shard) {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id.producer_id))
            .with_producer_epoch(id.producer_epoch),
        Err(f) => InitProducerIdResponse::default()
            .with_error_code(kafka_error(f.code))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

/// CreateTopics: each topic with its partition count and the settings
/// ringlog has (retention.ms, retention.bytes, segment.bytes,
/// min.insync.replicas, cleanup.policy, delete.retention.ms); any other
/// setting is refused by name.
async fn create_topics(shard: &Rc<Shard>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut create = ringlog_protocol::CreateTopicRequest {
            name: name.clone(),
            partitions: (t.num_partitions > 0).then_some(t.num_partitions as u32),
            replication_factor: (t.replication_factor > 0).then_some(t.replication_factor as u32),
            ..Default::default()
        };
        let mut refusal: Option<(i16, String)> = None;
        if !t.assignments.is_empty() {
            refusal = Some((
                INVALID_REQUEST,
                "manual replica assignments are not supported".into(),
            ));
        }
        if shard.shared.cluster.is_none() && t.replication_factor > 1 {
            refusal = Some((
                INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {} needs as many brokers; this one runs alone",
                    t.replication_factor
                ),
            ));
        }
        for c in &t.configs {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            match crate::catalog::Setting::parse(&c.name, &value) {
                Ok(setting) => setting.apply_to_request(&mut create),
                Err(crate::catalog::Refusal(_, message)) => {
                    refusal = Some((INVALID_CONFIG, message));
                }
            }
        }
        if shard.shared.cluster.is_none() {
            create.replication_factor = None;
        }
        let (code, message) = match refusal {
            Some(r) => r,
            None if req.validate_only => (NONE, String::new()),
            None => match ops::create_topic(shard, create).await {
                Ok(_) => (NONE, String::new()),
                Err(f) => (kafka_error(f.code), f.message),
            },
        };
        let partitions = shard
            .shared
            .topic(&name)
            .map_or(-1, |t| t.config.partitions as i32);
        results.push(
            CreatableTopicResult::default()
                .with_name(t.name)
                .with_topic_id(topic_id(&name))
                .with_error_code(code)
                .with_error_message((!message.is_empty()).then(|| StrBytes::from_string(message)))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        );
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// Kafka's COORDINATOR_NOT_AVAILABLE: the client asks again later.
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

/// FindCoordinator: this broker coordinates every group (one broker).
fn find_coordinator(
    shard: &Shard,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let brokers = kafka_brokers(shard);
    // A group's coordinator: this broker alone, or in cluster mode the
    // leader of the group's offsets partition. Transactions are not
    // served: no transaction coordinator.
    let coordinator = |key: &str| -> Result<&KafkaBroker, i16> {
        if req.key_type != 0 {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        let id = match &shard.shared.cluster {
            None => node_id(shard),
            Some(c) => {
                let tp = ringlog_cluster::TopicPartition::new(
                    ringlog_protocol::OFFSETS_TOPIC.to_string(),
                    ringlog_protocol::offsets_partition(key),
                );
                match c.view().state.partitions.get(&tp).and_then(|p| p.leader) {
                    Some(leader) => leader as i32,
                    None => return Err(COORDINATOR_NOT_AVAILABLE),
                }
            }
        };
        brokers
            .iter()
            .find(|b| b.id == id)
            .ok_or(COORDINATOR_NOT_AVAILABLE)
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let found = coordinator(key.as_str());
                let c = find_coordinator_response::Coordinator::default().with_key(key);
                match found {
                    Ok(b) => c
                        .with_node_id(BrokerId(b.id))
                        .with_host(StrBytes::from_string(b.host.clone()))
                        .with_port(i32::from(b.port)),
                    Err(error) => c.with_node_id(BrokerId(-1)).with_error_code(error),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match coordinator(req.key.as_str()) {
        Ok(b) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(b.id))
            .with_host(StrBytes::from_string(b.host.clone()))
            .with_port(i32::from(b.port)),
        Err(error) => FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_node_id(BrokerId(-1)),
    }
}

/// Sends a classic-group request to its coordinator and waits for the
/// answer (NOT_COORDINATOR if the coordinator went away).
async fn classic<T>(
    shard: &Rc<Shard>,
    group: &GroupId,
    make: impl FnOnce(oneshot::Sender<T>) -> ClassicOp,
    gone: T,
) -> T {
    let (reply, rx) = oneshot::channel();
    ops::kafka_group(shard, group.0.to_string(), make(reply)).await;
    rx.await.unwrap_or(gone)
}

/// JoinGroup: answered when the group's join phase ends.
async fn join_group(
    shard: &Rc<Shard>,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
) -> JoinGroupResponse {
    // Kafka names a new member after its client id, as tools display it.
    let client_id = if client_id.is_empty() {
        "consumer"
    } else {
        client_id
    };
    let join = Join {
        member_id: req.member_id.to_string(),
        client_id: client_id.to_string(),
        session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(if version >= 1 {
            req.rebalance_timeout_ms.max(0) as u64
        } else {
            req.session_timeout_ms.max(0) as u64
        }),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let gone = Joined {
        error: NOT_COORDINATOR,
        generation: -1,
        ..Joined::default()
    };
    let joined = classic(
        shard,
        &req.group_id,
        |reply| ClassicOp::Join { join, reply },
        gone,
    )
    .await;
    let members = joined
        .members
        .into_iter()
        .map(|(id, metadata)| {
            join_group_response::JoinGroupResponseMember::default()
                .with_member_id(StrBytes::from_string(id))
                .with_metadata(metadata)
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(joined.error)
        .with_generation_id(joined.generation)
        .with_leader(StrBytes::from_string(joined.leader))
        .with_member_id(StrBytes::from_string(joined.member_id))
        .with_members(members);
    let protocol = StrBytes::from_string(joined.protocol);
    resp = if version >= 7 {
        resp.with_protocol_type(Some(StrBytes::from_string(joined.protocol_type)))
            .with_protocol_name(Some(protocol))
    } else {
        resp.with_protocol_name(Some(protocol))
    };
    resp
}

/// SyncGroup: the leader's assignments out to every member.
async fn sync_group(shard: &Rc<Shard>, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let op = |reply| ClassicOp::Sync {
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        assignments,
        reply,
    };
    let (error, assignment) =
        classic(shard, &req.group_id, op, (NOT_COORDINATOR, Bytes::new())).await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(error)
        .with_assignment(assignment);
    if version >= 5 {
        resp = resp
            .with_protocol_type(req.protocol_type)
            .with_protocol_name(req.protocol_name);
    }
    resp
}

async fn heartbeat(shard: &Rc<Shard>, req: HeartbeatRequest) -> HeartbeatResponse {
    let op = |reply| ClassicOp::Heartbeat {
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        reply,
    };
    let error = classic(shard, &req.group_id, op, NOT_COORDINATOR).await;
    HeartbeatResponse::default().with_error_code(error)
}

async fn leave_group(
    shard: &Rc<Shard>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let ids: Vec<String> = if version <= 2 {
        vec![req.member_id.to_string()]
    } else {
        req.members
            .iter()
            .map(|m| m.member_id.to_string())
            .collect()
    };
    let op = |reply| ClassicOp::Leave {
        member_ids: ids.clone(),
        reply,
    };
    let errors = classic(shard, &req.group_id, op, vec![NOT_COORDINATOR; ids.len()]).await;
    if version <= 2 {
        return LeaveGroupResponse::default()
            .with_error_code(errors.first().copied().unwrap_or(NONE));
    }
    let members = req
        .members
        .into_iter()
        .zip(errors)
        .map(|(m, error)| {
            leave_group_response::MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(error)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

/// OffsetCommit: stored as the native commits are (a standalone consumer
/// commits with generation -1), the metadata string with the offset.
async fn offset_commit(shard: &Rc<Shard>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            offsets.push(ringlog_protocol::CommitOffset {
                topic: t.name.0.to_string(),
                partition: p.partition_index.max(0) as u32,
                offset: p.committed_offset.max(0) as u64,
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map_or_else(String::new, |m| m.to_string()),
            });
        }
    }
    let commit = ringlog_protocol::CommitOffsetsRequest {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        generation: req.generation_id_or_member_epoch,
        offsets,
    };
    let results = match ops::commit_offsets(shard, commit).await {
        Ok(r) => r
            .results
            .into_iter()
            .map(|r| group_error(ErrorCode::from_u16(r.error)))
            .collect(),
        Err(f) => vec![group_error(f.code); req.topics.iter().map(|t| t.partitions.len()).sum()],
    };
    let mut results = results.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(results.next().unwrap_or(NONE))
                })
                .collect();
            offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// A group request's error as Kafka clients read it (a coordinator that
/// moved is NOT_COORDINATOR, so the client looks for it again).
fn group_error(code: ErrorCode) -> i16 {
    match code {
        ErrorCode::NotLeader | ErrorCode::ShuttingDown => NOT_COORDINATOR,
        other => kafka_error(other),
    }
}

/// A topic's committed offsets: (partition, offset or -1, metadata, Kafka
/// error).
type TopicCommits = (TopicName, Vec<(i32, i64, String, i16)>);

/// One group's committed offsets: the partitions asked, or every one it
/// committed (`None`).
async fn committed(
    shard: &Rc<Shard>,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Result<Vec<TopicCommits>, i16> {
    let Some(topics) = topics else {
        let described = ops::describe_group(
            shard,
            ringlog_protocol::DescribeGroupRequest {
                group: group.to_string(),
            },
        )
        .await
        .map_err(|f| group_error(f.code))?;
        let mut by_topic: Vec<TopicCommits> = Vec::new();
        for o in described.offsets {
            let entry = (o.partition as i32, o.offset as i64, o.metadata, NONE);
            match by_topic.iter_mut().find(|(t, _)| t.0.as_str() == o.topic) {
                Some((_, ps)) => ps.push(entry),
                None => by_topic.push((topic_name(&o.topic), vec![entry])),
            }
        }
        return Ok(by_topic);
    };
    let partitions = topics
        .iter()
        .flat_map(|(t, ps)| {
            ps.iter().map(|p| ringlog_protocol::TopicPartition {
                topic: t.0.to_string(),
                partition: (*p).max(0) as u32,
            })
        })
        .collect();
    let found = ops::fetch_offsets(
        shard,
        ringlog_protocol::FetchOffsetsRequest {
            group: group.to_string(),
            partitions,
        },
    )
    .await
    .map_err(|f| group_error(f.code))?;
    let mut found = found.offsets.into_iter();
    Ok(topics
        .into_iter()
        .map(|(t, ps)| {
            let partitions = ps
                .into_iter()
                .map(|p| match found.next() {
                    Some(c) => (
                        p,
                        c.offset,
                        c.metadata,
                        kafka_error(ErrorCode::from_u16(c.error)),
                    ),
                    None => (p, -1, String::new(), NONE),
                })
                .collect();
            (t, partitions)
        })
        .collect())
}

/// A group's commits as OffsetFetch's topics, in either of its layouts
/// (`$topic`/`$partition`: the v0-7 or the v8+ types).
macro_rules! offset_topics {
    ($commits:expr, $topic:ty, $partition:ty) => {
        $commits
            .into_iter()
            .map(|(name, ps)| {
                <$topic>::default().with_name(name).with_partitions(
                    ps.into_iter()
                        .map(|(p, offset, metadata, error)| {
                            <$partition>::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_metadata(Some(StrBytes::from_string(metadata)))
                                .with_error_code(error)
                        })
                        .collect(),
                )
            })
            .collect()
    };
}

/// A group's commits for OffsetFetch: its error and its topics.
async fn group_commits(
    shard: &Rc<Shard>,
    group: &str,
    asked: Option<Vec<(TopicName, Vec<i32>)>>,
) -> (i16, Vec<TopicCommits>) {
    match committed(shard, group, asked).await {
        Ok(topics) => (NONE, topics),
        Err(e) => (e, Vec::new()),
    }
}

/// OffsetFetch: committed offsets, -1 where none (v8: several groups).
async fn offset_fetch(
    shard: &Rc<Shard>,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    use offset_fetch_response as r;
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let asked = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let (error, commits) = group_commits(shard, g.group_id.0.as_str(), asked).await;
            let topics = offset_topics!(
                commits,
                r::OffsetFetchResponseTopics,
                r::OffsetFetchResponsePartitions
            );
            groups.push(
                r::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
                    .with_error_code(error),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let asked = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let (error, commits) = group_commits(shard, req.group_id.0.as_str(), asked).await;
    let topics = offset_topics!(
        commits,
        r::OffsetFetchResponseTopic,
        r::OffsetFetchResponsePartition
    );
    let mut resp = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        resp = resp.with_error_code(error);
    }
    resp
}

/// ListGroups: every group with members, of either protocol.
async fn list_groups(shard: &Rc<Shard>) -> ListGroupsResponse {
    let names = ops::list_groups(shard)
        .await
        .map(|r| r.groups)
        .unwrap_or_default();
    ListGroupsResponse::default().with_groups(
        names
            .into_iter()
            .map(|name| {
                list_groups_response::ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(name)))
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
            })
            .collect(),
    )
}

/// DescribeGroups: a Kafka group's state, assignor and members (with
/// their subscriptions and assignments); `Dead` for one unknown here.
async fn describe_groups(shard: &Rc<Shard>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let (reply, rx) = oneshot::channel();
        ops::kafka_group(shard, id.0.to_string(), ClassicOp::Describe { reply }).await;
        let described =
            rx.await
                .ok()
                .flatten()
                .unwrap_or_else(|| crate::classic_group::Described {
                    state: "Dead".into(),
                    ..Default::default()
                });
        let members = described
            .members
            .into_iter()
            .map(|(member_id, metadata, assignment)| {
                describe_groups_response::DescribedGroupMember::default()
                    .with_member_id(StrBytes::from_string(member_id))
                    .with_member_metadata(metadata)
                    .with_member_assignment(assignment)
            })
            .collect();
        groups.push(
            describe_groups_response::DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(StrBytes::from_string(described.state))
                .with_protocol_type(StrBytes::from_string(described.protocol_type))
                .with_protocol_data(StrBytes::from_string(described.protocol))
                .with_members(members),
        );
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteTopics, by name (a v6 request naming topics by id alone gets
/// UNKNOWN_TOPIC_ID for those).
async fn delete_topics(
    shard: &Rc<Shard>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let names: Vec<Option<TopicName>> = if version >= 6 {
        req.topics.into_iter().map(|t| t.name).collect()
    } else {
        req.topic_names.into_iter().map(Some).collect()
    };
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let (code, message) = match &name {
            None => (UNKNOWN_TOPIC_ID, "topics are deleted by name".to_string()),
            Some(n) => {
                let req = ringlog_protocol::DeleteTopicRequest {
                    name: n.0.to_string(),
                    force: false,
                };
                match ops::delete_topic(shard, req).await {
                    Ok(_) => (NONE, String::new()),
                    Err(f) => (kafka_error(f.code), f.message),
                }
            }
        };
        let mut r = delete_topics_response::DeletableTopicResult::default()
            .with_name(name)
            .with_error_code(code);
        if version >= 5 && code != NONE {
            r = r.with_error_message(Some(StrBytes::from_string(message)));
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Alters one resource's settings; the error code and message (`NONE` and
/// empty when done).
async fn alter_resource(
    shard: &Rc<Shard>,
    resource_type: i8,
    name: &str,
    changes: Result<Vec<(String, Option<String>)>, String>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    if resource_type != RESOURCE_TOPIC {
        return (
            INVALID_REQUEST,
            Some(StrBytes::from_static_str(
                "only topic settings can be altered: the broker's are set at its start",
            )),
        );
    }
    let outcome = match changes {
        Ok(changes) => ops::alter_topic(shard, name, &changes, validate_only)
            .await
            .map_err(|f| (kafka_error(f.code), f.message)),
        Err(message) => Err((INVALID_CONFIG, message)),
    };
    match outcome {
        Ok(_) => (NONE, None),
        Err((code, message)) => (code, Some(StrBytes::from_string(message))),
    }
}

/// AlterConfigs: a topic's alterable settings replaced as a whole.
async fn alter_configs(shard: &Rc<Shard>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let given = |key: &str| {
            r.configs.iter().any(|c| {
                c.name.as_str() == key
                    || (key == crate::catalog::SCHEMA_VALIDATION_KEY
                        && c.name.as_str() == crate::catalog::CONFLUENT_VALIDATION_KEY)
            })
        };
        // The whole set: a setting not given returns to its default, as
        // in Kafka.
        let mut changes: Vec<(String, Option<String>)> = crate::catalog::ALTERABLE
            .iter()
            .filter(|k| !given(k))
            .map(|k| (k.to_string(), None))
            .collect();
        changes.extend(
            r.configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
        );
        let (code, message) = alter_resource(
            shard,
            r.resource_type,
            &r.resource_name,
            Ok(changes),
            req.validate_only,
        )
        .await;
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs: SET and DELETE (back to the default) of a
/// topic's settings; APPEND and SUBTRACT of `cleanup.policy`'s list.
async fn incremental_alter_configs(
    shard: &Rc<Shard>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const APPEND: i8 = 2;
    const SUBTRACT: i8 = 3;
    let mut responses = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let current = shard.shared.topic(&r.resource_name);
        let changes = r
            .configs
            .iter()
            .map(|c| {
                let value = c.value.as_ref().map(|v| v.to_string());
                match (c.config_operation, c.name.as_str()) {
                    (SET, _) => Ok((c.name.to_string(), Some(value.unwrap_or_default()))),
                    (DELETE, _) => Ok((c.name.to_string(), None)),
                    (op @ (APPEND | SUBTRACT), "cleanup.policy") => {
                        let mut policies: Vec<String> = current
                            .as_ref()
                            .map(|t| {
                                t.config
                                    .cleanup_policy
                                    .split(',')
                                    .map(String::from)
                                    .collect()
                            })
                            .unwrap_or_default();
                        for v in value.unwrap_or_default().split(',').map(str::trim) {
                            policies.retain(|p| p != v);
                            if op == APPEND {
                                policies.push(v.to_string());
                            }
                        }
                        Ok((c.name.to_string(), Some(policies.join(","))))
                    }
                    (APPEND | SUBTRACT, name) => Err(format!(
                        "{name} is not a list: APPEND and SUBTRACT do not apply"
                    )),
                    (op, _) => Err(format!("config operation {op} is not one of 0..=3")),
                }
            })
            .collect();
        let (code, message) = alter_resource(
            shard,
            r.resource_type,
            &r.resource_name,
            changes,
            req.validate_only,
        )
        .await;
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// A setting as DescribeConfigs reports it: name, value, source.
type ConfigEntry = (&'static str, String, i8);

/// Kafka's UNKNOWN_TOPIC_ID.
const UNKNOWN_TOPIC_ID: i16 = 100;
/// DescribeConfigs resource types and config sources.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// DescribeConfigs: a topic's settings, each with its source (the
/// topic's own where it differs from the broker's default), and the
/// broker's topic defaults.
fn describe_configs(
    shard: &Shard,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let d = &shard.shared.config.topic_defaults;
    let defaults = [
        ("retention.ms", d.retention_ms.to_string()),
        ("retention.bytes", d.retention_bytes.to_string()),
        ("segment.bytes", d.segment_bytes.to_string()),
        ("cleanup.policy", crate::catalog::POLICY_DELETE.to_string()),
        (
            "delete.retention.ms",
            ringlog_engine::compact::DELETE_RETENTION_MS_DEFAULT.to_string(),
        ),
        (
            crate::catalog::SCHEMA_VALIDATION_KEY,
            ringlog_registry::validation::Validation::None
                .name()
                .to_string(),
        ),
        ("num.partitions", d.partitions.to_string()),
    ];
    let mut results = Vec::with_capacity(req.resources.len());
    for r in req.resources {
        let name = r.resource_name.to_string();
        let entries: Result<Vec<ConfigEntry>, (i16, String)> = match r.resource_type {
            RESOURCE_TOPIC => match shard.shared.topic(&name) {
                None => Err((
                    UNKNOWN_TOPIC_OR_PARTITION,
                    format!("unknown topic {name:?}"),
                )),
                Some(t) => {
                    let c = &t.config;
                    let own = [
                        ("retention.ms", c.retention_ms.to_string()),
                        ("retention.bytes", c.retention_bytes.to_string()),
                        ("segment.bytes", c.segment_bytes.to_string()),
                        ("cleanup.policy", c.cleanup_policy.clone()),
                        ("delete.retention.ms", c.delete_retention_ms.to_string()),
                        (
                            crate::catalog::SCHEMA_VALIDATION_KEY,
                            c.schema_validation.clone(),
                        ),
                    ];
                    Ok(own
                        .into_iter()
                        .map(|(k, v)| {
                            let default = defaults.iter().any(|(dk, dv)| *dk == k && *dv == v);
                            (
                                k,
                                v,
                                if default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_TOPIC
                                },
                            )
                        })
                        .collect())
                }
            },
            RESOURCE_BROKER => Ok(defaults
                .iter()
                .map(|(k, v)| (*k, v.clone(), SOURCE_STATIC_BROKER))
                .collect()),
            other => Err((
                INVALID_REQUEST,
                format!("resource type {other} is not described"),
            )),
        };
        let wanted = |k: &str| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
        };
        let mut result = describe_configs_response::DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        match entries {
            Ok(entries) => {
                let configs = entries
                    .into_iter()
                    .filter(|(k, ..)| wanted(k))
                    .map(|(k, v, source)| {
                        let mut c =
                            describe_configs_response::DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(k))
                                .with_value(Some(StrBytes::from_string(v)))
                                .with_config_source(source);
                        if version >= 3 {
                            // Kafka's ConfigType: LIST, STRING, else LONG.
                            c = c.with_config_type(match k {
                                "cleanup.policy" => 7,
                                crate::catalog::SCHEMA_VALIDATION_KEY => 2,
                                _ => 5,
                            });
                        }
                        c
                    })
                    .collect();
                result = result.with_configs(configs);
            }
            Err((code, message)) => {
                result = result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message)));
            }
        }
        results.push(result);
    }
    DescribeConfigsResponse::default().with_results(results)
}
