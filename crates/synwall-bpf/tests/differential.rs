//! Differential tests: the real BPF programs (through BPF_PROG_TEST_RUN) against the reference
//! engine, frame by frame: same verdict, same counter (the one per-CPU counter that moved), and
//! for XDP_TX the same bytes. The engine's clock for TSval is taken from the TSval the program
//! wrote (its top 24 bits), so the SYN+ACK must match exactly, checksums included.
//!
//! Needs root and BPF: in CI (CI=true) a failure to load fails the test; elsewhere it is skipped
//! with a message.

use rand::Rng;
use std::time::Instant;
use synwall_bpf::{
    tc_action, xdp_action, Backend, DataPath, Edge, LoadOptions, TEST_RUN_MAX_LINEAR,
};
use synwall_cookie::synwall_v1::EpochKeys;
use synwall_cookie::MssTable;
use synwall_engine::{
    synack::MAX_SYNACK_LEN, BackendVerdict, Counters, Engine, EngineConfig, ServerParams,
    SocketState, Verdict,
};
use synwall_testkit::prelude::*;

fn xdp_code(v: Verdict) -> u32 {
    match v {
        Verdict::Tx { .. } => xdp_action::TX,
        Verdict::Pass => xdp_action::PASS,
        Verdict::Drop => xdp_action::DROP,
    }
}

/// A phase: one configuration and salt set, `n` frames.
struct Phase {
    name: &'static str,
    cfg: EngineConfig,
    keys: EpochKeys,
    n: usize,
}

fn phases(strict: bool, n: usize) -> Vec<Phase> {
    let mut base = config();
    base.strict = strict;
    let mut no_sack_ts = base.clone();
    no_sack_ts.cookie.sack = false;
    no_sack_ts.cookie.timestamps = false;
    let mut custom = base.clone();
    custom.cookie.wscale = false;
    custom.cookie.ecn = false;
    custom.cookie.mss_v4 = MssTable::new([256, 512, 1000, 1380, 1400, 1440, 1460, 9000]).unwrap();
    custom.cookie.mss_v6 = MssTable::new([1280, 1300, 1400, 1420, 1440, 1500, 4000, 9000]).unwrap();
    custom.server = ServerParams {
        mss_v4: 1400,
        mss_v6: 1380,
        wscale: 14,
        window: 1000,
        ttl: 255,
    };
    let mut no_ecn = base.clone();
    no_ecn.cookie.ecn = false;
    no_ecn.cookie.wscale = true;
    // Auto mode with a threshold no rate reaches: every valid SYN passes, the rest is unchanged
    // (the clock does not matter, so the engine's fake clock mirrors the kernel's).
    let mut auto_low = base.clone();
    auto_low.auto = Some(synwall_engine::AutoConfig {
        rate_on: u32::MAX,
        rate_off: u32::MAX - 1,
        hold_ms: 1000,
    });
    vec![
        Phase {
            name: "defaults",
            cfg: base.clone(),
            keys: keys(),
            n: n / 2 - n / 6,
        },
        Phase {
            name: "auto mode below its threshold",
            cfg: auto_low,
            keys: keys(),
            n: n / 6,
        },
        Phase {
            name: "no SACK, no timestamps",
            cfg: no_sack_ts,
            keys: keys(),
            n: n / 6,
        },
        Phase {
            name: "custom tables and server parameters",
            cfg: custom,
            keys: keys(),
            n: n / 6,
        },
        Phase {
            name: "rotated salts, no ECN",
            cfg: no_ecn,
            keys: keys_at(EPOCH + 1),
            n: n - n / 2 - 2 * (n / 6),
        },
    ]
}

