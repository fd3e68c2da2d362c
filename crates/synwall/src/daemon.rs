//! `synwall run --config FILE`: a node as a long-running service.
//!
//! Start: validate everything (config, interfaces, secret, sysctls, map sizes), load the objects
//! on the node's pinned maps, attach (or adopt pinned links and swap the new programs in), pin,
//! print one `ready` line. Then, every 25 ms: rotate salts on epoch boundaries, reload on SIGHUP,
//! exit on SIGINT/SIGTERM. Exiting leaves the programs attached (their links are pinned): the next
//! `synwall run` adopts them, so a restart or an upgrade drops nothing; `synwall stop --detach`
//! removes them.
//!
//! Keys: the live salt slot in the maps is the truth. At a boundary into epoch `e` the new slot is
//! `{K_e from the master secret, previous = the live K_{e-1}}`. So a replaced master secret takes
//! effect at the next boundary and the old secret's last salt still validates for one epoch, and
//! a restarted daemon continues exactly where the last one left off.

use crate::args::now_unix;
use crate::rotation::{key_id, Salts, TICK_MS};
use crate::snapshot;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use synwall_bpf::pin::{Hook, NodePins};
use synwall_bpf::{Backend, DataPath, Edge, Link, LoadOptions, XdpMode};
use synwall_config::{NodeConfig, XdpFallback};
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_engine::EngineConfig;
use tracing::{error, info, warn};

/// Where runtime state (lock, pid) lives by default.
pub const DEFAULT_RUN_DIR: &str = "/run/synwall";

#[derive(Args)]
pub struct RunArgs {
    /// The node's configuration file (see dist/synwall.toml).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Directory for the lock and state files.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The configuration file to check.
    pub config: PathBuf,
}

/// `synwall check-config FILE`: everything `run` checks before attaching, without attaching.
pub fn check_config(a: CheckArgs) -> Result<ExitCode> {
    let loaded = NodeConfig::load(&a.config).map_err(|e| anyhow!("{e}"))?;
    let cfg = &loaded.config;
    for w in preflight(&loaded)?.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(addr) = cfg.node.metrics_addr() {
        let own = RunFiles::new(Path::new(DEFAULT_RUN_DIR), &cfg.node.name).running_pid();
        match crate::metrics::check_addr(addr, own) {
            Ok(Some(w)) => eprintln!("warning: {w}"),
            Ok(None) => {}
            Err(e) => bail!("{}: {e}", at(&loaded, "node.metrics")),
        }
    }
    let roles = cfg.interfaces();
    println!(
        "{}: ok: node {:?}, {} service(s), {} interface(s): {}",
        a.config.display(),
        cfg.node.name,
        cfg.services.protect.len(),
        roles.len(),
        roles
            .iter()
            .map(|(i, r)| format!("{i} ({})", role_name(r.edge, r.backend)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn role_name(edge: bool, backend: bool) -> &'static str {
    match (edge, backend) {
        (true, true) => "single node",
        (true, false) => "edge",
        _ => "backend",
    }
}

/// What a key's line is, for messages about values valid in the file but not on this machine.
fn at(loaded: &synwall_config::Loaded, key: &str) -> String {
    match loaded.line_of(key) {
        Some(l) => format!("{}:{l}: {key}", loaded.origin()),
        None => format!("{} (default): {key}", loaded.origin()),
    }
}

/// What the machine checks establish: each interface's index, the master secret, and what is
/// worth a warning but not a refusal.
struct Preflight {
    ifindexes: Vec<(String, u32)>,
    master: MasterSecret,
    warnings: Vec<String>,
}

/// The checks that need the machine: interfaces exist, the secret reads, map sizes fit, and
/// (for a backend that may not set them itself) the sysctls the kfunc needs.
fn preflight(loaded: &synwall_config::Loaded) -> Result<Preflight> {
    let cfg = &loaded.config;
    let mut ifindexes = Vec::new();
    for (iface, roles) in cfg.interfaces() {
        let key = if roles.edge {
            "edge.interfaces"
        } else {
            "backend.interfaces"
        };
        let idx = nix::net::if_::if_nametoindex(iface.as_str())
            .map_err(|_| anyhow!("{}: no such interface {iface:?}", at(loaded, key)))?;
        ifindexes.push((iface, idx));
    }
    let master = synwall_config::read_secret_file(&cfg.node.secret_file)
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "node.secret_file")))?;
    let ecfg = cfg.engine_config();
    LoadOptions::for_config(&ecfg)
        .check_services(&ecfg.services)
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "services.protect")))?;
    if !cfg.backend.interfaces.is_empty() && !cfg.node.set_sysctls {
        crate::dataplane_cmd::check_sysctls(&ecfg, false)
            .map_err(|e| anyhow!("{e:#} (or node.set_sysctls = true)"))?;
    }
    Ok(Preflight {
        ifindexes,
        master: MasterSecret(master),
        warnings: synwall_config::secret_file_warning(&cfg.node.secret_file)
            .into_iter()
            .collect(),
    })
}

