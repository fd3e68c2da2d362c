//! Replacing the deny and allow lists (and the budgets) on a loaded edge while it runs: after
//! every replacement the real program decides exactly as the engine's lists say, and while one
//! thread replaces them again and again, a prober that sends SYNs from a prefix every
//! configuration denies, and from one every configuration allows, never sees another decision.
//!
//! Needs root (CI=true: fail, else skip with a message).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use synwall_bpf::{DataPath, Edge, LoadOptions};
use synwall_engine::{Budget, ClientLists, Counter, Prefix};
use synwall_testkit::prelude::*;

/// Prefixes the random lists draw from: nested ones, both families, some containing the probes.
const POOL: [&str; 12] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.2.3.128/25",
    "10.3.0.0/16",
    "192.168.0.0/16",
    "0.0.0.0/0",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "2001:db8:1:2::/64",
    "2001:db8:2:3::8000/113",
    "::/0",
];

/// Denied by every configuration of the race: a host inside prefixes the random lists allow.
const DENIED: [&str; 2] = ["10.1.2.3", "2001:db8:1:2::3"];
/// Allowed by every configuration of the race, denied by none.
const ALLOWED: [&str; 2] = ["10.2.3.4", "2001:db8:2:3::4"];

fn prefixes(v: &[&str]) -> Vec<Prefix> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn random_lists(rng: &mut SmallRng) -> ClientLists {
    let mut pick = |p: f64| -> Vec<Prefix> {
        POOL.iter()
            .filter(|_| rng.gen_bool(p))
            .map(|s| s.parse().unwrap())
            .collect()
    };
    ClientLists {
        deny: pick(0.25),
        allow: pick(0.35),
    }
}

fn syn_from(src: &str, sport: u16) -> Vec<u8> {
    let src: IpAddr = src.parse().unwrap();
    let dst: IpAddr = if src.is_ipv4() {
        "198.51.100.7".parse().unwrap()
    } else {
        "2001:db8:1::80".parse().unwrap()
    };
    Frame::new(src, dst, sport, 443, SYN).build()
}

/// Every probe through the program after every replacement: the counter the lists call for.
#[test]
fn lists_replaced_in_place_match_the_engine() {
    let Some(edge) = or_skip("lists reload", Edge::load(&LoadOptions::default())) else {
        return;
    };
    edge.set_salts(&salts()).unwrap();
    let mut rng = SmallRng::seed_from_u64(0x11575);
    let probes = [
        "10.1.2.3",
        "10.1.9.9",
        "10.2.3.200",
        "10.2.3.4",
        "10.3.4.5",
        "172.16.0.1",
        "2001:db8:1:2::3",
        "2001:db8:1:5::1",
        "2001:db8:2:3::8001",
        "2001:db9::1",
    ];
    for round in 0..150 {
        let mut cfg = config();
        cfg.lists = if round % 10 == 9 {
            ClientLists::default()
        } else {
            random_lists(&mut rng)
        };
        cfg.budget = None;
        edge.configure(&cfg).unwrap();
        assert_eq!(
            edge.client_entries().unwrap(),
            synwall_bpf::abuse::client_entries(&cfg.lists),
            "round {round}"
        );
        for (i, p) in probes.iter().enumerate() {
            let before = edge.counters().unwrap();
            edge.test_run(&syn_from(p, 1000 + i as u16)).unwrap();
            let got = single_increment(&before, &edge.counters().unwrap()).unwrap();
            let c = cfg.lists.classify(&p.parse().unwrap());
            let want = if c.denied {
                Counter::DropDenied
            } else if c.allowed {
                Counter::SynAnsweredAllowed
            } else {
                Counter::SynAnswered
            };
            assert_eq!(
                got, want,
                "round {round}: {p} counted {got:?} ({:?})",
                cfg.lists
            );
        }
    }
    // Too many prefixes for the trie: refused before anything changes.
    let small = LoadOptions {
        max_client_prefixes: 4,
        ..LoadOptions::default()
    };
    let Some(tiny) = or_skip("lists reload", Edge::load(&small)) else {
        return;
    };
    let mut cfg = config();
    cfg.lists.deny = prefixes(&["10.0.0.0/8", "10.1.0.0/16"]);
    tiny.configure(&cfg).unwrap();
    let live = tiny.client_entries().unwrap();
    cfg.lists.allow = prefixes(&["10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16"]);
    let e = tiny.configure(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("5 distinct deny and allow prefixes, the map holds 4"),
        "{e}"
    );
    assert_eq!(tiny.client_entries().unwrap(), live);
    assert_eq!(tiny.config().unwrap().lists, synwall_bpf::abuse::LIST_DENY);
}

