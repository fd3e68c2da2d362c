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
#include "parse.h"

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

#ifdef SW_TC
#include <bpf/bpf_core_read.h>

/*
 * The kernel's socket buffer, as far as tcp_checksum_init looks at it; the fields are found in the
 * running kernel's BTF (CO-RE), the offsets here mean nothing.
 */
struct sk_buff {
	unsigned char *head;
	unsigned char *data;
	__u16 csum_start;
	__u8 ip_summed : 2;
	__u8 csum_valid : 1;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* include/linux/skbuff.h */
#define SW_CHECKSUM_UNNECESSARY 1
#define SW_CHECKSUM_PARTIAL 3

/*
 * skb_csum_unnecessary, which tcp_checksum_init asks first: the device verified the checksum
 * (CHECKSUM_UNNECESSARY), the stack already did (csum_valid), or the segment comes from this host
 * and will be checksummed on the way out (CHECKSUM_PARTIAL with its start inside the packet).
 * Then the kernel does not look at the checksum, and neither do we.
 */
SW_INLINE int sw_skb_csum_trusted(struct __sk_buff *skb)
{
	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
	__u8 ip_summed = BPF_CORE_READ_BITFIELD(k, ip_summed);

	if (ip_summed == SW_CHECKSUM_UNNECESSARY || BPF_CORE_READ_BITFIELD(k, csum_valid))
		return 1;
	return ip_summed == SW_CHECKSUM_PARTIAL && (long)k->csum_start >= (long)(k->data - k->head);
}

/* bpf_csum_diff sums at most this many bytes per call (the helper's scratch buffer). */
#define SW_CSUM_CHUNK 512
/* A segment fits 128 chunks: an IP payload is at most 65535 bytes. */
#define SW_CSUM_CHUNKS 128

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[SW_CSUM_CHUNK]);
} sw_csum_scratch SEC(".maps");

/*
 * TcpFrame::tcp_checksum_ok on tc: the segment summed chunk by chunk (copied out, so a
 * non-linear skb is read where it lies, up to an MSS of jumbo data), plus the pseudo-header with
 * the final destination. A global function: verified once.
 */
SW_GLOBAL int sw_tcp_checksum_ok(struct __sk_buff *skb, const struct sw_frame *f)
{
	__u32 zero = 0, n, at, chunk, last;
	__u64 sum;
	__s64 part;
	__u8 *buf;
	int i;

	if (!f)
		return 0;
	buf = bpf_map_lookup_elem(&sw_csum_scratch, &zero);
	if (!buf)
		return 0;
	n = f->end - f->l4;
	if (n > SW_MAX_IP_LEN)
		return 0;
	if (f->family == SW_FAMILY_V4)
		sum = (__u64)f->src[0] + f->dst[0];
	else
		sum = sw_csum_words(sw_csum_words(0, f->src, 4), f->dst, 4);
	sum += bpf_htons(SW_PROTO_TCP) + bpf_htons((__u16)n);
	/* Chunk i starts at i * 512: nothing carries from one iteration to the next but the sum. */
	for (i = 0; i < SW_CSUM_CHUNKS; i++) {
		at = (__u32)i * SW_CSUM_CHUNK;
		if (at >= n)
			break;
		chunk = n - at;
		if (chunk > SW_CSUM_CHUNK)
			chunk = SW_CSUM_CHUNK;
		/* 1..512 already; rewritten so that the verifier sees those bounds. */
		chunk = ((chunk - 1) & (SW_CSUM_CHUNK - 1)) + 1;
		/* The chunk's last 32-bit word, zeroed first: an odd tail pads with zero bytes. */
		last = ((chunk - 1) >> 2) & (SW_CSUM_CHUNK / 4 - 1);
		((__u32 *)buf)[last] = 0;
		if (bpf_skb_load_bytes(skb, f->l4 + at, buf, chunk))
			return 0;
		part = bpf_csum_diff(0, 0, (__be32 *)buf, (last + 1) * 4, 0);
		if (part < 0)
			return 0;
		sum += (__u32)part;
	}
	/* 128 chunks cover the longest IP payload (n < 65536). */
	return sw_csum_fold(sum) == 0xffff;
}
#endif

#endif /* SW_CSUM_H */
