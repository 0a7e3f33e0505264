//! JSON bodies of the portal HTTP API (`/api/v1/...`).
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | POST | `/api/v1/login` | [`LoginRequest`] → [`LoginResponse`] |
//! | POST | `/api/v1/password` | [`PasswordChange`] → [`LoginResponse`] (the group's policy applies to the new password; a password past its age is changed here) |
//! | POST | `/api/v1/login/enroll` | [`LoginRequest`] → [`TotpEnrollment`] (a second factor required and not yet enrolled: a new pending secret) |
//! | POST | `/api/v1/logout` | → `{"logged_out": true}` (the token stops working) |
//! | POST | `/api/v1/sessions` | [`CreateSession`] → [`SessionInfo`] |
//! | GET | `/api/v1/sessions` | → [`SessionList`] (the caller's sessions, newest first) |
//! | GET | `/api/v1/sessions/waiting` | → [`SessionList`] (the caller's waiting sessions) |
//! | GET | `/api/v1/sessions/{guid}` | → [`SessionInfo`] |
//! | POST | `/api/v1/sessions/{guid}/end` | [`EndSession`] → [`SessionInfo`] |
//! | POST | `/api/v1/sessions/{guid}/reissue` | [`ReissueApplet`] → [`SessionInfo`] (only while `created`: earlier applet files stop working, the applet may be downloaded once more) |
//! | POST | `/api/v1/sessions/{guid}/path` | [`PathReport`] → [`SessionInfo`] |
//! | POST | `/api/v1/sessions/{guid}/work` | [`WorkReport`] → [`WorkRecorded`] |
//! | GET | `/api/v1/sessions/{guid}/applet?platform=P` | → the personalized executable, once |
//! | GET | `/api/v1/directory` | → [`crate::directory::SignedDirectory`] |
//! | GET | `/api/v1/health` | → [`Health`] |
//!
//! Everything but `login`, `directory` and `health` needs
//! `Authorization: Bearer TOKEN` ([`bearer_token`]). Errors are [`ApiError`]
//! with an HTTP status.
//!
//! The checks a gateway runs on request bodies live here with the types
//! ([`CreateSession::check`], [`ReissueApplet::check`], [`PathReport::check`],
//! [`WorkReport::check`], [`EndSession::reason_text`]),
//! so that they are fuzzed with the parsers (`fuzz/`, target `portal`).

use crate::guid::SessionGuid;
use crate::permissions::Permissions;
use crate::work::Decision;
use serde::{Deserialize, Serialize};

/// Longest session label.
pub const MAX_LABEL: usize = 128;
/// Longest session lifetime a technician may ask for.
pub const MAX_SESSION_TTL_SECS: u64 = 7 * 24 * 3600;
/// Longest end reason kept.
pub const MAX_END_REASON: usize = 256;

/// A request body the portal refuses, with the message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// The token of an `Authorization` header value (`Bearer TOKEN`), if it
/// is one: the scheme case-insensitively, one token of visible ASCII.
pub fn bearer_token(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty() && token.len() <= 512 && token.bytes().all(|b| b.is_ascii_graphic()))
        .then_some(token)
}

/// The value of `name` in a URL query string (`a=1&platform=x`), if present.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Technician login.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
    /// The second factor, where the account has one: a 6-digit code from
    /// the authenticator app, or one of the recovery codes. Without it, an
    /// account that needs one is answered `code_required` (enrolled) or
    /// `enroll_required` (then [`TotpEnrollment`] from
    /// `/api/v1/login/enroll`, and a login with the app's first code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    // Neither the password nor the code ever reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"…")
            .field("code", &self.code.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A technician changing their password: the whole login (password and,
/// where needed, code) and the new password. Answered like a login, with
/// a new token; every earlier login of theirs ends.
#[derive(Clone, Serialize, Deserialize)]
pub struct PasswordChange {
    /// The login, with the current password.
    #[serde(flatten)]
    pub login: LoginRequest,
    /// The new password.
    pub new_password: String,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChange")
            .field("login", &self.login)
            .field("new_password", &"…")
            .finish()
    }
}

/// A second factor to enroll: what the authenticator app is given.
#[derive(Clone, Serialize, Deserialize)]
pub struct TotpEnrollment {
    /// The `otpauth://totp/…` URI (a QR code of it is what apps scan).
    pub uri: String,
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment(…)")
    }
}

/// A technician as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechnicianInfo {
    /// E-mail address (the login name).
    pub email: String,
    /// Display name shown to end users.
    pub name: String,
    /// Group name.
    pub group: String,
}

