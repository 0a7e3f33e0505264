//! `gateway admin ...`: operator commands that work on the same store a
//! node uses, whether or not the node is running.
//!
//! Every command that changes something writes one audit record (actor
//! `admin`; never a password or a token): `technician added`, `technician
//! disabled`, `technician enabled`, `technician removed` (and `ended` for
//! each session of theirs it ended), `password reset`, `technician moved`,
//! `tokens revoked`, `group added`, `group removed`, `group permissions`,
//! `ended` (`session end`), `channel added`, `channel removed` and
//! `pruned`.

mod channels;

use anyhow::{Context, bail};
use clap::Subcommand;
use lifeline_protocol::text::{self, Shown};
use lifeline_protocol::time::rfc3339;
use lifeline_protocol::{Permissions, SessionGuid};
use lifeline_store::{
    GroupRemoval, NewTechnician, Removal, SessionState, Store, StoreError, Technician,
};
use std::io::{BufRead, IsTerminal};

/// The actor of every audit record an admin command writes.
const ACTOR: &str = "admin";

/// Admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Manage technicians.
    #[command(subcommand)]
    Technician(TechnicianCmd),
    /// Manage technician groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Manage sessions.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Manage channels (stable web addresses into a group's queue).
    #[command(subcommand)]
    Channel(channels::ChannelCmd),
    /// Delete ended sessions and audit records older than a given age.
    /// Sessions that have not ended are never deleted. Runs in batches of
    /// 1000 rows with a pause between them, so a running node's own
    /// writes are never held up for long.
    #[command(
        after_help = "Example: gateway admin prune --older-than 90d --dry-run \
                            (units: d, h, m; at least 1h)"
    )]
    Prune {
        /// Delete what ended (sessions) or was written (audit records)
        /// longer ago than this: a number and d, h or m (90d, 12h, 90m); at
        /// least 1h.
        #[arg(long, value_name = "DURATION", value_parser = parse_older_than)]
        older_than: Age,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
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
        /// Require a second factor (an authenticator app), set up at the
        /// first login.
        #[arg(long)]
        require_2fa: bool,
    },
    /// List technicians.
    #[command(after_help = "Example: gateway admin technician list")]
    List,
    /// Disable a technician: logins are refused and every login they have
    /// ends at once. Their sessions stay (`session end` ends one).
    #[command(after_help = "Example: gateway admin technician disable ada@example.com")]
    Disable {
        /// The technician's login e-mail address.
        email: String,
    },
    /// Enable a disabled technician: they may log in again.
    #[command(after_help = "Example: gateway admin technician enable ada@example.com")]
    Enable {
        /// The technician's login e-mail address.
        email: String,
    },
    /// Remove a technician: their sessions not yet joined by an end user
    /// are ended, then their sessions' records, logins and account go (the
    /// audit trail keeps everything, naming them by e-mail). Refused while
    /// an end user is in one of their sessions.
    #[command(after_help = "Example: gateway admin technician remove ada@example.com")]
    Remove {
        /// The technician's login e-mail address.
        email: String,
    },
    /// Set a new password (read as `technician add` reads it), lift a
    /// lockout, and end every login of the technician.
    #[command(
        after_help = "Example: gateway admin technician reset-password ada@example.com (or with --password-stdin)"
    )]
    ResetPassword {
        /// The technician's login e-mail address.
        email: String,
        /// Read the password from the first line of standard input without
        /// prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Move a technician to another group: sessions they create from now
    /// on get its permissions.
    #[command(after_help = "Example: gateway admin technician move ada@example.com --group night")]
    Move {
        /// The technician's login e-mail address.
        email: String,
        /// The group (it must exist: `gateway admin group add`).
        #[arg(long)]
        group: String,
    },
    /// Forget a technician's second factor (a lost phone): their app's
    /// codes and recovery codes stop working and every login of theirs
    /// ends; where a second factor is required, the next login sets up a
    /// new one.
    #[command(
        name = "reset-2fa",
        after_help = "Example: gateway admin technician reset-2fa ada@example.com"
    )]
    Reset2fa {
        /// The technician's login e-mail address.
        email: String,
    },
    /// Require a second factor of a technician (set up at their next
    /// login), or with --off stop requiring it (one already set up stays
    /// in use until `reset-2fa`).
    #[command(
        name = "require-2fa",
        after_help = "Example: gateway admin technician require-2fa ada@example.com    (or: --off)"
    )]
    Require2fa {
        /// The technician's login e-mail address.
        email: String,
        /// Stop requiring it.
        #[arg(long)]
        off: bool,
    },
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
    /// List groups: name, permissions and technicians.
    #[command(after_help = "Example: gateway admin group list")]
    List,
    /// The networks a group's technicians may log in and connect consoles
    /// from (CIDRs), or `any`.
    #[command(
        after_help = "Example: gateway admin group networks default 10.0.0.0/8,2001:db8::/32    (or: any)"
    )]
    Networks {
        /// Group name.
        group: String,
        /// Comma-separated CIDR blocks (an address alone is one), or `any`.
        networks: String,
    },
    /// How long the PINs of a group's sessions work (`session new --pin`),
    /// or `default` (20 minutes).
    #[command(
        name = "pin-time",
        after_help = "Example: gateway admin group pin-time default 45m    (or: default)"
    )]
    PinTime {
        /// Group name.
        group: String,
        /// How long (`10m`, `2h`; 1 minute to 24 hours), or `default`.
        time: String,
    },
    /// End a group's logins after this long unused (inactivity logout),
    /// besides their lifetime.
    #[command(after_help = "Example: gateway admin group idle default 30m    (or: off)")]
    Idle {
        /// Group name.
        group: String,
        /// How long unused (`30m`, `2h`; at least 1 minute), or `off`.
        idle: String,
    },
    /// Require a second factor (an authenticator app) of a group's
    /// technicians, set up at each one's next login; or with --off stop
    /// requiring it.
    #[command(
        name = "require-2fa",
        after_help = "Example: gateway admin group require-2fa default    (or: --off)"
    )]
    Require2fa {
        /// Group name.
        group: String,
        /// Stop requiring it.
        #[arg(long)]
        off: bool,
    },
    /// What a group asks of its technicians' passwords: least length,
    /// least strength (0–4, as zxcvbn rates how guessable a password is),
    /// and greatest age (an older password must be changed at the next
    /// login). Each is a number or `off`; what is not given stays.
    #[command(
        after_help = "Example: gateway admin group password-policy default --min-length 12 --min-strength 3 --max-age 180d"
    )]
    PasswordPolicy {
        /// Group name.
        group: String,
        /// At least this many characters, or `off`.
        #[arg(long)]
        min_length: Option<String>,
        /// At least this strength (0–4), or `off`.
        #[arg(long)]
        min_strength: Option<String>,
        /// Changed at least this often (`90d`, `12h`; a day at least), or
        /// `off`.
        #[arg(long)]
        max_age: Option<String>,
    },
    /// Add a group.
    #[command(
        after_help = "Example: gateway admin group add night --permissions system-info,run-command"
    )]
    Add {
        /// Group name.
        name: String,
        /// What its sessions may do beyond chat, as for `group
        /// permissions`.
        #[arg(long, default_value = "all")]
        permissions: String,
    },
    /// Remove a group; refused while technicians are in it.
    #[command(after_help = "Example: gateway admin group remove night")]
    Remove {
        /// Group name.
        name: String,
    },
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

