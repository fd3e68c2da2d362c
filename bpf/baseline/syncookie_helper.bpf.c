// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The conventional XDP SYN-cookie answerer that synwall's edge is measured against: the ISN is the
 * kernel's own listener cookie (bpf_tcp_raw_gen_syncookie_ipv4/6: hash of the 4-tuple and the
 * MSS index), the client's window scale, SACK and ECN ride in the low 6 bits of a millisecond
 * TSval exactly as Linux's cookie_init_timestamp lays them out, and a SYN without timestamps gets
 * MSS only (Linux clears the other options of a cookie SYN+ACK when it has nowhere to keep them).
 *
 * The port, MSS, window, shift and TTL are read-only globals fixed before load (the usual
 * way; no map lookup). Headers are rewritten in place; the frame is resized only when the option
 * block changes length. Checksums: IPv4 header summed over its 10 words, TCP by bpf_csum_diff
 * over the header built on the stack plus the pseudo-header.
 *
 * Every outcome increments one per-CPU counter (enum hc_counter, read by crates/synwall-baseline).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Configuration (host byte order), written by userspace before load. */
const volatile __u16 cfg_port = 0;
const volatile __u16 cfg_mss_v4 = 1460;
const volatile __u16 cfg_mss_v6 = 1440;
const volatile __u16 cfg_window = 64240;
const volatile __u8 cfg_wscale = 7;
const volatile __u8 cfg_ttl = 64;

/* Keep in this order: crates/synwall-baseline names them by index. */
enum hc_counter {
	HC_TX_SYNACK,
	HC_PASS_NOT_IP,
	HC_PASS_NOT_TCP,
	HC_PASS_IP_OPTIONS, /* IPv4 options, IPv4 fragments or IPv6 extension headers: the stack's */
	HC_PASS_OTHER_PORT,
	HC_PASS_NOT_SYN,
	HC_PASS_TRUNCATED,
	HC_PASS_COOKIE_ERROR, /* the helper refused the header */
	HC_ABORT_RESIZE,
	HC_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HC_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} hc_counters SEC(".maps");

static __always_inline int count(int action, __u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&hc_counters, &c);

	if (v)
		*v += 1;
	return action;
}

#define TCP_MAX_HLEN 60
#define SYNACK_MAX_HLEN 40

/* Linux's timestamp-cookie layout (include/net/tcp.h: TS_OPT_*; TSBITS = 6). */
#define TS_OPT_WSCALE_MASK 0xf
#define TS_OPT_SACK (1 << 4)
#define TS_OPT_ECN (1 << 5)
#define TSBITS 6

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_TIMESTAMP 8

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10
#define F_ECE 0x40
#define F_CWR 0x80

struct syn_opts {
	__u32 tsval;
	__u8 ts;
	__u8 sack;
	__u8 ws; /* the client's shift, or 0xff if it sent none */
};

/* The SYN's TCP header, copied from the packet (with room for a 4-byte read at any position). */
struct syn_buf {
	__u8 b[TCP_MAX_HLEN + 4];
};

/*
 * Walk a SYN's options (in the stack copy) for window scale, SACK-Permitted and Timestamps. A
 * global function: verified once, not once per path into it.
 */
__attribute__((noinline)) int parse_opts(const struct syn_buf *hdr, __u32 hlen, struct syn_opts *o)
{
	__u32 i, skip = 0;

	if (!hdr || !o || hlen > TCP_MAX_HLEN)
		return -1;
	o->ts = 0;
	o->sack = 0;
	o->ws = 0xff;
	/*
	 * One pass per byte position, skipping the bodies of options already read: the position is
	 * the loop counter, which keeps the verifier's walk linear in the 40 option bytes.
	 */
	for (i = 20; i < TCP_MAX_HLEN; i++) {
		__u8 kind, len;

		if (i >= hlen)
			break;
		if (skip) {
			skip--;
			continue;
		}
		kind = hdr->b[i];
		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP)
			continue;
		if (i + 1 >= hlen)
			break;
		len = hdr->b[i + 1];
		if (len < 2 || i + len > hlen)
			break;
		if (kind == TCPOPT_WINDOW && len == 3) {
			__u8 s = hdr->b[i + 2];

			o->ws = s > 14 ? 14 : s;
		} else if (kind == TCPOPT_SACK_PERM && len == 2) {
			o->sack = 1;
		} else if (kind == TCPOPT_TIMESTAMP && len == 10 && i <= TCP_MAX_HLEN - 10) {
			__u32 t;

			__builtin_memcpy(&t, &hdr->b[i + 2], 4);
			o->ts = 1;
			o->tsval = bpf_ntohl(t);
		}
		skip = len - 1;
	}
	return 0;
}

