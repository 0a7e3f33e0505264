//! JSON bodies of the portal HTTP API (`/api/v1/...`).
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | POST | `/api/v1/login` | [`LoginRequest`] → [`LoginResponse`] |
//! | POST | `/api/v1/logout` | → `{"logged_out": true}` (the token stops working) |
//! | POST | `/api/v1/sessions` | [`CreateSession`] → [`SessionInfo`] |
//! | GET | `/api/v1/sessions` | → [`SessionList`] (the caller's sessions, newest first) |
//! | GET | `/api/v1/sessions/waiting` | → [`SessionList`] (the caller's waiting sessions) |
//! | GET | `/api/v1/sessions/{guid}` | → [`SessionInfo`] |
//! | POST | `/api/v1/sessions/{guid}/end` | [`EndSession`] → [`SessionInfo`] |
//! | POST | `/api/v1/sessions/{guid}/path` | [`PathReport`] → [`SessionInfo`] |
//! | GET | `/api/v1/sessions/{guid}/applet?platform=P` | → the personalized executable, once |
//! | GET | `/api/v1/directory` | → [`crate::directory::SignedDirectory`] |
//! | GET | `/api/v1/health` | → [`Health`] |
//!
//! Everything but `login`, `directory` and `health` needs
//! `Authorization: Bearer TOKEN` ([`bearer_token`]). Errors are [`ApiError`]
//! with an HTTP status.
//!
//! The checks a gateway runs on request bodies live here with the types
//! ([`CreateSession::check`], [`PathReport::check`], [`EndSession::reason_text`]),
//! so that they are fuzzed with the parsers (`fuzz/`, target `portal`).

use crate::guid::SessionGuid;
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
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
    /// Lifetime in seconds (default and maximum set by the operator).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
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
}
