//! Client load for the anycast lab, kept running while edges join and leave: every connection is
//! a real kernel TCP connection from the client namespace to a block-echo server in the backend
//! namespace, and every answer is checked byte for byte.
//!
//! - **short**: open loop, a new connection every `gap` (IPv4 and IPv6 in turn), whatever the
//!   ones before are doing: one block out, its answer back, close. A connection that fails or
//!   answers wrong is a failure; its connect time and retransmissions are recorded.
//! - **long**: connections that live through the whole run, one block every 20 ms each way; a
//!   stall longer than [`LONG_STALL`] or a wrong answer is a failure.
//! - **straddling**: handshakes held open across a routing change. The socket is marked
//!   ([`HOLD_MARK`]) while it connects, and the client namespace's nftables drop its pure ACKs
//!   (as if the handshake ACK were lost), so the SYN goes through the edge the route picks now and
//!   the handshake completes only with the first data segment, sent after the route changed:
//!   that segment carries the cookie ACK to whichever edge the route picks then.
//!
//! Every record carries the client's source port, which is how the lab's router-side nftables
//! sets tell which edge saw the flow's SYN and which edges carried the rest.

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use synwall_netns::tcp::{connect, pattern, transform};
use synwall_netns::Netns;

/// Bytes per block (each way).
pub const BLOCK: usize = 1024;
/// A long-lived connection that gets no answer for this long has failed.
pub const LONG_STALL: Duration = Duration::from_secs(5);
/// `SO_MARK` of a straddling handshake while its ACK is held back.
pub const HOLD_MARK: u32 = 0x5717;
/// How long a short connection may take to connect (the client's SYN retries at 1 s, 3 s, ...).
pub const CONNECT_LIMIT: Duration = Duration::from_secs(15);

/// What kind of connection a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// Open-loop short connection.
    Short,
    /// Long-lived transfer.
    Long,
    /// Handshake held across a routing change.
    Straddling,
}

/// One connection as the client saw it.
#[derive(Clone, Debug, Serialize)]
pub struct Conn {
    /// What it was.
    pub kind: Kind,
    /// IPv6.
    pub v6: bool,
    /// The client's source port (0 if the socket never got one).
    pub sport: u16,
    /// Seconds since the load's start when it began.
    pub start: f64,
    /// Seconds since the load's start when it ended.
    pub end: f64,
    /// Time `connect` took, ms.
    pub connect_ms: f64,
    /// Segments the client retransmitted (`tcpi_total_retrans`, SYNs included).
    pub retrans: u32,
    /// Long-lived: the longest wait for an answer, ms.
    pub max_gap_ms: f64,
    /// Blocks exchanged.
    pub blocks: u64,
    /// Why it failed; `None` when every answer came back right.
    pub error: Option<String>,
}

impl Conn {
    fn new(kind: Kind, v6: bool, start: f64) -> Conn {
        Conn {
            kind,
            v6,
            sport: 0,
            start,
            end: start,
            connect_ms: 0.0,
            retrans: 0,
            max_gap_ms: 0.0,
            blocks: 0,
            error: None,
        }
    }
}

/// `tcpi_total_retrans` of a socket.
fn total_retrans(s: &TcpStream) -> u32 {
    // SAFETY: getsockopt writes at most `len` bytes into the zeroed struct we own.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        ) != 0
        {
            return 0;
        }
        info.tcpi_total_retrans
    }
}

fn set_mark(s: &TcpStream, mark: u32) -> Result<()> {
    let v = mark as libc::c_int;
    // SAFETY: an int option we own, with its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    ensure!(r == 0, "SO_MARK: {}", std::io::Error::last_os_error());
    Ok(())
}

/// A connected socket whose options are set before the SYN: `connect` with `SO_MARK` set first
/// (std has no hook between `socket` and `connect`, so this builds the socket by hand).
fn connect_marked(to: SocketAddr, mark: u32, limit: Duration) -> Result<TcpStream> {
    let family = if to.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: a fresh socket, owned by the TcpStream right away.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    ensure!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is ours.
    let s = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    set_mark(&s, mark)?;
    s.set_write_timeout(Some(limit))?;
    let (sa, len) = sockaddr(to);
    // SAFETY: a sockaddr_storage holding a valid address of `len` bytes.
    let r = unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_storage).cast(), len) };
    ensure!(
        r == 0,
        "connect to {to}: {}",
        std::io::Error::last_os_error()
    );
    Ok(s)
}

