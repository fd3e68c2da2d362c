//! The `ecmp` lab topology: six named namespaces, private addresses only.
//!
//! ```text
//!  att  a0 10.88.1.2 ──┐                 ┌── x1 10.88.11.2 [edge1] y1 10.88.21.1 ── b1 10.88.21.2 ┐
//!  (SYN generator)     ra  [rtr]  r1/r2 ─┤                                                      [be] lo 10.88.100.1:80
//!  cli  c0 10.88.2.2 ──┘  ECMP to svc    └── x2 10.88.12.2 [edge2] y2 10.88.22.1 ── b2 10.88.22.2 ┘   (nginx)
//!  (curl, wrk)
//! ```
//!
//! IPv6 mirrors it in fd88:N::/64 (service fd88:100::1). Spoofed flood sources live in
//! 10.88.128.0/17; `rtr` routes them back to `att`, so every answer stays inside the lab. The
//! path to the service is chosen with [`Paths`]: edge1 only, ECMP over both edges
//! (`fib_multipath_hash_policy = 1`, L4 hash), or SYNs via edge1 and everything else via edge2.
//! Namespaces are named `<prefix><role>`; [`down`] removes everything a prefix made.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use synwall_netns::{nft, topo, veth, Netns};

/// Service IPv4 address (nginx, port [`PORT`]).
pub const SVC_V4: &str = "10.88.100.1";
/// Service IPv6 address.
pub const SVC_V6: &str = "fd88:100::1";
/// Service port.
pub const PORT: u16 = 80;
/// Port of the TCP_INFO server of the quality matrix (next to nginx, protected too).
pub const INFO_PORT: u16 = 8080;
/// The client namespace's networks (curl, wrk): one load generator standing in for many
/// clients, so the edges exempt it from the per-prefix reflection budget (`--allow`), as an
/// operator would a known busy client network.
pub const CLIENT_NETS: [&str; 2] = ["10.88.2.0/24", "fd88:2::/64"];
/// Spoofed flood sources (routed back to the attacker namespace).
pub const SPOOF_V4: &str = "10.88.128.0/17";
/// The namespace roles, in creation order.
pub const ROLES: [&str; 6] = ["att", "cli", "rtr", "e1", "e2", "be"];
/// Size of the bulk file nginx serves (sparse; downloads are bounded in time).
pub const BIG_BYTES: u64 = 4 << 30;

/// Where traffic to the service goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paths {
    /// Everything through edge1 (both directions).
    One,
    /// ECMP over edge1 and edge2 (per-flow L4 hash), return traffic too.
    Ecmp,
    /// SYNs through edge1, everything else (the handshake ACKs) through edge2.
    Crossing,
}

/// The lab. Dropping it removes the namespaces (unless [`Lab::keep`] was called).
pub struct Lab {
    /// The prefix of every name.
    pub prefix: String,
    /// Attacker (the SYN generator and its sink, or trafgen).
    pub att: Netns,
    /// Clients (curl, wrk).
    pub cli: Netns,
    /// Router with the ECMP route.
    pub rtr: Netns,
    /// The two edges.
    pub edges: [Netns; 2],
    /// Backend with nginx.
    pub be: Netns,
    /// Working directory (nginx.conf, www/, secret, trafgen configs).
    pub dir: PathBuf,
    nginx: Option<Child>,
    /// The sink on `a0` (counts and drops the SYN+ACKs that come back).
    sink: Option<crate::livegen::Sink>,
    /// `xdp_pass` on the router's `ra`: the generator's XDP_TX frames reach it only so.
    ra_pass: Option<crate::livegen::Sink>,
    /// The LIVE_FRAMES generator, loaded for the lab's flood (from `a0` to the service).
    syngen: Option<crate::livegen::SynGen>,
}

/// The lab's state directory for `prefix` (`synwall-lab down` finds nginx's pid there).
pub fn state_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("synwall-lab-{prefix}"))
}

