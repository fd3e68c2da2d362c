//! The anycast lab: synwall edges that announce the service by BGP while they are healthy, a
//! router that spreads flows over the announcers, and a backend behind them.
//!
//! ```text
//!                         ┌── r1 ── x1 [e1: synwall run (XDP on x1), ExaBGP + healthcheck] y1 ── b1 ┐
//!  cli c0 ── rc [rtr] ────┼── r2 ── x2 [e2: ...]                                           y2 ── b2 ┼─ [be] lo 10.89.100.1, fd89:100::1
//!  10.89.2.2    BIRD 2,   └── r3 ── x3 [e3: ...]                                           y3 ── b3 ┘   synwall run (tc on b1-b3),
//!  fd89:2::2    ECMP (L4)  rz ─────────────────────── (return path) ──────────────────────── bz       block-echo server on :8000
//! ```
//!
//! The router runs BIRD with `dist/bgp/bird.conf` and every edge runs ExaBGP with
//! `dist/bgp/exabgp.conf`, exactly as shipped with the lab's addresses put in ([`template`]).
//! Each edge announces the service prefixes (10.89.100.0/24, fd89:100::/48) while its node's
//! `/healthz` answers 200; BIRD merges the equal routes into one multipath route, and the router
//! hashes flows on the 4-tuple (`fib_multipath_hash_policy = 1`). The backend answers straight
//! to the router (`bz`), so a route change moves only the client-to-service direction, which is
//! the one the edges see. Every link is a veth pair; the router runs a pass-everything XDP program
//! on `r1`-`r3` (a veth delivers the edges' XDP_TX only to a peer that runs XDP itself).
//!
//! nftables on the router records, per edge and family, the client ports whose SYN went to that
//! edge and those whose other segments did ([`AnycastLab::flows`]): which edge answered a
//! handshake, which one carried its ACK, and which long-lived flows moved.

use crate::churn::{self, Conn, Held, Kind, Load};
use crate::lab::stop_child;
use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use synwall_netns::{nft, topo, veth, Daemon, Netns};

/// The edge-side ExaBGP configuration as shipped.
pub const EXABGP_CONF: &str = include_str!("../../../dist/bgp/exabgp.conf");
/// The router's BIRD configuration as shipped.
pub const BIRD_CONF: &str = include_str!("../../../dist/bgp/bird.conf");

/// Service IPv4 address (the block-echo server, port [`PORT`]).
pub const SVC_V4: &str = "10.89.100.1";
/// Service IPv6 address.
pub const SVC_V6: &str = "fd89:100::1";
/// The IPv4 prefix the edges announce.
pub const PREFIX_V4: &str = "10.89.100.0/24";
/// The IPv6 prefix the edges announce.
pub const PREFIX_V6: &str = "fd89:100::/48";
/// Service port.
pub const PORT: u16 = 8000;
/// Edges in the lab.
pub const EDGES: usize = 3;
/// Each node's metrics listener (in its own namespace), where `/healthz` is.
pub const METRICS: &str = "127.0.0.1:9733";

/// Put the lab's addresses into a shipped configuration: each `(from, to)` replaces every whole
/// occurrence of `from` (not part of a longer address), and each must occur.
pub fn template(text: &str, subst: &[(&str, String)]) -> Result<String> {
    let addr_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/');
    let mut out = text.to_string();
    for (from, to) in subst {
        let mut res = String::with_capacity(out.len());
        let (mut last, mut n) = (0, 0);
        for (i, _) in out.match_indices(from) {
            let before = out[..i].chars().next_back();
            let after = out[i + from.len()..].chars().next();
            if before.is_some_and(addr_char) || after.is_some_and(addr_char) {
                continue;
            }
            res.push_str(&out[last..i]);
            res.push_str(to);
            last = i + from.len();
            n += 1;
        }
        res.push_str(&out[last..]);
        ensure!(n > 0, "{from} does not occur in the configuration");
        out = res;
    }
    Ok(out)
}

/// The router's address on edge `n`'s link (1-based), and the edge's.
fn link_v4(n: usize, host: u8) -> String {
    format!("10.89.1{n}.{host}")
}

fn link_v6(n: usize, host: u8) -> String {
    format!("fd89:1{n}::{host}")
}

/// ExaBGP's configuration for edge `n` (1-based).
pub fn exabgp_conf(n: usize) -> Result<String> {
    template(
        EXABGP_CONF,
        &[
            ("198.51.100.1", link_v4(n, 1)),
            ("198.51.100.2", link_v4(n, 2)),
            ("2001:db8:ffff::2", link_v6(n, 2)),
            ("192.0.2.0/24", PREFIX_V4.into()),
            ("2001:db8::/48", PREFIX_V6.into()),
        ],
    )
}

/// BIRD's configuration for the router.
pub fn bird_conf() -> Result<String> {
    template(
        BIRD_CONF,
        &[
            ("198.51.100.1", link_v4(1, 1)),
            ("198.51.100.0/24", "10.89.0.0/16".into()),
            ("192.0.2.0/24", PREFIX_V4.into()),
            ("2001:db8::/48", PREFIX_V6.into()),
        ],
    )
}

/// How the lab's synwall nodes run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `synwall` binary.
    pub exe: PathBuf,
    /// Edges in strict mode.
    pub strict: bool,
    /// `node.epoch_seconds` of every node.
    pub epoch_seconds: u64,
    /// `node.salts_ahead_seconds` of every node (`None`: the default).
    pub salts_ahead_seconds: Option<u64>,
}

/// One edge's processes.
#[derive(Default)]
struct EdgeNode {
    synwall: Option<Daemon>,
    exabgp: Option<Child>,
}

