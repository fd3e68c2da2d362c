//! Per-packet cost of the reference engine: SYN answered (IPv4, IPv6, VLAN), established segment
//! forwarded in default mode (no MAC), strict mode (cached flow; handshake ACK validated), and the
//! backend's ACK validation.
//!
//! `cargo bench -p synwall-engine --bench engine`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::{PacketBuilder, TcpOptionElement};
use std::hint::black_box;
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{Engine, EngineConfig, Salts, Service, ServiceSet, SocketState, Verdict};

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

fn syn(v6: bool, vlan: bool) -> Vec<u8> {
    let opts = [
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(12345, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ];
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut out = Vec::new();
    match (v6, vlan) {
        (false, false) => b
            .ipv4([192, 0, 2, 1], [198, 51, 100, 1], 64)
            .tcp(40000, 443, 7, 64240)
            .syn()
            .options(&opts)
            .unwrap()
            .write(&mut out, &[]),
        (false, true) => b
            .single_vlan(etherparse::VlanId::try_new(7).unwrap())
            .ipv4([192, 0, 2, 1], [198, 51, 100, 1], 64)
            .tcp(40000, 443, 7, 64240)
            .syn()
            .options(&opts)
            .unwrap()
            .write(&mut out, &[]),
        (true, _) => {
            let src = [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            let dst = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            b.ipv6(src, dst, 64)
                .tcp(40000, 443, 7, 64240)
                .syn()
                .options(&opts)
                .unwrap()
                .write(&mut out, &[])
        }
    }
    .unwrap();
    out
}

fn data_segment() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [198, 51, 100, 1], 64)
        .tcp(40000, 443, 8, 501)
        .ack(99)
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(5, 6),
        ])
        .unwrap()
        .write(&mut out, &[0u8; 1200])
        .unwrap();
    out
}

fn fix_checksums(f: &mut [u8]) {
    f[50] = 0;
    f[51] = 0;
    let src: [u8; 4] = f[26..30].try_into().unwrap();
    let dst: [u8; 4] = f[30..34].try_into().unwrap();
    let p = synwall_wire::checksum::pseudo_v4(&src, &dst, 6, (f.len() - 34) as u16);
    let c = synwall_wire::checksum::finish(synwall_wire::checksum::sum(p, &f[34..]));
    f[50..52].copy_from_slice(&c.to_be_bytes());
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
    let h = etherparse::PacketHeaders::from_ethernet_slice(&buf[..len]).unwrap();
    let Some(etherparse::TransportHeader::Tcp(t)) = h.transport else {
        panic!()
    };
    let tsval = t
        .options_iterator()
        .find_map(|o| match o {
            Ok(TcpOptionElement::Timestamp(v, _)) => Some(v),
            _ => None,
        })
        .unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [198, 51, 100, 1], 64)
        .tcp(sport, 443, 8, 501)
        .ack(t.sequence_number.wrapping_add(1))
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(5, tsval),
        ])
        .unwrap()
        .write(&mut out, &[])
        .unwrap();
    out
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
    let mut syn2 = syn(false, false);
    syn2[34..36].copy_from_slice(&40001u16.to_be_bytes());
    fix_checksums(&mut syn2);
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
        b.iter(|| black_box(be.tc(black_box(&ack), NOW, |_| SocketState::ListenerOnly)))
    });
    g.bench_function("backend_established", |b| {
        b.iter(|| black_box(be.tc(black_box(&data), NOW, |_| SocketState::Connection)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
