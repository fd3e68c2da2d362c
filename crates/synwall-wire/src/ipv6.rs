//! IPv6 headers (RFC 8200) and a bounded walk over extension headers.

use crate::{be16, put16, put32, Result, WireError};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Most extension headers walked before the packet is refused (the BPF loop has the same bound).
pub const MAX_EXT_HEADERS: usize = 4;
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

/// A view of an IPv6 packet. `new_checked` guarantees the fixed header and the declared payload fit.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

/// The upper-layer header found by [`Ipv6Packet::upper_layer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upper {
    /// Its protocol number.
    pub protocol: u8,
    /// Its offset from the start of the IPv6 header.
    pub offset: usize,
    /// A Fragment header was walked: the packet is (part of) a fragmented datagram.
    pub fragment: bool,
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

    /// Walk at most [`MAX_EXT_HEADERS`] extension headers to the upper layer. A Fragment header
    /// ends the walk and is reported (never skipped silently), with the protocol it carries; more
    /// headers than the bound, or one that runs past the payload, is an error.
    pub fn upper_layer(&self) -> Result<Upper> {
        let b = self.b();
        let end = self.end();
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        for _ in 0..=MAX_EXT_HEADERS {
            let len = match nh {
                NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => {
                    if off + 2 > end {
                        return Err(WireError::Truncated);
                    }
                    (b[off + 1] as usize + 1) * 8
                }
                NH_FRAGMENT => {
                    // What follows is fragment data, not headers: stop; the Fragment header's
                    // next header names the fragmented protocol.
                    if off + 8 > end {
                        return Err(WireError::Truncated);
                    }
                    return Ok(Upper {
                        protocol: b[off],
                        offset: off + 8,
                        fragment: true,
                    });
                }
                NH_AUTH => {
                    if off + 2 > end {
                        return Err(WireError::Truncated);
                    }
                    (b[off + 1] as usize + 2) * 4
                }
                protocol => {
                    return Ok(Upper {
                        protocol,
                        offset: off,
                        fragment: false,
                    })
                }
            };
            if off + len > end {
                return Err(WireError::Truncated);
            }
            nh = b[off];
            off += len;
        }
        Err(WireError::ExtHeaderLimit)
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