/* cookie_init_timestamp: a ms clock whose low 6 bits are the options, never ahead of now. */
static __always_inline __u32 ts_cookie(const struct syn_opts *o, int ecn)
{
	__u64 now = bpf_ktime_get_ns() / 1000000;
	__u64 ts = now & ~((__u64)(1 << TSBITS) - 1);

	ts |= o->ws != 0xff ? o->ws : TS_OPT_WSCALE_MASK;
	if (o->sack)
		ts |= TS_OPT_SACK;
	if (ecn)
		ts |= TS_OPT_ECN;
	if (ts > now)
		ts -= 1 << TSBITS;
	return (__u32)ts;
}

/* Folded one's complement sum, in the byte order the words were loaded in. */
static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/*
 * The SYN+ACK's TCP header on the stack: ports swapped, seq = cookie, ack = ISN + 1, options
 * MSS [, SACK-Permitted | NOP NOP, Timestamps] [, NOP Window-Scale]. Returns its length.
 */
static __always_inline __u32 build_tcp(__u32 *w, const struct tcphdr *syn, const struct syn_opts *o,
				       __u32 cookie, __u32 tsval, __u16 mss, int ecn)
{
	struct tcphdr *t = (struct tcphdr *)w;
	__u32 k = 6; /* words: 5 of header + MSS */

	t->source = syn->dest;
	t->dest = syn->source;
	t->seq = bpf_htonl(cookie);
	t->ack_seq = bpf_htonl(bpf_ntohl(syn->seq) + 1);
	w[5] = bpf_htonl(TCPOPT_MSS << 24 | 4 << 16 | mss);
	if (o->ts) {
		w[6] = o->sack ? bpf_htonl(TCPOPT_SACK_PERM << 24 | 2 << 16 | TCPOPT_TIMESTAMP << 8 | 10)
			       : bpf_htonl(TCPOPT_NOP << 24 | TCPOPT_NOP << 16 |
					   TCPOPT_TIMESTAMP << 8 | 10);
		w[7] = bpf_htonl(tsval);
		w[8] = bpf_htonl(o->tsval);
		k = 9;
		if (o->ws != 0xff) {
			w[9] = bpf_htonl(TCPOPT_NOP << 24 | TCPOPT_WINDOW << 16 | 3 << 8 | cfg_wscale);
			k = 10;
		}
	}
	/* doff, then flags SYN|ACK (+ECE), in one 16-bit word. */
	w[3] = bpf_htonl(k << 28 | (F_SYN | F_ACK | (ecn ? F_ECE : 0)) << 16 | cfg_window);
	w[4] = 0; /* checksum, urgent pointer */
	return k * 4;
}

/* Sum of the TCP header built on the stack (length 24..40, a multiple of 4). */
static __always_inline __u64 tcp_sum(__u32 *w, __u32 len)
{
	len &= 0x3c;
	if (len > SYNACK_MAX_HLEN)
		len = SYNACK_MAX_HLEN;
	return (__u32)bpf_csum_diff(NULL, 0, (__be32 *)w, len, 0);
}

