//! The Linux SYN cookies, bit-exact with `net/ipv4/syncookies.c`, `net/ipv6/syncookies.c` (SipHash
//! versions) and `cookie_init_timestamp` / `cookie_timestamp_decode`.
//!
//! ISN cookie: `h(0,0) + client_isn + (count << 24) + ((h(1,count) + mss_index) & 0xFFFFFF)` where
//! `h(c, n)` is the low 32 bits of SipHash-2-4 under `secret[c]` with the minute counter `n`
//! hashed in, and `count` ticks every 60 s (a cookie lives for two ticks). The MSS index is *added*,
//! which is why Linux accepts some off-by-one ACKs with a lower MSS; that is upstream behaviour and
//! kept on purpose.
//!
//! Timestamp cookie: WScale (4 bits, 0xF = none), SACK (bit 4) and ECN (bit 5) in TSval's low 6 bits.

use crate::{
    Ack, Addrs, Clock, CookieCodec, Decoded, Diagnosis, Flow, Issued, KeysTried, MssTable,
    Rejection, SipKey, Syn,
};

/// Upstream IPv4 MSS table (`msstab` in net/ipv4/syncookies.c).
pub const MSS_TABLE_V4: MssTable<4> = MssTable::new_unchecked([536, 1300, 1440, 1460]);
/// Upstream IPv6 MSS table (`msstab` in net/ipv6/syncookies.c).
pub const MSS_TABLE_V6: MssTable<4> = MssTable::new_unchecked([1220, 1420, 1440, 8940]);
/// `COOKIEBITS`: the counter lives in the top 8 bits.
const COOKIEBITS: u32 = 24;
const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// `MAX_SYNCOOKIE_AGE`.
pub const MAX_SYNCOOKIE_AGE: u32 = 2;
/// `TCP_SYNCOOKIE_PERIOD` in seconds.
pub const SYNCOOKIE_PERIOD_SECS: u64 = 60;
/// `TSBITS`: option bits kept in TSval.
pub const TSBITS: u32 = 6;
/// `TS_OPT_WSCALE_MASK`: also the "no window scaling" value.
pub const TS_OPT_WSCALE_MASK: u32 = 0xf;
/// `TS_OPT_SACK`.
pub const TS_OPT_SACK: u32 = 1 << 4;
/// `TS_OPT_ECN`.
pub const TS_OPT_ECN: u32 = 1 << 5;

/// `syncookie_secret[2]` (or `syncookie6_secret[2]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secrets(pub [SipKey; 2]);

/// `cookie_hash(...)`: the low 32 bits of SipHash-2-4 under `secret[c]` over the flow and `count`.
pub fn cookie_hash(secrets: &Secrets, flow: &Flow, count: u32, c: usize) -> u32 {
    let sport = flow.client_port.to_be_bytes();
    let dport = flow.service_port.to_be_bytes();
    let count = count.to_le_bytes();
    let key = &secrets.0[c];
    match &flow.addrs {
        // siphash_4u32(saddr, daddr, sport << 16 | dport, count): the port word is built from
        // __be16 values on a little-endian host, so the destination port comes first in memory.
        Addrs::V4 { client, service } => {
            let mut m = [0u8; 16];
            m[0..4].copy_from_slice(client);
            m[4..8].copy_from_slice(service);
            m[8..10].copy_from_slice(&dport);
            m[10..12].copy_from_slice(&sport);
            m[12..16].copy_from_slice(&count);
            key.hash(&m) as u32
        }
        // struct { saddr; daddr; u32 count; __be16 sport; __be16 dport; } hashed whole.
        Addrs::V6 { client, service } => {
            let mut m = [0u8; 40];
            m[0..16].copy_from_slice(client);
            m[16..32].copy_from_slice(service);
            m[32..36].copy_from_slice(&count);
            m[36..38].copy_from_slice(&sport);
            m[38..40].copy_from_slice(&dport);
            key.hash(&m) as u32
        }
    }
}

/// The MSS table of the flow's family.
pub fn mss_table(addrs: &Addrs) -> &'static MssTable<4> {
    match addrs {
        Addrs::V4 { .. } => &MSS_TABLE_V4,
        Addrs::V6 { .. } => &MSS_TABLE_V6,
    }
}

