//! Abuse controls of the edge (SPEC section 10): the reflection budget, the deny and allow lists
//! of client prefixes, and the strict flow cache's budget of new flows. The same arithmetic as
//! `bpf/lib/abuse.h`, so the engine and the programs decide alike.
//!
//! **Budgets** are GCRA ("generic cell rate algorithm") token buckets: one number per bucket, the
//! theoretical arrival time `tat` of the next conforming event, in nanoseconds of the programs'
//! one clock (TAI, which also picks the salts, so a SYN reads one clock). With `interval = 1e9 /
//! rate` and `tolerance = (burst - 1) * interval`, an event at `now` conforms iff
//! `max(tat, now) - now <= tolerance`; it then moves `tat` to `max(tat, now) + interval`. An idle
//! bucket holds `burst` events, and it refills at `rate` per second. TAI follows the wall clock,
//! which an operator can step back: a `tat` more than [`CLOCK_STEP_NS`] beyond anything the
//! budget can reach (`now + tolerance + interval`) can only come from such a step, and the bucket
//! then counts as full, so a step back never silences the prefixes the edge knows. A bucket the table does not hold yet starts full. In BPF one bucket is shared by all
//! CPUs and updated with a compare-and-swap, so the rate is the node's, not a CPU's.
//!
//! **Client prefixes**: buckets are per client prefix (the source address masked to
//! [`ClientPrefix`]'s lengths, default /24 and /48), held in a bounded LRU table, never per
//! connection.
//!
//! **Lists**: a client is denied if any deny prefix contains it, allowed if any allow prefix does;
//! a client on both is denied.

use crate::services::Prefix;
use std::net::IpAddr;

/// Budgets are checked in nanoseconds: one second.
pub const NS_PER_SECOND: u64 = 1_000_000_000;
/// The highest rate a budget takes, per second (its interval stays >= 10 ns).
pub const MAX_RATE: u32 = 100_000_000;
/// The largest burst a budget takes.
pub const MAX_BURST: u32 = 1_000_000_000;
/// The longest client prefix of the budgets, IPv6 (its key holds 64 bits of the address).
pub const MAX_PREFIX_V6: u8 = 64;

/// A rate with a burst: at most `burst` events at once, refilled at `rate` per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Budget {
    /// Events per second (1..=[`MAX_RATE`]).
    pub rate: u32,
    /// Events an idle bucket allows at once (1..=[`MAX_BURST`]).
    pub burst: u32,
}

impl Budget {
    /// The SPEC's default reflection budget: 1000 SYN+ACKs per second, burst 2000.
    pub const DEFAULT: Budget = Budget {
        rate: 1000,
        burst: 2000,
    };

    /// Are rate and burst in range?
    pub fn is_valid(&self) -> bool {
        (1..=MAX_RATE).contains(&self.rate) && (1..=MAX_BURST).contains(&self.burst)
    }

    /// The GCRA parameters (the values the BPF config holds).
    pub fn gcra(&self) -> Gcra {
        let interval_ns = NS_PER_SECOND / u64::from(self.rate.max(1));
        Gcra {
            interval_ns,
            tolerance_ns: interval_ns * u64::from(self.burst.max(1) - 1),
        }
    }
}

/// A budget in the data path's units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    /// Nanoseconds per event: `1e9 / rate`.
    pub interval_ns: u64,
    /// How far `tat` may run ahead of now: `(burst - 1) * interval_ns`.
    pub tolerance_ns: u64,
}

impl Gcra {
    /// A bucket's first event at `now` (it starts full): the `tat` it leaves.
    pub fn first(&self, now: u64) -> u64 {
        now.wrapping_add(self.interval_ns)
    }

    /// One event at `now` against `tat`: `Some(new tat)` if it conforms, `None` if over budget
    /// (`tat` unchanged). `sw_gcra` in `bpf/lib/abuse.h`.
    pub fn step(&self, tat: u64, now: u64) -> Option<u64> {
        let mut base = tat.max(now);
        if base - now > self.tolerance_ns + self.interval_ns + CLOCK_STEP_NS {
            // The clock stepped back (no event moves `tat` this far ahead): a full bucket.
            base = now;
        }
        if base - now > self.tolerance_ns {
            return None;
        }
        Some(base + self.interval_ns)
    }
}

/// A budget table's buckets as read from its map: each client prefix and its bucket.
pub type Buckets = Vec<(BucketKey, BucketState)>;

