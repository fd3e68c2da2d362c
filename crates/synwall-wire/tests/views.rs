//! Our views read what etherparse (an independent implementation) wrote, field by field, and our
//! checksums agree with its checksums.

use etherparse::{PacketBuilder, TcpOptionElement};
use proptest::prelude::*;
use synwall_wire::checksum;
use synwall_wire::ethernet::EthernetFrame;
use synwall_wire::ipv4::Ipv4Packet;
use synwall_wire::ipv6::Ipv6Packet;
use synwall_wire::tcp::TcpSegment;

proptest! {
    #[test]
    fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], ttl: u8, sport: u16, dport: u16, seq: u32, ack: u32, win: u16,
                mss: u16, ws: u8, tsv: u32, tse: u32, vlan in 0u16..4095, tagged: bool,
                payload in proptest::collection::vec(any::<u8>(), 0..40)) {
        let opts = [TcpOptionElement::MaximumSegmentSize(mss), TcpOptionElement::SelectiveAcknowledgementPermitted,
                    TcpOptionElement::Timestamp(tsv, tse), TcpOptionElement::Noop, TcpOptionElement::WindowScale(ws)];
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let mut f = Vec::new();
        if tagged {
            b.single_vlan(etherparse::VlanId::try_new(vlan).unwrap()).ipv4(src, dst, ttl).tcp(sport, dport, seq, win).ack(ack).options(&opts).unwrap().write(&mut f, &payload).unwrap();
        } else {
            b.ipv4(src, dst, ttl).tcp(sport, dport, seq, win).ack(ack).options(&opts).unwrap().write(&mut f, &payload).unwrap();
        }
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        prop_assert_eq!(eth.src(), [1; 6]);
        prop_assert_eq!(eth.dst(), [2; 6]);
        let l3 = eth.l3().unwrap();
        prop_assert_eq!(l3.vlan_tags, tagged as usize);
        prop_assert_eq!(l3.ethertype, 0x0800);
        let ip = Ipv4Packet::new_checked(&f[l3.offset..]).unwrap();
        prop_assert_eq!((ip.src(), ip.dst(), ip.ttl(), ip.protocol()), (src, dst, ttl, 6));
        prop_assert!(ip.verify_checksum());
        prop_assert!(!ip.is_fragment());
        let seg = TcpSegment::new_checked(ip.payload()).unwrap();
        prop_assert_eq!((seg.src_port(), seg.dst_port(), seg.seq(), seg.ack(), seg.window()), (sport, dport, seq, ack, win));
        prop_assert_eq!(seg.payload(), &payload[..]);
        let o = seg.options().unwrap();
        prop_assert_eq!((o.mss, o.wscale, o.sack_permitted, o.timestamps), (Some(mss), Some(ws), true, Some((tsv, tse))));
        let pseudo = checksum::pseudo_v4(&src, &dst, 6, ip.payload().len() as u16);
        prop_assert!(seg.verify_checksum(pseudo));
        // Corrupt one payload or header byte: the checksum no longer verifies.
        let mut g = f.clone();
        let last = g.len() - 1;
        g[last] ^= 0x5a;
        let ip2 = Ipv4Packet::new_checked(&g[l3.offset..]).unwrap();
        prop_assert!(!TcpSegment::new_checked(ip2.payload()).unwrap().verify_checksum(pseudo));
    }

    #[test]
    fn ipv6_tcp(src: [u8; 16], dst: [u8; 16], hop: u8, sport: u16, dport: u16, seq: u32,
                payload in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6]).ipv6(src, dst, hop).tcp(sport, dport, seq, 100).syn()
            .write(&mut f, &payload).unwrap();
        let l3 = EthernetFrame::new_checked(&f[..]).unwrap().l3().unwrap();
        prop_assert_eq!(l3.ethertype, 0x86dd);
        let ip = Ipv6Packet::new_checked(&f[l3.offset..]).unwrap();
        prop_assert_eq!((ip.src(), ip.dst(), ip.hop_limit()), (src, dst, hop));
        let up = ip.upper_layer().unwrap();
        prop_assert_eq!((up.protocol, up.offset, up.fragment, up.dst), (6, 40, None, dst));
        let seg = TcpSegment::new_checked(&f[l3.offset + 40..l3.offset + ip.end()]).unwrap();
        prop_assert_eq!((seg.src_port(), seg.dst_port(), seg.seq(), seg.flags()), (sport, dport, seq, 0x02));
        let pseudo = checksum::pseudo_v6(&src, &dst, 6, (ip.end() - 40) as u32);
        prop_assert!(seg.verify_checksum(pseudo));
    }
}

