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

/*
 * Every header offset in a frame is below this (the deepest: 22 bytes of Ethernet + tags, 40 of
 * IPv6, 6 extension headers of at most 2048 bytes, 60 of TCP), so masking an offset with it
 * changes nothing and tells the verifier the offset is bounded.
 */
#define SW_OFF_MASK 0x3fff

/* tc return codes (linux/pkt_cls.h). */
#define SW_TC_ACT_OK 0
#define SW_TC_ACT_SHOT 2

#endif /* SW_COMMON_H */
