// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The lab's SYN generator. Run by BPF_PROG_TEST_RUN in live-frames mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES) on a template SYN built in Rust, it gives every frame its own
 * spoofed source (the host bits of the address within the configured prefix, the source port,
 * the sequence number), patches the IP and TCP checksums incrementally and sends the frame out
 * of the run's ingress device (XDP_TX). The kernel does the sending: no socket, no copy per frame.
 *
 * A live frame's page is recycled with whatever the last user left in it (a defender that answered
 * with XDP_TX turned it into a SYN+ACK), so the program writes the whole template into every frame
 * first, from .rodata, in 8-byte words (the template is padded to a multiple of 8 bytes).
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

/* The host bits of the spoofed prefix within the address's last 32 bits, network order. */
const volatile __be32 cfg_host_mask = 0;
/* Added to every frame's index: two generators (or two runs) can draw different sources. */
const volatile __u32 cfg_salt = 0;
/* The template frame, padded with zeros to a multiple of 8 bytes, and its length in words. */
#define TEMPLATE_WORDS 12
const volatile __u64 cfg_frame[TEMPLATE_WORDS] = {};
const volatile __u32 cfg_words = 0;

enum gen_counter {
	GEN_TX_V4,
	GEN_TX_V6,
	GEN_DROP_NOT_SYN_TEMPLATE,
	GEN_DROP_FRAME_LENGTH,
	GEN_DROP_NO_INDEX,
	GEN_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GEN_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} gen_counters SEC(".maps");

/* Frames made on this CPU so far: each frame's index. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_index SEC(".maps");

static __always_inline int count(int action, __u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&gen_counters, &c);

	if (v)
		*v += 1;
	return action;
}

/* RFC 1624: replace the 16-bit word `old` by `new` under one's-complement sum `sum`. Byte order
 * does not matter as long as words are taken as they lie in memory. */
static __always_inline __u32 csum_replace16(__u32 sum, __u16 old, __u16 new)
{
	return sum + (__u16)~old + new;
}

static __always_inline __u32 csum_replace32(__u32 sum, __u32 old, __u32 new)
{
	sum = csum_replace16(sum, (__u16)old, (__u16)new);
	return csum_replace16(sum, (__u16)(old >> 16), (__u16)(new >> 16));
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* The new source port, sequence number and address host bits of frame `h`, and the TCP checksum
 * patched for them; `saddr` is the address's last 32 bits (IPv4: all of it). Returns the new
 * `saddr` so an IPv4 caller patches its header checksum too. */
static __always_inline __be32 respoof(struct tcphdr *tcp, __be32 *saddr, __u32 h)
{
	__be32 old_addr = *saddr;
	__be32 new_addr = (old_addr & ~cfg_host_mask) | (bpf_htonl(h) & cfg_host_mask);
	__u16 port = (__u16)(h >> 16);
	__be16 new_port;
	__be32 new_seq = bpf_htonl(h ^ 0x5bd1e995);
	__u32 sum;

	/* Ports below 1024 are not what clients use. */
	if (port < 1024)
		port += 1024;
	new_port = bpf_htons(port);
	sum = (__u16)~tcp->check;
	sum = csum_replace32(sum, old_addr, new_addr);
	sum = csum_replace16(sum, tcp->source, new_port);
	sum = csum_replace32(sum, tcp->seq, new_seq);
	tcp->check = ~csum_fold(sum);
	tcp->source = new_port;
	tcp->seq = new_seq;
	*saddr = new_addr;
	return new_addr;
}

SEC("xdp")
int syngen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	__u64 *idx = bpf_map_lookup_elem(&gen_index, &zero);
	__u32 h;

	if (!idx)
		return count(XDP_DROP, GEN_DROP_NO_INDEX);
	if (data + cfg_words * 8 != end)
		return count(XDP_DROP, GEN_DROP_FRAME_LENGTH);
#pragma unroll
	for (int i = 0; i < TEMPLATE_WORDS; i++) {
		__u64 *w = (__u64 *)data + i;

		if (i >= cfg_words)
			break;
		if ((void *)(w + 1) > end)
			return count(XDP_DROP, GEN_DROP_FRAME_LENGTH);
		*w = cfg_frame[i];
	}
	if ((void *)(eth + 1) > end)
		return count(XDP_DROP, GEN_DROP_NOT_SYN_TEMPLATE);
	/* An odd multiplier permutes 32-bit values, and its low k bits depend only on the index's
	 * low k bits: 2^k frames in a row from one CPU get 2^k different host parts. Each CPU
	 * starts its sequence elsewhere, in the low bits too (an offset of whole 2^k steps would
	 * give two CPUs the same host parts). */
	h = ((__u32)*idx + cfg_salt + bpf_get_smp_processor_id() * 0x2545f491u) * 0x9e3779b1u;
	*idx += 1;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct tcphdr *tcp = (void *)(ip + 1);
		__be32 old, new;
		__u32 sum;

		if ((void *)(tcp + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP ||
		    !tcp->syn || tcp->ack)
			return count(XDP_DROP, GEN_DROP_NOT_SYN_TEMPLATE);
		old = ip->saddr;
		new = respoof(tcp, &ip->saddr, h);
		sum = csum_replace32((__u16)~ip->check, old, new);
		ip->check = ~csum_fold(sum);
		return count(XDP_TX, GEN_TX_V4);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct tcphdr *tcp = (void *)(ip6 + 1);

		if ((void *)(tcp + 1) > end || ip6->nexthdr != IPPROTO_TCP || !tcp->syn || tcp->ack)
			return count(XDP_DROP, GEN_DROP_NOT_SYN_TEMPLATE);
		respoof(tcp, &ip6->saddr.in6_u.u6_addr32[3], h);
		return count(XDP_TX, GEN_TX_V6);
	}
	return count(XDP_DROP, GEN_DROP_NOT_SYN_TEMPLATE);
}
