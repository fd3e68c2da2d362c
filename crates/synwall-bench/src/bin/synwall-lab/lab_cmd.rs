//! `synwall-lab up|down|bench`: the benchmark lab of this crate (netns topology with an ECMP
//! router, two edges and nginx), its benchmarks vs the kernel's syncookies and SYNPROXY, and the
//! per-packet comparison of `synwall-baseline`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use synwall_bench::lab::{self, Lab};
use synwall_bench::livegen::SynOptions;
use synwall_bench::load::FloodGen;
use synwall_bench::report::{self, Report};
use synwall_bench::Opts;

#[derive(Subcommand)]
pub enum LabCommand {
    /// Build the topology (namespaces <prefix>att, cli, rtr, e1, e2, be) and start nginx; it
    /// stays until `synwall-lab down`.
    Up(UpArgs),
    /// Remove everything `up` made for a prefix.
    Down(PrefixArgs),
    /// Build a fresh lab, run benchmarks, print their tables, write JSON + SVG, tear down.
    Bench(BenchArgs),
    /// Measure the LIVE_FRAMES SYN generator alone: SYNs per second from one core into a veth
    /// whose far end counts and drops them (namespaces of its own, removed at the end).
    Gen(GenArgs),
    /// Draw every chart again from the stored results (<dir>/<name>.json, nothing is run) and
    /// rewrite the generated part of --doc from them.
    Report(ReportArgs),
    /// The anycast lab: a BIRD router spreading flows over three synwall edges that announce the
    /// service with ExaBGP while healthy (dist/bgp/). Under a constant client load an edge joins,
    /// one's daemon is killed and started again, one is stopped with `synwall stop --detach`;
    /// prints how long the routes took to change and what the clients saw, then tears down.
    Bgp(BgpArgs),
}

#[derive(Args)]
pub struct BgpArgs {
    /// Run the edges in strict mode.
    #[arg(long)]
    strict: bool,
    /// Instead: the fail-safe of a stale edge (epochs of 2 s, salts 2 epochs ahead): edge 1's
    /// daemon and healthcheck frozen until its salts run out, its route kept; then the
    /// healthcheck resumes (the route must go) and the daemon (it must come back).
    #[arg(long, conflicts_with = "strict")]
    stale: bool,
    /// Seconds of load after each event.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// Long-lived transfers per address family.
    #[arg(long, default_value_t = 8)]
    long: usize,
    /// Write every connection and the phases as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Prefix of every namespace name.
    #[arg(long, default_value = "swa")]
    prefix: String,
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
    /// per-packet, host-flood, flood, legit, quality, scale, or all (all also rewrites the
    /// generated part of --doc).
    name: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// host-flood: the generator's SYN options (Linux's full set, or MSS only as trafgen sends).
    #[arg(long, value_enum, default_value = "linux")]
    syn: SynOptions,
    /// host-flood: rounds of the three defences in turn (each row is the median round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// flood, legit, scale: the flood's source (the LIVE_FRAMES XDP generator, or one trafgen
    /// process as a cross-check).
    #[arg(long, value_enum, default_value = "live")]
    gen: FloodGen,
    /// Where the JSON and SVG results go.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// The Markdown page `all` rewrites between its markers.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    doc: PathBuf,
    #[command(flatten)]
    p: PrefixArgs,
}

