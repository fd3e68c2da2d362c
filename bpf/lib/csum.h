/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The Internet checksum (synwall_wire::checksum). Sums are kept in "load order": 16-bit words are
 * read as the little-endian machine reads them, which byte-swaps every word; one's complement
 * addition commutes with that swap, so a sum folded and stored back the same way is the checksum
 * in network order. Pseudo-header constants are therefore written byte-swapped (bpf_htons).
 */
#ifndef SW_CSUM_H
#define SW_CSUM_H

#include "common.h"

/* Longest byte range sw_csum_pkt sums (a SYN is at most one MTU; jumbo frames fit). */
#define SW_CSUM_MAX_LEN 16384

/* Fold a running sum to 16 bits (not complemented). */
SW_INLINE __u32 sw_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u32)sum;
}

/* Sum `words` 32-bit words of a stack buffer (constant count after inlining). */
SW_INLINE __u64 sw_csum_words(__u64 sum, const __u32 *w, const int words)
{
	int i;

#pragma unroll
	for (i = 0; i < words; i++)
		sum += w[i];
	return sum;
}

#ifdef SW_XDP
/*
 * The folded sum (0..0xffff) of the `n` bytes at `off` of the frame, or -1 if they are not all
 * there or n exceeds SW_CSUM_MAX_LEN. A global function: its loop is verified once.
 */
SW_GLOBAL int sw_csum_pkt(struct xdp_md *ctx, __u32 off, __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 sum = 0, tail = 0;
	__u32 words, toff, shift = 0;
	__u8 *p;
	int i;

	off &= SW_OFF_MASK;
	if (n > SW_CSUM_MAX_LEN)
		return -1;
	words = n / 8;
	/*
	 * The last n % 8 bytes first, zero-padded (an odd final byte pads as RFC 1071 says); then
	 * the loop over whole words exits straight to the fold, which keeps verification short.
	 */
	toff = off + (n & ~7U);
	barrier_var(toff);
	if (toff > 0x7fff)
		return -1;
	p = data + toff;
	if (n & 4) {
		if ((void *)(p + 4) > end)
			return -1;
		tail = *(__u32 *)p;
		p += 4;
		shift = 32;
	}
	if (n & 2) {
		if ((void *)(p + 2) > end)
			return -1;
		tail |= (__u64)*(__u16 *)p << shift;
		p += 2;
		shift += 16;
	}
	if (n & 1) {
		if ((void *)(p + 1) > end)
			return -1;
		tail |= (__u64)*p << shift;
	}
	sum += (tail & 0xffffffff) + (tail >> 32);
	for (i = 0; i < SW_CSUM_MAX_LEN / 8; i++) {
		/*
		 * i opaque to the compiler: it must keep the constant bound and this check as written
		 * (not fold them into a trip count computed from n), for the verifier counts on them.
		 */
		barrier_var(i);
		if ((__u32)i >= words)
			break;
		p = data + off + 8 * i;
		if ((void *)(p + 8) > end)
			return -1;
		sum += *(__u32 *)p;
		sum += *(__u32 *)(p + 4);
	}
	return sw_csum_fold(sum);
}
#endif

#endif /* SW_CSUM_H */
