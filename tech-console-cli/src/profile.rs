//! What the console keeps on disk, under its config directory:
//!
//! | file | what |
//! |---|---|
//! | `login.json` | gateway address, token, expiry, technician (0600) |
//! | `gateway-ca.pem` | the operator CA learned at login |
//! | `sessions/GUID/identity.pem` | the session's private key and certificate (0600) |
//! | `sessions/GUID/session.json` | label and applet secret (0600) |
//! | `notes/GUID.txt` | the technician's notes on the session (0600) |
//! | `console.log` | the full-screen console's log (0600) |
//! | `last-login.json` | gateway and e-mail of the last login, kept at logout for the next (0600) |
//!
//! A session's directory is deleted when the session ends, so its private
//! key does not outlive it; its notes stay (they are the technician's).

use anyhow::{Context, bail};
use lifeline_protocol::SessionGuid;
use lifeline_session::addr::HostPort;
use lifeline_session::identity::SessionIdentity;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The saved login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    /// Gateway `host:port` used for the portal.
    pub gateway: String,
    /// Bearer token.
    pub token: String,
    /// Token expiry (Unix ms).
    pub expires_at_ms: i64,
    /// Technician e-mail.
    pub email: String,
    /// Technician display name.
    pub name: String,
}

/// Where and as whom the last login was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastLogin {
    /// Gateway `host:port`.
    pub gateway: String,
    /// Technician e-mail.
    pub email: String,
}

/// A session created on this machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalSession {
    /// Its GUID.
    pub guid: SessionGuid,
    /// Its label.
    pub label: String,
    /// The applet secret (hex) the applet must prove.
    pub applet_secret: String,
}

/// The console's config directory.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

impl Profile {
    /// `explicit`, else `$LIFELINE_CONSOLE_DIR`, else
    /// `$XDG_CONFIG_HOME/lifeline`, else `~/.config/lifeline`.
    pub fn locate(explicit: Option<PathBuf>) -> anyhow::Result<Self> {
        let dir = explicit
            .or_else(|| std::env::var_os("LIFELINE_CONSOLE_DIR").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("XDG_CONFIG_HOME")
                    .filter(|v| !v.is_empty())
                    .map(|x| PathBuf::from(x).join("lifeline"))
            })
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/lifeline")))
            .context("no config directory: set HOME or --config-dir")?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves a login and the operator CA.
    pub fn save_login(&self, login: &Login, ca: &CertificateDer<'_>) -> anyhow::Result<()> {
        create_private_dir(&self.dir)?;
        write_private(
            &self.dir.join("login.json"),
            &serde_json::to_vec_pretty(login)?,
        )?;
        let pem = rustls_pem("CERTIFICATE", ca.as_ref());
        write_private(&self.dir.join("gateway-ca.pem"), pem.as_bytes())
    }

    /// Where and as whom this machine last logged in (whether or not that
    /// login is still valid, or was logged out).
    pub fn last_login(&self) -> Option<LastLogin> {
        if let Some(l) = std::fs::read(self.dir.join("login.json"))
            .ok()
            .and_then(|t| serde_json::from_slice::<Login>(&t).ok())
        {
            return Some(LastLogin {
                gateway: l.gateway,
                email: l.email,
            });
        }
        std::fs::read(self.dir.join("last-login.json"))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
    }

    /// The saved login, refusing an expired one with a clear message.
    pub fn login(&self) -> anyhow::Result<Login> {
        let path = self.dir.join("login.json");
        let text = std::fs::read(&path)
            .map_err(|_| anyhow::anyhow!("not logged in: run `tech-console login` first"))?;
        let login: Login = serde_json::from_slice(&text)
            .with_context(|| format!("{} is damaged; log in again", path.display()))?;
        if login.expires_at_ms <= lifeline_session::now_ms() {
            bail!(
                "your login expired at {}; run `tech-console login` again (only the password is asked)",
                lifeline_protocol::time::rfc3339(login.expires_at_ms)
            );
        }
        Ok(login)
    }

