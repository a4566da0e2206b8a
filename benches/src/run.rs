//! Runs producers and consumers against a broker and gathers the figures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use ringlog_client::{
    Acks, Admin, Client, Consumer, ConsumerConfig, ErrorKind, NewTopic, OffsetReset, Producer,
    ProducerConfig, Record,
};
use serde::Serialize;

use crate::message;
use crate::stats::{histogram, Latency, Throughput, Verifier};

#[cfg(feature = "kafka")]
mod kafka;

/// Which protocol the load goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ringlog's own, through `ringlog-client`.
    Native,
    /// Kafka's, through librdkafka (built with the `kafka` feature).
    Kafka,
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Producers only.
    Produce,
    /// Consumers only, reading what is in the topic.
    Consume,
    /// Producers and consumers at once; latency from send to receipt.
    E2e,
}

/// Every parameter of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Mode.
    pub mode: Mode,
    /// Broker address (native protocol: topics are created through it).
    pub broker: String,
    /// The protocol producers and consumers use.
    pub protocol: Protocol,
    /// The broker's Kafka listener (with [`Protocol::Kafka`]).
    pub kafka_broker: Option<String>,
    /// Topic.
    pub topic: String,
    /// Partitions of the topic created.
    pub partitions: u32,
    /// Producer count.
    pub producers: u32,
    /// Consumer count.
    pub consumers: u32,
    /// Bytes per message value.
    pub message_size: usize,
    /// Producer batch size.
    pub batch_size: usize,
    /// Producer linger.
    pub linger_ms: u64,
    /// 0, 1 or all.
    pub acks: String,
    /// fsync policy of the topic created.
    pub fsync: String,
    /// Replicas per partition of the topic created (cluster mode).
    pub replication_factor: Option<u32>,
    /// `min.insync.replicas` of the topic created (cluster mode).
    pub min_insync_replicas: Option<u32>,
    /// Total messages (None: run for `duration_secs`).
    pub messages: Option<u64>,
    /// Seconds to produce (after warm-up) when `messages` is None.
    pub duration_secs: Option<f64>,
    /// Open-loop rate, all producers together.
    pub rate: Option<f64>,
    /// Seconds excluded from the figures at the start.
    pub warmup_secs: f64,
    /// Use the client's per-record API (`send`, `poll`) instead of its
    /// batch-level one (`send_batch`, `poll_batches`); open-loop runs
    /// (`rate`) always send per record.
    pub per_record: bool,
    /// Consumers check message headers only, not the filler bytes.
    pub skip_content_check: bool,
    /// Shards of the embedded broker, if any.
    pub embedded_shards: Option<usize>,
}

/// The figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Parameters.
    pub params: Params,
    /// Per producer, measured after warm-up.
    pub producers: Vec<Throughput>,
    /// All producers.
    pub produce: Option<Throughput>,
    /// Acknowledgement latency: from the intended send time (open loop) or
    /// the send call (closed loop) to the acknowledgement.
    pub ack_latency: Option<Latency>,
    /// Per consumer.
    pub consumers: Vec<Throughput>,
    /// All consumers.
    pub consume: Option<Throughput>,
    /// Send to receipt (e2e): from the time in the message to its arrival.
    pub e2e_latency: Option<Latency>,
    /// Acknowledged (produce/e2e) or consumed (consume) messages per second, second by second.
    pub timeline: Vec<(f64, u64)>,
    /// Messages every consumer checked.
    pub verified: u64,
    /// What verification found wrong (the first few).
    pub errors: Vec<String>,
    /// Count of errors.
    pub error_count: u64,
}

struct Shared {
    params: Params,
    started: Instant,
    warm_until: Instant,
    /// Producers stop sending (duration mode).
    stop: AtomicBool,
    /// Producers have all finished: `sent` is final.
    produced: AtomicBool,
    acked: AtomicU64,
    consumed: AtomicU64,
    sent: Mutex<Vec<u64>>,
}

