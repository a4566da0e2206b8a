//! The QUIC endpoint between brokers: quinn over rustls (the ring
//! provider), TLS 1.3 with mutual authentication by certificates of the
//! cluster CA. Controller traffic and replication share one endpoint.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{TransportConfig, VarInt};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::certs::{node_cert, node_key, CA_CERT};

/// The ALPN protocol brokers speak to each other; a peer offering another
/// (an older or newer ringlog, or something else) is refused in the
/// handshake.
pub const ALPN: &[u8] = b"ringlog-cluster/1";

/// The DNS name node `n`'s certificate carries.
pub fn node_name(node: u32) -> String {
    format!("node-{node}.ringlog")
}

/// The transport settings between brokers: quinn's flow-control windows as
/// they are, measured rather than raised.
///
/// Raising them was the plan (quinn's 1.25 MB stream window is smaller than a
/// 4 MiB fetch answer, so an answer waits a round trip per window). Measured
/// on this machine (`benches/quic-windows.sh`, `benches/RESULTS.md`), larger
/// windows gain nothing with each end on its own core (0.93-1.14x with 4 MiB
/// stream and 16 MiB connection windows, 0.92-1.06x with 16/64 MiB) and lose
/// with both ends on one core (0.70-0.81x and 0.54-0.89x), which brokers of
/// a small cluster on few cores often are. QUIC's own processing bounds a
/// connection (0.35-0.46 GB/s here, 0.2-0.26 of loopback TCP) long before the
/// window does: at 1.25 MB per round trip the window caps a stream only past
/// about 3 ms of RTT, beyond one datacenter. Keep-alives every second and a
/// 10 s idle timeout notice a dead peer well within the broker session
/// timeout; a fetch session per shard and leader needs few streams.
pub fn transport_config() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(1_024));
    t.keep_alive_interval(Some(Duration::from_secs(1)));
    t.max_idle_timeout(Some(VarInt::from_u32(10_000).into()));
    t
}

/// A node's TLS identity and the CA it trusts, as quinn configurations.
pub struct Tls {
    /// For the accepting side.
    pub server: quinn::ServerConfig,
    /// For the connecting side.
    pub client: quinn::ClientConfig,
}

impl Tls {
    /// Loads node `node`'s certificate and key and the CA from `dir` (as
    /// written by `ringlog-server certs`). Says which command makes them
    /// when they are missing, and refuses another node's certificate.
    pub fn load(dir: &Path, node: u32) -> anyhow::Result<Self> {
        let (ca_path, cert_path, key_path) =
            (dir.join(CA_CERT), node_cert(dir, node), node_key(dir, node));
        for path in [&ca_path, &cert_path, &key_path] {
            if !path.exists() {
                bail!(
                    "cluster mode needs certificates: {} is missing. Make them with\n  \
                     ringlog-server certs {} --nodes <every node id, e.g. 1,2,3>\n\
                     and give each broker the directory with --tls-dir",
                    path.display(),
                    dir.display()
                );
            }
        }
        let ca = CertificateDer::from_pem_file(&ca_path)
            .with_context(|| format!("reading {}", ca_path.display()))?;
        let chain = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading {}", cert_path.display()))?;
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        let first = chain
            .first()
            .ok_or_else(|| anyhow!("{} holds no certificate", cert_path.display()))?;
        if !certificate_names(first, node) {
            bail!(
                "{} is not node {node}'s certificate (it does not name {})",
                cert_path.display(),
                node_name(node)
            );
        }
        let mut roots = RootCertStore::empty();
        roots.add(ca).context("the cluster CA certificate")?;
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .context("building the client-certificate verifier")?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .with_context(|| format!("{} and {}", cert_path.display(), key_path.display()))?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .with_context(|| format!("{} and {}", cert_path.display(), key_path.display()))?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        let transport = Arc::new(transport_config());
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(server).context("QUIC server TLS")?,
        ));
        server.transport_config(transport.clone());
        let mut client = quinn::ClientConfig::new(Arc::new(
            QuicClientConfig::try_from(client).context("QUIC client TLS")?,
        ));
        client.transport_config(transport);
        Ok(Self { server, client })
    }

    /// An endpoint bound to `addr` that accepts peers and connects to them.
    pub fn endpoint(self, addr: SocketAddr) -> anyhow::Result<quinn::Endpoint> {
        self.endpoint_with(addr, quinn::EndpointConfig::default())
    }

    /// [`Tls::endpoint`] with its endpoint-wide settings.
    pub fn endpoint_with(
        self,
        addr: SocketAddr,
        config: quinn::EndpointConfig,
    ) -> anyhow::Result<quinn::Endpoint> {
        let socket = std::net::UdpSocket::bind(addr)
            .with_context(|| format!("binding the replication endpoint to {addr}"))?;
        let runtime = quinn::default_runtime().context("no async runtime for QUIC")?;
        let mut endpoint = quinn::Endpoint::new(config, Some(self.server), socket, runtime)
            .with_context(|| format!("the replication endpoint on {addr}"))?;
        endpoint.set_default_client_config(self.client);
        Ok(endpoint)
    }
}

/// Whether a certificate is valid for node `node`'s name.
fn certificate_names(cert: &CertificateDer<'_>, node: u32) -> bool {
    let Ok(name) = ServerName::try_from(node_name(node)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert)
        .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
}

/// Which of `candidates` the peer of `conn` is, by the name in the
/// certificate it authenticated with (the CA signed it; the handshake proved
/// the key). `None` if it is none of them.
pub fn peer_node(conn: &quinn::Connection, candidates: &[u32]) -> Option<u32> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let first = certs.first()?;
    candidates
        .iter()
        .copied()
        .find(|node| certificate_names(first, *node))
}

/// Connects to node `node` at `addr`; the handshake fails unless the peer
/// proves it is that node.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    node: u32,
) -> anyhow::Result<quinn::Connection> {
    let connecting = endpoint
        .connect(addr, &node_name(node))
        .with_context(|| format!("connecting to node {node} at {addr}"))?;
    connecting
        .await
        .with_context(|| format!("handshake with node {node} at {addr}"))
}
