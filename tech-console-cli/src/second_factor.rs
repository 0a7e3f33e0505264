//! The second factor at `tech-console login`: asking for the code, and
//! setting up an authenticator app when the account must have one (the
//! QR code drawn in the terminal, the key to type by hand, then the
//! recovery codes, shown once).

use anyhow::{Context, bail};
use lifeline_protocol::portal::{LoginResponse, TotpEnrollment};
use std::io::{BufRead, IsTerminal, Write};

/// Reads a code: the next line of standard input with `--totp-stdin`,
/// else asked for on the terminal.
pub fn read_code(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !from_stdin && !stdin.is_terminal() {
        bail!(
            "this account logs in with a code from an authenticator app as well: run `tech-console \
             login` on a terminal, or give the code on standard input with --totp-stdin"
        );
    }
    if !from_stdin {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    let n = stdin
        .lock()
        .read_line(&mut line)
        .context("reading the code")?;
    let code = line.trim();
    if n == 0 || code.is_empty() {
        bail!("no code given");
    }
    Ok(code.to_owned())
}

/// What a technician setting up their second factor is shown.
pub fn show_enrollment(e: &TotpEnrollment) -> anyhow::Result<()> {
    let qr = qrcode::QrCode::new(e.uri.as_bytes())
        .context("drawing the QR code")?
        .render::<qrcode::render::unicode::Dense1x2>()
        // Light modules drawn as the terminal's text colour would invert
        // the code on a dark terminal: draw dark on light explicitly.
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    let key = e
        .secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Your account logs in with a second factor from now on. In an authenticator app on your \
         phone\n(any app for one-time codes: FreeOTP, Aegis, Google or Microsoft Authenticator…), \
         add an account\nby scanning this code:\n\n{qr}\n\nor by typing this key: {key}\n\
         ({})\n",
        e.uri
    )?;
    out.flush()?;
    Ok(())
}

/// What a login with a new second factor, or a recovery code, adds.
pub fn show_after_login(resp: &LoginResponse) {
    if !resp.recovery_codes.is_empty() {
        println!(
            "Second factor set up. Keep these recovery codes somewhere safe, away from this \
             computer:\neach logs you in once, instead of a code from the app, if the phone is \
             lost.\n"
        );
        for c in &resp.recovery_codes {
            println!("    {c}");
        }
        println!();
    }
    if let Some(left) = resp.recovery_codes_left {
        let advice = if left <= 2 {
            ": ask the gateway's administrator to reset your second factor soon, for new ones"
        } else {
            ""
        };
        println!("recovery code used; {left} left{advice}");
    }
}
