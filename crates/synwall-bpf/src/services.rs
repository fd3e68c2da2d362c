//! Protected services as the BPF programs see them: an LPM trie keyed by (family, address) whose
//! entries name a 65536-bit port bitmap.
//!
//! `ServiceSet::is_protected` asks "does any configured prefix containing the address list the
//! port?". The trie only answers with the longest matching prefix, so each entry carries the union
//! of the ports of every configured prefix that contains it: the prefixes containing an address
//! form a chain, and the longest one's entry then holds exactly the ports of the whole chain.
//! `ServiceSet::covers_addr` is "the trie has a match".

use std::collections::HashMap;
use std::net::IpAddr;
use synwall_engine::services::Prefix;
use synwall_engine::ServiceSet;

// PORTS, FAMILY_V4, FAMILY_V6, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_services.rs"));
/// 64-bit words in a port bitmap (`struct sw_port_bitmap`).
pub const BITMAP_WORDS: usize = PORTS / 64;

/// A port set: bit `p % 64` of word `p / 64` is port `p`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PortBitmap(pub Box<[u64; BITMAP_WORDS]>);

impl PortBitmap {
    /// The empty set.
    pub fn new() -> Self {
        PortBitmap(Box::new([0; BITMAP_WORDS]))
    }

    /// Add ports `first..=last`.
    pub fn add_range(&mut self, first: u16, last: u16) {
        for p in first..=last {
            self.0[p as usize / 64] |= 1 << (p % 64);
        }
    }

    /// Is `port` in the set?
    pub fn contains(&self, port: u16) -> bool {
        self.0[port as usize / 64] >> (port % 64) & 1 == 1
    }

    /// The words in memory order (the map value).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    /// From a map value ([`Self::to_bytes`]); missing words are empty.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut b = PortBitmap::new();
        for (w, c) in b.0.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_ne_bytes(c.try_into().expect("8 bytes"));
        }
        b
    }
}

impl Default for PortBitmap {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PortBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        write!(f, "PortBitmap({n} ports)")
    }
}

/// One trie entry (`struct sw_svc_key` -> `struct sw_svc_value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrieEntry {
    /// The trie's prefix length: it counts the family byte (IPv4 `a.b.c.d/L` is 8 + 96 + L, IPv6
    /// `P/L` is 8 + L).
    pub prefixlen: u32,
    /// `SW_FAMILY_V4` or `SW_FAMILY_V6`.
    pub family: u8,
    /// The 16-byte address, IPv4 as `::ffff:a.b.c.d`, host bits zero.
    pub addr: [u8; 16],
    /// Index of the entry's bitmap in [`ServiceTables::bitmaps`].
    pub ports: u32,
}

/// Everything the services maps hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTables {
    /// One entry per distinct configured prefix.
    pub entries: Vec<TrieEntry>,
    /// Distinct port sets (several prefixes with the same merged ports share one).
    pub bitmaps: Vec<PortBitmap>,
}

/// The family byte and 16-byte (`::ffff:`-mapped for IPv4) form of an address.
pub fn key_addr(addr: &IpAddr) -> (u8, [u8; 16]) {
    match addr {
        IpAddr::V4(a) => (FAMILY_V4, a.to_ipv6_mapped().octets()),
        IpAddr::V6(a) => (FAMILY_V6, a.octets()),
    }
}

/// The trie prefix length of `p` (counting the family byte).
pub fn trie_prefixlen(p: &Prefix) -> u32 {
    match p.addr {
        IpAddr::V4(_) => 8 + 96 + p.len as u32,
        IpAddr::V6(_) => 8 + p.len as u32,
    }
}

/// Does prefix `outer` contain prefix `inner` (same family, no longer, covering its network)?
fn contains_prefix(outer: &Prefix, inner: &Prefix) -> bool {
    outer.len <= inner.len && outer.contains(&inner.addr)
}

impl ServiceTables {
    /// Merge a service set into trie entries and bitmaps.
    pub fn build(set: &ServiceSet) -> Self {
        let mut prefixes: Vec<Prefix> = Vec::new();
        for s in set.services() {
            if !prefixes.contains(&s.prefix) {
                prefixes.push(s.prefix);
            }
        }
        let mut out = ServiceTables::default();
        let mut index: HashMap<PortBitmap, u32> = HashMap::new();
        for p in prefixes {
            let mut bm = PortBitmap::new();
            for s in set.services() {
                if contains_prefix(&s.prefix, &p) {
                    for r in &s.ports {
                        bm.add_range(r.first, r.last);
                    }
                }
            }
            let next = out.bitmaps.len() as u32;
            let ports = *index.entry(bm.clone()).or_insert_with(|| {
                out.bitmaps.push(bm);
                next
            });
            let (family, addr) = key_addr(&p.addr);
            out.entries.push(TrieEntry {
                prefixlen: trie_prefixlen(&p),
                family,
                addr,
                ports,
            });
        }
        out
    }

    /// What the trie answers for `addr` (longest match), as the BPF lookup does: `None` when no
    /// prefix covers it, else the entry's bitmap.
    pub fn longest_match(&self, addr: &IpAddr) -> Option<&PortBitmap> {
        let (family, a) = key_addr(addr);
        self.entries
            .iter()
            .filter(|e| e.family == family && bits_match(&e.addr, &a, e.prefixlen - 8))
            .max_by_key(|e| e.prefixlen)
            .map(|e| &self.bitmaps[e.ports as usize])
    }
}

