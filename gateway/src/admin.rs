//! `gateway admin ...`: operator commands that work on the same store a
//! node uses, whether or not the node is running.

use anyhow::{Context, bail};
use clap::Subcommand;
use lifeline_protocol::text::{self, Shown};
use lifeline_protocol::{Permissions, SessionGuid};
use lifeline_store::{NewTechnician, Store};
use std::io::{BufRead, IsTerminal};

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Manage technicians.
    #[command(subcommand)]
    Technician(TechnicianCmd),
    /// Manage technician groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Show the audit trail (oldest first).
    #[command(after_help = "Example: gateway admin audit --limit 50 (or --session GUID, --json)")]
    Audit {
        /// Only this session's entries.
        #[arg(long)]
        session: Option<SessionGuid>,
        /// Show at most this many of the newest entries.
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the operator's Ed25519 public key (hex), to pin in release
    /// builds of the applet (LIFELINE_OPERATOR_KEY at build time).
    #[command(
        after_help = "Example: LIFELINE_OPERATOR_KEY=$(gateway admin operator-key) cargo build --profile applet --bin applet"
    )]
    OperatorKey,
}

/// `gateway admin technician ...`
#[derive(Debug, Subcommand)]
pub enum TechnicianCmd {
    /// Add a technician; the password is read from standard input.
    #[command(
        after_help = "Example: gateway admin technician add --email ada@example.com --name \"Ada Lovelace\""
    )]
    Add {
        /// Login e-mail address.
        #[arg(long)]
        email: String,
        /// Display name shown to end users.
        #[arg(long)]
        name: String,
        /// Group (created with all permissions if new).
        #[arg(long, default_value = "default")]
        group: String,
        /// Read the password from the first line of standard input without
        /// prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List technicians.
    #[command(after_help = "Example: gateway admin technician list")]
    List,
    /// End every login of a technician at once (a lost laptop, someone
    /// who left): their consoles must log in again.
    #[command(after_help = "Example: gateway admin technician revoke-tokens ada@example.com")]
    RevokeTokens {
        /// The technician's login e-mail address.
        email: String,
    },
}

/// `gateway admin group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Set what a group's sessions may do beyond chat.
    #[command(
        after_help = "Example: gateway admin group permissions default run-command,file-to-user,system-info"
    )]
    Permissions {
        /// Group name.
        group: String,
        /// Comma-separated: file-to-user, file-from-user, system-info,
        /// run-command, open-url, screen-view, reboot, all, none; and
        /// single-prompt to let technicians ask once for the whole
        /// session.
        permissions: String,
    },
}

/// Minimum password length.
pub const MIN_PASSWORD: usize = 8;

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let pw = if !from_stdin && std::io::stdin().is_terminal() {
        // Read from the terminal with echo off.
        rpassword::prompt_password("Password for the new technician: ")
            .context("reading the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if pw.chars().count() < MIN_PASSWORD {
        bail!("the password must be at least {MIN_PASSWORD} characters");
    }
    Ok(pw)
}

