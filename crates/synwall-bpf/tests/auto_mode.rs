//! Auto mode in the real XDP program (BPF_PROG_TEST_RUN, where `bpf_ktime_get_ns` is the real
//! clock): below the threshold a valid SYN is passed to the kernel untouched (`auto_syn_pass`);
//! once a measured window reaches the threshold the SYN gets the cookie SYN+ACK the engine builds;
//! the shared state map (`Edge::auto_state`) shows the rate and the switch.
//!
//! Needs root and BPF (CI=true: fail, else skip with a message).

use std::net::IpAddr;
use std::time::Duration;
use synwall_bpf::{xdp_action, DataPath, Edge};
use synwall_engine::{synack::MAX_SYNACK_LEN, AutoConfig, Counter, Engine, EngineConfig, Verdict};
use synwall_testkit::prelude::*;

/// A valid SYN to a protected service, without timestamps (so its SYN+ACK does not depend on the
/// clock and the engine's bytes can be compared).
fn syn(sport: u16) -> Vec<u8> {
    let src: IpAddr = "192.0.2.33".parse().unwrap();
    let dst: IpAddr = "198.51.100.7".parse().unwrap();
    let mut s = Frame::new(src, dst, sport, 443, SYN);
    s.options = opts_bytes(&[opt_mss(1460), vec![1], opt_ws(7), opt_sack()]);
    s.build()
}

fn auto_cfg(rate_on: u32, rate_off: u32) -> EngineConfig {
    let mut cfg = config();
    cfg.auto = Some(AutoConfig {
        rate_on,
        rate_off,
        hold_ms: 1000,
    });
    cfg
}

fn load(what: &str, cfg: &EngineConfig) -> Option<Edge> {
    or_skip(what, Edge::load_with(cfg, &salts()))
}

#[test]
fn below_the_threshold_syns_pass_untouched() {
    let cfg = auto_cfg(u32::MAX, u32::MAX - 1);
    let Some(edge) = load("auto mode (high threshold)", &cfg) else {
        return;
    };
    assert_eq!(edge.auto_state().unwrap(), Default::default(), "fresh map");
    let mut before = edge.counters().unwrap();
    for i in 0..3u16 {
        let f = syn(40_000 + i);
        let run = edge.test_run(&f).unwrap();
        assert_eq!(run.retval, xdp_action::PASS, "SYN {i}");
        assert_eq!(run.data, f, "a passed SYN is not modified");
        let after = edge.counters().unwrap();
        assert_eq!(single_increment(&before, &after), Ok(Counter::AutoSynPass));
        before = after;
    }
    let st = edge.auto_state().unwrap();
    // The first SYN closed the window that opened at boot (start 0); the other two are counted
    // in the window it opened.
    assert!(st.window_start_ns > 0, "{st:?}");
    assert_eq!(st.window_syns(), 2, "{st:?}");
    assert!(!st.cookies_on && st.switches_on == 0, "{st:?}");
    // A SYN with a bad checksum is dropped before the rate sees it.
    let mut bad = syn(40_100);
    bad[14 + 20 + 16] ^= 0x5a; // the TCP checksum field
    assert_eq!(edge.test_run(&bad).unwrap().retval, xdp_action::DROP);
    let after = edge.counters().unwrap();
    assert_eq!(
        single_increment(&before, &after),
        Ok(Counter::DropSynChecksum)
    );
    assert_eq!(edge.auto_state().unwrap().window_syns(), 2);
    // The same SYN with auto mode off is answered.
    edge.set_config(&config()).unwrap();
    assert_eq!(edge.test_run(&syn(40_000)).unwrap().retval, xdp_action::TX);
}

