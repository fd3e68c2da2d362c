//! The backend with real sockets, each test in its own network namespace:
//! - through BPF_PROG_TEST_RUN: SYN, no listener, established connection, invalid cookie,
//!   malformed options, other segments, and a valid cookie reaching the kfunc, each against the
//!   engine with the socket state the kernel actually has;
//! - end to end: tcx on a veth, a real listener, a handshake ACK crafted from a synwall cookie
//!   (no SYN was ever sent): the kernel creates the socket through `bpf_sk_assign_tcp_reqsk`
//!   and `accept()` returns it with the options the cookie carried.
//!
//! Needs root and BPF (CI=true: fail, else skip with a message).

mod common;

use common::*;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};
use synwall_bpf::{tc_action, Backend, DataPath, LoadOptions};
use synwall_cookie::SynOptions;
use synwall_engine::{
    engine::kfunc_counter, BackendVerdict, Counter, Engine, ReqAttrs, SocketState,
};

fn enter_new_netns() -> Result<(), String> {
    // SAFETY: unshare changes only the calling thread's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()));
    }
    ip(&["link", "set", "lo", "up"])
}

/// Run `ip` (a child inherits this thread's network namespace).
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn setup() -> Option<Backend> {
    or_skip("backend namespace", enter_new_netns())?;
    let b = or_skip("backend", Backend::load(&LoadOptions::default()))?;
    b.configure(&config()).unwrap();
    b.set_keys(&keys()).unwrap();
    Some(b)
}

fn full_syn_options() -> SynOptions {
    SynOptions {
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: true,
        ece_cwr: false,
    }
}

fn syn_seg(src: SocketAddr, dst: SocketAddr) -> Seg {
    let mut s = Seg::new(src.ip(), dst.ip(), src.port(), dst.port(), SYN);
    s.seq = 0x1234_5678;
    s.opts = opts_bytes(&[opt_mss(1460), opt_sack(), opt_ts(0x0a0b_0c0d, 0), opt_ws(7)]);
    s
}

/// Run `frame` through the program and the engine (`state` is what the kernel holds for its
/// 4-tuple); both must agree. Returns the BPF counter and the engine's decision.
fn check(
    b: &Backend,
    engine: &mut Engine,
    frame: &[u8],
    state: SocketState,
) -> (Counter, BackendVerdict) {
    let before = b.counters().unwrap();
    let run = b.test_run(frame).unwrap();
    let counter = single_increment(&before, &b.counters().unwrap()).unwrap();
    let d = engine.tc(frame, |_| state);
    let want = match d.verdict {
        BackendVerdict::Drop => tc_action::SHOT,
        _ => tc_action::OK,
    };
    assert_eq!(run.retval, want, "verdict of {} ({d:?})", hex(frame));
    match d.verdict {
        // The engine leaves the counter to the kfunc's result.
        BackendVerdict::AssignReqsk(_) => assert!(
            [
                Counter::BackendReqskCreated,
                Counter::BackendKfuncEinval,
                Counter::BackendKfuncEnomem,
                Counter::BackendKfuncEnetunreach,
                Counter::BackendKfuncEother
            ]
            .contains(&counter),
            "kfunc counter {counter:?}"
        ),
        _ => assert_eq!(counter, d.counter, "counter of {}", hex(frame)),
    }
    (counter, d.verdict)
}

