//! IPv6 headers (RFC 8200) and a bounded walk over extension headers.

use crate::{be16, be32, put16, put32, Result, WireError};
use field::*;

// The fixed header's length, the walk's bound, next-header and routing types, from
// `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_ipv6.rs"));

/// Where each field of the fixed header and of the extension headers is.
pub mod field {
    use super::ROUTING_FINAL_DST;
    use crate::Field;
    /// Version (4 bits), traffic class (8) and flow label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    /// Payload length (extension headers included).
    pub const LENGTH: Field = 4..6;
    /// The first next header.
    pub const NXT_HDR: usize = 6;
    /// Hop limit.
    pub const HOP_LIMIT: usize = 7;
    /// Source address.
    pub const SRC_ADDR: Field = 8..24;
    /// Destination address (the outer one: a routing header may name another).
    pub const DST_ADDR: Field = 24..40;
    /// Any extension header: the next header.
    pub const EXT_NXT_HDR: usize = 0;
    /// Hop-by-hop, routing, destination options: length in 8-byte units past the first 8; AH: in
    /// 4-byte units past the first 8.
    pub const EXT_LEN: usize = 1;
    /// Routing header: its type.
    pub const ROUTING_TYPE: usize = 2;
    /// Routing header: segments left.
    pub const SEG_LEFT: usize = 3;
    /// Routing header of type 2 or 4: the final destination (the home address, segment list[0]).
    pub const ROUTING_DST: Field = ROUTING_FINAL_DST..ROUTING_FINAL_DST + 16;
    /// Fragment header: offset (13 bits, 8-byte units), 2 reserved bits, the M flag.
    pub const FRAG_OFF_M: Field = 2..4;
}

/// The fields of a fixed header that [`Ipv6Packet::emit`] writes (traffic class and flow label
/// 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// The next header (no extension headers are written: the payload's protocol).
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Payload length.
    pub payload_len: u16,
}

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
        (be32(self.b(), VER_TC_FLOW) >> 28) as u8
    }
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        (be32(self.b(), VER_TC_FLOW) >> 20) as u8
    }
    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        be32(self.b(), VER_TC_FLOW) & 0x000f_ffff
    }
    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        be16(self.b(), LENGTH)
    }
    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.b()[NXT_HDR]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[HOP_LIMIT]
    }
    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        self.b()[SRC_ADDR].try_into().expect("16 bytes")
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        self.b()[DST_ADDR].try_into().expect("16 bytes")
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
                    if off + EXT_LEN + 1 > end {
                        return Err(fail(WireError::Malformed));
                    }
                    if up.protocol == NH_AUTH {
                        (b[off + EXT_LEN] as usize + 2) * 4
                    } else {
                        (b[off + EXT_LEN] as usize + 1) * 8
                    }
                }
                _ => 8, // Fragment
            };
            if off + len > end {
                return Err(fail(WireError::Malformed));
            }
            let h = &b[off..off + len];
            match up.protocol {
                NH_ROUTING => {
                    let (kind, segments_left) = (h[ROUTING_TYPE], h[SEG_LEFT]);
                    if routed || kind == ROUTING_TYPE_0 {
                        return Err(fail(WireError::SourceRoute));
                    }
                    routed = true;
                    up.srh = kind == ROUTING_TYPE_SRH;
                    if segments_left > 0 {
                        if kind != ROUTING_TYPE_2 && kind != ROUTING_TYPE_SRH {
                            return Err(fail(WireError::SourceRoute));
                        }
                        if len < ROUTING_DST.end {
                            return Err(fail(WireError::Malformed));
                        }
                        up.dst.copy_from_slice(&h[ROUTING_DST]);
                    }
                }
                NH_FRAGMENT => {
                    let field = be16(h, FRAG_OFF_M);
                    let frag = Fragment {
                        offset: field >> 3,
                        more: field & 1 != 0,
                    };
                    up.fragment = Some(frag);
                    if frag.offset > 0 {
                        up.protocol = h[EXT_NXT_HDR];
                        up.offset = off + len;
                        return Ok(up);
                    }
                }
                _ => {}
            }
            up.protocol = h[EXT_NXT_HDR];
            up.offset = off + len;
            walked += 1;
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Write a fresh fixed header from `repr`.
    pub fn emit(&mut self, repr: &Ipv6Repr) {
        let b = self.buffer.as_mut();
        put32(b, VER_TC_FLOW, 6 << 28);
        put16(b, LENGTH, repr.payload_len);
        b[NXT_HDR] = repr.next_header;
        b[HOP_LIMIT] = repr.hop_limit;
        b[SRC_ADDR].copy_from_slice(&repr.src);
        b[DST_ADDR].copy_from_slice(&repr.dst);
    }
}