fn run_edge(strict: bool, total: usize, seed: u64) {
    let Some(edge) = or_skip("edge differential", Edge::load(&LoadOptions::default())) else {
        return;
    };
    let start = Instant::now();
    let mut gen = Gen::new(seed);
    let mut before = edge.counters().unwrap();
    let mut seen = Counters::default();
    let mut tx = 0usize;
    let mut frames = 0usize;
    let mut multibuf = 0usize;
    for phase in phases(strict, total) {
        edge.configure(&phase.cfg).unwrap();
        edge.set_keys(&phase.keys).unwrap();
        edge.clear_flow_cache().unwrap();
        let mut engine = Engine::new(phase.cfg.clone(), phase.keys);
        // Every SYN size from 54 to 120 bytes, with and without tags, in every phase.
        let sweep = syn_sizes(&mut gen.rng);
        let sweep_len = sweep.len();
        let mut sweep = sweep.into_iter();
        for i in 0..phase.n {
            let (frame, label) = match sweep.next() {
                Some((f, l)) => (f, l),
                None => {
                    let (f, l) = gen.frame(&phase.cfg.cookie, &phase.keys);
                    (f, l.to_string())
                }
            };
            // Some frames as multi-buffer frames whose first buffer ends anywhere (a driver
            // splitting headers from data); frames longer than a page are split anyway.
            let first = if i >= sweep_len && frame.len() > 14 && gen.rng.gen_bool(0.1) {
                gen.rng.gen_range(14..=frame.len().min(TEST_RUN_MAX_LINEAR))
            } else {
                frame.len().min(TEST_RUN_MAX_LINEAR)
            };
            let run = if first < frame.len().min(TEST_RUN_MAX_LINEAR) {
                multibuf += 1;
                edge.test_run_frags(&frame, first).unwrap()
            } else {
                if frame.len() > TEST_RUN_MAX_LINEAR {
                    multibuf += 1;
                }
                edge.test_run(&frame).unwrap()
            };
            let after = edge.counters().unwrap();
            let counter = single_increment(&before, &after)
                .unwrap_or_else(|e| panic!("[{}] {label} frame {}: {e}", phase.name, hex(&frame)));
            before = after;
            let clock = if run.retval == xdp_action::TX {
                tsval_of(&run.data).map_or(0, |t| t & 0xffff_ff00)
            } else {
                0
            };
            let mut buf = frame.clone();
            buf.resize(frame.len() + MAX_SYNACK_LEN, 0);
            let d = engine.xdp_frags(&mut buf, frame.len(), first, clock as u64);
            let ctx = || {
                format!(
                    "[{}] {label} frame ({} bytes, first buffer {first}) {}\n engine {d:?}\n \
                     bpf retval {} counter {counter:?}\n bpf out {}",
                    phase.name,
                    frame.len(),
                    hex(&frame),
                    run.retval,
                    hex(&run.data)
                )
            };
            assert_eq!(run.retval, xdp_code(d.verdict), "verdict: {}", ctx());
            assert_eq!(counter, d.counter, "counter: {}", ctx());
            if let Verdict::Tx { len } = d.verdict {
                assert_eq!(hex(&run.data), hex(&buf[..len]), "SYN+ACK bytes: {}", ctx());
                tx += 1;
            }
            seen.inc(counter);
            frames += 1;
        }
    }
    eprintln!(
        "edge differential (strict={strict}): {frames} frames ({multibuf} multi-buffer), {tx} \
         SYN+ACKs compared byte for byte, {:.1?}",
        start.elapsed()
    );
    for (c, v) in seen.iter().filter(|(_, v)| *v > 0) {
        eprintln!("  {:>28} {v}", c.name());
    }
    assert_eq!(frames, total);
    assert!(multibuf > total / 50, "only {multibuf} multi-buffer frames");
    // The generator must reach the interesting outcomes, or the comparison proves little.
    use synwall_engine::Counter as C;
    let must: &[C] = if strict {
        &[
            C::SynAnswered,
            C::AutoSynPass,
            C::StrictAckValid,
            C::StrictFwdCached,
            C::StrictDrop,
            C::DropSynFragment,
            C::PassFragmentNonfirst,
            C::DropSourceRoute,
        ]
    } else {
        &[
            C::SynAnswered,
            C::AutoSynPass,
            C::FwdNonSyn,
            C::PassUnprotected,
            C::PassNotTcp,
            C::PassNotIp,
            C::DropVlanDepth,
            C::DropTruncated,
            C::DropIpMalformed,
            C::DropFragment,
            C::DropIpv6ExtDepth,
            C::DropTcpMalformed,
            C::DropSynFlags,
            C::DropSynOptions,
            C::DropSynChecksum,
            C::DropSynFragment,
            C::PassFragmentNonfirst,
            C::DropSourceRoute,
            C::DropSynMultibuf,
        ]
    };
    for c in must {
        assert!(seen.get(*c) > 0, "no frame reached {}", c.name());
    }
}

