//! The broker's operations, the one house behind both front doors
//! ([`crate::native`] and [`crate::kafka`]): produce, fetch, list offsets,
//! topics, groups, producer ids. They run on the shard that read the
//! request; partition work is routed to the owning shard, everything else
//! reads the shared catalog. Requests and answers are `ringlog-protocol`'s
//! plain payload structs (the native front door only adds their framing).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringlog_engine::batch;
use ringlog_protocol::{
    BrokerMetadata, CommitOffsetsRequest, CommitOffsetsResponse, CommittedOffset,
    CreateTopicRequest, DeleteTopicRequest, ErrorCode, FetchOffsetsRequest, FetchOffsetsResponse,
    FetchRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    ListOffsetsResult, ListTopicsResponse, MetadataRequest, MetadataResponse, PartitionError,
    PartitionMetadata, TopicMetadata, TopicSummary,
};
use tokio::sync::{mpsc, oneshot};

use crate::catalog::{self, Refusal, Topic};
use crate::partition::{Answer, Failure, FetchOutcome, PartCmd, ProduceOutcome, Sendfile};
use crate::shard::{Shard, ShardMsg};
use ringlog_registry::validation::{self as schemas, Known, Validation};

/// Default durability wait when a produce names none.
pub const PRODUCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Checks that a topic and partition exist.
fn partition_exists(shard: &Shard, topic: &str, partition: u32) -> Result<Arc<Topic>, Failure> {
    let t = shard
        .shared
        .topic(topic)
        .ok_or_else(|| Failure::new(ErrorCode::UnknownTopic, format!("unknown topic {topic:?}")))?;
    if partition >= t.config.partitions {
        return Err(Failure::new(
            ErrorCode::UnknownPartition,
            format!(
                "topic {topic:?} has {} partitions, not {}",
                t.config.partitions,
                partition + 1
            ),
        ));
    }
    Ok(t)
}

/// Splits a section of concatenated batches into one buffer per batch,
/// sharing the frame's memory. Bytes that do not frame as a batch are kept
/// whole as the last piece, for the engine to refuse with a precise error.
fn split_batches(mut section: BytesMut, max: usize) -> Vec<BytesMut> {
    let mut out = Vec::new();
    while !section.is_empty() {
        match batch::peek(&section, max) {
            Ok((_, len)) if len <= section.len() => out.push(section.split_to(len)),
            _ => {
                out.push(section);
                break;
            }
        }
    }
    out
}

/// Queues one partition's batches (concatenated, as received) at its
/// task, in the order of the calls; the receiver gets the outcome.
pub async fn produce_partition(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    bytes: BytesMut,
    timeout: Duration,
    acks_all: bool,
) -> oneshot::Receiver<ProduceOutcome> {
    produce_partition_if(shard, topic, partition, bytes, timeout, acks_all, None).await
}

/// As [`produce_partition`], storing nothing unless the partition's log
/// ends at `if_end` (when given) as the batches reach it.
pub async fn produce_partition_if(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    bytes: BytesMut,
    timeout: Duration,
    acks_all: bool,
    if_end: Option<u64>,
) -> oneshot::Receiver<ProduceOutcome> {
    let (reply, rx) = oneshot::channel();
    let checked = partition_exists(shard, topic, partition).map(|t| {
        let batches = split_batches(bytes, t.log.batch_bytes_max);
        (t, batches)
    });
    let checked = match checked {
        Ok((t, batches)) if t.validation != Validation::None => {
            validate(shard, &t, &batches).await.map(|()| (t, batches))
        }
        other => other,
    };
    match checked {
        Ok((_, batches)) => {
            let cmd = PartCmd::Produce {
                batches,
                timeout,
                acks_all,
                if_end,
                reply,
            };
            shard.route(topic, partition, cmd).await;
        }
        Err(f) => {
            let _ = reply.send(ProduceOutcome {
                base_offsets: Vec::new(),
                failure: Some(f),
            });
        }
    }
    rx
}

/// The most a compressed batch's records may inflate to when they are
/// checked against the schema registry.
const VALIDATION_DECOMPRESSED_MAX: usize = 256 << 20;

