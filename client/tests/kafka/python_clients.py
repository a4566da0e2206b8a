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
    # And in a group: subscribed, everything once, committed to the end.
    member = KafkaConsumer("kp-orders", bootstrap_servers=BOOTSTRAP, group_id="kp-group",
                           auto_offset_reset="earliest", enable_auto_commit=False,
                           consumer_timeout_ms=5000)
    values = sorted(m.value for m in member)
    assert values == sorted(v for _, v in sent.values()), len(values)
    member.commit()
    assert {tp.partition: member.committed(tp) for tp in member.assignment()} == {p: 100 for p in range(3)}
    # A commit's metadata comes back with its offset.
    from kafka.structs import OffsetAndMetadata
    tp0 = TopicPartition("kp-orders", 0)
    member.commit({tp0: OffsetAndMetadata(100, "kp-note", -1)})
    back = member.committed(tp0, metadata=True)
    assert (back.offset, back.metadata) == (100, "kp-note"), back
    member.close()
    # The admin client adds a partition and describes the cluster.
    from kafka.admin import NewPartitions
    admin.create_partitions({"kp-orders": NewPartitions(4)})
    described = admin.describe_topics(["kp-orders"])
    assert len(described[0]["partitions"]) == 4, described
    cluster = admin.describe_cluster()
    assert len(cluster["brokers"]) == 1 and cluster["controller_id"] == cluster["brokers"][0]["broker_id"], cluster
    print("kafka-python: 300 records back with keys, values and headers, and once in a group; a partition added")


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


def _group_consumer(name, group="billing"):
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": group,
        "client.id": name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })


def _poll_all(consumers, until, seconds=60):
    """Polls every consumer in turn until `until()` holds; returns the
    values read, per consumer."""
    import time

    read = [[] for _ in consumers]
    deadline = time.time() + seconds
    while not until(read):
        assert time.time() < deadline, "timed out: %s" % [len(r) for r in read]
        for i, c in enumerate(consumers):
            m = c.poll(0.1)
            if m is not None:
                assert m.error() is None, m.error()
                read[i].append(m.value())
    return read


def confluent_group():
    """confluent-kafka consumers in one group: three members split a
    6-partition topic (two each, none shared), read it all once between
    them and commit; one leaves and the other two take its partitions."""
    from confluent_kafka import Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic("grouped", num_partitions=6, replication_factor=1)]).values():
        f.result(timeout=10)
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(600):
        producer.produce("grouped", key=b"k%d" % i, value=b"v%d" % i, partition=i % 6)
    assert producer.flush(10) == 0
    members = [_group_consumer("m%d" % i) for i in range(3)]
    for c in members:
        c.subscribe(["grouped"])
    read = _poll_all(members, lambda r: sum(map(len, r)) >= 600 and all(len(c.assignment()) == 2 for c in members))
    values = [v for r in read for v in r]
    assert sorted(values) == sorted(b"v%d" % i for i in range(600)), "not every record once"
    owned = [{tp.partition for tp in c.assignment()} for c in members]
    assert set().union(*owned) == set(range(6)) and sum(map(len, owned)) == 6, owned
    listed = admin.list_consumer_groups().result(timeout=10)
    assert "billing" in [g.group_id for g in listed.valid], listed.valid
    described = admin.describe_consumer_groups(["billing"])["billing"].result(timeout=10)
    assert len(described.members) == 3, described
    # Members are named after their client ids, as Kafka names them.
    assert sorted(m.member_id.split("-")[0] for m in described.members) == ["m0", "m1", "m2"], described.members
    assert str(described.state).endswith("STABLE"), described.state
    owned_described = {tp.partition for m in described.members for tp in m.assignment.topic_partitions}
    assert owned_described == set(range(6)), owned_described
    for c in members:
        c.commit(asynchronous=False)
    # Metadata travels with a commit (checked after the restart, below).
    first = [TopicPartition("grouped", tp.partition, 100, metadata="note-%d" % tp.partition)
             for tp in members[0].assignment()]
    members[0].commit(offsets=first, asynchronous=False)
    members[0].close()
    rest = members[1:]
    _poll_all(rest, lambda r: {tp.partition for c in rest for tp in c.assignment()} == set(range(6)))
    for c in rest:
        c.close()
    print("confluent-kafka: 3 members split 6 partitions, 600 records once, a leave handed over")


