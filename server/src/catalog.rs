//! Topics and their settings, shared by every shard.
//!
//! The catalog holds topic *configuration* only; partition data belongs to
//! the owning shard. It changes rarely (create, delete) and is read on every
//! request, so it sits behind one `RwLock` that no data path ever writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use ringlog_engine::compact::DELETE_RETENTION_MS_DEFAULT;
use ringlog_engine::log::LogConfig;
use ringlog_engine::retention::Retention;
use ringlog_engine::{Compaction, FsyncPolicy};
use ringlog_protocol::{CreateTopicRequest, ErrorCode, TopicConfig};
use ringlog_registry::validation::Validation;

use crate::config::TopicDefaults;

pub use ringlog_protocol::{name_hash, offsets_partition, OFFSETS_PARTITIONS, OFFSETS_TOPIC};
const MAX_PARTITIONS: u32 = 10_000;
/// `cleanup.policy` values.
pub const POLICY_DELETE: &str = "delete";
/// Keep the latest record per key.
pub const POLICY_COMPACT: &str = "compact";

/// The shard that owns `(topic, partition)` among `shards`: FNV-1a of the
/// name plus the index, so a topic's partitions are spread round-robin from
/// a per-topic starting shard. Stable across restarts for a shard count.
pub fn owner(topic: &str, partition: u32, shards: usize) -> usize {
    ((name_hash(topic) + u64::from(partition)) % shards as u64) as usize
}

/// A topic's settings.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Settings as reported to clients.
    pub config: TopicConfig,
    /// The engine settings of each partition's log.
    pub log: LogConfig,
    /// How produced records are checked against the schema registry.
    pub validation: Validation,
}

/// A refused catalog operation: the code for the client and why.
#[derive(Debug, Clone)]
pub struct Refusal(pub ErrorCode, pub String);

impl Topic {
    /// A topic from a create request, checked, with defaults filled in.
    pub fn from_request(
        req: &CreateTopicRequest,
        defaults: &TopicDefaults,
    ) -> Result<Topic, Refusal> {
        validate_name(&req.name)?;
        if req.name.starts_with("__") {
            return Err(invalid(format!(
                "topic names starting with __ are internal: {:?}",
                req.name
            )));
        }
        let partitions = req.partitions.unwrap_or(defaults.partitions);
        let fsync = match &req.fsync {
            Some(text) => text
                .parse::<FsyncPolicy>()
                .map_err(|e| invalid(format!("fsync {text:?}: {e}")))?,
            None => defaults.fsync,
        };
        let config = TopicConfig {
            partitions,
            retention_ms: req.retention_ms.unwrap_or(defaults.retention_ms),
            retention_bytes: req.retention_bytes.unwrap_or(defaults.retention_bytes),
            segment_bytes: req.segment_bytes.unwrap_or(defaults.segment_bytes),
            fsync: fsync_text(fsync),
            cleanup_policy: req
                .cleanup_policy
                .clone()
                .unwrap_or_else(|| POLICY_DELETE.into()),
            delete_retention_ms: req
                .delete_retention_ms
                .unwrap_or(DELETE_RETENTION_MS_DEFAULT as i64),
            schema_validation: req
                .schema_validation
                .clone()
                .unwrap_or_else(|| Validation::None.name().into()),
        };
        Topic::new(req.name.clone(), config)
    }