/// Checks every record of `batches` against the schema registry as the
/// topic asks (`--schema-validation`): the value under `TOPIC-value`, the
/// key under `TOPIC-key` if that subject exists. An id the registry does not
/// know makes it read `_schemas` again once (it may be brand new).
async fn validate(shard: &Shard, t: &Topic, batches: &[BytesMut]) -> Result<(), Failure> {
    let known = &shard.shared.schemas;
    let refused = |why: String| {
        Failure::new(
            ErrorCode::InvalidRecord,
            format!(
                "topic {} validates records ({}): {why}; nothing of the batch was stored",
                t.name,
                t.validation.name()
            ),
        )
    };
    if !known.has_registry() {
        return Err(refused(
            "this broker runs no schema registry (--schema-registry-listen)".into(),
        ));
    }
    let subjects = (format!("{}-key", t.name), format!("{}-value", t.name));
    let mut refreshed = false;
    loop {
        match check_records(known, t.validation, &subjects, batches) {
            Ok(()) => return Ok(()),
            Err((_, schemas::Refusal::UnknownId { .. })) if !refreshed => {
                known.refresh().await;
                refreshed = true;
            }
            Err((at, schemas::Refusal::UnknownId { subject, id })) => {
                return Err(refused(format!(
                    "{at}: schema id {id} is not registered under subject {subject}"
                )))
            }
            Err((at, schemas::Refusal::Invalid(why))) => {
                return Err(refused(format!("{at}: {why}")))
            }
        }
    }
}

/// The first record that fails, with where it is.
fn check_records(
    known: &Known,
    how: Validation,
    (key_subject, value_subject): &(String, String),
    batches: &[BytesMut],
) -> Result<(), (String, schemas::Refusal)> {
    let check_keys = known.has_subject(key_subject);
    for (b, bytes) in batches.iter().enumerate() {
        // A batch that does not parse is refused by the append, with why.
        let Ok(view) = batch::BatchView::parse(bytes, usize::MAX) else {
            continue;
        };
        let invalid = |e: batch::BatchError| {
            (
                format!("batch {b}"),
                schemas::Refusal::Invalid(e.to_string()),
            )
        };
        let plain =
            ringlog_format::compression::decompressed_batch(&view, VALIDATION_DECOMPRESSED_MAX)
                .map_err(invalid)?;
        let view = batch::BatchView::parse_crc_checked(&plain, usize::MAX).map_err(invalid)?;
        let records = view.records().map_err(invalid)?;
        for (i, record) in records.enumerate() {
            let at = || format!("batch {b} record {i}");
            let record = record.map_err(|e| (at(), schemas::Refusal::Invalid(e.to_string())))?;
            known
                .check(value_subject, record.value, how)
                .map_err(|r| (format!("{} (value)", at()), r))?;
            if check_keys {
                known
                    .check(key_subject, record.key, how)
                    .map_err(|r| (format!("{} (key)", at()), r))?;
            }
        }
    }
    Ok(())
}

/// A conditional produce (native API `ProduceIf`): acknowledged as
/// `acks=all`, refused with `end_offset_moved` if the log moved.
pub async fn produce_if(
    shard: &Rc<Shard>,
    req: ringlog_protocol::ProduceIfRequest,
) -> Result<ringlog_protocol::ProduceIfResponse, Failure> {
    let timeout = match req.timeout_ms {
        0 => PRODUCE_TIMEOUT_DEFAULT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let bytes = BytesMut::from(&req.records[..]);
    let rx = produce_partition_if(
        shard,
        &req.topic,
        req.partition,
        bytes,
        timeout,
        true,
        Some(req.expected_end),
    )
    .await;
    match rx.await {
        Ok(ProduceOutcome {
            failure: None,
            base_offsets,
        }) => Ok(ringlog_protocol::ProduceIfResponse { base_offsets }),
        Ok(ProduceOutcome {
            failure: Some(f), ..
        }) => Err(f),
        Err(_) => Err(Failure::new(
            ErrorCode::ShuttingDown,
            "the partition stopped",
        )),
    }
}

/// Reads every partition of a fetch (on its shard), waiting as the
/// request asks (`min_bytes`, `max_wait_ms`); with `sendfile`, large
/// answers may be left in their segment files.
pub async fn fetch_outcomes(
    shard: &Rc<Shard>,
    req: &FetchRequest,
    sendfile: bool,
) -> Vec<FetchOutcome> {
    let deadline = Instant::now() + Duration::from_millis(u64::from(req.max_wait_ms));
    let mut shutdown = shard.shutdown.clone();
    loop {
        let outcomes = fetch_once(shard, req, sendfile).await;
        let total: usize = outcomes
            .iter()
            .map(|o| o.result.as_ref().map_or(0, Answer::len))
            .sum();
        let any_error = outcomes.iter().any(|o| o.result.is_err());
        if total >= req.min_bytes as usize
            || any_error
            || Instant::now() >= deadline
            || *shutdown.borrow()
        {
            return outcomes;
        }
        // Ask each partition to signal when it has data at our offset.
        let (tx, mut rx) = mpsc::channel::<()>(req.partitions.len().max(1));
        let mut cancels = Vec::new();
        for p in &req.partitions {
            let (reply, fired) = oneshot::channel();
            shard
                .route(
                    &p.topic,
                    p.partition,
                    PartCmd::Wait {
                        offset: p.offset,
                        reply,
                    },
                )
                .await;
            let tx = tx.clone();
            let (cancel, cancelled) = oneshot::channel::<()>();
            cancels.push(cancel);
            tokio_uring::spawn(async move {
                tokio::select! {
                    Ok(()) = fired => { let _ = tx.send(()).await; }
                    _ = cancelled => {}
                }
            });
        }
        drop(tx);
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            _ = tokio::time::timeout(remaining, rx.recv()) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        }
        // Dropping the cancels drops the waits, which the partitions notice.
        drop(cancels);
    }
}

