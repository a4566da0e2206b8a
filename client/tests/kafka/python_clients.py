"""Kafka's Python clients against a ringlog broker's Kafka listener.

Run by client/tests/kafka_clients.rs: python_clients.py BOOTSTRAP CHECK
Each check raises (a non-zero exit) on the first thing that is not as a
Kafka broker would answer; it prints what it did on success.
"""
import sys

BOOTSTRAP, CHECK = sys.argv[1], sys.argv[2]


def kafka_python_round_trip():
    """kafka-python: admin create, produce with keys and headers (acks=all),
    consume back by assignment, every field as sent, offsets in order."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic("kp-orders", num_partitions=3, replication_factor=1)])
    assert "kp-orders" in admin.list_topics(), admin.list_topics()
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    sent = {}
    futures = []
    for i in range(300):
        key, value = b"key-%d" % i, b"value-%d" % i
        headers = [("n", str(i).encode()), ("empty", b"")]
        futures.append((key, value, producer.send("kp-orders", key=key, value=value, headers=headers, partition=i % 3)))
    producer.flush()
    for key, value, f in futures:
        md = f.get(timeout=10)
        sent[(md.partition, md.offset)] = (key, value)
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, consumer_timeout_ms=5000, enable_auto_commit=False)
    tps = [TopicPartition("kp-orders", p) for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {}
    last = {}
    for m in consumer:
        assert last.get(m.partition, -1) < m.offset, "offsets out of order"
        last[m.partition] = m.offset
        assert dict(m.headers)["n"] == m.value.split(b"-")[1], m
        got[(m.partition, m.offset)] = (m.key, m.value)
        if len(got) == len(sent):
            break
    assert got == sent, (len(got), len(sent))
    ends = consumer.end_offsets(tps)
    assert sum(ends.values()) == 300, ends
    print("kafka-python: 300 records back with keys, values and headers")


def confluent_idempotent_keyed():
    """confluent-kafka (librdkafka): AdminClient creates a 6-partition topic;
    an idempotent acks=all producer sends 100,000 keyed records with Kafka's
    default (murmur2) partitioner; prints key<TAB>partition<TAB>offset for the
    Rust side to check against its own partitioner and the log."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("ck-keyed", num_partitions=6, replication_factor=1)]).values():
        f.result(timeout=10)
    described = admin.list_topics(topic="ck-keyed", timeout=10).topics["ck-keyed"]
    assert len(described.partitions) == 6, described.partitions
    producer = Producer({
        "bootstrap.servers": BOOTSTRAP,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 5,
    })
    out = []
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            out.append("%s\t%d\t%d" % (msg.key().decode(), msg.partition(), msg.offset()))

    for i in range(100_000):
        producer.produce("ck-keyed", key=b"user-%d" % i, value=b"event-%d" % i, on_delivery=report)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0, "records left unsent"
    assert not errors, errors[:5]
    assert len(out) == 100_000, len(out)
    sys.stdout.write("\n".join(out) + "\n")


{"kafka_python_round_trip": kafka_python_round_trip, "confluent_idempotent_keyed": confluent_idempotent_keyed}[CHECK]()
