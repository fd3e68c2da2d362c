//! Two defender CPUs against one: the real edge program (`BPF_PROG_TEST_RUN`, as root) answering
//! Linux-default SYNs from one thread pinned to one CPU, then from one thread pinned to each of
//! two CPUs at once (the same program, the same maps), with auto mode on (in its answering state)
//! and off (always cookies: the control). Each prints SYN+ACKs per second, all threads, and the
//! ratio of two CPUs to one; and the program's own time per SYN as the kernel measured it.
//!
//! The reflection budget is off, and every CPU sends its own SYNs, from 256 client /24s (IPv6:
//! /48s) no other CPU uses: nothing but what every SYN touches whatever its source (the counters,
//! per CPU; the auto-mode window) is written by both CPUs.
//!
//! ```sh
//! cargo build --release -p synwall-bpf --example edge_cpus
//! target/release/examples/edge_cpus --seconds 2 --rounds 7
//! ```

mod cpus;

use cpus::{config, flood, median, salts, Prog};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use synwall_bpf::{xdp_action, DataPath, Edge};
use synwall_engine::{AutoConfig, Counter, EngineConfig};

/// Client prefixes (and SYNs) per CPU.
const SOURCES: u16 = 256;

/// CPU `cpu`'s SYNs: one from each of its own /24s (IPv6 /48s).
fn frames(cpu: usize, v6: bool) -> Vec<Vec<u8>> {
    (0..SOURCES)
        .map(|i| {
            let src: IpAddr = if v6 {
                Ipv6Addr::new(0x2001, 0xdb8, 0x8000 | (cpu as u16) << 8 | i, 0, 0, 0, 0, 7).into()
            } else {
                Ipv4Addr::new(10, cpu as u8, i as u8, 7).into()
            };
            cpus::syn(src, 1024 + i)
        })
        .collect()
}

/// The shipped auto-mode thresholds (synwall-config's defaults): a flood of test runs is far
/// above `rate_on`, so cookies stay on.
fn auto_config() -> EngineConfig {
    let mut cfg = config(None);
    cfg.auto = Some(AutoConfig {
        rate_on: 20_000,
        rate_off: 5_000,
        hold_ms: 10_000,
    });
    cfg
}

/// One measurement: SYN+ACKs per second of wall-clock time, per second of the threads' CPU
/// time (summed over the threads), and the program's ns per SYN.
fn measure(edge: &Edge, auto: bool, cpus: &[usize], v6: bool, secs: f64) -> [f64; 3] {
    if auto {
        // Cookies switch on at the first window the flood closes (>= 100 ms after the last).
        for _ in 0..20 {
            if edge.auto_state().expect("auto state").cookies_on {
                break;
            }
            flood(edge, &[cpus[0]], &[frames(cpus[0], v6)], 0.15);
        }
        assert!(edge.auto_state().expect("auto state").cookies_on);
    }
    let lists: Vec<_> = cpus.iter().map(|&c| frames(c, v6)).collect();
    let before = Prog::counters(edge);
    let f = flood(edge, cpus, &lists, secs);
    let after = Prog::counters(edge);
    let answered = after.get(Counter::SynAnswered) - before.get(Counter::SynAnswered);
    // Every SYN answered: none passed because auto mode switched off, none refused.
    assert_eq!(answered, f.sent, "SYNs not answered: {after:?}");
    [
        answered as f64 / f.elapsed,
        f.per_cpu_second,
        f.prog_ns as f64 / f.sent as f64,
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut secs, mut rounds) = (2.0f64, 7u32);
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--seconds" => secs = val().parse().expect("seconds"),
            "--rounds" => rounds = val().parse().expect("rounds"),
            other => panic!("unknown argument {other} (--seconds S --rounds R)"),
        }
    }
    let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(ncpus >= 2, "needs two CPUs");
    let off = Edge::load_with(&config(None), &salts()).expect("load the edge");
    let on = Edge::load_with(&auto_config(), &salts()).expect("load the edge");
    for (edge, want) in [(&off, xdp_action::TX), (&on, xdp_action::PASS)] {
        // Auto mode's first SYN closes the window opened at boot (a rate of ~0): passed.
        assert_eq!(edge.run(&frames(0, false)[0]).retval, want);
    }

    // (family, auto) -> per round: [1 CPU, 2 CPUs] x [wall rate, CPU-time rate, ns per SYN].
    let cases = [(false, false), (false, true), (true, false), (true, true)];
    let mut samples = vec![Vec::<[[f64; 3]; 2]>::new(); cases.len()];
    for round in 0..rounds {
        // The lone CPU alternates, so neither CPU's other load favours one side.
        let one = [round as usize % 2];
        for (i, &(v6, auto)) in cases.iter().enumerate() {
            let edge = if auto { &on } else { &off };
            let m1 = measure(edge, auto, &one, v6, secs);
            let m2 = measure(edge, auto, &[0, 1], v6, secs);
            eprintln!(
                "round {round} {} auto {}: 1 CPU {:.0}/s {:.0}/CPU-s {:.1} ns, 2 CPUs {:.0}/s \
                 {:.0}/CPU-s {:.1} ns: x{:.2} (CPU time x{:.2})",
                if v6 { "IPv6" } else { "IPv4" },
                if auto { "on" } else { "off" },
                m1[0],
                m1[1],
                m1[2],
                m2[0],
                m2[1],
                m2[2],
                m2[0] / m1[0],
                m2[1] / m1[1],
            );
            samples[i].push([m1, m2]);
        }
    }

    println!(
        "| SYN | auto mode | per CPU-second: 1 CPU | 2 CPUs | **2 / 1** (min-max) | wall clock: \
         1 CPU | 2 CPUs | 2 / 1 | program ns/SYN: 1 CPU | 2 CPUs |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, &(v6, auto)) in cases.iter().enumerate() {
        let s = &samples[i];
        let col =
            |cpus: usize, k: usize| median(&mut s.iter().map(|r| r[cpus][k]).collect::<Vec<_>>());
        let ratio = |k: usize| {
            let mut v: Vec<f64> = s.iter().map(|r| r[1][k] / r[0][k]).collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            (median(&mut v), lo, hi)
        };
        let (c, clo, chi) = ratio(1);
        let (w, _, _) = ratio(0);
        println!(
            "| {} | {} | {:.0} | {:.0} | **{c:.2}** ({clo:.2}-{chi:.2}) | {:.0} | {:.0} | {w:.2} \
             | {:.1} | {:.1} |",
            if v6 { "IPv6" } else { "IPv4" },
            if auto { "on (cookies on)" } else { "off" },
            col(0, 1),
            col(1, 1),
            col(0, 0),
            col(1, 0),
            col(0, 2),
            col(1, 2),
        );
    }
    println!(
        "\nSYN+ACKs per second; medians of {rounds} rounds of {secs} s per run; the ratios are \
         medians of the rounds' ratios"
    );
}
