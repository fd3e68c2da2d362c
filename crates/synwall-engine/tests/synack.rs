//! Every SYN+ACK the engine emits, decoded by etherparse and checked field by field against
//! SPEC section 7; the cookie in it validates and decodes to the SYN's options after rounding.

use crate::common::*;
use etherparse::{LinkExtHeader, NetHeaders, PacketHeaders, TcpOptionElement, TransportHeader};
use proptest::prelude::*;
use synwall_cookie::synwall_v1::{self as v1, Config};
use synwall_cookie::{Ack, Addrs, Flow, Timestamps};
use synwall_engine::{Counter, Verdict};
use synwall_testkit::deploy::{keys, CLIENT_MAC, ROUTER_MAC};

fn arb_spec() -> impl Strategy<Value = SynSpec> {
    (
        (
            any::<bool>(),
            0u8..3,
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
        ),
        (1u16.., 1u16.., any::<u32>()),
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u8..=20),
            any::<bool>(),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
        ),
        proptest::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(
            |(
                (v6, vlans, src4, dst4, src6, dst6),
                (sport, dport, isn),
                (mss, wscale, sack, ts, ece_cwr),
                payload,
            )| SynSpec {
                v6,
                vlans,
                src4,
                dst4,
                src6,
                dst6,
                sport,
                dport,
                isn,
                mss,
                wscale,
                sack,
                ts,
                ece_cwr,
                payload,
            },
        )
}

/// The SPEC section 7 option list for a SYN.
fn expected_options(s: &SynSpec, cookie_opt: v1::OptionBits, tsval: u32) -> Vec<TcpOptionElement> {
    let mut o = vec![TcpOptionElement::MaximumSegmentSize(if s.v6 {
        1440
    } else {
        1460
    })];
    let ts = s.ts.map(|t| TcpOptionElement::Timestamp(tsval, t));
    match (s.sack, ts) {
        (true, Some(t)) => o.extend([TcpOptionElement::SelectiveAcknowledgementPermitted, t]),
        (false, Some(t)) => o.extend([TcpOptionElement::Noop, TcpOptionElement::Noop, t]),
        (true, None) => o.extend([
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::SelectiveAcknowledgementPermitted,
        ]),
        (false, None) => {}
    }
    if s.wscale.is_some() {
        assert_ne!(cookie_opt.wscale_field(), 15);
        o.extend([TcpOptionElement::Noop, TcpOptionElement::WindowScale(7)]);
    }
    o
}