/// The lab; dropping it stops everything and removes namespaces, pins and files.
pub struct AnycastLab {
    /// Prefix of every name.
    pub prefix: String,
    /// Clients.
    pub cli: Netns,
    /// The router (BIRD).
    pub rtr: Netns,
    /// The edges.
    pub edges: Vec<Netns>,
    /// The backend.
    pub be: Netns,
    /// Files: configs, secret, logs, BIRD's socket.
    pub dir: PathBuf,
    opts: Options,
    nodes: Vec<EdgeNode>,
    backend: Option<Daemon>,
    pass: Vec<Daemon>,
    bird: Option<Child>,
    server: Option<churn::Server>,
}

/// Where each client port's segments went at the router: by (IPv6?, port), the edge (0-based)
/// that got the SYN, and every edge that got its other segments.
#[derive(Clone, Debug, Default)]
pub struct Flows {
    /// Edge that saw the SYN.
    pub syn: BTreeMap<(bool, u16), BTreeSet<usize>>,
    /// Edges that saw the rest.
    pub rest: BTreeMap<(bool, u16), BTreeSet<usize>>,
}

impl Flows {
    /// Edges that saw this connection's SYN.
    pub fn syn_edges(&self, v6: bool, port: u16) -> BTreeSet<usize> {
        self.syn.get(&(v6, port)).cloned().unwrap_or_default()
    }

    /// Edges that saw its other segments.
    pub fn rest_edges(&self, v6: bool, port: u16) -> BTreeSet<usize> {
        self.rest.get(&(v6, port)).cloned().unwrap_or_default()
    }
}

impl AnycastLab {
    /// Build the namespaces and links; start the backend node, the server, BIRD and the router's
    /// pass-everything XDP programs. No edge runs yet ([`AnycastLab::start_edge`]).
    pub fn up(prefix: &str, opts: Options) -> Result<AnycastLab> {
        let dir = std::env::temp_dir().join(format!("synwall-anycast-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).context("lab directory")?;
        let ns = |r: &str| Netns::create(&format!("{prefix}{r}"));
        let mut lab = AnycastLab {
            prefix: prefix.to_string(),
            cli: ns("cli")?,
            rtr: ns("rtr")?,
            edges: (1..=EDGES)
                .map(|n| ns(&format!("e{n}")))
                .collect::<Result<_>>()?,
            be: ns("be")?,
            dir,
            opts,
            nodes: (0..EDGES).map(|_| EdgeNode::default()).collect(),
            backend: None,
            pass: Vec::new(),
            bird: None,
            server: None,
        };
        lab.wire()?;
        lab.write_secret()?;
        lab.start_backend()?;
        lab.start_router()?;
        let targets = lab.targets();
        lab.server = Some(churn::Server::start(&lab.be, &targets)?);
        Ok(lab)
    }

    /// The service's two sockets addresses (IPv4, IPv6).
    pub fn targets(&self) -> Vec<SocketAddr> {
        vec![
            format!("{SVC_V4}:{PORT}").parse().expect("address"),
            format!("[{SVC_V6}]:{PORT}").parse().expect("address"),
        ]
    }

    fn wire(&self) -> Result<()> {
        let (cli, rtr, be) = (&self.cli, &self.rtr, &self.be);
        // Forwarding and rp_filter off before any interface exists (new ones take `default`).
        for n in [rtr, be].into_iter().chain(&self.edges) {
            topo::router(n)?;
        }
        rtr.sysctl("net.ipv4.fib_multipath_hash_policy", "1")?;
        rtr.sysctl("net.ipv6.fib_multipath_hash_policy", "1")?;
        veth(cli, "c0", rtr, "rc")?;
        cli.addr("c0", "10.89.2.2/24")?;
        cli.addr("c0", "fd89:2::2/64")?;
        rtr.addr("rc", "10.89.2.1/24")?;
        rtr.addr("rc", "fd89:2::1/64")?;
        cli.route(&["default", "via", "10.89.2.1"])?;
        cli.route(&["::/0", "via", "fd89:2::1"])?;
        for (i, e) in self.edges.iter().enumerate() {
            let n = i + 1;
            let (r, x, y, b) = (
                format!("r{n}"),
                format!("x{n}"),
                format!("y{n}"),
                format!("b{n}"),
            );
            veth(rtr, &r, e, &x)?;
            veth(e, &y, be, &b)?;
            rtr.addr(&r, &format!("{}/24", link_v4(n, 1)))?;
            rtr.addr(&r, &format!("{}/64", link_v6(n, 1)))?;
            e.addr(&x, &format!("{}/24", link_v4(n, 2)))?;
            e.addr(&x, &format!("{}/64", link_v6(n, 2)))?;
            e.addr(&y, &format!("10.89.2{n}.1/24"))?;
            e.addr(&y, &format!("fd89:2{n}::1/64"))?;
            be.addr(&b, &format!("10.89.2{n}.2/24"))?;
            be.addr(&b, &format!("fd89:2{n}::2/64"))?;
            e.route(&["default", "via", &link_v4(n, 1)])?;
            e.route(&["::/0", "via", &link_v6(n, 1)])?;
            e.route(&[PREFIX_V4, "via", &format!("10.89.2{n}.2")])?;
            e.route(&[PREFIX_V6, "via", &format!("fd89:2{n}::2")])?;
        }
        veth(be, "bz", rtr, "rz")?;
        be.addr("bz", "10.89.30.2/24")?;
        be.addr("bz", "fd89:30::2/64")?;
        rtr.addr("rz", "10.89.30.1/24")?;
        rtr.addr("rz", "fd89:30::1/64")?;
        be.route(&["default", "via", "10.89.30.1"])?;
        be.route(&["::/0", "via", "fd89:30::1"])?;
        be.run(&["ip", "addr", "add", &format!("{SVC_V4}/32"), "dev", "lo"])?;
        be.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{SVC_V6}/128"),
            "dev",
            "lo",
        ])?;
        // Which edge each client port's SYN and other segments went to.
        let mut sets = String::new();
        let mut rules = String::new();
        for n in 1..=EDGES {
            for (fam, proto) in [("4", "ipv4"), ("6", "ipv6")] {
                for (kind, flags) in [("syn", "syn"), ("rest", "ack")] {
                    sets.push_str(&format!(
                        "  set {kind}{fam}_r{n} {{ type inet_service; flags dynamic; size 65535; }}\n"
                    ));
                    rules.push_str(&format!(
                        "    oifname \"r{n}\" meta nfproto {proto} tcp dport {PORT} tcp flags & (syn | ack) == {flags} add @{kind}{fam}_r{n} {{ tcp sport }}\n"
                    ));
                }
            }
        }
        nft::load(
            rtr,
            &format!(
                "table inet swbgp {{\n{sets}  chain paths {{ type filter hook forward priority 0; policy accept;\n{rules}  }}\n}}\n"
            ),
        )?;
        // Straddling handshakes: their pure ACKs stay in the client until the mark is cleared.
        nft::load(
            cli,
            &format!(
                "table inet swhold {{\n  chain out {{ type filter hook output priority 0; policy accept;\n    meta mark {:#x} tcp flags & (syn | ack | fin | rst) == ack meta length < 200 drop\n  }}\n}}\n",
                churn::HOLD_MARK
            ),
        )?;
        Ok(())
    }

