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

/// A budget's rate and burst, as the program holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetView {
    /// Events per second.
    pub rate: u64,
    /// Events an idle bucket allows at once.
    pub burst: u64,
}

impl BudgetView {
    /// From the GCRA values of `sw_config` (interval = 1e9 / rate, tolerance = (burst - 1) *
    /// interval); `None` when the budget is off.
    fn of(on: u8, interval_ns: u64, tolerance_ns: u64) -> Option<BudgetView> {
        (on != 0 && interval_ns > 0).then(|| BudgetView {
            rate: (1_000_000_000f64 / interval_ns as f64).round() as u64,
            burst: tolerance_ns / interval_ns + 1,
        })
    }
}

/// A client prefix a budget refused events to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LimitedPrefix {
    /// The client prefix (`198.51.100.0/24`).
    pub prefix: String,
    /// Events refused since its bucket was made.
    pub dropped: u64,
    /// How long ago the last one was refused, ms.
    pub last_drop_ms_ago: u64,
}

/// What one budget's table holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BudgetTable {
    /// Client prefixes with a bucket.
    pub tracked: u64,
    /// Client prefixes refused at least one event in the last [`LIMITED_WINDOW_MS`].
    pub limited: u64,
    /// The limited prefixes that were refused the most, at most [`TOP_LIMITED`].
    pub top: Vec<LimitedPrefix>,
}

/// A prefix counts as limited when a budget refused it something this recently.
pub const LIMITED_WINDOW_MS: u64 = 10_000;
/// How many limited prefixes a reading names.
pub const TOP_LIMITED: usize = 10;

impl BudgetTable {
    /// The table of `buckets` at monotonic time `now_ns`, their keys made with `lens`.
    pub fn of(
        buckets: &[(
            synwall_engine::abuse::BucketKey,
            synwall_engine::abuse::BucketState,
        )],
        lens: &synwall_engine::ClientPrefix,
        now_ns: u64,
    ) -> BudgetTable {
        let window = LIMITED_WINDOW_MS * 1_000_000;
        let mut limited: Vec<LimitedPrefix> = buckets
            .iter()
            .filter(|(_, st)| st.last_drop_ns > 0 && now_ns.saturating_sub(st.last_drop_ns) < window)
            .map(|(k, st)| LimitedPrefix {
                prefix: k.prefix(lens).to_string(),
                dropped: st.drops,
                last_drop_ms_ago: now_ns.saturating_sub(st.last_drop_ns) / 1_000_000,
            })
            .collect();
        let n = limited.len() as u64;
        limited.sort_by(|a, b| b.dropped.cmp(&a.dropped).then(a.prefix.cmp(&b.prefix)));
        limited.truncate(TOP_LIMITED);
        BudgetTable {
            tracked: buckets.len() as u64,
            limited: n,
            top: limited,
        }
    }
}

/// One budget that is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetInfo {
    /// `reflection` (SYN+ACKs per client prefix), `node` (SYN+ACKs of the node), `flow` (new
    /// strict-mode flows per client prefix; only on a strict edge).
    pub name: &'static str,
    /// Events per second.
    pub rate: u64,
    /// Events at once.
    pub burst: u64,
    /// Its client prefixes; `None` for the node's cap (one bucket).
    pub prefixes: Option<BudgetTable>,
}

/// The edge's abuse controls (SPEC section 10) as its maps hold them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Abuse {
    /// Client prefix lengths of the budgets.
    pub client_prefix_v4: u8,
    pub client_prefix_v6: u8,
    /// The budgets that are on.
    pub budgets: Vec<BudgetInfo>,
    /// The deny list is set.
    pub deny_list: bool,
    /// The allow list is set.
    pub allow_list: bool,
    /// Entries of the lists' trie (one per distinct listed prefix).
    pub list_entries: u64,
}

