//! Step 1 of every packet: parse the frame down to TCP, or say which counter ends its journey.
//! The order of checks is the BPF programs' order (`bpf/lib/parse.h`), so both count the same.

use crate::counters::Counter;
use crate::services::ServiceSet;
use std::net::IpAddr;
use synwall_cookie::{Addrs, Flow};
use synwall_wire::ethernet::{self, EthernetFrame};
use synwall_wire::ipv4::{self, Ipv4Packet};
use synwall_wire::ipv6::{self, Ipv6Packet};
use synwall_wire::tcp::{self, TcpSegment};
use synwall_wire::{checksum, WireError};

/// The network header of a parsed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    /// IPv4.
    V4 {
        /// Source.
        src: [u8; 4],
        /// Destination.
        dst: [u8; 4],
    },
    /// IPv6.
    V6 {
        /// Source.
        src: [u8; 16],
        /// Destination.
        dst: [u8; 16],
    },
}

/// A frame that parsed down to a TCP segment to a protected service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrame {
    /// Offset of the network header (after Ethernet and VLAN tags).
    pub l3: usize,
    /// The IP header inside SRv6 encapsulation (an IPv4 or IPv6 packet behind a segment routing
    /// header), which Linux delivers on its own: `ip`, the ports and the segment are its.
    pub inner: Option<usize>,
    /// Offset of the TCP header.
    pub l4: usize,
    /// End of the TCP segment (end of the IP payload; link padding excluded). In a first fragment,
    /// the end of this fragment's part of it.
    pub end: usize,
    /// Network header fields; `dst` is the final destination (an IPv6 routing header's, if any).
    pub ip: Ip,
    /// The segment came in the first fragment of a fragmented datagram (IPv4 MF with offset 0,
    /// IPv6 a Fragment header with offset 0, atomic fragments included): its header is all here,
    /// the rest of the segment is not.
    pub fragment: bool,
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
    /// TCP header length.
    pub tcp_header_len: usize,
}

impl TcpFrame {
    /// The flow with the segment's source as client.
    pub fn flow(&self) -> Flow {
        let addrs = match self.ip {
            Ip::V4 { src, dst, .. } => Addrs::V4 {
                client: src,
                service: dst,
            },
            Ip::V6 { src, dst } => Addrs::V6 {
                client: src,
                service: dst,
            },
        };
        Flow {
            addrs,
            client_port: self.sport,
            service_port: self.dport,
        }
    }

    /// The TCP segment's bytes within `frame`.
    pub fn segment<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.l4..self.end]
    }

    /// Is the TCP checksum correct (over the pseudo-header with the final destination, RFC 8200
    /// section 8.1)?
    pub fn tcp_checksum_ok(&self, frame: &[u8]) -> bool {
        let seg = self.segment(frame);
        let pseudo = match &self.ip {
            Ip::V4 { src, dst } => checksum::pseudo_v4(src, dst, ipv4::PROTO_TCP, seg.len() as u16),
            Ip::V6 { src, dst } => checksum::pseudo_v6(src, dst, ipv4::PROTO_TCP, seg.len() as u32),
        };
        TcpSegment::new_unchecked(seg).verify_checksum(pseudo)
    }

    /// Are the IPv4 header checksum (if any) and the TCP checksum correct?
    pub fn checksums_ok(&self, frame: &[u8]) -> bool {
        // Only SYNs get here: the IPv4 header checksum is checked only when it matters.
        let ip = self.inner.unwrap_or(self.l3);
        if matches!(self.ip, Ip::V4 { .. })
            && !Ipv4Packet::new_unchecked(&frame[ip..self.l4]).verify_checksum()
        {
            return false;
        }
        self.tcp_checksum_ok(frame)
    }
}

/// The outcome of parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// TCP to a protected service: decide on it.
    Tcp(TcpFrame),
    /// Not ours: pass untouched, counted.
    Pass(Counter),
    /// Malformed (or a fragment) where it matters: drop, counted.
    Drop(Counter),
}

/// A BIG TCP super-packet, as tc sees one after GRO (or from a local GSO sender): more bytes than
/// the IP length field can say, so the field is 0. Never a SYN or a handshake ACK: untouched.
fn is_big_gro(ethertype: u16, ip: &[u8]) -> bool {
    match ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            ip.len() > MAX_IP_LEN
                && ip[ipv4::field::VER_IHL] >> 4 == 4
                && ip[ipv4::field::LENGTH] == [0, 0]
        }
        ethernet::ETHERTYPE_IPV6 => {
            ip.len() > ipv6::HEADER_LEN + MAX_IP_LEN
                && ip[ipv6::field::VER_TC_FLOW.start] >> 4 == 6
                && ip[ipv6::field::LENGTH] == [0, 0]
        }
        _ => false,
    }
}

