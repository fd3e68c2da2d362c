//! What a crafted packet can hide behind (SPEC section 8): fragments, extension headers, routing
//! headers, IPv4 source routes, multi-buffer frames, and handshake ACKs the kernel would discard.
//! Every "must not reach" case has a positive control: the same segment without the disguise is
//! answered (or validated), so the engine would have seen it.
//!
//! Frames are built here byte by byte for the headers etherparse cannot chain freely, with TCP
//! checksums from etherparse (an independent implementation) over the pseudo-header the test names.

mod common;

use common::*;
use etherparse::{IpNumber, Ipv4Header, PacketBuilder, TcpHeader, TcpOptionElement};
use proptest::prelude::*;
use synwall_cookie::synwall_v1::{self as v1};
use synwall_cookie::{Addrs, Flow, Syn, SynOptions};
use synwall_engine::parse::{parse, Parsed};
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{
    BackendVerdict, Counter, Decision, Engine, EngineConfig, Service, ServiceSet, Skb, SocketState,
    Verdict,
};
use synwall_wire::ipv6::MAX_EXT_HEADERS;

const CLIENT6: [u8; 16] = [
    0x20, 1, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
/// Protected: [2001:db8:1::/48]:443.
const SVC6: [u8; 16] = [0x20, 1, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80];
/// Not protected.
const OTHER6: [u8; 16] = [0x20, 1, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80];
const CLIENT4: [u8; 4] = [192, 0, 2, 10];
/// Protected: 198.51.100.0/24:443.
const SVC4: [u8; 4] = [198, 51, 100, 80];
const OTHER4: [u8; 4] = [192, 0, 2, 99];

const NH_TCP: u8 = 6;
const NH_UDP: u8 = 17;
const NH_HBH: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_AUTH: u8 = 51;
const NH_DEST: u8 = 60;

fn services() -> ServiceSet {
    ServiceSet::new(
        ["198.51.100.0/24:443", "[2001:db8:1::/48]:443"]
            .iter()
            .map(|s| s.parse::<Service>().unwrap())
            .collect(),
    )
}

fn engine_with(strict: bool) -> Engine {
    let mut cfg = EngineConfig::new(services());
    cfg.strict = strict;
    Engine::new(cfg, salts())
}

fn xdp(e: &mut Engine, f: &[u8]) -> (Decision, Vec<u8>) {
    let before = e.counters().total();
    let mut buf = f.to_vec();
    buf.resize(f.len() + MAX_SYNACK_LEN, 0);
    let d = e.xdp(&mut buf, f.len(), NOW_MS);
    assert_eq!(e.counters().total(), before + 1, "one counter per frame");
    (d, buf)
}

fn edge(f: &[u8]) -> Counter {
    xdp(&mut engine_with(false), f).0.counter
}

fn tc(f: &[u8], state: SocketState) -> (BackendVerdict, Counter) {
    let d = engine_with(false).tc(f, NOW_MS, |_| state);
    (d.verdict, d.counter)
}

fn syn_options() -> Vec<TcpOptionElement> {
    vec![
        TcpOptionElement::MaximumSegmentSize(1440),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(0x1111_2222, 0),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ]
}

fn syn_header() -> TcpHeader {
    let mut t = TcpHeader::new(40000, 443, 0x0102_0304, 64240);
    t.syn = true;
    t.set_options(&syn_options()).unwrap();
    t
}

/// The options `syn_header` carries, as the cookie sees them.
fn syn_opts() -> SynOptions {
    SynOptions {
        mss: Some(1440),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: true,
        ece_cwr: false,
    }
}

/// The handshake ACK for `syn_header` sent from `client` to `service` (a cookie issued with the
/// current salt), with `payload` after it.
fn ack_header(client: Addrs, seq_isn: u32, payload_len: usize) -> TcpHeader {
    let issued = v1::generate(
        &EngineConfig::new(services()).cookie,
        &keys().current,
        &Syn {
            flow: Flow {
                addrs: client,
                client_port: 40000,
                service_port: 443,
            },
            isn: seq_isn,
            options: syn_opts(),
        },
        5_000,
    );
    let mut t = TcpHeader::new(40000, 443, seq_isn.wrapping_add(1), 64240);
    t.ack = true;
    t.psh = payload_len > 0;
    t.acknowledgment_number = issued.isn.wrapping_add(1);
    t.set_options(&[
        TcpOptionElement::Noop,
        TcpOptionElement::Noop,
        TcpOptionElement::Timestamp(0x0a0b_0c0d, issued.tsval.unwrap()),
    ])
    .unwrap();
    t
}

fn v6_ack(dst: [u8; 16], payload_len: usize) -> TcpHeader {
    ack_header(
        Addrs::V6 {
            client: CLIENT6,
            service: dst,
        },
        0x0102_0304,
        payload_len,
    )
}

/// A TCP segment whose checksum covers the IPv6 pseudo-header with `csum_dst`.
fn tcp6(mut t: TcpHeader, csum_dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    t.checksum = t
        .calc_checksum_ipv6_raw(CLIENT6, csum_dst, payload)
        .unwrap();
    let mut out = t.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// An extension header of `kind` with `len` bytes (a multiple of 8, or of 4 for AH); its next
/// header byte is filled in by [`v6`]. Options areas are one PadN.
fn ext(kind: u8, len: usize) -> (u8, Vec<u8>) {
    let mut b = vec![0u8; len];
    match kind {
        NH_AUTH => b[1] = (len / 4 - 2) as u8,
        NH_FRAGMENT => assert_eq!(len, 8),
        _ => {
            b[1] = (len / 8 - 1) as u8;
            if kind != NH_ROUTING && len > 2 {
                b[2] = 1;
                b[3] = (len - 4) as u8;
            }
        }
    }
    (kind, b)
}

/// A Fragment header: offset in 8-byte units, M flag.
fn frag(offset: u16, more: bool) -> (u8, Vec<u8>) {
    let mut b = vec![0u8; 8];
    b[2..4].copy_from_slice(&((offset << 3) | more as u16).to_be_bytes());
    b[4..8].copy_from_slice(&0x5eed_f00du32.to_be_bytes());
    (NH_FRAGMENT, b)
}

/// A routing header of `kind` with `segments_left`, holding `addrs` (16 bytes each) after its
/// first 8 bytes (an SRH's segment list; a type 2 header's home address).
fn routing(kind: u8, segments_left: u8, addrs: &[[u8; 16]]) -> (u8, Vec<u8>) {
    let mut b = vec![0u8; 8];
    b[1] = (2 * addrs.len()) as u8;
    b[2] = kind;
    b[3] = segments_left;
    if kind == 4 && !addrs.is_empty() {
        b[4] = (addrs.len() - 1) as u8; // last entry
    }
    for a in addrs {
        b.extend_from_slice(a);
    }
    (NH_ROUTING, b)
}

/// Ethernet + IPv6 to `dst` + the extension headers + `upper` (protocol `proto`).
fn v6(dst: [u8; 16], exts: &[(u8, Vec<u8>)], proto: u8, upper: &[u8]) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, (_, b)) in exts.iter().enumerate() {
        let mut b = b.clone();
        b[0] = exts.get(i + 1).map_or(proto, |e| e.0);
        chain.extend(b);
    }
    let first = exts.first().map_or(proto, |e| e.0);
    let mut f = Vec::new();
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&((chain.len() + upper.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[first, 64]);
    f.extend_from_slice(&CLIENT6);
    f.extend_from_slice(&dst);
    f.extend(chain);
    f.extend_from_slice(upper);
    f
}

/// An IPv6 SYN to `dst` behind `exts`, its checksum over `csum_dst`.
fn v6_syn(dst: [u8; 16], exts: &[(u8, Vec<u8>)], csum_dst: [u8; 16]) -> Vec<u8> {
    v6(dst, exts, NH_TCP, &tcp6(syn_header(), csum_dst, &[]))
}

/// An IPv4 frame built by etherparse: `opts` IP options, fragment (MF, offset), TCP `t`.
fn v4(dst: [u8; 4], opts: &[u8], more: bool, offset: u16, t: TcpHeader, payload: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(0, 64, IpNumber::TCP, CLIENT4, dst).unwrap();
    h.options = opts.try_into().unwrap();
    h.more_fragments = more;
    h.fragment_offset = etherparse::IpFragOffset::try_new(offset).unwrap();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_MAC)
        .ip(etherparse::IpHeaders::Ipv4(h, Default::default()))
        .tcp_header(t)
        .write(&mut out, payload)
        .unwrap();
    out
}

