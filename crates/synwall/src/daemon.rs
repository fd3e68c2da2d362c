//! `synwall run --config FILE`: a node as a long-running service.
//!
//! Start: validate everything this front end can name by file, line and key (config, interfaces,
//! secret, sysctls, map sizes), then run the node ([`crate::node`]) with its maps and links pinned
//! under `node.pin_root/<name>`: load on the pinned maps, attach (or adopt pinned links and swap
//! the new programs in), pin, print one `ready` line. Then, every 25 ms: rotate salts on epoch
//! boundaries, reload on SIGHUP, exit on SIGINT/SIGTERM. Exiting leaves the programs attached (their links are pinned): the next
//! `synwall run` adopts them, so a restart or an upgrade drops nothing; `synwall stop --detach`
//! removes them.
//!
//! Keys: the salt ring in the maps is written `node.salts_ahead_seconds` ahead, and its live slots
//! are the truth: a restarted daemon continues exactly where the last one left off, a replaced
//! current secret generates from the first boundary at least `max(2L, 1 s)` away, an accepted
//! secret (`node.accepted_secret_file`) validates at once ([`crate::rotation`]).

use crate::args::now_unix;
use crate::node::{FrontEnd, Interface, LiveSalt, Node, NodeSpec, Signals};
use crate::rotation::Secrets;
use crate::snapshot;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use synwall_bpf::pin::NodePins;
use synwall_bpf::{LoadOptions, XdpMode};
use synwall_config::{NodeConfig, XdpFallback};
use synwall_cookie::synwall_v1::MasterSecret;
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

/// Read and validate a node's config file. The error stays a [`synwall_config::ConfigError`]
/// (every problem with its file, line and key) inside the `anyhow::Error`, with the same message.
fn load_config(path: &Path) -> Result<synwall_config::Loaded> {
    Ok(NodeConfig::load(path)?)
}

/// `synwall check-config FILE`: everything `run` checks before attaching, without attaching.
pub fn check_config(a: CheckArgs) -> Result<ExitCode> {
    let loaded = load_config(&a.config)?;
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

/// What the machine checks establish: each interface (with its index), the master secrets, and
/// what is worth a warning but not a refusal.
struct Preflight {
    interfaces: Vec<Interface>,
    secrets: Secrets,
    warnings: Vec<String>,
}

/// The checks that need the machine: interfaces exist, the secret reads, map sizes fit, and
/// (for a backend that may not set them itself) the sysctls the kfunc needs.
fn preflight(loaded: &synwall_config::Loaded) -> Result<Preflight> {
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
        interfaces.push(Interface {
            name: iface,
            ifindex: idx,
            edge: roles.edge,
            backend: roles.backend,
        });
    }
    let master = synwall_config::read_secret_file(&cfg.node.secret_file)
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "node.secret_file")))?;
    let accepted = match cfg.node.accepted_secret() {
        Some(path) => {
            let a = synwall_config::read_secret_file(path)
                .map_err(|e| anyhow!("{}: {e}", at(loaded, "node.accepted_secret_file")))?;
            if a == master {
                bail!(
                    "{}: {} holds the same secret as node.secret_file: the accepted secret is a \
                     second one (the new secret while it is rolled out, or the old one after), or \
                     \"\" for none",
                    at(loaded, "node.accepted_secret_file"),
                    path.display()
                );
            }
            Some(MasterSecret(a))
        }
        None => None,
    };
    let ecfg = cfg.engine_config();
    LoadOptions::for_config(&ecfg)
        .check_services(&ecfg.services)
        .map_err(|e| anyhow!("{}: {e}", at(loaded, "services.protect")))?;
    if !cfg.backend.interfaces.is_empty() && !cfg.node.set_sysctls {
        crate::sysctl::ensure_for(&ecfg.cookie, false)
            .map_err(|e| anyhow!("{e:#} (or node.set_sysctls = true)"))?;
    }
    let mut warnings: Vec<String> = synwall_config::secret_file_warning(&cfg.node.secret_file)
        .into_iter()
        .collect();
    if let Some(p) = cfg.node.accepted_secret() {
        warnings.extend(synwall_config::secret_file_warning(p));
    }
    Ok(Preflight {
        interfaces,
        secrets: Secrets {
            current: MasterSecret(master),
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
    let mut v = vec![node.secret_file.clone()];
    v.extend(node.accepted_secret().map(Path::to_path_buf));
    v
}

/// `synwall run` around its node: says each rotation, survives a failed one (logged), reloads
/// the config file on SIGHUP.
struct Service {
    config_path: PathBuf,
    cfg: NodeConfig,
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
}

impl FrontEnd for Service {
    fn rotated(&mut self, live: &LiveSalt) {
        info!("salts rotated: {}", live.fields());
        println!("rotated {}", live.fields());
    }

    fn stale(&mut self, stale: bool, live: &LiveSalt) {
        if stale {
            error!(
                epoch = live.epoch,
                "the salt ring has no salt for epoch {}: SYNs and ACKs pass to the kernel \
                 (fail-safe) until salts are written again",
                live.epoch
            );
            println!("stale epoch={}", live.epoch);
        } else {
            info!(epoch = live.epoch, "salts written again: {}", live.fields());
            println!("salts {}", live.fields());
        }
    }

    fn rotation_failed(&mut self, e: anyhow::Error) -> Result<()> {
        error!("salt rotation failed: {e:#}");
        Ok(())
    }

    fn reload(&mut self, node: &mut Node) {
        match self.try_reload(node) {
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
    let loaded = load_config(&a.config)?;
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
    let signals = Signals::register(true)?;

    // Bind the metrics listener before attaching: a bad address must not leave anything behind.
    let cfg = &loaded.config;
    let pins = NodePins::new(&cfg.node.pin_root, &cfg.node.name);
    let secrets = Arc::new(Mutex::new(secret_paths(&cfg.node)));
    let _metrics = match cfg.node.metrics_addr() {
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
            info!(addr = %server.local_addr(), "metrics on /metrics, health on /healthz");
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
    println!(
        "ready node={} edge={} backend={} links={} adopted={} {} epoch_seconds={} ahead={} services={}",
        node.name(),
        ifaces(&cfg.edge.interfaces),
        ifaces(&cfg.backend.interfaces),
        node.links().links().len(),
        node.links().adopted(),
        node.live().fields(),
        cfg.node.epoch_seconds,
        node.plan().ahead(),
        cfg.services.protect.join(",")
    );
    let mut service = Service {
        config_path: a.config.clone(),
        cfg: loaded.config.clone(),
        secrets,
    };
    node.serve(&signals, &mut service)?;
    node.print_counters()?;
    let _ = std::fs::remove_file(&files.state);
    info!(
        pins = %pins.dir.display(),
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