    fn write_secret(&self) -> Result<()> {
        let mut b = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let p = self.secret();
        std::fs::write(&p, format!("{hex}\n"))?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(())
    }

    fn secret(&self) -> PathBuf {
        self.dir.join("secret")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// The node name of edge `i` (0-based), or of the backend.
    fn node_name(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    /// Write the config of a node (`role` names it) with the given role section.
    fn node_config(&self, role: &str, metrics: &str, section: &str) -> Result<PathBuf> {
        let path = self.dir.join(format!("{role}.toml"));
        std::fs::write(
            &path,
            format!(
                "[node]\nname = \"{}\"\nsecret_file = \"{}\"\nepoch_seconds = {}\n{}metrics = \"{metrics}\"\n\
                 set_sysctls = true\nlog_level = \"warn\"\n\n[services]\nprotect = [\"{SVC_V4}/32:{PORT}\", \"[{SVC_V6}/128]:{PORT}\"]\n\n{section}",
                self.node_name(role),
                self.secret().display(),
                self.opts.epoch_seconds,
                self.opts
                    .salts_ahead_seconds
                    .map_or(String::new(), |n| format!("salts_ahead_seconds = {n}\n")),
            ),
        )?;
        Ok(path)
    }

    /// The config file of edge `i` (0-based).
    pub fn edge_config(&self, i: usize) -> PathBuf {
        self.dir.join(format!("e{}.toml", i + 1))
    }

    fn run_node(&self, ns: &Netns, config: &Path) -> Result<Daemon> {
        Daemon::start(
            ns,
            &self.opts.exe,
            &[
                "run",
                "--config",
                &config.display().to_string(),
                "--run-dir",
                &self.run_dir().display().to_string(),
            ],
            Duration::from_secs(60),
        )
    }

    fn start_backend(&mut self) -> Result<()> {
        let ifs: Vec<String> = (1..=EDGES).map(|n| format!("\"b{n}\"")).collect();
        let cfg = self.node_config(
            "be",
            "",
            &format!("[backend]\ninterfaces = [{}]\n", ifs.join(", ")),
        )?;
        self.backend = Some(self.run_node(&self.be, &cfg)?);
        Ok(())
    }

    fn start_router(&mut self) -> Result<()> {
        let sf = self.secret().display().to_string();
        for n in 1..=EDGES {
            let args = topo::pass_all_args(&format!("r{n}"), &sf);
            self.pass.push(Daemon::start(
                &self.rtr,
                &self.opts.exe,
                &args,
                Duration::from_secs(60),
            )?);
        }
        let conf = self.dir.join("bird.conf");
        std::fs::write(&conf, bird_conf()?)?;
        let log = std::fs::File::create(self.dir.join("bird.log"))?;
        let child = self
            .rtr
            .command("bird")
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(self.bird_socket())
            .arg("-P")
            .arg(self.dir.join("bird.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start bird (scripts/setup.sh installs bird2)")?;
        self.bird = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self
                .birdc(&["show", "status"])
                .is_ok_and(|s| s.contains("Daemon is up"))
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "bird did not come up within 10 s: {}",
                std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn bird_socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }

    /// A `birdc` command on the router's BIRD; its output.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let sock = self.bird_socket().display().to_string();
        let mut a = vec!["birdc", "-s", &sock];
        a.extend_from_slice(args);
        let out = self.rtr.run(&a)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Start edge `i` (0-based): its synwall node (if not running) and ExaBGP (if not running).
    pub fn start_edge(&mut self, i: usize) -> Result<()> {
        self.start_synwall(i)?;
        if self.nodes[i].exabgp.is_none() {
            let n = i + 1;
            let conf = self.dir.join(format!("exabgp-e{n}.conf"));
            std::fs::write(&conf, exabgp_conf(n)?)?;
            let log = std::fs::File::create(self.dir.join(format!("exabgp-e{n}.log")))?;
            let child = self.edges[i]
                .command("exabgp")
                .arg(&conf)
                // As Debian's exabgp.service runs it; no control FIFOs (the unit makes them).
                .env("exabgp_daemon_daemonize", "false")
                .env("exabgp_api_cli", "false")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("cannot start exabgp (scripts/setup.sh installs it)")?;
            self.nodes[i].exabgp = Some(child);
        }
        Ok(())
    }

    /// Start edge `i`'s synwall node (adopting its pins if a killed one left them).
    pub fn start_synwall(&mut self, i: usize) -> Result<()> {
        if self.nodes[i].synwall.is_none() {
            let role = format!("e{}", i + 1);
            let x = format!("x{}", i + 1);
            let cfg = self.node_config(
                &role,
                METRICS,
                &format!(
                    "[edge]\ninterfaces = [\"{x}\"]\nstrict = {}\n",
                    self.opts.strict
                ),
            )?;
            self.nodes[i].synwall = Some(self.run_node(&self.edges[i], &cfg)?);
        }
        Ok(())
    }

    /// SIGKILL edge `i`'s synwall daemon: its programs stay attached (pinned), its health fails.
    pub fn kill_synwall(&mut self, i: usize) -> Result<()> {
        let d = self.nodes[i].synwall.take().context("edge not running")?;
        d.signal(nix::sys::signal::Signal::SIGKILL)?;
        drop(d);
        Ok(())
    }

    /// SIGSTOP or SIGCONT edge `i`'s synwall daemon.
    pub fn signal_synwall(&self, i: usize, sig: nix::sys::signal::Signal) -> Result<()> {
        self.nodes[i]
            .synwall
            .as_ref()
            .context("edge not running")?
            .signal(sig)
    }

    /// SIGSTOP or SIGCONT the healthcheck processes of edge `i`'s ExaBGP (its children): while
    /// they are stopped, ExaBGP keeps the session and the route as they are, whatever the node's
    /// health (a watcher that does not notice).
    pub fn signal_healthchecks(&self, i: usize, sig: nix::sys::signal::Signal) -> Result<usize> {
        let parent = self.nodes[i].exabgp.as_ref().context("no ExaBGP")?.id();
        let mut n = 0;
        for e in std::fs::read_dir("/proc")? {
            let e = e?;
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // Field 4 (after the parenthesised name) is the parent's pid.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if ppid == Some(parent) && cmdline.windows(11).any(|w| w == b"healthcheck") {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)?;
                n += 1;
            }
        }
        ensure!(n > 0, "edge {}: no healthcheck process under ExaBGP", i + 1);
        Ok(n)
    }

    /// `synwall stop --detach` on edge `i`: the daemon stops and the programs go.
    pub fn stop_detach(&mut self, i: usize) -> Result<()> {
        let cfg = self.edge_config(i).display().to_string();
        let run_dir = self.run_dir().display().to_string();
        let exe = self.opts.exe.display().to_string();
        self.edges[i].run(&[
            &exe,
            "stop",
            "--config",
            &cfg,
            "--run-dir",
            &run_dir,
            "--detach",
        ])?;
        // The daemon has exited; dropping its handle reaps it.
        self.nodes[i].synwall.take();
        Ok(())
    }

    /// Edge `i`'s counters (`synwall status --json`), by name; empty when it has no pins.
    pub fn edge_counters(&self, i: usize) -> Result<BTreeMap<String, u64>> {
        self.counters(&self.edges[i], &self.edge_config(i), "edge")
    }

    /// The backend's counters.
    pub fn backend_counters(&self) -> Result<BTreeMap<String, u64>> {
        self.counters(&self.be, &self.dir.join("be.toml"), "backend")
    }

    fn counters(&self, ns: &Netns, cfg: &Path, role: &str) -> Result<BTreeMap<String, u64>> {
        let cfg = cfg.display().to_string();
        let exe = self.opts.exe.display().to_string();
        let Ok(out) = ns.run(&[&exe, "status", "--json", "--config", &cfg]) else {
            return Ok(BTreeMap::new());
        };
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let mut m = BTreeMap::new();
        for p in v["programs"].as_array().into_iter().flatten() {
            if p["role"] == role {
                for (k, c) in p["counters"].as_object().into_iter().flatten() {
                    m.insert(k.clone(), c.as_u64().unwrap_or(0));
                }
            }
        }
        Ok(m)
    }

    /// The edges (0-based) the router's route to the service goes through now, per family.
    pub fn nexthops(&self, v6: bool) -> Result<BTreeSet<usize>> {
        let out = self.rtr.run(&[
            "ip",
            "-j",
            if v6 { "-6" } else { "-4" },
            "route",
            "show",
            if v6 { PREFIX_V6 } else { PREFIX_V4 },
        ])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("ip -j route: {}", String::from_utf8_lossy(&out.stdout)))?;
        let mut edges = BTreeSet::new();
        for r in v.as_array().into_iter().flatten() {
            let hops: Vec<&serde_json::Value> = match r["nexthops"].as_array() {
                Some(h) => h.iter().collect(),
                None => vec![r],
            };
            for h in hops {
                if let Some(n) = h["dev"]
                    .as_str()
                    .and_then(|d| d.strip_prefix('r'))
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    edges.insert(n - 1);
                }
            }
        }
        Ok(edges)
    }

