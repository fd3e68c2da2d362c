//! Malformed and hostile frames are dropped (or passed, when not ours) and counted; never answered,
//! never a panic. Every frame increments exactly one counter.

use crate::common::*;
use proptest::prelude::*;
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{Counter, Decision, Engine, Verdict};
use synwall_testkit::deploy::all_services;
use synwall_testkit::frame::fix_checksums;

fn run_out(e: &mut Engine, f: &[u8]) -> (Decision, Vec<u8>) {
    let before = e.counters().total();
    let mut buf = f.to_vec();
    buf.resize(f.len().max(MAX_SYNACK_LEN), 0);
    let d = e.xdp(&mut buf, f.len(), NOW_MS);
    assert_eq!(
        e.counters().total(),
        before + 1,
        "exactly one counter per frame"
    );
    assert!(e.counters().get(d.counter) > 0);
    (d, buf)
}

fn run(e: &mut Engine, f: &[u8]) -> Decision {
    run_out(e, f).0
}

fn expect(f: &[u8], counter: Counter) {
    let d = run(&mut engine(), f);
    assert_eq!(d.counter, counter, "frame {:02x?}", f);
    assert_ne!(d.verdict, Verdict::Tx { len: 0 });
    assert!(!matches!(d.verdict, Verdict::Tx { .. }) || counter == Counter::SynAnswered);
}

fn specs() -> Vec<SynSpec> {
    vec![
        SynSpec::default(),
        SynSpec {
            v6: true,
            ..SynSpec::default()
        },
        SynSpec {
            vlans: 2,
            ece_cwr: true,
            ..SynSpec::default()
        },
        SynSpec {
            v6: true,
            vlans: 1,
            payload: vec![1, 2, 3],
            ..SynSpec::default()
        },
    ]
}

#[test]
fn truncated_at_every_byte() {
    for s in specs() {
        let f = frame(&s, None);
        assert_eq!(run(&mut engine(), &f).counter, Counter::SynAnswered);
        for cut in 0..f.len() {
            let d = run(&mut engine(), &f[..cut]);
            assert!(
                !matches!(d.verdict, Verdict::Tx { .. }),
                "answered a SYN cut at {cut}"
            );
            assert_eq!(d.verdict, Verdict::Drop, "cut at {cut}: {:?}", d.counter);
        }
    }
}

#[test]
fn bad_ip_and_tcp_headers() {
    let good = frame(
        &SynSpec {
            wscale: None,
            ..SynSpec::default()
        },
        None,
    );
    let l4 = 14 + 20;
    let m = |edit: &dyn Fn(&mut Vec<u8>), fix: bool| {
        let mut f = good.clone();
        edit(&mut f);
        if fix {
            fix_checksums(&mut f);
        }
        f
    };
    expect(&m(&|f| f[14] = 0x44, false), Counter::DropIpMalformed); // IHL 4
    expect(&m(&|f| f[14] = 0x55, false), Counter::DropIpMalformed); // version 5
    expect(&m(&|f| f[14] = 0x4f, false), Counter::DropIpMalformed); // IHL 15 > total length
    expect(
        &m(&|f| f[16..18].copy_from_slice(&10u16.to_be_bytes()), false),
        Counter::DropIpMalformed,
    ); // total < IHL
    expect(&m(&|f| f[l4 + 12] = 0x40, true), Counter::DropTcpMalformed); // doff 4
    expect(&m(&|f| f[l4 + 12] = 0xf0, true), Counter::DropTcpMalformed); // doff 15 > segment
    expect(&m(&|f| f[l4 + 16] ^= 1, false), Counter::DropSynChecksum); // TCP checksum
    expect(&m(&|f| f[24] ^= 1, false), Counter::DropSynChecksum); // IPv4 header checksum
    expect(&m(&|f| f[l4 + 13] |= 0x04, true), Counter::DropSynFlags); // SYN|RST
    expect(&m(&|f| f[l4 + 13] |= 0x01, true), Counter::DropSynFlags); // SYN|FIN
                                                                      // Options area starts at l4+20: MSS(4) SACKP(2) TS(10) = 16 bytes.
    expect(&m(&|f| f[l4 + 21] = 0, true), Counter::DropSynOptions); // length 0
    expect(&m(&|f| f[l4 + 21] = 1, true), Counter::DropSynOptions); // length 1
    expect(&m(&|f| f[l4 + 21] = 30, true), Counter::DropSynOptions); // overlong
    expect(&m(&|f| f[l4 + 27] = 12, true), Counter::DropSynOptions); // TS length 12 runs past the end
    expect(&m(&|f| f[20] = 0x20, true), Counter::DropSynFragment); // MF: a SYN in a first fragment
    expect(&m(&|f| f[21] = 0x01, true), Counter::DropFragment); // offset 8 overlaps the TCP header
    expect(&m(&|f| f[23] = 17, true), Counter::PassNotTcp); // UDP
    expect(
        &m(&|f| f[12..14].copy_from_slice(&[0x08, 0x06]), false),
        Counter::PassNotIp,
    ); // ARP
}

