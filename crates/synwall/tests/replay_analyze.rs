//! `synwall replay` on captures of real Linux clients answers every SYN with a SYN+ACK that
//! validates and restores the client's options after table rounding; `synwall analyze` reports
//! what each scheme loses, checked against the fixtures' index (tshark's reading of the SYNs).

use etherparse::{NetHeaders, PacketHeaders, TcpOptionElement, TransportHeader};
use pcap_file::pcap::PcapReader;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use synwall_cookie::synwall_v1::{self as v1, Config, EpochKeys, MasterSecret};
use synwall_cookie::{Ack, Addrs, Flow, Timestamps};

const NOW: u64 = 1_800_000_000;
const SECRET_HEX: &str = "7f3c1e2a9b8d4f6e0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn synwall(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(synwall_testkit::synwall())
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

struct Seg {
    flow: Flow,
    seq: u32,
    ack: u32,
    syn: bool,
    has_ack: bool,
    tsval: Option<u32>,
    mss: Option<u16>,
    ws: Option<u8>,
    sack: bool,
    ece: bool,
}

fn seg(f: &[u8]) -> Seg {
    let h = PacketHeaders::from_ethernet_slice(f).unwrap();
    let Some(TransportHeader::Tcp(t)) = h.transport else {
        panic!("not tcp")
    };
    let addrs = match h.net.unwrap() {
        NetHeaders::Ipv4(ip, _) => Addrs::V4 {
            client: ip.source,
            service: ip.destination,
        },
        NetHeaders::Ipv6(ip, _) => Addrs::V6 {
            client: ip.source,
            service: ip.destination,
        },
        _ => panic!(),
    };
    let mut s = Seg {
        flow: Flow {
            addrs,
            client_port: t.source_port,
            service_port: t.destination_port,
        },
        seq: t.sequence_number,
        ack: t.acknowledgment_number,
        syn: t.syn,
        has_ack: t.ack,
        tsval: None,
        mss: None,
        ws: None,
        sack: false,
        ece: t.ece,
    };
    for o in t.options_iterator() {
        match o.unwrap() {
            TcpOptionElement::Timestamp(v, _) => s.tsval = Some(v),
            TcpOptionElement::MaximumSegmentSize(m) => s.mss = Some(m),
            TcpOptionElement::WindowScale(w) => s.ws = Some(w),
            TcpOptionElement::SelectiveAcknowledgementPermitted => s.sack = true,
            _ => {}
        }
    }
    s
}

