//! IPv6 headers (RFC 8200) and a bounded walk over extension headers.

use crate::{be16, put16, put32, Result, WireError};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Most extension headers walked before the packet is refused (the BPF walk has the same bound):
/// RFC 8200's longest recommended chain without ESP (hop-by-hop, destination options, routing,
/// fragment, AH, destination options).
pub const MAX_EXT_HEADERS: usize = 6;
/// Hop-by-Hop Options.
pub const NH_HOP_BY_HOP: u8 = 0;
/// Routing.
pub const NH_ROUTING: u8 = 43;
/// Fragment.
pub const NH_FRAGMENT: u8 = 44;
/// Authentication Header.
pub const NH_AUTH: u8 = 51;
/// Destination Options.
pub const NH_DEST_OPTS: u8 = 60;
/// An encapsulated IPv6 packet (IPv6 in IPv6; RFC 2473, SRv6 encapsulation RFC 8986).
pub const NH_IPV6: u8 = 41;
/// The longest extension header: a length field of 255 units of 8 bytes, plus the first 8.
pub const MAX_EXT_HEADER_LEN: usize = 256 * 8;
/// Routing type 0 (deprecated by RFC 5095: a list of addresses anyone may route through).
pub const ROUTING_TYPE_0: u8 = 0;
/// Routing type 2 (Mobile IPv6, RFC 6275): one address, the home address.
pub const ROUTING_TYPE_2: u8 = 2;
/// Routing type 4, the Segment Routing Header (RFC 8754): segment 0 is the last segment.
pub const ROUTING_TYPE_SRH: u8 = 4;
/// Where a routing header of type 2 or 4 holds the final destination (the home address, or
/// segment list\[0\]).
const ROUTING_FINAL_DST: usize = 8;

/// A view of an IPv6 packet. `new_checked` guarantees the fixed header and the declared payload fit.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

/// A Fragment header met on the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Fragment offset in 8-byte units (0: the first fragment, which holds the upper header).
    pub offset: u16,
    /// The M (more fragments) flag.
    pub more: bool,
}

/// The upper layer found by [`Ipv6Packet::upper_layer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upper {
    /// Its protocol number (for a fragment: the protocol the Fragment header names).
    pub protocol: u8,
    /// Its offset from the start of the IPv6 header (for a non-first fragment: where the fragment
    /// data starts; there is no upper header).
    pub offset: usize,
    /// The packet is a fragment: the last Fragment header walked.
    pub fragment: Option<Fragment>,
    /// The final destination: the fixed header's, or the one a routing header with segments
    /// left names (RFC 8200 section 8.1: what the upper layer's pseudo-header uses).
    pub dst: [u8; 16],
    /// A segment routing header (routing type 4) was walked: an IPv6 or IPv4 packet behind it
    /// is SRv6 encapsulation, which Linux takes off once segments left reaches 0 and delivers
    /// the inner packet on its own (`ipv6_srh_rcv`).
    pub srh: bool,
}

