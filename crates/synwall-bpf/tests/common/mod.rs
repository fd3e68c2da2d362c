//! Shared by the privileged tests: the skip/fail policy, the deployment under test (services,
//! salts), and frames built with etherparse (an independent builder) plus our own raw pieces for
//! what etherparse will not write (long IPv6 extension chains, bad lengths, VLAN stacks).
#![allow(dead_code)]

use etherparse::{
    IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv6Extensions, Ipv6Header, PacketBuilder,
    TcpHeader,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use synwall_cookie::synwall_v1::{self as v1, EpochClock, EpochKeys, MasterSecret};
use synwall_cookie::{Addrs, Flow, SipKey, Syn, SynOptions};
use synwall_engine::{Counter, Counters, EngineConfig, SaltRing, Salts, Service, ServiceSet};

pub const MASTER: [u8; 32] = [0x5a; 32];
/// The epoch the programs under test run in (with epochs of [`P`] seconds: in 2027).
pub const EPOCH: u64 = 500_000;
/// Epoch length of the programs under test, seconds: an hour, so the whole test binary runs
/// within the epoch [`test_clock`] puts it in.
pub const P: u64 = 3600;

pub fn keys() -> EpochKeys {
    EpochKeys::derive(&MasterSecret(MASTER), EPOCH)
}

pub fn keys_at(epoch: u64) -> EpochKeys {
    EpochKeys::derive(&MasterSecret(MASTER), epoch)
}

/// The node's TAI clock now (`bpf_ktime_get_tai_ns` reads the same clock), nanoseconds.
pub fn tai_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we own.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_TAI, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_TAI)");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The clock rule the programs under test run with: epochs of [`P`] seconds, and a TAI offset
/// that puts their UNIX time in the middle of epoch [`EPOCH`] when the test binary started (the
/// programs read the real clock; the offset moves the epochs instead). The same for every test
/// of the binary.
pub fn test_clock() -> EpochClock {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        let want = (EPOCH * P + P / 2) * 1_000_000_000;
        tai_ns() as i64 - want as i64
    });
    EpochClock::new(P, offset)
}

/// The accepted master secret of the ring tests (SPEC 2a).
pub const ACCEPTED: [u8; 32] = [0x77; 32];
/// The ring tests' clock rule: hour-long epochs and a ten-minute lag (the rule takes the lag from
/// the map), so each [`Moment`] is minutes from any switch whatever the test's pace.
pub const EPOCH_S: u64 = 3600;
pub const LAG_S: u64 = 600;
pub const NS: u64 = 1_000_000_000;

/// Where in the epochs the programs' clock stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// The middle of EPOCH: generate EPOCH, accept EPOCH and EPOCH - 1.
    Mid,
    /// The last L of EPOCH: generate EPOCH, accept EPOCH + 1 too.
    Late,
    /// The first L of EPOCH + 1: generate EPOCH still, accept EPOCH + 1 and EPOCH.
    Early,
}

impl Moment {
    pub fn unix_s(self) -> u64 {
        match self {
            Moment::Mid => EPOCH * EPOCH_S + EPOCH_S / 2,
            Moment::Late => (EPOCH + 1) * EPOCH_S - LAG_S / 2,
            Moment::Early => (EPOCH + 1) * EPOCH_S + LAG_S / 2,
        }
    }

    /// The clock rule that puts the programs' UNIX time at this moment now.
    pub fn clock(self) -> EpochClock {
        EpochClock {
            epoch_ns: EPOCH_S * NS,
            lag_ns: LAG_S * NS,
            tai_offset_ns: tai_ns() as i64 - (self.unix_s() * NS) as i64,
        }
    }
}

/// What a node holds mid-[`EPOCH`]: `K_EPOCH` and `K_{EPOCH-1}` in the ring, [`test_clock`].
pub fn salts() -> Salts {
    Salts::new(SaltRing::from_keys(&keys()), test_clock())
}

/// The engine's clock for a frame a program just handled, in TAI milliseconds: now, with the
/// bits of TSval a program's SYN+ACK carries (`tsval & 0xffffff00`, its millisecond clock), so
/// the engine builds the same TSval.
pub fn engine_ms(tsval: Option<u32>) -> u64 {
    let now = tai_ns() / 1_000_000;
    let Some(t) = tsval else { return now };
    // The candidate nearest `now` whose low 32 bits have TSval's top 24.
    let base = (now & !0xffff_ffff) | u64::from(t & 0xffff_ff00) | (now & 0xff);
    [base.wrapping_sub(1 << 32), base, base.wrapping_add(1 << 32)]
        .into_iter()
        .min_by_key(|c| c.abs_diff(now))
        .expect("three candidates")
}

/// Is this a CI run (where a test that cannot load BPF must fail, never skip)?
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `Some(value)`, or: in CI a panic, elsewhere `None` after printing why the test is skipped.
pub fn or_skip<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if in_ci() => panic!("{what}: cannot load BPF in CI (CI=true): {e}"),
        Err(e) => {
            // Straight to stderr: the test harness would swallow eprintln! of a passing test.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {what}: {e}; these tests need root and Linux >= 6.9 with BTF"
            );
            None
        }
    }
}

