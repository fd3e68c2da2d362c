//! Per packet, as the kernel measures it in `BPF_PROG_TEST_RUN` (JIT on): synwall's edge SYN path
//! vs the conventional kernel-helper cookie program vs a bare `XDP_TX`, for IPv4 and IPv6 and two
//! SYN profiles.
//!
//! How a SYN is timed: the kernel does not restore the frame between the repetitions of one test
//! run, and an answering program turns its SYN into a SYN+ACK, so every later repetition would
//! time a different (non-SYN) path. Each packet is therefore one test run of a fresh copy of the
//! SYN, and `ns` is the mean of the kernel-measured durations of `repeat` such runs. That figure
//! includes the kernel's fixed cost around a single run (two clock reads and the dispatch);
//! [`Report::timer_overhead_ns`] estimates it as the bare program's single-run time minus its time
//! in one long repeated run (which the bare program allows: swapping the MACs twice restores the
//! frame), and `net_ns` subtracts it. The three programs run interleaved, in chunks, in every
//! round, so load from other processes falls on all of them alike; the table gives the median
//! over rounds and the spread.

use crate::{BareTx, HelperConfig, HelperCookie};
use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use std::net::IpAddr;
use synwall_bpf::{xdp_action, DataPath, Edge, TestRun};
use synwall_cookie::synwall_v1::{EpochClock, MasterSecret};
use synwall_engine::{EngineConfig, SaltRing, Salts, Service, ServiceSet};
use synwall_netns::frame::{Frame, SYN};

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opts {
    /// Test runs (packets) per program, family and profile in each round.
    pub repeat: u32,
    /// Rounds; each row reports the median, minimum and maximum over them.
    pub rounds: u32,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            repeat: 1_000_000,
            rounds: 5,
        }
    }
}

/// The programs compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Program {
    /// `bpf/edge.bpf.c`.
    SynwallEdge,
    /// `bpf/baseline/syncookie_helper.bpf.c`.
    HelperCookie,
    /// `bpf/baseline/bare_tx.bpf.c`.
    BareTx,
}

impl Program {
    /// All, in table order.
    pub const ALL: [Program; 3] = [Program::SynwallEdge, Program::HelperCookie, Program::BareTx];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Program::SynwallEdge => "synwall edge",
            Program::HelperCookie => "helper cookie",
            Program::BareTx => "bare XDP_TX",
        }
    }
}

/// Address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Family {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

/// The SYN measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Linux's default SYN: MSS, SACK-Permitted, Timestamps, NOP, Window Scale 7 (20 bytes).
    LinuxDefault,
    /// The same without timestamps: MSS, NOP, NOP, SACK-Permitted, NOP, Window Scale 7.
    NoTimestamps,
}

impl Profile {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::LinuxDefault => "Linux default",
            Profile::NoTimestamps => "no timestamps",
        }
    }
}

/// The client of every benchmark SYN.
pub const CLIENT_V4: &str = "192.0.2.10";
/// The server of the IPv4 SYNs (inside [`services`]).
pub const SERVER_V4: &str = "198.51.100.7";
/// The client of the IPv6 SYNs.
pub const CLIENT_V6: &str = "2001:db8:ffff::10";
/// The server of the IPv6 SYNs (inside [`services`]).
pub const SERVER_V6: &str = "2001:db8:1::80";
/// The port answered.
pub const PORT: u16 = 443;
/// The client's ISN in every benchmark SYN.
pub const CLIENT_ISN: u32 = 0x0102_0304;
/// The client's TSval in the timestamped SYNs.
pub const CLIENT_TSVAL: u32 = 0x1111_2222;

