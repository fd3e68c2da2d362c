//! The baseline programs under BPF_PROG_TEST_RUN: the helper-cookie program answers Linux-like SYNs
//! (IPv4/IPv6, with and without timestamps, ECN, a VLAN tag) with SYN+ACKs that etherparse decodes
//! and whose checksums etherparse recomputes; it passes what is not its SYN; the bare program
//! swaps the MACs. Needs root (skips elsewhere, fails under CI=true).

use etherparse::{
    LinkExtHeader, LinkHeader, NetHeaders, PacketHeaders, TcpHeader, TcpOptionElement,
    TransportHeader,
};
use std::net::IpAddr;
use synwall_baseline::per_packet::{
    syn_frame, Family, Profile, CLIENT_ISN, CLIENT_TSVAL, CLIENT_V4, CLIENT_V6, PORT, SERVER_V4,
    SERVER_V6,
};
use synwall_baseline::{BareTx, Error, HelperConfig, HelperCookie};
use synwall_bpf::xdp_action;
use synwall_testkit::frame::{Frame, ACK, CWR, ECE, SYN};
use synwall_testkit::require_privileges;

fn helper(test: &str) -> Option<HelperCookie> {
    if !require_privileges(test) {
        return None;
    }
    Some(HelperCookie::load(PORT).expect("load syncookie_helper.bpf.o"))
}

/// CLOCK_MONOTONIC in ms: the clock bpf_ktime_get_ns reads.
fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
        0
    );
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

struct Reply {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tcp: TcpHeader,
    payload_len: usize,
    vlan: bool,
}

/// Decode a SYN+ACK with etherparse, checking every checksum and length on the way.
fn decode(syn: &[u8], out: &[u8]) -> Reply {
    let h = PacketHeaders::from_ethernet_slice(out).expect("etherparse decodes the reply");
    let Some(LinkHeader::Ethernet2(eth)) = h.link else {
        panic!("no Ethernet header")
    };
    assert_eq!(eth.destination, syn[6..12], "MACs swapped");
    assert_eq!(eth.source, syn[0..6], "MACs swapped");
    let vlan = matches!(h.link_exts.first(), Some(LinkExtHeader::Vlan(_)));
    let Some(TransportHeader::Tcp(tcp)) = h.transport else {
        panic!("no TCP header")
    };
    let payload = h.payload.slice();
    let (src, dst, ttl) = match h.net.expect("IP header") {
        NetHeaders::Ipv4(ip, _) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 header checksum"
            );
            assert_eq!(ip.total_len as usize, 20 + tcp.header_len() + payload.len());
            assert!(ip.dont_fragment);
            assert_eq!(
                tcp.checksum,
                tcp.calc_checksum_ipv4(&ip, payload).unwrap(),
                "TCP checksum (IPv4)"
            );
            (
                IpAddr::from(ip.source),
                IpAddr::from(ip.destination),
                ip.time_to_live,
            )
        }
        NetHeaders::Ipv6(ip, _) => {
            assert_eq!(ip.payload_length as usize, tcp.header_len() + payload.len());
            assert_eq!(
                tcp.checksum,
                tcp.calc_checksum_ipv6(&ip, payload).unwrap(),
                "TCP checksum (IPv6)"
            );
            (
                IpAddr::from(ip.source),
                IpAddr::from(ip.destination),
                ip.hop_limit,
            )
        }
        NetHeaders::Arp(_) => panic!("ARP"),
    };
    Reply {
        src,
        dst,
        ttl,
        payload_len: payload.len(),
        tcp,
        vlan,
    }
}

fn options(t: &TcpHeader) -> Vec<TcpOptionElement> {
    t.options_iterator()
        .map(|o| o.expect("well-formed option"))
        .collect()
}

