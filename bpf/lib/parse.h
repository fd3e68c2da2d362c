/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Step 1 of every packet (crates/synwall-engine/src/parse.rs): parse the frame down to TCP, or
 * say which counter ends its journey. Same order of checks, same counter for every outcome:
 *
 *   Ethernet + up to 2 VLAN tags
 *   -> IPv4 (options walked only when IHL > 5: LSRR/SSRR) | IPv6 (extension headers walked only
 *      when there are any, BEFORE the lookup: a routing header changes the destination; a chain
 *      the walk cannot finish is dropped, whatever the destination)
 *   -> SRv6 encapsulation (an IP packet behind a segment routing header): the inner packet
 *      instead, parsed the same way, one level
 *   -> final destination covered by a protected prefix? -> TCP? -> fragment? -> TCP header
 *   -> protected (address, port)?
 *
 * Lengths are checked against the frame length (all buffers of an XDP multi-buffer frame, or
 * skb->len on tc). Headers are read through sw_hdr: on a one-buffer XDP frame and on tc by
 * pointer (tc pulls non-linear data into the head when needed); on a multi-buffer XDP frame by
 * copying with bpf_xdp_load_bytes, so a header in a fragment is read like any other. Parsed fields
 * are copied out at once, so no packet pointer outlives the next read.
 */
#ifndef SW_PARSE_H
#define SW_PARSE_H

#include "common.h"
#include "counters.h"
#include "maps.h"

/* A frame that parsed down to a TCP segment to a protected service (parse::TcpFrame). */
struct sw_frame {
	__u32 l3;       /* offset of the network header (the end of Ethernet and tags) */
	__u32 ip;       /* the IP header the addresses are from: l3, or the one inside SRv6 */
	__u32 l4;       /* offset of the TCP header */
	__u32 end;      /* end of the TCP segment (end of the IP payload; link padding excluded) */
	__u32 src[4];   /* source address as loaded from the packet; IPv4 uses src[0] */
	__u32 dst[4];   /* the FINAL destination likewise (an IPv6 routing header's, if any) */
	__u32 seq;      /* host order */
	__u32 ack;      /* host order */
	__u16 sport;    /* host order */
	__u16 dport;    /* host order */
	__u16 tcp_hlen; /* TCP header length in bytes */
	__u8 family;    /* SW_FAMILY_V4 / SW_FAMILY_V6 */
	__u8 flags;     /* TCP flags byte */
	__u8 fragment;  /* the first fragment of a fragmented datagram (TcpFrame::fragment) */
	__u8 pad[3];
};

/* The TCP options a SYN proxy reads (synwall_wire::tcp::TcpOptions). */
struct sw_tcp_opts {
	__u32 tsval;
	__u32 tsecr;
	__u16 mss;
	__u8 has_mss;
	__u8 wscale;
	__u8 has_wscale;
	__u8 sack_permitted;
	__u8 has_timestamps;
	__u8 pad;
};

/* The outcome of sw_parse (parse::Parsed), in bits 8.. of its return value; the counter in 0..7. */
#define SW_PARSED_TCP 0
#define SW_PARSED_PASS 1
#define SW_PARSED_DROP 2
/* SRv6 encapsulation: f->ip, f->end, f->family and f->fragment say where the inner packet is. */
#define SW_PARSED_ENCAP 3
#define SW_PARSED(outcome, counter) (((outcome) << 8) | (counter))

/* How sw_parse_frame reads headers (a constant after inlining, so each copy verifies one way). */
#define SW_READ_DIRECT 0 /* pointers into the linear data */
#define SW_READ_COPY 1   /* XDP multi-buffer: bpf_xdp_load_bytes into a stack buffer */

/* The bytes of the frame in its first (linear) buffer. */
SW_INLINE __u32 sw_linear_len(SW_CTX *ctx)
{
	return ctx->data_end - ctx->data;
}

/* Copy `n` (bounded) bytes at `off` of the frame, wherever they are, into `buf`. */
SW_INLINE int sw_load(SW_CTX *ctx, __u32 off, void *buf, __u32 n)
{
#ifdef SW_XDP
	return bpf_xdp_load_bytes(ctx, off, buf, n);
#else
	return bpf_skb_load_bytes(ctx, off, buf, n);
#endif
}

/*
 * The `n` (a constant) bytes at `off`, or NULL. The caller has checked that the frame holds them.
 * SW_READ_DIRECT: a pointer into the packet; on tc they may still sit outside the linear head, and
 * then they are pulled in. SW_READ_COPY: a copy in `buf` (at least n bytes).
 */
SW_INLINE const __u8 *sw_hdr(SW_CTX *ctx, __u32 off, const __u32 n, __u8 *buf, const int read)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (read == SW_READ_COPY)
		return sw_load(ctx, off, buf, n) ? NULL : buf;
	off &= SW_OFF_MASK;
	if (data + off + n <= end)
		return data + off;