impl Shared {
    /// Whether a consumer that received `received` messages has them all:
    /// what was stored when the run began (consume mode, `stored`), or
    /// every message sent once the producers are done.
    fn consumed_all(&self, received: u64, stored: u64) -> bool {
        let target = if self.params.mode == Mode::Consume {
            stored
        } else if self.produced.load(Ordering::Relaxed) {
            self.sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .sum()
        } else {
            return false;
        };
        received >= target
    }
}

/// Checks one received message: decoded whole (or its header only, with
/// `skip_content_check`), its send-to-receipt latency recorded in `h`
/// (e2e, after warm-up), and handed to the verifier.
fn check_message(
    shared: &Shared,
    h: &mut Histogram<u64>,
    verifier: &mut Verifier,
    (partition, value): (u32, &[u8]),
    (now, now_ns): (Instant, u64),
) {
    let p = &shared.params;
    let decoded = if p.skip_content_check {
        message::decode_header(value)
    } else {
        message::decode(value)
    };
    if let Ok(m) = &decoded {
        if p.mode == Mode::E2e && now >= shared.warm_until {
            h.saturating_record(now_ns.saturating_sub(m.sent_ns) / 1000);
        }
    }
    verifier.record(partition, decoded);
}

/// Runs the benchmark against `params.broker`; `progress` is called about
/// once a second with (seconds, acked, consumed).
pub async fn run(
    params: Params,
    progress: impl Fn(f64, u64, u64) + Send + 'static,
) -> anyhow::Result<Report> {
    let kafka_bootstrap = match params.protocol {
        Protocol::Native => None,
        Protocol::Kafka => {
            if !cfg!(feature = "kafka") {
                bail!("this build has no Kafka mode: build ringlog-bench with --features kafka");
            }
            if params.rate.is_some() || params.per_record {
                bail!("the Kafka mode runs closed loop, per record: drop --rate and --per-record");
            }
            Some(
                params
                    .kafka_broker
                    .clone()
                    .context("the Kafka mode needs the broker's Kafka listener (--kafka-broker)")?,
            )
        }
    };
    let client = Client::connect(&params.broker)
        .await
        .context("connecting to the broker")?;
    let admin = Admin::new(client.clone());
    if params.mode != Mode::Consume {
        let mut topic = NewTopic::new(&params.topic, params.partitions).fsync(&params.fsync);
        if let Some(rf) = params.replication_factor {
            topic = topic.replication_factor(rf);
        }
        if let Some(n) = params.min_insync_replicas {
            topic = topic.min_insync_replicas(n);
        }
        match admin.create_topic(topic).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::TopicExists => bail!(
                "topic {:?} exists: choose another --topic or delete it (ringlog topic delete {})",
                params.topic,
                params.topic
            ),
            Err(e) => return Err(e).context("creating the topic"),
        }
    }
    let meta = admin
        .describe_topic(&params.topic)
        .await
        .context("describing the topic")?;
    let partitions = meta.config.partitions;
    // In consume mode the target is what the topic holds now.
    let stored: u64 = meta
        .partitions
        .iter()
        .map(|p| p.log_end - p.log_start)
        .sum();

    let now = Instant::now();
    let shared = Arc::new(Shared {
        params: params.clone(),
        started: now,
        warm_until: now + Duration::from_secs_f64(params.warmup_secs),
        stop: AtomicBool::new(false),
        produced: AtomicBool::new(params.mode == Mode::Consume),
        acked: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        sent: Mutex::new(vec![0; params.producers as usize]),
    });

    let ticker = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut timeline = Vec::new();
            let (mut last_acked, mut last_consumed) = (0, 0);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = shared.started.elapsed().as_secs_f64();
                let (acked, consumed) = (
                    shared.acked.load(Ordering::Relaxed),
                    shared.consumed.load(Ordering::Relaxed),
                );
                let delta = if shared.params.mode == Mode::Consume {
                    consumed - last_consumed
                } else {
                    acked - last_acked
                };
                timeline.push((t, delta));
                (last_acked, last_consumed) = (acked, consumed);
                progress(t, acked, consumed);
                if shared.stop.load(Ordering::Relaxed) && shared.produced.load(Ordering::Relaxed) {
                    return timeline;
                }
            }
        })
    };

    let mut producer_tasks = Vec::new();
    if params.mode != Mode::Consume {
        for p in 0..params.producers {
            producer_tasks.push(match &kafka_bootstrap {
                #[cfg(feature = "kafka")]
                Some(bootstrap) => {
                    let (shared, bootstrap) = (shared.clone(), bootstrap.clone());
                    tokio::task::spawn_blocking(move || {
                        kafka::produce(shared, bootstrap, p, partitions)
                    })
                }
                _ => {
                    let client = Client::connect(&params.broker).await?;
                    tokio::spawn(produce(shared.clone(), client, p, partitions))
                }
            });
        }
    }
    let mut consumer_tasks = Vec::new();
    if params.mode != Mode::Produce {
        for _ in 0..params.consumers {
            consumer_tasks.push(match &kafka_bootstrap {
                #[cfg(feature = "kafka")]
                Some(bootstrap) => {
                    let (shared, bootstrap) = (shared.clone(), bootstrap.clone());
                    tokio::task::spawn_blocking(move || {
                        kafka::consume(shared, bootstrap, partitions, stored)
                    })
                }
                _ => {
                    let client = Client::connect(&params.broker).await?;
                    tokio::spawn(consume(shared.clone(), client, stored))
                }
            });
        }
    }
    if params.mode != Mode::Consume {
        if let (None, Some(secs)) = (params.messages, params.duration_secs) {
            tokio::time::sleep(Duration::from_secs_f64(params.warmup_secs + secs)).await;
            shared.stop.store(true, Ordering::Relaxed);
        }
    }

    let mut ack_hist = histogram();
    let mut producers = Vec::new();
    for t in producer_tasks {
        let (h, tp) = t.await??;
        ack_hist.add(&h).ok();
        producers.push(tp);
    }
    shared.produced.store(true, Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    let sent = shared
        .sent
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();

    let mut e2e_hist = histogram();
    let mut consumers = Vec::new();
    let (mut verified, mut errors, mut error_count) = (0, Vec::new(), 0);
    for t in consumer_tasks {
        let (h, tp, mut verifier) = t.await??;
        if params.mode == Mode::E2e {
            verifier.check_complete(&sent);
        }
        e2e_hist.add(&h).ok();
        consumers.push(tp);
        verified += verifier.received;
        error_count += verifier.error_count;
        errors.extend(verifier.errors);
    }
    let timeline = ticker.await?;

    let sum = |list: &[Throughput]| {
        let secs = list.iter().map(|t| t.seconds).fold(0.0, f64::max);
        Throughput::of(
            list.iter().map(|t| t.messages).sum(),
            list.iter().map(|t| t.bytes).sum(),
            secs,
        )
    };
    Ok(Report {
        produce: (!producers.is_empty()).then(|| sum(&producers)),
        ack_latency: (!producers.is_empty()).then(|| Latency::of(&ack_hist)),
        consume: (!consumers.is_empty()).then(|| sum(&consumers)),
        e2e_latency: (params.mode == Mode::E2e).then(|| Latency::of(&e2e_hist)),
        params,
        producers,
        consumers,
        timeline,
        verified,
        errors,
        error_count,
    })
}