def confluent_group_resume():
    """After a broker restart: the group's commits are still there, and a
    member reads only what was produced since."""
    from confluent_kafka import Producer, TopicPartition

    c = _group_consumer("again")
    committed = c.committed([TopicPartition("grouped", p) for p in range(6)], timeout=10)
    assert [tp.offset for tp in committed] == [100] * 6, committed
    notes = [tp.metadata for tp in committed if tp.metadata]
    assert notes and all(n.startswith("note-") for n in notes), committed
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for i in range(600, 660):
        producer.produce("grouped", key=b"k%d" % i, value=b"v%d" % i, partition=i % 6)
    assert producer.flush(10) == 0
    c.subscribe(["grouped"])
    read = _poll_all([c], lambda r: len(r[0]) >= 60)
    assert sorted(read[0]) == sorted(b"v%d" % i for i in range(600, 660)), read[0][:5]
    c.close()
    print("confluent-kafka: commits survived the restart, 60 new records read, none again")


def confluent_admin():
    """confluent-kafka's AdminClient: create with a setting, describe the
    topic's settings with their sources, add partitions, describe the
    cluster, delete."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    topic = NewTopic("admin-made", num_partitions=2, replication_factor=1, config={"retention.ms": "3600000"})
    for f in admin.create_topics([topic]).values():
        f.result(timeout=10)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "admin-made")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == "3600000", configs["retention.ms"]
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, configs["retention.ms"].source
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value, configs["segment.bytes"].source
    # Partitions added: validated only (nothing changes), then for real; a
    # record goes to a new partition and comes back; fewer is refused.
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import NewPartitions
    for f in admin.create_partitions([NewPartitions("admin-made", 4)], validate_only=True).values():
        f.result(timeout=10)
    assert len(admin.list_topics(timeout=10).topics["admin-made"].partitions) == 2
    for f in admin.create_partitions([NewPartitions("admin-made", 4)]).values():
        f.result(timeout=10)
    assert len(admin.list_topics(timeout=10).topics["admin-made"].partitions) == 4
    try:
        for f in admin.create_partitions([NewPartitions("admin-made", 3)]).values():
            f.result(timeout=10)
        raise AssertionError("fewer partitions were accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_PARTITIONS, e
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    producer.produce("admin-made", value=b"in a new partition", partition=3)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "admin-reader"})
    consumer.assign([TopicPartition("admin-made", 3, 0)])
    message = consumer.poll(10)
    assert message is not None and message.error() is None and message.value() == b"in a new partition", message
    consumer.close()
    cluster = admin.describe_cluster().result(timeout=10)
    assert cluster.cluster_id and len(cluster.nodes) == 1, cluster
    assert cluster.controller.id == cluster.nodes[0].id, cluster
    assert "%s:%d" % (cluster.nodes[0].host, cluster.nodes[0].port) == BOOTSTRAP, cluster.nodes
    # Settings changed after creation: SET, APPEND to cleanup.policy's
    # list, then DELETE back to the default; a setting fixed at creation
    # refused. The change applies at once: now compacted, a keyless record
    # is refused.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    def alter(*entries):
        r = ConfigResource(ConfigResource.Type.TOPIC, "admin-made", incremental_configs=list(entries))
        return admin.incremental_alter_configs([r])[r].result(timeout=10)

    def described():
        return admin.describe_configs([resource])[resource].result(timeout=10)

    alter(ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
          ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    configs = described()
    assert configs["retention.ms"].value == "60000", configs["retention.ms"]
    assert configs["cleanup.policy"].value == "delete,compact", configs["cleanup.policy"]
    outcomes = []
    producer.produce("admin-made", value=b"no key", partition=0, on_delivery=lambda err, msg: outcomes.append(err))
    producer.flush(10)
    assert outcomes[0] is not None and outcomes[0].code() == KafkaError.INVALID_RECORD, outcomes
    try:
        alter(ConfigEntry("segment.bytes", "4096", incremental_operation=AlterConfigOpType.SET))
        raise AssertionError("segment.bytes was altered")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_CONFIG, e
    alter(ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
          ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT))
    configs = described()
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value, configs["retention.ms"]
    assert configs["cleanup.policy"].value == "delete", configs["cleanup.policy"]
    for f in admin.delete_topics(["admin-made"]).values():
        f.result(timeout=10)
    assert "admin-made" not in admin.list_topics(timeout=10).topics
    print("confluent-kafka admin: created, described, partitions added, cluster described, altered, deleted")


def kafka_python_alter_configs():
    """kafka-python's admin alters a topic's settings with AlterConfigs
    (the whole set: what is not given returns to its default) and the
    broker's schema validation setting under Confluent Server's name."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic("py-altered", 1, 1, topic_configs={"retention.ms": "1000"})])

    resource = lambda **configs: ConfigResource(ConfigResourceType.TOPIC, "py-altered", configs=configs)

    def described():
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "py-altered")],
                                         config_filter="all")["topic"]["py-altered"]
        return {k: (v["value"], v["config_source"]) for k, v in configs.items()}

    # kafka-python sends AlterConfigs with the keys already modified
    # (retention.ms) beside the new ones: the whole set.
    result = admin.alter_configs(
        [resource(**{"cleanup.policy": "compact", "confluent.value.schema.validation": "true"})],
        incremental=False, raise_on_unknown=False)
    assert "Error" not in str(result), result
    configs = described()
    assert configs["retention.ms"] == ("1000", "DYNAMIC_TOPIC_CONFIG"), configs
    assert configs["cleanup.policy"] == ("compact", "DYNAMIC_TOPIC_CONFIG"), configs
    assert configs["ringlog.schema.validation"] == ("id", "DYNAMIC_TOPIC_CONFIG"), configs
    # A reset through AlterConfigs leaves the key out: back to its default.
    admin.reset_configs([ConfigResource(ConfigResourceType.TOPIC, "py-altered", configs=["retention.ms"])],
                        incremental=False, raise_on_unknown=False)
    configs = described()
    assert configs["retention.ms"][1] == "DEFAULT_CONFIG", configs
    assert configs["cleanup.policy"] == ("compact", "DYNAMIC_TOPIC_CONFIG"), configs
    bad = admin.alter_configs([resource(**{"retention.ms": "soon"})], incremental=False, raise_on_unknown=False)
    assert "InvalidConfigurationError" in str(bad["topic"]["py-altered"]), bad
    assert described()["cleanup.policy"] == ("compact", "DYNAMIC_TOPIC_CONFIG"), "a refused change changes nothing"
    admin.close()
    print("kafka-python admin: altered with AlterConfigs")


