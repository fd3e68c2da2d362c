//! One reading of a running node: what `synwall status` shows and `/metrics` exports. The daemon
//! (and `synwall status`, from the pinned maps) fills it; the renderers in `metrics.rs` and
//! `status_view.rs` only read it.

use crate::rotation::key_id;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use synwall_bpf::ClockValue;
use synwall_engine::{Counter, Counters, Salts};

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
    /// The table of `buckets` at TAI time `now_ns`, their keys made with `lens`.
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
            .filter(|(_, st)| {
                st.last_drop_ns > 0 && now_ns.saturating_sub(st.last_drop_ns) < window
            })
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

/// A program's salts as its maps hold them, at the reading's time: the epoch it uses, the key
/// ids of that epoch's salts, how far ahead the ring is written, and the heartbeat of the daemon
/// that writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SaltView {
    /// Epoch length in seconds, as the program has it (0: never written).
    pub epoch_seconds: u64,
    /// The kernel's TAI offset the program subtracts from its clock, in seconds.
    pub tai_offset_seconds: i64,
    /// The epoch validators are in now: `floor(unix time / P)`.
    pub validation_epoch: u64,
    /// The epoch generators issue cookies in now: `L` behind.
    pub generation_epoch: u64,
    /// The one this program uses: the edge generates (its strict mode validates too), the
    /// backend validates.
    pub live_epoch: u64,
    /// When the program switches to the next epoch's salts (milliseconds since the Unix epoch):
    /// at the boundary for a validator, `L` later for a generator.
    pub next_rotation_ms: u64,
    /// Key id of the live epoch's current salt (a MAC under it, not the key); `None`: the ring
    /// has no salt for the live epoch (stale).
    pub key: Option<String>,
    /// Key id of the live epoch's accepted salt (SPEC 2a); `None` when there is none.
    pub accepted_key: Option<String>,
    /// An accepted master secret validates here (the live slot holds an accepted salt).
    pub accepted_secret: bool,
    /// The last epoch of the run of salts from the live one; `None` when stale.
    pub written_until_epoch: Option<u64>,
    /// When the program runs out of salts (milliseconds since the Unix epoch): from then on it
    /// passes SYNs (and, validating, ACKs) to the kernel. When stale: when it ran out. `None`:
    /// the ring was never written.
    pub runs_out_ms: Option<u64>,
    /// No salt for the live epoch: the fail-safe is on.
    pub stale: bool,
    /// The process that writes the ring (its last heartbeat's).
    pub daemon_pid: u32,
    /// Its last heartbeat, milliseconds since the Unix epoch; 0: never.
    pub heartbeat_ms: u64,
    /// How many epochs ahead of the current one it writes.
    pub ahead_epochs: u32,
}

impl SaltView {
    /// What `salts` and `clock` say for a program of `role` at UNIX time `now_ns`.
    pub fn read(role: Role, salts: &Salts, clock: &ClockValue, now_ns: u64) -> SaltView {
        let c = &clock.clock;
        let p = c.epoch_ns;
        let mut v = SaltView {
            epoch_seconds: p / 1_000_000_000,
            tai_offset_seconds: c.tai_offset_ns / 1_000_000_000,
            validation_epoch: 0,
            generation_epoch: 0,
            live_epoch: 0,
            next_rotation_ms: 0,
            key: None,
            accepted_key: None,
            accepted_secret: false,
            written_until_epoch: None,
            runs_out_ms: None,
            stale: true,
            daemon_pid: clock.daemon_pid,
            heartbeat_ms: clock.heartbeat_ns / 1_000_000,
            ahead_epochs: clock.ahead_epochs,
        };
        if p == 0 {
            return v;
        }
        v.validation_epoch = now_ns / p;
        v.generation_epoch = now_ns.saturating_sub(c.lag_ns) / p;
        let (live, lag) = match role {
            Role::Edge => (v.generation_epoch, c.lag_ns),
            Role::Backend => (v.validation_epoch, 0),
        };
        v.live_epoch = live;
        // The moment the program leaves epoch `last`.
        let end = |last: u64| (last.saturating_add(1).saturating_mul(p) + lag) / 1_000_000;
        v.next_rotation_ms = end(live);
        match salts.ring.get(live) {
            Some(e) => {
                v.stale = false;
                v.key = Some(key_id(&e.current));
                v.accepted_key = e.accepted.as_ref().map(key_id);
                v.accepted_secret = e.accepted.is_some();
                let last = salts.ring.covered_until(live).unwrap_or(live);
                v.written_until_epoch = Some(last);
                v.runs_out_ms = Some(end(last));
            }
            None => {
                // The newest salt before the live epoch: the ring ran out after it.
                v.runs_out_ms = (1..synwall_engine::salts::SALT_RING_SLOTS as u64)
                    .map(|back| live.wrapping_sub(back))
                    .find(|&e| salts.ring.get(e).is_some())
                    .map(end);
            }
        }
        v
    }
}

