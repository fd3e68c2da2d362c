//! The LIVE_FRAMES SYN generator and the sink against the real kernel: a veth pair between two
//! namespaces, the generator on one side, a listener with `tcp_syncookies = 2` on the other. The
//! far side must see exactly the SYNs offered, from distinct sources in the prefix, with valid
//! checksums (its kernel answers every one, which it does not do for a bad checksum), and the
//! sink must count exactly its answers.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use synwall_bench::livegen::{self, Plan, Sink, SinkProg, SynGen, SynOptions, Template};
use synwall_netns::packet::Capture;
use synwall_netns::{topo, veth, Netns};

struct Pair {
    att: Netns,
    far: Netns,
    gen_if: String,
    far_if: String,
}

fn pair() -> Pair {
    let p = synwall_testkit::unique_prefix();
    let att = Netns::create(&format!("{p}a")).unwrap();
    let far = Netns::create(&format!("{p}f")).unwrap();
    let (gen_if, far_if) = (format!("{p}g"), format!("{p}h"));
    veth(&att, &gen_if, &far, &far_if).unwrap();
    att.addr(&gen_if, "10.90.0.1/24").unwrap();
    att.addr(&gen_if, "fd90::1/64").unwrap();
    far.addr(&far_if, "10.90.0.2/24").unwrap();
    far.addr(&far_if, "fd90::2/64").unwrap();
    // The answers to the spoofed sources go back through the generator's side.
    far.route(&["10.91.0.0/16", "via", "10.90.0.1"]).unwrap();
    far.route(&["fd91::/64", "via", "fd90::1"]).unwrap();
    topo::router(&far).unwrap();
    far.sysctl("net.ipv4.tcp_syncookies", "2").unwrap();
    Pair {
        att,
        far,
        gen_if,
        far_if,
    }
}

fn template(p: &Pair, v6: bool, options: SynOptions) -> Template {
    let (prefix, prefix_len, dst): (IpAddr, u8, IpAddr) = if v6 {
        ("fd91::".parse().unwrap(), 112, "fd90::2".parse().unwrap())
    } else {
        (
            "10.91.0.0".parse().unwrap(),
            16,
            "10.90.0.2".parse().unwrap(),
        )
    };
    Template {
        src_mac: topo::mac(&p.att, &p.gen_if).unwrap(),
        dst_mac: topo::mac(&p.far, &p.far_if).unwrap(),
        prefix,
        prefix_len,
        dst,
        dport: 80,
        options,
    }
}

