//! Step 2 and 3: decide what to do with a parsed frame and, for a SYN, build the reply.
//!
//! Two hooks, as in the kernel: [`Engine::xdp`] is the edge (and the single node's XDP program),
//! [`Engine::tc`] the backend's tc ingress program. Each returns one verdict and the one counter
//! it incremented.

use crate::abuse::{BucketKey, BucketState, ClientClass, Gcra};
use crate::auto::AutoState;
use crate::config::EngineConfig;
use crate::counters::{Counter, Counters};
use crate::parse::{parse, Ip, Parsed, TcpFrame};
use crate::salts::{Salts, Validation};
use crate::synack;
use lru::LruCache;
use std::num::NonZeroUsize;
use synwall_cookie::synwall_v1 as v1;
use synwall_cookie::{Ack, Flow, SynOptions, Timestamps};
use synwall_wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use synwall_wire::tcp::{self, TcpOptions, TcpSegment};

/// What the XDP hook does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the rewritten frame (the SYN+ACK, `len` bytes) back out of the interface (`XDP_TX`).
    Tx {
        /// Length of the reply frame.
        len: usize,
    },
    /// Let the frame continue (`XDP_PASS` / `TC_ACT_OK`): forwarded, or untouched.
    Pass,
    /// Drop it (`XDP_DROP` / `TC_ACT_SHOT`).
    Drop,
}

/// A verdict and the counter it incremented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// The counter incremented.
    pub counter: Counter,
}

/// `struct bpf_tcp_req_attrs` (include/linux/bpf.h): what the backend hands the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReqAttrs {
    /// The ACK's TSval.
    pub rcv_tsval: u32,
    /// The ACK's TSecr.
    pub rcv_tsecr: u32,
    /// The client's MSS (table value).
    pub mss: u16,
    /// Our window-scale shift (0 without window scaling).
    pub rcv_wscale: u8,
    /// The client's window-scale shift.
    pub snd_wscale: u8,
    /// ECN negotiated.
    pub ecn_ok: bool,
    /// Window scaling negotiated.
    pub wscale_ok: bool,
    /// SACK permitted.
    pub sack_ok: bool,
    /// Timestamps negotiated.
    pub tstamp_ok: bool,
    /// Microsecond timestamps (never: our TSval clock is in milliseconds).
    pub usec_ts_ok: bool,
}

/// What the backend's socket lookup (`bpf_skc_lookup_tcp`) finds for an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketState {
    /// A socket for this 4-tuple exists (established or a request socket).
    Connection,
    /// The 4-tuple is in TIME_WAIT.
    TimeWait,
    /// Only a listening socket matches.
    ListenerOnly,
    /// Nothing matches.
    None,
}

/// What the backend's program reads from the skb beside the frame's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skb {
    /// `skb->protocol`: the EtherType after the tags the kernel has already taken off the frame.
    /// The kfunc takes only IPv4 and IPv6 skbs; a VLAN type here means a tag is still in the
    /// frame (stacked tags, seen on the lower device).
    pub protocol: u16,
    /// A tag is in the skb's metadata (`skb->vlan_present`): the outer one of stacked tags.
    pub vlan_present: bool,
    /// `skb->ip_summed`, with what `tcp_checksum_init` makes of it.
    pub csum: SkbCsum,
    /// Where the kernel's network header is, counted from the start of the frame the program
    /// sees (`skb->mac_len` at tc ingress): the IP header after Ethernet, or, once Linux has
    /// taken SRv6 encapsulation off and handed the inner packet to the interface again
    /// (`netif_rx`), the inner IP header, while the frame the program sees still starts at the
    /// outer Ethernet header.
    pub network: usize,
}

/// `skb->ip_summed` as the kernel's TCP receive path reads it (`tcp_checksum_init` ->
/// `skb_csum_unnecessary`). `skb->csum_valid` is not here: that path clears it before it
/// looks, so it trusts nothing on its strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkbCsum {
    /// `CHECKSUM_NONE`: nothing verified.
    None,
    /// `CHECKSUM_UNNECESSARY`: the device (or the stack) verified the TCP checksum.
    Unnecessary,
    /// `CHECKSUM_COMPLETE`: the device summed the packet; the kernel still folds the pseudo-header
    /// in and checks, which is the same as computing it.
    Complete,
    /// `CHECKSUM_PARTIAL`: a segment from this host whose checksum is still to be filled in over
    /// the bytes from `start` (`csum_start`, counted from the start of the frame the program
    /// sees; negative: before it).
    Partial {
        /// Where the checksummed part starts.
        start: isize,
    },
}

