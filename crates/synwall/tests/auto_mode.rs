//! Auto mode end to end: `synwall single --auto-rate-on 300 --auto-rate-off 100
//! --auto-hold-seconds 1` on a real server's own interface, real Linux clients in another
//! namespace, and a spoofed SYN flood from an `AF_PACKET` socket.
//!
//! 1. Clients connect at ~3/s: the kernel answers their SYNs itself (`auto_syn_pass`, no
//!    `syn_answered`, no socket from `bpf_sk_assign_tcp_reqsk`, no kernel syncookie).
//! 2. A ~1500/s spoofed flood for 2 s: cookies switch on; a real client connecting during the
//!    flood gets a cookie SYN+ACK and its socket comes from the backend's kfunc.
//! 3. After the flood and the hold: a real client's SYN passes to the kernel again.
//! 4. A listener whose SYN queue is full (backlog 1, two spoofed half-open requests): the kernel
//!    answers a real client with its own syncookie, and the backend program passes that ACK to
//!    the kernel (`backend_ack_pass_auto`) instead of dropping it as a bad synwall cookie.
//!
//! The counters and the auto state are read while the daemon runs, straight from the maps of the
//! programs attached to the host's interface (found by interface, so other tests' programs are
//! never read). Also checked without privileges: bad auto flags are refused with a clear error.
//!
//! Needs root (CI=true: fail, else skip with a message).

use anyhow::{ensure, Context, Result};
use libbpf_rs::{libbpf_sys, MapCore, MapFlags, MapHandle};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use synwall_engine::AutoState;
use synwall_engine::{Counter, Counters};
use synwall_testkit::deploy::{write_secret, LAB_SECRET_FILL};
use synwall_testkit::frame::{opt_mss, Frame, SYN};
use synwall_testkit::synwall;
use synwall_testkit::tcp::{self, EchoServer};
use synwall_testkit::RawSender;
use synwall_testkit::{require_privileges, topo, unique_prefix, veth, Daemon, Netns};

const PORT: u16 = 8080;
/// The port of the listener with a one-slot queue (phase 4).
const SMALL_PORT: u16 = 8081;
const HOST_V4: Ipv4Addr = Ipv4Addr::new(10, 66, 2, 2);

/// The maps of the programs attached to one interface: the XDP answerer's counters and auto
/// state, the tcx backend's counters.
struct Probe {
    edge_counters: MapHandle,
    auto: MapHandle,
    auto_syns: MapHandle,
    backend_counters: MapHandle,
}

/// The map ids a program uses.
fn prog_map_ids(prog_id: u32) -> Result<Vec<u32>> {
    // SAFETY: plain bpf(2) wrappers; the info struct is zeroed and sized, and the id buffer
    // outlives the second call that fills it.
    unsafe {
        let fd = libbpf_sys::bpf_prog_get_fd_by_id(prog_id);
        ensure!(
            fd >= 0,
            "program {prog_id}: {}",
            std::io::Error::from_raw_os_error(-fd)
        );
        let fd = OwnedFd::from_raw_fd(fd);
        let mut info: libbpf_sys::bpf_prog_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
        let r = libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len);
        ensure!(r == 0, "program info: {r}");
        let mut ids = vec![0u32; info.nr_map_ids as usize];
        let n = info.nr_map_ids;
        info = std::mem::zeroed();
        info.nr_map_ids = n;
        info.map_ids = ids.as_mut_ptr() as u64;
        let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
        let r = libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len);
        ensure!(r == 0, "program info (maps): {r}");
        ids.truncate(info.nr_map_ids.min(n) as usize);
        Ok(ids)
    }
}

fn map_named(ids: &[u32], name: &str) -> Result<MapHandle> {
    for &id in ids {
        let m = MapHandle::from_map_id(id).with_context(|| format!("map {id}"))?;
        if m.name() == name {
            return Ok(m);
        }
    }
    anyhow::bail!("no map {name} among {ids:?}")
}

