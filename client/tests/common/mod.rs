//! What the client's integration tests share: the broker binary on a
//! loopback port, and a tokio runtime to drive the library.
#![allow(dead_code)]

use ringlog_server::testing::{server_binary, BrokerProcess};

/// The real `ringlog-server` with `shards` shards on a fresh data directory.
pub fn broker(dir: &std::path::Path, shards: usize) -> BrokerProcess {
    BrokerProcess::start(&server_binary(), dir, shards, &[]).expect("start the broker")
}

/// A two-worker runtime, like a small application's.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