/// Where a new set of bitmaps goes in a `capacity`-slot `sw_ports` while the programs run: `live`
/// holds the slots the current trie entries name, with their contents. A bitmap equal to a live
/// one keeps that slot (nothing to write); any other goes to a slot no live entry names, so a
/// packet never reads a port set that is being rewritten under its prefix. For each bitmap: its
/// slot and whether it must be written. `Err(free slots needed)` if there are too few.
pub fn place_bitmaps(
    new: &[PortBitmap],
    live: &[(u32, PortBitmap)],
    capacity: u32,
) -> Result<Vec<(u32, bool)>, usize> {
    let used: std::collections::HashSet<u32> = live.iter().map(|(i, _)| *i).collect();
    let mut free = (0..capacity).filter(|i| !used.contains(i));
    let mut out = Vec::with_capacity(new.len());
    let mut short = 0;
    for bm in new {
        match live.iter().find(|(_, l)| l == bm) {
            Some((i, _)) => out.push((*i, false)),
            None => match free.next() {
                Some(i) => out.push((i, true)),
                None => short += 1,
            },
        }
    }
    if short > 0 {
        return Err(short);
    }
    Ok(out)
}

fn bits_match(p: &[u8; 16], a: &[u8; 16], len: u32) -> bool {
    let full = (len / 8) as usize;
    if p[..full] != a[..full] {
        return false;
    }
    let rem = len % 8;
    rem == 0 || (p[full] ^ a[full]) & (0xffu8 << (8 - rem)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(list: &[u16]) -> PortBitmap {
        let mut b = PortBitmap::new();
        for &p in list {
            b.add_range(p, p);
        }
        b
    }

    #[test]
    fn placing_bitmaps_never_writes_a_live_slot() {
        let (a, b, c) = (ports(&[80]), ports(&[443]), ports(&[80, 443]));
        // Fresh maps: slots in order, all written.
        assert_eq!(
            place_bitmaps(&[a.clone(), b.clone()], &[], 4),
            Ok(vec![(0, true), (1, true)])
        );
        // Live {0: a, 1: b}; reordered and one new set: a and b keep their slots unwritten, c
        // goes to a free slot.
        let live = [(0, a.clone()), (1, b.clone())];
        assert_eq!(
            place_bitmaps(&[c.clone(), b.clone(), a.clone()], &live, 4),
            Ok(vec![(2, true), (1, false), (0, false)])
        );
        // A changed set never lands on a slot a live entry names, even if that one goes away.
        let live = [(0, a.clone()), (2, b.clone())];
        assert_eq!(
            place_bitmaps(std::slice::from_ref(&c), &live, 4),
            Ok(vec![(1, true)])
        );
        // Not enough free slots: how many are missing.
        assert_eq!(place_bitmaps(&[c, ports(&[22])], &live, 3), Err(1));
    }
    use rand::{Rng, SeedableRng};
    use synwall_engine::Service;

    fn set(specs: &[&str]) -> ServiceSet {
        ServiceSet::new(
            specs
                .iter()
                .map(|s| s.parse::<Service>().unwrap())
                .collect(),
        )
    }

    /// The longest match plus the merged bitmap answers exactly what ServiceSet answers.
    #[test]
    fn longest_match_equals_service_set() {
        let services = set(&[
            "10.0.0.0/8:80",
            "10.1.0.0/16:443",
            "10.1.2.0/24:22,8000-8100",
            "10.1.2.0/24:23",
            "10.1.2.128/25:80",
            "0.0.0.0/0:9999",
            "[2001:db8::/32]:80",
            "[2001:db8:1::/48]:443",
            "[::ffff:0:0/96]:7",
            "[::/0]:1",
        ]);
        let t = ServiceTables::build(&services);
        assert_eq!(t.entries.len(), 9, "duplicate prefixes share an entry");
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let v4 = [
            [10, 0, 0, 1],
            [10, 1, 0, 1],
            [10, 1, 2, 3],
            [10, 1, 2, 200],
            [11, 0, 0, 1],
        ];
        let v6: [&str; 4] = [
            "2001:db8::1",
            "2001:db8:1::5",
            "2001:db9::1",
            "::ffff:10.1.2.3",
        ];
        for _ in 0..20_000 {
            let addr: IpAddr = if rng.gen() {
                IpAddr::from(v4[rng.gen_range(0..v4.len())])
            } else {
                v6[rng.gen_range(0..v6.len())].parse().unwrap()
            };
            let port = if rng.gen() {
                rng.gen()
            } else {
                [1, 7, 22, 23, 80, 443, 8050, 9999][rng.gen_range(0..8)]
            };
            let m = t.longest_match(&addr);
            assert_eq!(m.is_some(), services.covers_addr(&addr), "{addr}");
            assert_eq!(
                m.is_some_and(|b| b.contains(port)),
                services.is_protected(&addr, port),
                "{addr} port {port}"
            );
        }
    }

    #[test]
    fn same_ports_share_a_bitmap() {
        let t = ServiceTables::build(&set(&["10.0.0.0/8:80", "192.168.0.0/16:80"]));
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.bitmaps.len(), 1);
        assert_eq!(t.entries[0].prefixlen, 8 + 96 + 8);
        assert_eq!(&t.entries[0].addr[10..], &[0xff, 0xff, 10, 0, 0, 0]);
    }
}
