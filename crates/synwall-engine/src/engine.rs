//! Step 2 and 3: decide what to do with a parsed frame and, for a SYN, build the reply.
//!
//! Two hooks, as in the kernel: [`Engine::xdp`] is the edge (and the single node's XDP program),
//! [`Engine::tc`] the backend's tc ingress program. Each returns one verdict and the one counter
//! it incremented.

use crate::auto::AutoState;
use crate::config::EngineConfig;
use crate::counters::{Counter, Counters};
use crate::parse::{parse, Parsed, TcpFrame};
use crate::synack;
use lru::LruCache;
use std::num::NonZeroUsize;
use synwall_cookie::synwall_v1::{self as v1, EpochKeys};
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
    /// The kernel already trusts the TCP checksum (`CHECKSUM_UNNECESSARY`, `csum_valid`, or a
    /// `CHECKSUM_PARTIAL` skb from this host), as `tcp_checksum_init` does: it is not computed.
    pub csum_trusted: bool,
}

impl Skb {
    /// What a test run or a replayed capture gives: `skb->protocol` is the frame's outer EtherType
    /// (`eth_type_trans`, nothing untagged, nothing in the metadata) and the checksum is
    /// unverified (`CHECKSUM_NONE`).
    pub fn of_frame(frame: &[u8]) -> Skb {
        Skb {
            protocol: frame
                .get(ethernet::field::ETHERTYPE)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]])),
            vlan_present: false,
            csum_trusted: false,
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

/// The reference data path. Holds configuration, the current salts, the strict-mode flow cache,
/// the auto-mode state and the counters.
pub struct Engine {
    cfg: EngineConfig,
    keys: EpochKeys,
    cache: LruCache<FlowKey, ()>,
    counters: Counters,
    auto: AutoState,
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
    /// An engine with salts `keys`.
    pub fn new(cfg: EngineConfig, keys: EpochKeys) -> Self {
        let cap = NonZeroUsize::new(cfg.flow_cache.max(1)).expect("non-zero");
        Engine {
            cfg,
            keys,
            cache: LruCache::new(cap),
            counters: Counters::default(),
            auto: AutoState::default(),
        }
    }

    /// Install the salts of another epoch (a rotation).
    pub fn set_keys(&mut self, keys: EpochKeys) {
        self.keys = keys;
    }

