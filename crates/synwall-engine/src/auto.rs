//! Auto mode: measure the SYN rate and decide whether SYNs are answered with cookies, exactly as
//! `sw_auto_cookies` in `bpf/edge.bpf.c` does over its maps `sw_auto_syns` (each CPU's SYN count)
//! and `sw_auto_window` (the window and the decision, shared by all CPUs).
//!
//! Every SYN to a protected service that passed the SYN checks is counted ([`AutoState::syns`]:
//! in BPF the sum of every CPU's own count, which only grows). The first SYN at least
//! [`WINDOW_NS`] after the window opened closes it: the window's SYNs are the count minus what it
//! was when the window opened ([`AutoState::window_base`]), its rate `syns * 1e9 / elapsed`
//! (integer arithmetic, so a long quiet window averages its rare SYNs correctly), then the
//! hysteresis:
//!
//! - rate >= `rate_on`: cookies on;
//! - rate >= `rate_off`: the rate is still high (`last_high_ns` = now);
//! - cookies on, rate < `rate_off` and no high window for `hold_ms`: cookies off.
//!
//! The SYN that closes a window is decided with the state it leaves.
//!
//! The clock is the node's TAI clock, which follows the wall clock: a window start more than
//! [`STEP_NS`] ahead of `now` means the clock was stepped back, and the window restarts
//! at `now` (`last_high_ns` is pulled back to `now` if it is ahead too), instead of staying open
//! until the clock caught up.

use crate::config::AutoConfig;

// WINDOW_NS, the shortest measurement window, and STEP_NS, how far ahead of the clock a window
// start means the clock was stepped back, from `bpf/lib/constants.def`.
include!(concat!(env!("OUT_DIR"), "/constants_auto.rs"));

/// The auto-mode state: one per node. In BPF `syns` is the sum of `sw_auto_syns` over the CPUs,
/// the rest `struct sw_auto_state` (`sw_auto_window`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AutoState {
    /// When the current window opened (the clock of [`crate::Engine::xdp_at`]).
    pub window_start_ns: u64,
    /// SYNs counted since the state was made (wrapping).
    pub syns: u64,
    /// `syns` when the current window opened.
    pub window_base: u64,
    /// SYNs per second of the last closed window.
    pub rate: u64,
    /// When a closed window last had a rate of at least `rate_off`.
    pub last_high_ns: u64,
    /// Transitions from cookies off to on.
    pub switches_on: u64,
    /// Transitions from cookies on to off.
    pub switches_off: u64,
    /// SYNs are answered with cookies.
    pub cookies_on: bool,
}

impl AutoState {
    /// SYNs counted in the current window.
    pub fn window_syns(&self) -> u64 {
        self.syns.wrapping_sub(self.window_base)
    }

