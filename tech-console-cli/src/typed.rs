//! What a line typed in line mode or in the full-screen console means:
//! chat, or a `/command` — recognised exactly. A `/word` that is not a
//! command is refused here with a hint and never sent as chat; `//text`
//! is chat that starts with a slash.

use lifeline_remote::console::Request;
use lifeline_session::linktest::Direction;
use lifeline_session::live::Command;

/// A typed line's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// Nothing (an empty line).
    Nothing,
    /// A chat line for the end user.
    Chat(String),
    /// End the session, with this reason.
    End(String),
    /// `/quit`: leave (line mode: end the session; the full-screen
    /// console: close, ending every session).
    Quit,
    /// Show the path in use.
    Status,
    /// Measure one round trip.
    Probe,
    /// The command list.
    Help,
    /// Session commands (a link test: one per direction).
    Session(Vec<Command>),
    /// The end user's command prompt, in this terminal.
    Shell,
    /// Remote work.
    Work(Request),
    /// A line for the session's notes.
    Note(String),
    /// Close an ended session's tab (full-screen console).
    Close,
    /// Hand the session to the colleague with this e-mail (`None`:
    /// withdraw the offer).
    Transfer(Option<String>),
}

/// The commands, for `/help` and the help line.
pub const HELP: &str = "\
commands (anything else is chat; //text sends a line starting with /):
  /end [REASON]  end the session        /status  the path and its round trip
  /shell         the end user's prompt  /probe   measure one round trip
  /linktest SIZE [to_user|from_user|both]   check the link byte for byte
  /ask CAPS [session] · /run COMMAND · /send PATH · /fetch PATH [INTO]
  /ls [PATH] · /sysinfo · /open URL · /stop [ID]   (each with consent)
  /note TEXT     keep a note            /close   close an ended tab
  /transfer EMAIL  hand to a colleague  /transfer cancel  keep it
  /quit          leave                  /help    this list";

/// Parses a typed line.
pub fn parse(line: &str) -> Result<Typed, String> {
    let line = line.trim_end();
    if let Some(text) = line.strip_prefix("//") {
        return Ok(Typed::Chat(format!("/{text}")));
    }
    let Some(word) = line.strip_prefix('/') else {
        return Ok(if line.trim().is_empty() {
            Typed::Nothing
        } else {
            Typed::Chat(line.to_owned())
        });
    };
    let (verb, rest) = word.split_once(' ').unwrap_or((word, ""));
    let rest_trimmed = rest.trim();
    Ok(match verb {
        "end" => Typed::End(if rest_trimmed.is_empty() {
            "the technician ended the session".into()
        } else {
            rest_trimmed.to_owned()
        }),
        "quit" | "exit" => Typed::Quit,
        "status" => Typed::Status,
        "probe" => Typed::Probe,
        "help" | "?" => Typed::Help,
        "shell" if rest_trimmed.is_empty() => Typed::Shell,
        "note" if rest_trimmed.is_empty() => return Err("/note needs the text to keep".into()),
        "note" => Typed::Note(rest_trimmed.to_owned()),
        "close" => Typed::Close,
        "transfer" => Typed::Transfer(parse_transfer(rest)?),
        "linktest" => Typed::Session(parse_linktest(rest)?),
        _ => match crate::work::parse(verb, rest) {
            Some(r) => Typed::Work(r?),
            None => {
                return Err(format!(
                    "unknown command /{verb} (not sent); /help lists the commands, //{verb}… sends it as chat"
                ));
            }
        },
    })
}

/// `EMAIL` or `cancel` of the transfer command.
pub fn parse_transfer(args: &str) -> Result<Option<String>, String> {
    match args.trim() {
        "" => Err("transfer needs a colleague's e-mail (or `cancel`)".into()),
        "cancel" => Ok(None),
        to if to.contains('@') && !to.contains(char::is_whitespace) => Ok(Some(to.to_lowercase())),
        other => Err(format!("{other:?} is not an e-mail address")),
    }
}

/// `SIZE [to_user|from_user|both]` of the link test command.
pub fn parse_linktest(args: &str) -> Result<Vec<Command>, String> {
    let mut words = args.split_whitespace();
    let size = words.next().ok_or("linktest needs a size, e.g. 256M")?;
    let (digits, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len()),
    );
    let n: u64 = digits.parse().map_err(|_| format!("bad size {size:?}"))?;
    let mult = match unit {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        _ => return Err(format!("bad size {size:?}: use a K, M or G suffix")),
    };
    let bytes = n
        .checked_mul(mult)
        .filter(|b| *b <= lifeline_session::linktest::MAX_TEST_BYTES)
        .ok_or("a link test moves at most 4G")?;
    let dirs: &[Direction] = match words.next().unwrap_or("to_user") {
        "to_user" => &[Direction::ToUser],
        "from_user" => &[Direction::FromUser],
        "both" => &[Direction::ToUser, Direction::FromUser],
        other => {
            return Err(format!(
                "bad direction {other:?}: to_user, from_user or both"
            ));
        }
    };
    Ok(dirs
        .iter()
        .map(|&direction| Command::LinkTest { bytes, direction })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_exact_and_typos_are_not_chat() {
        assert_eq!(
            parse("/endpoint config is wrong"),
            Err("unknown command /endpoint (not sent); /help lists the commands, //endpoint… sends it as chat".into())
        );
        assert!(parse("/stauts").is_err());
        assert_eq!(
            parse("/end"),
            Ok(Typed::End("the technician ended the session".into()))
        );
        assert_eq!(parse("/end done now"), Ok(Typed::End("done now".into())));
        assert_eq!(parse("//etc/hosts"), Ok(Typed::Chat("/etc/hosts".into())));
        assert_eq!(parse("hello /end"), Ok(Typed::Chat("hello /end".into())));
        assert_eq!(parse("   "), Ok(Typed::Nothing));
        assert_eq!(parse("/shell"), Ok(Typed::Shell));
        assert!(matches!(parse("/shell 100x30"), Ok(Typed::Work(_))));
        assert_eq!(
            parse("/note printer is a HP"),
            Ok(Typed::Note("printer is a HP".into()))
        );
        assert!(parse("/note").is_err());
        assert_eq!(
            parse("/linktest 1M both").unwrap(),
            Typed::Session(parse_linktest("1M both").unwrap())
        );
        assert!(parse("/linktest 5G").is_err());
        assert_eq!(
            parse("/transfer Grace@Example.com"),
            Ok(Typed::Transfer(Some("grace@example.com".into())))
        );
        assert_eq!(parse("/transfer cancel"), Ok(Typed::Transfer(None)));
        assert!(parse("/transfer").is_err());
        assert!(parse("/transfer grace").is_err());
        assert!(matches!(
            parse("/run ls -l"),
            Ok(Typed::Work(Request::Run(_)))
        ));
    }
}
