//! `ringlog-log`: work on a partition directory directly, without a broker,
//! in the spirit of Kafka's `kafka-dump-log`: append lines from stdin, dump
//! records, or recover a directory and report what was repaired.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ringlog_engine::batch::{BatchBuilder, BatchView, NewRecord, ProducerStamp};
use ringlog_engine::{FsyncPolicy, Log, LogConfig};
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
        } => append(&dir, fsync, batch_records.max(1), key_separator.as_deref()).await,
        Command::Dump {
            dir,
            from,
            max_records,
        } => dump(&dir, from, max_records.unwrap_or(u64::MAX)).await,
        Command::Recover { dir } => recover(&dir).await,
    }
}

async fn open(dir: &Path, fsync: FsyncPolicy, create: bool) -> Result<Log> {
    if !create && !dir.is_dir() {
        bail!("{} is not a partition directory", dir.display());
    }
    let config = LogConfig {
        fsync,
        ..LogConfig::default()
    };
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

async fn append(dir: &Path, fsync: FsyncPolicy, per_batch: usize, sep: Option<&str>) -> Result<()> {
    let mut log = open(dir, fsync, true).await?;
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
    let log = open(dir, FsyncPolicy::Never, false).await?;
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

async fn recover(dir: &Path) -> Result<()> {
    let log = open(dir, FsyncPolicy::Never, false).await?;
    println!("partition {}", dir.display());
    println!("  offsets   [{}, {})", log.earliest(), log.latest());
    println!("  segments  {:?}", log.segment_bases());
    println!("  bytes     {}", log.size_bytes());
    log.close().await?;
    Ok(())
}
