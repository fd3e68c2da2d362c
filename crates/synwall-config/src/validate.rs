//! Semantic checks: everything the types alone do not say. All problems are collected, not just
//! the first.

use crate::NodeConfig;
use std::net::SocketAddr;
use synwall_cookie::MssTable;
use synwall_engine::{EngineConfig, InvalidConfig, Service, ServiceSet};

/// The smallest IPv4 MSS the backend kfunc accepts (`bpf_sk_assign_tcp_reqsk` refuses less).
pub const MIN_MSS_V4: u16 = 536;
/// The smallest IPv6 MSS the backend kfunc accepts.
pub const MIN_MSS_V6: u16 = 1220;
/// Longest epoch: one day (a cookie lives up to two epochs).
pub const MAX_EPOCH_SECONDS: u64 = 86_400;
/// Strict-mode flow cache bounds (the BPF LRU map is sized from it).
pub const FLOW_CACHE_RANGE: std::ops::RangeInclusive<usize> = 1024..=16_777_216;

/// The whole-number keys and the values each may take, as the checks below enforce them (a
/// test holds the two together); messages about a key's type quote it.
pub(crate) const NUMBER_RANGES: &[(&str, u64, u64)] = &[
    ("node.epoch_seconds", 1, MAX_EPOCH_SECONDS),
    (
        "node.salts_ahead_seconds",
        1,
        crate::MAX_SALTS_AHEAD_SECONDS,
    ),
    ("edge.flow_cache", 1024, 16_777_216),
    ("auto.syn_rate_on", 1, u32::MAX as u64),
    // Below syn_rate_on, which is at most u32::MAX.
    ("auto.syn_rate_off", 1, u32::MAX as u64 - 1),
    ("auto.hold_seconds", 1, (u32::MAX / 1000) as u64),
    ("cookie.mss_v4", MIN_MSS_V4 as u64, u16::MAX as u64),
    ("cookie.mss_v6", MIN_MSS_V6 as u64, u16::MAX as u64),
    ("server.mss_v4", MIN_MSS_V4 as u64, u16::MAX as u64),
    ("server.mss_v6", MIN_MSS_V6 as u64, u16::MAX as u64),
    ("server.wscale", 0, 14),
    ("server.window", 1, u16::MAX as u64),
    ("server.ttl", 1, u8::MAX as u64),
];

/// The values a whole-number key takes, `(lowest, highest)`.
pub(crate) fn number_range(key: &str) -> Option<(u64, u64)> {
    NUMBER_RANGES
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, lo, hi)| (lo, hi))
}

/// One semantic problem. `at` lists the keys whose line best shows it, most specific first
/// (`key[i]` names an array element); the first one present in the file gives the line.
pub(crate) struct Finding {
    pub key: String,
    pub at: Vec<String>,
    pub message: String,
}

fn finding(key: &str, message: impl Into<String>) -> Finding {
    Finding {
        key: key.into(),
        at: vec![key.into()],
        message: message.into(),
    }
}

fn element(key: &str, i: usize, message: impl Into<String>) -> Finding {
    Finding {
        key: key.into(),
        at: vec![format!("{key}[{i}]"), key.into()],
        message: message.into(),
    }
}

/// A node name is 1 to 32 of `A-Z a-z 0-9 _ -`: it becomes a directory under the pin root and a
/// file name in the run directory, so it can never be `..`, empty or contain `/`.
pub fn check_node_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid node name (1 to 32 of A-Z a-z 0-9 _ -)"
        ))
    }
}

