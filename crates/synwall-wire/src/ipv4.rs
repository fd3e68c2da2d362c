//! IPv4 headers (RFC 791), options and fragments included.

use crate::checksum;
use crate::{be16, put16, Result, WireError};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// Protocol number of an encapsulated IPv4 packet (IP in IP, RFC 2003).
pub const PROTO_IPV4: u8 = 4;
/// Length of the longest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;
/// Option type of Loose Source and Record Route (RFC 791).
pub const OPT_LSRR: u8 = 131;
/// Option type of Strict Source and Record Route (RFC 791).
pub const OPT_SSRR: u8 = 137;
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. `new_checked` guarantees the header and the declared total length fit.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Check version, IHL and total length against the buffer (trailing padding is allowed).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Ipv4Packet { buffer };
        if p.version() != 4
            || p.header_len() < MIN_HEADER_LEN
            || (p.total_len() as usize) < p.header_len()
        {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < p.header_len()
            || p.buffer.as_ref().len() < p.total_len() as usize
        {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// Like [`Ipv4Packet::new_checked`], but the payload may be cut short: for a packet inside the
    /// first fragment of an outer one, of which only the start is here. The header (options
    /// included) must be whole.
    pub fn new_checked_header(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Ipv4Packet { buffer };
        if p.version() != 4
            || p.header_len() < MIN_HEADER_LEN
            || (p.total_len() as usize) < p.header_len()
        {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < p.header_len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// A view without checks (the caller builds or has checked the header).
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Version field.
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        ((self.b()[0] & 0x0f) as usize) * 4
    }
    /// Type of service / DSCP+ECN byte.
    pub fn tos(&self) -> u8 {
        self.b()[1]
    }
    /// Total length.
    pub fn total_len(&self) -> u16 {
        be16(self.b(), 2)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.b(), 4)
    }
    /// Don't Fragment.
    pub fn dont_frag(&self) -> bool {
        be16(self.b(), 6) & FLAG_DF != 0
    }
    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        be16(self.b(), 6) & FLAG_MF != 0
    }
    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        be16(self.b(), 6) & FRAG_OFFSET_MASK
    }
    /// Part of a fragmented datagram (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        be16(self.b(), 6) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }
    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), 10)
    }
    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        self.b()[12..16].try_into().expect("4 bytes")
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        self.b()[16..20].try_into().expect("4 bytes")
    }
    /// The header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len()]) == 0
    }
    /// The payload: from the end of the header to the total length (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len() as usize]
    }

    /// Walk the options (only a header longer than 20 bytes has any): `Ok(true)` at the first
    /// Loose or Strict Source and Record Route option (the destination field is then only the
    /// next hop), `Ok(false)` when the list ends (EOL or its end) without one. An option with a
    /// length below 2, or running past the header, makes the list malformed.
    pub fn source_routed(&self) -> Result<bool> {
        let opts = &self.b()[MIN_HEADER_LEN..self.header_len()];
        let mut i = 0;
        while i < opts.len() {
            match opts[i] {
                OPT_EOL => break,
                OPT_NOP => i += 1,
                kind => {
                    if i + 1 >= opts.len() {
                        return Err(WireError::Malformed);
                    }
                    let len = opts[i + 1] as usize;
                    if len < 2 || i + len > opts.len() {
                        return Err(WireError::Malformed);
                    }
                    if kind == OPT_LSRR || kind == OPT_SSRR {
                        return Ok(true);
                    }
                    i += len;
                }
            }
        }
        Ok(false)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Write a fresh option-less header: version 4, IHL 5, TOS 0, ID 0, DF, no fragment offset.
    pub fn emit_basic(
        &mut self,
        total_len: u16,
        ttl: u8,
        protocol: u8,
        src: [u8; 4],
        dst: [u8; 4],
    ) {
        let b = self.bm();
        b[0] = 0x45;
        b[1] = 0;
        put16(b, 2, total_len);
        put16(b, 4, 0);
        put16(b, 6, FLAG_DF);
        b[8] = ttl;
        b[9] = protocol;
        put16(b, 10, 0);
        b[12..16].copy_from_slice(&src);
        b[16..20].copy_from_slice(&dst);
        let c = checksum::checksum(&b[..MIN_HEADER_LEN]);
        put16(b, 10, c);
    }
}
