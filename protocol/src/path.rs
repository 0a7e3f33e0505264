//! Which kind of path carries a session: the gateway's relay, a direct TCP
//! connection, or XTCP over a UDP path found by ICE. One type for the
//! session, the console's report to the portal, and the store.

use std::fmt;

/// Which kind of path carries the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// Through the gateway.
    Relay,
    /// A direct TCP connection between the ends.
    DirectTcp,
    /// XTCP over a UDP path found by ICE.
    XtcpUdp,
}

impl PathKind {
    /// Every kind, in order of preference.
    pub const ALL: [PathKind; 3] = [PathKind::Relay, PathKind::DirectTcp, PathKind::XtcpUdp];

    /// Short name: `relay`, `tcp`, `udp` (command line, events, the portal's
    /// path report, the store).
    pub const fn as_str(self) -> &'static str {
        match self {
            PathKind::Relay => "relay",
            PathKind::DirectTcp => "tcp",
            PathKind::XtcpUdp => "udp",
        }
    }

    /// The kind named `s` (its [`as_str`](Self::as_str)), if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The path as the subject of a sentence: `the relay connection`,
    /// `the direct TCP path`, `the direct UDP path`.
    pub const fn describe(self) -> &'static str {
        match self {
            PathKind::Relay => "the relay connection",
            PathKind::DirectTcp => "the direct TCP path",
            PathKind::XtcpUdp => "the direct UDP path",
        }
    }

    /// Whether the path bypasses the gateway.
    pub fn is_direct(self) -> bool {
        self != PathKind::Relay
    }
}

/// For people: `relay`, `direct TCP`, `XTCP over UDP`.
impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathKind::Relay => "relay",
            PathKind::DirectTcp => "direct TCP",
            PathKind::XtcpUdp => "XTCP over UDP",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in PathKind::ALL {
            assert_eq!(PathKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(PathKind::parse("UDP"), None);
        assert!(!PathKind::Relay.is_direct() && PathKind::XtcpUdp.is_direct());
        assert_eq!(PathKind::DirectTcp.to_string(), "direct TCP");
    }
}