/// The checks, in file order.
pub(crate) fn check(c: &NodeConfig) -> Vec<Finding> {
    let mut out = Vec::new();

    // [node]
    if let Err(e) = check_node_name(&c.node.name) {
        out.push(finding("node.name", e));
    }
    if !c.node.pin_root.is_absolute() {
        out.push(finding(
            "node.pin_root",
            format!(
                "{:?} must be an absolute path (a bpffs directory)",
                c.node.pin_root
            ),
        ));
    }
    if c.node.secret_file.as_os_str().is_empty() {
        out.push(finding(
            "node.secret_file",
            "must name the master-secret file",
        ));
    }
    if !(1..=MAX_EPOCH_SECONDS).contains(&c.node.epoch_seconds) {
        out.push(finding(
            "node.epoch_seconds",
            format!(
                "{} is out of range 1..={MAX_EPOCH_SECONDS} seconds",
                c.node.epoch_seconds
            ),
        ));
    }
    if !(1..=crate::MAX_SALTS_AHEAD_SECONDS).contains(&c.node.salts_ahead_seconds) {
        out.push(finding(
            "node.salts_ahead_seconds",
            format!(
                "{} is out of range 1..={} seconds",
                c.node.salts_ahead_seconds,
                crate::MAX_SALTS_AHEAD_SECONDS
            ),
        ));
    }
    if c.node.accepted_secret().is_some() && c.node.accepted_secret_file == c.node.secret_file {
        out.push(Finding {
            key: "node.accepted_secret_file".into(),
            at: vec![
                "node.accepted_secret_file".into(),
                "node.secret_file".into(),
            ],
            message: "is node.secret_file itself: the accepted secret is a second one (the new \
                      secret while it is rolled out, or the old one after), or \"\" for none"
                .into(),
        });
    }
    if !c.node.metrics.is_empty() && c.node.metrics.parse::<SocketAddr>().is_err() {
        out.push(finding(
            "node.metrics",
            format!(
                "{:?} is not an address:port (e.g. 127.0.0.1:9733 or [::1]:9733); \"\" disables metrics",
                c.node.metrics
            ),
        ));
    }

    // [services]
    if c.services.protect.is_empty() {
        out.push(finding(
            "services.protect",
            "no services: list at least one PREFIX:PORTS to protect",
        ));
    }
    let mut seen: Vec<(usize, Service)> = Vec::new();
    for (i, s) in c.services.protect.iter().enumerate() {
        match s.parse::<Service>() {
            Err(e) => out.push(element("services.protect", i, e.to_string())),
            // The same prefix and ports, however written ("10.0.0.1:80" is "10.0.0.1/32:80").
            Ok(svc) => match seen.iter().find(|(_, earlier)| *earlier == svc) {
                Some((j, _)) => out.push(element(
                    "services.protect",
                    i,
                    format!("{s:?} is listed twice (the same service as entry {j})"),
                )),
                None => seen.push((i, svc)),
            },
        }
    }

    // [edge] and [backend]
    if c.edge.interfaces.is_empty() && c.backend.interfaces.is_empty() {
        out.push(Finding {
            key: "edge.interfaces".into(),
            at: vec!["edge.interfaces".into(), "backend.interfaces".into()],
            message: "no interfaces: list at least one in edge.interfaces or backend.interfaces"
                .into(),
        });
    }
    interface_list(&mut out, "edge.interfaces", &c.edge.interfaces);
    interface_list(&mut out, "backend.interfaces", &c.backend.interfaces);
    if !FLOW_CACHE_RANGE.contains(&c.edge.flow_cache) {
        out.push(finding(
            "edge.flow_cache",
            format!(
                "{} is out of range {}..={} entries",
                c.edge.flow_cache,
                FLOW_CACHE_RANGE.start(),
                FLOW_CACHE_RANGE.end()
            ),
        ));
    }

    // [auto]
    if c.auto.syn_rate_on == 0 {
        out.push(finding("auto.syn_rate_on", "must be at least 1 SYN/s"));
    }
    if c.auto.syn_rate_off == 0 {
        out.push(finding("auto.syn_rate_off", "must be at least 1 SYN/s"));
    }
    if c.auto.syn_rate_off >= c.auto.syn_rate_on {
        out.push(Finding {
            key: "auto.syn_rate_off".into(),
            at: vec!["auto.syn_rate_off".into(), "auto.syn_rate_on".into()],
            message: format!(
                "{} must be below auto.syn_rate_on ({}), or cookies would flap on and off",
                c.auto.syn_rate_off, c.auto.syn_rate_on
            ),
        });
    }
    if c.auto.hold_seconds == 0 {
        out.push(finding("auto.hold_seconds", "must be at least 1 second"));
    }
    // The engine's rule on the modes, located at this file's keys. (Its threshold rule is the
    // per-key check above, which also covers a disabled [auto].)
    let mut modes = EngineConfig::new(ServiceSet::default());
    c.set_modes(&mut modes);
    if let Err(e @ InvalidConfig::StrictWithAuto) = modes.validate() {
        out.push(Finding {
            key: "edge.strict".into(),
            at: vec!["edge.strict".into(), "auto.enabled".into()],
            message: format!(
                "strict mode cannot be combined with auto.enabled: {}",
                e.why()
            ),
        });
    }
    // The data path holds rates and the hold time as 32-bit values (SYNs/s, milliseconds).
    for (key, v) in [
        ("auto.syn_rate_on", c.auto.syn_rate_on),
        ("auto.syn_rate_off", c.auto.syn_rate_off),
    ] {
        if v > u64::from(u32::MAX) {
            out.push(finding(key, format!("must be at most {} SYN/s", u32::MAX)));
        }
    }
    if c.auto.hold_seconds > u64::from(u32::MAX / 1000) {
        out.push(finding(
            "auto.hold_seconds",
            format!("must be at most {} seconds", u32::MAX / 1000),
        ));
    }

    // [cookie]
    mss_table(&mut out, "cookie.mss_v4", &c.cookie.mss_v4, MIN_MSS_V4);
    mss_table(&mut out, "cookie.mss_v6", &c.cookie.mss_v6, MIN_MSS_V6);
    if c.cookie.ecn && !c.cookie.timestamps {
        out.push(Finding {
            key: "cookie.ecn".into(),
            at: vec!["cookie.ecn".into(), "cookie.timestamps".into()],
            message:
                "ECN needs cookie.timestamps = true (ECN is carried in TSval); set ecn = false \
                      or timestamps = true"
                    .into(),
        });
    }

    // [server]
    if c.server.mss_v4 < MIN_MSS_V4 {
        out.push(finding(
            "server.mss_v4",
            format!(
                "{} is below {MIN_MSS_V4}, the kfunc's IPv4 minimum",
                c.server.mss_v4
            ),
        ));
    }
    if c.server.mss_v6 < MIN_MSS_V6 {
        out.push(finding(
            "server.mss_v6",
            format!(
                "{} is below {MIN_MSS_V6}, the kfunc's IPv6 minimum",
                c.server.mss_v6
            ),
        ));
    }
    if c.server.wscale > 14 {
        out.push(finding(
            "server.wscale",
            format!("{} is out of range 0..=14 (RFC 7323)", c.server.wscale),
        ));
    }
    if c.server.window == 0 {
        out.push(finding("server.window", "must be at least 1"));
    }
    if c.server.ttl == 0 {
        out.push(finding("server.ttl", "must be at least 1"));
    }
    out
}

