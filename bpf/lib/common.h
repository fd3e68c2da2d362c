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

/* Ethernet (synwall_wire::ethernet). */
#define SW_ETH_HLEN 14
#define SW_VLAN_TAG_LEN 4
#define SW_MAX_VLAN_TAGS 2
#define SW_ETHERTYPE_IPV4 0x0800
#define SW_ETHERTYPE_IPV6 0x86dd
#define SW_ETHERTYPE_VLAN 0x8100
#define SW_ETHERTYPE_QINQ 0x88a8

/* IPv4 (synwall_wire::ipv4). */
#define SW_IPV4_MIN_HLEN 20
#define SW_PROTO_TCP 6
#define SW_IPV4_DF 0x4000
#define SW_IPV4_MF 0x2000
#define SW_IPV4_FRAG_OFFSET 0x1fff
#define SW_IPV4_MAX_OPTS 40
/* An encapsulated IPv4 packet (IP in IP): ipv4::PROTO_IPV4. */
#define SW_PROTO_IPV4 4
#define SW_IPOPT_EOL 0
#define SW_IPOPT_NOP 1
#define SW_IPOPT_LSRR 131
#define SW_IPOPT_SSRR 137

/* IPv6 (synwall_wire::ipv6). */
#define SW_IPV6_HLEN 40
/* The largest value of the IPv4 total length and IPv6 payload length fields. */
#define SW_MAX_IP_LEN 0xffff
/* ipv6::MAX_EXT_HEADERS: RFC 8200's longest recommended chain without ESP. */
#define SW_MAX_EXT_HEADERS 6
#define SW_NH_HOP_BY_HOP 0
#define SW_NH_ROUTING 43
#define SW_NH_FRAGMENT 44
#define SW_NH_AUTH 51
#define SW_NH_DEST_OPTS 60
/* An encapsulated IPv6 packet: ipv6::NH_IPV6. */
#define SW_NH_IPV6 41
/* The longest extension header (ipv6::MAX_EXT_HEADER_LEN): 256 units of 8 bytes. */
#define SW_MAX_EXT_HEADER_LEN 2048
#define SW_ROUTING_TYPE_0 0
#define SW_ROUTING_TYPE_2 2
#define SW_ROUTING_TYPE_SRH 4
/* Where a type 2 / type 4 routing header holds the final destination (segment list[0]). */
#define SW_ROUTING_FINAL_DST 8

/* TCP (synwall_wire::tcp). */
#define SW_TCP_MIN_HLEN 20
#define SW_TCP_MAX_OPTS 40
#define SW_TCP_FIN 0x01
#define SW_TCP_SYN 0x02
#define SW_TCP_RST 0x04
#define SW_TCP_PSH 0x08
#define SW_TCP_ACK 0x10
#define SW_TCP_URG 0x20
#define SW_TCP_ECE 0x40
#define SW_TCP_CWR 0x80
#define SW_TCPOPT_EOL 0
#define SW_TCPOPT_NOP 1
#define SW_TCPOPT_MSS 2
#define SW_TCPOPT_WSCALE 3
#define SW_TCPOPT_SACK_PERMITTED 4
#define SW_TCPOPT_TIMESTAMPS 8

/* Address families as stored in map keys. */
#define SW_FAMILY_V4 4
#define SW_FAMILY_V6 6

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

/* Errno values the backend counts (engine::kfunc_counter). */
#define SW_EINVAL 22
#define SW_ENOMEM 12
#define SW_ENETUNREACH 101

#endif /* SW_COMMON_H */
