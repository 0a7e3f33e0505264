//! Property tests: every wire format round-trips, framed decoders report
//! truncation as `Incomplete`, and no decoder panics on arbitrary input.
#![allow(clippy::unwrap_used)]

use lifeline_protocol::DecodeError;
use lifeline_protocol::SessionGuid;
use lifeline_protocol::directory::{
    Directory, DirectoryError, DirectoryNode, SIGNING_CONTEXT, SignedDirectory,
};
use lifeline_protocol::e2e::{
    self, ChannelFrame, Control, EndedBy, Frame, Handshake, Negotiation, TestFrame,
};
use lifeline_protocol::hex;
use lifeline_protocol::permissions::Permissions;
use lifeline_protocol::relay::{self, Hello, RefuseCode, Role, ServerMsg};
use lifeline_protocol::trailer::{
    self, FOOTER_LEN, MAGIC, SignedTrailer, TrailerBody, TrailerError,
};
use lifeline_protocol::work::Work;
use proptest::collection::vec;
use proptest::prelude::*;
use ring::signature::{Ed25519KeyPair, KeyPair};

// ---------------------------------------------------------------- strategies

/// Text of at most `max` UTF-8 bytes: mostly arbitrary characters, sometimes
/// ASCII right up to the limit.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => vec(any::<char>(), 0..=max).prop_map(move |cs| {
            let mut s = String::new();
            for c in cs {
                if s.len() + c.len_utf8() > max {
                    break;
                }
                s.push(c);
            }
            s
        }),
        1 => vec(proptest::char::range(' ', '~'), 0..=max)
            .prop_map(|cs| cs.into_iter().collect::<String>()),
    ]
}