/// The protected services of every test. Unprotected traffic goes to 192.0.2.0/24, to other
/// ports, and (IPv4) to what only the v4-mapped IPv6 prefix would cover.
pub fn services() -> ServiceSet {
    ServiceSet::new(
        [
            "198.51.100.0/24:80,443,1000-2000",
            "198.51.100.64/26:22,8000-8100",
            "203.0.113.0/24:1-1023",
            "203.0.113.128/25:1024",
            "127.0.0.0/8:1-65535",
            "[2001:db8:1::/48]:443",
            "[2001:db8:1:2::/64]:80,8080",
            "[::ffff:0:0/96]:443",
            "[::1/128]:1-65535",
        ]
        .iter()
        .map(|s| s.parse::<Service>().expect("service"))
        .collect(),
    )
}

pub fn config() -> EngineConfig {
    EngineConfig::new(services())
}

/// The one counter that went up by exactly one between two snapshots.
pub fn single_increment(before: &Counters, after: &Counters) -> Result<Counter, String> {
    let changed: Vec<(Counter, u64)> = after
        .iter()
        .filter_map(|(c, v)| {
            let d = v.wrapping_sub(before.get(c));
            (d != 0).then_some((c, d))
        })
        .collect();
    match changed.as_slice() {
        [(c, 1)] => Ok(*c),
        _ => Err(format!("expected one counter +1, got {changed:?}")),
    }
}

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// One segment to build: everything from L2 to the TCP payload.
#[derive(Clone, Debug)]
pub struct Seg {
    /// VLAN tag protocol identifiers, outermost first (0x8100 / 0x88a8).
    pub vlans: Vec<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// TCP flags byte.
    pub flags: u8,
    pub window: u16,
    /// Raw options, a multiple of 4 bytes, at most 40.
    pub opts: Vec<u8>,
    pub payload: Vec<u8>,
    /// IPv4 options (a multiple of 4, at most 40).
    pub ipv4_opts: Vec<u8>,
    /// IPv4 (more fragments, fragment offset).
    pub frag: (bool, u16),
    /// IPv6 extension headers: (type, body without the next-header byte... see `ext_header`).
    pub ext: Vec<(u8, Vec<u8>)>,
    /// Trailing link-layer padding.
    pub padding: usize,
    /// IP protocol / next header (6 = TCP; anything else gets `payload` as the IP payload).
    pub proto: u8,
}

impl Seg {
    pub fn new(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Self {
        Seg {
            vlans: Vec::new(),
            src,
            dst,
            sport,
            dport,
            seq: 0x0102_0304,
            ack: 0,
            flags,
            window: 64240,
            opts: Vec::new(),
            payload: Vec::new(),
            ipv4_opts: Vec::new(),
            frag: (false, 0),
            ext: Vec::new(),
            padding: 0,
            proto: 6,
        }
    }
}

pub use synwall_wire::tcp::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};

fn tcp_header(s: &Seg) -> TcpHeader {
    let mut t = TcpHeader::new(s.sport, s.dport, s.seq, s.window);
    t.fin = s.flags & FIN != 0;
    t.syn = s.flags & SYN != 0;
    t.rst = s.flags & RST != 0;
    t.psh = s.flags & PSH != 0;
    t.ack = s.flags & ACK != 0;
    t.urg = s.flags & URG != 0;
    t.ece = s.flags & ECE != 0;
    t.cwr = s.flags & CWR != 0;
    t.acknowledgment_number = s.ack;
    t.set_options_raw(&s.opts).expect("options fit");
    t
}

/// The L3 packet (IP header onward) built by etherparse, extension headers spliced in after.
fn l3_packet(s: &Seg) -> Vec<u8> {
    let mut out = Vec::new();
    let ip = match (s.src, s.dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mut h = Ipv4Header::new(0, 64, IpNumber(s.proto), a.octets(), b.octets())
                .expect("ipv4 header");
            h.options = s.ipv4_opts.as_slice().try_into().expect("ipv4 options");
            h.more_fragments = s.frag.0;
            h.fragment_offset = etherparse::IpFragOffset::try_new(s.frag.1).expect("offset");
            IpHeaders::Ipv4(h, Ipv4Extensions::default())
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let h = Ipv6Header {
                traffic_class: 0x28,
                flow_label: etherparse::Ipv6FlowLabel::try_new(0x12345).expect("label"),
                payload_length: 0,
                next_header: IpNumber(s.proto),
                hop_limit: 64,
                source: a.octets(),
                destination: b.octets(),
            };
            IpHeaders::Ipv6(h, Ipv6Extensions::default())
        }
        _ => panic!("mixed families"),
    };
    let b = PacketBuilder::ip(ip);
    if s.proto == 6 {
        b.tcp_header(tcp_header(s))
            .write(&mut out, &s.payload)
            .expect("write");
    } else {
        // Another protocol: etherparse writes UDP; for other numbers the payload stands alone.
        b.udp(s.sport, s.dport)
            .write(&mut out, &s.payload)
            .expect("write");
        match s.src {
            IpAddr::V4(_) => out[9] = s.proto,
            IpAddr::V6(_) => out[6] = s.proto,
        }
    }
    if s.src.is_ipv6() && !s.ext.is_empty() {
        splice_ext(&mut out, &s.ext);
        // RFC 8200 8.1: a routing header with segments left moves the checksum's destination.
        if s.proto == 6 && final_dst_of(&s.ext).is_some() {
            let mut f = vec![0u8; 14];
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&out);
            fix_checksums(&mut f);
            out = f.split_off(14);
        }
    }
    out
}

