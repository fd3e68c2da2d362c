//! The decision of SPEC section 8 beyond SYNs: default-mode forwarding without a MAC, the strict
//! mode's bounded flow cache, the backend's kfunc attributes, and expiry across epochs.

use crate::common::*;
use synwall_cookie::synwall_v1::{EpochClock, EpochKeys, MasterSecret};
use synwall_engine::engine::kfunc_counter;
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{
    BackendVerdict, Counter, Engine, EngineConfig, ReqAttrs, SaltRing, Salts, SocketState, Verdict,
};
use synwall_testkit::deploy::{all_services, EPOCH};

fn xdp(e: &mut Engine, f: &[u8]) -> (Verdict, Counter) {
    let mut buf = f.to_vec();
    buf.resize(MAX_SYNACK_LEN.max(f.len()), 0);
    let d = e.xdp(&mut buf, f.len(), NOW_MS);
    (d.verdict, d.counter)
}

#[test]
fn default_mode_forwards_non_syn_without_a_mac() {
    let mut e = engine();
    let s = SynSpec::default();
    let ack = handshake_ack(&mut e, &s);
    assert_eq!(xdp(&mut e, &ack), (Verdict::Pass, Counter::FwdNonSyn));
    // A forged ACK is forwarded too: in default mode the backend is the one that validates.
    let forged = frame(
        &SynSpec {
            isn: 9,
            ..s.clone()
        },
        Some(12345),
    );
    assert_eq!(xdp(&mut e, &forged), (Verdict::Pass, Counter::FwdNonSyn));
}

#[test]
fn strict_mode_forwards_only_validated_flows() {
    let mut cfg = EngineConfig::new(all_services());
    cfg.strict = true;
    cfg.flow_cache = 2;
    // One LRU for every flow (no promotion): tests/abuse.rs has the protected segment.
    cfg.promoted_cache = 0;
    let mut e = Engine::new(cfg, salts());
    for v6 in [false, true] {
        let s = SynSpec {
            v6,
            ..SynSpec::default()
        };
        let ack = handshake_ack(&mut e, &s);
        let data = frame(
            &SynSpec {
                isn: s.isn.wrapping_add(1),
                payload: b"GET /".to_vec(),
                mss: None,
                wscale: None,
                sack: false,
                ts: None,
                ..s.clone()
            },
            Some(7),
        );
        assert_eq!(
            xdp(&mut e, &data),
            (Verdict::Drop, Counter::StrictDrop),
            "before the handshake ACK"
        );
        assert_eq!(xdp(&mut e, &ack), (Verdict::Pass, Counter::StrictAckValid));
        assert_eq!(
            xdp(&mut e, &data),
            (Verdict::Pass, Counter::StrictFwdCached)
        );
        let forged = frame(
            &SynSpec {
                sport: 555,
                isn: 1,
                mss: None,
                wscale: None,
                sack: false,
                ts: None,
                ..s.clone()
            },
            Some(999),
        );
        assert_eq!(xdp(&mut e, &forged), (Verdict::Drop, Counter::StrictDrop));
    }
    // The cache holds 2 flows: a third validated flow evicts the least recently used (the first).
    let first = SynSpec::default();
    let data_first = frame(
        &SynSpec {
            isn: first.isn.wrapping_add(1),
            mss: None,
            wscale: None,
            sack: false,
            ts: None,
            ..first.clone()
        },
        Some(7),
    );
    let third = SynSpec {
        sport: 41000,
        ..SynSpec::default()
    };
    let ack3 = handshake_ack(&mut e, &third);
    assert_eq!(xdp(&mut e, &ack3), (Verdict::Pass, Counter::StrictAckValid));
    assert_eq!(
        xdp(&mut e, &data_first),
        (Verdict::Drop, Counter::StrictDrop)
    );
}