fn interface_list(out: &mut Vec<Finding>, key: &str, list: &[String]) {
    for (i, name) in list.iter().enumerate() {
        // IFNAMSIZ is 16 with the NUL; the kernel refuses '/', ':' is an alias marker, and
        // whitespace cannot be named in `ip link`.
        if name.is_empty()
            || name.len() > 15
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|ch| ch == '/' || ch == ':' || ch.is_whitespace() || ch.is_control())
        {
            out.push(element(
                key,
                i,
                format!("{name:?} is not an interface name (1 to 15 characters, no '/', ':' or whitespace)"),
            ));
        } else if list[..i].contains(name) {
            out.push(element(key, i, format!("{name:?} is listed twice")));
        }
    }
}

fn mss_table(out: &mut Vec<Finding>, key: &str, v: &[u16], min: u16) {
    let Ok(arr) = <[u16; 8]>::try_from(v) else {
        out.push(finding(
            key,
            format!(
                "has {} entries; an MSS table has exactly 8 (the cookie stores a 3-bit index)",
                v.len()
            ),
        ));
        return;
    };
    // The kfunc's floor is above the table's own (88): say the stricter one, and order once.
    if let Some(i) = arr.iter().position(|&m| m < min) {
        out.push(element(
            key,
            i,
            format!("entry {i} ({}) is below {min}, the kfunc's minimum", arr[i]),
        ));
    }
    if let Err(e @ synwall_cookie::MssTableError::NotAscending { index }) = MssTable::new(arr) {
        out.push(element(key, index, e.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set a whole-number key of a valid config.
    fn with(key: &str, v: u64) -> NodeConfig {
        let mut c = NodeConfig::default();
        c.services.protect = vec!["10.0.0.0/24:80".into()];
        c.edge.interfaces = vec!["eth0".into()];
        // An ascending MSS table holding `v`: first entry, or last at the top of the range.
        let table = || -> Vec<u16> {
            if v > 60_000 {
                (0..8).map(|i| v as u16 - 7 + i).collect()
            } else {
                (0..8).map(|i| v as u16 + i).collect()
            }
        };
        match key {
            "node.epoch_seconds" => c.node.epoch_seconds = v,
            "node.salts_ahead_seconds" => c.node.salts_ahead_seconds = v,
            "edge.flow_cache" => c.edge.flow_cache = v as usize,
            "auto.syn_rate_on" => {
                c.auto.syn_rate_on = v;
                c.auto.syn_rate_off = 1;
            }
            "auto.syn_rate_off" => {
                c.auto.syn_rate_off = v;
                c.auto.syn_rate_on = u32::MAX as u64;
            }
            "auto.hold_seconds" => c.auto.hold_seconds = v,
            "cookie.mss_v4" => c.cookie.mss_v4 = table(),
            "cookie.mss_v6" => c.cookie.mss_v6 = table(),
            "server.mss_v4" => c.server.mss_v4 = v as u16,
            "server.mss_v6" => c.server.mss_v6 = v as u16,
            "server.wscale" => c.server.wscale = v as u8,
            "server.window" => c.server.window = v as u16,
            "server.ttl" => c.server.ttl = v as u8,
            other => panic!("no setter for {other}"),
        }
        c
    }

    fn refused(c: &NodeConfig, key: &str) -> bool {
        check(c).iter().any(|f| f.key == key)
    }

    /// The ranges messages quote are the ones the checks enforce: both ends pass, one below the
    /// lowest and one above the highest (where the key's type can hold it) are refused.
    #[test]
    fn number_ranges_are_what_the_checks_enforce() {
        let type_max = |key: &str| match key {
            "server.wscale" | "server.ttl" => u8::MAX as u64,
            k if k.contains("mss") || k == "server.window" => u16::MAX as u64,
            _ => u64::MAX,
        };
        for &(key, lo, hi) in NUMBER_RANGES {
            assert!(!refused(&with(key, lo), key), "{key} = {lo} refused");
            assert!(!refused(&with(key, hi), key), "{key} = {hi} refused");
            if lo > 0 {
                assert!(
                    refused(&with(key, lo - 1), key),
                    "{key} = {} passed",
                    lo - 1
                );
            }
            if hi < type_max(key) {
                assert!(
                    refused(&with(key, hi + 1), key),
                    "{key} = {} passed",
                    hi + 1
                );
            }
        }
    }
}
