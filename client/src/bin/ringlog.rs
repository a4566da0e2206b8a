//! `ringlog`: topics, produce from stdin, consume to stdout, cluster info.

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ringlog_client::{
    Acks, Admin, Client, Consumer, ConsumerConfig, ConsumerRecord, Error, ErrorKind, NewTopic,
    OffsetReset, Producer, ProducerConfig, Record, SeekTo,
};
use tokio::io::AsyncBufReadExt;

#[path = "../cli/schema.rs"]
mod schema;

/// The ringlog command line: manage topics, produce and consume records.
#[derive(Debug, Parser)]
#[command(name = "ringlog", version, about)]
struct Cli {
    /// Broker address, or a comma-separated list of them: the first that
    /// answers serves, and the next is tried when it stops answering.
    #[arg(long, global = true, env = "RINGLOG_BROKER", default_value = ringlog_client::DEFAULT_BROKER)]
    broker: String,
    /// Schema registry URL, for `ringlog schema`.
    #[arg(
        long,
        global = true,
        env = "RINGLOG_SCHEMA_REGISTRY",
        default_value = "http://127.0.0.1:8081"
    )]
    registry: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe and delete topics.
    Topic {
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Produce one record per stdin line; exits after the last acknowledgement.
    Produce {
        /// Topic.
        topic: String,
        /// Split each line at the first SEP into key and value.
        #[arg(long, value_name = "SEP")]
        key_separator: Option<String>,
        /// 0, 1 or all.
        #[arg(long, default_value = "1")]
        acks: String,
        /// Send every record to this partition.
        #[arg(long)]
        partition: Option<u32>,
    },
    /// Print records, one per line (the value, unless --format says otherwise).
    Consume(ConsumeArgs),
    /// Cluster information.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Consumer groups.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Schema registry: register, get, list, check, delete, config.
    Schema {
        #[command(subcommand)]
        command: schema::SchemaCommand,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List groups.
    List,
    /// Members, assignments, committed offsets and lag of a group.
    Describe {
        /// Group.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// Name: 1 to 249 of [a-zA-Z0-9._-].
        name: String,
        /// Partitions, at least 1 [default: the broker's].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        partitions: Option<u32>,
        /// Time retention in ms (-1: forever) [default: the broker's].
        #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
        retention_ms: Option<i64>,
        /// Size retention per partition in bytes (-1: none) [default: the broker's].
        #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
        retention_bytes: Option<i64>,
        /// Segment size in bytes [default: the broker's].
        #[arg(long)]
        segment_bytes: Option<u64>,
        /// always, never or interval:MS [default: the broker's].
        #[arg(long)]
        fsync: Option<String>,
        /// Replicas per partition, cluster mode [default: min(3, brokers)].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        replication_factor: Option<u32>,
        /// Replicas in sync for an acks=all write, cluster mode
        /// [default: min(2, replication factor)].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        min_insync_replicas: Option<u32>,
        /// delete, compact (keep the latest record per key) or compact,delete
        /// [default: delete].
        #[arg(long)]
        cleanup_policy: Option<String>,
        /// How long a compacted topic keeps tombstones, in ms [default: 86400000].
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        delete_retention_ms: Option<i64>,
        /// Check produced records against the schema registry: none, id
        /// (wire format and a registered id) or payload (and decode)
        /// [default: none].
        #[arg(long)]
        schema_validation: Option<String>,
    },
    /// List topics.
    List,
    /// Show a topic's settings and partitions.
    Describe {
        /// Topic.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic.
        name: String,
        /// Also the schema registry's `_schemas` (every schema is lost).
        #[arg(long)]
        force: bool,
    },
    /// Change a topic's settings: retention.ms, retention.bytes,
    /// cleanup.policy, delete.retention.ms, ringlog.schema.validation.
    Alter {
        /// Topic.
        name: String,
        /// A setting and its new value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A setting back to the broker's default (repeatable).
        #[arg(long = "reset", value_name = "KEY")]
        reset: Vec<String>,
    },
    /// Raise a topic's partition count (keys then map to other partitions).
    AddPartitions {
        /// Topic.
        name: String,
        /// The new partition count, above the current one.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        partitions: u32,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Brokers and topics.
    Info,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // One line: clap's own message without its usage footer.
            let text = e.render().to_string();
            let line = text
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ");
            eprintln!("ringlog: {line} (see ringlog --help)");
            std::process::exit(2);
        }
    };
    if let Command::Schema { command } = cli.command {
        // No broker: the registry's REST API only.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let result = schema::run(&cli.registry, command, &mut out);
        let _ = out.flush();
        match result {
            Ok(true) => return,
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("ringlog: {e}");
                std::process::exit(1);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ringlog: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => {}
        // A closed stdout (`| head`) is how a reader says it has enough.
        Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("ringlog: {e}");
            std::process::exit(1);
        }
    }
}

