//! The frame builder, the only one: Ethernet (+ VLAN tags), IPv4 (options, fragments) or IPv6
//! (extension headers, routing headers), TCP (any flags, raw options, payload), another protocol,
//! or another IP packet (IP in IP, SRv6 encapsulation). Every field can be set, so any can be
//! wrong on purpose; checksums are right (the TCP checksum over the final destination a routing
//! header names, RFC 8200 8.1) unless a caller breaks them afterwards. Headers are written by etherparse, an implementation independent of
//! the code under test, so no frame a test is checked with was made by the code it checks.
//!
//! Two levels: [`Frame`] describes a whole frame (`Frame::new(..)` and struct update for the
//! rest, then [`Frame::build`]); the pieces it is made of ([`eth`], [`V4`], [`ipv6`], [`Tcp`],
//! the extension headers, [`v6_frame`]) put together frames no description covers (fragments cut
//! by hand, chains whose next-header bytes lie). The lab's floods, the per-packet benchmark's SYNs
//! and the tests' frames are all built here.

use etherparse::{
    EtherType, Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header, Ipv4Options,
    Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, SingleVlanHeader, TcpHeader, UdpHeader,
    VlanId, VlanPcp,
};
use std::net::{IpAddr, Ipv6Addr};

/// TCP flags (the wire crate's).
pub use synwall_wire::tcp::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};

/// IP protocol numbers / IPv6 next-header values the builder and its callers name.
pub const NH_HOP_BY_HOP: u8 = 0;
/// An encapsulated IPv4 packet (IP in IP).
pub const NH_IPV4: u8 = 4;
/// TCP.
pub const NH_TCP: u8 = 6;
/// UDP.
pub const NH_UDP: u8 = 17;
/// An encapsulated IPv6 packet (IPv6 in IPv6, SRv6 encapsulation).
pub const NH_IPV6: u8 = 41;
/// IPv6 routing header.
pub const NH_ROUTING: u8 = 43;
/// IPv6 fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// Authentication header.
pub const NH_AUTH: u8 = 51;
/// IPv6 destination options.
pub const NH_DEST_OPTS: u8 = 60;

/// The client's MAC in frames [`Frame::new`] builds (source).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The router's MAC in frames [`Frame::new`] builds (destination).
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// 802.1Q tag protocol identifier.
pub const TPID_8021Q: u16 = 0x8100;
/// 802.1ad (provider bridging, the outer tag of a QinQ stack) tag protocol identifier.
pub const TPID_8021AD: u16 = 0x88a8;

/// One VLAN tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vlan {
    /// Tag protocol identifier (0x8100, 0x88a8, or anything a test wants).
    pub tpid: u16,
    /// VLAN id (12 bits).
    pub id: u16,
}

/// Tags with these protocol identifiers, outermost first, VLAN ids 100, 101, ...
pub fn tags(tpids: &[u16]) -> Vec<Vlan> {
    tpids
        .iter()
        .enumerate()
        .map(|(i, &tpid)| Vlan {
            tpid,
            id: 100 + i as u16,
        })
        .collect()
}

/// Tags with these VLAN ids, outermost first: one 802.1Q tag, or an 802.1ad outer tag and 802.1Q
/// tags inside it.
pub fn stack(ids: &[u16]) -> Vec<Vlan> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| Vlan {
            tpid: if i == 0 && ids.len() > 1 {
                TPID_8021AD
            } else {
                TPID_8021Q
            },
            id,
        })
        .collect()
}

// --- TCP options ---------------------------------------------------------------------------------

/// MSS option.
pub fn opt_mss(mss: u16) -> Vec<u8> {
    let m = mss.to_be_bytes();
    vec![2, 4, m[0], m[1]]
}

/// Window-scale option after a NOP (4 bytes, as Linux sends it).
pub fn opt_ws(shift: u8) -> Vec<u8> {
    vec![1, 3, 3, shift]
}

/// SACK-Permitted (2 bytes).
pub fn opt_sack() -> Vec<u8> {
    vec![4, 2]
}

