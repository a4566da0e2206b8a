//! Request decoding for the APIs served, bounds-checked before any
//! allocation: an array's element count is refused when the bytes left
//! cannot hold that many elements (each takes at least one byte), and
//! record data is a slice of the frame, never copied.
//!
//! Why not `kafka-protocol`'s own decoders: in 0.18 they size every array
//! with `Vec::with_capacity` straight from the count on the wire, so a
//! 36-byte Produce frame asks for hundreds of gigabytes and the process
//! aborts (found by `fuzz/fuzz_targets/kafka_decode.rs`; the fixes, e.g.
//! kafka-protocol-rs PRs 152, 161 and 200, are not released). The decoded
//! values are still that crate's request types, and responses are still
//! encoded by it (their sizes come from the broker, not the wire).

use anyhow::{bail, ensure, Context};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    alter_configs_request, create_partitions_request, create_topics_request, delete_topics_request,
    describe_configs_request, fetch_request, incremental_alter_configs_request, join_group_request,
    leave_group_request, list_offsets_request, metadata_request, offset_commit_request,
    offset_fetch_request, produce_request, sync_group_request, AlterConfigsRequest, ApiKey,
    ApiVersionsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    FetchRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetFetchRequest, ProduceRequest, ProducerId, RequestHeader, RequestKind, SyncGroupRequest,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

/// A cursor over a request frame.
struct Reader {
    buf: BytesMut,
    /// Compact strings and arrays, and tagged fields (a flexible version).
    flexible: bool,
}

impl Reader {
    fn need(&self, n: usize) -> anyhow::Result<()> {
        ensure!(
            self.buf.remaining() >= n,
            "the request ends {} bytes early",
            n - self.buf.remaining()
        );
        Ok(())
    }

    fn i8(&mut self) -> anyhow::Result<i8> {
        self.need(1)?;
        Ok(self.buf.get_i8())
    }

    fn bool(&mut self) -> anyhow::Result<bool> {
        Ok(self.i8()? != 0)
    }

    fn i16(&mut self) -> anyhow::Result<i16> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }

    fn i32(&mut self) -> anyhow::Result<i32> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    fn i64(&mut self) -> anyhow::Result<i64> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    fn uuid(&mut self) -> anyhow::Result<uuid::Uuid> {
        self.need(16)?;
        let mut b = [0u8; 16];
        self.buf.copy_to_slice(&mut b);
        Ok(uuid::Uuid::from_bytes(b))
    }

    /// An unsigned varint of at most 5 bytes (a u32).
    fn uvarint(&mut self) -> anyhow::Result<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = self.i8()? as u8;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        bail!("a varint longer than 5 bytes")
    }

    /// A length that may be null: compact (varint, 0 = null) or i16/i32.
    fn length(&mut self, wide: bool) -> anyhow::Result<Option<usize>> {
        let n: i64 = if self.flexible {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => bail!("a negative length {n}"),
            n => {
                let n = n as usize;
                self.need(n)?;
                Ok(Some(n))
            }
        }
    }

    fn take(&mut self, n: usize) -> Bytes {
        self.buf.split_to(n).freeze()
    }

    fn nullable_string(&mut self) -> anyhow::Result<Option<StrBytes>> {
        match self.length(false)? {
            None => Ok(None),
            Some(n) => {
                let bytes = self.take(n);
                Ok(Some(
                    StrBytes::from_utf8(bytes).context("a string that is not UTF-8")?,
                ))
            }
        }
    }

    fn string(&mut self) -> anyhow::Result<StrBytes> {
        self.nullable_string()?
            .context("a null string where one is required")
    }

    /// The header's client id: an i16-length string even in flexible
    /// versions.
    fn client_id(&mut self) -> anyhow::Result<Option<StrBytes>> {
        let flexible = std::mem::replace(&mut self.flexible, false);
        let id = self.nullable_string();
        self.flexible = flexible;
        id
    }

    fn nullable_bytes(&mut self) -> anyhow::Result<Option<Bytes>> {
        Ok(self.length(true)?.map(|n| self.take(n)))
    }

    /// Bytes cut out of the frame as they are, still writable (a produced
    /// partition's records, which the log stamps in place).
    fn nullable_bytes_mut(&mut self) -> anyhow::Result<Option<BytesMut>> {
        Ok(self.length(true)?.map(|n| self.buf.split_to(n)))
    }

    fn bytes(&mut self) -> anyhow::Result<Bytes> {
        self.nullable_bytes()?
            .context("null bytes where they are required")
    }

    /// An array that may be null; each element is at least one byte, so a
    /// count past the bytes left is refused before anything is allocated.
    fn nullable_array<T>(
        &mut self,
        mut element: impl FnMut(&mut Reader) -> anyhow::Result<T>,
    ) -> anyhow::Result<Option<Vec<T>>> {
        let Some(n) = self.length(true)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            out.push(element(self)?);
        }
        Ok(Some(out))
    }

    fn array<T>(
        &mut self,
        element: impl FnMut(&mut Reader) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        self.nullable_array(element)?
            .context("a null array where one is required")
    }

    /// Skips the tagged fields of a flexible version (none are used).
    fn tagged_fields(&mut self) -> anyhow::Result<()> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.need(size)?;
            self.buf.advance(size);
        }
        Ok(())
    }
}

