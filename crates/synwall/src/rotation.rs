//! The salt ring a node writes ahead (shared by `synwall run` and the foreground
//! `synwall edge|backend|single`): what each slot of `sw_salt_ring` must hold, and which slots to
//! write on each tick.
//!
//! The programs pick their salts from the ring with their own clock (`bpf/lib/cookie.h`): they
//! rotate at every boundary by themselves, validators at the boundary and generators `L` later,
//! while the daemon is alive or not, as long as the ring holds the epoch. The daemon's part is to
//! keep epochs `e - 1 ..= e + N` written (`N` from `node.salts_ahead_seconds`), to apply secret
//! changes, and to say what the programs do.
//!
//! The live slots are the truth: a slot is rewritten with different current salt only when no
//! reader can want it yet. So a (re)started daemon keeps the current salts it finds up to epoch
//! `e + 1` (whatever secret made them: an earlier process's, or an earlier version's), and a new
//! current master takes effect at the first boundary at least `max(2L, 1 s)` away
//! ([`RingPlan::replace_current`]). The accepted salt of a slot (SPEC 2a) is: the current
//! master's, when the slot keeps another current salt (so both the old and the new master
//! validate there), else the accepted master's.

use synwall_cookie::synwall_v1::{lag_ns, MasterSecret};
use synwall_cookie::SipKey;
use synwall_engine::salts::MAX_AHEAD_EPOCHS;
use synwall_engine::{SaltEntry, SaltRing};

/// A public name for a salt (safe to print: a MAC under the key, not the key).
pub fn key_id(k: &SipKey) -> String {
    format!("{:016x}", k.hash(b"synwall/v1 key id"))
}

/// How often a node looks at its clock and writes its heartbeat.
pub const TICK_MS: u64 = 25;

/// The fewest epochs a node writes ahead: the next one and the one after, so a daemon that is
/// late by less than an epoch never leaves the data path without salts.
pub const MIN_AHEAD_EPOCHS: u64 = 2;

/// How many epochs after the current one a node writes: `ceil(ahead_seconds / P)`, at least
/// [`MIN_AHEAD_EPOCHS`], at most what the ring holds beside the live slots.
pub fn ahead_epochs(epoch_seconds: u64, ahead_seconds: u64) -> u64 {
    ahead_seconds
        .div_ceil(epoch_seconds.max(1))
        .clamp(MIN_AHEAD_EPOCHS, MAX_AHEAD_EPOCHS)
}

/// The shortest notice a new current master gets before the first epoch it generates in:
/// `max(2L, 1 s)`. The slots from that epoch on are rewritten at once; none of them is read
/// before the notice has passed (validators read epoch `e + 1` from `L` before its start).
pub fn switch_notice_ns(epoch_ns: u64) -> u64 {
    (2 * lag_ns(epoch_ns)).max(1_000_000_000)
}

/// The master secrets a node's salts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secrets {
    /// Generates and validates.
    pub current: MasterSecret,
    /// Validates only (SPEC 2a), while a new secret is rolled out.
    pub accepted: Option<MasterSecret>,
}

/// A change of the current master: the first epoch it generates in, and how long until that
/// epoch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The first epoch of the new current master.
    pub epoch: u64,
    /// Nanoseconds from the change until that epoch starts.
    pub in_ns: u64,
}

impl Switch {
    /// `in 1.3 s`: the wait rounded UP to a tenth of a second (never promises less than it is).
    pub fn wait_text(&self) -> String {
        let tenths = self.in_ns.div_ceil(100_000_000);
        format!("in {}.{} s", tenths / 10, tenths % 10)
    }
}

/// What a node's ring must hold, and a mirror of what it holds.
#[derive(Clone, Debug)]
pub struct RingPlan {
    secrets: Secrets,
    /// Slots of epochs before this keep the current salt they hold; from it on they carry the
    /// current master's.
    since: u64,
    epoch_ns: u64,
    ahead: u64,
    /// What the maps hold (written by this plan, or found at start).
    ring: SaltRing,
}

