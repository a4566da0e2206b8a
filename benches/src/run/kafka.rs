//! The same load driven through the broker's Kafka listener by librdkafka
//! (the `rdkafka` crate), the client Kafka and Redpanda are usually
//! measured with. Each producer and consumer runs on a thread of its own,
//! as librdkafka's blocking API wants; messages, verification and figures
//! are the native mode's.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{check_message, Mode, Shared};
use crate::message;
use crate::stats::{histogram, Throughput, Verifier};

/// What the delivery callback gathers: acknowledgements after warm-up,
/// their latency from the send call, and the first failure.
struct Deliveries {
    shared: Arc<Shared>,
    started: Instant,
    size: u64,
    figures: Mutex<Figures>,
}

struct Figures {
    latency: Histogram<u64>,
    messages: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    failure: Option<String>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// Microseconds from `started` to the send call.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        let now = Instant::now();
        let mut f = self.figures.lock().unwrap_or_else(|e| e.into_inner());
        if let Err((e, _)) = result {
            f.failure.get_or_insert_with(|| e.to_string());
            return;
        }
        self.shared.acked.fetch_add(1, Ordering::Relaxed);
        let sent = self.started + Duration::from_micros(sent_us as u64);
        if sent >= self.shared.warm_until {
            f.latency
                .saturating_record(now.duration_since(sent).as_micros() as u64);
            f.messages += 1;
            f.first.get_or_insert(sent);
            f.last = Some(now);
        }
    }
}

/// One producer at full speed (closed loop): every message through
/// librdkafka's queue, acknowledged per message by its delivery callback.
pub fn produce(
    shared: Arc<Shared>,
    bootstrap: String,
    index: u32,
    partitions: u32,
) -> anyhow::Result<(Histogram<u64>, Throughput)> {
    let p = shared.params.clone();
    let acks = if p.acks == "all" { "-1" } else { &p.acks };
    let context = Deliveries {
        shared: shared.clone(),
        started: Instant::now(),
        size: p.message_size as u64,
        figures: Mutex::new(Figures {
            latency: histogram(),
            messages: 0,
            first: None,
            last: None,
            failure: None,
        }),
    };
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", acks)
        .set("linger.ms", p.linger_ms.to_string())
        .set("batch.size", p.batch_size.to_string())
        // The native producer's buffer (`buffer_memory` in `super::produce`),
        // so neither side queues more ahead of its acknowledgements.
        .set(
            "queue.buffering.max.kbytes",
            ((64usize << 20).max(p.batch_size * 64) >> 10).to_string(),
        )
        .set("queue.buffering.max.messages", "1000000")
        .set("enable.idempotence", "false")
        .set("compression.type", "none")
        .create_with_context(context)
        .context("creating the librdkafka producer")?;
    let share = p.messages.map(|n| {
        n / u64::from(p.producers) + u64::from(u64::from(index) < n % u64::from(p.producers))
    });
    let mut value = vec![0u8; p.message_size];
    let mut seq = 0u64;
    while !(share.is_some_and(|n| seq >= n)
        || (share.is_none() && shared.stop.load(Ordering::Relaxed)))
    {
        message::encode_into(&mut value, index, seq, message::wall_ns());
        let partition = ((seq + u64::from(index)) % u64::from(partitions)) as i32;
        let sent_us = producer.context().started.elapsed().as_micros() as usize;
        let mut record = BaseRecord::with_opaque_to(&p.topic, sent_us)
            .payload(&value[..])
            .partition(partition);
        loop {
            match producer.send::<(), [u8]>(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => anyhow::bail!("librdkafka refused a message: {e}"),
            }
        }
        seq += 1;
        if seq % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("librdkafka flushing its queue")?;
    shared.sent.lock().unwrap_or_else(|e| e.into_inner())[index as usize] = seq;
    let context = producer.context();
    let f = context.figures.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(failure) = &f.failure {
        anyhow::bail!("a message was not delivered: {failure}");
    }
    let secs = match (f.first, f.last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    Ok((
        f.latency.clone(),
        Throughput::of(f.messages, f.messages * context.size, secs),
    ))
}

/// One consumer: every partition assigned from the beginning, each message
/// checked, until it has what was produced (or, in consume mode, what was
/// stored when the run began).
pub fn consume(
    shared: Arc<Shared>,
    bootstrap: String,
    partitions: u32,
    stored: u64,
) -> anyhow::Result<(Histogram<u64>, Throughput, Verifier)> {
    let p = shared.params.clone();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "ringlog-bench")
        .set("enable.auto.commit", "false")
        .set("max.partition.fetch.bytes", (4 << 20).to_string())
        .set("fetch.max.bytes", (64 << 20).to_string())
        .create()
        .context("creating the librdkafka consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment.add_partition_offset(&p.topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut h = histogram();
    let mut verifier = Verifier::default();
    let (mut msgs, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, None);
    loop {
        if shared.consumed_all(verifier.received, stored) {
            break;
        }
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = polled.context("librdkafka consuming")?;
        let now = Instant::now();
        let value = m.payload().unwrap_or_default();
        check_message(
            &shared,
            &mut h,
            &mut verifier,
            (m.partition() as u32, value),
            (now, message::wall_ns()),
        );
        shared.consumed.fetch_add(1, Ordering::Relaxed);
        if now >= shared.warm_until || p.mode == Mode::Consume {
            msgs += 1;
            bytes += value.len() as u64;
            first.get_or_insert(now);
            last = Some(now);
        }
    }
    let secs = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    Ok((h, Throughput::of(msgs, bytes, secs), verifier))
}