/// `__cookie_v{4,6}_init_sequence`: the cookie and the MSS written back to `*mssp`.
pub fn init_sequence(
    secrets: &Secrets,
    flow: &Flow,
    client_isn: u32,
    mss: u16,
    count: u32,
) -> (u32, u16) {
    let table = mss_table(&flow.addrs);
    let mssind = table.index_at_or_below(Some(mss));
    let cookie = cookie_hash(secrets, flow, 0, 0)
        .wrapping_add(client_isn)
        .wrapping_add(count << COOKIEBITS)
        .wrapping_add(
            cookie_hash(secrets, flow, count, 1).wrapping_add(mssind as u32) & COOKIEMASK,
        );
    (cookie, table.value(mssind))
}

/// `__cookie_v{4,6}_check`: the decoded MSS, or 0 for a rejected cookie. `cookie` and `client_isn`
/// are the ACK's `ack_seq - 1` and `seq - 1`; `count` is the validator's minute counter.
pub fn check(secrets: &Secrets, flow: &Flow, cookie: u32, client_isn: u32, count: u32) -> u16 {
    let c = cookie.wrapping_sub(cookie_hash(secrets, flow, 0, 0).wrapping_add(client_isn));
    let diff = count.wrapping_sub(c >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
    if diff >= MAX_SYNCOOKIE_AGE {
        return 0;
    }
    let mssind =
        c.wrapping_sub(cookie_hash(secrets, flow, count.wrapping_sub(diff), 1)) & COOKIEMASK;
    let table = mss_table(&flow.addrs);
    if (mssind as usize) < table.entries().len() {
        table.value(mssind as usize)
    } else {
        0
    }
}

/// `cookie_init_timestamp` in milliseconds: `ts_now` is the millisecond TS clock; the result is the
/// TSval (before truncation to 32 bits). `snd_wscale` is ignored unless `wscale_ok`.
pub fn init_timestamp(
    ts_now: u64,
    wscale_ok: bool,
    snd_wscale: u8,
    sack_ok: bool,
    ecn_ok: bool,
) -> u64 {
    let mut options = if wscale_ok {
        snd_wscale as u32 & TS_OPT_WSCALE_MASK
    } else {
        TS_OPT_WSCALE_MASK
    };
    if sack_ok {
        options |= TS_OPT_SACK;
    }
    if ecn_ok {
        options |= TS_OPT_ECN;
    }
    let mut ts = (ts_now >> TSBITS << TSBITS) | options as u64;
    if ts > ts_now {
        ts = ts.wrapping_sub(1 << TSBITS);
    }
    ts
}

/// The TCP sysctls `cookie_timestamp_decode` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsSysctls {
    /// `net.ipv4.tcp_timestamps`.
    pub timestamps: bool,
    /// `net.ipv4.tcp_sack`.
    pub sack: bool,
    /// `net.ipv4.tcp_window_scaling`.
    pub window_scaling: bool,
}

impl Default for TsSysctls {
    fn default() -> Self {
        TsSysctls {
            timestamps: true,
            sack: true,
            window_scaling: true,
        }
    }
}

/// What `cookie_timestamp_decode` leaves in `tcp_opt` (plus `ecn_ok` as `cookie_tcp_reqsk_alloc`
/// derives it), and its return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TsDecoded {
    /// The function's return value.
    pub ok: bool,
    /// `wscale_ok`.
    pub wscale_ok: bool,
    /// `snd_wscale` (0 unless set).
    pub snd_wscale: u8,
    /// `sack_ok`.
    pub sack_ok: bool,
    /// `saw_tstamp && (tsecr & TS_OPT_ECN)`.
    pub ecn_ok: bool,
}

/// `cookie_timestamp_decode` on the ACK's TSecr (after the kernel's `tsoff`, which is 0 here).
pub fn timestamp_decode(tsecr: u32, saw_tstamp: bool, sysctl: TsSysctls) -> TsDecoded {
    let mut out = TsDecoded::default();
    if !saw_tstamp {
        out.ok = true;
        return out;
    }
    out.ecn_ok = tsecr & TS_OPT_ECN != 0;
    if !sysctl.timestamps {
        return out;
    }
    out.sack_ok = tsecr & TS_OPT_SACK != 0;
    if out.sack_ok && !sysctl.sack {
        return out;
    }
    if tsecr & TS_OPT_WSCALE_MASK == TS_OPT_WSCALE_MASK {
        out.ok = true;
        return out;
    }
    out.wscale_ok = true;
    out.snd_wscale = (tsecr & TS_OPT_WSCALE_MASK) as u8;
    out.ok = sysctl.window_scaling;
    out
}

