//! `synwall edge`, `synwall backend`, `synwall single`: load the BPF programs, attach them, print
//! one `ready` line, rotate salts on epoch boundaries, and on SIGINT/SIGTERM detach and print the
//! final counters. Everything is validated before anything is attached, and a failure part-way
//! drops what was attached (links detach on drop): a bad start leaves nothing behind.

use crate::args::{now_unix, DataPathArgs};
use crate::rotation::{Salts, TICK_MS};
use crate::sysctl;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use synwall_bpf::{Backend, DataPath, Edge, XdpMode};
use synwall_engine::{AutoConfig, Counters, EngineConfig, ServiceSet};

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
                let a = AutoConfig {
                    rate_on,
                    rate_off,
                    hold_ms,
                };
                a.validate()
                    .map_err(|e| anyhow::anyhow!("{e} (--auto-rate-off < --auto-rate-on)"))?;
                Ok(Some(a))
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

#[derive(Args)]
pub struct EdgeArgs {
    /// Interface the SYNs arrive on (SYN+ACKs leave through it).
    #[arg(long)]
    iface: String,
    #[command(flatten)]
    dp: DataPathArgs,
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
    /// Set the sysctls the kfunc needs instead of refusing to start.
    #[arg(long)]
    set_sysctls: bool,
    #[command(flatten)]
    auto: AutoArgs,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value = "native")]
    xdp_mode: XdpModeArg,
}

/// Everything checked before loading: interface, secret, configuration, salts.
struct Prepared {
    ifindex: u32,
    iface: String,
    period: u64,
    cfg: EngineConfig,
    /// The salts each role holds; the edge's follow the backend's `edge_lag_ms` later.
    salts: Salts,
}

fn prepare(iface: &str, dp: &DataPathArgs, strict: bool, auto: &AutoArgs) -> Result<Prepared> {
    let auto = auto.config()?;
    if strict && auto.is_some() {
        // Strict mode drops every ACK that carries no valid cookie, and the handshakes the
        // kernel answers in auto mode carry none.
        bail!("--strict and auto mode (--auto-rate-on ...) cannot be combined");
    }
    let ifindex = nix::net::if_::if_nametoindex(iface)
        .with_context(|| format!("no such interface {iface:?}"))?;
    let master = dp.master()?;
    let mut cfg = EngineConfig::new(ServiceSet::new(dp.services.clone()));
    cfg.strict = strict;
    cfg.auto = auto;
    Ok(Prepared {
        ifindex,
        iface: iface.to_string(),
        period: dp.epoch_seconds,
        cfg,
        salts: Salts::start(master, dp.epoch_seconds, None, now_unix().1),
    })
}

pub(crate) fn check_sysctls(cfg: &EngineConfig, set: bool) -> Result<()> {
    for change in sysctl::ensure(&sysctl::requirements(&cfg.cookie), set)? {
        eprintln!("synwall: set {change}");
    }
    Ok(())
}

/// Wait for SIGINT/SIGTERM, rotating salts (backend at each epoch boundary, edge `edge_lag_ms`
/// later); then print the counters.
fn serve(p: &mut Prepared, edge: Option<&Edge>, backend: Option<&Backend>) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("install signal handler")?;
    }
    while !stop.load(Ordering::Relaxed) {
        // The objects were loaded a moment ago: catch up first, then every tick.
        let r = p.salts.tick(now_unix().1);
        if let (Some(k), Some(b)) = (&r.backend, backend) {
            b.set_keys(k)?;
        }
        if let (Some(k), Some(e)) = (&r.edge, edge) {
            e.set_keys(k)?;
        }
        std::thread::sleep(Duration::from_millis(TICK_MS));
    }
    if let Some(e) = edge {
        print_counters("edge", &e.counters()?);
        if p.cfg.auto.is_some() {
            print_auto(&e.auto_state()?);
        }
    }
    if let Some(b) = backend {
        print_counters("backend", &b.counters()?);
    }
    Ok(ExitCode::SUCCESS)
}

/// The final counters of a role: non-zero ones, one per line.
pub fn print_counters(role: &str, c: &Counters) {
    println!("{role} counters ({} packets):", c.total());
    for (k, v) in c.iter().filter(|(_, v)| *v > 0) {
        println!("  {:<28} {v}", k.name());
    }
}

/// The auto-mode line of the final printout.
pub fn print_auto(st: &synwall_engine::AutoState) {
    println!(
        "auto cookies {} rate={} switches={}/{}",
        if st.cookies_on { "on" } else { "off" },
        st.rate,
        st.switches_on,
        st.switches_off
    );
}

/// ` auto=ON/OFF/HOLDs` for the ready line.
fn auto_ready(cfg: &EngineConfig) -> String {
    cfg.auto.map_or(String::new(), |a| {
        format!(" auto={}/{}/{}s", a.rate_on, a.rate_off, a.hold_ms / 1000)
    })
}

fn ready(role: &str, p: &Prepared, extra: &str) {
    let services: Vec<String> = p
        .cfg
        .services
        .services()
        .iter()
        .map(|s| s.to_string())
        .collect();
    println!(
        "ready {role} iface={} services={} epoch_seconds={}{extra}",
        p.iface,
        services.join(","),
        p.period
    );
}

pub fn edge(a: EdgeArgs) -> Result<ExitCode> {
    let mut p = prepare(&a.iface, &a.dp, a.strict, &a.auto)?;
    let edge = Edge::load_with(&p.cfg, p.salts.edge())?;
    let _link = edge
        .attach_xdp(p.ifindex, a.xdp_mode.into())
        .with_context(|| format!("cannot attach XDP ({:?} mode) to {}", a.xdp_mode, p.iface))?;
    let extra = format!(
        "{}{}",
        if a.strict { " strict" } else { "" },
        auto_ready(&p.cfg)
    );
    ready("edge", &p, &extra);
    serve(&mut p, Some(&edge), None)
}

pub fn backend(a: BackendArgs) -> Result<ExitCode> {
    let mut p = prepare(&a.iface, &a.dp, false, &AutoArgs::default())?;
    check_sysctls(&p.cfg, a.set_sysctls)?;
    let backend = Backend::load_with(&p.cfg, p.salts.backend())?;
    let _link = backend
        .attach_tcx(p.ifindex)
        .with_context(|| format!("cannot attach tcx ingress to {}", p.iface))?;
    ready("backend", &p, "");
    serve(&mut p, None, Some(&backend))
}

pub fn single(a: SingleArgs) -> Result<ExitCode> {
    let mut p = prepare(&a.iface, &a.dp, false, &a.auto)?;
    check_sysctls(&p.cfg, a.set_sysctls)?;
    let backend = Backend::load_with(&p.cfg, p.salts.backend())?;
    let edge = Edge::load_with(&p.cfg, p.salts.edge())?;
    // tc first: if XDP then fails, dropping the tcx link detaches it again.
    let tc_link = backend
        .attach_tcx(p.ifindex)
        .with_context(|| format!("cannot attach tcx ingress to {}", p.iface))?;
    let xdp_link = match edge.attach_xdp(p.ifindex, a.xdp_mode.into()) {
        Ok(l) => l,
        Err(e) => {
            drop(tc_link);
            bail!(
                "cannot attach XDP ({:?} mode) to {}: {e}",
                a.xdp_mode,
                p.iface
            );
        }
    };
    ready("single", &p, &auto_ready(&p.cfg));
    let r = serve(&mut p, Some(&edge), Some(&backend));
    drop(xdp_link);
    drop(tc_link);
    r
}