impl Probe {
    fn find(ns: &Netns, dev: &'static str) -> Result<Probe> {
        // Interface indexes belong to the namespace: query from a thread inside it.
        let (xdp, tcx) = ns.enter(move || -> Result<(u32, u32)> {
            let c = std::ffi::CString::new(dev)?;
            // SAFETY: plain libc / bpf(2) wrappers with buffers that outlive the calls.
            unsafe {
                let ifindex = libc::if_nametoindex(c.as_ptr()) as i32;
                ensure!(ifindex > 0, "no interface {dev}");
                let mut xdp = 0u32;
                let r = libbpf_sys::bpf_xdp_query_id(ifindex, 0, &mut xdp);
                ensure!(r == 0 && xdp != 0, "no XDP program on {dev} ({r})");
                let mut ids = [0u32; 8];
                let mut opts: libbpf_sys::bpf_prog_query_opts = std::mem::zeroed();
                opts.sz = std::mem::size_of::<libbpf_sys::bpf_prog_query_opts>() as _;
                opts.prog_ids = ids.as_mut_ptr();
                opts.__bindgen_anon_1.count = ids.len() as u32;
                let r = libbpf_sys::bpf_prog_query_opts(
                    ifindex,
                    libbpf_sys::BPF_TCX_INGRESS,
                    &mut opts,
                );
                let count = opts.__bindgen_anon_1.count;
                ensure!(r == 0 && count == 1, "tcx programs on {dev}: {r} {count}");
                Ok((xdp, ids[0]))
            }
        })??;
        let edge = prog_map_ids(xdp)?;
        let backend = prog_map_ids(tcx)?;
        Ok(Probe {
            edge_counters: map_named(&edge, "sw_counters")?,
            auto: map_named(&edge, "sw_auto_window")?,
            auto_syns: map_named(&edge, "sw_auto_syns")?,
            backend_counters: map_named(&backend, "sw_counters")?,
        })
    }

    fn counters(map: &MapHandle) -> Result<Counters> {
        let mut out = Counters::default();
        for c in Counter::ALL {
            let per_cpu = map
                .lookup_percpu(&(c as u32).to_ne_bytes(), MapFlags::ANY)?
                .unwrap_or_default();
            out.set(
                c,
                per_cpu
                    .iter()
                    .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap()))
                    .sum(),
            );
        }
        Ok(out)
    }

    fn edge(&self) -> Result<Counters> {
        Self::counters(&self.edge_counters)
    }

    fn backend(&self) -> Result<Counters> {
        Self::counters(&self.backend_counters)
    }

    fn auto(&self) -> Result<AutoState> {
        Ok(synwall_bpf::read_auto_state(&self.auto, &self.auto_syns)?)
    }
}

/// One real client connection: connect, exchange `len` bytes, check the echo; the server must
/// report the same peer. Returns how long the connect took.
fn client(ns: &Netns, server: &EchoServer, seed: u32) -> Result<Duration> {
    let to = server.addr();
    let (local, took) = ns.enter(move || -> Result<(SocketAddr, Duration)> {
        let t = Instant::now();
        let mut s = tcp::connect(to, None, Duration::from_secs(5))?;
        let took = t.elapsed();
        let data = tcp::pattern(2000, seed);
        let (answer, _) = tcp::exchange(&mut s, &data, Duration::from_secs(10))?;
        ensure!(answer == tcp::transform(&data), "bad echo");
        Ok((s.local_addr()?, took))
    })??;
    let acc = server.next(Duration::from_secs(10))?;
    ensure!(
        acc.peer == local && acc.received == 2000,
        "server saw {acc:?}, client was {local}"
    );
    Ok(took)
}

struct Timeline {
    start: Instant,
    lines: Vec<String>,
}

impl Timeline {
    fn note(&mut self, what: String) {
        let line = format!("{:>7.3}s  {what}", self.start.elapsed().as_secs_f64());
        eprintln!("{line}");
        self.lines.push(line);
    }
}

/// A spoofed SYN from 10.66.2.(100 + n % 100), inside the lab prefix.
fn spoofed_syn(macs: ([u8; 6], [u8; 6]), n: u64, port: u16) -> Vec<u8> {
    Frame {
        dst_mac: macs.0,
        src_mac: macs.1,
        seq: 0x5eed_0000 ^ n as u32,
        options: opt_mss(1460),
        ..Frame::new(
            IpAddr::V4(Ipv4Addr::new(10, 66, 2, 100 + (n % 100) as u8)),
            HOST_V4.into(),
            10_000 + (n % 50_000) as u16,
            port,
            SYN,
        )
    }
    .build()
}