/// Decodes a request's header and body (`api` at `version`, which the
/// caller checked is served). A Produce's records come apart, in request
/// order, as slices of the frame (its body's `records` fields are left
/// empty: `Some` of nothing where records were sent, `None` where null).
pub fn request(
    frame: BytesMut,
    api: ApiKey,
    version: i16,
) -> anyhow::Result<(RequestHeader, RequestKind, Vec<Option<BytesMut>>)> {
    let mut records = Vec::new();
    let header_version = api.request_header_version(version);
    let mut r = Reader {
        buf: frame,
        flexible: header_version >= 2,
    };
    let header = RequestHeader::default()
        .with_request_api_key(r.i16()?)
        .with_request_api_version(r.i16()?)
        .with_correlation_id(r.i32()?)
        .with_client_id(r.client_id()?);
    r.tagged_fields()?;
    let v = version;
    let body = match api {
        ApiKey::ApiVersions => {
            let mut req = ApiVersionsRequest::default();
            if v >= 3 {
                req = req
                    .with_client_software_name(r.string()?)
                    .with_client_software_version(r.string()?);
            }
            r.tagged_fields()?;
            RequestKind::ApiVersions(req)
        }
        ApiKey::Metadata => {
            let topics = r.nullable_array(|r| {
                let mut t = metadata_request::MetadataRequestTopic::default();
                if v >= 10 {
                    t = t.with_topic_id(r.uuid()?);
                }
                let name = if v >= 10 {
                    r.nullable_string()?
                } else {
                    Some(r.string()?)
                };
                r.tagged_fields()?;
                Ok(t.with_name(name.map(TopicName)))
            })?;
            let mut req = MetadataRequest::default().with_topics(topics);
            if v >= 4 {
                req = req.with_allow_auto_topic_creation(r.bool()?);
            }
            if (8..=10).contains(&v) {
                req = req.with_include_cluster_authorized_operations(r.bool()?);
            }
            if v >= 8 {
                req = req.with_include_topic_authorized_operations(r.bool()?);
            }
            r.tagged_fields()?;
            RequestKind::Metadata(req)
        }
        ApiKey::Produce => {
            let transactional_id = r.nullable_string()?.map(TransactionalId);
            let acks = r.i16()?;
            let timeout_ms = r.i32()?;
            let topic_data = r.array(|r| {
                let name = TopicName(r.string()?);
                let partition_data = r.array(|r| {
                    let index = r.i32()?;
                    let bytes = r.nullable_bytes_mut()?;
                    let sent = bytes.as_ref().map(|_| Bytes::new());
                    records.push(bytes);
                    r.tagged_fields()?;
                    Ok(produce_request::PartitionProduceData::default()
                        .with_index(index)
                        .with_records(sent))
                })?;
                r.tagged_fields()?;
                Ok(produce_request::TopicProduceData::default()
                    .with_name(name)
                    .with_partition_data(partition_data))
            })?;
            r.tagged_fields()?;
            RequestKind::Produce(
                ProduceRequest::default()
                    .with_transactional_id(transactional_id)
                    .with_acks(acks)
                    .with_timeout_ms(timeout_ms)
                    .with_topic_data(topic_data),
            )
        }
        ApiKey::Fetch => {
            let replica_id = BrokerId(r.i32()?);
            let mut req = FetchRequest::default()
                .with_replica_id(replica_id)
                .with_max_wait_ms(r.i32()?)
                .with_min_bytes(r.i32()?)
                .with_max_bytes(r.i32()?)
                .with_isolation_level(r.i8()?);
            if v >= 7 {
                req = req.with_session_id(r.i32()?).with_session_epoch(r.i32()?);
            }
            let topics = r.array(|r| {
                let topic = TopicName(r.string()?);
                let partitions = r.array(|r| {
                    let mut p = fetch_request::FetchPartition::default().with_partition(r.i32()?);
                    if v >= 9 {
                        p = p.with_current_leader_epoch(r.i32()?);
                    }
                    p = p.with_fetch_offset(r.i64()?);
                    if v >= 12 {
                        p = p.with_last_fetched_epoch(r.i32()?);
                    }
                    if v >= 5 {
                        p = p.with_log_start_offset(r.i64()?);
                    }
                    p = p.with_partition_max_bytes(r.i32()?);
                    r.tagged_fields()?;
                    Ok(p)
                })?;
                r.tagged_fields()?;
                Ok(fetch_request::FetchTopic::default()
                    .with_topic(topic)
                    .with_partitions(partitions))
            })?;
            req = req.with_topics(topics);
            if v >= 7 {
                let forgotten = r.array(|r| {
                    let topic = TopicName(r.string()?);
                    let partitions = r.array(Reader::i32)?;
                    r.tagged_fields()?;
                    Ok(fetch_request::ForgottenTopic::default()
                        .with_topic(topic)
                        .with_partitions(partitions))
                })?;
                req = req.with_forgotten_topics_data(forgotten);
            }
            if v >= 11 {
                req = req.with_rack_id(r.string()?);
            }
            r.tagged_fields()?;
            RequestKind::Fetch(req)
        }
        ApiKey::ListOffsets => {
            let mut req = ListOffsetsRequest::default().with_replica_id(BrokerId(r.i32()?));
            if v >= 2 {
                req = req.with_isolation_level(r.i8()?);
            }
            let topics = r.array(|r| {
                let name = TopicName(r.string()?);
                let partitions = r.array(|r| {
                    let mut p = list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(r.i32()?);
                    if v >= 4 {
                        p = p.with_current_leader_epoch(r.i32()?);
                    }
                    p = p.with_timestamp(r.i64()?);
                    r.tagged_fields()?;
                    Ok(p)
                })?;
                r.tagged_fields()?;
                Ok(list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name)
                    .with_partitions(partitions))
            })?;
            r.tagged_fields()?;
            RequestKind::ListOffsets(req.with_topics(topics))
        }
        ApiKey::InitProducerId => {
            let mut req = InitProducerIdRequest::default()
                .with_transactional_id(r.nullable_string()?.map(TransactionalId))
                .with_transaction_timeout_ms(r.i32()?);
            if v >= 3 {
                req = req
                    .with_producer_id(ProducerId(r.i64()?))
                    .with_producer_epoch(r.i16()?);
            }
            r.tagged_fields()?;
            RequestKind::InitProducerId(req)
        }
        ApiKey::CreateTopics => {
            let topics = r.array(|r| {
                let name = TopicName(r.string()?);
                let num_partitions = r.i32()?;
                let replication_factor = r.i16()?;
                let assignments = r.array(|r| {
                    let partition_index = r.i32()?;
                    let broker_ids = r.array(|r| Ok(BrokerId(r.i32()?)))?;
                    r.tagged_fields()?;
                    Ok(create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(partition_index)
                        .with_broker_ids(broker_ids))
                })?;
                let configs = r.array(|r| {
                    let name = r.string()?;
                    let value = r.nullable_string()?;
                    r.tagged_fields()?;
                    Ok(create_topics_request::CreatableTopicConfig::default()
                        .with_name(name)
                        .with_value(value))
                })?;
                r.tagged_fields()?;
                Ok(create_topics_request::CreatableTopic::default()
                    .with_name(name)
                    .with_num_partitions(num_partitions)
                    .with_replication_factor(replication_factor)
                    .with_assignments(assignments)
                    .with_configs(configs))
            })?;
            let req = CreateTopicsRequest::default()
                .with_topics(topics)
                .with_timeout_ms(r.i32()?)
                .with_validate_only(r.bool()?);
            r.tagged_fields()?;
            RequestKind::CreateTopics(req)
        }
        ApiKey::FindCoordinator => {
            let mut req = FindCoordinatorRequest::default();
            if v <= 3 {
                req = req.with_key(r.string()?);
            }
            if v >= 1 {
                req = req.with_key_type(r.i8()?);
            }
            if v >= 4 {
                req = req.with_coordinator_keys(r.array(Reader::string)?);
            }
            r.tagged_fields()?;
            RequestKind::FindCoordinator(req)
        }
        ApiKey::JoinGroup => {
            let mut req = JoinGroupRequest::default()
                .with_group_id(GroupId(r.string()?))
                .with_session_timeout_ms(r.i32()?);
            if v >= 1 {
                req = req.with_rebalance_timeout_ms(r.i32()?);
            }
            req = req.with_member_id(r.string()?);
            if v >= 5 {
                req = req.with_group_instance_id(r.nullable_string()?);
            }
            req = req.with_protocol_type(r.string()?);
            let protocols = r.array(|r| {
                let name = r.string()?;
                let metadata = r.bytes()?;
                r.tagged_fields()?;
                Ok(join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(name)
                    .with_metadata(metadata))
            })?;
            r.tagged_fields()?;
            RequestKind::JoinGroup(req.with_protocols(protocols))
        }
        ApiKey::SyncGroup => {
            let mut req = SyncGroupRequest::default()
                .with_group_id(GroupId(r.string()?))
                .with_generation_id(r.i32()?)
                .with_member_id(r.string()?);
            if v >= 3 {
                req = req.with_group_instance_id(r.nullable_string()?);
            }
            if v >= 5 {
                req = req
                    .with_protocol_type(r.nullable_string()?)
                    .with_protocol_name(r.nullable_string()?);
            }
            let assignments = r.array(|r| {
                let member_id = r.string()?;
                let assignment = r.bytes()?;
                r.tagged_fields()?;
                Ok(sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(member_id)
                    .with_assignment(assignment))
            })?;
            r.tagged_fields()?;
            RequestKind::SyncGroup(req.with_assignments(assignments))
        }
        ApiKey::Heartbeat => {
            let mut req = HeartbeatRequest::default()
                .with_group_id(GroupId(r.string()?))
                .with_generation_id(r.i32()?)
                .with_member_id(r.string()?);
            if v >= 3 {
                req = req.with_group_instance_id(r.nullable_string()?);
            }
            r.tagged_fields()?;
            RequestKind::Heartbeat(req)
        }
        ApiKey::LeaveGroup => {
            let mut req = LeaveGroupRequest::default().with_group_id(GroupId(r.string()?));
            if v <= 2 {
                req = req.with_member_id(r.string()?);
            } else {
                req = req.with_members(r.array(|r| {
                    let member_id = r.string()?;
                    let instance = r.nullable_string()?;
                    r.tagged_fields()?;
                    Ok(leave_group_request::MemberIdentity::default()
                        .with_member_id(member_id)
                        .with_group_instance_id(instance))
                })?);
            }
            r.tagged_fields()?;
            RequestKind::LeaveGroup(req)
        }
        ApiKey::OffsetCommit => {
            let mut req = OffsetCommitRequest::default()
                .with_group_id(GroupId(r.string()?))
                .with_generation_id_or_member_epoch(r.i32()?)
                .with_member_id(r.string()?);
            if v >= 7 {
                req = req.with_group_instance_id(r.nullable_string()?);
            }
            if v <= 4 {
                req = req.with_retention_time_ms(r.i64()?);
            }
            let topics = r.array(|r| {
                let name = TopicName(r.string()?);
                let partitions = r.array(|r| {
                    let mut p = offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(r.i32()?)
                        .with_committed_offset(r.i64()?);
                    if v >= 6 {
                        p = p.with_committed_leader_epoch(r.i32()?);
                    }
                    p = p.with_committed_metadata(r.nullable_string()?);
                    r.tagged_fields()?;
                    Ok(p)
                })?;
                r.tagged_fields()?;
                Ok(offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(name)
                    .with_partitions(partitions))
            })?;
            r.tagged_fields()?;
            RequestKind::OffsetCommit(req.with_topics(topics))
        }
        ApiKey::OffsetFetch => {
            let topic = |r: &mut Reader| {
                let name = TopicName(r.string()?);
                let partitions = r.array(Reader::i32)?;
                r.tagged_fields()?;
                Ok((name, partitions))
            };
            let mut req = OffsetFetchRequest::default();
            if v <= 7 {
                req = req.with_group_id(GroupId(r.string()?));
                let topics = if v >= 2 {
                    r.nullable_array(topic)?
                } else {
                    Some(r.array(topic)?)
                };
                req = req.with_topics(topics.map(|ts| {
                    ts.into_iter()
                        .map(|(name, partitions)| {
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(name)
                                .with_partition_indexes(partitions)
                        })
                        .collect()
                }));
            } else {
                req = req.with_groups(r.array(|r| {
                    let group_id = GroupId(r.string()?);
                    let topics = r.nullable_array(topic)?;
                    r.tagged_fields()?;
                    Ok(offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(group_id)
                        .with_topics(topics.map(|ts| {
                            ts.into_iter()
                                .map(|(name, partitions)| {
                                    offset_fetch_request::OffsetFetchRequestTopics::default()
                                        .with_name(name)
                                        .with_partition_indexes(partitions)
                                })
                                .collect()
                        })))
                })?);
            }
            if v >= 7 {
                req = req.with_require_stable(r.bool()?);
            }
            r.tagged_fields()?;
            RequestKind::OffsetFetch(req)
        }
        ApiKey::ListGroups => {
            let mut req = ListGroupsRequest::default();
            if v >= 4 {
                req = req.with_states_filter(r.array(Reader::string)?);
            }
            r.tagged_fields()?;
            RequestKind::ListGroups(req)
        }
        ApiKey::DescribeGroups => {
            let mut req = DescribeGroupsRequest::default()
                .with_groups(r.array(|r| Ok(GroupId(r.string()?)))?);
            if v >= 3 {
                req = req.with_include_authorized_operations(r.bool()?);
            }
            r.tagged_fields()?;
            RequestKind::DescribeGroups(req)
        }
        ApiKey::DeleteTopics => {
            let mut req = DeleteTopicsRequest::default();
            if v >= 6 {
                req = req.with_topics(r.array(|r| {
                    let name = r.nullable_string()?.map(TopicName);
                    let id = r.uuid()?;
                    r.tagged_fields()?;
                    Ok(delete_topics_request::DeleteTopicState::default()
                        .with_name(name)
                        .with_topic_id(id))
                })?);
            } else {
                req = req.with_topic_names(r.array(|r| Ok(TopicName(r.string()?)))?);
            }
            req = req.with_timeout_ms(r.i32()?);
            r.tagged_fields()?;
            RequestKind::DeleteTopics(req)
        }
        ApiKey::DescribeConfigs => {
            let resources = r.array(|r| {
                let resource_type = r.i8()?;
                let name = r.string()?;
                let keys = r.nullable_array(Reader::string)?;
                r.tagged_fields()?;
                Ok(describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(name)
                    .with_configuration_keys(keys))
            })?;
            let mut req = DescribeConfigsRequest::default()
                .with_resources(resources)
                .with_include_synonyms(r.bool()?);
            if v >= 3 {
                req = req.with_include_documentation(r.bool()?);
            }
            r.tagged_fields()?;
            RequestKind::DescribeConfigs(req)
        }
        ApiKey::CreatePartitions => {
            let topics = r.array(|r| {
                let name = TopicName(r.string()?);
                let count = r.i32()?;
                let assignments = r.nullable_array(|r| {
                    let ids = r.array(|r| Ok(BrokerId(r.i32()?)))?;
                    r.tagged_fields()?;
                    Ok(
                        create_partitions_request::CreatePartitionsAssignment::default()
                            .with_broker_ids(ids),
                    )
                })?;
                r.tagged_fields()?;
                Ok(create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name)
                    .with_count(count)
                    .with_assignments(assignments))
            })?;
            let req = CreatePartitionsRequest::default()
                .with_topics(topics)
                .with_timeout_ms(r.i32()?)
                .with_validate_only(r.bool()?);
            r.tagged_fields()?;
            RequestKind::CreatePartitions(req)
        }
        ApiKey::DescribeCluster => {
            let mut req = DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(r.bool()?);
            if v >= 1 {
                req = req.with_endpoint_type(r.i8()?);
            }
            if v >= 2 {
                req = req.with_include_fenced_brokers(r.bool()?);
            }
            r.tagged_fields()?;
            RequestKind::DescribeCluster(req)
        }
        ApiKey::AlterConfigs => {
            let resources = r.array(|r| {
                let resource_type = r.i8()?;
                let name = r.string()?;
                let configs = r.array(|r| {
                    let name = r.string()?;
                    let value = r.nullable_string()?;
                    r.tagged_fields()?;
                    Ok(alter_configs_request::AlterableConfig::default()
                        .with_name(name)
                        .with_value(value))
                })?;
                r.tagged_fields()?;
                Ok(alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(name)
                    .with_configs(configs))
            })?;
            let req = AlterConfigsRequest::default()
                .with_resources(resources)
                .with_validate_only(r.bool()?);
            r.tagged_fields()?;
            RequestKind::AlterConfigs(req)
        }
        ApiKey::IncrementalAlterConfigs => {
            let resources = r.array(|r| {
                let resource_type = r.i8()?;
                let name = r.string()?;
                let configs = r.array(|r| {
                    let name = r.string()?;
                    let operation = r.i8()?;
                    let value = r.nullable_string()?;
                    r.tagged_fields()?;
                    Ok(
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(name)
                            .with_config_operation(operation)
                            .with_value(value),
                    )
                })?;
                r.tagged_fields()?;
                Ok(
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(name)
                        .with_configs(configs),
                )
            })?;
            let req = IncrementalAlterConfigsRequest::default()
                .with_resources(resources)
                .with_validate_only(r.bool()?);
            r.tagged_fields()?;
            RequestKind::IncrementalAlterConfigs(req)
        }
        other => bail!("{other:?} requests are not decoded here"),
    };
    Ok((header, body, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{
        create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig},
        fetch_request::{FetchPartition, FetchTopic, ForgottenTopic},
        list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
        metadata_request::MetadataRequestTopic,
        produce_request::{PartitionProduceData, TopicProduceData},
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    /// A request of every API served, with every field its version has
    /// set to something other than its default.
    fn sample(api: ApiKey, v: i16) -> RequestKind {
        match api {
            ApiKey::ApiVersions => {
                let mut r = ApiVersionsRequest::default();
                if v >= 3 {
                    r = r
                        .with_client_software_name(s("librdkafka"))
                        .with_client_software_version(s("2.16.1"));
                }
                RequestKind::ApiVersions(r)
            }
            ApiKey::Metadata => {
                let topic = |name: &str| {
                    let mut t = MetadataRequestTopic::default().with_name(Some(TopicName(s(name))));
                    if v >= 10 {
                        t = t.with_topic_id(uuid::Uuid::from_u64_pair(1, 2));
                    }
                    t
                };
                let mut r =
                    MetadataRequest::default().with_topics(Some(vec![topic("orders"), topic("é")]));
                if v >= 4 {
                    r = r.with_allow_auto_topic_creation(false);
                }
                if (8..=10).contains(&v) {
                    r = r.with_include_cluster_authorized_operations(true);
                }
                if v >= 8 {
                    r = r.with_include_topic_authorized_operations(true);
                }
                RequestKind::Metadata(r)
            }
            ApiKey::Produce => RequestKind::Produce(
                ProduceRequest::default()
                    .with_transactional_id(None)
                    .with_acks(-1)
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(TopicName(s("orders")))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(3)
                                .with_records(Some(Bytes::from_static(b"batch bytes"))),
                            PartitionProduceData::default()
                                .with_index(4)
                                .with_records(None),
                        ])]),
            ),
            ApiKey::Fetch => {
                let mut p = FetchPartition::default()
                    .with_partition(2)
                    .with_fetch_offset(77)
                    .with_partition_max_bytes(1 << 20);
                if v >= 9 {
                    p = p.with_current_leader_epoch(5);
                }
                if v >= 12 {
                    p = p.with_last_fetched_epoch(4);
                }
                if v >= 5 {
                    p = p.with_log_start_offset(10);
                }
                let mut r = FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(52_428_800)
                    .with_isolation_level(1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(s("orders")))
                        .with_partitions(vec![p])]);
                if v >= 7 {
                    r = r
                        .with_session_id(0)
                        .with_session_epoch(-1)
                        .with_forgotten_topics_data(vec![ForgottenTopic::default()
                            .with_topic(TopicName(s("old")))
                            .with_partitions(vec![1, 2])]);
                }
                if v >= 11 {
                    r = r.with_rack_id(s("rack-a"));
                }
                RequestKind::Fetch(r)
            }
            ApiKey::ListOffsets => {
                let mut p = ListOffsetsPartition::default()
                    .with_partition_index(1)
                    .with_timestamp(-2);
                if v >= 4 {
                    p = p.with_current_leader_epoch(3);
                }
                let mut r = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![ListOffsetsTopic::default()
                        .with_name(TopicName(s("orders")))
                        .with_partitions(vec![p])]);
                if v >= 2 {
                    r = r.with_isolation_level(1);
                }
                RequestKind::ListOffsets(r)
            }
            ApiKey::InitProducerId => {
                let mut r = InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000);
                if v >= 3 {
                    r = r.with_producer_id(ProducerId(42)).with_producer_epoch(3);
                }
                RequestKind::InitProducerId(r)
            }
            ApiKey::CreateTopics => RequestKind::CreateTopics(
                CreateTopicsRequest::default()
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(s("orders")))
                        .with_num_partitions(6)
                        .with_replication_factor(3)
                        .with_assignments(vec![CreatableReplicaAssignment::default()
                            .with_partition_index(0)
                            .with_broker_ids(vec![BrokerId(1), BrokerId(2)])])
                        .with_configs(vec![
                            CreatableTopicConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000"))),
                            CreatableTopicConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_value(None),
                        ])])
                    .with_timeout_ms(5_000)
                    .with_validate_only(true),
            ),
            ApiKey::FindCoordinator => {
                let mut r = FindCoordinatorRequest::default();
                if v <= 3 {
                    r = r.with_key(s("billing"));
                }
                if v >= 1 {
                    r = r.with_key_type(0);
                }
                if v >= 4 {
                    r = r.with_coordinator_keys(vec![s("billing"), s("audit")]);
                }
                RequestKind::FindCoordinator(r)
            }
            ApiKey::JoinGroup => {
                let mut r = JoinGroupRequest::default()
                    .with_group_id(GroupId(s("billing")))
                    .with_session_timeout_ms(45_000)
                    .with_member_id(s("m-1"))
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![
                        join_group_request::JoinGroupRequestProtocol::default()
                            .with_name(s("range"))
                            .with_metadata(Bytes::from_static(b"\0\x01sub")),
                        join_group_request::JoinGroupRequestProtocol::default()
                            .with_name(s("roundrobin"))
                            .with_metadata(Bytes::new()),
                    ]);
                if v >= 1 {
                    r = r.with_rebalance_timeout_ms(300_000);
                }
                if v >= 5 {
                    r = r.with_group_instance_id(Some(s("instance-1")));
                }
                RequestKind::JoinGroup(r)
            }
            ApiKey::SyncGroup => {
                let mut r = SyncGroupRequest::default()
                    .with_group_id(GroupId(s("billing")))
                    .with_generation_id(7)
                    .with_member_id(s("m-1"))
                    .with_assignments(vec![
                        sync_group_request::SyncGroupRequestAssignment::default()
                            .with_member_id(s("m-2"))
                            .with_assignment(Bytes::from_static(b"assigned")),
                    ]);
                if v >= 3 {
                    r = r.with_group_instance_id(None);
                }
                if v >= 5 {
                    r = r
                        .with_protocol_type(Some(s("consumer")))
                        .with_protocol_name(Some(s("range")));
                }
                RequestKind::SyncGroup(r)
            }
            ApiKey::Heartbeat => {
                let mut r = HeartbeatRequest::default()
                    .with_group_id(GroupId(s("billing")))
                    .with_generation_id(7)
                    .with_member_id(s("m-1"));
                if v >= 3 {
                    r = r.with_group_instance_id(Some(s("instance-1")));
                }
                RequestKind::Heartbeat(r)
            }
            ApiKey::LeaveGroup => {
                let mut r = LeaveGroupRequest::default().with_group_id(GroupId(s("billing")));
                if v <= 2 {
                    r = r.with_member_id(s("m-1"));
                } else {
                    r = r.with_members(vec![leave_group_request::MemberIdentity::default()
                        .with_member_id(s("m-1"))
                        .with_group_instance_id(Some(s("instance-1")))]);
                }
                RequestKind::LeaveGroup(r)
            }
            ApiKey::OffsetCommit => {
                let mut p = offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(2)
                    .with_committed_offset(1234)
                    .with_committed_metadata(Some(s("checkpoint")));
                if v >= 6 {
                    p = p.with_committed_leader_epoch(3);
                }
                let mut r = OffsetCommitRequest::default()
                    .with_group_id(GroupId(s("billing")))
                    .with_generation_id_or_member_epoch(7)
                    .with_member_id(s("m-1"))
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(TopicName(s("orders")))
                            .with_partitions(vec![p]),
                    ]);
                if v >= 7 {
                    r = r.with_group_instance_id(None);
                }
                if v <= 4 {
                    r = r.with_retention_time_ms(-1);
                }
                RequestKind::OffsetCommit(r)
            }
            ApiKey::OffsetFetch => {
                let mut r = OffsetFetchRequest::default();
                if v <= 7 {
                    r = r
                        .with_group_id(GroupId(s("billing")))
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopic::default()
                                .with_name(TopicName(s("orders")))
                                .with_partition_indexes(vec![0, 1, 2]),
                        ]));
                } else {
                    r = r.with_groups(vec![
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("billing")))
                            .with_topics(None),
                        offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(s("audit")))
                            .with_topics(Some(vec![
                                offset_fetch_request::OffsetFetchRequestTopics::default()
                                    .with_name(TopicName(s("orders")))
                                    .with_partition_indexes(vec![5]),
                            ])),
                    ]);
                }
                if v >= 7 {
                    r = r.with_require_stable(true);
                }
                RequestKind::OffsetFetch(r)
            }
            ApiKey::ListGroups => {
                let mut r = ListGroupsRequest::default();
                if v >= 4 {
                    r = r.with_states_filter(vec![s("Stable")]);
                }
                RequestKind::ListGroups(r)
            }
            ApiKey::DescribeGroups => {
                let mut r = DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(s("billing")), GroupId(s("audit"))]);
                if v >= 3 {
                    r = r.with_include_authorized_operations(true);
                }
                RequestKind::DescribeGroups(r)
            }
            ApiKey::DeleteTopics => {
                let mut r = DeleteTopicsRequest::default().with_timeout_ms(30_000);
                if v >= 6 {
                    r = r.with_topics(vec![delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(TopicName(s("orders"))))
                        .with_topic_id(uuid::Uuid::from_u64_pair(3, 4))]);
                } else {
                    r = r.with_topic_names(vec![TopicName(s("orders")), TopicName(s("old"))]);
                }
                RequestKind::DeleteTopics(r)
            }
            ApiKey::DescribeConfigs => {
                let mut r = DescribeConfigsRequest::default()
                    .with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("orders"))
                            .with_configuration_keys(Some(vec![s("retention.ms")])),
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(s("0"))
                            .with_configuration_keys(None),
                    ])
                    .with_include_synonyms(true);
                if v >= 3 {
                    r = r.with_include_documentation(true);
                }
                RequestKind::DescribeConfigs(r)
            }
            ApiKey::CreatePartitions => {
                let topic = |name: &str, count, assignments| {
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_count(count)
                        .with_assignments(assignments)
                };
                let assignment = |ids: Vec<i32>| {
                    create_partitions_request::CreatePartitionsAssignment::default()
                        .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                };
                RequestKind::CreatePartitions(
                    CreatePartitionsRequest::default()
                        .with_topics(vec![
                            topic("orders", 6, None),
                            topic(
                                "audit",
                                3,
                                Some(vec![assignment(vec![0]), assignment(vec![0])]),
                            ),
                        ])
                        .with_timeout_ms(30_000)
                        .with_validate_only(true),
                )
            }
            ApiKey::DescribeCluster => {
                let mut r = DescribeClusterRequest::default()
                    .with_include_cluster_authorized_operations(true);
                if v >= 1 {
                    r = r.with_endpoint_type(1);
                }
                if v >= 2 {
                    r = r.with_include_fenced_brokers(true);
                }
                RequestKind::DescribeCluster(r)
            }
            ApiKey::AlterConfigs => RequestKind::AlterConfigs(
                AlterConfigsRequest::default()
                    .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("orders"))
                        .with_configs(vec![
                            alter_configs_request::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000"))),
                            alter_configs_request::AlterableConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_value(None),
                        ])])
                    .with_validate_only(true),
            ),
            ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default()
                    .with_resources(vec![
                        incremental_alter_configs_request::AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("orders"))
                            .with_configs(vec![
                                incremental_alter_configs_request::AlterableConfig::default()
                                    .with_name(s("cleanup.policy"))
                                    .with_config_operation(0)
                                    .with_value(Some(s("compact"))),
                                incremental_alter_configs_request::AlterableConfig::default()
                                    .with_name(s("retention.ms"))
                                    .with_config_operation(1)
                                    .with_value(None),
                            ]),
                    ])
                    .with_validate_only(false),
            ),
            other => panic!("no sample of {other:?}"),
        }
    }

    fn encode_body(body: &RequestKind, buf: &mut BytesMut, v: i16) {
        match body {
            RequestKind::ApiVersions(r) => r.encode(buf, v),
            RequestKind::Metadata(r) => r.encode(buf, v),
            RequestKind::Produce(r) => r.encode(buf, v),
            RequestKind::Fetch(r) => r.encode(buf, v),
            RequestKind::ListOffsets(r) => r.encode(buf, v),
            RequestKind::InitProducerId(r) => r.encode(buf, v),
            RequestKind::CreateTopics(r) => r.encode(buf, v),
            RequestKind::FindCoordinator(r) => r.encode(buf, v),
            RequestKind::JoinGroup(r) => r.encode(buf, v),
            RequestKind::SyncGroup(r) => r.encode(buf, v),
            RequestKind::Heartbeat(r) => r.encode(buf, v),
            RequestKind::LeaveGroup(r) => r.encode(buf, v),
            RequestKind::OffsetCommit(r) => r.encode(buf, v),
            RequestKind::OffsetFetch(r) => r.encode(buf, v),
            RequestKind::ListGroups(r) => r.encode(buf, v),
            RequestKind::DescribeGroups(r) => r.encode(buf, v),
            RequestKind::DeleteTopics(r) => r.encode(buf, v),
            RequestKind::DescribeConfigs(r) => r.encode(buf, v),
            RequestKind::CreatePartitions(r) => r.encode(buf, v),
            RequestKind::DescribeCluster(r) => r.encode(buf, v),
            RequestKind::AlterConfigs(r) => r.encode(buf, v),
            RequestKind::IncrementalAlterConfigs(r) => r.encode(buf, v),
            other => panic!("{other:?}"),
        }
        .unwrap();
    }

    #[test]
    fn every_served_version_decodes_as_kafka_protocol_encodes_and_decodes_it() {
        for &(api, min, max) in crate::SUPPORTED {
            // Produce v0-2 is answered before decoding.
            let min = if api == ApiKey::Produce { 3 } else { min };
            for v in min..=max {
                let header = RequestHeader::default()
                    .with_request_api_key(api as i16)
                    .with_request_api_version(v)
                    .with_correlation_id(1234)
                    .with_client_id(Some(s("ringlog-test")));
                let body = sample(api, v);
                let mut frame = BytesMut::new();
                header
                    .encode(&mut frame, api.request_header_version(v))
                    .unwrap();
                encode_body(&body, &mut frame, v);
                let frame = frame.freeze();
                let (h, mut b, records) = request(BytesMut::from(&frame[..]), api, v)
                    .unwrap_or_else(|e| panic!("{api:?} v{v}: {e:#}"));
                // A Produce's records came apart: put them back to compare.
                if let RequestKind::Produce(p) = &mut b {
                    let mut records = records.into_iter();
                    for t in &mut p.topic_data {
                        for part in &mut t.partition_data {
                            part.records = records.next().unwrap().map(BytesMut::freeze);
                        }
                    }
                }
                assert_eq!(h, header, "{api:?} v{v} header");
                assert_eq!(b, body, "{api:?} v{v} body");
                // And as the crate itself reads the same bytes.
                let mut theirs = frame.clone();
                RequestHeader::decode(&mut theirs, api.request_header_version(v)).unwrap();
                assert_eq!(RequestKind::decode(api, &mut theirs, v).unwrap(), b);
                // Every prefix is refused, none panics.
                for cut in 0..frame.len() {
                    let cut_short = BytesMut::from(&frame[..cut]);
                    assert!(
                        request(cut_short, api, v).is_err(),
                        "{api:?} v{v} cut at {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_count_past_the_bytes_left_is_refused_before_allocating() {
        // Produce v3: header, null transactional id, acks, timeout, then
        // 2^31-1 topics in a frame of a few bytes.
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff]);
        frame.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30]);
        frame.extend_from_slice(&i32::MAX.to_be_bytes());
        frame.extend_from_slice(&[0; 16]);
        let e = request(frame, ApiKey::Produce, 3).unwrap_err();
        assert!(e.to_string().contains("ends"), "{e:#}");
    }
}
