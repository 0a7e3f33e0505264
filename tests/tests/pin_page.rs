//! The end user's way in by PIN or link: the technician reads a 6-digit PIN from
//! `tech-console session new --pin`; the end user types it on the
//! gateway's web page, which answers with the personalized applet; the
//! applet runs, pairs and chats. A one-time link from `--link` opens a
//! page whose button downloads it, once. A wrong, used or malformed PIN gets the
//! page again with what to do; guessing from many addresses is throttled
//! per source and for the node, every refusal taking the same time.
#![allow(clippy::unwrap_used)]

use lifeline_tests::https::{Answer, Request, https};
use lifeline_tests::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const FORM: &str = "application/x-www-form-urlencoded";

/// `session new --pin`: the session's GUID and PIN.
fn new_pin_session(s: &Scenario, label: &str) -> (String, String) {
    let out = s
        .console
        .run(&["session", "new", "--label", label, "--pin"], "");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guid = text
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .unwrap()
        .trim()
        .to_owned();
    let pin: String = text
        .lines()
        .find_map(|l| l.strip_prefix("PIN"))
        .unwrap_or_else(|| panic!("no PIN in {text}"))
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ' ')
        .filter(char::is_ascii_digit)
        .collect();
    assert_eq!(pin.len(), 6, "{text}");
    assert!(text.contains(&format!("https://{}/", s.gw.addr)), "{text}");
    (guid, pin)
}

fn post_pin(gw: &Gateway, pin: &str, from: Option<IpAddr>, language: &str) -> Answer {
    let mut req = Request::new("POST", "/");
    req.headers.push(("content-type", FORM.into()));
    req.headers.push(("accept-language", language.into()));
    req.body = format!("pin={pin}&platform={}", this_platform()).into_bytes();
    req.from = from;
    https(gw, &req)
}

fn this_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// A PIN that is not `pin`.
fn other_than(pin: &str, n: u32) -> String {
    let p: u32 = pin.parse().unwrap();
    format!("{:06}", (p + 1 + n) % 1_000_000)
}

#[test]
fn an_end_user_gets_the_applet_with_the_pin_and_is_helped() {
    let s = Scenario::start(&[]);
    let (guid, pin) = new_pin_session(&s, "by pin");

    // The page, in German for a German browser, with its safeguards.
    let mut get = Request::new("GET", "/");
    get.headers
        .push(("accept-language", "de-DE,de;q=0.9,en;q=0.5".into()));
    let page = https(&s.gw, &get);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("<html lang=\"de\">"), "{html}");
    assert!(html.contains("Hilfe von Ihrem Techniker"), "{html}");
    assert!(html.contains("<label for=\"pin\">"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    let css = https(&s.gw, &Request::new("GET", "/style.css"));
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));

    // A wrong PIN: the page again, in the browser's language, saying what
    // to do; nothing about the session.
    let wrong = post_pin(&s.gw, &other_than(&pin, 0), None, "nl");
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.text().contains("Deze code werkt niet"),
        "{}",
        wrong.text()
    );
    assert!(!wrong.text().contains(&guid));
    let malformed = post_pin(&s.gw, "12ab", None, "en");
    assert_eq!(malformed.status, 400);
    assert!(malformed.text().contains("Please type the 6 digits"));

    // The right PIN: the applet itself.
    let got = post_pin(&s.gw, &pin, None, "en");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("content-type"), "application/octet-stream");
    assert!(got.header("content-disposition").starts_with("attachment;"));
    // Used: it works once.
    let again = post_pin(&s.gw, &pin, None, "en");
    assert_eq!(again.status, 400, "a PIN worked twice");

    // The end user runs what they downloaded, and is helped.
    let path = s.files.path().join("lifeline-support");
    std::fs::write(&path, &got.body).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut applet = Proc::applet(&path, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(
        &s.console,
        &mut applet,
        "by pin",
        &guid,
        &["--path", "relay"],
    );
    chat_both_ways(&mut tech, &mut applet, "hello, I can help", "thank you");
    end_session(&mut tech, &mut applet);

    let audit = s.gw.audit(Some(&guid));
    let has = |event: &str, detail: &str| {
        audit.iter().any(|e| {
            e["event"] == event && e["detail"].as_str().is_some_and(|d| d.contains(detail))
        })
    };
    assert!(has("PIN issued", "for the web page"), "{audit:#?}");
    assert!(has("applet downloaded", "with the PIN"), "{audit:#?}");
    let log = s.gw.audit(None);
    assert!(
        log.iter()
            .any(|e| e["event"] == "PIN refused" && e["actor"] == "web page"),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|e| e.to_string().contains(&pin)),
        "the PIN is in the audit trail"
    );
}