async fn fetch_once(shard: &Rc<Shard>, req: &FetchRequest, sendfile: bool) -> Vec<FetchOutcome> {
    let min_bytes = match sendfile {
        true => shard.shared.config.sendfile_min_bytes,
        false => u32::MAX,
    };
    let mut waits = Vec::with_capacity(req.partitions.len());
    for p in &req.partitions {
        let (reply, rx) = oneshot::channel();
        let max_bytes = p.max_bytes.min(req.max_bytes).max(1);
        // sendfile only where it is on (u32::MAX: never), the answer can
        // reach the threshold, and the descriptor budget has one left.
        let sendfile = if min_bytes != u32::MAX && max_bytes >= min_bytes {
            let permit = shard.shared.sendfile_files.clone().try_acquire_owned().ok();
            permit.map(|permit| Sendfile {
                min_bytes: min_bytes as usize,
                permit,
            })
        } else {
            None
        };
        match partition_exists(shard, &p.topic, p.partition) {
            Ok(_) => {
                let cmd = PartCmd::Fetch {
                    offset: p.offset,
                    max_bytes: max_bytes as usize,
                    sendfile,
                    reply,
                };
                shard.route(&p.topic, p.partition, cmd).await;
            }
            Err(f) => {
                let _ = reply.send(FetchOutcome {
                    result: Err(f),
                    log_start: 0,
                    log_end: 0,
                });
            }
        }
        waits.push(rx);
    }
    let mut out = Vec::with_capacity(waits.len());
    for rx in waits {
        out.push(rx.await.unwrap_or_else(|_| FetchOutcome {
            result: Err(Failure::new(
                ErrorCode::ShuttingDown,
                "the partition stopped",
            )),
            log_start: 0,
            log_end: 0,
        }));
    }
    out
}

/// The response limit: the first partition's data always goes (it holds
/// at least one whole batch); a later one only if it fits in what is left
/// of `max_bytes`, else it answers with no data.
pub fn fit_fetch_budget(outcomes: &mut [FetchOutcome], max_bytes: usize) {
    let mut budget = max_bytes;
    for (i, outcome) in outcomes.iter_mut().enumerate() {
        let len = outcome.result.as_ref().map_or(0, Answer::len);
        if i > 0 && len > budget {
            outcome.result = Ok(Answer::Read(Vec::new()));
        } else {
            budget = budget.saturating_sub(len);
        }
    }
}

/// List offsets: earliest, latest or by timestamp, per partition.
pub async fn list_offsets(
    shard: &Rc<Shard>,
    req: ListOffsetsRequest,
) -> Result<ListOffsetsResponse, Failure> {
    let mut waits = Vec::new();
    for p in req.partitions {
        let (reply, rx) = oneshot::channel();
        match partition_exists(shard, &p.topic, p.partition) {
            Ok(_) => {
                shard
                    .route(
                        &p.topic,
                        p.partition,
                        PartCmd::ListOffset {
                            spec: p.spec,
                            reply,
                        },
                    )
                    .await
            }
            Err(f) => {
                let _ = reply.send(Err(f));
            }
        }
        waits.push((p.topic, p.partition, rx));
    }
    let mut partitions = Vec::new();
    for (topic, partition, rx) in waits {
        let answer = rx.await.unwrap_or_else(|_| {
            Err(Failure::new(
                ErrorCode::ShuttingDown,
                "the partition stopped",
            ))
        });
        let (error, offset) = match answer {
            Ok(offset) => (ErrorCode::None, offset),
            Err(f) => (f.code, -1),
        };
        partitions.push(ListOffsetsResult {
            topic,
            partition,
            error: error as u16,
            offset,
        });
    }
    Ok(ListOffsetsResponse { partitions })
}

