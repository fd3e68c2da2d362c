//! `synwall-lab demo`: synwall at work in a throw-away network-namespace lab, for a new user.
//!
//! ```text
//!  client netns  ──veth──  edge netns (router, `synwall run`: edge, strict)  ──veth──  backend netns
//!                                                                (`synwall run`: backend, server)
//! ```
//!
//! It runs the `synwall` binary beside this one as two `synwall run --config` daemons (embedded
//! configs below, an embedded demo secret, all in a temporary directory), a real TCP server in the
//! backend namespace, real kernel TCP clients with a few option profiles, and a small spoofed SYN flood;
//! then it prints the connections, the options each server socket got (TCP_INFO), `synwall
//! status`, a scrape of `/metrics` and the daemons' counters. Everything is torn down at the end
//! (`synwall stop --detach`), on error and on Ctrl-C. Needs root and Linux >= 6.9.

use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synwall_netns::frame::{opt_mss, opt_sack, opt_ws, opts_bytes, Frame, SYN};
use synwall_netns::packet::RawSender;
use synwall_netns::tcp::{self, EchoServer};
use synwall_netns::topo::{self, EdgeLab, BACKEND_IF, CLIENT_IF, EDGE_CLIENT_IF};
use synwall_netns::{nft, Counts, Daemon, Netns};

/// The demo's master secret. Never use a published secret outside a demo.
const DEMO_SECRET: &str = "73796e77616c6c2064656d6f20736563726574206e6f7420666f72207573652e";
const PORT: u16 = 8080;
const FLOOD: u32 = 2000;

/// The edge node's configuration (the `{..}` are filled in at run time).
const DEMO_EDGE_TOML: &str = r#"[node]
name = "{node}"
secret_file = "{secret}"
epoch_seconds = 60
metrics = ""

[services]
protect = ["{v4}/32:{port}", "[{v6}/128]:{port}"]

[edge]
interfaces = ["{iface}"]
strict = true
"#;

/// The backend node's configuration.
const DEMO_BACKEND_TOML: &str = r#"[node]
name = "{node}"
secret_file = "{secret}"
epoch_seconds = 60
metrics = "127.0.0.1:9733"

[services]
protect = ["{v4}/32:{port}", "[{v6}/128]:{port}"]

[backend]
interfaces = ["{iface}"]
"#;

/// The demo's directory (secret, configs, run dir); on drop the nodes' pins go, then the files.
struct DemoDir {
    dir: PathBuf,
    nodes: Vec<String>,
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        for n in &self.nodes {
            let _ = synwall_bpf::pin::NodePins::new(Path::new(synwall_config::DEFAULT_PIN_ROOT), n)
                .remove();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fill(template: &str, node: &str, secret: &str, iface: &str) -> String {
    template
        .replace("{node}", node)
        .replace("{secret}", secret)
        .replace("{iface}", iface)
        .replace("{v4}", &topo::BACKEND_V4.to_string())
        .replace("{v6}", &topo::BACKEND_V6.to_string())
        .replace("{port}", &PORT.to_string())
}

/// `GET /metrics` inside `ns`.
fn scrape(ns: &Netns, addr: &str) -> Result<String> {
    use std::io::{Read, Write};
    let addr: SocketAddr = addr.parse()?;
    ns.enter(move || -> Result<String> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: demo\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    })?
}

struct Profile {
    name: &'static str,
    v6: bool,
    ts: bool,
    ecn: bool,
    mss: Option<u16>,
}

const PROFILES: [Profile; 5] = [
    Profile {
        name: "Linux default (IPv4)",
        v6: false,
        ts: true,
        ecn: false,
        mss: None,
    },
    Profile {
        name: "no timestamps (IPv4)",
        v6: false,
        ts: false,
        ecn: false,
        mss: None,
    },
    Profile {
        name: "Linux default (IPv6)",
        v6: true,
        ts: true,
        ecn: false,
        mss: None,
    },
    Profile {
        name: "MSS 1400 (IPv4)",
        v6: false,
        ts: true,
        ecn: false,
        mss: Some(1400),
    },
    Profile {
        name: "ECN on (IPv6)",
        v6: true,
        ts: true,
        ecn: true,
        mss: None,
    },
];

fn step(stop: &AtomicBool, what: &str) -> Result<()> {
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    println!("\n== {what}");
    Ok(())
}

fn daemon(ns: &Netns, exe: &Path, args: &[String]) -> Result<Daemon> {
    let d = Daemon::start(ns, exe, args, Duration::from_secs(20))?;
    println!("   [{}] {}", ns.name(), d.ready_line());
    Ok(d)
}

fn print_counts(role: &str, c: &Counts) {
    println!("   {role} ({} packets seen):", c.packets);
    for (k, v) in &c.values {
        println!("     {k:<26} {v:>8}");
    }
}

pub fn run() -> Result<ExitCode> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the demo builds network namespaces and attaches BPF programs: run it as root");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }
    let started = Instant::now();
    let exe = crate::synwall_exe()?;
    let prefix = synwall_netns::unique_prefix();
    let demo = DemoDir {
        dir: std::env::temp_dir().join(format!("synwall-demo-{prefix}")),
        nodes: vec![format!("{prefix}-edge"), format!("{prefix}-backend")],
    };
    std::fs::create_dir_all(demo.dir.join("run")).context("create the demo directory")?;
    let secret = demo.dir.join("master.key");
    std::fs::write(&secret, format!("{DEMO_SECRET}\n")).context("write the demo secret")?;
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let sf = secret.display().to_string();
    let run_dir = demo.dir.join("run").display().to_string();
    let edge_cfg = demo.dir.join("edge.toml");
    let backend_cfg = demo.dir.join("backend.toml");
    std::fs::write(
        &edge_cfg,
        fill(DEMO_EDGE_TOML, &demo.nodes[0], &sf, EDGE_CLIENT_IF),
    )?;
    std::fs::write(
        &backend_cfg,
        fill(DEMO_BACKEND_TOML, &demo.nodes[1], &sf, BACKEND_IF),
    )?;