impl RingPlan {
    /// Start at `now_unix_ns` over what the maps hold (`found`): current salts up to epoch
    /// `e + 1` are kept as found, later ones come from `secrets`.
    pub fn start(
        secrets: Secrets,
        epoch_seconds: u64,
        ahead: u64,
        found: SaltRing,
        now_unix_ns: u64,
    ) -> RingPlan {
        let epoch_ns = epoch_seconds.saturating_mul(1_000_000_000).max(1);
        RingPlan {
            secrets,
            since: now_unix_ns / epoch_ns + 2,
            epoch_ns,
            ahead,
            ring: found,
        }
    }

    /// Epochs written after the current one.
    pub fn ahead(&self) -> u64 {
        self.ahead
    }

    /// The ring as the maps hold it.
    pub fn ring(&self) -> &SaltRing {
        &self.ring
    }

    /// The epoch of UNIX time `unix_ns`.
    pub fn epoch_at(&self, unix_ns: u64) -> u64 {
        unix_ns / self.epoch_ns
    }

    /// What slot `epoch` must hold.
    pub fn desired(&self, epoch: u64) -> SaltEntry {
        let mine = SaltEntry::derive(epoch, &self.secrets.current, None);
        let current = match self.ring.get(epoch) {
            Some(found) if epoch < self.since => found.current,
            _ => mine.current,
        };
        let accepted = if current != mine.current {
            // The slot keeps another master's salt: the current master's validates there too.
            Some(mine.current)
        } else {
            self.secrets
                .accepted
                .as_ref()
                .map(|a| SaltEntry::derive(epoch, a, None).current)
        };
        SaltEntry {
            epoch,
            current,
            accepted,
        }
    }

    /// The slots to write at `now_unix_ns`: every epoch of `e - 1 ..= e + N` whose slot does not
    /// hold what it must. The mirror takes them as written (write them all, or call
    /// [`RingPlan::forget`] on failure).
    pub fn tick(&mut self, now_unix_ns: u64) -> Vec<SaltEntry> {
        let e = self.epoch_at(now_unix_ns);
        let mut out = Vec::new();
        for epoch in e.saturating_sub(1)..=e.saturating_add(self.ahead) {
            let want = self.desired(epoch);
            if self.ring.get(epoch) != Some(&want) {
                self.ring.set(want);
                out.push(want);
            }
        }
        out
    }

    /// A write of `e` failed: forget that the slot holds it, so the next tick tries again.
    pub fn forget(&mut self, e: &SaltEntry) {
        let index = SaltRing::index(e.epoch);
        self.ring.set_slot(index, SaltEntry::default());
    }

    /// A new current master at `now_unix_ns`: it generates from the first epoch that starts at
    /// least [`switch_notice_ns`] from now (the slots from there on are rewritten on the next
    /// tick, earlier ones keep their salt and accept the new master's). `None` when it is the
    /// current one already.
    pub fn replace_current(&mut self, master: MasterSecret, now_unix_ns: u64) -> Option<Switch> {
        if master == self.secrets.current {
            return None;
        }
        let at = now_unix_ns.saturating_add(switch_notice_ns(self.epoch_ns));
        let epoch = at.div_ceil(self.epoch_ns);
        self.since = epoch;
        self.secrets.current = master;
        Some(Switch {
            epoch,
            in_ns: (epoch * self.epoch_ns).saturating_sub(now_unix_ns),
        })
    }

    /// A new accepted master (or none): every slot takes it on the next tick, live ones too (a
    /// reader that catches a slot half-written can only miss a key nobody generates with yet, or
    /// any more). Returns whether it changed.
    pub fn set_accepted(&mut self, accepted: Option<MasterSecret>) -> bool {
        let changed = accepted != self.secrets.accepted;
        self.secrets.accepted = accepted;
        changed
    }

