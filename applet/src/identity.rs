//! Who this applet is: the signed trailer on its own executable.

use lifeline_protocol::trailer::{SignedTrailer, TrailerBody, TrailerError};

/// The operator key pinned at build time (`LIFELINE_OPERATOR_KEY`, 64 hex
/// digits). A build without it is a development build.
pub const PINNED_OPERATOR_KEY: Option<&str> = option_env!("LIFELINE_OPERATOR_KEY");

/// Why the applet cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Our own file could not be read.
    #[error("This support program could not read itself ({0}). Please download it again.")]
    ReadSelf(std::io::Error),
    /// The trailer was refused.
    #[error("{}", .0.user_message())]
    Trailer(TrailerError),
    /// The build is misconfigured.
    #[error("This build of the support program is misconfigured: {0}")]
    Build(String),
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

/// Verifies the trailer at the end of `file`.
pub fn verify(file: &[u8], now_ms: u64) -> Result<Identity, StartError> {
    let trailer = SignedTrailer::find(file).map_err(StartError::Trailer)?;
    let (key, development_build) = match PINNED_OPERATOR_KEY {
        Some(hex) => (
            lifeline_protocol::hex::decode_array::<32>(hex)
                .ok_or_else(|| StartError::Build("LIFELINE_OPERATOR_KEY is not 64 hex digits".into()))?,
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
