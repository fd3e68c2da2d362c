//! `synwall edge`, `synwall backend`, `synwall single`: a node described by flags instead of a
//! config file, run in the foreground through the same [`Node`] as `synwall run`, with nothing
//! pinned: load the BPF programs, attach them, print one `ready` line, rotate salts on epoch
//! boundaries, and on SIGINT/SIGTERM print the final counters and exit (the programs detach with
//! the process). Everything is validated before anything is attached, and a failure part-way
//! drops what was attached: a bad start leaves nothing behind.

use crate::args::DataPathArgs;
use crate::node::{FrontEnd, Interface, Node, NodeSpec, Signals};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use std::process::ExitCode;
use synwall_bpf::XdpMode;
use synwall_engine::{AutoConfig, Budget, EngineConfig, InvalidConfig, Prefix, ServiceSet};

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// In the driver (fastest; veth, mlx5, ice, ... support it).
    Native,
    /// In the generic skb path (any device, slower).
    Generic,
}

impl From<XdpModeArg> for XdpMode {
    fn from(m: XdpModeArg) -> Self {
        match m {
            XdpModeArg::Native => XdpMode::Native,
            XdpModeArg::Generic => XdpMode::Generic,
        }
    }
}

/// Auto mode: all three flags or none.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct AutoArgs {
    /// Auto mode: answer SYNs with cookies once the SYN rate to the protected services reaches N
    /// per second (below it they pass to the kernel; needs --auto-rate-off and
    /// --auto-hold-seconds).
    #[arg(long, value_name = "N")]
    auto_rate_on: Option<u32>,
    /// Auto mode: stop answering with cookies when the SYN rate is below N per second (N <
    /// --auto-rate-on) ...
    #[arg(long, value_name = "N")]
    auto_rate_off: Option<u32>,
    /// ... and has stayed below it for N seconds.
    #[arg(long, value_name = "N")]
    auto_hold_seconds: Option<u32>,
}

impl AutoArgs {
    /// The auto-mode configuration, `None` without the flags; an error if only some are given
    /// or the thresholds are inconsistent.
    fn config(&self) -> Result<Option<AutoConfig>> {
        match (
            self.auto_rate_on,
            self.auto_rate_off,
            self.auto_hold_seconds,
        ) {
            (None, None, None) => Ok(None),
            (Some(rate_on), Some(rate_off), Some(hold)) => {
                let hold_ms = hold.checked_mul(1000).with_context(|| {
                    format!(
                        "--auto-hold-seconds {hold} is too long (at most {})",
                        u32::MAX / 1000
                    )
                })?;
                // Checked with the rest of the engine configuration (EngineConfig::validate).
                Ok(Some(AutoConfig {
                    rate_on,
                    rate_off,
                    hold_ms,
                }))
            }
            _ => {
                let missing: Vec<&str> = [
                    (self.auto_rate_on.is_none(), "--auto-rate-on"),
                    (self.auto_rate_off.is_none(), "--auto-rate-off"),
                    (self.auto_hold_seconds.is_none(), "--auto-hold-seconds"),
                ]
                .iter()
                .filter_map(|&(m, f)| m.then_some(f))
                .collect();
                bail!(
                    "auto mode needs --auto-rate-on, --auto-rate-off and --auto-hold-seconds \
                     together; missing {}",
                    missing.join(", ")
                )
            }
        }
    }
}

/// A budget on the command line: `RATE/BURST` (events per second, events at once) or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetArg(Option<Budget>);

impl std::str::FromStr for BudgetArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(BudgetArg(None));
        }
        let parsed = s.split_once('/').and_then(|(r, b)| {
            Some(Budget {
                rate: r.trim().parse().ok()?,
                burst: b.trim().parse().ok()?,
            })
        });
        match parsed {
            Some(b) if b.is_valid() => Ok(BudgetArg(Some(b))),
            _ => Err(format!(
                "{s:?} is not RATE/BURST (per second / at once, RATE 1..={}, BURST 1..={}) or off",
                synwall_engine::abuse::MAX_RATE,
                synwall_engine::abuse::MAX_BURST
            )),
        }
    }
}

impl std::fmt::Display for BudgetArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(b) => write!(f, "{}/{}", b.rate, b.burst),
            None => f.write_str("off"),
        }
    }
}