/// Why [`Ipv6Packet::upper_layer`] stopped, and the final destination found up to there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtError {
    /// [`WireError::Malformed`] (a header past the payload, a routing header too short for the
    /// address it must hold), [`WireError::ExtHeaderLimit`] (more than [`MAX_EXT_HEADERS`]) or
    /// [`WireError::SourceRoute`] (a routing header that hides where the packet goes).
    pub error: WireError,
    /// The final destination as far as the walk got.
    pub dst: [u8; 16],
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Check version and payload length against the buffer (trailing padding is allowed).
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Ipv6Packet { buffer };
        // Payload length 0 means a jumbogram (RFC 2675) or nothing at all: neither carries TCP here.
        if p.version() != 6 || p.payload_len() == 0 {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < HEADER_LEN + p.payload_len() as usize {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// Like [`Ipv6Packet::new_checked`], but the payload may be cut short: for a packet inside
    /// the first fragment of an outer one, of which only the start is here. The fixed header
    /// must be whole; [`Ipv6Packet::upper_layer`] walks what there is.
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Ipv6Packet { buffer };
        if p.version() != 6 || p.payload_len() == 0 {
            return Err(WireError::Malformed);
        }
        Ok(p)
    }

    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Version field.
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (be16(self.b(), 0) >> 4) as u8
    }
    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        u32::from_be_bytes([0, self.b()[1] & 0x0f, self.b()[2], self.b()[3]])
    }
    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        be16(self.b(), 4)
    }
    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.b()[6]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[7]
    }
    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        self.b()[8..24].try_into().expect("16 bytes")
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        self.b()[24..40].try_into().expect("16 bytes")
    }
    /// End of the packet (fixed header + payload), excluding link-layer padding.
    pub fn end(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    /// Walk at most [`MAX_EXT_HEADERS`] extension headers to the upper layer, and find the final
    /// destination on the way:
    /// - hop-by-hop, destination options and AH are skipped;
    /// - a routing header of type 0, a second routing header, or one of a type other than 2 or 4
    ///   with segments left > 0 is [`WireError::SourceRoute`]; with segments left 0 it is skipped;
    ///   type 2 or 4 with segments left > 0 names the final destination (its 16 bytes at offset
    ///   8: the home address, or segment list\[0\]);
    /// - a Fragment header with offset > 0 ends the walk (what follows is fragment data, the
    ///   protocol is the one it names); with offset 0 (a first or atomic fragment) the walk goes
    ///   on, since the headers after it are in this fragment.
    ///
    /// A header running past the payload (or past the buffer of a view made with
    /// [`Ipv6Packet::new_checked_header`]) is [`WireError::Malformed`]; more than
    /// [`MAX_EXT_HEADERS`] extension headers (Fragment headers included)
    /// [`WireError::ExtHeaderLimit`].
    pub fn upper_layer(&self) -> core::result::Result<Upper, ExtError> {
        let b = self.b();
        let end = self.end().min(b.len());
        let mut up = Upper {
            protocol: self.next_header(),
            offset: HEADER_LEN,
            fragment: None,
            dst: self.dst(),
            srh: false,
        };
        let mut routed = false;
        let mut walked = 0;
        loop {
            let off = up.offset;
            let fail = |error| ExtError { error, dst: up.dst };
            let is_ext = matches!(
                up.protocol,
                NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS | NH_AUTH | NH_FRAGMENT
            );
            if !is_ext {
                return Ok(up);
            }
            // One more extension header than the bound, whatever it is.
            if walked == MAX_EXT_HEADERS {
                return Err(fail(WireError::ExtHeaderLimit));
            }
            let len = match up.protocol {
                NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS | NH_AUTH => {
                    if off + 2 > end {
                        return Err(fail(WireError::Malformed));
                    }
                    if up.protocol == NH_AUTH {
                        (b[off + 1] as usize + 2) * 4
                    } else {
                        (b[off + 1] as usize + 1) * 8
                    }
                }
                _ => 8, // Fragment
            };
            if off + len > end {
                return Err(fail(WireError::Malformed));
            }
            match up.protocol {
                NH_ROUTING => {
                    let (kind, segments_left) = (b[off + 2], b[off + 3]);
                    if routed || kind == ROUTING_TYPE_0 {
                        return Err(fail(WireError::SourceRoute));
                    }
                    routed = true;
                    up.srh = kind == ROUTING_TYPE_SRH;
                    if segments_left > 0 {
                        if kind != ROUTING_TYPE_2 && kind != ROUTING_TYPE_SRH {
                            return Err(fail(WireError::SourceRoute));
                        }
                        if len < ROUTING_FINAL_DST + 16 {
                            return Err(fail(WireError::Malformed));
                        }
                        let at = off + ROUTING_FINAL_DST;
                        up.dst.copy_from_slice(&b[at..at + 16]);
                    }
                }
                NH_FRAGMENT => {
                    let field = be16(b, off + 2);
                    let frag = Fragment {
                        offset: field >> 3,
                        more: field & 1 != 0,
                    };
                    up.fragment = Some(frag);
                    if frag.offset > 0 {
                        up.protocol = b[off];
                        up.offset = off + len;
                        return Ok(up);
                    }
                }
                _ => {}
            }
            up.protocol = b[off];
            up.offset = off + len;
            walked += 1;
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Write a fresh fixed header: traffic class 0, flow label 0.
    pub fn emit_basic(
        &mut self,
        payload_len: u16,
        next_header: u8,
        hop_limit: u8,
        src: [u8; 16],
        dst: [u8; 16],
    ) {
        let b = self.buffer.as_mut();
        put32(b, 0, 6 << 28);
        put16(b, 4, payload_len);
        b[6] = next_header;
        b[7] = hop_limit;
        b[8..24].copy_from_slice(&src);
        b[24..40].copy_from_slice(&dst);
    }
}
