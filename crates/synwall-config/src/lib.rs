//! synwall's node configuration file (`synwall run --config FILE`).
//!
//! This crate owns the TOML schema of a node ([`NodeConfig`]: `[node]`, `[services]`, `[edge]`,
//! `[backend]`, `[auto]`, `[cookie]`, `[server]`), its defaults (taken from the engine's and the
//! cookie's own defaults, never re-typed), parsing and validation with errors that name the dotted
//! key and the line ([`ConfigError`]), the mapping to the engine's [`EngineConfig`], what a reload
//! (SIGHUP) may change in place ([`NodeConfig::reload_plan`]), and reading the master-secret file
//! ([`read_secret_file`]). It does no I/O besides reading the files it is given.
//!
//! `dist/synwall.toml` is the documented example; the tests check that it holds every key of the
//! schema with its default.

#![warn(missing_docs)]

mod load;
mod reload;
mod secret;
mod validate;

pub use load::{ConfigError, Loaded, Problem};
pub use reload::{Change, Refusal};
pub use secret::{parse_secret, read_secret_file, secret_file_warning, SecretError};
pub use validate::{check_node_name, FLOW_CACHE_RANGE, MAX_EPOCH_SECONDS, MIN_MSS_V4, MIN_MSS_V6};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use synwall_cookie::synwall_v1;
use synwall_engine::{EngineConfig, Service, ServiceSet};

/// Cookies switch on at or above this many SYNs per second (auto mode).
pub const DEFAULT_SYN_RATE_ON: u64 = 20_000;
/// Cookies switch off after the SYN rate stayed below this for `hold_seconds` (auto mode).
pub const DEFAULT_SYN_RATE_OFF: u64 = 5_000;
/// Seconds the SYN rate must stay below `syn_rate_off` before cookies switch off.
pub const DEFAULT_HOLD_SECONDS: u64 = 10;
/// Default Prometheus listen address.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9733";
/// Default bpffs directory under which each node pins its objects.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/synwall";
/// Default master-secret file.
pub const DEFAULT_SECRET_FILE: &str = "/etc/synwall/secret";
/// Default of `node.salts_ahead_seconds`: the salt ring is written ten minutes ahead.
pub const DEFAULT_SALTS_AHEAD_SECONDS: u64 = 600;
/// Largest `node.salts_ahead_seconds` (a day; the ring holds at most 253 epochs ahead anyway).
pub const MAX_SALTS_AHEAD_SECONDS: u64 = 86_400;
/// Default node name.
pub const DEFAULT_NAME: &str = "synwall";

/// One node's configuration: the whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// `[node]`: identity, secret, epochs, metrics, logging.
    pub node: Node,
    /// `[services]`: what is protected.
    pub services: Services,
    /// `[edge]`: the XDP SYN answerer.
    pub edge: EdgeSection,
    /// `[backend]`: the tc validator + kfunc.
    pub backend: BackendSection,
    /// `[auto]`: cookies only under a SYN flood.
    pub auto: Auto,
    /// `[cookie]`: the cookie's options and MSS tables (identical on every node).
    pub cookie: CookieSection,
    /// `[server]`: what the SYN+ACK advertises.
    pub server: ServerSection,
}

/// `[node]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    /// Node name: pins live under `<pin_root>/<name>`; `[A-Za-z0-9_-]{1,32}`.
    pub name: String,
    /// bpffs directory for pins.
    pub pin_root: PathBuf,
    /// The master secret: 32 raw bytes or 64 hex characters.
    pub secret_file: PathBuf,
    /// A second master secret that validates only (SPEC 2a: a staged secret rollout), or ""
    /// for none.
    pub accepted_secret_file: PathBuf,
    /// Epoch length in seconds (1..=86400).
    pub epoch_seconds: u64,
    /// How far ahead the salt ring is written, in seconds (rounded up to whole epochs, at least
    /// two, at most 253): how long the data path keeps rotating on its own if the daemon stops.
    pub salts_ahead_seconds: u64,
    /// Prometheus listen address, or "" to disable.
    pub metrics: String,
    /// Log level.
    pub log_level: LogLevel,
    /// Set the sysctls the backend kfunc needs instead of refusing to start.
    pub set_sysctls: bool,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            name: DEFAULT_NAME.into(),
            pin_root: DEFAULT_PIN_ROOT.into(),
            secret_file: DEFAULT_SECRET_FILE.into(),
            accepted_secret_file: PathBuf::new(),
            epoch_seconds: synwall_v1::DEFAULT_EPOCH_SECONDS,
            salts_ahead_seconds: DEFAULT_SALTS_AHEAD_SECONDS,
            metrics: DEFAULT_METRICS.into(),
            log_level: LogLevel::Info,
            set_sysctls: false,
        }
    }
}