#[test]
fn replay_answers_every_real_syn_with_a_cookie_that_restores_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("master.key");
    std::fs::write(&secret, format!("{SECRET_HEX}\n")).unwrap();
    let mut master = [0u8; 32];
    hex::decode_to_slice(SECRET_HEX, &mut master).unwrap();
    let keys = EpochKeys::derive(&MasterSecret(master), v1::epoch_of(NOW, 60));
    let cfg = Config::default();
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/pcap/real/index.json")).unwrap(),
    )
    .unwrap();
    let entries = index.as_array().unwrap();
    assert!(entries.len() >= 18);
    for e in entries {
        let file = root()
            .join("fixtures/pcap/real")
            .join(e["file"].as_str().unwrap());
        let out = dir.path().join("out.pcap");
        let (code, stdout, stderr) = synwall(&[
            "replay",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--secret-file",
            secret.to_str().unwrap(),
            "--service",
            "10.77.0.2/32:80",
            "--service",
            "[fd77::2/128]:80",
            "--now",
            &NOW.to_string(),
            "--json",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let input: Vec<Seg> = frames(&file).iter().map(|f| seg(f)).collect();
        let syns: Vec<&Seg> = input.iter().filter(|s| s.syn && !s.has_ack).collect();
        let to_server = input.iter().filter(|s| s.flow.service_port == 80).count() as u64;
        assert_eq!(syns.len(), e["connections"].as_u64().unwrap() as usize);
        assert_eq!(
            report["counters"]["syn_answered"],
            syns.len() as u64,
            "{}",
            e["file"]
        );
        assert_eq!(
            report["counters"]["fwd_non_syn"].as_u64().unwrap() + syns.len() as u64,
            to_server
        );
        assert_eq!(report["dropped"], 0);

        let answers: Vec<Seg> = frames(&out)
            .iter()
            .map(|f| seg(f))
            .filter(|s| s.syn && s.has_ack && s.flow.client_port == 80)
            .collect();
        // The capture also holds the real server's SYN+ACKs (forwarded untouched): ours carry cookies.
        let ours: Vec<&Seg> = answers
            .iter()
            .filter(|a| {
                syns.iter()
                    .any(|s| a.ack == s.seq.wrapping_add(1) && a.seq != 0)
            })
            .collect();
        let want = &e["syn"];
        let mut validated = 0;
        for syn in &syns {
            let a = ours
                .iter()
                .find(|a| {
                    a.ack == syn.seq.wrapping_add(1)
                        && v1::validate(&cfg, &keys, &ack(syn, a)).is_some()
                })
                .unwrap_or_else(|| {
                    panic!("{}: no validating SYN+ACK for ISN {}", e["file"], syn.seq)
                });
            let d = v1::validate(&cfg, &keys, &ack(syn, a)).unwrap();
            // What the client offered (tshark's reading), after table rounding.
            let table = cfg.mss_table(&syn.flow.addrs);
            let mss = want["mss"].as_u64().map(|m| m as u16);
            assert_eq!(
                d.mss,
                table.value(table.index_at_or_below(mss)),
                "{}",
                e["file"]
            );
            assert_eq!(d.wscale, want["wscale"].as_u64().map(|w| (w as u8).min(14)));
            assert_eq!(d.sack_ok, want["sack"].as_bool().unwrap());
            assert_eq!(d.tstamp_ok, want["ts"].as_bool().unwrap());
            let ecn = want["ts"].as_bool().unwrap() && want["ece_cwr"].as_bool().unwrap();
            assert_eq!(d.ecn_ok, ecn);
            assert_eq!(a.ece, ecn);
            assert_eq!(
                a.mss,
                Some(if syn.flow.addrs.is_v6() { 1440 } else { 1460 })
            );
            assert_eq!(a.ws, want["wscale"].as_u64().map(|_| 7));
            assert_eq!(a.sack, want["sack"].as_bool().unwrap());
            validated += 1;
        }
        assert_eq!(validated, syns.len());
    }
}

/// The ACK the real client would send for our SYN+ACK `a` to its SYN `syn`.
fn ack(syn: &Seg, a: &Seg) -> Ack {
    Ack {
        flow: syn.flow,
        seq: syn.seq.wrapping_add(1),
        ack: a.seq.wrapping_add(1),
        timestamps: a.tsval.map(|tsecr| Timestamps { tsval: 1, tsecr }),
    }
}

#[test]
fn analyze_reports_what_each_scheme_loses() {
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/pcap/p0f/index.json")).unwrap(),
    )
    .unwrap();
    let syns = index.as_array().unwrap();
    let (code, stdout, stderr) = synwall(&[
        "analyze",
        "--json",
        root()
            .join("fixtures/pcap/p0f/p0f-syns.pcap")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["syns"].as_u64().unwrap() as usize, syns.len());
    let scheme = |n: &str| {
        r["schemes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["scheme"] == n)
            .unwrap()
            .clone()
    };
    let count = |f: &dyn Fn(&Value) -> bool| syns.iter().filter(|s| f(&s["syn"])).count() as u64;
    let with_ws = count(&|s| s["wscale"].is_u64());
    let with_sack = count(&|s| s["sack"] == true);
    let ws_no_ts = count(&|s| s["wscale"].is_u64() && s["ts"] == false);
    let sack_no_ts = count(&|s| s["sack"] == true && s["ts"] == false);
    // FreeBSD's window-scale table is 0,0,1,2,4,6,7,8: any other shift comes back changed.
    let fbsd_ws_changed = count(&|s| {
        s["wscale"]
            .as_u64()
            .is_some_and(|w| ![0, 1, 2, 4, 6, 7, 8].contains(&w.min(14)))
    });

    let v1 = scheme("synwall-v1");
    assert_eq!(v1["wscale_lost"], 0);
    assert_eq!(v1["wscale_changed"], 0);
    assert_eq!(v1["sack_lost"], 0);
    assert_eq!(v1["ts_lost"], 0);
    assert_eq!(v1["rejected"], 0);
    let linux = scheme("linux");
    assert_eq!(
        linux["wscale_lost"], ws_no_ts,
        "Linux keeps window scaling only through timestamps"
    );
    assert_eq!(linux["sack_lost"], sack_no_ts);
    let no_ts = scheme("linux-no-ts");
    assert_eq!(no_ts["wscale_lost"], with_ws);
    assert_eq!(no_ts["sack_lost"], with_sack);
    let fbsd = scheme("freebsd");
    assert_eq!(fbsd["wscale_lost"], 0);
    assert_eq!(fbsd["wscale_changed"], fbsd_ws_changed);
    assert!(
        with_ws > 50 && ws_no_ts > 10,
        "the p0f set covers Windows-style SYNs without timestamps"
    );

    // The text table has one row per scheme.
    let (code, text, _) = synwall(&[
        "analyze",
        root()
            .join("fixtures/pcap/real/linux-v4-nots-sack-ws-mtu1500.pcap")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(text.starts_with("2 SYNs analysed"), "{text}");
    for n in ["synwall-v1", "linux ", "linux-no-ts", "freebsd"] {
        assert!(text.lines().any(|l| l.starts_with(n)), "{n}: {text}");
    }
}

#[test]
fn replay_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("k");
    std::fs::write(&secret, SECRET_HEX).unwrap();
    let real = root().join("fixtures/pcap/real/linux-v4-ts-sack-ws-mtu1500.pcap");
    let out = dir.path().join("o.pcap");
    let base = |svc: &str, input: &Path, sec: &Path| {
        synwall(&[
            "replay",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--secret-file",
            sec.to_str().unwrap(),
            "--service",
            svc,
        ])
    };
    let (c, _, e) = base("10.77.0.2/24:80", &real, &secret);
    assert_eq!(c, 2);
    assert!(
        e.contains("host bits set; did you mean 10.77.0.0/24?"),
        "{e}"
    );
    let (c, _, e) = base("10.77.0.2:80", &dir.path().join("missing.pcap"), &secret);
    assert_eq!(c, 2);
    assert!(e.contains("cannot open capture"), "{e}");
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture at all").unwrap();
    let (c, _, e) = base("10.77.0.2:80", &junk, &secret);
    assert_eq!(c, 2);
    assert!(e.contains("not a pcap or pcapng file"), "{e}");
    std::fs::write(&junk, b"ab").unwrap();
    let (c, _, e) = base("10.77.0.2:80", &junk, &secret);
    assert_eq!(c, 2);
    assert!(e.contains("too short to be a capture"), "{e}");
    std::fs::write(&secret, "abc").unwrap();
    let (c, _, e) = base("10.77.0.2:80", &real, &secret);
    assert_eq!(c, 2);
    assert!(
        e.contains("must be 32 raw bytes or 64 hex characters"),
        "{e}"
    );
}

#[test]
fn pcapng_input_replays_like_pcap() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    use std::borrow::Cow;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("k");
    std::fs::write(&secret, SECRET_HEX).unwrap();
    let real = root().join("fixtures/pcap/real/linux-v6-ts-sack-ws-mtu1500.pcap");
    let ng = dir.path().join("in.pcapng");
    let mut w = PcapNgWriter::new(std::fs::File::create(&ng).unwrap()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 65535,
        options: vec![],
    })
    .unwrap();
    for (i, f) in frames(&real).iter().enumerate() {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_millis(i as u64),
            original_len: f.len() as u32,
            data: Cow::Borrowed(f),
            options: vec![],
        })
        .unwrap();
    }
    drop(w);
    let run = |input: &Path, out: &Path| {
        let (c, _, e) = synwall(&[
            "replay",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--secret-file",
            secret.to_str().unwrap(),
            "--service",
            "[fd77::/64]:80",
            "--now",
            "1800000000",
        ]);
        assert_eq!(c, 0, "{e}");
        frames(out)
    };
    let a = run(&real, &dir.path().join("a.pcap"));
    let b = run(&ng, &dir.path().join("b.pcap"));
    assert_eq!(a, b);
    assert_eq!(
        a.len(),
        frames(&real).len(),
        "v6 capture: every frame answered or forwarded"
    );
}

