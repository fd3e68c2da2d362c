//! Network-namespace plumbing: create namespaces and veth links, run commands and closures inside a
//! namespace, and tear everything down on drop. The end-to-end tests, the demo and the lab
//! benchmarks build their topologies with this; traffic only ever goes to addresses inside them.
//! Frames for them come from [`frame`] (the only frame builder: the lab's floods need it at run
//! time, the tests reach it through `synwall-testkit`).

pub mod daemon;
pub mod frame;
pub mod load;
pub mod nft;
pub mod packet;
pub mod tcp;
pub mod topo;

pub use daemon::{Counts, Daemon};

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique short prefix for this process's namespaces and links (names are limited to 15 chars
/// for interfaces).
pub fn unique_prefix() -> String {
    format!(
        "sw{}{}",
        std::process::id() % 100_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn check(what: &str, out: Output) -> Result<Output> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

/// Run a host command, failing with its stderr.
pub fn sh(args: &[&str]) -> Result<Output> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("cannot run {}", args[0]))?;
    check(&args.join(" "), out)
}

/// A named network namespace, deleted (with everything in it) when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create namespace `name` (a stale one of the same name is removed first) with loopback up.
    pub fn create(name: &str) -> Result<Self> {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its bind-mount path (`nsenter --net=PATH`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A command that will run inside the namespace (via `nsenter`, which keeps bpffs pins
    /// visible, unlike `ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Run a command inside the namespace and wait for it; fails with its stderr.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let out = self
            .command(args[0])
            .args(&args[1..])
            .output()
            .with_context(|| format!("cannot run {} in {}", args[0], self.name))?;
        check(&format!("[{}] {}", self.name, args.join(" ")), out)
    }

    /// Start a command inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> Result<Child> {
        self.command(args[0])
            .args(&args[1..])
            .spawn()
            .with_context(|| format!("cannot start {} in {}", args[0], self.name))
    }

    /// Set a sysctl inside the namespace (`net.*` sysctls are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// Every counter of the namespace's `/proc/net/snmp` and `/proc/net/netstat` (both are per
    /// network namespace), keyed `Group:Name` (`Tcp:PassiveOpens`, `TcpExt:SyncookiesSent`).
    pub fn net_counters(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let mut out = std::collections::BTreeMap::new();
        for file in ["/proc/net/snmp", "/proc/net/netstat"] {
            let text = String::from_utf8_lossy(&self.run(&["cat", file])?.stdout).into_owned();
            // Each group is a line of names then a line of values, both led by `Group:`.
            let lines: Vec<&str> = text.lines().collect();
            for pair in lines.chunks(2) {
                let [names, values] = pair else { continue };
                let Some((group, names)) = names.split_once(':') else {
                    continue;
                };
                for (n, v) in names
                    .split_whitespace()
                    .zip(values.split_whitespace().skip(1))
                {
                    if let Ok(v) = v.parse() {
                        out.insert(format!("{group}:{n}"), v);
                    }
                }
            }
        }
        Ok(out)
    }

    /// One of [`Netns::net_counters`].
    pub fn net_counter(&self, key: &str) -> Result<u64> {
        self.net_counters()?
            .get(key)
            .copied()
            .with_context(|| format!("no {key} in /proc/net/snmp or /proc/net/netstat"))
    }

    /// Run `f` on a new thread that has joined this namespace (sockets it opens live there).
    pub fn enter<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        let file =
            File::open(self.path()).with_context(|| format!("open {}", self.path().display()))?;
        std::thread::spawn(move || -> Result<R> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread in namespace panicked"))?
    }

    /// Like [`Netns::enter`] but returns the join handle, for long-running work (servers).
    pub fn spawn_thread<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<R>>> {
        let file =
            File::open(self.path()).with_context(|| format!("open {}", self.path().display()))?;
        Ok(std::thread::spawn(move || -> Result<R> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            Ok(f())
        }))
    }

    /// A TCP listener on `addr` inside the namespace.
    pub fn listen(&self, addr: std::net::SocketAddr) -> Result<std::net::TcpListener> {
        self.enter(move || std::net::TcpListener::bind(addr))?
            .with_context(|| format!("bind {addr} in {}", self.name))
    }

    /// Add an address to an interface and bring it up.
    pub fn addr(&self, dev: &str, cidr: &str) -> Result<()> {
        if cidr.contains(':') {
            // nodad: the address is usable at once instead of after duplicate detection.
            self.run(&["ip", "-6", "addr", "add", cidr, "dev", dev, "nodad"])?;
        } else {
            self.run(&["ip", "-4", "addr", "add", cidr, "dev", dev])?;
        }
        self.run(&["ip", "link", "set", dev, "up"]).map(|_| ())
    }

    /// Add a route.
    pub fn route(&self, args: &[&str]) -> Result<()> {
        let mut a = vec!["ip", "route", "add"];
        if args.first().is_some_and(|d| d.contains(':')) {
            a = vec!["ip", "-6", "route", "add"];
        }
        a.extend_from_slice(args);
        self.run(&a).map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Join `a:a_if` and `b:b_if` with a veth pair as `ip link add` makes it: TX checksum offload
/// on, links down.
pub fn veth_add(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    sh(&[
        "ip",
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])
    .map(drop)
}

/// Join `a:a_if` and `b:b_if` with a veth pair (both ends up, TX checksum offload off so locally
/// made segments carry full checksums, which XDP verifies).
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    veth_add(a, a_if, b, b_if)?;
    for (ns, dev) in [(a, a_if), (b, b_if)] {
        ns.run(&["ip", "link", "set", dev, "up"])?;
        ns.run(&["ethtool", "-K", dev, "tx", "off"])?;
    }
    Ok(())
}
