//! The engine against record batches built by an independent Kafka
//! implementation (kafka-python's `DefaultRecordBatchBuilder`), kept in
//! `engine/tests/data/kafka-v2/` (see its README): every valid batch decodes to exactly the
//! records its manifest lists, every invalid one is rejected.

use ringlog_engine::batch::{BatchView, HEADER_BYTES};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

const MAX: usize = 64 << 20;

fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/kafka-v2");
    assert!(dir.is_dir(), "test vectors missing at {}", dir.display());
    dir
}

fn hex_or_null(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(|s| hex::decode(s).expect("manifest hex"))
}

#[test]
fn every_vector_parses_or_fails_as_its_manifest_says() {
    let dir = vectors_dir();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "manifest lists {} cases", cases.len());
    let mut records_checked = 0;
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let parsed = BatchView::parse(&bytes, MAX);
        if !case["valid"].as_bool().unwrap() {
            assert!(
                parsed.is_err(),
                "{file} ({}) was accepted",
                case["why"].as_str().unwrap_or("?")
            );
            continue;
        }
        let view = parsed.unwrap_or_else(|e| panic!("{file} rejected: {e}"));
        assert_eq!(view.bytes().len(), bytes.len(), "{file}");
        let h = view.header();
        assert_eq!(
            view.base_offset(),
            case["base_offset"].as_i64().unwrap(),
            "{file}"
        );
        assert_eq!(
            h.producer_id.get(),
            case["producer_id"].as_i64().unwrap(),
            "{file}"
        );
        assert_eq!(
            i64::from(h.producer_epoch.get()),
            case["producer_epoch"].as_i64().unwrap()
        );
        assert_eq!(
            i64::from(h.base_sequence.get()),
            case["base_sequence"].as_i64().unwrap()
        );
        assert_eq!(
            i64::from(h.record_count.get()),
            case["record_count"].as_i64().unwrap()
        );
        assert_eq!(
            i64::from(view.compression()),
            case["compression"].as_i64().unwrap(),
            "{file}"
        );
        if view.compression() != 0 {
            // Stored and served as-is: the header parses and the body is
            // covered by a valid CRC; decoding comes with compression support.
            assert!(view.records().is_err());
            assert!(bytes.len() > HEADER_BYTES);
            continue;
        }
        let expected = case["records"].as_array().unwrap();
        let got: Vec<_> = view
            .records()
            .unwrap()
            .map(|r| r.unwrap_or_else(|e| panic!("{file}: {e}")))
            .collect();
        assert_eq!(got.len(), expected.len(), "{file}");
        for (g, e) in got.iter().zip(expected) {
            assert_eq!(
                g.offset,
                view.base_offset() + e["offset_delta"].as_i64().unwrap(),
                "{file}"
            );
            assert_eq!(g.timestamp, e["timestamp"].as_i64().unwrap(), "{file}");
            assert_eq!(g.key.map(<[u8]>::to_vec), hex_or_null(&e["key"]), "{file}");
            if let Some(sha) = e.get("value_sha256") {
                let v = g.value.expect("large value present");
                assert_eq!(v.len() as u64, e["value_len"].as_u64().unwrap());
                assert_eq!(hex::encode(Sha256::digest(v)), sha.as_str().unwrap());
            } else {
                assert_eq!(
                    g.value.map(<[u8]>::to_vec),
                    hex_or_null(&e["value"]),
                    "{file}"
                );
            }
            let headers: Vec<(Vec<u8>, Option<Vec<u8>>)> = g
                .headers()
                .map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec)))
                .collect();
            let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = e["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().as_bytes().to_vec(),
                        hex_or_null(&p[1]),
                    )
                })
                .collect();
            assert_eq!(headers, want, "{file}");
            records_checked += 1;
        }
    }
    assert!(
        records_checked > 1000,
        "only {records_checked} records checked"
    );
}

#[test]
fn every_prefix_of_every_vector_is_rejected_without_panic() {
    let dir = vectors_dir();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        // Large files: every prefix near the edges, then a stride.
        let cuts: Vec<usize> = if bytes.len() > 4096 {
            (0..256)
                .chain((256..bytes.len()).step_by(997))
                .chain(bytes.len() - 256..bytes.len())
                .collect()
        } else {
            (0..bytes.len()).collect()
        };
        for cut in cuts {
            assert!(BatchView::parse(&bytes[..cut], MAX).is_err());
        }
    }
}
