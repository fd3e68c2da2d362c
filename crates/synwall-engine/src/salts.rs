//! The salts the data path holds: a ring of per-epoch salts written ahead by the daemon, and the
//! clock rule that picks from it (docs/SPEC-PROPOSALS.md, section 2). The BPF maps `sw_salt_ring`
//! and `sw_clock` (`bpf/lib/maps.h`) hold exactly this; [`Salts`] is their mirror, and the choices
//! below are `bpf/lib/cookie.h`'s (`sw_generation_salt`, `sw_validate_ring`).
//!
//! - Generation (edge, single node): the salt of `g = e(now - L)`; its slot missing -> stale (the
//!   SYN goes to the kernel behind, `syn_pass_stale`).
//! - Validation (backend, strict edge): `v = e(now)`; the current salts of slots `v`, `v - 1` and,
//!   in the last `L` of `v`, `v + 1`, then the accepted salts of the same slots. Slot `v` missing
//!   and no match -> stale (passed: the kernel judges the segment).

use synwall_cookie::synwall_v1::{self as v1, Accepts, EpochClock, EpochKeys};
use synwall_cookie::{Ack, Decoded, SipKey};

// SALT_RING_SLOTS, the slots in the ring (slot of epoch `e` = `e % SALT_RING_SLOTS`), from
// `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_salts.rs"));
// The C picks the slot as `epoch & (SW_SALT_RING - 1)`.
const _: () = assert!(SALT_RING_SLOTS.is_power_of_two());
/// How far ahead a daemon may write: the ring minus the live slots `e - 1`, `e`, `e + 1`.
pub const MAX_AHEAD_EPOCHS: u64 = SALT_RING_SLOTS as u64 - 3;

/// One slot of the ring (`struct sw_salt_entry`). A slot holds the salts of epoch `epoch`; a
/// reader that wants another epoch finds it missing. A map that was never written holds zeros
/// (epoch 0, a zero key, no accepted key), and so does [`SaltEntry::default`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaltEntry {
    /// The epoch this slot holds.
    pub epoch: u64,
    /// `K_e` of the current master secret: generates and validates.
    pub current: SipKey,
    /// `K'_e` of the accepted master secret (SPEC 2a): validates only.
    pub accepted: Option<SipKey>,
}

impl SaltEntry {
    /// The slot of `epoch` made from `current` (and `accepted`) master secrets.
    pub fn derive(
        epoch: u64,
        current: &v1::MasterSecret,
        accepted: Option<&v1::MasterSecret>,
    ) -> Self {
        SaltEntry {
            epoch,
            current: SipKey::from_bytes(&v1::derive_salt(current, epoch)),
            accepted: accepted.map(|a| SipKey::from_bytes(&v1::derive_salt(a, epoch))),
        }
    }
}

/// The ring: [`SALT_RING_SLOTS`] slots, epoch `e` in slot `e % SALT_RING_SLOTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaltRing {
    slots: Box<[SaltEntry; SALT_RING_SLOTS]>,
}

impl Default for SaltRing {
    fn default() -> Self {
        SaltRing {
            slots: Box::new([SaltEntry::default(); SALT_RING_SLOTS]),
        }
    }
}

impl SaltRing {
    /// An empty ring (every slot zero, as a fresh map).
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot index of `epoch`.
    #[inline]
    pub fn index(epoch: u64) -> usize {
        (epoch % SALT_RING_SLOTS as u64) as usize
    }

    /// The salts of `epoch`, if its slot holds that epoch.
    #[inline]
    pub fn get(&self, epoch: u64) -> Option<&SaltEntry> {
        let s = &self.slots[Self::index(epoch)];
        (s.epoch == epoch).then_some(s)
    }

    /// Slot `index` as it is, whatever epoch it holds.
    pub fn slot(&self, index: usize) -> &SaltEntry {
        &self.slots[index]
    }

    /// Write `entry` into its epoch's slot.
    pub fn set(&mut self, entry: SaltEntry) {
        self.slots[Self::index(entry.epoch)] = entry;
    }

    /// Write slot `index` as it is (mirroring a map, whatever it holds).
    pub fn set_slot(&mut self, index: usize, entry: SaltEntry) {
        self.slots[index] = entry;
    }

    /// A ring holding what [`EpochKeys`] holds: `K_e` as epoch `e`'s salt and `K_{e-1}` as epoch
    /// `e - 1`'s.
    pub fn from_keys(keys: &EpochKeys) -> Self {
        let mut r = SaltRing::new();
        r.set(SaltEntry {
            epoch: keys.epoch.wrapping_sub(1),
            current: keys.previous,
            accepted: None,
        });
        r.set(SaltEntry {
            epoch: keys.epoch,
            current: keys.current,
            accepted: None,
        });
        r
    }