/// A successful login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token for later calls and for the relay hello.
    pub token: String,
    /// When the token stops working (Unix ms).
    pub expires_at_ms: i64,
    /// Who logged in.
    pub technician: TechnicianInfo,
    /// The recovery codes, given once, when this login confirmed a new
    /// second factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_codes: Vec<String>,
    /// How many recovery codes are left, when this login used one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_codes_left: Option<i64>,
}

/// Create a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSession {
    /// Free-text label to find the session by (unique among the technician's
    /// open sessions when given).
    #[serde(default)]
    pub label: Option<String>,
    /// Hex SHA-256 of the console session certificate's SPKI.
    pub console_pin: String,
    /// Hex 32-byte applet secret; the portal keeps it until the download.
    pub applet_secret: String,
    /// Lifetime in seconds (default set by the operator, `session_ttl`; at
    /// most [`MAX_SESSION_TTL_SECS`], 7 days).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    /// Give the session a 6-digit PIN ([`SessionInfo::pin`]) with which
    /// the end user downloads the applet from the gateway's web page.
    #[serde(default)]
    pub pin: bool,
    /// Give the session a one-time link ([`SessionInfo::link`]) to the
    /// gateway's web page, from which the end user downloads the applet.
    #[serde(default)]
    pub link: bool,
}

/// A [`CreateSession`] that passed [`CreateSession::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedSession {
    /// The label, trimmed (`""` for none).
    pub label: String,
    /// SHA-256 of the console certificate's SPKI.
    pub console_pin: [u8; 32],
    /// The applet secret.
    pub applet_secret: [u8; 32],
    /// Lifetime in seconds.
    pub ttl_secs: u64,
}

impl CreateSession {
    /// Decodes and checks the request: pin and secret are 64 hex digits,
    /// the label is plain printable text of at most [`MAX_LABEL`] bytes
    /// (see [`crate::text::check_name`]), the lifetime is 1 s to
    /// [`MAX_SESSION_TTL_SECS`] (`default_ttl_secs` when not given).
    pub fn check(&self, default_ttl_secs: u64) -> Result<CheckedSession, BadRequest> {
        let bad = |m: String| Err(BadRequest(m));
        let Some(console_pin) = crate::hex::decode_array::<32>(&self.console_pin) else {
            return bad(
                "console_pin must be 64 hex digits (SHA-256 of the session certificate's SPKI)"
                    .into(),
            );
        };
        let Some(applet_secret) = crate::hex::decode_array::<32>(&self.applet_secret) else {
            return bad("applet_secret must be 64 hex digits".into());
        };
        let label = match self.label.as_deref().map(str::trim) {
            None | Some("") => String::new(),
            Some(l) => crate::text::check_name("label", l, MAX_LABEL)
                .map_err(|e| BadRequest(e.to_string()))?
                .to_owned(),
        };
        let ttl_secs = self.expires_in_secs.unwrap_or(default_ttl_secs);
        if ttl_secs == 0 || ttl_secs > MAX_SESSION_TTL_SECS {
            return bad(format!(
                "expires_in_secs must be between 1 and {MAX_SESSION_TTL_SECS}"
            ));
        }
        Ok(CheckedSession {
            label,
            console_pin,
            applet_secret,
            ttl_secs,
        })
    }
}

/// Fetch a session's applet again before the end user has connected: a
/// new applet secret replaces the session's (and its admission key), so
/// every applet file made before stops working, and the applet may be
/// downloaded once more. Accepted only while the session is `created` and
/// has not expired.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReissueApplet {
    /// Hex 32-byte applet secret, as in [`CreateSession::applet_secret`];
    /// the portal keeps it until the download.
    pub applet_secret: String,
}

impl ReissueApplet {
    /// Decodes and checks the request: the secret is 64 hex digits.
    pub fn check(&self) -> Result<[u8; 32], BadRequest> {
        crate::hex::decode_array::<32>(&self.applet_secret)
            .ok_or_else(|| BadRequest("applet_secret must be 64 hex digits".into()))
    }
}

/// Pick an end user from the technician's group queue (sessions that came
/// through a channel): the session becomes theirs, with this console key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PickSession {
    /// The session to pick; `None`: the one that has waited longest.
    #[serde(default)]
    pub guid: Option<SessionGuid>,
    /// Hex SHA-256 of the console session certificate's SPKI, as in
    /// [`CreateSession::console_pin`].
    pub console_pin: String,
}