/// A running node.
struct Node {
    config_path: PathBuf,
    cfg: NodeConfig,
    pins: NodePins,
    edge: Option<Edge>,
    backend: Option<Backend>,
    /// Our descriptors of the (pinned) links.
    links: Vec<(Hook, String, Link)>,
    /// Links taken over from an earlier process.
    adopted: usize,
    /// The salts each role holds, and the master secret the next ones come from.
    salts: Salts,
}

/// An object loaded on the node's pins, and whether it found an earlier process's maps.
struct Pinned<T> {
    obj: T,
    /// Maps came from the pins (an earlier process's state).
    adopted: bool,
    /// The pinned maps did not fit this object: it has fresh maps to pin once links moved over.
    repin: bool,
}

fn load_pinned<T: DataPath>(opts: &LoadOptions, dir: &Path, what: &str) -> Result<Pinned<T>> {
    let existed = dir.join("sw_config_map").exists();
    match T::load_at(opts, Some(dir)) {
        Ok(obj) => Ok(Pinned {
            obj,
            adopted: existed,
            repin: false,
        }),
        // Maps are pinned but this object does not load on them: if it loads on maps of its
        // own, their layout changed (an upgrade); otherwise the cause is elsewhere (the kernel,
        // privileges) and that error is the one to report.
        Err(e) if existed => match T::load(opts) {
            Ok(obj) => {
                warn!(
                    "the {what} maps pinned in {} do not fit this build ({e}); loading fresh \
                     maps (counters restart from zero, the strict flow cache is empty)",
                    dir.display()
                );
                Ok(Pinned {
                    obj,
                    adopted: false,
                    repin: true,
                })
            }
            Err(fresh) => Err(fresh).with_context(|| format!("load the {what} object")),
        },
        Err(e) => Err(e).with_context(|| format!("load the {what} object")),
    }
}

fn configure(obj: &impl DataPath, ecfg: &EngineConfig, keys: &EpochKeys) -> Result<()> {
    obj.configure(ecfg)?;
    obj.set_keys(keys)?;
    Ok(())
}

