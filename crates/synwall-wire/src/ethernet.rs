//! Ethernet II frames with up to two VLAN tags (802.1Q `0x8100`, 802.1ad `0x88a8`).

use crate::{be16, Result, WireError};

/// Length of the Ethernet header without tags.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// Most tags walked (802.1ad outer + 802.1Q inner); deeper stacks are refused, not skipped.
pub const MAX_VLAN_TAGS: usize = 2;
/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType 802.1ad service VLAN tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

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
        self.buffer.as_ref()[0..6].try_into().expect("6 bytes")
    }

    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        self.buffer.as_ref()[6..12].try_into().expect("6 bytes")
    }

    /// The outer EtherType (a tag type if the frame is tagged).
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), 12)
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
            ethertype = be16(b, offset + 2);
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
        for i in 0..6 {
            b.swap(i, 6 + i);
        }
    }
}
