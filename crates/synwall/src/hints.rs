//! Hints: when a counter that a working node keeps at zero (or still) counts, the likely cause and
//! the fix, in one line. `synwall status` prints them under its page and in `hints` of `--json`.
//!
//! The daemon logs them too ([`HintLog`]): it reads its pins every few seconds and logs each hint
//! whose counter grew since the reading before, at most once per counter every few minutes.

use crate::snapshot::{Role, Snapshot};
use crate::status_view::matching;
use serde::Serialize;
use std::collections::BTreeMap;
use synwall_engine::Counter;

/// One hint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hint {
    /// What counted: a counter's metric name (as in `/metrics` and `synwall status`), or
    /// `xdp_tx_errors`, the interface driver's statistic (`ethtool -S`).
    pub counter: String,
    /// The program it belongs to.
    pub role: Role,
    /// The interface, for a driver statistic.
    pub interface: Option<String>,
    /// Its value now.
    pub total: u64,
    /// How much it grew since the previous reading; `None` without one.
    pub grew: Option<u64>,
    /// The likely cause and the fix.
    pub text: String,
}

impl Hint {
    /// The hint as one line: what counted, how much, the cause and the fix.
    pub fn line(&self) -> String {
        let place = match &self.interface {
            Some(i) => format!("{} on {i}", self.counter),
            None => format!("{} ({})", self.counter, self.role.as_str()),
        };
        let growth = match self.grew {
            Some(0) => ", not growing now".to_string(),
            Some(n) => format!(", +{n} since the last reading"),
            None => String::new(),
        };
        format!("{place} is {}{growth}: {}", self.total, self.text)
    }
}

/// When a counter deserves a hint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    /// A working node never counts it: whenever it is non-zero.
    NonZero,
    /// Some of it is normal (scans, stray packets): only while it grows.
    Growing,
}

/// The counters with a known likely cause, and the words for it.
const COUNTERS: &[(Counter, When, &str)] = &[
    (
        Counter::DropSynChecksum,
        When::NonZero,
        "SYNs with a bad checksum are dropped. Senders on this host or behind a veth (network \
         namespaces, containers) leave the TCP checksum to TX offload, unfinished when XDP sees \
         it: turn it off on the sending interface (`ethtool -K <sending veth> tx off`). From a \
         real network these are damaged or forged SYNs.",
    ),
    (
        Counter::DropSynackRoom,
        When::NonZero,
        "SYNs could not be answered: the driver left too little room after the frame to build \
         the SYN+ACK in place (native XDP on a veth offers tailroom only up to the next 64-byte \
         boundary). If it keeps growing, try generic mode (edge.xdp_mode = \"generic\", or \
         --xdp-mode generic).",
    ),
    (
        Counter::BackendKfuncEinval,
        When::NonZero,
        "the kernel refused to create sockets from valid cookie ACKs: check \
         net.ipv4.tcp_syncookies (1 or 2), tcp_sack, tcp_timestamps and tcp_window_scaling on \
         this host, or set node.set_sysctls = true (--set-sysctls).",
    ),
    (
        Counter::BackendKfuncEnetunreach,
        When::NonZero,
        "the listening socket is in another network namespace than the interface the backend \
         is attached to: attach the backend in the server's namespace.",
    ),
    (
        Counter::BackendKfuncEnomem,
        When::Growing,
        "the kernel had no memory for new sockets: the host is short of memory.",
    ),
    (
        Counter::BackendAckInvalid,
        When::Growing,
        "handshake ACKs whose cookie does not validate here are dropped. If they are your \
         clients' (connections hang after the SYN+ACK), every node needs the same secret_file \
         contents, [cookie] section and epoch_seconds, and clocks within an epoch of each other \
         (`synwall cookie check` says why one ACK fails); otherwise they are forged ACKs.",
    ),
    (
        Counter::DropSynBudget,
        When::Growing,
        "SYNs over their client prefix's reflection budget are dropped unanswered (`synwall \
         status` names the prefixes being limited). Spoofed SYNs aimed at those prefixes are \
         what the budget is for; if they are your clients (many behind one NAT or proxy), \
         raise edge.budget.rate and burst or list the prefix in [edge.allow].",
    ),
    (
        Counter::DropFlowBudget,
        When::Growing,
        "validated handshake ACKs over their client prefix's budget of new flows are dropped \
         (strict mode; their next segment retries). If these are your clients (many behind one \
         NAT), raise edge.flow_budget.rate and burst or list the prefix in [edge.allow].",
    ),
    (
        Counter::BackendNoListener,
        When::Growing,
        "ACKs arrive for a protected port nothing listens on here (the kernel resets them): \
         start the server, or take the port out of services.protect.",
    ),
];

