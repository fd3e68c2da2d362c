//! The seeded random frame generator: frames of every kind the programs may meet (SYNs with
//! options well-formed or not, handshake ACKs with real cookies, cached flows' data, other
//! segments, other protocols, VLAN stacks, IPv4 options and fragments, IPv6 extension chains,
//! multi-buffer lengths, padding), then mutated; and every SYN size. The same seed gives the same
//! frames.

use crate::deploy::{
    client, keys_at, service, EPOCH, PORT, PORTS, V4_OTHER, V4_PROTECTED, V6_OTHER, V6_PROTECTED,
};
use crate::frame::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::net::IpAddr;
use synwall_cookie::synwall_v1::{self as v1};
use synwall_cookie::{SipKey, SynOptions};
use synwall_wire::ipv6::MAX_EXT_HEADERS;

/// An extension header of `ty` whose length field says `units` ([`ext_header`]); a fragment
/// header gets random low offset bits, M flag and identification.
pub fn random_ext_header(ty: u8, units: u8, rng: &mut SmallRng) -> (u8, Vec<u8>) {
    let (ty, mut b) = ext_header(ty, units);
    if ty == NH_FRAGMENT {
        b[3] = units & 0xf9;
        b[4..8].copy_from_slice(&rng.gen::<u32>().to_be_bytes());
    }
    (ty, b)
}

