//! The backend with real sockets, each test in its own network namespace:
//! - through BPF_PROG_TEST_RUN: SYN, no listener, established connection, invalid cookie,
//!   malformed options, other segments, and a valid cookie reaching the kfunc, each against the
//!   engine with the socket state the kernel actually has;
//! - the salt ring: which epochs' salts a listener's ACK validates under at each moment (the
//!   next epoch's in the last `L`, the accepted master's), and what passes once the ring has no
//!   salt for the live epoch (`backend_ack_pass_stale`);
//! - end to end: tcx on a veth, a real listener, a handshake ACK crafted from a synwall cookie
//!   (no SYN was ever sent): the kernel creates the socket through `bpf_sk_assign_tcp_reqsk`
//!   and `accept()` returns it with the options the cookie carried.
//!
//! Needs root and BPF (CI=true: fail, else skip with a message).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use synwall_bpf::{tc_action, Backend, DataPath, LoadOptions};
use synwall_cookie::synwall_v1::{EpochClock, MasterSecret};
use synwall_engine::{
    engine::kfunc_counter, BackendVerdict, Counter, Engine, ReqAttrs, SaltEntry, SaltRing, Salts,
    SocketState,
};
use synwall_testkit::prelude::*;

fn enter_new_netns() -> Result<(), String> {
    // SAFETY: unshare changes only the calling thread's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!("unshare: {}", std::io::Error::last_os_error()));
    }
    ip(&["link", "set", "lo", "up"]).map(drop)
}

fn setup() -> Option<Backend> {
    or_skip("backend namespace", enter_new_netns())?;
    let b = or_skip("backend", Backend::load(&LoadOptions::default()))?;
    b.configure(&config()).unwrap();
    b.set_salts(&salts()).unwrap();
    Some(b)
}