#[derive(Debug)]
enum Failure {
    Client(Error),
    Output(std::io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Client(e) => write!(f, "{e}"),
            Failure::Output(e) => write!(f, "writing output: {e}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Client(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Output(e)
    }
}

fn invalid(message: String) -> Failure {
    Failure::Client(Error::new(ErrorKind::InvalidArgument, message))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client::connect(&cli.broker).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match cli.command {
        Command::Topic { command } => topic(&client, command, &mut out).await?,
        Command::Cluster {
            command: ClusterCommand::Info,
        } => {
            let admin = Admin::new(client);
            let mut cluster = admin.describe_cluster().await?;
            if cluster.cluster_mode {
                // Each leader knows its partitions' high watermarks: ask
                // every live broker for those the one asked does not lead.
                for b in cluster.brokers.iter().filter(|b| !b.fenced) {
                    if b.id == cluster.node_id {
                        continue;
                    }
                    let Ok(other) = Client::connect(&b.address).await else {
                        continue;
                    };
                    let Ok(theirs) = Admin::new(other).describe_cluster().await else {
                        continue;
                    };
                    for p in &mut cluster.partitions {
                        if p.high_watermark.is_none() {
                            p.high_watermark = theirs
                                .partitions
                                .iter()
                                .find(|q| q.topic == p.topic && q.partition == p.partition)
                                .and_then(|q| q.high_watermark);
                        }
                    }
                }
                let controller = cluster
                    .controller
                    .map_or("none (electing)".to_string(), |c| c.to_string());
                writeln!(
                    out,
                    "controller {controller} (asked broker {})",
                    cluster.node_id
                )?;
                for b in &cluster.brokers {
                    let state = if b.fenced { "fenced" } else { "alive" };
                    writeln!(
                        out,
                        "broker {} at {} {state} epoch {}",
                        b.id, b.address, b.epoch
                    )?;
                }
                for p in &cluster.partitions {
                    let leader = p.leader.map_or("none".to_string(), |l| l.to_string());
                    let hw = p
                        .high_watermark
                        .map_or("unknown".to_string(), |h| h.to_string());
                    writeln!(
                        out,
                        "partition {}-{} leader {leader} epoch {} replicas {:?} isr {:?} high-watermark {hw}",
                        p.topic, p.partition, p.leader_epoch, p.replicas, p.isr
                    )?;
                }
            }
            let meta = admin.metadata().await?;
            writeln!(out, "cluster {}", meta.cluster_id)?;
            for b in &meta.brokers {
                writeln!(
                    out,
                    "broker {} at {}:{} ({} shards)",
                    b.id, b.host, b.port, b.shards
                )?;
            }
            let user: Vec<_> = meta
                .topics
                .iter()
                .filter(|t| !t.name.starts_with("__"))
                .collect();
            writeln!(
                out,
                "{} topics, {} partitions",
                user.len(),
                user.iter().map(|t| t.partitions.len()).sum::<usize>()
            )?;
        }
        Command::Produce {
            topic,
            key_separator,
            acks,
            partition,
        } => produce(client, &topic, key_separator.as_deref(), &acks, partition).await?,
        Command::Consume(args) => consume(client, args, &mut out).await?,
        Command::Group { command } => group(&client, command, &mut out).await?,
        Command::Schema { .. } => unreachable!("run before the broker is reached"),
    }
    out.flush()?;
    Ok(())
}

async fn topic(
    client: &Client,
    command: TopicCommand,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let admin = Admin::new(client.clone());
    match command {
        TopicCommand::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            segment_bytes,
            fsync,
            replication_factor,
            min_insync_replicas,
            cleanup_policy,
            delete_retention_ms,
            schema_validation,
        } => {
            let mut t = match partitions {
                Some(n) => NewTopic::new(&name, n),
                None => NewTopic::with_default_partitions(&name),
            };
            if let Some(v) = retention_ms {
                t = t.retention_ms(v);
            }
            if let Some(v) = retention_bytes {
                t = t.retention_bytes(v);
            }
            if let Some(v) = segment_bytes {
                t = t.segment_bytes(v);
            }
            if let Some(v) = fsync {
                t = t.fsync(&v);
            }
            if let Some(v) = replication_factor {
                t = t.replication_factor(v);
            }
            if let Some(v) = min_insync_replicas {
                t = t.min_insync_replicas(v);
            }
            if let Some(v) = cleanup_policy {
                t = t.cleanup_policy(&v);
            }
            if let Some(v) = delete_retention_ms {
                t = t.delete_retention_ms(v);
            }
            if let Some(v) = schema_validation {
                t = t.schema_validation(&v);
            }
            let meta = admin.create_topic(t).await?;
            let count = meta.partitions.len();
            writeln!(
                out,
                "created topic {} with {count} partition{} (fsync {})",
                meta.name,
                if count == 1 { "" } else { "s" },
                meta.config.fsync
            )?;
        }
        TopicCommand::List => {
            for t in admin.list_topics().await? {
                writeln!(out, "{}\t{}", t.name, t.partitions)?;
            }
        }
        TopicCommand::Describe { name } => {
            let t = admin.describe_topic(&name).await?;
            writeln!(out, "topic {}", t.name)?;
            writeln!(out, "{}", settings_line(&t.config))?;
            writeln!(out, "partition\tleader\tshard\tlog-start\tlog-end")?;
            for p in &t.partitions {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    p.partition, p.leader, p.shard, p.log_start, p.log_end
                )?;
            }
        }
        TopicCommand::Delete { name, force } => {
            admin.delete_topic_with(&name, force).await?;
            writeln!(out, "deleted topic {name}")?;
        }
        TopicCommand::Alter { name, set, reset } => {
            let mut changes = Vec::new();
            for pair in &set {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| invalid(format!("--set {pair:?} is not KEY=VALUE")))?;
                changes.push((key, Some(value)));
            }
            changes.extend(reset.iter().map(|key| (key.as_str(), None)));
            if changes.is_empty() {
                return Err(invalid(
                    "nothing to change: give --set KEY=VALUE or --reset KEY".into(),
                ));
            }
            let t = admin.alter_topic_config(&name, &changes).await?;
            writeln!(out, "altered topic {name}")?;
            writeln!(out, "{}", settings_line(&t.config))?;
        }
        TopicCommand::AddPartitions { name, partitions } => {
            let meta = admin.add_partitions(&name, partitions).await?;
            writeln!(
                out,
                "topic {name} now has {} partitions",
                meta.config.partitions
            )?;
        }
    }
    Ok(())
}

