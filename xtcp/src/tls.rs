//! QUIC TLS for XTCP: the accepting end presents a certificate, the
//! connecting end accepts only the pinned SPKI (the same pinned session
//! certificate as the relayed session), and all traffic keys use
//! TLS13_AES_256_GCM_SHA384. QUIC's initial packets are protected with
//! AES-128-GCM keys derived from public values, as RFC 9001 fixes; that is
//! obfuscation, not confidentiality, and carries only the handshake.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// ALPN of XTCP.
pub const ALPN: &[u8] = b"lifeline-xtcp/1";

/// Errors building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls or quinn refused the configuration.
    #[error("XTCP TLS configuration: {0}")]
    Config(String),
}

fn initial_suite() -> Result<rustls::quic::Suite, TlsError> {
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .ok_or_else(|| TlsError::Config("no QUIC initial suite".into()))
}

/// Client (connecting end) configuration pinned to `pin`.
pub fn client_config(pin: [u8; 32]) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsError> {
    let base = lifeline_tls::e2e_client_config(pin).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = (*base).clone();
    config.alpn_protocols = vec![ALPN.to_vec()];
    quinn::crypto::rustls::QuicClientConfig::with_initial(Arc::new(config), initial_suite()?)
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// Server (accepting end) configuration with `cert` and `key`.
pub fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
    let base =
        lifeline_tls::e2e_server_config(cert, key).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = (*base).clone();
    config.alpn_protocols = vec![ALPN.to_vec()];
    // QUIC requires 0 or u32::MAX; we never accept 0-RTT data.
    config.max_early_data_size = 0;
    quinn::crypto::rustls::QuicServerConfig::with_initial(Arc::new(config), initial_suite()?)
        .map_err(|e| TlsError::Config(e.to_string()))
}
