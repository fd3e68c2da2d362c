// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The backend: synwall's tc ingress program (attached with tcx), exactly Engine::tc
 * (crates/synwall-engine/src/engine.rs).
 *
 *   parse -> SYN: pass to the kernel                                  (backend_syn_pass)
 *                in a fragment: drop                                  (drop_syn_fragment)
 *         -> not a pure ACK: pass                                     (backend_pass_other)
 *         -> ACK: bpf_skc_lookup_tcp on its 4-tuple (final destination)
 *              a connection (established, time-wait, request): pass (backend_established)
 *              nothing: pass, the kernel answers with RST            (backend_no_listener)
 *              only a listener: in a fragment: drop                  (drop_ack_fragment)
 *                  validate the cookie
 *                  invalid: drop                                      (backend_ack_invalid)
 *                           no salt for the epoch in the ring: pass    (backend_ack_pass_stale)
 *                           auto mode: pass, the kernel judges it      (backend_ack_pass_auto)
 *                  valid: TCP checksum as the kernel checks it; bad: drop (drop_ack_checksum)
 *                         bpf_sk_assign_tcp_reqsk with the decoded options, pass
 *                         (backend_reqsk_created / backend_kfunc_<errno>); stacked VLAN
 *                         tags are moved aside for the call and put back
 *                         (backend_ack_vlan when they cannot be)
 */
#define SW_TC 1

#include "lib/common.h"
#include "lib/counters.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/siphash.h"
#include "lib/cookie.h"
#include "lib/csum.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The kfunc's attributes (include/net/tcp.h since Linux 6.9). Checked against the kernel's BTF:
 * 20 bytes, reserved[] must be zero.
 */
struct bpf_tcp_req_attrs {
	__u32 rcv_tsval;
	__u32 rcv_tsecr;
	__u16 mss;
	__u8 rcv_wscale;
	__u8 snd_wscale;
	__u8 ecn_ok;
	__u8 wscale_ok;
	__u8 sack_ok;
	__u8 tstamp_ok;
	__u8 usec_ts_ok;
	__u8 reserved[3];
};

_Static_assert(sizeof(struct bpf_tcp_req_attrs) == 20, "struct bpf_tcp_req_attrs is 20 bytes");

/*
 * The kernel's socket, opaque here. libbpf matches the kfunc's prototype against the kernel's
 * BTF kind by kind, and a forward declaration (BTF FWD) does not match a struct: so a body.
 */
struct sock {
	__u8 opaque;
};

extern int bpf_sk_assign_tcp_reqsk(struct __sk_buff *skb, struct sock *sk,
				   struct bpf_tcp_req_attrs *attrs, int attrs__sz) __ksym;

#define SW_BPF_TCP_LISTEN 10
#define SW_BPF_TCP_TIME_WAIT 6

/* engine::kfunc_counter */
SW_INLINE enum sw_counter sw_kfunc_counter(int ret)
{
	switch (-ret) {
	case 0:
		return SW_BACKEND_REQSK_CREATED;
	case SW_EINVAL:
		return SW_BACKEND_KFUNC_EINVAL;
	case SW_ENOMEM:
		return SW_BACKEND_KFUNC_ENOMEM;
	case SW_ENETUNREACH:
		return SW_BACKEND_KFUNC_ENETUNREACH;
	default:
		return SW_BACKEND_KFUNC_EOTHER;
	}
}

/* The decoded cookie as the kernel wants it (decode + Engine::backend_tcp's ReqAttrs). */
SW_INLINE void sw_req_attrs(struct bpf_tcp_req_attrs *a, const struct sw_config *cfg,
			    const struct sw_frame *f, const struct sw_tcp_opts *o,
			    struct sw_opt_bits bits)
{
	__u8 w = sw_bits_wscale_field(bits);
	int wscale_ok = w != SW_WSCALE_NONE;

	__builtin_memset(a, 0, sizeof(*a));
	a->rcv_tsval = o->has_timestamps ? o->tsval : 0;
	a->rcv_tsecr = o->has_timestamps ? o->tsecr : 0;
	a->mss = sw_mss_table(cfg, f->family)[sw_bits_mss_index(bits)];
	a->rcv_wscale = wscale_ok ? cfg->wscale : 0;
	a->snd_wscale = wscale_ok ? w : 0;
	a->ecn_ok = sw_bits_ecn(bits);
	a->wscale_ok = wscale_ok;
	a->sack_ok = sw_bits_sack(bits);
	a->tstamp_ok = sw_bits_timestamps(bits);
	a->usec_ts_ok = 0;
}

