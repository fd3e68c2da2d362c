/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * synwall-v1, the cookie of SPEC sections 3-6 (crates/synwall-cookie/src/synwall_v1.rs): same
 * names, same steps.
 *
 *   ISN   = S | WWWW | MMM | H (24 low bits of the MAC)
 *   TSval = clock & 0xFFFFFF00 | E << 7 | 7 more MAC bits      (only when the SYN had timestamps)
 *   MAC   = SipHash-2-4(K_e, client addr . service addr . client port . service port . ISN . opt . ext)
 */
#ifndef SW_COOKIE_H
#define SW_COOKIE_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "siphash.h"

/* SW_WSCALE_NONE, SW_WSCALE_MAX, SW_MSG_LEN_V4, SW_MSG_LEN_V6: constants.def. */

/* The two option bytes that enter the MAC (OptionBits): opt = S<<7 | W<<3 | M, ext = E<<1 | T. */
struct sw_opt_bits {
	__u8 opt;
	__u8 ext;
};

SW_INLINE int sw_bits_sack(struct sw_opt_bits b)
{
	return b.opt >> 7;
}

SW_INLINE __u8 sw_bits_wscale_field(struct sw_opt_bits b)
{
	return (b.opt >> 3) & 0x0f;
}

SW_INLINE __u32 sw_bits_mss_index(struct sw_opt_bits b)
{
	return b.opt & 0x07;
}

SW_INLINE int sw_bits_timestamps(struct sw_opt_bits b)
{
	return b.ext & 1;
}

SW_INLINE int sw_bits_ecn(struct sw_opt_bits b)
{
	return (b.ext >> 1) & 1;
}

SW_INLINE const __u16 *sw_mss_table(const struct sw_config *cfg, __u8 family)
{
	return family == SW_FAMILY_V4 ? cfg->mss_table_v4 : cfg->mss_table_v6;
}

/* MssTable::index_at_or_below: the largest i with table[i] <= mss; 0 without an MSS. */
SW_INLINE __u8 sw_mss_index_at_or_below(const __u16 *table, const struct sw_tcp_opts *o)
{
	int i;

	if (!o->has_mss)
		return 0;
#pragma unroll
	for (i = 7; i > 0; i--)
		if (table[i] <= o->mss)
			return i;
	return 0;
}

/* encode_options: a SYN's options into opt and ext (SPEC 3 and 4). */
SW_INLINE struct sw_opt_bits sw_encode_options(const struct sw_config *cfg, __u8 family,
					       const struct sw_tcp_opts *o, __u8 tcp_flags)
{
	struct sw_opt_bits b;
	__u8 s = o->sack_permitted && cfg->sack;
	__u8 w = SW_WSCALE_NONE;
	__u8 m = sw_mss_index_at_or_below(sw_mss_table(cfg, family), o);
	__u8 t = o->has_timestamps && cfg->timestamps;
	__u8 e = t && (tcp_flags & (SW_TCP_ECE | SW_TCP_CWR)) == (SW_TCP_ECE | SW_TCP_CWR) &&
		 cfg->ecn;

	if (o->has_wscale && cfg->wscale_on)
		w = o->wscale < SW_WSCALE_MAX ? o->wscale : SW_WSCALE_MAX;
	b.opt = s << 7 | w << 3 | m;
	b.ext = e << 1 | t;
	return b;
}

/*
 * mac_words + mac: the message as SipHash words loaded straight from the flow's fields (addresses
 * as they sit in the packet, ports and ISN big-endian), then SipHash-2-4.
 */
SW_INLINE __u64 sw_mac_inline(const struct sw_sipkey *key, const struct sw_frame *f,
			      __u32 client_isn, struct sw_opt_bits b)
{
	__u64 ports_isn = (__u64)bpf_htons(f->sport) | (__u64)bpf_htons(f->dport) << 16 |
			  (__u64)bpf_htonl(client_isn) << 32;
	__u64 tail = (__u64)b.opt | (__u64)b.ext << 8;

	if (f->family == SW_FAMILY_V4) {
		__u64 blocks[2] = {
			(__u64)f->src[0] | (__u64)f->dst[0] << 32,
			ports_isn,
		};

		return sw_siphash_words(key, blocks, 2, tail | (__u64)SW_MSG_LEN_V4 << 56);
	} else {
		__u64 blocks[5] = {
			(__u64)f->src[0] | (__u64)f->src[1] << 32,
			(__u64)f->src[2] | (__u64)f->src[3] << 32,
			(__u64)f->dst[0] | (__u64)f->dst[1] << 32,
			(__u64)f->dst[2] | (__u64)f->dst[3] << 32,
			ports_isn,
		};

		return sw_siphash_words(key, blocks, 5, tail | (__u64)SW_MSG_LEN_V6 << 56);
	}
}

/*
 * The MAC as a global function: verified once, instead of once per path through its callers
 * (it is straight-line code; the call costs a few instructions).
 */
SW_GLOBAL __u64 sw_mac_words(const struct sw_sipkey *key, const struct sw_frame *f,
			     __u32 client_isn, __u32 opt_ext)
{
	struct sw_opt_bits b = { .opt = opt_ext & 0xff, .ext = (opt_ext >> 8) & 0xff };

	if (!key || !f)
		return 0;
	return sw_mac_inline(key, f, client_isn, b);
}

