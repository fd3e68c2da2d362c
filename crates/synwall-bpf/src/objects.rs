//! The two objects, [`Edge`] (XDP) and [`Backend`] (tc), and what they share ([`DataPath`]):
//! loading (with fresh or pinned maps), configuring, and their programs' test runs and links.

use crate::maps::{ClockValue, LoadOptions, Maps, KEY0};
use crate::services::ServiceTables;
use crate::skel::backend_skel::{BackendSkel, BackendSkelBuilder};
use crate::skel::edge_percpu_skel::{EdgePercpuSkel, EdgePercpuSkelBuilder};
use crate::skel::edge_skel::{EdgeSkel, EdgeSkelBuilder};
use crate::{bpf, leak_object, pin, test_run, types, Error, Link, Result, TEST_RUN_MAX_LINEAR};
use crate::{TcxLink, TestRun, XdpLink, XdpMode};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags};
use std::os::fd::{AsFd, AsRawFd};
use synwall_engine::{AutoState, Counters, EngineConfig, SaltEntry, SaltRing, Salts, ServiceSet};

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

        /// Write the configuration, and whatever of it lives in maps of this object's own (the
        /// edge's lists of client prefixes).
        fn write_config(&self, cfg: &synwall_engine::EngineConfig) -> crate::Result<()> {
            self.maps().set_config(cfg)
        }
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

    /// The salts as the program sees them: the ring and the clock rule.
    fn salts(&self) -> Result<Salts> {
        self.maps().salts()
    }

    /// The salt ring.
    fn salt_ring(&self) -> Result<SaltRing> {
        self.maps().salt_ring()
    }

    /// The clock rule and the daemon's heartbeat (`sw_clock`).
    fn clock(&self) -> Result<ClockValue> {
        self.maps().clock()
    }

    /// Load and configure in one go: configuration and services from `cfg`, the ring and clock
    /// rule of `salts`.
    fn load_with(cfg: &EngineConfig, salts: &Salts) -> Result<Self> {
        let d = Self::load(&LoadOptions::for_config(cfg))?;
        d.configure(cfg)?;
        d.set_salts(salts)?;
        Ok(d)
    }

    /// Write the configuration and the services of `cfg` (and, on the edge, its deny and allow
    /// lists; the sizes of its flow cache and budget tables were fixed at load).
    fn configure(&self, cfg: &EngineConfig) -> Result<()> {
        // Services first: the one step that can refuse (too few free port-set slots) changes
        // nothing when it does.
        self.maps().set_services(&cfg.services)?;
        self.write_config(cfg)
    }

    /// Would `set` replace the live services ([`Self::set_services`])? Nothing is written.
    fn check_services(&self, set: &ServiceSet) -> Result<()> {
        self.maps()
            .place_services(&ServiceTables::build(set))
            .map(drop)
    }

    /// Write the configuration only (with, on the edge, the lists it names).
    fn set_config(&self, cfg: &EngineConfig) -> Result<()> {
        self.write_config(cfg)
    }

    /// Replace the protected services.
    fn set_services(&self, set: &ServiceSet) -> Result<()> {
        self.maps().set_services(set)
    }

    /// Write the whole ring and the clock rule of `salts` (tests and tools; a running node writes
    /// slot by slot with [`DataPath::set_salt`]).
    fn set_salts(&self, salts: &Salts) -> Result<()> {
        self.maps().set_salts(salts)
    }

    /// Write one slot of the ring. A program reading the slot sees the old or the new bytes: write
    /// different salts only into slots of epochs no reader wants yet (beyond the next one).
    fn set_salt(&self, e: &SaltEntry) -> Result<()> {
        self.maps().set_salt(e)
    }

    /// Write the clock rule and the heartbeat.
    fn set_clock(&self, c: &ClockValue) -> Result<()> {
        self.maps().set_clock(c)
    }

    /// The counters summed over CPUs.
    fn counters(&self) -> Result<Counters> {
        self.maps().counters()
    }
}

