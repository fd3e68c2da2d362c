// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The lab's sink, on the attacker's veth: counts the SYN+ACKs that come back and drops them (the
 * attacker never answers), passes everything else (ARP, neighbour discovery, the rest). Having an
 * XDP program here is also what lets the defender's XDP_TX answers be delivered to this veth.
 *
 * `xdp_pass` is the trivial program the baselines' host veth runs for the same reason: the
 * generator's XDP_TX frames reach a veth only if it has an XDP program. `drop_all` counts and
 * drops every frame: the far end when the generator alone is measured.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum sink_counter {
	SINK_SYNACK_V4,
	SINK_SYNACK_V6,
	SINK_PASS_OTHER_TCP,
	SINK_PASS_NOT_TCP,
	SINK_DROP_ALL,
	SINK_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} sink_counters SEC(".maps");

static __always_inline int count(int action, __u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&sink_counters, &c);

	if (v)
		*v += 1;
	return action;
}

static __always_inline int tcp_verdict(struct tcphdr *tcp, void *end, __u32 synack)
{
	if ((void *)(tcp + 1) > end)
		return count(XDP_PASS, SINK_PASS_NOT_TCP);
	if (tcp->syn && tcp->ack && !tcp->rst)
		return count(XDP_DROP, synack);
	return count(XDP_PASS, SINK_PASS_OTHER_TCP);
}

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return count(XDP_PASS, SINK_PASS_NOT_TCP);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl < 5)
			return count(XDP_PASS, SINK_PASS_NOT_TCP);
		return tcp_verdict((void *)ip + ip->ihl * 4, end, SINK_SYNACK_V4);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return count(XDP_PASS, SINK_PASS_NOT_TCP);
		return tcp_verdict((void *)(ip6 + 1), end, SINK_SYNACK_V6);
	}
	return count(XDP_PASS, SINK_PASS_NOT_TCP);
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int drop_all(struct xdp_md *ctx)
{
	return count(XDP_DROP, SINK_DROP_ALL);
}