/// The SYN of `family` and `profile` from the benchmark client to port [`PORT`], checksums set.
pub fn syn_frame(family: Family, profile: Profile) -> Vec<u8> {
    let (src, dst, mss): (IpAddr, IpAddr, u16) = match family {
        Family::IPv4 => (
            CLIENT_V4.parse().expect("address"),
            SERVER_V4.parse().expect("address"),
            1460,
        ),
        Family::IPv6 => (
            CLIENT_V6.parse().expect("address"),
            SERVER_V6.parse().expect("address"),
            1440,
        ),
    };
    let m = mss.to_be_bytes();
    let t = CLIENT_TSVAL.to_be_bytes();
    let options = match profile {
        Profile::LinuxDefault => vec![
            2, 4, m[0], m[1], 4, 2, 8, 10, t[0], t[1], t[2], t[3], 0, 0, 0, 0, 1, 3, 3, 7,
        ],
        Profile::NoTimestamps => vec![2, 4, m[0], m[1], 1, 1, 4, 2, 1, 3, 3, 7],
    };
    Frame {
        seq: CLIENT_ISN,
        options,
        ..Frame::new(src, dst, 40000, PORT, SYN)
    }
    .build()
}

/// The services synwall's edge protects in the benchmark (the benchmark servers, port 443).
pub fn services() -> ServiceSet {
    ServiceSet::new(
        [
            format!("{SERVER_V4}/32:{PORT}"),
            format!("[{SERVER_V6}/128]:{PORT}"),
        ]
        .iter()
        .map(|s| s.parse::<Service>().expect("service"))
        .collect(),
    )
}

/// One program, family and profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The program.
    pub program: Program,
    /// The family.
    pub family: Family,
    /// The SYN profile.
    pub profile: Profile,
    /// Length of the SYN+ACK the program answered with.
    pub synack_len: usize,
    /// ns per packet (single test runs, kernel-measured): median over rounds.
    pub ns: f64,
    /// Fastest round.
    pub ns_min: f64,
    /// Slowest round.
    pub ns_max: f64,
    /// Million packets per second on one CPU at `ns`.
    pub mpps: f64,
    /// `ns` minus [`Report::timer_overhead_ns`]: the program's own cost.
    pub net_ns: f64,
    /// `ns` / the helper program's `ns` for the same family and profile.
    pub ratio_vs_helper: f64,
    /// `ns` / the bare program's `ns`.
    pub ratio_vs_bare: f64,
    /// `net_ns` / the helper program's `net_ns`.
    pub net_ratio_vs_helper: f64,
    /// `net_ns` / the bare program's `net_ns`.
    pub net_ratio_vs_bare: f64,
}

/// Where synwall's edge spends a SYN, from paths that leave their frame unchanged (so they can be
/// timed in one repeated run, with no clock reads per packet) and the full SYN's `net_ns`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    /// The family.
    pub family: Family,
    /// What was timed.
    pub path: String,
    /// Median ns per packet over rounds (repeated runs; the last stage is derived).
    pub ns: f64,
}

/// The goals, judged on IPv4 with Linux's default SYN.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Goals {
    /// synwall / helper, per packet.
    pub vs_helper: f64,
    /// Goal: synwall <= 1.0x the helper program.
    pub vs_helper_ok: bool,
    /// synwall / bare, per packet.
    pub vs_bare: f64,
    /// Goal: synwall <= 2x the bare program.
    pub vs_bare_ok: bool,
    /// synwall / helper on the programs' own cost (timer overhead removed).
    pub net_vs_helper: f64,
    /// synwall / bare on the programs' own cost.
    pub net_vs_bare: f64,
}

/// The benchmark's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Packets per program, family and profile per round.
    pub repeat: u32,
    /// Rounds.
    pub rounds: u32,
    /// CPUs the benchmark may run on (its affinity: 1 under `taskset -c 1`).
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// 1-minute load average when the run started and when it ended.
    pub loadavg: [f64; 2],
    /// The fixed cost of one test run outside the program (median over rounds and families).
    pub timer_overhead_ns: f64,
    /// The bare program in one repeated run (no per-packet clock reads): median ns.
    pub bare_repeated_ns: f64,
    /// Programs x families x profiles.
    pub rows: Vec<Row>,
    /// The edge's SYN path in stages (Linux default SYN).
    pub edge_stages: Vec<Stage>,
    /// The goals.
    pub goals: Goals,
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Stages of the edge's SYN path timed in [`Report::edge_stages`].
const STAGES: usize = 3;