/// The destination the first routing header of a chain names when it has segments left and a
/// type that names one (2: the home address, 4: segment list[0], both at offset 8).
pub fn final_dst_of(ext: &[(u8, Vec<u8>)]) -> Option<[u8; 16]> {
    let (_, b) = ext.iter().find(|(ty, _)| *ty == 43)?;
    if b.len() >= 24 && b[3] > 0 && (b[2] == 2 || b[2] == 4) {
        b[8..24].try_into().ok()
    } else {
        None
    }
}

/// An IPv6 Fragment header: offset in 8-byte units, M flag.
pub fn frag_header(offset: u16, more: bool) -> (u8, Vec<u8>) {
    let mut b = vec![0u8; 8];
    b[2..4].copy_from_slice(&((offset << 3) | more as u16).to_be_bytes());
    b[4..8].copy_from_slice(&0x0bad_cafeu32.to_be_bytes());
    (44, b)
}

/// An IPv6 routing header of `kind` with `segments_left`, holding `addrs` after its first 8 bytes
/// (an SRH's segment list, list[0] first; a type 2 header's home address).
pub fn routing_header(kind: u8, segments_left: u8, addrs: &[[u8; 16]]) -> (u8, Vec<u8>) {
    let mut b = vec![0u8; 8];
    b[1] = (2 * addrs.len()) as u8;
    b[2] = kind;
    b[3] = segments_left;
    b[4] = addrs.len().saturating_sub(1) as u8;
    for a in addrs {
        b.extend_from_slice(a);
    }
    (43, b)
}

/// Insert IPv6 extension headers between the fixed header and the upper layer. Each entry's
/// bytes are the whole header; its first byte (next header) is overwritten to chain.
fn splice_ext(pkt: &mut Vec<u8>, ext: &[(u8, Vec<u8>)]) {
    let upper = pkt[6];
    let mut chain = Vec::new();
    for (i, (_, body)) in ext.iter().enumerate() {
        let mut b = body.clone();
        b[0] = ext.get(i + 1).map_or(upper, |e| e.0);
        chain.extend_from_slice(&b);
    }
    pkt[6] = ext[0].0;
    let plen = u16::from_be_bytes([pkt[4], pkt[5]]) as usize + chain.len();
    pkt[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    let tail = pkt.split_off(40);
    pkt.extend_from_slice(&chain);
    pkt.extend_from_slice(&tail);
}

/// An extension header of `ty` whose length field says `units` (HBH/routing/dest: 8*(units+1)
/// bytes, AH: 4*(units+2), fragment: 8 bytes with `units` as the low offset bits).
pub fn ext_header(ty: u8, units: u8, rng: &mut SmallRng) -> (u8, Vec<u8>) {
    let len = match ty {
        44 => 8,
        51 => (units as usize + 2) * 4,
        _ => (units as usize + 1) * 8,
    };
    let mut b = vec![0u8; len];
    if ty != 44 {
        b[1] = units;
        if ty == 0 || ty == 60 {
            // PadN over the rest so the options are well-formed.
            if len > 2 {
                b[2] = 1;
                b[3] = (len - 4) as u8;
            }
        }
    } else {
        b[3] = units & 0xf9;
        b[4..8].copy_from_slice(&rng.gen::<u32>().to_be_bytes());
    }
    (ty, b)
}

/// The whole frame.
pub fn build(s: &Seg) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    for (i, tpid) in s.vlans.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&(if s.src.is_ipv4() { 0x0800u16 } else { 0x86dd }).to_be_bytes());
    f.extend_from_slice(&l3_packet(s));
    f.extend(std::iter::repeat_n(0u8, s.padding));
    f
}

fn csum_add(mut acc: u64, data: &[u8]) -> u64 {
    for c in data.chunks(2) {
        acc += (c[0] as u64) << 8 | *c.get(1).unwrap_or(&0) as u64;
    }
    acc
}

