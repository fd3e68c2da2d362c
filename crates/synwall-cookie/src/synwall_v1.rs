//! synwall-v1: the cookie of `shared/SPEC.md` sections 2-6.
//!
//! ```text
//!  ISN:   S | WWWW | MMM | H (24 low bits of the MAC)
//!  TSval: clock & 0xFFFFFF00 | E << 7 | 7 more MAC bits      (only when the SYN had timestamps)
//!  MAC  = SipHash-2-4(K_e, client addr · service addr · client port · service port · client ISN · opt · ext)
//!  K_e  = HMAC-SHA256(master, "synwall/v1 salt" || BE64(e))[0..16],  e = floor(unix_time / P)
//! ```
//! The BPF twin of this file is `bpf/lib/cookie.h`: same names, same steps.

use crate::{
    Ack, Addrs, Clock, CookieCodec, Decoded, Diagnosis, Flow, Issued, KeysTried, MssTable,
    Rejection, SipKey, Syn, SynOptions, LANES,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The ASCII label hashed before the epoch number in the key schedule.
pub const SALT_LABEL: &[u8] = b"synwall/v1 salt";
/// Default epoch length in seconds.
pub const DEFAULT_EPOCH_SECONDS: u64 = 60;
/// Default IPv4 MSS table.
pub const DEFAULT_MSS_V4: [u16; 8] = [536, 1200, 1360, 1400, 1440, 1452, 1460, 8960];
/// Default IPv6 MSS table.
pub const DEFAULT_MSS_V6: [u16; 8] = [1220, 1280, 1360, 1420, 1432, 1440, 8940, 65476];
// The window-scale field's values and the MAC messages' lengths, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_synwall_v1.rs"));

/// The 32-byte master secret shared by every node.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterSecret(pub [u8; 32]);

impl core::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MasterSecret(..)")
    }
}

/// The epoch that `unix_secs` falls in, for epochs of `period` seconds (`period` > 0).
#[inline]
pub fn epoch_of(unix_secs: u64, period: u64) -> u64 {
    unix_secs / period
}

/// `K_e`: the 16-byte salt of epoch `epoch` (SPEC section 2).
pub fn derive_salt(master: &MasterSecret, epoch: u64) -> [u8; 16] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&master.0).expect("HMAC takes any key length");
    mac.update(SALT_LABEL);
    mac.update(&epoch.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&full[..16]);
    salt
}

/// The salts a node holds at one time: it generates with `current` (`K_e`) and also accepts
/// `previous` (`K_{e-1}`). This is what userspace writes into the BPF salt map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochKeys {
    /// The epoch `e` these keys belong to.
    pub epoch: u64,
    /// `K_e`.
    pub current: SipKey,
    /// `K_{e-1}` (for epoch 0, the salt of `u64::MAX`: no real cookie was ever issued there).
    pub previous: SipKey,
}

impl EpochKeys {
    /// Derive both salts for `epoch` from the master secret.
    pub fn derive(master: &MasterSecret, epoch: u64) -> Self {
        EpochKeys {
            epoch,
            current: SipKey::from_bytes(&derive_salt(master, epoch)),
            previous: SipKey::from_bytes(&derive_salt(master, epoch.wrapping_sub(1))),
        }
    }
}

/// The largest lag L (SPEC section 2): generators switch to a new epoch's salt this long after the
/// boundary, at most.
pub const MAX_LAG_NS: u64 = 250_000_000;

/// The lag L of epochs `epoch_ns` long: `min(P / 8, 250 ms)`.
pub fn lag_ns(epoch_ns: u64) -> u64 {
    (epoch_ns / 8).min(MAX_LAG_NS)
}

/// The clock rule of the salt ring (docs/SPEC-PROPOSALS.md, section 2): from one reading of the
/// node's TAI clock, which epoch a generator issues cookies in and which a validator accepts. The
/// BPF programs compute exactly this (`bpf/lib/cookie.h`, `sw_generation_epoch` and
/// `sw_validation_epoch`) with the values the daemon writes into `sw_clock`; arithmetic is on
/// `u64` and wraps as the BPF instructions do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpochClock {
    /// `P` in nanoseconds (0: no epoch can be computed: every reading is stale).
    pub epoch_ns: u64,
    /// `L` in nanoseconds ([`lag_ns`]).
    pub lag_ns: u64,
    /// `CLOCK_TAI - CLOCK_REALTIME` in nanoseconds: UNIX time = TAI - this.
    pub tai_offset_ns: i64,
}

