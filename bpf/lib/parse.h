/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Step 1 of every packet (crates/synwall-engine/src/parse.rs): parse the frame down to TCP, or
 * say which counter ends its journey. Same order of checks, same counter for every outcome:
 *
 *   Ethernet + up to 2 VLAN tags -> IPv4 (options, fragments) | IPv6 (<= 4 extension headers)
 *   -> covered by a protected prefix? -> TCP header -> protected (address, port)?
 *
 * Lengths are checked against the frame length (the XDP buffer, or skb->len on tc); headers are
 * read through sw_hdr(), which on tc pulls non-linear data into the head when needed. Parsed
 * fields are copied out at once, so no packet pointer outlives the next read.
 */
#ifndef SW_PARSE_H
#define SW_PARSE_H

#include "common.h"
#include "counters.h"
#include "maps.h"

/* A frame that parsed down to a TCP segment to a protected service (parse::TcpFrame). */
struct sw_frame {
	__u32 l3;       /* offset of the network header */
	__u32 l4;       /* offset of the TCP header */
	__u32 end;      /* end of the TCP segment (end of the IP payload; link padding excluded) */
	__u32 src[4];   /* source address as loaded from the packet; IPv4 uses src[0] */
	__u32 dst[4];   /* destination address likewise */
	__u32 seq;      /* host order */
	__u32 ack;      /* host order */
	__u16 sport;    /* host order */
	__u16 dport;    /* host order */
	__u16 tcp_hlen; /* TCP header length in bytes */
	__u8 family;    /* SW_FAMILY_V4 / SW_FAMILY_V6 */
	__u8 flags;     /* TCP flags byte */
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
#define SW_PARSED(outcome, counter) (((outcome) << 8) | (counter))

SW_INLINE __u32 sw_frame_len(SW_CTX *ctx)
{
#ifdef SW_XDP
	return ctx->data_end - ctx->data;
#else
	return ctx->len;
#endif
}

/*
 * A pointer to the `n` (a constant) bytes at `off`, or NULL. The caller has checked that the frame
 * holds them; on tc they may still sit outside the linear head, and then they are pulled in.
 */
SW_INLINE __u8 *sw_hdr(SW_CTX *ctx, __u32 off, const __u32 n)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

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
 * parse::parse. Fills `f` for SW_PARSED_TCP. A global function: the verifier checks it once, and
 * its callers see one result instead of one per path through the header walk.
 */
SW_GLOBAL int sw_parse(SW_CTX *ctx, struct sw_frame *f)
{
	__u32 len = sw_frame_len(ctx);
	struct sw_svc_value *svc;
	__u32 off = SW_ETH_HLEN;
	__u16 ethertype;
	__u32 l4, end;
	__u8 *p;
	int tags;

	if (!f)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	if (len < SW_ETH_HLEN)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	p = sw_hdr(ctx, 12, 2);
	if (!p)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	ethertype = sw_be16(p);

	/* EthernetFrame::l3: walk 802.1Q / 802.1ad tags; a third tag is refused, not skipped. */
	for (tags = 0; tags <= SW_MAX_VLAN_TAGS; tags++) {
		if (ethertype != SW_ETHERTYPE_VLAN && ethertype != SW_ETHERTYPE_QINQ)
			break;
		if (tags == SW_MAX_VLAN_TAGS)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_VLAN_DEPTH);
		if (len < off + SW_VLAN_TAG_LEN)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		p = sw_hdr(ctx, off + 2, 2);
		if (!p)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		ethertype = sw_be16(p);
		off += SW_VLAN_TAG_LEN;
	}
	f->l3 = off;

