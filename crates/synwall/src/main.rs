//! The `synwall` command: one binary for every role and tool. Each subcommand lives in its own
//! module; shared argument parsing (secrets, services, clocks) lives in `args`.

mod analyze_cmd;
mod args;
mod cookie_cmd;
mod dataplane_cmd;
mod demo;
mod lab_cmd;
mod pcap_io;
mod replay_cmd;
mod snapshot;
mod sysctl;

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
    /// Edge: answer SYNs with cookie SYN+ACKs (XDP) and forward the rest.
    Edge(dataplane_cmd::EdgeArgs),
    /// Backend: create sockets from validated handshake ACKs (tc + bpf_sk_assign_tcp_reqsk).
    Backend(dataplane_cmd::BackendArgs),
    /// Single node: edge and backend on one host.
    Single(dataplane_cmd::SingleArgs),
    /// Run the edge engine over a capture; write the SYN+ACKs and forwarded frames to a pcap.
    Replay(replay_cmd::ReplayArgs),
    /// For every SYN of a capture: what each cookie scheme keeps and loses.
    Analyze(analyze_cmd::AnalyzeArgs),
    /// Run the built-in demonstration (what `scripts/demo.sh` runs).
    Demo,
    /// Benchmark lab: netns topology with nginx, floods, clients; benchmarks vs kernel defences.
    #[command(subcommand)]
    Lab(lab_cmd::LabCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cookie(c) => cookie_cmd::run(c),
        Command::Demo => demo::run(),
        Command::Replay(a) => replay_cmd::run(a),
        Command::Edge(a) => dataplane_cmd::edge(a),
        Command::Backend(a) => dataplane_cmd::backend(a),
        Command::Single(a) => dataplane_cmd::single(a),
        Command::Analyze(a) => analyze_cmd::run(a),
        Command::Lab(c) => lab_cmd::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("synwall: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