impl Abuse {
    /// The budget called `name`, if it is on.
    pub fn budget(&self, name: &str) -> Option<&BudgetInfo> {
        self.budgets.iter().find(|b| b.name == name)
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`, which the buckets use.
pub fn monotonic_ns() -> u64 {
    // SAFETY: a plain clock read into a zeroed timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The abuse controls of an edge from its pinned maps.
fn abuse_of(maps: &synwall_bpf::pin::PinnedMaps, c: &synwall_bpf::types::sw_config) -> Abuse {
    let lens = synwall_engine::ClientPrefix {
        v4: c.budget_mask_v4.count_ones() as u8,
        v6: (c.budget_mask_v6[0].count_ones() + c.budget_mask_v6[1].count_ones()) as u8,
    };
    let now = monotonic_ns();
    let table = |name: &str| {
        maps.extra(name)
            .and_then(|m| synwall_bpf::abuse::read_buckets(m).ok())
            .map_or_else(BudgetTable::default, |b| BudgetTable::of(&b, &lens, now))
    };
    let mut budgets = Vec::new();
    let budget = |name, on, interval, tolerance, prefixes: Option<BudgetTable>| {
        BudgetView::of(on, interval, tolerance).map(|b| BudgetInfo {
            name,
            rate: b.rate,
            burst: b.burst,
            prefixes,
        })
    };
    budgets.extend(budget(
        "reflection",
        c.budget_on,
        c.budget_interval_ns,
        c.budget_tolerance_ns,
        Some(table("sw_budget")),
    ));
    budgets.extend(budget(
        "node",
        c.node_budget_on,
        c.node_interval_ns,
        c.node_tolerance_ns,
        None,
    ));
    if c.strict != 0 {
        budgets.extend(budget(
            "flow",
            c.flow_budget_on,
            c.flow_interval_ns,
            c.flow_tolerance_ns,
            Some(table("sw_flow_budget")),
        ));
    }
    Abuse {
        client_prefix_v4: lens.v4,
        client_prefix_v6: lens.v6,
        budgets,
        deny_list: c.lists & synwall_bpf::abuse::LIST_DENY != 0,
        allow_list: c.lists & synwall_bpf::abuse::LIST_ALLOW != 0,
        list_entries: maps
            .extra("sw_clients")
            .and_then(|m| synwall_bpf::abuse::read_clients(m).ok())
            .map_or(0, |e| e.len() as u64),
    }
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
    /// Only for edge programs: the budgets and the lists.
    pub abuse: Option<Abuse>,
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
        let mut abuse = None;
        if role == Role::Edge {
            strict = config.strict != 0;
            abuse = Some(abuse_of(&maps, &config));
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
            abuse,
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
                abuse: Some(Abuse {
                    client_prefix_v4: 24,
                    client_prefix_v6: 48,
                    budgets: vec![
                        BudgetInfo {
                            name: "reflection",
                            rate: 1000,
                            burst: 2000,
                            prefixes: Some(BudgetTable {
                                tracked: 3,
                                limited: 1,
                                top: vec![LimitedPrefix {
                                    prefix: "203.0.113.0/24".into(),
                                    dropped: 12_345,
                                    last_drop_ms_ago: 200,
                                }],
                            }),
                        },
                        BudgetInfo {
                            name: "node",
                            rate: 50_000,
                            burst: 10_000,
                            prefixes: None,
                        },
                    ],
                    deny_list: true,
                    allow_list: false,
                    list_entries: 2,
                }),
                xdp_tx_errors: BTreeMap::from([("eth0".into(), 0), ("eth1".into(), 0)]),
            },
            ProgramSnapshot {
                role: Role::Backend,
                interfaces: vec!["eth2".into()],
                counters: backend,
                auto: None,
                abuse: None,
                xdp_tx_errors: BTreeMap::new(),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_tables_name_the_most_limited_prefixes() {
        use synwall_engine::abuse::{BucketKey, BucketState};
        let lens = synwall_engine::ClientPrefix::default();
        let key = |a: &str| lens.key(&a.parse().unwrap());
        let now = 100_000_000_000u64;
        let b = |drops, ago_ms: u64| BucketState {
            tat: now,
            drops,
            last_drop_ns: if drops == 0 { 0 } else { now - ago_ms * 1_000_000 },
        };
        let mut buckets: Vec<(BucketKey, BucketState)> = vec![
            (key("192.0.2.1"), b(0, 0)),
            (key("198.51.100.9"), b(50, 20)),
            (key("2001:db8:7::1"), b(900, 9_999)),
            (key("203.0.113.5"), b(100_000, 10_001)),
        ];
        for i in 0..20u8 {
            buckets.push((key(&format!("10.0.{i}.1")), b(10 + u64::from(i), 1)));
        }
        let t = BudgetTable::of(&buckets, &lens, now);
        assert_eq!(t.tracked, 24);
        // 203.0.113.0/24 was limited, but more than 10 s ago.
        assert_eq!(t.limited, 22);
        assert_eq!(t.top.len(), TOP_LIMITED);
        assert_eq!(t.top[0].prefix, "2001:db8:7::/48");
        assert_eq!(t.top[0].last_drop_ms_ago, 9_999);
        assert_eq!(t.top[1].prefix, "198.51.100.0/24");
        assert_eq!(t.top[2].prefix, "10.0.19.0/24");
        assert_eq!(
            BudgetView::of(1, 1_000_000, 1_999_000_000),
            Some(BudgetView {
                rate: 1000,
                burst: 2000
            })
        );
        assert_eq!(BudgetView::of(1, 333_333_333, 0).unwrap().rate, 3);
        assert_eq!(BudgetView::of(0, 1_000_000, 0), None);
    }

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
