//! The operator-facing files, checked with the real binary and real tools:
//!
//! - `synwall man --out DIR`: one page per (sub)command named in `--help`, each rendered by groff
//!   without a warning;
//! - `synwall completions SHELL`: every shell; bash's script, sourced into a real bash, completes
//!   subcommand names;
//! - `dist/synwall.service`: runs `synwall run --config /etc/synwall/synwall.toml` as
//!   `Type=notify` with a watchdog, reloads with SIGHUP, never detaches on stop, and passes
//!   `systemd-analyze verify` (with the generated man pages on MANPATH so its Documentation= links
//!   resolve), also with its LoadCredential= example enabled;
//! - privileged: the unit's capability set is enough for `synwall run` (load, pin, attach, sysctls,
//!   a real connection through edge and backend, `/metrics` and `synwall status` over it, restart
//!   adoption, `stop --detach`) and every capability in it is needed.
//!
//! The renderers themselves (`metrics::render`, the HTTP server, `status_view`) are unit-tested in
//! their modules with hand-built snapshots.

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use synwall_testkit::tcp::{transform, EchoServer};
use synwall_testkit::topo::pass_all_args;
use synwall_testkit::{require_privileges, unique_prefix, veth, Daemon, Netns};

fn synwall(args: &[&str]) -> Output {
    Command::new(synwall_testkit::synwall())
        .args(args)
        .output()
        .expect("run synwall")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The subcommand names listed under "Commands:" in `synwall [SUB] --help` (without `help`).
fn subcommands(of: &[&str]) -> Vec<String> {
    let mut args = of.to_vec();
    args.push("--help");
    let out = synwall(&args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // A command without subcommands has no Commands: section.
    let Some(list) = text.split("Commands:\n").nth(1) else {
        return Vec::new();
    };
    list.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn man_pages_for_every_subcommand_render() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = synwall(&["man", "--out", out_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<PathBuf> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect();

    // The pages expected, from --help (not from the generator).
    let mut want = vec!["synwall".to_string()];
    for sub in subcommands(&[]) {
        want.push(format!("synwall-{sub}"));
        // Commands with their own subcommands (cookie) get a page per subcommand too.
        for s in subcommands(&[sub.as_str()]) {
            want.push(format!("synwall-{sub}-{s}"));
        }
    }
    for must in [
        "run",
        "status",
        "stop",
        "man",
        "completions",
        "cookie-check",
    ] {
        assert!(want.contains(&format!("synwall-{must}")), "{want:?}");
    }
    // The node binary lists what an operator runs; the lab and the demo are `synwall-lab`'s.
    for gone in ["lab", "demo"] {
        assert!(!want.contains(&format!("synwall-{gone}")), "{want:?}");
    }
    assert_eq!(listed.len(), want.len(), "{listed:?} vs {want:?}");
    for page in &want {
        let path = out_dir.join(format!("{page}.1"));
        assert!(listed.contains(&path), "{} not reported", path.display());
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!(".TH {page} 1"))),
            "{page}: no .TH header"
        );
        if have("groff") {
            let r = Command::new("groff")
                .args(["-man", "-Tascii", "-ww"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(r.status.success(), "groff failed on {page}");
            assert!(
                r.stderr.is_empty(),
                "groff warnings on {page}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
            // grotty marks bold as "N\bN": drop the overstruck character and its backspace.
            let raw: Vec<char> = String::from_utf8_lossy(&r.stdout).chars().collect();
            let mut shown = String::new();
            let mut i = 0;
            while i < raw.len() {
                if raw.get(i + 1) == Some(&'\u{8}') {
                    i += 2;
                } else {
                    shown.push(raw[i]);
                    i += 1;
                }
            }
            assert!(
                shown.contains("NAME") && shown.contains("SYNOPSIS"),
                "{shown}"
            );
        }
    }
    // The run page documents the flag the unit uses.
    let run = std::fs::read_to_string(out_dir.join("synwall-run.1")).unwrap();
    assert!(run.contains("config"), "{run}");

    // Every page says what its exit status means, and NAME does not repeat the program's name.
    for page in &want {
        let text = std::fs::read_to_string(out_dir.join(format!("{page}.1"))).unwrap();
        assert!(
            text.contains("\n.SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR"),
            "{page}"
        );
        let name = text
            .split(".SH NAME\n")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap();
        let escaped = page.replace('-', "\\-");
        assert!(
            name.starts_with(&format!("{escaped} \\- ")),
            "{page}: {name}"
        );
        assert!(!name.contains("synwall:"), "{page}: {name}");
    }
    let section = |text: &str, title: &str| -> String {
        let start = text
            .find(&format!("\n.SH {title}\n"))
            .unwrap_or_else(|| panic!("no {title} section"));
        let rest = &text[start + 5..];
        rest[..rest.find("\n.SH ").unwrap_or(rest.len())].to_string()
    };
    let exit = |page: &str| {
        section(
            &std::fs::read_to_string(out_dir.join(format!("{page}.1"))).unwrap(),
            "\"EXIT STATUS\"",
        )
    };
    // The codes the commands really use (tested in cookie_cli.rs and daemon_cli.rs) are named.
    for (page, codes) in [
        ("synwall-cookie-verify-vectors", &["0", "1", "2"][..]),
        ("synwall-cookie-check", &["0", "1", "2"]),
        ("synwall-stop", &["0", "2"]),
        ("synwall-run", &["0", "2"]),
    ] {
        let e = exit(page);
        for c in codes {
            assert!(e.contains(&format!(".TP\n\\fB{c}\\fR\n")), "{page}: {e}");
        }
    }
    // synwall-run(1): signals, files and every configuration key, section by section.
    let signals = section(&run, "SIGNALS");
    for sig in ["SIGHUP", "SIGINT, SIGTERM"] {
        assert!(signals.contains(&format!("\\fB{sig}\\fR")), "{signals}");
    }
    let files = section(&run, "FILES");
    for f in [
        "/etc/synwall/synwall.toml",
        "/etc/synwall/secret",
        "/run/synwall/NODE.lock",
    ] {
        assert!(files.contains(f), "{files}");
    }
    let config = section(&run, "CONFIGURATION");
    let schema = toml::Value::try_from(synwall_config::NodeConfig::default()).unwrap();
    // Every section of the schema (sub-tables such as [edge.budget] are sections of their own).
    let mut sections: Vec<(String, &toml::Table)> = schema
        .as_table()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_table().unwrap()))
        .collect();
    while let Some((sec, keys)) = sections.pop() {
        let part = config
            .split(&format!("\n.SS [{sec}]\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("CONFIGURATION has no [{sec}]"));
        let part = part.split("\n.SS ").next().unwrap();
        for (key, value) in keys {
            if let Some(sub) = value.as_table() {
                sections.push((format!("{sec}.{key}"), sub));
                continue;
            }
            assert!(
                part.contains(&format!(".TP\n\\fB{key} = ")),
                "CONFIGURATION [{sec}] lacks {key}"
            );
        }
    }

    // The pages `synwall man --help` names as examples are pages it writes.
    let help = String::from_utf8(synwall(&["man", "--help"]).stdout).unwrap();
    let named: Vec<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| w.starts_with("synwall") && w.ends_with(".1"))
        .collect();
    assert!(named.len() >= 2, "{help}");
    for n in named {
        assert!(
            out_dir.join(n).exists(),
            "`synwall man --help` names {n}, never written"
        );
    }

    // Without --out: the top page on stdout.
    let top = synwall(&["man"]);
    assert!(top.status.success());
    let top = String::from_utf8(top.stdout).unwrap();
    assert!(top.contains(".TH synwall 1"), "{top}");
    assert!(top.contains("completions"), "top page lists subcommands");
}

#[test]
fn completions_for_every_shell() {
    let subs = subcommands(&[]);
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = synwall(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("synwall"), "{shell}");
        for s in &subs {
            assert!(text.contains(s.as_str()), "{shell} completion lacks {s}");
        }
    }
    let bad = synwall(&["completions", "tcsh"]);
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));

    // Source the bash script into bash and complete `synwall st`, as the shell would on TAB.
    if have("bash") {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("synwall.bash");
        std::fs::write(&script, synwall(&["completions", "bash"]).stdout).unwrap();
        let complete = |line: &str| -> Vec<String> {
            let words: Vec<&str> = line.split(' ').collect();
            let prog = format!(
                "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
                 _synwall synwall '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display(),
                words.join(" "),
                words.len() - 1,
                line.len(),
                words[words.len() - 1],
                words[words.len() - 2],
            );
            let out = Command::new("bash").args(["-c", &prog]).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(complete("synwall st"), ["status", "stop"]);
        let flags = complete("synwall status --");
        for f in ["--json", "--watch", "--all", "--config"] {
            assert!(flags.iter().any(|x| x == f), "{f} not in {flags:?}");
        }
    }
}

/// `Key=Value` lines of the unit, by section (later lines append, as systemd does for lists).
fn unit() -> BTreeMap<String, Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/synwall.service");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("Key=Value");
        out.entry(format!("{section}.{k}"))
            .or_default()
            .push(v.to_string());
    }
    out
}

