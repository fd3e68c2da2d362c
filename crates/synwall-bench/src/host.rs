//! The one-host flood: what one defender CPU answers, with nothing else on the way.
//!
//! ```text
//!  <prefix>ga [attacker]  10.89.0.1 ──veth── 10.89.0.2  <prefix>gh [host]  listener :80
//!  generator (LIVE_FRAMES, CPU GEN_CPU)            defender: synwall single | kernel
//!  sink (XDP, NAPI kthread on GEN_CPU)             syncookies=2 | SYNPROXY (NAPI kthread on DEF_CPU)
//! ```
//!
//! The generator ([`crate::livegen::SynGen`]) floods the host's service from 10.89.128.0/17 at
//! its maximum; the sink on the attacker's veth counts the SYN+ACKs that come back. The host's
//! veth runs threaded NAPI with its kthread pinned to [`DEF_CPU`] (SCHED_FIFO): every defence does
//! all its work for a SYN there, in that thread (synwall's XDP program; for the baselines the
//! trivial `XDP_PASS`, then the kernel's stack from the driver to the SYN+ACK handed to the
//! attacker's veth). Its CPU time is the defender's cost.

use crate::defense::Defense;
use crate::livegen::{self, Plan, Sink, SynGen, SynOptions, Template};
use crate::load::{DEF_CPU, GEN_CPU};
use crate::report::{fmt_num, Goal, Report};
use crate::Opts;
use anyhow::{Context, Result};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use synwall_netns::{topo, veth, Counts, Daemon, Netns};

/// The attacker's address on the link.
pub const ATT_V4: &str = "10.89.0.1";
/// The host's address (the service).
pub const HOST_V4: &str = "10.89.0.2";
/// The spoofed sources (routed back to the attacker).
pub const SPOOF_V4: &str = "10.89.128.0";
/// Its length.
pub const SPOOF_LEN: u8 = 17;
/// The service port.
pub const PORT: u16 = 80;

/// The two namespaces, the sink and the listener; dropping it removes everything.
pub struct HostLab {
    /// Attacker (generator, sink).
    pub att: Netns,
    /// The protected host.
    pub host: Netns,
    /// The attacker's veth.
    pub att_if: String,
    /// The host's veth.
    pub host_if: String,
    /// Working directory (the secret).
    pub dir: PathBuf,
    sink: Sink,
    _listener: std::net::TcpListener,
}