/// `gateway admin session ...`
#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// End a session, whoever's it is. An applet waiting in it is told and
    /// closes; a session whose two ends are connected cannot be resumed
    /// or reconnected from now on.
    #[command(
        after_help = "Example: gateway admin session end 0f8e2c1a-6b3d-4e5f-8a9b-1c2d3e4f5a6b --reason \"left the company\""
    )]
    End {
        /// The session's GUID (`gateway admin audit` and the console's
        /// queue show it).
        guid: SessionGuid,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// The least `prune --older-than`: anything shorter is more likely a slip
/// (`30m` meant as months) than a retention period.
const MIN_AGE_MS: i64 = 3_600_000;

/// How long after a session ended `technician remove` waits before it
/// deletes the session's record: an applet waiting in the session learns
/// of the end from that record (on SQLite, where another process's
/// endings are not announced, at the node's next check of its waiting
/// applets).
const REMOVE_SETTLE_MS: i64 = crate::relay::waiting_check::CHECK_EVERY.as_millis() as i64 + 5_000;

/// An age for `prune --older-than`, as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age {
    /// In milliseconds.
    pub ms: i64,
    /// The number given.
    count: i64,
    /// Its unit: `d`, `h` or `m`.
    unit: char,
}

impl std::fmt::Display for Age {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.count, self.unit)
    }
}

/// Parses a duration: a whole number and a unit, `d` (days), `h` (hours)
/// or `m` (minutes): `90d`, `12h`, `30m`.
pub fn parse_duration(s: &str) -> Result<Age, String> {
    let s = s.trim();
    let expected = "a number and a unit: d (days), h (hours) or m (minutes), as in 90d, 12h, 30m";
    let Some(unit) = s.chars().last() else {
        return Err(format!("no duration given: {expected}"));
    };
    let per_unit: i64 = match unit {
        'd' => 86_400_000,
        'h' => 3_600_000,
        'm' => 60_000,
        _ => return Err(format!("{s:?} is not a duration: {expected}")),
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a duration: {expected}"));
    }
    let too_long = || format!("{s:?} is too long a duration");
    let count: i64 = digits.parse().map_err(|_| too_long())?;
    let ms = count.checked_mul(per_unit).ok_or_else(too_long)?;
    Ok(Age { ms, count, unit })
}