fn syn_seg(src: SocketAddr, dst: SocketAddr) -> Frame {
    let mut s = Frame::new(src.ip(), dst.ip(), src.port(), dst.port(), SYN);
    s.seq = 0x1234_5678;
    s.options = linux_syn_options_ts(0x0a0b_0c0d);
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
    let d = engine.tc(frame, engine_ms(None), |_| state, |_| 0);
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
    let mut engine = Engine::new(config(), salts());
    let listener = TcpListener::bind(listen).unwrap();
    let server = listener.local_addr().unwrap();
    let client: SocketAddr = client.parse().unwrap();
    let cookie = config().cookie;
    let syn = syn_seg(client, server);

    // SYN: always the kernel's.
    let (c, _) = check(&b, &mut engine, &syn.build(), SocketState::ListenerOnly);
    assert_eq!(c, Counter::BackendSynPass);

    // A valid handshake ACK reaches the kfunc with the attributes the engine computes.
    let ack = handshake_ack(&cookie, &keys().current, &syn, LINUX_SYN, 0x1234_5600);
    let (c, v) = check(&b, &mut engine, &ack.build(), SocketState::ListenerOnly);
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
    let prev = handshake_ack(&cookie, &keys().previous, &syn, LINUX_SYN, 0x99_0000);
    let (c, _) = check(&b, &mut engine, &prev.build(), SocketState::ListenerOnly);
    assert_eq!(c, Counter::BackendKfuncEinval);

    // A forged cookie: dropped.
    let mut bad = ack.clone();
    bad.ack ^= 0x10;
    let (c, _) = check(&b, &mut engine, &bad.build(), SocketState::ListenerOnly);
    assert_eq!(c, Counter::BackendAckInvalid);
    // A stale salt: dropped.
    let stale = handshake_ack(&cookie, &keys_at(EPOCH - 5).current, &syn, LINUX_SYN, 0);
    let (c, _) = check(&b, &mut engine, &stale.build(), SocketState::ListenerOnly);
    assert_eq!(c, Counter::BackendAckInvalid);
    // Malformed options on an ACK to a listener: dropped.
    let mut malformed = ack.clone();
    malformed.options = vec![1, 1, 8, 1];
    let (c, _) = check(
        &b,
        &mut engine,
        &malformed.build(),
        SocketState::ListenerOnly,
    );
    assert_eq!(c, Counter::DropAckOptions);

    // RST, or no ACK: passed. (FIN|ACK is an ACK: it is validated like any other.)
    for flags in [RST, RST | ACK, FIN, PSH] {
        let mut s = ack.clone();
        s.flags = flags;
        let (c, _) = check(&b, &mut engine, &s.build(), SocketState::ListenerOnly);
        assert_eq!(c, Counter::BackendPassOther);
    }

    // No listener on the port: passed (the kernel answers with RST).
    let mut none = ack.clone();
    none.dport = server.port().wrapping_add(1).max(1);
    let (c, _) = check(&b, &mut engine, &none.build(), SocketState::None);
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
    let mut auto_engine = Engine::new(auto_cfg, salts());
    let (c, v) = check(
        &b,
        &mut auto_engine,
        &bad.build(),
        SocketState::ListenerOnly,
    );
    assert_eq!((c, v), (Counter::BackendAckPassAuto, BackendVerdict::Pass));
    let (c, _) = check(
        &b,
        &mut auto_engine,
        &ack.build(),
        SocketState::ListenerOnly,
    );
    assert_eq!(c, Counter::BackendKfuncEinval);
    b.set_config(&config()).unwrap();

    // An established connection: its segments are untouched.
    let stream = TcpStream::connect(server).unwrap();
    let (_accepted, _) = listener.accept().unwrap();
    let local = stream.local_addr().unwrap();
    let mut est = Frame::new(
        local.ip(),
        server.ip(),
        local.port(),
        server.port(),
        ACK | PSH,
    );
    est.seq = 1;
    est.ack = 2;
    est.payload = b"data".to_vec();
    let (c, _) = check(&b, &mut engine, &est.build(), SocketState::Connection);
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
    let tw_ack = handshake_ack(&cookie, &keys().current, &syn2, LINUX_SYN, 7);
    let (c, v) = check(&b, &mut engine, &tw_ack.build(), SocketState::TimeWait);
    assert_eq!((c, v), (Counter::BackendAckTimewait, BackendVerdict::Pass));
    let mut tw_other = tw_ack.clone();
    tw_other.ack ^= 0x10;
    let (c, _) = check(&b, &mut engine, &tw_other.build(), SocketState::TimeWait);
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

/// The salt ring with a listener: for each ring and moment, which salts' cookies reach the kfunc,
/// which are dropped as invalid and which pass as stale, each against the engine.
#[test]
fn listener_acks_over_the_salt_ring() {
    let Some(b) = setup() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let syn = syn_seg("127.0.0.2:40003".parse().unwrap(), server);
    let cookie = config().cookie;
    let (cur, acc) = (MasterSecret(MASTER), MasterSecret(ACCEPTED));
    let k = |m: &MasterSecret, e: u64| SaltEntry::derive(e, m, None).current;
    let slot = |e: u64, accepted: bool| SaltEntry::derive(e, &cur, accepted.then_some(&acc));
    let ring = |slots: &[SaltEntry]| {
        let mut r = SaltRing::new();
        for s in slots {
            r.set(*s);
        }
        r
    };
    let (e, valid) = (EPOCH, Counter::BackendKfuncEinval);
    let (invalid, stale) = (Counter::BackendAckInvalid, Counter::BackendAckPassStale);
    let cases: Vec<RingCase> = vec![
        (
            "mid-epoch: the live and the previous salt",
            ring(&[slot(e - 1, false), slot(e, false), slot(e + 1, false)]),
            Some(Moment::Mid),
            vec![
                (k(&cur, e), valid),
                (k(&cur, e - 1), valid),
                (k(&cur, e + 1), invalid),
                (k(&cur, e - 2), invalid),
                (k(&acc, e), invalid),
            ],
        ),
        (
            "the last L: the next epoch's salt too",
            ring(&[slot(e - 1, false), slot(e, false), slot(e + 1, false)]),
            Some(Moment::Late),
            vec![
                (k(&cur, e + 1), valid),
                (k(&cur, e), valid),
                (k(&cur, e - 1), valid),
            ],
        ),
        (
            "an accepted master in some slots",
            ring(&[slot(e - 1, true), slot(e, false), slot(e + 1, true)]),
            Some(Moment::Mid),
            vec![
                (k(&acc, e - 1), valid),
                (k(&acc, e), invalid),
                (k(&acc, e + 1), invalid),
                (k(&cur, e), valid),
            ],
        ),
        (
            "the first L of the next epoch, which the ring does not hold",
            ring(&[slot(e - 1, false), slot(e, false)]),
            Some(Moment::Early),
            vec![
                (k(&cur, e), valid),
                (k(&cur, e - 1), stale),
                (k(&acc, e), stale),
            ],
        ),
        (
            "a clock never written (no epoch length)",
            ring(&[slot(e - 1, false), slot(e, false)]),
            None,
            vec![(k(&cur, e), stale)],
        ),
    ];
    for (what, r, moment, acks) in cases {
        let clock = moment.map_or(EpochClock::default(), Moment::clock);
        let salts = Salts::new(r, clock);
        b.set_salts(&salts).unwrap();
        let mut engine = Engine::new(config(), salts);
        for (i, (key, want)) in acks.into_iter().enumerate() {
            let ack = handshake_ack(&cookie, &key, &syn, LINUX_SYN, 0x4400 + i as u64);
            let (c, _) = check(&b, &mut engine, &ack.build(), SocketState::ListenerOnly);
            assert_eq!(c, want, "{what}: ACK {i}");
        }
    }
    b.set_salts(&salts()).unwrap();
}

/// What a ring case is: its name, the ring, the moment (`None`: a clock never written), and
/// ACKs made with each key and the counter each must reach.
type RingCase = (
    &'static str,
    SaltRing,
    Option<Moment>,
    Vec<(synwall_cookie::SipKey, Counter)>,
);

const BACKEND_MAC: &str = "02:00:00:00:0b:01";
const CLIENT_MAC_STR: &str = "02:00:00:00:0c:01";
const BACKEND_MAC_B: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];
const CLIENT_MAC_B: [u8; 6] = [2, 0, 0, 0, 0x0c, 1];

