//! `synwall run --config FILE`: a node as a long-running service.
//!
//! Start: validate everything this front end can name by file, line and key (config, interfaces,
//! secret, sysctls, map sizes), then run the node ([`crate::node`]) with its maps and links pinned
//! under `node.pin_root/<name>`: load on the pinned maps, attach (or adopt pinned links and swap
//! the new programs in), pin, log one `ready` line (and tell systemd, [`crate::notify`]). Then,
//! every 25 ms: rotate salts on epoch boundaries, reload on SIGHUP, log a hint when a counter
//! that points at a misconfiguration grows, exit on SIGINT/SIGTERM. Exiting leaves the programs
//! attached (their links are pinned): the next `synwall run` adopts them, so a restart or an
//! upgrade drops nothing. `synwall stop --detach` sends SIGUSR1 instead: the daemon exits and
//! removes them.
//!
//! One process per node: `synwall run` holds the node's lock, a `flock` on its pin directory
//! ([`NodePins::lock`]), for as long as it runs, whatever its run directory; `synwall stop` finds
//! the daemon by it. Everything the daemon says goes to one stream, its log ([`crate::logging`]).
//!
//! Keys: the salt ring in the maps is written `node.salts_ahead_seconds` ahead, and its live slots
//! are the truth: a restarted daemon continues exactly where the last one left off, a replaced
//! current secret generates from the first boundary at least `max(2L, 1 s)` away, an accepted
//! secret (`node.accepted_secret_file`) validates at once ([`crate::rotation`]).

use crate::args::now_unix;
use crate::hints::HintLog;
use crate::logging::LIFECYCLE;
use crate::node::{FrontEnd, Interface, LiveSalt, Node, NodeSpec, Signals};
use crate::notify::Notifier;
use crate::rotation::Secrets;
use crate::snapshot;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use synwall_bpf::pin::{Holder, NodePins};
use synwall_bpf::{LoadOptions, XdpMode};
use synwall_config::{NodeConfig, SecretSource, XdpFallback};
use synwall_cookie::synwall_v1::MasterSecret;
use tracing::{debug, error, info, warn};

/// How often the daemon reads its counters for hints.
const HINT_POLL: Duration = Duration::from_secs(5);
/// A hint is logged again (its counter still growing) at most this often.
const HINT_REPEAT: Duration = Duration::from_secs(300);

/// Where runtime state (lock, pid) lives by default.
pub const DEFAULT_RUN_DIR: &str = "/run/synwall";

#[derive(Args)]
pub struct RunArgs {
    /// The node's configuration file (see dist/synwall.toml).
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Directory for the state file (pid, config, epoch length) that `synwall status` and
    /// `synwall stop` read, and its lock. (The node itself is locked where its pins are, so two
    /// daemons never run one node, whatever their run directories.)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The configuration file to check.
    pub config: PathBuf,
}

/// Read and validate a node's config file. The error stays a [`synwall_config::ConfigError`]
/// (every problem with its file, line and key) inside the `anyhow::Error`, with the same message.
fn load_config(path: &Path) -> Result<synwall_config::Loaded> {
    Ok(NodeConfig::load(path)?)
}

