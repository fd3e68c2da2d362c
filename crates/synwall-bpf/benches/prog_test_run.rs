//! ns/packet of the BPF programs, as the kernel measures them in BPF_PROG_TEST_RUN (JIT on).
//!
//! `cargo bench -p synwall-bpf --bench prog_test_run` (as root). Paths that leave the frame
//! unchanged run with `repeat` (the kernel's per-run mean); the SYN path rewrites its frame into
//! the SYN+ACK, so it is run once per call and the kernel-measured single-run times are averaged
//! (that figure includes the timer reads around one run: the "baseline" line shows their cost on
//! a frame the program passes at once).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use synwall_bpf::{Backend, DataPath, Edge, TestRun};
use synwall_testkit::prelude::*;

const REPEAT: u32 = 2_000_000;
const SINGLE_RUNS: u32 = 200_000;

fn syn_seg(src: SocketAddr, dst: SocketAddr) -> Frame {
    let mut s = Frame::new(src.ip(), dst.ip(), src.port(), dst.port(), SYN);
    s.seq = 0x0102_0304;
    s.options = linux_syn_options_ts(0x1111_2222);
    s
}

fn report(name: &str, ns: f64, check: &str) {
    println!("{name:<58} {ns:>8.1} ns/packet   ({check})");
}

/// Mean of kernel-measured single runs (for paths that rewrite the frame).
fn single_runs(run: impl Fn() -> TestRun) -> (f64, TestRun) {
    let mut total = Duration::ZERO;
    let mut last = run();
    for _ in 0..SINGLE_RUNS {
        last = run();
        total += last.duration;
    }
    (total.as_nanos() as f64 / SINGLE_RUNS as f64, last)
}

fn repeated(run: impl Fn(u32) -> TestRun) -> (f64, TestRun) {
    let _warm = run(10_000);
    let r = run(REPEAT);
    (r.duration.as_nanos() as f64, r)
}

fn counter_moved(before: &synwall_engine::Counters, after: &synwall_engine::Counters) -> String {
    after
        .iter()
        .filter(|(c, v)| *v != before.get(*c))
        .map(|(c, _)| c.name())
        .collect::<Vec<_>>()
        .join(",")
}

