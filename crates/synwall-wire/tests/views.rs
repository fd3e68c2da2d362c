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
        prop_assert_eq!((up.protocol, up.offset, up.fragment), (6, 40, false));
        let seg = TcpSegment::new_checked(&f[l3.offset + 40..l3.offset + ip.end()]).unwrap();
        prop_assert_eq!((seg.src_port(), seg.dst_port(), seg.seq(), seg.flags()), (sport, dport, seq, 0x02));
        let pseudo = checksum::pseudo_v6(&src, &dst, 6, (ip.end() - 40) as u32);
        prop_assert!(seg.verify_checksum(pseudo));
    }
}