fn paths(listen: &str, client: &str) {
    let Some(b) = setup() else { return };
    let mut engine = Engine::new(config(), keys());
    let listener = TcpListener::bind(listen).unwrap();
    let server = listener.local_addr().unwrap();
    let client: SocketAddr = client.parse().unwrap();
    let cookie = config().cookie;
    let syn = syn_seg(client, server);

    // SYN: always the kernel's.
    let (c, _) = check(&b, &mut engine, &build(&syn), SocketState::ListenerOnly);
    assert_eq!(c, Counter::BackendSynPass);

    // A valid handshake ACK reaches the kfunc with the attributes the engine computes.
    let ack = handshake_ack(
        &cookie,
        &keys().current,
        &syn,
        full_syn_options(),
        0x1234_5600,
    );
    let (c, v) = check(&b, &mut engine, &build(&ack), SocketState::ListenerOnly);
    let BackendVerdict::AssignReqsk(attrs) = v else {
        panic!("engine did not validate: {v:?}")
    };
    assert_eq!(
        attrs,
        ReqAttrs {
            rcv_tsval: 0x0a0b_0c0d,
            rcv_tsecr: attrs.rcv_tsecr,
            mss: 1460.min(if server.is_ipv4() { 1460 } else { 1440 }),
            rcv_wscale: 7,
            snd_wscale: 7,
            ecn_ok: false,
            wscale_ok: true,
            sack_ok: true,
            tstamp_ok: true,
            usec_ts_ok: false,
        }
    );
    // A test run is not at tc ingress, so the kernel refuses with -EINVAL (the end-to-end test
    // below runs the real thing).
    assert_eq!(c, kfunc_counter(-22), "kfunc result in a test run");

    // The same ACK validated with the previous epoch's salt.
    let prev = handshake_ack(
        &cookie,
        &keys().previous,
        &syn,
        full_syn_options(),
        0x99_0000,
    );
    let (c, _) = check(&b, &mut engine, &build(&prev), SocketState::ListenerOnly);
    assert_eq!(c, Counter::BackendKfuncEinval);

    // A forged cookie: dropped.
    let mut bad = ack.clone();
    bad.ack ^= 0x10;
    let (c, _) = check(&b, &mut engine, &build(&bad), SocketState::ListenerOnly);
    assert_eq!(c, Counter::BackendAckInvalid);
    // A stale salt: dropped.
    let stale = handshake_ack(
        &cookie,
        &keys_at(EPOCH - 5).current,
        &syn,
        full_syn_options(),
        0,
    );
    let (c, _) = check(&b, &mut engine, &build(&stale), SocketState::ListenerOnly);
    assert_eq!(c, Counter::BackendAckInvalid);
    // Malformed options on an ACK to a listener: dropped.
    let mut malformed = ack.clone();
    malformed.opts = vec![1, 1, 8, 1];
    let (c, _) = check(
        &b,
        &mut engine,
        &build(&malformed),
        SocketState::ListenerOnly,
    );
    assert_eq!(c, Counter::DropAckOptions);

    // RST, or no ACK: passed. (FIN|ACK is an ACK: it is validated like any other.)
    for flags in [RST, RST | ACK, FIN, PSH] {
        let mut s = ack.clone();
        s.flags = flags;
        let (c, _) = check(&b, &mut engine, &build(&s), SocketState::ListenerOnly);
        assert_eq!(c, Counter::BackendPassOther);
    }

    // No listener on the port: passed (the kernel answers with RST).
    let mut none = ack.clone();
    none.dport = server.port().wrapping_add(1).max(1);
    let (c, _) = check(&b, &mut engine, &build(&none), SocketState::None);
    assert_eq!(c, Counter::BackendNoListener);

    // Auto mode: the kernel answers SYNs too and may have sent its own syncookie, so an ACK that
    // carries no cookie of ours is passed for the kernel to judge; ours still reach the kfunc.
    let mut auto_cfg = config();
    auto_cfg.auto = Some(synwall_engine::AutoConfig {
        rate_on: 100,
        rate_off: 10,
        hold_ms: 1000,
    });
    b.set_config(&auto_cfg).unwrap();
    let mut auto_engine = Engine::new(auto_cfg, keys());
    let (c, v) = check(
        &b,
        &mut auto_engine,
        &build(&bad),
        SocketState::ListenerOnly,
    );
    assert_eq!((c, v), (Counter::BackendAckPassAuto, BackendVerdict::Pass));
    let (c, _) = check(
        &b,
        &mut auto_engine,
        &build(&ack),
        SocketState::ListenerOnly,
    );
    assert_eq!(c, Counter::BackendKfuncEinval);
    b.set_config(&config()).unwrap();

    // An established connection: its segments are untouched.
    let stream = TcpStream::connect(server).unwrap();
    let (_accepted, _) = listener.accept().unwrap();
    let local = stream.local_addr().unwrap();
    let mut est = Seg::new(
        local.ip(),
        server.ip(),
        local.port(),
        server.port(),
        ACK | PSH,
    );
    est.seq = 1;
    est.ack = 2;
    est.payload = b"data".to_vec();
    let (c, _) = check(&b, &mut engine, &build(&est), SocketState::Connection);
    assert_eq!(c, Counter::BackendEstablished);

    // TIME_WAIT: the server closes first, so its end of this 4-tuple lingers in TIME_WAIT. A new
    // cookie handshake on the same 4-tuple (a client reusing its port) is counted apart; other
    // segments are the kernel's as before.
    let reuse = TcpStream::connect(server).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let tw_client = reuse.local_addr().unwrap();
    drop(accepted);
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(reuse);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let syn2 = syn_seg(tw_client, server);
    let tw_ack = handshake_ack(&cookie, &keys().current, &syn2, full_syn_options(), 7);
    let (c, v) = check(&b, &mut engine, &build(&tw_ack), SocketState::TimeWait);
    assert_eq!((c, v), (Counter::BackendAckTimewait, BackendVerdict::Pass));
    let mut tw_other = tw_ack.clone();
    tw_other.ack ^= 0x10;
    let (c, _) = check(&b, &mut engine, &build(&tw_other), SocketState::TimeWait);
    assert_eq!(c, Counter::BackendEstablished);
}

#[test]
fn ipv4_paths_through_test_run() {
    paths("127.0.0.1:0", "127.0.0.2:40001");
}