#ifdef SW_TC
	if (bpf_skb_pull_data(ctx, off + n) == 0) {
		data = (void *)(long)ctx->data;
		end = (void *)(long)ctx->data_end;
		if (data + off + n <= end)
			return data + off;
	}
#endif
	return NULL;
}

SW_INLINE __u16 sw_be16(const __u8 *p)
{
	return (__u16)p[0] << 8 | p[1];
}

SW_INLINE __u32 sw_be32(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

/*
 * The same reads as one load each, for the hot parse: the byte-by-byte form costs a load, a
 * shift and an or per byte. A header is read in the packet (x86 needs no alignment) or in an
 * 8-aligned stack buffer it was copied into (SW_HDR_BUF), where every field read so sits at an
 * offset aligned to its size, as the verifier requires on the stack.
 */
SW_INLINE __u16 sw_load_be16(const __u8 *p)
{
	return bpf_ntohs(*(const __u16 *)p);
}

SW_INLINE __u32 sw_load_be32(const __u8 *p)
{
	return bpf_ntohl(*(const __u32 *)p);
}

/* Four bytes as they sit (an address word). */
SW_INLINE __u32 sw_load_u32(const __u8 *p)
{
	return *(const __u32 *)p;
}

/* A stack buffer headers are copied into: aligned for sw_load_*. */
#define SW_HDR_BUF(name, n) __u8 name[n] __attribute__((aligned(8)))

/* The trie entry covering a destination (ServiceSet::covers_addr: any prefix contains it). */
SW_INLINE struct sw_svc_value *sw_service_lookup(__u8 family, const __u32 *dst)
{
	struct sw_svc_key key;

	__builtin_memset(&key, 0, sizeof(key));
	key.prefixlen = SW_SVC_LOOKUP_PREFIXLEN;
	key.family = family;
	if (family == SW_FAMILY_V4) {
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &dst[0], 4);
	} else {
		__builtin_memcpy(key.addr, dst, 16);
	}
	return bpf_map_lookup_elem(&sw_services, &key);
}

/* Is `port` in the entry's bitmap? (ServiceSet::is_protected, given the longest match.) */
SW_INLINE int sw_port_protected(const struct sw_svc_value *svc, __u16 port)
{
	__u32 idx = svc->ports;
	struct sw_port_bitmap *bm = bpf_map_lookup_elem(&sw_ports, &idx);

	if (!bm)
		return 0;
	return (bm->bits[(port >> 6) & 1023] >> (port & 63)) & 1;
}

/*
 * Ipv4Packet::source_routed over the `n` (1..40) option bytes of the IPv4 header at `l3`: 1 at
 * the first LSRR or SSRR option (the destination field is then only the next hop), 0 when the
 * list ends without one, -1 for a malformed list (an option length below 2 or past the header).
 * A global function: only headers with options pay for it, and it is verified once.
 */
SW_GLOBAL int sw_ipv4_source_routed(SW_CTX *ctx, __u32 l3, __u32 n_opts)
{
	/* 64 bytes so that `i & 63` always lands inside; only the first n are options. */
	__u8 buf[64];
	/* Masked (a no-op for 1..40): the verifier then knows the upper bits of the size. */
	__u32 i = 0, n = n_opts & 63;
	int iter;
	__u8 kind, olen;

	if (n != n_opts || n == 0 || n > SW_IPV4_MAX_OPTS)
		return -1;
	__builtin_memset(buf, 0, sizeof(buf));
	if (sw_load(ctx, l3 + SW_IPV4_MIN_HLEN, buf, n))
		return -1;
	for (iter = 0; iter < SW_IPV4_MAX_OPTS; iter++) {
		if (i >= n)
			break;
		kind = buf[i & 63];
		if (kind == SW_IPOPT_EOL)
			break;
		if (kind == SW_IPOPT_NOP) {
			i = (i + 1) & 63;
			continue;
		}
		if (i + 1 >= n)
			return -1;
		olen = buf[(i + 1) & 63];
		if (olen < 2 || i + olen > n)
			return -1;
		if (kind == SW_IPOPT_LSRR || kind == SW_IPOPT_SSRR)
			return 1;
		i = (i + olen) & 63;
	}
	return 0;
}

/* The walk over IPv6 extension headers (Ipv6Packet::upper_layer): its input and its result. */
struct sw_ext_walk {
	__u32 dst[4];  /* in: the fixed header's destination; out: the final one */
	__u32 off;     /* in: offset of the first extension header; out: of the upper layer */
	__u32 end;     /* in: end of the IPv6 payload */
	__u16 frag_off; /* out: offset (8-byte units) of the last Fragment header walked */
	__u8 nh;       /* in: the fixed header's next header; out: the upper-layer protocol */
	__u8 fragment; /* out: a Fragment header was walked */
	__u8 srh;      /* out: a segment routing header was walked (Upper::srh) */
	__u8 pad[3];
};