    /// A topic from its settings, checked.
    pub fn new(name: String, config: TopicConfig) -> Result<Topic, Refusal> {
        if config.partitions == 0 || config.partitions > MAX_PARTITIONS {
            return Err(invalid(format!(
                "partitions {} must be in 1..={MAX_PARTITIONS}",
                config.partitions
            )));
        }
        let fsync = config
            .fsync
            .parse::<FsyncPolicy>()
            .map_err(|e| invalid(format!("fsync {:?}: {e}", config.fsync)))?;
        let limit = |v: i64, what: &str| match v {
            -1 => Ok(None),
            v if v >= 0 => Ok(Some(v as u64)),
            v => Err(invalid(format!("{what} {v} must be -1 or at least 0"))),
        };
        let (compact, delete) = parse_policy(&config.cleanup_policy)?;
        let validation = Validation::parse(&config.schema_validation).ok_or_else(|| {
            invalid(format!(
                "schema validation {:?} must be none, id or payload",
                config.schema_validation
            ))
        })?;
        if config.delete_retention_ms < 0 {
            return Err(invalid(format!(
                "delete_retention_ms {} must be at least 0",
                config.delete_retention_ms
            )));
        }
        let retention = if delete {
            Retention {
                retention_ms: limit(config.retention_ms, "retention_ms")?,
                retention_bytes: limit(config.retention_bytes, "retention_bytes")?,
            }
        } else {
            // Kafka: a compact-only topic ignores retention.
            Retention {
                retention_ms: None,
                retention_bytes: None,
            }
        };
        let log = LogConfig {
            segment_bytes_max: config.segment_bytes,
            retention,
            fsync,
            compaction: compact.then_some(Compaction {
                delete_retention_ms: config.delete_retention_ms as u64,
            }),
            ..LogConfig::default()
        };
        if config.segment_bytes < 1024
            || config.segment_bytes > ringlog_engine::log::SEGMENT_BYTES_LIMIT
        {
            return Err(invalid(format!(
                "segment_bytes {} must be in 1024..={}",
                config.segment_bytes,
                ringlog_engine::log::SEGMENT_BYTES_LIMIT
            )));
        }
        Ok(Topic {
            name,
            config,
            log,
            validation,
        })
    }

    /// The internal offsets topic: durable on every commit, compacted
    /// (Kafka's settings: `cleanup.policy=compact`, a day of tombstones).
    pub fn offsets(segment_bytes: u64) -> Topic {
        let config = TopicConfig {
            partitions: OFFSETS_PARTITIONS,
            retention_ms: -1,
            retention_bytes: -1,
            segment_bytes,
            fsync: "always".into(),
            cleanup_policy: POLICY_COMPACT.into(),
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT as i64,
            schema_validation: Validation::None.name().into(),
        };
        Topic::new(OFFSETS_TOPIC.into(), config)
            .unwrap_or_else(|_| unreachable!("constant config is valid"))
    }

    /// The settings as the catalog file (and the controller) keeps them.
    pub fn to_text(&self) -> String {
        let c = &self.config;
        format!(
            "partitions={}\nretention-ms={}\nretention-bytes={}\nsegment-bytes={}\nfsync={}\n\
             cleanup-policy={}\ndelete-retention-ms={}\nschema-validation={}\n",
            c.partitions,
            c.retention_ms,
            c.retention_bytes,
            c.segment_bytes,
            c.fsync,
            c.cleanup_policy,
            c.delete_retention_ms,
            c.schema_validation
        )
    }

    /// A topic from [`Topic::to_text`]'s form, checked.
    pub fn from_text(name: &str, text: &str) -> anyhow::Result<Topic> {
        parse_topic(name, text)
    }

    /// Directory of one partition's log.
    pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
        data_dir.join(format!("{topic}-{partition}"))
    }
}

fn fsync_text(policy: FsyncPolicy) -> String {
    match policy {
        FsyncPolicy::Always => "always".into(),
        FsyncPolicy::Never => "never".into(),
        FsyncPolicy::Interval(d) => format!("interval:{}", d.as_millis()),
    }
}

/// `cleanup.policy` as (compact, delete); Kafka's values, in either order.
fn parse_policy(policy: &str) -> Result<(bool, bool), Refusal> {
    let (mut compact, mut delete) = (false, false);
    for part in policy.split(',').map(str::trim) {
        match part {
            POLICY_COMPACT => compact = true,
            POLICY_DELETE => delete = true,
            _ => {
                return Err(invalid(format!(
                    "cleanup policy {policy:?} must be delete, compact or compact,delete"
                )))
            }
        }
    }
    Ok((compact, delete))
}

fn invalid(message: String) -> Refusal {
    Refusal(ErrorCode::InvalidTopicConfig, message)
}

/// Kafka's rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn validate_name(name: &str) -> Result<(), Refusal> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if name.is_empty() || name.len() > 249 || !ok_chars || name == "." || name == ".." {
        return Err(invalid(format!(
            "topic name {name:?} must be 1 to 249 of [a-zA-Z0-9._-] and not . or .."
        )));
    }
    Ok(())
}

