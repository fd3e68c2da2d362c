//! One reading of a running node: what `synwall status` shows and `/metrics` exports. The daemon
//! (and `synwall status`, from the pinned maps) fills it; the renderers in `metrics.rs` and
//! `status_view.rs` only read it.

use serde::Serialize;
use std::collections::BTreeMap;
use synwall_engine::{Counter, Counters};

/// The program a counter set belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The XDP SYN answerer (`bpf/edge.bpf.c`).
    Edge,
    /// The tc validator that calls the kfunc (`bpf/backend.bpf.c`).
    Backend,
}

// EDGE_COUNTERS and BACKEND_COUNTERS: what each BPF program can increment (build.rs reads them
// from the programs' sources).
include!(concat!(env!("OUT_DIR"), "/program_counters.rs"));

impl Role {
    /// `edge` or `backend`, as in labels and pin names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Backend => "backend",
        }
    }

    /// Can this role's program increment `c`? (Its other counters stay zero.)
    pub fn counts(self, c: Counter) -> bool {
        let names = match self {
            Role::Edge => EDGE_COUNTERS,
            Role::Backend => BACKEND_COUNTERS,
        };
        names.contains(&c.name())
    }
}

/// Auto mode as the edge program sees it (absent when auto mode is off in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AutoState {
    /// Cookies are being issued (the SYN rate went above `syn_rate_on` and has not yet stayed
    /// below `syn_rate_off` for `hold_seconds`).
    pub cookies_on: bool,
    /// The SYN rate the program measured last, per second.
    pub syn_rate: u64,
    /// Thresholds from the config.
    pub syn_rate_on: u64,
    pub syn_rate_off: u64,
}

/// One loaded program: its role, the interfaces it is attached to and its summed counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramSnapshot {
    pub role: Role,
    pub interfaces: Vec<String>,
    /// Summed over CPUs.
    #[serde(serialize_with = "counters_as_map")]
    pub counters: Counters,
    /// Only for edge programs with auto mode configured.
    pub auto: Option<AutoState>,
    /// Edge programs: per interface in native XDP mode, the XDP_TX frames its driver failed to
    /// send (`ethtool -S`, summed over queues), for drivers that report it and interfaces
    /// visible from here. (In generic mode XDP_TX does not go through these.)
    pub xdp_tx_errors: BTreeMap<String, u64>,
}

/// Everything one reading holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Node name from the config (the pin directory's name).
    pub node: String,
    /// When it was taken, milliseconds since the Unix epoch.
    pub taken_ms: u64,
    /// Current salt epoch and its length.
    pub epoch: u64,
    pub epoch_seconds: u64,
    /// Strict mode on the edge programs.
    pub strict: bool,
    pub programs: Vec<ProgramSnapshot>,
}

fn counters_as_map<S: serde::Serializer>(c: &Counters, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(Counter::COUNT))?;
    for (k, v) in c.iter() {
        m.serialize_entry(k.name(), &v)?;
    }
    m.end()
}

