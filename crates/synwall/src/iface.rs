//! What an interface must be for synwall's programs to judge its traffic, checked before anything
//! is attached (`synwall check-config`, and every node start).
//!
//! - Its frames start with an Ethernet header: both programs read the EtherType at bytes 12-13.
//!   On an L3 device (tun, WireGuard, GRE, IPIP, sit, PPP: no link-layer header) those bytes are
//!   the sender's address, every packet would be `pass_not_ip`, and every SYN would reach the
//!   kernel unjudged. Such an interface is refused.
//! - An edge in native mode on a NIC that strips VLAN tags into the receive descriptor
//!   (rx-vlan-offload) never sees the tag, so its SYN+ACK leaves untagged and is lost on a trunk.
//!   When VLAN devices sit on the interface (tagged traffic is expected) that is a warning, with the
//!   fix.
//!
//! Both are read with ioctls on a socket of the caller's network namespace (not through /sys,
//! which shows the namespace that mounted it).

use anyhow::{bail, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ARPHRD_ETHER`: Ethernet (also veth, bridges, bonds, VLAN and macvlan devices, tap, gretap).
pub const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK`: the loopback device, whose frames carry an Ethernet header too.
pub const ARPHRD_LOOPBACK: u16 = 772;

/// The name of a link type (`include/uapi/linux/if_arp.h`), for messages.
fn link_type_name(t: u16) -> &'static str {
    match t {
        ARPHRD_ETHER => "Ethernet",
        32 => "InfiniBand",
        512 => "PPP",
        768 => "IPIP tunnel",
        769 => "IPv6-in-IPv6 tunnel",
        776 => "sit (IPv6-in-IPv4) tunnel",
        778 => "GRE tunnel",
        ARPHRD_LOOPBACK => "loopback",
        823 => "IPv6 GRE tunnel",
        65534 => "no link-layer header (tun, WireGuard)",
        _ => "not Ethernet",
    }
}

