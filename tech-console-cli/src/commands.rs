//! `logout`, `session new`, `session applet`, `session end`, `sessions`,
//! `queue` (`login` and `password` are in `login`).

use crate::portal::portal;
use crate::profile::{LocalSession, Profile};
use anyhow::{Context, bail};
use lifeline_protocol::hex;
use lifeline_protocol::portal::{CreateSession, ReissueApplet, SessionInfo, SessionList};
use lifeline_protocol::text::Shown;
use lifeline_session::identity::SessionIdentity;
use lifeline_session::portal::{PortalClient, PortalError};
use std::io::Write;
use std::path::Path;

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
    let info = create_session(profile, &client, label, expires_in, None).await?;
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
/// Creates a session with a fresh console identity and applet secret, and
/// keeps both in the profile for `connect`; `web` asks the gateway for a
/// PIN or link as well.
async fn create_session(
    profile: &Profile,
    client: &PortalClient,
    label: Option<String>,
    expires_in: Option<u64>,
    web: Option<WebWay>,
) -> anyhow::Result<SessionInfo> {
    let identity = SessionIdentity::generate("Lifeline session")?;
    let secret = new_applet_secret()?;
    let info: SessionInfo = client
        .post(
            "/api/v1/sessions",
            &CreateSession {
                label,
                console_pin: hex::encode(&identity.pin()),
                applet_secret: hex::encode(&secret),
                expires_in_secs: expires_in,
                pin: web == Some(WebWay::Pin),
                link: web == Some(WebWay::Link),
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
    Ok(info)
}

/// How the end user of a `session new` without a file gets the applet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebWay {
    /// A 6-digit PIN read to them, typed on the gateway's web page.
    Pin,
    /// A one-time link sent to them (by e-mail).
    Link,
}

/// `tech-console session new --pin` or `--link`: a session whose applet
/// the end user downloads from the gateway's web page.
pub async fn session_new_web(
    profile: &Profile,
    label: Option<String>,
    expires_in: Option<u64>,
    way: WebWay,
) -> anyhow::Result<()> {
    let (login, client) = portal(profile)?;
    let info = create_session(profile, &client, label, expires_in, Some(way)).await?;
    let old = || {
        anyhow::anyhow!(
            "the gateway created the session but gave no {}; it may be older than this console",
            if way == WebWay::Pin { "PIN" } else { "link" }
        )
    };
    println!("session {}", info.guid);
    if !info.label.is_empty() {
        println!("label   {}", Shown(&info.label));
    }
    match way {
        WebWay::Pin => {
            let (Some(pin), Some(until)) = (&info.pin, info.pin_expires_at_ms) else {
                return Err(old());
            };
            println!(
                "PIN     {} {}   (valid once, until {})",
                &pin[..3],
                &pin[3..],
                lifeline_protocol::time::rfc3339(until)
            );
            println!();
            println!(
                "Ask the end user to open https://{}/ in a browser and type the PIN; the support",
                login.gateway
            );
            println!("program downloads at once.");
        }
        WebWay::Link => {
            let link = info.link.as_ref().ok_or_else(old)?;
            println!("link    https://{}{link}", login.gateway);
            println!(
                "        (valid once, until {})",
                lifeline_protocol::time::rfc3339(info.expires_at_ms)
            );
            println!();
            println!("Send the end user this link (by e-mail): it opens a page with a button that");
            println!("downloads the support program.");
        }
    }
    println!(
        "When they appear in `tech-console queue`, run `tech-console connect {}`.",
        if info.label.is_empty() {
            info.guid.to_string()
        } else {
            Shown(&info.label).to_string()
        }
    );
    Ok(())
}

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
    let (login, client) = portal(profile)?;
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
        if let Some(channel) = &s.channel {
            let about = if s.problem.is_empty() {
                String::new()
            } else {
                format!(": {}", s.problem)
            };
            println!(
                "  ↳ channel {}{} (your group's queue: `connect --next` takes the longest waiting)",
                Shown(channel),
                Shown(&about)
            );
        }
        if let Some(offer) = &s.transfer {
            if offer.to == login.email {
                println!(
                    "  ↳ offered to you by {} ({}): `connect {}` takes it over",
                    Shown(&s.technician_name),
                    Shown(&s.technician),
                    s.guid
                );
            } else {
                println!("  ↳ offered to {}", Shown(&offer.to));
            }
        }
    }
    Ok(())
}

/// `tech-console session transfer`: offers a connected session to a
/// colleague of the group (or withdraws the offer); the console that
/// holds the session hands it over once they accept.
pub async fn session_transfer(
    profile: &Profile,
    target: &str,
    to: Option<&str>,
) -> anyhow::Result<()> {
    let (_login, client) = portal(profile)?;
    let info = crate::portal::resolve(&client, target).await?;
    let to = match to {
        Some(t) => crate::typed::parse_transfer(t).map_err(anyhow::Error::msg)?,
        None => None,
    };
    // The colleague's console checks the end user's program with the
    // session's applet secret: only this profile has it.
    let (local, _identity) = profile.load_session(&info.guid)?;
    let offered: SessionInfo = client
        .post(
            &format!("/api/v1/sessions/{}/transfer", info.guid),
            &lifeline_protocol::portal::OfferTransfer {
                applet_secret: to.as_ref().map(|_| local.applet_secret.clone()),
                to: to.clone(),
            },
        )
        .await?;
    match to {
        Some(to) => println!(
            "session {} offered to {to}: they take it with `tech-console connect {}`; your \
             connected console then hands the end user over",
            offered.guid, offered.guid
        ),
        None => println!("session {}: the offer is withdrawn", offered.guid),
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