impl Node {
    fn start(loaded: &synwall_config::Loaded, config_path: &Path) -> Result<Node> {
        let cfg = loaded.config.clone();
        let Preflight {
            ifindexes,
            master,
            warnings,
        } = preflight(loaded)?;
        for w in warnings {
            warn!("{w}");
        }
        let ecfg = cfg.engine_config();
        let has_edge = !cfg.edge.interfaces.is_empty();
        let has_backend = !cfg.backend.interfaces.is_empty();
        if has_backend && cfg.node.set_sysctls {
            // Without set_sysctls, preflight has checked them.
            crate::dataplane_cmd::check_sysctls(&ecfg, true)?;
        }
        let pins = NodePins::new(&cfg.node.pin_root, &cfg.node.name);
        pins.create()?;
        let opts = LoadOptions::for_config(&ecfg);
        let backend = has_backend
            .then(|| load_pinned::<Backend>(&opts, &pins.backend(), "backend"))
            .transpose()?;
        let edge = has_edge
            .then(|| load_pinned::<Edge>(&opts, &pins.edge(), "edge"))
            .transpose()?;

        // The salts: continue from the live slot of an adopted object, else start fresh.
        let live = backend
            .as_ref()
            .filter(|l| l.adopted)
            .and_then(|l| l.obj.live_keys().ok())
            .or_else(|| {
                edge.as_ref()
                    .filter(|l| l.adopted)
                    .and_then(|l| l.obj.live_keys().ok())
            });
        let salts = Salts::start(master, cfg.node.epoch_seconds, live, now_unix().1);
        // Fresh maps are configured before anything can run on them; adopted ones only once
        // every link is in place, so a failed start leaves the running programs' state alone.
        for l in backend.iter().filter(|l| !l.adopted) {
            configure(&l.obj, &ecfg, salts.backend())?;
        }
        for l in edge.iter().filter(|l| !l.adopted) {
            configure(&l.obj, &ecfg, salts.edge())?;
        }

        // Links: adopt the pinned ones still on their interface, attach the rest (tc first: if
        // XDP then fails, the new tc links detach again when dropped).
        let mut wanted = Vec::new();
        for (iface, roles) in cfg.interfaces() {
            let idx = ifindexes
                .iter()
                .find(|(i, _)| *i == iface)
                .map(|p| p.1)
                .unwrap_or(0);
            if roles.backend {
                wanted.push((Hook::Tcx, iface.clone(), idx));
            }
            if roles.edge {
                wanted.push((Hook::Xdp, iface.clone(), idx));
            }
        }
        wanted.sort_by_key(|w| w.0 == Hook::Xdp);
        let mut adopted = Vec::new();
        let mut fresh = Vec::new();
        for (hook, iface, idx) in &wanted {
            let path = pins.link(*hook, iface);
            if let Ok(link) = Link::open_pinned(&path) {
                if link.ifindex().ok() == Some(*idx) {
                    adopted.push((*hook, iface.clone(), link));
                    continue;
                }
                // The interface went away (or was recreated): that link is dead.
                let _ = std::fs::remove_file(&path);
            }
            let link = match hook {
                Hook::Tcx => backend
                    .as_ref()
                    .expect("tcx wanted only with a backend")
                    .obj
                    .attach_tcx(*idx)
                    .with_context(|| format!("cannot attach tcx ingress to {iface}"))?,
                Hook::Xdp => attach_xdp(
                    &edge.as_ref().expect("xdp wanted only with an edge").obj,
                    &cfg,
                    iface,
                    *idx,
                )?,
            };
            fresh.push((*hook, iface.clone(), link));
        }
        // Every attach worked: move adopted links to the new programs (atomic swaps).
        for (hook, iface, link) in &adopted {
            match hook {
                Hook::Tcx => backend.as_ref().expect("backend").obj.update_link(link),
                Hook::Xdp => edge.as_ref().expect("edge").obj.update_link(link),
            }
            .with_context(|| {
                format!("cannot move the {hook:?} link on {iface} to the new program")
            })?;
        }
        let mut backend = backend;
        let mut edge = edge;
        for l in backend.iter().filter(|l| l.adopted) {
            configure(&l.obj, &ecfg, salts.backend())?;
        }
        for l in edge.iter().filter(|l| l.adopted) {
            configure(&l.obj, &ecfg, salts.edge())?;
        }
        if let Some(l) = backend.as_mut().filter(|l| l.repin) {
            l.obj.repin_maps(&pins.backend())?;
        }
        if let Some(l) = edge.as_mut().filter(|l| l.repin) {
            l.obj.repin_maps(&pins.edge())?;
        }
        // All or none: a link pinned here and left behind by a failed start would stay attached.
        let mut pinned_now = Vec::new();
        for (hook, iface, link) in &fresh {
            let path = pins.link(*hook, iface);
            if let Err(e) = link.pin(&path) {
                for p in &pinned_now {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e).with_context(|| format!("cannot pin the {hook:?} link of {iface}"));
            }
            pinned_now.push(path);
        }
        // Links pinned by an earlier configuration that this one no longer has.
        let keep: BTreeSet<(Hook, String)> = wanted.iter().map(|w| (w.0, w.1.clone())).collect();
        for (hook, iface, path) in pins.links() {
            if !keep.contains(&(hook, iface.clone())) {
                if let Ok(l) = Link::open_pinned(&path) {
                    let _ = l.force_detach();
                }
                let _ = std::fs::remove_file(&path);
                info!(
                    iface,
                    ?hook,
                    "detached a link the configuration no longer has"
                );
            }
        }
        // Role directories of a role no longer configured.
        if !has_edge {
            let _ = std::fs::remove_dir_all(pins.edge());
        }
        if !has_backend {
            let _ = std::fs::remove_dir_all(pins.backend());
        }
        info!(
            node = cfg.node.name,
            adopted = adopted.len(),
            attached = fresh.len(),
            epoch = salts.backend().epoch,
            "data path running"
        );
        let n_adopted = adopted.len();
        let mut links = adopted;
        links.extend(fresh);
        Ok(Node {
            config_path: config_path.to_path_buf(),
            cfg,
            pins,
            edge: edge.map(|l| l.obj),
            backend: backend.map(|l| l.obj),
            links,
            adopted: n_adopted,
            salts,
        })
    }