/// `synwall check-config FILE`: everything `run` checks before attaching, without attaching.
pub fn check_config(a: CheckArgs) -> Result<ExitCode> {
    let loaded = load_config(&a.config)?;
    let cfg = &loaded.config;
    check_machine(&loaded)?;
    // The secret as `run` reads it; a systemd credential only exists inside its unit.
    let source = secret_source(&loaded)?;
    match source {
        SecretSource::Credential(ref n) if source.path().is_err() => eprintln!(
            "warning: {}: the secret was not checked: {source} is the systemd credential {n:?}, \
             which only the service gets (check it as the service reads it: `systemd-run --pipe \
             -p LoadCredential={n}:/PATH/OF/THE/SECRET synwall check-config {}`)",
            at(&loaded, "node.secret_file"),
            a.config.display()
        ),
        _ => {
            for w in master_secret(&loaded)?.1 {
                eprintln!("warning: {w}");
            }
        }
    }
    // (`run` logs this one when it attaches.)
    if cfg.edge.xdp_mode == synwall_config::XdpMode::Native {
        for iface in &cfg.edge.interfaces {
            if let Some(w) = crate::iface::native_vlan_warning(iface) {
                eprintln!("warning: {w}");
            }
        }
    }
    if let Some(addr) = cfg.node.metrics_addr() {
        let pins = NodePins::new(&cfg.node.pin_root, &cfg.node.name);
        let files = RunFiles::new(Path::new(DEFAULT_RUN_DIR), &cfg.node.name);
        let own = daemon_of(&pins, &files).and_then(|(h, _)| h.pid.map(|p| p as i32));
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

/// What the machine checks establish: each interface (with its index), the master secrets, and
/// what is worth a warning but not a refusal.
struct Preflight {
    interfaces: Vec<Interface>,
    secrets: Secrets,
    warnings: Vec<String>,
}

/// Where the config says the master secret is (`node.secret_file`: a path, or `%d/NAME` for a
/// systemd credential).
fn secret_source(loaded: &synwall_config::Loaded) -> Result<SecretSource> {
    SecretSource::parse(&loaded.config.node.secret_file)
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "node.secret_file")))
}

/// The master secret, read as the config says, and warnings about it (who can read the file).
/// The one place a node's secret is read: at start, on every reload, and by `check-config`.
fn master_secret(loaded: &synwall_config::Loaded) -> Result<(MasterSecret, Vec<String>)> {
    let source = secret_source(loaded)?;
    let master = source
        .read()
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "node.secret_file")))?;
    Ok((MasterSecret(master), source.warning().into_iter().collect()))
}

/// The checks that need the machine: interfaces exist, the pin root is on a bpffs, map sizes
/// fit, and (for a backend that may not set them itself) the sysctls the kfunc needs.
fn check_machine(loaded: &synwall_config::Loaded) -> Result<Vec<Interface>> {
    let cfg = &loaded.config;
    let mut interfaces = Vec::new();
    for (iface, roles) in cfg.interfaces() {
        let key = if roles.edge {
            "edge.interfaces"
        } else {
            "backend.interfaces"
        };
        let idx = nix::net::if_::if_nametoindex(iface.as_str())
            .map_err(|_| anyhow!("{}: no such interface {iface:?}", at(loaded, key)))?;
        crate::iface::check_ethernet(&iface).map_err(|e| anyhow!("{}: {e:#}", at(loaded, key)))?;
        interfaces.push(Interface {
            name: iface,
            ifindex: idx,
            edge: roles.edge,
            backend: roles.backend,
        });
    }
    synwall_bpf::pin::check_root(&cfg.node.pin_root)
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "node.pin_root")))?;
    let ecfg = cfg.engine_config();
    let sizes = LoadOptions::for_config(&ecfg);
    sizes
        .check_services(&ecfg.services)
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "services.protect")))?;
    sizes
        .check_lists(&ecfg.lists)
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "edge.deny.prefixes")))?;
    if !cfg.backend.interfaces.is_empty() && !cfg.node.set_sysctls {
        crate::sysctl::ensure_for(&ecfg.cookie, false)
            .map_err(|e| anyhow!("{e:#} (or node.set_sysctls = true)"))?;
    }
    Ok(interfaces)
}

/// Everything `run` checks before it starts the node (and a reload before it applies a file).
fn preflight(loaded: &synwall_config::Loaded) -> Result<Preflight> {
    let interfaces = check_machine(loaded)?;
    let (master, mut warnings) = master_secret(loaded)?;
    let accepted = match loaded.config.node.accepted_secret() {
        Some(path) => {
            let key = "node.accepted_secret_file";
            let source =
                SecretSource::parse(path).map_err(|e| anyhow!("{}: {e}", at(loaded, key)))?;
            let a = source
                .read()
                .map_err(|e| anyhow!("{}: {e}", at(loaded, key)))?;
            if a == master.0 {
                bail!(
                    "{}: {} holds the same secret as node.secret_file: the accepted secret is a \
                     second one (the new secret while it is rolled out, or the old one after), or \
                     \"\" for none",
                    at(loaded, key),
                    path.display()
                );
            }
            warnings.extend(source.warning());
            Some(MasterSecret(a))
        }
        None => None,
    };
    Ok(Preflight {
        interfaces,
        secrets: Secrets {
            current: master,
            accepted,
        },
        warnings,
    })
}

