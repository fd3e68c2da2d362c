// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The edge: synwall's XDP program, exactly Engine::xdp (crates/synwall-engine/src/engine.rs).
 *
 *   parse -> client on the deny list: dropped                          (drop_denied)
 *         -> SYN to a protected service: cookie SYN+ACK, XDP_TX      (syn_answered)
 *            auto mode, SYN rate below the threshold: XDP_PASS        (auto_syn_pass)
 *            no salt for the epoch in the ring: XDP_PASS              (syn_pass_stale)
 *            over the client prefix's or the node's reflection budget (drop_syn_budget, ...)
 *         -> default mode: any other segment passes without a MAC   (fwd_non_syn)
 *         -> strict mode: cached flows pass (the first data segment promotes a flow out of
 *            probation); an ACK whose cookie validates is cached (within its prefix's budget of
 *            new flows) and passes; the rest is dropped, or passed while the ring has no salt
 *            for the epoch (strict_pass_stale)
 * Every outcome increments exactly one per-CPU counter (lib/counters.def).
 */
#define SW_XDP 1
#define SW_WANT_FLOW_CACHE 1
#define SW_WANT_AUTO 1

#include "lib/common.h"
#include "lib/counters.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/siphash.h"
#include "lib/cookie.h"
#include "lib/synack.h"
#include "lib/abuse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * TcpFrame::checksums_ok: the IPv4 header checksum (if IPv4; the inner header's for SRv6
 * encapsulation), then the TCP checksum.
 */
SW_INLINE int sw_checksums_ok(struct xdp_md *ctx, const struct sw_frame *f)
{
	__u32 seglen = f->end - f->l4;
	__u64 sum;
	__s64 big;
	int s;

	if (f->family == SW_FAMILY_V4 && f->l4 - f->ip == 20) {
		/* The usual header without options: five words, summed in place. */
		void *data = (void *)(long)ctx->data;
		void *end = (void *)(long)ctx->data_end;
		__u32 *w = data + (f->ip & SW_OFF_MASK);

		if ((void *)(w + 5) > end || sw_csum_fold(sw_csum_words(0, w, 5)) != 0xffff)
			return 0;
	} else if (f->family == SW_FAMILY_V4) {
		s = sw_csum_pkt(ctx, f->ip, f->l4 - f->ip);
		if (s != 0xffff)
			return 0;
	}
	big = sw_csum_in_place(ctx, f->l4, seglen);
	if (big >= 0) {
		sum = (__u64)big;
	} else if (seglen <= SW_CSUM_MAX_LEN) {
		s = sw_csum_pkt(ctx, f->l4, seglen);
		if (s < 0)
			return 0;
		sum = (__u64)s;
	} else {
		/*
		 * A SYN of more than 16 KiB in one buffer (generic mode, a large MTU): summed chunk by
		 * chunk. Answered whatever its size (SPEC 8), as the engine does.
		 */
		big = sw_csum_chunks(ctx, f->l4, seglen);
		if (big < 0)
			return 0;
		sum = (__u64)big;
	}
	if (f->family == SW_FAMILY_V4)
		sum += (__u64)f->src[0] + f->dst[0];
	else
		sum = sw_csum_words(sw_csum_words(sum, f->src, 4), f->dst, 4);
	/* Pseudo-header length and protocol (seglen < 65536: it came from a 16-bit field). */
	sum += bpf_htons(SW_PROTO_TCP) + bpf_htons((__u16)seglen);
	return sw_csum_fold(sum) == 0xffff;
}

/*
 * The SYN rate is measured over windows of at least SW_AUTO_WINDOW_NS; a window start more than
 * SW_AUTO_STEP_NS in the future means the clock was stepped back (constants.def).
 */

/*
 * The sum of every CPU's SYN count (AutoState::syns): one bpf_loop step per possible CPU, until
 * the first CPU number the per-CPU map has no slot for.
 */
static long sw_auto_add_cpu(__u64 cpu, void *ctx)
{
	__u64 *sum = ctx, *n;
	__u32 zero = 0;

	n = bpf_map_lookup_percpu_elem(&sw_auto_syns, &zero, (__u32)cpu);
	if (!n)
		return 1;
	*sum += *n;
	return 0;
}