/// `(timestamp, frame)` of every record of a classic pcap.
fn records(path: &Path) -> Vec<(std::time::Duration, Vec<u8>)> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        out.push((p.timestamp, p.data.into_owned()));
    }
    out
}

/// `synwall replay IN --out OUT` with the test secret and service; (exit code, stderr).
fn replay(dir: &Path, input: &Path, out: &Path) -> (i32, String) {
    let secret = dir.join("replay.key");
    std::fs::write(&secret, SECRET_HEX).unwrap();
    let (c, _, e) = synwall(&[
        "replay",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--secret-file",
        secret.to_str().unwrap(),
        "--service",
        "10.77.0.2/32:80",
        "--service",
        "[fd77::/64]:80",
        "--now",
        "1800000000",
    ]);
    (c, e)
}

/// The files of `dir`, sorted (to see that a refused run left nothing behind).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn replay_never_writes_over_its_input_and_a_failed_run_keeps_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fixture = root().join("fixtures/pcap/real/linux-v4-ts-sack-ws-mtu1500.pcap");
    let original = std::fs::read(&fixture).unwrap();
    let input = d.join("same.pcap");
    std::fs::write(&input, &original).unwrap();
    std::fs::hard_link(&input, d.join("hard.pcap")).unwrap();
    std::os::unix::fs::symlink(&input, d.join("soft.pcap")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("replay.key"), SECRET_HEX).unwrap();
    let before = listing(d);
    // The input itself, by its name, another spelling of its path, a symbolic and a hard link.
    for out in [
        input.clone(),
        d.join("sub/../same.pcap"),
        d.join("soft.pcap"),
        d.join("hard.pcap"),
    ] {
        let (c, e) = replay(d, &input, &out);
        assert_eq!(c, 2, "{}: {e}", out.display());
        assert!(e.contains("is the input capture"), "{e}");
        assert_eq!(
            std::fs::read(&input).unwrap(),
            original,
            "{}",
            out.display()
        );
    }
    assert_eq!(listing(d), before);

    // A replay that fails (input unreadable, not a capture, or bad in the middle) leaves an
    // existing output as it was and no temporary file behind.
    let old = d.join("old.pcap");
    std::fs::write(&old, b"the user's own file").unwrap();
    let junk = d.join("junk.pcap");
    std::fs::write(&junk, b"ab").unwrap();
    let (c, e) = replay(d, &junk, &old);
    assert_eq!(c, 2);
    assert!(e.contains("too short to be a capture"), "{e}");
    let (c, _) = replay(d, &d.join("missing.pcap"), &old);
    assert_eq!(c, 2);
    // Two good records, then one that claims more captured bytes than the packet had: bad
    // mid-file, after the output was begun.
    let mut bad = original[..24 + 2 * (16 + 74)].to_vec();
    bad.extend_from_slice(&[0u8; 8]);
    bad.extend_from_slice(&64u32.to_le_bytes());
    bad.extend_from_slice(&10u32.to_le_bytes());
    bad.extend_from_slice(&[0u8; 64]);
    bad.extend_from_slice(&original[24..24 + 16 + 74]);
    std::fs::write(&junk, &bad).unwrap();
    let (c, e) = replay(d, &junk, &old);
    assert_eq!(c, 2, "{e}");
    assert!(e.contains("bad pcap record"), "{e}");
    assert_eq!(std::fs::read(&old).unwrap(), b"the user's own file");
    let files = listing(d);
    assert!(!files.iter().any(|f| f.contains("tmp")), "{files:?}");

    // A run that works replaces it, keeping its mode.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (c, e) = replay(d, &input, &old);
    assert_eq!(c, 0, "{e}");
    assert_eq!(frames(&old).len(), frames(&input).len());
    assert_eq!(
        std::fs::metadata(&old).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Through a symbolic link, the file it points to is written and the link stays.
    let link = d.join("link.pcap");
    std::os::unix::fs::symlink(&old, &link).unwrap();
    std::fs::write(&old, b"x").unwrap();
    let (c, e) = replay(d, &input, &link);
    assert_eq!(c, 0, "{e}");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(frames(&old).len(), frames(&input).len());
}

