//! Jumbo frames end to end: every link of client | edge | backend has MTU 9000. The edge program
//! must attach natively (XDP multi-buffer; the configuration allows no generic fallback), and
//! real kernel clients move 1 MB each way through the edge and the backend, IPv4 and IPv6, with
//! and without timestamps. The edge advertises the jumbo MSS (`[server] mss_v4 = 8960`,
//! `mss_v6 = 8940`), so the client's own segments are jumbo frames through the edge's XDP.
//! Checked: the SYN+ACK the client captured carries that MSS; the server socket's decoded MSS
//! (TCP_INFO snd_mss) is SPEC's table entry for the client's MSS (8960 / 8940) less 12 bytes
//! when timestamps are on; frames over 8000 bytes crossed the edge. A crafted SYN carrying 2000
//! bytes of data (one buffer) is answered; one carrying 8000 (its segment past the first buffer
//! of the multi-buffer frame) is refused, `drop_syn_multibuf`.
//!
//! Run with the edge in default mode and in strict mode (the flows' jumbo segments then pass
//! through the strict flow cache).
//!
//! The hole: at MTU 9000, `synwall edge` could not attach natively (no `xdp.frags`).
//! Needs root (CI=true: fail, else skip with a message).

use crate::common::{Lab, LabOptions, Reply, PORT};
use anyhow::{ensure, Context, Result};
use std::time::Duration;
use synwall_testkit::frame::{self, Tcp};
use synwall_testkit::tcp::{self, EchoServer};
use synwall_testkit::topo::{self, EDGE_CLIENT_IF};
use synwall_testkit::{require_privileges, unique_prefix};

const MTU: u32 = 9000;
/// SPEC section 3: the jumbo entries of the MSS tables (typed in here, not taken from the code).
const JUMBO_MSS_V4: u32 = 8960;
const JUMBO_MSS_V6: u32 = 8940;
const LEN: usize = 1 << 20;

#[test]
fn jumbo_mtu_9000_edge_attaches_natively_and_carries_1mb_each_way() -> Result<()> {
    if !require_privileges("jumbo_mtu_9000_edge_attaches_natively_and_carries_1mb_each_way") {
        return Ok(());
    }
    jumbo(false)
}

/// The same in strict mode: the edge validates the handshake ACKs and forwards the flows' jumbo
/// (multi-buffer) segments from its flow cache.
#[test]
fn jumbo_mtu_9000_strict_edge_carries_1mb_each_way() -> Result<()> {
    if !require_privileges("jumbo_mtu_9000_strict_edge_carries_1mb_each_way") {
        return Ok(());
    }
    jumbo(true)
}

