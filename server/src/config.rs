//! Broker settings: defaults, then a TOML file, then environment variables
//! and flags (flags win over `RINGLOG_*` variables; clap resolves those two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Parser;
use ringlog_engine::FsyncPolicy;
use serde::Deserialize;

/// `ringlog-server`: a streaming log broker (Kafka's model, thread-per-core).
///
/// Every setting can come from a flag, a `RINGLOG_*` environment variable
/// or the `--config` TOML file (keys as the flag names, e.g.
/// `data-dir = "/var/lib/ringlog"`), in that order of precedence.
#[derive(Debug, Parser, Default)]
#[command(
    name = "ringlog-server",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// A tool instead of the broker.
    #[command(subcommand)]
    pub command: Option<Tool>,
    /// TOML file with settings (keys are the long flag names).
    #[arg(long, env = "RINGLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory holding every partition's log [default: ./ringlog-data].
    #[arg(long, env = "RINGLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address clients connect to; port 0 picks a free one and prints it
    /// [default: 127.0.0.1:9292].
    #[arg(long, env = "RINGLOG_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the Prometheus `/metrics` endpoint, or `off`
    /// [default: 127.0.0.1:9294].
    #[arg(long, env = "RINGLOG_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Address of the Kafka wire protocol listener (every Kafka client and
    /// tool), or `none`; not in cluster mode yet [default: 127.0.0.1:9092
    /// alone, none with --peers].
    #[arg(long, env = "RINGLOG_KAFKA_LISTEN")]
    pub kafka_listen: Option<String>,
    /// Address of the schema registry (Confluent's REST API, on a thread of
    /// its own), or `none` [default: 127.0.0.1:8081 alone, none with
    /// --peers].
    #[arg(long, env = "RINGLOG_SCHEMA_REGISTRY_LISTEN")]
    pub schema_registry_listen: Option<String>,
    /// `HOST:PORT` the Kafka listener's Metadata tells clients to connect
    /// to [default: the address it listens on].
    #[arg(long, env = "RINGLOG_KAFKA_ADVERTISED_ADDRESS")]
    pub kafka_advertised_address: Option<String>,
    /// Whether a Kafka client's Metadata request may create a topic it
    /// names (with the defaults), as Kafka's `auto.create.topics.enable`
    /// [default: true].
    #[arg(long, env = "RINGLOG_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Shards (pinned threads, each owning its partitions) [default: one per core].
    #[arg(long, env = "RINGLOG_SHARDS")]
    pub shards: Option<usize>,
    /// Largest request frame accepted, in bytes; larger ones are refused
    /// before any buffer is allocated [default: 16777216].
    #[arg(long, env = "RINGLOG_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<u32>,
    /// Most client connections served at once [default: 4096].
    #[arg(long, env = "RINGLOG_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most segment files held open at once, over all shards; others are
    /// closed and reopened on use [default: half of what the descriptor
    /// limit leaves after a reserve].
    #[arg(long, env = "RINGLOG_MAX_OPEN_FILES")]
    pub max_open_files: Option<usize>,
    /// Most request bytes a connection may have in flight before the broker
    /// stops reading from it [default: 67108864].
    #[arg(long, env = "RINGLOG_MAX_INFLIGHT_BYTES")]
    pub max_inflight_bytes: Option<u64>,
    /// A fetch answer of at least this many bytes of one partition goes
    /// from the segment file to the socket with sendfile (no copy through
    /// the broker, CRCs left to the consumer and the scrubber); a smaller
    /// one is read and CRC-checked. Off by default: on the reference
    /// machine the read path was faster, warm and cold (benches/RESULTS.md).
    /// 0: always [default: 4294967295, never].
    #[arg(long, env = "RINGLOG_SENDFILE_MIN_BYTES")]
    pub sendfile_min_bytes: Option<u32>,
    /// How often each partition's scrubber re-reads a step of its sealed
    /// segments and checks every CRC, in ms; 0 turns it off. A damaged
    /// batch is logged and the partition's fetches are then all read and
    /// checked (no sendfile). On by default only with sendfile, since the
    /// read path checks every batch it serves [default: 1000 with
    /// --sendfile-min-bytes, else 0].
    #[arg(long, env = "RINGLOG_SCRUB_INTERVAL_MS")]
    pub scrub_interval_ms: Option<u64>,
    /// Bytes each partition's scrubber reads per step [default: 262144].
    #[arg(long, env = "RINGLOG_SCRUB_BYTES")]
    pub scrub_bytes: Option<u32>,
    /// How appends reach the disk: `direct` (O_DIRECT into preallocated
    /// segments, the page cache bypassed; where the file system has no
    /// O_DIRECT, buffered) or `buffered` (through the page cache: lower
    /// latency at light load and recent data served from memory, but 2-3.5x
    /// slower and 4-5x the CPU under sustained load on the reference
    /// machine, benches/RESULTS.md) [default: direct].
    #[arg(long, env = "RINGLOG_WRITE_MODE")]
    pub write_mode: Option<String>,
    /// Partitions of a topic created without a count [default: 1].
    #[arg(long, env = "RINGLOG_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<u32>,
    /// fsync policy of new topics: always, never or interval:MS [default: always].
    #[arg(long, env = "RINGLOG_DEFAULT_FSYNC")]
    pub default_fsync: Option<String>,
    /// Time retention of new topics in ms, -1 for forever [default: 604800000].
    #[arg(long, env = "RINGLOG_DEFAULT_RETENTION_MS", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..))]
    pub default_retention_ms: Option<i64>,
    /// Size retention per partition of new topics, -1 for none [default: -1].
    #[arg(long, env = "RINGLOG_DEFAULT_RETENTION_BYTES", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..))]
    pub default_retention_bytes: Option<i64>,
    /// Segment size of new topics in bytes [default: 1073741824].
    #[arg(long, env = "RINGLOG_DEFAULT_SEGMENT_BYTES")]
    pub default_segment_bytes: Option<u64>,
    /// How often each shard applies retention, in ms [default: 60000].
    #[arg(long, env = "RINGLOG_RETENTION_CHECK_MS")]
    pub retention_check_ms: Option<u64>,
    /// How often each shard's log cleaner looks for compacted partitions
    /// with at least half of their sealed bytes dirty, in ms (Kafka's
    /// `log.cleaner.backoff.ms`) [default: 15000].
    #[arg(long, env = "RINGLOG_CLEANER_INTERVAL_MS")]
    pub cleaner_interval_ms: Option<u64>,
    /// Memory of each shard's cleaner for the offset map (key -> latest
    /// offset), in bytes (Kafka's `log.cleaner.dedupe.buffer.size`); a
    /// larger dirty part is cleaned over several passes [default: 67108864].
    #[arg(long, env = "RINGLOG_CLEANER_MAP_BYTES")]
    pub cleaner_map_bytes: Option<u64>,
    /// Segment size of the committed-offsets topic, which the log cleaner
    /// compacts [default: 67108864].
    #[arg(long, env = "RINGLOG_OFFSETS_SEGMENT_BYTES")]
    pub offsets_segment_bytes: Option<u64>,
    /// Cluster mode: every node of the cluster with its replication
    /// address, `ID@HOST:PORT,...` (this one included). Without it the
    /// broker runs alone.
    #[arg(long, env = "RINGLOG_PEERS")]
    pub peers: Option<String>,
    /// Cluster mode: this broker's node id, one of --peers.
    #[arg(long, env = "RINGLOG_NODE_ID")]
    pub node_id: Option<u32>,
    /// Cluster mode: where the QUIC endpoint (controller and replication)
    /// listens [default: this node's --peers address].
    #[arg(long, env = "RINGLOG_REPLICATION_LISTEN")]
    pub replication_listen: Option<SocketAddr>,
    /// Cluster mode: the directory `ringlog-server certs` wrote.
    #[arg(long, env = "RINGLOG_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Cluster mode: a broker silent this long is fenced and its
    /// leaderships move, in ms [default: 9000].
    #[arg(long, env = "RINGLOG_BROKER_SESSION_TIMEOUT_MS")]
    pub broker_session_timeout_ms: Option<u64>,
    /// Cluster mode: a follower that has not caught up for this long leaves
    /// the ISR, in ms [default: 10000].
    #[arg(long, env = "RINGLOG_REPLICA_LAG_TIME_MAX_MS")]
    pub replica_lag_time_max_ms: Option<u64>,
}