/*
 * AutoState::on_syn: count this SYN on this CPU; the CPU that closes a window (wins the
 * compare-and-swap of its start) sums the CPUs' counts, takes the window's share of them, computes
 * its rate and applies the hysteresis. Returns whether SYNs are answered with cookies. A count
 * another CPU adds while the sum is taken falls in the next window: none is lost or counted twice.
 * Differences of clocks are compared signed: a CPU whose `now` is older than a window another CPU
 * just opened must not see a huge elapsed time. The clock is TAI, which follows the wall clock:
 * when it is stepped back by more than a second, the window restarts at `now` (else it would stay
 * open until the clock caught up again).
 */
SW_INLINE int sw_auto_cookies(const struct sw_config *cfg, __u64 now)
{
	struct sw_auto_state *st;
	__u64 start, syns, elapsed, rate, sum = 0, *mine;
	__u32 zero = 0;

	st = bpf_map_lookup_elem(&sw_auto_window, &zero);
	mine = bpf_map_lookup_elem(&sw_auto_syns, &zero);
	if (!st || !mine)
		return 1; /* unreachable: array maps always have their slot */
	/* This CPU's own slot: no other CPU writes it, and a program runs to its end on one CPU. */
	*mine += 1;
	start = *(volatile __u64 *)&st->window_start_ns;
	elapsed = now - start;
	if ((__s64)elapsed >= (__s64)SW_AUTO_WINDOW_NS &&
	    __sync_val_compare_and_swap(&st->window_start_ns, start, now) == start) {
		bpf_loop(SW_AUTO_MAX_CPUS, sw_auto_add_cpu, &sum, 0);
		syns = sum - st->window_base;
		st->window_base = sum;
		/* The mean over the whole window, however long: rare SYNs average correctly. */
		rate = syns * 1000000000ULL / elapsed;
		st->rate = rate;
		if (rate >= cfg->auto_rate_off)
			st->last_high_ns = now;
		if (rate >= cfg->auto_rate_on) {
			if (!st->cookies_on) {
				st->cookies_on = 1;
				st->switches_on += 1;
			}
		} else if (st->cookies_on && rate < cfg->auto_rate_off &&
			   (__s64)(now - st->last_high_ns) >= (__s64)((__u64)cfg->auto_hold_ms * 1000000)) {
			st->cookies_on = 0;
			st->switches_off += 1;
		}
	} else if ((__s64)elapsed < -(__s64)SW_AUTO_STEP_NS &&
		   __sync_val_compare_and_swap(&st->window_start_ns, start, now) == start) {
		/* Stepped back: a new window from here; the hold counts from here at the latest. */
		if ((__s64)(now - st->last_high_ns) < 0)
			st->last_high_ns = now;
	}
	return *(volatile __u32 *)&st->cookies_on != 0;
}

/* Engine::answer_syn; `allowed`: the client is on the allow list (exempt from the budgets). */
SW_INLINE int sw_answer_syn(struct xdp_md *ctx, const struct sw_frame *f,
			    const struct sw_config *cfg, int allowed)
{
	struct sw_salt_entry *salt;
	struct sw_clock *clk;
	struct sw_tcp_opts o;
	struct sw_opt_bits bits;
	__u32 isn, tsval = 0;
	__u64 mac, now;

	if (f->flags & (SW_TCP_RST | SW_TCP_FIN))
		return sw_verdict(XDP_DROP, SW_DROP_SYN_FLAGS);
	if (sw_tcp_options(ctx, f, &o))
		return sw_verdict(XDP_DROP, SW_DROP_SYN_OPTIONS);
	if (!sw_checksums_ok(ctx, f))
		return sw_verdict(XDP_DROP, SW_DROP_SYN_CHECKSUM);
	/*
	 * One clock for the salt, the SYN rate and TSval, as Engine::xdp_at takes one `now_ns`: TAI,
	 * which the daemon's UNIX time is a fixed offset from (sw_clock.tai_offset_ns).
	 */
	now = bpf_ktime_get_tai_ns();
	if (cfg->auto_enabled && !sw_auto_cookies(cfg, now))
		/* No attack: the kernel answers, and the handshake needs no cookie. */
		return sw_verdict(XDP_PASS, SW_AUTO_SYN_PASS);
	/* The salts only where a MAC is computed (not on the forwarding paths). */
	clk = sw_get_clock();
	if (!clk)
		return sw_verdict(XDP_PASS, SW_PASS_NO_STATE);
	salt = sw_generation_salt(clk, now);
	if (!salt)
		/* The ring ran out (the daemon stopped writing ahead): the kernel behind answers. */
		return sw_verdict(XDP_PASS, SW_SYN_PASS_STALE);
	/*
	 * The reflection budgets: the client prefix's, then the node's (a SYN its prefix may not have
	 * answered takes nothing from the node). The allow list is exempt from both.
	 */
	if (!allowed) {
		if (cfg->budget_on && !sw_reflection_budget_take(cfg, f, now))
			return sw_verdict(XDP_DROP, SW_DROP_SYN_BUDGET);
		if (cfg->node_budget_on && !sw_node_budget_take(cfg, now))
			return sw_verdict(XDP_DROP, SW_DROP_SYN_NODE_CAP);
	}
	bits = sw_encode_options(cfg, f->family, &o, f->flags);
	/*
	 * Inlined, not the global sw_mac: a BPF-to-BPF call's return is a mispredicted safe RET on
	 * this kind of CPU (SRSO mitigation), a large share of a straight-line MAC's cost. One
	 * straight-line copy of it for the verifier on this path.
	 */
	mac = sw_mac_inline(&salt->current, f, f->seq, bits);
	isn = sw_cookie_of(bits, mac);
	if (sw_bits_timestamps(bits))
		tsval = sw_tsval_of(now / 1000000, bits, mac);
	if (sw_build_synack(ctx, f, cfg, bits, isn, tsval, o.has_timestamps ? o.tsval : 0) < 0)
		/* The driver refused the room to resize the frame into its answer. */
		return sw_verdict(XDP_DROP, SW_DROP_SYNACK_ROOM);
	return sw_verdict(XDP_TX, allowed ? SW_SYN_ANSWERED_ALLOWED : SW_SYN_ANSWERED);
}

