/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The SYN+ACK builder, SPEC 7 (crates/synwall-engine/src/synack.rs): rewrite a SYN frame in place
 * into its answer. MACs swapped, VLAN tags kept; a fresh IPv4 header (IHL 5, TOS 0, ID 0, DF,
 * TTL from config) or IPv6 header (traffic class 0, flow label 0, hop limit from config); TCP
 * with seq = cookie, ack = client ISN + 1, SYN|ACK (+ECE), options in SPEC order. The headers are
 * built on the stack, checksummed there, and stored after the frame is resized.
 *
 * Resizing never needs tailroom, which drivers need not offer (a veth in native mode offers it
 * only up to the next 64-byte boundary): an answer longer than its SYN grows the frame at the
 * head (XDP guarantees 256 bytes of headroom) and the whole frame is written from its new start;
 * a shorter one shrinks it at the tail (which also drops the fragments of a multi-buffer frame).
 */
#ifndef SW_SYNACK_H
#define SW_SYNACK_H

#include "common.h"
#include "csum.h"
#include "cookie.h"
#include "maps.h"
#include "parse.h"

struct sw_synack_ip4 {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

struct sw_synack_ip6 {
	__u32 ver_tc_flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* TCP header with room for the longest option block (20 bytes). */
struct sw_synack_tcp {
	__u16 source;
	__u16 dest;
	__u32 seq;
	__u32 ack_seq;
	__u8 doff;
	__u8 flags;
	__u16 window;
	__u16 check;
	__u16 urg_ptr;
	__u32 opts[5];
};

union sw_synack_hdrs {
	struct {
		struct sw_synack_ip4 ip;
		struct sw_synack_tcp tcp;
	} v4;
	struct {
		struct sw_synack_ip6 ip;
		struct sw_synack_tcp tcp;
	} v6;
	__u32 words[20];
};

/*
 * synack_options + the TCP header, written as whole 32-bit words from `w` on (w[4], the checksum
 * and the urgent pointer, is left for the caller), their sum (load order) added to `*sum`; returns
 * the TCP header length (20 + options). Whole words, stored once and summed from registers: a
 * load that spans several narrower stores still in flight cannot be forwarded from them and waits
 * for them to retire, and the checksum and the copy into the frame used to load such words.
 */
SW_INLINE __u32 sw_synack_tcp_fill(__u32 *w, const struct sw_frame *f, const struct sw_config *cfg,
				   struct sw_opt_bits bits, __u32 isn, __u32 tsval, __u32 tsecr,
				   __u16 mss, __u64 *sum)
{
	__u32 k = 1, ws, o;
	__u64 s;
	int sack = sw_bits_sack(bits), ts = sw_bits_timestamps(bits);

	/* source and dest: the SYN's ports swapped */
	w[0] = (__u32)bpf_htons(f->dport) | (__u32)bpf_htons(f->sport) << 16;
	w[1] = bpf_htonl(isn);
	w[2] = bpf_htonl(f->seq + 1);
	s = (__u64)w[0] + w[1] + w[2];
	/* 1. MSS = the configured server MSS of the family */
	o = bpf_htonl(SW_TCPOPT_MSS << 24 | 4 << 16 | mss);
	w[5] = o;
	s += o;
	/* 2. SACK-Permitted and/or Timestamps */
	if (ts) {
		o = sack ? bpf_htonl(SW_TCPOPT_SACK_PERMITTED << 24 | 2 << 16 |
				     SW_TCPOPT_TIMESTAMPS << 8 | 10)
			 : bpf_htonl(SW_TCPOPT_NOP << 24 | SW_TCPOPT_NOP << 16 |
				     SW_TCPOPT_TIMESTAMPS << 8 | 10);
		w[6] = o;
		w[7] = bpf_htonl(tsval);
		w[8] = bpf_htonl(tsecr);
		s += (__u64)o + w[7] + w[8];
		k = 4;
	} else if (sack) {
		o = bpf_htonl(SW_TCPOPT_NOP << 24 | SW_TCPOPT_NOP << 16 |
			      SW_TCPOPT_SACK_PERMITTED << 8 | 2);
		w[6] = o;
		s += o;
		k = 2;
	}
	/* 3. Window Scale = our shift, iff the SYN had one (W != 15) */
	if (sw_bits_wscale_field(bits) != SW_WSCALE_NONE) {
		ws = bpf_htonl(SW_TCPOPT_NOP << 24 | SW_TCPOPT_WSCALE << 16 | 3 << 8 | cfg->wscale);
		if (k == 4)
			w[9] = ws;
		else if (k == 2)
			w[7] = ws;
		else
			w[6] = ws;
		s += ws;
		k += 1;
	}
	/* data offset, flags, window */
	o = (__u32)((5 + k) << 4) |
	    (__u32)(SW_TCP_SYN | SW_TCP_ACK | (sw_bits_ecn(bits) ? SW_TCP_ECE : 0)) << 8 |
	    (__u32)bpf_htons(cfg->window) << 16;
	w[3] = o;
	*sum += s + o;
	return SW_TCP_MIN_HLEN + 4 * k;
}

/* One size of sw_store_hdrs' straight copy (a constant size the verifier can check). */
#define SW_STORE_HDRS(N)                                                                   \
	case N:                                                                            \
		if ((void *)(p + N) > end)                                                 \
			break;                                                             \
		sw_copy_words((__u32 *)p, h->words, N / 4);                                \
		return 0;

/*
 * Copy `n` words (a constant) word by word: the volatile loads keep the compiler from merging
 * two into one 64-bit load, which could not be forwarded from the two 32-bit stores that wrote
 * them (and would wait for them to retire).
 */
SW_INLINE void sw_copy_words(__u32 *dst, const __u32 *src, const int n)
{
	int i;

#pragma unroll
	for (i = 0; i < n; i++)
		dst[i] = *(volatile const __u32 *)&src[i];
}

/*
 * Write the `n` bytes (40..80, a multiple of 4) of `h` at `off` (14..22): straight into the first
 * buffer when they are all there (all answers but one grown into a multi-buffer frame's
 * fragments), which costs less than the helper, else with bpf_xdp_store_bytes.
 */
SW_INLINE int sw_store_hdrs(struct xdp_md *ctx, __u32 off, const union sw_synack_hdrs *h,
			    __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p;

	/* A no-op the compiler must keep: the verifier needs the offset's bound here. */
	barrier_var(off);
	p = data + (off & 0x1f);
	switch (n) {
		SW_STORE_HDRS(40)
		SW_STORE_HDRS(44)
		SW_STORE_HDRS(48)
		SW_STORE_HDRS(52)
		SW_STORE_HDRS(56)
		SW_STORE_HDRS(60)
		SW_STORE_HDRS(64)
		SW_STORE_HDRS(68)
		SW_STORE_HDRS(72)
		SW_STORE_HDRS(76)
		SW_STORE_HDRS(80)
	}
	return bpf_xdp_store_bytes(ctx, off, (void *)h, n);
}

/*
 * The kernel's XDP buffer, as far as sw_frame_len looks at it; the field is found in the running
 * kernel's BTF (CO-RE), the offsets here mean nothing.
 */
struct xdp_buff {
	__u32 flags;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* include/net/xdp.h: the buffer has fragments. */
#define SW_XDP_FLAGS_HAS_FRAGS 1

/*
 * bpf_xdp_get_buff_len without the call when the frame is one buffer (the usual case): a call's
 * return costs a mispredicted safe RET on CPUs with the SRSO mitigation. The flag is the one the
 * helper itself tests (xdp_get_buff_len), read from the kernel's buffer (bpf_cast_to_kern_ctx is
 * inlined by the verifier: no call either).
 */
SW_INLINE __u32 sw_frame_len(struct xdp_md *ctx)
{
	struct xdp_buff *x = bpf_cast_to_kern_ctx(ctx);

	if (!(x->flags & SW_XDP_FLAGS_HAS_FRAGS))
		return sw_linear_len(ctx);
	return bpf_xdp_get_buff_len(ctx);
}

/*
 * synack::build. Returns the new frame length, or -1 if the frame could not be resized (the
 * driver refused the room) or written. The answer's IP header follows Ethernet and the tags: the
 * SYN's IPv4 options, IPv6 extension headers and SRv6 encapsulation are gone. The SYN's segment is all in the first buffer (the caller
 * checked), so its Ethernet header and tags are too.
 */
SW_INLINE int sw_build_synack(struct xdp_md *ctx, const struct sw_frame *f,
			      const struct sw_config *cfg, struct sw_opt_bits bits, __u32 isn,
			      __u32 tsval, __u32 tsecr)
{
	union sw_synack_hdrs h;
	__u32 iplen, tcplen, total, hdrs_len, l2 = f->l3;
	__u32 mac_lo;
	__u16 mac_hi;
	__u8 *eth;
	void *data, *end;
	__u64 sum;
	int delta;

	__builtin_memset(&h, 0, sizeof(h));
	if (f->family == SW_FAMILY_V4) {
		__u32 *ip = h.words, *tcp = h.words + 5;

		iplen = sizeof(struct sw_synack_ip4);
		/* TCP: its words, then the pseudo-header with the addresses swapped (same sum) */
		sum = (__u64)f->src[0] + f->dst[0] + bpf_htons(SW_PROTO_TCP);
		tcplen = sw_synack_tcp_fill(tcp, f, cfg, bits, isn, tsval, tsecr, cfg->mss_v4, &sum);
		tcp[4] = (__u16)~sw_csum_fold(sum + bpf_htons(tcplen));
		/* IPv4: version/IHL 0x45, TOS 0, total length; ID 0, DF; TTL, protocol, checksum */
		ip[0] = 0x45 | (__u32)bpf_htons(iplen + tcplen) << 16;
		ip[1] = (__u32)bpf_htons(SW_IPV4_DF) << 16;
		ip[3] = f->dst[0];
		ip[4] = f->src[0];
		sum = (__u64)ip[0] + ip[1] + ip[3] + ip[4] + (cfg->ttl | SW_PROTO_TCP << 8);
		ip[2] = (__u32)cfg->ttl | SW_PROTO_TCP << 8 | (__u32)(__u16)~sw_csum_fold(sum) << 16;
	} else {
		__u32 *ip = h.words, *tcp = h.words + 10;

		iplen = sizeof(struct sw_synack_ip6);
		sum = sw_csum_words(sw_csum_words(0, f->src, 4), f->dst, 4) + bpf_htons(SW_PROTO_TCP);
		tcplen = sw_synack_tcp_fill(tcp, f, cfg, bits, isn, tsval, tsecr, cfg->mss_v6, &sum);
		tcp[4] = (__u16)~sw_csum_fold(sum + bpf_htons(tcplen));
		/* IPv6: version 6, traffic class and flow label 0; payload length, TCP, hop limit */
		ip[0] = bpf_htonl(6U << 28);
		ip[1] = (__u32)bpf_htons(tcplen) | SW_PROTO_TCP << 16 | (__u32)cfg->ttl << 24;
		ip[2] = f->dst[0];
		ip[3] = f->dst[1];
		ip[4] = f->dst[2];
		ip[5] = f->dst[3];
		ip[6] = f->src[0];
		ip[7] = f->src[1];
		ip[8] = f->src[2];
		ip[9] = f->src[3];
	}
	hdrs_len = iplen + tcplen;
	if (hdrs_len > sizeof(h) || l2 < SW_ETH_HLEN || l2 > SW_MAX_L2_LEN)
		return -1;

	/* Ethernet: swap the MACs; the tags between them and l3 stay as they came. */
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + SW_MAX_L2_LEN) > end)
		return -1;
	/* In words, not bytes (the compiler cannot know the frame's alignment; x86 needs none). */
	mac_lo = *(__u32 *)eth;
	mac_hi = *(__u16 *)(eth + 4);
	*(__u32 *)eth = *(__u32 *)(eth + 6);
	*(__u16 *)(eth + 4) = *(__u16 *)(eth + 10);
	*(__u32 *)(eth + 6) = mac_lo;
	*(__u16 *)(eth + 10) = mac_hi;
	/*
	 * The answer to a SYN inside SRv6 encapsulation is a plain packet of the inner family: the
	 * EtherType before it says so (the tags before that stay).
	 */
	if (f->ip != l2) {
		__u16 et = f->family == SW_FAMILY_V4 ? SW_ETHERTYPE_IPV4 : SW_ETHERTYPE_IPV6;
		__u8 *t = eth + ((l2 - 2) & 0x1f);

		if ((void *)(t + 2) > end)
			return -1;
		t[0] = et >> 8;
		t[1] = et & 0xff;
	}

