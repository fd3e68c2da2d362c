//! TCP headers (RFC 9293) and the options a SYN proxy reads and writes.

use crate::checksum;
use crate::{be16, be32, put16, put32, Result, WireError};
use field::*;

// Header lengths and flags, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_tcp.rs"));

/// Option kinds (from `bpf/lib/constants.def`).
pub mod kind {
    include!(concat!(env!("OUT_DIR"), "/constants_tcp_kind.rs"));
}

/// Where each field of the header, and of the options a SYN proxy reads, is.
pub mod field {
    use crate::{Field, Rest};
    /// Source port.
    pub const SRC_PORT: Field = 0..2;
    /// Destination port.
    pub const DST_PORT: Field = 2..4;
    /// Sequence number.
    pub const SEQ_NUM: Field = 4..8;
    /// Acknowledgment number.
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (high nibble, 32-bit words) and reserved bits.
    pub const DATA_OFF: usize = 12;
    /// Flags (CWR ECE URG ACK PSH RST SYN FIN).
    pub const FLAGS: usize = 13;
    /// Window.
    pub const WIN_SIZE: Field = 14..16;
    /// Checksum.
    pub const CHECKSUM: Field = 16..18;
    /// Urgent pointer.
    pub const URGENT: Field = 18..20;
    /// Options, up to the header length.
    pub const OPTIONS: Rest = 20..;
    /// Within an option: its kind.
    pub const OPT_KIND: usize = 0;
    /// Within an option: its length (kind and length bytes included).
    pub const OPT_LEN: usize = 1;
    /// Within an MSS option: the MSS.
    pub const OPT_MSS: Field = 2..4;
    /// Within a window-scale option: the shift.
    pub const OPT_WSCALE: usize = 2;
    /// Within a timestamps option: TSval.
    pub const OPT_TSVAL: Field = 2..6;
    /// Within a timestamps option: TSecr.
    pub const OPT_TSECR: Field = 6..10;
}

/// A view of a TCP segment. `new_checked` guarantees the header (with its options) fits.
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<T> {
    buffer: T,
}

/// The options a SYN proxy cares about; others are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpOptions {
    /// MSS.
    pub mss: Option<u16>,
    /// Window-scale shift as sent.
    pub wscale: Option<u8>,
    /// SACK-Permitted present.
    pub sack_permitted: bool,
    /// Timestamps: (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
}

/// Parse an options area. Lengths 0 or 1, or an option running past the area, are errors (the
/// segment is malformed). A known option with a length other than its own is ignored, as Linux
/// does; for duplicates the last one wins.
pub fn parse_options(opts: &[u8]) -> Result<TcpOptions> {
    let mut out = TcpOptions::default();
    let mut i = 0;
    while i < opts.len() {
        let o = &opts[i..];
        match o[OPT_KIND] {
            kind::EOL => break,
            kind::NOP => i += 1,
            k => {
                if o.len() <= OPT_LEN {
                    return Err(WireError::BadOption);
                }
                let len = o[OPT_LEN] as usize;
                if len < 2 || len > o.len() {
                    return Err(WireError::BadOption);
                }
                let o = &o[..len];
                match (k, len) {
                    (kind::MSS, 4) => out.mss = Some(be16(o, OPT_MSS)),
                    (kind::WSCALE, 3) => out.wscale = Some(o[OPT_WSCALE]),
                    (kind::SACK_PERMITTED, 2) => out.sack_permitted = true,
                    (kind::TIMESTAMPS, 10) => {
                        out.timestamps = Some((be32(o, OPT_TSVAL), be32(o, OPT_TSECR)))
                    }
                    _ => {}
                }
                i += len;
            }
        }
    }
    Ok(out)
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Check the buffer holds the header and its options (`buffer` should end where the IP
    /// payload ends).
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let s = TcpSegment { buffer };
        if s.header_len() < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if s.buffer.as_ref().len() < s.header_len() {
            return Err(WireError::Truncated);
        }
        Ok(s)
    }

    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        TcpSegment { buffer }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.b(), SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), DST_PORT)
    }
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.b(), SEQ_NUM)
    }
    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        be32(self.b(), ACK_NUM)
    }
    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        ((self.b()[DATA_OFF] >> 4) as usize) * 4
    }
    /// The flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub fn flags(&self) -> u8 {
        self.b()[FLAGS]
    }
    /// Window.
    pub fn window(&self) -> u16 {
        be16(self.b(), WIN_SIZE)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.b(), CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        be16(self.b(), URGENT)
    }
    /// The options area.
    pub fn options_raw(&self) -> &[u8] {
        &self.b()[..self.header_len()][OPTIONS]
    }
    /// Parsed options.
    pub fn options(&self) -> Result<TcpOptions> {
        parse_options(self.options_raw())
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
    /// Verify the checksum given the pseudo-header sum (see [`checksum::pseudo_v4`] / `pseudo_v6`).
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::finish(checksum::sum(pseudo, self.b())) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Set the ports.
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        put16(self.bm(), SRC_PORT, src);
        put16(self.bm(), DST_PORT, dst);
    }
    /// Set sequence and acknowledgment numbers.
    pub fn set_seq_ack(&mut self, seq: u32, ack: u32) {
        put32(self.bm(), SEQ_NUM, seq);
        put32(self.bm(), ACK_NUM, ack);
    }
    /// Set the header length (a multiple of 4, 20..=60) and the flags; clears the reserved bits.
    pub fn set_header_len_flags(&mut self, header_len: usize, flags: u8) {
        debug_assert!(header_len % 4 == 0 && (MIN_HEADER_LEN..=60).contains(&header_len));
        let b = self.bm();
        b[DATA_OFF] = ((header_len / 4) as u8) << 4;
        b[FLAGS] = flags;
    }
    /// Set window and urgent pointer.
    pub fn set_window_urgent(&mut self, window: u16, urgent: u16) {
        put16(self.bm(), WIN_SIZE, window);
        put16(self.bm(), URGENT, urgent);
    }
    /// Compute and store the checksum over the whole buffer given the pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo: u32) {
        put16(self.bm(), CHECKSUM, 0);
        let c = checksum::finish(checksum::sum(pseudo, self.b()));
        put16(self.bm(), CHECKSUM, c);
    }
    /// The options area, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.bm()[..end][OPTIONS]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = [
            2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0,
        ];
        let p = parse_options(&o).unwrap();
        assert_eq!(p.mss, Some(1460));
        assert_eq!(p.wscale, Some(7));
        assert!(p.sack_permitted);
        assert_eq!(p.timestamps, Some((1, 2)));
        assert_eq!(parse_options(&[2, 0]), Err(WireError::BadOption));
        assert_eq!(parse_options(&[2, 1, 0, 0]), Err(WireError::BadOption));
        assert_eq!(parse_options(&[2, 6, 0, 0]), Err(WireError::BadOption));
        assert_eq!(parse_options(&[1, 1, 2]), Err(WireError::BadOption));
        // Wrong size for a known kind: ignored, like Linux.
        assert_eq!(parse_options(&[2, 3, 1, 1]).unwrap().mss, None);
        // After EOL nothing is read.
        assert_eq!(parse_options(&[0, 2, 0]).unwrap(), TcpOptions::default());
    }
}
