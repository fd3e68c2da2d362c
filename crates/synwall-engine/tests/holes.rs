//! What a crafted packet can hide behind (SPEC section 8): fragments, extension headers, routing
//! headers, IPv4 source routes, multi-buffer frames, and handshake ACKs the kernel would discard.
//! Every "must not reach" case has a positive control: the same segment without the disguise is
//! answered (or validated), so the engine would have seen it.
//!
//! Frames come from the test kit's builder pieces, each segment's TCP checksum over the
//! pseudo-header the test names.

use crate::common::{salts, NOW_MS};
use proptest::prelude::*;
use synwall_cookie::synwall_v1::{self as v1};
use synwall_cookie::{Addrs, Flow, Syn, SynOptions};
use synwall_engine::parse::{parse, Parsed};
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{
    BackendVerdict, Counter, Decision, Engine, EngineConfig, Service, ServiceSet, Skb, SkbCsum,
    SocketState, Verdict,
};
use synwall_testkit::deploy::keys;
use synwall_testkit::frame::{
    chain, eth, fix_ip_checksum, frag_header, opt_mss, opt_sack, opt_ts, opt_ws, opts_bytes,
    routing_header, v6_frame, Macs, Tcp, ACK, CLIENT_MAC, NH_AUTH, NH_DEST_OPTS as NH_DEST,
    NH_FRAGMENT, NH_HOP_BY_HOP as NH_HBH, NH_ROUTING, NH_TCP, NH_UDP, PSH, ROUTER_MAC, SYN, V4,
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

const MACS: Macs = Macs {
    dst: ROUTER_MAC,
    src: CLIENT_MAC,
};

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
    let d = engine_with(false).tc(f, NOW_MS, |_| state, |_| 0);
    (d.verdict, d.counter)
}