fn guid() -> impl Strategy<Value = SessionGuid> {
    any::<[u8; 16]>().prop_map(SessionGuid::from_bytes)
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u8>(),
        prop_oneof![Just(Role::Applet), Just(Role::Console)],
        guid(),
        vec(any::<u8>(), 0..=relay::MAX_CREDENTIAL),
    )
        .prop_map(|(version, role, guid, credential)| Hello {
            version,
            role,
            guid,
            credential,
        })
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        (text(128), text(128)).prop_map(|(observed, node)| ServerMsg::Waiting { observed, node }),
        Just(ServerMsg::Ping),
        (
            text(128),
            proptest::option::of((any::<[u8; 32]>(), text(256)))
        )
            .prop_map(|(stun, console)| ServerMsg::Paired {
                stun,
                console: console.map(|(console_pin, technician_name)| relay::PickedBy {
                    console_pin,
                    technician_name,
                }),
            }),
        // `from_code` gives the canonical variant: `Other(1)` would decode
        // as `UnknownSession`.
        (any::<u16>(), text(relay::MAX_TEXT)).prop_map(|(c, message)| ServerMsg::Refused {
            code: RefuseCode::from_code(c),
            message,
        }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|mac| Frame::Handshake(Handshake::Proof { mac })),
        Just(Frame::Handshake(Handshake::Accepted)),
        text(e2e::MAX_CHAT).prop_map(|text| Frame::Control(Control::Chat { text })),
        (
            prop_oneof![
                Just(EndedBy::User),
                Just(EndedBy::Technician),
                Just(EndedBy::Refused)
            ],
            text(e2e::MAX_REASON),
        )
            .prop_map(|(by, reason)| Frame::Control(Control::End { by, reason })),
        any::<u64>().prop_map(|v| Frame::Control(Control::Ping(v))),
        any::<u64>().prop_map(|v| Frame::Control(Control::Pong(v))),
        (any::<bool>(), any::<bool>(), any::<u32>()).prop_map(|(tcp, udp, udp_after_ms)| {
            Frame::Negotiation(Negotiation::PathPolicy {
                tcp,
                udp,
                udp_after_ms,
            })
        }),
        (
            vec(
                (any::<std::net::IpAddr>(), any::<u16>()).prop_map(std::net::SocketAddr::from),
                0..=e2e::MAX_TCP_ADDRS
            ),
            any::<bool>(),
            text(e2e::MAX_REASON)
        )
            .prop_map(
                |(tcp, udp, note)| Frame::Negotiation(Negotiation::PathOffer { tcp, udp, note })
            ),
        (
            text(e2e::MAX_ICE_TEXT),
            text(e2e::MAX_ICE_TEXT),
            vec(text(e2e::MAX_ICE_TEXT), 0..=e2e::MAX_ICE_CANDIDATES)
        )
            .prop_map(|(ufrag, pwd, candidates)| Frame::Negotiation(
                Negotiation::IceOffer(lifeline_protocol::ice::IceOffer {
                    ufrag,
                    pwd,
                    candidates
                })
            )),
        any::<[u8; 32]>().prop_map(|mac| Frame::Handshake(Handshake::Bind { mac })),
        any::<[u8; 8]>().prop_map(|path| Frame::Control(Control::Switch { path })),
        (any::<u32>(), vec(any::<u8>(), 0..=1024)).prop_map(|(channel, data)| Frame::Channel(
            ChannelFrame::Data {
                channel,
                data: data.into(),
            }
        )),
        (
            any::<u32>(),
            prop_oneof![
                Just(e2e::ChannelKind::LinkTest),
                Just(e2e::ChannelKind::Echo),
                Just(e2e::ChannelKind::Shell),
                Just(e2e::ChannelKind::Run),
                Just(e2e::ChannelKind::File)
            ]
        )
            .prop_map(|(channel, kind)| Frame::Channel(ChannelFrame::Open { channel, kind })),
        (any::<u32>(), any::<u32>())
            .prop_map(|(channel, bytes)| Frame::Channel(ChannelFrame::Credit { channel, bytes })),
        any::<u32>().prop_map(|channel| Frame::Channel(ChannelFrame::Close { channel })),
        (any::<u32>(), text(e2e::MAX_REASON))
            .prop_map(|(channel, reason)| Frame::Channel(ChannelFrame::Reset { channel, reason })),
        (any::<u32>(), any::<u64>(), any::<u64>())
            .prop_map(|(channel, seed, len)| Frame::Test(TestFrame::Start { channel, seed, len })),
        (any::<u64>(), any::<u64>())
            .prop_map(|(seed, len)| Frame::Test(TestFrame::Request { seed, len })),
        (any::<bool>(), any::<u64>(), text(e2e::MAX_REASON))
            .prop_map(|(ok, bytes, detail)| Frame::Test(TestFrame::Result { ok, bytes, detail })),
        (any::<u64>(), any::<[u64; 2]>())
            .prop_map(|(incarnation, next)| Frame::Control(Control::Resume { incarnation, next })),
        any::<[u64; 2]>().prop_map(|next| Frame::Control(Control::Ack { next })),
        (any::<[u8; 32]>(), text(e2e::MAX_REASON)).prop_map(|(console_pin, technician)| {
            Frame::Control(Control::Handover {
                console_pin,
                technician,
            })
        }),
        Just(Frame::Control(Control::HandedOver)),
        Just(Frame::Negotiation(Negotiation::UdpNow)),
        (any::<bool>(), any::<std::net::IpAddr>(), any::<u16>()).prop_map(|(hard, ip, port)| {
            Frame::Negotiation(Negotiation::NatKind {
                hard,
                addr: std::net::SocketAddr::new(ip, port),
            })
        }),
        (any::<u64>(), any::<u32>(), text(256), any::<u64>()).prop_map(
            |(id, channel, name, size)| Frame::Work(Work::Offer {
                id,
                request: id ^ 1,
                channel,
                path: vec![name],
                size,
            })
        ),
        (any::<u64>(), any::<u32>(), any::<bool>()).prop_map(|(id, caps, whole_session)| {
            Frame::Work(Work::Ask {
                id,
                caps,
                whole_session,
            })
        }),
    ]
}

