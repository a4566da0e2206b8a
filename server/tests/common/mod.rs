//! The real `ringlog-server` binary on a loopback port, and a small blocking
//! client speaking the native protocol through `ringlog-protocol`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use ringlog_engine::batch::{BatchBuilder, BatchView, NewRecord, ProducerStamp};
use ringlog_protocol::{self as proto, ApiKey, ErrorCode, Payload};
use ringlog_server::testing::BrokerProcess;

/// The broker binary of this package, as a child process.
pub struct Broker(pub BrokerProcess);

impl std::ops::Deref for Broker {
    type Target = BrokerProcess;
    fn deref(&self) -> &BrokerProcess {
        &self.0
    }
}

impl Broker {
    /// Starts a broker with `shards` shards on a fresh port.
    pub fn start(data_dir: &Path, shards: usize) -> Broker {
        Self::start_with(data_dir, shards, &[])
    }

    pub fn start_with(data_dir: &Path, shards: usize, extra: &[&str]) -> Broker {
        let binary = Path::new(env!("CARGO_BIN_EXE_ringlog-server"));
        Broker(BrokerProcess::start(binary, data_dir, shards, extra).expect("start ringlog-server"))
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn kill(self) {
        self.0.kill()
    }

    pub fn terminate(self) -> ExitStatus {
        self.0.terminate().unwrap()
    }

    pub fn restart_after_kill(self) -> Broker {
        Broker(self.0.restart_after_kill().unwrap())
    }

    pub fn metrics_text(&self) -> String {
        self.0.metrics_text().unwrap()
    }
}

/// A response: the header's error code and the payload.
#[derive(Debug)]
pub struct Reply {
    pub request_id: u64,
    pub error: ErrorCode,
    pub payload: Vec<u8>,
}

impl Reply {
    pub fn message(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    pub fn ok<T: Payload>(self, api: ApiKey) -> T {
        assert_eq!(self.error, ErrorCode::None, "{}", self.message());
        T::decode(api, &self.payload).unwrap()
    }
}

pub struct Client {
    pub stream: TcpStream,
    next_id: u64,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        // A liveness bound, not a speed claim: a hang fails instead of blocking CI.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, next_id: 1 }
    }

    /// Sends a request without waiting; returns its id.
    pub fn send(&mut self, api: ApiKey, payload: &[u8]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = proto::request_header(api, id, payload.len()).to_vec();
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).unwrap();
        id
    }

    pub fn recv(&mut self) -> std::io::Result<Reply> {
        let mut head = [0u8; proto::HEADER_LEN];
        self.stream.read_exact(&mut head)?;
        let h = proto::parse_response_header(&head);
        let mut payload = vec![0u8; h.length.get() as usize - (proto::HEADER_LEN - 4)];
        self.stream.read_exact(&mut payload)?;
        Ok(Reply {
            request_id: h.request_id.get(),
            error: ErrorCode::from_u16(h.error.get()),
            payload,
        })
    }