impl HostLab {
    /// Build it: namespaces `<prefix>ga`, `<prefix>gh`, the veth, routes, the listener, the sink
    /// with its NAPI kthread on the generator's CPU.
    pub fn up(prefix: &str) -> Result<HostLab> {
        let att = Netns::create(&format!("{prefix}ga"))?;
        let host = Netns::create(&format!("{prefix}gh"))?;
        // Device names carry the prefix: the NAPI kthreads are found by name, machine-wide.
        let (att_if, host_if) = (format!("{prefix}a"), format!("{prefix}h"));
        veth(&att, &att_if, &host, &host_if)?;
        att.addr(&att_if, &format!("{ATT_V4}/24"))?;
        host.addr(&host_if, &format!("{HOST_V4}/24"))?;
        topo::router(&host)?;
        host.route(&[&format!("{SPOOF_V4}/{SPOOF_LEN}"), "via", ATT_V4])?;
        // The kernel's answers go out without waiting for neighbour resolution.
        let mac = topo::mac(&att, &att_if)?
            .map(|b| format!("{b:02x}"))
            .join(":");
        host.run(&[
            "ip",
            "neigh",
            "replace",
            ATT_V4,
            "lladdr",
            &mac,
            "dev",
            &host_if,
            "nud",
            "permanent",
        ])?;
        host.sysctl("net.core.somaxconn", "4096")?;
        let listener = host.listen(SocketAddr::new(HOST_V4.parse()?, PORT))?;
        let sink = Sink::attach(&att, &att_if)?;
        livegen::napi_pin(&att, &att_if, GEN_CPU)?;
        let dir = std::env::temp_dir().join(format!("synwall-host-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).context("host lab directory")?;
        Ok(HostLab {
            att,
            host,
            att_if,
            host_if,
            dir,
            sink,
            _listener: listener,
        })
    }

    /// The generator's template: SYNs from the spoofed prefix to the service.
    pub fn template(&self, options: SynOptions) -> Result<Template> {
        Ok(Template {
            src_mac: topo::mac(&self.att, &self.att_if)?,
            dst_mac: topo::mac(&self.host, &self.host_if)?,
            prefix: SPOOF_V4.parse()?,
            prefix_len: SPOOF_LEN,
            dst: HOST_V4.parse()?,
            dport: PORT,
            options,
        })
    }

    /// The sink on the attacker's veth.
    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    fn secret(&self) -> Result<String> {
        crate::lab::secret_file(&self.dir)
    }

    fn iptables(&self, args: &[&str]) -> Result<()> {
        let mut a = vec!["ip", "netns", "exec", self.host.name(), "iptables"];
        a.extend_from_slice(args);
        synwall_netns::sh(&a)
            .map(|_| ())
            .context("iptables SYNPROXY rules")
    }

    /// Put `d` in force on the host.
    pub fn apply(&self, exe: &std::path::Path, d: Defense) -> Result<HostDefense<'_>> {
        let mut act = HostDefense {
            lab: self,
            defense: d,
            daemon: None,
            pass: None,
        };
        match d {
            Defense::Synwall => {
                let sf = self.secret()?;
                let args: Vec<String> = [
                    "single",
                    "--iface",
                    &self.host_if,
                    "--secret-file",
                    &sf,
                    "--service",
                    &format!("{HOST_V4}/32:{PORT}"),
                    // A real spoofed flood spreads over far more prefixes than the lab's /17,
                    // and the baselines have no budget: capacity is measured without one.
                    "--budget",
                    "off",
                    "--set-sysctls",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                act.daemon = Some(Daemon::start(
                    &self.host,
                    exe,
                    &args,
                    Duration::from_secs(30),
                )?);
            }
            Defense::KernelCookies | Defense::NoCookies | Defense::Synproxy => {
                let cookies = match d {
                    Defense::KernelCookies => "2",
                    Defense::NoCookies => "0",
                    _ => "1",
                };
                self.host.sysctl("net.ipv4.tcp_syncookies", cookies)?;
                // The generator's XDP_TX frames reach a veth only if it runs an XDP program.
                act.pass = Some(Sink::pass(&self.host, &self.host_if)?);
                if d == Defense::Synproxy {
                    crate::defense::synproxy(&self.host, "INPUT", HOST_V4)?;
                }
            }
        }
        Ok(act)
    }
}

impl Drop for HostLab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A defence in force on the host; dropping it removes it.
pub struct HostDefense<'a> {
    lab: &'a HostLab,
    defense: Defense,
    daemon: Option<Daemon>,
    pass: Option<Sink>,
}

impl HostDefense<'_> {
    /// Remove it; synwall's counters (by role) when it was synwall.
    pub fn stop(mut self) -> Result<Vec<(String, Counts)>> {
        let out = match self.daemon.take() {
            Some(d) => d.stop()?.into_iter().collect(),
            None => Vec::new(),
        };
        self.clear();
        Ok(out)
    }

    fn clear(&mut self) {
        self.pass = None;
        if self.defense == Defense::Synproxy {
            for t in ["raw", "filter"] {
                let _ = self.lab.iptables(&["-t", t, "-F"]);
            }
        }
        let _ = self.lab.host.sysctl("net.ipv4.tcp_syncookies", "1");
    }
}

impl Drop for HostDefense<'_> {
    fn drop(&mut self) {
        self.daemon = None;
        self.clear();
    }
}

