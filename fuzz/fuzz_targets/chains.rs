//! Fuzz what a packet can hide behind: the input is a recipe, not a frame. It picks the family, the
//! VLAN tags, IPv4 options or an IPv6 extension chain (hop-by-hop, destination options, AH,
//! routing headers of any type / segments left / addresses, Fragment headers of any offset and M),
//! IPv4 fragment fields, the TCP flags and options, the payload, whether the checksum is right, and
//! where a multi-buffer frame's first buffer ends; the frame is then built with consistent lengths,
//! so the fuzzer spends its time in the walks and decisions instead of in length checks.
//!
//! Checked on every frame, edge (default and strict) and backend: no panic, exactly one counter;
//! a SYN+ACK parses with good checksums, comes from the final destination the recipe put in the
//! frame, and never answers a fragment or a SYN whose segment is not in the first buffer; a
//! source-routed packet is never answered, forwarded or given to the kfunc.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_engine::parse::{parse, Parsed};
use synwall_engine::synack::MAX_SYNACK_LEN;
use synwall_engine::{
    BackendVerdict, Counter, Engine, EngineConfig, Salts, Service, ServiceSet, Skb, SkbCsum,
    SocketState, Verdict,
};
use synwall_wire::checksum;

const SVC4: [u8; 4] = [198, 51, 100, 7];
const OTHER4: [u8; 4] = [192, 0, 2, 1];
const SVC6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80];
const OTHER6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn services() -> ServiceSet {
    ServiceSet::new(
        ["198.51.100.0/24:1-65535", "[2001:db8:1::/48]:1-65535"]
            .iter()
            .map(|s| s.parse::<Service>().unwrap())
            .collect(),
    )
}

fn everything() -> ServiceSet {
    ServiceSet::new(
        ["0.0.0.0/0:1-65535", "[::/0]:1-65535"]
            .iter()
            .map(|s| s.parse::<Service>().unwrap())
            .collect(),
    )
}

/// Bytes of the recipe, read front to back; zeros once it runs out.
struct Recipe<'a>(&'a [u8]);

impl Recipe<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// What the recipe built, beside the frame.
struct Built {
    frame: Vec<u8>,
    /// Offset of the IP header (the answer keeps the tags, so its IP header is there too).
    l3: usize,
    /// The final destination (the recipe's own reckoning).
    final_dst: Vec<u8>,
    /// Some fragment header or IPv4 fragment field.
    fragmented: bool,
    /// An LSRR/SSRR option, a routing header of type 0 / unknown with segments left / a second one.
    source_routed: bool,
    /// Where the TCP segment ends.
    seg_end: usize,
}