def confluent_compacted():
    """A compacted topic made by confluent-kafka's AdminClient: its settings
    read back, a keyless record is refused, gzip-compressed batches of ten
    keys are compacted by the broker's cleaner, and both Python clients read
    the compacted log through its offset gaps to its end: the latest value of
    every key at the offset it was written at, a deleted key gone."""
    import time
    from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    config = {"cleanup.policy": "compact", "segment.bytes": "4096", "delete.retention.ms": "0"}
    for f in admin.create_topics([NewTopic("table", num_partitions=1, replication_factor=1, config=config)]).values():
        f.result(timeout=10)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "table")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "compact", configs["cleanup.policy"]
    assert configs["delete.retention.ms"].value == "0", configs["delete.retention.ms"]

    errors = []
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "compression.type": "gzip", "linger.ms": 5})
    producer.produce("table", value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors

    offsets = {}
    latest = {}

    def delivered(err, msg):
        assert err is None, err
        offsets[msg.offset()] = (msg.key(), msg.value())

    for i in range(3000):
        key = b"k%d" % (i % 10)
        producer.produce("table", key=key, value=b"v%d" % i, on_delivery=delivered)
        latest[key] = b"v%d" % i
    producer.produce("table", key=b"k9", value=None, on_delivery=delivered)
    del latest[b"k9"]
    producer.flush(10)
    # Incompressible values, so the tombstone's segment is sealed (only
    # sealed segments are cleaned).
    import os
    for i in range(300):
        producer.produce("table", key=b"pad%d" % (i % 2), value=os.urandom(100), on_delivery=delivered)
    producer.flush(10)
    end = max(offsets) + 1

    def read_confluent():
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "table-reader", "enable.partition.eof": True,
                      "enable.auto.commit": False})
        c.assign([TopicPartition("table", 0, 0)])
        out = []
        deadline = time.time() + 30
        while time.time() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                break
            out.append((m.offset(), m.key(), m.value()))
        c.close()
        return out

    deadline = time.time() + 60
    while True:
        found = read_confluent()
        keys = {k for _, k, _ in found}
        if b"k9" not in keys and len(found) < 600:
            break
        assert time.time() < deadline, "not compacted: %d records" % len(found)
        time.sleep(0.2)
    for offset, key, value in found:
        assert offsets[offset] == (key, value), (offset, key, value)
    last = {}
    for offset, key, value in found:
        last[key] = value
    for key, value in latest.items():
        assert last.get(key) == value, (key, last.get(key), value)

    from kafka import KafkaConsumer, TopicPartition as KTP
    k = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, consumer_timeout_ms=10000)
    k.assign([KTP("table", 0)])
    k.seek_to_beginning()
    seen = []
    while k.position(KTP("table", 0)) < end:
        batch = k.poll(timeout_ms=2000)
        for records in batch.values():
            seen.extend((r.offset, r.key, r.value) for r in records)
        assert time.time() < deadline + 30, "kafka-python stalled at %d of %d" % (k.position(KTP("table", 0)), end)
    k.close()
    for offset, key, value in seen:
        assert offsets[offset] == (key, value), (offset, key, value)
    assert [o for o, _, _ in seen] == sorted({o for o, _, _ in seen}), "offsets ascend, none twice"
    seen_last = {key: value for _, key, value in seen}
    for key, value in latest.items():
        assert seen_last.get(key) == value, (key, seen_last.get(key), value)
    print("compacted: %d of %d records left, the latest of each key, read by both clients to offset %d" % (len(found), len(offsets), end))


