//! Checking and opening a web address the technician sends.
//!
//! Only plain web pages: an absolute `http://` or `https://` address with
//! a host. Everything else a browser or desktop would also open —
//! `javascript:`, `file:`, `smb:`, custom schemes that start programs — is
//! refused, and so are addresses that read differently from what they are
//! (a user name before the host, backslashes, invisible characters).
//!
//! The address is handed to the system's opener as one argument, never
//! through a shell, so no quoting can turn it into a command.

use lifeline_protocol::text::is_unsafe;
use lifeline_protocol::work::MAX_PATH;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

/// How long the opener may take before we stop waiting for it.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a URL was not opened.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// [`check`] refused it.
    #[error("{0}")]
    Refused(&'static str),
    /// The opener is not installed.
    #[error("there is no program to open web addresses ({program} is not installed)")]
    NoOpener {
        /// The program.
        program: &'static str,
    },
    /// The opener did not start.
    #[error("could not start {program}: {source}")]
    Start {
        /// The program.
        program: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The opener said it could not open it.
    #[error("the browser could not be opened ({program} ended with {status})")]
    Failed {
        /// The program.
        program: &'static str,
        /// How it ended.
        status: ExitStatus,
    },
    /// The opener did not finish within [`OPEN_TIMEOUT`].
    #[error("the browser did not open within 10 seconds")]
    TimedOut,
}

/// Accepts only absolute `http://` or `https://` URLs with a host, at most
/// [`MAX_PATH`] bytes, without whitespace or control characters; returns
/// it trimmed, or why not in plain words.
///
/// Stricter than a browser on purpose: no user name before the host
/// (`https://bank.example@evil.example/` is evil.example), no backslash
/// (browsers read it as `/`), and no `"`, `<`, `>` or backquote (never
/// valid unencoded; quoting trouble for openers).
pub fn check(url: &str) -> Result<String, &'static str> {
    let url = url.trim();
    if url.is_empty() {
        return Err("the address is empty");
    }
    if url.len() > MAX_PATH {
        return Err("the address is too long");
    }
    if url.chars().any(|c| c.is_whitespace() || is_unsafe(c)) {
        return Err("the address has spaces or control characters in it");
    }
    if url.contains(['\\', '"', '<', '>', '`']) {
        return Err("the address has characters that are not allowed in web addresses");
    }
    let rest = after_scheme(url, "https://")
        .or_else(|| after_scheme(url, "http://"))
        .ok_or("only web addresses (http:// or https://) can be opened")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("addresses with a user name before the host are not opened");
    }
    check_host(authority)?;
    Ok(url.to_owned())
}

/// What follows `scheme` (any case) at the start of `url`.
fn after_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &url[scheme.len()..])
}

/// `host[:port]` or `[v6]:port`: a host name of letters, digits, `-`,
/// `.` and `_`, or a bracketed IPv6 address; a port of digits.
fn check_host(authority: &str) -> Result<(), &'static str> {
    const NO_HOST: &str = "the address has no host name";
    const BAD_HOST: &str = "the host name has characters a host name cannot have";
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (v6, after) = v6.split_once(']').ok_or(BAD_HOST)?;
            if v6.is_empty()
                || !v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
            {
                return Err(BAD_HOST);
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(BAD_HOST)?),
            };
            ("v6", port)
        }
        None => authority
            .rsplit_once(':')
            .map_or((authority, None), |(host, port)| (host, Some(port))),
    };
    if host.is_empty() {
        return Err(NO_HOST);
    }
    if !host
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(BAD_HOST);
    }
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the port in the address is not a number");
    }
    Ok(())
}

/// Opens `url` (checked again here) in the default browser: `xdg-open`
/// on Linux and the BSDs, `open` on macOS, `rundll32
/// url.dll,FileProtocolHandler` on Windows. Waits for the opener to exit,
/// at most [`OPEN_TIMEOUT`]; an opener still running then is left alone
/// (it may be the browser itself, showing the page).
pub async fn open(url: &str) -> Result<(), UrlError> {
    let url = check(url).map_err(UrlError::Refused)?;
    let (program, command) = opener(&url);
    run(program, command).await
}

/// The system's opener for `url`, as one argument.
fn opener(url: &str) -> (&'static str, tokio::process::Command) {
    #[cfg(target_os = "macos")]
    let program = "open";
    #[cfg(windows)]
    let program = "rundll32";
    #[cfg(not(any(target_os = "macos", windows)))]
    let program = "xdg-open";
    let mut command = tokio::process::Command::new(program);
    #[cfg(windows)]
    command.arg("url.dll,FileProtocolHandler");
    command.arg(url);
    (program, command)
}