/// The shared maps of a skeleton (both objects name them alike, with different skeleton types).
macro_rules! maps_of {
    ($self:ident) => {{
        let m = &$self.skel.maps;
        Maps {
            counters: &m.sw_counters,
            config: &m.sw_config_map,
            salt_ring: &m.sw_salt_ring,
            clock: &m.sw_clock_map,
            services: &m.sw_services,
            ports: &m.sw_ports,
        }
    }};
}

impl sealed::HasMaps for Backend {
    fn maps(&self) -> Maps<'_> {
        maps_of!(self)
    }
}

impl sealed::HasMaps for Edge {
    fn maps(&self) -> Maps<'_> {
        maps_of!(self)
    }

    /// The configuration and the lists, without a gap: the config first names the lists either
    /// configuration has (so the program looks up whenever the old or the new lists need it),
    /// then the trie changes (`abuse::replace_order`), then the config names the new lists.
    fn write_config(&self, cfg: &EngineConfig) -> Result<()> {
        let map = &self.skel.maps.sw_clients;
        let new = crate::abuse::client_entries(&cfg.lists);
        crate::maps::fits(
            new.len(),
            map.max_entries(),
            "distinct deny and allow prefixes",
            "max_client_prefixes",
        )?;
        let old = crate::abuse::read_clients(map)?;
        let live = self.maps().config().map_or(0, |c| c.lists);
        let mut both = crate::config_value(cfg);
        both.lists |= live;
        self.maps().set_config_value(&both)?;
        crate::abuse::apply(map, &crate::abuse::replace_order(&old, &new))?;
        self.maps().set_config(cfg)
    }
}

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

/// Whether this process may load programs that the verifier checks as "perfmon-capable"
/// (CAP_PERFMON or CAP_SYS_ADMIN in the effective set), from /proc/self/status.
pub fn perfmon_capable() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|eff| eff & (1 << CAP_SYS_ADMIN | 1 << CAP_PERFMON) != 0)
}

/// Both programs need a perfmon-capable loader: the edge measures its frame's first buffer as a
/// scalar (`data_end - data`, pointer arithmetic the verifier allows only then, for multi-buffer
/// frames) and the backend converts its listener with `bpf_skc_to_tcp_sock`. Without it the
/// verifier's refusal names neither reason, so say it first; nothing is loaded or attached.
fn require_perfmon(object: &str) -> Result<()> {
    if perfmon_capable() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "loading {object} needs CAP_PERFMON (or CAP_SYS_ADMIN): the verifier allows its \
         pointer arithmetic and kernel-pointer helpers only then (see dist/synwall.service)"
    )))
}

/// The edge: the XDP program and its maps.
pub struct Edge {
    skel: EdgeSkel<'static>,
}

impl Edge {
    fn load_object(opts: &LoadOptions, pins: Option<&std::path::Path>) -> Result<Self> {
        require_perfmon("edge.bpf.o")?;
        let mut open = EdgeSkelBuilder::default()
            .open(leak_object())
            .map_err(bpf("open edge.bpf.o"))?;
        if let Some(dir) = pins {
            pin::set_pin_paths(open.open_object_mut(), dir)?;
        }
        let m = &mut open.maps;
        set_sizes(&mut m.sw_services, &mut m.sw_ports, opts)?;
        for (map, n, what) in [
            (&mut m.sw_flows, opts.flow_cache, "size sw_flows"),
            (
                &mut m.sw_flows_promoted,
                opts.promoted_cache,
                "size sw_flows_promoted",
            ),
            (&mut m.sw_budget, opts.budget_prefixes, "size sw_budget"),
            (
                &mut m.sw_flow_budget,
                opts.budget_prefixes,
                "size sw_flow_budget",
            ),
            (
                &mut m.sw_clients,
                opts.max_client_prefixes,
                "size sw_clients",
            ),
        ] {
            map.set_max_entries(n.max(1)).map_err(bpf(what))?;
        }
        let skel = open.load().map_err(bpf("load edge.bpf.o"))?;
        Ok(Edge { skel })
    }