fn v4_syn(dst: [u8; 4], opts: &[u8], more: bool, offset: u16) -> Vec<u8> {
    v4(dst, opts, more, offset, syn_header(), &[])
}

/// The reply's source address and whether it parses as a SYN+ACK with good checksums.
fn answered_from(f: &[u8]) -> [u8; 16] {
    let (d, buf) = xdp(&mut engine_with(false), f);
    let Verdict::Tx { len } = d.verdict else {
        panic!("not answered: {d:?}")
    };
    let everything = ServiceSet::new(vec!["[::/0]:1-65535".parse().unwrap()]);
    match parse(&buf[..len], &everything) {
        Parsed::Tcp(t) => assert!(t.checksums_ok(&buf[..len]), "reply checksums"),
        other => panic!("reply does not parse: {other:?}"),
    }
    buf[22..38].try_into().unwrap()
}

// --- IPv6 fragments -----------------------------------------------------------------------------

#[test]
fn ipv6_syn_behind_an_atomic_fragment_and_dest_opts_is_never_answered() {
    // The reported bypass: Fragment(offset 0, M=0, next header DestOpts) / DestOpts / TCP SYN.
    let hidden = v6_syn(SVC6, &[frag(0, false), ext(NH_DEST, 8)], SVC6);
    assert_eq!(edge(&hidden), Counter::DropSynFragment);
    assert_eq!(
        xdp(&mut engine_with(true), &hidden).0.counter,
        Counter::DropSynFragment
    );
    assert_eq!(
        tc(&hidden, SocketState::ListenerOnly),
        (BackendVerdict::Drop, Counter::DropSynFragment)
    );
    // A real first fragment (M=1), with or without headers after the Fragment header.
    for exts in [
        vec![frag(0, true)],
        vec![frag(0, true), ext(NH_DEST, 16)],
        vec![ext(NH_HBH, 8), frag(0, true), ext(NH_AUTH, 12)],
    ] {
        assert_eq!(edge(&v6_syn(SVC6, &exts, SVC6)), Counter::DropSynFragment);
    }
    // Positive control: the same SYN behind the destination options alone is answered.
    assert_eq!(answered_from(&v6_syn(SVC6, &[ext(NH_DEST, 8)], SVC6)), SVC6);
}

