//! Differential tests: the real BPF programs (through BPF_PROG_TEST_RUN) against the reference
//! engine, frame by frame: same verdict, same counter (the one per-CPU counter that moved), and
//! for XDP_TX the same bytes. The engine's clock for TSval is taken from the TSval the program
//! wrote (its top 24 bits), so the SYN+ACK must match exactly, checksums included.
//!
//! The salt ring changes as the frames go: slots present or missing, accepted keys or not, and
//! the programs' clock (they read the real one; the test moves the TAI offset in `sw_clock`) in
//! the middle of an epoch, in its last `L` (the next epoch's salt is accepted too) or in the first
//! `L` of the next (generators still issue the epoch before). Handshake ACKs carry cookies of
//! every salt in play, and of salts no slot holds.
//!
//! Needs root and BPF: in CI (CI=true) a failure to load fails the test; elsewhere it is skipped
//! with a message.

mod common;

use common::*;
use rand::Rng;
use std::time::Instant;
use synwall_bpf::{
    tc_action, xdp_action, Backend, DataPath, Edge, LoadOptions, TEST_RUN_MAX_LINEAR,
};
use synwall_cookie::synwall_v1::{self as v1, MasterSecret};
use synwall_cookie::{MssTable, SipKey};
use synwall_engine::{
    synack::MAX_SYNACK_LEN, BackendVerdict, Counters, Engine, EngineConfig, SaltEntry, SaltRing,
    Salts, ServerParams, SocketState, Verdict,
};

fn xdp_code(v: Verdict) -> u32 {
    match v {
        Verdict::Tx { .. } => xdp_action::TX,
        Verdict::Pass => xdp_action::PASS,
        Verdict::Drop => xdp_action::DROP,
    }
}

/// A phase: one configuration, `n` frames.
struct Phase {
    name: &'static str,
    cfg: EngineConfig,
    n: usize,
}

/// A random ring around EPOCH: each of EPOCH - 1 ..= EPOCH + 2 present or not (EPOCH most often),
/// each present slot with the accepted secret's salt or not; and every key a cookie can be made
/// with: the current and accepted salts of EPOCH - 2 ..= EPOCH + 2 (slots or not).
fn random_ring(rng: &mut impl Rng) -> (SaltRing, Vec<SipKey>) {
    let (cur, acc) = (MasterSecret(MASTER), MasterSecret(ACCEPTED));
    let mut ring = SaltRing::new();
    let mut keys = Vec::new();
    for e in EPOCH - 2..=EPOCH + 2 {
        let p = if e == EPOCH { 0.85 } else { 0.6 };
        let with_accepted = rng.gen_bool(0.3);
        let entry = SaltEntry::derive(e, &cur, with_accepted.then_some(&acc));
        if e != EPOCH - 2 && rng.gen_bool(p) {
            ring.set(entry);
        }
        keys.push(entry.current);
        keys.push(SaltEntry::derive(e, &acc, None).current);
    }
    (ring, keys)
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
            n: n / 2 - n / 6,
        },
        Phase {
            name: "auto mode below its threshold",
            cfg: auto_low,
            n: n / 6,
        },
        Phase {
            name: "no SACK, no timestamps",
            cfg: no_sack_ts,
            n: n / 6,
        },
        Phase {
            name: "custom tables and server parameters",
            cfg: custom,
            n: n / 6,
        },
        Phase {
            name: "no ECN",
            cfg: no_ecn,
            n: n - n / 2 - 2 * (n / 6),
        },
    ]
}

/// Which kind of salt an ACK the engine accepted validated under, as counted below.
fn salt_kind(salts: &Salts, ack_frame: &[u8], now_ns: u64) -> Option<&'static str> {
    let (l3, v6, l4, _, _) = locate(ack_frame)?;
    let tcp = etherparse::TcpHeaderSlice::from_slice(&ack_frame[l4..]).ok()?;
    let addr = |o: usize, n: usize| &ack_frame[l3 + o..l3 + o + n];
    let addrs = if v6 {
        let dst = match final_dst_in(ack_frame, l3) {
            Some(d) => d,
            None => addr(24, 16).try_into().ok()?,
        };
        synwall_cookie::Addrs::V6 {
            client: addr(8, 16).try_into().ok()?,
            service: dst,
        }
    } else {
        synwall_cookie::Addrs::V4 {
            client: addr(12, 4).try_into().ok()?,
            service: addr(16, 4).try_into().ok()?,
        }
    };
    let ts = tcp.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::Timestamp(tsval, tsecr)) => {
            Some(synwall_cookie::Timestamps { tsval, tsecr })
        }
        _ => None,
    });
    let ack = synwall_cookie::Ack {
        flow: synwall_cookie::Flow {
            addrs,
            client_port: tcp.source_port(),
            service_port: tcp.destination_port(),
        },
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        timestamps: ts,
    };
    let a = salts.clock.validation(now_ns)?;
    let bits = v1::ack_option_bits(&ack);
    for (e, what) in [
        (a.epoch, "live"),
        (a.epoch - 1, "previous"),
        (a.epoch + 1, "next"),
    ] {
        let Some(slot) = salts.ring.get(e) else {
            continue;
        };
        if v1::check_with_key(&slot.current, &ack, bits) {
            return Some(what);
        }
        if slot
            .accepted
            .is_some_and(|k| v1::check_with_key(&k, &ack, bits))
        {
            return Some("accepted");
        }
    }
    None
}