fn one(u: &BTreeMap<String, Vec<String>>, key: &str) -> String {
    match u.get(key).map(Vec::as_slice) {
        Some([v]) => v.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

/// The unit's capabilities, e.g. ["CAP_BPF", ...].
fn unit_caps() -> Vec<String> {
    let u = unit();
    let caps: Vec<String> = one(&u, "Service.CapabilityBoundingSet")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let ambient: Vec<String> = one(&u, "Service.AmbientCapabilities")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(caps, ambient, "bounding and ambient sets differ");
    caps
}

#[test]
fn systemd_unit_runs_the_daemon_and_verifies() {
    let u = unit();
    let exec = one(&u, "Service.ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(
        argv,
        [
            "/usr/bin/synwall",
            "run",
            "--config",
            "/etc/synwall/synwall.toml"
        ]
    );
    // The subcommand and flag exist in this binary.
    let help = synwall(&["run", "--help"]);
    assert!(help.status.success(), "`synwall run` does not exist");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config"));
    // dist/synwall.toml is the file the unit points at.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/synwall.toml"),
    )
    .unwrap();
    assert!(example.contains("/etc/synwall/synwall.toml"));

    // The daemon speaks systemd's notify protocol (READY=1, WATCHDOG=1: tested in daemon_cli).
    assert_eq!(one(&u, "Service.Type"), "notify");
    assert_eq!(one(&u, "Service.WatchdogSec"), "30s");
    assert_eq!(one(&u, "Service.Restart"), "on-failure");
    assert_eq!(one(&u, "Service.ExecReload"), "/bin/kill -HUP $MAINPID");
    // A plain stop must leave the pinned programs in place: no ExecStop that detaches.
    for (k, vs) in &u {
        if k.starts_with("Service.ExecStop") {
            assert!(!vs.iter().any(|v| v.contains("--detach")), "{k}: {vs:?}");
        }
    }
    assert_eq!(unit_caps(), ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]);
    assert_eq!(one(&u, "Service.NoNewPrivileges"), "yes");
    assert_eq!(one(&u, "Service.ProtectSystem"), "strict");
    assert_eq!(one(&u, "Service.ReadWritePaths"), "/sys/fs/bpf");
    // The daemon's default --run-dir is /run/synwall: the unit must make it writable.
    assert_eq!(one(&u, "Service.RuntimeDirectory"), "synwall");
    assert!(!u.contains_key("Service.ProtectKernelTunables"));

    if !have("systemd-analyze") {
        eprintln!("systemd-analyze not installed: only the parsed checks ran");
        return;
    }
    // verify needs ExecStart to exist and Documentation= pages to resolve: point it at this
    // binary and at the pages this binary generates.
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man/man1");
    assert!(synwall(&["man", "--out", man1.to_str().unwrap()])
        .status
        .success());
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/synwall.service"),
    )
    .unwrap()
    .replace(
        "/usr/bin/synwall",
        synwall_testkit::synwall().to_str().unwrap(),
    );
    // As shipped, and with the credential example enabled (its source file must exist).
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "00".repeat(32)).unwrap();
    let example = "#LoadCredential=synwall-secret:/etc/synwall/secret";
    assert!(text.contains(example), "no LoadCredential= example");
    let with_credential = text.replace(
        example,
        &format!("LoadCredential=synwall-secret:{}", secret.display()),
    );
    for (name, text) in [("synwall", text), ("synwall-cred", with_credential)] {
        let unit_path = dir.path().join(format!("{name}.service"));
        std::fs::write(&unit_path, text).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit_path)
            .env("MANPATH", dir.path().join("man"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "systemd-analyze verify {name}: {err}");
        assert!(
            err.trim().is_empty(),
            "systemd-analyze verify {name} warned: {err}"
        );
    }
}