impl Node {
    /// The metrics listen address; `None` when metrics are disabled (`metrics = ""`).
    /// Panics if the address does not parse (a validated config always parses).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        if self.metrics.is_empty() {
            return None;
        }
        Some(
            self.metrics
                .parse()
                .expect("node.metrics is validated when the config is loaded"),
        )
    }

    /// Where this node's pins live: `<pin_root>/<name>`.
    pub fn pin_dir(&self) -> PathBuf {
        self.pin_root.join(&self.name)
    }

    /// The accepted master secret's file, if one is configured.
    pub fn accepted_secret(&self) -> Option<&std::path::Path> {
        (!self.accepted_secret_file.as_os_str().is_empty())
            .then_some(self.accepted_secret_file.as_path())
    }
}

/// `node.log_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    Info,
    /// Debugging detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level's name, as `tracing`'s filters spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// `[services]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Services {
    /// `PREFIX:PORTS` strings (`synwall_engine::Service`'s syntax).
    pub protect: Vec<String>,
}

/// `[edge]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeSection {
    /// Interfaces the XDP answerer attaches to.
    pub interfaces: Vec<String>,
    /// XDP attach mode.
    pub xdp_mode: XdpMode,
    /// What to do if native attach fails.
    pub xdp_fallback: XdpFallback,
    /// Strict mode: forward only flows whose handshake ACK the edge validated.
    pub strict: bool,
    /// Strict-mode flow cache entries (1024..=16777216).
    pub flow_cache: usize,
}

impl Default for EdgeSection {
    fn default() -> Self {
        let engine = EngineConfig::new(ServiceSet::default());
        EdgeSection {
            interfaces: Vec::new(),
            xdp_mode: XdpMode::Native,
            xdp_fallback: XdpFallback::None,
            strict: engine.strict,
            flow_cache: engine.flow_cache,
        }
    }
}

/// `edge.xdp_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Driver (native) XDP.
    Native,
    /// Generic (skb) XDP.
    Generic,
}

/// `edge.xdp_fallback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpFallback {
    /// A failed native attach is an error.
    None,
    /// A failed native attach is retried in generic mode (and logged).
    Generic,
}

/// `[backend]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendSection {
    /// Interfaces the tc validator attaches to (ingress).
    pub interfaces: Vec<String>,
}

/// `[auto]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auto {
    /// Cookies only while the SYN rate is high.
    pub enabled: bool,
    /// SYNs/s at or above which cookies switch on.
    pub syn_rate_on: u64,
    /// SYNs/s below which (for `hold_seconds`) cookies switch off.
    pub syn_rate_off: u64,
    /// Seconds below `syn_rate_off` before cookies switch off.
    pub hold_seconds: u64,
}

impl Default for Auto {
    fn default() -> Self {
        Auto {
            enabled: false,
            syn_rate_on: DEFAULT_SYN_RATE_ON,
            syn_rate_off: DEFAULT_SYN_RATE_OFF,
            hold_seconds: DEFAULT_HOLD_SECONDS,
        }
    }
}

/// `[cookie]`: `synwall_v1::Config` in file form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieSection {
    /// Carry SACK-Permitted.
    pub sack: bool,
    /// Carry the window-scale shift.
    pub wscale: bool,
    /// Negotiate timestamps.
    pub timestamps: bool,
    /// Negotiate ECN (needs timestamps).
    pub ecn: bool,
    /// IPv4 MSS table: 8 strictly ascending entries, each >= 536.
    pub mss_v4: Vec<u16>,
    /// IPv6 MSS table: 8 strictly ascending entries, each >= 1220.
    pub mss_v6: Vec<u16>,
}

impl Default for CookieSection {
    fn default() -> Self {
        let c = synwall_v1::Config::default();
        CookieSection {
            sack: c.sack,
            wscale: c.wscale,
            timestamps: c.timestamps,
            ecn: c.ecn,
            mss_v4: c.mss_v4.entries().to_vec(),
            mss_v6: c.mss_v6.entries().to_vec(),
        }
    }
}

/// `[server]`: `synwall_engine::ServerParams` in file form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// MSS option for IPv4 (>= 536).
    pub mss_v4: u16,
    /// MSS option for IPv6 (>= 1220).
    pub mss_v6: u16,
    /// Window-scale shift (0..=14); must equal the backends' `rcv_wscale`.
    pub wscale: u8,
    /// TCP window (>= 1).
    pub window: u16,
    /// IPv4 TTL / IPv6 hop limit (>= 1).
    pub ttl: u8,
}

impl Default for ServerSection {
    fn default() -> Self {
        let s = synwall_engine::ServerParams::default();
        ServerSection {
            mss_v4: s.mss_v4,
            mss_v6: s.mss_v6,
            wscale: s.wscale,
            window: s.window,
            ttl: s.ttl,
        }
    }
}