async fn topic_metadata(shard: &Rc<Shard>, topic: &Topic) -> TopicMetadata {
    let mut waits = Vec::new();
    for p in 0..topic.config.partitions {
        let (reply, rx) = oneshot::channel();
        shard
            .route(&topic.name, p, PartCmd::Offsets { reply })
            .await;
        waits.push((p, rx));
    }
    let view = shard.shared.cluster.as_ref().map(|c| c.view());
    let mut partitions = Vec::new();
    for (p, rx) in waits {
        let (log_start, log_end) = rx.await.unwrap_or((0, 0));
        let leader = match &view {
            // Cluster mode: the controller's leader (u32::MAX for none,
            // or before the controller placed the partition).
            Some(v) => v
                .state
                .partitions
                .get(&ringlog_cluster::TopicPartition::new(topic.name.clone(), p))
                .and_then(|s| s.leader)
                .unwrap_or(u32::MAX),
            None => 0,
        };
        partitions.push(PartitionMetadata {
            partition: p,
            leader,
            shard: shard.owner(&topic.name, p) as u32,
            log_start,
            log_end,
        });
    }
    TopicMetadata {
        name: topic.name.clone(),
        config: topic.config.clone(),
        partitions,
    }
}

/// Metadata: this broker, and the asked topics with their partitions.
pub async fn metadata(
    shard: &Rc<Shard>,
    req: MetadataRequest,
) -> Result<MetadataResponse, Failure> {
    let topics: Vec<Arc<Topic>> = match req.topics {
        None => shard.shared.topics(),
        Some(names) => names
            .iter()
            .map(|n| {
                shard.shared.topic(n).ok_or_else(|| {
                    Failure::new(ErrorCode::UnknownTopic, format!("unknown topic {n:?}"))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut out = Vec::with_capacity(topics.len());
    for t in topics {
        out.push(topic_metadata(shard, &t).await);
    }
    Ok(MetadataResponse {
        cluster_id: shard.shared.cluster_id.clone(),
        brokers: brokers(shard),
        topics: out,
    })
}

/// The brokers clients may reach: this one alone, or every registered
/// broker of the cluster.
fn brokers(shard: &Shard) -> Vec<BrokerMetadata> {
    let shards = shard.shared.config.shards as u32;
    let listen = shard.shared.listen;
    let me = |id| BrokerMetadata {
        id,
        host: listen.ip().to_string(),
        port: listen.port(),
        shards,
    };
    let Some(cluster) = &shard.shared.cluster else {
        return vec![me(0)];
    };
    let view = cluster.view();
    let mut out: Vec<BrokerMetadata> = view
        .state
        .brokers
        .iter()
        .filter(|(id, _)| **id != view.node_id)
        .filter_map(|(id, b)| {
            let addr: std::net::SocketAddr = b.address.parse().ok()?;
            Some(BrokerMetadata {
                id: *id,
                host: addr.ip().to_string(),
                port: addr.port(),
                shards,
            })
        })
        .collect();
    out.push(me(view.node_id));
    out.sort_by_key(|b| b.id);
    out
}

fn refusal(r: Refusal) -> Failure {
    Failure::new(r.0, r.1)
}

/// Has every shard open its partitions of `topic` (those not open yet);
/// the first failure, if any.
async fn open_everywhere(shard: &Rc<Shard>, topic: &Arc<Topic>) -> Option<Failure> {
    let opened = shard
        .broadcast(|reply| ShardMsg::Open {
            topic: topic.clone(),
            reply,
        })
        .await;
    opened.into_iter().find_map(|result| match result {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(Failure::new(ErrorCode::StorageError, e)),
        None => Some(Failure::new(ErrorCode::ShuttingDown, "a shard stopped")),
    })
}

/// Create topic: persisted in the catalog, then every shard opens its
/// partitions; answers with the new topic's metadata.
pub async fn create_topic(
    shard: &Rc<Shard>,
    req: CreateTopicRequest,
) -> Result<MetadataResponse, Failure> {
    let topic = Topic::from_request(&req, &shard.shared.config.topic_defaults).map_err(refusal)?;
    if let Some(node) = &shard.shared.cluster {
        create_replicated_topic(shard, node, &req, &topic).await?;
        return metadata(
            shard,
            MetadataRequest {
                topics: Some(vec![topic.name.clone()]),
            },
        )
        .await;
    }
    let topic = shard
        .shared
        .catalog
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .create(topic)
        .map_err(refusal)?;
    if let Some(failure) = open_everywhere(shard, &topic).await {
        // All or nothing: a topic that could not be opened on every shard is
        // taken out of the catalog and off the disk again.
        let _ = shard
            .shared
            .catalog
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&topic.name);
        shard
            .broadcast(|reply| ShardMsg::Drop {
                topic: topic.clone(),
                reply,
            })
            .await;
        tracing::warn!(topic = %topic.name, "topic creation failed and was undone: {}", failure.message);
        return Err(failure);
    }
    tracing::info!(topic = %topic.name, partitions = topic.config.partitions, fsync = %topic.config.fsync, "topic created");
    metadata(
        shard,
        MetadataRequest {
            topics: Some(vec![topic.name.clone()]),
        },
    )
    .await
}

/// Raises a topic's partition count: persisted in the catalog, then every
/// shard opens the partitions it owns of the new ones. `validate_only`
/// checks without changing anything (Kafka's CreatePartitions flag).
pub async fn add_partitions(
    shard: &Rc<Shard>,
    name: &str,
    count: u32,
    validate_only: bool,
) -> Result<(), Failure> {
    if shard.shared.cluster.is_some() {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            "adding partitions to a replicated topic is not supported yet",
        ));
    }
    if validate_only {
        return shard
            .shared
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .with_partitions(name, count)
            .map(|_| ())
            .map_err(refusal);
    }
    let topic = shard
        .shared
        .catalog
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .add_partitions(name, count)
        .map_err(refusal)?;
    // A shard that could not open its new partitions leaves them to the
    // next start (the catalog already holds the new count): say so.
    if let Some(failure) = open_everywhere(shard, &topic).await {
        tracing::warn!(topic = %name, count, "new partitions did not all open: {}", failure.message);
        return Err(failure);
    }
    tracing::info!(topic = %name, partitions = count, "partitions added");
    Ok(())
}

/// Changes a topic's settings (Kafka names; `None` restores the broker's
/// default): persisted in the catalog, then applied by every shard to its
/// open partitions. Produce-time checks (keyless records on a compacted
/// topic, schema validation) read the catalog and apply at once.
/// `validate_only` checks without changing anything.
pub async fn alter_topic(
    shard: &Rc<Shard>,
    name: &str,
    changes: &[(String, Option<String>)],
    validate_only: bool,
) -> Result<Arc<Topic>, Failure> {
    if shard.shared.cluster.is_some() {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            "altering a replicated topic's settings is not supported yet",
        ));
    }
    let defaults = &shard.shared.config.topic_defaults;
    let settings = changes
        .iter()
        .map(|(key, value)| match value {
            Some(v) => crate::catalog::Setting::parse(key, v),
            None => crate::catalog::Setting::default_of(key, defaults),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(refusal)?;
    let topic = shard
        .shared
        .catalog
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .alter(name, settings, validate_only)
        .map_err(refusal)?;
    if !validate_only {
        shard
            .broadcast(|reply| ShardMsg::Reconfigure {
                topic: topic.clone(),
                reply,
            })
            .await;
        tracing::info!(topic = %name, "topic settings altered: {}", topic.to_text().replace('\n', " "));
    }
    Ok(topic)
}

/// How long a topic the controller created may take to open here.
const REPLICAS_OPEN_WITHIN: Duration = Duration::from_secs(10);

/// Cluster mode: places the replicas (partition `p` on the live brokers
/// from the `p`-th on, so leaderships spread) and has the controller create
/// the topic; every broker holding a replica then creates it locally.
/// Returns once this broker has it in its catalog.
async fn create_replicated_topic(
    shard: &Rc<Shard>,
    node: &crate::cluster::agent::ClusterNode,
    req: &CreateTopicRequest,
    topic: &Topic,
) -> Result<(), Failure> {
    submit_topic(node, topic, req.replication_factor, req.min_insync_replicas).await?;
    let deadline = Instant::now() + REPLICAS_OPEN_WITHIN;
    while shard.shared.topic(&topic.name).is_none() {
        if Instant::now() > deadline {
            return Err(Failure::new(
                ErrorCode::Timeout,
                "the controller created the topic, but it did not open here in time",
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Places a replicated topic's partitions on the live brokers (partition
/// p's replicas from the p-th broker on, so preferred leaders spread) and
/// has the controller create it; the replication factor defaults to
/// min(3, live brokers), `min.insync.replicas` to min(2, RF).
pub async fn submit_topic(
    node: &crate::cluster::agent::ClusterNode,
    topic: &Topic,
    replication_factor: Option<u32>,
    min_insync_replicas: Option<u32>,
) -> Result<(), Failure> {
    use ringlog_cluster::controller::{Command, CommandError};
    let view = node.view();
    let live: Vec<u32> = view
        .state
        .brokers
        .iter()
        .filter(|(_, b)| !b.fenced)
        .map(|(id, _)| *id)
        .collect();
    let rf = replication_factor.unwrap_or_else(|| (live.len() as u32).min(3)) as usize;
    if rf == 0 || rf > live.len() {
        return Err(Failure::new(
            ErrorCode::InvalidTopicConfig,
            format!(
                "replication factor {rf} needs as many live brokers; {} are live",
                live.len()
            ),
        ));
    }
    let min_insync = min_insync_replicas.unwrap_or_else(|| (rf as u32).min(2)) as usize;
    if min_insync == 0 || min_insync > rf {
        return Err(Failure::new(
            ErrorCode::InvalidTopicConfig,
            format!(
                "min.insync.replicas {min_insync} must be in 1..={rf} (the replication factor)"
            ),
        ));
    }
    let assignments = (0..topic.config.partitions as usize)
        .map(|p| (0..rf).map(|i| live[(p + i) % live.len()]).collect())
        .collect();
    let command = Command::CreateTopic {
        topic: topic.name.clone(),
        assignments,
        min_insync,
        config: topic.to_text(),
    };
    match node.submit(command).await {
        Ok(reply) => match reply.0 {
            Ok(_) => {}
            Err(CommandError::TopicExists) => {
                return Err(Failure::new(
                    ErrorCode::TopicExists,
                    format!("topic {:?} already exists", topic.name),
                ))
            }
            Err(e) => {
                return Err(Failure::new(
                    ErrorCode::InvalidTopicConfig,
                    format!("the controller refused the topic: {e:?}"),
                ))
            }
        },
        Err(e) => return Err(Failure::new(ErrorCode::Timeout, format!("{e:#}"))),
    }
    tracing::info!(topic = %topic.name, partitions = topic.config.partitions, rf, min_insync, "replicated topic created");
    Ok(())
}

/// Delete topic: gone from the catalog first (no new requests reach it),
/// then every shard closes and deletes its partitions.
pub async fn delete_topic(
    shard: &Rc<Shard>,
    req: DeleteTopicRequest,
) -> Result<ListTopicsResponse, Failure> {
    if shard.shared.cluster.is_some() {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            "deleting a topic in cluster mode is not supported yet (its replicas live on other brokers)",
        ));
    }
    if req.name == ringlog_registry::store::SCHEMAS_TOPIC && !req.force {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!(
                "{} holds every schema of the schema registry: deleting it loses them all; \
                 delete it with force (ringlog topic delete --force) if that is meant",
                req.name
            ),
        ));
    }
    let topic = shard
        .shared
        .catalog
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&req.name)
        .map_err(refusal)?;
    shard
        .broadcast(|reply| ShardMsg::Drop {
            topic: topic.clone(),
            reply,
        })
        .await;
    tracing::info!(topic = %topic.name, "topic deleted");
    Ok(list_topics(shard))
}

/// List topics, sorted by name.
pub fn list_topics(shard: &Shard) -> ListTopicsResponse {
    let catalog = shard
        .shared
        .catalog
        .read()
        .unwrap_or_else(|e| e.into_inner());
    ListTopicsResponse {
        topics: catalog
            .all()
            .map(|t| TopicSummary {
                name: t.name.clone(),
                partitions: t.config.partitions,
            })
            .collect(),
    }
}

/// Commit offsets: stored durably in the group's offsets partition.
pub async fn commit_offsets(
    shard: &Rc<Shard>,
    req: CommitOffsetsRequest,
) -> Result<CommitOffsetsResponse, Failure> {
    if req.group.is_empty() || req.group.len() > u16::MAX as usize {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            "group name must be 1 to 65535 bytes",
        ));
    }
    let mut results = Vec::with_capacity(req.offsets.len());
    let mut valid = Vec::new();
    for c in req.offsets {
        let error = match partition_exists(shard, &c.topic, c.partition) {
            Ok(_) if c.metadata.len() > ringlog_protocol::COMMIT_METADATA_MAX => {
                ErrorCode::OffsetMetadataTooLarge
            }
            Ok(_) => {
                valid.push(c.clone());
                ErrorCode::None
            }
            Err(f) => f.code,
        };
        results.push(PartitionError {
            topic: c.topic,
            partition: c.partition,
            error: error as u16,
        });
    }
    if !valid.is_empty() {
        let (reply, rx) = oneshot::channel();
        let p = catalog::offsets_partition(&req.group);
        shard
            .route(
                catalog::OFFSETS_TOPIC,
                p,
                PartCmd::Commit {
                    group: req.group,
                    member_id: req.member_id,
                    generation: req.generation,
                    offsets: valid,
                    reply,
                },
            )
            .await;
        let outcome = rx
            .await
            .unwrap_or_else(|_| Err(Failure::new(ErrorCode::ShuttingDown, "stopped")));
        if let Err(f) = outcome {
            // The coordinator moved: the whole request goes to the next.
            if f.code == ErrorCode::NotLeader {
                return Err(f);
            }
            for r in results.iter_mut().filter(|r| r.error == 0) {
                r.error = f.code as u16;
            }
        }
    }
    Ok(CommitOffsetsResponse { results })
}

