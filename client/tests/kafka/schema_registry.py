"""confluent-kafka's own Schema Registry client, serializers and
deserializers against ringlog's registry (REST) and Kafka listener.

    python schema_registry.py REGISTRY_URL KAFKA_BOOTSTRAP CHECK

Each check prints one line that the Rust test looks for; any failed
assertion exits non-zero with a traceback.
"""

import sys

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

URL, BOOTSTRAP, CHECK = sys.argv[1], sys.argv[2], sys.argv[3]

USER_V1 = """{"type": "record", "name": "User", "namespace": "test",
  "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"}]}"""
USER_V2 = """{"type": "record", "name": "User", "namespace": "test",
  "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"},
             {"name": "email", "type": ["null", "string"], "default": null}]}"""
USER_BAD = """{"type": "record", "name": "User", "namespace": "test",
  "fields": [{"name": "name", "type": "int"}]}"""
ORDER_JSON = """{"type": "object", "properties": {"id": {"type": "integer"},
  "item": {"type": "string"}}, "required": ["id"]}"""


def expect_error(call, status, code):
    try:
        call()
    except SchemaRegistryError as e:
        assert e.http_status_code == status, (e.http_status_code, e.error_code, e.error_message)
        assert e.error_code == code, (e.http_status_code, e.error_code, e.error_message)
        return e
    raise AssertionError("no error, %d/%d expected" % (status, code))


def produce_and_read(topic, serializer, deserializer, values):
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for v in values:
        producer.produce(topic, value=serializer(v, SerializationContext(topic, MessageField.VALUE)))
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": topic + "-reader",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    out = []
    for _ in range(60):
        m = consumer.poll(1)
        if m is None or m.error():
            if len(out) == len(values):
                break
            continue
        assert m.value()[0] == 0, "Confluent's wire format starts with magic byte 0"
        out.append(deserializer(m.value(), SerializationContext(topic, MessageField.VALUE)))
        if len(out) == len(values):
            break
    consumer.close()
    return out


def evolve():
    sr = SchemaRegistryClient({"url": URL})
    assert sr.get_subjects() == [], sr.get_subjects()
    # Avro through the serializers: the serializer registers v1.
    users = [{"name": "ada", "age": 36}, {"name": "grace", "age": 45}]
    serializer = AvroSerializer(sr, USER_V1)
    deserializer = AvroDeserializer(sr)
    assert produce_and_read("users", serializer, deserializer, users) == users
    v1 = sr.get_latest_version("users-value")
    assert v1.version == 1 and v1.schema.schema_type == "AVRO", v1
    # Compatible evolution, then an incompatible one refused (409).
    assert sr.test_compatibility("users-value", Schema(USER_V2, "AVRO")) is True
    assert sr.test_compatibility("users-value", Schema(USER_BAD, "AVRO")) is False
    id2 = sr.register_schema("users-value", Schema(USER_V2, "AVRO"))
    assert id2 != v1.schema_id
    assert sr.register_schema("users-value", Schema(USER_V2, "AVRO")) == id2, "registering again is idempotent"
    expect_error(lambda: sr.register_schema("users-value", Schema(USER_BAD, "AVRO")), 409, 409)
    expect_error(lambda: sr.register_schema("users-value", Schema("{not json", "AVRO")), 422, 42201)
    # The same schema under another subject gets the same id.
    assert sr.register_schema("people-value", Schema(USER_V2, "AVRO")) == id2
    assert sorted(sr.get_versions("users-value")) == [1, 2]
    found = sr.lookup_schema("users-value", Schema(USER_V2, "AVRO"))
    assert found.version == 2 and found.schema_id == id2, found
    assert "email" in sr.get_schema(id2).schema_str
    users2 = [{"name": "alan", "age": 41, "email": "alan@example.com"}]
    assert produce_and_read("users2", AvroSerializer(sr, USER_V2), deserializer, users2) == users2
    # JSON Schema.
    orders = [{"id": 1, "item": "tea"}, {"id": 2}]
    js = JSONSerializer(ORDER_JSON, sr)
    jd = JSONDeserializer(ORDER_JSON, schema_registry_client=sr)
    assert produce_and_read("orders", js, jd, orders) == orders
    assert sr.get_latest_version("orders-value").schema.schema_type == "JSON"
    # Settings.
    sr.set_compatibility("users-value", "FULL")
    assert sr.get_compatibility("users-value") == "FULL"
    assert sr.get_compatibility() == "BACKWARD"
    expect_error(lambda: sr.set_compatibility("users-value", "SIDEWAYS"), 422, 42203)
    # Deletes: a version soft then hard; a subject soft then hard.
    expect_error(lambda: sr.delete_version("people-value", 1, permanent=True), 404, 40407)
    assert sr.delete_version("people-value", 1) == 1
    assert sr.delete_version("people-value", 1, permanent=True) == 1
    assert "people-value" not in sr.get_subjects()
    expect_error(lambda: sr.get_versions("people-value"), 404, 40401)
    expect_error(lambda: sr.get_schema(9999), 404, 40403)
    sr.register_schema("scratch-value", Schema('"string"', "AVRO"))
    assert sr.delete_subject("scratch-value") == [1]
    assert sr.delete_subject("scratch-value", permanent=True) == [1]
    print("registry: registered, evolved, refused, serialized, deserialized, deleted")


