//! `ringlog-server certs DIR --nodes 1,2,3`: a cluster CA and one key and
//! certificate per node, so a local cluster is one command away.
//!
//! Node `n`'s certificate names `node-n.ringlog` (see
//! [`super::quic::node_name`]) and serves both ends of a connection: brokers
//! authenticate each other with it (mutual TLS), and the name is how a
//! broker knows which node is on the other end.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use super::quic::node_name;

/// The CA certificate's file name.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name: whoever holds it can add brokers to the cluster.
pub const CA_KEY: &str = "ca.key";

/// Node `n`'s certificate file in a certificate directory.
pub fn node_cert(dir: &Path, node: u32) -> PathBuf {
    dir.join(format!("node-{node}.pem"))
}

/// Node `n`'s key file in a certificate directory.
pub fn node_key(dir: &Path, node: u32) -> PathBuf {
    dir.join(format!("node-{node}.key"))
}

/// Writes a new CA and a key and certificate for each of `nodes` into
/// `dir`; returns the files written. Refuses to overwrite a CA: certificates
/// of two CAs do not trust each other, and a cluster half on each would
/// split.
pub fn generate(dir: &Path, nodes: &[u32]) -> anyhow::Result<Vec<PathBuf>> {
    if nodes.is_empty() {
        bail!("name at least one node: --nodes 1,2,3");
    }
    let mut sorted = nodes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != nodes.len() {
        bail!("--nodes {nodes:?} names a node twice");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir.join(CA_CERT).exists() || dir.join(CA_KEY).exists() {
        bail!(
            "{} already holds a cluster CA; use another directory (or remove it to start a new cluster)",
            dir.display()
        );
    }
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ringlog cluster CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut written = vec![
        write(&dir.join(CA_CERT), ca_cert.pem(), false)?,
        write(&dir.join(CA_KEY), ca_key.serialize_pem(), true)?,
    ];
    for &node in nodes {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![node_name(node)])?;
        params
            .distinguished_name
            .push(DnType::CommonName, node_name(node));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
        written.push(write(&node_cert(dir, node), cert.pem(), false)?);
        written.push(write(&node_key(dir, node), key.serialize_pem(), true)?);
    }
    Ok(written)
}

/// Writes a file, readable only by its owner if it holds a key.
fn write(path: &Path, contents: String, secret: bool) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    if secret {
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}
