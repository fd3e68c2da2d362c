//! Two defender CPUs against one: the real edge program (`BPF_PROG_TEST_RUN`, as root) answering
//! Linux-default SYNs from one thread pinned to one CPU, then from one thread pinned to each of
//! two CPUs at once (the same program, the same maps), with auto mode on (in its answering state)
//! and off (always cookies: the control). Printed, 2 CPUs against 1:
//!
//! - the program's own time per SYN (the median run, as the kernel timed it): what a CPU
//!   answering SYNs in XDP spends on each, so 2 x ns(1 CPU) / ns(2 CPUs) is what two CPUs answer
//!   against one. This is where a cache line that both CPUs write shows;
//! - SYN+ACKs per second of the threads' CPU time (a test run also costs a system call that takes
//!   longer than the program, which dilutes the program's share; CPU time, not the wall clock,
//!   because other tenants of a shared machine take time slices);
//! - SYN+ACKs per second of wall-clock time.
//!
//! A test run of one SYN spends more time in the system call than in the program, so there each
//! CPU touches the shared state only every few microseconds. The second table runs the program
//! back to back in the kernel (`repeat`), as a CPU answering a flood does: that needs a frame the
//! program does not rewrite, so auto mode is on with cookies off (thresholds out of reach) and
//! every run is a SYN counted in the rate and passed; the control is the same SYN with a broken
//! checksum, dropped just before auto mode would count it.
//!
//! The reflection budget is off, and every CPU sends its own SYNs, from 256 client /24s (IPv6:
//! /48s) no other CPU uses: nothing but what every SYN touches whatever its source (the counters,
//! per CPU; the auto-mode state) is written by both CPUs.
//!
//! ```sh
//! cargo build --release -p synwall-bpf --example edge_cpus
//! target/release/examples/edge_cpus --seconds 1 --rounds 5
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
/// time (summed over the threads), and the program's ns per SYN (the median run).
fn measure(edge: &Edge, auto: bool, cpus: &[usize], v6: bool, secs: f64) -> [f64; 3] {
    if auto {
        // Cookies switch on at the first window the flood closes (>= 100 ms after the last).
        for _ in 0..20 {
            if edge.auto_state().expect("auto state").cookies_on {
                break;
            }
            flood(
                &|f| edge.run(f),
                &[cpus[0]],
                &[frames(cpus[0], v6)],
                0.15,
                1,
                false,
            );
        }
        assert!(edge.auto_state().expect("auto state").cookies_on);
    }
    let lists: Vec<_> = cpus.iter().map(|&c| frames(c, v6)).collect();
    let before = Prog::counters(edge);
    let f = flood(&|f| edge.run(f), cpus, &lists, secs, 1, false);
    let after = Prog::counters(edge);
    let answered = after.get(Counter::SynAnswered) - before.get(Counter::SynAnswered);
    // Every SYN answered: none passed because auto mode switched off, none refused.
    assert_eq!(answered, f.sent, "SYNs not answered: {after:?}");
    [
        answered as f64 / f.elapsed,
        f.per_cpu_second,
        f.prog_ns_median as f64,
    ]
}

/// A CPU's frames of a family (`frames`, `bad_checksum`).
type Frames = fn(usize, bool) -> Vec<Vec<u8>>;

/// Runs of the same frame in one test run, for the frames the program leaves as they are.
const REPEAT: u32 = 1000;

/// CPU `cpu`'s SYNs with their TCP checksum broken.
fn bad_checksum(cpu: usize, v6: bool) -> Vec<Vec<u8>> {
    let at = 14 + if v6 { 40 } else { 20 } + 16;
    let mut f = frames(cpu, v6);
    f.iter_mut().for_each(|f| f[at] ^= 0x5a);
    f
}