impl Skb {
    /// What a test run or a replayed capture gives: `skb->protocol` is the frame's outer EtherType
    /// (`eth_type_trans`, nothing untagged, nothing in the metadata), the network header right
    /// after the 14 bytes of Ethernet, and the checksum unverified (`CHECKSUM_NONE`).
    pub fn of_frame(frame: &[u8]) -> Skb {
        Skb {
            protocol: frame
                .get(ethernet::field::ETHERTYPE)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]])),
            vlan_present: false,
            csum: SkbCsum::None,
            network: ethernet::HEADER_LEN,
        }
    }

    /// Does the kernel take the TCP checksum of the segment at `l4` (a frame offset) as good
    /// without computing it? `skb_csum_unnecessary` at the time TCP asks, when `skb->data` is at
    /// the TCP header: `CHECKSUM_UNNECESSARY`, or `CHECKSUM_PARTIAL` whose checksummed part does
    /// not start before the TCP header (`skb_checksum_start_offset >= 0`).
    pub fn tcp_csum_trusted(&self, l4: usize) -> bool {
        match self.csum {
            SkbCsum::Unnecessary => true,
            SkbCsum::Partial { start } => start >= l4 as isize,
            SkbCsum::None | SkbCsum::Complete => false,
        }
    }
}

/// What the tc hook does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendVerdict {
    /// `TC_ACT_OK` untouched.
    Pass,
    /// `TC_ACT_SHOT`.
    Drop,
    /// `bpf_sk_assign_tcp_reqsk` was called with these attributes, then `TC_ACT_OK`; the counter
    /// is [`kfunc_counter`] of its return value.
    AssignReqsk(ReqAttrs),
}

/// A backend verdict and the counter incremented (for `AssignReqsk`, the one the kfunc's
/// return value names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendDecision {
    /// What to do.
    pub verdict: BackendVerdict,
    /// The counter incremented.
    pub counter: Counter,
}

/// The segment's source: the client of the budgets and the lists.
fn client_addr(f: &TcpFrame) -> std::net::IpAddr {
    match f.ip {
        Ip::V4 { src, .. } => src.into(),
        Ip::V6 { src, .. } => src.into(),
    }
}

/// Where the backend's decision on a TCP segment stands.
enum TcpStep {
    /// Decided, counter and all.
    Decided(BackendDecision),
    /// The kfunc, called with these attributes, decides (its return value names the counter).
    Kfunc(ReqAttrs),
}

// The errno values the backend tells apart, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_engine.rs"));

/// The counter for a `bpf_sk_assign_tcp_reqsk` return value.
pub fn kfunc_counter(ret: i32) -> Counter {
    match -ret {
        0 => Counter::BackendReqskCreated,
        EINVAL => Counter::BackendKfuncEinval,
        ENOMEM => Counter::BackendKfuncEnomem,
        ENETUNREACH => Counter::BackendKfuncEnetunreach,
        _ => Counter::BackendKfuncEother,
    }
}

/// The strict-mode flow cache key: (family, addresses, ports) of the client-to-service direction.
pub type FlowKey = Flow;

/// A table of budget buckets keyed by client prefix (an LRU, as the BPF maps).
pub type BucketTable = LruCache<BucketKey, BucketState>;

/// The reference data path. Holds configuration, the salts (the ring and its clock rule), the
/// strict-mode flow cache (probation and protected segments), the auto-mode state, the budgets'
/// buckets and the counters. Every call takes the node's TAI clock (`bpf_ktime_get_tai_ns`): it
/// picks the salts, and gives TSval its milliseconds, auto mode its windows and the budgets their
/// buckets (one clock read per SYN; `abuse` on steps of the clock).
pub struct Engine {
    cfg: EngineConfig,
    salts: Salts,
    /// Strict mode's probation segment: flows whose handshake ACK validated.
    cache: LruCache<FlowKey, ()>,
    /// Strict mode's protected segment: flows that carried data since (`None`: no promotion).
    promoted: Option<LruCache<FlowKey, ()>>,
    counters: Counters,
    auto: AutoState,
    /// Reflection budget buckets per client prefix.
    budgets: BucketTable,
    /// Strict mode's new-flow budget buckets per client prefix.
    flow_budgets: BucketTable,
    /// The node's cap.
    node_bucket: BucketState,
}

