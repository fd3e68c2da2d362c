//! What the examples that run the real edge from threads pinned to CPUs share
//! (`budget_cpus`, `edge_cpus`): the SYNs, the configuration, the salts, pinning, a timed flood.

// Each example is its own crate and uses part of this.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use synwall_bpf::{Edge, EdgePercpuBudget, TestRun};
use synwall_cookie::synwall_v1::{EpochClock, MasterSecret};
use synwall_engine::{
    Budget, Counter, Counters, EngineConfig, SaltRing, Salts, Service, ServiceSet,
};
use synwall_testkit::deploy::{SERVICE4, SERVICE6};
use synwall_testkit::frame::{linux_syn_options_ts, Frame, SYN};

/// A Linux-default SYN (MSS, SACK, timestamps, window scale) from `src` to the protected
/// service of its family.
pub fn syn(src: IpAddr, sport: u16) -> Vec<u8> {
    let dst: IpAddr = if src.is_ipv4() {
        SERVICE4.into()
    } else {
        SERVICE6.into()
    };
    Frame {
        options: linux_syn_options_ts(0x1111_2222),
        ..Frame::new(src, dst, sport, 443, SYN)
    }
    .build()
}

/// The services of [`SERVICE4`] and [`SERVICE6`], port 443, with `budget` (and every other
/// default).
pub fn config(budget: Option<Budget>) -> EngineConfig {
    let services = ["198.51.100.7/32:443", "[2001:db8:1::80/128]:443"]
        .iter()
        .map(|s| s.parse::<Service>().expect("service"))
        .collect();
    let mut cfg = EngineConfig::new(ServiceSet::new(services));
    cfg.budget = budget;
    cfg
}

/// Salts for the hours around now (the programs read the real clock), hour-long epochs.
pub fn salts() -> Salts {
    let clock = EpochClock::new(3600, synwall_bpf::clock::tai_offset_ns());
    let e = clock.unix_ns(synwall_bpf::clock::tai_ns()) / clock.epoch_ns;
    Salts::new(
        SaltRing::derive(e - 1, e + 3, &MasterSecret([0x5a; 32]), None),
        clock,
    )
}

/// Run the calling thread on `cpu` only.
pub fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "cannot pin to CPU {cpu}"
        );
    }
}

/// An edge build, behind one interface.
pub trait Prog: Sync {
    fn run(&self, frame: &[u8]) -> TestRun;
    fn counters(&self) -> Counters;
    fn answered(&self) -> u64 {
        self.counters().get(Counter::SynAnswered)
    }
}

impl Prog for Edge {
    fn run(&self, frame: &[u8]) -> TestRun {
        self.test_run(frame).expect("test run")
    }
    fn counters(&self) -> Counters {
        synwall_bpf::DataPath::counters(self).expect("counters")
    }
}

impl Prog for EdgePercpuBudget {
    fn run(&self, frame: &[u8]) -> TestRun {
        self.test_run(frame).expect("test run")
    }
    fn counters(&self) -> Counters {
        synwall_bpf::DataPath::counters(self).expect("counters")
    }
}

/// What a [`flood`] did.
pub struct Flood {
    /// Runs of the program, all threads.
    pub sent: u64,
    /// The program's own time (as the kernel measured each run), all threads, ns.
    pub prog_ns: u128,
    /// The median of the runs' own times, ns: unlike the mean, not moved by the runs another
    /// task preempted (the machine is shared).
    pub prog_ns_median: u64,
    /// Wall-clock time from the start to the last thread's end, s.
    pub elapsed: f64,
    /// The sum over the threads of test runs per second of the thread's own CPU time (user and
    /// system): what the CPUs would do if nothing else ran on them (on a shared machine the wall
    /// clock also counts other tenants' time slices).
    pub per_cpu_second: f64,
}

/// The calling thread's CPU time, s.
fn thread_cpu_s() -> f64 {
    // SAFETY: clock_gettime writes the timespec it is given.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) },
        0
    );
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// One test run of a frame: `Prog::run`, or several runs of the program in one.
pub type Run<'a> = &'a (dyn Fn(&[u8]) -> TestRun + Sync);

/// One thread per `cpus[i]`, pinned there, runs `run` on `frames[i]` in turn (the list's frames
/// one after another, round and round) until `secs` have passed; each test run runs the program
/// `repeat` times. `lockstep`: every thread starts its k-th test run only once all have finished
/// their (k-1)-th, so that the CPUs' runs overlap even while other tenants of the machine take
/// time slices from one of them (what the CPUs do to each other shows only while both run).
pub fn flood(
    run: Run<'_>,
    cpus: &[usize],
    frames: &[Vec<Vec<u8>>],
    secs: f64,
    repeat: u32,
    lockstep: bool,
) -> Flood {
    assert_eq!(cpus.len(), frames.len(), "one frame list per CPU");
    let stop = AtomicBool::new(false);
    let arrived = AtomicU64::new(0);
    let threads_n = cpus.len() as u64;
    let start = Instant::now();
    let (sent, prog_ns, per_cpu_second, hist) = std::thread::scope(|s| {
        let threads: Vec<_> = cpus
            .iter()
            .zip(frames)
            .map(|(&cpu, frames)| {
                let (stop, arrived) = (&stop, &arrived);
                s.spawn(move || {
                    pin_to(cpu);
                    let cpu0 = thread_cpu_s();
                    let (mut n, mut ns) = (0u64, 0u128);
                    let mut hist = vec![0u64; HIST_NS];
                    let (mut calls, r) = (0usize, u64::from(repeat));
                    while !stop.load(Ordering::Relaxed) {
                        if lockstep {
                            arrived.fetch_add(1, Ordering::AcqRel);
                            let all = (calls as u64 + 1) * threads_n;
                            while arrived.load(Ordering::Acquire) < all
                                && !stop.load(Ordering::Relaxed)
                            {
                                std::hint::spin_loop();
                            }
                        }
                        let frame = &frames[calls % frames.len()];
                        // The mean of the repeated runs, as the kernel timed them.
                        let d = run(frame).duration.as_nanos();
                        ns += d * u128::from(r);
                        hist[(d as usize).min(HIST_NS - 1)] += r;
                        n += r;
                        calls += 1;
                    }
                    (n, ns, n as f64 / (thread_cpu_s() - cpu0), hist)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        threads.into_iter().map(|t| t.join().expect("thread")).fold(
            (0, 0, 0.0, vec![0u64; HIST_NS]),
            |(a, b, c, mut h), (n, ns, r, t)| {
                h.iter_mut().zip(t).for_each(|(x, y)| *x += y);
                (a + n, b + ns, c + r, h)
            },
        )
    });
    Flood {
        sent,
        prog_ns,
        elapsed: start.elapsed().as_secs_f64(),
        per_cpu_second,
        prog_ns_median: {
            let mut seen = 0;
            hist.iter()
                .position(|&c| {
                    seen += c;
                    seen * 2 >= sent
                })
                .unwrap_or(0) as u64
        },
    }
}

/// Run times are kept in 1-ns buckets up to this (longer ones in the last).
const HIST_NS: usize = 100_000;

/// The median (the upper one of an even count); sorts `v`.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