/// `ringlog.schema.validation`: how produced records are checked against
/// the schema registry (`none`, `id`, `payload`).
pub const SCHEMA_VALIDATION_KEY: &str = "ringlog.schema.validation";
/// Confluent Server's name for the same, `true` or `false` (as `id`/`none`).
pub const CONFLUENT_VALIDATION_KEY: &str = "confluent.value.schema.validation";

/// The settings that change on a live topic (those [`Setting::apply_to`]
/// takes and [`Setting::default_of`] restores), by their Kafka names;
/// [`CONFLUENT_VALIDATION_KEY`] is another name for the last.
pub const ALTERABLE: [&str; 5] = [
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "delete.retention.ms",
    SCHEMA_VALIDATION_KEY,
];

/// A topic setting under its Kafka name, as CreateTopics, AlterConfigs and
/// IncrementalAlterConfigs (and `ringlog topic alter`) give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// `retention.ms`.
    RetentionMs(i64),
    /// `retention.bytes`.
    RetentionBytes(i64),
    /// `segment.bytes` (set at creation only).
    SegmentBytes(u64),
    /// `min.insync.replicas` (set at creation only).
    MinInsyncReplicas(u32),
    /// `cleanup.policy`.
    CleanupPolicy(String),
    /// `delete.retention.ms`.
    DeleteRetentionMs(i64),
    /// [`SCHEMA_VALIDATION_KEY`] or [`CONFLUENT_VALIDATION_KEY`].
    SchemaValidation(String),
}

impl Setting {
    /// A setting from its Kafka name and value.
    pub fn parse(name: &str, value: &str) -> Result<Setting, Refusal> {
        fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, Refusal> {
            value
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{name}={value:?} is not a number")))
        }
        Ok(match name {
            "retention.ms" => Setting::RetentionMs(number(name, value)?),
            "retention.bytes" => Setting::RetentionBytes(number(name, value)?),
            "segment.bytes" => Setting::SegmentBytes(number(name, value)?),
            "min.insync.replicas" => Setting::MinInsyncReplicas(number(name, value)?),
            "delete.retention.ms" => Setting::DeleteRetentionMs(number(name, value)?),
            "cleanup.policy" => Setting::CleanupPolicy(value.to_string()),
            SCHEMA_VALIDATION_KEY => Setting::SchemaValidation(value.to_string()),
            CONFLUENT_VALIDATION_KEY => Setting::SchemaValidation(
                match value.trim().to_ascii_lowercase().as_str() {
                    "true" => Validation::Id,
                    "false" => Validation::None,
                    _ => return Err(invalid(format!("{name}={value:?} must be true or false"))),
                }
                .name()
                .into(),
            ),
            _ => return Err(invalid(format!("setting {name} is not supported"))),
        })
    }

    /// The broker's default for a setting that can be altered (what
    /// IncrementalAlterConfigs' DELETE and AlterConfigs' omission restore).
    pub fn default_of(name: &str, defaults: &TopicDefaults) -> Result<Setting, Refusal> {
        let value = match name {
            "retention.ms" => defaults.retention_ms.to_string(),
            "retention.bytes" => defaults.retention_bytes.to_string(),
            "cleanup.policy" => POLICY_DELETE.to_string(),
            "delete.retention.ms" => DELETE_RETENTION_MS_DEFAULT.to_string(),
            SCHEMA_VALIDATION_KEY => Validation::None.name().to_string(),
            CONFLUENT_VALIDATION_KEY => "false".to_string(),
            "segment.bytes" | "min.insync.replicas" => return Err(fixed(name)),
            _ => return Err(invalid(format!("setting {name} is not supported"))),
        };
        Setting::parse(name, &value)
    }

    /// Puts the setting into a create request.
    pub fn apply_to_request(self, req: &mut CreateTopicRequest) {
        match self {
            Setting::RetentionMs(v) => req.retention_ms = Some(v),
            Setting::RetentionBytes(v) => req.retention_bytes = Some(v),
            Setting::SegmentBytes(v) => req.segment_bytes = Some(v),
            Setting::MinInsyncReplicas(v) => req.min_insync_replicas = Some(v),
            Setting::CleanupPolicy(v) => req.cleanup_policy = Some(v),
            Setting::DeleteRetentionMs(v) => req.delete_retention_ms = Some(v),
            Setting::SchemaValidation(v) => req.schema_validation = Some(v),
        }
    }