impl PickSession {
    /// The console key, checked to be 64 hex digits.
    pub fn check(&self) -> Result<[u8; 32], BadRequest> {
        crate::hex::decode_array::<32>(&self.console_pin).ok_or_else(|| {
            BadRequest(
                "console_pin must be 64 hex digits (SHA-256 of the session certificate's SPKI)"
                    .into(),
            )
        })
    }
}

/// The answer to a [`PickSession`]: the session, now the technician's,
/// and the applet secret its console checks the end user's program by
/// (the gateway made that program on the channel's page; it forgets the
/// secret once it is handed over).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PickedSession {
    /// The session.
    pub session: SessionInfo,
    /// Hex 32-byte applet secret.
    pub applet_secret: String,
}

/// Offer a running session to another technician of the holder's group
/// (or withdraw the offer). The holder's console sends the session's
/// applet secret along: the accepting console needs it to check the end
/// user's program, and the gateway keeps it only until then.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfferTransfer {
    /// The e-mail of the technician to hand the session to; `None`
    /// withdraws an offer.
    #[serde(default)]
    pub to: Option<String>,
    /// Hex 32-byte applet secret (with `to`).
    #[serde(default)]
    pub applet_secret: Option<String>,
}

impl OfferTransfer {
    /// The applet secret, checked to be 64 hex digits (required with `to`).
    pub fn check(&self) -> Result<Option<[u8; 32]>, BadRequest> {
        match (&self.to, &self.applet_secret) {
            (None, _) => Ok(None),
            (Some(_), Some(s)) => crate::hex::decode_array::<32>(s)
                .map(Some)
                .ok_or_else(|| BadRequest("applet_secret must be 64 hex digits".into())),
            (Some(_), None) => Err(BadRequest(
                "applet_secret is required to offer a session".into(),
            )),
        }
    }
}

/// Accept a session offered to this technician: their console will prove
/// this key. The answer is a [`PickedSession`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcceptTransfer {
    /// Hex SHA-256 of the new console session certificate's SPKI.
    pub console_pin: String,
}

impl AcceptTransfer {
    /// The console key, checked to be 64 hex digits.
    pub fn check(&self) -> Result<[u8; 32], BadRequest> {
        PickSession {
            guid: None,
            console_pin: self.console_pin.clone(),
        }
        .check()
    }
}

/// Where a session's transfer is, in its [`SessionInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferInfo {
    /// The e-mail of the technician it is offered to.
    pub to: String,
    /// Their display name.
    pub to_name: String,
    /// Hex key their console will prove, once they accepted.
    #[serde(default)]
    pub console_pin: Option<String>,
}

/// End a session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndSession {
    /// Why, for the audit trail.
    #[serde(default)]
    pub reason: String,
}

impl EndSession {
    /// The reason as it is stored: trimmed, at most [`MAX_END_REASON`]
    /// bytes, and [`crate::text::neutralize`]d — it is shown in the
    /// operator's terminal by `gateway admin audit`, where an escape
    /// sequence could forge rows or retitle the window. `None` if empty.
    pub fn reason_text(&self) -> Option<String> {
        let r = crate::text::neutralize(self.reason.trim());
        let r = crate::codec::clamp_str(&r, MAX_END_REASON).trim_end();
        (!r.is_empty()).then(|| r.to_owned())
    }
}

/// The console reports which path the session's traffic takes (relay,
/// direct TCP, XTCP over UDP), before it closes the relay after a cutover,
/// or why it stays on the relay. The gateway audits it; after a report of
/// a direct path, the relay closing no longer ends the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathReport {
    /// `relay`, `tcp` or `udp` (see [`PATHS`]).
    pub path: String,
    /// Round-trip time measured on it, in milliseconds.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// Details for the audit trail: the addresses used, or why no direct
    /// path was found (at most [`MAX_PATH_DETAIL`] bytes).
    #[serde(default)]
    pub detail: String,
}

/// The values [`PathReport::path`] may take (see [`crate::path::PathKind`]).
pub const PATHS: [&str; 3] = [
    crate::path::PathKind::Relay.as_str(),
    crate::path::PathKind::DirectTcp.as_str(),
    crate::path::PathKind::XtcpUdp.as_str(),
];
/// Longest [`PathReport::detail`] accepted.
pub const MAX_PATH_DETAIL: usize = 512;