fn trailer_body() -> impl Strategy<Value = TrailerBody> {
    (
        (
            guid(),
            text(256),
            vec(text(1024), 1..=trailer::MAX_DIRECTORY_URLS),
            prop_oneof![
                3 => vec(any::<u8>(), 0..=600),
                1 => vec(any::<u8>(), 0..=trailer::MAX_CA_DER),
            ],
        ),
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u32>().prop_map(Permissions::from_bits),
            text(256),
            text(256),
            any::<[u8; 32]>(),
        ),
    )
        .prop_map(
            |(
                (guid, operator_name, directory_urls, operator_ca_der),
                (
                    operator_key,
                    console_pin,
                    applet_secret,
                    expires_at_ms,
                    permissions,
                    technician_name,
                    label,
                    image_sha256,
                ),
            )| TrailerBody {
                guid,
                operator_name,
                directory_urls,
                operator_ca_der,
                operator_key,
                console_pin: (console_pin != [0; 32]).then_some(console_pin),
                applet_secret,
                expires_at_ms,
                permissions,
                technician_name,
                label,
                image_sha256,
            },
        )
}

fn directory() -> impl Strategy<Value = Directory> {
    (
        any::<String>(),
        any::<i64>(),
        vec(
            (any::<String>(), any::<String>())
                .prop_map(|(name, addr)| DirectoryNode { name, addr }),
            1..8,
        ),
    )
        .prop_map(|(operator, issued_at_ms, nodes)| Directory {
            operator,
            issued_at_ms,
            nodes,
        })
}

fn sha256(b: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .try_into()
        .unwrap()
}

/// A key pair from a generated seed.
fn key_pair(seed: [u8; 32]) -> (Ed25519KeyPair, [u8; 32]) {
    let k = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let pk = k.public_key().as_ref().try_into().unwrap();
    (k, pk)
}

fn signer(k: &Ed25519KeyPair) -> impl FnOnce(&[u8]) -> [u8; 64] + '_ {
    |m| k.sign(m).as_ref().try_into().unwrap()
}

/// Bytes that look like a frame: a plausible or arbitrary type, a length
/// that may or may not match, and a payload.
fn frame_like(types: &'static [u8], len_bytes: usize) -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![3 => proptest::sample::select(types), 1 => any::<u8>()],
        vec(any::<u8>(), 0..600),
        prop_oneof![2 => Just(None), 1 => any::<u32>().prop_map(Some)],
    )
        .prop_map(move |(ty, payload, len)| {
            let len = len.unwrap_or(payload.len() as u32).to_be_bytes();
            let mut b = vec![ty];
            b.extend_from_slice(&len[4 - len_bytes..]);
            b.extend(payload);
            b
        })
}

/// Arbitrary bytes, and sometimes a valid encoding with one byte changed
/// and/or cut short, so decoders are driven past their first checks.
fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..1024),
        (
            valid,
            any::<prop::sample::Index>(),
            any::<u8>(),
            any::<prop::sample::Index>()
        )
            .prop_map(|(mut b, at, x, cut)| {
                if !b.is_empty() {
                    let i = at.index(b.len());
                    b[i] ^= x;
                    b.truncate(cut.index(b.len() + 1).max(1));
                }
                b
            }),
    ]
}

/// Where the permissions word of an encoded body starts: before the two
/// trailing texts.
fn permissions_offset(b: &TrailerBody) -> usize {
    // Before the two texts and the 32-byte image hash.
    b.encode().len() - 32 - 4 - (2 + b.technician_name.len()) - (2 + b.label.len())
}

/// Asserts that every strict prefix of `enc` decodes as `Incomplete`.
fn prefixes_incomplete<T: std::fmt::Debug>(
    enc: &[u8],
    decode: impl Fn(&[u8]) -> Result<(T, usize), DecodeError>,
) -> Result<(), TestCaseError> {
    for n in 0..enc.len() {
        let got = decode(&enc[..n]);
        prop_assert!(
            matches!(got, Err(DecodeError::Incomplete)),
            "prefix of {} of {} bytes gave {:?}",
            n,
            enc.len(),
            got
        );
    }
    Ok(())
}