/// Insert IPv6 extension headers of the given kinds (8 bytes each) before TCP. A routing header is
/// a segment routing header with no segments left (ignored); a fragment header, the last one, has
/// offset 0 and M set (a first fragment).
fn v6_with_ext(kinds: &[u8]) -> Vec<u8> {
    let f = frame(
        &SynSpec {
            v6: true,
            ..SynSpec::default()
        },
        None,
    );
    let (head, tcp) = f.split_at(14 + 40);
    let mut out = head.to_vec();
    let mut next = 6u8;
    let mut exts = Vec::new();
    for (i, &k) in kinds.iter().enumerate().rev() {
        let mut h = vec![next, 0, 0, 0, 0, 0, 0, 0];
        if k == 44 && i == kinds.len() - 1 {
            h[3] = 1; // fragment: M flag
        }
        if k == 43 {
            h[2] = 4; // routing type 4, segments left 0
        }
        exts.splice(0..0, h);
        next = k;
    }
    out[14 + 6] = next;
    let plen = (tcp.len() + exts.len()) as u16;
    out[14 + 4..14 + 6].copy_from_slice(&plen.to_be_bytes());
    out.extend(exts);
    out.extend(tcp);
    out
}

#[test]
fn ipv6_extension_headers() {
    use synwall_wire::ipv6::MAX_EXT_HEADERS;
    expect(&v6_with_ext(&[0, 60]), Counter::SynAnswered); // walked (checksum excludes ext headers)
                                                          // Exactly the bound, then one more.
    let mut kinds = vec![0, 60, 43, 51];
    kinds.resize(MAX_EXT_HEADERS, 60);
    expect(&v6_with_ext(&kinds), Counter::SynAnswered);
    kinds.push(60);
    expect(&v6_with_ext(&kinds), Counter::DropIpv6ExtDepth);
    // A SYN in a first (or atomic) fragment is never answered.
    expect(&v6_with_ext(&[44]), Counter::DropSynFragment);
    expect(&v6_with_ext(&[0, 44]), Counter::DropSynFragment);
}

#[test]
fn vlan_depth() {
    expect(
        &frame(
            &SynSpec {
                vlans: 2,
                ..SynSpec::default()
            },
            None,
        ),
        Counter::SynAnswered,
    );
    // A third tag: insert another 802.1Q header after the two.
    let mut f = frame(
        &SynSpec {
            vlans: 2,
            ..SynSpec::default()
        },
        None,
    );
    f.splice(22..22, [0x81, 0x00, 0x01, 0x2c]);
    f[20..22].copy_from_slice(&[0x81, 0x00]);
    expect(&f, Counter::DropVlanDepth);
}

