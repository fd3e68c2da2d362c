//! The abuse controls (SPEC section 10) against the real programs, in network namespaces: client
//! | edge (a router, `synwall run` with the edge program on its client-side veth) | backend
//! (`synwall run`, a real kernel and real servers), as in `hostile_netns.rs`. Crafted frames leave
//! the client through `AF_PACKET`; what comes back is captured on the client's interface, the
//! side where the spoofed victims' prefixes are. Real connections are the client kernel's.
//!
//! - `reflection_flood_stays_within_the_budget`: spoofed SYNs carrying the addresses of one
//!   victim /24, far faster than its budget: the SYN+ACKs that reach the victim's side stay
//!   within `burst + rate * time`, while real clients of another /24 complete every connection;
//!   `synwall status` names the victim prefix as limited.
//! - `allow_list_is_exempt_and_deny_list_gets_nothing`: a flood from an allowed prefix is answered
//!   SYN for SYN (control: the same flood from a prefix not listed is cut to its budget); a denied
//!   client's SYNs, ACKs and data get nothing, the counter says why, and a real client from a
//!   denied address cannot connect (controls: the same frames from addresses not listed, a real
//!   client from the address beside it).
//! - `idle_promoted_connection_survives_a_cache_flush`: in strict mode, completed handshakes from
//!   many owned addresses (each ACK sent twice, so each flow looks active) do not evict an idle
//!   real connection that carried data: it continues. The same attack on the old single LRU
//!   (`promoted_cache = 0`) kills it: its next segment and retransmissions are `strict_drop`.
//! - `flow_budget_limits_new_flows_per_prefix`: handshakes from one owned /24 beyond its budget
//!   of new flows are `drop_flow_budget`; another /24's are admitted.
//! - `reload_changes_lists_and_budget_without_a_gap`: while the edge's config is rewritten and
//!   reloaded again and again (lists, budgets, node cap), a prober's SYNs from a prefix every
//!   configuration denies are never answered and those from a prefix every configuration allows
//!   always are; after the reloads the last configuration's changes are in force.
//!
//! Needs root (CI=true: fail, else skip).

use crate::common::{Lab, LabOptions, Reply, PORT};
use anyhow::{ensure, Context, Result};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use synwall_testkit::frame::{self, Tcp, ACK, PSH};
use synwall_testkit::topo::{self, BACKEND_V4, CLIENT_IF};
use synwall_testkit::{require_privileges, synwall, tcp, unique_prefix, RawSender};

fn lab(strict: bool, edge_extra: &str) -> Result<Lab> {
    Lab::build(
        &unique_prefix(),
        &LabOptions {
            strict,
            edge_extra: edge_extra.to_string(),
            ..Default::default()
        },
    )
}

/// SYN options without timestamps, so that a hand-made handshake needs no timestamp bookkeeping.
fn no_ts_options() -> Vec<u8> {
    vec![2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1]
}

fn syn(sport: u16) -> Tcp {
    Tcp {
        options: no_ts_options(),
        ..Tcp::syn(sport, PORT)
    }
}

/// A SYN from `src`:`sport` to the protected service (IPv4 or IPv6 by `src`).
fn syn_from(lab: &Lab, src: IpAddr, sport: u16) -> Vec<u8> {
    frame::frame(
        lab.macs(),
        &[],
        src,
        topo::backend_addr(src.is_ipv6()),
        &syn(sport),
    )
}

fn in_prefix(a: &IpAddr, p: &str) -> bool {
    p.parse::<synwall_engine::Prefix>().unwrap().contains(a)
}

/// SYN+ACKs among `replies` whose destination is in prefix `p`.
fn synacks_to(replies: &[Reply], p: &str) -> Vec<Reply> {
    replies
        .iter()
        .filter(|r| r.is_synack() && in_prefix(&r.dst, p))
        .cloned()
        .collect()
}