    pub fn call(&mut self, api: ApiKey, payload: &[u8]) -> Reply {
        let id = self.send(api, payload);
        let reply = self.recv().expect("response");
        assert_eq!(reply.request_id, id);
        reply
    }

    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: u32,
        fsync: &str,
    ) -> proto::MetadataResponse {
        let req = proto::CreateTopicRequest {
            name: name.into(),
            partitions: Some(partitions),
            fsync: Some(fsync.into()),
            ..Default::default()
        };
        self.call(ApiKey::CreateTopic, &req.encode())
            .ok(ApiKey::CreateTopic)
    }

    pub fn produce(
        &mut self,
        topic: &str,
        partition: u32,
        batches: &[u8],
    ) -> proto::ProducePartitionResult {
        let payload = proto::encode_produce(1, 10_000, &[(topic, partition, batches)]);
        let mut resp: proto::ProduceResponse =
            self.call(ApiKey::Produce, &payload).ok(ApiKey::Produce);
        resp.partitions.remove(0)
    }

    /// One fetch; returns (error, log_end, stored bytes) per partition.
    pub fn fetch(
        &mut self,
        parts: &[(&str, u32, u64)],
        max_wait_ms: u32,
    ) -> Vec<(ErrorCode, u64, Vec<u8>)> {
        let req = proto::FetchRequest {
            max_wait_ms,
            min_bytes: 1,
            max_bytes: 8 << 20,
            partitions: parts
                .iter()
                .map(|(t, p, o)| proto::FetchPartition {
                    topic: t.to_string(),
                    partition: *p,
                    offset: *o,
                    max_bytes: 1 << 20,
                })
                .collect(),
        };
        let reply = self.call(ApiKey::Fetch, &req.encode());
        assert_eq!(reply.error, ErrorCode::None, "{}", reply.message());
        proto::decode_fetch_response(&reply.payload)
            .unwrap()
            .into_iter()
            .map(|p| (p.error, p.log_end, reply.payload[p.records].to_vec()))
            .collect()
    }

    /// Every record of a partition from `from`, as (offset, value).
    pub fn read_all(&mut self, topic: &str, partition: u32, from: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = from;
        loop {
            let (error, end, bytes) = self.fetch(&[(topic, partition, offset)], 0).remove(0);
            assert_eq!(error, ErrorCode::None);
            for (o, v) in records(&bytes) {
                if o >= offset {
                    out.push((o, v));
                }
            }
            // Past the last batch, not the last record: a compacted batch's
            // offsets may run past its records, or it may hold none.
            offset = batches_end(&bytes).unwrap_or(offset).max(offset);
            if offset >= end {
                return out;
            }
        }
    }

    /// The group's committed offsets of `topic`'s partitions `0..count` (-1: none).
    pub fn committed(&mut self, group: &str, topic: &str, count: u32) -> Vec<i64> {
        self.committed_with_metadata(group, topic, count)
            .into_iter()
            .map(|(offset, _)| offset)
            .collect()
    }

    /// As [`Client::committed`], with the metadata of each commit.
    pub fn committed_with_metadata(
        &mut self,
        group: &str,
        topic: &str,
        count: u32,
    ) -> Vec<(i64, String)> {
        let ask = proto::FetchOffsetsRequest {
            group: group.into(),
            partitions: (0..count)
                .map(|partition| proto::TopicPartition {
                    topic: topic.into(),
                    partition,
                })
                .collect(),
        };
        let got: proto::FetchOffsetsResponse = self
            .call(ApiKey::FetchOffsets, &ask.encode())
            .ok(ApiKey::FetchOffsets);
        got.offsets
            .into_iter()
            .map(|o| (o.offset, o.metadata))
            .collect()
    }

    pub fn list_offset(&mut self, topic: &str, partition: u32, spec: i64) -> i64 {
        let req = proto::ListOffsetsRequest {
            partitions: vec![proto::ListOffsetsPartition {
                topic: topic.into(),
                partition,
                spec,
            }],
        };
        let resp: proto::ListOffsetsResponse = self
            .call(ApiKey::ListOffsets, &req.encode())
            .ok(ApiKey::ListOffsets);
        assert_eq!(resp.partitions[0].error, 0);
        resp.partitions[0].offset
    }
}

/// One batch of records with the given values.
pub fn batch(values: &[&[u8]], stamp: ProducerStamp, timestamp: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(stamp);
    for v in values {
        b.push(&NewRecord {
            key: None,
            value: Some(v),
            headers: &[],
            timestamp,
        })
        .unwrap();
    }
    b.finish().unwrap()
}

/// (offset, value) of every record in stored batches.
pub fn records(mut bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let view = BatchView::parse(bytes, 16 << 20).unwrap();
        for r in view.records().unwrap() {
            let r = r.unwrap();
            out.push((r.offset as u64, r.value.unwrap_or_default().to_vec()));
        }
        bytes = &bytes[view.bytes().len()..];
    }
    out
}

/// The offset after the last of the stored batches.
pub fn batches_end(mut bytes: &[u8]) -> Option<u64> {
    let mut end = None;
    while !bytes.is_empty() {
        let view = BatchView::parse(bytes, 16 << 20).unwrap();
        end = Some(view.last_offset() as u64 + 1);
        bytes = &bytes[view.bytes().len()..];
    }
    end
}

/// One batch of keyed records (`None` values are tombstones).
pub fn keyed_batch(records: &[(&[u8], Option<&[u8]>)], timestamp: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(ProducerStamp::NONE);
    for (key, value) in records {
        b.push(&NewRecord {
            key: Some(key),
            value: *value,
            headers: &[],
            timestamp,
        })
        .unwrap();
    }
    b.finish().unwrap()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A value that says where it was produced.
pub fn value(partition: u32, i: usize) -> Vec<u8> {
    format!("p{partition}-record-{i:06}").into_bytes()
}