/// [`parse_duration`], refusing less than an hour (`prune --older-than`,
/// `serve --retention`).
pub fn parse_older_than(s: &str) -> Result<Age, String> {
    let age = parse_duration(s)?;
    if age.ms < MIN_AGE_MS {
        return Err(format!(
            "{age} is less than an hour: refused, to avoid deleting recent records by a slip \
             (give 1h or more)"
        ));
    }
    Ok(age)
}

fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    let pw = if !from_stdin && std::io::stdin().is_terminal() {
        // Read from the terminal with echo off.
        rpassword::prompt_password(prompt).context("reading the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    // Judged (length included) against the group's policy before hashing.
    Ok(pw)
}

/// The technician with this e-mail address, or an error saying there is
/// none.
async fn technician(store: &Store, email: &str) -> anyhow::Result<Technician> {
    match store.technician_by_email(email).await? {
        Some(t) => Ok(t),
        None => bail!(
            "there is no technician with e-mail {:?} (`gateway admin technician list` shows them)",
            Shown(email.trim()).to_string()
        ),
    }
}

/// A group name as given on the command line, checked as `technician add`
/// checks it.
fn group_name(name: &str) -> anyhow::Result<String> {
    Ok(text::check_name("the group name", name, 64)?.to_owned())
}

/// A policy number as given: `off`, or a number `check` accepts.
fn off_or(
    given: &str,
    flag: &str,
    check: impl Fn(i64) -> Result<i64, &'static str>,
) -> anyhow::Result<Option<i64>> {
    let given = given.trim();
    if given.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let n: i64 = given
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag} {given:?}: give a number, or off"))?;
    check(n)
        .map(Some)
        .map_err(|want| anyhow::anyhow!("{flag} {n}: give {want}, or off"))
}

/// A password an administrator sets, judged by the group's policy as the
/// technician's own would be, then hashed.
async fn policy_hash(
    store: &Store,
    group: &str,
    email: &str,
    name: &str,
    password: String,
) -> anyhow::Result<String> {
    let policy = store
        .group(group)
        .await?
        .map(|g| g.password_policy)
        .unwrap_or_default();
    let inputs = [email.to_owned(), name.to_owned(), group.to_owned()];
    tokio::task::spawn_blocking(move || {
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        crate::passwords::judge(&policy, &password, &inputs).map_err(anyhow::Error::msg)?;
        Ok(crate::auth::hash_password(&password)?)
    })
    .await?
}

/// "1 login" / "2 logins".
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
    let result = run_on(cmd, &store).await;
    store.close().await;
    result
}

async fn run_on(cmd: AdminCmd, store: &Store) -> anyhow::Result<()> {
    let now = lifeline_protocol::time::now_ms();
    match cmd {
        AdminCmd::Technician(cmd) => technician_cmd(cmd, store, now).await,
        AdminCmd::Group(cmd) => group_cmd(cmd, store).await,
        AdminCmd::Channel(cmd) => channels::run(cmd, store, now).await,
        AdminCmd::Session(SessionCmd::End { guid, reason }) => {
            end_session(store, guid, reason, now).await
        }
        AdminCmd::Prune {
            older_than,
            dry_run,
        } => prune(store, older_than, dry_run, now).await,
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
                        "at": rfc3339(e.at_ms),
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
                        rfc3339(e.at_ms),
                        session,
                        Shown(&e.actor).to_string(),
                        Shown(&e.event).to_string(),
                        Shown(&e.detail)
                    );
                }
            }
            Ok(())
        }
        AdminCmd::OperatorKey => unreachable!("handled before the store is opened"),
    }
}

