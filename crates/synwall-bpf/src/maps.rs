//! The maps both programs share (`bpf/lib/maps.h`, `bpf/lib/counters.h`): their sizes, the
//! encoding of their values from the engine's types, and reading and writing them.

use crate::pod::{bytes_of, from_bytes};
use crate::services::{self, ServiceTables};
use crate::{bpf, types, Error, Result};
use libbpf_rs::{MapCore, MapFlags};
use synwall_cookie::synwall_v1::EpochClock;
use synwall_cookie::SipKey;
use synwall_engine::salts::SALT_RING_SLOTS;
use synwall_engine::{
    AutoState, Counter, Counters, EngineConfig, SaltEntry, SaltRing, Salts, ServiceSet,
};

// DEFAULT_MAX_PREFIXES, DEFAULT_MAX_PORT_SETS, from `bpf/lib/constants.def` (the C's
// max_entries; a load sets them from `LoadOptions`), and AUTO_MAX_CPUS.
include!(concat!(env!("OUT_DIR"), "/constants_maps.rs"));

/// Sizes fixed when an object is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Capacity of the strict-mode flow cache's probation segment (edge only;
    /// `EngineConfig::flow_cache`).
    pub flow_cache: u32,
    /// Capacity of its protected segment (`EngineConfig::promoted_cache`; the map has at least
    /// one entry, unused when it is 0).
    pub promoted_cache: u32,
    /// Client prefixes each budget table holds (`EngineConfig::budget_prefixes`).
    pub budget_prefixes: u32,
    /// Most entries of the deny and allow lists together (distinct prefixes).
    pub max_client_prefixes: u32,
    /// Most distinct service prefixes.
    pub max_prefixes: u32,
    /// Most distinct (merged) port sets; each takes 8 KiB.
    pub max_port_sets: u32,
}

/// Most entries of the deny and allow lists together (the trie allocates only what it holds).
pub const MAX_CLIENT_PREFIXES: u32 = 262_144;

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            flow_cache: synwall_engine::config::DEFAULT_FLOW_CACHE as u32,
            promoted_cache: synwall_engine::config::DEFAULT_PROMOTED_CACHE as u32,
            budget_prefixes: synwall_engine::config::DEFAULT_BUDGET_PREFIXES as u32,
            max_client_prefixes: MAX_CLIENT_PREFIXES,
            max_prefixes: DEFAULT_MAX_PREFIXES,
            max_port_sets: DEFAULT_MAX_PORT_SETS,
        }
    }
}

impl LoadOptions {
    /// Defaults, with the flow cache and the budget tables sized as `cfg` says.
    pub fn for_config(cfg: &EngineConfig) -> Self {
        let size = |n: usize| n.clamp(1, u32::MAX as usize) as u32;
        LoadOptions {
            flow_cache: size(cfg.flow_cache),
            promoted_cache: size(cfg.promoted_cache),
            budget_prefixes: size(cfg.budget_prefixes),
            ..Self::default()
        }
    }

