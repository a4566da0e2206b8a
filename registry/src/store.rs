//! The `_schemas` topic through the broker's native protocol: created
//! compacted with one partition if it is missing, read to its end before
//! every request, appended to only if nobody appended since (a conditional
//! produce), so several registries on one topic never decide on stale state.

use crate::state::{Record, State};
use ringlog_client::{
    Admin, Client, Consumer, ConsumerConfig, ErrorKind, NewTopic, OffsetReset, SeekTo,
};
use ringlog_format::batch::{BatchBuilder, NewRecord, ProducerStamp};
use std::time::Duration;

/// The topic, Confluent's name.
pub const SCHEMAS_TOPIC: &str = "_schemas";

/// Why an append did not happen.
#[derive(Debug)]
pub enum AppendError {
    /// Another writer appended first: read and decide again.
    Moved,
    /// The broker failed or refused.
    Failed(ringlog_client::Error),
}

/// The topic, and how far this registry has read it.
pub struct Store {
    client: Client,
    admin: Admin,
    /// Reading the topic, once it exists.
    consumer: Option<Consumer>,
}

impl Store {
    /// Connects to the broker at `broker`. The topic is created by the
    /// first write (compacted, one partition): a registry nobody writes to
    /// leaves no trace in the broker.
    pub async fn open(broker: &str) -> ringlog_client::Result<Store> {
        let client = Client::connect(broker).await?;
        let admin = Admin::new(client.clone());
        Ok(Store {
            client,
            admin,
            consumer: None,
        })
    }

    /// The offset after the last record read.
    pub fn position(&self) -> u64 {
        self.consumer
            .as_ref()
            .and_then(|c| c.position(SCHEMAS_TOPIC, 0))
            .unwrap_or(0)
    }

    /// The topic's end offset, `None` if it does not exist.
    async fn end(&self) -> ringlog_client::Result<Option<u64>> {
        match self.admin.describe_topic(SCHEMAS_TOPIC).await {
            Ok(meta) => Ok(Some(meta.partitions.first().map_or(0, |p| p.log_end))),
            Err(e) if e.kind() == ErrorKind::UnknownTopic => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn start_reading(&mut self) -> ringlog_client::Result<&mut Consumer> {
        if self.consumer.is_none() {
            let config = ConsumerConfig {
                group: None,
                auto_offset_reset: OffsetReset::Earliest,
                fetch_max_wait: Duration::from_millis(100),
                ..ConsumerConfig::default()
            };
            let mut consumer = Consumer::new(self.client.clone(), config);
            consumer.assign(&[(SCHEMAS_TOPIC, 0)]).await?;
            consumer.seek(SCHEMAS_TOPIC, 0, SeekTo::Beginning).await?;
            self.consumer = Some(consumer);
        }
        Ok(self.consumer.as_mut().expect("just set"))
    }

    /// Reads the topic to its end into `state`.
    pub async fn catch_up(&mut self, state: &mut State) -> ringlog_client::Result<()> {
        let Some(end) = self.end().await? else {
            return Ok(());
        };
        let consumer = self.start_reading().await?;
        while consumer.position(SCHEMAS_TOPIC, 0).unwrap_or(0) < end {
            for r in consumer.poll(Duration::from_millis(200)).await? {
                if let Some(key) = &r.key {
                    state.apply(key, r.value.as_deref());
                }
            }
        }
        Ok(())
    }

    async fn create_topic(&self) -> ringlog_client::Result<()> {
        let topic = NewTopic::new(SCHEMAS_TOPIC, 1).cleanup_policy("compact");
        match self.admin.create_topic(topic).await {
            Ok(_) => {
                tracing::info!("created the {SCHEMAS_TOPIC} topic");
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::TopicExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Appends `records` in one batch if the topic still ends where this
    /// registry read it to.
    pub async fn append(&mut self, records: &[Record]) -> Result<(), AppendError> {
        let mut batch = BatchBuilder::new(ProducerStamp::NONE);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for (key, value) in records {
            let key = key.encode();
            batch
                .push(&NewRecord {
                    key: Some(&key),
                    value: value.as_deref(),
                    headers: &[],
                    timestamp: now,
                })
                .map_err(|e| {
                    AppendError::Failed(ringlog_client::Error::new(
                        ErrorKind::InvalidArgument,
                        e.to_string(),
                    ))
                })?;
        }
        let Some(batch) = batch.finish() else {
            return Ok(());
        };
        if self.consumer.is_none() {
            self.create_topic().await.map_err(AppendError::Failed)?;
            // Another registry may have written meanwhile: the append
            // below then finds the topic moved.
            self.start_reading().await.map_err(AppendError::Failed)?;
        }
        match self
            .client
            .produce_if(SCHEMAS_TOPIC, 0, self.position(), batch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::EndOffsetMoved => Err(AppendError::Moved),
            Err(e) => Err(AppendError::Failed(e)),
        }
    }
}
