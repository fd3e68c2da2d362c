//! The abuse controls of SPEC section 10 in the reference engine: the reflection budget per client
//! prefix and the node cap, the deny and allow lists, and the strict flow cache's probation and
//! protected segments with its budget of new flows.

use crate::common::*;
use synwall_engine::abuse::NS_PER_SECOND;
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{Budget, Counter, Engine, EngineConfig, Verdict};
use synwall_testkit::deploy::all_services;

fn at(e: &mut Engine, f: &[u8], now_ns: u64) -> (Verdict, Counter) {
    let mut buf = f.to_vec();
    buf.resize(MAX_SYNACK_LEN.max(f.len()), 0);
    // The budgets at `now_ns`; the salts at the tests' clock (mid-epoch).
    let d = e.xdp_clocks(&mut buf, f.len(), f.len(), now_ns, NOW_MS * 1_000_000);
    (d.verdict, d.counter)
}

fn counter(e: &mut Engine, f: &[u8], now_ns: u64) -> Counter {
    at(e, f, now_ns).1
}

fn syn_from(src4: [u8; 4], sport: u16) -> Vec<u8> {
    frame(
        &SynSpec {
            src4,
            sport,
            ..SynSpec::default()
        },
        None,
    )
}

fn syn6_from(src6: &str, sport: u16) -> Vec<u8> {
    let a: std::net::Ipv6Addr = src6.parse().unwrap();
    frame(
        &SynSpec {
            v6: true,
            src6: a.octets(),
            sport,
            ..SynSpec::default()
        },
        None,
    )
}

const T0: u64 = 1_000 * NS_PER_SECOND;

#[test]
fn reflection_budget_limits_each_client_prefix() {
    let mut cfg = EngineConfig::new(all_services());
    cfg.budget = Some(Budget { rate: 10, burst: 5 });
    let mut e = Engine::new(cfg, salts());
    // A victim /24: the burst is answered whatever the host and port, then nothing.
    let mut answered = 0;
    for i in 0..40u16 {
        match counter(
            &mut e,
            &syn_from([203, 0, 113, (i % 250) as u8], 1000 + i),
            T0,
        ) {
            Counter::SynAnswered => answered += 1,
            Counter::DropSynBudget => {}
            c => panic!("{c:?}"),
        }
    }
    assert_eq!(answered, 5);
    // Another /24 is untouched, and so is an IPv6 /48 (and another /48 beside it).
    assert_eq!(
        counter(&mut e, &syn_from([203, 0, 114, 1], 1), T0),
        Counter::SynAnswered
    );
    for _ in 0..5 {
        assert_eq!(
            counter(&mut e, &syn6_from("2001:db8:7:1::1", 2), T0),
            Counter::SynAnswered
        );
    }
    assert_eq!(
        counter(&mut e, &syn6_from("2001:db8:7:ffff::9", 2), T0),
        Counter::DropSynBudget,
        "the same /48"
    );
    assert_eq!(
        counter(&mut e, &syn6_from("2001:db8:8::1", 2), T0),
        Counter::SynAnswered
    );
    // It refills at the rate: one per 100 ms.
    let victim = syn_from([203, 0, 113, 9], 9);
    assert_eq!(
        counter(&mut e, &victim, T0 + 99_000_000),
        Counter::DropSynBudget
    );
    assert_eq!(
        counter(&mut e, &victim, T0 + 100_000_000),
        Counter::SynAnswered
    );
    assert_eq!(
        counter(&mut e, &victim, T0 + 100_000_000),
        Counter::DropSynBudget
    );
    // Over 10 s of a steady flood at 1000/s the prefix gets 10/s (plus what was left).
    let mut n = 0;
    for ms in 1..=10_000u64 {
        if counter(&mut e, &victim, T0 + NS_PER_SECOND + ms * 1_000_000) == Counter::SynAnswered {
            n += 1;
        }
    }
    assert!((100..=105).contains(&n), "{n}");
    let key = e
        .config()
        .client_prefix
        .key(&"203.0.113.0".parse().unwrap());
    let st = e.budgets().peek(&key).expect("a bucket for the victim");
    assert!(st.drops > 9_000, "{st:?}");
    assert_eq!(st.last_drop_ns, T0 + NS_PER_SECOND + 10_000 * 1_000_000);
    // Invalid SYNs take nothing from the budget.
    let mut bad = syn_from([198, 18, 0, 1], 5);
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    for _ in 0..10 {
        assert_eq!(counter(&mut e, &bad, T0), Counter::DropSynChecksum);
    }
    assert_eq!(
        counter(&mut e, &syn_from([198, 18, 0, 1], 5), T0),
        Counter::SynAnswered
    );
}

