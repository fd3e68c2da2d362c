//! Hand-made Ethernet frames (IPv4/IPv6 + TCP with options, checksums filled in), an `AF_PACKET`
//! socket to send them out of an interface (for ACKs no SYN asked for, spoofed SYN floods,
//! crafted hostile frames), and an `AF_PACKET` capture of what an interface sends and receives.
//! Only ever aimed at addresses inside a lab.

use anyhow::{bail, Result};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use synwall_wire::checksum::{checksum, finish, pseudo_v4, pseudo_v6, sum};

/// TCP flags (the wire crate's, re-exported for the tests that build frames).
pub use synwall_wire::tcp::{ACK, CWR, ECE, FIN, RST, SYN};

/// One TCP segment to put in a frame.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Destination and source MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Source address (same family as `dst`).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags.
    pub flags: u8,
    /// Window.
    pub window: u16,
    /// TCP options (padded with NOPs... by the caller to a multiple of 4, or by `frame`).
    pub options: Vec<u8>,
    /// Payload.
    pub payload: Vec<u8>,
}

/// MSS option.
pub fn opt_mss(mss: u16) -> Vec<u8> {
    let m = mss.to_be_bytes();
    vec![2, 4, m[0], m[1]]
}

/// Window-scale option (NOP-padded).
pub fn opt_wscale(shift: u8) -> Vec<u8> {
    vec![1, 3, 3, shift]
}

/// SACK-Permitted (NOP-padded).
pub fn opt_sack_permitted() -> Vec<u8> {
    vec![1, 1, 4, 2]
}

/// Timestamps (NOP-padded).
pub fn opt_timestamps(tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut v = vec![1, 1, 8, 10];
    v.extend_from_slice(&tsval.to_be_bytes());
    v.extend_from_slice(&tsecr.to_be_bytes());
    v
}

impl Segment {
    /// The Ethernet frame, checksums computed.
    pub fn frame(&self) -> Vec<u8> {
        let mut opts = self.options.clone();
        while opts.len() % 4 != 0 {
            opts.push(0);
        }
        let mut tcp = Vec::with_capacity(20 + opts.len() + self.payload.len());
        tcp.extend_from_slice(&self.sport.to_be_bytes());
        tcp.extend_from_slice(&self.dport.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        tcp.push((((20 + opts.len()) / 4) as u8) << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&self.window.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(&opts);
        tcp.extend_from_slice(&self.payload);
        let mut f = Vec::with_capacity(14 + 40 + tcp.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        let pseudo = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&[0x08, 0x00]);
                let mut ip = vec![0x45, 0];
                ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
                ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                let c = checksum(&ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&ip);
                pseudo_v4(&s.octets(), &d.octets(), 6, tcp.len() as u16)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&[0x86, 0xdd]);
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                f.extend_from_slice(&[6, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                pseudo_v6(&s.octets(), &d.octets(), 6, tcp.len() as u32)
            }
            _ => panic!("mixed address families"),
        };
        let c = finish(sum(pseudo, &tcp));
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&tcp);
        f
    }
}

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
    /// Start capturing on interface `dev` of the calling thread's namespace.
    pub fn open(dev: &str) -> Result<Capture> {
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
            Ok(Capture { fd })
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
        if aux.status & TP_STATUS_VLAN_VALID != 0 && buf.len() >= 12 {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        for (src, dst) in [("10.66.1.2", "10.66.2.2"), ("fd66:1::2", "fd66:2::2")] {
            let s = Segment {
                dst_mac: [2, 0, 0, 0, 0, 1],
                src_mac: [2, 0, 0, 0, 0, 2],
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                sport: 40000,
                dport: 8080,
                seq: 7,
                ack: 9,
                flags: ACK,
                window: 1000,
                options: opt_timestamps(1, 2),
                payload: b"abc".to_vec(),
            };
            let f = s.frame();
            let (l3, l4) = if f[12] == 8 { (14, 34) } else { (14, 54) };
            let tcp_len = f.len() - l4;
            let mut p = Vec::new();
            if f[12] == 8 {
                assert_eq!(checksum(&f[l3..l4]), 0, "IPv4 header checksum");
                p.extend_from_slice(&f[l3 + 12..l3 + 20]);
                p.extend_from_slice(&[0, 6]);
                p.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            } else {
                p.extend_from_slice(&f[l3 + 8..l3 + 40]);
                p.extend_from_slice(&(tcp_len as u32).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, 6]);
            }
            assert_eq!(finish(sum(sum(0, &p), &f[l4..])), 0, "TCP checksum");
            assert_eq!(f[l4 + 12] >> 4, 8, "data offset");
        }
    }

    #[test]
    fn capture_sees_frames_with_their_vlan_tags() {
        if !crate::require_privileges("capture_sees_frames_with_their_vlan_tags") {
            return;
        }
        let p = crate::unique_prefix();
        let a = crate::Netns::create(&format!("{p}a")).unwrap();
        let b = crate::Netns::create(&format!("{p}b")).unwrap();
        crate::veth(&a, "va", &b, "vb").unwrap();
        let cap_b = b.enter(|| Capture::open("vb")).unwrap().unwrap();
        let (tx, cap_a) = a
            .enter(|| (RawSender::open("va").unwrap(), Capture::open("va").unwrap()))
            .unwrap();
        // A local-experimental EtherType, untagged and behind an 802.1Q tag (the receiving
        // kernel moves the tag out of the data; the capture puts it back).
        let mut plain = vec![0xff; 6];
        plain.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
        plain.extend_from_slice(b"synwall capture test, untagged.........");
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x88, 0xb5]);
        tagged.extend_from_slice(b"synwall capture test, tagged...........");
        tx.send(&plain).unwrap();
        tx.send(&tagged).unwrap();
        let limit = std::time::Duration::from_secs(2);
        let got: Vec<Captured> = cap_b
            .drain(std::time::Duration::from_millis(300), limit)
            .unwrap()
            .into_iter()
            .filter(|c| c.frame.windows(20).any(|w| w == b"synwall capture test"))
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|c| !c.outgoing));
        assert_eq!(got[0].frame, plain);
        assert_eq!(got[1].frame, tagged);
        let sent: Vec<Captured> = cap_a
            .drain(std::time::Duration::from_millis(100), limit)
            .unwrap()
            .into_iter()
            .filter(|c| c.frame == plain || c.frame == tagged)
            .collect();
        assert_eq!(sent.len(), 2, "the sender's side sees both going out");
        assert!(sent.iter().all(|c| c.outgoing));
    }
}
