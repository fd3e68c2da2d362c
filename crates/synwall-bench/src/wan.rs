//! A WAN path for the quality benchmark: a client namespace `<prefix>wcl` reaches the router
//! through namespace `<prefix>wan`, where a userspace relay (two AF_PACKET sockets) forwards every
//! frame after a fixed one-way delay and drops a given share at random.
//!
//! Why not `tc netem`: this machine's kernel is built without `CONFIG_NET_SCH_NETEM` (and without
//! `fq`, so no EDT delay either); see docs/BENCHMARKS.md. The relay does what netem's `delay D
//! loss P` does, per direction, on whole Ethernet frames (ARP included).
//!
//! ```text
//!  wcl  w0 10.88.3.2 ── wa [wan: relay] wb ── rw 10.88.3.1 [rtr]
//! ```

use crate::lab::Lab;
use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use synwall_netns::{veth, Netns};

/// The slow client's address.
pub const WCL_V4: &str = "10.88.3.2";

/// The WAN client and its relay; dropping it stops the relay and removes both namespaces.
pub struct Wan {
    /// The client namespace behind the WAN.
    pub client: Netns,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Frames relayed and dropped (both directions), for the report.
    pub counts: Arc<[std::sync::atomic::AtomicU64; 2]>,
    _wan: Netns,
}

fn packet_socket(dev: &str) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
    };
    anyhow::ensure!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(dev)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    anyhow::ensure!(ifindex != 0, "no interface {dev}");
    // SAFETY: zeroed sockaddr_ll is valid; we fill family, protocol and ifindex.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    anyhow::ensure!(r == 0, "bind {dev}: {}", std::io::Error::last_os_error());
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    let buf: libc::c_int = 8 << 20;
    // SAFETY: valid option values of the right sizes.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &buf as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        );
    }
    Ok(fd)
}

/// One direction: frames read from `rx` leave on `tx` `delay` later; `loss` of them never do.
fn direction(
    rx: Arc<OwnedFd>,
    tx: Arc<OwnedFd>,
    delay: Duration,
    loss: f64,
    seed: u64,
    stop: Arc<AtomicBool>,
    counts: Arc<[std::sync::atomic::AtomicU64; 2]>,
) -> [JoinHandle<()>; 2] {
    let (q, out) = mpsc::channel::<(Instant, Vec<u8>)>();
    let stop2 = Arc::clone(&stop);
    let counts2 = Arc::clone(&counts);
    let reader = std::thread::spawn(move || {
        let mut x = seed | 1;
        let threshold = (loss * u64::MAX as f64) as u64;
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: zeroed sockaddr_ll is valid output storage.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and from are valid for the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    rx.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                    &mut from as *mut _ as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n <= 0 {
                continue;
            }
            // Our own transmissions on this device show up as outgoing: not ours to relay.
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x < threshold {
                counts[1].fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if q.send((Instant::now() + delay, buf[..n as usize].to_vec()))
                .is_err()
            {
                break;
            }
        }
    });
    let writer = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            let Ok((due, frame)) = out.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            // SAFETY: frame is a valid buffer; the socket is bound to its device.
            unsafe {
                libc::send(
                    tx.as_raw_fd(),
                    frame.as_ptr() as *const libc::c_void,
                    frame.len(),
                    0,
                );
            }
            counts2[0].fetch_add(1, Ordering::Relaxed);
        }
    });
    [reader, writer]
}

impl Wan {
    /// Build `wcl` and `wan` onto `lab`'s router, with `delay` each way and `loss` (0..1).
    pub fn build(lab: &Lab, delay: Duration, loss: f64) -> Result<Wan> {
        let p = &lab.prefix;
        let client = Netns::create(&format!("{p}wcl"))?;
        let wan = Netns::create(&format!("{p}wan"))?;
        veth(&client, "w0", &wan, "wa")?;
        veth(&wan, "wb", &lab.rtr, "rw")?;
        client.addr("w0", &format!("{WCL_V4}/24"))?;
        lab.rtr.addr("rw", "10.88.3.1/24")?;
        client.route(&["default", "via", "10.88.3.1"])?;
        let (a, b) = wan
            .enter(|| -> Result<(OwnedFd, OwnedFd)> {
                Ok((packet_socket("wa")?, packet_socket("wb")?))
            })?
            .context("relay sockets")?;
        let (a, b) = (Arc::new(a), Arc::new(b));
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[std::sync::atomic::AtomicU64; 2]> = Arc::new(Default::default());
        let mut threads = Vec::new();
        threads.extend(direction(
            Arc::clone(&a),
            Arc::clone(&b),
            delay,
            loss,
            0x9e37_79b9_7f4a_7c15,
            Arc::clone(&stop),
            Arc::clone(&counts),
        ));
        threads.extend(direction(
            b,
            a,
            delay,
            loss,
            0xd1b5_4a32_d192_ed03,
            Arc::clone(&stop),
            Arc::clone(&counts),
        ));
        Ok(Wan {
            client,
            stop,
            threads,
            counts,
            _wan: wan,
        })
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
