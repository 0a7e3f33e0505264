//! `gateway`: see [`lifeline_gateway::cli`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lifeline_gateway::cli::main()
}