/*
 * Salts::strict_passes: strict mode passes what it cannot validate while the ring has no salt
 * for the live epoch, and in the grace the daemon sets when it writes salts again (the flow may
 * be one the kernel behind made while SYNs were passed: fail-safe).
 */
SW_INLINE int sw_strict_passes(const struct sw_clock *clk, __u64 now)
{
	return !clk->epoch_ns || !sw_salt_of(sw_unix_ns(clk, now) / clk->epoch_ns) ||
	       sw_unix_ns(clk, now) < clk->strict_grace_until_ns;
}

/* Strict mode on a segment it does not forward: dropped, or passed in the fail-safe. */
SW_INLINE int sw_strict_reject(const struct sw_clock *clk, __u64 now)
{
	if (sw_strict_passes(clk, now))
		return sw_verdict(XDP_PASS, SW_STRICT_PASS_STALE);
	return sw_verdict(XDP_DROP, SW_STRICT_DROP);
}

/*
 * Strict mode (the rest of Engine::xdp). `allowed` is the allow list's answer when the caller
 * looked the client up (it did whenever the deny list is set), else 0.
 */
SW_INLINE int sw_strict(struct xdp_md *ctx, const struct sw_frame *f, const struct sw_config *cfg,
			int allowed)
{
	struct sw_flow_key key;
	struct sw_clock *clk;
	struct sw_tcp_opts o;
	struct sw_opt_bits bits;
	__u32 one = 1;
	__u64 now;
	int r;

	__builtin_memset(&key, 0, sizeof(key));
	__builtin_memcpy(key.client, f->src, 16);
	__builtin_memcpy(key.service, f->dst, 16);
	key.client_port = f->sport;
	key.service_port = f->dport;
	key.family = f->family;
	/* Promoted flows first: most of a strict edge's traffic. */
	if (cfg->promote && bpf_map_lookup_elem(&sw_flows_promoted, &key))
		return sw_verdict(XDP_PASS, SW_STRICT_FWD_CACHED);
	if (bpf_map_lookup_elem(&sw_flows, &key)) {
		/* Data after the handshake: the flow is real; new flows may no longer evict it. */
		if (cfg->promote && f->end > f->l4 + f->tcp_hlen) {
			bpf_map_update_elem(&sw_flows_promoted, &key, &one, BPF_ANY);
			bpf_map_delete_elem(&sw_flows, &key);
			return sw_verdict(XDP_PASS, SW_STRICT_FWD_PROMOTED);
		}
		return sw_verdict(XDP_PASS, SW_STRICT_FWD_CACHED);
	}
	clk = sw_get_clock();
	if (!clk)
		return sw_verdict(XDP_PASS, SW_PASS_NO_STATE);
	now = bpf_ktime_get_tai_ns();
	if ((f->flags & (SW_TCP_ACK | SW_TCP_SYN | SW_TCP_RST)) != SW_TCP_ACK)
		return sw_strict_reject(clk, now);
	if (sw_tcp_options(ctx, f, &o))
		return sw_verdict(XDP_DROP, SW_DROP_ACK_OPTIONS);
	r = sw_validate_ring(clk, now, f, &o, &bits);
	if (r == SW_COOKIE_INVALID && !sw_strict_passes(clk, now))
		return sw_verdict(XDP_DROP, SW_STRICT_DROP);
	if (r == SW_COOKIE_VALID && cfg->flow_budget_on) {
		/* Only the allow list was set: this segment's client is looked up now, once a flow. */
		if (!(cfg->lists & SW_LIST_DENY) && (cfg->lists & SW_LIST_ALLOW))
			allowed = sw_client_flags(f) & SW_LIST_ALLOW;
		if (!allowed && !sw_flow_budget_take(cfg, f, now))
			return sw_verdict(XDP_DROP, SW_DROP_FLOW_BUDGET);
	}
	/*
	 * Valid: cached. Stale or in the grace after (nothing can be judged; the backend still
	 * validates): passed and cached too, so a connection the kernel behind made meanwhile is not
	 * cut when salts come back.
	 */
	bpf_map_update_elem(&sw_flows, &key, &one, BPF_ANY);
	if (r != SW_COOKIE_VALID)
		return sw_verdict(XDP_PASS, SW_STRICT_PASS_STALE);
	return sw_verdict(XDP_PASS, SW_STRICT_ACK_VALID);
}

