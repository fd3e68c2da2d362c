//! Replacing the protected services on a loaded edge, again and again, with a port-set map of
//! only 6 slots: after every replacement the real program answers exactly the SYNs the engine's
//! `ServiceSet::is_protected` says; a replacement that does not fit beside the live port sets is
//! refused and leaves the previous services in force.
//!
//! Needs root (CI=true: fail, else skip with a message).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::IpAddr;
use synwall_bpf::{DataPath, Edge, LoadOptions};
use synwall_engine::{Counter, EngineConfig, Service, ServiceSet};
use synwall_testkit::prelude::*;

const PREFIXES: [&str; 5] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.168.0.0/16",
    "[2001:db8::/32]",
    "[2001:db8:1::/48]",
];
const PORTS: [&str; 5] = ["22", "80", "443", "8000-8100", "1-1023"];
const PROBE_ADDRS: [&str; 7] = [
    "10.1.2.3",
    "10.2.3.4",
    "192.168.1.1",
    "172.16.0.1",
    "2001:db8:1::5",
    "2001:db8:2::5",
    "2001:dead::1",
];
const PROBE_PORTS: [u16; 6] = [22, 80, 443, 8050, 1000, 9999];

fn random_set(rng: &mut SmallRng) -> ServiceSet {
    let n = rng.gen_range(1..=5);
    let services: Vec<Service> = (0..n)
        .map(|_| {
            let p = PREFIXES[rng.gen_range(0..PREFIXES.len())];
            let ports: Vec<&str> = (0..rng.gen_range(1..=2))
                .map(|_| PORTS[rng.gen_range(0..PORTS.len())])
                .collect();
            format!("{p}:{}", ports.join(",")).parse().unwrap()
        })
        .collect();
    ServiceSet::new(services)
}

/// Every probe SYN through the program: answered iff `set` protects it.
fn check(edge: &Edge, set: &ServiceSet, round: usize) {
    for a in PROBE_ADDRS {
        let addr: IpAddr = a.parse().unwrap();
        let client: IpAddr = if addr.is_ipv4() {
            "198.18.0.1".parse().unwrap()
        } else {
            "2001:db8:ffff::1".parse().unwrap()
        };
        for port in PROBE_PORTS {
            let before = edge.counters().unwrap();
            edge.test_run(&Frame::new(client, addr, 40000, port, SYN).build())
                .unwrap();
            let got = single_increment(&before, &edge.counters().unwrap()).unwrap();
            let want = if set.is_protected(&addr, port) {
                Counter::SynAnswered
            } else {
                Counter::PassUnprotected
            };
            assert_eq!(
                got,
                want,
                "round {round}: SYN to {a} port {port} counted {}, want {} ({set:?})",
                got.name(),
                want.name()
            );
        }
    }
}

#[test]
fn services_replaced_in_place_match_the_engine() {
    let opts = LoadOptions {
        max_port_sets: 6,
        ..LoadOptions::default()
    };
    let Some(edge) = or_skip("services reload", Edge::load(&opts)) else {
        return;
    };
    edge.set_salts(&salts()).unwrap();
    let mut rng = SmallRng::seed_from_u64(0x5e7);
    let mut live: Option<ServiceSet> = None;
    let (mut applied, mut refused) = (0, 0);
    for round in 0..60 {
        let set = random_set(&mut rng);
        let cfg = EngineConfig::new(set.clone());
        match edge.configure(&cfg) {
            Ok(()) => {
                applied += 1;
                live = Some(set);
            }
            Err(e) => {
                assert!(
                    e.to_string().contains("port-set slot"),
                    "round {round}: {e}"
                );
                assert!(live.is_some(), "the first configuration must fit: {e}");
                refused += 1;
            }
        }
        check(&edge, live.as_ref().unwrap(), round);
    }
    eprintln!("{applied} replacements applied, {refused} refused for want of free slots");
    assert!(applied > 30, "only {applied} applied");
}

/// While one thread replaces the services again and again (10.0.0.0/8:80 in every set, the rest
/// shuffled, so port sets move between slots), another sends SYNs to 10.2.3.4:80 through the
/// program: every one is answered. Rewriting a slot a live entry still names would let some pass
/// unprotected in between.
#[test]
fn a_service_in_every_set_stays_protected_during_replacements() {
    let Some(edge) = or_skip("services reload race", Edge::load(&LoadOptions::default())) else {
        return;
    };
    edge.set_salts(&salts()).unwrap();
    let always: Service = "10.0.0.0/8:80".parse().unwrap();
    // Thousands of SYNs from one client: without the reflection budget, which would cut them.
    let unlimited = |set: ServiceSet| EngineConfig {
        budget: None,
        ..EngineConfig::new(set)
    };
    edge.configure(&unlimited(ServiceSet::new(vec![always.clone()])))
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let frame = Frame::new(
        "198.18.0.1".parse().unwrap(),
        "10.2.3.4".parse().unwrap(),
        40000,
        80,
        SYN,
    )
    .build();
    let (sent, wrong) = std::thread::scope(|s| {
        let prober = s.spawn(|| {
            let (mut sent, mut wrong) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = edge.test_run(&frame).unwrap();
                sent += 1;
                if out.retval != 3 {
                    wrong += 1;
                }
            }
            (sent, wrong)
        });
        let mut rng = SmallRng::seed_from_u64(0xace);
        for _ in 0..400 {
            let mut list: Vec<Service> = random_set(&mut rng).services().to_vec();
            list.insert(rng.gen_range(0..=list.len()), always.clone());
            edge.configure(&unlimited(ServiceSet::new(list))).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        prober.join().unwrap()
    });
    eprintln!("{sent} SYNs during 400 replacements, {wrong} not answered");
    assert!(sent > 1000, "only {sent} SYNs sent");
    assert_eq!(
        wrong, 0,
        "{wrong} of {sent} SYNs were not answered (XDP_TX)"
    );
}
