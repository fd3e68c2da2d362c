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
    assert_eq!(st.window_syns, 2, "{st:?}");
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
    assert_eq!(edge.auto_state().unwrap().window_syns, 2);
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
