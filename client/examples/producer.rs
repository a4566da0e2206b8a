//! Sends `COUNT` keyed records to a topic and prints where each landed.
//!
//! Start a broker (`cargo run -p ringlog-server`), then:
//! `cargo run -p ringlog-client --example producer -- [BROKER] [TOPIC] [COUNT]`

use ringlog_client::{Admin, Client, ErrorKind, NewTopic, Producer, ProducerConfig, Record};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ringlog_client::Error> {
    let mut args = std::env::args().skip(1);
    let broker = args
        .next()
        .unwrap_or_else(|| ringlog_client::DEFAULT_BROKER.into());
    let topic = args.next().unwrap_or_else(|| "example".into());
    let count: u32 = args.next().and_then(|c| c.parse().ok()).unwrap_or(10);

    let client = Client::connect(&broker).await?;
    match Admin::new(client.clone())
        .create_topic(NewTopic::new(&topic, 3))
        .await
    {
        Ok(_) => println!("created topic {topic}"),
        Err(e) if e.kind() == ErrorKind::TopicExists => {}
        Err(e) => return Err(e),
    }
    let producer = Producer::new(client, ProducerConfig::default()).await?;
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = Record::new(&topic, format!("event {i}"))
            .key(format!("user-{}", i % 4))
            .header("source", "example");
        deliveries.push(producer.send(record).await?);
    }
    for d in deliveries {
        let stored = d.await?;
        println!(
            "{}-{} @ {:?}",
            stored.topic, stored.partition, stored.offset
        );
    }
    Ok(())
}