/// Timestamps (10 bytes).
pub fn opt_ts(tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut v = vec![8, 10];
    v.extend_from_slice(&tsval.to_be_bytes());
    v.extend_from_slice(&tsecr.to_be_bytes());
    v
}

/// Options one after the other, cut at 40 bytes and padded with EOL to a multiple of 4.
pub fn opts_bytes(items: &[Vec<u8>]) -> Vec<u8> {
    let mut o: Vec<u8> = items.concat();
    o.truncate(40);
    while o.len() % 4 != 0 {
        o.push(0);
    }
    o
}

/// Linux's SYN options: MSS 1460, SACK-Permitted, Timestamps (TSval 0x1000), NOP, WScale 7.
pub fn linux_syn_options() -> Vec<u8> {
    linux_syn_options_ts(0x1000)
}

/// [`linux_syn_options`] with TSval `tsval`.
pub fn linux_syn_options_ts(tsval: u32) -> Vec<u8> {
    opts_bytes(&[opt_mss(1460), opt_sack(), opt_ts(tsval, 0), opt_ws(7)])
}

// --- the whole frame -----------------------------------------------------------------------------

/// A frame to build: everything from the Ethernet header to the payload and trailing padding.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// VLAN tags, outermost first.
    pub vlans: Vec<Vlan>,
    /// Source address (the family of `src` and `dst` must agree).
    pub src: IpAddr,
    /// Destination address (IPv6: the outer one; a routing header may name another).
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 identification.
    pub ident: u16,
    /// IPv4 Don't Fragment.
    pub df: bool,
    /// IPv4 (more fragments, fragment offset in 8-byte units).
    pub frag: (bool, u16),
    /// IPv4 options (a multiple of 4, at most 40 bytes).
    pub ipv4_options: Vec<u8>,
    /// IPv6 traffic class.
    pub traffic_class: u8,
    /// IPv6 flow label (20 bits).
    pub flow_label: u32,
    /// IPv6 extension headers, (type, whole header): the first byte of each (next header) is
    /// overwritten to chain them. See [`frag_header`], [`routing_header`], [`ext_header`].
    pub ext: Vec<(u8, Vec<u8>)>,
    /// IP protocol / final next header: TCP (6), or anything else, which carries a UDP header
    /// with the ports and then `payload`.
    pub proto: u8,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// TCP flags byte.
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Raw TCP options (at most 40 bytes; zero-padded to a multiple of 4).
    pub options: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Trailing link-layer padding (zero bytes after the IP packet).
    pub padding: usize,
    /// Encapsulation: this packet's upper layer is that whole IP packet (protocol 4 or 41; its
    /// own MACs, tags and padding unused), and the TCP fields above are unused (SRv6 when `ext`
    /// holds a segment routing header).
    pub encap: Option<Box<Frame>>,
}