/// The common checks of a SYN+ACK answering the benchmark client.
fn check_synack(r: &Reply, family: Family) {
    let (client, server): (IpAddr, IpAddr) = match family {
        Family::IPv4 => (CLIENT_V4.parse().unwrap(), SERVER_V4.parse().unwrap()),
        Family::IPv6 => (CLIENT_V6.parse().unwrap(), SERVER_V6.parse().unwrap()),
    };
    assert_eq!((r.src, r.dst), (server, client), "addresses swapped");
    assert_eq!(r.ttl, 64);
    assert_eq!(
        (r.tcp.source_port, r.tcp.destination_port),
        (PORT, 40000),
        "ports swapped"
    );
    assert_eq!(r.tcp.acknowledgment_number, CLIENT_ISN.wrapping_add(1));
    assert!(r.tcp.syn && r.tcp.ack && !r.tcp.rst && !r.tcp.fin && !r.tcp.psh);
    assert_eq!(r.tcp.window_size, 64240);
    assert_eq!(r.payload_len, 0);
}

/// The TSval is a millisecond CLOCK_MONOTONIC reading, rounded down to 64 ms with the option
/// bits in its low 6 bits (Linux's cookie_init_timestamp), and never ahead of the clock.
fn check_ts_cookie(tsval: u32, before_ms: u64, after_ms: u64, bits: u32) {
    assert_eq!(tsval & 0x3f, bits, "option bits of TSval {tsval:#x}");
    let lo = (before_ms as u32 & !0x3f).wrapping_sub(64);
    let hi = after_ms as u32;
    assert!(
        tsval.wrapping_sub(lo) <= hi.wrapping_sub(lo),
        "TSval {tsval} outside [{lo}, {hi}] ms"
    );
}

#[test]
fn helper_answers_linux_default_syn_v4_and_v6() {
    let Some(h) = helper("helper_answers_linux_default_syn_v4_and_v6") else {
        return;
    };
    for (family, mss) in [(Family::IPv4, 1460), (Family::IPv6, 1440)] {
        let syn = syn_frame(family, Profile::LinuxDefault);
        let before = monotonic_ms();
        let out = h.test_run(&syn).unwrap();
        let after = monotonic_ms();
        assert_eq!(out.retval, xdp_action::TX, "{family:?}");
        assert_eq!(out.data.len(), syn.len(), "same option length, no resize");
        let r = decode(&syn, &out.data);
        check_synack(&r, family);
        assert!(!r.tcp.ece);
        let o = options(&r.tcp);
        let TcpOptionElement::Timestamp(tsval, tsecr) = o[2] else {
            panic!("{o:?}")
        };
        assert_eq!(
            o,
            vec![
                TcpOptionElement::MaximumSegmentSize(mss),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(tsval, CLIENT_TSVAL),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ]
        );
        assert_eq!(tsecr, CLIENT_TSVAL);
        // wscale 7 | SACK (bit 4)
        check_ts_cookie(tsval, before, after, 7 | 0x10);
    }
    assert_eq!(h.counters().unwrap().get("tx_synack"), 2);
}

#[test]
fn helper_answers_syn_without_timestamps_with_mss_only() {
    let Some(h) = helper("helper_answers_syn_without_timestamps_with_mss_only") else {
        return;
    };
    for (family, mss, ip_len) in [(Family::IPv4, 1460, 20), (Family::IPv6, 1440, 40)] {
        let syn = syn_frame(family, Profile::NoTimestamps);
        let out = h.test_run(&syn).unwrap();
        assert_eq!(out.retval, xdp_action::TX, "{family:?}");
        // Linux keeps no option but the MSS when the cookie has no timestamp to ride in: the
        // 12-byte option block shrinks to 4 (bpf_xdp_adjust_tail).
        assert_eq!(out.data.len(), 14 + ip_len + 24);
        let r = decode(&syn, &out.data);
        check_synack(&r, family);
        assert_eq!(
            options(&r.tcp),
            vec![TcpOptionElement::MaximumSegmentSize(mss)]
        );
    }
}

fn segment(flags: u8, options: Vec<u8>, sport: u16) -> Frame {
    Frame {
        seq: CLIENT_ISN,
        options,
        ..Frame::new(
            CLIENT_V4.parse().unwrap(),
            SERVER_V4.parse().unwrap(),
            sport,
            PORT,
            flags,
        )
    }
}