/// The roles of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Roles {
    /// The XDP answerer is attached.
    pub edge: bool,
    /// The tc validator is attached.
    pub backend: bool,
}

impl NodeConfig {
    /// Read, parse and validate a file. Errors name the file, the line and the key.
    pub fn load(path: &std::path::Path) -> Result<Loaded, ConfigError> {
        load::load(path)
    }

    /// Parse and validate `text`; `origin` names it in errors (usually the file name).
    pub fn parse(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
        load::parse(text, origin)
    }

    /// The semantic checks alone (for a config built in code): each problem's key and message, no
    /// lines. [`NodeConfig::parse`] runs them too.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems: Vec<Problem> = validate::check(self)
            .into_iter()
            .map(|f| Problem {
                key: f.key,
                line: None,
                message: f.message,
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new("config", problems))
        }
    }

    /// The protected services, parsed. Panics on an entry that does not parse (validated configs
    /// never have one).
    pub fn services(&self) -> Vec<Service> {
        self.services
            .protect
            .iter()
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|e| panic!("services.protect is validated at load: {e}"))
            })
            .collect()
    }

    /// The engine's configuration: services, cookie, server, strict mode, flow cache. Panics on a
    /// config that did not pass validation (bad service or MSS table).
    pub fn engine_config(&self) -> EngineConfig {
        let table = |v: &[u16], key: &str| {
            let arr: [u16; 8] = v
                .try_into()
                .unwrap_or_else(|_| panic!("{key} is validated at load: 8 entries"));
            synwall_cookie::MssTable::new(arr)
                .unwrap_or_else(|e| panic!("{key} is validated at load: {e}"))
        };
        let mut cfg = EngineConfig::new(ServiceSet::new(self.services()));
        cfg.cookie = synwall_v1::Config {
            mss_v4: table(&self.cookie.mss_v4, "cookie.mss_v4"),
            mss_v6: table(&self.cookie.mss_v6, "cookie.mss_v6"),
            sack: self.cookie.sack,
            wscale: self.cookie.wscale,
            timestamps: self.cookie.timestamps,
            ecn: self.cookie.ecn,
        };
        cfg.server = synwall_engine::ServerParams {
            mss_v4: self.server.mss_v4,
            mss_v6: self.server.mss_v6,
            wscale: self.server.wscale,
            window: self.server.window,
            ttl: self.server.ttl,
        };
        self.set_modes(&mut cfg);
        cfg
    }

    /// Strict mode, the flow cache and auto mode as the engine takes them. Values beyond the
    /// engine's 32-bit fields saturate (validation reports them by key; a validated config has
    /// none), so the engine's own rules can be checked on any parsed file.
    pub(crate) fn set_modes(&self, cfg: &mut EngineConfig) {
        let u32_sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        cfg.strict = self.edge.strict;
        cfg.flow_cache = self.edge.flow_cache;
        // On an edge, auto mode passes SYNs below the rate; on a backend it passes ACKs that carry
        // the kernel's own cookies (made while the SYNs went to the kernel) to the kernel.
        cfg.auto = self.auto.enabled.then(|| synwall_engine::AutoConfig {
            rate_on: u32_sat(self.auto.syn_rate_on),
            rate_off: u32_sat(self.auto.syn_rate_off),
            hold_ms: u32_sat(self.auto.hold_seconds.saturating_mul(1000)),
        });
    }

    /// Each distinct interface once, in file order (edge list first), with its roles. An
    /// interface in both lists is a single node.
    pub fn interfaces(&self) -> Vec<(String, Roles)> {
        let mut out: Vec<(String, Roles)> = Vec::new();
        let lists = [
            (&self.edge.interfaces, true),
            (&self.backend.interfaces, false),
        ];
        for (list, edge) in lists {
            for name in list {
                let i = match out.iter().position(|(n, _)| n == name) {
                    Some(i) => i,
                    None => {
                        out.push((name.clone(), Roles::default()));
                        out.len() - 1
                    }
                };
                if edge {
                    out[i].1.edge = true;
                } else {
                    out[i].1.backend = true;
                }
            }
        }
        out
    }

    /// What a reload (SIGHUP) from `self` to `new` would do: the in-place changes, or, if any
    /// change needs a restart, every such change with why. In place: `services.*`, `cookie.*`,
    /// `server.*`, `auto.*`, `edge.strict`, `node.secret_file` and `node.accepted_secret_file`
    /// (the daemon re-reads both secrets on every reload), `node.salts_ahead_seconds`,
    /// `node.log_level`, `node.set_sysctls`. Anything else is refused, including
    /// keys added to the schema later until they are listed as reloadable.
    pub fn reload_plan(&self, new: &NodeConfig) -> Result<Vec<Change>, Vec<Refusal>> {
        reload::plan(self, new)
    }
}