// MIN_NONFIRST_OFFSET (3 units of 8 bytes: 24 >= the 20 bytes of a TCP header without options)
// and MAX_IP_LEN, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_parse.rs"));

/// What the network layer leaves to the TCP step.
struct L3Parsed {
    ip: Ip,
    /// Offset of the upper header (frame offset).
    l4: usize,
    /// End of the IP payload (frame offset).
    end: usize,
    protocol: u8,
    /// `None`: not a fragment; `Some(0)`: first fragment; `Some(n)`: offset n (8-byte units).
    frag_offset: Option<u16>,
    /// The encapsulated IP header (SRv6) whose addresses `ip` holds.
    inner: Option<usize>,
}

/// Where an IP packet may lie in the frame.
#[derive(Clone, Copy)]
struct Within {
    /// Where the bytes it may use end: the frame's end, or the outer packet's payload's.
    end: usize,
    /// It is the packet inside an outer one: another IP packet inside it is one level too many.
    inner: bool,
    /// The outer packet is a first fragment: this one may be cut short (its header may not).
    cut: bool,
}

impl Within {
    const FRAME_END: usize = usize::MAX;
}

/// An IPv4 or IPv6 packet (`proto`: an encapsulated one) as the upper layer of an IP packet that
/// is not a non-first fragment: more than one level of encapsulation.
fn nested(proto: u8, frag_offset: Option<u16>) -> bool {
    matches!(proto, ipv4::PROTO_IPV4 | ipv6::NH_IPV6) && frag_offset.is_none_or(|o| o == 0)
}

fn ipv4(
    frame: &[u8],
    l3: usize,
    within: Within,
    services: &ServiceSet,
) -> Result<L3Parsed, Parsed> {
    use Parsed::{Drop, Pass};
    let buf = &frame[l3..within.end.min(frame.len())];
    let p = if within.cut {
        Ipv4Packet::new_checked_header(buf)
    } else {
        Ipv4Packet::new_checked(buf)
    }
    .map_err(ip_error)?;
    let covered = services.covers_addr(&IpAddr::from(p.dst()));
    // Options only when there are any: the LSRR/SSRR destination is a next hop, not the end.
    if p.header_len() > ipv4::MIN_HEADER_LEN {
        match p.source_routed() {
            Ok(true) => return Err(Drop(Counter::DropSourceRoute)),
            Ok(false) => {}
            Err(_) if covered => return Err(Drop(Counter::DropIpMalformed)),
            Err(_) => return Err(Pass(Counter::PassUnprotected)),
        }
    }
    let frag_offset = p.is_fragment().then(|| p.frag_offset());
    if within.inner && nested(p.protocol(), frag_offset) {
        return Err(Drop(Counter::DropEncapNested));
    }
    if !covered {
        return Err(Pass(Counter::PassUnprotected));
    }
    Ok(L3Parsed {
        ip: Ip::V4 {
            src: p.src(),
            dst: p.dst(),
        },
        l4: l3 + p.header_len(),
        end: (l3 + p.total_len() as usize).min(l3 + buf.len()),
        protocol: p.protocol(),
        frag_offset,
        inner: None,
    })
}

fn ipv6(
    frame: &[u8],
    l3: usize,
    within: Within,
    services: &ServiceSet,
) -> Result<L3Parsed, Parsed> {
    use Parsed::{Drop, Pass};
    let buf = &frame[l3..within.end.min(frame.len())];
    let p = if within.cut {
        Ipv6Packet::new_checked_header(buf)
    } else {
        Ipv6Packet::new_checked(buf)
    }
    .map_err(ip_error)?;
    // The walk comes first: a routing header changes the destination that decides. A chain it
    // cannot finish (too long, or running past the packet or the fragment) may hide a routing
    // header the kernel would act on: dropped, whatever the destinations seen so far.
    let up = p.upper_layer().map_err(|e| {
        Drop(match e.error {
            WireError::SourceRoute => Counter::DropSourceRoute,
            WireError::ExtHeaderLimit => Counter::DropIpv6ExtDepth,
            _ => Counter::DropIpMalformed,
        })
    })?;
    let end = (l3 + p.end()).min(l3 + buf.len());
    let frag_offset = up.fragment.map(|f| f.offset);
    if nested(up.protocol, frag_offset) {
        if within.inner {
            return Err(Drop(Counter::DropEncapNested));
        }
        // SRv6 encapsulation: Linux takes the outer headers off and delivers the inner packet,
        // so that one is judged, by its own destination (one level).
        if up.srh {
            let inner_at = l3 + up.offset;
            let inner = Within {
                end,
                inner: true,
                cut: frag_offset.is_some(),
            };
            let n = if up.protocol == ipv6::NH_IPV6 {
                ipv6(frame, inner_at, inner, services)?
            } else {
                ipv4(frame, inner_at, inner, services)?
            };
            // In an outer fragment the inner segment is in a fragment too.
            return Ok(L3Parsed {
                frag_offset: n.frag_offset.or(frag_offset),
                inner: Some(inner_at),
                ..n
            });
        }
    }
    if !services.covers_addr(&IpAddr::from(up.dst)) {
        return Err(Pass(Counter::PassUnprotected));
    }
    Ok(L3Parsed {
        ip: Ip::V6 {
            src: p.src(),
            dst: up.dst,
        },
        l4: l3 + up.offset,
        end,
        protocol: up.protocol,
        frag_offset,
        inner: None,
    })
}