fn rx_stat(ns: &Netns, dev: &str, what: &str) -> Result<u64> {
    let path = format!("/sys/class/net/{dev}/statistics/{what}");
    let out = synwall_netns::sh(&["ip", "netns", "exec", ns.name(), "cat", &path])?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("{dev} {what}"))
}

/// Softirq time of CPU `cpu` so far, USER_HZ ticks (`/proc/stat`).
pub fn softirq_ticks(cpu: usize) -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .with_context(|| format!("no {name} in /proc/stat"))?;
    line.split_whitespace()
        .nth(7)
        .context("softirq field")?
        .parse()
        .context("softirq ticks")
}

/// One defence's measurement.
#[derive(Clone, Debug, Serialize)]
pub struct HostRow {
    /// Defense.
    pub defense: Defense,
    /// Rates over the window: `syn_offered_pps` is what the generator sent, `synack_pps` what
    /// the sink counted.
    pub rates: crate::load::Rates,
    /// SYNs per second the host's veth took in (its `rx_packets`).
    pub host_rx_pps: f64,
    /// SYNs per second the host's veth could not take (its ring was full: `rx_dropped`).
    pub host_rx_dropped_pps: f64,
    /// CPU seconds per second of the host veth's NAPI kthread (all of the defence's work).
    pub napi_busy: f64,
    /// Softirq seconds per second on the defender's CPU (work the kthread did not do itself).
    pub softirq_busy: f64,
    /// All non-idle time of the defender's CPU per second, for comparison (includes whatever
    /// else the shared machine ran there).
    pub defender_cpu_busy: f64,
    /// SYN+ACKs per defender CPU-second: rate / (napi_busy + softirq_busy).
    pub per_defender_cpu_second: f64,
    /// synwall: SYNs its XDP program answered, whole run.
    pub syn_answered: Option<u64>,
    /// The host kernel's `TcpExtSyncookiesSent`, whole run.
    pub cookies_sent: u64,
    /// The generator's counters after this run (cumulative over the benchmark's runs).
    pub generator: livegen::GenCounters,
    /// The sink's counters after this run (cumulative).
    pub sink: livegen::SinkCounters,
    /// SYN+ACKs per defender CPU-second of this defence in every round, in run order (this row
    /// is the median round's).
    pub rounds_per_cpu_second: Vec<f64>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::INFINITY
    }
}

/// Measure `d` for `seconds` after a warm-up, the generator at its maximum.
pub fn measure(
    lab: &HostLab,
    gen: &SynGen,
    exe: &std::path::Path,
    d: Defense,
    seconds: f64,
) -> Result<HostRow> {
    let act = lab.apply(exe, d)?;
    // The veth's NAPI is (re)made when an XDP program attaches: pin its new kthread.
    let napi = livegen::napi_pin(&lab.host, &lab.host_if, DEF_CPU)?;
    let c0 = lab.host.net_counter("TcpExt:SyncookiesSent")?;
    let warm = (seconds * 0.2).clamp(0.3, 1.0);
    let run = gen.start(
        &lab.att,
        &lab.att_if,
        Plan::full_speed(warm + seconds + 2.0, GEN_CPU),
    )?;
    std::thread::sleep(Duration::from_secs_f64(warm));
    let sample = || -> Result<[u64; 7]> {
        Ok([
            gen.sent()?,
            lab.sink().synacks()?,
            rx_stat(&lab.host, &lab.host_if, "rx_packets")?,
            rx_stat(&lab.host, &lab.host_if, "rx_dropped")?,
            livegen::thread_ticks(&napi),
            softirq_ticks(DEF_CPU)?,
            crate::load::cpu_busy_ticks(DEF_CPU)?,
        ])
    };
    let t0 = Instant::now();
    let s0 = sample()?;
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let s1 = sample()?;
    let dt = t0.elapsed().as_secs_f64();
    run.stop()?;
    // The answers still in flight arrive.
    std::thread::sleep(Duration::from_millis(300));
    let counts = act.stop()?;
    let per = |i: usize| (s1[i] - s0[i]) as f64 / dt;
    let ticks = |i: usize| (s1[i] - s0[i]) as f64 / 100.0 / dt;
    let (napi_busy, softirq_busy) = (ticks(4), ticks(5));
    let synack = per(1);
    Ok(HostRow {
        defense: d,
        rates: crate::load::Rates {
            syn_offered_pps: per(0),
            synack_pps: synack,
            seconds: dt,
        },
        host_rx_pps: per(2),
        host_rx_dropped_pps: per(3),
        napi_busy,
        softirq_busy,
        defender_cpu_busy: ticks(6),
        per_defender_cpu_second: ratio(synack, napi_busy + softirq_busy),
        syn_answered: (d == Defense::Synwall).then(|| {
            counts
                .iter()
                .map(|(_, c)| c.get("syn_answered"))
                .sum::<u64>()
        }),
        cookies_sent: lab.host.net_counter("TcpExt:SyncookiesSent")? - c0,
        generator: gen.counters()?,
        sink: lab.sink().counters()?,
        rounds_per_cpu_second: Vec::new(),
    })
}

