//! Hostile traffic against the real programs, in network namespaces: client | edge (a router,
//! `synwall run` with the edge program attached natively on its client-side veth) | backend
//! (`synwall run` with the tc program, a real kernel TCP stack and real servers). Frames are
//! crafted with etherparse and sent from the client with an `AF_PACKET` socket; what comes back
//! is captured on the client; the backend is observed with `ss` (SYN-RECV) and `/proc/net`
//! counters; both programs' counters are read from their pinned maps right before and after
//! each frame. Every "must not" has a positive control that shows the observer would have seen
//! it. The holes each test proves closed (SPEC section 8, `design-holes.md`):
//!
//! - `ipv6_fragment_header_cannot_smuggle_a_syn` (fragment-header bypass): a SYN behind
//!   `Fragment(offset 0, M=0) / DestOpts`, in two real IPv6 fragments, or in two IPv4 fragments,
//!   is never answered, never reaches the backend kernel (no SYN+ACK from it, no SYN-RECV), and is
//!   counted `drop_syn_fragment`; a first fragment that cuts the TCP header is `drop_fragment`;
//!   1000 wrapped SYNs create no SYN-RECV and no syncookie. Controls: a plain SYN is answered by
//!   the edge; the same wrappers to an unprotected port are reassembled and answered by the
//!   backend kernel.
//! - `strict_mode_cannot_be_bypassed_with_fragment_headers`: in strict mode a fragment-wrapped
//!   SYN, ACK and `GET /` get no handshake, no HTTP answer, no connection (`drop_syn_fragment`,
//!   `strict_drop`); a non-first fragment passes and completes nothing; a wrapped handshake ACK
//!   with a valid cookie validates at the edge but creates no socket at the backend
//!   (`drop_ack_fragment`). Controls: a real client gets HTTP 200 through the strict edge; a
//!   wrapped SYN to an unprotected port is answered by the backend kernel; the same handshake ACK
//!   unwrapped creates the socket.
//! - `routing_header_cannot_hide_the_protected_destination`: with `seg6_enabled=1` on the
//!   backend, an SRv6 SYN (segments left 1, segment list ending at the protected address, outer
//!   destination unprotected), also behind an 802.1Q tag or an atomic fragment header, is decided
//!   by its final destination: answered by the EDGE from that address (its cookie then completes
//!   at the backend; the tag is kept), or `drop_syn_fragment`; the backend kernel never has a
//!   SYN-RECV for it. A type-2 routing header's home address decides likewise. Type-0 routing
//!   headers, a type-3 one with segments left, two routing headers and IPv4 LSRR/SSRR options are
//!   `drop_source_route`; an SRH too short for its segment is malformed, whatever the address it
//!   is sent to. Controls: SRH SYNs (segments left 1 and 0, and behind a fragment header) to an
//!   unprotected port are answered by the backend kernel, so its segment routing works.
//! - `routing_header_behind_the_walk_horizon_cannot_reach_the_kernel`: an SRH to the protected
//!   address behind more extension headers than the walk takes, or in the second fragment of a
//!   datagram whose first fragment ends inside the chain (an SRH or a type-2 header there), sent
//!   to an unprotected address, is `drop_ipv6_ext_depth` / `drop_ip_malformed` at the edge; no
//!   answer, no SYN-RECV. Controls: with the chain within the bound the backend kernel routes by
//!   the SRH and answers an unprotected port, the edge answers the protected one; the same
//!   datagram cut after its TCP header is reassembled and routed by the backend kernel.
//! - `srv6_encapsulated_syn_is_judged_by_the_inner_packet`: an SRH (segments left 0 or 1) whose
//!   next header is IPv6 or IPv4, sent to an unprotected address, carrying a SYN to the protected
//!   service, is answered by the EDGE as a plain SYN+ACK from the inner destination; its cookie
//!   ACK, encapsulated the same way, is passed by the backend before the kernel decapsulates it
//!   (`backend_ack_pass_encap`) and makes the socket after (`backend_reqsk_created`: the tc
//!   program sees the packet twice); SRv6 inside SRv6 is `drop_encap_nested`. Controls: to an
//!   unprotected port the backend kernel decapsulates and answers (the backend counts both
//!   passes).
//! - `non_ethernet_interfaces_are_refused`: `check-config` and `synwall single` on a tun device
//!   fail naming its link type, and nothing is attached (no XDP, no tcx). Controls: the same on a
//!   veth checks and starts with both programs attached.
//! - `backend_can_drop_syns_that_went_around_the_edge`: a SYN to a port the backend protects and
//!   the edge does not is answered by the backend kernel by default (`backend_syn_pass`), and is
//!   `backend_syn_drop` (no answer, no SYN-RECV) with `backend.drop_syns`. Controls: an
//!   unprotected port is answered, and a handshake through the edge completes, either way.
//! - `backend_trusts_the_checksums_the_kernel_trusts`: a valid cookie ACK with a wrong checksum,
//!   sent with a virtio-net header as a `CHECKSUM_PARTIAL` skb whose checksummed part starts
//!   inside the IPv6 header, is `drop_ack_checksum` (the kernel would compute the sum and discard
//!   it). Controls: starting at the TCP header, the kernel and the backend both trust it (a
//!   socket is made); with the right checksum the early start makes the socket.
//! - `every_syn_size_is_answered_in_native_xdp_on_veth`: every SYN from 54 to 120 bytes (IPv4
//!   and IPv6, untagged and 802.1Q, the odd bytes as SYN data or as Ethernet padding), including
//!   the 62-byte SYN (SACK-Permitted, WScale 7, EOL) whose answer needs 66 bytes, is answered with
//!   a SYN+ACK that keeps the tag and whose checksums verify; `syn_answered` counts each.
//! - `fragmented_ipv4_connection_without_df_completes`: a real connection without DF through a
//!   hop of MTU 1000 (the edge fragments both ways) moves data both ways; the `/proc/net/snmp`
//!   counters prove fragments were made and reassembled, and nothing was dropped.
//! - `fragmented_ipv6_data_segment_is_delivered`: a data segment crafted from a real established
//!   connection's captured state, cut into two IPv6 fragments, is delivered to the server.
//!   Control: the same kind of crafted segment unfragmented is delivered.
//! - `valid_cookie_ack_with_bad_checksum_creates_nothing`: handshake ACKs with a valid cookie and
//!   a wrong checksum (a corrupted checksum field, or a corrupted last data byte with 1 to 1401
//!   bytes of data) are `drop_ack_checksum`: no socket, and the kernel never sees them (no
//!   `InCsumErrors`). In two IP fragments: `drop_ack_fragment`, no socket. Controls: the same
//!   ACKs right and whole create the socket and deliver their data.
//! - `malformed_frames_counted_exactly_never_answered`: truncations, bad lengths and versions,
//!   extension-header chains, TCP option lists, VLAN depth, checksums, flag combinations,
//!   overlapping and short fragments, tagged fragment-wrapped SYNs, IPv4 option lists: each frame
//!   increments exactly one expected edge counter (and the backend's, when forwarded) and is
//!   answered by nothing (a forwarded SYN+ACK only by the backend kernel's RST). Controls: plain,
//!   QinQ, padded, IPv4-options and longest-extension-chain SYNs are answered and captured.
//!
//! The jumbo-frame hole is proven in `jumbo_netns.rs`. Needs root (CI=true: fail, else skip).

use crate::common::{describe, Lab, LabOptions, Measured, Reply, ReplyTcp, OPEN_PORT, PORT};
use anyhow::{ensure, Context, Result};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synwall_testkit::frame::{self, Macs, Tcp, ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};
use synwall_testkit::topo::{self, BACKEND_V4, BACKEND_V6, CLIENT_V4, CLIENT_V6};
use synwall_testkit::{require_privileges, tcp, unique_prefix};

/// The backend's second IPv6 address: not protected (the outer destination of routing headers).
const OUTER_V6: Ipv6Addr = Ipv6Addr::new(0xfd66, 2, 0, 0, 0, 0, 0, 3);
/// The backend's second IPv4 address, likewise.
const OUTER_V4: Ipv4Addr = Ipv4Addr::new(10, 66, 2, 3);
/// How long a reply may take to come back before a frame counts as unanswered.
const ANSWER: Duration = Duration::from_secs(2);

fn lab(strict: bool) -> Result<Lab> {
    lab_with(LabOptions {
        strict,
        ..Default::default()
    })
}

fn lab_with(o: LabOptions) -> Result<Lab> {
    Lab::build(&unique_prefix(), &o)
}

fn client(v6: bool) -> IpAddr {
    topo::client_addr(v6)
}

fn server(v6: bool) -> IpAddr {
    topo::backend_addr(v6)
}