/// The words for an edge interface whose driver drops the SYN+ACKs it is given (XDP_TX).
const XDP_TX_ERRORS: &str = "the driver failed to send SYN+ACKs the edge answered with \
    XDP_TX. A veth delivers XDP_TX frames only when its peer has an XDP program too: attach \
    one on the peer, or run the edge in generic mode (edge.xdp_mode = \"generic\", or \
    --xdp-mode generic).";

/// The hints for reading `cur`, with `prev` (the reading before, if any) for growth.
pub fn hints(cur: &Snapshot, prev: Option<&Snapshot>) -> Vec<Hint> {
    let mut out = Vec::new();
    for (i, p) in cur.programs.iter().enumerate() {
        let before = prev.and_then(|prev| matching(cur, i, prev));
        for &(c, when, text) in COUNTERS {
            if !p.role.counts(c) {
                continue;
            }
            let total = p.counters.get(c);
            let grew = before.map(|b| total.saturating_sub(b.counters.get(c)));
            let show = match when {
                When::NonZero => total > 0,
                When::Growing => grew.map_or(total > 0, |g| g > 0),
            };
            if show {
                out.push(Hint {
                    counter: c.name().to_string(),
                    role: p.role,
                    interface: None,
                    total,
                    grew,
                    text: text.to_string(),
                });
            }
        }
        for (iface, &total) in &p.xdp_tx_errors {
            if total == 0 {
                continue;
            }
            let grew = before
                .map(|b| total.saturating_sub(b.xdp_tx_errors.get(iface).copied().unwrap_or(0)));
            out.push(Hint {
                counter: "xdp_tx_errors".into(),
                role: p.role,
                interface: Some(iface.clone()),
                total,
                grew,
                text: format!("{XDP_TX_ERRORS} (`ethtool -S {iface}` shows it per queue)"),
            });
        }
    }
    out
}

/// The daemon's side: which hints to log for each new reading. A hint is logged when its counter
/// grew since the reading before (so nothing is said about counts from before the daemon
/// started, or a counter that stopped growing), and then not again for the same counter (per
/// program role and interface) until `every` has passed.
pub struct HintLog {
    every_ms: u64,
    prev: Option<Snapshot>,
    /// When each hint was last logged (the reading's time), by counter, role and interface.
    logged: BTreeMap<(String, Role, Option<String>), u64>,
}

impl HintLog {
    /// A log that repeats a hint at most once per `every`.
    pub fn new(every: std::time::Duration) -> HintLog {
        HintLog {
            every_ms: every.as_millis() as u64,
            prev: None,
            logged: BTreeMap::new(),
        }
    }