/// `ringlog-server`'s tools.
#[derive(Debug, clap::Subcommand)]
pub enum Tool {
    /// Writes a cluster CA and a key and certificate per node into DIR, for
    /// the brokers' mutual TLS (`--tls-dir DIR`).
    Certs {
        /// Directory to write into (created if missing; never overwritten).
        dir: PathBuf,
        /// The node ids, comma-separated: `--nodes 1,2,3`.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<u32>,
    },
}

/// The same settings, as read from the TOML file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    metrics_listen: Option<String>,
    kafka_listen: Option<String>,
    schema_registry_listen: Option<String>,
    kafka_advertised_address: Option<String>,
    auto_create_topics: Option<bool>,
    shards: Option<usize>,
    max_frame_bytes: Option<u32>,
    max_connections: Option<usize>,
    max_open_files: Option<usize>,
    max_inflight_bytes: Option<u64>,
    sendfile_min_bytes: Option<u32>,
    scrub_interval_ms: Option<u64>,
    scrub_bytes: Option<u32>,
    write_mode: Option<String>,
    default_partitions: Option<u32>,
    default_fsync: Option<String>,
    default_retention_ms: Option<i64>,
    default_retention_bytes: Option<i64>,
    default_segment_bytes: Option<u64>,
    retention_check_ms: Option<u64>,
    cleaner_interval_ms: Option<u64>,
    cleaner_map_bytes: Option<u64>,
    offsets_segment_bytes: Option<u64>,
    peers: Option<String>,
    node_id: Option<u32>,
    replication_listen: Option<SocketAddr>,
    tls_dir: Option<PathBuf>,
    broker_session_timeout_ms: Option<u64>,
    replica_lag_time_max_ms: Option<u64>,
}