/// Take one event from `key`'s bucket at `now` (`sw_budget_take` in `bpf/lib/abuse.h`): a bucket
/// the table does not hold starts full; a refused event is counted in the bucket.
pub fn take_from(table: &mut BucketTable, key: BucketKey, g: Gcra, now: u64) -> bool {
    match table.get_mut(&key) {
        None => {
            table.put(
                key,
                BucketState {
                    tat: g.first(now),
                    ..BucketState::default()
                },
            );
            true
        }
        Some(st) => take_bucket(st, g, now),
    }
}

/// One event at `now` against one bucket.
pub fn take_bucket(st: &mut BucketState, g: Gcra, now: u64) -> bool {
    match g.step(st.tat, now) {
        Some(tat) => {
            st.tat = tat;
            true
        }
        None => {
            st.drops += 1;
            st.last_drop_ns = now;
            false
        }
    }
}

/// The SYN options a cookie carries, from parsed TCP options and flags.
pub fn syn_options(opts: &TcpOptions, flags: u8) -> SynOptions {
    SynOptions {
        mss: opts.mss,
        wscale: opts.wscale,
        sack_permitted: opts.sack_permitted,
        timestamps: opts.timestamps.is_some(),
        ece_cwr: flags & (tcp::ECE | tcp::CWR) == tcp::ECE | tcp::CWR,
    }
}

impl Engine {
    /// An engine with `salts`.
    pub fn new(cfg: EngineConfig, salts: Salts) -> Self {
        let cap = |n: usize| NonZeroUsize::new(n.max(1)).expect("non-zero");
        Engine {
            cache: LruCache::new(cap(cfg.flow_cache)),
            promoted: (cfg.promoted_cache > 0).then(|| LruCache::new(cap(cfg.promoted_cache))),
            budgets: LruCache::new(cap(cfg.budget_prefixes)),
            flow_budgets: LruCache::new(cap(cfg.budget_prefixes)),
            node_bucket: BucketState::default(),
            cfg,
            salts,
            counters: Counters::default(),
            auto: AutoState::default(),
        }
    }

    /// The reflection budget's buckets.
    pub fn budgets(&self) -> &BucketTable {
        &self.budgets
    }

    /// The new-flow budget's buckets (strict mode).
    pub fn flow_budgets(&self) -> &BucketTable {
        &self.flow_budgets
    }

    /// The node cap's bucket.
    pub fn node_bucket(&self) -> &BucketState {
        &self.node_bucket
    }

    /// Forget every budget bucket (as emptying the BPF maps does): every prefix starts full.
    pub fn clear_budgets(&mut self) {
        self.budgets.clear();
        self.flow_budgets.clear();
        self.node_bucket = BucketState::default();
    }

    /// Is the flow in the flow cache's protected segment (promoted)?
    pub fn is_promoted(&self, flow: &FlowKey) -> bool {
        self.promoted.as_ref().is_some_and(|p| p.contains(flow))
    }

    /// Is the flow in the flow cache's probation segment?
    pub fn is_on_probation(&self, flow: &FlowKey) -> bool {
        self.cache.contains(flow)
    }

    /// Replace the salts (ring and clock).
    pub fn set_salts(&mut self, salts: Salts) {
        self.salts = salts;
    }

    /// The salts.
    pub fn salts(&self) -> &Salts {
        &self.salts
    }

