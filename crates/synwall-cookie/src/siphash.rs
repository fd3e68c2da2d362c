//! SipHash-2-4 keys and the hash itself.
//!
//! Every scheme here MACs with SipHash-2-4 under a 128-bit key read from 16 bytes as
//! `k0 = LE64(bytes 0..8)`, `k1 = LE64(bytes 8..16)`. The hash is written out here (word loads,
//! no streaming buffer) because the cookie's messages are short and of fixed length: inlined, the
//! compiler unrolls it to straight-line code, which is what the BPF C does too and what the 12 ns
//! budget per cookie needs. The `siphasher` crate is the oracle it is tested against.

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

#[inline(always)]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    sipround(v);
    sipround(v);
    v[0] ^= m;
}

#[inline(always)]
fn finish(mut v: [u64; 4], last: u64) -> u64 {
    compress(&mut v, last);
    v[2] ^= 0xff;
    sipround(&mut v);
    sipround(&mut v);
    sipround(&mut v);
    sipround(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
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

    #[inline(always)]
    fn init(&self) -> [u64; 4] {
        [
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
            self.k0 ^ 0x6c79_6765_6e65_7261,
            self.k1 ^ 0x7465_6462_7974_6573,
        ]
    }

    /// SipHash-2-4 of `msg` under this key, as a u64.
    #[inline(always)]
    pub fn hash(&self, msg: &[u8]) -> u64 {
        let mut blocks = msg.chunks_exact(8);
        let mut v = self.init();
        for b in &mut blocks {
            compress(
                &mut v,
                u64::from_le_bytes(b.try_into().expect("8-byte chunk")),
            );
        }
        let mut last = (msg.len() as u64) << 56;
        for (i, &b) in blocks.remainder().iter().enumerate() {
            last |= (b as u64) << (8 * i);
        }
        finish(v, last)
    }

    /// SipHash-2-4 of a message already split into little-endian words: `blocks` are its full
    /// 8-byte blocks, `last` its final word (the 0..7 tail bytes, little-endian, with the message
    /// length in the top byte). Same result as [`SipKey::hash`] on the bytes; this is how the
    /// cookie MACs load their fields (and how the BPF C does it).
    #[inline(always)]
    pub fn hash_words<const N: usize>(&self, blocks: [u64; N], last: u64) -> u64 {
        let mut v = self.init();
        for m in blocks {
            compress(&mut v, m);
        }
        finish(v, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use siphasher::sip::SipHasher24;

    /// Outputs of the SipHash paper (key 00..0f, message 00 01 .. of length n), little-endian.
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

    proptest! {
        /// The hand-unrolled hash equals the `siphasher` crate on any key and message.
        #[test]
        fn matches_siphasher(k0: u64, k1: u64, msg in proptest::collection::vec(any::<u8>(), 0..80)) {
            let ours = SipKey { k0, k1 }.hash(&msg);
            prop_assert_eq!(ours, SipHasher24::new_with_keys(k0, k1).hash(&msg));
        }

        /// Word-split input gives the same hash as the bytes.
        #[test]
        fn words_match_bytes(k0: u64, k1: u64, msg: [u8; 18]) {
            let w = |i: usize| u64::from_le_bytes(msg[i..i + 8].try_into().unwrap());
            let last = msg[16] as u64 | (msg[17] as u64) << 8 | 18 << 56;
            let key = SipKey { k0, k1 };
            prop_assert_eq!(key.hash_words([w(0), w(8)], last), key.hash(&msg));
        }
    }
}

/// How many hashes [`SipKey::hash_words_x8`] computes at once.
pub const LANES: usize = 8;

// Lane loops below index several arrays in step (`for l in 0..LANES`): that is the shape LLVM
// vectorizes, so clippy's iterator suggestion does not apply.

/// Lanes of SipHash state: `V[i][l]` is word `v_i` of message `l`.
type Lanes = [[u64; LANES]; 4];

/// One SipRound on all lanes, one statement at a time, so each loop is one vector operation.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn round_lanes(v: &mut Lanes) {
    let [v0, v1, v2, v3] = v;
    for l in 0..LANES {
        v0[l] = v0[l].wrapping_add(v1[l]);
        v2[l] = v2[l].wrapping_add(v3[l]);
        v1[l] = v1[l].rotate_left(13) ^ v0[l];
        v3[l] = v3[l].rotate_left(16) ^ v2[l];
        v0[l] = v0[l].rotate_left(32);
        v2[l] = v2[l].wrapping_add(v1[l]);
        v0[l] = v0[l].wrapping_add(v3[l]);
        v1[l] = v1[l].rotate_left(17) ^ v2[l];
        v3[l] = v3[l].rotate_left(21) ^ v0[l];
        v2[l] = v2[l].rotate_left(32);
    }
}

#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn compress_lanes(v: &mut Lanes, m: &[u64; LANES]) {
    for l in 0..LANES {
        v[3][l] ^= m[l];
    }
    round_lanes(v);
    round_lanes(v);
    for l in 0..LANES {
        v[0][l] ^= m[l];
    }
}

/// SipHash-2-4 over [`LANES`] messages at once. Every step is a loop over lanes with no cross-lane
/// dependency, so inside a `target_feature` function LLVM turns each into vector instructions
/// (AVX-512: `vpaddq`, `vpxorq`, `vprolq`).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn sip_lanes<const N: usize>(
    key: &SipKey,
    blocks: &[[u64; LANES]; N],
    last: &[u64; LANES],
) -> [u64; LANES] {
    let init = key.init();
    let mut v: Lanes = [
        [init[0]; LANES],
        [init[1]; LANES],
        [init[2]; LANES],
        [init[3]; LANES],
    ];
    for m in blocks {
        compress_lanes(&mut v, m);
    }
    compress_lanes(&mut v, last);
    for l in 0..LANES {
        v[2][l] ^= 0xff;
    }
    round_lanes(&mut v);
    round_lanes(&mut v);
    round_lanes(&mut v);
    round_lanes(&mut v);
    let mut out = [0u64; LANES];
    for l in 0..LANES {
        out[l] = v[0][l] ^ v[1][l] ^ v[2][l] ^ v[3][l];
    }
    out
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx512f,avx512vl")]
fn sip_lanes_avx512<const N: usize>(
    key: &SipKey,
    blocks: &[[u64; LANES]; N],
    last: &[u64; LANES],
) -> [u64; LANES] {
    sip_lanes(key, blocks, last)
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
fn sip_lanes_avx2<const N: usize>(
    key: &SipKey,
    blocks: &[[u64; LANES]; N],
    last: &[u64; LANES],
) -> [u64; LANES] {
    sip_lanes(key, blocks, last)
}

#[allow(unsafe_code)]
impl SipKey {
    /// [`SipKey::hash_words`] for [`LANES`] messages of the same length at once: `blocks[n][l]` is
    /// block `n` of message `l`. Uses AVX-512 or AVX2 when the CPU has them (detected at run time),
    /// plain code otherwise; the results are the same.
    #[inline]
    pub fn hash_words_x8<const N: usize>(
        &self,
        blocks: &[[u64; LANES]; N],
        last: &[u64; LANES],
    ) -> [u64; LANES] {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: the CPU supports the features the function is compiled for.
                return unsafe { sip_lanes_avx512(self, blocks, last) };
            }
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { sip_lanes_avx2(self, blocks, last) };
            }
        }
        sip_lanes(self, blocks, last)
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every lane of the batched hash equals the one-at-a-time hash (whatever path the CPU takes).
        #[test]
        fn lanes_match_scalar(k0: u64, k1: u64, b0: [u64; LANES], b1: [u64; LANES], last: [u64; LANES]) {
            let key = SipKey { k0, k1 };
            let got = key.hash_words_x8(&[b0, b1], &last);
            for l in 0..LANES {
                prop_assert_eq!(got[l], key.hash_words([b0[l], b1[l]], last[l]));
            }
            let got = sip_lanes(&key, &[b0], &last);
            for l in 0..LANES {
                prop_assert_eq!(got[l], key.hash_words([b0[l]], last[l]));
            }
        }
    }
}