/// What a validator accepts at one moment ([`EpochClock::validation`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepts {
    /// `v = e(now)`: the salts of `v` and `v - 1` are accepted.
    pub epoch: u64,
    /// In the last `L` of epoch `v`: the salt of `v + 1` is accepted too (a generator whose clock
    /// is ahead may already issue it).
    pub next: bool,
}

impl EpochClock {
    /// Epochs of `epoch_seconds` (> 0), the lag they imply, and the node's TAI offset.
    pub fn new(epoch_seconds: u64, tai_offset_ns: i64) -> Self {
        let epoch_ns = epoch_seconds.saturating_mul(1_000_000_000);
        EpochClock {
            epoch_ns,
            lag_ns: lag_ns(epoch_ns),
            tai_offset_ns,
        }
    }

    /// UNIX time in nanoseconds at the TAI reading `now_tai_ns`.
    #[inline]
    pub fn unix_ns(&self, now_tai_ns: u64) -> u64 {
        now_tai_ns.wrapping_sub(self.tai_offset_ns as u64)
    }

    /// The epoch whose salt a generator (edge, single node) issues cookies with:
    /// `e(now - L)`; `None` without an epoch length.
    #[inline]
    pub fn generation_epoch(&self, now_tai_ns: u64) -> Option<u64> {
        if self.epoch_ns == 0 {
            return None;
        }
        Some(self.unix_ns(now_tai_ns).wrapping_sub(self.lag_ns) / self.epoch_ns)
    }

    /// The epochs a validator (backend, strict edge) accepts: `v = e(now)` and `v - 1`, and
    /// `v + 1` in the last `L` of `v`; `None` without an epoch length.
    #[inline]
    pub fn validation(&self, now_tai_ns: u64) -> Option<Accepts> {
        if self.epoch_ns == 0 {
            return None;
        }
        let t = self.unix_ns(now_tai_ns);
        let v = t / self.epoch_ns;
        let into = t.wrapping_sub(v.wrapping_mul(self.epoch_ns));
        Some(Accepts {
            epoch: v,
            next: into >= self.epoch_ns.wrapping_sub(self.lag_ns),
        })
    }
}

/// Which options the cookie carries, and the MSS tables. All nodes of a deployment must agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// IPv4 MSS table.
    pub mss_v4: MssTable<8>,
    /// IPv6 MSS table.
    pub mss_v6: MssTable<8>,
    /// Carry SACK-Permitted.
    pub sack: bool,
    /// Carry the window-scale shift.
    pub wscale: bool,
    /// Negotiate timestamps (and use TSval for 7 more MAC bits).
    pub timestamps: bool,
    /// Negotiate ECN (only possible with timestamps).
    pub ecn: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss_v4: MssTable::new_unchecked(DEFAULT_MSS_V4),
            mss_v6: MssTable::new_unchecked(DEFAULT_MSS_V6),
            sack: true,
            wscale: true,
            timestamps: true,
            ecn: true,
        }
    }
}

impl Config {
    /// The MSS table of the flow's family.
    #[inline]
    pub fn mss_table(&self, addrs: &Addrs) -> &MssTable<8> {
        match addrs {
            Addrs::V4 { .. } => &self.mss_v4,
            Addrs::V6 { .. } => &self.mss_v6,
        }
    }
}

/// The two option bytes that enter the MAC: `opt` (the cookie's top byte) and `ext`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OptionBits {
    /// `S<<7 | W<<3 | M`.
    pub opt: u8,
    /// `E<<1 | T`.
    pub ext: u8,
}

impl OptionBits {
    /// SACK bit.
    #[inline]
    pub fn sack(self) -> bool {
        self.opt & 0x80 != 0
    }
    /// The 4-bit `W` field (15 = no window scaling).
    #[inline]
    pub fn wscale_field(self) -> u8 {
        (self.opt >> 3) & 0x0f
    }
    /// The 3-bit MSS index.
    #[inline]
    pub fn mss_index(self) -> usize {
        (self.opt & 0x07) as usize
    }
    /// Timestamps bit.
    #[inline]
    pub fn timestamps(self) -> bool {
        self.ext & 1 != 0
    }
    /// ECN bit.
    #[inline]
    pub fn ecn(self) -> bool {
        self.ext & 2 != 0
    }
}

