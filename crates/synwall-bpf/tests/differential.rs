//! Differential tests: the real BPF programs (through BPF_PROG_TEST_RUN) against the reference
//! engine, frame by frame: same verdict, same counter (the one per-CPU counter that moved), and
//! for XDP_TX the same bytes. The engine's clock for TSval is taken from the TSval the program
//! wrote (its top 24 bits), so the SYN+ACK must match exactly, checksums included.
//!
//! The salt ring changes as the frames go: slots present or missing, accepted keys or not, and
//! the programs' clock (they read the real one; the test moves the TAI offset in `sw_clock`) in
//! the middle of an epoch, in its last `L` (the next epoch's salt is accepted too) or in the first
//! `L` of the next (generators still issue the epoch before). Handshake ACKs carry cookies of
//! every salt in play, and of salts no slot holds. The budgets run on the monotonic clock, read
//! by the test just before each run.
//!
//! Needs root and BPF: in CI (CI=true) a failure to load fails the test; elsewhere it is skipped
//! with a message.

use rand::Rng;
use std::time::Instant;
use synwall_bpf::{
    tc_action, xdp_action, Backend, DataPath, Edge, LoadOptions, TEST_RUN_MAX_LINEAR,
};
use synwall_cookie::synwall_v1::{self as v1, MasterSecret};
use synwall_cookie::{MssTable, SipKey};
use synwall_engine::parse::{parse, Parsed};
use synwall_engine::{
    synack::MAX_SYNACK_LEN, BackendVerdict, Counters, Engine, EngineConfig, SaltEntry, SaltRing,
    Salts, ServerParams, SocketState, Verdict,
};
use synwall_testkit::prelude::*;

fn xdp_code(v: Verdict) -> u32 {
    match v {
        Verdict::Tx { .. } => xdp_action::TX,
        Verdict::Pass => xdp_action::PASS,
        Verdict::Drop => xdp_action::DROP,
    }
}