/// The node a loaded configuration describes, with what preflight established (its warnings
/// logged).
fn node_spec(cfg: &NodeConfig, pf: Preflight) -> NodeSpec {
    for w in pf.warnings {
        warn!("{w}");
    }
    NodeSpec {
        name: cfg.node.name.clone(),
        engine: cfg.engine_config(),
        interfaces: pf.interfaces,
        xdp_mode: match cfg.edge.xdp_mode {
            synwall_config::XdpMode::Native => XdpMode::Native,
            synwall_config::XdpMode::Generic => XdpMode::Generic,
        },
        xdp_fallback: cfg.edge.xdp_fallback == XdpFallback::Generic,
        epoch_seconds: cfg.node.epoch_seconds,
        salts_ahead_seconds: cfg.node.salts_ahead_seconds,
        secrets: pf.secrets,
        set_sysctls: cfg.node.set_sysctls,
        pins: Some(NodePins::new(&cfg.node.pin_root, &cfg.node.name)),
    }
}

/// The secret files of a node's config (what `/healthz` and `synwall status --check` read).
pub fn secret_paths(node: &synwall_config::Node) -> Vec<PathBuf> {
    // A credential (`%d/NAME`) is checked where systemd put it.
    let resolve = |p: &Path| {
        SecretSource::parse(p)
            .and_then(|s| s.path())
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let mut v = vec![resolve(&node.secret_file)];
    v.extend(node.accepted_secret().map(resolve));
    v
}

/// `synwall run` around its node: says each rotation, survives a failed one (logged), reloads
/// the config file on SIGHUP, keeps systemd informed and logs hints.
struct Service {
    config_path: PathBuf,
    cfg: NodeConfig,
    notify: Notifier,
    pins: NodePins,
    hints: HintLog,
    next_hints: Instant,
    /// The node's interfaces, for systemd's STATUS=.
    where_: String,
    /// The secret files `/healthz` checks (they may change on a reload).
    secrets: Arc<Mutex<Vec<PathBuf>>>,
}

impl Service {
    /// SIGHUP: apply what can change in place, refuse the rest; on any error keep running as is.
    fn try_reload(&mut self, node: &mut Node) -> Result<Vec<String>> {
        let loaded = load_config(&self.config_path)?;
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
            secrets, warnings, ..
        } = preflight(&loaded)?;
        for w in warnings {
            warn!("{w}");
        }
        let new = loaded.config;
        let accepted_now = secrets.accepted.is_some();
        let change = node.reconfigure(new.engine_config(), secrets, new.node.set_sysctls)?;
        node.set_salts_ahead(new.node.salts_ahead_seconds);
        let mut said: Vec<String> = changes
            .iter()
            .map(|c| format!("{}: {} -> {}", c.key, c.old, c.new))
            .collect();
        if let Some(sw) = change.current {
            said.push(format!(
                "master secret replaced: this node issues cookies of the new secret from epoch \
                 {} on ({}); until then the old secret's, and both validate here",
                sw.epoch,
                sw.wait_text()
            ));
        }
        if change.accepted {
            said.push(if accepted_now {
                "accepted secret set: its cookies validate here from now on".to_string()
            } else {
                "accepted secret dropped: only the current secret's cookies validate here".into()
            });
        }
        crate::logging::set_level(new.node.log_level.as_str());
        *self.secrets.lock().unwrap_or_else(|e| e.into_inner()) = secret_paths(&new.node);
        self.cfg = new;
        Ok(said)
    }

    /// systemd's STATUS= line.
    fn status(&self, live: &LiveSalt) -> String {
        match live.entry {
            Some(e) => format!(
                "epoch {} (key {}), {}",
                live.epoch,
                crate::rotation::key_id(&e.current),
                self.where_
            ),
            None => format!(
                "epoch {}: no salt (fail-safe, SYNs pass to the kernel), {}",
                live.epoch, self.where_
            ),
        }
    }
}