/// The one-host flood: synwall single-node vs the host's `tcp_syncookies = 2` vs SYNPROXY on the
/// host, the generator at its maximum from one core, the defender on one CPU. `rounds` times the
/// three in turn (a shared machine's load moves); each defence's row is its median round by SYN+ACKs
/// per defender CPU-second.
pub fn host_flood(o: &Opts, options: SynOptions, rounds: usize) -> Result<Report> {
    anyhow::ensure!(rounds >= 1, "host-flood needs at least one round");
    let defenses = [Defense::Synwall, Defense::KernelCookies, Defense::Synproxy];
    let lab = HostLab::up(&synwall_netns::unique_prefix())?;
    let gen = SynGen::load(&lab.template(options)?, 0)?;
    let mut all: Vec<Vec<HostRow>> = vec![Vec::new(); defenses.len()];
    for round in 1..=rounds {
        for (i, &d) in defenses.iter().enumerate() {
            let r = measure(&lab, &gen, &o.exe, d, o.seconds)?;
            eprintln!(
                "host-flood round {round}/{rounds} {}: {:.0} SYN/s offered, {:.0} SYN+ACK/s, defender {:.2} CPU-s/s, {:.0} per CPU-second",
                d.label(),
                r.rates.syn_offered_pps,
                r.rates.synack_pps,
                r.napi_busy + r.softirq_busy,
                r.per_defender_cpu_second
            );
            all[i].push(r);
        }
    }
    drop(gen);
    drop(lab);
    let rows = all
        .into_iter()
        .map(|mut v| {
            let per: Vec<f64> = v.iter().map(|r| r.per_defender_cpu_second).collect();
            v.sort_by(|a, b| {
                a.per_defender_cpu_second
                    .total_cmp(&b.per_defender_cpu_second)
            });
            let mut m = v.swap_remove((v.len() - 1) / 2);
            m.rounds_per_cpu_second = per;
            m
        })
        .collect();
    Ok(report(o, options, rounds, rows))
}

