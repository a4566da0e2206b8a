//! The QUIC endpoint runs inside a shard's runtime (tokio-uring drives a
//! current-thread tokio runtime underneath), so a shard can hold its own
//! replication sessions with no other thread in between.

use ringlog_server::cluster::certs;
use ringlog_server::cluster::quic::{self, Tls};

#[test]
fn a_quic_session_runs_on_a_tokio_uring_runtime() {
    let dir = tempfile::tempdir().unwrap();
    certs::generate(dir.path(), &[1, 2]).unwrap();
    tokio_uring::start(async {
        let local = "127.0.0.1:0".parse().unwrap();
        let a = Tls::load(dir.path(), 1).unwrap().endpoint(local).unwrap();
        let b = Tls::load(dir.path(), 2).unwrap().endpoint(local).unwrap();
        let addr = b.local_addr().unwrap();
        tokio_uring::spawn(async move {
            let conn = b.accept().await.unwrap().await.unwrap();
            let (mut send, mut recv) = conn.accept_bi().await.unwrap();
            let got = recv.read_to_end(1 << 20).await.unwrap();
            send.write_all(&got).await.unwrap();
            send.finish().unwrap();
            let _ = send.stopped().await;
        });
        let conn = quic::connect(&a, addr, 2).await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let payload = vec![7u8; 300_000];
        send.write_all(&payload).await.unwrap();
        send.finish().unwrap();
        assert_eq!(recv.read_to_end(1 << 20).await.unwrap(), payload);
    });
}
