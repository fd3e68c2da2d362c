//! The reflection budget: buckets shared by all CPUs (compare-and-swap, what `bpf/edge.bpf.c`
//! builds) against per-CPU buckets (`EdgePercpuBudget`, `-DSW_BUDGET_PERCPU`), on the real
//! programs with `BPF_PROG_TEST_RUN` (as root):
//!
//! - **accuracy**: threads pinned to CPUs send SYNs of one client /24 through the program as fast
//!   as they can for `--seconds`; the SYN+ACKs it answered are compared with what the budget
//!   allows in that time (`burst + rate * seconds`). Per-CPU buckets get the budget split between
//!   the CPUs ("split"), or all of it on every CPU ("whole");
//! - **cost**: the kernel-measured time of one test run of a Linux-default SYN that is answered,
//!   budget off, shared, per-CPU (interleaved in chunks, median over rounds), and of one refused.
//!
//! ```sh
//! cargo build --release -p synwall-bpf --example budget_cpus
//! target/release/examples/budget_cpus --seconds 3 --runs 200000 --rounds 5
//! ```

mod cpus;

use cpus::{config, median, pin_to, salts, Prog};
use std::net::Ipv4Addr;
use synwall_bpf::{xdp_action, DataPath, Edge, EdgePercpuBudget, LoadOptions};
use synwall_engine::Budget;

/// The budget of the accuracy runs (per client /24).
const RATE: u32 = 20_000;
const BURST: u32 = 2_000;

/// A Linux-default SYN from `src` to the protected service.
fn syn(src: Ipv4Addr, sport: u16) -> Vec<u8> {
    cpus::syn(src.into(), sport)
}

/// SYNs of one /24 from threads on `cpus` for `secs`: (sent, answered, allowed by the budget).
fn flood(p: &dyn Prog, cpus: &[usize], secs: f64) -> (u64, u64, f64) {
    let frames: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            syn(
                Ipv4Addr::new(203, 0, 113, (i % 254 + 1) as u8),
                1024 + i as u16,
            )
        })
        .collect();
    let before = p.answered();
    let f = cpus::flood(
        &|f| p.run(f),
        cpus,
        &vec![frames; cpus.len()],
        secs,
        1,
        false,
    );
    let answered = p.answered() - before;
    (
        f.sent,
        answered,
        f64::from(BURST) + f64::from(RATE) * f.elapsed,
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut secs, mut runs, mut rounds) = (3.0f64, 200_000u32, 5u32);
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--seconds" => secs = val().parse().expect("seconds"),
            "--runs" => runs = val().parse().expect("runs"),
            "--rounds" => rounds = val().parse().expect("rounds"),
            other => panic!("unknown argument {other} (--seconds S --runs N --rounds R)"),
        }
    }
    let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(ncpus >= 2, "the accuracy runs need two CPUs");
    let budget = Budget {
        rate: RATE,
        burst: BURST,
    };
    let split = Budget {
        rate: RATE / ncpus as u32,
        burst: BURST / ncpus as u32,
    };
    let shared = Edge::load_with(&config(Some(budget)), &salts()).expect("load the edge");
    let percpu = EdgePercpuBudget::load(&LoadOptions::default()).expect("load the per-CPU build");
    percpu.set_salts(&salts()).expect("salts");

    println!(
        "## accuracy: SYNs of one client /24 through the program, budget {RATE}/s burst {BURST}, \
         {secs} s per run, {ncpus} CPUs\n"
    );
    println!("| buckets | CPUs sending | SYNs sent | SYN+ACKs | allowed | answered / allowed |");
    println!("|---|---|---:|---:|---:|---:|");
    let both: Vec<usize> = (0..2).collect();
    for (name, cpus) in [("2 CPUs", &both[..]), ("1 CPU", &both[..1])] {
        shared.clear_budgets().expect("clear");
        let (sent, ans, allowed) = flood(&shared, cpus, secs);
        println!(
            "| shared (compare-and-swap) | {name} | {sent} | {ans} | {allowed:.0} | {:.2} |",
            ans as f64 / allowed
        );
        for (label, b) in [
            ("split between the CPUs", split),
            ("whole on every CPU", budget),
        ] {
            percpu.configure(&config(Some(b))).expect("config");
            percpu.clear_budgets();
            let (sent, ans, allowed) = flood(&percpu, cpus, secs);
            println!(
                "| per-CPU, {label} | {name} | {sent} | {ans} | {allowed:.0} | {:.2} |",
                ans as f64 / allowed
            );
        }
    }

    // Cost: an answered SYN, the budget never reached (the largest rate and burst).
    let never = Budget {
        rate: synwall_engine::abuse::MAX_RATE,
        burst: synwall_engine::abuse::MAX_BURST,
    };
    let off = Edge::load_with(&config(None), &salts()).expect("load");
    shared.set_config(&config(Some(never))).expect("config");
    percpu.configure(&config(Some(never))).expect("config");
    let refusing =
        Edge::load_with(&config(Some(Budget { rate: 1, burst: 1 })), &salts()).expect("load");
    let frame = syn(Ipv4Addr::new(192, 0, 2, 10), 40000);
    refusing
        .test_run(&frame)
        .expect("the one SYN the budget allows");
    let progs: [(&str, &dyn Prog, u32); 4] = [
        ("budget off", &off, xdp_action::TX),
        ("shared buckets (compare-and-swap)", &shared, xdp_action::TX),
        ("per-CPU buckets", &percpu, xdp_action::TX),
        ("shared, over budget (refused)", &refusing, xdp_action::DROP),
    ];
    for (name, p, want) in &progs {
        let r = p.run(&frame);
        assert_eq!(r.retval, *want, "{name}");
    }
    pin_to(1);
    let mut samples = vec![Vec::new(); progs.len()];
    const CHUNK: u32 = 2000;
    for _ in 0..rounds {
        let mut total = vec![0u128; progs.len()];
        let mut done = 0;
        while done < runs {
            let n = CHUNK.min(runs - done);
            for (i, (_, p, _)) in progs.iter().enumerate() {
                for _ in 0..n {
                    total[i] += p.run(&frame).duration.as_nanos();
                }
            }
            done += n;
        }
        for (i, t) in total.iter().enumerate() {
            samples[i].push(*t as f64 / f64::from(runs));
        }
    }
    println!(
        "\n## cost: one test run of a Linux-default IPv4 SYN, ns (median of {rounds} rounds of \
         {runs} interleaved runs, pinned to CPU 1)\n"
    );
    println!("| edge | ns per SYN | min | max | x budget off |");
    println!("|---|---:|---:|---:|---:|");
    let base = median(&mut samples[0].clone());
    for (i, (name, _, _)) in progs.iter().enumerate() {
        let v = &mut samples[i];
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        let m = median(v);
        println!(
            "| {name} | {m:.1} | {min:.1} | {max:.1} | {:.3} |",
            m / base
        );
    }
}
