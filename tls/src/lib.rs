//! Lifeline's TLS: rustls configurations for both layers, and the console's
//! per-session identity ([`identity`]).
//!
//! A crate of its own so that both the session crate and the XTCP transport
//! (which the session crate uses) build on the same configurations.
//!
//! Everything is built with `builder_with_provider` on ring, so the tree has
//! one rustls and one ring and no aws-lc C build.
//!
//! * Outer TLS (client → gateway): the gateway presents `[node cert, CA]`.
//!   Clients trust the operator CA ([`GatewayTrust::Ca`]); a technician's
//!   first login instead pins the CA's SHA-256 fingerprint as printed by the
//!   gateway ([`GatewayTrust::CaFingerprint`]), and then keeps the CA.
//! * Inner TLS (applet ↔ console, end to end through the relay): TLS 1.3 with
//!   TLS13_AES_256_GCM_SHA384 only. The console is the server with its
//!   per-session certificate; the applet accepts exactly the certificate
//!   whose SPKI hashes to the pin in its signed trailer.
#![forbid(unsafe_code)]

pub mod identity;

use ring::digest::{SHA256, digest};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring as ring_provider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::sync::Arc;

/// The signature half of a `ServerCertVerifier` for TLS 1.3-only configs
/// whose verifier has a `provider` field: TLS 1.2 is refused, TLS 1.3
/// CertificateVerify signatures are checked with the provider's algorithms.
/// Shared by both custom verifiers below, which differ only in how they
/// accept the certificate itself.
macro_rules! tls13_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::Tls12NotOffered,
            ))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// Server name the applet uses for the inner TLS. The pinned verifier
/// ignores names, since the pin is the identity.
pub const E2E_SERVER_NAME: &str = "console.lifeline.invalid";

/// Errors building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificate could not be parsed.
    #[error("certificate: {0}")]
    Certificate(String),
}

/// The provider for the outer TLS: ring with its default suites.
pub fn outer_provider() -> Arc<CryptoProvider> {
    Arc::new(ring_provider::default_provider())
}

/// The provider for the inner TLS: ring restricted to TLS13_AES_256_GCM_SHA384.
pub fn e2e_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![ring_provider::cipher_suite::TLS13_AES_256_GCM_SHA384],
        ..ring_provider::default_provider()
    })
}

/// SHA-256 of a DER blob (certificate fingerprints).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Result<[u8; 32], TlsSetupError> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| TlsSetupError::Certificate(format!("{e:?}")))?;
    Ok(sha256(ee.subject_public_key_info().as_ref()))
}

/// How a client decides that a gateway is the operator's.
#[derive(Debug, Clone)]
pub enum GatewayTrust {
    /// The operator CA certificate (DER).
    Ca(CertificateDer<'static>),
    /// The SHA-256 fingerprint of the operator CA, which the gateway must
    /// send in its chain.
    CaFingerprint([u8; 32]),
}

/// Client configuration for connections to a gateway, offering `alpn`.
pub fn gateway_client_config(
    trust: &GatewayTrust,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = outer_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let mut config = match trust {
        GatewayTrust::Ca(ca) => builder
            .with_root_certificates(root_store(ca)?)
            .with_no_client_auth(),
        GatewayTrust::CaFingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaFingerprintVerifier {
                fingerprint: *fp,
                provider,
            }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(config))
}

fn root_store(ca: &CertificateDer<'_>) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone().into_owned())
        .map_err(TlsSetupError::Rustls)?;
    Ok(roots)
}

/// Verifies a gateway chain whose CA is known only by fingerprint: the CA
/// must be among the presented certificates, and then the chain is checked
/// exactly as with a configured root (signature, validity, name).
#[derive(Debug)]
struct CaFingerprintVerifier {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl CaFingerprintVerifier {
    fn delegate(
        &self,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256(c.as_ref()) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the gateway's CA does not match the fingerprint you gave".into(),
                )
            })?;
        let roots = root_store(ca).map_err(|e| rustls::Error::General(e.to_string()))?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))
    }
}

impl ServerCertVerifier for CaFingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.delegate(intermediates)?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    tls13_signature_checks!();
}

/// Accepts exactly one public key: the one whose SPKI hashes to the pin.
/// Names, validity dates and issuers are irrelevant for a per-session
/// self-signed certificate; the TLS 1.3 CertificateVerify signature is
/// still checked, so only the holder of the private key passes.
#[derive(Debug)]
pub struct PinnedSpkiVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedSpkiVerifier {
    /// A verifier for `pin`.
    pub fn new(pin: [u8; 32]) -> Self {
        Self {
            pin,
            provider: e2e_provider(),
        }
    }
}

impl ServerCertVerifier for PinnedSpkiVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = spki_sha256(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        // The pin is public (it is in the trailer), so a plain comparison
        // leaks nothing.
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    tls13_signature_checks!();
}

/// Inner-TLS client configuration (applet side) pinned to `pin`.
pub fn e2e_client_config(pin: [u8; 32]) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let config = ClientConfig::builder_with_provider(e2e_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedSpkiVerifier::new(pin)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Inner-TLS server configuration (console side) with the session certificate.
pub fn e2e_server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let config = ServerConfig::builder_with_provider(e2e_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    Ok(Arc::new(config))
}

/// Whether an I/O error from a TLS handshake means the peer's certificate
/// was refused by our verifier (as opposed to a network failure).
pub fn is_certificate_rejection(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::General(_)
            )
        })
}