// ---- privileged: the unit's capabilities, for real --------------------------------------------

/// `setpriv` flags that leave a root process exactly `caps` (systemd's CapabilityBoundingSet for
/// a root service does the same: permitted = effective = bounding set).
fn setpriv_args(caps: &[String]) -> String {
    let list: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    format!("--bounding-set=-all,{}", list.join(","))
}

struct CapLab {
    // A pass-everything XDP program on the peer's veth end: native XDP_TX on veth (the cookie
    // SYN+ACK) needs the receiving end to run XDP too.
    _pass: Daemon,
    node: Netns,
    peer: Netns,
    dir: tempfile::TempDir,
    name: String,
}

impl CapLab {
    fn new() -> Result<CapLab> {
        let name = unique_prefix();
        let node = Netns::create(&format!("{name}n"))?;
        let peer = Netns::create(&format!("{name}p"))?;
        veth(&node, "n0", &peer, "p0")?;
        node.addr("n0", "10.77.0.1/24")?;
        peer.addr("p0", "10.77.0.2/24")?;
        // The kfunc's sysctls start wrong: the daemon (set_sysctls = true) must write them.
        node.sysctl("net.ipv4.tcp_syncookies", "0")?;
        let dir = tempfile::tempdir()?;
        let secret = dir.path().join("secret");
        std::fs::write(&secret, [0x5au8; 32])?;
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let pass = pass_all_args("p0", &secret.display().to_string());
        let pass = Daemon::start(
            &peer,
            synwall_testkit::synwall(),
            &pass,
            Duration::from_secs(20),
        )?;
        let cfg = format!(
            "[node]\nname = \"{name}\"\nsecret_file = \"{}\"\nmetrics = \"127.0.0.1:9733\"\n\
             set_sysctls = true\n\n[services]\nprotect = [\"10.77.0.1/32:80\"]\n\n\
             [edge]\ninterfaces = [\"n0\"]\n\n[backend]\ninterfaces = [\"n0\"]\n",
            secret.display()
        );
        std::fs::write(dir.path().join("synwall.toml"), cfg)?;
        Ok(CapLab {
            _pass: pass,
            node,
            peer,
            dir,
            name,
        })
    }