    /// The hints to log for the reading `cur` (the first reading only sets the baseline).
    pub fn next(&mut self, cur: Snapshot) -> Vec<Hint> {
        let mut out = Vec::new();
        if let Some(prev) = &self.prev {
            for h in hints(&cur, Some(prev)) {
                if h.grew.unwrap_or(0) == 0 {
                    continue;
                }
                let key = (h.counter.clone(), h.role, h.interface.clone());
                let due = self
                    .logged
                    .get(&key)
                    .is_none_or(|&t| cur.taken_ms >= t.saturating_add(self.every_ms));
                if due {
                    self.logged.insert(key, cur.taken_ms);
                    out.push(h);
                }
            }
        }
        self.prev = Some(cur);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::sample;

    fn find<'a>(h: &'a [Hint], counter: &str) -> Option<&'a Hint> {
        h.iter().find(|h| h.counter == counter)
    }

    #[test]
    fn counters_that_count_get_a_hint_with_cause_and_fix() {
        let quiet = sample("n", 1_000, 10, 0, 10);
        assert_eq!(hints(&quiet, None), []);

        let mut cur = sample("n", 2_000, 10, 0, 10);
        cur.programs[0].counters.set(Counter::DropSynChecksum, 3);
        cur.programs[0].xdp_tx_errors.insert("eth1".into(), 5);
        cur.programs[1].counters.set(Counter::BackendAckInvalid, 7);
        let mut prev = quiet.clone();
        prev.programs[0].xdp_tx_errors.insert("eth1".into(), 1);
        let h = hints(&cur, Some(&prev));
        let csum = find(&h, "drop_syn_checksum").unwrap();
        assert_eq!((csum.role, csum.total, csum.grew), (Role::Edge, 3, Some(3)));
        assert!(csum
            .line()
            .starts_with("drop_syn_checksum (edge) is 3, +3 since"));
        assert!(csum.text.contains("ethtool -K <sending veth> tx off"));
        let tx = find(&h, "xdp_tx_errors").unwrap();
        assert_eq!(tx.interface.as_deref(), Some("eth1"));
        assert_eq!((tx.total, tx.grew), (5, Some(4)));
        assert!(tx.line().starts_with("xdp_tx_errors on eth1 is 5, +4"));
        assert!(
            tx.text.contains("edge.xdp_mode = \"generic\""),
            "{}",
            tx.text
        );
        assert!(tx.text.contains("peer"), "{}", tx.text);
        let inv = find(&h, "backend_ack_invalid").unwrap();
        assert_eq!(inv.role, Role::Backend);
        assert!(inv.text.contains("secret_file"));

        // A reading later with nothing new: the never-expected counters still show, saying so;
        // the noisy one only while it grows.
        let mut later = cur.clone();
        later.taken_ms += 1000;
        let h = hints(&later, Some(&cur));
        assert_eq!(find(&h, "drop_syn_checksum").unwrap().grew, Some(0));
        assert!(find(&h, "drop_syn_checksum")
            .unwrap()
            .line()
            .contains("not growing now"));
        assert!(find(&h, "backend_ack_invalid").is_none(), "{h:?}");
        // A counter of the other role's program is never hinted under this one.
        let mut odd = quiet.clone();
        odd.programs[1].counters.set(Counter::DropSynChecksum, 9);
        assert!(find(&hints(&odd, None), "drop_syn_checksum").is_none());
    }

    /// README's troubleshooting table has a row for every counter, naming the programs that
    /// can increment it (as read from the BPF sources), and every hinted counter is in it.
    #[test]
    fn readme_explains_every_counter_for_its_programs() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Troubleshooting")
            .nth(1)
            .expect("README has a Troubleshooting section");
        for c in Counter::ALL {
            let row = section
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", c.name())))
                .unwrap_or_else(|| panic!("README: no troubleshooting row for {}", c.name()));
            let programs = row.split('|').nth(2).unwrap().trim();
            let want = match (Role::Edge.counts(c), Role::Backend.counts(c)) {
                (true, true) => "edge, backend",
                (true, false) => "edge",
                (false, true) => "backend",
                (false, false) => unreachable!("checked in snapshot's tests"),
            };
            assert_eq!(programs, want, "README row of {}", c.name());
            assert!(row.split('|').nth(3).unwrap().trim().len() > 5, "{row}");
        }
        assert!(section.contains("xdp_tx_errors"));
    }

    /// The daemon's log: nothing for the baseline, a hint when its counter grows, not again while
    /// it keeps growing within the interval, again once the interval has passed; each counter
    /// (and each interface) on its own clock.
    #[test]
    fn the_log_says_each_hint_once_per_interval() {
        let mut log = HintLog::new(std::time::Duration::from_secs(300));
        let at = |ms: u64, csum: u64, inv: u64, tx: u64| {
            let mut s = sample("n", ms, 10, 0, 10);
            s.programs[0].counters.set(Counter::DropSynChecksum, csum);
            s.programs[1].counters.set(Counter::BackendAckInvalid, inv);
            s.programs[0].xdp_tx_errors.insert("eth1".into(), tx);
            s
        };
        let counters = |h: Vec<Hint>| h.into_iter().map(|h| h.counter).collect::<Vec<_>>();
        // Counts from before the daemon started are the baseline, not news.
        assert_eq!(counters(log.next(at(0, 5, 5, 5))), Vec::<String>::new());
        assert_eq!(counters(log.next(at(5_000, 5, 5, 5))), Vec::<String>::new());
        let h = log.next(at(10_000, 7, 5, 5));
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(
            h[0].line()
                .starts_with("drop_syn_checksum (edge) is 7, +2 since"),
            "{}",
            h[0].line()
        );
        // Still growing: the checksum hint waits out its interval; the others are new.
        assert_eq!(
            counters(log.next(at(15_000, 9, 6, 8))),
            ["xdp_tx_errors", "backend_ack_invalid"]
        );
        assert_eq!(
            counters(log.next(at(305_000, 12, 7, 9))),
            Vec::<String>::new()
        );
        assert_eq!(
            counters(log.next(at(310_000, 13, 8, 10))),
            ["drop_syn_checksum"]
        );
        // Not growing: nothing, even when due.
        assert_eq!(
            counters(log.next(at(900_000, 13, 8, 10))),
            Vec::<String>::new()
        );
        assert_eq!(
            counters(log.next(at(905_000, 13, 9, 11))),
            ["xdp_tx_errors", "backend_ack_invalid"]
        );
    }

    #[test]
    fn every_hinted_counter_belongs_to_a_program() {
        for &(c, _, text) in COUNTERS {
            assert!(
                Role::Edge.counts(c) || Role::Backend.counts(c),
                "{}",
                c.name()
            );
            assert!(text.ends_with('.'), "{}", c.name());
        }
    }
}