/// Encode a SYN's options into `opt` and `ext` (SPEC sections 3 and 4).
#[inline(always)]
pub fn encode_options(cfg: &Config, addrs: &Addrs, syn: &SynOptions) -> OptionBits {
    let s = (syn.sack_permitted && cfg.sack) as u8;
    let w = match syn.wscale {
        Some(shift) if cfg.wscale => shift.min(WSCALE_MAX),
        _ => WSCALE_NONE,
    };
    let m = cfg.mss_table(addrs).index_at_or_below(syn.mss) as u8;
    let t = (syn.timestamps && cfg.timestamps) as u8;
    let e = (t == 1 && syn.ece_cwr && cfg.ecn) as u8;
    OptionBits {
        opt: s << 7 | w << 3 | m,
        ext: e << 1 | t,
    }
}

/// The MAC message of SPEC section 5, written into `buf`; returns its length (18 or 42).
#[inline]
pub fn mac_message(
    flow: &Flow,
    client_isn: u32,
    bits: OptionBits,
    buf: &mut [u8; MSG_LEN_V6],
) -> usize {
    let at = match &flow.addrs {
        Addrs::V4 { client, service } => {
            buf[0..4].copy_from_slice(client);
            buf[4..8].copy_from_slice(service);
            8
        }
        Addrs::V6 { client, service } => {
            buf[0..16].copy_from_slice(client);
            buf[16..32].copy_from_slice(service);
            32
        }
    };
    buf[at..at + 2].copy_from_slice(&flow.client_port.to_be_bytes());
    buf[at + 2..at + 4].copy_from_slice(&flow.service_port.to_be_bytes());
    buf[at + 4..at + 8].copy_from_slice(&client_isn.to_be_bytes());
    buf[at + 8] = bits.opt;
    buf[at + 9] = bits.ext;
    at + 10
}

/// The MAC message of [`mac_message`] as SipHash words: full blocks and the final word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacWords {
    /// 18 bytes: two blocks and a 2-byte tail.
    V4([u64; 2], u64),
    /// 42 bytes: five blocks and a 2-byte tail.
    V6([u64; 5], u64),
}

/// Load the MAC message as little-endian words straight from the fields (no byte buffer): the
/// ports and the ISN are big-endian on the wire, so their bytes are swapped in. The BPF C builds
/// the same words from the packet.
#[inline(always)]
pub fn mac_words(flow: &Flow, client_isn: u32, bits: OptionBits) -> MacWords {
    let le32 = |b: &[u8; 4]| u32::from_le_bytes(*b) as u64;
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let ports_isn = u16::from_le_bytes(flow.client_port.to_be_bytes()) as u64
        | (u16::from_le_bytes(flow.service_port.to_be_bytes()) as u64) << 16
        | (u32::from_le_bytes(client_isn.to_be_bytes()) as u64) << 32;
    let tail = bits.opt as u64 | (bits.ext as u64) << 8;
    match &flow.addrs {
        Addrs::V4 { client, service } => MacWords::V4(
            [le32(client) | le32(service) << 32, ports_isn],
            tail | (MSG_LEN_V4 as u64) << 56,
        ),
        Addrs::V6 { client, service } => MacWords::V6(
            [
                le64(&client[..8]),
                le64(&client[8..]),
                le64(&service[..8]),
                le64(&service[8..]),
                ports_isn,
            ],
            tail | (MSG_LEN_V6 as u64) << 56,
        ),
    }
}

/// `MAC = SipHash-2-4(K, msg)`.
#[inline]
pub fn mac(key: &SipKey, flow: &Flow, client_isn: u32, bits: OptionBits) -> u64 {
    match mac_words(flow, client_isn, bits) {
        MacWords::V4(b, last) => key.hash_words(b, last),
        MacWords::V6(b, last) => key.hash_words(b, last),
    }
}

