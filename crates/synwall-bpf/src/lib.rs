//! synwall's BPF data path from userspace: the XDP edge (`bpf/edge.bpf.c`) and the tc backend
//! (`bpf/backend.bpf.c`), compiled by `build.rs` into libbpf-rs skeletons.
//!
//! This crate owns loading the two objects, writing their maps from the reference engine's types
//! (configuration from [`EngineConfig`], salts from [`EpochKeys`] with tear-free rotation, services
//! from [`ServiceSet`]), reading the per-CPU counters into [`Counters`], running a program once on
//! a frame with `BPF_PROG_TEST_RUN`, and attaching: XDP (native or generic) for the edge, tcx
//! ingress for the backend. The map value layouts are the C types of `bpf/lib/maps.h`, used here
//! through the skeleton's generated `types`, never copied by hand.
//!
//! Everything here needs root (or CAP_BPF + CAP_NET_ADMIN) and a kernel with BTF; the backend's
//! kfunc `bpf_sk_assign_tcp_reqsk` needs Linux >= 6.9.

#![warn(missing_docs)]

pub mod pin;
pub mod services;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{libbpf_sys, MapCore, MapFlags, OpenObject, ProgramInput, ProgramMut};
use services::ServiceTables;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;
use synwall_cookie::synwall_v1::EpochKeys;
use synwall_cookie::SipKey;
use synwall_engine::{AutoState, Counter, Counters, EngineConfig, ServiceSet};

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unused_imports
)]
mod edge_skel {
    include!(concat!(env!("OUT_DIR"), "/edge.skel.rs"));
}

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unused_imports
)]
mod backend_skel {
    include!(concat!(env!("OUT_DIR"), "/backend.skel.rs"));
}

use backend_skel::{BackendSkel, BackendSkelBuilder};
use edge_skel::{EdgeSkel, EdgeSkelBuilder};

/// The map value types of `bpf/lib/maps.h`, as the skeleton generator derived them from BTF.
pub mod types {
    pub use crate::edge_skel::types::{
        sw_auto_state, sw_config, sw_flow_key, sw_port_bitmap, sw_salt_slot, sw_sipkey, sw_svc_key,
        sw_svc_value,
    };
}

// Both objects include maps.h: their generated types must be the same layout. And none of them
// may have implicit padding, since `bytes_of` reads them whole.
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<types::sw_config>() == size_of::<backend_skel::types::sw_config>());
    assert!(size_of::<types::sw_salt_slot>() == size_of::<backend_skel::types::sw_salt_slot>());
    assert!(size_of::<types::sw_svc_key>() == size_of::<backend_skel::types::sw_svc_key>());
    assert!(size_of::<types::sw_svc_value>() == size_of::<backend_skel::types::sw_svc_value>());
    assert!(size_of::<types::sw_config>() == 3 * 2 + 8 + 2 + 2 * 16 + 3 * 4);
    assert!(size_of::<types::sw_auto_state>() == 6 * 8 + 2 * 4);
    assert!(size_of::<types::sw_salt_slot>() == 8 + 2 * 16);
    assert!(size_of::<types::sw_svc_key>() == 4 + 1 + 16 + 3);
    assert!(size_of::<types::sw_svc_value>() == 4);
    assert!(size_of::<types::sw_flow_key>() == 16 + 16 + 2 + 2 + 1 + 3);
    assert!(size_of::<types::sw_port_bitmap>() == services::BITMAP_WORDS * 8);
};

/// Marker for the generated map types: `#[repr(C)]`, `Copy`, no implicit padding (checked above).
trait Pod: Copy {}
impl Pod for types::sw_config {}
impl Pod for types::sw_salt_slot {}
impl Pod for types::sw_svc_key {}
impl Pod for types::sw_svc_value {}
impl Pod for types::sw_flow_key {}
impl Pod for types::sw_auto_state {}
impl Pod for u32 {}

fn from_bytes<T: Pod>(b: &[u8]) -> T {
    assert!(b.len() >= std::mem::size_of::<T>(), "map value too short");
    // SAFETY: `T` is plain old data (any bit pattern is valid: integers only) and `b` holds at
    // least `size_of::<T>()` bytes; the read is unaligned-safe.
    unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) }
}

fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: `T` is a plain-old-data C struct without padding bytes (see `Pod`), so all of its
    // `size_of::<T>()` bytes are initialized.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A libbpf call failed (open, load, map access, test run, attach).
    #[error("{what}: {source}")]
    Bpf {
        /// What was being done.
        what: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration does not fit the maps.
    #[error("{0}")]
    Config(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn bpf(what: &'static str) -> impl FnOnce(libbpf_rs::Error) -> Error {
    move |source| Error::Bpf { what, source }
}

/// Sizes fixed when an object is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Capacity of the strict-mode flow cache (edge only; `EngineConfig::flow_cache`).
    pub flow_cache: u32,
    /// Most distinct service prefixes.
    pub max_prefixes: u32,
    /// Most distinct (merged) port sets; each takes 8 KiB.
    pub max_port_sets: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            flow_cache: synwall_engine::config::DEFAULT_FLOW_CACHE as u32,
            max_prefixes: 1024,
            max_port_sets: 64,
        }
    }
}

impl LoadOptions {
    /// Defaults, with the flow cache sized as `cfg` says.
    pub fn for_config(cfg: &EngineConfig) -> Self {
        LoadOptions {
            flow_cache: cfg.flow_cache.clamp(1, u32::MAX as usize) as u32,
            ..Self::default()
        }
    }
}

impl LoadOptions {
    /// Would `set` fit maps sized by these options? (Checked before anything is attached.)
    pub fn check_services(&self, set: &ServiceSet) -> Result<()> {
        let t = ServiceTables::build(set);
        fits(
            t.bitmaps.len(),
            self.max_port_sets,
            "distinct port sets",
            "max_port_sets",
        )?;
        fits(
            t.entries.len(),
            self.max_prefixes,
            "distinct prefixes",
            "max_prefixes",
        )
    }
}

fn fits(n: usize, max: u32, what: &str, option: &str) -> Result<()> {
    if n > max as usize {
        return Err(Error::Config(format!(
            "{n} {what}, the map holds {max} (LoadOptions::{option})"
        )));
    }
    Ok(())
}

/// The `sw_config` value for an engine configuration.
pub fn config_value(cfg: &EngineConfig) -> types::sw_config {
    types::sw_config {
        mss_v4: cfg.server.mss_v4,
        mss_v6: cfg.server.mss_v6,
        window: cfg.server.window,
        wscale: cfg.server.wscale,
        ttl: cfg.server.ttl,
        sack: cfg.cookie.sack as u8,
        wscale_on: cfg.cookie.wscale as u8,
        timestamps: cfg.cookie.timestamps as u8,
        ecn: cfg.cookie.ecn as u8,
        strict: cfg.strict as u8,
        auto_enabled: cfg.auto.is_some() as u8,
        pad: [0; 2],
        mss_table_v4: *cfg.cookie.mss_v4.entries(),
        mss_table_v6: *cfg.cookie.mss_v6.entries(),
        auto_rate_on: cfg.auto.map_or(0, |a| a.rate_on),
        auto_rate_off: cfg.auto.map_or(0, |a| a.rate_off),
        auto_hold_ms: cfg.auto.map_or(0, |a| a.hold_ms),
    }
}

/// Decode a `sw_auto_state` map value (`bpf/lib/maps.h`, native byte order) into the engine's
/// [`AutoState`], whose fields it mirrors; `None` if `bytes` is not one.
pub fn decode_auto_state(bytes: &[u8]) -> Option<AutoState> {
    if bytes.len() != std::mem::size_of::<types::sw_auto_state>() {
        return None;
    }
    let v: types::sw_auto_state = from_bytes(bytes);
    Some(AutoState {
        window_start_ns: v.window_start_ns,
        window_syns: v.window_syns,
        rate: v.rate,
        last_high_ns: v.last_high_ns,
        switches_on: v.switches_on,
        switches_off: v.switches_off,
        cookies_on: v.cookies_on != 0,
    })
}