SEC("xdp")
int syncookie_helper(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 l3 = sizeof(*eth), l4, hlen, newlen, cookie, tsval = 0;
	__u32 w[SYNACK_MAX_HLEN / 4] = {};
	struct syn_buf sb = {};
	__u8 *syn = sb.b;
	struct syn_opts o;
	__u16 proto, mss;
	__u64 sum;
	__s64 c;
	int v4, ecn, delta;

	if ((void *)(eth + 1) > end)
		return count(XDP_PASS, HC_PASS_TRUNCATED);
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		__u16 *inner = (void *)(eth + 1) + 2;

		if ((void *)(inner + 1) > end)
			return count(XDP_PASS, HC_PASS_TRUNCATED);
		proto = *inner;
		l3 += 4;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > end)
			return count(XDP_PASS, HC_PASS_TRUNCATED);
		if (ip->protocol != IPPROTO_TCP)
			return count(XDP_PASS, HC_PASS_NOT_TCP);
		if (ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return count(XDP_PASS, HC_PASS_IP_OPTIONS);
		v4 = 1;
		l4 = l3 + sizeof(*ip);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return count(XDP_PASS, HC_PASS_TRUNCATED);
		if (ip6->nexthdr != IPPROTO_TCP)
			return count(XDP_PASS, HC_PASS_NOT_TCP);
		v4 = 0;
		l4 = l3 + sizeof(*ip6);
	} else {
		return count(XDP_PASS, HC_PASS_NOT_IP);
	}

	/* Fixed TCP header straight from the packet: cheap rejects before any copy. */
	{
		struct tcphdr *th = data + l4;

		if ((void *)(th + 1) > end)
			return count(XDP_PASS, HC_PASS_TRUNCATED);
		if (th->dest != bpf_htons(cfg_port))
			return count(XDP_PASS, HC_PASS_OTHER_PORT);
		if ((((__u8 *)th)[13] & (F_SYN | F_ACK | F_RST | F_FIN)) != F_SYN)
			return count(XDP_PASS, HC_PASS_NOT_SYN);
		hlen = th->doff * 4;
	}
	if (hlen < sizeof(struct tcphdr))
		return count(XDP_PASS, HC_PASS_TRUNCATED);
	/* The header with options, on the stack: the helper and the option walk read it there. */
	if (bpf_xdp_load_bytes(ctx, l4, syn, hlen))
		return count(XDP_PASS, HC_PASS_TRUNCATED);

	if (v4) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > end)
			return count(XDP_PASS, HC_PASS_TRUNCATED);
		c = bpf_tcp_raw_gen_syncookie_ipv4(ip, (struct tcphdr *)syn, hlen);
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > end)
			return count(XDP_PASS, HC_PASS_TRUNCATED);
		c = bpf_tcp_raw_gen_syncookie_ipv6(ip6, (struct tcphdr *)syn, hlen);
	}
	if (c < 0)
		return count(XDP_PASS, HC_PASS_COOKIE_ERROR);
	cookie = (__u32)c;

	parse_opts(&sb, hlen, &o);
	ecn = (syn[13] & (F_ECE | F_CWR)) == (F_ECE | F_CWR);
	if (o.ts)
		tsval = ts_cookie(&o, ecn);
	else
		ecn = 0; /* like Linux: without timestamps the cookie keeps no option */
	mss = v4 ? cfg_mss_v4 : cfg_mss_v6;
	newlen = build_tcp(w, (struct tcphdr *)syn, &o, cookie, tsval, mss, ecn);
	sum = tcp_sum(w, newlen);

	/* Resize to headers + new TCP header (any SYN payload goes). */
	delta = (int)(l4 + newlen) - (int)(end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return count(XDP_ABORTED, HC_ABORT_RESIZE);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return count(XDP_ABORTED, HC_ABORT_RESIZE);
	{
		__u8 mac[ETH_ALEN];

		__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	}
	l3 &= 0x1f;
	if (v4) {
		struct iphdr *ip = data + l3;
		__u32 a;
		__u64 s = 0;
		__u16 *hw;
		int i;

		if ((void *)(ip + 1) > end)
			return count(XDP_ABORTED, HC_ABORT_RESIZE);
		a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(*ip) + newlen);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000);
		ip->ttl = cfg_ttl;
		ip->check = 0;
		hw = (__u16 *)ip;
#pragma unroll
		for (i = 0; i < 10; i++)
			s += hw[i];
		ip->check = ~fold(s);
		sum += (__u64)ip->saddr + ip->daddr + bpf_htons(IPPROTO_TCP) + bpf_htons(newlen);
	} else {
		struct ipv6hdr *ip6 = data + l3;
		struct in6_addr a;
		__u32 *s6, *d6;
		int i;

		if ((void *)(ip6 + 1) > end)
			return count(XDP_ABORTED, HC_ABORT_RESIZE);
		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		*(__u32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(newlen);
		ip6->hop_limit = cfg_ttl;
		s6 = ip6->saddr.in6_u.u6_addr32;
		d6 = ip6->daddr.in6_u.u6_addr32;
#pragma unroll
		for (i = 0; i < 4; i++)
			sum += (__u64)s6[i] + d6[i];
		sum += bpf_htonl(IPPROTO_TCP) + bpf_htonl(newlen);
	}
	w[4] = (__u16)~fold(sum); /* checksum in the low half in load order; urgent pointer 0 */
	if (bpf_xdp_store_bytes(ctx, l4 & 0x7f, w, newlen & 0x3c))
		return count(XDP_ABORTED, HC_ABORT_RESIZE);
	return count(XDP_TX, HC_TX_SYNACK);
}
