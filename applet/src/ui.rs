//! What the end user sees and types. Plain lines on stdout, so it works in
//! any terminal and can be read by a screen reader (and by tests).

use lifeline_protocol::trailer::TrailerBody;
use std::io::Write;

/// Prints one line and flushes (stdout may be a pipe).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

/// The greeting: who is asking to connect, and what they may do.
pub fn greet(body: &TrailerBody, development_build: bool) {
    say(format!(
        "Lifeline remote support from {}",
        body.operator_name
    ));
    if development_build {
        say("(development build: trusting the operator key carried in this file)");
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
    if body.permissions == lifeline_protocol::Permissions::NONE {
        say("They can only chat with you.");
    } else {
        let extras = body.permissions.to_string();
        let extras = extras.strip_prefix("chat, ").unwrap_or(&extras);
        say(format!(
            "They can chat with you. They may also ask for: {extras} — each only if you say yes."
        ));
    }
    say("Type a message and press Enter to chat; type /end or press Ctrl-C to end at any time.");
}