/// Send a raw Ethernet frame out of `ifname`.
fn send_raw(ifname: &str, frame: &[u8]) -> Result<(), String> {
    RawSender::open(ifname)
        .and_then(|tx| tx.send(frame))
        .map_err(|e| format!("{e:#}"))
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
        let mut ack = handshake_ack(&cookie, &keys().current, &syn, LINUX_SYN, 0x4242_0000);
        ack.payload = b"hello".to_vec();
        let mut frame = ack.build();
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

/// One veth pair in this thread's fresh namespace: swb0 (the backend: 198.51.100.1/24,
/// 2001:db8:1:2::1/64, tcx) and swc0 (the client side, raw frames only), with the client's
/// addresses as permanent neighbours so the backend's own answers leave at once. Returns the
/// tcx link.
fn backend_link(b: &Backend, mtu: u32) -> synwall_bpf::TcxLink {
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
        for dev in ["swb0", "swc0"] {
            ip(&["link", "set", dev, "mtu", &mtu.to_string()])?;
            ip(&["link", "set", dev, "up"])?;
        }
        for addr in ["198.51.100.2", "2001:db8:1:2::2"] {
            ip(&[
                "neigh",
                "replace",
                addr,
                "lladdr",
                CLIENT_MAC_STR,
                "dev",
                "swb0",
                "nud",
                "permanent",
            ])?;
        }
        std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", "1")
            .map_err(|e| format!("tcp_syncookies: {e}"))
    };
    or_skip("veth setup", setup_links()).expect("veth setup");
    let c = std::ffi::CString::new("swb0").unwrap();
    // SAFETY: a C string we own.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    b.attach_tcx(ifindex).unwrap()
}

/// `seg` as a frame from the client's MAC to the backend's.
fn to_backend(seg: &Frame) -> Vec<u8> {
    let mut frame = seg.build();
    frame[..6].copy_from_slice(&BACKEND_MAC_B);
    frame[6..12].copy_from_slice(&CLIENT_MAC_B);
    frame
}

fn delta(b: &Backend, before: &synwall_engine::Counters, c: Counter) -> u64 {
    b.counters().unwrap().get(c) - before.get(c)
}

