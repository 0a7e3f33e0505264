//! Channels: an operator's stable address (`gateway admin channel add`)
//! on a company's support page. Each visit downloads a support program
//! whose end user waits in the group's queue; `tech-console queue` shows
//! them to every technician of the group, `connect --next` takes the one
//! waiting longest, and of consoles racing for the same end user — on two
//! nodes sharing PostgreSQL — exactly one wins.
#![allow(clippy::unwrap_used)]

use lifeline_tests::https::{Answer, Request, https};
use lifeline_tests::*;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FORM: &str = "application/x-www-form-urlencoded";

/// `gateway admin channel add NAME --group default ARGS`: the channel's
/// address path (`/c/TOKEN`).
fn add_channel(gw: &Gateway, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["channel", "add", name, "--group", "default"];
    args.extend(extra);
    let out = gw.admin(&args, "");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = text
        .find("/c/")
        .unwrap_or_else(|| panic!("no address in {text}"));
    text[at..].split_whitespace().next().unwrap().to_owned()
}

fn this_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

fn visit(gw: &Gateway, address: &str, details: &str, from: Option<IpAddr>) -> Answer {
    let mut req = Request::new("POST", address);
    req.headers.push(("content-type", FORM.into()));
    req.headers.push(("accept-language", "en".into()));
    req.body = format!("platform={}{details}", this_platform()).into_bytes();
    req.from = from;
    https(gw, &req)
}

/// Saves a downloaded program as the end user would, runnable.
fn save(dir: &Path, name: &str, got: &Answer) -> PathBuf {
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.header("content-type"), "application/octet-stream");
    let path = dir.join(name);
    std::fs::write(&path, &got.body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `connect --next` on the relay (batch mode).
fn connect_next(console: &Console) -> Proc {
    Proc::spawn(
        console
            .command()
            .args(["connect", "--next", "--path", "relay"]),
    )
}

#[test]
fn an_end_user_comes_through_a_channel_and_the_next_free_technician_helps() {
    let s = Scenario::start(&[]);
    let address = add_channel(&s.gw, "front desk", &["--ask-details"]);
    let listed = s.gw.admin(&["channel", "list"], "");
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&address));

    // The page asks for a name and the problem (both optional), in the
    // browser's language, without scripts.
    let mut get = Request::new("GET", &address);
    get.headers.push(("accept-language", "nl".into()));
    let page = https(&s.gw, &get);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("<html lang=\"nl\">"), "{html}");
    assert!(html.contains("eerstvolgende vrije technicus"), "{html}");
    assert!(html.contains("<label for=\"name\">") && html.contains("<textarea id=\"problem\""));
    assert!(!html.contains("<script"));
    // An address that is not a channel's says so, plainly.
    let dead = https(
        &s.gw,
        &Request::new("GET", &format!("/c/{}", random_hex(16))),
    );
    assert_eq!(dead.status, 404);
    assert!(
        dead.text().contains("does not work any more"),
        "{}",
        dead.text()
    );

    // The visit: the program downloads at once; its end user waits for
    // whoever is free.
    let got = visit(
        &s.gw,
        &address,
        "&name=Grace+Hopper&problem=The+scanner+says%0D%0AE42+%3Cagain%3E",
        None,
    );
    let path = save(s.files.path(), "lifeline-support", &got);
    let mut applet = Proc::applet(&path, &[]);
    applet
        .out
        .wait_for("The next free technician will help you with \"The scanner says E42 <again>\"");
    applet.out.wait_for("Waiting for the next free technician");

    // Every technician of the group sees them in the queue.
    let queue = wait_until("the end user in the queue", WAIT, || {
        let out = s.console.run(&["queue"], "");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("Grace Hopper").then_some(text)
    });
    assert!(
        queue.contains("channel front desk: The scanner says E42 <again>"),
        "{queue}"
    );

    // The next free technician takes them; the end user learns who it is
    // from the verified session (the chat carries her name).
    let mut tech = connect_next(&s.console);
    let guid = tech.event("session")["guid"].as_str().unwrap().to_owned();
    assert_eq!(tech.event("paired")["guid"], guid.as_str());
    let sas = tech.event("sas")["code"].as_str().unwrap().to_owned();
    applet.out.wait_for(&format!("Verification code: {sas}"));
    chat_both_ways(
        &mut tech,
        &mut applet,
        "hello Grace, I can help",
        "thank you",
    );
    end_session(&mut tech, &mut applet);

    // Nobody else is waiting now.
    let mut late = connect_next(&s.console);
    assert!(!late.wait_exit(WAIT).success());
    let said = late.rest().join("\n");
    assert!(
        said.contains("nobody is waiting in your group's queue"),
        "{said}"
    );

    let audit = s.gw.audit(Some(&guid));
    let has = |event: &str, detail: &str| {
        audit.iter().any(|e| {
            e["event"] == event && e["detail"].as_str().is_some_and(|d| d.contains(detail))
        })
    };
    assert!(has("created", "through channel front desk"), "{audit:?}");
    assert!(
        has("applet downloaded", "through channel front desk"),
        "{audit:?}"
    );
    assert!(
        has("picked", "from channel front desk's queue"),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "paired" && e["actor"] == TECH_EMAIL)
    );
}