impl Frame {
    /// A TCP segment from [`CLIENT_MAC`] to [`ROUTER_MAC`] with `flags`: no options or payload,
    /// seq 0x01020304, window 64240, TTL 64, IPv4 DF, IPv6 traffic class 0x28 and flow label
    /// 0x12345 (a SYN+ACK must not copy them).
    pub fn new(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Frame {
        Frame {
            dst_mac: ROUTER_MAC,
            src_mac: CLIENT_MAC,
            vlans: Vec::new(),
            src,
            dst,
            ttl: 64,
            ident: 0,
            df: true,
            frag: (false, 0),
            ipv4_options: Vec::new(),
            traffic_class: 0x28,
            flow_label: 0x12345,
            ext: Vec::new(),
            proto: NH_TCP,
            sport,
            dport,
            seq: 0x0102_0304,
            ack: 0,
            flags,
            window: 64240,
            options: Vec::new(),
            payload: Vec::new(),
            padding: 0,
            encap: None,
        }
    }

    /// The destination the TCP checksum covers: the final one a routing header names, else
    /// `dst`.
    pub fn final_dst(&self) -> IpAddr {
        match self.dst {
            IpAddr::V6(_) => final_dst_of(&self.ext).map_or(self.dst, IpAddr::from),
            IpAddr::V4(_) => self.dst,
        }
    }

    /// The TCP segment of this frame.
    pub fn tcp(&self) -> Tcp {
        Tcp {
            sport: self.sport,
            dport: self.dport,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            options: self.options.clone(),
            payload: self.payload.clone(),
        }
    }

    /// The upper layer and its protocol: the TCP segment, the encapsulated IP packet, or for
    /// another protocol a UDP header and the payload.
    fn upper(&self) -> (u8, Vec<u8>) {
        if let Some(inner) = &self.encap {
            let nh = if inner.src.is_ipv4() {
                NH_IPV4
            } else {
                NH_IPV6
            };
            return (nh, inner.ip_packet());
        }
        (self.proto, self.transport())
    }

    /// The segment: TCP, or for another protocol a UDP header and the payload.
    fn transport(&self) -> Vec<u8> {
        if self.proto == NH_TCP {
            return self.tcp().bytes(self.src, self.final_dst());
        }
        let mut u = UdpHeader {
            source_port: self.sport,
            destination_port: self.dport,
            length: (8 + self.payload.len()) as u16,
            checksum: 0,
        };
        u.checksum = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                u.calc_checksum_ipv4_raw(s.octets(), d.octets(), &self.payload)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                u.calc_checksum_ipv6_raw(s.octets(), d.octets(), &self.payload)
            }
            _ => panic!("mixed address families"),
        }
        .expect("udp checksum");
        let mut out = u.to_bytes().to_vec();
        out.extend_from_slice(&self.payload);
        out
    }

    /// The IP packet (IP header onward).
    pub fn ip_packet(&self) -> Vec<u8> {
        let (proto, upper) = self.upper();
        match (self.src, self.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => {
                let mut ip = V4::new(self.src, self.dst);
                ip.proto = proto;
                ip.ttl = self.ttl;
                ip.ident = self.ident;
                ip.df = self.df;
                (ip.mf, ip.frag_offset) = self.frag;
                ip.options = self.ipv4_options.clone();
                let mut out = ip.bytes(upper.len());
                out.extend(upper);
                out
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let (first, chain) = chain(&self.ext, proto);
                let mut h = Ipv6 {
                    traffic_class: self.traffic_class,
                    flow_label: self.flow_label,
                    hop_limit: self.ttl,
                    ..Ipv6::new(s, d, first)
                }
                .bytes(chain.len() + upper.len());
                h.extend(chain);
                h.extend(upper);
                h
            }
            _ => panic!("mixed address families"),
        }
    }

    /// The whole frame.
    pub fn build(&self) -> Vec<u8> {
        let ethertype = if self.src.is_ipv4() { 0x0800 } else { 0x86dd };
        let mut f = eth_tagged(self.dst_mac, self.src_mac, &self.vlans, ethertype);
        f.extend(self.ip_packet());
        f.extend(std::iter::repeat_n(0u8, self.padding));
        f
    }
}

// --- pieces --------------------------------------------------------------------------------------

/// Ethernet addresses of a frame.
#[derive(Clone, Copy, Debug)]
pub struct Macs {
    /// Destination.
    pub dst: [u8; 6],
    /// Source.
    pub src: [u8; 6],
}

/// Ethernet header and `vlans` tags, then `ethertype`.
pub fn eth_tagged(dst: [u8; 6], src: [u8; 6], vlans: &[Vlan], ethertype: u16) -> Vec<u8> {
    let mut out = Ethernet2Header {
        destination: dst,
        source: src,
        ether_type: EtherType(vlans.first().map_or(ethertype, |v| v.tpid)),
    }
    .to_bytes()
    .to_vec();
    for (i, v) in vlans.iter().enumerate() {
        out.extend_from_slice(
            &SingleVlanHeader {
                pcp: VlanPcp::ZERO,
                drop_eligible_indicator: false,
                vlan_id: VlanId::try_new(v.id).expect("vlan id"),
                ether_type: EtherType(vlans.get(i + 1).map_or(ethertype, |n| n.tpid)),
            }
            .to_bytes(),
        );
    }
    out
}