impl FrontEnd for Service {
    fn rotated(&mut self, live: &LiveSalt) {
        info!("rotated {}", live.fields());
        let status = self.status(live);
        self.notify.status(&status);
    }

    fn stale(&mut self, stale: bool, live: &LiveSalt) {
        if stale {
            error!(
                epoch = live.epoch,
                "the salt ring has no salt for epoch {}: SYNs and ACKs pass to the kernel \
                 (fail-safe) until salts are written again",
                live.epoch
            );
        } else {
            info!("salts written again: {}", live.fields());
        }
        let status = self.status(live);
        self.notify.status(&status);
    }

    fn rotation_failed(&mut self, e: anyhow::Error) -> Result<()> {
        error!("salt rotation failed: {e:#}");
        Ok(())
    }

    fn reload(&mut self, node: &mut Node) {
        self.notify.reloading();
        match self.try_reload(node) {
            Ok(changes) => {
                for c in &changes {
                    info!("changed in place: {c}");
                }
                info!(target: LIFECYCLE, changes = changes.len(), "reloaded");
            }
            Err(e) => error!(
                target: LIFECYCLE,
                "reload refused, still running the previous configuration: {e:#}"
            ),
        }
        let status = self.status(node.live());
        self.notify.ready(&status);
    }

    fn idle(&mut self, _node: &Node) {
        self.notify.tick();
        let now = Instant::now();
        if now < self.next_hints {
            return;
        }
        self.next_hints = now + HINT_POLL;
        match snapshot::from_pins(
            &self.pins,
            &self.cfg.node.name,
            self.cfg.node.epoch_seconds,
            None,
        ) {
            Ok(s) => {
                for h in self.hints.next(s) {
                    warn!("hint: {}", h.line());
                }
            }
            Err(e) => debug!("hints: reading the counters: {e:#}"),
        }
    }
}

/// The state file of a node under the run directory, and its lock.
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

    /// The pid of a daemon that holds the run directory's lock and wrote the state file (a
    /// daemon of an older synwall holds no node lock).
    fn running_pid(&self) -> Option<i32> {
        let pid = self.read_state()?.get("pid")?.as_i64()? as i32;
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        (alive && synwall_bpf::pin::flock_holder(&self.lock).is_some()).then_some(pid)
    }

    /// Take the lock on the state file (two nodes of one name under different pin roots must
    /// not share it either).
    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>> {
        if let Some(dir) = self.lock.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .with_context(|| format!("cannot open {}", self.lock.display()))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
            let holder = synwall_bpf::pin::flock_holder(&self.lock).unwrap_or(Holder { pid: None });
            anyhow!(
                "{} is locked by another synwall ({holder}) running a node of the same name: \
                 give each node its own name or run directory",
                self.lock.display()
            )
        })
    }

    /// Remove the state file if it is this process's.
    fn remove_own_state(&self) {
        let ours = self
            .read_state()
            .and_then(|s| s.get("pid")?.as_u64())
            .is_some_and(|p| p == u64::from(std::process::id()));
        if ours {
            let _ = std::fs::remove_file(&self.state);
        }
    }
}

/// The daemon running a node: the holder of its lock, or (a daemon of an older synwall, which
/// takes no node lock: `false`) the one the run directory's state file names.
fn daemon_of(pins: &NodePins, files: &RunFiles) -> Option<(Holder, bool)> {
    match pins.holder() {
        Some(h) => Some((h, true)),
        None => files.running_pid().map(|p| {
            (
                Holder {
                    pid: Some(p as u32),
                },
                false,
            )
        }),
    }
}

/// `synwall run`.
pub fn run(a: RunArgs) -> Result<ExitCode> {
    let loaded = load_config(&a.config)?;
    crate::logging::init(loaded.config.node.log_level.as_str());
    // From here on the log is the one stream, errors included.
    match serve(a, loaded) {
        Ok(code) => Ok(code),
        Err(e) => {
            error!(target: LIFECYCLE, "{e:#}");
            Ok(ExitCode::from(crate::ERROR_EXIT))
        }
    }
}

