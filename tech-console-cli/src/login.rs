//! `tech-console login` and `tech-console password`: the gateway, its
//! operator CA and the e-mail remembered from the last login here; the
//! password; the second factor where the account has one (set up on the
//! way where it must and has none); a password past its group's age
//! changed on the way.

use crate::profile::{Login, Profile};
use anyhow::{Context, bail};
use lifeline_protocol::ALPN_HTTP1;
use lifeline_protocol::hex;
use lifeline_protocol::portal::{LoginRequest, LoginResponse, PasswordChange, TotpEnrollment};
use lifeline_protocol::text::Shown;
use lifeline_session::addr::HostPort;
use lifeline_session::portal::{PortalClient, PortalError};
use lifeline_session::tls::{GatewayTrust, gateway_client_config, sha256};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::io::{BufRead, IsTerminal};
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
    let resp = match submit(&client, &addr, &mut request, None, args.totp_stdin).await {
        // Said before any code is asked for: the change takes the code.
        Err(e) if e.downcast_ref::<PasswordExpired>().is_some() => {
            eprintln!("{e}");
            let new = read_new_password(args.password_stdin)?;
            submit(&client, &addr, &mut request, Some(&new), args.totp_stdin).await?
        }
        r => r?,
    };
    save(profile, &addr, &resp, &ca)?;
    Ok(())
}

/// `tech-console password`: a new password, on the gateway of the last
/// login here, with the whole login (the current password, and the code
/// where the account has a second factor).
pub async fn password(
    profile: &Profile,
    password_stdin: bool,
    totp_stdin: bool,
) -> anyhow::Result<()> {
    let Some(last) = profile.last_login() else {
        bail!(
            "no login on this machine yet: run `tech-console login --gateway … --ca-fingerprint … \
             --email …` first (a password that has expired is changed on the way)"
        );
    };
    let addr = HostPort::parse(&last.gateway, 8443)?;
    let ca = profile.gateway_ca()?;
    let tls = gateway_client_config(&GatewayTrust::Ca(ca.clone()), &[ALPN_HTTP1])?;
    let client = PortalClient::new(addr.clone(), tls);
    let interactive = !password_stdin && std::io::stdin().is_terminal();
    if interactive {
        eprintln!("changing the password of {} at {addr}", Shown(&last.email));
    }
    let current = if interactive {
        rpassword::prompt_password("Current password: ").context("reading the password")?
    } else {
        read_password(true)?
    };
    let new = read_new_password(password_stdin)?;
    let mut request = LoginRequest {
        email: last.email.clone(),
        password: current,
        code: None,
    };
    let resp = submit(&client, &addr, &mut request, Some(&new), totp_stdin).await?;
    println!("password changed; every earlier login of yours has ended");
    save(profile, &addr, &resp, &ca)
}

/// The gateway's answer that the password is older than the group allows.
#[derive(Debug)]
struct PasswordExpired(String);

impl std::fmt::Display for PasswordExpired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PasswordExpired {}

/// Submits a login — or, with `new_password`, a password change — and
/// answers the second factor as the gateway asks for it: the code of an
/// account that has one, or setting one up where it must.
async fn submit(
    client: &PortalClient,
    addr: &HostPort,
    request: &mut LoginRequest,
    new_password: Option<&str>,
    totp_stdin: bool,
) -> anyhow::Result<LoginResponse> {
    loop {
        let answer: Result<LoginResponse, PortalError> = match new_password {
            None => post_login(client, "/api/v1/login", request).await,
            Some(new) => {
                let change = PasswordChange {
                    login: request.clone(),
                    new_password: new.to_owned(),
                };
                post_login(client, "/api/v1/password", &change).await
            }
        };
        match answer {
            Err(PortalError::Api { error, .. })
                if error.code == "code_required" && request.code.is_none() =>
            {
                request.code = Some(crate::second_factor::read_code(
                    totp_stdin,
                    "Code from your authenticator app (or a recovery code): ",
                )?);
            }
            Err(PortalError::Api { error, .. })
                if error.code == "enroll_required" && request.code.is_none() =>
            {
                let enrollment: TotpEnrollment =
                    match post_login(client, "/api/v1/login/enroll", request).await {
                        Err(PortalError::Link(e)) => return Err(explain_unreached(addr, e)),
                        r => r?,
                    };
                crate::second_factor::show_enrollment(&enrollment)?;
                request.code = Some(crate::second_factor::read_code(
                    totp_stdin,
                    "Code the app shows now: ",
                )?);
            }
            Err(PortalError::Api { error, .. }) if error.code == "password_expired" => {
                return Err(PasswordExpired(error.error).into());
            }
            Err(PortalError::Link(e)) => return Err(explain_unreached(addr, e)),
            r => {
                let resp = r?;
                crate::second_factor::show_after_login(&resp);
                return Ok(resp);
            }
        }
    }
}

/// Keeps the login for later commands and says so.
fn save(
    profile: &Profile,
    addr: &HostPort,
    resp: &LoginResponse,
    ca: &CertificateDer<'static>,
) -> anyhow::Result<()> {
    profile.save_login(
        &Login {
            gateway: addr.to_string(),
            token: resp.token.clone(),
            expires_at_ms: resp.expires_at_ms,
            email: resp.technician.email.clone(),
            name: resp.technician.name.clone(),
        },
        ca,
    )?;
    println!(
        "logged in as {} ({}) at {addr}; valid until {}",
        Shown(&resp.technician.name),
        Shown(&resp.technician.email),
        lifeline_protocol::time::rfc3339(resp.expires_at_ms)
    );
    Ok(())
}

/// A new password: the next line of standard input with
/// `--password-stdin` (or no terminal), else typed twice at hidden
/// prompts.
fn read_new_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        return read_password(true);
    }
    let first = rpassword::prompt_password("New password: ").context("reading the password")?;
    let again =
        rpassword::prompt_password("The new password again: ").context("reading the password")?;
    if first != again {
        bail!("the two new passwords differ; nothing changed");
    }
    if first.is_empty() {
        bail!("no password given");
    }
    Ok(first)
}

/// Posts a login (or enrollment) request. A gateway checking many logins
/// at once answers "busy" with a short Retry-After instead of queueing
/// without bound: wait and try again, a few times.
async fn post_login<T: serde::de::DeserializeOwned>(
    client: &PortalClient,
    path: &str,
    request: &impl serde::Serialize,
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
pub(crate) fn explain_unreached(
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
