//! When each role switches to a new epoch's salts; shared by `synwall run` and the foreground
//! `synwall edge|backend|single`.
//!
//! Validators (backends) switch at the boundary itself; edges `edge_lag_ms` later. Every node
//! polls its own clock, so without the lag an edge could issue a cookie under `K_{e+1}` a few
//! milliseconds before a backend elsewhere accepts `K_{e+1}`, and that handshake would fail.
//!
//! The live salts are the truth: at a boundary into `e` the new salts are `{K_e of the master
//! secret, previous = the live K_{e-1}}`, so a replaced master secret takes effect at the next
//! boundary and the old secret's last salt still validates for one epoch.

use synwall_cookie::synwall_v1::{epoch_of, EpochKeys, MasterSecret};

/// The salts for epoch `e`: `K_e` of `master`, and as previous the live `K_{e-1}` if `live`
/// holds it (whatever secret made it), else `K_{e-1}` of `master`.
pub fn keys_for(master: &MasterSecret, e: u64, live: Option<&EpochKeys>) -> EpochKeys {
    let fresh = EpochKeys::derive(master, e);
    match live {
        Some(l) if l.epoch.wrapping_add(1) == e => EpochKeys {
            epoch: e,
            current: fresh.current,
            previous: l.current,
        },
        _ => fresh,
    }
}

/// A public name for a salt (safe to print: a MAC under the key, not the key).
pub fn key_id(k: &synwall_cookie::SipKey) -> String {
    format!("{:016x}", k.hash(b"synwall/v1 key id"))
}

/// How long after an epoch boundary edges start issuing the new epoch's cookies, so a cookie an
/// edge issues is never newer than what the backends accept, even with each node's rotation a
/// few milliseconds off. (Cookies then live `P - lag` to `2P - lag`.)
pub fn edge_lag_ms(epoch_seconds: u64) -> u64 {
    (epoch_seconds * 1000 / 8).min(250)
}

/// How often a node looks at its clock: rotations land within this of their time.
pub const TICK_MS: u64 = 25;

/// What one `tick` changed: the salts to write into each role's maps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    pub backend: Option<EpochKeys>,
    pub edge: Option<EpochKeys>,
}

/// The salts each role holds now, and the master secret the next ones come from.
#[derive(Debug, Clone)]
pub struct Salts {
    master: MasterSecret,
    period: u64,
    /// What validators (backends) hold: always the newest.
    backend: EpochKeys,
    /// What edges hold: the backend's, `edge_lag_ms` later.
    edge: EpochKeys,
}

impl Salts {
    /// Start at `now_ms`, continuing from `live` (the salts an adopted map holds) if it is of
    /// this epoch or the one before. The edge starts on the epoch its lag puts it in.
    pub fn start(master: MasterSecret, period: u64, live: Option<EpochKeys>, now_ms: u64) -> Salts {
        let e = epoch_of(now_ms / 1000, period);
        let backend = match live {
            Some(l) if l.epoch == e => l,
            other => keys_for(&master, e, other.as_ref()),
        };
        let e_edge = epoch_of(now_ms.saturating_sub(edge_lag_ms(period)) / 1000, period);
        let edge = if e_edge == e {
            backend
        } else {
            // Within the lag after a boundary: the edge keeps issuing the epoch before.
            match live {
                Some(l) if l.epoch == e_edge => l,
                // An adopted backend already switched: its previous is what edges still issue.
                Some(l) if l.epoch == e => EpochKeys {
                    epoch: e_edge,
                    current: l.previous,
                    previous: EpochKeys::derive(&master, e_edge.saturating_sub(1)).current,
                },
                _ => EpochKeys::derive(&master, e_edge),
            }
        };
        Salts {
            master,
            period,
            backend,
            edge,
        }
    }

    /// The salts the backend role holds (the newest).
    pub fn backend(&self) -> &EpochKeys {
        &self.backend
    }

    /// The salts the edge role holds.
    pub fn edge(&self) -> &EpochKeys {
        &self.edge
    }

    /// Replace the master secret; returns whether it differed. It takes effect at the next
    /// boundary (the live salt stays the previous one for one more epoch).
    pub fn replace_master(&mut self, master: MasterSecret) -> bool {
        let changed = master.0 != self.master.0;
        self.master = master;
        changed
    }

