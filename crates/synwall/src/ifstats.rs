//! An interface's driver statistics, what `ethtool -S IFACE` shows, read with the SIOCETHTOOL
//! ioctl (ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS, ETHTOOL_GSTATS; no privileges needed). synwall
//! reads them for what its own counters cannot see: frames the driver dropped after XDP decided.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

/// `(name, value)` of every driver statistic of `iface`, in the driver's order. An interface
/// without driver statistics (`lo`) has none: an empty list, not an error.
pub fn driver_stats(iface: &str) -> io::Result<Vec<(String, u64)>> {
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{iface:?} is not an interface name"),
        ));
    }
    // SAFETY: socket(2) with constant arguments; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };

    // struct ethtool_sset_info { u32 cmd; u32 reserved; u64 sset_mask; u32 data[]; }
    let mut info = [0u64; 3];
    set_u32(&mut info, 0, ETHTOOL_GSSET_INFO);
    info[1] = 1u64 << ETH_SS_STATS;
    match ethtool(&sock, iface, info.as_mut_ptr().cast()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    // The kernel clears sset_mask bits of sets it has no count for.
    if info[1] & (1u64 << ETH_SS_STATS) == 0 {
        return Ok(Vec::new());
    }
    let n = get_u32(&info, 4) as usize;
    if n == 0 {
        return Ok(Vec::new());
    }

    // struct ethtool_gstrings { u32 cmd; u32 string_set; u32 len; u8 data[len * 32]; }
    let mut strings = vec![0u32; 3 + n * ETH_GSTRING_LEN / 4];
    strings[0] = ETHTOOL_GSTRINGS;
    strings[1] = ETH_SS_STATS;
    strings[2] = n as u32;
    ethtool(&sock, iface, strings.as_mut_ptr().cast())?;
    // struct ethtool_stats { u32 cmd; u32 n_stats; u64 data[n_stats]; }
    let mut stats = vec![0u64; 1 + n];
    set_u32(&mut stats, 0, ETHTOOL_GSTATS);
    set_u32(&mut stats, 1, n as u32);
    ethtool(&sock, iface, stats.as_mut_ptr().cast())?;

    let bytes: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(bytes
        .chunks(ETH_GSTRING_LEN)
        .zip(&stats[1..])
        .map(|(name, &v)| {
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            (String::from_utf8_lossy(&name[..end]).into_owned(), v)
        })
        .collect())
}

/// The `i`-th 32-bit word of a buffer of 64-bit words (native layout, as the kernel reads it).
fn set_u32(buf: &mut [u64], i: usize, v: u32) {
    let mut w = buf[i / 2].to_ne_bytes();
    w[(i % 2) * 4..(i % 2) * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    buf[i / 2] = u64::from_ne_bytes(w);
}

fn get_u32(buf: &[u64], i: usize) -> u32 {
    let w = buf[i / 2].to_ne_bytes();
    u32::from_ne_bytes(w[(i % 2) * 4..(i % 2) * 4 + 4].try_into().expect("4 bytes"))
}

/// One SIOCETHTOOL request on `iface` with the command buffer at `data`.
fn ethtool(sock: &OwnedFd, iface: &str, data: *mut libc::c_char) -> io::Result<()> {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(iface.as_bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = data;
    // SAFETY: the request reads and writes the buffer behind `data`, which the caller sized for
    // the command it holds (the counts in it bound what the kernel writes).
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// XDP_TX frames the driver of `iface` failed to send: the sum of its statistics named
/// `*xdp_tx_err*` (veth: `rx_queue_N_xdp_tx_errors`). `None` when the driver reports none.
pub fn xdp_tx_errors(iface: &str) -> Option<u64> {
    let stats = driver_stats(iface).ok()?;
    let hits: Vec<u64> = stats
        .iter()
        .filter(|(name, _)| name.contains("xdp_tx_err"))
        .map(|&(_, v)| v)
        .collect();
    (!hits.is_empty()).then(|| hits.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use synwall_testkit::{require_privileges, unique_prefix, Netns};

    /// What `ethtool -S` (the real tool) prints for a veth in a namespace is what we read, and
    /// `lo` (no driver statistics) is an empty list.
    #[test]
    fn driver_stats_match_ethtool() {
        if !require_privileges("driver_stats_match_ethtool") {
            return;
        }
        let ns = Netns::create(&format!("{}st", unique_prefix())).unwrap();
        ns.run(&[
            "ip", "link", "add", "sta0", "type", "veth", "peer", "name", "stb0",
        ])
        .unwrap();
        let out = ns.run(&["ethtool", "-S", "sta0"]).unwrap();
        let want: Vec<(String, u64)> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.trim().split_once(": ")?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect();
        assert!(
            want.iter().any(|(k, _)| k.ends_with("xdp_tx_errors")),
            "{want:?}"
        );
        let (got, lo, tx_err, missing) = ns
            .enter(|| {
                (
                    driver_stats("sta0").unwrap(),
                    driver_stats("lo").unwrap(),
                    xdp_tx_errors("sta0"),
                    driver_stats("nosuch0").map_err(|e| e.kind()),
                )
            })
            .unwrap();
        assert_eq!(got, want);
        assert!(lo.is_empty(), "{lo:?}");
        assert_eq!(tx_err, Some(0));
        assert!(missing.is_err());
    }
}
