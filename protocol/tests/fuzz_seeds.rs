//! The fuzz corpus seeds (`fuzz/corpus/<target>/seed-*`) are valid
//! encodings produced by this crate's encoders. This test keeps them so:
//! every committed seed must decode through its target's check, and every
//! seed generated here must be on disk byte for byte.
//!
//! After a deliberate change of a wire format, regenerate them with
//! `LIFELINE_WRITE_SEEDS=1 cargo test -p lifeline-protocol --test fuzz_seeds`.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../fuzz/src/checks.rs"]
mod checks;

use lifeline_protocol::SessionGuid;
use lifeline_protocol::directory::{Directory, DirectoryNode, SignedDirectory};
use lifeline_protocol::e2e::{
    ChannelFrame, Control, EndedBy, Frame, Handshake, Negotiation, TestFrame,
};
use lifeline_protocol::permissions::Permissions;
use lifeline_protocol::relay::{Hello, RefuseCode, Role, ServerMsg, VERSION};
use lifeline_protocol::trailer::TrailerBody;
use std::path::{Path, PathBuf};
use std::sync::Once;

const WRITE_VAR: &str = "LIFELINE_WRITE_SEEDS";

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

const GUID: SessionGuid = SessionGuid::from_bytes([
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
]);

fn trailer_body() -> TrailerBody {
    TrailerBody {
        guid: GUID,
        operator_name: "Example IT".into(),
        directory_urls: vec![
            "https://portal.example.net/api/v1/directory".into(),
            "https://[::1]:8443/api/v1/directory".into(),
        ],
        operator_ca_der: vec![0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00],
        operator_key: checks::public_key(),
        console_pin: Some([0xc0; 32]),
        applet_secret: [0x5e; 32],
        // 2100-01-01: after checks::NOW_MS, so the signed seed verifies.
        expires_at_ms: 4_102_444_800_000,
        permissions: Permissions::SYSTEM_INFO.union(Permissions::FILE_TO_USER),
        technician_name: "Ada Lovelace".into(),
        label: "printer on 3rd floor — «urgent»".into(),
        image_sha256: checks::sha256(STOCK_IMAGE),
    }
}

/// The "executable" the signed trailer seed is appended to.
const STOCK_IMAGE: &[u8] = b"\x7fELF stock applet image";

