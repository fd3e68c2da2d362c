/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Includes, types and constants shared by every synwall BPF program. Names follow the Rust
 * reference engine (crates/synwall-wire, crates/synwall-engine) so a reader can hold both side
 * by side.
 *
 * Each program defines exactly one of SW_XDP (edge) or SW_TC (backend) before including anything
 * from lib/; SW_CTX is then its context struct (xdp_md or __sk_buff).
 */
#ifndef SW_COMMON_H
#define SW_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* The MAC words are loaded straight from the packet as little-endian words (SPEC 5). */
#error "synwall BPF programs assume a little-endian target (bpfel)"
#endif

#if defined(SW_XDP) == defined(SW_TC)
#error "define exactly one of SW_XDP and SW_TC before including lib/common.h"
#endif

#ifdef SW_XDP
#define SW_CTX struct xdp_md
#else
#define SW_CTX struct __sk_buff
#endif

#define SW_INLINE static __always_inline
/* Verified once on its own (a global BPF function): keeps the verifier's work linear. */
#define SW_GLOBAL __attribute__((noinline))

/*
 * The constants the Rust crates hold too (header lengths, EtherTypes, flags, option kinds, bounds,
 * errno values, map sizes): defined once in constants.def, here as SW_<NAME> enum constants.
 */
#define SW_CONST(name, value, rust, type, doc) SW_##name = value,
enum sw_constants {
#include "constants.def"
};
#undef SW_CONST

/* Ethernet + 2 VLAN tags: the most a frame has before its IP header. */
#define SW_MAX_L2_LEN (SW_ETH_HLEN + SW_MAX_VLAN_TAGS * SW_VLAN_TAG_LEN)

/*
 * The end of the deepest header the parse reaches (synwall_wire::MAX_HEADER_END): Ethernet and
 * tags, two IPv6 headers (an outer one carrying SRv6 encapsulation, and the packet inside it)
 * each with the longest chain walked, the longest TCP header.
 */
#define SW_MAX_HEADER_END                                                                 \
	(SW_MAX_L2_LEN + 2 * (SW_IPV6_HLEN + SW_MAX_EXT_HEADERS * SW_MAX_EXT_HEADER_LEN) + \
	 SW_TCP_MIN_HLEN + SW_TCP_MAX_OPTS)

/*
 * Every header offset in a frame is below this (synwall_wire::BPF_OFFSET_LIMIT - 1), so masking
 * an offset with it changes nothing and tells the verifier the offset is bounded. If a bound above
 * grows (more extension headers walked), the mask must grow with it, or a header would be read at
 * a wrapped offset while lengths use the real one: the build stops here instead.
 */
#define SW_OFF_MASK 0x7fff
_Static_assert(SW_MAX_HEADER_END <= SW_OFF_MASK + 1,
	       "SW_OFF_MASK must cover the deepest header offset (SW_MAX_EXT_HEADERS too large?)");

/* tc return codes (linux/pkt_cls.h). */
#define SW_TC_ACT_OK 0
#define SW_TC_ACT_SHOT 2

#endif /* SW_COMMON_H */