/// A phase: one configuration, `n` frames; with `pool`, most sources come from it.
struct Phase {
    name: &'static str,
    cfg: EngineConfig,
    n: usize,
    pool: Vec<std::net::IpAddr>,
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

/// The abuse controls' phase: lists with nested prefixes (a denied host inside an allowed /24,
/// both families), budgets small enough that the sources of `abuse_pool` run out of them.
fn abuse(base: &EngineConfig, deny: bool, allow: bool) -> EngineConfig {
    let mut c = base.clone();
    let p = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect();
    if deny {
        c.lists.deny = p(&["100.64.1.0/24", "100.64.3.77/32", "2001:db8:dead::/48"]);
    }
    if allow {
        c.lists.allow = p(&["100.64.2.0/24", "100.64.3.0/24", "2001:db8:a11::/48"]);
    }
    c.budget = Some(synwall_engine::Budget { rate: 1, burst: 4 });
    c.node_budget = Some(synwall_engine::Budget { rate: 1, burst: 15 });
    // One new flow per prefix and round: valid cookies are a small share of the frames.
    c.flow_budget = Some(synwall_engine::Budget { rate: 1, burst: 1 });
    c
}

fn abuse_pool() -> Vec<std::net::IpAddr> {
    let mut v = Vec::new();
    for net in [0u8, 1, 2, 3, 4] {
        for host in [1u8, 77, 200] {
            v.push(std::net::IpAddr::from([100, 64, net, host]));
        }
    }
    for p in ["2001:db8:5:", "2001:db8:dead:", "2001:db8:a11:"] {
        for h in ["1::1", "ffff::9"] {
            v.push(format!("{p}{h}").parse().unwrap());
        }
    }
    v
}

/// Frames between two resets of the budgets (both sides): far less than a second, so with
/// rates of 1/s no bucket refills within one, and the program's clock and the engine's agree.
const BUDGET_ROUND: usize = 300;

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
    let phase = |name, cfg, n| Phase {
        name,
        cfg,
        n,
        pool: Vec::new(),
    };
    vec![
        phase("defaults", base.clone(), n / 2 - n / 6 - n / 8),
        Phase {
            pool: abuse_pool(),
            ..phase(
                "lists, budgets and node cap",
                abuse(&base, true, true),
                n / 16,
            )
        },
        Phase {
            pool: abuse_pool(),
            ..phase(
                "allow list only, budgets",
                abuse(&base, false, true),
                n / 32,
            )
        },
        Phase {
            pool: abuse_pool(),
            ..phase(
                "deny list only, budgets",
                abuse(&base, true, false),
                n / 8 - n / 16 - n / 32,
            )
        },
        phase("auto mode below its threshold", auto_low, n / 6),
        phase("no SACK, no timestamps", no_sack_ts, n / 6),
        phase("custom tables and server parameters", custom, n / 6),
        phase("no ECN", no_ecn, n - n / 2 - 2 * (n / 6)),
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
    // The generic-mode program (no multi-buffer support) on its own maps, with its own engine:
    // every frame that fits one test-run buffer runs through it too.
    let generic = Edge::load(&LoadOptions::default()).unwrap();
    let start = Instant::now();
    let mut gen = Gen::new(seed);
    let mut before = edge.counters().unwrap();
    let mut before_g = generic.counters().unwrap();
    let mut seen = Counters::default();
    let mut tx = 0usize;
    let mut frames = 0usize;
    let mut multibuf = 0usize;
    let mut generic_runs = 0usize;
    let mut inner_answered = 0usize;
    let mut cut_chains = 0usize;
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut moments: std::collections::BTreeMap<String, usize> = Default::default();
    for phase in phases(strict, total) {
        for e in [&edge, &generic] {
            e.configure(&phase.cfg).unwrap();
            e.clear_flow_cache().unwrap();
            e.clear_budgets().unwrap();
        }
        gen.src_pool = phase.pool.clone();
        let mut engine = Engine::new(phase.cfg.clone(), salts());
        let mut engine_g = Engine::new(phase.cfg.clone(), salts());
        let mut cookie_keys = Vec::new();
        // Every SYN size from 54 to 120 bytes, with and without tags, in every phase (with the
        // ring of the middle of the epoch, where every SYN is answered).
        let sweep = syn_sizes(&mut gen.rng);
        let sweep_len = sweep.len();
        let mut sweep = sweep.into_iter();
        for i in 0..phase.n {
            if i % BUDGET_ROUND == 0 {
                edge.clear_budgets().unwrap();
                engine.clear_budgets();
                generic.clear_budgets().unwrap();
                engine_g.clear_budgets();
            }
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
                let mut salts = Salts::new(ring, moment.clock());
                // Sometimes strict mode's grace after the ring was stale: running, or over.
                let unix = moment.unix_s() * NS;
                salts.strict_grace_until_ns = match gen.rng.gen_range(0..6) {
                    0 => unix + 300 * NS,
                    1 => unix - 300 * NS,
                    _ => 0,
                };
                edge.set_salts(&salts).unwrap();
                generic.set_salts(&salts).unwrap();
                engine.set_salts(salts.clone());
                engine_g.set_salts(salts);
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
            // The budgets' clock: the program reads bpf_ktime_get_tai_ns a moment after this (the
            // salts' clock is derived from its TSval below).
            let budget_ns = tai_ns();
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
            let d = engine.xdp_clocks(&mut buf, frame.len(), first, budget_ns, now_ns);
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
                if let Parsed::Tcp(t) = parse(&frame, &phase.cfg.services) {
                    inner_answered += t.inner.is_some() as usize;
                }
            }
            if label == "chain cut by fragmentation" {
                cut_chains += 1;
            }
            if counter == synwall_engine::Counter::StrictAckValid {
                let k = salt_kind(engine.salts(), &frame, now_ns).unwrap_or("?");
                *kinds.entry(k).or_default() += 1;
            }
            // The generic-mode program, on frames it takes in one buffer.
            if first == frame.len() && frame.len() <= TEST_RUN_MAX_LINEAR {
                let budget_ns = tai_ns();
                let run = generic.test_run_generic(&frame).unwrap();
                let after = generic.counters().unwrap();
                let counter = single_increment(&before_g, &after).unwrap_or_else(|e| {
                    panic!(
                        "[{}] generic: {label} frame {}: {e}",
                        phase.name,
                        hex(&frame)
                    )
                });
                before_g = after;
                let tsval = (run.retval == xdp_action::TX)
                    .then(|| tsval_of(&run.data))
                    .flatten();
                let now_ns = engine_ms(tsval) * 1_000_000;
                let mut buf = frame.clone();
                buf.resize(frame.len() + MAX_SYNACK_LEN, 0);
                let d = engine_g.xdp_clocks(&mut buf, frame.len(), frame.len(), budget_ns, now_ns);
                let ctx = format!(
                    "[{}] generic program: {label} frame {}\n engine {d:?}\n bpf retval {} \
                     counter {counter:?}",
                    phase.name,
                    hex(&frame),
                    run.retval
                );
                assert_eq!(run.retval, xdp_code(d.verdict), "verdict: {ctx}");
                assert_eq!(counter, d.counter, "counter: {ctx}");
                if let Verdict::Tx { len } = d.verdict {
                    assert_eq!(hex(&run.data), hex(&buf[..len]), "SYN+ACK bytes: {ctx}");
                }
                generic_runs += 1;
            }
            seen.inc(counter);
            frames += 1;
        }
    }
    eprintln!(
        "edge differential (strict={strict}): {frames} frames ({multibuf} multi-buffer), {tx} \
         SYN+ACKs compared byte for byte ({inner_answered} to SYNs inside SRv6 encapsulation), \
         {generic_runs} frames through the generic-mode program too, {cut_chains} first \
         fragments whose chain goes on in the next, {:.1?}; rings per moment {moments:?}; \
         strict ACKs valid under {kinds:?}",
        start.elapsed()
    );
    for (c, v) in seen.iter().filter(|(_, v)| *v > 0) {
        eprintln!("  {:>28} {v}", c.name());
    }
    assert_eq!(frames, total);
    assert!(multibuf > total / 50, "only {multibuf} multi-buffer frames");
    assert!(
        generic_runs > total / 2,
        "only {generic_runs} generic-mode runs"
    );
    assert!(cut_chains > 0, "no first fragment with a cut chain");
    if !strict {
        assert!(
            inner_answered > 0,
            "no SYN inside SRv6 encapsulation answered"
        );
    }
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
            C::StrictPassStale,
            C::StrictFwdCached,
            C::StrictFwdPromoted,
            C::DropFlowBudget,
            C::DropDenied,
            C::SynAnsweredAllowed,
            C::StrictDrop,
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
            C::DropEncapNested,
            C::DropDenied,
            C::DropSynBudget,
            C::DropSynNodeCap,
            C::SynAnsweredAllowed,
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

/// The option layouts Linux sends are read in place by the edge, not walked: Linux's SYN
/// options, the same without timestamps, and (strict mode) a handshake ACK's NOP, NOP,
/// Timestamps. Every byte of each, bent to values that mean something to the walk (EOL, NOP,
/// the option kinds and lengths, 0xff, one more than it was), in both families, must give the
/// engine's verdict, counter and SYN+ACK bytes: whatever the bytes, the fast path decides what
/// the walk would, or gives the frame to it.
#[test]
fn edge_option_layouts_read_in_place_match_engine() {
    let Some(edge) = or_skip("edge option layouts", Edge::load(&LoadOptions::default())) else {
        return;
    };
    let k = keys();
    let mut cfg = config();
    let mut seen = Counters::default();
    let mut frames = 0usize;
    for strict in [false, true] {
        cfg.strict = strict;
        edge.configure(&cfg).unwrap();
        edge.set_salts(&salts()).unwrap();
        edge.clear_flow_cache().unwrap();
        edge.clear_budgets().unwrap();
        let mut engine = Engine::new(cfg.clone(), salts());
        let mut before = edge.counters().unwrap();
        let families: [(std::net::IpAddr, std::net::IpAddr); 2] = [
            (CLIENT4.into(), SERVICE4.into()),
            (CLIENT6.into(), SERVICE6.into()),
        ];
        for (src, dst) in families {
            let syn = |options: Vec<u8>| Frame {
                seq: 0x0102_0304,
                options,
                ..Frame::new(src, dst, 40000, PORT, SYN)
            };
            let linux = syn(linux_syn_options_ts(0x1111_2222));
            let mut bases = vec![
                linux.clone(),
                syn(vec![2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]),
            ];
            if strict {
                bases.push(handshake_ack(
                    &cfg.cookie,
                    &k.current,
                    &linux,
                    LINUX_SYN,
                    engine_ms(None),
                ));
            }
            for base in bases {
                for pos in 0..base.options.len() {
                    let was = base.options[pos];
                    for v in [was, 0, 1, 2, 3, 4, 8, 10, 0xff, was.wrapping_add(1)] {
                        let mut f = base.clone();
                        f.options[pos] = v;
                        let frame = f.build();
                        // Strict mode: each ACK meets an empty flow cache (a validated one
                        // would let the next through as cached). Otherwise far fewer frames per
                        // round than the default budget's burst.
                        if strict {
                            edge.clear_flow_cache().unwrap();
                            edge.clear_budgets().unwrap();
                            engine = Engine::new(cfg.clone(), salts());
                        } else if frames % BUDGET_ROUND == 0 {
                            edge.clear_budgets().unwrap();
                            engine.clear_budgets();
                        }
                        frames += 1;
                        let budget_ns = tai_ns();
                        let run = edge.test_run(&frame).unwrap();
                        let after = edge.counters().unwrap();
                        let counter = single_increment(&before, &after)
                            .unwrap_or_else(|e| panic!("frame {}: {e}", hex(&frame)));
                        before = after;
                        let tsval = (run.retval == xdp_action::TX)
                            .then(|| tsval_of(&run.data))
                            .flatten();
                        let now_ns = engine_ms(tsval) * 1_000_000;
                        let mut buf = frame.clone();
                        buf.resize(frame.len() + MAX_SYNACK_LEN, 0);
                        let d = engine.xdp_clocks(
                            &mut buf,
                            frame.len(),
                            frame.len(),
                            budget_ns,
                            now_ns,
                        );
                        let ctx = || {
                            format!(
                                "strict={strict} option byte {pos} = {v:#x}: frame {}\n engine \
                                 {d:?}\n bpf retval {} counter {counter:?}\n bpf out {}",
                                hex(&frame),
                                run.retval,
                                hex(&run.data)
                            )
                        };
                        assert_eq!(run.retval, xdp_code(d.verdict), "verdict: {}", ctx());
                        assert_eq!(counter, d.counter, "counter: {}", ctx());
                        if let Verdict::Tx { len } = d.verdict {
                            assert_eq!(hex(&run.data), hex(&buf[..len]), "SYN+ACK: {}", ctx());
                        }
                        seen.inc(counter);
                    }
                }
            }
        }
    }
    eprintln!("edge option layouts: {frames} frames");
    for (c, v) in seen.iter().filter(|(_, v)| *v > 0) {
        eprintln!("  {:>28} {v}", c.name());
    }
    // Positive controls: the layouts as sent are answered / validated, bent ones are refused.
    use synwall_engine::Counter as C;
    for c in [
        C::SynAnswered,
        C::DropSynOptions,
        C::StrictAckValid,
        C::StrictDrop,
    ] {
        assert!(seen.get(c) > 0, "no frame reached {}", c.name());
    }
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
        let Some((run, counter)) = backend_step(&backend, &frame, label, &mut before) else {
            refused += 1;
            continue;
        };
        let d = engine.tc(&frame, engine_ms(None), |_| SocketState::None, |_| 0);
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

/// The backend with a listener on port 443 of every address (a dual-stack wildcard socket in a
/// fresh network namespace): ACKs to that port find only it (SocketState::ListenerOnly), so the
/// listener path is compared too: fragments, SRv6 encapsulation still on (a test run's network
/// header is right after Ethernet), options, cookies valid and not, checksums, stacked tags. Where
/// the engine calls the kfunc, the program must have called it: its counter is one of the kfunc's
/// (a test-run skb is not at tc ingress, so the kernel refuses it with -EINVAL).
#[test]
fn backend_matches_engine_with_a_listener() {
    if or_skip(
        "backend differential with a listener (network namespace)",
        enter_new_netns(),
    )
    .is_none()
    {
        return;
    }
    let Some(backend) = or_skip(
        "backend differential with a listener",
        Backend::load(&LoadOptions::default()),
    ) else {
        return;
    };
    let _listener = std::net::TcpListener::bind("[::]:443").expect("listen on [::]:443");
    let cfg = config();
    let k = keys();
    backend.configure(&cfg).unwrap();
    backend.set_salts(&salts()).unwrap();
    let mut engine = Engine::new(cfg.clone(), salts());
    let mut gen = Gen::new(0x5eed_0005);
    let mut before = backend.counters().unwrap();
    let mut seen = Counters::default();
    let (n, mut refused, mut kfunc) = (30_000, 0, 0);
    use synwall_engine::Counter as C;
    for _ in 0..n {
        let (frame, label) = gen.frame(&cfg.cookie, &[k.current, k.previous]);
        let Some((run, counter)) = backend_step(&backend, &frame, label, &mut before) else {
            refused += 1;
            continue;
        };
        let d = engine.tc(
            &frame,
            engine_ms(None),
            |flow| {
                if flow.service_port == 443 {
                    SocketState::ListenerOnly
                } else {
                    SocketState::None
                }
            },
            |_| 0,
        );
        let ctx = || format!("{label} frame {}\n engine {d:?}", hex(&frame));
        match d.verdict {
            BackendVerdict::AssignReqsk(_) => {
                assert_eq!(run.retval, tc_action::OK, "verdict: {}", ctx());
                assert!(
                    matches!(
                        counter,
                        C::BackendReqskCreated
                            | C::BackendKfuncEinval
                            | C::BackendKfuncEnomem
                            | C::BackendKfuncEnetunreach
                            | C::BackendKfuncEother
                    ),
                    "the kfunc was not called: {counter:?}: {}",
                    ctx()
                );
                kfunc += 1;
            }
            v => {
                let want = if v == BackendVerdict::Pass {
                    tc_action::OK
                } else {
                    tc_action::SHOT
                };
                assert_eq!(run.retval, want, "verdict: {}", ctx());
                assert_eq!(counter, d.counter, "counter: {}", ctx());
            }
        }
        seen.inc(counter);
    }
    eprintln!(
        "backend differential with a listener: {} frames compared ({refused} refused by the skb \
         test run), {kfunc} kfunc calls",
        n - refused
    );
    for (c, v) in seen.iter().filter(|(_, v)| *v > 0) {
        eprintln!("  {:>28} {v}", c.name());
    }
    assert!(refused < n / 20);
    assert!(kfunc > 0, "no kfunc call");
    for c in [
        C::BackendAckInvalid,
        C::DropAckFragment,
        C::DropAckChecksum,
        C::DropAckOptions,
        C::BackendAckPassEncap,
        C::BackendAckVlan,
    ] {
        assert!(seen.get(c) > 0, "no frame reached {}", c.name());
    }
}

/// SYNs of more than 16 KiB in one buffer exist only where a test run cannot make them: the
/// generic-mode program (`sw_edge_generic`, which takes a frame in one buffer) on an interface
/// with a larger MTU. So it is attached in generic mode to a real veth of MTU 65535 in a network
/// namespace, frames are sent from the peer, its counters are read after each one and its
/// answers are captured on the peer: SYNs of 16 KiB to 64 KiB (IPv4 and IPv6, untagged and
/// 802.1Q, good and bad checksums, inside SRv6 encapsulation too), then generated frames of every
/// kind, each compared with the engine (counter, and the SYN+ACK byte for byte).
#[test]
fn edge_generic_mode_on_a_veth_matches_engine() {
    if !require_privileges("edge_generic_mode_on_a_veth_matches_engine") {
        return;
    }
    use synwall_testkit::{unique_prefix, veth, Capture, Netns, RawSender};
    let p = unique_prefix();
    let a = Netns::create(&format!("{p}a")).unwrap();
    let b = Netns::create(&format!("{p}b")).unwrap();
    // No neighbour discovery or router solicitations: only the test's frames reach the program.
    for ns in [&a, &b] {
        for k in ["all", "default"] {
            ns.sysctl(&format!("net.ipv6.conf.{k}.disable_ipv6"), "1")
                .unwrap();
        }
    }
    let (ia, ib) = (format!("{p}x"), format!("{p}y"));
    veth(&a, &ia, &b, &ib).unwrap();
    for (ns, dev) in [(&a, &ia), (&b, &ib)] {
        ns.run(&["ip", "link", "set", "dev", dev, "mtu", "65535"])
            .unwrap();
    }
    let peer = ib.clone();
    let (tx, cap) = b
        .enter(move || {
            (
                RawSender::open(&peer).unwrap(),
                Capture::open(&peer).unwrap(),
            )
        })
        .unwrap();
    let compared = a.enter(move || live_generic(&ia, tx, cap)).unwrap();
    eprintln!("generic mode on a veth: {compared}");
}

/// The body of [`edge_generic_mode_on_a_veth_matches_engine`], on a thread in the edge's
/// namespace.
fn live_generic(
    iface: &str,
    tx: synwall_testkit::RawSender,
    cap: synwall_testkit::Capture,
) -> String {
    use std::net::IpAddr;
    use std::time::Duration;
    use synwall_bpf::XdpMode;
    let cfg = config();
    let k = keys();
    let edge = Edge::load(&LoadOptions::default()).unwrap();
    edge.configure(&cfg).unwrap();
    edge.set_salts(&salts()).unwrap();
    let ifindex = nix_ifindex(iface);
    let _link = edge.attach_xdp(ifindex, XdpMode::Generic).unwrap();
    let mut engine = Engine::new(cfg.clone(), salts());
    let mut frames: Vec<(Vec<u8>, String)> = Vec::new();
    let mut rng = Gen::new(0x5eed_0004);
    // SYNs whose segment is around and far beyond 16 KiB (the longest an IPv4 packet holds).
    for v6 in [false, true] {
        for seg_len in [
            16_300usize,
            16_384,
            16_385,
            16_388,
            16_390,
            20_028,
            40_000,
            65_475,
        ] {
            for tags in [0usize, 1] {
                let (src, dst): (IpAddr, IpAddr) = if v6 {
                    (
                        "2001:db8:ffff::10".parse().unwrap(),
                        "2001:db8:1::80".parse().unwrap(),
                    )
                } else {
                    (
                        "192.0.2.10".parse().unwrap(),
                        "198.51.100.7".parse().unwrap(),
                    )
                };
                let mut s = Frame::new(src, dst, 40_000 + seg_len as u16 % 1000, 443, SYN);
                s.seq = rng.rng.gen();
                s.options = linux_syn_options_ts(7);
                s.payload = vec![0x5a; seg_len - 20 - s.options.len()];
                s.vlans = synwall_testkit::frame::tags(&vec![TPID_8021Q; tags]);
                let f = s.build();
                let mut bad = f.clone();
                let last = bad.len() - 1;
                bad[last] ^= 0x40;
                frames.push((
                    f,
                    format!("SYN segment of {seg_len} bytes (v6 {v6}, {tags} tags)"),
                ));
                frames.push((
                    bad,
                    format!("bad-checksum SYN of {seg_len} bytes (v6 {v6})"),
                ));
                if v6 && tags == 0 && seg_len < 60_000 {
                    let inner = s.clone();
                    let outer = rng.encapsulate(inner);
                    frames.push((outer.build(), format!("SRv6 SYN of {seg_len} bytes")));
                }
            }
        }
    }
    // Generated frames of every kind (up to the jumbo sizes the generator makes).
    for _ in 0..400 {
        let (f, l) = rng.frame(&cfg.cookie, &[k.current, k.previous]);
        frames.push((f, format!("generated ({l})")));
    }
    let mut answered_big = 0;
    let mut seen = Counters::default();
    for (frame, label) in &frames {
        let before = edge.counters().unwrap();
        // Anything captured so far (our own frames, going out) is not an answer.
        while cap.next(Duration::ZERO).unwrap().is_some() {}
        tx.send(frame).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        let counter = loop {
            let after = edge.counters().unwrap();
            if after.total() > before.total() {
                break single_increment(&before, &after)
                    .unwrap_or_else(|e| panic!("{label} frame {}: {e}", hex(frame)));
            }
            assert!(
                Instant::now() < deadline,
                "{label}: the generic-mode program did not count the frame ({} bytes)",
                frame.len()
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        let answer = if counter == synwall_engine::Counter::SynAnswered {
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                match cap.next(Duration::from_millis(50)).unwrap() {
                    Some(c) if !c.outgoing => break Some(c.frame),
                    _ if Instant::now() > deadline => {
                        panic!("{label}: answered, nothing came back")
                    }
                    _ => {}
                }
            }
        } else {
            None
        };
        // The budgets (on by default) are never reached by these few frames: one clock will do.
        let now_ns = engine_ms(answer.as_deref().and_then(tsval_of)) * 1_000_000;
        let mut buf = frame.clone();
        buf.resize(frame.len() + MAX_SYNACK_LEN, 0);
        let d = engine.xdp_at(&mut buf, frame.len(), now_ns);
        assert_eq!(
            counter,
            d.counter,
            "{label} frame of {} bytes: engine {d:?}",
            frame.len()
        );
        if let (Verdict::Tx { len }, Some(answer)) = (d.verdict, &answer) {
            assert_eq!(hex(answer), hex(&buf[..len]), "{label}: SYN+ACK bytes");
            answered_big += (frame.len() > 16_384) as usize;
        }
        seen.inc(counter);
    }
    use synwall_engine::Counter as C;
    assert!(
        answered_big >= 2 * 2 * 4,
        "only {answered_big} SYNs over 16 KiB answered"
    );
    assert!(
        seen.get(C::DropSynChecksum) >= 2 * 2 * 8,
        "bad big SYNs not all dropped"
    );
    format!(
        "{} frames compared, {answered_big} SYNs of more than 16 KiB answered byte for byte",
        frames.len()
    )
}

/// The index of interface `name` in the calling thread's namespace.
fn nix_ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name we own.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(i > 0, "no interface {name}");
    i
}

/// One frame through the backend program: its result and the one counter it moved (`before`
/// moves on), or `None` where the skb test run refuses the frame (IP frames shorter than
/// Ethernet + the fixed IP header, frames longer than a page minus head- and tailroom).
fn backend_step(
    backend: &Backend,
    frame: &[u8],
    label: &str,
    before: &mut Counters,
) -> Option<(synwall_bpf::TestRun, synwall_engine::Counter)> {
    let run = match backend.test_run(frame) {
        Ok(r) => r,
        Err(_) if too_short_for_skb_test_run(frame) || frame.len() > TEST_RUN_MAX_LINEAR => {
            return None
        }
        Err(e) => panic!("{label} frame {}: {e}", hex(frame)),
    };
    let after = backend.counters().unwrap();
    let counter = single_increment(before, &after)
        .unwrap_or_else(|e| panic!("{label} frame {}: {e}", hex(frame)));
    *before = after;
    Some((run, counter))
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
