//! The SYN+ACK builder (SPEC section 7): rewrite a SYN frame in place into its answer: Ethernet
//! and tags as they came (MACs swapped), a fresh IP header right after them (the SYN's extension
//! headers, options and any SRv6 encapsulation gone), TCP.
//! The BPF twin is `bpf/lib/synack.h`.

use crate::config::ServerParams;
use crate::parse::{Ip, TcpFrame};
use synwall_cookie::synwall_v1::OptionBits;
use synwall_cookie::Issued;
use synwall_wire::checksum;
use synwall_wire::ethernet::{self, EthernetFrame};
use synwall_wire::ipv4::{self, Ipv4Packet, Ipv4Repr};
use synwall_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use synwall_wire::tcp::field::{OPT_KIND, OPT_LEN, OPT_MSS, OPT_TSECR, OPT_TSVAL};
use synwall_wire::tcp::{self, kind, TcpSegment};

/// Largest SYN+ACK: Ethernet + 2 VLAN tags + IPv6 + TCP with 20 option bytes.
pub const MAX_SYNACK_LEN: usize = 14 + 8 + 40 + 20 + 20;

/// The option bytes of the SYN+ACK, in SPEC order; returns them and their length (a multiple of 4,
/// at most 20).
pub fn synack_options(
    bits: OptionBits,
    mss: u16,
    wscale: u8,
    tsval: u32,
    tsecr: u32,
) -> ([u8; 20], usize) {
    let mut o = [0u8; 20];
    o[OPT_KIND] = kind::MSS;
    o[OPT_LEN] = 4;
    o[OPT_MSS].copy_from_slice(&mss.to_be_bytes());
    let mut n = 4;
    let ts = |o: &mut [u8]| {
        o[OPT_KIND] = kind::TIMESTAMPS;
        o[OPT_LEN] = 10;
        o[OPT_TSVAL].copy_from_slice(&tsval.to_be_bytes());
        o[OPT_TSECR].copy_from_slice(&tsecr.to_be_bytes());
    };
    match (bits.sack(), bits.timestamps()) {
        (true, true) => {
            o[n] = kind::SACK_PERMITTED;
            o[n + 1] = 2;
            ts(&mut o[n + 2..n + 12]);
            n += 12;
        }
        (false, true) => {
            o[n] = kind::NOP;
            o[n + 1] = kind::NOP;
            ts(&mut o[n + 2..n + 12]);
            n += 12;
        }
        (true, false) => {
            o[n..n + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
            n += 4;
        }
        (false, false) => {}
    }
    // W = 15 means the SYN had no window-scale option (or it is disabled): then none is offered.
    if bits.wscale_field() != synwall_cookie::synwall_v1::WSCALE_NONE {
        o[n..n + 4].copy_from_slice(&[kind::NOP, kind::WSCALE, 3, wscale]);
        n += 4;
    }
    (o, n)
}

/// Rewrite the SYN in `buf` (parsed as `f`) into the SYN+ACK carrying `issued`; returns the new
/// frame length, or `None` (and `buf` untouched) when `buf` has no room for the answer (the XDP
/// program's `bpf_xdp_adjust_tail` failing). `syn_tsval` is the SYN's TSval (echoed as TSecr).
/// Any buffer of [`MAX_SYNACK_LEN`] bytes has room.
pub fn build(
    buf: &mut [u8],
    f: &TcpFrame,
    bits: OptionBits,
    issued: &Issued,
    syn_tsval: u32,
    server: &ServerParams,
) -> Option<usize> {
    let (ip_len, mss) = match f.ip {
        Ip::V4 { .. } => (ipv4::MIN_HEADER_LEN, server.mss_v4),
        Ip::V6 { .. } => (ipv6::HEADER_LEN, server.mss_v6),
    };
    let (opts, opt_len) = synack_options(
        bits,
        mss,
        server.wscale,
        issued.tsval.unwrap_or(0),
        syn_tsval,
    );
    if buf.len() < f.l3 + ip_len + tcp::MIN_HEADER_LEN + opt_len {
        return None;
    }
    EthernetFrame::new_checked(&mut buf[..])
        .expect("parsed frame")
        .swap_macs();
    // The answer is a plain packet of the family of the header it answers (for SRv6
    // encapsulation: the inner one): the EtherType before it says so.
    let ethertype = match f.ip {
        Ip::V4 { .. } => ethernet::ETHERTYPE_IPV4,
        Ip::V6 { .. } => ethernet::ETHERTYPE_IPV6,
    };
    buf[f.l3 - 2..f.l3].copy_from_slice(&ethertype.to_be_bytes());
    let tcp_len = tcp::MIN_HEADER_LEN + opt_len;
    let l4 = f.l3 + ip_len;
    let total = l4 + tcp_len;
    let pseudo = match f.ip {
        Ip::V4 { src, dst, .. } => {
            Ipv4Packet::new_unchecked(&mut buf[f.l3..l4]).emit(&Ipv4Repr {
                src: dst,
                dst: src,
                next_header: ipv4::PROTO_TCP,
                hop_limit: server.ttl,
                payload_len: tcp_len as u16,
            });
            checksum::pseudo_v4(&dst, &src, ipv4::PROTO_TCP, tcp_len as u16)
        }
        Ip::V6 { src, dst } => {
            Ipv6Packet::new_unchecked(&mut buf[f.l3..l4]).emit(&Ipv6Repr {
                src: dst,
                dst: src,
                next_header: ipv4::PROTO_TCP,
                hop_limit: server.ttl,
                payload_len: tcp_len as u16,
            });
            checksum::pseudo_v6(&dst, &src, ipv4::PROTO_TCP, tcp_len as u32)
        }
    };
    let mut t = TcpSegment::new_unchecked(&mut buf[l4..total]);
    t.set_ports(f.dport, f.sport);
    t.set_seq_ack(issued.isn, f.seq.wrapping_add(1));
    let ece = if issued.ecn { tcp::ECE } else { 0 };
    t.set_header_len_flags(tcp_len, tcp::SYN | tcp::ACK | ece);
    t.set_window_urgent(server.window, 0);
    t.options_mut().copy_from_slice(&opts[..opt_len]);
    t.fill_checksum(pseudo);
    Some(total)
}
