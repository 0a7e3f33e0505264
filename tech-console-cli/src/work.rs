//! Remote work from the console's command line: the verbs the technician
//! types (`/shell`, `/send FILE`, … on a terminal; the same words without
//! the slash in batch mode).

use lifeline_protocol::Permissions;
use lifeline_remote::console::Request;
use std::path::PathBuf;

/// The remote-work verbs, for the help line and the error on a typo.
pub const VERBS: &str = "ask CAPS [session], shell [COLSxROWS], keys TEXT, resize COLS ROWS, run COMMAND, \
send PATH, fetch PATH [INTO], ls [PATH], sysinfo, open URL, stop [ID]";

/// Splits arguments into words; a word starting with `"` is a JSON string
/// (so paths with spaces and exact keystrokes can be written).
fn words(rest: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut s = rest.trim_start();
    while !s.is_empty() {
        if s.starts_with('"') {
            let mut de = serde_json::Deserializer::from_str(s).into_iter::<String>();
            let w = de
                .next()
                .ok_or("a quoted word does not end")?
                .map_err(|_| "a quoted word must be a JSON string, like \"a b\\n\"")?;
            let used = de.byte_offset();
            out.push(w);
            s = s[used..].trim_start();
        } else {
            let end = s.find(char::is_whitespace).unwrap_or(s.len());
            out.push(s[..end].to_owned());
            s = s[end..].trim_start();
        }
    }
    Ok(out)
}

/// One argument that may hold spaces unquoted: the whole rest, or the
/// first word if it is quoted.
fn one(rest: &str) -> Result<String, String> {
    let rest = rest.trim();
    if rest.starts_with('"') {
        words(rest)?
            .into_iter()
            .next()
            .ok_or_else(|| "missing argument".to_owned())
    } else {
        Ok(rest.to_owned())
    }
}

fn size(s: &str) -> Option<(u16, u16)> {
    let (c, r) = s.split_once(['x', ' '])?;
    Some((c.trim().parse().ok()?, r.trim().parse().ok()?))
}

/// Parses a remote-work verb; `None` if `verb` is not one.
pub fn parse(verb: &str, rest: &str) -> Option<Result<Request, String>> {
    let r = match verb {
        "ask" => (|| {
            let w = words(rest)?;
            let caps = Permissions::parse_list(
                w.first()
                    .ok_or("ask needs capabilities, e.g. `ask run-command,system-info session`")?,
            )?;
            let whole_session = match w.get(1).map(String::as_str) {
                None => false,
                Some("session") => true,
                Some(other) => {
                    return Err(format!(
                        "unknown word {other:?}; `session` asks for the whole session"
                    ));
                }
            };
            Ok(Request::Ask {
                caps,
                whole_session,
            })
        })(),
        "shell" => match rest.trim() {
            "" => Ok(Request::Shell { cols: 80, rows: 24 }),
            s => size(s)
                .map(|(cols, rows)| Request::Shell { cols, rows })
                .ok_or_else(|| "shell takes a size like 120x40".to_owned()),
        },
        "keys" => {
            let rest = rest.trim_start();
            if rest.starts_with('"') {
                one(rest).map(|k| Request::Keys(k.into_bytes().into()))
            } else {
                Ok(Request::Keys(format!("{rest}\n").into_bytes().into()))
            }
        }
        "resize" => size(rest.trim())
            .map(|(cols, rows)| Request::Resize { cols, rows })
            .ok_or_else(|| "resize takes COLS ROWS".to_owned()),
        "run" if !rest.trim().is_empty() => Ok(Request::Run(rest.trim().to_owned())),
        "run" => Err("run needs a command line".to_owned()),
        "send" => one(rest).and_then(|p| {
            if p.is_empty() {
                Err("send needs a file or folder".to_owned())
            } else {
                Ok(Request::Send(PathBuf::from(p)))
            }
        }),
        "fetch" => words(rest).and_then(|w| match w.as_slice() {
            [path] => Ok(Request::Fetch {
                path: path.clone(),
                into: PathBuf::from("."),
            }),
            [path, into] => Ok(Request::Fetch {
                path: path.clone(),
                into: PathBuf::from(into),
            }),
            _ => Err("fetch takes PATH [INTO] (quote paths with spaces: \"My Files\")".to_owned()),
        }),
        "ls" => one(rest).map(|p| Request::List(if p.is_empty() { "~".into() } else { p })),
        "sysinfo" => Ok(Request::SystemInfo),
        "open" => one(rest).and_then(|u| {
            if u.is_empty() {
                Err("open needs a web address".to_owned())
            } else {
                Ok(Request::OpenUrl(u))
            }
        }),
        "stop" => match rest.trim() {
            "" => Ok(Request::Stop(0)),
            id => id
                .parse()
                .map(Request::Stop)
                .map_err(|_| "stop takes a request number".to_owned()),
        },
        _ => return None,
    };
    Some(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn verbs_parse_and_typos_are_refused() {
        assert_eq!(
            parse("shell", "120x40").unwrap().unwrap(),
            Request::Shell {
                cols: 120,
                rows: 40
            }
        );
        assert_eq!(
            parse("keys", r#""ls\u0003""#).unwrap().unwrap(),
            Request::Keys(b"ls\x03".to_vec().into())
        );
        assert_eq!(
            parse("fetch", r#""My Files/a b.txt" /tmp/x"#)
                .unwrap()
                .unwrap(),
            Request::Fetch {
                path: "My Files/a b.txt".into(),
                into: "/tmp/x".into()
            }
        );
        assert_eq!(
            parse("ask", "run-command,system-info session")
                .unwrap()
                .unwrap(),
            Request::Ask {
                caps: Permissions::RUN_COMMAND.union(Permissions::SYSTEM_INFO),
                whole_session: true
            }
        );
        assert!(parse("ask", "fly").unwrap().is_err());
        assert!(parse("run", " ").unwrap().is_err());
        assert!(parse("stauts", "").is_none());
    }
}
