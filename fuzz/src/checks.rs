//! What every fuzz target does with its input.
//!
//! This file is the library of the `lifeline-fuzz` crate and is also
//! included by path into `protocol/tests/fuzz_seeds.rs` and
//! `protocol/tests/regressions.rs`, so seeds and crash inputs replay through
//! exactly the code the fuzzer runs, on the stable toolchain.
//!
//! A check returns whether its decoder accepted the input. It panics only
//! when a property of the protocol fails: a decoder that panics, or a value
//! that decodes but does not re-encode to the bytes it came from.

use lifeline_protocol::DecodeError;
use lifeline_protocol::SessionGuid;
use lifeline_protocol::directory::{Directory, SignedDirectory};
use lifeline_protocol::e2e::{Frame, Negotiation};
use lifeline_protocol::hex;
use lifeline_protocol::permissions::Permissions;
use lifeline_protocol::relay::{Hello, ServerMsg};
use lifeline_protocol::trailer::{FOOTER_LEN, SignedTrailer, TrailerBody, TrailerError};
use lifeline_protocol::{ice, portal, stun as stun_wire, text as text_wire};
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::net::SocketAddr;
use std::sync::OnceLock;

/// Every fuzz target, by name (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: &[&str] = &[
    "relay_hello",
    "relay_server_msg",
    "e2e_frame",
    "trailer",
    "directory",
    "guid_text",
    "stun",
    "portal",
    "ice_offer",
    "text",
];

/// Seed of the fixed operator key that the `trailer` and `directory`
/// targets trust. Seed inputs are signed with it.
pub const KEY_SEED: [u8; 32] = *b"lifeline fuzz operator key seed!";

/// The clock the `trailer` target verifies against (2023-11-14, Unix ms).
pub const NOW_MS: u64 = 1_700_000_000_000;

/// The fixed operator key pair.
pub fn key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        Ed25519KeyPair::from_seed_unchecked(&KEY_SEED).expect("fixed seed is a valid key")
    })
}

/// The fixed operator public key.
pub fn public_key() -> [u8; 32] {
    key()
        .public_key()
        .as_ref()
        .try_into()
        .expect("Ed25519 public keys are 32 bytes")
}

/// SHA-256 of `b`.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Signs `msg` with the fixed operator key.
pub fn sign(msg: &[u8]) -> [u8; 64] {
    key()
        .sign(msg)
        .as_ref()
        .try_into()
        .expect("Ed25519 signatures are 64 bytes")
}

/// Runs the check of `target` on `data`.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "relay_hello" => relay_hello(data),
        "relay_server_msg" => relay_server_msg(data),
        "e2e_frame" => e2e_frame(data),
        "trailer" => trailer(data),
        "directory" => directory(data),
        "guid_text" => guid_text(data),
        "stun" => stun(data),
        "portal" => portal(data),
        "ice_offer" => ice_offer(data),
        "text" => text(data),
        other => panic!("unknown fuzz target {other:?}"),
    }
}

/// Prefix lengths to re-check after a successful decode: all of them for
/// handshake-sized frames, a sample for large ones.
fn prefix_lengths(used: usize) -> Vec<usize> {
    if used <= 2048 {
        (0..used).collect()
    } else {
        let mut v: Vec<usize> = (0..64).collect();
        v.extend([used / 2, used - 2, used - 1]);
        v
    }
}

/// The common properties of a framed decoder: a success consumes a prefix,
/// re-encodes to exactly that prefix, and every strict prefix of it is
/// [`DecodeError::Incomplete`].
fn framed<T>(
    data: &[u8],
    decode: impl Fn(&[u8]) -> Result<(T, usize), DecodeError>,
    encode: impl Fn(&T) -> Vec<u8>,
) -> bool {
    let Ok((value, used)) = decode(data) else {
        return false;
    };
    assert!(
        used > 0 && used <= data.len(),
        "consumed {used} of {}",
        data.len()
    );
    assert_eq!(encode(&value), &data[..used], "re-encoding differs");
    for n in prefix_lengths(used) {
        assert!(
            matches!(decode(&data[..n]), Err(DecodeError::Incomplete)),
            "prefix of {n} bytes is not incomplete"
        );
    }
    true
}

