//! synwall's lab benchmarks: a named network-namespace topology (attacker, clients, an
//! ECMP router, two edges, a backend running nginx), the load (spoofed SYN floods from
//! [`livegen`]'s kernel-speed generator, or trafgen from netsniff-ng as a cross-check, curl and
//! wrk for clients, a userspace WAN relay for the path), and
//! four benchmarks that run synwall and the kernel's own defences side by side in one lab:
//!
//! - [`flood`]: SYN+ACKs per second answered on one core while flooded;
//! - [`legit`]: real connections completed and their connect latency, with and without flood;
//! - [`quality`]: bulk transfer over 50 ms RTT + 0.1% loss without timestamps, and the server
//!   socket's options (TCP_INFO via `ss`) per client profile;
//! - [`scale`]: one vs two edges behind ECMP, and ACKs crossing edges.
//!
//! Beside them, [`host`]'s one-host flood (`host-flood`) measures the defender's CPU alone: a
//! kernel-speed SYN generator ([`livegen`], an XDP program run in live-frames mode) against one
//! host defended by synwall single-node, the kernel's cookies or SYNPROXY.
//!
//! [`anycast`] is the reference deployment of docs/DEPLOYMENT.md in namespaces: a
//! BIRD router, three edges that announce the service by ExaBGP while healthy (`dist/bgp/`), a
//! backend, and [`churn`]'s client load while edges join and leave (`synwall-lab bgp`).
//!
//! Each returns a [`report::Report`] (table, JSON, and an SVG drawn by [`charts`]). Only addresses inside the lab's
//! namespaces are ever targeted, and every load is bounded by `timeout`.
//!
//! The crate's binary, `synwall-lab` (`src/bin/synwall-lab`), runs them (`bench`, beside the
//! per-packet comparison of `synwall-baseline`), builds and removes the lab (`up`, `down`) and
//! runs the demo (`demo`); it drives the `synwall` binary that sits beside it.

pub mod anycast;
pub mod charts;
pub mod churn;
pub mod defense;
pub mod host;
pub mod lab;
pub mod livegen;
pub mod load;
pub mod report;
pub mod wan;

use anyhow::{Context, Result};
use defense::{apply, total, Defense};
use lab::{Lab, Paths};
use load::{Flood, DEF_CPU, GEN_CPU};
use report::{fmt_num, Goal, Report};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Options shared by the benchmarks.
#[derive(Clone, Debug)]
pub struct Opts {
    /// The `synwall` binary (started as `synwall edge|backend` in the namespaces).
    pub exe: PathBuf,
    /// Length of each flood / measurement, seconds.
    pub seconds: f64,
    /// How the command line that reproduces the run reads (goes into the reports).
    pub command: String,
    /// What floods in the two-tier lab's benchmarks (flood, legit, scale).
    pub gen: load::FloodGen,
}

/// 64-byte SYNs per second that fill 100 GbE: 100e9 / ((64 + 20) * 8).
pub const LINE_RATE_100G_64B: f64 = 148_809_523.8;

fn cell(v: f64) -> String {
    fmt_num(v)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::INFINITY
    }
}

/// One flood measurement.
#[derive(Clone, Debug, Serialize)]
pub struct FloodRow {
    /// Defense.
    pub defense: Defense,
    /// Rates over the measurement window.
    pub rates: load::Rates,
    /// synwall: `syn_answered` summed over the edges for the whole run.
    pub syn_answered: Option<u64>,
    /// synwall: SYNs dropped over their client prefix's reflection budget (`drop_syn_budget`,
    /// `[edge.budget]`, on by default), whole run.
    pub drop_syn_budget: Option<u64>,
    /// The backend kernel's `TcpExtSyncookiesSent` over the whole run.
    pub backend_cookies_sent: u64,
    /// synwall: share of one CPU edge1's NAPI thread (its XDP program) was busy in the window.
    pub edge_cpu_busy: Option<f64>,
    /// synwall: SYN+ACKs per second of edge CPU time (rate / busy share): the core's capacity
    /// when the generator cannot saturate it.
    pub per_cpu_second: Option<f64>,
    /// Frames the router could not hand to edge1 (veth `r1` tx_dropped: the edge's ring or
    /// backlog was full), whole run.
    pub edge_ingress_dropped: u64,
    /// Share of the defender's CPU (all its non-idle time, `/proc/stat`) in the window, for every
    /// defence alike: the XDP program, forwarding, SYNPROXY, the backend's TCP stack, and
    /// whatever else ran there.
    pub defender_cpu_busy: f64,
    /// SYN+ACKs per second of the defender CPU's busy time (rate / busy share).
    pub per_defender_cpu_second: f64,
    /// The counters sampled through the run, from before the flood starts to after it stops.
    pub timeline: Vec<load::Sample>,
    /// When the flood was started and stopped, seconds on the timeline's clock.
    pub flood_window: [f64; 2],
    /// The measurement window the rates come from, seconds on the timeline's clock.
    pub measure_window: [f64; 2],
}