/// The abuse controls (SPEC 10) of an edge or a single node.
#[derive(Args, Clone, Debug)]
pub struct AbuseArgs {
    /// Drop every packet from this client prefix to the protected services (ADDRESS/LENGTH or an
    /// address; repeat the flag for more).
    #[arg(long, value_name = "PREFIX")]
    deny: Vec<Prefix>,
    /// Exempt this client prefix from the budgets; its SYNs are still answered with cookies
    /// (repeatable).
    #[arg(long, value_name = "PREFIX")]
    allow: Vec<Prefix>,
    /// The reflection budget: SYN+ACKs per second and at once to one client /24 (IPv4) or /48
    /// (IPv6), or off.
    #[arg(long, value_name = "RATE/BURST|off", default_value = "1000/2000")]
    budget: BudgetArg,
    /// Cap on the SYN+ACKs of the whole node, per second and at once (default: no cap).
    #[arg(long, value_name = "RATE/BURST")]
    node_cap: Option<BudgetArg>,
}

impl AbuseArgs {
    fn apply(&self, e: &mut EngineConfig) {
        e.lists.deny = self.deny.clone();
        e.lists.allow = self.allow.clone();
        e.budget = self.budget.0;
        e.node_budget = self.node_cap.and_then(|b| b.0);
    }

    /// ` budget=R/B[ node_cap=R/B][ deny=N][ allow=N]` for the ready line.
    fn ready(&self) -> String {
        let mut s = format!(" budget={}", self.budget);
        if let Some(c) = self.node_cap.filter(|c| c.0.is_some()) {
            s += &format!(" node_cap={c}");
        }
        for (what, n) in [("deny", self.deny.len()), ("allow", self.allow.len())] {
            if n > 0 {
                s += &format!(" {what}={n}");
            }
        }
        s
    }
}

/// How far ahead the salt ring is written (the foreground commands' `node.salts_ahead_seconds`).
#[derive(Args, Clone, Copy, Debug)]
pub struct AheadArgs {
    /// Write the salts this many seconds ahead (rounded up to whole epochs, at least 2, at most
    /// 253): the programs rotate on their own clock this long if this process stops answering.
    #[arg(long, value_name = "SECONDS", default_value_t = synwall_config::DEFAULT_SALTS_AHEAD_SECONDS,
          value_parser = clap::value_parser!(u64).range(1..=synwall_config::MAX_SALTS_AHEAD_SECONDS))]
    salts_ahead_seconds: u64,
}

#[derive(Args)]
pub struct EdgeArgs {
    /// Interface the SYNs arrive on (SYN+ACKs leave through it).
    #[arg(long)]
    iface: String,
    #[command(flatten)]
    dp: DataPathArgs,
    #[command(flatten)]
    ahead: AheadArgs,
    /// Strict mode: forward only flows whose handshake ACK validated (bounded cache; a flow's
    /// first data segment moves it where new flows cannot evict it).
    #[arg(long)]
    strict: bool,
    /// Strict mode: new flows per second and at once each client prefix may add to the flow
    /// cache, or off.
    #[arg(long, value_name = "RATE/BURST|off", default_value = "1000/2000")]
    flow_budget: BudgetArg,
    #[command(flatten)]
    abuse: AbuseArgs,
    #[command(flatten)]
    auto: AutoArgs,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value = "native")]
    xdp_mode: XdpModeArg,
}

#[derive(Args)]
pub struct BackendArgs {
    /// Interface the handshake ACKs arrive on (tc ingress).
    #[arg(long)]
    iface: String,
    #[command(flatten)]
    dp: DataPathArgs,
    #[command(flatten)]
    ahead: AheadArgs,
    /// Set the sysctls the kfunc needs instead of refusing to start.
    #[arg(long)]
    set_sysctls: bool,
    /// Drop SYNs to protected services instead of passing them to the kernel (behind an edge,
    /// not in auto mode, every one is answered there: these went around it).
    #[arg(long)]
    drop_syns: bool,
}

#[derive(Args)]
pub struct SingleArgs {
    /// Interface of the protected host.
    #[arg(long)]
    iface: String,
    #[command(flatten)]
    dp: DataPathArgs,
    #[command(flatten)]
    ahead: AheadArgs,
    /// Set the sysctls the kfunc needs instead of refusing to start.
    #[arg(long)]
    set_sysctls: bool,
    #[command(flatten)]
    abuse: AbuseArgs,
    #[command(flatten)]
    auto: AutoArgs,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value = "native")]
    xdp_mode: XdpModeArg,
}

/// The roles a foreground command runs on its interface.
#[derive(Clone, Copy)]
enum Role {
    Edge,
    Backend,
    Single,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Backend => "backend",
            Role::Single => "single",
        }
    }
}