fn fam(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// The outcome of every case of a test: printed as it goes, failures collected and reported
/// together at the end, with the checks that need a final wait ("nothing came back", "no
/// SYN-RECV").
struct Report {
    failures: Vec<String>,
    /// (port, case, whether the edge's SYN+ACK to an earlier SYN of that port is expected)
    silent: Vec<(u16, String, bool)>,
    no_syn_recv: Vec<(u16, String)>,
}

impl Report {
    fn new() -> Report {
        Report {
            failures: Vec::new(),
            silent: Vec::new(),
            no_syn_recv: Vec::new(),
        }
    }

    fn check(&mut self, case: &str, r: std::result::Result<(), String>) {
        match r {
            Ok(()) => eprintln!("ok    {case}"),
            Err(e) => {
                eprintln!("FAIL  {case}: {e}");
                self.failures.push(format!("{case}: {e}"));
            }
        }
    }

    /// The counters of a measurement (printed, and checked).
    fn counted(&mut self, case: &str, m: &Measured) {
        eprintln!("      {case} [port {}]: {}", m.port, m.probe);
        self.check(&format!("{case}: counters"), m.counters.clone());
    }

    /// Nothing may come back for `port` (checked in [`Report::finish`]).
    fn silent(&mut self, port: u16, case: &str) {
        self.silent.push((port, case.to_string(), false));
    }

    /// Nothing but the SYN+ACK the edge sent to the port's earlier SYN may come back.
    fn silent_after_synack(&mut self, port: u16, case: &str) {
        self.silent.push((port, case.to_string(), true));
    }

    /// The backend may have no SYN-RECV for `port` (checked in [`Report::finish`]).
    fn no_syn_recv(&mut self, port: u16, case: &str) {
        self.no_syn_recv.push((port, case.to_string()));
    }

    fn finish(mut self, lab: &Lab) -> Result<()> {
        let replies = lab.all_replies(Duration::from_millis(500))?;
        let recv = lab.syn_recv_ports()?;
        for (port, case, synack_ok) in std::mem::take(&mut self.silent) {
            let got: Vec<Reply> = replies
                .iter()
                .filter(|r| r.client_port == port && !(synack_ok && r.is_synack()))
                .cloned()
                .collect();
            self.check(
                &format!("{case}: not answered"),
                if got.is_empty() {
                    Ok(())
                } else {
                    Err(format!("answered: {}", describe(&got)))
                },
            );
        }
        for (port, case) in std::mem::take(&mut self.no_syn_recv) {
            let n = recv.iter().filter(|p| **p == port).count();
            self.check(
                &format!("{case}: no SYN-RECV on the backend"),
                if n == 0 {
                    Ok(())
                } else {
                    Err(format!("the backend kernel holds {n} SYN-RECV for it"))
                },
            );
        }
        ensure!(
            self.failures.is_empty(),
            "{} failed check(s):\n  {}",
            self.failures.len(),
            self.failures.join("\n  ")
        );
        Ok(())
    }
}

/// The TCP part of a reply, or a failure naming what came instead.
fn tcp_of(r: &Reply) -> std::result::Result<&ReplyTcp, String> {
    r.tcp.as_ref().ok_or_else(|| r.describe())
}

/// A SYN+ACK to `port` from `from`:`sport` must come back; returns its TCP part.
fn answered_by(
    lab: &Lab,
    port: u16,
    from: IpAddr,
    sport: u16,
) -> Result<std::result::Result<ReplyTcp, String>> {
    let Some(r) = lab.synack(port, ANSWER)? else {
        let other = lab.replies(port, Duration::ZERO)?;
        return Ok(Err(format!(
            "no SYN+ACK within {ANSWER:?} (came back: {})",
            describe(&other)
        )));
    };
    let t = tcp_of(&r).map_err(|e| e.to_string());
    Ok(t.and_then(|t| {
        if r.src != from || t.sport != sport {
            Err(format!("SYN+ACK from the wrong place: {}", r.describe()))
        } else if !t.checksums_ok {
            Err(format!("SYN+ACK with a bad checksum: {}", r.describe()))
        } else {
            Ok(t.clone())
        }
    }))
}

/// The handshake ACK for `syn` answered by `synack` (timestamps echoed when it carried them).
fn ack_for(syn: &Tcp, synack: &ReplyTcp) -> Tcp {
    let mut options = Vec::new();
    if let Some((tsval, _)) = synack.timestamps {
        options.extend_from_slice(&[1, 1, 8, 10]);
        options.extend_from_slice(&0x0010_0001u32.to_be_bytes());
        options.extend_from_slice(&tsval.to_be_bytes());
    }
    Tcp {
        sport: syn.sport,
        dport: syn.dport,
        seq: syn.seq.wrapping_add(1),
        ack: synack.seq.wrapping_add(1),
        flags: ACK,
        window: 502,
        options,
        payload: Vec::new(),
    }
}

/// Accept on non-blocking listeners until one yields or `limit` passes.
fn accept_any(ls: &[TcpListener], limit: Duration) -> Option<(TcpStream, SocketAddr)> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for l in ls {
            if let Ok(s) = l.accept() {
                return Some(s);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A SYN (Linux options) wrapped as `IPv6 / Fragment(0, M=0, nh=DestOpts) / DestOpts / TCP`.
fn wrapped_syn(m: Macs, port: u16, dport: u16) -> Vec<u8> {
    frame::atomic_fragment(
        m,
        CLIENT_V6,
        BACKEND_V6,
        &Tcp::syn(port, dport),
        port as u32,
    )
}

/// A SYN carrying 8 bytes of data, as two real IPv6 fragments: the first holds a
/// destination-options header and the whole TCP header, the second the data. (The second
/// fragment's header names DestOpts, the start of the fragmentable part, not TCP: the programs
/// count it `pass_not_tcp`, by the design's rule for non-first fragments.)
fn two_fragment_syn(m: Macs, port: u16, dport: u16) -> Vec<Vec<u8>> {
    let mut syn = Tcp::syn(port, dport);
    syn.payload = b"syn-data".to_vec();
    let mut inner = frame::dest_opts(frame::NH_TCP);
    inner.extend(syn.bytes(CLIENT_V6.into(), BACKEND_V6.into()));
    // DestOpts (8) + TCP header (40) in the first fragment, the 8 bytes of data in the second.
    frame::two_fragments(
        m,
        CLIENT_V6,
        BACKEND_V6,
        frame::NH_DEST_OPTS,
        &inner,
        48,
        0x1000 + port as u32,
    )
    .to_vec()
}

/// The same SYN as two IPv4 fragments (TCP header in the first, data in the second).
fn v4_two_fragment_syn(m: Macs, port: u16, dport: u16) -> Vec<Vec<u8>> {
    let mut syn = Tcp::syn(port, dport);
    syn.payload = b"syn-data".to_vec();
    let seg = syn.bytes(CLIENT_V4.into(), BACKEND_V4.into());
    frame::v4_two_fragments(m, CLIENT_V4.into(), BACKEND_V4.into(), &seg, 40).to_vec()
}

/// Fragment-header bypass of the edge: a SYN to a protected service hidden behind an IPv6
/// fragment header (atomic, with a destination-options header after it, or in two real
/// fragments) reached the backend kernel, which answered it and kept a SYN-RECV; 100,000 filled
/// its SYN queue.
#[test]
fn ipv6_fragment_header_cannot_smuggle_a_syn() -> Result<()> {
    if !require_privileges("ipv6_fragment_header_cannot_smuggle_a_syn") {
        return Ok(());
    }
    let lab = lab(false)?;
    let _listeners = (lab.listen(PORT)?, lab.listen(OPEN_PORT)?);
    let m = lab.macs();
    let mut r = Report::new();

    // Positive controls: the edge answers a plain SYN, and the capture sees its answer.
    for v6 in [false, true] {
        let case = format!("control: plain {} SYN answered by the edge", fam(v6));
        let x = lab.probe_exact(
            |p| {
                vec![frame::frame(
                    m,
                    &[],
                    client(v6),
                    server(v6),
                    &Tcp::syn(p, PORT),
                )]
            },
            &[("syn_answered", 1)],
            &[],
        )?;
        r.counted(&case, &x);
        let a = answered_by(&lab, x.port, server(v6), PORT)?;
        r.check(&case, a.map(|_| ()));
    }
    // Positive controls: the same wrappers to an unprotected port reach the backend kernel,
    // which answers (the wrappers are valid IPv6 and the capture would see the kernel's answer).
    let case = "control: atomic fragment + DestOpts SYN to an unprotected port answered by the backend kernel";
    let x = lab.probe_exact(
        |p| vec![wrapped_syn(m, p, OPEN_PORT)],
        &[("pass_unprotected", 1)],
        &[("pass_unprotected", 1)],
    )?;
    r.counted(case, &x);
    let a = answered_by(&lab, x.port, server(true), OPEN_PORT)?;
    r.check(case, a.map(|_| ()));
    let case = "control: SYN in two IPv6 fragments to an unprotected port reassembled and answered by the backend kernel";
    let x = lab.probe_exact(
        |p| two_fragment_syn(m, p, OPEN_PORT),
        &[("pass_unprotected", 1), ("pass_not_tcp", 1)],
        &[("pass_unprotected", 1), ("pass_not_tcp", 1)],
    )?;
    r.counted(case, &x);
    let a = answered_by(&lab, x.port, server(true), OPEN_PORT)?;
    r.check(case, a.map(|_| ()));
    let case = "control: SYN in two IPv4 fragments to an unprotected port reassembled and answered by the backend kernel";
    let x = lab.probe_exact(
        |p| v4_two_fragment_syn(m, p, OPEN_PORT),
        &[("pass_unprotected", 1), ("pass_fragment_nonfirst", 1)],
        &[("pass_unprotected", 1), ("pass_fragment_nonfirst", 1)],
    )?;
    r.counted(case, &x);
    let a = answered_by(&lab, x.port, server(false), OPEN_PORT)?;
    r.check(case, a.map(|_| ()));

    // The holes.
    let cookies0 = lab.lab.backend.net_counter("TcpExt:SyncookiesSent")?;
    let case = "atomic fragment + DestOpts SYN to the protected port";
    let x = lab.probe_exact(
        |p| vec![wrapped_syn(m, p, PORT)],
        &[("drop_syn_fragment", 1)],
        &[],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    r.no_syn_recv(x.port, case);

    let case = "SYN in two IPv6 fragments (DestOpts + TCP header, then data) to the protected port";
    let x = lab.probe_exact(
        |p| two_fragment_syn(m, p, PORT),
        &[("drop_syn_fragment", 1), ("pass_not_tcp", 1)],
        &[("pass_not_tcp", 1)],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    r.no_syn_recv(x.port, case);

    let case = "SYN in two IPv4 fragments to the protected port";
    let x = lab.probe_exact(
        |p| v4_two_fragment_syn(m, p, PORT),
        &[("drop_syn_fragment", 1), ("pass_fragment_nonfirst", 1)],
        &[("pass_fragment_nonfirst", 1)],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    r.no_syn_recv(x.port, case);

    // A first fragment that cuts the TCP header (20 fixed bytes + 4 of its 20 option bytes):
    // dropped; the rest (offset 24 bytes, past the fixed header) passes and completes nothing.
    let case = "IPv6 first fragment cutting the TCP header, to the protected port";
    let x = lab.probe_exact(
        |p| {
            let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
            frame::two_fragments(m, CLIENT_V6, BACKEND_V6, frame::NH_TCP, &seg, 24, p as u32)
                .to_vec()
        },
        &[("drop_fragment", 1), ("pass_fragment_nonfirst", 1)],
        &[("pass_fragment_nonfirst", 1)],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    r.no_syn_recv(x.port, case);

    // A flood of wrapped SYNs creates nothing on the backend.
    let n = 1000u64;
    let ports: Vec<u16> = (0..n).map(|_| lab.port()).collect();
    let frames: Vec<Vec<u8>> = ports.iter().map(|&p| wrapped_syn(m, p, PORT)).collect();
    let p = lab.probe(&frames)?;
    let case = format!("flood of {n} atomic-fragment SYNs to the protected port");
    eprintln!("      {case}: {p}");
    r.check(
        &format!("{case}: counters"),
        crate::common::exactly(
            &crate::common::without_noise(&p.edge),
            &[("drop_syn_fragment", n)],
        )
        .and_then(|_| crate::common::exactly(&crate::common::without_noise(&p.backend), &[]))
        .map_err(|e| {
            format!(
                "{e} (edge {}; backend {})",
                crate::common::show(&p.edge),
                crate::common::show(&p.backend)
            )
        }),
    );
    let replies = lab.all_replies(Duration::from_millis(500))?;
    let answered = replies
        .iter()
        .filter(|x| ports.contains(&x.client_port))
        .count();
    let recv = lab
        .syn_recv_ports()?
        .iter()
        .filter(|x| ports.contains(x))
        .count();
    let cookies = lab.lab.backend.net_counter("TcpExt:SyncookiesSent")? - cookies0;
    r.check(
        &format!("{case}: backend untouched"),
        if answered == 0 && recv == 0 && cookies == 0 {
            Ok(())
        } else {
            Err(format!(
                "{answered} answered, {recv} SYN-RECV on the backend, {cookies} syncookies sent by \
                 the backend kernel"
            ))
        },
    );
    r.finish(&lab)
}

/// A minimal HTTP server on the backend: answers every request with `200 OK`, counts accepts.
struct Http {
    accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Http {
    fn start(listeners: Vec<TcpListener>) -> Http {
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&accepted), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Some((mut c, _)) = accept_any(&listeners, Duration::from_millis(50)) else {
                    continue;
                };
                a.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = c.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                });
            }
        });
        Http {
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// SYN options without timestamps (MSS 1460, NOP, WScale 7, SACK-Permitted, NOP, NOP), so that a
/// hand-made handshake needs no timestamp bookkeeping.
fn no_ts_options() -> Vec<u8> {
    vec![2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1]
}

/// Strict-mode bypass: SYN, ACK and `GET /` each wrapped in `Fragment / DestOpts` completed a
/// handshake with the backend kernel through a strict edge and got HTTP 200.
#[test]
fn strict_mode_cannot_be_bypassed_with_fragment_headers() -> Result<()> {
    if !require_privileges("strict_mode_cannot_be_bypassed_with_fragment_headers") {
        return Ok(());
    }
    let lab = lab(true)?;
    let http = Http::start(lab.listen(PORT)?);
    let _open = lab.listen(OPEN_PORT)?;
    let m = lab.macs();
    let mut r = Report::new();

    // Control: a real client gets HTTP 200 through the strict edge.
    let to = SocketAddr::new(server(true), PORT);
    let got = lab.lab.client.enter(move || -> Result<Vec<u8>> {
        let mut s = tcp::connect(to, None, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })?;
    r.check(
        "control: a real client gets HTTP 200 through the strict edge",
        match got {
            Ok(b) if b.starts_with(b"HTTP/1.1 200") => Ok(()),
            Ok(b) => Err(format!("answer {:?}", String::from_utf8_lossy(&b))),
            Err(e) => Err(format!("{e:#}")),
        },
    );
    // Control: a wrapped SYN to an unprotected port reaches the backend kernel through the
    // strict edge.
    let case = "control: wrapped SYN to an unprotected port answered by the backend kernel";
    let x = lab.probe_exact(
        |p| vec![wrapped_syn(m, p, OPEN_PORT)],
        &[("pass_unprotected", 1)],
        &[("pass_unprotected", 1)],
    )?;
    r.counted(case, &x);
    r.check(
        case,
        answered_by(&lab, x.port, server(true), OPEN_PORT)?.map(|_| ()),
    );

    // The hole: a wrapped SYN, then (if anyone answered it) the wrapped ACK and GET.
    let accepted0 = http.accepted();
    let case = "wrapped SYN to the protected port (strict)";
    let mut syn = Tcp::syn(0, PORT);
    syn.options = no_ts_options();
    let x = lab.probe_exact(
        |p| {
            syn.sport = p;
            vec![frame::atomic_fragment(
                m, CLIENT_V6, BACKEND_V6, &syn, p as u32,
            )]
        },
        &[("drop_syn_fragment", 1)],
        &[],
    )?;
    r.counted(case, &x);
    r.no_syn_recv(x.port, case);
    syn.sport = x.port;
    match lab.synack(x.port, ANSWER)? {
        None => r.silent(x.port, case),
        Some(sa) => {
            let t = tcp_of(&sa).map_err(anyhow::Error::msg)?.clone();
            let mut ack = ack_for(&syn, &t);
            let wrap = |t: &Tcp, id: u32| frame::atomic_fragment(m, CLIENT_V6, BACKEND_V6, t, id);
            lab.send(&wrap(&ack, 1))?;
            ack.flags = PSH | ACK;
            ack.payload = b"GET / HTTP/1.0\r\n\r\n".to_vec();
            lab.send(&wrap(&ack, 2))?;
            let deadline = Instant::now() + ANSWER;
            let mut http_200 = false;
            while Instant::now() < deadline && !http_200 {
                http_200 = lab
                    .replies(x.port, Duration::from_millis(20))?
                    .iter()
                    .any(|r| {
                        r.tcp
                            .as_ref()
                            .is_some_and(|t| t.payload.starts_with(b"HTTP/1.1 200"))
                    });
            }
            r.check(
                case,
                Err(format!(
                    "answered ({}); the wrapped ACK and GET then {}",
                    sa.describe(),
                    if http_200 {
                        "got HTTP 200 from the server through the strict edge"
                    } else {
                        "got no HTTP answer"
                    }
                )),
            );
        }
    }
    // Wrapped non-SYNs of a flow the edge never validated: dropped by the strict edge.
    for (what, flags, payload) in [
        ("wrapped ACK with no valid cookie", ACK, &b""[..]),
        (
            "wrapped GET / with no valid cookie",
            PSH | ACK,
            &b"GET / HTTP/1.0\r\n\r\n"[..],
        ),
    ] {
        let case = format!("{what} (strict)");
        let x = lab.probe_exact(
            |p| {
                let t = Tcp {
                    sport: p,
                    dport: PORT,
                    seq: 0x2222_0000,
                    ack: 0x3333_0000,
                    flags,
                    window: 502,
                    options: Vec::new(),
                    payload: payload.to_vec(),
                };
                vec![frame::atomic_fragment(
                    m, CLIENT_V6, BACKEND_V6, &t, p as u32,
                )]
            },
            &[("strict_drop", 1)],
            &[],
        )?;
        r.counted(&case, &x);
        r.silent(x.port, &case);
    }
    r.check(
        "wrapped SYN, ACK and GET: the server accepted no connection",
        match http.accepted() - accepted0 {
            0 => Ok(()),
            n => Err(format!("{n} accepted")),
        },
    );
    // A non-first fragment carries no TCP header: passed in strict mode too, and alone it
    // completes nothing.
    let case = "non-first IPv6 fragment to the protected port (strict)";
    let x = lab.probe_exact(
        |p| {
            let mut t = Tcp::syn(p, PORT);
            t.flags = PSH | ACK;
            t.payload = vec![0x63; 64];
            let seg = t.bytes(CLIENT_V6.into(), BACKEND_V6.into());
            vec![
                frame::two_fragments(m, CLIENT_V6, BACKEND_V6, frame::NH_TCP, &seg, 48, p as u32)
                    [1]
                .clone(),
            ]
        },
        &[("pass_fragment_nonfirst", 1)],
        &[("pass_fragment_nonfirst", 1)],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    // A wrapped handshake ACK whose cookie is valid: the strict edge validates it from the first
    // fragment's TCP header, but the backend makes no socket from a fragment.
    let case = "wrapped handshake ACK with a valid cookie (strict)";
    let accepted0 = http.accepted();
    let x = lab.probe_exact(
        |p| {
            vec![frame::frame(
                m,
                &[],
                client(true),
                server(true),
                &Tcp::syn(p, PORT),
            )]
        },
        &[("syn_answered", 1)],
        &[],
    )?;
    let port = x.port;
    let syn = Tcp::syn(port, PORT);
    match answered_by(&lab, port, server(true), PORT)? {
        Err(e) => r.check(&format!("{case}: the edge answers the plain SYN"), Err(e)),
        Ok(sa) => {
            let ack = ack_for(&syn, &sa);
            let wrapped = frame::atomic_fragment(m, CLIENT_V6, BACKEND_V6, &ack, port as u32);
            let p = lab.probe(&[wrapped])?;
            eprintln!("      {case} [port {port}]: {p}");
            r.check(
                &format!("{case}: counters"),
                crate::common::exactly(
                    &crate::common::without_noise(&p.edge),
                    &[("strict_ack_valid", 1)],
                )
                .and_then(|_| {
                    crate::common::exactly(
                        &crate::common::without_noise(&p.backend),
                        &[("drop_ack_fragment", 1)],
                    )
                }),
            );
            r.check(
                &format!("{case}: no socket"),
                if http.accepted() == accepted0 {
                    Ok(())
                } else {
                    Err("the server accepted a connection".into())
                },
            );
            r.silent_after_synack(port, case);
            // Control: the same ACK unwrapped creates the socket (the cookie was valid).
            let plain = frame::frame(m, &[], client(true), server(true), &ack);
            let p = lab.probe(&[plain])?;
            let case = "control: the same handshake ACK unwrapped creates the socket";
            eprintln!("      {case} [port {port}]: {p}");
            let deadline = Instant::now() + ANSWER;
            while http.accepted() == accepted0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            r.check(
                case,
                if http.accepted() == accepted0 + 1
                    && p.backend.get("backend_reqsk_created") == Some(&1)
                {
                    Ok(())
                } else {
                    Err(format!("{} accepted; {p}", http.accepted() - accepted0))
                },
            );
        }
    }
    r.finish(&lab)
}

/// Routing-header bypass: with segment routing enabled on the backend, an SRv6 SYN to an
/// unprotected outer address whose segment list ends at the protected address passed the edge
/// (`pass_unprotected`) and the backend kernel created a SYN-RECV for the protected service.
#[test]
fn routing_header_cannot_hide_the_protected_destination() -> Result<()> {
    if !require_privileges("routing_header_cannot_hide_the_protected_destination") {
        return Ok(());
    }
    let lab = lab(false)?;
    for k in ["all", "default", topo::BACKEND_IF] {
        lab.lab
            .backend
            .sysctl(&format!("net.ipv6.conf.{k}.seg6_enabled"), "1")?;
    }
    let listeners = lab.listen(PORT)?;
    let _open = lab.listen(OPEN_PORT)?;
    let m = lab.macs();
    let mut r = Report::new();
    // Segment list[0] is the last segment (the final destination), list[1] the current one.
    let srh_syn = |p: u16, dport: u16, outer: Ipv6Addr, sl: u8| {
        let seg = Tcp::syn(p, dport).bytes(CLIENT_V6.into(), BACKEND_V6.into());
        frame::v6_frame(
            m,
            CLIENT_V6,
            outer,
            frame::NH_ROUTING,
            &[frame::srh(frame::NH_TCP, sl, &[BACKEND_V6, outer])],
            &seg,
        )
    };

    let case = "control: plain IPv6 SYN answered by the edge";
    let x = lab.probe_exact(
        |p| {
            vec![frame::frame(
                m,
                &[],
                client(true),
                server(true),
                &Tcp::syn(p, PORT),
            )]
        },
        &[("syn_answered", 1)],
        &[],
    )?;
    r.counted(case, &x);
    r.check(
        case,
        answered_by(&lab, x.port, server(true), PORT)?.map(|_| ()),
    );
    // Controls: the backend kernel routes by the SRH (segments left 1) and by an exhausted one
    // (segments left 0) and answers an unprotected port.
    for (sl, outer) in [(1u8, OUTER_V6), (0, BACKEND_V6)] {
        let case = format!(
            "control: SRH (segments left {sl}) SYN to an unprotected port answered by the backend kernel"
        );
        let x = lab.probe_exact(
            |p| vec![srh_syn(p, OPEN_PORT, outer, sl)],
            &[("pass_unprotected", 1)],
            &[("pass_unprotected", 1)],
        )?;
        r.counted(&case, &x);
        r.check(
            &case,
            answered_by(&lab, x.port, server(true), OPEN_PORT)?.map(|_| ()),
        );
    }

    // The hole: the final destination is protected. The edge answers, from that destination.
    let case = "SRH (segments left 1, outer unprotected, final protected) SYN";
    let x = lab.probe_exact(
        |p| vec![srh_syn(p, PORT, OUTER_V6, 1)],
        &[("syn_answered", 1)],
        &[],
    )?;
    r.counted(case, &x);
    r.no_syn_recv(x.port, case);
    let answer = answered_by(&lab, x.port, server(true), PORT)?;
    r.check(
        &format!("{case}: answered from the final destination"),
        answer.clone().map(|_| ()),
    );
    // Completed only if the edge answered (the backend kernel's own SYN+ACK carries no cookie).
    if let (Ok(sa), Some(1)) = (&answer, x.probe.edge.get("syn_answered")) {
        // The cookie is the final destination's: its plain ACK creates the socket.
        let ack = ack_for(&Tcp::syn(x.port, PORT), sa);
        let p = lab.probe(&[frame::frame(m, &[], client(true), server(true), &ack)])?;
        let case = format!("{case}: its cookie ACK creates the socket");
        eprintln!("      {case}: {p}");
        let acc = accept_any(&listeners, ANSWER);
        r.check(
            &case,
            match acc {
                Some((_, peer)) if peer.port() == x.port => Ok(()),
                other => Err(format!("accepted {:?}; {p}", other.map(|a| a.1))),
            },
        );
    }

    // The same behind an 802.1Q tag (the edge's answer drops the routing header and keeps the
    // tag; tagged frames go no further than the edge in this lab).
    let case = "802.1Q-tagged SRH (final protected) SYN";
    let x = lab.probe_exact(
        |p| {
            let mut f = srh_syn(p, PORT, OUTER_V6, 1);
            f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
            vec![f]
        },
        &[("syn_answered", 1)],
        &[],
    )?;
    r.counted(case, &x);
    let tagged = lab.synack(x.port, ANSWER)?;
    r.check(
        &format!("{case}: answered from the final destination, tag kept"),
        match (answered_by(&lab, x.port, server(true), PORT)?, tagged) {
            (Ok(_), Some(a)) if a.vlans == [7] => Ok(()),
            (Err(e), _) => Err(e),
            (_, a) => Err(format!("tags {:?}", a.map(|a| a.vlans))),
        },
    );

    // Both tricks at once: an atomic fragment header before the SRH. The walk goes on past an
    // offset-0 fragment, so the SRH still names the destination, and the SYN is in a fragment.
    let frag_srh_syn = |p: u16, dport: u16| {
        let seg = Tcp::syn(p, dport).bytes(CLIENT_V6.into(), BACKEND_V6.into());
        frame::v6_frame(
            m,
            CLIENT_V6,
            OUTER_V6,
            frame::NH_FRAGMENT,
            &[
                frame::frag6(frame::NH_ROUTING, 0, false, p as u32),
                frame::srh(frame::NH_TCP, 1, &[BACKEND_V6, OUTER_V6]),
            ],
            &seg,
        )
    };
    let case = "control: Fragment + SRH SYN to an unprotected port answered by the backend kernel";
    let x = lab.probe_exact(
        |p| vec![frag_srh_syn(p, OPEN_PORT)],
        &[("pass_unprotected", 1)],
        &[("pass_unprotected", 1)],
    )?;
    r.counted(case, &x);
    r.check(
        case,
        answered_by(&lab, x.port, server(true), OPEN_PORT)?.map(|_| ()),
    );
    let case = "Fragment (offset 0) + SRH (final protected) SYN";
    let x = lab.probe_exact(
        |p| vec![frag_srh_syn(p, PORT)],
        &[("drop_syn_fragment", 1)],
        &[],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    r.no_syn_recv(x.port, case);

    // Dropped, whatever the destination: type-0 routing headers, a second routing header,
    // IPv4 source-route options.
    let rh0 = |p: u16, outer: Ipv6Addr, sl: u8| {
        let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
        frame::v6_frame(
            m,
            CLIENT_V6,
            outer,
            frame::NH_ROUTING,
            &[frame::rh0(frame::NH_TCP, sl, &[BACKEND_V6])],
            &seg,
        )
    };
    let cases: Vec<(&str, Make<'_>)> = vec![
        (
            "type-0 routing header (segments left 1, outer unprotected, last address protected)",
            Box::new(|p| rh0(p, OUTER_V6, 1)),
        ),
        (
            "type-0 routing header (segments left 0) to the protected address",
            Box::new(|p| rh0(p, BACKEND_V6, 0)),
        ),
        (
            "two routing headers (SRH, segments left 0, twice) to the protected address",
            Box::new(|p| {
                let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
                frame::v6_frame(
                    m,
                    CLIENT_V6,
                    BACKEND_V6,
                    frame::NH_ROUTING,
                    &[
                        frame::srh(frame::NH_ROUTING, 0, &[BACKEND_V6]),
                        frame::srh(frame::NH_TCP, 0, &[BACKEND_V6]),
                    ],
                    &seg,
                )
            }),
        ),
        (
            "IPv4 LSRR option (outer unprotected, route ending at the protected address)",
            Box::new(|p| v4_source_routed(m, p, 131, OUTER_V4)),
        ),
        (
            "IPv4 SSRR option to the protected address",
            Box::new(|p| v4_source_routed(m, p, 137, BACKEND_V4)),
        ),
        (
            "type-3 (RPL) routing header, segments left 1, outer unprotected",
            Box::new(|p| rh_syn(m, p, OUTER_V6, 3, 1, &BACKEND_V6.octets())),
        ),
    ];
    for (case, make) in &cases {
        let x = lab.probe_exact(|p| vec![make(p)], &[("drop_source_route", 1)], &[])?;
        r.counted(case, &x);
        r.silent(x.port, case);
        r.no_syn_recv(x.port, case);
    }
    // A routing header that names a destination but is too short to hold it: malformed, whatever
    // the outer destination (where it would go cannot be known).
    for (case, outer) in [
        (
            "SRH, segments left 1, no segment in it, to the protected address",
            BACKEND_V6,
        ),
        (
            "SRH, segments left 1, no segment in it, to an unprotected address",
            OUTER_V6,
        ),
    ] {
        let x = lab.probe_exact(
            |p| vec![rh_syn(m, p, outer, 4, 1, &[])],
            &[("drop_ip_malformed", 1)],
            &[],
        )?;
        r.counted(case, &x);
        r.silent(x.port, case);
        r.no_syn_recv(x.port, case);
    }
    // A type-2 routing header (Mobile IPv6) names its home address as the final destination:
    // protected, so the edge answers from it.
    let case = "type-2 routing header (home address protected, outer unprotected) SYN";
    let x = lab.probe_exact(
        |p| vec![rh_syn(m, p, OUTER_V6, 2, 1, &BACKEND_V6.octets())],
        &[("syn_answered", 1)],
        &[],
    )?;
    r.counted(case, &x);
    r.check(
        &format!("{case}: answered from the final destination"),
        answered_by(&lab, x.port, server(true), PORT)?.map(|_| ()),
    );
    r.no_syn_recv(x.port, case);
    r.finish(&lab)
}

/// A SYN to the protected port (checksum over the protected address) behind a routing header of
/// type `rtype` with `segments_left`, its 4 type-specific bytes zero, then `addrs`, sent to
/// `outer`.
fn rh_syn(m: Macs, p: u16, outer: Ipv6Addr, rtype: u8, segments_left: u8, addrs: &[u8]) -> Vec<u8> {
    let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
    let mut rest = vec![0u8; 4];
    rest.extend_from_slice(addrs);
    frame::v6_frame(
        m,
        CLIENT_V6,
        outer,
        frame::NH_ROUTING,
        &[frame::routing(frame::NH_TCP, rtype, segments_left, &rest)],
        &seg,
    )
}

/// A SYN to the protected port with an IPv4 source-route option (`kind` 131 LSRR or 137 SSRR)
/// whose route ends at the protected address, sent to `outer`.
fn v4_source_routed(m: Macs, p: u16, kind: u8, outer: Ipv4Addr) -> Vec<u8> {
    let seg = Tcp::syn(p, PORT).bytes(CLIENT_V4.into(), BACKEND_V4.into());
    let mut ip = frame::V4::new(CLIENT_V4.into(), outer.into());
    let b = BACKEND_V4.octets();
    ip.options = vec![kind, 7, 4, b[0], b[1], b[2], b[3], 0];
    let mut f = frame::eth(m, &[], 0x0800);
    f.extend(ip.bytes(seg.len()));
    f.extend(seg);
    f
}

/// The lab with segment routing enabled on the backend (`seg6_enabled=1`): it then routes by
/// SRHs and takes SRv6 encapsulation off.
fn seg6_lab(o: LabOptions) -> Result<Lab> {
    let lab = Lab::build(&unique_prefix(), &o)?;
    for k in ["all", "default", topo::BACKEND_IF] {
        lab.lab
            .backend
            .sysctl(&format!("net.ipv6.conf.{k}.seg6_enabled"), "1")?;
    }
    Ok(lab)
}

/// `n` destination-options headers (PadN), the last one naming `last_nh`.
fn dest_opts_chain(n: usize, last_nh: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            frame::dest_opts(if i + 1 == n {
                last_nh
            } else {
                frame::NH_DEST_OPTS
            })
        })
        .collect()
}

/// Routing header behind the walk's horizon: a SYN to the protected service behind an SRH the
/// walk never reached (a chain longer than its bound, or one that goes on in the next fragment),
/// sent to an unprotected address of the backend, passed the edge (`pass_unprotected`) and the
/// backend kernel, routing by the SRH, answered it and kept a SYN-RECV.
#[test]
fn routing_header_behind_the_walk_horizon_cannot_reach_the_kernel() -> Result<()> {
    if !require_privileges("routing_header_behind_the_walk_horizon_cannot_reach_the_kernel") {
        return Ok(());
    }
    let lab = seg6_lab(LabOptions::default())?;
    let _listeners = (lab.listen(PORT)?, lab.listen(OPEN_PORT)?);
    let m = lab.macs();
    let mut r = Report::new();
    let max = synwall_wire::ipv6::MAX_EXT_HEADERS;
    // `n` destination-options headers, then an SRH (segments left 1) whose last segment is the
    // protected address, to the unprotected outer address; the SYN to `dport`.
    let chain_syn = |p: u16, dport: u16, n: usize| {
        let seg = Tcp::syn(p, dport).bytes(CLIENT_V6.into(), BACKEND_V6.into());
        let mut exts = dest_opts_chain(n, frame::NH_ROUTING);
        exts.push(frame::srh(frame::NH_TCP, 1, &[BACKEND_V6, OUTER_V6]));
        frame::v6_frame(m, CLIENT_V6, OUTER_V6, frame::NH_DEST_OPTS, &exts, &seg)
    };
    // Controls: within the bound, the backend kernel routes by the SRH behind the chain and
    // answers an unprotected port; the edge answers the protected one, from the final address.
    let case = "control: chain within the bound + SRH, SYN to an unprotected port answered by the backend kernel";
    let x = lab.probe_exact(
        |p| vec![chain_syn(p, OPEN_PORT, max - 1)],
        &[("pass_unprotected", 1)],
        &[("pass_unprotected", 1)],
    )?;
    r.counted(case, &x);
    r.check(
        case,
        answered_by(&lab, x.port, server(true), OPEN_PORT)?.map(|_| ()),
    );
    let case =
        "control: chain within the bound + SRH, SYN to the protected port answered by the edge";
    let x = lab.probe_exact(
        |p| vec![chain_syn(p, PORT, max - 1)],
        &[("syn_answered", 1)],
        &[],
    )?;
    r.counted(case, &x);
    r.check(
        case,
        answered_by(&lab, x.port, server(true), PORT)?.map(|_| ()),
    );
    r.no_syn_recv(x.port, case);
    // The hole: one header more, and the walk never sees the SRH.
    for n in [max, max + 1] {
        let case = format!("{n} destination-options headers + SRH (final protected) SYN");
        let x = lab.probe_exact(
            |p| vec![chain_syn(p, PORT, n)],
            &[("drop_ipv6_ext_depth", 1)],
            &[],
        )?;
        r.counted(&case, &x);
        r.silent(x.port, &case);
        r.no_syn_recv(x.port, &case);
    }

    // The chain cut by fragmentation: fragment 1 ends after a destination-options header that
    // names a routing header; fragment 2 holds the SRH and the SYN.
    let split = |p: u16, dport: u16| {
        let id = 0xab00_0000 + p as u32;
        let seg = Tcp::syn(p, dport).bytes(CLIENT_V6.into(), BACKEND_V6.into());
        let first = frame::v6_frame(
            m,
            CLIENT_V6,
            OUTER_V6,
            frame::NH_FRAGMENT,
            &[
                frame::frag6(frame::NH_DEST_OPTS, 0, true, id),
                frame::dest_opts(frame::NH_ROUTING),
            ],
            &[],
        );
        let mut rest = frame::srh(frame::NH_TCP, 1, &[BACKEND_V6, OUTER_V6]);
        rest.extend(seg);
        let second = frame::v6_frame(
            m,
            CLIENT_V6,
            OUTER_V6,
            frame::NH_FRAGMENT,
            &[frame::frag6(frame::NH_DEST_OPTS, 1, false, id)],
            &rest,
        );
        vec![first, second]
    };
    // Control: the same datagram cut after the TCP header (chain and header in fragment 1, data
    // in fragment 2) is reassembled and routed by the kernel to an unprotected port.
    let whole_first = |p: u16, dport: u16| {
        let mut syn = Tcp::syn(p, dport);
        syn.payload = b"syn-data".to_vec();
        let mut fragmentable = frame::dest_opts(frame::NH_ROUTING);
        fragmentable.extend(frame::srh(frame::NH_TCP, 1, &[BACKEND_V6, OUTER_V6]));
        fragmentable.extend(syn.bytes(CLIENT_V6.into(), BACKEND_V6.into()));
        let cut = fragmentable.len() - 8;
        frame::two_fragments(
            m,
            CLIENT_V6,
            OUTER_V6,
            frame::NH_DEST_OPTS,
            &fragmentable,
            cut,
            0xac00_0000 + p as u32,
        )
        .to_vec()
    };
    let case = "control: SRH and TCP header in the first fragment, unprotected port: reassembled, routed and answered by the backend kernel";
    let x = lab.probe_exact(
        |p| whole_first(p, OPEN_PORT),
        &[("pass_unprotected", 2)],
        &[("pass_unprotected", 2)],
    )?;
    r.counted(case, &x);
    r.check(
        case,
        answered_by(&lab, x.port, server(true), OPEN_PORT)?.map(|_| ()),
    );
    let case =
        "first fragment ending inside the chain, SRH (final protected) and SYN in the second";
    let x = lab.probe_exact(
        |p| split(p, PORT),
        &[("drop_ip_malformed", 1), ("pass_unprotected", 1)],
        &[("pass_unprotected", 1)],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    r.no_syn_recv(x.port, case);
    // The same with a type-2 routing header (home address protected) in the second fragment:
    // the first fragment is dropped all the same.
    let case = "first fragment ending inside the chain, type-2 routing header in the second";
    let x = lab.probe_exact(
        |p| {
            let mut f = split(p, PORT);
            let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
            let mut rest = vec![0u8; 4];
            rest.extend_from_slice(&BACKEND_V6.octets());
            let mut body = frame::routing(frame::NH_TCP, 2, 1, &rest);
            body.extend(seg);
            f[1] = frame::v6_frame(
                m,
                CLIENT_V6,
                OUTER_V6,
                frame::NH_FRAGMENT,
                &[frame::frag6(
                    frame::NH_DEST_OPTS,
                    1,
                    false,
                    0xab00_0000 + p as u32,
                )],
                &body,
            );
            f
        },
        &[("drop_ip_malformed", 1), ("pass_unprotected", 1)],
        &[("pass_unprotected", 1)],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    r.no_syn_recv(x.port, case);
    r.finish(&lab)
}

/// `IPv6(CLIENT_V6 -> OUTER_V6) / SRH(segments left `sl`, segment list[0] OUTER_V6, next header
/// IPv6 or IPv4) / inner packet`: SRv6 encapsulation ending at the backend's unprotected address.
fn srv6(m: Macs, sl: u8, inner_nh: u8, inner: &[u8]) -> Vec<u8> {
    let segments: Vec<Ipv6Addr> = (0..=sl).map(|_| OUTER_V6).collect();
    frame::v6_frame(
        m,
        CLIENT_V6,
        OUTER_V6,
        frame::NH_ROUTING,
        &[frame::srh(inner_nh, sl, &segments)],
        inner,
    )
}

/// The inner packet of [`srv6`]: `t` from the client to the backend's protected address (IPv6
/// or IPv4), checksums right.
fn inner_packet(v6: bool, t: &Tcp) -> (u8, Vec<u8>) {
    let seg = t.bytes(client(v6), server(v6));
    if v6 {
        let mut p = frame::ipv6(CLIENT_V6, BACKEND_V6, frame::NH_TCP, seg.len());
        p.extend(seg);
        (41, p)
    } else {
        let mut p = frame::V4::new(client(false), server(false)).bytes(seg.len());
        p.extend(seg);
        (4, p)
    }
}

/// SRv6 encapsulation: a SYN to the protected service inside an SRH (segments left 0, next
/// header IPv6) to an unprotected address passed the edge (`pass_unprotected`); the backend kernel
/// took the encapsulation off (ipv6_srh_rcv -> netif_rx) and its listener answered. Also shows
/// what the backend's tc program sees: the encapsulated packet first, then (after netif_rx on the
/// same device) the same frame again with the network header at the inner packet.
#[test]
fn srv6_encapsulated_syn_is_judged_by_the_inner_packet() -> Result<()> {
    if !require_privileges("srv6_encapsulated_syn_is_judged_by_the_inner_packet") {
        return Ok(());
    }
    let lab = seg6_lab(LabOptions::default())?;
    let listeners = lab.listen(PORT)?;
    let _open = lab.listen(OPEN_PORT)?;
    let m = lab.macs();
    let mut r = Report::new();
    for v6 in [true, false] {
        // Control: to an unprotected port, the backend kernel decapsulates and answers; the
        // backend program sees the frame twice (before and after decapsulation).
        for sl in [0u8, 1] {
            let case = format!(
                "control: SRv6 ({} inside, segments left {sl}) SYN to an unprotected port answered by the backend kernel",
                fam(v6)
            );
            let x = lab.probe_exact(
                |p| {
                    let (nh, inner) = inner_packet(v6, &Tcp::syn(p, OPEN_PORT));
                    vec![srv6(m, sl, nh, &inner)]
                },
                &[("pass_unprotected", 1)],
                &[("pass_unprotected", 2)],
            )?;
            r.counted(&case, &x);
            r.check(
                &case,
                answered_by(&lab, x.port, server(v6), OPEN_PORT)?.map(|_| ()),
            );
        }
        // The hole: the inner SYN is to the protected service. The edge answers it, as a plain
        // packet from the inner destination; the backend kernel never sees it.
        let case = format!("SRv6 ({} inside) SYN to the protected port", fam(v6));
        let x = lab.probe_exact(
            |p| {
                let (nh, inner) = inner_packet(v6, &Tcp::syn(p, PORT));
                vec![srv6(m, 0, nh, &inner)]
            },
            &[("syn_answered", 1)],
            &[],
        )?;
        r.counted(&case, &x);
        r.no_syn_recv(x.port, &case);
        let answer = answered_by(&lab, x.port, server(v6), PORT)?;
        r.check(
            &format!("{case}: answered from the inner destination"),
            answer.clone().map(|_| ()),
        );
        // Its cookie ACK, encapsulated the same way: the backend passes it while it is still
        // encapsulated, and makes the socket when the kernel hands it the inner packet.
        if let Ok(sa) = &answer {
            let ack = ack_for(&Tcp::syn(x.port, PORT), sa);
            let (nh, inner) = inner_packet(v6, &ack);
            let p = lab.probe(&[srv6(m, 0, nh, &inner)])?;
            let case = format!("{case}: its encapsulated cookie ACK creates the socket");
            eprintln!("      {case}: {p}");
            r.check(
                &format!("{case}: counters"),
                crate::common::exactly(
                    &crate::common::without_noise(&p.edge),
                    &[("fwd_non_syn", 1)],
                )
                .and_then(|_| {
                    crate::common::exactly(
                        &crate::common::without_noise(&p.backend),
                        &[("backend_ack_pass_encap", 1), ("backend_reqsk_created", 1)],
                    )
                }),
            );
            let acc = accept_any(&listeners, ANSWER);
            r.check(
                &case,
                match acc {
                    Some((_, peer)) if peer.port() == x.port && peer.ip() == client(v6) => Ok(()),
                    other => Err(format!("accepted {:?}; {p}", other.map(|a| a.1))),
                },
            );
        }
    }
    // One level only: SRv6 inside SRv6, or IP in IP inside, is dropped.
    let case = "SRv6 inside SRv6, innermost SYN to the protected port";
    let x = lab.probe_exact(
        |p| {
            let (nh, inner) = inner_packet(true, &Tcp::syn(p, PORT));
            let mid = &srv6(m, 0, nh, &inner)[14..];
            vec![srv6(m, 0, 41, mid)]
        },
        &[("drop_encap_nested", 1)],
        &[],
    )?;
    r.counted(case, &x);
    r.silent(x.port, case);
    r.no_syn_recv(x.port, case);
    r.finish(&lab)
}

/// Non-Ethernet interfaces: on an L3 device (here a tun device: no link-layer header) both
/// programs read the EtherType from the sender's address, every packet was `pass_not_ip` and every
/// SYN reached the kernel, and nothing refused the attach. Now `check-config` and every start
/// refuse it, naming the link type, and nothing is attached. Controls: the same configuration on a
/// veth checks and starts.
#[test]
fn non_ethernet_interfaces_are_refused() -> Result<()> {
    if !require_privileges("non_ethernet_interfaces_are_refused") {
        return Ok(());
    }
    let p = unique_prefix();
    let ns = synwall_testkit::Netns::create(&format!("{p}m"))?;
    let (tun, va, vb) = (format!("{p}t"), format!("{p}a"), format!("{p}b"));
    ns.run(&["ip", "tuntap", "add", "dev", &tun, "mode", "tun"])?;
    ns.run(&[
        "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
    ])?;
    for d in [&tun, &va, &vb] {
        ns.run(&["ip", "link", "set", d, "up"])?;
    }
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{}\n", "ab".repeat(32)))?;
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let secret = secret.display().to_string();
    let exe = synwall_testkit::synwall().to_str().expect("a UTF-8 path");
    let mut r = Report::new();
    let check = |section: &str, iface: &str, extra: &str| -> Result<(bool, String)> {
        let path = dir.path().join(format!("{section}-{iface}.toml"));
        std::fs::write(
            &path,
            format!(
                "[node]\nname = \"{p}n\"\nsecret_file = \"{secret}\"\nmetrics = \"\"\n\
                 set_sysctls = true\n[services]\nprotect = [\"10.9.0.80/32:443\"]\n\
                 [{section}]\ninterfaces = [\"{iface}\"]\n{extra}"
            ),
        )?;
        let out = ns
            .command(exe)
            .args(["check-config", &path.display().to_string()])
            .output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let refusal = format!("{tun} is not an Ethernet device (link type 65534");
    for (section, extra) in [("backend", ""), ("edge", "xdp_mode = \"generic\"\n")] {
        let case = format!("check-config: {section} on a tun device");
        let (ok, err) = check(section, &tun, extra)?;
        r.check(
            &case,
            if !ok && err.contains(&refusal) && err.contains(&format!("{section}.interfaces")) {
                Ok(())
            } else {
                Err(format!("success {ok}, stderr: {err}"))
            },
        );
        let case = format!("control: check-config: {section} on a veth");
        let (ok, err) = check(section, &vb, extra)?;
        r.check(&case, if ok { Ok(()) } else { Err(err) });
    }
    // A start: refused before anything is loaded or attached. (XDP in any mode, and the number of
    // programs at tcx ingress, read in the namespace.)
    let attached = |iface: &str| -> Result<String> {
        let iface = iface.to_string();
        ns.enter(move || -> Result<String> {
            let c = std::ffi::CString::new(iface.as_str())?;
            // SAFETY: a NUL-terminated name we own.
            let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
            ensure!(ifindex > 0, "no interface {iface}");
            let xdp = synwall_bpf::xdp_mode_of(ifindex)?;
            // SAFETY: zeroed options of the size we declare, filled by the call.
            let mut q: libbpf_rs::libbpf_sys::bpf_prog_query_opts = unsafe { std::mem::zeroed() };
            q.sz = std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_prog_query_opts>() as _;
            // SAFETY: `q` outlives the call.
            let r = unsafe {
                libbpf_rs::libbpf_sys::bpf_prog_query_opts(
                    ifindex as i32,
                    libbpf_rs::libbpf_sys::BPF_TCX_INGRESS,
                    &mut q,
                )
            };
            ensure!(r == 0, "query tcx ingress of {iface}: {r}");
            // SAFETY: the call wrote the count (both names of the union are that one u32).
            let count = unsafe { q.__bindgen_anon_1.count };
            Ok(format!("xdp {xdp:?}, tcx ingress {count} program(s)"))
        })?
    };
    let single = |iface: &str| {
        vec![
            "single".to_string(),
            "--iface".into(),
            iface.into(),
            "--service".into(),
            "10.9.0.80/32:443".into(),
            "--secret-file".into(),
            secret.clone(),
            "--xdp-mode".into(),
            "generic".into(),
            "--set-sysctls".into(),
        ]
    };
    let case = "synwall single on a tun device";
    let out = ns.command(exe).args(single(&tun)).output()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let on_tun = attached(&tun)?;
    r.check(
        case,
        if !out.status.success()
            && err.contains(&refusal)
            && on_tun == "xdp None, tcx ingress 0 program(s)"
        {
            Ok(())
        } else {
            Err(format!(
                "success {}, stderr: {err}; attached: {on_tun}",
                out.status.success()
            ))
        },
    );
    let case = "control: synwall single on a veth starts and attaches both programs";
    match synwall_testkit::Daemon::start(&ns, Path::new(exe), &single(&vb), Duration::from_secs(30))
    {
        Ok(d) => {
            let on_veth = attached(&vb)?;
            r.check(
                case,
                if on_veth == "xdp Some(Generic), tcx ingress 1 program(s)" {
                    Ok(())
                } else {
                    Err(format!("attached: {on_veth}"))
                },
            );
            let _ = d.stop();
        }
        Err(e) => r.check(case, Err(format!("{e:#}"))),
    }

    // No VLAN device on it: a native edge there gets no VLAN warning (its positive case needs the
    // 8021q module, which this kernel lacks: see the iface module's tests).
    let case = "control: check-config: native edge on a veth without VLAN devices: no VLAN warning";
    let (ok, err) = check("edge", &vb, "")?;
    r.check(
        case,
        if ok && !err.contains("strips VLAN tags") {
            Ok(())
        } else {
            Err(err)
        },
    );
    ensure!(
        r.failures.is_empty(),
        "{} failed check(s):\n  {}",
        r.failures.len(),
        r.failures.join("\n  ")
    );
    Ok(())
}

/// Defence in depth at the backend: a SYN to a protected service that reaches the backend went
/// around the edge. By default the backend passes it to the kernel (which answers it: the
/// protection is gone for that path); with `backend.drop_syns` it is dropped and counted. Here
/// the path around the edge is a port the backend protects and the edge does not.
#[test]
fn backend_can_drop_syns_that_went_around_the_edge() -> Result<()> {
    if !require_privileges("backend_can_drop_syns_that_went_around_the_edge") {
        return Ok(());
    }
    const AROUND: u16 = 8082;
    let mut r = Report::new();
    for drop_syns in [false, true] {
        let lab = lab_with(LabOptions {
            backend_only_port: Some(AROUND),
            backend_drop_syns: drop_syns,
            ..Default::default()
        })?;
        let listeners = lab.listen(PORT)?;
        let _around = lab.listen(AROUND)?;
        let _open = lab.listen(OPEN_PORT)?;
        let m = lab.macs();
        let mode = if drop_syns { "drop_syns" } else { "default" };
        for v6 in [false, true] {
            let syn = |p: u16, dport: u16| {
                frame::frame(m, &[], client(v6), server(v6), &Tcp::syn(p, dport))
            };
            let case = format!("[{mode}] {} SYN that went around the edge", fam(v6));
            let want: &[(&str, u64)] = if drop_syns {
                &[("backend_syn_drop", 1)]
            } else {
                &[("backend_syn_pass", 1)]
            };
            let x = lab.probe_exact(|p| vec![syn(p, AROUND)], &[("pass_unprotected", 1)], want)?;
            r.counted(&case, &x);
            if drop_syns {
                r.silent(x.port, &case);
                r.no_syn_recv(x.port, &case);
            } else {
                // The default: the kernel answers it (what the setting is for).
                r.check(
                    &case,
                    answered_by(&lab, x.port, server(v6), AROUND)?.map(|_| ()),
                );
            }
            // Controls: an unprotected port is the kernel's either way; the protected service
            // behind the edge works either way (answered by the edge, its ACK makes the socket).
            let case = format!("[{mode}] control: {} SYN to an unprotected port", fam(v6));
            let x = lab.probe_exact(
                |p| vec![syn(p, OPEN_PORT)],
                &[("pass_unprotected", 1)],
                &[("pass_unprotected", 1)],
            )?;
            r.counted(&case, &x);
            r.check(
                &case,
                answered_by(&lab, x.port, server(v6), OPEN_PORT)?.map(|_| ()),
            );
            let case = format!("[{mode}] control: {} handshake through the edge", fam(v6));
            let x = lab.probe_exact(|p| vec![syn(p, PORT)], &[("syn_answered", 1)], &[])?;
            r.counted(&case, &x);
            match answered_by(&lab, x.port, server(v6), PORT)? {
                Ok(sa) => {
                    let ack = ack_for(&Tcp::syn(x.port, PORT), &sa);
                    lab.probe(&[frame::frame(m, &[], client(v6), server(v6), &ack)])?;
                    let acc = accept_any(&listeners, ANSWER);
                    r.check(
                        &case,
                        match acc {
                            Some((_, peer)) if peer.port() == x.port => Ok(()),
                            other => Err(format!("accepted {:?}", other.map(|a| a.1))),
                        },
                    );
                }
                Err(e) => r.check(&case, Err(e)),
            }
        }
        r.finish(&lab)?;
        r = Report::new();
    }
    Ok(())
}

/// What the backend trusts of a checksum must be what the kernel's TCP trusts: a valid cookie ACK
/// with a wrong checksum, sent as a `CHECKSUM_PARTIAL` skb whose checksummed part starts before the
/// TCP header (a virtio-net header from a tap or AF_PACKET sender can say so), was trusted by the
/// backend (`backend_reqsk_created`), while the kernel, finding the start before the TCP header,
/// computed the sum and discarded the segment. Controls: the same wrong checksum with the
/// checksummed part starting at the TCP header is trusted by both (a socket is made), and the
/// right checksum with the early start is checked by both and makes the socket.
#[test]
fn backend_trusts_the_checksums_the_kernel_trusts() -> Result<()> {
    if !require_privileges("backend_trusts_the_checksums_the_kernel_trusts") {
        return Ok(());
    }
    let lab = lab(false)?;
    let listeners = lab.listen(PORT)?;
    let m = lab.macs();
    let mut r = Report::new();
    let backend_mac = topo::mac(&lab.lab.backend, topo::BACKEND_IF)?;
    let edge_mac = topo::mac(&lab.lab.edge, topo::EDGE_BACKEND_IF)?;
    // TX checksum offload on for the sending veth, or the stack fills the checksum in before it
    // leaves (the lab turns it off everywhere) and the skb arrives complete.
    lab.lab
        .edge
        .run(&["ethtool", "-K", topo::EDGE_BACKEND_IF, "tx", "on"])?;
    let tx = lab
        .lab
        .edge
        .enter(|| crate::common::VnetSender::open(topo::EDGE_BACKEND_IF))??;
    // (case, checksum right, csum_start: bytes from the frame's start, what the backend counts,
    // a socket made)
    let l4 = 14 + 40;
    let cases: [(&str, bool, u16, &str, bool); 3] = [
        ("wrong checksum, checksummed part starting inside the IPv6 header", false, 34, "drop_ack_checksum", false),
        ("control: wrong checksum, checksummed part starting at the TCP header (trusted by the kernel)", false, l4 as u16, "backend_reqsk_created", true),
        ("control: right checksum, checksummed part starting inside the IPv6 header", true, 34, "backend_reqsk_created", true),
    ];
    for (what, right, start, want, socket) in cases {
        let x = lab.probe_exact(
            |p| {
                vec![frame::frame(
                    m,
                    &[],
                    client(true),
                    server(true),
                    &Tcp::syn(p, PORT),
                )]
            },
            &[("syn_answered", 1)],
            &[],
        )?;
        let sa = match answered_by(&lab, x.port, server(true), PORT)? {
            Ok(sa) => sa,
            Err(e) => {
                r.check(&format!("{what}: the edge answers the SYN"), Err(e));
                continue;
            }
        };
        let ack = ack_for(&Tcp::syn(x.port, PORT), &sa);
        let mut f = frame::frame(
            frame::Macs {
                dst: backend_mac,
                src: edge_mac,
            },
            &[],
            client(true),
            server(true),
            &ack,
        );
        if !right {
            f[l4 + 16] ^= 0x5a;
        }
        // Where the sum would be written: the TCP checksum field.
        let offset = (l4 + 16) as u16 - start;
        let (errs0, opens0) = (
            lab.lab.backend.net_counter("Tcp:InCsumErrors")?,
            lab.lab.backend.net_counter("Tcp:PassiveOpens")?,
        );
        let p = lab.probe_with(|| tx.send_partial(&f, start, offset))?;
        let case = format!("CHECKSUM_PARTIAL cookie ACK, {what}");
        eprintln!("      {case} [port {}]: {p}", x.port);
        r.check(
            &format!("{case}: counters"),
            crate::common::exactly(&crate::common::without_noise(&p.backend), &[(want, 1)]),
        );
        let acc = accept_any(&listeners, Duration::from_millis(500));
        let (errs, opens) = (
            lab.lab.backend.net_counter("Tcp:InCsumErrors")?,
            lab.lab.backend.net_counter("Tcp:PassiveOpens")?,
        );
        r.check(
            &format!("{case}: the kernel agrees"),
            match (socket, acc) {
                (true, Some((_, peer))) if peer.port() == x.port && opens > opens0 => Ok(()),
                (false, None) if opens == opens0 && errs == errs0 => Ok(()),
                (_, acc) => Err(format!(
                    "accepted {:?}, PassiveOpens +{}, InCsumErrors +{}",
                    acc.map(|a| a.1),
                    opens - opens0,
                    errs - errs0
                )),
            },
        );
    }
    r.finish(&lab)
}

/// The option block of a SYN of `len` option bytes (0, 4, ..., 20), chosen so that the answer
/// grows as much as possible: the edge answers with MSS, and SACK, timestamps and window scale
/// when offered.
fn size_options(len: usize) -> Vec<u8> {
    match len {
        0 => vec![],
        4 => vec![1, 3, 3, 7],
        // SACK-Permitted, WScale 7, EOL: the 62-byte SYN whose answer needs 66 bytes.
        8 => vec![4, 2, 3, 3, 7, 0, 0, 0],
        12 => vec![1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0],
        16 => vec![4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 1, 3, 3, 7],
        _ => frame::linux_syn_options(),
    }
}

/// SYN-size room hole: in native XDP on a veth, a SYN whose answer is longer could not grow
/// (the driver offers tailroom only to the next 64-byte boundary): a 62-byte SYN (SACK-Permitted,
/// WScale 7, EOL) needing a 66-byte answer, untagged or 802.1Q, was counted drop_synack_room and
/// left unanswered.
#[test]
fn every_syn_size_is_answered_in_native_xdp_on_veth() -> Result<()> {
    if !require_privileges("every_syn_size_is_answered_in_native_xdp_on_veth") {
        return Ok(());
    }
    let lab = lab(false)?;
    let m = lab.macs();
    // (description, port, the SYN, its VLAN tags)
    let mut sent: Vec<(String, u16, Tcp, Vec<u16>)> = Vec::new();
    let mut frames = Vec::new();
    for v6 in [false, true] {
        for vlans in [vec![], vec![7u16]] {
            let base = 14 + 4 * vlans.len() + if v6 { 40 } else { 20 } + 20;
            for size in base..=120 {
                let room = size - base;
                let opts = size_options(room.min(20) / 4 * 4);
                let rest = room - opts.len();
                for as_data in [true, false] {
                    if rest == 0 && !as_data {
                        continue; // nothing to pad: the same frame
                    }
                    let port = lab.port();
                    let mut syn = Tcp::syn(port, PORT);
                    syn.options = opts.clone();
                    let mut f = if as_data {
                        syn.payload = vec![0x61; rest];
                        frame::frame(m, &vlans, client(v6), server(v6), &syn)
                    } else {
                        let mut f = frame::frame(m, &vlans, client(v6), server(v6), &syn);
                        f.resize(f.len() + rest, 0);
                        f
                    };
                    f.truncate(size);
                    assert_eq!(f.len(), size);
                    let what = format!(
                        "{}-byte {}{} SYN, {} option bytes{}",
                        size,
                        fam(v6),
                        if vlans.is_empty() { "" } else { " 802.1Q" },
                        opts.len(),
                        match (rest, as_data) {
                            (0, _) => String::new(),
                            (n, true) => format!(", {n} bytes of SYN data"),
                            (n, false) => format!(", {n} bytes of Ethernet padding"),
                        }
                    );
                    sent.push((what, port, syn, vlans.clone()));
                    frames.push(f);
                }
            }
        }
    }
    let p = lab.probe(&frames)?;
    let replies = lab.all_replies(Duration::from_millis(300))?;
    let mut failures = Vec::new();
    for (what, port, syn, vlans) in &sent {
        let mine: Vec<&Reply> = replies.iter().filter(|r| r.client_port == *port).collect();
        let ok = mine.iter().any(|r| {
            r.is_synack()
                && r.vlans == *vlans
                && r.tcp.as_ref().is_some_and(|t| {
                    t.sport == PORT && t.ack == syn.seq.wrapping_add(1) && t.checksums_ok
                })
        });
        if !ok {
            failures.push(format!(
                "{what}: {}",
                if mine.is_empty() {
                    "not answered".to_string()
                } else {
                    format!(
                        "wrong answer: {}",
                        mine.iter()
                            .map(|r| r.describe())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                }
            ));
        }
    }
    let n = sent.len() as u64;
    eprintln!(
        "{n} SYNs of 54..120 bytes: {} answered; {p}",
        n - failures.len() as u64
    );
    let noise_free = crate::common::without_noise(&p.edge);
    if let Err(e) = crate::common::exactly(&noise_free, &[("syn_answered", n)]) {
        failures.push(format!("edge counters: {e}"));
    }
    ensure!(
        failures.is_empty(),
        "{} of {n} SYNs failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    Ok(())
}

/// Fragmented established traffic: an IPv4 connection without DF through a hop with a smaller
/// MTU (the router fragments) stalled, because the backend dropped the fragments.
#[test]
fn fragmented_ipv4_connection_without_df_completes() -> Result<()> {
    if !require_privileges("fragmented_ipv4_connection_without_df_completes") {
        return Ok(());
    }
    let lab = lab(false)?;
    let (c, e, b) = (&lab.lab.client, &lab.lab.edge, &lab.lab.backend);
    // The edge's routes to both sides carry MTU 1000: it fragments 1500-byte packets.
    e.run(&[
        "ip",
        "route",
        "replace",
        "10.66.2.0/24",
        "dev",
        topo::EDGE_BACKEND_IF,
        "src",
        "10.66.2.1",
        "mtu",
        "lock",
        "1000",
    ])?;
    e.run(&[
        "ip",
        "route",
        "replace",
        "10.66.1.0/24",
        "dev",
        topo::EDGE_CLIENT_IF,
        "src",
        "10.66.1.1",
        "mtu",
        "lock",
        "1000",
    ])?;
    // No path-MTU discovery: sockets send without DF.
    c.sysctl("net.ipv4.ip_no_pmtu_disc", "1")?;
    b.sysctl("net.ipv4.ip_no_pmtu_disc", "1")?;
    let addr = SocketAddr::new(server(false), PORT);
    let listener = b.listen(addr)?;
    let srv = tcp::EchoServer::start(listener)?;
    let before = (
        e.net_counter("Ip:FragCreates")?,
        b.net_counter("Ip:ReasmOKs")?,
        c.net_counter("Ip:ReasmOKs")?,
    );
    let (c0, b0) = lab.snaps()?;
    let len = 300_000;
    let r = c.enter(move || -> Result<()> {
        let data = tcp::pattern(len, 7);
        let mut s = tcp::connect(addr, None, Duration::from_secs(5))?;
        let (answer, _) = tcp::exchange(&mut s, &data, Duration::from_secs(10))?;
        ensure!(
            answer == tcp::transform(&data),
            "answer of {} bytes is not the transform of the {len} sent",
            answer.len()
        );
        Ok(())
    })?;
    let acc = srv.next(Duration::from_secs(2));
    let (c1, b1) = lab.snaps()?;
    let after = (
        e.net_counter("Ip:FragCreates")?,
        b.net_counter("Ip:ReasmOKs")?,
        c.net_counter("Ip:ReasmOKs")?,
    );
    let frags = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    let edge = crate::common::Delta::from_iter(
        c1.iter()
            .map(|(k, v)| (k.to_string(), v - c0.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0),
    );
    let backend = crate::common::Delta::from_iter(
        b1.iter()
            .map(|(k, v)| (k.to_string(), v - b0.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0),
    );
    eprintln!(
        "edge FragCreates {}, backend ReasmOKs {}, client ReasmOKs {}\nedge: {}\nbackend: {}",
        frags.0,
        frags.1,
        frags.2,
        crate::common::show(&edge),
        crate::common::show(&backend)
    );
    r.context("the exchange without DF through MTU 1000 (the backend drops fragments?)")?;
    let acc = acc?;
    ensure!(acc.received == len, "server received {}", acc.received);
    ensure!(
        frags.0 > 0 && frags.1 > 0 && frags.2 > 0,
        "no fragmentation both ways (the test would prove nothing): {frags:?}"
    );
    ensure!(
        backend.get("pass_fragment_nonfirst").copied().unwrap_or(0) > 0,
        "the backend counted no non-first fragments: {}",
        crate::common::show(&backend)
    );
    for (who, d) in [("edge", &edge), ("backend", &backend)] {
        let drops: Vec<_> = d.keys().filter(|k| k.starts_with("drop_")).collect();
        ensure!(
            drops.is_empty(),
            "{who} dropped: {}",
            crate::common::show(d)
        );
    }
    Ok(())
}

/// Fragmented established traffic, IPv6: a data segment of a real established connection, cut
/// into two IPv6 fragments, was dropped.
#[test]
fn fragmented_ipv6_data_segment_is_delivered() -> Result<()> {
    if !require_privileges("fragmented_ipv6_data_segment_is_delivered") {
        return Ok(());
    }
    let lab = lab(false)?;
    let m = lab.macs();
    let addr = SocketAddr::new(server(true), PORT);
    let listener = lab.lab.backend.listen(addr)?;
    // The server collects everything it reads.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(()),
                n => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    });
    let mut received = Vec::new();
    let wait_for = |received: &mut Vec<u8>, want: &[u8], limit: Duration| -> bool {
        let deadline = Instant::now() + limit;
        while !received.windows(want.len()).any(|w| w == want) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(b) => received.extend(b),
                Err(_) => return false,
            }
        }
        true
    };
    // A real connection; the client says hello.
    let stream = lab.lab.client.enter(move || -> Result<TcpStream> {
        let mut s = tcp::connect(addr, None, Duration::from_secs(5))?;
        s.write_all(b"hello")?;
        Ok(s)
    })??;
    let local = stream.local_addr()?.port();
    ensure!(
        wait_for(&mut received, b"hello", Duration::from_secs(5)),
        "the server did not receive the real client's hello"
    );
    // Quiet (the server's ACK of hello and any delayed ACK), then read the client's state from
    // what it sent: the next sequence number, the acknowledgment, the timestamps.
    std::thread::sleep(Duration::from_millis(400));
    let mine: Vec<ReplyTcp> = lab
        .sent()?
        .iter()
        .filter_map(|f| Reply::decode(f))
        .filter(|r| r.client_port == PORT)
        .filter_map(|r| r.tcp)
        .filter(|t| t.sport == local)
        .collect();
    let last = mine.last().context("captured nothing the client sent")?;
    let next = mine
        .iter()
        .map(|t| t.seq.wrapping_add(t.payload.len() as u32))
        .max()
        .expect("non-empty");
    let options = last.timestamps.map_or(Vec::new(), |(tsval, tsecr)| {
        let mut o = vec![1, 1, 8, 10];
        o.extend_from_slice(&tsval.to_be_bytes());
        o.extend_from_slice(&tsecr.to_be_bytes());
        o
    });
    let seg = |seq: u32, payload: &[u8]| Tcp {
        sport: local,
        dport: PORT,
        seq,
        ack: last.ack,
        flags: PSH | ACK,
        window: 502,
        options: options.clone(),
        payload: payload.to_vec(),
    };
    let mut r = Report::new();

    // Control: the crafted segment unfragmented is delivered (the state was read right).
    let plain = b"[crafted, whole]";
    let p = lab.probe(&[frame::frame(
        m,
        &[],
        client(true),
        server(true),
        &seg(next, plain),
    )])?;
    let case = "control: a crafted data segment (not fragmented) is delivered";
    eprintln!("      {case}: {p}");
    r.check(
        case,
        if wait_for(&mut received, plain, ANSWER) {
            Ok(())
        } else {
            Err(format!("not delivered; {p}"))
        },
    );
    // The same kind of segment in two fragments: the first holds the TCP header and 8 bytes of
    // data, the second the rest.
    let data = b"[crafted, fragmented: the second fragment carries these bytes]";
    let s = seg(next.wrapping_add(plain.len() as u32), data);
    let bytes = s.bytes(CLIENT_V6.into(), BACKEND_V6.into());
    let cut = (bytes.len() - data.len() + 8) / 8 * 8;
    let frags = frame::two_fragments(m, CLIENT_V6, BACKEND_V6, frame::NH_TCP, &bytes, cut, 0x77);
    let p = lab.probe(&frags)?;
    let case = "a data segment in two IPv6 fragments on an established connection";
    eprintln!("      {case}: {p}");
    r.check(
        &format!("{case}: delivered"),
        if wait_for(&mut received, data, ANSWER) {
            Ok(())
        } else {
            Err(format!("not delivered; {p}"))
        },
    );
    r.check(
        &format!("{case}: counters"),
        match (
            p.edge.get("pass_fragment_nonfirst"),
            p.backend.get("pass_fragment_nonfirst"),
        ) {
            (Some(1), Some(1))
                if !p
                    .edge
                    .keys()
                    .chain(p.backend.keys())
                    .any(|k| k.starts_with("drop_")) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "want pass_fragment_nonfirst=1 on both and no drop; {p}"
            )),
        },
    );
    drop(stream);
    let _ = srv.join();
    r.finish(&lab)
}

/// Sockets the kernel discards: an ACK with a valid cookie and a corrupted TCP checksum raised
/// backend_reqsk_created, but the kernel discarded the segment (no socket).
#[test]
fn valid_cookie_ack_with_bad_checksum_creates_nothing() -> Result<()> {
    if !require_privileges("valid_cookie_ack_with_bad_checksum_creates_nothing") {
        return Ok(());
    }
    let lab = lab(false)?;
    let listeners = lab.listen(PORT)?;
    let m = lab.macs();
    let mut r = Report::new();
    // (family, bytes of data on the handshake ACK): the backend sums the whole segment, in
    // chunks, so odd lengths and lengths across a chunk boundary are tried too. Without data the
    // checksum field is corrupted; with data, the last data byte.
    let cases = [
        (false, 0),
        (true, 0),
        (false, 1),
        (false, 3),
        (false, 777),
        (false, 1400),
        (true, 3),
        (true, 1401),
    ];
    for (v6, len) in cases {
        let f = format!("{} handshake ACK with {len} bytes of data", fam(v6));
        let x = lab.probe_exact(
            |p| {
                vec![frame::frame(
                    m,
                    &[],
                    client(v6),
                    server(v6),
                    &Tcp::syn(p, PORT),
                )]
            },
            &[("syn_answered", 1)],
            &[],
        )?;
        let sa = match answered_by(&lab, x.port, server(v6), PORT)? {
            Ok(sa) => sa,
            Err(e) => {
                r.check(&format!("{f}: the edge answers the SYN"), Err(e));
                continue;
            }
        };
        let mut ack = ack_for(&Tcp::syn(x.port, PORT), &sa);
        ack.payload = tcp::pattern(len, len as u32);
        if len > 0 {
            ack.flags |= PSH;
        }
        let good = frame::frame(m, &[], client(v6), server(v6), &ack);
        let mut bad = good.clone();
        let l4 = 14 + if v6 { 40 } else { 20 };
        if len == 0 {
            bad[l4 + 16] ^= 0x5a;
        } else {
            *bad.last_mut().expect("data") ^= 0x5a;
        }
        let (errs0, opens0) = (
            lab.lab.backend.net_counter("Tcp:InCsumErrors")?,
            lab.lab.backend.net_counter("Tcp:PassiveOpens")?,
        );
        let p = lab.probe(&[bad])?;
        let case = format!("{f}, valid cookie, bad TCP checksum");
        eprintln!("      {case} [port {}]: {p}", x.port);
        r.check(
            &format!("{case}: counters"),
            crate::common::exactly(
                &crate::common::without_noise(&p.edge),
                &[("fwd_non_syn", 1)],
            )
            .and_then(|_| {
                crate::common::exactly(
                    &crate::common::without_noise(&p.backend),
                    &[("drop_ack_checksum", 1)],
                )
            }),
        );
        let acc = accept_any(&listeners, Duration::from_millis(300));
        let errs = lab.lab.backend.net_counter("Tcp:InCsumErrors")?;
        let opens = lab.lab.backend.net_counter("Tcp:PassiveOpens")?;
        r.check(
            &format!("{case}: nothing created, the kernel never sees it"),
            if acc.is_none() && opens == opens0 && errs == errs0 {
                Ok(())
            } else {
                Err(format!(
                    "accepted {:?}, PassiveOpens +{}, InCsumErrors +{}",
                    acc.map(|a| a.1),
                    opens - opens0,
                    errs - errs0
                ))
            },
        );
        // Control: the same ACK with its checksum right creates the socket, and its data arrives.
        let p = lab.probe(&[good])?;
        let case = format!("control: {f}, valid cookie, checksum right");
        eprintln!("      {case}: {p}");
        let acc = accept_any(&listeners, ANSWER);
        let got = acc.as_ref().map(|(s, _)| -> std::io::Result<Vec<u8>> {
            let mut s = s.try_clone()?;
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(ANSWER))?;
            let mut buf = vec![0u8; len];
            s.read_exact(&mut buf)?;
            Ok(buf)
        });
        r.check(
            &case,
            match (&acc, p.backend.get("backend_reqsk_created"), got) {
                (Some((_, peer)), Some(1), Some(Ok(data)))
                    if peer.port() == x.port && data == ack.payload =>
                {
                    Ok(())
                }
                (_, _, got) => Err(format!(
                    "accepted {:?}, data {:?}; {p}",
                    acc.as_ref().map(|a| a.1),
                    got.map(|g| g.map(|d| d.len()))
                )),
            },
        );
    }
    // A handshake ACK (valid cookie, 64 bytes of data) in two IP fragments: the backend makes no
    // socket from a fragment (its checksum cannot be checked), and the rest alone completes
    // nothing. Control: the same ACK whole creates the socket.
    for v6 in [false, true] {
        let f = format!("{} handshake ACK with data, in two fragments", fam(v6));
        let x = lab.probe_exact(
            |p| {
                vec![frame::frame(
                    m,
                    &[],
                    client(v6),
                    server(v6),
                    &Tcp::syn(p, PORT),
                )]
            },
            &[("syn_answered", 1)],
            &[],
        )?;
        let sa = match answered_by(&lab, x.port, server(v6), PORT)? {
            Ok(sa) => sa,
            Err(e) => {
                r.check(&format!("{f}: the edge answers the SYN"), Err(e));
                continue;
            }
        };
        let mut ack = ack_for(&Tcp::syn(x.port, PORT), &sa);
        ack.payload = tcp::pattern(64, 64);
        ack.flags |= PSH;
        let seg = ack.bytes(client(v6), server(v6));
        let frags = if v6 {
            frame::two_fragments(m, CLIENT_V6, BACKEND_V6, frame::NH_TCP, &seg, 48, 0x99).to_vec()
        } else {
            frame::v4_two_fragments(m, client(v6), server(v6), &seg, 48).to_vec()
        };
        let opens0 = lab.lab.backend.net_counter("Tcp:PassiveOpens")?;
        let p = lab.probe(&frags)?;
        eprintln!("      {f} [port {}]: {p}", x.port);
        r.check(
            &format!("{f}: counters"),
            crate::common::exactly(
                &crate::common::without_noise(&p.edge),
                &[("fwd_non_syn", 1), ("pass_fragment_nonfirst", 1)],
            )
            .and_then(|_| {
                crate::common::exactly(
                    &crate::common::without_noise(&p.backend),
                    &[("drop_ack_fragment", 1), ("pass_fragment_nonfirst", 1)],
                )
            }),
        );
        let acc = accept_any(&listeners, Duration::from_millis(300));
        let opens = lab.lab.backend.net_counter("Tcp:PassiveOpens")?;
        r.check(
            &format!("{f}: nothing created"),
            if acc.is_none() && opens == opens0 {
                Ok(())
            } else {
                Err(format!(
                    "accepted {:?}, PassiveOpens +{}",
                    acc.map(|a| a.1),
                    opens - opens0
                ))
            },
        );
        let p = lab.probe(&[frame::frame(m, &[], client(v6), server(v6), &ack)])?;
        let case = format!("control: {f}: the same ACK whole creates the socket");
        eprintln!("      {case}: {p}");
        r.check(
            &case,
            match accept_any(&listeners, ANSWER) {
                Some((_, peer)) if peer.port() == x.port => Ok(()),
                other => Err(format!("accepted {:?}; {p}", other.map(|a| a.1))),
            },
        );
    }
    r.finish(&lab)
}

/// Builds a frame for a crafted client port.
type Make<'a> = Box<dyn Fn(u16) -> Vec<u8> + 'a>;

/// One malformed frame: what it is, how to build it for a client port, the edge counter it must
/// increment (exactly that one, once), and what the backend must count (forwarded frames).
struct Bad {
    what: String,
    make: Make<'static>,
    edge: &'static str,
    backend: Option<&'static str>,
}

/// A well-formed SYN frame to the protected port, and the offsets of its IP and TCP headers.
fn good_syn(
    m: Macs,
    v6: bool,
    p: u16,
    vlans: &[u16],
    t: impl Fn(&mut Tcp),
) -> (Vec<u8>, usize, usize) {
    let mut syn = Tcp::syn(p, PORT);
    t(&mut syn);
    let f = frame::frame(m, vlans, client(v6), server(v6), &syn);
    let l3 = 14 + 4 * vlans.len();
    (f, l3, l3 + if v6 { 40 } else { 20 })
}

/// Recompute the IPv4 header checksum of `f` at `l3` (after editing a field on purpose).
fn fix_v4_csum(f: &mut [u8], l3: usize) {
    let hl = (f[l3] & 0x0f) as usize * 4;
    let hl = hl.clamp(20, f.len() - l3);
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    let c = synwall_wire::checksum::checksum(&f[l3..l3 + hl]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

fn malformed_set(m: Macs) -> Vec<Bad> {
    let mut v: Vec<Bad> = Vec::new();
    let mut add =
        |what: &str, edge: &'static str, backend: Option<&'static str>, make: Make<'static>| {
            v.push(Bad {
                what: what.to_string(),
                make,
                edge,
                backend,
            })
        };
    // Truncations.
    add(
        "Ethernet header only (IPv4 type)",
        "drop_truncated",
        None,
        Box::new(move |p| good_syn(m, false, p, &[], |_| {}).0[..14].to_vec()),
    );
    add(
        "802.1Q tag cut short",
        "drop_truncated",
        None,
        Box::new(move |p| {
            let mut f = frame::eth(m, &[], 0x8100);
            f.extend_from_slice(&(p & 0x0fff).to_be_bytes());
            f
        }),
    );
    add(
        "IPv4 header cut at 12 bytes",
        "drop_truncated",
        None,
        Box::new(move |p| good_syn(m, false, p, &[], |_| {}).0[..26].to_vec()),
    );
    add(
        "IPv4 total length past the frame",
        "drop_truncated",
        None,
        Box::new(move |p| {
            let (mut f, l3, _) = good_syn(m, false, p, &[], |_| {});
            let t = u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]) + 40;
            f[l3 + 2..l3 + 4].copy_from_slice(&t.to_be_bytes());
            fix_v4_csum(&mut f, l3);
            f
        }),
    );
    add(
        "IPv6 header cut at 30 bytes",
        "drop_truncated",
        None,
        Box::new(move |p| good_syn(m, true, p, &[], |_| {}).0[..44].to_vec()),
    );
    add(
        "IPv6 payload length past the frame",
        "drop_truncated",
        None,
        Box::new(move |p| {
            let (mut f, l3, _) = good_syn(m, true, p, &[], |_| {});
            let t = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]) + 40;
            f[l3 + 4..l3 + 6].copy_from_slice(&t.to_be_bytes());
            f
        }),
    );
    for v6 in [false, true] {
        add(
            &format!("{}: only 12 bytes of TCP header", fam(v6)),
            "drop_tcp_malformed",
            None,
            Box::new(move |p| {
                let (mut f, l3, l4) = good_syn(m, v6, p, &[], |_| {});
                f.truncate(l4 + 12);
                if v6 {
                    f[l3 + 4..l3 + 6].copy_from_slice(&12u16.to_be_bytes());
                } else {
                    f[l3 + 2..l3 + 4].copy_from_slice(&32u16.to_be_bytes());
                    fix_v4_csum(&mut f, l3);
                }
                f
            }),
        );
    }
    // Bad lengths and versions.
    add(
        "IPv4 IHL 4",
        "drop_ip_malformed",
        None,
        Box::new(move |p| {
            let (mut f, l3, _) = good_syn(m, false, p, &[], |_| {});
            f[l3] = 0x44;
            f
        }),
    );
    add(
        "IPv4 total length 16 (< header)",
        "drop_ip_malformed",
        None,
        Box::new(move |p| {
            let (mut f, l3, _) = good_syn(m, false, p, &[], |_| {});
            f[l3 + 2..l3 + 4].copy_from_slice(&16u16.to_be_bytes());
            fix_v4_csum(&mut f, l3);
            f
        }),
    );
    add(
        "IPv4 type, IP version 6",
        "drop_ip_malformed",
        None,
        Box::new(move |p| {
            let (mut f, l3, _) = good_syn(m, false, p, &[], |_| {});
            f[l3] = 0x65;
            f
        }),
    );
    add(
        "IPv6 payload length 0",
        "drop_ip_malformed",
        None,
        Box::new(move |p| {
            let (mut f, l3, _) = good_syn(m, true, p, &[], |_| {});
            f[l3 + 4] = 0;
            f[l3 + 5] = 0;
            f
        }),
    );
    add(
        "IPv6 type, IP version 4",
        "drop_ip_malformed",
        None,
        Box::new(move |p| {
            let (mut f, l3, _) = good_syn(m, true, p, &[], |_| {});
            f[l3] = 0x40;
            f
        }),
    );
    for v6 in [false, true] {
        add(
            &format!("{}: TCP data offset 4", fam(v6)),
            "drop_tcp_malformed",
            None,
            Box::new(move |p| {
                let (mut f, _, l4) = good_syn(m, v6, p, &[], |_| {});
                f[l4 + 12] = 4 << 4;
                f
            }),
        );
        add(
            &format!("{}: TCP data offset 15 on a 40-byte segment", fam(v6)),
            "drop_tcp_malformed",
            None,
            Box::new(move |p| {
                let (mut f, _, l4) = good_syn(m, v6, p, &[], |_| {});
                f[l4 + 12] = 15 << 4;
                f
            }),
        );
    }
    // IPv6 extension headers: one past the walk limit; one running past the payload.
    let depth = synwall_wire::ipv6::MAX_EXT_HEADERS + 1;
    add(
        &format!("IPv6 with {depth} destination-options headers"),
        "drop_ipv6_ext_depth",
        None,
        Box::new(move |p| {
            let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
            let exts: Vec<Vec<u8>> = (0..depth)
                .map(|i| {
                    frame::dest_opts(if i + 1 == depth {
                        frame::NH_TCP
                    } else {
                        frame::NH_DEST_OPTS
                    })
                })
                .collect();
            frame::v6_frame(m, CLIENT_V6, BACKEND_V6, frame::NH_DEST_OPTS, &exts, &seg)
        }),
    );
    add(
        "IPv6 destination-options header running past the payload",
        "drop_ip_malformed",
        None,
        Box::new(move |p| {
            let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
            let mut d = frame::dest_opts(frame::NH_TCP);
            d[1] = 8; // 72 bytes claimed, 8 + the 40-byte segment present
            frame::v6_frame(m, CLIENT_V6, BACKEND_V6, frame::NH_DEST_OPTS, &[d], &seg)
        }),
    );
    // TCP option lists.
    for (what, opts) in [
        ("option of length 0", vec![2u8, 0, 0, 0, 1, 1, 1, 1]),
        ("option of length 1", vec![3, 1, 0, 0]),
        (
            "timestamps option running past the header",
            vec![1, 1, 8, 10],
        ),
        ("option kind in the last byte, no length", vec![1, 1, 1, 2]),
    ] {
        for v6 in [false, true] {
            let o = opts.clone();
            add(
                &format!("{}: {what}", fam(v6)),
                "drop_syn_options",
                None,
                Box::new(move |p| good_syn(m, v6, p, &[], |s| s.options = o.clone()).0),
            );
        }
    }
    // VLAN depth.
    add(
        "three VLAN tags",
        "drop_vlan_depth",
        None,
        Box::new(move |p| good_syn(m, false, p, &[5, 6, 7], |_| {}).0),
    );
    // Checksums.
    for v6 in [false, true] {
        add(
            &format!("{}: bad TCP checksum", fam(v6)),
            "drop_syn_checksum",
            None,
            Box::new(move |p| {
                let (mut f, _, l4) = good_syn(m, v6, p, &[], |_| {});
                f[l4 + 16] ^= 0x11;
                f
            }),
        );
    }
    add(
        "IPv4: bad header checksum",
        "drop_syn_checksum",
        None,
        Box::new(move |p| {
            let (mut f, l3, _) = good_syn(m, false, p, &[], |_| {});
            f[l3 + 10] ^= 0x11;
            f
        }),
    );
    // Flag combinations.
    for v6 in [false, true] {
        for (what, flags, edge, backend) in [
            ("SYN+RST", SYN | RST, "drop_syn_flags", None),
            ("SYN+FIN", SYN | FIN, "drop_syn_flags", None),
            (
                "SYN+ACK",
                SYN | ACK,
                "fwd_non_syn",
                Some("backend_pass_other"),
            ),
            ("no flags", 0, "fwd_non_syn", Some("backend_pass_other")),
            (
                "all flags",
                FIN | SYN | RST | PSH | ACK | URG | ECE | CWR,
                "fwd_non_syn",
                Some("backend_pass_other"),
            ),
        ] {
            add(
                &format!("{}: {what}", fam(v6)),
                edge,
                backend,
                Box::new(move |p| {
                    good_syn(m, v6, p, &[], |s| {
                        s.flags = flags;
                        if flags & ACK != 0 {
                            s.ack = 0x7777_0000;
                        }
                    })
                    .0
                }),
            );
        }
    }
    // Fragments: a tiny-fragment overlap of the TCP header (RFC 1858), a first fragment too short
    // for the TCP header, non-first fragments (passed: nothing to judge, nothing to complete),
    // and fragment-wrapped SYNs behind VLAN tags.
    add(
        "IPv4 fragment at offset 8 bytes (overlaps the TCP header)",
        "drop_fragment",
        None,
        Box::new(move |p| {
            let seg = Tcp::syn(p, PORT).bytes(CLIENT_V4.into(), BACKEND_V4.into());
            let mut ip = frame::V4::new(CLIENT_V4.into(), BACKEND_V4.into());
            ip.df = false;
            ip.frag_offset = 1;
            let mut f = frame::eth(m, &[], 0x0800);
            f.extend(ip.bytes(seg.len() - 8));
            f.extend_from_slice(&seg[8..]);
            f
        }),
    );
    add(
        "IPv6 fragment at offset 8 bytes (overlaps the TCP header)",
        "drop_fragment",
        None,
        Box::new(move |p| {
            let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
            frame::v6_frame(
                m,
                CLIENT_V6,
                BACKEND_V6,
                frame::NH_FRAGMENT,
                &[frame::frag6(frame::NH_TCP, 1, false, p as u32)],
                &seg[8..],
            )
        }),
    );
    add(
        "IPv4 first fragment with 16 bytes of the TCP header",
        "drop_fragment",
        None,
        Box::new(move |p| {
            let seg = Tcp::syn(p, PORT).bytes(CLIENT_V4.into(), BACKEND_V4.into());
            frame::v4_two_fragments(m, CLIENT_V4.into(), BACKEND_V4.into(), &seg, 16)[0].clone()
        }),
    );
    add(
        "IPv4 non-first fragment (offset 40 bytes) to the protected address",
        "pass_fragment_nonfirst",
        Some("pass_fragment_nonfirst"),
        Box::new(move |p| {
            let mut syn = Tcp::syn(p, PORT);
            syn.payload = vec![0x62; 16];
            let seg = syn.bytes(CLIENT_V4.into(), BACKEND_V4.into());
            frame::v4_two_fragments(m, CLIENT_V4.into(), BACKEND_V4.into(), &seg, 40)[1].clone()
        }),
    );
    add(
        "IPv6 non-first fragment (offset 40 bytes) to the protected address",
        "pass_fragment_nonfirst",
        Some("pass_fragment_nonfirst"),
        Box::new(move |p| {
            let mut syn = Tcp::syn(p, PORT);
            syn.payload = vec![0x62; 16];
            let seg = syn.bytes(CLIENT_V6.into(), BACKEND_V6.into());
            frame::two_fragments(m, CLIENT_V6, BACKEND_V6, frame::NH_TCP, &seg, 40, p as u32)[1]
                .clone()
        }),
    );
    for (what, tags) in [
        ("802.1Q", vec![0x81, 0, 0, 7]),
        ("QinQ", vec![0x88, 0xa8, 0, 5, 0x81, 0, 0, 7]),
    ] {
        add(
            &format!("{what}-tagged IPv6 atomic-fragment SYN"),
            "drop_syn_fragment",
            None,
            Box::new(move |p| {
                let mut f = wrapped_syn(m, p, PORT);
                f.splice(12..12, tags.iter().copied());
                f
            }),
        );
    }
    // IPv4 options: a malformed list to the protected address.
    add(
        "IPv4 options with a zero-length option",
        "drop_ip_malformed",
        None,
        Box::new(move |p| {
            let seg = Tcp::syn(p, PORT).bytes(CLIENT_V4.into(), BACKEND_V4.into());
            let mut ip = frame::V4::new(CLIENT_V4.into(), BACKEND_V4.into());
            ip.options = vec![7, 0, 0, 0];
            let mut f = frame::eth(m, &[], 0x0800);
            f.extend(ip.bytes(seg.len()));
            f.extend(seg);
            f
        }),
    );
    add(
        "not IP (EtherType 0x88b5)",
        "pass_not_ip",
        None,
        Box::new(move |p| {
            let mut f = good_syn(m, false, p, &[], |_| {}).0;
            f[12] = 0x88;
            f[13] = 0xb5;
            f
        }),
    );
    v
}

/// The malformed set: every frame increments exactly one expected edge counter (read right
/// before and after it), and nothing answers it.
#[test]
fn malformed_frames_counted_exactly_never_answered() -> Result<()> {
    if !require_privileges("malformed_frames_counted_exactly_never_answered") {
        return Ok(());
    }
    let lab = lab(false)?;
    let _listeners = lab.listen(PORT)?;
    let m = lab.macs();
    let mut r = Report::new();
    // Positive controls: answered SYNs are seen (plain, QinQ, and with Ethernet padding).
    let controls: Vec<(&str, Make<'static>, bool)> = vec![
        (
            "control: plain IPv4 SYN",
            Box::new(move |p| good_syn(m, false, p, &[], |_| {}).0),
            false,
        ),
        (
            "control: plain IPv6 SYN",
            Box::new(move |p| good_syn(m, true, p, &[], |_| {}).0),
            true,
        ),
        (
            "control: IPv4 SYN with two VLAN tags",
            Box::new(move |p| good_syn(m, false, p, &[5, 7], |_| {}).0),
            false,
        ),
        (
            "control: IPv4 SYN with a record-route option (IHL 8)",
            Box::new(move |p| {
                let seg = Tcp::syn(p, PORT).bytes(CLIENT_V4.into(), BACKEND_V4.into());
                let mut ip = frame::V4::new(CLIENT_V4.into(), BACKEND_V4.into());
                ip.options = vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                let mut f = frame::eth(m, &[], 0x0800);
                f.extend(ip.bytes(seg.len()));
                f.extend(seg);
                f
            }),
            false,
        ),
        (
            "control: IPv6 SYN behind as many extension headers as the walk allows",
            Box::new(move |p| {
                let depth = synwall_wire::ipv6::MAX_EXT_HEADERS;
                let seg = Tcp::syn(p, PORT).bytes(CLIENT_V6.into(), BACKEND_V6.into());
                // Hop-by-hop first (it must be), then destination options.
                let exts: Vec<Vec<u8>> = (0..depth)
                    .map(|i| {
                        frame::dest_opts(if i + 1 == depth {
                            frame::NH_TCP
                        } else {
                            frame::NH_DEST_OPTS
                        })
                    })
                    .collect();
                frame::v6_frame(m, CLIENT_V6, BACKEND_V6, 0, &exts, &seg)
            }),
            true,
        ),
        (
            "control: IPv6 SYN with 20 bytes of Ethernet padding",
            Box::new(move |p| {
                let mut f = good_syn(m, true, p, &[], |_| {}).0;
                f.extend_from_slice(&[0u8; 20]);
                f
            }),
            true,
        ),
    ];
    for (case, make, v6) in &controls {
        let x = lab.probe_exact(|p| vec![make(p)], &[("syn_answered", 1)], &[])?;
        r.counted(case, &x);
        r.check(
            case,
            answered_by(&lab, x.port, server(*v6), PORT)?.map(|_| ()),
        );
    }
    for b in malformed_set(m) {
        let backend: Vec<(&str, u64)> = b.backend.iter().map(|c| (*c, 1)).collect();
        let x = lab.probe_exact(|p| vec![(b.make)(p)], &[(b.edge, 1)], &backend)?;
        r.counted(&b.what, &x);
        if b.what.ends_with("SYN+ACK") {
            // Forwarded (default mode); the backend kernel resets a SYN+ACK to a listener, as it
            // would without synwall. Nothing else may answer.
            std::thread::sleep(Duration::from_millis(200));
            let got = lab.replies(x.port, Duration::ZERO)?;
            let other: Vec<Reply> = got
                .into_iter()
                .filter(|r| {
                    !r.tcp
                        .as_ref()
                        .is_some_and(|t| t.flags & RST != 0 && t.flags & SYN == 0)
                })
                .collect();
            r.check(
                &format!("{}: no answer but the kernel's RST", b.what),
                if other.is_empty() {
                    Ok(())
                } else {
                    Err(describe(&other))
                },
            );
        } else {
            r.silent(x.port, &b.what);
        }
    }
    r.finish(&lab)
}
