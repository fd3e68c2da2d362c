//! `synwall lab up|down|bench`: the benchmark lab of `synwall-bench` (netns topology with an
//! ECMP router, two edges and nginx) and its benchmarks vs the kernel's syncookies and SYNPROXY.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use synwall_bench::lab::{self, Lab};
use synwall_bench::report::{self, Report};
use synwall_bench::Opts;

#[derive(Subcommand)]
pub enum LabCommand {
    /// Build the topology (namespaces <prefix>att, cli, rtr, e1, e2, be) and start nginx; it
    /// stays until `synwall lab down`.
    Up(UpArgs),
    /// Remove everything `up` made for a prefix.
    Down(PrefixArgs),
    /// Build a fresh lab, run benchmarks, print their tables, write JSON + SVG, tear down.
    Bench(BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Topology {
    /// attacker, clients | router (ECMP) | edge1, edge2 | backend (nginx).
    Ecmp,
}

#[derive(Args)]
pub struct PrefixArgs {
    /// Prefix of every namespace name (unique per lab, so labs can coexist).
    #[arg(long, default_value = "swl")]
    prefix: String,
}

#[derive(Args)]
pub struct UpArgs {
    /// The topology to build.
    #[arg(long, value_enum, default_value = "ecmp")]
    topology: Topology,
    #[command(flatten)]
    p: PrefixArgs,
}

#[derive(Args)]
pub struct BenchArgs {
    /// flood, legit, quality, scale, or all (all also rewrites the generated part of --doc).
    name: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Where the JSON and SVG results go.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// The Markdown page `all` rewrites between its markers.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    doc: PathBuf,
    #[command(flatten)]
    p: PrefixArgs,
}

fn check_prefix(p: &str) -> Result<()> {
    // Interface-free names, but keep them short and plain: they become netns names.
    if p.is_empty() || p.len() > 8 || !p.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("--prefix must be 1-8 ASCII letters or digits, got {p:?}");
    }
    Ok(())
}

fn root() -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the lab builds network namespaces and attaches BPF programs: run it as root");
    }
    Ok(())
}

/// The per-packet PROG_TEST_RUN comparison (issue 6, part 1) belongs to the `synwall-baseline`
/// crate, which is not on this branch yet. HOOK for the lead: when it lands, return
/// `Some(report)` built from `synwall_baseline::per_packet::run(&Opts { repeat, rounds })`
/// (its `table()` and JSON), and `all` puts it first in the generated section.
fn per_packet_hook() -> Option<Report> {
    None
}

pub fn run(cmd: LabCommand) -> Result<ExitCode> {
    match cmd {
        LabCommand::Up(a) => {
            check_prefix(&a.p.prefix)?;
            root()?;
            let Topology::Ecmp = a.topology;
            let lab = Lab::up(&a.p.prefix)?;
            println!(
                "lab {} up: namespaces {}; nginx on http://{}:{} and http://[{}]:{}; state in {}",
                a.p.prefix,
                lab::ROLES.map(|r| format!("{}{r}", a.p.prefix)).join(" "),
                lab::SVC_V4,
                lab::PORT,
                lab::SVC_V6,
                lab::PORT,
                lab.dir.display()
            );
            println!(
                "try: ip netns exec {}cli curl http://{}/",
                a.p.prefix,
                lab::SVC_V4
            );
            lab.keep();
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Down(p) => {
            check_prefix(&p.prefix)?;
            root()?;
            let removed = lab::down(&p.prefix)?;
            if removed.is_empty() {
                println!("lab {}: nothing to remove", p.prefix);
            }
            for r in removed {
                println!("removed {r}");
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Bench(a) => bench(a),
    }
}

fn bench(a: BenchArgs) -> Result<ExitCode> {
    check_prefix(&a.p.prefix)?;
    if !(2.0..=120.0).contains(&a.seconds) {
        bail!("--seconds must be between 2 and 120, got {}", a.seconds);
    }
    let names: Vec<&str> = if a.name == "all" {
        synwall_bench::BENCHES.to_vec()
    } else if synwall_bench::BENCHES.contains(&a.name.as_str()) {
        vec![a.name.as_str()]
    } else {
        bail!(
            "unknown benchmark {:?} (one of: {}, all)",
            a.name,
            synwall_bench::BENCHES.join(", ")
        );
    };
    if a.name == "all" && !a.doc.exists() {
        bail!(
            "{} does not exist (run from the repository root or pass --doc)",
            a.doc.display()
        );
    }
    root()?;
    let o = Opts {
        exe: std::env::current_exe().context("cannot find this binary")?,
        seconds: a.seconds,
        command: format!("sudo synwall lab bench --seconds {}", a.seconds),
    };
    let lab = Lab::up(&a.p.prefix)?;
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    for n in names {
        let r = synwall_bench::run(n, &lab, &o).with_context(|| format!("benchmark {n}"))?;
        println!("{}", r.table());
        r.write(&a.out)?;
        reports.push(r);
    }
    drop(lab);
    if a.name == "all" {
        let mut md = format!(
            "## Lab benchmarks (issue 6)\n\nGenerated by `{} all` in {:.0} s (one lab, every \
             benchmark side by side in one run); {}.\n\n",
            o.command,
            started.elapsed().as_secs_f64(),
            machine()
        );
        if let Some(pp) = per_packet_hook() {
            md.push_str(&pp.markdown());
        }
        for r in &reports {
            md.push_str(&r.markdown());
        }
        report::update_doc(&a.doc, &md)?;
        println!("wrote {} and {}", a.out.display(), a.doc.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs, Linux {}", kernel.trim())
}