fn csum_finish(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Where things are in a frame, walked leniently (any VLAN depth up to 4, any extension header
/// chain that fits): (l3, is_v6, l4, end, proto).
pub fn locate(f: &[u8]) -> Option<(usize, bool, usize, usize, u8)> {
    let mut off = 12;
    let mut et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let mut tags = 0;
    while (et == 0x8100 || et == 0x88a8) && tags < 4 {
        et = u16::from_be_bytes([*f.get(off + 4)?, *f.get(off + 5)?]);
        off += 4;
        tags += 1;
    }
    let l3 = off + 2;
    match et {
        0x0800 => {
            let ihl = (*f.get(l3)? as usize & 0xf) * 4;
            let total = u16::from_be_bytes([*f.get(l3 + 2)?, *f.get(l3 + 3)?]) as usize;
            if ihl < 20 || total < ihl || f.len() < l3 + total {
                return None;
            }
            Some((l3, false, l3 + ihl, l3 + total, f[l3 + 9]))
        }
        0x86dd => {
            let plen = u16::from_be_bytes([*f.get(l3 + 4)?, *f.get(l3 + 5)?]) as usize;
            let end = l3 + 40 + plen;
            if f.len() < end {
                return None;
            }
            let mut nh = f[l3 + 6];
            let mut o = l3 + 40;
            for _ in 0..8 {
                let len = match nh {
                    0 | 43 | 60 => (*f.get(o + 1)? as usize + 1) * 8,
                    44 => 8,
                    51 => (*f.get(o + 1)? as usize + 2) * 4,
                    _ => return Some((l3, true, o, end, nh)),
                };
                if o + len > end {
                    return None;
                }
                nh = f[o];
                o += len;
            }
            None
        }
        _ => None,
    }
}

/// The final destination a routing header in the IPv6 packet at `l3` names (see `final_dst_of`).
pub fn final_dst_in(f: &[u8], l3: usize) -> Option<[u8; 16]> {
    let mut nh = f[l3 + 6];
    let mut o = l3 + 40;
    for _ in 0..8 {
        let len = match nh {
            0 | 60 => (*f.get(o + 1)? as usize + 1) * 8,
            43 => {
                let len = (*f.get(o + 1)? as usize + 1) * 8;
                let h = f.get(o..o + len)?;
                return (len >= 24 && h[3] > 0 && (h[2] == 2 || h[2] == 4))
                    .then(|| h[8..24].try_into().unwrap());
            }
            44 => 8,
            51 => (*f.get(o + 1)? as usize + 2) * 4,
            _ => return None,
        };
        nh = *f.get(o)?;
        o += len;
    }
    None
}

/// Recompute the IPv4 header checksum and the TCP checksum wherever they can be located.
pub fn fix_checksums(f: &mut [u8]) {
    let Some((l3, v6, l4, end, proto)) = locate(f) else {
        return;
    };
    if !v6 {
        f[l3 + 10] = 0;
        f[l3 + 11] = 0;
        let c = csum_finish(csum_add(0, &f[l3..l4]));
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    if proto != 6 || end < l4 + 20 {
        return;
    }
    f[l4 + 16] = 0;
    f[l4 + 17] = 0;
    let len = end - l4;
    let mut acc = if v6 {
        let dst = final_dst_in(f, l3).unwrap_or_else(|| f[l3 + 24..l3 + 40].try_into().unwrap());
        csum_add(csum_add(0, &f[l3 + 8..l3 + 24]), &dst) + len as u64
    } else {
        csum_add(csum_add(0, &f[l3 + 12..l3 + 16]), &f[l3 + 16..l3 + 20]) + len as u64
    };
    acc += 6;
    let c = csum_finish(csum_add(acc, &f[l4..end]));
    f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

/// The TSval of a segment's Timestamps option, if it has one.
pub fn tsval_of(f: &[u8]) -> Option<u32> {
    let (_, _, l4, _, _) = locate(f)?;
    let hl = (*f.get(l4 + 12)? as usize >> 4) * 4;
    let opts = f.get(l4 + 20..l4 + hl)?;
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            k => {
                let l = *opts.get(i + 1)? as usize;
                if l < 2 {
                    return None;
                }
                if k == 8 && l == 10 {
                    return Some(u32::from_be_bytes(opts.get(i + 2..i + 6)?.try_into().ok()?));
                }
                i += l;
            }
        }
    }
    None
}

/// Options as (kind, body) pieces, serialized and padded.
pub fn opts_bytes(items: &[Vec<u8>]) -> Vec<u8> {
    let mut o: Vec<u8> = items.concat();
    o.truncate(40);
    while o.len() % 4 != 0 {
        o.push(0);
    }
    o
}

pub fn opt_mss(m: u16) -> Vec<u8> {
    let b = m.to_be_bytes();
    vec![2, 4, b[0], b[1]]
}

pub fn opt_ws(s: u8) -> Vec<u8> {
    vec![1, 3, 3, s]
}

pub fn opt_sack() -> Vec<u8> {
    vec![4, 2]
}

pub fn opt_ts(val: u32, ecr: u32) -> Vec<u8> {
    let mut v = vec![8, 10];
    v.extend_from_slice(&val.to_be_bytes());
    v.extend_from_slice(&ecr.to_be_bytes());
    v
}

/// The cookie flow of a segment (client = its source).
pub fn flow_of(s: &Seg) -> Flow {
    let addrs = match (s.src, s.dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Addrs::V4 {
            client: a.octets(),
            service: b.octets(),
        },
        (IpAddr::V6(a), IpAddr::V6(b)) => Addrs::V6 {
            client: a.octets(),
            service: b.octets(),
        },
        _ => panic!("mixed families"),
    };
    Flow {
        addrs,
        client_port: s.sport,
        service_port: s.dport,
    }
}

/// The handshake ACK a client sends after `syn` got a cookie from `key`: seq = ISN + 1,
/// ack = cookie + 1, TSecr = our TSval when timestamps were negotiated.
pub fn handshake_ack(
    cfg: &v1::Config,
    key: &synwall_cookie::SipKey,
    syn: &Seg,
    syn_opts: SynOptions,
    clock_ms: u64,
) -> Seg {
    let issued = v1::generate(
        cfg,
        key,
        &Syn {
            flow: flow_of(syn),
            isn: syn.seq,
            options: syn_opts,
        },
        clock_ms,
    );
    let mut a = syn.clone();
    a.flags = ACK;
    a.seq = syn.seq.wrapping_add(1);
    a.ack = issued.isn.wrapping_add(1);
    a.payload.clear();
    a.opts = match issued.tsval {
        Some(t) => opts_bytes(&[vec![1, 1], opt_ts(0x0a0b_0c0d, t)]),
        None => Vec::new(),
    };
    a
}

/// A seeded generator of frames of every kind the programs may meet.
pub struct Gen {
    pub rng: SmallRng,
    /// Flows whose handshake ACK was generated valid (strict mode then sees their data).
    pub flows: Vec<Seg>,
}

pub const V4_PROTECTED: [[u8; 4]; 4] = [
    [198, 51, 100, 7],
    [198, 51, 100, 70],
    [203, 0, 113, 5],
    [203, 0, 113, 200],
];
pub const V4_OTHER: [[u8; 4]; 2] = [[192, 0, 2, 1], [10, 9, 8, 7]];
pub const V6_PROTECTED: [&str; 3] = ["2001:db8:1::80", "2001:db8:1:2::1", "::ffff:198.51.100.7"];
pub const V6_OTHER: [&str; 2] = ["2001:db8:2::1", "fe80::1"];
pub const PORTS: [u16; 12] = [
    80, 443, 1000, 1500, 2000, 2001, 22, 8050, 1023, 1024, 8080, 9,
];

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen {
            rng: SmallRng::seed_from_u64(seed),
            flows: Vec::new(),
        }
    }

    fn dst(&mut self, v6: bool) -> IpAddr {
        let r = &mut self.rng;
        if v6 {
            let pool: &[&str] = if r.gen_bool(0.85) {
                &V6_PROTECTED
            } else {
                &V6_OTHER
            };
            pool[r.gen_range(0..pool.len())].parse().unwrap()
        } else if r.gen_bool(0.85) {
            IpAddr::from(V4_PROTECTED[r.gen_range(0..V4_PROTECTED.len())])
        } else {
            IpAddr::from(V4_OTHER[r.gen_range(0..V4_OTHER.len())])
        }
    }

    fn src(&mut self, v6: bool) -> IpAddr {
        if v6 {
            let mut a = [0u8; 16];
            self.rng.fill(&mut a[..]);
            a[0] = 0x20;
            a[1] = 0x01;
            IpAddr::from(a)
        } else {
            IpAddr::from(self.rng.gen::<[u8; 4]>())
        }
    }

    /// A destination that is a protected service.
    fn protected(&mut self, v6: bool) -> (IpAddr, u16) {
        let r = &mut self.rng;
        if v6 {
            let (a, ports): (&str, &[u16]) = [
                ("2001:db8:1::80", &[443][..]),
                ("2001:db8:1:2::1", &[80, 8080, 443][..]),
                ("::ffff:198.51.100.7", &[443][..]),
            ][r.gen_range(0..3)];
            (a.parse().unwrap(), ports[r.gen_range(0..ports.len())])
        } else {
            match r.gen_range(0..4) {
                0 => (
                    [198, 51, 100, 7],
                    [80, 443, r.gen_range(1000..=2000)][r.gen_range(0..3)],
                ),
                1 => (
                    [198, 51, 100, 70],
                    [22, r.gen_range(8000..=8100), 80][r.gen_range(0..3)],
                ),
                2 => ([203, 0, 113, 5], r.gen_range(1..=1023)),
                _ => (
                    [203, 0, 113, 200],
                    [1024, r.gen_range(1..=1023)][r.gen_range(0..2)],
                ),
            }
            .pipe(|(a, p)| (IpAddr::from(a), p))
        }
    }

    fn port(&mut self) -> u16 {
        if self.rng.gen_bool(0.8) {
            PORTS[self.rng.gen_range(0..PORTS.len())]
        } else {
            self.rng.gen()
        }
    }

    /// Random SYN options (well-formed or not) and what a well-formed list means.
    pub fn syn_options(&mut self) -> (Vec<u8>, SynOptions) {
        let r = &mut self.rng;
        let mut items: Vec<Vec<u8>> = Vec::new();
        let mut o = SynOptions::default();
        let n = r.gen_range(0..7);
        for _ in 0..n {
            match r.gen_range(0..12) {
                0..=1 => {
                    let m = if r.gen_bool(0.5) {
                        [536, 1200, 1220, 1440, 1452, 1460, 8960, 65476, 100][r.gen_range(0..9)]
                            + r.gen_range(0..2)
                    } else {
                        r.gen()
                    };
                    items.push(opt_mss(m));
                    o.mss = Some(m);
                }
                2..=3 => {
                    let s = r.gen_range(0..20);
                    items.push(opt_ws(s));
                    o.wscale = Some(s);
                }
                4..=5 => {
                    items.push(opt_sack());
                    o.sack_permitted = true;
                }
                6..=7 => {
                    items.push(opt_ts(r.gen(), r.gen()));
                    o.timestamps = true;
                }
                8 => items.push(vec![1]),
                // Unknown option, or a known kind with the wrong length (ignored).
                9 => {
                    let l = r.gen_range(2..8);
                    let mut v = vec![if r.gen() { 30 } else { 2 }, l];
                    v.extend((2..l).map(|_| r.gen::<u8>()));
                    items.push(v);
                }
                // Malformed: length 0 or 1, or running past the end.
                10 => items.push(vec![r.gen_range(2..40), r.gen_range(0..2)]),
                _ => items.push(vec![0]),
            }
        }
        (opts_bytes(&items), o)
    }

    /// A segment of a random kind. Handshake ACKs carry cookies made with one of `keys` (or, one
    /// in ten, with a salt no node holds).
    pub fn segment(&mut self, cfg: &v1::Config, keys: &[SipKey]) -> Seg {
        let v6 = self.rng.gen_bool(0.4);
        let (src, sport) = (self.src(v6), self.rng.gen_range(1024..65535));
        let (dst, dport) = if self.rng.gen_bool(0.7) {
            self.protected(v6)
        } else {
            (self.dst(v6), self.port())
        };
        let kind = self.rng.gen_range(0..100);
        let mut s = Seg::new(src, dst, sport, dport, SYN);
        s.seq = self.rng.gen();
        s.vlans = match self.rng.gen_range(0..10) {
            0..=5 => vec![],
            6..=7 => vec![0x8100],
            8 => vec![0x88a8, 0x8100],
            _ => match self.rng.gen_range(0..3) {
                0 => vec![0x8100, 0x8100],
                1 => vec![0x88a8, 0x8100, 0x8100],
                _ => vec![0x88a8],
            },
        };
        match kind {
            // SYNs (some with ECE/CWR, PSH, a payload).
            0..=39 => {
                let (opts, _) = self.syn_options();
                s.opts = opts;
                if self.rng.gen_bool(0.3) {
                    s.flags |= ECE | CWR;
                }
                if self.rng.gen_bool(0.1) {
                    s.flags |= [PSH, URG, ECE, CWR][self.rng.gen_range(0..4)];
                }
                if self.rng.gen_bool(0.1) {
                    s.payload = (0..self.rng.gen_range(1..300))
                        .map(|_| self.rng.gen())
                        .collect();
                }
            }
            // Handshake ACKs carrying a real cookie (current or previous salt, or a stale one).
            40..=64 => {
                let mut items = vec![];
                let mut so = SynOptions::default();
                if self.rng.gen() {
                    let m = self.rng.gen_range(500..9000);
                    items.push(opt_mss(m));
                    so.mss = Some(m);
                }
                if self.rng.gen() {
                    items.push(opt_sack());
                    so.sack_permitted = true;
                }
                if self.rng.gen() {
                    items.push(opt_ts(self.rng.gen(), 0));
                    so.timestamps = true;
                }
                if self.rng.gen() {
                    let w = self.rng.gen_range(0..16);
                    items.push(opt_ws(w));
                    so.wscale = Some(w);
                }
                so.ece_cwr = self.rng.gen();
                s.opts = opts_bytes(&items);
                let known = !keys.is_empty() && self.rng.gen_range(0..10) < 9;
                let key = if known {
                    keys[self.rng.gen_range(0..keys.len())]
                } else {
                    keys_at(EPOCH + 7).current
                };
                let clock = self.rng.gen::<u32>() as u64;
                s = handshake_ack(cfg, &key, &s, so, clock);
                match self.rng.gen_range(0..10) {
                    0 => s.ack ^= 1 << self.rng.gen_range(0..32),
                    1 => s.payload = b"GET / HTTP/1.1\r\n".to_vec(),
                    2 => s.flags |= PSH,
                    3 if !s.opts.is_empty() => {
                        // Damage TSecr's MAC bits or its E bit.
                        let i = s.opts.len() - 1;
                        s.opts[i] ^= 1 << self.rng.gen_range(0..8);
                    }
                    _ => {}
                }
                if self.rng.gen_bool(0.05) {
                    // Malformed options on the ACK.
                    s.opts = vec![1, 1, 8, 1];
                }
                if known {
                    self.flows.push(s.clone());
                    if self.flows.len() > 64 {
                        self.flows.remove(0);
                    }
                }
            }
            // Data of a flow seen before (strict mode: cached).
            65..=74 if !self.flows.is_empty() => {
                let i = self.rng.gen_range(0..self.flows.len());
                s = self.flows[i].clone();
                s.flags = ACK | PSH;
                s.seq = s.seq.wrapping_add(self.rng.gen_range(0..10_000));
                s.payload = (0..self.rng.gen_range(0..200))
                    .map(|_| self.rng.gen())
                    .collect();
                if self.rng.gen_bool(0.2) {
                    s.flags = [FIN | ACK, RST, RST | ACK, ACK][self.rng.gen_range(0..4)];
                }
            }
            // Other segments: data, FIN, RST, SYN+ACK, SYN+RST, SYN+FIN, no flags.
            65..=89 => {
                s.flags = [
                    ACK,
                    ACK | PSH,
                    FIN | ACK,
                    RST,
                    RST | ACK,
                    SYN | ACK,
                    SYN | RST,
                    SYN | FIN,
                    0,
                    FIN,
                    URG | ACK,
                ][self.rng.gen_range(0..11)];
                s.ack = self.rng.gen();
                if self.rng.gen() {
                    s.opts = opts_bytes(&[vec![1, 1], opt_ts(self.rng.gen(), self.rng.gen())]);
                } else if self.rng.gen_bool(0.3) {
                    s.opts = self.syn_options().0;
                }
                s.payload = (0..self.rng.gen_range(0..100))
                    .map(|_| self.rng.gen())
                    .collect();
            }
            // Not TCP.
            90..=94 => {
                s.proto = [17, 1, 58, 132][self.rng.gen_range(0..4)];
                s.payload = (0..self.rng.gen_range(0..64))
                    .map(|_| self.rng.gen())
                    .collect();
            }
            // SYN behind IP options or a fragment.
            _ => {
                s.opts = opts_bytes(&[opt_mss(1460), opt_sack()]);
            }
        }
        // IPv4 options (source routes among them), fragments (offsets overlapping the TCP header
        // among them); IPv6 extension chains (fragments with and without headers after them,
        // routing headers of every kind, some naming a protected final destination behind an
        // unprotected outer one).
        // (A flow seen before may be of the other family.)
        let v6 = s.src.is_ipv6();
        if !v6 && self.rng.gen_bool(0.1) {
            s.ipv4_opts = self.ipv4_options();
        }
        if !v6 && self.rng.gen_bool(0.08) {
            let offset = [0, 0, 1, 2, 3, 100, 8191][self.rng.gen_range(0..7)];
            s.frag = (self.rng.gen(), offset);
        }
        if v6 && self.rng.gen_bool(0.25) {
            s.ext = self.ext_chain();
            if s.ext.iter().any(|(ty, _)| *ty == 43) && self.rng.gen() {
                s.dst = V6_OTHER[self.rng.gen_range(0..V6_OTHER.len())]
                    .parse()
                    .unwrap();
            }
        }
        // Frames longer than a test run's first buffer (multi-buffer on the edge), and jumbo
        // data segments.
        if self.rng.gen_bool(0.02) {
            s.payload = (0..self.rng.gen_range(3000..9000))
                .map(|_| self.rng.gen())
                .collect();
        }
        if self.rng.gen_bool(0.1) {
            s.padding = self.rng.gen_range(1..24);
        }
        s
    }

    /// A list of IPv4 options, padded to 4 bytes: NOPs, EOLs, record route, timestamps, router
    /// alert, loose and strict source routes, and malformed ones (length 0 or 1, past the end).
    pub fn ipv4_options(&mut self) -> Vec<u8> {
        let r = &mut self.rng;
        let mut o: Vec<u8> = Vec::new();
        for _ in 0..r.gen_range(1..=4) {
            let addr = if r.gen() {
                [198, 51, 100, 7]
            } else {
                [192, 0, 2, 1]
            };
            match r.gen_range(0..11) {
                0..=1 => o.push(1),
                2 => o.extend([7, 7, 4, 0, 0, 0, 0]),
                3 => o.extend([68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                4 => o.extend([148, 4, 0, 0]),
                5 => o.extend([131, 7, 4].into_iter().chain(addr)),
                6 => o.extend([137, 7, 4].into_iter().chain(addr)),
                7 => o.push(0),
                8 => o.extend([r.gen_range(2..200), r.gen_range(0..2)]),
                9 => o.extend([68, r.gen_range(20..60)]),
                _ => o.extend([131, r.gen_range(3..12), 4]),
            }
        }
        o.truncate(40);
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }

    /// 1 to 8 IPv6 extension headers: hop-by-hop, destination options, AH, fragments (offset 0,
    /// overlapping, or not; M or not), routing headers (types 0, 2, 3, 4; segments left 0 or not;
    /// segment list[0] protected or not).
    pub fn ext_chain(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        for _ in 0..self.rng.gen_range(1..=8) {
            let units = self.rng.gen_range(0..4);
            let h = match self.rng.gen_range(0..10) {
                0 => ext_header(0, units, &mut self.rng),
                1..=2 => ext_header(60, units, &mut self.rng),
                3 => ext_header(51, units, &mut self.rng),
                4..=6 => {
                    let offset = [0, 0, 0, 1, 2, 3, 100, 8191][self.rng.gen_range(0..8)];
                    frag_header(offset, self.rng.gen())
                }
                _ => {
                    let kind = [0, 2, 3, 4, 4, 4][self.rng.gen_range(0..6)];
                    let sl = [0, 0, 1, 2][self.rng.gen_range(0..4)];
                    let addrs: Vec<[u8; 16]> = (0..self.rng.gen_range(1..=3))
                        .map(|_| {
                            let pool: &[&str] = if self.rng.gen_bool(0.6) {
                                &V6_PROTECTED
                            } else {
                                &V6_OTHER
                            };
                            let a: std::net::Ipv6Addr =
                                pool[self.rng.gen_range(0..pool.len())].parse().unwrap();
                            a.octets()
                        })
                        .collect();
                    routing_header(kind, sl, &addrs)
                }
            };
            out.push(h);
        }
        out
    }

    /// A frame: a segment, then with some probability mutated (bytes flipped, fields bent,
    /// truncated, or a non-IP EtherType), with checksums sometimes fixed afterwards so the
    /// mutation reaches past the checksum checks. Never shorter than 14 bytes (test runs refuse).
    pub fn frame(&mut self, cfg: &v1::Config, keys: &[SipKey]) -> (Vec<u8>, &'static str) {
        let s = self.segment(cfg, keys);
        let mut f = build(&s);
        let r = self.rng.gen_range(0..100);
        let label = match r {
            0..=69 => "built",
            70..=79 => {
                for _ in 0..self.rng.gen_range(1..4) {
                    let i = self.rng.gen_range(12..f.len());
                    f[i] ^= 1 << self.rng.gen_range(0..8);
                }
                "bytes flipped"
            }
            80..=89 => {
                if let Some((l3, v6, l4, _, _)) = locate(&f) {
                    match self.rng.gen_range(0..6) {
                        0 if !v6 => f[l3] = (f[l3] & 0xf0) | self.rng.gen_range(0..16),
                        1 if !v6 => {
                            let d = self.rng.gen_range(0..80u16);
                            let t = u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]);
                            f[l3 + 2..l3 + 4].copy_from_slice(&t.wrapping_add(d).to_be_bytes());
                        }
                        2 if v6 => {
                            let t = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]);
                            let t = if self.rng.gen() { 0 } else { t.wrapping_add(8) };
                            f[l3 + 4..l3 + 6].copy_from_slice(&t.to_be_bytes());
                        }
                        3 if f.len() > l4 + 12 => {
                            f[l4 + 12] = self.rng.gen_range(0..16) << 4;
                        }
                        4 => f[l3] = (f[l3] & 0x0f) | self.rng.gen::<u8>() << 4,
                        _ if f.len() > l4 + 22 => {
                            // An option length byte.
                            f[l4 + 21] = self.rng.gen_range(0..50);
                        }
                        _ => {}
                    }
                }
                "field bent"
            }
            90..=97 => {
                let n = self.rng.gen_range(14..=f.len());
                f.truncate(n);
                "truncated"
            }
            _ => {
                let et = [0x0806u16, 0x8847, 0x88cc, 0x0800, 0x86dd][self.rng.gen_range(0..5)];
                f[12..14].copy_from_slice(&et.to_be_bytes());
                "ethertype"
            }
        };
        if label != "built" && self.rng.gen_bool(0.5) {
            fix_checksums(&mut f);
        }
        (f, label)
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