#[test]
fn helper_ecn_vlan_payload_and_other_layouts() {
    let Some(h) = helper("helper_ecn_vlan_payload_and_other_layouts") else {
        return;
    };
    // ECN setup SYN with timestamps and no window scale: ECE in the reply, TS bits 0xf | ECN.
    let ts = |v: u32| {
        let t = v.to_be_bytes();
        vec![1, 1, 8, 10, t[0], t[1], t[2], t[3], 0, 0, 0, 0]
    };
    let mut opts = vec![2, 4, 0x05, 0xb4];
    opts.extend(ts(CLIENT_TSVAL));
    let syn = segment(SYN | ECE | CWR, opts, 40000).build();
    let before = monotonic_ms();
    let out = h.test_run(&syn).unwrap();
    let after = monotonic_ms();
    assert_eq!(out.retval, xdp_action::TX);
    let r = decode(&syn, &out.data);
    check_synack(&r, Family::IPv4);
    assert!(r.tcp.ece && !r.tcp.cwr);
    let o = options(&r.tcp);
    let TcpOptionElement::Timestamp(tsval, _) = o[3] else {
        panic!("{o:?}")
    };
    assert_eq!(
        o,
        vec![
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(tsval, CLIENT_TSVAL),
        ]
    );
    check_ts_cookie(tsval, before, after, 0xf | 0x20);

    // A SYN carrying data (TFO-style) and an 802.1Q tag: the data goes, the tag stays.
    let mut s = segment(SYN, vec![2, 4, 0x05, 0xb4], 40000);
    s.payload = vec![0xab; 100];
    let plain = s.build();
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&plain[12..]);
    let out = h.test_run(&tagged).unwrap();
    assert_eq!(out.retval, xdp_action::TX);
    assert_eq!(out.data.len(), 18 + 20 + 24);
    let r = decode(&tagged, &out.data);
    assert!(r.vlan, "VLAN tag kept");
    check_synack(&r, Family::IPv4);
    assert_eq!(out.data[12..16], [0x81, 0x00, 0x00, 0x64]);

    // A SYN with only a timestamp (12 bytes) gets MSS + NOP NOP TS (16): the frame grows.
    let t = CLIENT_TSVAL.to_be_bytes();
    let syn = segment(
        SYN,
        vec![8, 10, t[0], t[1], t[2], t[3], 0, 0, 0, 0, 1, 1],
        40000,
    )
    .build();
    let out = h.test_run(&syn).unwrap();
    assert_eq!(out.retval, xdp_action::TX);
    assert_eq!(out.data.len(), syn.len() + 4);
    let r = decode(&syn, &out.data);
    check_synack(&r, Family::IPv4);
    assert_eq!(options(&r.tcp).len(), 4, "{:?}", options(&r.tcp));

    // The ISN is the kernel's cookie of the flow and its MSS: the same SYN gets the same ISN, a
    // different port or MSS class another.
    let isn = |sport: u16, mss: u16| {
        let m = mss.to_be_bytes();
        let f = segment(SYN, vec![2, 4, m[0], m[1]], sport).build();
        let out = h.test_run(&f).unwrap();
        assert_eq!(out.retval, xdp_action::TX);
        decode(&f, &out.data).tcp.sequence_number
    };
    let a = isn(40000, 1460);
    assert_eq!(a, isn(40000, 1460));
    assert_ne!(a, isn(40001, 1460));
    assert_ne!(a, isn(40000, 536));
}

