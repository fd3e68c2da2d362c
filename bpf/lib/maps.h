/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps userspace fills (crates/synwall-bpf). These C types are the single source of truth:
 * the Rust side uses the types the skeleton generator derives from this file's BTF.
 *
 *   sw_config       the engine configuration (EngineConfig: ServerParams + cookie Config + strict)
 *   sw_salt_ring    the salts of each epoch, written ahead by the daemon (slot = epoch % 256)
 *   sw_clock        epoch length, lag and TAI offset the programs pick salts with; the daemon's
 *                   heartbeat (health)
 *   sw_services     LPM trie: destination prefix -> index of a port bitmap in sw_ports
 *   sw_ports        65536-bit port bitmaps
 *   sw_flows        strict mode: the flows whose handshake ACK validated (edge only)
 *   sw_auto_window  auto mode: the SYN-rate window and the cookies on/off state (edge only)
 *   sw_auto_syns    auto mode: each CPU's SYN count (edge only)
 *   (lib/abuse.h: the edge's lists of client prefixes, budgets and the flow cache's protected
 *   segment)
 */
#ifndef SW_MAPS_H
#define SW_MAPS_H

#include "common.h"

/* EngineConfig, flattened. Booleans are 0/1 bytes. */
struct sw_config {
	__u16 mss_v4;          /* ServerParams::mss_v4: MSS option of an IPv4 SYN+ACK */
	__u16 mss_v6;          /* ServerParams::mss_v6 */
	__u16 window;          /* ServerParams::window */
	__u8 wscale;           /* ServerParams::wscale: our shift (= the backends' rcv_wscale) */
	__u8 ttl;              /* ServerParams::ttl: IPv4 TTL / IPv6 hop limit */
	__u8 sack;             /* cookie Config::sack */
	__u8 wscale_on;        /* cookie Config::wscale */
	__u8 timestamps;       /* cookie Config::timestamps */
	__u8 ecn;              /* cookie Config::ecn */
	__u8 strict;           /* EngineConfig::strict (edge) */
	__u8 auto_enabled;     /* EngineConfig::auto is Some (edge) */
	__u8 drop_syns;        /* EngineConfig::backend_drop_syns (backend) */
	__u8 pad[1];
	__u16 mss_table_v4[8]; /* cookie Config::mss_v4, ascending */
	__u16 mss_table_v6[8]; /* cookie Config::mss_v6, ascending */
	/* AutoConfig (edge). Appended so the older fields keep their offsets. */
	__u32 auto_rate_on;    /* SYNs/s at or above which cookies switch on */
	__u32 auto_rate_off;   /* SYNs/s below which cookies may switch off again */
	__u32 auto_hold_ms;    /* ... once the rate stayed below auto_rate_off this long */
	/* Abuse controls (SPEC 10, edge; engine::abuse). Appended. */
	__u8 lists;            /* SW_LIST_DENY | SW_LIST_ALLOW: the client lists that are not empty */
	__u8 budget_on;        /* EngineConfig::budget is Some: the reflection budget per prefix */
	__u8 node_budget_on;   /* EngineConfig::node_budget is Some: the node's cap */
	__u8 flow_budget_on;   /* EngineConfig::flow_budget is Some (strict mode) */
	__u8 promote;          /* EngineConfig::promoted_cache > 0 (strict mode) */
	__u8 pad2[3];
	__u32 budget_mask_v4;    /* ClientPrefix::mask_v4, as the address's bytes are loaded */
	__u32 budget_mask_v6[2]; /* ClientPrefix::mask_v6 (the first 8 bytes of the address) */
	__u64 budget_interval_ns;  /* Gcra of EngineConfig::budget */
	__u64 budget_tolerance_ns;
	__u64 node_interval_ns;    /* Gcra of EngineConfig::node_budget */
	__u64 node_tolerance_ns;
	__u64 flow_interval_ns;    /* Gcra of EngineConfig::flow_budget */
	__u64 flow_tolerance_ns;
};

/* sw_config.lists: SW_LIST_DENY | SW_LIST_ALLOW (constants.def). */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_config);
} sw_config_map SEC(".maps");

/* A SipHash-2-4 key: k0 = LE64(K[0..8]), k1 = LE64(K[8..16]) (SipKey). */
struct sw_sipkey {
	__u64 k0;
	__u64 k1;
};

/*
 * The salt ring (engine::salts::SaltEntry): one slot per epoch, slot = epoch % SW_SALT_RING. The
 * daemon writes epochs e - 1 .. e + N ahead of time; the programs pick the slot from their own
 * clock (sw_generation_salt, sw_validation_epoch in cookie.h), so salts keep rotating while the
 * daemon is down, until the ring runs out (then: stale, the fail-safe). A reader checks `epoch`:
 * a slot holding another epoch is missing. The daemon rewrites a slot with different content only
 * while no reader can want it (epochs beyond e + 1); the accepted key may change at any time (a
 * torn read of it can only reject a cookie nobody issues). SW_SALT_RING: constants.def.
 */

struct sw_salt_entry {
	__u64 epoch;               /* the epoch this slot holds */
	struct sw_sipkey current;  /* K_e of the current master: generates and validates */
	struct sw_sipkey accepted; /* K'_e of the accepted master (SPEC 2a), iff has_accepted */
	__u32 has_accepted;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_SALT_RING);
	__type(key, __u32);
	__type(value, struct sw_salt_entry);
} sw_salt_ring SEC(".maps");

