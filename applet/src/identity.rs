//! Who this applet is: the signed trailer on its own executable.

use lifeline_protocol::trailer::{SignedTrailer, TrailerBody, TrailerError};

/// The operator key pinned at build time (`LIFELINE_OPERATOR_KEY`, 64 hex
/// digits). A build without it is a development build.
pub const PINNED_OPERATOR_KEY: Option<&str> = option_env!("LIFELINE_OPERATOR_KEY");

/// Why the applet cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Our own file could not be read.
    #[error(
        "This support program could not read its own file. Please ask your technician for a new one."
    )]
    ReadSelf(std::io::Error),
    /// The trailer was refused.
    #[error("{}", .0.user_message())]
    Trailer(TrailerError),
    /// The build is misconfigured.
    #[error("This build of the support program is misconfigured: {0}")]
    Build(String),
}

impl StartError {
    /// What the end user is told.
    pub fn cannot_start(&self) -> crate::words::CannotStart {
        use crate::words::CannotStart;
        match self {
            StartError::ReadSelf(_) => CannotStart::CannotReadItself,
            StartError::Build(_) => CannotStart::Misconfigured,
            StartError::Trailer(TrailerError::Missing | TrailerError::Truncated) => {
                CannotStart::Incomplete
            }
            StartError::Trailer(TrailerError::Expired { at_ms }) => {
                CannotStart::Expired(lifeline_protocol::time::rfc3339(*at_ms as i64))
            }
            StartError::Trailer(_) => CannotStart::Tampered,
        }
    }

    /// Whether the program should remove itself after saying why it cannot
    /// start: it expired, or it was changed (its file still holds the
    /// session's secret). A file without any trailer — a stock applet that
    /// was never personalized — is left alone.
    pub fn removes_the_program(&self) -> bool {
        matches!(
            self,
            StartError::Trailer(
                TrailerError::Expired { .. }
                    | TrailerError::Truncated
                    | TrailerError::Malformed(_)
                    | TrailerError::BadSignature
                    | TrailerError::ImageMismatch
            )
        )
    }
}

/// A verified trailer and how it was trusted.
#[derive(Debug, Clone)]
pub struct Identity {
    /// What the trailer says.
    pub body: TrailerBody,
    /// Whether the operator key came from the trailer itself.
    pub development_build: bool,
}

/// Reads and verifies the trailer of the file at `path` (our executable).
pub fn load(path: &std::path::Path, now_ms: u64) -> Result<Identity, StartError> {
    let bytes = std::fs::read(path).map_err(StartError::ReadSelf)?;
    verify(&bytes, now_ms)
}

/// Verifies the trailer at the end of `file` with this build's trust.
pub fn verify(file: &[u8], now_ms: u64) -> Result<Identity, StartError> {
    verify_with(file, now_ms, PINNED_OPERATOR_KEY)
}

/// Verifies with an explicit pinned key (hex), or as a development build
/// when `None`.
pub fn verify_with(file: &[u8], now_ms: u64, pinned: Option<&str>) -> Result<Identity, StartError> {
    let trailer = SignedTrailer::find(file).map_err(StartError::Trailer)?;
    let (key, development_build) = match pinned {
        Some(hex) => (
            lifeline_protocol::hex::decode_array::<32>(hex).ok_or_else(|| {
                StartError::Build("LIFELINE_OPERATOR_KEY is not 64 hex digits".into())
            })?,
            false,
        ),
        None => (trailer.claimed_key().map_err(StartError::Trailer)?, true),
    };
    let body = trailer.verify(&key, now_ms).map_err(StartError::Trailer)?;
    Ok(Identity {
        body,
        development_build,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use lifeline_protocol::{Permissions, SessionGuid};
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn personalized(seed: u8) -> (Vec<u8>, String) {
        let key = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let mut pk = [0u8; 32];
        pk.copy_from_slice(key.public_key().as_ref());
        let body = TrailerBody {
            guid: SessionGuid::from_bytes([1; 16]),
            operator_name: "Example IT".into(),
            directory_urls: vec!["https://127.0.0.1:1/api/v1/directory".into()],
            operator_ca_der: vec![1, 2, 3],
            operator_key: pk,
            console_pin: Some([2; 32]),
            applet_secret: [3; 32],
            expires_at_ms: 10_000,
            permissions: Permissions::NONE,
            technician_name: "Ada".into(),
            label: String::new(),
            image_sha256: ring::digest::digest(&ring::digest::SHA256, b"stock")
                .as_ref()
                .try_into()
                .unwrap(),
        };
        let mut file = b"stock".to_vec();
        file.extend(body.to_trailer(|m| key.sign(m).as_ref().try_into().unwrap()));
        (file, lifeline_protocol::hex::encode(&pk))
    }

    #[test]
    fn development_build_trusts_the_trailer_key_and_says_so() {
        let (file, _) = personalized(7);
        let id = verify_with(&file, 0, None).unwrap();
        assert!(id.development_build);
    }

    #[test]
    fn pinned_build_refuses_a_trailer_signed_by_anyone_else() {
        let (file, operator) = personalized(7);
        let id = verify_with(&file, 0, Some(&operator)).unwrap();
        assert!(!id.development_build);
        // A self-consistent trailer signed by an attacker's key.
        let (forged, _) = personalized(8);
        let err = verify_with(&forged, 0, Some(&operator)).unwrap_err();
        assert!(
            matches!(err, StartError::Trailer(TrailerError::BadSignature)),
            "{err}"
        );
        assert!(err.to_string().contains("changed since it was issued"));
        assert!(matches!(
            verify_with(&file, 0, Some("zz")),
            Err(StartError::Build(_))
        ));
    }
}