#[derive(Args)]
pub struct GenArgs {
    /// Seconds to run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// The SYN's TCP options.
    #[arg(long, value_enum, default_value = "mss")]
    syn: SynOptions,
    /// At most this many SYNs per second (default: as fast as one core goes).
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Where the JSON results are, and the SVGs go.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// The Markdown page whose generated part is rewritten.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    doc: PathBuf,
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

/// The per-packet BPF_PROG_TEST_RUN comparison (`synwall-baseline`) as a lab
/// report, so `all` puts it beside the others: synwall's edge vs the kernel-helper cookie
/// program vs a bare XDP_TX, per family and SYN profile.
fn per_packet(command: &str) -> Result<Report> {
    use synwall_baseline::per_packet::{self, Opts};
    let r = per_packet::run(&Opts {
        repeat: 200_000,
        rounds: 3,
    })?;
    println!("{}", r.table());
    let g = &r.goals;
    Ok(Report {
        name: "per_packet".into(),
        title: "Per packet (BPF_PROG_TEST_RUN): synwall vs kernel cookie helpers vs bare XDP_TX"
            .into(),
        command: format!("{command} per-packet"),
        headers: [
            "program", "family", "SYN", "ns/pkt", "Mpps", "net ns", "x helper", "x bare",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: r
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.program.name().to_string(),
                    format!("{:?}", x.family),
                    x.profile.name().to_string(),
                    format!("{:.1}", x.ns),
                    format!("{:.2}", x.mpps),
                    format!("{:.1}", x.net_ns),
                    format!("{:.2}", x.ratio_vs_helper),
                    format!("{:.2}", x.ratio_vs_bare),
                ]
            })
            .collect(),
        data: serde_json::to_value(&r)?,
        goals: vec![
            report::Goal {
                goal: "synwall <= 1.0x the helper program (IPv4, Linux SYN)".into(),
                measured: format!("{:.2}x", g.vs_helper),
                met: g.vs_helper_ok,
            },
            report::Goal {
                goal: "synwall <= 2x the bare XDP_TX program".into(),
                measured: format!("{:.2}x", g.vs_bare),
                met: g.vs_bare_ok,
            },
        ],
        machine: Some(report::Machine {
            cpus: r.cpus,
            cpu_model: report::Machine::probe(f64::NAN).cpu_model,
            kernel: r.kernel.clone(),
            loadavg: Some(r.loadavg),
        }),
        notes: vec![format!(
            "200,000 single test runs per program, family and profile per round, 3 rounds interleaved (median); timer overhead per run {:.1} ns (`net ns` removes it). The full method and a longer run: the per-packet section above (`synwall-baseline`).",
            r.timer_overhead_ns
        )],
        y_label: "ns per packet".into(),
        bars: r
            .rows
            .iter()
            .map(|x| {
                (
                    format!("{} {:?} {}", x.program.name(), x.family, x.profile.name()),
                    x.ns,
                )
            })
            .collect(),
    })
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
        LabCommand::Gen(a) => gen(a),
        LabCommand::Report(a) => report_again(a),
        LabCommand::Bgp(a) => bgp(a),
    }
}

