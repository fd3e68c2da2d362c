//! The engine's tests' SYN description ([`SynSpec`]: the fields a SYN's answer depends on, built
//! into a frame by the test kit's builder) and the engine set up with every address protected.

use std::net::IpAddr;
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{Engine, EngineConfig, Salts, Verdict};
use synwall_testkit::deploy::{all_services, EPOCH};
pub use synwall_testkit::deploy::{keys, MASTER};
use synwall_testkit::frame::{opt_mss, opt_sack, opt_ts, opt_ws, opts_bytes, stack, Frame};
use synwall_testkit::frame::{ACK, CWR, ECE, SYN};

/// Epoch length of these tests, seconds.
pub const P: u64 = 60;
/// The middle of epoch `EPOCH` on the engine's clock (TAI = UNIX time here), milliseconds: the
/// salts of [`keys`] are the ones a node holds then.
pub const NOW_MS: u64 = EPOCH * P * 1000 + P * 500;

/// A ring holding `K_EPOCH` and `K_{EPOCH-1}`, epochs of `P` seconds.
pub fn salts() -> Salts {
    Salts::from_keys(&keys(), P)
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

impl SynSpec {
    /// The SYN (or, with `ack`, an ACK-only segment with these options) as a [`Frame`]: options
    /// in Linux's order (MSS, SACK-Permitted, Timestamps, NOP, WScale), VLAN ids 100 and 200, IPv6
    /// traffic class and flow label 0.
    pub fn to_frame(&self, ack: Option<u32>) -> Frame {
        let (src, dst): (IpAddr, IpAddr) = if self.v6 {
            (self.src6.into(), self.dst6.into())
        } else {
            (self.src4.into(), self.dst4.into())
        };
        let mut opts = Vec::new();
        if let Some(m) = self.mss {
            opts.push(opt_mss(m));
        }
        if self.sack {
            opts.push(opt_sack());
        }
        if let Some(t) = self.ts {
            opts.push(opt_ts(t, 0));
        }
        if let Some(w) = self.wscale {
            opts.push(opt_ws(w));
        }
        let mut flags = match ack {
            None => SYN,
            Some(_) => ACK,
        };
        if self.ece_cwr {
            flags |= ECE | CWR;
        }
        Frame {
            vlans: stack(&[100, 200][..self.vlans.min(2) as usize]),
            traffic_class: 0,
            flow_label: 0,
            seq: self.isn,
            ack: ack.unwrap_or(0),
            options: opts_bytes(&opts),
            payload: self.payload.clone(),
            ..Frame::new(src, dst, self.sport, self.dport, flags)
        }
    }
}

/// A SYN (or, with `ack`, another segment) described by `s`.
pub fn frame(s: &SynSpec, flags_ack: Option<u32>) -> Vec<u8> {
    s.to_frame(flags_ack).build()
}

/// Answer `s` with `e`, and return the ACK frame a real client would send back.
pub fn handshake_ack(e: &mut Engine, s: &SynSpec) -> Vec<u8> {
    let syn = frame(s, None);
    let mut buf = syn.clone();
    buf.resize(MAX_SYNACK_LEN.max(syn.len()), 0);
    let d = e.xdp(&mut buf, syn.len(), NOW_MS);
    let Verdict::Tx { len } = d.verdict else {
        panic!("{d:?}")
    };
    let h = etherparse::PacketHeaders::from_ethernet_slice(&buf[..len]).unwrap();
    let Some(etherparse::TransportHeader::Tcp(t)) = h.transport else {
        panic!()
    };
    let tsval = t.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::Timestamp(v, _)) => Some(v),
        _ => None,
    });
    // The client's ACK: seq = ISN+1, ack = cookie+1, TSecr echoing our TSval.
    let ack_spec = SynSpec {
        isn: s.isn.wrapping_add(1),
        mss: None,
        wscale: None,
        sack: false,
        ts: None,
        ..s.clone()
    };
    let mut f = frame(&ack_spec, Some(t.sequence_number.wrapping_add(1)));
    if let Some(v) = tsval {
        f = frame_with_ts(&ack_spec, t.sequence_number.wrapping_add(1), 0x5555_0000, v);
    }
    f
}

pub fn frame_with_ts(s: &SynSpec, ack: u32, tsval: u32, tsecr: u32) -> Vec<u8> {
    Frame {
        vlans: Vec::new(),
        flags: ACK,
        window: 500,
        options: opts_bytes(&[vec![1, 1], opt_ts(tsval, tsecr)]),
        payload: Vec::new(),
        ..s.to_frame(Some(ack))
    }
    .build()
}
