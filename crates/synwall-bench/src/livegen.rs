//! A SYN flood at kernel speed, and the attacker's sink.
//!
//! [`SynGen`] is `bpf/lab/syngen.bpf.c`: an XDP program the kernel runs on a template SYN (built
//! by [`Template`] with the project's frame builder) with `BPF_PROG_TEST_RUN` in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`): each frame gets its own spoofed source (address within a prefix,
//! port, sequence number, checksums patched) and leaves the attacker's veth by `XDP_TX`. No socket
//! and nothing crossing from userspace per frame: one core offers millions of SYNs per second,
//! where trafgen offers a few hundred thousand. A run is bounded by a frame count and a deadline, optionally at a set rate.
//!
//! [`Sink`] is `bpf/lab/sink.bpf.c` on the attacker's veth: it counts the SYN+ACKs that come back
//! and drops them (passing everything else), and it is what makes a defender's `XDP_TX` answers
//! deliverable to that veth. The same object holds the trivial `XDP_PASS` program a defender's
//! veth needs for the same reason when no XDP program of its own runs there (the kernel
//! baselines), and a count-and-drop-all program for measuring the generator alone.

use anyhow::{bail, Context, Result};
use libbpf_rs::libbpf_sys;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use serde::Serialize;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use synwall_bpf::{leak_object, percpu_sum, Link, XdpMd, XdpMode};
use synwall_netns::{frame, Netns};

synwall_bpf::skeleton!(mod syngen_skel = "syngen.skel.rs");
synwall_bpf::skeleton!(mod sink_skel = "sink.skel.rs");

use sink_skel::{SinkSkel, SinkSkelBuilder};
use syngen_skel::{SyngenSkel, SyngenSkelBuilder};

/// Most frames per `BPF_PROG_TEST_RUN` call. Each call has a fixed cost (its own page pool set up
/// and torn down; measured here as 25-30 ms of wall time, mostly waiting, on a busy machine), so
/// calls are as long as the deadline allows: at most [`CALL_SECONDS`] at the rate seen so far, at
/// most this many frames, and the last one sized to end near the deadline.
pub const CHUNK: u32 = 1 << 20;
/// The first call's frames, before the rate is known.
pub const FIRST_CHUNK: u32 = 1 << 16;
/// How long a call at full speed may last (the deadline and a stop request are checked between
/// calls).
pub const CALL_SECONDS: f64 = 0.5;
/// Frames the kernel runs the program on before it sends them (live-frames `batch_size`) at full
/// speed: the kernel's maximum, which measured 10-20% faster than 64 (one flush per batch). A
/// batch lands in the peer veth's 256-frame ring at once: runs that must not lose a frame use
/// smaller batches.
pub const BATCH: u32 = 256;
/// The longest template frame (`TEMPLATE_WORDS` in syngen.bpf.c).
pub const TEMPLATE_BYTES: usize = 96;

/// The SYN's TCP options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum SynOptions {
    /// Linux's: MSS 1460, SACK-Permitted, Timestamps, NOP, WScale 7 (a 74-byte IPv4 frame,
    /// sent padded to 80).
    Linux,
    /// MSS 1460 only, as the trafgen flood sends (a 58-byte IPv4 frame, sent padded to 64).
    Mss,
}

/// What the generator sends: a SYN from the spoofed prefix to one service.
#[derive(Clone, Debug)]
pub struct Template {
    /// The attacker veth's MAC (source).
    pub src_mac: [u8; 6],
    /// Its peer's MAC (destination).
    pub dst_mac: [u8; 6],
    /// The spoofed prefix's address (its host bits are replaced per frame).
    pub prefix: IpAddr,
    /// The prefix length: IPv4 at least /1, IPv6 at least /96 (the generator varies at most the
    /// last 32 bits).
    pub prefix_len: u8,
    /// The service address.
    pub dst: IpAddr,
    /// The service port.
    pub dport: u16,
    /// TCP options.
    pub options: SynOptions,
}