/// Frames the edge leaves unchanged that stop at successive points of its SYN path.
fn stage_frames(f: Family) -> [(&'static str, Vec<u8>); STAGES] {
    let syn = syn_frame(f, Profile::LinuxDefault);
    let mut arp = syn.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let l4 = 14 + if f == Family::IPv4 { 20 } else { 40 };
    let mut other_port = syn.clone();
    other_port[l4 + 3] ^= 1; // 443 -> 442 (checksum stale, but the port decides first)
    let mut bad_sum = syn.clone();
    bad_sum[l4 + 16] ^= 0xff;
    [
        ("non-IP frame (parse, pass)", arp),
        ("SYN to another port (parse, service lookup)", other_port),
        (
            "SYN with a bad TCP checksum (+ options, checksum checks)",
            bad_sum,
        ),
    ]
}

/// Test runs are interleaved between the programs in chunks of this many.
const CHUNK: u32 = 5_000;

struct Programs {
    edge: Edge,
    helper: HelperCookie,
    bare: BareTx,
}

impl Programs {
    fn run(&self, p: Program, frame: &[u8]) -> synwall_bpf::Result<TestRun> {
        match p {
            Program::SynwallEdge => self.edge.test_run(frame),
            Program::HelperCookie => self.helper.test_run(frame),
            Program::BareTx => self.bare.test_run(frame),
        }
    }
}

/// Run the benchmark (needs root: it loads BPF programs).
pub fn run(opts: &Opts) -> Result<Report> {
    ensure!(opts.repeat > 0, "--repeat must be at least 1");
    ensure!(opts.rounds > 0, "--rounds must be at least 1");
    let load_start = loadavg();
    // The edge as it ships, its reflection budget on, but one no benchmark reaches: every SYN
    // takes the budget's lookup and update and is answered (a budget the SYNs ran out of would
    // time the cheaper refusal instead).
    let mut cfg = EngineConfig::new(services());
    cfg.budget = Some(synwall_engine::Budget {
        rate: synwall_engine::abuse::MAX_RATE,
        burst: synwall_engine::abuse::MAX_BURST,
    });
    // Salts for the hours around now (the program reads the real clock), hour-long epochs.
    let clock = EpochClock::new(3600, synwall_bpf::clock::tai_offset_ns());
    let e = clock.unix_ns(synwall_bpf::clock::tai_ns()) / clock.epoch_ns;
    let ring = SaltRing::derive(e - 1, e + 3, &MasterSecret([0x5a; 32]), None);
    let progs = Programs {
        edge: Edge::load_with(&cfg, &Salts::new(ring, clock)).context("loading synwall's edge")?,
        helper: HelperCookie::load_with(&HelperConfig {
            mss_v4: cfg.server.mss_v4,
            mss_v6: cfg.server.mss_v6,
            window: cfg.server.window,
            wscale: cfg.server.wscale,
            ttl: cfg.server.ttl,
            ..HelperConfig::new(PORT)
        })
        .context("loading the helper-cookie program")?,
        bare: BareTx::load().context("loading the bare XDP_TX program")?,
    };
    let cases: Vec<(Family, Profile)> = [Family::IPv4, Family::IPv6]
        .into_iter()
        .flat_map(|f| [Profile::LinuxDefault, Profile::NoTimestamps].map(move |p| (f, p)))
        .collect();

    // Every program must answer every SYN, or it is not the SYN path being timed.
    let mut synack_len = Vec::new();
    for &(f, p) in &cases {
        let frame = syn_frame(f, p);
        for prog in Program::ALL {
            let r = progs.run(prog, &frame)?;
            if r.retval != xdp_action::TX {
                bail!(
                    "{} returned {} (not XDP_TX) on the {:?} {} SYN",
                    prog.name(),
                    r.retval,
                    f,
                    p.name()
                );
            }
            synack_len.push(((prog, f, p), r.data.len()));
        }
    }

    // samples[case][program] = ns per round
    let mut samples = vec![[Vec::new(), Vec::new(), Vec::new()]; cases.len()];
    let mut bare_repeated = Vec::new();
    let mut stage_samples = vec![vec![Vec::new(); STAGES]; cases.len()];
    for _ in 0..opts.rounds {
        for (ci, &(f, p)) in cases.iter().enumerate() {
            let frame = syn_frame(f, p);
            let mut total = [0u128; 3];
            let mut done = 0u32;
            while done < opts.repeat {
                let n = CHUNK.min(opts.repeat - done);
                for (pi, prog) in Program::ALL.into_iter().enumerate() {
                    for _ in 0..n {
                        let r = progs.run(prog, &frame)?;
                        total[pi] += r.duration.as_nanos();
                    }
                }
                done += n;
            }
            for pi in 0..3 {
                samples[ci][pi].push(total[pi] as f64 / opts.repeat as f64);
            }
            if p == Profile::LinuxDefault {
                let r = progs.bare.test_run_repeat(&frame, opts.repeat)?;
                bare_repeated.push(r.duration.as_nanos() as f64);
                for (si, (_, f)) in stage_frames(f).iter().enumerate() {
                    let r = progs.edge.test_run_repeat(f, opts.repeat)?;
                    stage_samples[ci][si].push(r.duration.as_nanos() as f64);
                }
            }
        }
    }

    // Every timed SYN was answered, none refused by the budget.
    let answered = progs
        .edge
        .counters()?
        .get(synwall_engine::Counter::SynAnswered);
    let runs = cases.len() as u64 * (1 + u64::from(opts.rounds) * u64::from(opts.repeat));
    ensure!(
        answered == runs,
        "synwall's edge answered {answered} of {runs} SYNs: not every SYN path was timed"
    );

    // Overhead per round and family: bare single-run minus bare repeated.
    let mut overheads = Vec::new();
    {
        let mut k = 0;
        for _ in 0..opts.rounds {
            for (ci, &(_, p)) in cases.iter().enumerate() {
                if p == Profile::LinuxDefault {
                    let round = overheads.len() / 2;
                    overheads.push(samples[ci][2][round] - bare_repeated[k]);
                    k += 1;
                }
            }
        }
    }
    let timer_overhead_ns = median(&mut overheads).max(0.0);
    let bare_repeated_ns = median(&mut bare_repeated);

    let mut rows = Vec::new();
    for (ci, &(f, p)) in cases.iter().enumerate() {
        let stats: Vec<(f64, f64, f64)> = (0..3)
            .map(|pi| {
                let mut v = samples[ci][pi].clone();
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = v.iter().copied().fold(0.0, f64::max);
                (median(&mut v), min, max)
            })
            .collect();
        let net = |ns: f64| (ns - timer_overhead_ns).max(0.01);
        let (helper, bare) = (stats[1].0, stats[2].0);
        for (pi, prog) in Program::ALL.into_iter().enumerate() {
            let (ns, ns_min, ns_max) = stats[pi];
            rows.push(Row {
                program: prog,
                family: f,
                profile: p,
                synack_len: synack_len
                    .iter()
                    .find(|(k, _)| *k == (prog, f, p))
                    .map_or(0, |(_, l)| *l),
                ns,
                ns_min,
                ns_max,
                mpps: 1e3 / ns,
                net_ns: net(ns),
                ratio_vs_helper: ns / helper,
                ratio_vs_bare: ns / bare,
                net_ratio_vs_helper: net(ns) / net(helper),
                net_ratio_vs_bare: net(ns) / net(bare),
            });
        }
    }
    let mut edge_stages = Vec::new();
    for (ci, &(f, p)) in cases.iter().enumerate() {
        if p != Profile::LinuxDefault {
            continue;
        }
        let mut last = 0.0;
        for (si, (path, _)) in stage_frames(f).iter().enumerate() {
            last = median(&mut stage_samples[ci][si]);
            edge_stages.push(Stage {
                family: f,
                path: path.to_string(),
                ns: last,
            });
        }
        let full = rows
            .iter()
            .find(|r| r.program == Program::SynwallEdge && r.family == f && r.profile == p)
            .map_or(f64::NAN, |r| r.net_ns);
        edge_stages.push(Stage {
            family: f,
            path: "full SYN (net ns); the cookie and the SYN+ACK are the difference".into(),
            ns: full,
        });
        edge_stages.push(Stage {
            family: f,
            path: "= cookie (SipHash-2-4, TSval) + SYN+ACK build and its checksums".into(),
            ns: full - last,
        });
    }
    let edge = rows
        .iter()
        .find(|r| {
            r.program == Program::SynwallEdge
                && r.family == Family::IPv4
                && r.profile == Profile::LinuxDefault
        })
        .expect("the IPv4 Linux-default row");
    let goals = Goals {
        vs_helper: edge.ratio_vs_helper,
        vs_helper_ok: edge.ratio_vs_helper <= 1.0,
        vs_bare: edge.ratio_vs_bare,
        vs_bare_ok: edge.ratio_vs_bare <= 2.0,
        net_vs_helper: edge.net_ratio_vs_helper,
        net_vs_bare: edge.net_ratio_vs_bare,
    };
    Ok(Report {
        repeat: opts.repeat,
        rounds: opts.rounds,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        loadavg: [load_start, loadavg()],
        timer_overhead_ns,
        bare_repeated_ns,
        rows,
        edge_stages,
        goals,
    })
}

impl Report {
    /// The rows as an aligned text table, with the goals and the measuring conditions below.
    pub fn table(&self) -> String {
        let head = [
            "program",
            "family",
            "SYN",
            "reply B",
            "ns/pkt",
            "min",
            "max",
            "Mpps",
            "net ns",
            "x helper",
            "x bare",
            "net x helper",
            "net x bare",
        ];
        let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
        for r in &self.rows {
            cells.push(vec![
                r.program.name().to_string(),
                format!("{:?}", r.family),
                r.profile.name().to_string(),
                r.synack_len.to_string(),
                format!("{:.1}", r.ns),
                format!("{:.1}", r.ns_min),
                format!("{:.1}", r.ns_max),
                format!("{:.2}", r.mpps),
                format!("{:.1}", r.net_ns),
                format!("{:.2}", r.ratio_vs_helper),
                format!("{:.2}", r.ratio_vs_bare),
                format!("{:.2}", r.net_ratio_vs_helper),
                format!("{:.2}", r.net_ratio_vs_bare),
            ]);
        }
        let widths: Vec<usize> = (0..head.len())
            .map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (i, row) in cells.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if c < 3 {
                        format!("{s:<w$}", w = widths[c])
                    } else {
                        format!("{s:>w$}", w = widths[c])
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        out.push_str(
            "\nsynwall edge, Linux default SYN, by stage (ns per packet, repeated runs):\n",
        );
        for st in &self.edge_stages {
            out.push_str(&format!("  {:?}  {:>7.1}  {}\n", st.family, st.ns, st.path));
        }
        let ok = |b: bool| if b { "met" } else { "MISSED" };
        out.push_str(&format!(
            "\ngoals (IPv4, Linux default SYN): synwall <= 1.0x helper: {:.2}x {}; \
             synwall <= 2x bare: {:.2}x {} (programs' own cost: {:.2}x helper, {:.2}x bare)\n",
            self.goals.vs_helper,
            ok(self.goals.vs_helper_ok),
            self.goals.vs_bare,
            ok(self.goals.vs_bare_ok),
            self.goals.net_vs_helper,
            self.goals.net_vs_bare,
        ));
        out.push_str(&format!(
            "{} single test runs per program, family and profile per round, {} rounds (median, \
             min, max over rounds); fixed cost of one test run outside the program: {:.1} ns \
             (bare XDP_TX repeated in-kernel: {:.1} ns); kernel {}, {} CPUs, load average {:.2} \
             -> {:.2}\n",
            self.repeat,
            self.rounds,
            self.timer_overhead_ns,
            self.bare_repeated_ns,
            self.kernel,
            self.cpus,
            self.loadavg[0],
            self.loadavg[1],
        ));
        out
    }
}