    step(
        &stop,
        "1. lab: client | edge (router) | backend, in network namespaces",
    )?;
    let lab = EdgeLab::build(&prefix)?;
    println!(
        "   client {} / {}  ->  edge  ->  backend {} / {} (service port {PORT})",
        topo::CLIENT_V4,
        topo::CLIENT_V6,
        topo::BACKEND_V4,
        topo::BACKEND_V6
    );
    let _pass = Daemon::start(
        &lab.client,
        &exe,
        &topo::pass_all_args(CLIENT_IF, &sf)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        Duration::from_secs(20),
    )?;
    println!("   edge node config ({}):", edge_cfg.display());
    for l in std::fs::read_to_string(&edge_cfg)?
        .lines()
        .filter(|l| !l.is_empty())
    {
        println!("     | {l}");
    }
    let run = |cfg: &Path| -> Vec<String> {
        [
            "run",
            "--config",
            &cfg.display().to_string(),
            "--run-dir",
            &run_dir,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let backend = daemon(&lab.backend, &exe, &run(&backend_cfg))?;
    let edge = daemon(&lab.edge, &exe, &run(&edge_cfg))?;
    // The backend kernel's own view: does any SYN reach its IP stack? (nftables, if installed)
    let nft_ok = nft::load(
        &lab.backend,
        &format!(
            "table inet swdemo {{\n counter syn_in {{ }}\n chain pre {{ type filter hook prerouting priority -300; policy accept;\n  tcp dport {PORT} tcp flags & (syn | ack) == syn counter name syn_in\n }}\n}}"
        ),
    )
    .is_ok();
    let mut servers = Vec::new();
    for (_, l) in lab.backend_listeners(PORT)? {
        servers.push(EchoServer::start(l)?);
    }
    println!("   server: a TCP server in the backend namespace answers every request transformed");

    step(
        &stop,
        "2. real clients through the edge (100 KB each way per connection)",
    )?;
    println!(
        "   {:<22} {:<28} server socket (TCP_INFO): mss  wscale peer/ours  sack  ts  ecn",
        "client", "from"
    );
    let mut made = 0;
    for (i, p) in PROFILES.iter().enumerate() {
        lab.client
            .sysctl("net.ipv4.tcp_timestamps", if p.ts { "1" } else { "0" })?;
        lab.client
            .sysctl("net.ipv4.tcp_ecn", if p.ecn { "1" } else { "2" })?;
        let to = SocketAddr::new(topo::backend_addr(p.v6), PORT);
        let mss = p.mss;
        let r = lab.client.enter(move || -> Result<SocketAddr> {
            let data = tcp::pattern(100_000, i as u32);
            let mut s = tcp::connect(to, mss, Duration::from_secs(5))?;
            let local = s.local_addr()?;
            let (answer, _) = tcp::exchange(&mut s, &data, Duration::from_secs(10))?;
            anyhow::ensure!(answer == tcp::transform(&data), "wrong answer");
            Ok(local)
        })?;
        let local = r.with_context(|| format!("client {}", p.name))?;
        let acc = servers[p.v6 as usize].next(Duration::from_secs(10))?;
        made += 1;
        println!("   {:<22} {:<28} {}", p.name, local.to_string(), acc.info);
    }

    step(
        &stop,
        &format!("3. a spoofed SYN flood: {FLOOD} SYNs from random addresses in 10.66.200.0/24"),
    )?;
    let dst_mac = topo::mac(&lab.edge, EDGE_CLIENT_IF)?;
    let src_mac = topo::mac(&lab.client, CLIENT_IF)?;
    let sent = lab.client.enter(move || -> Result<Duration> {
        let tx = RawSender::open(CLIENT_IF)?;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64;
        let t = Instant::now();
        for _ in 0..FLOOD {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let syn = Frame {
                dst_mac,
                src_mac,
                seq: (x >> 24) as u32,
                options: opts_bytes(&[opt_mss(1460), vec![1, 1], opt_sack(), opt_ws(7)]),
                ..Frame::new(
                    IpAddr::V4(Ipv4Addr::new(10, 66, 200, (x % 254) as u8 + 1)),
                    IpAddr::V4(topo::BACKEND_V4),
                    1024 + (x >> 16) as u16 % 60000,
                    PORT,
                    SYN,
                )
            };
            tx.send(&syn.build())?;
        }
        Ok(t.elapsed())
    })??;
    println!(
        "   sent in {:.0} ms; a real client during the aftermath:",
        sent.as_secs_f64() * 1e3
    );
    lab.client.sysctl("net.ipv4.tcp_timestamps", "1")?;
    lab.client.sysctl("net.ipv4.tcp_ecn", "2")?;
    let to = SocketAddr::new(topo::backend_addr(false), PORT);
    lab.client.enter(move || -> Result<()> {
        let data = tcp::pattern(10_000, 77);
        let mut s = tcp::connect(to, None, Duration::from_secs(5))?;
        let (answer, _) = tcp::exchange(&mut s, &data, Duration::from_secs(10))?;
        anyhow::ensure!(answer == tcp::transform(&data), "wrong answer");
        Ok(())
    })??;
    let acc = servers[0].next(Duration::from_secs(10))?;
    made += 1;
    println!(
        "   {:<22} {:<28} {}",
        "after the flood",
        acc.peer.to_string(),
        acc.info
    );
    std::thread::sleep(Duration::from_millis(200));

    step(
        &stop,
        &format!(
            "4. `synwall status --node {}` (reads the pinned maps)",
            demo.nodes[0]
        ),
    )?;
    let status = std::process::Command::new(&exe)
        .args(["status", "--node", &demo.nodes[0], "--run-dir", &run_dir])
        .output()?;
    for l in String::from_utf8_lossy(&status.stdout).lines() {
        println!("   {l}");
    }
    let body = scrape(&lab.backend, "127.0.0.1:9733")?;
    let samples: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with("synwall_"))
        .collect();
    println!(
        "   backend /metrics (Prometheus, 127.0.0.1:9733 in its namespace): {} samples, e.g.",
        samples.len()
    );
    for l in samples
        .iter()
        .filter(|l| l.contains("reqsk_created") || l.contains("syn_pass") || l.contains("epoch "))
    {
        println!("     {l}");
    }

    step(&stop, "5. counters (printed by the daemons when stopped)")?;
    let syn_in = if nft_ok {
        nft::counter(&lab.backend, "swdemo", "syn_in").ok()
    } else {
        None
    };
    let e = edge.stop()?.remove("edge").context("no edge counters")?;
    let b = backend
        .stop()?
        .remove("backend")
        .context("no backend counters")?;
    print_counts("edge (XDP)", &e);
    print_counts("backend (tc + kfunc)", &b);

    step(&stop, "summary")?;
    println!("   connections made through the edge:      {made}");
    println!(
        "   SYNs answered by the edge (cookies):    {} (= {made} clients + {FLOOD} flood)",
        e.get("syn_answered")
    );
    println!(
        "   handshake ACKs validated by the edge:   {}",
        e.get("strict_ack_valid")
    );
    println!(
        "   sockets created from ACKs by backend:   {}",
        b.get("backend_reqsk_created")
    );
    println!(
        "   SYNs the backend passed to its kernel:  {}",
        b.get("backend_syn_pass")
    );
    match syn_in {
        Some(n) => println!(
            "   SYNs that reached the backend's stack:  {n} (nftables counter in its namespace)"
        ),
        None => println!("   (install nftables to also count SYNs at the backend's IP stack)"),
    }
    let ok = e.get("syn_answered") == made + FLOOD as u64
        && b.get("backend_reqsk_created") == made
        && b.get("backend_syn_pass") == 0
        && syn_in.unwrap_or(0) == 0;
    println!(
        "   {} (lab torn down; {:.1} s)",
        if ok {
            "OK: the backend never saw a SYN, every real client got through"
        } else {
            "UNEXPECTED: see the counters above"
        },
        started.elapsed().as_secs_f64()
    );
    for n in &demo.nodes {
        let out = std::process::Command::new(&exe)
            .args(["stop", "--detach", "--node", n, "--run-dir", &run_dir])
            .output()?;
        print!("   {}", String::from_utf8_lossy(&out.stdout));
    }
    drop(servers);
    drop(lab);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