    /// A ring with the slots `first..=last` derived from the master secrets.
    pub fn derive(
        first: u64,
        last: u64,
        current: &v1::MasterSecret,
        accepted: Option<&v1::MasterSecret>,
    ) -> Self {
        let mut r = SaltRing::new();
        for e in first..=last {
            r.set(SaltEntry::derive(e, current, accepted));
        }
        r
    }

    /// The last epoch of the run of present slots that starts at `from` (`None` if `from` is
    /// missing): the data path validates up to the end of that epoch and generates until `L`
    /// after it.
    pub fn covered_until(&self, from: u64) -> Option<u64> {
        self.get(from)?;
        let mut last = from;
        for _ in 1..SALT_RING_SLOTS {
            let next = last.wrapping_add(1);
            if self.get(next).is_none() {
                break;
            }
            last = next;
        }
        Some(last)
    }
}

/// What a validator makes of an ACK's cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// It validates under one of the salts tried: the options it carries.
    Valid(Decoded),
    /// It does not, and the salts of the live epoch are there: a bad cookie.
    Invalid,
    /// It does not, and the ring has no slot for the live epoch: nothing can be judged.
    Stale,
}

/// The data path's salts: the ring and the clock rule that reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Salts {
    /// The per-epoch salts.
    pub ring: SaltRing,
    /// Epoch length, lag and TAI offset.
    pub clock: EpochClock,
    /// UNIX nanoseconds until which strict mode passes what it cannot validate, as while stale:
    /// the daemon sets it a few seconds ahead when it writes salts into a ring that had none
    /// for the live epoch, so the handshakes the kernel behind answered meanwhile, whose ACKs
    /// are still on their way, complete.
    pub strict_grace_until_ns: u64,
}

impl Salts {
    /// `ring` read with `clock` (no grace).
    pub fn new(ring: SaltRing, clock: EpochClock) -> Self {
        Salts {
            ring,
            clock,
            strict_grace_until_ns: 0,
        }
    }

    /// Does strict mode at `now_tai_ns` pass what it cannot validate (stale, or in the grace
    /// after)?
    #[inline]
    pub fn strict_passes(&self, now_tai_ns: u64) -> bool {
        self.validation_stale(now_tai_ns)
            || self.clock.unix_ns(now_tai_ns) < self.strict_grace_until_ns
    }

    /// Salts for tests and offline tools: the ring holds `keys` (`K_e`, `K_{e-1}`), epochs are
    /// `epoch_seconds` long, TAI = UNIX time.
    pub fn from_keys(keys: &EpochKeys, epoch_seconds: u64) -> Self {
        Salts::new(SaltRing::from_keys(keys), EpochClock::new(epoch_seconds, 0))
    }

    /// The salt a generator issues cookies with at `now_tai_ns`; `None`: stale.
    #[inline]
    pub fn generation(&self, now_tai_ns: u64) -> Option<&SaltEntry> {
        self.ring.get(self.clock.generation_epoch(now_tai_ns)?)
    }

    /// The slots a validator tries at `now_tai_ns`, in order (`v`, `v - 1`, `v + 1` in the last
    /// `L`), each `None` when missing; and whether the live epoch's slot is missing (stale).
    fn accepted_slots(&self, now_tai_ns: u64) -> ([Option<&SaltEntry>; 3], bool) {
        let Some(Accepts { epoch: v, next }) = self.clock.validation(now_tai_ns) else {
            return ([None; 3], true);
        };
        let live = self.ring.get(v);
        let slots = [
            live,
            self.ring.get(v.wrapping_sub(1)),
            if next {
                self.ring.get(v.wrapping_add(1))
            } else {
                None
            },
        ];
        (slots, live.is_none())
    }

    /// Does a validator at `now_tai_ns` lack the live epoch's salts (nothing can be judged)?
    #[inline]
    pub fn validation_stale(&self, now_tai_ns: u64) -> bool {
        match self.clock.validation(now_tai_ns) {
            Some(a) => self.ring.get(a.epoch).is_none(),
            None => true,
        }
    }