impl PathReport {
    /// Checks the report: a known path, a detail of at most
    /// [`MAX_PATH_DETAIL`] bytes, a finite non-negative round-trip time.
    pub fn check(&self) -> Result<(), BadRequest> {
        if !PATHS.contains(&self.path.as_str()) {
            return Err(BadRequest(format!(
                "path must be one of {}, not {:?}",
                PATHS.join(", "),
                crate::codec::clamp_str(&self.path, 32)
            )));
        }
        if self.detail.len() > MAX_PATH_DETAIL {
            return Err(BadRequest(format!(
                "detail must be at most {MAX_PATH_DETAIL} bytes (got {})",
                self.detail.len()
            )));
        }
        if let Some(rtt) = self.rtt_ms
            && !(rtt.is_finite() && rtt >= 0.0)
        {
            return Err(BadRequest(
                "rtt_ms must be a finite number of milliseconds, zero or more".into(),
            ));
        }
        Ok(())
    }
}

/// The console tells the gateway what remote work happened in a session,
/// for the audit trail: a consent decision, a file transfer's end, or an
/// action (a shell, a command, system information, a URL, a listing). The
/// end user's applet decides every consent and the gateway never sees the
/// session's content: this is the console's account of it, recorded as
/// the technician's. Tagged by `kind`:
///
/// ```json
/// {"kind":"consent","capability":"run-command","decision":"granted","whole_session":true}
/// {"kind":"file","direction":"to_user","name":"a/b.txt","size":1048576,"sha256":"<64 hex>","outcome":"saved","detail":""}
/// {"kind":"action","what":"command_run","detail":"ls -la /tmp"}
/// ```
///
/// Text (`name`, `detail`) is kept as given, whatever characters it holds
/// (a file may be named anything); whoever shows it neutralizes it
/// ([`crate::text`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkReport {
    /// A consent decision, as the applet reported it.
    Consent {
        /// The capability, or a comma-separated set for the single prompt
        /// (names of [`Permissions`]: `run-command`, `file-to-user`,
        /// `file-from-user`, `system-info`, `open-url`, ...).
        capability: String,
        /// What was decided.
        decision: Decision,
        /// For the whole session (the single prompt).
        whole_session: bool,
    },
    /// A file transfer ended (or failed, or was refused or stopped).
    File {
        /// Which way.
        direction: FileDirection,
        /// The file's path below the transfer's top, as the console saw it
        /// (at most [`MAX_WORK_NAME`] bytes).
        name: String,
        /// Its size in bytes.
        size: u64,
        /// SHA-256 of the whole file, 64 lower-case hex digits, or "" if
        /// the transfer ended before its last byte (a saved file has one).
        sha256: String,
        /// How it ended.
        outcome: FileOutcome,
        /// What went wrong, or "" (at most [`MAX_FILE_DETAIL`] bytes).
        #[serde(default)]
        detail: String,
    },
    /// Something was done on the end user's machine.
    Action {
        /// What.
        what: WorkAction,
        /// The command line, the URL, the folder; a shell's exit status
        /// (at most [`MAX_ACTION_DETAIL`] bytes, may be "").
        #[serde(default)]
        detail: String,
    },
}

/// Which way a file went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileDirection {
    /// From the technician to the end user.
    ToUser,
    /// From the end user to the technician.
    FromUser,
}

impl FileDirection {
    /// In words for the audit trail: `to user`, `from user`.
    pub fn words(self) -> &'static str {
        match self {
            FileDirection::ToUser => "to user",
            FileDirection::FromUser => "from user",
        }
    }
}

/// How a file transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOutcome {
    /// Received whole, its SHA-256 matched, in place.
    Saved,
    /// Something went wrong (see the detail).
    Failed,
    /// The receiver (or the end user) refused it.
    Refused,
    /// Stopped before its end (by either side).
    Stopped,
}

impl FileOutcome {
    /// The wire name: `saved`, `failed`, `refused`, `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileOutcome::Saved => "saved",
            FileOutcome::Failed => "failed",
            FileOutcome::Refused => "refused",
            FileOutcome::Stopped => "stopped",
        }
    }
}

/// What a [`WorkReport::Action`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkAction {
    /// A shell started.
    ShellOpened,
    /// A shell ended (the detail: its exit status).
    ShellClosed,
    /// A command ran (the detail: its command line).
    CommandRun,
    /// The machine was described.
    SystemInfo,
    /// A URL was opened in the end user's browser (the detail: the URL).
    UrlOpened,
    /// A folder was listed (the detail: the folder).
    Listing,
}