/// `relay::Hello::decode`.
pub fn relay_hello(data: &[u8]) -> bool {
    framed(data, Hello::decode, Hello::encode)
}

/// `relay::ServerMsg::decode`.
pub fn relay_server_msg(data: &[u8]) -> bool {
    framed(data, ServerMsg::decode, ServerMsg::encode)
}

/// `e2e::Frame::decode`.
pub fn e2e_frame(data: &[u8]) -> bool {
    // A work frame's payload is JSON: many texts decode to the same message
    // (spacing, key order, escapes), so it is checked by value, the rest
    // byte for byte.
    if let Ok((frame @ Frame::Work(_), used)) = Frame::decode(data) {
        assert!(used > 0 && used <= data.len());
        let enc = frame.encode();
        assert_eq!(
            Frame::decode(&enc),
            Ok((frame, enc.len())),
            "re-decoding differs"
        );
        return true;
    }
    framed(data, Frame::decode, Frame::encode)
}

/// `SignedTrailer::find` + `verify` with the fixed key, and
/// `TrailerBody::decode` of the whole input.
pub fn trailer(data: &[u8]) -> bool {
    let pk = public_key();
    let mut accepted = false;
    if let Ok(t) = SignedTrailer::find(data) {
        let body_end = data.len() - FOOTER_LEN;
        assert!(t.image_len <= body_end);
        let claimed = t.claimed_key();
        match t.verify(&pk, NOW_MS) {
            Ok(body) => {
                assert_reencodes(&body, &data[t.image_len..body_end]);
                assert_eq!(claimed, Ok(body.operator_key));
                accepted = true;
            }
            Err(e) => {
                let _ = e.user_message();
            }
        }
    }
    if let Ok(mut body) = TrailerBody::decode(data) {
        assert_reencodes(&body, data);
        // Signing what decoded (for an empty image) and verifying it gives
        // the same body back.
        body.image_sha256 = sha256(b"");
        let file = body.to_trailer(sign);
        let t = SignedTrailer::find(&file).expect("a fresh trailer is found");
        assert_eq!(t.image_len, 0);
        assert_eq!(t.claimed_key(), Ok(body.operator_key));
        match t.verify(&pk, NOW_MS) {
            Ok(back) => assert_eq!(back, body),
            Err(TrailerError::Expired { at_ms }) => {
                assert!(at_ms == body.expires_at_ms && at_ms <= NOW_MS);
                let _ = TrailerError::Expired { at_ms }.user_message();
            }
            Err(e) => panic!("a freshly signed trailer fails to verify: {e}"),
        }
        accepted = true;
    }
    accepted
}

/// A decoded body re-encodes to the bytes it came from, except that
/// permission bits this version does not know are dropped (by design: see
/// `Permissions::from_bits`).
fn assert_reencodes(body: &TrailerBody, from: &[u8]) {
    let enc = body.encode();
    assert_eq!(enc.len(), from.len(), "re-encoding differs in length");
    // The permissions word sits before the two texts and the image hash.
    let at = enc.len() - 32 - 4 - (2 + body.technician_name.len()) - (2 + body.label.len());
    let word = |b: &[u8]| u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!(
        word(&enc),
        word(from) & Permissions::ALL.union(Permissions::SINGLE_PROMPT).bits()
    );
    assert_eq!(enc[..at], from[..at], "re-encoding differs");
    assert_eq!(enc[at + 4..], from[at + 4..], "re-encoding differs");
    assert_eq!(TrailerBody::decode(&enc).as_ref(), Ok(body));
}