/// Fetch committed offsets (-1 where none).
pub async fn fetch_offsets(
    shard: &Rc<Shard>,
    req: FetchOffsetsRequest,
) -> Result<FetchOffsetsResponse, Failure> {
    let (reply, rx) = oneshot::channel();
    let p = catalog::offsets_partition(&req.group);
    let cmd = PartCmd::Committed {
        group: req.group,
        partitions: req.partitions.clone(),
        reply,
    };
    shard.route(catalog::OFFSETS_TOPIC, p, cmd).await;
    let found = rx
        .await
        .unwrap_or_else(|_| Err(Failure::new(ErrorCode::ShuttingDown, "stopped")))?;
    let offsets = req
        .partitions
        .into_iter()
        .zip(found)
        .map(|(tp, (offset, metadata))| {
            let error = partition_exists(shard, &tp.topic, tp.partition)
                .err()
                .map_or(ErrorCode::None, |f| f.code);
            CommittedOffset {
                topic: tp.topic,
                partition: tp.partition,
                offset,
                metadata,
                error: error as u16,
            }
        })
        .collect();
    Ok(FetchOffsetsResponse { offsets })
}

/// A fresh producer id.
pub fn init_producer_id(shard: &Shard) -> Result<InitProducerIdResponse, Failure> {
    Ok(InitProducerIdResponse {
        producer_id: shard.shared.next_producer_id()?,
        producer_epoch: 0,
    })
}

