//! The signed trailer the portal appends to the stock applet binary.
//!
//! ```text
//! [ applet executable ][ body ][ signature: 64 ][ body_len: u32 ][ MAGIC: 8 ]
//! ```
//!
//! The signature is Ed25519 by the operator key over
//! [`SIGNING_CONTEXT`] ‖ body, and the body holds the SHA-256 of the
//! executable image in front of it, so the signature covers the program
//! too: a signed trailer moved onto another executable is refused.
//! Appending keeps the executable runnable on every platform (loaders
//! ignore bytes past the image) and means the portal never needs a
//! compiler. The body is a binary record, see [`TrailerBody`].

use crate::codec::{DecodeError, Reader, Writer, clamp_str};
use crate::guid::SessionGuid;
use crate::permissions::Permissions;
use ring::signature::{ED25519, UnparsedPublicKey};

/// Last eight bytes of a personalized applet.
pub const MAGIC: &[u8; 8] = b"LLTRLv02";
/// Domain separation for the signature.
pub const SIGNING_CONTEXT: &[u8] = b"lifeline applet trailer v2\0";
/// Bytes after the body: signature, length, magic.
pub const FOOTER_LEN: usize = 64 + 4 + MAGIC.len();
/// Largest body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Most gateway directory URLs in one trailer.
pub const MAX_DIRECTORY_URLS: usize = 8;
/// Largest operator CA certificate (DER).
pub const MAX_CA_DER: usize = 8192;

const BODY_VERSION: u8 = 3;

/// What a personalized applet knows about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailerBody {
    /// The session this applet joins.
    pub guid: SessionGuid,
    /// The operator's display name ("Example IT").
    pub operator_name: String,
    /// HTTPS URLs of the signed gateway directory, tried in order.
    pub directory_urls: Vec<String>,
    /// DER of the operator CA that every gateway certificate chains to.
    pub operator_ca_der: Vec<u8>,
    /// The operator's Ed25519 public key (trusted only by development builds;
    /// release builds pin it at build time).
    pub operator_key: [u8; 32],
    /// SHA-256 of the console session certificate's SubjectPublicKeyInfo;
    /// `None` for a channel's session, whose technician is not known when
    /// the applet is made: the gateway names the picking console's key
    /// when it pairs them ([`crate::relay::ServerMsg::Paired`]), once.
    pub console_pin: Option<[u8; 32]>,
    /// Secret the applet proves it holds, inside the end-to-end TLS.
    pub applet_secret: [u8; 32],
    /// Unix milliseconds after which the applet refuses to run.
    pub expires_at_ms: u64,
    /// What the technician may ask for beyond chat.
    pub permissions: Permissions,
    /// The technician's display name.
    pub technician_name: String,
    /// The session's label, if any.
    pub label: String,
    /// SHA-256 of the executable image the trailer is appended to.
    pub image_sha256: [u8; 32],
}

/// Why an executable's trailer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailerError {
    /// No trailer at the end of the file.
    #[error("no session trailer")]
    Missing,
    /// A footer is present but the file is shorter than it says.
    #[error("the session trailer is truncated")]
    Truncated,
    /// The body does not parse.
    #[error("the session trailer is malformed: {0}")]
    Malformed(DecodeError),
    /// The signature does not verify under the trusted key.
    #[error("the session trailer's signature is not valid")]
    BadSignature,
    /// The signed trailer belongs to another executable image.
    #[error("the program is not the one the session trailer was signed for")]
    ImageMismatch,
    /// The session has expired.
    #[error("the session expired")]
    Expired {
        /// When it expired (Unix ms).
        at_ms: u64,
    },
}

impl TrailerError {
    /// A sentence a non-technical end user understands.
    pub fn user_message(&self) -> String {
        match self {
            TrailerError::Missing | TrailerError::Truncated => {
                "This support program is incomplete: it was not prepared for a support \
                 session, or the download was cut short. Please ask your technician to \
                 send it again."
                    .into()
            }
            TrailerError::Malformed(_)
            | TrailerError::BadSignature
            | TrailerError::ImageMismatch => {
                "This support program has been changed since it was issued, so it is not \
                 safe to run. Please ask your technician for a new one."
                    .into()
            }
            TrailerError::Expired { at_ms } => format!(
                "This support session expired on {}. Please ask your technician for a new one.",
                crate::time::rfc3339(*at_ms as i64)
            ),
        }
    }
}