/// The `sw_salt_slot` value for a set of epoch keys.
pub fn salt_slot(keys: &EpochKeys) -> types::sw_salt_slot {
    types::sw_salt_slot {
        epoch: keys.epoch,
        current: types::sw_sipkey {
            k0: keys.current.k0,
            k1: keys.current.k1,
        },
        previous: types::sw_sipkey {
            k0: keys.previous.k0,
            k1: keys.previous.k1,
        },
    }
}

/// The maps both programs share (`bpf/lib/maps.h`, `bpf/lib/counters.h`). Public only because the
/// sealed trait behind [`DataPath`] names it; its fields are private.
#[doc(hidden)]
pub struct Maps<'a> {
    counters: &'a dyn MapCore,
    config: &'a dyn MapCore,
    salts: &'a dyn MapCore,
    salt_active: &'a dyn MapCore,
    services: &'a dyn MapCore,
    ports: &'a dyn MapCore,
}

const KEY0: [u8; 4] = 0u32.to_ne_bytes();

impl Maps<'_> {
    fn set_config(&self, cfg: &EngineConfig) -> Result<()> {
        self.config
            .update(&KEY0, bytes_of(&config_value(cfg)), MapFlags::ANY)
            .map_err(bpf("write sw_config_map"))
    }

    /// The configuration the programs run with.
    fn config(&self) -> Result<types::sw_config> {
        let v = self
            .config
            .lookup(&KEY0, MapFlags::ANY)
            .map_err(bpf("read sw_config_map"))?
            .ok_or_else(|| Error::Config("sw_config_map has no entry".into()))?;
        Ok(from_bytes(&v))
    }

    /// The live salt slot (what the programs generate and validate with now).
    fn live_keys(&self) -> Result<EpochKeys> {
        let active = self.active_slot()?;
        let v = self
            .salts
            .lookup(&active.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("read sw_salts"))?
            .ok_or_else(|| Error::Config("sw_salts has no live slot".into()))?;
        let slot: types::sw_salt_slot = from_bytes(&v);
        Ok(EpochKeys {
            epoch: slot.epoch,
            current: SipKey {
                k0: slot.current.k0,
                k1: slot.current.k1,
            },
            previous: SipKey {
                k0: slot.previous.k0,
                k1: slot.previous.k1,
            },
        })
    }

    fn active_slot(&self) -> Result<u32> {
        Ok(self
            .salt_active
            .lookup(&KEY0, MapFlags::ANY)
            .map_err(bpf("read sw_salt_active"))?
            .map_or(0, |v| {
                u32::from_ne_bytes(v[..4].try_into().expect("u32 value"))
            })
            & 1)
    }

    /// Rotation: write the slot that is not live, then make it live. A reader holds the index
    /// for the few nanoseconds of one packet; the slot it reads is rewritten only an epoch later.
    fn set_keys(&self, keys: &EpochKeys) -> Result<()> {
        let next = self.active_slot()? ^ 1;
        self.salts
            .update(
                &next.to_ne_bytes(),
                bytes_of(&salt_slot(keys)),
                MapFlags::ANY,
            )
            .map_err(bpf("write sw_salts"))?;
        self.salt_active
            .update(&KEY0, &next.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("write sw_salt_active"))
    }

    /// Where the port sets of `t` go in `sw_ports` beside the live ones
    /// ([`services::place_bitmaps`]); an error, before anything is written, if they do not fit.
    fn place_services(&self, t: &ServiceTables) -> Result<Vec<(u32, bool)>> {
        fits(
            t.entries.len(),
            self.services.max_entries(),
            "distinct prefixes",
            "max_prefixes",
        )?;
        let mut live: Vec<(u32, services::PortBitmap)> = Vec::new();
        for k in self.services.keys() {
            let Some(v) = self
                .services
                .lookup(&k, MapFlags::ANY)
                .map_err(bpf("read sw_services"))?
            else {
                continue;
            };
            let i = u32::from_ne_bytes(v[..4].try_into().expect("u32 value"));
            if live.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let bytes = self
                .ports
                .lookup(&i.to_ne_bytes(), MapFlags::ANY)
                .map_err(bpf("read sw_ports"))?
                .unwrap_or_default();
            live.push((i, services::PortBitmap::from_bytes(&bytes)));
        }
        services::place_bitmaps(&t.bitmaps, &live, self.ports.max_entries()).map_err(|short| {
            Error::Config(format!(
                "the new services need {short} more port-set slot(s) than are free while {} \
                 are live (the map holds {}, LoadOptions::max_port_sets); restart instead",
                live.len(),
                self.ports.max_entries()
            ))
        })
    }

    /// Replace the services while the programs run: new port sets go to slots no live trie entry
    /// names (unchanged ones keep theirs), then the trie entries are pointed at them, then entries
    /// no longer configured are removed. Every packet sees the old or the new set of a prefix.
    fn set_services(&self, set: &ServiceSet) -> Result<()> {
        let t = ServiceTables::build(set);
        let slots = self.place_services(&t)?;
        for (bm, &(slot, write)) in t.bitmaps.iter().zip(&slots) {
            if write {
                self.ports
                    .update(&slot.to_ne_bytes(), &bm.to_bytes(), MapFlags::ANY)
                    .map_err(bpf("write sw_ports"))?;
            }
        }
        let mut wanted = Vec::new();
        for e in &t.entries {
            let key = types::sw_svc_key {
                prefixlen: e.prefixlen,
                family: e.family,
                addr: e.addr,
                pad: [0; 3],
            };
            let value = types::sw_svc_value {
                ports: slots[e.ports as usize].0,
            };
            self.services
                .update(bytes_of(&key), bytes_of(&value), MapFlags::ANY)
                .map_err(bpf("write sw_services"))?;
            wanted.push(bytes_of(&key).to_vec());
        }
        let stale: Vec<Vec<u8>> = self
            .services
            .keys()
            .filter(|k| !wanted.contains(k))
            .collect();
        for k in stale {
            self.services
                .delete(&k)
                .map_err(bpf("delete from sw_services"))?;
        }
        Ok(())
    }

    /// Every counter summed over CPUs.
    fn counters(&self) -> Result<Counters> {
        let mut out = Counters::default();
        for c in Counter::ALL {
            let per_cpu = self
                .counters
                .lookup_percpu(&(c as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(bpf("read sw_counters"))?
                .unwrap_or_default();
            let sum = per_cpu
                .iter()
                .map(|v| u64::from_ne_bytes(v[..8].try_into().expect("u64 value")))
                .fold(0u64, u64::wrapping_add);
            out.set(c, sum);
        }
        Ok(out)
    }
}

/// One `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (`XDP_*` / `TC_ACT_*`).
    pub retval: u32,
    /// The frame after the program (the SYN+ACK for `XDP_TX`).
    pub data: Vec<u8>,
    /// Mean run time per repetition, as the kernel measured it.
    pub duration: Duration,
}

