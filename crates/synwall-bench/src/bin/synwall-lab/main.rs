//! The `synwall-lab` command: the benchmark lab (`up`, `down`, `bench ...`) and the demo, kept out
//! of the `synwall` binary that runs on every node. Both drive the real `synwall` binary, which
//! they find next to this one (`cargo build --release -p synwall -p synwall-bench` puts both in
//! `target/release`).

mod demo;
mod lab_cmd;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// synwall-lab: synwall's benchmark lab and demo in network namespaces (needs root).
#[derive(Parser)]
#[command(name = "synwall-lab", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Lab(lab_cmd::LabCommand),
    /// Run the built-in demonstration (what `scripts/demo.sh` runs).
    Demo,
}

/// The `synwall` binary the lab and the demo run: the one beside this executable.
fn synwall_exe() -> Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this binary")?;
    let exe = me.with_file_name("synwall");
    if !exe.is_file() {
        bail!(
            "{} not found: synwall-lab runs the synwall binary that sits beside it \
             (cargo build --release -p synwall -p synwall-bench)",
            exe.display()
        );
    }
    Ok(exe)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lab(c) => lab_cmd::run(c),
        Command::Demo => demo::run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("synwall-lab: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