fn status_json(lab_name: &str) -> Result<serde_json::Value> {
    let out = std::process::Command::new(synwall())
        .args(["status", "--json", "--node", &format!("{lab_name}edge")])
        .output()?;
    ensure!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn prefix_of(lab: &Lab) -> String {
    // The edge's node name is the lab's prefix + "edge" (common::Lab::build).
    lab.lab
        .edge
        .name()
        .strip_suffix('e')
        .expect("the edge namespace is PREFIX + e")
        .to_string()
}

/// Spoofed SYNs from one victim /24 at ~3000 per second for 3 s, budget 200/s burst 100: at the
/// victim's side, at most `100 + 200 * t` SYN+ACKs; 30 real connections from the client's own /24
/// meanwhile, all completed.
#[test]
fn reflection_flood_stays_within_the_budget() -> Result<()> {
    if !require_privileges("reflection_flood_stays_within_the_budget") {
        return Ok(());
    }
    const RATE: f64 = 200.0;
    const BURST: f64 = 100.0;
    let lab = lab(false, "[edge.budget]\nrate = 200\nburst = 100\n")?;
    let name = prefix_of(&lab);
    let ls = lab.listen(PORT)?;
    let srv = tcp::EchoServer::start(ls.into_iter().next().context("a listener")?)?;
    let victim = "10.77.5.0/24";

    // Real clients, from 10.66.1.2 (another /24), one connection every 100 ms.
    let to = SocketAddr::new(BACKEND_V4.into(), PORT);
    let clients = lab
        .lab
        .client
        .spawn_thread(move || -> Vec<Result<Duration>> {
            (0..30u32)
                .map(|i| {
                    std::thread::sleep(Duration::from_millis(100));
                    let t0 = Instant::now();
                    let mut s = tcp::connect(to, None, Duration::from_secs(10))?;
                    let took = t0.elapsed();
                    let data = tcp::pattern(200, i);
                    let (got, _) = tcp::exchange(&mut s, &data, Duration::from_secs(10))?;
                    ensure!(got == tcp::transform(&data), "connection {i}: wrong echo");
                    Ok(took)
                })
                .collect()
        })?;

    // The flood: spoofed sources all over the victim /24, any port.
    let start = Instant::now();
    let mut sent = 0u64;
    let mut replies = Vec::new();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(3) {
        for _ in 0..30 {
            n += 1;
            let src = IpAddr::from([10, 77, 5, (n % 254 + 1) as u8]);
            lab.send(&syn_from(&lab, src, 1024 + (n % 60000) as u16))?;
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
        replies.extend(lab.new_replies()?);
    }
    let flood_time = start.elapsed().as_secs_f64();
    let results = clients.join().expect("client thread")?;
    std::thread::sleep(Duration::from_millis(500));
    replies.extend(lab.new_replies()?);
    drop(srv);

    let to_victim = synacks_to(&replies, victim).len() as f64;
    let allowed = BURST + RATE * flood_time;
    let completed = results.iter().filter(|r| r.is_ok()).count();
    let mut connects: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    connects.sort();
    eprintln!(
        "flood: {sent} spoofed SYNs from {victim} in {flood_time:.2} s; {to_victim} SYN+ACKs reached \
         the victim's side, the budget allows {allowed:.0} ({:.2}x); real clients: {completed}/30 \
         completed, slowest connect {:?}",
        to_victim / allowed,
        connects.last()
    );
    for r in results.iter().filter(|r| r.is_err()) {
        eprintln!("  real client failed: {:#}", r.as_ref().unwrap_err());
    }
    ensure!(
        completed == 30,
        "only {completed} of 30 real connections completed"
    );
    ensure!(
        sent as f64 > 10.0 * allowed,
        "the flood was too slow to test a budget"
    );
    // Within the budget (a few SYN+ACKs of slack for the clock around the flood's ends) ...
    ensure!(
        to_victim <= allowed * 1.05 + 5.0,
        "{to_victim} SYN+ACKs reached the victim, the budget allows {allowed:.0}"
    );
    // ... and the capture does see the victim's share (the positive control).
    ensure!(
        to_victim >= allowed * 0.6,
        "only {to_victim} SYN+ACKs of the {allowed:.0} the budget allows were seen"
    );
    // The operator sees who is being limited.
    let st = status_json(&name)?;
    let edge = &st["programs"][0];
    ensure!(
        edge["counters"]["drop_syn_budget"].as_u64() > Some(0),
        "{edge}"
    );
    let reflection = &edge["abuse"]["budgets"][0];
    ensure!(
        reflection["name"] == "reflection" && reflection["prefixes"]["top"][0]["prefix"] == victim,
        "status does not name {victim} first: {reflection}"
    );
    Ok(())
}

/// Connect from `src` (an address of the calling thread's namespace) to `to`, giving up after
/// `limit`.
fn connect_from(src: Ipv4Addr, to: SocketAddr, limit: Duration) -> std::io::Result<TcpStream> {
    // SAFETY: a fresh socket, owned by the TcpStream right away; the sockaddr structs are zeroed,
    // filled field by field and passed with their true sizes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes(src.octets());
        if libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        stream.set_write_timeout(Some(limit))?;
        let SocketAddr::V4(t) = to else {
            panic!("IPv4 only")
        };
        let mut da: libc::sockaddr_in = std::mem::zeroed();
        da.sin_family = libc::AF_INET as libc::sa_family_t;
        da.sin_port = t.port().to_be();
        da.sin_addr.s_addr = u32::from_ne_bytes(t.ip().octets());
        if libc::connect(
            fd,
            (&da as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

#[test]
fn allow_list_is_exempt_and_deny_list_gets_nothing() -> Result<()> {
    if !require_privileges("allow_list_is_exempt_and_deny_list_gets_nothing") {
        return Ok(());
    }
    let lab = lab(
        false,
        "[edge.budget]\nrate = 50\nburst = 20\n\
         [edge.deny]\nprefixes = [\"10.66.1.3/32\", \"10.88.0.0/16\", \"fd66:1::3\"]\n\
         [edge.allow]\nprefixes = [\"10.99.0.0/16\", \"10.88.1.0/24\"]\n",
    )?;
    let ls = lab.listen(PORT)?;
    let srv = tcp::EchoServer::start(ls.into_iter().next().context("a listener")?)?;
    let m = lab.macs();
    let backend = IpAddr::from(BACKEND_V4);

    // A flood of 300 SYNs from an allowed /24: every one answered, none charged to a budget.
    // Control: the same from a /24 nobody listed is cut to its budget.
    for (net, want_all) in [([10, 99, 1], true), ([10, 98, 1], false)] {
        let frames: Vec<Vec<u8>> = (0..300u16)
            .map(|i| {
                syn_from(
                    &lab,
                    IpAddr::from([net[0], net[1], net[2], (i % 250 + 1) as u8]),
                    2000 + i,
                )
            })
            .collect();
        let t0 = Instant::now();
        let probe = lab.probe(&frames)?;
        let took = t0.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(300));
        let p = format!("{}.{}.{}.0/24", net[0], net[1], net[2]);
        let answered = synacks_to(&lab.new_replies()?, &p).len() as u64;
        let e = |c: &str| probe.edge.get(c).copied().unwrap_or(0);
        eprintln!("300 SYNs from {p}: {answered} answered in {took:.2} s; edge {probe}");
        if want_all {
            ensure!(
                answered == 300,
                "{p} is allowed: {answered} of 300 answered"
            );
            ensure!(
                e("syn_answered_allowed") == 300 && e("drop_syn_budget") == 0,
                "{probe}"
            );
        } else {
            let allowed = 20.0 + 50.0 * took;
            ensure!(
                (answered as f64) <= allowed + 2.0 && answered >= 20,
                "{p}: {answered} answered, the budget allows {allowed:.0}"
            );
            ensure!(e("drop_syn_budget") == 300 - answered, "{probe}");
        }
    }

    // Denied: SYNs (IPv4 and IPv6), ACKs and data get nothing, and `drop_denied` counts each;
    // deny wins over allow (10.88.1.0/24 is in both). Controls: the same frames from addresses
    // not listed are answered / forwarded.
    let ack = |sport| Tcp {
        sport,
        dport: PORT,
        seq: 7,
        ack: 0x1234_5678,
        flags: ACK | PSH,
        window: 502,
        options: Vec::new(),
        payload: b"hello".to_vec(),
    };
    let v6 = |s: &str| -> IpAddr { s.parse().unwrap() };
    type Want = &'static [(&'static str, u64)];
    const DENIED: Want = &[("drop_denied", 1)];
    const NONE: Want = &[];
    let cases: Vec<(&str, IpAddr, bool, Want, Want)> = vec![
        (
            "SYN from a denied /16",
            IpAddr::from([10, 88, 7, 1]),
            true,
            DENIED,
            NONE,
        ),
        (
            "SYN denied and allowed",
            IpAddr::from([10, 88, 1, 1]),
            true,
            DENIED,
            NONE,
        ),
        (
            "SYN from a denied /32",
            IpAddr::from([10, 66, 1, 3]),
            true,
            DENIED,
            NONE,
        ),
        (
            "IPv6 SYN from a denied address",
            v6("fd66:1::3"),
            true,
            DENIED,
            NONE,
        ),
        (
            "data from a denied /16",
            IpAddr::from([10, 88, 7, 1]),
            false,
            DENIED,
            NONE,
        ),
        (
            "control: SYN beside the denied /32",
            IpAddr::from([10, 66, 1, 4]),
            true,
            &[("syn_answered", 1)],
            NONE,
        ),
        (
            "control: IPv6 SYN beside it",
            v6("fd66:1::4"),
            true,
            &[("syn_answered", 1)],
            NONE,
        ),
        (
            "control: data from a prefix not listed",
            IpAddr::from([10, 87, 7, 1]),
            false,
            &[("fwd_non_syn", 1)],
            &[("backend_ack_invalid", 1)],
        ),
    ];
    for (what, src, is_syn, edge, be) in cases {
        let dst = topo::backend_addr(src.is_ipv6());
        let got = lab.probe_exact(
            |port| {
                let t = if is_syn { syn(port) } else { ack(port) };
                vec![frame::frame(m, &[], src, dst, &t)]
            },
            edge,
            be,
        )?;
        let back = lab.replies(
            got.port,
            Duration::from_millis(if is_syn { 500 } else { 0 }),
        )?;
        let answered = back.iter().any(Reply::is_synack);
        eprintln!("{what}: edge {}; answered {answered}", got.probe);
        got.counters.map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        ensure!(
            answered == (is_syn && what.starts_with("control")),
            "{what}: answered {answered}"
        );
    }

    // A real client from the denied address cannot connect, and the counter says why; one from
    // the address beside it can (10.66.1.4 is not listed).
    for a in ["10.66.1.3/24", "10.66.1.4/24"] {
        lab.lab.client.addr(CLIENT_IF, a)?;
    }
    let to = SocketAddr::new(backend, PORT);
    let before = lab.snaps()?.0["drop_denied"];
    let denied = lab.lab.client.enter(move || {
        connect_from(Ipv4Addr::new(10, 66, 1, 3), to, Duration::from_millis(2500)).map(drop)
    })?;
    let after = lab.snaps()?.0["drop_denied"];
    ensure!(denied.is_err(), "a client at a denied address connected");
    ensure!(
        after > before,
        "drop_denied did not count the denied client's SYNs"
    );
    let ok = lab.lab.client.enter(move || -> Result<Vec<u8>> {
        let mut s = connect_from(Ipv4Addr::new(10, 66, 1, 4), to, Duration::from_secs(5))?;
        Ok(tcp::exchange(&mut s, b"allowed in", Duration::from_secs(5))?.0)
    })??;
    ensure!(
        ok == tcp::transform(b"allowed in"),
        "control client: wrong echo"
    );
    let replies = lab.all_replies(Duration::ZERO)?;
    ensure!(
        replies
            .iter()
            .all(|r| r.dst != IpAddr::from([10, 66, 1, 3])),
        "something came back to the denied client"
    );
    drop(srv);
    Ok(())
}

/// An interactive echo server on one connection: each read is answered with its transform.
fn serve_interactive(l: std::net::TcpListener) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || -> Result<()> {
        l.set_nonblocking(false)?;
        let (mut s, _) = l.accept()?;
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&tcp::transform(&buf[..n]))?;
        }
    })
}