#define SW_WALK_OK 0
#define SW_WALK_MALFORMED 1    /* a header past the payload, a routing header too short */
#define SW_WALK_DEPTH 2        /* more than SW_MAX_EXT_HEADERS */
#define SW_WALK_SOURCE_ROUTE 3 /* type 0, a second one, another type with segments left */

SW_INLINE int sw_is_ext_header(__u8 nh)
{
	return nh == SW_NH_HOP_BY_HOP || nh == SW_NH_ROUTING || nh == SW_NH_FRAGMENT ||
	       nh == SW_NH_DEST_OPTS || nh == SW_NH_AUTH;
}

/*
 * Ipv6Packet::upper_layer: at most SW_MAX_EXT_HEADERS headers (Fragment included); hop-by-hop, destination options and
 * AH skipped; a routing header with segments left names the final destination (type 2 or 4: the
 * 16 bytes at its offset 8) or is refused; a Fragment header with offset > 0 ends the walk (what
 * follows is fragment data), one with offset 0 does not (its headers are all in this fragment).
 * Every extension header is at least 8 bytes, so reading 8 before the length check decides nothing
 * the length check would not. A global function: only packets with extension headers pay for it.
 */
SW_GLOBAL int sw_ipv6_walk(SW_CTX *ctx, struct sw_ext_walk *w)
{
	__u8 h[8];
	__u32 o, hlen;
	int i, routed = 0;

	if (!w)
		return SW_WALK_MALFORMED;
	o = w->off;
	for (i = 0; i <= SW_MAX_EXT_HEADERS; i++) {
		if (!sw_is_ext_header(w->nh))
			return SW_WALK_OK;
		/* One more extension header than the bound, whatever it is. */
		if (i == SW_MAX_EXT_HEADERS)
			return SW_WALK_DEPTH;
		if (o + 8 > w->end || sw_load(ctx, o, h, 8))
			return SW_WALK_MALFORMED;
		if (w->nh == SW_NH_FRAGMENT)
			hlen = 8;
		else if (w->nh == SW_NH_AUTH)
			hlen = ((__u32)h[1] + 2) * 4;
		else
			hlen = ((__u32)h[1] + 1) * 8;
		if (o + hlen > w->end)
			return SW_WALK_MALFORMED;
		if (w->nh == SW_NH_ROUTING) {
			if (routed || h[2] == SW_ROUTING_TYPE_0)
				return SW_WALK_SOURCE_ROUTE;
			routed = 1;
			w->srh = h[2] == SW_ROUTING_TYPE_SRH;
			if (h[3] > 0) {
				if (h[2] != SW_ROUTING_TYPE_2 && h[2] != SW_ROUTING_TYPE_SRH)
					return SW_WALK_SOURCE_ROUTE;
				if (hlen < SW_ROUTING_FINAL_DST + 16 ||
				    sw_load(ctx, o + SW_ROUTING_FINAL_DST, w->dst, 16))
					return SW_WALK_MALFORMED;
			}
		} else if (w->nh == SW_NH_FRAGMENT) {
			w->fragment = 1;
			w->frag_off = sw_be16(h + 2) >> 3;
			if (w->frag_off > 0) {
				w->nh = h[0];
				w->off = o + hlen;
				return SW_WALK_OK;
			}
		}
		w->nh = h[0];
		o += hlen;
		w->off = o;
	}
	return SW_WALK_DEPTH;
}

/* The walk's error as the counter that drops the packet (it cannot be judged). */
SW_INLINE int sw_walk_drop(int r)
{
	if (r == SW_WALK_SOURCE_ROUTE)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_SOURCE_ROUTE);
	if (r == SW_WALK_DEPTH)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_IPV6_EXT_DEPTH);
	return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
}

/* parse::nested: an IP packet as the upper layer of one that is not a non-first fragment. */
SW_INLINE int sw_nested(__u8 proto, __u16 frag_off)
{
	return (proto == SW_PROTO_IPV4 || proto == SW_NH_IPV6) && frag_off == 0;
}

/* RFC 1858: a fragment offset below SW_MIN_NONFIRST_OFFSET (constants.def) would overwrite a
 * TCP header. */

/*
 * The TCP step of parse::parse, once the network layer left the upper protocol `proto` at `l4`
 * up to `end` (a fragment: `fragment`, at `frag_off`) to the service `svc`. Fills `f` for
 * SW_PARSED_TCP.
 */
