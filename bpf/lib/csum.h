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

/*
 * Longest byte range sw_csum_pkt sums in place, word by word (a SYN is at most one MTU; jumbo
 * frames fit); longer ones (a SYN of more than 16 KiB in one buffer: generic XDP on an interface
 * with a larger MTU) are summed by sw_csum_chunks.
 */
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
 * The running sum (load order, not folded) of the `n` (at most SW_MAX_IP_LEN) bytes at `off` of
 * the frame, wherever they lie (copied out chunk by chunk: a non-linear skb, or any length); -1
 * if they are not all there. A global function: verified once.
 */
SW_GLOBAL __s64 sw_csum_chunks(SW_CTX *ctx, __u32 off, __u32 n)
{
	__u32 zero = 0, at, chunk, last;
	__u64 sum = 0;
	__s64 part;
	__u8 *buf;
	int i;

	buf = bpf_map_lookup_elem(&sw_csum_scratch, &zero);
	if (!buf || n > SW_MAX_IP_LEN)
		return -1;
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
		if (sw_load(ctx, off + at, buf, chunk))
			return -1;
		part = bpf_csum_diff(0, 0, (__be32 *)buf, (last + 1) * 4, 0);
		if (part < 0)
			return -1;
		sum += (__u32)part;
	}
	/* 128 chunks cover the longest IP payload (n < 65536). */
	return (__s64)(sum & 0x7fffffffffffffffULL);
}

#ifdef SW_XDP
/* One size of sw_csum_in_place: N bytes, one bounds check, N / 4 words summed straight. */
#define SW_CSUM_IN_PLACE(N)                                                                \
	case N:                                                                            \
		if ((void *)(p + N) > end)                                                 \
			return -1;                                                         \
		return (__s64)sw_csum_words(0, (const __u32 *)p, N / 4);

/*
 * The running sum (load order, not folded) of the `n` bytes at `off` when n is a multiple of 4
 * from 20 to 60 (a TCP header without payload: what a SYN is) and they are all in the first
 * buffer, read in place; -1 otherwise (the caller then uses sw_csum_pkt). No loop and no call:
 * sw_csum_pkt's word loop and per-word bounds checks cost a SYN more than the sum itself.
 */
SW_INLINE __s64 sw_csum_in_place(struct xdp_md *ctx, __u32 off, __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	const __u8 *p = data + (off & SW_OFF_MASK);

	switch (n) {
		SW_CSUM_IN_PLACE(20)
		SW_CSUM_IN_PLACE(24)
		SW_CSUM_IN_PLACE(28)
		SW_CSUM_IN_PLACE(32)
		SW_CSUM_IN_PLACE(36)
		SW_CSUM_IN_PLACE(40)
		SW_CSUM_IN_PLACE(44)
		SW_CSUM_IN_PLACE(48)
		SW_CSUM_IN_PLACE(52)
		SW_CSUM_IN_PLACE(56)
		SW_CSUM_IN_PLACE(60)
	}
	return -1;
}

/*
 * The folded sum (0..0xffff) of the `n` bytes at `off` of the frame, or -1 if they are not all
 * there or n exceeds SW_CSUM_MAX_LEN (the caller sums longer ranges with sw_csum_chunks). A
 * global function: its loop is verified once.
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
	if (toff > SW_OFF_MASK + SW_CSUM_MAX_LEN)
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
	__u16 network_header;
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* include/linux/skbuff.h */
#define SW_CHECKSUM_UNNECESSARY 1
#define SW_CHECKSUM_PARTIAL 3

/*
 * Skb::tcp_csum_trusted: what skb_csum_unnecessary answers when tcp_checksum_init asks it, with
 * skb->data at the TCP header (`f->l4` bytes after where it is now, at tc ingress): the device
 * verified the checksum (CHECKSUM_UNNECESSARY), or the segment comes from this host and is still
 * to be checksummed from its TCP header on (CHECKSUM_PARTIAL whose csum_start is not before the
 * TCP header). Not csum_valid: __skb_checksum_validate clears it before it asks. Then the kernel
 * does not look at the checksum, and neither do we.
 */
SW_INLINE int sw_skb_csum_trusted(struct __sk_buff *skb, const struct sw_frame *f)
{
	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
	__u8 ip_summed = BPF_CORE_READ_BITFIELD(k, ip_summed);

	if (ip_summed == SW_CHECKSUM_UNNECESSARY)
		return 1;
	return ip_summed == SW_CHECKSUM_PARTIAL &&
	       (long)k->csum_start >= (long)(k->data - k->head) + (long)f->l4;
}

/*
 * Skb::network: the kernel's network header, counted from the start of the frame the program sees
 * (skb->mac_len at tc ingress). After Linux took SRv6 encapsulation off and handed the inner packet
 * to the interface again, it is the inner IP header, while the frame still starts at the outer
 * Ethernet header.
 */
SW_INLINE __u32 sw_skb_network(struct __sk_buff *skb)
{
	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);

	return (__u32)k->network_header - (__u32)(k->data - k->head);
}

/*
 * TcpFrame::tcp_checksum_ok on tc: the segment summed chunk by chunk (copied out, so a
 * non-linear skb is read where it lies, up to an MSS of jumbo data), plus the pseudo-header with
 * the final destination. A global function: verified once.
 */
SW_GLOBAL int sw_tcp_checksum_ok(struct __sk_buff *skb, const struct sw_frame *f)
{
	__u32 n;
	__u64 sum;
	__s64 seg;

	if (!f)
		return 0;
	n = f->end - f->l4;
	seg = sw_csum_chunks(skb, f->l4, n);
	if (seg < 0)
		return 0;
	if (f->family == SW_FAMILY_V4)
		sum = (__u64)f->src[0] + f->dst[0];
	else
		sum = sw_csum_words(sw_csum_words(0, f->src, 4), f->dst, 4);
	sum += bpf_htons(SW_PROTO_TCP) + bpf_htons((__u16)n);
	return sw_csum_fold(sum + (__u64)seg) == 0xffff;
}
#endif

#endif /* SW_CSUM_H */