fn flood_once(lab: &Lab, o: &Opts, d: Defense, edges: &[usize]) -> Result<FloodRow> {
    let act = apply(lab, &o.exe, d, edges, false)?;
    for (i, &e) in edges.iter().enumerate() {
        // The first edge gets the defender's core; a second one shares the generator's.
        lab.pin(e, if i == 0 { DEF_CPU } else { GEN_CPU })?;
    }
    let c0 = lab.be.net_counter("TcpExt:SyncookiesSent")?;
    let d0 = load::tx_dropped(&lab.rtr, "r1")?;
    // The counters are sampled through the run: a second before the flood, the flood (warm-up,
    // then the measured window), a second after it stops.
    let mut tl = load::Timeline::start(lab)?;
    tl.run_for(lab, 1.0)?;
    let flood_start = tl.now();
    let flood = Flood::start(lab, o.gen, o.seconds)?;
    let warm = (o.seconds * 0.2).min(1.0);
    tl.run_for(lab, warm)?;
    let t0 = lab::napi_ticks(edges[0])?;
    let cpu0 = load::cpu_busy_ticks(DEF_CPU)?;
    let w0 = tl.sample(lab)?;
    tl.run_for(lab, o.seconds - warm - 0.3)?;
    let w1 = tl.sample(lab)?;
    let ticks = lab::napi_ticks(edges[0])? - t0;
    let cpu_ticks = load::cpu_busy_ticks(DEF_CPU)? - cpu0;
    let rates = load::Rates::between(&w0, &w1)?;
    let busy = ticks as f64 / 100.0 / rates.seconds;
    let cpu_busy = cpu_ticks as f64 / 100.0 / rates.seconds;
    flood.stop()?;
    let flood_stop = tl.now();
    tl.run_for(lab, 1.0)?;
    let sw = d == Defense::Synwall;
    let counts = act.stop()?;
    Ok(FloodRow {
        defense: d,
        rates,
        syn_answered: sw.then(|| total(&counts, "edge", "syn_answered")),
        drop_syn_budget: sw.then(|| total(&counts, "edge", "drop_syn_budget")),
        edge_cpu_busy: sw.then_some(busy),
        per_cpu_second: (sw && busy > 0.0).then(|| rates.synack_pps / busy),
        backend_cookies_sent: lab.be.net_counter("TcpExt:SyncookiesSent")? - c0,
        edge_ingress_dropped: load::tx_dropped(&lab.rtr, "r1")? - d0,
        defender_cpu_busy: cpu_busy,
        per_defender_cpu_second: ratio(rates.synack_pps, cpu_busy),
        timeline: tl.samples(),
        flood_window: [flood_start, flood_stop],
        measure_window: [w0.t, w1.t],
    })
}

/// How the reports name the flood's source.
fn gen_words(g: load::FloodGen) -> String {
    match g {
        load::FloodGen::Live => format!(
            "The LIVE_FRAMES XDP generator (`bpf/lab/syngen.bpf.c`, BPF_PROG_TEST_RUN from a thread pinned to CPU {GEN_CPU}, `XDP_TX` out of the attacker's veth; `--gen trafgen` for the cross-check)"
        ),
        load::FloodGen::Trafgen => {
            format!("trafgen (one process, `taskset -c {GEN_CPU}`, `--gen trafgen`)")
        }
    }
}

