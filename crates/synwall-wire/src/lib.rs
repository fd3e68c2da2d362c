//! Wire formats for synwall's packet path, in the style of smoltcp's `wire`: typed views over byte
//! buffers (`new_checked` validates lengths once, accessors read fields in place, setters write
//! them), and no allocation. The BPF C (`bpf/lib/parse.h`, `bpf/lib/csum.h`) mirrors these steps.
//!
//! Modules: [`ethernet`] (with 802.1Q / 802.1ad tags), [`ipv4`], [`ipv6`] (bounded extension-header
//! walk), [`tcp`] (header and options), [`checksum`]. Each header module names the byte range of
//! every field once, in its `field` module; accessors and emitters read and write through those.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;

/// The end of the deepest header this crate's views reach in a frame, in bytes: Ethernet with the
/// most tags, then two IPv6 headers (an outer one carrying SRv6 encapsulation, and the packet
/// inside it) each with the longest extension chain walked, then the longest TCP header.
pub const MAX_HEADER_END: usize = ethernet::HEADER_LEN
    + ethernet::MAX_VLAN_TAGS * ethernet::VLAN_TAG_LEN
    + 2 * (ipv6::HEADER_LEN + ipv6::MAX_EXT_HEADERS * ipv6::MAX_EXT_HEADER_LEN)
    + tcp::MIN_HEADER_LEN
    + tcp::MAX_OPTIONS_LEN;

/// The BPF programs mask every header offset with `SW_OFF_MASK` (`bpf/lib/common.h`, which
/// asserts the same bound): a mask that must change nothing. One more than the mask.
pub const BPF_OFFSET_LIMIT: usize = 0x8000;

// A bound raised (more extension headers walked, deeper nesting) must not make the mask cut offsets.
const _: () = assert!(MAX_HEADER_END <= BPF_OFFSET_LIMIT);

/// Why a buffer is not a valid header of its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer ends before the header (or the length it declares) does.
    Truncated,
    /// A field holds a value the format does not allow (IP version, IHL, data offset, lengths).
    Malformed,
    /// A TCP option with length 0 or 1, or one running past the options area.
    BadOption,
    /// More VLAN tags than [`ethernet::MAX_VLAN_TAGS`].
    TooManyVlanTags,
    /// More IPv6 extension headers than [`ipv6::MAX_EXT_HEADERS`].
    ExtHeaderLimit,
    /// A source route: an IPv6 routing header that hides where the packet goes (type 0, an unknown
    /// type with segments left, a second one) or an IPv4 LSRR/SSRR option.
    SourceRoute,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated",
            WireError::Malformed => "malformed header",
            WireError::BadOption => "bad TCP option length",
            WireError::TooManyVlanTags => "too many VLAN tags",
            WireError::ExtHeaderLimit => "IPv6 extension headers beyond the walk limit",
            WireError::SourceRoute => "source route (routing header or IPv4 option)",
        })
    }
}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, WireError>;

/// The bytes of a header field, from the start of its header (smoltcp's `Field`).
pub type Field = core::ops::Range<usize>;
/// Everything from a byte of a header on (an options area, a payload).
pub type Rest = core::ops::RangeFrom<usize>;

#[inline]
pub(crate) fn be16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes(b[f].try_into().expect("a 2-byte field"))
}

#[inline]
pub(crate) fn be32(b: &[u8], f: Field) -> u32 {
    u32::from_be_bytes(b[f].try_into().expect("a 4-byte field"))
}

#[inline]
pub(crate) fn put16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put32(b: &mut [u8], f: Field, v: u32) {
    b[f].copy_from_slice(&v.to_be_bytes());
}