async fn technician_cmd(cmd: TechnicianCmd, store: &Store, now: i64) -> anyhow::Result<()> {
    match cmd {
        TechnicianCmd::Add {
            email,
            name,
            group,
            password_stdin,
            require_2fa,
        } => {
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
            let group = group_name(&group)?;
            let pw = read_password(password_stdin, "Password for the new technician: ")?;
            let hash = policy_hash(store, &group, &email, &name, pw).await?;
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
            if require_2fa {
                store.set_technician_totp_required(t.id, true).await?;
            }
            let second = if require_2fa {
                "; second factor required"
            } else {
                ""
            };
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "technician added",
                    &format!("{} ({}), group {}{second}", t.email, t.name, t.group),
                )
                .await?;
            println!(
                "added technician {} ({}) in group {} [{}]{second}",
                t.email, t.name, t.group, t.permissions
            );
        }
        TechnicianCmd::Reset2fa { email } => {
            let t = technician(store, &email).await?;
            if t.two_factor.secret.is_none() {
                println!("{} has no second factor set up; nothing changed", t.email);
                return Ok(());
            }
            let n = store.reset_totp(t.id).await?;
            let logins = count(n, "login", "logins");
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "second factor reset",
                    &format!(
                        "{}: app and recovery codes forgotten; {logins} ended",
                        t.email
                    ),
                )
                .await?;
            let next = if t.two_factor.required_for_account || t.two_factor.required_by_group {
                "their next login sets up a new one"
            } else {
                "they log in with the password alone"
            };
            println!(
                "reset the second factor of {}: {logins} ended; {next}",
                t.email
            );
        }
        TechnicianCmd::Require2fa { email, off } => {
            let t = technician(store, &email).await?;
            store.set_technician_totp_required(t.id, !off).await?;
            let words = |on: bool| if on { "required" } else { "not required" };
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "technician second factor",
                    &format!(
                        "{}: {} → {}",
                        t.email,
                        words(t.two_factor.required_for_account),
                        words(!off)
                    ),
                )
                .await?;
            let also = match (off, t.two_factor.enrolled(), t.two_factor.required_by_group) {
                (true, _, true) => " (their group still requires one)",
                (true, true, false) => " (the one set up stays in use until `reset-2fa`)",
                (false, false, _) => " (set up at their next login)",
                _ => "",
            };
            println!("{}: second factor {}{also}", t.email, words(!off));
        }
        TechnicianCmd::RevokeTokens { email } => {
            let t = technician(store, &email).await?;
            let n = store.revoke_tokens(t.id).await?;
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "tokens revoked",
                    &format!("{}: {n} logins ended", t.email),
                )
                .await?;
            println!(
                "ended {n} login(s) of {}; their consoles must log in again",
                t.email
            );
        }
        TechnicianCmd::List => {
            let list = store.list_technicians().await?;
            println!(
                "{:<32} {:<24} {:<12} {:<9} {:<9} {:<20} permissions",
                "EMAIL", "NAME", "GROUP", "STATE", "2FA", "LOCKED UNTIL"
            );
            for t in list {
                let locked = t
                    .locked_until_ms
                    .filter(|u| *u > now)
                    .map(rfc3339)
                    .unwrap_or_else(|| "-".into());
                let state = if t.disabled_at_ms.is_some() {
                    "disabled"
                } else {
                    "enabled"
                };
                println!(
                    "{:<32} {:<24} {:<12} {:<9} {:<9} {:<20} {}",
                    Shown(&t.email).to_string(),
                    Shown(&t.name).to_string(),
                    Shown(&t.group).to_string(),
                    state,
                    t.two_factor.describe(),
                    locked,
                    t.permissions
                );
            }
        }
        TechnicianCmd::Disable { email } => {
            let t = technician(store, &email).await?;
            if let Some(since) = t.disabled_at_ms {
                println!(
                    "{} is already disabled (since {}); nothing changed",
                    t.email,
                    rfc3339(since)
                );
                return Ok(());
            }
            let n = store.disable_technician(t.id, now).await?;
            let logins = count(n, "login", "logins");
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "technician disabled",
                    &format!("{}: logins refused; {logins} ended", t.email),
                )
                .await?;
            println!(
                "disabled {}: logins are refused, and {logins} ended; their sessions stay \
                 (`gateway admin session end GUID` ends one)",
                t.email
            );
        }
        TechnicianCmd::Enable { email } => {
            let t = technician(store, &email).await?;
            if t.disabled_at_ms.is_none() {
                println!("{} is not disabled; nothing changed", t.email);
                return Ok(());
            }
            store.enable_technician(t.id).await?;
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "technician enabled",
                    &format!("{}: may log in again", t.email),
                )
                .await?;
            println!("enabled {}: they may log in again", t.email);
        }
        TechnicianCmd::ResetPassword {
            email,
            password_stdin,
        } => {
            // Looked up first: an unknown address fails before any prompt.
            let t = technician(store, &email).await?;
            let pw = read_password(password_stdin, &format!("New password for {}: ", t.email))?;
            let hash = policy_hash(store, &t.group, &t.email, &t.name, pw).await?;
            let n = store.reset_password(t.id, &hash, now).await?;
            let was_locked = t.locked_until_ms.is_some_and(|u| u > now);
            let logins = count(n, "login", "logins");
            let mut detail = format!("{}: new password set; {logins} ended", t.email);
            if was_locked {
                detail.push_str("; lockout lifted");
            }
            store
                .audit(now, None, ACTOR, "password reset", &detail)
                .await?;
            println!(
                "new password set for {}{}; {logins} ended: their consoles must log in again",
                t.email,
                if was_locked { "; lockout lifted" } else { "" }
            );
            if t.disabled_at_ms.is_some() {
                println!(
                    "{} is still disabled: `gateway admin technician enable {}` lets them log in",
                    t.email, t.email
                );
            }
        }
        TechnicianCmd::Move { email, group } => {
            let t = technician(store, &email).await?;
            let group = group_name(&group)?;
            if t.group == group {
                println!("{} is already in group {group}; nothing changed", t.email);
                return Ok(());
            }
            let moved = match store.move_technician(t.id, &group).await {
                Ok(m) => m,
                Err(StoreError::NotFound(_)) if store.group(&group).await?.is_none() => bail!(
                    "there is no group named {group:?} (`gateway admin group list` shows them, \
                     `gateway admin group add` makes one)"
                ),
                Err(e) => return Err(e.into()),
            };
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "technician moved",
                    &format!(
                        "{}: group {} → {}; permissions: {} → {}",
                        t.email, t.group, moved.group, t.permissions, moved.permissions
                    ),
                )
                .await?;
            println!(
                "moved {} from group {} to {} [{}]: sessions they create from now on get these \
                 permissions (open sessions keep theirs)",
                t.email, t.group, moved.group, moved.permissions
            );
        }
        TechnicianCmd::Remove { email } => {
            let t = technician(store, &email).await?;
            let reason = format!(
                "ended by the administrator: the technician {} was removed",
                t.email
            );
            match store
                .remove_technician(t.id, &reason, now, REMOVE_SETTLE_MS)
                .await?
            {
                Removal::Removed {
                    ended,
                    sessions_deleted,
                    tokens_revoked,
                } => {
                    for guid in &ended {
                        store
                            .audit(now, Some(guid), ACTOR, "ended", &reason)
                            .await?;
                    }
                    let summary = format!(
                        "{} ended, {} deleted, {} ended",
                        count(ended.len() as u64, "open session", "open sessions"),
                        count(sessions_deleted, "session record", "session records"),
                        count(tokens_revoked, "login", "logins"),
                    );
                    store
                        .audit(
                            now,
                            None,
                            ACTOR,
                            "technician removed",
                            &format!("{} ({}), group {}: {summary}", t.email, t.name, t.group),
                        )
                        .await?;
                    println!(
                        "removed {} ({}): {summary}; the audit trail keeps their records",
                        t.email, t.name
                    );
                }
                Removal::Connected(sessions) => {
                    let list = sessions
                        .iter()
                        .map(|(g, s)| format!("{g} ({})", connected_state(*s)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    bail!(
                        "{} was not removed: an end user is in {} of theirs right now: {list}. \
                         Removing deletes their sessions' records, so an end user still in one \
                         would not be told that it ended (and the gateway cannot cut a session \
                         whose two ends are connected: its traffic may not pass through it). \
                         End each with `gateway admin session end GUID` (a waiting end user is \
                         told) or let it end, then remove again; meanwhile `gateway admin \
                         technician disable {}` stops their logins",
                        t.email,
                        count(sessions.len() as u64, "session", "sessions"),
                        t.email
                    );
                }
                Removal::RecentlyEnded(sessions) => {
                    let last = sessions.iter().map(|(_, at)| *at).max().unwrap_or(now);
                    let wait = ((last + REMOVE_SETTLE_MS - now).max(1_000) + 999) / 1_000;
                    bail!(
                        "{} was not removed yet: their session {} ended moments ago, and an \
                         applet waiting in it learns that from the session's record, which \
                         removing deletes; try again in {wait} s",
                        t.email,
                        sessions[0].0
                    );
                }
            }
        }
    }
    Ok(())
}