/// Split a message into its blocks (`N` = 2 for IPv4, 5 for IPv6) and final word.
#[inline(always)]
fn words_into<const N: usize>(
    w: MacWords,
    blocks: &mut [[u64; LANES]; N],
    last: &mut [u64; LANES],
    l: usize,
) {
    let (b, t): (&[u64], u64) = match &w {
        MacWords::V4(b, t) => (b, *t),
        MacWords::V6(b, t) => (b, *t),
    };
    for (n, block) in blocks.iter_mut().enumerate() {
        block[l] = b[n];
    }
    last[l] = t;
}

/// MACs of up to [`LANES`] messages under one key: `word(l)` gives message `l`. A full group of
/// one family goes through the batched (SIMD) hash; a mixed or short group one at a time.
#[inline(always)]
fn mac_lanes(
    key: &SipKey,
    n: usize,
    v6: &dyn Fn(usize) -> bool,
    word: impl Fn(usize) -> MacWords,
) -> [u64; LANES] {
    let mut macs = [0u64; LANES];
    let first_v6 = v6(0);
    if n == LANES && (1..LANES).all(|l| v6(l) == first_v6) {
        let mut last = [0u64; LANES];
        if first_v6 {
            let mut blocks = [[0u64; LANES]; 5];
            for l in 0..LANES {
                words_into(word(l), &mut blocks, &mut last, l);
            }
            return key.hash_words_x8(&blocks, &last);
        }
        let mut blocks = [[0u64; LANES]; 2];
        for l in 0..LANES {
            words_into(word(l), &mut blocks, &mut last, l);
        }
        return key.hash_words_x8(&blocks, &last);
    }
    for (l, m) in macs.iter_mut().enumerate().take(n) {
        *m = match word(l) {
            MacWords::V4(b, last) => key.hash_words(b, last),
            MacWords::V6(b, last) => key.hash_words(b, last),
        };
    }
    macs
}

/// `cookie = opt<<24 | (MAC & 0xFFFFFF)`.
#[inline]
pub fn cookie_of(bits: OptionBits, mac: u64) -> u32 {
    (bits.opt as u32) << 24 | (mac as u32 & 0x00ff_ffff)
}

/// `TSval = (clock & 0xFFFFFF00) | E<<7 | ((MAC >> 24) & 0x7F)`.
#[inline]
pub fn tsval_of(clock_ms: u64, bits: OptionBits, mac: u64) -> u32 {
    (clock_ms as u32 & 0xffff_ff00) | (bits.ecn() as u32) << 7 | ((mac >> 24) as u32 & 0x7f)
}

/// Generate the SYN+ACK's ISN (and TSval) for `syn` under salt `key`.
#[inline]
pub fn generate(cfg: &Config, key: &SipKey, syn: &Syn, clock_ms: u64) -> Issued {
    let bits = encode_options(cfg, &syn.flow.addrs, &syn.options);
    issue(key, &syn.flow, syn.isn, bits, clock_ms)
}

/// [`generate`] for option bits already encoded (the engine needs them for the SYN+ACK too).
#[inline]
pub fn issue(
    key: &SipKey,
    flow: &Flow,
    client_isn: u32,
    bits: OptionBits,
    clock_ms: u64,
) -> Issued {
    issued_of(bits, mac(key, flow, client_isn, bits), clock_ms)
}

/// What goes into the SYN+ACK for option bits and their MAC.
#[inline]
fn issued_of(bits: OptionBits, mac: u64, clock_ms: u64) -> Issued {
    Issued {
        isn: cookie_of(bits, mac),
        tsval: bits.timestamps().then(|| tsval_of(clock_ms, bits, mac)),
        ecn: bits.ecn(),
    }
}

/// The option bits an ACK claims: `opt` from its cookie, `ext` from its Timestamps option.
#[inline]
pub fn ack_option_bits(ack: &Ack) -> OptionBits {
    let cookie = ack.ack.wrapping_sub(1);
    let (t, e) = match ack.timestamps {
        Some(ts) => (1u8, ((ts.tsecr >> 7) & 1) as u8),
        None => (0, 0),
    };
    OptionBits {
        opt: (cookie >> 24) as u8,
        ext: e << 1 | t,
    }
}

/// Does `ack` carry a valid cookie under the one salt `key`? (SPEC section 6, one key.)
#[inline]
pub fn check_with_key(key: &SipKey, ack: &Ack, bits: OptionBits) -> bool {
    mac_matches(mac(key, &ack.flow, ack.seq.wrapping_sub(1), bits), ack)
}

