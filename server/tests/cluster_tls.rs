//! The brokers' QUIC endpoint: certificates from `ringlog-server certs`
//! authenticate both ends, a peer outside the cluster CA or claiming another
//! node is refused, and the binary writes the certificates and says what is
//! missing.

use std::net::SocketAddr;
use std::process::Command;

use ringlog_server::cluster::certs;
use ringlog_server::cluster::quic::{self, Tls};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Connects to `node` at `addr` and exchanges a byte on a stream. TLS 1.3
/// may finish the client side before the server has checked the client's
/// certificate: only using the connection shows whether it was accepted.
async fn exchange(endpoint: &quinn::Endpoint, addr: SocketAddr, node: u32) -> anyhow::Result<()> {
    let conn = quic::connect(endpoint, addr, node).await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(b"x").await?;
    send.finish()?;
    recv.read_to_end(16).await?;
    Ok(())
}

#[test]
fn nodes_of_one_ca_authenticate_each_other_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    certs::generate(dir.path(), &[1, 2, 3]).unwrap();
    certs::generate(other.path(), &[1, 2, 3]).unwrap();
    runtime().block_on(async {
        let node1 = Tls::load(dir.path(), 1).unwrap().endpoint(local()).unwrap();
        let node2 = Tls::load(dir.path(), 2).unwrap().endpoint(local()).unwrap();
        let addr2 = node2.local_addr().unwrap();
        // Node 2 reports whom each completed handshake authenticated, and
        // echoes one stream.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(incoming) = node2.accept().await {
                let Ok(conn) = incoming.await else { continue };
                let _ = tx.send(quic::peer_node(&conn, &[1, 2, 3]));
                tokio::spawn(async move {
                    if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        if let Ok(msg) = recv.read_to_end(1024).await {
                            let _ = send.write_all(&msg).await;
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        }
                    }
                });
            }
        });

        let conn = quic::connect(&node1, addr2, 2).await.unwrap();
        assert_eq!(quic::peer_node(&conn, &[1, 2, 3]), Some(2));
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(b"hello").await.unwrap();
        send.finish().unwrap();
        assert_eq!(recv.read_to_end(1024).await.unwrap(), b"hello");

        // Expecting node 3 at node 2's address: node 2 cannot prove it.
        let wrong = quic::connect(&node1, addr2, 3).await;
        assert!(wrong.is_err(), "a node passed for another");

        // A broker of another cluster's CA.
        let stranger = Tls::load(other.path(), 1)
            .unwrap()
            .endpoint(local())
            .unwrap();
        assert!(
            exchange(&stranger, addr2, 2).await.is_err(),
            "a certificate of another CA got through"
        );

        // Trusting the cluster CA but presenting another CA's certificate:
        // node 2 itself must refuse it (mutual TLS).
        let mixed = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir.path().join(certs::CA_CERT),
            mixed.path().join(certs::CA_CERT),
        )
        .unwrap();
        std::fs::copy(
            certs::node_cert(other.path(), 1),
            certs::node_cert(mixed.path(), 1),
        )
        .unwrap();
        std::fs::copy(
            certs::node_key(other.path(), 1),
            certs::node_key(mixed.path(), 1),
        )
        .unwrap();
        let impostor = Tls::load(mixed.path(), 1)
            .unwrap()
            .endpoint(local())
            .unwrap();
        assert!(
            exchange(&impostor, addr2, 2).await.is_err(),
            "node 2 accepted a client certificate of another CA"
        );

        assert_eq!(rx.recv().await, Some(Some(1)), "node 2 did not see node 1");
        // Node 1 again (the connection it gave up on), never a stranger.
        while let Ok(peer) = rx.try_recv() {
            assert_eq!(peer, Some(1), "a stranger was authenticated");
        }
    });
}

#[test]
fn another_nodes_files_or_missing_files_are_refused_with_the_command_that_makes_them() {
    let dir = tempfile::tempdir().unwrap();
    certs::generate(dir.path(), &[1, 2]).unwrap();
    let missing = Tls::load(dir.path(), 3).err().unwrap().to_string();
    assert!(missing.contains("ringlog-server certs"), "{missing}");
    std::fs::copy(
        certs::node_cert(dir.path(), 2),
        certs::node_cert(dir.path(), 1),
    )
    .unwrap();
    std::fs::copy(
        certs::node_key(dir.path(), 2),
        certs::node_key(dir.path(), 1),
    )
    .unwrap();
    let swapped = Tls::load(dir.path(), 1).err().unwrap().to_string();
    assert!(swapped.contains("not node 1's certificate"), "{swapped}");
    assert!(certs::generate(dir.path(), &[4]).is_err(), "overwrote a CA");
}

#[test]
fn the_binary_writes_a_ca_and_one_key_and_certificate_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringlog-server"))
        .args(["certs"])
        .arg(dir.path().join("certs"))
        .args(["--nodes", "1,2,3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca.key",
            "ca.pem",
            "node-1.key",
            "node-1.pem",
            "node-2.key",
            "node-2.pem",
            "node-3.key",
            "node-3.pem"
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("certs/node-2.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "a key readable by others");
    for node in 1..=3 {
        Tls::load(&dir.path().join("certs"), node).unwrap();
    }
}
