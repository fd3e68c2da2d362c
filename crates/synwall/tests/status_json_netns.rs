//! `docs/STATUS_JSON.md` describes what `synwall status --json` really prints: a single node (edge
//! and backend, auto mode on, native XDP on a veth) runs in a namespace, a client's SYNs reach it
//! with partial checksums (so a hint is printed), then more than its reflection budget allows
//! (so a limited prefix is named), and the one-shot and `--watch` outputs are checked against
//! the document's table: every field printed is listed with its type, every row
//! of the table is printed, and the map keys are what the table says.
//!
//! Needs root (CI=true: fail, else skip with a message).

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use synwall_engine::Counter;
use synwall_testkit::synwall;
use synwall_testkit::{require_privileges, unique_prefix, veth_as_made, Daemon, Netns};

fn doc() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/STATUS_JSON.md")
}

/// The table: path -> type.
fn documented() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(doc()).unwrap();
    text.lines()
        .filter_map(|l| {
            let l = l.strip_prefix("| `")?;
            let (path, rest) = l.split_once("` | ")?;
            let ty = rest.split(" | ").next()?;
            Some((path.to_string(), ty.trim().to_string()))
        })
        .collect()
}

/// Does `v` have documented type `ty` (`integer`, `number`, `string`, `boolean`, `array`,
/// `object`, each possibly `... or null`)?
fn has_type(v: &Value, ty: &str) -> bool {
    let (base, nullable) = match ty.strip_suffix(" or null") {
        Some(b) => (b, true),
        None => (ty, false),
    };
    match v {
        Value::Null => nullable,
        Value::Bool(_) => base == "boolean",
        Value::Number(n) => match base {
            "integer" => n.is_u64() || n.is_i64(),
            "number" => true,
            _ => false,
        },
        Value::String(_) => base == "string",
        Value::Array(_) => base == "array",
        Value::Object(_) => base == "object",
    }
}