#[test]
fn helper_passes_what_is_not_its_syn() {
    let Some(h) = helper("helper_passes_what_is_not_its_syn") else {
        return;
    };
    let syn = syn_frame(Family::IPv4, Profile::LinuxDefault);
    let mut arp = syn.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let mut other_port = segment(SYN, vec![2, 4, 0x05, 0xb4], 40000);
    other_port.dport = 80;
    let mut v6_other = syn_frame(Family::IPv6, Profile::NoTimestamps);
    v6_other[14 + 40 + 3] ^= 1; // destination port 443 -> 442
    let mut udp = syn.clone();
    udp[14 + 9] = 17;
    // IHL 6 (a NOP-padded option word) and a non-first fragment: the stack's business.
    let mut ip_options = syn[..14].to_vec();
    ip_options.extend_from_slice(&syn[14..34]);
    ip_options.extend_from_slice(&[1, 1, 1, 0]);
    ip_options.extend_from_slice(&syn[34..]);
    ip_options[14] = 0x46;
    let mut fragment = syn.clone();
    fragment[14 + 6] = 0x20; // MF
    let mut v6_ext = syn_frame(Family::IPv6, Profile::LinuxDefault);
    v6_ext[14 + 6] = 0; // next header: hop-by-hop options
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "ACK",
            segment(ACK, vec![1, 1, 1, 1], 40000).build(),
            "pass_not_syn",
        ),
        (
            "SYN+ACK",
            segment(SYN | ACK, vec![], 40000).build(),
            "pass_not_syn",
        ),
        ("SYN to port 80", other_port.build(), "pass_other_port"),
        ("IPv6 SYN to port 442", v6_other, "pass_other_port"),
        ("ARP", arp, "pass_not_ip"),
        ("UDP", udp, "pass_not_tcp"),
        ("truncated", syn[..14 + 20 + 10].to_vec(), "pass_truncated"),
        (
            "options cut short",
            syn[..syn.len() - 4].to_vec(),
            "pass_truncated",
        ),
        ("IPv4 options", ip_options, "pass_ip_options"),
        ("IPv4 fragment", fragment, "pass_ip_options"),
        ("IPv6 extension header", v6_ext, "pass_not_tcp"),
    ];
    for (what, frame, counter) in cases {
        let before = h.counters().unwrap();
        let out = h.test_run(&frame).unwrap();
        assert_eq!(out.retval, xdp_action::PASS, "{what}");
        assert_eq!(out.data, frame, "{what}: frame unchanged");
        let after = h.counters().unwrap();
        assert_eq!(after.get(counter), before.get(counter) + 1, "{what}");
        let moved: u64 = after.0.iter().map(|(_, v)| v).sum::<u64>()
            - before.0.iter().map(|(_, v)| v).sum::<u64>();
        assert_eq!(moved, 1, "{what}: exactly one counter");
    }
}

#[test]
fn helper_config_is_checked_before_loading() {
    for (cfg, msg) in [
        (HelperConfig::new(0), "port 0"),
        (
            HelperConfig {
                wscale: 15,
                ..HelperConfig::new(443)
            },
            "window scale 15",
        ),
        (
            HelperConfig {
                mss_v4: 10,
                ..HelperConfig::new(443)
            },
            "MSS 10",
        ),
    ] {
        match HelperCookie::load_with(&cfg) {
            Err(Error::Config(m)) => assert!(m.contains(msg), "{m}"),
            Err(e) => panic!("{msg}: wrong error {e}"),
            Ok(_) => panic!("{msg}: loaded"),
        }
    }
}

#[test]
fn bare_swaps_macs_and_transmits() {
    if !require_privileges("bare_swaps_macs_and_transmits") {
        return;
    }
    let b = BareTx::load().unwrap();
    let syn = syn_frame(Family::IPv6, Profile::LinuxDefault);
    let out = b.test_run(&syn).unwrap();
    assert_eq!(out.retval, xdp_action::TX);
    assert_eq!(out.data[0..6], syn[6..12]);
    assert_eq!(out.data[6..12], syn[0..6]);
    assert_eq!(out.data[12..], syn[12..]);
    // Twice is the identity: what makes the repeated run of the benchmark's calibration honest.
    let twice = b.test_run_repeat(&syn, 2).unwrap();
    assert_eq!(twice.data, syn);
    let short = b.test_run(&syn[..14]).unwrap();
    assert_eq!(short.retval, xdp_action::TX);
    assert_eq!(b.counters().unwrap().get("tx"), 4);
    assert!(b.test_run(&syn[..10]).is_err(), "shorter than Ethernet");
}