impl Template {
    /// The host bits of the prefix within the address's last 32 bits (host order).
    pub fn host_mask(&self) -> Result<u32> {
        let bits = match self.prefix {
            IpAddr::V4(_) if (1..=32).contains(&self.prefix_len) => 32 - self.prefix_len as u32,
            IpAddr::V6(_) if (96..=128).contains(&self.prefix_len) => {
                128 - self.prefix_len as u32
            }
            IpAddr::V4(_) => bail!("an IPv4 spoofed prefix is /1 to /32, not /{}", self.prefix_len),
            IpAddr::V6(_) => bail!(
                "an IPv6 spoofed prefix is /96 to /128 (the generator varies the last 32 bits), not /{}",
                self.prefix_len
            ),
        };
        Ok(if bits == 32 {
            u32::MAX
        } else {
            (1u32 << bits) - 1
        })
    }

    /// The template frame (the prefix's first address, port 40000, checksums right), padded
    /// with zeros to a multiple of 8 bytes, at least 64 (the generator copies it in words).
    pub fn frame(&self) -> Result<Vec<u8>> {
        if self.prefix.is_ipv4() != self.dst.is_ipv4() {
            bail!("the spoofed prefix and the service are of different address families");
        }
        let mut f = frame::Frame::new(self.prefix, self.dst, 40000, self.dport, frame::SYN);
        f.src_mac = self.src_mac;
        f.dst_mac = self.dst_mac;
        f.options = match self.options {
            SynOptions::Linux => frame::linux_syn_options(),
            SynOptions::Mss => frame::opt_mss(1460),
        };
        let len = f.build().len();
        f.padding = len.max(64).next_multiple_of(8) - len;
        let out = f.build();
        if out.len() > TEMPLATE_BYTES {
            bail!(
                "a {}-byte template is longer than the generator's {TEMPLATE_BYTES}",
                out.len()
            );
        }
        Ok(out)
    }

    /// Does `addr` lie in the spoofed prefix?
    pub fn contains(&self, addr: IpAddr) -> bool {
        let Ok(mask) = self.host_mask() else {
            return false;
        };
        match (self.prefix, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => u32::from(p) & !mask == u32::from(a) & !mask,
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let (p, a) = (u128::from(p), u128::from(a));
                p & !(mask as u128) == a & !(mask as u128)
            }
            _ => false,
        }
    }
}

/// How long and how fast a run goes.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Stop after this many frames (None: at the deadline).
    pub count: Option<u64>,
    /// Stop after this long at the latest.
    pub seconds: f64,
    /// Frames per second at most (None: as fast as the core goes).
    pub rate: Option<f64>,
    /// Pin the generating thread to this CPU.
    pub cpu: Option<usize>,
    /// Live-frames batch size, 1 to 256 ([`BATCH`] for full speed).
    pub batch: u32,
}

impl Plan {
    /// As fast as it goes for `seconds`, from `cpu`.
    pub fn full_speed(seconds: f64, cpu: usize) -> Plan {
        Plan {
            count: None,
            seconds,
            rate: None,
            cpu: Some(cpu),
            batch: BATCH,
        }
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct GenStats {
    /// Frames the kernel ran the program on (the runs' `repeat`s summed).
    pub frames: u64,
    /// How long it ran, seconds.
    pub seconds: f64,
    /// `BPF_PROG_TEST_RUN` calls.
    pub calls: u64,
    /// CPU time of the generating thread (user + system), seconds.
    pub cpu_seconds: f64,
    /// The live-frames batch size it ran with.
    pub batch: u32,
}

impl GenStats {
    /// Frames per second.
    pub fn rate(&self) -> f64 {
        self.frames as f64 / self.seconds.max(1e-9)
    }
}

/// The generator's counters (`enum gen_counter`), summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GenCounters {
    /// IPv4 SYNs sent (`XDP_TX`).
    pub tx_v4: u64,
    /// IPv6 SYNs sent.
    pub tx_v6: u64,
    /// Frames that were not a SYN template (dropped).
    pub drop_not_syn_template: u64,
    /// Frames whose length was not the template's (dropped).
    pub drop_frame_length: u64,
    /// Frames dropped because the per-CPU index could not be read (the verifier makes the
    /// program check; it cannot happen for an array's slot 0).
    pub drop_no_index: u64,
}

impl GenCounters {
    /// Frames dropped for any reason: a generator bug when not 0.
    pub fn dropped(&self) -> u64 {
        self.drop_not_syn_template + self.drop_frame_length + self.drop_no_index
    }
}

/// The loaded generator.
pub struct SynGen {
    skel: SyngenSkel<'static>,
    frame: Vec<u8>,
}

fn bpf_err(what: &'static str) -> impl FnOnce(libbpf_rs::Error) -> anyhow::Error {
    move |e| anyhow::anyhow!("{what}: {e}")
}

/// The index of `dev` in the calling thread's network namespace.
fn ifindex(dev: &str) -> Result<u32> {
    let c = std::ffi::CString::new(dev).context("interface name")?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!("no interface {dev}: {}", std::io::Error::last_os_error());
    }
    Ok(i)
}