    /// Would the deny and allow lists of `lists` fit the trie? (Checked before anything is
    /// attached.)
    pub fn check_lists(&self, lists: &synwall_engine::ClientLists) -> Result<()> {
        fits(
            crate::abuse::client_entries(lists).len(),
            self.max_client_prefixes,
            "distinct deny and allow prefixes",
            "max_client_prefixes",
        )
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

pub(crate) fn fits(n: usize, max: u32, what: &str, option: &str) -> Result<()> {
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
        drop_syns: cfg.backend_drop_syns as u8,
        pad: [0; 1],
        mss_table_v4: *cfg.cookie.mss_v4.entries(),
        mss_table_v6: *cfg.cookie.mss_v6.entries(),
        auto_rate_on: cfg.auto.map_or(0, |a| a.rate_on),
        auto_rate_off: cfg.auto.map_or(0, |a| a.rate_off),
        auto_hold_ms: cfg.auto.map_or(0, |a| a.hold_ms),
        lists: crate::abuse::list_flags(&cfg.lists),
        budget_on: cfg.budget.is_some() as u8,
        node_budget_on: cfg.node_budget.is_some() as u8,
        flow_budget_on: cfg.flow_budget.is_some() as u8,
        promote: (cfg.promoted_cache > 0) as u8,
        pad2: [0; 3],
        budget_mask_v4: u32::from_ne_bytes(cfg.client_prefix.mask_v4()),
        budget_mask_v6: {
            let m = cfg.client_prefix.mask_v6();
            [
                u32::from_ne_bytes(m[..4].try_into().expect("4 bytes")),
                u32::from_ne_bytes(m[4..].try_into().expect("4 bytes")),
            ]
        },
        budget_interval_ns: gcra(cfg.budget).interval_ns,
        budget_tolerance_ns: gcra(cfg.budget).tolerance_ns,
        node_interval_ns: gcra(cfg.node_budget).interval_ns,
        node_tolerance_ns: gcra(cfg.node_budget).tolerance_ns,
        flow_interval_ns: gcra(cfg.flow_budget).interval_ns,
        flow_tolerance_ns: gcra(cfg.flow_budget).tolerance_ns,
    }
}

/// A budget's GCRA values, zero when it is off.
fn gcra(b: Option<synwall_engine::Budget>) -> synwall_engine::abuse::Gcra {
    b.map_or(
        synwall_engine::abuse::Gcra {
            interval_ns: 0,
            tolerance_ns: 0,
        },
        |b| b.gcra(),
    )
}

/// Decode a `sw_auto_state` map value (`sw_auto_window`, `bpf/lib/maps.h`, native byte order) and
/// `syns`, the sum of `sw_auto_syns` over the CPUs, into the engine's [`AutoState`], whose fields
/// they mirror; `None` if `window` is not one.
pub fn decode_auto_state(window: &[u8], syns: u64) -> Option<AutoState> {
    if window.len() != std::mem::size_of::<types::sw_auto_state>() {
        return None;
    }
    let v: types::sw_auto_state = from_bytes(window);
    Some(AutoState {
        window_start_ns: v.window_start_ns,
        syns,
        window_base: v.window_base,
        rate: v.rate,
        last_high_ns: v.last_high_ns,
        switches_on: v.switches_on,
        switches_off: v.switches_off,
        cookies_on: v.cookies_on != 0,
    })
}

/// The auto-mode state from the edge's maps `sw_auto_window` and `sw_auto_syns` (all zero until
/// auto mode has seen a SYN). The counts are summed over the first [`AUTO_MAX_CPUS`] CPUs, as
/// the program sums them.
pub fn read_auto_state(window: &dyn MapCore, syns: &dyn MapCore) -> Result<AutoState> {
    let v = window
        .lookup(&KEY0, MapFlags::ANY)
        .map_err(bpf("read sw_auto_window"))?
        .unwrap_or_default();
    let sum = syns
        .lookup_percpu(&KEY0, MapFlags::ANY)
        .map_err(bpf("read sw_auto_syns"))?
        .unwrap_or_default()
        .iter()
        .take(AUTO_MAX_CPUS as usize)
        .map(|v| u64::from_ne_bytes(v[..8].try_into().expect("u64 value")))
        .fold(0u64, u64::wrapping_add);
    decode_auto_state(&v, sum)
        .ok_or_else(|| Error::Config(format!("sw_auto_window value of {} bytes", v.len())))
}

/// The `sw_salt_entry` value of a ring slot.
pub fn salt_entry_value(e: &SaltEntry) -> types::sw_salt_entry {
    let key = |k: &SipKey| types::sw_sipkey { k0: k.k0, k1: k.k1 };
    types::sw_salt_entry {
        epoch: e.epoch,
        current: key(&e.current),
        accepted: e
            .accepted
            .as_ref()
            .map_or(types::sw_sipkey { k0: 0, k1: 0 }, key),
        has_accepted: e.accepted.is_some() as u32,
        pad: 0,
    }
}

/// The ring slot a `sw_salt_entry` value holds.
pub fn decode_salt_entry(v: &types::sw_salt_entry) -> SaltEntry {
    let key = |k: &types::sw_sipkey| SipKey { k0: k.k0, k1: k.k1 };
    SaltEntry {
        epoch: v.epoch,
        current: key(&v.current),
        accepted: (v.has_accepted != 0).then(|| key(&v.accepted)),
    }
}

/// `struct sw_clock`: the clock rule the programs pick salts with, and the daemon's heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockValue {
    /// Epoch length, lag and TAI offset (what the programs read).
    pub clock: EpochClock,
    /// UNIX nanoseconds until which strict mode passes what it cannot validate (the ring was
    /// stale until the daemon wrote salts again): what the programs read too.
    pub strict_grace_until_ns: u64,
    /// `CLOCK_REALTIME` of the daemon's last tick, nanoseconds (0: never).
    pub heartbeat_ns: u64,
    /// The daemon's process id.
    pub daemon_pid: u32,
    /// How many epochs ahead of the current one the daemon writes.
    pub ahead_epochs: u32,
}