fn report(o: &Opts, options: SynOptions, rounds: usize, rows: Vec<HostRow>) -> Report {
    let per = |i: usize| rows[i].per_defender_cpu_second;
    let (vs_k, vs_sp) = (ratio(per(0), per(1)), ratio(per(0), per(2)));
    let offered = rows
        .iter()
        .map(|r| r.rates.syn_offered_pps)
        .fold(f64::INFINITY, f64::min);
    let opt = match options {
        SynOptions::Linux => "linux",
        SynOptions::Mss => "mss",
    };
    let goals = vec![
        Goal {
            goal: "offered flood from one core >= 2M SYN/s".into(),
            measured: format!("{} SYN/s (the lowest of the three runs)", fmt_num(offered)),
            met: offered >= 2e6,
        },
        Goal {
            goal: "SYN+ACKs per defender CPU-second: synwall >= 10x kernel syncookies".into(),
            measured: format!("{vs_k:.1}x ({} vs {})", fmt_num(per(0)), fmt_num(per(1))),
            met: vs_k >= 10.0,
        },
        Goal {
            goal: "SYN+ACKs per defender CPU-second: synwall >= 5x SYNPROXY".into(),
            measured: format!("{vs_sp:.1}x ({} vs {})", fmt_num(per(0)), fmt_num(per(2))),
            met: vs_sp >= 5.0,
        },
    ];
    Report {
        name: "host_flood".into(),
        title: "One-host flood: the defender's CPU only".into(),
        command: format!("{} host-flood --syn {opt} --rounds {rounds}", o.command),
        headers: vec![
            "defense".into(),
            "SYNs offered /s".into(),
            "SYN+ACKs back /s".into(),
            "answered share".into(),
            "host veth rx /s (dropped /s)".into(),
            "NAPI kthread CPU".into(),
            "softirq on defender CPU".into(),
            "SYN+ACKs per defender CPU-second".into(),
            "per CPU-second, every round".into(),
            "defender CPU busy (all)".into(),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.defense.label().into(),
                    fmt_num(r.rates.syn_offered_pps),
                    fmt_num(r.rates.synack_pps),
                    format!(
                        "{:.1}%",
                        100.0 * r.rates.synack_pps / r.rates.syn_offered_pps.max(1.0)
                    ),
                    format!(
                        "{} ({})",
                        fmt_num(r.host_rx_pps),
                        fmt_num(r.host_rx_dropped_pps)
                    ),
                    format!("{:.0}%", 100.0 * r.napi_busy),
                    format!("{:.0}%", 100.0 * r.softirq_busy),
                    fmt_num(r.per_defender_cpu_second),
                    r.rounds_per_cpu_second
                        .iter()
                        .map(|&v| fmt_num(v))
                        .collect::<Vec<_>>()
                        .join(" "),
                    format!("{:.0}%", 100.0 * r.defender_cpu_busy),
                ]
            })
            .collect(),
        data: serde_json::to_value(&rows).unwrap_or_default(),
        goals,
        notes: vec![
            format!(
                "{rounds} round(s) of {:.0} s per defence, the three in turn each round; each row is that defence's median round by SYN+ACKs per defender CPU-second (all rounds in the column beside it), and the ratios are between the medians.",
                o.seconds
            ),
            format!(
                "Two namespaces joined by one veth: the attacker (the LIVE_FRAMES XDP generator, `bpf/lab/syngen.bpf.c`, pinned to CPU {GEN_CPU}, IPv4 SYNs with {} options from random sources in {SPOOF_V4}/{SPOOF_LEN} to {HOST_V4}:{PORT}; the sink `bpf/lab/sink.bpf.c` counts the SYN+ACKs that come back, its veth's NAPI kthread on CPU {GEN_CPU}) and the host (a listener on port {PORT}). SYNs offered: what the generator sent; SYN+ACKs back: what the sink counted.",
                match options {
                    SynOptions::Linux => "Linux's (MSS, SACK-Permitted, Timestamps, WScale 7)",
                    SynOptions::Mss => "an MSS-only",
                }
            ),
            format!(
                "The defender's CPU: the host veth runs threaded NAPI, its kthread pinned to CPU {DEF_CPU} at SCHED_FIFO 50. Every defence does all its per-SYN work in that thread: synwall's XDP program (XDP_TX); for the baselines the trivial XDP_PASS program (attached only because a veth delivers its peer's XDP_TX frames only when it runs XDP; it costs next to nothing), then the kernel's receive path, TCP (or netfilter's SYNPROXY) and the SYN+ACK's transmit up to the attacker veth's ring. The defender's CPU time is that kthread's (/proc/PID/stat utime + stime) plus the softirq time of CPU {DEF_CPU} (/proc/stat; work raised there outside the thread, near zero here). `defender CPU busy (all)` is all non-idle time of CPU {DEF_CPU}: on a shared machine it includes other users' work, which is why it is not the measure."
            ),
            "synwall runs as `synwall single` (XDP edge + tc backend on the host veth) with the reflection budget off (`--budget off`): a real spoofed flood spreads over far more client prefixes than the lab's one /17, and the baselines have no such budget; with the default budget synwall would answer 1000/s per /24 and drop the rest (cheaper still). The kernel: the host's `tcp_syncookies = 2`. SYNPROXY: `iptables -j SYNPROXY` in the host's INPUT chain (raw-table NOTRACK for the SYNs, `nf_conntrack_tcp_loose = 0`), host `tcp_syncookies = 1`.".into(),
            format!(
                "Cores per 100 GbE of 64-byte SYNs, from the defender-only figure: {:.1} Mpps / {} SYN+ACKs per defender CPU-second = {:.0} cores for synwall ({:.0} for the kernel, {:.0} for SYNPROXY). A veth's receive path in a VM costs more per packet than a NIC driver's XDP, so this is an upper bound.",
                crate::LINE_RATE_100G_64B / 1e6,
                fmt_num(per(0)),
                crate::LINE_RATE_100G_64B / per(0).max(1.0),
                crate::LINE_RATE_100G_64B / per(1).max(1.0),
                crate::LINE_RATE_100G_64B / per(2).max(1.0),
            ),
            "When a defence cannot keep up, the host veth's ring fills and the rest is dropped before it (`dropped /s`): the answered share falls but the SYN+ACKs per CPU-second stay the defence's cost per answer.".into(),
        ],
        y_label: "SYN+ACKs per defender CPU-second".into(),
        machine: None,
        bars: rows
            .iter()
            .map(|r| (r.defense.label().to_string(), r.per_defender_cpu_second))
            .collect(),
    }
}