#[test]
fn the_default_budget_is_on_and_off_means_off() {
    let mut e = Engine::new(EngineConfig::new(all_services()), salts());
    let n = (0..2500)
        .filter(|&i| counter(&mut e, &syn_from([192, 0, 2, 7], i), T0) == Counter::SynAnswered)
        .count();
    assert_eq!(n, 2000, "default burst 2000");
    let mut cfg = EngineConfig::new(all_services());
    cfg.budget = None;
    let mut e = Engine::new(cfg, salts());
    assert!((0..2500)
        .all(|i| counter(&mut e, &syn_from([192, 0, 2, 7], i), T0) == Counter::SynAnswered));
}

#[test]
fn node_cap_counts_what_the_prefixes_let_through() {
    let mut cfg = EngineConfig::new(all_services());
    cfg.budget = Some(Budget { rate: 1, burst: 2 });
    cfg.node_budget = Some(Budget { rate: 1, burst: 5 });
    let mut e = Engine::new(cfg, salts());
    // One prefix over its own budget takes nothing from the node: 2 answered, 3 left.
    let seen: Vec<Counter> = (0..6)
        .map(|i| counter(&mut e, &syn_from([10, 0, 0, 1], i), T0))
        .collect();
    assert_eq!(seen[..2], [Counter::SynAnswered; 2]);
    assert_eq!(seen[2..], [Counter::DropSynBudget; 4]);
    let seen: Vec<Counter> = (1..=5u8)
        .map(|p| counter(&mut e, &syn_from([10, 0, p, 1], 7), T0))
        .collect();
    assert_eq!(
        seen,
        [
            Counter::SynAnswered,
            Counter::SynAnswered,
            Counter::SynAnswered,
            Counter::DropSynNodeCap,
            Counter::DropSynNodeCap
        ]
    );
    assert_eq!(e.node_bucket().drops, 2);
}

#[test]
fn allow_list_is_exempt_and_deny_list_drops_everything() {
    let mut cfg = EngineConfig::new(all_services());
    cfg.budget = Some(Budget { rate: 1, burst: 1 });
    cfg.node_budget = Some(Budget { rate: 1, burst: 1 });
    cfg.lists.allow = vec![
        "198.18.0.0/15".parse().unwrap(),
        "2001:db8:aa::/48".parse().unwrap(),
    ];
    cfg.lists.deny = vec![
        "198.18.5.0/24".parse().unwrap(),
        "192.0.2.66/32".parse().unwrap(),
    ];
    let mut e = Engine::new(cfg, salts());
    // Allowed: every SYN answered, its own counter, and the budgets untouched.
    for i in 0..50 {
        assert_eq!(
            at(&mut e, &syn_from([198, 19, 1, 2], i), T0).1,
            Counter::SynAnsweredAllowed
        );
        assert_eq!(
            counter(&mut e, &syn6_from("2001:db8:aa::5", i), T0),
            Counter::SynAnsweredAllowed
        );
    }
    assert_eq!(e.budgets().len(), 0);
    assert_eq!(
        counter(&mut e, &syn_from([198, 20, 0, 1], 1), T0),
        Counter::SynAnswered,
        "the node cap's one"
    );
    assert_eq!(
        counter(&mut e, &syn_from([198, 21, 0, 1], 1), T0),
        Counter::DropSynNodeCap
    );
    // Denied: SYNs, ACKs and data, even inside an allowed prefix (deny wins); the host beside
    // a denied /32 is not.
    let spec = SynSpec {
        src4: [198, 18, 5, 9],
        ..SynSpec::default()
    };
    let data = frame(
        &SynSpec {
            payload: b"hello".to_vec(),
            ..spec.clone()
        },
        Some(12345),
    );
    for f in [frame(&spec, None), frame(&spec, Some(1)), data] {
        assert_eq!(at(&mut e, &f, T0), (Verdict::Drop, Counter::DropDenied));
    }
    assert_eq!(
        counter(&mut e, &syn_from([192, 0, 2, 66], 1), T0),
        Counter::DropDenied
    );
    assert_eq!(
        counter(&mut e, &frame(&SynSpec::default(), Some(1)), T0),
        Counter::FwdNonSyn,
        "192.0.2.10 is not denied"
    );
    // Traffic to what is not protected is not ours to judge.
    let mut cfg = EngineConfig::new(synwall_engine::ServiceSet::new(vec!["198.51.100.80/32:80"
        .parse()
        .unwrap()]));
    cfg.lists.deny = vec!["0.0.0.0/0".parse().unwrap()];
    let mut e = Engine::new(cfg, salts());
    assert_eq!(
        counter(&mut e, &syn_from([1, 2, 3, 4], 1), T0),
        Counter::PassUnprotected
    );
}