/// A datagram socket to run interface ioctls on, in the caller's network namespace.
fn ioctl_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned by the returned value.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` naming `iface`.
fn ifreq(iface: &str) -> Result<libc::ifreq> {
    // SAFETY: ifreq is plain data; all zero is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    if iface.is_empty() || iface.len() >= r.ifr_name.len() || iface.contains('\0') {
        bail!("{iface:?} is not an interface name");
    }
    for (d, s) in r.ifr_name.iter_mut().zip(iface.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

/// The link type of `iface` (`dev->type`, an `ARPHRD_*` value), as `SIOCGIFHWADDR` reports it.
pub fn link_type(iface: &str) -> Result<u16> {
    let s = ioctl_socket()?;
    let mut r = ifreq(iface)?;
    // SAFETY: SIOCGIFHWADDR fills the ifreq we own.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFHWADDR, &mut r) } != 0 {
        bail!(
            "cannot read the link type of {iface}: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: SIOCGIFHWADDR set the hardware-address member of the union.
    Ok(unsafe { r.ifr_ifru.ifru_hwaddr.sa_family })
}

/// Refuse an interface whose frames do not start with an Ethernet header.
pub fn check_ethernet(iface: &str) -> Result<()> {
    let t = link_type(iface)?;
    if t == ARPHRD_ETHER || t == ARPHRD_LOOPBACK {
        return Ok(());
    }
    bail!(
        "interface {iface} is not an Ethernet device (link type {t}: {}): synwall's programs parse \
         Ethernet frames, and on it every packet, every SYN included, would pass unjudged. Attach \
         synwall where the packets arrive with an Ethernet header (the physical or veth device the \
         tunnel runs over; its traffic is then the tunnel's outer packets, see README \"Where the \
         delivered destination differs\")",
        link_type_name(t)
    )
}

/// `ETHTOOL_GFLAGS` and its `ETH_FLAG_RXVLAN` bit (include/uapi/linux/ethtool.h).
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

/// Does `iface` strip 802.1Q tags on receive (rx-vlan-offload, `NETIF_F_HW_VLAN_CTAG_RX`)?
/// `None` if the driver does not say (no ethtool support).
pub fn rx_vlan_offload(iface: &str) -> Option<bool> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let s = ioctl_socket().ok()?;
    let mut r = ifreq(iface).ok()?;
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GFLAGS,
        data: 0,
    };
    r.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GFLAGS writes one ethtool_value, which `v` is and which
    // outlives the call.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCETHTOOL, &mut r) } != 0 {
        return None;
    }
    Some(v.data & ETH_FLAG_RXVLAN != 0)
}

/// The 802.1Q devices on top of `iface` in this network namespace, from the 8021q module's table
/// (`/proc/net/vlan/config`: a header, then `NAME | VID | LOWER` lines); none without the module.
pub fn vlan_devices_on(iface: &str) -> Vec<String> {
    // thread-self: the namespace of this thread, as for the ioctls.
    let text = std::fs::read_to_string("/proc/thread-self/net/vlan/config").unwrap_or_default();
    parse_vlan_config(&text, iface)
}

fn parse_vlan_config(text: &str, iface: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            (f.len() == 3 && f[2] == iface && f[1].parse::<u16>().is_ok()).then(|| f[0].to_string())
        })
        .collect()
}

/// The warning for an edge attached natively to `iface`, if its NIC strips the tags of the VLAN
/// traffic it is expected to carry.
pub fn native_vlan_warning(iface: &str) -> Option<String> {
    let vlans = vlan_devices_on(iface);
    if vlans.is_empty() {
        return None;
    }
    vlan_warning(iface, &vlans, rx_vlan_offload(iface))
}

/// [`native_vlan_warning`] from what it found: the VLAN devices on `iface` and its offload flag.
fn vlan_warning(iface: &str, vlans: &[String], rx_vlan_offload: Option<bool>) -> Option<String> {
    if vlans.is_empty() || rx_vlan_offload != Some(true) {
        return None;
    }
    Some(format!(
        "edge interface {iface} strips VLAN tags on receive (rx-vlan-offload on) and carries VLAN \
         traffic ({}): in native XDP the edge never sees the tag, and its SYN+ACK to a tagged SYN \
         leaves untagged and is lost. Fix: `ethtool -K {iface} rxvlan off` (keep it in the \
         interface's configuration), or edge.xdp_mode = \"generic\"; see README troubleshooting",
        vlans.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_config_lines_name_the_devices_on_an_interface() {
        let text = "VLAN Dev name\t | VLAN ID\nName-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n\
                    eth0.7         | 7  | eth0\neth1.100       | 100  | eth1\nvoice          | 42  | eth0\n";
        assert_eq!(parse_vlan_config(text, "eth0"), vec!["eth0.7", "voice"]);
        assert_eq!(parse_vlan_config(text, "eth1"), vec!["eth1.100"]);
        assert!(parse_vlan_config(text, "eth2").is_empty());
        assert!(parse_vlan_config("", "eth0").is_empty());
    }

    #[test]
    fn vlan_warning_needs_vlan_devices_and_the_offload() {
        let vlans = vec!["eth0.7".to_string(), "eth0.8".to_string()];
        let w = vlan_warning("eth0", &vlans, Some(true)).unwrap();
        assert!(w.contains("eth0.7, eth0.8"), "{w}");
        assert!(w.contains("`ethtool -K eth0 rxvlan off`"), "{w}");
        assert_eq!(vlan_warning("eth0", &vlans, Some(false)), None);
        assert_eq!(vlan_warning("eth0", &vlans, None), None);
        assert_eq!(vlan_warning("eth0", &[], Some(true)), None);
    }

    /// The flags and link types as the kernel reports them, on devices made in a namespace:
    /// a veth (Ethernet) whose rx-vlan-offload `ethtool -K` turns off, and a tun device (no
    /// link-layer header), which is refused. (This kernel has no 8021q module, so the VLAN
    /// devices of the warning cannot be made here; the table's parser is tested above.)
    #[test]
    fn link_types_and_rx_vlan_offload_from_the_kernel() {
        if !synwall_testkit::require_privileges("link_types_and_rx_vlan_offload_from_the_kernel") {
            return;
        }
        let p = synwall_testkit::unique_prefix();
        let ns = synwall_testkit::Netns::create(&format!("{p}i")).unwrap();
        let (veth, peer, tun) = (format!("{p}v"), format!("{p}w"), format!("{p}t"));
        ns.run(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer,
        ])
        .unwrap();
        ns.run(&["ip", "tuntap", "add", "dev", &tun, "mode", "tun"])
            .unwrap();
        let read = |ns: &synwall_testkit::Netns| {
            let (veth, tun) = (veth.clone(), tun.clone());
            ns.enter(move || {
                (
                    link_type(&veth).unwrap(),
                    rx_vlan_offload(&veth),
                    link_type(&tun).unwrap(),
                    check_ethernet(&veth).is_ok(),
                    check_ethernet(&tun).map_err(|e| e.to_string()),
                )
            })
            .unwrap()
        };
        let (veth_type, offload, tun_type, veth_ok, tun_check) = read(&ns);
        assert_eq!((veth_type, tun_type), (ARPHRD_ETHER, 65534));
        assert_eq!(offload, Some(true), "veth strips tags by default");
        assert!(veth_ok);
        let err = tun_check.unwrap_err();
        assert!(
            err.contains(&format!(
                "{tun} is not an Ethernet device (link type 65534: no link-layer header"
            )),
            "{err}"
        );
        ns.run(&["ethtool", "-K", &veth, "rxvlan", "off"]).unwrap();
        assert_eq!(read(&ns).1, Some(false), "after ethtool -K rxvlan off");
    }

    #[test]
    fn loopback_is_ethernet_framed() {
        // `lo` exists in every namespace; its frames carry an Ethernet header.
        assert_eq!(link_type("lo").unwrap(), ARPHRD_LOOPBACK);
        check_ethernet("lo").unwrap();
        assert!(link_type("no-such-if0").is_err());
        assert!(ifreq("a-name-much-too-long-for-linux").is_err());
    }
}
