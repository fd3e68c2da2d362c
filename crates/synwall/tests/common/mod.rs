//! Shared by the hostile-traffic tests (`hostile_netns`) and the jumbo test (`jumbo_netns`):
//!
//! - [`Lab`]: client | edge (router, the edge program attached natively on `e0`) | backend (tc
//!   program on `b0`, a real kernel TCP stack), each node a `synwall run --config` daemon as an
//!   operator runs it. Its maps are pinned, so the tests read the counters of both programs while
//!   they run, right before and after each frame. The client has an `AF_PACKET` sender and an
//!   `AF_PACKET` capture on `c0`.
//! - [`Reply`]: what came back to the client, decoded by etherparse.

use anyhow::{bail, Result};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use synwall_bpf::pin::{NodePins, PinnedMaps};
use synwall_testkit::deploy::{write_secret, LAB_SECRET_FILL};
use synwall_testkit::frame::{Macs, ACK, RST, SYN};
use synwall_testkit::synwall;
use synwall_testkit::topo::{
    self, EdgeLab, BACKEND_IF, CLIENT_IF, EDGE_BACKEND_IF, EDGE_CLIENT_IF,
};
use synwall_testkit::{nft, Daemon, Netns};
use synwall_testkit::{Capture, Captured, RawSender};

/// The protected port (on the backend's two addresses).
pub const PORT: u16 = 8080;
/// A port of the backend that is not protected: its listener is answered by the backend kernel,
/// the positive control that a wrapped frame reaches that kernel and that its answer is seen.
pub const OPEN_PORT: u16 = 8081;
/// Crafted frames use client ports from here up; the client kernel's own connections use ports
/// below it, and the client never answers anything sent to these ports (an nftables rule drops
/// its RSTs), so a SYN-RECV its crafted SYN created on the backend stays visible.
pub const CRAFTED_PORTS: u16 = 40000;

const READY: Duration = Duration::from_secs(30);

/// The counter values of one program, by metric name.
pub type Snap = BTreeMap<&'static str, u64>;
/// Counter changes (non-zero only), by metric name.
pub type Delta = BTreeMap<String, u64>;

fn snap(m: &PinnedMaps) -> Result<Snap> {
    Ok(m.counters()?.iter().map(|(c, v)| (c.name(), v)).collect())
}

fn delta(before: &Snap, after: &Snap) -> Delta {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(*before.get(k).unwrap_or(&0));
            (d > 0).then(|| (k.to_string(), d))
        })
        .collect()
}

fn total(s: &Snap) -> u64 {
    s.values().sum()
}

/// Is `name` a counter of this build? (The design adds counters; a build without one cannot
/// count it.)
pub fn known_counter(name: &str) -> bool {
    synwall_engine::Counter::ALL
        .iter()
        .any(|c| c.name() == name)
}

/// `d` is exactly `want` (every other counter unchanged), or a description of the difference.
pub fn exactly(d: &Delta, want: &[(&str, u64)]) -> std::result::Result<(), String> {
    let mut w: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in want {
        if *v > 0 {
            *w.entry(k.to_string()).or_default() += v;
        }
    }
    if &w == d {
        return Ok(());
    }
    let unknown: Vec<&String> = w.keys().filter(|k| !known_counter(k)).collect();
    Err(format!(
        "want {} saw {}{}",
        show(&w),
        show(d),
        if unknown.is_empty() {
            String::new()
        } else {
            format!(" (this build has no counter {unknown:?})")
        }
    ))
}