/// Largest frame a test run takes and returns. An XDP test run holds at most a page minus head-
/// and tailroom ([`TEST_RUN_MAX_LINEAR`]) in its first buffer; longer frames, up to 64 KiB, reach
/// a `frags` program (the edge) as multi-buffer frames, the rest in page-sized fragments.
pub const TEST_RUN_MAX_FRAME: usize = 65536;

/// Largest first buffer of an XDP test run (a 4 KiB page minus 256 bytes of headroom and the
/// 320 bytes of `struct skb_shared_info`): longer frames are split.
pub const TEST_RUN_MAX_LINEAR: usize = 4096 - 256 - 320;

/// `BPF_PROG_TEST_RUN` of `prog` on `frame` (14 to [`TEST_RUN_MAX_FRAME`] bytes), `repeat` times:
/// shared by this crate's objects and the baseline programs it is measured against.
pub fn test_run(prog: &ProgramMut<'static>, frame: &[u8], repeat: u32) -> Result<TestRun> {
    test_run_ctx(prog, frame, repeat, None)
}

/// `struct xdp_md` as a test run's context: `data_end` is the length of the first buffer.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

fn test_run_ctx(
    prog: &ProgramMut<'static>,
    frame: &[u8],
    repeat: u32,
    first_buffer: Option<usize>,
) -> Result<TestRun> {
    if frame.len() < 14 || frame.len() > TEST_RUN_MAX_FRAME {
        return Err(Error::Config(format!(
            "a test-run frame is 14..={TEST_RUN_MAX_FRAME} bytes, not {}",
            frame.len()
        )));
    }
    let mut ctx = first_buffer.map(|n| XdpMd {
        data_end: n as u32,
        ..XdpMd::default()
    });
    // SAFETY: XdpMd is six u32 fields: plain old data, no padding.
    let ctx_bytes = ctx.as_mut().map(|c| unsafe {
        std::slice::from_raw_parts_mut((c as *mut XdpMd).cast::<u8>(), std::mem::size_of::<XdpMd>())
    });
    // Room for what a program may add to the frame (at most a page of head- and tailroom).
    let mut out = vec![0u8; frame.len() + 4096];
    let input = ProgramInput {
        context_in: ctx_bytes,
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat,
        ..ProgramInput::default()
    };
    let o = prog.test_run(input).map_err(bpf("BPF_PROG_TEST_RUN"))?;
    let len = o.data.as_ref().map_or(0, |d| d.len());
    let retval = o.return_value;
    let duration = o.duration;
    out.truncate(len);
    Ok(TestRun {
        retval,
        data: out,
        duration,
    })
}

