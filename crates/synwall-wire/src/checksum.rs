//! The Internet checksum (RFC 1071) and the TCP pseudo-headers of IPv4 and IPv6.

/// Add `data` to a running one's-complement sum (big-endian 16-bit words, odd tail padded). The
/// result is folded to at most 17 bits, so it can be fed back in or to [`finish`].
#[inline]
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    // Sum 32-bit big-endian words into 64 bits (no overflow below 2^32 words), then fold: one's
    // complement addition is associative, so wider words give the same 16-bit result.
    let mut wide = acc as u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        wide += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let mut tail = [0u8; 4];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    wide += u32::from_be_bytes(tail) as u64;
    wide = (wide & 0xffff_ffff) + (wide >> 32);
    wide = (wide & 0xffff_ffff) + (wide >> 32);
    let mut folded = (wide & 0xffff) + (wide >> 16);
    folded = (folded & 0xffff) + (folded >> 16);
    folded as u32
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

    /// The word-wide sum equals the textbook 16-bit one on any data and any starting sum.
    #[test]
    fn wide_sum_matches_16_bit_sum() {
        let mut x = 0x1234_5678u32;
        for len in 0..300 {
            let data: std::vec::Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let start = x % 0x1_ffff;
            let mut slow = start as u64;
            for w in data.chunks(2) {
                slow += (w[0] as u64) << 8 | *w.get(1).unwrap_or(&0) as u64;
            }
            while slow > 0xffff {
                slow = (slow & 0xffff) + (slow >> 16);
            }
            assert_eq!(finish(sum(start, &data)), !(slow as u16), "len {len}");
        }
    }
}