    /// Rotate what entered a new epoch: the backend at the boundary, the edge `edge_lag_ms`
    /// later. An edge-only node reports its rotation when its edge switches.
    fn tick(&mut self) -> Result<()> {
        let r = self.salts.tick(now_unix().1);
        if let (Some(k), Some(b)) = (&r.backend, &self.backend) {
            b.set_keys(k)?;
        }
        if let (Some(k), Some(ed)) = (&r.edge, &self.edge) {
            ed.set_keys(k)?;
        }
        let reported = if self.backend.is_some() {
            r.backend
        } else {
            r.edge
        };
        if let Some(k) = reported {
            info!(epoch = k.epoch, key = key_id(&k.current), "salts rotated");
            println!("rotated epoch={} key={}", k.epoch, key_id(&k.current));
        }
        Ok(())
    }

    /// SIGHUP: apply what can change in place, refuse the rest; on any error keep running as is.
    fn reload(&mut self) -> Result<Vec<String>> {
        let loaded = NodeConfig::load(&self.config_path).map_err(|e| anyhow!("{e}"))?;
        let changes = self.cfg.reload_plan(&loaded.config).map_err(|refusals| {
            anyhow!(
                "{}",
                refusals
                    .iter()
                    .map(|r| format!("{}: {} -> {}: {}", r.key, r.old, r.new, r.why))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        // The same checks as at start (the interfaces cannot have changed: refused above).
        let Preflight {
            master, warnings, ..
        } = preflight(&loaded)?;
        for w in warnings {
            warn!("{w}");
        }
        let new = loaded.config;
        let ecfg = new.engine_config();
        if self.backend.is_some() && new.node.set_sysctls {
            crate::dataplane_cmd::check_sysctls(&ecfg, true)?;
        }
        // Both objects must take the new services before either changes.
        if let Some(e) = &self.edge {
            e.check_services(&ecfg.services)?;
        }
        if let Some(b) = &self.backend {
            b.check_services(&ecfg.services)?;
        }
        if let Some(e) = &self.edge {
            e.configure(&ecfg)?;
        }
        if let Some(b) = &self.backend {
            b.configure(&ecfg)?;
        }
        let mut said: Vec<String> = changes
            .iter()
            .map(|c| format!("{}: {} -> {}", c.key, c.old, c.new))
            .collect();
        if self.salts.replace_master(master) {
            let p = self.cfg.node.epoch_seconds;
            let next = self.salts.backend().epoch + 1;
            let wait = (next * p).saturating_sub(now_unix().0);
            said.push(format!(
                "master secret replaced: it takes effect at epoch {next} (in {wait} s); \
                 cookies of the old secret validate until that epoch ends"
            ));
        }
        crate::logging::set_level(new.node.log_level.as_str());
        self.cfg = new;
        Ok(said)
    }

    fn snapshot(&self) -> Result<crate::snapshot::Snapshot> {
        snapshot::from_pins(&self.pins, &self.cfg.node.name, self.cfg.node.epoch_seconds)
    }
}

fn attach_xdp(edge: &Edge, cfg: &NodeConfig, iface: &str, idx: u32) -> Result<Link> {
    let mode = match cfg.edge.xdp_mode {
        synwall_config::XdpMode::Native => XdpMode::Native,
        synwall_config::XdpMode::Generic => XdpMode::Generic,
    };
    match edge.attach_xdp(idx, mode) {
        Ok(l) => Ok(l),
        Err(e) if mode == XdpMode::Native && cfg.edge.xdp_fallback == XdpFallback::Generic => {
            warn!(
                iface,
                "native XDP failed ({e}); attaching in generic mode (edge.xdp_fallback)"
            );
            edge.attach_xdp(idx, XdpMode::Generic)
                .with_context(|| format!("cannot attach XDP to {iface}, native nor generic"))
        }
        Err(e) => {
            Err(anyhow!(e)).with_context(|| format!("cannot attach XDP ({mode:?} mode) to {iface}"))
        }
    }
}

/// The lock and state files of a node under the run directory.
pub struct RunFiles {
    lock: PathBuf,
    state: PathBuf,
}

impl RunFiles {
    pub fn new(run_dir: &Path, node: &str) -> RunFiles {
        RunFiles {
            lock: run_dir.join(format!("{node}.lock")),
            state: run_dir.join(format!("{node}.json")),
        }
    }

    /// The state a running daemon wrote: pid, config file, epoch length.
    pub fn read_state(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&self.state).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The pid of the daemon holding the lock, if one does.
    pub fn running_pid(&self) -> Option<i32> {
        let pid = self.read_state()?.get("pid")?.as_i64()? as i32;
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        (alive && self.locked()).then_some(pid)
    }

    fn locked(&self) -> bool {
        let Ok(f) = std::fs::File::open(&self.lock) else {
            return false;
        };
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
    }
}

/// `synwall run`.
pub fn run(a: RunArgs) -> Result<ExitCode> {
    let loaded = NodeConfig::load(&a.config).map_err(|e| anyhow!("{e}"))?;
    crate::logging::init(loaded.config.node.log_level.as_str());
    let files = RunFiles::new(&a.run_dir, &loaded.config.node.name);
    std::fs::create_dir_all(&a.run_dir)
        .with_context(|| format!("cannot create {}", a.run_dir.display()))?;
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&files.lock)
        .with_context(|| format!("cannot open {}", files.lock.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| {
            anyhow!(
                "node {:?} is already run by another synwall (pid {})",
                loaded.config.node.name,
                files
                    .read_state()
                    .and_then(|s| s.get("pid").cloned())
                    .unwrap_or_default()
            )
        })?;

    let hup = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }

    // Bind the metrics listener before attaching: a bad address must not leave anything behind.
    let cfg = &loaded.config;
    let _metrics = match cfg.node.metrics_addr() {
        Some(addr) => {
            let pins = NodePins::new(&cfg.node.pin_root, &cfg.node.name);
            let name = cfg.node.name.clone();
            let period = cfg.node.epoch_seconds;
            let source: Arc<dyn Fn() -> Result<snapshot::Snapshot> + Send + Sync> =
                Arc::new(move || snapshot::from_pins(&pins, &name, period));
            let server = crate::metrics::serve(addr, source)
                .map_err(|e| anyhow!("{}: {e:#}", at(&loaded, "node.metrics")))?;
            info!(addr = %server.local_addr(), "metrics on /metrics");
            Some(server)
        }
        None => None,
    };
    let pins = NodePins::new(&cfg.node.pin_root, &cfg.node.name);
    let first_start = !pins.exists();
    let mut node = match Node::start(&loaded, &a.config) {
        Ok(n) => n,
        Err(e) => {
            // Nothing of ours was attached before (or it is still attached, untouched): remove
            // only what this failed start created.
            if first_start {
                let _ = pins.remove();
            }
            return Err(e);
        }
    };
    let state = serde_json::json!({
        "pid": std::process::id(),
        "config": std::fs::canonicalize(&a.config).unwrap_or(a.config.clone()),
        "epoch_seconds": node.cfg.node.epoch_seconds,
        "pin_dir": node.pins.dir,
        "started_ms": now_unix().1,
    });
    std::fs::write(&files.state, format!("{state}\n"))
        .with_context(|| format!("cannot write {}", files.state.display()))?;

    let ifaces = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    println!(
        "ready node={} edge={} backend={} links={} adopted={} epoch={} key={} epoch_seconds={} services={}",
        node.cfg.node.name,
        ifaces(&node.cfg.edge.interfaces),
        ifaces(&node.cfg.backend.interfaces),
        node.links.len(),
        node.adopted,
        node.salts.backend().epoch,
        key_id(&node.salts.backend().current),
        node.cfg.node.epoch_seconds,
        node.cfg.services.protect.join(",")
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(TICK_MS));
        if let Err(e) = node.tick() {
            error!("salt rotation failed: {e:#}");
        }
        if hup.swap(false, Ordering::Relaxed) {
            match node.reload() {
                Ok(changes) => {
                    for c in &changes {
                        info!("reload: {c}");
                    }
                    println!("reloaded changes={}", changes.len());
                }
                Err(e) => {
                    error!("reload refused, still running the previous configuration: {e:#}");
                    println!("reload refused: {e:#}");
                }
            }
        }
    }
    let snap = node.snapshot()?;
    for p in &snap.programs {
        crate::dataplane_cmd::print_counters(p.role.as_str(), &p.counters);
    }
    let _ = std::fs::remove_file(&files.state);
    info!(
        pins = %node.pins.dir.display(),
        "exiting; the programs stay attached (pinned). `synwall stop --detach` removes them"
    );
    Ok(ExitCode::SUCCESS)
}

/// Which node a command acts on: from its config file, or by name and pin root.
#[derive(Args)]
pub struct NodeArgs {
    /// The node's configuration file (for its name, pin root and epoch length).
    #[arg(long, short, value_name = "FILE", conflicts_with_all = ["node", "pin_root"])]
    pub config: Option<PathBuf>,
    /// Node name (instead of --config).
    #[arg(long, default_value = synwall_config::DEFAULT_NAME, value_parser = node_name)]
    pub node: String,
    /// Pin root (instead of --config).
    #[arg(long, default_value = synwall_config::DEFAULT_PIN_ROOT)]
    pub pin_root: PathBuf,
    /// Directory of the daemon's lock and state files.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,
}

/// The node a command acts on.
pub struct NodeRef {
    pub name: String,
    pub pin_root: PathBuf,
    /// The epoch length, if `--config` gave one.
    pub epoch_seconds: Option<u64>,
}

impl NodeArgs {
    /// Name, pin root (and epoch length) from `--config` (loaded once) or the flags.
    pub fn resolve(&self) -> Result<NodeRef> {
        match &self.config {
            Some(path) => {
                let n = NodeConfig::load(path)
                    .map_err(|e| anyhow!("{e}"))?
                    .config
                    .node;
                Ok(NodeRef {
                    name: n.name,
                    pin_root: n.pin_root,
                    epoch_seconds: Some(n.epoch_seconds),
                })
            }
            None => Ok(NodeRef {
                name: self.node.clone(),
                pin_root: self.pin_root.clone(),
                epoch_seconds: None,
            }),
        }
    }
}

#[derive(Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Also detach the programs and remove every pin of the node.
    #[arg(long)]
    pub detach: bool,
}