fn serve(a: RunArgs, loaded: synwall_config::Loaded) -> Result<ExitCode> {
    let cfg = &loaded.config;
    let notify = Notifier::from_env();
    // Before the lock makes this process findable: `synwall stop` signals the lock's holder.
    let signals = Signals::register(true)?.with_detach()?;
    // One process per node, locked where its pins are: every process that sees these pins sees
    // the lock, whatever its run directory.
    let pins = NodePins::new(&cfg.node.pin_root, &cfg.node.name);
    let _node_lock = pins.lock().map_err(|e| match e {
        synwall_bpf::Error::Held { holder, .. } => anyhow!(
            "node {:?} is already run by another synwall ({holder}); its pins are in {}",
            cfg.node.name,
            pins.dir.display()
        ),
        e => anyhow!("{}: {e}", at(&loaded, "node.pin_root")),
    })?;
    let files = RunFiles::new(&a.run_dir, &cfg.node.name);
    let _run_lock = files.lock()?;

    // Bind the metrics listener before attaching: a bad address must not leave anything behind.
    let secrets = Arc::new(Mutex::new(secret_paths(&cfg.node)));
    let metrics = match cfg.node.metrics_addr() {
        Some(addr) => {
            let pins = pins.clone();
            let name = cfg.node.name.clone();
            let period = cfg.node.epoch_seconds;
            let secrets = Arc::clone(&secrets);
            let source: Arc<dyn Fn() -> Result<snapshot::Snapshot> + Send + Sync> =
                Arc::new(move || {
                    let paths = secrets.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    snapshot::from_pins(&pins, &name, period, Some(&paths))
                });
            let server = crate::metrics::serve(addr, source)
                .map_err(|e| anyhow!("{}: {e:#}", at(&loaded, "node.metrics")))?;
            debug!(addr = %server.local_addr(), "metrics on /metrics, health on /healthz");
            Some(server)
        }
        None => None,
    };
    let mut node = Node::start(node_spec(cfg, preflight(&loaded)?))?;
    let state = serde_json::json!({
        "pid": std::process::id(),
        "config": std::fs::canonicalize(&a.config).unwrap_or(a.config.clone()),
        "epoch_seconds": cfg.node.epoch_seconds,
        "pin_dir": pins.dir,
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
    info!(
        target: LIFECYCLE,
        "ready node={} edge={} backend={} links={} adopted={} {} epoch_seconds={} ahead={} \
         services={} metrics={}",
        node.name(),
        ifaces(&cfg.edge.interfaces),
        ifaces(&cfg.backend.interfaces),
        node.links().links().len(),
        node.links().adopted(),
        node.live().fields(),
        cfg.node.epoch_seconds,
        node.plan().ahead(),
        cfg.services.protect.join(","),
        metrics
            .as_ref()
            .map_or("-".to_string(), |m| m.local_addr().to_string()),
    );
    if let Some(w) = notify.watchdog() {
        debug!("systemd watchdog: WATCHDOG=1 every {:?}", w / 2);
    }
    let where_ = format!(
        "edge {}, backend {}",
        ifaces(&cfg.edge.interfaces),
        ifaces(&cfg.backend.interfaces)
    );
    let mut service = Service {
        config_path: a.config.clone(),
        cfg: loaded.config.clone(),
        notify,
        pins: pins.clone(),
        hints: HintLog::new(HINT_REPEAT),
        next_hints: Instant::now(),
        where_,
        secrets,
    };
    let status = service.status(node.live());
    service.notify.ready(&status);
    node.serve(&signals, &mut service)?;
    service.notify.stopping();
    for line in node.counter_lines()? {
        info!("{line}");
    }
    drop(node);
    files.remove_own_state();
    if signals.detach_asked() {
        let n = pins.links().len();
        pins.remove()?;
        info!(
            target: LIFECYCLE,
            "stopped and detached (synwall stop --detach): {n} link(s) and the maps in {} removed",
            pins.dir.display()
        );
    } else {
        info!(
            target: LIFECYCLE,
            "stopped; the programs stay attached and answering (pinned in {}): the next \
             `synwall run` adopts them, `synwall stop --detach` removes them",
            pins.dir.display()
        );
    }
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
    /// Directory of the daemon's state file (its epoch length, for status). The daemon itself is
    /// found by the node's lock, whatever run directory it uses.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,
}

/// The node a command acts on.
pub struct NodeRef {
    pub name: String,
    pub pin_root: PathBuf,
    /// The epoch length, if `--config` gave one.
    pub epoch_seconds: Option<u64>,
    /// The secret files, if `--config` gave them.
    pub secrets: Option<Vec<PathBuf>>,
}

impl NodeArgs {
    /// Name, pin root (and epoch length) from `--config` (loaded once) or the flags.
    pub fn resolve(&self) -> Result<NodeRef> {
        match &self.config {
            Some(path) => {
                let n = load_config(path)?.config.node;
                Ok(NodeRef {
                    secrets: Some(secret_paths(&n)),
                    name: n.name,
                    pin_root: n.pin_root,
                    epoch_seconds: Some(n.epoch_seconds),
                })
            }
            None => Ok(NodeRef {
                name: self.node.clone(),
                pin_root: self.pin_root.clone(),
                epoch_seconds: None,
                secrets: None,
            }),
        }
    }
}

#[derive(Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Also detach the programs and remove every pin of the node (a running daemon does it on
    /// its way out: it gets SIGUSR1 instead of SIGTERM, and its log says so).
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
    let (had, pinned) = (pins.exists(), pins.links().len());
    match daemon_of(&pins, &files) {
        Some((Holder { pid: Some(pid) }, locked)) => {
            // SIGUSR1: the daemon detaches itself on the way out (and says so in its log). An
            // older one knows only SIGTERM; the pins are removed below then.
            let sig = if a.detach && locked {
                nix::sys::signal::Signal::SIGUSR1
            } else {
                nix::sys::signal::Signal::SIGTERM
            };
            let p = nix::unistd::Pid::from_raw(pid as i32);
            nix::sys::signal::kill(p, sig).with_context(|| format!("cannot signal pid {pid}"))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while nix::sys::signal::kill(p, None).is_ok()
                && daemon_of(&pins, &files).is_some_and(|(h, _)| h.pid == Some(pid))
            {
                if Instant::now() > deadline {
                    bail!("synwall (pid {pid}) did not exit within 10 s of {sig}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            println!("stopped node {name:?} (pid {pid})");
        }
        Some((h, _)) => {
            bail!("node {name:?} is run by {h} (another PID namespace): stop it from there")
        }
        // Nothing to stop is not an error (as for --detach with nothing pinned): the node is
        // stopped either way, and the line says so.
        None => println!("no synwall is running node {name:?}"),
    }
    if a.detach {
        if pins.exists() {
            // What no daemon removed (none ran, or an older one): under the node's lock, so no
            // daemon starts on the pins while they go.
            let _lock = pins.lock().map_err(|e| match e {
                synwall_bpf::Error::Held { holder, .. } => {
                    anyhow!("node {name:?} was started again meanwhile ({holder}): stop it again")
                }
                e => anyhow!(e),
            })?;
            pins.remove()?;
        }
        if !had {
            println!("node {name:?} has nothing pinned in {}", root.display());
        } else {
            println!(
                "detached node {name:?}: {pinned} link(s) and the maps in {} removed",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_keep_their_type_and_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[node]\nepoch_secnds = 5\n").unwrap();
        let direct = NodeConfig::load(&path).unwrap_err();
        let e = load_config(&path).unwrap_err();
        assert_eq!(format!("{e:#}"), direct.to_string());
        let typed = e
            .downcast_ref::<synwall_config::ConfigError>()
            .expect("still a ConfigError");
        assert_eq!(typed.problems()[0].key, "node.epoch_secnds");
        assert_eq!(typed.problems()[0].line, Some(2));
    }
}