/// The options a valid cookie restores (SPEC section 6).
#[inline]
pub fn decode(cfg: &Config, addrs: &Addrs, bits: OptionBits) -> Decoded {
    let w = bits.wscale_field();
    Decoded {
        mss: cfg.mss_table(addrs).value(bits.mss_index()),
        wscale: (w != WSCALE_NONE).then_some(w),
        sack_ok: bits.sack(),
        tstamp_ok: bits.timestamps(),
        ecn_ok: bits.ecn(),
    }
}

/// Validate `ack` against the current and the previous salt.
#[inline]
pub fn validate(cfg: &Config, keys: &EpochKeys, ack: &Ack) -> Option<Decoded> {
    let bits = ack_option_bits(ack);
    if check_with_key(&keys.current, ack, bits) || check_with_key(&keys.previous, ack, bits) {
        Some(decode(cfg, &ack.flow.addrs, bits))
    } else {
        None
    }
}

/// [`generate`] for many SYNs under one salt: `out[i]` answers `syns[i]` (`out` must be as long
/// as `syns`). Groups of [`LANES`] SYNs of one family are MAC'd together, with SIMD where the CPU
/// has it; the results are exactly those of [`generate`].
pub fn generate_batch(cfg: &Config, key: &SipKey, syns: &[Syn], clock_ms: u64, out: &mut [Issued]) {
    assert_eq!(syns.len(), out.len(), "one output per SYN");
    let mut bits = [OptionBits { opt: 0, ext: 0 }; LANES];
    for (syns, out) in syns.chunks(LANES).zip(out.chunks_mut(LANES)) {
        for (b, syn) in bits.iter_mut().zip(syns) {
            *b = encode_options(cfg, &syn.flow.addrs, &syn.options);
        }
        let macs = mac_lanes(key, syns.len(), &|l| syns[l].flow.addrs.is_v6(), |l| {
            mac_words(&syns[l].flow, syns[l].isn, bits[l])
        });
        for (l, o) in out.iter_mut().enumerate() {
            *o = issued_of(bits[l], macs[l], clock_ms);
        }
    }
}

/// Does a MAC computed for `ack` match its cookie (and TSecr)?
#[inline]
fn mac_matches(mac: u64, ack: &Ack) -> bool {
    let cookie = ack.ack.wrapping_sub(1);
    (mac as u32 ^ cookie) & 0x00ff_ffff == 0
        && ack
            .timestamps
            .is_none_or(|ts| ((mac >> 24) as u32 & 0x7f) == (ts.tsecr & 0x7f))
}

/// [`validate`] for many ACKs: `out[i]` for `acks[i]`, exactly as [`validate`] decides, MAC'd in
/// groups of [`LANES`] like [`generate_batch`].
pub fn validate_batch(cfg: &Config, keys: &EpochKeys, acks: &[Ack], out: &mut [Option<Decoded>]) {
    assert_eq!(acks.len(), out.len(), "one output per ACK");
    let mut bits = [OptionBits { opt: 0, ext: 0 }; LANES];
    for (acks, out) in acks.chunks(LANES).zip(out.chunks_mut(LANES)) {
        for (b, ack) in bits.iter_mut().zip(acks) {
            *b = ack_option_bits(ack);
        }
        let v6 = |l: usize| acks[l].flow.addrs.is_v6();
        let word = |l: usize| mac_words(&acks[l].flow, acks[l].seq.wrapping_sub(1), bits[l]);
        let macs = mac_lanes(&keys.current, acks.len(), &v6, word);
        let mut all_ok = true;
        for (l, o) in out.iter_mut().enumerate() {
            let ok = mac_matches(macs[l], &acks[l]);
            all_ok &= ok;
            *o = ok.then(|| decode(cfg, &acks[l].flow.addrs, bits[l]));
        }
        if all_ok {
            continue;
        }
        let macs = mac_lanes(&keys.previous, acks.len(), &v6, word);
        for (l, o) in out.iter_mut().enumerate() {
            if o.is_none() && mac_matches(macs[l], &acks[l]) {
                *o = Some(decode(cfg, &acks[l].flow.addrs, bits[l]));
            }
        }
    }
}

