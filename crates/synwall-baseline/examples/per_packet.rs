//! Per-packet benchmark: synwall's edge vs the kernel-helper cookie program vs bare XDP_TX.
//!
//! `cargo run --release -p synwall-baseline --example per_packet -- --repeat N --rounds M
//! [--json out.json]` (as root).

use anyhow::Context;
use clap::Parser;
use synwall_baseline::per_packet::{run, Opts};

#[derive(Parser)]
#[command(
    about = "BPF_PROG_TEST_RUN per packet: synwall edge vs kernel cookie helpers vs bare XDP_TX"
)]
struct Args {
    /// Test runs (packets) per program, family and SYN profile in each round.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Rounds (the table shows the median, min and max over them).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = run(&Opts {
        repeat: args.repeat,
        rounds: args.rounds,
    })?;
    print!("{}", report.table());
    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
