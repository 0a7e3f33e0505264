//! What the end user sees and types. Plain lines on stdout, so it works in
//! any terminal and can be read by a screen reader (and by tests).
//!
//! Every line goes through [`say`], which shows control and format
//! characters escaped ([`lifeline_protocol::text::neutralize`]): much of what
//! is printed — chat, the technician's and operator's names, end reasons,
//! the gateway's messages — was written by someone else, and the terminal
//! must never obey it.

use lifeline_protocol::trailer::TrailerBody;
use std::io::Write;

/// Prints one line, neutralized, and flushes (stdout may be a pipe).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        lifeline_protocol::text::neutralize(line.as_ref())
    );
    let _ = out.flush();
}

/// What a development build says about itself, wherever it shows who
/// published it.
pub const UNVERIFIED_PUBLISHER: &str = "Warning: the publisher of this program cannot be verified. \
It is a development build that trusts whatever is written into its own file, so anyone \
could have made it. Only continue if you expected it from your technician.";

/// The greeting: who is asking to connect, and what they may do.
pub fn greet(body: &TrailerBody, development_build: bool) {
    say(format!(
        "Lifeline remote support from {}",
        body.operator_name
    ));
    if development_build {
        say(UNVERIFIED_PUBLISHER);
    }
    let label = if body.label.is_empty() {
        String::new()
    } else {
        format!(" about \"{}\"", body.label)
    };
    say(format!(
        "Technician {} would like to help you{label}.",
        body.technician_name
    ));
    let caps = body.permissions.capabilities();
    // Only what this program can do: a permission for something it does
    // not have (seeing the screen, restarting) is never offered.
    let offered: Vec<&str> = caps
        .each()
        .filter(|c| {
            !matches!(
                *c,
                lifeline_protocol::Permissions::SCREEN_VIEW
                    | lifeline_protocol::Permissions::REBOOT
            )
        })
        .map(lifeline_remote::applet::plain_name)
        .collect();
    if offered.is_empty() {
        say("They can only chat with you.");
    } else {
        say(format!(
            "They can chat with you. They may also ask for: {} — each only if you say yes.",
            offered.join(", ")
        ));
        say(
            "Type /grants to see what you allowed, /withdraw to take it back, /stop to stop what runs.",
        );
    }
    say("Type a message and press Enter to chat; type /end or press Ctrl-C to end at any time.");
}