/// XDP return codes.
pub mod xdp_action {
    /// `XDP_ABORTED`.
    pub const ABORTED: u32 = 0;
    /// `XDP_DROP`.
    pub const DROP: u32 = 1;
    /// `XDP_PASS`.
    pub const PASS: u32 = 2;
    /// `XDP_TX`.
    pub const TX: u32 = 3;
}

/// tc return codes.
pub mod tc_action {
    /// `TC_ACT_OK`.
    pub const OK: u32 = 0;
    /// `TC_ACT_SHOT`.
    pub const SHOT: u32 = 2;
}

/// How an XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic (skb) path (`XDP_FLAGS_SKB_MODE`); works on any device.
    Generic,
}

/// A BPF link (XDP or tcx ingress). Dropping it closes this process's descriptor: the program
/// detaches unless the link is also pinned (see [`pin`]), which is how a restart keeps it running.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
}

/// An XDP attachment.
pub type XdpLink = Link;
/// A tcx ingress attachment.
pub type TcxLink = Link;

impl Link {
    /// Drop this descriptor (the program detaches if the link is not pinned).
    pub fn detach(self) {}

    /// The link's file descriptor.
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn create(
        prog_fd: i32,
        ifindex: u32,
        attach: u32,
        flags: u32,
        what: &'static str,
    ) -> Result<Link> {
        // SAFETY: the options struct is zeroed then sized as libbpf requires.
        let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
        opts.flags = flags;
        // SAFETY: plain syscall wrapper; `opts` outlives the call.
        let fd = unsafe { libbpf_sys::bpf_link_create(prog_fd, ifindex as i32, attach, &opts) };
        if fd < 0 {
            return Err(Error::Os {
                what,
                source: std::io::Error::from_raw_os_error(-fd),
            });
        }
        // SAFETY: `fd` is a new link descriptor that nothing else owns.
        Ok(Link {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Make the link outlive this process: pin it at `path` (on a bpffs).
    pub fn pin(&self, path: &std::path::Path) -> Result<()> {
        let c = pin::cpath(path)?;
        // SAFETY: plain syscall wrapper; `c` is NUL-terminated and outlives the call.
        let r = unsafe { libbpf_sys::bpf_obj_pin(self.fd(), c.as_ptr()) };
        pin::os(r, "pin link")
    }

    /// Open a link pinned at `path` (by an earlier process).
    pub fn open_pinned(path: &std::path::Path) -> Result<Link> {
        Ok(Link {
            fd: pin::obj_get(path, "open pinned link")?,
        })
    }

    /// Detach the program from its hook now, whoever else holds or pins the link.
    pub fn force_detach(&self) -> Result<()> {
        // SAFETY: plain syscall wrapper on our descriptor.
        let r = unsafe { libbpf_sys::bpf_link_detach(self.fd()) };
        pin::os(r, "detach link")
    }

    /// The interface the link is attached to (0 once detached).
    pub fn ifindex(&self) -> Result<u32> {
        // SAFETY: zeroed info struct of the size we pass.
        let mut info: libbpf_sys::bpf_link_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libbpf_sys::bpf_link_info>() as u32;
        // SAFETY: `info` is `len` bytes and outlives the call.
        let r = unsafe { libbpf_sys::bpf_link_get_info_by_fd(self.fd(), &mut info, &mut len) };
        pin::os(r, "read link info")?;
        // SAFETY: the kernel filled the union member of this link's type.
        Ok(unsafe {
            match info.type_ {
                libbpf_sys::BPF_LINK_TYPE_XDP => info.__bindgen_anon_1.xdp.ifindex,
                libbpf_sys::BPF_LINK_TYPE_TCX => info.__bindgen_anon_1.tcx.ifindex,
                _ => 0,
            }
        })
    }

    /// Swap the program behind the link atomically (no packet sees no program).
    fn update(&self, prog_fd: i32) -> Result<()> {
        // SAFETY: plain syscall wrapper; no options.
        let r = unsafe { libbpf_sys::bpf_link_update(self.fd(), prog_fd, std::ptr::null()) };
        pin::os(r, "replace the program of a link (bpf_link_update)")
    }
}

/// The slot a skeleton's open object lives in (for skeletons of other crates too).
pub fn leak_object() -> &'static mut MaybeUninit<OpenObject> {
    // The skeleton borrows this slot for as long as it lives and closes the object itself when
    // dropped; only the 8-byte slot is leaked.
    Box::leak(Box::new(MaybeUninit::uninit()))
}

fn set_sizes(
    services: &mut libbpf_rs::OpenMapMut<'_>,
    ports: &mut libbpf_rs::OpenMapMut<'_>,
    opts: &LoadOptions,
) -> Result<()> {
    services
        .set_max_entries(opts.max_prefixes)
        .map_err(bpf("size sw_services"))?;
    ports
        .set_max_entries(opts.max_port_sets)
        .map_err(bpf("size sw_ports"))
}

mod sealed {
    /// The maps every object has; implemented only by [`super::Edge`] and [`super::Backend`].
    pub trait HasMaps {
        fn maps(&self) -> super::Maps<'_>;
    }
}

/// What the edge and the backend objects share: loading with a configuration, and the maps every
/// data path has (configuration, services, salts, counters). Bring it into scope to call them.
pub trait DataPath: sealed::HasMaps + Sized {
    /// Open and load the object (verifying its program), with maps of its own.
    fn load(opts: &LoadOptions) -> Result<Self> {
        Self::load_at(opts, None)
    }

    /// Open and load the object; with `pins`, its maps live in that bpffs directory: maps pinned
    /// there by an earlier process are reused (state survives a restart), missing ones are created
    /// and pinned. Fails if a pinned map no longer fits this object (then load without pins and
    /// [`DataPath::repin_maps`]).
    fn load_at(opts: &LoadOptions, pins: Option<&std::path::Path>) -> Result<Self>;

    /// Pin this object's maps in `dir`, replacing whatever was pinned under their names.
    fn repin_maps(&mut self, dir: &std::path::Path) -> Result<()>;

    /// The configuration in the map.
    fn config(&self) -> Result<types::sw_config> {
        self.maps().config()
    }

    /// The live salts.
    fn live_keys(&self) -> Result<EpochKeys> {
        self.maps().live_keys()
    }

    /// Load and configure in one go: configuration and services from `cfg`, salts `keys`.
    fn load_with(cfg: &EngineConfig, keys: &EpochKeys) -> Result<Self> {
        let d = Self::load(&LoadOptions::for_config(cfg))?;
        d.configure(cfg)?;
        d.set_keys(keys)?;
        Ok(d)
    }

    /// Write the configuration and the services of `cfg` (its `flow_cache` was fixed at load).
    fn configure(&self, cfg: &EngineConfig) -> Result<()> {
        // Services first: the one step that can refuse (too few free port-set slots) changes
        // nothing when it does.
        self.maps().set_services(&cfg.services)?;
        self.maps().set_config(cfg)
    }

    /// Would `set` replace the live services ([`Self::set_services`])? Nothing is written.
    fn check_services(&self, set: &ServiceSet) -> Result<()> {
        self.maps()
            .place_services(&ServiceTables::build(set))
            .map(drop)
    }

    /// Write the configuration only.
    fn set_config(&self, cfg: &EngineConfig) -> Result<()> {
        self.maps().set_config(cfg)
    }

    /// Replace the protected services.
    fn set_services(&self, set: &ServiceSet) -> Result<()> {
        self.maps().set_services(set)
    }

    /// Install the salts of an epoch (a rotation; readers never see a half-written key).
    fn set_keys(&self, keys: &EpochKeys) -> Result<()> {
        self.maps().set_keys(keys)
    }

    /// The counters summed over CPUs.
    fn counters(&self) -> Result<Counters> {
        self.maps().counters()
    }
}

/// The shared maps of a skeleton (both objects name them alike, with different skeleton types).
macro_rules! has_maps {
    ($t:ty) => {
        impl sealed::HasMaps for $t {
            fn maps(&self) -> Maps<'_> {
                let m = &self.skel.maps;
                Maps {
                    counters: &m.sw_counters,
                    config: &m.sw_config_map,
                    salts: &m.sw_salts,
                    salt_active: &m.sw_salt_active,
                    services: &m.sw_services,
                    ports: &m.sw_ports,
                }
            }
        }
    };
}
has_maps!(Edge);
has_maps!(Backend);

impl DataPath for Edge {
    fn load_at(opts: &LoadOptions, pins: Option<&std::path::Path>) -> Result<Self> {
        Edge::load_object(opts, pins)
    }
    fn repin_maps(&mut self, dir: &std::path::Path) -> Result<()> {
        pin::repin(self.skel.object_mut(), dir)
    }
}

impl DataPath for Backend {
    fn load_at(opts: &LoadOptions, pins: Option<&std::path::Path>) -> Result<Self> {
        Backend::load_object(opts, pins)
    }
    fn repin_maps(&mut self, dir: &std::path::Path) -> Result<()> {
        pin::repin(self.skel.object_mut(), dir)
    }
}

/// The edge: the XDP program and its maps.
pub struct Edge {
    skel: EdgeSkel<'static>,
}

impl Edge {
    fn load_object(opts: &LoadOptions, pins: Option<&std::path::Path>) -> Result<Self> {
        let mut open = EdgeSkelBuilder::default()
            .open(leak_object())
            .map_err(bpf("open edge.bpf.o"))?;
        if let Some(dir) = pins {
            pin::set_pin_paths(open.open_object_mut(), dir)?;
        }
        let m = &mut open.maps;
        set_sizes(&mut m.sw_services, &mut m.sw_ports, opts)?;
        m.sw_flows
            .set_max_entries(opts.flow_cache)
            .map_err(bpf("size sw_flows"))?;
        let skel = open.load().map_err(bpf("load edge.bpf.o"))?;
        Ok(Edge { skel })
    }