#[test]
fn ipv6_paths_through_test_run() {
    paths("[::1]:0", "[::1]:40002");
}

const BACKEND_MAC: &str = "02:00:00:00:0b:01";
const CLIENT_MAC_STR: &str = "02:00:00:00:0c:01";
const BACKEND_MAC_B: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];
const CLIENT_MAC_B: [u8; 6] = [2, 0, 0, 0, 0x0c, 1];

/// Send a raw Ethernet frame out of `ifname`.
fn send_raw(ifname: &str, frame: &[u8]) -> std::io::Result<()> {
    let c = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: plain libc calls on a socket we own and close.
    unsafe {
        let ifindex = libc::if_nametoindex(c.as_ptr());
        if ifindex == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        let n = libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n < 0 {
            return Err(err);
        }
    }
    Ok(())
}

fn accept_within(l: &TcpListener, limit: Duration) -> Option<TcpStream> {
    l.set_nonblocking(true).unwrap();
    let start = Instant::now();
    while start.elapsed() < limit {
        match l.accept() {
            Ok((s, _)) => return Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

fn tcp_info(s: &TcpStream) -> libc::tcp_info {
    // SAFETY: getsockopt fills at most `len` bytes of the zeroed struct.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as u32;
        let r = libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        assert_eq!(r, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
        info
    }
}

/// The real kfunc path: an ACK whose cookie no SYN ever asked for, sent into a veth whose tcx
/// ingress runs the backend, becomes a socket that `accept()` returns.
#[test]
fn handshake_ack_becomes_a_socket_end_to_end() {
    let Some(b) = setup() else { return };
    let setup_links = || -> Result<(), String> {
        ip(&[
            "link",
            "add",
            "swb0",
            "address",
            BACKEND_MAC,
            "type",
            "veth",
            "peer",
            "name",
            "swc0",
            "address",
            CLIENT_MAC_STR,
        ])?;
        ip(&["addr", "add", "198.51.100.1/24", "dev", "swb0"])?;
        ip(&["addr", "add", "2001:db8:1:2::1/64", "dev", "swb0", "nodad"])?;
        ip(&["link", "set", "swb0", "up"])?;
        ip(&["link", "set", "swc0", "up"])?;
        std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", "1")
            .map_err(|e| format!("tcp_syncookies: {e}"))
    };
    or_skip("veth setup", setup_links()).expect("veth setup");
    let c = std::ffi::CString::new("swb0").unwrap();
    // SAFETY: a C string we own.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    let link = b.attach_tcx(ifindex).unwrap();

    let cookie = config().cookie;
    for (server, client) in [
        ("198.51.100.1:1500", "198.51.100.2:41000"),
        ("[2001:db8:1:2::1]:8080", "[2001:db8:1:2::2]:41001"),
    ] {
        let server: SocketAddr = server.parse().unwrap();
        let client: SocketAddr = client.parse().unwrap();
        let listener = TcpListener::bind(server).unwrap();
        let syn = syn_seg(client, server);
        let mut ack = handshake_ack(
            &cookie,
            &keys().current,
            &syn,
            full_syn_options(),
            0x4242_0000,
        );
        ack.payload = b"hello".to_vec();
        let mut frame = build(&ack);
        frame[..6].copy_from_slice(&BACKEND_MAC_B);
        frame[6..12].copy_from_slice(&CLIENT_MAC_B);
        let before = b.counters().unwrap();

        // A forged cookie first: dropped at tc, nothing to accept.
        let mut forged = frame.clone();
        let l4 = locate(&forged).unwrap().2;
        forged[l4 + 8] ^= 0x01;
        fix_checksums(&mut forged);
        send_raw("swc0", &forged).unwrap();
        assert!(accept_within(&listener, Duration::from_millis(200)).is_none());

        send_raw("swc0", &frame).unwrap();
        let stream = accept_within(&listener, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{server}: no socket from the cookie ACK"));
        let after = b.counters().unwrap();
        assert_eq!(
            after.get(Counter::BackendReqskCreated) - before.get(Counter::BackendReqskCreated),
            1
        );
        assert_eq!(
            after.get(Counter::BackendAckInvalid) - before.get(Counter::BackendAckInvalid),
            1
        );
        assert_eq!(stream.peer_addr().unwrap(), client);
        // The options came from the cookie: SACK, timestamps, window scale 7 both ways.
        let info = tcp_info(&stream);
        assert_eq!(info.tcpi_options & 0x7, 0x7, "TS | SACK | WSCALE");
        assert_eq!(info.tcpi_snd_rcv_wscale, 7 << 4 | 7);
        // The payload of the ACK was delivered.
        let mut buf = [0u8; 5];
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        std::io::Read::read_exact(&mut &stream, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        if server.ip().is_ipv6() {
            eprintln!("end to end: IPv4 and IPv6 cookie ACKs became sockets");
        }
    }
    link.detach();
}