/// Ethernet header with tags of VLAN ids `vlans` (see [`stack`]), then `ethertype`.
pub fn eth(m: Macs, vlans: &[u16], ethertype: u16) -> Vec<u8> {
    eth_tagged(m.dst, m.src, &stack(vlans), ethertype)
}

/// A TCP segment.
#[derive(Clone, Debug)]
pub struct Tcp {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// Raw option bytes (at most 40; zero-padded to a multiple of 4).
    pub options: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Tcp {
    /// A SYN with Linux's options ([`linux_syn_options`]) and an ISN taken from the port.
    pub fn syn(sport: u16, dport: u16) -> Tcp {
        Tcp {
            sport,
            dport,
            seq: 0x1000_0000u32.wrapping_add(sport as u32 * 7919),
            ack: 0,
            flags: SYN,
            window: 64240,
            options: linux_syn_options(),
            payload: Vec::new(),
        }
    }

    /// The segment's bytes, its checksum over `src` and `dst` (the FINAL destination).
    pub fn bytes(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let mut h = TcpHeader::new(self.sport, self.dport, self.seq, self.window);
        h.acknowledgment_number = self.ack;
        let f = self.flags;
        h.fin = f & FIN != 0;
        h.syn = f & SYN != 0;
        h.rst = f & RST != 0;
        h.psh = f & PSH != 0;
        h.ack = f & ACK != 0;
        h.urg = f & URG != 0;
        h.ece = f & ECE != 0;
        h.cwr = f & CWR != 0;
        h.set_options_raw(&self.options).expect("options fit");
        h.checksum = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => h
                .calc_checksum_ipv4_raw(s.octets(), d.octets(), &self.payload)
                .expect("checksum"),
            (IpAddr::V6(s), IpAddr::V6(d)) => h
                .calc_checksum_ipv6_raw(s.octets(), d.octets(), &self.payload)
                .expect("checksum"),
            _ => panic!("mixed address families"),
        };
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(&self.payload);
        out
    }
}

/// IPv4 header fields.
#[derive(Clone, Debug)]
pub struct V4 {
    /// Source.
    pub src: [u8; 4],
    /// Destination.
    pub dst: [u8; 4],
    /// Protocol.
    pub proto: u8,
    /// TTL.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub df: bool,
    /// More Fragments.
    pub mf: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Options (a multiple of 4, at most 40 bytes).
    pub options: Vec<u8>,
}

impl V4 {
    /// TCP from `src` to `dst`, TTL 64, identification 0x5757, DF.
    pub fn new(src: IpAddr, dst: IpAddr) -> V4 {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
            panic!("not IPv4")
        };
        V4 {
            src: s.octets(),
            dst: d.octets(),
            proto: NH_TCP,
            ttl: 64,
            ident: 0x5757,
            df: true,
            mf: false,
            frag_offset: 0,
            options: Vec::new(),
        }
    }

    /// The header (checksum filled in) for `payload_len` bytes of payload.
    pub fn bytes(&self, payload_len: usize) -> Vec<u8> {
        let mut h =
            Ipv4Header::new(0, self.ttl, IpNumber(self.proto), self.src, self.dst).expect("ipv4");
        h.identification = self.ident;
        h.dont_fragment = self.df;
        h.more_fragments = self.mf;
        h.fragment_offset = IpFragOffset::try_new(self.frag_offset).expect("offset");
        h.options = Ipv4Options::try_from(self.options.as_slice()).expect("ipv4 options");
        h.set_payload_len(payload_len).expect("ipv4 length");
        h.header_checksum = h.calc_header_checksum();
        h.to_bytes().to_vec()
    }
}

