//! XDP attachment for real: in a fresh network namespace, the edge is attached to one end of a
//! veth pair (generic, then native mode), a SYN sent into the other end comes back as the
//! SYN+ACK the engine builds, and dropping the link detaches the program. (The peer end runs a
//! pass-everything edge: a veth gives native XDP_TX frames only to a peer that runs XDP.)
//!
//! Needs root and BPF (CI=true: fail, else skip with a message).

use std::time::{Duration, Instant};
use synwall_bpf::{DataPath, Edge, XdpMode};
use synwall_engine::{synack::MAX_SYNACK_LEN, Engine, Verdict};
use synwall_testkit::prelude::*;

fn xdp_attached(dev: &str) -> bool {
    ip(&["-d", "link", "show", "dev", dev])
        .unwrap()
        .contains("prog/xdp")
}

/// Is `dev` free of XDP within a second? Dropping a link detaches at once unless another process
/// holds its descriptor: a child another test's thread is forking holds a copy until it execs.
fn xdp_detached(dev: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    while xdp_attached(dev) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn xdp_answers_a_syn_on_a_veth_native_and_generic() {
    // SAFETY: unshare changes only this thread's network namespace.
    let ns = if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    if or_skip("xdp attach (network namespace)", ns).is_none() {
        return;
    }
    let links = || -> Result<(), String> {
        ip(&[
            "link",
            "add",
            "swe0",
            "address",
            "02:00:00:00:0e:01",
            "type",
            "veth",
            "peer",
            "name",
            "swp0",
            "address",
            "02:00:00:00:0f:01",
        ])?;
        ip(&["link", "set", "swe0", "up"])?;
        ip(&["link", "set", "swp0", "up"])?;
        Ok(())
    };
    or_skip("veth setup", links()).expect("veth");
    let cfg = config();
    let Some(edge) = or_skip("xdp attach", Edge::load_with(&cfg, &salts())) else {
        return;
    };
    let c = std::ffi::CString::new("swe0").unwrap();
    // SAFETY: a C string we own.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    let peer = Raw::open("swp0");
    // A veth hands native XDP_TX frames only to a peer that runs XDP itself: an edge with no
    // services passes everything.
    let c = std::ffi::CString::new("swp0").unwrap();
    // SAFETY: a C string we own.
    let peer_ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    let pass_all = Edge::load(&synwall_bpf::LoadOptions::default()).unwrap();
    let _peer_link = pass_all.attach_xdp(peer_ifindex, XdpMode::Native).unwrap();

    for (i, mode) in [XdpMode::Generic, XdpMode::Native].into_iter().enumerate() {
        let link = edge.attach_xdp(ifindex, mode).unwrap();
        assert!(xdp_attached("swe0"), "{mode:?}: not attached");
        let mut syn = Frame::new(
            "192.0.2.10".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
            40000 + i as u16,
            443,
            SYN,
        );
        syn.options = linux_syn_options_ts(0x1111_2222);
        let mut frame = syn.build();
        frame[..6].copy_from_slice(&[2, 0, 0, 0, 0x0e, 1]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0x0f, 1]);
        peer.send(&frame);
        let reply = peer
            .recv_matching(Duration::from_secs(3), |f| {
                f.len() > 47 && f[12..14] == [8, 0] && f[47] == SYN | ACK
            })
            .unwrap_or_else(|| {
                panic!(
                    "{mode:?}: no SYN+ACK came back; counters {:?}",
                    edge.counters()
                        .unwrap()
                        .iter()
                        .filter(|c| c.1 > 0)
                        .collect::<Vec<_>>()
                )
            });
        // The engine, at the clock the program used, builds the same bytes.
        let clock = engine_ms(tsval_of(&reply));
        let mut engine = Engine::new(cfg.clone(), salts());
        let mut buf = frame.clone();
        buf.resize(frame.len() + MAX_SYNACK_LEN, 0);
        let d = engine.xdp(&mut buf, frame.len(), clock);
        let Verdict::Tx { len } = d.verdict else {
            panic!("engine: {d:?}")
        };
        assert_eq!(hex(&reply), hex(&buf[..len]), "{mode:?}");
        link.detach();
        assert!(
            xdp_detached("swe0"),
            "{mode:?}: still attached after detach"
        );
    }
}

/// Link counters of interest, read from the edge.
fn count(edge: &Edge, c: synwall_engine::Counter) -> u64 {
    edge.counters().unwrap().get(c)
}