fn sockaddr(to: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr structs are valid; we fill them field by field.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        match to {
            SocketAddr::V4(a) => {
                let sa = &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                (
                    ss,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let sa =
                    &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                (
                    ss,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    }
}

/// One block out, its transform back.
fn round_trip(s: &mut TcpStream, seed: u32) -> Result<()> {
    let data = pattern(BLOCK, seed);
    s.write_all(&data).context("write")?;
    let mut answer = vec![0u8; BLOCK];
    s.read_exact(&mut answer).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow::anyhow!("no answer within the read limit (stalled)")
        }
        _ => anyhow::Error::new(e).context("read"),
    })?;
    ensure!(answer == transform(&data), "wrong answer");
    Ok(())
}

/// Half-close and wait for the server's close.
fn close(mut s: TcpStream) -> Result<()> {
    s.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).context("read to end")?;
    ensure!(
        rest.is_empty(),
        "{} bytes after the last answer",
        rest.len()
    );
    Ok(())
}

/// The lab's block-echo server: for every connection, each [`BLOCK`]-byte block read is answered
/// with its [`transform`]; EOF closes. One thread per connection.
pub struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Listen on every address of `addrs` in `ns`.
    pub fn start(ns: &Netns, addrs: &[SocketAddr]) -> Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for &a in addrs {
            let l = ns
                .enter(move || TcpListener::bind(a))?
                .with_context(|| format!("bind {a}"))?;
            l.set_nonblocking(true)?;
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || serve(l, stop)));
        }
        Ok(Server { stop, threads })
    }
}