    /// Would `lists` replace the live deny and allow lists? Nothing is written.
    pub fn check_lists(&self, lists: &synwall_engine::ClientLists) -> Result<()> {
        crate::maps::fits(
            crate::abuse::client_entries(lists).len(),
            self.skel.maps.sw_clients.max_entries(),
            "distinct deny and allow prefixes",
            "max_client_prefixes",
        )
    }

    /// The trie of the deny and allow lists, entry by entry.
    pub fn client_entries(
        &self,
    ) -> Result<std::collections::BTreeMap<crate::abuse::ClientEntry, crate::abuse::ClientFlags>>
    {
        crate::abuse::read_clients(&self.skel.maps.sw_clients)
    }

    /// The reflection budget's buckets.
    pub fn budget_buckets(&self) -> Result<synwall_engine::abuse::Buckets> {
        crate::abuse::read_buckets(&self.skel.maps.sw_budget)
    }

    /// Strict mode's buckets of new flows.
    pub fn flow_budget_buckets(&self) -> Result<synwall_engine::abuse::Buckets> {
        crate::abuse::read_buckets(&self.skel.maps.sw_flow_budget)
    }

    /// Forget every budget bucket (every client prefix starts full; the node's cap too).
    pub fn clear_budgets(&self) -> Result<()> {
        crate::abuse::clear(&self.skel.maps.sw_budget);
        crate::abuse::clear(&self.skel.maps.sw_flow_budget);
        let zero = types::sw_budget_state::default();
        self.skel
            .maps
            .sw_node_budget
            .update(&KEY0, crate::pod::bytes_of(&zero), MapFlags::ANY)
            .map_err(bpf("write sw_node_budget"))
    }

    /// Flows in the flow cache's segments: (probation, promoted).
    pub fn flow_cache_len(&self) -> (usize, usize) {
        (
            self.skel.maps.sw_flows.keys().count(),
            self.skel.maps.sw_flows_promoted.keys().count(),
        )
    }

    /// The auto-mode state (all zero until auto mode has seen a SYN).
    pub fn auto_state(&self) -> Result<AutoState> {
        crate::read_auto_state(&self.skel.maps.sw_auto_window, &self.skel.maps.sw_auto_syns)
    }

    /// Forget every flow of the strict-mode cache (both segments).
    pub fn clear_flow_cache(&self) -> Result<()> {
        crate::abuse::clear(&self.skel.maps.sw_flows);
        crate::abuse::clear(&self.skel.maps.sw_flows_promoted);
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
        crate::test_run::test_run_ctx(&self.skel.progs.sw_edge, frame, 1, Some(first_buffer))
    }

    /// Run the program `repeat` times on `frame` (the frame is not reset between runs: only
    /// paths that leave it unchanged measure what they seem to).
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<TestRun> {
        test_run(&self.skel.progs.sw_edge, frame, repeat)
    }

    /// Run the generic-mode program (`sw_edge_generic`, without multi-buffer support) once on
    /// `frame` (14 to [`TEST_RUN_MAX_LINEAR`] bytes: a test run splits nothing for it).
    pub fn test_run_generic(&self, frame: &[u8]) -> Result<TestRun> {
        if frame.len() > TEST_RUN_MAX_LINEAR {
            return Err(Error::Config(format!(
                "the generic-mode program takes one buffer of at most {TEST_RUN_MAX_LINEAR} bytes in \
                 a test run, not {}",
                frame.len()
            )));
        }
        test_run(&self.skel.progs.sw_edge_generic, frame, 1)
    }

    /// The program for an attach mode: `sw_edge` (multi-buffer) natively, `sw_edge_generic` (no
    /// multi-buffer) in generic mode, where Linux 6.18 mishandles an xdp.frags program's skbs for
    /// the tc hook behind it (see bpf/edge.bpf.c).
    fn prog_fd(&self, mode: XdpMode) -> i32 {
        match mode {
            XdpMode::Native => self.skel.progs.sw_edge.as_fd().as_raw_fd(),
            XdpMode::Generic => self.skel.progs.sw_edge_generic.as_fd().as_raw_fd(),
        }
    }

