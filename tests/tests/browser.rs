//! The end user's page in a real browser: Debian's headless Chromium,
//! driven by Playwright's client (`tests/browser/pin.mjs`), loads the
//! page as a Dutch visitor on a phone, checks its markup (html-validate)
//! and accessibility (axe-core), types a wrong PIN and the right one, and
//! saves the download; the downloaded applet then runs, pairs with the
//! technician and chats. A channel's page gets the same checks, a name
//! and a problem typed, and its download waits for the next free
//! technician, who takes it with `connect --next`. `.ci/run` installs Chromium and the node
//! packages; without them this test fails and says what is missing.
#![allow(clippy::unwrap_used)]

use lifeline_tests::*;
use std::path::Path;
use std::process::Command;

fn browser_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/browser"))
}

#[test]
fn an_end_user_types_the_pin_in_a_browser_and_runs_what_it_downloads() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is not installed (apt-get install chromium; .ci/run does it)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "the browser test's node packages are missing (cd tests/browser && npm ci; .ci/run \
         does it)"
    );
    let s = Scenario::start(&[]);
    let out = s
        .console
        .run(&["session", "new", "--label", "browser", "--pin"], "");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let guid = text
        .lines()
        .find_map(|l| l.strip_prefix("session "))
        .unwrap()
        .trim()
        .to_owned();
    let pin: String = text
        .lines()
        .find_map(|l| l.strip_prefix("PIN"))
        .unwrap()
        .trim()
        .chars()
        .take(7)
        .filter(char::is_ascii_digit)
        .collect();
    let wrong = format!("{:06}", (pin.parse::<u32>().unwrap() + 1) % 1_000_000);
    let saved = s.files.path().join("downloaded-by-browser");
    // And a channel that asks for a name and the problem.
    let added = s.gw.admin(
        &[
            "channel",
            "add",
            "front desk",
            "--group",
            "default",
            "--ask-details",
        ],
        "",
    );
    let added = String::from_utf8_lossy(&added.stdout).into_owned();
    let channel = added[added.find("/c/").unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let from_channel = s.files.path().join("downloaded-from-channel");
    let run = Command::new("node")
        .current_dir(browser_dir())
        .arg("pin.mjs")
        .arg(format!("https://{}/", s.gw.addr))
        .arg(&wrong)
        .arg(&pin)
        .arg(&saved)
        .arg(format!("https://{}{channel}", s.gw.addr))
        .arg(&from_channel)
        .output()
        .expect("node (apt-get install nodejs)");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("browser: {r:#}");
    served_well(&r);
    served_well(&r["channel"]);
    assert_eq!(r["channel"]["overflows"], false, "{r:#}");
    assert_eq!(r["channel"]["download"], "lifeline-support");
    assert_eq!(r["lang"], "nl");
    assert_eq!(r["heading"], "Hulp van uw technicus");
    assert_eq!(r["overflows"], false, "the page is wider than a phone");
    assert!(
        r["wrong"]
            .as_str()
            .unwrap()
            .starts_with("Deze code werkt niet"),
        "{r:#}"
    );
    assert_eq!(r["download"], "lifeline-support");

    // What the browser saved is the end user's applet: it runs, pairs and
    // chats.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut applet = Proc::applet(&saved, &[]);
    applet.out.wait_for(&format!("Waiting for {TECH_NAME}"));
    let (mut tech, _) = pair_with(
        &s.console,
        &mut applet,
        "browser",
        &guid,
        &["--path", "relay"],
    );
    chat_both_ways(&mut tech, &mut applet, "hallo", "dank u");
    end_session(&mut tech, &mut applet);

    // What the channel's page gave waits for the next free technician,
    // with the problem typed in the browser.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&from_channel, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut applet = Proc::applet(&from_channel, &[]);
    applet.out.wait_for("with \"De scanner zegt E42\"");
    applet.out.wait_for("Waiting for the next free technician");
    let mut tech = Proc::spawn(
        s.console
            .command()
            .args(["connect", "--next", "--path", "relay"]),
    );
    let sas = tech.event("sas")["code"].as_str().unwrap().to_owned();
    applet.out.wait_for(&format!("Verification code: {sas}"));
    chat_both_ways(&mut tech, &mut applet, "hallo Grace", "dank u");
    end_session(&mut tech, &mut applet);
}

/// What every page must be as served: found, its CSP refusing nothing
/// of its own, its stylesheet applied (the button's own blue), valid
/// markup, and no serious accessibility finding.
fn served_well(r: &serde_json::Value) {
    assert_eq!(r["status"], 200, "{r:#}");
    assert_eq!(r["csp_refusals"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["button_colour"], "rgb(11, 92, 173)", "{r:#}");
    assert_eq!(
        r["markup"],
        serde_json::json!([]),
        "the page's markup: {r:#}"
    );
    let serious: Vec<_> = r["axe"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .collect();
    assert!(serious.is_empty(), "accessibility: {serious:#?}");
}
