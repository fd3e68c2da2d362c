//! Step 1 of every packet: parse the frame down to TCP, or say which counter ends its journey.
//! The order of checks is the BPF programs' order (`bpf/lib/parse.h`), so both count the same.

use crate::counters::Counter;
use crate::services::ServiceSet;
use std::net::IpAddr;
use synwall_cookie::{Addrs, Flow};
use synwall_wire::ethernet::{self, EthernetFrame};
use synwall_wire::ipv4::{self, Ipv4Packet};
use synwall_wire::ipv6::{self, Ipv6Packet};
use synwall_wire::tcp::TcpSegment;
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
    /// Offset of the TCP header.
    pub l4: usize,
    /// End of the TCP segment (end of the IP payload; link padding excluded).
    pub end: usize,
    /// Network header fields.
    pub ip: Ip,
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

    /// Are the IPv4 header checksum (if any) and the TCP checksum correct?
    pub fn checksums_ok(&self, frame: &[u8]) -> bool {
        let seg = self.segment(frame);
        let pseudo = match &self.ip {
            Ip::V4 { src, dst } => {
                // Only SYNs get here: the IPv4 header checksum is checked only when it matters.
                if !Ipv4Packet::new_unchecked(&frame[self.l3..self.l4]).verify_checksum() {
                    return false;
                }
                checksum::pseudo_v4(src, dst, ipv4::PROTO_TCP, seg.len() as u16)
            }
            Ip::V6 { src, dst } => checksum::pseudo_v6(src, dst, ipv4::PROTO_TCP, seg.len() as u32),
        };
        TcpSegment::new_unchecked(seg).verify_checksum(pseudo)
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
    const MAX: usize = 0xffff;
    match ethertype {
        ethernet::ETHERTYPE_IPV4 => ip.len() > MAX && ip[0] >> 4 == 4 && ip[2..4] == [0, 0],
        ethernet::ETHERTYPE_IPV6 => {
            ip.len() > ipv6::HEADER_LEN + MAX && ip[0] >> 4 == 6 && ip[4..6] == [0, 0]
        }
        _ => false,
    }
}

/// Parse `frame` against the protected `services`.
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
    let ip_bytes = &frame[l3.offset..];
    let ip_error = |e: WireError| match e {
        WireError::Truncated => Drop(Counter::DropTruncated),
        _ => Drop(Counter::DropIpMalformed),
    };
    if is_big_gro(l3.ethertype, ip_bytes) {
        return Pass(Counter::PassBigGro);
    }
    let (ip, l4, end) = match l3.ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let p = match Ipv4Packet::new_checked(ip_bytes) {
                Ok(p) => p,
                Err(e) => return ip_error(e),
            };
            if !services.covers_addr(&IpAddr::from(p.dst())) {
                return Pass(Counter::PassUnprotected);
            }
            // Not TCP (fragmented or not) is not a protected service's: untouched.
            if p.protocol() != ipv4::PROTO_TCP {
                return Pass(Counter::PassNotTcp);
            }
            if p.is_fragment() {
                return Drop(Counter::DropFragment);
            }
            let ip = Ip::V4 {
                src: p.src(),
                dst: p.dst(),
            };
            (
                ip,
                l3.offset + p.header_len(),
                l3.offset + p.total_len() as usize,
            )
        }
        ethernet::ETHERTYPE_IPV6 => {
            let p = match Ipv6Packet::new_checked(ip_bytes) {
                Ok(p) => p,
                Err(e) => return ip_error(e),
            };
            if !services.covers_addr(&IpAddr::from(p.dst())) {
                return Pass(Counter::PassUnprotected);
            }
            let up = match p.upper_layer() {
                Ok(u) => u,
                Err(WireError::ExtHeaderLimit) => return Drop(Counter::DropIpv6ExtDepth),
                Err(_) => return Drop(Counter::DropIpMalformed),
            };
            if up.protocol != ipv4::PROTO_TCP {
                return Pass(Counter::PassNotTcp);
            }
            if up.fragment {
                return Drop(Counter::DropFragment);
            }
            let ip = Ip::V6 {
                src: p.src(),
                dst: p.dst(),
            };
            (ip, l3.offset + up.offset, l3.offset + p.end())
        }
        _ => return Pass(Counter::PassNotIp),
    };
    let seg = match TcpSegment::new_checked(&frame[l4..end]) {
        Ok(s) => s,
        Err(_) => return Drop(Counter::DropTcpMalformed),
    };
    let dst = match ip {
        Ip::V4 { dst, .. } => IpAddr::from(dst),
        Ip::V6 { dst, .. } => IpAddr::from(dst),
    };
    if !services.is_protected(&dst, seg.dst_port()) {
        return Pass(Counter::PassUnprotected);
    }
    Parsed::Tcp(TcpFrame {
        l3: l3.offset,
        l4,
        end,
        ip,
        sport: seg.src_port(),
        dport: seg.dst_port(),
        seq: seg.seq(),
        ack: seg.ack(),
        flags: seg.flags(),
        tcp_header_len: seg.header_len(),
    })
}