fn run_in(ns: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .with_context(|| format!("ip netns exec {ns}"))?;
    if !out.status.success() {
        bail!(
            "[{ns}] {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Lab {
    /// Build the topology and start nginx in `be`.
    pub fn up(prefix: &str) -> Result<Lab> {
        let dir = state_dir(prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).context("lab state directory")?;
        let ns = |r: &str| Netns::create(&format!("{prefix}{r}"));
        let mut lab = Lab {
            prefix: prefix.to_string(),
            att: ns("att")?,
            cli: ns("cli")?,
            rtr: ns("rtr")?,
            edges: [ns("e1")?, ns("e2")?],
            be: ns("be")?,
            dir,
            nginx: None,
            sink: None,
            ra_pass: None,
            syngen: None,
        };
        lab.wire()?;
        lab.attacker()?;
        lab.set_paths(Paths::One)?;
        lab.start_nginx()?;
        Ok(lab)
    }

    fn wire(&self) -> Result<()> {
        let (att, cli, rtr, be) = (&self.att, &self.cli, &self.rtr, &self.be);
        topo::router(rtr)?;
        rtr.sysctl("net.ipv4.fib_multipath_hash_policy", "1")?;
        rtr.sysctl("net.ipv6.fib_multipath_hash_policy", "1")?;
        veth(att, "a0", rtr, "ra")?;
        veth(cli, "c0", rtr, "rc")?;
        att.addr("a0", "10.88.1.2/24")?;
        rtr.addr("ra", "10.88.1.1/24")?;
        cli.addr("c0", "10.88.2.2/24")?;
        cli.addr("c0", "fd88:2::2/64")?;
        rtr.addr("rc", "10.88.2.1/24")?;
        rtr.addr("rc", "fd88:2::1/64")?;
        att.route(&["default", "via", "10.88.1.1"])?;
        cli.route(&["default", "via", "10.88.2.1"])?;
        cli.route(&["::/0", "via", "fd88:2::1"])?;
        rtr.route(&[SPOOF_V4, "via", "10.88.1.2"])?;
        // The attacker drops what comes back (after counting it, see `flood`) and never answers.
        att.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        for (i, e) in self.edges.iter().enumerate() {
            let n = i + 1;
            topo::router(e)?;
            let (r, x, y, b) = (
                format!("r{n}"),
                format!("x{n}"),
                format!("y{n}"),
                format!("b{n}"),
            );
            veth(rtr, &r, e, &x)?;
            veth(e, &y, be, &b)?;
            rtr.addr(&r, &format!("10.88.1{n}.1/24"))?;
            rtr.addr(&r, &format!("fd88:1{n}::1/64"))?;
            e.addr(&x, &format!("10.88.1{n}.2/24"))?;
            e.addr(&x, &format!("fd88:1{n}::2/64"))?;
            e.addr(&y, &format!("10.88.2{n}.1/24"))?;
            e.addr(&y, &format!("fd88:2{n}::1/64"))?;
            be.addr(&b, &format!("10.88.2{n}.2/24"))?;
            be.addr(&b, &format!("fd88:2{n}::2/64"))?;
            e.route(&["default", "via", &format!("10.88.1{n}.1")])?;
            e.route(&["::/0", "via", &format!("fd88:1{n}::1")])?;
            e.route(&[&format!("{SVC_V4}/32"), "via", &format!("10.88.2{n}.2")])?;
            e.route(&[&format!("{SVC_V6}/128"), "via", &format!("fd88:2{n}::2")])?;
        }
        topo::router(be)?;
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
        be.sysctl("net.ipv4.tcp_syncookies", "1")?;
        be.sysctl("net.core.somaxconn", "4096")?;
        // No TIME_WAIT on the server (nginx closes first with `Connection: close`): the client
        // reuses ports after ~14k connections, and a handshake ACK that synwall's backend hands
        // to a 4-tuple still in TIME_WAIT stalls for seconds (the kernel would have reused it on
        // the SYN, which synwall's backend never sees). Same setting for every defense; see
        // docs/BENCHMARKS.md.
        be.sysctl("net.ipv4.tcp_max_tw_buckets", "0")?;
        // Routing rules for `Paths::Crossing` (table 100 holds the SYN path; nft marks SYNs).
        rtr.run(&["ip", "rule", "add", "fwmark", "1", "table", "100"])?;
        rtr.run(&["ip", "-6", "rule", "add", "fwmark", "1", "table", "100"])?;
        rtr.route(&[&format!("{SVC_V4}/32"), "via", "10.88.11.2", "table", "100"])?;
        rtr.route(&[
            &format!("{SVC_V6}/128"),
            "via",
            "fd88:11::2",
            "table",
            "100",
        ])?;
        // Counters: SYNs offered (rtr, from the attacker) and SYN+ACKs that come back (att).
        nft::load(
            rtr,
            "table inet swlab {
  counter syn_offered { }
  chain pre { type filter hook prerouting priority -300; policy accept;
    iifname \"ra\" tcp flags & (syn | ack) == syn counter name syn_offered
  }
  chain marks { type filter hook prerouting priority -150; policy accept; }
}",
        )?;
        nft::load(
            att,
            "table inet swlab {
  counter synack_back { }
  chain pre { type filter hook prerouting priority -300; policy accept;
    tcp flags & (syn | ack) == (syn | ack) counter name synack_back drop
  }
}",
        )?;
        Ok(())
    }

    /// The attacker's XDP side: the sink on `a0` (its NAPI kthread on the generator's CPU, so the
    /// answers' last hop is the attacker's cost), `xdp_pass` on the router's `ra`, and the
    /// generator loaded with the flood's template (IPv4 SYNs with an MSS option from
    /// [`SPOOF_V4`] to the service, as trafgen sends).
    fn attacker(&mut self) -> Result<()> {
        use crate::livegen::{self, Sink, SynGen, SynOptions, Template};
        self.ra_pass = Some(Sink::pass(&self.rtr, "ra")?);
        self.sink = Some(Sink::attach(&self.att, "a0")?);
        livegen::napi_pin(&self.att, "a0", crate::load::GEN_CPU)?;
        let (net, len) = SPOOF_V4.split_once('/').context("SPOOF_V4 is a prefix")?;
        let t = Template {
            src_mac: topo::mac(&self.att, "a0")?,
            dst_mac: topo::mac(&self.rtr, "ra")?,
            prefix: net.parse()?,
            prefix_len: len.parse()?,
            dst: SVC_V4.parse()?,
            dport: PORT,
            options: SynOptions::Mss,
        };
        self.syngen = Some(SynGen::load(&t, 0)?);
        Ok(())
    }

    /// The generator of the lab's flood.
    pub fn syngen(&self) -> &crate::livegen::SynGen {
        self.syngen.as_ref().expect("loaded by Lab::up")
    }

    /// SYN+ACKs the attacker's sink counted (and dropped) so far.
    pub fn sink_synacks(&self) -> Result<u64> {
        self.sink.as_ref().expect("attached by Lab::up").synacks()
    }

    /// Route traffic to the service (and back) as `paths` says.
    pub fn set_paths(&self, paths: Paths) -> Result<()> {
        let (rtr, be) = (&self.rtr, &self.be);
        let both4 = [
            "nexthop",
            "via",
            "10.88.11.2",
            "nexthop",
            "via",
            "10.88.12.2",
        ];
        let both6 = [
            "nexthop",
            "via",
            "fd88:11::2",
            "nexthop",
            "via",
            "fd88:12::2",
        ];
        let svc4 = format!("{SVC_V4}/32");
        let svc6 = format!("{SVC_V6}/128");
        let replace = |ns: &Netns, v6: bool, dst: &str, via: &[&str]| -> Result<()> {
            let mut a = vec!["ip", if v6 { "-6" } else { "-4" }, "route", "replace", dst];
            a.extend_from_slice(via);
            ns.run(&a).map(|_| ())
        };
        let (r4, r6, b4, b6): (&[&str], &[&str], &[&str], &[&str]) = match paths {
            Paths::One => (
                &["via", "10.88.11.2"],
                &["via", "fd88:11::2"],
                &["via", "10.88.21.1"],
                &["via", "fd88:21::1"],
            ),
            Paths::Ecmp => (
                &both4,
                &both6,
                &[
                    "nexthop",
                    "via",
                    "10.88.21.1",
                    "nexthop",
                    "via",
                    "10.88.22.1",
                ],
                &[
                    "nexthop",
                    "via",
                    "fd88:21::1",
                    "nexthop",
                    "via",
                    "fd88:22::1",
                ],
            ),
            Paths::Crossing => (
                &["via", "10.88.12.2"],
                &["via", "fd88:12::2"],
                &["via", "10.88.22.1"],
                &["via", "fd88:22::1"],
            ),
        };
        replace(rtr, false, &svc4, r4)?;
        replace(rtr, true, &svc6, r6)?;
        replace(be, false, "default", b4)?;
        replace(be, true, "default", b6)?;
        rtr.run(&["nft", "flush", "chain", "inet", "swlab", "marks"])?;
        if paths == Paths::Crossing {
            rtr.run(&[
                "nft",
                "add",
                "rule",
                "inet",
                "swlab",
                "marks",
                "iifname",
                "rc",
                "tcp",
                "flags",
                "&",
                "(syn|ack)",
                "==",
                "syn",
                "meta",
                "mark",
                "set",
                "1",
            ])?;
        }
        // Drop cached routes of the previous setting.
        rtr.run(&["ip", "route", "flush", "cache"])?;
        Ok(())
    }

    fn start_nginx(&mut self) -> Result<()> {
        let www = self.dir.join("www");
        std::fs::write(www.join("index.html"), "synwall lab: hello\n")?;
        let big = std::fs::File::create(www.join("big"))?;
        big.set_len(BIG_BYTES)?;
        let d = self.dir.display();
        let conf = format!(
            "# generated by synwall lab: nginx for the lab's backend namespace\n\
user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
events {{ worker_connections 8192; }}\n\
http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_timeout 30;\n\
  server {{\n    listen {SVC_V4}:{PORT} backlog=4096;\n    listen [{SVC_V6}]:{PORT} backlog=4096;\n\
    root {d}/www;\n  }}\n}}\n"
        );
        let conf_path = self.dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        // nginx is not pinned, and runs SCHED_FIFO 10 (below the edge's NAPI thread): on two
        // vCPUs both cores are saturated during a flood (generator, defender), and a server that
        // only gets the leftovers would measure the scheduler, not the network path. On real
        // machines the server has its own cores.
        let child = self
            .be
            .command("chrt")
            .args(["-f", "10", "nginx", "-c"])
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start nginx (install the nginx package: scripts/setup.sh)")?;
        self.nginx = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.curl_ok(false) {
                return Ok(());
            }
            if let Some(c) = self.nginx.as_mut() {
                if let Some(st) = c.try_wait()? {
                    let mut err = String::new();
                    if let Some(mut e) = c.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    bail!("nginx exited ({st}): {}", err.trim());
                }
            }
            if Instant::now() > deadline {
                bail!("nginx did not answer on {SVC_V4}:{PORT} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Does a plain request from the client namespace get nginx's page?
    pub fn curl_ok(&self, v6: bool) -> bool {
        let url = url(v6, "/index.html");
        self.cli
            .command("curl")
            .args(["-s", "-m", "3", "-g", &url])
            .output()
            .map(|o| o.status.success() && o.stdout.starts_with(b"synwall lab"))
            .unwrap_or(false)
    }

    /// Leave everything in place when dropped (`synwall-lab up`); [`down`] removes it.
    pub fn keep(self) {
        // Nothing of the lab is dropped: namespaces and nginx stay for `down`.
        std::mem::forget(self);
    }

    /// The secret file the synwall daemons share (written on first use).
    pub fn secret(&self) -> Result<String> {
        secret_file(&self.dir)
    }

    /// Pin the defender's packet work of `edge` (0 or 1) to `cpu`: threaded NAPI on the edge's
    /// rtr-facing veth (where XDP runs) with its kthread on `cpu`, and RPS on that veth and on the
    /// backend's veth behind it (where the kernel baselines do their work).
    pub fn pin(&self, edge: usize, cpu: usize) -> Result<()> {
        let n = edge + 1;
        let mask = format!("{:x}", 1u32 << cpu);
        let e = self.edges[edge].name();
        run_in(
            e,
            &[
                "sh",
                "-c",
                &format!(
                    "echo 1 > /sys/class/net/x{n}/threaded; echo {mask} > /sys/class/net/x{n}/queues/rx-0/rps_cpus"
                ),
            ],
        )?;
        run_in(
            self.be.name(),
            &[
                "sh",
                "-c",
                &format!("echo {mask} > /sys/class/net/b{n}/queues/rx-0/rps_cpus"),
            ],
        )?;
        // The NAPI kthread exists only while the veth runs NAPI (an XDP program is attached);
        // pin every `napi/x{n}-*` thread there is now.
        // SCHED_FIFO: a NAPI kthread is otherwise an ordinary task that competes with whatever
        // else runs on the core, while softirq work (the baselines' path via RPS) preempts it.
        for pid in napi_threads(&format!("napi/x{n}-"))? {
            for args in [
                vec!["taskset", "-p", "-c", &cpu.to_string(), &pid.to_string()],
                vec!["chrt", "-f", "-p", "50", &pid.to_string()],
            ] {
                let _ = Command::new(args[0])
                    .args(&args[1..])
                    .stdout(Stdio::null())
                    .status();
            }
        }
        Ok(())
    }
}

/// CPU time (user + system, clock ticks) of the NAPI kthreads of edge `edge`'s veth: where
/// synwall's XDP program runs, and nothing else.
pub fn napi_ticks(edge: usize) -> Result<u64> {
    let mut t = 0;
    for pid in napi_threads(&format!("napi/x{}-", edge + 1))? {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ut: u64 = f.get(11).context("stat utime")?.parse()?;
        let st: u64 = f.get(12).context("stat stime")?.parse()?;
        t += ut + st;
    }
    Ok(t)
}

pub(crate) fn napi_threads(prefix: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc")? {
        let e = e?;
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
            if comm.trim().starts_with(prefix) {
                out.push(pid);
            }
        }
    }
    Ok(out)
}