// --------------------------------------------------------------- round trips

proptest! {
    #[test]
    fn hello_round_trips(h in hello(), tail in vec(any::<u8>(), 0..16)) {
        let enc = h.encode();
        prop_assert_eq!(Hello::decode(&enc), Ok((h.clone(), enc.len())));
        // A frame consumes exactly its own bytes, whatever follows.
        let mut more = enc.clone();
        more.extend(&tail);
        prop_assert_eq!(Hello::decode(&more), Ok((h, enc.len())));
        prefixes_incomplete(&enc, Hello::decode)?;
    }

    #[test]
    fn server_msg_round_trips(m in server_msg(), tail in vec(any::<u8>(), 0..16)) {
        let enc = m.encode();
        prop_assert_eq!(ServerMsg::decode(&enc), Ok((m.clone(), enc.len())));
        let mut more = enc.clone();
        more.extend(&tail);
        prop_assert_eq!(ServerMsg::decode(&more), Ok((m, enc.len())));
        prefixes_incomplete(&enc, ServerMsg::decode)?;
    }

    #[test]
    fn refuse_codes_round_trip(c in any::<u16>()) {
        prop_assert_eq!(RefuseCode::from_code(c).code(), c);
    }

    #[test]
    fn server_msg_texts_are_clamped(observed in ".{0,300}", message in ".{0,700}") {
        let (m, _) = ServerMsg::decode(&ServerMsg::Waiting {
            observed: observed.clone(),
            node: String::new(),
        }.encode()).unwrap();
        let ServerMsg::Waiting { observed: got, .. } = m else { panic!("{m:?}") };
        prop_assert!(got.len() <= 128 && observed.starts_with(&got));
        prop_assert!(got.len() == observed.len() || got.len() + 4 > 128);

        let (m, _) = ServerMsg::decode(&ServerMsg::Refused {
            code: RefuseCode::Internal,
            message: message.clone(),
        }.encode()).unwrap();
        let ServerMsg::Refused { message: got, .. } = m else { panic!("{m:?}") };
        prop_assert!(got.len() <= relay::MAX_TEXT && message.starts_with(&got));
    }

    #[test]
    fn frame_round_trips(f in frame(), tail in vec(any::<u8>(), 0..16)) {
        let enc = f.encode();
        prop_assert_eq!(enc.len() - e2e::HEADER_LEN, u32::from_be_bytes(enc[1..5].try_into().unwrap()) as usize);
        prop_assert_eq!(Frame::decode(&enc), Ok((f.clone(), enc.len())));
        let mut more = enc.clone();
        more.extend(&tail);
        prop_assert_eq!(Frame::decode(&more), Ok((f, enc.len())));
        prefixes_incomplete(&enc, Frame::decode)?;
    }

    #[test]
    fn frame_texts_are_clamped(chat in ".{0,4200}", reason in ".{0,300}") {
        let (f, _) = Frame::decode(&Frame::Control(Control::Chat { text: chat.clone() }).encode()).unwrap();
        let Frame::Control(Control::Chat { text: got }) = f else { panic!("{f:?}") };
        prop_assert!(got.len() <= e2e::MAX_CHAT && chat.starts_with(&got));
        prop_assert!(got.len() == chat.len() || got.len() + 4 > e2e::MAX_CHAT);

        let (f, _) = Frame::decode(&Frame::Control(Control::End { by: EndedBy::User, reason: reason.clone() }).encode()).unwrap();
        let Frame::Control(Control::End { reason: got, .. }) = f else { panic!("{f:?}") };
        prop_assert!(got.len() <= e2e::MAX_REASON && reason.starts_with(&got));
    }

    #[test]
    fn trailer_body_round_trips(b in trailer_body()) {
        let enc = b.encode();
        prop_assert!(enc.len() <= trailer::MAX_BODY);
        prop_assert_eq!(TrailerBody::decode(&enc), Ok(b));
        // The body is not self-delimiting: a cut or an extension is invalid,
        // never incomplete (the footer carries its length).
        for n in [0, 1, enc.len() / 2, enc.len() - 1] {
            let got = TrailerBody::decode(&enc[..n]);
            prop_assert!(matches!(got, Err(DecodeError::Invalid { .. })), "prefix of {}: {:?}", n, got);
        }
        let mut more = enc.clone();
        more.push(0);
        let got = TrailerBody::decode(&more);
        prop_assert!(matches!(got, Err(DecodeError::Invalid { .. })), "extended: {:?}", got);
    }

    #[test]
    fn trailer_body_drops_unknown_permission_bits(b in trailer_body(), bits in any::<u32>()) {
        let mut enc = b.encode();
        let at = permissions_offset(&b);
        prop_assert_eq!(&enc[at..at + 4], &b.permissions.bits().to_be_bytes()[..]);
        enc[at..at + 4].copy_from_slice(&bits.to_be_bytes());
        let got = TrailerBody::decode(&enc).unwrap();
        prop_assert_eq!(got.permissions, Permissions::from_bits(bits));
        prop_assert_eq!(
            got.permissions.bits(),
            bits & Permissions::ALL.union(Permissions::SINGLE_PROMPT).bits()
        );
    }

    #[test]
    fn signed_trailer_round_trips(
        b in trailer_body(),
        seed in any::<[u8; 32]>(),
        image in vec(any::<u8>(), 0..256),
        now in any::<u64>(),
    ) {
        let (k, pk) = key_pair(seed);
        let mut b = b;
        b.image_sha256 = sha256(&image);
        let mut file = image.clone();
        file.extend(b.to_trailer(signer(&k)));
        let t = SignedTrailer::find(&file).unwrap();
        prop_assert_eq!(t.image_len, image.len());
        prop_assert_eq!(t.claimed_key(), Ok(b.operator_key));
        if now < b.expires_at_ms {
            prop_assert_eq!(t.verify(&pk, now), Ok(b.clone()));
        } else {
            prop_assert_eq!(t.verify(&pk, now), Err(TrailerError::Expired { at_ms: b.expires_at_ms }));
        }
        // Another key never verifies it.
        let (_, other) = key_pair([seed[0].wrapping_add(1); 32]);
        if other != pk {
            prop_assert_eq!(t.verify(&other, 0), Err(TrailerError::BadSignature));
        }
    }

    #[test]
    fn guid_text_round_trips(g in guid(), pad in "[ \t\r\n]{0,3}") {
        let s = g.to_string();
        prop_assert_eq!(s.len(), 36);
        prop_assert_eq!(s.parse::<SessionGuid>(), Ok(g));
        prop_assert_eq!(s.to_uppercase().parse::<SessionGuid>(), Ok(g));
        prop_assert_eq!(s.replace('-', "").parse::<SessionGuid>(), Ok(g));
        prop_assert_eq!(format!("{pad}{s}{pad}").parse::<SessionGuid>(), Ok(g));
        prop_assert_eq!(hex::encode(g.as_bytes()), s.replace('-', ""));
        // serde carries the text form.
        let json = serde_json::to_string(&g).unwrap();
        prop_assert_eq!(&json, &format!("\"{s}\""));
        prop_assert_eq!(serde_json::from_str::<SessionGuid>(&json).unwrap(), g);
    }

    #[test]
    fn hex_round_trips(b in vec(any::<u8>(), 0..64)) {
        let h = hex::encode(&b);
        prop_assert_eq!(h.len(), 2 * b.len());
        prop_assert_eq!(hex::decode(&h), Some(b.clone()));
        prop_assert_eq!(hex::decode(&h.to_uppercase()), Some(b.clone()));
        prop_assert_eq!(hex::decode(&hex::fingerprint(&b)), Some(b));
    }

    #[test]
    fn directory_sign_then_verify(d in directory(), seed in any::<[u8; 32]>()) {
        let (k, pk) = key_pair(seed);
        let signed = SignedDirectory::sign(&d, signer(&k));
        prop_assert_eq!(signed.verify(&pk), Ok(d.clone()));
        // As served: through JSON and back.
        let served: SignedDirectory =
            serde_json::from_str(&serde_json::to_string(&signed).unwrap()).unwrap();
        prop_assert_eq!(served.verify(&pk), Ok(d.clone()));
        // The same bytes under another key, or changed, are refused.
        let (_, other) = key_pair([seed[0].wrapping_add(1); 32]);
        if other != pk {
            prop_assert_eq!(signed.verify(&other), Err(DirectoryError::BadSignature));
        }
        let mut tampered = signed.clone();
        tampered.directory.push(' ');
        prop_assert_eq!(tampered.verify(&pk), Err(DirectoryError::BadSignature));
        let mut bad_sig = signed;
        bad_sig.signature.replace_range(0..1, if bad_sig.signature.starts_with('0') { "1" } else { "0" });
        prop_assert_eq!(bad_sig.verify(&pk), Err(DirectoryError::BadSignature));
    }

    #[test]
    fn directory_without_nodes_is_empty(mut d in directory(), seed in any::<[u8; 32]>()) {
        let (k, pk) = key_pair(seed);
        d.nodes.clear();
        prop_assert_eq!(SignedDirectory::sign(&d, signer(&k)).verify(&pk), Err(DirectoryError::Empty));
    }
}

