//! What a reload (SIGHUP) may change in place. Services, the cookie, the SYN+ACK values, strict
//! mode, auto mode, the secret files (and their contents, which the daemon re-reads), how far
//! ahead salts are written, the log level and `set_sysctls` are map writes or userspace state; everything else is fixed when the programs are
//! loaded, pinned and attached, so changing it needs a restart. Keys are compared leaf by leaf, so a
//! new key is refused until it is listed here as reloadable.

use crate::NodeConfig;
use serde::Serialize;
use std::collections::BTreeMap;

/// A change a reload applies in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Dotted key.
    pub key: String,
    /// Old value, as TOML.
    pub old: String,
    /// New value, as TOML.
    pub new: String,
}

/// A change a reload cannot apply: the daemon keeps the old config and says why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Dotted key.
    pub key: String,
    /// Old value, as TOML.
    pub old: String,
    /// New value, as TOML.
    pub new: String,
    /// Why it needs a restart.
    pub why: String,
}

/// Sections whose every key reloads in place (map writes or userspace state).
const RELOADABLE_SECTIONS: [&str; 4] = ["services", "cookie", "server", "auto"];
/// Single keys that reload in place.
const RELOADABLE_KEYS: [&str; 6] = [
    "edge.strict",
    "node.secret_file",
    "node.accepted_secret_file",
    "node.salts_ahead_seconds",
    "node.log_level",
    "node.set_sysctls",
];

fn reloadable(key: &str) -> bool {
    RELOADABLE_KEYS.contains(&key)
        || RELOADABLE_SECTIONS
            .iter()
            .any(|s| key.strip_prefix(s).is_some_and(|r| r.starts_with('.')))
}

fn why(key: &str) -> &'static str {
    match key {
        "node.name" | "node.pin_root" => {
            "the pins live under <pin_root>/<name>; restart to move them"
        }
        "node.epoch_seconds" => {
            "cookies issued under the old epoch length would stop validating; restart to change it"
        }
        "node.metrics" => "the metrics listener is bound at start; restart to change it",
        "edge.interfaces" | "backend.interfaces" => {
            "interfaces are attached at start; restart to change them"
        }
        "edge.xdp_mode" | "edge.xdp_fallback" => {
            "the XDP attach mode is chosen at attach; restart to change it"
        }
        "edge.flow_cache" => "the flow cache map is sized at load; restart to change it",
        _ => "fixed at start; restart to change it",
    }
}

fn leaves(c: &NodeConfig) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
        match v.as_table() {
            Some(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            None => {
                out.insert(prefix.to_string(), v.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        "",
        &toml::Value::try_from(c).expect("a NodeConfig serializes"),
        &mut out,
    );
    out
}

pub(crate) fn plan(old: &NodeConfig, new: &NodeConfig) -> Result<Vec<Change>, Vec<Refusal>> {
    let (a, b) = (leaves(old), leaves(new));
    let mut changes = Vec::new();
    let mut refusals = Vec::new();
    let none = toml::Value::String(String::new());
    for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
        let (o, n) = (a.get(key).unwrap_or(&none), b.get(key).unwrap_or(&none));
        if o == n {
            continue;
        }
        let (old, new) = (o.to_string(), n.to_string());
        if reloadable(key) {
            changes.push(Change {
                key: key.clone(),
                old,
                new,
            });
        } else {
            refusals.push(Refusal {
                key: key.clone(),
                old,
                new,
                why: why(key).into(),
            });
        }
    }
    if refusals.is_empty() {
        Ok(changes)
    } else {
        Err(refusals)
    }
}