def _produce_acked(count, start):
    """An idempotent acks=all producer sends `count` keyed records; every
    one must be acknowledged."""
    from confluent_kafka import Producer

    producer = Producer({
        "bootstrap.servers": BOOTSTRAP,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 60000,
    })
    errors = []
    acked = []
    for i in range(start, start + count):
        producer.produce("replicated", key=b"k%d" % i, value=b"v%d" % i,
                         on_delivery=lambda err, msg: errors.append(err) if err else acked.append(msg.value()))
        producer.poll(0)
    assert producer.flush(60) == 0, "records left unsent"
    assert not errors and len(acked) == count, (errors[:3], len(acked))


def confluent_cluster():
    """A 3-broker cluster through its Kafka listeners: metadata names every
    broker and each partition's leader, replicas and ISR; an RF=3 topic is
    created, written with acks=all and read by a group that commits."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    topic = NewTopic("replicated", num_partitions=6, replication_factor=3, config={"min.insync.replicas": "2"})
    for f in admin.create_topics([topic]).values():
        f.result(timeout=30)
    import time
    deadline = time.time() + 30
    while True:
        md = admin.list_topics(timeout=10)
        parts = md.topics["replicated"].partitions
        if len(parts) == 6 and all(p.leader >= 0 and len(p.isrs) == 3 for p in parts.values()):
            break
        assert time.time() < deadline, {p.id: (p.leader, p.isrs) for p in parts.values()}
        time.sleep(0.2)
    assert sorted(md.brokers) == [1, 2, 3], md.brokers
    assert {p.leader for p in parts.values()} == {1, 2, 3}, "leaderships are spread"
    assert all(sorted(p.replicas) == [1, 2, 3] for p in parts.values())
    cluster = admin.describe_cluster().result(timeout=10)
    assert sorted(n.id for n in cluster.nodes) == [1, 2, 3] and cluster.controller.id in (1, 2, 3), cluster
    _produce_acked(3000, 0)
    c = _group_consumer("cluster-reader", group="cluster-readers")
    c.subscribe(["replicated"])
    read = _poll_all([c], lambda r: len(r[0]) >= 3000)[0]
    assert sorted(read) == sorted(b"v%d" % i for i in range(3000)), len(read)
    c.commit(asynchronous=False)
    c.close()
    print("confluent-kafka cluster: 3 brokers, 3000 records written acks=all and read once by a group")


def confluent_cluster_after_kill():
    """One broker is dead: the producer finds the new leaders, nothing
    acknowledged is lost, and the group resumes from its commits."""
    _produce_acked(1000, 3000)
    c = _group_consumer("cluster-reader", group="cluster-readers")
    c.subscribe(["replicated"])
    read = _poll_all([c], lambda r: len(r[0]) >= 1000, seconds=90)[0]
    import time
    end = time.time() + 2
    while time.time() < end:
        m = c.poll(0.2)
        if m is not None:
            assert m.error() is None, m.error()
            read.append(m.value())
    assert sorted(read) == sorted(b"v%d" % i for i in range(3000, 4000)), len(read)
    c.close()
    print("confluent-kafka cluster: after a broker's death, 1000 more written and read, none lost, none twice")


{
    "confluent_cluster": confluent_cluster,
    "confluent_cluster_after_kill": confluent_cluster_after_kill,
    "confluent_admin": confluent_admin,
    "kafka_python_alter_configs": kafka_python_alter_configs,
    "confluent_compacted": confluent_compacted,
    "kafka_python_round_trip": kafka_python_round_trip,
    "confluent_idempotent_keyed": confluent_idempotent_keyed,
    "confluent_group": confluent_group,
    "confluent_group_resume": confluent_group_resume,
}[CHECK]()