/// A little-endian pcapng file: one section, one Ethernet interface with `if_tsresol` (absent:
/// the format's default, microseconds), and enhanced packet blocks with raw timestamps.
fn pcapng(tsresol: Option<u8>, packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let len = (12 + body.len()) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&len.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0A0D_0D0A, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&1u16.to_le_bytes()); // LINKTYPE_ETHERNET
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    if let Some(r) = tsresol {
        idb.extend_from_slice(&9u16.to_le_bytes()); // if_tsresol
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[r, 0, 0, 0]);
        idb.extend_from_slice(&[0u8; 4]); // opt_endofopt
    }
    block(&mut out, 1, &idb);
    for (ts, data) in packets {
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        epb.resize(epb.len().next_multiple_of(4), 0);
        block(&mut out, 6, &epb);
    }
    out
}

#[test]
fn pcapng_timestamps_keep_their_unit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let real = root().join("fixtures/pcap/real/linux-v4-ts-sack-ws-mtu1500.pcap");
    let want = records(&real);
    assert!(want[0].0.as_secs() > 1_700_000_000, "{:?}", want[0].0);
    let (c, e) = replay(d, &real, &d.join("from-pcap.pcap"));
    assert_eq!(c, 0, "{e}");
    let from_pcap = records(&d.join("from-pcap.pcap"));
    // The same packets as pcapng in microseconds (the default unit, as editcap writes them),
    // explicit microseconds, nanoseconds and 2^-20 s.
    type Raw = fn(std::time::Duration) -> u64;
    let units: [(Option<u8>, Raw); 4] = [
        (None, |t| t.as_micros() as u64),
        (Some(6), |t| t.as_micros() as u64),
        (Some(9), |t| t.as_nanos() as u64),
        (Some(0x80 | 20), |t| {
            (t.as_secs() << 20) + ((t.subsec_micros() as u64) << 20) / 1_000_000
        }),
    ];
    for (i, (resol, raw)) in units.iter().enumerate() {
        let ng = d.join(format!("in{i}.pcapng"));
        let packets: Vec<(u64, Vec<u8>)> = want.iter().map(|(t, f)| (raw(*t), f.clone())).collect();
        std::fs::write(&ng, pcapng(*resol, &packets)).unwrap();
        let out = d.join(format!("out{i}.pcap"));
        let (c, e) = replay(d, &ng, &out);
        assert_eq!(c, 0, "{e}");
        let got = records(&out);
        assert_eq!(got.len(), from_pcap.len());
        for (g, p) in got.iter().zip(&from_pcap) {
            assert_eq!(g.1, p.1, "tsresol {resol:?}: frames differ");
            // 2^-20 s is finer than the output's microseconds but not a multiple of them.
            let diff = g.0.abs_diff(p.0);
            assert!(
                diff <= std::time::Duration::from_micros(1),
                "tsresol {resol:?}: {:?} for {:?}",
                g.0,
                p.0
            );
        }
    }
}