/// Defaults a new topic takes for what its creator left out.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    /// Partition count.
    pub partitions: u32,
    /// fsync policy.
    pub fsync: FsyncPolicy,
    /// Time retention in ms, -1 forever.
    pub retention_ms: i64,
    /// Size retention in bytes, -1 none.
    pub retention_bytes: i64,
    /// Segment size.
    pub segment_bytes: u64,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Client address.
    pub listen: SocketAddr,
    /// Metrics address, if enabled.
    pub metrics_listen: Option<SocketAddr>,
    /// Kafka listener address, if enabled.
    pub kafka_listen: Option<SocketAddr>,
    /// Schema registry address; `None` when off.
    pub schema_registry_listen: Option<SocketAddr>,
    /// What the Kafka listener advertises; `None`: its own address.
    pub kafka_advertised: Option<(String, u16)>,
    /// Kafka Metadata may create the topics it names.
    pub auto_create_topics: bool,
    /// Shard count.
    pub shards: usize,
    /// Largest frame.
    pub max_frame_bytes: u32,
    /// Connection limit.
    pub max_connections: usize,
    /// Segment files open at once over all shards; `None`: from the
    /// descriptor limit at start.
    pub max_open_files: Option<usize>,
    /// Per-connection in-flight request bytes.
    pub max_inflight_bytes: u64,
    /// Fetch answers this large or larger are sent with sendfile.
    pub sendfile_min_bytes: u32,
    /// Segment-file duplicates that sends in flight may hold at once (set
    /// from the open-files limit at start).
    pub sendfile_files: usize,
    /// Scrub step period in ms; 0: no scrubbing.
    pub scrub_interval_ms: u64,
    /// Bytes per scrub step and partition.
    pub scrub_bytes: u32,
    /// How appends reach the disk.
    pub write_mode: ringlog_engine::WriteMode,
    /// New-topic defaults.
    pub topic_defaults: TopicDefaults,
    /// Retention pass interval.
    pub retention_check_ms: u64,
    /// Log cleaner pass interval.
    pub cleaner_interval_ms: u64,
    /// Log cleaner offset map bound, per shard.
    pub cleaner_map_bytes: u64,
    /// Segment size of `__consumer_offsets`.
    pub offsets_segment_bytes: u64,
    /// Cluster mode's settings; `None` runs the broker alone.
    pub cluster: Option<crate::cluster::agent::ClusterConfig>,
}