/// Flood absorption: SYN+ACKs per second back at the attacker while the generator floods through
/// edge1, for synwall, the kernel's listener with `tcp_syncookies = 2` and iptables SYNPROXY.
pub fn flood(lab: &Lab, o: &Opts) -> Result<Report> {
    lab.set_paths(Paths::One)?;
    let mut rows = Vec::new();
    for d in [Defense::Synwall, Defense::KernelCookies, Defense::Synproxy] {
        let r = flood_once(lab, o, d, &[0])?;
        eprintln!(
            "flood {}: {:.0} SYN/s offered, {:.0} SYN+ACK/s",
            d.label(),
            r.rates.syn_offered_pps,
            r.rates.synack_pps
        );
        rows.push(r);
    }
    let sw = rows[0].rates.synack_pps;
    let cap = rows[0].per_cpu_second.unwrap_or(f64::NAN);
    let (k, sp) = (rows[1].rates.synack_pps, rows[2].rates.synack_pps);
    let share = ratio(sw, rows[0].rates.syn_offered_pps);
    let busy = rows[0].edge_cpu_busy.unwrap_or(f64::NAN);
    let why = if share > 0.95 && busy < 0.9 {
        format!(
            "; synwall answered {:.0}% of what the one generator offered with its core {:.0}% busy, so this is the generator's ceiling; by edge CPU time ({} SYN+ACKs per CPU-second) the core's capacity is {:.1}x / {:.1}x",
            100.0 * share,
            100.0 * busy,
            fmt_num(cap),
            ratio(cap, k),
            ratio(cap, sp)
        )
    } else {
        format!(
            "; the edge core was {:.0}% busy ({} SYN+ACKs per CPU-second)",
            100.0 * busy,
            fmt_num(cap)
        )
    };
    let goals = vec![
        Goal {
            goal: "synwall >= 5x kernel syncookies".into(),
            measured: format!("{:.1}x measured{why}", ratio(sw, k)),
            met: ratio(sw, k) >= 5.0,
        },
        Goal {
            goal: "synwall >= 3x SYNPROXY".into(),
            measured: format!("{:.1}x measured", ratio(sw, sp)),
            met: ratio(sw, sp) >= 3.0,
        },
    ];
    Ok(Report {
        name: "flood".into(),
        title: "Flood absorption: SYN+ACKs per second on one core while flooded".into(),
        command: format!("{} flood", o.command),
        headers: vec![
            "defense".into(),
            "SYNs offered /s".into(),
            "SYN+ACKs back /s".into(),
            "answered share".into(),
            "synwall syn_answered (whole run)".into(),
            "synwall drop_syn_budget (whole run)".into(),
            "edge CPU busy".into(),
            "SYN+ACKs per edge CPU-second".into(),
            "backend SyncookiesSent (whole run)".into(),
            "dropped entering edge1 (whole run)".into(),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.defense.label().into(),
                    cell(r.rates.syn_offered_pps),
                    cell(r.rates.synack_pps),
                    format!(
                        "{:.1}%",
                        100.0 * ratio(r.rates.synack_pps, r.rates.syn_offered_pps)
                    ),
                    r.syn_answered.map_or("-".into(), |v| v.to_string()),
                    r.drop_syn_budget.map_or("-".into(), |v| v.to_string()),
                    r.edge_cpu_busy
                        .map_or("-".into(), |v| format!("{:.0}%", 100.0 * v)),
                    r.per_cpu_second.map_or("-".into(), cell),
                    r.backend_cookies_sent.to_string(),
                    r.edge_ingress_dropped.to_string(),
                ]
            })
            .collect(),
        data: serde_json::to_value(&rows)?,
        goals,
        notes: vec![
            format!(
                "{} sends IPv4 SYNs with an MSS option from random sources in {} to {}:{}; SYNs offered are counted by nftables at the router's ingress from the attacker, SYN+ACKs by the sink on the attacker's veth (`bpf/lab/sink.bpf.c`, XDP, its NAPI kthread on CPU {GEN_CPU}; the same counter for all three).",
                gen_words(o.gen),
                lab::SPOOF_V4,
                lab::SVC_V4,
                lab::PORT
            ),
            format!(
                "One core for the defender: edge1's rtr-facing veth runs threaded NAPI with its kthread pinned to CPU {DEF_CPU} (that is where the XDP program runs), and RPS steers that veth's and the backend veth's receive work to CPU {DEF_CPU} (where the forwarding, SYNPROXY and the backend's TCP stack run for the baselines). The NAPI kthread runs SCHED_FIFO 50 (`chrt`), so like softirq work it is not time-shared with ordinary tasks. The router's forwarding of the flood runs on the generator's CPU {GEN_CPU}. Edge CPU busy is that kthread's CPU time (/proc/PID/stat) over the window."
            ),
        ],
        y_label: "SYN+ACKs per second".into(),
        machine: None,
        bars: rows
            .iter()
            .map(|r| (r.defense.label().to_string(), r.rates.synack_pps))
            .collect(),
    })
}

