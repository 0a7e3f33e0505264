//! Trust model: the gateway routes but cannot read. A gateway started with
//! the hidden test switch `--danger-record-relay DIR` keeps a copy of every
//! byte it forwards; after a session with chat both ways the recordings
//! hold only the inner TLS (well-formed records, nothing in the clear after
//! the handshake), and neither chat text nor the verification code nor the
//! applet secret appears in them.
#![allow(clippy::unwrap_used)]

use lifeline_protocol::trailer::SignedTrailer;
use lifeline_tests::*;
use std::time::Duration;

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Splits a recording into TLS records `(content type, length)`; panics if
/// the bytes are not a sequence of complete TLS records.
fn tls_records(name: &str, bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        assert!(
            at + 5 <= bytes.len(),
            "{name}: partial TLS record header at byte {at}"
        );
        let (ty, major) = (bytes[at], bytes[at + 1]);
        let len = usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
        assert!(
            matches!(ty, 0x14..=0x17) && major == 3,
            "{name}: byte {at} does not start a TLS record ({:02x?})",
            &bytes[at..at + 5]
        );
        assert!(
            len <= (1 << 14) + 256,
            "{name}: oversized TLS record at byte {at}"
        );
        assert!(
            at + 5 + len <= bytes.len(),
            "{name}: truncated TLS record at byte {at}"
        );
        out.push((ty, len));
        at += 5 + len;
    }
    out
}

#[test]
fn relay_recording_holds_no_plaintext() {
    let record = TempDir::new("recording");
    let s = Scenario::start(&["--danger-record-relay", record.path().to_str().unwrap()]);
    let (applet_path, guid) = s.session("recorded");
    // What the applet must never reveal to the relay: its secret.
    let applet_file = std::fs::read(&applet_path).unwrap();
    let trailer = SignedTrailer::find(&applet_file).unwrap();
    let body = trailer.verify(&trailer.claimed_key().unwrap(), 0).unwrap();
    assert_eq!(body.guid.to_string(), guid);
    let secret = body.applet_secret;

    let mut applet = Proc::applet(&applet_path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    // This test is about the relay: keep the session on it.
    let (mut tech, sas) = pair_with(
        &s.console,
        &mut applet,
        "recorded",
        &guid,
        &["--path", "relay"],
    );

    let to_user = format!("MARKER-{}", random_hex(8));
    let to_tech = format!("MARKER-{}", random_hex(8));
    chat_both_ways(&mut tech, &mut applet, &to_user, &to_tech);
    end_session(&mut tech, &mut applet);

    // The pump writes each chunk to the recording before forwarding it, so
    // once the relay's audit record is there the files hold at least as
    // many bytes as it counted (file writes finish asynchronously).
    let (a2c, c2a) = s.gw.relayed_bytes(&guid, Duration::from_secs(15));
    let a2c_path = record.path().join(format!("{guid}.applet-to-console"));
    let c2a_path = record.path().join(format!("{guid}.console-to-applet"));
    let (a2c_rec, c2a_rec) = wait_until(
        "the recordings to be complete",
        Duration::from_secs(10),
        || {
            let a = std::fs::read(&a2c_path).ok()?;
            let c = std::fs::read(&c2a_path).ok()?;
            (a.len() as u64 >= a2c && c.len() as u64 >= c2a).then_some((a, c))
        },
    );
    // A TLS 1.3 handshake alone is several hundred bytes each way, and the
    // chat lines travelled inside it.
    assert!(
        a2c >= 300 && c2a >= 500,
        "relayed too little: {a2c} / {c2a} bytes"
    );
    assert!(
        a2c_rec.len() >= 300,
        "applet→console recording is {} bytes",
        a2c_rec.len()
    );
    assert!(
        c2a_rec.len() >= 500,
        "console→applet recording is {} bytes",
        c2a_rec.len()
    );

    let secret_hex = lifeline_protocol::hex::encode(&secret);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the technician's chat marker", to_user.clone().into_bytes()),
        ("the end user's chat marker", to_tech.clone().into_bytes()),
        ("the verification code", sas.clone().into_bytes()),
        (
            "the verification code without its space",
            sas.replace(' ', "").into_bytes(),
        ),
        ("the applet secret", secret.to_vec()),
        ("the applet secret in hex", secret_hex.into_bytes()),
    ];
    for (name, rec) in [("applet→console", &a2c_rec), ("console→applet", &c2a_rec)] {
        for (what, needle) in &secrets {
            assert!(
                !contains(rec, needle),
                "the {name} recording contains {what} in the clear"
            );
        }
        // Every recorded byte is the inner TLS: complete records, and after
        // the first encrypted record only encrypted records (TLS 1.3 hides
        // even its handshake messages and alerts inside application_data).
        let records = tls_records(name, rec);
        let first_encrypted = records
            .iter()
            .position(|(ty, _)| *ty == 0x17)
            .unwrap_or_else(|| panic!("{name}: no encrypted record at all: {records:?}"));
        assert!(
            records[first_encrypted..].iter().all(|(ty, _)| *ty == 0x17),
            "{name}: a non-encrypted record after the handshake: {records:?}"
        );
        assert!(
            records.iter().filter(|(ty, _)| *ty == 0x17).count() >= 3,
            "{name}: too few encrypted records for a handshake plus chat: {records:?}"
        );
    }
    // The applet is the inner TLS client, the console its server.
    assert_eq!(
        &a2c_rec[..3],
        &[0x16, 0x03, 0x01],
        "applet→console does not start with a ClientHello record"
    );
    assert_eq!(
        c2a_rec[0], 0x16,
        "console→applet does not start with a ServerHello record"
    );
}