/// IPv6 fixed-header fields.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    /// Source.
    pub src: Ipv6Addr,
    /// Destination (the outer one).
    pub dst: Ipv6Addr,
    /// The first next header.
    pub next_header: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6 {
    /// Traffic class 0, flow label 0, hop limit 64.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8) -> Ipv6 {
        Ipv6 {
            src,
            dst,
            next_header,
            traffic_class: 0,
            flow_label: 0,
            hop_limit: 64,
        }
    }

    /// The header for `payload_len` bytes (extension headers included).
    pub fn bytes(&self, payload_len: usize) -> Vec<u8> {
        Ipv6Header {
            traffic_class: self.traffic_class,
            flow_label: etherparse::Ipv6FlowLabel::try_new(self.flow_label).expect("flow label"),
            payload_length: payload_len as u16,
            next_header: IpNumber(self.next_header),
            hop_limit: self.hop_limit,
            source: self.src.octets(),
            destination: self.dst.octets(),
        }
        .to_bytes()
        .to_vec()
    }
}

/// An IPv6 header (traffic class 0, flow label 0, hop limit 64) for `payload_len` bytes.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload_len: usize) -> Vec<u8> {
    Ipv6::new(src, dst, next_header).bytes(payload_len)
}

/// Chain extension headers ([`Frame::ext`]): each one's first byte names the next, the last one
/// names `upper`. Returns the first next header (for the fixed header) and the chain's bytes.
pub fn chain(ext: &[(u8, Vec<u8>)], upper: u8) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    for (i, (_, body)) in ext.iter().enumerate() {
        let mut b = body.clone();
        b[0] = ext.get(i + 1).map_or(upper, |e| e.0);
        out.extend_from_slice(&b);
    }
    (ext.first().map_or(upper, |e| e.0), out)
}

/// The destination the first routing header of a chain names when it has segments left and a
/// type that names one (2: the home address, 4: segment list[0], both at offset 8).
pub fn final_dst_of(ext: &[(u8, Vec<u8>)]) -> Option<[u8; 16]> {
    let (_, b) = ext.iter().find(|(ty, _)| *ty == NH_ROUTING)?;
    if b.len() >= 24 && b[3] > 0 && (b[2] == 2 || b[2] == 4) {
        b[8..24].try_into().ok()
    } else {
        None
    }
}

/// A destination-options header holding one PadN option (8 bytes).
pub fn dest_opts(next_header: u8) -> Vec<u8> {
    Ipv6RawExtHeader::new_raw(IpNumber(next_header), &[1, 4, 0, 0, 0, 0])
        .expect("dest opts")
        .to_bytes()
        .to_vec()
}

/// A fragment header; `offset` in 8-byte units.
pub fn frag6(next_header: u8, offset: u16, more: bool, ident: u32) -> Vec<u8> {
    Ipv6FragmentHeader::new(
        IpNumber(next_header),
        IpFragOffset::try_new(offset).expect("offset"),
        more,
        ident,
    )
    .to_bytes()
    .to_vec()
}

/// A routing header of any type: `rest` follows the type and segments-left bytes (4 bytes the
/// type defines, then 8-byte multiples).
pub fn routing(next_header: u8, routing_type: u8, segments_left: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![routing_type, segments_left];
    p.extend_from_slice(rest);
    Ipv6RawExtHeader::new_raw(IpNumber(next_header), &p)
        .expect("routing header")
        .to_bytes()
        .to_vec()
}

/// A routing header of `routing_type` holding `addrs` after its first 8 bytes (an SRH's segment
/// list, list[0] — the LAST segment — first; a type-2 header's home address; a type-0 header's
/// addresses). Byte 4 (an SRH's last entry) is `addrs.len() - 1`.
pub fn routing_addrs(
    next_header: u8,
    routing_type: u8,
    segments_left: u8,
    addrs: &[Ipv6Addr],
) -> Vec<u8> {
    let mut rest = vec![addrs.len().saturating_sub(1) as u8, 0, 0, 0];
    for a in addrs {
        rest.extend_from_slice(&a.octets());
    }
    routing(next_header, routing_type, segments_left, &rest)
}