    fn config(&self) -> String {
        self.dir.path().join("synwall.toml").display().to_string()
    }

    fn run_dir(&self) -> String {
        self.dir.path().join("run").display().to_string()
    }

    /// `synwall ARGS` in the node namespace with exactly `caps`.
    fn synwall(&self, caps: &[String], args: &[&str]) -> Result<Output> {
        let out = self
            .node
            .command("setpriv")
            .arg(setpriv_args(caps))
            .arg("--")
            .arg(synwall_testkit::synwall())
            .args(args)
            .output()?;
        Ok(out)
    }

    fn start(&self, caps: &[String]) -> Result<Daemon> {
        let sp = setpriv_args(caps);
        let exe = synwall_testkit::synwall().display().to_string();
        let (cfg, run) = (self.config(), self.run_dir());
        Daemon::start(
            &self.node,
            Path::new("setpriv"),
            &[&sp, "--", &exe, "run", "--config", &cfg, "--run-dir", &run],
            Duration::from_secs(20),
        )
    }

    fn xdp_attached(&self) -> Result<bool> {
        let out = self.node.run(&["ip", "link", "show", "n0"])?;
        Ok(String::from_utf8_lossy(&out.stdout).contains("xdp"))
    }
}

impl Drop for CapLab {
    fn drop(&mut self) {
        // Whatever happened, leave no pins or attached programs behind.
        let _ = Command::new(synwall_testkit::synwall())
            .args(["stop", "--config", &self.config(), "--detach"])
            .args(["--run-dir", &self.run_dir()])
            .output();
    }
}