/// Runs an admin command against `store_url`.
pub async fn run(cmd: AdminCmd, store_url: &str, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if let AdminCmd::OperatorKey = cmd {
        // Never made here: only `serve` makes a node's data directory.
        if !data_dir.join("operator.toml").is_file() {
            bail!(
                "there is no gateway data directory at {}: `gateway serve` makes it; pass \
                 --data-dir DIR for another",
                data_dir.display()
            );
        }
        let (id, _) = crate::datadir::open(data_dir, None, &[])?;
        println!("{}", lifeline_protocol::hex::encode(&id.operator_key()));
        return Ok(());
    }
    // Only `serve` makes a store: an admin command on a store that is not
    // there says which one it looked for.
    let store = match Store::open_existing(store_url).await {
        Ok(s) => s,
        Err(lifeline_store::StoreError::NoStore(why)) => bail!(
            "{why} ({}): `gateway admin` works on the store a `gateway serve` made — start the \
             node once, or pass --data-dir DIR or --store URL for the right one",
            crate::cli::redact(store_url)
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "opening the store {}",
                crate::cli::redact(store_url)
            )));
        }
    };
    let now = lifeline_protocol::time::now_ms();
    match cmd {
        AdminCmd::Technician(TechnicianCmd::Add {
            email,
            name,
            group,
            password_stdin,
        }) => {
            let email = email.trim().to_lowercase();
            if !email.contains('@')
                || email.len() > lifeline_store::MAX_EMAIL
                || email
                    .chars()
                    .any(|c| c.is_whitespace() || text::is_unsafe(c))
            {
                bail!("{email:?} is not an e-mail address");
            }
            // End users read these names in the applet: plain text only.
            let name = text::check_name("the name", &name, 128)?.to_owned();
            let group = text::check_name("the group name", &group, 64)?.to_owned();
            let pw = read_password(password_stdin)?;
            let hash =
                tokio::task::spawn_blocking(move || crate::auth::hash_password(&pw)).await??;
            let t = store
                .add_technician(
                    NewTechnician {
                        email,
                        name,
                        password_hash: hash,
                        group,
                    },
                    now,
                )
                .await?;
            store
                .audit(
                    now,
                    None,
                    "admin",
                    "technician added",
                    &format!("{} ({}), group {}", t.email, t.name, t.group),
                )
                .await?;
            println!(
                "added technician {} ({}) in group {} [{}]",
                t.email, t.name, t.group, t.permissions
            );
        }
        AdminCmd::Technician(TechnicianCmd::RevokeTokens { email }) => {
            let Some(t) = store.technician_by_email(&email).await? else {
                bail!(
                    "there is no technician with e-mail {:?}",
                    Shown(email.trim()).to_string()
                );
            };
            let n = store.revoke_tokens(t.id).await?;
            store
                .audit(
                    now,
                    None,
                    "admin",
                    "tokens revoked",
                    &format!("{}: {n} logins ended", t.email),
                )
                .await?;
            println!(
                "ended {n} login(s) of {}; their consoles must log in again",
                t.email
            );
        }
        AdminCmd::Technician(TechnicianCmd::List) => {
            let list = store.list_technicians().await?;
            println!(
                "{:<32} {:<24} {:<12} {:<20} permissions",
                "EMAIL", "NAME", "GROUP", "LOCKED UNTIL"
            );
            for t in list {
                let locked = t
                    .locked_until_ms
                    .filter(|u| *u > now)
                    .map(lifeline_protocol::time::rfc3339)
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<32} {:<24} {:<12} {:<20} {}",
                    Shown(&t.email).to_string(),
                    Shown(&t.name).to_string(),
                    Shown(&t.group).to_string(),
                    locked,
                    t.permissions
                );
            }
        }
        AdminCmd::Group(GroupCmd::Permissions { group, permissions }) => {
            let group = text::check_name("the group name", &group, 64)?.to_owned();
            let p = Permissions::parse_list(&permissions).map_err(anyhow::Error::msg)?;
            store.set_group_permissions(&group, p).await?;
            store
                .audit(
                    now,
                    None,
                    "admin",
                    "group permissions",
                    &format!("{group}: {p}"),
                )
                .await?;
            println!("group {group}: {p}");
        }
        AdminCmd::Audit {
            session,
            limit,
            json,
        } => {
            let log = store.audit_log(session.as_ref(), limit.max(1)).await?;
            for e in log {
                let session = e
                    .session
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "-".into());
                if json {
                    // Exact, and safe on a terminal: what serde_json leaves
                    // as it is (C1 controls, bidi overrides, separators)
                    // is written as \u escapes too.
                    let line = serde_json::json!({
                        "at": lifeline_protocol::time::rfc3339(e.at_ms),
                        "session": session, "actor": e.actor, "event": e.event, "detail": e.detail,
                    })
                    .to_string();
                    println!("{}", text::safe_json(&line));
                } else {
                    // Rows written by older builds (or by hand) may hold
                    // escape sequences; the operator's terminal never
                    // obeys them.
                    println!(
                        "{}  {:<36}  {:<24} {:<18} {}",
                        lifeline_protocol::time::rfc3339(e.at_ms),
                        session,
                        Shown(&e.actor).to_string(),
                        Shown(&e.event).to_string(),
                        Shown(&e.detail)
                    );
                }
            }
        }
        AdminCmd::OperatorKey => unreachable!("handled above"),
    }
    store.close().await;
    Ok(())
}
