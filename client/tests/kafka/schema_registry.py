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

    # Protobuf: the message indexes and the message must decode.
    from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

    Order = protobuf_classes([("id", 1, F.TYPE_STRING), ("total", 2, "money")])
    good = ProtobufSerializer(Order, sr)(Order(id="a1"), SerializationContext("strict-proto", MessageField.VALUE))
    outcomes.clear()
    producer.produce("strict-proto", value=good, on_delivery=lambda err, msg: outcomes.append(err))
    producer.flush(10)
    assert outcomes == [None], outcomes
    for value in [good[:5] + b"\x00\x0a\x09a1", good[:5] + b"\x02\x0a"]:
        outcomes.clear()
        producer.produce("strict-proto", value=value, on_delivery=lambda err, msg: outcomes.append(err))
        producer.flush(10)
        assert outcomes[0] is not None and outcomes[0].code() == KafkaError.INVALID_RECORD, (value, outcomes)
    print("protobuf validation: a serialized Order stored, a cut-short one and a bad index refused")


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


def protobuf_classes(order_fields):
    """Order and Money message classes built from descriptors (no protoc
    here): shop/order.proto imports shop/money.proto, so the serializer
    registers the import as a reference of its own."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    money = descriptor_pb2.FileDescriptorProto(name="shop/money.proto", package="shop", syntax="proto3")
    m = money.message_type.add(name="Money")
    m.field.add(name="cents", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="currency", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool.Add(money)
    order = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3",
                                               dependency=["shop/money.proto"])
    o = order.message_type.add(name="Order")
    for name, number, kind in order_fields:
        if kind == "money":
            o.field.add(name=name, number=number, type=F.TYPE_MESSAGE, type_name=".shop.Money",
                        label=F.LABEL_OPTIONAL)
        else:
            o.field.add(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL)
    pool.Add(order)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


ORDER_PROTO_V1 = """syntax = "proto3";
package shop;
import "shop/money.proto";
message Order {
  string id = 1;
  Money total = 2;
}
"""


def protobuf():
    """confluent-kafka's ProtobufSerializer registers a schema with a
    reference as base64 descriptors; records round-trip through the Kafka
    listener and ProtobufDeserializer (which reads the schemas back with
    ?format=serialized); compatible evolution is taken, an incompatible one
    refused; the .proto text of the same schema is the same schema."""
    from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F
    from confluent_kafka.schema_registry import SchemaReference
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    sr = SchemaRegistryClient({"url": URL})
    import json
    import urllib.request

    with urllib.request.urlopen(URL + "/schemas/types") as r:
        assert json.load(r) == ["AVRO", "JSON", "PROTOBUF"]
    Order = protobuf_classes([("id", 1, F.TYPE_STRING), ("total", 2, "money")])
    orders = [Order(id="a1"), Order(id="b2")]
    orders[0].total.cents = 1250
    orders[0].total.currency = "EUR"
    serializer = ProtobufSerializer(Order, sr)
    deserializer = ProtobufDeserializer(Order, schema_registry_client=sr)
    got = produce_and_read("proto-orders", serializer, deserializer, orders)
    assert got == orders, got
    assert sorted(sr.get_subjects()) == ["proto-orders-value", "shop/money.proto"], sr.get_subjects()
    v1 = sr.get_latest_version("proto-orders-value")
    assert v1.schema.schema_type == "PROTOBUF", v1
    refs = v1.schema.references
    assert [(r.name, r.subject, r.version) for r in refs] == [("shop/money.proto", "shop/money.proto", 1)], refs
    ref = [SchemaReference("shop/money.proto", "shop/money.proto", 1)]
    # The .proto text of the same schema is the same schema: same id, no new version.
    assert sr.register_schema("proto-orders-value", Schema(ORDER_PROTO_V1, "PROTOBUF", ref)) == v1.schema_id
    # A field added: compatible. The number of an existing field reused
    # with another type: refused.
    Order2 = protobuf_classes([("id", 1, F.TYPE_STRING), ("total", 2, "money"), ("paid", 3, F.TYPE_BOOL)])
    Bad = protobuf_classes([("id", 1, F.TYPE_STRING), ("total", 2, F.TYPE_DOUBLE)])
    from confluent_kafka.schema_registry.common.protobuf import _schema_to_str
    good2 = Schema(_schema_to_str(Order2.DESCRIPTOR.file), "PROTOBUF", ref)
    bad = Schema(_schema_to_str(Bad.DESCRIPTOR.file), "PROTOBUF", ref)
    assert sr.test_compatibility("proto-orders-value", good2) is True
    assert sr.test_compatibility("proto-orders-value", bad) is False
    expect_error(lambda: sr.register_schema("proto-orders-value", bad), 409, 409)
    id2 = sr.register_schema("proto-orders-value", good2)
    assert id2 != v1.schema_id
    expect_error(lambda: sr.register_schema("x-value", Schema("syntax = \"proto3\"; message {", "PROTOBUF")),
                 422, 42201)
    expect_error(lambda: sr.register_schema("x-value", Schema(ORDER_PROTO_V1, "PROTOBUF")), 422, 42201)
    # A record written with v2 reads with v1's class (the new field kept
    # as an unknown one).
    newer = Order2(id="c3", paid=True)
    got = produce_and_read("proto-orders2", ProtobufSerializer(Order2, sr), deserializer, [newer])
    assert len(got) == 1 and got[0].id == "c3" and not got[0].HasField("total"), got
    assert Order2.FromString(got[0].SerializeToString()) == newer
    print("protobuf: registered with a reference, round-tripped, evolved, refused, text = descriptor")


{
    "evolve": evolve,
    "protobuf": protobuf,
    "after_restart": after_restart,
    "validated": validated,
    "read_rust": read_rust,
    "write_python": write_python,
}[CHECK]()