#[test]
fn backend_assigns_a_request_socket_with_the_decoded_options() {
    let mut e = engine();
    for (v6, ts, ecn) in [
        (false, true, true),
        (true, false, false),
        (false, false, true),
    ] {
        let s = SynSpec {
            v6,
            mss: Some(1400),
            wscale: Some(9),
            sack: true,
            ts: ts.then_some(0x4444_0000),
            ece_cwr: ecn,
            ..SynSpec::default()
        };
        let ack = handshake_ack(&mut e, &s);
        let d = e.tc(&ack, NOW_MS, |_| SocketState::ListenerOnly, |_| 0);
        let BackendVerdict::AssignReqsk(a) = d.verdict else {
            panic!("{d:?}")
        };
        let want_mss = if v6 { 1360 } else { 1400 };
        assert_eq!(
            a,
            ReqAttrs {
                rcv_tsval: if ts { 0x5555_0000 } else { 0 },
                rcv_tsecr: a.rcv_tsecr,
                mss: want_mss,
                rcv_wscale: 7,
                snd_wscale: 9,
                ecn_ok: ts && ecn,
                wscale_ok: true,
                sack_ok: true,
                tstamp_ok: ts,
                usec_ts_ok: false,
            }
        );
        assert_eq!(d.counter, Counter::BackendReqskCreated);
        assert_eq!(
            e.tc(&ack, NOW_MS, |_| SocketState::Connection, |_| 0)
                .counter,
            Counter::BackendEstablished
        );
        assert_eq!(
            e.tc(&ack, NOW_MS, |_| SocketState::None, |_| 0).counter,
            Counter::BackendNoListener
        );
        let mut bad = ack.clone();
        let n = bad.len();
        // Flip a bit of the ack number (offset 8 of the TCP header) and re-check.
        let l4 = if v6 { 14 + 40 } else { 14 + 20 };
        bad[l4 + 9] ^= 0x10;
        assert_eq!(n, bad.len());
        let d = e.tc(&bad, NOW_MS, |_| SocketState::ListenerOnly, |_| 0);
        assert_eq!(
            (d.verdict, d.counter),
            (BackendVerdict::Drop, Counter::BackendAckInvalid)
        );
    }
    assert_eq!(
        e.tc(
            &frame(&SynSpec::default(), None),
            NOW_MS,
            |_| { SocketState::ListenerOnly },
            |_| 0
        )
        .counter,
        Counter::BackendSynPass
    );
    assert_eq!(kfunc_counter(-22), Counter::BackendKfuncEinval);
    assert_eq!(kfunc_counter(-12), Counter::BackendKfuncEnomem);
    assert_eq!(kfunc_counter(-101), Counter::BackendKfuncEnetunreach);
    assert_eq!(kfunc_counter(-1), Counter::BackendKfuncEother);
}

#[test]
fn ack_expires_after_two_epochs_and_other_secret_fails() {
    let mut edge = engine();
    let s = SynSpec {
        ts: None,
        ..SynSpec::default()
    };
    let ack = handshake_ack(&mut edge, &s);
    // A backend whose ring holds this secret's salts from EPOCH - 1 to EPOCH + 3.
    let master = MasterSecret(MASTER);
    let ring = SaltRing::derive(EPOCH - 1, EPOCH + 3, &master, None);
    let mut backend = Engine::new(
        EngineConfig::new(all_services()),
        Salts::new(ring, EpochClock::new(P, 0)),
    );
    let epoch_ms = P * 1000;
    assert!(matches!(
        backend
            .tc(
                &ack,
                NOW_MS + epoch_ms,
                |_| SocketState::ListenerOnly,
                |_| 0
            )
            .verdict,
        BackendVerdict::AssignReqsk(_)
    ));
    assert_eq!(
        backend
            .tc(
                &ack,
                NOW_MS + 2 * epoch_ms,
                |_| SocketState::ListenerOnly,
                |_| 0
            )
            .counter,
        Counter::BackendAckInvalid
    );
    // Issued a little before its epoch began (a generator's clock ahead): accepted in the last
    // L of the epoch before, not earlier.
    let lag_ms = synwall_cookie::synwall_v1::lag_ns(P * 1_000_000_000) / 1_000_000;
    let start = EPOCH * epoch_ms;
    assert_eq!(
        backend
            .tc(
                &ack,
                start - lag_ms - 1,
                |_| SocketState::ListenerOnly,
                |_| 0
            )
            .counter,
        Counter::BackendAckInvalid
    );
    assert!(matches!(
        backend
            .tc(&ack, start - lag_ms, |_| SocketState::ListenerOnly, |_| 0)
            .verdict,
        BackendVerdict::AssignReqsk(_)
    ));
    let mut other = Engine::new(
        EngineConfig::new(all_services()),
        Salts::from_keys(&EpochKeys::derive(&MasterSecret([7; 32]), EPOCH), P),
    );
    assert_eq!(
        other
            .tc(&ack, NOW_MS, |_| SocketState::ListenerOnly, |_| 0)
            .counter,
        Counter::BackendAckInvalid
    );
}