    /// Write ahead `ahead` epochs from now on.
    pub fn set_ahead(&mut self, ahead: u64) {
        self.ahead = ahead;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synwall_cookie::synwall_v1::EpochClock;
    use synwall_engine::Salts;

    const S: u64 = 1_000_000_000;
    const P: u64 = 2;

    fn master(b: u8) -> MasterSecret {
        MasterSecret([b; 32])
    }

    fn secrets(b: u8) -> Secrets {
        Secrets {
            current: master(b),
            accepted: None,
        }
    }

    fn k(m: u8, e: u64) -> SipKey {
        SaltEntry::derive(e, &master(m), None).current
    }

    /// Apply a tick's writes to `maps` (the programs' ring).
    fn write(maps: &mut SaltRing, writes: &[SaltEntry]) {
        for w in writes {
            maps.set(*w);
        }
    }

    #[test]
    fn writes_e_minus_one_to_e_plus_n_and_only_what_changed() {
        assert_eq!(ahead_epochs(2, 600), MAX_AHEAD_EPOCHS);
        assert_eq!(ahead_epochs(60, 600), 10);
        assert_eq!(ahead_epochs(60, 61), 2);
        assert_eq!(ahead_epochs(2, 1), MIN_AHEAD_EPOCHS);
        let mut p = RingPlan::start(secrets(1), P, 3, SaltRing::new(), 100 * S + S / 2);
        let w = p.tick(100 * S + S / 2);
        assert_eq!(
            w.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            vec![49, 50, 51, 52, 53]
        );
        assert!(w
            .iter()
            .all(|e| e.current == k(1, e.epoch) && e.accepted.is_none()));
        assert!(p.tick(101 * S).is_empty(), "nothing new within the epoch");
        let w = p.tick(102 * S);
        assert_eq!(w.iter().map(|e| e.epoch).collect::<Vec<_>>(), vec![54]);
        // A failed write is tried again.
        p.forget(&w[0]);
        assert_eq!(p.tick(102 * S + 1).len(), 1);
    }

    #[test]
    fn a_restart_keeps_the_live_slots_it_finds() {
        // The previous process wrote 49..=53 from secret 1; this one has secret 2.
        let mut maps = SaltRing::derive(49, 53, &master(1), None);
        let now = 100 * S + S / 2;
        let mut p = RingPlan::start(secrets(2), P, 3, maps.clone(), now);
        let w = p.tick(now);
        write(&mut maps, &w);
        // Epochs up to e + 1 = 51 keep secret 1's salt and accept secret 2's; 52.. are secret 2's.
        for e in 49..=51 {
            let s = maps.get(e).unwrap();
            assert_eq!((s.current, s.accepted), (k(1, e), Some(k(2, e))), "{e}");
        }
        for e in 52..=53 {
            let s = maps.get(e).unwrap();
            assert_eq!((s.current, s.accepted), (k(2, e), None), "{e}");
        }
        // The same secret: nothing to write at all.
        let mut same = RingPlan::start(secrets(2), P, 3, maps.clone(), now);
        assert!(same.tick(now).is_empty());
    }

    #[test]
    fn a_new_secret_waits_for_a_boundary_far_enough_and_live_slots_never_change() {
        let mut maps = SaltRing::new();
        let mut p = RingPlan::start(secrets(1), P, 4, SaltRing::new(), 100 * S);
        write(&mut maps, &p.tick(100 * S));
        // At 101.2 s (0.8 s before epoch 51 starts): the notice is max(2L, 1 s) = 1 s, so the
        // switch is at epoch 52, 2.8 s away.
        let now = 101 * S + S / 5;
        let sw = p.replace_current(master(2), now).unwrap();
        assert_eq!(sw.epoch, 52);
        assert_eq!(sw.in_ns, 2 * S + 4 * S / 5);
        assert_eq!(sw.wait_text(), "in 2.8 s");
        assert_eq!(p.replace_current(master(2), now), None, "unchanged");
        let before = maps.clone();
        let w = p.tick(now);
        write(&mut maps, &w);
        for e in 49..=51 {
            assert_eq!(maps.get(e).unwrap().current, before.get(e).unwrap().current);
            assert_eq!(maps.get(e).unwrap().accepted, Some(k(2, e)));
        }
        for e in 52..=54 {
            assert_eq!(maps.get(e).unwrap().current, k(2, e), "{e}");
            assert_eq!(maps.get(e).unwrap().accepted, None, "{e}");
        }
        // Rounded up, never down: 1.21 s is "in 1.3 s".
        let s = Switch {
            epoch: 0,
            in_ns: 1_210_000_000,
        };
        assert_eq!(s.wait_text(), "in 1.3 s");
        // Right after a boundary the next one is far enough: 1.9 s away.
        let mut q = RingPlan::start(secrets(1), P, 2, SaltRing::new(), 200 * S);
        let sw = q.replace_current(master(3), 200 * S + S / 10).unwrap();
        assert_eq!((sw.epoch, sw.wait_text()), (101, "in 1.9 s".to_string()));
    }

    /// Staged rollout (SPEC 2a) over two nodes that take each step at different moments, some
    /// in different epochs: at every millisecond, what either node generates, the other accepts.
    #[test]
    fn staged_rollout_never_rejects_what_a_peer_issues() {
        let (old, new) = (master(1), master(2));
        let start = 1000 * S;
        let clock = EpochClock::new(P, 0);
        let mut nodes: Vec<(RingPlan, SaltRing)> = (0..2)
            .map(|_| {
                let mut p = RingPlan::start(
                    Secrets {
                        current: old.clone(),
                        accepted: None,
                    },
                    P,
                    3,
                    SaltRing::new(),
                    start,
                );
                let mut maps = SaltRing::new();
                write(&mut maps, &p.tick(start));
                (p, maps)
            })
            .collect();
        // When each node takes each step (ms after start): step 1 and 2 of node 1 in other
        // epochs than node 0's, step 2 of node 0 right before a boundary.
        let steps = [[1_300, 5_990, 14_100], [3_700, 8_250, 14_900]];
        for ms in 0..20_000u64 {
            let now = start + ms * 1_000_000;
            for (i, (plan, maps)) in nodes.iter_mut().enumerate() {
                if ms == steps[i][0] {
                    plan.set_accepted(Some(new.clone()));
                }
                if ms == steps[i][1] {
                    plan.replace_current(new.clone(), now);
                    plan.set_accepted(Some(old.clone()));
                }
                if ms == steps[i][2] {
                    plan.set_accepted(None);
                }
                if ms % 25 == 0 || ms == steps[i][0] || ms == steps[i][1] || ms == steps[i][2] {
                    write(maps, &plan.tick(now));
                }
            }
            for (a, b) in [(0, 1), (1, 0)] {
                let gen = Salts::new(nodes[a].1.clone(), clock);
                let val = Salts::new(nodes[b].1.clone(), clock);
                let issued = gen.generation(now).expect("salts").current;
                let acc = clock.validation(now).unwrap();
                let mut ok = false;
                for e in [acc.epoch, acc.epoch - 1, acc.epoch + 1] {
                    if e == acc.epoch + 1 && !acc.next {
                        continue;
                    }
                    if let Some(s) = val.ring.get(e) {
                        ok |= s.current == issued || s.accepted == Some(issued);
                    }
                }
                assert!(ok, "{ms} ms: node {b} rejects what node {a} issues");
            }
        }
        // Both ended on the new secret alone.
        let e = (start + 20 * S) / (P * S);
        for (_, maps) in &nodes {
            let s = maps.get(e).unwrap();
            assert_eq!((s.current, s.accepted), (k(2, e), None));
        }
    }

    /// The same rollout with step 1 skipped on one node: a peer that switched issues cookies the
    /// node rejects (what the staged procedure prevents).
    #[test]
    fn skipping_step_one_loses_handshakes() {
        let (old, new) = (master(1), master(2));
        let start = 1000 * S;
        let clock = EpochClock::new(P, 0);
        let mut a = RingPlan::start(secrets(1), P, 3, SaltRing::new(), start);
        let mut b = RingPlan::start(secrets(1), P, 3, SaltRing::new(), start);
        let (mut ma, mut mb) = (SaltRing::new(), SaltRing::new());
        write(&mut ma, &a.tick(start));
        write(&mut mb, &b.tick(start));
        // Node a goes straight to step 2; node b has not heard of the new secret.
        a.replace_current(new, start + S / 10);
        a.set_accepted(Some(old));
        let mut rejected = 0;
        for ms in (100..10_000u64).step_by(25) {
            let now = start + ms * 1_000_000;
            write(&mut ma, &a.tick(now));
            write(&mut mb, &b.tick(now));
            let issued = Salts::new(ma.clone(), clock)
                .generation(now)
                .unwrap()
                .current;
            let acc = clock.validation(now).unwrap();
            let ok = [acc.epoch, acc.epoch - 1]
                .iter()
                .filter_map(|e| mb.get(*e))
                .any(|s| s.current == issued || s.accepted == Some(issued));
            rejected += usize::from(!ok);
        }
        assert!(rejected > 100, "only {rejected} ticks rejected");
    }
}