/// `--node`: the config file's rule (the name becomes a directory that `stop --detach` removes).
fn node_name(s: &str) -> Result<String, String> {
    synwall_config::check_node_name(s).map(|()| s.to_string())
}

/// `synwall stop [--detach]`.
pub fn stop(a: StopArgs) -> Result<ExitCode> {
    let NodeRef {
        name,
        pin_root: root,
        ..
    } = a.node.resolve()?;
    let files = RunFiles::new(&a.node.run_dir, &name);
    let pins = NodePins::new(&root, &name);
    match files.running_pid() {
        Some(pid) => {
            let p = nix::unistd::Pid::from_raw(pid);
            nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM)
                .with_context(|| format!("cannot signal pid {pid}"))?;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while nix::sys::signal::kill(p, None).is_ok() && files.locked() {
                if std::time::Instant::now() > deadline {
                    bail!("synwall (pid {pid}) did not exit within 10 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            println!("stopped node {name:?} (pid {pid})");
        }
        // Nothing to stop is not an error (as for --detach with nothing pinned): the node is
        // stopped either way, and the line says so.
        None => println!("no synwall is running node {name:?}"),
    }
    if a.detach {
        if !pins.exists() {
            println!("node {name:?} has nothing pinned in {}", root.display());
        } else {
            let n = pins.links().len();
            pins.remove()?;
            println!(
                "detached node {name:?}: {n} link(s) and the maps in {} removed",
                pins.dir.display()
            );
        }
    } else if pins.exists() {
        println!(
            "its programs stay attached (pinned in {}); `synwall stop --detach` removes them",
            pins.dir.display()
        );
    } else {
        println!("node {name:?} has nothing pinned in {}", root.display());
    }
    Ok(ExitCode::SUCCESS)
}