/// GET /metrics on the node's loopback, from inside its namespace.
fn scrape(ns: &Netns) -> Result<String> {
    let resp = ns.enter(|| -> Result<String> {
        let mut t = TcpStream::connect("127.0.0.1:9733")?;
        t.set_read_timeout(Some(Duration::from_secs(10)))?;
        t.write_all(b"GET /metrics HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n")?;
        let mut s = String::new();
        t.read_to_string(&mut s)?;
        Ok(s)
    })??;
    let (head, body) = resp.split_once("\r\n\r\n").context("no header end")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(body.to_string())
}

fn sample(metrics: &str, key: &str) -> Result<u64> {
    for line in metrics.lines() {
        if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix(' ')) {
            return Ok(v.parse()?);
        }
    }
    bail!("no sample {key}")
}

#[test]
fn unit_capabilities_are_enough_and_each_is_needed() -> Result<()> {
    if !require_privileges("unit_capabilities_are_enough_and_each_is_needed") {
        return Ok(());
    }
    let caps = unit_caps();
    let lab = CapLab::new()?;

    // Each capability is needed: without it the daemon refuses to start and attaches nothing.
    for drop in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != drop).cloned().collect();
        match lab.start(&fewer) {
            Ok(d) => {
                let _ = d.stop();
                bail!("synwall run started without {drop}: the unit grants more than needed");
            }
            Err(e) => eprintln!(
                "without {drop}: {}",
                format!("{e:#}").lines().last().unwrap_or("")
            ),
        }
        ensure!(
            !lab.xdp_attached()?,
            "a failed start without {drop} left XDP attached"
        );
    }

    // With exactly the unit's set: load, pin, attach, write sysctls, serve metrics. (A failed
    // start above may already have written the sysctl: start from the wrong value again.)
    lab.node.sysctl("net.ipv4.tcp_syncookies", "0")?;
    let daemon = lab.start(&caps)?;
    ensure!(
        lab.node
            .run(&["sysctl", "-n", "net.ipv4.tcp_syncookies"])?
            .stdout
            != b"0\n",
        "sysctl not set"
    );
    ensure!(lab.xdp_attached()?, "XDP not attached");

    // A real connection through the cookie path: SYN answered by XDP, ACK turned into a socket
    // by the kfunc.
    let listener = lab
        .node
        .enter(|| TcpListener::bind("10.77.0.1:80"))?
        .context("bind 10.77.0.1:80")?;
    let server = EchoServer::start(listener)?;
    let answer = lab.peer.enter(|| -> Result<Vec<u8>> {
        let addr: SocketAddr = "10.77.0.1:80".parse()?;
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"through synwall")?;
        c.shutdown(std::net::Shutdown::Write)?;
        let mut buf = Vec::new();
        c.read_to_end(&mut buf)?;
        Ok(buf)
    })??;
    ensure!(
        answer == transform(b"through synwall"),
        "wrong answer {answer:?}"
    );
    server.next(Duration::from_secs(5))?;

    let m = scrape(&lab.node)?;
    ensure!(
        sample(&m, "synwall_syn_answered_total{role=\"edge\"}")? >= 1,
        "{m}"
    );
    ensure!(
        sample(&m, "synwall_backend_reqsk_created_total{role=\"backend\"}")? >= 1,
        "{m}"
    );
    let info = format!(
        "synwall_info{{node=\"{}\",version=\"{}\"}}",
        lab.name,
        env!("CARGO_PKG_VERSION")
    );
    ensure!(sample(&m, &info)? == 1, "{m}");

    // `synwall status` with the same capabilities reads the pins.
    let cfg = lab.config();
    let run = lab.run_dir();
    let st = lab.synwall(
        &caps,
        &["status", "--config", &cfg, "--run-dir", &run, "--json"],
    )?;
    ensure!(
        st.status.success(),
        "status: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&st.stdout)?;
    let edge = j["programs"]
        .as_array()
        .context("programs")?
        .iter()
        .find(|p| p["role"] == "edge")
        .context("edge program")?;
    ensure!(edge["counters"]["syn_answered"].as_u64() >= Some(1), "{j}");
    let text = lab.synwall(&caps, &["status", "--config", &cfg, "--run-dir", &run])?;
    let text = String::from_utf8_lossy(&text.stdout);
    ensure!(text.contains("syn_answered"), "{text}");

    // A stop leaves the programs attached; a new process adopts them with the same set.
    daemon.stop()?;
    ensure!(lab.xdp_attached()?, "a plain stop detached XDP");
    let again = lab.start(&caps)?;
    ensure!(
        again.ready_line().contains("adopted=2"),
        "{}",
        again.ready_line()
    );
    again.stop()?;

    // And `stop --detach` with the same set removes everything.
    let out = lab.synwall(
        &caps,
        &["stop", "--config", &cfg, "--run-dir", &run, "--detach"],
    )?;
    ensure!(
        out.status.success(),
        "stop --detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        !lab.xdp_attached()?,
        "XDP still attached after stop --detach"
    );
    Ok(())
}