/// One budget bucket (`struct sw_budget_state`): the GCRA state and what it dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketState {
    /// Theoretical arrival time of the next conforming event, ns.
    pub tat: u64,
    /// Events refused since the bucket was created.
    pub drops: u64,
    /// When the last one was refused (ns; 0 = never).
    pub last_drop_ns: u64,
}

/// The client prefix lengths buckets are kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientPrefix {
    /// IPv4 prefix length, 0..=32 (default 24).
    pub v4: u8,
    /// IPv6 prefix length, 0..=[`MAX_PREFIX_V6`] (default 48).
    pub v6: u8,
}

impl Default for ClientPrefix {
    fn default() -> Self {
        ClientPrefix { v4: 24, v6: 48 }
    }
}

impl ClientPrefix {
    /// Are both lengths in range?
    pub fn is_valid(&self) -> bool {
        self.v4 <= 32 && self.v6 <= MAX_PREFIX_V6
    }

    /// The mask of the first `len` bits of `n` bytes.
    fn mask<const N: usize>(len: u8) -> [u8; N] {
        let mut m = [0u8; N];
        for (i, b) in m.iter_mut().enumerate() {
            let bits = (len as usize).saturating_sub(i * 8).min(8);
            *b = if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
        }
        m
    }

    /// The IPv4 mask as the bytes of an address (`sw_config.budget_mask_v4`).
    pub fn mask_v4(&self) -> [u8; 4] {
        Self::mask(self.v4)
    }

    /// The mask of the first 8 bytes of an IPv6 address (`sw_config.budget_mask_v6`).
    pub fn mask_v6(&self) -> [u8; 8] {
        Self::mask(self.v6)
    }

    /// The bucket key of a client address.
    pub fn key(&self, addr: &IpAddr) -> BucketKey {
        let mut k = BucketKey {
            family: 0,
            addr: [0; 8],
        };
        match addr {
            IpAddr::V4(a) => {
                k.family = 4;
                for (i, (o, m)) in a.octets().iter().zip(self.mask_v4()).enumerate() {
                    k.addr[i] = o & m;
                }
            }
            IpAddr::V6(a) => {
                k.family = 6;
                for (i, (o, m)) in a.octets()[..8].iter().zip(self.mask_v6()).enumerate() {
                    k.addr[i] = o & m;
                }
            }
        }
        k
    }
}

/// A budget bucket's key (`struct sw_budget_key`): the family and the client's address masked
/// to the client prefix (IPv4 in the first 4 bytes; IPv6 its first 8 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    /// 4 or 6.
    pub family: u32,
    /// The masked address bytes.
    pub addr: [u8; 8],
}

impl BucketKey {
    /// The prefix this key stands for, with the lengths it was made with.
    pub fn prefix(&self, lens: &ClientPrefix) -> Prefix {
        if self.family == 4 {
            let a = [self.addr[0], self.addr[1], self.addr[2], self.addr[3]];
            Prefix {
                addr: IpAddr::from(a),
                len: lens.v4,
            }
        } else {
            let mut a = [0u8; 16];
            a[..8].copy_from_slice(&self.addr);
            Prefix {
                addr: IpAddr::from(a),
                len: lens.v6,
            }
        }
    }
}

/// The deny and allow lists (client prefixes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientLists {
    /// Packets from these prefixes to protected services are dropped.
    pub deny: Vec<Prefix>,
    /// SYNs from these prefixes are exempt from the budgets (still answered with cookies).
    pub allow: Vec<Prefix>,
}

/// What the lists say about one client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientClass {
    /// In a deny prefix.
    pub denied: bool,
    /// In an allow prefix.
    pub allowed: bool,
}

impl ClientLists {
    /// Are both lists empty? (Then the data path skips the lookup.)
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.is_empty()
    }

    /// What the lists say about `addr`.
    pub fn classify(&self, addr: &IpAddr) -> ClientClass {
        ClientClass {
            denied: self.deny.iter().any(|p| p.contains(addr)),
            allowed: self.allow.iter().any(|p| p.contains(addr)),
        }
    }
}

