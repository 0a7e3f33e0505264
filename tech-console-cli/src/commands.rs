//! `login`, `logout`, `session new`, `session applet`, `session end`,
//! `sessions`, `queue`.

use crate::portal::portal;
use crate::profile::{LocalSession, Login, Profile};
use anyhow::{Context, bail};
use lifeline_protocol::portal::{
    CreateSession, LoginRequest, LoginResponse, ReissueApplet, SessionInfo, SessionList,
    TotpEnrollment,
};
use lifeline_protocol::text::Shown;
use lifeline_protocol::{ALPN_HTTP1, hex};
use lifeline_session::addr::HostPort;
use lifeline_session::identity::SessionIdentity;
use lifeline_session::portal::{PortalClient, PortalError};
use lifeline_session::tls::{GatewayTrust, gateway_client_config, sha256};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

/// What `tech-console login` was given.
#[derive(Debug, Default)]
pub struct LoginArgs {
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--ca-fingerprint`.
    pub ca_fingerprint: Option<String>,
    /// `--ca`.
    pub ca: Option<std::path::PathBuf>,
    /// `--email`.
    pub email: Option<String>,
    /// `--password-stdin`.
    pub password_stdin: bool,
    /// `--totp-stdin`.
    pub totp_stdin: bool,
}

/// `tech-console login`. What is not given comes from the last login on
/// this machine (gateway, e-mail, and the operator CA learned then), so
/// logging in again takes only the password.
pub async fn login(profile: &Profile, args: LoginArgs) -> anyhow::Result<()> {
    let last = profile.last_login();
    let (gateway, email) = match (args.gateway, args.email, &last) {
        (Some(g), Some(e), _) => (g, e),
        (g, e, Some(l)) => (
            g.unwrap_or_else(|| l.gateway.clone()),
            e.unwrap_or_else(|| l.email.clone()),
        ),
        (_, _, None) => bail!(
            "first login on this machine: give --gateway HOST:PORT, --ca-fingerprint (as the gateway \
             printed it) and --email"
        ),
    };
    let addr = HostPort::parse(&gateway, 8443)?;
    let same_gateway = last
        .as_ref()
        .and_then(|l| HostPort::parse(&l.gateway, 8443).ok())
        .is_some_and(|g| g == addr);
    let trust = match (args.ca_fingerprint.as_deref(), args.ca.as_deref()) {
        (Some(fp), None) => GatewayTrust::CaFingerprint(hex::decode_array::<32>(fp).with_context(|| {
            format!("--ca-fingerprint {fp:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
        })?),
        (None, Some(path)) => GatewayTrust::Ca(
            CertificateDer::from_pem_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        ),
        (None, None) if same_gateway => GatewayTrust::Ca(profile.gateway_ca()?),
        _ => bail!(
            "{addr} is a gateway this machine has not logged in to: give --ca-fingerprint (as the \
             gateway printed it) or --ca FILE"
        ),
    };
    // Learn the CA certificate itself, so later connections trust it as a
    // root (and a changed CA is noticed rather than silently re-pinned).
    let ca = match &trust {
        GatewayTrust::Ca(ca) => ca.clone(),
        GatewayTrust::CaFingerprint(fp) => {
            let tls = gateway_client_config(&trust, &[ALPN_HTTP1])?;
            let stream =
                lifeline_session::gateway_conn::connect(&addr, tls, Duration::from_secs(15))
                    .await
                    .map_err(|e| explain_unreached(&addr, e))?;
            stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.iter().find(|c| sha256(c.as_ref()) == *fp).cloned())
                .context("the gateway did not present the CA certificate")?
                .into_owned()
        }
    };
    if !args.password_stdin && std::io::stdin().is_terminal() {
        eprintln!("logging in to {addr} as {}", Shown(&email));
    }
    let password = read_password(args.password_stdin)?;
    let tls = gateway_client_config(&GatewayTrust::Ca(ca.clone()), &[ALPN_HTTP1])?;
    let client = PortalClient::new(addr.clone(), tls);
    let mut request = LoginRequest {
        email: email.clone(),
        password,
        code: None,
    };
    // An account with a second factor is asked for its code; one that
    // must have one and has none sets it up here, on the way.
    let resp: LoginResponse = loop {
        match post_login(&client, "/api/v1/login", &request).await {
            Err(PortalError::Api { error, .. })
                if error.code == "code_required" && request.code.is_none() =>
            {
                request.code = Some(crate::second_factor::read_code(
                    args.totp_stdin,
                    "Code from your authenticator app (or a recovery code): ",
                )?);
            }
            Err(PortalError::Api { error, .. })
                if error.code == "enroll_required" && request.code.is_none() =>
            {
                let enrollment: TotpEnrollment =
                    match post_login(&client, "/api/v1/login/enroll", &request).await {
                        Err(PortalError::Link(e)) => return Err(explain_unreached(&addr, e)),
                        r => r?,
                    };
                crate::second_factor::show_enrollment(&enrollment)?;
                request.code = Some(crate::second_factor::read_code(
                    args.totp_stdin,
                    "Code the app shows now: ",
                )?);
            }
            Err(PortalError::Link(e)) => return Err(explain_unreached(&addr, e)),
            r => break r?,
        }
    };
    crate::second_factor::show_after_login(&resp);
    profile.save_login(
        &Login {
            gateway: addr.to_string(),
            token: resp.token,
            expires_at_ms: resp.expires_at_ms,
            email: resp.technician.email.clone(),
            name: resp.technician.name.clone(),
        },
        &ca,
    )?;
    println!(
        "logged in as {} ({}) at {addr}; valid until {}",
        Shown(&resp.technician.name),
        Shown(&resp.technician.email),
        lifeline_protocol::time::rfc3339(resp.expires_at_ms)
    );
    Ok(())
}

/// Posts a login (or enrollment) request. A gateway checking many logins
/// at once answers "busy" with a short Retry-After instead of queueing
/// without bound: wait and try again, a few times.
async fn post_login<T: serde::de::DeserializeOwned>(
    client: &PortalClient,
    path: &str,
    request: &LoginRequest,
) -> Result<T, PortalError> {
    let mut tries = 0;
    loop {
        match client.post(path, request).await {
            Err(PortalError::Api { status, error })
                if status.as_u16() == 503 && error.code == "busy" && tries < 5 =>
            {
                tries += 1;
                let wait = error.retry_after_secs.unwrap_or(1).clamp(1, 5);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            r => return r,
        }
    }
}

/// A gateway that could not be reached, or not trusted, in one line that
/// says what to check.
fn explain_unreached(
    addr: &HostPort,
    e: lifeline_session::gateway_conn::LinkError,
) -> anyhow::Error {
    use lifeline_session::gateway_conn::LinkError;
    match e {
        LinkError::Connect { source, .. } => {
            let why = match source.kind() {
                std::io::ErrorKind::ConnectionRefused => "nothing answers on that port".to_owned(),
                std::io::ErrorKind::TimedOut => "no answer".to_owned(),
                _ => source.to_string(),
            };
            anyhow::anyhow!(
                "cannot reach the gateway at {addr} ({why}): check the address and port, and that \
                 the gateway runs and can be reached from this computer"
            )
        }
        LinkError::Tls { source, .. }
            if source
                .to_string()
                .contains("does not match the fingerprint") =>
        {
            anyhow::anyhow!(
                "the gateway at {addr} has a different operator CA than the fingerprint you gave: \
                 check the fingerprint (the gateway prints it when it starts, as \
                 \"operator CA fingerprint (SHA-256)\") and the address"
            )
        }
        LinkError::Tls { .. } => anyhow::anyhow!(
            "the gateway at {addr} could not prove it is the operator's gateway this computer \
             trusts: check the address; if the operator's CA changed, log in with its new \
             --ca-fingerprint"
        ),
        LinkError::Timeout(_) => anyhow::anyhow!(
            "the gateway at {addr} did not answer in time: check the address and port, and any \
             firewall in between"
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let pw = if !from_stdin && std::io::stdin().is_terminal() {
        // Read from the terminal with echo off.
        rpassword::prompt_password("Password: ").context("reading the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if pw.is_empty() {
        bail!("no password given");
    }
    Ok(pw)
}

/// `tech-console session new`.
pub async fn session_new(
    profile: &Profile,
    label: Option<String>,
    out: &Path,
    platform: Option<&str>,
    expires_in: Option<u64>,
    force: bool,
) -> anyhow::Result<()> {
    let (_login, client) = portal(profile)?;
    // The applet can be downloaded once: everything that could stop it
    // from being saved is checked before the session exists.
    let staged = Staged::check_and_create(out, force)?;
    let identity = SessionIdentity::generate("Lifeline session")?;
    let secret = new_applet_secret()?;
    let info: SessionInfo = client
        .post(
            "/api/v1/sessions",
            &CreateSession {
                label: label.clone(),
                console_pin: hex::encode(&identity.pin()),
                applet_secret: hex::encode(&secret),
                expires_in_secs: expires_in,
            },
        )
        .await?;
    profile.save_session(
        &LocalSession {
            guid: info.guid,
            label: info.label.clone(),
            applet_secret: hex::encode(&secret),
        },
        &identity,
    )?;
    eprintln!("downloading the personalized applet…");
    let path = match platform {
        Some(p) => format!("/api/v1/sessions/{}/applet?platform={p}", info.guid),
        None => format!("/api/v1/sessions/{}/applet", info.guid),
    };
    let bytes = match client.download(&path).await {
        Ok(b) => b,
        Err(e) => {
            // Nothing to hand out: the session goes, so its label is free
            // for the next try.
            let withdrawn = client
                .post::<_, SessionInfo>(
                    &format!("/api/v1/sessions/{}/end", info.guid),
                    &lifeline_protocol::portal::EndSession {
                        reason: "the applet could not be downloaded".into(),
                    },
                )
                .await
                .is_ok();
            profile.forget_session(&info.guid);
            return Err(anyhow::Error::from(e).context(if withdrawn {
                "the applet could not be downloaded; the session was withdrawn, so the \
                 same command can be run again"
            } else {
                "the applet could not be downloaded, and the session could not be \
                 withdrawn: end it with `tech-console session end`"
            }));
        }
    };
    staged.commit(&bytes)?;
    print_saved(&info, out, bytes.len(), None);
    Ok(())
}

/// What `session new` and `session applet` print once the applet is
/// saved; `note` goes below the file's line.
fn print_saved(info: &SessionInfo, out: &Path, len: usize, note: Option<&str>) {
    println!("session {}", info.guid);
    if !info.label.is_empty() {
        println!("label   {}", Shown(&info.label));
    }
    println!(
        "expires {}",
        lifeline_protocol::time::rfc3339(info.expires_at_ms)
    );
    println!(
        "applet  {} ({:.1} MiB)",
        out.display(),
        len as f64 / (1024.0 * 1024.0)
    );
    if let Some(note) = note {
        println!("        {note}");
    }
    println!();
    println!("Send this file to the end user and ask them to run it. When they appear in");
    println!(
        "`tech-console queue`, run `tech-console connect {}`.",
        if info.label.is_empty() {
            info.guid.to_string()
        } else {
            Shown(&info.label).to_string()
        }
    );
}

/// A fresh random 32-byte applet secret.
fn new_applet_secret() -> anyhow::Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| anyhow::anyhow!("no randomness available"))?;
    Ok(secret)
}

/// `tech-console session applet`: the applet of a session whose end user
/// has not connected yet, fetched again. The gateway replaces the session's
/// applet secret with a new one, so every applet file made before can no
/// longer connect, and the applet may be downloaded once more. Where it
/// goes is checked first, and the session must be this machine's (its key
/// and secret are here), so a refusal spends nothing and the old file
/// still works.
pub async fn session_applet(
    profile: &Profile,
    target: &str,
    out: &Path,
    platform: Option<&str>,
    force: bool,
) -> anyhow::Result<()> {
    let (_login, client) = portal(profile)?;
    let staged = Staged::check_and_create(out, force)?;
    let info = crate::portal::resolve(&client, target).await?;
    if let Err(e) = profile.load_session(&info.guid) {
        if info.state == "ended" {
            bail!(
                "session {} has ended; its applet cannot be fetched again: create a new \
                 session with `tech-console session new`",
                info.guid
            );
        }
        return Err(e);
    }
    let secret = new_applet_secret()?;
    let reissued: SessionInfo = client
        .post(
            &format!("/api/v1/sessions/{}/reissue", info.guid),
            &ReissueApplet {
                applet_secret: hex::encode(&secret),
            },
        )
        .await
        .map_err(|e| match e {
            // Refused: nothing changed, the previous applet still works.
            PortalError::Api { .. } => anyhow::Error::from(e),
            e => anyhow::Error::from(e).context(
                "could not reach the gateway to fetch the applet again; if it took the \
                 request, the previous applet file no longer works: run the same command again",
            ),
        })?;
    // Only now: the gateway accepted the new secret. The console needs it
    // to check the new applet when it connects.
    profile
        .replace_applet_secret(&info.guid, &hex::encode(&secret))
        .context(
            "the gateway took the new applet secret, but it could not be saved here; the \
             previous applet file no longer works: run the same command again",
        )?;
    eprintln!("downloading the personalized applet…");
    let path = match platform {
        Some(p) => format!("/api/v1/sessions/{}/applet?platform={p}", info.guid),
        None => format!("/api/v1/sessions/{}/applet", info.guid),
    };
    let bytes = client.download(&path).await.map_err(|e| {
        anyhow::Error::from(e).context(
            "the applet could not be downloaded; the previous applet file no longer works, \
             and the same command can be run again",
        )
    })?;
    staged.commit(&bytes)?;
    print_saved(
        &reissued,
        out,
        bytes.len(),
        Some("the previous applet file of this session no longer works"),
    );
    Ok(())
}

/// The applet's file, made (empty, next to where it goes) before the
/// session exists, so a folder that is missing or not writable is found
/// before the one-time download is spent; filled and moved into place
/// after. Dropped unfilled, it is removed.
struct Staged {
    partial: std::path::PathBuf,
    file: Option<std::fs::File>,
    out: std::path::PathBuf,
}

impl Staged {
    /// Refuses a directory, and an existing file unless `force`; then
    /// [`Staged::create`].
    fn check_and_create(out: &Path, force: bool) -> anyhow::Result<Staged> {
        if out.is_dir() {
            bail!(
                "{} is a directory; give the file name for the applet",
                out.display()
            );
        }
        if out.exists() && !force {
            bail!(
                "{} already exists; choose another name, or pass --force to replace it",
                out.display()
            );
        }
        Staged::create(out)
    }

    fn create(out: &Path) -> anyhow::Result<Staged> {
        let name = out
            .file_name()
            .with_context(|| format!("{} is not a file name", out.display()))?;
        let mut partial_name = std::ffi::OsString::from(".");
        partial_name.push(name);
        partial_name.push(format!(".partial-{}", std::process::id()));
        let partial = out.with_file_name(partial_name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o755);
        let file = opts.open(&partial).with_context(|| {
            let folder = partial.parent().filter(|p| !p.as_os_str().is_empty());
            match folder {
                Some(f) if !f.is_dir() => format!("the folder {} does not exist", f.display()),
                _ => format!("cannot write in the folder of {}", out.display()),
            }
        })?;
        Ok(Staged {
            partial,
            file: Some(file),
            out: out.to_owned(),
        })
    }

    fn commit(mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut f = self.file.take().context("already saved")?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", self.partial.display()))?;
        std::fs::rename(&self.partial, &self.out)
            .with_context(|| format!("cannot save {}", self.out.display()))?;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.file.is_some() || self.partial.exists() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// `tech-console queue` and `tech-console sessions`.
pub async fn list(profile: &Profile, waiting_only: bool, json: bool) -> anyhow::Result<()> {
    let (_login, client) = portal(profile)?;
    let path = if waiting_only {
        "/api/v1/sessions/waiting"
    } else {
        "/api/v1/sessions"
    };
    let list: SessionList = client.get(path).await?;
    if json {
        for s in &list.sessions {
            println!("{}", serde_json::to_string(s)?);
        }
        return Ok(());
    }
    if list.sessions.is_empty() {
        println!(
            "{}",
            if waiting_only {
                "nobody is waiting"
            } else {
                "no open sessions"
            }
        );
        return Ok(());
    }
    let now = lifeline_session::now_ms();
    println!(
        "{:<36}  {:<20}  {:<8}  {:<16}  {:<22}  NODE",
        "GUID", "LABEL", "STATE", "WAITING SINCE", "FROM"
    );
    for s in &list.sessions {
        let since = s
            .waiting_since_ms
            .map(|t| format!("{} ago", lifeline_protocol::time::human_duration(now - t)))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<36}  {:<20}  {:<8}  {:<16}  {:<22}  {}",
            s.guid,
            Shown(&s.label).to_string(),
            Shown(&s.state).to_string(),
            since,
            Shown(s.waiting_from.as_deref().unwrap_or("-")).to_string(),
            Shown(s.waiting_node.as_deref().unwrap_or("-"))
        );
    }
    Ok(())
}

/// `tech-console session end`.
pub async fn session_end(profile: &Profile, target: &str, reason: &str) -> anyhow::Result<()> {
    let (_login, client) = portal(profile)?;
    let info = crate::portal::resolve(&client, target).await?;
    let ended: SessionInfo = client
        .post(
            &format!("/api/v1/sessions/{}/end", info.guid),
            &lifeline_protocol::portal::EndSession {
                reason: reason.to_owned(),
            },
        )
        .await?;
    profile.forget_session(&info.guid);
    println!(
        "session {} ended ({})",
        ended.guid,
        Shown(&ended.ended_reason.unwrap_or_default())
    );
    Ok(())
}

/// `tech-console logout`: the gateway revokes the token, then the saved
/// login is forgotten. If the gateway cannot be reached the login is
/// forgotten anyway, and the technician is told the token stays valid
/// until it expires.
pub async fn logout(profile: &Profile) -> anyhow::Result<()> {
    let Ok((login, client)) = portal(profile) else {
        println!("not logged in");
        return Ok(());
    };
    let revoked: Result<serde_json::Value, _> =
        client.post("/api/v1/logout", &serde_json::json!({})).await;
    profile.logout()?;
    match revoked {
        Ok(_) => println!("logged out; the gateway no longer accepts this login"),
        // Already expired or revoked: nothing left to revoke.
        Err(PortalError::Api { status, .. }) if status.as_u16() == 401 => {
            println!("logged out")
        }
        Err(e) => println!(
            "logged out on this machine, but the gateway could not be told ({}); \
             the login stays valid there until {}",
            Shown(&e.to_string()),
            lifeline_protocol::time::rfc3339(login.expires_at_ms)
        ),
    }
    Ok(())
}