SW_INLINE int sw_parse_tcp(SW_CTX *ctx, struct sw_frame *f, const struct sw_svc_value *svc,
			   __u8 proto, __u32 l4, __u32 end, int fragment, __u16 frag_off, __u8 *buf,
			   const int read)
{
	const __u8 *p;

	/* Not TCP (fragmented or not) is not a protected service's: untouched. */
	if (proto != SW_PROTO_TCP)
		return SW_PARSED(SW_PARSED_PASS, SW_PASS_NOT_TCP);
	/*
	 * No TCP header in a non-first fragment: nothing to judge, nothing it completes alone;
	 * unless it would overwrite the first fragment's TCP header (RFC 1858).
	 */
	if (frag_off >= SW_MIN_NONFIRST_OFFSET)
		return SW_PARSED(SW_PARSED_PASS, SW_PASS_FRAGMENT_NONFIRST);
	if (frag_off > 0)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_FRAGMENT);
	f->fragment = fragment;

	/* TcpSegment::new_checked over frame[l4..end]; a first fragment must hold the header. */
	if (end - l4 < SW_TCP_MIN_HLEN)
		return SW_PARSED(SW_PARSED_DROP, fragment ? SW_DROP_FRAGMENT : SW_DROP_TCP_MALFORMED);
	p = sw_hdr(ctx, l4, SW_TCP_MIN_HLEN, buf, read);
	if (!p)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	f->tcp_hlen = (p[12] >> 4) * 4;
	f->sport = sw_load_be16(p);
	f->dport = sw_load_be16(p + 2);
	f->seq = sw_load_be32(p + 4);
	f->ack = sw_load_be32(p + 8);
	f->flags = p[13];
	if (f->tcp_hlen < SW_TCP_MIN_HLEN)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TCP_MALFORMED);
	if (end - l4 < f->tcp_hlen)
		return SW_PARSED(SW_PARSED_DROP, fragment ? SW_DROP_FRAGMENT : SW_DROP_TCP_MALFORMED);
	f->l4 = l4;
	f->end = end;
	if (!sw_port_protected(svc, f->dport))
		return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
	return SW_PARSED(SW_PARSED_TCP, 0);
}

/*
 * parse::parse on a frame of `len` bytes, reading headers as `read` says. Fills `f` for
 * SW_PARSED_TCP.
 */
