//! What synwall's edge is measured against, per packet:
//!
//! * [`HelperCookie`]: `bpf/baseline/syncookie_helper.bpf.c`, an XDP SYN-cookie answerer written
//!   the conventional way, on the kernel's `bpf_tcp_raw_gen_syncookie_ipv4/6` helpers (the ISN is
//!   the kernel's own listener cookie) with a Linux-style timestamp cookie;
//! * [`BareTx`]: `bpf/baseline/bare_tx.bpf.c`, swap the MACs and `XDP_TX`, the floor;
//! * [`per_packet`]: the `BPF_PROG_TEST_RUN` benchmark of both against synwall's edge.
//!
//! Loading needs root (or CAP_BPF + CAP_NET_ADMIN).

#![warn(missing_docs)]

pub mod per_packet;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use synwall_bpf::{leak_object, percpu_sum, test_run};
pub use synwall_bpf::{Error, Result, TestRun};

synwall_bpf::skeleton!(mod helper_skel = "syncookie_helper.skel.rs");
synwall_bpf::skeleton!(mod bare_skel = "bare_tx.skel.rs");

use bare_skel::{BareTxSkel, BareTxSkelBuilder};
use helper_skel::{SyncookieHelperSkel, SyncookieHelperSkelBuilder};

fn bpf(what: &'static str) -> impl FnOnce(libbpf_rs::Error) -> Error {
    move |source| Error::Bpf { what, source }
}

fn read_counters(map: &libbpf_rs::MapMut<'static>, names: &[&'static str]) -> Result<Counters> {
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        out.push((*name, percpu_sum(map, i as u32, "read the counters")?));
    }
    Ok(Counters(out))
}

/// Per-CPU counters summed over CPUs, by name, in the program's enum order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub Vec<(&'static str, u64)>);

impl Counters {
    /// The value of counter `name` (0 if there is no such counter).
    pub fn get(&self, name: &str) -> u64 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }
}

/// The counters of `syncookie_helper.bpf.c` (`enum hc_counter`), in order.
pub const HELPER_COUNTERS: [&str; 9] = [
    "tx_synack",
    "pass_not_ip",
    "pass_not_tcp",
    "pass_ip_options",
    "pass_other_port",
    "pass_not_syn",
    "pass_truncated",
    "pass_cookie_error",
    "abort_resize",
];

/// The counters of `bare_tx.bpf.c` (`enum bare_counter`), in order.
pub const BARE_COUNTERS: [&str; 2] = ["tx", "pass_short"];

/// What the helper program answers with (its read-only globals, fixed at load).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelperConfig {
    /// The TCP port whose SYNs are answered (any destination address).
    pub port: u16,
    /// MSS option of an IPv4 SYN+ACK.
    pub mss_v4: u16,
    /// MSS option of an IPv6 SYN+ACK.
    pub mss_v6: u16,
    /// Window of the SYN+ACK.
    pub window: u16,
    /// Our window-scale shift (sent when the client sent one and timestamps carry the cookie).
    pub wscale: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
}

impl HelperConfig {
    /// Linux's defaults (MSS 1460 / 1440 for a 1500-byte MTU, window 64240, shift 7, TTL 64)
    /// for `port`.
    pub fn new(port: u16) -> Self {
        HelperConfig {
            port,
            mss_v4: 1460,
            mss_v6: 1440,
            window: 64240,
            wscale: 7,
            ttl: 64,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = if self.port == 0 {
            Some("port 0 cannot be answered".to_string())
        } else if self.mss_v4 < 88 || self.mss_v6 < 88 {
            Some(format!(
                "MSS {}/{} is below the 88 bytes Linux accepts",
                self.mss_v4, self.mss_v6
            ))
        } else if self.wscale > 14 {
            Some(format!(
                "window scale {} exceeds 14 (RFC 7323)",
                self.wscale
            ))
        } else if self.ttl == 0 {
            Some("TTL 0".to_string())
        } else {
            None
        };
        bad.map_or(Ok(()), |m| Err(Error::Config(m)))
    }
}

/// The conventional XDP SYN-cookie program (kernel cookie helpers + Linux timestamp cookie).
pub struct HelperCookie {
    skel: SyncookieHelperSkel<'static>,
}

impl HelperCookie {
    /// Load with Linux's defaults, answering SYNs to `port`.
    pub fn load(port: u16) -> Result<Self> {
        Self::load_with(&HelperConfig::new(port))
    }

    /// Load with `cfg` (checked first: a bad value is an error and nothing is loaded).
    pub fn load_with(cfg: &HelperConfig) -> Result<Self> {
        cfg.check()?;
        let mut open = SyncookieHelperSkelBuilder::default()
            .open(leak_object())
            .map_err(bpf("open syncookie_helper.bpf.o"))?;
        let ro = open
            .maps
            .rodata_data
            .as_deref_mut()
            .ok_or_else(|| Error::Config("syncookie_helper.bpf.o has no .rodata".into()))?;
        ro.cfg_port = cfg.port;
        ro.cfg_mss_v4 = cfg.mss_v4;
        ro.cfg_mss_v6 = cfg.mss_v6;
        ro.cfg_window = cfg.window;
        ro.cfg_wscale = cfg.wscale;
        ro.cfg_ttl = cfg.ttl;
        let skel = open.load().map_err(bpf("load syncookie_helper.bpf.o"))?;
        Ok(HelperCookie { skel })
    }

    /// Run once on `frame` (14 bytes to 4 KiB).
    pub fn test_run(&self, frame: &[u8]) -> Result<TestRun> {
        test_run(&self.skel.progs.syncookie_helper, frame, 1)
    }

    /// Run `repeat` times on `frame`. The kernel does not reset the frame between runs: a SYN
    /// is answered once, then its SYN+ACK passes (see [`per_packet`] for how SYNs are timed).
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<TestRun> {
        test_run(&self.skel.progs.syncookie_helper, frame, repeat)
    }

    /// The counters ([`HELPER_COUNTERS`]).
    pub fn counters(&self) -> Result<Counters> {
        read_counters(&self.skel.maps.hc_counters, &HELPER_COUNTERS)
    }

    /// The loaded program's file descriptor (to attach it: `synwall_bpf::Link::attach_xdp`).
    pub fn prog_fd(&self) -> i32 {
        use std::os::fd::{AsFd, AsRawFd};
        self.skel.progs.syncookie_helper.as_fd().as_raw_fd()
    }
}

/// The floor: swap the Ethernet addresses, `XDP_TX`.
pub struct BareTx {
    skel: BareTxSkel<'static>,
}

impl BareTx {
    /// Load the program.
    pub fn load() -> Result<Self> {
        let open = BareTxSkelBuilder::default()
            .open(leak_object())
            .map_err(bpf("open bare_tx.bpf.o"))?;
        let skel = open.load().map_err(bpf("load bare_tx.bpf.o"))?;
        Ok(BareTx { skel })
    }

    /// Run once on `frame`.
    pub fn test_run(&self, frame: &[u8]) -> Result<TestRun> {
        test_run(&self.skel.progs.bare_tx, frame, 1)
    }

    /// Run `repeat` times on `frame` (swapping twice restores it, so every run does the same).
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<TestRun> {
        test_run(&self.skel.progs.bare_tx, frame, repeat)
    }

    /// The counters ([`BARE_COUNTERS`]).
    pub fn counters(&self) -> Result<Counters> {
        read_counters(&self.skel.maps.bare_counters, &BARE_COUNTERS)
    }
}