    /// The auto-mode state (all zero until auto mode has seen a SYN).
    pub fn auto_state(&self) -> Result<AutoState> {
        let v = self
            .skel
            .maps
            .sw_auto_map
            .lookup(&KEY0, MapFlags::ANY)
            .map_err(bpf("read sw_auto_map"))?
            .unwrap_or_default();
        decode_auto_state(&v)
            .ok_or_else(|| Error::Config(format!("sw_auto_map value of {} bytes", v.len())))
    }

    /// Forget every flow of the strict-mode cache.
    pub fn clear_flow_cache(&self) -> Result<()> {
        let map = &self.skel.maps.sw_flows;
        let keys: Vec<Vec<u8>> = map.keys().collect();
        for k in keys {
            // A flow evicted meanwhile is fine.
            let _ = map.delete(&k);
        }
        Ok(())
    }

    /// Run the program once on `frame` (14 bytes to 64 KiB; beyond [`TEST_RUN_MAX_LINEAR`] it
    /// arrives as a multi-buffer frame).
    pub fn test_run(&self, frame: &[u8]) -> Result<TestRun> {
        test_run(&self.skel.progs.sw_edge, frame, 1)
    }

    /// Run the program once on `frame` as a multi-buffer frame whose first buffer holds
    /// `first_buffer` bytes (at most [`TEST_RUN_MAX_LINEAR`]; the rest in fragments), as a driver
    /// that splits headers from data would hand it over.
    pub fn test_run_frags(&self, frame: &[u8], first_buffer: usize) -> Result<TestRun> {
        if first_buffer < 14 || first_buffer > frame.len().min(TEST_RUN_MAX_LINEAR) {
            return Err(Error::Config(format!(
                "a first buffer of {first_buffer} bytes for a frame of {}",
                frame.len()
            )));
        }
        test_run_ctx(&self.skel.progs.sw_edge, frame, 1, Some(first_buffer))
    }