/// A prefix listed in every configuration is never seen unlisted while the lists (and the
/// budgets) are replaced under a running program.
#[test]
fn listed_prefixes_stay_listed_during_replacements() {
    let Some(edge) = or_skip("lists reload race", Edge::load(&LoadOptions::default())) else {
        return;
    };
    edge.set_salts(&salts()).unwrap();
    // The probes stay listed, but through prefixes that come and go: their longest match
    // changes from one configuration to the next, which is where a careless order would show
    // them unlisted for a moment.
    let some_of = |rng: &mut SmallRng, v: &[&str]| -> Vec<Prefix> {
        let first = rng.gen_range(0..v.len());
        v.iter()
            .enumerate()
            .filter(|&(i, _)| i == first || rng.gen_bool(0.4))
            .map(|(_, s)| s.parse().unwrap())
            .collect()
    };
    let always = |rng: &mut SmallRng, mut l: ClientLists| {
        l.deny
            .retain(|p| ALLOWED.iter().all(|a| !p.contains(&a.parse().unwrap())));
        l.deny
            .extend(some_of(rng, &["10.1.2.3/32", "10.1.2.0/24", "10.1.0.0/16"]));
        l.deny.extend(some_of(
            rng,
            &[
                "2001:db8:1:2::3/128",
                "2001:db8:1:2::/64",
                "2001:db8:1::/48",
            ],
        ));
        l.allow
            .extend(some_of(rng, &["10.2.0.0/16", "10.2.3.0/24", "10.2.3.0/28"]));
        l.allow.extend(some_of(
            rng,
            &["2001:db8:2::/48", "2001:db8:2:3::/64", "2001:db8:2:3::/120"],
        ));
        l
    };
    let budgets = [
        Some(Budget { rate: 1, burst: 1 }),
        None,
        Some(Budget {
            rate: 100,
            burst: 3,
        }),
    ];
    let mut rng = SmallRng::seed_from_u64(0xdead);
    let mut cfg = config();
    cfg.lists = always(&mut rng, ClientLists::default());
    cfg.budget = budgets[0];
    edge.configure(&cfg).unwrap();
    let stop = AtomicBool::new(false);
    let frames: Vec<(Vec<u8>, Counter)> = DENIED
        .iter()
        .map(|a| (syn_from(a, 4000), Counter::DropDenied))
        .chain(
            ALLOWED
                .iter()
                .map(|a| (syn_from(a, 5000), Counter::SynAnsweredAllowed)),
        )
        .collect();
    let (sent, wrong) = std::thread::scope(|s| {
        let prober = s.spawn(|| {
            // Runs in batches, the counters read once a batch: each batch must have counted
            // exactly what its frames call for.
            const BATCH: u64 = 16;
            let (mut sent, mut wrong) = (0u64, Vec::new());
            let mut before = edge.counters().unwrap();
            let mut want = synwall_engine::Counters::default();
            for (_, c) in &frames {
                want.set(*c, want.get(*c) + BATCH);
            }
            while !stop.load(Ordering::Relaxed) {
                for (f, _) in &frames {
                    for _ in 0..BATCH {
                        edge.test_run(f).unwrap();
                    }
                }
                let after = edge.counters().unwrap();
                let got: Vec<(Counter, u64)> = after
                    .iter()
                    .map(|(c, v)| (c, v - before.get(c)))
                    .filter(|(_, d)| *d > 0)
                    .collect();
                let expected: Vec<(Counter, u64)> = want.iter().filter(|(_, v)| *v > 0).collect();
                if got != expected {
                    wrong.push(got);
                }
                before = after;
                sent += BATCH * frames.len() as u64;
            }
            (sent, wrong)
        });
        for i in 0..400 {
            let mut c = config();
            let noise = random_lists(&mut rng);
            c.lists = always(&mut rng, noise);
            c.budget = budgets[i % budgets.len()];
            c.node_budget = (i % 2 == 0).then_some(Budget { rate: 1, burst: 1 });
            edge.configure(&c).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        prober.join().unwrap()
    });
    eprintln!(
        "{sent} SYNs from always-listed prefixes during 400 replacements, {} batches counted \
         otherwise",
        wrong.len()
    );
    assert!(sent > 400, "only {sent} SYNs sent");
    assert!(wrong.is_empty(), "{wrong:?}");
}
