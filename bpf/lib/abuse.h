/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The edge's abuse controls (SPEC section 10; crates/synwall-engine/src/abuse.rs):
 *
 *   sw_clients        LPM trie of client prefixes -> deny / allow (the two lists merged)
 *   sw_budget         reflection budget: client prefix -> GCRA bucket (LRU)
 *   sw_node_budget    the node's cap: one bucket
 *   sw_flow_budget    strict mode: client prefix -> bucket of new flows (LRU)
 *   sw_flows_promoted strict mode: the flow cache's protected segment (maps.h has probation)
 *
 * A budget is a GCRA bucket: `tat`, the theoretical arrival time of the next conforming event
 * (ns of bpf_ktime_get_tai_ns, the clock the salts are picked by: one clock read per SYN). An
 * event at `now` conforms iff max(tat, now) - now <= tolerance, and then moves tat to
 * max(tat, now) + interval (Gcra::step). A tat beyond now + tolerance + interval + SW_CLOCK_STEP_NS
 * can only come from the wall clock stepping back: the bucket counts as full. One bucket is shared by every CPU and
 * updated with compare-and-swap, so a prefix's budget is the node's, whichever CPUs its SYNs reach.
 * (SW_BUDGET_PERCPU builds the measured alternative: a bucket per CPU, no atomics; the loader
 * then splits rate and burst between the CPUs. docs/BENCHMARKS.md has both and why.)
 */
#ifndef SW_ABUSE_H
#define SW_ABUSE_H

#include "common.h"
#include "maps.h"
#include "parse.h"

/*
 * Client prefixes of the deny and allow lists: the key of sw_svc_key's layout (family byte, then
 * 16 address bytes with IPv4 as ::ffff:a.b.c.d). Each entry holds the flags of every listed
 * prefix containing it, so the longest match answers both lists in one lookup.
 */
struct sw_client_key {
	__u32 prefixlen;
	__u8 family;
	__u8 addr[16];
	__u8 pad[3];
};

struct sw_client_value {
	__u8 deny;  /* the address is in a deny prefix */
	__u8 allow; /* ... in an allow prefix (deny wins) */
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sw_client_key);
	__type(value, struct sw_client_value);
} sw_clients SEC(".maps");

/* A bucket's key: the family and the client address masked to the client prefix (BucketKey). */
struct sw_budget_key {
	__u32 family;
	__u32 addr[2]; /* IPv4: addr[0]; IPv6: the first 8 bytes */
};

/* One bucket (BucketState). */
struct sw_budget_state {
	__u64 tat;          /* theoretical arrival time of the next conforming event, ns */
	__u64 drops;        /* events refused since the bucket was made */
	__u64 last_drop_ns; /* when the last one was refused */
};

struct {
#ifdef SW_BUDGET_PERCPU
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
#else
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
#endif
	__uint(max_entries, SW_BUDGET_PREFIXES);
	__type(key, struct sw_budget_key);
	__type(value, struct sw_budget_state);
} sw_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_budget_state);
} sw_node_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SW_BUDGET_PREFIXES);
	__type(key, struct sw_budget_key);
	__type(value, struct sw_budget_state);
} sw_flow_budget SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SW_PROMOTED_CACHE);
	__type(key, struct sw_flow_key);
	__type(value, __u32);
} sw_flows_promoted SEC(".maps");

/* How often a bucket shared by all CPUs is retried when another CPU changed it meanwhile. */
#define SW_BUDGET_CAS_TRIES 4
/* SW_CLOCK_STEP_NS (constants.def): far beyond any skew between two CPUs' clock reads. */

/*
 * The calls below are subprograms of their own (not inlined): their keys then live in their own
 * stack frames, and the edge's main frame stays within the 512 bytes a call chain may use.
 */
#define SW_SUBPROG static __attribute__((noinline))

/* What the lists say about the segment's client: SW_LIST_DENY | SW_LIST_ALLOW bits, 0 if it is in
 * neither (ClientLists::classify). */
SW_SUBPROG int sw_client_flags(const struct sw_frame *f)
{
	struct sw_client_value *v;
	struct sw_client_key key;

	__builtin_memset(&key, 0, sizeof(key));
	key.prefixlen = SW_SVC_LOOKUP_PREFIXLEN;
	key.family = f->family;
	if (f->family == SW_FAMILY_V4) {
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &f->src[0], 4);
	} else {
		__builtin_memcpy(key.addr, f->src, 16);
	}
	v = bpf_map_lookup_elem(&sw_clients, &key);
	if (!v)
		return 0;
	return (v->deny ? SW_LIST_DENY : 0) | (v->allow ? SW_LIST_ALLOW : 0);
}

/* ClientPrefix::key: the bucket of the segment's client. */
SW_INLINE void sw_budget_key_of(const struct sw_config *cfg, const struct sw_frame *f,
				struct sw_budget_key *k)
{
	k->family = f->family;
	if (f->family == SW_FAMILY_V4) {
		k->addr[0] = f->src[0] & cfg->budget_mask_v4;
		k->addr[1] = 0;
	} else {
		k->addr[0] = f->src[0] & cfg->budget_mask_v6[0];
		k->addr[1] = f->src[1] & cfg->budget_mask_v6[1];
	}
}

