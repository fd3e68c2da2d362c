//! The engine's tests' SYN description ([`SynSpec`]: the fields a SYN's answer depends on, built
//! into a frame by the test kit's builder) and the engine set up with every address protected.

use std::net::IpAddr;
use synwall_engine::{Engine, EngineConfig};
use synwall_testkit::deploy::{all_services, keys};
use synwall_testkit::frame::{opt_mss, opt_sack, opt_ts, opt_ws, opts_bytes, stack, Frame};
use synwall_testkit::frame::{ACK, CWR, ECE, SYN};

pub fn engine() -> Engine {
    Engine::new(EngineConfig::new(all_services()), keys())
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