/// Native XDP on a veth, where the driver offers tailroom only up to the next 64-byte boundary and
/// refuses MTUs above ~3.5 KB to programs that do not declare multi-buffer:
/// - SYNs whose answer is longer than they are (62 bytes with SACK-Permitted, WScale 7, EOL and
///   no MSS, answered with 66; the same with an 802.1Q tag) are answered, byte for byte as the
///   engine builds them, never counted drop_synack_room;
/// - with MTU 9000 on both ends the edge attaches, answers SYNs, forwards 9000-byte segments and
///   drops a SYN whose segment runs past the first buffer.
#[test]
fn native_veth_answers_short_syns_and_attaches_at_mtu_9000() {
    use synwall_engine::Counter as C;
    // SAFETY: unshare changes only this thread's network namespace.
    let ns = if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    if or_skip("native veth (network namespace)", ns).is_none() {
        return;
    }
    let links = || -> Result<(), String> {
        ip(&[
            "link",
            "add",
            "swe0",
            "address",
            "02:00:00:00:0e:01",
            "type",
            "veth",
            "peer",
            "name",
            "swp0",
            "address",
            "02:00:00:00:0f:01",
        ])?;
        ip(&["link", "set", "swe0", "up"])?;
        ip(&["link", "set", "swp0", "up"])?;
        Ok(())
    };
    or_skip("veth setup", links()).expect("veth");
    let cfg = config();
    let Some(edge) = or_skip("native veth", Edge::load_with(&cfg, &salts())) else {
        return;
    };
    let index = |name: &str| {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: a C string we own.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    };
    let pass_all = Edge::load(&synwall_bpf::LoadOptions::default()).unwrap();
    let peer = Raw::open("swp0");
    let to_edge = |s: &Frame| {
        let mut f = s.build();
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0x0e, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0x0f, 1]);
        f
    };
    let syn = |sport: u16, opts: Vec<u8>, vlans: Vec<u16>| {
        let mut s = Frame::new(
            "192.0.2.10".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
            sport,
            443,
            SYN,
        );
        s.options = opts;
        s.vlans = tags(&vlans);
        s
    };
    // The reply to `frame` from the peer's side: the SYN+ACK for its port (the kernel has moved
    // a tag into the skb's metadata by then), compared with the engine's answer without tags.
    let expect_answer = |frame: &[u8], sport: u16| {
        let reply = peer
            .recv_matching(Duration::from_secs(3), |f| {
                f.len() >= 54
                    && f[12..14] == [8, 0]
                    && f[47] == SYN | ACK
                    && u16::from_be_bytes([f[36], f[37]]) == sport
            })
            .unwrap_or_else(|| {
                panic!(
                    "port {sport}: no SYN+ACK came back; counters {:?}",
                    edge.counters()
                        .unwrap()
                        .iter()
                        .filter(|c| c.1 > 0)
                        .collect::<Vec<_>>()
                )
            });
        let mut engine = Engine::new(cfg.clone(), salts());
        let mut buf = frame.to_vec();
        buf.resize(frame.len() + MAX_SYNACK_LEN, 0);
        let d = engine.xdp(&mut buf, frame.len(), engine_ms(None));
        let Verdict::Tx { len } = d.verdict else {
            panic!("engine: {d:?}")
        };
        let mut want = buf[..len].to_vec();
        let l3 = locate(&want).unwrap().0;
        want.drain(12..l3 - 2);
        assert!(len > frame.len(), "the answer is longer than the SYN");
        // No timestamps on these SYNs: no clock in the answer, the bytes are the engine's.
        assert_eq!(hex(&reply), hex(&want), "answer to port {sport}");
    };

    // Default MTU: short SYNs whose answers need more room than they have.
    let _peer_link = pass_all.attach_xdp(index("swp0"), XdpMode::Native).unwrap();
    let link = edge.attach_xdp(index("swe0"), XdpMode::Native).unwrap();
    let short = syn(41000, vec![4, 2, 1, 3, 3, 7, 0, 0], vec![]);
    let frame = to_edge(&short);
    assert_eq!(frame.len(), 62);
    peer.send(&frame);
    expect_answer(&frame, 41000);
    let tagged = syn(41001, vec![4, 2, 0, 0], vec![0x8100]);
    let frame = to_edge(&tagged);
    assert_eq!(frame.len(), 62);
    peer.send(&frame);
    expect_answer(&frame, 41001);
    assert_eq!(count(&edge, C::SynAnswered), 2);
    assert_eq!(count(&edge, C::DropSynackRoom), 0);
    link.detach();
    drop(_peer_link);

    // MTU 9000: the programs attach in native mode.
    for dev in ["swe0", "swp0"] {
        ip(&["link", "set", dev, "mtu", "9000"]).unwrap();
    }
    let _peer_link = pass_all
        .attach_xdp(index("swp0"), XdpMode::Native)
        .expect("native XDP at MTU 9000 (the pass-everything peer)");
    let link = edge
        .attach_xdp(index("swe0"), XdpMode::Native)
        .expect("native XDP at MTU 9000");
    let before = edge.counters().unwrap();
    let full = syn(
        41002,
        opts_bytes(&[opt_mss(8960), opt_sack(), opt_ts(0x1111_2222, 0), opt_ws(7)]),
        vec![],
    );
    let frame = to_edge(&full);
    peer.send(&frame);
    let reply = peer.recv_matching(Duration::from_secs(3), |f| {
        f.len() > 47 && f[12..14] == [8, 0] && f[47] == SYN | ACK
    });
    assert!(reply.is_some(), "no SYN+ACK at MTU 9000");
    let mut jumbo = full.clone();
    jumbo.flags = ACK | PSH;
    jumbo.ack = 1;
    jumbo.payload = vec![0x5a; 9000 - 20 - 40];
    let frame = to_edge(&jumbo);
    assert_eq!(frame.len(), 9014);
    peer.send(&frame);
    let mut big_syn = full.clone();
    big_syn.sport = 41003;
    big_syn.payload = vec![0x33; 6000];
    peer.send(&to_edge(&big_syn));
    let start = Instant::now();
    let want = |c| before.get(c) + 1;
    while start.elapsed() < Duration::from_secs(3)
        && (count(&edge, C::FwdNonSyn) < want(C::FwdNonSyn)
            || count(&edge, C::DropSynMultibuf) < want(C::DropSynMultibuf))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = edge.counters().unwrap();
    assert_eq!(after.get(C::SynAnswered), before.get(C::SynAnswered) + 1);
    assert_eq!(
        after.get(C::FwdNonSyn),
        before.get(C::FwdNonSyn) + 1,
        "9014-byte segment"
    );
    assert_eq!(
        after.get(C::DropSynMultibuf),
        before.get(C::DropSynMultibuf) + 1,
        "SYN with 6000 bytes of data"
    );
    link.detach();
}
