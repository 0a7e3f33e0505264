//! TLS 1.3 record protection after rustls's handshake.
//!
//! rustls does each outer handshake; once a connection is paired (or
//! waiting) the gateway takes its traffic keys over and protects records
//! itself. Why: a relayed record is opened in place and sealed again in
//! the very same bytes for the other hop — TLS 1.3 records of every suite
//! carry a 16-byte tag, so the sealed record is exactly as long as the one
//! that arrived and keeps its header. No copy into rustls's buffers and
//! out again, no allocation per record, and reads as large as the relay's
//! buffer instead of rustls's 4 KiB. Only the AES work is left, which no
//! relay hop can avoid.
//!
//! What this layer does not do, by design: it cannot follow a peer's key
//! update (rustls's buffered connection hands over keys, not the secrets
//! they come from), so a key update ends the connection; and it refuses
//! to seal past the suite's confidentiality limit (2^24 records for
//! AES-GCM, 256 GiB and more). Either is a lost connection, which the
//! session's ends resume from.

use crate::state::ServerStream;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;
use std::io::{self, Read};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A record header: type, legacy version, length.
pub const HEADER: usize = 5;
/// The AEAD tag every TLS 1.3 suite appends.
pub const TAG: usize = 16;
/// The most content a record carries.
pub const MAX_CONTENT: usize = 1 << 14;
/// The longest record body TLS 1.3 allows (content, type, padding, tag).
pub const MAX_BODY: usize = MAX_CONTENT + 256;

/// Content types inside a protected record.
pub const APPLICATION_DATA: u8 = 23;
/// An alert (close_notify among them).
const ALERT: u8 = 21;
/// A handshake message; after the handshake, a key update.
const HANDSHAKE: u8 = 22;
/// The outer type of every protected TLS 1.3 record.
const OPAQUE_TYPE: u8 = APPLICATION_DATA;
/// The close_notify alert: warning level, description 0.
const CLOSE_NOTIFY: [u8; 2] = [1, 0];

/// Why a record could not be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a TLS 1.3 protected record, or longer than TLS allows.
    #[error("not a TLS 1.3 record")]
    Malformed,
    /// The record failed authentication (or was all padding).
    #[error("a record failed authentication")]
    Forged,
    /// A handshake message after the handshake: a key update, which this
    /// layer cannot follow.
    #[error("the peer renewed its keys, which the relay does not follow")]
    KeyUpdate,
    /// A content type TLS 1.3 does not have after the handshake.
    #[error("unexpected content type {0}")]
    UnexpectedType(u8),
    /// The keys have protected as many records as the suite allows.
    #[error("the connection's keys are used up")]
    Exhausted,
}

/// What an opened record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Application data: the length of its content.
    Data(usize),
    /// The peer's close_notify.
    CloseNotify,
    /// Any other alert (the peer is ending the connection).
    Alert,
}

/// One direction's traffic keys and record counter.
pub struct Keys {
    key: LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
    limit: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Keys")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys rustls handed over, continuing at its sequence number.
    pub fn new(seq: u64, secrets: ConnectionTrafficSecrets, limit: u64) -> Option<Self> {
        let (algorithm, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return None,
        };
        let key = LessSafeKey::new(UnboundKey::new(algorithm, key.as_ref()).ok()?);
        Some(Self {
            key,
            iv: iv.as_ref().try_into().ok()?,
            seq,
            limit,
        })
    }

    fn nonce(&mut self) -> Result<Nonce, RecordError> {
        if self.seq >= self.limit {
            return Err(RecordError::Exhausted);
        }
        let mut nonce = self.iv;
        for (n, s) in nonce[aead::NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        self.seq += 1;
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// Opens a record's body in place and says what it carries; its
    /// content is what precedes the type and the padding.
    pub fn open(&mut self, header: &[u8; HEADER], body: &mut [u8]) -> Result<Content, RecordError> {
        let nonce = self.nonce()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(header), body)
            .map_err(|_| RecordError::Forged)?;
        let at = plain
            .iter()
            .rposition(|&b| b != 0)
            .ok_or(RecordError::Forged)?;
        match plain[at] {
            APPLICATION_DATA => Ok(Content::Data(at)),
            ALERT if plain[..at] == CLOSE_NOTIFY => Ok(Content::CloseNotify),
            ALERT => Ok(Content::Alert),
            HANDSHAKE => Err(RecordError::KeyUpdate),
            other => Err(RecordError::UnexpectedType(other)),
        }
    }

    /// Seals an opened body again, in place: the inner plaintext is
    /// `body[..len - TAG]`, the tag goes to the last [`TAG`] bytes.
    pub fn seal(&mut self, header: &[u8; HEADER], body: &mut [u8]) -> Result<(), RecordError> {
        let nonce = self.nonce()?;
        let (plain, tag) = body.split_at_mut(body.len() - TAG);
        let sealed = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), plain)
            .map_err(|_| RecordError::Forged)?;
        tag.copy_from_slice(sealed.as_ref());
        Ok(())
    }

    /// Appends records of `content_type` carrying `content` to `out`.
    pub fn seal_new(
        &mut self,
        content_type: u8,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        for chunk in content.chunks(MAX_CONTENT) {
            let header = header_for(chunk.len() + 1 + TAG);
            let start = out.len();
            out.extend_from_slice(&header);
            out.extend_from_slice(chunk);
            out.push(content_type);
            out.extend_from_slice(&[0; TAG]);
            self.seal(&header, &mut out[start + HEADER..])?;
        }
        Ok(())
    }

    /// A sealed close_notify alert.
    pub fn close_notify(&mut self) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::with_capacity(HEADER + 3 + TAG);
        self.seal_new(ALERT, &CLOSE_NOTIFY, &mut out)?;
        Ok(out)
    }
}