/// A flow through a strict engine: its handshake ACK and a data segment after it.
struct Flow {
    ack: Vec<u8>,
    data: Vec<u8>,
    pure_ack: Vec<u8>,
}

fn flow(e: &mut Engine, src4: [u8; 4], sport: u16) -> Flow {
    let s = SynSpec {
        src4,
        sport,
        ts: None,
        ..SynSpec::default()
    };
    let ack = handshake_ack(e, &s);
    let later = SynSpec {
        isn: s.isn.wrapping_add(1),
        mss: None,
        wscale: None,
        sack: false,
        ts: None,
        ..s.clone()
    };
    Flow {
        ack,
        data: frame(
            &SynSpec {
                payload: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
                ..later.clone()
            },
            Some(99),
        ),
        pure_ack: frame(&later, Some(12_345)),
    }
}

fn strict(flow_cache: usize, promoted_cache: usize) -> Engine {
    let mut cfg = EngineConfig::new(all_services());
    cfg.strict = true;
    cfg.flow_cache = flow_cache;
    cfg.promoted_cache = promoted_cache;
    cfg.flow_budget = None;
    cfg.budget = None;
    Engine::new(cfg, salts())
}

/// The cache-flushing attack: an idle real flow that carried data, then many completed
/// handshakes (each ACK sent twice, so each looks active). Returns what the real flow's next
/// segment is counted as.
fn flush_attack(e: &mut Engine) -> Counter {
    let real = flow(e, [192, 0, 2, 10], 40000);
    assert_eq!(counter(e, &real.ack, T0), Counter::StrictAckValid);
    let first = counter(e, &real.data, T0);
    assert!(
        matches!(first, Counter::StrictFwdPromoted | Counter::StrictFwdCached),
        "{first:?}"
    );
    for i in 0..300u32 {
        let a = flow(
            e,
            [10, 9, (i / 250) as u8, (i % 250) as u8],
            1024 + i as u16,
        );
        assert_eq!(counter(e, &a.ack, T0), Counter::StrictAckValid);
        assert_eq!(counter(e, &a.ack, T0), Counter::StrictFwdCached);
    }
    counter(e, &real.pure_ack, T0)
}

#[test]
fn promoted_flows_survive_a_flood_of_new_flows() {
    // Probation holds 64 flows: the attack's 300 go through it; the real flow was promoted.
    let mut e = strict(64, 64);
    assert_eq!(flush_attack(&mut e), Counter::StrictFwdCached);
    // The same attack on one LRU for everything (no protected segment) evicts it.
    let mut old = strict(64, 0);
    assert_eq!(flush_attack(&mut old), Counter::StrictDrop);
}

