//! Per-packet cost of the reference engine: SYN answered (IPv4, IPv6, VLAN), established segment
//! forwarded in default mode (no MAC), strict mode (cached flow; handshake ACK validated), and the
//! backend's ACK validation.
//!
//! `cargo bench -p synwall-engine --bench engine`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::net::IpAddr;
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{Engine, EngineConfig, Salts, Service, ServiceSet, SocketState, Verdict};
use synwall_testkit::frame::{
    linux_syn_options_ts, opt_ts, opts_bytes, stack, tsval_of, Frame, ACK, SYN,
};

/// The middle of epoch 1000 of 60 s (the salts' epoch), milliseconds.
const NOW: u64 = 1000 * 60_000 + 30_000;

fn salts() -> Salts {
    Salts::from_keys(&EpochKeys::derive(&MasterSecret([3; 32]), 1000), 60)
}

fn services() -> ServiceSet {
    ServiceSet::new(vec![
        "198.51.100.0/24:80,443".parse::<Service>().unwrap(),
        "[2001:db8:1::/64]:443".parse::<Service>().unwrap(),
    ])
}

fn engine(strict: bool) -> Engine {
    let mut cfg = EngineConfig::new(services());
    cfg.strict = strict;
    Engine::new(cfg, salts())
}

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [198, 51, 100, 1];

/// A Linux-like SYN (MSS, SACK, timestamps, window scale) to port 443.
fn syn_seg(v6: bool, vlan: bool) -> Frame {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8:2::1".parse().unwrap(),
            "2001:db8:1::1".parse().unwrap(),
        )
    } else {
        (SRC4.into(), DST4.into())
    };
    Frame {
        vlans: if vlan { stack(&[7]) } else { Vec::new() },
        traffic_class: 0,
        flow_label: 0,
        seq: 7,
        options: linux_syn_options_ts(12345),
        ..Frame::new(src, dst, 40000, 443, SYN)
    }
}

fn syn(v6: bool, vlan: bool) -> Vec<u8> {
    syn_seg(v6, vlan).build()
}

/// An IPv4 segment of the flow after its handshake: `flags`, timestamps, `payload`.
fn segment(sport: u16, ack: u32, tsecr: u32, payload: Vec<u8>) -> Vec<u8> {
    Frame {
        seq: 8,
        ack,
        window: 501,
        options: opts_bytes(&[vec![1, 1], opt_ts(5, tsecr)]),
        payload,
        ..Frame::new(SRC4.into(), DST4.into(), sport, 443, ACK)
    }
    .build()
}

fn data_segment() -> Vec<u8> {
    segment(40000, 99, 6, vec![0u8; 1200])
}

/// The handshake ACK for `syn` answered by `e`.
fn ack_for(e: &mut Engine, syn: &[u8]) -> Vec<u8> {
    ack_for_port(e, syn, 40000)
}

fn ack_for_port(e: &mut Engine, syn: &[u8], sport: u16) -> Vec<u8> {
    let mut buf = syn.to_vec();
    buf.resize(MAX_SYNACK_LEN.max(syn.len()), 0);
    let Verdict::Tx { len } = e.xdp(&mut buf, syn.len(), NOW).verdict else {
        panic!()
    };
    let tsval = tsval_of(&buf[..len]).unwrap();
    let seq = u32::from_be_bytes(buf[38..42].try_into().unwrap());
    segment(sport, seq.wrapping_add(1), tsval, Vec::new())
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in [
        ("syn_ipv4", syn(false, false)),
        ("syn_ipv4_vlan", syn(false, true)),
        ("syn_ipv6", syn(true, false)),
    ] {
        let mut e = engine(false);
        let mut buf = vec![0u8; MAX_SYNACK_LEN.max(frame.len())];
        g.bench_function(name, |b| {
            b.iter(|| {
                buf[..frame.len()].copy_from_slice(&frame);
                black_box(e.xdp(&mut buf, frame.len(), NOW))
            })
        });
    }
    let data = data_segment();
    let mut buf = vec![0u8; data.len()];
    let mut e = engine(false);
    buf.copy_from_slice(&data);
    // Forwarding never writes the frame, so no copy per iteration.
    g.bench_function("established_default", |b| {
        b.iter(|| black_box(e.xdp(black_box(&mut buf), data.len(), NOW)))
    });
    let mut e = engine(true);
    let ack = ack_for(&mut e, &syn(false, false));
    let mut abuf = ack.clone();
    // Two flows through a one-entry cache: every ACK misses, is validated and evicts the other.
    let mut cfg = EngineConfig::new(services());
    cfg.strict = true;
    cfg.flow_cache = 1;
    let mut small = Engine::new(cfg, salts());
    let syn2 = Frame {
        sport: 40001,
        ..syn_seg(false, false)
    }
    .build();
    let acks = [
        ack_for(&mut small, &syn(false, false)),
        ack_for_port(&mut small, &syn2, 40001),
    ];
    let mut i = 0;
    g.bench_function("strict_handshake_ack", |b| {
        b.iter(|| {
            i ^= 1;
            abuf.copy_from_slice(&acks[i]);
            let d = small.xdp(&mut abuf, acks[i].len(), NOW);
            debug_assert_eq!(d.verdict, Verdict::Pass);
            black_box(d)
        })
    });
    assert_eq!(e.xdp(&mut abuf, ack.len(), NOW).verdict, Verdict::Pass);
    abuf.copy_from_slice(&ack);
    g.bench_function("strict_established_cached", |b| {
        b.iter(|| black_box(e.xdp(black_box(&mut abuf), ack.len(), NOW)))
    });
    let mut be = engine(false);
    g.bench_function("backend_ack_validate", |b| {
        b.iter(|| black_box(be.tc(black_box(&ack), NOW, |_| SocketState::ListenerOnly, |_| 0)))
    });
    g.bench_function("backend_established", |b| {
        b.iter(|| black_box(be.tc(black_box(&data), NOW, |_| SocketState::Connection, |_| 0)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