/// The far side's view of one received SYN: source, source port, and whether both checksums
/// hold.
fn check_syn(frame: &[u8], t: &Template) -> (IpAddr, u16) {
    let s = SlicedPacket::from_ethernet(frame).expect("a parsable frame");
    let Some(TransportSlice::Tcp(tcp)) = &s.transport else {
        panic!("not TCP: {frame:02x?}")
    };
    assert!(tcp.syn() && !tcp.ack(), "not a SYN");
    assert_eq!(tcp.destination_port(), t.dport);
    let hdr = tcp.to_header();
    let (src, sum) = match &s.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header().to_header();
            assert_eq!(
                h.calc_header_checksum(),
                h.header_checksum,
                "IPv4 header checksum"
            );
            let sum = hdr.calc_checksum_ipv4(&h, tcp.payload()).expect("checksum");
            (IpAddr::from(h.source), sum)
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header().to_header();
            let sum = hdr.calc_checksum_ipv6(&h, tcp.payload()).expect("checksum");
            (IpAddr::from(h.source), sum)
        }
        _ => panic!("not IP"),
    };
    assert_eq!(sum, hdr.checksum, "TCP checksum of a SYN from {src}");
    let opts = match t.options {
        SynOptions::Linux => 20,
        SynOptions::Mss => 4,
    };
    assert_eq!(tcp.options().len(), opts, "TCP options");
    (src, tcp.source_port())
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> u64, want: u64) -> u64 {
    let end = Instant::now() + limit;
    loop {
        let v = f();
        if v >= want || Instant::now() > end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn offer_and_count(v6: bool, options: SynOptions, n: u64) {
    let p = pair();
    let t = template(&p, v6, options);
    let sink = Sink::attach(&p.att, &p.gen_if).unwrap();
    let _pass = Sink::pass(&p.far, &p.far_if).unwrap();
    let _listener = p
        .far
        .listen(std::net::SocketAddr::new(t.dst, t.dport))
        .unwrap();
    // The far side knows the generator side's MAC before the answers start (no neighbour
    // resolution queue in the way).
    let mac = topo::mac(&p.att, &p.gen_if).unwrap();
    let mac = mac.map(|b| format!("{b:02x}")).join(":");
    let gw = if v6 { "fd90::1" } else { "10.90.0.1" };
    p.far
        .run(&[
            "ip",
            "neigh",
            "replace",
            gw,
            "lladdr",
            &mac,
            "dev",
            &p.far_if,
            "nud",
            "permanent",
        ])
        .unwrap();
    let far_if = p.far_if.clone();
    let cap = p
        .far
        .enter(move || Capture::open(&far_if))
        .unwrap()
        .unwrap();
    let cookies0 = p.far.net_counter("TcpExt:SyncookiesSent").unwrap();
    let csum0 = p.far.net_counter("Tcp:InCsumErrors").unwrap();

    let gen = SynGen::load(&t, 0).unwrap();
    let st = gen
        .run(
            &p.att,
            &p.gen_if,
            Plan {
                count: Some(n),
                seconds: 20.0,
                // Slow enough for the capture's socket buffer, in batches the far veth's ring
                // always has room for.
                rate: Some(50_000.0),
                cpu: Some(0),
                batch: 32,
            },
        )
        .unwrap();
    assert_eq!(st.frames, n, "the run ended at its count");
    let c = gen.counters().unwrap();
    assert_eq!(
        (c.tx_v4, c.tx_v6, c.dropped()),
        if v6 { (0, n, 0) } else { (n, 0, 0) }
    );

    // The far side saw exactly n SYNs, each from its own source in the prefix.
    let mut seen = HashSet::new();
    let mut syns = 0u64;
    for f in cap
        .drain(Duration::from_millis(500), Duration::from_secs(20))
        .unwrap()
    {
        if f.outgoing {
            continue;
        }
        let s = SlicedPacket::from_ethernet(&f.frame).unwrap();
        match &s.transport {
            Some(TransportSlice::Tcp(tcp)) if tcp.syn() && !tcp.ack() => {}
            _ => continue,
        }
        let (src, port) = check_syn(&f.frame, &t);
        assert!(t.contains(src), "{src} outside the spoofed prefix");
        seen.insert((src, port));
        syns += 1;
    }
    assert_eq!(syns, n, "SYNs the far side received");
    assert_eq!(seen.len() as u64, n, "distinct (source, port) pairs");
    // From one CPU, consecutive frames get distinct host parts (fewer frames than the prefix
    // holds).
    let addrs: HashSet<IpAddr> = seen.iter().map(|(a, _)| *a).collect();
    assert_eq!(addrs.len() as u64, n, "distinct sources");

    // Its kernel answered every one (it would not have for a bad checksum), and the sink counted
    // exactly those answers.
    let answered = wait_for(Duration::from_secs(10), || sink.synacks().unwrap(), n);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sink.synacks().unwrap(),
        n,
        "SYN+ACKs at the sink ({answered})"
    );
    let sc = sink.counters().unwrap();
    assert_eq!(if v6 { sc.synack_v6 } else { sc.synack_v4 }, n);
    assert_eq!(p.far.net_counter("Tcp:InCsumErrors").unwrap(), csum0);
    if !v6 {
        // IPv6 cookies are counted in the same TcpExt counter.
        assert_eq!(
            p.far.net_counter("TcpExt:SyncookiesSent").unwrap() - cookies0,
            n
        );
    }
}

#[test]
fn livegen_offers_exactly_n_valid_syns_v4() {
    if !synwall_testkit::require_privileges("livegen_offers_exactly_n_valid_syns_v4") {
        return;
    }
    offer_and_count(false, SynOptions::Linux, 3000);
}

#[test]
fn livegen_offers_exactly_n_valid_syns_v6_mss_only() {
    if !synwall_testkit::require_privileges("livegen_offers_exactly_n_valid_syns_v6_mss_only") {
        return;
    }
    offer_and_count(true, SynOptions::Mss, 2000);
}

/// The generator at full speed for a moment: the far side receives what it offered, at a rate
/// no socket-based sender reaches (the floor is far below what the generator does on an idle
/// core, for a shared machine).
#[test]
fn livegen_full_speed_is_received() {
    if !synwall_testkit::require_privileges("livegen_full_speed_is_received") {
        return;
    }
    let p = pair();
    let t = template(&p, false, SynOptions::Mss);
    let _sink = Sink::attach(&p.att, &p.gen_if).unwrap();
    let far = Sink::attach_prog(&p.far, &p.far_if, SinkProg::DropAll).unwrap();
    // The far side's NAPI on the other CPU: the generator's core only generates.
    livegen::napi_pin(&p.far, &p.far_if, 1).unwrap();
    let gen = SynGen::load(&t, 7).unwrap();
    let st = gen
        .run(&p.att, &p.gen_if, Plan::full_speed(1.0, 0))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let rx = far.counters().unwrap().drop_all;
    eprintln!(
        "livegen: {} frames in {:.2} s = {:.0}/s; far side received {rx}",
        st.frames,
        st.seconds,
        st.rate()
    );
    assert!(st.rate() > 300_000.0, "{:.0} SYN/s", st.rate());
    assert_eq!(gen.sent().unwrap(), st.frames);
    // Frames its NAPI could not take are dropped; most must arrive.
    assert!(rx >= st.frames / 2, "{rx} of {} received", st.frames);
}

#[test]
fn template_frames_and_prefixes() {
    let mut t = Template {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        prefix: "10.91.128.0".parse().unwrap(),
        prefix_len: 17,
        dst: "10.90.0.2".parse().unwrap(),
        dport: 80,
        options: SynOptions::Mss,
    };
    assert_eq!(t.host_mask().unwrap(), 0x7fff);
    assert!(t.contains("10.91.255.255".parse().unwrap()));
    assert!(!t.contains("10.91.127.255".parse().unwrap()));
    // Padded to whole 8-byte words, at least 64 bytes; the IP packet itself is unchanged.
    assert_eq!(t.frame().unwrap().len(), 64);
    t.options = SynOptions::Linux;
    assert_eq!(t.frame().unwrap().len(), 80);
    let f = t.frame().unwrap();
    assert_eq!(
        u16::from_be_bytes([f[16], f[17]]),
        20 + 20 + 20,
        "IPv4 total length"
    );
    t.prefix_len = 0;
    assert!(t.host_mask().is_err());
    t.prefix = "fd91::".parse().unwrap();
    t.prefix_len = 64;
    assert!(
        t.host_mask().is_err(),
        "IPv6 prefixes shorter than /96 are refused"
    );
    t.prefix_len = 112;
    assert!(t.frame().is_err(), "mixed families");
    t.dst = "fd90::2".parse().unwrap();
    assert_eq!(t.host_mask().unwrap(), 0xffff);
    assert_eq!(t.frame().unwrap().len(), 96);
}