#[test]
fn ipv6_non_first_fragments_pass_unless_they_overlap_the_tcp_header() {
    let data = [0x41u8; 64];
    for (offset, want_edge, want_tc) in [
        (1, Counter::DropFragment, BackendVerdict::Drop),
        (2, Counter::DropFragment, BackendVerdict::Drop),
        (3, Counter::PassFragmentNonfirst, BackendVerdict::Pass),
        (185, Counter::PassFragmentNonfirst, BackendVerdict::Pass),
    ] {
        let f = v6(SVC6, &[frag(offset, false)], NH_TCP, &data);
        assert_eq!(edge(&f), want_edge, "offset {offset}");
        let mut strict = engine_with(true);
        assert_eq!(
            xdp(&mut strict, &f).0.counter,
            want_edge,
            "strict, offset {offset}"
        );
        assert_eq!(tc(&f, SocketState::None), (want_tc, want_edge));
        // Whatever follows the Fragment header is data: headers-looking bytes are not walked.
        let f = v6(SVC6, &[ext(NH_DEST, 8), frag(offset, true)], NH_TCP, &data);
        assert_eq!(edge(&f), want_edge);
    }
    // Not TCP: not ours, whatever the offset.
    let f = v6(SVC6, &[frag(100, false)], NH_UDP, &data);
    assert_eq!(edge(&f), Counter::PassNotTcp);
    // To an unprotected address: untouched.
    let f = v6(OTHER6, &[frag(1, false)], NH_TCP, &data);
    assert_eq!(edge(&f), Counter::PassUnprotected);
}