/// A valid cookie ACK whose TCP checksum is wrong creates nothing (the kernel would discard it,
/// and did, after the backend had counted a socket); the same ACK with its checksum right
/// creates the socket. With no data, a byte of data, an MSS of data and an MSS of jumbo data
/// (MTU 9000), IPv4 and IPv6.
#[test]
fn ack_with_a_bad_checksum_creates_nothing() {
    let Some(b) = setup() else { return };
    let link = backend_link(&b, 9000);
    let cookie = config().cookie;
    let mut port = 42000;
    for (server, client) in [
        ("198.51.100.1:1500", "198.51.100.2"),
        ("[2001:db8:1:2::1]:8080", "2001:db8:1:2::2"),
    ] {
        let server: SocketAddr = server.parse().unwrap();
        let listener = TcpListener::bind(server).unwrap();
        for data in [0usize, 1, 1448, 8900] {
            port += 1;
            let client = SocketAddr::new(client.parse().unwrap(), port);
            let syn = syn_seg(client, server);
            let mut ack = handshake_ack(&cookie, &keys().current, &syn, LINUX_SYN, 1);
            ack.flags |= if data > 0 { PSH } else { 0 };
            ack.payload = (0..data).map(|i| (i * 7) as u8).collect();
            let good = to_backend(&ack);
            let (_, _, l4, end, _) = locate(&good).unwrap();
            let mut bad = good.clone();
            if data == 0 {
                bad[l4 + 16] ^= 0x01; // the checksum field
            } else {
                bad[end - 1] ^= 0x01; // the last byte of data
            }
            let before = b.counters().unwrap();
            send_raw("swc0", &bad).unwrap();
            assert!(
                accept_within(&listener, Duration::from_millis(300)).is_none(),
                "{client}: a socket from an ACK with a bad checksum"
            );
            assert_eq!(delta(&b, &before, Counter::DropAckChecksum), 1, "{client}");
            assert_eq!(delta(&b, &before, Counter::BackendReqskCreated), 0);
            // Positive control: the same ACK, checksum right.
            send_raw("swc0", &good).unwrap();
            let stream = accept_within(&listener, Duration::from_secs(3))
                .unwrap_or_else(|| panic!("{client} with {data} bytes: no socket"));
            assert_eq!(stream.peer_addr().unwrap(), client);
            assert_eq!(delta(&b, &before, Counter::BackendReqskCreated), 1);
            let mut got = vec![0u8; data];
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            std::io::Read::read_exact(&mut &stream, &mut got).unwrap();
            assert_eq!(got, ack.payload);
        }
    }
    link.detach();
}

