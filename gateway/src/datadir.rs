//! The node's data directory: created on first run, reused afterwards.
//!
//! | file | what | mode |
//! |---|---|---|
//! | `operator.toml` | operator name, node name | 0600 |
//! | `operator-ca.pem` / `operator-ca.key.pem` | the operator CA that every gateway certificate chains to | 0644 / 0600 |
//! | `operator-signing.pk8` | Ed25519 key that signs applet trailers and the directory | 0600 |
//! | `gateway.db` | the SQLite store (default) | 0600 |
//!
//! The node certificate is issued afresh at every start (it is cheap and
//! picks up changed `--public-name`s); clients trust the CA, which stays.
//! In a cluster, copy the CA and signing key files to every node.

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors preparing the data directory.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
    /// Another node runs on this data directory.
    #[error(
        "another gateway is already running on the data directory {dir}{holder}: one data \
         directory is one node — give this one a --data-dir of its own (nodes share a \
         PostgreSQL --store, not a directory)"
    )]
    Locked {
        /// The directory.
        dir: PathBuf,
        /// ` (process N)`, when known.
        holder: String,
    },
    /// A stored file is damaged.
    #[error("{path} is damaged: {why}")]
    Damaged {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// A data directory held by this process, until dropped. The lock is the
/// kernel's (`flock` on `gateway.lock`), so it goes with the process: a
/// node that crashed leaves nothing behind that blocks its restart.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// Takes `dir` for this process (made if missing), or says which process
/// has it.
pub fn lock(dir: &Path) -> Result<DirLock, DataDirError> {
    ensure_dir(dir)?;
    let path = dir.join("gateway.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = std::io::Read::read_to_string(&mut file, &mut pid);
            let pid = pid.trim();
            return Err(DataDirError::Locked {
                dir: dir.to_owned(),
                holder: if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (process {pid})")
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
    }
    // Who holds it, for the message above (advice only: the lock is the
    // kernel's).
    let _ = file.set_len(0);
    let _ = std::io::Write::write_all(&mut file, format!("{}\n", std::process::id()).as_bytes());
    Ok(DirLock { _file: file })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct OperatorFile {
    operator_name: String,
    node_name: String,
}

/// The operator's keys and this node's certificate.
pub struct NodeIdentity {
    /// Operator display name.
    pub operator_name: String,
    /// This node's default name.
    pub node_name: String,
    /// Operator CA certificate.
    pub ca_cert: CertificateDer<'static>,
    /// SHA-256 of the CA certificate (what technicians pin).
    pub ca_fingerprint: [u8; 32],
    /// This start's node certificate chain: `[node, CA]`.
    pub chain: Vec<CertificateDer<'static>>,
    /// Node private key.
    pub node_key: PrivateKeyDer<'static>,
    /// Ed25519 signing key for trailers and the directory.
    pub signing_key: Ed25519KeyPair,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("operator_name", &self.operator_name)
            .field("node_name", &self.node_name)
            .field(
                "ca_fingerprint",
                &lifeline_protocol::hex::fingerprint(&self.ca_fingerprint),
            )
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// The operator's Ed25519 public key.
    pub fn operator_key(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.signing_key.public_key().as_ref());
        k
    }

    /// Signs `msg` with the operator key.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut s = [0u8; 64];
        s.copy_from_slice(self.signing_key.sign(msg).as_ref());
        s
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Creates the directory (0700) if needed.
pub fn ensure_dir(dir: &Path) -> Result<(), DataDirError> {
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(io_err(dir))?;
    }
    Ok(())
}

fn ca_params(operator_name: &str) -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{operator_name} Lifeline CA"),
    );
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, operator_name);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(p)
}

fn random_name() -> String {
    let mut b = [0u8; 4];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b).unwrap_or_default();
    format!("gw-{}", lifeline_protocol::hex::encode(&b))
}