#[test]
fn visits_are_limited_per_source_and_a_removed_channel_stops_at_once() {
    let s = Scenario::start(&[]);
    let address = add_channel(&s.gw, "shop", &[]);
    let here = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 61)));
    for i in 0..5 {
        let got = visit(&s.gw, &address, "", here);
        assert_eq!(got.status, 200, "visit {i}: {}", got.text());
    }
    let sixth = visit(&s.gw, &address, "", here);
    assert_eq!(sixth.status, 429);
    assert!(sixth.text().contains("Too many tries"), "{}", sixth.text());
    // Another source is not held up by this one.
    let elsewhere = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 62)));
    assert_eq!(visit(&s.gw, &address, "", elsewhere).status, 200);

    let out = s.gw.admin(&["channel", "remove", "shop"], "");
    assert!(out.status.success());
    let gone = visit(&s.gw, &address, "", elsewhere);
    assert_eq!(gone.status, 404);
    assert!(gone.text().contains("does not work any more"));
    let audit = s.gw.audit(None);
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "channel removed" && e["detail"] == "shop"),
        "{audit:?}"
    );
}
#[test]
fn two_technicians_on_two_nodes_race_for_one_end_user_and_one_wins() {
    let (_store, _dirs, a, b) = two_nodes();
    a.add_technician(TECH_EMAIL, TECH_NAME, TECH_PASSWORD);
    a.add_technician("grace@example.com", "Grace Hopper", TECH_PASSWORD);
    let ada = Console::new();
    ada.login(&a, TECH_EMAIL, TECH_PASSWORD);
    let grace = Console::new();
    grace.login(&b, "grace@example.com", TECH_PASSWORD);
    let address = add_channel(&a, "front desk", &[]);
    let files = TempDir::new("files");
    let mut wins = [0, 0];
    for round in 0..3 {
        let got = visit(&a, &address, "", None);
        let path = save(files.path(), &format!("support-{round}"), &got);
        let mut applet = Proc::applet(&path, &[]);
        applet.out.wait_for("Waiting for the next free technician");
        wait_until("the end user in the queue", WAIT, || {
            let out = grace.run(&["queue"], "");
            String::from_utf8_lossy(&out.stdout)
                .contains("channel front desk")
                .then_some(())
        });
        // Both at once, each through its own node's portal.
        let mut racers = [connect_next(&ada), connect_next(&grace)];
        let mut winner = None;
        for (i, r) in racers.iter_mut().enumerate() {
            let first = r.event_any();
            match first["event"].as_str() {
                Some("session") => {
                    assert!(winner.is_none(), "two consoles took one end user");
                    winner = Some(i);
                }
                Some("error") => {
                    let m = first["message"].as_str().unwrap();
                    assert!(
                        m.contains("nobody is waiting")
                            || m.contains("another technician has just taken"),
                        "{m}"
                    );
                    assert!(!r.wait_exit(WAIT).success());
                }
                _ => panic!("unexpected first event {first}"),
            }
        }
        let w = winner.expect("nobody took the end user");
        wins[w] += 1;
        let tech = &mut racers[w];
        let sas = tech.event("sas")["code"].as_str().unwrap().to_owned();
        applet.out.wait_for(&format!("Verification code: {sas}"));
        let name = if w == 0 { TECH_NAME } else { "Grace Hopper" };
        tech.send("say which of us?");
        applet.out.wait_for(&format!("{name}: which of us?"));
        tech.send("end done");
        assert_eq!(tech.event("ended")["by"], "technician");
        applet.out.wait_for("Session ended");
        assert!(applet.wait_exit(Duration::from_secs(20)).success());
    }
    eprintln!("wins: ada (node-a) {}, grace (node-b) {}", wins[0], wins[1]);
}