fn header_for(body_len: usize) -> [u8; HEADER] {
    let [hi, lo] = (body_len as u16).to_be_bytes();
    [OPAQUE_TYPE, 3, 3, hi, lo]
}

/// The body length of the record at the start of `bytes`, once the whole
/// record is there (`None`: read more).
pub fn whole(bytes: &[u8]) -> Result<Option<usize>, RecordError> {
    let Some(header) = bytes.first_chunk::<HEADER>() else {
        return Ok(None);
    };
    let len = body_len(header)?;
    Ok((bytes.len() >= HEADER + len).then_some(len))
}

/// The body length a record header announces, checked.
fn body_len(header: &[u8; HEADER]) -> Result<usize, RecordError> {
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if header[0] != OPAQUE_TYPE || header[1] != 3 || len > MAX_BODY || len <= TAG {
        return Err(RecordError::Malformed);
    }
    Ok(len)
}

/// An outer TLS connection whose records this layer now protects.
pub struct TakenOver {
    /// The connection's socket.
    pub tcp: TcpStream,
    /// Opens what the peer sends.
    pub open: Keys,
    /// Seals what goes to the peer.
    pub seal: Keys,
    /// Plaintext rustls had already received and nobody had read.
    pub early: Vec<u8>,
}

impl std::fmt::Debug for TakenOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("TakenOver")
            .field("peer", &self.tcp.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Takes a connection's keys from rustls. The stream must have nothing
/// left to send (every write flushed); plaintext it received but nobody
/// read comes along as [`TakenOver::early`].
pub fn take_over(stream: ServerStream) -> Result<TakenOver, String> {
    let (tcp, mut conn) = stream.into_inner();
    let limit = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.tls13())
        .map(|s| s.common.confidentiality_limit)
        .ok_or("not a TLS 1.3 connection")?;
    let mut early = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match conn.reader().read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => early.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    let secrets = conn
        .dangerous_extract_secrets()
        .map_err(|e| format!("the TLS keys could not be taken over: {e}"))?;
    let (rx_seq, rx) = secrets.rx;
    let (tx_seq, tx) = secrets.tx;
    let unsupported = || "the connection's cipher suite is not supported".to_owned();
    Ok(TakenOver {
        tcp,
        open: Keys::new(rx_seq, rx, u64::MAX).ok_or_else(unsupported)?,
        seal: Keys::new(tx_seq, tx, limit).ok_or_else(unsupported)?,
        early,
    })
}

impl TakenOver {
    /// Seals `plain` as application data and writes it.
    pub async fn send(&mut self, plain: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(plain.len() + HEADER + 1 + TAG);
        self.seal
            .seal_new(APPLICATION_DATA, plain, &mut out)
            .map_err(io::Error::other)?;
        self.tcp.write_all(&out).await
    }

    /// Reads one record and appends its application data to `into`.
    /// `Ok(false)`: the peer closed (an alert, close_notify or another, or the end of the stream).
    /// The record's bytes are held only while it is read, so an idle
    /// connection holds no buffer.
    pub async fn receive(&mut self, into: &mut Vec<u8>) -> io::Result<bool> {
        if !self.early.is_empty() {
            into.append(&mut self.early);
            return Ok(true);
        }
        let mut header = [0u8; HEADER];
        match self.tcp.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        let broken = |e: RecordError| io::Error::new(io::ErrorKind::InvalidData, e);
        let mut body = vec![0u8; body_len(&header).map_err(broken)?];
        self.tcp.read_exact(&mut body).await?;
        match self.open.open(&header, &mut body).map_err(broken)? {
            Content::Data(len) => {
                into.extend_from_slice(&body[..len]);
                Ok(true)
            }
            Content::CloseNotify | Content::Alert => Ok(false),
        }
    }

    /// Waits until the peer sends something (`true`) or closes (`false`),
    /// consuming nothing. Cancel-safe.
    pub async fn data_arrived(&self) -> bool {
        if !self.early.is_empty() {
            return true;
        }
        // A peek, not a readiness check: readiness can be left over from
        // rustls's last read, a peek waits for real bytes.
        let mut probe = [0u8; 1];
        matches!(self.tcp.peek(&mut probe).await, Ok(1))
    }

    /// Sends close_notify and ends the stream; errors are of no use here.
    pub async fn close(&mut self) {
        if let Ok(alert) = self.seal.close_notify() {
            let _ = self.tcp.write_all(&alert).await;
        }
        let _ = self.tcp.shutdown().await;
    }
}