/// Read a node's pinned maps (what `synwall status` and `/metrics` show): no program is loaded,
/// nothing is written.
pub fn from_pins(
    pins: &synwall_bpf::pin::NodePins,
    node: &str,
    epoch_seconds: u64,
) -> anyhow::Result<Snapshot> {
    use anyhow::Context;
    use synwall_bpf::pin::{Hook, PinnedMaps};
    let links = pins.links();
    let mut programs = Vec::new();
    let mut epoch = 0;
    let mut strict = false;
    for (role, dir, hook) in [
        (Role::Edge, pins.edge(), Hook::Xdp),
        (Role::Backend, pins.backend(), Hook::Tcx),
    ] {
        if !dir.join("sw_counters").exists() {
            continue;
        }
        let maps = PinnedMaps::open(&dir)
            .with_context(|| format!("open the maps pinned in {}", dir.display()))?;
        let counters = maps.counters()?;
        epoch = epoch.max(maps.live_keys()?.epoch);
        let config = maps.config()?;
        let mut auto = None;
        if role == Role::Edge {
            strict = config.strict != 0;
            if config.auto_enabled != 0 {
                let state = maps.auto_state();
                auto = Some(AutoState {
                    cookies_on: state.is_some_and(|s| s.cookies_on),
                    syn_rate: state.map_or(0, |s| s.rate),
                    syn_rate_on: config.auto_rate_on.into(),
                    syn_rate_off: config.auto_rate_off.into(),
                });
            }
        }
        let mine: Vec<&(Hook, String, std::path::PathBuf)> =
            links.iter().filter(|(h, _, _)| *h == hook).collect();
        let mut xdp_tx_errors = BTreeMap::new();
        if role == Role::Edge {
            for (_, iface, path) in &mine {
                // Only the interface the link is attached to: a reader in another network
                // namespace may see another interface of the same name.
                let attached = synwall_bpf::Link::open_pinned(path)
                    .and_then(|l| l.ifindex())
                    .ok();
                let here = nix::net::if_::if_nametoindex(iface.as_str()).ok();
                let native = attached.is_some_and(|i| {
                    synwall_bpf::xdp_mode_of(i).ok().flatten() == Some(synwall_bpf::XdpMode::Native)
                });
                if attached.is_some() && attached == here && native {
                    if let Some(v) = crate::ifstats::xdp_tx_errors(iface) {
                        xdp_tx_errors.insert(iface.clone(), v);
                    }
                }
            }
        }
        programs.push(ProgramSnapshot {
            role,
            interfaces: mine.iter().map(|(_, i, _)| i.clone()).collect(),
            counters,
            auto,
            xdp_tx_errors,
        });
    }
    if programs.is_empty() {
        anyhow::bail!(
            "nothing of node {node:?} is pinned in {} (is `synwall run` running?)",
            pins.dir.display()
        );
    }
    Ok(Snapshot {
        node: node.to_string(),
        taken_ms: crate::args::now_unix().1,
        epoch,
        epoch_seconds,
        strict,
        programs,
    })
}

/// A two-role snapshot for the renderers' tests: an edge on `eth0,eth1` (auto mode, cookies on)
/// with `syn_answered`/`pass_not_ip`, a backend on `eth2` with `backend_reqsk_created`.
#[cfg(test)]
pub fn sample(node: &str, taken_ms: u64, answered: u64, not_ip: u64, reqsk: u64) -> Snapshot {
    let mut edge = Counters::default();
    edge.set(Counter::SynAnswered, answered);
    edge.set(Counter::PassNotIp, not_ip);
    let mut backend = Counters::default();
    backend.set(Counter::BackendReqskCreated, reqsk);
    Snapshot {
        node: node.into(),
        taken_ms,
        epoch: taken_ms / 60_000,
        epoch_seconds: 60,
        strict: false,
        programs: vec![
            ProgramSnapshot {
                role: Role::Edge,
                interfaces: vec!["eth0".into(), "eth1".into()],
                counters: edge,
                auto: Some(AutoState {
                    cookies_on: true,
                    syn_rate: 15_000,
                    syn_rate_on: 10_000,
                    syn_rate_off: 2_000,
                }),
                xdp_tx_errors: BTreeMap::from([("eth0".into(), 0), ("eth1".into(), 0)]),
            },
            ProgramSnapshot {
                role: Role::Backend,
                interfaces: vec!["eth2".into()],
                counters: backend,
                auto: None,
                xdp_tx_errors: BTreeMap::new(),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lists build.rs reads from the BPF sources: each program's own counters, the parse
    /// counters (bpf/lib/parse.h) in both, every counter in at least one.
    #[test]
    fn each_role_has_the_counters_its_program_increments() {
        let names = |r: Role| -> Vec<&str> {
            Counter::ALL
                .iter()
                .filter(|&&c| r.counts(c))
                .map(|c| c.name())
                .collect()
        };
        let (edge, backend) = (names(Role::Edge), names(Role::Backend));
        for n in [
            "syn_answered",
            "fwd_non_syn",
            "strict_drop",
            "drop_synack_room",
            "auto_syn_pass",
        ] {
            assert!(edge.contains(&n) && !backend.contains(&n), "{n}");
        }
        for n in [
            "backend_reqsk_created",
            "backend_ack_invalid",
            "backend_kfunc_enomem",
        ] {
            assert!(backend.contains(&n) && !edge.contains(&n), "{n}");
        }
        for n in [
            "pass_not_ip",
            "drop_truncated",
            "pass_unprotected",
            "pass_no_state",
            "pass_big_gro",
            "drop_ack_options",
        ] {
            assert!(edge.contains(&n) && backend.contains(&n), "{n}");
        }
        for c in Counter::ALL {
            assert!(
                Role::Edge.counts(c) || Role::Backend.counts(c),
                "{} in no program",
                c.name()
            );
        }
    }
}
