//! The Internet checksum (RFC 1071) and the TCP pseudo-headers of IPv4 and IPv6.

/// Add `data` to a running one's-complement sum (big-endian 16-bit words, odd tail padded).
#[inline]
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc = acc.wrapping_add(u16::from_be_bytes([w[0], w[1]]) as u32);
        // Fold early so long buffers cannot overflow the accumulator.
        if acc >= 0x8000_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [b] = words.remainder() {
        acc = acc.wrapping_add((*b as u32) << 8);
    }
    acc
}

/// Fold a running sum to 16 bits and complement it.
#[inline]
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone (e.g. an IPv4 header with its checksum field zeroed; over a header
/// with its checksum in place, 0 means correct).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// The pseudo-header sum for TCP over IPv4.
pub fn pseudo_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, len: u16) -> u32 {
    let acc = sum(sum(0, src), dst);
    acc + proto as u32 + len as u32
}

/// The pseudo-header sum for TCP over IPv6 (RFC 8200 section 8.1).
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, len: u32) -> u32 {
    let acc = sum(sum(0, src), dst);
    acc.wrapping_add(len >> 16)
        .wrapping_add(len & 0xffff)
        .wrapping_add(proto as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: sum of 0001 f203 f4f5 f6f7 is ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
    }
}
