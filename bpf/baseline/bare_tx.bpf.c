// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The floor of the per-packet benchmark: swap the Ethernet addresses and send the frame back
 * (XDP_TX). Anything an XDP SYN answerer does costs at least this.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum bare_counter {
	BARE_TX,
	BARE_PASS_SHORT,
	BARE_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BARE_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} bare_counters SEC(".maps");

static __always_inline int count(int action, __u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&bare_counters, &c);

	if (v)
		*v += 1;
	return action;
}

SEC("xdp")
int bare_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 tmp[ETH_ALEN];

	if ((void *)(eth + 1) > end)
		return count(XDP_PASS, BARE_PASS_SHORT);
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return count(XDP_TX, BARE_TX);
}