/// Check `v` (at `path`) and everything under it against the table; collect the rows seen.
fn check(
    v: &Value,
    path: &str,
    doc: &BTreeMap<String, String>,
    seen: &mut BTreeSet<String>,
) -> Result<()> {
    let ty = doc
        .get(path)
        .with_context(|| format!("{path} is printed but not documented"))?;
    ensure!(has_type(v, ty), "{path} is documented as {ty}, printed {v}");
    seen.insert(path.to_string());
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        Value::Object(m) => {
            // A map when the table has a `<name>` row under this path.
            let wildcard = doc
                .keys()
                .find(|k| k.starts_with(&child("<")) && !k[child("").len()..].contains('.'));
            for (k, x) in m {
                let p = match wildcard {
                    Some(w) => {
                        let names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
                        if w.ends_with("<counter>") {
                            ensure!(names.contains(&k.as_str()), "{w}: {k} is no counter");
                        }
                        w.clone()
                    }
                    None => child(k),
                };
                check(x, &p, doc, seen)?;
            }
        }
        Value::Array(a) => {
            for x in a {
                check(x, &format!("{path}[]"), doc, seen)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_output(
    v: &Value,
    doc: &BTreeMap<String, String>,
    seen: &mut BTreeSet<String>,
) -> Result<()> {
    ensure!(v["schema_version"] == 1, "{v}");
    let root = v.as_object().context("not an object")?;
    for (k, x) in root {
        check(x, k, doc, seen)?;
    }
    // Every counter, for every program.
    for p in v["programs"].as_array().context("programs")? {
        ensure!(p["counters"].as_object().unwrap().len() == Counter::COUNT);
    }
    Ok(())
}

#[test]
fn status_json_is_what_its_document_says() -> Result<()> {
    if !require_privileges("status_json_is_what_its_document_says") {
        return Ok(());
    }
    let doc = documented();
    assert!(doc.len() > 25, "{doc:?}");
    let name = unique_prefix();
    let node = Netns::create(&format!("{name}n"))?;
    let client = Netns::create(&format!("{name}c"))?;
    veth_as_made(&node, "n0", &client, "c0")?;
    node.addr("n0", "10.79.0.1/24")?;
    client.addr("c0", "10.79.0.2/24")?;
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("secret");
    std::fs::write(&secret, [0x11u8; 32])?;
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let cfg = dir.path().join("synwall.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\nname = \"{name}\"\nsecret_file = \"{}\"\nmetrics = \"\"\nset_sysctls = true\n\
             [services]\nprotect = [\"10.79.0.1/32:80\"]\n[edge]\ninterfaces = [\"n0\"]\n\
             [edge.budget]\nrate = 1\nburst = 1\nnode_rate = 100000\nnode_burst = 100000\n\
             [edge.deny]\nprefixes = [\"192.0.2.0/24\"]\n\
             [backend]\ninterfaces = [\"n0\"]\n[auto]\nenabled = true\nsyn_rate_on = 2\n\
             syn_rate_off = 1\n",
            secret.display()
        ),
    )?;
    let (cfg, run) = (
        cfg.display().to_string(),
        dir.path().join("run").display().to_string(),
    );
    struct Detach<'a>(&'a str, &'a str);
    impl Drop for Detach<'_> {
        fn drop(&mut self) {
            let _ = Command::new(synwall())
                .args(["stop", "--config", self.0, "--run-dir", self.1, "--detach"])
                .output();
        }
    }
    let _detach = Detach(&cfg, &run);
    let daemon = Daemon::start(
        &node,
        synwall(),
        &["run", "--config", &cfg, "--run-dir", &run],
        Duration::from_secs(20),
    )?;
    // SYNs with partial checksums (TX offload on c0): a hint to print.
    let to: SocketAddr = "10.79.0.1:80".parse().unwrap();
    let _ = client.enter(move || TcpStream::connect_timeout(&to, Duration::from_millis(1500)))?;
    // Then SYNs the edge can check, one every 20 ms: auto mode turns cookies on, and the client's
    // /24 runs out of its budget of one SYN+ACK per second (a limited prefix to name).
    client.run(&["ethtool", "-K", "c0", "tx", "off"])?;
    for _ in 0..40 {
        let _ = client.enter(move || TcpStream::connect_timeout(&to, Duration::from_millis(20)))?;
        std::thread::sleep(Duration::from_millis(20));
    }

    let status = |extra: &[&str]| -> Result<String> {
        let out = node
            .command("timeout")
            .args(["--preserve-status", "-s", "INT", "3"])
            .arg(synwall())
            .args(["status", "--json", "--config", &cfg, "--run-dir", &run])
            .args(extra)
            .output()?;
        if !out.status.success() {
            bail!("status {extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    };
    let mut seen = BTreeSet::new();
    let once: Value = serde_json::from_str(&status(&[])?)?;
    check_output(&once, &doc, &mut seen)?;
    ensure!(once["interval_seconds"].is_null() && once["programs"][0]["rates"].is_null());
    ensure!(once["hints"][0]["counter"] == "drop_syn_checksum", "{once}");
    let reflection = &once["programs"][0]["abuse"]["budgets"][0];
    ensure!(
        reflection["name"] == "reflection"
            && reflection["prefixes"]["top"][0]["prefix"] == "10.79.0.0/24",
        "{once}"
    );
    // --watch until SIGINT: one object per line, each with rates.
    let watched = status(&["--watch", "--interval", "0.5"])?;
    let lines: Vec<&str> = watched.lines().collect();
    ensure!(lines.len() >= 2, "{watched}");
    for l in lines {
        let v: Value = serde_json::from_str(l)?;
        check_output(&v, &doc, &mut seen)?;
        ensure!(
            v["interval_seconds"].as_f64().is_some_and(|s| s > 0.0),
            "{l}"
        );
    }
    // Stopped (its programs stay attached and pinned): once its heartbeat is older than the
    // limit the node is unhealthy, with reasons; read by name (no config), its secret files are
    // not checked.
    daemon.stop()?;
    std::thread::sleep(Duration::from_millis(2500));
    let out = node
        .command(synwall().to_str().context("the binary's path")?)
        .args(["status", "--json", "--node", &name])
        .output()?;
    ensure!(
        out.status.success(),
        "status --node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped: Value = serde_json::from_slice(&out.stdout)?;
    check_output(&stopped, &doc, &mut seen)?;
    ensure!(stopped["health"]["healthy"] == false, "{stopped}");
    let missing: Vec<&String> = doc.keys().filter(|k| !seen.contains(*k)).collect();
    ensure!(
        missing.is_empty(),
        "documented but never printed: {missing:?}"
    );
    Ok(())
}
