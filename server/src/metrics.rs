//! Prometheus metrics: per-shard request counters and latency histograms,
//! per-partition bytes and offsets, served as text on `/metrics`.
//!
//! The metric families are `prometheus-client` atomics; they are updated by
//! every shard and read only by the scrape thread.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a per-shard, per-API series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// Shard index.
    pub shard: u32,
    /// API name.
    pub api: String,
}

/// Labels of a per-shard error series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Shard index.
    pub shard: u32,
    /// Error code name.
    pub code: String,
}

/// Labels of a per-shard series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    /// Shard index.
    pub shard: u32,
}

/// Labels of a per-partition series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Owning shard.
    pub shard: u32,
}

fn latency_histogram() -> Histogram {
    // 10 µs to ~42 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 23))
}

/// Every metric of the broker.
pub struct Metrics {
    registry: Registry,
    requests: Family<ApiLabels, Counter>,
    latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    shard_bytes_in: Family<ShardLabels, Counter>,
    shard_bytes_out: Family<ShardLabels, Counter>,
    connections: Family<ShardLabels, Gauge>,
    partition_bytes_in: Family<PartitionLabels, Counter>,
    partition_bytes_out: Family<PartitionLabels, Counter>,
    scrubbed_bytes: Family<PartitionLabels, Counter>,
    scrub_corrupt: Family<PartitionLabels, Counter>,
    log_start: Family<PartitionLabels, Gauge>,
    log_end: Family<PartitionLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ringlog");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            errors: Family::default(),
            shard_bytes_in: Family::default(),
            shard_bytes_out: Family::default(),
            connections: Family::default(),
            partition_bytes_in: Family::default(),
            partition_bytes_out: Family::default(),
            scrubbed_bytes: Family::default(),
            scrub_corrupt: Family::default(),
            log_start: Family::default(),
            log_end: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests served, by shard and API",
            m.requests.clone(),
        );
        registry.register(
            "request_latency_seconds",
            "Time from a request's last byte read to its response queued, by shard and API",
            m.latency.clone(),
        );
        registry.register(
            "errors",
            "Error responses, by shard and code",
            m.errors.clone(),
        );
        registry.register(
            "shard_received_bytes",
            "Request bytes read, by shard",
            m.shard_bytes_in.clone(),
        );
        registry.register(
            "shard_sent_bytes",
            "Response bytes queued, by shard",
            m.shard_bytes_out.clone(),
        );
        registry.register(
            "connections",
            "Open client connections, by shard",
            m.connections.clone(),
        );
        registry.register(
            "partition_produced_bytes",
            "Record batch bytes offered for append, by partition",
            m.partition_bytes_in.clone(),
        );
        registry.register(
            "partition_fetched_bytes",
            "Record batch bytes read for fetches, by partition",
            m.partition_bytes_out.clone(),
        );
        registry.register(
            "partition_scrubbed_bytes",
            "Sealed batch bytes the scrubber read and found sound, by partition",
            m.scrubbed_bytes.clone(),
        );
        registry.register(
            "partition_scrub_corrupt",
            "Damaged batches the scrubber found, by partition",
            m.scrub_corrupt.clone(),
        );
        registry.register(
            "log_start_offset",
            "First offset kept, by partition",
            m.log_start.clone(),
        );
        registry.register(
            "log_end_offset",
            "Offset the next record gets, by partition",
            m.log_end.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a served request and its latency.
    pub fn request(&self, shard: usize, api: &str, latency: Duration) {
        let labels = ApiLabels {
            shard: shard as u32,
            api: api.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }

    /// Counts an error response.
    pub fn error(&self, shard: usize, code: ringlog_protocol::ErrorCode) {
        let labels = ErrorLabels {
            shard: shard as u32,
            code: code.name().to_string(),
        };
        self.errors.get_or_create(&labels).inc();
    }

    /// Counts bytes read from and queued to clients on a shard.
    pub fn shard_bytes(&self, shard: usize, received: usize, sent: usize) {
        let labels = ShardLabels {
            shard: shard as u32,
        };
        self.shard_bytes_in
            .get_or_create(&labels)
            .inc_by(received as u64);
        self.shard_bytes_out
            .get_or_create(&labels)
            .inc_by(sent as u64);
    }

    /// Moves a shard's open-connection gauge.
    pub fn connections(&self, shard: usize, delta: i64) {
        let labels = ShardLabels {
            shard: shard as u32,
        };
        self.connections.get_or_create(&labels).inc_by(delta);
    }

    /// Counts batch bytes offered to a partition.
    pub fn partition_bytes_in(&self, labels: &PartitionLabels, bytes: usize) {
        self.partition_bytes_in
            .get_or_create(labels)
            .inc_by(bytes as u64);
    }

    /// Counts batch bytes read from a partition.
    pub fn partition_bytes_out(&self, labels: &PartitionLabels, bytes: usize) {
        self.partition_bytes_out
            .get_or_create(labels)
            .inc_by(bytes as u64);
    }

    /// Counts what a scrub step read: sound bytes, or a damaged batch.
    pub fn partition_scrubbed(&self, labels: &PartitionLabels, bytes: usize, corrupt: bool) {
        self.scrubbed_bytes
            .get_or_create(labels)
            .inc_by(bytes as u64);
        if corrupt {
            self.scrub_corrupt.get_or_create(labels).inc();
        }
    }

    /// Sets a partition's log start and end offsets.
    pub fn partition_offsets(&self, labels: &PartitionLabels, start: u64, end: u64) {
        self.log_start.get_or_create(labels).set(start as i64);
        self.log_end.get_or_create(labels).set(end as i64);
    }

    /// Drops a closed partition's series.
    pub fn forget_partition(&self, labels: &PartitionLabels) {
        self.partition_bytes_in.remove(labels);
        self.partition_bytes_out.remove(labels);
        self.scrubbed_bytes.remove(labels);
        self.scrub_corrupt.remove(labels);
        self.log_start.remove(labels);
        self.log_end.remove(labels);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `GET /metrics` on a plain thread: scrapes are rare and small, so
/// they stay off the shards.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    std::thread::Builder::new()
        .name("ringlog-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Drain the request headers.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let (status, body) = if request_line.starts_with("GET /metrics") {
                    ("200 OK", metrics.encode())
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
                };
                let _ = write!(
                    &stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!("cannot start the metrics thread: {e}"));
}

/// Binds the metrics listener.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}