impl WorkAction {
    /// In words for the audit trail: `shell opened`, `command run`, ...
    pub fn words(self) -> &'static str {
        match self {
            WorkAction::ShellOpened => "shell opened",
            WorkAction::ShellClosed => "shell closed",
            WorkAction::CommandRun => "command run",
            WorkAction::SystemInfo => "system info",
            WorkAction::UrlOpened => "URL opened",
            WorkAction::Listing => "listing",
        }
    }
}

/// Longest [`WorkReport::File`] name.
pub const MAX_WORK_NAME: usize = 1024;
/// Longest [`WorkReport::File`] detail.
pub const MAX_FILE_DETAIL: usize = 256;
/// Longest [`WorkReport::Action`] detail.
pub const MAX_ACTION_DETAIL: usize = 1024;
/// Longest [`WorkReport::Consent`] capability list.
pub const MAX_CAPABILITY: usize = 256;
/// Work records a gateway keeps per session; beyond, reports are refused
/// (429) so that a console cannot flood the audit trail.
pub const MAX_WORK_RECORDS: u64 = 10_000;

impl WorkReport {
    /// The report's kind, as on the wire: `consent`, `file`, `action`.
    pub fn kind(&self) -> &'static str {
        match self {
            WorkReport::Consent { .. } => "consent",
            WorkReport::File { .. } => "file",
            WorkReport::Action { .. } => "action",
        }
    }

    /// Checks the report: a consent names known capabilities (one, or a
    /// set; not `all`, `none` or `single-prompt`), a file has a name and
    /// its SHA-256 is 64 lower-case hex digits or "" (not for a saved
    /// file), and no text is longer than its limit
    /// ([`MAX_CAPABILITY`], [`MAX_WORK_NAME`], [`MAX_FILE_DETAIL`],
    /// [`MAX_ACTION_DETAIL`]). Unknown kinds, decisions, directions,
    /// outcomes and actions are refused when the body is parsed.
    pub fn check(&self) -> Result<(), BadRequest> {
        let too_long = |what: &str, max: usize, len: usize| {
            Err(BadRequest(format!(
                "{what} must be at most {max} bytes (got {len})"
            )))
        };
        match self {
            WorkReport::Consent { capability, .. } => {
                if capability.len() > MAX_CAPABILITY {
                    return too_long("capability", MAX_CAPABILITY, capability.len());
                }
                Self::capabilities_of(capability).map(|_| ())
            }
            WorkReport::File {
                name,
                sha256,
                outcome,
                detail,
                ..
            } => {
                if name.is_empty() {
                    return Err(BadRequest("name must not be empty".into()));
                }
                if name.len() > MAX_WORK_NAME {
                    return too_long("name", MAX_WORK_NAME, name.len());
                }
                if !(sha256.is_empty()
                    || (sha256.len() == 64
                        && sha256
                            .bytes()
                            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))))
                {
                    return Err(BadRequest(format!(
                        "sha256 must be 64 lower-case hex digits, or \"\" if the transfer \
                         ended early (got {} characters)",
                        sha256.chars().count()
                    )));
                }
                if *outcome == FileOutcome::Saved && sha256.is_empty() {
                    return Err(BadRequest(
                        "a saved file's report must carry its sha256".into(),
                    ));
                }
                if detail.len() > MAX_FILE_DETAIL {
                    return too_long("detail", MAX_FILE_DETAIL, detail.len());
                }
                Ok(())
            }
            WorkReport::Action { detail, .. } => {
                if detail.len() > MAX_ACTION_DETAIL {
                    return too_long("detail", MAX_ACTION_DETAIL, detail.len());
                }
                Ok(())
            }
        }
    }

    /// The capabilities a consent is about (for a checked report); none
    /// for the other kinds.
    pub fn capabilities(&self) -> Permissions {
        match self {
            WorkReport::Consent { capability, .. } => {
                Self::capabilities_of(capability).unwrap_or(Permissions::NONE)
            }
            _ => Permissions::NONE,
        }
    }

    fn capabilities_of(list: &str) -> Result<Permissions, BadRequest> {
        let known = || {
            Permissions::ALL
                .each()
                .map(Permissions::name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut caps = Permissions::NONE;
        for name in list.split(',').map(str::trim) {
            let one = Permissions::parse_list(name).unwrap_or(Permissions::NONE);
            // One capability by its own name: not `all`, `none`, the
            // single-prompt policy or an empty item.
            if one.name().is_empty() || one.capabilities() != one {
                return Err(BadRequest(format!(
                    "capability must name one or more of {} (comma-separated), not {:?}",
                    known(),
                    crate::codec::clamp_str(name, 32)
                )));
            }
            caps = caps.union(one);
        }
        Ok(caps)
    }

    /// The report with its texts cut to their limits (at a character
    /// boundary), so that a report is never refused for a long file name
    /// or command line: what a console sends.
    pub fn clamped(&self) -> Self {
        let clamp = |s: &str, max: usize| crate::codec::clamp_str(s, max).to_owned();
        match self {
            WorkReport::Consent { .. } => self.clone(),
            WorkReport::File {
                direction,
                name,
                size,
                sha256,
                outcome,
                detail,
            } => WorkReport::File {
                direction: *direction,
                name: clamp(name, MAX_WORK_NAME),
                size: *size,
                sha256: sha256.clone(),
                outcome: *outcome,
                detail: clamp(detail, MAX_FILE_DETAIL),
            },
            WorkReport::Action { what, detail } => WorkReport::Action {
                what: *what,
                detail: clamp(detail, MAX_ACTION_DETAIL),
            },
        }
    }
}

/// The answer to a [`WorkReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkRecorded {
    /// Always true: the report is in the audit trail.
    pub recorded: bool,
}