/* sw_assign_stacked_vlan: nothing changed, or the frame could not be put back as it came. */
#define SW_VLAN_UNTOUCHED 1
#define SW_VLAN_NOT_RESTORED 2

/*
 * A valid cookie ACK with stacked tags, at tc ingress of the lower device: the kernel has moved
 * the outer tag into the skb's metadata, the inner one is still in the frame, and skb->protocol
 * is the inner tag's type, which bpf_sk_assign_tcp_reqsk refuses (-EINVAL). So: move the inner
 * tag into the metadata too (bpf_skb_vlan_pop replaces the outer one there; skb->protocol becomes
 * IP), call the kfunc, and put the outer tag back (bpf_skb_vlan_push moves the inner one back into
 * the frame): the skb goes on exactly as it came, carrying its request socket, to the VLAN
 * devices that take its tags off. Returns the kfunc's result, or SW_VLAN_UNTOUCHED (not one tag
 * in the metadata and one in the frame: left alone), or SW_VLAN_NOT_RESTORED.
 */
SW_INLINE int sw_assign_stacked_vlan(struct __sk_buff *skb, const struct sw_frame *f,
				     struct tcp_sock *tsk, struct bpf_tcp_req_attrs *attrs)
{
	__u32 outer_proto = skb->vlan_proto, outer_tci = skb->vlan_tci;
	int ret;

	if (!skb->vlan_present || f->l3 != SW_ETH_HLEN + SW_VLAN_TAG_LEN)
		return SW_VLAN_UNTOUCHED;
	if (bpf_skb_vlan_pop(skb) || (skb->protocol != bpf_htons(SW_ETHERTYPE_IPV4) &&
				      skb->protocol != bpf_htons(SW_ETHERTYPE_IPV6))) {
		/* Whatever the pop left, the outer tag goes back where it was. */
		if (bpf_skb_vlan_push(skb, outer_proto, outer_tci))
			return SW_VLAN_NOT_RESTORED;
		return SW_VLAN_UNTOUCHED;
	}
	ret = bpf_sk_assign_tcp_reqsk(skb, (struct sock *)tsk, attrs, sizeof(*attrs));
	if (bpf_skb_vlan_push(skb, outer_proto, outer_tci))
		return SW_VLAN_NOT_RESTORED;
	return ret;
}

/* Engine::backend_tcp from the socket lookup on: `sk` is a listener (a reference we release). */
SW_INLINE int sw_listener_ack(struct __sk_buff *skb, struct bpf_sock *sk,
			      const struct sw_frame *f)
{
	struct bpf_tcp_req_attrs attrs;
	struct sw_config *cfg;
	struct sw_clock *clk;
	struct sw_tcp_opts o;
	struct sw_opt_bits bits;
	struct tcp_sock *tsk;
	int ret;

	/*
	 * No socket from a fragment: its checksum cannot be checked here, and the kernel would
	 * first reassemble it.
	 */
	if (f->fragment) {
		bpf_sk_release(sk);
		return sw_verdict(SW_TC_ACT_SHOT, SW_DROP_ACK_FRAGMENT);
	}
	if (sw_tcp_options(skb, f, &o)) {
		bpf_sk_release(sk);
		return sw_verdict(SW_TC_ACT_SHOT, SW_DROP_ACK_OPTIONS);
	}
	cfg = sw_get_config();
	clk = sw_get_clock();
	if (!cfg || !clk) {
		bpf_sk_release(sk);
		return sw_verdict(SW_TC_ACT_OK, SW_PASS_NO_STATE);
	}
	ret = sw_validate_ring(clk, bpf_ktime_get_tai_ns(), f, &o, &bits);
	if (ret == SW_COOKIE_STALE) {
		/*
		 * No salts for the live epoch: nothing can be judged. The edges pass SYNs to the
		 * kernel meanwhile, and it checks the ACKs of its own syncookies.
		 */
		bpf_sk_release(sk);
		return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_ACK_PASS_STALE);
	}
	if (ret != SW_COOKIE_VALID) {
		bpf_sk_release(sk);
		if (cfg->auto_enabled)
			/*
			 * Auto mode: the kernel answers SYNs too, and when its SYN queue overflows it
			 * sends its own syncookies, whose ACKs find only the listener. It checks them.
			 */
			return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_ACK_PASS_AUTO);
		return sw_verdict(SW_TC_ACT_SHOT, SW_BACKEND_ACK_INVALID);
	}
	/* The kernel would discard a segment with a bad checksum: create nothing from it. */
	if (!sw_skb_csum_trusted(skb) && !sw_tcp_checksum_ok(skb, f)) {
		bpf_sk_release(sk);
		return sw_verdict(SW_TC_ACT_SHOT, SW_DROP_ACK_CHECKSUM);
	}
	sw_req_attrs(&attrs, cfg, f, &o, bits);
	tsk = bpf_skc_to_tcp_sock(sk);
	if (!tsk) {
		/* A listener is always a full TCP socket; count the impossible as a kfunc error. */
		bpf_sk_release(sk);
		return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_KFUNC_EOTHER);
	}
	if (skb->protocol != bpf_htons(SW_ETHERTYPE_IPV4) &&
	    skb->protocol != bpf_htons(SW_ETHERTYPE_IPV6)) {
		ret = sw_assign_stacked_vlan(skb, f, tsk, &attrs);
		bpf_sk_release(sk);
		if (ret == SW_VLAN_UNTOUCHED)
			return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_ACK_VLAN);
		if (ret == SW_VLAN_NOT_RESTORED)
			return sw_verdict(SW_TC_ACT_SHOT, SW_BACKEND_ACK_VLAN);
		return sw_verdict(SW_TC_ACT_OK, sw_kfunc_counter(ret));
	}
	ret = bpf_sk_assign_tcp_reqsk(skb, (struct sock *)tsk, &attrs, sizeof(attrs));
	bpf_sk_release(sk);
	return sw_verdict(SW_TC_ACT_OK, sw_kfunc_counter(ret));
}