/// One legit-traffic measurement.
#[derive(Clone, Debug, Serialize)]
pub struct LegitRow {
    /// Defense.
    pub defense: Defense,
    /// Flood on?
    pub flood: bool,
    /// Connections.
    pub conns: load::ConnStats,
    /// SYN+ACKs per second back at the attacker meanwhile (0 without flood).
    pub synack_pps: f64,
    /// How long the client made connections, seconds.
    pub seconds: f64,
    /// synwall: SYNs its edge dropped over their prefix's reflection budget in this phase (the
    /// client's SYNs and the flood's alike; a client retransmits its SYN after 1 s).
    pub drop_syn_budget: Option<u64>,
}

/// Legit traffic under flood: curl, a new connection per request, for `seconds` without and then
/// with the flood at the generator's maximum; completion share and connect latency.
pub fn legit(lab: &Lab, o: &Opts) -> Result<Report> {
    lab.set_paths(Paths::One)?;
    let mut rows = Vec::new();
    for d in [Defense::Synwall, Defense::KernelCookies, Defense::Synproxy] {
        // The defence is put in force for each phase, so each has its own synwall counters.
        let act = apply(lab, &o.exe, d, &[0], false)?;
        lab.pin(0, DEF_CPU)?;
        let quiet = load::curl_batch(lab, o.seconds)?;
        let quiet_counts = act.stop()?;
        let act = apply(lab, &o.exe, d, &[0], false)?;
        lab.pin(0, DEF_CPU)?;
        let flood = Flood::start(lab, o.gen, o.seconds + 2.0)?;
        std::thread::sleep(Duration::from_millis(500));
        let (_, a0) = load::flood_counters(lab)?;
        let t = std::time::Instant::now();
        let flooded = load::curl_batch(lab, o.seconds)?;
        let (_, a1) = load::flood_counters(lab)?;
        let pps = (a1 - a0) as f64 / t.elapsed().as_secs_f64();
        flood.stop()?;
        let flood_counts = act.stop()?;
        let sw = d == Defense::Synwall;
        eprintln!(
            "legit {}: quiet {} of {} (p99 {:.3} ms) / flood {} of {} (p99 {:.3} ms)",
            d.label(),
            quiet.completed,
            quiet.tried,
            quiet.p99_ms,
            flooded.completed,
            flooded.tried,
            flooded.p99_ms
        );
        rows.push(LegitRow {
            defense: d,
            flood: false,
            conns: quiet,
            synack_pps: 0.0,
            seconds: o.seconds,
            drop_syn_budget: sw.then(|| total(&quiet_counts, "edge", "drop_syn_budget")),
        });
        rows.push(LegitRow {
            defense: d,
            flood: true,
            conns: flooded,
            synack_pps: pps,
            seconds: o.seconds,
            drop_syn_budget: sw.then(|| total(&flood_counts, "edge", "drop_syn_budget")),
        });
    }
    let sw_q = &rows[0].conns;
    let sw_f = &rows[1].conns;
    let goals = vec![
        Goal {
            goal: "synwall: 100% of connections completed under flood".into(),
            measured: format!(
                "{:.2}% ({} of {})",
                100.0 * sw_f.share,
                sw_f.completed,
                sw_f.tried
            ),
            met: sw_f.tried > 0 && sw_f.completed == sw_f.tried,
        },
        Goal {
            goal: "synwall: p99 connect latency under flood <= 2x no flood".into(),
            measured: format!(
                "{:.2} ms vs {:.2} ms ({:.1}x)",
                sw_f.p99_ms,
                sw_q.p99_ms,
                ratio(sw_f.p99_ms, sw_q.p99_ms)
            ),
            met: ratio(sw_f.p99_ms, sw_q.p99_ms) <= 2.0,
        },
    ];
    Ok(Report {
        name: "legit".into(),
        title: "Legit traffic under flood: completed connections and connect latency".into(),
        command: format!("{} legit", o.command),
        headers: vec![
            "defense".into(),
            "flood".into(),
            "connections".into(),
            "completed".into(),
            "p50 connect ms".into(),
            "p99 connect ms".into(),
            "max ms".into(),
            "flood SYN+ACKs /s".into(),
            "synwall drop_syn_budget".into(),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.defense.label().into(),
                    if r.flood { "max" } else { "none" }.into(),
                    r.conns.tried.to_string(),
                    format!("{:.2}%", 100.0 * r.conns.share),
                    format!("{:.3}", r.conns.p50_ms),
                    format!("{:.3}", r.conns.p99_ms),
                    format!("{:.3}", r.conns.max_ms),
                    cell(r.synack_pps),
                    r.drop_syn_budget.map_or("-".into(), |v| v.to_string()),
                ]
            })
            .collect(),
        data: serde_json::to_value(&rows)?,
        goals,
        notes: vec![format!(
            "One curl process in the client namespace requests {} repeatedly for {} s, each request on a new connection (`Connection: close`, `--connect-timeout 3 -m 3`); latency is curl's `time_connect` (SYN to SYN+ACK), completed means HTTP 200; p99 is n/a when nothing completed. The flood is the flood benchmark's, at full speed, with the same pinning: {}. curl and nginx run SCHED_FIFO 10 (below the edge's NAPI thread) and unpinned: on two vCPUs the generator and the defender saturate both cores, and the client and server stand for machines of their own. The client namespace ({}) is one load generator standing in for many clients, so synwall's edges exempt it from the per-/24 reflection budget (`--allow`); the flood's spoofed sources stay under it.",
            lab::url(false, "/index.html"),
            o.seconds,
            gen_words(o.gen),
            lab::CLIENT_NETS.join(", ")
        )],
        y_label: "p99 connect latency, ms".into(),
        machine: None,
        bars: rows
            .iter()
            .map(|r| {
                (
                    format!(
                        "{} {}",
                        r.defense.label(),
                        if r.flood { "flood" } else { "quiet" }
                    ),
                    r.conns.p99_ms,
                )
            })
            .collect(),
    })
}