    /// Forgets the login.
    pub fn logout(&self) -> anyhow::Result<bool> {
        let path = self.dir.join("login.json");
        if let Some(last) = self.last_login() {
            // Where and as whom, for the next `tech-console login`.
            write_private(
                &self.dir.join("last-login.json"),
                &serde_json::to_vec_pretty(&LastLogin {
                    gateway: last.gateway,
                    email: last.email,
                })?,
            )?;
        }
        if path.exists() {
            std::fs::remove_file(&path)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The operator CA saved at login.
    pub fn gateway_ca(&self) -> anyhow::Result<CertificateDer<'static>> {
        let path = self.dir.join("gateway-ca.pem");
        CertificateDer::from_pem_file(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}; log in again", path.display()))
    }

    /// The gateway address of the login.
    pub fn gateway(&self, login: &Login) -> anyhow::Result<HostPort> {
        Ok(HostPort::parse(&login.gateway, 8443)?)
    }

    fn session_dir(&self, guid: &SessionGuid) -> PathBuf {
        self.dir.join("sessions").join(guid.to_string())
    }

    /// Stores a new session's identity and secret.
    pub fn save_session(&self, s: &LocalSession, id: &SessionIdentity) -> anyhow::Result<()> {
        let dir = self.session_dir(&s.guid);
        create_private_dir(&dir)?;
        write_private(&dir.join("identity.pem"), id.to_pem().as_bytes())?;
        write_private(&dir.join("session.json"), &serde_json::to_vec_pretty(s)?)
    }

    /// Loads a session created on this machine.
    pub fn load_session(
        &self,
        guid: &SessionGuid,
    ) -> anyhow::Result<(LocalSession, SessionIdentity)> {
        let dir = self.session_dir(guid);
        let s: LocalSession = serde_json::from_slice(&std::fs::read(dir.join("session.json")).map_err(|_| {
            anyhow::anyhow!(
                "session {guid} was not created on this machine (or has ended here): its private key is not in {}",
                self.dir.display()
            )
        })?)?;
        let id = SessionIdentity::from_pem(&std::fs::read_to_string(dir.join("identity.pem"))?)?;
        Ok((s, id))
    }

    /// Replaces the applet secret of a session created on this machine
    /// (its applet was issued again); its identity stays. The file is
    /// replaced whole (written beside it, then renamed), so it holds the
    /// old secret or the new one, never half of each.
    pub fn replace_applet_secret(
        &self,
        guid: &SessionGuid,
        applet_secret_hex: &str,
    ) -> anyhow::Result<()> {
        let (mut s, _identity) = self.load_session(guid)?;
        s.applet_secret = applet_secret_hex.to_owned();
        let dir = self.session_dir(guid);
        let fresh = dir.join("session.json.new");
        write_private(&fresh, &serde_json::to_vec_pretty(&s)?)?;
        std::fs::rename(&fresh, dir.join("session.json"))
            .with_context(|| format!("cannot save {}", dir.join("session.json").display()))
    }

    /// The full-screen console's log, opened for appending (the
    /// directory is made if missing).
    pub fn log_file(&self) -> anyhow::Result<std::fs::File> {
        create_private_dir(&self.dir)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let path = self.dir.join("console.log");
        opts.open(&path)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The technician's notes on a session ("" if none).
    pub fn notes(&self, guid: &SessionGuid) -> String {
        std::fs::read_to_string(self.notes_file(guid)).unwrap_or_default()
    }

    /// Adds a line to a session's notes.
    pub fn add_note(&self, guid: &SessionGuid, line: &str) -> anyhow::Result<()> {
        let file = self.notes_file(guid);
        if let Some(dir) = file.parent() {
            create_private_dir(dir)?;
        }
        let mut notes = self.notes(guid);
        notes.push_str(line.trim_end());
        notes.push('\n');
        write_private(&file, notes.as_bytes())
    }

    fn notes_file(&self, guid: &SessionGuid) -> PathBuf {
        self.dir.join("notes").join(format!("{guid}.txt"))
    }

    /// Deletes a session's key material.
    pub fn forget_session(&self, guid: &SessionGuid) {
        let _ = std::fs::remove_dir_all(self.session_dir(guid));
    }
}

fn rustls_pem(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_through_pki_types() {
        let der = vec![0x30, 0x82, 1, 2, 3, 4, 5];
        let pem = rustls_pem("CERTIFICATE", &der);
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), &der[..]);
    }
}