/// Pin the calling thread to `cpu`.
fn pin_thread(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("pin to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// One live-frames run of `repeat` frames out of interface `ifindex`.
fn run_live(prog_fd: i32, frame: &[u8], ifindex: u32, repeat: u32, batch: u32) -> Result<()> {
    let ctx = XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex: ifindex,
        ..XdpMd::default()
    };
    // SAFETY: zeroed options of the size we declare; the pointers outlive the call.
    let mut opts: libbpf_sys::bpf_test_run_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _;
    opts.data_in = frame.as_ptr().cast();
    opts.data_size_in = frame.len() as u32;
    opts.ctx_in = (&ctx as *const XdpMd).cast();
    opts.ctx_size_in = std::mem::size_of::<XdpMd>() as u32;
    opts.repeat = repeat as i32;
    opts.flags = libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES;
    opts.batch_size = batch;
    // SAFETY: plain syscall wrapper; `opts` and what it points to outlive the call.
    let r = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog_fd, &mut opts) };
    if r < 0 {
        bail!(
            "BPF_PROG_TEST_RUN (live frames): {}",
            std::io::Error::from_raw_os_error(-r)
        );
    }
    Ok(())
}

impl SynGen {
    /// Load the generator for `template`; `salt` shifts the sequence of sources it draws.
    pub fn load(template: &Template, salt: u32) -> Result<SynGen> {
        let mask = template.host_mask()?;
        let frame = template.frame()?;
        let mut open = SyngenSkelBuilder::default()
            .open(leak_object())
            .map_err(bpf_err("open syngen.bpf.o"))?;
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .context("syngen.bpf.o has no .rodata")?;
        // The program compares it with address bytes as they lie in the frame.
        ro.cfg_host_mask = mask.to_be();
        ro.cfg_salt = salt;
        for (i, w) in frame.chunks(8).enumerate() {
            ro.cfg_frame[i] = u64::from_ne_bytes(w.try_into().expect("padded to 8 bytes"));
        }
        ro.cfg_words = (frame.len() / 8) as u32;
        let skel = open.load().map_err(bpf_err("load syngen.bpf.o"))?;
        Ok(SynGen { skel, frame })
    }

    /// The template frame it sends.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Its counters so far.
    pub fn counters(&self) -> Result<GenCounters> {
        let m = &self.skel.maps.gen_counters;
        let c = |i| percpu_sum(m, i, "read the generator's counters");
        Ok(GenCounters {
            tx_v4: c(0)?,
            tx_v6: c(1)?,
            drop_not_syn_template: c(2)?,
            drop_frame_length: c(3)?,
            drop_no_index: c(4)?,
        })
    }

    /// SYNs sent so far (both families).
    pub fn sent(&self) -> Result<u64> {
        let c = self.counters()?;
        Ok(c.tx_v4 + c.tx_v6)
    }

    fn prog_fd(&self) -> i32 {
        self.skel.progs.syngen.as_fd().as_raw_fd()
    }

