/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SipHash-2-4 over a message already split into little-endian words
 * (crates/synwall-cookie/src/siphash.rs, SipKey::hash_words): `blocks` are its full 8-byte blocks,
 * `last` its final word (the 0..7 tail bytes with the message length in the top byte). Inlined
 * with a constant block count it is straight-line code.
 */
#ifndef SW_SIPHASH_H
#define SW_SIPHASH_H

#include "common.h"
#include "maps.h"

#define SW_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define SW_SIPROUND(v0, v1, v2, v3)                                                                \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = SW_ROTL(v1, 13) ^ v0;                                                         \
		v0 = SW_ROTL(v0, 32);                                                              \
		v2 += v3;                                                                          \
		v3 = SW_ROTL(v3, 16) ^ v2;                                                         \
		v0 += v3;                                                                          \
		v3 = SW_ROTL(v3, 21) ^ v0;                                                         \
		v2 += v1;                                                                          \
		v1 = SW_ROTL(v1, 17) ^ v2;                                                         \
		v2 = SW_ROTL(v2, 32);                                                              \
	} while (0)

#define SW_SIP_COMPRESS(v0, v1, v2, v3, m)                                                         \
	do {                                                                                       \
		v3 ^= (m);                                                                         \
		SW_SIPROUND(v0, v1, v2, v3);                                                       \
		SW_SIPROUND(v0, v1, v2, v3);                                                       \
		v0 ^= (m);                                                                         \
	} while (0)

SW_INLINE __u64 sw_siphash_words(const struct sw_sipkey *key, const __u64 *blocks, const int n,
				 __u64 last)
{
	__u64 v0 = key->k0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = key->k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = key->k0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = key->k1 ^ 0x7465646279746573ULL;
	int i;

#pragma unroll
	for (i = 0; i < n; i++)
		SW_SIP_COMPRESS(v0, v1, v2, v3, blocks[i]);
	SW_SIP_COMPRESS(v0, v1, v2, v3, last);
	v2 ^= 0xff;
	SW_SIPROUND(v0, v1, v2, v3);
	SW_SIPROUND(v0, v1, v2, v3);
	SW_SIPROUND(v0, v1, v2, v3);
	SW_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

#endif /* SW_SIPHASH_H */