#[test]
fn edge_only_node_needs_perfmon_and_says_so() -> Result<()> {
    if !require_privileges("edge_only_node_needs_perfmon_and_says_so") {
        return Ok(());
    }
    let caps = unit_caps();
    let lab = CapLab::new()?;
    let secret = lab.dir.path().join("secret");
    std::fs::write(
        lab.config(),
        format!(
            "[node]\nname = \"{}\"\nsecret_file = \"{}\"\nmetrics = \"127.0.0.1:9733\"\n\n\
             [services]\nprotect = [\"10.77.0.1/32:80\"]\n\n[edge]\ninterfaces = [\"n0\"]\n",
            lab.name,
            secret.display()
        ),
    )?;
    // Without CAP_PERFMON: refused before anything is loaded, with the reason named.
    let fewer: Vec<String> = caps
        .iter()
        .filter(|c| *c != "CAP_PERFMON")
        .cloned()
        .collect();
    match lab.start(&fewer) {
        Ok(d) => {
            let _ = d.stop();
            bail!("an edge-only node started without CAP_PERFMON");
        }
        Err(e) => {
            let e = format!("{e:#}");
            ensure!(e.contains("needs CAP_PERFMON"), "{e}");
        }
    }
    ensure!(!lab.xdp_attached()?, "a refused start left XDP attached");
    // Positive control, the same node with the unit's set: the edge answers a real client's
    // SYN (with no backend the client's ACK then meets the kernel, which resets it).
    let daemon = lab.start(&caps)?;
    ensure!(lab.xdp_attached()?, "XDP not attached");
    let _listener = lab
        .node
        .enter(|| TcpListener::bind("10.77.0.1:80"))?
        .context("bind 10.77.0.1:80")?;
    let _ = lab.peer.enter(|| {
        let addr: SocketAddr = "10.77.0.1:80".parse().expect("an address");
        TcpStream::connect_timeout(&addr, Duration::from_secs(3))
    })?;
    let m = scrape(&lab.node)?;
    ensure!(
        sample(&m, "synwall_syn_answered_total{role=\"edge\"}")? >= 1,
        "{m}"
    );
    daemon.stop()?;
    Ok(())
}