#[test]
fn not_ours_is_untouched() {
    let mut e = Engine::new(
        synwall_engine::EngineConfig::new(synwall_engine::ServiceSet::new(vec![
            "198.51.100.0/24:443".parse().unwrap(),
        ])),
        salts(),
    );
    let d = run(
        &mut e,
        &frame(
            &SynSpec {
                dport: 80,
                ..SynSpec::default()
            },
            None,
        ),
    );
    assert_eq!(
        (d.verdict, d.counter),
        (Verdict::Pass, Counter::PassUnprotected)
    );
    let d = run(
        &mut e,
        &frame(
            &SynSpec {
                dst4: [203, 0, 113, 1],
                ..SynSpec::default()
            },
            None,
        ),
    );
    assert_eq!(
        (d.verdict, d.counter),
        (Verdict::Pass, Counter::PassUnprotected)
    );
    // A fragment to an unprotected address is not ours to drop.
    let mut f = frame(
        &SynSpec {
            dst4: [203, 0, 113, 1],
            ..SynSpec::default()
        },
        None,
    );
    f[20] = 0x20;
    assert_eq!(run(&mut e, &f).counter, Counter::PassUnprotected);
    let d = run(&mut e, &frame(&SynSpec::default(), None));
    assert_eq!(d.counter, Counter::SynAnswered);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    /// Random corruption: never a panic; an answer is always a well-formed SYN+ACK (etherparse
    /// decodes it with valid checksums).
    #[test]
    fn random_corruption(which in 0usize..4, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut f = frame(&specs()[which], None);
        for (at, v) in edits {
            let i = at % f.len();
            f[i] = v;
        }
        let len = f.len() - cut % 8;
        let (d, out) = run_out(&mut engine(), &f[..len]);
        if let Verdict::Tx { len } = d.verdict {
            prop_assert_eq!(d.counter, Counter::SynAnswered);
            let h = etherparse::PacketHeaders::from_ethernet_slice(&out[..len]);
            prop_assert!(h.is_ok(), "{:?}", h.err());
            // The answer is itself a frame our parser accepts, with valid checksums.
            match synwall_engine::parse::parse(&out[..len], &all_services()) {
                synwall_engine::parse::Parsed::Tcp(t) => prop_assert!(t.checksums_ok(&out[..len])),
                other => prop_assert!(false, "reply does not parse: {:?}", other),
            }
        }
    }
}

#[test]
fn non_tcp_fragments_are_not_ours() {
    // A UDP fragment to a protected address (DNS over a backend's address) passes untouched; a TCP
    // fragment is dropped.
    let mut f = frame(&SynSpec::default(), None);
    f[20] = 0x20;
    f[23] = 17;
    fix_checksums(&mut f);
    expect(&f, Counter::PassNotTcp);
    let mut f = v6_with_ext(&[44]);
    // The Fragment header's next header is the fragmented protocol: make it UDP.
    f[14 + 40] = 17;
    expect(&f, Counter::PassNotTcp);
}

#[test]
fn no_room_for_the_answer_is_counted() {
    let f = frame(
        &SynSpec {
            mss: None,
            wscale: None,
            sack: false,
            ts: None,
            ..SynSpec::default()
        },
        None,
    );
    let mut e = engine();
    // Exactly the SYN's own length: the SYN+ACK needs 4 more bytes for its MSS option.
    let mut buf = f.clone();
    let d = e.xdp(&mut buf, f.len(), NOW_MS);
    assert_eq!(
        (d.verdict, d.counter),
        (Verdict::Drop, Counter::DropSynackRoom)
    );
    assert_eq!(buf, f, "nothing written");
}

/// A BIG TCP super-packet (over 64 KiB, IP length field 0) to a protected service is passed
/// untouched by the backend; the same zero length field on an ordinary-sized frame stays
/// malformed.
#[test]
fn big_gro_packets_pass_and_small_zero_lengths_stay_malformed() {
    use synwall_engine::{BackendVerdict, SocketState};
    for v6 in [false, true] {
        // A data segment grown past what the length field can say, which GRO then leaves 0.
        let mut big = frame(
            &SynSpec {
                v6,
                ..SynSpec::default()
            },
            Some(1),
        );
        big.resize(big.len() + 70_000, 0x5a);
        let field = if v6 { 14 + 4 } else { 14 + 2 };
        big[field..field + 2].copy_from_slice(&[0, 0]);
        let mut e = engine();
        let d = e.tc(&big, NOW_MS, |_| SocketState::ListenerOnly, |_| 0);
        assert_eq!(
            (d.verdict, d.counter),
            (BackendVerdict::Pass, Counter::PassBigGro),
            "v6={v6}"
        );
        assert_eq!(run(&mut engine(), &big).counter, Counter::PassBigGro);
        let mut small = frame(
            &SynSpec {
                v6,
                ..SynSpec::default()
            },
            Some(1),
        );
        small[field..field + 2].copy_from_slice(&[0, 0]);
        expect(&small, Counter::DropIpMalformed);
    }
}