/// A client profile of the TCP_INFO matrix.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Profile {
    /// Name.
    pub name: &'static str,
    /// IPv6?
    pub v6: bool,
    /// Timestamps on the client.
    pub ts: bool,
    /// MSS the client announces (route `advmss`), None for the route's own.
    pub advmss: Option<u32>,
}

/// The profiles of the matrix.
pub const PROFILES: [Profile; 5] = [
    Profile {
        name: "Linux",
        v6: false,
        ts: true,
        advmss: None,
    },
    Profile {
        name: "no timestamps",
        v6: false,
        ts: false,
        advmss: None,
    },
    Profile {
        name: "mobile MSS 1360",
        v6: false,
        ts: true,
        advmss: Some(1360),
    },
    Profile {
        name: "jumbo MSS 8960",
        v6: false,
        ts: true,
        advmss: Some(8960),
    },
    Profile {
        name: "IPv6",
        v6: true,
        ts: true,
        advmss: None,
    },
];

fn client_profile(lab: &Lab, p: &Profile) -> Result<()> {
    lab.cli
        .sysctl("net.ipv4.tcp_timestamps", if p.ts { "1" } else { "0" })?;
    let adv: Vec<String> = p
        .advmss
        .map(|m| vec!["advmss".to_string(), m.to_string()])
        .unwrap_or_default();
    let mut a4 = vec![
        "ip",
        "-4",
        "route",
        "replace",
        "default",
        "via",
        "10.88.2.1",
    ];
    let mut a6 = vec!["ip", "-6", "route", "replace", "::/0", "via", "fd88:2::1"];
    for s in &adv {
        a4.push(s);
        a6.push(s);
    }
    lab.cli.run(&a4)?;
    lab.cli.run(&a6)?;
    Ok(())
}

/// One bulk measurement.
#[derive(Clone, Debug, Serialize)]
pub struct BulkRow {
    /// Defense.
    pub defense: Defense,
    /// Bytes per second.
    pub bytes_per_s: f64,
}

/// One TCP_INFO matrix cell.
#[derive(Clone, Debug, Serialize)]
pub struct MatrixRow {
    /// Defense.
    pub defense: Defense,
    /// Client profile.
    pub profile: &'static str,
    /// The server socket's options (TCP_INFO).
    pub server: load::ServerOpts,
}

