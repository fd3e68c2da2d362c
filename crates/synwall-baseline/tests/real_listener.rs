//! The helper program's cookies are the kernel's own: attached (generic XDP) in front of a real
//! listener in a network namespace, it answers a real client's SYN itself (the listener never
//! sees it), and the listener, with `tcp_syncookies=2`, accepts the client's ACK as a valid SYN
//! cookie and rebuilds window scaling and SACK from the helper's timestamp cookie
//! (`tcp_timestamps=2`: no per-flow TS offset, which only the kernel's secret could reproduce).
//! The listener checks cookies only within 2 minutes of sending one itself
//! (`tcp_synq_no_recent_overflow`), so one connection is made before the program is attached.
//! Needs root (skips elsewhere, fails under CI=true).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;
use synwall_baseline::HelperCookie;
use synwall_bpf::{Link, XdpMode};
use synwall_testkit::tcp::{connect, exchange, transform, EchoServer};
use synwall_testkit::{require_privileges, unique_prefix, veth, Netns};

#[test]
fn kernel_listener_accepts_the_helpers_cookies() {
    if !require_privileges("kernel_listener_accepts_the_helpers_cookies") {
        return;
    }
    let p = unique_prefix();
    let client = Netns::create(&format!("{p}hc")).unwrap();
    let server = Netns::create(&format!("{p}hs")).unwrap();
    veth(&client, "c0", &server, "s0").unwrap();
    client.addr("c0", "10.77.0.1/24").unwrap();
    server.addr("s0", "10.77.0.2/24").unwrap();
    server.sysctl("net.ipv4.tcp_syncookies", "2").unwrap();
    server.sysctl("net.ipv4.tcp_timestamps", "2").unwrap();
    let port = 8443;
    let addr: SocketAddr = format!("10.77.0.2:{port}").parse().unwrap();
    let listener = server
        .enter(move || TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    let echo = EchoServer::start(listener).unwrap();
    let data = synwall_testkit::tcp::pattern(20_000, 7);
    let talk = |data: &Vec<u8>| {
        let sent = data.clone();
        client
            .enter(move || -> anyhow::Result<_> {
                let mut s = connect(addr, None, Duration::from_secs(5))?;
                exchange(&mut s, &sent, Duration::from_secs(5))
            })
            .unwrap()
            .unwrap()
    };
    // The kernel's own cookie first (syncookies=2 answers every SYN with one).
    let k0 = server.net_counters().unwrap();
    let (answer, _) = talk(&data);
    assert_eq!(answer, transform(&data));
    echo.next(Duration::from_secs(5)).unwrap();
    let k1 = server.net_counters().unwrap();
    assert!(k1["TcpExt:SyncookiesSent"] > k0["TcpExt:SyncookiesSent"]);

    let helper = HelperCookie::load(port).unwrap();
    let fd = helper.prog_fd();
    let _link = server
        .enter(move || {
            let name = std::ffi::CString::new("s0").unwrap();
            // SAFETY: a NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert!(ifindex > 0);
            Link::attach_xdp(fd, ifindex, XdpMode::Generic)
        })
        .unwrap()
        .unwrap();
    let before = server.net_counters().unwrap();
    let (answer, client_info) = talk(&data);
    assert_eq!(
        answer,
        transform(&data),
        "echo through the cookie connection"
    );
    let accepted = echo.next(Duration::from_secs(5)).unwrap();
    assert_eq!(accepted.received, data.len());

    // The SYN+ACK came from XDP: the helper counted it, the kernel sent no cookie of its own,
    // and it validated one.
    assert!(helper.counters().unwrap().get("tx_synack") >= 1);
    let after = server.net_counters().unwrap();
    let d = |k: &str| {
        let k = format!("TcpExt:{k}");
        after[k.as_str()] - before[k.as_str()]
    };
    assert_eq!(d("SyncookiesSent"), 0, "the listener never answered a SYN");
    assert_eq!(d("SyncookiesRecv"), 1, "it accepted one cookie ACK");
    assert_eq!(d("SyncookiesFailed"), 0);

    // Options the listener could only have learnt from the helper's TSval.
    let s = accepted.info;
    assert!(s.ts() && s.sack() && s.wscale(), "server: {s}");
    assert_eq!(
        s.snd_wscale, client_info.rcv_wscale,
        "the client's shift, carried in the TS cookie"
    );
    let c = client_info;
    assert!(c.ts() && c.sack() && c.wscale(), "client: {c}");
    assert_eq!(c.snd_wscale, 7, "our shift from the SYN+ACK");
}
