//! Shell completions (bash, zsh, fish) and manual pages for Lifeline's
//! three programs, generated from their clap definitions so they can never
//! disagree with the programs themselves. Each program has a command that
//! calls into here (`gateway completions bash`, `tech-console man DIR`,
//! `applet --completions bash`, …) — and [`one_line`], how the three
//! print an error.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// A shell to complete for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// GNU Bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// Writes `cmd`'s completion script for `shell` to `out` (made whole
/// first: a reader that stops early, as `| head` does, is no error worth
/// more than the error it returns).
pub fn completions(
    mut cmd: clap::Command,
    shell: Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let name = cmd.get_name().to_owned();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)?;
    out.flush()
}

/// Writes a manual page (section 1) for `cmd` and one for each of its
/// subcommands, at every depth (`gateway-admin-audit.1`), into `dir`.
/// Returns the files written.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut cmd = cmd;
    cmd.build();
    page(&cmd, cmd.get_name(), dir, &mut written)?;
    Ok(written)
}

fn page(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut file = std::fs::File::create(&path)?;
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_owned())
        .render(&mut file)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// `PROGRAM completions SHELL`: the script on standard output (a closed
/// pipe, as `| head` leaves, is the reader's choice, not an error).
pub fn print_completions(cmd: clap::Command, shell: Shell) -> std::process::ExitCode {
    let _ = completions(cmd, shell, &mut std::io::stdout());
    std::process::ExitCode::SUCCESS
}

/// `PROGRAM man DIR`: the pages written, and a line saying how many (or
/// why not).
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> std::process::ExitCode {
    let program = cmd.get_name().to_owned();
    match man_pages(cmd, dir) {
        Ok(files) => {
            println!("wrote {} manual pages into {}", files.len(), dir.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "{program}: cannot write manual pages into {}: {e}",
                dir.display()
            );
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo")
            .about("A demo.")
            .subcommand(
                clap::Command::new("admin")
                    .about("Admin.")
                    .subcommand(clap::Command::new("audit").about("Audit.")),
            )
            .arg(
                clap::Arg::new("listen")
                    .long("listen")
                    .help("Where to listen"),
            )
    }

    #[test]
    fn completions_name_the_program_and_its_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(demo(), shell, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("demo") && text.contains("admin"),
                "{shell:?}: {text}"
            );
            assert!(text.contains("listen"), "{shell:?}");
        }
    }

    #[test]
    fn a_page_for_every_command_at_every_depth() {
        let dir = std::env::temp_dir().join(format!("clidocs-test-{}", std::process::id()));
        let files = man_pages(demo(), &dir).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["demo.1", "demo-admin.1", "demo-admin-audit.1"]);
        let page = std::fs::read_to_string(dir.join("demo.1")).unwrap();
        assert!(
            page.contains(".TH demo 1") || page.contains(".TH demo"),
            "{page}"
        );
        assert!(page.contains("listen"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// An error and its causes as one line, each cause once: a cause whose
/// words the line already holds (an error that prints its source, as many
/// do) is not repeated.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod one_line_tests {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot reach gateway x: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_said_is_not_said_twice() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            super::one_line(&e),
            "cannot reach gateway x: connection refused"
        );
    }
}
