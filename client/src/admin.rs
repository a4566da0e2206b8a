//! Topic administration and cluster metadata.

use ringlog_protocol::{
    AddPartitionsRequest, AlterTopicConfigRequest, ApiKey, CreateTopicRequest, DeleteTopicRequest,
    ListTopicsResponse, MetadataRequest, MetadataResponse, Payload, TopicMetadata, TopicSummary,
};

use crate::{Client, Error, ErrorKind, Result};

/// A topic to create; unset settings take the broker's defaults.
#[derive(Debug, Clone)]
pub struct NewTopic {
    request: CreateTopicRequest,
}

impl NewTopic {
    /// A topic with `partitions` partitions (the broker refuses 0).
    pub fn new(name: &str, partitions: u32) -> NewTopic {
        NewTopic {
            request: CreateTopicRequest {
                name: name.to_string(),
                partitions: Some(partitions),
                ..Default::default()
            },
        }
    }

    /// A topic with the broker's default partition count.
    pub fn with_default_partitions(name: &str) -> NewTopic {
        NewTopic {
            request: CreateTopicRequest {
                name: name.to_string(),
                ..Default::default()
            },
        }
    }

    /// Time retention in ms (-1: forever).
    pub fn retention_ms(mut self, ms: i64) -> Self {
        self.request.retention_ms = Some(ms);
        self
    }

    /// Size retention per partition in bytes (-1: none).
    pub fn retention_bytes(mut self, bytes: i64) -> Self {
        self.request.retention_bytes = Some(bytes);
        self
    }

    /// Segment size in bytes.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.request.segment_bytes = Some(bytes);
        self
    }

    /// fsync policy: `always`, `never` or `interval:MS`.
    pub fn fsync(mut self, policy: &str) -> Self {
        self.request.fsync = Some(policy.to_string());
        self
    }

    /// Replicas per partition (cluster mode).
    pub fn replication_factor(mut self, replicas: u32) -> Self {
        self.request.replication_factor = Some(replicas);
        self
    }

    /// Replicas that must be in sync for an `acks=all` write (cluster mode).
    pub fn min_insync_replicas(mut self, replicas: u32) -> Self {
        self.request.min_insync_replicas = Some(replicas);
        self
    }

    /// Kafka's `cleanup.policy`: `delete` (the default), `compact` (keep
    /// the latest record per key; records need a key) or `compact,delete`.
    pub fn cleanup_policy(mut self, policy: &str) -> Self {
        self.request.cleanup_policy = Some(policy.to_string());
        self
    }

    /// How long a compacted topic keeps tombstones (null values), in ms.
    pub fn delete_retention_ms(mut self, ms: i64) -> Self {
        self.request.delete_retention_ms = Some(ms);
        self
    }

    /// Checks produced records against the broker's schema registry:
    /// `none` (the default), `id` (the value, and the key if `TOPIC-key`
    /// exists, carries Confluent's wire format with an id registered under
    /// `TOPIC-value` / `TOPIC-key`) or `payload` (and decodes with it).
    pub fn schema_validation(mut self, how: &str) -> Self {
        self.request.schema_validation = Some(how.to_string());
        self
    }
}

/// Creates, deletes, lists and describes topics.
#[derive(Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    /// An admin on `client`'s connection.
    pub fn new(client: Client) -> Admin {
        Admin { client }
    }

    /// Creates a topic; it is on disk when this returns.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<TopicMetadata> {
        self.topic_call(ApiKey::CreateTopic, topic.request.encode())
            .await
    }

    /// Sends an admin request answered with one topic's metadata.
    async fn topic_call(&self, api: ApiKey, payload: Vec<u8>) -> Result<TopicMetadata> {
        let mut meta: MetadataResponse = self.client.call(api, Some(payload)).await?;
        meta.topics.pop().ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                format!("{} answered without the topic", api.name()),
            )
        })
    }

    /// Raises a topic's partition count to `partitions` (never lowers it);
    /// the new partitions exist when this returns.
    pub async fn add_partitions(&self, name: &str, partitions: u32) -> Result<TopicMetadata> {
        let req = AddPartitionsRequest {
            topic: name.to_string(),
            partitions,
        };
        self.topic_call(ApiKey::AddPartitions, req.encode()).await
    }

    /// Changes a topic's settings, by their Kafka names (`retention.ms`,
    /// `retention.bytes`, `cleanup.policy`, `delete.retention.ms`,
    /// `ringlog.schema.validation`); `None` restores the broker's default.
    /// Answers the topic as it now is.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        changes: &[(&str, Option<&str>)],
    ) -> Result<TopicMetadata> {
        let req = AlterTopicConfigRequest {
            topic: name.to_string(),
            changes: changes
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            validate_only: false,
        };
        self.topic_call(ApiKey::AlterTopicConfig, req.encode())
            .await
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.delete_topic_with(name, false).await
    }

    /// Deletes a topic; with `force`, also the schema registry's `_schemas`
    /// (every schema is lost), which is refused otherwise.
    pub async fn delete_topic_with(&self, name: &str, force: bool) -> Result<()> {
        let req = DeleteTopicRequest {
            name: name.to_string(),
            force,
        };
        let _: ListTopicsResponse = self
            .client
            .call(ApiKey::DeleteTopic, Some(req.encode()))
            .await?;
        Ok(())
    }

    /// Every topic, internal ones (names starting with `__`) included.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        let list: ListTopicsResponse = self.client.call(ApiKey::ListTopics, None).await?;
        Ok(list.topics)
    }

    /// A topic's settings, partitions and offsets.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicMetadata> {
        let req = MetadataRequest {
            topics: Some(vec![name.to_string()]),
        };
        let mut meta: MetadataResponse = self
            .client
            .call(ApiKey::Metadata, Some(req.encode()))
            .await?;
        meta.topics
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::UnknownTopic, format!("unknown topic {name:?}")))
    }

    /// Brokers and every topic.
    pub async fn metadata(&self) -> Result<MetadataResponse> {
        self.client
            .call(
                ApiKey::Metadata,
                Some(MetadataRequest { topics: None }.encode()),
            )
            .await
    }

    /// Cluster mode's brokers, controller and replica placement, as the
    /// broker reached knows them (`cluster_mode` false for a lone broker).
    pub async fn describe_cluster(&self) -> Result<ringlog_protocol::DescribeClusterResponse> {
        self.client.call(ApiKey::DescribeCluster, None).await
    }

    /// Every consumer group, sorted: asked of each group coordinator (the
    /// leaders of `__consumer_offsets`' partitions).
    pub async fn list_groups(&self) -> Result<Vec<String>> {
        let partitions = 0..ringlog_protocol::OFFSETS_PARTITIONS;
        let coordinators = self
            .client
            .by_leader(partitions, |p| (ringlog_protocol::OFFSETS_TOPIC, *p))
            .await;
        let mut groups = std::collections::BTreeSet::new();
        for (conn, _) in coordinators {
            let reply = conn?.call(ApiKey::ListGroups, Vec::new()).await?;
            let resp: ringlog_protocol::ListGroupsResponse =
                crate::decode_reply(ApiKey::ListGroups, reply)?;
            groups.extend(resp.groups);
        }
        Ok(groups.into_iter().collect())
    }

    /// A group's generation, members, assignments and committed offsets.
    pub async fn describe_group(
        &self,
        group: &str,
    ) -> Result<ringlog_protocol::DescribeGroupResponse> {
        let req = ringlog_protocol::DescribeGroupRequest {
            group: group.to_string(),
        };
        self.client
            .call_group(group, ApiKey::DescribeGroup, req.encode())
            .await
    }
}
