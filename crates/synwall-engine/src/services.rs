//! Protected services: address prefixes with port sets, parsed from `PREFIX:PORTS`
//! (`10.0.0.0/24:80,443`, `[2001:db8::/64]:8000-8100`, `192.0.2.7:22`). Every command that takes
//! `--service` (replay, edge, backend, single) and the config file parse them here.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
}

impl Prefix {
    /// Does the prefix contain `a`? (Families must match.)
    pub fn contains(&self, a: &IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(a)) => mask_eq(&p.octets(), &a.octets(), self.len),
            (IpAddr::V6(p), IpAddr::V6(a)) => mask_eq(&p.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

fn mask_eq(p: &[u8], a: &[u8], len: u8) -> bool {
    let full = (len / 8) as usize;
    if p[..full] != a[..full] {
        return false;
    }
    let rem = len % 8;
    rem == 0 || (p[full] ^ a[full]) & (0xffu8 << (8 - rem)) == 0
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Why a prefix string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "prefix {input:?}: {reason} (expected ADDRESS/LENGTH, e.g. 198.51.100.0/24 or 2001:db8::/32)"
)]
pub struct PrefixError {
    input: String,
    reason: String,
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// `ADDRESS/LENGTH` or a bare address (all its bits): `10.0.0.0/8`, `2001:db8::/32`,
    /// `192.0.2.7`. Host bits must be zero.
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let err = |reason: String| PrefixError {
            input: s.to_string(),
            reason,
        };
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| err(format!("{addr:?} is not an IP address")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len {
            None => max,
            Some(l) => l
                .parse()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| err(format!("prefix length {l:?} is not 0..={max}")))?,
        };
        let prefix = Prefix { addr, len };
        let network = prefix.network();
        if network != addr {
            return Err(err(format!(
                "{prefix} has host bits set; did you mean {network}/{len}?"
            )));
        }
        Ok(prefix)
    }
}

impl Prefix {
    /// The address with the host bits cleared.
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.len as u32)
                };
                IpAddr::from((u32::from(a) & m).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let m = if self.len == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.len as u32)
                };
                IpAddr::from((u128::from(a) & m).to_be_bytes())
            }
        }
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (>= first).
    pub last: u16,
}

/// One protected service: a prefix and its ports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    /// Destination prefix.
    pub prefix: Prefix,
    /// Destination ports.
    pub ports: Vec<PortRange>,
}

impl Service {
    /// Is `port` one of this service's ports?
    pub fn has_port(&self, port: u16) -> bool {
        self.ports
            .iter()
            .any(|r| (r.first..=r.last).contains(&port))
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix.addr {
            IpAddr::V4(_) => write!(f, "{}:", self.prefix)?,
            IpAddr::V6(_) => write!(f, "[{}]:", self.prefix)?,
        }
        for (i, r) in self.ports.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.first == r.last {
                write!(f, "{}", r.first)?;
            } else {
                write!(f, "{}-{}", r.first, r.last)?;
            }
        }
        Ok(())
    }
}

/// Why a `PREFIX:PORTS` string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("service {input:?}: {reason} (expected PREFIX:PORTS, e.g. 10.0.0.0/24:80,443 or [2001:db8::/64]:8000-8100)")]
pub struct ServiceError {
    input: String,
    reason: String,
}

impl FromStr for Service {
    type Err = ServiceError;

    fn from_str(s: &str) -> Result<Self, ServiceError> {
        let err = |reason: String| ServiceError {
            input: s.to_string(),
            reason,
        };
        let (prefix, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (p, ports) = rest
                .split_once("]:")
                .ok_or_else(|| err("IPv6 prefix must be in brackets: [PREFIX]:PORTS".into()))?;
            (p, ports)
        } else {
            s.rsplit_once(':')
                .ok_or_else(|| err("missing ':PORTS'".into()))?
        };
        if prefix.contains(':') && !s.starts_with('[') {
            return Err(err("IPv6 prefix must be in brackets: [PREFIX]:PORTS".into()));
        }
        let prefix: Prefix = prefix.parse().map_err(|e: PrefixError| err(e.reason))?;
        if ports.is_empty() {
            return Err(err("no ports".into()));
        }
        let port = |p: &str| -> Result<u16, ServiceError> {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| err(format!("{p:?} is not a port 1..=65535")))
        };
        let mut ranges = Vec::new();
        for part in ports.split(',') {
            let r = match part.split_once('-') {
                Some((a, b)) => PortRange {
                    first: port(a)?,
                    last: port(b)?,
                },
                None => {
                    let p = port(part)?;
                    PortRange { first: p, last: p }
                }
            };
            if r.first > r.last {
                return Err(err(format!("port range {part:?} runs backwards")));
            }
            ranges.push(r);
        }
        Ok(Service {
            prefix,
            ports: ranges,
        })
    }
}

/// The protected services of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSet {
    services: Vec<Service>,
}

impl ServiceSet {
    /// A set from parsed services.
    pub fn new(services: Vec<Service>) -> Self {
        ServiceSet { services }
    }

    /// The services.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Is `addr` inside any protected prefix? (Decides whether a malformed packet is ours to drop.)
    pub fn covers_addr(&self, addr: &IpAddr) -> bool {
        self.services.iter().any(|s| s.prefix.contains(addr))
    }

    /// Is (`addr`, `port`) a protected service?
    pub fn is_protected(&self, addr: &IpAddr, port: u16) -> bool {
        self.services
            .iter()
            .any(|s| s.prefix.contains(addr) && s.has_port(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s: Service = "10.0.0.0/24:80,443".parse().unwrap();
        assert_eq!(s.to_string(), "10.0.0.0/24:80,443");
        assert!(s.prefix.contains(&"10.0.0.77".parse().unwrap()));
        assert!(!s.prefix.contains(&"10.0.1.1".parse().unwrap()));
        assert!(s.has_port(443) && !s.has_port(8080));
        let s: Service = "[2001:db8::/64]:8000-8100".parse().unwrap();
        assert_eq!(s.to_string(), "[2001:db8::/64]:8000-8100");
        assert!(s.has_port(8050) && !s.has_port(8101));
        assert!(s.prefix.contains(&"2001:db8::1234".parse().unwrap()));
        let s: Service = "192.0.2.7:22".parse().unwrap();
        assert_eq!(s.prefix.len, 32);
        let s: Service = "0.0.0.0/0:80".parse().unwrap();
        assert!(s.prefix.contains(&"203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn refuses_bad_input() {
        for (bad, why) in [
            ("10.0.0.0/24", "missing ':PORTS'"),
            ("10.0.0.1/24:80", "host bits set; did you mean 10.0.0.0/24?"),
            ("10.0.0.0/33:80", "prefix length"),
            ("10.0.0.0/24:0", "not a port"),
            ("10.0.0.0/24:70000", "not a port"),
            ("10.0.0.0/24:90-80", "runs backwards"),
            ("10.0.0.0/24:", "no ports"),
            ("2001:db8::/64:80", "brackets"),
            ("[2001:db8::/64:80", "brackets"),
            ("example.com:80", "not an IP address"),
        ] {
            let e = bad.parse::<Service>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("expected PREFIX:PORTS"), "{e}");
        }
    }
}