fn jumbo(strict: bool) -> Result<()> {
    let lab = Lab::build(
        &unique_prefix(),
        &LabOptions {
            strict,
            mtu: Some(MTU),
            server_mss: Some((JUMBO_MSS_V4 as u16, JUMBO_MSS_V6 as u16)),
            ..Default::default()
        },
    )
    .context("the nodes start on MTU 9000 links with the edge attached natively")?;
    // Native, not generic: the kernel shows `xdp` (driver mode), not `xdpgeneric`.
    let link = lab
        .lab
        .edge
        .run(&["ip", "-d", "link", "show", "dev", EDGE_CLIENT_IF])?;
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    let first = link.lines().next().unwrap_or_default();
    ensure!(
        first.contains(" xdp ") && first.contains("mtu 9000"),
        "the edge program is not attached natively at MTU 9000: {first}"
    );

    let mut servers = Vec::new();
    for (addr, l) in lab.lab.backend_listeners(PORT)? {
        servers.push((addr, EchoServer::start(l)?));
    }
    let mut n = 0;
    for ts in [true, false] {
        lab.lab
            .client
            .sysctl("net.ipv4.tcp_timestamps", if ts { "1" } else { "0" })?;
        for (v6, (addr, server)) in [false, true].into_iter().zip(&servers) {
            let to = *addr;
            let (local, cinfo) = lab.lab.client.enter(move || -> Result<_> {
                let data = tcp::pattern(LEN, 9);
                let mut s = tcp::connect(to, None, Duration::from_secs(5))?;
                let local = s.local_addr()?;
                let (answer, info) = tcp::exchange(&mut s, &data, Duration::from_secs(15))?;
                ensure!(
                    answer == tcp::transform(&data),
                    "answer of {} bytes is not the transform of the {LEN} sent",
                    answer.len()
                );
                Ok((local, info))
            })??;
            n += 1;
            let acc = server.next(Duration::from_secs(5))?;
            ensure!(acc.peer == local && acc.received == LEN, "{acc:?}");
            let jumbo = if v6 { JUMBO_MSS_V6 } else { JUMBO_MSS_V4 };
            let want = jumbo - if ts { 12 } else { 0 };
            let what = format!(
                "IPv{}, timestamps {}",
                if v6 { 6 } else { 4 },
                if ts { "on" } else { "off" }
            );
            eprintln!("{what}: server {}  client {}", acc.info, cinfo);
            ensure!(
                acc.info.snd_mss == want,
                "{what}: the server socket's MSS is {}, want {want} (decoded {jumbo})",
                acc.info.snd_mss
            );
            ensure!(
                cinfo.snd_mss == want,
                "{what}: the client's MSS is {}, want {want} (the SYN+ACK's {jumbo})",
                cinfo.snd_mss
            );
            // The SYN+ACK the client saw, and the jumbo frames it sent through the edge.
            let synack = lab
                .replies(local.port(), Duration::ZERO)?
                .into_iter()
                .find(Reply::is_synack)
                .context("no SYN+ACK captured")?;
            let t = synack.tcp.as_ref().expect("TCP");
            ensure!(
                t.mss == Some(jumbo as u16) && t.timestamps.is_some() == ts && t.checksums_ok,
                "{what}: SYN+ACK {} with MSS {:?}, timestamps {:?}",
                synack.describe(),
                t.mss,
                t.timestamps
            );
            let big = lab
                .sent()?
                .iter()
                .filter(|f| f.len() > 8000)
                .filter_map(|f| Reply::decode(f))
                .filter(|r| r.tcp.as_ref().is_some_and(|t| t.sport == local.port()))
                .count();
            ensure!(
                big > 0,
                "{what}: the client sent no frame over 8000 bytes through the edge"
            );
            eprintln!("{what}: {big} frames over 8000 bytes crossed the edge's XDP");
        }
    }
    // Crafted SYNs carrying data: one in the first buffer is answered; one whose segment runs
    // past the first buffer of the multi-buffer frame is refused.
    for (data, want) in [(2000usize, "syn_answered"), (8000, "drop_syn_multibuf")] {
        let x = lab.probe_exact(
            |p| {
                let mut syn = Tcp::syn(p, PORT);
                syn.payload = tcp::pattern(data, 3);
                vec![frame::frame(
                    lab.macs(),
                    &[],
                    topo::client_addr(false),
                    topo::backend_addr(false),
                    &syn,
                )]
            },
            &[(want, 1)],
            &[],
        )?;
        let what = format!("a SYN with {data} bytes of data");
        eprintln!("{what}: {}", x.probe);
        x.counters
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{what}: counters"))?;
        let answer = lab.synack(x.port, Duration::from_secs(2))?;
        if want == "syn_answered" {
            let a = answer.with_context(|| format!("{what}: not answered"))?;
            ensure!(
                a.tcp.as_ref().is_some_and(|t| t.checksums_ok),
                "{what}: {}",
                a.describe()
            );
        } else {
            ensure!(answer.is_none(), "{what}: answered");
        }
    }
    let (e, b) = lab.snaps()?;
    let get = |s: &crate::common::Snap, k: &str| s.get(k).copied().unwrap_or(0);
    eprintln!(
        "edge syn_answered {} fwd_non_syn {} strict_ack_valid {} strict_fwd_cached {} \
         strict_drop {}; backend reqsk_created {}",
        get(&e, "syn_answered"),
        get(&e, "fwd_non_syn"),
        get(&e, "strict_ack_valid"),
        get(&e, "strict_fwd_cached"),
        get(&e, "strict_drop"),
        get(&b, "backend_reqsk_created")
    );
    if strict {
        ensure!(
            get(&e, "strict_ack_valid") >= n && get(&e, "strict_fwd_cached") > 0,
            "the strict edge validated {} handshakes, forwarded {} cached segments",
            get(&e, "strict_ack_valid"),
            get(&e, "strict_fwd_cached")
        );
    }
    // The kernel clients' SYNs and the crafted one with 2000 bytes of data.
    ensure!(
        get(&e, "syn_answered") == n + 1,
        "edge answered {}",
        get(&e, "syn_answered")
    );
    ensure!(
        get(&e, "drop_syn_multibuf") == 1 && get(&e, "drop_synack_room") == 0,
        "edge refused SYNs: {e:?}"
    );
    ensure!(
        get(&b, "backend_reqsk_created") == n,
        "backend created {}",
        get(&b, "backend_reqsk_created")
    );
    Ok(())
}
