//! The sysctls the backend's kfunc path needs: `bpf_sk_assign_tcp_reqsk` creates sockets only when
//! `net.ipv4.tcp_syncookies` is 1 or 2, and refuses SACK / timestamps / window scaling that the
//! namespace has switched off. A backend refuses to start (naming the sysctl) or, with
//! `--set-sysctls`, sets them.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use synwall_cookie::synwall_v1::Config;

/// One sysctl requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Dotted name, e.g. `net.ipv4.tcp_syncookies`.
    pub name: &'static str,
    /// The value to set with `--set-sysctls`.
    pub wanted: &'static str,
    /// Why it is needed.
    pub why: &'static str,
}

/// What a backend with cookie configuration `cfg` needs.
pub fn requirements(cfg: &Config) -> Vec<Requirement> {
    let mut r = vec![Requirement {
        name: "net.ipv4.tcp_syncookies",
        wanted: "1",
        why: "bpf_sk_assign_tcp_reqsk only creates sockets when syncookies are enabled (1 or 2)",
    }];
    if cfg.sack {
        r.push(Requirement {
            name: "net.ipv4.tcp_sack",
            wanted: "1",
            why: "the cookie offers SACK",
        });
    }
    if cfg.timestamps {
        r.push(Requirement {
            name: "net.ipv4.tcp_timestamps",
            wanted: "1",
            why: "the cookie offers timestamps",
        });
    }
    if cfg.wscale {
        r.push(Requirement {
            name: "net.ipv4.tcp_window_scaling",
            wanted: "1",
            why: "the cookie offers window scaling",
        });
    }
    r
}

fn path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

/// The current value of a sysctl.
pub fn read(name: &str) -> Result<String> {
    Ok(std::fs::read_to_string(path(name))
        .with_context(|| format!("cannot read sysctl {name}"))?
        .trim()
        .to_string())
}

fn satisfied(req: &Requirement, value: &str) -> bool {
    match req.name {
        "net.ipv4.tcp_syncookies" => value == "1" || value == "2",
        _ => value != "0",
    }
}

/// Check every requirement; with `set`, write the ones not met (and say so). Errors name the
/// sysctl and how to fix it.
pub fn ensure(reqs: &[Requirement], set: bool) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for r in reqs {
        let v = read(r.name)?;
        if satisfied(r, &v) {
            continue;
        }
        if !set {
            bail!(
                "sysctl {} is {v}: {}; set it (sysctl -w {}={}) or run with --set-sysctls",
                r.name,
                r.why,
                r.name,
                r.wanted
            );
        }
        std::fs::write(path(r.name), r.wanted)
            .with_context(|| format!("cannot set sysctl {}", r.name))?;
        changed.push(format!("{} {v} -> {}", r.name, r.wanted));
    }
    Ok(changed)
}

/// Check (with `set`, set) what a backend with cookie configuration `cfg` needs; each change is
/// logged.
pub fn ensure_for(cfg: &Config, set: bool) -> Result<()> {
    for change in ensure(&requirements(cfg), set)? {
        tracing::info!("set sysctl {change}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_follow_the_config() {
        let all = requirements(&Config::default());
        assert_eq!(all.len(), 4);
        let none = requirements(&Config {
            sack: false,
            timestamps: false,
            wscale: false,
            ..Config::default()
        });
        assert_eq!(
            none.iter().map(|r| r.name).collect::<Vec<_>>(),
            ["net.ipv4.tcp_syncookies"]
        );
        let r = &all[0];
        assert!(satisfied(r, "1") && satisfied(r, "2") && !satisfied(r, "0"));
    }
}