/// Linux's minute counter for a wall-clock time. (The kernel counts jiffies since boot; any
/// monotonic minute count behaves the same.)
pub fn count_at(unix_secs: u64) -> u32 {
    (unix_secs / SYNCOOKIE_PERIOD_SECS) as u32
}

/// The Linux scheme behind [`CookieCodec`]: ISN cookie for the MSS, timestamp cookie for the rest
/// when the client sent timestamps (as a Linux host with `tcp_syncookies=2` and every option sysctl
/// on answers).
#[derive(Clone, Copy, Debug)]
pub struct Linux {
    /// The two ISN secrets.
    pub secrets: Secrets,
}

impl CookieCodec for Linux {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn generate(&self, syn: &Syn, now: Clock) -> Issued {
        let o = &syn.options;
        let mss = o.mss.unwrap_or(mss_table(&syn.flow.addrs).value(0));
        let (isn, _) = init_sequence(
            &self.secrets,
            &syn.flow,
            syn.isn,
            mss,
            count_at(now.unix_secs),
        );
        let ecn = o.timestamps && o.ece_cwr;
        let tsval = o.timestamps.then(|| {
            let ws = o.wscale.map(|w| w.min(14));
            init_timestamp(now.ms, ws.is_some(), ws.unwrap_or(0), o.sack_permitted, ecn) as u32
        });
        Issued { isn, tsval, ecn }
    }

    fn validate(&self, ack: &Ack, now: Clock) -> Option<Decoded> {
        let cookie = ack.ack.wrapping_sub(1);
        let mss = check(
            &self.secrets,
            &ack.flow,
            cookie,
            ack.seq.wrapping_sub(1),
            count_at(now.unix_secs),
        );
        if mss == 0 {
            return None;
        }
        let ts = timestamp_decode(
            ack.timestamps.map_or(0, |t| t.tsecr),
            ack.timestamps.is_some(),
            TsSysctls::default(),
        );
        ts.ok.then_some(Decoded {
            mss,
            wscale: ts.wscale_ok.then_some(ts.snd_wscale),
            sack_ok: ts.sack_ok,
            tstamp_ok: ack.timestamps.is_some(),
            ecn_ok: ts.ecn_ok,
        })
    }

    fn keys_tried(&self) -> u32 {
        2
    }

    fn mac_bits(&self, _timestamps: bool) -> u32 {
        // Per counter value tried, a blind forgery must hit the counter byte (hidden under h(0,0),
        // 2^-8) and land on one of the 4 MSS indexes in the low 24 bits (2^-22): 2^-30.
        30
    }

    fn diagnose(&self, ack: &Ack, now: Clock) -> Diagnosis {
        let count = count_at(now.unix_secs);
        let tried = KeysTried::Counters {
            now: count,
            accepted: MAX_SYNCOOKIE_AGE,
        };
        if let Some(d) = self.validate(ack, now) {
            return Diagnosis {
                tried,
                result: Ok(d),
            };
        }
        // `check`'s steps: the cookie names the low 8 bits of the counter it was issued at. Too
        // old, and the MSS index decodes under that counter: an expired cookie.
        let flow = &ack.flow;
        let c = ack.ack.wrapping_sub(1).wrapping_sub(
            cookie_hash(&self.secrets, flow, 0, 0).wrapping_add(ack.seq.wrapping_sub(1)),
        );
        let diff = count.wrapping_sub(c >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
        let issued = count.wrapping_sub(diff);
        let mssind = c.wrapping_sub(cookie_hash(&self.secrets, flow, issued, 1)) & COOKIEMASK;
        let result = if diff >= MAX_SYNCOOKIE_AGE
            && (mssind as usize) < mss_table(&flow.addrs).entries().len()
        {
            Rejection::Expired { issued, now: count }
        } else {
            Rejection::MacMismatch { searched: None }
        };
        Diagnosis {
            tried,
            result: Err(result),
        }
    }
}