    /// Start a run out of `dev` in `ns` on a thread of its own (which enters `ns`: the run's
    /// ingress interface is resolved in the caller's namespace).
    pub fn start(&self, ns: &Netns, dev: &str, plan: Plan) -> Result<GenRun<'_>> {
        if !(plan.seconds > 0.0 && plan.seconds.is_finite()) {
            bail!("a generator run needs a deadline, not {} s", plan.seconds);
        }
        if !(1..=256).contains(&plan.batch) {
            bail!("a live-frames batch is 1 to 256 frames, not {}", plan.batch);
        }
        if plan.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            bail!("a generator rate is a positive number of frames per second");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (fd, frame, dev, flag) = (
            self.prog_fd(),
            self.frame.clone(),
            dev.to_string(),
            stop.clone(),
        );
        let handle = ns.spawn_thread(move || generate(fd, &frame, &dev, plan, &flag))?;
        Ok(GenRun {
            _gen: self,
            stop,
            handle: Some(handle),
        })
    }

    /// Run to the end of `plan` (count or deadline) and return what was sent.
    pub fn run(&self, ns: &Netns, dev: &str, plan: Plan) -> Result<GenStats> {
        self.start(ns, dev, plan)?.wait()
    }
}

fn generate(fd: i32, frame: &[u8], dev: &str, plan: Plan, stop: &AtomicBool) -> Result<GenStats> {
    if let Some(cpu) = plan.cpu {
        pin_thread(cpu)?;
    }
    let ifindex = ifindex(dev)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(plan.seconds);
    let mut st = GenStats {
        batch: plan.batch,
        ..GenStats::default()
    };
    let mut chunk = FIRST_CHUNK as u64;
    loop {
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        let left = plan.count.map_or(u64::MAX, |c| c - st.frames);
        if left == 0 {
            break;
        }
        let mut n = chunk.min(left);
        if let Some(rate) = plan.rate {
            // At most 50 ms ahead of the rate: a call's fixed cost is tens of milliseconds.
            let allowed = ((now - start).as_secs_f64() + 0.05) * rate;
            let ahead = (allowed as u64).saturating_sub(st.frames);
            if ahead == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            n = n.min(ahead);
        }
        run_live(fd, frame, ifindex, n as u32, plan.batch)?;
        st.frames += n;
        st.calls += 1;
        // The rate so far, fixed costs included, sizes the next call.
        let rate = st.frames as f64 / start.elapsed().as_secs_f64().max(1e-6);
        let left_s = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        chunk = ((rate * left_s.min(CALL_SECONDS)) as u64).clamp(4096, CHUNK as u64);
    }
    st.seconds = start.elapsed().as_secs_f64();
    st.cpu_seconds = thread_cpu_seconds();
    Ok(st)
}

/// CPU time of the calling thread so far.
fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A generator run in progress; [`GenRun::stop`] ends it early, dropping it stops it too.
pub struct GenRun<'a> {
    _gen: &'a SynGen,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Result<GenStats>>>>,
}

impl GenRun<'_> {
    /// Wait for the end of its plan.
    pub fn wait(mut self) -> Result<GenStats> {
        let h = self.handle.take().expect("running");
        h.join()
            .map_err(|_| anyhow::anyhow!("the generator thread panicked"))??
    }

    /// Stop now and return what was sent.
    pub fn stop(self) -> Result<GenStats> {
        self.stop.store(true, Ordering::Relaxed);
        self.wait()
    }
}

impl Drop for GenRun<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn attach(ns: &Netns, dev: &str, prog_fd: i32) -> Result<Link> {
    let dev = dev.to_string();
    ns.enter(move || -> Result<Link> {
        let i = ifindex(&dev)?;
        Link::attach_xdp(prog_fd, i, XdpMode::Native)
            .with_context(|| format!("attach XDP to {dev}"))
    })?
}

/// The sink's counters (`enum sink_counter`), summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkCounters {
    /// IPv4 SYN+ACKs counted and dropped.
    pub synack_v4: u64,
    /// IPv6 SYN+ACKs counted and dropped.
    pub synack_v6: u64,
    /// Other TCP segments passed.
    pub pass_other_tcp: u64,
    /// Everything else passed.
    pub pass_not_tcp: u64,
    /// Frames `drop_all` dropped.
    pub drop_all: u64,
}

/// Which program of `sink.bpf.o` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkProg {
    /// Count and drop SYN+ACKs, pass the rest (the attacker's veth).
    Sink,
    /// Pass everything (a defender's veth without an XDP program of its own).
    Pass,
    /// Count and drop everything (the far end of the generator's own measurement).
    DropAll,
}