/// How a session an end user is in is described.
fn connected_state(s: SessionState) -> &'static str {
    match s {
        SessionState::Waiting => "the end user is waiting",
        SessionState::Paired | SessionState::Direct => "connected",
        SessionState::Created | SessionState::Ended => s.as_str(),
    }
}

async fn group_cmd(cmd: GroupCmd, store: &Store) -> anyhow::Result<()> {
    let now = lifeline_protocol::time::now_ms();
    match cmd {
        GroupCmd::List => {
            let groups = store.list_groups().await?;
            let shown: Vec<(String, String, String, String)> = groups
                .iter()
                .map(|g| {
                    let mut policy = Vec::new();
                    if let Some(secs) = g.idle_secs {
                        policy.push(format!("logins end after {} min unused", secs / 60));
                    }
                    if let Some(n) = &g.networks {
                        policy.push(format!("only from {}", Shown(n)));
                    }
                    if g.totp_required {
                        policy.push("second factor required".to_owned());
                    }
                    if let Some(secs) = g.pin_secs {
                        policy.push(format!("PINs work {} min", secs / 60));
                    }
                    if !g.password_policy.is_empty() {
                        policy.push(g.password_policy.to_string());
                    }
                    let people = if g.technicians.is_empty() {
                        "(none)".to_owned()
                    } else {
                        g.technicians
                            .iter()
                            .map(|e| Shown(e).to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    (
                        Shown(&g.name).to_string(),
                        g.permissions.to_string(),
                        people,
                        policy.join("; "),
                    )
                })
                .collect();
            let w_name = shown
                .iter()
                .map(|r| r.0.chars().count())
                .max()
                .unwrap_or(0)
                .max(12);
            let w_perm = shown
                .iter()
                .map(|r| r.1.chars().count())
                .max()
                .unwrap_or(0)
                .max(11);
            println!(
                "{:<w_name$} {:<w_perm$} TECHNICIANS",
                "GROUP", "PERMISSIONS"
            );
            for (name, perms, people, policy) in shown {
                println!("{name:<w_name$} {perms:<w_perm$} {people}");
                if !policy.is_empty() {
                    println!("{:<w_name$}   {policy}", "");
                }
            }
        }
        GroupCmd::Add { name, permissions } => {
            let name = group_name(&name)?;
            let p = Permissions::parse_list(&permissions).map_err(anyhow::Error::msg)?;
            let g = store.add_group(&name, p).await?;
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "group added",
                    &format!("{}: permissions: {}", g.name, g.permissions),
                )
                .await?;
            println!("added group {} [{}]", g.name, g.permissions);
        }
        GroupCmd::Remove { name } => {
            let name = group_name(&name)?;
            let Some(g) = store.group(&name).await? else {
                bail!("there is no group named {name:?} (`gateway admin group list` shows them)");
            };
            match store.remove_group(&name).await? {
                GroupRemoval::Removed => {
                    store
                        .audit(
                            now,
                            None,
                            ACTOR,
                            "group removed",
                            &format!("{}: permissions were {}", g.name, g.permissions),
                        )
                        .await?;
                    println!("removed group {}", g.name);
                }
                GroupRemoval::NotEmpty(people) => bail!(
                    "group {name} was not removed: {} in it ({}); move them first with `gateway \
                     admin technician move EMAIL --group OTHER`",
                    count(people.len() as u64, "technician is", "technicians are"),
                    people.join(", ")
                ),
            }
        }
        GroupCmd::Networks { group, networks } => {
            let group = group_name(&group)?;
            let list = if networks.trim().eq_ignore_ascii_case("any") {
                None
            } else {
                let blocks = crate::networks::parse(&networks).map_err(anyhow::Error::msg)?;
                Some(
                    blocks
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                )
            };
            let before = match store.set_group_networks(&group, list.as_deref()).await {
                Ok(b) => b,
                Err(lifeline_store::StoreError::NotFound(_)) => bail!(
                    "there is no group named {group:?} (`gateway admin group list` shows them)"
                ),
                Err(e) => return Err(e.into()),
            };
            let words = |n: Option<&str>| n.unwrap_or("any").to_owned();
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "group networks",
                    &format!(
                        "{group}: {} → {}",
                        words(before.as_deref()),
                        words(list.as_deref())
                    ),
                )
                .await?;
            println!(
                "group {group}: logins and consoles from {}",
                words(list.as_deref())
            );
        }
        GroupCmd::PasswordPolicy {
            group,
            min_length,
            min_strength,
            max_age,
        } => {
            let group = group_name(&group)?;
            let Some(g) = store.group(&group).await? else {
                bail!("there is no group named {group:?} (`gateway admin group list` shows them)");
            };
            let before = g.password_policy;
            let mut policy = before;
            if let Some(v) = min_length {
                policy.min_length = off_or(&v, "--min-length", |n| {
                    (1..=1024)
                        .contains(&n)
                        .then_some(n)
                        .ok_or("a number of characters from 1 to 1024")
                })?;
            }
            if let Some(v) = min_strength {
                policy.min_strength = off_or(&v, "--min-strength", |n| {
                    (0..=4)
                        .contains(&n)
                        .then_some(n)
                        .ok_or("a strength from 0 to 4")
                })?;
            }
            if let Some(v) = max_age {
                policy.max_age_secs = if v.trim().eq_ignore_ascii_case("off") {
                    None
                } else {
                    let age = parse_duration(&v).map_err(anyhow::Error::msg)?;
                    if age.ms < 86_400_000 {
                        bail!("--max-age {age} is less than a day: give 1d or more, or off");
                    }
                    Some(age.ms / 1000)
                };
            }
            store.set_group_password_policy(&group, policy).await?;
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "group password policy",
                    &format!("{group}: {before} → {policy}"),
                )
                .await?;
            let when = if policy.max_age_secs.is_some() {
                "; passwords older than that are changed at the next login"
            } else {
                ""
            };
            println!("group {group}: {policy}{when}");
        }
        GroupCmd::Require2fa { group, off } => {
            let group = group_name(&group)?;
            let before = match store.set_group_totp_required(&group, !off).await {
                Ok(b) => b,
                Err(lifeline_store::StoreError::NotFound(_)) => bail!(
                    "there is no group named {group:?} (`gateway admin group list` shows them)"
                ),
                Err(e) => return Err(e.into()),
            };
            let words = |on: bool| if on { "required" } else { "not required" };
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "group second factor",
                    &format!("{group}: {} → {}", words(before), words(!off)),
                )
                .await?;
            let also = if off {
                " (technicians who set one up keep using it until `technician reset-2fa`)"
            } else {
                " (each technician sets it up at their next login)"
            };
            println!("group {group}: second factor {}{also}", words(!off));
        }
        GroupCmd::PinTime { group, time } => {
            let group = group_name(&group)?;
            let secs = if time.trim().eq_ignore_ascii_case("default") {
                None
            } else {
                let age = parse_duration(&time).map_err(anyhow::Error::msg)?;
                if !(60_000..=86_400_000).contains(&age.ms) {
                    bail!("{age}: give 1m to 24h, or default");
                }
                Some(age.ms / 1000)
            };
            let before = match store.set_group_pin_secs(&group, secs).await {
                Ok(b) => b,
                Err(lifeline_store::StoreError::NotFound(_)) => bail!(
                    "there is no group named {group:?} (`gateway admin group list` shows them)"
                ),
                Err(e) => return Err(e.into()),
            };
            let words = |s: Option<i64>| match s {
                Some(s) => format!("{} min", s / 60),
                None => format!("{} min (the default)", crate::portal::PIN_TTL_MS / 60_000),
            };
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "group PIN time",
                    &format!("{group}: {} → {}", words(before), words(secs)),
                )
                .await?;
            println!("group {group}: PINs work {}", words(secs));
        }
        GroupCmd::Idle { group, idle } => {
            let group = group_name(&group)?;
            let secs = if idle.trim().eq_ignore_ascii_case("off") {
                None
            } else {
                let age = parse_duration(&idle).map_err(anyhow::Error::msg)?;
                if age.ms < 60_000 {
                    bail!("{age} is less than a minute: give 1m or more, or off");
                }
                Some(age.ms / 1000)
            };
            let before = match store.set_group_idle(&group, secs).await {
                Ok(b) => b,
                Err(lifeline_store::StoreError::NotFound(_)) => bail!(
                    "there is no group named {group:?} (`gateway admin group list` shows them)"
                ),
                Err(e) => return Err(e.into()),
            };
            let words = |s: Option<i64>| match s {
                Some(s) => format!("after {} min unused", s / 60),
                None => "only when they expire".to_owned(),
            };
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "group idle logout",
                    &format!("{group}: {} → {}", words(before), words(secs)),
                )
                .await?;
            println!("group {group}: logins end {}", words(secs));
        }
        GroupCmd::Permissions { group, permissions } => {
            let group = group_name(&group)?;
            let p = Permissions::parse_list(&permissions).map_err(anyhow::Error::msg)?;
            let Some(before) = store.group(&group).await? else {
                bail!("there is no group named {group:?} (`gateway admin group list` shows them)");
            };
            store.set_group_permissions(&group, p).await?;
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "group permissions",
                    &format!("{group}: permissions: {} → {p}", before.permissions),
                )
                .await?;
            println!("group {group}: {p}");
        }
    }
    Ok(())
}