def after_restart():
    sr = SchemaRegistryClient({"url": URL})
    assert sorted(sr.get_subjects()) == ["orders-value", "users-value", "users2-value"], sr.get_subjects()
    assert sorted(sr.get_versions("users-value")) == [1, 2]
    latest = sr.get_latest_version("users-value")
    assert "email" in latest.schema.schema_str
    assert sr.get_compatibility("users-value") == "FULL"
    # Records written before the restart still deserialize by their ids.
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "after-restart",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["users"])
    deserializer = AvroDeserializer(sr)
    got = []
    for _ in range(30):
        m = consumer.poll(1)
        if m is not None and not m.error():
            got.append(deserializer(m.value(), SerializationContext("users", MessageField.VALUE)))
        if len(got) == 2:
            break
    consumer.close()
    assert got == [{"name": "ada", "age": 36}, {"name": "grace", "age": 45}], got
    assert sr.register_schema("users-value", Schema(USER_V2, "AVRO")) == latest.schema_id
    print("registry: every subject, version, id and setting survived")


def validated():
    """A topic created with --schema-validation payload: a record the
    serializer wrote is stored; plain bytes, an id not registered under the
    topic's subject, and data that does not decode with its schema are
    refused (INVALID_RECORD), and none of them is stored."""
    from confluent_kafka import KafkaError

    sr = SchemaRegistryClient({"url": URL})
    serializer = AvroSerializer(sr, USER_V1)
    ctx = SerializationContext("strict", MessageField.VALUE)
    good = serializer({"name": "ada", "age": 36}, ctx)
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    outcomes = []

    def send(value):
        outcomes.clear()
        producer.produce("strict", value=value, on_delivery=lambda err, msg: outcomes.append(err))
        producer.flush(10)
        return outcomes[0]

    assert send(good) is None
    other_id = sr.register_schema("elsewhere-value", Schema('"string"', "AVRO"))
    bad_values = [
        b"plain bytes",
        b"\x00" + other_id.to_bytes(4, "big") + b"\x06ada",
        good[:5] + b"\xff\xff\xff",
    ]
    for value in bad_values:
        err = send(value)
        assert err is not None and err.code() == KafkaError.INVALID_RECORD, (value, err)
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "strict-reader",
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    consumer.subscribe(["strict"])
    stored = []
    for _ in range(30):
        m = consumer.poll(1)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            continue
        stored.append(m.value())
    consumer.close()
    assert stored == [good], stored
    print("validation: the serializer's record stored, %d bad ones refused" % len(bad_values))


def read_rust():
    """Prints, one JSON per line, the values ringlog-client's Avro serializer
    wrote to topic from-rust, read with confluent-kafka's deserializer."""
    import json

    sr = SchemaRegistryClient({"url": URL})
    deserializer = AvroDeserializer(sr)
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "rust-reader",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["from-rust"])
    got = []
    for _ in range(30):
        m = consumer.poll(1)
        if m is not None and not m.error():
            got.append(deserializer(m.value(), SerializationContext("from-rust", MessageField.VALUE)))
        if len(got) == 3:
            break
    consumer.close()
    for value in got:
        print(json.dumps(value, sort_keys=True))


def write_python():
    """Writes two users to topic from-python with confluent-kafka's Avro
    serializer (schema v2), for ringlog-client's deserializer."""
    sr = SchemaRegistryClient({"url": URL})
    serializer = AvroSerializer(sr, USER_V2)
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for user in [{"name": "ada", "age": 36, "email": None}, {"name": "alan", "age": 41, "email": "a@example.com"}]:
        producer.produce("from-python", value=serializer(user, SerializationContext("from-python", MessageField.VALUE)))
    assert producer.flush(10) == 0
    print("written")


{
    "evolve": evolve,
    "after_restart": after_restart,
    "validated": validated,
    "read_rust": read_rust,
    "write_python": write_python,
}[CHECK]()