#[test]
fn promotion_takes_data_after_the_handshake() {
    let mut e = strict(16, 16);
    let f = flow(&mut e, [192, 0, 2, 10], 40000);
    let key = {
        let g = flow(&mut e, [192, 0, 2, 10], 40000);
        assert_eq!(g.ack, f.ack);
        synwall_cookie::Flow {
            addrs: synwall_cookie::Addrs::V4 {
                client: [192, 0, 2, 10],
                service: SynSpec::default().dst4,
            },
            client_port: 40000,
            service_port: 443,
        }
    };
    assert_eq!(counter(&mut e, &f.ack, T0), Counter::StrictAckValid);
    assert!(e.is_on_probation(&key) && !e.is_promoted(&key));
    // Pure ACKs do not promote; the ACK again neither.
    assert_eq!(counter(&mut e, &f.pure_ack, T0), Counter::StrictFwdCached);
    assert_eq!(counter(&mut e, &f.ack, T0), Counter::StrictFwdCached);
    assert!(e.is_on_probation(&key));
    // The first data segment does, once.
    assert_eq!(counter(&mut e, &f.data, T0), Counter::StrictFwdPromoted);
    assert!(e.is_promoted(&key) && !e.is_on_probation(&key));
    assert_eq!(counter(&mut e, &f.data, T0), Counter::StrictFwdCached);
    assert_eq!(counter(&mut e, &f.pure_ack, T0), Counter::StrictFwdCached);
    // Promoted flows evict only each other (least recently used first).
    let mut e = strict(16, 2);
    let flows: Vec<Flow> = (0..3)
        .map(|i| flow(&mut e, [192, 0, 2, 20 + i], 50000))
        .collect();
    for f in &flows {
        assert_eq!(counter(&mut e, &f.ack, T0), Counter::StrictAckValid);
        assert_eq!(counter(&mut e, &f.data, T0), Counter::StrictFwdPromoted);
    }
    assert_eq!(counter(&mut e, &flows[0].pure_ack, T0), Counter::StrictDrop);
    assert_eq!(
        counter(&mut e, &flows[2].pure_ack, T0),
        Counter::StrictFwdCached
    );
}

#[test]
fn flow_budget_limits_new_flows_per_client_prefix() {
    let mut cfg = EngineConfig::new(all_services());
    cfg.strict = true;
    cfg.budget = None;
    cfg.flow_budget = Some(Budget { rate: 1, burst: 3 });
    cfg.lists.allow = vec!["192.0.2.128/25".parse().unwrap()];
    let mut e = Engine::new(cfg, salts());
    let seen: Vec<Counter> = (0..5u16)
        .map(|i| {
            let f = flow(&mut e, [203, 0, 113, i as u8], 1000 + i);
            counter(&mut e, &f.ack, T0)
        })
        .collect();
    assert_eq!(seen[..3], [Counter::StrictAckValid; 3]);
    assert_eq!(seen[3..], [Counter::DropFlowBudget; 2]);
    // Refused, the flow is not cached: its first data segment (which validates like the ACK:
    // seq = ISN + 1, ack = cookie + 1) is the retry, admitted once the budget has refilled.
    let f = flow(&mut e, [203, 0, 113, 9], 2000);
    assert_eq!(counter(&mut e, &f.ack, T0), Counter::DropFlowBudget);
    let retry = frame(
        &SynSpec {
            src4: [203, 0, 113, 9],
            sport: 2000,
            isn: SynSpec::default().isn.wrapping_add(1),
            mss: None,
            wscale: None,
            sack: false,
            ts: None,
            payload: b"x".to_vec(),
            ..SynSpec::default()
        },
        Some(u32::from_be_bytes(f.ack[42..46].try_into().unwrap())),
    );
    assert_eq!(counter(&mut e, &retry, T0), Counter::DropFlowBudget);
    assert_eq!(
        counter(&mut e, &retry, T0 + NS_PER_SECOND),
        Counter::StrictAckValid
    );
    // Another prefix has its own budget; the allow list is exempt.
    let g = flow(&mut e, [203, 0, 114, 1], 1);
    assert_eq!(counter(&mut e, &g.ack, T0), Counter::StrictAckValid);
    for i in 0..10u16 {
        let a = flow(&mut e, [192, 0, 2, 200], 3000 + i);
        assert_eq!(counter(&mut e, &a.ack, T0), Counter::StrictAckValid);
    }
}
