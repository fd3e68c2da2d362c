/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The per-CPU counters (crates/synwall-engine/src/counters.rs): one enum built from counters.def,
 * so index i is the same counter in C and in Rust, and the per-CPU array `sw_counters` holding one
 * u64 per counter. Every packet increments exactly one counter per hook.
 */
#ifndef SW_COUNTERS_H
#define SW_COUNTERS_H

#include "common.h"

enum sw_counter {
#define SW_COUNTER(ident, name, help) SW_##ident,
#include "counters.def"
#undef SW_COUNTER
	SW_COUNTER_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SW_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sw_counters SEC(".maps");

/* Count one packet on this CPU (a per-CPU slot: no atomic needed). */
SW_INLINE void sw_count(enum sw_counter c)
{
	__u32 key = c;
	__u64 *v = bpf_map_lookup_elem(&sw_counters, &key);

	if (v)
		*v += 1;
}

/* Count `c` and return the program's `action`: every verdict goes through here. */
SW_INLINE int sw_verdict(int action, enum sw_counter c)
{
	sw_count(c);
	return action;
}

#endif /* SW_COUNTERS_H */