// CLOCK_STEP_NS, how far `tat` may lie beyond what the budget itself can reach before the bucket
// is taken to have seen the clock step back (far more than two CPUs' clock reads ever differ by,
// so racing CPUs never reset a bucket), from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_abuse.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_stepped_back_leaves_a_full_bucket() {
        let g = Budget { rate: 10, burst: 3 }.gcra();
        let t0 = 7_200 * NS_PER_SECOND;
        let mut tat = g.first(t0);
        while let Some(t) = g.step(tat, t0) {
            tat = t;
        }
        // Spent at t0. A step back of less than CLOCK_STEP_NS beyond the reach: still spent.
        let reach = g.tolerance_ns + g.interval_ns;
        assert_eq!(g.step(tat, tat - reach - CLOCK_STEP_NS), None);
        // An hour back: the bucket is full again (burst events), not silenced for an hour.
        let back = t0 - 3_600 * NS_PER_SECOND;
        let mut n = 0;
        let mut t = tat;
        while let Some(next) = g.step(t, back) {
            t = next;
            n += 1;
        }
        assert_eq!(n, 3);
    }

    #[test]
    fn gcra_allows_the_burst_then_the_rate() {
        let g = Budget { rate: 10, burst: 3 }.gcra();
        assert_eq!(g.interval_ns, 100_000_000);
        assert_eq!(g.tolerance_ns, 200_000_000);
        let t0 = 5_000_000_000u64;
        let mut tat = g.first(t0);
        // The burst: 3 at once (the first made the bucket), the 4th refused.
        for _ in 1..3 {
            tat = g.step(tat, t0).expect("within the burst");
        }
        assert_eq!(g.step(tat, t0), None);
        assert_eq!(g.step(tat, t0 + 99_999_999), None);
        // One interval later, one more.
        tat = g.step(tat, t0 + 100_000_000).expect("refilled one");
        assert_eq!(g.step(tat, t0 + 100_000_000), None);
        // Long idle: full again, not more.
        let later = t0 + 60 * NS_PER_SECOND;
        let mut n = 0;
        while let Some(t) = g.step(tat, later) {
            tat = t;
            n += 1;
        }
        assert_eq!(n, 3);
        // Steady: rate events per second, for a long time.
        let start = later + NS_PER_SECOND;
        let mut ok = 0;
        for i in 0..10_000u64 {
            if let Some(t) = g.step(tat, start + i * 1_000_000) {
                tat = t;
                ok += 1;
            }
        }
        // 10 s at 10/s plus the refilled burst of 3.
        assert!((100..=103).contains(&ok), "{ok}");
    }

    #[test]
    fn burst_one_is_a_strict_rate() {
        let g = Budget { rate: 1, burst: 1 }.gcra();
        assert_eq!(g.tolerance_ns, 0);
        let tat = g.first(0);
        assert_eq!(g.step(tat, NS_PER_SECOND - 1), None);
        assert!(g.step(tat, NS_PER_SECOND).is_some());
    }

    #[test]
    fn keys_mask_the_client_prefix() {
        let p = ClientPrefix::default();
        assert_eq!(p.mask_v4(), [255, 255, 255, 0]);
        assert_eq!(p.mask_v6(), [255, 255, 255, 255, 255, 255, 0, 0]);
        let a = p.key(&"198.51.100.77".parse().unwrap());
        let b = p.key(&"198.51.100.200".parse().unwrap());
        let c = p.key(&"198.51.101.1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.addr, [198, 51, 100, 0, 0, 0, 0, 0]);
        assert_eq!(a.prefix(&p).to_string(), "198.51.100.0/24");
        let v6 = p.key(&"2001:db8:1:2::1".parse().unwrap());
        assert_eq!(v6, p.key(&"2001:db8:1:ffff::9".parse().unwrap()));
        assert_eq!(v6.prefix(&p).to_string(), "2001:db8:1::/48");
        // An IPv4 address never shares a bucket with an IPv6 one of the same bytes.
        let odd = ClientPrefix { v4: 32, v6: 32 };
        assert_ne!(
            odd.key(&"32.1.13.184".parse().unwrap()),
            odd.key(&"2001:db8::".parse().unwrap())
        );
        let ragged = ClientPrefix { v4: 13, v6: 0 };
        assert_eq!(ragged.mask_v4(), [255, 248, 0, 0]);
        assert_eq!(ragged.mask_v6(), [0; 8]);
    }

    #[test]
    fn deny_wins_over_allow() {
        let l = ClientLists {
            deny: vec!["10.1.0.0/16".parse().unwrap()],
            allow: vec!["10.0.0.0/8".parse().unwrap()],
        };
        let c = |a: &str| l.classify(&a.parse().unwrap());
        assert_eq!(
            c("10.1.2.3"),
            ClientClass {
                denied: true,
                allowed: true
            }
        );
        assert_eq!(
            c("10.2.0.1"),
            ClientClass {
                denied: false,
                allowed: true
            }
        );
        assert_eq!(c("11.0.0.1"), ClientClass::default());
        assert!(!l.is_empty());
        assert!(ClientLists::default().is_empty());
    }
}