    /// Count one SYN at `now_ns`; returns whether it is answered with a cookie. Clock differences
    /// are compared as signed numbers, as the C does (a clock older than the window start is no
    /// huge elapsed time).
    pub fn on_syn(&mut self, cfg: &AutoConfig, now_ns: u64) -> bool {
        self.syns = self.syns.wrapping_add(1);
        let elapsed = now_ns.wrapping_sub(self.window_start_ns);
        if elapsed as i64 >= WINDOW_NS as i64 {
            self.window_start_ns = now_ns;
            let syns = self.window_syns();
            self.window_base = self.syns;
            let rate = syns.wrapping_mul(1_000_000_000) / elapsed;
            self.rate = rate;
            if rate >= u64::from(cfg.rate_off) {
                self.last_high_ns = now_ns;
            }
            let hold_ns = u64::from(cfg.hold_ms) * 1_000_000;
            if rate >= u64::from(cfg.rate_on) {
                if !self.cookies_on {
                    self.cookies_on = true;
                    self.switches_on += 1;
                }
            } else if self.cookies_on
                && rate < u64::from(cfg.rate_off)
                && now_ns.wrapping_sub(self.last_high_ns) as i64 >= hold_ns as i64
            {
                self.cookies_on = false;
                self.switches_off += 1;
            }
        } else if (elapsed as i64) < -(STEP_NS as i64) {
            self.window_start_ns = now_ns;
            if (now_ns.wrapping_sub(self.last_high_ns) as i64) < 0 {
                self.last_high_ns = now_ns;
            }
        }
        self.cookies_on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;
    /// A boot time far from 0, like `bpf_ktime_get_ns` on a running machine.
    const T0: u64 = 3_600 * S;

    fn cfg() -> AutoConfig {
        AutoConfig {
            rate_on: 1000,
            rate_off: 200,
            hold_ms: 1000,
        }
    }

    /// `rate` SYNs/s, evenly spaced, from `from` for `dur` ns; returns the decisions and the time
    /// after the last SYN.
    fn drive(st: &mut AutoState, c: &AutoConfig, from: u64, dur: u64, rate: u64) -> Vec<bool> {
        let n = dur * rate / S;
        (0..n).map(|i| st.on_syn(c, from + i * S / rate)).collect()
    }

    #[test]
    fn quiet_traffic_passes() {
        let (c, mut st) = (cfg(), AutoState::default());
        // 50 SYNs/s for 5 s: every window measures ~50/s, far below 1000.
        let d = drive(&mut st, &c, T0, 5 * S, 50);
        assert_eq!(d.len(), 250);
        assert!(d.iter().all(|&on| !on));
        assert_eq!((st.switches_on, st.switches_off), (0, 0));
        // Windows close every 100 ms (5 SYNs at 20 ms spacing, closed by the 6th): 5 / 0.1 s.
        assert_eq!(st.rate, 50);
    }

    #[test]
    fn switches_on_above_the_threshold() {
        let (c, mut st) = (cfg(), AutoState::default());
        // 100/s for 1 s (SYN i at T0 + 10 ms * i): the first SYN closes the boot-time window
        // (rate 0), then windows close at i = 10, 20, ..., 90; SYNs 91..99 stay in the open one.
        drive(&mut st, &c, T0, S, 100);
        assert!(!st.cookies_on);
        assert_eq!(st.rate, 100);
        // 5000/s (SYN j at T0 + 1 s + 0.2 ms * j): j = 0 closes the window of 9 + 1 SYNs over
        // 100 ms (100/s); j = 500 closes one of 500 SYNs over 100 ms = 5000/s >= 1000: on.
        let d = drive(&mut st, &c, T0 + S, S, 5000);
        let first_on = d.iter().position(|&on| on).expect("cookies switched on");
        assert_eq!(first_on, 500);
        assert!(
            d[first_on..].iter().all(|&on| on),
            "stays on during the burst"
        );
        assert_eq!((st.switches_on, st.switches_off), (1, 0));
        assert_eq!(st.rate, 5000);
    }

    #[test]
    fn stays_on_between_the_thresholds_and_off_only_after_hold() {
        let (c, mut st) = (cfg(), AutoState::default());
        drive(&mut st, &c, T0, S, 5000);
        assert!(st.cookies_on);
        // 500/s (between off 200 and on 1000) for 3 s: stays on (hysteresis).
        let t1 = T0 + S;
        let d = drive(&mut st, &c, t1, 3 * S, 500);
        assert!(d.iter().all(|&on| on), "dropped out between the thresholds");
        assert_eq!(st.rate, 500);
        // 100/s (< off) from t2, SYN m at t2 + 10 ms * m. m = 0 closes the last 500/s window
        // (last high = t2); windows of 100/s close every 100 ms after it; the one closed at
        // m = 100 (t2 + 1 s) is the first a whole hold after the last high one: off there.
        let t2 = t1 + 3 * S;
        let d = drive(&mut st, &c, t2, 3 * S, 100);
        let first_off = d.iter().position(|&on| !on).expect("switched off");
        assert_eq!(first_off, 100);
        assert!(d[first_off..].iter().all(|&on| !on));
        assert_eq!((st.switches_on, st.switches_off), (1, 1));
        assert_eq!(st.rate, 100);
    }

    #[test]
    fn a_short_dip_below_off_does_not_switch_off() {
        let (c, mut st) = (cfg(), AutoState::default());
        drive(&mut st, &c, T0, S, 5000);
        // 500 ms at 50/s, then high again: the dip is shorter than the hold.
        let d = drive(&mut st, &c, T0 + S, S / 2, 50);
        assert!(d.iter().all(|&on| on));
        drive(&mut st, &c, T0 + S + S / 2, S, 5000);
        assert!(st.cookies_on);
        assert_eq!((st.switches_on, st.switches_off), (1, 0));
        // A 2 s quiet phase: off after the hold; the next burst: on again; quiet: off again.
        drive(&mut st, &c, T0 + 3 * S, 2 * S, 50);
        assert!(!st.cookies_on);
        drive(&mut st, &c, T0 + 5 * S, S, 5000);
        assert!(st.cookies_on);
        drive(&mut st, &c, T0 + 6 * S, 2 * S, 50);
        assert!(!st.cookies_on);
        assert_eq!((st.switches_on, st.switches_off), (2, 2));
    }

    #[test]
    fn rare_syns_average_over_the_whole_window() {
        let c = AutoConfig {
            rate_on: 4,
            rate_off: 2,
            hold_ms: 0,
        };
        // A fresh state: the first SYN closes the window opened "at boot" (start 0): 1 SYN in an
        // hour is 0/s.
        let mut st = AutoState::default();
        assert!(!st.on_syn(&c, T0));
        assert_eq!((st.rate, st.window_start_ns, st.window_syns()), (0, T0, 0));
        // 7 SYNs within 60 ms (the window stays open), then one 2 s after the window opened:
        // 8 SYNs over 2 s = 4/s, exactly rate_on.
        for i in 1..=7 {
            assert!(!st.on_syn(&c, T0 + i * 10 * MS));
        }
        assert_eq!(st.window_syns(), 7);
        assert!(st.on_syn(&c, T0 + 2 * S));
        assert_eq!((st.rate, st.switches_on), (4, 1));
        // 3 SYNs over 10 s (the first two leave the window open, cookies still on): 0.3/s
        // rounds down to 0 < off, hold 0: off.
        assert!(st.on_syn(&c, T0 + 2 * S + 10 * MS));
        assert!(st.on_syn(&c, T0 + 2 * S + 20 * MS));
        assert!(!st.on_syn(&c, T0 + 12 * S));
        assert_eq!((st.rate, st.switches_off), (0, 1));
    }

    #[test]
    fn a_window_is_the_count_since_it_opened_across_the_wrap() {
        let c = cfg();
        // A count about to wrap (the per-CPU counts only grow): the window's SYNs are the
        // difference, modulo 2^64, as the C's u64 arithmetic has it.
        let mut st = AutoState {
            window_start_ns: T0,
            syns: u64::MAX - 2,
            window_base: u64::MAX - 2,
            ..AutoState::default()
        };
        for i in 0..5 {
            st.on_syn(&c, T0 + i * MS);
        }
        assert_eq!((st.syns, st.window_syns()), (2, 5));
        // The 6th, 200 ms after the window opened, closes it: 6 SYNs over 0.2 s.
        st.on_syn(&c, T0 + 200 * MS);
        assert_eq!((st.rate, st.window_base, st.window_syns()), (30, 3, 0));
    }

    #[test]
    fn an_older_clock_does_not_close_the_window() {
        let c = cfg();
        let mut st = AutoState {
            window_start_ns: T0,
            ..AutoState::default()
        };
        // Another CPU opened the window at T0; this one read its clock 1 us earlier.
        st.on_syn(&c, T0 - 1_000);
        assert_eq!((st.window_start_ns, st.window_syns(), st.rate), (T0, 1, 0));
    }

    #[test]
    fn a_clock_stepped_back_restarts_the_window() {
        let c = cfg();
        // Cookies on after a high window at T0 + 100 ms.
        let mut st = AutoState::default();
        drive(&mut st, &c, T0, 200 * MS, 5000);
        assert!(st.cookies_on);
        let high = st.last_high_ns;
        // The wall clock (and TAI with it) steps back an hour: the window restarts there, and
        // the hold counts from there, so quiet traffic switches cookies off a hold later.
        let back = T0 - 3600 * S;
        assert!(st.on_syn(&c, back));
        assert_eq!((st.window_start_ns, st.last_high_ns), (back, back));
        assert!(high > back);
        assert!(st.on_syn(&c, back + 500 * MS), "within the hold");
        assert!(
            !st.on_syn(&c, back + 1500 * MS),
            "quiet for longer than the hold"
        );
        // A step back of less than a second is another CPU's older reading: nothing restarts.
        let start = st.window_start_ns;
        st.on_syn(&c, start - 900 * MS);
        assert_eq!(st.window_start_ns, start);
    }
}
