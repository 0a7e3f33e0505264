//! JSON bodies of the portal HTTP API (`/api/v1/...`).
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | POST | `/api/v1/login` | [`LoginRequest`] → [`LoginResponse`] |
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
//! `Authorization: Bearer TOKEN`. Errors are [`ApiError`] with an HTTP status.

use crate::guid::SessionGuid;
use serde::{Deserialize, Serialize};

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

/// End a session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndSession {
    /// Why, for the audit trail.
    #[serde(default)]
    pub reason: String,
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

/// The values [`PathReport::path`] may take.
pub const PATHS: [&str; 3] = ["relay", "tcp", "udp"];
/// Longest [`PathReport::detail`] accepted.
pub const MAX_PATH_DETAIL: usize = 512;

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