fn check(s: &SynSpec) -> Result<(), TestCaseError> {
    let syn = frame(s, None);
    let mut e = engine();
    let mut buf = syn.clone();
    buf.resize(syn.len().max(synwall_engine::synack::MAX_SYNACK_LEN), 0);
    let clock_ms = NOW_MS + 0x1234;
    let d = e.xdp(&mut buf, syn.len(), clock_ms);
    prop_assert_eq!(d.counter, Counter::SynAnswered);
    let Verdict::Tx { len } = d.verdict else {
        return Err(TestCaseError::fail("not answered"));
    };
    let out = &buf[..len];

    let h = PacketHeaders::from_ethernet_slice(out)
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    // Ethernet: MACs swapped, tags kept as they came.
    let eth = h.link.clone().unwrap().ethernet2().unwrap();
    prop_assert_eq!(eth.source, ROUTER_MAC);
    prop_assert_eq!(eth.destination, CLIENT_MAC);
    let tags: Vec<u16> = h
        .link_exts
        .iter()
        .map(|x| match x {
            LinkExtHeader::Vlan(v) => v.vlan_id.value(),
            _ => 0,
        })
        .collect();
    prop_assert_eq!(tags.len(), s.vlans as usize);
    prop_assert_eq!(
        &out[..14 + 4 * s.vlans as usize][12..],
        &syn[..14 + 4 * s.vlans as usize][12..],
        "tags copied byte for byte"
    );
    prop_assert!(h.payload.slice().is_empty(), "no payload");

    let TransportHeader::Tcp(t) = h.transport.clone().unwrap() else {
        return Err(TestCaseError::fail("not tcp"));
    };
    let flow = match h.net.clone().unwrap() {
        NetHeaders::Ipv4(ip, ext) => {
            prop_assert!(!s.v6);
            prop_assert_eq!(ip.ihl(), 5);
            prop_assert!(ext.is_empty());
            prop_assert_eq!(ip.dscp.value(), 0);
            prop_assert_eq!(ip.ecn.value(), 0);
            prop_assert_eq!(ip.identification, 0);
            prop_assert!(ip.dont_fragment && !ip.more_fragments);
            prop_assert_eq!(ip.fragment_offset.value(), 0);
            prop_assert_eq!(ip.time_to_live, 64);
            prop_assert_eq!(ip.header_checksum, ip.calc_header_checksum());
            prop_assert_eq!((ip.source, ip.destination), (s.dst4, s.src4));
            prop_assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, &[]).unwrap());
            Flow {
                addrs: Addrs::V4 {
                    client: s.src4,
                    service: s.dst4,
                },
                client_port: s.sport,
                service_port: s.dport,
            }
        }
        NetHeaders::Ipv6(ip, ext) => {
            prop_assert!(s.v6);
            prop_assert!(ext.is_empty());
            prop_assert_eq!(ip.traffic_class, 0);
            prop_assert_eq!(ip.flow_label.value(), 0);
            prop_assert_eq!(ip.hop_limit, 64);
            prop_assert_eq!((ip.source, ip.destination), (s.dst6, s.src6));
            prop_assert_eq!(t.checksum, t.calc_checksum_ipv6(&ip, &[]).unwrap());
            Flow {
                addrs: Addrs::V6 {
                    client: s.src6,
                    service: s.dst6,
                },
                client_port: s.sport,
                service_port: s.dport,
            }
        }
        _ => return Err(TestCaseError::fail("not ip")),
    };
    prop_assert_eq!((t.source_port, t.destination_port), (s.dport, s.sport));
    prop_assert_eq!(t.acknowledgment_number, s.isn.wrapping_add(1));
    prop_assert!(t.syn && t.ack && !t.fin && !t.rst && !t.psh && !t.urg && !t.cwr && !t.ns);
    let e_bit = s.ts.is_some() && s.ece_cwr;
    prop_assert_eq!(t.ece, e_bit);
    prop_assert_eq!(t.window_size, 64240);
    prop_assert_eq!(t.urgent_pointer, 0);

    // The cookie validates and restores the SYN's options after table rounding.
    let cookie = t.sequence_number;
    let tsval = t.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::Timestamp(v, _)) => Some(v),
        _ => None,
    });
    prop_assert_eq!(tsval.is_some(), s.ts.is_some());
    if let Some(v) = tsval {
        prop_assert_eq!(v & 0xffff_ff00, clock_ms as u32 & 0xffff_ff00);
    }
    let ack = Ack {
        flow,
        seq: s.isn.wrapping_add(1),
        ack: cookie.wrapping_add(1),
        timestamps: tsval.map(|tsecr| Timestamps { tsval: 9, tsecr }),
    };
    let cfg = Config::default();
    let d = v1::validate(&cfg, &keys(), &ack)
        .ok_or_else(|| TestCaseError::fail("cookie does not validate"))?;
    let table = cfg.mss_table(&flow.addrs);
    prop_assert_eq!(d.mss, table.value(table.index_at_or_below(s.mss)));
    prop_assert_eq!(d.wscale, s.wscale.map(|w| w.min(14)));
    prop_assert_eq!(d.sack_ok, s.sack);
    prop_assert_eq!(d.tstamp_ok, s.ts.is_some());
    prop_assert_eq!(d.ecn_ok, e_bit);

    // Options in SPEC order, padded to 4 bytes, at most 20.
    let opts: Vec<TcpOptionElement> = t.options_iterator().map(|o| o.unwrap()).collect();
    prop_assert_eq!(
        opts,
        expected_options(
            s,
            v1::OptionBits {
                opt: (cookie >> 24) as u8,
                ext: 0
            },
            tsval.unwrap_or(0)
        )
    );
    prop_assert!(t.options.len() % 4 == 0 && t.options.len() <= 20);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn every_synack_matches_the_spec(s in arb_spec()) {
        check(&s)?;
    }
}

#[test]
fn minimal_syn_without_options_grows_to_a_valid_synack() {
    let s = SynSpec {
        mss: None,
        wscale: None,
        sack: false,
        ts: None,
        ..SynSpec::default()
    };
    check(&s).unwrap();
    let s = SynSpec {
        v6: true,
        vlans: 2,
        mss: None,
        wscale: None,
        sack: false,
        ts: None,
        ..SynSpec::default()
    };
    check(&s).unwrap();
}
