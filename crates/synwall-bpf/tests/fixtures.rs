//! Katran-style fixtures: a table of named input frames, each with the verdict and the counter
//! the edge must give it, and for XDP_TX the expected SYN+ACK, built here from SPEC section 7 with
//! etherparse (independently of the engine's builder; only the cookie value comes from
//! synwall-cookie, itself checked against independent test vectors). Every fixture is also run
//! through the reference engine, which must agree.
//!
//! Needs root and BPF (CI=true: fail, else skip with a message).

use etherparse::{
    DoubleVlanHeader, EtherType, PacketBuilder, SingleVlanHeader, TcpHeader, TcpOptionElement,
    VlanHeader, VlanId,
};
use std::net::IpAddr;
use synwall_bpf::{xdp_action, DataPath, Edge, LoadOptions, TEST_RUN_MAX_LINEAR};
use synwall_cookie::synwall_v1 as v1;
use synwall_cookie::{Syn, SynOptions};
use synwall_engine::{synack::MAX_SYNACK_LEN, Counter, Engine, EngineConfig, Verdict};
use synwall_testkit::prelude::*;
use synwall_wire::ipv6::MAX_EXT_HEADERS;

/// What the edge must do with a fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// XDP_TX with the SYN+ACK that answers the fixture's SYN (whose options are given).
    Tx(SynOptions),
    Pass(Counter),
    Drop(Counter),
}