/// A segment routing header (routing type 4), `segments` in wire order (segment list[0], the
/// LAST segment, first).
pub fn srh(next_header: u8, segments_left: u8, segments: &[Ipv6Addr]) -> Vec<u8> {
    routing_addrs(next_header, 4, segments_left, segments)
}

/// A type-0 routing header (deprecated source routing, RFC 5095).
pub fn rh0(next_header: u8, segments_left: u8, addrs: &[Ipv6Addr]) -> Vec<u8> {
    let mut rest = vec![0, 0, 0, 0];
    for a in addrs {
        rest.extend_from_slice(&a.octets());
    }
    routing(next_header, 0, segments_left, &rest)
}

/// A Fragment header for [`Frame::ext`]: offset in 8-byte units, M flag.
pub fn frag_header(offset: u16, more: bool) -> (u8, Vec<u8>) {
    (NH_FRAGMENT, frag6(0, offset, more, 0x0bad_cafe))
}

/// A routing header for [`Frame::ext`] (see [`routing_addrs`]).
pub fn routing_header(kind: u8, segments_left: u8, addrs: &[[u8; 16]]) -> (u8, Vec<u8>) {
    let addrs: Vec<Ipv6Addr> = addrs.iter().map(|a| Ipv6Addr::from(*a)).collect();
    (NH_ROUTING, routing_addrs(0, kind, segments_left, &addrs))
}

/// An extension header for [`Frame::ext`] of `ty` whose length field says `units`
/// (hop-by-hop, routing, destination options: 8*(units+1) bytes, the options areas one PadN; AH:
/// 4*(units+2); fragment: 8 bytes, offset 0, no M flag, identification 0).
pub fn ext_header(ty: u8, units: u8) -> (u8, Vec<u8>) {
    let len = match ty {
        NH_FRAGMENT => 8,
        NH_AUTH => (units as usize + 2) * 4,
        _ => (units as usize + 1) * 8,
    };
    let mut b = vec![0u8; len];
    if ty != NH_FRAGMENT {
        b[1] = units;
        if (ty == NH_HOP_BY_HOP || ty == NH_DEST_OPTS) && len > 2 {
            // PadN over the rest so the options are well-formed.
            b[2] = 1;
            b[3] = (len - 4) as u8;
        }
    }
    (ty, b)
}

/// A whole frame: Ethernet (+ tags of VLAN ids `vlans`), IPv4 (identification 0x5757, DF) or
/// IPv6 (no extension headers) and the segment, checksums right.
pub fn frame(m: Macs, vlans: &[u16], src: IpAddr, dst: IpAddr, t: &Tcp) -> Vec<u8> {
    let seg = t.bytes(src, dst);
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let mut f = eth(m, vlans, 0x0800);
            f.extend(V4::new(src, dst).bytes(seg.len()));
            f.extend(seg);
            f
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut f = eth(m, vlans, 0x86dd);
            f.extend(ipv6(s, d, NH_TCP, seg.len()));
            f.extend(seg);
            f
        }
        _ => panic!("mixed address families"),
    }
}

/// IPv6 frame: fixed header to `outer_dst`, then `exts` (already chained: the first one's type is
/// `first_nh`), then `body`.
pub fn v6_frame(
    m: Macs,
    src: Ipv6Addr,
    outer_dst: Ipv6Addr,
    first_nh: u8,
    exts: &[Vec<u8>],
    body: &[u8],
) -> Vec<u8> {
    let plen: usize = exts.iter().map(Vec::len).sum::<usize>() + body.len();
    let mut f = eth(m, &[], 0x86dd);
    f.extend(ipv6(src, outer_dst, first_nh, plen));
    for e in exts {
        f.extend_from_slice(e);
    }
    f.extend_from_slice(body);
    f
}

