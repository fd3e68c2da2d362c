//! The frame builder ([`synwall_netns::frame`], re-exported: the only one) and what tests do with
//! frames once built: find their headers, fix their checksums after an edit, read a TSval, make
//! the handshake ACK a cookie asks for.

pub use synwall_netns::frame::*;

use etherparse::checksum::Sum16BitWords;
use std::net::IpAddr;
use synwall_cookie::synwall_v1::{self as v1};
use synwall_cookie::{Addrs, Flow, SipKey, Syn, SynOptions};

/// What [`linux_syn_options`] mean to the cookie.
pub const LINUX_SYN: SynOptions = SynOptions {
    mss: Some(1460),
    wscale: Some(7),
    sack_permitted: true,
    timestamps: true,
    ece_cwr: false,
};

/// Where things are in a frame, walked leniently (up to 4 VLAN tags, an extension-header chain
/// of up to 8 headers that fits): (l3, is_v6, l4, end of the IP packet, protocol).
pub fn locate(f: &[u8]) -> Option<(usize, bool, usize, usize, u8)> {
    let mut off = 12;
    let mut et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    let mut tags = 0;
    while (et == TPID_8021Q || et == TPID_8021AD) && tags < 4 {
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
                    NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => (*f.get(o + 1)? as usize + 1) * 8,
                    NH_FRAGMENT => 8,
                    NH_AUTH => (*f.get(o + 1)? as usize + 2) * 4,
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

/// The final destination a routing header in the IPv6 packet at `l3` names (see
/// [`final_dst_of`]).
pub fn final_dst_in(f: &[u8], l3: usize) -> Option<[u8; 16]> {
    let mut nh = f[l3 + 6];
    let mut o = l3 + 40;
    for _ in 0..8 {
        let len = match nh {
            NH_HOP_BY_HOP | NH_DEST_OPTS => (*f.get(o + 1)? as usize + 1) * 8,
            NH_ROUTING => {
                let len = (*f.get(o + 1)? as usize + 1) * 8;
                let h = f.get(o..o + len)?;
                return (len >= 24 && h[3] > 0 && (h[2] == 2 || h[2] == 4))
                    .then(|| h[8..24].try_into().unwrap());
            }
            NH_FRAGMENT => 8,
            NH_AUTH => (*f.get(o + 1)? as usize + 2) * 4,
            _ => return None,
        };
        nh = *f.get(o)?;
        o += len;
    }
    None
}

/// Recompute the IPv4 header checksum, if [`locate`] finds an IPv4 header.
pub fn fix_ip_checksum(f: &mut [u8]) {
    if let Some((l3, false, l4, _, _)) = locate(f) {
        f[l3 + 10..l3 + 12].fill(0);
        let c = Sum16BitWords::new().add_slice(&f[l3..l4]).ones_complement();
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_ne_bytes());
    }
}

/// Recompute the IPv4 header checksum and the TCP checksum (over the final destination)
/// wherever [`locate`] finds them.
pub fn fix_checksums(f: &mut [u8]) {
    fix_ip_checksum(f);
    let Some((l3, v6, l4, end, proto)) = locate(f) else {
        return;
    };
    if proto != NH_TCP || end < l4 + 20 {
        return;
    }
    f[l4 + 16..l4 + 18].fill(0);
    let len = (end - l4) as u32;
    let pseudo = if v6 {
        let dst = final_dst_in(f, l3).unwrap_or_else(|| f[l3 + 24..l3 + 40].try_into().unwrap());
        Sum16BitWords::new()
            .add_slice(&f[l3 + 8..l3 + 24])
            .add_slice(&dst)
            .add_slice(&len.to_be_bytes())
    } else {
        Sum16BitWords::new()
            .add_slice(&f[l3 + 12..l3 + 20])
            .add_slice(&(len as u16).to_be_bytes())
    };
    let c = pseudo
        .add_2bytes([0, NH_TCP])
        .add_slice(&f[l4..end])
        .ones_complement();
    f[l4 + 16..l4 + 18].copy_from_slice(&c.to_ne_bytes());
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

/// The cookie flow of a frame (client = its source).
pub fn flow_of(s: &Frame) -> Flow {
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
    key: &SipKey,
    syn: &Frame,
    syn_opts: SynOptions,
    clock_ms: u64,
) -> Frame {
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
    a.options = match issued.tsval {
        Some(t) => opts_bytes(&[vec![1, 1], opt_ts(0x0a0b_0c0d, t)]),
        None => Vec::new(),
    };
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixing_the_checksums_of_a_built_frame_changes_nothing() {
        let mut frames = Vec::new();
        for (src, dst) in [
            ("192.0.2.1", "198.51.100.7"),
            ("2001:db8::1", "2001:db8:1::80"),
        ] {
            let mut s = Frame::new(src.parse().unwrap(), dst.parse().unwrap(), 1, 443, SYN);
            s.options = linux_syn_options();
            s.payload = vec![7; 33];
            s.vlans = tags(&[TPID_8021Q]);
            frames.push(s.build());
            if s.src.is_ipv6() {
                s.ext = vec![
                    ext_header(NH_DEST_OPTS, 1),
                    routing_header(
                        2,
                        1,
                        &[[0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
                    ),
                ];
            } else {
                s.ipv4_options = vec![1, 1, 1, 0];
            }
            frames.push(s.build());
        }
        for f in frames {
            let (l3, v6, l4, _, _) = locate(&f).unwrap();
            let mut g = f.clone();
            g[l4 + 16..l4 + 18].fill(0xee);
            if !v6 {
                g[l3 + 10..l3 + 12].fill(0xee);
            }
            fix_checksums(&mut g);
            assert_eq!(hex::encode(&g), hex::encode(&f));
        }
    }
}
