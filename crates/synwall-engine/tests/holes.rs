//! What a crafted packet can hide behind (SPEC section 8): fragments, extension headers, routing
//! headers, IPv4 source routes, multi-buffer frames, and handshake ACKs the kernel would discard.
//! Every "must not reach" case has a positive control: the same segment without the disguise is
//! answered (or validated), so the engine would have seen it.
//!
//! Frames come from the test kit's builder pieces, each segment's TCP checksum over the
//! pseudo-header the test names.

use proptest::prelude::*;
use synwall_cookie::synwall_v1::{self as v1};
use synwall_cookie::{Addrs, Flow, Syn, SynOptions};
use synwall_engine::parse::{parse, Parsed};
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{
    BackendVerdict, Counter, Decision, Engine, EngineConfig, Service, ServiceSet, Skb, SocketState,
    Verdict,
};
use synwall_testkit::deploy::keys;
use synwall_testkit::frame::{
    chain, eth, fix_ip_checksum, frag_header, opt_mss, opt_sack, opt_ts, opt_ws, opts_bytes,
    routing_header, v6_frame, Macs, Tcp, ACK, CLIENT_MAC, NH_AUTH, NH_DEST_OPTS as NH_DEST,
    NH_FRAGMENT, NH_HOP_BY_HOP as NH_HBH, NH_TCP, NH_UDP, PSH, ROUTER_MAC, SYN, V4,
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
    Engine::new(cfg, keys())
}

fn xdp(e: &mut Engine, f: &[u8]) -> (Decision, Vec<u8>) {
    let before = e.counters().total();
    let mut buf = f.to_vec();
    buf.resize(f.len() + MAX_SYNACK_LEN, 0);
    let d = e.xdp(&mut buf, f.len(), 77_000);
    assert_eq!(e.counters().total(), before + 1, "one counter per frame");
    (d, buf)
}

fn edge(f: &[u8]) -> Counter {
    xdp(&mut engine_with(false), f).0.counter
}

fn tc(f: &[u8], state: SocketState) -> (BackendVerdict, Counter) {
    let d = engine_with(false).tc(f, |_| state, |_| 0);
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
    // The handshake ACK validates from its header; the flow's data is then forwarded.
    let ack = wrap(tcp6(v6_ack(SVC6, 0), SVC6, &[]));
    assert_eq!(xdp(&mut e, &ack).0.counter, Counter::StrictAckValid);
    let data = wrap(tcp6(v6_ack(SVC6, 5), SVC6, b"hello"));
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
fn walk_errors_count_when_either_destination_is_protected() {
    // An SRH too short for the address it must hold.
    let mut short = routing_header(4, 1, &[]);
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
        e.xdp_frags(&mut buf, f.len(), first, 1).counter
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
        let d = engine_with(false).tc_skb(&bad, skb, |_| SocketState::ListenerOnly, |_| 0);
        assert!(matches!(d.verdict, BackendVerdict::AssignReqsk(_)));
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
                csum_trusted: false,
            },
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