#[test]
fn above_the_threshold_syns_get_cookies() {
    // rate_on 1: any window with a SYN in it, closed within a second, is "an attack".
    let cfg = auto_cfg(1, 0);
    let Some(edge) = load("auto mode (threshold 1/s)", &cfg) else {
        return;
    };
    // The first SYN closes the boot-time window: 1 SYN over the machine's uptime (> 1 s) is 0/s.
    let f = syn(41_000);
    let run = edge.test_run(&f).unwrap();
    assert_eq!(run.retval, xdp_action::PASS);
    let st0 = edge.auto_state().unwrap();
    assert_eq!((st0.rate, st0.cookies_on), (0, false), "{st0:?}");
    // 150 ms later the next SYN closes a window of 1 SYN over ~150 ms (~6/s): cookies on, and
    // this very SYN is answered, byte for byte as the engine answers it.
    std::thread::sleep(Duration::from_millis(150));
    let f = syn(41_001);
    let run = edge.test_run(&f).unwrap();
    assert_eq!(run.retval, xdp_action::TX);
    let st = edge.auto_state().unwrap();
    eprintln!("auto state after the second SYN: {st:?}");
    assert!(
        st.cookies_on && st.switches_on == 1 && st.switches_off == 0,
        "{st:?}"
    );
    // Elapsed >= 100 ms: at most 10/s; and it did not take a second: at least 1/s.
    assert!((1..=10).contains(&st.rate), "{st:?}");
    assert!(
        st.window_start_ns - st0.window_start_ns >= 100_000_000,
        "{st:?}"
    );
    assert_eq!(st.last_high_ns, st.window_start_ns);
    let mut engine = Engine::new(config(), salts());
    let mut buf = f.clone();
    buf.resize(f.len() + MAX_SYNACK_LEN, 0);
    let Verdict::Tx { len } = engine.xdp(&mut buf, f.len(), engine_ms(None)).verdict else {
        panic!("the engine does not answer the SYN")
    };
    assert_eq!(hex(&run.data), hex(&buf[..len]));
    // Further SYNs within the window are answered too (the state is shared, not per run).
    assert_eq!(edge.test_run(&syn(41_002)).unwrap().retval, xdp_action::TX);
    let c = edge.counters().unwrap();
    assert_eq!(c.get(Counter::AutoSynPass), 1);
    assert_eq!(c.get(Counter::SynAnswered), 2);
}

/// Run the calling thread on `cpu` only.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "cannot pin to CPU {cpu}"
        );
    }
}

#[test]
fn the_rate_counts_the_syns_of_every_cpu() {
    // Each CPU counts in its own slot: the CPU that closes a window must sum them all.
    let cfg = auto_cfg(u32::MAX, u32::MAX - 1);
    let Some(edge) = load("auto mode (SYNs from two CPUs)", &cfg) else {
        return;
    };
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        assert!(!in_ci(), "the test needs two CPUs");
        eprintln!("skipped: one CPU");
        return;
    }
    const N: u64 = 100;
    let run_on = |cpu: usize, n: u64, sport: u16| {
        std::thread::scope(|s| {
            s.spawn(|| {
                pin_to(cpu);
                for i in 0..n {
                    let run = edge.test_run(&syn(sport + i as u16)).unwrap();
                    assert_eq!(run.retval, xdp_action::PASS);
                }
            });
        })
    };
    // One SYN on CPU 0 opens a window (closing the boot-time one); N on CPU 1 land in it, unless
    // this machine took 100 ms for them (then again).
    let before = (0..5)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(150));
            run_on(0, 1, 42_000);
            let opened = edge.auto_state().unwrap();
            run_on(1, N, 42_100);
            let st = edge.auto_state().unwrap();
            (st.window_start_ns == opened.window_start_ns).then_some(st)
        })
        .expect("100 test runs took 100 ms five times");
    assert_eq!(before.window_syns(), N, "{before:?}");
    // 150 ms later a SYN on CPU 0 closes the window: its N + 1 SYNs (N of them counted on the
    // other CPU) over the time since it opened.
    std::thread::sleep(Duration::from_millis(150));
    run_on(0, 1, 42_300);
    let after = edge.auto_state().unwrap();
    let elapsed = after.window_start_ns - before.window_start_ns;
    assert!(elapsed >= 150_000_000, "{before:?} {after:?}");
    assert_eq!(after.rate, (N + 1) * 1_000_000_000 / elapsed, "{after:?}");
    assert_eq!((after.window_syns(), after.syns), (0, after.window_base));
}
