//! The console's per-session identity: a fresh key pair and self-signed
//! certificate whose SPKI hash is pinned in the applet's trailer.
//!
//! The private key never leaves the technician's machine; callers store it
//! with 0600 permissions and delete it when the session ends.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A session certificate and its key.
#[derive(Clone)]
pub struct SessionIdentity {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// The PKCS#8 private key (DER).
    key_pkcs8: Vec<u8>,
    /// Certificate and key as PEM, as stored on disk.
    pem: String,
}

impl std::fmt::Debug for SessionIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("SessionIdentity")
            .field("pin", &lifeline_protocol::hex::encode(&self.pin()))
            .finish_non_exhaustive()
    }
}

/// Errors creating or loading an identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Key or certificate generation failed.
    #[error("could not generate the session certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Stored material is unreadable.
    #[error("stored session identity is damaged: {0}")]
    Damaged(String),
}

impl SessionIdentity {
    /// Generates a new ECDSA P-256 key pair and a self-signed certificate.
    pub fn generate(common_name: &str) -> Result<Self, IdentityError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![crate::E2E_SERVER_NAME.into()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert: cert.der().clone(),
            key_pkcs8: key.serialize_der(),
            pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        })
    }

    /// SHA-256 of the certificate's SPKI: the pin the applet checks.
    pub fn pin(&self) -> [u8; 32] {
        crate::spki_sha256(&self.cert).unwrap_or([0; 32])
    }

    /// The private key for rustls.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }

    /// Certificate then key as PEM, for storage (0600).
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    /// Parses what [`to_pem`](Self::to_pem) wrote.
    pub fn from_pem(pem: &str) -> Result<Self, IdentityError> {
        let cert = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| IdentityError::Damaged(format!("certificate: {e}")))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| IdentityError::Damaged(format!("private key: {e}")))?;
        Ok(Self {
            cert,
            key_pkcs8: key.secret_pkcs8_der().to_vec(),
            pem: pem.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_pin() {
        let id = SessionIdentity::generate("test").unwrap();
        let back = SessionIdentity::from_pem(id.to_pem()).unwrap();
        assert_eq!(back.pin(), id.pin());
        assert_ne!(id.pin(), [0; 32]);
        assert!(SessionIdentity::from_pem("garbage").is_err());
    }
}