/// `serde_json` → `SignedDirectory` → `verify` with the fixed key.
pub fn directory(data: &[u8]) -> bool {
    let Ok(signed) = serde_json::from_slice::<SignedDirectory>(data) else {
        return false;
    };
    let json = serde_json::to_vec(&signed).expect("a SignedDirectory serialises");
    assert_eq!(
        serde_json::from_slice::<SignedDirectory>(&json)
            .ok()
            .as_ref(),
        Some(&signed),
        "JSON round trip differs"
    );
    let pk = public_key();
    let verified = signed.verify(&pk);
    // The same text, signed by the trusted key, gets past the signature and
    // exercises the JSON parse and the emptiness check on arbitrary text.
    let mut msg = lifeline_protocol::directory::SIGNING_CONTEXT.to_vec();
    msg.extend_from_slice(signed.directory.as_bytes());
    let resigned = SignedDirectory {
        directory: signed.directory.clone(),
        signature: hex::encode(&sign(&msg)),
    };
    let reverified = resigned.verify(&pk);
    if let Ok(dir) = &verified {
        assert_eq!(reverified.as_ref(), Ok(dir));
    }
    if let Ok(dir) = reverified {
        assert!(!dir.nodes.is_empty());
        let again = SignedDirectory::sign(&dir, sign);
        assert_eq!(again.verify(&pk), Ok(dir.clone()));
        let text: Directory = serde_json::from_str(&again.directory).expect("own JSON parses");
        assert_eq!(text, dir);
    }
    verified.is_ok()
}

/// `SessionGuid::from_str` and `hex::decode` on the input as text.
pub fn guid_text(data: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(data) else {
        return false;
    };
    if let Some(bytes) = hex::decode(s) {
        assert_eq!(hex::decode(&hex::encode(&bytes)).as_ref(), Some(&bytes));
        assert_eq!(
            hex::decode(&hex::fingerprint(&bytes)).as_ref(),
            Some(&bytes)
        );
    }
    let Ok(guid) = s.parse::<SessionGuid>() else {
        return false;
    };
    let text = guid.to_string();
    assert_eq!(text.parse::<SessionGuid>(), Ok(guid));
    // The GUID is exactly the input's 32 hex digits.
    let digits: String = s
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    assert_eq!(digits, text.replace('-', ""));
    true
}

/// `stun::answer` on a datagram from one of a few sources (the first byte
/// picks which): an answer is never longer than the request plus
/// `MAX_GROWTH`, and it parses back to the request's transaction id and
/// the source address.
pub fn stun(data: &[u8]) -> bool {
    const FROM: [&str; 3] = [
        "198.51.100.7:40000",
        "[2001:db8::1]:5",
        "[::ffff:203.0.113.9]:3478",
    ];
    let pick = data.len() % FROM.len();
    let from: SocketAddr = FROM[pick].parse().expect("a fixed address");
    let Some(out) = stun_wire::answer(data, from) else {
        return false;
    };
    assert!(
        out.len() <= data.len() + stun_wire::MAX_GROWTH,
        "amplification"
    );
    let resp = stun_wire::BindingResponse::parse(&out).expect("our own answer parses");
    assert_eq!(
        resp.mapped,
        SocketAddr::new(from.ip().to_canonical(), from.port())
    );
    assert_eq!(&resp.transaction_id[..], &data[8..20]);
    true
}

