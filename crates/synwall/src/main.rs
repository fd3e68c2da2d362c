//! The `synwall` command: what runs on every node (`run`, or `edge|backend|single` in the
//! foreground, both through `node`) and what an operator runs beside it. Each subcommand lives in
//! its own module; shared argument parsing (secrets, services, clocks) lives in `args`. The demo
//! and the benchmark lab are another binary, `synwall-lab` (crate `synwall-bench`).

mod analyze;
mod analyze_cmd;
mod args;
mod cookie_cmd;
mod daemon;
mod dataplane_cmd;
mod gen_cmd;
mod hints;
mod iface;
mod ifstats;
mod logging;
mod metrics;
mod node;
mod notify;
mod pcap_io;
mod replay_cmd;
mod rotation;
mod snapshot;
mod status_cmd;
mod status_view;
mod sysctl;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// The exit status of a command that failed (and clap's, for bad arguments).
pub const ERROR_EXIT: u8 = 2;

/// A stateless TCP SYN proxy with eBPF data paths, and its tools.
#[derive(Parser)]
#[command(name = "synwall", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compute, check and test SYN cookies (synwall-v1, linux, freebsd).
    #[command(subcommand)]
    Cookie(cookie_cmd::CookieCommand),
    /// Run a node as a service from its configuration file (pinned, reloadable, with metrics; a
    /// systemd Type=notify service with a watchdog; one daemon per node).
    Run(daemon::RunArgs),
    /// Check a configuration file (and the machine: interfaces, pin root on a bpffs, secret,
    /// sysctls, metrics address) without attaching anything.
    CheckConfig(daemon::CheckArgs),
    /// Show a running node's counters and rates (from its pinned maps).
    Status(status_cmd::StatusArgs),
    /// Stop a node's daemon; with --detach also remove its programs and pins. Exit status 0 when
    /// the node is stopped (also when nothing was running or pinned), 2 on an error.
    Stop(daemon::StopArgs),
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
    /// Write the manual pages (synwall.1 and one per subcommand).
    Man(gen_cmd::ManArgs),
    /// Write a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(gen_cmd::CompletionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cookie(c) => cookie_cmd::run(c),
        Command::Run(a) => daemon::run(a),
        Command::CheckConfig(a) => daemon::check_config(a),
        Command::Status(a) => status_cmd::run(a),
        Command::Stop(a) => daemon::stop(a),
        Command::Replay(a) => replay_cmd::run(a),
        Command::Edge(a) => dataplane_cmd::edge(a),
        Command::Backend(a) => dataplane_cmd::backend(a),
        Command::Single(a) => dataplane_cmd::single(a),
        Command::Analyze(a) => analyze_cmd::run(a),
        Command::Man(a) => gen_cmd::man(Cli::command(), a),
        Command::Completions(a) => gen_cmd::completions(Cli::command(), a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("synwall: error: {e:#}");
            ExitCode::from(ERROR_EXIT)
        }
    }
}
