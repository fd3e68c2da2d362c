//! Fuzz the whole packet path: any bytes as a frame through the edge (XDP, default and strict; as
//! one buffer and as a multi-buffer frame whose first buffer ends where the input's first byte
//! says) and the backend (tc, with skbs as a test run gives them and as a lower device with a
//! trusted checksum and a tag in the metadata gives them). No panic, exactly one counter per
//! frame, and every answer is a SYN+ACK our own parser accepts with valid checksums, never to a
//! SYN whose segment is not all in the first buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_engine::parse::{parse, Parsed};
use synwall_engine::services::PortRange;
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{
    Engine, EngineConfig, Salts, Service, ServiceSet, Skb, SkbCsum, SocketState, Verdict,
};

fn services() -> ServiceSet {
    ServiceSet::new(vec![
        "0.0.0.0/0:1-65535".parse::<Service>().unwrap(),
        "[::/0]:1-65535".parse::<Service>().unwrap(),
    ])
}

/// Every address and every port, 0 included: a SYN from source port 0 is answered (SPEC does not
/// exclude it), so its reply goes to port 0.
fn everything() -> ServiceSet {
    let mut all = services().services().to_vec();
    for s in &mut all {
        s.ports = vec![PortRange {
            first: 0,
            last: 65535,
        }];
    }
    ServiceSet::new(all)
}

/// The middle of epoch 5 of 60 s (the salts' epoch), milliseconds: SYNs are answered.
const NOW_MS: u64 = 5 * 60_000 + 30_000;

fuzz_target!(|data: &[u8]| {
    let keys = EpochKeys::derive(&MasterSecret([1; 32]), 5);
    for strict in [false, true] {
        let mut cfg = EngineConfig::new(services());
        cfg.strict = strict;
        cfg.flow_cache = 4;
        let mut e = Engine::new(cfg, Salts::from_keys(&keys, 60));
        let first = match data.first() {
            Some(&b) if b & 1 == 1 => (14 + b as usize).min(data.len()),
            _ => data.len(),
        };
        let mut buf = data.to_vec();
        buf.resize(data.len().max(MAX_SYNACK_LEN), 0);
        let d = e.xdp_frags(&mut buf, data.len(), first, NOW_MS);
        assert_eq!(e.counters().total(), 1);
        if let Verdict::Tx { len } = d.verdict {
            match parse(&data[..], &services()) {
                Parsed::Tcp(t) => assert!(t.end <= first, "answered past the first buffer"),
                other => panic!("answered a frame that does not parse: {other:?}"),
            }
            match parse(&buf[..len], &everything()) {
                Parsed::Tcp(t) => assert!(t.checksums_ok(&buf[..len])),
                other => panic!("reply does not parse: {other:?}"),
            }
        }
        for state in [
            SocketState::ListenerOnly,
            SocketState::Connection,
            SocketState::None,
        ] {
            let _ = e.tc(data, NOW_MS, |_| state, |_| 0);
            let lower = Skb {
                vlan_present: true,
                csum: SkbCsum::Unnecessary,
                ..Skb::of_frame(data)
            };
            let _ = e.tc_skb(data, lower, NOW_MS, |_| state, |_| 0);
        }
    }
});
