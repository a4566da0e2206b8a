//! Prints every record of a topic from the beginning, then follows it,
//! committing its progress for the group `example` after each poll.
//!
//! Start a broker (`cargo run -p ringlog-server`), produce something (see the
//! `producer` example), then:
//! `cargo run -p ringlog-client --example consumer -- [BROKER] [TOPIC]`

use std::time::Duration;

use ringlog_client::{Client, Consumer, ConsumerConfig, OffsetReset};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ringlog_client::Error> {
    let mut args = std::env::args().skip(1);
    let broker = args
        .next()
        .unwrap_or_else(|| ringlog_client::DEFAULT_BROKER.into());
    let topic = args.next().unwrap_or_else(|| "example".into());

    let client = Client::connect(&broker).await?;
    let config = ConsumerConfig {
        group: Some("example".into()),
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    let partitions = consumer.assign_topic(&topic).await?;
    println!("reading {topic} partitions {partitions:?}; Ctrl-C to stop");
    loop {
        let records = consumer.poll(Duration::from_secs(1)).await?;
        for r in &records {
            let key = r
                .key
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let value = r
                .value
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            println!("{}-{} @{} [{key}] {value}", r.topic, r.partition, r.offset);
        }
        if !records.is_empty() {
            consumer.commit().await?;
        }
    }
}
