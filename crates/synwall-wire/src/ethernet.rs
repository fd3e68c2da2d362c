//! Ethernet II frames with up to two VLAN tags (802.1Q `0x8100`, 802.1ad `0x88a8`).

use crate::{be16, Result, WireError};
use field::*;

// Header lengths, the tag bound and EtherTypes, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_ethernet.rs"));

/// Where each field of the header is.
pub mod field {
    use crate::Field;
    /// Destination MAC.
    pub const DESTINATION: Field = 0..6;
    /// Source MAC.
    pub const SOURCE: Field = 6..12;
    /// EtherType, or the protocol identifier of the first VLAN tag.
    pub const ETHERTYPE: Field = 12..14;
    /// From the end of the previous type field: a tag's control information (priority, VLAN id).
    pub const TAG_TCI: Field = 0..2;
    /// From the end of the previous type field: what follows the tag (EtherType or next tag).
    pub const TAG_ETHERTYPE: Field = 2..4;
}

/// A view of an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T> {
    buffer: T,
}

/// Where the network layer starts, after the tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L3 {
    /// The inner EtherType.
    pub ethertype: u16,
    /// Offset of the network header.
    pub offset: usize,
    /// VLAN tags walked.
    pub vlan_tags: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// A view of `buffer`, checked to hold the untagged header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    /// Destination MAC.
    pub fn dst(&self) -> [u8; 6] {
        self.buffer.as_ref()[DESTINATION]
            .try_into()
            .expect("6 bytes")
    }

    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        self.buffer.as_ref()[SOURCE].try_into().expect("6 bytes")
    }

    /// The outer EtherType (a tag type if the frame is tagged).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), ETHERTYPE)
    }

    /// Walk the VLAN tags to the network layer.
    pub fn l3(&self) -> Result<L3> {
        let b = self.buffer.as_ref();
        let mut ethertype = self.ethertype();
        let mut offset = HEADER_LEN;
        let mut vlan_tags = 0;
        while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            if vlan_tags == MAX_VLAN_TAGS {
                return Err(WireError::TooManyVlanTags);
            }
            if b.len() < offset + VLAN_TAG_LEN {
                return Err(WireError::Truncated);
            }
            ethertype = be16(&b[offset..], TAG_ETHERTYPE);
            offset += VLAN_TAG_LEN;
            vlan_tags += 1;
        }
        Ok(L3 {
            ethertype,
            offset,
            vlan_tags,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Swap source and destination MACs (the reply goes back where the frame came from).
    pub fn swap_macs(&mut self) {
        let b = self.buffer.as_mut();
        for (d, s) in DESTINATION.zip(SOURCE) {
            b.swap(d, s);
        }
    }
}