    /// Advance to `now_ms`: the backend switches at the boundary, the edge `edge_lag_ms` later.
    pub fn tick(&mut self, now_ms: u64) -> Rotated {
        let mut out = Rotated::default();
        let e = epoch_of(now_ms / 1000, self.period);
        if e != self.backend.epoch {
            self.backend = keys_for(&self.master, e, Some(&self.backend));
            out.backend = Some(self.backend);
        }
        let e_edge = epoch_of(
            now_ms.saturating_sub(edge_lag_ms(self.period)) / 1000,
            self.period,
        );
        if e_edge != self.edge.epoch {
            // The backend's salts of that epoch: both roles write the same key.
            self.edge = if self.backend.epoch == e_edge {
                self.backend
            } else {
                keys_for(&self.master, e_edge, Some(&self.edge))
            };
            out.edge = Some(self.edge);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 2;

    fn master(b: u8) -> MasterSecret {
        MasterSecret([b; 32])
    }

    #[test]
    fn backend_at_the_boundary_edge_after_its_lag() {
        let lag = edge_lag_ms(P);
        assert_eq!(lag, 250);
        let mut s = Salts::start(master(1), P, None, 10_000 + 500);
        assert_eq!((s.backend().epoch, s.edge().epoch), (5, 5));
        assert_eq!(s.tick(11_999), Rotated::default());
        let r = s.tick(12_000);
        assert_eq!(r.backend.map(|k| k.epoch), Some(6));
        assert_eq!(r.edge, None, "the edge must not switch at the boundary");
        assert_eq!(s.tick(12_000 + lag - 1), Rotated::default());
        let r = s.tick(12_000 + lag);
        assert_eq!(r.backend, None);
        assert_eq!(
            r.edge,
            Some(*s.backend()),
            "the edge takes the backend's salts"
        );
        // Independently derived: K_6 current, K_5 previous.
        let k5 = EpochKeys::derive(&master(1), 5);
        let k6 = EpochKeys::derive(&master(1), 6);
        assert_eq!(s.edge().current, k6.current);
        assert_eq!(s.edge().previous, k5.current);
    }

    #[test]
    fn edge_never_ahead_of_backend_at_any_millisecond() {
        let mut s = Salts::start(master(2), P, None, 20_000);
        for t in (20_000..40_000).step_by(7) {
            s.tick(t);
            assert!(s.edge().epoch <= s.backend().epoch, "t={t}");
            // What the edge issues validates at the backend (current or previous).
            let e = s.edge().current;
            assert!(
                e == s.backend().current || e == s.backend().previous,
                "t={t}"
            );
        }
    }

    #[test]
    fn start_within_the_lag_keeps_the_edge_on_the_epoch_before() {
        let s = Salts::start(master(3), P, None, 12_100);
        assert_eq!((s.backend().epoch, s.edge().epoch), (6, 5));
        assert_eq!(s.edge().current, s.backend().previous);
        // Adopted within the lag from a backend already on epoch 6 under another secret.
        let live = keys_for(&master(9), 6, Some(&EpochKeys::derive(&master(8), 5)));
        let s = Salts::start(master(3), P, Some(live), 12_100);
        assert_eq!(*s.backend(), live);
        assert_eq!(s.edge().epoch, 5);
        assert_eq!(s.edge().current, EpochKeys::derive(&master(8), 5).current);
    }

    #[test]
    fn adopted_salts_continue_and_a_new_secret_waits_for_the_boundary() {
        let old = EpochKeys::derive(&master(4), 5);
        // Adopted one epoch late: previous = the live K_5 of the old secret.
        let mut s = Salts::start(master(5), P, Some(old), 12_500);
        assert_eq!(s.backend().previous, old.current);
        assert_eq!(
            s.backend().current,
            EpochKeys::derive(&master(5), 6).current
        );
        assert!(s.replace_master(master(6)));
        assert!(!s.replace_master(master(6)));
        let before = *s.backend();
        s.tick(13_999);
        assert_eq!(*s.backend(), before, "a new secret waits for the boundary");
        s.tick(14_000);
        assert_eq!(s.backend().previous, before.current);
        assert_eq!(
            s.backend().current,
            EpochKeys::derive(&master(6), 7).current
        );
    }

    #[test]
    fn a_stalled_node_catches_up_without_a_stale_previous() {
        let mut s = Salts::start(master(7), P, None, 10_000);
        let r = s.tick(30_000);
        let k = r.backend.unwrap();
        assert_eq!(k.epoch, 15);
        assert_eq!(k, EpochKeys::derive(&master(7), 15));
    }
}