/// `name=value ...`, or `nothing`.
pub fn show(d: &BTreeMap<String, u64>) -> String {
    if d.is_empty() {
        return "nothing".into();
    }
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counters that traffic the test did not send can move (neighbour discovery, MLD, ARP): a
/// measurement whose only surplus is in these is repeated.
const NOISE: [&str; 2] = ["pass_unprotected", "pass_not_ip"];

/// `d` without the [`NOISE`] counters (for measurements over many frames, where a repeat would
/// be costly and the counters under test are not noise ones).
pub fn without_noise(d: &Delta) -> Delta {
    d.iter()
        .filter(|(k, _)| !NOISE.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Is `seen` = `want` plus increments in [`NOISE`] counters only?
fn only_noise_more(seen: &Delta, want: &[(&str, u64)]) -> bool {
    let mut rest = seen.clone();
    for (k, v) in want {
        match rest.get_mut(*k) {
            Some(s) if *s >= *v => *s -= v,
            _ if *v == 0 => {}
            _ => return false,
        }
    }
    rest.iter()
        .all(|(k, v)| *v == 0 || NOISE.contains(&k.as_str()))
        && rest.values().any(|v| *v > 0)
}

/// One [`Lab::probe_exact`]: the crafted client port used, what was counted, and whether it was
/// exactly what was wanted.
#[derive(Clone, Debug)]
pub struct Measured {
    pub port: u16,
    pub probe: Probe,
    pub counters: std::result::Result<(), String>,
}

/// How a [`Lab`] is built.
#[derive(Clone, Debug, Default)]
pub struct LabOptions {
    /// The edge in strict mode.
    pub strict: bool,
    /// MTU of every link (default 1500).
    pub mtu: Option<u32>,
    /// `[server] mss_v4, mss_v6`: the MSS the edge's SYN+ACKs advertise.
    pub server_mss: Option<(u16, u16)>,
    /// A port the backend protects but the edge does not: its SYNs pass the edge, as SYNs that
    /// went around it would reach the backend.
    pub backend_only_port: Option<u16>,
    /// `backend.drop_syns`.
    pub backend_drop_syns: bool,
    /// More of the edge's config: lines of `[edge]` (then, if it likes, its sub-sections such as
    /// `[edge.budget]`).
    pub edge_extra: String,
}

/// What the programs counted while some frames went through.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// The edge program's counter changes.
    pub edge: Delta,
    /// The backend program's counter changes.
    pub backend: Delta,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "edge: {}; backend: {}",
            show(&self.edge),
            show(&self.backend)
        )
    }
}

/// client | edge | backend with `synwall run` nodes; removed (namespaces and pins) on drop.
pub struct Lab {
    pub lab: EdgeLab,
    pub edge_mac: [u8; 6],
    pub client_mac: [u8; 6],
    /// Holds the secret, configurations and run directory while the nodes run.
    _dir: tempfile::TempDir,
    name: String,
    pub edge: Option<Daemon>,
    pub backend: Option<Daemon>,
    _pass: Daemon,
    edge_maps: PinnedMaps,
    backend_maps: PinnedMaps,
    tx: RawSender,
    cap: Capture,
    seen: RefCell<Vec<Captured>>,
    /// How many of `seen` [`Lab::new_replies`] has handed out.
    handed: std::cell::Cell<usize>,
    next_port: std::cell::Cell<u16>,
    /// The edge node's config file (rewrite it and send SIGHUP to reload).
    pub edge_config: PathBuf,
}