/// The salt ring runs out (the daemon stopped writing ahead): the edge passes SYNs to the kernel
/// behind, a strict edge passes what it cannot judge, the backend passes ACKs it cannot validate;
/// cookies of the ring's last epoch still validate while it is the epoch before.
#[test]
fn past_the_rings_end_everything_is_passed() {
    let master = MasterSecret(MASTER);
    let ring = SaltRing::derive(EPOCH - 1, EPOCH, &master, None);
    let salts = Salts::new(ring, EpochClock::new(P, 0));
    let mut cfg = EngineConfig::new(all_services());
    let mut edge = Engine::new(cfg.clone(), salts.clone());
    cfg.strict = true;
    let mut strict = Engine::new(cfg.clone(), salts.clone());
    let mut backend = Engine::new(EngineConfig::new(all_services()), salts);
    let s = SynSpec::default();
    let ack = handshake_ack(&mut edge, &s);
    let syn = frame(&s, None);
    let run = |e: &mut Engine, f: &[u8], ms: u64| {
        let mut buf = f.to_vec();
        buf.resize(MAX_SYNACK_LEN.max(f.len()), 0);
        let d = e.xdp(&mut buf, f.len(), ms);
        (d.verdict, d.counter)
    };
    let epoch_ms = P * 1000;
    let lag_ms = 250;
    let next = (EPOCH + 1) * epoch_ms;
    // Generation switches to EPOCH + 1 at its start + L: no salt there.
    assert_eq!(
        run(&mut edge, &syn, next + lag_ms - 1).1,
        Counter::SynAnswered
    );
    assert_eq!(
        run(&mut edge, &syn, next + lag_ms),
        (Verdict::Pass, Counter::SynPassStale)
    );
    // The ACK of a cookie of EPOCH still validates during EPOCH + 1 (as v - 1).
    assert_eq!(
        run(&mut strict, &ack, next + 1000),
        (Verdict::Pass, Counter::StrictAckValid)
    );
    assert!(matches!(
        backend
            .tc(&ack, next + 1000, |_| SocketState::ListenerOnly, |_| 0)
            .verdict,
        BackendVerdict::AssignReqsk(_)
    ));
    // Anything else cannot be judged: passed, counted as stale.
    // Another flow than the validated one (which the strict edge now caches).
    let other = SynSpec {
        isn: 9,
        sport: 40_001,
        ..s.clone()
    };
    let forged = frame(&other, Some(12345));
    assert_eq!(
        run(&mut strict, &forged, next + 1000),
        (Verdict::Pass, Counter::StrictPassStale)
    );
    let d = backend.tc(&forged, next + 1000, |_| SocketState::ListenerOnly, |_| 0);
    assert_eq!(
        (d.verdict, d.counter),
        (BackendVerdict::Pass, Counter::BackendAckPassStale)
    );
    // Passed while stale, the flow is cached: its segments pass once salts are back (the
    // kernel behind may have made that connection meanwhile).
    assert_eq!(
        run(&mut strict, &forged, NOW_MS),
        (Verdict::Pass, Counter::StrictFwdCached)
    );
    // While the live slot is there, a forged ACK of another flow is dropped.
    let forged2 = frame(
        &SynSpec {
            sport: 40_002,
            ..other.clone()
        },
        Some(12345),
    );
    assert_eq!(
        run(&mut strict, &forged2, NOW_MS),
        (Verdict::Drop, Counter::StrictDrop)
    );
    // In the grace the daemon gives after writing salts into a stale ring, strict mode still
    // passes (and caches) what it cannot validate; after it, it drops again.
    let grace_end = (NOW_MS + 3000) * 1_000_000;
    strict.salts_mut().strict_grace_until_ns = grace_end;
    let forged3 = frame(
        &SynSpec {
            sport: 40_003,
            ..other.clone()
        },
        Some(12345),
    );
    let forged4 = frame(
        &SynSpec {
            sport: 40_004,
            ..other.clone()
        },
        Some(12345),
    );
    assert_eq!(
        run(&mut strict, &forged3, NOW_MS + 2999),
        (Verdict::Pass, Counter::StrictPassStale)
    );
    assert_eq!(
        run(&mut strict, &forged3, NOW_MS + 3000),
        (Verdict::Pass, Counter::StrictFwdCached)
    );
    assert_eq!(
        run(&mut strict, &forged4, NOW_MS + 3000),
        (Verdict::Drop, Counter::StrictDrop)
    );
    let d = backend.tc(&forged, NOW_MS, |_| SocketState::ListenerOnly, |_| 0);
    assert_eq!(d.counter, Counter::BackendAckInvalid);
    // Two epochs on, even the last cookies are gone: the ACK is passed as stale too.
    let d = backend.tc(
        &ack,
        next + epoch_ms + 1000,
        |_| SocketState::ListenerOnly,
        |_| 0,
    );
    assert_eq!(d.counter, Counter::BackendAckPassStale);
}