struct Fixture {
    name: &'static str,
    frame: Vec<u8>,
    want: Want,
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const CLIENT4: [u8; 4] = [192, 0, 2, 10];
const SVC4: [u8; 4] = [198, 51, 100, 7];
const CLIENT6: &str = "2001:db8:ffff::10";
const SVC6: &str = "2001:db8:1::80";

fn syn4() -> Frame {
    let mut s = Frame::new(v4(CLIENT4), v4(SVC4), 40000, 443, SYN);
    s.options = linux_syn_options_ts(0x1111_2222);
    s
}

fn syn6() -> Frame {
    let mut s = Frame::new(v6(CLIENT6), v6(SVC6), 40000, 443, SYN);
    s.options = opts_bytes(&[opt_mss(1440), opt_sack(), opt_ts(0x3333_4444, 0), opt_ws(9)]);
    s
}

fn all_opts(mss: u16, ws: u8) -> SynOptions {
    SynOptions {
        mss: Some(mss),
        wscale: Some(ws),
        sack_permitted: true,
        timestamps: true,
        ece_cwr: false,
    }
}

fn edit(s: &Frame, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = s.build();
    f(&mut b);
    b
}

fn fixtures() -> Vec<Fixture> {
    use Counter as C;
    let fx = |name, frame, want| Fixture { name, frame, want };
    let o4 = all_opts(1460, 7);
    let o6 = all_opts(1440, 9);
    let mut v = vec![
        fx("v4 SYN, MSS SACK TS WS", syn4().build(), Want::Tx(o4)),
        fx("v6 SYN, MSS SACK TS WS", syn6().build(), Want::Tx(o6)),
    ];
    let mut s = syn4();
    s.vlans = tags(&[0x88a8, 0x8100]);
    v.push(fx(
        "v4 SYN behind 802.1ad + 802.1Q (tags kept)",
        s.build(),
        Want::Tx(o4),
    ));
    let mut s = syn6();
    s.vlans = tags(&[0x8100]);
    v.push(fx("v6 SYN behind 802.1Q", s.build(), Want::Tx(o6)));
    let mut s = syn4();
    s.flags |= ECE | CWR;
    v.push(fx(
        "v4 ECN-setup SYN with timestamps (ECE in reply)",
        s.build(),
        Want::Tx(SynOptions {
            ece_cwr: true,
            ..o4
        }),
    ));
    let mut s = syn4();
    s.options.clear();
    v.push(fx(
        "v4 SYN without options",
        s.build(),
        Want::Tx(SynOptions::default()),
    ));
    let mut s = syn4();
    s.options = opts_bytes(&[opt_mss(1200), opt_sack()]);
    v.push(fx(
        "v4 SYN, SACK only",
        s.build(),
        Want::Tx(SynOptions {
            mss: Some(1200),
            sack_permitted: true,
            ..SynOptions::default()
        }),
    ));
    let mut s = syn6();
    s.options = opts_bytes(&[vec![1, 1], opt_ts(7, 0), opt_ws(15)]);
    v.push(fx(
        "v6 SYN, timestamps and window scale 15 (encoded as 14)",
        s.build(),
        Want::Tx(SynOptions {
            wscale: Some(15),
            timestamps: true,
            ..SynOptions::default()
        }),
    ));
    let mut s = syn4();
    s.ipv4_options = vec![1, 1, 1, 0];
    v.push(fx(
        "v4 SYN with IP options (reply has IHL 5)",
        s.build(),
        Want::Tx(o4),
    ));
    let mut s = syn4();
    s.padding = 12;
    v.push(fx("v4 SYN with link padding", s.build(), Want::Tx(o4)));
    let mut s = syn4();
    s.payload = b"TFO-less data on a SYN".to_vec();
    v.push(fx(
        "v4 SYN with payload (not echoed)",
        s.build(),
        Want::Tx(o4),
    ));
    let mut s = syn6();
    s.ext = vec![ext_header(0, 0), ext_header(60, 1)];
    v.push(fx(
        "v6 SYN after hop-by-hop + dest-opts (dropped in reply)",
        s.build(),
        Want::Tx(o6),
    ));
    let mut s = Frame::new(
        v6("2001:db8:ffff::10"),
        v6("::ffff:192.0.2.1"),
        40000,
        443,
        SYN,
    );
    s.options = syn4().options;
    v.push(fx(
        "v6 SYN to the v4-mapped IPv6 prefix",
        s.build(),
        Want::Tx(o4_mss(1460)),
    ));

    // Dropped.
    v.push(fx(
        "v4 SYN, bad TCP checksum",
        edit(&syn4(), |b| b[50] ^= 0xff),
        Want::Drop(C::DropSynChecksum),
    ));
    v.push(fx(
        "v4 SYN, bad IPv4 header checksum",
        edit(&syn4(), |b| b[24] ^= 0x01),
        Want::Drop(C::DropSynChecksum),
    ));
    v.push(fx(
        "v6 SYN, bad TCP checksum",
        edit(&syn6(), |b| b[70] ^= 0x40),
        Want::Drop(C::DropSynChecksum),
    ));
    let mut s = syn4();
    s.flags |= FIN;
    v.push(fx("v4 SYN|FIN", s.build(), Want::Drop(C::DropSynFlags)));
    let mut s = syn6();
    s.flags |= RST;
    v.push(fx("v6 SYN|RST", s.build(), Want::Drop(C::DropSynFlags)));
    let mut s = syn4();
    s.options = vec![2, 4, 5, 0xb4, 8, 12, 0, 0];
    v.push(fx(
        "v4 SYN, option past the end",
        s.build(),
        Want::Drop(C::DropSynOptions),
    ));
    let mut s = syn4();
    s.options = vec![1, 3, 1, 0];
    v.push(fx(
        "v4 SYN, option length 1",
        s.build(),
        Want::Drop(C::DropSynOptions),
    ));
    let mut s = syn4();
    s.vlans = tags(&[0x88a8, 0x8100, 0x8100]);
    v.push(fx(
        "three VLAN tags",
        s.build(),
        Want::Drop(C::DropVlanDepth),
    ));
    v.extend(hole_fixtures(o4, o6));
    let mut s = syn6();
    s.ext = (0..=MAX_EXT_HEADERS).map(|_| ext_header(60, 0)).collect();
    v.push(fx(
        "v6 one extension header more than the bound",
        s.build(),
        Want::Drop(C::DropIpv6ExtDepth),
    ));
    let mut s = syn6();
    s.ext = (0..MAX_EXT_HEADERS).map(|_| ext_header(60, 0)).collect();
    v.push(fx(
        "v6 as many extension headers as the bound (still walked)",
        s.build(),
        Want::Tx(o6),
    ));
    v.push(fx(
        "v6 extension header past the payload",
        edit(&syn6(), |b| {
            b[20] = 60; // next header: dest-opts...
            b[54] = 6;
            b[55] = 200; // ...claiming 1608 bytes
        }),
        Want::Drop(C::DropIpMalformed),
    ));
    v.push(fx(
        "v4 IHL 4",
        edit(&syn4(), |b| b[14] = 0x44),
        Want::Drop(C::DropIpMalformed),
    ));
    v.push(fx(
        "v4 version 6 in an IPv4 frame",
        edit(&syn4(), |b| b[14] = 0x65),
        Want::Drop(C::DropIpMalformed),
    ));
    v.push(fx(
        "v6 payload length 0",
        edit(&syn6(), |b| {
            b[18] = 0;
            b[19] = 0;
        }),
        Want::Drop(C::DropIpMalformed),
    ));
    v.push(fx(
        "v4 total length beyond the frame",
        edit(&syn4(), |b| b[17] = b[17].wrapping_add(10)),
        Want::Drop(C::DropTruncated),
    ));
    v.push(fx(
        "v4 header cut short",
        edit(&syn4(), |b| b.truncate(14 + 12)),
        Want::Drop(C::DropTruncated),
    ));
    v.push(fx(
        "VLAN tag cut short",
        {
            let mut b = syn4().build();
            b[12..14].copy_from_slice(&[0x81, 0x00]);
            b.truncate(16);
            b
        },
        Want::Drop(C::DropTruncated),
    ));
    v.push(fx(
        "v4 TCP data offset 4",
        edit(&syn4(), |b| b[46] = 0x40),
        Want::Drop(C::DropTcpMalformed),
    ));
    v.push(fx(
        "v4 TCP data offset beyond the segment",
        edit(&syn4(), |b| b[46] = 0xf0),
        Want::Drop(C::DropTcpMalformed),
    ));

    // Passed.
    v.push(fx(
        "ARP",
        edit(&syn4(), |b| b[12..14].copy_from_slice(&[0x08, 0x06])),
        Want::Pass(C::PassNotIp),
    ));
    let mut s = syn4();
    s.proto = 17;
    v.push(fx(
        "v4 UDP to a protected prefix",
        s.build(),
        Want::Pass(C::PassNotTcp),
    ));
    let mut s = syn6();
    s.proto = 58;
    v.push(fx(
        "v6 ICMPv6 to a protected prefix",
        s.build(),
        Want::Pass(C::PassNotTcp),
    ));
    let mut s = syn4();
    s.dst = v4([192, 0, 2, 99]);
    v.push(fx(
        "v4 SYN to an unprotected address",
        s.build(),
        Want::Pass(C::PassUnprotected),
    ));
    let mut s = syn4();
    s.dport = 444;
    v.push(fx(
        "v4 SYN to an unprotected port",
        s.build(),
        Want::Pass(C::PassUnprotected),
    ));
    let mut s = syn4();
    s.dst = v4([198, 51, 100, 70]);
    s.dport = 22;
    v.push(fx(
        "v4 SYN to a port of the longer prefix",
        s.build(),
        Want::Tx(o4),
    ));
    let mut s = syn4();
    s.dport = 22;
    v.push(fx(
        "v4 SYN to that port outside it",
        s.build(),
        Want::Pass(C::PassUnprotected),
    ));
    let mut s = syn4();
    s.dst = v4([192, 0, 2, 1]);
    v.push(fx(
        "v4 SYN to 192.0.2.1:443 (only the v4-mapped IPv6 prefix covers it)",
        s.build(),
        Want::Pass(C::PassUnprotected),
    ));
    let mut s = syn4();
    s.dst = v4([192, 0, 2, 99]);
    s.frag = (true, 0);
    v.push(fx(
        "v4 fragment to an unprotected address",
        s.build(),
        Want::Pass(C::PassUnprotected),
    ));
    let mut s = syn4();
    s.dst = v4([192, 0, 2, 99]);
    s.flags |= FIN;
    v.push(fx(
        "v4 SYN|FIN to an unprotected address",
        s.build(),
        Want::Pass(C::PassUnprotected),
    ));
    let mut s = syn4();
    s.flags = ACK | PSH;
    s.ack = 77;
    s.payload = b"data".to_vec();
    v.push(fx("v4 data segment", s.build(), Want::Pass(C::FwdNonSyn)));
    let mut s = syn6();
    s.flags = SYN | ACK;
    v.push(fx("v6 SYN|ACK", s.build(), Want::Pass(C::FwdNonSyn)));
    let mut s = syn4();
    s.flags = RST;
    v.push(fx("v4 RST", s.build(), Want::Pass(C::FwdNonSyn)));
    v
}

/// What crafted packets hid behind before (each fixture here failed on the old programs), and the
/// positive controls beside them.
fn hole_fixtures(o4: SynOptions, o6: SynOptions) -> Vec<Fixture> {
    use Counter as C;
    let fx = |name, frame, want| Fixture { name, frame, want };
    let svc6: [u8; 16] = SVC6.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let other6: [u8; 16] = "2001:db8:2::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let mut v = Vec::new();

    // IPv6 fragment header: an atomic fragment with destination options after it.
    let mut s = syn6();
    s.ext = vec![frag_header(0, false), ext_header(60, 0)];
    v.push(fx(
        "v6 SYN behind Fragment(offset 0, M=0) / DestOpts",
        s.build(),
        Want::Drop(C::DropSynFragment),
    ));
    // Two real fragments of a SYN: the first carries the TCP header, the second only data.
    let mut s = syn6();
    s.ext = vec![frag_header(0, true)];
    v.push(fx(
        "v6 SYN in a first fragment",
        s.build(),
        Want::Drop(C::DropSynFragment),
    ));
    let mut s = syn6();
    s.ext = vec![frag_header(5, false)];
    v.push(fx(
        "v6 second fragment (offset 40 bytes)",
        s.build(),
        Want::Pass(C::PassFragmentNonfirst),
    ));
    let mut s = syn6();
    s.ext = vec![frag_header(2, false)];
    v.push(fx(
        "v6 fragment overlapping the TCP header (offset 2)",
        s.build(),
        Want::Drop(C::DropFragment),
    ));
    let mut s = syn6();
    s.ext = vec![ext_header(60, 0)];
    v.push(fx(
        "v6 SYN behind DestOpts alone (positive control)",
        s.build(),
        Want::Tx(o6),
    ));
    let mut s = syn6();
    s.flags = ACK;
    s.ext = vec![frag_header(0, false), ext_header(60, 0)];
    v.push(fx(
        "v6 ACK behind Fragment(offset 0) / DestOpts (forwarded)",
        s.build(),
        Want::Pass(C::FwdNonSyn),
    ));
    // IPv4 fragments.
    let mut s = syn4();
    s.frag = (true, 0);
    v.push(fx(
        "v4 SYN in a first fragment",
        s.build(),
        Want::Drop(C::DropSynFragment),
    ));
    for (offset, want) in [
        (1, Want::Drop(C::DropFragment)),
        (2, Want::Drop(C::DropFragment)),
        (3, Want::Pass(C::PassFragmentNonfirst)),
        (100, Want::Pass(C::PassFragmentNonfirst)),
    ] {
        let mut s = syn4();
        s.frag = (false, offset);
        v.push(fx("v4 non-first fragment", s.build(), want));
    }
    // Routing headers.
    let mut s = syn6();
    s.dst = IpAddr::from(other6);
    s.ext = vec![routing_header(4, 1, &[svc6, other6])];
    v.push(fx(
        "v6 SYN to an unprotected address whose segment list ends at the service",
        s.build(),
        Want::Tx(o6),
    ));
    let mut s = syn6();
    s.dst = IpAddr::from(other6);
    s.ext = vec![routing_header(2, 1, &[svc6])];
    v.push(fx(
        "v6 SYN with a type 2 routing header naming the service",
        s.build(),
        Want::Tx(o6),
    ));
    let mut s = syn6();
    s.dst = IpAddr::from(other6);
    s.ext = vec![routing_header(4, 0, &[svc6])];
    v.push(fx(
        "v6 SYN with a segment routing header, no segments left",
        s.build(),
        Want::Pass(C::PassUnprotected),
    ));
    for (name, kind, sl) in [
        ("v6 SYN with a type 0 routing header", 0, 1),
        (
            "v6 SYN with a type 0 routing header, no segments left",
            0,
            0,
        ),
        ("v6 SYN with a type 3 routing header, segments left", 3, 1),
    ] {
        let mut s = syn6();
        s.ext = vec![routing_header(kind, sl, &[svc6])];
        v.push(fx(name, s.build(), Want::Drop(C::DropSourceRoute)));
    }
    let mut s = syn6();
    s.ext = vec![routing_header(4, 0, &[svc6]), routing_header(4, 0, &[svc6])];
    v.push(fx(
        "v6 SYN with two routing headers",
        s.build(),
        Want::Drop(C::DropSourceRoute),
    ));
    // IPv4 source routes.
    for (name, opt) in [("v4 SYN with LSRR", 131u8), ("v4 SYN with SSRR", 137)] {
        let mut s = syn4();
        s.dst = v4([192, 0, 2, 99]);
        s.ipv4_options = vec![1, opt, 7, 4, 198, 51, 100, 7];
        v.push(fx(name, s.build(), Want::Drop(C::DropSourceRoute)));
    }
    let mut s = syn4();
    s.ipv4_options = vec![7, 7, 4, 0, 0, 0, 0, 0];
    v.push(fx(
        "v4 SYN with a record-route option",
        s.build(),
        Want::Tx(o4),
    ));
    // A SYN whose answer is longer than it: SACK-Permitted, WScale 7, EOL, no MSS (62 bytes,
    // answered with 66).
    let mut s = syn4();
    s.options = vec![4, 2, 1, 3, 3, 7, 0, 0];
    let f = s.build();
    assert_eq!(f.len(), 62);
    v.push(fx(
        "v4 62-byte SYN answered with 66 bytes",
        f,
        Want::Tx(SynOptions {
            sack_permitted: true,
            wscale: Some(7),
            ..SynOptions::default()
        }),
    ));
    let mut s = syn4();
    s.vlans = tags(&[0x8100]);
    s.options = vec![4, 2, 1, 3, 3, 7, 0, 0];
    v.push(fx(
        "v4 66-byte 802.1Q SYN answered with 70 bytes",
        s.build(),
        Want::Tx(SynOptions {
            sack_permitted: true,
            wscale: Some(7),
            ..SynOptions::default()
        }),
    ));
    // Multi-buffer: a SYN whose segment ends exactly at the end of the first buffer, and one byte
    // past it.
    let base = syn4().build().len();
    for (extra, want) in [
        (TEST_RUN_MAX_LINEAR - base, Want::Tx(o4)),
        (
            TEST_RUN_MAX_LINEAR - base + 1,
            Want::Drop(C::DropSynMultibuf),
        ),
    ] {
        let mut s = syn4();
        s.payload = vec![0x61; extra];
        v.push(fx("v4 SYN at the end of the first buffer", s.build(), want));
    }
    let mut s = syn4();
    s.flags = ACK | PSH;
    s.ack = 77;
    s.payload = vec![0x62; 8900];
    v.push(fx(
        "v4 jumbo data segment (multi-buffer)",
        s.build(),
        Want::Pass(C::FwdNonSyn),
    ));
    v
}

fn o4_mss(mss: u16) -> SynOptions {
    all_opts(mss, 7)
}

/// The SYN+ACK of SPEC 7 for `syn`, whose options are `o`, at `clock_ms`, under `cfg`.
fn expected_synack(cfg: &EngineConfig, syn_frame: &[u8], o: SynOptions, clock_ms: u64) -> Vec<u8> {
    // The SYN's fields, read back from the frame.
    let (l3, is_v6, l4, _, _) = locate(syn_frame).unwrap();
    let (src, dst): (IpAddr, IpAddr) = if is_v6 {
        let a: [u8; 16] = syn_frame[l3 + 8..l3 + 24].try_into().unwrap();
        // The final destination answers (a routing header's, if it names one).
        let b: [u8; 16] = final_dst_in(syn_frame, l3)
            .unwrap_or_else(|| syn_frame[l3 + 24..l3 + 40].try_into().unwrap());
        (a.into(), b.into())
    } else {
        let a: [u8; 4] = syn_frame[l3 + 12..l3 + 16].try_into().unwrap();
        let b: [u8; 4] = syn_frame[l3 + 16..l3 + 20].try_into().unwrap();
        (a.into(), b.into())
    };
    let be16 = |i: usize| u16::from_be_bytes([syn_frame[i], syn_frame[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes(syn_frame[i..i + 4].try_into().unwrap());
    let (sport, dport, isn) = (be16(l4), be16(l4 + 2), be32(l4 + 4));
    let syn_tsval = tsval_of(syn_frame).unwrap_or(0);
    let seg = Frame::new(src, dst, sport, dport, SYN);

    // SPEC 3/4: which options the cookie carries.
    let c = &cfg.cookie;
    let s_bit = o.sack_permitted && c.sack;
    let t_bit = o.timestamps && c.timestamps;
    let w_bit = o.wscale.is_some() && c.wscale;
    let e_bit = t_bit && o.ece_cwr && c.ecn;
    let issued = v1::generate(
        c,
        &keys().current,
        &Syn {
            flow: flow_of(&seg),
            isn,
            options: o,
        },
        clock_ms,
    );
    assert_eq!(issued.tsval.is_some(), t_bit);
    assert_eq!(issued.ecn, e_bit);

    // SPEC 7: options in order, padded.
    use TcpOptionElement::*;
    let mss = if is_v6 {
        cfg.server.mss_v6
    } else {
        cfg.server.mss_v4
    };
    let mut opts = vec![MaximumSegmentSize(mss)];
    let ts = Timestamp(issued.tsval.unwrap_or(0), syn_tsval);
    match (s_bit, t_bit) {
        (true, true) => opts.extend([SelectiveAcknowledgementPermitted, ts]),
        (false, true) => opts.extend([Noop, Noop, ts]),
        (true, false) => opts.extend([Noop, Noop, SelectiveAcknowledgementPermitted]),
        (false, false) => {}
    }
    if w_bit {
        opts.extend([Noop, WindowScale(cfg.server.wscale)]);
    }
    let mut tcp = TcpHeader::new(dport, sport, issued.isn, cfg.server.window);
    tcp.syn = true;
    tcp.ack = true;
    tcp.ece = e_bit;
    tcp.acknowledgment_number = isn.wrapping_add(1);
    tcp.set_options(&opts).unwrap();

    // Ethernet: MACs swapped, tags as they came.
    let dst_mac: [u8; 6] = syn_frame[6..12].try_into().unwrap();
    let src_mac: [u8; 6] = syn_frame[0..6].try_into().unwrap();
    let tags: Vec<(u16, u16)> = (14..l3)
        .step_by(4)
        .map(|i| (be16(i - 2), be16(i) & 0x0fff))
        .collect();
    let ip_type = if is_v6 {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    };
    let tag = |vid: u16, next: EtherType| SingleVlanHeader {
        pcp: Default::default(),
        drop_eligible_indicator: false,
        vlan_id: VlanId::try_new(vid).unwrap(),
        ether_type: next,
    };
    let eth = PacketBuilder::ethernet2(src_mac, dst_mac);
    let mut out = Vec::new();
    macro_rules! finish {
        ($b:expr) => {{
            let b = $b;
            match (src, dst) {
                (IpAddr::V4(c), IpAddr::V4(sv)) => b
                    .ipv4(sv.octets(), c.octets(), cfg.server.ttl)
                    .tcp_header(tcp)
                    .write(&mut out, &[])
                    .unwrap(),
                (IpAddr::V6(c), IpAddr::V6(sv)) => b
                    .ipv6(sv.octets(), c.octets(), cfg.server.ttl)
                    .tcp_header(tcp)
                    .write(&mut out, &[])
                    .unwrap(),
                _ => unreachable!(),
            }
        }};
    }
    match tags.as_slice() {
        [] => finish!(eth),
        [(_, vid)] => finish!(eth.vlan(VlanHeader::Single(tag(*vid, ip_type)))),
        [(_, outer), (inner_tpid, inner)] => {
            finish!(eth.vlan(VlanHeader::Double(DoubleVlanHeader {
                outer: tag(*outer, EtherType(*inner_tpid)),
                inner: tag(*inner, ip_type),
            })))
        }
        _ => panic!("too many tags for a SYN+ACK"),
    }
    // The SYN's own tag protocol identifiers (etherparse picks its own for the outer one).
    for (i, (tpid, _)) in tags.iter().enumerate() {
        out[12 + 4 * i..14 + 4 * i].copy_from_slice(&tpid.to_be_bytes());
    }
    out
}

fn run(edge: &Edge, cfg: &EngineConfig, table: Vec<Fixture>) -> usize {
    let mut engine = Engine::new(cfg.clone(), salts());
    let mut before = edge.counters().unwrap();
    let mut failures = Vec::new();
    let n = table.len();
    for fx in table {
        let out = edge.test_run(&fx.frame).unwrap();
        let after = edge.counters().unwrap();
        let counter = single_increment(&before, &after).unwrap();
        before = after;
        // The program's clock, from its SYN+ACK's TSval when it answered.
        let answered = out.retval == xdp_action::TX;
        let clock = engine_ms(answered.then(|| tsval_of(&out.data)).flatten());
        let (want_ret, want_counter) = match fx.want {
            Want::Tx(_) => (xdp_action::TX, Counter::SynAnswered),
            Want::Pass(c) => (xdp_action::PASS, c),
            Want::Drop(c) => (xdp_action::DROP, c),
        };
        let mut problems = Vec::new();
        if out.retval != want_ret || counter != want_counter {
            problems.push(format!(
                "got retval {} counter {}, want {want_ret} {}",
                out.retval,
                counter.name(),
                want_counter.name()
            ));
        }
        if let Want::Tx(o) = fx.want {
            let want = expected_synack(cfg, &fx.frame, o, clock);
            if out.data != want {
                problems.push(format!(
                    "SYN+ACK\n   got  {}\n   want {}",
                    hex(&out.data),
                    hex(&want)
                ));
            }
        }
        let mut buf = fx.frame.clone();
        buf.resize(fx.frame.len() + MAX_SYNACK_LEN, 0);
        // Frames longer than a test run's first buffer arrive in several.
        let first = fx.frame.len().min(TEST_RUN_MAX_LINEAR);
        let d = engine.xdp_frags(&mut buf, fx.frame.len(), first, clock);
        let engine_ret = match d.verdict {
            Verdict::Tx { .. } => xdp_action::TX,
            Verdict::Pass => xdp_action::PASS,
            Verdict::Drop => xdp_action::DROP,
        };
        if engine_ret != want_ret || d.counter != want_counter {
            problems.push(format!("engine disagrees: {d:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", fx.name, problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures failed:\n{}",
        failures.join("\n")
    );
    n
}

#[test]
fn edge_fixtures() {
    let Some(edge) = or_skip("edge fixtures", Edge::load(&LoadOptions::default())) else {
        return;
    };
    let cfg = config();
    edge.configure(&cfg).unwrap();
    edge.set_salts(&salts()).unwrap();
    let n = run(&edge, &cfg, fixtures());
    eprintln!("{n} edge fixtures passed");
}

#[test]
fn strict_fixtures() {
    let Some(edge) = or_skip("strict fixtures", Edge::load(&LoadOptions::default())) else {
        return;
    };
    let mut cfg = config();
    cfg.strict = true;
    edge.configure(&cfg).unwrap();
    edge.set_salts(&salts()).unwrap();
    let syn = syn4();
    let ack = handshake_ack(&cfg.cookie, &keys().current, &syn, o4_mss(1460), 0x5500);
    let mut data = ack.clone();
    data.flags = ACK | PSH;
    data.payload = b"GET /".to_vec();
    // Data carrying a valid cookie is a handshake ACK too; this one carries a wrong one.
    let mut early = data.clone();
    early.ack = early.ack.wrapping_add(5);
    let mut forged = ack.clone();
    forged.sport = 50000;
    forged.ack ^= 0x0100_0000; // another MSS index: the MAC covers the option bits
    let mut other = syn6();
    other.sport = 50001;
    other.flags = ACK;
    other.ack = 12345;
    let mut rst = syn6();
    rst.sport = 50002;
    rst.flags = RST;
    let mut bad_opts = ack.clone();
    bad_opts.sport += 1;
    bad_opts.options = vec![1, 1, 8, 0];
    let prev = handshake_ack(&cfg.cookie, &keys().previous, &syn6(), o4_mss(1440), 0);
    let mut syn = syn4();
    syn.sport = 40001;
    use Counter as C;
    let table = vec![
        Fixture {
            name: "strict: data with a wrong cookie before the handshake",
            frame: early.build(),
            want: Want::Drop(C::StrictDrop),
        },
        Fixture {
            name: "strict: forged cookie",
            frame: forged.build(),
            want: Want::Drop(C::StrictDrop),
        },
        Fixture {
            name: "strict: valid handshake ACK",
            frame: ack.build(),
            want: Want::Pass(C::StrictAckValid),
        },
        Fixture {
            // Its first data: the flow leaves probation (promoted_cache is on by default).
            name: "strict: data of the validated flow",
            frame: data.build(),
            want: Want::Pass(C::StrictFwdPromoted),
        },
        Fixture {
            name: "strict: handshake ACK again (cached)",
            frame: ack.build(),
            want: Want::Pass(C::StrictFwdCached),
        },
        Fixture {
            name: "strict: ACK validated by the previous salt",
            frame: prev.build(),
            want: Want::Pass(C::StrictAckValid),
        },
        Fixture {
            name: "strict: ACK of an unknown flow",
            frame: other.build(),
            want: Want::Drop(C::StrictDrop),
        },
        Fixture {
            name: "strict: RST of an unknown flow",
            frame: rst.build(),
            want: Want::Drop(C::StrictDrop),
        },
        Fixture {
            name: "strict: ACK with malformed options",
            frame: bad_opts.build(),
            want: Want::Drop(C::DropAckOptions),
        },
        Fixture {
            name: "strict: SYNs are still answered",
            frame: syn.build(),
            want: Want::Tx(o4_mss(1460)),
        },
    ];
    let n = run(&edge, &cfg, table);
    eprintln!("{n} strict fixtures passed");
}

/// Strict mode with every segment of a handshake wrapped in Fragment(offset 0, M=0) / DestOpts:
/// the SYN is never answered, the ACK validates from its header, the flow's data is forwarded,
/// and data of a flow never validated is dropped as before.
#[test]
fn strict_fixtures_behind_fragment_headers() {
    let Some(edge) = or_skip("strict fixtures", Edge::load(&LoadOptions::default())) else {
        return;
    };
    let mut cfg = config();
    cfg.strict = true;
    edge.configure(&cfg).unwrap();
    edge.set_salts(&salts()).unwrap();
    let wrap = |mut s: Frame| {
        s.ext = vec![frag_header(0, false), ext_header(60, 0)];
        s.build()
    };
    let syn = syn6();
    let ack = handshake_ack(
        &cfg.cookie,
        &keys().current,
        &syn,
        all_opts(1440, 9),
        0x7700,
    );
    let mut data = ack.clone();
    data.flags = ACK | PSH;
    data.payload = b"GET /".to_vec();
    let mut stranger = data.clone();
    stranger.sport += 1;
    use Counter as C;
    let table = vec![
        Fixture {
            name: "strict: wrapped SYN",
            frame: wrap(syn.clone()),
            want: Want::Drop(C::DropSynFragment),
        },
        Fixture {
            name: "strict: wrapped data of an unvalidated flow",
            frame: wrap(stranger),
            want: Want::Drop(C::StrictDrop),
        },
        Fixture {
            name: "strict: wrapped handshake ACK",
            frame: wrap(ack),
            want: Want::Pass(C::StrictAckValid),
        },
        Fixture {
            // Its first data: the flow leaves probation (promoted_cache is on by default).
            name: "strict: wrapped data of the validated flow",
            frame: wrap(data),
            want: Want::Pass(C::StrictFwdPromoted),
        },
        Fixture {
            name: "strict: the SYN unwrapped (positive control)",
            frame: syn.build(),
            want: Want::Tx(all_opts(1440, 9)),
        },
    ];
    let n = run(&edge, &cfg, table);
    eprintln!("{n} strict fixtures behind fragment headers passed");
}