/// A topic's settings on one line, as `topic describe` and `topic alter`
/// print them.
fn settings_line(c: &ringlog_client::TopicConfig) -> String {
    format!(
        "partitions {}  fsync {}  retention-ms {}  retention-bytes {}  segment-bytes {}  \
         cleanup-policy {}  delete-retention-ms {}  schema-validation {}",
        c.partitions,
        c.fsync,
        c.retention_ms,
        c.retention_bytes,
        c.segment_bytes,
        c.cleanup_policy,
        c.delete_retention_ms,
        c.schema_validation
    )
}

async fn produce(
    client: Client,
    topic: &str,
    sep: Option<&str>,
    acks: &str,
    partition: Option<u32>,
) -> Result<(), Failure> {
    let acks: Acks = acks.parse()?;
    let producer = Producer::new(
        client,
        ProducerConfig {
            acks,
            ..ProducerConfig::default()
        },
    )
    .await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut deliveries = std::collections::VecDeque::new();
    while let Some(line) = lines.next_line().await? {
        let mut record = match sep.and_then(|s| line.split_once(s)) {
            Some((key, value)) => Record::new(topic, value.to_string()).key(key.to_string()),
            None => Record::new(topic, line),
        };
        if let Some(p) = partition {
            record = record.partition(p);
        }
        deliveries.push_back(producer.send(record).await?);
        // Bound what is awaited later; the producer bounds the bytes itself.
        while deliveries.len() > 100_000 {
            if let Some(d) = deliveries.pop_front() {
                d.await?;
            }
        }
    }
    producer.flush().await?;
    for d in deliveries {
        d.await?;
    }
    Ok(())
}