/// Found by the fuzzer (its oracle assumed replies never go to port 0): SPEC section 8 answers any
/// well-formed SYN to a protected service, source port 0 included, and the reply goes back to it.
#[test]
fn syn_from_source_port_zero_is_answered() {
    let mut e = engine();
    let f = frame(
        &SynSpec {
            sport: 0,
            ..SynSpec::default()
        },
        None,
    );
    let (v, c) = xdp(&mut e, &f);
    assert_eq!(c, Counter::SynAnswered);
    assert!(matches!(v, Verdict::Tx { .. }));
}

/// Auto mode in `Engine::xdp_at`: below the threshold a valid SYN passes untouched
/// (`auto_syn_pass`), above it the same SYN gets its cookie SYN+ACK; a bad SYN is still dropped
/// before the rate sees it; non-SYN segments are unaffected.
#[test]
fn auto_mode_passes_syns_until_the_rate_is_high() {
    const MS: u64 = 1_000_000;
    let t0 = NOW_MS * MS;
    let mut cfg = EngineConfig::new(all_services());
    cfg.auto = Some(synwall_engine::AutoConfig {
        rate_on: 1000,
        rate_off: 100,
        hold_ms: 500,
    });
    let mut e = Engine::new(cfg, salts());
    let syn = frame(&SynSpec::default(), None);
    let run = |e: &mut Engine, f: &[u8], now: u64| {
        let mut buf = f.to_vec();
        buf.resize(MAX_SYNACK_LEN.max(f.len()), 0);
        let d = e.xdp_at(&mut buf, f.len(), now);
        (d, buf[..f.len()].to_vec())
    };
    // A first SYN closes the boot-time window: 0/s, passed unchanged.
    let (d, out) = run(&mut e, &syn, t0);
    assert_eq!(
        (d.verdict, d.counter),
        (Verdict::Pass, Counter::AutoSynPass)
    );
    assert_eq!(out, syn, "a passed SYN is not modified");
    // A SYN with a bad checksum is dropped and not counted in the rate.
    let mut bad = syn.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let (d, _) = run(&mut e, &bad, t0 + MS);
    assert_eq!(d.counter, Counter::DropSynChecksum);
    assert_eq!(e.auto_state().window_syns(), 0);
    // 200 SYNs in the next 100 ms (2000/s): the one at t0 + 100 ms closes the window, on.
    for i in 1..200u64 {
        let (d, _) = run(&mut e, &syn, t0 + i * MS / 2);
        assert_eq!(d.counter, Counter::AutoSynPass, "SYN {i}");
    }
    let (d, _) = run(&mut e, &syn, t0 + 100 * MS);
    assert!(matches!(d.verdict, Verdict::Tx { .. }), "{d:?}");
    assert_eq!(d.counter, Counter::SynAnswered);
    assert_eq!(e.auto_state().rate, 2000);
    // Non-SYN traffic is forwarded as in default mode.
    let ack = frame(&SynSpec::default(), Some(1));
    let (d, _) = run(&mut e, &ack, t0 + 101 * MS);
    assert_eq!(d.counter, Counter::FwdNonSyn);
    // Quiet: a SYN 300 ms later measures 1/0.3 s (< off) but the hold (500 ms) has not passed;
    // one 700 ms after the last high window passes again.
    let (d, _) = run(&mut e, &syn, t0 + 400 * MS);
    assert_eq!(d.counter, Counter::SynAnswered);
    let (d, _) = run(&mut e, &syn, t0 + 800 * MS);
    assert_eq!(d.counter, Counter::AutoSynPass);
    let st = e.auto_state();
    assert_eq!(
        (st.switches_on, st.switches_off, st.cookies_on),
        (1, 1, false)
    );
    assert_eq!(e.counters().get(Counter::AutoSynPass), 201);
    assert_eq!(e.counters().get(Counter::SynAnswered), 2);
}

