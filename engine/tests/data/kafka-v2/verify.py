#!/usr/bin/env python3
"""Checks the vectors against kafka-python itself, an implementation ringlog
did not write: every valid, uncompressed batch decodes with kafka-python's
DefaultRecordBatch to exactly the records manifest.json lists, and its CRC
validates. Needs `pip install kafka-python==3.0.12`. Exits non-zero on the
first mismatch."""
import hashlib
import json
import pathlib
import sys

from kafka.record.default_records import DefaultRecordBatch

HERE = pathlib.Path(__file__).resolve().parent


def hex_or_none(b):
    return None if b is None else bytes(b).hex()


def main():
    manifest = json.loads((HERE / "manifest.json").read_text())
    checked = 0
    for case in manifest["cases"]:
        if not case["valid"] or case.get("compression", 0) != 0:
            continue
        name = case["file"]
        batch = DefaultRecordBatch(bytearray((HERE / name).read_bytes()))
        assert batch.validate_crc(), f"{name}: crc"
        assert batch.base_offset == case["base_offset"], f"{name}: base offset"
        assert batch.producer_id == case["producer_id"], f"{name}: producer id"
        records = list(batch)
        assert len(records) == case["record_count"], f"{name}: count"
        for rec, want in zip(records, case["records"]):
            assert rec.offset == case["base_offset"] + want["offset_delta"], f"{name}: offset"
            assert rec.timestamp == want["timestamp"], f"{name}: timestamp"
            assert hex_or_none(rec.key) == want["key"], f"{name}: key"
            if "value_sha256" in want:
                assert len(rec.value) == want["value_len"], f"{name}: value length"
                assert hashlib.sha256(rec.value).hexdigest() == want["value_sha256"], name
            else:
                assert hex_or_none(rec.value) == want["value"], f"{name}: value"
            headers = [[k, hex_or_none(v)] for k, v in rec.headers]
            assert headers == want["headers"], f"{name}: headers"
        checked += 1
    print(f"{checked} valid batches match kafka-python")
    return 0 if checked else 1


if __name__ == "__main__":
    sys.exit(main())
