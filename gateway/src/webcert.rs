//! Which certificate a TLS client gets: a browser asking for one of the
//! names of the operator's web certificate (`--web-cert`/`--web-key`, say
//! one an ACME client keeps current) gets that one; everyone else —
//! applets and consoles, which pin the operator CA — gets the node's own
//! certificate. The choice is by SNI, per handshake, so the two never mix:
//! the web names must differ from the names applets and consoles use.
//!
//! The web certificate is read again on SIGHUP ([`Certificates::reload`]);
//! connections already made keep theirs, so no session notices. A reload
//! that fails keeps the certificate in use and says why.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The web certificate in use.
#[derive(Debug)]
struct Web {
    key: Arc<CertifiedKey>,
    /// Its leaf, to check an SNI against.
    leaf: CertificateDer<'static>,
}

/// The node's certificate, and the operator's web certificate if any.
#[derive(Debug)]
pub struct Certificates {
    node: Arc<CertifiedKey>,
    web: RwLock<Option<Web>>,
    files: Option<(PathBuf, PathBuf)>,
    provider: Arc<CryptoProvider>,
}

impl Certificates {
    /// The node's certificate; and the web certificate from `files`
    /// (chain, key), read now.
    pub fn new(
        node_chain: Vec<CertificateDer<'static>>,
        node_key: PrivateKeyDer<'static>,
        files: Option<(PathBuf, PathBuf)>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let signing = provider
            .key_provider
            .load_private_key(node_key)
            .map_err(|e| format!("the node's key: {e}"))?;
        let c = Self {
            node: Arc::new(CertifiedKey::new(node_chain, signing)),
            web: RwLock::new(None),
            files,
            provider,
        };
        if c.files.is_some() {
            c.reload()?;
        }
        Ok(c)
    }

    /// Reads the web certificate's files again. Returns what it now
    /// serves (for the log), or why it kept the old one.
    pub fn reload(&self) -> Result<String, String> {
        let Some((cert, key)) = &self.files else {
            return Ok("no web certificate configured".into());
        };
        let web = load(cert, key, &self.provider)?;
        let what = format!("web certificate {} loaded", cert.display());
        *self.web.write().unwrap_or_else(|p| p.into_inner()) = Some(web);
        Ok(what)
    }
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Web, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let leaf = chain
        .first()
        .cloned()
        .ok_or_else(|| format!("{}: no certificate in it", cert.display()))?;
    // It must be a certificate webpki can read (else no SNI would match).
    webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| format!("{}: not a usable certificate: {e:?}", cert.display()))?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "{} does not belong to {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Web {
        key: Arc::new(certified),
        leaf,
    })
}

/// Whether the web certificate `leaf` is for `sni`.
fn covers(leaf: &CertificateDer<'_>, sni: &str) -> bool {
    let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
        return false;
    };
    let Ok(name) = ServerName::try_from(sni) else {
        return false;
    };
    cert.verify_is_valid_for_subject_name(&name).is_ok()
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = hello.server_name() {
            let web = self.web.read().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = web.as_ref()
                && covers(&w.leaf, sni)
            {
                return Some(w.key.clone());
            }
        }
        Some(self.node.clone())
    }
}
