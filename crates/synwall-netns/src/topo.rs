//! The lab topology of the end-to-end tests and the demo:
//!
//! ```text
//!  client netns            edge netns (router)            backend netns
//!  c0 10.66.1.2/24  ──veth── e0 10.66.1.1   e1 10.66.2.1 ──veth── b0 10.66.2.2/24
//!     fd66:1::2/64             fd66:1::1     fd66:2::1              fd66:2::2/64
//! ```
//!
//! The client and the backend route everything through the edge; the edge forwards (IPv4 and
//! IPv6) with reverse-path filtering off. The backend has `tcp_syncookies = 1` (the kfunc needs
//! it). Attaching programs is the caller's job: `synwall edge` on `e0`, `synwall backend` on
//! `b0`, and a pass-everything XDP program on `c0` (see [`pass_all_args`]), since a veth
//! delivers XDP_TX frames only to a peer that runs XDP itself.

use crate::{veth, Netns};
use anyhow::{Context, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

/// Client interface.
pub const CLIENT_IF: &str = "c0";
/// Edge interface toward the client (the XDP edge runs here).
pub const EDGE_CLIENT_IF: &str = "e0";
/// Edge interface toward the backend.
pub const EDGE_BACKEND_IF: &str = "e1";
/// Backend interface (tc ingress runs here).
pub const BACKEND_IF: &str = "b0";
/// Client IPv4 address.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 66, 1, 2);
/// Backend (service) IPv4 address.
pub const BACKEND_V4: Ipv4Addr = Ipv4Addr::new(10, 66, 2, 2);
/// Client IPv6 address.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd66, 1, 0, 0, 0, 0, 0, 2);
/// Backend (service) IPv6 address.
pub const BACKEND_V6: Ipv6Addr = Ipv6Addr::new(0xfd66, 2, 0, 0, 0, 0, 0, 2);

/// The client address of a family.
pub fn client_addr(v6: bool) -> IpAddr {
    if v6 {
        CLIENT_V6.into()
    } else {
        CLIENT_V4.into()
    }
}

/// The backend (service) address of a family.
pub fn backend_addr(v6: bool) -> IpAddr {
    if v6 {
        BACKEND_V6.into()
    } else {
        BACKEND_V4.into()
    }
}

/// `--service` arguments protecting `port` on the backend's two addresses.
pub fn service_args(port: u16) -> Vec<String> {
    vec![
        "--service".into(),
        format!("{BACKEND_V4}/32:{port}"),
        "--service".into(),
        format!("[{BACKEND_V6}/128]:{port}"),
    ]
}

/// Arguments for `synwall edge` as a pass-everything XDP program on `iface`: its only service is
/// an address nothing in a lab uses, so every frame is `pass_unprotected`.
pub fn pass_all_args(iface: &str, secret_file: &str) -> Vec<String> {
    [
        "edge",
        "--iface",
        iface,
        "--service",
        "10.66.255.255/32:1",
        "--secret-file",
        secret_file,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Make `ns` a router: IPv4 and IPv6 forwarding on, reverse-path filtering off.
pub fn router(ns: &Netns) -> Result<()> {
    ns.sysctl("net.ipv4.ip_forward", "1")?;
    ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    for k in ["all", "default"] {
        ns.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0")?;
    }
    Ok(())
}

/// The MAC address of `dev` in `ns`.
pub fn mac(ns: &Netns, dev: &str) -> Result<[u8; 6]> {
    let out = ns.run(&["ip", "-br", "link", "show", "dev", dev])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = text
        .split_whitespace()
        .nth(2)
        .with_context(|| format!("no MAC for {dev}: {text:?}"))?;
    let mut m = [0u8; 6];
    let parts: Vec<&str> = field.split(':').collect();
    anyhow::ensure!(parts.len() == 6, "bad MAC {field:?}");
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC {field:?}"))?;
    }
    Ok(m)
}

/// client | edge | backend, deleted on drop.
pub struct EdgeLab {
    /// The client namespace.
    pub client: Netns,
    /// The edge namespace (a router).
    pub edge: Netns,
    /// The backend namespace.
    pub backend: Netns,
}

impl EdgeLab {
    /// TCP listeners on `port` of the backend's two addresses (IPv4, then IPv6).
    pub fn backend_listeners(&self, port: u16) -> Result<Vec<(SocketAddr, TcpListener)>> {
        [false, true]
            .into_iter()
            .map(|v6| {
                let addr = SocketAddr::new(backend_addr(v6), port);
                Ok((addr, self.backend.listen(addr)?))
            })
            .collect()
    }

    /// Build the three namespaces, links, addresses, routes and sysctls.
    pub fn build(prefix: &str) -> Result<EdgeLab> {
        let lab = EdgeLab {
            client: Netns::create(&format!("{prefix}c"))?,
            edge: Netns::create(&format!("{prefix}e"))?,
            backend: Netns::create(&format!("{prefix}b"))?,
        };
        router(&lab.edge)?;
        lab.backend.sysctl("net.ipv4.tcp_syncookies", "1")?;
        veth(&lab.client, CLIENT_IF, &lab.edge, EDGE_CLIENT_IF)?;
        veth(&lab.edge, EDGE_BACKEND_IF, &lab.backend, BACKEND_IF)?;
        lab.client.addr(CLIENT_IF, "10.66.1.2/24")?;
        lab.client.addr(CLIENT_IF, "fd66:1::2/64")?;
        lab.edge.addr(EDGE_CLIENT_IF, "10.66.1.1/24")?;
        lab.edge.addr(EDGE_CLIENT_IF, "fd66:1::1/64")?;
        lab.edge.addr(EDGE_BACKEND_IF, "10.66.2.1/24")?;
        lab.edge.addr(EDGE_BACKEND_IF, "fd66:2::1/64")?;
        lab.backend.addr(BACKEND_IF, "10.66.2.2/24")?;
        lab.backend.addr(BACKEND_IF, "fd66:2::2/64")?;
        lab.client.route(&["default", "via", "10.66.1.1"])?;
        lab.client.route(&["::/0", "via", "fd66:1::1"])?;
        lab.backend.route(&["default", "via", "10.66.2.1"])?;
        lab.backend.route(&["::/0", "via", "fd66:2::1"])?;
        Ok(lab)
    }
}