// ------------------------------------------------------ decoders never panic

proptest! {
    #[test]
    fn hello_decode_never_panics(b in mutated(hello().prop_map(|h| h.encode()))) {
        if let Ok((h, used)) = Hello::decode(&b) {
            prop_assert_eq!(h.encode(), &b[..used]);
        }
    }

    #[test]
    fn hello_decode_never_panics_on_frame_like(b in frame_like(&[0x01], 2)) {
        if let Ok((h, used)) = Hello::decode(&b) {
            prop_assert_eq!(h.encode(), &b[..used]);
        }
    }

    #[test]
    fn server_msg_decode_never_panics(b in mutated(server_msg().prop_map(|m| m.encode()))) {
        if let Ok((m, used)) = ServerMsg::decode(&b) {
            prop_assert_eq!(m.encode(), &b[..used]);
        }
    }

    #[test]
    fn server_msg_decode_never_panics_on_frame_like(b in frame_like(&[0x81, 0x82, 0x83, 0x84], 2)) {
        if let Ok((m, used)) = ServerMsg::decode(&b) {
            prop_assert_eq!(m.encode(), &b[..used]);
        }
    }

    #[test]
    fn frame_decode_never_panics(b in mutated(frame().prop_map(|f| f.encode()))) {
        if let Ok((f, used)) = Frame::decode(&b) {
            prop_assert_eq!(f.encode(), &b[..used]);
        }
    }

    #[test]
    fn frame_decode_never_panics_on_frame_like(b in frame_like(&[1, 2, 3, 4, 5, 6], 4)) {
        if let Ok((f, used)) = Frame::decode(&b) {
            prop_assert_eq!(f.encode(), &b[..used]);
        }
    }

    #[test]
    fn trailer_body_decode_never_panics(b in mutated(trailer_body().prop_map(|b| b.encode()))) {
        match TrailerBody::decode(&b) {
            Ok(body) => {
                // Byte for byte, but for permission bits this version does
                // not know, which decoding drops.
                let mut expected = b.clone();
                let at = permissions_offset(&body);
                let word = u32::from_be_bytes(expected[at..at + 4].try_into().unwrap());
                expected[at..at + 4].copy_from_slice(&(word & Permissions::ALL.bits()).to_be_bytes());
                prop_assert_eq!(body.encode(), expected);
            }
            // A complete body is never "incomplete".
            Err(e) => prop_assert!(matches!(e, DecodeError::Invalid { .. }), "{:?}", e),
        }
    }

    #[test]
    fn signed_trailer_find_and_verify_never_panic(
        image in vec(any::<u8>(), 0..512),
        footer in prop_oneof![
            Just(None),
            (any::<[u8; 32]>(), any::<[u8; 32]>(), prop_oneof![0..600u32, any::<u32>()])
                .prop_map(Some),
        ],
        key in any::<[u8; 32]>(),
        now in any::<u64>(),
    ) {
        let mut file = image;
        if let Some((s1, s2, len)) = footer {
            file.extend(s1);
            file.extend(s2);
            file.extend(len.to_be_bytes());
            file.extend(MAGIC);
        }
        if let Ok(t) = SignedTrailer::find(&file) {
            prop_assert!(t.image_len + FOOTER_LEN <= file.len());
            let _ = t.claimed_key();
            if let Err(e) = t.verify(&key, now) {
                prop_assert!(!e.user_message().is_empty());
            }
        }
    }

    #[test]
    fn signed_trailer_verify_never_panics_on_tampered_files(
        b in trailer_body(),
        seed in any::<[u8; 32]>(),
        at in any::<prop::sample::Index>(),
        x in 1..=255u8,
        now in any::<u64>(),
    ) {
        let (k, pk) = key_pair(seed);
        let mut b = b;
        b.image_sha256 = sha256(b"image");
        let mut file = b"image".to_vec();
        file.extend(b.to_trailer(signer(&k)));
        let i = at.index(file.len());
        file[i] ^= x;
        match SignedTrailer::find(&file) {
            Ok(t) => {
                // Nothing may change, the image included, without the
                // check failing; a changed footer may also move or drop
                // the trailer.
                prop_assert!(t.verify(&pk, now).is_err(), "flip at {} accepted", i);
            }
            Err(e) => prop_assert!(i >= file.len() - FOOTER_LEN + 64, "{e:?} after flip at {i}"),
        }
    }

    #[test]
    fn guid_from_str_never_panics(
        s in prop_oneof![any::<String>(), "[0-9a-fA-F:\\- \t]{30,40}", "\\PC{36}"],
    ) {
        if let Ok(g) = s.parse::<SessionGuid>() {
            prop_assert_eq!(g.to_string().parse::<SessionGuid>(), Ok(g));
        }
    }

    #[test]
    fn hex_decode_never_panics(s in prop_oneof![any::<String>(), "[0-9a-fA-FgG:\\- \t\r\n]{0,64}"]) {
        if let Some(b) = hex::decode(&s) {
            let digits = s.chars().filter(char::is_ascii_hexdigit).count();
            prop_assert_eq!(b.len() * 2, digits);
            prop_assert_eq!(hex::decode(&hex::encode(&b)), Some(b));
        }
    }

    #[test]
    fn signed_directory_verify_never_panics(
        directory in any::<String>(),
        signature in prop_oneof![any::<String>(), "[0-9a-f]{128}", "[0-9a-f]{0,130}"],
        key in any::<[u8; 32]>(),
    ) {
        let _ = SignedDirectory { directory, signature }.verify(&key);
    }

    #[test]
    fn signed_directory_parses_arbitrary_text_once_signed(
        json in prop_oneof![
            any::<String>(),
            directory().prop_map(|d| serde_json::to_string(&d).unwrap()),
            directory().prop_map(|d| {
                let s = serde_json::to_string(&d).unwrap();
                lifeline_protocol::codec::clamp_str(&s, s.len() / 2).to_owned()
            }),
        ],
        seed in any::<[u8; 32]>(),
    ) {
        let (k, pk) = key_pair(seed);
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(json.as_bytes());
        let signature = hex::encode(k.sign(&msg).as_ref());
        match (SignedDirectory { directory: json, signature }).verify(&pk) {
            Ok(d) => prop_assert!(!d.nodes.is_empty()),
            Err(DirectoryError::BadSignature) => {
                return Err(TestCaseError::fail("a good signature was refused"));
            }
            Err(DirectoryError::Malformed(_) | DirectoryError::Empty) => {}
        }
    }
}