#[test]
fn edge_matches_engine_default_mode() {
    run_edge(false, 100_000, 0x5eed_0001);
}

#[test]
fn edge_matches_engine_strict_mode() {
    run_edge(true, 40_000, 0x5eed_0002);
}

/// The backend on the same kinds of frames, in a fresh network namespace where no socket
/// exists: every ACK that reaches the lookup finds nothing (SocketState::None).
#[test]
fn backend_matches_engine_without_sockets() {
    if or_skip(
        "backend differential (network namespace)",
        enter_new_netns(),
    )
    .is_none()
    {
        return;
    }
    let Some(backend) = or_skip(
        "backend differential",
        Backend::load(&LoadOptions::default()),
    ) else {
        return;
    };
    let start = Instant::now();
    let cfg = config();
    let keys = keys();
    backend.configure(&cfg).unwrap();
    backend.set_keys(&keys).unwrap();
    let mut engine = Engine::new(cfg.clone(), keys);
    let mut gen = Gen::new(0x5eed_0003);
    let mut before = backend.counters().unwrap();
    let mut seen = Counters::default();
    let n = 30_000;
    let mut refused = 0;
    for _ in 0..n {
        let (frame, label) = gen.frame(&cfg.cookie, &keys);
        let run = match backend.test_run(&frame) {
            Ok(r) => r,
            // skb test runs refuse IP frames shorter than Ethernet + the fixed IP header, and
            // frames longer than a page minus head- and tailroom.
            Err(_) if too_short_for_skb_test_run(&frame) || frame.len() > TEST_RUN_MAX_LINEAR => {
                refused += 1;
                continue;
            }
            Err(e) => panic!("{label} frame {}: {e}", hex(&frame)),
        };
        let after = backend.counters().unwrap();
        let counter = single_increment(&before, &after)
            .unwrap_or_else(|e| panic!("{label} frame {}: {e}", hex(&frame)));
        before = after;
        let d = engine.tc(&frame, |_| SocketState::None, |_| 0);
        let want = match d.verdict {
            BackendVerdict::Pass => tc_action::OK,
            BackendVerdict::Drop => tc_action::SHOT,
            BackendVerdict::AssignReqsk(_) => unreachable!("no listener in this namespace"),
        };
        let ctx = || format!("{label} frame {}\n engine {d:?}", hex(&frame));
        assert_eq!(run.retval, want, "verdict: {}", ctx());
        assert_eq!(counter, d.counter, "counter: {}", ctx());
        seen.inc(counter);
    }
    eprintln!(
        "backend differential: {} frames compared ({refused} short or long frames refused by the \
         skb test run), {:.1?}",
        n - refused,
        start.elapsed()
    );
    assert!(refused < n / 20);
    for (c, v) in seen.iter().filter(|(_, v)| *v > 0) {
        eprintln!("  {:>28} {v}", c.name());
    }
    use synwall_engine::Counter as C;
    for c in [
        C::BackendSynPass,
        C::BackendPassOther,
        C::BackendNoListener,
        C::DropTruncated,
        C::DropSynFragment,
        C::PassFragmentNonfirst,
        C::DropFragment,
        C::DropSourceRoute,
    ] {
        assert!(seen.get(c) > 0, "no frame reached {}", c.name());
    }
}

fn too_short_for_skb_test_run(f: &[u8]) -> bool {
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => f.len() < 14 + 20,
        0x86dd => f.len() < 14 + 40,
        _ => false,
    }
}

/// Move this test's thread into a new network namespace (its sockets and BPF socket lookups
/// then see only what the test creates there).
fn enter_new_netns() -> std::io::Result<()> {
    // SAFETY: unshare affects only the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