fn build(r: &mut Recipe) -> Built {
    let ctl = r.byte();
    let v6 = ctl & 1 != 0;
    let tags = (ctl >> 1) % 3;
    let dst_protected = ctl & 8 == 0;
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for i in 0..tags {
        f.extend_from_slice(if i == 0 && tags == 2 {
            &[0x88, 0xa8]
        } else {
            &[0x81, 0x00]
        });
        f.extend_from_slice(&[0, 100 + i]);
    }
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let l3 = f.len();

    // TCP segment (its checksum filled in below, over the final destination).
    let flags = r.byte();
    let opt_len = (r.byte() % 11) as usize * 4;
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&r.u16().max(1).to_be_bytes());
    seg[2..4].copy_from_slice(&[0x01, 0xbb]);
    seg[4..8].copy_from_slice(&r.u32().to_be_bytes());
    seg[8..12].copy_from_slice(&r.u32().to_be_bytes());
    seg[12] = ((5 + opt_len / 4) as u8) << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&[0xfa, 0xf0]);
    seg.extend(r.bytes(opt_len));
    let payload = (r.byte() as usize) * (1 + (r.byte() as usize % 40));
    seg.extend(std::iter::repeat_n(0x5a, payload));
    let good_csum = r.byte() % 8 != 0;

    let mut fragmented = false;
    let mut source_routed = false;
    let final_dst;
    if v6 {
        let outer = if dst_protected { SVC6 } else { OTHER6 };
        let mut dst = outer;
        let mut chain: Vec<(u8, Vec<u8>)> = Vec::new();
        for _ in 0..r.byte() % 9 {
            let (kind, units) = match r.byte() % 6 {
                0 => (0u8, r.byte() % 3),
                1 => (60, r.byte() % 3),
                2 => (51, r.byte() % 3),
                3 => (44, 0),
                _ => (43, 0),
            };
            let b = match kind {
                51 => {
                    let mut b = vec![0u8; (units as usize + 2) * 4];
                    b[1] = units;
                    b
                }
                44 => {
                    let offset = [0u16, 0, 0, 1, 2, 3, 200][r.byte() as usize % 7];
                    let more = r.byte() & 1;
                    let mut b = vec![0u8; 8];
                    b[2..4].copy_from_slice(&((offset << 3) | more as u16).to_be_bytes());
                    fragmented = true;
                    b
                }
                43 => {
                    let n = r.byte() as usize % 3;
                    let mut b = vec![0u8; 8];
                    b[1] = (2 * n) as u8;
                    b[2] = [0, 2, 3, 4, 4][r.byte() as usize % 5];
                    b[3] = r.byte() % 3;
                    for _ in 0..n {
                        b.extend_from_slice(if r.byte() & 1 == 0 { &SVC6 } else { &OTHER6 });
                    }
                    b
                }
                _ => {
                    let mut b = vec![0u8; (units as usize + 1) * 8];
                    b[1] = units;
                    b
                }
            };
            chain.push((kind, b));
        }
        // The recipe's own reckoning of the walk (SPEC 8): the final destination, and whether a
        // routing header the walk reaches hides the destination.
        let mut routed = false;
        for (i, (kind, b)) in chain.iter().enumerate() {
            if i == 6 {
                break; // past the bound: dropped or passed, never answered
            }
            if *kind == 44 && u16::from_be_bytes([b[2], b[3]]) >> 3 != 0 {
                break; // what follows is fragment data
            }
            if *kind == 43 {
                let (rt, sl) = (b[2], b[3]);
                if routed || rt == 0 || (sl > 0 && rt != 2 && rt != 4) {
                    source_routed = true;
                    break;
                }
                routed = true;
                if sl > 0 {
                    if b.len() < 24 {
                        break; // malformed
                    }
                    dst.copy_from_slice(&b[8..24]);
                }
            }
        }
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        ip.extend_from_slice(&outer);
        ip[6] = chain.first().map_or(6, |h| h.0);
        let mut body = Vec::new();
        for (i, (_, b)) in chain.iter().enumerate() {
            let mut b = b.clone();
            b[0] = chain.get(i + 1).map_or(6, |h| h.0);
            body.extend(b);
        }
        let plen = body.len() + seg.len();
        ip[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        if good_csum {
            let src: [u8; 16] = ip[8..24].try_into().unwrap();
            let p = checksum::pseudo_v6(&src, &dst, 6, seg.len() as u32);
            let c = checksum::finish(checksum::sum(p, &seg));
            seg[16..18].copy_from_slice(&c.to_be_bytes());
        }
        f.extend(ip);
        f.extend(body);
        final_dst = dst.to_vec();
    } else {
        let dst = if dst_protected { SVC4 } else { OTHER4 };
        let mut opts = Vec::new();
        for _ in 0..r.byte() % 5 {
            match r.byte() % 6 {
                0 => opts.push(1),
                1 => opts.extend_from_slice(&[7, 7, 4, 0, 0, 0, 0]),
                2 => opts.extend_from_slice(&[131, 7, 4, 198, 51, 100, 7]),
                3 => opts.extend_from_slice(&[137, 7, 4, 192, 0, 2, 1]),
                4 => opts.push(0),
                _ => opts.extend_from_slice(&[r.byte(), r.byte()]),
            }
        }
        opts.truncate(40);
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        // The recipe's reckoning: LSRR/SSRR before the list ends (EOL) or goes wrong.
        source_routed = false;
        let mut i = 0;
        while i < opts.len() {
            match opts[i] {
                0 => break,
                1 => i += 1,
                kind => {
                    let Some(&len) = opts.get(i + 1) else { break };
                    if len < 2 || i + len as usize > opts.len() {
                        break;
                    }
                    if kind == 131 || kind == 137 {
                        source_routed = true;
                        break;
                    }
                    i += len as usize;
                }
            }
        }
        let frag = r.u16() & 0x3fff;
        let frag = if r.byte() % 4 == 0 { frag } else { 0 };
        fragmented = frag & 0x3fff != 0;
        let hl = 20 + opts.len();
        let mut ip = vec![0x40 | (hl / 4) as u8, 0];
        ip.extend_from_slice(&((hl + seg.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0]);
        ip.extend_from_slice(&frag.to_be_bytes());
        ip.extend_from_slice(&[64, 6, 0, 0, 192, 0, 2, 10]);
        ip.extend_from_slice(&dst);
        ip.extend(opts);
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        if good_csum {
            let p = checksum::pseudo_v4(&[192, 0, 2, 10], &dst, 6, seg.len() as u16);
            let c = checksum::finish(checksum::sum(p, &seg));
            seg[16..18].copy_from_slice(&c.to_be_bytes());
        }
        f.extend(ip);
        final_dst = dst.to_vec();
    }
    f.extend(seg);
    let seg_end = f.len();
    // Link padding, sometimes.
    let pad = r.byte() as usize % 32;
    f.extend(std::iter::repeat_n(0, pad));
    Built {
        frame: f,
        l3,
        final_dst,
        fragmented,
        source_routed,
        seg_end,
    }
}

/// The middle of epoch 5 of 60 s (the salts' epoch), milliseconds: SYNs are answered.
const NOW_MS: u64 = 5 * 60_000 + 30_000;

fuzz_target!(|data: &[u8]| {
    let mut r = Recipe(data);
    let b = build(&mut r);
    let first = match r.byte() % 4 {
        0 => 14 + r.u16() as usize % b.frame.len().max(1),
        _ => b.frame.len(),
    }
    .min(b.frame.len());
    let keys = EpochKeys::derive(&MasterSecret([1; 32]), 5);
    for strict in [false, true] {
        let mut cfg = EngineConfig::new(services());
        cfg.strict = strict;
        cfg.flow_cache = 4;
        let mut e = Engine::new(cfg, Salts::from_keys(&keys, 60));
        let mut buf = b.frame.clone();
        buf.resize(b.frame.len() + MAX_SYNACK_LEN, 0);
        let d = e.xdp_frags(&mut buf, b.frame.len(), first, NOW_MS);
        assert_eq!(e.counters().total(), 1);
        if b.source_routed {
            assert_eq!(
                d.counter,
                Counter::DropSourceRoute,
                "source route not dropped"
            );
        }
        if let Verdict::Tx { len } = d.verdict {
            assert!(!b.fragmented, "answered from a fragment");
            assert!(b.seg_end <= first, "answered past the first buffer");
            match parse(&buf[..len], &everything()) {
                Parsed::Tcp(t) => assert!(t.checksums_ok(&buf[..len])),
                other => panic!("reply does not parse: {other:?}"),
            }
            let src = if b.final_dst.len() == 16 {
                &buf[b.l3 + 8..b.l3 + 24]
            } else {
                &buf[b.l3 + 12..b.l3 + 16]
            };
            assert_eq!(src, &b.final_dst[..], "answered from another address");
        }
        for (state, trusted, present) in [
            (SocketState::ListenerOnly, false, false),
            (SocketState::ListenerOnly, true, true),
            (SocketState::Connection, false, false),
            (SocketState::TimeWait, false, false),
            (SocketState::None, false, false),
        ] {
            let skb = Skb {
                vlan_present: present,
                csum: if trusted {
                    SkbCsum::Unnecessary
                } else {
                    SkbCsum::None
                },
                ..Skb::of_frame(&b.frame)
            };
            let d = e.tc_skb(&b.frame, skb, NOW_MS, |_| state, |_| 0);
            if b.source_routed {
                assert_eq!(d.counter, Counter::DropSourceRoute);
            }
            if let BackendVerdict::AssignReqsk(_) = d.verdict {
                assert!(!b.fragmented, "a socket from a fragment");
            }
        }
    }
});