    /// Run the program `repeat` times on `frame` (the frame is not reset between runs: only
    /// paths that leave it unchanged measure what they seem to).
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<TestRun> {
        test_run(&self.skel.progs.sw_edge, frame, repeat)
    }

    /// Attach to interface `ifindex`.
    pub fn attach_xdp(&self, ifindex: u32, mode: XdpMode) -> Result<XdpLink> {
        let flags = match mode {
            XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        };
        Link::create(
            self.skel.progs.sw_edge.as_fd().as_raw_fd(),
            ifindex,
            libbpf_sys::BPF_XDP,
            flags,
            "attach XDP (bpf_link_create)",
        )
    }

    /// Run this object's program behind `link` (an XDP link, e.g. adopted from a pin).
    pub fn update_link(&self, link: &Link) -> Result<()> {
        link.update(self.skel.progs.sw_edge.as_fd().as_raw_fd())
    }
}

/// The backend: the tc program and its maps.
pub struct Backend {
    skel: BackendSkel<'static>,
}

impl Backend {
    /// Resolves the kfunc: fails on a kernel without `bpf_sk_assign_tcp_reqsk`.
    fn load_object(opts: &LoadOptions, pins: Option<&std::path::Path>) -> Result<Self> {
        let mut open = BackendSkelBuilder::default()
            .open(leak_object())
            .map_err(bpf("open backend.bpf.o"))?;
        if let Some(dir) = pins {
            pin::set_pin_paths(open.open_object_mut(), dir)?;
        }
        let m = &mut open.maps;
        set_sizes(&mut m.sw_services, &mut m.sw_ports, opts)?;
        // SEC("tc") leaves the attach type open; tcx needs it named before load.
        open.progs
            .sw_backend
            .set_attach_type(libbpf_rs::ProgramAttachType::TcxIngress);
        let skel = open.load().map_err(bpf(
            "load backend.bpf.o (it needs the kfunc bpf_sk_assign_tcp_reqsk: Linux >= 6.9 with BTF)",
        ))?;
        Ok(Backend { skel })
    }

    /// Run the program once on `frame` (in the caller's network namespace: socket lookups see
    /// its sockets).
    pub fn test_run(&self, frame: &[u8]) -> Result<TestRun> {
        test_run(&self.skel.progs.sw_backend, frame, 1)
    }

    /// Run the program `repeat` times on `frame`.
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<TestRun> {
        test_run(&self.skel.progs.sw_backend, frame, repeat)
    }

    /// Attach at tcx ingress of interface `ifindex`.
    pub fn attach_tcx(&self, ifindex: u32) -> Result<TcxLink> {
        Link::create(
            self.skel.progs.sw_backend.as_fd().as_raw_fd(),
            ifindex,
            libbpf_sys::BPF_TCX_INGRESS,
            0,
            "attach tcx ingress (bpf_link_create)",
        )
    }

    /// Run this object's program behind `link` (a tcx link, e.g. adopted from a pin).
    pub fn update_link(&self, link: &Link) -> Result<()> {
        link.update(self.skel.progs.sw_backend.as_fd().as_raw_fd())
    }
}
