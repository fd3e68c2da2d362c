//! What the examples that run the real edge from threads pinned to CPUs share
//! (`budget_cpus`, `edge_cpus`): the SYNs, the configuration, the salts, pinning, a timed flood.

// Each example is its own crate and uses part of this.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Test runs, all threads.
    pub sent: u64,
    /// The program's own time (as the kernel measured each run), all threads, ns.
    pub prog_ns: u128,
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

/// One thread per `cpus[i]`, pinned there, runs `p` on `frames[i]` in turn (the list's frames
/// one after another, round and round) until `secs` have passed.
pub fn flood(p: &dyn Prog, cpus: &[usize], frames: &[Vec<Vec<u8>>], secs: f64) -> Flood {
    assert_eq!(cpus.len(), frames.len(), "one frame list per CPU");
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (sent, prog_ns, per_cpu_second) = std::thread::scope(|s| {
        let threads: Vec<_> = cpus
            .iter()
            .zip(frames)
            .map(|(&cpu, frames)| {
                let stop = &stop;
                s.spawn(move || {
                    pin_to(cpu);
                    let cpu0 = thread_cpu_s();
                    let (mut n, mut ns) = (0u64, 0u128);
                    while !stop.load(Ordering::Relaxed) {
                        ns += p
                            .run(&frames[n as usize % frames.len()])
                            .duration
                            .as_nanos();
                        n += 1;
                    }
                    (n, ns, n as f64 / (thread_cpu_s() - cpu0))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .fold((0, 0, 0.0), |(a, b, c), (n, ns, r)| (a + n, b + ns, c + r))
    });
    Flood {
        sent,
        prog_ns,
        elapsed: start.elapsed().as_secs_f64(),
        per_cpu_second,
    }
}

/// The median (the upper one of an even count); sorts `v`.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