/// Opens the data directory, creating what is missing, and issues this
/// start's node certificate for `names` (plus localhost and 127.0.0.1).
/// Returns the identity and whether the directory was created now.
pub fn open(
    dir: &Path,
    operator_name: Option<&str>,
    names: &[String],
) -> Result<(NodeIdentity, bool), DataDirError> {
    ensure_dir(dir)?;
    let op_path = dir.join("operator.toml");
    let first_run = !op_path.exists();
    let op = if first_run {
        let op = OperatorFile {
            operator_name: operator_name.unwrap_or("Lifeline").to_owned(),
            node_name: random_name(),
        };
        let text = toml::to_string(&op).map_err(|e| DataDirError::Damaged {
            path: op_path.clone(),
            why: e.to_string(),
        })?;
        write_private(&op_path, text.as_bytes())?;
        op
    } else {
        let text = std::fs::read_to_string(&op_path).map_err(io_err(&op_path))?;
        let op: OperatorFile = toml::from_str(&text).map_err(|e| DataDirError::Damaged {
            path: op_path.clone(),
            why: e.to_string(),
        })?;
        // The operator's name is the CA's: it is chosen once, when the
        // data directory is made, and a different one later is not taken.
        if let Some(asked) = operator_name
            && asked != op.operator_name
        {
            tracing::warn!(
                "operator name {asked:?} is not used: this data directory's operator is {:?} \
                 (it names the operator CA; changing it means a new CA and data directory)",
                op.operator_name
            );
        }
        op
    };

    // Operator CA. Its subject is derived from the operator name, so the
    // issuer can be rebuilt from the stored key alone.
    let ca_path = dir.join("operator-ca.pem");
    let ca_key_path = dir.join("operator-ca.key.pem");
    let params = ca_params(&op.operator_name)?;
    let (ca_der, ca_key) = if ca_key_path.exists() && ca_path.exists() {
        let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| DataDirError::Damaged {
            path: ca_key_path.clone(),
            why: e.to_string(),
        })?;
        let cert_pem = std::fs::read(&ca_path).map_err(io_err(&ca_path))?;
        let der = pem_cert(&cert_pem).ok_or_else(|| DataDirError::Damaged {
            path: ca_path.clone(),
            why: "no certificate".into(),
        })?;
        (der, key)
    } else {
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&ca_path, cert.pem()).map_err(io_err(&ca_path))?;
        (cert.der().clone(), key)
    };

    // Operator signing key (trailers, directory).
    let sk_path = dir.join("operator-signing.pk8");
    let pkcs8 = if sk_path.exists() {
        std::fs::read(&sk_path).map_err(io_err(&sk_path))?
    } else {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| {
            DataDirError::Damaged {
                path: sk_path.clone(),
                why: "key generation failed".into(),
            }
        })?;
        write_private(&sk_path, doc.as_ref())?;
        doc.as_ref().to_vec()
    };
    let signing_key = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| DataDirError::Damaged {
        path: sk_path.clone(),
        why: e.to_string(),
    })?;

    // This start's node certificate.
    let mut all_names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for n in names {
        let n = n.trim();
        if !n.is_empty() && !all_names.iter().any(|x| x == n) {
            all_names.push(n.to_owned());
        }
    }
    let node_key = rcgen::KeyPair::generate()?;
    let mut node_params = rcgen::CertificateParams::new(all_names)?;
    node_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{} gateway {}", op.operator_name, op.node_name),
    );
    node_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = rcgen::Issuer::new(params, &ca_key);
    let node_cert = node_params.signed_by(&node_key, &issuer)?;

    let ca_fingerprint = lifeline_tls::sha256(ca_der.as_ref());
    Ok((
        NodeIdentity {
            operator_name: op.operator_name,
            node_name: op.node_name,
            chain: vec![node_cert.der().clone(), ca_der.clone()],
            ca_cert: ca_der,
            ca_fingerprint,
            node_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(node_key.serialize_der())),
            signing_key,
        },
        first_run,
    ))
}

fn pem_cert(pem: &[u8]) -> Option<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem).ok()
}