/// What `ringlog consume` takes.
#[derive(Debug, clap::Args)]
struct ConsumeArgs {
    /// Topic.
    topic: String,
    /// Only this partition (default: all).
    #[arg(long)]
    partition: Option<u32>,
    /// beginning, end, an OFFSET, or @TIMESTAMP (ms). With --group it
    /// applies to partitions without a committed offset [default: end].
    #[arg(long)]
    from: Option<String>,
    /// Exit after printing this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Consumer group: start from its committed offsets, commit as records are printed.
    #[arg(long)]
    group: Option<String>,
    /// With --group: silence (ms) after which the group gives this
    /// consumer's partitions to the others.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: u64,
    /// With --group: range, roundrobin or sticky.
    #[arg(long, default_value = "range")]
    assignor: String,
    /// Output template (kcat's tokens): %s value, %k key, %p partition,
    /// %o offset, %T timestamp, %h headers, %t topic, %% a percent sign,
    /// \n newline, \t tab.
    #[arg(long, default_value = "%s\\n")]
    format: String,
}

async fn group(
    client: &Client,
    command: GroupCommand,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let admin = Admin::new(client.clone());
    match command {
        GroupCommand::List => {
            for g in admin.list_groups().await? {
                writeln!(out, "{g}")?;
            }
        }
        GroupCommand::Describe { name } => {
            let g = admin.describe_group(&name).await?;
            writeln!(
                out,
                "group {}  generation {}  assignor {}  members {}",
                g.group,
                g.generation,
                g.assignor,
                g.members.len()
            )?;
            for m in &g.members {
                let parts: Vec<String> = m
                    .assignment
                    .iter()
                    .map(|tp| format!("{}-{}", tp.topic, tp.partition))
                    .collect();
                writeln!(
                    out,
                    "member {}  topics {}  partitions {}",
                    m.member_id,
                    m.topics.join(","),
                    parts.join(",")
                )?;
            }
            writeln!(out, "topic\tpartition\tcommitted\tlog-end\tlag")?;
            let mut ends: std::collections::HashMap<String, Vec<u64>> =
                std::collections::HashMap::new();
            for o in &g.offsets {
                if !ends.contains_key(&o.topic) {
                    let end = match admin.describe_topic(&o.topic).await {
                        Ok(t) => t.partitions.iter().map(|p| p.log_end).collect(),
                        Err(_) => Vec::new(),
                    };
                    ends.insert(o.topic.clone(), end);
                }
                let end = ends
                    .get(&o.topic)
                    .and_then(|e| e.get(o.partition as usize))
                    .copied();
                let lag = end.map_or("?".to_string(), |e| e.saturating_sub(o.offset).to_string());
                let end = end.map_or("?".to_string(), |e| e.to_string());
                writeln!(
                    out,
                    "{}\t{}\t{}\t{end}\t{lag}",
                    o.topic, o.partition, o.offset
                )?;
            }
        }
    }
    Ok(())
}

fn parse_from(from: &str) -> Result<SeekTo, Failure> {
    match from {
        "beginning" => Ok(SeekTo::Beginning),
        "end" => Ok(SeekTo::End),
        ts if ts.starts_with('@') => ts[1..].parse().map(SeekTo::Timestamp).map_err(|_| {
            invalid(format!(
                "--from {ts}: @ must be followed by a timestamp in ms"
            ))
        }),
        offset => offset.parse().map(SeekTo::Offset).map_err(|_| {
            invalid(format!(
                "--from {offset}: expected beginning, end, an offset or @timestamp"
            ))
        }),
    }
}