impl ClockValue {
    fn to_map(self) -> types::sw_clock {
        types::sw_clock {
            epoch_ns: self.clock.epoch_ns,
            lag_ns: self.clock.lag_ns,
            tai_offset_ns: self.clock.tai_offset_ns,
            strict_grace_until_ns: self.strict_grace_until_ns,
            heartbeat_ns: self.heartbeat_ns,
            daemon_pid: self.daemon_pid,
            ahead_epochs: self.ahead_epochs,
        }
    }

    fn from_map(v: &types::sw_clock) -> Self {
        ClockValue {
            clock: EpochClock {
                epoch_ns: v.epoch_ns,
                lag_ns: v.lag_ns,
                tai_offset_ns: v.tai_offset_ns,
            },
            strict_grace_until_ns: v.strict_grace_until_ns,
            heartbeat_ns: v.heartbeat_ns,
            daemon_pid: v.daemon_pid,
            ahead_epochs: v.ahead_epochs,
        }
    }
}

/// The maps both programs share (`bpf/lib/maps.h`, `bpf/lib/counters.h`). Public only because the
/// sealed trait behind [`DataPath`] names it; its fields are private.
#[doc(hidden)]
pub struct Maps<'a> {
    pub(crate) counters: &'a dyn MapCore,
    pub(crate) config: &'a dyn MapCore,
    pub(crate) salt_ring: &'a dyn MapCore,
    pub(crate) clock: &'a dyn MapCore,
    pub(crate) services: &'a dyn MapCore,
    pub(crate) ports: &'a dyn MapCore,
}

pub(crate) const KEY0: [u8; 4] = 0u32.to_ne_bytes();