/// Group heartbeat: answered by the group's coordinator (the task of its
/// offsets partition), given every topic's partition count.
pub async fn group_heartbeat(
    shard: &Rc<Shard>,
    req: ringlog_protocol::GroupHeartbeatRequest,
) -> Result<ringlog_protocol::GroupHeartbeatResponse, Failure> {
    if req.group.is_empty() || req.group.len() > u16::MAX as usize {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            "group name must be 1 to 65535 bytes",
        ));
    }
    let partitions = shard
        .shared
        .topics()
        .iter()
        .map(|t| (t.name.clone(), t.config.partitions))
        .collect();
    let p = catalog::offsets_partition(&req.group);
    let (reply, rx) = oneshot::channel();
    shard
        .route(
            catalog::OFFSETS_TOPIC,
            p,
            PartCmd::GroupHeartbeat {
                req,
                partitions,
                reply,
            },
        )
        .await;
    rx.await
        .unwrap_or_else(|_| Err(Failure::new(ErrorCode::ShuttingDown, "stopped")))
}

/// A Kafka classic-group request, to the group's coordinator (the task
/// of its offsets partition).
pub async fn kafka_group(shard: &Rc<Shard>, group: String, op: crate::partition::ClassicOp) {
    let p = catalog::offsets_partition(&group);
    shard
        .route(catalog::OFFSETS_TOPIC, p, PartCmd::KafkaGroup { group, op })
        .await;
}