async fn end_session(
    store: &Store,
    guid: SessionGuid,
    reason: Option<String>,
    now: i64,
) -> anyhow::Result<()> {
    let Some(rec) = store.session(&guid).await? else {
        bail!("there is no session {guid} (`gateway admin audit` names sessions)");
    };
    let already = |at: Option<i64>, why: Option<&str>| {
        println!(
            "session {guid} had already ended{}{}; nothing changed",
            at.map(|t| format!(" at {}", rfc3339(t)))
                .unwrap_or_default(),
            why.map(|w| format!(" ({})", Shown(w))).unwrap_or_default()
        );
    };
    if rec.state == SessionState::Ended {
        already(rec.ended_at_ms, rec.ended_reason.as_deref());
        return Ok(());
    }
    // Stored as the portal stores a technician's reason: trimmed, bounded,
    // neutralized (the audit trail is read on terminals).
    let given = lifeline_protocol::portal::EndSession {
        reason: reason.unwrap_or_default(),
    }
    .reason_text();
    let reason = match given {
        Some(r) => format!("ended by the administrator: {r}"),
        None => "ended by the administrator".to_owned(),
    };
    // The store's one way to end a session, as the portal's: on
    // PostgreSQL its trigger tells every node at once; a node on SQLite
    // finds the ending at its waiting applet's next keepalive.
    if !store.end_session(&guid, &reason, now).await? {
        let r = store.session(&guid).await?;
        already(
            r.as_ref().and_then(|r| r.ended_at_ms),
            r.as_ref().and_then(|r| r.ended_reason.as_deref()),
        );
        return Ok(());
    }
    store
        .audit(now, Some(&guid), ACTOR, "ended", &reason)
        .await?;
    let whose = match (&rec.technician_email, &rec.channel) {
        (Some(email), _) => format!("{email}'s session {guid}"),
        (None, Some(channel)) => format!("channel {channel}'s session {guid}"),
        (None, None) => format!("session {guid}"),
    };
    match rec.state {
        SessionState::Created => println!("ended {whose}: its applet can no longer connect"),
        SessionState::Waiting => println!(
            "ended {whose}: the applet waiting in it is told and closes ({})",
            match store.dialect() {
                // Every node LISTENs for the trigger's NOTIFY.
                lifeline_store::Dialect::Postgres => "at once".to_owned(),
                // The node hears its own endings only; its check of its
                // waiting applets reads the session's row.
                lifeline_store::Dialect::Sqlite => format!(
                    "within {} s, at the gateway's next check",
                    crate::relay::waiting_check::CHECK_EVERY.as_secs()
                ),
            }
        ),
        SessionState::Paired | SessionState::Direct => println!(
            "ended {whose}: it can no longer be resumed or reconnected; the end user and the \
             technician are connected to each other right now, which the gateway cannot cut \
             (the traffic may not pass through it): they see the end when either side ends it \
             or their connection is next interrupted"
        ),
        SessionState::Ended => {}
    }
    Ok(())
}

