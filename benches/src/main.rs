//! `ringlog-bench`: produce, consume or end-to-end load against a broker,
//! with latency percentiles, throughput, verification of every record, and
//! optional JSON and SVG output.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use ringlog_bench::run::{self, Mode, Params, Protocol, Report};

/// Load generator for ringlog. Messages carry their producer, sequence
/// number and send time; consumers check each one arrives once, in order per
/// partition, with the bytes that were sent.
#[derive(Debug, Parser)]
#[command(name = "ringlog-bench", version, about)]
struct Args {
    /// produce, consume or e2e.
    #[arg(value_enum)]
    mode: ModeArg,
    /// Broker address (ignored with --embedded).
    #[arg(long, default_value = ringlog_client::DEFAULT_BROKER)]
    broker: String,
    /// native (ringlog-client) or kafka (librdkafka through the broker's
    /// Kafka listener; needs a build with `--features kafka`).
    #[arg(long, value_enum, default_value = "native")]
    protocol: ProtocolArg,
    /// The broker's Kafka listener, for `--protocol kafka` (topics are
    /// still created through --broker).
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka_broker: String,
    /// Start a broker in this process on a free loopback port with a
    /// temporary data directory, and remove it afterwards.
    #[arg(long)]
    embedded: bool,
    /// Shards of the embedded broker [default: one per core].
    #[arg(long)]
    shards: Option<usize>,
    /// Topic (created by produce and e2e; it must not exist).
    #[arg(long, default_value = "ringlog-bench")]
    topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Consumers, each reading every partition.
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Bytes per message (at least 20).
    #[arg(long, default_value_t = 1024)]
    message_size: usize,
    /// Producer batch size in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    batch_size: usize,
    /// Producer linger in ms.
    #[arg(long, default_value_t = 1)]
    linger_ms: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "1")]
    acks: String,
    /// fsync policy of the topic: always, never or interval:MS.
    #[arg(long, default_value = "never")]
    fsync: String,
    /// Replicas per partition of the topic (a cluster's brokers).
    #[arg(long)]
    replication_factor: Option<u32>,
    /// min.insync.replicas of the topic (a cluster's brokers).
    #[arg(long)]
    min_insync_replicas: Option<u32>,
    /// Messages in all (split between producers).
    #[arg(long, conflicts_with = "duration")]
    messages: Option<u64>,
    /// Seconds to produce after the warm-up.
    #[arg(long)]
    duration: Option<f64>,
    /// Open loop: messages per second, all producers together; latency is
    /// measured from each message's intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds at the start left out of the figures.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Use the client's per-record API (send, poll) instead of the
    /// batch-level one (send_batch, poll_batches), to compare the two.
    #[arg(long)]
    per_record: bool,
    /// Consumers check each message's header (producer and sequence: order,
    /// duplicates, gaps) but not its filler bytes, so the load generator
    /// costs about what any consumer that reads records costs (peers' tools
    /// check nothing).
    #[arg(long)]
    skip_content_check: bool,
    /// Write every figure and parameter as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency by percentile and throughput over time as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Native,
    Kafka,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Produce,
    Consume,
    E2e,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(start(args)));
    match result {
        Ok(report) if report.error_count == 0 => {}
        Ok(report) => {
            eprintln!(
                "ringlog-bench: verification failed: {} errors",
                report.error_count
            );
            for e in &report.errors {
                eprintln!("  {e}");
            }
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("ringlog-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn start(args: Args) -> anyhow::Result<Report> {
    if args.message_size < ringlog_bench::message::HEADER_BYTES {
        bail!(
            "--message-size must be at least {} bytes",
            ringlog_bench::message::HEADER_BYTES
        );
    }
    let mode = match args.mode {
        ModeArg::Produce => Mode::Produce,
        ModeArg::Consume => Mode::Consume,
        ModeArg::E2e => Mode::E2e,
    };
    if mode != Mode::Consume && args.messages.is_none() && args.duration.is_none() {
        bail!("say how much to send: --messages N or --duration SECS");
    }
    if args.producers == 0 || args.partitions == 0 || (mode != Mode::Produce && args.consumers == 0)
    {
        bail!("--producers, --consumers and --partitions must be positive");
    }
    // The embedded broker lives until the run ends; its directory after that.
    let mut embedded = None;
    let broker = if args.embedded {
        let dir = tempfile::tempdir().context("creating the data directory")?;
        let config = ringlog_server::config::Config::resolve(ringlog_server::config::Args {
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".parse()?),
            kafka_listen: Some("127.0.0.1:0".into()),
            metrics_listen: Some("off".into()),
            shards: args.shards,
            ..Default::default()
        })?;
        let server = ringlog_server::server::Broker::start(config)?;
        let addr = server.listen.to_string();
        println!(
            "embedded broker on {addr}, data in {}",
            dir.path().display()
        );
        let kafka = server.kafka.map(|a| a.to_string());
        embedded = Some((server, dir));
        (addr, kafka)
    } else {
        (args.broker.clone(), Some(args.kafka_broker.clone()))
    };
    let (broker, kafka_broker) = broker;
    let params = Params {
        mode,
        broker,
        protocol: match args.protocol {
            ProtocolArg::Native => Protocol::Native,
            ProtocolArg::Kafka => Protocol::Kafka,
        },
        kafka_broker,
        topic: args.topic.clone(),
        partitions: args.partitions,
        producers: args.producers,
        consumers: args.consumers,
        message_size: args.message_size,
        batch_size: args.batch_size,
        linger_ms: args.linger_ms,
        acks: args.acks.clone(),
        fsync: args.fsync.clone(),
        replication_factor: args.replication_factor,
        min_insync_replicas: args.min_insync_replicas,
        messages: args.messages,
        duration_secs: args.duration,
        rate: args.rate,
        warmup_secs: args.warmup,
        per_record: args.per_record,
        skip_content_check: args.skip_content_check,
        embedded_shards: embedded
            .as_ref()
            .map(|(s, _): &(ringlog_server::server::Broker, _)| s.shards()),
    };
    let report = run::run(params, progress(args.messages)).await?;
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        ringlog_bench::plot::draw(&report, path)
            .with_context(|| format!("drawing {}", path.display()))?;
        println!("plot written to {}", path.display());
    }
    if let Some((mut server, dir)) = embedded {
        server.stop();
        drop(dir);
    }
    Ok(report)
}

/// A live bar on a terminal, a plain line per second otherwise.
fn progress(total: Option<u64>) -> impl Fn(f64, u64, u64) + Send + 'static {
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let last = std::sync::Mutex::new((0.0f64, 0u64, 0u64));
    move |t, acked, consumed| {
        let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
        let dt = (t - l.0).max(1e-9);
        let rate = (acked - l.1) as f64 / dt;
        let crate_ = (consumed - l.2) as f64 / dt;
        *l = (t, acked, consumed);
        let msg = format!("acked {acked} ({rate:.0}/s)  consumed {consumed} ({crate_:.0}/s)");
        match &bar {
            Some(bar) => {
                bar.set_position(acked.max(consumed));
                bar.set_message(msg);
            }
            None => println!("t={t:.0}s {msg}"),
        }
    }
}

