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
use synwall_engine::{AutoConfig, EngineConfig, InvalidConfig, ServiceSet};

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
    /// Strict mode: forward only flows whose handshake ACK validated (bounded cache).
    #[arg(long)]
    strict: bool,
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
/// are [`EngineConfig::validate`]'s.
#[allow(clippy::too_many_arguments)]
fn spec(
    role: Role,
    iface: &str,
    dp: &DataPathArgs,
    ahead: AheadArgs,
    strict: bool,
    auto: &AutoArgs,
    xdp_mode: XdpModeArg,
    set_sysctls: bool,
) -> Result<NodeSpec> {
    let mut engine = EngineConfig::new(ServiceSet::new(dp.services.clone()));
    engine.strict = strict;
    engine.auto = auto.config()?;
    engine.validate().map_err(|e| match e {
        InvalidConfig::StrictWithAuto => anyhow!(
            "--strict and auto mode (--auto-rate-on ...) cannot be combined: {}",
            e.why()
        ),
        InvalidConfig::AutoRates { .. } => anyhow!("{e} (--auto-rate-off < --auto-rate-on)"),
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
        a.strict,
        &a.auto,
        a.xdp_mode,
        false,
    )?;
    let extra = format!(
        "{}{}",
        if a.strict { " strict" } else { "" },
        auto_ready(&spec.engine)
    );
    run(spec, &extra)
}

pub fn backend(a: BackendArgs) -> Result<ExitCode> {
    let spec = spec(
        Role::Backend,
        &a.iface,
        &a.dp,
        a.ahead,
        false,
        &AutoArgs::default(),
        XdpModeArg::Native,
        a.set_sysctls,
    )?;
    run(spec, "")
}

pub fn single(a: SingleArgs) -> Result<ExitCode> {
    let spec = spec(
        Role::Single,
        &a.iface,
        &a.dp,
        a.ahead,
        false,
        &a.auto,
        a.xdp_mode,
        a.set_sysctls,
    )?;
    let extra = auto_ready(&spec.engine);
    run(spec, &extra)
}