/// A session as the portal reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session GUID.
    pub guid: SessionGuid,
    /// Its label ("" when none).
    pub label: String,
    /// Technician e-mail.
    pub technician: String,
    /// `created`, `waiting`, `paired`, `direct` (paired, traffic on a
    /// direct path) or `ended`.
    pub state: String,
    /// Creation time (Unix ms).
    pub created_at_ms: i64,
    /// Expiry (Unix ms).
    pub expires_at_ms: i64,
    /// Whether the one-time applet download happened.
    pub downloaded: bool,
    /// Permissions beyond chat, as text.
    pub permissions: String,
    /// Since when the end user waits (Unix ms), if waiting.
    pub waiting_since_ms: Option<i64>,
    /// The applet's address as the gateway saw it, if waiting.
    pub waiting_from: Option<String>,
    /// Name of the node the applet waits on.
    pub waiting_node: Option<String>,
    /// Relay address (`host:port`) of that node.
    pub waiting_node_addr: Option<String>,
    /// How it ended, if it did.
    pub ended_reason: Option<String>,
    /// The path last reported by the console (`relay`, `tcp`, `udp`).
    #[serde(default)]
    pub path: Option<String>,
    /// The session's PIN for the web page, in the answer that created it
    /// (shown once: the store keeps it only until it is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Until when the PIN works (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_expires_at_ms: Option<i64>,
    /// The path of the session's one-time link on the gateway's web page
    /// (`/s/TOKEN`), in the answer that created it (shown once: the store
    /// keeps only the token's hash). It works until used or the session
    /// expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The channel a session came through (it waits in the group's queue
    /// until a technician picks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// What the end user wrote about their problem on the channel's page.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub problem: String,
    /// The holder's display name.
    #[serde(default)]
    pub technician_name: String,
    /// An offer to hand the session to another technician.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferInfo>,
}