/// One round trip on an established connection, within `limit`.
fn round_trip(s: &mut TcpStream, data: &[u8], limit: Duration) -> Result<()> {
    s.set_read_timeout(Some(limit))?;
    s.write_all(data)?;
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).context("no answer")?;
    ensure!(got == tcp::transform(data), "wrong answer");
    Ok(())
}

/// Run the calling thread on `cpu` only (`None`: on every CPU again).
fn pin_to(cpu: Option<usize>) {
    // SAFETY: a zeroed cpu_set_t with bits set, for this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        for c in 0..n {
            if cpu.is_none_or(|p| p == c) {
                libc::CPU_SET(c, &mut set);
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Complete `n` handshakes through the edge from owned addresses of `net`/24 (no timestamps), and
/// send each handshake ACK `acks` times. Returns how many SYN+ACKs came back. Batches of frames
/// leave from every CPU in turn: a veth runs the edge's XDP program on the sending CPU, and a
/// flood reaches every CPU of a real edge (RSS). (The kernel's LRU keeps an entry a CPU made in
/// that CPU's pending list until the CPU makes another, where no other CPU evicts it.)
fn handshakes(lab: &Lab, net: [u8; 3], n: u32, acks: u32) -> Result<u32> {
    let m = lab.macs();
    let dst = IpAddr::from(BACKEND_V4);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut done = 0;
    let mut first = 0;
    while first < n {
        pin_to(Some((first / 64) as usize % cpus));
        let batch: Vec<(IpAddr, Tcp)> = (first..(first + 64).min(n))
            .map(|i| {
                let src = IpAddr::from([net[0], net[1], net[2], (i % 250 + 1) as u8]);
                (src, syn(1024 + (i / 250) as u16 * 8 + (i % 8) as u16))
            })
            .collect();
        let mut pending: Vec<(IpAddr, Tcp)> = batch.clone();
        for (src, t) in &batch {
            lab.send(&frame::frame(m, &[], *src, dst, t))?;
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while !pending.is_empty() && Instant::now() < deadline {
            for r in lab.new_replies()? {
                let Some(rt) = r.tcp.as_ref().filter(|_| r.is_synack()) else {
                    continue;
                };
                if let Some(i) = pending.iter().position(|(src, t)| {
                    r.dst == *src && rt.ack == t.seq.wrapping_add(1) && r.client_port == t.sport
                }) {
                    let (src, t) = pending.swap_remove(i);
                    let a = Tcp {
                        sport: t.sport,
                        dport: t.dport,
                        seq: t.seq.wrapping_add(1),
                        ack: rt.seq.wrapping_add(1),
                        flags: ACK,
                        window: 502,
                        options: Vec::new(),
                        payload: Vec::new(),
                    };
                    let f = frame::frame(m, &[], src, dst, &a);
                    for _ in 0..acks {
                        lab.send(&f)?;
                    }
                    done += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        first += 64;
    }
    pin_to(None);
    Ok(done)
}

/// The attack's handshakes. The kernel's LRU is approximate (per-CPU lists, a reference bit):
/// four times its size did not always evict an idle entry; sixteen times does.
const FLUSH_FLOWS: u32 = 16_384;

/// The real connection's fate after a cache flush: `Ok` if it still works.
fn flush_and_try(promoted_cache: u32) -> Result<(Result<()>, Result<()>, u64)> {
    let lab = lab(
        true,
        &format!(
            "flow_cache = 1024\npromoted_cache = {promoted_cache}\n\
             [edge.budget]\nenabled = false\n[edge.flow_budget]\nenabled = false\n"
        ),
    )?;
    let ls = lab.listen(PORT)?;
    let server = serve_interactive(ls.into_iter().next().context("a listener")?);
    let to = SocketAddr::new(BACKEND_V4.into(), PORT);
    let mut real = lab
        .lab
        .client
        .enter(move || tcp::connect(to, None, Duration::from_secs(5)))??;
    // It carries data (and is then idle during the attack).
    round_trip(&mut real, b"first request", Duration::from_secs(5))?;
    // FLUSH_FLOWS completed handshakes from owned addresses, sixteen times the probation
    // segment, each ACK sent twice.
    let (e0, _) = lab.snaps()?;
    let done = handshakes(&lab, [10, 66, 9], FLUSH_FLOWS, 2)?;
    ensure!(
        done >= FLUSH_FLOWS - FLUSH_FLOWS / 50,
        "only {done} of {FLUSH_FLOWS} handshakes completed"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (e1, _) = lab.snaps()?;
    let d = |c: &str| e1[c] - e0[c];
    eprintln!(
        "attack: {done} SYN+ACKs; strict_ack_valid {}, strict_fwd_cached {}, strict_drop {}, \
         syn_answered {}",
        d("strict_ack_valid"),
        d("strict_fwd_cached"),
        d("strict_drop"),
        d("syn_answered")
    );
    let drops_before = lab.snaps()?.0["strict_drop"];
    let after = round_trip(&mut real, b"after the flood", Duration::from_secs(4));
    let drops = lab.snaps()?.0["strict_drop"] - drops_before;
    drop(real);
    // A connection the edge cut never closes on the server's side (its FIN is dropped too): its
    // thread is left blocked, and goes with the test process.
    if after.is_ok() {
        let _ = server.join();
    }
    Ok((Ok(()), after, drops))
}

#[test]
fn idle_promoted_connection_survives_a_cache_flush() -> Result<()> {
    if !require_privileges("idle_promoted_connection_survives_a_cache_flush") {
        return Ok(());
    }
    let (_, protected, drops) = flush_and_try(1024)?;
    eprintln!(
        "probation 1024 + protected 1024: the idle connection after {FLUSH_FLOWS} flows: {protected:?} \
         ({drops} strict_drop)"
    );
    let (_, single, old_drops) = flush_and_try(0)?;
    eprintln!(
        "one LRU of 1024 (promoted_cache = 0): the idle connection after {FLUSH_FLOWS} flows: {single:?} \
         ({old_drops} strict_drop)"
    );
    protected.context("the promoted connection died in the flush")?;
    ensure!(drops == 0, "{drops} of its segments were strict_drop");
    // The control: the same attack on one LRU evicts it, and its segments are dropped.
    ensure!(
        single.is_err(),
        "the single LRU kept the idle flow: the attack proved nothing"
    );
    ensure!(
        old_drops > 0,
        "the single LRU's lost flow was not counted strict_drop"
    );
    Ok(())
}

#[test]
fn flow_budget_limits_new_flows_per_prefix() -> Result<()> {
    if !require_privileges("flow_budget_limits_new_flows_per_prefix") {
        return Ok(());
    }
    let lab = lab(true, "[edge.flow_budget]\nrate = 1\nburst = 50\n")?;
    let _ls = lab.listen(PORT)?;
    let (e0, _) = lab.snaps()?;
    let done = handshakes(&lab, [10, 66, 9], 200, 1)?;
    std::thread::sleep(Duration::from_millis(300));
    let (e1, _) = lab.snaps()?;
    let d = |c: &str| e1[c] - e0[c];
    eprintln!(
        "200 handshakes from one /24: {done} SYN+ACKs, strict_ack_valid {}, drop_flow_budget {}",
        d("strict_ack_valid"),
        d("drop_flow_budget")
    );
    ensure!(done == 200, "{done} SYN+ACKs");
    // 50 at once, plus one a second for the time the test took.
    ensure!(
        (50..=55).contains(&d("strict_ack_valid")),
        "{} admitted",
        d("strict_ack_valid")
    );
    ensure!(d("drop_flow_budget") == 200 - d("strict_ack_valid"));
    // Another /24 has its own budget.
    let more = handshakes(&lab, [10, 66, 8], 10, 1)?;
    std::thread::sleep(Duration::from_millis(300));
    let (e2, _) = lab.snaps()?;
    ensure!(more == 10 && e2["strict_ack_valid"] - e1["strict_ack_valid"] == 10);
    Ok(())
}

/// The edge config of one reload: the invariant entries (10.88.1.0/24 denied through one of three
/// nested prefixes, 10.99.1.0/24 allowed through one of three), other prefixes that come and go,
/// a budget that alternates, a node cap on and off.
fn reload_config(round: usize) -> String {
    let deny_via = [
        "10.88.1.0/24",
        "10.88.0.0/16",
        "10.88.1.0/25\", \"10.88.1.128/25",
    ][round % 3];
    let allow_via = ["10.99.0.0/16", "10.99.1.0/24", "10.0.0.0/8"][(round / 3) % 3];
    let noise = [
        "",
        ", \"192.0.2.0/24\"",
        ", \"203.0.113.0/24\", \"2001:db8::/32\"",
    ][round % 3];
    let (rate, burst) = [(5, 5), (500, 100), (2, 1)][round % 3];
    let cap = if round % 2 == 0 {
        "node_rate = 100000\nnode_burst = 100000\n"
    } else {
        ""
    };
    format!(
        "[edge.budget]\nrate = {rate}\nburst = {burst}\n{cap}\
         [edge.deny]\nprefixes = [\"{deny_via}\"{noise}]\n\
         [edge.allow]\nprefixes = [\"{allow_via}\"]\n"
    )
}

#[test]
fn reload_changes_lists_and_budget_without_a_gap() -> Result<()> {
    if !require_privileges("reload_changes_lists_and_budget_without_a_gap") {
        return Ok(());
    }
    let mut lab = lab(false, &reload_config(0))?;
    let base = std::fs::read_to_string(&lab.edge_config)?;
    let head = base
        .split("[edge.budget]")
        .next()
        .context("the lab's edge config has the budget section")?
        .to_string();
    let m = lab.macs();
    let dst = IpAddr::from(BACKEND_V4);

    // The prober: SYNs from the always-denied and the always-allowed /24, alternately, each from
    // its own port, ~1000 per second, in the client's namespace.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let prober = lab.lab.client.spawn_thread(move || -> Result<u32> {
        let tx = RawSender::open(CLIENT_IF)?;
        let mut n = 0u32;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            for (net, base) in [([10, 88, 1], 10_000u32), ([10, 99, 1], 30_000)] {
                let src = IpAddr::from([net[0], net[1], net[2], (n % 250 + 1) as u8]);
                let port = (base + n % 20_000) as u16;
                tx.send(&frame::frame(m, &[], src, dst, &syn(port)))?;
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(n)
    })?;
    let edge0 = lab.snaps()?.0;
    let mut replies = Vec::new();
    let rounds = 12;
    for round in 1..=rounds {
        std::fs::write(&lab.edge_config, format!("{head}{}", reload_config(round)))?;
        let d = lab.edge.as_mut().context("edge node")?;
        d.signal(nix::sys::signal::Signal::SIGHUP)?;
        let said = d.wait_line("reload", Duration::from_secs(10))?;
        ensure!(
            said.starts_with("reloaded changes="),
            "round {round}: {said}"
        );
        replies.extend(lab.new_replies()?);
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let probes = prober.join().expect("prober")??;
    std::thread::sleep(Duration::from_millis(500));
    replies.extend(lab.new_replies()?);
    let edge1 = lab.snaps()?.0;
    let d = |c: &str| edge1[c] - edge0[c];
    let denied_answered = synacks_to(&replies, "10.88.1.0/24").len() as u64;
    let allowed_answered = synacks_to(&replies, "10.99.1.0/24").len() as u64;
    eprintln!(
        "{rounds} reloads, {probes} probes from each /24: denied answered {denied_answered}, \
         allowed answered {allowed_answered}; drop_denied {}, syn_answered_allowed {}, \
         drop_syn_budget {}, syn_answered {}",
        d("drop_denied"),
        d("syn_answered_allowed"),
        d("drop_syn_budget"),
        d("syn_answered")
    );
    ensure!(probes > 500, "only {probes} probes");
    ensure!(
        denied_answered == 0,
        "{denied_answered} SYNs from the denied /24 were answered"
    );
    // Every probe was decided by its list, and nothing else was: the allowed /24's SYNs far exceed
    // every budget of the rounds, so a moment without the allow list would show as budget drops.
    ensure!(
        d("drop_denied") == u64::from(probes),
        "drop_denied {}",
        d("drop_denied")
    );
    ensure!(
        d("syn_answered_allowed") == u64::from(probes),
        "syn_answered_allowed {}",
        d("syn_answered_allowed")
    );
    ensure!(d("drop_syn_budget") == 0 && d("syn_answered") == 0);
    ensure!(
        allowed_answered == u64::from(probes),
        "{allowed_answered} of {probes} answered"
    );

    // A reload's changes are in force: round 13 denies 192.0.2.0/24 (round 12 did not) and
    // raises the burst from 5 to 100.
    std::fs::write(&lab.edge_config, format!("{head}{}", reload_config(13)))?;
    let d = lab.edge.as_mut().context("edge node")?;
    d.signal(nix::sys::signal::Signal::SIGHUP)?;
    let said = d.wait_line("reload", Duration::from_secs(10))?;
    ensure!(said.starts_with("reloaded changes="), "{said}");
    let denied_now = lab.probe_exact(
        |port| {
            vec![frame::frame(
                m,
                &[],
                IpAddr::from([192, 0, 2, 9]),
                dst,
                &syn(port),
            )]
        },
        &[("drop_denied", 1)],
        &[],
    )?;
    denied_now
        .counters
        .map_err(|e| anyhow::anyhow!("192.0.2.9 after the reload that denies it: {e}"))?;
    // Burst 100 now (it was 5): 60 SYNs from a fresh /24 are all answered.
    let frames: Vec<Vec<u8>> = (0..60u16)
        .map(|i| syn_from(&lab, IpAddr::from([10, 55, 1, (i + 1) as u8]), 5000 + i))
        .collect();
    let p = lab.probe(&frames)?;
    ensure!(
        p.edge.get("syn_answered") == Some(&60),
        "burst 100 after the reload: {p}"
    );
    Ok(())
}
