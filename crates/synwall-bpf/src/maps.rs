//! The maps both programs share (`bpf/lib/maps.h`, `bpf/lib/counters.h`): their sizes, the
//! encoding of their values from the engine's types, and reading and writing them.

use crate::pod::{bytes_of, from_bytes};
use crate::services::{self, ServiceTables};
use crate::{bpf, types, Error, Result};
use libbpf_rs::{MapCore, MapFlags};
use synwall_cookie::synwall_v1::EpochKeys;
use synwall_cookie::SipKey;
use synwall_engine::{AutoState, Counter, Counters, EngineConfig, ServiceSet};

// DEFAULT_MAX_PREFIXES, DEFAULT_MAX_PORT_SETS, from `bpf/lib/constants.def` (the C's
// max_entries; a load sets them from `LoadOptions`).
include!(concat!(env!("OUT_DIR"), "/constants_maps.rs"));

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
            max_prefixes: DEFAULT_MAX_PREFIXES,
            max_port_sets: DEFAULT_MAX_PORT_SETS,
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
    pub(crate) counters: &'a dyn MapCore,
    pub(crate) config: &'a dyn MapCore,
    pub(crate) salts: &'a dyn MapCore,
    pub(crate) salt_active: &'a dyn MapCore,
    pub(crate) services: &'a dyn MapCore,
    pub(crate) ports: &'a dyn MapCore,
}

pub(crate) const KEY0: [u8; 4] = 0u32.to_ne_bytes();

impl Maps<'_> {
    pub(crate) fn set_config(&self, cfg: &EngineConfig) -> Result<()> {
        self.config
            .update(&KEY0, bytes_of(&config_value(cfg)), MapFlags::ANY)
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

    /// The live salt slot (what the programs generate and validate with now).
    pub(crate) fn live_keys(&self) -> Result<EpochKeys> {
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

    pub(crate) fn active_slot(&self) -> Result<u32> {
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
    pub(crate) fn set_keys(&self, keys: &EpochKeys) -> Result<()> {
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