fn main() {
    // SAFETY: unshare affects this (main) thread only; the backend's socket lookups then see only
    // the sockets made here.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        println!("SKIPPED: cannot unshare the network namespace (run as root)");
        return;
    }
    let _ = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    let cfg = config();
    let edge = match Edge::load_with(&cfg, &salts()) {
        Ok(e) => e,
        Err(e) => {
            println!("SKIPPED: cannot load BPF: {e}");
            return;
        }
    };
    println!(
        "BPF_PROG_TEST_RUN, {} CPUs",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let v4_syn = syn_seg(
        "192.0.2.10:40000".parse().unwrap(),
        "198.51.100.7:443".parse().unwrap(),
    )
    .build();
    let v6_syn = syn_seg(
        "[2001:db8:ffff::10]:40000".parse().unwrap(),
        "[2001:db8:1::80]:443".parse().unwrap(),
    )
    .build();
    let mut arp = v4_syn.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);

    let c0 = edge.counters().unwrap();
    let (ns, _) = single_runs(|| edge.test_run(&arp).unwrap());
    report(
        "edge baseline: one run of a non-IP frame (timer overhead)",
        ns,
        "pass_not_ip",
    );
    let (ns, r) = single_runs(|| edge.test_run(&v4_syn).unwrap());
    assert_eq!(r.retval, synwall_bpf::xdp_action::TX);
    report(
        "edge SYN IPv4 -> SYN+ACK (one run per call)",
        ns,
        "syn_answered",
    );
    let (ns, r) = single_runs(|| edge.test_run(&v6_syn).unwrap());
    assert_eq!(r.retval, synwall_bpf::xdp_action::TX);
    report(
        "edge SYN IPv6 -> SYN+ACK (one run per call)",
        ns,
        "syn_answered",
    );
    let c1 = edge.counters().unwrap();
    assert_eq!(counter_moved(&c0, &c1), "pass_not_ip,syn_answered");
    // Everything before the MAC, repeatable: a SYN whose checksum fails is dropped unchanged.
    let mut bad = v4_syn.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let before = edge.counters().unwrap();
    let (ns, _) = repeated(|n| edge.test_run_repeat(&bad, n).unwrap());
    report(
        "edge SYN IPv4, bad checksum (parse, options, checksums)",
        ns,
        &counter_moved(&before, &edge.counters().unwrap()),
    );

    // Established traffic, default mode: no MAC.
    let mut data = syn_seg(
        "192.0.2.10:40000".parse().unwrap(),
        "198.51.100.7:443".parse().unwrap(),
    );
    data.flags = ACK | PSH;
    data.options = opts_bytes(&[vec![1, 1], opt_ts(1, 2)]);
    data.payload = vec![0x55; 1000];
    let data_frame = data.build();
    let before = edge.counters().unwrap();
    let (ns, _) = repeated(|n| edge.test_run_repeat(&data_frame, n).unwrap());
    report(
        "edge established IPv4, 1000-byte payload (default mode)",
        ns,
        &counter_moved(&before, &edge.counters().unwrap()),
    );

    // Strict mode: a cached flow, and an ACK that fails validation (two MACs).
    let mut strict = cfg.clone();
    strict.strict = true;
    edge.set_config(&strict).unwrap();
    let syn = syn_seg(
        "192.0.2.11:40001".parse().unwrap(),
        "198.51.100.7:443".parse().unwrap(),
    );
    let ack = handshake_ack(&cfg.cookie, &keys().current, &syn, LINUX_SYN, 0x1234_0000);
    edge.test_run(&ack.build()).unwrap();
    let mut cached = ack.clone();
    cached.flags = ACK | PSH;
    cached.payload = vec![0x55; 1000];
    let cached_frame = cached.build();
    let before = edge.counters().unwrap();
    let (ns, _) = repeated(|n| edge.test_run_repeat(&cached_frame, n).unwrap());
    report(
        "edge strict, segment of a cached flow",
        ns,
        &counter_moved(&before, &edge.counters().unwrap()),
    );
    let mut forged = ack.clone();
    forged.sport = 40002;
    forged.ack ^= 1;
    let forged_frame = forged.build();
    let before = edge.counters().unwrap();
    let (ns, _) = repeated(|n| edge.test_run_repeat(&forged_frame, n).unwrap());
    report(
        "edge strict, ACK of an unknown flow (2 MACs, dropped)",
        ns,
        &counter_moved(&before, &edge.counters().unwrap()),
    );
    edge.set_config(&cfg).unwrap();

    // Backend: a valid cookie ACK to a listener (lookup, MAC, kfunc), and an established flow.
    let backend = Backend::load_with(&cfg, &salts()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let syn = syn_seg("127.0.0.2:40000".parse().unwrap(), server);
    let ack = handshake_ack(&cfg.cookie, &keys().current, &syn, LINUX_SYN, 0x1234_0000).build();
    let before = backend.counters().unwrap();
    let (ns, _) = repeated(|n| backend.test_run_repeat(&ack, n).unwrap());
    report(
        "backend handshake ACK IPv4: lookup + MAC + kfunc",
        ns,
        &format!(
            "{} (a test run is not at tc ingress)",
            counter_moved(&before, &backend.counters().unwrap())
        ),
    );
    let stream = TcpStream::connect(server).unwrap();
    let _accepted = listener.accept().unwrap();
    let local = stream.local_addr().unwrap();
    let mut est = Frame::new(
        local.ip(),
        server.ip(),
        local.port(),
        server.port(),
        ACK | PSH,
    );
    est.payload = vec![0x55; 1000];
    let est_frame = est.build();
    let before = backend.counters().unwrap();
    let (ns, _) = repeated(|n| backend.test_run_repeat(&est_frame, n).unwrap());
    report(
        "backend established IPv4 (socket lookup)",
        ns,
        &counter_moved(&before, &backend.counters().unwrap()),
    );
}