/// `IPv6 / Fragment(offset 0, M=0, nh=DestOpts) / DestOpts / TCP`: an atomic fragment with a
/// destination-options header after the fragment header.
pub fn atomic_fragment(m: Macs, src: Ipv6Addr, dst: Ipv6Addr, t: &Tcp, ident: u32) -> Vec<u8> {
    let seg = t.bytes(src.into(), dst.into());
    v6_frame(
        m,
        src,
        dst,
        NH_FRAGMENT,
        &[frag6(NH_DEST_OPTS, 0, false, ident), dest_opts(NH_TCP)],
        &seg,
    )
}

/// `fragmentable` (the headers that belong in the fragmentable part, then the segment; the first
/// of them is `inner_nh`) cut into two IPv6 fragments at `cut` bytes (a multiple of 8).
pub fn two_fragments(
    m: Macs,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    inner_nh: u8,
    fragmentable: &[u8],
    cut: usize,
    ident: u32,
) -> [Vec<u8>; 2] {
    assert_eq!(cut % 8, 0);
    let first = v6_frame(
        m,
        src,
        dst,
        NH_FRAGMENT,
        &[frag6(inner_nh, 0, true, ident)],
        &fragmentable[..cut],
    );
    let second = v6_frame(
        m,
        src,
        dst,
        NH_FRAGMENT,
        &[frag6(inner_nh, (cut / 8) as u16, false, ident)],
        &fragmentable[cut..],
    );
    [first, second]
}

/// An IPv4 datagram carrying `seg` cut into two fragments at `cut` bytes (a multiple of 8). Its
/// identification is the segment's source port, so that fragments of different crafted datagrams
/// never meet in one reassembly queue.
pub fn v4_two_fragments(m: Macs, src: IpAddr, dst: IpAddr, seg: &[u8], cut: usize) -> [Vec<u8>; 2] {
    assert_eq!(cut % 8, 0);
    let mut ip = V4::new(src, dst);
    ip.ident = u16::from_be_bytes([seg[0], seg[1]]);
    ip.df = false;
    ip.mf = true;
    let mut a = eth(m, &[], 0x0800);
    a.extend(ip.bytes(cut));
    a.extend_from_slice(&seg[..cut]);
    ip.mf = false;
    ip.frag_offset = (cut / 8) as u16;
    let mut b = eth(m, &[], 0x0800);
    b.extend(ip.bytes(seg.len() - cut));
    b.extend_from_slice(&seg[cut..]);
    [a, b]
}

#[cfg(test)]
mod tests {
    use super::*;
    use synwall_wire::checksum::{checksum, finish, sum};

    /// The TCP checksum of `f` (IP header at `l3`, TCP at `l4`) over `dst`, summed with the wire
    /// crate's code: 0 when right.
    fn tcp_sum(f: &[u8], l3: usize, l4: usize, dst: &[u8]) -> u16 {
        let tcp_len = f.len() - l4;
        let mut p = Vec::new();
        if f[l3] >> 4 == 4 {
            p.extend_from_slice(&f[l3 + 12..l3 + 16]);
            p.extend_from_slice(dst);
            p.extend_from_slice(&[0, 6]);
            p.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        } else {
            p.extend_from_slice(&f[l3 + 8..l3 + 24]);
            p.extend_from_slice(dst);
            p.extend_from_slice(&(tcp_len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 6]);
        }
        finish(sum(sum(0, &p), &f[l4..]))
    }