SW_INLINE int sw_parse_frame(SW_CTX *ctx, struct sw_frame *f, __u32 len, const int read)
{
	struct sw_svc_value *svc;
	__u32 off = SW_ETH_HLEN;
	__u16 ethertype, frag_off = 0;
	__u32 l4, end;
	SW_HDR_BUF(buf, SW_IPV6_HLEN);
	const __u8 *p;
	__u8 proto;
	int tags, fragment = 0;

	if (len < SW_ETH_HLEN)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	p = sw_hdr(ctx, 12, 2, buf, read);
	if (!p)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	ethertype = sw_load_be16(p);

	/* EthernetFrame::l3: walk 802.1Q / 802.1ad tags; a third tag is refused, not skipped. */
	for (tags = 0; tags <= SW_MAX_VLAN_TAGS; tags++) {
		if (ethertype != SW_ETHERTYPE_VLAN && ethertype != SW_ETHERTYPE_QINQ)
			break;
		if (tags == SW_MAX_VLAN_TAGS)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_VLAN_DEPTH);
		if (len < off + SW_VLAN_TAG_LEN)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		p = sw_hdr(ctx, off + 2, 2, buf, read);
		if (!p)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		ethertype = sw_load_be16(p);
		off += SW_VLAN_TAG_LEN;
	}
	f->l3 = off;

	if (ethertype == SW_ETHERTYPE_IPV4) {
		__u16 total, frag;
		__u32 hl;
		int r;

		/* Ipv4Packet::new_checked */
		if (len - off < SW_IPV4_MIN_HLEN)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		p = sw_hdr(ctx, off, SW_IPV4_MIN_HLEN, buf, read);
		if (!p)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		hl = (p[0] & 0x0f) * 4;
		total = sw_load_be16(p + 2);
		frag = sw_load_be16(p + 6);
		proto = p[9];
		f->family = SW_FAMILY_V4;
		f->ip = off;
		f->src[0] = sw_load_u32(p + 12);
		f->dst[0] = sw_load_u32(p + 16);
		/* A BIG TCP super-packet (tc only): its length does not fit the field, left 0. */
		if ((p[0] >> 4) == 4 && total == 0 && len - off > SW_MAX_IP_LEN)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_BIG_GRO);
		if ((p[0] >> 4) != 4 || hl < SW_IPV4_MIN_HLEN || total < hl)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
		if (len - off < hl || len - off < total)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		svc = sw_service_lookup(SW_FAMILY_V4, f->dst);
		/* Options only when there are any: behind LSRR/SSRR the destination is a next hop. */
		if (hl > SW_IPV4_MIN_HLEN) {
			r = sw_ipv4_source_routed(ctx, off, hl - SW_IPV4_MIN_HLEN);
			if (r > 0)
				return SW_PARSED(SW_PARSED_DROP, SW_DROP_SOURCE_ROUTE);
			if (r < 0 && svc)
				return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
			if (r < 0)
				return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
		}
		if (!svc)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
		fragment = (frag & (SW_IPV4_MF | SW_IPV4_FRAG_OFFSET)) != 0;
		frag_off = frag & SW_IPV4_FRAG_OFFSET;
		l4 = off + hl;
		end = off + total;
	} else if (ethertype == SW_ETHERTYPE_IPV6) {
		__u16 plen;

		/* Ipv6Packet::new_checked */
		if (len - off < SW_IPV6_HLEN)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		p = sw_hdr(ctx, off, SW_IPV6_HLEN, buf, read);
		if (!p)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		plen = sw_load_be16(p + 4);
		proto = p[6];
		f->family = SW_FAMILY_V6;
		f->ip = off;
		f->src[0] = sw_load_u32(p + 8);
		f->src[1] = sw_load_u32(p + 12);
		f->src[2] = sw_load_u32(p + 16);
		f->src[3] = sw_load_u32(p + 20);
		f->dst[0] = sw_load_u32(p + 24);
		f->dst[1] = sw_load_u32(p + 28);
		f->dst[2] = sw_load_u32(p + 32);
		f->dst[3] = sw_load_u32(p + 36);
		if ((p[0] >> 4) == 6 && plen == 0 && len - off > SW_IPV6_HLEN + SW_MAX_IP_LEN)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_BIG_GRO);
		if ((p[0] >> 4) != 6 || plen == 0)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
		if (len - off < SW_IPV6_HLEN + (__u32)plen)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		l4 = off + SW_IPV6_HLEN;
		end = off + SW_IPV6_HLEN + plen;
		/* Extension headers only when there are any; the walk comes before the lookup. */
		if (sw_is_ext_header(proto)) {
			struct sw_ext_walk w;
			int r;

			__builtin_memset(&w, 0, sizeof(w));
			__builtin_memcpy(w.dst, f->dst, 16);
			w.off = l4;
			w.end = end;
			w.nh = proto;
			r = sw_ipv6_walk(ctx, &w);
			/*
			 * A chain the walk cannot finish (too long, or running past the packet or the
			 * fragment) may hide a routing header the kernel would act on: not judged,
			 * dropped, whatever the destinations seen so far.
			 */
			if (r != SW_WALK_OK)
				return sw_walk_drop(r);
			__builtin_memcpy(f->dst, w.dst, 16);
			proto = w.nh;
			l4 = w.off;
			fragment = w.fragment;
			frag_off = w.frag_off;
			/*
			 * SRv6 encapsulation: Linux takes the outer headers off and delivers the inner
			 * packet, so that one is judged, by its own destination.
			 */
			if (w.srh && sw_nested(proto, frag_off)) {
				/* The program calls sw_parse_encap next (its own stack frame). */
				f->ip = l4;
				f->end = end;
				f->fragment = fragment;
				f->family = proto == SW_PROTO_IPV4 ? SW_FAMILY_V4 : SW_FAMILY_V6;
				return SW_PARSED(SW_PARSED_ENCAP, 0);
			}
		}
		svc = sw_service_lookup(SW_FAMILY_V6, f->dst);
		if (!svc)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
	} else {
		return SW_PARSED(SW_PARSED_PASS, SW_PASS_NOT_IP);
	}

	return sw_parse_tcp(ctx, f, svc, proto, l4, end, fragment, frag_off, buf, read);
}

#ifndef SW_XDP
/* A tc frame. A global function: verified once. (XDP inlines its one-buffer parse: sw_parse.) */
SW_GLOBAL int sw_parse_linear(SW_CTX *ctx, struct sw_frame *f)
{
	if (!f)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	return sw_parse_frame(ctx, f, ctx->len, SW_READ_DIRECT);
}
#else
/* An XDP multi-buffer frame of `len` bytes: headers copied out, wherever they are. */
SW_GLOBAL int sw_parse_multibuf(struct xdp_md *ctx, struct sw_frame *f, __u32 len)
{
	if (!f)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	return sw_parse_frame(ctx, f, len, SW_READ_COPY);
}
#endif

/*
 * parse::ipv4 / parse::ipv6 on the packet inside SRv6 encapsulation (Within::inner), then the TCP
 * step: the same checks as for an outer packet, in the same order, read by copying (only such
 * packets pay for it); another IP packet inside it is dropped whatever the destination. The
 * first parse left where it is (SW_PARSED_ENCAP): f->ip its IP header, f->end the end of the
 * outer payload, f->family its family, f->fragment whether the outer packet is a first fragment
 * (which may cut this one short). A global function of its own, called by the program after the
 * first parse: its stack is not added to the first parse's.
 */