/// The portal's request bodies and headers, the first byte picking which:
/// login, session create, path report, end and work report bodies through
/// `serde_json` and their checks; the `Authorization` header; the query string.
pub fn portal(data: &[u8]) -> bool {
    let Some((kind, rest)) = data.split_first() else {
        return false;
    };
    match kind % 8 {
        0 => serde_json::from_slice::<portal::LoginRequest>(rest).is_ok(),
        7 => {
            let Ok(req) = serde_json::from_slice::<portal::ReissueApplet>(rest) else {
                return false;
            };
            let Ok(secret) = req.check() else {
                return false;
            };
            // What is taken is 32 bytes that read back from their hex.
            assert_eq!(hex::decode_array::<32>(&hex::encode(&secret)), Some(secret));
            true
        }
        1 => {
            let Ok(req) = serde_json::from_slice::<portal::CreateSession>(rest) else {
                return false;
            };
            let Ok(ok) = req.check(86_400) else {
                return false;
            };
            assert!(
                ok.label.is_empty()
                    || text_wire::check_name("label", &ok.label, portal::MAX_LABEL).is_ok()
            );
            assert!((1..=portal::MAX_SESSION_TTL_SECS).contains(&ok.ttl_secs));
            true
        }
        2 => serde_json::from_slice::<portal::PathReport>(rest).is_ok_and(|r| r.check().is_ok()),
        3 => {
            let Ok(req) = serde_json::from_slice::<portal::EndSession>(rest) else {
                return false;
            };
            if let Some(r) = req.reason_text() {
                assert!(r.len() <= portal::MAX_END_REASON);
                assert!(!r.chars().any(text_wire::is_unsafe), "{r:?}");
            }
            true
        }
        4 => {
            let Some(token) = portal::bearer_token(rest) else {
                return false;
            };
            assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
            assert_eq!(
                portal::bearer_token(format!("Bearer {token}").as_bytes()),
                Some(token)
            );
            true
        }
        6 => {
            let Ok(report) = serde_json::from_slice::<portal::WorkReport>(rest) else {
                return false;
            };
            // Clamping (what a console does before sending) is idempotent
            // and leaves a valid report as it is.
            let clamped = report.clamped();
            assert_eq!(clamped.clamped(), clamped);
            if report.check().is_err() {
                return false;
            }
            assert_eq!(clamped, report);
            let again: portal::WorkReport =
                serde_json::from_slice(&serde_json::to_vec(&report).unwrap_or_default())
                    .unwrap_or_else(|e| panic!("{report:?} does not read back: {e}"));
            assert_eq!(again, report);
            true
        }
        _ => std::str::from_utf8(rest)
            .ok()
            .and_then(|q| portal::query_param(q, "platform"))
            .is_some(),
    }
}

/// An ICE offer as the payload of an `IceOffer` frame: decoded, checked,
/// and — if it passes — re-encoded to the same frame.
pub fn ice_offer(data: &[u8]) -> bool {
    let empty = Frame::Negotiation(Negotiation::IceOffer(ice::IceOffer {
        ufrag: String::new(),
        pwd: String::new(),
        candidates: Vec::new(),
    }))
    .encode();
    let Ok(len) = u32::try_from(data.len()) else {
        return false;
    };
    let mut frame = vec![empty[0]];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(data);
    let Ok((Frame::Negotiation(Negotiation::IceOffer(offer)), _)) = Frame::decode(&frame) else {
        return false;
    };
    if offer.check().is_err() {
        return false;
    }
    assert!(offer.candidates.len() <= ice::MAX_CANDIDATES);
    assert_eq!(
        Frame::Negotiation(Negotiation::IceOffer(offer)).encode(),
        frame,
        "re-encoding differs"
    );
    true
}

/// `text::neutralize` and `text::check_name` on the input as text: what is
/// shown holds no control or format character, hides nothing (unsafe
/// characters only ever grow into escapes), and plain text is untouched.
pub fn text(data: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(data) else {
        return false;
    };
    let shown = text_wire::neutralize(s);
    assert!(!shown.chars().any(text_wire::is_unsafe));
    let has_unsafe = s.chars().any(text_wire::is_unsafe);
    assert_eq!(shown == s, !has_unsafe);
    assert!(shown.len() >= s.len());
    if let Ok(name) = text_wire::check_name("name", s, 256) {
        assert!(!name.chars().any(text_wire::is_unsafe) && !name.trim().is_empty());
    }
    true
}