/*
 * xdp.frags: frames of any size the interface carries, in several buffers when they do not fit
 * one (jumbo MTUs); without it a veth in native mode refuses MTUs above ~3.5 KB.
 */
/* The program's body; the two entry points below differ only in how they are loaded. */
SW_INLINE int sw_edge_run(struct xdp_md *ctx)
{
	struct sw_config *cfg;
	struct sw_frame f;
	int r, syn, lists, allowed = 0;

	__builtin_memset(&f, 0, sizeof(f));
	r = sw_parse(ctx, &f);
	if ((r >> 8) == SW_PARSED_PASS)
		return sw_verdict(XDP_PASS, r & 0xff);
	if ((r >> 8) != SW_PARSED_TCP)
		return sw_verdict(XDP_DROP, r & 0xff);
	cfg = sw_get_config();
	if (!cfg)
		return sw_verdict(XDP_PASS, SW_PASS_NO_STATE);
	syn = (f.flags & (SW_TCP_SYN | SW_TCP_ACK)) == SW_TCP_SYN;
	/*
	 * The deny list holds for every segment to a protected service; the allow list matters to
	 * SYNs (here) and to a strict edge's new flows (sw_strict). Empty lists (the default) cost
	 * one test of the config.
	 */
	if ((cfg->lists & SW_LIST_DENY) || ((cfg->lists & SW_LIST_ALLOW) && syn)) {
		lists = sw_client_flags(&f);
		if (lists & SW_LIST_DENY)
			return sw_verdict(XDP_DROP, SW_DROP_DENIED);
		allowed = lists & SW_LIST_ALLOW;
	}
	if (syn) {
		/* Never answered from a fragment: the rest of the segment is not here to check. */
		if (f.fragment)
			return sw_verdict(XDP_DROP, SW_DROP_SYN_FRAGMENT);
		/* The checksum and the answer are computed over the first buffer only. */
		if (f.end > sw_linear_len(ctx))
			return sw_verdict(XDP_DROP, SW_DROP_SYN_MULTIBUF);
		return sw_answer_syn(ctx, &f, cfg, allowed);
	}
	if (!cfg->strict)
		/* Cost rule: established traffic is forwarded without a MAC; the backend validates. */
		return sw_verdict(XDP_PASS, SW_FWD_NON_SYN);
	return sw_strict(ctx, &f, cfg, allowed);
}

/* Native mode and test runs: multi-buffer frames (jumbo MTUs) reach it as they are. */
SEC("xdp.frags")
int sw_edge(struct xdp_md *ctx)
{
	return sw_edge_run(ctx);
}

/*
 * Generic (skb) mode: the same program without multi-buffer support. For an xdp.frags program,
 * Linux 6.18's generic XDP copies an skb it cannot run in place into a new one whose data then
 * starts at the network header when tc ingress runs: a tc backend on the same interface (a single
 * node) sees no Ethernet header. Without frags, generic XDP makes room in place and linearises,
 * which is all a generic-mode edge needs.
 */
SEC("xdp")
int sw_edge_generic(struct xdp_md *ctx)
{
	return sw_edge_run(ctx);
}