/// Connection quality: bulk download over 50 ms RTT and 0.1% loss from a client without
/// timestamps (synwall vs the kernel's cookies vs no cookies), then the server socket's options
/// per client profile for each.
pub fn quality(lab: &Lab, o: &Opts) -> Result<Report> {
    lab.set_paths(Paths::One)?;
    let three = [Defense::Synwall, Defense::KernelCookies, Defense::NoCookies];
    let wan = wan::Wan::build(lab, Duration::from_millis(25), 0.001)?;
    wan.client.sysctl("net.ipv4.tcp_timestamps", "0")?;
    let mut bulk = Vec::new();
    for d in three {
        let act = apply(lab, &o.exe, d, &[0], false)?;
        let bps = load::bulk(&wan.client, false, o.seconds)?;
        act.stop()?;
        eprintln!("bulk {}: {:.0} B/s", d.label(), bps);
        bulk.push(BulkRow {
            defense: d,
            bytes_per_s: bps,
        });
    }
    let relayed = [
        wan.counts[0].load(std::sync::atomic::Ordering::Relaxed),
        wan.counts[1].load(std::sync::atomic::Ordering::Relaxed),
    ];
    drop(wan);
    // The matrix: a TCP server of our own next to nginx (port INFO_PORT), which reads each
    // accepted socket's TCP_INFO; kernel TCP clients from `cli`.
    let mut servers = Vec::new();
    for v6 in [false, true] {
        let ip: std::net::IpAddr = if v6 { lab::SVC_V6 } else { lab::SVC_V4 }.parse()?;
        let addr = std::net::SocketAddr::new(ip, lab::INFO_PORT);
        let l = lab.be.listen(addr)?;
        servers.push((addr, synwall_netns::tcp::EchoServer::start(l)?));
    }
    let mut matrix = Vec::new();
    for d in three {
        let act = apply(lab, &o.exe, d, &[0], false)?;
        for (i, p) in PROFILES.iter().enumerate() {
            client_profile(lab, p)?;
            let (to, server) = &servers[p.v6 as usize];
            let to = *to;
            lab.cli
                .enter(move || -> Result<()> {
                    let data = synwall_netns::tcp::pattern(10_000, i as u32);
                    let mut s = synwall_netns::tcp::connect(to, None, Duration::from_secs(5))?;
                    let (answer, _) =
                        synwall_netns::tcp::exchange(&mut s, &data, Duration::from_secs(5))?;
                    anyhow::ensure!(
                        answer == synwall_netns::tcp::transform(&data),
                        "wrong answer"
                    );
                    Ok(())
                })?
                .with_context(|| format!("{} client {}", d.label(), p.name))?;
            let acc = server.next(Duration::from_secs(5))?;
            matrix.push(MatrixRow {
                defense: d,
                profile: p.name,
                server: acc.info.into(),
            });
        }
        act.stop()?;
    }
    drop(servers);
    client_profile(lab, &PROFILES[0])?;
    let (sw, k, n) = (
        bulk[0].bytes_per_s,
        bulk[1].bytes_per_s,
        bulk[2].bytes_per_s,
    );
    let goals = vec![
        Goal {
            goal: "synwall >= 10x Linux cookies".into(),
            measured: format!("{:.2}x", ratio(sw, k)),
            met: ratio(sw, k) >= 10.0,
        },
        Goal {
            goal: "synwall >= 0.95x no cookies".into(),
            measured: format!("{:.2}x", ratio(sw, n)),
            met: ratio(sw, n) >= 0.95,
        },
    ];
    let mut rows: Vec<Vec<String>> = bulk
        .iter()
        .map(|b| {
            vec![
                b.defense.label().into(),
                "no timestamps, 50 ms RTT, 0.1% loss".into(),
                format!("{:.2} MB/s", b.bytes_per_s / 1e6),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
            ]
        })
        .collect();
    for m in &matrix {
        rows.push(vec![
            m.defense.label().into(),
            m.profile.into(),
            "".into(),
            m.server.mss.to_string(),
            m.server
                .wscale
                .map_or("off".into(), |(s, r)| format!("{s},{r}")),
            if m.server.sack { "yes" } else { "no" }.into(),
            if m.server.ts { "yes" } else { "no" }.into(),
        ]);
    }
    Ok(Report {
        name: "quality".into(),
        title: "Connection quality: bulk transfer and the server socket's options".into(),
        command: format!("{} quality", o.command),
        headers: vec![
            "defense".into(),
            "client".into(),
            "bulk download".into(),
            "server mss".into(),
            "server wscale snd,rcv".into(),
            "sack".into(),
            "ts".into(),
        ],
        rows,
        data: serde_json::json!({ "bulk": bulk, "matrix": matrix, "wan_frames_relayed_dropped": relayed }),
        goals,
        notes: vec![
            format!("Bulk: curl downloads nginx's sparse file for {} s through edge1 from a client behind a WAN namespace (25 ms each way, 0.1% random loss each way: 50 ms RTT), client `net.ipv4.tcp_timestamps = 0`; the rate counts bytes after the handshake. synwall: edge + backend; kernel: backend `tcp_syncookies = 2` (every connection from a cookie); no cookies: `tcp_syncookies = 0`.", o.seconds),
            format!("The WAN is a userspace relay (AF_PACKET, `synwall_bench::wan`), not `tc netem`: this machine's kernel has neither `sch_netem` nor `sch_fq` (`CONFIG_NET_SCH_NETEM is not set`). It relayed {} frames and dropped {} in this run.", relayed[0], relayed[1]),
            "Matrix: TCP_INFO of the server socket right after `accept` (a TCP server of ours on port 8080 next to nginx in the backend namespace, protected like port 80), a kernel TCP client in the client namespace, no WAN delay. Profiles: Linux defaults; no timestamps; client route `advmss 1360` (mobile); `advmss 8960` (jumbo: the client announces 8960, but the lab's path MTU stays 1500 because XDP on veth without multi-buffer support caps the MTU near 3.5 KB); IPv6.".into(),
        ],
        y_label: "bulk download, MB/s".into(),
        machine: None,
        bars: bulk
            .iter()
            .map(|b| (b.defense.label().to_string(), b.bytes_per_s / 1e6))
            .collect(),
    })
}