/// Chains etherparse writes (hop-by-hop, destination options, routing with no segments left, an
/// atomic fragment header, AH, destination options after routing): our walk ends where its parse
/// of the same bytes does, at the same protocol. (etherparse stops at a Fragment header with M
/// set; ours walks on past offset 0, which the engine's tests cover.)
mod ext_chains {
    use super::*;
    use etherparse::{
        IpAuthHeader, IpFragOffset, IpHeaders, IpNumber, Ipv6Extensions, Ipv6FragmentHeader,
        Ipv6Header, Ipv6RawExtHeader, Ipv6RoutingExtensions, SlicedPacket,
    };
    use synwall_wire::ipv6::MAX_EXT_HEADERS;

    fn raw(units: usize) -> Ipv6RawExtHeader {
        // PadN over the whole options area.
        let mut p = vec![0u8; 6 + 8 * units];
        p[0] = 1;
        p[1] = (p.len() - 2) as u8;
        Ipv6RawExtHeader::new_raw(IpNumber::TCP, &p).unwrap()
    }

    proptest! {
        #[test]
        fn walk_agrees_with_etherparse(hbh in proptest::option::of(0usize..3), dst_opts in proptest::option::of(0usize..3),
                                       routing in proptest::option::of((0usize..3, proptest::option::of(0usize..2))),
                                       frag: bool, icv in proptest::option::of(0usize..4),
                                       payload in proptest::collection::vec(any::<u8>(), 0..20)) {
            let icv_bytes = vec![0u8; 4 * icv.unwrap_or(0)];
            let exts = Ipv6Extensions {
                hop_by_hop_options: hbh.map(raw),
                destination_options: dst_opts.map(raw),
                routing: routing.map(|(units, fin)| {
                    // Segment routing header, segments left 0: walked past.
                    let mut p = vec![0u8; 6 + 8 * units];
                    p[0] = 4;
                    Ipv6RoutingExtensions {
                        routing: Ipv6RawExtHeader::new_raw(IpNumber::TCP, &p).unwrap(),
                        final_destination_options: fin.map(raw),
                    }
                }),
                fragment: frag.then(|| Ipv6FragmentHeader::new(IpNumber::TCP, IpFragOffset::ZERO, false, 7)),
                auth: icv.map(|_| IpAuthHeader::new(IpNumber::TCP, 1, 2, &icv_bytes).unwrap()),
            };
            let h = Ipv6Header { hop_limit: 64, source: [1; 16], destination: [2; 16], ..Default::default() };
            let mut f = Vec::new();
            PacketBuilder::ethernet2([1; 6], [2; 6]).ip(IpHeaders::Ipv6(h, exts)).tcp(1, 2, 3, 4).syn()
                .write(&mut f, &payload).unwrap();
            let count = [hbh.is_some(), dst_opts.is_some(), routing.is_some(), routing.and_then(|r| r.1).is_some(),
                         frag, icv.is_some()].iter().filter(|b| **b).count();
            let theirs = SlicedPacket::from_ethernet(&f).unwrap();
            let Some(etherparse::NetSlice::Ipv6(v6)) = theirs.net else { panic!("not IPv6") };
            let their_payload = v6.payload();
            let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
            match ip.upper_layer() {
                Ok(up) => {
                    prop_assert!(count <= MAX_EXT_HEADERS);
                    prop_assert_eq!(up.protocol, their_payload.ip_number.0);
                    prop_assert_eq!(up.offset, ip.end() - their_payload.payload.len());
                    prop_assert!(!their_payload.fragmented);
                    prop_assert_eq!(up.fragment.map(|fr| (fr.offset, fr.more)), frag.then_some((0, false)));
                    prop_assert_eq!(up.dst, [2; 16]);
                }
                Err(e) => {
                    prop_assert!(count > MAX_EXT_HEADERS, "{:?} with {} headers", e, count);
                    prop_assert_eq!(e.error, synwall_wire::WireError::ExtHeaderLimit);
                }
            }
        }
    }
}