/// How many epochs before the two accepted ones [`diagnose`] searches for the salt a rejected
/// cookie was made with (a day of the default 60 s epochs).
pub const DIAGNOSE_EPOCHS_BEFORE: u64 = 1440;
/// How many epochs after the current one [`diagnose`] searches (a clock ahead of this one).
pub const DIAGNOSE_EPOCHS_AFTER: u64 = 2;

/// [`validate`], explained: the epochs tried and, for an invalid ACK, the most likely reason.
/// Valid exactly when [`validate`] is. For tools: it derives up to
/// [`DIAGNOSE_EPOCHS_BEFORE`] + [`DIAGNOSE_EPOCHS_AFTER`] more salts from `master`.
///
/// The reasons, in the order they are looked for: under an accepted salt, the cookie's 24 bits
/// match but the TSecr does not ([`Rejection::TsecrMismatch`]), or match only with the other
/// timestamp bit ([`Rejection::TimestampsMissing`] / [`Rejection::TimestampsUnexpected`]); the
/// ACK validates under another epoch's salt ([`Rejection::OtherEpoch`]); nothing matches
/// ([`Rejection::MacMismatch`]). A partial match is a 2^-24 event for a random ACK, so a
/// reason may be wrong about one ACK in millions; validity never is.
pub fn diagnose(cfg: &Config, master: &MasterSecret, keys: &EpochKeys, ack: &Ack) -> Diagnosis {
    let e = keys.epoch;
    let tried = KeysTried::Epochs([e, e.wrapping_sub(1)]);
    if let Some(d) = validate(cfg, keys, ack) {
        return Diagnosis {
            tried,
            result: Ok(d),
        };
    }
    let bits = ack_option_bits(ack);
    let isn = ack.seq.wrapping_sub(1);
    let cookie = ack.ack.wrapping_sub(1);
    // Do the cookie's 24 MAC bits match under `key` with timestamp bits `ext`?
    let low24 = |key: &SipKey, ext: u8| {
        let m = mac(key, &ack.flow, isn, OptionBits { opt: bits.opt, ext });
        (m as u32 ^ cookie) & 0x00ff_ffff == 0
    };
    // What is wrong under a salt the validator accepts, if it is the timestamps.
    let partial = |key: &SipKey, epoch: u64| match ack.timestamps {
        // With either ECN bit: the TSecr's MAC bits or its ECN bit are not the TSval's.
        Some(_) if low24(key, 1) || low24(key, 3) => Some(Rejection::TsecrMismatch { epoch }),
        Some(_) if low24(key, 0) => Some(Rejection::TimestampsUnexpected { epoch }),
        None if low24(key, 1) || low24(key, 3) => Some(Rejection::TimestampsMissing { epoch }),
        _ => None,
    };
    let reason = partial(&keys.current, e).or_else(|| partial(&keys.previous, e.wrapping_sub(1)));
    if let Some(r) = reason {
        return Diagnosis {
            tried,
            result: Err(r),
        };
    }
    // Other epochs: the few after the current one, then back from the most recent.
    let first = e.saturating_sub(1).saturating_sub(DIAGNOSE_EPOCHS_BEFORE);
    let last = e.saturating_add(DIAGNOSE_EPOCHS_AFTER);
    let after = (e.saturating_add(1)..=last).filter(|&x| x != e);
    let before = (first..e.saturating_sub(1)).rev();
    for epoch in after.chain(before) {
        let key = SipKey::from_bytes(&derive_salt(master, epoch));
        if check_with_key(&key, ack, bits) || partial(&key, epoch).is_some() {
            return Diagnosis {
                tried,
                result: Err(Rejection::OtherEpoch { epoch }),
            };
        }
    }
    Diagnosis {
        tried,
        result: Err(Rejection::MacMismatch {
            searched: Some((first, last)),
        }),
    }
}

/// synwall-v1 behind [`CookieCodec`]: holds the master secret and the salts of one epoch, and
/// derives other epochs' salts when asked about another time (slow path, for tools).
#[derive(Clone, Debug)]
pub struct SynwallV1 {
    master: MasterSecret,
    period: u64,
    cfg: Config,
    keys: EpochKeys,
}