fn state(p: &Probe) -> Result<String> {
    let (e, b, a) = (p.edge()?, p.backend()?, p.auto()?);
    Ok(format!(
        "cookies {} rate={}/s switches={}/{} | auto_syn_pass={} syn_answered={} \
         backend_syn_pass={} backend_reqsk_created={} backend_ack_invalid={} \
         backend_ack_pass_auto={}",
        if a.cookies_on { "on" } else { "off" },
        a.rate,
        a.switches_on,
        a.switches_off,
        e.get(Counter::AutoSynPass),
        e.get(Counter::SynAnswered),
        b.get(Counter::BackendSynPass),
        b.get(Counter::BackendReqskCreated),
        b.get(Counter::BackendAckInvalid),
        b.get(Counter::BackendAckPassAuto),
    ))
}

#[test]
fn auto_mode_switches_cookies_with_the_syn_rate() -> Result<()> {
    if !require_privileges("auto_mode_switches_cookies_with_the_syn_rate") {
        return Ok(());
    }
    let p = unique_prefix();
    let client_ns = Netns::create(&format!("{p}c"))?;
    let host = Netns::create(&format!("{p}s"))?;
    host.sysctl("net.ipv4.tcp_syncookies", "1")?;
    veth(&client_ns, "c0", &host, "s0")?;
    client_ns.addr("c0", "10.66.2.3/24")?;
    host.addr("s0", "10.66.2.2/24")?;
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("master.key");
    write_secret(&key, LAB_SECRET_FILL)?;
    let key = key.display().to_string();
    // A veth delivers XDP_TX frames only to a peer running XDP: pass-everything on the client.
    let pass: Vec<String> = topo::pass_all_args("c0", &key);
    let _pass = Daemon::start(&client_ns, synwall(), &pass, Duration::from_secs(20))?;
    let service = format!("{HOST_V4}/32:{PORT},{SMALL_PORT}");
    let single = Daemon::start(
        &host,
        synwall(),
        &[
            "single",
            "--iface",
            "s0",
            "--secret-file",
            &key,
            "--service",
            &service,
            "--auto-rate-on",
            "300",
            "--auto-rate-off",
            "100",
            "--auto-hold-seconds",
            "1",
        ],
        Duration::from_secs(20),
    )?;
    ensure!(
        single.ready_line().contains(" auto=300/100/1s"),
        "{}",
        single.ready_line()
    );
    // A deep accept/SYN queue, so the flood's first SYNs (passed before cookies switch on) never
    // make the kernel fall back to its own syncookies (see the report on auto mode).
    let listener = host
        .enter(|| TcpListener::bind(SocketAddr::new(HOST_V4.into(), PORT)))?
        .context("bind")?;
    // SAFETY: listen(2) again on our listening socket only changes its backlog.
    let r = unsafe { libc::listen(listener.as_raw_fd(), 4096) };
    ensure!(r == 0, "listen: {}", std::io::Error::last_os_error());
    let server = EchoServer::start(listener)?;
    let small = host
        .enter(|| TcpListener::bind(SocketAddr::new(HOST_V4.into(), SMALL_PORT)))?
        .context("bind")?;
    // SAFETY: as above; a queue of one request.
    let r = unsafe { libc::listen(small.as_raw_fd(), 1) };
    ensure!(r == 0, "listen: {}", std::io::Error::last_os_error());
    let small_server = EchoServer::start(small)?;
    let probe = Probe::find(&host, "s0")?;
    let mut tl = Timeline {
        start: Instant::now(),
        lines: Vec::new(),
    };
    tl.note(format!("start: {}", state(&probe)?));

    // 1. Real clients at ~3/s: the kernel makes every socket by a normal handshake.
    let n1 = 5u64;
    for i in 0..n1 {
        let took = client(&client_ns, &server, i as u32)?;
        tl.note(format!("phase 1 client {i} connected in {took:.1?}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    let (e1, b1, a1) = (probe.edge()?, probe.backend()?, probe.auto()?);
    let cookies1 = host.net_counter("TcpExt:SyncookiesSent")?;
    tl.note(format!("phase 1 done: {}", state(&probe)?));
    ensure!(e1.get(Counter::AutoSynPass) >= n1, "phase 1: {e1:?}");
    ensure!(e1.get(Counter::SynAnswered) == 0, "phase 1: {e1:?}");
    ensure!(b1.get(Counter::BackendReqskCreated) == 0, "phase 1: {b1:?}");
    ensure!(b1.get(Counter::BackendSynPass) >= n1, "phase 1: {b1:?}");
    ensure!(
        cookies1 == 0,
        "phase 1: the kernel sent {cookies1} syncookies"
    );
    ensure!(!a1.cookies_on && a1.switches_on == 0, "phase 1: {a1:?}");
    ensure!(a1.rate < 100, "phase 1 measured {} SYNs/s", a1.rate);

    // 2. A spoofed flood, ~1500 SYNs/s for 2 s, from sources inside the lab prefix.
    let macs = (topo::mac(&host, "s0")?, topo::mac(&client_ns, "c0")?);
    let sender = client_ns.enter(|| RawSender::open("c0"))??;
    let flood_for = Duration::from_secs(2);
    let flood = std::thread::spawn(move || -> Result<u64> {
        let start = Instant::now();
        let mut sent = 0u64;
        // 15 SYNs every 10 ms, paced against the clock (no catch-up bursts).
        while start.elapsed() < flood_for {
            for _ in 0..15 {
                let f = spoofed_syn(macs, sent, PORT);
                sender.send(&f)?;
                sent += 1;
            }
            let next = Duration::from_millis(10) * (sent / 15) as u32;
            if let Some(wait) = next.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(sent)
    });
    tl.note("phase 2: flood started".into());
    std::thread::sleep(Duration::from_millis(700));
    let a_mid = probe.auto()?;
    tl.note(format!("phase 2 mid-flood: {}", state(&probe)?));
    ensure!(
        a_mid.cookies_on,
        "cookies not on 700 ms into the flood: {a_mid:?}"
    );
    let took = client(&client_ns, &server, 100)?;
    tl.note(format!(
        "phase 2 client connected during the flood in {took:.1?}"
    ));
    let sent = flood.join().expect("flood thread")?;
    let (e2, b2, a2) = (probe.edge()?, probe.backend()?, probe.auto()?);
    tl.note(format!(
        "phase 2: flood of {sent} SYNs done: {}",
        state(&probe)?
    ));
    ensure!(a2.switches_on >= 1 && a2.cookies_on, "phase 2: {a2:?}");
    ensure!(e2.get(Counter::SynAnswered) > 0, "phase 2: {e2:?}");
    ensure!(
        b2.get(Counter::BackendReqskCreated) > b1.get(Counter::BackendReqskCreated),
        "phase 2: the client's socket did not come from a cookie: {b2:?}"
    );
    // Most of the flood was answered by XDP, not the kernel.
    ensure!(
        e2.get(Counter::SynAnswered) > sent / 2,
        "phase 2: {} of {sent} SYNs answered",
        e2.get(Counter::SynAnswered)
    );

    // 3. Quiet. The window still open when the flood stopped holds at most ~150 SYNs; after 3 s
    // the first SYN measures at most ~50/s (< off = 100), and the hold (1 s) is long over.
    std::thread::sleep(Duration::from_secs(3));
    let took = client(&client_ns, &server, 200)?;
    let (e3, b3, a3) = (probe.edge()?, probe.backend()?, probe.auto()?);
    tl.note(format!(
        "phase 3 client connected in {took:.1?}: {}",
        state(&probe)?
    ));
    ensure!(a3.switches_off >= 1 && !a3.cookies_on, "phase 3: {a3:?}");
    ensure!(
        e3.get(Counter::AutoSynPass) > e2.get(Counter::AutoSynPass),
        "phase 3: the SYN was not passed: {e3:?}"
    );
    ensure!(
        e3.get(Counter::SynAnswered) == e2.get(Counter::SynAnswered),
        "phase 3: answered with a cookie"
    );
    ensure!(
        b3.get(Counter::BackendReqskCreated) == b2.get(Counter::BackendReqskCreated),
        "phase 3: {b3:?}"
    );
    let cookies3 = host.net_counter("TcpExt:SyncookiesSent")?;
    ensure!(cookies3 == 0, "the kernel sent {cookies3} syncookies");

    // 4. Two spoofed half-open requests fill the small listener's SYN queue (their SYN+ACKs go
    // nowhere); the kernel answers the next SYN with its own syncookie.
    let spoofer = client_ns.enter(|| RawSender::open("c0"))??;
    for n in 0..3 {
        spoofer.send(&spoofed_syn(macs, 50 + n, SMALL_PORT))?;
        std::thread::sleep(Duration::from_millis(20));
    }
    let recv_before = host.net_counter("TcpExt:SyncookiesRecv")?;
    let took = client(&client_ns, &small_server, 300)?;
    let (e4, b4) = (probe.edge()?, probe.backend()?);
    let (sent4, recv4) = (
        host.net_counter("TcpExt:SyncookiesSent")?,
        host.net_counter("TcpExt:SyncookiesRecv")? - recv_before,
    );
    tl.note(format!(
        "phase 4 client (full SYN queue) connected in {took:.1?}: kernel syncookies sent \
         {sent4}, validated {recv4}: {}",
        state(&probe)?
    ));
    ensure!(recv4 >= 1, "the kernel validated none of its syncookies");
    ensure!(
        b4.get(Counter::BackendAckPassAuto) >= 1,
        "phase 4: the kernel's cookie ACK was not passed: {b4:?}"
    );
    ensure!(b4.get(Counter::BackendAckInvalid) == 0, "phase 4: {b4:?}");
    ensure!(
        e4.get(Counter::SynAnswered) == e2.get(Counter::SynAnswered),
        "phase 4: answered by XDP"
    );

    let out = single.stop()?;
    let e = &out["edge"];
    tl.note(format!("daemon stopped: edge {e}"));
    ensure!(
        e.get("auto_syn_pass") == e4.get(Counter::AutoSynPass),
        "printed {e}, read {e4:?}"
    );
    eprintln!("timeline:\n{}", tl.lines.join("\n"));
    Ok(())
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let o = std::process::Command::new(synwall())
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Bad auto flags are refused before anything is loaded (no privileges needed).
#[test]
fn bad_auto_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, hex::encode([1u8; 32])).unwrap();
    let key = key.to_str().unwrap();
    for role in ["edge", "single"] {
        let base = [
            role,
            "--iface",
            "lo",
            "--secret-file",
            key,
            "--service",
            "10.0.0.1/32:80",
        ];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            run(&v)
        };
        let (code, err) = with(&["--auto-rate-on", "300"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("missing --auto-rate-off, --auto-hold-seconds"),
            "{err}"
        );
        let (code, err) = with(&["--auto-rate-off", "5", "--auto-hold-seconds", "1"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("missing --auto-rate-on"), "{err}");
        let (code, err) = with(&[
            "--auto-rate-on",
            "100",
            "--auto-rate-off",
            "100",
            "--auto-hold-seconds",
            "1",
        ]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("must be below the on rate"), "{err}");
        let (code, err) = with(&[
            "--auto-rate-on",
            "100",
            "--auto-rate-off",
            "10",
            "--auto-hold-seconds",
            "5000000",
        ]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("--auto-hold-seconds 5000000 is too long"),
            "{err}"
        );
        let (code, err) = with(&["--auto-rate-on", "x"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("--auto-rate-on"), "{err}");
    }
    let (code, err) = run(&[
        "edge",
        "--iface",
        "lo",
        "--secret-file",
        key,
        "--service",
        "10.0.0.1/32:80",
        "--strict",
        "--auto-rate-on",
        "100",
        "--auto-rate-off",
        "10",
        "--auto-hold-seconds",
        "1",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--strict and auto mode"), "{err}");
}