impl Lab {
    /// Build the namespaces, start both nodes (edge natively on `e0`) and the client's XDP
    /// pass-all program (a veth delivers the edge's XDP_TX only to a peer running XDP).
    pub fn build(prefix: &str, o: &LabOptions) -> Result<Lab> {
        let lab = EdgeLab::build(prefix)?;
        if let Some(mtu) = o.mtu {
            let m = mtu.to_string();
            for (ns, dev) in [
                (&lab.client, CLIENT_IF),
                (&lab.edge, EDGE_CLIENT_IF),
                (&lab.edge, EDGE_BACKEND_IF),
                (&lab.backend, BACKEND_IF),
            ] {
                ns.run(&["ip", "link", "set", "dev", dev, "mtu", &m])?;
            }
        }
        let edge_mac = topo::mac(&lab.edge, EDGE_CLIENT_IF)?;
        let client_mac = topo::mac(&lab.client, CLIENT_IF)?;
        let edge_b_mac = topo::mac(&lab.edge, EDGE_BACKEND_IF)?;
        let backend_mac = topo::mac(&lab.backend, BACKEND_IF)?;
        // Second backend addresses, not protected: the outer destination of routing headers.
        lab.backend.addr(BACKEND_IF, "10.66.2.3/24")?;
        lab.backend.addr(BACKEND_IF, "fd66:2::3/64")?;
        // Permanent neighbours: no ARP or neighbour discovery moves the counters mid-test.
        let neigh = |ns: &Netns, dev: &str, addr: &str, mac: [u8; 6]| {
            let m = mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            ns.run(&[
                "ip",
                "neigh",
                "replace",
                addr,
                "lladdr",
                &m,
                "dev",
                dev,
                "nud",
                "permanent",
            ])
            .map(|_| ())
        };
        for a in ["10.66.1.1", "fd66:1::1"] {
            neigh(&lab.client, CLIENT_IF, a, edge_mac)?;
        }
        for a in ["10.66.1.2", "fd66:1::2"] {
            neigh(&lab.edge, EDGE_CLIENT_IF, a, client_mac)?;
        }
        for a in ["10.66.2.2", "10.66.2.3", "fd66:2::2", "fd66:2::3"] {
            neigh(&lab.edge, EDGE_BACKEND_IF, a, backend_mac)?;
        }
        for a in ["10.66.2.1", "fd66:2::1"] {
            neigh(&lab.backend, BACKEND_IF, a, edge_b_mac)?;
        }
        lab.client
            .sysctl("net.ipv4.ip_local_port_range", "20000 39999")?;
        // The client never answers what the backend kernel sends to crafted ports (its RSTs would
        // remove a SYN-RECV the test looks for); the client and the edge keep their multicast
        // listener reports, router solicitations and duplicate-address probes (neighbours are
        // permanent) to themselves, so that no traffic but the test's moves the counters.
        let quiet =
            "icmpv6 type { mld-listener-report, mld2-listener-report, nd-router-solicit } drop
    ip6 saddr :: icmpv6 type nd-neighbor-solicit drop";
        nft::load(
            &lab.client,
            &format!(
                "table inet swquiet {{
  chain out {{ type filter hook output priority 0; policy accept;
    tcp sport >= {CRAFTED_PORTS} tcp flags & rst == rst drop
    {quiet}
  }}
}}"
            ),
        )?;
        nft::load(
            &lab.edge,
            &format!(
                "table inet swquiet {{
  chain out {{ type filter hook output priority 0; policy accept;
    {quiet}
  }}
}}"
            ),
        )?;

        let dir = tempfile::tempdir()?;
        let secret = dir.path().join("secret");
        write_secret(&secret, LAB_SECRET_FILL)?;
        let run_dir = dir.path().join("run");
        std::fs::create_dir_all(&run_dir)?;
        let services = |ports: &str| {
            format!(
                "\"{}/32:{ports}\", \"[{}/128]:{ports}\"",
                topo::backend_addr(false),
                topo::backend_addr(true)
            )
        };
        let edge_services = services(&PORT.to_string());
        let backend_services = match o.backend_only_port {
            Some(p) => services(&format!("{PORT},{p}")),
            None => edge_services.clone(),
        };
        let server = o.server_mss.map_or(String::new(), |(v4, v6)| {
            format!("[server]\nmss_v4 = {v4}\nmss_v6 = {v6}\n")
        });
        let config = |role: &str, services: &str, section: &str| -> Result<PathBuf> {
            let path = dir.path().join(format!("{role}.toml"));
            std::fs::write(
                &path,
                format!(
                    "[node]\nname = \"{prefix}{role}\"\nsecret_file = \"{}\"\nmetrics = \"\"\n\
                     set_sysctls = true\nlog_level = \"warn\"\n\n[services]\nprotect = [{services}]\n\n\
                     {section}\n{server}",
                    secret.display()
                ),
            )?;
            Ok(path)
        };
        let ec = config(
            "edge",
            &edge_services,
            &format!(
                "[edge]\ninterfaces = [\"{EDGE_CLIENT_IF}\"]\nxdp_mode = \"native\"\n\
                 xdp_fallback = \"none\"\nstrict = {}\n{}\n",
                o.strict, o.edge_extra
            ),
        )?;
        let bc = config(
            "backend",
            &backend_services,
            &format!(
                "[backend]\ninterfaces = [\"{BACKEND_IF}\"]\ndrop_syns = {}\n",
                o.backend_drop_syns
            ),
        )?;
        let run = |ns: &Netns, cfg: &Path| {
            Daemon::start(
                ns,
                synwall(),
                &[
                    "run",
                    "--config",
                    &cfg.display().to_string(),
                    "--run-dir",
                    &run_dir.display().to_string(),
                ],
                READY,
            )
        };
        let name = prefix.to_string();
        // Pins of a failed start are removed by the guard; a started lab removes them on drop.
        let guard = PinGuard(name.clone());
        let backend = run(&lab.backend, &bc)?;
        let edge = run(&lab.edge, &ec)?;
        let pass = Daemon::start(
            &lab.client,
            synwall(),
            &topo::pass_all_args(CLIENT_IF, &secret.display().to_string()),
            READY,
        )?;
        let pins = |role: &str| NodePins::new(Path::new(synwall_config::DEFAULT_PIN_ROOT), role);
        let edge_maps = PinnedMaps::open(&pins(&format!("{name}edge")).edge())?;
        let backend_maps = PinnedMaps::open(&pins(&format!("{name}backend")).backend())?;
        let (tx, cap) = lab.client.enter(|| -> Result<(RawSender, Capture)> {
            Ok((RawSender::open(CLIENT_IF)?, Capture::open(CLIENT_IF)?))
        })??;
        std::mem::forget(guard);
        Ok(Lab {
            lab,
            edge_mac,
            client_mac,
            _dir: dir,
            name,
            edge: Some(edge),
            backend: Some(backend),
            _pass: pass,
            edge_maps,
            backend_maps,
            tx,
            cap,
            seen: RefCell::new(Vec::new()),
            handed: std::cell::Cell::new(0),
            next_port: std::cell::Cell::new(CRAFTED_PORTS),
            edge_config: ec,
        })
    }

    /// The replies (see [`Reply`]) the client received since the last call, without waiting.
    pub fn new_replies(&self) -> Result<Vec<Reply>> {
        self.pull()?;
        let seen = self.seen.borrow();
        let from = self.handed.replace(seen.len());
        Ok(seen[from..]
            .iter()
            .filter(|c| !c.outgoing)
            .filter_map(|c| Reply::decode(&c.frame))
            .collect())
    }

    /// A client port no other crafted frame of this lab used.
    pub fn port(&self) -> u16 {
        let p = self.next_port.get();
        self.next_port.set(p + 1);
        p
    }

    /// MACs for a frame from the client to the edge.
    pub fn macs(&self) -> Macs {
        Macs {
            dst: self.edge_mac,
            src: self.client_mac,
        }
    }

    /// Listen on `port` of both backend addresses (non-blocking listeners).
    pub fn listen(&self, port: u16) -> Result<Vec<TcpListener>> {
        let mut out = Vec::new();
        for (_, l) in self.lab.backend_listeners(port)? {
            l.set_nonblocking(true)?;
            out.push(l);
        }
        Ok(out)
    }

    /// Both programs' counters now.
    pub fn snaps(&self) -> Result<(Snap, Snap)> {
        Ok((snap(&self.edge_maps)?, snap(&self.backend_maps)?))
    }

    /// Send one frame out of the client.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        self.tx.send(frame)
    }

    /// Send `frames`, wait until the edge has counted every one of them (each frame increments
    /// exactly one edge counter) and the backend's counters have been still for a moment, and
    /// return what both counted.
    pub fn probe(&self, frames: &[Vec<u8>]) -> Result<Probe> {
        let (e0, b0) = self.snaps()?;
        for (i, f) in frames.iter().enumerate() {
            self.send(f)?;
            // veth queues 256 frames toward an XDP program: let it drain now and then.
            if i % 32 == 31 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let n = frames.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut e1 = snap(&self.edge_maps)?;
        while total(&e1) < total(&e0) + n {
            if Instant::now() > deadline {
                bail!(
                    "the edge counted {} of {n} frames within 5 s ({})",
                    total(&e1) - total(&e0),
                    show(&delta(&e0, &e1))
                );
            }
            std::thread::sleep(Duration::from_millis(2));
            e1 = snap(&self.edge_maps)?;
        }
        // Forwarded frames reach the backend a moment later, and a frame of the batch may still
        // be on its way when unrelated traffic made up the count: wait until neither program's
        // counters have moved for 80 ms.
        let mut b1 = snap(&self.backend_maps)?;
        let mut still = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(3);
        while still.elapsed() < Duration::from_millis(80) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            let (e, b) = self.snaps()?;
            if e != e1 || b != b1 {
                (e1, b1) = (e, b);
                still = Instant::now();
            }
        }
        Ok(Probe {
            edge: delta(&e0, &e1),
            backend: delta(&b0, &b1),
        })
    }

    /// What both programs counted while `send` ran (for frames that do not pass the edge, e.g.
    /// sent into the backend's link from the edge's namespace): waits until the counters have
    /// been still for 80 ms after they moved (at most 3 s).
    pub fn probe_with(&self, send: impl FnOnce() -> Result<()>) -> Result<Probe> {
        let (e0, b0) = self.snaps()?;
        send()?;
        let (mut e1, mut b1) = self.snaps()?;
        let mut still = Instant::now();
        let start = Instant::now();
        while (still.elapsed() < Duration::from_millis(80) || (e1 == e0 && b1 == b0))
            && start.elapsed() < Duration::from_secs(3)
        {
            std::thread::sleep(Duration::from_millis(5));
            let (e, b) = self.snaps()?;
            if e != e1 || b != b1 {
                (e1, b1) = (e, b);
                still = Instant::now();
            }
        }
        Ok(Probe {
            edge: delta(&e0, &e1),
            backend: delta(&b0, &b1),
        })
    }

    /// [`Lab::probe`] the frames `make(port)` returns for a fresh crafted client port, and
    /// compare with the exact counter changes wanted. A measurement whose only surplus is in
    /// [`NOISE`] counters is repeated (at most 4 times) with a fresh port.
    pub fn probe_exact(
        &self,
        mut make: impl FnMut(u16) -> Vec<Vec<u8>>,
        edge: &[(&str, u64)],
        backend: &[(&str, u64)],
    ) -> Result<Measured> {
        let mut last = None;
        for _ in 0..4 {
            let port = self.port();
            let probe = self.probe(&make(port))?;
            let e = exactly(&probe.edge, edge);
            let b = exactly(&probe.backend, backend);
            let counters = match (&e, &b) {
                (Ok(()), Ok(())) => Ok(()),
                _ => Err(format!(
                    "edge {}; backend {}",
                    e.clone().err().unwrap_or_else(|| "ok".into()),
                    b.clone().err().unwrap_or_else(|| "ok".into())
                )),
            };
            let noisy = counters.is_err()
                && (e.is_ok() || only_noise_more(&probe.edge, edge))
                && (b.is_ok() || only_noise_more(&probe.backend, backend));
            let m = Measured {
                port,
                probe,
                counters,
            };
            if !noisy {
                return Ok(m);
            }
            eprintln!("noise during a probe ({}); measuring again", m.probe);
            last = Some(m);
        }
        Ok(last.expect("at least one attempt"))
    }

    /// Every reply (see [`Reply`]) the client received so far, after waiting `wait`.
    pub fn all_replies(&self, wait: Duration) -> Result<Vec<Reply>> {
        std::thread::sleep(wait);
        self.pull()?;
        Ok(self
            .seen
            .borrow()
            .iter()
            .filter(|c| !c.outgoing)
            .filter_map(|c| Reply::decode(&c.frame))
            .collect())
    }

    fn pull(&self) -> Result<()> {
        let mut seen = self.seen.borrow_mut();
        while let Some(c) = self.cap.next(Duration::ZERO)? {
            seen.push(c);
        }
        Ok(())
    }

    /// Everything that came back to the client for crafted client port `port`: TCP segments to it
    /// and ICMP errors quoting it, after waiting `wait` for late ones.
    pub fn replies(&self, port: u16, wait: Duration) -> Result<Vec<Reply>> {
        Ok(self
            .all_replies(wait)?
            .into_iter()
            .filter(|r| r.client_port == port)
            .collect())
    }

    /// Every frame the client sent (its kernel's and the crafted ones) so far.
    pub fn sent(&self) -> Result<Vec<Vec<u8>>> {
        self.pull()?;
        Ok(self
            .seen
            .borrow()
            .iter()
            .filter(|c| c.outgoing)
            .map(|c| c.frame.clone())
            .collect())
    }

    /// Wait (at most `limit`) for a SYN+ACK to crafted port `port`.
    pub fn synack(&self, port: u16, limit: Duration) -> Result<Option<Reply>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(r) = self
                .replies(port, Duration::ZERO)?
                .into_iter()
                .find(|r| r.is_synack())
            {
                return Ok(Some(r));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The peer ports of every SYN-RECV request socket on the backend.
    pub fn syn_recv_ports(&self) -> Result<Vec<u16>> {
        let out = self
            .lab
            .backend
            .run(&["ss", "-Htan", "state", "syn-recv"])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(text
            .lines()
            .filter_map(|l| {
                // Recv-Q Send-Q Local:Port Peer:Port (no State column with a state filter)
                let peer = l.split_whitespace().nth(3)?;
                peer.rsplit_once(':')?.1.parse().ok()
            })
            .collect())
    }

    /// Stop both nodes (their counters print on stdout; the pins stay until drop).
    pub fn stop_nodes(&mut self) {
        for d in [self.edge.take(), self.backend.take()]
            .into_iter()
            .flatten()
        {
            let _ = d.stop();
        }
    }
}

