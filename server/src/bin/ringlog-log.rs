//! `ringlog-log`: work on a partition directory directly, without a broker,
//! in the spirit of Kafka's `kafka-dump-log`: append lines from stdin, dump
//! records, recover a directory and report what was repaired, or compact it.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ringlog_engine::batch::{BatchBuilder, BatchView, NewRecord, ProducerStamp};
use ringlog_engine::{CleanOptions, Compaction, FsyncPolicy, Log, LogConfig};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Append to, dump or recover a ringlog partition directory.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append one record per stdin line; prints the offsets assigned.
    Append {
        /// Partition directory (created if missing).
        dir: PathBuf,
        /// Durability: always, never or interval:MS.
        #[arg(long, default_value = "always")]
        fsync: FsyncPolicy,
        /// Records per batch.
        #[arg(long, default_value_t = 1000)]
        batch_records: usize,
        /// Split each line into key and value at the first SEP.
        #[arg(long)]
        key_separator: Option<String>,
        /// Roll to a new segment at this size.
        #[arg(long, default_value_t = ringlog_engine::log::SEGMENT_BYTES_DEFAULT)]
        segment_bytes: u64,
    },
    /// Print records as `offset<TAB>timestamp<TAB>key<TAB>value`.
    Dump {
        /// Partition directory.
        dir: PathBuf,
        /// First offset to print (default: the log start).
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many records.
        #[arg(long)]
        max_records: Option<u64>,
    },
    /// Open the directory, recover it and report segments and repairs.
    Recover {
        /// Partition directory.
        dir: PathBuf,
    },
    /// Run one clean of the log cleaner on the directory (no broker may
    /// have it open): keep the latest record of each key in its sealed
    /// segments, as `cleanup.policy=compact` does.
    Compact {
        /// Partition directory.
        dir: PathBuf,
        /// Remove tombstones (null values) older than this, in ms.
        #[arg(long, default_value_t = ringlog_engine::compact::DELETE_RETENTION_MS_DEFAULT)]
        delete_retention_ms: u64,
        /// Memory for the offset map, in bytes; a larger log takes several runs.
        #[arg(long, default_value_t = ringlog_engine::compact::MAP_BYTES_DEFAULT)]
        map_bytes: usize,
        /// Merge cleaned segments up to this size.
        #[arg(long, default_value_t = ringlog_engine::log::SEGMENT_BYTES_DEFAULT)]
        segment_bytes: u64,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    if let Err(e) = tokio_uring::start(run(Cli::parse())) {
        eprintln!("ringlog-log: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Append {
            dir,
            fsync,
            batch_records,
            key_separator,
            segment_bytes,
        } => {
            let config = LogConfig {
                fsync,
                segment_bytes_max: segment_bytes,
                ..LogConfig::default()
            };
            append(&dir, config, batch_records.max(1), key_separator.as_deref()).await
        }
        Command::Dump {
            dir,
            from,
            max_records,
        } => dump(&dir, from, max_records.unwrap_or(u64::MAX)).await,
        Command::Recover { dir } => recover(&dir).await,
        Command::Compact {
            dir,
            delete_retention_ms,
            map_bytes,
            segment_bytes,
        } => {
            let config = LogConfig {
                fsync: FsyncPolicy::Never,
                segment_bytes_max: segment_bytes,
                compaction: Some(Compaction {
                    delete_retention_ms,
                }),
                ..LogConfig::default()
            };
            compact(&dir, config, map_bytes).await
        }
    }
}

