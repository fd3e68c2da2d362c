//! The `synwall` command: one binary for every role and tool. Each subcommand lives in its own
//! module; shared argument parsing (secrets, services, clocks) lives in `args`.

mod args;
mod cookie_cmd;
mod demo;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// synwall: a stateless TCP SYN proxy with eBPF data paths.
#[derive(Parser)]
#[command(name = "synwall", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compute, check and test SYN cookies (synwall-v1, linux, freebsd).
    #[command(subcommand)]
    Cookie(cookie_cmd::CookieCommand),
    /// Run the built-in demonstration (what `scripts/demo.sh` runs).
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cookie(c) => cookie_cmd::run(c),
        Command::Demo => demo::run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("synwall: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