    /// Changes an existing topic's settings; those fixed at creation are
    /// refused (the result is checked by [`Catalog::alter`]).
    pub fn apply_to(self, config: &mut TopicConfig) -> Result<(), Refusal> {
        match self {
            Setting::RetentionMs(v) => config.retention_ms = v,
            Setting::RetentionBytes(v) => config.retention_bytes = v,
            Setting::CleanupPolicy(v) => config.cleanup_policy = v,
            Setting::DeleteRetentionMs(v) => config.delete_retention_ms = v,
            Setting::SchemaValidation(v) => config.schema_validation = v,
            Setting::SegmentBytes(_) => return Err(fixed("segment.bytes")),
            Setting::MinInsyncReplicas(_) => return Err(fixed("min.insync.replicas")),
        }
        Ok(())
    }
}

/// The refusal for a setting that exists but is set at creation only.
fn fixed(name: &str) -> Refusal {
    invalid(format!(
        "{name} is set when a topic is created and cannot be changed"
    ))
}

/// Every topic, persisted as one small file per topic under `topics/`.
#[derive(Debug)]
pub struct Catalog {
    dir: PathBuf,
    topics: BTreeMap<String, Arc<Topic>>,
}

impl Catalog {
    /// Loads every topic file under `data_dir/topics`, creating the internal
    /// offsets topic on first start.
    pub fn load(data_dir: &Path, offsets_segment_bytes: u64) -> anyhow::Result<Catalog> {
        let dir = data_dir.join("topics");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut topics = BTreeMap::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".topic"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let topic =
                parse_topic(name, &text).with_context(|| format!("parsing {}", path.display()))?;
            topics.insert(name.to_string(), Arc::new(topic));
        }
        topics.insert(
            OFFSETS_TOPIC.to_string(),
            Arc::new(Topic::offsets(offsets_segment_bytes)),
        );
        Ok(Catalog { dir, topics })
    }

    /// A topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).cloned()
    }

    /// Every topic, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Topic>> {
        self.topics.values()
    }

    /// Adds a topic and persists it (write, fsync, rename, fsync the dir)
    /// before it becomes visible.
    pub fn create(&mut self, topic: Topic) -> Result<Arc<Topic>, Refusal> {
        if self.topics.contains_key(&topic.name) {
            return Err(Refusal(
                ErrorCode::TopicExists,
                format!("topic {:?} already exists", topic.name),
            ));
        }
        self.store(Arc::new(topic))
    }

    /// Persists a topic's file (write, fsync, rename, fsync the dir), then
    /// makes it the catalog's.
    fn store(&mut self, topic: Arc<Topic>) -> Result<Arc<Topic>, Refusal> {
        let path = self.dir.join(format!("{}.topic", topic.name));
        write_durably(&path, topic.to_text().as_bytes()).map_err(|e| {
            Refusal(
                ErrorCode::StorageError,
                format!("writing {}: {e}", path.display()),
            )
        })?;
        self.topics.insert(topic.name.clone(), topic.clone());
        Ok(topic)
    }

    /// Raises a topic's partition count to `count` and persists it (as
    /// [`Catalog::create`] does) before the new count becomes visible; the
    /// shards then open the new partitions. Partitions are never removed.
    pub fn add_partitions(&mut self, name: &str, count: u32) -> Result<Arc<Topic>, Refusal> {
        let topic = self.with_partitions(name, count)?;
        self.store(Arc::new(topic))
    }

    /// Changes a topic's settings and persists them (as [`Catalog::create`]
    /// does) before they become visible; the shards then apply them to the
    /// open partitions. `validate_only` checks and changes nothing.
    pub fn alter(
        &mut self,
        name: &str,
        settings: Vec<Setting>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, Refusal> {
        let mut config = self.changeable(name, "settings are")?.config.clone();
        for setting in settings {
            setting.apply_to(&mut config)?;
        }
        let topic = Arc::new(Topic::new(name.to_string(), config)?);
        if validate_only {
            return Ok(topic);
        }
        self.store(topic)
    }

    /// A user topic that may change: unknown topics and the offsets
    /// topic (whose `what` is fixed) are refused.
    fn changeable(&self, name: &str, what: &str) -> Result<&Arc<Topic>, Refusal> {
        if name == OFFSETS_TOPIC {
            return Err(invalid(format!("the offsets topic's {what} fixed")));
        }
        self.topics
            .get(name)
            .ok_or_else(|| Refusal(ErrorCode::UnknownTopic, format!("unknown topic {name:?}")))
    }

    /// What `name` would be with `count` partitions, checked as
    /// [`Catalog::add_partitions`] checks it; nothing changes.
    pub fn with_partitions(&self, name: &str, count: u32) -> Result<Topic, Refusal> {
        let old = self.changeable(name, "partition count is")?;
        if count <= old.config.partitions {
            return Err(invalid(format!(
                "topic {name:?} has {} partitions: a new count must be higher, not {count}",
                old.config.partitions
            )));
        }
        let mut config = old.config.clone();
        config.partitions = count;
        Topic::new(name.to_string(), config)
    }

    /// Removes a topic from the catalog and its file; its partitions are
    /// deleted by their shards.
    pub fn remove(&mut self, name: &str) -> Result<Arc<Topic>, Refusal> {
        if name == OFFSETS_TOPIC {
            return Err(Refusal(
                ErrorCode::InvalidRequest,
                "the offsets topic cannot be deleted".into(),
            ));
        }
        let topic = self
            .topics
            .remove(name)
            .ok_or_else(|| Refusal(ErrorCode::UnknownTopic, format!("unknown topic {name:?}")))?;
        let path = self.dir.join(format!("{name}.topic"));
        std::fs::remove_file(&path)
            .and_then(|()| sync_dir(&self.dir))
            .map_err(|e| {
                Refusal(
                    ErrorCode::StorageError,
                    format!("removing {}: {e}", path.display()),
                )
            })?;
        Ok(topic)
    }
}

