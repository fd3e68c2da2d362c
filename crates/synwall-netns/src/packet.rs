//! An `AF_PACKET` socket to send frames (built by [`crate::frame`]) out of an interface (for
//! ACKs no SYN asked for, spoofed SYN floods, crafted hostile frames), and an `AF_PACKET` capture
//! of what an interface sends and receives. Only ever aimed at addresses inside a lab.

use anyhow::{bail, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An `AF_PACKET` socket that sends frames out of one interface. Open it on a thread inside the
/// interface's namespace (e.g. in [`crate::Netns::enter`]).
pub struct RawSender {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSender {
    /// Open on interface `dev` of the calling thread's namespace.
    pub fn open(dev: &str) -> Result<RawSender> {
        let c = std::ffi::CString::new(dev)?;
        // SAFETY: plain libc calls; the descriptor is owned by the returned value.
        unsafe {
            let ifindex = libc::if_nametoindex(c.as_ptr());
            if ifindex == 0 {
                bail!("no interface {dev}: {}", std::io::Error::last_os_error());
            }
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            Ok(RawSender {
                fd: OwnedFd::from_raw_fd(fd),
                ifindex: ifindex as i32,
            })
        }
    }

    /// Send one frame.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: sending from a buffer we own to an address we built.
        let n = unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = self.ifindex;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&frame[..6]);
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            bail!("sendto: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// One frame an [`Capture`] saw.
#[derive(Clone, Debug)]
pub struct Captured {
    /// The frame was sent by this host (`PACKET_OUTGOING`), not received.
    pub outgoing: bool,
    /// The frame as it was on the wire: a VLAN tag the kernel had already moved out of the data
    /// (it untags before the capture sees a frame) is put back after the MAC addresses.
    pub frame: Vec<u8>,
}

/// An `AF_PACKET` capture of every frame one interface sends and receives. Open it on a thread
/// inside the interface's namespace (e.g. in [`crate::Netns::enter`]); reading works from any
/// thread.
pub struct Capture {
    fd: OwnedFd,
    /// Put a tag the kernel moved into the skb's metadata back into the frame.
    restore_tags: bool,
}

/// `struct tpacket_auxdata` (include/uapi/linux/if_packet.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AuxData {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    vlan_tci: u16,
    vlan_tpid: u16,
}

const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_OUTGOING: u8 = 4;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

impl Capture {
    /// Start capturing on interface `dev` of the calling thread's namespace; frames as they were
    /// on the wire.
    pub fn open(dev: &str) -> Result<Capture> {
        Self::open_with(dev, true)
    }

    /// Like [`Capture::open`], but frames as the kernel hands them to its stack: a VLAN tag it
    /// moved into the skb's metadata is not in them.
    pub fn open_untagged(dev: &str) -> Result<Capture> {
        Self::open_with(dev, false)
    }

    fn open_with(dev: &str, restore_tags: bool) -> Result<Capture> {
        let c = std::ffi::CString::new(dev)?;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain libc calls on a descriptor we own; the structs passed are ours, with their
        // true sizes.
        unsafe {
            let ifindex = libc::if_nametoindex(c.as_ptr());
            if ifindex == 0 {
                bail!("no interface {dev}: {}", std::io::Error::last_os_error());
            }
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as libc::c_int,
            );
            if fd < 0 {
                bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let on: libc::c_int = 1;
            let big: libc::c_int = 8 << 20;
            for (level, name, v) in [
                (libc::SOL_PACKET, PACKET_AUXDATA, &on),
                (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &big),
            ] {
                if libc::setsockopt(
                    fd.as_raw_fd(),
                    level,
                    name,
                    (v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                ) != 0
                {
                    bail!("AF_PACKET setsockopt: {}", std::io::Error::last_os_error());
                }
            }
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            if libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            ) != 0
            {
                bail!("AF_PACKET bind: {}", std::io::Error::last_os_error());
            }
            Ok(Capture { fd, restore_tags })
        }
    }

    /// The next frame, waiting at most `limit` for one.
    pub fn next(&self, limit: std::time::Duration) -> Result<Option<Captured>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = limit.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one pollfd we own.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            bail!("poll: {}", std::io::Error::last_os_error());
        }
        if r == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 65_536 + 64];
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut cbuf = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: recvmsg into buffers we own, with their true sizes; the control messages are
        // read within `msg_controllen` with the libc CMSG accessors.
        let (n, aux, pkttype) = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            let n = libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT);
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    return Ok(None);
                }
                bail!("recvmsg: {e}");
            }
            let mut aux = AuxData::default();
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                    aux = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<AuxData>());
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
            (n as usize, aux, sll.sll_pkttype)
        };
        buf.truncate(n);
        if self.restore_tags && aux.status & TP_STATUS_VLAN_VALID != 0 && buf.len() >= 12 {
            let tpid = if aux.status & TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.vlan_tpid
            } else {
                0x8100
            };
            let mut tag = tpid.to_be_bytes().to_vec();
            tag.extend_from_slice(&aux.vlan_tci.to_be_bytes());
            buf.splice(12..12, tag);
        }
        Ok(Some(Captured {
            outgoing: pkttype == PACKET_OUTGOING,
            frame: buf,
        }))
    }

    /// Every frame that arrives until none has for `quiet` (or `limit` passed).
    pub fn drain(
        &self,
        quiet: std::time::Duration,
        limit: std::time::Duration,
    ) -> Result<Vec<Captured>> {
        let deadline = std::time::Instant::now() + limit;
        let mut out = Vec::new();
        while std::time::Instant::now() < deadline {
            match self.next(quiet)? {
                Some(c) => out.push(c),
                None => break,
            }
        }
        Ok(out)
    }

    /// The next frame (sent or received) that `want` accepts, waiting at most `limit`.
    pub fn recv_matching(
        &self,
        limit: std::time::Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            if let Some(c) = self.next(left)? {
                if want(&c.frame) {
                    return Ok(Some(c.frame));
                }
            }
        }
    }
}
