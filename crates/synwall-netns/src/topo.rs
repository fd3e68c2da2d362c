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

/// The service address of [`TwoEdgeLab`] (on the backend's loopback), IPv4.
pub const TWO_EDGE_SVC_V4: Ipv4Addr = Ipv4Addr::new(10, 67, 100, 1);
/// The service address of [`TwoEdgeLab`], IPv6.
pub const TWO_EDGE_SVC_V6: Ipv6Addr = Ipv6Addr::new(0xfd67, 0x100, 0, 0, 0, 0, 0, 1);

/// Two edges in front of one backend, with handshakes that cross them: every IPv4 SYN goes
/// through edge 1 and the rest of its connection (the handshake ACK first) through edge 2; IPv6
/// the other way round. A node that cannot validate the other edge's cookies is seen at once.
///
/// ```text
///  client c0 10.67.1.2 ── r0 [rtr] r1 ── x1 [edge1] y1 ── b1 ┐
///         fd67:1::2             r2 ── x2 [edge2] y2 ── b2 ┴ [backend] lo 10.67.100.1, fd67:100::1
/// ```
///
/// `rtr` marks SYNs with nftables and routes by mark (tables 101 and 102); the backend answers
/// through edge 1. The edges run their XDP program in generic mode (a veth delivers native
/// XDP_TX only to a peer with an XDP program; `rtr` has none). Interfaces: [`Self::EDGE_IF`].
pub struct TwoEdgeLab {
    /// The client namespace.
    pub client: Netns,
    /// The router.
    pub rtr: Netns,
    /// Edge 1 and edge 2 (routers).
    pub edges: [Netns; 2],
    /// The backend, with the service addresses on its loopback.
    pub backend: Netns,
}

impl TwoEdgeLab {
    /// The interface of edge `i` (0 or 1) the SYNs and ACKs arrive on.
    pub const EDGE_IF: [&'static str; 2] = ["x1", "x2"];
    /// The backend's interfaces (toward edge 1 and edge 2).
    pub const BACKEND_IFS: [&'static str; 2] = ["b1", "b2"];

    /// Build the namespaces, links, addresses, routes and the SYN marks.
    pub fn build(prefix: &str) -> Result<TwoEdgeLab> {
        let lab = TwoEdgeLab {
            client: Netns::create(&format!("{prefix}c"))?,
            rtr: Netns::create(&format!("{prefix}r"))?,
            edges: [
                Netns::create(&format!("{prefix}e1"))?,
                Netns::create(&format!("{prefix}e2"))?,
            ],
            backend: Netns::create(&format!("{prefix}b"))?,
        };
        let (c, r, b) = (&lab.client, &lab.rtr, &lab.backend);
        router(r)?;
        router(b)?;
        b.sysctl("net.ipv4.tcp_syncookies", "1")?;
        veth(c, "c0", r, "r0")?;
        c.addr("c0", "10.67.1.2/24")?;
        c.addr("c0", "fd67:1::2/64")?;
        r.addr("r0", "10.67.1.1/24")?;
        r.addr("r0", "fd67:1::1/64")?;
        c.route(&["default", "via", "10.67.1.1"])?;
        c.route(&["::/0", "via", "fd67:1::1"])?;
        for (i, e) in lab.edges.iter().enumerate() {
            let n = i + 1;
            router(e)?;
            let (ri, x, y, bi) = (
                format!("r{n}"),
                format!("x{n}"),
                format!("y{n}"),
                format!("b{n}"),
            );
            veth(r, &ri, e, &x)?;
            veth(e, &y, b, &bi)?;
            r.addr(&ri, &format!("10.67.1{n}.1/24"))?;
            r.addr(&ri, &format!("fd67:1{n}::1/64"))?;
            e.addr(&x, &format!("10.67.1{n}.2/24"))?;
            e.addr(&x, &format!("fd67:1{n}::2/64"))?;
            e.addr(&y, &format!("10.67.2{n}.1/24"))?;
            e.addr(&y, &format!("fd67:2{n}::1/64"))?;
            b.addr(&bi, &format!("10.67.2{n}.2/24"))?;
            b.addr(&bi, &format!("fd67:2{n}::2/64"))?;
            e.route(&["default", "via", &format!("10.67.1{n}.1")])?;
            e.route(&["::/0", "via", &format!("fd67:1{n}::1")])?;
            e.route(&[
                &format!("{TWO_EDGE_SVC_V4}/32"),
                "via",
                &format!("10.67.2{n}.2"),
            ])?;
            e.route(&[
                &format!("{TWO_EDGE_SVC_V6}/128"),
                "via",
                &format!("fd67:2{n}::2"),
            ])?;
            // Marked SYNs of table 10n go through this edge.
            let table = format!("10{n}");
            r.route(&[
                &format!("{TWO_EDGE_SVC_V4}/32"),
                "via",
                &format!("10.67.1{n}.2"),
                "table",
                &table,
            ])?;
            r.route(&[
                &format!("{TWO_EDGE_SVC_V6}/128"),
                "via",
                &format!("fd67:1{n}::2"),
                "table",
                &table,
            ])?;
            for fam in ["-4", "-6"] {
                r.run(&[
                    "ip",
                    fam,
                    "rule",
                    "add",
                    "fwmark",
                    &n.to_string(),
                    "table",
                    &table,
                ])?;
            }
        }
        b.run(&[
            "ip",
            "addr",
            "add",
            &format!("{TWO_EDGE_SVC_V4}/32"),
            "dev",
            "lo",
        ])?;
        b.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{TWO_EDGE_SVC_V6}/128"),
            "dev",
            "lo",
        ])?;
        b.route(&["default", "via", "10.67.21.1"])?;
        b.route(&["::/0", "via", "fd67:21::1"])?;
        // Unmarked (everything but SYNs): IPv4 through edge 2, IPv6 through edge 1.
        r.route(&[&format!("{TWO_EDGE_SVC_V4}/32"), "via", "10.67.12.2"])?;
        r.route(&[&format!("{TWO_EDGE_SVC_V6}/128"), "via", "fd67:11::2"])?;
        crate::nft::load(
            r,
            "table inet swcross {
  chain pre { type filter hook prerouting priority -150; policy accept;
    iifname \"r0\" meta nfproto ipv4 tcp flags & (syn | ack) == syn meta mark set 1
    iifname \"r0\" meta nfproto ipv6 tcp flags & (syn | ack) == syn meta mark set 2
  }
}",
        )?;
        Ok(lab)
    }

    /// The service address of a family.
    pub fn service(v6: bool) -> IpAddr {
        if v6 {
            TWO_EDGE_SVC_V6.into()
        } else {
            TWO_EDGE_SVC_V4.into()
        }
    }
}
