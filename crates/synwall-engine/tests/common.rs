//! Test helpers: SYN frames built by etherparse (an independent builder), and the engine set up
//! with every address protected.
#![allow(dead_code)]

use etherparse::{PacketBuilder, TcpOptionElement};
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_engine::{Engine, EngineConfig, Salts, Service, ServiceSet};

pub const MASTER: [u8; 32] = [0x42; 32];
pub const EPOCH: u64 = 30_000_000;
/// Epoch length of these tests, seconds.
pub const P: u64 = 60;
/// The middle of epoch `EPOCH` on the engine's clock (TAI = UNIX time here), milliseconds: the
/// salts of [`keys`] are the ones a node holds then.
pub const NOW_MS: u64 = EPOCH * P * 1000 + P * 500;

pub fn keys() -> EpochKeys {
    EpochKeys::derive(&MasterSecret(MASTER), EPOCH)
}

/// A ring holding `K_EPOCH` and `K_{EPOCH-1}`, epochs of `P` seconds.
pub fn salts() -> Salts {
    Salts::from_keys(&keys(), P)
}

pub fn all_services() -> ServiceSet {
    ServiceSet::new(vec![
        "0.0.0.0/0:1-65535".parse::<Service>().unwrap(),
        "[::/0]:1-65535".parse::<Service>().unwrap(),
    ])
}

pub fn engine() -> Engine {
    Engine::new(EngineConfig::new(all_services()), salts())
}

#[derive(Clone, Debug)]
pub struct SynSpec {
    pub v6: bool,
    pub vlans: u8,
    pub src4: [u8; 4],
    pub dst4: [u8; 4],
    pub src6: [u8; 16],
    pub dst6: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub isn: u32,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack: bool,
    pub ts: Option<u32>,
    pub ece_cwr: bool,
    pub payload: Vec<u8>,
}

impl Default for SynSpec {
    fn default() -> Self {
        SynSpec {
            v6: false,
            vlans: 0,
            src4: [192, 0, 2, 10],
            dst4: [198, 51, 100, 80],
            src6: [
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ],
            dst6: [
                0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80,
            ],
            sport: 40000,
            dport: 443,
            isn: 0x0102_0304,
            mss: Some(1460),
            wscale: Some(7),
            sack: true,
            ts: Some(0x1111_2222),
            ece_cwr: false,
            payload: Vec::new(),
        }
    }
}

pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// A SYN (or, with `ack`, another segment) built by etherparse.
pub fn frame(s: &SynSpec, flags_ack: Option<u32>) -> Vec<u8> {
    let mut opts = Vec::new();
    if let Some(m) = s.mss {
        opts.push(TcpOptionElement::MaximumSegmentSize(m));
    }
    if s.sack {
        opts.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
    }
    if let Some(t) = s.ts {
        opts.push(TcpOptionElement::Timestamp(t, 0));
    }
    if let Some(w) = s.wscale {
        opts.push(TcpOptionElement::Noop);
        opts.push(TcpOptionElement::WindowScale(w));
    }
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, ROUTER_MAC);
    macro_rules! finish {
        ($ip:expr) => {{
            let mut t = $ip.tcp(s.sport, s.dport, s.isn, 64240);
            t = match flags_ack {
                None => t.syn(),
                Some(a) => t.ack(a),
            };
            if s.ece_cwr {
                t = t.ece().cwr();
            }
            let t = t.options(&opts).unwrap();
            let mut out = Vec::new();
            t.write(&mut out, &s.payload).unwrap();
            out
        }};
    }
    let v1 = etherparse::VlanId::try_new(100).unwrap();
    let v2 = etherparse::VlanId::try_new(200).unwrap();
    match (s.vlans, s.v6) {
        (0, false) => finish!(eth.ipv4(s.src4, s.dst4, 64)),
        (0, true) => finish!(eth.ipv6(s.src6, s.dst6, 64)),
        (1, false) => finish!(eth.single_vlan(v1).ipv4(s.src4, s.dst4, 64)),
        (1, true) => finish!(eth.single_vlan(v1).ipv6(s.src6, s.dst6, 64)),
        (_, false) => finish!(eth.double_vlan(v1, v2).ipv4(s.src4, s.dst4, 64)),
        (_, true) => finish!(eth.double_vlan(v1, v2).ipv6(s.src6, s.dst6, 64)),
    }
}

/// Recompute IPv4 header and TCP checksums of an untagged IPv4 frame after a test edits it.
pub fn fix_v4_checksums(f: &mut [u8]) {
    let ihl = ((f[14] & 0xf) as usize) * 4;
    f[24] = 0;
    f[25] = 0;
    let c = synwall_wire::checksum::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    let l4 = 14 + ihl;
    let src: [u8; 4] = f[26..30].try_into().unwrap();
    let dst: [u8; 4] = f[30..34].try_into().unwrap();
    f[l4 + 16] = 0;
    f[l4 + 17] = 0;
    let p = synwall_wire::checksum::pseudo_v4(&src, &dst, 6, (total - ihl) as u16);
    let c = synwall_wire::checksum::finish(synwall_wire::checksum::sum(p, &f[l4..14 + total]));
    f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}