/*
 * The clock rule's parameters (synwall_v1::EpochClock), written by the daemon at start and on
 * every tick. The data path reads epoch_ns, lag_ns, tai_offset_ns and strict_grace_until_ns
 * (rewritten with the same bytes every tick: a torn read sees the same values); the rest is for
 * health (`synwall status`).
 */
struct sw_clock {
	__u64 epoch_ns;      /* P; 0 (a map never written): no epoch, every salt is missing */
	__u64 lag_ns;        /* L = min(P / 8, 250 ms): generators switch epochs this late */
	__s64 tai_offset_ns; /* CLOCK_TAI - CLOCK_REALTIME: UNIX time = bpf_ktime_get_tai_ns - this */
	/*
	 * UNIX ns until which strict mode still passes what it cannot validate, after the ring was
	 * stale: the daemon sets it when it writes salts again, so handshakes the kernel answered
	 * meanwhile (their ACKs still on the way) are not cut (Salts::strict_grace_until_ns).
	 */
	__u64 strict_grace_until_ns;
	__u64 heartbeat_ns;  /* CLOCK_REALTIME of the daemon's last tick (not read by the programs) */
	__u32 daemon_pid;    /* the daemon that writes the ring (not read by the programs) */
	__u32 ahead_epochs;  /* N: the daemon writes epochs up to e + N (not read by the programs) */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_clock);
} sw_clock_map SEC(".maps");

/*
 * Services key. The family byte comes first so that an IPv6 prefix never matches an IPv4 packet
 * (or the reverse), as ServiceSet compares families; the address is 16 bytes with IPv4 as
 * ::ffff:a.b.c.d. prefixlen counts the family byte: IPv4 a.b.c.d/L is 8 + 96 + L, IPv6 P/L is
 * 8 + L; a packet is looked up with 8 + 128.
 */
struct sw_svc_key {
	__u32 prefixlen;
	__u8 family; /* SW_FAMILY_V4 / SW_FAMILY_V6 */
	__u8 addr[16];
	__u8 pad[3];
};

/* Each trie entry's bitmap is the union of the ports of every configured prefix containing it. */
struct sw_svc_value {
	__u32 ports; /* index into sw_ports */
};

#define SW_SVC_LOOKUP_PREFIXLEN (8 + 128)

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SW_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sw_svc_key);
	__type(value, struct sw_svc_value);
} sw_services SEC(".maps");

/* Bit p of bits[p / 64] (bit p % 64) is set iff port p is protected. */
struct sw_port_bitmap {
	__u64 bits[SW_PORTS / 64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SW_MAX_PORT_SETS);
	__type(key, __u32);
	__type(value, struct sw_port_bitmap);
} sw_ports SEC(".maps");

#ifdef SW_WANT_FLOW_CACHE
/* Strict mode's flow cache key (engine::FlowKey): client = the segment's source. */
struct sw_flow_key {
	__u32 client[4];  /* IPv4: client[0] only, the rest zero */
	__u32 service[4];
	__u16 client_port; /* host order */
	__u16 service_port;
	__u8 family;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SW_FLOW_CACHE);
	__type(key, struct sw_flow_key);
	__type(value, __u32);
} sw_flows SEC(".maps");
#endif

#ifdef SW_WANT_AUTO
/*
 * Auto mode (engine::AutoState). Each CPU counts its SYNs in its own slot of sw_auto_syns (a
 * shared counter would move one cache line between the CPUs on every SYN); the rate is the
 * node's: the CPU that closes a window sums every CPU's count. The window and the decision are
 * one entry shared by all CPUs, written only when a window closes: the CPU that wins the
 * compare-and-swap of window_start_ns alone writes the other fields (windows are >= 100 ms apart,
 * so writers never overlap), and between closes the CPUs only read it.
 */
struct sw_auto_state {
	__u64 window_start_ns; /* bpf_ktime_get_tai_ns() when the current window opened */
	__u64 window_base;     /* the sum of sw_auto_syns when the current window opened */
	__u64 rate;            /* SYNs/s of the last closed window */
	__u64 last_high_ns;    /* when a closed window last had rate >= auto_rate_off */
	__u64 switches_on;     /* cookies off -> on transitions */
	__u64 switches_off;    /* cookies on -> off transitions */
	__u32 cookies_on;      /* 1: answer SYNs with cookies; 0: pass them to the kernel */
	__u32 pad;
};

/* A new name, not sw_auto_map: pins of the shared counter an older version left are not reused. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_auto_state);
} sw_auto_window SEC(".maps");

/* SYNs each CPU counted since the map was made (only ever added to: a window takes a difference). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sw_auto_syns SEC(".maps");
#endif

SW_INLINE struct sw_config *sw_get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sw_config_map, &zero);
}

SW_INLINE struct sw_clock *sw_get_clock(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sw_clock_map, &zero);
}

/* SaltRing::get: the salts of `epoch`, or NULL when its slot holds another epoch. */
SW_INLINE struct sw_salt_entry *sw_salt_of(__u64 epoch)
{
	__u32 idx = epoch & (SW_SALT_RING - 1);
	struct sw_salt_entry *s = bpf_map_lookup_elem(&sw_salt_ring, &idx);

	if (!s || s->epoch != epoch)
		return NULL;
	return s;
}

#endif /* SW_MAPS_H */