/// Runs an opener with nothing attached (a browser it starts must not
/// hold our pipes open), and says how it ended.
async fn run(program: &'static str, mut command: tokio::process::Command) -> Result<(), UrlError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            UrlError::NoOpener { program }
        } else {
            UrlError::Start { program, source }
        }
    })?;
    match tokio::time::timeout(OPEN_TIMEOUT, child.wait()).await {
        Err(_) => Err(UrlError::TimedOut),
        Ok(Err(source)) => Err(UrlError::Start { program, source }),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(UrlError::Failed { program, status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_web_addresses() {
        for url in [
            "https://example.com/a?b=c",
            "http://example.com",
            "HTTPS://Example.COM:8443/x#y",
            "http://192.0.2.7:8080/",
            "http://[2001:db8::1]:8080/a",
            "https://de.wikipedia.org/wiki/Straße",
            "https://example.com/?q='x'$HOME;a&b|c",
        ] {
            assert_eq!(check(url).as_deref(), Ok(url), "{url}");
        }
        assert_eq!(
            check("  https://example.com/a \n").as_deref(),
            Ok("https://example.com/a")
        );
    }

    #[test]
    fn refuses_everything_else() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_PATH));
        for url in [
            "",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "smb://server/share",
            "example.com",
            "//example.com",
            "http://",
            "https:///path",
            "http://:80/",
            "https://example.com/a b",
            "https://example.com/\u{1b}[2J",
            "https://example.com/\u{202e}gpj.exe",
            "https://bank.example@evil.example/",
            "https://evil.example\\@bank.example/",
            "https://exa mple.com/",
            "https://example.com:port/",
            "https://example.com\"/",
            "http://[::1/",
            long.as_str(),
        ] {
            let refused = check(url);
            assert!(refused.is_err(), "{url:?} was accepted");
        }
        assert_eq!(check(&long), Err("the address is too long"));
        assert_eq!(
            check("javascript:alert(1)"),
            Err("only web addresses (http:// or https://) can be opened")
        );
        assert_eq!(check("http://"), Err("the address has no host name"));
    }

    /// `xdg-open` itself, with a fake browser.
    #[cfg(all(unix, not(target_os = "macos")))]
    mod xdg {
        use super::super::*;

        /// A directory of its own under the system's temporary one.
        fn scratch(name: &str) -> std::path::PathBuf {
            let dir =
                std::env::temp_dir().join(format!("lifeline-url-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }

        /// `xdg-open` for `url` in a bare environment (no desktop, so it uses
        /// `$BROWSER`), or `None` when it is not installed.
        fn xdg_open(url: &str, browser: &std::path::Path) -> Option<tokio::process::Command> {
            let on_path = std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join("xdg-open").is_file())
            });
            if !on_path {
                eprintln!(
                    "!!!!! xdg-open is missing: SKIPPING the test that opens a URL (install xdg-utils) !!!!!"
                );
                return None;
            }
            let (program, mut command) = opener(url);
            assert_eq!(program, "xdg-open");
            command.env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                command.env("PATH", path);
            }
            command.env("BROWSER", browser);
            Some(command)
        }

        /// A browser that writes its one argument to `got`.
        fn browser(dir: &std::path::Path, got: &std::path::Path) -> std::path::PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let script = dir.join("browser");
            std::fs::write(
                &script,
                format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", got.display()),
            )
            .unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            script
        }

        #[tokio::test]
        async fn xdg_open_delivers_the_exact_url() {
            let dir = scratch("open");
            let got = dir.join("got");
            let url = check("https://example.com/a?b=c&d='x'$(id);e%20f#g").unwrap();
            let Some(command) = xdg_open(&url, &browser(&dir, &got)) else {
                return;
            };
            run("xdg-open", command).await.unwrap();
            assert_eq!(std::fs::read_to_string(&got).unwrap(), url);
            std::fs::remove_dir_all(&dir).unwrap();
        }

        #[tokio::test]
        async fn a_failing_browser_is_reported() {
            let Some(command) = xdg_open("https://example.com/", std::path::Path::new("false"))
            else {
                return;
            };
            let err = run("xdg-open", command).await.unwrap_err();
            assert!(matches!(err, UrlError::Failed { .. }), "{err:?}");
            assert!(
                err.to_string()
                    .starts_with("the browser could not be opened")
            );
        }
    }

    #[tokio::test]
    async fn refusals_and_missing_openers_in_words() {
        let err = open("file:///etc/passwd").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "only web addresses (http:// or https://) can be opened"
        );
        let command = tokio::process::Command::new("/nonexistent/opener");
        let err = run("opener", command).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "there is no program to open web addresses (opener is not installed)"
        );
    }
}