	/* All buffers: link padding past the segment may lie in fragments, which a shrink drops. */
	total = l2 + hdrs_len;
	delta = (int)total - (int)sw_frame_len(ctx);
	if (delta > 0) {
		/* Longer than the SYN: grow at the head, then write L2 at the new start. */
		union {
			__u64 q[3];
			__u32 w[6];
			__u16 h[12];
		} l2buf;

		/* Bytes 0..21 in words (as the MACs above). */
		l2buf.q[0] = *(__u64 *)eth;
		l2buf.q[1] = *(__u64 *)(eth + 8);
		l2buf.w[4] = *(__u32 *)(eth + 16);
		l2buf.h[10] = *(__u16 *)(eth + 20);
		if (bpf_xdp_adjust_head(ctx, -delta))
			return -1;
		/*
		 * All 22 bytes, whatever the tags: those past l3 are overwritten by the IP header
		 * below (and the answer is longer than 22 bytes).
		 */
		if (bpf_xdp_store_bytes(ctx, 0, &l2buf, SW_MAX_L2_LEN))
			return -1;
	} else if (delta < 0 && bpf_xdp_adjust_tail(ctx, delta)) {
		return -1;
	}
	return sw_store_hdrs(ctx, l2, &h, hdrs_len) ? -1 : (int)total;
}

#endif /* SW_SYNACK_H */
