//! `tech-console`: see [`lifeline_tech_console`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lifeline_tech_console::cli::main()
}