/// The backend counts exactly one counter per frame: for a valid handshake ACK the one the kfunc's
/// return value names (the kfunc called once, with the attributes of the verdict); for anything
/// else the decision's, without calling the kfunc.
#[test]
fn the_kfunc_result_is_counted_once() {
    let mut e = engine();
    let ack = handshake_ack(&mut e, &SynSpec::default());
    for (ret, want) in [
        (0, Counter::BackendReqskCreated),
        (-22, Counter::BackendKfuncEinval),
        (-12, Counter::BackendKfuncEnomem),
        (-101, Counter::BackendKfuncEnetunreach),
        (-7, Counter::BackendKfuncEother),
    ] {
        let before = e.counters().clone();
        let mut calls = Vec::new();
        let d = e.tc(
            &ack,
            NOW_MS,
            |_| SocketState::ListenerOnly,
            |attrs| {
                calls.push(*attrs);
                ret
            },
        );
        let BackendVerdict::AssignReqsk(attrs) = d.verdict else {
            panic!("{d:?}")
        };
        assert_eq!(calls, [attrs], "one call, with the verdict's attributes");
        assert_eq!(d.counter, want, "kfunc returned {ret}");
        assert_eq!(e.counters().total(), before.total() + 1);
        assert_eq!(e.counters().get(want), before.get(want) + 1);
    }
    for state in [SocketState::Connection, SocketState::None] {
        let before = e.counters().total();
        let d = e.tc(
            &ack,
            NOW_MS,
            |_| state,
            |_| panic!("kfunc called for {state:?}"),
        );
        assert_eq!(d.verdict, BackendVerdict::Pass);
        assert_eq!(e.counters().total(), before + 1);
    }
}