/* A refused event, remembered in its bucket (the status shows who is being limited). */
SW_INLINE void sw_budget_refused(struct sw_budget_state *st, __u64 now, const int local)
{
	if (local)
		st->drops += 1;
	else
		__sync_fetch_and_add(&st->drops, 1);
	st->last_drop_ns = now;
}

/*
 * Gcra::step on a bucket: 1 if the event at `now` conforms (tat moved on), else 0. A bucket all
 * CPUs share is moved with compare-and-swap; a CPU that loses the race reads the winner's tat and
 * tries again, and after SW_BUDGET_CAS_TRIES lost races counts the budget as spent (others spent
 * it meanwhile). A per-CPU bucket (`local`, a constant) is this CPU's alone.
 */
SW_INLINE int sw_gcra(struct sw_budget_state *st, __u64 now, __u64 interval, __u64 tolerance,
		      const int local)
{
	__u64 tat, base;
	int i;

	if (local) {
		tat = st->tat;
		base = tat > now ? tat : now;
		if (base - now > tolerance + interval + SW_CLOCK_STEP_NS)
			base = now; /* the clock stepped back */
		if (base - now > tolerance)
			goto refused;
		st->tat = base + interval;
		return 1;
	}
	for (i = 0; i < SW_BUDGET_CAS_TRIES; i++) {
		tat = *(volatile __u64 *)&st->tat;
		base = tat > now ? tat : now;
		if (base - now > tolerance + interval + SW_CLOCK_STEP_NS)
			base = now; /* the clock stepped back */
		if (base - now > tolerance)
			break;
		if (__sync_val_compare_and_swap(&st->tat, tat, base + interval) == tat)
			return 1;
	}
refused:
	sw_budget_refused(st, now, local);
	return 0;
}

/*
 * The first event of a client prefix `map` holds no bucket for (engine::take_from): a full bucket
 * is made, and this event takes from it. A subprogram of its own: new prefixes are the rare case,
 * and its keys stay out of the caller's stack frame.
 */
SW_INLINE int sw_budget_new(void *map, const struct sw_config *cfg, const struct sw_frame *f,
			    __u64 now, __u64 interval, __u64 tolerance, const int local)
{
	struct sw_budget_key key;
	struct sw_budget_state init = {}, *st;

	sw_budget_key_of(cfg, f, &key);
	init.tat = now + interval;
	if (bpf_map_update_elem(map, &key, &init, BPF_NOEXIST) == 0)
		return 1;
	/* Another CPU made it meanwhile: take from that one. */
	st = bpf_map_lookup_elem(map, &key);
	if (!st)
		return 0;
	return sw_gcra(st, now, interval, tolerance, local);
}

#ifdef SW_BUDGET_PERCPU
#define SW_BUDGET_LOCAL 1
#else
#define SW_BUDGET_LOCAL 0
#endif

SW_SUBPROG int sw_reflection_budget_new(const struct sw_config *cfg, const struct sw_frame *f,
					__u64 now)
{
	return sw_budget_new(&sw_budget, cfg, f, now, cfg->budget_interval_ns,
			     cfg->budget_tolerance_ns, SW_BUDGET_LOCAL);
}

/* The reflection budget of the segment's client prefix: one lookup and one compare-and-swap. */
SW_INLINE int sw_reflection_budget_take(const struct sw_config *cfg, const struct sw_frame *f,
					__u64 now)
{
	struct sw_budget_key key;
	struct sw_budget_state *st;

	sw_budget_key_of(cfg, f, &key);
	st = bpf_map_lookup_elem(&sw_budget, &key);
	if (!st)
		return sw_reflection_budget_new(cfg, f, now);
	return sw_gcra(st, now, cfg->budget_interval_ns, cfg->budget_tolerance_ns,
		       SW_BUDGET_LOCAL);
}

/* Strict mode: the budget of new flows of the segment's client prefix (once per flow). */
SW_SUBPROG int sw_flow_budget_take(const struct sw_config *cfg, const struct sw_frame *f, __u64 now)
{
	struct sw_budget_key key;
	struct sw_budget_state *st;

	sw_budget_key_of(cfg, f, &key);
	st = bpf_map_lookup_elem(&sw_flow_budget, &key);
	if (!st)
		return sw_budget_new(&sw_flow_budget, cfg, f, now, cfg->flow_interval_ns,
				     cfg->flow_tolerance_ns, 0);
	return sw_gcra(st, now, cfg->flow_interval_ns, cfg->flow_tolerance_ns, 0);
}

/* The node's cap: its one bucket (all zero at load: full). */
SW_INLINE int sw_node_budget_take(const struct sw_config *cfg, __u64 now)
{
	struct sw_budget_state *st;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&sw_node_budget, &zero);
	if (!st)
		return 0; /* unreachable: array maps always have their slot */
	return sw_gcra(st, now, cfg->node_interval_ns, cfg->node_tolerance_ns, 0);
}

#endif /* SW_ABUSE_H */
