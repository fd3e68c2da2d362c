//! Real kernel TCP in a lab: what `TCP_INFO` says about a socket's negotiated options, a client
//! connect with a chosen MSS (`TCP_MAXSEG` before `connect`), and a transforming echo server.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// `tcpi_options` bits (include/uapi/linux/tcp.h).
pub const TCPI_OPT_TIMESTAMPS: u8 = 1;
/// SACK negotiated.
pub const TCPI_OPT_SACK: u8 = 2;
/// Window scaling negotiated.
pub const TCPI_OPT_WSCALE: u8 = 4;
/// ECN negotiated.
pub const TCPI_OPT_ECN: u8 = 8;

/// The handshake results `TCP_INFO` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// `tcpi_options`.
    pub options: u8,
    /// The peer's window-scale shift (what this socket scales the peer's windows by).
    pub snd_wscale: u8,
    /// This socket's own shift.
    pub rcv_wscale: u8,
    /// Current sending MSS (`mss_cache`: without TCP options such as timestamps).
    pub snd_mss: u32,
    /// The MSS this socket advertises.
    pub advmss: u32,
}

impl TcpInfo {
    /// Timestamps negotiated.
    pub fn ts(&self) -> bool {
        self.options & TCPI_OPT_TIMESTAMPS != 0
    }
    /// SACK negotiated.
    pub fn sack(&self) -> bool {
        self.options & TCPI_OPT_SACK != 0
    }
    /// Window scaling negotiated.
    pub fn wscale(&self) -> bool {
        self.options & TCPI_OPT_WSCALE != 0
    }
    /// ECN negotiated.
    pub fn ecn(&self) -> bool {
        self.options & TCPI_OPT_ECN != 0
    }
}

impl std::fmt::Display for TcpInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "mss {:>4}  wscale {}  sack {:<3}  ts {:<3}  ecn {:<3}",
            self.snd_mss,
            if self.wscale() {
                format!("{:>2}/{:<2}", self.snd_wscale, self.rcv_wscale)
            } else {
                "off  ".to_string()
            },
            yn(self.sack()),
            yn(self.ts()),
            yn(self.ecn())
        )
    }
}

/// `getsockopt(TCP_INFO)` on `fd`.
pub fn tcp_info(fd: RawFd) -> Result<TcpInfo> {
    // SAFETY: getsockopt writes at most `len` bytes into the zeroed struct we own.
    let info = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        ) != 0
        {
            bail!("TCP_INFO: {}", std::io::Error::last_os_error());
        }
        info
    };
    Ok(TcpInfo {
        options: info.tcpi_options,
        snd_wscale: info.tcpi_snd_rcv_wscale & 0x0f,
        rcv_wscale: info.tcpi_snd_rcv_wscale >> 4,
        snd_mss: info.tcpi_snd_mss,
        advmss: info.tcpi_advmss,
    })
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: i32) -> Result<()> {
    // SAFETY: passing a pointer to an int we own, with its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r != 0 {
        bail!(
            "setsockopt({level}, {name}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Connect to `to` from the calling thread's namespace, with `TCP_MAXSEG = mss` set before the
/// SYN when given; gives up after `limit` (Linux bounds a blocking connect by `SO_SNDTIMEO`).
pub fn connect(to: SocketAddr, mss: Option<u16>, limit: Duration) -> Result<TcpStream> {
    let family = if to.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: a new socket; ownership passes to the TcpStream (closed on drop) right away.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    if let Some(m) = mss {
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG, m as i32)?;
    }
    stream.set_write_timeout(Some(limit))?;
    // SAFETY: zeroed sockaddr structs filled field by field; we pass their true sizes.
    let r = unsafe {
        match to {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if r != 0 {
        bail!("connect to {to}: {}", std::io::Error::last_os_error());
    }
    Ok(stream)
}

/// What the echo server answers to `data`: every byte XOR 0x5a, in reverse order (so a reply
/// cannot be the request reflected by anything on the path).
pub fn transform(data: &[u8]) -> Vec<u8> {
    data.iter().rev().map(|b| b ^ 0x5a).collect()
}

/// `len` bytes of a pattern that depends on `seed`.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Client side of one exchange: send `data`, half-close, read the whole answer (bounded by
/// `limit` per read). Returns the answer and the client socket's `TCP_INFO`.
pub fn exchange(
    stream: &mut TcpStream,
    data: &[u8],
    limit: Duration,
) -> Result<(Vec<u8>, TcpInfo)> {
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    let info = tcp_info(stream.as_raw_fd())?;
    stream.write_all(data).context("client write")?;
    stream.shutdown(Shutdown::Write)?;
    let mut answer = Vec::with_capacity(data.len());
    stream.read_to_end(&mut answer).context("client read")?;
    Ok((answer, info))
}

/// One connection the server accepted: its peer, its `TCP_INFO` right after `accept`, and how
/// many bytes it received.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The client's address.
    pub peer: SocketAddr,
    /// The accepted socket's `TCP_INFO`.
    pub info: TcpInfo,
    /// Bytes received before the client's FIN.
    pub received: usize,
}

/// A server on a listener made inside a namespace: for every connection it reads until EOF and
/// answers [`transform`] of what it read. Stops (and joins) on drop.
pub struct EchoServer {
    /// One entry per finished connection.
    pub accepted: Receiver<Result<Accepted, String>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl EchoServer {
    /// Serve on `listener` (made in the server's namespace, e.g. with [`crate::Netns::enter`]).
    pub fn start(listener: TcpListener) -> Result<EchoServer> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, accepted) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, peer)) => {
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            let _ = tx.send(serve_one(s, peer).map_err(|e| format!("{e:#}")));
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("accept: {e}")));
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        });
        Ok(EchoServer {
            accepted,
            stop,
            thread: Some(thread),
            addr,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next finished connection, within `limit`.
    pub fn next(&self, limit: Duration) -> Result<Accepted> {
        match self.accepted.recv_timeout(limit) {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => bail!("server: {e}"),
            Err(_) => bail!("server: no connection finished within {limit:?}"),
        }
    }
}

fn serve_one(mut s: TcpStream, peer: SocketAddr) -> Result<Accepted> {
    s.set_nonblocking(false)?;
    let info = tcp_info(s.as_raw_fd())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut data = Vec::new();
    s.read_to_end(&mut data).context("server read")?;
    s.write_all(&transform(&data)).context("server write")?;
    s.shutdown(Shutdown::Write)?;
    Ok(Accepted {
        peer,
        info,
        received: data.len(),
    })
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