/// Is a node fit to receive traffic, and if not, why (each reason one line).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Fit: every program attached, the daemon alive, salts for the live epoch and at least an
    /// epoch ahead, the secret files readable.
    pub healthy: bool,
    /// Why not, most important first; empty when healthy.
    pub reasons: Vec<String>,
    /// What was not checked (e.g. the secret files, without the node's config).
    pub unchecked: Vec<String>,
}

impl Health {
    /// One line: `ok` or `unhealthy: <first reason>` (and how many more).
    pub fn line(&self) -> String {
        match self.reasons.as_slice() {
            [] => "ok".to_string(),
            [one] => format!("unhealthy: {one}"),
            [first, rest @ ..] => format!("unhealthy: {first} (and {} more)", rest.len()),
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

/// The abuse controls of an edge from its pinned maps.
fn abuse_of(maps: &synwall_bpf::pin::PinnedMaps, c: &synwall_bpf::types::sw_config) -> Abuse {
    let lens = synwall_engine::ClientPrefix {
        v4: c.budget_mask_v4.count_ones() as u8,
        v6: (c.budget_mask_v6[0].count_ones() + c.budget_mask_v6[1].count_ones()) as u8,
    };
    // The buckets' clock: TAI (bpf_ktime_get_tai_ns).
    let now = synwall_bpf::clock::tai_ns();
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
/// A heartbeat older than this: the daemon is not alive (stopped, killed, or hung).
pub const HEARTBEAT_STALE_MS: u64 = 2_000;

/// One loaded program: its role, the interfaces it is attached to and its summed counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramSnapshot {
    pub role: Role,
    pub interfaces: Vec<String>,
    /// Every pinned link of this program is attached to its interface (and there is one).
    pub attached: bool,
    /// Its salts.
    pub salts: SaltView,
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
    /// The salt epoch now (`floor(unix time / epoch_seconds)`), and its length.
    pub epoch: u64,
    pub epoch_seconds: u64,
    /// Strict mode on the edge programs.
    pub strict: bool,
    pub programs: Vec<ProgramSnapshot>,
    /// Fit to receive traffic?
    pub health: Health,
}

impl Snapshot {
    /// The freshest heartbeat of the programs' daemon: (pid, milliseconds since the Unix epoch).
    pub fn heartbeat(&self) -> Option<(u32, u64)> {
        self.programs
            .iter()
            .map(|p| (p.salts.daemon_pid, p.salts.heartbeat_ms))
            .filter(|(_, ms)| *ms > 0)
            .max_by_key(|(_, ms)| *ms)
    }

    /// Is the daemon alive (a heartbeat within [`HEARTBEAT_STALE_MS`] of the reading)?
    pub fn daemon_alive(&self) -> bool {
        self.heartbeat()
            .is_some_and(|(_, ms)| self.taken_ms.saturating_sub(ms) < HEARTBEAT_STALE_MS)
    }

    /// Judge the reading's health; `secrets` are the node's secret files (`None`: unknown,
    /// not checked).
    pub fn judge(&mut self, secrets: Option<&[PathBuf]>) {
        let mut reasons = Vec::new();
        let mut unchecked = Vec::new();
        for p in &self.programs {
            let role = p.role.as_str();
            if !p.attached {
                reasons.push(format!(
                    "{role}: not attached to {}",
                    if p.interfaces.is_empty() {
                        "any interface (no pinned link)".to_string()
                    } else {
                        p.interfaces.join(", ")
                    }
                ));
            }
        }
        match self.heartbeat() {
            None => reasons.push("the daemon never wrote a heartbeat: it is not running".into()),
            Some((pid, ms)) if !self.daemon_alive() => reasons.push(format!(
                "the daemon (pid {pid}) is not alive: no heartbeat for {}",
                duration(self.taken_ms.saturating_sub(ms))
            )),
            Some(_) => {}
        }
        for p in &self.programs {
            let role = p.role.as_str();
            let s = &p.salts;
            match s.runs_out_ms {
                _ if s.stale && s.epoch_seconds == 0 => {
                    reasons.push(format!("{role}: no salts were ever written"))
                }
                Some(at) if s.stale => reasons.push(format!(
                    "{role}: no salt for epoch {}: the salts ran out at {} ({} ago); SYNs pass \
                     to the kernel",
                    s.live_epoch,
                    fmt_utc(at),
                    duration(self.taken_ms.saturating_sub(at))
                )),
                None if s.stale => {
                    reasons.push(format!("{role}: no salt for epoch {}", s.live_epoch))
                }
                Some(at) if at.saturating_sub(self.taken_ms) < s.epoch_seconds * 1000 => reasons
                    .push(format!(
                        "{role}: salts written only {} ahead (they run out at {})",
                        duration(at.saturating_sub(self.taken_ms)),
                        fmt_utc(at)
                    )),
                _ => {}
            }
        }
        match secrets {
            None => unchecked.push("the secret files (no config file known)".to_string()),
            Some(paths) => {
                for path in paths {
                    if let Err(e) = synwall_config::read_secret_file(path) {
                        reasons.push(e.to_string());
                    }
                }
            }
        }
        self.health = Health {
            healthy: reasons.is_empty(),
            reasons,
            unchecked,
        };
    }
}

/// `HH:MM:SS UTC` of a moment in milliseconds since the Unix epoch.
pub fn fmt_utc(ms: u64) -> String {
    let s = ms / 1000;
    let (h, m, sec) = ((s / 3600) % 24, (s / 60) % 60, s % 60);
    format!("{h:02}:{m:02}:{sec:02} UTC")
}

/// A duration for people: `1.2 s`, `9 min 12 s`, `3 h 4 min`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if ms < 60_000 {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s / 60) % 60)
    }
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
/// nothing is written. The health is judged with `secrets`, the node's secret files (`None`:
/// not known, not checked).
pub fn from_pins(
    pins: &synwall_bpf::pin::NodePins,
    node: &str,
    epoch_seconds: u64,
    secrets: Option<&[PathBuf]>,
) -> anyhow::Result<Snapshot> {
    use anyhow::Context;
    use synwall_bpf::pin::{Hook, PinnedMaps};
    let links = pins.links();
    let mut programs = Vec::new();
    let mut epoch = 0;
    let mut period = epoch_seconds;
    let mut strict = false;
    let now_ns = synwall_bpf::clock::unix_ns();
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
        let salts = SaltView::read(role, &maps.salts()?, &maps.clock()?, now_ns);
        epoch = epoch.max(salts.validation_epoch);
        if salts.epoch_seconds > 0 {
            period = salts.epoch_seconds;
        }
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
        let attached = !mine.is_empty()
            && mine.iter().all(|(_, _, path)| {
                synwall_bpf::Link::open_pinned(path)
                    .and_then(|l| l.ifindex())
                    .is_ok_and(|i| i > 0)
            });
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
            attached,
            salts,
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
    let mut snap = Snapshot {
        node: node.to_string(),
        taken_ms: now_ns / 1_000_000,
        epoch,
        epoch_seconds: period,
        strict,
        programs,
        health: Health::default(),
    };
    snap.judge(secrets);
    Ok(snap)
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
    let salts = |role| {
        let e = taken_ms / 60_000;
        let master = synwall_cookie::synwall_v1::MasterSecret([9; 32]);
        let ring = synwall_engine::SaltRing::derive(e.saturating_sub(1), e + 10, &master, None);
        let clock = ClockValue {
            clock: synwall_cookie::synwall_v1::EpochClock::new(60, 0),
            strict_grace_until_ns: 0,
            heartbeat_ns: taken_ms.saturating_sub(10) * 1_000_000,
            daemon_pid: 4242,
            ahead_epochs: 10,
        };
        SaltView::read(
            role,
            &Salts::new(ring, clock.clock),
            &clock,
            taken_ms * 1_000_000,
        )
    };
    Snapshot {
        node: node.into(),
        taken_ms,
        epoch: taken_ms / 60_000,
        epoch_seconds: 60,
        strict: false,
        health: Health {
            healthy: true,
            reasons: vec![],
            unchecked: vec![],
        },
        programs: vec![
            ProgramSnapshot {
                role: Role::Edge,
                interfaces: vec!["eth0".into(), "eth1".into()],
                attached: true,
                salts: salts(Role::Edge),
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
                attached: true,
                salts: salts(Role::Backend),
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
            last_drop_ns: if drops == 0 {
                0
            } else {
                now - ago_ms * 1_000_000
            },
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