fn parse_topic(name: &str, text: &str) -> anyhow::Result<Topic> {
    let mut config = TopicConfig {
        partitions: 0,
        retention_ms: -1,
        retention_bytes: -1,
        segment_bytes: ringlog_engine::log::SEGMENT_BYTES_DEFAULT,
        fsync: "always".into(),
        // Files written before topics had these settings.
        cleanup_policy: POLICY_DELETE.into(),
        delete_retention_ms: DELETE_RETENTION_MS_DEFAULT as i64,
        schema_validation: Validation::None.name().into(),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once('=')
            .with_context(|| format!("line {line:?} is not key=value"))?;
        match key {
            "partitions" => config.partitions = value.parse()?,
            "retention-ms" => config.retention_ms = value.parse()?,
            "retention-bytes" => config.retention_bytes = value.parse()?,
            "segment-bytes" => config.segment_bytes = value.parse()?,
            "fsync" => config.fsync = value.to_string(),
            "cleanup-policy" => config.cleanup_policy = value.to_string(),
            "delete-retention-ms" => config.delete_retention_ms = value.parse()?,
            "schema-validation" => config.schema_validation = value.to_string(),
            other => anyhow::bail!("unknown key {other:?}"),
        }
    }
    Topic::new(name.to_string(), config).map_err(|Refusal(_, m)| anyhow::anyhow!(m))
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the
/// new one, never a mix, and the new one survives once this returns.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TopicDefaults {
        TopicDefaults {
            partitions: 1,
            fsync: FsyncPolicy::Always,
            retention_ms: 1000,
            retention_bytes: -1,
            segment_bytes: 1 << 20,
        }
    }

    #[test]
    fn topics_persist_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::load(dir.path(), 1 << 20).unwrap();
        let req = CreateTopicRequest {
            name: "orders".into(),
            partitions: Some(3),
            fsync: Some("interval:50".into()),
            ..Default::default()
        };
        catalog
            .create(Topic::from_request(&req, &defaults()).unwrap())
            .unwrap();
        let err = catalog
            .create(Topic::from_request(&req, &defaults()).unwrap())
            .unwrap_err();
        assert_eq!(err.0, ErrorCode::TopicExists);
        let again = Catalog::load(dir.path(), 1 << 20).unwrap();
        let t = again.get("orders").unwrap();
        assert_eq!(t.config.partitions, 3);
        assert_eq!(t.config.fsync, "interval:50");
        assert_eq!(t.log.retention.retention_ms, Some(1000));
        assert!(again.get(OFFSETS_TOPIC).is_some());
    }

    #[test]
    fn partitions_are_added_durably_and_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::load(dir.path(), 1 << 20).unwrap();
        let req = CreateTopicRequest {
            name: "grows".into(),
            partitions: Some(2),
            ..Default::default()
        };
        catalog
            .create(Topic::from_request(&req, &defaults()).unwrap())
            .unwrap();
        assert_eq!(
            catalog
                .add_partitions("grows", 5)
                .unwrap()
                .config
                .partitions,
            5
        );
        for count in [5, 4] {
            let refused = catalog.add_partitions("grows", count).unwrap_err();
            assert_eq!(refused.0, ErrorCode::InvalidTopicConfig, "{}", refused.1);
        }
        assert_eq!(
            catalog.add_partitions("nope", 9).unwrap_err().0,
            ErrorCode::UnknownTopic
        );
        assert!(catalog.add_partitions(OFFSETS_TOPIC, 9).is_err());
        let reloaded = Catalog::load(dir.path(), 1 << 20).unwrap();
        assert_eq!(reloaded.get("grows").unwrap().config.partitions, 5);
    }

    #[test]
    fn settings_are_altered_durably_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::load(dir.path(), 1 << 20).unwrap();
        let req = CreateTopicRequest {
            name: "t".into(),
            partitions: Some(1),
            ..Default::default()
        };
        catalog
            .create(Topic::from_request(&req, &defaults()).unwrap())
            .unwrap();
        let set = |k: &str, v: &str| Setting::parse(k, v).unwrap();
        let t = catalog
            .alter(
                "t",
                vec![
                    set("cleanup.policy", "compact,delete"),
                    set("retention.bytes", "1000"),
                    set(CONFLUENT_VALIDATION_KEY, "true"),
                ],
                false,
            )
            .unwrap();
        assert!(t.log.compaction.is_some());
        assert_eq!(t.log.retention.retention_bytes, Some(1000));
        assert_eq!(t.validation, Validation::Id);
        // Checked only: nothing changes.
        catalog
            .alter("t", vec![set("cleanup.policy", "delete")], true)
            .unwrap();
        // A bad value refuses the whole change.
        let refused = catalog
            .alter(
                "t",
                vec![set("retention.ms", "5"), set("cleanup.policy", "shred")],
                false,
            )
            .unwrap_err();
        assert_eq!(refused.0, ErrorCode::InvalidTopicConfig, "{}", refused.1);
        assert!(catalog
            .alter("t", vec![set("segment.bytes", "4096")], false)
            .unwrap_err()
            .1
            .contains("when a topic is created"));
        assert!(Setting::parse("flush.ms", "1").is_err());
        assert!(Setting::parse(CONFLUENT_VALIDATION_KEY, "maybe").is_err());
        let reloaded = Catalog::load(dir.path(), 1 << 20).unwrap();
        let t = reloaded.get("t").unwrap();
        assert_eq!(t.config.cleanup_policy, "compact,delete");
        assert_eq!(t.config.retention_ms, 1000, "the default, untouched");
        assert_eq!(t.config.schema_validation, "id");
        // Back to the defaults.
        let back = Setting::default_of("cleanup.policy", &defaults()).unwrap();
        assert_eq!(back, Setting::CleanupPolicy(POLICY_DELETE.into()));
        assert!(Setting::default_of("segment.bytes", &defaults()).is_err());
    }

    #[test]
    fn bad_names_and_settings_are_refused() {
        for name in ["", "a/b", "..", "__mine", &"x".repeat(250)] {
            let req = CreateTopicRequest {
                name: name.into(),
                partitions: Some(1),
                ..Default::default()
            };
            assert!(Topic::from_request(&req, &defaults()).is_err(), "{name:?}");
        }
        let req = CreateTopicRequest {
            name: "t".into(),
            partitions: Some(1),
            retention_ms: Some(-5),
            ..Default::default()
        };
        assert!(Topic::from_request(&req, &defaults()).is_err());
    }

    #[test]
    fn placement_spreads_a_topics_partitions() {
        let shards: std::collections::BTreeSet<_> = (0..4).map(|p| owner("t", p, 4)).collect();
        assert_eq!(shards.len(), 4);
        assert_eq!(owner("t", 1, 2), owner("t", 1, 2));
    }
}