fn syn_header() -> Tcp {
    Tcp {
        sport: 40000,
        dport: 443,
        seq: 0x0102_0304,
        ack: 0,
        flags: SYN,
        window: 64240,
        options: opts_bytes(&[opt_mss(1440), opt_sack(), opt_ts(0x1111_2222, 0), opt_ws(7)]),
        payload: Vec::new(),
    }
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
fn ack_header(client: Addrs, seq_isn: u32, payload_len: usize) -> Tcp {
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
    Tcp {
        sport: 40000,
        dport: 443,
        seq: seq_isn.wrapping_add(1),
        ack: issued.isn.wrapping_add(1),
        flags: if payload_len > 0 { ACK | PSH } else { ACK },
        window: 64240,
        options: opts_bytes(&[vec![1, 1], opt_ts(0x0a0b_0c0d, issued.tsval.unwrap())]),
        payload: Vec::new(),
    }
}

fn v6_ack(dst: [u8; 16], payload_len: usize) -> Tcp {
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
fn tcp6(t: Tcp, csum_dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    Tcp {
        payload: payload.to_vec(),
        ..t
    }
    .bytes(CLIENT6.into(), csum_dst.into())
}

/// An extension header of `kind` with `len` bytes (a multiple of 8, or of 4 for AH); its next
/// header byte is filled in by [`v6`].
fn ext(kind: u8, len: usize) -> (u8, Vec<u8>) {
    let units = match kind {
        NH_AUTH => len / 4 - 2,
        NH_FRAGMENT => {
            assert_eq!(len, 8);
            0
        }
        _ => len / 8 - 1,
    };
    synwall_testkit::frame::ext_header(kind, units as u8)
}

/// Ethernet + IPv6 to `dst` + the extension headers + `upper` (protocol `proto`).
fn v6(dst: [u8; 16], exts: &[(u8, Vec<u8>)], proto: u8, upper: &[u8]) -> Vec<u8> {
    let (first, chain) = chain(exts, proto);
    v6_frame(MACS, CLIENT6.into(), dst.into(), first, &[chain], upper)
}

/// An IPv6 SYN to `dst` behind `exts`, its checksum over `csum_dst`.
fn v6_syn(dst: [u8; 16], exts: &[(u8, Vec<u8>)], csum_dst: [u8; 16]) -> Vec<u8> {
    v6(dst, exts, NH_TCP, &tcp6(syn_header(), csum_dst, &[]))
}

/// An IPv4 frame: `opts` IP options, fragment (MF, offset), TCP `t` with `payload`.
fn v4(dst: [u8; 4], opts: &[u8], more: bool, offset: u16, t: Tcp, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (CLIENT4.into(), dst.into());
    let seg = Tcp {
        payload: payload.to_vec(),
        ..t
    }
    .bytes(src, dst);
    let mut ip = V4::new(src, dst);
    ip.ident = 0;
    ip.options = opts.to_vec();
    ip.mf = more;
    ip.frag_offset = offset;
    let mut f = eth(MACS, &[], 0x0800);
    f.extend(ip.bytes(seg.len()));
    f.extend(seg);
    f
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
    let hidden = v6_syn(SVC6, &[frag_header(0, false), ext(NH_DEST, 8)], SVC6);
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
        vec![frag_header(0, true)],
        vec![frag_header(0, true), ext(NH_DEST, 16)],
        vec![ext(NH_HBH, 8), frag_header(0, true), ext(NH_AUTH, 12)],
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
        let f = v6(SVC6, &[frag_header(offset, false)], NH_TCP, &data);
        assert_eq!(edge(&f), want_edge, "offset {offset}");
        let mut strict = engine_with(true);
        assert_eq!(
            xdp(&mut strict, &f).0.counter,
            want_edge,
            "strict, offset {offset}"
        );
        assert_eq!(tc(&f, SocketState::None), (want_tc, want_edge));
        // Whatever follows the Fragment header is data: headers-looking bytes are not walked.
        let f = v6(
            SVC6,
            &[ext(NH_DEST, 8), frag_header(offset, true)],
            NH_TCP,
            &data,
        );
        assert_eq!(edge(&f), want_edge);
    }
    // Not TCP: not ours, whatever the offset.
    let f = v6(SVC6, &[frag_header(100, false)], NH_UDP, &data);
    assert_eq!(edge(&f), Counter::PassNotTcp);
    // To an unprotected address: untouched.
    let f = v6(OTHER6, &[frag_header(1, false)], NH_TCP, &data);
    assert_eq!(edge(&f), Counter::PassUnprotected);
}

#[test]
fn first_fragment_must_hold_the_whole_tcp_header() {
    let seg = tcp6(v6_ack(SVC6, 0), SVC6, &[]);
    // 32-byte header (NOP NOP TS): 19 bytes, then 31 bytes of it.
    for cut in [19, 31] {
        let f = v6(SVC6, &[frag_header(0, true)], NH_TCP, &seg[..cut]);
        assert_eq!(edge(&f), Counter::DropFragment, "cut at {cut}");
    }
    let f = v6(SVC6, &[frag_header(0, true)], NH_TCP, &seg);
    assert_eq!(edge(&f), Counter::FwdNonSyn);
    // A data offset below 5 stays malformed.
    let mut bad = seg.clone();
    bad[12] = 0x40;
    let f = v6(SVC6, &[frag_header(0, true)], NH_TCP, &bad);
    assert_eq!(edge(&f), Counter::DropTcpMalformed);
}

#[test]
fn strict_mode_judges_fragments_by_the_tcp_header_they_carry() {
    // SYN, handshake ACK and data, each wrapped in Fragment(0) / DestOpts.
    let wrap = |seg: Vec<u8>| {
        v6(
            SVC6,
            &[frag_header(0, false), ext(NH_DEST, 8)],
            NH_TCP,
            &seg,
        )
    };
    let mut e = engine_with(true);
    let syn = wrap(tcp6(syn_header(), SVC6, &[]));
    assert_eq!(xdp(&mut e, &syn).0.counter, Counter::DropSynFragment);
    // Data before its handshake, with a wrong cookie: dropped.
    let mut early = v6_ack(SVC6, 5);
    early.ack ^= 0x100;
    assert_eq!(
        xdp(&mut e, &wrap(tcp6(early, SVC6, b"hello"))).0.counter,
        Counter::StrictDrop
    );
    // The handshake ACK validates from its header; the flow's data is then forwarded (the first
    // data segment promotes the flow out of probation).
    let ack = wrap(tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    assert_eq!(xdp(&mut e, &ack).0.counter, Counter::StrictAckValid);
    let data = wrap(tcp6(v6_ack(SVC6, 5), SVC6, b"hello"));
    assert_eq!(xdp(&mut e, &data).0.counter, Counter::StrictFwdPromoted);
    assert_eq!(xdp(&mut e, &data).0.counter, Counter::StrictFwdCached);
}

#[test]
fn backend_fragments() {
    let wrap = |seg: Vec<u8>| v6(SVC6, &[frag_header(0, true)], NH_TCP, &seg);
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
    fix_ip_checksum(&mut f);
    assert_eq!(edge(&f), Counter::DropFragment);
    // Positive control.
    assert_eq!(edge(&v4_syn(SVC4, &[], false, 0)), Counter::SynAnswered);
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
    let srh = routing_header(4, 1, &[SVC6, OTHER6]);
    let f = v6_syn(OTHER6, std::slice::from_ref(&srh), SVC6);
    assert_eq!(answered_from(&f), SVC6);
    // The same SYN checksummed over the outer destination is a bad checksum.
    let f = v6_syn(OTHER6, std::slice::from_ref(&srh), OTHER6);
    assert_eq!(edge(&f), Counter::DropSynChecksum);
    // Mobile IPv6 (type 2): the home address.
    let f = v6_syn(OTHER6, &[routing_header(2, 1, &[SVC6])], SVC6);
    assert_eq!(answered_from(&f), SVC6);
    // Segments left 0: the packet is at its final destination, the outer one.
    let f = v6_syn(OTHER6, &[routing_header(4, 0, &[SVC6, OTHER6])], OTHER6);
    assert_eq!(edge(&f), Counter::PassUnprotected);
    let f = v6_syn(SVC6, &[routing_header(4, 0, &[OTHER6])], SVC6);
    assert_eq!(answered_from(&f), SVC6);
    // The reverse: a protected outer destination routed on to an unprotected one.
    let f = v6_syn(SVC6, &[routing_header(4, 2, &[OTHER6, SVC6])], OTHER6);
    assert_eq!(edge(&f), Counter::PassUnprotected);
    // The backend looks the final destination up too.
    let ack = v6(
        OTHER6,
        std::slice::from_ref(&srh),
        NH_TCP,
        &tcp6(v6_ack(SVC6, 0), SVC6, &[]),
    );
    let mut seen = None;
    let d = engine_with(false).tc(
        &ack,
        NOW_MS,
        |flow| {
            seen = Some(flow.addrs);
            SocketState::ListenerOnly
        },
        |_| 0,
    );
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
        let f = v6_syn(dst, &[routing_header(0, sl, &[SVC6])], SVC6);
        assert_eq!(edge(&f), Counter::DropSourceRoute, "type 0, sl {sl}");
    }
    // Another type with segments left (RPL, type 3): the destination is unknown.
    let f = v6_syn(OTHER6, &[routing_header(3, 1, &[SVC6])], SVC6);
    assert_eq!(edge(&f), Counter::DropSourceRoute);
    // ... but with none left it is ignored.
    let f = v6_syn(SVC6, &[routing_header(3, 0, &[OTHER6])], SVC6);
    assert_eq!(answered_from(&f), SVC6);
    // A second routing header.
    let f = v6_syn(
        SVC6,
        &[
            routing_header(4, 0, &[SVC6]),
            ext(NH_DEST, 8),
            routing_header(4, 0, &[SVC6]),
        ],
        SVC6,
    );
    assert_eq!(edge(&f), Counter::DropSourceRoute);
    assert_eq!(tc(&f, SocketState::None).1, Counter::DropSourceRoute);
}

#[test]
fn walk_errors_are_dropped_whatever_the_destination() {
    // An SRH too short for the address it must hold.
    let mut short = routing_header(4, 1, &[]);
    short.1[1] = 0;
    assert_eq!(
        edge(&v6_syn(SVC6, &[short.clone()], SVC6)),
        Counter::DropIpMalformed
    );
    assert_eq!(
        edge(&v6_syn(OTHER6, &[short], SVC6)),
        Counter::DropIpMalformed
    );
    // A header running past the payload after a routing header, whichever destination it names.
    let srh = routing_header(4, 1, &[SVC6]);
    let mut f = v6_syn(OTHER6, &[srh.clone(), ext(NH_DEST, 8)], SVC6);
    let dest_at = 14 + 40 + srh.1.len();
    f[dest_at + 1] = 200;
    assert_eq!(edge(&f), Counter::DropIpMalformed);
    let mut f = v6_syn(
        OTHER6,
        &[routing_header(4, 1, &[OTHER6]), ext(NH_DEST, 8)],
        OTHER6,
    );
    f[dest_at + 1] = 200;
    assert_eq!(edge(&f), Counter::DropIpMalformed);
    assert_eq!(tc(&f, SocketState::None).1, Counter::DropIpMalformed);
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

// --- Chains the walk cannot finish, SRv6 encapsulation --------------------------------------------

/// A counter by its metric name (a build without it fails the test that names it).
fn counter(name: &str) -> Counter {
    *Counter::ALL
        .iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("this build has no counter {name}"))
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Another address of the backend, not protected (its SID or management address).
const A6: [u8; 16] = [0x20, 1, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

#[test]
fn a_routing_header_past_the_walk_bound_cannot_pass_as_unprotected() {
    // Six destination-options headers, then an SRH whose segment list ends at the protected
    // service, to an unprotected outer address: the walk stops at its bound before the routing
    // header the kernel routes by. (Frame as captured in the security review.)
    let f = unhex(
        "02aabbccdd0202aabbccdd0186dd6000000000743c4020010db800090000000000000000001020010db800\
         09000000000000000000013c000104000000003c000104000000003c000104000000003c0001040000000\
         03c000104000000002b00010400000000060404010100000020010db800010000000000000000008020010\
         db80009000000000000000000019c4201bb11223344000000007002faf049bf0000020405b401010402",
    );
    assert_eq!(edge(&f), Counter::DropIpv6ExtDepth);
    assert_eq!(tc(&f, SocketState::None).1, Counter::DropIpv6ExtDepth);
    // Built here: one header more than the bound, wherever the routing header is, to any
    // destination; a SYN whose chain fits the bound is judged by its final destination.
    let srh = routing_header(4, 1, &[SVC6, OTHER6]);
    for outer in [OTHER6, SVC6] {
        let mut exts: Vec<_> = (0..MAX_EXT_HEADERS).map(|_| ext(NH_DEST, 8)).collect();
        exts.push(srh.clone());
        assert_eq!(edge(&v6_syn(outer, &exts, SVC6)), Counter::DropIpv6ExtDepth);
        exts.truncate(MAX_EXT_HEADERS - 1);
        exts.push(srh.clone());
        assert_eq!(answered_from(&v6_syn(outer, &exts, SVC6)), SVC6, "control");
    }
    // Past the bound with no routing header at all, to an unprotected address: still not
    // judged, so dropped.
    let exts: Vec<_> = (0..=MAX_EXT_HEADERS).map(|_| ext(NH_DEST, 8)).collect();
    assert_eq!(
        edge(&v6_syn(OTHER6, &exts, OTHER6)),
        Counter::DropIpv6ExtDepth
    );
}

#[test]
fn a_first_fragment_whose_chain_goes_on_in_the_next_is_dropped() {
    // Fragment 1 ends after a destination-options header that names a routing header; fragment
    // 2 holds the SRH (final destination protected) and the SYN. (Frames of the review.)
    let first = unhex(
        "02aabbccdd0202aabbccdd0186dd6000000000102c4020010db800090000000000000000001020010db8000\
         9000000000000000000013c0000010000abc12b00010400000000",
    );
    let second = unhex(
        "02aabbccdd0202aabbccdd0186dd60000000004c2c4020010db800090000000000000000001020010db8000\
         9000000000000000000013c0000080000abc1060404010100000020010db80001000000000000000000802\
         0010db80009000000000000000000019c4301bb11223344000000007002faf049be0000020405b401010402",
    );
    assert_eq!(edge(&first), Counter::DropIpMalformed);
    assert_eq!(tc(&first, SocketState::None).1, Counter::DropIpMalformed);
    // The second completes nothing without the first: it passes.
    assert_eq!(edge(&second), Counter::PassUnprotected);
    // Built here, to an unprotected and to a protected address (what follows in the next
    // fragment, an SRH or a type-2 header, does not matter: this one is never judged whole).
    for outer in [A6, SVC6] {
        let mut f = v6(
            outer,
            &[frag_header(0, true), ext(NH_DEST, 8)],
            NH_ROUTING,
            &[],
        );
        assert_eq!(
            edge(&f),
            Counter::DropIpMalformed,
            "chain cut after DestOpts"
        );
        // A destination-options header whose length runs past the fragment.
        let dest_at = 14 + 40 + 8;
        f[dest_at] = NH_TCP;
        f[dest_at + 1] = 3;
        assert_eq!(edge(&f), Counter::DropIpMalformed, "DestOpts cut");
    }
    // Control: a first fragment whose chain ends in TCP inside it is judged as before.
    let f = v6_syn(A6, &[frag_header(0, true), ext(NH_DEST, 8)], A6);
    assert_eq!(edge(&f), Counter::PassUnprotected);
    let f = v6_syn(SVC6, &[frag_header(0, true), ext(NH_DEST, 8)], SVC6);
    assert_eq!(edge(&f), Counter::DropSynFragment);
}

/// `IPv6(CLIENT6 -> outer) / SRH(segments left `sl`, `segments`) / inner IP packet`.
fn srv6(outer: [u8; 16], sl: u8, segments: &[[u8; 16]], inner_nh: u8, inner: &[u8]) -> Vec<u8> {
    v6(outer, &[routing_header(4, sl, segments)], inner_nh, inner)
}

/// An IPv6 packet (no Ethernet) from CLIENT6 to `dst` carrying `seg` (protocol `nh`).
fn ip6(dst: [u8; 16], nh: u8, seg: &[u8]) -> Vec<u8> {
    v6(dst, &[], nh, seg)[14..].to_vec()
}

/// An IPv4 packet (no Ethernet) from CLIENT4 to `dst` carrying the SYN, checksums right.
fn ip4_syn(dst: [u8; 4]) -> Vec<u8> {
    v4(dst, &[], false, 0, syn_header(), &[])[14..].to_vec()
}

#[test]
fn srv6_encapsulation_is_judged_by_the_inner_packet() {
    // The review's frame: an SRH with no segments left whose next header is IPv6, to an
    // unprotected outer address; inside, a SYN to the protected service.
    let f = unhex(
        "02aabbccdd0202aabbccdd0186dd60000000005c2b4020010db800090000000000000000001020010db8000\
         900000000000000000001290204000000000020010db800090000000000000000000160000000001c0640\
         20010db800090000000000000000001020010db80001000000000000000000809c4401bb1122334400000\
         0007002faf049bd0000020405b401010402",
    );
    let (d, buf) = xdp(&mut engine_with(false), &f);
    let Verdict::Tx { len } = d.verdict else {
        panic!("the inner SYN was not answered: {d:?}")
    };
    // Answered as the inner destination would: a plain IPv6 SYN+ACK to the inner source.
    let everything = ServiceSet::new(vec!["[::/0]:1-65535".parse().unwrap()]);
    let Parsed::Tcp(t) = parse(&buf[..len], &everything) else {
        panic!("the answer does not parse")
    };
    assert!(t.checksums_ok(&buf[..len]));
    assert_eq!(
        (t.l3, buf[20]),
        (14, NH_TCP),
        "no outer header in the answer"
    );
    assert_eq!(&buf[22..38], &SVC6[..]);
    assert_eq!(
        &buf[38..54],
        &[0x20, 1, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]
    );
    // The backend passes it to the kernel as it passes any SYN.
    assert_eq!(tc(&f, SocketState::None).1, Counter::BackendSynPass);

    // Built here: segments left 1 (the kernel decapsulates once the segment list is done), and
    // an IPv4 packet inside: answered in IPv4, the EtherType IPv4.
    let syn6 = ip6(SVC6, NH_TCP, &tcp6(syn_header(), SVC6, &[]));
    let f = srv6(OTHER6, 1, &[A6, OTHER6], 41, &syn6);
    assert_eq!(answered_from(&f), SVC6);
    let f = srv6(OTHER6, 0, &[OTHER6], 4, &ip4_syn(SVC4));
    let (d, buf) = xdp(&mut engine_with(false), &f);
    let Verdict::Tx { len } = d.verdict else {
        panic!("the inner IPv4 SYN was not answered: {d:?}")
    };
    assert_eq!(&buf[12..14], &[0x08, 0x00]);
    assert_eq!(&buf[26..30], &SVC4[..]);
    assert_eq!(len, 14 + 20 + 40);
    // A bad inner IPv4 header checksum is a bad SYN.
    let mut bad = f.clone();
    bad[14 + 40 + 24 + 10] ^= 1;
    assert_eq!(edge(&bad), Counter::DropSynChecksum);
    // The inner destination decides, whatever the outer one: unprotected inside, passed.
    let other = ip6(OTHER6, NH_TCP, &tcp6(syn_header(), OTHER6, &[]));
    assert_eq!(
        edge(&srv6(SVC6, 0, &[SVC6], 41, &other)),
        Counter::PassUnprotected
    );
    // Not TCP inside: not ours.
    assert_eq!(
        edge(&srv6(OTHER6, 0, &[A6], 41, &ip6(SVC6, NH_UDP, &[0; 16]))),
        Counter::PassNotTcp
    );
    // One level only: an SRv6 packet inside an SRv6 packet is dropped, whatever the addresses.
    let nested = &srv6(OTHER6, 0, &[OTHER6], 41, &syn6)[14..];
    for outer in [OTHER6, SVC6] {
        assert_eq!(
            edge(&srv6(outer, 0, &[outer], 41, nested)),
            counter("drop_encap_nested")
        );
    }
    // ... and so is plain IP in IP inside.
    let ipip = ip6(OTHER6, 41, &syn6);
    assert_eq!(
        edge(&srv6(OTHER6, 0, &[OTHER6], 41, &ipip)),
        counter("drop_encap_nested")
    );
    // An inner packet cut short or malformed cannot be judged.
    let f = srv6(OTHER6, 0, &[OTHER6], 41, &syn6[..30]);
    assert_eq!(edge(&f), Counter::DropTruncated);
    let mut f = srv6(OTHER6, 0, &[OTHER6], 41, &syn6);
    f[14 + 40 + 24] = 0x40; // version 4 in an IPv6 slot
    assert_eq!(edge(&f), Counter::DropIpMalformed);
    // Controls: IP in IP without a segment routing header is left to whoever decapsulates it
    // (a tunnel device), as before; so is the same SYN when it is not encapsulated at all.
    assert_eq!(edge(&v6(OTHER6, &[], 41, &syn6)), Counter::PassUnprotected);
    assert_eq!(answered_from(&v6_syn(SVC6, &[], SVC6)), SVC6);
}

#[test]
fn srv6_encapsulation_follows_the_fragment_rules() {
    let syn6 = ip6(SVC6, NH_TCP, &tcp6(syn_header(), SVC6, &[]));
    // An atomic fragment header before the SRH: the inner SYN is in a fragment.
    let f = v6(
        OTHER6,
        &[frag_header(0, false), routing_header(4, 0, &[OTHER6])],
        41,
        &syn6,
    );
    assert_eq!(edge(&f), Counter::DropSynFragment);
    // The first fragment of a larger datagram: the inner header and TCP header are here.
    let f = v6(
        OTHER6,
        &[frag_header(0, true), routing_header(4, 0, &[OTHER6])],
        41,
        &syn6,
    );
    assert_eq!(edge(&f), Counter::DropSynFragment);
    let ack6 = ip6(SVC6, NH_TCP, &tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    let mut cut = ack6.clone();
    cut[4..6].copy_from_slice(&1000u16.to_be_bytes()); // the rest in later fragments
    let f = v6(
        OTHER6,
        &[frag_header(0, true), routing_header(4, 0, &[OTHER6])],
        41,
        &cut,
    );
    assert_eq!(edge(&f), Counter::FwdNonSyn);
    assert_eq!(
        tc(&f, SocketState::ListenerOnly).1,
        Counter::DropAckFragment
    );
    // Not a fragment, the same cut inner packet is truncated.
    let f = v6(OTHER6, &[routing_header(4, 0, &[OTHER6])], 41, &cut);
    assert_eq!(edge(&f), Counter::DropTruncated);
    // A non-first fragment carries no inner header: it passes.
    let f = v6(
        SVC6,
        &[routing_header(4, 0, &[OTHER6]), frag_header(20, false)],
        41,
        &[0; 24],
    );
    assert_eq!(edge(&f), Counter::PassNotTcp);
}

#[test]
fn srv6_encapsulated_acks_get_their_socket_after_decapsulation() {
    let ack6 = ip6(SVC6, NH_TCP, &tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    let f = srv6(OTHER6, 0, &[OTHER6], 41, &ack6);
    // The edge forwards it like any ACK.
    assert_eq!(edge(&f), Counter::FwdNonSyn);
    // The backend, before the kernel takes the encapsulation off: passed.
    let mut seen = None;
    let d = engine_with(false).tc(
        &f,
        NOW_MS,
        |flow| {
            seen = Some(flow.addrs);
            SocketState::ListenerOnly
        },
        |_| 0,
    );
    assert_eq!(
        (d.verdict, d.counter),
        (BackendVerdict::Pass, counter("backend_ack_pass_encap"))
    );
    assert_eq!(
        seen,
        Some(Addrs::V6 {
            client: CLIENT6,
            service: SVC6
        }),
        "looked up by the inner addresses"
    );
    // The kernel takes the encapsulation off and hands the inner packet to the interface again:
    // the same frame, its network header now at the inner IP header. The socket is made then.
    let inner_at = 14 + 40 + 24;
    let decapsulated = Skb {
        network: inner_at,
        ..Skb::of_frame(&f)
    };
    let d = engine_with(false).tc_skb(
        &f,
        decapsulated,
        NOW_MS,
        |_| SocketState::ListenerOnly,
        |_| 0,
    );
    assert!(matches!(d.verdict, BackendVerdict::AssignReqsk(_)), "{d:?}");
    // Its checksum counts there too (over the inner pseudo-header).
    let mut bad = f.clone();
    bad[inner_at + 40 + 16] ^= 0x20; // the inner TCP checksum field
    let d = engine_with(false).tc_skb(
        &bad,
        decapsulated,
        NOW_MS,
        |_| SocketState::ListenerOnly,
        |_| 0,
    );
    assert_eq!(d.counter, Counter::DropAckChecksum);
    // A forged cookie inside is just invalid.
    let mut forged = v6_ack(SVC6, 0);
    forged.ack ^= 0x40;
    let f = srv6(
        OTHER6,
        0,
        &[OTHER6],
        41,
        &ip6(SVC6, NH_TCP, &tcp6(forged, SVC6, &[])),
    );
    let d = engine_with(false).tc_skb(
        &f,
        decapsulated,
        NOW_MS,
        |_| SocketState::ListenerOnly,
        |_| 0,
    );
    assert_eq!(d.counter, Counter::BackendAckInvalid);
}

#[test]
fn a_backend_can_drop_the_syns_that_went_around_the_edge() {
    let syn = v6_syn(SVC6, &[], SVC6);
    let mut cfg = EngineConfig::new(services());
    cfg.backend_drop_syns = true;
    let d = Engine::new(cfg.clone(), salts()).tc(&syn, NOW_MS, |_| SocketState::None, |_| 0);
    assert_eq!(
        (d.verdict, d.counter),
        (BackendVerdict::Drop, counter("backend_syn_drop"))
    );
    // Only SYNs to protected services; everything else as before.
    let other = v6_syn(OTHER6, &[], OTHER6);
    let d = Engine::new(cfg.clone(), salts()).tc(&other, NOW_MS, |_| SocketState::None, |_| 0);
    assert_eq!(d.counter, Counter::PassUnprotected);
    let ack = v6(SVC6, &[], NH_TCP, &tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    let d = Engine::new(cfg, salts()).tc(&ack, NOW_MS, |_| SocketState::ListenerOnly, |_| 0);
    assert!(matches!(d.verdict, BackendVerdict::AssignReqsk(_)));
    // Off by default.
    assert_eq!(tc(&syn, SocketState::None).1, Counter::BackendSynPass);
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
        // A checksum the kernel already trusts is not computed again: verified by the device, or
        // still to be filled in over the TCP header and what follows (a local sender).
        let l4 = 14 + 40;
        for csum in [
            SkbCsum::Unnecessary,
            SkbCsum::Partial { start: l4 as isize },
        ] {
            let skb = Skb {
                csum,
                ..Skb::of_frame(&bad)
            };
            let d =
                engine_with(false).tc_skb(&bad, skb, NOW_MS, |_| SocketState::ListenerOnly, |_| 0);
            assert!(
                matches!(d.verdict, BackendVerdict::AssignReqsk(_)),
                "{csum:?}"
            );
        }
        // What the kernel's TCP does not trust is computed: a device sum (CHECKSUM_COMPLETE,
        // checked by the kernel too), and a partial checksum whose start lies before the TCP
        // header (the kernel then finds it negative and computes the sum).
        for csum in [
            SkbCsum::Complete,
            SkbCsum::Partial { start: 0 },
            SkbCsum::Partial {
                start: l4 as isize - 1,
            },
            SkbCsum::Partial { start: -2 },
        ] {
            let skb = Skb {
                csum,
                ..Skb::of_frame(&bad)
            };
            let d =
                engine_with(false).tc_skb(&bad, skb, NOW_MS, |_| SocketState::ListenerOnly, |_| 0);
            assert_eq!(d.counter, Counter::DropAckChecksum, "{csum:?}");
        }
    }
    // An invalid cookie is still just invalid, whatever its checksum.
    let mut forged = v6_ack(SVC6, 0);
    forged.ack ^= 0x10;
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
                ..Skb::of_frame(frame)
            },
            NOW_MS,
            |_| SocketState::ListenerOnly,
            |_| 0,
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
            // Not judged: a routing header further on could send it anywhere.
            return (Counter::DropIpv6ExtDepth, dst_protected);
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
            Hdr::Frag(o, m) => frag_header(o, m),
            Hdr::Routing(t, sl, p) => {
                let a = if p { SVC6 } else { OTHER6 };
                routing_header(t, sl, &[a])
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