SW_GLOBAL int sw_parse_encap(SW_CTX *ctx, struct sw_frame *f)
{
	struct sw_svc_value *svc;
	SW_HDR_BUF(h, SW_IPV6_HLEN);
	__u32 off, end, l4;
	__u16 frag_off;
	__u8 proto;
	int r, cut, fragment;

	if (!f)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	off = f->ip;
	end = f->end;
	cut = f->fragment;
	if (off > end)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	if (f->family == SW_FAMILY_V4) {
		__u32 hl, total;
		__u16 frag;
		int covered;

		if (end - off < SW_IPV4_MIN_HLEN || sw_load(ctx, off, h, SW_IPV4_MIN_HLEN))
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		hl = (h[0] & 0x0f) * 4;
		total = sw_be16(h + 2);
		frag = sw_be16(h + 6);
		if ((h[0] >> 4) != 4 || hl < SW_IPV4_MIN_HLEN || total < hl)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
		if (end - off < hl)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		if (end - off >= total)
			end = off + total;
		else if (!cut)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		__builtin_memset(f->src, 0, sizeof(f->src));
		__builtin_memset(f->dst, 0, sizeof(f->dst));
		__builtin_memcpy(&f->src[0], h + 12, 4);
		__builtin_memcpy(&f->dst[0], h + 16, 4);
		covered = sw_service_lookup(SW_FAMILY_V4, f->dst) != NULL;
		if (hl > SW_IPV4_MIN_HLEN) {
			r = sw_ipv4_source_routed(ctx, off, hl - SW_IPV4_MIN_HLEN);
			if (r > 0)
				return SW_PARSED(SW_PARSED_DROP, SW_DROP_SOURCE_ROUTE);
			if (r < 0 && covered)
				return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
			if (r < 0)
				return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
		}
		proto = h[9];
		frag_off = frag & SW_IPV4_FRAG_OFFSET;
		fragment = (frag & (SW_IPV4_MF | SW_IPV4_FRAG_OFFSET)) != 0;
		if (sw_nested(proto, frag_off))
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_ENCAP_NESTED);
		if (!covered)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
		l4 = off + hl;
	} else {
		struct sw_ext_walk w;
		__u32 plen;

		if (end - off < SW_IPV6_HLEN || sw_load(ctx, off, h, SW_IPV6_HLEN))
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		plen = sw_be16(h + 4);
		if ((h[0] >> 4) != 6 || plen == 0)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
		if (end - off >= SW_IPV6_HLEN + plen)
			end = off + SW_IPV6_HLEN + plen;
		else if (!cut)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		__builtin_memcpy(f->src, h + 8, 16);
		__builtin_memcpy(f->dst, h + 24, 16);
		proto = h[6];
		l4 = off + SW_IPV6_HLEN;
		frag_off = 0;
		fragment = 0;
		if (sw_is_ext_header(proto)) {
			__builtin_memset(&w, 0, sizeof(w));
			__builtin_memcpy(w.dst, f->dst, 16);
			w.off = l4;
			w.end = end;
			w.nh = proto;
			r = sw_ipv6_walk(ctx, &w);
			if (r != SW_WALK_OK)
				return sw_walk_drop(r);
			__builtin_memcpy(f->dst, w.dst, 16);
			proto = w.nh;
			l4 = w.off;
			fragment = w.fragment;
			frag_off = w.frag_off;
		}
		if (sw_nested(proto, frag_off))
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_ENCAP_NESTED);
	}
	svc = sw_service_lookup(f->family, f->dst);
	if (!svc)
		return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
	/* In an outer fragment the inner segment is in a fragment too. */
	return sw_parse_tcp(ctx, f, svc, proto, l4, end, fragment || cut, frag_off, h,
			    SW_READ_COPY);
}

/*
 * parse::parse. Fills `f` (zeroed by the caller) for SW_PARSED_TCP.
 *
 * XDP: the first buffer is parsed alone first. Only a frame it does not hold whole can have more
 * to say: a multi-buffer frame looks truncated there (or malformed, if it is a super-packet longer
 * than the IP length field can say). Any other outcome was decided from bytes inside the IP
 * packet, which is then all in the first buffer. So the frame's full length is asked for
 * (bpf_xdp_get_buff_len) only then, and the usual frame pays nothing for multi-buffer support.
 *
 * SRv6 encapsulation: the first parse says where the inner packet is, sw_parse_encap judges it.
 */
SW_INLINE int sw_parse(SW_CTX *ctx, struct sw_frame *f)
{
#ifdef SW_XDP
	/*
	 * The one-buffer parse inlined on XDP: every packet pays for a call's return otherwise, and
	 * a return is a mispredicted safe RET on CPUs with the SRSO mitigation.
	 */
	int r = sw_parse_frame(ctx, f, sw_linear_len(ctx), SW_READ_DIRECT);
	__u32 len;

	if (r == SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED) ||
	    r == SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED)) {
		len = bpf_xdp_get_buff_len(ctx);
		if (len != sw_linear_len(ctx)) {
			__builtin_memset(f, 0, sizeof(*f));
			r = sw_parse_multibuf(ctx, f, len);
		}
	}
