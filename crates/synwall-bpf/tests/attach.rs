//! XDP attachment for real: in a fresh network namespace, the edge is attached to one end of a
//! veth pair (generic, then native mode), a SYN sent into the other end comes back as the
//! SYN+ACK the engine builds, and dropping the link detaches the program. (The peer end runs a
//! pass-everything edge: a veth gives native XDP_TX frames only to a peer that runs XDP.)
//!
//! Needs root and BPF (CI=true: fail, else skip with a message).

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use synwall_bpf::{DataPath, Edge, XdpMode};
use synwall_engine::{synack::MAX_SYNACK_LEN, Engine, Verdict};

fn ip(args: &[&str]) -> Result<String, String> {
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
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A raw socket on `ifname` that receives every frame.
struct Raw {
    fd: i32,
    ifindex: i32,
}

impl Raw {
    fn open(ifname: &str) -> Raw {
        let c = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: plain libc calls; the descriptor is closed on drop.
        unsafe {
            let ifindex = libc::if_nametoindex(c.as_ptr()) as i32;
            assert!(ifindex > 0, "no {ifname}");
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex;
            let r = libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            Raw { fd, ifindex }
        }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: sending from a buffer we own to an address we built.
        unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = self.ifindex;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&frame[..6]);
            let n = libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert!(n >= 0, "sendto: {}", std::io::Error::last_os_error());
        }
    }

    /// The next received frame that `want` accepts, within `limit`.
    fn recv_matching(&self, limit: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let start = Instant::now();
        let mut buf = vec![0u8; 2048];
        while start.elapsed() < limit {
            // SAFETY: receiving into a buffer we own.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 && want(&buf[..n as usize]) {
                return Some(buf[..n as usize].to_vec());
            }
        }
        None
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        // SAFETY: our descriptor.
        unsafe { libc::close(self.fd) };
    }
}

fn xdp_attached(dev: &str) -> bool {
    ip(&["-d", "link", "show", "dev", dev])
        .unwrap()
        .contains("prog/xdp")
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
    let Some(edge) = or_skip("xdp attach", Edge::load_with(&cfg, &keys())) else {
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
        let mut syn = Seg::new(
            "192.0.2.10".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
            40000 + i as u16,
            443,
            SYN,
        );
        syn.opts = opts_bytes(&[opt_mss(1460), opt_sack(), opt_ts(0x1111_2222, 0), opt_ws(7)]);
        let mut frame = build(&syn);
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
        let clock = (tsval_of(&reply).unwrap() & 0xffff_ff00) as u64;
        let mut engine = Engine::new(cfg.clone(), keys());
        let mut buf = frame.clone();
        buf.resize(frame.len() + MAX_SYNACK_LEN, 0);
        let d = engine.xdp(&mut buf, frame.len(), clock);
        let Verdict::Tx { len } = d.verdict else {
            panic!("engine: {d:?}")
        };
        assert_eq!(hex(&reply), hex(&buf[..len]), "{mode:?}");
        link.detach();
        assert!(
            !xdp_attached("swe0"),
            "{mode:?}: still attached after detach"
        );
    }
}