async fn consume(client: Client, args: ConsumeArgs, out: &mut impl Write) -> Result<(), Failure> {
    let from = args.from.as_deref().map(parse_from).transpose()?;
    let template = Template::parse(&args.format);
    let reset = match from {
        Some(SeekTo::Beginning) => OffsetReset::Earliest,
        _ => OffsetReset::Latest,
    };
    let config = ConsumerConfig {
        group: args.group.clone(),
        auto_offset_reset: reset,
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        assignor: args.assignor.clone(),
        // Positions only ever cover printed records (see the loop), so
        // auto-commit (periodic, on revocation, on close) commits exactly
        // what was printed.
        auto_commit: true,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    let subscribed = args.group.is_some() && args.partition.is_none();
    if subscribed {
        // The group shares the topic's partitions; --from is the reset policy.
        if matches!(from, Some(SeekTo::Offset(_) | SeekTo::Timestamp(_))) {
            return Err(invalid(
                "with --group, --from takes beginning or end (or add --partition)".into(),
            ));
        }
        consumer.subscribe(&[&args.topic]).await?;
    } else {
        let partitions: Vec<u32> = match args.partition {
            Some(p) => {
                consumer.assign(&[(&args.topic, p)]).await?;
                vec![p]
            }
            None => consumer.assign_topic(&args.topic).await?,
        };
        // Without a group, --from places every partition; with one (and
        // --partition), the committed offset wins over beginning/end.
        let explicit = matches!(from, Some(SeekTo::Offset(_) | SeekTo::Timestamp(_)));
        if let Some(to) = from.filter(|_| args.group.is_none() || explicit) {
            for p in &partitions {
                consumer.seek(&args.topic, *p, to).await?;
            }
        }
    }
    let mut printed = 0u64;
    let limit = args.max_messages.unwrap_or(u64::MAX);
    while printed < limit {
        let records = consumer.poll(Duration::from_secs(1)).await?;
        if records.is_empty() {
            continue;
        }
        let take = records.len().min((limit - printed) as usize);
        for r in &records[..take] {
            template.write(out, r)?;
        }
        out.flush()?;
        printed += take as u64;
        // Records returned but not printed (past --max-messages) are handed
        // back, so no commit covers them.
        let mut first_unprinted: std::collections::BTreeMap<u32, u64> =
            std::collections::BTreeMap::new();
        for r in &records[take..] {
            first_unprinted.entry(r.partition).or_insert(r.offset);
        }
        for (p, offset) in first_unprinted {
            consumer
                .seek(&args.topic, p, SeekTo::Offset(offset))
                .await?;
        }
        if args.group.is_some() {
            // Commit what was printed (the positions after the last shown).
            match consumer.commit().await {
                Ok(()) => {}
                // A rebalance moved those partitions on: their next owner
                // reads them again from the last commit (at-least-once).
                Err(e)
                    if subscribed
                        && matches!(
                            e.kind(),
                            ErrorKind::IllegalGeneration | ErrorKind::UnknownMember
                        ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if subscribed {
        consumer.close().await?;
    }
    Ok(())
}

/// A parsed `--format` template.
struct Template(Vec<Piece>);

enum Piece {
    Text(Vec<u8>),
    Value,
    Key,
    Partition,
    Offset,
    Timestamp,
    Headers,
    Topic,
}

impl Template {
    fn parse(format: &str) -> Template {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            let piece = match (c, chars.peek().copied()) {
                ('%', Some('s')) => Some(Piece::Value),
                ('%', Some('k')) => Some(Piece::Key),
                ('%', Some('p')) => Some(Piece::Partition),
                ('%', Some('o')) => Some(Piece::Offset),
                ('%', Some('T')) => Some(Piece::Timestamp),
                ('%', Some('h')) => Some(Piece::Headers),
                ('%', Some('t')) => Some(Piece::Topic),
                ('%', Some('%')) => Some(Piece::Text(b"%".to_vec())),
                ('\\', Some('n')) => Some(Piece::Text(b"\n".to_vec())),
                ('\\', Some('t')) => Some(Piece::Text(b"\t".to_vec())),
                _ => None,
            };
            match piece {
                Some(Piece::Text(t)) => {
                    chars.next();
                    text.extend(t);
                }
                Some(p) => {
                    chars.next();
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(p);
                }
                None => {
                    let mut buf = [0u8; 4];
                    text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Template(pieces)
    }

    fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> std::io::Result<()> {
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.write_all(t)?,
                Piece::Value => out.write_all(r.value.as_deref().unwrap_or_default())?,
                Piece::Key => out.write_all(r.key.as_deref().unwrap_or_default())?,
                Piece::Partition => write!(out, "{}", r.partition)?,
                Piece::Offset => write!(out, "{}", r.offset)?,
                Piece::Timestamp => write!(out, "{}", r.timestamp)?,
                Piece::Topic => out.write_all(r.topic.as_bytes())?,
                Piece::Headers => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(k)?;
                        out.write_all(b"=")?;
                        out.write_all(v.as_deref().unwrap_or_default())?;
                    }
                }
            }
        }
        Ok(())
    }
}