fn acks(text: &str) -> anyhow::Result<Acks> {
    text.parse::<Acks>().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Ticks at `every`, each carrying its intended time. A thread of its own
/// sleeps precisely (tokio's timers round to the millisecond, and in an
/// open loop the generator's own lateness would be charged to the broker).
fn pace(every: Duration, shared: Arc<Shared>) -> tokio::sync::mpsc::Receiver<Instant> {
    let (tx, rx) = tokio::sync::mpsc::channel(100_000);
    std::thread::spawn(move || {
        let start = Instant::now();
        for n in 0u64.. {
            let at = start + every.mul_f64(n as f64);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if shared.stop.load(Ordering::Relaxed) || tx.blocking_send(at).is_err() {
                return;
            }
        }
    });
    rx
}

/// One producer: sends its share, open loop at its share of `rate` if set.
async fn produce(
    shared: Arc<Shared>,
    client: Client,
    index: u32,
    partitions: u32,
) -> anyhow::Result<(Histogram<u64>, Throughput)> {
    let p = &shared.params;
    let config = ProducerConfig {
        batch_size: p.batch_size,
        linger: Duration::from_millis(p.linger_ms),
        acks: acks(&p.acks)?,
        buffer_memory: (64 << 20).max(p.batch_size * 64),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config).await?;
    let share = p.messages.map(|n| {
        n / u64::from(p.producers) + u64::from(u64::from(index) < n % u64::from(p.producers))
    });
    let interval = p
        .rate
        .map(|r| Duration::from_secs_f64(f64::from(p.producers) / r));
    if interval.is_none() && !p.per_record {
        return produce_batches(shared, producer, index, partitions, share).await;
    }
    let (tx, rx) =
        tokio::sync::mpsc::unbounded_channel::<(Instant, bool, u64, ringlog_client::Delivery)>();
    let acker = spawn_acker(shared.clone(), rx, p.message_size as u64);
    let mut pacer = interval.map(|every| pace(every, shared.clone()));
    let mut seq = 0u64;
    loop {
        if share.is_some_and(|n| seq >= n)
            || (share.is_none() && shared.stop.load(Ordering::Relaxed))
        {
            break;
        }
        let intended = match &mut pacer {
            Some(ticks) => match ticks.recv().await {
                Some(at) => at,
                None => break,
            },
            None => Instant::now(),
        };
        // The message carries its intended send time, so lateness counts.
        let lateness = Instant::now().saturating_duration_since(intended);
        let sent_ns = message::wall_ns().saturating_sub(lateness.as_nanos() as u64);
        let value = message::encode(index, seq, sent_ns, p.message_size);
        let partition = ((seq + u64::from(index)) % u64::from(partitions)) as u32;
        let delivery = producer
            .send(Record::new(&p.topic, value).partition(partition))
            .await?;
        let measured = intended >= shared.warm_until;
        if tx.send((intended, measured, 1, delivery)).is_err() {
            break;
        }
        seq += 1;
    }
    producer.flush().await?;
    drop(tx);
    shared.sent.lock().unwrap_or_else(|e| e.into_inner())[index as usize] = seq;
    acker.await?
}

/// Waits for each delivery in send order; for the measured ones, records
/// the latency of each of its `count` messages (of `size` bytes) from when
/// it was meant to be sent, and the throughput from the first to the last.
fn spawn_acker<T: Send + 'static>(
    shared: Arc<Shared>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(
        Instant,
        bool,
        u64,
        impl std::future::Future<Output = ringlog_client::Result<T>> + Send + 'static,
    )>,
    size: u64,
) -> tokio::task::JoinHandle<anyhow::Result<(Histogram<u64>, Throughput)>> {
    tokio::spawn(async move {
        let mut h = histogram();
        let (mut msgs, mut bytes) = (0u64, 0u64);
        let (mut first, mut last) = (None, None);
        while let Some((intended, measured, count, delivery)) = rx.recv().await {
            delivery.await?;
            let now = Instant::now();
            shared.acked.fetch_add(count, Ordering::Relaxed);
            if measured {
                let latency = now.duration_since(intended).as_micros() as u64;
                h.saturating_record_n(latency, count);
                msgs += count;
                bytes += count * size;
                first.get_or_insert(intended);
                last = Some(now);
            }
        }
        let secs = match (first, last) {
            (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
            _ => 0.0,
        };
        anyhow::Ok((h, Throughput::of(msgs, bytes, secs)))
    })
}

/// One producer at full speed, through the client's batch-level path: each
/// message is written straight into the batch for its partition, and one
/// acknowledgement covers the batch. A batch's messages are stamped with the
/// time it was started, so their latency is from then to its acknowledgement.
async fn produce_batches(
    shared: Arc<Shared>,
    producer: Producer,
    index: u32,
    partitions: u32,
    share: Option<u64>,
) -> anyhow::Result<(Histogram<u64>, Throughput)> {
    let p = &shared.params;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(
        Instant,
        bool,
        u64,
        ringlog_client::BatchDelivery,
    )>();
    let acker = spawn_acker(shared.clone(), rx, p.message_size as u64);
    let mut seq = 0u64;
    let mut batches = 0u64;
    'batches: loop {
        let partition = ((batches + u64::from(index)) % u64::from(partitions)) as u32;
        batches += 1;
        let mut batch = producer.batch(&p.topic, partition).await?;
        let started = Instant::now();
        let sent_ns = message::wall_ns();
        let record = ringlog_client::NewRecord {
            key: None,
            value: None,
            headers: &[],
            timestamp: (sent_ns / 1_000_000) as i64,
        };
        let first_seq = seq;
        while batch.is_empty() || batch.size_bytes() + p.message_size + 16 <= p.batch_size {
            if share.is_some_and(|n| seq >= n)
                || (share.is_none() && shared.stop.load(Ordering::Relaxed))
            {
                break;
            }
            batch.push_with(&record, p.message_size, |out| {
                message::encode_into(out, index, seq, sent_ns)
            })?;
            seq += 1;
        }
        if batch.is_empty() {
            break 'batches;
        }
        let measured = started >= shared.warm_until;
        let delivery = producer.send_batch(batch).await?;
        if tx
            .send((started, measured, seq - first_seq, delivery))
            .is_err()
        {
            break;
        }
    }
    producer.flush().await?;
    drop(tx);
    shared.sent.lock().unwrap_or_else(|e| e.into_inner())[index as usize] = seq;
    acker.await?
}