fn bgp(a: BgpArgs) -> Result<ExitCode> {
    use synwall_bench::anycast::{self, AnycastLab, Options, Scenario};
    check_prefix(&a.prefix)?;
    if !(1.0..=120.0).contains(&a.settle) {
        bail!(
            "--settle must be between 1 and 120 seconds, got {}",
            a.settle
        );
    }
    root()?;
    let mut lab = AnycastLab::up(
        &a.prefix,
        Options {
            exe: crate::synwall_exe()?,
            strict: a.strict,
            epoch_seconds: if a.stale { 2 } else { 60 },
            salts_ahead_seconds: a.stale.then_some(1),
        },
    )?;
    let s = Scenario {
        settle: std::time::Duration::from_secs_f64(a.settle),
        long: a.long,
        ..Scenario::default()
    };
    if a.stale {
        let out = anycast::stale_edge(&mut lab, &s)?;
        drop(lab);
        print!("{}", out.text());
        if let Some(p) = &a.json {
            std::fs::write(p, serde_json::to_string_pretty(&out)?)
                .with_context(|| format!("cannot write {}", p.display()))?;
        }
        return Ok(if out.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let out = anycast::run(&mut lab, &s)?;
    drop(lab);
    print!("{}", out.text());
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(if out.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn gen(a: GenArgs) -> Result<ExitCode> {
    if !(0.5..=120.0).contains(&a.seconds) {
        bail!("--seconds must be between 0.5 and 120, got {}", a.seconds);
    }
    root()?;
    let load0 = report::loadavg();
    if a.rate.is_some_and(|r| !(r >= 1.0 && r.is_finite())) {
        bail!("--rate must be at least 1 SYN per second");
    }
    let m = synwall_bench::host::gen_alone(a.seconds, a.syn, a.rate)?;
    println!(
        "generator: {} SYNs in {:.2} s from CPU {} = {:.0} SYN/s offered (the thread used {:.2} CPU-s); the far end received {} ({:.1}%); {} test runs of up to {} frames, batch {}; load average {load0:.2} -> {:.2}",
        m.run.frames,
        m.run.seconds,
        synwall_bench::load::GEN_CPU,
        m.run.rate(),
        m.run.cpu_seconds,
        m.received,
        100.0 * m.received as f64 / m.run.frames.max(1) as f64,
        m.run.calls,
        synwall_bench::livegen::CHUNK,
        m.run.batch,
        report::loadavg()
    );
    if m.counters.dropped() > 0 {
        bail!(
            "the generator dropped frames instead of sending them: {:?}",
            m.counters
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(a: BenchArgs) -> Result<ExitCode> {
    check_prefix(&a.p.prefix)?;
    if !(2.0..=120.0).contains(&a.seconds) {
        bail!("--seconds must be between 2 and 120, got {}", a.seconds);
    }
    if !(1..=20).contains(&a.rounds) {
        bail!("--rounds must be between 1 and 20, got {}", a.rounds);
    }
    let names: Vec<&str> = if a.name == "all" {
        ["per-packet", "host-flood"]
            .into_iter()
            .chain(synwall_bench::BENCHES)
            .collect()
    } else if ["per-packet", "host-flood"].contains(&a.name.as_str())
        || synwall_bench::BENCHES.contains(&a.name.as_str())
    {
        vec![a.name.as_str()]
    } else {
        bail!(
            "unknown benchmark {:?} (one of: per-packet, host-flood, {}, all)",
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
        exe: crate::synwall_exe()?,
        seconds: a.seconds,
        command: match a.gen {
            FloodGen::Live => format!("sudo synwall-lab bench --seconds {}", a.seconds),
            FloodGen::Trafgen => format!(
                "sudo synwall-lab bench --seconds {} --gen trafgen",
                a.seconds
            ),
        },
        gen: a.gen,
    };
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    let mut lab = None;
    for n in names {
        let r = if n == "per-packet" {
            per_packet(&o.command).context("benchmark per-packet")?
        } else if n == "host-flood" {
            let load0 = report::loadavg();
            let mut r = synwall_bench::host::host_flood(&o, a.syn, a.rounds)
                .context("benchmark host-flood")?;
            r.machine = Some(report::Machine::probe(load0));
            r
        } else {
            if lab.is_none() {
                lab = Some(Lab::up(&a.p.prefix)?);
            }
            let l = lab.as_ref().expect("just built");
            synwall_bench::run(n, l, &o).with_context(|| format!("benchmark {n}"))?
        };
        println!("{}", r.table());
        r.write(&a.out)?;
        reports.push(r);
    }
    drop(lab);
    if a.name == "all" {
        write_doc(
            &a.doc,
            &reports,
            &format!("{} all", o.command),
            Some(started.elapsed().as_secs_f64()),
        )?;
        println!("wrote {} and {}", a.out.display(), a.doc.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The order of the generated part of the page (the order `bench all` runs them).
fn page_order() -> Vec<String> {
    ["per_packet", "host_flood"]
        .into_iter()
        .chain(synwall_bench::BENCHES)
        .map(str::to_string)
        .collect()
}

fn write_doc(
    doc: &std::path::Path,
    reports: &[Report],
    how: &str,
    secs: Option<f64>,
) -> Result<()> {
    let mut md = match secs {
        Some(s) => format!(
            "## Lab benchmarks: generated results\n\nGenerated by `{how}` in {s:.0} s (one lab, every \
             benchmark side by side in one run); {}. Each section names its command and the machine's \
             load meanwhile.\n\n",
            machine()
        ),
        None => format!(
            "## Lab benchmarks: generated results\n\nGenerated from the stored results by `{how}`; each \
             section names the command that produced its results, the machine and its load \
             meanwhile (they may come from different runs). `sudo target/release/synwall-lab bench \
             all` runs them all again and rewrites this part.\n\n"
        ),
    };
    for r in reports {
        md.push_str(&r.markdown());
    }
    report::update_doc(doc, &md)
}

/// `synwall-lab report`: charts and page from the stored JSON.
fn report_again(a: ReportArgs) -> Result<ExitCode> {
    if !a.doc.exists() {
        bail!(
            "{} does not exist (run from the repository root or pass --doc)",
            a.doc.display()
        );
    }
    // Draw every chart that can be drawn; the page is rewritten only when all could.
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for n in page_order() {
        let path = a.out.join(format!("{n}.json"));
        match Report::load(&path).and_then(|r| r.write_svg(&a.out).map(|_| r)) {
            Ok(r) => {
                println!("drew {}", a.out.join(format!("{n}.svg")).display());
                reports.push(r);
            }
            Err(e) => failed.push(format!("{n}: {e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} left as it was; could not draw:\n  {}",
            a.doc.display(),
            failed.join("\n  ")
        );
    }
    write_doc(
        &a.doc,
        &reports,
        &format!(
            "target/release/synwall-lab report --out {} --doc {}",
            a.out.display(),
            a.doc.display()
        ),
        None,
    )?;
    println!("wrote {}", a.doc.display());
    Ok(ExitCode::SUCCESS)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs, Linux {}", kernel.trim())
}