fn run_edge(strict: bool, total: usize, seed: u64) {
    let Some(edge) = or_skip("edge differential", Edge::load(&LoadOptions::default())) else {
        return;
    };
    let start = Instant::now();
    let mut gen = Gen::new(seed);
    let mut before = edge.counters().unwrap();
    let mut seen = Counters::default();
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut moments: std::collections::BTreeMap<String, usize> = Default::default();
    let mut tx = 0usize;
    let mut frames = 0usize;
    let mut multibuf = 0usize;
    for phase in phases(strict, total) {
        edge.configure(&phase.cfg).unwrap();
        edge.clear_flow_cache().unwrap();
        let mut engine = Engine::new(phase.cfg.clone(), salts());
        let mut cookie_keys = Vec::new();
        // Every SYN size from 54 to 120 bytes, with and without tags, in every phase (with the
        // ring of the middle of the epoch, where every SYN is answered).
        let sweep = syn_sizes(&mut gen.rng);
        let sweep_len = sweep.len();
        let mut sweep = sweep.into_iter();
        for i in 0..phase.n {
            // A new ring and moment every few hundred frames (the sweep keeps the first).
            if i == 0 || (i > sweep_len && gen.rng.gen_range(0..300) == 0) {
                let (ring, keys) = if i == 0 {
                    let k = keys();
                    let mut r = SaltRing::from_keys(&k);
                    r.set(SaltEntry::derive(EPOCH + 1, &MasterSecret(MASTER), None));
                    (r, vec![k.current, k.previous])
                } else {
                    random_ring(&mut gen.rng)
                };
                let moment = match gen.rng.gen_range(0..10) {
                    _ if i == 0 => Moment::Mid,
                    0..=5 => Moment::Mid,
                    6..=7 => Moment::Late,
                    _ => Moment::Early,
                };
                let salts = Salts::new(ring, moment.clock());
                edge.set_salts(&salts).unwrap();
                engine.set_salts(salts);
                cookie_keys = keys;
                *moments.entry(format!("{moment:?}")).or_default() += 1;
            }
            let (frame, label) = match sweep.next() {
                Some((f, l)) => (f, l),
                None => {
                    let (f, l) = gen.frame(&phase.cfg.cookie, &cookie_keys);
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
            let tsval = (run.retval == xdp_action::TX)
                .then(|| tsval_of(&run.data))
                .flatten();
            let now_ns = engine_ms(tsval) * 1_000_000;
            let mut buf = frame.clone();
            buf.resize(frame.len() + MAX_SYNACK_LEN, 0);
            let d = engine.xdp_frags_at(&mut buf, frame.len(), first, now_ns);
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
            if counter == synwall_engine::Counter::StrictAckValid {
                let k = salt_kind(engine.salts(), &frame, now_ns).unwrap_or("?");
                *kinds.entry(k).or_default() += 1;
            }
            seen.inc(counter);
            frames += 1;
        }
    }
    eprintln!(
        "edge differential (strict={strict}): {frames} frames ({multibuf} multi-buffer), {tx} \
         SYN+ACKs compared byte for byte, {:.1?}; rings per moment {moments:?}; strict ACKs \
         valid under {kinds:?}",
        start.elapsed()
    );
    for (c, v) in seen.iter().filter(|(_, v)| *v > 0) {
        eprintln!("  {:>28} {v}", c.name());
    }
    assert_eq!(frames, total);
    assert!(multibuf > total / 50, "only {multibuf} multi-buffer frames");
    for m in ["Mid", "Late", "Early"] {
        assert!(
            moments.get(m).copied().unwrap_or(0) > 1,
            "moment {m}: {moments:?}"
        );
    }
    if strict {
        for k in ["live", "previous", "next", "accepted"] {
            assert!(
                kinds.get(k).copied().unwrap_or(0) > 0,
                "no ACK valid under a {k} salt: {kinds:?}"
            );
        }
    }
    // The generator must reach the interesting outcomes, or the comparison proves little.
    use synwall_engine::Counter as C;
    let must: &[C] = if strict {
        &[
            C::SynAnswered,
            C::SynPassStale,
            C::AutoSynPass,
            C::StrictAckValid,
            C::StrictFwdCached,
            C::StrictDrop,
            C::StrictPassStale,
            C::DropSynFragment,
            C::PassFragmentNonfirst,
            C::DropSourceRoute,
        ]
    } else {
        &[
            C::SynAnswered,
            C::SynPassStale,
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
    let k = keys();
    backend.configure(&cfg).unwrap();
    backend.set_salts(&salts()).unwrap();
    let mut engine = Engine::new(cfg.clone(), salts());
    let mut gen = Gen::new(0x5eed_0003);
    let mut before = backend.counters().unwrap();
    let mut seen = Counters::default();
    let n = 30_000;
    let mut refused = 0;
    for _ in 0..n {
        let (frame, label) = gen.frame(&cfg.cookie, &[k.current, k.previous]);
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
        let d = engine.tc(&frame, engine_ms(None), |_| SocketState::None);
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