/// What the generator alone does: `seconds` at full speed from CPU [`GEN_CPU`] into a veth
/// whose far end counts and drops every frame (its NAPI on [`DEF_CPU`]).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GenMeasure {
    /// The run.
    pub run: livegen::GenStats,
    /// The generator's counters.
    pub counters: livegen::GenCounters,
    /// Frames the far end counted.
    pub received: u64,
}

/// Measure the generator alone (namespaces of its own, removed at the end), at most `rate` SYNs
/// per second when given.
pub fn gen_alone(seconds: f64, options: SynOptions, rate: Option<f64>) -> Result<GenMeasure> {
    let prefix = synwall_netns::unique_prefix();
    let att = Netns::create(&format!("{prefix}ga"))?;
    let far = Netns::create(&format!("{prefix}gh"))?;
    let (att_if, far_if) = (format!("{prefix}a"), format!("{prefix}h"));
    veth(&att, &att_if, &far, &far_if)?;
    let _sink = Sink::attach(&att, &att_if)?;
    let drop_all = Sink::attach_prog(&far, &far_if, livegen::SinkProg::DropAll)?;
    livegen::napi_pin(&far, &far_if, DEF_CPU)?;
    let t = Template {
        src_mac: topo::mac(&att, &att_if)?,
        dst_mac: topo::mac(&far, &far_if)?,
        prefix: SPOOF_V4.parse()?,
        prefix_len: SPOOF_LEN,
        dst: HOST_V4.parse::<IpAddr>()?,
        dport: PORT,
        options,
    };
    let gen = SynGen::load(&t, 0)?;
    let plan = Plan {
        rate,
        // A rate-capped run sends in bursts; smaller batches leave the far ring room.
        batch: if rate.is_some() { 32 } else { livegen::BATCH },
        ..Plan::full_speed(seconds, GEN_CPU)
    };
    let run = gen.run(&att, &att_if, plan)?;
    std::thread::sleep(Duration::from_millis(200));
    Ok(GenMeasure {
        run,
        counters: gen.counters()?,
        received: drop_all.counters()?.drop_all,
    })
}
