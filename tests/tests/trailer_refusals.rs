//! The applet refuses to run with a tampered, truncated or expired trailer,
//! or a trailer moved onto another program, with a message a non-technical
//! user understands, exit code 2, and without connecting anywhere; an
//! expired or changed applet then removes itself. `--verify` on a good
//! applet says who it is for, and that a development build's publisher
//! cannot be verified — even when the trailer calls itself "VERIFIED" in
//! green.
#![allow(clippy::unwrap_used)]

use lifeline_protocol::trailer::{FOOTER_LEN, SignedTrailer};
use lifeline_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// How long a refusing applet may take: it exits before any network I/O.
const QUICK: Duration = Duration::from_secs(10);

fn run_applet(path: &Path, args: &[&str]) -> (Output, String) {
    let out = run_bounded(Command::new(path).args(args), QUICK);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

/// A copy of the downloaded applet with `edit` applied, still executable.
fn edited_copy(
    s: &Scenario,
    original: &Path,
    name: &str,
    edit: impl FnOnce(&mut Vec<u8>),
) -> PathBuf {
    let path = s.files.path().join(name);
    std::fs::copy(original, &path).unwrap(); // keeps the mode bits
    let mut bytes = std::fs::read(&path).unwrap();
    edit(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    path
}

/// The gateway never heard from an applet of `guid`.
fn assert_never_connected(s: &Scenario, guid: &str) {
    let queue = s.console.queue();
    assert!(queue.is_empty(), "someone is waiting: {queue:?}");
    let events: Vec<String> =
        s.gw.audit(Some(guid))
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect();
    assert!(
        !events.iter().any(|e| e == "waiting"),
        "the applet reached the gateway: {events:?}"
    );
}

#[test]
fn a_tampered_trailer_is_refused_without_connecting() {
    let s = Scenario::start(&[]);
    let (good, guid) = s.session("tampered");
    let bytes = std::fs::read(&good).unwrap();
    let image_len = SignedTrailer::find(&bytes).unwrap().image_len;
    let body_len = bytes.len() - FOOTER_LEN - image_len;
    // One flipped bit each in the middle of the signed body, in the label
    // near its end, and in the operator name near its start.
    for (i, at) in [
        image_len + body_len / 2,
        bytes.len() - FOOTER_LEN - 3,
        image_len + 20,
    ]
    .into_iter()
    .enumerate()
    {
        let bad = edited_copy(&s, &good, &format!("tampered-{i}"), |b| b[at] ^= 0x01);
        // --verify refuses it...
        let (out, text) = run_applet(&bad, &["--verify"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--verify on a tampered applet: {text}"
        );
        assert!(
            text.contains("has been changed since it was issued"),
            "{text}"
        );
        assert!(!text.contains("publisher:"), "{text}");
        assert!(bad.exists(), "--verify only looks");
        // ...and so does running it, which then removes the changed file.
        let (out, text) = run_applet(&bad, &[]);
        assert!(
            text.contains("has been changed since it was issued"),
            "flip at trailer byte {}: the applet said:\n{text}\nstderr: {}",
            at - image_len,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "flip at trailer byte {}: {text}",
            at - image_len
        );
        assert!(!text.contains("Waiting for"), "{text}");
        assert!(text.contains("removed itself"), "{text}");
        assert!(!bad.exists(), "a changed applet removes itself");
    }
    // The signed trailer, moved onto a different program (here: the same
    // executable with bytes added before the trailer), is refused too: the
    // signature covers the program it was issued with.
    let moved = edited_copy(&s, &good, "moved", |b| {
        b.splice(image_len..image_len, [0u8; 16]);
    });
    let (out, text) = run_applet(&moved, &[]);
    assert!(
        text.contains("has been changed since it was issued"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(!moved.exists());
    assert_never_connected(&s, &guid);

    // The untouched original does connect: the refusals were the trailer's.
    let mut applet = Proc::applet(&good, &["--keep"]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let queue = s.console.queue();
    assert_eq!(queue.len(), 1, "queue: {queue:?}");
    assert_eq!(queue[0]["guid"], guid.as_str());
}

#[test]
fn a_truncated_applet_is_refused() {
    let s = Scenario::start(&[]);
    let (good, guid) = s.session("truncated");
    for cut in [10, FOOTER_LEN + 100] {
        let bad = edited_copy(&s, &good, &format!("truncated-{cut}"), |b| {
            b.truncate(b.len() - cut)
        });
        let (out, text) = run_applet(&bad, &[]);
        assert!(
            text.contains("incomplete"),
            "cut {cut} bytes: the applet said:\n{text}"
        );
        assert!(text.contains("send it again"), "cut {cut} bytes: {text}");
        assert_eq!(out.status.code(), Some(2), "cut {cut} bytes: {text}");
    }
    assert_never_connected(&s, &guid);
}

#[test]
fn an_expired_session_is_refused() {
    let s = Scenario::start(&[]);
    let (applet, guid) = s.session_with("shortlived", &["--expires-in", "2"]);
    // Wait for the expiry by asking the applet itself (no fixed sleep).
    let text = wait_until("the session to expire", Duration::from_secs(10), || {
        let (out, text) = run_applet(&applet, &["--verify"]);
        (!out.status.success()).then_some(text)
    });
    assert!(
        text.contains("expired"),
        "--verify after expiry said:\n{text}"
    );

    let (out, text) = run_applet(&applet, &[]);
    assert!(
        text.contains("This support session expired on"),
        "the applet said:\n{text}"
    );
    assert!(text.contains("ask your technician for a new one"), "{text}");
    assert_eq!(out.status.code(), Some(2), "{text}");
    // Its file, which holds the session's secret, goes.
    assert!(text.contains("removed itself"), "{text}");
    assert!(!applet.exists(), "an expired applet removes itself");
    assert_never_connected(&s, &guid);
}

#[test]
fn verify_shows_technician_session_and_a_valid_signature() {
    let s = Scenario::start(&[]);
    let (applet, guid) = s.session("verified");
    let (out, text) = run_applet(&applet, &["--verify"]);
    assert!(
        out.status.success(),
        "--verify failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name:?} line in:\n{text}"))
            .trim()
            .to_owned()
    };
    assert_eq!(field("technician"), TECH_NAME);
    assert_eq!(field("session"), guid);
    assert_eq!(field("label"), "verified");
    assert!(field("service").contains(&s.gw.addr), "{text}");
    // Tests run a development build: it must not look verified.
    assert!(field("publisher").starts_with("NOT VERIFIED"), "{text}");
    assert!(text.contains("cannot be verified"), "{text}");
    assert!(!text.contains("valid"), "{text}");
    // --verify only looks: it neither connects nor removes itself.
    assert!(applet.exists());
    assert_never_connected(&s, &guid);
}

/// Anyone can re-sign a development applet's trailer with a key of their
/// own. What such a forgery says about itself must not pass for a
/// verified publisher, and its escape sequences are shown, not obeyed.
#[test]
fn a_resigned_development_applet_does_not_look_verified() {
    use lifeline_protocol::trailer::TrailerBody;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let s = Scenario::start(&[]);
    let (good, _) = s.session("forged");
    let bytes = std::fs::read(&good).unwrap();
    let t = SignedTrailer::find(&bytes).unwrap();
    let image = bytes[..t.image_len].to_vec();
    let real = t.verify(&t.claimed_key().unwrap(), 0).unwrap();
    let key = Ed25519KeyPair::from_seed_unchecked(&[0x66; 32]).unwrap();
    let forged = TrailerBody {
        operator_name: "Your Bank IT Security \u{1b}[32m(VERIFIED)\u{1b}[0m".into(),
        technician_name: "Bank \u{202e}ytiruceS".into(),
        operator_key: key.public_key().as_ref().try_into().unwrap(),
        ..real
    };
    let path = edited_copy(&s, &good, "bank", |b| {
        b.truncate(image.len());
        b.extend(forged.to_trailer(|m| key.sign(m).as_ref().try_into().unwrap()));
    });
    let (out, text) = run_applet(&path, &["--verify"]);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text:?}"
    );
    assert!(text.contains("\\e[32m(VERIFIED)\\e[0m"), "{text}");
    assert!(text.contains("\\u{202e}"), "{text}");
    assert!(text.contains("NOT VERIFIED"), "{text}");
    assert!(text.contains("cannot be verified"), "{text}");
}

/// `gateway serve` says which stock applets are development builds (their
/// end users are told the publisher cannot be verified) and how to build a
/// release one; an applet that pins the operator's key passes.
#[test]
fn the_gateway_says_when_it_serves_a_development_applet() {
    let data = TempDir::new("gw");
    let mut gw = Gateway::start(data.path(), None, &[]);
    let line = gw.stdout.wait_for("development build");
    assert!(
        line.contains("LIFELINE_OPERATOR_KEY=$(gateway admin operator-key)"),
        "{line}"
    );
    // The tests' applet is a debug build, with its symbols.
    let line = gw.stdout.wait_for("is not stripped");
    assert!(line.contains("--profile applet"), "{line}");
    drop(gw);
    // A stock applet carrying this operator's key, as a release build does.
    let key = admin(data.path(), None, &["operator-key"], "");
    let key = String::from_utf8(key.stdout).unwrap();
    let files = TempDir::new("stock");
    let stock = files.path().join("applet");
    let mut bytes = std::fs::read(bin("applet")).unwrap();
    bytes.extend_from_slice(key.trim().as_bytes());
    std::fs::write(&stock, bytes).unwrap();
    let platform = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let mut gw = Gateway::start(
        data.path(),
        None,
        &["--applet", &format!("{platform}={}", stock.display())],
    );
    let line = gw.stdout.wait_for(&format!("applet for {platform}"));
    assert!(
        line.contains("release build pinned to this operator's key"),
        "{line}"
    );
}
