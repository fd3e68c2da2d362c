//! The clock the programs under test run on. They read the real `CLOCK_TAI`
//! (`bpf_ktime_get_tai_ns`); a test moves the epochs instead, with the TAI offset of the clock
//! rule it writes: [`test_clock`] puts the programs in the middle of [`EPOCH`] for the whole test
//! binary, a [`Moment`] near a switch of the salt ring. [`salts`] is what a node holds then, and
//! [`engine_ms`] the reference engine's clock for a frame a program just answered.

use crate::deploy::{keys, EPOCH, P};
use synwall_cookie::synwall_v1::EpochClock;
use synwall_engine::{SaltRing, Salts};

/// The node's TAI clock now (`bpf_ktime_get_tai_ns` reads the same clock), nanoseconds.
pub fn tai_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we own.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_TAI, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_TAI)");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The clock rule the programs under test run with: epochs of [`P`] seconds, and a TAI offset
/// that puts their UNIX time in the middle of epoch [`EPOCH`] when the test binary started (the
/// programs read the real clock; the offset moves the epochs instead). The same for every test
/// of the binary.
pub fn test_clock() -> EpochClock {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        let want = (EPOCH * P + P / 2) * 1_000_000_000;
        tai_ns() as i64 - want as i64
    });
    EpochClock::new(P, offset)
}

/// The ring tests' clock rule: hour-long epochs and a ten-minute lag (the rule takes the lag from
/// the map), so each [`Moment`] is minutes from any switch whatever the test's pace.
pub const EPOCH_S: u64 = 3600;
/// The ring tests' lag, seconds.
pub const LAG_S: u64 = 600;
/// Nanoseconds in a second.
pub const NS: u64 = 1_000_000_000;

/// Where in the epochs the programs' clock stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// The middle of EPOCH: generate EPOCH, accept EPOCH and EPOCH - 1.
    Mid,
    /// The last L of EPOCH: generate EPOCH, accept EPOCH + 1 too.
    Late,
    /// The first L of EPOCH + 1: generate EPOCH still, accept EPOCH + 1 and EPOCH.
    Early,
}

impl Moment {
    /// The programs' UNIX time at this moment, seconds.
    pub fn unix_s(self) -> u64 {
        match self {
            Moment::Mid => EPOCH * EPOCH_S + EPOCH_S / 2,
            Moment::Late => (EPOCH + 1) * EPOCH_S - LAG_S / 2,
            Moment::Early => (EPOCH + 1) * EPOCH_S + LAG_S / 2,
        }
    }

    /// The clock rule that puts the programs' UNIX time at this moment now.
    pub fn clock(self) -> EpochClock {
        EpochClock {
            epoch_ns: EPOCH_S * NS,
            lag_ns: LAG_S * NS,
            tai_offset_ns: tai_ns() as i64 - (self.unix_s() * NS) as i64,
        }
    }
}

/// What a node holds mid-[`EPOCH`]: `K_EPOCH` and `K_{EPOCH-1}` in the ring, [`test_clock`].
pub fn salts() -> Salts {
    Salts::new(SaltRing::from_keys(&keys()), test_clock())
}

/// The engine's clock for a frame a program just handled, in TAI milliseconds: now, with the
/// bits of TSval a program's SYN+ACK carries (`tsval & 0xffffff00`, its millisecond clock), so
/// the engine builds the same TSval.
pub fn engine_ms(tsval: Option<u32>) -> u64 {
    let now = tai_ns() / 1_000_000;
    let Some(t) = tsval else { return now };
    // The candidate nearest `now` whose low 32 bits have TSval's top 24.
    let base = (now & !0xffff_ffff) | u64::from(t & 0xffff_ff00) | (now & 0xff);
    [base.wrapping_sub(1 << 32), base, base.wrapping_add(1 << 32)]
        .into_iter()
        .min_by_key(|c| c.abs_diff(now))
        .expect("three candidates")
}