    /// Poll the router's routes (both families) until `want` holds for each; returns how long
    /// each family took from `since`, or fails after `limit`.
    pub fn wait_routes(
        &self,
        since: Instant,
        limit: Duration,
        want: impl Fn(&BTreeSet<usize>) -> bool,
    ) -> Result<[Duration; 2]> {
        let mut done: [Option<Duration>; 2] = [None, None];
        loop {
            for (f, d) in done.iter_mut().enumerate() {
                if d.is_none() && want(&self.nexthops(f == 1)?) {
                    *d = Some(since.elapsed());
                }
            }
            if let [Some(a), Some(b)] = done {
                return Ok([a, b]);
            }
            if since.elapsed() > limit {
                bail!(
                    "routes not as wanted within {limit:?}: v4 {:?}, v6 {:?}; bird: {}",
                    self.nexthops(false)?,
                    self.nexthops(true)?,
                    self.birdc(&["show", "protocols"]).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Which edges each client port's segments went through so far.
    pub fn flows(&self) -> Result<Flows> {
        let mut f = Flows::default();
        for n in 1..=EDGES {
            for (fam, v6) in [("4", false), ("6", true)] {
                for kind in ["syn", "rest"] {
                    let out = self.rtr.run(&[
                        "nft",
                        "-j",
                        "list",
                        "set",
                        "inet",
                        "swbgp",
                        &format!("{kind}{fam}_r{n}"),
                    ])?;
                    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
                    let map = if kind == "syn" {
                        &mut f.syn
                    } else {
                        &mut f.rest
                    };
                    for item in v["nftables"].as_array().into_iter().flatten() {
                        for e in item["set"]["elem"].as_array().into_iter().flatten() {
                            // Plain elements are numbers; dynamic ones may come wrapped.
                            let port = e.as_u64().or_else(|| e["elem"]["val"].as_u64());
                            if let Some(p) = port {
                                map.entry((v6, p as u16)).or_default().insert(n - 1);
                            }
                        }
                    }
                }
            }
        }
        Ok(f)
    }

    /// Log files of the lab's daemons, for a failure's message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for n in 1..=EDGES {
            let p = self.dir.join(format!("exabgp-e{n}.log"));
            if let Ok(t) = std::fs::read_to_string(&p) {
                let tail: Vec<&str> = t.lines().rev().take(15).collect();
                s.push_str(&format!("--- {} (last lines)\n", p.display()));
                for l in tail.iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }

    fn detach_all(&self) {
        let exe = self.opts.exe.display().to_string();
        let run_dir = self.run_dir().display().to_string();
        let mut nodes: Vec<PathBuf> = (0..EDGES).map(|i| self.edge_config(i)).collect();
        nodes.push(self.dir.join("be.toml"));
        for cfg in nodes.iter().filter(|c| c.exists()) {
            let _ = std::process::Command::new(&exe)
                .args(["stop", "--detach", "--run-dir", &run_dir, "--config"])
                .arg(cfg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for AnycastLab {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(c) = n.exabgp.take() {
                stop_child(c);
            }
            n.synwall.take();
        }
        self.backend.take();
        self.pass.clear();
        if let Some(c) = self.bird.take() {
            stop_child(c);
        }
        self.server.take();
        // Killed daemons leave their pins: remove them (and the backend's) for good.
        self.detach_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the scenario does and how long it waits.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Load running between events, seconds.
    pub settle: Duration,
    /// A new short connection every `gap`.
    pub gap: Duration,
    /// Long-lived transfers per family.
    pub long: usize,
    /// Straddling handshakes per family whose SYN the leaving edge answered.
    pub straddling: usize,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            settle: Duration::from_secs(3),
            gap: Duration::from_millis(20),
            long: 6,
            straddling: 2,
        }
    }
}

/// One event of the scenario and what the clients saw around it.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// What happened.
    pub event: String,
    /// The edge (1-based).
    pub edge: usize,
    /// From the action to the router's route changed, ms (IPv4, IPv6).
    pub route_ms: [f64; 2],
    /// Seconds since the load's start: the phase began (straddling handshakes opened).
    pub from: f64,
    /// The action.
    pub at: f64,
    /// The route changed (the later family).
    pub changed: f64,
    /// End of the phase.
    pub until: f64,
    /// Connections started after the route changed whose SYN went to this edge.
    pub syn_after: u64,
    /// Short connections started in the phase.
    pub connections: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Slowest connect among them, ms.
    pub max_connect_ms: f64,
    /// Their retransmitted segments (SYNs included).
    pub retransmits: u64,
    /// Connections started in the phase whose SYN this edge answered and whose other segments
    /// all went through another edge (the handshake crossed edges), straddling ones included.
    pub crossed: u64,
    /// Of those, failed.
    pub crossed_failed: u64,
    /// Long-lived transfers that stalled for good in the phase (their last answer came in it).
    pub long_lost: u64,
    /// The client namespace's SYN retransmissions during the phase (`TcpExt:TCPSynRetrans`).
    pub syn_retrans: u64,
    /// Its retransmitted segments during the phase (`Tcp:RetransSegs`).
    pub retrans_segs: u64,
}

/// The scenario's result.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// Strict mode.
    pub strict: bool,
    /// The events.
    pub phases: Vec<Phase>,
    /// Every connection.
    pub conns: Vec<Conn>,
    /// Short connections, all of them.
    pub connections: u64,
    /// Failed (any kind).
    pub failed: Vec<String>,
    /// Long-lived transfers; of those that moved to another edge, and that failed.
    pub long: u64,
    /// Long-lived transfers that went through two edges or more.
    pub long_moved: u64,
    /// Long-lived transfers that failed.
    pub long_failed: u64,
    /// Longest wait of a long-lived transfer that did not fail, ms.
    pub long_max_gap_ms: f64,
    /// Every edge's counters at the end (`e1`..), those still pinned.
    pub edge_counters: BTreeMap<String, BTreeMap<String, u64>>,
    /// Handshakes that crossed edges at any time (SYN at one, the rest at another).
    pub crossed: u64,
    /// Connections (any kind) that failed and had moved or crossed.
    pub failed_moved: u64,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Open straddling handshakes (IPv4 and IPv6 in turn) until edge `edge` answered `want` of each
/// family; returns all of them (to be finished after the routing change).
fn straddle(lab: &AnycastLab, load: &Load, edge: usize, want: usize) -> Result<Vec<Held>> {
    let targets = lab.targets();
    let mut held: Vec<Held> = Vec::new();
    let mut got = [0usize; 2];
    let mut i = 0u32;
    while got.iter().any(|&g| g < want) {
        ensure!(
            i < 400,
            "edge {} answered only {got:?} of 400 straddling SYNs",
            edge + 1
        );
        let v6 = got[0] >= want || (got[1] < want && i % 2 == 1);
        let h = load.hold(targets[usize::from(v6)], 0x5eed_0000 + i)?;
        i += 1;
        // The SYN went out before connect returned; the router's set has it by now.
        let f = lab.flows()?;
        if f.syn_edges(v6, h.sport()).contains(&edge) {
            got[usize::from(v6)] += 1;
        }
        held.push(h);
    }
    Ok(held)
}

/// The client namespace's (SYN retransmissions, retransmitted segments).
fn retrans(lab: &AnycastLab) -> Result<(u64, u64)> {
    let c = lab.cli.net_counters()?;
    Ok((
        c.get("TcpExt:TCPSynRetrans").copied().unwrap_or(0),
        c.get("Tcp:RetransSegs").copied().unwrap_or(0),
    ))
}

struct Mark {
    event: String,
    edge: usize,
    route: [Duration; 2],
    from: f64,
    at: f64,
    until: f64,
    rt0: (u64, u64),
    rt1: (u64, u64),
}

/// Run the scenario on a fresh lab: edges 1 and 2 announce; load starts; edge 3 joins; edge 1's
/// daemon is killed (health fails, its route is withdrawn) and started again (it adopts its pins
/// and announces again); edge 2 is stopped with `synwall stop --detach`. Before each withdrawal,
/// straddling handshakes are opened until the leaving edge answered some of each family.
pub fn run(lab: &mut AnycastLab, s: &Scenario) -> Result<Outcome> {
    let limit = Duration::from_secs(30);
    lab.start_edge(0)?;
    lab.start_edge(1)?;
    lab.wait_routes(Instant::now(), limit, |e| e.len() == 2)
        .with_context(|| lab.logs())?;
    // One BGP session per edge, each a dynamic protocol of the `neighbor range`.
    let sessions = lab.birdc(&["show", "protocols"])?;
    ensure!(
        sessions.matches("Established").count() == 2,
        "two established sessions expected: {sessions}"
    );
    let load = Load::start(&lab.cli, &lab.targets(), s.gap, s.long)?;
    std::thread::sleep(s.settle);
    let mut marks: Vec<Mark> = Vec::new();
    let mut phase = |lab: &mut AnycastLab,
                     event: &str,
                     edge: usize,
                     act: &mut dyn FnMut(&mut AnycastLab) -> Result<()>,
                     want: &dyn Fn(&BTreeSet<usize>) -> bool|
     -> Result<()> {
        let rt0 = retrans(lab)?;
        let from = load.now();
        let leaving = !event.contains("join");
        let held = if leaving {
            straddle(lab, &load, edge, s.straddling)?
        } else {
            Vec::new()
        };
        let at = load.now();
        let t = Instant::now();
        act(lab)?;
        let route = lab
            .wait_routes(t, limit, want)
            .with_context(|| lab.logs())?;
        for h in held {
            h.finish(&load.records);
        }
        std::thread::sleep(s.settle);
        marks.push(Mark {
            event: event.to_string(),
            edge,
            route,
            from,
            at,
            until: load.now(),
            rt0,
            rt1: retrans(lab)?,
        });
        Ok(())
    };
    phase(
        lab,
        "joins (synwall run + ExaBGP started)",
        2,
        &mut |l| l.start_edge(2),
        &|e| e.contains(&2),
    )?;
    phase(
        lab,
        "daemon killed (SIGKILL; programs stay attached)",
        0,
        &mut |l| l.kill_synwall(0),
        &|e| !e.contains(&0),
    )?;
    phase(
        lab,
        "rejoins (synwall run adopts its pins)",
        0,
        &mut |l| l.start_synwall(0),
        &|e| e.contains(&0),
    )?;
    phase(
        lab,
        "synwall stop --detach",
        1,
        &mut |l| l.stop_detach(1),
        &|e| !e.contains(&1),
    )?;
    let conns = load.finish();
    let flows = lab.flows()?;
    let mut edge_counters = BTreeMap::new();
    for i in 0..EDGES {
        let c = lab.edge_counters(i)?;
        if !c.is_empty() {
            edge_counters.insert(format!("e{}", i + 1), c);
        }
    }
    Ok(outcome(
        lab.opts.strict,
        &marks,
        conns,
        &flows,
        edge_counters,
    ))
}

fn outcome(
    strict: bool,
    marks: &[Mark],
    conns: Vec<Conn>,
    flows: &Flows,
    edge_counters: BTreeMap<String, BTreeMap<String, u64>>,
) -> Outcome {
    let crossed_from = |c: &Conn, edge: usize| {
        let syn = flows.syn_edges(c.v6, c.sport);
        let rest = flows.rest_edges(c.v6, c.sport);
        syn.contains(&edge) && !rest.is_empty() && !rest.contains(&edge)
    };
    let moved = |c: &Conn| {
        let mut all = flows.syn_edges(c.v6, c.sport);
        all.extend(flows.rest_edges(c.v6, c.sport));
        all.len() > 1
    };
    let phases = marks
        .iter()
        .map(|m| {
            let inside: Vec<&Conn> = conns
                .iter()
                .filter(|c| c.kind != Kind::Long && c.start >= m.from && c.start < m.until)
                .collect();
            let crossed: Vec<&&Conn> = inside.iter().filter(|c| crossed_from(c, m.edge)).collect();
            Phase {
                event: m.event.clone(),
                edge: m.edge + 1,
                route_ms: [ms(m.route[0]), ms(m.route[1])],
                from: m.from,
                at: m.at,
                changed: m.at + m.route[0].max(m.route[1]).as_secs_f64(),
                until: m.until,
                syn_after: inside
                    .iter()
                    .filter(|c| {
                        c.start > m.at + m.route[0].max(m.route[1]).as_secs_f64()
                            && flows.syn_edges(c.v6, c.sport).contains(&m.edge)
                    })
                    .count() as u64,
                connections: inside.len() as u64,
                failed: inside.iter().filter(|c| c.error.is_some()).count() as u64,
                max_connect_ms: inside.iter().map(|c| c.connect_ms).fold(0.0, f64::max),
                retransmits: inside.iter().map(|c| u64::from(c.retrans)).sum(),
                crossed: crossed.len() as u64,
                crossed_failed: crossed.iter().filter(|c| c.error.is_some()).count() as u64,
                long_lost: conns
                    .iter()
                    .filter(|c| {
                        let stalled = c.end - churn::LONG_STALL.as_secs_f64();
                        c.kind == Kind::Long
                            && c.error.is_some()
                            && stalled >= m.from
                            && stalled < m.until
                    })
                    .count() as u64,
                syn_retrans: m.rt1.0.saturating_sub(m.rt0.0),
                retrans_segs: m.rt1.1.saturating_sub(m.rt0.1),
            }
        })
        .collect();
    let long: Vec<&Conn> = conns.iter().filter(|c| c.kind == Kind::Long).collect();
    let failed: Vec<String> = conns
        .iter()
        .filter_map(|c| {
            c.error.as_ref().map(|e| {
                format!(
                    "{:?} {} port {} at {:.2} s (SYN via {:?}, rest via {:?}): {e}",
                    c.kind,
                    if c.v6 { "IPv6" } else { "IPv4" },
                    c.sport,
                    c.start,
                    flows.syn_edges(c.v6, c.sport),
                    flows.rest_edges(c.v6, c.sport)
                )
            })
        })
        .collect();
    let crossed = conns
        .iter()
        .filter(|c| {
            let syn = flows.syn_edges(c.v6, c.sport);
            let rest = flows.rest_edges(c.v6, c.sport);
            !rest.is_empty() && syn.iter().any(|e| !rest.contains(e))
        })
        .count() as u64;
    Outcome {
        strict,
        phases,
        connections: conns.iter().filter(|c| c.kind == Kind::Short).count() as u64,
        failed,
        long: long.len() as u64,
        long_moved: long.iter().filter(|c| moved(c)).count() as u64,
        long_failed: long.iter().filter(|c| c.error.is_some()).count() as u64,
        long_max_gap_ms: long
            .iter()
            .filter(|c| c.error.is_none())
            .map(|c| c.max_gap_ms)
            .fold(0.0, f64::max),
        edge_counters,
        crossed,
        failed_moved: conns
            .iter()
            .filter(|c| c.error.is_some() && moved(c))
            .count() as u64,
        conns,
    }
}

impl Outcome {
    /// The report as text: one line per event, then the totals.
    pub fn text(&self) -> String {
        let mut s = format!(
            "anycast lab, {} mode: {} short connections, {} long-lived transfers, {} failed\n\n",
            if self.strict { "strict" } else { "default" },
            self.connections,
            self.long,
            self.failed.len()
        );
        s.push_str("| edge | event | route changed after (IPv4 / IPv6) | connections | failed | max connect | SYN retransmits | retransmitted segments | handshakes crossing edges (failed) | long-lived lost |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in &self.phases {
            s.push_str(&format!(
                "| e{} | {} | {:.0} / {:.0} ms | {} | {} | {:.1} ms | {} | {} | {} ({}) | {} |\n",
                p.edge,
                p.event,
                p.route_ms[0],
                p.route_ms[1],
                p.connections,
                p.failed,
                p.max_connect_ms,
                p.syn_retrans,
                p.retrans_segs,
                p.crossed,
                p.crossed_failed,
                p.long_lost
            ));
        }
        s.push_str(&format!(
            "\nlong-lived transfers: {} of {} moved to another edge, {} failed, longest wait {:.0} ms (of those that did not fail)\n",
            self.long_moved, self.long, self.long_failed, self.long_max_gap_ms
        ));
        s.push_str(&format!(
            "handshakes that crossed edges (SYN answered by one, ACK carried by another): {}\n",
            self.crossed
        ));
        for (e, c) in &self.edge_counters {
            let pick: Vec<String> = [
                "syn_answered",
                "fwd_non_syn",
                "strict_ack_valid",
                "strict_fwd_cached",
                "strict_drop",
            ]
            .iter()
            .filter(|k| c.get(**k).copied().unwrap_or(0) > 0)
            .map(|k| format!("{k}={}", c[*k]))
            .collect();
            s.push_str(&format!("{e}: {}\n", pick.join(" ")));
        }
        for f in &self.failed {
            s.push_str(&format!("FAILED {f}\n"));
        }
        s
    }
}

/// The fail-safe of a stale edge behind ECMP, and what health does about it.
#[derive(Clone, Debug, Serialize)]
pub struct Stale {
    /// The frozen edge (1-based).
    pub edge: usize,
    /// From the freeze to the edge's first `syn_pass_stale`, seconds.
    pub stale_after_s: f64,
    /// How long the edge served stale (its route kept by a frozen watcher), seconds.
    pub stale_for_s: f64,
    /// Connections started while it was stale whose SYN went to it; all of them succeeded if
    /// `failed` is empty.
    pub through_stale: u64,
    /// Short connections of the whole run.
    pub connections: u64,
    /// Every failed connection.
    pub failed: Vec<String>,
    /// The stale edge's counters over the stale window (those that moved).
    pub edge_delta: BTreeMap<String, u64>,
    /// The backend's counters over the same window (those that moved).
    pub backend_delta: BTreeMap<String, u64>,
    /// From resuming the healthcheck (the daemon still frozen) to the route gone, ms.
    pub withdraw_ms: [f64; 2],
    /// From resuming the daemon to the route back, ms.
    pub announce_ms: [f64; 2],
}

fn delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    b.iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(a.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Edges 1 and 2 announce; under load, edge 1's healthcheck is frozen (ExaBGP keeps its route, as
/// a watcher that does not notice would) and its daemon too, until its salts run out; it serves
/// stale for `s.settle`. Then the healthcheck resumes with the daemon still frozen (the route
/// must go: `/healthz` does not answer), and the daemon resumes (the route must come back).
pub fn stale_edge(lab: &mut AnycastLab, s: &Scenario) -> Result<Stale> {
    use nix::sys::signal::Signal::{SIGCONT, SIGSTOP};
    let limit = Duration::from_secs(30);
    lab.start_edge(0)?;
    lab.start_edge(1)?;
    lab.wait_routes(Instant::now(), limit, |e| e.len() == 2)
        .with_context(|| lab.logs())?;
    let load = Load::start(&lab.cli, &lab.targets(), s.gap, s.long)?;
    std::thread::sleep(s.settle);
    lab.signal_healthchecks(0, SIGSTOP)?;
    lab.signal_synwall(0, SIGSTOP)?;
    let frozen = Instant::now();
    let ahead = lab.opts.salts_ahead_seconds.unwrap_or(600);
    let stale_limit = Duration::from_secs(ahead + 4 * lab.opts.epoch_seconds + 10);
    let (e0, b0) = loop {
        let e = lab.edge_counters(0)?;
        if e.get("syn_pass_stale").copied().unwrap_or(0) > 0 {
            break (e, lab.backend_counters()?);
        }
        ensure!(
            frozen.elapsed() < stale_limit,
            "edge 1 not stale {stale_limit:?} after its daemon froze"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stale_after_s = frozen.elapsed().as_secs_f64();
    let (from, t_stale) = (load.now(), Instant::now());
    std::thread::sleep(s.settle);
    // The connections counted are those started before `until`; the counters are read a moment
    // later, so each of their SYNs has been through the edge by then.
    let until = load.now();
    let stale_for_s = t_stale.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    let (e1, b1) = (lab.edge_counters(0)?, lab.backend_counters()?);
    ensure!(
        lab.nexthops(false)?.contains(&0) && lab.nexthops(true)?.contains(&0),
        "edge 1's route went while its watcher was frozen"
    );
    let t = Instant::now();
    lab.signal_healthchecks(0, SIGCONT)?;
    let withdraw = lab
        .wait_routes(t, limit, |e| !e.contains(&0))
        .with_context(|| lab.logs())?;
    let t = Instant::now();
    lab.signal_synwall(0, SIGCONT)?;
    let announce = lab
        .wait_routes(t, limit, |e| e.contains(&0))
        .with_context(|| lab.logs())?;
    std::thread::sleep(Duration::from_secs(1));
    let conns = load.finish();
    let flows = lab.flows()?;
    let through_stale = conns
        .iter()
        .filter(|c| {
            c.kind == Kind::Short
                && c.start >= from
                && c.start < until
                && flows.syn_edges(c.v6, c.sport).contains(&0)
        })
        .count() as u64;
    Ok(Stale {
        edge: 1,
        stale_after_s,
        stale_for_s,
        through_stale,
        connections: conns.iter().filter(|c| c.kind == Kind::Short).count() as u64,
        failed: conns
            .iter()
            .filter_map(|c| {
                c.error
                    .as_ref()
                    .map(|e| format!("{:?} port {} at {:.2} s: {e}", c.kind, c.sport, c.start))
            })
            .collect(),
        edge_delta: delta(&e0, &e1),
        backend_delta: delta(&b0, &b1),
        withdraw_ms: [ms(withdraw[0]), ms(withdraw[1])],
        announce_ms: [ms(announce[0]), ms(announce[1])],
    })
}

impl Stale {
    /// The report as text.
    pub fn text(&self) -> String {
        let show = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut s = format!(
            "stale edge e{}: salts ran out {:.1} s after its daemon froze; it served {:.1} s stale \
             with its route kept (watcher frozen)\n\
             connections: {} in all, {} failed; {} started while it was stale went through it\n\
             e{} while stale: {}\nbackend while stale: {}\n\
             healthcheck resumed, daemon still frozen: route gone after {:.0} / {:.0} ms (IPv4 / IPv6)\n\
             daemon resumed: route back after {:.0} / {:.0} ms\n",
            self.edge,
            self.stale_after_s,
            self.stale_for_s,
            self.connections,
            self.failed.len(),
            self.through_stale,
            self.edge,
            show(&self.edge_delta),
            show(&self.backend_delta),
            self.withdraw_ms[0],
            self.withdraw_ms[1],
            self.announce_ms[0],
            self.announce_ms[1],
        );
        for f in &self.failed {
            s.push_str(&format!("FAILED {f}\n"));
        }
        s
    }
}