#[test]
fn guessing_from_twenty_addresses_is_throttled_and_finds_nothing() {
    let s = Scenario::start(&[]);
    let (_guid, pin) = new_pin_session(&s, "guarded");
    let started = Instant::now();
    let guess = |i: u8, n: u32| {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i));
        let t = Instant::now();
        let a = post_pin(
            &s.gw,
            &other_than(&pin, u32::from(i) * 8 + n),
            Some(from),
            "en",
        );
        (a.status, t.elapsed())
    };
    // One source alone first: its own budget stops it.
    let mut results: Vec<(u16, Duration)> = (0..8).map(|n| guess(0, n)).collect();
    // Then 19 more sources, 8 guesses each, all at once: the node's budget
    // stops them together.
    results.extend(std::thread::scope(|scope| {
        let handles: Vec<_> = (1..20u8)
            .map(|i| scope.spawn(move || (0..8u32).map(|n| guess(i, n)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    }));
    let took = started.elapsed();
    let count = |status| results.iter().filter(|(s, _)| *s == status).count();
    let (wrong, per_source, node) = (count(400), count(429), count(503));
    eprintln!(
        "160 guesses from 20 addresses in {took:?}: {wrong} checked and wrong, {per_source} \
         refused by the per-source budget, {node} by the node's budget"
    );
    assert_eq!(count(200), 0, "a guess found the PIN");
    assert_eq!(wrong + per_source + node, 160, "{results:?}");
    assert!(wrong <= 20, "the node's budget let {wrong} guesses through");
    assert!(per_source > 0 && node > 0, "{results:?}");
    // Every refusal took the same time, whatever its reason.
    let fastest = results.iter().map(|(_, d)| *d).min().unwrap();
    assert!(
        fastest >= Duration::from_millis(290),
        "a refusal took {fastest:?}"
    );
    // While the node's budget is spent, even the right PIN waits: the page
    // says to try again in a minute.
    let busy = post_pin(
        &s.gw,
        &pin,
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 77))),
        "en",
    );
    assert_eq!(busy.status, 503, "{}", busy.text());
    assert!(
        busy.text().contains("try again in a minute"),
        "{}",
        busy.text()
    );
}

#[test]
fn a_one_time_link_opens_a_page_whose_button_downloads_the_applet_once() {
    let s = Scenario::start(&[]);
    let out = s
        .console
        .run(&["session", "new", "--label", "by link", "--link"], "");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("link"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_owned();
    let path = url
        .strip_prefix(&format!("https://{}", s.gw.addr))
        .unwrap_or_else(|| panic!("{url}"))
        .to_owned();
    // Opening it (as a mail scanner might, twice) uses nothing.
    for _ in 0..2 {
        let page = https(&s.gw, &Request::new("GET", &path));
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(page.text().contains("Your technician sent you this link"));
        assert!(page.text().contains(&format!("action=\"{path}\"")));
    }
    // The button downloads the applet.
    let mut post = Request::new("POST", &path);
    post.headers.push(("content-type", FORM.into()));
    post.body = format!("platform={}", this_platform()).into_bytes();
    let got = https(&s.gw, &post);
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("content-type"), "application/octet-stream");
    let file = s.files.path().join("from-link");
    std::fs::write(&file, &got.body).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let verify = std::process::Command::new(&file)
        .arg("--verify")
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    // Used: the page and the button say so, and so does a made-up link.
    let page = https(&s.gw, &Request::new("GET", &path));
    assert_eq!(page.status, 404);
    assert!(
        page.text().contains("This link does not work any more"),
        "{}",
        page.text()
    );
    assert_eq!(https(&s.gw, &post).status, 404);
    let made_up = https(
        &s.gw,
        &Request::new("GET", "/s/00112233445566778899aabbccddeeff"),
    );
    assert_eq!(made_up.status, 404);
    let audit = s.gw.audit(None);
    let has = |event: &str, detail: &str| {
        audit.iter().any(|e| {
            e["event"] == event && e["detail"].as_str().is_some_and(|d| d.contains(detail))
        })
    };
    assert!(has("link issued", "one-time link"), "{audit:#?}");
    assert!(has("applet downloaded", "with the link"), "{audit:#?}");
    assert!(has("link refused", "from 127.0.0.1"), "{audit:#?}");
    let token = path.trim_start_matches("/s/");
    assert!(
        !audit.iter().any(|e| e.to_string().contains(token)),
        "the token is in the audit"
    );
}

#[test]
fn a_group_sets_how_long_its_pins_work() {
    let s = Scenario::start(&[]);
    let out = s.gw.admin(&["group", "pin-time", "default", "45m"], "");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("PINs work 45 min"));
    let out = s
        .console
        .run(&["session", "new", "--label", "slow", "--pin"], "");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let guid = text
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .unwrap()
        .trim()
        .to_owned();
    let issued =
        s.gw.audit(Some(&guid))
            .into_iter()
            .find(|e| e["event"] == "PIN issued")
            .unwrap();
    let created =
        s.gw.audit(Some(&guid))
            .into_iter()
            .find(|e| e["event"] == "created")
            .unwrap();
    // Times as the audit writes them (RFC 3339), read by date(1).
    let secs = |t: &str| -> i64 {
        let out = std::process::Command::new("date")
            .args(["-d", t, "+%s"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let until = issued["detail"]
        .as_str()
        .unwrap()
        .rsplit("until ")
        .next()
        .unwrap();
    let minutes = (secs(until) - secs(created["at"].as_str().unwrap())) / 60;
    assert!((44..=45).contains(&minutes), "{issued} {created}");
    assert!(
        s.gw.audit(None)
            .iter()
            .any(|e| e["event"] == "group PIN time"
                && e["detail"] == "default: 20 min (the default) → 45 min")
    );
}
