//! SipHash-2-4 keys: every scheme here MACs with SipHash-2-4 (the `siphasher` crate) under a
//! 128-bit key read from 16 bytes as `k0 = LE64(bytes 0..8)`, `k1 = LE64(bytes 8..16)`.

use core::hash::Hasher;
use siphasher::sip::SipHasher24;

/// A SipHash-2-4 key (a synwall-v1 salt, a Linux syncookie secret, a FreeBSD syncache key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SipKey {
    /// First key word, `LE64(bytes 0..8)`.
    pub k0: u64,
    /// Second key word, `LE64(bytes 8..16)`.
    pub k1: u64,
}

impl core::fmt::Debug for SipKey {
    // Keys are secrets: never print them by accident.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SipKey(..)")
    }
}

impl SipKey {
    /// The key whose 16 bytes, in memory order, are `bytes`.
    pub fn from_bytes(bytes: &[u8; 16]) -> Self {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&bytes[..8]);
        hi.copy_from_slice(&bytes[8..]);
        SipKey {
            k0: u64::from_le_bytes(lo),
            k1: u64::from_le_bytes(hi),
        }
    }

    /// The 16 bytes of the key in memory order (the layout of the BPF salt map value).
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.k0.to_le_bytes());
        out[8..].copy_from_slice(&self.k1.to_le_bytes());
        out
    }

    /// SipHash-2-4 of `msg` under this key, as a u64.
    #[inline]
    pub fn hash(&self, msg: &[u8]) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write(msg);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first and last of the 64 reference outputs of the SipHash paper (key 00..0f, message
    /// 00 01 .. of length n), as little-endian bytes.
    #[test]
    fn reference_vectors() {
        let mut key = [0u8; 16];
        for (i, b) in key.iter_mut().enumerate() {
            *b = i as u8;
        }
        let k = SipKey::from_bytes(&key);
        let msg: std::vec::Vec<u8> = (0u8..64).collect();
        let v0 = [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72];
        let v15 = [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1];
        let v63 = [0x72, 0x45, 0x06, 0xeb, 0x4c, 0x32, 0x8a, 0x95];
        assert_eq!(k.hash(&msg[..0]), u64::from_le_bytes(v0));
        assert_eq!(k.hash(&msg[..15]), u64::from_le_bytes(v15));
        assert_eq!(k.hash(&msg[..63]), u64::from_le_bytes(v63));
        assert_eq!(SipKey::from_bytes(&k.to_bytes()), k);
    }
}