    /// The salts, to write slots or change the clock as the daemon writes the maps.
    pub fn salts_mut(&mut self) -> &mut Salts {
        &mut self.salts
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The auto-mode state (all zero while auto mode is off).
    pub fn auto_state(&self) -> &AutoState {
        &self.auto
    }

    fn count(&mut self, verdict: Verdict, counter: Counter) -> Decision {
        self.counters.inc(counter);
        Decision { verdict, counter }
    }

    /// The ACK as the cookie validator sees it; `None` if its options are malformed.
    fn ack_of(frame: &[u8], f: &TcpFrame) -> Option<Ack> {
        let opts = TcpSegment::new_unchecked(f.segment(frame)).options().ok()?;
        Some(Ack {
            flow: f.flow(),
            seq: f.seq,
            ack: f.ack,
            timestamps: opts
                .timestamps
                .map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
        })
    }

    /// The edge's XDP program on one frame: `buf[..len]` is the frame; a SYN+ACK is written into
    /// `buf` in place (it needs up to [`synack::MAX_SYNACK_LEN`] bytes). `clock_ms` is the node's
    /// TAI clock in milliseconds; this is [`Engine::xdp_at`] at `clock_ms` whole milliseconds.
    pub fn xdp(&mut self, buf: &mut [u8], len: usize, clock_ms: u64) -> Decision {
        let now_ns = clock_ms.wrapping_mul(1_000_000);
        self.decide(buf, len, len, now_ns, now_ns)
    }

    /// [`Engine::xdp`] on a multi-buffer frame (XDP `frags`): its first buffer holds
    /// `buf[..first_buffer]`, the rest is in fragments. Only a SYN's answer cares: its whole
    /// segment must be in the first buffer.
    pub fn xdp_frags(
        &mut self,
        buf: &mut [u8],
        len: usize,
        first_buffer: usize,
        clock_ms: u64,
    ) -> Decision {
        self.xdp_frags_at(buf, len, first_buffer, clock_ms.wrapping_mul(1_000_000))
    }

    /// [`Engine::xdp_frags`] with the clock given twice: `budget_ns` for the budgets and `now_ns`
    /// for the rest (the programs read one TAI clock for both). For a test that reads the
    /// program's TSval back (milliseconds) but times the budgets by its own reading of the clock.
    pub fn xdp_clocks(
        &mut self,
        buf: &mut [u8],
        len: usize,
        first_buffer: usize,
        budget_ns: u64,
        now_ns: u64,
    ) -> Decision {
        let first = first_buffer.min(len);
        self.decide(buf, len, first, now_ns, budget_ns)
    }

    /// What the deny and allow lists say about the segment's client.
    fn classify(&self, f: &TcpFrame) -> ClientClass {
        if self.cfg.lists.is_empty() {
            return ClientClass::default();
        }
        self.cfg.lists.classify(&client_addr(f))
    }

    /// [`Engine::xdp_frags`] with the clock in nanoseconds.
    pub fn xdp_frags_at(
        &mut self,
        buf: &mut [u8],
        len: usize,
        first_buffer: usize,
        now_ns: u64,
    ) -> Decision {
        let first = first_buffer.min(len);
        self.decide(buf, len, first, now_ns, now_ns)
    }

    /// [`Engine::xdp`] with the node's TAI clock in nanoseconds (`bpf_ktime_get_tai_ns`), the one
    /// clock of the XDP program: it picks the salt, auto mode's SYN rate uses it, TSval its
    /// milliseconds (`now_ns / 1e6`).
    pub fn xdp_at(&mut self, buf: &mut [u8], len: usize, now_ns: u64) -> Decision {
        self.decide(buf, len, len, now_ns, now_ns)
    }

    fn decide(
        &mut self,
        buf: &mut [u8],
        len: usize,
        first_buffer: usize,
        now_ns: u64,
        budget_ns: u64,
    ) -> Decision {
        let f = match parse(&buf[..len], &self.cfg.services) {
            Parsed::Tcp(f) => f,
            Parsed::Pass(c) => return self.count(Verdict::Pass, c),
            Parsed::Drop(c) => return self.count(Verdict::Drop, c),
        };
        // The deny list holds for every segment to a protected service (SPEC 10).
        let class = self.classify(&f);
        if class.denied {
            return self.count(Verdict::Drop, Counter::DropDenied);
        }
        if f.flags & (tcp::SYN | tcp::ACK) == tcp::SYN {
            // Never answered from a fragment: the rest of the segment is not here to check.
            if f.fragment {
                return self.count(Verdict::Drop, Counter::DropSynFragment);
            }
            // The checksum and the answer are computed over the first buffer only.
            if f.end > first_buffer {
                return self.count(Verdict::Drop, Counter::DropSynMultibuf);
            }
            return self.answer_syn(buf, len, &f, now_ns, budget_ns, class.allowed);
        }
        if !self.cfg.strict {
            // Cost rule: established traffic is forwarded without a MAC; the backend validates.
            return self.count(Verdict::Pass, Counter::FwdNonSyn);
        }
        let flow = f.flow();
        // Promoted flows first: most of a strict edge's traffic.
        if let Some(p) = self.promoted.as_mut() {
            if p.get(&flow).is_some() {
                return self.count(Verdict::Pass, Counter::StrictFwdCached);
            }
        }
        if self.cache.get(&flow).is_some() {
            // Data after the handshake: the flow is real, and new flows may no longer evict it.
            if let (Some(p), true) = (self.promoted.as_mut(), f.end > f.l4 + f.tcp_header_len) {
                p.put(flow, ());
                self.cache.pop(&flow);
                return self.count(Verdict::Pass, Counter::StrictFwdPromoted);
            }
            return self.count(Verdict::Pass, Counter::StrictFwdCached);
        }
        if f.flags & (tcp::ACK | tcp::SYN | tcp::RST) != tcp::ACK {
            return self.strict_reject(now_ns);
        }
        let Some(ack) = Self::ack_of(&buf[..len], &f) else {
            return self.count(Verdict::Drop, Counter::DropAckOptions);
        };
        match self.salts.validate(&self.cfg.cookie, &ack, now_ns) {
            Validation::Valid(_) => {
                // Within its prefix's budget of new flows (SPEC 10); the allow list is exempt.
                if let (Some(b), false) = (self.cfg.flow_budget, class.allowed) {
                    let key = self.cfg.client_prefix.key(&client_addr(&f));
                    if !take_from(&mut self.flow_budgets, key, b.gcra(), budget_ns) {
                        return self.count(Verdict::Drop, Counter::DropFlowBudget);
                    }
                }
                self.cache.put(flow, ());
                self.count(Verdict::Pass, Counter::StrictAckValid)
            }
            // Without salts nothing can be judged here (the backend still validates), nor in
            // the grace after: passed, and cached, so a connection the kernel behind made
            // meanwhile is not cut when salts come back.
            Validation::Stale => {
                self.cache.put(flow, ());
                self.count(Verdict::Pass, Counter::StrictPassStale)
            }
            Validation::Invalid if self.salts.strict_passes(now_ns) => {
                self.cache.put(flow, ());
                self.count(Verdict::Pass, Counter::StrictPassStale)
            }
            Validation::Invalid => self.count(Verdict::Drop, Counter::StrictDrop),
        }
    }

    /// Strict mode on a segment that is no handshake ACK of an unknown flow: dropped, unless the
    /// ring has no salts for the live epoch or has had them only for a moment (then the flow may
    /// be one the kernel behind made while the edge passed SYNs: fail-safe).
    fn strict_reject(&mut self, now_ns: u64) -> Decision {
        if self.salts.strict_passes(now_ns) {
            return self.count(Verdict::Pass, Counter::StrictPassStale);
        }
        self.count(Verdict::Drop, Counter::StrictDrop)
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_syn(
        &mut self,
        buf: &mut [u8],
        len: usize,
        f: &TcpFrame,
        now_ns: u64,
        budget_ns: u64,
        allowed: bool,
    ) -> Decision {
        if f.flags & (tcp::RST | tcp::FIN) != 0 {
            return self.count(Verdict::Drop, Counter::DropSynFlags);
        }
        let opts = match TcpSegment::new_unchecked(f.segment(&buf[..len])).options() {
            Ok(o) => o,
            Err(_) => return self.count(Verdict::Drop, Counter::DropSynOptions),
        };
        if !f.checksums_ok(&buf[..len]) {
            return self.count(Verdict::Drop, Counter::DropSynChecksum);
        }
        if let Some(auto) = &self.cfg.auto {
            if !self.auto.on_syn(auto, now_ns) {
                // No attack: the kernel answers, and the handshake needs no cookie.
                return self.count(Verdict::Pass, Counter::AutoSynPass);
            }
        }
        // The salts only where a MAC is computed; none for this epoch: the kernel answers.
        let Some(salt) = self.salts.generation(now_ns) else {
            return self.count(Verdict::Pass, Counter::SynPassStale);
        };
        let key = salt.current;
        // The reflection budgets: the client prefix's, then the node's (a SYN its prefix may not
        // have answered takes nothing from the node). The allow list is exempt from both.
        if !allowed {
            if let Some(b) = self.cfg.budget {
                let prefix = self.cfg.client_prefix.key(&client_addr(f));
                if !take_from(&mut self.budgets, prefix, b.gcra(), budget_ns) {
                    return self.count(Verdict::Drop, Counter::DropSynBudget);
                }
            }
            if let Some(b) = self.cfg.node_budget {
                if !take_bucket(&mut self.node_bucket, b.gcra(), budget_ns) {
                    return self.count(Verdict::Drop, Counter::DropSynNodeCap);
                }
            }
        }
        let syn = synwall_cookie::Syn {
            flow: f.flow(),
            isn: f.seq,
            options: syn_options(&opts, f.flags),
        };
        let bits = v1::encode_options(&self.cfg.cookie, &syn.flow.addrs, &syn.options);
        let issued = v1::issue(&key, &syn.flow, syn.isn, bits, now_ns / 1_000_000);
        let syn_tsval = opts.timestamps.map_or(0, |t| t.0);
        match synack::build(buf, f, bits, &issued, syn_tsval, &self.cfg.server) {
            Some(len) if allowed => self.count(Verdict::Tx { len }, Counter::SynAnsweredAllowed),
            Some(len) => self.count(Verdict::Tx { len }, Counter::SynAnswered),
            None => self.count(Verdict::Drop, Counter::DropSynackRoom),
        }
    }

    /// The backend's tc ingress program on one frame, with the skb a test run or a replayed
    /// capture gives ([`Skb::of_frame`]), at `clock_ms` (the node's TAI clock, milliseconds).
    /// `lookup` plays `bpf_skc_lookup_tcp` for the segment's 4-tuple; `kfunc` plays
    /// `bpf_sk_assign_tcp_reqsk` (its return value: 0 or `-errno`), called once, for
    /// [`BackendVerdict::AssignReqsk`] only. Exactly one counter is incremented: the decision's,
    /// which for a kfunc call is the one its return value names.
    pub fn tc(
        &mut self,
        frame: &[u8],
        clock_ms: u64,
        lookup: impl FnOnce(&Flow) -> SocketState,
        kfunc: impl FnOnce(&ReqAttrs) -> i32,
    ) -> BackendDecision {
        self.tc_at(
            frame,
            Skb::of_frame(frame),
            clock_ms.wrapping_mul(1_000_000),
            lookup,
            kfunc,
        )
    }

    /// [`Engine::tc`] with what the program reads from the skb itself.
    pub fn tc_skb(
        &mut self,
        frame: &[u8],
        skb: Skb,
        clock_ms: u64,
        lookup: impl FnOnce(&Flow) -> SocketState,
        kfunc: impl FnOnce(&ReqAttrs) -> i32,
    ) -> BackendDecision {
        self.tc_at(frame, skb, clock_ms.wrapping_mul(1_000_000), lookup, kfunc)
    }

    /// [`Engine::tc_skb`] with the node's TAI clock in nanoseconds (`bpf_ktime_get_tai_ns`).
    pub fn tc_at(
        &mut self,
        frame: &[u8],
        skb: Skb,
        now_ns: u64,
        lookup: impl FnOnce(&Flow) -> SocketState,
        kfunc: impl FnOnce(&ReqAttrs) -> i32,
    ) -> BackendDecision {
        let d = |verdict, counter| BackendDecision { verdict, counter };
        let decision = match parse(frame, &self.cfg.services) {
            Parsed::Pass(c) => d(BackendVerdict::Pass, c),
            Parsed::Drop(c) => d(BackendVerdict::Drop, c),
            Parsed::Tcp(f) => match self.backend_tcp(frame, skb, &f, now_ns, lookup) {
                TcpStep::Decided(decision) => decision,
                TcpStep::Kfunc(attrs) => d(
                    BackendVerdict::AssignReqsk(attrs),
                    kfunc_counter(kfunc(&attrs)),
                ),
            },
        };
        self.counters.inc(decision.counter);
        decision
    }

    /// The decision for a TCP segment, or the attributes of the kfunc call that decides it.
    fn backend_tcp(
        &self,
        frame: &[u8],
        skb: Skb,
        f: &TcpFrame,
        now_ns: u64,
        lookup: impl FnOnce(&Flow) -> SocketState,
    ) -> TcpStep {
        let d = |verdict, counter| TcpStep::Decided(BackendDecision { verdict, counter });
        if f.flags & (tcp::SYN | tcp::ACK) == tcp::SYN {
            // A SYN hidden in a fragment never reaches the kernel's listener either.
            if f.fragment {
                return d(BackendVerdict::Drop, Counter::DropSynFragment);
            }
            // Behind an edge every SYN to a protected service is answered there: one that gets
            // here went around it (the operator's choice, backend.drop_syns).
            if self.cfg.backend_drop_syns {
                return d(BackendVerdict::Drop, Counter::BackendSynDrop);
            }
            return d(BackendVerdict::Pass, Counter::BackendSynPass);
        }
        if f.flags & (tcp::ACK | tcp::SYN | tcp::RST) != tcp::ACK {
            return d(BackendVerdict::Pass, Counter::BackendPassOther);
        }
        match lookup(&f.flow()) {
            SocketState::Connection => return d(BackendVerdict::Pass, Counter::BackendEstablished),
            // The kernel would have recycled the TIME_WAIT socket on the SYN the edge answered:
            // a cookie ACK here is counted (the client stalls until TIME_WAIT ends), and passed.
            SocketState::TimeWait => {
                let valid = Self::ack_of(frame, f).is_some_and(|ack| {
                    matches!(
                        self.salts.validate(&self.cfg.cookie, &ack, now_ns),
                        Validation::Valid(_)
                    )
                });
                let c = if valid {
                    Counter::BackendAckTimewait
                } else {
                    Counter::BackendEstablished
                };
                return d(BackendVerdict::Pass, c);
            }
            SocketState::None => return d(BackendVerdict::Pass, Counter::BackendNoListener),
            SocketState::ListenerOnly => {}
        }
        // No socket from a fragment: its checksum cannot be checked here, and the kernel would
        // first reassemble it.
        if f.fragment {
            return d(BackendVerdict::Drop, Counter::DropAckFragment);
        }
        // SRv6 encapsulation the kernel has not taken off yet: it will, and then hands the inner
        // packet to this interface again (`netif_rx`), with its network header at the inner IP
        // header. The socket is made from that pass, whose skb is the inner packet's.
        if f.inner.is_some_and(|inner| skb.network != inner) {
            return d(BackendVerdict::Pass, Counter::BackendAckPassEncap);
        }
        let Some(ack) = Self::ack_of(frame, f) else {
            return d(BackendVerdict::Drop, Counter::DropAckOptions);
        };
        let valid = match self.salts.validate(&self.cfg.cookie, &ack, now_ns) {
            Validation::Valid(dec) => Some(dec),
            // No salts for the live epoch: nothing can be judged; the edges pass SYNs to the
            // kernel meanwhile, and it checks the ACKs of its own syncookies.
            Validation::Stale => return d(BackendVerdict::Pass, Counter::BackendAckPassStale),
            Validation::Invalid => None,
        };
        match valid {
            // Auto mode: the kernel answers SYNs too, and when its SYN queue overflows it sends
            // its own syncookies, whose ACKs find only the listener. It checks them.
            None if self.cfg.auto.is_some() => d(BackendVerdict::Pass, Counter::BackendAckPassAuto),
            None => d(BackendVerdict::Drop, Counter::BackendAckInvalid),
            // The kernel would discard a segment with a bad checksum: create nothing from it.
            Some(_) if !skb.tcp_csum_trusted(f.l4) && !f.tcp_checksum_ok(frame) => {
                d(BackendVerdict::Drop, Counter::DropAckChecksum)
            }
            Some(_) if !Self::kfunc_takes(skb, f) => {
                d(BackendVerdict::Pass, Counter::BackendAckVlan)
            }
            Some(dec) => {
                let ts = ack.timestamps.unwrap_or(Timestamps { tsval: 0, tsecr: 0 });
                let attrs = ReqAttrs {
                    rcv_tsval: ts.tsval,
                    rcv_tsecr: ts.tsecr,
                    mss: dec.mss,
                    rcv_wscale: if dec.wscale.is_some() {
                        self.cfg.server.wscale
                    } else {
                        0
                    },
                    snd_wscale: dec.wscale.unwrap_or(0),
                    ecn_ok: dec.ecn_ok,
                    wscale_ok: dec.wscale.is_some(),
                    sack_ok: dec.sack_ok,
                    tstamp_ok: dec.tstamp_ok,
                    usec_ts_ok: false,
                };
                TcpStep::Kfunc(attrs)
            }
        }
    }

    /// Can the kfunc take this skb? Only IPv4 / IPv6 ones; stacked tags (one in the metadata, one
    /// in the frame) are moved aside for the call and put back, anything else is left alone.
    fn kfunc_takes(skb: Skb, f: &TcpFrame) -> bool {
        matches!(skb.protocol, ETHERTYPE_IPV4 | ETHERTYPE_IPV6)
            || (skb.vlan_present && f.l3 == ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN)
    }
}