/// A list of sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionList {
    /// The sessions.
    pub sessions: Vec<SessionInfo>,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable machine-readable code (`locked`, `bad_credentials`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub error: String,
    /// For `locked` and `rate_limited`: seconds until a retry can work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// Health of a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Node name.
    pub node: String,
    /// `ok` or `draining`.
    pub status: String,
    /// Applets waiting on this node.
    pub waiting: u64,
    /// Sessions being relayed by this node.
    pub relaying: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(b"Bearer abc123"), Some("abc123"));
        assert_eq!(bearer_token(b"bearer  abc "), Some("abc"));
        for bad in [
            &b"Basic abc"[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"\xffBearer x",
            b"Bearer \x1b",
        ] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn query_params() {
        assert_eq!(
            query_param("platform=linux-x86_64", "platform"),
            Some("linux-x86_64")
        );
        assert_eq!(query_param("a=1&platform=x", "platform"), Some("x"));
        assert_eq!(query_param("platforms=x", "platform"), None);
        assert_eq!(query_param("", "platform"), None);
    }

    fn create(label: Option<&str>, ttl: Option<u64>) -> CreateSession {
        CreateSession {
            label: label.map(str::to_owned),
            console_pin: "11".repeat(32),
            applet_secret: "22".repeat(32),
            expires_in_secs: ttl,
            pin: false,
            link: false,
        }
    }

    #[test]
    fn create_session_checks() {
        let ok = create(Some(" printer "), None).check(60).unwrap();
        assert_eq!((ok.label.as_str(), ok.ttl_secs), ("printer", 60));
        assert_eq!(create(None, Some(5)).check(60).unwrap().label, "");
        for bad in [
            create(Some("a\u{202e}b"), None),
            create(Some("zero\u{200b}width"), None),
            create(Some("line\u{2028}sep"), None),
            create(Some("esc\x1b[2J"), None),
            create(Some(&"x".repeat(129)), None),
            create(None, Some(0)),
            create(None, Some(MAX_SESSION_TTL_SECS + 1)),
        ] {
            assert!(bad.check(60).is_err(), "{bad:?}");
        }
        let mut short_pin = create(None, None);
        short_pin.console_pin = "11".into();
        assert!(short_pin.check(60).is_err());
    }

    #[test]
    fn reissue_checks() {
        let r = |secret: &str| {
            serde_json::from_str::<ReissueApplet>(&format!(r#"{{"applet_secret":"{secret}"}}"#))
                .unwrap()
                .check()
        };
        assert_eq!(r(&"2a".repeat(32)), Ok([0x2a; 32]));
        for bad in ["", "2a", &"2a".repeat(33), &"zz".repeat(32)] {
            assert!(r(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<ReissueApplet>("{}").is_err());
    }

    #[test]
    fn end_reasons_are_neutralized_and_clamped() {
        let r = |s: &str| EndSession { reason: s.into() }.reason_text();
        assert_eq!(r("  "), None);
        assert_eq!(r(" done "), Some("done".into()));
        assert_eq!(
            r("\x1b]0;owned\x07\x1b[2Kfake row"),
            Some("\\e]0;owned\\x07\\e[2Kfake row".into())
        );
        assert!(r(&"\x1b".repeat(300)).unwrap().len() <= MAX_END_REASON);
    }

    #[test]
    fn path_reports() {
        let p = |path: &str, rtt: Option<f64>, detail: &str| PathReport {
            path: path.into(),
            rtt_ms: rtt,
            detail: detail.into(),
        };
        assert!(p("tcp", Some(0.4), "x").check().is_ok());
        assert!(p("quic", None, "").check().is_err());
        assert!(p("udp", Some(f64::NAN), "").check().is_err());
        assert!(p("udp", Some(-1.0), "").check().is_err());
        assert!(p("relay", None, &"x".repeat(513)).check().is_err());
    }

    fn work(json: &str) -> Result<WorkReport, String> {
        let r: WorkReport = serde_json::from_str(json).map_err(|e| e.to_string())?;
        r.check().map_err(|e| e.0)?;
        Ok(r)
    }

    #[test]
    fn work_reports_of_each_kind_are_accepted() {
        let r = work(
            r#"{"kind":"consent","capability":"run-command","decision":"granted","whole_session":false}"#,
        )
        .unwrap();
        assert_eq!(r.capabilities(), Permissions::RUN_COMMAND);
        let r = work(
            r#"{"kind":"consent","capability":"file-to-user, open-url,system-info","decision":"timed_out","whole_session":true}"#,
        )
        .unwrap();
        assert_eq!(
            r.capabilities(),
            Permissions::parse_list("system-info,file-to-user,open-url").unwrap()
        );
        let sha = "ab".repeat(32);
        let r = work(&format!(
            r#"{{"kind":"file","direction":"from_user","name":"a/b.txt","size":18446744073709551615,"sha256":"{sha}","outcome":"saved"}}"#
        ))
        .unwrap();
        assert!(
            matches!(r, WorkReport::File { size: u64::MAX, ref detail, .. } if detail.is_empty())
        );
        // A failed transfer has no hash; a name may hold any character.
        work(r#"{"kind":"file","direction":"to_user","name":"x\u001b[2J\u202e.txt","size":5,"sha256":"","outcome":"failed","detail":"disk full"}"#).unwrap();
        for what in [
            "shell_opened",
            "shell_closed",
            "command_run",
            "system_info",
            "url_opened",
            "listing",
        ] {
            let r = work(&format!(r#"{{"kind":"action","what":"{what}"}}"#)).unwrap();
            assert_eq!(serde_json::to_value(&r).unwrap()["what"], what);
            assert_eq!(r.kind(), "action");
        }
        // What a console sends reads back the same.
        let r = WorkReport::Action {
            what: WorkAction::CommandRun,
            detail: "ls -la".into(),
        };
        assert_eq!(work(&serde_json::to_string(&r).unwrap()).unwrap(), r);
    }

    #[test]
    fn bad_work_reports_are_refused_with_a_reason() {
        let sha = "ab".repeat(32);
        let file = |name: &str, sha: &str, outcome: &str, detail: &str| {
            format!(
                r#"{{"kind":"file","direction":"to_user","name":{},"size":1,"sha256":"{sha}","outcome":"{outcome}","detail":{}}}"#,
                serde_json::to_string(name).unwrap(),
                serde_json::to_string(detail).unwrap()
            )
        };
        let cases = [
            (r#"{"kind":"reboot"}"#.to_owned(), "unknown variant `reboot`"),
            (
                r#"{"kind":"consent","capability":"run-command","decision":"maybe","whole_session":false}"#.into(),
                "unknown variant `maybe`",
            ),
            (
                r#"{"kind":"consent","capability":"fly","decision":"granted","whole_session":false}"#.into(),
                "capability must name one or more of",
            ),
            (
                r#"{"kind":"consent","capability":"all","decision":"granted","whole_session":true}"#.into(),
                r#"not "all""#,
            ),
            (
                r#"{"kind":"consent","capability":"run-command,single-prompt","decision":"granted","whole_session":true}"#.into(),
                r#"not "single-prompt""#,
            ),
            (
                r#"{"kind":"consent","capability":"","decision":"granted","whole_session":true}"#.into(),
                "capability must name",
            ),
            (
                format!(
                    r#"{{"kind":"consent","capability":"{}","decision":"granted","whole_session":true}}"#,
                    "run-command,".repeat(30)
                ),
                "capability must be at most 256 bytes",
            ),
            (
                r#"{"kind":"consent","capability":"run-command","decision":"granted"}"#.into(),
                "missing field `whole_session`",
            ),
            (file("a", &"a".repeat(65), "saved", ""), "sha256 must be 64 lower-case hex digits"),
            (file("a", &"A".repeat(64), "saved", ""), "sha256 must be 64"),
            (file("a", &"g".repeat(64), "saved", ""), "sha256 must be 64"),
            (file("a", "", "saved", ""), "a saved file's report must carry its sha256"),
            (file(&"n".repeat(1025), &sha, "saved", ""), "name must be at most 1024 bytes (got 1025)"),
            (file("", &sha, "saved", ""), "name must not be empty"),
            (file("a", &sha, "lost", ""), "unknown variant `lost`"),
            (file("a", &sha, "saved", &"d".repeat(257)), "detail must be at most 256 bytes"),
            (
                r#"{"kind":"file","direction":"sideways","name":"a","size":1,"sha256":"","outcome":"failed"}"#.into(),
                "unknown variant `sideways`",
            ),
            (
                r#"{"kind":"file","direction":"to_user","name":"a","size":-1,"sha256":"","outcome":"failed"}"#.into(),
                "invalid value",
            ),
            (r#"{"kind":"action","what":"reboot"}"#.into(), "unknown variant `reboot`"),
            (
                format!(r#"{{"kind":"action","what":"command_run","detail":"{}"}}"#, "c".repeat(1025)),
                "detail must be at most 1024 bytes",
            ),
        ];
        for (json, why) in cases {
            let e = work(&json).unwrap_err();
            assert!(e.contains(why), "{json}: {e}");
        }
        // At the limits: accepted.
        work(&file(&"n".repeat(1024), &sha, "saved", &"d".repeat(256))).unwrap();
        work(&format!(
            r#"{{"kind":"action","what":"listing","detail":"{}"}}"#,
            "c".repeat(1024)
        ))
        .unwrap();
    }

    #[test]
    fn a_console_clamps_long_texts_at_a_character_boundary() {
        let r = WorkReport::File {
            direction: FileDirection::ToUser,
            name: "é".repeat(600),
            size: 1,
            sha256: String::new(),
            outcome: FileOutcome::Stopped,
            detail: "ü".repeat(200),
        };
        assert!(r.check().is_err());
        let c = r.clamped();
        c.check().unwrap();
        let WorkReport::File { name, detail, .. } = &c else {
            unreachable!()
        };
        assert_eq!((name.len(), detail.len()), (1024, 256));
        let a = WorkReport::Action {
            what: WorkAction::UrlOpened,
            detail: "u".repeat(5000),
        };
        assert!(
            matches!(a.clamped(), WorkReport::Action { detail, .. } if detail.len() == MAX_ACTION_DETAIL)
        );
    }
}