fn serve(l: TcpListener, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, _)) => {
                std::thread::spawn(move || {
                    let _ = echo_blocks(s);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn echo_blocks(mut s: TcpStream) -> Result<()> {
    s.set_nonblocking(false)?;
    // A client that went quiet for this long is gone (a failed long flow): free the thread.
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut block = vec![0u8; BLOCK];
    loop {
        let mut got = 0;
        while got < BLOCK {
            let n = s.read(&mut block[got..])?;
            if n == 0 {
                if got != 0 {
                    bail!("EOF inside a block");
                }
                s.shutdown(Shutdown::Write)?;
                return Ok(());
            }
            got += n;
        }
        s.write_all(&transform(&block))?;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Every connection record of a load, shared by its threads.
#[derive(Clone, Default)]
pub struct Records(Arc<Mutex<Vec<Conn>>>);

impl Records {
    fn push(&self, c: Conn) {
        self.0.lock().expect("records").push(c);
    }

    /// A copy of every record so far.
    pub fn all(&self) -> Vec<Conn> {
        self.0.lock().expect("records").clone()
    }
}

/// The running load: short connections and long-lived transfers. [`Load::finish`] stops it.
pub struct Load {
    t0: Instant,
    stop: Arc<AtomicBool>,
    spawner: Option<JoinHandle<Vec<JoinHandle<()>>>>,
    longs: Vec<JoinHandle<()>>,
    /// What finished so far.
    pub records: Records,
    ns_path: std::path::PathBuf,
}

impl Load {
    /// Start from `client`: a short connection every `gap` to `targets` in turn, and `long`
    /// long-lived transfers to each target.
    pub fn start(
        client: &Netns,
        targets: &[SocketAddr],
        gap: Duration,
        long: usize,
    ) -> Result<Load> {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let records = Records::default();
        let mut longs = Vec::new();
        for i in 0..long {
            for &to in targets {
                let (stop, records) = (Arc::clone(&stop), records.clone());
                longs.push(
                    client.spawn_thread(move || long_flow(to, i as u32, t0, &stop, &records))?,
                );
            }
        }
        let longs = longs
            .into_iter()
            .map(|h| std::thread::spawn(move || drop(h.join())))
            .collect();
        let (flag, recs, targets) = (Arc::clone(&stop), records.clone(), targets.to_vec());
        let spawner = client.spawn_thread(move || {
            // Threads started here inherit this thread's network namespace.
            let mut handles = Vec::new();
            let mut i: u32 = 0;
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let to = targets[i as usize % targets.len()];
                let recs = recs.clone();
                handles.push(std::thread::spawn(move || short(to, i, t0, &recs)));
                i = i.wrapping_add(1);
                next += gap;
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                } else {
                    next = Instant::now();
                }
                handles.retain(|h| !h.is_finished());
            }
            handles
        })?;
        let spawner = std::thread::spawn(move || {
            spawner.join().ok().and_then(|r| r.ok()).unwrap_or_default()
        });
        Ok(Load {
            t0,
            stop,
            spawner: Some(spawner),
            longs,
            records,
            ns_path: client.path(),
        })
    }

    /// Seconds since the load started.
    pub fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Open a straddling handshake to `to`: connected, its ACK held back. Complete it with
    /// [`Held::finish`].
    pub fn hold(&self, to: SocketAddr, seed: u32) -> Result<Held> {
        let start = self.now();
        let file = std::fs::File::open(&self.ns_path)?;
        let t0 = self.t0;
        std::thread::spawn(move || -> Result<Held> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            let mut c = Conn::new(Kind::Straddling, to.is_ipv6(), start);
            let begun = Instant::now();
            let s = connect_marked(to, HOLD_MARK, CONNECT_LIMIT)?;
            c.connect_ms = begun.elapsed().as_secs_f64() * 1e3;
            c.sport = s.local_addr()?.port();
            Ok(Held {
                s,
                conn: c,
                seed,
                t0,
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("straddling connect panicked"))?
    }

    /// Stop: no new short connections; long-lived ones close cleanly; wait for all.
    pub fn finish(mut self) -> Vec<Conn> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.spawner.take() {
            for h in s.join().unwrap_or_default() {
                let _ = h.join();
            }
        }
        for h in self.longs.drain(..) {
            let _ = h.join();
        }
        self.records.all()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A straddling handshake whose ACK is held back.
pub struct Held {
    s: TcpStream,
    conn: Conn,
    seed: u32,
    t0: Instant,
}

impl Held {
    /// The client's source port.
    pub fn sport(&self) -> u16 {
        self.conn.sport
    }

    /// IPv6.
    pub fn v6(&self) -> bool {
        self.conn.v6
    }

    /// Let its segments through, send the first block (which completes the handshake wherever
    /// it lands), check the answer, close. Records the result.
    pub fn finish(mut self, records: &Records) {
        let r = (|| -> Result<()> {
            set_mark(&self.s, 0)?;
            self.s.set_read_timeout(Some(Duration::from_secs(10)))?;
            round_trip(&mut self.s, self.seed)?;
            self.conn.blocks = 1;
            close(self.s.try_clone()?)
        })();
        self.conn.retrans = total_retrans(&self.s);
        self.conn.end = self.t0.elapsed().as_secs_f64();
        self.conn.error = r.err().map(|e| format!("{e:#}"));
        records.push(self.conn);
    }
}

fn short(to: SocketAddr, seed: u32, t0: Instant, records: &Records) {
    let mut c = Conn::new(Kind::Short, to.is_ipv6(), t0.elapsed().as_secs_f64());
    let begun = Instant::now();
    let r = (|| -> Result<()> {
        let mut s = connect(to, None, CONNECT_LIMIT)?;
        c.connect_ms = begun.elapsed().as_secs_f64() * 1e3;
        c.sport = s.local_addr()?.port();
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let r = round_trip(&mut s, seed).and_then(|()| close(s.try_clone()?));
        c.retrans = total_retrans(&s);
        r?;
        c.blocks = 1;
        Ok(())
    })();
    c.end = t0.elapsed().as_secs_f64();
    c.error = r.err().map(|e| format!("{to}: {e:#}"));
    records.push(c);
}

fn long_flow(to: SocketAddr, seed: u32, t0: Instant, stop: &AtomicBool, records: &Records) {
    let mut c = Conn::new(Kind::Long, to.is_ipv6(), t0.elapsed().as_secs_f64());
    let begun = Instant::now();
    let r = (|| -> Result<()> {
        let mut s = connect(to, None, CONNECT_LIMIT)?;
        c.connect_ms = begun.elapsed().as_secs_f64() * 1e3;
        c.sport = s.local_addr()?.port();
        s.set_read_timeout(Some(LONG_STALL))?;
        let r = (|| -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                round_trip(
                    &mut s,
                    seed.wrapping_mul(7919).wrapping_add(c.blocks as u32),
                )
                .with_context(|| format!("block {}", c.blocks))?;
                c.max_gap_ms = c.max_gap_ms.max(sent.elapsed().as_secs_f64() * 1e3);
                c.blocks += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            close(s.try_clone()?)
        })();
        c.retrans = total_retrans(&s);
        r
    })();
    c.end = t0.elapsed().as_secs_f64();
    c.error = r.err().map(|e| format!("{to}: {e:#}"));
    records.push(c);
}