	if (ethertype == SW_ETHERTYPE_IPV4) {
		__u16 total, frag;
		__u32 hl;
		__u8 proto;

		/* Ipv4Packet::new_checked */
		if (len - off < SW_IPV4_MIN_HLEN)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		p = sw_hdr(ctx, off, SW_IPV4_MIN_HLEN);
		if (!p)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		hl = (p[0] & 0x0f) * 4;
		total = sw_be16(p + 2);
		frag = sw_be16(p + 6);
		proto = p[9];
		f->family = SW_FAMILY_V4;
		__builtin_memcpy(&f->src[0], p + 12, 4);
		__builtin_memcpy(&f->dst[0], p + 16, 4);
		/* A BIG TCP super-packet (tc only): its length does not fit the field, left 0. */
		if ((p[0] >> 4) == 4 && total == 0 && len - off > SW_MAX_IP_LEN)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_BIG_GRO);
		if ((p[0] >> 4) != 4 || hl < SW_IPV4_MIN_HLEN || total < hl)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
		if (len - off < hl || len - off < total)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		svc = sw_service_lookup(SW_FAMILY_V4, f->dst);
		if (!svc)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
		/* Not TCP (fragmented or not) is not a protected service's: untouched. */
		if (proto != SW_PROTO_TCP)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_NOT_TCP);
		if (frag & (SW_IPV4_MF | SW_IPV4_FRAG_OFFSET))
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_FRAGMENT);
		l4 = off + hl;
		end = off + total;
	} else if (ethertype == SW_ETHERTYPE_IPV6) {
		__u32 iend, o = SW_IPV6_HLEN, hlen;
		int fragment = 0, i, found = 0;
		__u16 plen;
		__u8 nh;

		/* Ipv6Packet::new_checked */
		if (len - off < SW_IPV6_HLEN)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		p = sw_hdr(ctx, off, SW_IPV6_HLEN);
		if (!p)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		plen = sw_be16(p + 4);
		nh = p[6];
		f->family = SW_FAMILY_V6;
		__builtin_memcpy(f->src, p + 8, 16);
		__builtin_memcpy(f->dst, p + 24, 16);
		if ((p[0] >> 4) == 6 && plen == 0 && len - off > SW_IPV6_HLEN + SW_MAX_IP_LEN)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_BIG_GRO);
		if ((p[0] >> 4) != 6 || plen == 0)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
		if (len - off < SW_IPV6_HLEN + (__u32)plen)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
		svc = sw_service_lookup(SW_FAMILY_V6, f->dst);
		if (!svc)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);

		/*
		 * Ipv6Packet::upper_layer: at most SW_MAX_EXT_HEADERS extension headers; one more, or
		 * one running past the payload, is refused. A Fragment header is reported.
		 */
		iend = SW_IPV6_HLEN + plen;
		for (i = 0; i <= SW_MAX_EXT_HEADERS; i++) {
			if (nh == SW_NH_HOP_BY_HOP || nh == SW_NH_ROUTING || nh == SW_NH_DEST_OPTS ||
			    nh == SW_NH_AUTH) {
				if (o + 2 > iend)
					return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
				p = sw_hdr(ctx, off + o, 2);
				if (!p)
					return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
				if (nh == SW_NH_AUTH)
					hlen = ((__u32)p[1] + 2) * 4;
				else
					hlen = ((__u32)p[1] + 1) * 8;
				nh = p[0];
			} else if (nh == SW_NH_FRAGMENT) {
				/*
				 * What follows a Fragment header is fragment data, not headers: stop
				 * here; its next header names the fragmented protocol.
				 */
				fragment = 1;
				hlen = 8;
				if (o + hlen > iend)
					return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
				p = sw_hdr(ctx, off + o, 2);
				if (!p)
					return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
				nh = p[0];
				o += hlen;
				found = 1;
				break;
			} else {
				found = 1;
				break;
			}
			if (o + hlen > iend)
				return SW_PARSED(SW_PARSED_DROP, SW_DROP_IP_MALFORMED);
			o += hlen;
		}
		if (!found)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_IPV6_EXT_DEPTH);
		if (nh != SW_PROTO_TCP)
			return SW_PARSED(SW_PARSED_PASS, SW_PASS_NOT_TCP);
		if (fragment)
			return SW_PARSED(SW_PARSED_DROP, SW_DROP_FRAGMENT);
		l4 = off + o;
		end = off + iend;
	} else {
		return SW_PARSED(SW_PARSED_PASS, SW_PASS_NOT_IP);
	}

	/* TcpSegment::new_checked over frame[l4..end] */
	if (end - l4 < SW_TCP_MIN_HLEN)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TCP_MALFORMED);
	p = sw_hdr(ctx, l4, SW_TCP_MIN_HLEN);
	if (!p)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TRUNCATED);
	f->tcp_hlen = (p[12] >> 4) * 4;
	if (f->tcp_hlen < SW_TCP_MIN_HLEN || end - l4 < f->tcp_hlen)
		return SW_PARSED(SW_PARSED_DROP, SW_DROP_TCP_MALFORMED);
	f->sport = sw_be16(p);
	f->dport = sw_be16(p + 2);
	f->seq = sw_be32(p + 4);
	f->ack = sw_be32(p + 8);
	f->flags = p[13];
	f->l4 = l4;
	f->end = end;
	if (!sw_port_protected(svc, f->dport))
		return SW_PARSED(SW_PARSED_PASS, SW_PASS_UNPROTECTED);
	return SW_PARSED(SW_PARSED_TCP, 0);
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

/*
 * Read the options of `f` into a zeroed `o` (the one entry point). Zeroed here, on the caller's
 * stack: a global function may not be handed uninitialised stack without CAP_PERFMON, and the
 * daemon should not need it.
 */
SW_INLINE int sw_tcp_options(SW_CTX *ctx, const struct sw_frame *f, struct sw_tcp_opts *o)
{
	__builtin_memset(o, 0, sizeof(*o));
	return sw_tcp_options_into(ctx, f, o);
}

#endif /* SW_PARSE_H */