impl Config {
    /// Resolves flags and environment over the TOML file over defaults.
    pub fn resolve(args: Args) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let cluster = resolve_cluster(&args, &file)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let metrics = args
            .metrics_listen
            .or(file.metrics_listen)
            .unwrap_or_else(|| "127.0.0.1:9294".into());
        let metrics_listen =
            if metrics == "off" {
                None
            } else {
                Some(metrics.parse().with_context(|| {
                    format!("--metrics-listen {metrics:?} is not ADDR:PORT or off")
                })?)
            };
        // In cluster mode brokers often share a host: each names its own
        // Kafka port, none is assumed.
        let kafka = match (args.kafka_listen.or(file.kafka_listen), &cluster) {
            (Some(k), _) => k,
            (None, Some(_)) => "none".into(),
            (None, None) => "127.0.0.1:9092".into(),
        };
        let kafka_listen =
            if kafka == "none" {
                None
            } else {
                Some(kafka.parse().with_context(|| {
                    format!("--kafka-listen {kafka:?} is not ADDR:PORT or none")
                })?)
            };
        let registry = match (
            args.schema_registry_listen.or(file.schema_registry_listen),
            &cluster,
        ) {
            (Some(r), _) => r,
            (None, Some(_)) => "none".into(),
            (None, None) => "127.0.0.1:8081".into(),
        };
        let schema_registry_listen = if registry == "none" {
            None
        } else {
            Some(registry.parse().with_context(|| {
                format!("--schema-registry-listen {registry:?} is not ADDR:PORT or none")
            })?)
        };
        let kafka_advertised = match args
            .kafka_advertised_address
            .or(file.kafka_advertised_address)
        {
            None => None,
            Some(a) => {
                let parsed = a
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
                    .filter(|(host, _)| !host.is_empty());
                Some(parsed.with_context(|| {
                    format!("--kafka-advertised-address {a:?} is not HOST:PORT")
                })?)
            }
        };
        let fsync = parse_setting(
            "--default-fsync",
            args.default_fsync.or(file.default_fsync),
            "always",
        )?;
        let write_mode = parse_setting(
            "--write-mode",
            args.write_mode.or(file.write_mode),
            "direct",
        )?;
        let sendfile_min_bytes = args
            .sendfile_min_bytes
            .or(file.sendfile_min_bytes)
            .unwrap_or(u32::MAX);
        let config = Config {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("ringlog-data")),
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9292))),
            metrics_listen,
            kafka_listen,
            schema_registry_listen,
            kafka_advertised,
            auto_create_topics: args
                .auto_create_topics
                .or(file.auto_create_topics)
                .unwrap_or(true),
            shards: args.shards.or(file.shards).unwrap_or(cores),
            max_frame_bytes: args
                .max_frame_bytes
                .or(file.max_frame_bytes)
                .unwrap_or(ringlog_protocol::MAX_FRAME_BYTES_DEFAULT),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(4096),
            max_open_files: args.max_open_files.or(file.max_open_files),
            max_inflight_bytes: args
                .max_inflight_bytes
                .or(file.max_inflight_bytes)
                .unwrap_or(64 << 20),
            sendfile_min_bytes,
            sendfile_files: 1024,
            scrub_interval_ms: args.scrub_interval_ms.or(file.scrub_interval_ms).unwrap_or(
                if sendfile_min_bytes == u32::MAX {
                    0
                } else {
                    1000
                },
            ),
            scrub_bytes: args.scrub_bytes.or(file.scrub_bytes).unwrap_or(256 << 10),
            write_mode,
            topic_defaults: TopicDefaults {
                partitions: args
                    .default_partitions
                    .or(file.default_partitions)
                    .unwrap_or(1),
                fsync,
                retention_ms: args
                    .default_retention_ms
                    .or(file.default_retention_ms)
                    .unwrap_or(ringlog_engine::log::RETENTION_MS_DEFAULT as i64),
                retention_bytes: args
                    .default_retention_bytes
                    .or(file.default_retention_bytes)
                    .unwrap_or(-1),
                segment_bytes: args
                    .default_segment_bytes
                    .or(file.default_segment_bytes)
                    .unwrap_or(ringlog_engine::log::SEGMENT_BYTES_DEFAULT),
            },
            retention_check_ms: args
                .retention_check_ms
                .or(file.retention_check_ms)
                .unwrap_or(60_000),
            cleaner_interval_ms: args
                .cleaner_interval_ms
                .or(file.cleaner_interval_ms)
                .unwrap_or(15_000),
            cleaner_map_bytes: args
                .cleaner_map_bytes
                .or(file.cleaner_map_bytes)
                .unwrap_or(64 << 20),
            offsets_segment_bytes: args
                .offsets_segment_bytes
                .or(file.offsets_segment_bytes)
                .unwrap_or(64 << 20),
            cluster,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(c) = &self.cluster {
            if c.session_timeout_ms < 100 {
                bail!(
                    "--broker-session-timeout-ms {} must be at least 100",
                    c.session_timeout_ms
                );
            }
        }
        if self.shards == 0 || self.shards > 1024 {
            bail!("--shards {} must be in 1..=1024", self.shards);
        }
        let min = ringlog_protocol::HEADER_LEN as u32;
        if self.max_frame_bytes < min {
            bail!(
                "--max-frame-bytes {} must be at least {min}",
                self.max_frame_bytes
            );
        }
        if self.max_inflight_bytes < u64::from(self.max_frame_bytes) {
            bail!(
                "--max-inflight-bytes {} must be at least --max-frame-bytes {}",
                self.max_inflight_bytes,
                self.max_frame_bytes
            );
        }
        if self.max_connections == 0 {
            bail!("--max-connections must be positive");
        }
        if self.topic_defaults.partitions == 0 {
            bail!("--default-partitions must be positive");
        }
        // The flags are range-checked by clap; a config file's values are not.
        for (flag, v) in [
            ("default-retention-ms", self.topic_defaults.retention_ms),
            (
                "default-retention-bytes",
                self.topic_defaults.retention_bytes,
            ),
        ] {
            if v < -1 {
                bail!("--{flag} {v} must be -1 (no limit) or at least 0");
            }
        }
        if self.offsets_segment_bytes < 1024 {
            bail!("--offsets-segment-bytes must be at least 1024");
        }
        if self.scrub_bytes == 0 {
            bail!("--scrub-bytes must be positive");
        }
        if self.retention_check_ms == 0 {
            bail!("--retention-check-ms must be positive");
        }
        if self.cleaner_interval_ms == 0 {
            bail!("--cleaner-interval-ms must be positive");
        }
        if self.cleaner_map_bytes < 1024 {
            bail!("--cleaner-map-bytes must be at least 1024");
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// A textual setting parsed by its type's `FromStr`, `default` when unset;
/// an error names the flag and the text.
fn parse_setting<T: std::str::FromStr<Err = String>>(
    flag: &str,
    text: Option<String>,
    default: &str,
) -> anyhow::Result<T> {
    let text = text.unwrap_or_else(|| default.into());
    text.parse()
        .map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}"))
}

