//! Shared parsing helpers: hex secrets and textual addresses.

use std::net::IpAddr;
use synwall_cookie::{Addrs, Flow, SipKey};

/// Decode exactly `N` bytes of hex.
pub(crate) fn hex_array<const N: usize>(field: &str, s: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(s).map_err(|e| format!("{field}: bad hex {s:?}: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{field}: expected {N} bytes of hex, found {}", b.len()))
}

/// A SipHash key from 16 bytes of hex.
pub(crate) fn sip_key(field: &str, s: &str) -> Result<SipKey, String> {
    Ok(SipKey::from_bytes(&hex_array::<16>(field, s)?))
}

/// A flow from textual addresses (both of one family) and ports.
pub(crate) fn flow(
    client: &str,
    service: &str,
    client_port: u16,
    service_port: u16,
) -> Result<Flow, String> {
    let c: IpAddr = client
        .parse()
        .map_err(|_| format!("bad address {client:?}"))?;
    let s: IpAddr = service
        .parse()
        .map_err(|_| format!("bad address {service:?}"))?;
    let addrs = match (c, s) {
        (IpAddr::V4(c), IpAddr::V4(s)) => Addrs::V4 {
            client: c.octets(),
            service: s.octets(),
        },
        (IpAddr::V6(c), IpAddr::V6(s)) => Addrs::V6 {
            client: c.octets(),
            service: s.octets(),
        },
        _ => return Err(format!("{client} and {service} are of different families")),
    };
    Ok(Flow {
        addrs,
        client_port,
        service_port,
    })
}

/// Check that a declared family matches the addresses.
pub(crate) fn check_family(family: u8, flow: &Flow) -> Result<(), String> {
    match (family, flow.addrs.is_v6()) {
        (4, false) | (6, true) => Ok(()),
        _ => Err(format!("family {family} does not match the addresses")),
    }
}