/// One consumer: reads every partition from the beginning, checking every
/// message, until it has all that was produced (or, in consume mode, all
/// that was stored when the run began).
async fn consume(
    shared: Arc<Shared>,
    client: Client,
    stored: u64,
) -> anyhow::Result<(Histogram<u64>, Throughput, Verifier)> {
    let p = &shared.params;
    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        max_partition_fetch_bytes: 4 << 20,
        max_poll_records: 10_000,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    consumer.assign_topic(&p.topic).await?;
    consumer.seek_all(ringlog_client::SeekTo::Beginning).await?;
    let mut h = histogram();
    let mut verifier = Verifier::default();
    let (mut msgs, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, None);
    loop {
        if shared.consumed_all(verifier.received, stored) {
            break;
        }
        // Per record, or (the default) whole batches read in place with
        // nothing allocated per record.
        let (records, batches) = if p.per_record {
            (consumer.poll(Duration::from_millis(200)).await?, Vec::new())
        } else {
            (
                Vec::new(),
                consumer.poll_batches(Duration::from_millis(200)).await?,
            )
        };
        let now = Instant::now();
        let now_ns = message::wall_ns();
        let counted = now >= shared.warm_until || p.mode == Mode::Consume;
        let mut received = 0u64;
        let mut take = |partition: u32, value: &[u8]| {
            check_message(
                &shared,
                &mut h,
                &mut verifier,
                (partition, value),
                (now, now_ns),
            );
            received += 1;
            if counted {
                bytes += value.len() as u64;
            }
        };
        for r in &records {
            take(r.partition, r.value.as_deref().unwrap_or_default());
        }
        for batch in &batches {
            for r in batch.records()? {
                take(batch.partition(), r?.value.unwrap_or_default());
            }
        }
        if counted && received > 0 {
            msgs += received;
            first.get_or_insert(now);
            last = Some(now);
        }
        shared.consumed.fetch_add(received, Ordering::Relaxed);
    }
    let secs = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    Ok((h, Throughput::of(msgs, bytes, secs), verifier))
}