trait Pipe: Sized {
    fn pipe<R>(self, f: impl FnOnce(Self) -> R) -> R {
        f(self)
    }
}
impl<T> Pipe for T {}

/// Every SYN size from 54 to 120 bytes, IPv4 and IPv6, with 0, 1 and 2 VLAN tags (the sizes a
/// family and tag count allow): options and a few payload bytes fill the size, so the answer is
/// longer than some SYNs and shorter than others.
pub fn syn_sizes(rng: &mut SmallRng) -> Vec<(Vec<u8>, String)> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        for tags in 0..=2usize {
            let min = 14 + 4 * tags + if v6 { 40 } else { 20 } + 20;
            for size in 54..=120usize {
                if size < min {
                    continue;
                }
                let extra = size - min;
                let opt_len = (extra / 4 * 4).min(40);
                let (src, dst): (IpAddr, IpAddr) = if v6 {
                    (
                        "2001:db8:ffff::10".parse().unwrap(),
                        "2001:db8:1::80".parse().unwrap(),
                    )
                } else {
                    (
                        "192.0.2.10".parse().unwrap(),
                        "198.51.100.7".parse().unwrap(),
                    )
                };
                let mut s = Seg::new(src, dst, rng.gen_range(1024..65535), 443, SYN);
                s.seq = rng.gen();
                s.vlans = [0x88a8, 0x8100][2 - tags..].to_vec();
                // Options that fit opt_len: picked from the usual ones, then NOP/EOL padding.
                let mut items: Vec<Vec<u8>> = Vec::new();
                let mut len = 0;
                for cand in [
                    opt_sack(),
                    opt_ws(rng.gen_range(0..15)),
                    opt_mss(1460),
                    opt_ts(rng.gen(), 0),
                ] {
                    if rng.gen_bool(0.7) && len + cand.len() <= opt_len {
                        len += cand.len();
                        items.push(cand);
                    }
                }
                let mut opts: Vec<u8> = items.concat();
                while opts.len() < opt_len {
                    opts.push(if rng.gen() { 1 } else { 0 });
                }
                s.opts = opts;
                s.payload = vec![0x42; extra - opt_len];
                let f = build(&s);
                assert_eq!(f.len(), size);
                out.push((f, format!("SYN of {size} bytes (v6 {v6}, {tags} tags)")));
            }
        }
    }
    out
}

/// A raw socket on `ifname` that receives every frame.
pub struct Raw {
    fd: i32,
    ifindex: i32,
}

impl Raw {
    pub fn open(ifname: &str) -> Raw {
        let c = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: plain libc calls; the descriptor is closed on drop.
        unsafe {
            let ifindex = libc::if_nametoindex(c.as_ptr()) as i32;
            assert!(ifindex > 0, "no {ifname}");
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex;
            let r = libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            Raw { fd, ifindex }
        }
    }

    pub fn send(&self, frame: &[u8]) {
        // SAFETY: sending from a buffer we own to an address we built.
        unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = self.ifindex;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&frame[..6]);
            let n = libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert!(n >= 0, "sendto: {}", std::io::Error::last_os_error());
        }
    }

    /// The next received frame that `want` accepts, within `limit`.
    pub fn recv_matching(&self, limit: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let start = Instant::now();
        let mut buf = vec![0u8; 16384];
        while start.elapsed() < limit {
            // SAFETY: receiving into a buffer we own.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 && want(&buf[..n as usize]) {
                return Some(buf[..n as usize].to_vec());
            }
        }
        None
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: our descriptor.
        unsafe { libc::close(self.fd) };
    }
}