/// The node the flags describe (nothing pinned). Flag errors name the flags; the engine's rules
/// are [`EngineConfig::validate`]'s. `edit` sets what only some roles have flags for.
#[allow(clippy::too_many_arguments)]
fn spec(
    role: Role,
    iface: &str,
    dp: &DataPathArgs,
    ahead: AheadArgs,
    auto: &AutoArgs,
    xdp_mode: XdpModeArg,
    set_sysctls: bool,
    edit: impl FnOnce(&mut EngineConfig),
) -> Result<NodeSpec> {
    let mut engine = EngineConfig::new(ServiceSet::new(dp.services.clone()));
    engine.auto = auto.config()?;
    edit(&mut engine);
    engine.validate().map_err(|e| match e {
        InvalidConfig::StrictWithAuto => anyhow!(
            "--strict and auto mode (--auto-rate-on ...) cannot be combined: {}",
            e.why()
        ),
        InvalidConfig::AutoRates { .. } => anyhow!("{e} (--auto-rate-off < --auto-rate-on)"),
        InvalidConfig::DropSynsWithAuto => anyhow!("{e}"),
        // The flags' own parsing keeps budgets in range, and no flag sets the prefix lengths.
        InvalidConfig::BudgetRange { .. } | InvalidConfig::ClientPrefix { .. } => anyhow!("{e}"),
    })?;
    let ifindex = nix::net::if_::if_nametoindex(iface)
        .with_context(|| format!("no such interface {iface:?}"))?;
    let secrets = dp.secrets()?;
    Ok(NodeSpec {
        name: role.name().into(),
        engine,
        interfaces: vec![Interface {
            name: iface.into(),
            ifindex,
            edge: !matches!(role, Role::Backend),
            backend: !matches!(role, Role::Edge),
        }],
        xdp_mode: xdp_mode.into(),
        xdp_fallback: false,
        epoch_seconds: dp.epoch_seconds,
        salts_ahead_seconds: ahead.salts_ahead_seconds,
        secrets,
        set_sysctls,
        pins: None,
    })
}

/// The foreground says nothing while it runs; a failed rotation ends it with the error.
struct Foreground;

impl FrontEnd for Foreground {}

/// Start the node, print `ready ROLE iface=.. services=.. epoch_seconds=..EXTRA`, serve until
/// SIGINT/SIGTERM, print the counters.
fn run(spec: NodeSpec, extra: &str) -> Result<ExitCode> {
    // stdout has the `ready` line and the counters; stderr what the node logs (sysctls it set).
    crate::logging::init("info");
    let signals = Signals::register(false)?;
    let services: Vec<String> = spec
        .engine
        .services
        .services()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ready = format!(
        "ready {} iface={} services={} epoch_seconds={}{extra}",
        spec.name,
        spec.interfaces[0].name,
        services.join(","),
        spec.epoch_seconds
    );
    let mut node = Node::start(spec)?;
    println!("{ready}");
    node.serve(&signals, &mut Foreground)?;
    node.print_counters()?;
    Ok(ExitCode::SUCCESS)
}

/// ` auto=ON/OFF/HOLDs` for the ready line.
fn auto_ready(cfg: &EngineConfig) -> String {
    cfg.auto.map_or(String::new(), |a| {
        format!(" auto={}/{}/{}s", a.rate_on, a.rate_off, a.hold_ms / 1000)
    })
}

pub fn edge(a: EdgeArgs) -> Result<ExitCode> {
    let spec = spec(
        Role::Edge,
        &a.iface,
        &a.dp,
        a.ahead,
        &a.auto,
        a.xdp_mode,
        false,
        |e| {
            e.strict = a.strict;
            e.flow_budget = a.flow_budget.0;
            a.abuse.apply(e);
        },
    )?;
    let extra = format!(
        "{}{}{}",
        if a.strict {
            format!(" strict flow_budget={}", a.flow_budget)
        } else {
            String::new()
        },
        auto_ready(&spec.engine),
        a.abuse.ready()
    );
    run(spec, &extra)
}

pub fn backend(a: BackendArgs) -> Result<ExitCode> {
    let spec = spec(
        Role::Backend,
        &a.iface,
        &a.dp,
        a.ahead,
        &AutoArgs::default(),
        XdpModeArg::Native,
        a.set_sysctls,
        |e| e.backend_drop_syns = a.drop_syns,
    )?;
    run(spec, if a.drop_syns { " drop_syns" } else { "" })
}

pub fn single(a: SingleArgs) -> Result<ExitCode> {
    let spec = spec(
        Role::Single,
        &a.iface,
        &a.dp,
        a.ahead,
        &a.auto,
        a.xdp_mode,
        a.set_sysctls,
        |e| a.abuse.apply(e),
    )?;
    let extra = format!("{}{}", auto_ready(&spec.engine), a.abuse.ready());
    run(spec, &extra)
}