    /// Attach to interface `ifindex`.
    pub fn attach_xdp(&self, ifindex: u32, mode: XdpMode) -> Result<XdpLink> {
        Link::attach_xdp(self.prog_fd(mode), ifindex, mode)
    }

    /// Run this object's program behind `link` (an XDP link, e.g. adopted from a pin), the one
    /// for the mode the link is attached in.
    pub fn update_link(&self, link: &Link) -> Result<()> {
        let mode = crate::xdp_mode_of(link.ifindex()?)?.unwrap_or(XdpMode::Native);
        link.update(self.prog_fd(mode))
    }
}

/// A measurement build of the edge (`bpf/edge.bpf.c` with `-DSW_BUDGET_PERCPU`): the reflection
/// budget in per-CPU buckets, without atomics, instead of buckets every CPU shares. Not for
/// nodes: `docs/BENCHMARKS.md` compares the two and says why the shared buckets are the ones
/// built. Configure it with the budget a CPU may spend (the node's split between the CPUs, or
/// the whole budget on every CPU).
pub struct EdgePercpuBudget {
    skel: EdgePercpuSkel<'static>,
}

impl sealed::HasMaps for EdgePercpuBudget {
    fn maps(&self) -> Maps<'_> {
        maps_of!(self)
    }
}

impl DataPath for EdgePercpuBudget {
    fn load_at(opts: &LoadOptions, pins: Option<&std::path::Path>) -> Result<Self> {
        if pins.is_some() {
            return Err(Error::Config(
                "the per-CPU budget build is for measurements; it is never pinned".into(),
            ));
        }
        require_perfmon("edge_percpu.bpf.o")?;
        let mut open = EdgePercpuSkelBuilder::default()
            .open(leak_object())
            .map_err(bpf("open edge_percpu.bpf.o"))?;
        let m = &mut open.maps;
        set_sizes(&mut m.sw_services, &mut m.sw_ports, opts)?;
        m.sw_budget
            .set_max_entries(opts.budget_prefixes.max(1))
            .map_err(bpf("size sw_budget"))?;
        let skel = open.load().map_err(bpf("load edge_percpu.bpf.o"))?;
        Ok(EdgePercpuBudget { skel })
    }

    fn repin_maps(&mut self, _dir: &std::path::Path) -> Result<()> {
        Err(Error::Config(
            "the per-CPU budget build is for measurements; it is never pinned".into(),
        ))
    }
}

impl EdgePercpuBudget {
    /// Run the program once on `frame`.
    pub fn test_run(&self, frame: &[u8]) -> Result<TestRun> {
        test_run(&self.skel.progs.sw_edge, frame, 1)
    }

    /// The reflection budget's buckets (each CPU's drops summed).
    pub fn budget_buckets(&self) -> Result<synwall_engine::abuse::Buckets> {
        crate::abuse::read_buckets(&self.skel.maps.sw_budget)
    }

    /// Forget every bucket.
    pub fn clear_budgets(&self) {
        crate::abuse::clear(&self.skel.maps.sw_budget);
    }
}

/// The backend: the tc program and its maps.
pub struct Backend {
    skel: BackendSkel<'static>,
}

impl Backend {
    /// Resolves the kfunc: fails on a kernel without `bpf_sk_assign_tcp_reqsk`.
    fn load_object(opts: &LoadOptions, pins: Option<&std::path::Path>) -> Result<Self> {
        require_perfmon("backend.bpf.o")?;
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
        Link::attach_tcx(self.skel.progs.sw_backend.as_fd().as_raw_fd(), ifindex)
    }

    /// Run this object's program behind `link` (a tcx link, e.g. adopted from a pin).
    pub fn update_link(&self, link: &Link) -> Result<()> {
        link.update(self.skel.progs.sw_backend.as_fd().as_raw_fd())
    }
}