    /// The salts in use.
    pub fn keys(&self) -> &EpochKeys {
        &self.keys
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
    /// millisecond clock for TSval; this is [`Engine::xdp_at`] at `clock_ms` whole milliseconds.
    pub fn xdp(&mut self, buf: &mut [u8], len: usize, clock_ms: u64) -> Decision {
        self.decide(buf, len, len, clock_ms.wrapping_mul(1_000_000), clock_ms)
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
        let first = first_buffer.min(len);
        self.decide(buf, len, first, clock_ms.wrapping_mul(1_000_000), clock_ms)
    }

    /// [`Engine::xdp`] with the node's nanosecond clock (`bpf_ktime_get_ns`), the one clock of the
    /// XDP program: the auto mode's SYN rate uses it, TSval its milliseconds (`now_ns / 1e6`).
    pub fn xdp_at(&mut self, buf: &mut [u8], len: usize, now_ns: u64) -> Decision {
        self.decide(buf, len, len, now_ns, now_ns / 1_000_000)
    }

    fn decide(
        &mut self,
        buf: &mut [u8],
        len: usize,
        first_buffer: usize,
        now_ns: u64,
        clock_ms: u64,
    ) -> Decision {
        let f = match parse(&buf[..len], &self.cfg.services) {
            Parsed::Tcp(f) => f,
            Parsed::Pass(c) => return self.count(Verdict::Pass, c),
            Parsed::Drop(c) => return self.count(Verdict::Drop, c),
        };
        if f.flags & (tcp::SYN | tcp::ACK) == tcp::SYN {
            // Never answered from a fragment: the rest of the segment is not here to check.
            if f.fragment {
                return self.count(Verdict::Drop, Counter::DropSynFragment);
            }
            // The checksum and the answer are computed over the first buffer only.
            if f.end > first_buffer {
                return self.count(Verdict::Drop, Counter::DropSynMultibuf);
            }
            return self.answer_syn(buf, len, &f, now_ns, clock_ms);
        }
        if !self.cfg.strict {
            // Cost rule: established traffic is forwarded without a MAC; the backend validates.
            return self.count(Verdict::Pass, Counter::FwdNonSyn);
        }
        let flow = f.flow();
        if self.cache.get(&flow).is_some() {
            return self.count(Verdict::Pass, Counter::StrictFwdCached);
        }
        if f.flags & (tcp::ACK | tcp::SYN | tcp::RST) != tcp::ACK {
            return self.count(Verdict::Drop, Counter::StrictDrop);
        }
        let Some(ack) = Self::ack_of(&buf[..len], &f) else {
            return self.count(Verdict::Drop, Counter::DropAckOptions);
        };
        if v1::validate(&self.cfg.cookie, &self.keys, &ack).is_some() {
            self.cache.put(flow, ());
            self.count(Verdict::Pass, Counter::StrictAckValid)
        } else {
            self.count(Verdict::Drop, Counter::StrictDrop)
        }
    }

    fn answer_syn(
        &mut self,
        buf: &mut [u8],
        len: usize,
        f: &TcpFrame,
        now_ns: u64,
        clock_ms: u64,
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
        let syn = synwall_cookie::Syn {
            flow: f.flow(),
            isn: f.seq,
            options: syn_options(&opts, f.flags),
        };
        let bits = v1::encode_options(&self.cfg.cookie, &syn.flow.addrs, &syn.options);
        let issued = v1::issue(&self.keys.current, &syn.flow, syn.isn, bits, clock_ms);
        let syn_tsval = opts.timestamps.map_or(0, |t| t.0);
        match synack::build(buf, f, bits, &issued, syn_tsval, &self.cfg.server) {
            Some(len) => self.count(Verdict::Tx { len }, Counter::SynAnswered),
            None => self.count(Verdict::Drop, Counter::DropSynackRoom),
        }
    }

    /// The backend's tc ingress program on one frame, with the skb a test run or a replayed
    /// capture gives ([`Skb::of_frame`]). `lookup` plays `bpf_skc_lookup_tcp` for the segment's
    /// 4-tuple; `kfunc` plays `bpf_sk_assign_tcp_reqsk` (its return value: 0 or `-errno`), called
    /// once, for [`BackendVerdict::AssignReqsk`] only. Exactly one counter is incremented: the
    /// decision's, which for a kfunc call is the one its return value names.
    pub fn tc(
        &mut self,
        frame: &[u8],
        lookup: impl FnOnce(&Flow) -> SocketState,
        kfunc: impl FnOnce(&ReqAttrs) -> i32,
    ) -> BackendDecision {
        self.tc_skb(frame, Skb::of_frame(frame), lookup, kfunc)
    }

    /// [`Engine::tc`] with what the program reads from the skb itself.
    pub fn tc_skb(
        &mut self,
        frame: &[u8],
        skb: Skb,
        lookup: impl FnOnce(&Flow) -> SocketState,
        kfunc: impl FnOnce(&ReqAttrs) -> i32,
    ) -> BackendDecision {
        let d = |verdict, counter| BackendDecision { verdict, counter };
        let decision = match parse(frame, &self.cfg.services) {
            Parsed::Pass(c) => d(BackendVerdict::Pass, c),
            Parsed::Drop(c) => d(BackendVerdict::Drop, c),
            Parsed::Tcp(f) => match self.backend_tcp(frame, skb, &f, lookup) {
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
        lookup: impl FnOnce(&Flow) -> SocketState,
    ) -> TcpStep {
        let d = |verdict, counter| TcpStep::Decided(BackendDecision { verdict, counter });
        if f.flags & (tcp::SYN | tcp::ACK) == tcp::SYN {
            // A SYN hidden in a fragment never reaches the kernel's listener either.
            if f.fragment {
                return d(BackendVerdict::Drop, Counter::DropSynFragment);
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
                let valid = Self::ack_of(frame, f)
                    .is_some_and(|ack| v1::validate(&self.cfg.cookie, &self.keys, &ack).is_some());
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
        let Some(ack) = Self::ack_of(frame, f) else {
            return d(BackendVerdict::Drop, Counter::DropAckOptions);
        };
        match v1::validate(&self.cfg.cookie, &self.keys, &ack) {
            // Auto mode: the kernel answers SYNs too, and when its SYN queue overflows it sends
            // its own syncookies, whose ACKs find only the listener. It checks them.
            None if self.cfg.auto.is_some() => d(BackendVerdict::Pass, Counter::BackendAckPassAuto),
            None => d(BackendVerdict::Drop, Counter::BackendAckInvalid),
            // The kernel would discard a segment with a bad checksum: create nothing from it.
            Some(_) if !skb.csum_trusted && !f.tcp_checksum_ok(frame) => {
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
