//! The deployment the tests run against: who the client and the services are, what is protected,
//! the MACs, the master secret and the epoch. Tests that need other values say so where they
//! define them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_engine::{Counter, Counters, EngineConfig, Service, ServiceSet};

pub use synwall_netns::frame::{CLIENT_MAC, ROUTER_MAC};

/// The master secret of the engine and BPF tests.
pub const MASTER: [u8; 32] = [0x5a; 32];
/// Their epoch: the one the programs under test run in (with epochs of [`P`] seconds: in 2027;
/// see [`crate::clock`]).
pub const EPOCH: u64 = 500_000;
/// Epoch length of the programs under test, seconds: an hour, so a whole test binary runs
/// within the epoch [`crate::clock::test_clock`] puts it in.
pub const P: u64 = 3600;
/// The accepted master secret of the salt-ring tests (SPEC 2a).
pub const ACCEPTED: [u8; 32] = [0x77; 32];
/// The fill byte of the secret file the network-namespace labs' nodes share
/// ([`write_secret`]).
pub const LAB_SECRET_FILL: u8 = 0x42;

/// The salts of [`EPOCH`] (and the one before).
pub fn keys() -> EpochKeys {
    keys_at(EPOCH)
}

/// The salts of `epoch`.
pub fn keys_at(epoch: u64) -> EpochKeys {
    EpochKeys::derive(&MasterSecret(MASTER), epoch)
}

/// The client of the crafted frames (IPv4), outside every protected prefix.
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// A protected IPv4 service (ports 80, 443, 1000-2000 in [`services`]).
pub const SERVICE4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// The client of the crafted frames (IPv6), outside every protected prefix.
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x10);
/// A protected IPv6 service (port 443 in [`services`]).
pub const SERVICE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x80);
/// The port the SYNs of most tests ask for.
pub const PORT: u16 = 443;

/// [`CLIENT4`] or [`CLIENT6`].
pub fn client(v6: bool) -> IpAddr {
    if v6 {
        CLIENT6.into()
    } else {
        CLIENT4.into()
    }
}

/// [`SERVICE4`] or [`SERVICE6`].
pub fn service(v6: bool) -> IpAddr {
    if v6 {
        SERVICE6.into()
    } else {
        SERVICE4.into()
    }
}

/// IPv4 addresses [`services`] protects (on some ports).
pub const V4_PROTECTED: [[u8; 4]; 4] = [
    [198, 51, 100, 7],
    [198, 51, 100, 70],
    [203, 0, 113, 5],
    [203, 0, 113, 200],
];
/// IPv4 addresses it does not.
pub const V4_OTHER: [[u8; 4]; 2] = [[192, 0, 2, 1], [10, 9, 8, 7]];
/// IPv6 addresses [`services`] protects (on some ports).
pub const V6_PROTECTED: [&str; 3] = ["2001:db8:1::80", "2001:db8:1:2::1", "::ffff:198.51.100.7"];
/// IPv6 addresses it does not.
pub const V6_OTHER: [&str; 2] = ["2001:db8:2::1", "fe80::1"];
/// Ports: protected ones, their neighbours, others.
pub const PORTS: [u16; 12] = [
    80, 443, 1000, 1500, 2000, 2001, 22, 8050, 1023, 1024, 8080, 9,
];

/// The protected services of the engine and BPF tests. Unprotected traffic goes to 192.0.2.0/24,
/// to other ports, and (IPv4) to what only the v4-mapped IPv6 prefix would cover.
pub fn services() -> ServiceSet {
    ServiceSet::new(
        [
            "198.51.100.0/24:80,443,1000-2000",
            "198.51.100.64/26:22,8000-8100",
            "203.0.113.0/24:1-1023",
            "203.0.113.128/25:1024",
            "127.0.0.0/8:1-65535",
            "[2001:db8:1::/48]:443",
            "[2001:db8:1:2::/64]:80,8080",
            "[::ffff:0:0/96]:443",
            "[::1/128]:1-65535",
        ]
        .iter()
        .map(|s| s.parse::<Service>().expect("service"))
        .collect(),
    )
}

/// Every address and port of both families protected.
pub fn all_services() -> ServiceSet {
    ServiceSet::new(vec![
        "0.0.0.0/0:1-65535".parse::<Service>().expect("service"),
        "[::/0]:1-65535".parse::<Service>().expect("service"),
    ])
}

/// The engine configuration of [`services`] with every default.
pub fn config() -> EngineConfig {
    EngineConfig::new(services())
}

/// The one counter that went up by exactly one between two snapshots.
pub fn single_increment(before: &Counters, after: &Counters) -> Result<Counter, String> {
    let changed: Vec<(Counter, u64)> = after
        .iter()
        .filter_map(|(c, v)| {
            let d = v.wrapping_sub(before.get(c));
            (d != 0).then_some((c, d))
        })
        .collect();
    match changed.as_slice() {
        [(c, 1)] => Ok(*c),
        _ => Err(format!("expected one counter +1, got {changed:?}")),
    }
}

/// Write a master-secret file as a node reads it: 32 bytes of `fill` in hex and a newline,
/// mode 0600. Written aside and renamed into place, so a node that rereads it (a rotation)
/// never sees half a file.
pub fn write_secret(path: &Path, fill: u8) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, format!("{}\n", hex::encode([fill; 32])))?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
}