#else
	int r = sw_parse_linear(ctx, f);
#endif
	if (r == SW_PARSED(SW_PARSED_ENCAP, 0))
		r = sw_parse_encap(ctx, f);
	return r;
}

/*
 * synwall_wire::tcp::parse_options over the options of the segment parsed as `f`, into `o` (zeroed
 * by the caller: use sw_tcp_options). Returns 0, or
 * -1 for a malformed options area (length 0 or 1, or an option running past the area). A known
 * option with another length is ignored, as Linux does; for duplicates the last one wins.
 */
SW_GLOBAL int sw_tcp_options_into(SW_CTX *ctx, const struct sw_frame *f, struct sw_tcp_opts *o)
{
	/* 64 bytes so that `i & 63` always lands inside; only the first n are options. */
	__u8 buf[64];
	__u32 n, i = 0;
	int iter;

	if (!f || !o)
		return -1;
	n = f->tcp_hlen - SW_TCP_MIN_HLEN;
	if (n == 0)
		return 0;
	if (n > SW_TCP_MAX_OPTS)
		return -1;
	__builtin_memset(buf, 0, sizeof(buf));
#ifdef SW_XDP
	if (bpf_xdp_load_bytes(ctx, (f->l4 + SW_TCP_MIN_HLEN) & SW_OFF_MASK, buf, n))
		return -1;
#else
	if (bpf_skb_load_bytes(ctx, (f->l4 + SW_TCP_MIN_HLEN) & SW_OFF_MASK, buf, n))
		return -1;
#endif
	/*
	 * Fast paths for the layouts Linux sends, decoded exactly as the walk below would: a SYN's
	 * MSS, SACK-Permitted, Timestamps, NOP, Window scale, and an ACK's NOP, NOP, Timestamps.
	 */
	if (n == 20 && buf[0] == SW_TCPOPT_MSS && buf[1] == 4 && buf[4] == SW_TCPOPT_SACK_PERMITTED &&
	    buf[5] == 2 && buf[6] == SW_TCPOPT_TIMESTAMPS && buf[7] == 10 && buf[16] == SW_TCPOPT_NOP &&
	    buf[17] == SW_TCPOPT_WSCALE && buf[18] == 3) {
		o->has_mss = 1;
		o->mss = (__u16)buf[2] << 8 | buf[3];
		o->sack_permitted = 1;
		o->has_timestamps = 1;
		o->tsval = (__u32)buf[8] << 24 | (__u32)buf[9] << 16 | (__u32)buf[10] << 8 | buf[11];
		o->tsecr = (__u32)buf[12] << 24 | (__u32)buf[13] << 16 | (__u32)buf[14] << 8 | buf[15];
		o->has_wscale = 1;
		o->wscale = buf[19];
		return 0;
	}
	if (n == 12 && buf[0] == SW_TCPOPT_NOP && buf[1] == SW_TCPOPT_NOP &&
	    buf[2] == SW_TCPOPT_TIMESTAMPS && buf[3] == 10) {
		o->has_timestamps = 1;
		o->tsval = (__u32)buf[4] << 24 | (__u32)buf[5] << 16 | (__u32)buf[6] << 8 | buf[7];
		o->tsecr = (__u32)buf[8] << 24 | (__u32)buf[9] << 16 | (__u32)buf[10] << 8 | buf[11];
		return 0;
	}
	for (iter = 0; iter < SW_TCP_MAX_OPTS; iter++) {
		__u8 kind, olen;

		if (i >= n)
			break;
		kind = buf[i & 63];
		if (kind == SW_TCPOPT_EOL)
			break;
		/*
		 * i never exceeds n <= 40, so "& 63" changes nothing; it keeps i's range small, which
		 * lets the verifier see the loop's states repeat.
		 */
		if (kind == SW_TCPOPT_NOP) {
			i = (i + 1) & 63;
			continue;
		}
		if (i + 1 >= n)
			return -1;
		olen = buf[(i + 1) & 63];
		if (olen < 2 || i + olen > n)
			return -1;
		if (kind == SW_TCPOPT_MSS && olen == 4) {
			o->has_mss = 1;
			o->mss = (__u16)buf[(i + 2) & 63] << 8 | buf[(i + 3) & 63];
		} else if (kind == SW_TCPOPT_WSCALE && olen == 3) {
			o->has_wscale = 1;
			o->wscale = buf[(i + 2) & 63];
		} else if (kind == SW_TCPOPT_SACK_PERMITTED && olen == 2) {
			o->sack_permitted = 1;
		} else if (kind == SW_TCPOPT_TIMESTAMPS && olen == 10) {
			o->has_timestamps = 1;
			o->tsval = (__u32)buf[(i + 2) & 63] << 24 | (__u32)buf[(i + 3) & 63] << 16 |
				   (__u32)buf[(i + 4) & 63] << 8 | buf[(i + 5) & 63];
			o->tsecr = (__u32)buf[(i + 6) & 63] << 24 | (__u32)buf[(i + 7) & 63] << 16 |
				   (__u32)buf[(i + 8) & 63] << 8 | buf[(i + 9) & 63];
		}
		i = (i + olen) & 63;
	}
	return 0;
}