    /// Validate `ack` at `now_tai_ns`: the current salt of each slot tried, then the accepted
    /// ones. (The order changes only the cost: the result is the same.)
    pub fn validate(&self, cfg: &v1::Config, ack: &Ack, now_tai_ns: u64) -> Validation {
        let (slots, stale) = self.accepted_slots(now_tai_ns);
        let bits = v1::ack_option_bits(ack);
        let keys = slots
            .iter()
            .flatten()
            .map(|s| s.current)
            .chain(slots.iter().flatten().filter_map(|s| s.accepted));
        for key in keys {
            if v1::check_with_key(&key, ack, bits) {
                return Validation::Valid(v1::decode(cfg, &ack.flow.addrs, bits));
            }
        }
        if stale {
            Validation::Stale
        } else {
            Validation::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synwall_cookie::synwall_v1::MasterSecret;
    use synwall_cookie::{Addrs, Flow, SynOptions, Timestamps};

    fn flow() -> Flow {
        Flow {
            addrs: Addrs::V4 {
                client: [192, 0, 2, 1],
                service: [198, 51, 100, 1],
            },
            client_port: 40_000,
            service_port: 443,
        }
    }

    /// The ACK completing a handshake whose SYN+ACK was made under `key`.
    fn ack_under(key: &SipKey, ts: bool) -> Ack {
        let cfg = v1::Config::default();
        let syn = synwall_cookie::Syn {
            flow: flow(),
            isn: 1000,
            options: SynOptions {
                mss: Some(1460),
                wscale: Some(7),
                sack_permitted: true,
                timestamps: ts,
                ece_cwr: false,
            },
        };
        let issued = v1::generate(&cfg, key, &syn, 5_000);
        Ack {
            flow: flow(),
            seq: 1001,
            ack: issued.isn.wrapping_add(1),
            timestamps: issued.tsval.map(|tsecr| Timestamps { tsval: 9, tsecr }),
        }
    }

    #[test]
    fn generation_and_validation_follow_the_clock() {
        let (a, b) = (MasterSecret([1; 32]), MasterSecret([2; 32]));
        // Epochs 99..=102 of a, epoch 101 also accepting b; 2 s epochs, L = 250 ms.
        let mut ring = SaltRing::derive(99, 102, &a, None);
        ring.set(SaltEntry::derive(101, &a, Some(&b)));
        let s = Salts::new(ring, EpochClock::new(2, 0));
        let at = |ms: u64| ms * 1_000_000;
        let key = |m: &MasterSecret, e| SaltEntry::derive(e, m, None).current;
        let cfg = v1::Config::default();
        let valid = |k: &SipKey, t| {
            matches!(
                s.validate(&cfg, &ack_under(k, true), t),
                Validation::Valid(_)
            )
        };
        // Generation: epoch 100 is [200 s, 202 s); generators switch to it at 200.25 s.
        assert_eq!(s.generation(at(200_249)).unwrap().epoch, 99);
        assert_eq!(s.generation(at(200_250)).unwrap().epoch, 100);
        assert_eq!(s.generation(at(202_250)).unwrap().epoch, 101);
        assert_eq!(s.generation(at(206_249)).unwrap().epoch, 102);
        assert!(s.generation(at(206_250)).is_none(), "103 was never written");
        // Validation at 200.5 s (v = 100): 100 and 99, not 101 (not in the last L), not 98.
        assert!(valid(&key(&a, 100), at(200_500)));
        assert!(valid(&key(&a, 99), at(200_500)));
        assert!(!valid(&key(&a, 101), at(200_500)));
        assert!(!valid(&key(&a, 98), at(200_500)));
        // In the last L of 100: 101 too, and its accepted key b.
        assert!(valid(&key(&a, 101), at(201_750)));
        assert!(valid(&key(&b, 101), at(201_750)));
        assert!(!valid(&key(&b, 101), at(201_749)));
        assert!(
            !valid(&key(&b, 100), at(202_500)),
            "b is accepted in 101 only"
        );
        assert!(valid(&key(&b, 101), at(203_999)), "as v - 1 of 102");
        // Without timestamps as well.
        assert!(matches!(
            s.validate(&cfg, &ack_under(&key(&a, 100), false), at(201_000)),
            Validation::Valid(_)
        ));
        // A bad cookie is invalid while the live slot is there, stale once it is not.
        let bad = ack_under(&key(&b, 100), true);
        assert_eq!(s.validate(&cfg, &bad, at(201_000)), Validation::Invalid);
        assert_eq!(s.validate(&cfg, &bad, at(206_000)), Validation::Stale);
        // Past the ring's end the last slot still validates as v - 1 (the cookies it issued).
        assert!(valid(&key(&a, 102), at(206_100)));
        let none = Salts::new(SaltRing::derive(99, 102, &a, None), EpochClock::default());
        assert_eq!(none.validate(&cfg, &bad, 0), Validation::Stale);
        assert!(none.generation(at(200_500)).is_none());
    }

    #[test]
    fn a_zeroed_ring_holds_nothing_but_epoch_zero() {
        let r = SaltRing::new();
        assert!(r.get(1).is_none() && r.get(256).is_none());
        assert_eq!(r.get(0), Some(&SaltEntry::default()));
        let a = MasterSecret([3; 32]);
        let mut r = SaltRing::derive(10, 20, &a, None);
        assert_eq!(r.covered_until(10), Some(20));
        assert_eq!(r.covered_until(15), Some(20));
        assert_eq!(r.covered_until(21), None);
        // An epoch 256 later lands on the same slot and replaces it.
        r.set(SaltEntry::derive(15 + 256, &a, None));
        assert!(r.get(15).is_none());
        assert_eq!(r.covered_until(10), Some(14));
        let k = EpochKeys::derive(&a, 40);
        let r = SaltRing::from_keys(&k);
        assert_eq!(r.get(40).unwrap().current, k.current);
        assert_eq!(r.get(39).unwrap().current, k.previous);
    }
}