/// A program of `sink.bpf.o` attached to a veth (detached when dropped).
pub struct Sink {
    skel: SinkSkel<'static>,
    _link: Link,
}

impl Sink {
    /// Load the sink and attach it (native XDP) to `dev` in `ns`.
    pub fn attach(ns: &Netns, dev: &str) -> Result<Sink> {
        Self::attach_prog(ns, dev, SinkProg::Sink)
    }

    /// `xdp_pass` on `dev`: lets the peer's `XDP_TX` frames in, costs one program call a frame.
    pub fn pass(ns: &Netns, dev: &str) -> Result<Sink> {
        Self::attach_prog(ns, dev, SinkProg::Pass)
    }

    /// Load `sink.bpf.o` and attach `prog` (native XDP) to `dev` in `ns`.
    pub fn attach_prog(ns: &Netns, dev: &str, prog: SinkProg) -> Result<Sink> {
        let open = SinkSkelBuilder::default()
            .open(leak_object())
            .map_err(bpf_err("open sink.bpf.o"))?;
        let skel = open.load().map_err(bpf_err("load sink.bpf.o"))?;
        let p = match prog {
            SinkProg::Sink => &skel.progs.sink,
            SinkProg::Pass => &skel.progs.xdp_pass,
            SinkProg::DropAll => &skel.progs.drop_all,
        };
        let link = attach(ns, dev, p.as_fd().as_raw_fd())?;
        Ok(Sink { skel, _link: link })
    }

    /// Its counters so far.
    pub fn counters(&self) -> Result<SinkCounters> {
        let m = &self.skel.maps.sink_counters;
        let c = |i| percpu_sum(m, i, "read the sink's counters");
        Ok(SinkCounters {
            synack_v4: c(0)?,
            synack_v6: c(1)?,
            pass_other_tcp: c(2)?,
            pass_not_tcp: c(3)?,
            drop_all: c(4)?,
        })
    }

    /// SYN+ACKs counted so far (both families).
    pub fn synacks(&self) -> Result<u64> {
        let c = self.counters()?;
        Ok(c.synack_v4 + c.synack_v6)
    }
}

/// Threaded NAPI on `dev` in `ns` with its kthreads on `cpu`, SCHED_FIFO 50 (like softirq work
/// they are then not time-shared with ordinary tasks). The veth runs NAPI only while an XDP
/// program is attached: call it after attaching, again after a re-attach. Returns the threads.
pub fn napi_pin(ns: &Netns, dev: &str, cpu: usize) -> Result<Vec<u32>> {
    // `ip netns exec` mounts the namespace's own /sys.
    synwall_netns::sh(&[
        "ip",
        "netns",
        "exec",
        ns.name(),
        "sh",
        "-c",
        &format!("echo 1 > /sys/class/net/{dev}/threaded"),
    ])?;
    let pids = napi_threads(dev)?;
    if pids.is_empty() {
        bail!("no NAPI thread of {dev} (is an XDP program attached?)");
    }
    for &pid in &pids {
        let p = pid.to_string();
        let pinned = synwall_netns::sh(&["taskset", "-p", "-c", &cpu.to_string(), &p])
            .and_then(|_| synwall_netns::sh(&["chrt", "-f", "-p", "50", &p]));
        // A thread of the same name elsewhere (another lab's veth) may be gone by now.
        if let Err(e) = pinned {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(e.context(format!("pin the NAPI thread of {dev}")));
            }
        }
    }
    Ok(pids)
}

/// The NAPI kthreads of `dev` (`napi/<dev>-<id>`; the lab's device names are unique per run).
pub fn napi_threads(dev: &str) -> Result<Vec<u32>> {
    crate::lab::napi_threads(&format!("napi/{dev}-"))
}

/// CPU time (user + system, clock ticks) of the threads `pids` (0 for one that is gone).
pub fn thread_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // Fields after the parenthesised name: utime is field 14, stime 15.
            let rest = stat.rsplit_once(')').map(|(_, r)| r.to_string())?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}