/*
 * An ACK whose 4-tuple is in TIME_WAIT: the kernel would have recycled the TIME_WAIT socket on a
 * SYN, but the SYN went to the edge. If this is a cookie ACK, count it (the client stalls until
 * the TIME_WAIT ends); either way the kernel gets it, as it would without synwall.
 */
SW_INLINE int sw_timewait_ack(struct __sk_buff *skb, const struct sw_frame *f)
{
	struct sw_clock *clk;
	struct sw_tcp_opts o;
	struct sw_opt_bits bits;

	clk = sw_get_clock();
	if (clk && !sw_tcp_options(skb, f, &o) &&
	    sw_validate_ring(clk, bpf_ktime_get_tai_ns(), f, &o, &bits) == SW_COOKIE_VALID)
		return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_ACK_TIMEWAIT);
	return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_ESTABLISHED);
}

SEC("tc")
int sw_backend(struct __sk_buff *skb)
{
	struct bpf_sock_tuple tuple;
	struct bpf_sock *sk;
	struct sw_frame f;
	__u32 tuple_size;
	int r;

	__builtin_memset(&f, 0, sizeof(f));
	r = sw_parse(skb, &f);
	if ((r >> 8) == SW_PARSED_PASS)
		return sw_verdict(SW_TC_ACT_OK, r & 0xff);
	if ((r >> 8) != SW_PARSED_TCP)
		return sw_verdict(SW_TC_ACT_SHOT, r & 0xff);
	if ((f.flags & (SW_TCP_SYN | SW_TCP_ACK)) == SW_TCP_SYN) {
		/* A SYN hidden in a fragment never reaches the kernel's listener either. */
		if (f.fragment)
			return sw_verdict(SW_TC_ACT_SHOT, SW_DROP_SYN_FRAGMENT);
		return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_SYN_PASS);
	}
	if ((f.flags & (SW_TCP_ACK | SW_TCP_SYN | SW_TCP_RST)) != SW_TCP_ACK)
		return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_PASS_OTHER);

	__builtin_memset(&tuple, 0, sizeof(tuple));
	if (f.family == SW_FAMILY_V4) {
		tuple.ipv4.saddr = f.src[0];
		tuple.ipv4.daddr = f.dst[0];
		tuple.ipv4.sport = bpf_htons(f.sport);
		tuple.ipv4.dport = bpf_htons(f.dport);
		tuple_size = sizeof(tuple.ipv4);
	} else {
		__builtin_memcpy(tuple.ipv6.saddr, f.src, 16);
		__builtin_memcpy(tuple.ipv6.daddr, f.dst, 16);
		tuple.ipv6.sport = bpf_htons(f.sport);
		tuple.ipv6.dport = bpf_htons(f.dport);
		tuple_size = sizeof(tuple.ipv6);
	}
	sk = bpf_skc_lookup_tcp(skb, &tuple, tuple_size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_NO_LISTENER);
	if (sk->state == SW_BPF_TCP_TIME_WAIT) {
		bpf_sk_release(sk);
		return sw_timewait_ack(skb, &f);
	}
	if (sk->state != SW_BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return sw_verdict(SW_TC_ACT_OK, SW_BACKEND_ESTABLISHED);
	}
	return sw_listener_ack(skb, sk, &f);
}
