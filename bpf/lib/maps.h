/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps userspace fills (crates/synwall-bpf). These C types are the single source of truth:
 * the Rust side uses the types the skeleton generator derives from this file's BTF.
 *
 *   sw_config       the engine configuration (EngineConfig: ServerParams + cookie Config + strict)
 *   sw_salts        two salt slots; sw_salt_active names the live one (rotation without tearing)
 *   sw_services     LPM trie: destination prefix -> index of a port bitmap in sw_ports
 *   sw_ports        65536-bit port bitmaps
 *   sw_flows        strict mode: the flows whose handshake ACK validated (edge only)
 *   sw_auto_map     auto mode: the shared SYN-rate window and the cookies on/off state (edge only)
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
	__u8 pad[2];
	__u16 mss_table_v4[8]; /* cookie Config::mss_v4, ascending */
	__u16 mss_table_v6[8]; /* cookie Config::mss_v6, ascending */
	/* AutoConfig (edge). Appended so the older fields keep their offsets. */
	__u32 auto_rate_on;    /* SYNs/s at or above which cookies switch on */
	__u32 auto_rate_off;   /* SYNs/s below which cookies may switch off again */
	__u32 auto_hold_ms;    /* ... once the rate stayed below auto_rate_off this long */
};

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

/* One salt slot (EpochKeys): generate with `current`, also accept `previous`. */
struct sw_salt_slot {
	__u64 epoch;
	struct sw_sipkey current;  /* K_e */
	struct sw_sipkey previous; /* K_{e-1} */
};

/*
 * Rotation: userspace writes the slot sw_salt_active does not name, then flips sw_salt_active to
 * it. A reader loads the index once and reads one whole slot, which nobody writes while it is
 * live (the next rotation, an epoch later, writes the other one).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct sw_salt_slot);
} sw_salts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} sw_salt_active SEC(".maps");

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
 * Auto mode (engine::AutoState). One entry shared by all CPUs (not per-CPU): the rate is the
 * node's SYN rate. window_syns is added to atomically by every CPU; the CPU that wins the
 * compare-and-swap of window_start_ns closes the window and alone writes the other fields (windows
 * are >= 100 ms apart, so writers never overlap).
 */
struct sw_auto_state {
	__u64 window_start_ns; /* bpf_ktime_get_ns() when the current window opened */
	__u64 window_syns;     /* SYNs counted in the current window */
	__u64 rate;            /* SYNs/s of the last closed window */
	__u64 last_high_ns;    /* when a closed window last had rate >= auto_rate_off */
	__u64 switches_on;     /* cookies off -> on transitions */
	__u64 switches_off;    /* cookies on -> off transitions */
	__u32 cookies_on;      /* 1: answer SYNs with cookies; 0: pass them to the kernel */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sw_auto_state);
} sw_auto_map SEC(".maps");
#endif

SW_INLINE struct sw_config *sw_get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sw_config_map, &zero);
}

/* The live salt slot. */
SW_INLINE struct sw_salt_slot *sw_get_salts(void)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&sw_salt_active, &zero);
	__u32 idx;

	if (!active)
		return NULL;
	idx = *active & 1;
	return bpf_map_lookup_elem(&sw_salts, &idx);
}

#endif /* SW_MAPS_H */