impl TrailerBody {
    /// Encodes the body (unsigned).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(BODY_VERSION);
        self.guid.write(&mut w);
        w.str16(clamp_str(&self.operator_name, 256));
        let urls = &self.directory_urls[..self.directory_urls.len().min(MAX_DIRECTORY_URLS)];
        w.u8(urls.len() as u8);
        for u in urls {
            w.str16(clamp_str(u, 1024));
        }
        assert!(self.operator_ca_der.len() <= MAX_CA_DER, "CA too large");
        w.bytes16(&self.operator_ca_der)
            .put(&self.operator_key)
            .u8(u8::from(self.console_pin.is_some()))
            .put(self.console_pin.as_ref().map_or(&[][..], |p| &p[..]))
            .put(&self.applet_secret)
            .u64(self.expires_at_ms)
            .u32(self.permissions.bits())
            .str16(clamp_str(&self.technician_name, 256))
            .str16(clamp_str(&self.label, 256))
            .put(&self.image_sha256);
        w.into_vec()
    }

    /// Decodes a complete body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        Self::read(&mut r).map_err(|e| match e {
            DecodeError::Incomplete => DecodeError::invalid("trailer", "body too short"),
            e => e,
        })
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.u8()? != BODY_VERSION {
            return Err(DecodeError::invalid("trailer", "unknown version"));
        }
        let guid = SessionGuid::read(r)?;
        let operator_name = r.str16("operator name", 256)?.to_owned();
        let n = usize::from(r.u8()?);
        if n == 0 || n > MAX_DIRECTORY_URLS {
            return Err(DecodeError::invalid("trailer", "bad directory URL count"));
        }
        let directory_urls = (0..n)
            .map(|_| r.str16("directory URL", 1024).map(str::to_owned))
            .collect::<Result<_, _>>()?;
        let body = TrailerBody {
            guid,
            operator_name,
            directory_urls,
            operator_ca_der: r.bytes16("operator CA", MAX_CA_DER)?.to_vec(),
            operator_key: r.array()?,
            console_pin: match r.u8()? {
                0 => None,
                1 => Some(r.array()?),
                _ => return Err(DecodeError::invalid("trailer", "bad console key flag")),
            },
            applet_secret: r.array()?,
            expires_at_ms: r.u64()?,
            permissions: Permissions::from_bits(r.u32()?),
            technician_name: r.str16("technician name", 256)?.to_owned(),
            label: r.str16("label", 256)?.to_owned(),
            image_sha256: r.array()?,
        };
        r.finish("trailer")?;
        Ok(body)
    }

    /// Body ‖ signature ‖ length ‖ magic, ready to append to an executable.
    /// `sign` receives the exact message to sign.
    pub fn to_trailer(&self, sign: impl FnOnce(&[u8]) -> [u8; 64]) -> Vec<u8> {
        let body = self.encode();
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(&body);
        let sig = sign(&msg);
        let mut w = Writer::new();
        w.put(&body).put(&sig).u32(body.len() as u32).put(MAGIC);
        w.into_vec()
    }
}

/// A trailer found at the end of a file, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTrailer<'a> {
    image: &'a [u8],
    body: &'a [u8],
    signature: &'a [u8],
    /// Length of the file before the trailer (the stock executable).
    pub image_len: usize,
}

impl<'a> SignedTrailer<'a> {
    /// Finds the trailer at the end of `file`.
    pub fn find(file: &'a [u8]) -> Result<Self, TrailerError> {
        if file.len() < MAGIC.len() || &file[file.len() - MAGIC.len()..] != MAGIC {
            return Err(TrailerError::Missing);
        }
        if file.len() < FOOTER_LEN {
            return Err(TrailerError::Truncated);
        }
        let footer_start = file.len() - FOOTER_LEN;
        let len_at = footer_start + 64;
        let body_len = u32::from_be_bytes(
            file[len_at..len_at + 4]
                .try_into()
                .map_err(|_| TrailerError::Truncated)?,
        ) as usize;
        if body_len > MAX_BODY {
            return Err(TrailerError::Malformed(DecodeError::invalid(
                "trailer",
                "body too long",
            )));
        }
        let image_len = footer_start
            .checked_sub(body_len)
            .ok_or(TrailerError::Truncated)?;
        Ok(SignedTrailer {
            image: &file[..image_len],
            body: &file[image_len..footer_start],
            signature: &file[footer_start..footer_start + 64],
            image_len,
        })
    }

