//! The operator-signed gateway directory.
//!
//! The portal serves [`SignedDirectory`]: the directory as JSON text plus an
//! Ed25519 signature over [`SIGNING_CONTEXT`] ‖ that exact text, so no JSON
//! canonicalisation is needed. The applet verifies it with the operator key
//! before it trusts any address in it.

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// Domain separation for the directory signature.
pub const SIGNING_CONTEXT: &[u8] = b"lifeline gateway directory v1\0";
/// Most nodes an applet considers.
pub const MAX_NODES: usize = 64;

/// One gateway node that accepts relay connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryNode {
    /// The node's name.
    pub name: String,
    /// `host:port` of its TLS listener.
    pub addr: String,
}

/// The list of nodes an applet may connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Operator display name.
    pub operator: String,
    /// When the directory was produced (Unix ms).
    pub issued_at_ms: i64,
    /// Live nodes, best first.
    pub nodes: Vec<DirectoryNode>,
}

/// The directory as served: JSON text and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDirectory {
    /// `Directory` serialised as JSON.
    pub directory: String,
    /// Hex Ed25519 signature.
    pub signature: String,
}

/// Why a directory was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The signature does not verify.
    #[error("gateway directory signature is not valid")]
    BadSignature,
    /// The JSON does not parse.
    #[error("gateway directory is malformed: {0}")]
    Malformed(String),
    /// It lists no usable node.
    #[error("gateway directory lists no gateway")]
    Empty,
}

impl SignedDirectory {
    /// Signs `dir` with `sign`, which receives the exact message.
    pub fn sign(dir: &Directory, sign: impl FnOnce(&[u8]) -> [u8; 64]) -> Self {
        let directory = serde_json::to_string(dir).unwrap_or_default();
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(directory.as_bytes());
        SignedDirectory {
            signature: crate::hex::encode(&sign(&msg)),
            directory,
        }
    }

    /// Verifies with `key` and parses.
    pub fn verify(&self, key: &[u8; 32]) -> Result<Directory, DirectoryError> {
        let sig = crate::hex::decode(&self.signature).ok_or(DirectoryError::BadSignature)?;
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(self.directory.as_bytes());
        UnparsedPublicKey::new(&ED25519, key)
            .verify(&msg, &sig)
            .map_err(|_| DirectoryError::BadSignature)?;
        let dir: Directory = serde_json::from_str(&self.directory)
            .map_err(|e| DirectoryError::Malformed(e.to_string()))?;
        if dir.nodes.is_empty() {
            return Err(DirectoryError::Empty);
        }
        Ok(dir)
    }
}
