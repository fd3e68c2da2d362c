//! The backend's checksum check against a real client whose kernel leaves the TCP checksum to the
//! "hardware" (veth TX checksum offload on: CHECKSUM_PARTIAL skbs, whose checksum field holds only
//! the pseudo-header sum). The kernel trusts such a segment without computing its checksum, so the
//! backend must too, or it would drop every handshake ACK of a local or offloading sender.
//!
//! ```text
//!  client netns                                   backend netns
//!  c0 10.66.3.1 (tx offload off) ── veth ── b0 10.66.3.2: synwall edge (XDP)      service
//!  c1 10.66.4.1 (tx offload ON)  ── veth ── b1 10.66.4.2: synwall backend (tcx)   10.66.2.2 on lo
//! ```
//!
//! The client marks its SYNs (nftables) and routes them through c0, so the edge sees a SYN with a
//! full checksum and answers it; everything else, the handshake ACK included, leaves through c1
//! with a partial checksum and reaches the backend. A capture on b1 shows the ACK's checksum
//! field does not verify (so the backend did not compute it), and the backend still had the
//! kernel create the socket.
//!
//! Needs root (CI=true: fail, else skip with a message).

use anyhow::{ensure, Context, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synwall_testkit::synwall;
use synwall_testkit::tcp::{self, EchoServer};
use synwall_testkit::{nft, require_privileges, unique_prefix, veth, Daemon, Netns};

const PORT: u16 = 8080;
const SERVICE: Ipv4Addr = Ipv4Addr::new(10, 66, 2, 2);

/// An `AF_PACKET` socket on `dev` (in the calling thread's namespace) collecting, until `stop`,
/// every IPv4 TCP frame to `SERVICE:PORT` with ACK set and SYN clear, whole.
fn capture(dev: &str, stop: Arc<AtomicBool>) -> Result<Vec<Vec<u8>>> {
    let c = std::ffi::CString::new(dev)?;
    // SAFETY: plain libc calls on a socket we own and close.
    unsafe {
        let ifindex = libc::if_nametoindex(c.as_ptr()) as i32;
        ensure!(ifindex > 0, "no {dev}");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32);
        ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        let r = libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        ensure!(r == 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n <= 0 {
                continue;
            }
            let f = &buf[..n as usize];
            let to_service = f.len() >= 54
                && f[12..14] == [8, 0]
                && f[23] == 6
                && f[30..34] == SERVICE.octets()
                && u16::from_be_bytes([f[36], f[37]]) == PORT
                && f[47] & 0x12 == 0x10;
            if to_service {
                out.push(f.to_vec());
            }
        }
        libc::close(fd);
        Ok(out)
    }
}

