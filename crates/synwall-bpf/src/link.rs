//! BPF links: attaching a loaded program to an interface (XDP, tcx ingress), pinning, adopting
//! and replacing the program behind a link.

use crate::{pin, Error, Result};
use libbpf_rs::libbpf_sys;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How an XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic (skb) path (`XDP_FLAGS_SKB_MODE`); works on any device.
    Generic,
}

/// How XDP is attached to interface `ifindex` (in the caller's network namespace): native if a
/// driver program is attached, else generic if an skb one is; `None` without XDP.
pub fn xdp_mode_of(ifindex: u32) -> Result<Option<XdpMode>> {
    // SAFETY: zeroed options of the size we declare.
    let mut opts: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: `opts` outlives the call, which fills it.
    let r = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    pin::os(r, "query the XDP programs of an interface")?;
    Ok(if opts.drv_prog_id != 0 {
        Some(XdpMode::Native)
    } else if opts.skb_prog_id != 0 {
        Some(XdpMode::Generic)
    } else {
        None
    })
}

/// A BPF link (XDP or tcx ingress). Dropping it closes this process's descriptor: the program
/// detaches unless the link is also pinned (see [`pin`]), which is how a restart keeps it running.
#[derive(Debug)]
pub struct Link {
    fd: OwnedFd,
}

/// An XDP attachment.
pub type XdpLink = Link;
/// A tcx ingress attachment.
pub type TcxLink = Link;

impl Link {
    /// Drop this descriptor (the program detaches if the link is not pinned).
    pub fn detach(self) {}

    /// The link's file descriptor.
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Attach the loaded XDP program `prog_fd` to interface `ifindex` of the calling thread's
    /// network namespace (also for programs of other crates, e.g. the baselines).
    pub fn attach_xdp(prog_fd: i32, ifindex: u32, mode: XdpMode) -> Result<XdpLink> {
        let flags = match mode {
            XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        };
        Link::create(
            prog_fd,
            ifindex,
            libbpf_sys::BPF_XDP,
            flags,
            "attach XDP (bpf_link_create)",
        )
    }

    /// Attach the loaded tc program `prog_fd` at tcx ingress of interface `ifindex`.
    pub fn attach_tcx(prog_fd: i32, ifindex: u32) -> Result<TcxLink> {
        Link::create(
            prog_fd,
            ifindex,
            libbpf_sys::BPF_TCX_INGRESS,
            0,
            "attach tcx ingress (bpf_link_create)",
        )
    }

    fn create(
        prog_fd: i32,
        ifindex: u32,
        attach: u32,
        flags: u32,
        what: &'static str,
    ) -> Result<Link> {
        // SAFETY: the options struct is zeroed then sized as libbpf requires.
        let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
        opts.flags = flags;
        // SAFETY: plain syscall wrapper; `opts` outlives the call.
        let fd = unsafe { libbpf_sys::bpf_link_create(prog_fd, ifindex as i32, attach, &opts) };
        if fd < 0 {
            return Err(Error::Os {
                what,
                source: std::io::Error::from_raw_os_error(-fd),
            });
        }
        // SAFETY: `fd` is a new link descriptor that nothing else owns.
        Ok(Link {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Make the link outlive this process: pin it at `path` (on a bpffs).
    pub fn pin(&self, path: &std::path::Path) -> Result<()> {
        let c = pin::cpath(path)?;
        // SAFETY: plain syscall wrapper; `c` is NUL-terminated and outlives the call.
        let r = unsafe { libbpf_sys::bpf_obj_pin(self.fd(), c.as_ptr()) };
        pin::os(r, "pin link")
    }

    /// Open a link pinned at `path` (by an earlier process).
    pub fn open_pinned(path: &std::path::Path) -> Result<Link> {
        Ok(Link {
            fd: pin::obj_get(path, "open pinned link")?,
        })
    }

    /// Detach the program from its hook now, whoever else holds or pins the link.
    pub fn force_detach(&self) -> Result<()> {
        // SAFETY: plain syscall wrapper on our descriptor.
        let r = unsafe { libbpf_sys::bpf_link_detach(self.fd()) };
        pin::os(r, "detach link")
    }

    /// The interface the link is attached to (0 once detached).
    pub fn ifindex(&self) -> Result<u32> {
        // SAFETY: zeroed info struct of the size we pass.
        let mut info: libbpf_sys::bpf_link_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libbpf_sys::bpf_link_info>() as u32;
        // SAFETY: `info` is `len` bytes and outlives the call.
        let r = unsafe { libbpf_sys::bpf_link_get_info_by_fd(self.fd(), &mut info, &mut len) };
        pin::os(r, "read link info")?;
        // SAFETY: the kernel filled the union member of this link's type.
        Ok(unsafe {
            match info.type_ {
                libbpf_sys::BPF_LINK_TYPE_XDP => info.__bindgen_anon_1.xdp.ifindex,
                libbpf_sys::BPF_LINK_TYPE_TCX => info.__bindgen_anon_1.tcx.ifindex,
                _ => 0,
            }
        })
    }

    /// Swap the program behind the link atomically (no packet sees no program).
    pub(crate) fn update(&self, prog_fd: i32) -> Result<()> {
        // SAFETY: plain syscall wrapper; no options.
        let r = unsafe { libbpf_sys::bpf_link_update(self.fd(), prog_fd, std::ptr::null()) };
        pin::os(r, "replace the program of a link (bpf_link_update)")
    }
}