impl SynwallV1 {
    /// A codec with epochs of `period` seconds (> 0), keys cached for the epoch of `unix_secs`.
    pub fn new(master: MasterSecret, period: u64, cfg: Config, unix_secs: u64) -> Self {
        assert!(period > 0, "epoch length must be positive");
        let keys = EpochKeys::derive(&master, epoch_of(unix_secs, period));
        SynwallV1 {
            master,
            period,
            cfg,
            keys,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The epoch length in seconds.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// The salts for time `unix_secs` (cached when it is the cached epoch).
    #[inline]
    pub fn keys_at(&self, unix_secs: u64) -> EpochKeys {
        // A range check, not a division, on the hot path: the cached epoch covers
        // [epoch * period, (epoch + 1) * period).
        let start = self.keys.epoch.wrapping_mul(self.period);
        if unix_secs.wrapping_sub(start) < self.period {
            self.keys
        } else {
            EpochKeys::derive(&self.master, epoch_of(unix_secs, self.period))
        }
    }
}

impl CookieCodec for SynwallV1 {
    fn name(&self) -> &'static str {
        "synwall-v1"
    }

    fn generate(&self, syn: &Syn, now: Clock) -> Issued {
        generate(&self.cfg, &self.keys_at(now.unix_secs).current, syn, now.ms)
    }

    fn validate(&self, ack: &Ack, now: Clock) -> Option<Decoded> {
        validate(&self.cfg, &self.keys_at(now.unix_secs), ack)
    }

    fn keys_tried(&self) -> u32 {
        2
    }

    fn mac_bits(&self, timestamps: bool) -> u32 {
        if timestamps {
            31
        } else {
            24
        }
    }

    fn diagnose(&self, ack: &Ack, now: Clock) -> Diagnosis {
        diagnose(&self.cfg, &self.master, &self.keys_at(now.unix_secs), ack)
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn lag_is_an_eighth_at_most_250_ms() {
        assert_eq!(lag_ns(S), 125_000_000);
        assert_eq!(lag_ns(2 * S), 250_000_000);
        assert_eq!(lag_ns(60 * S), MAX_LAG_NS);
        assert_eq!(EpochClock::new(60, 0).lag_ns, MAX_LAG_NS);
    }

    #[test]
    fn generators_lag_validators_lead() {
        let c = EpochClock::new(2, 37 * S as i64);
        // TAI is 37 s ahead of UNIX time: the epoch comes from TAI - 37 s.
        let at = |unix_ms: u64| unix_ms * 1_000_000 + 37 * S;
        let acc = |v, next| Some(Accepts { epoch: v, next });
        // Epoch 5 is [10 s, 12 s); the lag is 250 ms.
        assert_eq!(c.generation_epoch(at(10_000)), Some(4));
        assert_eq!(c.generation_epoch(at(10_249)), Some(4));
        assert_eq!(c.generation_epoch(at(10_250)), Some(5));
        assert_eq!(c.validation(at(10_000)), acc(5, false));
        assert_eq!(c.validation(at(11_749)), acc(5, false));
        assert_eq!(c.validation(at(11_750)), acc(5, true));
        assert_eq!(c.validation(at(11_999)), acc(5, true));
        assert_eq!(c.validation(at(12_000)), acc(6, false));
        // Whatever the moment, what a generator whose clock is up to 2L ahead issues is accepted.
        for t in (10_000..14_000).step_by(7) {
            for ahead in [0, 100, 250, 499] {
                let g = c.generation_epoch(at(t + ahead)).unwrap();
                let a = c.validation(at(t)).unwrap();
                assert!(
                    g == a.epoch || g + 1 == a.epoch || (a.next && g == a.epoch + 1),
                    "t={t} ahead={ahead}: generated {g}, accepts {a:?}"
                );
            }
        }
    }

    #[test]
    fn no_epoch_length_is_always_stale_and_arithmetic_wraps() {
        let none = EpochClock::default();
        assert_eq!(none.generation_epoch(123), None);
        assert_eq!(none.validation(123), None);
        // Before the lag has passed since 1970 (or with an offset beyond the clock), u64 wraps
        // as in BPF: a huge epoch no ring holds.
        let c = EpochClock::new(1, 0);
        assert_eq!(c.generation_epoch(0), Some(u64::MAX / S));
        let c = EpochClock::new(1, -5);
        assert_eq!(c.unix_ns(10), 15);
    }
}