fn ip_error(e: WireError) -> Parsed {
    match e {
        WireError::Truncated => Parsed::Drop(Counter::DropTruncated),
        _ => Parsed::Drop(Counter::DropIpMalformed),
    }
}

/// Parse `frame` against the protected `services` (design: parse order of SPEC section 8).
pub fn parse(frame: &[u8], services: &ServiceSet) -> Parsed {
    use Parsed::{Drop, Pass};
    let eth = match EthernetFrame::new_checked(frame) {
        Ok(e) => e,
        Err(_) => return Drop(Counter::DropTruncated),
    };
    let l3 = match eth.l3() {
        Ok(l3) => l3,
        Err(WireError::TooManyVlanTags) => return Drop(Counter::DropVlanDepth),
        Err(_) => return Drop(Counter::DropTruncated),
    };
    if is_big_gro(l3.ethertype, &frame[l3.offset..]) {
        return Pass(Counter::PassBigGro);
    }
    let outer = Within {
        end: Within::FRAME_END,
        inner: false,
        cut: false,
    };
    let n = match l3.ethertype {
        ethernet::ETHERTYPE_IPV4 => ipv4(frame, l3.offset, outer, services),
        ethernet::ETHERTYPE_IPV6 => ipv6(frame, l3.offset, outer, services),
        _ => return Pass(Counter::PassNotIp),
    };
    let n = match n {
        Ok(n) => n,
        Err(p) => return p,
    };
    // Not TCP (fragmented or not) is not a protected service's: untouched.
    if n.protocol != ipv4::PROTO_TCP {
        return Pass(Counter::PassNotTcp);
    }
    match n.frag_offset {
        // No TCP header here: nothing to judge, nothing it can complete alone. Unless it would
        // overwrite the header of the first fragment (RFC 1858).
        Some(off) if off > 0 && off < MIN_NONFIRST_OFFSET => return Drop(Counter::DropFragment),
        Some(off) if off > 0 => return Pass(Counter::PassFragmentNonfirst),
        _ => {}
    }
    let fragment = n.frag_offset.is_some();
    let seg = &frame[n.l4..n.end];
    // A first fragment must hold the whole TCP header; a bad data offset is still malformed.
    if seg.len() < tcp::MIN_HEADER_LEN {
        return Drop(if fragment {
            Counter::DropFragment
        } else {
            Counter::DropTcpMalformed
        });
    }
    let header_len = ((seg[tcp::field::DATA_OFF] >> 4) as usize) * 4;
    if fragment && header_len >= tcp::MIN_HEADER_LEN && seg.len() < header_len {
        return Drop(Counter::DropFragment);
    }
    let seg = match TcpSegment::new_checked(seg) {
        Ok(s) => s,
        Err(_) => return Drop(Counter::DropTcpMalformed),
    };
    let dst = match n.ip {
        Ip::V4 { dst, .. } => IpAddr::from(dst),
        Ip::V6 { dst, .. } => IpAddr::from(dst),
    };
    if !services.is_protected(&dst, seg.dst_port()) {
        return Pass(Counter::PassUnprotected);
    }
    Parsed::Tcp(TcpFrame {
        l3: l3.offset,
        inner: n.inner,
        l4: n.l4,
        end: n.end,
        ip: n.ip,
        fragment,
        sport: seg.src_port(),
        dport: seg.dst_port(),
        seq: seg.seq(),
        ack: seg.ack(),
        flags: seg.flags(),
        tcp_header_len: seg.header_len(),
    })
}