SW_INLINE __u64 sw_mac(const struct sw_sipkey *key, const struct sw_frame *f, __u32 client_isn,
		       struct sw_opt_bits b)
{
	return sw_mac_words(key, f, client_isn, (__u32)b.opt | (__u32)b.ext << 8);
}

/* cookie = opt<<24 | (MAC & 0xFFFFFF) */
SW_INLINE __u32 sw_cookie_of(struct sw_opt_bits b, __u64 mac)
{
	return (__u32)b.opt << 24 | ((__u32)mac & 0x00ffffff);
}

/* TSval = (clock & 0xFFFFFF00) | E<<7 | ((MAC >> 24) & 0x7F) */
SW_INLINE __u32 sw_tsval_of(__u64 clock_ms, struct sw_opt_bits b, __u64 mac)
{
	return ((__u32)clock_ms & 0xffffff00) | (__u32)sw_bits_ecn(b) << 7 |
	       ((__u32)(mac >> 24) & 0x7f);
}

/* ack_option_bits: opt from the ACK's cookie, ext from its Timestamps option. */
SW_INLINE struct sw_opt_bits sw_ack_option_bits(const struct sw_frame *f,
						const struct sw_tcp_opts *o)
{
	__u32 cookie = f->ack - 1;
	struct sw_opt_bits b;

	b.opt = cookie >> 24;
	b.ext = o->has_timestamps ? (((o->tsecr >> 7) & 1) << 1) | 1 : 0;
	return b;
}

/* mac_matches: 24 MAC bits in the cookie, 7 more in TSecr when the ACK has timestamps. */
SW_INLINE int sw_mac_matches(__u64 mac, const struct sw_frame *f, const struct sw_tcp_opts *o)
{
	__u32 cookie = f->ack - 1;

	if (((__u32)mac ^ cookie) & 0x00ffffff)
		return 0;
	if (o->has_timestamps && ((__u32)(mac >> 24) & 0x7f) != (o->tsecr & 0x7f))
		return 0;
	return 1;
}

/* EpochClock::unix_ns: UNIX time at the TAI reading `now`. */
SW_INLINE __u64 sw_unix_ns(const struct sw_clock *c, __u64 now)
{
	return now - (__u64)c->tai_offset_ns;
}

/*
 * Salts::generation: the salt a generator (edge, single node) issues cookies with at `now`
 * (bpf_ktime_get_tai_ns), e(now - L); NULL when the ring has none (stale).
 */
SW_INLINE struct sw_salt_entry *sw_generation_salt(const struct sw_clock *c, __u64 now)
{
	if (!c->epoch_ns)
		return NULL;
	return sw_salt_of((sw_unix_ns(c, now) - c->lag_ns) / c->epoch_ns);
}

/* What sw_validate_ring makes of an ACK (engine::salts::Validation). */
#define SW_COOKIE_INVALID 0
#define SW_COOKIE_VALID 1
#define SW_COOKIE_STALE 2

/* Does the cookie's MAC match under `key`? */
SW_INLINE int sw_cookie_under(const struct sw_sipkey *key, const struct sw_frame *f,
			      const struct sw_tcp_opts *o, struct sw_opt_bits b)
{
	return sw_mac_matches(sw_mac(key, f, f->seq - 1, b), f, o);
}

/*
 * Salts::validate (SPEC 6 over the ring): v = e(now); the current salts of slots v, v - 1 and,
 * in the last L of v, v + 1; then the accepted salts of the same slots. The ACK's option bits go
 * to `bits`. No match: SW_COOKIE_STALE when slot v is missing (nothing can be judged), else
 * SW_COOKIE_INVALID.
 */
SW_INLINE int sw_validate_ring(const struct sw_clock *c, __u64 now, const struct sw_frame *f,
			       const struct sw_tcp_opts *o, struct sw_opt_bits *bits)
{
	struct sw_opt_bits b = sw_ack_option_bits(f, o);
	struct sw_salt_entry *live, *prev, *next = NULL;
	__u64 t, v;

	*bits = b;
	if (!c->epoch_ns)
		return SW_COOKIE_STALE;
	t = sw_unix_ns(c, now);
	v = t / c->epoch_ns;
	live = sw_salt_of(v);
	prev = sw_salt_of(v - 1);
	if (t - v * c->epoch_ns >= c->epoch_ns - c->lag_ns)
		next = sw_salt_of(v + 1);
	if (live && sw_cookie_under(&live->current, f, o, b))
		return SW_COOKIE_VALID;
	if (prev && sw_cookie_under(&prev->current, f, o, b))
		return SW_COOKIE_VALID;
	if (next && sw_cookie_under(&next->current, f, o, b))
		return SW_COOKIE_VALID;
	if (live && live->has_accepted && sw_cookie_under(&live->accepted, f, o, b))
		return SW_COOKIE_VALID;
	if (prev && prev->has_accepted && sw_cookie_under(&prev->accepted, f, o, b))
		return SW_COOKIE_VALID;
	if (next && next->has_accepted && sw_cookie_under(&next->accepted, f, o, b))
		return SW_COOKIE_VALID;
	return live ? SW_COOKIE_INVALID : SW_COOKIE_STALE;
}

#endif /* SW_COOKIE_H */