fn print_report(r: &Report) {
    let p = &r.params;
    println!(
        "\n{:?} ({:?} protocol): {} producers, {} consumers, {} partitions, {} B messages, batch {} B, linger {} ms, acks={}, fsync={}{}",
        p.mode,
        p.protocol,
        p.producers,
        p.consumers,
        p.partitions,
        p.message_size,
        p.batch_size,
        p.linger_ms,
        p.acks,
        p.fsync,
        p.rate.map(|r| format!(", open loop at {r:.0} msgs/s")).unwrap_or_default()
    );
    for (i, t) in r.producers.iter().enumerate() {
        println!("  producer {i}: {}", t.line());
    }
    if let Some(t) = &r.produce {
        println!("produce:  {}", t.line());
    }
    if let Some(l) = &r.ack_latency {
        println!("ack latency:  {}", l.line());
    }
    for (i, t) in r.consumers.iter().enumerate() {
        println!("  consumer {i}: {}", t.line());
    }
    if let Some(t) = &r.consume {
        println!("consume:  {}", t.line());
    }
    if let Some(l) = &r.e2e_latency {
        println!("e2e latency:  {}", l.line());
    }
    if r.params.mode != Mode::Produce {
        println!(
            "verified: {} messages, {} errors",
            r.verified, r.error_count
        );
    }
}