/// Scale results.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleData {
    /// One edge (edge1, pinned to the defender's core).
    pub one_edge: FloodRow,
    /// Two edges behind ECMP (edge2's NAPI on the generator's core: the machine has two).
    pub two_edges: FloodRow,
    /// SYN+ACKs per second of edge CPU time (one-edge figure).
    pub per_core_pps: f64,
    /// Cores for 100 GbE of 64-byte SYNs: 148.8 Mpps / per-core rate.
    pub cores_per_100g: f64,
    /// wrk through crossing paths (SYN via edge1, the rest via edge2).
    pub crossing_wrk: load::WrkStats,
    /// curl through crossing paths.
    pub crossing_curl: load::ConnStats,
    /// edge1's `syn_answered` + `syn_answered_allowed` meanwhile (the client namespace is on the
    /// edges' allow list, so its SYNs count in the second).
    pub edge1_syn_answered: u64,
    /// Non-SYN segments edge2 forwarded (the handshake ACKs and the rest of each flow).
    pub edge2_forwarded: u64,
    /// Sockets the backend created from cookies edge1 issued (ACKs that came via edge2).
    pub backend_reqsk_created: u64,
    /// edge2's `syn_answered` + `syn_answered_allowed` (0: no SYN went its way).
    pub edge2_syn_answered: u64,
}