#[test]
fn first_fragment_must_hold_the_whole_tcp_header() {
    let seg = tcp6(v6_ack(SVC6, 0), SVC6, &[]);
    // 32-byte header (NOP NOP TS): 19 bytes, then 31 bytes of it.
    for cut in [19, 31] {
        let f = v6(SVC6, &[frag(0, true)], NH_TCP, &seg[..cut]);
        assert_eq!(edge(&f), Counter::DropFragment, "cut at {cut}");
    }
    let f = v6(SVC6, &[frag(0, true)], NH_TCP, &seg);
    assert_eq!(edge(&f), Counter::FwdNonSyn);
    // A data offset below 5 stays malformed.
    let mut bad = seg.clone();
    bad[12] = 0x40;
    let f = v6(SVC6, &[frag(0, true)], NH_TCP, &bad);
    assert_eq!(edge(&f), Counter::DropTcpMalformed);
}

#[test]
fn strict_mode_judges_fragments_by_the_tcp_header_they_carry() {
    // SYN, handshake ACK and data, each wrapped in Fragment(0) / DestOpts.
    let wrap = |seg: Vec<u8>| v6(SVC6, &[frag(0, false), ext(NH_DEST, 8)], NH_TCP, &seg);
    let mut e = engine_with(true);
    let syn = wrap(tcp6(syn_header(), SVC6, &[]));
    assert_eq!(xdp(&mut e, &syn).0.counter, Counter::DropSynFragment);
    // Data before its handshake, with a wrong cookie: dropped.
    let mut early = v6_ack(SVC6, 5);
    early.acknowledgment_number ^= 0x100;
    assert_eq!(
        xdp(&mut e, &wrap(tcp6(early, SVC6, b"hello"))).0.counter,
        Counter::StrictDrop
    );
    // The handshake ACK validates from its header; the flow's data is then forwarded.
    let ack = wrap(tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    assert_eq!(xdp(&mut e, &ack).0.counter, Counter::StrictAckValid);
    let data = wrap(tcp6(v6_ack(SVC6, 5), SVC6, b"hello"));
    assert_eq!(xdp(&mut e, &data).0.counter, Counter::StrictFwdCached);
}

#[test]
fn backend_fragments() {
    let wrap = |seg: Vec<u8>| v6(SVC6, &[frag(0, true)], NH_TCP, &seg);
    let ack = wrap(tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    // A listener only: no socket from a fragment.
    assert_eq!(
        tc(&ack, SocketState::ListenerOnly),
        (BackendVerdict::Drop, Counter::DropAckFragment)
    );
    // An established connection's first fragment is the kernel's, to reassemble.
    assert_eq!(
        tc(&ack, SocketState::Connection),
        (BackendVerdict::Pass, Counter::BackendEstablished)
    );
    // Positive control: unfragmented, the same ACK reaches the kfunc.
    let plain = v6(SVC6, &[], NH_TCP, &tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    assert!(matches!(
        tc(&plain, SocketState::ListenerOnly).0,
        BackendVerdict::AssignReqsk(_)
    ));
    // IPv4 too.
    let a4 = ack_header(
        Addrs::V4 {
            client: CLIENT4,
            service: SVC4,
        },
        7,
        0,
    );
    let f = v4(SVC4, &[], true, 0, a4.clone(), &[]);
    assert_eq!(
        tc(&f, SocketState::ListenerOnly),
        (BackendVerdict::Drop, Counter::DropAckFragment)
    );
    let f = v4(SVC4, &[], false, 0, a4, &[]);
    assert!(matches!(
        tc(&f, SocketState::ListenerOnly).0,
        BackendVerdict::AssignReqsk(_)
    ));
}

// --- IPv4 fragments and options ------------------------------------------------------------------

#[test]
fn ipv4_fragments() {
    assert_eq!(edge(&v4_syn(SVC4, &[], true, 0)), Counter::DropSynFragment);
    assert_eq!(
        tc(&v4_syn(SVC4, &[], true, 0), SocketState::None),
        (BackendVerdict::Drop, Counter::DropSynFragment)
    );
    for (offset, want) in [
        (1, Counter::DropFragment),
        (2, Counter::DropFragment),
        (3, Counter::PassFragmentNonfirst),
        (1000, Counter::PassFragmentNonfirst),
    ] {
        // The "TCP header" of a non-first fragment is data: its flags mean nothing.
        for more in [false, true] {
            assert_eq!(
                edge(&v4_syn(SVC4, &[], more, offset)),
                want,
                "offset {offset}"
            );
        }
    }
    // A first fragment too short for the TCP header of its SYN.
    let mut f = v4_syn(SVC4, &[], true, 0);
    let cut = 14 + 20 + 30;
    f.truncate(cut);
    f[16..18].copy_from_slice(&((cut - 14) as u16).to_be_bytes());
    fix_v4_checksums_ip_only(&mut f);
    assert_eq!(edge(&f), Counter::DropFragment);
    // Positive control.
    assert_eq!(edge(&v4_syn(SVC4, &[], false, 0)), Counter::SynAnswered);
}

fn fix_v4_checksums_ip_only(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let c = synwall_wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn ipv4_source_routes_are_dropped_wherever_they_go() {
    let lsrr = [131, 7, 4, 198, 51, 100, 80, 0];
    let ssrr = [1, 137, 11, 4, 10, 0, 0, 1, 198, 51, 100, 80];
    for opts in [&lsrr[..], &ssrr[..]] {
        assert_eq!(
            edge(&v4_syn(SVC4, opts, false, 0)),
            Counter::DropSourceRoute
        );
        // The destination field is only the next hop: to an unprotected one as well.
        assert_eq!(
            edge(&v4_syn(OTHER4, opts, false, 0)),
            Counter::DropSourceRoute
        );
        assert_eq!(
            tc(&v4_syn(OTHER4, opts, false, 0), SocketState::None).1,
            Counter::DropSourceRoute
        );
    }
    // Other options (NOP, record route, timestamps) are walked past.
    let rr = [1, 7, 7, 4, 0, 0, 0, 0];
    let ts = [68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(edge(&v4_syn(SVC4, &rr, false, 0)), Counter::SynAnswered);
    assert_eq!(edge(&v4_syn(SVC4, &ts, false, 0)), Counter::SynAnswered);
    // An LSRR after an EOL is not an option.
    assert_eq!(
        edge(&v4_syn(SVC4, &[0, 131, 3, 4], false, 0)),
        Counter::SynAnswered
    );
    // A malformed list: ours to drop only if the destination is protected.
    let bad = [1, 68, 1, 0];
    assert_eq!(
        edge(&v4_syn(SVC4, &bad, false, 0)),
        Counter::DropIpMalformed
    );
    assert_eq!(
        edge(&v4_syn(OTHER4, &bad, false, 0)),
        Counter::PassUnprotected
    );
    let past = [7, 9, 4, 0];
    assert_eq!(
        edge(&v4_syn(SVC4, &past, false, 0)),
        Counter::DropIpMalformed
    );
}

// --- Routing headers ----------------------------------------------------------------------------

#[test]
fn routing_header_final_destination_decides() {
    // The reported bypass: outer destination unprotected, the segment list ends at the protected
    // service. Answered as the service, the checksum taken over the final destination.
    let srh = routing(4, 1, &[SVC6, OTHER6]);
    let f = v6_syn(OTHER6, std::slice::from_ref(&srh), SVC6);
    assert_eq!(answered_from(&f), SVC6);
    // The same SYN checksummed over the outer destination is a bad checksum.
    let f = v6_syn(OTHER6, std::slice::from_ref(&srh), OTHER6);
    assert_eq!(edge(&f), Counter::DropSynChecksum);
    // Mobile IPv6 (type 2): the home address.
    let f = v6_syn(OTHER6, &[routing(2, 1, &[SVC6])], SVC6);
    assert_eq!(answered_from(&f), SVC6);
    // Segments left 0: the packet is at its final destination, the outer one.
    let f = v6_syn(OTHER6, &[routing(4, 0, &[SVC6, OTHER6])], OTHER6);
    assert_eq!(edge(&f), Counter::PassUnprotected);
    let f = v6_syn(SVC6, &[routing(4, 0, &[OTHER6])], SVC6);
    assert_eq!(answered_from(&f), SVC6);
    // The reverse: a protected outer destination routed on to an unprotected one.
    let f = v6_syn(SVC6, &[routing(4, 2, &[OTHER6, SVC6])], OTHER6);
    assert_eq!(edge(&f), Counter::PassUnprotected);
    // The backend looks the final destination up too.
    let ack = v6(
        OTHER6,
        std::slice::from_ref(&srh),
        NH_TCP,
        &tcp6(v6_ack(SVC6, 0), SVC6, &[]),
    );
    let mut seen = None;
    let d = engine_with(false).tc(&ack, NOW_MS, |flow| {
        seen = Some(flow.addrs);
        SocketState::ListenerOnly
    });
    assert!(matches!(d.verdict, BackendVerdict::AssignReqsk(_)), "{d:?}");
    assert_eq!(
        seen,
        Some(Addrs::V6 {
            client: CLIENT6,
            service: SVC6
        })
    );
}

#[test]
fn routing_headers_that_hide_the_destination_are_dropped() {
    // Type 0, even with no segments left and to an unprotected address.
    for (dst, sl) in [(SVC6, 1), (SVC6, 0), (OTHER6, 0)] {
        let f = v6_syn(dst, &[routing(0, sl, &[SVC6])], SVC6);
        assert_eq!(edge(&f), Counter::DropSourceRoute, "type 0, sl {sl}");
    }
    // Another type with segments left (RPL, type 3): the destination is unknown.
    let f = v6_syn(OTHER6, &[routing(3, 1, &[SVC6])], SVC6);
    assert_eq!(edge(&f), Counter::DropSourceRoute);
    // ... but with none left it is ignored.
    let f = v6_syn(SVC6, &[routing(3, 0, &[OTHER6])], SVC6);
    assert_eq!(answered_from(&f), SVC6);
    // A second routing header.
    let f = v6_syn(
        SVC6,
        &[
            routing(4, 0, &[SVC6]),
            ext(NH_DEST, 8),
            routing(4, 0, &[SVC6]),
        ],
        SVC6,
    );
    assert_eq!(edge(&f), Counter::DropSourceRoute);
    assert_eq!(tc(&f, SocketState::None).1, Counter::DropSourceRoute);
}

#[test]
fn walk_errors_count_when_either_destination_is_protected() {
    // An SRH too short for the address it must hold.
    let mut short = routing(4, 1, &[]);
    short.1[1] = 0;
    assert_eq!(
        edge(&v6_syn(SVC6, &[short.clone()], SVC6)),
        Counter::DropIpMalformed
    );
    assert_eq!(
        edge(&v6_syn(OTHER6, &[short], SVC6)),
        Counter::PassUnprotected
    );
    // A header running past the payload after a routing header to the protected service: the
    // outer destination is not protected, the final one is.
    let srh = routing(4, 1, &[SVC6]);
    let mut f = v6_syn(OTHER6, &[srh.clone(), ext(NH_DEST, 8)], SVC6);
    let dest_at = 14 + 40 + srh.1.len();
    f[dest_at + 1] = 200;
    assert_eq!(edge(&f), Counter::DropIpMalformed);
    let mut f = v6_syn(OTHER6, &[routing(4, 1, &[OTHER6]), ext(NH_DEST, 8)], OTHER6);
    f[dest_at + 1] = 200;
    assert_eq!(edge(&f), Counter::PassUnprotected);
    // Too many headers, to the final destination.
    let mut exts = vec![srh];
    exts.extend((0..MAX_EXT_HEADERS).map(|_| ext(NH_DEST, 8)));
    assert_eq!(
        edge(&v6_syn(OTHER6, &exts, SVC6)),
        Counter::DropIpv6ExtDepth
    );
    exts.pop();
    assert_eq!(answered_from(&v6_syn(OTHER6, &exts, SVC6)), SVC6);
}

// --- Multi-buffer frames ------------------------------------------------------------------------

#[test]
fn syn_beyond_the_first_buffer_is_dropped() {
    let f = v6_syn(SVC6, &[], SVC6);
    let run = |f: &[u8], first: usize| {
        let mut e = engine_with(false);
        let mut buf = f.to_vec();
        buf.resize(f.len() + MAX_SYNACK_LEN, 0);
        e.xdp_frags(&mut buf, f.len(), first, NOW_MS).counter
    };
    assert_eq!(run(&f, f.len() - 1), Counter::DropSynMultibuf);
    assert_eq!(run(&f, 54), Counter::DropSynMultibuf);
    assert_eq!(run(&f, f.len()), Counter::SynAnswered);
    // Link padding past the segment may lie in fragments.
    let mut padded = f.clone();
    padded.resize(f.len() + 5000, 0);
    assert_eq!(run(&padded, f.len()), Counter::SynAnswered);
    // Other segments follow the non-SYN rules wherever their bytes are.
    let ack = v6(
        SVC6,
        &[],
        NH_TCP,
        &tcp6(v6_ack(SVC6, 3000), SVC6, &[7; 3000]),
    );
    assert_eq!(run(&ack, 20), Counter::FwdNonSyn);
}

// --- Backend checksum and VLAN ------------------------------------------------------------------

#[test]
fn backend_creates_nothing_from_a_bad_checksum() {
    for payload in [
        &b""[..],
        &[0x5a; 1][..],
        &[0x33; 1448][..],
        &[0x77; 8948][..],
    ] {
        let good = v6(
            SVC6,
            &[],
            NH_TCP,
            &tcp6(v6_ack(SVC6, payload.len()), SVC6, payload),
        );
        let mut bad = good.clone();
        if payload.is_empty() {
            bad[14 + 40 + 16] ^= 0x80; // the checksum field itself
        } else {
            let last = bad.len() - 1;
            bad[last] ^= 0x01; // the data
        }
        assert_eq!(
            tc(&bad, SocketState::ListenerOnly),
            (BackendVerdict::Drop, Counter::DropAckChecksum),
            "{} bytes of data",
            payload.len()
        );
        assert!(matches!(
            tc(&good, SocketState::ListenerOnly).0,
            BackendVerdict::AssignReqsk(_)
        ));
        // A checksum the kernel already trusts is not computed again.
        let skb = Skb {
            csum_trusted: true,
            ..Skb::of_frame(&bad)
        };
        let d = engine_with(false).tc_skb(&bad, skb, NOW_MS, |_| SocketState::ListenerOnly);
        assert!(matches!(d.verdict, BackendVerdict::AssignReqsk(_)));
    }
    // An invalid cookie is still just invalid, whatever its checksum.
    let mut forged = v6_ack(SVC6, 0);
    forged.acknowledgment_number ^= 0x10;
    let mut f = v6(SVC6, &[], NH_TCP, &tcp6(forged, SVC6, &[]));
    f[14 + 40 + 17] ^= 1;
    assert_eq!(
        tc(&f, SocketState::ListenerOnly).1,
        Counter::BackendAckInvalid
    );
}

#[test]
fn backend_moves_stacked_tags_aside_for_the_kfunc() {
    let f = v6(SVC6, &[], NH_TCP, &tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    let mut tagged = f[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0, 100]);
    tagged.extend_from_slice(&f[12..]);
    let run = |frame: &[u8], protocol, vlan_present| {
        let d = engine_with(false).tc_skb(
            frame,
            Skb {
                protocol,
                vlan_present,
                csum_trusted: false,
            },
            NOW_MS,
            |_| SocketState::ListenerOnly,
        );
        (d.verdict, d.counter)
    };
    // At the lower device: the outer tag in the metadata, the inner one in the frame.
    assert!(matches!(
        run(&tagged, 0x8100, true).0,
        BackendVerdict::AssignReqsk(_)
    ));
    // Not that shape: left alone, counted.
    for (frame, present) in [(&tagged, false), (&f, true)] {
        assert_eq!(
            run(frame, 0x8100, present),
            (BackendVerdict::Pass, Counter::BackendAckVlan)
        );
    }
    // A test run of a tagged frame (nothing in the metadata).
    assert_eq!(
        tc(&tagged, SocketState::ListenerOnly),
        (BackendVerdict::Pass, Counter::BackendAckVlan)
    );
}

// --- A model of the parse order, against random chains --------------------------------------------

#[derive(Clone, Debug)]
enum Hdr {
    Plain(u8, usize),
    Frag(u16, bool),
    Routing(u8, u8, bool),
}

fn hdr() -> impl Strategy<Value = Hdr> {
    prop_oneof![
        (
            prop::sample::select(vec![NH_HBH, NH_DEST, NH_AUTH]),
            1usize..4
        )
            .prop_map(|(k, n)| Hdr::Plain(k, n)),
        (
            prop::sample::select(vec![0u16, 0, 1, 2, 3, 90]),
            any::<bool>()
        )
            .prop_map(|(o, m)| Hdr::Frag(o, m)),
        (
            prop::sample::select(vec![0u8, 2, 3, 4, 4]),
            0u8..3,
            any::<bool>()
        )
            .prop_map(|(t, sl, p)| Hdr::Routing(t, sl, p)),
    ]
}

/// SPEC section 8 and the design, written out again for chains of well-formed headers: the
/// counter an edge in default mode gives a SYN behind `chain` to `outer`.
fn model(outer_protected: bool, chain: &[Hdr]) -> (Counter, bool) {
    let mut dst_protected = outer_protected;
    let mut routed = false;
    let mut fragment = false;
    for (i, h) in chain.iter().enumerate() {
        if i == MAX_EXT_HEADERS {
            return (
                if outer_protected || dst_protected {
                    Counter::DropIpv6ExtDepth
                } else {
                    Counter::PassUnprotected
                },
                dst_protected,
            );
        }
        match *h {
            Hdr::Plain(..) => {}
            Hdr::Routing(t, sl, p) => {
                if routed || t == 0 || (sl > 0 && t != 2 && t != 4) {
                    return (Counter::DropSourceRoute, dst_protected);
                }
                routed = true;
                if sl > 0 {
                    dst_protected = p;
                }
            }
            Hdr::Frag(o, _) => {
                fragment = true;
                if o > 0 {
                    if !dst_protected {
                        return (Counter::PassUnprotected, false);
                    }
                    // The protocol is the one the Fragment header names: the next header of
                    // the chain (its fragmentable part), or TCP.
                    if i + 1 < chain.len() {
                        return (Counter::PassNotTcp, true);
                    }
                    return (
                        if o < 3 {
                            Counter::DropFragment
                        } else {
                            Counter::PassFragmentNonfirst
                        },
                        true,
                    );
                }
            }
        }
    }
    if !dst_protected {
        return (Counter::PassUnprotected, false);
    }
    if fragment {
        return (Counter::DropSynFragment, true);
    }
    (Counter::SynAnswered, true)
}

proptest! {
    #[test]
    fn random_chains_follow_the_parse_order(outer_protected: bool, chain in prop::collection::vec(hdr(), 0..9)) {
        let outer = if outer_protected { SVC6 } else { OTHER6 };
        let mut final_dst = outer;
        let exts: Vec<(u8, Vec<u8>)> = chain.iter().map(|h| match *h {
            Hdr::Plain(k, n) => ext(k, n * 8),
            Hdr::Frag(o, m) => frag(o, m),
            Hdr::Routing(t, sl, p) => {
                let a = if p { SVC6 } else { OTHER6 };
                routing(t, sl, &[a])
            }
        }).collect();
        // The checksum over the destination the model says is final.
        let mut routed = false;
        for h in &chain {
            if let Hdr::Routing(t, sl, p) = *h {
                if !routed && sl > 0 && (t == 2 || t == 4) {
                    final_dst = if p { SVC6 } else { OTHER6 };
                }
                routed = true;
            }
        }
        let f = v6_syn(outer, &exts, final_dst);
        let (want, _) = model(outer_protected, &chain);
        let (d, _) = xdp(&mut engine_with(false), &f);
        prop_assert_eq!(d.counter, want, "chain {:?}", chain);
    }
}