/// IPv4 fragments of `frame` (untagged): the first carries `first` bytes of the IP payload (a
/// multiple of 8), the second the rest. Header checksums recomputed; the TCP checksum is the whole
/// segment's, as a sender that fragments leaves it.
fn fragments_v4(frame: &[u8], first: usize) -> [Vec<u8>; 2] {
    let (l3, _, l4, end, _) = locate(frame).unwrap();
    let hdr = &frame[..l4];
    let payload = &frame[l4..end];
    let mk = |part: &[u8], offset: usize, more: bool| {
        let mut f = hdr.to_vec();
        f.extend_from_slice(part);
        let total = (l4 - l3 + part.len()) as u16;
        f[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
        let field = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        f[l3 + 6..l3 + 8].copy_from_slice(&field.to_be_bytes());
        f[l3 + 10] = 0;
        f[l3 + 11] = 0;
        let c = synwall_wire::checksum::checksum(&f[l3..l4]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        f
    };
    [
        mk(&payload[..first], 0, true),
        mk(&payload[first..], first, false),
    ]
}

/// IPv6 fragments of `frame` (untagged, no extension headers): a Fragment header after the
/// fixed header of each.
fn fragments_v6(frame: &[u8], first: usize) -> [Vec<u8>; 2] {
    let (l3, _, l4, end, _) = locate(frame).unwrap();
    let payload = &frame[l4..end];
    let mk = |part: &[u8], offset: usize, more: bool| {
        let mut f = frame[..l4].to_vec();
        f[l3 + 6] = 44;
        let plen = (8 + part.len()) as u16;
        f[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        let field = (offset as u16) | more as u16;
        f.extend_from_slice(&[6, 0]);
        f.extend_from_slice(&field.to_be_bytes());
        f.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        f.extend_from_slice(part);
        f
    };
    [
        mk(&payload[..first], 0, true),
        mk(&payload[first..], first, false),
    ]
}

/// Established traffic that arrives in fragments reaches its socket: the first fragment finds
/// the connection (backend_established), the second carries no TCP header
/// (pass_fragment_nonfirst), and the kernel reassembles them. The connection is made from a
/// cookie ACK; its next data segment is then sent in two fragments. The backend used to drop
/// every TCP fragment to a protected prefix.
#[test]
fn fragmented_established_traffic_reaches_its_socket() {
    let Some(b) = setup() else { return };
    let link = backend_link(&b, 1500);
    let cookie = config().cookie;
    for (server, client, v6) in [
        ("198.51.100.1:1500", "198.51.100.2:43001", false),
        ("[2001:db8:1:2::1]:8080", "[2001:db8:1:2::2]:43002", true),
    ] {
        let server: SocketAddr = server.parse().unwrap();
        let client: SocketAddr = client.parse().unwrap();
        let listener = TcpListener::bind(server).unwrap();
        let syn = syn_seg(client, server);
        let mut ack = handshake_ack(&cookie, &keys().current, &syn, LINUX_SYN, 1);
        ack.flags |= PSH;
        ack.payload = b"hello".to_vec();
        send_raw("swc0", &to_backend(&ack)).unwrap();
        let stream = accept_within(&listener, Duration::from_secs(3)).expect("the connection");
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut hello = [0u8; 5];
        std::io::Read::read_exact(&mut &stream, &mut hello).unwrap();

        let mut data = ack.clone();
        data.seq = ack.seq.wrapping_add(5);
        data.payload = (0..1000).map(|i| (i % 251) as u8).collect();
        let whole = to_backend(&data);
        // 32 bytes of TCP header (NOP NOP TS) and 104 of data in the first fragment.
        let parts = if v6 {
            fragments_v6(&whole, 136)
        } else {
            fragments_v4(&whole, 136)
        };
        let before = b.counters().unwrap();
        for p in &parts {
            send_raw("swc0", p).unwrap();
        }
        let mut got = vec![0u8; data.payload.len()];
        std::io::Read::read_exact(&mut &stream, &mut got)
            .unwrap_or_else(|e| panic!("{client}: the fragmented segment never arrived: {e}"));
        assert_eq!(got, data.payload);
        assert_eq!(delta(&b, &before, Counter::BackendEstablished), 1);
        assert_eq!(delta(&b, &before, Counter::PassFragmentNonfirst), 1);
    }
    link.detach();
}

/// A SYN hidden behind Fragment(offset 0, M=0, next header DestOpts) / DestOpts: the backend's
/// kernel used to answer it (it reassembles the atomic fragment and sees a SYN). Now it is
/// dropped and the kernel sends nothing; the same SYN unhidden is passed and answered by the
/// kernel (positive control: the capture would have seen an answer).
#[test]
fn syn_behind_a_fragment_header_never_reaches_the_kernel() {
    let Some(b) = setup() else { return };
    let link = backend_link(&b, 1500);
    let server: SocketAddr = "[2001:db8:1:2::1]:8080".parse().unwrap();
    let _listener = TcpListener::bind(server).unwrap();
    let client = Raw::open("swc0");
    let synack_to = |port: u16| {
        move |f: &[u8]| {
            f.len() >= 74
                && f[12..14] == [0x86, 0xdd]
                && f[20] == 6
                && u16::from_be_bytes([f[56], f[57]]) == port
                && f[67] & (SYN | ACK) == SYN | ACK
        }
    };
    let before = b.counters().unwrap();
    let mut hidden = syn_seg("[2001:db8:1:2::2]:44001".parse().unwrap(), server);
    hidden.ext = vec![frag_header(0, false), ext_header(60, 0)];
    client.send(&to_backend(&hidden));
    assert!(
        client
            .recv_matching(Duration::from_millis(500), synack_to(44001))
            .is_none(),
        "the backend's kernel answered a SYN hidden behind a fragment header"
    );
    assert_eq!(delta(&b, &before, Counter::DropSynFragment), 1);
    let plain = syn_seg("[2001:db8:1:2::2]:44002".parse().unwrap(), server);
    client.send(&to_backend(&plain));
    assert!(
        client
            .recv_matching(Duration::from_secs(3), synack_to(44002))
            .is_some(),
        "positive control: no answer to the plain SYN"
    );
    assert_eq!(delta(&b, &before, Counter::BackendSynPass), 1);
    link.detach();
}

/// Stacked VLAN tags on a backend. At tc ingress of the lower device the kernel has moved the
/// outer tag into the skb's metadata, but the inner one is still in the frame and skb->protocol
/// is its type, which bpf_sk_assign_tcp_reqsk refuses (-EINVAL: the program counted
/// backend_kfunc_einval and the client stalled). The backend now moves the inner tag aside for
/// the call and puts the outer one back, so the skb goes on as it came, with its request socket.
///
/// This kernel has no VLAN devices (CONFIG_VLAN_8021Q is not set), so it delivers only frames
/// whose tags carry VLAN id 0 (priority tags) to its own addresses: with those, the socket is
/// created. With other ids the kfunc accepts the ACK (backend_reqsk_created) and the kernel then
/// drops the frame for want of a VLAN device, as it would without synwall. Three stacked tags
/// (two left in the frame) are left alone and counted backend_ack_vlan.
#[test]
fn stacked_vlan_tags_are_moved_aside_for_the_kfunc() {
    let Some(b) = setup() else { return };
    let link = backend_link(&b, 1500);
    let cookie = config().cookie;
    let server: SocketAddr = "198.51.100.1:1500".parse().unwrap();
    let listener = TcpListener::bind(server).unwrap();
    let tagged_ack = |port: u16, tags: &[(u16, u16)]| {
        let client: SocketAddr = SocketAddr::new("198.51.100.2".parse().unwrap(), port);
        let syn = syn_seg(client, server);
        let mut ack = handshake_ack(&cookie, &keys().current, &syn, LINUX_SYN, 1);
        ack.vlans = tags.iter().map(|&(tpid, id)| Vlan { tpid, id }).collect();
        to_backend(&ack)
    };

    // Priority-tagged QinQ: the kernel takes both tags off and delivers; the socket is created.
    let before = b.counters().unwrap();
    send_raw("swc0", &tagged_ack(45001, &[(0x88a8, 0), (0x8100, 0)])).unwrap();
    let stream = accept_within(&listener, Duration::from_secs(3))
        .expect("QinQ (VLAN ids 0): no socket from the cookie ACK");
    assert_eq!(stream.peer_addr().unwrap().port(), 45001);
    assert_eq!(delta(&b, &before, Counter::BackendReqskCreated), 1);
    assert_eq!(delta(&b, &before, Counter::BackendKfuncEinval), 0);

    // Real VLAN ids: the kfunc takes the ACK; this kernel has no VLAN device to deliver it to.
    let before = b.counters().unwrap();
    send_raw("swc0", &tagged_ack(45002, &[(0x88a8, 100), (0x8100, 200)])).unwrap();
    let start = Instant::now();
    while delta(&b, &before, Counter::BackendReqskCreated) == 0
        && start.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(delta(&b, &before, Counter::BackendReqskCreated), 1);
    assert_eq!(delta(&b, &before, Counter::BackendKfuncEinval), 0);

    // Three tags: two left in the frame, more than the backend moves.
    let before = b.counters().unwrap();
    let three = tagged_ack(45003, &[(0x88a8, 0), (0x8100, 0), (0x8100, 0)]);
    send_raw("swc0", &three).unwrap();
    let start = Instant::now();
    while delta(&b, &before, Counter::BackendAckVlan) == 0
        && start.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(delta(&b, &before, Counter::BackendAckVlan), 1);
    assert_eq!(delta(&b, &before, Counter::BackendReqskCreated), 0);
    link.detach();
}