/// Does the TCP checksum of an untagged IPv4 frame verify over the whole segment? (RFC 1071,
/// written out here.)
fn tcp_checksum_verifies(f: &[u8]) -> bool {
    let ihl = ((f[14] & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    let seg = &f[14 + ihl..14 + total];
    let mut acc: u64 = 6 + seg.len() as u64;
    for chunk in f[26..34].chunks(2).chain(seg.chunks(2)) {
        acc += (chunk[0] as u64) << 8 | *chunk.get(1).unwrap_or(&0) as u64;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc == 0xffff
}

#[test]
fn partial_checksum_ack_from_a_real_client_creates_its_socket() -> Result<()> {
    if !require_privileges("partial_checksum_ack_from_a_real_client_creates_its_socket") {
        return Ok(());
    }
    let p = unique_prefix();
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(secret.path(), format!("{}\n", "7e".repeat(32)))?;
    let sf = secret.path().display().to_string();
    let client = Netns::create(&format!("{p}c"))?;
    let backend = Netns::create(&format!("{p}b"))?;
    backend.sysctl("net.ipv4.tcp_syncookies", "1")?;
    for ns in [&client, &backend] {
        for k in ["all", "default"] {
            ns.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0")?;
        }
    }
    veth(&client, "c0", &backend, "b0")?;
    veth(&client, "c1", &backend, "b1")?;
    // veth() turned TX checksum offload off on both pairs; the ACK path gets it back.
    client.run(&["ethtool", "-K", "c1", "tx", "on"])?;
    client.addr("c0", "10.66.3.1/24")?;
    client.addr("c1", "10.66.4.1/24")?;
    backend.addr("b0", "10.66.3.2/24")?;
    backend.addr("b1", "10.66.4.2/24")?;
    backend.run(&["ip", "addr", "add", &format!("{SERVICE}/32"), "dev", "lo"])?;
    client.route(&[&SERVICE.to_string(), "via", "10.66.4.2", "dev", "c1"])?;
    client.route(&[
        &SERVICE.to_string(),
        "via",
        "10.66.3.2",
        "dev",
        "c0",
        "table",
        "100",
    ])?;
    client.run(&["ip", "rule", "add", "fwmark", "1", "table", "100"])?;
    nft::load(
        &client,
        "table ip swsyn {
  chain out { type route hook output priority mangle; policy accept;
    tcp flags & (syn | ack) == syn meta mark set 1
  }
}",
    )?;
    let service = ["--service".to_string(), format!("{SERVICE}/32:{PORT}")];
    let start = |ns: &Netns, args: &[&str]| -> Result<Daemon> {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(service.iter().cloned());
        Daemon::start(ns, synwall(), &a, Duration::from_secs(20))
    };
    // XDP_TX on a veth reaches a peer that runs XDP: a pass-everything edge on c0.
    let _pass = Daemon::start(
        &client,
        synwall(),
        &synwall_testkit::topo::pass_all_args("c0", &sf),
        Duration::from_secs(20),
    )?;
    let edge = start(&backend, &["edge", "--iface", "b0", "--secret-file", &sf])?;
    let bk = start(
        &backend,
        &["backend", "--iface", "b1", "--secret-file", &sf],
    )?;
    let addr = SocketAddr::new(IpAddr::V4(SERVICE), PORT);
    let listener = backend.listen(addr)?;
    let server = EchoServer::start(listener)?;

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let cap = backend.spawn_thread(move || capture("b1", flag))?;
    // Let the capture socket bind before the first segment.
    std::thread::sleep(Duration::from_millis(200));
    let began = Instant::now();
    let data = tcp::pattern(20_000, 9);
    let answer = client.enter({
        let data = data.clone();
        move || -> Result<Vec<u8>> {
            let mut s = tcp::connect(addr, None, Duration::from_secs(5))?;
            let (answer, _) = tcp::exchange(&mut s, &data, Duration::from_secs(10))?;
            Ok(answer)
        }
    })??;
    ensure!(answer == tcp::transform(&data), "wrong answer");
    let acc = server.next(Duration::from_secs(10))?;
    ensure!(acc.received == data.len(), "{acc:?}");
    stop.store(true, Ordering::Relaxed);
    let frames = cap
        .join()
        .map_err(|_| anyhow::anyhow!("capture panicked"))???;
    eprintln!(
        "exchange in {:.1?}; {} segments to the service captured on b1",
        began.elapsed(),
        frames.len()
    );
    let first = frames
        .first()
        .context("no segment to the service reached b1")?;
    // The handshake ACK left the client with a partial checksum: it does not verify on the wire.
    ensure!(
        !tcp_checksum_verifies(first),
        "the handshake ACK has a full checksum: TX offload was not in effect, the test proves \
         nothing"
    );
    let e = edge.stop()?.remove("edge").context("edge counters")?;
    let b = bk.stop()?.remove("backend").context("backend counters")?;
    eprintln!("edge {e}\nbackend {b}");
    ensure!(e.get("syn_answered") == 1, "edge: {e}");
    ensure!(b.get("backend_reqsk_created") == 1, "backend: {b}");
    ensure!(b.get("drop_ack_checksum") == 0, "backend: {b}");
    ensure!(b.get("backend_syn_pass") == 0, "backend: {b}");
    Ok(())
}