/// A seeded generator of frames of every kind the programs may meet.
pub struct Gen {
    pub rng: SmallRng,
    /// Flows whose handshake ACK was generated valid (strict mode then sees their data).
    pub flows: Vec<Frame>,
    /// Client addresses to draw most sources from (the abuse controls' prefixes); empty: every
    /// source random.
    pub src_pool: Vec<IpAddr>,
}

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen {
            rng: SmallRng::seed_from_u64(seed),
            flows: Vec::new(),
            src_pool: Vec::new(),
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
        if !self.src_pool.is_empty() && self.rng.gen_bool(0.7) {
            let pool: Vec<IpAddr> = self
                .src_pool
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .copied()
                .collect();
            if !pool.is_empty() {
                return pool[self.rng.gen_range(0..pool.len())];
            }
        }
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
    pub fn segment(&mut self, cfg: &v1::Config, keys: &[SipKey]) -> Frame {
        let v6 = self.rng.gen_bool(0.4);
        let (src, sport) = (self.src(v6), self.rng.gen_range(1024..65535));
        let (dst, dport) = if self.rng.gen_bool(0.7) {
            self.protected(v6)
        } else {
            (self.dst(v6), self.port())
        };
        let kind = self.rng.gen_range(0..100);
        let mut s = Frame::new(src, dst, sport, dport, SYN);
        s.seq = self.rng.gen();
        s.vlans = tags(match self.rng.gen_range(0..10) {
            0..=5 => &[],
            6..=7 => &[0x8100],
            8 => &[0x88a8, 0x8100],
            _ => match self.rng.gen_range(0..3) {
                0 => &[0x8100, 0x8100],
                1 => &[0x88a8, 0x8100, 0x8100],
                _ => &[0x88a8],
            },
        });
        match kind {
            // SYNs (some with ECE/CWR, PSH, a payload).
            0..=39 => {
                let (opts, _) = self.syn_options();
                s.options = opts;
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
                s.options = opts_bytes(&items);
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
                    3 if !s.options.is_empty() => {
                        // Damage TSecr's MAC bits or its E bit.
                        let i = s.options.len() - 1;
                        s.options[i] ^= 1 << self.rng.gen_range(0..8);
                    }
                    _ => {}
                }
                if self.rng.gen_bool(0.05) {
                    // Malformed options on the ACK.
                    s.options = vec![1, 1, 8, 1];
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
                    s.options = opts_bytes(&[vec![1, 1], opt_ts(self.rng.gen(), self.rng.gen())]);
                } else if self.rng.gen_bool(0.3) {
                    s.options = self.syn_options().0;
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
                s.options = opts_bytes(&[opt_mss(1460), opt_sack()]);
            }
        }
        // IPv4 options (source routes among them), fragments (offsets overlapping the TCP header
        // among them); IPv6 extension chains (fragments with and without headers after them,
        // routing headers of every kind, some naming a protected final destination behind an
        // unprotected outer one).
        // (A flow seen before may be of the other family.)
        let v6 = s.src.is_ipv6();
        if !v6 && self.rng.gen_bool(0.1) {
            s.ipv4_options = self.ipv4_options();
        }
        if !v6 && self.rng.gen_bool(0.08) {
            let offset = [0, 0, 1, 2, 3, 100, 8191][self.rng.gen_range(0..7)];
            s.frag = (self.rng.gen(), offset);
        }
        if v6 && self.rng.gen_bool(0.25) {
            s.ext = if self.rng.gen_bool(0.1) {
                self.chain_past_the_bound()
            } else {
                self.ext_chain()
            };
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
        // SRv6 encapsulation (the segment is the inner packet), and other IP in IP.
        if self.rng.gen_bool(0.08) {
            s = self.encapsulate(s);
        }
        s
    }

    /// `inner` inside an outer packet: mostly IPv6 with a segment routing header (segments left
    /// 0 to 2, segment list[0] protected or not, other extension headers around it, sometimes an
    /// offset-0 Fragment header before it), to an unprotected or protected outer destination; a
    /// few with a second level of encapsulation inside, a few IP in IP without an SRH (IPv6 or
    /// IPv4 outside: not judged by the inner packet).
    pub fn encapsulate(&mut self, mut inner: Frame) -> Frame {
        let outer_v6 = self.rng.gen_bool(0.9);
        let src = self.src(outer_v6);
        let dst = if outer_v6 {
            let pool: &[&str] = if self.rng.gen_bool(0.6) {
                &V6_OTHER
            } else {
                &V6_PROTECTED
            };
            pool[self.rng.gen_range(0..pool.len())].parse().unwrap()
        } else {
            self.dst(false)
        };
        let mut outer = Frame {
            traffic_class: 0,
            flow_label: 0,
            ..Frame::new(src, dst, 0, 0, 0)
        };
        outer.vlans = std::mem::take(&mut inner.vlans);
        outer.padding = std::mem::take(&mut inner.padding);
        if outer_v6 && self.rng.gen_bool(0.9) {
            let mut ext = Vec::new();
            if self.rng.gen_bool(0.2) {
                let o = [0, 0, 0, 1, 3][self.rng.gen_range(0..5)];
                ext.push(frag_header(o, self.rng.gen()));
            }
            if self.rng.gen_bool(0.2) {
                ext.push(random_ext_header(
                    NH_DEST_OPTS,
                    self.rng.gen_range(0..3),
                    &mut self.rng,
                ));
            }
            let sl = [0, 0, 1, 2][self.rng.gen_range(0..4)];
            let segments: Vec<[u8; 16]> = (0..self.rng.gen_range(1..=3))
                .map(|_| {
                    let pool: &[&str] = if self.rng.gen() {
                        &V6_PROTECTED
                    } else {
                        &V6_OTHER
                    };
                    let a: std::net::Ipv6Addr =
                        pool[self.rng.gen_range(0..pool.len())].parse().unwrap();
                    a.octets()
                })
                .collect();
            ext.push(routing_header(4, sl, &segments));
            if self.rng.gen_bool(0.1) {
                ext.push(random_ext_header(NH_DEST_OPTS, 0, &mut self.rng));
            }
            outer.ext = ext;
            // A second level inside, now and then.
            if self.rng.gen_bool(0.05) && inner.encap.is_none() {
                inner = self.encapsulate(inner);
            }
        }
        outer.encap = Some(Box::new(inner));
        outer
    }

    /// More extension headers than the walk takes (7 or 8), ending in a segment routing header
    /// whose last segment is protected: the kernel would route by it.
    pub fn chain_past_the_bound(&mut self) -> Vec<(u8, Vec<u8>)> {
        let n = self
            .rng
            .gen_range(MAX_EXT_HEADERS + 1..=MAX_EXT_HEADERS + 2);
        let mut out: Vec<(u8, Vec<u8>)> = (0..n - 1)
            .map(|_| {
                let ty =
                    [NH_HOP_BY_HOP, NH_DEST_OPTS, NH_DEST_OPTS, NH_AUTH][self.rng.gen_range(0..4)];
                random_ext_header(ty, self.rng.gen_range(0..2), &mut self.rng)
            })
            .collect();
        let final_dst: std::net::Ipv6Addr = V6_PROTECTED[self.rng.gen_range(0..2)].parse().unwrap();
        out.push(routing_header(4, 1, &[final_dst.octets(), [0x20; 16]]));
        out
    }

    /// For an IPv6 segment whose chain holds an offset-0 Fragment header followed by more
    /// extension headers (now and then): the frame cut right after one of those, its payload
    /// length made to match, as the first fragment of a datagram whose chain goes on in the next.
    fn cut_after_first_fragment(&mut self, s: &Frame, f: &[u8]) -> Option<Vec<u8>> {
        if !s.src.is_ipv6() || s.encap.is_some() || !self.rng.gen_bool(0.3) {
            return None;
        }
        let at = s
            .ext
            .iter()
            .position(|(ty, b)| *ty == NH_FRAGMENT && u16::from_be_bytes([b[2], b[3]]) >> 3 == 0)?;
        if at + 1 >= s.ext.len() {
            return None;
        }
        let l3 = 14 + 4 * s.vlans.len();
        let upto = self.rng.gen_range(at + 1..s.ext.len());
        let chain: usize = s.ext[..upto].iter().map(|(_, b)| b.len()).sum();
        let mut out = f[..l3 + 40 + chain].to_vec();
        out[l3 + 4..l3 + 6].copy_from_slice(&(chain as u16).to_be_bytes());
        Some(out)
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
            // Mostly short headers; now and then one of up to the longest (2 KiB).
            let units = if self.rng.gen_bool(0.03) {
                self.rng.gen()
            } else {
                self.rng.gen_range(0..4)
            };
            let h = match self.rng.gen_range(0..10) {
                0 => random_ext_header(0, units, &mut self.rng),
                1..=2 => random_ext_header(60, units, &mut self.rng),
                3 => random_ext_header(51, units, &mut self.rng),
                4..=6 => {
                    let offset = [0, 0, 0, 1, 2, 3, 100, 8191][self.rng.gen_range(0..8)];
                    frag_header(offset, self.rng.gen())
                }
                _ => {
                    let kind = [0, 2, 3, 4, 4, 4][self.rng.gen_range(0..6)];
                    let sl = [0, 0, 1, 2][self.rng.gen_range(0..4)];
                    // No address at all now and then: too short for the one it must name.
                    let addrs: Vec<[u8; 16]> = (0..self.rng.gen_range(0..=3))
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
        let mut f = s.build();
        // The first fragment of a datagram whose header chain goes on in the next fragment: the
        // packet ends after one of the extension headers that follow its Fragment header.
        if let Some(at) = self.cut_after_first_fragment(&s, &f) {
            f = at;
            return (f, "chain cut by fragmentation");
        }
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
        for n_tags in 0..=2usize {
            let min = 14 + 4 * n_tags + if v6 { 40 } else { 20 } + 20;
            for size in 54..=120usize {
                if size < min {
                    continue;
                }
                let extra = size - min;
                let opt_len = (extra / 4 * 4).min(40);
                let (src, dst) = (client(v6), service(v6));
                let mut s = Frame::new(src, dst, rng.gen_range(1024..65535), PORT, SYN);
                s.seq = rng.gen();
                s.vlans = tags(&[0x88a8, 0x8100][2 - n_tags..]);
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
                s.options = opts;
                s.payload = vec![0x42; extra - opt_len];
                let f = s.build();
                assert_eq!(f.len(), size);
                out.push((f, format!("SYN of {size} bytes (v6 {v6}, {n_tags} tags)")));
            }
        }
    }
    out
}