    #[test]
    fn checksums_verify_to_zero() {
        for (src, dst) in [("10.66.1.2", "10.66.2.2"), ("fd66:1::2", "fd66:2::2")] {
            let s = Frame {
                ack: 9,
                seq: 7,
                window: 1000,
                options: opts_bytes(&[vec![1, 1], opt_ts(1, 2)]),
                payload: b"abc".to_vec(),
                vlans: tags(&[TPID_8021AD, TPID_8021Q]),
                ..Frame::new(src.parse().unwrap(), dst.parse().unwrap(), 40000, 8080, ACK)
            };
            let f = s.build();
            assert_eq!(&f[12..14], &[0x88, 0xa8]);
            assert_eq!(&f[16..18], &[0x81, 0x00]);
            let l3 = 22;
            let l4 = if s.src.is_ipv4() { l3 + 20 } else { l3 + 40 };
            if s.src.is_ipv4() {
                assert_eq!(checksum(&f[l3..l4]), 0, "IPv4 header checksum");
            }
            let dst = &f[if s.src.is_ipv4() {
                l3 + 16..l3 + 20
            } else {
                l3 + 24..l3 + 40
            }];
            assert_eq!(tcp_sum(&f, l3, l4, dst), 0, "TCP checksum");
            assert_eq!(f[l4 + 12] >> 4, 8, "data offset");
        }
    }

    #[test]
    fn a_routing_header_moves_the_checksums_destination() {
        let final_dst: Ipv6Addr = "2001:db8:1::80".parse().unwrap();
        let s = Frame {
            ext: vec![
                ext_header(NH_HOP_BY_HOP, 0),
                routing_header(4, 1, &[final_dst.octets()]),
                frag_header(0, false),
            ],
            ..Frame::new(
                "2001:db8:ffff::10".parse().unwrap(),
                "2001:db8:2::1".parse().unwrap(),
                40000,
                443,
                SYN,
            )
        };
        let f = s.build();
        let (l3, l4) = (14, 14 + 40 + 8 + 24 + 8);
        assert_eq!(f[l3 + 6], NH_HOP_BY_HOP);
        assert_eq!(f[l3 + 40], NH_ROUTING);
        assert_eq!(f[l3 + 48], NH_FRAGMENT);
        assert_eq!(f[l3 + 72], NH_TCP);
        assert_eq!(tcp_sum(&f, l3, l4, &final_dst.octets()), 0);
        assert_ne!(tcp_sum(&f, l3, l4, &f[l3 + 24..l3 + 40]), 0);
    }

    #[test]
    fn an_encapsulated_packet_is_whole_behind_the_outer_headers() {
        let inner = Frame {
            options: linux_syn_options(),
            ..Frame::new(
                "2001:db8:ffff::10".parse().unwrap(),
                "2001:db8:1::80".parse().unwrap(),
                40000,
                443,
                SYN,
            )
        };
        let inner_ip = inner.ip_packet();
        // SRv6: an IPv6 outer header and a segment routing header, the inner packet after it.
        let srh = routing_header(4, 0, &[[0x20; 16]]);
        let outer = Frame {
            ext: vec![srh.clone()],
            encap: Some(Box::new(inner.clone())),
            vlans: tags(&[TPID_8021Q]),
            ..Frame::new(
                "2001:db8:9::1".parse().unwrap(),
                "2001:db8:9::2".parse().unwrap(),
                0,
                0,
                0,
            )
        };
        let f = outer.build();
        let l3 = 18;
        assert_eq!(&f[16..18], &[0x86, 0xdd]);
        assert_eq!(f[l3 + 6], NH_ROUTING);
        assert_eq!(
            f[l3 + 40],
            NH_IPV6,
            "the routing header names the inner packet"
        );
        let plen = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]) as usize;
        assert_eq!(plen, srh.1.len() + inner_ip.len());
        assert_eq!(&f[l3 + 40 + srh.1.len()..], &inner_ip[..]);
        // IP in IP: an IPv4 outer header, its checksum right, protocol 4.
        let inner4 = Frame::new(
            "192.0.2.10".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
            40000,
            443,
            SYN,
        );
        let outer4 = Frame {
            encap: Some(Box::new(inner4.clone())),
            ..Frame::new(
                "192.0.2.1".parse().unwrap(),
                "192.0.2.2".parse().unwrap(),
                0,
                0,
                0,
            )
        };
        let f = outer4.build();
        assert_eq!(f[14 + 9], NH_IPV4);
        assert_eq!(checksum(&f[14..34]), 0, "outer header checksum");
        assert_eq!(&f[34..], &inner4.ip_packet()[..]);
    }
}