#ifdef SW_XDP
/* Four option bytes as one little-endian word loads them. */
#define SW_OPT_WORD(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)

/*
 * The option layouts Linux sends, read in place when they are in the first buffer (no copy, no
 * call): a SYN's MSS, SACK-Permitted, Timestamps, NOP, Window scale; the same without timestamps
 * (MSS, NOP, NOP, SACK-Permitted, NOP, Window scale); an ACK's NOP, NOP, Timestamps. Decoded
 * exactly as the walk of sw_tcp_options_into would. Returns 1 and fills `o` (zeroed) if the
 * options are one of them, else 0 and leaves `o` alone.
 */
SW_INLINE int sw_tcp_options_in_place(struct xdp_md *ctx, const struct sw_frame *f,
				      struct sw_tcp_opts *o)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	const __u8 *p = data + ((f->l4 + SW_TCP_MIN_HLEN) & SW_OFF_MASK);
	__u32 w0, w1, w2;

	if (f->tcp_hlen == SW_TCP_MIN_HLEN + 20) {
		if ((void *)(p + 20) > end)
			return 0;
		w0 = *(const __u32 *)p;
		w1 = *(const __u32 *)(p + 4);
		w2 = *(const __u32 *)(p + 16);
		if ((w0 & 0xffff) != SW_OPT_WORD(SW_TCPOPT_MSS, 4, 0, 0) ||
		    w1 != SW_OPT_WORD(SW_TCPOPT_SACK_PERMITTED, 2, SW_TCPOPT_TIMESTAMPS, 10) ||
		    (w2 & 0xffffff) != SW_OPT_WORD(SW_TCPOPT_NOP, SW_TCPOPT_WSCALE, 3, 0))
			return 0;
		o->has_mss = 1;
		o->mss = bpf_ntohs((__u16)(w0 >> 16));
		o->sack_permitted = 1;
		o->has_timestamps = 1;
		o->tsval = bpf_ntohl(*(const __u32 *)(p + 8));
		o->tsecr = bpf_ntohl(*(const __u32 *)(p + 12));
		o->has_wscale = 1;
		o->wscale = w2 >> 24;
		return 1;
	}
	if (f->tcp_hlen == SW_TCP_MIN_HLEN + 12) {
		if ((void *)(p + 12) > end)
			return 0;
		w0 = *(const __u32 *)p;
		w1 = *(const __u32 *)(p + 4);
		w2 = *(const __u32 *)(p + 8);
		if (w0 == SW_OPT_WORD(SW_TCPOPT_NOP, SW_TCPOPT_NOP, SW_TCPOPT_TIMESTAMPS, 10)) {
			o->has_timestamps = 1;
			o->tsval = bpf_ntohl(w1);
			o->tsecr = bpf_ntohl(w2);
			return 1;
		}
		if ((w0 & 0xffff) != SW_OPT_WORD(SW_TCPOPT_MSS, 4, 0, 0) ||
		    w1 != SW_OPT_WORD(SW_TCPOPT_NOP, SW_TCPOPT_NOP, SW_TCPOPT_SACK_PERMITTED, 2) ||
		    (w2 & 0xffffff) != SW_OPT_WORD(SW_TCPOPT_NOP, SW_TCPOPT_WSCALE, 3, 0))
			return 0;
		o->has_mss = 1;
		o->mss = bpf_ntohs((__u16)(w0 >> 16));
		o->sack_permitted = 1;
		o->has_wscale = 1;
		o->wscale = w2 >> 24;
		return 1;
	}
	return 0;
}
#endif

/*
 * Read the options of `f` into a zeroed `o` (the one entry point). Zeroed here, on the caller's
 * stack: a global function may not be handed uninitialised stack without CAP_PERFMON, and the
 * daemon should not need it.
 */
SW_INLINE int sw_tcp_options(SW_CTX *ctx, const struct sw_frame *f, struct sw_tcp_opts *o)
{
	__builtin_memset(o, 0, sizeof(*o));
#ifdef SW_XDP
	if (sw_tcp_options_in_place(ctx, f, o))
		return 0;
#endif
	return sw_tcp_options_into(ctx, f, o);
}

#endif /* SW_PARSE_H */
