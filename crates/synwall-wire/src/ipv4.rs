//! IPv4 headers (RFC 791), options and fragments included.

use crate::checksum;
use crate::{be16, put16, Result, WireError};
use field::*;

// Header lengths, flags and option types, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_ipv4.rs"));
/// Length of the longest header (IHL 15).
pub const MAX_HEADER_LEN: usize = MIN_HEADER_LEN + MAX_OPTIONS_LEN;

/// Where each field of the header is.
pub mod field {
    use crate::{Field, Rest};
    /// Version (high nibble) and header length in 32-bit words (IHL, low nibble).
    pub const VER_IHL: usize = 0;
    /// Type of service (DSCP and ECN).
    pub const TOS: usize = 1;
    /// Total length (header and payload).
    pub const LENGTH: Field = 2..4;
    /// Identification.
    pub const IDENT: Field = 4..6;
    /// Flags (DF, MF) and fragment offset.
    pub const FLG_OFF: Field = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol of the payload.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Field = 10..12;
    /// Source address.
    pub const SRC_ADDR: Field = 12..16;
    /// Destination address.
    pub const DST_ADDR: Field = 16..20;
    /// Options, up to the header length.
    pub const OPTIONS: Rest = 20..;
}

/// The fields of an option-less header that [`Ipv4Packet::emit`] writes; the rest are fixed
/// (TOS 0, identification 0, DF, no fragment offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Protocol of the payload.
    pub next_header: u8,
    /// Time to live.
    pub hop_limit: u8,
    /// Payload length (the total length is this plus the header).
    pub payload_len: u16,
}

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
        self.b()[VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        ((self.b()[VER_IHL] & 0x0f) as usize) * 4
    }
    /// Type of service / DSCP+ECN byte.
    pub fn tos(&self) -> u8 {
        self.b()[TOS]
    }
    /// Total length.
    pub fn total_len(&self) -> u16 {
        be16(self.b(), LENGTH)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.b(), IDENT)
    }
    /// Don't Fragment.
    pub fn dont_frag(&self) -> bool {
        be16(self.b(), FLG_OFF) & FLAG_DF != 0
    }
    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        be16(self.b(), FLG_OFF) & FLAG_MF != 0
    }
    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        be16(self.b(), FLG_OFF) & FRAG_OFFSET_MASK
    }
    /// Part of a fragmented datagram (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        be16(self.b(), FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[TTL]
    }
    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.b()[PROTOCOL]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), CHECKSUM)
    }
    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        self.b()[SRC_ADDR].try_into().expect("4 bytes")
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        self.b()[DST_ADDR].try_into().expect("4 bytes")
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
        let opts = &self.b()[..self.header_len()][OPTIONS];
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
    /// Write a fresh option-less header from `repr` (checksum included).
    pub fn emit(&mut self, repr: &Ipv4Repr) {
        let b = self.bm();
        b[VER_IHL] = 0x40 | (MIN_HEADER_LEN / 4) as u8;
        b[TOS] = 0;
        put16(b, LENGTH, MIN_HEADER_LEN as u16 + repr.payload_len);
        put16(b, IDENT, 0);
        put16(b, FLG_OFF, FLAG_DF);
        b[TTL] = repr.hop_limit;
        b[PROTOCOL] = repr.next_header;
        put16(b, CHECKSUM, 0);
        b[SRC_ADDR].copy_from_slice(&repr.src);
        b[DST_ADDR].copy_from_slice(&repr.dst);
        let c = checksum::checksum(&b[..MIN_HEADER_LEN]);
        put16(b, CHECKSUM, c);
    }
}