/// Every group of every coordinator, sorted.
pub async fn list_groups(
    shard: &Rc<Shard>,
) -> Result<ringlog_protocol::ListGroupsResponse, Failure> {
    let mut groups = Vec::new();
    for p in 0..catalog::OFFSETS_PARTITIONS {
        let (reply, rx) = oneshot::channel();
        shard
            .route(catalog::OFFSETS_TOPIC, p, PartCmd::ListGroups { reply })
            .await;
        groups.extend(rx.await.unwrap_or_default());
    }
    groups.sort();
    Ok(ringlog_protocol::ListGroupsResponse { groups })
}

/// A group's members, assignments and committed offsets.
pub async fn describe_group(
    shard: &Rc<Shard>,
    req: ringlog_protocol::DescribeGroupRequest,
) -> Result<ringlog_protocol::DescribeGroupResponse, Failure> {
    let p = catalog::offsets_partition(&req.group);
    let (reply, rx) = oneshot::channel();
    shard
        .route(
            catalog::OFFSETS_TOPIC,
            p,
            PartCmd::DescribeGroup {
                group: req.group,
                reply,
            },
        )
        .await;
    rx.await
        .unwrap_or_else(|_| Err(Failure::new(ErrorCode::ShuttingDown, "stopped")))
}

/// Cluster mode's brokers, controller and replica placement, as this broker
/// knows them.
pub async fn describe_cluster(shard: &Rc<Shard>) -> ringlog_protocol::DescribeClusterResponse {
    let Some(cluster) = &shard.shared.cluster else {
        return ringlog_protocol::DescribeClusterResponse {
            cluster_mode: false,
            node_id: 0,
            controller: None,
            brokers: Vec::new(),
            partitions: Vec::new(),
        };
    };
    let view = cluster.view();
    // The high watermark of each partition this broker leads (the others'
    // leaders know theirs).
    let mut high_watermarks = std::collections::HashMap::new();
    for (tp, p) in &view.state.partitions {
        if p.leader == Some(view.node_id) {
            let (reply, rx) = oneshot::channel();
            shard
                .route(&tp.topic, tp.partition, PartCmd::Offsets { reply })
                .await;
            if let Ok((_, hw)) = rx.await {
                high_watermarks.insert(tp.clone(), hw);
            }
        }
    }
    ringlog_protocol::DescribeClusterResponse {
        cluster_mode: true,
        node_id: view.node_id,
        controller: view.controller,
        brokers: view
            .state
            .brokers
            .iter()
            .map(|(id, b)| ringlog_protocol::ClusterBroker {
                id: *id,
                address: b.address.clone(),
                epoch: b.epoch,
                fenced: b.fenced,
            })
            .collect(),
        partitions: view
            .state
            .partitions
            .iter()
            .map(|(tp, p)| ringlog_protocol::ClusterPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                high_watermark: high_watermarks.get(tp).copied(),
            })
            .collect(),
    }
}

/// Cluster mode: `__consumer_offsets` is a replicated topic like any
/// other, with RF = min(3, brokers). The controller's broker creates it
/// once that many brokers are live (until then, group requests get a
/// retriable `not_leader`).
pub async fn create_offsets_topic(shard: Rc<Shard>, node: Arc<crate::cluster::agent::ClusterNode>) {
    let me = node.config().node_id;
    let needed = node.config().peers.len().min(3);
    let mut shutdown = shard.shutdown.clone();
    loop {
        let view = node.view();
        if view.state.topics.contains_key(catalog::OFFSETS_TOPIC) {
            return;
        }
        let live = view.state.brokers.values().filter(|b| !b.fenced).count();
        if view.controller == Some(me) && live >= needed {
            let topic = Topic::offsets(shard.shared.config.offsets_segment_bytes);
            let rf = Some(needed as u32);
            match submit_topic(&node, &topic, rf, None).await {
                Ok(()) => return,
                Err(f) if f.code == ErrorCode::TopicExists => return,
                Err(f) => tracing::debug!("creating {}: {}", catalog::OFFSETS_TOPIC, f.message),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