/// The service URL for `path`.
pub fn url(v6: bool, path: &str) -> String {
    if v6 {
        format!("http://[{SVC_V6}]:{PORT}{path}")
    } else {
        format!("http://{SVC_V4}:{PORT}{path}")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(c) = self.nginx.take() {
            stop_child(c);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM (nginx's master then stops its workers), wait up to 5 s, then SIGKILL.
pub(crate) fn stop_child(mut c: Child) {
    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// Remove the lab `prefix` made: stop its nginx, delete its namespaces and state directory.
/// Returns what it removed (empty when nothing was there).
pub fn down(prefix: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let dir = state_dir(prefix);
    if let Ok(pid) = std::fs::read_to_string(dir.join("nginx.pid")) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            removed.push(format!("nginx (pid {pid})"));
        }
    }
    for r in ROLES {
        let name = format!("{prefix}{r}");
        if Path::new("/run/netns").join(&name).exists() {
            synwall_netns::sh(&["ip", "netns", "del", &name])?;
            removed.push(format!("netns {name}"));
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
        removed.push(dir.display().to_string());
    }
    Ok(removed)
}

/// `DIR/secret.key`, the secret a lab's synwall daemons share, written on first use: a lab-only
/// secret of 32 bytes from the kernel's CSPRNG, hex.
pub fn secret_file(dir: &Path) -> Result<String> {
    let p = dir.join("secret.key");
    if !p.exists() {
        let mut b = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        std::fs::write(&p, format!("{hex}\n"))?;
    }
    Ok(p.display().to_string())
}