/// The program's ns per run (the median test run's mean of its REPEAT runs) of `lists` on `cpus`,
/// each run counted by `want`.
fn dense(edge: &Edge, cpus: &[usize], lists: &[Vec<Vec<u8>>], want: Counter, secs: f64) -> f64 {
    let before = Prog::counters(edge).get(want);
    let run = |f: &[u8]| edge.test_run_repeat(f, REPEAT).expect("test run");
    let f = flood(&run, cpus, lists, secs, REPEAT, true);
    assert_eq!(Prog::counters(edge).get(want) - before, f.sent, "{want:?}");
    f.prog_ns_median as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut secs, mut rounds) = (1.0f64, 5u32);
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
        "| SYN | auto mode | program ns/SYN: 1 CPU | 2 CPUs | **2 / 1: 2 x ns(1) / ns(2)** \
         (min-max) | SYN+ACKs per CPU-second: 1 CPU | 2 CPUs | 2 / 1 (min-max) | wall clock: \
         2 / 1 |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, &(v6, auto)) in cases.iter().enumerate() {
        let s = &samples[i];
        let col =
            |cpus: usize, k: usize| median(&mut s.iter().map(|r| r[cpus][k]).collect::<Vec<_>>());
        // The rounds' ratios: their median and range.
        let ratio = |f: &dyn Fn(&[[f64; 3]; 2]) -> f64| {
            let mut v: Vec<f64> = s.iter().map(f).collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            (median(&mut v), lo, hi)
        };
        let (p, plo, phi) = ratio(&|r| 2.0 * r[0][2] / r[1][2]);
        let (c, clo, chi) = ratio(&|r| r[1][1] / r[0][1]);
        let (w, _, _) = ratio(&|r| r[1][0] / r[0][0]);
        println!(
            "| {} | {} | {:.0} | {:.0} | **{p:.2}** ({plo:.2}-{phi:.2}) | {:.0} | {:.0} | {c:.2} \
             ({clo:.2}-{chi:.2}) | {w:.2} |",
            if v6 { "IPv6" } else { "IPv4" },
            if auto { "on (cookies on)" } else { "off" },
            col(0, 2),
            col(1, 2),
            col(0, 1),
            col(1, 1),
        );
    }
    println!(
        "\nmedians of {rounds} rounds of {secs} s per run (ns: of the median run's time); the \
         ratios are medians of the rounds' ratios"
    );

    // Auto mode's accounting at line rate: a test run of one SYN costs more in the system call
    // than in the program, so above each CPU writes the shared state only every few
    // microseconds. Here the kernel repeats a SYN back to back: auto mode on with cookies off
    // (thresholds out of reach) counts it and passes it unmodified, so every repetition is a
    // SYN counted. The control is the same SYN with a broken checksum, dropped just before auto
    // mode would count it.
    let mut passing_cfg = config(None);
    passing_cfg.auto = Some(AutoConfig {
        rate_on: u32::MAX,
        rate_off: u32::MAX - 1,
        hold_ms: 10_000,
    });
    let passing = Edge::load_with(&passing_cfg, &salts()).expect("load the edge");
    let kinds: [(&str, Counter, Frames); 2] = [
        (
            "counted by auto mode, passed (cookies off)",
            Counter::AutoSynPass,
            frames,
        ),
        (
            "bad checksum: dropped before auto mode counts it (control)",
            Counter::DropSynChecksum,
            bad_checksum,
        ),
    ];
    let mut dense_samples = vec![Vec::<[f64; 2]>::new(); 4];
    for round in 0..rounds {
        let one = round as usize % 2;
        for (i, (v6, k)) in [(false, 0), (false, 1), (true, 0), (true, 1)]
            .into_iter()
            .enumerate()
        {
            let (_, want, make) = kinds[k];
            let ns1 = dense(&passing, &[one], &[make(one, v6)], want, secs);
            let ns2 = dense(&passing, &[0, 1], &[make(0, v6), make(1, v6)], want, secs);
            eprintln!("dense round {round} {i}: {ns1} ns, {ns2} ns");
            dense_samples[i].push([ns1, ns2]);
        }
    }
    println!(
        "\n| SYN | each run (repeated {REPEAT} times in the kernel) | program ns/SYN: 1 CPU | \
         2 CPUs | **2 / 1: 2 x ns(1) / ns(2)** (min-max) |"
    );
    println!("|---|---|---:|---:|---:|");
    for (i, (v6, k)) in [(false, 0), (false, 1), (true, 0), (true, 1)]
        .into_iter()
        .enumerate()
    {
        let s = &dense_samples[i];
        let col = |c: usize| median(&mut s.iter().map(|r| r[c]).collect::<Vec<_>>());
        let mut v: Vec<f64> = s.iter().map(|r| 2.0 * r[0] / r[1]).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {} | {:.0} | {:.0} | **{:.2}** ({lo:.2}-{hi:.2}) |",
            if v6 { "IPv6" } else { "IPv4" },
            kinds[k].0,
            col(0),
            col(1),
            median(&mut v),
        );
    }
}