/// Deletes ended sessions and audit records older than `age`, and records
/// that it did as `actor` (the admin's command, or the node's retention).
/// Says what it deleted.
pub async fn prune_now(store: &Store, age: Age, now: i64, actor: &str) -> anyhow::Result<String> {
    let before = now.saturating_sub(age.ms);
    let n = store.prune(before).await?;
    let what = format!(
        "{} and {} older than {age} (before {})",
        count(n.sessions, "ended session", "ended sessions"),
        count(n.audit, "audit record", "audit records"),
        rfc3339(before)
    );
    store
        .audit(now, None, actor, "pruned", &format!("deleted {what}"))
        .await?;
    Ok(what)
}

async fn prune(store: &Store, age: Age, dry_run: bool, now: i64) -> anyhow::Result<()> {
    let before = now.saturating_sub(age.ms);
    let when = rfc3339(before);
    if dry_run {
        let n = store.count_prunable(before).await?;
        println!(
            "would delete {} and {} (older than {age}: before {when}); nothing was deleted \
             (--dry-run)",
            count(n.sessions, "ended session", "ended sessions"),
            count(n.audit, "audit record", "audit records"),
        );
        return Ok(());
    }
    let what = prune_now(store, age, now, ACTOR).await?;
    println!("deleted {what}; sessions that have not ended were kept");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        for (text, ms, shown) in [
            ("90d", 90 * 86_400_000, "90d"),
            ("12h", 12 * 3_600_000, "12h"),
            ("30m", 30 * 60_000, "30m"),
            (" 1h ", 3_600_000, "1h"),
            ("0d", 0, "0d"),
            ("007h", 7 * 3_600_000, "7h"),
        ] {
            let age = parse_duration(text).unwrap();
            assert_eq!((age.ms, age.to_string().as_str()), (ms, shown), "{text}");
        }
        for bad in [
            "",
            "d",
            "90",
            "90s",
            "90 d",
            "-1d",
            "+1d",
            "1.5h",
            "1d2h",
            "h1",
            "٣d",
            "99999999999999999999d",
            "106751991168d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_duration("90x").unwrap_err().contains("90d, 12h, 30m"));
    }

    #[test]
    fn prune_refuses_less_than_an_hour() {
        for short in ["59m", "0h", "0d", "30m"] {
            let e = parse_older_than(short).unwrap_err();
            assert!(e.contains("less than an hour"), "{short}: {e}");
        }
        for ok in ["60m", "1h", "90d"] {
            assert!(parse_older_than(ok).is_ok(), "{ok}");
        }
    }
}
