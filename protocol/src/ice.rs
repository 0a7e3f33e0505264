//! The ICE offer the ends exchange over the relayed session before they
//! punch holes for a UDP path: credentials and candidate lines.
//!
//! It travels inside [`crate::e2e::Negotiation::IceOffer`]; [`IceOffer::check`]
//! is what a receiver runs on it before any of it reaches an ICE agent —
//! the peer is authenticated, but a bug or a compromised end must not get
//! unbounded or malformed input into the agent's parser.

/// Most candidates an offer may carry (a host has few interfaces; this
/// bounds what a peer can make us parse and probe).
pub const MAX_CANDIDATES: usize = 32;
/// Longest credential or candidate line.
pub const MAX_TEXT: usize = 256;

/// What one end sends the other so they can run ICE: credentials and
/// candidates, in the SDP `candidate` attribute syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceOffer {
    /// ICE username fragment.
    pub ufrag: String,
    /// ICE password.
    pub pwd: String,
    /// Candidate lines (`candidate:…` without the `a=` prefix).
    pub candidates: Vec<String>,
}

/// Why an offer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The username fragment is not 4–256 ice-chars.
    #[error("bad username fragment")]
    Ufrag,
    /// The password is not 22–256 ice-chars.
    #[error("bad password")]
    Pwd,
    /// No candidates, or more than [`MAX_CANDIDATES`].
    #[error("no candidates, or too many")]
    CandidateCount,
    /// A candidate line is too long, empty, or not printable ASCII.
    #[error("candidate line too long, empty or not printable ASCII")]
    Candidate,
}

/// RFC 8445 §5.3: ice-char = ALPHA / DIGIT / "+" / "/".
fn ice_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

impl IceOffer {
    /// Checks the offer's shape: ufrag ≥ 4 and pwd ≥ 22 ice-chars (RFC
    /// 8445 §5.3), 1 to [`MAX_CANDIDATES`] candidate lines of printable
    /// ASCII, nothing longer than [`MAX_TEXT`].
    pub fn check(&self) -> Result<(), OfferError> {
        if !(4..=MAX_TEXT).contains(&self.ufrag.len()) || !ice_chars(&self.ufrag) {
            return Err(OfferError::Ufrag);
        }
        if !(22..=MAX_TEXT).contains(&self.pwd.len()) || !ice_chars(&self.pwd) {
            return Err(OfferError::Pwd);
        }
        if self.candidates.is_empty() || self.candidates.len() > MAX_CANDIDATES {
            return Err(OfferError::CandidateCount);
        }
        if self.candidates.iter().any(|c| {
            c.is_empty()
                || c.len() > MAX_TEXT
                || !c.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        }) {
            return Err(OfferError::Candidate);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> IceOffer {
        IceOffer {
            ufrag: "abcd".into(),
            pwd: "a".repeat(22),
            candidates: vec!["candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host".into()],
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(good().check(), Ok(()));
        type Edit = fn(&mut IceOffer);
        let cases: [(Edit, OfferError); 7] = [
            (|o| o.ufrag = "abc".into(), OfferError::Ufrag),
            (|o| o.ufrag = "ab d".into(), OfferError::Ufrag),
            (|o| o.pwd = "a".repeat(21), OfferError::Pwd),
            (|o| o.candidates.clear(), OfferError::CandidateCount),
            (
                |o| o.candidates = vec!["c".into(); 33],
                OfferError::CandidateCount,
            ),
            (|o| o.candidates[0] = "x".repeat(257), OfferError::Candidate),
            (
                |o| o.candidates[0] = "candidate:1\n".into(),
                OfferError::Candidate,
            ),
        ];
        for (edit, want) in cases {
            let mut o = good();
            edit(&mut o);
            assert_eq!(o.check(), Err(want), "{o:?}");
        }
    }
}