/// An `AF_PACKET` sender whose frames carry a virtio-net header (`PACKET_VNET_HDR`), as a tap or
/// virtio guest's do: `NEEDS_CSUM` makes the skb `CHECKSUM_PARTIAL` with the `csum_start` the
/// sender chooses, which veth keeps up to the receiving end. Open it on a thread in the
/// interface's namespace.
pub struct VnetSender {
    fd: std::os::fd::OwnedFd,
    ifindex: i32,
}

impl VnetSender {
    pub fn open(dev: &str) -> Result<VnetSender> {
        use std::os::fd::FromRawFd;
        const PACKET_VNET_HDR: libc::c_int = 15;
        let c = std::ffi::CString::new(dev)?;
        // SAFETY: plain libc calls on a descriptor we own.
        unsafe {
            let ifindex = libc::if_nametoindex(c.as_ptr());
            if ifindex == 0 {
                bail!("no interface {dev}");
            }
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let on: libc::c_int = 1;
            if libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::SOL_PACKET,
                PACKET_VNET_HDR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) != 0
            {
                bail!("PACKET_VNET_HDR: {}", std::io::Error::last_os_error());
            }
            Ok(VnetSender {
                fd,
                ifindex: ifindex as i32,
            })
        }
    }

    /// Send `frame` with a virtio-net header saying NEEDS_CSUM: the checksum over the bytes from
    /// `csum_start` is still to be written at `csum_start + csum_offset`.
    pub fn send_partial(&self, frame: &[u8], csum_start: u16, csum_offset: u16) -> Result<()> {
        const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
        // struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
        let mut pkt = vec![VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 0, 0];
        pkt.extend_from_slice(&csum_start.to_le_bytes());
        pkt.extend_from_slice(&csum_offset.to_le_bytes());
        pkt.extend_from_slice(frame);
        // SAFETY: sending from a buffer we own to an address we built.
        let n = unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = self.ifindex;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&frame[..6]);
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            bail!("sendto (vnet header): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Removes a node's pins (both roles) when dropped.
struct PinGuard(String);

impl Drop for PinGuard {
    fn drop(&mut self) {
        for role in ["edge", "backend"] {
            let _ = NodePins::new(
                Path::new(synwall_config::DEFAULT_PIN_ROOT),
                &format!("{}{role}", self.0),
            )
            .remove();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_nodes();
        drop(PinGuard(self.name.clone()));
    }
}

/// One frame that came back to the client, decoded by etherparse.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The crafted client port it answers (TCP destination port, or the source port of the
    /// TCP header an ICMP error quotes).
    pub client_port: u16,
    /// Source and destination addresses.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The VLAN ids of its tags, outermost first.
    pub vlans: Vec<u16>,
    /// The frame's length.
    pub len: usize,
    /// TCP: source port, flags, seq, ack, MSS and window-scale options, payload. None for ICMP.
    pub tcp: Option<ReplyTcp>,
    /// ICMP or ICMPv6 error type.
    pub icmp_type: Option<u8>,
}

/// The TCP part of a [`Reply`].
#[derive(Clone, Debug)]
pub struct ReplyTcp {
    pub sport: u16,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: Option<(u32, u32)>,
    pub payload: Vec<u8>,
    /// The TCP checksum (and the IPv4 header checksum) verify.
    pub checksums_ok: bool,
}

/// The flags byte of an etherparse TCP header.
pub fn flags_of(t: &etherparse::TcpHeader) -> u8 {
    (t.fin as u8)
        | (t.syn as u8) << 1
        | (t.rst as u8) << 2
        | (t.psh as u8) << 3
        | (t.ack as u8) << 4
        | (t.urg as u8) << 5
        | (t.ece as u8) << 6
        | (t.cwr as u8) << 7
}

impl Reply {
    /// Decode a frame; None unless it is TCP or an ICMP error quoting TCP.
    pub fn decode(frame: &[u8]) -> Option<Reply> {
        use etherparse::{LinkExtHeader, NetHeaders, PacketHeaders, TcpOptionElement};
        let h = PacketHeaders::from_ethernet_slice(frame).ok()?;
        let vlans = h
            .link_exts
            .iter()
            .filter_map(|e| match e {
                LinkExtHeader::Vlan(v) => Some(v.vlan_id.value()),
                _ => None,
            })
            .collect();
        let (src, dst): (IpAddr, IpAddr) = match h.net.as_ref()? {
            NetHeaders::Ipv4(ip, _) => (ip.source.into(), ip.destination.into()),
            NetHeaders::Ipv6(ip, _) => (ip.source.into(), ip.destination.into()),
            NetHeaders::Arp(_) => return None,
        };
        match h.transport.as_ref()? {
            etherparse::TransportHeader::Tcp(t) => {
                let payload = h.payload.slice();
                let checksums_ok = match h.net.as_ref()? {
                    NetHeaders::Ipv4(ip, _) => {
                        ip.header_checksum == ip.calc_header_checksum()
                            && t.calc_checksum_ipv4(ip, payload).ok() == Some(t.checksum)
                    }
                    NetHeaders::Ipv6(ip, _) => {
                        t.calc_checksum_ipv6(ip, payload).ok() == Some(t.checksum)
                    }
                    NetHeaders::Arp(_) => false,
                };
                let mut r = ReplyTcp {
                    sport: t.source_port,
                    flags: flags_of(t),
                    seq: t.sequence_number,
                    ack: t.acknowledgment_number,
                    mss: None,
                    wscale: None,
                    sack_permitted: false,
                    timestamps: None,
                    payload: payload.to_vec(),
                    checksums_ok,
                };
                for o in t.options_iterator().flatten() {
                    match o {
                        TcpOptionElement::MaximumSegmentSize(m) => r.mss = Some(m),
                        TcpOptionElement::WindowScale(w) => r.wscale = Some(w),
                        TcpOptionElement::SelectiveAcknowledgementPermitted => {
                            r.sack_permitted = true
                        }
                        TcpOptionElement::Timestamp(a, b) => r.timestamps = Some((a, b)),
                        _ => {}
                    }
                }
                Some(Reply {
                    client_port: t.destination_port,
                    src,
                    dst,
                    vlans,
                    len: frame.len(),
                    tcp: Some(r),
                    icmp_type: None,
                })
            }
            etherparse::TransportHeader::Icmpv4(i) => {
                let ty = i.to_bytes()[0];
                // Errors: unreachable, redirect, time exceeded, parameter problem.
                if ![3, 5, 11, 12].contains(&ty) {
                    return None;
                }
                Self::quoted(h.payload.slice(), src, dst, vlans, frame.len(), ty)
            }
            etherparse::TransportHeader::Icmpv6(i) => {
                let ty = i.to_bytes()[0];
                if ty >= 128 {
                    return None; // informational (echo, neighbour discovery, MLD)
                }
                Self::quoted(h.payload.slice(), src, dst, vlans, frame.len(), ty)
            }
            _ => None,
        }
    }

    fn quoted(
        quoted: &[u8],
        src: IpAddr,
        dst: IpAddr,
        vlans: Vec<u16>,
        len: usize,
        ty: u8,
    ) -> Option<Reply> {
        let q = etherparse::LaxSlicedPacket::from_ip(quoted).ok()?;
        let Some(etherparse::TransportSlice::Tcp(t)) = q.transport else {
            return None;
        };
        Some(Reply {
            client_port: t.source_port(),
            src,
            dst,
            vlans,
            len,
            tcp: None,
            icmp_type: Some(ty),
        })
    }

    /// A SYN+ACK.
    pub fn is_synack(&self) -> bool {
        self.tcp
            .as_ref()
            .is_some_and(|t| t.flags & (SYN | ACK | RST) == SYN | ACK)
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        match (&self.tcp, self.icmp_type) {
            (Some(t), _) => format!(
                "TCP {}:{} -> {}:{} flags {:#04x} seq {} ack {} ({} bytes)",
                self.src, t.sport, self.dst, self.client_port, t.flags, t.seq, t.ack, self.len
            ),
            (None, Some(ty)) => format!(
                "ICMP error type {ty} from {} quoting client port {}",
                self.src, self.client_port
            ),
            _ => "?".into(),
        }
    }
}

/// Describe a list of replies.
pub fn describe(rs: &[Reply]) -> String {
    if rs.is_empty() {
        return "nothing".into();
    }
    rs.iter()
        .map(Reply::describe)
        .collect::<Vec<_>>()
        .join("; ")
}