impl Maps<'_> {
    pub(crate) fn set_config(&self, cfg: &EngineConfig) -> Result<()> {
        self.set_config_value(&config_value(cfg))
    }

    pub(crate) fn set_config_value(&self, v: &types::sw_config) -> Result<()> {
        self.config
            .update(&KEY0, bytes_of(v), MapFlags::ANY)
            .map_err(bpf("write sw_config_map"))
    }

    /// The configuration the programs run with.
    pub(crate) fn config(&self) -> Result<types::sw_config> {
        let v = self
            .config
            .lookup(&KEY0, MapFlags::ANY)
            .map_err(bpf("read sw_config_map"))?
            .ok_or_else(|| Error::Config("sw_config_map has no entry".into()))?;
        Ok(from_bytes(&v))
    }

    /// Slot `index` of the salt ring as it is.
    pub(crate) fn salt_slot(&self, index: u32) -> Result<SaltEntry> {
        let v = self
            .salt_ring
            .lookup(&index.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf("read sw_salt_ring"))?
            .ok_or_else(|| Error::Config(format!("sw_salt_ring has no slot {index}")))?;
        Ok(decode_salt_entry(&from_bytes(&v)))
    }

    /// The whole salt ring.
    pub(crate) fn salt_ring(&self) -> Result<SaltRing> {
        let mut ring = SaltRing::new();
        for i in 0..SALT_RING_SLOTS {
            ring.set_slot(i, self.salt_slot(i as u32)?);
        }
        Ok(ring)
    }

    /// Write one slot of the ring (the slot of `e.epoch`). Readers see the old or the new bytes
    /// of a slot; the caller writes different salts only into slots no reader wants yet.
    pub(crate) fn set_salt(&self, e: &SaltEntry) -> Result<()> {
        let index = SaltRing::index(e.epoch) as u32;
        self.salt_ring
            .update(
                &index.to_ne_bytes(),
                bytes_of(&salt_entry_value(e)),
                MapFlags::ANY,
            )
            .map_err(bpf("write sw_salt_ring"))
    }

    /// The clock rule and the heartbeat.
    pub(crate) fn clock(&self) -> Result<ClockValue> {
        let v = self
            .clock
            .lookup(&KEY0, MapFlags::ANY)
            .map_err(bpf("read sw_clock_map"))?
            .ok_or_else(|| Error::Config("sw_clock_map has no entry".into()))?;
        Ok(ClockValue::from_map(&from_bytes(&v)))
    }

    /// Write the clock rule and the heartbeat.
    pub(crate) fn set_clock(&self, c: &ClockValue) -> Result<()> {
        self.clock
            .update(&KEY0, bytes_of(&c.to_map()), MapFlags::ANY)
            .map_err(bpf("write sw_clock_map"))
    }

    /// The salts as the programs see them: the ring and the clock rule.
    pub(crate) fn salts(&self) -> Result<Salts> {
        let c = self.clock()?;
        Ok(Salts {
            ring: self.salt_ring()?,
            clock: c.clock,
            strict_grace_until_ns: c.strict_grace_until_ns,
        })
    }

    /// Write every slot of `salts`' ring and its clock rule (no heartbeat): for tests and tools
    /// that set the whole state at once.
    pub(crate) fn set_salts(&self, salts: &Salts) -> Result<()> {
        for i in 0..SALT_RING_SLOTS {
            let e = salts.ring.slot(i);
            let index = i as u32;
            self.salt_ring
                .update(
                    &index.to_ne_bytes(),
                    bytes_of(&salt_entry_value(e)),
                    MapFlags::ANY,
                )
                .map_err(bpf("write sw_salt_ring"))?;
        }
        let old = self.clock()?;
        self.set_clock(&ClockValue {
            clock: salts.clock,
            strict_grace_until_ns: salts.strict_grace_until_ns,
            ..old
        })
    }

    /// Where the port sets of `t` go in `sw_ports` beside the live ones
    /// ([`services::place_bitmaps`]); an error, before anything is written, if they do not fit.
    pub(crate) fn place_services(&self, t: &ServiceTables) -> Result<Vec<(u32, bool)>> {
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
    pub(crate) fn set_services(&self, set: &ServiceSet) -> Result<()> {
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
    pub(crate) fn counters(&self) -> Result<Counters> {
        let mut out = Counters::default();
        for c in Counter::ALL {
            out.set(c, percpu_sum(self.counters, c as u32, "read sw_counters")?);
        }
        Ok(out)
    }
}

/// Entry `index` of a per-CPU array of `u64` counters, summed over CPUs (0 if it has none): how
/// every counter of ours is read, the baseline programs' too.
pub fn percpu_sum(map: &dyn MapCore, index: u32, what: &'static str) -> Result<u64> {
    let per_cpu = map
        .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)
        .map_err(bpf(what))?
        .unwrap_or_default();
    Ok(per_cpu
        .iter()
        .map(|v| u64::from_ne_bytes(v[..8].try_into().expect("u64 value")))
        .fold(0u64, u64::wrapping_add))
}