#[test]
fn a_truncated_capture_is_read_up_to_the_cut_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let real = root().join("fixtures/pcap/real/linux-v4-ts-sack-ws-mtu1500.pcap");
    let bytes = std::fs::read(&real).unwrap();
    let all = records(&real);
    let n = all.len();
    // The same capture without its last record (cut at a record boundary) is the reference.
    let last_len = 16 + all[n - 1].1.len();
    let whole = d.join("whole.pcap");
    std::fs::write(&whole, &bytes[..bytes.len() - last_len]).unwrap();
    let (c, e) = replay(d, &whole, &d.join("ref.pcap"));
    assert_eq!(c, 0, "{e}");
    assert!(!e.contains("warning"), "{e}");
    let reference = records(&d.join("ref.pcap"));
    // Cut inside the last record's data, and inside its 16-byte header.
    for cut in [10, last_len - 5] {
        let cut_file = d.join("cut.pcap");
        std::fs::write(&cut_file, &bytes[..bytes.len() - cut]).unwrap();
        let out = d.join("cut-out.pcap");
        let (c, e) = replay(d, &cut_file, &out);
        assert_eq!(c, 0, "cut {cut}: {e}");
        assert!(
            e.contains("warning") && e.contains("cut short"),
            "cut {cut}: {e}"
        );
        assert!(
            e.contains(&format!(
                "the {} complete packets before it were read",
                n - 1
            )),
            "{e}"
        );
        assert_eq!(records(&out), reference, "cut {cut}");
        // analyze reads it too, and says so in its JSON.
        let (c, stdout, e) = synwall(&["analyze", "--json", cut_file.to_str().unwrap()]);
        assert_eq!(c, 0, "{e}");
        let j: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(j["warnings"].as_array().unwrap().len(), 1, "{j}");
    }
    // The same for pcapng: a block cut short.
    let packets: Vec<(u64, Vec<u8>)> = all
        .iter()
        .map(|(t, f)| (t.as_micros() as u64, f.clone()))
        .collect();
    let ng = pcapng(None, &packets);
    let cut_file = d.join("cut.pcapng");
    std::fs::write(&cut_file, &ng[..ng.len() - 7]).unwrap();
    let out = d.join("cut-ng.pcap");
    let (c, e) = replay(d, &cut_file, &out);
    assert_eq!(c, 0, "{e}");
    assert!(e.contains("cut short"), "{e}");
    assert_eq!(records(&out), reference);
}
