//! The clocks the programs and the daemon agree on: the programs read `CLOCK_TAI`
//! (`bpf_ktime_get_tai_ns`), the daemon thinks in UNIX time (`CLOCK_REALTIME`); the difference,
//! the kernel's TAI offset, goes into `sw_clock` (`synwall_v1::EpochClock::tai_offset_ns`).

fn read(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we own; both clocks exist on every Linux.
    let r = unsafe { libc::clock_gettime(clock, &mut t) };
    assert_eq!(r, 0, "clock_gettime({clock})");
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// `CLOCK_TAI` now, nanoseconds: what `bpf_ktime_get_tai_ns` returns in a program.
pub fn tai_ns() -> u64 {
    read(libc::CLOCK_TAI)
}

/// `CLOCK_REALTIME` now: UNIX time in nanoseconds.
pub fn unix_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// `CLOCK_TAI - CLOCK_REALTIME` in nanoseconds. The kernel keeps it a whole number of seconds (0
/// unless NTP set it; 37 s since 2017 where it did); the two readings are a few nanoseconds apart,
/// so the difference is rounded to the nearest second, and it is the same on every tick.
pub fn tai_offset_ns() -> i64 {
    let unix = unix_ns() as i64;
    let tai = tai_ns() as i64;
    let d = tai.wrapping_sub(unix);
    (d + d.signum() * 500_000_000) / 1_000_000_000 * 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_whole_seconds_and_matches_the_clocks() {
        let off = tai_offset_ns();
        assert_eq!(off % 1_000_000_000, 0);
        let (tai, unix) = (tai_ns() as i64, unix_ns() as i64);
        // The two readings straddle a few microseconds at most.
        assert!(
            (tai - off - unix).abs() < 100_000_000,
            "tai {tai} unix {unix} off {off}"
        );
    }
}