async fn open(dir: &Path, config: LogConfig, create: bool) -> Result<Log> {
    if !create && !dir.is_dir() {
        bail!("{} is not a partition directory", dir.display());
    }
    let (log, report) = Log::open(dir, config)
        .await
        .with_context(|| format!("opening {}", dir.display()))?;
    for repair in &report.repairs {
        eprintln!("repaired: {repair:?}");
    }
    Ok(log)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn append(dir: &Path, config: LogConfig, per_batch: usize, sep: Option<&str>) -> Result<()> {
    let mut log = open(dir, config, true).await?;
    let stdin = std::io::stdin().lock();
    let mut lines = stdin.lines();
    let (mut first, mut last, mut count) = (None, 0, 0u64);
    loop {
        let mut chunk = Vec::with_capacity(per_batch);
        for line in lines.by_ref().take(per_batch) {
            chunk.push(line.context("reading stdin")?);
        }
        if chunk.is_empty() {
            break;
        }
        let timestamp = now_ms();
        let mut builder = BatchBuilder::new(ProducerStamp::NONE);
        for line in &chunk {
            let (key, value) = match sep.and_then(|s| line.split_once(s)) {
                Some((k, v)) => (Some(k.as_bytes()), v),
                None => (None, line.as_str()),
            };
            builder.push(&NewRecord {
                key,
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp,
            })?;
        }
        let batch = builder.finish().context("empty batch")?;
        let appended = log.append(batch, 0).await?;
        appended.durable.wait().await?;
        first.get_or_insert(appended.base_offset);
        last = appended.last_offset;
        count += chunk.len() as u64;
    }
    log.close().await?;
    match first {
        Some(first) => eprintln!("appended {count} records at offsets {first}..={last}"),
        None => eprintln!("nothing to append: stdin was empty"),
    }
    Ok(())
}

async fn dump(dir: &Path, from: Option<u64>, max_records: u64) -> Result<()> {
    let log = open(dir, read_only(), false).await?;
    let mut offset = from.unwrap_or(log.earliest());
    let mut printed = 0;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    'read: while offset < log.latest() && printed < max_records {
        let bytes = log.read(offset, 1 << 20).await?;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let view = BatchView::parse(rest, usize::MAX)?;
            let Ok(records) = view.records() else {
                writeln!(
                    out,
                    "# offsets {}..={}: compressed batch (codec {}), not decoded",
                    view.base_offset(),
                    view.last_offset(),
                    view.compression()
                )?;
                offset = view.last_offset() as u64 + 1;
                rest = &rest[view.bytes().len()..];
                continue;
            };
            for record in records {
                let record = record?;
                if (record.offset as u64) < offset {
                    continue;
                }
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    record.offset,
                    record.timestamp,
                    text(record.key),
                    text(record.value)
                )?;
                printed += 1;
                if printed == max_records {
                    break 'read;
                }
            }
            offset = view.last_offset() as u64 + 1;
            rest = &rest[view.bytes().len()..];
        }
    }
    out.flush()?;
    Ok(())
}

/// Bytes as text for the dump, lossily; a null as `<null>`.
fn text(bytes: Option<&[u8]>) -> std::borrow::Cow<'_, str> {
    bytes.map_or("<null>".into(), String::from_utf8_lossy)
}

fn read_only() -> LogConfig {
    LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

async fn compact(dir: &Path, config: LogConfig, map_bytes: usize) -> Result<()> {
    let mut log = open(dir, config, false).await?;
    let options = CleanOptions {
        map_bytes,
        force: true,
        crash_before_step: None,
    };
    let r = log
        .clean(now_ms(), options)
        .await
        .with_context(|| format!("cleaning {}", dir.display()))?;
    println!("partition {}", dir.display());
    println!("  cleaned below   {}", r.cleaned_below);
    println!(
        "  segments        {} -> {}",
        r.segments_before, r.segments_after
    );
    println!("  bytes           {} -> {}", r.bytes_read, r.bytes_written);
    println!("  records read    {}", r.records_read);
    println!("  superseded      {}", r.records_superseded);
    println!("  tombstones gone {}", r.tombstones_removed);
    log.close().await?;
    Ok(())
}

async fn recover(dir: &Path) -> Result<()> {
    let log = open(dir, read_only(), false).await?;
    println!("partition {}", dir.display());
    println!("  offsets   [{}, {})", log.earliest(), log.latest());
    println!("  segments  {:?}", log.segment_bases());
    println!("  bytes     {}", log.size_bytes());
    log.close().await?;
    Ok(())
}