/// Cluster mode's settings, if `--peers` asks for it.
fn resolve_cluster(
    args: &Args,
    file: &FileConfig,
) -> anyhow::Result<Option<crate::cluster::agent::ClusterConfig>> {
    let node_id = args.node_id.or(file.node_id);
    let listen = args.replication_listen.or(file.replication_listen);
    let tls_dir = args.tls_dir.clone().or(file.tls_dir.clone());
    let Some(spec) = args.peers.clone().or(file.peers.clone()) else {
        if node_id.is_some() || listen.is_some() || tls_dir.is_some() {
            bail!(
                "--node-id, --replication-listen and --tls-dir are for cluster mode: add --peers"
            );
        }
        return Ok(None);
    };
    let peers = crate::cluster::agent::ClusterConfig::parse_peers(&spec)?;
    let node_id = node_id.context("cluster mode (--peers) needs --node-id")?;
    let own = peers
        .get(&node_id)
        .with_context(|| format!("--node-id {node_id} is not one of --peers {spec}"))?;
    let tls_dir = tls_dir.with_context(|| {
        let ids: Vec<String> = peers.keys().map(u32::to_string).collect();
        format!(
            "cluster mode needs certificates: make them with\n  ringlog-server certs ./certs --nodes {}\nand pass --tls-dir ./certs",
            ids.join(",")
        )
    })?;
    Ok(Some(crate::cluster::agent::ClusterConfig {
        node_id,
        listen: listen.unwrap_or(*own),
        peers,
        tls_dir,
        session_timeout_ms: args
            .broker_session_timeout_ms
            .or(file.broker_session_timeout_ms)
            .unwrap_or(9_000),
        replica_lag_max_ms: args
            .replica_lag_time_max_ms
            .or(file.replica_lag_time_max_ms)
            .unwrap_or(10_000),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringlog.toml");
        std::fs::write(
            &path,
            "shards = 3\ndata-dir = \"/x\"\nmax-frame-bytes = 4096\n",
        )
        .unwrap();
        let config = Config::resolve(Args {
            config: Some(path),
            shards: Some(2),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(config.shards, 2);
        assert_eq!(config.data_dir, PathBuf::from("/x"));
        assert_eq!(config.max_frame_bytes, 4096);
        assert_eq!(config.listen.port(), 9292);
    }

    #[test]
    fn bad_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringlog.toml");
        std::fs::write(&path, "shard = 3\n").unwrap();
        let err = Config::resolve(Args {
            config: Some(path),
            ..Args::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        assert!(Config::resolve(Args {
            shards: Some(0),
            ..Args::default()
        })
        .is_err());
        assert!(Config::resolve(Args {
            default_fsync: Some("sometimes".into()),
            ..Args::default()
        })
        .is_err());
    }
}