    /// Checks the signature with `trusted_key`, decodes the body, checks
    /// that it was signed for the executable image in front of it, and
    /// checks expiry against `now_ms`.
    pub fn verify(&self, trusted_key: &[u8; 32], now_ms: u64) -> Result<TrailerBody, TrailerError> {
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(self.body);
        UnparsedPublicKey::new(&ED25519, trusted_key)
            .verify(&msg, self.signature)
            .map_err(|_| TrailerError::BadSignature)?;
        let body = TrailerBody::decode(self.body).map_err(TrailerError::Malformed)?;
        let image = ring::digest::digest(&ring::digest::SHA256, self.image);
        if !crate::proof::ct_eq(image.as_ref(), &body.image_sha256) {
            return Err(TrailerError::ImageMismatch);
        }
        if now_ms >= body.expires_at_ms {
            return Err(TrailerError::Expired {
                at_ms: body.expires_at_ms,
            });
        }
        Ok(body)
    }

    /// The operator key the body claims (for development builds that have
    /// no key pinned at build time). Decoding errors surface in [`verify`].
    ///
    /// [`verify`]: SignedTrailer::verify
    pub fn claimed_key(&self) -> Result<[u8; 32], TrailerError> {
        TrailerBody::decode(self.body)
            .map(|b| b.operator_key)
            .map_err(TrailerError::Malformed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    pub(crate) fn sample() -> TrailerBody {
        TrailerBody {
            guid: SessionGuid::from_bytes([1; 16]),
            operator_name: "Example IT".into(),
            directory_urls: vec!["https://127.0.0.1:8443/api/v1/directory".into()],
            operator_ca_der: vec![0x30, 0x03, 1, 2, 3],
            operator_key: [0; 32],
            console_pin: Some([2; 32]),
            applet_secret: [3; 32],
            expires_at_ms: 2_000,
            permissions: Permissions::ALL,
            technician_name: "Ada".into(),
            label: "printer".into(),
            image_sha256: [0; 32],
        }
    }

    fn key() -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap()
    }

    fn personalized() -> (Vec<u8>, [u8; 32]) {
        let k = key();
        let pk: [u8; 32] = k.public_key().as_ref().try_into().unwrap();
        let mut body = sample();
        body.operator_key = pk;
        let mut file = b"\x7fELF stock applet".to_vec();
        body.image_sha256 = sha256(&file);
        file.extend(body.to_trailer(|m| k.sign(m).as_ref().try_into().unwrap()));
        (file, pk)
    }

    #[test]
    fn personalize_then_verify() {
        let (file, pk) = personalized();
        let t = SignedTrailer::find(&file).unwrap();
        assert_eq!(t.image_len, 17);
        assert_eq!(t.claimed_key().unwrap(), pk);
        let body = t.verify(&pk, 1_000).unwrap();
        assert_eq!(body.label, "printer");
        assert_eq!(
            t.verify(&pk, 2_000),
            Err(TrailerError::Expired { at_ms: 2_000 })
        );
    }

    fn sha256(b: &[u8]) -> [u8; 32] {
        ring::digest::digest(&ring::digest::SHA256, b)
            .as_ref()
            .try_into()
            .unwrap()
    }

    #[test]
    fn a_trailer_moved_to_another_program_is_refused() {
        let (file, pk) = personalized();
        let mut moved = b"\x7fELF other program".to_vec();
        moved.extend_from_slice(&file[17..]);
        let t = SignedTrailer::find(&moved).unwrap();
        assert_eq!(t.verify(&pk, 1_000), Err(TrailerError::ImageMismatch));
        let mut patched = file.clone();
        patched[3] ^= 1;
        let t = SignedTrailer::find(&patched).unwrap();
        assert_eq!(t.verify(&pk, 1_000), Err(TrailerError::ImageMismatch));
    }

    #[test]
    fn tampering_truncation_and_absence_are_refused() {
        let (file, pk) = personalized();
        assert_eq!(
            SignedTrailer::find(b"plain binary"),
            Err(TrailerError::Missing)
        );
        assert_eq!(
            SignedTrailer::find(&file[..file.len() - 1]),
            Err(TrailerError::Missing)
        );
        let mut cut = file[file.len() - FOOTER_LEN..].to_vec();
        cut.splice(0..0, [0u8; 3]);
        assert_eq!(SignedTrailer::find(&cut), Err(TrailerError::Truncated));
        for i in 17..file.len() - FOOTER_LEN + 64 {
            let mut bad = file.clone();
            bad[i] ^= 0x40;
            let r = SignedTrailer::find(&bad).and_then(|t| t.verify(&pk, 1_000));
            assert_eq!(r, Err(TrailerError::BadSignature), "flip at {i}");
        }
        let other = [5u8; 32];
        assert!(
            SignedTrailer::find(&file)
                .unwrap()
                .verify(&other, 0)
                .is_err()
        );
    }
}