/// Every seed: (target, file name, contents).
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let hello = |role, credential: &[u8]| {
        Hello {
            version: VERSION,
            role,
            guid: GUID,
            credential: credential.to_vec(),
        }
        .encode()
    };
    let mut signed_file = STOCK_IMAGE.to_vec();
    signed_file.extend(trailer_body().to_trailer(checks::sign));
    let directory = Directory {
        operator: "Example IT".into(),
        issued_at_ms: 1_700_000_000_000,
        nodes: vec![
            DirectoryNode {
                name: "gw-1".into(),
                addr: "gw1.example.net:443".into(),
            },
            DirectoryNode {
                name: "gw-2".into(),
                addr: "[2001:db8::2]:443".into(),
            },
        ],
    };
    let signed_directory =
        serde_json::to_vec_pretty(&SignedDirectory::sign(&directory, checks::sign)).unwrap();
    let text = GUID.to_string();
    vec![
        ("relay_hello", "seed-applet", hello(Role::Applet, &[0xa5; 64])),
        (
            "relay_hello",
            "seed-console",
            hello(Role::Console, b"tok_0123456789abcdefghijklmnopqrstuv"),
        ),
        (
            "relay_server_msg",
            "seed-waiting",
            ServerMsg::Waiting {
                observed: "203.0.113.7:51234".into(),
                node: "gw-1".into(),
            }
            .encode(),
        ),
        ("relay_server_msg", "seed-ping", ServerMsg::Ping.encode()),
        (
            "relay_server_msg",
            "seed-paired",
            ServerMsg::Paired {
                stun: "203.0.113.10:3478".into(),
                console: Some(lifeline_protocol::relay::PickedBy {
                    console_pin: [0xc0; 32],
                    technician_name: "Ada Lovelace".into(),
                }),
            }
            .encode(),
        ),
        (
            "relay_server_msg",
            "seed-refused",
            ServerMsg::Refused {
                code: RefuseCode::NotWaiting,
                message: "the end user is not waiting".into(),
            }
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-proof",
            Frame::Handshake(Handshake::Proof { mac: [0xa7; 32] }).encode(),
        ),
        ("e2e_frame", "seed-accepted", Frame::Handshake(Handshake::Accepted).encode()),
        (
            "e2e_frame",
            "seed-chat",
            Frame::Control(Control::Chat {
                text: "Hello! Could you open the printer settings? ✓".into(),
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-end",
            Frame::Control(Control::End {
                by: EndedBy::Technician,
                reason: "done".into(),
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-ping",
            Frame::Control(Control::Ping(0x0102_0304_0506_0708)).encode(),
        ),
        ("e2e_frame", "seed-pong", Frame::Control(Control::Pong(u64::MAX)).encode()),
        (
            "e2e_frame",
            "seed-work-offer",
            Frame::Work(lifeline_protocol::work::Work::Offer {
                id: 1 << 40,
                request: 3,
                channel: 0x8000_0001,
                path: vec!["tree".into(), "a b.txt".into()],
                size: 70_000,
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-work-decision",
            Frame::Work(lifeline_protocol::work::Work::Decision {
                id: 7,
                caps: 8,
                decision: lifeline_protocol::work::Decision::Granted,
                whole_session: false,
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-path-policy",
            Frame::Negotiation(Negotiation::PathPolicy {
                tcp: true,
                udp: true,
                udp_after_ms: 10_000,
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-path-offer",
            Frame::Negotiation(Negotiation::PathOffer {
                tcp: vec![
                    "192.0.2.7:40123".parse().unwrap(),
                    "[2001:db8::7]:40123".parse().unwrap(),
                ],
                udp: true,
                note: String::new(),
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-ice-offer",
            Frame::Negotiation(Negotiation::IceOffer(lifeline_protocol::ice::IceOffer {
                ufrag: "abcd".into(),
                pwd: "abcdefghijklmnopqrstuv".into(),
                candidates: vec!["candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host".into()],
            }))
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-bind",
            Frame::Handshake(Handshake::Bind { mac: [0x5b; 32] }).encode(),
        ),
        (
            "e2e_frame",
            "seed-switch",
            Frame::Control(Control::Switch { path: [0x11; 8] }).encode(),
        ),
        (
            "e2e_frame",
            "seed-udp-now",
            Frame::Negotiation(Negotiation::UdpNow).encode(),
        ),
        (
            "e2e_frame",
            "seed-nat-kind",
            Frame::Negotiation(Negotiation::NatKind {
                hard: true,
                addr: "203.0.113.12:41234".parse().unwrap(),
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-handover",
            Frame::Control(Control::Handover {
                console_pin: [0x42; 32],
                technician: "Grace Hopper".into(),
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-data",
            Frame::Channel(ChannelFrame::Data {
                channel: 3,
                data: b"0123456789".to_vec().into(),
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-channel-open",
            Frame::Channel(ChannelFrame::Open {
                channel: 3,
                kind: lifeline_protocol::e2e::ChannelKind::LinkTest,
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-channel-credit",
            Frame::Channel(ChannelFrame::Credit {
                channel: 3,
                bytes: 1 << 20,
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-channel-close",
            Frame::Channel(ChannelFrame::Close { channel: 3 }).encode(),
        ),
        (
            "e2e_frame",
            "seed-channel-reset",
            Frame::Channel(ChannelFrame::Reset {
                channel: 4,
                reason: "stopped by the end user".into(),
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-test-start",
            Frame::Test(TestFrame::Start {
                channel: 3,
                seed: 7,
                len: 1 << 28,
            })
            .encode(),
        ),
        (
            "e2e_frame",
            "seed-test-result",
            Frame::Test(TestFrame::Result {
                ok: false,
                bytes: 12345,
                detail: "byte 12345 differs".into(),
            })
            .encode(),
        ),
        ("trailer", "seed-signed-applet", signed_file),
        ("trailer", "seed-body", trailer_body().encode()),
        ("directory", "seed-signed", signed_directory),
        ("guid_text", "seed-canonical", text.clone().into_bytes()),
        ("guid_text", "seed-bare", text.replace('-', "").into_bytes()),
        (
            "guid_text",
            "seed-upper-padded",
            format!("  {}\n", text.to_uppercase()).into_bytes(),
        ),
        (
            "stun",
            "seed-binding",
            lifeline_protocol::stun::binding_request([0x42; 12], false),
        ),
        (
            "stun",
            "seed-binding-fingerprint",
            lifeline_protocol::stun::binding_request([0x24; 12], true),
        ),
        ("portal", "seed-login", portal_seed(0, r#"{"email":"ada@example.com","password":"correct horse battery"}"#)),
        (
            "portal",
            "seed-create",
            portal_seed(
                1,
                &format!(
                    r#"{{"label":"printer","console_pin":"{}","applet_secret":"{}","expires_in_secs":3600}}"#,
                    "c0".repeat(32),
                    "5e".repeat(32)
                ),
            ),
        ),
        ("portal", "seed-path", portal_seed(2, r#"{"path":"udp","rtt_ms":12.5,"detail":"203.0.113.11:47001"}"#)),
        ("portal", "seed-end", portal_seed(3, r#"{"reason":"done, printer works"}"#)),
        ("portal", "seed-bearer", portal_seed(4, "Bearer 0123456789abcdef")),
        ("portal", "seed-query", portal_seed(5, "platform=linux-x86_64")),
        (
            "portal",
            "seed-work-consent",
            portal_seed(6, r#"{"kind":"consent","capability":"run-command,file-to-user","decision":"granted","whole_session":true}"#),
        ),
        (
            "portal",
            "seed-work-file",
            portal_seed(
                6,
                &format!(
                    r#"{{"kind":"file","direction":"to_user","name":"drivers/printer.inf","size":1048576,"sha256":"{}","outcome":"saved","detail":""}}"#,
                    "5e".repeat(32)
                ),
            ),
        ),
        (
            "portal",
            "seed-work-action",
            portal_seed(6, r#"{"kind":"action","what":"command_run","detail":"lpstat -p"}"#),
        ),
        (
            "ice_offer",
            "seed-host-and-srflx",
            Frame::Negotiation(Negotiation::IceOffer(lifeline_protocol::ice::IceOffer {
                ufrag: "Ab1+".into(),
                pwd: "abcdefghijklmnopqrstuv/+".into(),
                candidates: vec![
                    "candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host".into(),
                    "candidate:2 1 udp 1694498815 203.0.113.7 40000 typ srflx raddr 192.0.2.7 rport 5000".into(),
                ],
            }))
            .encode()[lifeline_protocol::e2e::HEADER_LEN..]
                .to_vec(),
        ),
        ("text", "seed-plain", "Hallo, könnt ihr helfen? 👋".as_bytes().to_vec()),
        ("text", "seed-escapes", "\u{1b}]52;c;Y3VybA==\u{7}\u{202e}fdp.exe\u{2028}".as_bytes().to_vec()),
    ]
}

/// A `portal` input: the byte that picks the kind, then the text.
fn portal_seed(kind: u8, text: &str) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(text.as_bytes());
    v
}

/// With `LIFELINE_WRITE_SEEDS` set, writes the generated seeds (once per
/// test binary, before either test looks at them).
fn write_if_asked() {
    static WRITE: Once = Once::new();
    WRITE.call_once(|| {
        if std::env::var_os(WRITE_VAR).is_none() {
            return;
        }
        for (target, name, bytes) in seeds() {
            let dir = corpus_dir(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    });
}

#[test]
fn every_target_has_seeds_and_every_seed_decodes() {
    write_if_asked();
    for target in checks::TARGETS {
        let dir = corpus_dir(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if !name.starts_with("seed-") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            assert!(
                checks::run(target, &data),
                "{} does not decode as a valid {target} input",
                path.display()
            );
            n += 1;
        }
        assert!(n > 0, "no seed-* files in {}", dir.display());
    }
}

#[test]
fn committed_seeds_are_current() {
    write_if_asked();
    for (target, name, bytes) in seeds() {
        assert!(checks::TARGETS.contains(&target), "{target}");
        let path = corpus_dir(target).join(name);
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate with `{WRITE_VAR}=1 cargo test -p lifeline-protocol --test fuzz_seeds`",
                path.display()
            )
        });
        assert!(
            on_disk == bytes,
            "{} is stale; regenerate with `{WRITE_VAR}=1 cargo test -p lifeline-protocol --test fuzz_seeds`",
            path.display()
        );
    }
}

#[test]
fn fixed_key_matches_signed_seeds() {
    // The trailer seed claims the fixed key, so a development build that
    // trusts the claimed key accepts it too.
    let file = seeds()
        .into_iter()
        .find(|(_, name, _)| *name == "seed-signed-applet")
        .unwrap()
        .2;
    let t = lifeline_protocol::trailer::SignedTrailer::find(&file).unwrap();
    assert_eq!(t.claimed_key().unwrap(), checks::public_key());
    assert_eq!(
        t.verify(&checks::public_key(), checks::NOW_MS).unwrap(),
        trailer_body()
    );
}