/// Scale: aggregate absorption with one vs two edges behind ECMP, and real connections whose
/// handshake ACKs deliberately cross to the other edge.
pub fn scale(lab: &Lab, o: &Opts) -> Result<Report> {
    lab.set_paths(Paths::One)?;
    let one_edge = flood_once(lab, o, Defense::Synwall, &[0])?;
    lab.set_paths(Paths::Ecmp)?;
    let two_edges = flood_once(lab, o, Defense::Synwall, &[0, 1])?;
    lab.set_paths(Paths::Crossing)?;
    let act = apply(lab, &o.exe, Defense::Synwall, &[0, 1], false)?;
    let secs = o.seconds.ceil().max(1.0) as u32;
    let crossing_wrk = load::wrk(lab, secs, 4)?;
    let crossing_curl = load::curl_batch(lab, (o.seconds / 2.0).max(1.0))?;
    let counts = act.stop()?;
    lab.set_paths(Paths::One)?;
    // The core's capacity: the rate per second of edge CPU time (the generator may not saturate
    // the edge), or the measured rate when no CPU time was seen.
    let per_core = one_edge.per_cpu_second.unwrap_or(one_edge.rates.synack_pps);
    let data = ScaleData {
        per_core_pps: per_core,
        cores_per_100g: LINE_RATE_100G_64B / per_core.max(1.0),
        edge1_syn_answered: total(&counts, "edge1", "syn_answered")
            + total(&counts, "edge1", "syn_answered_allowed"),
        edge2_forwarded: total(&counts, "edge2", "fwd_non_syn"),
        backend_reqsk_created: total(&counts, "backend", "backend_reqsk_created"),
        edge2_syn_answered: total(&counts, "edge2", "syn_answered")
            + total(&counts, "edge2", "syn_answered_allowed"),
        one_edge,
        two_edges,
        crossing_wrk,
        crossing_curl,
    };
    let cross_ok = data.crossing_wrk.requests > 0
        && data.edge2_syn_answered == 0
        && data.backend_reqsk_created > 0
        && data.crossing_wrk.errors == 0
        && data.crossing_curl.tried > 0
        && data.crossing_curl.completed == data.crossing_curl.tried;
    let goals = vec![Goal {
        goal: "ACKs crossing edges: 100% success".into(),
        measured: format!(
            "wrk {} requests, {} errors; curl {} of {}",
            data.crossing_wrk.requests,
            data.crossing_wrk.errors,
            data.crossing_curl.completed,
            data.crossing_curl.tried
        ),
        met: cross_ok,
    }];
    let rows = vec![
        vec![
            "one edge (ECMP off)".into(),
            cell(data.one_edge.rates.syn_offered_pps),
            cell(data.one_edge.rates.synack_pps),
        ],
        vec![
            "two edges (ECMP)".into(),
            cell(data.two_edges.rates.syn_offered_pps),
            cell(data.two_edges.rates.synack_pps),
        ],
        vec![
            "one edge: SYN+ACKs per edge CPU-second".into(),
            "".into(),
            cell(per_core),
        ],
        vec![
            "cores per 100 GbE of 64-byte SYNs".into(),
            "148.8M".into(),
            format!("{:.0}", data.cores_per_100g),
        ],
        vec![
            "crossing: SYNs edge1 answered / SYNs edge2 answered / edge2 forwarded / backend sockets from cookies".into(),
            "".into(),
            format!(
                "{} / {} / {} / {}",
                data.edge1_syn_answered,
                data.edge2_syn_answered,
                data.edge2_forwarded,
                data.backend_reqsk_created
            ),
        ],
    ];
    Ok(Report {
        name: "scale".into(),
        title: "Scale: one vs two edges behind ECMP, ACKs crossing edges".into(),
        command: format!("{} scale", o.command),
        headers: vec![
            "setup".into(),
            "SYNs offered /s".into(),
            "SYN+ACKs back /s".into(),
        ],
        rows,
        data: serde_json::to_value(&data)?,
        goals,
        notes: vec![
            "Two edges: the router's ECMP route (`fib_multipath_hash_policy = 1`) spreads the spoofed flows over both; edge1's NAPI thread is on the defender's CPU, edge2's on the generator's (the machine has two cores), so the aggregate is bounded by the one generator and two shared cores, not by the edges.".into(),
            "Crossing: nftables on the router marks the client's SYNs, policy routing sends marked packets to edge1 and everything else to edge2; both edges share one secret; the backend's tc program validates the cookie in every handshake ACK (edge1 issued it, edge2 carried it) and creates the socket (`backend_reqsk_created`); wrk (`-c 4 -H 'Connection: close'`, a connection per request) and curl.".into(),
            format!("Cores per 100 GbE = {:.1} Mpps / the one-edge rate per second of edge CPU time ({} SYN+ACKs per CPU-second: measured rate / busy share of edge1's NAPI kthread). A veth in a VM is far slower per packet than a NIC driver's XDP; see the per-packet figures for the program alone.", LINE_RATE_100G_64B / 1e6, fmt_num(per_core)),
        ],
        y_label: "SYN+ACKs per second".into(),
        machine: None,
        bars: vec![
            ("one edge".into(), data.one_edge.rates.synack_pps),
            ("two edges".into(), data.two_edges.rates.synack_pps),
        ],
    })
}

/// The benchmark names, in the order `all` runs them.
pub const BENCHES: [&str; 4] = ["flood", "legit", "quality", "scale"];

/// Run one benchmark by name; the report records the machine and its load meanwhile.
pub fn run(name: &str, lab: &Lab, o: &Opts) -> Result<Report> {
    let load0 = report::loadavg();
    let mut r = match name {
        "flood" => flood(lab, o),
        "legit" => legit(lab, o),
        "quality" => quality(lab, o),
        "scale" => scale(lab, o),
        _ => anyhow::bail!(
            "unknown benchmark {name:?} (one of: {}, all)",
            BENCHES.join(", ")
        ),
    }?;
    r.machine = Some(report::Machine::probe(load0));
    Ok(r)
}
