//! What stands between the clients and nginx in a run: synwall (edge XDP + backend tc), the
//! kernel's own listener with `tcp_syncookies = 2`, iptables SYNPROXY on the edges, or nothing.

use crate::lab::{Lab, CLIENT_NETS, INFO_PORT, PORT, SVC_V4, SVC_V6};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use synwall_netns::{Counts, Daemon};

/// A defense configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Defense {
    /// `synwall edge` on the edges' rtr-facing veth, `synwall backend` on the backend's veths.
    Synwall,
    /// Plain routers; the backend kernel answers with SYN cookies for every SYN
    /// (`tcp_syncookies = 2`).
    KernelCookies,
    /// iptables SYNPROXY (`-j SYNPROXY`, translated by iptables-nft to nft's `synproxy`, the same
    /// kernel code `nf_synproxy`) on the edges; backend `tcp_syncookies = 1`.
    Synproxy,
    /// Plain routers, backend `tcp_syncookies = 0`: the reference for connection quality.
    NoCookies,
}

impl Defense {
    /// Short label for tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            Defense::Synwall => "synwall",
            Defense::KernelCookies => "kernel syncookies=2",
            Defense::Synproxy => "iptables SYNPROXY",
            Defense::NoCookies => "no cookies",
        }
    }
}

/// A defense in force; [`Active::stop`] removes it and returns the synwall counters.
pub struct Active<'a> {
    lab: &'a Lab,
    defense: Defense,
    edges: Vec<usize>,
    daemons: Vec<(String, Daemon)>,
    cleared: bool,
}

fn start(ns: &synwall_netns::Netns, exe: &Path, args: &[String]) -> Result<Daemon> {
    Daemon::start(ns, exe, args, Duration::from_secs(30))
}

fn services() -> Vec<String> {
    vec![
        "--service".into(),
        format!("{SVC_V4}/32:{PORT},{INFO_PORT}"),
        "--service".into(),
        format!("[{SVC_V6}/128]:{PORT},{INFO_PORT}"),
    ]
}

/// Put `defense` in force on `edges` (indexes 0/1). `strict` is synwall's strict mode.
pub fn apply<'a>(
    lab: &'a Lab,
    exe: &Path,
    defense: Defense,
    edges: &[usize],
    strict: bool,
) -> Result<Active<'a>> {
    let mut act = Active {
        lab,
        defense,
        edges: edges.to_vec(),
        daemons: Vec::new(),
        cleared: false,
    };
    let cookies = match defense {
        Defense::KernelCookies => "2",
        Defense::NoCookies => "0",
        Defense::Synwall | Defense::Synproxy => "1",
    };
    lab.be.sysctl("net.ipv4.tcp_syncookies", cookies)?;
    match defense {
        Defense::Synwall => {
            let sf = lab.secret()?;
            for &e in edges {
                let n = e + 1;
                // XDP_TX on a veth reaches the peer only if the peer runs XDP too.
                let pass = synwall_netns::topo::pass_all_args(&format!("r{n}"), &sf);
                let d = start(&lab.rtr, exe, &pass)?;
                act.daemons.push((format!("pass r{n}"), d));
                let mut a: Vec<String> =
                    ["edge", "--iface", &format!("x{n}"), "--secret-file", &sf]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                if strict {
                    a.push("--strict".into());
                }
                for net in CLIENT_NETS {
                    a.extend(["--allow".into(), net.into()]);
                }
                a.extend(services());
                let d = start(&lab.edges[e], exe, &a)?;
                act.daemons.push((format!("edge{n}"), d));
            }
            // Both backend links get the tc program: return routes may use either edge.
            for n in [1, 2] {
                let mut a: Vec<String> =
                    ["backend", "--iface", &format!("b{n}"), "--secret-file", &sf]
                        .iter()
                        .map(|s| s.to_string())
                        .collect();
                a.extend(services());
                let d = start(&lab.be, exe, &a)?;
                act.daemons.push((format!("backend{n}"), d));
            }
        }
        Defense::Synproxy => {
            for &e in edges {
                synproxy(&lab.edges[e], "FORWARD", SVC_V4)?;
            }
        }
        Defense::KernelCookies | Defense::NoCookies => {}
    }
    Ok(act)
}

/// iptables SYNPROXY in `ns` for `addr`:[`PORT`] on `chain` (FORWARD on a box in the path,
/// INPUT on the host itself): SYNs untracked in the raw table, SYNPROXY answers them and the
/// validated ACKs, and ACKs that match no connection are INVALID (`nf_conntrack_tcp_loose = 0`)
/// and dropped instead of becoming new flows.
pub fn synproxy(ns: &synwall_netns::Netns, chain: &str, addr: &str) -> Result<()> {
    let ipt = |args: &[&str]| -> Result<()> {
        let mut a = vec!["ip", "netns", "exec", ns.name(), "iptables"];
        a.extend_from_slice(args);
        synwall_netns::sh(&a)
            .map(|_| ())
            .context("iptables SYNPROXY rules")
    };
    let port = PORT.to_string();
    let syns = ["-p", "tcp", "-d", addr, "--dport", &port];
    ipt(&[
        &["-t", "raw", "-A", "PREROUTING"],
        &syns[..],
        &["--syn", "-j", "CT", "--notrack"],
    ]
    .concat())?;
    ipt(&[
        &["-A", chain],
        &syns[..],
        &[
            "-m",
            "conntrack",
            "--ctstate",
            "INVALID,UNTRACKED",
            "-j",
            "SYNPROXY",
        ],
        &[
            "--sack-perm",
            "--timestamp",
            "--wscale",
            "7",
            "--mss",
            "1460",
        ],
    ]
    .concat())?;
    ipt(&[
        "-A",
        chain,
        "-m",
        "conntrack",
        "--ctstate",
        "INVALID",
        "-j",
        "DROP",
    ])?;
    ns.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")
}

impl Active<'_> {
    /// The defense.
    pub fn defense(&self) -> Defense {
        self.defense
    }

    /// Remove the defense; the counters of each synwall daemon by label (`edge1`, `backend1`..).
    pub fn stop(mut self) -> Result<Vec<(String, Counts)>> {
        let mut out = Vec::new();
        for (label, d) in std::mem::take(&mut self.daemons) {
            let c = d.stop()?;
            if let Some(c) = c.into_values().next() {
                out.push((label, c));
            }
        }
        self.clear();
        Ok(out)
    }

    fn clear(&mut self) {
        if std::mem::replace(&mut self.cleared, true) {
            return;
        }
        if self.defense == Defense::Synproxy {
            for &e in &self.edges {
                let ns = self.lab.edges[e].name();
                for t in ["raw", "filter"] {
                    let _ =
                        synwall_netns::sh(&["ip", "netns", "exec", ns, "iptables", "-t", t, "-F"]);
                }
            }
        }
        let _ = self.lab.be.sysctl("net.ipv4.tcp_syncookies", "1");
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.daemons.clear();
        self.clear();
    }
}

/// Sum of one counter over the daemons whose label starts with `role`.
pub fn total(counts: &[(String, Counts)], role: &str, name: &str) -> u64 {
    counts
        .iter()
        .filter(|(l, _)| l.starts_with(role))
        .map(|(_, c)| c.get(name))
        .sum()
}
